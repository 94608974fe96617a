"""Exports tiny random-init Hugging Face MoE causal LMs of transformers 4.57
with torch 2.9's exporters (docs/importer.md, "Newer families"). The files
test/Execution/Inputs/exports/*_457.onnx were written by it ("tsp", renamed
<family>_<attn>_457.onnx).

Needs a venv the test suite does not install:

    python3 -m venv /tmp/hf457
    /tmp/hf457/bin/pip install torch==2.9.1 transformers==4.57.6 onnx \
        onnxscript
    /tmp/hf457/bin/python python/moe_ref/hf_corpus_457.py FAMILY \
        {ts,tsp,dynamo,dynp} {eager,sdpa} OUT_DIR
    /tmp/hf457/bin/python python/moe_ref/hf_corpus_457.py --list

tsp/dynp = TorchScript/dynamo with patch_masks() (the attention mask built
without vmap, as optimum does). Writes
OUT_DIR/<family>_<attn>_<ts|tsp|dynamo|dynp>.onnx; prints one line
'RESULT <path> ok|FAIL <error>' and 'VOCAB <n>'.
"""
import contextlib
import os
import sys
import traceback

import torch

H, I, MI, HEADS, KV, VOCAB, LAYERS, E, K = 32, 32, 16, 4, 2, 64, 2, 4, 2


def families():
    import transformers as T
    base = dict(hidden_size=H, intermediate_size=I, num_hidden_layers=LAYERS,
                num_attention_heads=HEADS, num_key_value_heads=KV,
                vocab_size=VOCAB, max_position_embeddings=64)
    f = {}
    f["qwen3_moe"] = lambda: (T.Qwen3MoeConfig(
        **base, head_dim=8, num_experts=E, num_experts_per_tok=K,
        moe_intermediate_size=MI, norm_topk_prob=True), T.Qwen3MoeForCausalLM)
    mla = dict(base, num_key_value_heads=HEADS)  # MLA: kv heads == heads
    f["deepseek_v3"] = lambda: (T.DeepseekV3Config(
        **mla, moe_intermediate_size=MI, n_routed_experts=E,
        n_shared_experts=1, num_experts_per_tok=K, n_group=2, topk_group=1,
        first_k_dense_replace=1, kv_lora_rank=16, q_lora_rank=16,
        qk_rope_head_dim=4, qk_nope_head_dim=4, v_head_dim=8,
        routed_scaling_factor=2.5), T.DeepseekV3ForCausalLM)
    f["gpt_oss"] = lambda: (T.GptOssConfig(
        **base, head_dim=8, num_local_experts=E, num_experts_per_tok=K,
        sliding_window=4), T.GptOssForCausalLM)
    f["jetmoe"] = lambda: (T.JetMoeConfig(
        hidden_size=H, intermediate_size=I, num_hidden_layers=LAYERS,
        num_key_value_heads=2, kv_channels=8, vocab_size=VOCAB,
        max_position_embeddings=64, num_local_experts=E,
        num_experts_per_tok=K), T.JetMoeForCausalLM)
    f["dbrx"] = lambda: (T.DbrxConfig(
        d_model=H, n_heads=HEADS, n_layers=LAYERS, max_seq_len=64,
        vocab_size=VOCAB,
        attn_config={"kv_n_heads": KV, "clip_qkv": 8.0},
        ffn_config={"moe_num_experts": E, "moe_top_k": K,
                    "ffn_hidden_size": MI}), T.DbrxForCausalLM)
    f["glm4_moe"] = lambda: (T.Glm4MoeConfig(
        **base, head_dim=8, moe_intermediate_size=MI, n_routed_experts=E,
        n_shared_experts=1, num_experts_per_tok=K, n_group=2, topk_group=1,
        first_k_dense_replace=1, use_qk_norm=True,
        routed_scaling_factor=1.5), T.Glm4MoeForCausalLM)
    f["ernie4_5_moe"] = lambda: (T.Ernie4_5_MoeConfig(
        **base, moe_intermediate_size=MI, moe_num_experts=E, moe_k=K,
        moe_num_shared_experts=1, moe_layer_start_index=0, pad_token_id=0),
        T.Ernie4_5_MoeForCausalLM)
    f["hunyuan_v1_moe"] = lambda: (T.HunYuanMoEV1Config(
        **base, head_dim=8, num_experts=E, moe_topk=K, pad_token_id=0),
        T.HunYuanMoEV1ForCausalLM)
    f["minimax"] = lambda: (T.MiniMaxConfig(
        **base, head_dim=8, num_local_experts=E, num_experts_per_tok=K,
        layer_types=["linear_attention", "full_attention"], block_size=4),
        T.MiniMaxForCausalLM)
    f["dots1"] = lambda: (T.Dots1Config(
        **base, head_dim=8, moe_intermediate_size=MI, n_routed_experts=E,
        n_shared_experts=1, num_experts_per_tok=K, n_group=2, topk_group=1,
        first_k_dense_replace=1, norm_topk_prob=True), T.Dots1ForCausalLM)
    f["flex_olmo"] = lambda: (T.FlexOlmoConfig(
        **base, num_experts=E, num_experts_per_tok=K, pad_token_id=0,
        eos_token_id=1), T.FlexOlmoForCausalLM)
    f["llama4"] = lambda: (T.Llama4TextConfig(
        **base, head_dim=8, intermediate_size_mlp=I, num_local_experts=E,
        num_experts_per_tok=K, interleave_moe_layer_step=1,
        attention_chunk_size=4, no_rope_layer_interval=2),
        T.Llama4ForCausalLM)
    f["granitemoeshared"] = lambda: (T.GraniteMoeSharedConfig(
        **base, num_local_experts=E, num_experts_per_tok=K,
        shared_intermediate_size=MI), T.GraniteMoeSharedForCausalLM)
    f["qwen2_moe"] = lambda: (T.Qwen2MoeConfig(
        **base, num_experts=E, num_experts_per_tok=K,
        moe_intermediate_size=MI, shared_expert_intermediate_size=20),
        T.Qwen2MoeForCausalLM)
    # extras (newer families, not in the brief's list)
    f["deepseek_v2"] = lambda: (T.DeepseekV2Config(
        **mla, moe_intermediate_size=MI, n_routed_experts=E,
        n_shared_experts=1, num_experts_per_tok=K, n_group=2, topk_group=1,
        topk_method="group_limited_greedy", first_k_dense_replace=1,
        kv_lora_rank=16, q_lora_rank=16, qk_rope_head_dim=4,
        qk_nope_head_dim=4, v_head_dim=8), T.DeepseekV2ForCausalLM)
    f["qwen3_next"] = lambda: (T.Qwen3NextConfig(
        **base, head_dim=8, num_experts=E, num_experts_per_tok=K,
        moe_intermediate_size=MI, shared_expert_intermediate_size=MI,
        linear_num_value_heads=2, linear_num_key_heads=2,
        linear_key_head_dim=8, linear_value_head_dim=8,
        layer_types=["linear_attention", "full_attention"]),
        T.Qwen3NextForCausalLM)
    return f


class LM(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids):
        return self.model(input_ids=ids, use_cache=False, return_dict=False)[0]


def patch_masks():
    """TorchScript tracing cannot trace transformers' vmap'd mask builder
    (RuntimeError: unordered_map::at): evaluate the mask function on
    broadcast index tensors instead (what optimum does for ONNX export)."""
    from transformers import masking_utils as mu

    def bcast(mask_function, bh_indices=True):
        def f(b, h, q, kv):
            if not bh_indices:
                m = mask_function(None, None, q[:, None], kv[None, :])
                return m.expand(q.shape[0], kv.shape[0])
            m = mask_function(b[:, None, None, None], h[None, :, None, None],
                              q[None, None, :, None], kv[None, None, None, :])
            return m.expand(b.shape[0], h.shape[0], q.shape[0], kv.shape[0])
        return f
    mu._vmap_for_bhqkv = bcast
    mu.TransformGetItemToIndex = contextlib.nullcontext

    def packed(position_ids):  # torch.diff has no opset-17 symbolic
        prev = torch.cat([position_ids[:, :1] - 1, position_ids[:, :-1]], -1)
        # int64 before cumsum: the TorchScript exporter writes CumSum on the
        # bool tensor as is, which ONNX (and ORT) reject
        return ((position_ids - prev) != 1).to(torch.int64).cumsum(-1)
    mu.find_packed_sequence_indices = packed


def main():
    if sys.argv[1] == "--list":
        print(" ".join(families()))
        return 0
    fam, exporter, attn, out = sys.argv[1:5]
    path = os.path.join(out, f"{fam}_{attn}_{exporter}.onnx")

    def build():
        cfg, cls = families()[fam]()
        print("VOCAB", cfg.vocab_size)
        return cfg, cls._from_config(cfg, attn_implementation=attn)
    return export_lm(build, exporter, path)


def export_lm(build, exporter, path):
    """Exports the causal LM `build()` returns (config, model) to `path`
    with `exporter` (ts/tsp: TorchScript at opset 17, dynamo/dynp: dynamo;
    p: masks patched); input_ids [batch, seq] dynamic. Prints 'RESULT path
    ok|FAIL error'."""
    if exporter in ("tsp", "dynp"):
        patch_masks()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    torch.manual_seed(0)
    try:
        cfg, model = build()
        lm = LM(model.eval()).eval()
        ids = torch.randint(0, cfg.vocab_size, (2, 5))
        with torch.no_grad():
            lm(ids)  # eager forward must work
            if exporter in ("ts", "tsp"):
                torch.onnx.export(lm, (ids,), path, dynamo=False,
                                  opset_version=17, input_names=["input_ids"],
                                  output_names=["logits"],
                                  dynamic_axes={"input_ids": {0: "batch",
                                                              1: "seq"}})
            else:
                import onnx
                dim = torch.export.Dim.DYNAMIC
                torch.onnx.export(lm, (ids,), path, dynamo=True,
                                  input_names=["input_ids"],
                                  output_names=["logits"],
                                  dynamic_shapes={"ids": {0: dim, 1: dim}})
                onnx.save(onnx.load(path), path, save_as_external_data=False)
                if os.path.exists(path + ".data"):
                    os.remove(path + ".data")
        print("RESULT", path, "ok")
    except Exception as e:
        traceback.print_exc()
        if os.path.exists(path):
            os.remove(path)
        msg = " ".join(f"{type(e).__name__}: {e}".split())[:400]
        print("RESULT", path, "FAIL", msg)
    return 0


if __name__ == "__main__":
    sys.exit(main())

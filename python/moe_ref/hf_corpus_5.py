"""Exports tiny random-init Hugging Face MoE causal LMs of transformers 5
with the experts computed as `experts_implementation` says
(docs/importer.md, "transformers 5"). The files
test/Execution/Inputs/exports/*_tf5_*.onnx were written by it (LAYERS=1
(2 for DeepSeek-V3, whose first layer is dense),
batched_mm, renamed <family>_<attn>_tf5_<exporter>.onnx).

transformers 5 keeps each block's experts as stacked [E, ., .] weights and
picks their forward at load time: "grouped_mm" (its default) calls
torch._grouped_mm, which neither torch exporter can write; "eager" loops
over the experts the traced input hit (the dynamo exporter refuses the
data-dependent loop, TorchScript unrolls it for the traced input only);
"batched_mm" gathers each routing slot's weights and applies them as
batched matrix-vector products, which both exporters write for any input.
moe-raise-onnx raises that form (g) into routed experts.

Needs a venv the test suite does not install (torch 2.9.1 as in
hf_corpus_457.py's, transformers 5.25.0):

    python3 -m venv /tmp/hf5
    /tmp/hf5/bin/pip install torch==2.9.1 transformers==5.25.0 onnx \\
        onnxscript
    [LAYERS=n] [SIZES=H,I,MI,HEADS,KV,VOCAB,LAYERS,E,K] \\
        /tmp/hf5/bin/python python/moe_ref/hf_corpus_5.py FAMILY \\
        {ts,tsp,dynamo,dynp} {eager,sdpa} {batched_mm,eager} OUT_DIR

SIZES replaces hf_corpus_457.py's sizes (hidden, intermediate, MoE
intermediate, heads, key/value heads, vocabulary, layers, experts, k):
docs/performance.md's transformers 5 models are
SIZES=512,1024,256,8,4,4096,4,16,4 (Qwen3-MoE, DeepSeek-V3) and
SIZES=512,256,256,8,4,4096,4,16,4 (GPT-OSS, whose experts are I wide).

Writes OUT_DIR/<family>_<attn>_<experts>_<exporter>.onnx and prints
'RESULT <path> ok|FAIL <error>'. The families are hf_corpus_457.py's
(whose configurations transformers 5 still reads) plus Mixtral and OLMoE;
any other model type gets its default configuration shrunk by GENERIC
(the keys it has; a multi-head latent attention with as many key/value
heads as heads), which fits many families and not all; SIZES and LAYERS
do not apply to it.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_corpus_457 as base  # noqa: E402


def families():
    import transformers as T
    if os.environ.get("SIZES"):
        (base.H, base.I, base.MI, base.HEADS, base.KV, base.VOCAB,
         base.LAYERS, base.E, base.K) = map(int,
                                            os.environ["SIZES"].split(","))
    if os.environ.get("LAYERS"):
        base.LAYERS = int(os.environ["LAYERS"])
    f = base.families()
    common = dict(hidden_size=base.H, intermediate_size=base.I,
                  num_hidden_layers=base.LAYERS,
                  num_attention_heads=base.HEADS,
                  num_key_value_heads=base.KV, vocab_size=base.VOCAB,
                  max_position_embeddings=64)
    f["mixtral"] = lambda: (T.MixtralConfig(
        **common, num_local_experts=base.E, num_experts_per_tok=base.K),
        T.MixtralForCausalLM)
    f["olmoe"] = lambda: (T.OlmoeConfig(
        **common, num_experts=base.E, num_experts_per_tok=base.K),
        T.OlmoeForCausalLM)
    return f


# Any other model type: its default configuration with these sizes set
# where it has the key (list-valued layer plans reset to None: the
# configuration derives or defaults them; Nemotron-H keeps its 4 layers).
GENERIC = dict(hidden_size=32, intermediate_size=32, moe_intermediate_size=16,
               num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, head_dim=8, vocab_size=64,
               max_position_embeddings=64, num_experts=4, num_local_experts=4,
               n_routed_experts=4, moe_num_experts=4, num_experts_per_tok=2,
               moe_topk=2, moe_k=2, top_k=2, n_group=2, topk_group=1,
               first_k_dense_replace=1, n_shared_experts=1,
               num_shared_experts=1, kv_lora_rank=16, q_lora_rank=16,
               qk_rope_head_dim=4, qk_nope_head_dim=4, v_head_dim=8,
               sliding_window=4, shared_expert_intermediate_size=16,
               expert_hidden_size=16, moe_shared_expert_intermediate_size=16,
               pad_token_id=0, bos_token_id=1, eos_token_id=2)


def generic(model_type):
    import transformers as T
    d = T.AutoConfig.for_model(model_type).to_dict()
    kw = {k: v for k, v in GENERIC.items() if k in d}
    if "kv_lora_rank" in d:  # multi-head latent attention: kv heads = heads
        kw["num_key_value_heads"] = GENERIC["num_attention_heads"]
    # (Nemotron-H keeps its plan as layers_block_type.)
    for k in ("layer_types", "layers_block_type", "mlp_only_layers",
              "moe_layers"):
        if isinstance(d.get(k), list):
            kw[k] = None
    cfg = T.AutoConfig.for_model(model_type, **kw)
    return cfg, T.AutoModelForCausalLM


def main():
    fam, exporter, attn, experts, out = sys.argv[1:6]
    path = os.path.join(out, f"{fam}_{attn}_{experts}_{exporter}.onnx")

    def build():
        import transformers as T
        known = families()
        cfg, cls = known[fam]() if fam in known else generic(fam)
        if cls is T.AutoModelForCausalLM:
            return cfg, cls.from_config(cfg, attn_implementation=attn,
                                        experts_implementation=experts)
        return cfg, cls._from_config(cfg, attn_implementation=attn,
                                     experts_implementation=experts)
    return base.export_lm(build, exporter, path)


if __name__ == "__main__":
    sys.exit(main())

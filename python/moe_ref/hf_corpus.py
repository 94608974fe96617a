"""Exports tiny random-init Hugging Face MoE models with torch.onnx.export.

The corpus of real exports for the importer (issue: real PyTorch exports in):
each family's sparse MoE block alone and the whole causal LM, with static and
with dynamic (batch, sequence) axes, as `torch.onnx.export` writes them
(opset 17). The files are checked in under test/Execution/Inputs/exports;
this script regenerates them.

Needs transformers==4.46.3 over Debian's torch 1.13 (docs/importer.md:
"Real exports"), which the test suite does not install:

    /usr/bin/python3 -m venv --system-site-packages /tmp/hf
    /tmp/hf/bin/pip install transformers==4.46.3 "numpy<1.25"
    PYTHONPATH=python /tmp/hf/bin/python -m moe_ref.hf_corpus OUT_DIR

Sizes are tiny (hidden 16, 4 experts, top-2, vocab 32) so that the files stay
small and compile fast; the graph structure does not depend on them.
--hidden/--intermediate/--experts/--k and --kinds block write larger blocks
for benchmarks (bench/raise_exports.py --onnx), e.g. the 64-expert Mixtral
block of docs/performance.md:

    ... -m moe_ref.hf_corpus /tmp/big --only mixtral --kinds block \
        --hidden 512 --intermediate 128 --experts 64 --k 8

and --layers/--heads/--kv-heads/--vocab (--dynamo: torch 2.9's exporter)
the mid-size causal LMs of docs/performance.md ("Whole-graph glue"):

    ... -m moe_ref.hf_corpus /tmp/lm --only olmoe --kinds full --dynamo \
        --hidden 512 --intermediate 256 --experts 16 --k 4 --layers 4 \
        --heads 8 --kv-heads 8 --vocab 4096
"""
import argparse
import os
import sys

import torch


def families(hidden=16, intermediate=24, experts=4, k=2, layers=1, heads=2,
             kv_heads=1, vocab=32):
    import transformers as T
    base = dict(hidden_size=hidden, intermediate_size=intermediate,
                num_hidden_layers=layers, num_attention_heads=heads,
                num_key_value_heads=kv_heads, vocab_size=vocab,
                max_position_embeddings=max(32, 2048 if layers > 1 else 32))
    return {
        "mixtral": (T.MixtralConfig(**base, num_local_experts=experts,
                                    num_experts_per_tok=k),
                    T.MixtralForCausalLM, "MixtralSparseMoeBlock"),
        "qwen2moe": (T.Qwen2MoeConfig(**base, num_experts=experts,
                                      num_experts_per_tok=k,
                                      moe_intermediate_size=intermediate // 2,
                                      shared_expert_intermediate_size=20),
                     T.Qwen2MoeForCausalLM, "Qwen2MoeSparseMoeBlock"),
        "olmoe": (T.OlmoeConfig(**base, num_experts=experts,
                                num_experts_per_tok=k),
                  T.OlmoeForCausalLM, "OlmoeSparseMoeBlock"),
        "phimoe": (T.PhimoeConfig(**base, num_local_experts=experts,
                                  num_experts_per_tok=k),
                   T.PhimoeForCausalLM, "PhimoeSparseMoeBlock"),
        "granitemoe": (T.GraniteMoeConfig(**base, num_local_experts=experts,
                                          num_experts_per_tok=k),
                       T.GraniteMoeForCausalLM, "GraniteMoeMoE"),
    }


class _Block(torch.nn.Module):
    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, x):
        r = self.block(x)
        return r[0] if isinstance(r, tuple) else r


class _LM(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids):
        return self.model(input_ids=ids, use_cache=False, return_dict=False)[0]


def export_all(out, only=None, kinds=("block", "full"), sizes=None,
               dynamo=False):
    import importlib
    os.makedirs(out, exist_ok=True)
    results = []
    for name, (cfg, lm_class, block_name) in families(**(sizes or {})).items():
        if only and name not in only:
            continue
        torch.manual_seed(0)
        module = importlib.import_module(
            type(cfg).__module__.replace("configuration", "modeling"))
        block = getattr(module, block_name)(cfg).eval()
        lm = lm_class(cfg).eval() if "full" in kinds else None
        cases = [
            ("block", _Block(block), torch.randn(2, 5, cfg.hidden_size), "x",
             "y"),
            ("full", _LM(lm), torch.randint(0, cfg.vocab_size, (2, 5)),
             "input_ids", "logits"),
        ]
        for kind, module_, example, in_name, out_name in cases:
            if kind not in kinds:
                continue
            for dynamic in ((True,) if dynamo else (False, True)):
                path = os.path.join(
                    out, f"{name}_{kind}{'_dynamo' if dynamo else '_dyn' if dynamic else ''}.onnx")
                axes = {in_name: {0: "batch", 1: "seq"}} if dynamic else None
                try:
                    if dynamo:  # torch >= 2.9: one file, weights inside
                        import onnx
                        arg = "ids" if kind == "full" else "x"
                        dim = torch.export.Dim.DYNAMIC
                        torch.onnx.export(module_, (example,), path,
                                          input_names=[in_name],
                                          output_names=[out_name],
                                          dynamo=True,
                                          dynamic_shapes={arg: {0: dim,
                                                                1: dim}})
                        onnx.save(onnx.load(path), path,
                                  save_as_external_data=False)
                        if os.path.exists(path + ".data"):
                            os.remove(path + ".data")
                    else:
                        torch.onnx.export(module_, (example,), path,
                                          opset_version=17,
                                          input_names=[in_name],
                                          output_names=[out_name],
                                          dynamic_axes=axes)
                    results.append((path, "ok"))
                except Exception as e:  # e.g. index_add_ with duplicates
                    results.append((path, f"not exportable: "
                                          f"{type(e).__name__}: "
                                          f"{str(e).splitlines()[0][:160]}"))
    return results


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--only", nargs="*")
    p.add_argument("--kinds", nargs="*", default=["block", "full"],
                   choices=["block", "full"])
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--intermediate", type=int, default=24)
    p.add_argument("--experts", type=int, default=4)
    p.add_argument("--k", type=int, default=2)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--kv-heads", type=int, default=1)
    p.add_argument("--vocab", type=int, default=32)
    p.add_argument("--dynamo", action="store_true",
                   help="torch.onnx.export(dynamo=True) with dynamic batch "
                        "and sequence (torch >= 2.9), one *_dynamo.onnx "
                        "per kind")
    a = p.parse_args()
    sizes = dict(hidden=a.hidden, intermediate=a.intermediate,
                 experts=a.experts, k=a.k, layers=a.layers, heads=a.heads,
                 kv_heads=a.kv_heads, vocab=a.vocab)
    for path, status in export_all(a.out, a.only, a.kinds, sizes, a.dynamo):
        print(f"{os.path.basename(path)}: {status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

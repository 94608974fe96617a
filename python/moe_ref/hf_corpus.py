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
"""
import argparse
import os
import sys

import torch


def families():
    import transformers as T
    base = dict(hidden_size=16, intermediate_size=24, num_hidden_layers=1,
                num_attention_heads=2, num_key_value_heads=1, vocab_size=32,
                max_position_embeddings=32)
    return {
        "mixtral": (T.MixtralConfig(**base, num_local_experts=4,
                                    num_experts_per_tok=2),
                    T.MixtralForCausalLM, "MixtralSparseMoeBlock"),
        "qwen2moe": (T.Qwen2MoeConfig(**base, num_experts=4,
                                      num_experts_per_tok=2,
                                      moe_intermediate_size=12,
                                      shared_expert_intermediate_size=20),
                     T.Qwen2MoeForCausalLM, "Qwen2MoeSparseMoeBlock"),
        "olmoe": (T.OlmoeConfig(**base, num_experts=4, num_experts_per_tok=2),
                  T.OlmoeForCausalLM, "OlmoeSparseMoeBlock"),
        "phimoe": (T.PhimoeConfig(**base, num_local_experts=4,
                                  num_experts_per_tok=2),
                   T.PhimoeForCausalLM, "PhimoeSparseMoeBlock"),
        "granitemoe": (T.GraniteMoeConfig(**base, num_local_experts=4,
                                          num_experts_per_tok=2),
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


def export_all(out, only=None):
    import importlib
    os.makedirs(out, exist_ok=True)
    results = []
    for name, (cfg, lm_class, block_name) in families().items():
        if only and name not in only:
            continue
        torch.manual_seed(0)
        module = importlib.import_module(
            type(cfg).__module__.replace("configuration", "modeling"))
        block = getattr(module, block_name)(cfg).eval()
        lm = lm_class(cfg).eval()
        cases = [
            ("block", _Block(block), torch.randn(2, 5, cfg.hidden_size), "x",
             "y"),
            ("full", _LM(lm), torch.randint(0, cfg.vocab_size, (2, 5)),
             "input_ids", "logits"),
        ]
        for kind, module_, example, in_name, out_name in cases:
            for dynamic in (False, True):
                path = os.path.join(
                    out, f"{name}_{kind}{'_dyn' if dynamic else ''}.onnx")
                axes = {in_name: {0: "batch", 1: "seq"}} if dynamic else None
                try:
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
    a = p.parse_args()
    for path, status in export_all(a.out, a.only):
        print(f"{os.path.basename(path)}: {status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

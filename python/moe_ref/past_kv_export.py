"""A `past_key_values` export of the reference MoEUT: the form in which
ONNX Runtime users run a decoder with a key/value cache (the Hugging Face
`with_past` layout), written with plain `torch.onnx.export`.

Inputs: `tokens` int64 [B, T] and, per absolute layer l = r * G + g,
`past_key.l` and `past_value.l` [B, P, H, d] (P = 0 for the prompt).
Outputs: `logits` [B, T, V] and `present_key.l`, `present_value.l`
[B, P + T, H, d] (the cache extended by the T positions, fed back as the
next step's past). B, T and P are dynamic. The math is MoEUT.step: RoPE at
absolute positions P..P+T-1.

usage: python -m moe_ref.past_kv_export OUT.onnx [--model MoEUT-44M]
"""
import argparse

import torch
from torch import nn

from moe_ref import modules as M


class MoEUTWithPast(nn.Module):
    """MoEUT.step with the cache flattened into inputs and outputs."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, tokens, *past):
        cache = [(past[2 * i], past[2 * i + 1])
                 for i in range(len(past) // 2)]
        logits, present = self.model.step(tokens, cache)
        flat = [t for pair in present for t in pair]
        return (logits, *flat)


def names(layers):
    past = [f"past_{kind}.{l}" for l in range(layers)
            for kind in ("key", "value")]
    present = [f"present_{kind}.{l}" for l in range(layers)
               for kind in ("key", "value")]
    return past, present


def empty_cache(model, batch, length=0):
    """Zero caches of `length` positions: the prompt's past (length 0)."""
    cfg = model.cfg
    shape = (batch, length, cfg.n_heads, cfg.head_dim)
    return [torch.zeros(shape) for _ in range(2 * cfg.n_layers)]


def export(model, path, opset=17):
    """Writes the export of `model` (a moe_ref.modules.MoEUT) to `path`."""
    model = model.eval()
    cfg = model.cfg
    past, present = names(cfg.n_layers)
    # Traced at P = 3, T = 2: both axes dynamic.
    tokens = torch.randint(0, cfg.vocab, (1, 2))
    example = empty_cache(model, 1, 3)
    axes = {"tokens": {0: "batch", 1: "seq"},
            "logits": {0: "batch", 1: "seq"}}
    for n in past:
        axes[n] = {0: "batch", 1: "past"}
    for n in present:
        axes[n] = {0: "batch", 1: "total"}
    with torch.no_grad():
        torch.onnx.export(MoEUTWithPast(model), (tokens, *example), path,
                          opset_version=opset,
                          input_names=["tokens"] + past,
                          output_names=["logits"] + present,
                          dynamic_axes=axes)
    return path


def main():
    from moe_ref.configs import PUBLISHED
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--model", default="MoEUT-44M", choices=sorted(PUBLISHED))
    a = p.parse_args()
    torch.manual_seed(0)
    export(M.MoEUT(PUBLISHED[a.model][0]), a.out)


if __name__ == "__main__":
    main()

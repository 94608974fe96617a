#!/usr/bin/env python3
"""Plain `torch.onnx.export` files of SwitchHead attention (the reference
module, python/moe_ref/modules.py) for moe-raise-onnx's form (e)
(test/Conversion/raise-switchhead.test): the variants it raises, and near
misses that must stay as exported (generic, correct).

Inputs q, k, v [batch, seq, D] with dynamic batch and sequence axes; output
y. The static_* files are exported without dynamic axes (torch's default):
their sizes are constants, and torch folds the RoPE angles and the causal
mask's ones into constants. Written at test time (torch is in the suite's
environment).

usage: make_switchhead_exports.py OUT_DIR
"""
import math
import os
import sys

import torch
from torch import nn

from moe_ref import modules as M
from moe_ref.configs import TINY_MOEUT

D = 16


class Shared(nn.Module):
    """One source for queries, keys and values (as MoEUT calls it)."""

    def __init__(self, att):
        super().__init__()
        self.att = att

    def forward(self, x):
        return self.att(x, x, x)


class Unscaled(M.SwitchHead):
    """Near miss: the scores are not scaled by 1/sqrt(dk)."""

    def forward(self, q_src, k_src, v_src):
        saved = M.attention

        def attention(q, k, v, causal):
            return saved(q * math.sqrt(q.shape[-1]), k, v, causal)
        M.attention = attention
        try:
            return super().forward(q_src, k_src, v_src)
        finally:
            M.attention = saved


class Interleaved(M.SwitchHead):
    """Near miss: RoPE on interleaved pairs (2i, 2i + 1)."""

    def forward(self, q_src, k_src, v_src):
        saved = M.rope

        def rope(x, fraction, base, offset=0):
            y = saved(x.reshape(*x.shape[:-1], -1, 2).transpose(-1, -2)
                      .reshape(x.shape), fraction, base, offset)
            return y.reshape(*x.shape[:-1], 2, -1).transpose(-1, -2) \
                .reshape(x.shape)
        M.rope = rope
        try:
            return super().forward(q_src, k_src, v_src)
        finally:
            M.rope = saved


def cases():
    sh = M.SwitchHead
    return [
        # name, module, sources (1: shared, 3: q, k, v; 0: MoEUT tokens),
        # and for static exports the [batch, seq] exported
        ("base", sh(D, 2, 8, 3, 2), 3),
        ("shared", Shared(sh(D, 2, 8, 3, 2)), 1),
        ("no_rope", sh(D, 2, 8, 3, 2, rotate_fraction=0.0), 3),
        ("full_rope", sh(D, 2, 8, 3, 2, rotate_fraction=1.0), 3),
        # floor(7 * 0.5) = 3, rounded down to 2: one pair, any base.
        ("odd_width", sh(D, 2, 7, 3, 1, rotate_fraction=0.5), 3),
        # floor(10 * 0.5) = 5 -> 4 (the published MoEUT rule, dh 82 -> 40).
        ("width10_base5e5", sh(D, 3, 10, 4, 3, rope_base=500000.0), 3),
        ("not_causal", sh(D, 2, 8, 3, 2, causal=False), 3),
        ("one_head", sh(D, 1, 8, 5, 5), 3),
        ("gated", sh(D, 2, 8, 1, 1), 3),
        ("miss_unscaled", Unscaled(D, 2, 8, 3, 2), 3),
        ("miss_interleaved", Interleaved(D, 2, 8, 3, 2), 3),
        ("static", sh(D, 2, 8, 3, 2), 3, (2, 5)),
        ("static_base5e5", sh(D, 3, 10, 4, 3, rope_base=500000.0), 3, (1, 7)),
        ("static_moeut", M.MoEUT(TINY_MOEUT), 0, (2, 6)),
    ]


def domain_qkv(out):
    """The org.moe_mlir node with q, k and v of independent dynamic sizes:
    the op's lowering checks at run time that k and v have q's [B, T, D]
    (the raised layers with three sources rely on it)."""
    from onnx import TensorProto, save
    from moe_ref import onnx_export as X
    mb = X.ModelBuilder("domain_qkv")
    names = [mb.input(n, TensorProto.FLOAT, [f"b_{n}", f"t_{n}", D])
             for n in ("q", "k", "v")]
    y = X.add_switchhead(mb, M.SwitchHead(D, 2, 8, 3, 2).eval(), *names,
                         "att")
    mb.output(y, "y", TensorProto.FLOAT, ["b_q", "t_q", D])
    save(mb.build(), os.path.join(out, "domain_qkv.onnx"))
    print("domain_qkv")


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    domain_qkv(out)
    for name, module, sources, *static in cases():
        module.eval()
        names = {0: ["tokens"], 1: ["x"], 3: ["q", "k", "v"]}[sources]
        b, t = static[0] if static else (2, 5)
        if sources == 0:
            example = (torch.randint(0, TINY_MOEUT.vocab, (b, t)),)
        else:
            example = tuple(torch.randn(b, t, D) for _ in names)
        axes = None if static else {n: {0: "batch", 1: "seq"}
                                    for n in names + ["y"]}
        with torch.no_grad():
            torch.onnx.export(module, example,
                              os.path.join(out, name + ".onnx"),
                              opset_version=17, input_names=names,
                              output_names=["y"], dynamic_axes=axes)
        print(name)


if __name__ == "__main__":
    main()

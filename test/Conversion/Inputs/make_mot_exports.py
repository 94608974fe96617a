#!/usr/bin/env python3
"""Plain `torch.onnx.export` files of Mixture of Tokens (the reference
module, python/moe_ref/modules.py) for moe-raise-onnx's form (f)
(test/Conversion/raise-mot.test): continuous mixing with each activation
and a temperature, a static export, and the discrete mode (one-hot argmax),
which is not raised.

Input x [batch, seq, D] with dynamic batch and sequence axes (static_*:
none); output y.

usage: make_mot_exports.py OUT_DIR
"""
import os
import sys

import torch

from moe_ref import modules as M

D = 12


def cases():
    mot = M.MixtureOfTokens
    return [
        # name, module, static [batch, seq] or None
        ("relu", mot(D, 5, 7, 4), None),
        ("gelu_t2", mot(D, 3, 6, 2, temperature=2.0, activation="gelu"), None),
        ("silu_g1", mot(D, 4, 5, 1, activation="silu"), None),
        ("static", mot(D, 5, 7, 4, temperature=0.5), (8, 3)),
        ("miss_discrete", mot(D, 5, 7, 4, mode="discrete"), None),
    ]


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    for name, module, static in cases():
        module.eval()
        example = torch.randn(*(static or (8, 3)), D)
        axes = None if static else {"x": {0: "batch", 1: "seq"},
                                    "y": {0: "batch", 1: "seq"}}
        with torch.no_grad():
            torch.onnx.export(module, (example,),
                              os.path.join(out, name + ".onnx"),
                              opset_version=17, input_names=["x"],
                              output_names=["y"], dynamic_axes=axes)
        print(name)


if __name__ == "__main__":
    main()

"""Plain `torch.onnx.export` files of the seed models, written the way their
authors write them (no org.moe_mlir domain): the importer must read what a
user's own export gives.

- sigma_gathered: σ-MoE with gathered per-slot weights (`w1[ids]` and an
  einsum: the reference SigmaMoE, section 2 of spec/models.md);
- sigma_dense: σ-MoE as "run every expert, then mask": the top-k weights
  scattered into a dense [N, E] gate, every expert computed, a weighted sum;
- sigma_gelu: sigma_gathered with exact GELU (Erf, as torch writes it);
- moeut: a MoEUT (SwitchHead attention with RoPE, σ-MoE feed-forward,
  peri-LayerNorm, G layers repeated) from the reference MoEUT module.

All with a dynamic token axis (N, or batch and sequence), opset 17.

usage: python -m moe_ref.plain_exports OUT_DIR
"""
import os
import sys

import torch
from torch import nn

from moe_ref import modules as M
from moe_ref.configs import TINY_MOEUT


class DenseMaskSigmaMoE(nn.Module):
    """σ-MoE computed densely: gate = scatter(top-k sigmoid weights)."""

    def __init__(self, d_model, n_experts, expert_size, k):
        super().__init__()
        self.k = k
        self.w_sel = M.param(n_experts, d_model)
        self.w1 = M.param(n_experts, d_model, expert_size)
        self.w2 = M.param(n_experts, expert_size, d_model)

    def forward(self, x):
        scores = x @ self.w_sel.t()
        values, ids = torch.topk(scores, self.k, dim=-1)
        gate = torch.zeros_like(scores).scatter(-1, ids, torch.sigmoid(values))
        h = torch.relu(torch.einsum("nd,edg->neg", x, self.w1))
        y = torch.einsum("neg,egd->ned", h, self.w2)
        return torch.einsum("ne,ned->nd", gate, y)


def export_moeut(module, path, example):
    """A plain export of a MoEUT (tokens [batch, seq] -> y [batch, seq, V]),
    dynamic batch and sequence axes, as its authors' code would write it."""
    with torch.no_grad():
        torch.onnx.export(module.eval(), (example,), path, opset_version=17,
                          input_names=["tokens"], output_names=["y"],
                          dynamic_axes={"tokens": {0: "batch", 1: "seq"},
                                        "y": {0: "batch", 1: "seq"}})
    return path


def export_all(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    cases = [
        ("sigma_gathered", M.SigmaMoE(16, 8, 12, 2).eval(),
         torch.randn(5, 16), "x", {0: "n"}),
        ("sigma_dense", DenseMaskSigmaMoE(16, 8, 12, 2).eval(),
         torch.randn(5, 16), "x", {0: "n"}),
        # Exact GELU, which torch writes as x * (1 + erf(x / sqrt 2)) * 0.5
        # before opset 20.
        ("sigma_gelu", M.SigmaMoE(16, 8, 12, 2, activation="gelu").eval(),
         torch.randn(5, 16), "x", {0: "n"}),
        ("moeut", M.MoEUT(TINY_MOEUT).eval(),
         torch.randint(0, TINY_MOEUT.vocab, (2, 5)), "tokens",
         {0: "batch", 1: "seq"}),
    ]
    paths = []
    for name, module, example, in_name, axes in cases:
        path = os.path.join(out, name + ".onnx")
        with torch.no_grad():
            torch.onnx.export(module, (example,), path, opset_version=17,
                              input_names=[in_name], output_names=["y"],
                              dynamic_axes={in_name: axes, "y": {0: "n"}})
        paths.append(path)
    return paths


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    for path in export_all(sys.argv[1]):
        print(os.path.basename(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())

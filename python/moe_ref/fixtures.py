"""Regenerates test/fixtures deterministically: python -m moe_ref.fixtures.

Each fixture is a tiny model of one family: <name>.onnx, its input(s) as
<name>.<input>.npy and the expected output <name>.<output>.npy computed by
ONNX Runtime on the exported file. Generation fails if ORT and the PyTorch
reference differ beyond the tolerance (docs/tolerance.md):
    |ort - torch| <= ATOL + RTOL * |torch|   elementwise, float32.
A manifest (manifest.json) lists every fixture with its shapes, the maximum
difference measured and the tolerance used.
"""
import argparse
import json
import os
import sys

import numpy as np
import onnxruntime as ort
import torch

from . import modules as M
from . import onnx_export as X
from .configs import TINY_MOEUT
from .ort_moe import OrtMoE

ATOL = 1e-5
RTOL = 1e-4
SEED = 2024


def _fixture_specs():
    """(name, build) pairs; build() -> (onnx model, {input: array},
    torch reference output as array). Deterministic given the seed."""
    specs = []

    def add(name, make):
        specs.append((name, make))

    # σ-MoE with every gate; odd sizes D = 40, E = 7, K = 3.
    for gate in M.GATES:
        add(f"sigma_moe_{gate}", lambda gate=gate: _layer(
            M.SigmaMoE(40, 7, 24, 3, gate=gate), "sigma_moe", ["N", 40],
            torch.randn(11, 40), lambda m, x: m(x)))
    add("sigma_moe_k_equals_e", lambda: _layer(
        M.SigmaMoE(16, 4, 8, 4), "sigma_moe", ["N", 16], torch.randn(6, 16),
        lambda m, x: m(x)))
    add("sigma_moe_silu", lambda: _layer(
        M.SigmaMoE(16, 5, 8, 2, activation="silu"), "sigma_moe", ["N", 16],
        torch.randn(6, 16), lambda m, x: m(x)))
    # Switch with a capacity that drops tokens (16 tokens, 4 experts, C = 4).
    add("switch_capacity", lambda: _layer(
        M.SwitchFFN(16, 4, 8, 1.0), "switch", ["N", 16], torch.randn(16, 16),
        lambda m, x: m(x)))
    # SwitchHead: E = 3, K = 2, RoPE on half of each head; and E = 1 gated.
    add("switchhead", lambda: _layer(
        M.SwitchHead(32, 2, 8, 3, 2), "switchhead", ["B", "T", 32],
        torch.randn(2, 7, 32), lambda m, x: m(x, x, x)))
    add("switchhead_e1", lambda: _layer(
        M.SwitchHead(32, 2, 8, 1, 1), "switchhead", ["B", "T", 32],
        torch.randn(2, 5, 32), lambda m, x: m(x, x, x)))
    for mode in ("continuous", "discrete"):
        add(f"mot_{mode}", lambda mode=mode: _layer(
            M.MixtureOfTokens(24, 5, 12, 4, temperature=0.7, mode=mode),
            "mot", ["B", "T", 24], torch.randn(8, 3, 24), lambda m, x: m(x)))
    for mode in ("path", "flat"):
        add(f"tree_{mode}", lambda mode=mode: _layer(
            M.TreeGatedLayer(16, 12, 3, mode=mode), "tree", ["N", 16],
            torch.randn(9, 16), lambda m, x: m(x)))
    # com.microsoft.MoE.
    for act, norm in (("relu", False), ("gelu", True), ("silu", True),
                      ("swiglu", True)):
        add(f"ort_moe_{act}", lambda act=act, norm=norm: _ort(
            OrtMoE(24, 16, 6, 2, activation=act, normalize=norm,
                   alpha=1.702 if act == "swiglu" else 1.0,
                   beta=1.0 if act == "swiglu" else 0.0,
                   limit=7.0 if act == "swiglu" else float("inf")),
            torch.randn(9, 24)))
    # MoEUT, G = 2, R = 2.
    add("moeut_tiny", _moeut)
    return specs


def _layer(module, kind, dims, x, call):
    with torch.no_grad():
        ref = call(module, x)
    return X.export_layer(module, kind, dims), {"x": x}, ref


def _ort(layer, x):
    return layer.export(), {"x": x}, layer.forward(x)


def _moeut():
    model = M.MoEUT(TINY_MOEUT)
    tokens = torch.randint(0, TINY_MOEUT.vocab, (2, 6))
    with torch.no_grad():
        ref = model(tokens)
    return X.export_moeut(model), {"tokens": tokens}, ref


def run_ort(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def generate(out_dir, only=None):
    os.makedirs(out_dir, exist_ok=True)
    manifest, failures = {}, []
    for name, build in _fixture_specs():
        if only and name not in only:
            continue
        torch.manual_seed(SEED + sum(map(ord, name)))  # per-fixture seed
        model, feeds, ref = build()
        feeds = {k: v.numpy() for k, v in feeds.items()}
        expected = run_ort(model, feeds)
        ref = ref.numpy()
        diff = float(np.max(np.abs(expected - ref))) if ref.size else 0.0
        ok = np.allclose(expected, ref, atol=ATOL, rtol=RTOL)
        if not ok:
            failures.append(f"{name}: ORT and torch differ by {diff:.3e}")
        output_name = model.graph.output[0].name
        with open(os.path.join(out_dir, f"{name}.onnx"), "wb") as f:
            f.write(model.SerializeToString())
        for k, v in feeds.items():
            np.save(os.path.join(out_dir, f"{name}.{k}.npy"), v)
        np.save(os.path.join(out_dir, f"{name}.{output_name}.npy"), expected)
        manifest[name] = {
            "model": f"{name}.onnx",
            "inputs": {k: list(v.shape) for k, v in feeds.items()},
            "output": output_name,
            "output_shape": list(expected.shape),
            "max_abs_diff_ort_vs_torch": diff,
            "atol": ATOL, "rtol": RTOL,
        }
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    return manifest, failures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(
        os.path.dirname(__file__), "..", "..", "test", "fixtures"))
    parser.add_argument("--only", nargs="*", help="fixture names")
    args = parser.parse_args(argv)
    manifest, failures = generate(args.out, args.only)
    for name, entry in sorted(manifest.items()):
        print(f"{name:24s} max |ort - torch| = "
              f"{entry['max_abs_diff_ort_vs_torch']:.2e}")
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    print(f"fixtures: {len(manifest)} written to {os.path.normpath(args.out)},"
          f" {len(failures)} beyond tolerance")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

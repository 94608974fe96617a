#!/usr/bin/env python3
"""MoEUT compiled with its repeats as a loop (moe-roll-repeats) against the
same model compiled layer by layer (moe-compile --no-roll) and against ONNX
Runtime.

usage: roll_repeats.py --bin BUILD/bin

For several (layers, G) shapes of a small MoEUT (python/moe_ref, seeded,
exported with export_moeut), checks that
  - moe-compile --emit=moe holds one loop marked `moe.repeats = R`
    (R = layers / G), and none with --no-roll or when R = 1;
  - both artifacts match ONNX Runtime within |a - b| <= 1e-5 + 1e-4 |b|
    (docs/tolerance.md) at two token shapes (dynamic B and T);
  - the rolled and the unrolled code give the same bits (the loop runs the
    same ops in the same order).
Prints one line per case and "roll-repeats: N passed, M failed".
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..",
                                "python"))
from moe_ref import modules as M  # noqa: E402
from moe_ref.configs import MoEUTConfig  # noqa: E402
from moe_ref.onnx_export import export_moeut  # noqa: E402

ATOL, RTOL = 1e-5, 1e-4
# (layers, G)
SHAPES = [(6, 2), (6, 3), (4, 1), (2, 2)]
TOKENS = [(2, 7), (1, 13)]
VOCAB = 50


def compile_model(bin_dir, model, out, *flags):
    # -O1: the roll is checked on the MLIR side; clang's -O3 only costs time.
    subprocess.run([os.path.join(bin_dir, "moe-compile"), "-q", "--opt=1",
                    model, "-o", out, *flags], check=True,
                   capture_output=True)


def run(bin_dir, artifact, tokens, work):
    np.save(os.path.join(work, "tokens.npy"), tokens)
    out = os.path.join(work, "out")
    subprocess.run([os.path.join(bin_dir, "moe-run"), artifact, "--input",
                    "tokens=" + os.path.join(work, "tokens.npy"),
                    "--output-dir", out], check=True, capture_output=True)
    return np.load(os.path.join(out, "logits.npy"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    args = parser.parse_args()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    passed = failed = 0
    with tempfile.TemporaryDirectory() as work:
        for layers, group in SHAPES:
            name = f"L{layers}_G{group}"
            cfg = MoEUTConfig(d_model=32, n_layers=layers, group=group,
                              ff_experts=6, expert_size=8, ff_k=2, n_heads=2,
                              head_dim=10, att_experts=3, att_k=2,
                              vocab=VOCAB)
            net = M.MoEUT(cfg).eval()
            model = os.path.join(work, name + ".onnx")
            onnx.save(export_moeut(net), model)
            problems = []
            repeats = layers // group
            for flags, expect in (((), repeats if repeats > 1 else None),
                                  (("--no-roll",), None)):
                ir = os.path.join(work, name + ".mlir")
                compile_model(args.bin, model, ir, "--emit=moe", *flags)
                with open(ir) as f:
                    marks = re.findall(r"moe\.repeats = (\d+)", f.read())
                want = [str(expect)] if expect else []
                if marks != want:
                    problems.append(f"{' '.join(flags) or 'default'}: loops "
                                    f"{marks}, expected {want}")
            rolled = os.path.join(work, name + ".moeb")
            unrolled = os.path.join(work, name + ".noroll.moeb")
            compile_model(args.bin, model, rolled)
            compile_model(args.bin, model, unrolled, "--no-roll")
            session = ort.InferenceSession(model)
            for b, t in TOKENS:
                tokens = rng.integers(0, VOCAB, size=(b, t), dtype=np.int64)
                expected = session.run(None, {"tokens": tokens})[0]
                got = run(args.bin, rolled, tokens, work)
                ref = run(args.bin, unrolled, tokens, work)
                for label, value in (("rolled", got), ("unrolled", ref)):
                    err = np.abs(value - expected) - (ATOL +
                                                      RTOL * np.abs(expected))
                    if value.shape != expected.shape or err.max() > 0:
                        problems.append(f"{label} [{b}, {t}] vs ORT: max "
                                        f"excess {err.max():.3g}")
                if not np.array_equal(got, ref):
                    problems.append(f"[{b}, {t}] rolled != unrolled bitwise "
                                    f"(max {np.abs(got - ref).max():.3g})")
            if problems:
                failed += 1
                print(f"FAIL {name}: " + "; ".join(problems))
            else:
                passed += 1
                print(f"ok {name} (R = {repeats})")
    print(f"roll-repeats: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

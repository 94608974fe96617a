#!/usr/bin/env python3
"""Compiles MODEL with moe-compile, runs it with moe-run on generated inputs
and compares every output with ONNX Runtime on the same model and inputs.

usage: ort_compare.py --bin BUILD/bin MODEL [NAME=DIMS[:DTYPE[:HIGH]] ...]
                      [--and "NAME=DIMS ..." ...] [--compile-arg ARG ...]
                      [--expect-error TEXT [--ort-accepts]]

DIMS is a comma-separated shape ("2,1,3"; "" for a scalar), DTYPE f32 or
i64 (default f32), HIGH the exclusive upper bound of generated integers.
Without --expect-error both must succeed and agree within
|got - want| <= 1e-5 + 1e-4 |want| (docs/tolerance.md), NaN exactly where
ONNX Runtime gives NaN and the same infinity where it gives one. With it, moe-run
must fail (non-zero exit) with TEXT in its error; ONNX Runtime is then
expected to refuse the inputs too, unless --ort-accepts is given (a
documented case that moe-run refuses where ONNX Runtime computes; ONNX
Runtime must then accept the inputs).
Each --and names one more set of inputs, run on the same artifact (a model
with dynamic axes, compiled once, at several sizes). --compile-arg passes
ARG to moe-compile. Prints one line per input set and exits 1 on any
disagreement.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnxruntime as ort

ort.set_default_logger_severity(4)  # its refusals are expected here

ATOL, RTOL = 1e-5, 1e-4


def make_feeds(specs, rng):
    feeds = {}
    for spec in specs:
        name, rest = spec.split("=", 1)
        parts = rest.split(":")
        dims = tuple(int(d) for d in parts[0].split(",") if d)
        dtype = parts[1] if len(parts) > 1 else "f32"
        if dtype == "i64":
            high = int(parts[2]) if len(parts) > 2 else 4
            feeds[name] = rng.integers(0, high, size=dims, dtype=np.int64)
        else:
            feeds[name] = rng.standard_normal(dims).astype(np.float32)
    return feeds


def compare(a, artifact, work, specs, rng):
    feeds = make_feeds(specs, rng)
    label = os.path.basename(a.model) + " " + " ".join(specs)

    ort_error = None
    try:
        sess = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"])
        want = dict(zip([o.name for o in sess.get_outputs()],
                        sess.run(None, feeds)))
    except Exception as e:  # ONNX Runtime refuses the inputs
        ort_error = str(e).splitlines()[0][:200]

    out_dir = os.path.join(work, "out")
    if os.path.isdir(out_dir):
        for f in os.listdir(out_dir):
            os.remove(os.path.join(out_dir, f))
    cmd = [os.path.join(a.bin, "moe-run"), artifact, "--output-dir", out_dir]
    for name, value in feeds.items():
        path = os.path.join(work, name + ".npy")
        np.save(path, value)
        cmd += ["--input", f"{name}={path}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode < 0:
        print(f"FAIL {label}: moe-run died with signal {-proc.returncode}")
        return 1
    if a.expect_error is not None:
        if proc.returncode == 0:
            print(f"FAIL {label}: moe-run succeeded, expected an error")
            return 1
        if a.expect_error not in proc.stderr:
            print(f"FAIL {label}: moe-run error lacks '{a.expect_error}':"
                  f" {proc.stderr.strip()[:400]}")
            return 1
        last = proc.stderr.strip().splitlines()[-1][:160]
        if a.ort_accepts:
            if ort_error is not None:
                print(f"FAIL {label}: ONNX Runtime refuses these inputs too "
                      f"({ort_error}); drop --ort-accepts")
                return 1
            print(f"OK {label}: refused where ONNX Runtime computes ({last})")
            return 0
        if ort_error is None:
            print(f"FAIL {label}: ONNX Runtime accepts these inputs")
            return 1
        print(f"OK {label}: refused as ONNX Runtime does ({last})")
        return 0
    if proc.returncode != 0:
        also = (f" (ONNX Runtime refuses these inputs too: {ort_error}; "
                f"use --expect-error)" if ort_error is not None else "")
        print(f"FAIL {label}: moe-run: {proc.stderr.strip()[:400]}{also}")
        return 1
    if ort_error is not None:
        print(f"FAIL {label}: ONNX Runtime refuses ({ort_error}) but "
              f"moe-run succeeded")
        return 1
    for name, expected in want.items():
        got = np.load(os.path.join(out_dir, name + ".npy"))
        if got.shape != expected.shape:
            print(f"FAIL {label}: {name} shape {got.shape}, ONNX Runtime "
                  f"{expected.shape}")
            return 1
        if got.dtype.kind in "iub":
            ok = np.array_equal(got, expected)
        else:
            nan = np.isnan(expected)
            # Infinities must match exactly (inf - inf is NaN).
            inf = np.isinf(expected)
            finite = ~nan & ~inf
            ok = (np.array_equal(np.isnan(got), nan) and
                  np.array_equal(got[inf], expected[inf]) and np.all(
                      np.abs(got[finite] - expected[finite]) <=
                      ATOL + RTOL * np.abs(expected[finite])))
        if not ok:
            print(f"FAIL {label}: {name} differs from ONNX Runtime "
                  f"(max |diff| {np.max(np.abs(got.astype(np.float64) - expected)):.3g})")
            return 1
    print(f"OK {label}: matches ONNX Runtime")
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--expect-error")
    p.add_argument("--ort-accepts", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--and", dest="more", action="append", default=[])
    p.add_argument("--compile-arg", action="append", default=[])
    p.add_argument("model")
    p.add_argument("inputs", nargs="*")
    a = p.parse_args()
    if a.ort_accepts and a.expect_error is None:
        p.error("--ort-accepts goes with --expect-error")
    rng = np.random.default_rng(a.seed)
    with tempfile.TemporaryDirectory() as work:
        artifact = os.path.join(work, "m.moeb")
        proc = subprocess.run([os.path.join(a.bin, "moe-compile"), "-q",
                               *a.compile_arg, a.model, "-o", artifact],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"FAIL {os.path.basename(a.model)}: moe-compile: "
                  f"{proc.stderr.strip()[:400]}")
            return 1
        failed = 0
        for specs in [a.inputs] + [m.split() for m in a.more]:
            failed |= compare(a, artifact, work, specs, rng)
    return failed


if __name__ == "__main__":
    sys.exit(main())

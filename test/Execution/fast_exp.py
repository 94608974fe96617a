#!/usr/bin/env python3
"""exp as compiled code computes it, against float64 NumPy.

usage: fast_exp.py --bin BUILD/bin

moe-compile replaces f32 exp with upstream's polynomial approximation
(moe-approximate-math) where the target has FMA, so that softmax, sigmoid
and SiLU loops vectorize; --no-fast-exp and --reference keep libm's expf,
and so does a target without FMA (x86-64-v2). One module computes
y = exp(x) elementwise over a dynamic length; it is compiled at the host's
width, for x86-64-v3 where the host has AVX2 and FMA, for x86-64-v2, with
--no-fast-exp and with --reference, and run on:

  - about 1.1M inputs spread over the whole normal range [-87.33, 88.72]
    (not a multiple of any vector: the vector loop and its scalar rest);
  - the edges: -inf (a masked softmax score), +inf, NaN, 0 and -0,
    underflow below 2^-126, overflow above log(FLT_MAX).

Bounds, in units in the last place of the float32-rounded exact value:
libm at most 1 everywhere; the polynomial at most 1 on [-87.33, 80] and
at most 8 on [80, 88.72] (where its reduction runs out of exponent
range; docs/tolerance.md). Both: exp(-inf) = 0, exp(+inf) = +inf, NaN
stays NaN, exp(0) = exp(-0) = 1 exactly, results under 2^-126 are in
[0, 2^-126] (the polynomial flushes them to 0), results above FLT_MAX are
+inf. Prints one line per build and "fast-exp: N passed, M failed".
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

from host_features import host_has

MODULE = """#id = affine_map<(d0) -> (d0)>
func.func @main(%x: tensor<?xf32> {onnx.name = "x"})
    -> (tensor<?xf32> {onnx.name = "y"}) {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?xf32>
  %e = tensor.empty(%n) : tensor<?xf32>
  %y = linalg.generic {indexing_maps = [#id, #id],
                       iterator_types = ["parallel"]}
      ins(%x : tensor<?xf32>) outs(%e : tensor<?xf32>) {
  ^bb0(%a: f32, %o: f32):
    %r = math.exp %a : f32
    linalg.yield %r : f32
  } -> tensor<?xf32>
  return %y : tensor<?xf32>
}
"""

FLT_MIN = np.float32(2.0 ** -126)


def inputs():
    grid = np.linspace(-87.33, 88.72, 1000003, dtype=np.float32)
    rng = np.random.default_rng(0)
    mid = rng.uniform(-20, 20, 100001).astype(np.float32)
    edges = np.array([-np.inf, np.inf, np.nan, 0.0, -0.0, 1e-30, -1e-30,
                      -87.34, -87.9, -88.5, -100, -103.97, -1e30, 88.73,
                      89, 100, 1e30], dtype=np.float32)
    return np.concatenate([grid, mid, edges])


def check(x, y, polynomial):
    """Failures of `y` = exp(`x`) (a list of strings)."""
    bad = []
    with np.errstate(over="ignore"):
        ref = np.exp(x.astype(np.float64))
    normal = np.isfinite(x) & (x >= -87.33) & (x <= 88.72)
    ulp = np.spacing(ref[normal].astype(np.float32)).astype(np.float64)
    err = np.abs(y[normal].astype(np.float64) - ref[normal]) / ulp
    xs = x[normal]
    bounds = [(-87.33, 80.0, 1.0), (80.0, 88.72, 8.0)] if polynomial else \
        [(-87.33, 88.72, 1.0)]
    for lo, hi, limit in bounds:
        part = (xs >= lo) & (xs <= hi)
        worst = err[part].max()
        if worst > limit:
            at = xs[part][err[part].argmax()]
            bad.append(f"{worst:.2f} ulp at x = {at!r} on [{lo}, {hi}] "
                       f"(limit {limit})")
    def expect(cond, what):
        if not cond:
            bad.append(what)
    pick = lambda v: y[np.flatnonzero(x == v)]
    expect(np.all(pick(-np.inf) == 0), "exp(-inf) is not 0")
    expect(np.all(np.isposinf(pick(np.inf))), "exp(+inf) is not +inf")
    expect(np.all(np.isnan(y[np.isnan(x)])), "exp(NaN) is not NaN")
    expect(np.all(pick(0.0) == 1), "exp(0) is not 1")
    under = np.isfinite(x) & (x < -87.34)
    expect(np.all((y[under] >= 0) & (y[under] <= FLT_MIN)),
           "exp below -87.34 is not in [0, 2^-126]")
    over = np.isfinite(x) & (x > 88.73)
    expect(np.all(np.isposinf(y[over])), "exp above 88.73 is not +inf")
    return bad


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    args = parser.parse_args()
    compile_ = os.path.join(args.bin, "moe-compile")
    run = os.path.join(args.bin, "moe-run")
    # (name, moe-compile flags, polynomial expected)
    builds = [("host", [], host_has("fma") or host_has("avx512f")),
              ("x86-64-v2", ["--march=x86-64-v2"], False),
              ("no-fast-exp", ["--no-fast-exp"], False),
              ("reference", ["--reference"], False)]
    if host_has("avx2") and host_has("fma"):
        builds.insert(1, ("x86-64-v3", ["--march=x86-64-v3"], True))
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "exp.mlir")
        with open(src, "w") as f:
            f.write(MODULE)
        x = inputs()
        np.save(os.path.join(tmp, "x.npy"), x)
        for name, flags, polynomial in builds:
            art = os.path.join(tmp, name + ".moeb")
            out = os.path.join(tmp, "out-" + name)
            bad = []
            try:
                subprocess.run([compile_, "-q", src, "-o", art] + flags,
                               check=True, capture_output=True, text=True)
                # Which exp the build has: the polynomial leaves no expf.
                obj = subprocess.run(
                    [compile_, "-q", src, "--emit=llvm", "-o", "-"] + flags,
                    check=True, capture_output=True, text=True).stdout
                if ("@llvm.exp.f32" in obj) == polynomial:
                    bad.append("expected the %s" %
                               ("polynomial" if polynomial else "libm call"))
                subprocess.run([run, art, "--input",
                                "x=" + os.path.join(tmp, "x.npy"),
                                "--output-dir", out],
                               check=True, capture_output=True, text=True)
                y = np.load(os.path.join(out, "y.npy"))
                bad += check(x, y, polynomial)
            except subprocess.CalledProcessError as e:
                bad.append(f"{e.cmd[0]} failed: {e.stderr.strip()}")
            kind = "polynomial" if polynomial else "libm"
            if bad:
                failed += 1
                print(f"FAIL {name} ({kind}): " + "; ".join(bad))
            else:
                passed += 1
                print(f"ok {name} ({kind})")
    print(f"fast-exp: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

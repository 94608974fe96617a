#!/usr/bin/env python3
"""moe.route in one loop over rows (convert-moe-to-linalg{fuse-routing},
moe-compile's default) against the reference's passes
(moe-compile --no-fuse-routing) and the reference lowering (--reference).

usage: fused_routing.py --bin BUILD/bin

One module routes an input of scores [N, 12] four ways: gate<softmax>
with k = 3, gate<sigmoid> over three groups of four experts with k = 2,
gate<topk_softmax> with k = 4, and gate<softmax> over two groups of six
with k = 2. It is compiled with the default
pipeline, with --no-fuse-routing and with --reference, and run with 1 and
2 threads on inputs that exercise every path of the selection: random
scores (N = 1, 7, 300: more rows than any chunk of the thread pool), exact
ties, rows with NaN, with -inf, with +inf, rows that are all equal, and
rows of very negative scores (their softmax underflows to zero, a tie of
many). The default's weights and ids must be bitwise those of
--no-fuse-routing (same arithmetic in the same order) on 1 and 2 threads;
ids must equal --reference's and weights agree within 1e-6 + 1e-5 |b| on
the random inputs (--reference evaluates exp with the C library's expf,
the optimised pipeline with its own polynomial). Prints one line per input
and "fused-routing: P passed, F failed".
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

MODULE = """
func.func @main(%s: tensor<?x12xf32> {onnx.name = "s"})
    -> (tensor<?x3xf32> {onnx.name = "w_softmax"},
        tensor<?x3xi32> {onnx.name = "i_softmax"},
        tensor<?x6xf32> {onnx.name = "w_sigmoid"},
        tensor<?x6xi32> {onnx.name = "i_sigmoid"},
        tensor<?x4xf32> {onnx.name = "w_topk_softmax"},
        tensor<?x4xi64> {onnx.name = "i_topk_softmax"},
        tensor<?x4xf32> {onnx.name = "w_softmax_groups"},
        tensor<?x4xi32> {onnx.name = "i_softmax_groups"}) {
  %w0, %i0 = moe.route %s gate<softmax> {k = 3 : i64}
      : tensor<?x12xf32> -> tensor<?x3xf32>, tensor<?x3xi32>
  %w1, %i1 = moe.route %s gate<sigmoid> {k = 2 : i64, groups = 3 : i64}
      : tensor<?x12xf32> -> tensor<?x6xf32>, tensor<?x6xi32>
  %w2, %i2 = moe.route %s gate<topk_softmax> {k = 4 : i64}
      : tensor<?x12xf32> -> tensor<?x4xf32>, tensor<?x4xi64>
  %w3, %i3 = moe.route %s gate<softmax> {k = 2 : i64, groups = 2 : i64}
      : tensor<?x12xf32> -> tensor<?x4xf32>, tensor<?x4xi32>
  return %w0, %i0, %w1, %i1, %w2, %i2, %w3, %i3
      : tensor<?x3xf32>, tensor<?x3xi32>, tensor<?x6xf32>, tensor<?x6xi32>,
        tensor<?x4xf32>, tensor<?x4xi64>, tensor<?x4xf32>, tensor<?x4xi32>
}
"""
NAMES = ["w_softmax", "i_softmax", "w_sigmoid", "i_sigmoid",
         "w_topk_softmax", "i_topk_softmax", "w_softmax_groups",
         "i_softmax_groups"]


def inputs(rng):
    cases = {}
    for n in (1, 7, 300):
        cases[f"random N={n}"] = rng.standard_normal((n, 12)).astype(np.float32)
    # Exact ties: few distinct values.
    cases["ties"] = rng.integers(-2, 3, (40, 12)).astype(np.float32)
    special = rng.standard_normal((24, 12)).astype(np.float32)
    special[0, 5] = np.nan
    special[1, :] = np.nan
    special[2, 3] = -np.inf
    special[3, [1, 7, 9]] = -np.inf
    special[4, :] = -np.inf
    special[5, 2] = np.inf
    special[6, [4, 8]] = np.inf
    special[7, :] = 1.5
    special[8, :] = 0.0
    special[9, 6] = np.nan
    special[9, 0] = -np.inf
    cases["NaN, inf, equal rows"] = special
    # The softmax of these underflows to 0 in every column but the best
    # few: a tie of zeros below the selection.
    under = rng.standard_normal((16, 12)).astype(np.float32) * 60.0
    under[:, 0] = 120.0
    cases["underflow"] = under
    return cases


def run(bin_dir, artifact, x, out, threads):
    os.makedirs(out, exist_ok=True)
    np.save(os.path.join(out, "s.npy"), x)
    subprocess.run([os.path.join(bin_dir, "moe-run"), artifact,
                    "--input", "s=" + os.path.join(out, "s.npy"),
                    "--threads", str(threads), "--output-dir", out],
                   check=True, capture_output=True)
    return {n: np.load(os.path.join(out, n + ".npy")) for n in NAMES}


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and \
        a.tobytes() == b.tobytes()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    passed = failed = 0
    with tempfile.TemporaryDirectory() as work:
        src = os.path.join(work, "route.mlir")
        with open(src, "w") as f:
            f.write(MODULE)
        arts = {}
        for kind, flags in (("fused", []), ("passes", ["--no-fuse-routing"]),
                            ("ref", ["--reference"])):
            arts[kind] = os.path.join(work, kind + ".moeb")
            # (--parallel-min-work=0: every parallel loop split, at these
            # small shapes too.)
            subprocess.run([os.path.join(args.bin, "moe-compile"), "-q",
                            "--parallel-min-work=0", *flags, src, "-o",
                            arts[kind]], check=True)
        # The default did fuse: no linalg.generic reduction is left for
        # the softmax gates (the passes have two per softmax, which
        # --no-fuse-routing must show, or this check could not fail).
        def reductions(*flags):
            return subprocess.run(
                [os.path.join(args.bin, "moe-compile"), "-q", *flags, src,
                 "--emit=linalg", "-o", "-"], check=True,
                capture_output=True, text=True).stdout.count('"reduction"')
        if reductions() != 0 or reductions("--no-fuse-routing") == 0:
            print("FAIL the default pipeline left a reduction, or "
                  "--no-fuse-routing has none: not fused")
            failed += 1
        for name, x in inputs(rng).items():
            out = {}
            for kind in arts:
                for t in (1, 2):
                    out[kind, t] = run(args.bin, arts[kind], x,
                                       os.path.join(work, f"{kind}{t}"), t)
            problems = []
            for n in NAMES:
                for t in (1, 2):
                    if not same_bits(out["fused", t][n], out["passes", 1][n]):
                        problems.append(f"{n}: fused ({t} threads) != "
                                        "--no-fuse-routing")
                if name.startswith("random"):
                    a, b = out["fused", 1][n], out["ref", 1][n]
                    if n.startswith("i_"):
                        if not np.array_equal(a, b):
                            problems.append(f"{n}: ids differ from "
                                            "--reference")
                    elif not np.allclose(a, b, rtol=1e-5, atol=1e-6):
                        problems.append(
                            f"{n}: max |diff| {np.abs(a - b).max():.3g} "
                            "against --reference")
            if problems:
                failed += 1
                print(f"FAIL {name}: " + "; ".join(problems))
            else:
                passed += 1
                print(f"ok   {name} [{x.shape[0]} rows]")
    print(f"fused-routing: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Differential test of the optimised CPU lowering against the reference,
and of its parallel loops (the default: on the runtime's thread pool)
against its sequential code (moe-compile --no-parallel-loops; bitwise).

usage: cpu_vs_reference.py --bin BUILD/bin

Writes com.microsoft.MoE layers (python/moe_ref/ort_moe.py, seeded) at
shapes that no fixture has: odd widths, more experts than tokens, k = E,
one expert, N = 1, N not a multiple of any vector width, all tokens on one
expert, expert segments of more and fewer rows than a register tile, widths
that leave a partial column tile. Each is compiled with moe-compile (the
host's vector width: moe-cpu-tile-contractions' register tiles, and
moe-cpu-loop-order), with --no-tile (the loop path only), with
--no-sorted-experts (rows back in slot order between the two projections,
bitwise equal to the default), with --no-fuse-epilogues (the bias and
activation as a second pass over each expert's output, bitwise equal to the
default, which must have fused some: fewer linalg.generic ops in its
--emit=buffers), with --no-pack-weights, --no-remainder-tiles,
--panel-columns=64 and --no-merge-tail-slices (each bitwise equal to
--no-accumulator-chains: the default's narrow one-row tiles sum in another
order), with
--no-prefetch-panels and with --no-fuse-expert-pairs (each bitwise equal to
the default, which must run relu and silu layers' two projections in one
loop over experts), for
x86-64-v2 (128-bit tiles) and, where the host has AVX2, x86-64-v3 (256-bit
tiles), with --no-parallel-loops and with --reference; each runs under moe-run
with 1 and 2 threads, and the outputs are compared with the reference and
with ONNX Runtime within |a - b| <= 1e-5 + 1e-4 |b| (docs/tolerance.md);
the runs at 1 and 2 threads must be bitwise equal. Every build but one
("default") compiles with --parallel-min-work=0, so that its parallel loops
split at these small shapes; "default" keeps moe-compile's work threshold
and must be bitwise equal to the others. Prints one line per case and
"differential: N passed, M failed".
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..",
                                "python"))
from moe_ref.ort_moe import OrtMoE  # noqa: E402
from host_features import host_has  # noqa: E402

ATOL, RTOL = 1e-5, 1e-4
# (hidden, inter, experts, k, activation, tokens, one expert for all)
CASES = [
    (67, 33, 9, 3, "relu", [1, 7, 64], False),
    (40, 17, 3, 3, "gelu", [5, 33], False),      # k = E
    (24, 9, 1, 1, "silu", [1, 19], False),       # one expert
    (31, 12, 40, 2, "swiglu", [3, 70], False),   # E > N k
    (48, 16, 6, 2, "relu", [65], True),          # all tokens on one expert
    (100, 70, 4, 2, "relu", [37], False),        # 2 full row tiles + rows
    # Weights in column panels as wide as a register tile
    # (moe-pack-expert-weights): with AVX2 the up projection's 80 columns
    # as five panels of 16 (a panel across the two SwiGLU halves), the
    # down projection's 300 as 18 panels and a tail of 12 (4 panels of 64
    # and a tail of 44 with AVX-512). In the "p64" variant's 64-column
    # panels (--panel-columns=64), 67 and 70 (above) are left as
    # they are (a tail of 3 or 6 would join the only panel).
    (300, 40, 5, 2, "swiglu", [1, 9], False),
    # A narrow tail joins the last panel: 516 columns as 31 panels of 16
    # and a tail of 20 (AVX2), 7 panels of 64 and a tail of 68 (AVX-512).
    (516, 24, 3, 2, "relu", [5], False),
]


def run(bin_dir, artifact, x, out, threads):
    np.save(os.path.join(out, "x.npy"), x)
    subprocess.run([os.path.join(bin_dir, "moe-run"), artifact,
                    "--input", "x=" + os.path.join(out, "x.npy"),
                    "--threads", str(threads), "--output-dir", out],
                   check=True, capture_output=True)
    return np.load(os.path.join(out, "y.npy"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    args = parser.parse_args()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    passed = failed = 0
    with tempfile.TemporaryDirectory() as work:
        for ci, (h, i, e, k, act, tokens, skewed) in enumerate(CASES):
            layer = OrtMoE(h, i, e, k, act)
            if skewed:  # the router sends every token to expert 0 first
                layer.router = torch.zeros_like(layer.router)
                layer.router[:, 0] = 1.0
            model = os.path.join(work, f"m{ci}.onnx")
            onnx.save(layer.export(), model)
            arts = {}
            # Every build but "default" splits its parallel loops whatever
            # their work (--parallel-min-work=0): at these small shapes
            # the default's work threshold leaves most loops one chunk.
            variants = [("opt", []), ("default", []),
                        ("ref", ["--reference"]),
                        ("seq", ["--no-parallel-loops"]),
                        ("notile", ["--no-tile"]),
                        ("unsorted", ["--no-sorted-experts"]),
                        ("unfused", ["--no-fuse-epilogues"]),
                        ("nochains", ["--no-accumulator-chains"]),
                        ("rowmajor", ["--no-pack-weights",
                                      "--no-accumulator-chains"]),
                        ("norem", ["--no-remainder-tiles",
                                   "--no-accumulator-chains"]),
                        ("p64", ["--panel-columns=64",
                                 "--no-accumulator-chains"]),
                        ("nomerge", ["--no-merge-tail-slices",
                                     "--no-accumulator-chains"]),
                        ("nopanelpf", ["--no-prefetch-panels"]),
                        ("nopairs", ["--no-fuse-expert-pairs"]),
                        ("v2", ["--march=x86-64-v2"])]
            if host_has("avx2") and host_has("fma"):
                variants.append(("v3", ["--march=x86-64-v3"]))
            elif ci == 0:
                print("NOTE host lacks AVX2: the 256-bit tiles are not run")
            for kind, flags in variants:
                arts[kind] = os.path.join(work, f"m{ci}.{kind}.moeb")
                split = [] if kind == "default" else ["--parallel-min-work=0"]
                subprocess.run([os.path.join(args.bin, "moe-compile"), "-q",
                                *split, *flags, model, "-o", arts[kind]],
                               check=True)
            # The epilogues did fuse: the default's buffers have fewer
            # linalg.generic ops (each expert matmul's bias and
            # activation) than --no-fuse-epilogues's.
            generics = {}
            for kind, flags in (("opt", []),
                                ("unfused", ["--no-fuse-epilogues"])):
                generics[kind] = subprocess.run(
                    [os.path.join(args.bin, "moe-compile"), "-q", *flags,
                     model, "--emit=buffers", "-o", "-"], check=True,
                    capture_output=True, text=True).stdout.count(
                        "linalg.generic")
            fused = generics["opt"] < generics["unfused"]
            # The two projections share one loop over experts where
            # nothing sits between them: relu and silu are the up
            # projection's epilogue; ORT's tanh gelu and swiglu stay
            # linalg.generics after it (the hidden result, given back
            # after the loop: bufferization.dealloc_tensor).
            paired = "bufferization.dealloc_tensor" in subprocess.run(
                [os.path.join(args.bin, "moe-compile"), "-q", model,
                 "--emit=linalg", "-o", "-"], check=True,
                capture_output=True, text=True).stdout
            # Expert weights with a full panel (a register tile's width:
            # 16 columns with AVX2, 64 with AVX-512, 8 without AVX) left
            # after a tail narrower than a vector joins the last one are
            # in panels (moe-compile's vectorBitsFor and
            # registerTileColumns).
            if host_has("avx512f"):
                lanes, width = 16, 64
            elif host_has("avx") or host_has("avx2"):
                lanes, width = 8, 16
            else:
                lanes, width = 4, 8
            def panels(cols):
                return (cols // width
                        - (1 if 0 < cols % width < lanes else 0))
            wide = max(panels(h),
                       panels(i * (2 if act == "swiglu" else 1))) >= 1
            packed = "moe.unpack_panels" in subprocess.run(
                [os.path.join(args.bin, "moe-compile"), "-q", model,
                 "--emit=moe", "-o", "-"], check=True, capture_output=True,
                text=True).stdout
            ref_ort = ort.InferenceSession(
                model, providers=["CPUExecutionProvider"])
            for n in tokens:
                x = rng.standard_normal((n, h), dtype=np.float32)
                if skewed:
                    x = np.abs(x) + 0.1
                outs = {}
                kinds = [kind for kind, _ in variants]
                for kind in kinds:
                    for threads in (1, 2):
                        d = os.path.join(work, f"{ci}-{n}-{kind}-{threads}")
                        os.makedirs(d)
                        outs[kind, threads] = run(args.bin, arts[kind], x, d,
                                                  threads)
                want = ref_ort.run(None, {"x": x})[0]
                ok = True
                why = []
                # Variants whose code must compute the same bits as
                # another's, each with why; the one-thread runs compared.
                bitwise = [
                    # Splitting loops over threads changes no bit.
                    ("seq", "opt",
                     "parallel loops differ from the sequential code"),
                    # Fewer chunks for loops with little work: the same
                    # iterations.
                    ("default", "opt",
                     "the default's work threshold changes bits"),
                    # Rows kept in expert order between the two
                    # projections (moe-sort-expert-layouts) go through the
                    # same arithmetic.
                    ("unsorted", "opt",
                     "--no-sorted-experts differs from the default"),
                    # The bias and activation on the register tiles run
                    # the generic's ops in its order, as the second pass
                    # did.
                    ("unfused", "opt",
                     "--no-fuse-epilogues differs from the default"),
                    # Panels change where the weights are read, not the
                    # sums, and an expert's last rows in one tile
                    # (remainder tiles) sum as their one-row tiles did,
                    # both with one set of accumulators (the default's
                    # narrow one-row tiles rotate over four: another
                    # order, checked against ORT).
                    ("rowmajor", "nochains",
                     "--no-pack-weights differs from the default "
                     "(both --no-accumulator-chains)"),
                    ("norem", "nochains",
                     "--no-remainder-tiles differs from the default "
                     "(both --no-accumulator-chains)"),
                    ("p64", "nochains",
                     "--panel-columns=64 differs from the default "
                     "(both --no-accumulator-chains)"),
                    # A split column tail's narrow slices in one
                    # full-width accumulator: each lane the same FMAs
                    # (with chains on, a one-row tail's sets are counted
                    # after the merge: another order).
                    ("nomerge", "nochains",
                     "--no-merge-tail-slices differs from the default "
                     "(both --no-accumulator-chains)"),
                    # The two projections in one loop over experts
                    # compute every row as the two loops do.
                    ("nopairs", "opt",
                     "--no-fuse-expert-pairs differs from the default"),
                    # A prefetch is a hint.
                    ("nopanelpf", "opt",
                     "--no-prefetch-panels differs from the default"),
                ]
                for a, b, message in bitwise:
                    if not np.array_equal(outs[a, 1], outs[b, 1]):
                        ok = False
                        why.append(message)
                if paired != (act in ("relu", "silu")):
                    ok = False
                    why.append("the two projections "
                               + ("" if paired else "not ")
                               + "in one loop over experts")
                if packed != wide:
                    ok = False
                    why.append("weights with a full panel "
                               + ("not " if wide else "") + "in panels")
                if not fused:
                    ok = False
                    why.append(f"no epilogue fused ({generics['opt']} "
                               f"linalg.generic, {generics['unfused']} "
                               "with --no-fuse-epilogues)")
                for kind in kinds:
                    if not np.array_equal(outs[kind, 1], outs[kind, 2]):
                        ok = False
                        why.append(f"{kind}: 1 and 2 threads differ")
                pairs = [(f"{kind} vs ref", outs[kind, 1], outs["ref", 1])
                         for kind in kinds if kind != "ref"]
                pairs += [("opt vs ORT", outs["opt", 1], want),
                          ("ref vs ORT", outs["ref", 1], want)]
                for name, a, b in pairs:
                    if not np.allclose(a, b, atol=ATOL, rtol=RTOL):
                        ok = False
                        why.append(f"{name}: max diff "
                                   f"{np.abs(a - b).max():.3g}")
                label = f"D={h} I={i} E={e} k={k} {act} N={n}" + (
                    " skewed" if skewed else "")
                if ok:
                    passed += 1
                    print(f"PASS {label}")
                else:
                    failed += 1
                    print(f"FAIL {label}: " + "; ".join(why))
    print(f"differential: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

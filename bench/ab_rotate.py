#!/usr/bin/env python3
"""A/B timing of artifacts of one expert layer over rotating random inputs.

usage: ab_rotate.py A.moeb B.moeb [C.moeb ...] --n N [--threads T]
                    [--rounds R] [--calls C] [--width D] [--input x]

bench/ab.py times one input file. At small N that input selects the same
experts on every call, so their weights stay in the last-level cache and
the call looks faster than a real one (a decode step, a short batch). Here
each call takes the next of 32 seeded random inputs [N, D] (2 when N > 8),
so the selected experts change from call to call. The artifacts run in
one process (moe_mlir.InferenceSession), alternated: round r runs them in
order, round r + 1 in reverse, each 10 warm-up calls and then C timed
ones; a round's figure is the median call. Prints each artifact's round
medians and the median of those. Compare only figures of one run: these
machines drift by 10-30% between runs. The artifacts are loaded from
fresh copies written one after the other (a file written later was seen
to run faster than its byte-identical original).
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "python"))
import moe_mlir  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifacts", nargs="+")
    ap.add_argument("--n", type=int, default=1, help="tokens per call")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--width", type=int, default=412,
                    help="the input's last dim (MoEUT-44M: 412)")
    ap.add_argument("--input", default="x", help="the input's name")
    a = ap.parse_args()
    if a.n < 1 or a.rounds < 1 or a.calls < 1 or a.threads < 1:
        ap.error("--n, --threads, --rounds and --calls must be positive")
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((a.n, a.width), dtype=np.float32)
              for _ in range(32 if a.n <= 8 else 2)]
    # Fresh copies of the artifacts, written one after the other: the
    # weights are read from the mapped file, and a file written minutes
    # later ran faster than its byte-identical original (MoEUT-44M
    # decode, 85.2 against 81.3 tokens/s, 8 of 10 rounds), so the side
    # compiled last would win part of every comparison.
    copies = tempfile.TemporaryDirectory()
    paths = []
    for i, path in enumerate(a.artifacts):
        paths.append(os.path.join(copies.name, f"{i}.moeb"))
        shutil.copyfile(path, paths[-1])
    sessions = [moe_mlir.InferenceSession(p, threads=a.threads)
                for p in paths]
    medians = {p: [] for p in a.artifacts}
    for r in range(a.rounds):
        order = range(len(sessions))
        if r % 2:
            order = reversed(order)
        for i in order:
            s = sessions[i]
            for j in range(10):
                s.run(None, {a.input: inputs[j % len(inputs)]})
            times = []
            for j in range(a.calls):
                t0 = time.perf_counter()
                s.run(None, {a.input: inputs[j % len(inputs)]})
                times.append(time.perf_counter() - t0)
            medians[a.artifacts[i]].append(np.median(times) * 1e3)
    for p in a.artifacts:
        print(f"{p:30s} " + " ".join(f"{v:.3f}" for v in medians[p])
              + f"   median {np.median(medians[p]):.3f} ms")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Two artifacts of the same model, timed in alternation: is B faster than A?

usage: .venv/bin/python bench/ab.py A.moeb B.moeb --input NAME=FILE.npy ...
       [--threads 1] [--rounds 10] [--repeats 15] [--warmup 2]

The machines this project runs on are shared virtual machines whose speed
drifts by 10% and more within minutes, so a change of a few percent cannot
be read from one run of each. This runs `moe-run --benchmark` on A and B in
turns (A B B A A B ..., so that neither side always goes first), each run
in a fresh process, and reports per round the two p50s and the ratio B / A,
then the median ratio, how many rounds B won, and a sign-test p-value (the
chance of at least that many wins, or losses, if A and B were the same).
A ratio below 1 means B is faster; equal p50s are ties, left out of the
sign test. Both artifacts must give the same outputs (checked bitwise
once, unless --no-compare: builds for other targets or with other
rounding, e.g. --march or --no-tile, differ in the last bits). Both are
timed as fresh copies written one after the other: a file written later
was seen to run faster than its byte-identical original.
"""
import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
build = os.environ.get("MOE_BUILD_DIR", os.path.join(root, "build"))
moe_run = os.path.join(build, "bin", "moe-run")


def p50(artifact, inputs, threads, warmup, repeats):
    r = subprocess.run(
        [moe_run, artifact, *inputs, "--threads", str(threads), "--benchmark",
         "--warmup", str(warmup), "--repeats", str(repeats)],
        capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"moe-run {artifact} failed:\n{r.stderr}")
    out = r.stdout
    line = [l for l in out.splitlines() if l.startswith("benchmark:")][-1]
    return float(line.split("p50 ")[1].split(" ms")[0])


def sign_test(wins, n):
    """Two-sided: P(at least max(wins, n - wins) of n fair coin flips) x 2."""
    k = max(wins, n - wins)
    tail = sum(math.comb(n, i) for i in range(k, n + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--input", action="append", default=[],
                   help="NAME=FILE.npy, as moe-run takes it")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=10,
                   help="an even number gives each side the first turn "
                        "equally often")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--no-compare", action="store_true")
    a = p.parse_args()
    if a.rounds < 1:
        p.error("--rounds must be at least 1")
    inputs = [x for spec in a.input for x in ("--input", spec)]
    # Fresh copies of the artifacts, written one after the other: the
    # weights are read from the mapped file, and a file written minutes
    # later ran faster than its byte-identical original (MoEUT-44M
    # decode, 85.2 against 81.3 tokens/s, 8 of 10 rounds), so the side
    # compiled last would win part of every comparison.
    copies = tempfile.TemporaryDirectory()
    shown = {"a": a.a, "b": a.b}
    for side in ("a", "b"):
        dst = os.path.join(copies.name, side + ".moeb")
        shutil.copyfile(getattr(a, side), dst)
        setattr(a, side, dst)
    if not a.no_compare:
        with tempfile.TemporaryDirectory() as work:
            outs = []
            for name, art in (("a", a.a), ("b", a.b)):
                d = os.path.join(work, name)
                r = subprocess.run([moe_run, art, *inputs, "--threads",
                                    str(a.threads), "--output-dir", d],
                                   capture_output=True, text=True)
                if r.returncode:
                    sys.exit(f"moe-run {art} failed:\n{r.stderr}")
                outs.append({f: open(os.path.join(d, f), "rb").read()
                             for f in sorted(os.listdir(d))})
            if outs[0] != outs[1]:
                print("the two artifacts' outputs differ (--no-compare to "
                      "time them anyway)", file=sys.stderr)
                return 1
    print(f"A = {shown['a']}\nB = {shown['b']}\n{a.threads} thread(s), "
          f"moe-run --benchmark "
          f"--warmup {a.warmup} --repeats {a.repeats}, p50 per run\n")
    print("| round | A ms | B ms | B / A |")
    print("|---|---|---|---|")
    ratios = []
    for r in range(a.rounds):
        order = ("a", "b") if r % 2 == 0 else ("b", "a")
        t = {}
        for side in order:
            t[side] = p50(a.a if side == "a" else a.b, inputs, a.threads,
                          a.warmup, a.repeats)
        ratios.append(t["b"] / t["a"])
        print(f"| {r + 1} | {t['a']:.3f} | {t['b']:.3f} | {ratios[-1]:.3f} |",
              flush=True)
    wins = sum(1 for x in ratios if x < 1)
    ties = sum(1 for x in ratios if x == 1)
    n = len(ratios) - ties  # the sign test leaves ties out
    print(f"\nmedian B / A {statistics.median(ratios):.3f}; B faster in "
          f"{wins} of {len(ratios)} rounds ({ties} ties); sign test p = "
          f"{sign_test(wins, n) if n else 1.0:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

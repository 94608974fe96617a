#!/usr/bin/env python3
"""Any ONNX model: moe-mlir artifacts against ONNX Runtime on the same file.

usage: .venv/bin/python bench/onnx_vs_ort.py MODEL.onnx A.moeb [B.moeb ...]
       --input NAME=FILE.npy ... [--threads 1] [--rounds 5] [--repeats 5]

For models that are not a single MoE layer or MoEUT (bench/raise_exports.py,
bench/moeut44m.py): a Hugging Face causal LM exported with
torch.onnx.export, say. Each round runs ONNX Runtime (in this process,
intra-op threads = --threads, sequential execution) and then `moe-run
--benchmark` of every artifact (a fresh process each), in an order that
rotates from round to round, and takes each one's p50 over --repeats runs
after two warm-ups. Prints the median over rounds of each p50, ORT time /
artifact time, and the largest difference of each artifact's first output
from ORT's (moe-run --output-dir).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
build = os.environ.get("MOE_BUILD_DIR", os.path.join(root, "build"))
moe_run = os.path.join(build, "bin", "moe-run")

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("model")
p.add_argument("artifacts", nargs="+")
p.add_argument("--input", action="append", required=True,
               help="NAME=FILE.npy, as moe-run takes it")
p.add_argument("--threads", type=int, default=1)
p.add_argument("--rounds", type=int, default=5)
p.add_argument("--repeats", type=int, default=5)
a = p.parse_args()

feeds = {}
for spec in a.input:
    name, _, path = spec.partition("=")
    feeds[name] = np.load(path)
opts = ort.SessionOptions()
opts.intra_op_num_threads = a.threads
opts.inter_op_num_threads = 1
opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
sess = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
want = sess.run(None, feeds)[0]


def ort_p50():
    for _ in range(2):
        sess.run(None, feeds)
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def moe_p50(artifact):
    r = subprocess.run(
        [moe_run, artifact, *[x for s in a.input for x in ("--input", s)], "--threads",
         str(a.threads), "--benchmark", "--warmup", "2", "--repeats",
         str(a.repeats)], capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"moe-run {artifact} failed:\n{r.stderr}")
    line = [l for l in r.stdout.splitlines() if l.startswith("benchmark:")][-1]
    return float(line.split("p50 ")[1].split(" ms")[0])


diffs = {}
with tempfile.TemporaryDirectory() as work:
    for art in a.artifacts:
        out = os.path.join(work, os.path.basename(art))
        r = subprocess.run([moe_run, art, *[x for s in a.input for x in ("--input", s)],
                            "--output-dir", out], capture_output=True,
                           text=True)
        if r.returncode:
            sys.exit(f"moe-run {art} failed:\n{r.stderr}")
        first = sorted(os.listdir(out))
        got = np.load(os.path.join(out, first[0]))
        diffs[art] = float(np.abs(got - want).max())

names = ["ONNX Runtime"] + a.artifacts
times = {n: [] for n in names}
for rnd in range(a.rounds):
    order = names[rnd % len(names):] + names[:rnd % len(names)]
    for n in order:
        times[n].append(ort_p50() if n == "ONNX Runtime" else moe_p50(n))
ort_ms = statistics.median(times["ONNX Runtime"])
print(f"{os.path.basename(a.model)}, {a.threads} thread(s), {a.rounds} "
      f"rounds of p50 over {a.repeats} runs (ORT {ort.__version__})")
print("| | median p50 ms | ORT / this | max abs diff vs ORT |")
print("|---|---|---|---|")
print(f"| ONNX Runtime | {ort_ms:.1f} | 1.00 | |")
for art in a.artifacts:
    ms = statistics.median(times[art])
    print(f"| {art} | {ms:.1f} | {ort_ms / ms:.2f} | {diffs[art]:.2e} |")

"""com.microsoft.MoE: moe-mlir against ONNX Runtime on the same file.

usage: .venv/bin/python bench/ort_moe_ffn.py [--hidden 412 --inter 128
       --experts 155 --k 12 --activation relu] [--tokens 1,64,512]
       [--threads 1] [--no-parallel-loops] [--repeats 20] [--torch]
       [--csv FILE]

Exports one com.microsoft.MoE layer (python/moe_ref/ort_moe.py, seed 0; the
MoEUT-44M feed-forward shape by default), compiles it with moe_mlir.compile
(-O3 -march=native; parallel loops on the thread pool unless
--no-parallel-loops, as moe-compile) and, for each token count, runs moe-mlir and ONNX
Runtime alternately on the same inputs with the same thread count (and,
with --torch, PyTorch eager on the reference model: python/moe_ref/ort_moe.py
OrtMoE.forward, torch.set_num_threads(threads)). Prints one markdown row per
token count: p50 of each, the ratio (ORT time / ours, and torch time / ours)
and the largest difference between the two outputs; --csv also writes the
rows to FILE.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
import torch

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(root, "python"))
import moe_mlir  # noqa: E402
from moe_ref.ort_moe import OrtMoE  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--hidden", type=int, default=412)
p.add_argument("--inter", type=int, default=128)
p.add_argument("--experts", type=int, default=155)
p.add_argument("--k", type=int, default=12)
p.add_argument("--activation", default="relu")
p.add_argument("--tokens", default="1,64,512")
p.add_argument("--threads", type=int, default=1)
p.add_argument("--no-parallel-loops", action="store_true")
p.add_argument("--parallel-loops", action="store_true",
               help="the default (kept for older commands)")
p.add_argument("--repeats", type=int, default=20)
p.add_argument("--torch", action="store_true")
p.add_argument("--csv", default=None)
a = p.parse_args()
torch.set_num_threads(a.threads)

torch.manual_seed(0)
layer = OrtMoE(a.hidden, a.inter, a.experts, a.k, a.activation)
work = tempfile.mkdtemp()
model = os.path.join(work, "moe.onnx")
onnx.save(layer.export(), model)
t0 = time.perf_counter()
artifact = moe_mlir.compile(model, os.path.join(work, "moe.moeb"),
                            parallel_loops=not a.no_parallel_loops)
compile_s = time.perf_counter() - t0

opts = ort.SessionOptions()
opts.intra_op_num_threads = a.threads
opts.inter_op_num_threads = 1
ref = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
ours = moe_mlir.InferenceSession(artifact, threads=a.threads)

print(f"com.microsoft.MoE D={a.hidden} I={a.inter} E={a.experts} k={a.k} "
      f"{a.activation}, {a.threads} thread(s){' (no parallel loops)' if a.no_parallel_loops else ''}; compile {compile_s:.1f} s")
head = ["N", "moe-mlir p50 ms", "ORT p50 ms", "ORT time / ours"]
if a.torch:
    head += ["torch p50 ms", "torch time / ours"]
head += ["max abs diff"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
rows = []
rng = np.random.default_rng(0)
for n in [int(t) for t in a.tokens.split(",")]:
    x = rng.standard_normal((n, a.hidden), dtype=np.float32)
    feeds = {"x": x}
    ya = ours.run(None, feeds)[0]
    yb = ref.run(None, feeds)[0]
    diff = float(np.abs(ya - yb).max()) if n else 0.0
    xt = torch.from_numpy(x)
    runners = [("ours", lambda: ours.run(None, feeds)),
               ("ort", lambda: ref.run(None, feeds))]
    if a.torch:
        def run_torch():
            with torch.no_grad():
                layer.forward(xt)
        runners.append(("torch", run_torch))
    times = {name: [] for name, _ in runners}
    for _ in range(a.repeats):
        for name, fn in runners:
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    p50 = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
    row = [n, p50["ours"], p50["ort"], p50["ort"] / p50["ours"]]
    if a.torch:
        row += [p50["torch"], p50["torch"] / p50["ours"]]
    row += [diff]
    rows.append(row)
    cells = [str(n)] + [f"{v:.3f}" for v in row[1:-1]] + [f"{diff:.2e}"]
    print("| " + " | ".join(cells) + " |")
if a.csv:
    import csv
    with open(a.csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(head)
        w.writerows(rows)

"""torch's exported SDPA core, raised (moe.attention zero_nan_probs) or not.

usage: .venv/bin/python bench/guarded_attention.py [--tokens 1024]
       [--heads 8] [--head-dim 64] [--threads 1] [--rounds 4] [--repeats 3]

Writes the attention core as torch 2.x's exporters write
scaled_dot_product_attention: q and k^T each multiplied by sqrt(1/sqrt(d)),
a causal bool mask through Where(m, 0, -inf) added to the scores, Softmax,
the probabilities guarded by Where(IsNaN(p), 0, p), then P·V. Compiles it
with moe-compile (raised) and moe-compile --no-raise (the graph as
exported), checks both against ONNX Runtime (max |diff| printed), times ONNX
Runtime on the file (p50 of 5 runs after one warm-up, intra-op threads =
--threads), then runs bench/ab.py on the two artifacts (alternating rounds).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as TP
from onnx import helper as h

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
p = argparse.ArgumentParser()
p.add_argument("--tokens", type=int, default=1024)
p.add_argument("--heads", type=int, default=8)
p.add_argument("--head-dim", type=int, default=64)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--rounds", type=int, default=4)
p.add_argument("--repeats", type=int, default=3)
a = p.parse_args()
H, D, T = a.heads, a.head_dim, a.tokens
half = float(np.float32(D ** -0.25))
nodes = [
    h.make_node("Transpose", ["k"], ["kT"], perm=[0, 1, 3, 2]),
    h.make_node("Mul", ["q", "c"], ["qs"]),
    h.make_node("Mul", ["kT", "c"], ["ks"]),
    h.make_node("MatMul", ["qs", "ks"], ["s"]),
    h.make_node("Where", ["m", "zero", "ninf"], ["add"]),
    h.make_node("Add", ["s", "add"], ["x"]),
    h.make_node("Softmax", ["x"], ["p"], axis=-1),
    h.make_node("IsNaN", ["p"], ["nan"]),
    h.make_node("Where", ["nan", "zero", "p"], ["pg"]),
    h.make_node("MatMul", ["pg", "v"], ["o"]),
]
inits = [h.make_tensor("c", TP.FLOAT, [], [half]),
         h.make_tensor("zero", TP.FLOAT, [], [0.0]),
         h.make_tensor("ninf", TP.FLOAT, [], [-np.inf])]
vi = h.make_tensor_value_info
graph = h.make_graph(
    nodes, "sdpa",
    [vi("q", TP.FLOAT, ["B", H, "T", D]), vi("k", TP.FLOAT, ["B", H, "S", D]),
     vi("v", TP.FLOAT, ["B", H, "S", D]), vi("m", TP.BOOL, ["B", 1, "T", "S"])],
    [vi("o", TP.FLOAT, ["B", H, "T", D])], inits)
model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
model.ir_version = 8
rng = np.random.default_rng(0)
feeds = {n: rng.standard_normal((1, H, T, D)).astype(np.float32)
         for n in ("q", "k", "v")}
feeds["m"] = np.tril(np.ones((T, T), bool))[None, None]
with tempfile.TemporaryDirectory() as work:
    path = os.path.join(work, "sdpa.onnx")
    onnx.save(model, path)
    inputs = []
    for n, x in feeds.items():
        np.save(os.path.join(work, n + ".npy"), x)
        inputs += ["--input", f"{n}={os.path.join(work, n + '.npy')}"]
    bin_dir = os.path.join(root, "build", "bin")
    arts = {}
    for tag, extra in (("unraised", ["--no-raise"]), ("raised", [])):
        arts[tag] = os.path.join(work, tag + ".moeb")
        subprocess.run([os.path.join(bin_dir, "moe-compile"), "-q", *extra,
                        path, "-o", arts[tag]], check=True)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(path, opts,
                                   providers=["CPUExecutionProvider"])
    want = session.run(None, feeds)[0]
    for tag, art in arts.items():
        out = os.path.join(work, "out_" + tag)
        subprocess.run([os.path.join(bin_dir, "moe-run"), art, *inputs,
                        "--output-dir", out], check=True, capture_output=True)
        got = np.load(os.path.join(out, "o.npy"))
        print(f"{tag}: max |moe-run - ORT| = {np.abs(got - want).max():.3g}")
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - t0)
    print(f"ONNX Runtime, {a.threads} thread(s): p50 "
          f"{1000 * sorted(times)[2]:.2f} ms")
    sys.stdout.flush()
    subprocess.run([sys.executable, os.path.join(root, "bench", "ab.py"),
                    arts["unraised"], arts["raised"], *inputs, "--threads",
                    str(a.threads), "--rounds", str(a.rounds), "--repeats",
                    str(a.repeats), "--no-compare"], check=True)

"""Decode steps with the key/value cache against recomputing the prefix.

usage: .venv/bin/python bench/generation.py [--d-model 256 --layers 8
       --group 2 --experts 32 --expert-size 128 --k 4 --heads 4
       --head-dim 64 --att-experts 4 --att-k 2 --vocab 8000]
       [--prompt 256] [--steps 32] [--threads 1]

Exports a random MoEUT of that shape with the reference exporter, compiles
it once with moe-compile --generation (-O3 -march=native), and times, on
one session: the prefill of `--prompt` tokens; `--steps` decode steps of
one token each (caches preallocated, read in place); and, for comparison,
entry main on the whole sequence for each of the same steps (what
generating without a cache costs: the prefix recomputed every token). The
decode logits are checked against main's at each step. Batch 1.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(root, "python"))
sys.path.insert(0, os.path.join(root, "build", "python"))

import moe_mlir  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402
from moe_ref import modules as M  # noqa: E402
from moe_ref import onnx_export as X  # noqa: E402
from moe_ref.configs import MoEUTConfig  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    for name, default in (("d-model", 256), ("layers", 8), ("group", 2),
                          ("experts", 32), ("expert-size", 128), ("k", 4),
                          ("heads", 4), ("head-dim", 64), ("att-experts", 4),
                          ("att-k", 2), ("vocab", 8000), ("prompt", 256),
                          ("steps", 32), ("threads", 1)):
        p.add_argument("--" + name, type=int, default=default)
    a = p.parse_args()
    cfg = MoEUTConfig(d_model=a.d_model, n_layers=a.layers, group=a.group,
                      ff_experts=a.experts, expert_size=a.expert_size,
                      ff_k=a.k, n_heads=a.heads, head_dim=a.head_dim,
                      att_experts=a.att_experts, att_k=a.att_k,
                      vocab=a.vocab)
    torch.manual_seed(0)
    model = M.MoEUT(cfg)
    work = tempfile.mkdtemp()
    path = os.path.join(work, "moeut.onnx")
    onnx.save(X.export_moeut(model), path)
    t0 = time.perf_counter()
    subprocess.run([os.path.join(root, "build", "bin", "moe-compile"), "-q",
                    "--generation", path, "-o", path + ".moeb"], check=True)
    compile_s = time.perf_counter() - t0
    s = moe_mlir.InferenceSession(path + ".moeb", threads=a.threads)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, cfg.vocab, size=(1, a.prompt + a.steps))
    names = [i.name for i in s.get_inputs("decode")][1:]
    limit = a.prompt + a.steps
    t0 = time.perf_counter()
    out = s.run(None, {"tokens": tokens[:, :a.prompt]}, entry="prefill")
    prefill_ms = (time.perf_counter() - t0) * 1e3
    caches = [np.empty((limit,) + r.shape[1:], r.dtype) for r in out[1:]]
    for c, r in zip(caches, out[1:]):
        c[:a.prompt] = r
    decode, full, worst = [], [], 0.0
    for i in range(a.steps):
        pos = a.prompt + i
        feed = {n: c[:pos] for n, c in zip(names, caches)}
        feed["tokens"] = tokens[:, pos:pos + 1]
        t0 = time.perf_counter()
        out = s.run(None, feed, entry="decode")
        decode.append((time.perf_counter() - t0) * 1e3)
        for c, r in zip(caches, out[1:]):
            c[pos:pos + 1] = r
        t0 = time.perf_counter()
        ref = s.run(None, {"tokens": tokens[:, :pos + 1]})[0]
        full.append((time.perf_counter() - t0) * 1e3)
        scale = np.abs(ref[:, -1]).max()
        worst = max(worst, float(np.abs(out[0][:, -1] - ref[:, -1]).max()
                                 / scale))
    d, f = np.median(decode), np.median(full)
    print(f"MoEUT d={cfg.d_model} L={cfg.n_layers} G={cfg.group} "
          f"E={cfg.ff_experts} k={cfg.ff_k} H={cfg.n_heads} "
          f"dh={cfg.head_dim} V={cfg.vocab}; {a.threads} thread(s); "
          f"compile {compile_s:.1f} s")
    print(f"prefill {a.prompt} tokens: {prefill_ms:.1f} ms "
          f"({a.prompt / prefill_ms * 1e3:.0f} tokens/s)")
    print(f"decode at P = {a.prompt}..{limit - 1}: p50 {d:.2f} ms/token "
          f"({1e3 / d:.0f} tokens/s); full forward of the prefix: p50 "
          f"{f:.2f} ms/token ({f / d:.1f}x the decode step); largest "
          f"decode-vs-main difference {worst:.1e} (relative to max |logit|)")


if __name__ == "__main__":
    main()

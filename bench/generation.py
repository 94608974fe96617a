"""Generation with the key/value cache: moe-mlir's compiled prefill and
decode against ONNX Runtime on a `past_key_values` export of the same model
and PyTorch eager with a cache, in one run, alternating step by step.

usage: .venv/bin/python bench/generation.py [--model MoEUT-44M]
       [--prompts 256,1024] [--steps 16] [--threads 1,2] [--work DIR]
       [--no-peers] [--warmup] [--export moe|plain]
  or, for a model of another shape: --model custom [--d-model 256
       --layers 8 --group 2 --experts 32 --expert-size 128 --k 4
       --heads 4 --head-dim 64 --att-experts 4 --att-k 2 --vocab 8000]

Builds the model (random weights, seed 0), exports it twice with the
reference code: the project's exporter (org.moe_mlir functions; with
`--export plain`, a plain torch.onnx.export with dynamic axes, whose
SwitchHead and σ-MoE layers the importer raises) for
`moe-compile --generation` (-O3 -march=native; wall time and peak memory of
the compiler are reported), and python/moe_ref/past_kv_export.py (plain
torch.onnx.export with past/present caches) for ONNX Runtime 1.32. Then,
for each thread count and prompt length P, batch 1:
  - prefill: the P prompt tokens (moe-mlir: a runtime generation context,
    moe_generation_step; ORT: the export with empty pasts; PyTorch:
    MoEUT.step);
  - decode: --steps steps of one token each at positions P, P+1, ...
    (teacher-forced from one random sequence, so every system decodes the
    same tokens), the three systems alternating at each step, each step
    after a pause of STEP_GAP_S (every runtime's threads spin for a while
    after a call; on two cores they would take the core the next system's
    worker needs); p50 per token;
  - the bandwidth bound of a decode step: the bytes it must read (the
    selected experts' weights, the dense weights, the selectors, the LM
    head and the cache at that position) over the measured read bandwidth
    (bench/read_bandwidth.c with as many threads, before and after the
    runs of that thread count, the higher of the two);
  - the largest difference between moe-mlir's logits of the last step and
    each peer's (random-init routing can nearly tie; docs/tolerance.md).
Prints one markdown table per thread count. The artifacts and exports are
cached in --work (default /tmp/moe-bench-gen-<model>): delete it after
changing the compiler.
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(root, "python"))
sys.path.insert(0, os.path.join(root, "build", "python"))

import moe_mlir  # noqa: E402
from moe_mlir import _runtime  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from moe_ref import modules as M  # noqa: E402
from moe_ref import past_kv_export as PK  # noqa: E402
from moe_ref.configs import PUBLISHED, MoEUTConfig  # noqa: E402
from moe_ref.onnx_export import export_moeut  # noqa: E402
from moe_ref import plain_exports as PE  # noqa: E402
import peak_rss  # noqa: E402  (bench/, beside this script)



# Pause before each timed decode step (see the docstring).
STEP_GAP_S = 0.02

def decode_bytes(cfg, past):
    """Bytes one decode step of one sequence reads at cache length `past`:
    per layer the dense q/k projections, the attention selectors, each
    head's selected value and output experts, the feed-forward selector and
    selected experts, the LayerNorms and the cache; then the embedding row,
    the output LayerNorm and the LM head."""
    d, h, dh = cfg.d_model, cfg.n_heads, cfg.head_dim
    att = h * (2 if cfg.att_experts > 1 else 1) * cfg.att_experts * d
    att += 2 * d * h * dh + h * min(cfg.att_k, cfg.att_experts) * 2 * d * dh
    ffn = cfg.ff_experts * d + cfg.ff_k * 2 * d * cfg.expert_size
    layer = att + ffn + 4 * d + 2 * past * h * dh
    return 4 * (cfg.n_layers * layer + 3 * d + d * cfg.vocab + cfg.vocab)


def read_bandwidth(threads, work):
    exe = os.path.join(work, "read_bandwidth")
    if not os.path.exists(exe):
        subprocess.run(["clang-22", "-O3", "-march=native", "-pthread",
                        os.path.join(root, "bench", "read_bandwidth.c"),
                        "-o", exe], check=True)
    out = subprocess.run([exe, str(threads)], check=True,
                         capture_output=True, text=True).stdout
    return float(out.split()[1])


def compile_model(model, work, kind):
    path = os.path.join(work, "moeut.onnx" if kind == "moe"
                        else "moeut_plain.onnx")
    artifact = path + ".moeb"
    compiler = os.path.join(root, "build", "bin", "moe-compile")
    # Reused only when newer than the compiler that would make it.
    if (os.path.exists(artifact) and
            os.path.getmtime(artifact) > os.path.getmtime(compiler)):
        return artifact, None, None
    if kind == "moe":
        onnx.save(export_moeut(model), path)
    else:
        PE.export_moeut(model, path, torch.zeros((1, 8), dtype=torch.int64))
    t0 = time.perf_counter()
    # Its own peak (largest process), measured from a small launcher: a
    # child of this process would also count this one's memory.
    cmd = [compiler, "-q", "--generation", path, "-o", artifact]
    code, peak_mb, err = peak_rss.run(cmd)
    sys.stderr.write(err)
    if code != 0:
        raise subprocess.CalledProcessError(code, cmd)
    seconds = time.perf_counter() - t0
    return artifact, seconds, peak_mb


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="MoEUT-44M",
                   choices=sorted(PUBLISHED) + ["custom"])
    for name, default in (("d-model", 256), ("layers", 8), ("group", 2),
                          ("experts", 32), ("expert-size", 128), ("k", 4),
                          ("heads", 4), ("head-dim", 64), ("att-experts", 4),
                          ("att-k", 2), ("vocab", 8000), ("steps", 16)):
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--prompts", default="256,1024")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--work", default=None)
    p.add_argument("--no-peers", action="store_true")
    p.add_argument("--export", choices=["moe", "plain"], default="moe",
                   help="the file moe-compile reads: the org.moe_mlir "
                        "export, or a plain torch.onnx.export (raised)")
    p.add_argument("--warmup", action="store_true",
                   help="one untimed prefill of each length first (each "
                        "system), so that first-call costs (workspace "
                        "growth, page faults) are not timed; at P = 1024 "
                        "the peers then need more than 24 GB")
    a = p.parse_args()
    if a.model == "custom":
        cfg = MoEUTConfig(d_model=a.d_model, n_layers=a.layers,
                          group=a.group, ff_experts=a.experts,
                          expert_size=a.expert_size, ff_k=a.k,
                          n_heads=a.heads, head_dim=a.head_dim,
                          att_experts=a.att_experts, att_k=a.att_k,
                          vocab=a.vocab)
    else:
        cfg = PUBLISHED[a.model][0]
    prompts = [int(x) for x in a.prompts.split(",")]
    thread_counts = [int(x) for x in a.threads.split(",")]
    work = a.work or f"/tmp/moe-bench-gen-{a.model}"
    os.makedirs(work, exist_ok=True)

    torch.manual_seed(0)
    model = M.MoEUT(cfg).eval()
    artifact, compile_s, compile_mb = compile_model(model, work, a.export)
    past_path = os.path.join(work, "past_kv.onnx")
    if not a.no_peers and not os.path.exists(past_path):
        PK.export(model, past_path)
    past_names, _ = PK.names(cfg.n_layers)

    print(f"{a.model}: {cfg}")
    if compile_s is not None:
        print(f"moe-compile --generation: {compile_s:.1f} s, peak "
              f"{compile_mb:.0f} MB")
    else:
        print(f"artifact reused from {artifact}")
    rng = np.random.default_rng(0)
    seq = rng.integers(0, cfg.vocab, size=(1, max(prompts) + a.steps))
    for threads in thread_counts:
        bw_before = read_bandwidth(threads, work)
        session = moe_mlir.InferenceSession(artifact, threads=threads)
        torch.set_num_threads(threads)
        if not a.no_peers:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            onnx_session = ort.InferenceSession(
                past_path, opts, providers=["CPUExecutionProvider"])
        rows = []
        for prompt in prompts:
            limit = prompt + a.steps
            times = {"ours": [], "ort": [], "torch": []}
            last = {}
            if a.warmup:
                _runtime.Generation(session._session, 1, limit).step(
                    np.ascontiguousarray(seq[:, :prompt]))
                if not a.no_peers:
                    feed = {n: c.numpy() for n, c in
                            zip(past_names, PK.empty_cache(model, 1))}
                    feed["tokens"] = seq[:, :prompt]
                    onnx_session.run(None, feed)
                    with torch.no_grad():
                        model.step(torch.from_numpy(seq[:, :prompt]))
            gen = _runtime.Generation(session._session, 1, limit)
            t0 = time.perf_counter()
            gen.step(np.ascontiguousarray(seq[:, :prompt]))
            prefill = {"ours": time.perf_counter() - t0}
            if not a.no_peers:
                feed = {n: c.numpy() for n, c in
                        zip(past_names, PK.empty_cache(model, 1))}
                feed["tokens"] = seq[:, :prompt]
                t0 = time.perf_counter()
                ort_out = onnx_session.run(None, feed)
                prefill["ort"] = time.perf_counter() - t0
                with torch.no_grad():
                    t0 = time.perf_counter()
                    _, cache = model.step(torch.from_numpy(seq[:, :prompt]))
                    prefill["torch"] = time.perf_counter() - t0
            for i in range(a.steps):
                pos = prompt + i
                token = np.ascontiguousarray(seq[:, pos:pos + 1])
                time.sleep(STEP_GAP_S)
                t0 = time.perf_counter()
                last["ours"] = gen.step(token)
                times["ours"].append(time.perf_counter() - t0)
                if a.no_peers:
                    continue
                feed = dict(zip(past_names, ort_out[1:]))
                feed["tokens"] = token
                time.sleep(STEP_GAP_S)
                t0 = time.perf_counter()
                ort_out = onnx_session.run(None, feed)
                times["ort"].append(time.perf_counter() - t0)
                last["ort"] = ort_out[0]
                time.sleep(STEP_GAP_S)
                with torch.no_grad():
                    t0 = time.perf_counter()
                    logits, cache = model.step(torch.from_numpy(token),
                                               cache)
                    times["torch"].append(time.perf_counter() - t0)
                last["torch"] = logits.numpy()
            p50 = {k: float(np.median(v)) for k, v in times.items() if v}
            diff = {k: float(np.abs(last["ours"] - v).max())
                    for k, v in last.items() if k != "ours"}
            rows.append((prompt, prefill, p50, diff))
        # The host's bandwidth moves between runs: measured before and
        # after, the higher of the two (the stricter bound) is used.
        bw_after = read_bandwidth(threads, work)
        bw = max(bw_before, bw_after)
        rows = [(prompt, prefill, p50,
                 decode_bytes(cfg, prompt + a.steps // 2) / (bw * 1e9), diff)
                for prompt, prefill, p50, diff in rows]
        print(f"\n{threads} thread(s); read bandwidth {bw:.1f} GB/s "
              f"(before {bw_before:.1f}, after {bw_after:.1f})")
        print("| P | system | prefill P tokens | tokens/s | decode p50 "
              "ms/token | tokens/s | decode / bandwidth bound | ours "
              "faster by |")
        print("|---|---|---|---|---|---|---|---|")
        for prompt, prefill, p50, bound, diff in rows:
            for k, label in (("ours", "moe-mlir"),
                             ("ort", "ONNX Runtime, past_key_values"),
                             ("torch", "PyTorch eager, cache")):
                if k not in p50:
                    continue
                speed = ("" if k == "ours" else
                         f"{p50[k] / p50['ours']:.2f}x decode, "
                         f"{prefill[k] / prefill['ours']:.2f}x prefill")
                print(f"| {prompt} | {label} | {prefill[k] * 1e3:.1f} ms | "
                      f"{prompt / prefill[k]:.0f} | {p50[k] * 1e3:.2f} | "
                      f"{1 / p50[k]:.1f} | {p50[k] / bound:.2f} | {speed} |")
            mb = decode_bytes(cfg, prompt + a.steps // 2) / 1e6
            print(f"| {prompt} | bandwidth bound ({mb:.0f} MB/step) | | | "
                  f"{bound * 1e3:.2f} | {1 / bound:.0f} | 1.00 | |")
            for k, d in diff.items():
                print(f"| {prompt} | largest logit difference, last step, "
                      f"against {k} | | | {d:.1e} | | | |")

if __name__ == "__main__":
    main()

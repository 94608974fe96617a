#!/usr/bin/env bash
# Compiled MoEUT (moe-compile + moe-run, one thread) against ONNX Runtime
# (one intra-op thread) on the same model file and tokens, in one run.
# usage: bench/moeut_vs_ort.sh [MODEL.onnx TOKENS.npy] (default: the fixture)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${MOE_BUILD_DIR:-$root/build}"
model="${1:-$root/test/fixtures/moeut_tiny.onnx}"
tokens="${2:-$root/test/fixtures/moeut_tiny.tokens.npy}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$build/bin/moe-compile" -q "$model" -o "$work/m.moeb"
echo "== moe-run (moe-compile defaults: -O3 -march=native, register-tiled kernels)"
"$build/bin/moe-run" "$work/m.moeb" --input "tokens=$tokens" --threads 1 --benchmark \
  --warmup 20 --repeats 200 | tail -1
echo "== onnxruntime (intra_op_num_threads = 1)"
"$root/.venv/bin/python" - "$model" "$tokens" <<'PY'
import sys, time
import numpy as np
import onnxruntime as ort
opts = ort.SessionOptions()
opts.intra_op_num_threads = 1
opts.inter_op_num_threads = 1
s = ort.InferenceSession(sys.argv[1], opts, providers=["CPUExecutionProvider"])
feeds = {"tokens": np.load(sys.argv[2])}
for _ in range(20):
    s.run(None, feeds)
ms = []
for _ in range(200):
    t = time.perf_counter()
    s.run(None, feeds)
    ms.append((time.perf_counter() - t) * 1e3)
ms.sort()
n = feeds["tokens"].size
print(f"onnxruntime {ort.__version__}: p50 {ms[100]:.3f} ms, p90 {ms[180]:.3f} ms, "
      f"min {ms[0]:.3f} ms; {n / (ms[100] / 1e3):.1f} tokens/s")
PY

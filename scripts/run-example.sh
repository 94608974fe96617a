#!/usr/bin/env bash
# The main job: set up, build, then compile the bundled MoEUT model (G = 2
# layer groups repeated R = 2 times, SwitchHead attention and sigma-MoE
# feed-forward, exported from the PyTorch reference) with moe-compile and run
# it with moe-run on the bundled tokens, printing what it produced and how
# it compares with ONNX Runtime's output.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${MOE_BUILD_DIR:-$root/build}"
model="$root/test/fixtures/moeut_tiny.onnx"
tokens="$root/test/fixtures/moeut_tiny.tokens.npy"
work="$build/example"

"$root/scripts/setup.sh"
"$root/scripts/build.sh" moe-compile moe-run
mkdir -p "$work"
echo "== moe-compile $(basename "$model") -o example/moeut_tiny.moeb"
"$build/bin/moe-compile" "$model" -o "$work/moeut_tiny.moeb"
echo "== moe-run example/moeut_tiny.moeb --input tokens=$(basename "$tokens")"
"$build/bin/moe-run" "$work/moeut_tiny.moeb" --input "tokens=$tokens" \
  --output-dir "$work/out" --benchmark --warmup 3 --repeats 20
"$root/.venv/bin/python" - "$work/out/logits.npy" \
  "$root/test/fixtures/moeut_tiny.logits.npy" <<'PY'
import sys
import numpy as np
got, want = np.load(sys.argv[1]), np.load(sys.argv[2])
print(f"max |moe-run - ONNX Runtime| = {np.abs(got - want).max():.2e} "
      f"over {got.size} logits")
PY

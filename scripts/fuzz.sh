#!/usr/bin/env bash
# Fuzzes the parsers of untrusted input with libFuzzer (ASan + UBSan): the
# ONNX importer (bytes -> import + conversion to moe), the artifact loader's
# parser and the .npy parser. The harnesses are built by the main build
# (${MOE_BUILD_DIR:-build}, configured with -DMOE_BUILD_FUZZERS=ON by
# scripts/build.sh); each runs for SECONDS (default 20) over a copy of its
# seed corpus (test/fuzz/corpus/NAME). Prints executions and exec/s per
# fuzzer; exits non-zero on any crash, leak, timeout or out-of-memory,
# keeping the reproducer under ${MOE_BUILD_DIR}/fuzz-findings/.
#
#   scripts/fuzz.sh [SECONDS]        e.g. scripts/fuzz.sh 3600 for an hour
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${MOE_BUILD_DIR:-$root/build}"
seconds="${1:-20}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "usage: scripts/fuzz.sh [SECONDS]" >&2
  exit 2
fi

"$root/scripts/build.sh" fuzz_npy fuzz_artifact fuzz_import >/dev/null

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
findings="$build/fuzz-findings"
failed=0

# run_fuzzer NAME BINARY CORPUS SECONDS [DICT]: runs BINARY over a copy of
# the seed folder CORPUS for SECONDS; prints "NAME: N executions in S s
# (E exec/s)" and returns non-zero on any finding.
run_fuzzer() {
  local name="$1" binary="$2" corpus="$3" secs="$4" dict="${5:-}"
  local dir="$work/$name" log="$work/$name.log" status=0
  mkdir -p "$dir/corpus" "$dir/artifacts"
  if [ -d "$corpus" ]; then
    cp -r "$corpus/." "$dir/corpus/"
  fi
  local args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048
              -print_final_stats=1 -artifact_prefix="$dir/artifacts/")
  if [ -n "$dict" ] && [ -f "$dict" ]; then
    args+=(-dict="$dict")
  fi
  echo "fuzz: $name for ${secs} s ($(ls "$dir/corpus" | wc -l) seeds)"
  ASAN_OPTIONS="detect_leaks=1:${ASAN_OPTIONS:-}" \
    "$binary" "${args[@]}" "$dir/corpus" >"$log" 2>&1 || status=$?
  local runs time rate
  runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  time=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\2/p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *\([0-9]*\).*/\1/p' "$log" | tail -1)
  if [ "$status" -ne 0 ] || [ -z "$runs" ] ||
     grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|SUMMARY: ' "$log"; then
    echo "fuzz: $name FAILED (exit status $status); the end of its log:"
    tail -n 40 "$log"
    mkdir -p "$findings"
    cp "$log" "$findings/"
    if compgen -G "$dir/artifacts/*" >/dev/null; then
      cp "$dir/artifacts/"* "$findings/"
      echo "fuzz: reproducers in $findings: $(ls "$dir/artifacts" | tr '\n' ' ')"
      echo "fuzz: rerun one with: $binary FILE"
    fi
    return 1
  fi
  echo "fuzz: $name: ${runs} executions in ${time} s (${rate:-?} exec/s)," \
       "corpus $(ls "$dir/corpus" | wc -l) inputs, no findings"
}

run_fuzzer fuzz_npy "$build/bin/fuzz_npy" "$root/test/fuzz/corpus/npy" \
  "$seconds" "$root/test/fuzz/npy.dict" || failed=1
run_fuzzer fuzz_artifact "$build/bin/fuzz_artifact" \
  "$root/test/fuzz/corpus/artifact" "$seconds" \
  "$root/test/fuzz/artifact.dict" || failed=1
run_fuzzer fuzz_import "$build/bin/fuzz_import" \
  "$root/test/fuzz/corpus/import" "$seconds" || failed=1

if [ "$failed" -ne 0 ]; then
  echo "fuzz: FAILED"
  exit 1
fi
echo "fuzz: all fuzzers ran without findings"

#!/usr/bin/env bash
# The whole test suite: set up, build, run every lit test. Ends with a line
# per-runner summaries and "all: N passed, N failed"; exits non-zero on any
# failure.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${MOE_BUILD_DIR:-$root/build}"

"$root/scripts/setup.sh"
"$root/scripts/build.sh" moe-opt moe-import MoeDialectDocGen MoePassesDocGen \
  OnnxDialectDocGen MoeConversionPassesDocGen

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# sum REGEX: adds up the numbers that precede/follow REGEX matches in $log.
sum() { grep -Eo "$1" "$log" | grep -Eo '[0-9]+' | awk '{n += $1} END {print n + 0}' || true; }

# lit: dialect, passes, pipelines, tools, docs.
lit_status=0
/usr/bin/python3 /usr/lib/llvm-22/bin/lit -v "$build/test" 2>&1 | tee "$log" || lit_status=$?
lit_passed=$(sum '^ *Passed *: *[0-9]+')
lit_failed=$(sum '^ *(Failed|Unresolved|Timed Out|Unexpectedly Passed) *: *[0-9]+')
echo "lit: ${lit_passed} passed, ${lit_failed} failed"

# pytest: reference models, ONNX interchange, fixtures.
py_status=0
(cd "$root/python" && "$root/.venv/bin/python" -m pytest tests -q -p no:cacheprovider) \
  2>&1 | tee "$log" || py_status=$?
py_passed=$(sum '[0-9]+ passed')
py_failed=$(sum '[0-9]+ (failed|errors?)')

passed=$((lit_passed + py_passed))
failed=$((lit_failed + py_failed))
echo "all: ${passed} passed, ${failed} failed"
if [ "$lit_status" -ne 0 ] || [ "$py_status" -ne 0 ] || [ "$failed" -ne 0 ] ||
   [ "$lit_passed" -eq 0 ] || [ "$py_passed" -eq 0 ]; then
  exit 1
fi

#!/usr/bin/env bash
# The whole test suite: set up, build, run every lit test. Ends with a line
# "lit: N passed, N failed" and exits non-zero on any failure.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${MOE_BUILD_DIR:-$root/build}"

"$root/scripts/setup.sh"
"$root/scripts/build.sh" moe-opt MoeDialectDocGen MoePassesDocGen

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
/usr/bin/python3 /usr/lib/llvm-22/bin/lit -v "$build/test" 2>&1 | tee "$log" || status=$?

count() { # sums the lit summary counters named by the regex $1
  awk -v re="^ *($1) *: *[0-9]+" '$0 ~ re { sub(/.*: */, ""); n += $1 } END { print n + 0 }' "$log"
}
passed=$(count 'Passed')
failed=$(count 'Failed|Unresolved|Timed Out|Unexpectedly Passed')
echo "lit: ${passed} passed, ${failed} failed"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then
  exit 1
fi

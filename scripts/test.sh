#!/usr/bin/env bash
# The whole test suite: set up, build, run the lit tests, the Python tests,
# the runtime unit tests, the runtime unit tests under ASan+UBSan, their
# concurrency tests under TSan, and the fuzzers for a bounded time
# (scripts/fuzz.sh). Prints
# per-runner summaries and "all: N passed, N failed"; exits non-zero on any
# failure.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${MOE_BUILD_DIR:-$root/build}"

"$root/scripts/setup.sh"
"$root/scripts/build.sh" all fuzz_npy fuzz_artifact fuzz_import MoeDialectDocGen MoePassesDocGen \
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

# GoogleTest: the runtime, then the runtime again under AddressSanitizer and
# UndefinedBehaviorSanitizer (a separate build of runtime/ alone).
gtest_status=0
"$build/bin/moe-runtime-tests" 2>&1 | tee "$log" || gtest_status=$?
gt_passed=$(sum '\[  PASSED  \] [0-9]+')
gt_failed=$(sum '\[  FAILED  \] [0-9]+ tests?,')
asan="${MOE_ASAN_BUILD_DIR:-$root/build-asan}"
if [ ! -f "$asan/build.ninja" ]; then
  flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
  cmake -G Ninja -S "$root/runtime" -B "$asan" -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
    -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
    -DCMAKE_EXE_LINKER_FLAGS="$flags" -DCMAKE_SHARED_LINKER_FLAGS="$flags" >/dev/null
fi
ninja -C "$asan" >/dev/null
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
  "$asan/bin/moe-runtime-tests" 2>&1 | tee "$log" || gtest_status=$?
if grep -q "Sanitizer" "$log"; then
  echo "runtime under ASan/UBSan: sanitizer reports above"
  gtest_status=1
fi
gt_passed=$((gt_passed + $(sum '\[  PASSED  \] [0-9]+')))
gt_failed=$((gt_failed + $(sum '\[  FAILED  \] [0-9]+ tests?,')))
# The tests of threads (the session's pool, concurrent runs, errors from
# workers, bodies that break the code ABI) under ThreadSanitizer: a build of
# runtime/ alone, the test model instrumented too; any report fails.
tsan="${MOE_TSAN_BUILD_DIR:-$root/build-tsan}"
if [ ! -f "$tsan/build.ninja" ]; then
  flags="-fsanitize=thread -fno-omit-frame-pointer"
  cmake -G Ninja -S "$root/runtime" -B "$tsan" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
    -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
    -DCMAKE_EXE_LINKER_FLAGS="$flags" -DCMAKE_SHARED_LINKER_FLAGS="$flags" >/dev/null
fi
ninja -C "$tsan" moe-runtime-tests >/dev/null
TSAN_OPTIONS=halt_on_error=1 "$tsan/bin/moe-runtime-tests" \
  --gtest_filter='*Concurrent*:*Thread*:*BadRequests*' 2>&1 | tee "$log" || gtest_status=$?
if grep -q "ThreadSanitizer" "$log"; then
  echo "runtime under TSan: sanitizer reports above"
  gtest_status=1
fi
gt_passed=$((gt_passed + $(sum '\[  PASSED  \] [0-9]+')))
gt_failed=$((gt_failed + $(sum '\[  FAILED  \] [0-9]+ tests?,')))
echo "gtest (runtime, runtime under ASan+UBSan, its threads under TSan): ${gt_passed} passed, ${gt_failed} failed"

# Bounded fuzzing of the untrusted-input parsers (importer, artifact, .npy):
# ${MOE_FUZZ_SECONDS:-20} s each; any crash, leak or hang fails the suite.
fuzz_passed=0
fuzz_failed=0
if "$root/scripts/fuzz.sh" "${MOE_FUZZ_SECONDS:-20}" 2>&1 | tee "$log"; then
  fuzz_passed=$(grep -c 'no findings$' "$log" || true)
else
  fuzz_failed=1
fi
if [ "$fuzz_passed" -ne 3 ]; then
  fuzz_failed=1
fi
echo "fuzz: ${fuzz_passed} passed, ${fuzz_failed} failed"

passed=$((lit_passed + py_passed + gt_passed + fuzz_passed))
failed=$((lit_failed + py_failed + gt_failed + fuzz_failed))
echo "all: ${passed} passed, ${failed} failed"
if [ "$lit_status" -ne 0 ] || [ "$py_status" -ne 0 ] || [ "$gtest_status" -ne 0 ] ||
   [ "$failed" -ne 0 ] || [ "$lit_passed" -eq 0 ] || [ "$py_passed" -eq 0 ] ||
   [ "$gt_passed" -eq 0 ]; then
  exit 1
fi

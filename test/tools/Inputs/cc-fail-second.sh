#!/bin/sh
# A C compiler for moe-compile-parts.test: counts its runs in the file
# $MOE_TEST_CC_COUNT and fails the second one (exit 3); the others run
# clang-22.
n=$(cat "$MOE_TEST_CC_COUNT" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > "$MOE_TEST_CC_COUNT"
if [ "$n" -eq 2 ]; then
  exit 3
fi
exec clang-22 "$@"

#!/bin/sh
# A C compiler for moe-compile-interrupt.test. It waits until $TMPDIR holds
# $MOE_TEST_CC_BITCODE non-empty bitcode files (every part's file is then
# created: each is registered before its bitcode is written), lists
# $TMPDIR into $MOE_TEST_CC_READY.files, writes its pid to the file
# $MOE_TEST_CC_READY, and waits, so that the test can interrupt moe-compile
# mid-compile.
want=${MOE_TEST_CC_BITCODE:-0}
i=0
while :; do
  n=0
  for f in "$TMPDIR"/*.bc; do
    [ -s "$f" ] && n=$((n + 1))
  done
  [ $n -ge "$want" ] && break
  i=$((i + 1))
  [ $i -gt 600 ] && exit 1
  sleep 0.1
done
ls -A "$TMPDIR" > "$MOE_TEST_CC_READY.files"
echo $$ > "$MOE_TEST_CC_READY.tmp" && mv "$MOE_TEST_CC_READY.tmp" "$MOE_TEST_CC_READY"
exec sleep 120 < /dev/null > /dev/null 2>&1

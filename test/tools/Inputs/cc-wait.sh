#!/bin/sh
# A C compiler for moe-compile-interrupt.test: writes its pid to the file
# $MOE_TEST_CC_READY (moe-compile's temporary files exist by then) and
# waits, so that the test can interrupt moe-compile mid-compile.
echo $$ > "$MOE_TEST_CC_READY.tmp" && mv "$MOE_TEST_CC_READY.tmp" "$MOE_TEST_CC_READY"
exec sleep 120 < /dev/null > /dev/null 2>&1

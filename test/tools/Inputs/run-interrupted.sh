#!/bin/sh
# usage: run-interrupted.sh SIGNAL COMMAND...
# Runs COMMAND (whose --cc is cc-wait.sh) in the background, waits until
# the C compiler runs (the file $MOE_TEST_CC_READY appears), sends SIGNAL to
# COMMAND, and stops the waiting compiler. Exit 0 when COMMAND ended by
# that signal within 20 s, 1 otherwise.
sig=$1
shift
case $sig in
  INT) number=2 ;;
  TERM) number=15 ;;
  *) echo "unknown signal $sig" >&2; exit 1 ;;
esac
rm -f "$MOE_TEST_CC_READY"
# A background command of a non-interactive shell starts with SIGINT
# ignored; a user's Ctrl-C reaches a compile that does not ignore it.
env --default-signal=INT,TERM "$@" &
pid=$!
i=0
while [ ! -s "$MOE_TEST_CC_READY" ]; do
  i=$((i + 1))
  if [ $i -gt 600 ] || ! kill -0 $pid 2>/dev/null; then
    echo "the C compiler never ran" >&2
    kill -KILL $pid 2>/dev/null
    exit 1
  fi
  sleep 0.1
done
kill -$sig $pid
i=0
while kill -0 $pid 2>/dev/null && [ $i -lt 200 ]; do
  i=$((i + 1))
  sleep 0.1
done
kill -KILL "$(cat "$MOE_TEST_CC_READY")" 2>/dev/null
if kill -0 $pid 2>/dev/null; then
  echo "still running 20 s after $sig" >&2
  kill -KILL $pid
  wait $pid
  exit 1
fi
wait $pid
status=$?
expected=$((128 + number))
if [ $status -ne $expected ]; then
  echo "exit status $status, expected $expected (killed by $sig)" >&2
  exit 1
fi
exit 0

"""Peak resident memory of one command, measured from a small process.

A child's ru_maxrss includes what it inherited before exec: a command
started from a benchmark that holds PyTorch and a model (1.2 GB) reports at
least that much, whatever the command used. So the command is started from
a fresh Python without site packages (about 10 MB), which waits for it
with wait4 and reports the command's own peak. The command's stderr is
passed back when it ends (the benchmarks run the compiler with -q).
"""
import json
import subprocess
import sys

_MARK = "\n@@peak_rss "
_LAUNCHER = r"""
import json, os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    except OSError as e:
        sys.stderr.write(f"{sys.argv[1]}: {e}\n")
    os._exit(127)
_, status, usage = os.wait4(pid, 0)
sys.stderr.write(MARK + json.dumps(
    [os.waitstatus_to_exitcode(status), usage.ru_maxrss]) + "\n")
""".replace("MARK", repr(_MARK))


def run(cmd):
    """Runs `cmd` (a list); returns (exit code, peak RSS in MB, stderr)."""
    proc = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, *cmd],
                          stderr=subprocess.PIPE, text=True,
                          errors="replace")
    err, mark, tail = proc.stderr.rpartition(_MARK)
    if not mark:
        raise RuntimeError(f"the launcher of {cmd[0]} ended with "
                           f"{proc.returncode} and no result: "
                           f"{proc.stderr}")
    code, kb = json.loads(tail)
    return code, kb / 1024, err

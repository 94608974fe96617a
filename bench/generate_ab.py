"""Alternated A/B of generation artifacts: decode tokens/s and prefill time.

usage: python3 bench/generate_ab.py ROUNDS THREADS STEPS PROMPT.npy
       A.moeb[@LIBDIR] B.moeb[@LIBDIR] [C.moeb[@LIBDIR] ...]

Runs `moe-run X --input tokens=PROMPT --generate STEPS --threads THREADS`
for each artifact (built with `moe-compile --generation`), in alternating
order from round to round, and prints per artifact the median of the
decode tokens/s and of the prefill milliseconds that moe-run reports, and
in how many rounds its decode was faster than the first artifact's. The
generated tokens go to a scratch directory, where the artifacts are
first copied one after the other (a file written later was seen to run
faster than its byte-identical original) and are removed at the end.
An artifact given as `X.moeb@DIR` runs with DIR first in LD_LIBRARY_PATH:
another build's libmoe_runtime.so, to compare runtimes (the same moe-run,
whose C API calls both libraries must have).
"""
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
build = os.environ.get("MOE_BUILD_DIR", os.path.join(root, "build"))
if len(sys.argv) < 7:
    sys.exit(__doc__)
rounds, threads, steps, prompt = (int(sys.argv[1]), sys.argv[2], sys.argv[3],
                                  sys.argv[4])
shown = sys.argv[5:]
scratch = tempfile.mkdtemp()
# Fresh copies of the artifacts, written one after the other: the
# weights are read from the mapped file, and a file written minutes
# later ran faster than its byte-identical original (MoEUT-44M
# decode, 85.2 against 81.3 tokens/s, 8 of 10 rounds), so the side
# compiled last would win part of every comparison.
arts, env = [], {}
for i, spec in enumerate(shown):
    path, _, libdir = spec.rpartition("@")
    if not path or not os.path.isdir(libdir):  # an "@" of the file name
        path, libdir = spec, ""
    arts.append(os.path.join(scratch, f"{i}.moeb"))
    shutil.copyfile(path, arts[-1])
    env[arts[-1]] = dict(os.environ)
    if libdir:
        env[arts[-1]]["LD_LIBRARY_PATH"] = os.pathsep.join(
            filter(None, [os.path.abspath(libdir),
                          os.environ.get("LD_LIBRARY_PATH")]))
decode = {a: [] for a in arts}
prefill = {a: [] for a in arts}
for r in range(rounds):
    for a in (arts if r % 2 == 0 else arts[::-1]):
        out = subprocess.run(
            [os.path.join(build, "bin", "moe-run"), a, "--input",
             f"tokens={prompt}", "--generate", steps, "--threads", threads,
             "--output-dir", scratch],
            capture_output=True, text=True, check=True, env=env[a]).stdout
        decode[a].append(
            float(re.search(r"decode: .*?, ([0-9.]+) tokens/s", out).group(1)))
        prefill[a].append(
            float(re.search(r"prefill: .* in ([0-9.]+) ms", out).group(1)))
base = arts[0]
for a, name in zip(arts, shown):
    wins = sum(x > y for x, y in zip(decode[a], decode[base]))
    print(f"{name}: decode median {statistics.median(decode[a]):.1f} tokens/s "
          f"(faster than {shown[0]} in {wins}/{rounds}), prefill median "
          f"{statistics.median(prefill[a]):.1f} ms")
shutil.rmtree(scratch, ignore_errors=True)

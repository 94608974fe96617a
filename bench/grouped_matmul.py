"""moe.grouped_matmul alone against this core's FMA peak.

usage: .venv/bin/python bench/grouped_matmul.py [--hidden 412 --inter 128
       --experts 155 --k 12] [--tokens 1,64,512,2048] [--threads 1]
       [--repeats 20]

Measures the peak first (bench/peak_fma.c, built with clang-22
-march=native: 12 independent FMA chains at the widest vector width), then,
for each token count N, one up projection moe.grouped_matmul
([N·k rows gathered from x [N, D]] x W[e] [D, I], slots routed uniformly at
random, seed 0) compiled by moe-compile and timed by moe-run --benchmark.
Prints one markdown row per N: p50, GFLOP/s (2 · N · k · D · I flops) and
the share of the peak. The smallest N is also checked against NumPy.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
build = os.environ.get("MOE_BUILD_DIR", os.path.join(root, "build"))
p = argparse.ArgumentParser()
p.add_argument("--hidden", type=int, default=412)
p.add_argument("--inter", type=int, default=128)
p.add_argument("--experts", type=int, default=155)
p.add_argument("--k", type=int, default=12)
p.add_argument("--tokens", default="1,64,512,2048")
p.add_argument("--threads", type=int, default=1)
p.add_argument("--repeats", type=int, default=20)
a = p.parse_args()
D, I, E, K = a.hidden, a.inter, a.experts, a.k

work = tempfile.mkdtemp()
subprocess.run(["clang-22", "-O2", "-march=native",
                os.path.join(root, "bench", "peak_fma.c"), "-o",
                os.path.join(work, "peak")], check=True)
peak_line = subprocess.run([os.path.join(work, "peak")], check=True,
                           capture_output=True, text=True).stdout.strip()
peak = float(peak_line.split()[1])
print(peak_line)

mlir = f"""
func.func @main(%x: tensor<?x{D}xf32>, %w: tensor<{E}x{D}x{I}xf32>,
                %off: tensor<{E + 1}xi32>, %perm: tensor<?xi32>)
    -> tensor<?x{I}xf32> {{
  %y = moe.grouped_matmul %x, %w, %off, %perm
      : (tensor<?x{D}xf32>, tensor<{E}x{D}x{I}xf32>, tensor<{E + 1}xi32>,
         tensor<?xi32>) -> tensor<?x{I}xf32>
  return %y : tensor<?x{I}xf32>
}}
"""
src = os.path.join(work, "gm.mlir")
with open(src, "w") as f:
    f.write(mlir)
artifact = os.path.join(work, "gm.moeb")
subprocess.run([os.path.join(build, "bin", "moe-compile"), "-q", src, "-o",
                artifact], check=True)

rng = np.random.default_rng(0)
w = rng.standard_normal((E, D, I), dtype=np.float32)
np.save(os.path.join(work, "w.npy"), w)
print(f"moe.grouped_matmul D={D} I={I} E={E} k={K}, "
      f"{a.threads} thread(s)")
print("| N | rows N·k | p50 ms | GFLOP/s | % of peak |")
print("|---|---|---|---|---|")
tokens = [int(t) for t in a.tokens.split(",")]
for n in tokens:
    x = rng.standard_normal((n, D), dtype=np.float32)
    ids = rng.integers(0, E, size=n * K)
    perm = np.argsort(ids, kind="stable").astype(np.int32)
    off = np.zeros(E + 1, dtype=np.int32)
    off[1:] = np.cumsum(np.bincount(ids, minlength=E))
    for name, v in (("x", x), ("perm", perm), ("off", off)):
        np.save(os.path.join(work, f"{name}.npy"), v)
    inputs = ["--input", f"arg0={work}/x.npy", "--input", f"arg1={work}/w.npy",
              "--input", f"arg2={work}/off.npy", "--input",
              f"arg3={work}/perm.npy"]
    if n == min(tokens):
        out = os.path.join(work, "out")
        subprocess.run([os.path.join(build, "bin", "moe-run"), artifact,
                        *inputs, "--output-dir", out], check=True,
                       capture_output=True)
        got = np.load(os.path.join(out, sorted(os.listdir(out))[0]))
        want = np.einsum("md,mdi->mi", x[np.arange(n * K) // K],
                         w[ids])
        err = float(np.abs(got - want).max())
        assert np.allclose(got, want, atol=1e-4, rtol=1e-4), err
    run = subprocess.run([os.path.join(build, "bin", "moe-run"), artifact,
                          *inputs, "--threads", str(a.threads),
                          "--benchmark", "--warmup", "3", "--repeats",
                          str(a.repeats)],
                         check=True, capture_output=True, text=True)
    line = run.stdout.strip().splitlines()[-1]
    ms = float(line.split("p50 ")[1].split(" ms")[0])
    gflops = 2.0 * n * K * D * I / (ms * 1e-3) / 1e9
    print(f"| {n} | {n * K} | {ms:.3f} | {gflops:.1f} | "
          f"{100 * gflops / peak:.0f}% |")

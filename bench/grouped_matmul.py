"""moe.grouped_matmul alone against this core's FMA peak.

usage: .venv/bin/python bench/grouped_matmul.py [--hidden 412 --inter 128
       --experts 155 --k 12] [--tokens 1,64,512,2048] [--threads 1]
       [--repeats 20] [--weights constant|input] [--projection up|down]

Measures the peak first (bench/peak_fma.c, built with clang-22
-march=native: 12 independent FMA chains at the widest vector width), then,
for each token count N, one moe.grouped_matmul compiled by moe-compile and
timed by moe-run --benchmark: N·k rows gathered from x [N, K_in] times
W[e] [K_in, N_out], slots routed uniformly at random (seed 0).

- `--projection up` (default): K_in = hidden, N_out = inter (an expert
  layer's first matmul); `down`: K_in = inter, N_out = hidden (its second,
  here without the gate weights and the per-token sum).
- `--weights constant` (default): W is a constant of the module, as in
  every imported model, so moe-compile stores it in the column panels the
  register tiles read (moe-pack-expert-weights). `input`: W is an argument
  of the entry, read row-major (what this script measured before
  2026-12-05).

The moe-mlir part of the timing is the whole entry (the grouped matmul,
its gather of x's rows folded into the tiles' loads); the routing
(offsets, permutation) is an input. Prints one markdown row per N: p50,
GFLOP/s (2 · N · k · K_in · N_out flops) and the share of the peak. Every
N's output is checked against NumPy (float64) first.
"""
import argparse
import os
import subprocess
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
p.add_argument("--weights", choices=["constant", "input"],
               default="constant")
p.add_argument("--projection", choices=["up", "down"], default="up")
a = p.parse_args()
E, K = a.experts, a.k
KIN, NOUT = ((a.hidden, a.inter) if a.projection == "up"
             else (a.inter, a.hidden))

work = tempfile.mkdtemp()
subprocess.run(["clang-22", "-O2", "-march=native",
                os.path.join(root, "bench", "peak_fma.c"), "-o",
                os.path.join(work, "peak")], check=True)
peak_line = subprocess.run([os.path.join(work, "peak")], check=True,
                           capture_output=True, text=True).stdout.strip()
peak = float(peak_line.split()[1])
print(peak_line)

rng = np.random.default_rng(0)
w = rng.standard_normal((E, KIN, NOUT), dtype=np.float32)
wtype = f"tensor<{E}x{KIN}x{NOUT}xf32>"
if a.weights == "constant":
    # The raw little-endian bytes as MLIR's hex form of a dense attribute.
    params = ""
    wdef = f'  %w = arith.constant dense<"0x{w.tobytes().hex().upper()}"> : {wtype}\n'
else:
    params = f'%w: {wtype} {{onnx.name = "w"}}, '
    wdef = ""
mlir = f"""
func.func @main(%x: tensor<?x{KIN}xf32> {{onnx.name = "x"}}, {params}
                %off: tensor<{E + 1}xi32> {{onnx.name = "off"}},
                %perm: tensor<?xi32> {{onnx.name = "perm"}})
    -> tensor<?x{NOUT}xf32> {{
{wdef}  %y = moe.grouped_matmul %x, %w, %off, %perm
      : (tensor<?x{KIN}xf32>, {wtype}, tensor<{E + 1}xi32>,
         tensor<?xi32>) -> tensor<?x{NOUT}xf32>
  return %y : tensor<?x{NOUT}xf32>
}}
"""
src = os.path.join(work, "gm.mlir")
with open(src, "w") as f:
    f.write(mlir)
artifact = os.path.join(work, "gm.moeb")
subprocess.run([os.path.join(build, "bin", "moe-compile"), "-q", src, "-o",
                artifact], check=True)
np.save(os.path.join(work, "w.npy"), w)
print(f"moe.grouped_matmul ({a.projection}) K={KIN} N={NOUT} E={E} k={K}, "
      f"weights {a.weights}, {a.threads} thread(s)")
print("| N | rows N·k | p50 ms | GFLOP/s | % of peak |")
print("|---|---|---|---|---|")
for n in [int(t) for t in a.tokens.split(",")]:
    x = rng.standard_normal((n, KIN), dtype=np.float32)
    ids = rng.integers(0, E, size=n * K)
    perm = np.argsort(ids, kind="stable").astype(np.int32)
    off = np.zeros(E + 1, dtype=np.int32)
    off[1:] = np.cumsum(np.bincount(ids, minlength=E))
    for name, v in (("x", x), ("perm", perm), ("off", off)):
        np.save(os.path.join(work, f"{name}.npy"), v)
    inputs = ["--input", f"x={work}/x.npy", "--input", f"off={work}/off.npy",
              "--input", f"perm={work}/perm.npy"]
    if a.weights == "input":
        inputs += ["--input", f"w={work}/w.npy"]
    out = os.path.join(work, "out")
    subprocess.run([os.path.join(build, "bin", "moe-run"), artifact,
                    *inputs, "--threads", str(a.threads), "--output-dir",
                    out], check=True, capture_output=True)
    got = np.load(os.path.join(out, sorted(os.listdir(out))[0]))
    # Row r of the result is slot r: token r // k through expert ids[r]
    # (expert by expert: w[ids] would copy a matrix per slot).
    want = np.empty((n * K, NOUT))
    for e in np.unique(ids):
        rows = np.nonzero(ids == e)[0]
        want[rows] = x[rows // K].astype(np.float64) @ w[e].astype(np.float64)
    err = float(np.abs(got - want).max())
    assert np.allclose(got, want, atol=1e-3, rtol=1e-4), (n, err)
    run = subprocess.run([os.path.join(build, "bin", "moe-run"), artifact,
                          *inputs, "--threads", str(a.threads),
                          "--benchmark", "--warmup", "3", "--repeats",
                          str(a.repeats)],
                         check=True, capture_output=True, text=True)
    line = run.stdout.strip().splitlines()[-1]
    ms = float(line.split("p50 ")[1].split(" ms")[0])
    gflops = 2.0 * n * K * KIN * NOUT / (ms * 1e-3) / 1e9
    print(f"| {n} | {n * K} | {ms:.3f} | {gflops:.1f} | "
          f"{100 * gflops / peak:.0f}% |")

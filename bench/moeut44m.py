"""The published MoEUT-44M forward: moe-mlir against ONNX Runtime on the
same file, one thread each.

usage: .venv/bin/python bench/moeut44m.py [--tokens 64] [--batch 1]
       [--repeats 5] [--threads 1] [--work DIR] [--model MoEUT-44M]
       [--compile-flags="..."] [--plain]

Builds the published configuration (python/moe_ref/configs.py PUBLISHED,
random weights, seed 0), exports it with the project's exporter
(export_moeut), compiles it with build/bin/moe-compile (wall time and peak
memory of the compiler process are reported), and runs moe-run
(`--benchmark`) and ONNX Runtime on the same random tokens, alternating.
Prints the p50 of each, the ratio (ORT time / ours), tokens/s, and the
largest logit difference between the two (and ORT's against PyTorch).

OpenVINO (the `openvino` package; skipped with --no-openvino) refuses the
project's export (org.moe_mlir functions), so it runs a plain
`torch.onnx.export` of the same reference model with the same weights, in
f32 (INFERENCE_PRECISION_HINT f32) and, with --openvino-default, also in
its default precision for information (bf16 on CPUs with AVX512_BF16;
moe-mlir has no bf16 mode), with INFERENCE_NUM_THREADS = --threads,
alternating with the others. The plain export gathers each token's expert
weights (the reference model's w1[ids]); at 1024 tokens the run with both
OpenVINO modes exceeded 24 GB.

With --plain, moe-mlir and ONNX Runtime also run that plain export (moe-mlir
raises its SwitchHead and σ-MoE layers, docs/importer.md), so every system
is timed on one file too.

The exports and the artifact are cached in --work (default
/tmp/moe-bench-<model>); the artifact is rebuilt when build/bin/moe-compile
is newer than it.
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
import torch

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(root, "python"))
from moe_ref import modules as M  # noqa: E402
from moe_ref.configs import PUBLISHED  # noqa: E402
from moe_ref.onnx_export import export_moeut  # noqa: E402
import peak_rss  # noqa: E402  (bench/, beside this script)

p = argparse.ArgumentParser()
p.add_argument("--model", default="MoEUT-44M", choices=sorted(PUBLISHED))
p.add_argument("--tokens", type=int, default=64)
p.add_argument("--batch", type=int, default=1)
p.add_argument("--repeats", type=int, default=5)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--work", default=None)
p.add_argument("--compile-flags", default="")
p.add_argument("--no-openvino", action="store_true")
p.add_argument("--openvino-default", action="store_true")
p.add_argument("--plain", action="store_true",
               help="also time moe-mlir and ORT on the plain export")
a = p.parse_args()

build = os.environ.get("MOE_BUILD_DIR", os.path.join(root, "build"))
work = a.work or f"/tmp/moe-bench-{a.model}"
os.makedirs(work, exist_ok=True)
model_path = os.path.join(work, "model.onnx")
artifact = os.path.join(work, "model.moeb")

torch.manual_seed(0)
cfg = PUBLISHED[a.model][0]
net = M.MoEUT(cfg).eval()
if not os.path.exists(model_path):
    t0 = time.perf_counter()
    onnx.save(export_moeut(net), model_path, save_as_external_data=True,
              location="model.onnx.data")
    print(f"exported {a.model} in {time.perf_counter() - t0:.1f} s")

compiler = os.path.join(build, "bin", "moe-compile")


def compile_artifact(source, artifact):
    """moe-compile SOURCE into ARTIFACT unless it is newer than the
    compiler; prints the compile's wall time and peak memory."""
    if (os.path.exists(artifact) and
            os.path.getmtime(artifact) >= os.path.getmtime(compiler)):
        return
    t0 = time.perf_counter()
    # Into a temporary name first: a killed compile leaves a partial file,
    # which the existence check above would take for the artifact.
    partial = artifact + ".partial"
    cmd = [compiler, "-q", *a.compile_flags.split(), source, "-o", partial]
    # This compile's own peak (its largest process, clang included),
    # measured from a small launcher: a child of this process would also
    # count the memory of this one (PyTorch, the model) that it inherits.
    code, peak, err = peak_rss.run(cmd)
    sys.stderr.write(err)
    if code != 0:
        raise subprocess.CalledProcessError(code, cmd)
    os.replace(partial, artifact)
    wall = time.perf_counter() - t0
    print(f"moe-compile {os.path.basename(source)}: {wall:.1f} s wall, "
          f"{peak:.0f} MB peak (its largest process), artifact "
          f"{os.path.getsize(artifact) / 1e6:.1f} MB")


compile_artifact(model_path, artifact)

rng = np.random.default_rng(0)
tokens = rng.integers(0, cfg.vocab, size=(a.batch, a.tokens), dtype=np.int64)
tok_path = os.path.join(work, f"tokens_{a.batch}x{a.tokens}.npy")
np.save(tok_path, tokens)

opts = ort.SessionOptions()
opts.intra_op_num_threads = a.threads
opts.inter_op_num_threads = 1
ref = ort.InferenceSession(model_path, opts,
                           providers=["CPUExecutionProvider"])
feeds = {"tokens": tokens}

out_dir = os.path.join(work, "out")
os.makedirs(out_dir, exist_ok=True)
subprocess.run([os.path.join(build, "bin", "moe-run"), artifact, "--input",
                f"tokens={tok_path}", "--threads", str(a.threads),
                "--output-dir", out_dir], check=True, capture_output=True)
ours = np.load(os.path.join(out_dir,
                            sorted(os.listdir(out_dir))[0]))
want = ref.run(None, feeds)[0]
with torch.no_grad():
    torch_logits = net(torch.from_numpy(tokens)).numpy()

ov_requests = {}
plain_path = os.path.join(work, "plain.onnx")
if (not a.no_openvino or a.plain) and not os.path.exists(plain_path):
    with torch.no_grad():
        torch.onnx.export(net, (torch.from_numpy(tokens),), plain_path,
                          opset_version=17, input_names=["tokens"],
                          output_names=["logits"],
                          dynamic_axes={"tokens": {0: "batch", 1: "seq"},
                                        "logits": {0: "batch", 1: "seq"}})
plain = {}
if a.plain:
    plain_artifact = os.path.join(work, "plain.moeb")
    compile_artifact(plain_path, plain_artifact)
    plain["ort"] = ort.InferenceSession(plain_path, opts,
                                        providers=["CPUExecutionProvider"])
    subprocess.run([os.path.join(build, "bin", "moe-run"), plain_artifact,
                    "--input", f"tokens={tok_path}", "--threads",
                    str(a.threads), "--output-dir", out_dir + "_plain"],
                   check=True, capture_output=True)
    plain_ours = np.load(os.path.join(out_dir + "_plain", "logits.npy"))
    plain_want = plain["ort"].run(None, feeds)[0]
if not a.no_openvino:
    import openvino as ov
    core = ov.Core()
    modes = [("f32", {"INFERENCE_PRECISION_HINT": "f32"})]
    if a.openvino_default:
        modes.append(("default", {}))
    for mode, config in modes:
        config = dict(config, INFERENCE_NUM_THREADS=a.threads)
        compiled = core.compile_model(plain_path, "CPU", config)
        ov_requests[mode] = compiled.create_infer_request()
    ov_logits = {m: np.array(r.infer({"tokens": tokens})[0])
                 for m, r in ov_requests.items()}

def moe_run_p50(path):
    run = subprocess.run(
        [os.path.join(build, "bin", "moe-run"), path, "--input",
         f"tokens={tok_path}", "--threads", str(a.threads), "--benchmark",
         "--warmup", "1", "--repeats", "3"],
        check=True, capture_output=True, text=True)
    line = run.stdout.strip().splitlines()[-1]
    return float(line.split("p50 ")[1].split(" ms")[0])


ours_ms, ort_ms = [], []
ov_ms = {m: [] for m in ov_requests}
plain_ms = {"ours": [], "ort": []}
for _ in range(a.repeats):
    ours_ms.append(moe_run_p50(artifact))
    t = time.perf_counter()
    ref.run(None, feeds)
    ort_ms.append(1e3 * (time.perf_counter() - t))
    if a.plain:
        plain_ms["ours"].append(moe_run_p50(plain_artifact))
        t = time.perf_counter()
        plain["ort"].run(None, feeds)
        plain_ms["ort"].append(1e3 * (time.perf_counter() - t))
    for m, r in ov_requests.items():
        t = time.perf_counter()
        r.infer({"tokens": tokens})
        ov_ms[m].append(1e3 * (time.perf_counter() - t))
mo, mr = float(np.median(ours_ms)), float(np.median(ort_ms))
n = a.batch * a.tokens
print(f"{a.model} forward, tokens [{a.batch}, {a.tokens}], "
      f"{a.threads} thread(s)")
print("| | p50 ms | tokens/s |")
print("|---|---|---|")
print(f"| moe-mlir | {mo:.1f} | {n / mo * 1e3:.0f} |")
print(f"| ONNX Runtime {ort.__version__} | {mr:.1f} | {n / mr * 1e3:.0f} |")
for m, times in ov_ms.items():
    mv = float(np.median(times))
    print(f"| OpenVINO {ov.__version__} ({m} precision, plain export) | "
          f"{mv:.1f} | {n / mv * 1e3:.0f} |")
if a.plain:
    for who, name in (("ours", "moe-mlir"),
                      ("ort", f"ONNX Runtime {ort.__version__}")):
        mp = float(np.median(plain_ms[who]))
        print(f"| {name} (plain export) | {mp:.1f} | {n / mp * 1e3:.0f} |")
print(f"ORT time / ours: {mr / mo:.2f}")
if a.plain:
    mp = float(np.median(plain_ms["ours"]))
    print(f"plain export: moe-mlir p50 / on its own export {mp / mo:.2f}; "
          f"ORT time / moe-mlir on it "
          f"{float(np.median(plain_ms['ort'])) / mp:.2f}; max |logits - "
          f"ORT| on it {np.abs(plain_ours - plain_want).max():.2e}")
for m, times in ov_ms.items():
    mv = float(np.median(times))
    print(f"OpenVINO ({m}) time / ours: {mv / mo:.2f}; max |logits - "
          f"OpenVINO {m}| = {np.abs(ours - ov_logits[m]).max():.2e}")
print(f"max |logits - ORT| = {np.abs(ours - want).max():.2e}; "
      f"max |ORT - PyTorch| = {np.abs(want - torch_logits).max():.2e}; "
      f"max |logits| = {np.abs(want).max():.2f}")

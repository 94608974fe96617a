"""Raised against unraised code on plain torch.onnx.export files of a
64-expert σ-MoE block, with ONNX Runtime on the same file.

usage: .venv/bin/python bench/raise_exports.py [--hidden 512 --expert 128
       --experts 64 --k 8] [--tokens 1,64,256] [--threads 1] [--repeats 10]
       [--onnx FILE ...]

Exports the block in both forms of python/moe_ref/plain_exports.py (gathered
per-slot weights: the reference SigmaMoE; and every expert computed, then
masked), compiles each twice with moe-compile (-O3 -march=native): raised
(the default: moe-raise-onnx makes it one routed moe.ffn) and --no-raise
(the exported ops as they are), and for each token count runs both and ONNX
Runtime alternately on the same inputs with the same thread count. Prints
the core's FMA peak (bench/peak_fma.c) and one markdown row per form and
token count: p50 of each, the ratios, and the largest difference between
raised and ONNX Runtime outputs.

--onnx FILE (repeatable) adds an exported block whose one input `x` is
[1, T, hidden] (dynamic T), e.g. a Hugging Face sparse MoE block written by
python/moe_ref/hf_corpus.py with 64 experts, or [N, hidden] (dynamic N),
e.g. a σ-MoE written by PyTorch 2.9's dynamo exporter; it is timed the same
way at T or N = each token count.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort
import torch

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(root, "python"))
import moe_mlir  # noqa: E402
from moe_ref import modules as M  # noqa: E402
from moe_ref.plain_exports import DenseMaskSigmaMoE  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--hidden", type=int, default=512)
p.add_argument("--expert", type=int, default=128)
p.add_argument("--experts", type=int, default=64)
p.add_argument("--k", type=int, default=8)
p.add_argument("--tokens", default="1,64,256")
p.add_argument("--threads", type=int, default=1)
p.add_argument("--repeats", type=int, default=10)
p.add_argument("--onnx", action="append", default=[])
a = p.parse_args()
build = os.path.join(root, "build", "bin")
work = tempfile.mkdtemp()

subprocess.run(["clang-22", "-O2", "-march=native",
                os.path.join(root, "bench", "peak_fma.c"), "-o",
                os.path.join(work, "peak")], check=True)
print(subprocess.run([os.path.join(work, "peak")], check=True,
                     capture_output=True, text=True).stdout.strip())

torch.manual_seed(0)
forms = {
    "gathered": M.SigmaMoE(a.hidden, a.experts, a.expert, a.k).eval(),
    "dense": DenseMaskSigmaMoE(a.hidden, a.experts, a.expert, a.k).eval(),
}
print(f"σ-MoE D={a.hidden} G={a.expert} E={a.experts} k={a.k} relu, "
      f"sigmoid gate; {a.threads} thread(s)")
head = ["form", "N", "raised p50 ms", "unraised p50 ms", "ORT p50 ms",
        "unraised / raised", "ORT / raised", "max abs diff"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
opts = ort.SessionOptions()
opts.intra_op_num_threads = a.threads
opts.inter_op_num_threads = 1
rng = np.random.default_rng(0)
cases = [(form, module, None) for form, module in forms.items()]
cases += [(os.path.basename(f), None, f) for f in a.onnx]
for form, module, given in cases:
    model = given or os.path.join(work, form + ".onnx")
    if module is not None:
        with torch.no_grad():
            torch.onnx.export(module, (torch.randn(5, a.hidden),), model,
                              opset_version=17, input_names=["x"],
                              output_names=["y"],
                              dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    sessions = {}
    for name, flags in (("raised", []), ("unraised", ["--no-raise"])):
        artifact = os.path.join(work, f"{form}_{name}.moeb")
        subprocess.run([os.path.join(build, "moe-compile"), "-q", *flags,
                        model, "-o", artifact], check=True)
        sessions[name] = moe_mlir.InferenceSession(artifact,
                                                   threads=a.threads)
    ref = ort.InferenceSession(model, opts,
                               providers=["CPUExecutionProvider"])
    for n in [int(t) for t in a.tokens.split(",")]:
        # Rows [N, hidden] (the σ-MoE forms, and a given file with a 2-D
        # input) or a sequence [1, T, hidden] (a given 3-D input).
        rank = len(ref.get_inputs()[0].shape)
        shape = (n, a.hidden) if rank == 2 else (1, n, a.hidden)
        feeds = {"x": rng.standard_normal(shape, dtype=np.float32)}
        want = ref.run(None, feeds)[0]
        diff = float(np.abs(sessions["raised"].run(None, feeds)[0] -
                            want).max())
        runners = [("raised", lambda: sessions["raised"].run(None, feeds)),
                   ("unraised",
                    lambda: sessions["unraised"].run(None, feeds)),
                   ("ort", lambda: ref.run(None, feeds))]
        times = {name: [] for name, _ in runners}
        for _ in range(a.repeats):
            for name, fn in runners:
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
        p50 = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
        cells = [form, str(n), f"{p50['raised']:.3f}",
                 f"{p50['unraised']:.3f}", f"{p50['ort']:.3f}",
                 f"{p50['unraised'] / p50['raised']:.1f}",
                 f"{p50['ort'] / p50['raised']:.1f}", f"{diff:.2e}"]
        print("| " + " | ".join(cells) + " |", flush=True)

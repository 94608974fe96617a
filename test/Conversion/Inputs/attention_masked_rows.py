"""A raised attention core against ONNX Runtime with -inf mask entries.

usage: attention_masked_rows.py --bin BUILD/bin MODEL.onnx

MODEL is raise-attention.test's core_mask (q, k, v [B, 4, T, 8/8/6], mask
[B, 1, T, T]). The mask hides the keys after each query (a causal mask of
-inf) and, in batch 1, every key of rows 3 and 20 (a row of only -inf is NaN
in both). T = 37 crosses the flash lowering's query and key blocks. Prints
"OK ..." when moe-run's output equals ORT's (NaN where ORT's is NaN,
within 1e-5 + 1e-4 |ORT| elsewhere), else "FAIL ...".
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnxruntime as ort

p = argparse.ArgumentParser()
p.add_argument("--bin", required=True)
p.add_argument("model")
a = p.parse_args()
rng = np.random.default_rng(0)
b, t = 2, 37
feeds = {"q": rng.standard_normal((b, 4, t, 8)).astype(np.float32),
         "k": rng.standard_normal((b, 4, t, 8)).astype(np.float32),
         "v": rng.standard_normal((b, 4, t, 6)).astype(np.float32)}
mask = np.where(np.arange(t)[None, :] > np.arange(t)[:, None], -np.inf,
                0.0).astype(np.float32)
mask = np.broadcast_to(mask, (b, 1, t, t)).copy()
mask[1, 0, 3, :] = -np.inf
mask[1, 0, 20, :] = -np.inf
feeds["m"] = mask
want = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"]).run(
    None, feeds)[0]
with tempfile.TemporaryDirectory() as work:
    art = os.path.join(work, "m.moeb")
    subprocess.run([os.path.join(a.bin, "moe-compile"), "-q", "--opt=1",
                    a.model, "-o", art], check=True)
    args = []
    for name, x in feeds.items():
        np.save(os.path.join(work, name + ".npy"), x)
        args += ["--input", f"{name}={os.path.join(work, name + '.npy')}"]
    subprocess.run([os.path.join(a.bin, "moe-run"), art, *args,
                    "--output-dir", work], check=True, capture_output=True)
    got = np.load(os.path.join(work, "y.npy"))
nan = np.isnan(want)
ok = (nan == np.isnan(got)).all() and nan[1, :, 3].all() and \
    np.allclose(got[~nan], want[~nan], rtol=1e-4, atol=1e-5)
print("OK masked keys and fully masked rows match ONNX Runtime" if ok else
      f"FAIL max diff {np.nanmax(np.abs(got - want))}, NaN agree "
      f"{(nan == np.isnan(got)).all()}")
sys.exit(0 if ok else 1)

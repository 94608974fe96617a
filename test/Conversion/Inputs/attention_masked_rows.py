"""A raised attention core against ONNX Runtime with masks that hide keys.

usage: attention_masked_rows.py --bin BUILD/bin MODEL.onnx [PADDED.onnx]

MODEL is raise-attention.test's core_mask (q, k, v [B, 4, T, 8/8/6], mask
[B, 1, T, T]). Each case is run on one artifact compiled as moe-compile
does by default and on one compiled with --no-skip-masked-blocks (every
key block computed), at T = 37 (key blocks of 32 and 5; two blocks of 32
queries) and T = 300 (key blocks of 128, 128, 32 and 12; ten blocks of
queries):

- causal: the keys after each query hidden by -inf; in batch 1 every key
  of two rows too (a row of only -inf is NaN in both);
- causal_min: the same with the float32 minimum, as Hugging Face masks
  are written (its blocks above the diagonal are left out);
- padded: batch 1 left-padded (its first min(150, T / 2) keys hidden
  from every row, with the causal part, by the float32 minimum): rows
  that see no key average all keys in ONNX Runtime, and their query
  blocks compute every key block.

And one case that shows the blocks are left out: at T = 300, keys 256 to
299 (the last two key blocks) hidden from every row and their values NaN.
Computed, 0 * NaN makes every output NaN (as in ONNX Runtime); left out,
none is (docs/tolerance.md). With PADDED (core_padding_mask: a mask [B,
1, 1, T], one row read for all queries) the same right padding is run
with finite values (against ORT, same bits both ways) and with NaN values
(left out).

With --guarded (core_guarded: the probabilities guarded as torch's
exported scaled_dot_product_attention guards them, Where(IsNaN(p), 0, p);
moe.attention's zero_nan_probs), the causal cases are run on it too, where
ONNX Runtime's fully masked rows are 0, and one with a NaN query element and
an infinite key element (rows whose softmax is NaN, then 0), also on an
artifact of the reference lowering (--reference).

Prints "OK ..." when both artifacts give the same bits and equal ORT's
output (NaN where ORT's is NaN, within 1e-5 + 1e-4 |ORT| elsewhere), else
"FAIL ...".
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
p.add_argument("padded", nargs="?")
p.add_argument("--guarded")
a = p.parse_args()
rng = np.random.default_rng(0)
b = 2
low = np.finfo(np.float32).min


def masks(t):
    future = np.arange(t)[None, :] > np.arange(t)[:, None]
    causal = np.broadcast_to(np.where(future, -np.inf, 0.0).astype(np.float32),
                             (b, 1, t, t)).copy()
    causal[1, 0, 3, :] = -np.inf
    causal[1, 0, t - 17, :] = -np.inf
    causal_min = np.broadcast_to(np.where(future, low, 0.0).astype(np.float32),
                                 (b, 1, t, t)).copy()
    padded = causal_min.copy()
    padded[1, 0, :, :min(150, t // 2)] = low
    return {"causal": causal, "causal_min": causal_min, "padded": padded}


def compile_pair(model, work, tag, reference=False):
    """The artifacts of `model` with and without the masked-block skip (and
    with the reference lowering, `reference`)."""
    arts = {}
    builds = [("skip", []), ("noskip", ["--no-skip-masked-blocks"])]
    if reference:
        builds.append(("reference", ["--reference"]))
    for name, extra in builds:
        arts[name] = os.path.join(work, f"{tag}_{name}.moeb")
        subprocess.run([os.path.join(a.bin, "moe-compile"), "-q", "--opt=1",
                        *extra, model, "-o", arts[name]], check=True)
    return arts


def run(arts, feeds, work, tag):
    """Each artifact's output y on `feeds`."""
    args = []
    for name, x in feeds.items():
        np.save(os.path.join(work, name + ".npy"), x)
        args += ["--input", f"{name}={os.path.join(work, name + '.npy')}"]
    got = {}
    for name, art in arts.items():
        out = os.path.join(work, tag + "_" + name)
        subprocess.run([os.path.join(a.bin, "moe-run"), art, *args,
                        "--output-dir", out], check=True, capture_output=True)
        got[name] = np.load(os.path.join(out, "y.npy"))
    return got


def random_qkv(t, mask):
    return {"q": rng.standard_normal((b, 4, t, 8)).astype(np.float32),
            "k": rng.standard_normal((b, 4, t, 8)).astype(np.float32),
            "v": rng.standard_normal((b, 4, t, 6)).astype(np.float32),
            "m": mask}


def same_bits(got, label):
    if not np.array_equal(got["skip"].view(np.uint32),
                          got["noskip"].view(np.uint32)):
        failed.append(f"{label}: skipping masked blocks changed bits")


def right_padded(arts, mask, label, session, work):
    # Keys 256 to 299 hidden from every row: finite values against ORT
    # (same bits both ways), NaN values behind them left out.
    feeds = random_qkv(300, mask)
    want = session.run(None, feeds)[0]
    got = run(arts, feeds, work, "pad")
    same_bits(got, label)
    if not np.allclose(got["skip"], want, rtol=1e-4, atol=1e-5):
        failed.append(f"{label}: max diff "
                      f"{np.nanmax(np.abs(got['skip'] - want))}")
    feeds["v"][:, :, 256:] = np.nan
    got = run(arts, feeds, work, "nan")
    if not np.isfinite(got["skip"]).all():
        failed.append(f"{label}, NaN values: the masked blocks were computed")
    if not np.isnan(got["noskip"]).all():
        failed.append(f"{label}, NaN values: --no-skip-masked-blocks skipped")


session = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"])
failed = []
with tempfile.TemporaryDirectory() as work:
    arts = compile_pair(a.model, work, "core")
    for t in (37, 300):
        for case, mask in masks(t).items():
            feeds = random_qkv(t, mask)
            want = session.run(None, feeds)[0]
            got = run(arts, feeds, work, "out")
            label = f"{case} T={t}"
            same_bits(got, label)
            y = got["skip"]
            nan = np.isnan(want)
            if case == "causal" and not nan[1, :, 3].all():
                failed.append(f"{label}: ORT's fully masked row is not NaN")
            if not ((nan == np.isnan(y)).all() and
                    np.allclose(y[~nan], want[~nan], rtol=1e-4, atol=1e-5)):
                failed.append(f"{label}: max diff "
                              f"{np.nanmax(np.abs(y - want))}, NaN agree "
                              f"{(nan == np.isnan(y)).all()}")
    hidden = np.zeros((b, 1, 300, 300), np.float32)
    hidden[..., 256:] = low
    right_padded(arts, hidden, "right-padded [B, 1, T, T]", session, work)
    if a.padded:
        row = np.zeros((b, 1, 1, 300), np.float32)
        row[..., 256:] = low
        right_padded(compile_pair(a.padded, work, "padded"), row,
                     "right-padded [B, 1, 1, T]",
                     ort.InferenceSession(
                         a.padded, providers=["CPUExecutionProvider"]),
                     work)
    if a.guarded:
        guarded = ort.InferenceSession(a.guarded,
                                       providers=["CPUExecutionProvider"])
        garts = compile_pair(a.guarded, work, "guarded", reference=True)
        for t in (37, 300):
            for case, mask in masks(t).items():
                feeds = random_qkv(t, mask)
                if case == "causal_min":
                    # NaN and +inf scores (key 0, seen by every row; infinite
                    # scores of hidden keys are left out: docs/tolerance.md):
                    # their rows' softmax is NaN.
                    feeds["q"][0, 1, 5, 2] = np.nan
                    feeds["k"][1, 2, 0, 4] = np.inf
                want = guarded.run(None, feeds)[0]
                got = run(garts, feeds, work, "guard")
                label = f"guarded {case} T={t}"
                same_bits(got, label)
                if case == "causal" and (want[1, :, 3] != 0).any():
                    failed.append(f"{label}: ORT's fully masked row is not 0")
                if case == "causal_min" and (want[0, 1, 5] != 0).any():
                    failed.append(f"{label}: ORT's NaN row is not 0")
                for name in ("skip", "reference"):
                    if not np.allclose(got[name], want, rtol=1e-4,
                                       atol=1e-5):
                        failed.append(f"{label} ({name}): max diff "
                                      f"{np.abs(got[name] - want).max()}")
print("OK masked keys and fully masked rows match ONNX Runtime" if not failed
      else "FAIL " + "; ".join(failed))
sys.exit(0 if not failed else 1)

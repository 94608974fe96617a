#!/usr/bin/env python3
"""moe.attention without a cache, as moe-compile lowers it, against float64
NumPy.

usage: attention_vs_reference.py --bin BUILD/bin

One module computes causal and full attention of dynamic q [B, H, T, dk],
k [B, H, S, dk], v [B, H, S, dv], and full attention with an additive mask
m [B, 1, T, S] (random, every fifth key -inf) at scale 0.125. It is
compiled with moe-compile's default (the flash-style form: an online softmax over blocks of 128 keys
per block of 32 query rows), with --no-flash-attention (each block of
queries' softmax over all the keys it sees) and with --reference, and run
at shapes that fill and overflow both blocks and every static key block
(128, then 64, 32, 16, then a dynamic rest): one query and one key,
T = S = 33 (a second query block of one row), T = S = 300 at the MoEUT-44M
head width 82 (128 + 128 + 32 + a rest of 12 keys; ten query blocks),
T = S = 50 (32 + 16 + 2), T = S = 200 with the first 128 keys scoring
-inf for every query (a whole first key block of -inf: the online
softmax must not subtract -inf from -inf),
T = 5 queries at the end of S = 200 keys, T = 40 > S = 7 (causal rows that
see no key: NaN, as the reference's softmax gives), S = 0 (no keys: zeros),
and dv = 130 wider than two register tiles. A second module per head
width has static dk and dv, as a model's attention has: its query-block
loop takes its temporaries from private workspace slots and runs on the
thread pool (moe-lower-to-host-abi's parallel-slots), so it runs on 1, 2
and 3 threads, at shapes with fewer (batch, head, query block) items than
the 32 slots, and more (T = 600 at width 82: 38 items, two per slot).
Outputs are held to |a - b| <= 1e-5 + 1e-4 |b| against the float64
product (NaN where it is NaN), and every build on more threads to the bits
of one thread.
Every run has MOE_RUNTIME_POISON set. Prints one line per case and
"attention: N passed, M failed".
A fourth output has sinks (one more logit per head, left out of P·V) with
the causal mask and the additive one: rows that see no key give 0.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

ATOL, RTOL = 1e-5, 1e-4
MODULE = """func.func @main(%q: tensor<?x?x?x?xf32> {onnx.name = "q"},
                %k: tensor<?x?x?x?xf32> {onnx.name = "k"},
                %v: tensor<?x?x?x?xf32> {onnx.name = "v"},
                %m: tensor<?x1x?x?xf32> {onnx.name = "m"},
                %z: tensor<?xf32> {onnx.name = "z"})
    -> (tensor<?x?x?x?xf32> {onnx.name = "causal"},
        tensor<?x?x?x?xf32> {onnx.name = "full"},
        tensor<?x?x?x?xf32> {onnx.name = "masked"},
        tensor<?x?x?x?xf32> {onnx.name = "sinks"}) {
  %c = moe.attention %q, %k, %v {causal} : (tensor<?x?x?x?xf32>,
      tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32>) -> tensor<?x?x?x?xf32>
  %f = moe.attention %q, %k, %v : (tensor<?x?x?x?xf32>,
      tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32>) -> tensor<?x?x?x?xf32>
  %a = moe.attention %q, %k, %v mask(%m) {scale = 0.125 : f64} : (tensor<?x?x?x?xf32>,
      tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32>, tensor<?x1x?x?xf32>) -> tensor<?x?x?x?xf32>
  %z1 = moe.attention %q, %k, %v mask(%m) sinks(%z) {causal, scale = 0.125 : f64} : (tensor<?x?x?x?xf32>,
      tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32>, tensor<?x1x?x?xf32>, tensor<?xf32>) -> tensor<?x?x?x?xf32>
  return %c, %f, %a, %z1 : tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32>
}
"""
# (B, H, T, S, dk, dv)
SHAPES = [(1, 1, 1, 1, 4, 3), (2, 3, 33, 33, 17, 9), (1, 2, 300, 300, 82, 82),
          (1, 1, 5, 200, 16, 8), (1, 1, 40, 7, 8, 8), (1, 1, 3, 0, 4, 3),
          (1, 2, 50, 50, 12, 20), (1, 1, 200, 200, 4, 5),
          (2, 1, 129, 257, 5, 130)]
# Shapes of the module with static head widths (one build per width).
STATIC_SHAPES = [(2, 3, 33, 33, 17, 9), (1, 1, 40, 7, 17, 9),
                 (1, 2, 300, 300, 82, 82), (1, 2, 600, 600, 82, 82),
                 (1, 1, 3, 0, 4, 5), (1, 1, 200, 200, 4, 5),
                 (2, 1, 129, 257, 5, 130)]
# Shapes run with scores of -inf for the first 128 keys.
MINUS_INF = [(1, 1, 200, 200, 4, 5)]
BUILDS = [("flash", []), ("no-flash", ["--no-flash-attention"]),
          ("reference", ["--reference"])]


def static_module(dk, dv):
    """MODULE with head widths dk and dv static."""
    qk, vt = f"?x?x?x{dk}", f"?x?x?x{dv}"
    return (MODULE.replace("%q: tensor<?x?x?x?xf32>", f"%q: tensor<{qk}xf32>")
            .replace("%k: tensor<?x?x?x?xf32>", f"%k: tensor<{qk}xf32>")
            .replace("(tensor<?x?x?x?xf32>,\n      tensor<?x?x?x?xf32>, "
                     "tensor<?x?x?x?xf32>)",
                     f"(tensor<{qk}xf32>,\n      tensor<{qk}xf32>, "
                     f"tensor<{vt}xf32>)")
            .replace("(tensor<?x?x?x?xf32>,\n      tensor<?x?x?x?xf32>, "
                     "tensor<?x?x?x?xf32>, tensor<?x1x",
                     f"(tensor<{qk}xf32>,\n      tensor<{qk}xf32>, "
                     f"tensor<{vt}xf32>, tensor<?x1x")
            .replace("?x?x?x?", vt))


def expected(q, k, v, causal, mask=None, sinks=None):
    q, k, v = (a.astype(np.float64) for a in (q, k, v))
    t, s = q.shape[2], k.shape[2]
    if s == 0:
        return np.zeros(q.shape[:3] + v.shape[3:])
    if sinks is not None:
        # One more logit per head in each row's softmax, its column dropped
        # before P·V (gpt-oss's attention sinks).
        scores = q @ k.transpose(0, 1, 3, 2) * 0.125 + mask
        if causal:
            visible = np.arange(s)[None, :] <= np.arange(t)[:, None] + s - t
            scores = np.where(visible, scores, -np.inf)
        col = np.broadcast_to(sinks.astype(np.float64)[None, :, None, None],
                              scores.shape[:3] + (1,))
        full = np.concatenate([scores, col], -1)
        with np.errstate(invalid="ignore"):
            e = np.exp(full - full.max(-1, keepdims=True))
            return (e / e.sum(-1, keepdims=True))[..., :-1] @ v
    with np.errstate(invalid="ignore"):
        if mask is None:
            scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[3])
        else:  # the masked output: scale 0.125, the mask added
            scores = q @ k.transpose(0, 1, 3, 2) * 0.125 + mask
    if causal:
        visible = np.arange(s)[None, :] <= np.arange(t)[:, None] + s - t
        scores = np.where(visible, scores, -np.inf)
    with np.errstate(invalid="ignore"):
        e = np.exp(scores - scores.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True) @ v


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    args = parser.parse_args()
    env = dict(os.environ, MOE_RUNTIME_POISON="1")
    rng = np.random.default_rng(0)
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "attention.mlir")
        with open(src, "w") as f:
            f.write(MODULE)
        for name, flags in BUILDS:
            # (--parallel-min-work=0: every parallel loop split, at these
            # small shapes too.)
            subprocess.run([os.path.join(args.bin, "moe-compile"), "-q",
                            "--parallel-min-work=0", src,
                            "-o", os.path.join(tmp, name + ".moeb")] + flags,
                           check=True)
        cases = [(shape, BUILDS, [1, 2]) for shape in SHAPES]
        for shape in STATIC_SHAPES:
            dk, dv = shape[4:]
            name = f"static-{dk}-{dv}"
            if not os.path.exists(os.path.join(tmp, name + ".moeb")):
                src = os.path.join(tmp, name + ".mlir")
                with open(src, "w") as f:
                    f.write(static_module(dk, dv))
                subprocess.run([os.path.join(args.bin, "moe-compile"), "-q",
                                "--parallel-min-work=0", src, "-o",
                                os.path.join(tmp, name + ".moeb")],
                               check=True)
            cases.append((shape, [(name, [])], [1, 2, 3]))
        for shape, builds, thread_counts in cases:
            b, h, t, s, dk, dv = shape
            feeds = {"q": rng.standard_normal((b, h, t, dk)) * 2,
                     "k": rng.standard_normal((b, h, s, dk)) * 2,
                     "v": rng.standard_normal((b, h, s, dv))}
            if shape in MINUS_INF:
                # The first 128 keys (one whole key block) score -inf for
                # every query (positive q times -inf keys): the rows that
                # see later keys are finite, the others NaN.
                feeds["q"] = np.abs(feeds["q"]) + 0.1
                feeds["k"][:, :, :128, :] = -np.inf
            # The additive mask [B, 1, T, S] (heads broadcast): random, every
            # fifth key hidden (-inf; a row of one key sees none: NaN).
            feeds["m"] = rng.standard_normal((b, 1, t, s))
            feeds["m"][..., ::5] = -np.inf
            # Sink logits, one per head, about as large as the scores; a
            # sink of -inf (changes nothing) where there are two heads or
            # more. Where the first key block scores -inf, the mask hides it
            # too: with a finite sink every row has "seen a key" from the
            # start, so the flash form leaves that block out at once.
            feeds["z"] = rng.standard_normal(h) * 2
            if h > 1:
                feeds["z"][0] = -np.inf
            if shape in MINUS_INF:
                feeds["m"][..., :128] = -np.inf
            cmd = []
            for n, a in feeds.items():
                feeds[n] = a.astype(np.float32)
                np.save(os.path.join(tmp, n + ".npy"), feeds[n])
                cmd += ["--input", f"{n}={os.path.join(tmp, n + '.npy')}"]
            for name, _ in builds:
                for threads in (thread_counts if name not in
                                ("no-flash", "reference") else [1]):
                    out = os.path.join(tmp, f"out-{name}-{threads}")
                    subprocess.run(
                        [os.path.join(args.bin, "moe-run"),
                         os.path.join(tmp, name + ".moeb"), "--threads",
                         str(threads), "--output-dir", out] + cmd,
                        check=True, capture_output=True, env=env)
                    bad = []
                    for result, causal in (("causal", True), ("full", False),
                                           ("masked", False), ("sinks", True)):
                        got = np.load(os.path.join(out, result + ".npy"))
                        want = expected(feeds["q"], feeds["k"], feeds["v"],
                                        causal, feeds["m"] if result in
                                        ("masked", "sinks") else None,
                                        feeds["z"] if result == "sinks"
                                        else None)
                        if got.shape != want.shape:
                            bad.append(f"{result}: shape {got.shape}")
                            continue
                        if not np.array_equal(np.isnan(got), np.isnan(want)):
                            bad.append(f"{result}: NaN where the product "
                                       "is not, or the other way")
                            continue
                        ok = np.isnan(want) | (np.abs(got - want) <=
                                               ATOL + RTOL * np.abs(want))
                        if not ok.all():
                            diff = np.nanmax(np.abs(got - want))
                            bad.append(f"{result}: max diff {diff:.3g}")
                        if threads > 1:
                            one = np.load(os.path.join(
                                tmp, f"out-{name}-1", result + ".npy"))
                            if got.tobytes() != one.tobytes():
                                bad.append(f"{result}: {threads} threads "
                                           "differ from 1")
                    label = f"{name} {shape} threads={threads}"
                    if bad:
                        failed += 1
                        print(f"FAIL {label}: " + "; ".join(bad))
                    else:
                        passed += 1
                        print(f"ok {label}")
    print(f"attention: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

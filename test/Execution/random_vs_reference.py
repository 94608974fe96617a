#!/usr/bin/env python3
"""Random differential testing of the compiler: seeded random models, the
optimised code against the reference lowering and an independent reference.

usage: random_vs_reference.py --bin BUILD/bin [--seed S] [--cases N]
                              [--seconds T] [--kinds ffn,moeut,generate]
                              [--case I] [--keep DIR]

Case I of seed S is drawn from its own generator (S, I), so every case can
be rerun alone with --seed S --case I; a failing case prints that command,
and --keep DIR keeps its files (model, inputs, artifacts, outputs). Three
kinds of case, in turn:

  ffn       a com.microsoft.MoE layer (python/moe_ref/ort_moe.py) of random
            width D, expert width I, E experts, k, activation (relu, gelu,
            silu, swiglu), normalized routing or not, biases or not, at a
            random token count N. Compiled with moe-compile (the host's
            vector width), --reference, --march=x86-64-v2 and --no-tile;
            each run with 1 and 2 threads.
  moeut     a tiny MoEUT (python/moe_ref/modules.py) of random width,
            heads, head width (odd rotated widths included), group G,
            repeats, experts and k of both layers, vocabulary, batch B and
            length T; the same four builds and thread counts, against
            PyTorch's logits.
  generate  a tiny MoEUT compiled with --generation (the host's width, or
            one of --march=x86-64-v2, --no-tile, --no-parallel-loops),
            `moe-run --generate N` with 1 and 2 threads (bitwise equal),
            against PyTorch's greedy decoding with a correct key/value
            cache.

Checks: each build gives bitwise the same output on 1 and 2 threads
(generation too); every build is within 1e-5 + 1e-4 |b| of --reference and
of the independent reference (ONNX Runtime for ffn, PyTorch for moeut;
docs/tolerance.md); generated tokens equal PyTorch's. moe-run and
moe-compile run with MOE_RUNTIME_POISON=1 (as under lit: fresh buffers
filled with NaNs, so a read of memory the code never wrote shows), and
each has a time limit; a crash, a hang or an error of the script itself
is a failure of that case, and the campaign goes on.

Routing is discrete (docs/tolerance.md): two correct float32 programs may
pick different experts for a token whose router scores are nearly tied.
In an ffn case, tokens whose k-th and (k+1)-th router logits (float64) are
within 1e-4 are left out of the comparisons with --reference and ONNX
Runtime (the line says how many); a case where every token is is reported
NEAR-TIE. A generate case whose first differing token follows, in every
sequence that differs, PyTorch logits whose top two are within
10 (1e-5 + 1e-4 |top|) is reported NEAR-TIE too. NEAR-TIE cases do not
count as passed. moeut cases have no such screen (their routing is deep
in the model), nor do the routing decisions inside a generate case's
model: a failure there should be read with that in mind, and the counts
of the lit test hold for the hosts it was run on.

Prints one line per case and "random: P passed, F failed, T near-tie";
exits 1 on any failure.
"""
import argparse
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np
import onnx
import onnxruntime as ort
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..",
                                "python"))
from moe_ref import modules as M  # noqa: E402
from moe_ref import onnx_export as X  # noqa: E402
from moe_ref.configs import MoEUTConfig  # noqa: E402
from moe_ref.ort_moe import OrtMoE  # noqa: E402

ATOL, RTOL = 1e-5, 1e-4
COMPILE_SECONDS, RUN_SECONDS = 900, 300
KINDS = ("ffn", "moeut", "generate")
# (v2 and notile split every parallel loop whatever its work,
# --parallel-min-work=0; opt keeps the default threshold.)
BUILDS = [("opt", []), ("ref", ["--reference"]),
          ("v2", ["--march=x86-64-v2", "--parallel-min-work=0"]),
          ("notile", ["--no-tile", "--parallel-min-work=0"])]


class Failure(Exception):
    pass


def command(args, seconds):
    try:
        return subprocess.run(args, capture_output=True, text=True,
                              timeout=seconds)
    except subprocess.TimeoutExpired:
        raise Failure(f"{os.path.basename(args[0])} did not finish in "
                      f"{seconds} s: {' '.join(args[1:])}")


def compile_model(bin_dir, model, out, flags):
    r = command([os.path.join(bin_dir, "moe-compile"), "-q", *flags, model,
                 "-o", out], COMPILE_SECONDS)
    if r.returncode:
        raise Failure(f"moe-compile {' '.join(flags)} exited "
                      f"{r.returncode}: {r.stderr.strip()[-600:]}")


def run_model(bin_dir, artifact, feeds, out, threads, output, extra=()):
    os.makedirs(out, exist_ok=True)
    args = []
    for name, value in feeds.items():
        path = os.path.join(out, f"in.{name}.npy")
        np.save(path, value)
        args += ["--input", f"{name}={path}"]
    r = command([os.path.join(bin_dir, "moe-run"), artifact, *args,
                 "--threads", str(threads), "--output-dir", out, *extra],
                RUN_SECONDS)
    if r.returncode:
        raise Failure(f"moe-run {' '.join(['--threads', str(threads), *extra])}"
                      f" exited {r.returncode}: {r.stderr.strip()[-600:]}")
    written = sorted(f for f in os.listdir(out) if not f.startswith("in."))
    if written != [output]:
        raise Failure(f"moe-run wrote {written}, expected [{output!r}]")
    return np.load(os.path.join(out, output))


def close(a, b, rows=None):
    """a and b within the tolerance, on the leading-dim `rows` only (a
    boolean mask) when given."""
    if a.shape != b.shape:
        return False
    if rows is not None:
        a, b = a[rows], b[rows]
    return np.allclose(a, b, atol=ATOL, rtol=RTOL)


def diff(a, b, rows=None):
    if a.shape != b.shape:
        return f"shape {a.shape} vs {b.shape}"
    if rows is not None:
        a, b = a[rows], b[rows]
    return f"max diff {np.abs(a - b).max():.3g}"


def compare_builds(bin_dir, work, feeds, want, want_name, output,
                   rows=None):
    """The four builds at 1 and 2 threads; returns the reasons it fails.
    `want`: the independent reference (None: thread invariance only);
    `rows`: a mask of the leading dim's rows compared with the references
    (None: all)."""
    model = os.path.join(work, "m.onnx")
    outs = {}
    for build, flags in BUILDS:
        artifact = os.path.join(work, f"{build}.moeb")
        compile_model(bin_dir, model, artifact, flags)
        for threads in (1, 2):
            outs[build, threads] = run_model(
                bin_dir, artifact, feeds,
                os.path.join(work, f"{build}.{threads}"), threads, output)
    why = []
    for build, _ in BUILDS:
        if not np.array_equal(outs[build, 1], outs[build, 2]):
            why.append(f"{build}: 1 and 2 threads differ")
    if want is None:
        return why
    np.save(os.path.join(work, "want.npy"), want)
    for build, _ in BUILDS:
        got = outs[build, 1]
        if build != "ref" and not close(got, outs["ref", 1], rows):
            why.append(f"{build} vs --reference: "
                       f"{diff(got, outs['ref', 1], rows)}")
        if not close(got, want, rows):
            why.append(f"{build} vs {want_name}: {diff(got, want, rows)}")
    return why


def ffn_case(rng, bin_dir, work, info):
    d, inter, e = rng.randint(1, 140), rng.randint(1, 70), rng.randint(1, 40)
    k = rng.randint(1, min(e, 8))
    act = rng.choice(["relu", "gelu", "silu", "swiglu"])
    normalize, bias = rng.random() < 0.3, rng.random() < 0.8
    n = rng.choice([1, 2, 5, 6, 7, 13, 31, 64, 97, 150])
    torch.manual_seed(rng.getrandbits(31))
    layer = OrtMoE(d, inter, e, k, act, normalize=normalize, bias=bias)
    info["label"] = (f"ffn D={d} I={inter} E={e} k={k} {act} "
                     f"normalize={normalize} bias={bias} N={n}")
    model = os.path.join(work, "m.onnx")
    onnx.save(layer.export(), model)
    x = np.random.default_rng(rng.getrandbits(31)).standard_normal(
        (n, d), dtype=np.float32)
    # Tokens nearly tied at the top-k boundary (float64 logits; the
    # softmax keeps their order) are left out of the comparisons.
    rows = np.ones(n, dtype=bool)
    if k < e:
        logits = np.sort(x.astype(np.float64) @ layer.router.double().numpy(),
                         axis=1)[:, ::-1]
        rows = logits[:, k - 1] - logits[:, k] >= 1e-4
    want = ort.InferenceSession(
        model, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    if not rows.all():
        info["label"] += (f" ({int((~rows).sum())} of {n} tokens near-tied,"
                          " not compared)")
    why = compare_builds(bin_dir, work, {"x": x},
                         want if rows.any() else None, "ONNX Runtime", "y.npy",
                         None if rows.all() else rows)
    return why, not rows.any()


def random_config(rng):
    group = rng.randint(1, 3)
    ff_experts, att_experts = rng.randint(1, 12), rng.randint(1, 4)
    return MoEUTConfig(
        d_model=rng.randint(4, 48), n_layers=group * rng.randint(1, 2),
        group=group, ff_experts=ff_experts, expert_size=rng.randint(1, 24),
        ff_k=rng.randint(1, ff_experts), n_heads=rng.randint(1, 4),
        head_dim=rng.choice([2, 3, 4, 6, 8, 10, 12, 16]),
        att_experts=att_experts, att_k=rng.randint(1, att_experts),
        vocab=rng.randint(2, 60))


def config_label(cfg):
    return (f"d={cfg.d_model} L={cfg.n_layers} G={cfg.group} "
            f"ff={cfg.ff_experts}x{cfg.expert_size} k={cfg.ff_k} "
            f"heads={cfg.n_heads}x{cfg.head_dim} "
            f"att={cfg.att_experts} k={cfg.att_k} V={cfg.vocab}")


def moeut_case(rng, bin_dir, work, info):
    cfg = random_config(rng)
    torch.manual_seed(rng.getrandbits(31))
    model = M.MoEUT(cfg)
    b, t = rng.randint(1, 2), rng.choice([1, 2, 3, 7, 8, 9, 17, 33])
    info["label"] = f"moeut {config_label(cfg)} B={b} T={t}"
    tokens = torch.randint(0, cfg.vocab, (b, t))
    with torch.no_grad():
        want = model(tokens).numpy()
    onnx.save(X.export_moeut(model), os.path.join(work, "m.onnx"))
    return compare_builds(bin_dir, work, {"tokens": tokens.numpy()}, want,
                          "PyTorch", "logits.npy"), False


def generate_case(rng, bin_dir, work, info):
    cfg = random_config(rng)
    torch.manual_seed(rng.getrandbits(31))
    model = M.MoEUT(cfg)
    with torch.no_grad():  # larger logits: fewer near-ties of the argmax
        for p in model.parameters():
            p.mul_(3.0)
    b, t, n = rng.randint(1, 2), rng.randint(1, 20), rng.randint(1, 12)
    prompt = torch.randint(0, cfg.vocab, (b, t))
    flags = rng.choice([[], ["--march=x86-64-v2"], ["--no-tile"],
                        ["--no-parallel-loops"]])
    info["label"] = (f"generate {config_label(cfg)} B={b} T={t} N={n} "
                     f"{' '.join(flags) or 'default'}")
    # PyTorch's greedy tokens with a correct cache and, per step and
    # sequence, its top logit and the gap to the second (vocab >= 2).
    with torch.no_grad():
        logits, cache = model.step(prompt)
        want, tops, gaps = [], [], []
        for step in range(n):
            last = logits[:, -1]
            top2 = last.topk(2, dim=-1).values
            tops.append(top2[:, 0].abs().numpy())
            gaps.append((top2[:, 0] - top2[:, 1]).numpy())
            want.append(last.argmax(-1, keepdim=True))
            if step + 1 < n:
                logits, cache = model.step(want[-1], cache)
    want = torch.cat(want, 1).numpy()
    np.save(os.path.join(work, "want.npy"), want)
    onnx.save(X.export_moeut(model), os.path.join(work, "m.onnx"))
    artifact = os.path.join(work, "gen.moeb")
    compile_model(bin_dir, os.path.join(work, "m.onnx"), artifact,
                  ["--generation", *flags])
    got = {threads: run_model(bin_dir, artifact, {"tokens": prompt.numpy()},
                              os.path.join(work, f"gen.{threads}"), threads,
                              "generated.npy", ["--generate", str(n)])
           for threads in (1, 2)}
    why = []
    if not np.array_equal(got[1], got[2]):
        why.append("1 and 2 threads differ")
    if got[1].shape != want.shape:
        return why + [f"generated {got[1].shape}, PyTorch {want.shape}"], False
    if np.array_equal(got[1], want):
        return why, False
    # The first step where a sequence differs, and those sequences: a
    # near-tie when PyTorch's top two logits there are closer than ten
    # times the tolerance at that size.
    first = int(np.argwhere((got[1] != want).any(0))[0][0])
    differ = np.flatnonzero(got[1][:, first] != want[:, first])
    bound = 10 * (ATOL + RTOL * tops[first][differ])
    if not why and (gaps[first][differ] < bound).all():
        return [], True
    return why + [f"token {first} differs in sequences {differ.tolist()}: "
                  f"{got[1][differ, first].tolist()} vs PyTorch "
                  f"{want[differ, first].tolist()} (top-2 gaps "
                  f"{gaps[first][differ].tolist()})"], False


CASES = {"ffn": ffn_case, "moeut": moeut_case, "generate": generate_case}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cases", type=int, default=6)
    p.add_argument("--seconds", type=float, default=0,
                   help="run cases until this many seconds have passed "
                        "(instead of --cases)")
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--case", type=int, help="run only this case")
    p.add_argument("--keep", help="copy failing cases' files here "
                                  "(seedS-caseI; want.npy: the reference)")
    a = p.parse_args()
    kinds = a.kinds.split(",")
    if any(k not in CASES for k in kinds):
        p.error(f"--kinds takes a list of {', '.join(KINDS)}")
    if a.cases < 1 or a.seconds < 0 or (a.case is not None and a.case < 0):
        p.error("--cases must be at least 1, --seconds and --case not "
                "negative")
    # As under lit (test/lit.cfg.py): fresh buffers filled with NaNs.
    os.environ.setdefault("MOE_RUNTIME_POISON", "1")
    # PyTorch's results and near-tie gaps the same on every machine.
    torch.set_num_threads(1)
    passed = failed = tied = 0
    start = time.monotonic()
    index = a.case if a.case is not None else 0
    while True:
        if a.case is None and (
                (a.seconds and time.monotonic() - start >= a.seconds) or
                (not a.seconds and index >= a.cases)):
            break
        rng = random.Random(f"{a.seed}:{index}")
        kind = kinds[index % len(kinds)]
        with tempfile.TemporaryDirectory() as work:
            info = {"label": kind}
            near_tie = False
            try:
                why, near_tie = CASES[kind](rng, a.bin, work, info)
            except Failure as e:
                why = [str(e)]
            except Exception:  # the script's own error: this case fails
                why = ["error in the test: " + " | ".join(
                    traceback.format_exc().strip().splitlines()[-3:])]
            label = info["label"]
            rerun = shlex.join([sys.executable, sys.argv[0], "--bin", a.bin,
                                "--seed", str(a.seed), "--kinds", a.kinds,
                                "--case", str(index)])
            if why:
                failed += 1
                print(f"FAIL {index} {label}: " + "; ".join(why))
                print(f"  rerun: {rerun}")
                if a.keep:
                    shutil.copytree(work, os.path.join(
                        a.keep, f"seed{a.seed}-case{index}"),
                        dirs_exist_ok=True)
            elif near_tie:
                tied += 1
                print(f"NEAR-TIE {index} {label}: routing or argmax nearly "
                      "tied; only thread invariance checked")
            else:
                passed += 1
                print(f"PASS {index} {label}")
        sys.stdout.flush()
        if a.case is not None:
            break
        index += 1
    print(f"random: {passed} passed, {failed} failed, {tied} near-tie")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Differential test of moe-cpu-tile-contractions' one-row forms against
the reference lowering.

usage: contractions_vs_reference.py --bin BUILD/bin

Writes one MLIR module whose @main holds contractions that read their
output's vector dim strided in the right-hand side:

  - selectors "nd,ed->ne" (x [N, D], w [E, D] -> [N, E]) at widths D that
    are a multiple of a vector, leave a tail, or are narrower than one
    vector, and E below a vector, not a multiple of the dot products'
    strips of 8, or many strips;
  - a decode step's attention scores against a head-major cache
    "bhtd,bhpd->bhtp" (q [B, H, 1, d], the first P rows of a cache
    [B, H, P + 3, d] -> [B, H, 1, P]: a strided slice, as a generation
    context's cache with room for more positions);

and contractions whose vector dim is contiguous, for the wide one-row
register tiles (1 x 256 with AVX-512, 1 x 64 with AVX, 1 x 32 with SSE)
and their column
tails:

  - matmuls "nk,kc->nc" (x [N, K], w [K, C]) with C above, between and
    below the one-row tiles, static (split into power-of-two slices) or
    dynamic (a masked tail);
  - a decode step's probabilities times a head-major value cache
    "bhtp,bhpd->bhtd" (p [B, H, 1, P], the first P rows of a cache
    [B, H, P + 3, d]);
  - matmuls whose [K, C] right-hand side is a constant, which the tiled
    builds store in column panels (moe-pack-expert-weights' dense-weights)
    and the reference row-major;

and batched products with two row dims, a Mixture-of-Tokens layer's
expert product "tced,edj->tcej" (z [T, C, E, D], w [E, D, J]): the rows
t and c fold into one row dim and the expert loop e runs outside the row
tiles (in parallel where the build has parallel loops); and its mix
"cgte,cgtd->tced" (m [C, g, T, E], x [C, g, T, D]), whose batch dims t
and c are dynamic; and a weighted sum over two reduction dims
"nst,nsto->no" (w [N, S, T], y [N, S, T, O]), whose zero-filled output
the k loop of t reads once per s.

It is compiled with moe-compile at the host's vector width, for x86-64-v2
(128-bit vectors) and, where the host has AVX2, x86-64-v3 (256-bit), with
--no-dot-products (the strided-column register tiles), with
--no-parallel-loops (every loop sequential: no parallel column chunks or
dot-product strips), and with --reference; each runs under moe-run (one
thread; the host's width also on two, which must give the bits of the
sequential build on one) at row counts N, cache lengths P and
batches B that give one row (the dot products), full row tiles plus one
row tails, and full and partial strips. Every output is compared with the
reference's within |a - b| <= 1e-5 + 1e-4 |b| (docs/tolerance.md) and
with a float64 NumPy product within 1e-5 + 1e-4 sum|terms| (float32
rounding grows with the terms, not with their sum, which may be near 0).
Every run has MOE_RUNTIME_POISON set: fresh outputs and workspace hold
NaN, not zeros. Prints one line per case and
"contractions: N passed, M failed".
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

from host_features import host_has

ATOL, RTOL = 1e-5, 1e-4
# (D, E): 16 = one AVX-512 vector, 37 and 82 leave tails, 3 and 8 are
# narrower than a vector, 13 and 155 leave partial strips.
SELECTORS = [(37, 13), (16, 8), (82, 155), (20, 3), (4, 40)]
# (H, d) of the attention scores against a cache.
SCORES = [(3, 82), (2, 16), (1, 17)]
# (K, C) of the matmuls; C None: dynamic, 11 P + 2 columns in each run
# (13 to 365: narrower than a vector, partial and more than one tile).
# With parallel loops (moe-compile's default), (412, 300), (64, 1100),
# (128, 1024) and (64, 1025) split their one-row loop into parallel column
# chunks: with a remainder chunk, with none (1024), and with a remainder of
# one column, narrower than a vector, joined to the last chunk (1025); the
# others have too few products per row for it. K = 1: a k loop of one
# step, inlined, whose zero-filled output the tile reads. (412, 160): few
# enough columns that the chunks would be narrower than the one-row tile
# if they were halved below eight vectors (they are not: a narrower tile
# rotates its accumulators, other bits than the sequential build's).
MATMULS = [(412, 300), (128, 412), (37, 520), (16, None), (3, 64),
           (64, 1100), (128, 1024), (64, 1025), (1, 40), (412, 160)]
# (K, C) of matmuls whose right-hand side is a constant: stored in column
# panels as wide as a register tile (moe-pack-expert-weights'
# dense-weights; 8, 16 or 64 columns), the last one zero-padded where that
# does not divide C and the padding is at most C / 8 (500: 12 columns at
# 16 and 64, 4 at 8; 96 at 64 would need 32, so it stays row-major
# there), row-major in the reference; K = 3: a k loop shorter than the
# row tiles' unrolling. 256 x 512: enough work for a row's panels to be
# split over the threads (one panel per iteration of the parallel loop).
# 130 x 2048 (1.04 MB): large enough for the panel loop outside the rows
# (moe-cpu-tile-contractions' stored panels, at least 1 MB; checked on its
# own module's buffers).
CONST_MATMULS = [(37, 96), (64, 256), (3, 1024), (20, 500), (256, 512),
                 (130, 2048)]
# Their weights, drawn once (the module holds them).
CONSTS = {f"cmw{i}": np.random.default_rng(100 + i).standard_normal(
    (k, c)).astype(np.float32) for i, (k, c) in enumerate(CONST_MATMULS)}
# (H, d) of the probabilities times a value cache.
VALUES = [(3, 82), (2, 16), (1, 300)]
# (E, D, J) of the batched products "tced,edj->tcej", run with T = N and
# C = B (T x C rows: one, a partial row tile, full tiles and a tail).
BATCHED = [(3, 37, 40), (2, 16, 300), (4, 82, 128)]
# (E, g, D) of the mixes "cgte,cgtd->tced" (E rows: full and partial row
# tiles), run with T = N and C = B.
MIXES = [(20, 5, 40), (8, 3, 17)]
# (S, T, O) of the weighted sums "nst,nsto->no", run with N rows.
SUMS = [(2, 3, 40), (3, 1, 300)]
# Each family's output, lhs and rhs name prefixes (as in module()), its
# einsum, and its cases.
EINSUMS = [("y", "nd,ed->ne", "x", "w", SELECTORS),
           ("s", "bhtd,bhpd->bhtp", "q", "k", SCORES),
           ("my", "nk,kc->nc", "mx", "mw", MATMULS),
           ("cmy", "nk,kc->nc", "cmx", "cmw", CONST_MATMULS),
           ("vo", "bhtp,bhpd->bhtd", "vp", "vv", VALUES),
           ("bh", "tced,edj->tcej", "bz", "bw", BATCHED),
           ("xz", "cgte,cgtd->tced", "xm", "xx", MIXES),
           ("co", "nst,nsto->no", "cw", "cy", SUMS)]
# Positions of a cache after the P that are read (NaN: a read of them
# shows in the output).
SPARE = 3
# (N rows, P cache length, B batch) per run.
RUNS = [(1, 1, 1), (1, 9, 2), (7, 8, 1), (9, 17, 2), (17, 33, 1)]


def contraction(out, maps, iterators, lhs, rhs, init, types):
    """Lines of `out = init + sum lhs * rhs` as a linalg.generic."""
    lt, rt, ot = types
    its = ", ".join(f'"{it}"' for it in iterators)
    return [
        f"  {out} = linalg.generic {{indexing_maps = [{maps}], "
        f"iterator_types = [{its}]}} ins({lhs}, {rhs} : {lt}, {rt}) "
        f"outs({init} : {ot}) {{",
        "  ^bb0(%a: f32, %b: f32, %c: f32):",
        "    %m = arith.mulf %a, %b : f32",
        "    %s = arith.addf %c, %m : f32",
        "    linalg.yield %s : f32",
        f"  }} -> {ot}"]


def module():
    args, results, body, rets = [], [], [], []
    body.append("  %c0 = arith.constant 0 : index")
    body.append("  %c1 = arith.constant 1 : index")
    body.append("  %c2 = arith.constant 2 : index")
    body.append("  %zero = arith.constant 0.0 : f32")
    body.append(f"  %spare = arith.constant {SPARE} : index")

    def case(names, types, sizes, maps, iterators, cache=None):
        """One contraction: inputs names[0], names[1] and result names[2]
        (also their onnx names) of `types`, the result's dynamic sizes
        `sizes` as (input 0 or 1, dim), zero-filled first. With `cache`
        (the input's type, [B, H, ?, d]), input 1 is its first P = dim 2
        - SPARE positions, a strided slice of types[1]."""
        (a, b, out), (at, bt, ot) = names, types
        args.extend([f'%{a}: {at} {{onnx.name = "{a}"}}',
                     f'%{b}: {cache or bt} {{onnx.name = "{b}"}}'])
        results.append(f'{ot} {{onnx.name = "{out}"}}')
        if cache:
            body.extend([
                f"  %{b}_c = tensor.dim %{b}, %c2 : {cache}",
                f"  %{b}_p = arith.subi %{b}_c, %spare : index",
                f"  %{b}_b = tensor.dim %{b}, %c0 : {cache}",
                f"  %{b}_s = tensor.extract_slice %{b}[0, 0, 0, 0] "
                f"[%{b}_b, {cache.split('x')[1]}, %{b}_p, "
                f"{cache.split('x')[3]}] [1, 1, 1, 1] : {cache} to {bt}"])
            b = f"{b}_s"
        dims = []
        for j, (src, d) in enumerate(sizes):
            name, t = (a, at) if src == 0 else (b, bt)
            body.append(f"  %{out}_d{j} = tensor.dim %{name}, %c{d} : {t}")
            dims.append(f"%{out}_d{j}")
        body.extend([
            f"  %{out}_e = tensor.empty({', '.join(dims)}) : {ot}",
            f"  %{out}_f = linalg.fill ins(%zero : f32) outs(%{out}_e : {ot})"
            f" -> {ot}"])
        body.extend(contraction(f"%{out}", maps, iterators, f"%{a}",
                                f"%{b}", f"%{out}_f", types))
        rets.append((f"%{out}", ot))

    two_d = ["parallel", "parallel", "reduction"]
    four_d = ["parallel"] * 4 + ["reduction"]
    for i, (d, e) in enumerate(SELECTORS):
        case((f"x{i}", f"w{i}", f"y{i}"),
             (f"tensor<?x{d}xf32>", f"tensor<{e}x{d}xf32>",
              f"tensor<?x{e}xf32>"),
             [(0, 0)], "#sel_x, #sel_w, #sel_y", two_d)
    for i, (h, d) in enumerate(SCORES):
        case((f"q{i}", f"k{i}", f"s{i}"),
             (f"tensor<?x{h}x1x{d}xf32>", f"tensor<?x{h}x?x{d}xf32>",
              f"tensor<?x{h}x1x?xf32>"),
             [(0, 0), (1, 2)], "#att_q, #att_k, #att_s", four_d,
             cache=f"tensor<?x{h}x?x{d}xf32>")
    for i, (k, c) in enumerate(MATMULS):
        cs = "?" if c is None else str(c)
        case((f"mx{i}", f"mw{i}", f"my{i}"),
             (f"tensor<?x{k}xf32>", f"tensor<{k}x{cs}xf32>",
              f"tensor<?x{cs}xf32>"),
             [(0, 0)] + ([(1, 1)] if c is None else []),
             "#mm_x, #mm_w, #mm_y", two_d)
    for i, (k, c) in enumerate(CONST_MATMULS):
        # The weight as a dense constant, its bytes in hex (little endian).
        w = CONSTS[f"cmw{i}"]
        wt, xt, yt = (f"tensor<{k}x{c}xf32>", f"tensor<?x{k}xf32>",
                      f"tensor<?x{c}xf32>")
        args.append(f'%cmx{i}: {xt} {{onnx.name = "cmx{i}"}}')
        results.append(f'{yt} {{onnx.name = "cmy{i}"}}')
        body.extend([
            f'  %cmw{i} = arith.constant dense<"0x{w.tobytes().hex().upper()}">'
            f" : {wt}",
            f"  %cmy{i}_d0 = tensor.dim %cmx{i}, %c0 : {xt}",
            f"  %cmy{i}_e = tensor.empty(%cmy{i}_d0) : {yt}",
            f"  %cmy{i}_f = linalg.fill ins(%zero : f32) outs(%cmy{i}_e : "
            f"{yt}) -> {yt}"])
        body.extend(contraction(f"%cmy{i}", "#mm_x, #mm_w, #mm_y", two_d,
                                f"%cmx{i}", f"%cmw{i}", f"%cmy{i}_f",
                                (xt, wt, yt)))
        rets.append((f"%cmy{i}", yt))
    for i, (h, d) in enumerate(VALUES):
        case((f"vp{i}", f"vv{i}", f"vo{i}"),
             (f"tensor<?x{h}x1x?xf32>", f"tensor<?x{h}x?x{d}xf32>",
              f"tensor<?x{h}x1x{d}xf32>"),
             [(0, 0)], "#pv_p, #pv_v, #pv_o", four_d,
             cache=f"tensor<?x{h}x?x{d}xf32>")
    for i, (e, d, j) in enumerate(BATCHED):
        case((f"bz{i}", f"bw{i}", f"bh{i}"),
             (f"tensor<?x?x{e}x{d}xf32>", f"tensor<{e}x{d}x{j}xf32>",
              f"tensor<?x?x{e}x{j}xf32>"),
             [(0, 0), (0, 1)], "#bt_z, #bt_w, #bt_h", four_d)
    for i, (e, g, d) in enumerate(MIXES):
        case((f"xm{i}", f"xx{i}", f"xz{i}"),
             (f"tensor<?x{g}x?x{e}xf32>", f"tensor<?x{g}x?x{d}xf32>",
              f"tensor<?x?x{e}x{d}xf32>"),
             [(0, 2), (0, 0)], "#mx_m, #mx_x, #mx_z", four_d)
    for i, (st, tt, o) in enumerate(SUMS):
        case((f"cw{i}", f"cy{i}", f"co{i}"),
             (f"tensor<?x{st}x{tt}xf32>", f"tensor<?x{st}x{tt}x{o}xf32>",
              f"tensor<?x{o}xf32>"),
             [(0, 0)], "#ws_w, #ws_y, #ws_o",
             ["parallel", "parallel", "reduction", "reduction"])
    head = [
        "#ws_w = affine_map<(n, o, s, t) -> (n, s, t)>",
        "#ws_y = affine_map<(n, o, s, t) -> (n, s, t, o)>",
        "#ws_o = affine_map<(n, o, s, t) -> (n, o)>",
        "#mx_m = affine_map<(t, c, e, d, g) -> (c, g, t, e)>",
        "#mx_x = affine_map<(t, c, e, d, g) -> (c, g, t, d)>",
        "#mx_z = affine_map<(t, c, e, d, g) -> (t, c, e, d)>",
        "#bt_z = affine_map<(t, c, e, j, d) -> (t, c, e, d)>",
        "#bt_w = affine_map<(t, c, e, j, d) -> (e, d, j)>",
        "#bt_h = affine_map<(t, c, e, j, d) -> (t, c, e, j)>",
        "#sel_x = affine_map<(n, e, d) -> (n, d)>",
        "#sel_w = affine_map<(n, e, d) -> (e, d)>",
        "#sel_y = affine_map<(n, e, d) -> (n, e)>",
        "#att_q = affine_map<(b, h, t, p, d) -> (b, h, t, d)>",
        "#att_k = affine_map<(b, h, t, p, d) -> (b, h, p, d)>",
        "#att_s = affine_map<(b, h, t, p, d) -> (b, h, t, p)>",
        "#mm_x = affine_map<(n, c, k) -> (n, k)>",
        "#mm_w = affine_map<(n, c, k) -> (k, c)>",
        "#mm_y = affine_map<(n, c, k) -> (n, c)>",
        "#pv_p = affine_map<(b, h, t, d, p) -> (b, h, t, p)>",
        "#pv_v = affine_map<(b, h, t, d, p) -> (b, h, p, d)>",
        "#pv_o = affine_map<(b, h, t, d, p) -> (b, h, t, d)>",
        "func.func @main(" + ", ".join(args) + ") -> ("
        + ", ".join(results) + ") {"]
    tail = ["  return " + ", ".join(v for v, _ in rets) + " : "
            + ", ".join(t for _, t in rets), "}"]
    return "\n".join(head + body + tail) + "\n"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    args = parser.parse_args()
    compile_tool = os.path.join(args.bin, "moe-compile")
    run_tool = os.path.join(args.bin, "moe-run")
    variants = [("native", []), ("x86-64-v2", ["--march=x86-64-v2"]),
                ("no-dot-products", ["--no-dot-products"]),
                ("sequential", ["--no-parallel-loops"])]
    if host_has("avx2") and host_has("fma"):
        variants.append(("x86-64-v3", ["--march=x86-64-v3"]))
    rng = np.random.default_rng(0)
    # Fresh outputs and workspace filled with NaN (docs/runtime.md): code
    # that reads an output it never wrote (a zero fill wrongly dropped)
    # fails here instead of reading a fresh page's zeros.
    poisoned = dict(os.environ, MOE_RUNTIME_POISON="1")
    passed = failed = 0
    with tempfile.TemporaryDirectory() as work:
        source = os.path.join(work, "m.mlir")
        with open(source, "w") as f:
            f.write(module())
        artifacts = {}
        for name, flags in variants + [("reference", ["--reference"])]:
            artifacts[name] = os.path.join(work, name + ".moeb")
            # Every loop split whatever its work (--parallel-min-work=0):
            # at the small N here the default's threshold would leave the
            # parallel paths one chunk.
            subprocess.run([compile_tool, "-q", "--parallel-min-work=0",
                            source, "-o", artifacts[name]] + flags,
                           check=True)
        # The constant weights that the panels divide (256, 512 and 1024 at
        # every vector width) or cover with little padding (500) are read in
        # column panels: the packed contraction's result is collapsed back
        # to [N, C], and the padded one's sliced to its first 500 columns.
        moe_ir = subprocess.run([compile_tool, "-q", source, "--emit=moe",
                                 "-o", "-"], check=True, capture_output=True,
                                text=True).stdout
        packed = moe_ir.count("tensor.collapse_shape")
        padded = len(re.findall(r"tensor\.extract_slice .* to tensor<\?x500xf32>",
                                moe_ir))
        ok = packed >= 4 and padded == 1
        print(f"{'ok  ' if ok else 'FAIL'} constant weights in column panels "
              f"at the host's width: {packed} packed contractions, "
              f"{padded} padded")
        passed += ok
        failed += not ok
        # The 1 MB one alone: its row tiles run inside a parallel loop over
        # its stored panels (2048 / P of them), none over the row tiles.
        k, c = CONST_MATMULS[-1]
        w = CONSTS[f"cmw{len(CONST_MATMULS) - 1}"]
        alone = os.path.join(work, "alone.mlir")
        with open(alone, "w") as f:
            f.write(f"""func.func @main(%x: tensor<?x{k}xf32> {{onnx.name = "x"}}) -> tensor<?x{c}xf32> {{
  %w = arith.constant dense<"0x{w.tobytes().hex().upper()}"> : tensor<{k}x{c}xf32>
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?x{k}xf32>
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty(%n) : tensor<?x{c}xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<?x{c}xf32>) -> tensor<?x{c}xf32>
  %y = linalg.matmul ins(%x, %w : tensor<?x{k}xf32>, tensor<{k}x{c}xf32>) outs(%f : tensor<?x{c}xf32>) -> tensor<?x{c}xf32>
  return %y : tensor<?x{c}xf32>
}}
""")
        buffers = subprocess.run([compile_tool, "-q", alone, "--emit=buffers",
                                  "-o", "-"], check=True, capture_output=True,
                                 text=True).stdout
        loops = [int(m) for m in re.findall(
            r"scf\.parallel \(%\w+\) = \(%c0\) to \(%c(\d+)\) step \(%c1\)",
            buffers)]
        ok = (any(c % m == 0 and c // m in (8, 16, 64) for m in loops)
              and not re.search(r"scf\.parallel .* step \(%c[2-9]\)", buffers))
        print(f"{'ok  ' if ok else 'FAIL'} a {k} x {c} constant weight's row "
              f"tiles inside a parallel loop over its panels: {loops}")
        passed += ok
        failed += not ok
        for n, p, b in RUNS:
            feeds = {}
            for i, (d, e) in enumerate(SELECTORS):
                feeds[f"x{i}"] = rng.standard_normal((n, d)).astype(
                    np.float32)
                feeds[f"w{i}"] = rng.standard_normal((e, d)).astype(
                    np.float32)
            # The caches [B, H, P + SPARE, d]: NaN after P.
            def cache(h, d):
                c = np.full((b, h, p + SPARE, d), np.nan, np.float32)
                c[:, :, :p] = rng.standard_normal((b, h, p, d))
                return c

            for i, (h, d) in enumerate(SCORES):
                feeds[f"q{i}"] = rng.standard_normal((b, h, 1, d)).astype(
                    np.float32)
                feeds[f"k{i}"] = cache(h, d)
            for i, (k, c) in enumerate(MATMULS):
                cols = 11 * p + 2 if c is None else c
                feeds[f"mx{i}"] = rng.standard_normal((n, k)).astype(
                    np.float32)
                feeds[f"mw{i}"] = rng.standard_normal((k, cols)).astype(
                    np.float32)
            for i, (k, c) in enumerate(CONST_MATMULS):
                feeds[f"cmx{i}"] = rng.standard_normal((n, k)).astype(
                    np.float32)
            for i, (h, d) in enumerate(VALUES):
                feeds[f"vp{i}"] = rng.standard_normal((b, h, 1, p)).astype(
                    np.float32)
                feeds[f"vv{i}"] = cache(h, d)
            for i, (e, d, j) in enumerate(BATCHED):
                feeds[f"bz{i}"] = rng.standard_normal((n, b, e, d)).astype(
                    np.float32)
                feeds[f"bw{i}"] = rng.standard_normal((e, d, j)).astype(
                    np.float32)
            for i, (e, g, d) in enumerate(MIXES):
                feeds[f"xm{i}"] = rng.standard_normal((b, g, n, e)).astype(
                    np.float32)
                feeds[f"xx{i}"] = rng.standard_normal((b, g, n, d)).astype(
                    np.float32)
            for i, (st, tt, o) in enumerate(SUMS):
                feeds[f"cw{i}"] = rng.standard_normal((n, st, tt)).astype(
                    np.float32)
                feeds[f"cy{i}"] = rng.standard_normal(
                    (n, st, tt, o)).astype(np.float32)
            # Each output in float64, and the sum of its terms' magnitudes
            # (the scale of float32 rounding in a sum: an output near zero
            # from large terms is not held to 1e-5 absolute).
            specs = [(f"{out}{i}", spec, f"{lhs}{i}", f"{rhs}{i}")
                     for out, spec, lhs, rhs, cases in EINSUMS
                     for i in range(len(cases))]
            expected, magnitude = {}, {}
            for key, spec, lhs, rhs in specs:
                a = feeds[lhs].astype(np.float64)
                w = (feeds[rhs] if rhs in feeds else CONSTS[rhs]).astype(
                    np.float64)
                if rhs[0] == "k" or rhs.startswith("vv"):
                    w = w[:, :, :p]  # the P positions read
                expected[key] = np.einsum(spec, a, w)
                magnitude[key] = np.einsum(spec, np.abs(a), np.abs(w))
            inputs = []
            for key, value in feeds.items():
                path = os.path.join(work, key + ".npy")
                np.save(path, value)
                inputs += ["--input", f"{key}={path}"]
            outputs = {}
            runs = [(name, path, 1) for name, path in artifacts.items()]
            runs.append(("native-2", artifacts["native"], 2))
            for name, path, threads in runs:
                out = os.path.join(work, f"out-{name}")
                os.makedirs(out, exist_ok=True)
                subprocess.run([run_tool, path, "--output-dir", out,
                                "--threads", str(threads)]
                               + inputs, check=True, capture_output=True,
                               env=poisoned)
                outputs[name] = {k: np.load(os.path.join(out, k + ".npy"))
                                 for k in expected}
            # The split over threads (parallel column chunks and strips)
            # keeps every output element's terms in order: the same bits
            # on two threads as the sequential build's on one.
            for key in expected:
                seq = outputs["sequential"][key]
                ok = all(np.array_equal(outputs[v][key], seq)
                         for v in ("native", "native-2"))
                print(f"{'ok  ' if ok else 'FAIL'} bitwise native (1 and 2 "
                      f"threads) vs sequential N={n} P={p} B={b} {key}")
                passed += ok
                failed += not ok
            for name, _ in variants:
                for key, want in expected.items():
                    got = outputs[name][key]
                    ref = outputs["reference"][key]
                    ok = (got.shape == ref.shape == want.shape
                          and np.all(np.abs(got - ref)
                                     <= ATOL + RTOL * np.abs(ref))
                          and np.all(np.abs(got - want)
                                     <= ATOL + RTOL * magnitude[key]))
                    diff = (float(np.abs(got - ref).max())
                            if got.shape == ref.shape and got.size else 0.0)
                    print(f"{'ok  ' if ok else 'FAIL'} {name} N={n} P={p} "
                          f"B={b} {key} {list(got.shape)} "
                          f"max|diff| {diff:.2e}")
                    passed += ok
                    failed += not ok
    print(f"contractions: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

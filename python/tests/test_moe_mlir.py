"""The Python package moe_mlir (docs/python.md): every fixture compiled with
moe_mlir.compile and run with moe_mlir.InferenceSession agrees with ONNX
Runtime on the same model and inputs; the signature matches ORT's; errors
are exceptions carrying the compiler's diagnostics or the runtime's message;
sessions run from several threads at once.

The fixtures are compiled once per test session, at -O1 for x86-64-v2
(moeut_tiny takes ~16 s at the default -O3 -march=native on two cores,
~5 s so); one test compiles with the defaults.
"""
import gc
import json
import os
import re
import pathlib
import subprocess
import sys
import threading

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import FIXTURES

import moe_mlir

MANIFEST = json.load(open(os.path.join(FIXTURES, "manifest.json")))
# Options of the cached fixture compiles (see the module docstring).
FAST = {"opt_level": 1, "march": "x86-64-v2"}

# An MLIR model (moe dialect): the experts' slot counts and the slot order
# of a counting sort of 2x2 expert ids.
MLIR_MODEL = """\
// moe_mlir test model
func.func @main(%ids: tensor<2x2xi32> {onnx.name = "ids"})
    -> (tensor<5xi32> {onnx.name = "offsets"},
        tensor<4xi32> {onnx.name = "perm"}) {
  %o, %p = moe.dispatch %ids {num_experts = 4 : i64}
      : tensor<2x2xi32> -> tensor<5xi32>, tensor<4xi32>
  return %o, %p : tensor<5xi32>, tensor<4xi32>
}
"""


def model_path(name):
    return os.path.join(FIXTURES, MANIFEST[name]["model"])


def feeds(name):
    return {k: np.load(os.path.join(FIXTURES, f"{name}.{k}.npy"))
            for k in MANIFEST[name]["inputs"]}


@pytest.fixture(scope="session")
def artifact(tmp_path_factory):
    """artifact(name): the path of fixture `name` compiled with FAST (once
    per test session)."""
    work = tmp_path_factory.mktemp("moeb")
    cache = {}

    def get(name):
        if name not in cache:
            path = str(work / f"{name}.moeb")
            assert moe_mlir.compile(model_path(name), path, **FAST) == path
            cache[name] = path
        return cache[name]
    return get


@pytest.fixture(scope="session")
def mlir_artifact(tmp_path_factory):
    """MLIR_MODEL compiled from its text (bytes)."""
    path = str(tmp_path_factory.mktemp("mlir") / "dispatch.moeb")
    moe_mlir.compile(MLIR_MODEL.encode(), path, **FAST)
    return path


@pytest.fixture(scope="session")
def session(artifact):
    """session(name): one InferenceSession per fixture, shared."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = moe_mlir.InferenceSession(artifact(name))
        return cache[name]
    return get


def ort_session(name):
    return ort.InferenceSession(model_path(name),
                                providers=["CPUExecutionProvider"])


# --- Every fixture against ONNX Runtime ---------------------------------------

@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_fixture_matches_onnxruntime(name, session):
    entry = MANIFEST[name]
    inputs = feeds(name)
    got = session(name).run(None, inputs)
    expected = ort_session(name).run(None, inputs)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert isinstance(g, np.ndarray)
        assert g.dtype == e.dtype and g.shape == e.shape
        np.testing.assert_allclose(g, e, atol=entry["atol"],
                                   rtol=entry["rtol"])
    assert got[0].shape == tuple(entry["output_shape"])


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_signature_matches_onnxruntime(name, session):
    sess, ref = session(name), ort_session(name)
    for ours, theirs in ((sess.get_inputs(), ref.get_inputs()),
                         (sess.get_outputs(), ref.get_outputs())):
        assert [a.name for a in ours] == [a.name for a in theirs]
        assert [a.shape for a in ours] == [a.shape for a in theirs]
        assert [a.type for a in ours] == [a.type for a in theirs]
    for arg, array in zip(sess.get_inputs(), feeds(name).values()):
        assert arg.dtype == array.dtype
    assert sess.get_outputs()[0].dtype == np.float32
    assert sess.entries[0] == "main"


def test_output_names_select_and_order(mlir_artifact):
    sess = moe_mlir.InferenceSession(mlir_artifact)
    ids = np.array([[0, 1], [3, 2]], np.int32)
    offsets, perm = sess.run(None, {"ids": ids})
    assert offsets.dtype == np.int32 and offsets.shape == (5,)
    assert perm.tolist() == [0, 1, 3, 2]
    assert offsets.tolist() == [0, 1, 2, 3, 4]
    p, o = sess.run(["perm", "offsets"], {"ids": ids})
    np.testing.assert_array_equal(p, perm)
    np.testing.assert_array_equal(o, offsets)
    (p,) = sess.run(("perm",), {"ids": ids})
    np.testing.assert_array_equal(p, perm)
    assert sess.run([], {"ids": ids}) == []
    with pytest.raises(moe_mlir.InvalidArgument, match="no output 'nope'"):
        sess.run(["nope"], {"ids": ids})


# --- compile() ------------------------------------------------------------------

def test_compile_returns_bytes_and_writes_paths(tmp_path):
    name = "sigma_moe_softmax"
    data = moe_mlir.compile(model_path(name), **FAST)
    assert isinstance(data, bytes) and len(data) > 0
    out = tmp_path / "m.moeb"
    assert moe_mlir.compile(pathlib.Path(model_path(name)), out, **FAST) == out
    # The same model gives the same artifact, from a path or from bytes.
    assert out.read_bytes() == data
    with open(model_path(name), "rb") as f:
        assert moe_mlir.compile(f.read(), **FAST) == data
    sess = moe_mlir.InferenceSession(out)
    np.testing.assert_allclose(sess.run(None, feeds(name))[0],
                               ort_session(name).run(None, feeds(name))[0],
                               atol=1e-5, rtol=1e-4)


def test_compile_with_the_defaults(tmp_path):
    """-O3 -march=native with clang-22, progress lines to the callable."""
    name = "sigma_moe_sigmoid"
    lines = []
    path = moe_mlir.compile(model_path(name), str(tmp_path / "m.moeb"),
                            progress=lines.append)
    assert lines and all(isinstance(line, str) for line in lines)
    assert lines[0].startswith("importing")
    assert any("-O3" in line and "-march=native" in line for line in lines)
    got = moe_mlir.InferenceSession(path).run(None, feeds(name))[0]
    np.testing.assert_allclose(got, ort_session(name).run(None, feeds(name))[0],
                               atol=1e-5, rtol=1e-4)


def test_compile_mlir_text(mlir_artifact):
    sess = moe_mlir.InferenceSession(mlir_artifact)
    assert [i.name for i in sess.get_inputs()] == ["ids"]
    assert sess.get_inputs()[0].shape == [2, 2]
    assert sess.get_inputs()[0].type == "tensor(int32)"
    assert [o.name for o in sess.get_outputs()] == ["offsets", "perm"]


def test_compile_mlir_file(tmp_path):
    src = tmp_path / "m.mlir"
    src.write_text(MLIR_MODEL)
    assert (moe_mlir.compile(src, **FAST) ==
            moe_mlir.compile(MLIR_MODEL.encode(), **FAST))


def test_compile_emit_levels():
    name = model_path("sigma_moe_softmax")
    moe_ir = moe_mlir.compile(name, emit="moe")
    assert isinstance(moe_ir, str) and "func.func @main" in moe_ir
    # On buffers: the register tiles of x86-64-v2's 128-bit vectors, with a
    # multiply and an add per term (x86-64-v2 has no FMA instructions).
    buffers = moe_mlir.compile(name, emit="buffers", **FAST)
    assert isinstance(buffers, str)
    assert re.search(r"-> \(vector<\d+x8xf32>\) \{", buffers)
    assert "arith.mulf" in buffers and "vector.fma" not in buffers
    assert "memref<" in buffers and "tensor<" not in buffers
    llvm_ir = moe_mlir.compile(name, emit="llvm", **FAST)
    assert isinstance(llvm_ir, str) and "define" in llvm_ir
    obj = moe_mlir.compile(name, emit="obj", **FAST)
    assert isinstance(obj, bytes) and obj.startswith(b"\x7fELF")


def test_compile_codegen_options(artifact, tmp_path):
    """reference, parallel_loops, tile, sorted_experts, prefetch_rows,
    fuse_gathers, fuse_epilogues, fuse_elementwise, vector_reductions,
    fast_exp, flash_attention and roll_repeats reach the compiler (each
    visible in the IR); they and dot_products give the same numbers
    (prefetch_rows, fuse_gathers, fuse_epilogues and fuse_elementwise the
    same bits)."""
    name = "moeut_tiny"
    path = model_path(name)
    # moeut_tiny repeats its layer group: one loop unless roll_repeats=False
    # (or the reference lowering).
    assert "moe.repeats" in moe_mlir.compile(path, emit="moe")
    assert "moe.repeats" not in moe_mlir.compile(path, emit="moe",
                                                 roll_repeats=False)
    assert "moe.repeats" not in moe_mlir.compile(path, emit="moe",
                                                 reference=True)
    tiled = moe_mlir.compile(path, emit="buffers", **FAST)
    untiled = moe_mlir.compile(path, emit="buffers", tile=False, **FAST)
    assert "vector<" in tiled and "vector<" not in untiled
    # Parallel loops are the default.
    assert "__moe_parallel_body_" in moe_mlir.compile(
        path, emit="llvm", **FAST)
    assert "__moe_parallel_body_" not in moe_mlir.compile(
        path, emit="llvm", parallel_loops=False, **FAST)
    # Expert rows in slot order between the projections: the linalg IR
    # scatters them back (an inverse permutation) between the two.
    assert moe_mlir.compile(path, emit="linalg", sorted_experts=False) != \
        moe_mlir.compile(path, emit="linalg")
    # The decode step's scores against the cached keys (the vector dim,
    # positions, strided; the selectors are stored [D, E] since
    # moe-fold-constant-layouts does so) as dot products unless
    # dot_products=False.
    assert moe_mlir.compile(path, emit="buffers", dot_products=False,
                            generation=True, **FAST) != \
        moe_mlir.compile(path, emit="buffers", generation=True, **FAST)
    # The expert layers' gathered rows are prefetched unless
    # prefetch_rows=False.
    assert "memref.prefetch" in moe_mlir.compile(path, emit="buffers",
                                                 **FAST)
    assert "memref.prefetch" not in moe_mlir.compile(
        path, emit="buffers", prefetch_rows=False, **FAST)
    # The expert layers' tiles read the gathered rows in place unless
    # fuse_gathers=False (one row copy per expert layer comes back).
    assert moe_mlir.compile(path, emit="buffers", **FAST).count(
        "linalg.copy") < moe_mlir.compile(
            path, emit="buffers", fuse_gathers=False, **FAST).count(
                "linalg.copy")
    # Elementwise consumers of contractions (the expert layers'
    # activations) on the register tiles unless fuse_epilogues=False (one
    # linalg.generic each comes back).
    assert moe_mlir.compile(path, emit="buffers", **FAST).count(
        "linalg.generic") < moe_mlir.compile(
            path, emit="buffers", fuse_epilogues=False, **FAST).count(
                "linalg.generic")
    # Elementwise ops fused into their only reader unless
    # fuse_elementwise=False.
    assert moe_mlir.compile(path, emit="linalg").count("linalg.generic") < \
        moe_mlir.compile(path, emit="linalg", fuse_elementwise=False).count(
            "linalg.generic")
    # Innermost row reductions (the LayerNorms' sums) reassociable unless
    # vector_reductions=False.
    assert "reassoc" in moe_mlir.compile(path, emit="linalg")
    assert "reassoc" not in moe_mlir.compile(path, emit="linalg",
                                             vector_reductions=False)
    # exp as the vectorizable polynomial where the target has FMA (IR only:
    # x86-64-v3 need not run here; its numbers are fast-exp.test's), libm's
    # expf with fast_exp=False and on FAST's x86-64-v2, which has no FMA.
    fma = dict(FAST, march="x86-64-v3")
    assert "math.exp" not in moe_mlir.compile(path, emit="buffers", **fma)
    assert "math.exp" in moe_mlir.compile(path, emit="buffers",
                                          fast_exp=False, **fma)
    assert "math.exp" in moe_mlir.compile(path, emit="buffers", **FAST)
    # Attention flash-style over blocks of 128 keys unless
    # flash_attention=False.
    assert "step %c128" in moe_mlir.compile(path, emit="linalg")
    assert "step %c128" not in moe_mlir.compile(path, emit="linalg",
                                                flash_attention=False)
    expected = moe_mlir.InferenceSession(artifact(name)).run(
        None, feeds(name))
    # Sequential loops and rows in slot order change no bit.
    for i, options in enumerate(({"parallel_loops": False},
                                 {"sorted_experts": False},
                                 {"prefetch_rows": False},
                                 {"fuse_gathers": False},
                                 {"fuse_epilogues": False},
                                 {"fuse_elementwise": False})):
        out = moe_mlir.compile(path, tmp_path / f"b{i}.moeb", **options,
                               **FAST)
        got = moe_mlir.InferenceSession(out, threads=2).run(None,
                                                             feeds(name))
        for g, e in zip(got, expected):
            np.testing.assert_array_equal(g, e, err_msg=str(options))
    for i, options in enumerate(({"parallel_loops": False},
                                 {"roll_repeats": False}, {"tile": False},
                                 {"sorted_experts": False},
                                 {"dot_products": False},
                                 {"flash_attention": False},
                                 {"vector_reductions": False},
                                 {"reference": True})):
        out = moe_mlir.compile(path, tmp_path / f"m{i}.moeb", **options,
                               **FAST)
        got = moe_mlir.InferenceSession(out, threads=2).run(None, feeds(name))
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5,
                                       err_msg=str(options))
    for arg in ("reference", "parallel_loops", "tile", "sorted_experts",
                "dot_products", "prefetch_rows", "fuse_gathers",
                "fuse_epilogues", "fast_exp", "flash_attention", "pack_weights",
                "roll_repeats", "raise_blocks"):
        with pytest.raises(TypeError, match=arg):
            moe_mlir.compile(path, **{arg: 1})


def test_compile_pack_weights(tmp_path):
    """pack_weights reaches the compiler: constant expert weights with a full
    panel (a register tile's width: 16 columns at 256 bits; panel_columns
    sets another) are stored in column panels (moe.unpack_panels) unless
    pack_weights=False, tile=False or reference=True, with the same bits
    as row-major weights (both with accumulator_chains=False: the narrow
    one-row tiles' chains depend on the tile's width)."""
    rng = np.random.default_rng(3)

    def dense(a):
        return "dense<" + np.array2string(
            a, separator=", ", threshold=a.size + 1,
            formatter={"float_kind": lambda v: f"{v:.6e}"}).replace(
                "\n", "") + ">"

    d, hidden, experts = 8, 300, 4
    sel = rng.standard_normal((experts, d)).astype(np.float32)
    w1 = rng.standard_normal((experts, d, hidden)).astype(np.float32)
    w2 = rng.standard_normal((experts, hidden, d)).astype(np.float32)
    path = tmp_path / "ffn.mlir"
    path.write_text(f"""
func.func @main(%x: tensor<?x{d}xf32> {{onnx.name = "x"}}) -> tensor<?x{d}xf32> {{
  %sel = arith.constant {dense(sel)} : tensor<{experts}x{d}xf32>
  %w1 = arith.constant {dense(w1)} : tensor<{experts}x{d}x{hidden}xf32>
  %w2 = arith.constant {dense(w2)} : tensor<{experts}x{hidden}x{d}xf32>
  %y = moe.ffn %x, %sel, %w1, %w2 gate<sigmoid> act<relu> {{k = 2 : i64}}
      : (tensor<?x{d}xf32>, tensor<{experts}x{d}xf32>,
         tensor<{experts}x{d}x{hidden}xf32>,
         tensor<{experts}x{hidden}x{d}xf32>) -> tensor<?x{d}xf32>
  return %y : tensor<?x{d}xf32>
}}
""")
    # w1's 300 columns at 256 bits: 18 panels of 16 and a tail of 12 (in
    # 64-column panels: four and a tail of 44); w2's 8: as it was. (The
    # panels follow the target's vectors, so the IR is checked for one;
    # 300 columns make at least one panel at 128, 256 and 512 bits, so the
    # native build below is packed too.)
    packed = moe_mlir.compile(path, emit="moe", march="x86-64-v3")
    assert "moe.unpack_panels" in packed
    assert f"tensor<{experts}x18x{d}x16xf32>" in packed
    assert f"tensor<{experts}x{d}x12xf32>" in packed
    wide = moe_mlir.compile(path, emit="moe", march="x86-64-v3",
                            panel_columns=64)
    assert f"tensor<{experts}x4x{d}x64xf32>" in wide
    assert f"tensor<{experts}x{d}x44xf32>" in wide
    assert "moe.unpack_panels" in moe_mlir.compile(path, emit="moe")
    for options in ({"pack_weights": False}, {"tile": False},
                    {"reference": True}):
        assert "moe.unpack_panels" not in moe_mlir.compile(
            path, emit="moe", march="x86-64-v3", **options), options
    x = rng.standard_normal((13, d)).astype(np.float32)
    got = {}
    for flag in (True, False):
        out = moe_mlir.compile(path, tmp_path / f"p{flag}.moeb",
                               pack_weights=flag, accumulator_chains=False)
        got[flag] = moe_mlir.InferenceSession(out).run(None, {"x": x})[0]
    np.testing.assert_array_equal(got[True], got[False])
    # And against numpy: sigmoid gates of the top 2 of 4 experts.
    scores = 1 / (1 + np.exp(-(x @ sel.T)))
    want = np.zeros_like(x)
    for n in range(x.shape[0]):
        for e in np.argsort(-scores[n], kind="stable")[:2]:
            want[n] += scores[n, e] * (np.maximum(x[n] @ w1[e], 0) @ w2[e])
    np.testing.assert_allclose(got[True], want, rtol=1e-4, atol=1e-4)
    with pytest.raises(TypeError, match="pack_weights"):
        moe_mlir.compile(path, pack_weights=1)


def test_compile_unknown_march():
    """A march clang would refuse is a CompileError naming it, raised before
    any lowering (not clang's failure after the whole pipeline)."""
    model = os.path.join(FIXTURES, "sigma_moe_sigmoid.onnx")
    for march in ("foo", "i686", "-fplugin=x"):
        with pytest.raises(moe_mlir.CompileError,
                           match=re.escape(
                               f"unsupported march (--march) '{march}'")):
            moe_mlir.compile(model, march=march, emit="moe")


def test_compile_prefetch_panels():
    """prefetch_panels reaches the compiler: the expert matmuls' register
    tiles prefetch the next expert's weights (into L2) unless
    prefetch_panels=False, prefetch_rows=False (no software prefetch at
    all), tile=False or reference=True."""
    model = os.path.join(FIXTURES, "sigma_moe_sigmoid.onnx")
    mark = "locality<2>"
    assert mark in moe_mlir.compile(model, emit="buffers")
    for options in ({"prefetch_panels": False}, {"prefetch_rows": False},
                    {"tile": False}, {"reference": True}):
        assert mark not in moe_mlir.compile(model, emit="buffers",
                                            **options), options
    # The rows' prefetch stays without the panels'.
    assert "locality<3>" in moe_mlir.compile(model, emit="buffers",
                                             prefetch_panels=False)
    with pytest.raises(TypeError, match="prefetch_panels"):
        moe_mlir.compile(model, prefetch_panels=1)


def test_compile_fuse_expert_pairs(tmp_path):
    """fuse_expert_pairs reaches the compiler: by default an expert layer's
    up and down projections share one loop over experts (the hidden
    result given back after it); with False, one loop each; the bits are
    the same either way, and both match the reference lowering."""
    model = os.path.join(FIXTURES, "sigma_moe_sigmoid.onnx")
    fused = moe_mlir.compile(model, emit="linalg")
    apart = moe_mlir.compile(model, emit="linalg", fuse_expert_pairs=False)
    assert "bufferization.dealloc_tensor" in fused
    assert "bufferization.dealloc_tensor" not in apart
    loops = lambda text: len(re.findall(r"scf\.forall \(%\w+\) in \(7\)",
                                        text))
    assert loops(apart) == loops(fused) + 1
    assert "bufferization.dealloc_tensor" not in moe_mlir.compile(
        model, emit="linalg", sorted_experts=False)
    with pytest.raises(TypeError, match="fuse_expert_pairs"):
        moe_mlir.compile(model, fuse_expert_pairs=1)
    x = np.load(os.path.join(FIXTURES, "sigma_moe_sigmoid.x.npy"))
    outs = []
    for options in ({}, {"fuse_expert_pairs": False}, {"reference": True}):
        path = str(tmp_path / f"m{len(outs)}.moeb")
        moe_mlir.compile(model, path, **options)
        outs.append(moe_mlir.InferenceSession(path).run(None, {"x": x})[0])
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_allclose(outs[0], outs[2], rtol=1e-4, atol=1e-5)


def test_compile_fuse_routing(tmp_path):
    """fuse_routing reaches the compiler: by default the router's sigmoid
    on the selected values runs inside the selection's loop over rows;
    with False, as a pass of its own (a linalg.generic); the bits are the
    same either way, and both match the reference lowering."""
    model = os.path.join(FIXTURES, "sigma_moe_sigmoid.onnx")
    own_pass = re.compile(r"linalg\.generic[^\n]*\n\s*\^bb0[^\n]*\n"
                          r"\s*%\w+ = arith\.negf")
    fused = moe_mlir.compile(model, emit="linalg")
    apart = moe_mlir.compile(model, emit="linalg", fuse_routing=False)
    assert "arith.negf" in fused and not own_pass.search(fused)
    assert own_pass.search(apart)
    with pytest.raises(TypeError, match="fuse_routing"):
        moe_mlir.compile(model, fuse_routing=1)
    x = np.load(os.path.join(FIXTURES, "sigma_moe_sigmoid.x.npy"))
    outs = []
    for options in ({}, {"fuse_routing": False}, {"reference": True}):
        path = str(tmp_path / f"r{len(outs)}.moeb")
        moe_mlir.compile(model, path, **options)
        outs.append(moe_mlir.InferenceSession(path).run(None, {"x": x})[0])
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_allclose(outs[0], outs[2], rtol=1e-4, atol=1e-5)


def test_compile_codegen_jobs():
    """codegen_jobs reaches the compiler: a model of many instructions
    (moeut_tiny) is compiled in parts, as many C compilers at once as
    asked; bad values are refused before anything runs."""
    model = os.path.join(FIXTURES, "moeut_tiny.onnx")
    lines = []
    so = moe_mlir.compile(model, emit="obj", codegen_jobs=2,
                          progress=lines.append)
    assert so[:4] == b"\x7fELF"
    native = [line for line in lines if "generating native code" in line]
    assert len(native) == 1 and re.search(r" in \d+ parts, 2 at a time$",
                                          native[0]), native
    with pytest.raises(TypeError, match="codegen_jobs"):
        moe_mlir.compile(model, codegen_jobs=True)
    with pytest.raises(ValueError, match="codegen_jobs"):
        moe_mlir.compile(model, codegen_jobs=-1)


def test_compile_remainder_tiles_and_chains(tmp_path):
    """remainder_tiles, accumulator_chains and panel_columns reach the
    compiler (at x86-64-v3: 16-column panels): an expert's last 2 to 5
    rows as one tile (an scf.index_switch on their count), 1 x 16 one-row
    tiles over four accumulators; each off on request; a panel narrower
    than a vector refused; and every variant computes the same layer
    within the tolerance (the chains sum in another order)."""
    model = os.path.join(FIXTURES, "sigma_moe_sigmoid.onnx")
    v3 = {"march": "x86-64-v3", "emit": "buffers"}
    chains = ("-> (vector<16xf32>, vector<16xf32>, vector<16xf32>, "
              "vector<16xf32>)")
    default = moe_mlir.compile(model, **v3)
    assert "scf.index_switch" in default
    assert chains in default
    assert "memref<7x1x40x16xf32>" in default
    assert "scf.index_switch" not in moe_mlir.compile(
        model, remainder_tiles=False, **v3)
    assert chains not in moe_mlir.compile(model, accumulator_chains=False,
                                          **v3)
    assert "memref<7x1x40x16xf32>" not in moe_mlir.compile(
        model, panel_columns=64, **v3)
    with pytest.raises(moe_mlir.CompileError,
                       match="--panel-columns must be 0"):
        moe_mlir.compile(model, panel_columns=4, march="x86-64-v3")
    with pytest.raises(TypeError, match="panel_columns"):
        moe_mlir.compile(model, panel_columns=True)
    with pytest.raises(ValueError, match="panel_columns"):
        moe_mlir.compile(model, panel_columns=-1)
    with pytest.raises(TypeError, match="remainder_tiles"):
        moe_mlir.compile(model, remainder_tiles=1)
    with pytest.raises(TypeError, match="accumulator_chains"):
        moe_mlir.compile(model, accumulator_chains="yes")
    x = np.load(os.path.join(FIXTURES, "sigma_moe_sigmoid.x.npy"))
    outs = []
    for options in ({}, {"remainder_tiles": False},
                    {"accumulator_chains": False}, {"panel_columns": 64},
                    {"reference": True}):
        path = str(tmp_path / f"m{len(outs)}.moeb")
        moe_mlir.compile(model, path, **options)
        outs.append(moe_mlir.InferenceSession(path).run(None, {"x": x})[0])
    for y in outs[:-1]:
        np.testing.assert_allclose(y, outs[-1], rtol=1e-4, atol=1e-5)


def test_compile_merge_tail_slices(tmp_path):
    """merge_tail_slices reaches the compiler: moeut_tiny's 50-column LM
    head at x86-64-v3 (a one-row tile of 32 + 16 + 2 columns) keeps its
    2-column slice in an 8-lane accumulator (two, with accumulator
    chains), or in a 2-lane one when off; anything but a bool is refused;
    and with accumulator_chains=False both compute the same bits (at the
    cached compiles' x86-64-v2, where the slice goes into 4 lanes)."""
    model = os.path.join(FIXTURES, "moeut_tiny.onnx")
    v3 = {"march": "x86-64-v3", "emit": "buffers"}
    merged = "vector<16xf32>, vector<16xf32>, vector<8xf32>, vector<8xf32>)"
    split = "vector<16xf32>, vector<16xf32>, vector<2xf32>, vector<2xf32>)"
    default = moe_mlir.compile(model, **v3)
    assert merged in default and split not in default
    off = moe_mlir.compile(model, merge_tail_slices=False, **v3)
    assert split in off and merged not in off
    with pytest.raises(TypeError, match="merge_tail_slices"):
        moe_mlir.compile(model, merge_tail_slices=0)
    tokens = np.load(os.path.join(FIXTURES, "moeut_tiny.tokens.npy"))
    outs = []
    for merge in (True, False):
        path = str(tmp_path / f"m{merge}.moeb")
        moe_mlir.compile(model, path, accumulator_chains=False,
                         merge_tail_slices=merge, **FAST)
        session = moe_mlir.InferenceSession(path)
        name = session.get_inputs()[0].name
        outs.append(session.run(None, {name: tokens})[0])
    np.testing.assert_array_equal(outs[0], outs[1])


def test_compile_raise_blocks(tmp_path):
    """raise_blocks reaches the importer: a plain export of a σ-MoE block
    becomes a routed moe.ffn unless raise_blocks=False, with the same
    numbers either way."""
    import torch
    from moe_ref import modules as M
    torch.manual_seed(0)
    path = str(tmp_path / "sigma.onnx")
    with torch.no_grad():
        torch.onnx.export(M.SigmaMoE(16, 8, 12, 2).eval(),
                          (torch.randn(5, 16),), path, opset_version=17,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    raised = moe_mlir.compile(path, emit="moe")
    assert "moe.ffn" in raised or "moe.route" in raised
    unraised = moe_mlir.compile(path, emit="moe", raise_blocks=False)
    assert "moe.ffn" not in unraised and "moe.route" not in unraised
    x = np.random.default_rng(0).standard_normal((7, 16)).astype(np.float32)
    outs = [moe_mlir.InferenceSession(moe_mlir.compile(
        path, tmp_path / f"m{i}.moeb", raise_blocks=flag, **FAST)).run(
            None, {"x": x})[0] for i, flag in enumerate((True, False))]
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-4, atol=1e-5)


def test_compile_bad_bytes():
    with pytest.raises(moe_mlir.CompileError) as info:
        moe_mlir.compile(b"\x08\x07garbage that is no ONNX model\xff\xfe")
    assert str(info.value) == info.value.diagnostics
    assert "moe_mlir.compile" in str(info.value) or "<bytes>" in str(info.value)
    assert "error" in str(info.value)


def test_compile_bad_mlir_reports_the_line():
    with pytest.raises(moe_mlir.CompileError, match=r"^<bytes>: error: "):
        moe_mlir.compile(b"// broken\nfunc.func @main( {\n")


def test_compile_unsupported_op(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    node = helper.make_node("Det", ["x"], ["y"], name="the_det")
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "det.onnx"
    onnx.save(model, str(path))
    with pytest.raises(moe_mlir.CompileError) as info:
        moe_mlir.compile(path, **FAST)
    message = str(info.value)
    assert "Det" in message and "the_det" in message
    assert str(path) in message


def test_compile_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        moe_mlir.compile(tmp_path / "missing.onnx")


def test_compile_bad_arguments():
    path = model_path("sigma_moe_softmax")
    with pytest.raises(ValueError, match="opt_level"):
        moe_mlir.compile(path, opt_level=4)
    with pytest.raises(ValueError, match="emit"):
        moe_mlir.compile(path, emit="asm")
    with pytest.raises(TypeError):
        moe_mlir.compile(12)
    with pytest.raises(TypeError):
        moe_mlir.compile(path, progress="not callable")


def test_compile_missing_c_compiler():
    with pytest.raises(moe_mlir.CompileError, match="no-such-cc"):
        moe_mlir.compile(model_path("sigma_moe_softmax"),
                         cc="no-such-cc-for-moe-mlir")


def test_concurrent_compiles():
    """compile releases the GIL and has one MLIR context per call: threads
    compile at once, each to the same artifact."""
    path = model_path("sigma_moe_softmax")
    expected = moe_mlir.compile(path, **FAST)
    results, errors = [], []

    def worker():
        try:
            results.append(moe_mlir.compile(path, **FAST))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert results == [expected] * 3


def test_progress_exception_propagates():
    class Stop(Exception):
        pass

    calls = []

    def progress(line):
        calls.append(line)
        raise Stop(line)

    with pytest.raises(Stop):
        moe_mlir.compile(model_path("sigma_moe_softmax"), progress=progress,
                         **FAST)
    assert len(calls) == 1  # not called again once it raised


# --- InferenceSession: errors ----------------------------------------------------

def test_wrong_input_name(session):
    x = feeds("sigma_moe_softmax")["x"]
    with pytest.raises(moe_mlir.InvalidArgument,
                       match="the model has no input 'z'") as info:
        session("sigma_moe_softmax").run(None, {"z": x})
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, moe_mlir.RuntimeError)
    assert isinstance(info.value, RuntimeError)
    assert info.value.code == 1 and info.value.code_name == "INVALID_ARGUMENT"


def test_wrong_dtype_is_not_cast(session):
    """As in onnxruntime, no implicit cast: a float64 array for a float32
    input is the runtime's error."""
    x = feeds("sigma_moe_softmax")["x"]
    with pytest.raises(moe_mlir.InvalidArgument,
                       match="input 'x' must be f32, got f64"):
        session("sigma_moe_softmax").run(None, {"x": x.astype(np.float64)})
    with pytest.raises(moe_mlir.InvalidArgument, match="must be i64, got i32"):
        session("moeut_tiny").run(
            None, {"tokens": feeds("moeut_tiny")["tokens"].astype(np.int32)})


def test_unsupported_numpy_dtype(session):
    x = feeds("sigma_moe_softmax")["x"]
    with pytest.raises(moe_mlir.InvalidArgument, match="complex64"):
        session("sigma_moe_softmax").run(None, {"x": x.astype(np.complex64)})
    with pytest.raises(moe_mlir.InvalidArgument):
        session("sigma_moe_softmax").run(None, {"x": "a string"})


def test_wrong_rank_and_static_dim(session):
    x = feeds("sigma_moe_softmax")["x"]
    with pytest.raises(moe_mlir.InvalidArgument,
                       match="input 'x' must have rank 2, got 3"):
        session("sigma_moe_softmax").run(None, {"x": x[None]})
    with pytest.raises(moe_mlir.InvalidArgument,
                       match="input 'x' dim 1 must be 40, got 39"):
        session("sigma_moe_softmax").run(None, {"x": x[:, :39].copy()})


def test_missing_and_extra_inputs(session):
    x = feeds("sigma_moe_softmax")["x"]
    with pytest.raises(moe_mlir.InvalidArgument,
                       match="the model takes 1 inputs, 0 given"):
        session("sigma_moe_softmax").run(None, {})
    with pytest.raises(moe_mlir.InvalidArgument,
                       match="the model takes 1 inputs, 2 given"):
        session("sigma_moe_softmax").run(None, {"x": x, "w": x})


def test_bad_feed_types(session):
    with pytest.raises(TypeError):
        session("sigma_moe_softmax").run(None, [feeds("sigma_moe_softmax")])
    with pytest.raises(TypeError):
        session("sigma_moe_softmax").run("y", feeds("sigma_moe_softmax"))


def test_missing_artifact(tmp_path):
    path = tmp_path / "missing.moeb"
    with pytest.raises(moe_mlir.NotFound, match="missing.moeb") as info:
        moe_mlir.InferenceSession(path)
    assert isinstance(info.value, FileNotFoundError)
    assert info.value.code_name == "NOT_FOUND"


def test_corrupt_artifact(tmp_path, artifact):
    data = pathlib.Path(artifact("sigma_moe_softmax")).read_bytes()
    bad = tmp_path / "truncated.moeb"
    bad.write_bytes(data[:len(data) // 2])
    with pytest.raises(moe_mlir.RuntimeError) as info:
        moe_mlir.InferenceSession(bad)
    assert str(info.value)  # the runtime's message
    garbage = tmp_path / "garbage.moeb"
    garbage.write_bytes(b"not an artifact at all" * 10)
    with pytest.raises(moe_mlir.RuntimeError):
        moe_mlir.InferenceSession(garbage)


def test_threads_option(artifact, tmp_path):
    path = artifact("sigma_moe_softmax")
    with pytest.raises(moe_mlir.InvalidArgument,
                       match="from 1 to 1024") as info:
        moe_mlir.InferenceSession(path, threads=0)
    assert isinstance(info.value, ValueError)
    for bad in (-1, moe_mlir.MAX_THREADS + 1, 1 << 70):
        with pytest.raises(moe_mlir.InvalidArgument):
            moe_mlir.InferenceSession(path, threads=bad)
    with pytest.raises(TypeError):
        moe_mlir.InferenceSession(path, threads=1.5)
    assert moe_mlir.InferenceSession(path, threads=1).threads == 1
    three = moe_mlir.InferenceSession(path, threads=3)
    assert three.threads == 3
    assert moe_mlir.InferenceSession(path).threads >= 1
    # Results do not depend on the thread count (bitwise), with every
    # parallel loop split (parallel_min_work=0: at this small shape the
    # default's threshold leaves most loops one chunk).
    split = str(tmp_path / "split.moeb")
    moe_mlir.compile(model_path("sigma_moe_softmax"), split,
                     parallel_min_work=0, **FAST)
    one = moe_mlir.InferenceSession(split, threads=1)
    three = moe_mlir.InferenceSession(split, threads=3)
    inputs = feeds("sigma_moe_softmax")
    np.testing.assert_array_equal(one.run(None, inputs)[0],
                                  three.run(None, inputs)[0])
    for bad, error in ((-1, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(error, match="parallel_min_work"):
            moe_mlir.compile(model_path("sigma_moe_softmax"), split,
                             parallel_min_work=bad)


def test_map_weights_option(artifact):
    path = artifact("sigma_moe_softmax")
    inputs = feeds("sigma_moe_softmax")
    copied = moe_mlir.InferenceSession(path)
    mapped = moe_mlir.InferenceSession(path, map_weights=True)
    # The same weights, read or mapped: the same bits.
    np.testing.assert_array_equal(copied.run(None, inputs)[0],
                                  mapped.run(None, inputs)[0])
    with pytest.raises(TypeError, match="map_weights must be a bool"):
        moe_mlir.InferenceSession(path, map_weights=1)


def test_profile_option(artifact):
    path = artifact("sigma_moe_softmax")
    inputs = feeds("sigma_moe_softmax")
    plain = moe_mlir.InferenceSession(path, threads=2)
    profiled = moe_mlir.InferenceSession(path, threads=2, profile=True)
    assert profiled.profile() == {"runs": 0, "run_ns": 0, "loops": []}
    # Profiling changes no bit.
    for _ in range(2):
        np.testing.assert_array_equal(profiled.run(None, inputs)[0],
                                      plain.run(None, inputs)[0])
    p = profiled.profile()
    assert p["runs"] == 2 and p["run_ns"] > 0
    assert p["loops"], "the compiled layer runs parallel loops"
    times = [loop["ns"] for loop in p["loops"]]
    assert times == sorted(times, reverse=True)
    for loop in p["loops"]:
        assert loop["name"].startswith("__moe_parallel_body_"), loop
        assert loop["calls"] >= 1 and loop["iterations"] >= loop["calls"]
        assert 0 <= loop["split_calls"] <= loop["calls"]
        assert loop["ns"] <= p["run_ns"]
    # The loops are named after the ONNX nodes they compute, and an MoE
    # layer's loops after its part: "<node>.selector", ".route",
    # ".experts" (build::partLoc).
    nodes = {n.name for n in onnx.load(model_path("sigma_moe_softmax"))
             .graph.node}
    named = [re.fullmatch(r"__moe_parallel_body_[0-9]+_(.+)", loop["name"])
             for loop in p["loops"]]
    assert any(named), p
    parts = {"selector", "route", "experts"}
    for m in filter(None, named):
        node, _, part = m.group(1).rpartition(".")
        assert m.group(1) in nodes or (node in nodes and part in parts), (
            nodes, p)
    assert {m.group(1).rpartition(".")[2] for m in named if m} >= {
        "selector", "experts"}, p
    profiled.reset_profile()
    assert profiled.profile()["runs"] == 0
    with pytest.raises(moe_mlir.InvalidArgument,
                       match="created without profiling"):
        plain.profile()
    plain.reset_profile()
    with pytest.raises(TypeError, match="profile must be a bool"):
        moe_mlir.InferenceSession(path, profile=1)


# --- InferenceSession: inputs and outputs --------------------------------------

def test_non_contiguous_and_byte_swapped_inputs(session):
    sess = session("switchhead")
    x = feeds("switchhead")["x"]
    (expected,) = sess.run(None, {"x": x})
    fortran = np.asfortranarray(x)
    assert not fortran.flags.c_contiguous
    strided = np.empty((x.shape[0], x.shape[1], 2 * x.shape[2]),
                       np.float32)[:, :, ::2]
    strided[...] = x
    swapped = x.astype(x.dtype.newbyteorder(">"))
    readonly = x.copy()
    readonly.flags.writeable = False
    for variant in (fortran, strided, swapped, readonly):
        np.testing.assert_array_equal(sess.run(None, {"x": variant})[0],
                                      expected)
    # Unaligned memory is copied, not refused.
    raw = np.zeros(x.nbytes + 1, np.uint8)
    unaligned = raw[1:].view(np.float32).reshape(x.shape)
    unaligned[...] = x
    assert not unaligned.flags.aligned
    np.testing.assert_array_equal(sess.run(None, {"x": unaligned})[0],
                                  expected)
    # Python lists become arrays (ints -> int64, the tokens' dtype).
    tokens = feeds("moeut_tiny")["tokens"]
    np.testing.assert_array_equal(
        session("moeut_tiny").run(None, {"tokens": tokens.tolist()})[0],
        session("moeut_tiny").run(None, {"tokens": tokens})[0])


def test_inputs_are_not_modified(session):
    inputs = feeds("moeut_tiny")
    before = {k: v.copy() for k, v in inputs.items()}
    session("moeut_tiny").run(None, inputs)
    for k in inputs:
        np.testing.assert_array_equal(inputs[k], before[k])


def test_symbolic_dims_follow_the_inputs(session):
    sess = session("switchhead")
    x = feeds("switchhead")["x"]
    ref = ort_session("switchhead")
    for b, t in ((1, 1), (3, 4), (2, 7)):
        xs = np.ascontiguousarray(np.resize(x, (b, t, x.shape[2])))
        (got,) = sess.run(None, {"x": xs})
        assert got.shape == (b, t, 32)
        np.testing.assert_allclose(got, ref.run(None, {"x": xs})[0],
                                   atol=1e-5, rtol=1e-4)


def test_outputs_own_the_runtime_tensors(artifact):
    sess = moe_mlir.InferenceSession(artifact("sigma_moe_softmax"))
    (y,) = sess.run(None, feeds("sigma_moe_softmax"))
    assert y.flags.c_contiguous and y.flags.writeable
    assert not y.flags.owndata and y.base is not None  # the capsule
    assert type(y.base).__name__ == "PyCapsule"
    expected = y.copy()
    del sess
    gc.collect()
    # The output outlives its session, and is the caller's to write.
    np.testing.assert_array_equal(y, expected)
    y += 1
    np.testing.assert_array_equal(y, expected + 1)


def test_concurrent_runs_on_one_session(session):
    sess = session("moeut_tiny")
    tokens = feeds("moeut_tiny")["tokens"]
    rng = np.random.default_rng(0)
    cases = [rng.integers(0, 50, size=tokens.shape, dtype=np.int64)
             for _ in range(8)]
    expected = [sess.run(None, {"tokens": t})[0] for t in cases]
    results, errors = {}, []
    barrier = threading.Barrier(4)

    def worker(w):
        try:
            barrier.wait()
            for r in range(6):
                i = (w + r) % len(cases)
                results[(w, r)] = (i, sess.run(None, {"tokens": cases[i]})[0])
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == 24
    for i, got in results.values():
        np.testing.assert_array_equal(got, expected[i])


def test_node_arg_repr_and_dtype(session):
    sess = session("moeut_tiny")
    (arg,) = sess.get_inputs()
    assert repr(arg) == ("NodeArg(name='tokens', type='tensor(int64)', "
                         "shape=['B', 'T'])")
    assert arg.dtype == np.dtype(np.int64)
    assert sess.get_outputs()[0].shape == ["B", "T", 50]


def test_running_does_not_load_the_compiler(artifact):
    """InferenceSession needs the runtime only: no LLVM, no MLIR."""
    path = artifact("sigma_moe_softmax")
    x = os.path.join(FIXTURES, "sigma_moe_softmax.x.npy")
    script = (
        "import sys, numpy as np, moe_mlir\n"
        f"s = moe_mlir.InferenceSession({path!r})\n"
        f"s.run(None, {{'x': np.load({x!r})}})\n"
        "maps = open('/proc/self/maps').read()\n"
        "assert 'moe_mlir._compiler' not in sys.modules\n"
        "assert 'libLLVM' not in maps and 'libMLIR' not in maps, maps\n"
        "print('ok')\n")
    env = dict(os.environ)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(
        [here] + [p for p in sys.path if p and os.path.isdir(p)])
    proc = subprocess.run([sys.executable, "-c", script], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"

"""ONNX GroupedMatMul (opset 29, ONNX's MoE op) against two independent
references: ONNX Runtime running the op's defining decomposition
(Gather of the selected weights, then a broadcast MatMul) at opset 17, and
numpy. ONNX Runtime does not implement opset 29 itself. Also the ai.onnx
opsets after 21: ops whose schemas changed only by new element types import
at opset 28 and match ONNX Runtime; the refusals are checked."""
import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort
import pytest
from onnx import TensorProto as TP, helper as H

import moe_mlir

FAST = {"opt_level": 1, "march": "x86-64-v2"}
F, I64 = TP.FLOAT, TP.INT64
G, K, N = 8, 16, 24

rng = np.random.default_rng(7)


def make(nodes, inputs, outputs, inits=(), opset=29):
    graph = H.make_graph(
        nodes, "g", [H.make_tensor_value_info(*i) for i in inputs],
        [H.make_tensor_value_info(*o) for o in outputs], list(inits))
    return H.make_model(graph, opset_imports=[H.make_opsetid("", opset)])


def grouped_model(rows, slots, weights, bias=None, opset=29, id_rows=None):
    inits = [onnx.numpy_helper.from_array(weights, "w")]
    ins = ["x", "w", "ids"]
    if bias is not None:
        inits.append(onnx.numpy_helper.from_array(bias, "b"))
        ins.append("b")
    return make([H.make_node("GroupedMatMul", ins, ["y"], name="gmm")],
                [("x", F, [rows, K]),
                 ("ids", I64, [rows if id_rows is None else id_rows, slots])],
                [("y", F, [rows, slots, N])], inits, opset)


def decomposed_model(rows, slots, weights, bias=None):
    """The defining function of GroupedMatMul, in opset-17 ops."""
    nodes = [
        H.make_node("Gather", ["w", "ids"], ["wsel"]),        # [M,S,K,N]
        H.make_node("Unsqueeze", ["x", "axes12"], ["x4"]),    # [M,1,1,K]
        H.make_node("MatMul", ["x4", "wsel"], ["y4"]),        # [M,S,1,N]
        H.make_node("Squeeze", ["y4", "axes2"], ["y0" if bias is not None
                                                 else "y"]),
    ]
    inits = [onnx.numpy_helper.from_array(weights, "w"),
             onnx.numpy_helper.from_array(np.array([1, 2], np.int64),
                                          "axes12"),
             onnx.numpy_helper.from_array(np.array([2], np.int64), "axes2")]
    if bias is not None:
        nodes += [H.make_node("Gather", ["b", "ids"], ["bsel"]),
                  H.make_node("Add", ["y0", "bsel"], ["y"])]
        inits.append(onnx.numpy_helper.from_array(bias, "b"))
    return make(nodes, [("x", F, [rows, K]), ("ids", I64, [rows, slots])],
                [("y", F, [rows, slots, N])], inits, opset=17)


def compile_model(tmp_path, m, name="m"):
    path = str(tmp_path / f"{name}.onnx")
    onnx.save(m, path)
    return moe_mlir.InferenceSession(
        moe_mlir.compile(path, str(tmp_path / f"{name}.moeb"), **FAST))


def numpy_reference(x, ids, w, b):
    y = np.einsum("mk,mskn->msn", x.astype(np.float64),
                  w[ids].astype(np.float64))
    if b is not None:
        y += b[ids]
    return y


@pytest.mark.parametrize("static_rows,slots,with_bias",
                         [(True, 2, True), (False, 3, False),
                          (False, 1, True)])
def test_grouped_matmul_matches_its_decomposition(tmp_path, static_rows,
                                                  slots, with_bias):
    w = rng.standard_normal((G, K, N)).astype(np.float32)
    b = rng.standard_normal((G, N)).astype(np.float32) if with_bias else None
    sizes = [5] if static_rows else [1, 67, 0]
    rows = 5 if static_rows else "M"
    session = compile_model(tmp_path, grouped_model(rows, slots, w, b))
    reference = ort.InferenceSession(
        decomposed_model(rows, slots, w, b).SerializeToString(),
        providers=["CPUExecutionProvider"])
    for m in sizes:
        x = rng.standard_normal((m, K)).astype(np.float32)
        # Experts 6 and 7 get no rows: empty segments.
        ids = rng.integers(0, G - 2, size=(m, slots)).astype(np.int64)
        got = session.run(None, {"x": x, "ids": ids})[0]
        want = reference.run(None, {"x": x, "ids": ids})[0]
        assert got.shape == (m, slots, N) == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got, numpy_reference(x, ids, w, b),
                                   rtol=1e-5, atol=1e-5)


def test_grouped_matmul_run_time_refusals(tmp_path):
    w = rng.standard_normal((G, K, N)).astype(np.float32)
    b = rng.standard_normal((G, N)).astype(np.float32)
    # Rows of x and ids named apart: the compiled code checks they agree.
    session = compile_model(tmp_path, grouped_model("M", 2, w, b, id_rows="R"))
    x = rng.standard_normal((3, K)).astype(np.float32)
    good = np.array([[0, 1], [2, 3], [7, 0]], np.int64)
    np.testing.assert_allclose(session.run(None, {"x": x, "ids": good})[0],
                               numpy_reference(x, good, w, b), rtol=1e-5,
                               atol=1e-5)
    # ONNX leaves ids outside [0, G) undefined; negative ones do not count
    # back from G. Both are run-time errors here, as is a row count of ids
    # other than that of x.
    for bad in ([[0, 1], [2, -1], [7, 0]], [[0, 1], [2, G], [7, 0]],
                [[0, 1], [2, 1 << 40], [7, 0]]):
        with pytest.raises(moe_mlir.RuntimeError, match=r"expert id outside \[0, E\)"):
            session.run(None, {"x": x, "ids": np.array(bad, np.int64)})
    with pytest.raises(moe_mlir.RuntimeError, match="shape"):
        session.run(None, {"x": x, "ids": good[:2]})
    # Still good after the errors.
    np.testing.assert_allclose(session.run(None, {"x": x, "ids": good})[0],
                               numpy_reference(x, good, w, b), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("case,message", [
    ("bias_shape", r"bias must be \[8, 24\]"),
    ("k_mismatch", "input has 12 columns but weights have K = 16"),
    ("dynamic_slots", "selections per row"),
    ("float_ids", "group_indices must be an integer tensor"),
    ("opset_28", "unsupported op ai.onnx.GroupedMatMul at opset version 28"),
])
def test_grouped_matmul_import_refusals(tmp_path, case, message):
    w = rng.standard_normal((G, K, N)).astype(np.float32)
    bias = np.zeros((G, N + 1) if case == "bias_shape" else (G, N),
                    np.float32)
    m = grouped_model("M", "S" if case == "dynamic_slots" else 2, w,
                      bias if case == "bias_shape" else None,
                      opset=28 if case == "opset_28" else 29)
    if case == "k_mismatch":
        m.graph.input[0].CopyFrom(H.make_tensor_value_info("x", F, ["M", 12]))
    if case == "float_ids":
        m.graph.input[1].CopyFrom(H.make_tensor_value_info("ids", F,
                                                           ["M", 2]))
    path = str(tmp_path / "m.onnx")
    onnx.save(m, path)
    with pytest.raises(moe_mlir.CompileError, match=message) as info:
        moe_mlir.compile(path, str(tmp_path / "m.moeb"), **FAST)
    assert "node 'gmm' (GroupedMatMul)" in str(info.value)


def test_opset_28_type_only_schema_changes_match_ort(tmp_path):
    # Reshape, Transpose, Unsqueeze, Squeeze, Shape, Size, Cast, Flatten,
    # ConstantOfShape (23-25), TopK (24), Einsum, OneHot (28), Cos, Sin (22):
    # new element types only, so the older handlers cover them.
    nodes = [
        H.make_node("Shape", ["x"], ["shp"]),
        H.make_node("Size", ["x"], ["sz"]),
        H.make_node("Cast", ["sz"], ["szf"], to=F),
        H.make_node("Reshape", ["x", "r"], ["xr"]),              # [B, 4, 6]
        H.make_node("Transpose", ["xr"], ["xt"], perm=[0, 2, 1]),
        H.make_node("Einsum", ["xt", "xr"], ["e"], equation="bij,bjk->bik"),
        H.make_node("Flatten", ["e"], ["ef"], axis=1),
        H.make_node("TopK", ["ef", "k"], ["tv", "ti"], axis=1),
        H.make_node("OneHot", ["ti", "depth", "onoff"], ["oh"]),
        H.make_node("Cos", ["tv"], ["c"]),
        H.make_node("Sin", ["tv"], ["s"]),
        H.make_node("Unsqueeze", ["szf", "ax0"], ["szu"]),
        H.make_node("Squeeze", ["szu", "ax0"], ["szs"]),
        H.make_node("Mul", ["c", "szs"], ["cs"]),
        H.make_node("ConstantOfShape", ["shp"], ["ones"],
                    value=H.make_tensor("v", F, [1], [1.0])),
        H.make_node("Add", ["x", "ones"], ["xp"]),
    ]
    inits = [H.make_tensor("r", I64, [3], [0, 4, 6]),
             H.make_tensor("k", I64, [1], [5]),
             H.make_tensor("depth", I64, [], [36]),
             H.make_tensor("onoff", F, [2], [0.0, 1.0]),
             H.make_tensor("ax0", I64, [1], [0])]
    m = make(nodes, [("x", F, ["B", 24])],
             [("cs", F, ["B", 5]), ("s", F, ["B", 5]), ("ti", I64, ["B", 5]),
              ("oh", F, ["B", 5, 36]), ("xp", F, ["B", 24])], inits,
             opset=28)
    m.ir_version = 10
    session = compile_model(tmp_path, m)
    reference = ort.InferenceSession(m.SerializeToString(),
                                     providers=["CPUExecutionProvider"])
    for b in (1, 3):
        x = rng.standard_normal((b, 24)).astype(np.float32)
        for got, want in zip(session.run(None, {"x": x}),
                             reference.run(None, {"x": x})):
            if want.dtype.kind == "i":
                np.testing.assert_array_equal(got, want)
            else:
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_range_27_refuses_16_bit_floats(tmp_path):
    m = make([H.make_node("Range", ["a", "b", "d"], ["r"], name="rng")],
             [("a", TP.FLOAT16, []), ("b", TP.FLOAT16, []),
              ("d", TP.FLOAT16, [])], [("r", TP.FLOAT16, ["n"])], opset=27)
    path = str(tmp_path / "m.onnx")
    onnx.save(m, path)
    with pytest.raises(moe_mlir.CompileError,
                       match=r"node 'rng' \(Range\): Range on 'f16' \(opset 27"):
        moe_mlir.compile(path, str(tmp_path / "m.moeb"), **FAST)

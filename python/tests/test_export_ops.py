"""Numbers against ONNX Runtime for the ops and shape computations that real
`torch.onnx.export` files use (docs/importer.md, "Real exports"): OneHot,
NonZero, Tile, Flatten, Abs, Max, Min, Cos, Sin, Size; Expand,
ConstantOfShape, Range, Slice and Reshape fed by shapes computed in the graph
(static and dynamic); and the claimed ops whose ONNX backend tests are all
below opset 13 (Einsum, Gelu, Not, Range). Refusals of bad computed shapes
at run time are checked too."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as TP, helper as H

import moe_mlir

FAST = {"opt_level": 1, "march": "x86-64-v2"}
F, I64, BOOL = TP.FLOAT, TP.INT64, TP.BOOL


def model(nodes, inputs, outputs, inits=(), opset=17, check=True):
    graph = H.make_graph(nodes, "g",
                         [H.make_tensor_value_info(n, t, s)
                          for n, t, s in inputs],
                         [H.make_tensor_value_info(n, t, s)
                          for n, t, s in outputs],
                         list(inits))
    m = H.make_model(graph, opset_imports=[H.make_opsetid("", opset)])
    if not check:  # ops newer than the installed onnx package knows
        return m
    # Outputs declared without a shape get the rank ONNX shape inference
    # gives them (dims unknown), as exporters write them.
    inferred = onnx.shape_inference.infer_shapes(m)
    known = {v.name: v for v in list(inferred.graph.value_info) +
             list(inferred.graph.output)}
    for out in m.graph.output:
        if not out.type.tensor_type.HasField("shape"):
            rank = len(known[out.name].type.tensor_type.shape.dim)
            out.CopyFrom(H.make_tensor_value_info(
                out.name, out.type.tensor_type.elem_type,
                [f"{out.name}_{i}" for i in range(rank)]))
    onnx.checker.check_model(m)
    return m


def const(name, values, dtype=I64, dims=None):
    values = list(np.asarray(values).ravel())
    return H.make_tensor(name, dtype,
                         [len(values)] if dims is None else dims, values)


def run_both(tmp_path, m, feeds_list):
    path = str(tmp_path / "m.onnx")
    onnx.save(m, path)
    artifact = moe_mlir.compile(path, str(tmp_path / "m.moeb"), **FAST)
    session = moe_mlir.InferenceSession(artifact)
    reference = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for feeds in feeds_list:
        got = session.run(None, feeds)
        want = reference.run(None, feeds)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape, (g.shape, w.shape)
            if w.dtype.kind in "iub":
                np.testing.assert_array_equal(g, w)
            else:
                np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    return session


rng = np.random.default_rng(0)


def randn(*shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_one_hot(tmp_path, axis):
    # Indices out of [-depth, depth) select nothing; negative ones count
    # from depth.
    m = model([H.make_node("OneHot", ["i", "depth", "values"], ["y"],
                           axis=axis)],
              [("i", I64, [2, 3])], [("y", F, None)],
              [const("depth", [5], dims=[]),
               const("values", [-1.0, 3.0], F)])
    i = np.array([[0, 4, -1], [7, -5, 2]], dtype=np.int64)
    run_both(tmp_path, m, [{"i": i}])


def test_one_hot_computed_depth_and_float_indices(tmp_path):
    # depth = the size of x's last dim (a computed shape value).
    m = model([H.make_node("Shape", ["x"], ["s"], start=-1),
               H.make_node("OneHot", ["i", "s", "values"], ["y"])],
              [("i", F, ["n"]), ("x", F, [2, "e"])], [("y", I64, None)],
              [const("values", [0, 1])])
    feeds = [{"i": np.array([0.0, 2.7, 5.0], np.float32), "x": randn(2, 4)},
             {"i": np.array([1.0], np.float32), "x": randn(2, 2)}]
    run_both(tmp_path, m, feeds)


@pytest.mark.parametrize("shape", [[7], [3, 4], [2, 3, 4], ["n", 4]])
def test_non_zero(tmp_path, shape):
    m = model([H.make_node("NonZero", ["x"], ["y"])],
              [("x", F, shape)], [("y", I64, None)])
    concrete = [5 if d == "n" else d for d in shape]
    x = rng.integers(-1, 2, size=concrete).astype(np.float32)
    feeds = [{"x": x}, {"x": np.zeros(concrete, np.float32)},
             {"x": np.ones(concrete, np.float32)}]
    if "n" in shape:
        feeds.append({"x": rng.integers(0, 2, size=[1, 4]).astype(np.float32)})
    run_both(tmp_path, m, feeds)


def test_non_zero_bool_then_gather_rows(tmp_path):
    # The HF expert loop: token ids of the rows whose mask is set, then
    # those rows.
    m = model([H.make_node("NonZero", ["mask"], ["nz"]),
               H.make_node("Squeeze", ["nz", "zero"], ["ids"]),
               H.make_node("Gather", ["x", "ids"], ["rows"], axis=0)],
              [("mask", BOOL, ["n"]), ("x", F, ["n", 3])],
              [("rows", F, None)], [const("zero", [0])])
    feeds = [{"mask": np.array([1, 0, 1, 1, 0], bool), "x": randn(5, 3)},
             {"mask": np.zeros(4, bool), "x": randn(4, 3)}]
    run_both(tmp_path, m, feeds)


def test_tile_and_flatten(tmp_path):
    m = model([H.make_node("Tile", ["x", "r"], ["t"]),
               H.make_node("Flatten", ["t"], ["f0"], axis=0),
               H.make_node("Flatten", ["t"], ["f2"], axis=2),
               H.make_node("Flatten", ["t"], ["f3"], axis=-3)],
              [("x", F, [2, "n", 3])],
              [("t", F, None), ("f0", F, None), ("f2", F, None),
               ("f3", F, None)],
              [const("r", [2, 1, 3])])
    run_both(tmp_path, m, [{"x": randn(2, 4, 3)}, {"x": randn(2, 1, 3)}])


def test_tile_computed_repeats(tmp_path):
    # repeats = [1, n] where n is y's length.
    m = model([H.make_node("Shape", ["y"], ["s"]),
               H.make_node("Concat", ["one", "s"], ["r"], axis=0),
               H.make_node("Tile", ["x", "r"], ["t"])],
              [("x", F, [2, 3]), ("y", F, ["n"])], [("t", F, None)],
              [const("one", [1])])
    run_both(tmp_path, m, [{"x": randn(2, 3), "y": randn(4)},
                           {"x": randn(2, 3), "y": randn(0)}])


def test_abs_max_min_cos_sin(tmp_path):
    m = model([H.make_node("Abs", ["a"], ["abs"]),
               H.make_node("Abs", ["k"], ["iabs"]),
               H.make_node("Max", ["a", "b", "c"], ["max"]),
               H.make_node("Min", ["a", "b"], ["min"]),
               H.make_node("Max", ["k", "j"], ["imax"]),
               H.make_node("Cos", ["a"], ["cos"]),
               H.make_node("Sin", ["a"], ["sin"])],
              [("a", F, [2, 3]), ("b", F, [3]), ("c", F, [2, 1]),
               ("k", I64, [4]), ("j", I64, [1])],
              [(n, F, None) for n in ("abs", "max", "min", "cos", "sin")] +
              [("iabs", I64, None), ("imax", I64, None)])
    feeds = {"a": randn(2, 3) * 4, "b": randn(3), "c": randn(2, 1),
             "k": np.array([-3, 0, 5, -9], np.int64),
             "j": np.array([-1], np.int64)}
    run_both(tmp_path, m, [feeds])


def test_max_propagates_nan(tmp_path):
    m = model([H.make_node("Max", ["a", "b"], ["y"])],
              [("a", F, [3]), ("b", F, [3])], [("y", F, None)])
    a = np.array([1.0, np.nan, -2.0], np.float32)
    b = np.array([np.nan, 0.0, -3.0], np.float32)
    run_both(tmp_path, m, [{"a": a, "b": b}])


def test_shape_arithmetic_reshape_expand(tmp_path):
    # y = x.view(B * T, D); e = ones.expand(B, T, D); c = zeros(T, 2).
    nodes = [
        H.make_node("Shape", ["x"], ["s"]),
        H.make_node("Gather", ["s", "i0"], ["b"], axis=0),
        H.make_node("Gather", ["s", "i1"], ["t"], axis=0),
        H.make_node("Gather", ["s", "i2"], ["d"], axis=0),
        H.make_node("Mul", ["b", "t"], ["bt"]),
        H.make_node("Unsqueeze", ["bt", "ax0"], ["bt1"]),
        H.make_node("Unsqueeze", ["d", "ax0"], ["d1"]),
        H.make_node("Concat", ["bt1", "d1"], ["shape2"], axis=0),
        H.make_node("Reshape", ["x", "shape2"], ["y"]),
        H.make_node("Expand", ["one", "s"], ["e"]),
        H.make_node("Unsqueeze", ["t", "ax0"], ["t1"]),
        H.make_node("Concat", ["t1", "two"], ["cs"], axis=0),
        H.make_node("ConstantOfShape", ["cs"], ["c"],
                    value=H.make_tensor("v", F, [1], [2.5])),
        H.make_node("Size", ["x"], ["n"]),
    ]
    m = model(nodes, [("x", F, ["B", "T", 4])],
              [("y", F, ["BT", 4]), ("e", F, ["B", "T", 4]),
               ("c", F, ["T", 2]), ("n", I64, [])],
              [const("i0", [0], dims=[]), const("i1", [1], dims=[]),
               const("i2", [2], dims=[]), const("ax0", [0]),
               const("one", [1.0], F, dims=[1, 1, 1]), const("two", [2])])
    session = run_both(tmp_path, m, [{"x": randn(2, 3, 4)},
                                     {"x": randn(1, 1, 4)}])
    # T = 0: the computed entry B * T is 0, which Reshape reads as "copy
    # dim 0" (3 * 4 elements for 0): refused, as ONNX Runtime refuses it.
    x = randn(3, 0, 4)
    with pytest.raises(Exception):
        ort.InferenceSession(m.SerializeToString()).run(None, {"x": x})
    with pytest.raises(moe_mlir.InvalidArgument, match="reshape sizes"):
        session.run(None, {"x": x})


def test_slice_computed_ends_on_dynamic_dims(tmp_path):
    # x[:, : T - 1] and x[:, ::-2] on a dynamic T; ends beyond the dim clamp.
    nodes = [
        H.make_node("Shape", ["x"], ["s"]),
        H.make_node("Slice", ["s", "one", "two"], ["t"]),
        H.make_node("Sub", ["t", "one"], ["tm1"]),
        H.make_node("Slice", ["x", "zero", "tm1", "one"], ["a"]),
        H.make_node("Slice", ["x", "m1", "big_neg", "one", "m2"], ["b"]),
        H.make_node("Slice", ["x", "m3", "big", "one"], ["c"]),
    ]
    m = model(nodes, [("x", F, [2, "T"])],
              [("a", F, [2, "a"]), ("b", F, [2, "b"]), ("c", F, [2, "c"])],
              [const("zero", [0]), const("one", [1]), const("two", [2]),
               const("m1", [-1]), const("m2", [-2]), const("m3", [-3]),
               const("big", [2**62]), const("big_neg", [-2**62])])
    run_both(tmp_path, m, [{"x": randn(2, 6)}, {"x": randn(2, 1)},
                           {"x": randn(2, 2)}])


def test_slice_of_a_shape_with_a_huge_step(tmp_path):
    # Folded at compile time (a shape value) and on a dynamic dim at run
    # time: a step of INT64_MAX takes the first element only.
    big = 2**63 - 1
    m = model([H.make_node("Shape", ["x"], ["s"]),
               H.make_node("Slice", ["s", "zero", "three", "zero", "big"],
                           ["first"]),
               H.make_node("Slice", ["x", "zero", "three", "one", "big"],
                           ["cols"])],
              [("x", F, [2, "T", 4])], [("first", I64, [1]),
                                        ("cols", F, [2, "c", 4])],
              [const("zero", [0]), const("one", [1]), const("three", [3]),
               const("big", [big])])
    run_both(tmp_path, m, [{"x": randn(2, 5, 4)}, {"x": randn(2, 1, 4)}])


@pytest.mark.parametrize("dtype", [I64, F])
def test_range_computed(tmp_path, dtype):
    # arange(start, T, delta) with T from a shape; floats accumulate as
    # ONNX Runtime does.
    nodes = [H.make_node("Shape", ["x"], ["s"], start=1, end=2),
             H.make_node("Squeeze", ["s", "ax0"], ["t"])]
    if dtype == F:
        nodes.append(H.make_node("Cast", ["t"], ["lim"], to=F))
    else:
        nodes.append(H.make_node("Identity", ["t"], ["lim"]))
    nodes.append(H.make_node("Range", ["start", "lim", "delta"], ["r"]))
    np_t = np.float32 if dtype == F else np.int64
    m = model(nodes, [("x", F, [1, "T"])], [("r", dtype, None)],
              [const("ax0", [0]),
               H.make_tensor("start", dtype, [], [np_t(1)]),
               H.make_tensor("delta", dtype, [],
                             [np_t(0.3) if dtype == F else np_t(2)])])
    run_both(tmp_path, m, [{"x": randn(1, 7)}, {"x": randn(1, 1)},
                           {"x": randn(1, 0)}])


def test_range_negative_delta_constant_and_computed(tmp_path):
    m = model([H.make_node("Range", ["a", "b", "d"], ["r"]),
               H.make_node("Range", ["c10", "cm3", "cm4"], ["k"])],
              [("a", I64, []), ("b", I64, []), ("d", I64, [])],
              [("r", I64, None), ("k", I64, None)],
              [H.make_tensor("c10", I64, [], [10]),
               H.make_tensor("cm3", I64, [], [-3]),
               H.make_tensor("cm4", I64, [], [-4])])
    s = lambda v: np.array(v, np.int64)
    run_both(tmp_path, m, [{"a": s(10), "b": s(-3), "d": s(-4)},
                           {"a": s(0), "b": s(5), "d": s(-1)},
                           {"a": s(-7), "b": s(6), "d": s(5)}])


def test_topk_computed_k(tmp_path):
    # A sort: K = the length of x (a shape value), ascending as GraniteMoE's
    # routing sorts its expert ids.
    m = model([H.make_node("Shape", ["x"], ["k"]),
               H.make_node("TopK", ["x", "k"], ["v", "i"], axis=0,
                           largest=0)],
              [("x", F, ["n"])], [("v", F, ["n"]), ("i", I64, ["n"])])
    x = rng.integers(-3, 4, size=9).astype(np.float32)  # ties
    run_both(tmp_path, m, [{"x": x}, {"x": randn(1)}, {"x": randn(0)}])


def test_topk_k_from_data_is_checked(tmp_path):
    m = model([H.make_node("TopK", ["x", "k"], ["v", "i"], axis=-1)],
              [("x", F, [2, 5]), ("k", I64, [1])],
              [("v", F, [2, "k"]), ("i", I64, [2, "k"])])
    session = run_both(tmp_path, m, [
        {"x": randn(2, 5), "k": np.array([3], np.int64)},
        {"x": randn(2, 5), "k": np.array([0], np.int64)}])
    with pytest.raises(moe_mlir.InvalidArgument):
        session.run(None, {"x": randn(2, 5), "k": np.array([6], np.int64)})


def test_split_computed_sizes(tmp_path):
    # Split x [T, 3] into [T - 2, 2] rows: sizes computed from the shape.
    m = model([H.make_node("Shape", ["x"], ["s"], end=1),
               H.make_node("Sub", ["s", "two"], ["t2"]),
               H.make_node("Concat", ["t2", "two"], ["sizes"], axis=0),
               H.make_node("Split", ["x", "sizes"], ["a", "b"], axis=0)],
              [("x", F, ["T", 3])], [("a", F, ["ta", 3]), ("b", F, [2, 3])],
              [const("two", [2])])
    run_both(tmp_path, m, [{"x": randn(5, 3)}, {"x": randn(2, 3)}])


def test_split_sizes_must_cover_a_dynamic_dim(tmp_path):
    # Constant sizes [2, 3] on a dynamic dim: refused at run time unless the
    # dim is 5 (ONNX Runtime refuses too), never read past the input.
    m = model([H.make_node("Split", ["x", "sizes"], ["a", "b"], axis=0)],
              [("x", F, ["T"])], [("a", F, [2]), ("b", F, [3])],
              [const("sizes", [2, 3])])
    session = run_both(tmp_path, m, [{"x": randn(5)}])
    for n in (3, 7):
        with pytest.raises(Exception):
            ort.InferenceSession(m.SerializeToString()).run(
                None, {"x": randn(n)})
        with pytest.raises(moe_mlir.InvalidArgument):
            session.run(None, {"x": randn(n)})


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_nd(tmp_path, reduction):
    # Rows of a [5, 4] tensor updated through [3, 1] indices (a repeated
    # index with a reduction; negative indices wrap).
    m = model([H.make_node("ScatterND", ["data", "idx", "upd"], ["y"],
                           reduction=reduction)],
              [("data", F, [5, 4]), ("idx", I64, [3, 1]),
               ("upd", F, [3, 4])], [("y", F, [5, 4])], opset=18,
              check=False)
    idx = np.array([[1], [-1], [1]] if reduction != "none"
                   else [[1], [-1], [0]], np.int64)
    run_both(tmp_path, m, [{"data": randn(5, 4), "idx": idx,
                            "upd": randn(3, 4)}])


def test_gather_nd_batch_dims(tmp_path):
    m = model([H.make_node("GatherND", ["data", "idx"], ["y"],
                           batch_dims=1)],
              [("data", F, [2, 3, 4]), ("idx", I64, [2, 2, 1])],
              [("y", F, [2, 2, 4])])
    idx = np.array([[[2], [0]], [[-1], [1]]], np.int64)
    run_both(tmp_path, m, [{"data": randn(2, 3, 4), "idx": idx}])


def test_einsum_gelu_not(tmp_path):
    m = model([H.make_node("Einsum", ["a", "b"], ["e"],
                           equation="bij,bjk->bik"),
               H.make_node("Gelu", ["a"], ["g"]),
               H.make_node("Gelu", ["a"], ["gt"], approximate="tanh"),
               H.make_node("Not", ["m"], ["n"])],
              [("a", F, [2, 3, 4]), ("b", F, [2, 4, 5]), ("m", BOOL, [3])],
              [("e", F, [2, 3, 5]), ("g", F, [2, 3, 4]), ("gt", F, [2, 3, 4]),
               ("n", BOOL, [3])], opset=20, check=False)
    run_both(tmp_path, m, [{"a": randn(2, 3, 4), "b": randn(2, 4, 5),
                            "m": np.array([True, False, True])}])


def compile_session(tmp_path, m):
    path = str(tmp_path / "m.onnx")
    onnx.save(m, path)
    return moe_mlir.InferenceSession(
        moe_mlir.compile(path, str(tmp_path / "m.moeb"), **FAST))


def test_refusals_of_bad_computed_shapes(tmp_path):
    # Range with delta 0, Tile with a negative repeat, an Expand whose
    # computed shape does not broadcast: errors, not garbage.
    m = model([H.make_node("Range", ["a", "b", "d"], ["r"])],
              [("a", I64, []), ("b", I64, []), ("d", I64, [])],
              [("r", I64, None)])
    s = lambda v: np.array(v, np.int64)
    session = compile_session(tmp_path, m)
    with pytest.raises(moe_mlir.RuntimeError, match="shape"):
        session.run(None, {"a": s(0), "b": s(5), "d": s(0)})
    m = model([H.make_node("Tile", ["x", "r"], ["t"])],
              [("x", F, [2]), ("r", I64, [1])], [("t", F, None)])
    session = compile_session(tmp_path, m)
    with pytest.raises(moe_mlir.RuntimeError, match="shape"):
        session.run(None, {"x": randn(2), "r": s([-1])})
    m = model([H.make_node("Expand", ["x", "shape"], ["y"])],
              [("x", F, [3]), ("shape", I64, [1])], [("y", F, None)])
    session = compile_session(tmp_path, m)
    np.testing.assert_array_equal(
        session.run(None, {"x": np.ones(3, np.float32),
                           "shape": s([1])})[0], np.ones(3, np.float32))
    with pytest.raises(moe_mlir.RuntimeError, match="shape"):
        session.run(None, {"x": randn(3), "shape": s([2])})

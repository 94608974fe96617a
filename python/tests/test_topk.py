"""TopK's numbers against ONNX Runtime: the last-axis form (rows with the
running best in registers) and the general form (another axis), largest
and smallest, float and int64, ties (the lower index first), k = the axis
size, and a dynamic row count."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import moe_mlir

FAST = {"opt_level": 1, "march": "x86-64-v2"}


def topk_model(shape, k, axis, largest, dtype):
    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.INT64
    out_shape = list(shape)
    out_shape[axis] = k
    node = helper.make_node("TopK", ["x", "k"], ["values", "indices"],
                            axis=axis, largest=int(largest), name="topk")
    graph = helper.make_graph(
        [node], "topk",
        [helper.make_tensor_value_info("x", elem, shape)],
        [helper.make_tensor_value_info("values", elem, out_shape),
         helper.make_tensor_value_info("indices", TensorProto.INT64,
                                       out_shape)],
        [helper.make_tensor("k", TensorProto.INT64, [1], [k])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


CASES = [
    # shape, k, axis, largest, dtype
    ([4, 7], 3, 1, True, np.float32),
    ([4, 7], 3, -1, False, np.float32),
    ([2, 3, 6], 6, 2, True, np.float32),    # k = the axis size
    ([7], 2, 0, True, np.float32),          # a vector
    ([5, 4], 2, 0, True, np.float32),       # the general form (axis 0)
    (["N", 9], 4, 1, True, np.float32),     # dynamic rows
    ([3, 8], 3, 1, True, np.int64),
    ([3, 8], 3, 1, False, np.int64),
    ([16, 155], 12, 1, True, np.float32),   # the MoEUT-44M router's shape
    (["N", 40], 12, 1, False, np.float32),
]


@pytest.mark.parametrize("shape,k,axis,largest,dtype", CASES)
def test_topk_matches_onnxruntime(tmp_path, shape, k, axis, largest, dtype):
    model = topk_model(shape, k, axis, largest, dtype)
    path = str(tmp_path / "topk.onnx")
    onnx.save(model, path)
    artifact = moe_mlir.compile(path, str(tmp_path / "topk.moeb"), **FAST)
    session = moe_mlir.InferenceSession(artifact)
    reference = ort.InferenceSession(path,
                                     providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    concrete = [5 if d == "N" else d for d in shape]
    for trial in range(3):
        if dtype == np.float32:
            # Few distinct values: many ties, which go to the lower index.
            x = rng.integers(-3, 4, size=concrete).astype(np.float32)
            if trial == 2:
                x = rng.standard_normal(concrete).astype(np.float32)
        else:
            x = rng.integers(-4, 5, size=concrete).astype(np.int64)
        got = session.run(None, {"x": x})
        want = reference.run(None, {"x": x})
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def compiled_topk(tmp_path, shape, k, largest, dtype):
    """A moe-mlir session of topk_model(shape, k, axis 1, ...)."""
    path = str(tmp_path / "topk.onnx")
    onnx.save(topk_model(shape, k, 1, largest, dtype), path)
    return moe_mlir.InferenceSession(
        moe_mlir.compile(path, str(tmp_path / "topk.moeb"), **FAST))


def k_passes(x, k, largest, worst=None):
    """The documented semantics of TopK along the last axis, written out:
    k passes per row; a pass takes the first element, then every later one
    strictly better, and masks the chosen one with -inf (largest) or +inf
    for the next pass, returning the value it took from the masked row (a
    pass that finds nothing better than a masked first element returns
    index 0 and the mask). NaN is never better than anything."""
    if worst is None:
        worst = -np.inf if largest else np.inf
    rows = x.reshape(-1, x.shape[-1])
    if rows.dtype == np.float32:
        rows = rows.astype(np.float64)
    values = np.empty((rows.shape[0], k), x.dtype)
    indices = np.empty((rows.shape[0], k), np.int64)
    for r, row in enumerate(rows):
        work = row.copy()
        for p in range(k):
            best, at = work[0], 0
            for e in range(1, len(work)):
                if (work[e] > best) if largest else (work[e] < best):
                    best, at = work[e], e
            values[r, p], indices[r, p] = work[at], at
            work[at] = worst
    shape = x.shape[:-1] + (k,)
    return values.reshape(shape), indices.reshape(shape)


@pytest.mark.parametrize("largest", [True, False])
def test_topk_special_rows(tmp_path, largest):
    """Rows with NaN and with the masking value (-inf for largest, +inf
    for smallest) take the k passes; the other rows the one-pass
    insertion. Both must give the passes' results, row by row, among rows
    of ties, of distinct values and of infinities of the other sign."""
    w, k = 9, 4
    session = compiled_topk(tmp_path, ["N", w], k, largest, np.float32)
    rng = np.random.default_rng(7)
    rows = [rng.integers(-2, 3, size=w).astype(np.float32) for _ in range(6)]
    rows += [rng.standard_normal(w).astype(np.float32) for _ in range(6)]
    special = [np.nan, -np.inf, np.inf]
    for value in special:
        for at in (0, 3, w - 1):
            row = rng.integers(-2, 3, size=w).astype(np.float32)
            row[at] = value
            rows.append(row)
    rows.append(np.full(w, np.nan, np.float32))
    rows.append(np.full(w, -np.inf if largest else np.inf, np.float32))
    x = np.stack(rows)
    got = session.run(None, {"x": x})
    want = k_passes(x, k, largest)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])


@pytest.mark.parametrize("largest", [True, False])
def test_topk_int64_extremes(tmp_path, largest):
    """int64 rows holding the masking value (the int64 minimum for
    largest, the maximum for smallest) take the k passes, whose mask then
    ties with it; rows without it the one-pass insertion."""
    w, k = 7, 3
    session = compiled_topk(tmp_path, ["N", w], k, largest, np.int64)
    info = np.iinfo(np.int64)
    worst = info.min if largest else info.max
    rng = np.random.default_rng(11)
    rows = [rng.integers(-3, 4, size=w) for _ in range(4)]
    for value in (info.min, info.max):
        for at in (0, 4):
            row = rng.integers(-3, 4, size=w)
            row[at] = value
            rows.append(row)
    rows.append(np.full(w, worst))
    extreme = np.full(w, worst)
    extreme[5] = 1
    rows.append(extreme)
    x = np.stack(rows).astype(np.int64)
    got = session.run(None, {"x": x})
    want = k_passes(x, k, largest, worst)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])


@pytest.mark.parametrize("largest", [True, False])
def test_topk_insertion_orders(tmp_path, largest):
    """Rows whose entries move all the way up (every element better than
    the ones kept: ascending rows for largest), or never (descending), or
    tie with every kept one, at width 155 and k 12: the one-pass insertion
    against the k passes."""
    w, k = 155, 12
    session = compiled_topk(tmp_path, ["N", w], k, largest, np.float32)
    rng = np.random.default_rng(3)
    up = np.arange(w, dtype=np.float32)
    rows = [up, up[::-1].copy(), np.zeros(w, np.float32),
            np.repeat(np.arange(5, dtype=np.float32), 31),
            np.repeat(np.arange(5, dtype=np.float32), 31)[::-1].copy()]
    rows += [rng.integers(-2, 3, size=w).astype(np.float32)
             for _ in range(4)]
    rows += [rng.standard_normal(w).astype(np.float32) for _ in range(4)]
    x = np.stack(rows)
    got = session.run(None, {"x": x})
    want = k_passes(x, k, largest)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])


def test_topk_run_time_k(tmp_path):
    """K given at run time: K = 0 selects nothing (an empty result, no
    read of a k - 1 column), K within the row matches ONNX Runtime."""
    node = helper.make_node("TopK", ["x", "k"], ["values", "indices"],
                            axis=1, largest=1, name="topk")
    graph = helper.make_graph(
        [node], "topk",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 6]),
         helper.make_tensor_value_info("k", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("values", TensorProto.FLOAT,
                                       [5, "K"]),
         helper.make_tensor_value_info("indices", TensorProto.INT64,
                                       [5, "K"])])
    model = helper.make_model(graph,
                              opset_imports=[helper.make_opsetid("", 13)])
    path = str(tmp_path / "topk.onnx")
    onnx.save(model, path)
    session = moe_mlir.InferenceSession(
        moe_mlir.compile(path, str(tmp_path / "topk.moeb"), **FAST))
    reference = ort.InferenceSession(path,
                                     providers=["CPUExecutionProvider"])
    x = np.random.default_rng(5).integers(-2, 3, size=(5, 6)).astype(
        np.float32)
    for k in (0, 1, 4, 6):
        feeds = {"x": x, "k": np.array([k], np.int64)}
        got = session.run(None, feeds)
        want = reference.run(None, feeds)
        assert got[0].shape == (5, k)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])

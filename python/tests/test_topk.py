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

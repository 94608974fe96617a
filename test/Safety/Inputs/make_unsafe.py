#!/usr/bin/env python3
"""Writes the models of the safety regression tests (docs/security.md) into
DIR: models that once crashed, hung, escaped their folder or computed a wrong
answer with exit 0. Each is built with onnx.helper, deliberately bad where
the test expects a refusal; none goes through onnx.checker.

usage: make_unsafe.py DIR
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
F, I64 = TensorProto.FLOAT, TensorProto.INT64


def vi(name, shape, t=F):
    return helper.make_tensor_value_info(name, t, shape)


def save(name, nodes, inputs, outputs, inits=(), opset=17, functions=(),
         extra_opsets=(), folder=out):
    graph = helper.make_graph(nodes, name, inputs, outputs, list(inits))
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)] +
        [helper.make_opsetid(d, v) for d, v in extra_opsets],
        functions=list(functions))
    with open(os.path.join(folder, name + ".onnx"), "wb") as f:
        f.write(model.SerializeToString())


def const(name, array):
    return helper.make_node("Constant", [], [name], name=name + "_c",
                            value=numpy_helper.from_array(array))


# 1. A node of a domain the model does not import, whose output is read.
save("unknown_domain_used", [
    helper.make_node("Frob", ["x"], ["h"], name="frob", domain="com.nowhere"),
    helper.make_node("Relu", ["h"], ["y"], name="act"),
], [vi("x", [4])], [vi("y", [4])])

# 2. A model-local function that calls itself (and a mutual recursion).
selfcall = helper.make_function(
    "local", "Loop1", ["a"], ["b"],
    [helper.make_node("Loop1", ["a"], ["b"], domain="local")],
    [helper.make_opsetid("", 17), helper.make_opsetid("local", 1)])
save("recursive_function", [
    helper.make_node("Loop1", ["x"], ["y"], name="call", domain="local"),
], [vi("x", [4])], [vi("y", [4])], functions=[selfcall],
    extra_opsets=[("local", 1)])
ping = helper.make_function(
    "local", "Ping", ["a"], ["b"],
    [helper.make_node("Pong", ["a"], ["b"], domain="local")],
    [helper.make_opsetid("", 17), helper.make_opsetid("local", 1)])
pong = helper.make_function(
    "local", "Pong", ["a"], ["b"],
    [helper.make_node("Ping", ["a"], ["b"], domain="local")],
    [helper.make_opsetid("", 17), helper.make_opsetid("local", 1)])
save("mutual_recursion", [
    helper.make_node("Ping", ["x"], ["y"], name="call", domain="local"),
], [vi("x", [4])], [vi("y", [4])], functions=[ping, pong],
    extra_opsets=[("local", 1)])
# A chain of 24 functions each calling the next twice: 2^24 nodes inlined.
chain = []
for i in range(24):
    body = [helper.make_node("Relu", ["a"], ["b"])] if i == 23 else [
        helper.make_node(f"F{i + 1}", ["a"], ["t"], domain="local"),
        helper.make_node(f"F{i + 1}", ["t"], ["b"], domain="local")]
    chain.append(helper.make_function(
        "local", f"F{i}", ["a"], ["b"], body,
        [helper.make_opsetid("", 17), helper.make_opsetid("local", 1)]))
save("exponential_functions", [
    helper.make_node("F0", ["x"], ["y"], name="call", domain="local"),
], [vi("x", [4])], [vi("y", [4])], functions=chain,
    extra_opsets=[("local", 1)])

# A chain of 40 functions, each calling the next once: nests deeper than 32.
deep = []
for i in range(40):
    body = [helper.make_node("Relu", ["a"], ["b"])] if i == 39 else [
        helper.make_node(f"D{i + 1}", ["a"], ["b"], domain="local")]
    deep.append(helper.make_function(
        "local", f"D{i}", ["a"], ["b"], body,
        [helper.make_opsetid("", 17), helper.make_opsetid("local", 1)]))
save("deep_functions", [
    helper.make_node("D0", ["x"], ["y"], name="call", domain="local"),
], [vi("x", [4])], [vi("y", [4])], functions=deep,
    extra_opsets=[("local", 1)])
# The same function defined twice.
twice = helper.make_function(
    "local", "Twice", ["a"], ["b"], [helper.make_node("Relu", ["a"], ["b"])],
    [helper.make_opsetid("", 17)])
save("function_defined_twice", [
    helper.make_node("Twice", ["x"], ["y"], name="call", domain="local"),
], [vi("x", [4])], [vi("y", [4])], functions=[twice, twice],
    extra_opsets=[("local", 1)])

# 3. A Constant int64[1] whose raw_data holds 4 bytes, used by Slice.
short = helper.make_tensor("starts", I64, [1], [1])
short.raw_data = b"\x01\x00\x00\x00"
short.ClearField("int64_data")
save("short_constant_slice", [
    helper.make_node("Constant", [], ["starts"], name="starts_c", value=short),
    const("ends", np.array([3], np.int64)),
    helper.make_node("Slice", ["x", "starts", "ends"], ["y"], name="slice"),
], [vi("x", [4])], [vi("y", [2])])

# 4. External data that leaves the model's folder, or is not a regular file.
def external(name, location, offset=0, length=48):
    t = numpy_helper.from_array(np.zeros((4, 3), np.float32), "w")
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", str(offset)),
                 ("length", str(length))):
        e = t.external_data.add()
        e.key, e.value = k, v
    save(name, [helper.make_node("MatMul", ["x", "w"], ["y"], name="proj")],
         [vi("x", [2, 4])], [vi("y", [2, 3])], [t])


external("ext_dotdot", "../../../../etc/passwd")
external("ext_absolute", "/etc/passwd")
external("ext_dev_zero", "/dev/zero")
external("ext_fifo", "fifo.bin")
external("ext_symlink", "link.bin")
external("ext_offset", "weights.bin", offset=8)
external("ext_huge_length", "weights.bin", length=1 << 40)
with open(os.path.join(out, "weights.bin"), "wb") as f:
    f.write(np.arange(12, dtype=np.float32).tobytes())
external("ext_inside", "weights.bin")
if not os.path.exists(os.path.join(out, "fifo.bin")):
    os.mkfifo(os.path.join(out, "fifo.bin"))
if not os.path.lexists(os.path.join(out, "link.bin")):
    os.symlink("/etc/passwd", os.path.join(out, "link.bin"))

# 5. Range: too many elements; int64 values beyond double precision.
save("range_huge", [
    const("s", np.array(0, np.int64)), const("l", np.array(2**31, np.int64)),
    const("d", np.array(2, np.int64)),
    helper.make_node("Range", ["s", "l", "d"], ["y"], name="range"),
], [], [vi("y", [2**30], I64)])
save("range_big_values", [
    const("s", np.array(2**60 + 1, np.int64)),
    const("l", np.array(2**60 + 5, np.int64)),
    const("d", np.array(1, np.int64)),
    helper.make_node("Range", ["s", "l", "d"], ["y"], name="range"),
], [], [vi("y", [4], I64)])
save("range_negative_step", [
    const("s", np.array(10, np.int32)), const("l", np.array(-3, np.int32)),
    const("d", np.array(-4, np.int32)),
    helper.make_node("Range", ["s", "l", "d"], ["y"], name="range"),
], [], [vi("y", [4], TensorProto.INT32)])

# 6. ConstantOfShape of [2^20, 2^20].
save("constant_of_shape_huge", [
    const("shape", np.array([2**20, 2**20], np.int64)),
    helper.make_node("ConstantOfShape", ["shape"], ["y"], name="zeros"),
], [], [vi("y", [2**20, 2**20])])

# 7. x.view(B, 2, -1) through Shape/Gather/Unsqueeze/Concat on x [B, 6].
save("view_computed", [
    helper.make_node("Shape", ["x"], ["s"], name="shape"),
    const("zero", np.array(0, np.int64)),
    helper.make_node("Gather", ["s", "zero"], ["b"], name="batch", axis=0),
    const("axes", np.array([0], np.int64)),
    helper.make_node("Unsqueeze", ["b", "axes"], ["b1"], name="unsq"),
    const("rest", np.array([2, -1], np.int64)),
    helper.make_node("Concat", ["b1", "rest"], ["shape_out"], name="cat",
                     axis=0),
    helper.make_node("Reshape", ["x", "shape_out"], ["y"], name="view"),
], [vi("x", ["B", 6])], [vi("y", ["B", 2, 3])])

# 8. ScatterElements into a constant of 16 elements (torch's index_add_).
save("scatter_into_constant", [
    const("data", np.zeros((4, 4), np.float32)),
    helper.make_node("ScatterElements", ["data", "idx", "upd"], ["y"],
                     name="scatter", axis=0),
], [vi("idx", [2, 4], I64), vi("upd", [2, 4])], [vi("y", [4, 4])])

# 9. A computed shape with -1 (view(-1, hidden)), then MatMul and TopK.
w9 = numpy_helper.from_array(
    np.linspace(-1, 1, 24, dtype=np.float32).reshape(4, 6), "w9")
save("view_minus_one_matmul", [
    helper.make_node("Shape", ["x"], ["s"], name="shape"),
    const("last", np.array([-1], np.int64)),
    helper.make_node("Gather", ["s", "last"], ["h"], name="hidden", axis=0),
    const("m1", np.array([-1], np.int64)),
    helper.make_node("Concat", ["m1", "h"], ["shape2"], name="cat", axis=0),
    helper.make_node("Reshape", ["x", "shape2"], ["flat"], name="flatten"),
    helper.make_node("MatMul", ["flat", "w9"], ["logits"], name="router"),
    const("k", np.array([2], np.int64)),
    helper.make_node("TopK", ["logits", "k"], ["vals", "ids"], name="topk"),
], [vi("x", ["B", "T", 4])], [vi("vals", ["N", 2]), vi("ids", ["N", 2], I64)],
    [w9])

# Reshape with a 0 (copy) entry on a dynamic input: the sizes must still
# multiply to the element count at run time.
save("reshape_copy_dim", [
    const("shape", np.array([0, 6], np.int64)),
    helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape"),
], [vi("x", ["R", "C"])], [vi("y", ["R", 6])])
# Squeeze of a dim whose size is known only at run time (the dynamo
# exporter squeezes slices of computed length): checked to be 1 then.
save("squeeze_dynamic", [
    const("axes", np.array([1], np.int64)),
    helper.make_node("Squeeze", ["x", "axes"], ["y"], name="squeeze"),
], [vi("x", ["R", "C"])], [vi("y", ["R"])])
# Concat of inputs whose other dims are dynamic: they must agree at run
# time (the result was sized by the first input and every input copied
# whole: a larger one was written past its end, a smaller one left rows of
# garbage). Both dynamic, and a static row count against a dynamic one.
save("concat_dynamic", [
    helper.make_node("Concat", ["a", "b"], ["y"], name="cat", axis=1),
], [vi("a", ["R", "C"]), vi("b", ["R2", "C2"])], [vi("y", ["R", "M"])])
save("concat_static_vs_dynamic", [
    helper.make_node("Concat", ["a", "b"], ["y"], name="cat", axis=-1),
], [vi("a", [3, "C"]), vi("b", ["R", 2])], [vi("y", [3, "M"])])
# The reference a later input with a static size (a dynamic first input
# against it), and inputs empty along the axis (left out unchecked, as
# ONNX Runtime does; a static one first is no reference for the others).
save("concat_dynamic_vs_static", [
    helper.make_node("Concat", ["a", "b"], ["y"], name="cat", axis=1),
], [vi("a", ["R", "C"]), vi("b", [3, 2])], [vi("y", [3, "M"])])
save("concat_empty_dynamic", [
    helper.make_node("Concat", ["a", "z"], ["y"], name="cat", axis=1),
], [vi("a", ["R", 4]), vi("z", ["R2", 0])], [vi("y", ["R", 4])])
save("concat_empty_first", [
    helper.make_node("Concat", ["z", "a"], ["y"], name="cat", axis=1),
], [vi("z", [2, 0]), vi("a", ["R", 4])], [vi("y", ["R", 4])])
# Pow to constant exponents 2 (float) and 3 (int64), which the importer
# writes as products (ONNX Runtime's own special case): the same numbers.
save("pow_square", [
    const("two", np.array(2.0, np.float32)),
    const("three", np.array(3, np.int64)),
    helper.make_node("Pow", ["x", "two"], ["sq"], name="square"),
    helper.make_node("Pow", ["x", "three"], ["cube"], name="cube"),
    helper.make_node("Add", ["sq", "cube"], ["y"], name="add"),
], [vi("x", ["R", "C"])], [vi("y", ["R", "C"])])
# A static reshape that cannot fit: refused at import.
save("reshape_static_mismatch", [
    const("shape", np.array([4], np.int64)),
    helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape"),
], [vi("x", [2, 3])], [vi("y", [4])])

# 10. An attention-mask Add: a dynamic dim that is 1 at run time against a
# static one, and two dynamic dims of which one is 1.
save("broadcast_dynamic_one", [
    helper.make_node("Add", ["scores", "mask"], ["y"], name="mask_add"),
], [vi("scores", ["B", 4, "T", "T"]), vi("mask", ["B", "one", "one2", "T"])],
    [vi("y", ["B", 4, "T", "T"])])
save("broadcast_static_vs_dynamic", [
    helper.make_node("Mul", ["a", "b"], ["y"], name="mul"),
], [vi("a", [3, 5]), vi("b", ["R", 5])], [vi("y", [3, 5])])

# 10b. MatMul with numpy's broadcasting: vector operands, an unbatched
# operand against a batched one, static 1s, and dynamic batch dims that are
# 1 (repeated) or different (refused) at run time.
def matmul(name, a, b, y):
    save(name, [helper.make_node("MatMul", ["a", "b"], ["y"], name="mm")],
         [vi("a", a), vi("b", b)], [vi("y", y)])


matmul("matmul_vec_mat", ["K"], ["L", "N"], ["N"])
matmul("matmul_mat_vec", ["B", "M", "K"], ["K"], ["B", "M"])
matmul("matmul_vec_vec", [5], [5], [])
matmul("matmul_unbatched_a", ["M", "K"], [3, "K", "N"], [3, "M", "N"])
matmul("matmul_unbatched_dynamic", ["M", "K"], ["B", "K", "N"],
       ["B", "M", "N"])
matmul("matmul_static_ones", [2, 1, "M", 4], [3, 4, "N"], [2, 3, "M", "N"])
matmul("matmul_dynamic_batch", ["B", "H", "M", "K"], ["B2", "H2", "K", "N"],
       ["B3", "H3", "M", "N"])
matmul("matmul_static_vs_dynamic", [3, "M", "K"], ["B", "K", "N"],
       [3, "M", "N"])
# Eleven batch dims (their loop letters must not be m, k or n).
matmul("matmul_many_batch_dims", [1] * 10 + [2, 3, 4], [2, 4, 5],
       [1] * 10 + [2, 3, 5])

# 11. Mixture of Tokens with a dynamic batch: the bundled fixture
# test/fixtures/mot_continuous.onnx (dynamic B, group size 4) is run with
# B = 17 by the test itself.

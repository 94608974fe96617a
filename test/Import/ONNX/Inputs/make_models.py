#!/usr/bin/env python3
"""Writes the small ONNX models of the importer tests into DIR.

usage: make_models.py DIR
Each model is built with onnx.helper (no runtime needed). Bad models are
built deliberately bad; none of them goes through onnx.checker.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
F = TensorProto.FLOAT


def vi(name, shape, t=F):
    return helper.make_tensor_value_info(name, t, shape)


def save(name, nodes, inputs, outputs, inits=(), opset=17, functions=(),
         extra_opsets=()):
    graph = helper.make_graph(nodes, name, inputs, outputs, list(inits))
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)] +
        [helper.make_opsetid(d, v) for d, v in extra_opsets],
        functions=list(functions))
    with open(os.path.join(out, name + ".onnx"), "wb") as f:
        f.write(model.SerializeToString())
    return model


w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3), "w")

# A good model using standard ops, symbolic dims and a Constant node.
save("standard", [
    helper.make_node("MatMul", ["x", "w"], ["h"], name="proj"),
    helper.make_node("Relu", ["h"], ["r"], name="act"),
    helper.make_node("Constant", [], ["c"], name="cst",
                     value=numpy_helper.from_array(np.ones(3, np.float32))),
    helper.make_node("Add", ["r", "c"], ["y"], name="bias"),
], [vi("x", ["N", 4])], [vi("y", ["N", 3])], [w])

# Typed-field initializer (float_data instead of raw_data) and int64 data.
typed = helper.make_tensor("w", F, [4, 3], list(np.arange(12.0)))
shape = helper.make_tensor("shape", TensorProto.INT64, [2], [3, -1])
save("typed_init", [
    helper.make_node("Reshape", ["w", "shape"], ["y"], name="reshape"),
], [], [vi("y", [3, 4])], [typed, shape])

# External data: the weights live in a side file.
ext = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3), "w")
ext.ClearField("raw_data")
ext.data_location = TensorProto.EXTERNAL
for k, v in (("location", "external.bin"), ("offset", "16"), ("length", "48")):
    e = ext.external_data.add()
    e.key, e.value = k, v
with open(os.path.join(out, "external.bin"), "wb") as f:
    f.write(b"\0" * 16 + np.arange(12, dtype=np.float32).tobytes())
save("external", [helper.make_node("MatMul", ["x", "w"], ["y"], name="proj")],
     [vi("x", ["N", 4])], [vi("y", ["N", 3])], [ext])
missing = onnx.TensorProto()
missing.CopyFrom(ext)
missing.external_data[0].value = "nowhere.bin"
save("external_missing",
     [helper.make_node("MatMul", ["x", "w"], ["y"], name="proj")],
     [vi("x", ["N", 4])], [vi("y", ["N", 3])], [missing])

# A model-local function of another domain is inlined, attribute refs too.
body_alpha = onnx.AttributeProto()
body_alpha.name, body_alpha.ref_attr_name = "value_float", "alpha"
body_alpha.type = onnx.AttributeProto.FLOAT
cst = helper.make_node("Constant", [], ["a"])
cst.attribute.append(body_alpha)
fn = helper.make_function("my.domain", "ScaledRelu", ["t"], ["u"], [
    cst,
    helper.make_node("Relu", ["t"], ["r"]),
    helper.make_node("Mul", ["r", "a"], ["u"]),
], [helper.make_opsetid("", 17)], ["alpha"])
save("function", [
    helper.make_node("ScaledRelu", ["x"], ["y"], name="call", domain="my.domain",
                     alpha=2.0)], [vi("x", ["N", 4])], [vi("y", ["N", 4])],
     functions=[fn], extra_opsets=[("my.domain", 1)])
save("function_missing_attr", [
    helper.make_node("ScaledRelu", ["x"], ["y"], name="call",
                     domain="my.domain")], [vi("x", ["N", 4])],
     [vi("y", ["N", 4])], functions=[fn], extra_opsets=[("my.domain", 1)])

# Refusals ----------------------------------------------------------------
good = open(os.path.join(out, "standard.onnx"), "rb").read()
with open(os.path.join(out, "truncated.onnx"), "wb") as f:
    f.write(good[: len(good) // 2])
with open(os.path.join(out, "garbage.onnx"), "wb") as f:
    f.write(b"\xff\xfe this is not a protobuf \x00\x01" * 8)
save("dangling", [helper.make_node("Add", ["x", "ghost"], ["y"], name="add")],
     [vi("x", [2])], [vi("y", [2])])
save("duplicate", [
    helper.make_node("Relu", ["x"], ["y"], name="first"),
    helper.make_node("Neg", ["x"], ["y"], name="second"),
], [vi("x", [2])], [vi("y", [2])])
save("cycle", [
    helper.make_node("Add", ["x", "b"], ["a"], name="n1"),
    helper.make_node("Relu", ["a"], ["b"], name="n2"),
], [vi("x", [2])], [vi("y", [2])])
save("unsupported", [
    helper.make_node("Relu", ["x"], ["a"], name="ok"),
    helper.make_node("Hardmax", ["a"], ["b"], name="first_bad"),
    helper.make_node("Frobnicate", ["b"], ["c"], name="second_bad",
                     domain="com.example"),
    helper.make_node("Det", ["c"], ["y"], name="third_bad"),
], [vi("x", [2, 3])], [vi("y", [2, 3])], extra_opsets=[("com.example", 3)])
save("old_opset", [helper.make_node("Relu", ["x"], ["y"], name="r")],
     [vi("x", [2])], [vi("y", [2])], opset=11)
save("absurd_dim", [helper.make_node("Relu", ["x"], ["y"], name="r")],
     [vi("x", [2, 1 << 50])], [vi("y", [2, 1 << 50])])
short = helper.make_tensor("w", F, [2], [1.0, 2.0])
short.dims[:] = [4, 3]  # claims 12 elements, holds 2
save("short_init", [helper.make_node("MatMul", ["x", "w"], ["y"], name="p")],
     [vi("x", ["N", 4])], [vi("y", ["N", 3])], [short])
save("rank_mismatch", [helper.make_node("MatMul", ["x", "w"], ["y"],
                                        name="proj")],
     [vi("x", [])], [vi("y", [3])], [w])
save("matmul_k_mismatch", [helper.make_node("MatMul", ["x", "w"], ["y"],
                                            name="proj")],
     [vi("x", [5])], [vi("y", [3])], [w])
save("matmul_too_many_batch_dims",
     [helper.make_node("MatMul", ["x", "w"], ["y"], name="deep")],
     [vi("x", [1] * 24 + [2, 4])], [vi("y", [1] * 24 + [2, 3])], [w])
save("matmul_batch_mismatch", [helper.make_node("MatMul", ["x", "z"], ["y"],
                                                name="bmm")],
     [vi("x", [2, 3, 4]), vi("z", [3, 4, 3])], [vi("y", [2, 3, 3])])
save("broadcast_mismatch", [helper.make_node("Add", ["x", "z"], ["y"],
                                             name="add")],
     [vi("x", [2, 3]), vi("z", [2, 4])], [vi("y", [2, 3])])
# A CumSum of bools (what torch.onnx.export writes for mask.cumsum(-1)):
# not in CumSum's type constraint (ONNX Runtime refuses it too).
save("cumsum_bool", [
    helper.make_node("Constant", [], ["axis"], name="axis_c",
                     value=helper.make_tensor("axis", TensorProto.INT64, [],
                                              [0])),
    helper.make_node("CumSum", ["m", "axis"], ["y"], name="cumsum_of_bools"),
], [vi("m", [4], TensorProto.BOOL)], [vi("y", [4], TensorProto.BOOL)])
save("no_outputs_computed", [helper.make_node("Relu", ["x"], ["a"], name="r")],
     [vi("x", [2])], [vi("y", [2])])

# org.moe_mlir nodes whose weights or attributes do not match the schema.
rng = np.random.default_rng(0)
def weights(shapes):
    return [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
            for n, s in shapes.items()]
ffn_inits = weights({"w_sel": (4, 8), "w1": (4, 8, 6), "w2": (4, 5, 8)})
save("moe_shape_mismatch", [
    helper.make_node("MoEFeedForward", ["x", "x", "w_sel", "w1", "w2"], ["y"],
                     name="ffn0", domain="org.moe_mlir", k=2, gate="sigmoid",
                     activation="relu")],
     [vi("x", ["N", 8])], [vi("y", ["N", 8])], ffn_inits,
     extra_opsets=[("org.moe_mlir", 1)])
good_ffn = weights({"w_sel": (4, 8), "w1": (4, 8, 6), "w2": (4, 6, 8)})
save("moe_bad_gate", [
    helper.make_node("MoEFeedForward", ["x", "x", "w_sel", "w1", "w2"], ["y"],
                     name="ffn0", domain="org.moe_mlir", k=2, gate="argmax",
                     activation="relu")],
     [vi("x", ["N", 8])], [vi("y", ["N", 8])], good_ffn,
     extra_opsets=[("org.moe_mlir", 1)])
save("moe_missing_k", [
    helper.make_node("MoEFeedForward", ["x", "x", "w_sel", "w1", "w2"], ["y"],
                     name="ffn0", domain="org.moe_mlir", gate="sigmoid",
                     activation="relu")],
     [vi("x", ["N", 8])], [vi("y", ["N", 8])], good_ffn,
     extra_opsets=[("org.moe_mlir", 1)])
save("moe_k_too_large", [
    helper.make_node("MoEFeedForward", ["x", "x", "w_sel", "w1", "w2"], ["y"],
                     name="ffn0", domain="org.moe_mlir", k=9, gate="sigmoid",
                     activation="relu")],
     [vi("x", ["N", 8])], [vi("y", ["N", 8])], good_ffn,
     extra_opsets=[("org.moe_mlir", 1)])
save("moe_bad_domain_version", [helper.make_node("Relu", ["x"], ["y"])],
     [vi("x", [2])], [vi("y", [2])], extra_opsets=[("org.moe_mlir", 2)])
# The raise's internal attention node, written by hand with a bad flag.
save("internal_attention_flag", [
    helper.make_node("MaskedAttention", ["q", "kT", "v"], ["y"], name="ma",
                     domain="org.moe_mlir.internal", zero_nan_probs=2)],
     [vi("q", [1, 2, 3, 4]), vi("kT", [1, 2, 4, 3]), vi("v", [1, 2, 3, 4])],
     [vi("y", [1, 2, 3, 4])], extra_opsets=[("org.moe_mlir.internal", 1)])
# ... and with sinks of the wrong head count (2 heads, 3 sinks).
save("internal_attention_sinks", [
    helper.make_node("MaskedAttention", ["q", "kT", "v", "", "sinks"], ["y"],
                     name="ma_sinks", domain="org.moe_mlir.internal")],
     [vi("q", [1, 2, 3, 4]), vi("kT", [1, 2, 4, 3]), vi("v", [1, 2, 3, 4]),
      vi("sinks", [3])],
     [vi("y", [1, 2, 3, 4])], extra_opsets=[("org.moe_mlir.internal", 1)])
ms_inits = weights({"fc1": (4, 6, 8), "fc2": (4, 8, 6), "fc3": (4, 6, 8)})
save("ms_moe_fc3", [
    helper.make_node("MoE", ["x", "logits", "fc1", "", "fc2", "", "fc3"], ["y"],
                     name="moe0", domain="com.microsoft", k=2)],
     [vi("x", ["N", 8]), vi("logits", ["N", 4])], [vi("y", ["N", 8])],
     ms_inits, extra_opsets=[("com.microsoft", 1)])

# Ops whose backend node tests all lie below opset 13 (or, for Gelu, come
# after the installed test data): covered here.
k = numpy_helper.from_array(np.array([2], np.int64), "k")
save("topk", [helper.make_node("TopK", ["x", "k"], ["values", "indices"],
                               name="topk", axis=1, largest=1)],
     [vi("x", [3, 5])], [vi("values", [3, 2]),
                         vi("indices", [3, 2], TensorProto.INT64)], [k])
save("einsum", [helper.make_node("Einsum", ["a", "b"], ["y"], name="es",
                                 equation="bij,bjk->bik")],
     [vi("a", [2, 3, 4]), vi("b", [2, 4, 5])], [vi("y", [2, 3, 5])])
shape = numpy_helper.from_array(np.array([2, 3], np.int64), "shape")
start = numpy_helper.from_array(np.array(1, np.int64), "start")
limit = numpy_helper.from_array(np.array(9, np.int64), "limit")
delta = numpy_helper.from_array(np.array(3, np.int64), "delta")
save("const_of_shape_range", [
    helper.make_node("ConstantOfShape", ["shape"], ["c"], name="cos",
                     value=numpy_helper.from_array(np.array([7], np.int64))),
    helper.make_node("Range", ["start", "limit", "delta"], ["r"], name="rng"),
], [], [vi("c", [2, 3], TensorProto.INT64), vi("r", [3], TensorProto.INT64)],
     [shape, start, limit, delta])
save("not", [helper.make_node("Not", ["x"], ["y"], name="neg")],
     [vi("x", [4], TensorProto.BOOL)], [vi("y", [4], TensorProto.BOOL)])
save("gelu", [helper.make_node("Gelu", ["x"], ["y"], name="g",
                               approximate="tanh")],
     [vi("x", ["N", 4])], [vi("y", ["N", 4])], opset=20)

# Pow with constant exponents: 2 (float, an RMSNorm's x.pow(2)) and 3
# (int64) are products; 2.5 and an exponent that is an input stay powf.
save("pow", [
    helper.make_node("Pow", ["x", "two"], ["sq"], name="square"),
    helper.make_node("Pow", ["x", "three"], ["cube"], name="cube"),
    helper.make_node("Pow", ["x", "other"], ["p"], name="other"),
    helper.make_node("Pow", ["x", "e"], ["q"], name="input"),
], [vi("x", ["N", 4]), vi("e", [])],
   [vi("sq", ["N", 4]), vi("cube", ["N", 4]), vi("p", ["N", 4]),
    vi("q", ["N", 4])],
   [numpy_helper.from_array(np.array(2.0, np.float32), "two"),
    numpy_helper.from_array(np.array([3], np.int64), "three"),
    numpy_helper.from_array(np.array(2.5, np.float32), "other")])

# Shape computations (docs/importer.md, "Shapes computed in the graph").
I64 = TensorProto.INT64


def ints(name, values, dims=None):
    a = np.array(values, np.int64)
    return numpy_helper.from_array(a if dims is None else a.reshape(dims),
                                   name)


shape_nodes = [
    helper.make_node("Shape", ["x"], ["s"], name="shape"),
    helper.make_node("Gather", ["s", "i0"], ["b"], name="g0", axis=0),
    helper.make_node("Gather", ["s", "i1"], ["t"], name="g1", axis=0),
    helper.make_node("Mul", ["b", "t"], ["bt"], name="mul"),
    helper.make_node("Unsqueeze", ["bt", "ax0"], ["bt1"], name="unsq"),
    helper.make_node("Concat", ["bt1", "minus1"], ["shape2"], name="cat",
                     axis=0),
    helper.make_node("Reshape", ["x", "shape2"], ["y"], name="view"),
]
shape_inits = [ints("i0", 0, []), ints("i1", 1, []), ints("ax0", [0]),
               ints("minus1", [-1])]
# Static input: the computed shape folds to constants, the view is static.
save("shape_static", shape_nodes, [vi("x", [2, 3, 4])], [vi("y", [6, 4])],
     shape_inits)
# Dynamic input: one scalar per entry (from_elements of tensor.dim products).
save("shape_dynamic", shape_nodes, [vi("x", ["B", "T", 4])],
     [vi("y", ["BT", 4])], shape_inits)
save("nonzero", [helper.make_node("NonZero", ["x"], ["y"], name="nz")],
     [vi("x", [3, 4])], [vi("y", [2, "n"], I64)])
save("nonzero_scalar", [helper.make_node("NonZero", ["x"], ["y"], name="nz")],
     [vi("x", [])], [vi("y", [0, "n"], I64)])
save("onehot", [helper.make_node("OneHot", ["i", "depth", "values"], ["y"],
                                 name="oh", axis=0)],
     [vi("i", [2, 3], I64)], [vi("y", [5, 2, 3])],
     [ints("depth", 5, []),
      numpy_helper.from_array(np.array([0, 1], np.float32), "values")])
save("onehot_bad_values", [
    helper.make_node("OneHot", ["i", "depth", "values"], ["y"], name="oh")],
     [vi("i", [2], I64)], [vi("y", [2, 5])],
     [ints("depth", 5, []),
      numpy_helper.from_array(np.array([0, 1, 2], np.float32), "values")])
save("tile_bad_repeats", [
    helper.make_node("Tile", ["x", "r"], ["y"], name="tile")],
     [vi("x", [2, 3])], [vi("y", [4, 3])], [ints("r", [2])])
save("topk_computed_k", [
    helper.make_node("Shape", ["x"], ["s"], name="shape", start=0, end=1),
    helper.make_node("TopK", ["x", "s"], ["v", "i"], name="sort", axis=0)],
     [vi("x", ["N"])], [vi("v", ["N"]), vi("i", ["N"], I64)])
save("flatten_bad_axis", [helper.make_node("Flatten", ["x"], ["y"], name="fl",
                                           axis=3)],
     [vi("x", [2, 3])], [vi("y", [1, 6])])
save("onehot_negative_depth", [
    helper.make_node("OneHot", ["i", "depth", "values"], ["y"], name="oh")],
     [vi("i", [2], I64)], [vi("y", [2, 5])],
     [ints("depth", -3, []),
      numpy_helper.from_array(np.array([0, 1], np.float32), "values")])
save("tile_negative_repeat", [
    helper.make_node("Tile", ["x", "r"], ["y"], name="tile")],
     [vi("x", [2, 3])], [vi("y", [2, 3])], [ints("r", [1, -1])])
save("gathernd_dynamic_last", [
    helper.make_node("GatherND", ["x", "i"], ["y"], name="gnd")],
     [vi("x", [2, 3]), vi("i", [4, "m"], I64)], [vi("y", [4, "k"])])
save("scatternd_bad_updates", [
    helper.make_node("ScatterND", ["x", "i", "u"], ["y"], name="snd")],
     [vi("x", [4, 3]), vi("i", [2, 1], I64), vi("u", [2, 3, 1])],
     [vi("y", [4, 3])])
save("split_bad_sizes", [
    helper.make_node("Split", ["x", "s"], ["a", "b"], name="split", axis=0)],
     [vi("x", [5])], [vi("a", [2]), vi("b", [4])], [ints("s", [2, 4])])
# GroupedMatMul-29, ONNX's MoE op (onnx 1.12 does not know it).
save("grouped_matmul", [
    helper.make_node("GroupedMatMul", ["x", "w", "ids", "b"], ["y"],
                     name="gmm")],
     [vi("x", ["M", 6]), vi("ids", ["M", 2], I64)], [vi("y", ["M", 2, 5])],
     [numpy_helper.from_array(np.ones((4, 6, 5), np.float32), "w"),
      numpy_helper.from_array(np.ones((4, 5), np.float32), "b")], opset=29)
# Range of constants of different element types (found by fuzz_import: the
# constant fold read an int32 limit as a float).
save("range_mixed_types", [
    helper.make_node("Range", ["s", "l", "d"], ["y"], name="range")],
     [], [vi("y", [4])],
     [helper.make_tensor("s", F, [], [0.0]),
      helper.make_tensor("l", TensorProto.INT32, [], [4]),
      helper.make_tensor("d", TensorProto.INT32, [], [1])])

# CastLike (the dynamo exporter writes constants with it): to the element
# type of its second input, whose values are not read; float -> int64
# (truncation toward zero) -> float, and int64 -> bool.
save("castlike", [
    helper.make_node("CastLike", ["x", "like_i"], ["xi"], name="to_int"),
    helper.make_node("CastLike", ["xi", "x"], ["y"], name="back"),
    helper.make_node("CastLike", ["xi", "like_b"], ["nz"], name="to_bool"),
], [vi("x", ["N", 4])],
    [vi("xi", ["N", 4], TensorProto.INT64), vi("y", ["N", 4]),
     vi("nz", ["N", 4], TensorProto.BOOL)],
    [numpy_helper.from_array(np.array([7], np.int64), "like_i"),
     numpy_helper.from_array(np.array([True]), "like_b")], opset=18)
# ... to a string: refused at the value.
save("castlike_string", [
    helper.make_node("CastLike", ["x", "like_s"], ["y"], name="to_string"),
], [vi("x", [2]), vi("like_s", [1], TensorProto.STRING)],
    [vi("y", [2], TensorProto.STRING)], opset=18)

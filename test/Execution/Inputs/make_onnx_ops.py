#!/usr/bin/env python3
"""Writes one-node (or few-node) ONNX models of the elementwise, logical and
reduction ops whose ONNX backend node tests lie below opset 13 or are not in
the installed test data (test/conformance covers the others), for
onnx-ops.test to compare with ONNX Runtime (test/Safety/ort_compare.py).

Float activations read x [N] scaled by 4 and then a constant row of edge
values (NaN, +-inf, +-0, halves for Round, values where exp overflows or
underflows), so that every model sees them.

usage: make_onnx_ops.py DIR
"""
import os
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
EDGES = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 100.0, -100.0, 0.5, 1.5,
                  2.5, -2.5, -0.5, 1e-8, -1e-8, 88.0, -88.0, 20.0, -20.0,
                  1e30, -1e30], np.float32)


def vi(name, shape, t=F):
    return helper.make_tensor_value_info(name, t, shape)


def const(name, array):
    return helper.make_node("Constant", [], [name], name=name + "_c",
                            value=numpy_helper.from_array(array))


def save(name, nodes, inputs, outputs, opset=18):
    graph = helper.make_graph(nodes, name, inputs, outputs)
    model = helper.make_model(graph,
                              opset_imports=[helper.make_opsetid("", opset)])
    with open(os.path.join(out, name + ".onnx"), "wb") as f:
        f.write(model.SerializeToString())


def with_edges():
    """x [N] -> xe [N + len(EDGES)]: 4 x, then the edge values."""
    return [const("four", np.array(4.0, np.float32)),
            const("edges", EDGES),
            helper.make_node("Mul", ["x", "four"], ["x4"], name="scale"),
            helper.make_node("Concat", ["x4", "edges"], ["xe"], name="join",
                             axis=0)]


def unary(name, op, out_type=F, opset=18, **attrs):
    save(name, with_edges() + [
        helper.make_node(op, ["xe"], ["y"], name=name, **attrs)],
        [vi("x", ["N"])], [vi("y", [None], out_type)], opset=opset)


# Activations, with their default and other attributes.
unary("elu", "Elu")
unary("elu_alpha", "Elu", alpha=0.7)
unary("selu", "Selu")
unary("selu_attrs", "Selu", alpha=1.5, gamma=2.0)
unary("hard_sigmoid", "HardSigmoid")
unary("hard_sigmoid_attrs", "HardSigmoid", alpha=0.3, beta=0.4)
unary("hard_swish", "HardSwish")
unary("leaky_relu", "LeakyRelu", alpha=0.2)
unary("leaky_relu_default", "LeakyRelu")
unary("thresholded_relu_default", "ThresholdedRelu")
unary("softplus", "Softplus")
unary("softsign", "Softsign")
unary("mish", "Mish")
unary("thresholded_relu", "ThresholdedRelu", alpha=0.3)
unary("round", "Round")
unary("clip_no_bounds", "Clip")
unary("is_nan", "IsNaN", out_type=B)
unary("is_inf", "IsInf", out_type=B)
unary("is_inf_positive", "IsInf", out_type=B, detect_negative=0)
unary("is_inf_negative", "IsInf", out_type=B, detect_positive=0)

# PRelu: a slope per channel [C, 1] broadcast over x [N, C, W].
save("prelu", [
    const("slope", np.array([[0.1], [-0.5], [2.0], [0.0]], np.float32)),
    helper.make_node("PRelu", ["x", "slope"], ["y"], name="prelu"),
], [vi("x", ["N", 4, "W"])], [vi("y", ["N", 4, "W"])])

# Clip: both bounds, one, crossed bounds (max wins), a NaN bound (ignored
# by ONNX Runtime), bounds as graph inputs, and on integers.
def clip(name, lo, hi, t=F):
    nodes, ins = with_edges() if t == F else [], ["xe" if t == F else "x"]
    for n, v in (("lo", lo), ("hi", hi)):
        if v is None:
            ins.append("")
        else:
            nodes.append(const(n, np.array(v, np.float32 if t == F
                                           else np.int64)))
            ins.append(n)
    while ins[-1] == "":
        ins.pop()
    save(name, nodes + [helper.make_node("Clip", ins, ["y"], name=name)],
         [vi("x", ["N"], t)], [vi("y", [None], t)])


clip("clip", -0.5, 0.7)
clip("clip_max_only", None, 0.7)
clip("clip_min_only", -0.5, None)
clip("clip_crossed", 1.0, -1.0)
clip("clip_nan_min", np.nan, 1.0)
clip("clip_int", 1, 2, I64)
clip("clip_int_max_only", None, 2, I64)
save("clip_bound_inputs", [
    helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="clip"),
], [vi("x", ["R", "C"]), vi("lo", []), vi("hi", [1])], [vi("y", ["R", "C"])])

# And, Or, Xor on bools from comparisons, broadcast [R, C] with [C].
save("logic", [
    const("zero", np.array(0.0, np.float32)),
    helper.make_node("Greater", ["a", "zero"], ["pa"], name="pa"),
    helper.make_node("Less", ["b", "zero"], ["pb"], name="pb"),
    helper.make_node("And", ["pa", "pb"], ["and"], name="and"),
    helper.make_node("Or", ["pa", "pb"], ["or"], name="or"),
    helper.make_node("Xor", ["pa", "pb"], ["xor"], name="xor"),
], [vi("a", ["R", "C"]), vi("b", ["C"])],
    [vi("and", ["R", "C"], B), vi("or", ["R", "C"], B),
     vi("xor", ["R", "C"], B)])

# Bitwise ops on int64 around zero (inputs are drawn from [0, high)).
save("bitwise", [
    const("mid", np.array(500, np.int64)),
    helper.make_node("Sub", ["a", "mid"], ["sa"], name="sa"),
    helper.make_node("Sub", ["b", "mid"], ["sb"], name="sb"),
    helper.make_node("BitwiseAnd", ["sa", "sb"], ["and"], name="and"),
    helper.make_node("BitwiseOr", ["sa", "sb"], ["or"], name="or"),
    helper.make_node("BitwiseXor", ["sa", "sb"], ["xor"], name="xor"),
    helper.make_node("BitwiseNot", ["sa"], ["not"], name="not"),
], [vi("a", ["R", "C"], I64), vi("b", ["C"], I64)],
    [vi(n, ["R", "C"], I64) for n in ("and", "or", "xor", "not")])

# Reductions: integer ones (negatives, ties), float L2 without keepdims,
# bool max and min (opset 20), and over an empty axis (identities).
reduce_nodes = [const("mid", np.array(2, np.int64)),
                const("ax1", np.array([1], np.int64)),
                helper.make_node("Sub", ["a", "mid"], ["s"], name="s")]
reduce_outs = []
for op in ("ReduceMin", "ReduceMax", "ReduceProd", "ReduceL1",
           "ReduceSumSquare", "ReduceSum", "ReduceMean"):
    reduce_nodes.append(helper.make_node(op, ["s", "ax1"], [op], name=op))
    reduce_outs.append(vi(op, ["R", 1], I64))
for op in ("ArgMin", "ArgMax"):
    for last in (0, 1):
        n = f"{op}_{last}"
        reduce_nodes.append(helper.make_node(op, ["s"], [n], name=n, axis=1,
                                             keepdims=0,
                                             select_last_index=last))
        reduce_outs.append(vi(n, ["R"], I64))
save("reduce_int", reduce_nodes, [vi("a", ["R", "C"], I64)], reduce_outs)
save("reduce_float", [
    const("ax", np.array([0, 2], np.int64)),
    helper.make_node("ReduceL2", ["x", "ax"], ["l2"], name="l2", keepdims=0),
    helper.make_node("ReduceL1", ["x", "ax"], ["l1"], name="l1"),
    helper.make_node("ReduceMin", ["x"], ["min"], name="min", keepdims=0),
    helper.make_node("ReduceProd", ["x", "ax"], ["prod"], name="prod"),
    helper.make_node("ArgMin", ["x"], ["argmin"], name="argmin", axis=-1),
], [vi("x", ["A", "B", "C"])],
    [vi("l2", ["B"]), vi("l1", [1, "B", 1]), vi("min", []),
     vi("prod", [1, "B", 1]), vi("argmin", ["A", "B", 1], I64)])
save("reduce_bool", [
    const("zero", np.array(0.0, np.float32)),
    const("ax1", np.array([1], np.int64)),
    helper.make_node("Greater", ["x", "zero"], ["p"], name="p"),
    helper.make_node("ReduceMax", ["p", "ax1"], ["any"], name="any"),
    helper.make_node("ReduceMin", ["p", "ax1"], ["all"], name="all"),
], [vi("x", ["R", "C"])], [vi("any", ["R", 1], B), vi("all", ["R", 1], B)],
    opset=20)
save("reduce_empty", [
    const("ax1", np.array([1], np.int64)),
    helper.make_node("ReduceMin", ["x", "ax1"], ["min"], name="min"),
    helper.make_node("ReduceProd", ["x", "ax1"], ["prod"], name="prod"),
    helper.make_node("ReduceL2", ["x", "ax1"], ["l2"], name="l2"),
], [vi("x", ["R", "C"])], [vi(n, ["R", 1]) for n in ("min", "prod", "l2")])

# No axes with noop_with_empty_axes: nothing reduced, the per-element step
# applied (|x|, sqrt(x * x), x * x); the others return x.
save("reduce_noop", [
    helper.make_node(op, ["x"], [op], name=op, noop_with_empty_axes=1)
    for op in ("ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceMax")
], [vi("x", ["R", "C"])],
    [vi(op, ["R", "C"]) for op in ("ReduceL1", "ReduceL2", "ReduceSumSquare",
                                   "ReduceMax")])
# Integer reductions over an empty axis (the mean of nothing is 0, as ONNX
# Runtime gives; a division by the count 0 would trap).
save("reduce_int_empty", [
    const("ax1", np.array([1], np.int64)),
] + [helper.make_node(op, ["a", "ax1"], [op], name=op)
     for op in ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceL1",
                "ReduceSumSquare")],
    [vi("a", ["R", "C"], I64)],
    [vi(op, ["R", 1], I64) for op in ("ReduceMean", "ReduceSum", "ReduceMax",
                                      "ReduceL1", "ReduceSumSquare")])
# Unsigned integers: values at and above 2^(w-1) compare, clip and mask as
# unsigned (uint8 from [0, 256), uint32 from [0, 2^32); the ops ONNX
# Runtime has kernels for), and unsigned constants keep their bits.
U8, U32 = TensorProto.UINT8, TensorProto.UINT32
save("unsigned", [
    helper.make_node("Cast", ["a"], ["u"], name="to_u8", to=U8),
    helper.make_node("Cast", ["b"], ["w"], name="to_u32", to=U32),
    const("ax1", np.array([1], np.int64)),
    const("lo", np.array(100, np.uint8)),
    const("hi", np.array(200, np.uint8)),
    const("mask", np.array(0xF0, np.uint8)),
    helper.make_node("ReduceMax", ["u", "ax1"], ["max8"], name="max8"),
    helper.make_node("ArgMax", ["u"], ["argmax8"], name="argmax8", axis=1),
    helper.make_node("Clip", ["u", "lo", "hi"], ["clip8"], name="clip8"),
    helper.make_node("BitwiseAnd", ["u", "mask"], ["and8"], name="and8"),
    helper.make_node("ReduceMin", ["u", "ax1"], ["min8"], name="min8"),
    helper.make_node("ArgMin", ["u"], ["argmin8"], name="argmin8", axis=1),
    const("lo32", np.array(2**31, np.uint32)),
    helper.make_node("Clip", ["w", "lo32"], ["clip32"], name="clip32"),
    helper.make_node("Max", ["w", "lo32"], ["max32"], name="max32"),
] + [helper.make_node("Cast", [n], [n + "_i64"], name=n + "_back", to=I64)
     for n in ("max8", "clip8", "and8", "min8", "clip32", "max32")],
    [vi("a", ["R", "C"], I64), vi("b", ["R", "C"], I64)],
    [vi("max8_i64", ["R", 1], I64), vi("argmax8", ["R", 1], I64),
     vi("clip8_i64", ["R", "C"], I64), vi("and8_i64", ["R", "C"], I64),
     vi("min8_i64", ["R", 1], I64), vi("argmin8", ["R", 1], I64),
     vi("clip32_i64", ["R", "C"], I64), vi("max32_i64", ["R", "C"], I64)])

# Variadic Sum and Mean with broadcasting.
save("sum_mean", [
    helper.make_node("Sum", ["a", "b", "c"], ["sum"], name="sum"),
    helper.make_node("Mean", ["a", "b", "c"], ["mean"], name="mean"),
    helper.make_node("Sum", ["a"], ["one"], name="one"),
], [vi("a", ["R", "C"]), vi("b", ["C"]), vi("c", [1, "C"])],
    [vi("sum", ["R", "C"]), vi("mean", ["R", "C"]), vi("one", ["R", "C"])])

# A negative-step Slice of an empty axis is empty (its static size was 1,
# read from the empty input), and of a dynamic one at run time.
for name, rows in (("slice_empty_reverse", 0), ("slice_dyn_reverse", "N")):
    save(name, [
        const("s", np.array([-1], np.int64)),
        const("e", np.array([np.iinfo(np.int64).min], np.int64)),
        const("a", np.array([0], np.int64)),
        const("st", np.array([-1], np.int64)),
        helper.make_node("Slice", ["x", "s", "e", "a", "st"], ["y"],
                         name=name),
    ], [vi("x", [rows, 3])], [vi("y", ["M", 3])])

# A Concat with an input empty along its axis: the columns of x from its
# last (a rotary split that rotates every column keeps no pass-through
# columns), first and last and on its own; a static and a dynamic row count.
for name, rows in (("concat_empty", 2), ("concat_empty_dyn", "N")):
    save(name, [
        const("s", np.array([4], np.int64)),
        const("e", np.array([np.iinfo(np.int64).max], np.int64)),
        const("a", np.array([-1], np.int64)),
        helper.make_node("Slice", ["x", "s", "e", "a"], ["z"], name="tail"),
        helper.make_node("Concat", ["x", "z"], ["y"], name="cat", axis=-1),
        helper.make_node("Concat", ["z", "x", "z"], ["y2"], name="cat2",
                         axis=1),
        helper.make_node("Concat", ["z", "z"], ["y3"], name="cat3", axis=-1),
    ], [vi("x", [rows, 4])],
        [vi("y", [rows, 4]), vi("y2", [rows, 4]), vi("y3", [rows, 0])])

# Refusals (moe-import): a Concat whose static other dims differ, an L2
# norm of integers, And of floats, a Clip bound that is not a scalar.
save("bad_concat_static", [
    helper.make_node("Concat", ["a", "b"], ["y"], name="cat_rows_differ",
                     axis=1),
], [vi("a", [3, 4]), vi("b", [2, 2])], [vi("y", [3, 6])])
save("bad_reduce_l2_int", [
    helper.make_node("ReduceL2", ["a"], ["y"], name="l2_of_ints"),
], [vi("a", [2, 3], I64)], [vi("y", [1, 1], I64)])
save("bad_and_float", [
    helper.make_node("And", ["a", "b"], ["y"], name="and_of_floats"),
], [vi("a", [3]), vi("b", [3])], [vi("y", [3], B)])
save("bad_clip_bound", [
    helper.make_node("Clip", ["x", "lo"], ["y"], name="clip_vector_min"),
], [vi("x", [3]), vi("lo", [3])], [vi("y", [3])])
save("bad_prelu_dynamic", [
    const("slope", np.array([0.1, 0.2, 0.3, 0.4], np.float32)),
    helper.make_node("PRelu", ["x", "slope"], ["y"], name="prelu_dynamic_c"),
], [vi("x", ["N", "C"])], [vi("y", ["N", "C"])])

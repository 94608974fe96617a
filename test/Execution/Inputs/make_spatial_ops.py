#!/usr/bin/env python3
"""Writes ONNX models of Pad, Conv, Mod and integer Div for spatial-ops.test,
which compares them with ONNX Runtime (test/Safety/ort_compare.py) and, for
the refusals, checks the located errors.

Pad: computed pads (torch's F.pad to a multiple of a chunk, as Qwen3-Next's
linear attention exports it), every mode with negative pads, axes, a
constant value read at run time, integer data. Conv: 1-D depthwise causal
(Qwen3-Next's short convolution), 2-D with groups, strides, dilations and
bias, auto_pad on dynamic sizes, 3-D VALID, a 1x1 convolution wide enough
to fill register tiles, a dynamic channel count. Mod and Div: integer
forms with computed divisors, and the refusals.

usage: make_spatial_ops.py DIR
"""
import os
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
rng = np.random.default_rng(7)


def vi(name, shape, t=F):
    return helper.make_tensor_value_info(name, t, shape)


def const(name, array):
    return helper.make_node("Constant", [], [name], name=name + "_c",
                            value=numpy_helper.from_array(array))


def init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def save(name, nodes, inputs, outputs, inits=(), opset=19):
    graph = helper.make_graph(nodes, name, inputs, outputs,
                              initializer=list(inits))
    model = helper.make_model(graph,
                              opset_imports=[helper.make_opsetid("", opset)])
    with open(os.path.join(out, name + ".onnx"), "wb") as f:
        f.write(model.SerializeToString())


def i64(*v):
    return np.array(v, np.int64)


# --- Pad ------------------------------------------------------------------

# x [N, T] padded at the end of T to a multiple of 8, the amount computed
# from T as torch's exporter writes F.pad(x, (0, (8 - T % 8) % 8)).
save("pad_to_chunk", [
    helper.make_node("Shape", ["x"], ["shape"], name="shape"),
    const("one", np.array(1, np.int64)),
    helper.make_node("Gather", ["shape", "one"], ["t"], name="t", axis=0),
    const("eight", np.array(8, np.int64)),
    helper.make_node("Mod", ["t", "eight"], ["rem"], name="rem"),
    helper.make_node("Sub", ["eight", "rem"], ["short"], name="short"),
    helper.make_node("Mod", ["short", "eight"], ["need"], name="need"),
    const("zeros3", i64(0, 0, 0)),
    const("zero_axis", i64(0)),
    helper.make_node("Unsqueeze", ["need", "zero_axis"], ["need1"],
                     name="need1"),
    helper.make_node("Concat", ["zeros3", "need1"], ["pads"], name="pads",
                     axis=0),
    helper.make_node("Pad", ["x", "pads"], ["y"], name="pad_chunk"),
], [vi("x", ["N", "T"])], [vi("y", ["N", None])])

# The pads computed as data (a Reshape/Transpose/Slice chain, as
# torch.onnx's F.pad export writes it), with a constant value as a graph
# input read at run time.
save("pad_data_pads", [
    helper.make_node("Mul", ["k", "two"], ["k2"], name="k2"),
    helper.make_node("Concat", ["k", "k2", "minus1", "k"], ["pads"],
                     name="pads", axis=0),
    helper.make_node("Pad", ["x", "pads", "cv"], ["y"], name="pad_data"),
], [vi("x", ["A", "B"]), vi("k", [1], I64), vi("cv", [])],
   [vi("y", [None, None])],
   [init("two", i64(2)), init("minus1", i64(-1))])

for mode in ["constant", "edge", "reflect", "wrap"]:
    # Negative pads cut; positive ones extend (from what is left, for the
    # modes that read the data).
    save(f"pad_{mode}", [
        helper.make_node("Pad", ["x", "pads"], ["y"], name=f"pad_{mode}",
                         mode=mode),
    ], [vi("x", [3, "W", 5])], [vi("y", [None, None, None])],
        [init("pads", i64(1, 2, -1, 0, -1, 3))])
    # axes (opset 18): the last two, one of them negative.
    save(f"pad_{mode}_axes", [
        helper.make_node("Pad", ["x", "pads", "", "axes"], ["y"],
                         name=f"pad_{mode}_axes", mode=mode),
    ], [vi("x", [2, 4, 6])], [vi("y", [None, None, None])],
        [init("pads", i64(-1, 2, 2, 1)), init("axes", i64(1, -1))])

# Constant mode whose cut reaches into the other side's padding.
save("pad_cut_into_padding", [
    helper.make_node("Pad", ["x", "pads"], ["y"], name="pad_cut"),
], [vi("x", [2, 3])], [vi("y", [None, None])], [init("pads", i64(0, -4, 0, 2))])
# Integer data with a value.
save("pad_int", [
    helper.make_node("Pad", ["x", "pads", "cv"], ["y"], name="pad_int"),
], [vi("x", [3, "W"], I64)], [vi("y", [None, None], I64)],
    [init("pads", i64(0, 1, 2, 2)), init("cv", np.array(-7, np.int64))])
# Computed pads that cut everything away at run time (k = 9 > W).
save("pad_edge_computed", [
    helper.make_node("Neg", ["k"], ["nk"], name="nk"),
    helper.make_node("Concat", ["zero", "nk", "zero", "one"], ["pads"],
                     name="pads", axis=0),
    helper.make_node("Pad", ["x", "pads"], ["y"], name="pad_edge_k",
                     mode="edge"),
], [vi("x", [2, "W"]), vi("k", [1], I64)], [vi("y", [None, None])],
    [init("zero", i64(0)), init("one", i64(1))])
save("pad_reflect_computed", [
    helper.make_node("Concat", ["zero", "k", "zero", "zero"], ["pads"],
                     name="pads", axis=0),
    helper.make_node("Pad", ["x", "pads"], ["y"], name="pad_reflect_k",
                     mode="reflect"),
], [vi("x", [2, "W"]), vi("k", [1], I64)], [vi("y", [None, None])],
    [init("zero", i64(0))])

# Reflection on an empty axis that is not padded (pads 0 there).
save("pad_reflect_empty_axis", [
    helper.make_node("Pad", ["x", "pads"], ["y"], name="pad_reflect_empty",
                     mode="reflect"),
], [vi("x", ["N", 4])], [vi("y", [None, None])], [init("pads", i64(0, 1, 0, 1))])
# Computed pads of any size: beyond 2^30 an error at run time (ONNX Runtime
# fails to allocate); a wrapping sum must never size the result.
save("pad_computed_any", [
    helper.make_node("Concat", ["zero", "k", "zero", "k"], ["pads"],
                     name="pads", axis=0),
    helper.make_node("Pad", ["x", "pads"], ["y"], name="pad_any"),
], [vi("x", [2, 3]), vi("k", [1], I64)], [vi("y", [None, None])],
    [init("zero", i64(0))])

# Refused at compile time.
save("bad_pad_huge", [
    helper.make_node("Pad", ["x", "pads"], ["y"], name="pad_huge"),
], [vi("x", [2, 3])], [vi("y", [None, None])],
    [init("pads", i64(0, 2**62, 0, 2**62))])
save("bad_pad_reflect_long", [
    helper.make_node("Pad", ["x", "pads"], ["y"], name="reflect_too_far",
                     mode="reflect"),
], [vi("x", [2, 3])], [vi("y", [None, None])], [init("pads", i64(0, 3, 0, 0))])
save("bad_pad_negative_size", [
    helper.make_node("Pad", ["x", "pads"], ["y"], name="cut_too_much"),
], [vi("x", [2, 3])], [vi("y", [None, None])], [init("pads", i64(0, -2, 0, -2))])
save("bad_pad_count", [
    helper.make_node("Pad", ["x", "pads"], ["y"], name="pads_odd"),
], [vi("x", [2, 3])], [vi("y", [None, None])], [init("pads", i64(0, 1, 1))])
save("bad_pad_mode", [
    helper.make_node("Pad", ["x", "pads"], ["y"], name="pad_mirror",
                     mode="mirror"),
], [vi("x", [2, 3])], [vi("y", [None, None])], [init("pads", i64(0, 1, 0, 1))])

# --- Conv -----------------------------------------------------------------


def conv(name, x_shape, w, b=None, **attrs):
    inputs = ["x", "w"] + (["b"] if b is not None else [])
    inits = [init("w", w.astype(np.float32))]
    if b is not None:
        inits.append(init("b", b.astype(np.float32)))
    save(name, [helper.make_node("Conv", inputs, ["y"], name=name, **attrs)],
         [vi("x", x_shape)], [vi("y", [None] * len(x_shape))], inits)


C = 12
# Qwen3-Next's short convolution: depthwise, kernel 4, padded 3 both sides
# (the export then keeps the first T outputs).
conv("conv_depthwise_causal", [1, C, "T"], rng.standard_normal((C, 1, 4)),
     group=C, pads=[3, 3], kernel_shape=[4])
conv("conv2d_groups", ["N", 4, "H", "W"], rng.standard_normal((6, 2, 3, 3)),
     rng.standard_normal(6), group=2, strides=[2, 1], dilations=[1, 2],
     pads=[1, 0, 2, 1])
conv("conv2d_same_upper", [1, 3, "H", "W"], rng.standard_normal((5, 3, 3, 2)),
     rng.standard_normal(5), auto_pad="SAME_UPPER", strides=[2, 3])
conv("conv1d_same_lower", [2, 2, "T"], rng.standard_normal((3, 2, 4)),
     auto_pad="SAME_LOWER", strides=[2])
conv("conv3d_valid", [1, 2, 5, 6, 4], rng.standard_normal((4, 2, 2, 3, 2)),
     rng.standard_normal(4), auto_pad="VALID", strides=[1, 2, 1])
# 1x1: a matmul over channels, sizes past a register tile.
conv("conv1x1_wide", [2, 70, "T"], rng.standard_normal((40, 70, 1)),
     rng.standard_normal(40))
conv("conv_dynamic_channels", [1, "C", "T"], rng.standard_normal((4, 3, 2)),
     pads=[1, 0])
conv("conv_no_room", [1, 1, "T"], rng.standard_normal((1, 1, 4)))

conv("bad_conv_group", [1, 4, 8], rng.standard_normal((6, 2, 3)), group=4)
conv("bad_conv_dilation", [1, 2, 8], rng.standard_normal((1, 2, 5)),
     dilations=[2**62])
conv("bad_conv_channels", [1, 5, 8], rng.standard_normal((6, 2, 3)))
conv("bad_conv_kernel", [1, 2, 3], rng.standard_normal((1, 2, 4)))
conv("bad_conv_both_pads", [1, 2, 8], rng.standard_normal((1, 2, 3)),
     pads=[1, 1], auto_pad="SAME_UPPER")
# X of rank 2 for a rank-3 W: libonnx 1.12's Conv shape inference read a
# null pointer there (fuzz_import); the importer now checks what that
# inference reads first (no hints for this node) and refuses the node
# itself.
save("bad_conv_rank2", [
    helper.make_node("Conv", ["x", "w"], ["y"], name="conv_rank2"),
], [vi("x", [2, "T"])], [vi("y", [None] * 3)],
    [init("w", rng.standard_normal((3, 2, 3)).astype(np.float32))])
# A stride of 0: libonnx 1.12's inference divided by it (SIGFPE), for Conv
# and for MaxPool (which the importer does not support: it must still say
# so rather than crash).
conv("bad_conv_stride0", [1, 2, 8], rng.standard_normal((1, 2, 3)),
     strides=[0])
save("bad_maxpool_stride0", [
    helper.make_node("MaxPool", ["x"], ["y"], name="pool_stride0",
                     kernel_shape=[2], strides=[0]),
], [vi("x", [1, 2, 8])], [vi("y", [None] * 3)])
save("bad_conv_dynamic_w", [
    helper.make_node("Conv", ["x", "w"], ["y"], name="conv_w_input"),
], [vi("x", [1, 2, 8]), vi("w", ["M", 2, 3])], [vi("y", [None] * 3)])

# --- Mod and integer Div --------------------------------------------------

# Divisors made odd (never zero) and centred on zero, dividends centred too:
# a - 500 and (b - 50) | 1 for a in [0, 1000), b in [0, 100).
shifted = [
    helper.make_node("Sub", ["a", "five_hundred"], ["as"], name="shift_a"),
    helper.make_node("Sub", ["b", "fifty"], ["b50"], name="shift_b"),
    helper.make_node("BitwiseOr", ["b50", "one"], ["bs"], name="odd_b"),
]
shift_inits = [init("five_hundred", np.array(500, np.int64)),
               init("fifty", np.array(50, np.int64)),
               init("one", np.array(1, np.int64))]
for fmod in (0, 1):
    save(f"mod_int_fmod{fmod}", shifted + [
        helper.make_node("Mod", ["as", "bs"], ["y"], name=f"mod{fmod}",
                         fmod=fmod),
    ], [vi("a", ["N"], I64), vi("b", ["N"], I64)], [vi("y", ["N"], I64)],
        shift_inits)
    # Raw divisors (zeros among them): refused at run time, by ONNX Runtime
    # too.
    save(f"mod_raw_fmod{fmod}", [
        helper.make_node("Mod", ["a", "b"], ["y"], name=f"mod_raw{fmod}",
                         fmod=fmod),
    ], [vi("a", ["N"], I64), vi("b", ["N"], I64)], [vi("y", ["N"], I64)])
save("div_int", shifted + [
    helper.make_node("Div", ["as", "bs"], ["y"], name="div_int"),
], [vi("a", ["N"], I64), vi("b", ["N"], I64)], [vi("y", ["N"], I64)],
    shift_inits)
save("div_raw", [
    helper.make_node("Div", ["a", "b"], ["y"], name="div_raw"),
], [vi("a", ["N"], I64), vi("b", ["N"], I64)], [vi("y", ["N"], I64)])
# Mod-28: fmod = 0 on floats (floor remainder; a zero takes B's sign).
save("mod_float_floor28", [
    helper.make_node("Mod", ["a", "b"], ["y"], name="mod_floor28"),
], [vi("a", ["N"]), vi("b", ["N"])], [vi("y", ["N"])], opset=28)
# 32-bit integers.
save("div_raw_i32", [
    helper.make_node("Cast", ["a"], ["a32"], name="a32", to=TensorProto.INT32),
    helper.make_node("Cast", ["b"], ["b32"], name="b32", to=TensorProto.INT32),
    helper.make_node("Div", ["a32", "b32"], ["y32"], name="div_i32"),
    helper.make_node("Mod", ["a32", "b32"], ["m32"], name="mod_i32"),
    helper.make_node("Cast", ["y32"], ["y"], name="y64", to=I64),
    helper.make_node("Cast", ["m32"], ["m"], name="m64", to=I64),
], [vi("a", ["N"], I64), vi("b", ["N"], I64)],
    [vi("y", ["N"], I64), vi("m", ["N"], I64)])
save("mod_float", [
    helper.make_node("Mod", ["a", "b"], ["y"], name="fmod_float", fmod=1),
], [vi("a", ["N"]), vi("b", ["N"])], [vi("y", ["N"])])

# The signed minimum over -1 (ONNX Runtime dies of SIGFPE there): the
# quotient wraps to the minimum, the remainder is 0. Expected values from
# Python's integers: C's truncating division, Python's floor remainder and
# C's truncated remainder, wrapped to int64.
lo, hi = -2**63, 2**63 - 1
edge_a = [lo, lo, lo, hi, hi, 7, -7, 7, -7, 0, 6, -6]
edge_b = [-1, 1, 3, -1, 2, 2, 2, -2, -2, 5, -3, 3]


def wrap(v):
    return (v + 2**63) % 2**64 - 2**63


def trunc_div(x, y):
    q = abs(x) // abs(y)
    return q if (x < 0) == (y < 0) else -q


np.save(os.path.join(out, "edge_a.npy"), np.array(edge_a, np.int64))
np.save(os.path.join(out, "edge_b.npy"), np.array(edge_b, np.int64))
np.save(os.path.join(out, "edge_div.npy"),
        np.array([wrap(trunc_div(x, y)) for x, y in zip(edge_a, edge_b)],
                 np.int64))
np.save(os.path.join(out, "edge_mod0.npy"),
        np.array([x % y for x, y in zip(edge_a, edge_b)], np.int64))
np.save(os.path.join(out, "edge_mod1.npy"),
        np.array([x - trunc_div(x, y) * y for x, y in zip(edge_a, edge_b)],
                 np.int64))
save("bad_mod_float_fmod0", [
    helper.make_node("Mod", ["a", "b"], ["y"], name="mod_float_fmod0"),
], [vi("a", ["N"]), vi("b", ["N"])], [vi("y", ["N"])])
save("bad_neg_bool", [
    helper.make_node("Neg", ["a"], ["y"], name="neg_bools"),
], [vi("a", ["N"], B)], [vi("y", ["N"], B)])
save("bad_mod_bool", [
    helper.make_node("Mod", ["a", "b"], ["y"], name="mod_bools", fmod=1),
], [vi("a", ["N"], B), vi("b", ["N"], B)], [vi("y", ["N"], B)])

# auto_pad SAME with dilations, which ONNX Runtime refuses ("Dilation not
# supported for AutoPadType::SAME_UPPER or SAME_LOWER"): the spec's padding
# (total (ceil(in / s) - 1) s + (k - 1) d + 1 - in, the odd one at the end
# for UPPER, at the begin for LOWER), applied with torch.nn.functional.pad,
# then torch's conv1d/conv2d as the reference.
import torch  # noqa: E402  (only this part needs it)


def same_reference(x, w, strides, dilations, upper):
    pads = []
    for i in reversed(range(x.ndim - 2)):  # F.pad lists the last dim first
        n, k, s, d = x.shape[2 + i], w.shape[2 + i], strides[i], dilations[i]
        total = max(0, (-(-n // s) - 1) * s + (k - 1) * d + 1 - n)
        small, big = total // 2, total - total // 2
        pads += [small, big] if upper else [big, small]
    xt = torch.nn.functional.pad(torch.from_numpy(x), pads)
    fn = torch.nn.functional.conv1d if x.ndim == 3 else \
        torch.nn.functional.conv2d
    return fn(xt, torch.from_numpy(w), stride=strides,
              dilation=dilations).numpy()


for name, xs, ws, st, dl, upper in [
        ("conv_same_upper_dilated", (2, 3, 11), (4, 3, 3), [1], [2], True),
        ("conv_same_lower_dilated", (1, 2, 10), (3, 2, 4), [2], [3], False),
        ("conv2d_same_lower_dilated", (1, 2, 7, 9), (2, 2, 3, 2), [2, 1],
         [2, 3], False)]:
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    dyn = ["N", xs[1]] + [f"S{i}" for i in range(len(xs) - 2)]
    save(name, [helper.make_node(
        "Conv", ["x", "w"], ["y"], name=name, strides=st, dilations=dl,
        auto_pad="SAME_UPPER" if upper else "SAME_LOWER")],
        [vi("x", dyn)], [vi("y", [None] * len(xs))], [init("w", w)])
    np.save(os.path.join(out, name + ".x.npy"), x)
    np.save(os.path.join(out, name + ".want.npy"),
            same_reference(x, w, st, dl, upper))

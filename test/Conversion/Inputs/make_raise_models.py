#!/usr/bin/env python3
"""Small ONNX models of exported MoE blocks for moe-raise-onnx
(test/Conversion/raise-onnx-moe.test): the forms it raises, with each gate
and activation, and near misses it must leave alone.

usage: make_raise_models.py OUT_DIR
"""
import os
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
F = TensorProto.FLOAT
D, E, G, K = 8, 4, 6, 2
rng = np.random.default_rng(0)


def init(name, shape):
    return numpy_helper.from_array(
        rng.standard_normal(shape).astype(np.float32), name)


def k_const(k=K):
    return numpy_helper.from_array(np.array([k], np.int64), "k")


def routing(gate, selector="x", softmax_axis=-1, router_bias=False):
    """Nodes computing (w, ids) from MatMul(selector, wsel) (+ bsel)."""
    nodes = [helper.make_node("MatMul", [selector, "wsel"],
                              ["s0" if router_bias else "s"], name="scores")]
    if router_bias:
        nodes.append(helper.make_node("Add", ["s0", "bsel"], ["s"],
                                      name="scores_bias"))
    if gate == "softmax":
        nodes += [helper.make_node("Softmax", ["s"], ["p"], name="sm",
                                   axis=softmax_axis),
                  helper.make_node("TopK", ["p", "k"], ["w", "ids"],
                                   name="topk", axis=-1)]
        return nodes
    nodes.append(helper.make_node("TopK", ["s", "k"], ["v", "ids"],
                                  name="topk", axis=-1))
    if gate == "sigmoid":
        nodes.append(helper.make_node("Sigmoid", ["v"], ["w"], name="gate"))
    elif gate == "topk_softmax":
        nodes.append(helper.make_node("Softmax", ["v"], ["w"], name="gate",
                                      axis=-1))
    else:  # an unsupported gate
        nodes.append(helper.make_node("Tanh", ["v"], ["w"], name="gate"))
    return nodes


def activation(act, src, dst):
    if act == "relu":
        return [helper.make_node("Relu", [src], [dst], name="act")]
    if act == "silu":
        return [helper.make_node("Sigmoid", [src], ["sg"], name="act_sg"),
                helper.make_node("Mul", [src, "sg"], [dst], name="act")]
    if act == "none":
        return [helper.make_node("Identity", [src], [dst], name="act")]
    return [helper.make_node("Tanh", [src], [dst], name="act")]


def gathered(name, gate="sigmoid", act="relu", ids2="ids", w1_input=False,
             selector="x", softmax_axis=-1, router_bias=False):
    nodes = routing(gate, selector, softmax_axis, router_bias)
    nodes += [
        helper.make_node("Gather", ["w1", "ids"], ["g1"], name="g1", axis=0),
        helper.make_node("Einsum", ["x", "g1"], ["h"], name="up",
                         equation="nd,nsdo->nso")]
    if act == "none":
        nodes += [helper.make_node("Gather", ["w2", ids2], ["g2"], name="g2",
                                   axis=0),
                  helper.make_node("Einsum", ["h", "g2"], ["y"], name="down",
                                   equation="nsg,nsgd->nsd")]
    else:
        nodes += activation(act, "h", "a")
        nodes += [helper.make_node("Gather", ["w2", ids2], ["g2"], name="g2",
                                   axis=0),
                  helper.make_node("Einsum", ["a", "g2"], ["y"], name="down",
                                   equation="nsg,nsgd->nsd")]
    nodes.append(helper.make_node("Einsum", ["w", "y"], ["out"],
                                  name="combine", equation="ab,abc->ac"))
    inputs = [helper.make_tensor_value_info("x", F, ["N", D])]
    if selector != "x":
        inputs.append(helper.make_tensor_value_info(selector, F, ["N", D]))
    inits = [init("wsel", [D, E]), init("w2", [E, G, D]), k_const()]
    if router_bias:
        inits.append(init("bsel", [E]))
    if w1_input:
        inputs.append(helper.make_tensor_value_info("w1", F, [E, D, G]))
    else:
        inits.append(init("w1", [E, D, G]))
    if ids2 != "ids":
        inputs.append(helper.make_tensor_value_info(ids2, TensorProto.INT64,
                                                    ["N", K]))
    save(name, nodes, inputs, inits)


def dense(name, gate="sigmoid", act="relu"):
    nodes = routing(gate)
    nodes += [
        helper.make_node("Shape", ["s"], ["shape"], name="shape"),
        helper.make_node("ConstantOfShape", ["shape"], ["zeros"],
                         name="zeros"),
        helper.make_node("ScatterElements", ["zeros", "ids", "w"], ["gd"],
                         name="scatter", axis=-1),
        helper.make_node("Einsum", ["x", "w1"], ["h"], name="up",
                         equation="nd,edg->neg")]
    nodes += activation(act, "h", "a")
    nodes += [helper.make_node("Einsum", ["a", "w2"], ["y"], name="down",
                               equation="neg,egd->ned"),
              helper.make_node("Einsum", ["gd", "y"], ["out"], name="combine",
                               equation="ne,ned->nd")]
    save(name, nodes, [helper.make_tensor_value_info("x", F, ["N", D])],
         [init("wsel", [D, E]), init("w1", [E, D, G]), init("w2", [E, G, D]),
          k_const()])


def save(name, nodes, inputs, inits, opset=17):
    graph = helper.make_graph(
        nodes, name, inputs, [helper.make_tensor_value_info("out", F,
                                                            ["N", D])],
        inits)
    model = helper.make_model(graph,
                              opset_imports=[helper.make_opsetid("", opset)])
    with open(os.path.join(out, name + ".onnx"), "wb") as f:
        f.write(model.SerializeToString())


gathered("gathered_sigmoid_relu")
gathered("gathered_softmax_silu", gate="softmax", act="silu")
gathered("gathered_topk_softmax_none", gate="topk_softmax", act="none")
gathered("gathered_selector", selector="xs")
dense("dense_sigmoid_relu")
dense("dense_topk_softmax_silu", gate="topk_softmax", act="silu")
# Near misses: left as exported.
gathered("miss_tanh_activation", act="tanh")
gathered("miss_tanh_gate", gate="tanh")
gathered("miss_other_ids", ids2="ids_other")
gathered("miss_weight_input", w1_input=True)
# A softmax over the tokens (axis -2 of the [N, E] scores), not the experts.
gathered("miss_softmax_tokens", gate="softmax", softmax_axis=-2)
# A router with a bias (moe.ffn's has none).
gathered("miss_router_bias", router_bias=True)
# Nodes without outputs (ONNX allows them) of the types the raise starts
# from: each matcher is skipped, no crash (a segfault before).
save("zero_outputs",
     [helper.make_node("Einsum", ["x", "x"], [], equation="nd,nd->n"),
      helper.make_node("ReduceSum", ["x", "axes0"], []),
      helper.make_node("Add", ["x", "x"], []),
      helper.make_node("Reshape", ["x", "shape"], []),
      helper.make_node("Identity", ["x"], ["out"])],
     [helper.make_tensor_value_info("x", F, ["N", D])],
     [numpy_helper.from_array(np.array([0], np.int64), "axes0"),
      numpy_helper.from_array(np.array([-1, D], np.int64), "shape")])


# The dynamo exporter of PyTorch 2.5-2.8 writes each einsum as ATen lowers
# it (sumproduct_pair): operands permuted to [batch, rows, contracted] /
# [batch, contracted, cols] and flattened, one MatMul, the result
# unflattened with a size-1 dim per contracted label, permuted to the output
# order and squeezed; sizes read from the graph input. Weights are indexed
# with GatherND(w, Unsqueeze(ids, -1)), zeros_like is Expand(0, Shape(s)).
class Aten:
    def __init__(self, sizes, size_of="x"):
        # sizes: label -> int, or "N" for dim 0 of input `size_of`.
        self.sizes, self.size_of, self.nodes, self.inits = sizes, size_of, [], []
        self.n = 0

    def fresh(self, what):
        self.n += 1
        return f"{what}_{self.n}"

    def const(self, values):
        name = self.fresh("c")
        self.inits.append(numpy_helper.from_array(np.array(values, np.int64),
                                                  name))
        return name

    def node(self, op, ins, **attrs):
        out = self.fresh(op.lower())
        self.nodes.append(helper.make_node(op, ins, [out], name=out, **attrs))
        return out

    def piece(self, labels):
        """A one-element shape piece: the product of the labels' sizes."""
        static = int(np.prod([self.sizes[l] for l in labels
                              if self.sizes[l] != "N"]))
        dynamic = sum(self.sizes[l] == "N" for l in labels)
        if not dynamic:
            return self.const([static])
        shape = self.node("Shape", [self.size_of], start=0, end=1)
        v = self.node("Squeeze", [shape])
        for _ in range(dynamic - 1):
            v = self.node("Mul", [v, v])
        if static != 1:
            v = self.node("Mul", [v, self.const(static)])
        return self.node("Reshape", [v, self.const([-1])])

    def shape(self, groups):
        return self.node("Concat", [self.piece(g) for g in groups], axis=0)

    def einsum(self, eq, a, b, perm_b=None):
        ins, out = eq.split("->")
        la, lb = ins.split(",")
        lro = [c for c in out if c in la and c in lb]
        lo = [c for c in out if c in la and c not in lb]
        ro = [c for c in out if c in lb and c not in la]
        sm = [c for c in la if c in lb and c not in out]
        pa = [la.index(c) for c in lro + lo + sm]
        order_b = lro + sm + ro
        pb = perm_b or [lb.index(c) for c in order_b]
        a3 = self.node("Reshape", [self.node("Transpose", [a], perm=pa),
                                   self.shape([lro, lo, sm])])
        b3 = self.node("Reshape", [self.node("Transpose", [b], perm=pb),
                                   self.shape([lro, sm, ro])])
        mm = self.node("MatMul", [a3, b3])
        full = lro + lo + ["1"] * len(sm) + ro
        self.sizes["1"] = 1
        un = self.node("Reshape", [mm, self.shape([[c] for c in full])])
        keep = [full.index(c) for c in out] + [
            i for i, c in enumerate(full) if c == "1"]
        back = self.node("Transpose", [un], perm=keep)
        return self.node("Reshape", [back, self.shape([[c] for c in out])])

    def gather_rows(self, w, ids):
        axis = self.const([-1])
        index = self.node("Unsqueeze", [ids, axis])
        return self.node("GatherND", [w, index])


def aten_gathered(name, g=G, perm_b=None, size_of="x"):
    """Form (c) as the dynamo exporter of PyTorch 2.5 writes it."""
    at = Aten({"n": "N", "s": K, "d": D, "o": g}, size_of)
    at.nodes += routing("sigmoid")
    g1 = at.gather_rows("w1", "ids")
    h = at.einsum("nd,nsdo->nso", "x", g1, perm_b)
    a = at.node("Relu", [h])
    at.sizes["g"] = g
    g2 = at.gather_rows("w2", "ids")
    y = at.einsum("nsg,nsgd->nsd", a, g2)
    o = at.einsum("ns,nsd->nd", "w", y)
    at.nodes.append(helper.make_node("Identity", [o], ["out"], name="copy"))
    inputs = [helper.make_tensor_value_info("x", F, ["N", D])]
    if size_of != "x":
        inputs.append(helper.make_tensor_value_info(size_of, F, ["M"]))
    save(name, at.nodes, inputs,
         at.inits + [init("wsel", [D, E]), init("w1", [E, D, g]),
                     init("w2", [E, g, D]), k_const()], opset=18)


def aten_dense(name):
    """Form (b) as the dynamo exporter of PyTorch 2.5 writes it."""
    at = Aten({"n": "N", "e": E, "d": D, "g": G})
    at.nodes += routing("sigmoid")
    zero = numpy_helper.from_array(np.array(0, np.int64), "zero")
    at.nodes += [
        helper.make_node("Shape", ["s"], ["shape"], name="shape", start=0),
        helper.make_node("CastLike", ["zero", "s"], ["zero_f"], name="cl"),
        helper.make_node("Expand", ["zero_f", "shape"], ["zeros"],
                         name="zeros"),
        helper.make_node("ScatterElements", ["zeros", "ids", "w"], ["gd"],
                         name="scatter", axis=-1)]
    h = at.einsum("nd,edg->neg", "x", "w1")
    a = at.node("Relu", [h])
    y = at.einsum("neg,egd->ned", a, "w2")
    o = at.einsum("ne,ned->nd", "gd", y)
    at.nodes.append(helper.make_node("Identity", [o], ["out"], name="copy"))
    save(name, at.nodes, [helper.make_tensor_value_info("x", F, ["N", D])],
         at.inits + [zero, init("wsel", [D, E]), init("w1", [E, D, G]),
                     init("w2", [E, G, D]), k_const()], opset=18)


aten_gathered("aten_gathered")
aten_dense("aten_dense")
# Near misses of the recovery: the up projection contracts the expert
# weight's output dim instead of its input dim (D = G, so the chain is
# valid; the recovered equation is "nd,nsod->nso"), and sizes read from
# another input (equal at run time, not provably).
aten_gathered("aten_miss_contraction", g=D, perm_b=[0, 1, 3, 2])
aten_gathered("aten_miss_other_size", size_of="m")

# Form (a) near misses: a real Hugging Face export (Mixtral block, argv[2])
# with one thing changed.
if len(sys.argv) > 2:
    import onnx
    base = onnx.load(sys.argv[2])

    def mutated(name, change, model=base):
        m = onnx.ModelProto()
        m.CopyFrom(model)
        change(m.graph)
        onnx.save(m, os.path.join(out, name + ".onnx"))

    def tanh_in_one_expert(g):
        # The first expert's silu becomes x * tanh(x).
        for n in g.node:
            if n.op_type == "Sigmoid" and "experts.0" in n.name:
                n.op_type = "Tanh"
                return
        raise SystemExit("no expert Sigmoid found")

    def wrong_k(g):
        # The routing weight of a row read at token * 3 + slot (k is 2).
        tokens = {n.output[0] for n in g.node if n.op_type == "Squeeze"}
        for n in g.node:
            if n.op_type == "Mul" and n.input[0] in tokens:
                g.initializer.append(numpy_helper.from_array(
                    np.array(3, np.int64), "three"))
                n.input[1] = "three"
                return
        raise SystemExit("no token * k Mul found")

    mutated("hf_miss_activation", tanh_in_one_expert)
    mutated("hf_miss_k", wrong_k)

# Form (a) as PyTorch's dynamo exporter writes it: near misses of a real
# export (the Mixtral block of Execution/Inputs/torch2, argv[3]) with one
# thing changed.
if len(sys.argv) > 3:
    import onnx
    dyn = onnx.load(sys.argv[3])

    def mutated_dyn(name, change):
        mutated(name, change, dyn)

    def scatters(g):
        found = [n for n in g.node if n.op_type == "ScatterND"]
        if len(found) < 2:
            raise SystemExit("no ScatterND chain found")
        return found

    def reduction_mul(g):
        for a in scatters(g)[0].attribute:
            if a.name == "reduction":
                a.s = b"mul"

    def expert_skipped(g):
        # The second expert scatters into the first one's input: expert 0's
        # rows are never added.
        s = scatters(g)
        s[1].input[0] = s[0].input[0]

    def slot_token_swapped(g):
        # The routing weight read at RW[slot, token] instead of
        # RW[token, slot] (for the first expert).
        makers = {o: n for n in g.node for o in n.output}
        for n in g.node:
            if n.op_type == "GatherND" and n.input[1] in makers:
                cat = makers[n.input[1]]
                if cat.op_type == "Concat" and len(cat.input) == 2:
                    cat.input[0], cat.input[1] = cat.input[1], cat.input[0]
                    return
        raise SystemExit("no routing-weight GatherND found")

    def makers(g):
        return {o: n for n in g.node for o in n.output}

    def const_value(g, name):
        for t in g.initializer:
            if t.name == name:
                return numpy_helper.to_array(t)
        for n in g.node:
            if n.output and n.output[0] == name and n.op_type == "Constant":
                return numpy_helper.to_array(n.attribute[0].t)
        raise SystemExit(f"{name} is not a constant")

    def first_expert(g):
        """The first expert's Gather(M, e) and the Slices of its NonZero."""
        m = makers(g)
        for n in g.node:
            if n.op_type == "NonZero" and m[n.input[0]].op_type == "Gather":
                pick = m[n.input[0]]
                tr = [t for t in g.node if t.op_type == "Transpose"
                      and t.input[0] == n.output[0]][0]
                slices = [sl for sl in g.node if sl.op_type == "Slice"
                          and sl.input[0] == tr.output[0]]
                return pick, slices
        raise SystemExit("no expert mask row found")

    def expert_index_list(g):
        # M[[e]] instead of M[e]: [1, k, N], NonZero gives 3 columns.
        pick, _ = first_expert(g)
        e = const_value(g, pick.input[1])
        g.initializer.append(numpy_helper.from_array(
            np.array(e, np.int64).reshape([1]), "e_list"))
        pick.input[1] = "e_list"
        # The exporter's value_info no longer holds downstream of it: drop
        # it, so that shape inference (the importer's type hints) runs.
        del g.value_info[:]

    def columns_swapped(g):
        # The first expert's token and slot columns exchanged.
        _, slices = first_expert(g)
        if len(slices) != 2:
            raise SystemExit("expected two Slices of the NonZero")
        a, b = slices
        a.input[1], b.input[1] = b.input[1], a.input[1]
        a.input[2], b.input[2] = b.input[2], a.input[2]

    def arange_shifted(g):
        # The mask compares the ids with 1..E instead of 0..E-1.
        rng_ = [n for n in g.node if n.op_type == "Range"]
        if not rng_:
            raise SystemExit("no Range found")
        g.initializer.append(numpy_helper.from_array(
            np.array(1, np.int64), "one_start"))
        g.initializer.append(numpy_helper.from_array(
            np.array(E + 1, np.int64), "limit_shifted"))
        rng_[0].input[0] = "one_start"
        rng_[0].input[1] = "limit_shifted"

    mutated_dyn("dyn_miss_expert_list", expert_index_list)
    mutated_dyn("dyn_miss_columns", columns_swapped)
    mutated_dyn("dyn_miss_arange", arange_shifted)
    mutated_dyn("dyn_miss_reduction", reduction_mul)
    mutated_dyn("dyn_miss_expert", expert_skipped)
    mutated_dyn("dyn_miss_slot_token", slot_token_swapped)

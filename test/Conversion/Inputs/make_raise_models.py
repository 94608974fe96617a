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


def routing(gate, selector="x", softmax_axis=-1):
    """Nodes computing (w, ids) from MatMul(selector, wsel)."""
    nodes = [helper.make_node("MatMul", [selector, "wsel"], ["s"],
                              name="scores")]
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
             selector="x", softmax_axis=-1):
    nodes = routing(gate, selector, softmax_axis)
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


def save(name, nodes, inputs, inits):
    graph = helper.make_graph(
        nodes, name, inputs, [helper.make_tensor_value_info("out", F,
                                                            ["N", D])],
        inits)
    model = helper.make_model(graph,
                              opset_imports=[helper.make_opsetid("", 17)])
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

# Form (a) near misses: a real Hugging Face export (Mixtral block, argv[2])
# with one thing changed.
if len(sys.argv) > 2:
    import onnx
    base = onnx.load(sys.argv[2])

    def mutated(name, change):
        m = onnx.ModelProto()
        m.CopyFrom(base)
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

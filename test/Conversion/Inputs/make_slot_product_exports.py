"""MoE blocks as transformers 5 computes them with experts_implementation
"batched_mm" (one gathered weight matrix per routing slot), exported by
torch.onnx.export, for raise-slot-products.test.

usage: python make_slot_product_exports.py OUT_DIR

Each module routes the rows of x (a softmax router and top-k, DeepSeek's
biased group-limited sigmoid routing, or ids and weights given as
inputs), repeats every row k times (repeat_interleave), applies each
slot's gathered expert weights as a batched matrix-vector product, scales
by the slot weight and sums each token's k slots. The variants cover the routings transformers'
families use and both weight layouts; the near misses pair slots with the
wrong ids or rows, or compute something else, and must stay as exported.
Written by the suite's torch (TorchScript exporter, opset 17), N dynamic.
"""
import os
import sys

import torch
import torch.nn.functional as F

out = sys.argv[1]
os.makedirs(out, exist_ok=True)


def bad_models():
    """SelectedExperts named directly, with operands it refuses."""
    import onnx
    from onnx import helper as h
    T = onnx.TensorProto

    def save(name, x, ids, ids_type, w, w1):
        v = h.make_tensor_value_info
        g = h.make_graph(
            [h.make_node("SelectedExperts", ["x", "ids", "w", "w1", "w2"],
                         ["y"], domain="org.moe_mlir.internal",
                         activation="relu")], "g",
            [v("x", T.FLOAT, x), v("ids", ids_type, ids), v("w", T.FLOAT, w),
             v("w1", T.FLOAT, w1), v("w2", T.FLOAT, [3, 5, 4])],
            [v("y", T.FLOAT, [x[0], 4])])
        onnx.save(h.make_model(g, opset_imports=[
            h.make_opsetid("", 17),
            h.make_opsetid("org.moe_mlir.internal", 1)]),
            os.path.join(out, name + ".onnx"))
    save("bad_ids", ["n", 4], ["n", 2], T.FLOAT, ["n", 2], [3, 4, 5])
    save("bad_width", ["n", 4], ["n", 2], T.INT64, ["n", 2], [3, 5, 5])
    save("bad_rows", [3, 4], [2, 2], T.INT64, [3, 2], [3, 4, 5])
    save("bad_slots", ["n", 4], ["n", "k"], T.INT64, ["n", "k"], [3, 4, 5])
    save("bad_experts", ["n", 4], ["n", 2], T.INT64, ["n", 2], ["e", 4, 5])

    # The optional parts: w3, b1, b2, b3 ("" for none) and the activation.
    def save_parts(name, parts, act="silu", **attrs):
        v = h.make_tensor_value_info
        shapes = {"w3": [3, 4, 5], "b1": [3, 5], "b2": [3, 4], "b3": [3, 5],
                  "b2_wide": [3, 5]}
        ins = ["x", "ids", "w", "w1", "w2"] + parts
        g = h.make_graph(
            [h.make_node("SelectedExperts", ins, ["y"],
                         domain="org.moe_mlir.internal", activation=act,
                         **attrs)], "g",
            [v("x", T.FLOAT, ["n", 4]), v("ids", T.INT64, ["n", 2]),
             v("w", T.FLOAT, ["n", 2]), v("w1", T.FLOAT, [3, 4, 5]),
             v("w2", T.FLOAT, [3, 5, 4])] +
            [v(p, T.FLOAT, shapes[p]) for p in parts if p],
            [v("y", T.FLOAT, ["n", 4])])
        onnx.save(h.make_model(g, opset_imports=[
            h.make_opsetid("", 17),
            h.make_opsetid("org.moe_mlir.internal", 1)]),
            os.path.join(out, name + ".onnx"))
    save_parts("bad_b3", ["", "", "", "b3"])
    save_parts("bad_swiglu", [], act="swiglu")
    save_parts("bad_alpha", ["w3"], act="silu", alpha=1.5)
    save_parts("bad_limit", ["w3"], act="swiglu", limit=-1.0)
    save_parts("bad_b2", ["w3", "b1", "b2_wide"])


if sys.argv[2:] == ["--bad"]:
    bad_models()
    sys.exit(0)
D, I, E = 12, 10, 6


class Block(torch.nn.Module):
    """biases: "up", "down" or "both" projections carry a bias gathered by
    the slot's expert id. act "oai" is GPT-OSS's gate, on interleaved
    halves: (clamp(up, -L, L) + 1) * g * sigmoid(1.702 g), g = clamp(gate,
    max=L), L = `limit` (None: no clamps). router_bias: the router's bias
    as F.linear writes it (Gemm, transB; GPT-OSS's), as x @ W^T + b
    (MatMul, Add), or as torch.addmm with a [1, E] bias (Gemm of W^T, no
    transB)."""

    def __init__(self, k=2, routing="renorm", gated=True, act="silu",
                 transposed=False, miss=None, seed=0, biases=None,
                 interleaved=False, limit=0.6, router_bias=None):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.k, self.routing, self.gated, self.act = k, routing, gated, act
        self.transposed, self.miss = transposed, miss
        self.biases, self.interleaved, self.limit = biases, interleaved, limit
        self.router_bias = router_bias
        up = (2 if gated else 1) * I
        self.router = torch.nn.Parameter(torch.randn(E, D, generator=g) * .5)
        w1 = torch.randn(E, up, D, generator=g) * .3   # [E, out, in]
        w2 = torch.randn(E, D, I, generator=g) * .3
        if transposed:                                  # [E, in, out]
            w1, w2 = w1.transpose(1, 2).contiguous(), w2.transpose(1, 2)
        self.w1 = torch.nn.Parameter(w1)
        self.w2 = torch.nn.Parameter(w2.contiguous())
        self.b1 = torch.nn.Parameter(torch.randn(E, up, generator=g) * .1)
        self.bias = torch.nn.Parameter(torch.randn(E, generator=g) * .1)
        self.b2 = torch.nn.Parameter(torch.randn(E, D, generator=g) * .1)
        self.rbias = torch.nn.Parameter(torch.randn(E, generator=g))
        # The router's weight stored [D, E] (addmm's Gemm reads it as is).
        self.router_de = torch.nn.Parameter(self.router.detach().t().clone())

    def linear(self, x, w):
        if self.transposed:
            return torch.bmm(x.unsqueeze(1), w).squeeze(1)
        return torch.bmm(w, x.unsqueeze(-1)).squeeze(-1)

    def forward(self, x, given_ids=None, given_w=None):
        # other_rows: a router that reads other rows than the experts
        xr = x * 2 if self.miss == "other_rows" else x
        if self.router_bias == "add":
            logits = xr @ self.router.t() + self.rbias
        elif self.router_bias == "addmm":
            logits = torch.addmm(self.rbias.view(1, E), xr, self.router_de)
        else:
            logits = F.linear(xr, self.router,
                              self.rbias if self.router_bias else None)
        if self.routing == "given":            # ids and weights as inputs
            ids, w = given_ids, given_w
        elif self.routing == "given_neg":      # counted from the end
            ids, w = given_ids - E, given_w
        elif self.routing == "grouped":        # DeepSeek-V3, GLM-4-MoE
            scores = logits.sigmoid()
            choice = scores + self.bias
            n = x.shape[0]
            groups = choice.view(n, 2, E // 2).topk(2, dim=-1)[0].sum(-1)
            keep = groups.topk(1, dim=-1)[1]
            mask = torch.zeros_like(groups).scatter_(1, keep, 1)
            mask = mask.unsqueeze(-1).expand(n, 2, E // 2).reshape(n, E)
            choice = choice.masked_fill(~mask.bool(), 0.0)
            ids = torch.topk(choice, self.k, dim=-1, sorted=False)[1]
            w = scores.gather(1, ids)
            w = w / (w.sum(dim=-1, keepdim=True) + 1e-20) * 2.5
        elif self.routing == "topk_softmax":   # GraniteMoE
            v, ids = torch.topk(logits, self.k, dim=-1)
            w = torch.softmax(v, dim=-1)
        else:
            probs = torch.softmax(logits, dim=-1)
            w, ids = torch.topk(probs, self.k, dim=-1)
            if self.routing == "renorm":       # Mixtral, Qwen3-MoE
                w = w / w.sum(dim=-1, keepdim=True)
        n = x.shape[0]
        if self.miss == "repeat":              # whole-matrix repeat
            xs = x.repeat(self.k, 1)
        else:
            # x.repeat_interleave(k, dim=0) as torch 2's dynamo exporter
            # writes it (torch 1.13's TorchScript exporter writes a Loop
            # for a dynamic N).
            xs = x.unsqueeze(1).expand(n, self.k, D).reshape(-1, D)
        flat_ids = (ids.t() if self.miss == "column_ids" else ids).reshape(-1)
        h = self.linear(xs, self.w1[flat_ids])
        if self.biases in ("up", "both"):
            h = h + self.b1[flat_ids]
        if self.gated:
            if self.interleaved:
                gate, up = h[..., ::2], h[..., 1::2]
            else:
                gate, up = h.chunk(2, dim=-1)
            if self.miss == "swapped":
                gate, up = up, gate
        if self.act == "oai":
            if self.limit is not None:
                low = -self.limit if self.miss == "gate_low" else None
                gate = gate.clamp(min=low, max=self.limit)
                up_limit = self.limit * (2 if self.miss == "limits" else 1)
                if self.miss != "up_unclamped":
                    up = up.clamp(min=-up_limit, max=up_limit)
            h = (up + 1) * (gate * torch.sigmoid(gate * 1.702))
        else:
            fn = {"silu": F.silu, "gelu": F.gelu, "relu": F.relu,
                  # Nemotron-H's squared ReLU, as a power and as a product
                  "relu2": lambda t: F.relu(t) ** 2,
                  "relu2_mul": lambda t: F.relu(t) * F.relu(t),
                  # near misses: another power, two different Relus
                  "relu3": lambda t: F.relu(t) ** 3,
                  "relu_relu": lambda t: F.relu(t) * F.relu(t * 1.5)}[
                self.act]
            h = fn(gate) * up if self.gated else fn(h)
        down_ids = ids.flip(-1).reshape(-1) if self.miss == "two_ids" \
            else flat_ids
        y = self.linear(h, self.w2[down_ids])
        if self.biases in ("down", "both"):
            bias_ids = ids.flip(-1).reshape(-1) if self.miss == "bias_ids" \
                else flat_ids
            y = y + self.b2[bias_ids]
        flat_w = (w.t() if self.miss == "weights_t" else w).reshape(-1)
        y = y * flat_w.unsqueeze(-1)
        return y.view(n, self.k, D).sum(dim=1)


class Tokens(torch.nn.Module):
    """The block on [B, T, D] hidden states, viewed as rows as
    transformers does."""

    def __init__(self, **kw):
        super().__init__()
        self.block = Block(**kw)

    def forward(self, x):
        b, t, d = x.shape
        return self.block(x.view(-1, d)).reshape(b, t, d)


def export(name, module, rank=2):
    x = torch.randn(*([2, 5] if rank == 3 else [7]), D)
    axes = {0: "b", 1: "t"} if rank == 3 else {0: "n"}
    args, names, dyn = (x,), ["x"], {"x": axes, "y": axes}
    if getattr(module, "routing", None) in ("given", "given_neg"):
        args = (x, torch.randint(0, E, (7, 2)), torch.rand(7, 2))
        names += ["ids", "w"]
        dyn.update(ids={0: "n"}, w={0: "n"})
    with torch.no_grad():
        torch.onnx.export(module.eval(), args, os.path.join(out, name + ".onnx"),
                          opset_version=17, input_names=names,
                          output_names=["y"], dynamic_axes=dyn)


export("renorm", Block())
export("softmax", Block(routing="softmax", seed=1))
export("topk_softmax", Block(routing="topk_softmax", seed=2))
export("transposed", Block(transposed=True, seed=3))
export("ungated_gelu", Block(gated=False, act="gelu", seed=4))
export("all_experts", Block(k=E, seed=5))
export("tokens", Tokens(seed=6), rank=3)
# the graph's own routing: raised with its ids and weights
export("grouped", Block(routing="grouped", seed=11))
export("given", Block(routing="given", seed=12))
export("given_neg", Block(routing="given_neg", seed=17))
# the export's own pairings, whatever they are, kept: weights flattened
# column-major, a router over other rows (so not the routing moe.route
# computes from the experts' rows)
export("weights_t", Block(miss="weights_t", seed=13))
export("other_rows", Block(miss="other_rows", seed=14))
# near miss: the projections gather by different ids
export("two_ids", Block(miss="two_ids", seed=15))
# near misses
export("column_ids", Block(miss="column_ids", seed=7))
export("repeat", Block(miss="repeat", seed=8))
# the gate the second half; biases on one projection or both
export("swapped", Block(miss="swapped", seed=9))
export("bias", Block(biases="up", seed=10))
export("down_bias", Block(biases="down", seed=16))
export("biases_grouped", Block(routing="grouped", biases="both", seed=18))
# GPT-OSS: biased router, softmax of the top-k logits, [E, in, out]
# weights, interleaved halves, clamped gate, biases; also with the graph's
# own routing, the [E, out, in] layout, no clamps, and plain interleaved
# silu halves
export("oai", Block(routing="topk_softmax", act="oai", interleaved=True,
                    transposed=True, biases="both", router_bias="linear",
                    seed=19))
export("oai_grouped", Block(routing="grouped", act="oai", interleaved=True,
                            biases="both", router_bias="linear", seed=20))
export("oai_unclamped", Block(routing="topk_softmax", act="oai",
                              interleaved=True, limit=None,
                              router_bias="linear", seed=21))
export("interleaved", Block(interleaved=True, seed=22))
# the gate the odd columns; an ungated expert with biases; the router's
# bias as MatMul + Add, and as addmm (Gemm without transB, [1, E] bias)
export("oai_swapped", Block(routing="topk_softmax", act="oai",
                            interleaved=True, biases="both", miss="swapped",
                            seed=26))
export("ungated_bias", Block(gated=False, act="gelu", biases="both",
                             seed=27))
export("router_add", Block(router_bias="add", biases="down", seed=28))
export("router_addmm", Block(routing="softmax", router_bias="addmm",
                             seed=29))
# squared ReLU (Nemotron-H: ungated, its own routing), gated too; as a
# Pow and as a product; near misses: relu(h)^3, relu(h) * relu(1.5 h)
export("relu2", Block(routing="grouped", gated=False, act="relu2", seed=31))
export("relu2_gated", Block(act="relu2_mul", seed=32))
export("relu2_mul", Block(gated=False, act="relu2_mul", seed=33))
export("relu2_gated_pow", Block(act="relu2", seed=34))
export("relu3", Block(gated=False, act="relu3", seed=35))
export("relu_relu", Block(gated=False, act="relu_relu", seed=36))


def int_exponent(src, dst):
    """`src` with its Pow's exponent an int64 2 (ONNX Pow takes integer
    exponents; PyTorch writes a float)."""
    import onnx
    from onnx import helper as h, numpy_helper
    import numpy as np
    m = onnx.load(os.path.join(out, src + ".onnx"))
    pow_node = next(n for n in m.graph.node if n.op_type == "Pow")
    m.graph.initializer.append(
        numpy_helper.from_array(np.array(2, np.int64), "two_i64"))
    pow_node.input[1] = "two_i64"
    onnx.save(m, os.path.join(out, dst + ".onnx"))


int_exponent("relu2", "relu2_int")
# near misses: a bias gathered by other ids than the product's, GPT-OSS's
# gate clamped from below too, different limits on the two halves
export("bias_ids", Block(biases="down", miss="bias_ids", seed=23))
export("oai_gate_low", Block(routing="topk_softmax", act="oai",
                             interleaved=True, biases="both",
                             miss="gate_low", seed=24))
export("oai_limits", Block(routing="topk_softmax", act="oai",
                           interleaved=True, biases="both", miss="limits",
                           seed=25))
export("oai_up_unclamped", Block(routing="topk_softmax", act="oai",
                                 interleaved=True, miss="up_unclamped",
                                 seed=30))

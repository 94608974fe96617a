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


if sys.argv[2:] == ["--bad"]:
    bad_models()
    sys.exit(0)
D, I, E = 12, 10, 6


class Block(torch.nn.Module):
    def __init__(self, k=2, routing="renorm", gated=True, act="silu",
                 transposed=False, miss=None, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.k, self.routing, self.gated, self.act = k, routing, gated, act
        self.transposed, self.miss = transposed, miss
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

    def linear(self, x, w):
        if self.transposed:
            return torch.bmm(x.unsqueeze(1), w).squeeze(1)
        return torch.bmm(w, x.unsqueeze(-1)).squeeze(-1)

    def forward(self, x, given_ids=None, given_w=None):
        # other_rows: a router that reads other rows than the experts
        logits = F.linear(x * 2 if self.miss == "other_rows" else x,
                          self.router)
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
        if self.miss == "bias":
            h = h + self.b1[flat_ids]
        fn = {"silu": F.silu, "gelu": F.gelu, "relu": F.relu}[self.act]
        if self.gated:
            gate, up = h.chunk(2, dim=-1)
            if self.miss == "swapped":
                gate, up = up, gate
            h = fn(gate) * up
        else:
            h = fn(h)
        down_ids = ids.flip(-1).reshape(-1) if self.miss == "two_ids" \
            else flat_ids
        y = self.linear(h, self.w2[down_ids])
        if self.miss == "down_bias":
            y = y + self.b2[flat_ids]
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
# near misses: the projections gather by different ids, a down bias
export("two_ids", Block(miss="two_ids", seed=15))
export("down_bias", Block(miss="down_bias", seed=16))
# near misses
export("column_ids", Block(miss="column_ids", seed=7))
export("repeat", Block(miss="repeat", seed=8))
export("swapped", Block(miss="swapped", seed=9))
export("bias", Block(miss="bias", seed=10))

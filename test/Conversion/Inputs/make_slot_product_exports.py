"""MoE blocks as transformers 5 computes them with experts_implementation
"batched_mm" (one gathered weight matrix per routing slot), exported by
torch.onnx.export, for raise-slot-products.test.

usage: python make_slot_product_exports.py OUT_DIR

Each module routes the rows of x with a softmax router and top-k, repeats
every row k times (repeat_interleave), applies each slot's gathered expert
weights as a batched matrix-vector product, scales by the slot weight and
sums each token's k slots. The variants cover the routings transformers'
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

    def linear(self, x, w):
        if self.transposed:
            return torch.bmm(x.unsqueeze(1), w).squeeze(1)
        return torch.bmm(w, x.unsqueeze(-1)).squeeze(-1)

    def forward(self, x):
        logits = F.linear(x, self.router)
        if self.routing == "topk_softmax":     # GraniteMoE
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
        y = self.linear(h, self.w2[flat_ids])
        y = y * w.reshape(-1).unsqueeze(-1)
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
    with torch.no_grad():
        torch.onnx.export(module.eval(), (x,), os.path.join(out, name + ".onnx"),
                          opset_version=17, input_names=["x"],
                          output_names=["y"],
                          dynamic_axes={"x": axes, "y": axes})


export("renorm", Block())
export("softmax", Block(routing="softmax", seed=1))
export("topk_softmax", Block(routing="topk_softmax", seed=2))
export("transposed", Block(transposed=True, seed=3))
export("ungated_gelu", Block(gated=False, act="gelu", seed=4))
export("all_experts", Block(k=E, seed=5))
export("tokens", Tokens(seed=6), rank=3)
# near misses
export("column_ids", Block(miss="column_ids", seed=7))
export("repeat", Block(miss="repeat", seed=8))
export("swapped", Block(miss="swapped", seed=9))
export("bias", Block(miss="bias", seed=10))

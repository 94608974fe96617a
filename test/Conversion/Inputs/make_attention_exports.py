"""Attention cores as torch.onnx.export writes them, for raise-attention.test.

usage: python make_attention_exports.py OUT_DIR

Each module computes softmax(q k^T * scale + mask) v (or a near miss) from
its inputs, exported with dynamic batch and sequence axes named alike, so
that the importer's symbolic sizes can prove B, H, T and S equal where they
are. Written by the suite's torch (TorchScript exporter, opset 17).
"""
import os
import sys

import onnx
import torch

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
H, DK, DV = 4, 8, 6


class Core(torch.nn.Module):
    """softmax(q @ k^T * scale [+ mask], dim) @ v."""

    def __init__(self, scale=0.25, mask=True, dim=-1, scores_out=False,
                 divide=None, guard=None):
        super().__init__()
        # torch's scaled_dot_product_attention as it is exported: NaN
        # probabilities (rows of only -inf) replaced, by 0 (or, a near
        # miss, by another value).
        self.guard = guard
        self.scale, self.mask, self.dim = scale, mask, dim
        # Older Hugging Face eager attention: scores / sqrt(d), and the
        # softmax cast to the query's dtype (an f32 -> f32 Cast).
        self.divide = divide
        if isinstance(divide, list):  # a [1] tensor: not a scalar constant
            self.register_buffer("divide_t", torch.tensor(divide))
            self.divide = self.divide_t
        if isinstance(scale, list):  # a [1] tensor: not a scalar constant
            self.register_buffer("scale_t", torch.tensor(scale))
            self.scale = None
        self.scores_out = scores_out

    def forward(self, q, k, v, m):
        s = torch.matmul(q, k.transpose(2, 3))
        if self.divide is not None:
            s = s / self.divide
        else:
            s = s * (self.scale if self.scale is not None else self.scale_t)
        if self.mask:
            s = s + m
        p = torch.softmax(s, dim=self.dim)
        if self.divide is not None:
            p = torch.softmax(s, dim=self.dim, dtype=torch.float32).to(q.dtype)
        if self.guard is not None:
            p = p.masked_fill(torch.isnan(p), self.guard)
        y = torch.matmul(p, v)
        return (y, s) if self.scores_out else y


def export(name, module, q_heads=H, k_heads=H, mask_shape=("B", 1, "T", "T"),
           kv_head_axis=None, q_head_axis=None):
    b, t = 2, 5
    q = torch.randn(b, q_heads, t, DK)
    k = torch.randn(b, k_heads, t, DK)
    v = torch.randn(b, k_heads, t, DV)
    dims = {"B": b, "T": t, "S2": t, "MB": b, "MH": 1}
    m = torch.randn(*[dims.get(d, d) for d in mask_shape])
    kv = {0: "B", 2: "T"}
    if kv_head_axis:
        kv[1] = kv_head_axis
    qa = {0: "B", 2: "T"}
    if q_head_axis:
        qa[1] = q_head_axis
    axes = {"q": qa, "k": dict(kv), "v": dict(kv),
            "m": {i: d for i, d in enumerate(mask_shape) if isinstance(d, str)}}
    outputs = ["y", "s"] if module.scores_out else ["y"]
    torch.onnx.export(module, (q, k, v, m), os.path.join(out, name + ".onnx"),
                      input_names=["q", "k", "v", "m"], output_names=outputs,
                      dynamic_axes=axes, opset_version=17)


# Raised: a mask [B, 1, T, S] (heads broadcast), [B, H, T, S], no mask,
# a mask whose key dim has its own name (dynamic: broadcast at run time
# where it is 1), K and V whose head count is dynamic (checked at run
# time, repeated where it is 1), a query head count of its own (a run-time
# 1 against K's 4 is reported), a padding mask [B, 1, 1, S] (its static
# 1s broadcast).
export("core_mask", Core())
export("core_mask_heads", Core(scale=0.5), mask_shape=("B", H, "T", "T"))
export("core_nomask", Core(mask=False))
export("core_mask_own_dims", Core(), mask_shape=("B", 1, "T", "S2"))
export("core_dynamic_heads", Core(), kv_head_axis="HK")
export("core_mask_own_batch", Core(), mask_shape=("MB", 1, "T", "T"))
export("core_query_heads", Core(), q_head_axis="HQ")
export("core_padding_mask", Core(), mask_shape=("B", 1, 1, "T"))
export("core_mask_own_heads", Core(), mask_shape=("B", "MH", "T", "T"))
export("core_divided", Core(divide=DK ** 0.5))
export("core_divided_pow2", Core(divide=4.0))
export("core_guarded", Core(guard=0.0))
# Near misses, left as exported: the softmax over the queries, the scores
# also an output, a mask whose static S differs from the keys' (written
# from core_mask with every size static: not valid ONNX, so the Add left
# as exported reports it).
export("miss_softmax_axis", Core(dim=2))
export("miss_scores_read", Core(scores_out=True))
static = onnx.load(os.path.join(out, "core_mask.onnx"))
sizes = {"q": [2, H, 5, DK], "k": [2, H, 5, DK], "v": [2, H, 5, DV],
         "m": [2, 1, 5, 4]}
for value in list(static.graph.input) + list(static.graph.output):
    shape = sizes.get(value.name, [2, H, 5, DV])
    for dim, size in zip(value.type.tensor_type.shape.dim, shape):
        dim.Clear()
        dim.dim_value = size
onnx.save(static, os.path.join(out, "miss_mask_static.onnx"))
# A scale of shape [1] (not a scalar: the scores' Mul is left alone, and
# the core does not match).
export("miss_scale_vector", Core(scale=[0.25]))
export("miss_divide_vector", Core(divide=[4.0]))
export("miss_guard_one", Core(guard=1.0))


class Sinks(torch.nn.Module):
    """gpt-oss's eager attention with attention sinks: softmax over the
    scores and one logit per head (a last column), that column dropped
    before P·V; `sub_max` and `cast` as gpt-oss writes it, `shared` one
    sink for every head, `drop_first` the wrong column sliced off, `width`
    columns of sinks (one dropped)."""

    def __init__(self, sub_max=True, cast=True, shared=False,
                 drop_first=False, width=-1):
        super().__init__()
        self.register_buffer("sinks", torch.randn(1 if shared else H))
        self.sub_max, self.cast = sub_max, cast
        self.drop_first, self.width = drop_first, width
        self.scores_out = False

    def forward(self, q, k, v, m):
        s = torch.matmul(q, k.transpose(2, 3)) * 0.25 + m
        sinks = self.sinks.reshape(1, -1, 1, 1).expand(
            q.shape[0], q.shape[1], q.shape[-2], self.width)
        c = torch.cat([s, sinks], dim=-1)
        if self.sub_max:
            c = c - c.max(dim=-1, keepdim=True).values
        p = torch.softmax(c, dim=-1, dtype=c.dtype)
        if self.cast:
            p = p.to(torch.float32)
        p = p[..., 1:] if self.drop_first else p[..., :-1]
        if self.width == 2:  # P has S + 1 columns: one more value row
            v = torch.cat([v, v[..., :1, :]], dim=-2)
        return torch.matmul(p, v)


# Attention sinks: raised as gpt-oss writes them and without the Sub and
# the Cast; near misses: one sink shared by every head, the first column
# dropped instead of the sink's, a sink column two wide (the export's P·V
# then needs one value row more than there are keys).
export("core_sinks", Sinks())
export("core_sinks_plain", Sinks(sub_max=False, cast=False))
export("core_sinks_shared", Sinks(shared=True))
export("miss_sinks_shared", Sinks(shared=True), q_head_axis="HQ",
       kv_head_axis="HQ")
export("miss_sinks_first", Sinks(drop_first=True))
export("miss_sinks_wide", Sinks(width=2))

"""PyTorch reference implementations (inference forward) of every model family
in shared/spec/models.md.

The formulation is the sparse one the spec describes: pick the top-k experts,
gather their weights and compute only the selected slots. The ONNX export
(onnx_export.py) computes the same functions densely (every expert, masked
gates), so comparing the two checks both.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {
    "relu": F.relu,
    "gelu": lambda x: F.gelu(x),  # exact (erf) form
    "silu": F.silu,
    "identity": lambda x: x,
}
GATES = ("sigmoid", "softmax", "topk_softmax")


def route(scores, k, gate):
    """Top-k routing of scores [N, E] -> (weights [N, k], ids [N, k])."""
    if gate == "sigmoid":
        values, ids = torch.topk(scores, k, dim=-1)
        return torch.sigmoid(values), ids
    if gate == "softmax":
        return torch.topk(torch.softmax(scores, dim=-1), k, dim=-1)
    if gate == "topk_softmax":
        values, ids = torch.topk(scores, k, dim=-1)
        return torch.softmax(values, dim=-1), ids
    raise ValueError(f"unknown gate {gate!r}; expected one of {GATES}")


def routed_matmul(x, ids, w, slot_weights=None):
    """models.md section 1: Y[n, s] = x[n] @ w[ids[n, s]]; reduced over s with
    slot_weights when given. x [N, Din], ids [N, S], w [E, Din, Dout]."""
    y = torch.einsum("nd,nsdo->nso", x, w[ids])
    if slot_weights is None:
        return y
    return torch.einsum("ns,nso->no", slot_weights, y)


def param(*shape, scale=None):
    fan_in = shape[-2] if len(shape) >= 2 else shape[-1]
    scale = scale if scale is not None else 1.0 / math.sqrt(fan_in)
    return nn.Parameter(torch.randn(*shape) * scale)


class SigmaMoE(nn.Module):
    """σ-MoE feed-forward (section 2) with any of the gates; rows [N, D]."""

    def __init__(self, d_model, n_experts, expert_size, k, gate="sigmoid",
                 activation="relu"):
        super().__init__()
        if not 1 <= k <= n_experts:
            raise ValueError(f"need 1 <= k <= E, got k={k}, E={n_experts}")
        self.k, self.gate, self.activation = k, gate, activation
        self.w_sel = param(n_experts, d_model)
        self.w1 = param(n_experts, d_model, expert_size)
        self.w2 = param(n_experts, expert_size, d_model)

    def forward(self, x, selector_input=None):
        xs = x if selector_input is None else selector_input
        weights, ids = route(xs @ self.w_sel.t(), self.k, self.gate)
        h = ACTIVATIONS[self.activation](routed_matmul(x, ids, self.w1))
        # Down projection: each slot has its own row.
        y = torch.einsum("nsg,nsgd->nsd", h, self.w2[ids])
        return torch.einsum("ns,nsd->nd", weights, y)


class SwitchFFN(nn.Module):
    """Switch top-1 routing with a capacity factor (section 7); rows [N, D].

    Tokens are admitted to their expert in order of row; overflowing tokens
    give 0. capacity = ceil(N / E * capacity_factor), computed in float32.
    """

    def __init__(self, d_model, n_experts, expert_size, capacity_factor,
                 activation="relu"):
        super().__init__()
        self.capacity_factor, self.activation = capacity_factor, activation
        self.w_sel = param(n_experts, d_model)
        self.w1 = param(n_experts, d_model, expert_size)
        self.w2 = param(n_experts, expert_size, d_model)

    def forward(self, x):
        n, e = x.shape[0], self.w_sel.shape[0]
        p = torch.softmax(x @ self.w_sel.t(), dim=-1)
        p_max, ids = p.max(dim=-1)
        f32 = lambda v: torch.tensor(v, dtype=torch.float32)
        capacity = float(f32(n) / f32(e) * f32(self.capacity_factor))
        capacity = math.ceil(capacity) if math.isfinite(capacity) else n
        kept = torch.zeros(n, dtype=torch.bool)
        counts = [0] * e
        for row in range(n):  # admission in order of position
            expert = int(ids[row])
            if counts[expert] < capacity:
                counts[expert] += 1
                kept[row] = True
        h = ACTIVATIONS[self.activation](
            torch.einsum("nd,ndg->ng", x, self.w1[ids]))
        y = torch.einsum("ng,ngd->nd", h, self.w2[ids])
        return (p_max * kept.to(x.dtype)).unsqueeze(-1) * y


def rope(x, rotate_fraction, base, offset=0):
    """RoPE, rotate-half convention, on the first r dims of each head of
    x [B, T, H, dh] at positions offset..offset+T-1, where r = floor(dh *
    fraction) rounded down to an even number (the MoEUT authors' rule: dh =
    82 at 0.5 rotates 40 dims; spec/models.md). A decode step after `offset`
    cached positions rotates its tokens at their absolute positions (the
    authors' cached path rotates the query at 0)."""
    dh = x.shape[-1]
    r = int(math.floor(dh * rotate_fraction)) // 2 * 2
    if r == 0:
        return x
    half = r // 2
    t = torch.arange(offset, offset + x.shape[1], dtype=x.dtype)
    inv_freq = base ** (-2.0 * torch.arange(half, dtype=x.dtype) / r)
    angle = t[:, None] * inv_freq[None, :]                 # [T, r/2]
    cos = torch.cos(angle)[None, :, None, :]
    sin = torch.sin(angle)[None, :, None, :]
    x1, x2, rest = x[..., :half], x[..., half:r], x[..., r:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, rest], dim=-1)


def attention(q, k, v, causal):
    """q, k, v [B, H, T, d]; scale 1/sqrt(dk)."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if causal:
        t, s = q.shape[-2], k.shape[-2]
        mask = torch.ones(t, s, dtype=torch.bool).tril(s - t)
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


class SwitchHead(nn.Module):
    """SwitchHead attention (section 3): MoE value and output projections,
    dense q/k, per-head sigmoid top-k, causal, RoPE on a fraction of dims.

    n_experts = 1 without a value selector is the gated variant: dense values,
    a per-head sigmoid output gate.
    """

    def __init__(self, d_model, n_heads, head_dim, n_experts, k,
                 rotate_fraction=0.5, rope_base=10000.0, causal=True):
        super().__init__()
        if not 1 <= k <= n_experts:
            raise ValueError(f"need 1 <= k <= E, got k={k}, E={n_experts}")
        self.h, self.dh, self.e, self.k = n_heads, head_dim, n_experts, k
        self.rotate_fraction, self.rope_base = rotate_fraction, rope_base
        self.causal = causal
        he = n_heads * n_experts
        self.wq = param(d_model, n_heads * head_dim)
        self.wk = param(d_model, n_heads * head_dim)
        self.wv = param(he, d_model, head_dim)
        self.wo = param(he, head_dim, d_model)
        self.sel_o = param(he, d_model)
        self.sel_v = param(he, d_model) if n_experts > 1 else None

    def _route_heads(self, src, sel):
        """Per-head sigmoid top-k: (weights [N, H, K], global ids [N, H, K])."""
        n = src.shape[0]
        scores = (src @ sel.t()).view(n, self.h, self.e)
        values, local = torch.topk(scores, self.k, dim=-1)
        offsets = (torch.arange(self.h) * self.e).view(1, self.h, 1)
        return torch.sigmoid(values), local + offsets

    def forward(self, q_src, k_src, v_src):
        return self.step(q_src, k_src, v_src)[0]

    def step(self, q_src, k_src, v_src, past_k=None, past_v=None):
        """The layer on T new tokens after a key/value cache of P positions
        (past_k [B, P, H, dh], past_v [B, P, H, dv]; None for P = 0): the
        output [B, T, D] (rows P..P+T-1 of forward() on the whole sequence)
        and the new keys (rotated) and values [B, T, H, *] to append."""
        b, t, d = q_src.shape
        n = b * t
        offset = 0 if past_k is None else past_k.shape[1]
        qs, ks, vs = (s.reshape(n, d) for s in (q_src, k_src, v_src))
        q = rope((qs @ self.wq).view(b, t, self.h, self.dh),
                 self.rotate_fraction, self.rope_base, offset)
        k = rope((ks @ self.wk).view(b, t, self.h, self.dh),
                 self.rotate_fraction, self.rope_base, offset)
        if self.sel_v is None:
            v = torch.einsum("nd,hdv->nhv", vs, self.wv)
        else:
            rv, ids = self._route_heads(ks, self.sel_v)       # [N, H, K]
            per_slot = torch.einsum("nd,nhkdv->nhkv", vs, self.wv[ids])
            v = torch.einsum("nhk,nhkv->nhv", rv, per_slot)
        v = v.view(b, t, self.h, -1)
        k_all = k if past_k is None else torch.cat([past_k, k], dim=1)
        v_all = v if past_v is None else torch.cat([past_v, v], dim=1)
        r = attention(q.transpose(1, 2), k_all.transpose(1, 2),
                      v_all.transpose(1, 2), self.causal)      # [B, H, T, dv]
        r = r.transpose(1, 2).reshape(n, self.h, -1)
        ro, ids = self._route_heads(qs, self.sel_o)
        per_slot = torch.einsum("nhv,nhkvd->nhkd", r, self.wo[ids])
        out = torch.einsum("nhk,nhkd->nd", ro, per_slot).view(b, t, d)
        return out, k, v


class MixtureOfTokens(nn.Module):
    """Mixture of Tokens (section 5) on x [B, T, D]; group_size divides B."""

    def __init__(self, d_model, n_experts, expert_size, group_size,
                 temperature=1.0, mode="continuous", activation="relu"):
        super().__init__()
        self.g, self.temperature, self.mode = group_size, temperature, mode
        self.activation = activation
        self.w_ctrl = param(d_model, n_experts)
        self.w1 = param(n_experts, d_model, expert_size)
        self.w2 = param(n_experts, expert_size, d_model)

    def forward(self, x):
        b, t, d = x.shape
        if b % self.g:
            raise ValueError(f"group size {self.g} does not divide batch {b}")
        xg = x.view(b // self.g, self.g, t, d)                 # [C, g, T, D]
        logits = (xg @ self.w_ctrl) / self.temperature          # [C, g, T, E]
        if self.mode == "continuous":
            m = torch.softmax(logits, dim=1)
        elif self.mode == "discrete":
            m = F.one_hot(logits.argmax(dim=1), self.g).permute(0, 3, 1, 2)
            m = m.to(x.dtype)
        else:
            raise ValueError(f"unknown mode {self.mode!r}")
        outs = []
        for e in range(self.w1.shape[0]):  # one expert at a time, as written
            z = torch.einsum("cgt,cgtd->ctd", m[..., e], xg)
            y = ACTIVATIONS[self.activation](z @ self.w1[e]) @ self.w2[e]
            outs.append(torch.einsum("cgt,ctd->cgtd", m[..., e], y))
        return torch.stack(outs).sum(0).reshape(b, t, d)


def tree_node_ids(u, mode):
    """Sign-bit tree routing (section 6) of gates u [N, depth] -> ids [N, S]."""
    bits = (u > 0).long()
    n, depth = bits.shape
    if mode == "flat":
        leaf = torch.zeros(n, dtype=torch.long)
        for j in range(depth):
            leaf = leaf * 2 + bits[:, j]
        return leaf.unsqueeze(1)
    ids, prefix = [torch.zeros(n, dtype=torch.long)], torch.zeros(
        n, dtype=torch.long)
    for j in range(1, depth + 1):
        prefix = prefix * 2 + bits[:, j - 1]
        ids.append((2 ** j - 1) + prefix)
    return torch.stack(ids, dim=1)


class TreeGatedLayer(nn.Module):
    """Conditional computation with sign-bit tree gating (section 6)."""

    def __init__(self, d_in, d_out, depth, mode="path", activation="relu"):
        super().__init__()
        self.mode, self.activation = mode, activation
        nodes = 2 ** (depth + 1) - 1 if mode == "path" else 2 ** depth
        self.w_gate = param(d_in, depth)
        self.w = param(nodes, d_in, d_out)

    def forward(self, h):
        ids = tree_node_ids(h @ self.w_gate, self.mode)
        ones = torch.ones(ids.shape, dtype=h.dtype)
        return ACTIVATIONS[self.activation](routed_matmul(h, ids, self.w, ones))


class MoEUTLayer(nn.Module):
    """One MoEUT layer with peri-layernorm (section 4)."""

    def __init__(self, cfg):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.att = SwitchHead(cfg.d_model, cfg.n_heads, cfg.head_dim,
                              cfg.att_experts, cfg.att_k,
                              rotate_fraction=0.5)
        self.ffn = SigmaMoE(cfg.d_model, cfg.ff_experts, cfg.expert_size,
                            cfg.ff_k)

    def forward(self, x):
        return self.step(x)[0]

    def step(self, x, past_k=None, past_v=None):
        """The layer on new positions after a key/value cache
        (SwitchHead.step): the output and the attention's new keys and
        values [B, T, H, *]."""
        xn = self.ln1(x)
        att, k, v = self.att.step(xn, xn, x, past_k, past_v)
        x = x + att
        b, t, d = x.shape
        rows = x.reshape(b * t, d)
        upd = self.ffn(rows, selector_input=self.ln2(rows))
        return x + upd.view(b, t, d), k, v


class MoEUT(nn.Module):
    """MoEUT (section 4): embedding, G distinct layers run R times in the
    order A, B, ..., A, B, ... with shared weights, LN_out, output projection
    with bias."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Parameter(torch.randn(cfg.vocab, cfg.d_model))
        self.layers = nn.ModuleList(MoEUTLayer(cfg) for _ in range(cfg.group))
        self.ln_out = nn.LayerNorm(cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.vocab)

    def forward(self, tokens):
        return self.step(tokens)[0]

    def step(self, tokens, cache=None):
        """Logits [B, T, V] of tokens [B, T] at positions P..P+T-1 after
        `cache` (None: P = 0), a list of (keys, values) [B, P, H, *] per
        absolute layer r * G + g; returns the logits and the cache extended
        by the T positions. The queries and keys of the new positions are
        rotated at their absolute positions."""
        x = self.embedding[tokens]
        new_cache = []
        for r in range(self.cfg.repeats):
            for g, layer in enumerate(self.layers):
                i = r * self.cfg.group + g
                pk, pv = cache[i] if cache else (None, None)
                x, k, v = layer.step(x, pk, pv)
                new_cache.append((k if pk is None else torch.cat([pk, k], 1),
                                  v if pv is None else torch.cat([pv, v], 1)))
        return self.out(self.ln_out(x)), new_cache

    @torch.no_grad()
    def generate(self, prompt, max_new_tokens):
        """Greedy decoding with the key/value cache: int64 [B, N]."""
        logits, cache = self.step(prompt)
        out = []
        for _ in range(max_new_tokens):
            token = logits[:, -1].argmax(-1, keepdim=True)
            out.append(token)
            logits, cache = self.step(token, cache)
        return torch.cat(out, 1)

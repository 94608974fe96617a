"""The test identities of shared/spec/models.md, on the PyTorch reference."""
import math

import pytest
import torch
import torch.nn.functional as F

from moe_ref import modules as M
from moe_ref.configs import PUBLISHED, TINY_MOEUT, moeut_parameter_count

torch.manual_seed(0)
close = lambda a, b: torch.allclose(a, b, atol=1e-5, rtol=1e-5)


def ffn(x, w1, w2, act=F.relu):
    return act(x @ w1) @ w2


# Section 1 --------------------------------------------------------------

@pytest.mark.parametrize("n,s,e", [(7, 1, 3), (5, 2, 9), (4, 3, 2), (6, 4, 1)])
def test_routed_matmul_matches_plain_loop(n, s, e):
    x, w = torch.randn(n, 8), torch.randn(e, 8, 5)
    ids = torch.randint(0, e, (n, s))
    sw = torch.randn(n, s)
    expected = torch.zeros(n, 5)
    for i in range(n):
        for j in range(s):
            expected[i] += sw[i, j] * (x[i] @ w[ids[i, j]])
    assert close(M.routed_matmul(x, ids, w, sw), expected)


def test_routed_matmul_all_slots_on_one_expert():
    x, w = torch.randn(5, 4), torch.randn(3, 4, 2)
    ids = torch.full((5, 2), 2)
    y = M.routed_matmul(x, ids, w, torch.ones(5, 2))
    assert close(y, 2 * (x @ w[2]))


# Section 2: σ-MoE ---------------------------------------------------------

def test_sigma_moe_k_equals_e_is_dense_sigmoid_mixture():
    m = M.SigmaMoE(12, 4, 6, k=4)
    x = torch.randn(5, 12)
    g = torch.sigmoid(x @ m.w_sel.t())
    expected = sum(g[:, e:e + 1] * ffn(x, m.w1[e], m.w2[e]) for e in range(4))
    with torch.no_grad():
        assert close(m(x), expected)


def test_sigma_moe_single_expert_is_scaled_dense_ffn():
    m = M.SigmaMoE(12, 1, 6, k=1)
    x = torch.randn(5, 12)
    with torch.no_grad():
        expected = torch.sigmoid(x @ m.w_sel.t()) * ffn(x, m.w1[0], m.w2[0])
        assert close(m(x), expected)


def test_softmax_gates():
    x = torch.randn(6, 5)
    w, ids = M.route(x, 2, "softmax")
    assert close(w, torch.softmax(x, -1).gather(1, ids))
    w, ids = M.route(x, 2, "topk_softmax")
    assert close(w.sum(-1), torch.ones(6))
    assert close(w, torch.softmax(x.gather(1, ids), -1))


def test_sigma_moe_selector_input_only_changes_routing():
    m = M.SigmaMoE(8, 4, 4, k=1)
    x, xs = torch.randn(3, 8), torch.randn(3, 8)
    with torch.no_grad():
        y = m(x, selector_input=xs)
        g, ids = torch.topk(torch.sigmoid(xs @ m.w_sel.t()), 1)
        for n in range(3):
            e = int(ids[n, 0])
            assert close(y[n], g[n, 0] * ffn(x[n], m.w1[e], m.w2[e]))


def test_invalid_k_is_refused():
    with pytest.raises(ValueError, match="1 <= k <= E"):
        M.SigmaMoE(8, 4, 4, k=5)
    with pytest.raises(ValueError, match="unknown gate"):
        M.route(torch.randn(2, 3), 1, "relu")


# Section 3: SwitchHead ----------------------------------------------------

def _mha_gated(m, x):
    """E = 1: multi-head attention with a per-head sigmoid output gate."""
    b, t, d = x.shape
    q = M.rope((x @ m.wq).view(b, t, m.h, m.dh), m.rotate_fraction, m.rope_base)
    k = M.rope((x @ m.wk).view(b, t, m.h, m.dh), m.rotate_fraction, m.rope_base)
    v = torch.einsum("btd,hdv->bthv", x, m.wv)
    scores = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(m.dh)
    scores = scores.masked_fill(~torch.ones(t, t, dtype=torch.bool).tril(),
                                float("-inf"))
    r = torch.einsum("bhts,bshv->bthv", scores.softmax(-1), v)
    gate = torch.sigmoid(x @ m.sel_o.t())                    # [B, T, H]
    return torch.einsum("bth,bthv,hvd->btd", gate, r, m.wo)


def test_switchhead_single_expert_is_gated_mha():
    m = M.SwitchHead(16, 2, 4, n_experts=1, k=1)
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        assert close(m(x, x, x), _mha_gated(m, x))


def test_switchhead_k_equals_e_values():
    m = M.SwitchHead(16, 2, 4, n_experts=3, k=3)
    x = torch.randn(1, 4, 16)
    with torch.no_grad():
        n = 4
        rows = x.view(n, 16)
        rv = torch.sigmoid(rows @ m.sel_v.t()).view(n, 2, 3)
        wv = m.wv.view(2, 3, 16, 4)
        expected = torch.einsum("nhe,nd,hedv->nhv", rv, rows, wv)
        rv_k, ids = m._route_heads(rows, m.sel_v)
        got = torch.einsum("nhk,nd,nhkdv->nhv", rv_k, rows, m.wv[ids])
        assert close(got, expected)


@pytest.mark.parametrize("experts,k", [(1, 1), (3, 2)])
def test_switchhead_is_causal(experts, k):
    m = M.SwitchHead(16, 2, 4, n_experts=experts, k=k)
    x = torch.randn(1, 6, 16)
    x2 = x.clone()
    x2[0, 4:] += torch.randn(2, 16)
    with torch.no_grad():
        assert close(m(x, x, x)[0, :4], m(x2, x2, x2)[0, :4])
        assert not close(m(x, x, x)[0, 4:], m(x2, x2, x2)[0, 4:])


def test_rope_rotates_only_the_requested_fraction():
    x = torch.randn(1, 5, 2, 8)
    y = M.rope(x, 0.5, 10000.0)
    assert torch.equal(y[..., 4:], x[..., 4:])
    assert close(y[:, 0], x[:, 0])                    # position 0: no rotation
    assert close(y.norm(dim=-1), x.norm(dim=-1))       # rotations keep norms
    assert torch.equal(M.rope(x, 0.0, 10000.0), x)


# Section 4: MoEUT ---------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_parameter_counts(name):
    cfg, published = PUBLISHED[name]
    count = moeut_parameter_count(cfg)
    # The paper rounds to 0.1M (1040M for the 1B model).
    unit = 1e6 if published >= 1e9 else 1e5
    assert round(count / unit) == round(published / unit), (count, published)


def test_parameter_count_matches_module():
    m = M.MoEUT(TINY_MOEUT)
    assert sum(p.numel() for p in m.parameters()) == moeut_parameter_count(
        TINY_MOEUT)


def test_moeut_repeats_share_weights():
    """R repeats of G layers equal an unrolled stack of the same G layers."""
    m = M.MoEUT(TINY_MOEUT)
    tokens = torch.randint(0, TINY_MOEUT.vocab, (2, 5))
    with torch.no_grad():
        x = m.embedding[tokens]
        for layer in list(m.layers) * TINY_MOEUT.repeats:
            x = layer(x)
        assert close(m(tokens), m.out(m.ln_out(x)))
    assert len(m.layers) == TINY_MOEUT.group


# Section 5: Mixture of Tokens -----------------------------------------------

def test_mot_group_of_one_is_sum_of_experts():
    m = M.MixtureOfTokens(8, 3, 4, group_size=1)
    x = torch.randn(2, 3, 8)
    with torch.no_grad():
        expected = sum(ffn(x, m.w1[e], m.w2[e]) for e in range(3))
        assert close(m(x), expected)


@pytest.mark.parametrize("mode", ["continuous", "discrete"])
def test_mot_permuting_a_group_permutes_outputs(mode):
    m = M.MixtureOfTokens(8, 3, 4, group_size=4, mode=mode)
    x = torch.randn(8, 2, 8)
    perm = torch.tensor([2, 0, 3, 1, 4, 5, 6, 7])   # inside the first group
    with torch.no_grad():
        assert close(m(x[perm]), m(x)[perm])


def test_mot_groups_are_independent_and_causal():
    m = M.MixtureOfTokens(8, 3, 4, group_size=2)
    x = torch.randn(4, 3, 8)
    x2 = x.clone()
    x2[2:, :] += 1.0                  # the second group only
    x3 = x.clone()
    x3[:, 2] += 1.0                   # the last position only
    with torch.no_grad():
        assert close(m(x2)[:2], m(x)[:2])
        assert close(m(x3)[:, :2], m(x)[:, :2])


def test_mot_refuses_group_not_dividing_batch():
    with pytest.raises(ValueError, match="does not divide"):
        M.MixtureOfTokens(8, 3, 4, group_size=3)(torch.randn(4, 2, 8))


# Section 6: tree gating -----------------------------------------------------

def test_tree_node_ids_by_hand():
    # bits (1, 0): path nodes 0, (2^1 - 1) + 1 = 2, (2^2 - 1) + 0b10 = 5.
    u = torch.tensor([[0.5, -1.0], [-0.1, 0.3], [-1.0, -1.0]])
    assert M.tree_node_ids(u, "path").tolist() == [[0, 2, 5], [0, 1, 4],
                                                   [0, 1, 3]]
    assert M.tree_node_ids(u, "flat").tolist() == [[2], [1], [0]]


def test_tree_layer_sums_the_path():
    m = M.TreeGatedLayer(6, 4, depth=2, mode="path", activation="identity")
    h = torch.randn(3, 6)
    with torch.no_grad():
        ids = M.tree_node_ids(h @ m.w_gate, "path")
        for n in range(3):
            expected = sum(h[n] @ m.w[int(i)] for i in ids[n])
            assert close(m(h)[n], expected)


# Section 7: Switch ------------------------------------------------------------

def test_switch_infinite_capacity_never_drops():
    m = M.SwitchFFN(8, 3, 4, capacity_factor=float("inf"))
    x = torch.randn(10, 8)
    with torch.no_grad():
        p = torch.softmax(x @ m.w_sel.t(), -1)
        pm, ids = p.max(-1)
        expected = torch.stack([pm[n] * ffn(x[n], m.w1[ids[n]], m.w2[ids[n]])
                                for n in range(10)])
        assert close(m(x), expected)


def test_switch_drops_overflow_in_order_of_position():
    # Identity experts: a kept row is non-zero, a dropped one exactly zero.
    m = M.SwitchFFN(8, 2, 4, capacity_factor=0.5, activation="identity")  # C = 2
    x = torch.randn(6, 8)
    with torch.no_grad():
        ids = torch.softmax(x @ m.w_sel.t(), -1).argmax(-1)
        y = m(x)
        seen = {0: 0, 1: 0}
        for n in range(6):
            seen[int(ids[n])] += 1
            dropped = seen[int(ids[n])] > 2
            assert bool((y[n] == 0).all()) == dropped

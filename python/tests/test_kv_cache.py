"""moe.switchhead_cached, one SwitchHead layer with a key/value cache,
against the full layer: a prefill of P tokens and then decode steps of one
token each, fed the caches the steps before returned, give rows P.. of the
full forward on the whole sequence. RoPE rotates queries and keys at their
absolute positions; the query rotated at position 0 (the MoEUT authors'
cached path) would not match. Checked for the PyTorch reference
(SwitchHead.step) and for compiled code against it."""
import numpy as np
import pytest
import torch

import moe_mlir
from moe_ref import modules as M

FAST = {"opt_level": 1, "march": "x86-64-v2"}
B, D, H, DH, E, K = 2, 32, 2, 8, 4, 2


def layer(seed, rotate_fraction=0.5):
    torch.manual_seed(seed)
    return M.SwitchHead(D, H, DH, E, K, rotate_fraction=rotate_fraction)


def weights(m):
    return {n: getattr(m, n).detach().numpy()
            for n in ("wq", "wk", "wv", "wo", "sel_o", "sel_v")}


def step_model(past, rotate_fraction):
    """@main(x [B, ?T, D], caches [B, H, ?P, DH] or none, weights) -> the
    step's output and new rows [B, H, ?T, DH]. `past` False: a prefill
    (P = 0)."""
    cache = f"tensor<{B}x{H}x?x{DH}xf32>"
    ins = [f'%x: tensor<{B}x?x{D}xf32> {{onnx.name = "x"}}']
    if past:
        ins += [f'%pk: {cache} {{onnx.name = "past_key"}}',
                f'%pv: {cache} {{onnx.name = "past_value"}}']
    types = dict(wq=f"tensor<{D}x{H * DH}xf32>", wk=f"tensor<{D}x{H * DH}xf32>",
                 wv=f"tensor<{H * E}x{D}x{DH}xf32>",
                 wo=f"tensor<{H * E}x{DH}x{D}xf32>",
                 sel_o=f"tensor<{H * E}x{D}xf32>",
                 sel_v=f"tensor<{H * E}x{D}xf32>")
    ins += [f'%{n}: {t} {{onnx.name = "{n}"}}' for n, t in types.items()]
    pre = "" if past else (
        f"  %pk = tensor.empty() : tensor<{B}x{H}x0x{DH}xf32>\n"
        f"  %pv = tensor.empty() : tensor<{B}x{H}x0x{DH}xf32>\n")
    ptype = cache if past else f"tensor<{B}x{H}x0x{DH}xf32>"
    x = f"tensor<{B}x?x{D}xf32>"
    rows = f"tensor<{B}x{H}x?x{DH}xf32>"
    return f"""func.func @main({', '.join(ins)}) -> ({x}, {rows}, {rows}) {{
{pre}  %y, %nk, %nv = moe.switchhead_cached %x, %x, %x, %wq, %wk, %wv, %wo, %sel_o past(%pk, %pv) sel_v(%sel_v) {{num_heads = {H} : i64, k = {K} : i64, rotate_fraction = {rotate_fraction} : f64}}
      : ({x}, {x}, {x}, {types['wq']}, {types['wk']}, {types['wv']}, {types['wo']}, {types['sel_o']}, {ptype}, {ptype}, {types['sel_v']}) -> ({x}, {rows}, {rows})
  return %y, %nk, %nv : {x}, {rows}, {rows}
}}
"""


@pytest.mark.parametrize("prompt", [1, 3])
def test_reference_cache_matches_full_forward(prompt):
    m = layer(1)
    x = torch.randn(B, 7, D)
    with torch.no_grad():
        full = m(x, x, x)
        y, pk, pv = m.step(x[:, :prompt], x[:, :prompt], x[:, :prompt])
        torch.testing.assert_close(y, full[:, :prompt], rtol=1e-5, atol=1e-5)
        for t in range(prompt, 7):
            xt = x[:, t:t + 1]
            y, k, v = m.step(xt, xt, xt, pk, pv)
            torch.testing.assert_close(y, full[:, t:t + 1], rtol=1e-5,
                                       atol=1e-5)
            pk, pv = torch.cat([pk, k], 1), torch.cat([pv, v], 1)
        # The authors' cached path rotates the query at position 0 (the key
        # at its absolute position): the comparison above tells it apart.
        rope = M.rope
        calls = []

        def query_at_zero(x, fraction, base, offset=0):
            calls.append(offset)
            return rope(x, fraction, base, 0 if len(calls) == 1 else offset)

        M.rope = query_at_zero
        try:
            xt = x[:, 6:7]
            y, _, _ = m.step(xt, xt, xt, pk[:, :6], pv[:, :6])
        finally:
            M.rope = rope
        assert calls == [6, 6]
        assert not torch.allclose(y, full[:, 6:7], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("rotate_fraction", [0.5, 1.0])
def test_compiled_prefill_and_decode_match_full_forward(tmp_path,
                                                        rotate_fraction):
    m = layer(2, rotate_fraction)
    w = weights(m)
    prefill = moe_mlir.InferenceSession(moe_mlir.compile(
        step_model(False, rotate_fraction).encode(),
        str(tmp_path / "prefill.moeb"), **FAST))
    decode = moe_mlir.InferenceSession(moe_mlir.compile(
        step_model(True, rotate_fraction).encode(),
        str(tmp_path / "decode.moeb"), **FAST))
    x = torch.randn(B, 9, D)
    with torch.no_grad():
        full = m(x, x, x).numpy()
    xn = x.numpy()
    for prompt in (1, 4):
        y, pk, pv = prefill.run(None, dict(w, x=xn[:, :prompt]))
        np.testing.assert_allclose(y, full[:, :prompt], rtol=1e-4,
                                   atol=1e-5)
        # The cache rows against the reference's: keys rotated at their
        # absolute positions, values after the value experts.
        with torch.no_grad():
            _, rk, rv = m.step(x[:, :prompt], x[:, :prompt], x[:, :prompt])
        np.testing.assert_allclose(pk, rk.numpy().transpose(0, 2, 1, 3),
                                   rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(pv, rv.numpy().transpose(0, 2, 1, 3),
                                   rtol=1e-4, atol=1e-5)
        for t in range(prompt, 9):
            y, k, v = decode.run(None, dict(w, x=xn[:, t:t + 1],
                                            past_key=pk, past_value=pv))
            np.testing.assert_allclose(y, full[:, t:t + 1], rtol=1e-4,
                                       atol=1e-5)
            assert k.shape == v.shape == (B, H, 1, DH)
            pk, pv = np.concatenate([pk, k], 2), np.concatenate([pv, v], 2)
    # Several tokens after a cache at once (a chunked prefill) too.
    y, pk, pv = prefill.run(None, dict(w, x=xn[:, :3]))
    y, _, _ = decode.run(None, dict(w, x=xn[:, 3:9], past_key=pk,
                                    past_value=pv))
    np.testing.assert_allclose(y, full[:, 3:9], rtol=1e-4, atol=1e-5)


def test_compiled_decode_refuses_mismatched_caches(tmp_path):
    m = layer(3)
    decode = moe_mlir.InferenceSession(moe_mlir.compile(
        step_model(True, 0.5).encode(), str(tmp_path / "d.moeb"), **FAST))
    x = np.zeros((B, 1, D), np.float32)
    # Keys of 4 positions, values of 3: refused, never read past the values.
    with pytest.raises(moe_mlir.InvalidArgument, match="dynamic dimension"):
        decode.run(None, dict(weights(m), x=x,
                              past_key=np.zeros((B, H, 4, DH), np.float32),
                              past_value=np.zeros((B, H, 3, DH), np.float32)))


ATTENTION = """func.func @main(%q: tensor<1x2x?x4xf32> {onnx.name = "q"},
                %k: tensor<1x2x?x4xf32> {onnx.name = "k"},
                %v: tensor<1x2x?x3xf32> {onnx.name = "v"}) -> tensor<1x2x?x3xf32> {
  %o = moe.attention %q, %k, %v {causal} : (tensor<1x2x?x4xf32>, tensor<1x2x?x4xf32>, tensor<1x2x?x3xf32>) -> tensor<1x2x?x3xf32>
  return %o : tensor<1x2x?x3xf32>
}
"""


def test_attention_checks_key_and_value_lengths(tmp_path):
    # moe.attention with keys and values of different dynamic lengths (a
    # hand-written model; switchhead_cached checks its caches first): a
    # run-time error, not a read past the shorter one. Good shapes match
    # the reference, with queries as the last T of S positions.
    session = moe_mlir.InferenceSession(moe_mlir.compile(
        ATTENTION.encode(), str(tmp_path / "a.moeb"), **FAST))
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, 2, 2, 4)).astype(np.float32)
    k = rng.standard_normal((1, 2, 5, 4)).astype(np.float32)
    v = rng.standard_normal((1, 2, 5, 3)).astype(np.float32)
    want = M.attention(*(torch.from_numpy(a) for a in (q, k, v)), True)
    np.testing.assert_allclose(session.run(None, dict(q=q, k=k, v=v))[0],
                               want.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(moe_mlir.InvalidArgument, match="dynamic dimension"):
        session.run(None, dict(q=q, k=k, v=v[:, :, :4]))

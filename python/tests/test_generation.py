"""Generation entries (moe-compile --generation): @prefill and @decode with a
key/value cache stacked over the attention layers ([L, B, H, C, d], of
which @decode reads the first past_length positions), derived from a
MoEUT's @main.

Checked at G = 2 and G = 3 (batch 2), against three independent things:
  - @main of the same artifact on the whole sequence (the logits of each
    decode step are the full forward's at that position);
  - the PyTorch reference with a correct cache (MoEUT.step / generate,
    RoPE at absolute positions), for logits and greedy tokens;
  - ONNX Runtime running the exported model's full forward on the growing
    prefix, for greedy tokens.
"""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import moe_mlir
from moe_ref import modules as M
from moe_ref import onnx_export as X
from moe_ref import plain_exports as P
from moe_ref.configs import MoEUTConfig

FAST = {"opt_level": 1, "march": "x86-64-v2"}


def config(group):
    return MoEUTConfig(d_model=32, n_layers=2 * group, group=group,
                       ff_experts=6, expert_size=16, ff_k=2, n_heads=2,
                       head_dim=8, att_experts=3, att_k=2, vocab=50)


@pytest.fixture(scope="module",
                params=[(2, "domain"), (3, "domain"), (2, "plain"),
                        (3, "plain")],
                ids=["G2", "G3", "G2-plain", "G3-plain"])
def model(request, tmp_path_factory):
    group, kind = request.param
    torch.manual_seed(100 + group)
    ref = M.MoEUT(config(group))
    path = tmp_path_factory.mktemp("gen") / "moeut.onnx"
    if kind == "domain":
        proto = X.export_moeut(ref)
        onnx.save(proto, str(path))
    else:
        # A plain torch.onnx.export: moe-raise-onnx raises its SwitchHead
        # attention (form (e)) and σ-MoE layers, so the entries derive.
        P.export_moeut(ref, str(path),
                       torch.zeros((2, 5), dtype=torch.int64))
        proto = onnx.load(str(path))
    artifact = moe_mlir.compile(str(path), str(path) + ".moeb",
                                generation=True, **FAST)
    session = moe_mlir.InferenceSession(artifact)
    onnx_session = ort.InferenceSession(proto.SerializeToString(),
                                        providers=["CPUExecutionProvider"])
    return ref, session, onnx_session


def reference_cache(ref_cache):
    """The reference's per-layer (keys, values) [B, P, H, d] stacked as the
    entries keep them: [L, B, H, P, d]."""
    return [np.stack([c[kind].numpy().transpose(0, 2, 1, 3)
                      for c in ref_cache], 0) for kind in (0, 1)]


def decode_feed(tokens, rows, capacity, fill=np.nan):
    """@decode's inputs: the rows so far ([L, B, H, P, d] each) at the
    start of caches with room for `capacity` positions, the rest `fill`
    (NaN: a read past P would show in the logits)."""
    feed = {"tokens": tokens,
            "past_length": np.array(rows[0].shape[3], np.int64)}
    for name, r in zip(("past_key", "past_value"), rows):
        shape = list(r.shape)
        shape[3] = capacity
        buf = np.full(shape, fill, np.float32)
        buf[:, :, :, :r.shape[3]] = r
        feed[name] = buf
    return feed


def test_entries_and_signatures(model):
    ref, session, _ = model
    layers = ref.cfg.n_layers
    assert session.entries == ["main", "prefill", "decode"]
    # The symbolic sizes are the export's names: B and T, or the plain
    # export's dynamic axes (batch, seq).
    batch, seq = session.get_inputs("main")[0].shape
    ins = session.get_inputs("decode")
    assert [i.name for i in ins] == ["tokens", "past_key", "past_value",
                                     "past_length"]
    assert ins[1].shape == [layers, batch, 2, "C", 8]
    assert ins[3].shape == [] and ins[3].dtype == np.int64
    outs = session.get_outputs("prefill")
    logits = session.get_outputs("main")[0].name  # logits, or the export's y
    assert [o.name for o in outs] == [logits, "new_key", "new_value"]
    # The last prompt position's logits only (--generation-all-logits:
    # every position's).
    assert outs[0].shape == [batch, 1, ref.cfg.vocab]
    assert outs[1].shape == [layers, batch, 2, seq, 8]
    with pytest.raises(moe_mlir.NotFound, match="no entry 'nope'"):
        session.run(None, {}, entry="nope")


@pytest.mark.parametrize("prompt", [1, 4])
def test_decode_steps_equal_the_full_forward(model, prompt):
    ref, session, _ = model
    tokens = np.random.default_rng(prompt).integers(
        0, ref.cfg.vocab, size=(2, 8)).astype(np.int64)
    full = session.run(None, {"tokens": tokens})[0]
    with torch.no_grad():
        want = ref(torch.from_numpy(tokens)).numpy()
    np.testing.assert_allclose(full, want, rtol=1e-4, atol=1e-4)
    out = session.run(None, {"tokens": tokens[:, :prompt]}, entry="prefill")
    np.testing.assert_allclose(out[0], full[:, prompt - 1:prompt], rtol=1e-4,
                               atol=1e-5)
    cache = out[1:]
    # The reference's cache rows, head-major as the entries keep them.
    with torch.no_grad():
        _, ref_cache = ref.step(torch.from_numpy(tokens[:, :prompt]))
    # (Random-init activations reach ~100: the tolerance scales with them.)
    for got, want in zip(cache, reference_cache(ref_cache)):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-4,
                                   atol=1e-5 * np.abs(want).max())
    for t in range(prompt, 8):
        # Caches of 8 or 11 positions, NaN after the first t.
        feed = decode_feed(tokens[:, t:t + 1], cache, 8 + 3 * (t % 2))
        out = session.run(None, feed, entry="decode")
        np.testing.assert_allclose(out[0], full[:, t:t + 1], rtol=1e-4,
                                   atol=1e-5)
        assert out[1].shape[3] == 1
        cache = [np.concatenate([c, n], 3) for c, n in zip(cache, out[1:])]
    # A stale cache gives other logits (the test can fail).
    stale = session.run(
        None, decode_feed(tokens[:, 7:8], [np.zeros_like(c[:, :, :, :7])
                                           for c in cache], 8),
        entry="decode")[0]
    assert not np.allclose(stale, full[:, 7:8], rtol=1e-3, atol=1e-3)


def test_decode_refuses_a_length_outside_the_cache(model):
    _, session, _ = model
    tokens = np.array([[1], [2]], np.int64)
    out = session.run(None, {"tokens": np.array([[3, 4], [5, 6]], np.int64)},
                      entry="prefill")
    feed = decode_feed(tokens, out[1:], 4, fill=0.0)
    for length in (-1, 5, 1 << 40):
        feed["past_length"] = np.array(length, np.int64)
        with pytest.raises(moe_mlir.InvalidArgument, match="past_length is out of range"):
            session.run(None, feed, entry="decode")
    # The length at the capacity is in range.
    feed["past_length"] = np.array(4, np.int64)
    session.run(None, feed, entry="decode")


def test_greedy_generation_matches_reference_and_ort(model):
    ref, session, onnx_session = model
    prompt = np.array([[3, 14, 15, 9], [26, 5, 35, 8]], np.int64)
    steps = 6
    # Compiled: prefill once, then one decode step per token.
    out = session.run(None, {"tokens": prompt}, entry="prefill")
    logits, cache = out[0], out[1:]
    got = []
    for _ in range(steps):
        token = logits[:, -1].argmax(-1)[:, None].astype(np.int64)
        got.append(token)
        out = session.run(None, decode_feed(token, cache, 16),
                          entry="decode")
        logits = out[0]
        cache = [np.concatenate([c, n], 3) for c, n in zip(cache, out[1:])]
    got = np.concatenate(got, 1)
    # The PyTorch reference with its own cache.
    want = ref.generate(torch.from_numpy(prompt), steps).numpy()
    np.testing.assert_array_equal(got, want)
    # ONNX Runtime: the full forward on the growing prefix.
    seq = prompt
    for _ in range(steps):
        last = onnx_session.run(None, {"tokens": seq})[0][:, -1]
        seq = np.concatenate([seq, last.argmax(-1)[:, None]], 1)
    np.testing.assert_array_equal(got, seq[:, prompt.shape[1]:])


def test_generation_needs_a_language_model():
    # A σ-MoE layer takes float rows, not tokens (a model with tokens but
    # no causal attention, and the other refusals:
    # test/Transforms/generation-entries-invalid.mlir).
    from conftest import FIXTURES
    with pytest.raises(moe_mlir.CompileError,
                       match=r"cannot derive generation entries: the input "
                             r"must be integer tokens \[B, T\], got "
                             r"'tensor<\?x40xf32>'"):
        moe_mlir.compile(f"{FIXTURES}/sigma_moe_sigmoid.onnx",
                         generation=True, **FAST)


def test_session_generate(model):
    ref, session, _ = model
    prompt = np.array([[3, 14, 15, 9], [26, 5, 35, 8]], np.int64)
    want = ref.generate(torch.from_numpy(prompt), 6).numpy()
    streamed = []
    got = session.generate(prompt, 6,
                           callback=lambda i, t: streamed.append((i, t)))
    np.testing.assert_array_equal(got, want)
    # Tokens stream out step by step, as they are produced.
    assert [i for i, _ in streamed] == list(range(6))
    np.testing.assert_array_equal(np.stack([t for _, t in streamed], 1), want)
    # The maximum length: exactly enough is fine, one short is refused
    # before anything runs.
    np.testing.assert_array_equal(
        session.generate(prompt, 6, max_length=10), want)
    with pytest.raises(moe_mlir.InvalidArgument,
                       match="4 prompt tokens and 6 new ones exceed the "
                             "maximum length 9"):
        session.generate(prompt, 6, max_length=9)
    # Sampling: top_k = 1 is greedy; a seed gives the same tokens again.
    np.testing.assert_array_equal(
        session.generate(prompt, 6, temperature=0.7, top_k=1, seed=1), want)
    a = session.generate(prompt, 6, temperature=1.5, seed=7)
    b = session.generate(prompt, 6, temperature=1.5, seed=7)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2, 6) and ((0 <= a) & (a < ref.cfg.vocab)).all()
    with pytest.raises(moe_mlir.InvalidArgument, match="temperature"):
        session.generate(prompt, 2, temperature=-1)
    with pytest.raises(moe_mlir.InvalidArgument, match="top_k must be >= 1"):
        session.generate(prompt, 2, temperature=1, top_k=0)
    with pytest.raises(moe_mlir.InvalidArgument,
                       match="max_new_tokens must be >= 0"):
        session.generate(prompt, -1)
    with pytest.raises(moe_mlir.InvalidArgument, match="at least one token"):
        session.generate(np.zeros((2, 0), np.int64), 2)
    with pytest.raises(moe_mlir.InvalidArgument, match=r"integer tokens"):
        session.generate(prompt.astype(np.float32), 2)


def test_generate_needs_the_entries(tmp_path):
    from conftest import FIXTURES
    session = moe_mlir.InferenceSession(moe_mlir.compile(
        f"{FIXTURES}/moeut_tiny.onnx", str(tmp_path / "m.moeb"), **FAST))
    with pytest.raises(moe_mlir.NotFound, match="generation=True"):
        session.generate(np.zeros((1, 2), np.int64), 1)


def test_generation_context_keeps_the_caches(model):
    # The runtime's context (moe_generation_*, through the binding that
    # session.generate uses): positions, the maximum length, reset.
    from moe_mlir import _runtime
    ref, session, _ = model
    tokens = np.random.default_rng(5).integers(
        0, ref.cfg.vocab, size=(2, 5)).astype(np.int64)
    full = session.run(None, {"tokens": tokens})[0]
    g = _runtime.Generation(session._session, 2, 5)
    assert g.position == 0
    # A prefill gives the last prompt position's logits.
    np.testing.assert_allclose(g.step(np.ascontiguousarray(tokens[:, :4])),
                               full[:, 3:4], rtol=1e-4, atol=1e-5)
    assert g.position == 4
    np.testing.assert_allclose(g.step(np.ascontiguousarray(tokens[:, 4:])),
                               full[:, 4:], rtol=1e-4, atol=1e-5)
    assert g.position == 5
    # One more position than the caches hold: refused, nothing changes.
    with pytest.raises(moe_mlir.InvalidArgument,
                       match="5 positions and 1 new tokens exceed the "
                             "maximum length 5"):
        g.step(np.ascontiguousarray(tokens[:, :1]))
    assert g.position == 5
    with pytest.raises(moe_mlir.InvalidArgument, match=r"int64 \[2, T\]"):
        g.step(np.zeros((3, 1), np.int64))
    g.reset()
    assert g.position == 0
    np.testing.assert_allclose(g.step(np.ascontiguousarray(tokens[:, :2])),
                               full[:, 1:2], rtol=1e-4, atol=1e-5)
    with pytest.raises(moe_mlir.InvalidArgument, match="maximum length"):
        _runtime.Generation(session._session, 2, 0)


def test_prefill_with_all_logits_and_an_empty_prompt(tmp_path):
    torch.manual_seed(7)
    ref = M.MoEUT(config(2))
    path = tmp_path / "moeut.onnx"
    onnx.save(X.export_moeut(ref), str(path))
    session = moe_mlir.InferenceSession(moe_mlir.compile(
        str(path), str(tmp_path / "all.moeb"), generation="all-logits",
        **FAST))
    tokens = np.random.default_rng(3).integers(
        0, ref.cfg.vocab, size=(2, 5)).astype(np.int64)
    full = session.run(None, {"tokens": tokens})[0]
    out = session.run(None, {"tokens": tokens}, entry="prefill")
    np.testing.assert_array_equal(out[0], full)
    # An empty prompt has no last position: an error, not a read before
    # the logits (the all-logits prefill has nothing to refuse).
    last = moe_mlir.InferenceSession(moe_mlir.compile(
        str(path), str(tmp_path / "last.moeb"), generation=True, **FAST))
    with pytest.raises(moe_mlir.InvalidArgument,
                       match="a dynamic dimension has a size the model "
                             "cannot take"):
        last.run(None, {"tokens": tokens[:, :0]}, entry="prefill")
    with pytest.raises(TypeError, match="generation must be a bool or "
                                        "'all-logits'"):
        moe_mlir.compile(str(path), generation="all")

"""The RoPE width rule (spec/models.md): r = floor(dh * rotate_fraction)
rounded down to an even number, so the published MoEUT-44M (dh = 82, r = 40)
is valid. Checked on the PyTorch reference against the formula written out,
on the exported ONNX function body (ONNX Runtime) against PyTorch, and on
the compiled model (moe_mlir) against ONNX Runtime, at head widths whose
floor(dh / 2) is odd."""
import math

import numpy as np
import onnxruntime as ort
import pytest
import torch

import moe_mlir
from moe_ref import modules as M
from moe_ref import onnx_export as X

ATOL, RTOL = 1e-5, 1e-4


def rope_by_hand(x, fraction, base):
    """Rotate-half RoPE on the first r dims, r = floor(dh f) made even,
    one element at a time."""
    b, t, h, dh = x.shape
    r = int(math.floor(dh * fraction))
    r -= r % 2
    out = x.clone()
    half = r // 2
    for pos in range(t):
        for i in range(half):
            theta = pos * base ** (-2.0 * i / r)
            c, s = math.cos(theta), math.sin(theta)
            a, bb = x[:, pos, :, i], x[:, pos, :, i + half]
            out[:, pos, :, i] = a * c - bb * s
            out[:, pos, :, i + half] = bb * c + a * s
    return out, r


@pytest.mark.parametrize("dh", [10, 82])
def test_reference_rounds_the_width_down_to_even(dh):
    torch.manual_seed(0)
    x = torch.randn(1, 5, 2, dh, dtype=torch.float64)
    want, r = rope_by_hand(x, 0.5, 10000.0)
    assert r == (4 if dh == 10 else 40)
    got = M.rope(x, 0.5, 10000.0)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
    # The dims from r on pass through.
    assert torch.equal(got[..., r:], x[..., r:])


def _switchhead_odd_width():
    torch.manual_seed(1)
    # head_dim 10: floor(10 * 0.5) = 5 is odd, 4 dims are rotated.
    module = M.SwitchHead(32, 2, 10, 3, 2)
    x = torch.randn(2, 6, 32)
    with torch.no_grad():
        want = module(x, x, x).numpy()
    model = X.export_layer(module, "switchhead", ["B", "T", 32])
    return module, model, x.numpy(), want


def test_export_follows_the_rule():
    _, model, x, want = _switchhead_odd_width()
    got = ort.InferenceSession(model.SerializeToString(),
                               providers=["CPUExecutionProvider"]).run(
                                   None, {"x": x})[0]
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)


def test_compiled_model_follows_the_rule(tmp_path):
    _, model, x, want = _switchhead_odd_width()
    path = tmp_path / "switchhead_dh10.onnx"
    path.write_bytes(model.SerializeToString())
    artifact = moe_mlir.compile(str(path), str(tmp_path / "m.moeb"),
                                opt_level=1, march="x86-64-v2")
    got = moe_mlir.InferenceSession(artifact).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)

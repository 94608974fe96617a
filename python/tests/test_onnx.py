"""The ONNX interchange: fixtures agree with ORT and the PyTorch reference,
the domain follows its documented schema, bad configurations are refused."""
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from moe_ref import fixtures as FX
from moe_ref import modules as M
from moe_ref import onnx_export as X
from moe_ref.configs import TINY_MOEUT

from conftest import FIXTURES

MANIFEST = json.load(open(os.path.join(FIXTURES, "manifest.json")))
SPECS = dict(FX._fixture_specs())

# The documented schema (docs/onnx-moe-domain.md): inputs and attributes.
SCHEMA = {
    "MoEFeedForward": (["x", "selector_input", "w_sel", "w1", "w2"],
                       ["k", "gate", "activation"]),
    "SwitchFeedForward": (["x", "w_sel", "w1", "w2"],
                          ["capacity_factor", "activation"]),
    "SwitchHeadAttention": (X.SWITCHHEAD_INPUTS + ["sel_v"],
                            X.SWITCHHEAD_ATTRS),
    "SwitchHeadGatedAttention": (X.SWITCHHEAD_INPUTS, X.SWITCHHEAD_ATTRS),
    "MixtureOfTokens": (["x", "w_ctrl", "w1", "w2"],
                        ["group_size", "temperature", "mode", "activation"]),
    "TreeGatedLayer": (["h", "w_gate", "w"], ["mode", "activation"]),
}


def load(name):
    return onnx.load(os.path.join(FIXTURES, f"{name}.onnx"))


def npy(name, tensor):
    return np.load(os.path.join(FIXTURES, f"{name}.{tensor}.npy"))


def test_manifest_lists_every_family():
    names = set(MANIFEST)
    for family in ("sigma_moe_sigmoid", "sigma_moe_softmax",
                   "sigma_moe_topk_softmax", "switch_capacity", "switchhead",
                   "switchhead_e1", "mot_continuous", "mot_discrete",
                   "tree_path", "tree_flat", "ort_moe_relu", "ort_moe_swiglu",
                   "moeut_tiny"):
        assert family in names
    assert set(SPECS) == names


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_fixture_ort_matches_stored_expected(name):
    model = load(name)
    feeds = {i: npy(name, i) for i in MANIFEST[name]["inputs"]}
    out = ort.InferenceSession(model.SerializeToString(),
                               providers=["CPUExecutionProvider"]).run(
                                   None, feeds)[0]
    np.testing.assert_allclose(out, npy(name, MANIFEST[name]["output"]),
                               atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_fixture_matches_pytorch_reference(name):
    """Rebuilds the reference with the fixture's seed and compares the
    stored ORT output with the PyTorch forward."""
    torch.manual_seed(FX.SEED + sum(map(ord, name)))
    _, feeds, ref = SPECS[name]()
    for k, v in feeds.items():
        np.testing.assert_array_equal(v.numpy(), npy(name, k))
    np.testing.assert_allclose(npy(name, MANIFEST[name]["output"]),
                               ref.numpy(), atol=FX.ATOL, rtol=FX.RTOL)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_domain_schema(name):
    model = load(name)
    onnx.checker.check_model(model)
    functions = {f.name: f for f in model.functions}
    for f in model.functions:
        assert f.domain == X.DOMAIN
        inputs, attrs = SCHEMA[f.name]
        assert list(f.input) == inputs and list(f.attribute) == attrs
        assert {n.domain for n in f.node} <= {""}, "bodies use standard ops"
        assert [o for o in f.opset_import if o.domain == ""][0].version == 17
    for node in model.graph.node:
        if node.domain == X.DOMAIN:
            assert node.op_type in functions
            assert {a.name for a in node.attribute} == set(
                SCHEMA[node.op_type][1])
            assert len(node.input) == len(SCHEMA[node.op_type][0])


def test_moeut_weights_are_stored_once():
    model = load("moeut_tiny")
    names = [i.name for i in model.graph.initializer]
    assert len(names) == len(set(names))
    params = M.MoEUT(TINY_MOEUT)
    assert len(names) == len(list(params.parameters()))
    calls = [n for n in model.graph.node if n.op_type == "MoEFeedForward"]
    assert len(calls) == TINY_MOEUT.n_layers
    # Absolute layer r*G + g reads group g's weights.
    for i, node in enumerate(calls):
        assert node.input[2] == f"group{i % TINY_MOEUT.group}.ffn.w_sel"


def test_switch_fixture_drops_tokens():
    """The capacity fixture exercises drops: some rows are exactly zero."""
    y = npy("switch_capacity", "y")
    dropped = int((np.abs(y).sum(axis=1) == 0).sum())
    assert 0 < dropped < y.shape[0]


def test_symbolic_dims_are_kept():
    model = load("switchhead")
    dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[:2] == ["B", "T"]


def test_exporter_refuses_mixed_variants():
    mb = X.ModelBuilder("mixed")
    x = mb.input("x", X.ONNX_FLOAT, ["N", 8])
    a = X.add_sigma_moe(mb, M.SigmaMoE(8, 3, 4, 1, gate="sigmoid"), x, x, "a")
    with pytest.raises(ValueError, match="one variant per op"):
        X.add_sigma_moe(mb, M.SigmaMoE(8, 3, 4, 1, gate="softmax"), a, a, "b")


def test_exporter_refuses_unknown_kind():
    with pytest.raises(ValueError, match="unknown layer kind"):
        X.export_layer(M.SigmaMoE(8, 3, 4, 1), "dense", ["N", 8])


def test_fixtures_regenerate_identically(tmp_path):
    """One command regenerates every committed fixture bit for bit."""
    FX.generate(str(tmp_path))
    for entry in os.listdir(FIXTURES):
        with open(os.path.join(FIXTURES, entry), "rb") as a, open(
                tmp_path / entry, "rb") as b:
            assert a.read() == b.read(), entry


def test_fixtures_are_small():
    total = sum(os.path.getsize(os.path.join(FIXTURES, f))
                for f in os.listdir(FIXTURES))
    assert total < 4 * 2 ** 20

"""Models using ONNX Runtime's contrib op com.microsoft.MoE (CPU), and an
independent PyTorch reference of its semantics.

Semantics (checked against onnxruntime 1.32's CPU kernel by the tests):
  probs   = softmax(router_probs)              router_probs are logits [N, E]
  top-k of probs (ties: higher expert index first); weights = the top-k probs,
  divided by their sum when normalize_routing_weights = 1
  fc1     : [E, I, H] (or [E, 2I, H] for swiglu), applied as x @ fc1[e]^T + b1
  act     : relu | gelu (tanh approximation) | silu | identity | swiglu
            (interleaved: gate at even,
            linear at odd columns; swish(alpha * gate) * (linear + beta), both
            clamped by swiglu_limit)
  fc2     : [E, H, I], applied as a @ fc2[e]^T + b2
  y[n]    = Σ_k weight[n, k] * expert_{id[n, k]}(x[n])
The CPU kernel has no fc3 (rejected) and only interleaved SwiGLU
(swiglu_fusion = 1).
"""
import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

ACTIVATIONS = ("relu", "gelu", "silu", "identity", "swiglu")


def reference(x, logits, fc1, fc2, fc1_bias=None, fc2_bias=None, *, k,
              activation="relu", normalize=False, alpha=1.0, beta=0.0,
              limit=float("inf")):
    """torch reference of com.microsoft.MoE on rows x [N, H]."""
    probs = torch.softmax(logits, dim=-1)
    weights, ids = torch.topk(probs, k, dim=-1)
    if normalize:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    h = torch.einsum("nh,nkih->nki", x, fc1[ids])
    if fc1_bias is not None:
        h = h + fc1_bias[ids]
    if activation == "swiglu":
        gate = h[..., 0::2].clamp(max=limit)
        linear = h[..., 1::2].clamp(-limit, limit)
        h = gate * torch.sigmoid(alpha * gate) * (linear + beta)
    elif activation == "relu":
        h = F.relu(h)
    elif activation == "gelu":  # ORT's MoE uses the tanh approximation
        h = F.gelu(h, approximate="tanh")
    elif activation == "silu":
        h = F.silu(h)
    elif activation != "identity":
        raise ValueError(f"unknown activation {activation!r}")
    y = torch.einsum("nki,nkhi->nkh", h, fc2[ids])
    if fc2_bias is not None:
        y = y + fc2_bias[ids]
    return torch.einsum("nk,nkh->nh", weights, y)


class OrtMoE:
    """Random weights for a com.microsoft.MoE layer with a router matmul."""

    def __init__(self, hidden, inter, n_experts, k, activation="relu",
                 normalize=False, bias=True, alpha=1.0, beta=0.0,
                 limit=float("inf")):
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}")
        self.k, self.activation, self.normalize = k, activation, normalize
        self.alpha, self.beta, self.limit = alpha, beta, limit
        fc1_rows = 2 * inter if activation == "swiglu" else inter
        s1, s2 = hidden ** -0.5, inter ** -0.5
        self.router = torch.randn(hidden, n_experts) * s1
        self.fc1 = torch.randn(n_experts, fc1_rows, hidden) * s1
        self.fc2 = torch.randn(n_experts, hidden, inter) * s2
        self.fc1_bias = torch.randn(n_experts, fc1_rows) * 0.1 if bias else None
        self.fc2_bias = torch.randn(n_experts, hidden) * 0.1 if bias else None

    def forward(self, x):
        return reference(x, x @ self.router, self.fc1, self.fc2, self.fc1_bias,
                         self.fc2_bias, k=self.k, activation=self.activation,
                         normalize=self.normalize, alpha=self.alpha,
                         beta=self.beta, limit=self.limit)

    def export(self):
        """Model: x [N, H] -> MatMul router -> com.microsoft.MoE -> y."""
        inits = {"router": self.router, "fc1": self.fc1, "fc2": self.fc2}
        if self.fc1_bias is not None:
            inits.update(fc1_bias=self.fc1_bias, fc2_bias=self.fc2_bias)
        initializers = [numpy_helper.from_array(t.numpy().astype(np.float32), n)
                        for n, t in inits.items()]
        bias = self.fc1_bias is not None
        attrs = dict(k=self.k, activation_type=self.activation,
                     normalize_routing_weights=int(self.normalize))
        if self.activation == "swiglu":
            attrs.update(swiglu_fusion=1, activation_alpha=float(self.alpha),
                         activation_beta=float(self.beta),
                         swiglu_limit=float(self.limit))
        nodes = [
            helper.make_node("MatMul", ["x", "router"], ["logits"],
                             name="router"),
            helper.make_node(
                "MoE", ["x", "logits", "fc1", "fc1_bias" if bias else "",
                        "fc2", "fc2_bias" if bias else ""], ["y"],
                domain="com.microsoft", name="moe", **attrs),
        ]
        hidden = self.fc2.shape[1]
        graph = helper.make_graph(
            nodes, "ort_moe",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                           ["N", hidden])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                           ["N", hidden])],
            initializers)
        model = helper.make_model(
            graph, producer_name="moe-mlir moe_ref",
            opset_imports=[helper.make_opsetid("", 17),
                           helper.make_opsetid("com.microsoft", 1)])
        onnx.checker.check_model(model)
        return model

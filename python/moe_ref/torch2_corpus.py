"""Exports of the seed models and tiny Hugging Face MoE blocks by PyTorch
2.x's two ONNX exporters, for the importer's regression tests
(test/Execution/torch2-exports.test; the files are checked in under
test/Execution/Inputs/torch2).

The rest of the suite uses Debian's torch 1.13 (TorchScript exporter,
opset 17). PyTorch 2.x writes other graphs: the TorchScript exporter at
opset 18 (ReduceMean/ReduceSum axes as inputs, ...), and the dynamo exporter
(`dynamo=True`, the default from PyTorch 2.9) decomposes einsum into
Transpose/Reshape/MatMul chains, indexes weights with GatherND, and makes
constants with CastLike. Needs a venv that the suite does not install
(measured with torch 2.5.1, onnx 1.17, onnxscript, transformers 4.46.3):

    python3 -m venv /tmp/t2
    /tmp/t2/bin/pip install torch==2.5.1 onnx==1.17.0 onnxscript \
        transformers==4.46.3
    PYTHONPATH=python /tmp/t2/bin/python -m moe_ref.torch2_corpus OUT_DIR

Under PyTorch 2.9 (where dynamo=True is the default) the same command
writes the `*_dynamo29` files instead: that exporter keeps einsum as Einsum
and folds constants, but still indexes weights with GatherND, writes
zeros_like/ones as Expand of a scalar, and reads every size from the graph
input that defines it (measured with torch 2.9.1, onnx 1.23, onnxscript
0.7.2, transformers 4.57):

    python3 -m venv /tmp/t29
    /tmp/t29/bin/pip install torch==2.9.1 onnx onnxscript \
        "transformers==4.57.*"
    PYTHONPATH=python /tmp/t29/bin/python -m moe_ref.torch2_corpus OUT_DIR

Every file has dynamic batch (and sequence) axes; input x or tokens,
output y. Sizes as in plain_exports and hf_corpus.
"""
import inspect
import os
import sys

import torch

from moe_ref import modules as M
from moe_ref.configs import TINY_MOEUT
from moe_ref.plain_exports import DenseMaskSigmaMoE


def torch29():
    major, minor = (int(p) for p in torch.__version__.split(".")[:2])
    return (major, minor) >= (2, 9)


def cases():
    """(name, module, example, input name, dynamic axes, exporter)."""
    torch.manual_seed(0)
    if torch29():
        return [
            ("sigma_gathered_dynamo29", M.SigmaMoE(16, 8, 12, 2),
             torch.randn(5, 16), "x", {0: "n"}, "dynamo"),
            ("sigma_softmax_gelu_dynamo29",
             M.SigmaMoE(16, 8, 12, 3, gate="softmax", activation="gelu"),
             torch.randn(5, 16), "x", {0: "n"}, "dynamo"),
            ("sigma_dense_dynamo29", DenseMaskSigmaMoE(16, 8, 12, 2),
             torch.randn(5, 16), "x", {0: "n"}, "dynamo"),
            ("mot_dynamo29", M.MixtureOfTokens(12, 5, 7, 4),
             torch.randn(8, 3, 12), "x", {0: "batch", 1: "seq"}, "dynamo"),
            ("moeut_dynamo29", M.MoEUT(TINY_MOEUT),
             torch.randint(0, TINY_MOEUT.vocab, (2, 5)), "tokens",
             {0: "batch", 1: "seq"}, "dynamo"),
        ] + hf_blocks(["olmoe", "granitemoe"], "_dynamo29")
    out = [
        ("sigma_gathered_ts18", M.SigmaMoE(16, 8, 12, 2), torch.randn(5, 16),
         "x", {0: "n"}, "ts18"),
        ("sigma_gathered_dynamo", M.SigmaMoE(16, 8, 12, 2),
         torch.randn(5, 16), "x", {0: "n"}, "dynamo"),
        ("sigma_dense_dynamo", DenseMaskSigmaMoE(16, 8, 12, 2),
         torch.randn(5, 16), "x", {0: "n"}, "dynamo"),
        ("mot_ts18", M.MixtureOfTokens(12, 5, 7, 4), torch.randn(8, 3, 12),
         "x", {0: "batch", 1: "seq"}, "ts18"),
        ("moeut_ts18", M.MoEUT(TINY_MOEUT),
         torch.randint(0, TINY_MOEUT.vocab, (2, 5)), "tokens",
         {0: "batch", 1: "seq"}, "ts18"),
    ]
    return out + hf_blocks(["mixtral"], "_dynamo")


def hf_blocks(names, suffix):
    """Tiny Hugging Face sparse MoE blocks (hf_corpus sizes), for dynamo.
    (PyTorch 2.9.1's torch.export fails on the Mixtral, Qwen2-MoE and
    PhiMoE blocks: data-dependent control flow.)"""
    try:
        import importlib
        from moe_ref.hf_corpus import families, _Block
    except ImportError as e:
        print(f"Hugging Face blocks: skipped ({e})", file=sys.stderr)
        return []
    out = []
    for name in names:
        torch.manual_seed(0)
        cfg, _, block_name = families()[name]
        module = importlib.import_module(
            type(cfg).__module__.replace("configuration", "modeling"))
        block = _Block(getattr(module, block_name)(cfg))
        out.append((f"{name}_block{suffix}", block,
                    torch.randn(2, 5, cfg.hidden_size), "x",
                    {0: "batch", 1: "seq"}, "dynamo"))
    return out


def export(module, example, path, in_name, axes, exporter):
    module.eval()
    with torch.no_grad():
        if exporter == "dynamo":
            # PyTorch 2.9 refuses named Dims that the trace specialises
            # (a size-1 check in the model); Dim.DYNAMIC lets it choose.
            dims = {i: torch.export.Dim.DYNAMIC if torch29()
                    else torch.export.Dim(n) for i, n in axes.items()}
            # dynamic_shapes is keyed by the forward's argument name.
            param = list(inspect.signature(module.forward).parameters)[0]
            torch.onnx.export(module, (example,), path, input_names=[in_name],
                              output_names=["y"], dynamo=True,
                              dynamic_shapes={param: dims})
            # One self-contained file (the exporter writes the weights
            # beside it, in PATH.data).
            import onnx
            onnx.save(onnx.load(path), path, save_as_external_data=False)
            if os.path.exists(path + ".data"):
                os.remove(path + ".data")
        else:
            torch.onnx.export(module, (example,), path,
                              opset_version=int(exporter[2:]),
                              input_names=[in_name], output_names=["y"],
                              dynamic_axes={in_name: axes, "y": axes})


def main():
    if len(sys.argv) != 2:
        print("usage: python -m moe_ref.torch2_corpus OUT_DIR", file=sys.stderr)
        return 2
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, module, example, in_name, axes, exporter in cases():
        export(module, example, os.path.join(out, name + ".onnx"), in_name,
               axes, exporter)
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())

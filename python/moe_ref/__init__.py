"""Reference models, ONNX interchange and fixtures for moe-mlir.

- modules: PyTorch reference forwards of every model family in
  shared/spec/models.md (sparse formulation: top-k, gather, per-slot compute).
- configs: tiny test configurations and the published MoEUT table.
- onnx_export: ONNX files with one `org.moe_mlir` function node per MoE layer
  (function bodies in standard ONNX ops, dense formulation).
- ort_moe: models using ONNX Runtime's com.microsoft.MoE.
- fixtures: regenerates test/fixtures (python -m moe_ref.fixtures).
"""

// RUN: moe-opt %moe_src_root/test/Pipelines/decompose.mlir --split-input-file --moe-lower-to-llvm | FileCheck %s

// Every adversarial case of decompose.mlir (zero-sized dims, K = E, E = 1,
// dynamic everything) lowers to the LLVM dialect without a crash; each
// function gets its C interface wrapper.
// CHECK-LABEL: llvm.func @all_layers
// CHECK:       llvm.func @_mlir_ciface_all_layers
// CHECK-LABEL: llvm.func @zero_tokens_k_equals_e
// CHECK-LABEL: llvm.func @single_expert_zero_width
// CHECK-LABEL: llvm.func @dynamic_everything
// CHECK-NOT:   moe.

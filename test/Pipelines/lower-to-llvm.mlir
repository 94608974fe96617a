// RUN: moe-opt %moe_src_root/test/Pipelines/decompose.mlir --split-input-file --moe-lower-to-llvm | FileCheck %s --implicit-check-not=malloc --implicit-check-not=memrefCopy --implicit-check-not=@free --implicit-check-not=_mlir_ciface

// Every adversarial case of decompose.mlir (zero-sized dims, K = E, E = 1,
// dynamic everything) lowers to the LLVM dialect without a crash; each
// function becomes an entry of the code ABI (one frame argument), with no
// call to malloc, free or memrefCopy.
// CHECK-LABEL: llvm.func @moe_entry_all_layers(%{{.*}}: !llvm.ptr)
// CHECK-LABEL: llvm.func @moe_entry_zero_tokens_k_equals_e(%{{.*}}: !llvm.ptr)
// CHECK-LABEL: llvm.func @moe_entry_single_expert_zero_width(%{{.*}}: !llvm.ptr)
// CHECK-LABEL: llvm.func @moe_entry_dynamic_everything(%{{.*}}: !llvm.ptr)
// CHECK-NOT:   {{= moe\.[a-z_]+|^ *moe\.[a-z_]+ }}

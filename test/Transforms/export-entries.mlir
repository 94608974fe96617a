// RUN: moe-opt %s --split-input-file --moe-export-entries="symbols=moe_entry_main" | FileCheck %s
// RUN: not moe-opt %s --split-input-file --moe-export-entries="symbols=moe_entry_other" 2>&1 | FileCheck %s --check-prefix=ERR

// The entry keeps external linkage; every other definition becomes
// internal, declarations (libm) stay external.
// CHECK-DAG: llvm.func internal @helper()
// CHECK-DAG: llvm.func @moe_entry_main(%{{.*}}: !llvm.ptr)
// CHECK-DAG: llvm.func @expf(f32) -> f32
// CHECK-DAG: llvm.mlir.global internal constant @table
// CHECK-DAG: llvm.mlir.global external constant @moe_signature_digest
llvm.func @expf(f32) -> f32
llvm.mlir.global external constant @table(dense<1.0> : tensor<4xf32>) : !llvm.array<4 x f32>
llvm.mlir.global external constant @moe_signature_digest(42 : i64) : i64
llvm.func @helper() {
  llvm.return
}
llvm.func @moe_entry_main(%frame: !llvm.ptr) {
  llvm.call @helper() : () -> ()
  llvm.return
}

// ERR: error: moe-export-entries: no entry function 'moe_entry_other' in the LLVM dialect

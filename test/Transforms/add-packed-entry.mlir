// RUN: moe-opt %s --split-input-file --moe-lower-to-llvm --moe-add-packed-entry | FileCheck %s
// RUN: not moe-opt %s --split-input-file --moe-add-packed-entry 2>&1 | FileCheck %s --check-prefix=ERR

// The packed entry loads one pointer per parameter of the C wrapper (the
// result descriptor, then the inputs) and calls it.
// Every other definition becomes internal; declarations stay external.
// CHECK-DAG: llvm.func internal @main(
// CHECK-DAG: llvm.func internal @_mlir_ciface_main(
// CHECK-LABEL: llvm.func @moe_entry(%{{.*}}: !llvm.ptr)
// CHECK:         %[[P0:.+]] = llvm.getelementptr %{{.*}}[0] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
// CHECK:         %[[A0:.+]] = llvm.load %[[P0]] : !llvm.ptr -> !llvm.ptr
// CHECK:         %[[P1:.+]] = llvm.getelementptr %{{.*}}[1]
// CHECK:         %[[A1:.+]] = llvm.load %[[P1]]
// CHECK:         llvm.call @_mlir_ciface_main(%[[A0]], %[[A1]])
// CHECK:         llvm.return
func.func @main(%x: tensor<?x4xf32>) -> tensor<?x4xf32> {
  return %x : tensor<?x4xf32>
}

// -----

// ERR: error: moe-add-packed-entry: no '_mlir_ciface_main' (lower with C interface wrappers first)
func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}

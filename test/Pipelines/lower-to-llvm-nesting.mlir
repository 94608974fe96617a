// RUN: moe-opt %s --moe-lower-to-llvm-cpu-tiled --dump-pass-pipeline -o /dev/null 2>&1 | FileCheck %s
// The output does not depend on the threads: a MoEUT's LLVM module (about
// 200 functions) with and without them.
// RUN: moe-compile -q --emit=llvm --march x86-64-v2 %moe_src_root/test/fixtures/moeut_tiny.onnx -o %t.threads.ll
// RUN: moe-compile -q --emit=llvm --march x86-64-v2 --mlir-disable-threading %moe_src_root/test/fixtures/moeut_tiny.onnx -o %t.one.ll
// RUN: cmp %t.threads.ll %t.one.ll
// RUN: FileCheck %s --check-prefix=LL --input-file=%t.one.ll
// LL-COUNT-20: define internal void @__moe_parallel_body_

// The passes that rewrite one function at a time run nested on func.func,
// so that MLIR spreads the functions (after moe-parallel-loops-to-host, one
// per parallel loop body) over the context's threads; the module-level
// passes between them are those that add symbols or convert across
// functions (lib/Pipelines/Pipelines.cpp).

// CHECK:      moe-lower-to-host-abi
// CHECK-NEXT: func.func(
// CHECK-NEXT:   moe-cpu-tile-contractions
// CHECK-NEXT:   moe-cpu-fuse-row-gathers
// CHECK-NEXT:   moe-cpu-prefetch-panels
// CHECK-NEXT:   moe-cpu-prefetch-rows
// CHECK-NEXT:   moe-approximate-math
// CHECK-NEXT:   convert-linalg-to-parallel-loops
// CHECK-NEXT: ),
// CHECK-NEXT: moe-parallel-loops-to-host
// CHECK-NEXT: func.func(
// CHECK-NEXT:   convert-linalg-to-loops
// CHECK-NEXT:   lower-vector-mask
// CHECK-NEXT:   convert-vector-to-scf
// CHECK-NEXT:   convert-scf-to-cf
// CHECK-NEXT:   moe-expand-views
// CHECK-NEXT:   expand-strided-metadata
// CHECK-NEXT:   lower-affine
// CHECK-NEXT: ),
// CHECK-NEXT: convert-math-to-funcs
// CHECK-NEXT: func.func(
// CHECK-NEXT:   convert-math-to-llvm
// CHECK-NEXT: ),
// CHECK-NEXT: convert-math-to-libm
// CHECK-NEXT: func.func(
// CHECK-NEXT:   convert-vector-to-llvm
// CHECK-NEXT: ),
// CHECK-NEXT: finalize-memref-to-llvm
// CHECK-NEXT: func.func(
// CHECK-NEXT:   convert-arith-to-llvm
// CHECK-NEXT:   convert-index-to-llvm
// CHECK-NEXT: ),
// CHECK-NEXT: convert-cf-to-llvm
// CHECK-NEXT: convert-func-to-llvm
// CHECK-NEXT: convert-ub-to-llvm
// CHECK-NEXT: reconcile-unrealized-casts

func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}

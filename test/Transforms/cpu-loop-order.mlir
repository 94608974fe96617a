// RUN: moe-opt %s --split-input-file --moe-cpu-loop-order | FileCheck %s

// A matmul becomes (m, k, n): the output's last dim innermost, the
// reduction just outside it, and a contractible multiply-add.
// CHECK-DAG: #[[A:.+]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-DAG: #[[B:.+]] = affine_map<(d0, d1, d2) -> (d1, d2)>
// CHECK-DAG: #[[C:.+]] = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-LABEL: func.func @matmul
// CHECK:   linalg.generic {indexing_maps = [#[[A]], #[[B]], #[[C]]], iterator_types = ["parallel", "reduction", "parallel"]}
// CHECK:     arith.mulf %{{.+}}, %{{.+}} fastmath<contract> : f32
// CHECK:     arith.addf %{{.+}}, %{{.+}} fastmath<contract> : f32
func.func @matmul(%a: tensor<?x64xf32>, %b: tensor<64x?xf32>, %c: tensor<?x?xf32>) -> tensor<?x?xf32> {
  %r = linalg.matmul ins(%a, %b : tensor<?x64xf32>, tensor<64x?xf32>) outs(%c : tensor<?x?xf32>) -> tensor<?x?xf32>
  return %r : tensor<?x?xf32>
}

// -----

// A batched matmul: (b, m, k, n).
// CHECK-LABEL: func.func @batch
// CHECK:   linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction", "parallel"]
func.func @batch(%a: tensor<2x8x16xf32>, %b: tensor<2x16x64xf32>, %c: tensor<2x8x64xf32>) -> tensor<2x8x64xf32> {
  %r = linalg.batch_matmul ins(%a, %b : tensor<2x8x16xf32>, tensor<2x16x64xf32>) outs(%c : tensor<2x8x64xf32>) -> tensor<2x8x64xf32>
  return %r : tensor<2x8x64xf32>
}

// -----

// A short static inner dim (under 64) keeps the reduction innermost.
// CHECK-LABEL: func.func @narrow
// CHECK:   linalg.matmul
func.func @narrow(%a: tensor<?x64xf32>, %b: tensor<64x32xf32>, %c: tensor<?x32xf32>) -> tensor<?x32xf32> {
  %r = linalg.matmul ins(%a, %b : tensor<?x64xf32>, tensor<64x32xf32>) outs(%c : tensor<?x32xf32>) -> tensor<?x32xf32>
  return %r : tensor<?x32xf32>
}

// -----

// A row reduction into [N] (its output's last dim is the row, and the
// reduction is already inside it) and an elementwise op are left alone.
// CHECK-LABEL: func.func @left_alone
// CHECK:   linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]
// CHECK-NOT: fastmath
// CHECK:   linalg.add
func.func @left_alone(%x: tensor<4x8xf32>, %acc: tensor<4xf32>, %y: tensor<4x8xf32>) -> (tensor<4xf32>, tensor<4x8xf32>) {
  %s = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0)>], iterator_types = ["parallel", "reduction"]} ins(%x : tensor<4x8xf32>) outs(%acc : tensor<4xf32>) {
  ^bb0(%in: f32, %out: f32):
    %a = arith.addf %in, %out : f32
    linalg.yield %a : f32
  } -> tensor<4xf32>
  %e = linalg.add ins(%x, %x : tensor<4x8xf32>, tensor<4x8xf32>) outs(%y : tensor<4x8xf32>) -> tensor<4x8xf32>
  return %s, %e : tensor<4xf32>, tensor<4x8xf32>
}

// -----

// A row reduction into [N] that also reads an [N] input (a LayerNorm's
// variance: the sum over d of (x[n, d] - mean[n])^2) is left alone too:
// with n innermost, x would be walked with a stride of a row.
// CHECK-LABEL: func.func @row_input_left_alone
// CHECK:   linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]
// CHECK-NOT: fastmath
func.func @row_input_left_alone(%x: tensor<?x412xf32>, %mean: tensor<?xf32>, %acc: tensor<?xf32>) -> tensor<?xf32> {
  %s = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0)>, affine_map<(d0, d1) -> (d0)>], iterator_types = ["parallel", "reduction"]} ins(%x, %mean : tensor<?x412xf32>, tensor<?xf32>) outs(%acc : tensor<?xf32>) {
  ^bb0(%in: f32, %m: f32, %out: f32):
    %d = arith.subf %in, %m : f32
    %q = arith.mulf %d, %d : f32
    %a = arith.addf %q, %out : f32
    linalg.yield %a : f32
  } -> tensor<?xf32>
  return %s : tensor<?xf32>
}

// -----

// A gather whose last index is the output's last dim (com.microsoft.MoE's
// per-slot bias rows) counts as a unit-stride input: (n, d, s) becomes
// (n, s, d).
// CHECK-LABEL: func @gathered_rows
// CHECK:         linalg.generic {{.*}}iterator_types = ["parallel", "reduction", "parallel"]
// CHECK:           tensor.extract
// CHECK:           arith.mulf {{.*}} fastmath<contract>
#g_w = affine_map<(n, d, s) -> (n, s)>
#g_o = affine_map<(n, d, s) -> (n, d)>
func.func @gathered_rows(%w: tensor<?x12xf32>, %ids: tensor<?x12xi32>, %bias: tensor<155x412xf32>,
                         %init: tensor<?x412xf32>) -> tensor<?x412xf32> {
  %r = linalg.generic {indexing_maps = [#g_w, #g_w, #g_o],
                       iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%w, %ids : tensor<?x12xf32>, tensor<?x12xi32>) outs(%init : tensor<?x412xf32>) {
  ^bb0(%x: f32, %id: i32, %acc: f32):
    %e = arith.index_cast %id : i32 to index
    %d = linalg.index 1 : index
    %b = tensor.extract %bias[%e, %d] : tensor<155x412xf32>
    %p = arith.mulf %x, %b : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  } -> tensor<?x412xf32>
  return %r : tensor<?x412xf32>
}

// -----

// A gather indexed by the output's last dim in another dim than its last
// (the bias read column-wise: %bias[d, %e]) would walk it with a stride:
// left alone, although another input (%y) walks d contiguously.
// CHECK-LABEL: func @gathered_columns_left_alone
// CHECK:         linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction"]
// CHECK-NOT:       fastmath
#c_w = affine_map<(n, d, s) -> (n, s)>
#c_o = affine_map<(n, d, s) -> (n, d)>
func.func @gathered_columns_left_alone(%w: tensor<?x12xf32>, %ids: tensor<?x12xi32>, %y: tensor<?x412xf32>,
                                       %bias: tensor<412x155xf32>,
                                       %init: tensor<?x412xf32>) -> tensor<?x412xf32> {
  %r = linalg.generic {indexing_maps = [#c_w, #c_w, #c_o, #c_o],
                       iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%w, %ids, %y : tensor<?x12xf32>, tensor<?x12xi32>, tensor<?x412xf32>) outs(%init : tensor<?x412xf32>) {
  ^bb0(%x: f32, %id: i32, %yv: f32, %acc: f32):
    %e = arith.index_cast %id : i32 to index
    %d = linalg.index 1 : index
    %b = tensor.extract %bias[%d, %e] : tensor<412x155xf32>
    %p = arith.mulf %x, %b : f32
    %q = arith.mulf %p, %yv : f32
    %s = arith.addf %acc, %q : f32
    linalg.yield %s : f32
  } -> tensor<?x412xf32>
  return %r : tensor<?x412xf32>
}

// RUN: moe-opt %s --split-input-file --moe-fuse-elementwise | FileCheck %s

// An RMSNorm as the importer writes it: x * x into the row sum (fused: the
// sum reads x through all its loops), the exponent operand the body does
// not read dropped; the row sum's consumer chain (+ eps, sqrt, 1 / r) one loop.
// (The [N, 1] factor reaches the [N, D] product through an expand_shape:
// no generic producer; a direct broadcast is @broadcast_kept.)
#id = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d0)>
#col = affine_map<(d0, d1) -> (d0, 0)>
#scalar = affine_map<(d0, d1) -> ()>
#id1 = affine_map<(d0) -> (d0)>
// CHECK-LABEL: func.func @rms_norm
// CHECK-SAME: (%[[X:.+]]: tensor<?x512xf32>
// CHECK:      %[[SUM:.+]] = linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]} ins(%[[X]] : tensor<?x512xf32>)
// CHECK-NEXT: ^bb0(%[[A:.+]]: f32, %[[ACC:.+]]: f32):
// CHECK-NEXT:   %[[SQ:.+]] = arith.mulf %[[A]], %[[A]] : f32
// CHECK-NEXT:   arith.addf %[[SQ]], %[[ACC]] : f32
// CHECK:      %[[R:.+]] = linalg.generic {{.*}}iterator_types = ["parallel"]} ins(%[[SUM]] : tensor<?xf32>)
// CHECK:        arith.divf
// CHECK:        arith.addf
// CHECK:        math.sqrt
// CHECK:        arith.divf
// CHECK:      %[[C:.+]] = tensor.expand_shape %[[R]]
// CHECK:      linalg.generic {{.*}}ins(%[[X]], %[[C]] : tensor<?x512xf32>, tensor<?x1xf32>)
// CHECK:        arith.mulf
// CHECK-NOT:  linalg.generic
// CHECK:      return
func.func @rms_norm(%x: tensor<?x512xf32>, %two: tensor<f32>) -> tensor<?x512xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %n = arith.constant 512.0 : f32
  %eps = arith.constant 1.0e-6 : f32
  %one = arith.constant 1.0 : f32
  %exp = arith.constant dense<2.0> : tensor<f32>
  %rows = tensor.dim %x, %c0 : tensor<?x512xf32>
  %e = tensor.empty(%rows) : tensor<?x512xf32>
  %sq = linalg.generic {indexing_maps = [#id, #scalar, #id], iterator_types = ["parallel", "parallel"]}
      ins(%x, %exp : tensor<?x512xf32>, tensor<f32>) outs(%e : tensor<?x512xf32>) {
  ^bb0(%a: f32, %p: f32, %o: f32):
    %m = arith.mulf %a, %a : f32
    linalg.yield %m : f32
  } -> tensor<?x512xf32>
  %e1 = tensor.empty(%rows) : tensor<?xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e1 : tensor<?xf32>) -> tensor<?xf32>
  %sum = linalg.generic {indexing_maps = [#id, #row], iterator_types = ["parallel", "reduction"]}
      ins(%sq : tensor<?x512xf32>) outs(%z : tensor<?xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %s = arith.addf %a, %acc : f32
    linalg.yield %s : f32
  } -> tensor<?xf32>
  %mean = linalg.generic {indexing_maps = [#id1, #id1], iterator_types = ["parallel"]}
      ins(%sum : tensor<?xf32>) outs(%e1 : tensor<?xf32>) {
  ^bb0(%a: f32, %o: f32):
    %d = arith.divf %a, %n : f32
    linalg.yield %d : f32
  } -> tensor<?xf32>
  %r = linalg.generic {indexing_maps = [#id1, #id1], iterator_types = ["parallel"]}
      ins(%mean : tensor<?xf32>) outs(%e1 : tensor<?xf32>) {
  ^bb0(%a: f32, %o: f32):
    %p = arith.addf %a, %eps : f32
    %q = math.sqrt %p : f32
    %i = arith.divf %one, %q : f32
    linalg.yield %i : f32
  } -> tensor<?xf32>
  %c = tensor.expand_shape %r [[0, 1]] output_shape [%rows, 1] : tensor<?xf32> into tensor<?x1xf32>
  %y = linalg.generic {indexing_maps = [#id, #col, #id], iterator_types = ["parallel", "parallel"]}
      ins(%x, %c : tensor<?x512xf32>, tensor<?x1xf32>) outs(%e : tensor<?x512xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %m = arith.mulf %a, %b : f32
    linalg.yield %m : f32
  } -> tensor<?x512xf32>
  return %y : tensor<?x512xf32>
}

// -----

// Not fused: a producer whose result has two readers (it would be computed
// twice), and a contraction's operand (a matmul reads A[m, k] through two
// of its three loops: the producer would run once per column).
#id = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @kept
// CHECK:      %[[NEG:.+]] = linalg.generic {{.*}}ins(%{{.+}} : tensor<8x16xf32>)
// CHECK:        arith.negf
// CHECK:      linalg.matmul ins(%[[NEG]], %{{.+}} : tensor<8x16xf32>, tensor<16x4xf32>)
// CHECK:      %[[ABS:.+]] = linalg.generic {{.*}}ins(%{{.+}} : tensor<8x16xf32>)
// CHECK:        math.absf
// CHECK:      %[[SQ:.+]] = linalg.generic {{.*}}ins(%[[ABS]] : tensor<8x16xf32>)
// CHECK-NOT:    math.absf
// CHECK:        arith.mulf
// CHECK:      return %{{.+}}, %[[SQ]], %[[ABS]]
func.func @kept(%a: tensor<8x16xf32>, %b: tensor<16x4xf32>, %c: tensor<8x4xf32>) -> (tensor<8x4xf32>, tensor<8x16xf32>, tensor<8x16xf32>) {
  %e = tensor.empty() : tensor<8x16xf32>
  %neg = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%a : tensor<8x16xf32>) outs(%e : tensor<8x16xf32>) {
  ^bb0(%x: f32, %o: f32):
    %n = arith.negf %x : f32
    linalg.yield %n : f32
  } -> tensor<8x16xf32>
  %mm = linalg.matmul ins(%neg, %b : tensor<8x16xf32>, tensor<16x4xf32>) outs(%c : tensor<8x4xf32>) -> tensor<8x4xf32>
  %abs = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%a : tensor<8x16xf32>) outs(%e : tensor<8x16xf32>) {
  ^bb0(%x: f32, %o: f32):
    %n = math.absf %x : f32
    linalg.yield %n : f32
  } -> tensor<8x16xf32>
  %sq = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%abs, %abs : tensor<8x16xf32>, tensor<8x16xf32>) outs(%e : tensor<8x16xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %m = arith.mulf %x, %y : f32
    linalg.yield %m : f32
  } -> tensor<8x16xf32>
  return %mm, %sq, %abs : tensor<8x4xf32>, tensor<8x16xf32>, tensor<8x16xf32>
}

// -----

// Two operands of one reader from one producer are one read: fused, the
// producer's value computed once per element.
#id = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @same_reader
// CHECK:      linalg.generic
// CHECK-NEXT: ^bb0(%[[X:.+]]: f32, %{{.+}}: f32):
// CHECK-NEXT:   %[[A:.+]] = math.absf %[[X]] : f32
// CHECK-NEXT:   arith.mulf %[[A]], %[[A]] : f32
// CHECK-NOT:  linalg.generic
func.func @same_reader(%a: tensor<8x16xf32>) -> tensor<8x16xf32> {
  %e = tensor.empty() : tensor<8x16xf32>
  %abs = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%a : tensor<8x16xf32>) outs(%e : tensor<8x16xf32>) {
  ^bb0(%x: f32, %o: f32):
    %n = math.absf %x : f32
    linalg.yield %n : f32
  } -> tensor<8x16xf32>
  %sq = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%abs, %abs : tensor<8x16xf32>, tensor<8x16xf32>) outs(%e : tensor<8x16xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %m = arith.mulf %x, %y : f32
    linalg.yield %m : f32
  } -> tensor<8x16xf32>
  return %sq : tensor<8x16xf32>
}

// -----

// A reduction is no producer: the softmax's row maximum stays its own loop;
// the subtraction and exp of the next two elementwise ops become one.
#id = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d0)>
// CHECK-LABEL: func.func @reduction_producer
// CHECK:      %[[MAX:.+]] = linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]}
// CHECK:        arith.maximumf
// CHECK:      linalg.generic {{.*}}ins(%{{.+}}, %[[MAX]] : tensor<4x256xf32>, tensor<4xf32>)
// CHECK:        arith.subf
// CHECK-NEXT:   math.exp
// CHECK-NOT:  linalg.generic
func.func @reduction_producer(%s: tensor<4x256xf32>, %init: tensor<4xf32>) -> tensor<4x256xf32> {
  %max = linalg.generic {indexing_maps = [#id, #row], iterator_types = ["parallel", "reduction"]}
      ins(%s : tensor<4x256xf32>) outs(%init : tensor<4xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %m = arith.maximumf %a, %acc : f32
    linalg.yield %m : f32
  } -> tensor<4xf32>
  %e = tensor.empty() : tensor<4x256xf32>
  %d = linalg.generic {indexing_maps = [#id, #row, #id], iterator_types = ["parallel", "parallel"]}
      ins(%s, %max : tensor<4x256xf32>, tensor<4xf32>) outs(%e : tensor<4x256xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %x = arith.subf %a, %b : f32
    linalg.yield %x : f32
  } -> tensor<4x256xf32>
  %p = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%d : tensor<4x256xf32>) outs(%e : tensor<4x256xf32>) {
  ^bb0(%a: f32, %o: f32):
    %x = math.exp %a : f32
    linalg.yield %x : f32
  } -> tensor<4x256xf32>
  return %p : tensor<4x256xf32>
}

// -----

// A broadcast producer: r [N] read by the [N, D] product through (d0) is
// not fused (its sqrt would run D times per row).
#id = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d0)>
#id1 = affine_map<(d0) -> (d0)>
// CHECK-LABEL: func.func @broadcast_kept
// CHECK:      %[[R:.+]] = linalg.generic {{.*}}iterator_types = ["parallel"]}
// CHECK:        math.sqrt
// CHECK:      linalg.generic {{.*}}ins(%{{.+}}, %[[R]] : tensor<?x512xf32>, tensor<?xf32>)
// CHECK-NOT:    math.sqrt
// CHECK:        arith.mulf
func.func @broadcast_kept(%x: tensor<?x512xf32>, %s: tensor<?xf32>) -> tensor<?x512xf32> {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?x512xf32>
  %e1 = tensor.empty(%n) : tensor<?xf32>
  %r = linalg.generic {indexing_maps = [#id1, #id1], iterator_types = ["parallel"]}
      ins(%s : tensor<?xf32>) outs(%e1 : tensor<?xf32>) {
  ^bb0(%a: f32, %o: f32):
    %q = math.sqrt %a : f32
    linalg.yield %q : f32
  } -> tensor<?xf32>
  %e = tensor.empty(%n) : tensor<?x512xf32>
  %y = linalg.generic {indexing_maps = [#id, #row, #id], iterator_types = ["parallel", "parallel"]}
      ins(%x, %r : tensor<?x512xf32>, tensor<?xf32>) outs(%e : tensor<?x512xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %m = arith.mulf %a, %b : f32
    linalg.yield %m : f32
  } -> tensor<?x512xf32>
  return %y : tensor<?x512xf32>
}

// RUN: moe-opt %s --resolve-ranked-shaped-type-result-dims --canonicalize --cse --split-input-file | FileCheck %s
// A tensor.dim of a moe op's result folds to its operands' dims
// (ReifyRankedShapedTypeOpInterface), so sizes need not wait for the op.

// CHECK-LABEL: func @route_dispatch_grouped
// CHECK-SAME: (%[[S:.*]]: tensor<?x8xf32>, %[[X:.*]]: tensor<?x16xf32>
// CHECK-DAG: %[[C0:.*]] = arith.constant 0 : index
// CHECK-DAG: %[[N:.*]] = tensor.dim %[[S]], %[[C0]]
// CHECK: %[[M:.*]] = affine.apply #{{.*}}()[%[[N]]]
// CHECK: return %[[N]], %[[M]], %[[M]], %[[N]]
func.func @route_dispatch_grouped(%s: tensor<?x8xf32>, %x: tensor<?x16xf32>,
                                  %w: tensor<8x16x4xf32>,
                                  %w2: tensor<8x4x16xf32>)
    -> (index, index, index, index) {
  %c0 = arith.constant 0 : index
  %wt, %ids = moe.route %s gate<softmax> {k = 2 : i64}
      : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  %off, %perm = moe.dispatch %ids {num_experts = 8 : i64}
      : tensor<?x2xi32> -> tensor<9xi32>, tensor<?xi32>
  %y = moe.grouped_matmul %x, %w, %off, %perm
      : (tensor<?x16xf32>, tensor<8x16x4xf32>, tensor<9xi32>, tensor<?xi32>)
      -> tensor<?x4xf32>
  %o = moe.grouped_matmul %y, %w2, %off, %perm weights(%wt)
      : (tensor<?x4xf32>, tensor<8x4x16xf32>, tensor<9xi32>, tensor<?xi32>,
         tensor<?x2xf32>) -> tensor<?x16xf32>
  %d0 = tensor.dim %wt, %c0 : tensor<?x2xf32>
  %d1 = tensor.dim %perm, %c0 : tensor<?xi32>
  %d2 = tensor.dim %y, %c0 : tensor<?x4xf32>
  %d3 = tensor.dim %o, %c0 : tensor<?x16xf32>
  return %d0, %d1, %d2, %d3 : index, index, index, index
}

// -----

// CHECK-LABEL: func @mot_mix_unmix
// CHECK-SAME: (%[[X:.*]]: tensor<?x?x32xf32>
// CHECK-DAG: %[[C0:.*]] = arith.constant 0 : index
// CHECK-DAG: %[[C1:.*]] = arith.constant 1 : index
// CHECK-DAG: %[[T:.*]] = tensor.dim %[[X]], %[[C1]]
// CHECK-DAG: %[[B:.*]] = tensor.dim %[[X]], %[[C0]]
// CHECK-DAG: %[[C:.*]] = affine.apply #{{.*}}()[%[[B]]]
// C*g = (B floordiv 4) * 4, B itself where the verifier holds.
// CHECK-DAG: %[[BG:.*]] = affine.apply #{{.*}}()[%[[B]]]
// CHECK: return %[[T]], %[[C]], %[[BG]]
func.func @mot_mix_unmix(%x: tensor<?x?x32xf32>, %l: tensor<?x?x6xf32>)
    -> (index, index, index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %z, %m = moe.mot_mix %x, %l mode<continuous> {group_size = 4 : i64}
      : (tensor<?x?x32xf32>, tensor<?x?x6xf32>)
      -> tensor<?x?x6x32xf32>, tensor<?x?x4x6xf32>
  %o = moe.mot_unmix %z, %m
      : (tensor<?x?x6x32xf32>, tensor<?x?x4x6xf32>) -> tensor<?x?x32xf32>
  %t = tensor.dim %z, %c0 : tensor<?x?x6x32xf32>
  %c = tensor.dim %m, %c1 : tensor<?x?x4x6xf32>
  %b = tensor.dim %o, %c0 : tensor<?x?x32xf32>
  return %t, %c, %b : index, index, index
}

// -----

// CHECK-LABEL: func @layers
// CHECK-SAME: (%[[X:.*]]: tensor<?x?x2x16xf32>, %[[Q:.*]]: tensor<?x2x?x8xf32>, %[[V:.*]]: tensor<?x2x?x?xf32>
// CHECK-DAG: %[[C0:.*]] = arith.constant 0 : index
// CHECK-DAG: %[[C1:.*]] = arith.constant 1 : index
// CHECK-DAG: %[[C2:.*]] = arith.constant 2 : index
// CHECK-DAG: %[[C3:.*]] = arith.constant 3 : index
// CHECK-DAG: %[[XB:.*]] = tensor.dim %[[X]], %[[C0]]
// CHECK-DAG: %[[XT:.*]] = tensor.dim %[[X]], %[[C1]]
// CHECK-DAG: %[[QT:.*]] = tensor.dim %[[Q]], %[[C2]]
// CHECK-DAG: %[[VD:.*]] = tensor.dim %[[V]], %[[C3]]
// CHECK: return %[[XB]], %[[XT]], %[[QT]], %[[VD]]
func.func @layers(%x: tensor<?x?x2x16xf32>, %q: tensor<?x2x?x8xf32>,
                  %v: tensor<?x2x?x?xf32>, %k: tensor<?x2x?x8xf32>)
    -> (index, index, index, index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %r = moe.rope %x {rotate_fraction = 0.5 : f64}
      : tensor<?x?x2x16xf32> -> tensor<?x?x2x16xf32>
  %a = moe.attention %q, %k, %v {causal}
      : (tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x?xf32>)
      -> tensor<?x2x?x?xf32>
  %d0 = tensor.dim %r, %c0 : tensor<?x?x2x16xf32>
  %d1 = tensor.dim %r, %c1 : tensor<?x?x2x16xf32>
  %d2 = tensor.dim %a, %c2 : tensor<?x2x?x?xf32>
  %d3 = tensor.dim %a, %c3 : tensor<?x2x?x?xf32>
  return %d0, %d1, %d2, %d3 : index, index, index, index
}

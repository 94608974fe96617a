// RUN: moe-opt %s --moe-decompose-tree-ffn --split-input-file | FileCheck %s

// Path mode: depth 2 gives 3 slots per row (root, level 1, level 2) over the
// 7 tree nodes; one grouped matmul with unit weights sums the path.
// CHECK-LABEL: func @tree_path
// CHECK-SAME:    %[[H:[a-z0-9]+]]: tensor<?x32xf32>, %[[WG:[a-z0-9]+]]: tensor<32x2xf32>, %[[W:[a-z0-9]+]]: tensor<7x32x16xf32>
// CHECK:         %[[U:.+]] = linalg.generic {{.*}} ins(%[[H]], %[[WG]] : tensor<?x32xf32>, tensor<32x2xf32>) outs(%{{.*}} : tensor<?x2xf32>)
// CHECK:         %[[ONES:.+]], %[[IDS:.+]] = moe.tree_route %[[U]] mode<path> : tensor<?x2xf32> -> tensor<?x3xf32>, tensor<?x3xi32>
// CHECK:         %[[OFF:.+]], %[[PERM:.+]] = moe.dispatch %[[IDS]] {num_experts = 7 : i64} : tensor<?x3xi32> -> tensor<8xi32>, tensor<?xi32>
// CHECK:         %[[SUM:.+]] = moe.grouped_matmul %[[H]], %[[W]], %[[OFF]], %[[PERM]] weights(%[[ONES]]) : {{.*}} -> tensor<?x16xf32>
// CHECK:         %[[Y:.+]] = linalg.generic {{.*}} ins(%[[SUM]] : tensor<?x16xf32>)
// CHECK:           arith.maximumf
// CHECK:         return %[[Y]]
func.func @tree_path(%h: tensor<?x32xf32>, %wg: tensor<32x2xf32>, %w: tensor<7x32x16xf32>) -> tensor<?x16xf32> {
  %y = moe.tree_ffn %h, %wg, %w mode<path> act<relu> : (tensor<?x32xf32>, tensor<32x2xf32>, tensor<7x32x16xf32>) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// Flat mode: one slot, the leaf among 2^depth.
// CHECK-LABEL: func @tree_flat
// CHECK:         moe.tree_route %{{.*}} mode<flat> : tensor<5x3xf32> -> tensor<5x1xf32>, tensor<5x1xi32>
// CHECK:         moe.dispatch %{{.*}} {num_experts = 8 : i64} : tensor<5x1xi32> -> tensor<9xi32>, tensor<5xi32>
// CHECK:         %[[SUM:.+]] = moe.grouped_matmul {{.*}} -> tensor<5x16xf32>
// CHECK-NEXT:    return %[[SUM]]
func.func @tree_flat(%h: tensor<5x32xf32>, %wg: tensor<32x3xf32>, %w: tensor<8x32x16xf32>) -> tensor<5x16xf32> {
  %y = moe.tree_ffn %h, %wg, %w mode<flat> act<identity> : (tensor<5x32xf32>, tensor<32x3xf32>, tensor<8x32x16xf32>) -> tensor<5x16xf32>
  return %y : tensor<5x16xf32>
}

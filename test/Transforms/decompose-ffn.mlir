// RUN: moe-opt %s --moe-decompose-ffn --split-input-file | FileCheck %s
// RUN: moe-opt %s --moe-decompose-ffn --split-input-file --mlir-print-debuginfo --mlir-print-local-scope | FileCheck %s --check-prefix=LOC

// The selector reads `selector_input`, the experts read `input`; the up
// projection returns slots in slot order, the down projection reduces them
// into token rows with the gate weights.

// CHECK-DAG:   #[[LHS:[a-z0-9]+]] = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-DAG:   #[[RHS:[a-z0-9]+]] = affine_map<(d0, d1, d2) -> (d1, d2)>
// CHECK-DAG:   #[[OUT:[a-z0-9]+]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func @ffn_sigmoid
// CHECK-SAME:    %[[X:[a-z0-9]+]]: tensor<6x40xf32>, %[[LN:[a-z0-9]+]]: tensor<6x40xf32>, %[[WS:[a-z0-9]+]]: tensor<7x40xf32>, %[[W1:[a-z0-9]+]]: tensor<7x40x24xf32>, %[[W2:[a-z0-9]+]]: tensor<7x24x40xf32>
// CHECK:         %[[SCORES:.+]] = linalg.generic {indexing_maps = [#[[LHS]], #[[RHS]], #[[OUT]]], iterator_types = ["parallel", "parallel", "reduction"]}
// CHECK-SAME:      ins(%[[LN]], %[[WS]] : tensor<6x40xf32>, tensor<7x40xf32>)
// CHECK:         %[[W:.+]], %[[IDS:.+]] = moe.route %[[SCORES]] gate<sigmoid> {k = 3 : i64} : tensor<6x7xf32> -> tensor<6x3xf32>, tensor<6x3xi32>
// CHECK:         %[[OFF:.+]], %[[PERM:.+]] = moe.dispatch %[[IDS]] {num_experts = 7 : i64} : tensor<6x3xi32> -> tensor<8xi32>, tensor<18xi32>
// CHECK:         %[[UP:.+]] = moe.grouped_matmul %[[X]], %[[W1]], %[[OFF]], %[[PERM]] act<relu> : {{.*}} -> tensor<18x24xf32>
// CHECK-NEXT:    %[[DOWN:.+]] = moe.grouped_matmul %[[UP]], %[[W2]], %[[OFF]], %[[PERM]] weights(%[[W]]) : {{.*}} -> tensor<6x40xf32>
// CHECK:         return %[[DOWN]]
// CHECK-NOT:     moe.ffn
func.func @ffn_sigmoid(%x: tensor<6x40xf32>, %ln: tensor<6x40xf32>, %ws: tensor<7x40xf32>,
                       %w1: tensor<7x40x24xf32>, %w2: tensor<7x24x40xf32>) -> tensor<6x40xf32> {
  %y = moe.ffn %x, %ws, %w1, %w2 selector(%ln) gate<sigmoid> act<relu> {k = 3 : i64}
      : (tensor<6x40xf32>, tensor<7x40xf32>, tensor<7x40x24xf32>, tensor<7x24x40xf32>, tensor<6x40xf32>) -> tensor<6x40xf32>
  return %y : tensor<6x40xf32>
}

// -----

// Switch routing: one slot per token, capacity-limited.
// CHECK-LABEL: func @ffn_switch
// CHECK-SAME:    %[[X:[a-z0-9]+]]: tensor<?x16xf32>
// CHECK:         %[[SCORES:.+]] = linalg.generic {{.*}} ins(%[[X]], %{{.*}} : tensor<?x16xf32>, tensor<4x16xf32>)
// CHECK:         %[[W:.+]], %[[IDS:.+]], %{{.+}} = moe.switch_route %[[SCORES]] {capacity_factor = 1.250000e+00 : f64} : tensor<?x4xf32> -> tensor<?x1xf32>, tensor<?x1xi32>, tensor<?xi1>
// CHECK:         %[[OFF:.+]], %[[PERM:.+]] = moe.dispatch %[[IDS]] {num_experts = 4 : i64}
// CHECK:         %[[UP:.+]] = moe.grouped_matmul %[[X]], %{{.*}}, %[[OFF]], %[[PERM]] act<gelu> : {{.*}} -> tensor<?x8xf32>
// CHECK-NEXT:    moe.grouped_matmul %[[UP]], %{{.*}}, %[[OFF]], %[[PERM]] weights(%[[W]])
func.func @ffn_switch(%x: tensor<?x16xf32>, %ws: tensor<4x16xf32>, %w1: tensor<4x16x8xf32>,
                      %w2: tensor<4x8x16xf32>) -> tensor<?x16xf32> {
  %y = moe.ffn %x, %ws, %w1, %w2 gate<softmax> act<gelu> {k = 1 : i64, capacity_factor = 1.25 : f64}
      : (tensor<?x16xf32>, tensor<4x16xf32>, tensor<4x16x8xf32>, tensor<4x8x16xf32>) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// Dynamic everything but the expert count (taken from w2 here); identity
// activation puts no epilogue on the up projection.
// CHECK-LABEL: func @ffn_dynamic
// CHECK:         moe.route %{{.*}} gate<topk_softmax> {k = 5 : i64} : tensor<?x5xf64> -> tensor<?x5xf64>, tensor<?x5xi32>
// CHECK:         moe.dispatch %{{.*}} {num_experts = 5 : i64} : tensor<?x5xi32> -> tensor<6xi32>, tensor<?xi32>
// CHECK:         %[[UP:.+]] = moe.grouped_matmul %{{[^,]+}}, %{{[^,]+}}, %{{[^,]+}}, %{{[^ ]+}} : ({{.*}} -> tensor<?x?xf64>
// CHECK-NEXT:    moe.grouped_matmul %[[UP]]
func.func @ffn_dynamic(%x: tensor<?x?xf64>, %ws: tensor<?x?xf64>, %w1: tensor<?x?x?xf64>,
                       %w2: tensor<5x?x?xf64>) -> tensor<?x?xf64> {
  %y = moe.ffn %x, %ws, %w1, %w2 gate<topk_softmax> act<identity> {k = 5 : i64}
      : (tensor<?x?xf64>, tensor<?x?xf64>, tensor<?x?x?xf64>, tensor<5x?x?xf64>) -> tensor<?x?xf64>
  return %y : tensor<?x?xf64>
}

// -----

// SiLU activation.
// CHECK-LABEL: func @ffn_silu
// CHECK:         moe.grouped_matmul {{.*}} act<silu>
// CHECK-NOT:     linalg.generic
func.func @ffn_silu(%x: tensor<3x8xf32>, %ws: tensor<2x8xf32>, %w1: tensor<2x8x4xf32>,
                    %w2: tensor<2x4x8xf32>) -> tensor<3x8xf32> {
  %y = moe.ffn %x, %ws, %w1, %w2 gate<softmax> act<silu> {k = 1 : i64}
      : (tensor<3x8xf32>, tensor<2x8xf32>, tensor<2x8x4xf32>, tensor<2x4x8xf32>) -> tensor<3x8xf32>
  return %y : tensor<3x8xf32>
}

// -----

// A selector handed over as a transpose of a [D, E] value (the layout
// moe-fold-constant-layouts stores constant selectors in): the scores read
// that value, "nd,de->ne"; the transpose, read by nothing now, is left to
// the canonicalizer that follows in moe-compile's pipeline.
// CHECK-DAG:   #[[LHS:[a-z0-9]+]] = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-DAG:   #[[RHST:[a-z0-9]+]] = affine_map<(d0, d1, d2) -> (d2, d1)>
// CHECK-DAG:   #[[OUT:[a-z0-9]+]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func @ffn_selector_by_column
// CHECK-SAME:    %[[X:[a-z0-9]+]]: tensor<?x40xf32>, %[[WST:[a-z0-9]+]]: tensor<40x7xf32>
// CHECK:         %[[SCORES:.+]] = linalg.generic {indexing_maps = [#[[LHS]], #[[RHST]], #[[OUT]]], iterator_types = ["parallel", "parallel", "reduction"]}
// CHECK-SAME:      ins(%[[X]], %[[WST]] : tensor<?x40xf32>, tensor<40x7xf32>)
// CHECK:         moe.route %[[SCORES]] gate<sigmoid>
func.func @ffn_selector_by_column(%x: tensor<?x40xf32>, %wst: tensor<40x7xf32>,
                                  %w1: tensor<7x40x24xf32>, %w2: tensor<7x24x40xf32>) -> tensor<?x40xf32> {
  %e = tensor.empty() : tensor<7x40xf32>
  %ws = linalg.transpose ins(%wst : tensor<40x7xf32>) outs(%e : tensor<7x40xf32>) permutation = [1, 0]
  %y = moe.ffn %x, %ws, %w1, %w2 gate<sigmoid> act<relu> {k = 3 : i64}
      : (tensor<?x40xf32>, tensor<7x40xf32>, tensor<7x40x24xf32>, tensor<7x24x40xf32>) -> tensor<?x40xf32>
  return %y : tensor<?x40xf32>
}

// -----

// Each part's ops are located at "<node>.<part>" around the node's
// location (build::partLoc), so that the loops they become are named so in
// the code (moe-run --profile); a layer without a name keeps its location.
// LOC-LABEL: func @ffn_named
// LOC:         } -> tensor<6x7xf32> loc("layer0.ffn.selector"("layer0.ffn"("model.onnx":0:0)))
// LOC:         moe.route {{.*}} loc("layer0.ffn.route"("layer0.ffn"("model.onnx":0:0)))
// LOC:         moe.dispatch {{.*}} loc("layer0.ffn.route"("layer0.ffn"("model.onnx":0:0)))
// LOC:         moe.grouped_matmul {{.*}} loc("layer0.ffn.experts"("layer0.ffn"("model.onnx":0:0)))
// LOC:         moe.grouped_matmul {{.*}} loc("layer0.ffn.experts"("layer0.ffn"("model.onnx":0:0)))
// LOC-LABEL: func @ffn_unnamed
// LOC:         moe.route {{.*}} loc("plain.mlir":1:1)
// LOC:         moe.grouped_matmul {{.*}} loc("plain.mlir":1:1)
func.func @ffn_named(%x: tensor<6x40xf32>, %ws: tensor<7x40xf32>,
                     %w1: tensor<7x40x24xf32>, %w2: tensor<7x24x40xf32>) -> tensor<6x40xf32> {
  %y = moe.ffn %x, %ws, %w1, %w2 gate<softmax> act<relu> {k = 2 : i64}
      : (tensor<6x40xf32>, tensor<7x40xf32>, tensor<7x40x24xf32>, tensor<7x24x40xf32>) -> tensor<6x40xf32> loc("layer0.ffn"("model.onnx":0:0))
  return %y : tensor<6x40xf32>
}
func.func @ffn_unnamed(%x: tensor<6x40xf32>, %ws: tensor<7x40xf32>,
                       %w1: tensor<7x40x24xf32>, %w2: tensor<7x24x40xf32>) -> tensor<6x40xf32> {
  %y = moe.ffn %x, %ws, %w1, %w2 gate<softmax> act<relu> {k = 2 : i64}
      : (tensor<6x40xf32>, tensor<7x40xf32>, tensor<7x40x24xf32>, tensor<7x24x40xf32>) -> tensor<6x40xf32> loc("plain.mlir":1:1)
  return %y : tensor<6x40xf32>
}

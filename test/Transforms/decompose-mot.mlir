// RUN: moe-opt %s --moe-decompose-mot --split-input-file | FileCheck %s

// CHECK-DAG:   #[[X:[a-z0-9]+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
// CHECK-DAG:   #[[WC:[a-z0-9]+]] = affine_map<(d0, d1, d2, d3) -> (d3, d2)>
// CHECK-DAG:   #[[LOG:[a-z0-9]+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
// CHECK-DAG:   #[[Z:[a-z0-9]+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d4)>
// CHECK-DAG:   #[[W:[a-z0-9]+]] = affine_map<(d0, d1, d2, d3, d4) -> (d2, d4, d3)>
// CHECK-DAG:   #[[H:[a-z0-9]+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3)>
// CHECK-LABEL: func @mot
// CHECK-SAME:    %[[IN:[a-z0-9]+]]: tensor<8x?x32xf32>, %[[WCV:[a-z0-9]+]]: tensor<32x6xf32>, %[[W1:[a-z0-9]+]]: tensor<6x32x16xf32>, %[[W2:[a-z0-9]+]]: tensor<6x16x32xf32>
// CHECK:         %[[LOGITS:.+]] = linalg.generic {indexing_maps = [#[[X]], #[[WC]], #[[LOG]]], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
// CHECK-SAME:      ins(%[[IN]], %[[WCV]] : tensor<8x?x32xf32>, tensor<32x6xf32>) outs(%{{.*}} : tensor<8x?x6xf32>)
// CHECK:         %[[MIXED:.+]], %[[M:.+]] = moe.mot_mix %[[IN]], %[[LOGITS]] mode<continuous> {group_size = 4 : i64, temperature = 5.000000e-01 : f64}
// CHECK-SAME:      -> tensor<?x2x6x32xf32>, tensor<?x2x4x6xf32>
// CHECK:         %[[HID:.+]] = linalg.generic {indexing_maps = [#[[Z]], #[[W]], #[[H]]], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
// CHECK-SAME:      ins(%[[MIXED]], %[[W1]] : tensor<?x2x6x32xf32>, tensor<6x32x16xf32>) outs(%{{.*}} : tensor<?x2x6x16xf32>)
// CHECK:         %[[ACT:.+]] = linalg.generic {{.*}} ins(%[[HID]] : tensor<?x2x6x16xf32>)
// CHECK:           arith.maximumf
// CHECK:         %[[Y:.+]] = linalg.generic {indexing_maps = [#[[Z]], #[[W]], #[[H]]], {{.*}} ins(%[[ACT]], %[[W2]] : tensor<?x2x6x16xf32>, tensor<6x16x32xf32>) outs(%{{.*}} : tensor<?x2x6x32xf32>)
// CHECK:         %[[OUT:.+]] = moe.mot_unmix %[[Y]], %[[M]] : (tensor<?x2x6x32xf32>, tensor<?x2x4x6xf32>) -> tensor<8x?x32xf32>
// CHECK:         return %[[OUT]]
func.func @mot(%x: tensor<8x?x32xf32>, %wc: tensor<32x6xf32>, %w1: tensor<6x32x16xf32>, %w2: tensor<6x16x32xf32>) -> tensor<8x?x32xf32> {
  %y = moe.mot %x, %wc, %w1, %w2 mode<continuous> act<relu> {group_size = 4 : i64, temperature = 0.5 : f64}
      : (tensor<8x?x32xf32>, tensor<32x6xf32>, tensor<6x32x16xf32>, tensor<6x16x32xf32>) -> tensor<8x?x32xf32>
  return %y : tensor<8x?x32xf32>
}

// -----

// Dynamic batch: the group count B / g is computed at run time.
// CHECK-LABEL: func @mot_dynamic_batch
// CHECK:         %[[C0:.+]] = arith.constant 0 : index
// CHECK:         %[[B:.+]] = tensor.dim %{{.*}}, %[[C0]] : tensor<?x?x16xf32>
// CHECK:         %[[G:.+]] = arith.constant 2 : index
// CHECK:         arith.divui %[[B]], %[[G]] : index
// CHECK:         moe.mot_mix {{.*}} mode<discrete> {group_size = 2 : i64} : (tensor<?x?x16xf32>, tensor<?x?x3xf32>) -> tensor<?x?x3x16xf32>, tensor<?x?x2x3xf32>
// CHECK:         moe.mot_unmix {{.*}} -> tensor<?x?x16xf32>
func.func @mot_dynamic_batch(%x: tensor<?x?x16xf32>, %wc: tensor<16x3xf32>, %w1: tensor<3x16x8xf32>, %w2: tensor<3x8x16xf32>) -> tensor<?x?x16xf32> {
  %y = moe.mot %x, %wc, %w1, %w2 mode<discrete> act<relu> {group_size = 2 : i64}
      : (tensor<?x?x16xf32>, tensor<16x3xf32>, tensor<3x16x8xf32>, tensor<3x8x16xf32>) -> tensor<?x?x16xf32>
  return %y : tensor<?x?x16xf32>
}

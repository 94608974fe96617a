// RUN: moe-opt %s --moe-expand-views --split-input-file | FileCheck %s
// RUN: moe-opt %s --moe-expand-views --expand-strided-metadata --split-input-file | FileCheck %s --check-prefix=LOWERED

// Two dynamic sizes in one group: a reinterpret_cast of the base buffer,
// strides from the sizes after each dim, in the expand's own (identity)
// type.
// CHECK-LABEL: func @two_dynamic_in_group
// CHECK-SAME:    (%[[M:.*]]: memref<?xf32>, %[[A:.*]]: index, %[[B:.*]]: index)
// CHECK-NOT:     memref.expand_shape
// CHECK:         %[[BASE:.*]], %[[OFF:.*]], %{{.*}}, %{{.*}} = memref.extract_strided_metadata %[[M]]
// CHECK:         %[[S0:.*]] = affine.apply #{{.*}}()[%[[B]]]
// CHECK:         %[[R:.*]] = memref.reinterpret_cast %[[BASE]] to offset: [0], sizes: [%[[A]], 2, %[[B]]], strides: [%[[S0]], %[[B]], 1]
// CHECK-SAME:      memref<f32> to memref<?x2x?xf32>
// CHECK-NOT:     memref.cast
// CHECK:         memref.load %[[R]]
// LOWERED-LABEL: func @two_dynamic_in_group
// LOWERED-NOT:   memref.expand_shape
// LOWERED:       memref.reinterpret_cast
func.func @two_dynamic_in_group(%m: memref<?xf32>, %a: index, %b: index) -> f32 {
  %e = memref.expand_shape %m [[0, 1, 2]] output_shape [%a, 2, %b] : memref<?xf32> into memref<?x2x?xf32>
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %v = memref.load %e[%c1, %c1, %c0] : memref<?x2x?xf32>
  return %v : f32
}

// -----

// A strided source (a column slice): every group starts from its source
// dim's own stride, the offset is the source's.
// CHECK-LABEL: func @strided_source
// CHECK:         %[[BASE:.*]], %[[OFF:.*]], %{{.*}}:2, %[[ST:.*]]:2 = memref.extract_strided_metadata
// CHECK:         memref.reinterpret_cast %[[BASE]] to offset: [%[[OFF]]], sizes: [%{{.*}}, %{{.*}}, 2, 4], strides: [%{{.*}}, %[[ST]]#0, 4, 1]
// CHECK-SAME:      to memref<?x?x2x4xf32, strided<[?, ?, 4, 1], offset: ?>>
func.func @strided_source(%m: memref<?x8xf32, strided<[?, 1], offset: ?>>, %a: index, %b: index) -> memref<?x?x2x4xf32, strided<[?, ?, 4, 1], offset: ?>> {
  %e = memref.expand_shape %m [[0, 1], [2, 3]] output_shape [%a, %b, 2, 4] : memref<?x8xf32, strided<[?, 1], offset: ?>> into memref<?x?x2x4xf32, strided<[?, ?, 4, 1], offset: ?>>
  return %e : memref<?x?x2x4xf32, strided<[?, ?, 4, 1], offset: ?>>
}

// -----

// At most one dynamic size per group: left to expand-strided-metadata.
// CHECK-LABEL: func @one_dynamic_per_group
// CHECK:         memref.expand_shape
// CHECK-NOT:     memref.reinterpret_cast
func.func @one_dynamic_per_group(%m: memref<?x8xf32>, %a: index) -> memref<?x2x2x4xf32> {
  %e = memref.expand_shape %m [[0, 1], [2, 3]] output_shape [%a, 2, 2, 4] : memref<?x8xf32> into memref<?x2x2x4xf32>
  return %e : memref<?x2x2x4xf32>
}

// RUN: moe-opt %s --split-input-file --moe-fold-constant-layouts | FileCheck %s
// RUN: moe-opt %s --split-input-file --moe-fold-constant-layouts="max-elements=4" | FileCheck %s --check-prefix=LIMIT

// A transpose of a constant is evaluated: the weight is stored transposed.
// CHECK-LABEL: func.func @transposed_weight
// CHECK-NOT:     linalg.transpose
// CHECK-NOT:     linalg.generic
// CHECK:         %[[W:.+]] = arith.constant dense<{{\[\[\[}}1.000000e+00, 4.000000e+00], [2.000000e+00, 5.000000e+00], [3.000000e+00, 6.000000e+00]]]> : tensor<1x3x2xf32>
// CHECK:         return %[[W]]
// Above the size limit it is left for run time.
// LIMIT-LABEL: func.func @transposed_weight
// LIMIT:         linalg.transpose
func.func @transposed_weight() -> tensor<1x3x2xf32> {
  %w = arith.constant dense<[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]]> : tensor<1x2x3xf32>
  %e = tensor.empty() : tensor<1x3x2xf32>
  %t = linalg.transpose ins(%w : tensor<1x2x3xf32>) outs(%e : tensor<1x3x2xf32>) permutation = [0, 2, 1]
  return %t : tensor<1x3x2xf32>
}

// -----

// A transpose of a value computed at run time stays.
// CHECK-LABEL: func.func @dynamic_input
// CHECK:         linalg.transpose
func.func @dynamic_input(%x: tensor<2x3xf32>) -> tensor<3x2xf32> {
  %e = tensor.empty() : tensor<3x2xf32>
  %t = linalg.transpose ins(%x : tensor<2x3xf32>) outs(%e : tensor<3x2xf32>) permutation = [1, 0]
  return %t : tensor<3x2xf32>
}

// RUN: moe-opt %s --moe-outline-weights="min-elements=4" | FileCheck %s

// Several entries (every public function: @main, and @prefill and @decode
// for generation) share the weight records: a value both use is one record,
// and each entry takes an argument for each record it uses.
// CHECK: module attributes {moe.weights = [dense<{{.*}}> : tensor<2x4xf32>, dense<{{.*}}> : tensor<4xf32>, dense<{{.*}}> : tensor<8xf32>]}
// CHECK-LABEL: func.func @main(
// CHECK-SAME:    %{{.*}}: tensor<2x4xf32> {moe.weight = 0 : i64}, %{{.*}}: tensor<4xf32> {moe.weight = 1 : i64})
// CHECK-LABEL: func.func @decode(
// CHECK-SAME:    %{{.*}}: tensor<2x4xf32> {moe.weight = 0 : i64}, %{{.*}}: tensor<8xf32> {moe.weight = 2 : i64})
// CHECK-LABEL: func.func private @helper(
// CHECK:         arith.constant dense<[5.000000e+00, 6.000000e+00, 7.000000e+00, 8.000000e+00]>
func.func @main(%x: tensor<2x4xf32>) -> (tensor<2x4xf32>, tensor<4xf32>) {
  %w = arith.constant dense<[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 9.0]]> : tensor<2x4xf32>
  %u = arith.constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
  %y = arith.addf %x, %w : tensor<2x4xf32>
  return %y, %u : tensor<2x4xf32>, tensor<4xf32>
}
func.func @decode(%x: tensor<2x4xf32>) -> (tensor<2x4xf32>, tensor<8xf32>) {
  %w = arith.constant dense<[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 9.0]]> : tensor<2x4xf32>
  %v = arith.constant dense<[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]> : tensor<8xf32>
  %y = arith.mulf %x, %w : tensor<2x4xf32>
  return %y, %v : tensor<2x4xf32>, tensor<8xf32>
}
func.func private @helper() -> tensor<4xf32> {
  %h = arith.constant dense<[5.0, 6.0, 7.0, 8.0]> : tensor<4xf32>
  return %h : tensor<4xf32>
}

// RUN: moe-opt %s --moe-outline-weights="min-elements=4" | FileCheck %s

// Constants of at least 4 elements become trailing arguments in order; a
// constant used twice is one argument; small constants stay; a splat becomes
// a fill (one value, never expanded into the weight section).
// CHECK:       module attributes {moe.weights = [dense<[1.000000e+00, 2.000000e+00, 3.000000e+00, 4.000000e+00]> : tensor<4xf32>, dense<[1, 2, 3, 4, 5]> : tensor<5xi32>]}
// CHECK:       func.func @main(%[[X:.+]]: tensor<4xf32>, %[[W0:.+]]: tensor<4xf32> {moe.weight = 0 : i64}, %[[W1:.+]]: tensor<5xi32> {moe.weight = 1 : i64})
// CHECK-DAG:     %[[SMALL:.+]] = arith.constant dense<2.000000e+00> : tensor<2xf32>
// CHECK-DAG:     %[[SEVEN:.+]] = arith.constant 7.000000e+00 : f32
// CHECK:         %[[EMPTY:.+]] = tensor.empty() : tensor<1048576x1048576xf32>
// CHECK:         %[[BIG:.+]] = linalg.fill ins(%[[SEVEN]] : f32) outs(%[[EMPTY]] : tensor<1048576x1048576xf32>)
// CHECK:         arith.addf %[[X]], %[[W0]]
// CHECK:         arith.mulf %{{.*}}, %[[W0]]
// CHECK:         return {{.*}}, %[[W1]], %[[SMALL]], %[[BIG]]
func.func @main(%x: tensor<4xf32>) -> (tensor<4xf32>, tensor<5xi32>, tensor<2xf32>, tensor<1048576x1048576xf32>) {
  %w = arith.constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
  %ids = arith.constant dense<[1, 2, 3, 4, 5]> : tensor<5xi32>
  %small = arith.constant dense<2.0> : tensor<2xf32>
  %big = arith.constant dense<7.0> : tensor<1048576x1048576xf32>
  %a = arith.addf %x, %w : tensor<4xf32>
  %b = arith.mulf %a, %w : tensor<4xf32>
  return %b, %ids, %small, %big : tensor<4xf32>, tensor<5xi32>, tensor<2xf32>, tensor<1048576x1048576xf32>
}

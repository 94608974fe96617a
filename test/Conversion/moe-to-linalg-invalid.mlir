// RUN: moe-opt %s --convert-moe-to-linalg -verify-diagnostics

// A composite op left in the input is an error, not a crash.
func.func @composite(%x: tensor<4x8xf32>, %ws: tensor<2x8xf32>, %w1: tensor<2x8x4xf32>, %w2: tensor<2x4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'moe.ffn' has no lowering here; composite ops need moe-decompose first}}
  %y = moe.ffn %x, %ws, %w1, %w2 gate<sigmoid> act<relu> {k = 1 : i64} : (tensor<4x8xf32>, tensor<2x8xf32>, tensor<2x8x4xf32>, tensor<2x4x8xf32>) -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}

// RUN: moe-opt %s --moe-decompose --split-input-file | FileCheck %s
// RUN: moe-opt %s --pass-pipeline="builtin.module(moe-decompose)" --split-input-file | FileCheck %s

// The named pipeline removes every composite op, on adversarial but valid
// input: zero-sized dims, K = E, E = 1, dynamic everything but the expert
// count. The result must verify (moe-opt verifies after each pass).

// CHECK-LABEL: func @all_layers
// CHECK-NOT:     moe.ffn
// CHECK-NOT:     moe.tree_ffn
// CHECK-NOT:     moe.switchhead
// CHECK-NOT:     moe.mot{{ }}
// CHECK-DAG:     moe.route
// CHECK-DAG:     moe.tree_route
// CHECK-DAG:     moe.attention
// CHECK-DAG:     moe.mot_mix
// CHECK-DAG:     moe.mot_unmix
// CHECK:         return
func.func @all_layers(%x: tensor<2x4x16xf32>, %x2: tensor<8x16xf32>, %ws: tensor<4x16xf32>, %w1: tensor<4x16x8xf32>,
                      %w2: tensor<4x8x16xf32>, %wg: tensor<16x2xf32>, %wt: tensor<7x16x16xf32>,
                      %wq: tensor<16x8xf32>, %wv: tensor<4x16x4xf32>, %wo: tensor<4x4x16xf32>, %sel: tensor<4x16xf32>,
                      %wc: tensor<16x4xf32>) -> (tensor<8x16xf32>, tensor<8x16xf32>, tensor<2x4x16xf32>, tensor<2x4x16xf32>) {
  %a = moe.ffn %x2, %ws, %w1, %w2 gate<sigmoid> act<relu> {k = 2 : i64}
      : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x16x8xf32>, tensor<4x8x16xf32>) -> tensor<8x16xf32>
  %b = moe.tree_ffn %a, %wg, %wt mode<path> act<relu> : (tensor<8x16xf32>, tensor<16x2xf32>, tensor<7x16x16xf32>) -> tensor<8x16xf32>
  %c = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %sel sel_v(%sel) {num_heads = 2 : i64, k = 1 : i64}
      : (tensor<2x4x16xf32>, tensor<2x4x16xf32>, tensor<2x4x16xf32>, tensor<16x8xf32>, tensor<16x8xf32>,
         tensor<4x16x4xf32>, tensor<4x4x16xf32>, tensor<4x16xf32>, tensor<4x16xf32>) -> tensor<2x4x16xf32>
  %d = moe.mot %c, %wc, %w1, %w2 mode<continuous> act<relu> {group_size = 2 : i64}
      : (tensor<2x4x16xf32>, tensor<16x4xf32>, tensor<4x16x8xf32>, tensor<4x8x16xf32>) -> tensor<2x4x16xf32>
  return %a, %b, %c, %d : tensor<8x16xf32>, tensor<8x16xf32>, tensor<2x4x16xf32>, tensor<2x4x16xf32>
}

// -----

// Zero tokens and K = E.
// CHECK-LABEL: func @zero_tokens_k_equals_e
// CHECK:         moe.route %{{.*}} gate<softmax> {k = 4 : i64} : tensor<0x4xf32> -> tensor<0x4xf32>, tensor<0x4xi32>
// CHECK:         moe.dispatch %{{.*}} {num_experts = 4 : i64} : tensor<0x4xi32> -> tensor<5xi32>, tensor<0xi32>
// CHECK:         moe.grouped_matmul {{.*}} -> tensor<0x8xf32>
// CHECK:         moe.grouped_matmul {{.*}} -> tensor<0x16xf32>
func.func @zero_tokens_k_equals_e(%x: tensor<0x16xf32>, %ws: tensor<4x16xf32>, %w1: tensor<4x16x8xf32>,
                                  %w2: tensor<4x8x16xf32>) -> tensor<0x16xf32> {
  %y = moe.ffn %x, %ws, %w1, %w2 gate<softmax> act<relu> {k = 4 : i64}
      : (tensor<0x16xf32>, tensor<4x16xf32>, tensor<4x16x8xf32>, tensor<4x8x16xf32>) -> tensor<0x16xf32>
  return %y : tensor<0x16xf32>
}

// -----

// E = K = 1 everywhere, zero-width model dims.
// CHECK-LABEL: func @single_expert_zero_width
// CHECK:         moe.route %{{.*}} gate<sigmoid> {k = 1 : i64} : tensor<3x1xf32> -> tensor<3x1xf32>, tensor<3x1xi32>
// CHECK:         moe.dispatch %{{.*}} {num_experts = 1 : i64} : tensor<3x1xi32> -> tensor<2xi32>, tensor<3xi32>
// CHECK:         moe.grouped_matmul {{.*}} -> tensor<3x0xf32>
func.func @single_expert_zero_width(%x: tensor<3x0xf32>, %ws: tensor<1x0xf32>, %w1: tensor<1x0x5xf32>,
                                    %w2: tensor<1x5x0xf32>) -> tensor<3x0xf32> {
  %y = moe.ffn %x, %ws, %w1, %w2 gate<sigmoid> act<relu> {k = 1 : i64}
      : (tensor<3x0xf32>, tensor<1x0xf32>, tensor<1x0x5xf32>, tensor<1x5x0xf32>) -> tensor<3x0xf32>
  return %y : tensor<3x0xf32>
}

// -----

// Dynamic everything but the expert counts, in all four layers.
// CHECK-LABEL: func @dynamic_everything
// CHECK-NOT:     moe.ffn
// CHECK-NOT:     moe.tree_ffn
// CHECK-NOT:     moe.switchhead
// CHECK-NOT:     moe.mot{{ }}
// CHECK:         moe.grouped_matmul {{.*}} -> tensor<?x?xf32>
// CHECK:         moe.mot_unmix {{.*}} -> tensor<?x?x?xf32>
func.func @dynamic_everything(%x: tensor<?x?x?xf32>, %x2: tensor<?x?xf32>, %ws: tensor<?x?xf32>,
                              %w1: tensor<?x?x?xf32>, %w2: tensor<3x?x?xf32>, %wg: tensor<?x1xf32>,
                              %wt: tensor<?x?x?xf32>, %wq: tensor<?x?xf32>, %wv: tensor<6x?x?xf32>,
                              %wo: tensor<?x?x?xf32>, %sel: tensor<?x?xf32>, %wc: tensor<?x?xf32>)
    -> (tensor<?x?xf32>, tensor<?x?xf32>, tensor<?x?x?xf32>, tensor<?x?x?xf32>) {
  %a = moe.ffn %x2, %ws, %w1, %w2 gate<topk_softmax> act<silu> {k = 3 : i64}
      : (tensor<?x?xf32>, tensor<?x?xf32>, tensor<?x?x?xf32>, tensor<3x?x?xf32>) -> tensor<?x?xf32>
  %b = moe.tree_ffn %x2, %wg, %wt mode<flat> act<gelu> : (tensor<?x?xf32>, tensor<?x1xf32>, tensor<?x?x?xf32>) -> tensor<?x?xf32>
  %c = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %sel sel_v(%sel) {num_heads = 3 : i64, k = 2 : i64, rotate_fraction = 0.25 : f64}
      : (tensor<?x?x?xf32>, tensor<?x?x?xf32>, tensor<?x?x?xf32>, tensor<?x?xf32>, tensor<?x?xf32>,
         tensor<6x?x?xf32>, tensor<?x?x?xf32>, tensor<?x?xf32>, tensor<?x?xf32>) -> tensor<?x?x?xf32>
  %d = moe.mot %x, %wc, %w1, %w2 mode<discrete> act<relu> {group_size = 1 : i64}
      : (tensor<?x?x?xf32>, tensor<?x?xf32>, tensor<?x?x?xf32>, tensor<3x?x?xf32>) -> tensor<?x?x?xf32>
  return %a, %b, %c, %d : tensor<?x?xf32>, tensor<?x?xf32>, tensor<?x?x?xf32>, tensor<?x?x?xf32>
}

// RUN: moe-opt %s | moe-opt | FileCheck %s
// RUN: moe-opt %s --mlir-print-op-generic | moe-opt | FileCheck %s

// Round-trip of every moe op in its variants: static and dynamic dims, every
// gate, activation and mode, optional operands present and absent.

// CHECK-LABEL: func @route
func.func @route(%s: tensor<?x8xf32>, %h: tensor<5x12xbf16>, %d: tensor<?x?xf64>) {
  // CHECK: moe.route %{{.*}} gate<sigmoid> {k = 2 : i64} : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  %w0, %i0 = moe.route %s gate<sigmoid> {k = 2 : i64} : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  // CHECK: moe.route %{{.*}} gate<softmax> {k = 8 : i64} : tensor<?x8xf32> -> tensor<?x8xf32>, tensor<?x8xi64>
  %w1, %i1 = moe.route %s gate<softmax> {k = 8 : i64} : tensor<?x8xf32> -> tensor<?x8xf32>, tensor<?x8xi64>
  // CHECK: moe.route %{{.*}} gate<topk_softmax> {groups = 3 : i64, k = 1 : i64} : tensor<5x12xbf16> -> tensor<5x3xbf16>, tensor<5x3xi32>
  %w2, %i2 = moe.route %h gate<topk_softmax> {groups = 3 : i64, k = 1 : i64} : tensor<5x12xbf16> -> tensor<5x3xbf16>, tensor<5x3xi32>
  // CHECK: moe.route %{{.*}} gate<sigmoid> {k = 3 : i64} : tensor<?x?xf64> -> tensor<?x?xf64>, tensor<?x?xi32>
  %w3, %i3 = moe.route %d gate<sigmoid> {k = 3 : i64} : tensor<?x?xf64> -> tensor<?x?xf64>, tensor<?x?xi32>
  return
}

// CHECK-LABEL: func @switch_route
func.func @switch_route(%s: tensor<16x4xf32>, %d: tensor<?x?xf16>) {
  // CHECK: moe.switch_route %{{.*}} {capacity_factor = 1.250000e+00 : f64} : tensor<16x4xf32> -> tensor<16x1xf32>, tensor<16x1xi32>, tensor<16xi1>
  %w, %i, %k = moe.switch_route %s {capacity_factor = 1.25 : f64} : tensor<16x4xf32> -> tensor<16x1xf32>, tensor<16x1xi32>, tensor<16xi1>
  // CHECK: moe.switch_route %{{.*}} {capacity_factor = 0x7FF0000000000000 : f64} : tensor<?x?xf16> -> tensor<?x1xf16>, tensor<?x1xi64>, tensor<?xi1>
  %w1, %i1, %k1 = moe.switch_route %d {capacity_factor = 0x7FF0000000000000 : f64} : tensor<?x?xf16> -> tensor<?x1xf16>, tensor<?x1xi64>, tensor<?xi1>
  return
}

// CHECK-LABEL: func @tree_route
func.func @tree_route(%u: tensor<?x3xf32>) {
  // CHECK: moe.tree_route %{{.*}} mode<path> : tensor<?x3xf32> -> tensor<?x4xf32>, tensor<?x4xi32>
  %w0, %i0 = moe.tree_route %u mode<path> : tensor<?x3xf32> -> tensor<?x4xf32>, tensor<?x4xi32>
  // CHECK: moe.tree_route %{{.*}} mode<flat> : tensor<?x3xf32> -> tensor<?x1xf32>, tensor<?x1xi32>
  %w1, %i1 = moe.tree_route %u mode<flat> : tensor<?x3xf32> -> tensor<?x1xf32>, tensor<?x1xi32>
  return
}

// CHECK-LABEL: func @dispatch
func.func @dispatch(%ids: tensor<?x2xi32>, %s: tensor<4x3xi64>, %z: tensor<0x2xi32>) {
  // CHECK: moe.dispatch %{{.*}} {num_experts = 8 : i64} : tensor<?x2xi32> -> tensor<9xi32>, tensor<?xi32>
  %o0, %p0 = moe.dispatch %ids {num_experts = 8 : i64} : tensor<?x2xi32> -> tensor<9xi32>, tensor<?xi32>
  // CHECK: moe.dispatch %{{.*}} {num_experts = 1 : i64} : tensor<4x3xi64> -> tensor<2xi64>, tensor<12xi64>
  %o1, %p1 = moe.dispatch %s {num_experts = 1 : i64} : tensor<4x3xi64> -> tensor<2xi64>, tensor<12xi64>
  // CHECK: moe.dispatch %{{.*}} {num_experts = 4 : i64} : tensor<0x2xi32> -> tensor<?xi32>, tensor<0xi32>
  %o2, %p2 = moe.dispatch %z {num_experts = 4 : i64} : tensor<0x2xi32> -> tensor<?xi32>, tensor<0xi32>
  return
}

// CHECK-LABEL: func @grouped_matmul
func.func @grouped_matmul(%x: tensor<?x64xf32>, %w1: tensor<8x64x128xf32>, %h: tensor<?x128xf32>,
                          %w2: tensor<8x128x64xf32>, %off: tensor<9xi32>, %perm: tensor<?xi32>,
                          %sw: tensor<?x2xf32>) {
  // CHECK: moe.grouped_matmul %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : (tensor<?x64xf32>, tensor<8x64x128xf32>, tensor<9xi32>, tensor<?xi32>) -> tensor<?x128xf32>
  %y = moe.grouped_matmul %x, %w1, %off, %perm : (tensor<?x64xf32>, tensor<8x64x128xf32>, tensor<9xi32>, tensor<?xi32>) -> tensor<?x128xf32>
  // CHECK: moe.grouped_matmul %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} weights(%{{.*}}) : (tensor<?x128xf32>, tensor<8x128x64xf32>, tensor<9xi32>, tensor<?xi32>, tensor<?x2xf32>) -> tensor<?x64xf32>
  %o = moe.grouped_matmul %h, %w2, %off, %perm weights(%sw) : (tensor<?x128xf32>, tensor<8x128x64xf32>, tensor<9xi32>, tensor<?xi32>, tensor<?x2xf32>) -> tensor<?x64xf32>
  return
}

// Expert weights in column panels, with and without a tail.
// CHECK-LABEL: func @unpack_panels
func.func @unpack_panels(%p: tensor<8x6x128x64xf32>, %t: tensor<8x128x28xf32>,
                         %t2: tensor<8x128x90xf32>,
                         %q: tensor<2x2x5x3xbf16>) {
  // CHECK: moe.unpack_panels %{{.*}}, %{{.*}} : (tensor<8x6x128x64xf32>, tensor<8x128x28xf32>) -> tensor<8x128x412xf32>
  %w = moe.unpack_panels %p, %t : (tensor<8x6x128x64xf32>, tensor<8x128x28xf32>) -> tensor<8x128x412xf32>
  // CHECK: moe.unpack_panels %{{.*}} : (tensor<2x2x5x3xbf16>) -> tensor<2x5x6xbf16>
  %v = moe.unpack_panels %q : (tensor<2x2x5x3xbf16>) -> tensor<2x5x6xbf16>
  // A tail wider than a panel.
  // CHECK: moe.unpack_panels %{{.*}}, %{{.*}} : (tensor<8x6x128x64xf32>, tensor<8x128x90xf32>) -> tensor<8x128x474xf32>
  %u = moe.unpack_panels %p, %t2 : (tensor<8x6x128x64xf32>, tensor<8x128x90xf32>) -> tensor<8x128x474xf32>
  return
}

// The epilogue (bias, activation) and the sorted layout.
// CHECK-LABEL: func @grouped_matmul_epilogue
func.func @grouped_matmul_epilogue(%x: tensor<?x64xf32>, %w1: tensor<8x64x128xf32>, %b1: tensor<8x128xf32>,
                                   %w2: tensor<8x128x64xf32>, %b2: tensor<8x64xf32>, %off: tensor<9xi32>,
                                   %perm: tensor<?xi32>, %sw: tensor<?x2xf32>) {
  // CHECK: %[[H:.+]] = moe.grouped_matmul %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} bias(%{{.*}}) act<silu> {sorted_result} : (tensor<?x64xf32>, tensor<8x64x128xf32>, tensor<9xi32>, tensor<?xi32>, tensor<8x128xf32>) -> tensor<?x128xf32>
  %h = moe.grouped_matmul %x, %w1, %off, %perm bias(%b1) act<silu> {sorted_result} : (tensor<?x64xf32>, tensor<8x64x128xf32>, tensor<9xi32>, tensor<?xi32>, tensor<8x128xf32>) -> tensor<?x128xf32>
  // CHECK: moe.grouped_matmul %[[H]], %{{.*}}, %{{.*}}, %{{.*}} weights(%{{.*}}) bias(%{{.*}}) {sorted_input} : (tensor<?x128xf32>, tensor<8x128x64xf32>, tensor<9xi32>, tensor<?xi32>, tensor<?x2xf32>, tensor<8x64xf32>) -> tensor<?x64xf32>
  %o = moe.grouped_matmul %h, %w2, %off, %perm weights(%sw) bias(%b2) {sorted_input} : (tensor<?x128xf32>, tensor<8x128x64xf32>, tensor<9xi32>, tensor<?xi32>, tensor<?x2xf32>, tensor<8x64xf32>) -> tensor<?x64xf32>
  // CHECK: moe.grouped_matmul %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} act<relu> :
  %r = moe.grouped_matmul %x, %w1, %off, %perm act<relu> : (tensor<?x64xf32>, tensor<8x64x128xf32>, tensor<9xi32>, tensor<?xi32>) -> tensor<?x128xf32>
  return
}

// CHECK-LABEL: func @grouped_matmul_static
func.func @grouped_matmul_static(%x: tensor<6x40xf32>, %w: tensor<7x40x24xf32>, %off: tensor<8xi64>,
                                 %perm: tensor<18xi64>, %sw: tensor<6x3xf32>) {
  // CHECK: -> tensor<18x24xf32>
  %y = moe.grouped_matmul %x, %w, %off, %perm : (tensor<6x40xf32>, tensor<7x40x24xf32>, tensor<8xi64>, tensor<18xi64>) -> tensor<18x24xf32>
  // CHECK: -> tensor<6x24xf32>
  %o = moe.grouped_matmul %x, %w, %off, %perm weights(%sw) : (tensor<6x40xf32>, tensor<7x40x24xf32>, tensor<8xi64>, tensor<18xi64>, tensor<6x3xf32>) -> tensor<6x24xf32>
  return
}

// CHECK-LABEL: func @combine
func.func @combine(%y: tensor<?x2x64xf32>, %w: tensor<?x2xf32>) -> tensor<?x64xf32> {
  // CHECK: moe.combine %{{.*}}, %{{.*}} : (tensor<?x2x64xf32>, tensor<?x2xf32>) -> tensor<?x64xf32>
  %o = moe.combine %y, %w : (tensor<?x2x64xf32>, tensor<?x2xf32>) -> tensor<?x64xf32>
  return %o : tensor<?x64xf32>
}

// CHECK-LABEL: func @mot
func.func @mot(%x: tensor<8x?x32xf32>, %l: tensor<8x?x6xf32>) {
  // CHECK: moe.mot_mix %{{.*}}, %{{.*}} mode<continuous> {group_size = 4 : i64, temperature = 5.000000e-01 : f64} : (tensor<8x?x32xf32>, tensor<8x?x6xf32>) -> tensor<?x2x6x32xf32>, tensor<?x2x4x6xf32>
  %z, %m = moe.mot_mix %x, %l mode<continuous> {group_size = 4 : i64, temperature = 0.5 : f64} : (tensor<8x?x32xf32>, tensor<8x?x6xf32>) -> tensor<?x2x6x32xf32>, tensor<?x2x4x6xf32>
  // CHECK: moe.mot_mix %{{.*}}, %{{.*}} mode<discrete> {group_size = 8 : i64} : (tensor<8x?x32xf32>, tensor<8x?x6xf32>) -> tensor<?x1x6x32xf32>, tensor<?x1x8x6xf32>
  %z1, %m1 = moe.mot_mix %x, %l mode<discrete> {group_size = 8 : i64} : (tensor<8x?x32xf32>, tensor<8x?x6xf32>) -> tensor<?x1x6x32xf32>, tensor<?x1x8x6xf32>
  // CHECK: moe.mot_unmix %{{.*}}, %{{.*}} : (tensor<?x2x6x32xf32>, tensor<?x2x4x6xf32>) -> tensor<8x?x32xf32>
  %o = moe.mot_unmix %z, %m : (tensor<?x2x6x32xf32>, tensor<?x2x4x6xf32>) -> tensor<8x?x32xf32>
  return
}

// CHECK-LABEL: func @attention
func.func @attention(%q: tensor<2x4x?x16xf32>, %k: tensor<2x4x?x16xf32>, %v: tensor<2x4x?x8xf32>,
                     %pk: tensor<2x4x?x16xf32>, %pv: tensor<2x4x?x8xf32>) {
  // CHECK: moe.attention %{{.*}}, %{{.*}}, %{{.*}} {causal} : (tensor<2x4x?x16xf32>, tensor<2x4x?x16xf32>, tensor<2x4x?x8xf32>) -> tensor<2x4x?x8xf32>
  %o = moe.attention %q, %k, %v {causal} : (tensor<2x4x?x16xf32>, tensor<2x4x?x16xf32>, tensor<2x4x?x8xf32>) -> tensor<2x4x?x8xf32>
  // CHECK: moe.attention %{{.*}}, %{{.*}}, %{{.*}} {scale = 1.250000e-01 : f64} :
  %o1 = moe.attention %q, %k, %v {scale = 0.125 : f64} : (tensor<2x4x?x16xf32>, tensor<2x4x?x16xf32>, tensor<2x4x?x8xf32>) -> tensor<2x4x?x8xf32>
  // CHECK: moe.attention %{{.*}}, %{{.*}}, %{{.*}} past(%{{.*}}, %{{.*}}) {causal} : (tensor<2x4x?x16xf32>, tensor<2x4x?x16xf32>, tensor<2x4x?x8xf32>, tensor<2x4x?x16xf32>, tensor<2x4x?x8xf32>) -> tensor<2x4x?x8xf32>
  %o2 = moe.attention %q, %k, %v past(%pk, %pv) {causal} : (tensor<2x4x?x16xf32>, tensor<2x4x?x16xf32>, tensor<2x4x?x8xf32>, tensor<2x4x?x16xf32>, tensor<2x4x?x8xf32>) -> tensor<2x4x?x8xf32>
  return
}

// CHECK-LABEL: func @attention_sinks
func.func @attention_sinks(%q: tensor<2x4x?x16xf32>, %k: tensor<2x4x?x16xf32>, %v: tensor<2x4x?x8xf32>,
                           %m: tensor<1x1x?x?xf32>, %s: tensor<4xf32>, %sd: tensor<?xf32>) -> (tensor<2x4x?x8xf32>, tensor<2x4x?x8xf32>) {
  // CHECK: moe.attention %{{.*}}, %{{.*}}, %{{.*}} mask(%{{.*}}) sinks(%{{.*}}) {scale = 2.500000e-01 : f64} : (tensor<2x4x?x16xf32>, tensor<2x4x?x16xf32>, tensor<2x4x?x8xf32>, tensor<1x1x?x?xf32>, tensor<4xf32>) -> tensor<2x4x?x8xf32>
  %o = moe.attention %q, %k, %v mask(%m) sinks(%s) {scale = 0.25 : f64} : (tensor<2x4x?x16xf32>, tensor<2x4x?x16xf32>, tensor<2x4x?x8xf32>, tensor<1x1x?x?xf32>, tensor<4xf32>) -> tensor<2x4x?x8xf32>
  // CHECK: moe.attention %{{.*}}, %{{.*}}, %{{.*}} sinks(%{{.*}}) {causal} : (tensor<2x4x?x16xf32>, tensor<2x4x?x16xf32>, tensor<2x4x?x8xf32>, tensor<?xf32>) -> tensor<2x4x?x8xf32>
  %o1 = moe.attention %q, %k, %v sinks(%sd) {causal} : (tensor<2x4x?x16xf32>, tensor<2x4x?x16xf32>, tensor<2x4x?x8xf32>, tensor<?xf32>) -> tensor<2x4x?x8xf32>
  return %o, %o1 : tensor<2x4x?x8xf32>, tensor<2x4x?x8xf32>
}

// CHECK-LABEL: func @attention_mask
func.func @attention_mask(%q: tensor<2x4x?x16xf32>, %k: tensor<2x4x?x16xf32>, %v: tensor<2x4x?x8xf32>,
                          %m: tensor<1x1x?x?xf32>, %mb: tensor<2x4x?x?xf32>) {
  // CHECK: moe.attention %{{.*}}, %{{.*}}, %{{.*}} mask(%{{.*}}) {scale = 1.000000e+00 : f64} : (tensor<2x4x?x16xf32>, tensor<2x4x?x16xf32>, tensor<2x4x?x8xf32>, tensor<1x1x?x?xf32>) -> tensor<2x4x?x8xf32>
  %o = moe.attention %q, %k, %v mask(%m) {scale = 1.0 : f64} : (tensor<2x4x?x16xf32>, tensor<2x4x?x16xf32>, tensor<2x4x?x8xf32>, tensor<1x1x?x?xf32>) -> tensor<2x4x?x8xf32>
  // CHECK: moe.attention %{{.*}}, %{{.*}}, %{{.*}} mask(%{{.*}}) {causal} :
  %o1 = moe.attention %q, %k, %v mask(%mb) {causal} : (tensor<2x4x?x16xf32>, tensor<2x4x?x16xf32>, tensor<2x4x?x8xf32>, tensor<2x4x?x?xf32>) -> tensor<2x4x?x8xf32>
  // CHECK: moe.attention %{{.*}}, %{{.*}}, %{{.*}} mask(%{{.*}}) {scale = 1.000000e+00 : f64, zero_nan_probs} :
  %o2 = moe.attention %q, %k, %v mask(%m) {scale = 1.0 : f64, zero_nan_probs} : (tensor<2x4x?x16xf32>, tensor<2x4x?x16xf32>, tensor<2x4x?x8xf32>, tensor<1x1x?x?xf32>) -> tensor<2x4x?x8xf32>
  return
}

// A padding mask [B, 1, 1, S]: a static 1 in T (and S) broadcasts.
// CHECK-LABEL: func @attention_padding_mask
func.func @attention_padding_mask(%q: tensor<2x4x5x16xf32>, %k: tensor<2x4x7x16xf32>,
                                  %m: tensor<2x1x1x7xf32>, %c: tensor<1x1x5x1xf32>) {
  // CHECK: mask(%{{.*}}) : (tensor<2x4x5x16xf32>, tensor<2x4x7x16xf32>, tensor<2x4x7x16xf32>, tensor<2x1x1x7xf32>)
  %o = moe.attention %q, %k, %k mask(%m) : (tensor<2x4x5x16xf32>, tensor<2x4x7x16xf32>, tensor<2x4x7x16xf32>, tensor<2x1x1x7xf32>) -> tensor<2x4x5x16xf32>
  // CHECK: mask(%{{.*}}) : (tensor<2x4x5x16xf32>, tensor<2x4x7x16xf32>, tensor<2x4x7x16xf32>, tensor<1x1x5x1xf32>)
  %o1 = moe.attention %q, %k, %k mask(%c) : (tensor<2x4x5x16xf32>, tensor<2x4x7x16xf32>, tensor<2x4x7x16xf32>, tensor<1x1x5x1xf32>) -> tensor<2x4x5x16xf32>
  return
}

// CHECK-LABEL: func @rope
func.func @rope(%x: tensor<2x?x4x16xf32>, %d: tensor<?x?x?x?xf32>, %y: tensor<1x4x2x82xf32>) {
  // CHECK: moe.rope %{{.*}} : tensor<2x?x4x16xf32> -> tensor<2x?x4x16xf32>
  %r = moe.rope %x : tensor<2x?x4x16xf32> -> tensor<2x?x4x16xf32>
  // CHECK: moe.rope %{{.*}} {base = 5.000000e+05 : f64, rotate_fraction = 1.000000e+00 : f64} : tensor<?x?x?x?xf32>
  %r1 = moe.rope %d {rotate_fraction = 1.0 : f64, base = 500000.0 : f64} : tensor<?x?x?x?xf32> -> tensor<?x?x?x?xf32>
  // An odd floor(dh * fraction) is valid: it is rounded down to even (the
  // published MoEUT-44M: 82 rotates 40).
  // CHECK: moe.rope %{{.*}} : tensor<1x4x2x82xf32> -> tensor<1x4x2x82xf32>
  %o = moe.rope %y : tensor<1x4x2x82xf32> -> tensor<1x4x2x82xf32>
  // Positions from an offset: a decode step after %p cached positions.
  // CHECK: moe.rope %{{.*}} offset(%{{.*}}) {rotate_fraction = 2.500000e-01 : f64} : tensor<2x?x4x16xf32>
  %p = arith.constant 7 : index
  %s = moe.rope %x offset(%p) {rotate_fraction = 0.25 : f64} : tensor<2x?x4x16xf32> -> tensor<2x?x4x16xf32>
  return
}

// CHECK-LABEL: func @ffn
func.func @ffn(%x: tensor<?x64xf32>, %ln: tensor<?x64xf32>, %wsel: tensor<8x64xf32>,
               %w1: tensor<8x64x128xf32>, %w2: tensor<8x128x64xf32>) {
  // CHECK: moe.ffn %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} gate<sigmoid> act<relu> {k = 2 : i64}
  %a = moe.ffn %x, %wsel, %w1, %w2 gate<sigmoid> act<relu> {k = 2 : i64} : (tensor<?x64xf32>, tensor<8x64xf32>, tensor<8x64x128xf32>, tensor<8x128x64xf32>) -> tensor<?x64xf32>
  // CHECK: moe.ffn %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} selector(%{{.*}}) gate<topk_softmax> act<silu> {k = 8 : i64}
  %b = moe.ffn %x, %wsel, %w1, %w2 selector(%ln) gate<topk_softmax> act<silu> {k = 8 : i64} : (tensor<?x64xf32>, tensor<8x64xf32>, tensor<8x64x128xf32>, tensor<8x128x64xf32>, tensor<?x64xf32>) -> tensor<?x64xf32>
  // CHECK: moe.ffn %{{.*}} gate<softmax> act<gelu> {capacity_factor = 1.000000e+00 : f64, k = 1 : i64}
  %c = moe.ffn %x, %wsel, %w1, %w2 gate<softmax> act<gelu> {capacity_factor = 1.0 : f64, k = 1 : i64} : (tensor<?x64xf32>, tensor<8x64xf32>, tensor<8x64x128xf32>, tensor<8x128x64xf32>) -> tensor<?x64xf32>
  // CHECK: moe.ffn %{{.*}} gate<softmax> act<identity> {k = 1 : i64}
  %d = moe.ffn %x, %wsel, %w1, %w2 gate<softmax> act<identity> {k = 1 : i64} : (tensor<?x64xf32>, tensor<8x64xf32>, tensor<8x64x128xf32>, tensor<8x128x64xf32>) -> tensor<?x64xf32>
  return
}

// CHECK-LABEL: func @tree_ffn
func.func @tree_ffn(%h: tensor<?x32xf32>, %wg: tensor<32x2xf32>, %wp: tensor<7x32x16xf32>, %wf: tensor<4x32x16xf32>) {
  // CHECK: moe.tree_ffn %{{.*}}, %{{.*}}, %{{.*}} mode<path> act<relu>
  %a = moe.tree_ffn %h, %wg, %wp mode<path> act<relu> : (tensor<?x32xf32>, tensor<32x2xf32>, tensor<7x32x16xf32>) -> tensor<?x16xf32>
  // CHECK: moe.tree_ffn %{{.*}}, %{{.*}}, %{{.*}} mode<flat> act<identity>
  %b = moe.tree_ffn %h, %wg, %wf mode<flat> act<identity> : (tensor<?x32xf32>, tensor<32x2xf32>, tensor<4x32x16xf32>) -> tensor<?x16xf32>
  return
}

// CHECK-LABEL: func @switchhead
func.func @switchhead(%x: tensor<1x?x32xf32>, %wq: tensor<32x16xf32>, %wv: tensor<8x32x8xf32>,
                      %wo: tensor<8x8x32xf32>, %s: tensor<8x32xf32>, %wv1: tensor<2x32x8xf32>,
                      %wo1: tensor<2x8x32xf32>, %s1: tensor<2x32xf32>) {
  // CHECK: moe.switchhead %{{.*}} sel_v(%{{.*}}) {k = 2 : i64, num_heads = 2 : i64}
  %a = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %s sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<1x?x32xf32>, tensor<1x?x32xf32>, tensor<1x?x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>,
         tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<1x?x32xf32>
  // E = 1 without a value gate.
  // CHECK: moe.switchhead %{{.*}} {causal = false, k = 1 : i64, num_heads = 2 : i64, rotate_fraction = 0.000000e+00 : f64}
  %b = moe.switchhead %x, %x, %x, %wq, %wq, %wv1, %wo1, %s1 {num_heads = 2 : i64, k = 1 : i64, causal = false, rotate_fraction = 0.0 : f64}
      : (tensor<1x?x32xf32>, tensor<1x?x32xf32>, tensor<1x?x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>,
         tensor<2x32x8xf32>, tensor<2x8x32xf32>, tensor<2x32xf32>) -> tensor<1x?x32xf32>
  return
}

// CHECK-LABEL: func @mot_layer
func.func @mot_layer(%x: tensor<8x?x32xf32>, %wc: tensor<32x6xf32>, %w1: tensor<6x32x16xf32>, %w2: tensor<6x16x32xf32>) {
  // CHECK: moe.mot %{{.*}} mode<continuous> act<relu> {group_size = 4 : i64}
  %a = moe.mot %x, %wc, %w1, %w2 mode<continuous> act<relu> {group_size = 4 : i64} : (tensor<8x?x32xf32>, tensor<32x6xf32>, tensor<6x32x16xf32>, tensor<6x16x32xf32>) -> tensor<8x?x32xf32>
  // CHECK: moe.mot %{{.*}} mode<discrete> act<relu> {group_size = 8 : i64, temperature = 2.000000e+00 : f64}
  %b = moe.mot %x, %wc, %w1, %w2 mode<discrete> act<relu> {group_size = 8 : i64, temperature = 2.0 : f64} : (tensor<8x?x32xf32>, tensor<32x6xf32>, tensor<6x32x16xf32>, tensor<6x16x32xf32>) -> tensor<8x?x32xf32>
  return
}

// Absurd static sizes whose products overflow int64 are left to run time,
// not folded into a wrapped value.
// CHECK-LABEL: func @huge_dispatch
func.func @huge_dispatch(%ids: tensor<4294967296x4294967296xi32>) {
  // CHECK: moe.dispatch %{{.*}} {num_experts = 2 : i64} : tensor<4294967296x4294967296xi32> -> tensor<3xi32>, tensor<?xi32>
  %o, %p = moe.dispatch %ids {num_experts = 2 : i64} : tensor<4294967296x4294967296xi32> -> tensor<3xi32>, tensor<?xi32>
  return
}

// CHECK-LABEL: func @switchhead_cached
func.func @switchhead_cached(%x: tensor<2x1x32xf32>, %wq: tensor<32x16xf32>, %wv: tensor<8x32x8xf32>,
                             %wo: tensor<8x8x32xf32>, %s: tensor<8x32xf32>,
                             %pk: tensor<2x2x?x8xf32>, %pv: tensor<2x2x?x8xf32>) {
  // CHECK: moe.switchhead_cached %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} past(%{{.*}}, %{{.*}}) sel_v(%{{.*}}) {k = 2 : i64, num_heads = 2 : i64}
  %y, %nk, %nv = moe.switchhead_cached %x, %x, %x, %wq, %wq, %wv, %wo, %s past(%pk, %pv) sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<2x1x32xf32>, tensor<2x1x32xf32>, tensor<2x1x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<8x32x8xf32>,
         tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<2x2x?x8xf32>, tensor<2x2x?x8xf32>, tensor<8x32xf32>)
      -> (tensor<2x1x32xf32>, tensor<2x2x1x8xf32>, tensor<2x2x1x8xf32>)
  return
}

// RUN: moe-opt %s -split-input-file -verify-diagnostics

// One case per verifier message. Each function is named after the constraint
// it violates (docs/spec.md): @<op>_c<N>.

//===----------------------------------------------------------------------===//
// moe.route
//===----------------------------------------------------------------------===//

func.func @route_c1(%s: tensor<4x8x2xf32>) {
  // expected-error @+1 {{expected scores to have rank 2, got 3 (C1)}}
  %w, %i = moe.route %s gate<sigmoid> {k = 2 : i64} : tensor<4x8x2xf32> -> tensor<4x2xf32>, tensor<4x2xi32>
  return
}

// -----

func.func @route_c2_rows(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{expected weights dim 0 (N) to be 4 as in scores dim 0, got 5 (C2)}}
  %w, %i = moe.route %s gate<sigmoid> {k = 2 : i64} : tensor<4x8xf32> -> tensor<5x2xf32>, tensor<4x2xi32>
  return
}

// -----

func.func @route_c2_slots(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{expected ids dim 1 to be groups * k = 2, got 3 (C2)}}
  %w, %i = moe.route %s gate<sigmoid> {k = 2 : i64} : tensor<4x8xf32> -> tensor<4x2xf32>, tensor<4x3xi32>
  return
}


// -----

func.func @route_c2_overflow(%s: tensor<?x?xf32>) {
  // expected-error @+1 {{expected groups * k to fit in 64 bits, got groups = 4611686018427387904 and k = 4 (C2)}}
  %w, %i = moe.route %s gate<sigmoid> {k = 4 : i64, groups = 4611686018427387904 : i64} : tensor<?x?xf32> -> tensor<?x?xf32>, tensor<?x?xi32>
  return
}

// -----

func.func @route_c3(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{expected weights element type 'f16' to match scores element type 'f32' (C3)}}
  %w, %i = moe.route %s gate<sigmoid> {k = 2 : i64} : tensor<4x8xf32> -> tensor<4x2xf16>, tensor<4x2xi32>
  return
}

// -----

func.func @route_c4_groups(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{expected groups >= 1, got 0 (C4)}}
  %w, %i = moe.route %s gate<sigmoid> {k = 2 : i64, groups = 0 : i64} : tensor<4x8xf32> -> tensor<4x0xf32>, tensor<4x0xi32>
  return
}

// -----

func.func @route_c4_divides(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{expected groups = 3 to divide scores dim 1 = 8 (C4)}}
  %w, %i = moe.route %s gate<sigmoid> {k = 1 : i64, groups = 3 : i64} : tensor<4x8xf32> -> tensor<4x3xf32>, tensor<4x3xi32>
  return
}

// -----

func.func @route_c5_zero(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{expected k >= 1, got 0 (C5)}}
  %w, %i = moe.route %s gate<sigmoid> {k = 0 : i64} : tensor<4x8xf32> -> tensor<4x0xf32>, tensor<4x0xi32>
  return
}

// -----

func.func @route_c5_too_many(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{expected k <= E = 4, got k = 5 (C5)}}
  %w, %i = moe.route %s gate<sigmoid> {k = 5 : i64, groups = 2 : i64} : tensor<4x8xf32> -> tensor<4x10xf32>, tensor<4x10xi32>
  return
}


// -----

func.func @route_c5_negative(%s: tensor<4x8xf32>) {
  // expected-error @+1 {{expected k >= 1, got -1 (C5)}}
  %w, %i = moe.route %s gate<sigmoid> {k = -1 : i64} : tensor<4x8xf32> -> tensor<4x2xf32>, tensor<4x2xi32>
  return
}
// -----

func.func @route_types(%s: tensor<4x8xi32>) {
  // expected-error @+1 {{operand #0 must be ranked tensor of 16-bit float or bfloat16 type or 32-bit float or 64-bit float values}}
  %w, %i = moe.route %s gate<sigmoid> {k = 2 : i64} : tensor<4x8xi32> -> tensor<4x2xf32>, tensor<4x2xi32>
  return
}

// -----

func.func @route_bad_gate(%s: tensor<4x8xf32>) {
  // expected-error @+2 {{expected ::mlir::moe::GateKind to be one of: sigmoid, softmax, topk_softmax}}
  // expected-error @+1 {{failed to parse Moe_GateAttr parameter 'value'}}
  %w, %i = moe.route %s gate<relu> {k = 2 : i64} : tensor<4x8xf32> -> tensor<4x2xf32>, tensor<4x2xi32>
  return
}

//===----------------------------------------------------------------------===//
// moe.switch_route
//===----------------------------------------------------------------------===//

// -----

func.func @switch_route_c1(%s: tensor<16x4xf32>) {
  // expected-error @+1 {{expected kept to have rank 1, got 2 (C1)}}
  %w, %i, %k = moe.switch_route %s {capacity_factor = 1.0 : f64} : tensor<16x4xf32> -> tensor<16x1xf32>, tensor<16x1xi32>, tensor<16x1xi1>
  return
}

// -----

func.func @switch_route_c2_rows(%s: tensor<16x4xf32>) {
  // expected-error @+1 {{expected kept dim 0 (N) to be 16 as in scores dim 0, got 8 (C2)}}
  %w, %i, %k = moe.switch_route %s {capacity_factor = 1.0 : f64} : tensor<16x4xf32> -> tensor<16x1xf32>, tensor<16x1xi32>, tensor<8xi1>
  return
}

// -----

func.func @switch_route_c2_slots(%s: tensor<16x4xf32>) {
  // expected-error @+1 {{expected weights dim 1 to be one slot = 1, got 2 (C2)}}
  %w, %i, %k = moe.switch_route %s {capacity_factor = 1.0 : f64} : tensor<16x4xf32> -> tensor<16x2xf32>, tensor<16x1xi32>, tensor<16xi1>
  return
}

// -----

func.func @switch_route_c3(%s: tensor<16x4xf32>) {
  // expected-error @+1 {{expected weights element type 'f64' to match scores element type 'f32' (C3)}}
  %w, %i, %k = moe.switch_route %s {capacity_factor = 1.0 : f64} : tensor<16x4xf32> -> tensor<16x1xf64>, tensor<16x1xi32>, tensor<16xi1>
  return
}

// -----

func.func @switch_route_c4(%s: tensor<16x4xf32>) {
  // expected-error @+1 {{expected capacity_factor > 0, got 0 (C4)}}
  %w, %i, %k = moe.switch_route %s {capacity_factor = 0.0 : f64} : tensor<16x4xf32> -> tensor<16x1xf32>, tensor<16x1xi32>, tensor<16xi1>
  return
}

// -----

func.func @switch_route_c4_nan(%s: tensor<16x4xf32>) {
  // expected-error @+1 {{expected capacity_factor > 0, got nan (C4)}}
  %w, %i, %k = moe.switch_route %s {capacity_factor = 0x7FF8000000000000 : f64} : tensor<16x4xf32> -> tensor<16x1xf32>, tensor<16x1xi32>, tensor<16xi1>
  return
}

//===----------------------------------------------------------------------===//
// moe.tree_route
//===----------------------------------------------------------------------===//

// -----

func.func @tree_route_c1(%u: tensor<3xf32>) {
  // expected-error @+1 {{expected gates to have rank 2, got 1 (C1)}}
  %w, %i = moe.tree_route %u mode<path> : tensor<3xf32> -> tensor<?x4xf32>, tensor<?x4xi32>
  return
}

// -----

func.func @tree_route_c2_dynamic(%u: tensor<4x?xf32>) {
  // expected-error @+1 {{expected a static tree depth in gates dim 1 (C2)}}
  %w, %i = moe.tree_route %u mode<path> : tensor<4x?xf32> -> tensor<4x?xf32>, tensor<4x?xi32>
  return
}

// -----

func.func @tree_route_c2_range(%u: tensor<4x31xf32>) {
  // expected-error @+1 {{expected the tree depth gates dim 1 in [1, 30], got 31 (C2)}}
  %w, %i = moe.tree_route %u mode<flat> : tensor<4x31xf32> -> tensor<4x1xf32>, tensor<4x1xi32>
  return
}

// -----

func.func @tree_route_c3_rows(%u: tensor<4x3xf32>) {
  // expected-error @+1 {{expected ids dim 0 (N) to be 4 as in gates dim 0, got 5 (C3)}}
  %w, %i = moe.tree_route %u mode<path> : tensor<4x3xf32> -> tensor<4x4xf32>, tensor<5x4xi32>
  return
}

// -----

func.func @tree_route_c3_slots(%u: tensor<4x3xf32>) {
  // expected-error @+1 {{expected weights dim 1 to be depth + 1 = 4, got 3 (C3)}}
  %w, %i = moe.tree_route %u mode<path> : tensor<4x3xf32> -> tensor<4x3xf32>, tensor<4x3xi32>
  return
}

// -----

func.func @tree_route_c4(%u: tensor<4x3xf32>) {
  // expected-error @+1 {{expected weights element type 'bf16' to match gates element type 'f32' (C4)}}
  %w, %i = moe.tree_route %u mode<flat> : tensor<4x3xf32> -> tensor<4x1xbf16>, tensor<4x1xi32>
  return
}

//===----------------------------------------------------------------------===//
// moe.dispatch
//===----------------------------------------------------------------------===//

// -----

func.func @dispatch_c1(%ids: tensor<8xi32>) {
  // expected-error @+1 {{expected ids to have rank 2, got 1 (C1)}}
  %o, %p = moe.dispatch %ids {num_experts = 4 : i64} : tensor<8xi32> -> tensor<5xi32>, tensor<8xi32>
  return
}

// -----

func.func @dispatch_c2(%ids: tensor<4x2xi32>) {
  // expected-error @+1 {{expected num_experts >= 1, got 0 (C2)}}
  %o, %p = moe.dispatch %ids {num_experts = 0 : i64} : tensor<4x2xi32> -> tensor<1xi32>, tensor<8xi32>
  return
}

// -----

func.func @dispatch_c3(%ids: tensor<4x2xi32>) {
  // expected-error @+1 {{expected offsets dim 0 to be num_experts + 1 = 5, got 4 (C3)}}
  %o, %p = moe.dispatch %ids {num_experts = 4 : i64} : tensor<4x2xi32> -> tensor<4xi32>, tensor<8xi32>
  return
}

// -----

func.func @dispatch_c4(%ids: tensor<4x2xi32>) {
  // expected-error @+1 {{expected perm dim 0 to be N * S = 8, got 4 (C4)}}
  %o, %p = moe.dispatch %ids {num_experts = 4 : i64} : tensor<4x2xi32> -> tensor<5xi32>, tensor<4xi32>
  return
}

//===----------------------------------------------------------------------===//
// moe.unpack_panels
//===----------------------------------------------------------------------===//

// -----

func.func @unpack_panels_c1_rank(%p: tensor<2x3x4xf32>) {
  // expected-error @+1 {{expected panels to have rank 4, got 3 (C1)}}
  %w = moe.unpack_panels %p : (tensor<2x3x4xf32>) -> tensor<2x3x4xf32>
  return
}

// -----

func.func @unpack_panels_c1_dynamic(%p: tensor<2x?x3x4xf32>) {
  // expected-error @+1 {{expected panels to have a static shape (C1)}}
  %w = moe.unpack_panels %p : (tensor<2x?x3x4xf32>) -> tensor<2x3x8xf32>
  return
}

// -----

func.func @unpack_panels_c2_experts(%p: tensor<2x2x3x4xf32>) {
  // expected-error @+1 {{expected result dim 0 (E) to be 2 as in panels dim 0, got 3 (C2)}}
  %w = moe.unpack_panels %p : (tensor<2x2x3x4xf32>) -> tensor<3x3x8xf32>
  return
}

// -----

func.func @unpack_panels_c2_rows(%p: tensor<2x2x3x4xf32>, %t: tensor<2x5x1xf32>) {
  // expected-error @+1 {{expected tail dim 1 (K) to be 3 as in panels dim 2, got 5 (C2)}}
  %w = moe.unpack_panels %p, %t : (tensor<2x2x3x4xf32>, tensor<2x5x1xf32>) -> tensor<2x3x9xf32>
  return
}

// -----

func.func @unpack_panels_c3_no_panel(%p: tensor<2x0x3x4xf32>) {
  // expected-error @+1 {{expected at least one panel of at least one column, got 0 of 4 (C3)}}
  %w = moe.unpack_panels %p : (tensor<2x0x3x4xf32>) -> tensor<2x3x0xf32>
  return
}

// -----

func.func @unpack_panels_c3_empty_tail(%p: tensor<2x2x3x4xf32>, %t: tensor<2x3x0xf32>) {
  // expected-error @+1 {{expected the tail to have at least one column (C3)}}
  %w = moe.unpack_panels %p, %t : (tensor<2x2x3x4xf32>, tensor<2x3x0xf32>) -> tensor<2x3x8xf32>
  return
}

// -----

func.func @unpack_panels_c3_columns(%p: tensor<2x2x3x4xf32>, %t: tensor<2x3x1xf32>) {
  // expected-error @+1 {{expected the result to have 2 x 4 + 1 = 9 columns, got 10 (C3)}}
  %w = moe.unpack_panels %p, %t : (tensor<2x2x3x4xf32>, tensor<2x3x1xf32>) -> tensor<2x3x10xf32>
  return
}

// -----

func.func @unpack_panels_c4_types(%p: tensor<2x2x3x4xf32>, %t: tensor<2x3x1xf16>) {
  // expected-error @+1 {{expected tail element type 'f16' to match panels element type 'f32' (C4)}}
  %w = moe.unpack_panels %p, %t : (tensor<2x2x3x4xf32>, tensor<2x3x1xf16>) -> tensor<2x3x9xf32>
  return
}

//===----------------------------------------------------------------------===//
// moe.grouped_matmul
//===----------------------------------------------------------------------===//

// -----

func.func @grouped_matmul_c1(%x: tensor<4x8xf32>, %w: tensor<8x16xf32>, %o: tensor<3xi32>, %p: tensor<8xi32>) {
  // expected-error @+1 {{expected weight to have rank 3, got 2 (C1)}}
  %y = moe.grouped_matmul %x, %w, %o, %p : (tensor<4x8xf32>, tensor<8x16xf32>, tensor<3xi32>, tensor<8xi32>) -> tensor<8x16xf32>
  return
}

// -----

func.func @grouped_matmul_c2(%x: tensor<4x8xf32>, %w: tensor<2x9x16xf32>, %o: tensor<3xi32>, %p: tensor<8xi32>) {
  // expected-error @+1 {{expected weight dim 1 (Din) to be 8 as in input dim 1, got 9 (C2)}}
  %y = moe.grouped_matmul %x, %w, %o, %p : (tensor<4x8xf32>, tensor<2x9x16xf32>, tensor<3xi32>, tensor<8xi32>) -> tensor<8x16xf32>
  return
}

// -----

func.func @grouped_matmul_c3(%x: tensor<4x8xf32>, %w: tensor<2x8x16xf32>, %o: tensor<2xi32>, %p: tensor<8xi32>) {
  // expected-error @+1 {{expected offsets dim 0 to be E + 1 = 3, got 2 (C3)}}
  %y = moe.grouped_matmul %x, %w, %o, %p : (tensor<4x8xf32>, tensor<2x8x16xf32>, tensor<2xi32>, tensor<8xi32>) -> tensor<8x16xf32>
  return
}

// -----

func.func @grouped_matmul_c4(%x: tensor<3x8xf32>, %w: tensor<2x8x16xf32>, %o: tensor<3xi32>, %p: tensor<8xi32>) {
  // expected-error @+1 {{expected the input rows R = 3 to divide the slot count M = 8 (C4)}}
  %y = moe.grouped_matmul %x, %w, %o, %p : (tensor<3x8xf32>, tensor<2x8x16xf32>, tensor<3xi32>, tensor<8xi32>) -> tensor<8x16xf32>
  return
}

// -----

func.func @grouped_matmul_c4_empty_input(%x: tensor<0x8xf32>, %w: tensor<2x8x16xf32>, %o: tensor<3xi32>, %p: tensor<8xi32>) {
  // expected-error @+1 {{expected the input rows R = 0 to divide the slot count M = 8 (C4)}}
  %y = moe.grouped_matmul %x, %w, %o, %p : (tensor<0x8xf32>, tensor<2x8x16xf32>, tensor<3xi32>, tensor<8xi32>) -> tensor<8x16xf32>
  return
}

// -----

func.func @grouped_matmul_c5_slots(%x: tensor<4x8xf32>, %w: tensor<2x8x16xf32>, %o: tensor<3xi32>, %p: tensor<8xi32>, %sw: tensor<4x3xf32>) {
  // expected-error @+1 {{expected perm dim 0 to be slot_weights N * S = 12, got 8 (C5)}}
  %y = moe.grouped_matmul %x, %w, %o, %p weights(%sw) : (tensor<4x8xf32>, tensor<2x8x16xf32>, tensor<3xi32>, tensor<8xi32>, tensor<4x3xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @grouped_matmul_c5_reduced(%x: tensor<4x8xf32>, %w: tensor<2x8x16xf32>, %o: tensor<3xi32>, %p: tensor<8xi32>, %sw: tensor<4x2xf32>) {
  // expected-error @+1 {{expected result dim 0 (N) to be 4 as in slot_weights dim 0, got 8 (C5)}}
  %y = moe.grouped_matmul %x, %w, %o, %p weights(%sw) : (tensor<4x8xf32>, tensor<2x8x16xf32>, tensor<3xi32>, tensor<8xi32>, tensor<4x2xf32>) -> tensor<8x16xf32>
  return
}

// -----

func.func @grouped_matmul_c5_slot_order(%x: tensor<4x8xf32>, %w: tensor<2x8x16xf32>, %o: tensor<3xi32>, %p: tensor<8xi32>) {
  // expected-error @+1 {{expected result dim 0 (M) to be 8 as in perm dim 0, got 4 (C5)}}
  %y = moe.grouped_matmul %x, %w, %o, %p : (tensor<4x8xf32>, tensor<2x8x16xf32>, tensor<3xi32>, tensor<8xi32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @grouped_matmul_c6(%x: tensor<4x8xf32>, %w: tensor<2x8x16xf32>, %o: tensor<3xi32>, %p: tensor<8xi32>) {
  // expected-error @+1 {{expected result dim 1 (Dout) to be 16 as in weight dim 2, got 15 (C6)}}
  %y = moe.grouped_matmul %x, %w, %o, %p : (tensor<4x8xf32>, tensor<2x8x16xf32>, tensor<3xi32>, tensor<8xi32>) -> tensor<8x15xf32>
  return
}

// -----

func.func @grouped_matmul_c7(%x: tensor<4x8xf32>, %w: tensor<2x8x16xbf16>, %o: tensor<3xi32>, %p: tensor<8xi32>) {
  // expected-error @+1 {{expected weight element type 'bf16' to match input element type 'f32' (C7)}}
  %y = moe.grouped_matmul %x, %w, %o, %p : (tensor<4x8xf32>, tensor<2x8x16xbf16>, tensor<3xi32>, tensor<8xi32>) -> tensor<8x16xf32>
  return
}

// -----

func.func @grouped_matmul_c8_experts(%x: tensor<4x8xf32>, %w: tensor<2x8x16xf32>, %o: tensor<3xi32>, %p: tensor<8xi32>, %b: tensor<3x16xf32>) {
  // expected-error @+1 {{expected bias dim 0 (E) to be 2 as in weight dim 0, got 3 (C8)}}
  %y = moe.grouped_matmul %x, %w, %o, %p bias(%b) : (tensor<4x8xf32>, tensor<2x8x16xf32>, tensor<3xi32>, tensor<8xi32>, tensor<3x16xf32>) -> tensor<8x16xf32>
  return
}

// -----

func.func @grouped_matmul_c8_width(%x: tensor<4x8xf32>, %w: tensor<2x8x16xf32>, %o: tensor<3xi32>, %p: tensor<8xi32>, %b: tensor<2x8xf32>) {
  // expected-error @+1 {{expected bias dim 1 (Dout) to be 16 as in weight dim 2, got 8 (C8)}}
  %y = moe.grouped_matmul %x, %w, %o, %p bias(%b) : (tensor<4x8xf32>, tensor<2x8x16xf32>, tensor<3xi32>, tensor<8xi32>, tensor<2x8xf32>) -> tensor<8x16xf32>
  return
}

// -----

func.func @grouped_matmul_c1_bias(%x: tensor<4x8xf32>, %w: tensor<2x8x16xf32>, %o: tensor<3xi32>, %p: tensor<8xi32>, %b: tensor<16xf32>) {
  // expected-error @+1 {{bias}}
  %y = moe.grouped_matmul %x, %w, %o, %p bias(%b) : (tensor<4x8xf32>, tensor<2x8x16xf32>, tensor<3xi32>, tensor<8xi32>, tensor<16xf32>) -> tensor<8x16xf32>
  return
}

// -----

func.func @grouped_matmul_c7_bias(%x: tensor<4x8xf32>, %w: tensor<2x8x16xf32>, %o: tensor<3xi32>, %p: tensor<8xi32>, %b: tensor<2x16xf64>) {
  // expected-error @+1 {{C7}}
  %y = moe.grouped_matmul %x, %w, %o, %p bias(%b) : (tensor<4x8xf32>, tensor<2x8x16xf32>, tensor<3xi32>, tensor<8xi32>, tensor<2x16xf64>) -> tensor<8x16xf32>
  return
}

// -----

func.func @grouped_matmul_c4_sorted_input(%x: tensor<4x8xf32>, %w: tensor<2x8x16xf32>, %o: tensor<3xi32>, %p: tensor<8xi32>) {
  // expected-error @+1 {{expected perm dim 0 (M (sorted_input)) to be 4 as in input dim 0, got 8 (C4)}}
  %y = moe.grouped_matmul %x, %w, %o, %p {sorted_input} : (tensor<4x8xf32>, tensor<2x8x16xf32>, tensor<3xi32>, tensor<8xi32>) -> tensor<8x16xf32>
  return
}

// -----

func.func @grouped_matmul_c9(%x: tensor<8x8xf32>, %w: tensor<2x8x16xf32>, %o: tensor<3xi32>, %p: tensor<8xi32>, %sw: tensor<4x2xf32>) {
  // expected-error @+1 {{expected no slot_weights with sorted_result (C9)}}
  %y = moe.grouped_matmul %x, %w, %o, %p weights(%sw) {sorted_result} : (tensor<8x8xf32>, tensor<2x8x16xf32>, tensor<3xi32>, tensor<8xi32>, tensor<4x2xf32>) -> tensor<4x16xf32>
  return
}

//===----------------------------------------------------------------------===//
// moe.combine
//===----------------------------------------------------------------------===//

// -----

func.func @combine_c1(%y: tensor<4x16xf32>, %w: tensor<4x2xf32>) {
  // expected-error @+1 {{expected slots to have rank 3, got 2 (C1)}}
  %o = moe.combine %y, %w : (tensor<4x16xf32>, tensor<4x2xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @combine_c2(%y: tensor<4x2x16xf32>, %w: tensor<4x3xf32>) {
  // expected-error @+1 {{expected weights dim 1 (S) to be 2 as in slots dim 1, got 3 (C2)}}
  %o = moe.combine %y, %w : (tensor<4x2x16xf32>, tensor<4x3xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @combine_c3(%y: tensor<4x2x16xf32>, %w: tensor<4x2xf16>) {
  // expected-error @+1 {{expected weights element type 'f16' to match slots element type 'f32' (C3)}}
  %o = moe.combine %y, %w : (tensor<4x2x16xf32>, tensor<4x2xf16>) -> tensor<4x16xf32>
  return
}

//===----------------------------------------------------------------------===//
// moe.mot_mix / moe.mot_unmix
//===----------------------------------------------------------------------===//

// -----

func.func @mot_mix_c1(%x: tensor<8x32xf32>, %l: tensor<8x4x6xf32>) {
  // expected-error @+1 {{expected input to have rank 3, got 2 (C1)}}
  %z, %m = moe.mot_mix %x, %l mode<continuous> {group_size = 4 : i64} : (tensor<8x32xf32>, tensor<8x4x6xf32>) -> tensor<4x2x6x32xf32>, tensor<4x2x4x6xf32>
  return
}

// -----

func.func @mot_mix_c2_zero(%x: tensor<8x4x32xf32>, %l: tensor<8x4x6xf32>) {
  // expected-error @+1 {{expected group_size >= 1, got 0 (C2)}}
  %z, %m = moe.mot_mix %x, %l mode<continuous> {group_size = 0 : i64} : (tensor<8x4x32xf32>, tensor<8x4x6xf32>) -> tensor<4x?x6x32xf32>, tensor<4x?x0x6xf32>
  return
}

// -----

func.func @mot_mix_c2_divides(%x: tensor<6x4x32xf32>, %l: tensor<6x4x6xf32>) {
  // expected-error @+1 {{expected group_size = 4 to divide input dim 0 = 6 (C2)}}
  %z, %m = moe.mot_mix %x, %l mode<continuous> {group_size = 4 : i64} : (tensor<6x4x32xf32>, tensor<6x4x6xf32>) -> tensor<4x1x6x32xf32>, tensor<4x1x4x6xf32>
  return
}

// -----

func.func @mot_mix_c3(%x: tensor<8x4x32xf32>, %l: tensor<8x5x6xf32>) {
  // expected-error @+1 {{expected logits dim 1 (T) to be 4 as in input dim 1, got 5 (C3)}}
  %z, %m = moe.mot_mix %x, %l mode<continuous> {group_size = 4 : i64} : (tensor<8x4x32xf32>, tensor<8x5x6xf32>) -> tensor<4x2x6x32xf32>, tensor<4x2x4x6xf32>
  return
}

// -----

func.func @mot_mix_c4_groups(%x: tensor<8x4x32xf32>, %l: tensor<8x4x6xf32>) {
  // expected-error @+1 {{expected mixed dim 1 to be B / group_size = 2, got 4 (C4)}}
  %z, %m = moe.mot_mix %x, %l mode<continuous> {group_size = 4 : i64} : (tensor<8x4x32xf32>, tensor<8x4x6xf32>) -> tensor<4x4x6x32xf32>, tensor<4x2x4x6xf32>
  return
}

// -----

func.func @mot_mix_c4_group_size(%x: tensor<8x4x32xf32>, %l: tensor<8x4x6xf32>) {
  // expected-error @+1 {{expected weights dim 2 to be group_size = 4, got 2 (C4)}}
  %z, %m = moe.mot_mix %x, %l mode<continuous> {group_size = 4 : i64} : (tensor<8x4x32xf32>, tensor<8x4x6xf32>) -> tensor<4x2x6x32xf32>, tensor<4x2x2x6xf32>
  return
}

// -----

func.func @mot_mix_c4_experts(%x: tensor<8x4x32xf32>, %l: tensor<8x4x6xf32>) {
  // expected-error @+1 {{expected mixed dim 2 (E) to be 6 as in logits dim 2, got 5 (C4)}}
  %z, %m = moe.mot_mix %x, %l mode<continuous> {group_size = 4 : i64} : (tensor<8x4x32xf32>, tensor<8x4x6xf32>) -> tensor<4x2x5x32xf32>, tensor<4x2x4x6xf32>
  return
}

// -----

func.func @mot_mix_c5(%x: tensor<8x4x32xf32>, %l: tensor<8x4x6xf32>) {
  // expected-error @+1 {{expected temperature > 0 and finite, got -1 (C5)}}
  %z, %m = moe.mot_mix %x, %l mode<continuous> {group_size = 4 : i64, temperature = -1.0 : f64} : (tensor<8x4x32xf32>, tensor<8x4x6xf32>) -> tensor<4x2x6x32xf32>, tensor<4x2x4x6xf32>
  return
}

// -----

func.func @mot_mix_c6(%x: tensor<8x4x32xf32>, %l: tensor<8x4x6xf16>) {
  // expected-error @+1 {{expected logits element type 'f16' to match input element type 'f32' (C6)}}
  %z, %m = moe.mot_mix %x, %l mode<continuous> {group_size = 4 : i64} : (tensor<8x4x32xf32>, tensor<8x4x6xf16>) -> tensor<4x2x6x32xf32>, tensor<4x2x4x6xf32>
  return
}

// -----

func.func @mot_unmix_c1(%y: tensor<4x2x6x32xf32>, %m: tensor<4x2x4x6xf32>) {
  // expected-error @+1 {{expected result to have rank 3, got 2 (C1)}}
  %o = moe.mot_unmix %y, %m : (tensor<4x2x6x32xf32>, tensor<4x2x4x6xf32>) -> tensor<8x32xf32>
  return
}

// -----

func.func @mot_unmix_c2(%y: tensor<4x2x6x32xf32>, %m: tensor<4x2x4x5xf32>) {
  // expected-error @+1 {{expected weights dim 3 (E) to be 6 as in outputs dim 2, got 5 (C2)}}
  %o = moe.mot_unmix %y, %m : (tensor<4x2x6x32xf32>, tensor<4x2x4x5xf32>) -> tensor<8x4x32xf32>
  return
}

// -----

func.func @mot_unmix_c3(%y: tensor<4x2x6x32xf32>, %m: tensor<4x2x4x6xf32>) {
  // expected-error @+1 {{expected result dim 0 to be C * g = 8, got 4 (C3)}}
  %o = moe.mot_unmix %y, %m : (tensor<4x2x6x32xf32>, tensor<4x2x4x6xf32>) -> tensor<4x4x32xf32>
  return
}

// -----

func.func @mot_unmix_c4(%y: tensor<4x2x6x32xf32>, %m: tensor<4x2x4x6xf32>) {
  // expected-error @+1 {{expected result element type 'f64' to match outputs element type 'f32' (C4)}}
  %o = moe.mot_unmix %y, %m : (tensor<4x2x6x32xf32>, tensor<4x2x4x6xf32>) -> tensor<8x4x32xf64>
  return
}

//===----------------------------------------------------------------------===//
// moe.attention / moe.rope
//===----------------------------------------------------------------------===//

// -----

func.func @attention_c1(%q: tensor<4x8x16xf32>, %k: tensor<1x4x8x16xf32>) {
  // expected-error @+1 {{expected query to have rank 4, got 3 (C1)}}
  %o = moe.attention %q, %k, %k : (tensor<4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>) -> tensor<1x4x8x16xf32>
  return
}

// -----

func.func @attention_c2(%q: tensor<1x4x8x16xf32>, %k: tensor<1x4x8x8xf32>) {
  // expected-error @+1 {{expected key dim 3 (dk) to be 16 as in query dim 3, got 8 (C2)}}
  %o = moe.attention %q, %k, %k : (tensor<1x4x8x16xf32>, tensor<1x4x8x8xf32>, tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32>
  return
}

// -----

func.func @attention_c3(%q: tensor<1x4x8x16xf32>, %k: tensor<1x4x6x16xf32>, %v: tensor<1x4x6x4xf32>) {
  // expected-error @+1 {{expected result dim 2 (T) to be 8 as in query dim 2, got 6 (C3)}}
  %o = moe.attention %q, %k, %v : (tensor<1x4x8x16xf32>, tensor<1x4x6x16xf32>, tensor<1x4x6x4xf32>) -> tensor<1x4x6x4xf32>
  return
}

// -----

func.func @attention_c7_rank(%q: tensor<1x4x8x16xf32>, %m: tensor<8x8xf32>) {
  // expected-error @+1 {{expected mask to have rank 4, got 2 (C7)}}
  %o = moe.attention %q, %q, %q mask(%m) : (tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<8x8xf32>) -> tensor<1x4x8x16xf32>
  return
}

// -----

func.func @attention_c7_dims(%q: tensor<1x4x8x16xf32>, %k: tensor<1x4x6x16xf32>, %m: tensor<1x2x8x6xf32>) {
  // expected-error @+1 {{expected mask dim 1 to be H (4) or 1, got 2 (C7)}}
  %o = moe.attention %q, %k, %k mask(%m) : (tensor<1x4x8x16xf32>, tensor<1x4x6x16xf32>, tensor<1x4x6x16xf32>, tensor<1x2x8x6xf32>) -> tensor<1x4x8x16xf32>
  return
}

// -----

func.func @attention_c7_keys(%q: tensor<1x4x8x16xf32>, %k: tensor<1x4x6x16xf32>, %m: tensor<1x1x8x2xf32>) {
  // expected-error @+1 {{expected mask dim 3 to be S (6) or 1, got 2 (C7)}}
  %o = moe.attention %q, %k, %k mask(%m) : (tensor<1x4x8x16xf32>, tensor<1x4x6x16xf32>, tensor<1x4x6x16xf32>, tensor<1x1x8x2xf32>) -> tensor<1x4x8x16xf32>
  return
}

// -----

func.func @attention_c7_past(%q: tensor<1x4x1x16xf32>, %pk: tensor<1x4x5x16xf32>, %m: tensor<1x1x1x1xf32>) {
  // expected-error @+1 {{expected no mask with a cache (C7)}}
  %o = moe.attention %q, %q, %q past(%pk, %pk) mask(%m) : (tensor<1x4x1x16xf32>, tensor<1x4x1x16xf32>, tensor<1x4x1x16xf32>, tensor<1x4x5x16xf32>, tensor<1x4x5x16xf32>, tensor<1x1x1x1xf32>) -> tensor<1x4x1x16xf32>
  return
}

// -----

func.func @attention_c8_rank(%q: tensor<1x4x8x16xf32>, %s: tensor<1x4xf32>) {
  // expected-error @+1 {{expected sinks to have rank 1, got 2 (C8)}}
  %o = moe.attention %q, %q, %q sinks(%s) : (tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x4xf32>) -> tensor<1x4x8x16xf32>
  return
}

// -----

func.func @attention_c8_heads(%q: tensor<1x4x8x16xf32>, %s: tensor<3xf32>) {
  // expected-error @+1 {{expected sinks dim 0 (H) to be 4 as in query dim 1, got 3 (C8)}}
  %o = moe.attention %q, %q, %q sinks(%s) : (tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<3xf32>) -> tensor<1x4x8x16xf32>
  return
}

// -----

func.func @attention_c8_type(%q: tensor<1x4x8x16xf32>, %s: tensor<4xf16>) {
  // expected-error @+1 {{(C8)}}
  %o = moe.attention %q, %q, %q sinks(%s) : (tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<4xf16>) -> tensor<1x4x8x16xf32>
  return
}

// -----

func.func @attention_c8_past(%q: tensor<1x4x1x16xf32>, %pk: tensor<1x4x5x16xf32>, %s: tensor<4xf32>) {
  // expected-error @+1 {{expected no sinks with a cache (C8)}}
  %o = moe.attention %q, %q, %q past(%pk, %pk) sinks(%s) : (tensor<1x4x1x16xf32>, tensor<1x4x1x16xf32>, tensor<1x4x1x16xf32>, tensor<1x4x5x16xf32>, tensor<1x4x5x16xf32>, tensor<4xf32>) -> tensor<1x4x1x16xf32>
  return
}

// -----

func.func @attention_c7_type(%q: tensor<1x4x8x16xf32>, %m: tensor<1x1x8x8xf16>) {
  // expected-error @+1 {{(C7)}}
  %o = moe.attention %q, %q, %q mask(%m) : (tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x1x8x8xf16>) -> tensor<1x4x8x16xf32>
  return
}

// -----

func.func @attention_c4(%q: tensor<1x4x8x16xf32>, %k: tensor<1x4x8x16xf16>) {
  // expected-error @+1 {{expected key element type 'f16' to match query element type 'f32' (C4)}}
  %o = moe.attention %q, %k, %k : (tensor<1x4x8x16xf32>, tensor<1x4x8x16xf16>, tensor<1x4x8x16xf16>) -> tensor<1x4x8x16xf32>
  return
}

// -----

func.func @attention_c5(%q: tensor<1x4x8x16xf32>) {
  // expected-error @+1 {{expected scale finite and non-zero, got 0 (C5)}}
  %o = moe.attention %q, %q, %q {scale = 0.0 : f64} : (tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>) -> tensor<1x4x8x16xf32>
  return
}

// -----

func.func @attention_c6_alone(%q: tensor<1x4x1x16xf32>, %pk: tensor<1x4x5x16xf32>) {
  // expected-error @+1 {{expected past_key and past_value together (C6)}}
  %o = "moe.attention"(%q, %q, %q, %pk) <{operandSegmentSizes = array<i32: 1, 1, 1, 1, 0, 0, 0>}> : (tensor<1x4x1x16xf32>, tensor<1x4x1x16xf32>, tensor<1x4x1x16xf32>, tensor<1x4x5x16xf32>) -> tensor<1x4x1x16xf32>
  return
}

// -----

func.func @attention_c6_rank(%q: tensor<1x4x1x16xf32>, %pk: tensor<5x4x16xf32>) {
  // expected-error @+1 {{expected past_key to have rank 4, got 3 (C6)}}
  %o = moe.attention %q, %q, %q past(%pk, %pk) : (tensor<1x4x1x16xf32>, tensor<1x4x1x16xf32>, tensor<1x4x1x16xf32>, tensor<5x4x16xf32>, tensor<5x4x16xf32>) -> tensor<1x4x1x16xf32>
  return
}

// -----

func.func @attention_c6_positions(%q: tensor<1x4x1x16xf32>, %pk: tensor<1x4x5x16xf32>, %pv: tensor<1x4x6x16xf32>) {
  // expected-error @+1 {{expected past_value dim 2 (P) to be 5 as in past_key dim 2, got 6 (C6)}}
  %o = moe.attention %q, %q, %q past(%pk, %pv) : (tensor<1x4x1x16xf32>, tensor<1x4x1x16xf32>, tensor<1x4x1x16xf32>, tensor<1x4x5x16xf32>, tensor<1x4x6x16xf32>) -> tensor<1x4x1x16xf32>
  return
}

// -----

func.func @attention_c6_batch(%q: tensor<1x4x1x16xf32>, %pk: tensor<2x4x5x16xf32>) {
  // expected-error @+1 {{expected past_key dim 0 (B) to be 1 as in query dim 0, got 2 (C6)}}
  %o = moe.attention %q, %q, %q past(%pk, %pk) : (tensor<1x4x1x16xf32>, tensor<1x4x1x16xf32>, tensor<1x4x1x16xf32>, tensor<2x4x5x16xf32>, tensor<2x4x5x16xf32>) -> tensor<1x4x1x16xf32>
  return
}

// -----

func.func @attention_c6_heads(%q: tensor<1x4x1x16xf32>, %pk: tensor<1x2x5x16xf32>) {
  // expected-error @+1 {{expected past_key dim 1 (H) to be 4 as in query dim 1, got 2 (C6)}}
  %o = moe.attention %q, %q, %q past(%pk, %pk) : (tensor<1x4x1x16xf32>, tensor<1x4x1x16xf32>, tensor<1x4x1x16xf32>, tensor<1x2x5x16xf32>, tensor<1x2x5x16xf32>) -> tensor<1x4x1x16xf32>
  return
}

// -----

func.func @attention_c6_value_width(%q: tensor<1x4x1x16xf32>, %v: tensor<1x4x1x8xf32>, %pk: tensor<1x4x5x16xf32>) {
  // expected-error @+1 {{expected past_value dim 3 (dv) to be 8 as in value dim 3, got 16 (C6)}}
  %o = moe.attention %q, %q, %v past(%pk, %pk) : (tensor<1x4x1x16xf32>, tensor<1x4x1x16xf32>, tensor<1x4x1x8xf32>, tensor<1x4x5x16xf32>, tensor<1x4x5x16xf32>) -> tensor<1x4x1x8xf32>
  return
}

// -----

func.func @attention_c6_type(%q: tensor<1x4x1x16xf32>, %pk: tensor<1x4x5x16xf16>) {
  // expected-error @+1 {{expected past_key element type 'f16' to match query element type 'f32' (C6)}}
  %o = moe.attention %q, %q, %q past(%pk, %pk) : (tensor<1x4x1x16xf32>, tensor<1x4x1x16xf32>, tensor<1x4x1x16xf32>, tensor<1x4x5x16xf16>, tensor<1x4x5x16xf16>) -> tensor<1x4x1x16xf32>
  return
}

// -----

func.func @rope_c1_rank(%x: tensor<4x8x16xf32>) {
  // expected-error @+1 {{expected input to have rank 4, got 3 (C1)}}
  %r = moe.rope %x : tensor<4x8x16xf32> -> tensor<4x8x16xf32>
  return
}

// -----

func.func @rope_c1_type(%x: tensor<1x4x8x16xf32>) {
  // expected-error @+1 {{expected result type 'tensor<1x4x8x?xf32>' to equal input type 'tensor<1x4x8x16xf32>' (C1)}}
  %r = moe.rope %x : tensor<1x4x8x16xf32> -> tensor<1x4x8x?xf32>
  return
}

// -----

func.func @rope_c2(%x: tensor<1x4x8x16xf32>) {
  // expected-error @+1 {{expected rotate_fraction in [0, 1], got 1.5 (C2)}}
  %r = moe.rope %x {rotate_fraction = 1.5 : f64} : tensor<1x4x8x16xf32> -> tensor<1x4x8x16xf32>
  return
}

// -----

func.func @rope_c3(%x: tensor<1x4x8x16xf32>) {
  // expected-error @+1 {{expected rope base > 0 and finite, got 0 (C3)}}
  %r = moe.rope %x {base = 0.0 : f64} : tensor<1x4x8x16xf32> -> tensor<1x4x8x16xf32>
  return
}


//===----------------------------------------------------------------------===//
// moe.ffn
//===----------------------------------------------------------------------===//

// -----

func.func @ffn_c1(%x: tensor<4x16xf32>, %ws: tensor<4x16xf32>, %w1: tensor<4x16x8xf32>, %w2: tensor<4x8x16xf32>) {
  // expected-error @+1 {{expected w1 to have rank 3, got 2 (C1)}}
  %y = moe.ffn %x, %ws, %ws, %w2 gate<sigmoid> act<relu> {k = 2 : i64} : (tensor<4x16xf32>, tensor<4x16xf32>, tensor<4x16xf32>, tensor<4x8x16xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @ffn_c2(%x: tensor<4x16xf32>, %ws: tensor<4x16xf32>, %w1: tensor<4x16x8xf32>, %w2: tensor<4x9x16xf32>) {
  // expected-error @+1 {{expected w2 dim 1 (Ge) to be 8 as in w1 dim 2, got 9 (C2)}}
  %y = moe.ffn %x, %ws, %w1, %w2 gate<sigmoid> act<relu> {k = 2 : i64} : (tensor<4x16xf32>, tensor<4x16xf32>, tensor<4x16x8xf32>, tensor<4x9x16xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @ffn_c3(%x: tensor<4x16xf32>, %ws: tensor<?x16xf32>, %w1: tensor<?x16x8xf32>, %w2: tensor<?x8x16xf32>) {
  // expected-error @+1 {{expected the expert count E to be static in w_sel, w1 or w2 dim 0 (C3)}}
  %y = moe.ffn %x, %ws, %w1, %w2 gate<sigmoid> act<relu> {k = 2 : i64} : (tensor<4x16xf32>, tensor<?x16xf32>, tensor<?x16x8xf32>, tensor<?x8x16xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @ffn_c4(%x: tensor<4x16xf32>, %ws: tensor<4x16xf32>, %w1: tensor<4x16x8xf32>, %w2: tensor<4x8x16xf32>) {
  // expected-error @+1 {{expected k <= E = 4, got k = 5 (C4)}}
  %y = moe.ffn %x, %ws, %w1, %w2 gate<sigmoid> act<relu> {k = 5 : i64} : (tensor<4x16xf32>, tensor<4x16xf32>, tensor<4x16x8xf32>, tensor<4x8x16xf32>) -> tensor<4x16xf32>
  return
}


// -----

func.func @ffn_c4_zero(%x: tensor<4x16xf32>, %ws: tensor<4x16xf32>, %w1: tensor<4x16x8xf32>, %w2: tensor<4x8x16xf32>) {
  // expected-error @+1 {{expected k >= 1, got 0 (C4)}}
  %y = moe.ffn %x, %ws, %w1, %w2 gate<sigmoid> act<relu> {k = 0 : i64} : (tensor<4x16xf32>, tensor<4x16xf32>, tensor<4x16x8xf32>, tensor<4x8x16xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @ffn_c5_factor(%x: tensor<4x16xf32>, %ws: tensor<4x16xf32>, %w1: tensor<4x16x8xf32>, %w2: tensor<4x8x16xf32>) {
  // expected-error @+1 {{expected capacity_factor > 0, got -2 (C5)}}
  %y = moe.ffn %x, %ws, %w1, %w2 gate<softmax> act<relu> {k = 1 : i64, capacity_factor = -2.0 : f64} : (tensor<4x16xf32>, tensor<4x16xf32>, tensor<4x16x8xf32>, tensor<4x8x16xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @ffn_c5_switch(%x: tensor<4x16xf32>, %ws: tensor<4x16xf32>, %w1: tensor<4x16x8xf32>, %w2: tensor<4x8x16xf32>) {
  // expected-error @+1 {{expected k = 1 and gate softmax with capacity_factor (Switch routing), got k = 2 and gate sigmoid (C5)}}
  %y = moe.ffn %x, %ws, %w1, %w2 gate<sigmoid> act<relu> {k = 2 : i64, capacity_factor = 1.0 : f64} : (tensor<4x16xf32>, tensor<4x16xf32>, tensor<4x16x8xf32>, tensor<4x8x16xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @ffn_c6(%x: tensor<4x16xf32>, %ws: tensor<4x16xf32>, %w1: tensor<4x16x8xf16>, %w2: tensor<4x8x16xf32>) {
  // expected-error @+1 {{expected w1 element type 'f16' to match input element type 'f32' (C6)}}
  %y = moe.ffn %x, %ws, %w1, %w2 gate<sigmoid> act<relu> {k = 2 : i64} : (tensor<4x16xf32>, tensor<4x16xf32>, tensor<4x16x8xf16>, tensor<4x8x16xf32>) -> tensor<4x16xf32>
  return
}

//===----------------------------------------------------------------------===//
// moe.tree_ffn
//===----------------------------------------------------------------------===//

// -----

func.func @tree_ffn_c1(%h: tensor<4x32xf32>, %wg: tensor<32xf32>, %w: tensor<7x32x16xf32>) {
  // expected-error @+1 {{expected w_gate to have rank 2, got 1 (C1)}}
  %y = moe.tree_ffn %h, %wg, %w mode<path> act<relu> : (tensor<4x32xf32>, tensor<32xf32>, tensor<7x32x16xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @tree_ffn_c2(%h: tensor<4x32xf32>, %wg: tensor<32x?xf32>, %w: tensor<7x32x16xf32>) {
  // expected-error @+1 {{expected a static tree depth in w_gate dim 1 (C2)}}
  %y = moe.tree_ffn %h, %wg, %w mode<path> act<relu> : (tensor<4x32xf32>, tensor<32x?xf32>, tensor<7x32x16xf32>) -> tensor<4x16xf32>
  return
}


// -----

func.func @tree_ffn_c2_range(%h: tensor<4x32xf32>, %wg: tensor<32x0xf32>, %w: tensor<1x32x16xf32>) {
  // expected-error @+1 {{expected the tree depth w_gate dim 1 in [1, 30], got 0 (C2)}}
  %y = moe.tree_ffn %h, %wg, %w mode<flat> act<relu> : (tensor<4x32xf32>, tensor<32x0xf32>, tensor<1x32x16xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @tree_ffn_c3(%h: tensor<4x32xf32>, %wg: tensor<32x2xf32>, %w: tensor<7x32x16xf32>) {
  // expected-error @+1 {{expected weight dim 0 to be 2^depth leaves = 4, got 7 (C3)}}
  %y = moe.tree_ffn %h, %wg, %w mode<flat> act<relu> : (tensor<4x32xf32>, tensor<32x2xf32>, tensor<7x32x16xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @tree_ffn_c4(%h: tensor<4x32xf32>, %wg: tensor<31x2xf32>, %w: tensor<7x32x16xf32>) {
  // expected-error @+1 {{expected w_gate dim 0 (Din) to be 32 as in input dim 1, got 31 (C4)}}
  %y = moe.tree_ffn %h, %wg, %w mode<path> act<relu> : (tensor<4x32xf32>, tensor<31x2xf32>, tensor<7x32x16xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @tree_ffn_c5(%h: tensor<4x32xf32>, %wg: tensor<32x2xf32>, %w: tensor<7x32x16xf64>) {
  // expected-error @+1 {{expected weight element type 'f64' to match input element type 'f32' (C5)}}
  %y = moe.tree_ffn %h, %wg, %w mode<path> act<relu> : (tensor<4x32xf32>, tensor<32x2xf32>, tensor<7x32x16xf64>) -> tensor<4x16xf32>
  return
}

//===----------------------------------------------------------------------===//
// moe.switchhead
//===----------------------------------------------------------------------===//

// -----

func.func @switchhead_c1(%x: tensor<2x32xf32>, %wq: tensor<32x16xf32>, %wv: tensor<8x32x8xf32>, %wo: tensor<8x8x32xf32>, %s: tensor<8x32xf32>) {
  // expected-error @+1 {{expected q_src to have rank 3, got 2 (C1)}}
  %y = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %s sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<2x32xf32>, tensor<2x32xf32>, tensor<2x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<2x32xf32>
  return
}

// -----

func.func @switchhead_c2(%x: tensor<1x4x32xf32>, %wq: tensor<32x16xf32>, %wv: tensor<8x32x8xf32>, %wo: tensor<8x8x32xf32>, %s: tensor<8x32xf32>) {
  // expected-error @+1 {{expected num_heads = 3 to divide wq dim 1 = 16 (C2)}}
  %y = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %s sel_v(%s) {num_heads = 3 : i64, k = 2 : i64}
      : (tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<1x4x32xf32>
  return
}


// -----

func.func @switchhead_c2_zero(%x: tensor<1x4x32xf32>, %wq: tensor<32x16xf32>, %wv: tensor<8x32x8xf32>, %wo: tensor<8x8x32xf32>, %s: tensor<8x32xf32>) {
  // expected-error @+1 {{expected num_heads >= 1, got 0 (C2)}}
  %y = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %s sel_v(%s) {num_heads = 0 : i64, k = 2 : i64}
      : (tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<1x4x32xf32>
  return
}

// -----

func.func @switchhead_c3(%x: tensor<1x4x32xf32>, %wq: tensor<32x16xf32>, %wv: tensor<8x32x8xf32>, %wo: tensor<8x4x32xf32>, %s: tensor<8x32xf32>) {
  // expected-error @+1 {{expected wo dim 1 (dv) to be 8 as in wv dim 2, got 4 (C3)}}
  %y = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %s sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<8x32x8xf32>, tensor<8x4x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<1x4x32xf32>
  return
}

// -----

func.func @switchhead_c4_dynamic(%x: tensor<1x4x32xf32>, %wq: tensor<32x16xf32>, %wv: tensor<?x32x8xf32>, %wo: tensor<?x8x32xf32>, %s: tensor<?x32xf32>) {
  // expected-error @+1 {{expected the expert count H*E to be static in wv, wo, sel_o or sel_v dim 0 (C4)}}
  %y = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %s sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<?x32x8xf32>, tensor<?x8x32xf32>, tensor<?x32xf32>, tensor<?x32xf32>) -> tensor<1x4x32xf32>
  return
}

// -----

func.func @switchhead_c4_k(%x: tensor<1x4x32xf32>, %wq: tensor<32x16xf32>, %wv: tensor<8x32x8xf32>, %wo: tensor<8x8x32xf32>, %s: tensor<8x32xf32>) {
  // expected-error @+1 {{expected k <= E = 4, got k = 5 (C4)}}
  %y = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %s sel_v(%s) {num_heads = 2 : i64, k = 5 : i64}
      : (tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<1x4x32xf32>
  return
}

// -----

func.func @switchhead_c5(%x: tensor<1x4x32xf32>, %wq: tensor<32x16xf32>, %wv: tensor<8x32x8xf32>, %wo: tensor<8x8x32xf32>, %s: tensor<8x32xf32>) {
  // expected-error @+1 {{expected sel_v when E = 4 > 1; only E = 1 allows a dense value projection (C5)}}
  %y = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %s {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>) -> tensor<1x4x32xf32>
  return
}

// -----

func.func @switchhead_c6_fraction(%x: tensor<1x4x32xf32>, %wq: tensor<32x16xf32>, %wv: tensor<8x32x8xf32>, %wo: tensor<8x8x32xf32>, %s: tensor<8x32xf32>) {
  // expected-error @+1 {{expected rotate_fraction in [0, 1], got -0.5 (C6)}}
  %y = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %s sel_v(%s) {num_heads = 2 : i64, k = 2 : i64, rotate_fraction = -0.5 : f64}
      : (tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<1x4x32xf32>
  return
}

// -----

func.func @switchhead_c6_base(%x: tensor<1x4x32xf32>, %wq: tensor<32x16xf32>, %wv: tensor<8x32x8xf32>, %wo: tensor<8x8x32xf32>, %s: tensor<8x32xf32>) {
  // expected-error @+1 {{expected rope base > 0 and finite, got -1 (C6)}}
  %y = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %s sel_v(%s) {num_heads = 2 : i64, k = 2 : i64, rope_base = -1.0 : f64}
      : (tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<1x4x32xf32>
  return
}

// -----

func.func @switchhead_c7(%x: tensor<1x4x32xf32>, %wq: tensor<32x16xf32>, %wv: tensor<8x32x8xf16>, %wo: tensor<8x8x32xf32>, %s: tensor<8x32xf32>) {
  // expected-error @+1 {{expected wv element type 'f16' to match q_src element type 'f32' (C7)}}
  %y = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %s sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<8x32x8xf16>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<1x4x32xf32>
  return
}

//===----------------------------------------------------------------------===//
// moe.mot
//===----------------------------------------------------------------------===//

// -----

func.func @mot_c1(%x: tensor<8x4x32xf32>, %wc: tensor<32x6x1xf32>, %w1: tensor<6x32x16xf32>, %w2: tensor<6x16x32xf32>) {
  // expected-error @+1 {{expected w_ctrl to have rank 2, got 3 (C1)}}
  %y = moe.mot %x, %wc, %w1, %w2 mode<continuous> act<relu> {group_size = 4 : i64} : (tensor<8x4x32xf32>, tensor<32x6x1xf32>, tensor<6x32x16xf32>, tensor<6x16x32xf32>) -> tensor<8x4x32xf32>
  return
}

// -----

func.func @mot_c2(%x: tensor<8x4x32xf32>, %wc: tensor<32x6xf32>, %w1: tensor<6x32x16xf32>, %w2: tensor<6x16x32xf32>) {
  // expected-error @+1 {{expected group_size = 3 to divide input dim 0 = 8 (C2)}}
  %y = moe.mot %x, %wc, %w1, %w2 mode<continuous> act<relu> {group_size = 3 : i64} : (tensor<8x4x32xf32>, tensor<32x6xf32>, tensor<6x32x16xf32>, tensor<6x16x32xf32>) -> tensor<8x4x32xf32>
  return
}


// -----

func.func @mot_c2_zero(%x: tensor<8x4x32xf32>, %wc: tensor<32x6xf32>, %w1: tensor<6x32x16xf32>, %w2: tensor<6x16x32xf32>) {
  // expected-error @+1 {{expected group_size >= 1, got 0 (C2)}}
  %y = moe.mot %x, %wc, %w1, %w2 mode<continuous> act<relu> {group_size = 0 : i64} : (tensor<8x4x32xf32>, tensor<32x6xf32>, tensor<6x32x16xf32>, tensor<6x16x32xf32>) -> tensor<8x4x32xf32>
  return
}

// -----

func.func @mot_c3(%x: tensor<8x4x32xf32>, %wc: tensor<32x5xf32>, %w1: tensor<6x32x16xf32>, %w2: tensor<6x16x32xf32>) {
  // expected-error @+1 {{expected w1 dim 0 (E) to be 5 as in w_ctrl dim 1, got 6 (C3)}}
  %y = moe.mot %x, %wc, %w1, %w2 mode<continuous> act<relu> {group_size = 4 : i64} : (tensor<8x4x32xf32>, tensor<32x5xf32>, tensor<6x32x16xf32>, tensor<6x16x32xf32>) -> tensor<8x4x32xf32>
  return
}

// -----

func.func @mot_c4(%x: tensor<8x4x32xf32>, %wc: tensor<32x6xf32>, %w1: tensor<6x32x16xf32>, %w2: tensor<6x16x32xf32>) {
  // expected-error @+1 {{expected temperature > 0 and finite, got inf (C4)}}
  %y = moe.mot %x, %wc, %w1, %w2 mode<continuous> act<relu> {group_size = 4 : i64, temperature = 0x7FF0000000000000 : f64} : (tensor<8x4x32xf32>, tensor<32x6xf32>, tensor<6x32x16xf32>, tensor<6x16x32xf32>) -> tensor<8x4x32xf32>
  return
}

// -----

func.func @mot_c5(%x: tensor<8x4x32xf32>, %wc: tensor<32x6xbf16>, %w1: tensor<6x32x16xf32>, %w2: tensor<6x16x32xf32>) {
  // expected-error @+1 {{expected w_ctrl element type 'bf16' to match input element type 'f32' (C5)}}
  %y = moe.mot %x, %wc, %w1, %w2 mode<continuous> act<relu> {group_size = 4 : i64} : (tensor<8x4x32xf32>, tensor<32x6xbf16>, tensor<6x32x16xf32>, tensor<6x16x32xf32>) -> tensor<8x4x32xf32>
  return
}

// -----

func.func @switchhead_cached_c1(%x: tensor<1x32xf32>, %wq: tensor<32x16xf32>, %wv: tensor<8x32x8xf32>, %wo: tensor<8x8x32xf32>, %s: tensor<8x32xf32>, %pk: tensor<1x2x?x8xf32>, %pv: tensor<1x2x?x8xf32>) {
  // expected-error @+1 {{expected q_src to have rank 3, got 2 (C1)}}
  %y, %nk, %nv = moe.switchhead_cached %x, %x, %x, %wq, %wq, %wv, %wo, %s past(%pk, %pv) sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<1x32xf32>, tensor<1x32xf32>, tensor<1x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>, tensor<8x32xf32>) -> (tensor<1x32xf32>, tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>)
  return
}

// -----

func.func @switchhead_cached_c2(%x: tensor<1x1x32xf32>, %wq: tensor<32x16xf32>, %wv: tensor<8x32x8xf32>, %wo: tensor<8x8x32xf32>, %s: tensor<8x32xf32>, %pk: tensor<1x2x?x8xf32>, %pv: tensor<1x2x?x8xf32>) {
  // expected-error @+1 {{expected num_heads = 3 to divide wq dim 1 = 16 (C2)}}
  %y, %nk, %nv = moe.switchhead_cached %x, %x, %x, %wq, %wq, %wv, %wo, %s past(%pk, %pv) sel_v(%s) {num_heads = 3 : i64, k = 2 : i64}
      : (tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>, tensor<8x32xf32>) -> (tensor<1x1x32xf32>, tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>)
  return
}

// -----

func.func @switchhead_cached_c3(%x: tensor<1x1x32xf32>, %wq: tensor<32x16xf32>, %wv: tensor<8x32x8xf32>, %wo: tensor<8x4x32xf32>, %s: tensor<8x32xf32>, %pk: tensor<1x2x?x8xf32>, %pv: tensor<1x2x?x8xf32>) {
  // expected-error @+1 {{expected wo dim 1 (dv) to be 8 as in wv dim 2, got 4 (C3)}}
  %y, %nk, %nv = moe.switchhead_cached %x, %x, %x, %wq, %wq, %wv, %wo, %s past(%pk, %pv) sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<8x32x8xf32>, tensor<8x4x32xf32>, tensor<8x32xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>, tensor<8x32xf32>) -> (tensor<1x1x32xf32>, tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>)
  return
}

// -----

func.func @switchhead_cached_c4(%x: tensor<1x1x32xf32>, %wq: tensor<32x16xf32>, %wv: tensor<8x32x8xf32>, %wo: tensor<8x8x32xf32>, %s: tensor<8x32xf32>, %pk: tensor<1x2x?x8xf32>, %pv: tensor<1x2x?x8xf32>) {
  // expected-error @+1 {{expected k <= E = 4, got k = 5 (C4)}}
  %y, %nk, %nv = moe.switchhead_cached %x, %x, %x, %wq, %wq, %wv, %wo, %s past(%pk, %pv) sel_v(%s) {num_heads = 2 : i64, k = 5 : i64}
      : (tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>, tensor<8x32xf32>) -> (tensor<1x1x32xf32>, tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>)
  return
}

// -----

func.func @switchhead_cached_c5(%x: tensor<1x1x32xf32>, %wq: tensor<32x16xf32>, %wv: tensor<8x32x8xf32>, %wo: tensor<8x8x32xf32>, %s: tensor<8x32xf32>, %pk: tensor<1x2x?x8xf32>, %pv: tensor<1x2x?x8xf32>) {
  // expected-error @+1 {{expected sel_v when E = 4 > 1; only E = 1 allows a dense value projection (C5)}}
  %y, %nk, %nv = moe.switchhead_cached %x, %x, %x, %wq, %wq, %wv, %wo, %s past(%pk, %pv) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>) -> (tensor<1x1x32xf32>, tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>)
  return
}

// -----

func.func @switchhead_cached_c6(%x: tensor<1x1x32xf32>, %wq: tensor<32x16xf32>, %wv: tensor<8x32x8xf32>, %wo: tensor<8x8x32xf32>, %s: tensor<8x32xf32>, %pk: tensor<1x2x?x8xf32>, %pv: tensor<1x2x?x8xf32>) {
  // expected-error @+1 {{expected rotate_fraction in [0, 1], got 2 (C6)}}
  %y, %nk, %nv = moe.switchhead_cached %x, %x, %x, %wq, %wq, %wv, %wo, %s past(%pk, %pv) sel_v(%s) {num_heads = 2 : i64, k = 2 : i64, rotate_fraction = 2.0 : f64}
      : (tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>, tensor<8x32xf32>) -> (tensor<1x1x32xf32>, tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>)
  return
}

// -----

func.func @switchhead_cached_c7(%x: tensor<1x1x32xf32>, %wq: tensor<32x16xf32>, %wv: tensor<8x32x8xf16>, %wo: tensor<8x8x32xf32>, %s: tensor<8x32xf32>, %pk: tensor<1x2x?x8xf32>, %pv: tensor<1x2x?x8xf32>) {
  // expected-error @+1 {{expected wv element type 'f16' to match q_src element type 'f32' (C7)}}
  %y, %nk, %nv = moe.switchhead_cached %x, %x, %x, %wq, %wq, %wv, %wo, %s past(%pk, %pv) sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<8x32x8xf16>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>, tensor<8x32xf32>) -> (tensor<1x1x32xf32>, tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>)
  return
}

// -----

func.func @switchhead_cached_c8_rank(%x: tensor<1x1x32xf32>, %wq: tensor<32x16xf32>, %wv: tensor<8x32x8xf32>, %wo: tensor<8x8x32xf32>, %s: tensor<8x32xf32>, %pk: tensor<?x2x8xf32>, %pv: tensor<1x2x?x8xf32>) {
  // expected-error @+1 {{expected past_key to have rank 4, got 3 (C8)}}
  %y, %nk, %nv = moe.switchhead_cached %x, %x, %x, %wq, %wq, %wv, %wo, %s past(%pk, %pv) sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<?x2x8xf32>, tensor<1x2x?x8xf32>, tensor<8x32xf32>) -> (tensor<1x1x32xf32>, tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>)
  return
}

// -----

func.func @switchhead_cached_c8_positions(%x: tensor<1x1x32xf32>, %wq: tensor<32x16xf32>, %wv: tensor<8x32x8xf32>, %wo: tensor<8x8x32xf32>, %s: tensor<8x32xf32>, %pk: tensor<1x2x3x8xf32>, %pv: tensor<1x2x4x8xf32>) {
  // expected-error @+1 {{expected past_value dim 2 (P) to be 3 as in past_key dim 2, got 4 (C8)}}
  %y, %nk, %nv = moe.switchhead_cached %x, %x, %x, %wq, %wq, %wv, %wo, %s past(%pk, %pv) sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<1x2x3x8xf32>, tensor<1x2x4x8xf32>, tensor<8x32xf32>) -> (tensor<1x1x32xf32>, tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>)
  return
}

// -----

func.func @switchhead_cached_c8_heads(%x: tensor<1x1x32xf32>, %wq: tensor<32x16xf32>, %wv: tensor<8x32x8xf32>, %wo: tensor<8x8x32xf32>, %s: tensor<8x32xf32>, %pk: tensor<1x2x?x8xf32>, %pv: tensor<1x4x?x8xf32>) {
  // expected-error @+1 {{expected past_value dim 1 (H) to be num_heads = 2, got 4 (C8)}}
  %y, %nk, %nv = moe.switchhead_cached %x, %x, %x, %wq, %wq, %wv, %wo, %s past(%pk, %pv) sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<1x2x?x8xf32>, tensor<1x4x?x8xf32>, tensor<8x32xf32>) -> (tensor<1x1x32xf32>, tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>)
  return
}

// -----

func.func @switchhead_cached_c8_width(%x: tensor<1x1x32xf32>, %wq: tensor<32x16xf32>, %wv: tensor<8x32x8xf32>, %wo: tensor<8x8x32xf32>, %s: tensor<8x32xf32>, %pk: tensor<1x2x?x4xf32>, %pv: tensor<1x2x?x8xf32>) {
  // expected-error @+1 {{expected past_key dim 3 (dk) to be wq dim 1 / num_heads = 8, got 4 (C8)}}
  %y, %nk, %nv = moe.switchhead_cached %x, %x, %x, %wq, %wq, %wv, %wo, %s past(%pk, %pv) sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<1x2x?x4xf32>, tensor<1x2x?x8xf32>, tensor<8x32xf32>) -> (tensor<1x1x32xf32>, tensor<1x2x1x4xf32>, tensor<1x2x1x8xf32>)
  return
}

// -----

func.func @switchhead_cached_c8_batch(%x: tensor<1x1x32xf32>, %wq: tensor<32x16xf32>, %wv: tensor<8x32x8xf32>, %wo: tensor<8x8x32xf32>, %s: tensor<8x32xf32>, %pk: tensor<2x2x?x8xf32>, %pv: tensor<1x2x?x8xf32>) {
  // expected-error @+1 {{expected past_key dim 0 (B) to be 1 as in q_src dim 0, got 2 (C8)}}
  %y, %nk, %nv = moe.switchhead_cached %x, %x, %x, %wq, %wq, %wv, %wo, %s past(%pk, %pv) sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<2x2x?x8xf32>, tensor<1x2x?x8xf32>, tensor<8x32xf32>) -> (tensor<1x1x32xf32>, tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>)
  return
}

// -----

func.func @switchhead_cached_c8_new_heads(%x: tensor<1x1x32xf32>, %wq: tensor<32x16xf32>, %wv: tensor<8x32x8xf32>, %wo: tensor<8x8x32xf32>, %s: tensor<8x32xf32>, %pk: tensor<1x2x?x8xf32>, %pv: tensor<1x2x?x8xf32>) {
  // expected-error @+1 {{expected new_key dim 1 (H) to be num_heads = 2, got 1 (C8)}}
  %y, %nk, %nv = moe.switchhead_cached %x, %x, %x, %wq, %wq, %wv, %wo, %s past(%pk, %pv) sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>, tensor<8x32xf32>) -> (tensor<1x1x32xf32>, tensor<1x1x1x8xf32>, tensor<1x2x1x8xf32>)
  return
}

// -----

func.func @switchhead_cached_c8_new_rows(%x: tensor<1x1x32xf32>, %wq: tensor<32x16xf32>, %wv: tensor<8x32x8xf32>, %wo: tensor<8x8x32xf32>, %s: tensor<8x32xf32>, %pk: tensor<1x2x?x8xf32>, %pv: tensor<1x2x?x8xf32>) {
  // expected-error @+1 {{expected new_key dim 2 (T) to be 1 as in q_src dim 1, got 2 (C8)}}
  %y, %nk, %nv = moe.switchhead_cached %x, %x, %x, %wq, %wq, %wv, %wo, %s past(%pk, %pv) sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>, tensor<8x32xf32>) -> (tensor<1x1x32xf32>, tensor<1x2x2x8xf32>, tensor<1x2x1x8xf32>)
  return
}

// -----

func.func @switchhead_cached_c8_type(%x: tensor<1x1x32xf32>, %wq: tensor<32x16xf32>, %wv: tensor<8x32x8xf32>, %wo: tensor<8x8x32xf32>, %s: tensor<8x32xf32>, %pk: tensor<1x2x?x8xf32>, %pv: tensor<1x2x?x8xf16>) {
  // expected-error @+1 {{expected past_value element type 'f16' to match q_src element type 'f32' (C8)}}
  %y, %nk, %nv = moe.switchhead_cached %x, %x, %x, %wq, %wq, %wv, %wo, %s past(%pk, %pv) sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf16>, tensor<8x32xf32>) -> (tensor<1x1x32xf32>, tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>)
  return
}

// -----

func.func @switchhead_cached_c9(%x: tensor<1x1x32xf32>, %wq: tensor<32x16xf32>, %wv: tensor<8x32x8xf32>, %wo: tensor<8x8x32xf32>, %s: tensor<8x32xf32>, %pk: tensor<1x2x?x8xf32>, %pv: tensor<1x2x?x8xf32>) {
  // expected-error @+1 {{expected causal attention: a key/value cache holds only earlier positions (C9)}}
  %y, %nk, %nv = moe.switchhead_cached %x, %x, %x, %wq, %wq, %wv, %wo, %s past(%pk, %pv) sel_v(%s) {num_heads = 2 : i64, k = 2 : i64, causal = false}
      : (tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>, tensor<8x32xf32>) -> (tensor<1x1x32xf32>, tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>)
  return
}


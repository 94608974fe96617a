// RUN: moe-opt %s --moe-decompose-switchhead --split-input-file | FileCheck %s
// RUN: moe-opt %s --moe-decompose-switchhead --split-input-file --mlir-print-debuginfo --mlir-print-local-scope | FileCheck %s --check-prefix=LOC

// H = 2 heads, E = 4 experts per head, K = 2, dk = dv = 8, D = 32.
// Each part's ops are located at "<node>.<part>" (build::partLoc): the
// projections of queries and keys, the value routing and experts, the
// attention, the output routing and experts.
// LOC-LABEL: func @switchhead(
// LOC:         moe.rope {{.*}} loc("l0.att.qk"("l0.att"))
// LOC:         moe.route {{.*}} loc("l0.att.value_route"("l0.att"))
// LOC:         moe.grouped_matmul {{.*}} loc("l0.att.values"("l0.att"))
// LOC:         moe.attention {{.*}} loc("l0.att.attention"("l0.att"))
// LOC:         moe.route {{.*}} loc("l0.att.output_route"("l0.att"))
// LOC:         moe.grouped_matmul {{.*}} loc("l0.att.output"("l0.att"))
// CHECK-LABEL: func @switchhead
// CHECK-SAME:    %[[QS:[a-z0-9]+]]: tensor<1x?x32xf32>, %[[KS:[a-z0-9]+]]: tensor<1x?x32xf32>, %[[VS:[a-z0-9]+]]: tensor<1x?x32xf32>, %[[WQ:[a-z0-9]+]]: tensor<32x16xf32>, %[[WK:[a-z0-9]+]]: tensor<32x16xf32>, %[[WV:[a-z0-9]+]]: tensor<8x32x8xf32>, %[[WO:[a-z0-9]+]]: tensor<8x8x32xf32>, %[[SO:[a-z0-9]+]]: tensor<8x32xf32>, %[[SV:[a-z0-9]+]]: tensor<8x32xf32>
// k_src and v_src must have q_src's T (dynamic here): checked at run time,
// a mismatch reported (error 3, shape mismatch) and never read past.
// CHECK:         %[[T:.+]] = tensor.dim %[[QS]], %{{.*}} : tensor<1x?x32xf32>
// CHECK:         %[[QR:.+]] = tensor.collapse_shape %[[QS]] {{\[}}[0, 1], [2]] : tensor<1x?x32xf32> into tensor<?x32xf32>
// CHECK:         %[[KT:.+]] = tensor.dim %[[KS]], %{{.*}} : tensor<1x?x32xf32>
// CHECK:         %[[KOK:.+]] = arith.cmpi eq, %[[KT]], %[[T]] : index
// CHECK:         %[[KC:.+]] = scf.if %[[KOK]] -> (tensor<1x?x32xf32>) {
// CHECK-NEXT:      scf.yield %[[KS]]
// CHECK:           func.call @moe_report_error
// CHECK:         %[[KR:.+]] = tensor.collapse_shape %[[KC]] {{\[}}[0, 1], [2]]
// CHECK:         %[[VT:.+]] = tensor.dim %[[VS]], %{{.*}} : tensor<1x?x32xf32>
// CHECK:         %[[VOK:.+]] = arith.cmpi eq, %[[VT]], %[[T]] : index
// CHECK:         %[[VC:.+]] = scf.if %[[VOK]]
// CHECK:         %[[VR:.+]] = tensor.collapse_shape %[[VC]] {{\[}}[0, 1], [2]]
//
// Queries: projection, heads, RoPE, [B, H, T, dk].
// CHECK:         %[[Q2:.+]] = linalg.generic {{.*}} ins(%[[QR]], %[[WQ]] :
// CHECK:         %[[Q4:.+]] = tensor.expand_shape %[[Q2]] {{\[}}[0, 1], [2, 3]] output_shape [1, %{{.*}}, 2, 8] : tensor<?x16xf32> into tensor<1x?x2x8xf32>
// CHECK:         %[[QROT:.+]] = moe.rope %[[Q4]] : tensor<1x?x2x8xf32>
// CHECK:         %[[Q:.+]] = linalg.transpose ins(%[[QROT]] : {{.*}} permutation = [0, 2, 1, 3]
// CHECK:         %[[K2:.+]] = linalg.generic {{.*}} ins(%[[KR]], %[[WK]] :
// CHECK:         %[[KROT:.+]] = moe.rope
// CHECK:         %[[K:.+]] = linalg.transpose ins(%[[KROT]] :
//
// Values: selector on k_src, per-head routing (ids h*E + e over 8 experts),
// one grouped matmul reduced per head with the weights viewed [N*H, K].
// CHECK:         %[[VSC:.+]] = linalg.generic {{.*}} ins(%[[KR]], %[[SV]] :
// CHECK:         %[[VW:.+]], %[[VIDS:.+]] = moe.route %[[VSC]] gate<sigmoid> {groups = 2 : i64, k = 2 : i64} : tensor<?x8xf32> -> tensor<?x4xf32>, tensor<?x4xi32>
// CHECK:         %[[VOFF:.+]], %[[VPERM:.+]] = moe.dispatch %[[VIDS]] {num_experts = 8 : i64} : tensor<?x4xi32> -> tensor<9xi32>, tensor<?xi32>
// CHECK:         %[[VW3:.+]] = tensor.expand_shape %[[VW]] {{\[}}[0], [1, 2]] output_shape [%{{.*}}, 2, 2]
// CHECK:         %[[VWH:.+]] = tensor.collapse_shape %[[VW3]] {{\[}}[0, 1], [2]] : tensor<?x2x2xf32> into tensor<?x2xf32>
// CHECK:         %[[V2:.+]] = moe.grouped_matmul %[[VR]], %[[WV]], %[[VOFF]], %[[VPERM]] weights(%[[VWH]]) : {{.*}} -> tensor<?x8xf32>
// CHECK:         %[[V4:.+]] = tensor.expand_shape %[[V2]] {{\[}}[0, 1, 2], [3]] output_shape [1, %{{.*}}, 2, 8]
// CHECK:         %[[V:.+]] = linalg.transpose ins(%[[V4]] :
//
// CHECK:         %[[ATT:.+]] = moe.attention %[[Q]], %[[K]], %[[V]] {causal} : (tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>) -> tensor<1x2x?x8xf32>
// CHECK:         %[[ATT4:.+]] = linalg.transpose ins(%[[ATT]] :
// CHECK:         %[[R:.+]] = tensor.collapse_shape %[[ATT4]] {{\[}}[0, 1, 2], [3]] : tensor<1x?x2x8xf32> into tensor<?x8xf32>
//
// Output: selector on q_src; N*H attention rows, each feeding its head's K
// slots, reduced into token rows.
// CHECK:         %[[OSC:.+]] = linalg.generic {{.*}} ins(%[[QR]], %[[SO]] :
// CHECK:         %[[OW:.+]], %[[OIDS:.+]] = moe.route %[[OSC]] gate<sigmoid> {groups = 2 : i64, k = 2 : i64}
// CHECK:         %[[OOFF:.+]], %[[OPERM:.+]] = moe.dispatch %[[OIDS]] {num_experts = 8 : i64}
// CHECK:         %[[O2:.+]] = moe.grouped_matmul %[[R]], %[[WO]], %[[OOFF]], %[[OPERM]] weights(%[[OW]]) : (tensor<?x8xf32>, tensor<8x8x32xf32>, tensor<9xi32>, tensor<?xi32>, tensor<?x4xf32>) -> tensor<?x32xf32>
// CHECK:         %[[Y:.+]] = tensor.expand_shape %[[O2]] {{\[}}[0, 1], [2]] output_shape [1, %{{.*}}, 32] : tensor<?x32xf32> into tensor<1x?x32xf32>
// CHECK:         return %[[Y]]
func.func @switchhead(%qs: tensor<1x?x32xf32>, %ks: tensor<1x?x32xf32>, %vs: tensor<1x?x32xf32>,
                      %wq: tensor<32x16xf32>, %wk: tensor<32x16xf32>, %wv: tensor<8x32x8xf32>,
                      %wo: tensor<8x8x32xf32>, %so: tensor<8x32xf32>, %sv: tensor<8x32xf32>) -> tensor<1x?x32xf32> {
  %y = moe.switchhead %qs, %ks, %vs, %wq, %wk, %wv, %wo, %so sel_v(%sv) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<1x?x32xf32>, tensor<1x?x32xf32>, tensor<1x?x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>,
         tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<1x?x32xf32> loc("l0.att")
  return %y : tensor<1x?x32xf32>
}

// -----

// E = 1 without sel_v: a dense per-head value projection, no value routing,
// no RoPE (rotate_fraction = 0), not causal.
// CHECK-LABEL: func @switchhead_dense_values
// CHECK-NOT:     moe.rope
// CHECK:         %[[V:.+]] = linalg.generic {{.*}} ins(%{{.*}}, %{{.*}} : tensor<6x16xf32>, tensor<2x16x4xf32>) outs(%{{.*}} : tensor<6x2x4xf32>)
// CHECK:         tensor.collapse_shape %[[V]] {{\[}}[0, 1], [2]] : tensor<6x2x4xf32> into tensor<12x4xf32>
// CHECK:         moe.attention %{{.*}}, %{{.*}}, %{{.*}} : (tensor<2x2x3x4xf32>, tensor<2x2x3x4xf32>, tensor<2x2x3x4xf32>) -> tensor<2x2x3x4xf32>
// CHECK:         moe.route %{{.*}} gate<sigmoid> {groups = 2 : i64, k = 1 : i64} : tensor<6x2xf32> -> tensor<6x2xf32>, tensor<6x2xi32>
// CHECK-NOT:     moe.route
// CHECK:         moe.grouped_matmul {{.*}} -> tensor<6x16xf32>
func.func @switchhead_dense_values(%x: tensor<2x3x16xf32>, %wq: tensor<16x8xf32>, %wv: tensor<2x16x4xf32>,
                                   %wo: tensor<2x4x16xf32>, %so: tensor<2x16xf32>) -> tensor<2x3x16xf32> {
  %y = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %so {num_heads = 2 : i64, k = 1 : i64, causal = false, rotate_fraction = 0.0 : f64}
      : (tensor<2x3x16xf32>, tensor<2x3x16xf32>, tensor<2x3x16xf32>, tensor<16x8xf32>, tensor<16x8xf32>,
         tensor<2x16x4xf32>, tensor<2x4x16xf32>, tensor<2x16xf32>) -> tensor<2x3x16xf32>
  return %y : tensor<2x3x16xf32>
}

// -----

// With a cache of P positions ([B, H, P, d], head-major): the new
// queries and keys are rotated at offset P, the new keys and values are
// returned as the [B, H, T, d] rows the attention reads, and the attention
// reads the cache where it is (`past`): no copy of it next to the new rows.
// The value cache is checked to hold P positions.
// CHECK-LABEL: func @switchhead_cached
// CHECK-SAME:    %[[PK:[a-z0-9]+]]: tensor<1x2x?x8xf32>, %[[PV:[a-z0-9]+]]: tensor<1x2x?x8xf32>
// CHECK:         %[[P0:.+]] = tensor.dim %[[PK]], %c2{{(_[0-9]+)?}} : tensor<1x2x?x8xf32>
// CHECK:         %[[PV0:.+]] = tensor.dim %[[PV]], %c2{{(_[0-9]+)?}} : tensor<1x2x?x8xf32>
// CHECK:         arith.cmpi eq, %[[PV0]], %[[P0]] : index
// CHECK:         func.call @moe_report_error
// CHECK:         %[[P:.+]] = tensor.dim %[[PK]], %c2{{(_[0-9]+)?}} : tensor<1x2x?x8xf32>
// CHECK:         moe.rope %{{.*}} offset(%[[P]])
// CHECK:         %[[Q:.+]] = linalg.transpose {{.*}} permutation = [0, 2, 1, 3]
// CHECK:         moe.rope %{{.*}} offset(%[[P]])
// CHECK:         %[[K:.+]] = linalg.transpose {{.*}} permutation = [0, 2, 1, 3]
// CHECK:         moe.grouped_matmul
// CHECK:         %[[V:.+]] = linalg.transpose {{.*}} permutation = [0, 2, 1, 3]
// CHECK-NOT:     tensor.insert_slice
// CHECK-NOT:     permutation = [1, 0, 2, 3]
// CHECK:         moe.attention %[[Q]], %[[K]], %[[V]] past(%[[PK]], %{{.*}}) {causal} : (tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>) -> tensor<1x2x1x8xf32>
// CHECK:         return %{{.*}}, %[[K]], %[[V]]
// CHECK-NOT:     moe.switchhead
func.func @switchhead_cached(%x: tensor<1x1x32xf32>, %wq: tensor<32x16xf32>, %wv: tensor<8x32x8xf32>,
                             %wo: tensor<8x8x32xf32>, %s: tensor<8x32xf32>,
                             %pk: tensor<1x2x?x8xf32>, %pv: tensor<1x2x?x8xf32>)
    -> (tensor<1x1x32xf32>, tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>) {
  %y, %nk, %nv = moe.switchhead_cached %x, %x, %x, %wq, %wq, %wv, %wo, %s past(%pk, %pv) sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<8x32x8xf32>,
         tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>, tensor<8x32xf32>)
      -> (tensor<1x1x32xf32>, tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>)
  return %y, %nk, %nv : tensor<1x1x32xf32>, tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>
}

// -----

// sel_o handed over as a transpose of a [D, H*E] value (as
// moe-fold-constant-layouts stores constant selectors): the routing scores
// read that value ("nd,de->ne").
// CHECK-DAG:   #[[RHST:[a-z0-9]+]] = affine_map<(d0, d1, d2) -> (d2, d1)>
// CHECK-LABEL: func @switchhead_selector_by_column
// CHECK-SAME:    %[[SOT:[a-z0-9]+]]: tensor<16x2xf32>
// CHECK:         %[[S:.+]] = linalg.generic {indexing_maps = [#{{[a-z0-9]+}}, #[[RHST]], #{{[a-z0-9]+}}]{{.*}} ins(%{{.*}}, %[[SOT]] : tensor<6x16xf32>, tensor<16x2xf32>)
// CHECK:         moe.route %[[S]] gate<sigmoid>
func.func @switchhead_selector_by_column(%x: tensor<2x3x16xf32>, %wq: tensor<16x8xf32>, %wv: tensor<2x16x4xf32>,
                                         %wo: tensor<2x4x16xf32>, %sot: tensor<16x2xf32>) -> tensor<2x3x16xf32> {
  %e = tensor.empty() : tensor<2x16xf32>
  %so = linalg.transpose ins(%sot : tensor<16x2xf32>) outs(%e : tensor<2x16xf32>) permutation = [1, 0]
  %y = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %so {num_heads = 2 : i64, k = 1 : i64, causal = false, rotate_fraction = 0.0 : f64}
      : (tensor<2x3x16xf32>, tensor<2x3x16xf32>, tensor<2x3x16xf32>, tensor<16x8xf32>, tensor<16x8xf32>,
         tensor<2x16x4xf32>, tensor<2x4x16xf32>, tensor<2x16xf32>) -> tensor<2x3x16xf32>
  return %y : tensor<2x3x16xf32>
}

// RUN: moe-opt %s --convert-moe-to-linalg --split-input-file | FileCheck %s
// RUN: moe-opt %s --convert-moe-to-linalg --split-input-file --mlir-print-debuginfo --mlir-print-local-scope | FileCheck %s --check-prefix=LOC

// Reference lowering of each primitive op (numerics are checked end to end by
// test/Execution; these checks pin the structure).

// The histogram, the exclusive prefix sum and the stable scatter are
// sequential loops; an id outside [0, E) is reported to the runtime
// (moe_report_error(1)) and replaced by 0, so nothing is written out of
// bounds.
// CHECK:         func.func private @moe_report_error(i32)
// CHECK-LABEL: func @dispatch
// CHECK:         tensor.collapse_shape %{{.*}} {{\[}}[0, 1]] : tensor<?x2xi32> into tensor<?xi32>
// CHECK:         scf.for
// CHECK:           scf.if
// CHECK:             %[[CODE:.+]] = arith.constant 1 : i32
// CHECK:             func.call @moe_report_error(%[[CODE]])
// CHECK:           arith.select
// CHECK:           tensor.insert
// CHECK:         scf.for
// CHECK:         scf.for
// CHECK:           func.call @moe_report_error
// CHECK-NOT:     moe.dispatch %
func.func @dispatch(%ids: tensor<?x2xi32>) -> (tensor<5xi32>, tensor<?xi32>) {
  %o, %p = moe.dispatch %ids {num_experts = 4 : i64} : tensor<?x2xi32> -> tensor<5xi32>, tensor<?xi32>
  return %o, %p : tensor<5xi32>, tensor<?xi32>
}

// -----

// CHECK-LABEL: func @grouped_matmul
// Three loops of independent iterations (scf.forall), none allocating per
// iteration: the rows gathered in expert order through perm (a row copy per
// slot, perm checked), one linalg.matmul per expert segment written in
// place into its rows (segment bounds checked), and the weighted reduction
// per token, each slot's row read through the inverse of perm (N * S = M
// checked), slots in increasing order.
// CHECK:         %[[XS:.*]] = scf.forall (%{{.*}}) in (%{{.*}}) shared_outs(%{{.*}} = %{{.*}}) -> (tensor<?x16xf32>)
// CHECK:           tensor.extract %{{.*}} : tensor<?xi32>
// CHECK:           func.call @moe_report_error
// CHECK:           arith.divui
// CHECK:           tensor.extract_slice %{{.*}} : tensor<?x16xf32> to tensor<1x16xf32>
// CHECK:           tensor.parallel_insert_slice %{{.*}} : tensor<1x16xf32> into tensor<?x16xf32>
// CHECK:         %[[PS:.*]] = scf.forall (%[[E:.*]]) in ({{[^)]*}}) shared_outs(%[[O:.*]] = %{{.*}}) -> (tensor<?x8xf32>)
// CHECK:           %[[SEG:.*]] = tensor.extract_slice %[[XS]][%[[LO:.*]], 0] [%[[N:.*]], 16] [1, 1]
// CHECK:           %[[WE:.*]] = tensor.extract_slice %{{.*}}[%[[E]], 0, 0] [1, 16, 8] [1, 1, 1] : tensor<4x16x8xf32> to tensor<16x8xf32>
// CHECK:           %[[ROWS:.*]] = tensor.extract_slice %[[O]][%[[LO]], 0] [%[[N]], 8] [1, 1]
// CHECK:           %[[Z:.*]] = linalg.fill {{.*}} outs(%[[ROWS]]
// CHECK:           %[[P:.*]] = linalg.matmul ins(%[[SEG]], %[[WE]] : {{.*}}) outs(%[[Z]]
// CHECK:             tensor.parallel_insert_slice %[[P]] into %[[O]][%[[LO]], 0] [%[[N]], 8]
// CHECK:         %[[INV:.*]] = scf.for
// CHECK:           tensor.insert
// CHECK:         arith.muli
// CHECK:         func.call @moe_report_error
// CHECK:         scf.forall (%[[N:.*]]) in (%{{.*}}) shared_outs(%[[OUT:.*]] = %{{.*}}) -> (tensor<?x8xf32>)
// CHECK:           %[[ACC:.*]] = tensor.extract_slice %[[OUT]][%[[N]], 0] [1, 8] [1, 1]
// CHECK:           linalg.fill {{.*}} outs(%[[ACC]]
// CHECK:           scf.for
// CHECK:             tensor.extract %[[INV]]
// CHECK:             %[[ROW:.*]] = tensor.extract_slice %[[PS]]
// CHECK:             %[[SW:.*]] = tensor.extract %{{.*}} : tensor<?x2xf32>
// CHECK:             linalg.generic {{.*}} ins(%[[ROW]] : tensor<1x8xf32>)
// CHECK:               arith.mulf %[[SW]]
// CHECK:               arith.addf
// CHECK:           tensor.parallel_insert_slice %{{.*}} into %[[OUT]][%[[N]], 0] [1, 8]
// CHECK-NOT:     moe.grouped_matmul %
func.func @grouped_matmul(%x: tensor<?x16xf32>, %w: tensor<4x16x8xf32>, %off: tensor<5xi32>,
                          %perm: tensor<?xi32>, %sw: tensor<?x2xf32>) -> tensor<?x8xf32> {
  %y = moe.grouped_matmul %x, %w, %off, %perm weights(%sw) : (tensor<?x16xf32>, tensor<4x16x8xf32>, tensor<5xi32>, tensor<?xi32>, tensor<?x2xf32>) -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

// The epilogue on each expert's rows (bias row e, then the activation),
// and the sorted layout: with sorted_result the result is the rows in
// expert order (no inverse permutation, no scatter); with sorted_input the
// segments read the input's rows directly (no gather), the input checked
// to have M rows.
// CHECK-LABEL: func @grouped_matmul_sorted
// CHECK:         %[[PS:.*]] = scf.forall (%[[E:.*]]) in ({{[^)]*}}) shared_outs(%[[O:.*]] = %{{.*}}) -> (tensor<?x8xf32>)
// CHECK:           %[[P:.*]] = linalg.matmul
// CHECK:           %[[B:.*]] = tensor.extract_slice %{{.*}}[%[[E]], 0] [1, 8] [1, 1] : tensor<4x8xf32> to tensor<8xf32>
// CHECK:           %[[EP:.*]] = linalg.generic {{.*}} ins(%[[P]], %[[B]] : tensor<?x8xf32>, tensor<8xf32>) outs(%[[P]] : tensor<?x8xf32>)
// CHECK:             arith.addf
// CHECK:             arith.maximumf
// CHECK:             tensor.parallel_insert_slice %[[EP]] into %[[O]]
// CHECK-NOT:     scf.for
// CHECK:         %[[H:.*]] = scf.if
// CHECK-NEXT:      scf.yield %[[PS]]
// CHECK-NOT:     scf.forall (%{{.*}}) in ({{[^)]*}}) shared_outs(%{{.*}}) -> (tensor<?x8xf32>)
// CHECK:         %[[PS2:.*]] = scf.forall (%{{.*}}) in ({{[^)]*}}) shared_outs(%{{.*}}) -> (tensor<?x16xf32>)
// CHECK:           tensor.extract_slice %[[H]][
// CHECK:           linalg.matmul
// CHECK:         %[[INV:.*]] = scf.for
// CHECK:         scf.forall
// CHECK:             tensor.extract %[[INV]]
// CHECK:             tensor.extract_slice %[[PS2]]
// CHECK-NOT:     moe.grouped_matmul %
func.func @grouped_matmul_sorted(%x: tensor<?x16xf32>, %w1: tensor<4x16x8xf32>, %b1: tensor<4x8xf32>,
                                 %w2: tensor<4x8x16xf32>, %off: tensor<5xi32>, %perm: tensor<?xi32>,
                                 %sw: tensor<?x2xf32>) -> tensor<?x16xf32> {
  %h = moe.grouped_matmul %x, %w1, %off, %perm bias(%b1) act<relu> {sorted_result} : (tensor<?x16xf32>, tensor<4x16x8xf32>, tensor<5xi32>, tensor<?xi32>, tensor<4x8xf32>) -> tensor<?x8xf32>
  %y = moe.grouped_matmul %h, %w2, %off, %perm weights(%sw) {sorted_input} : (tensor<?x8xf32>, tensor<4x8x16xf32>, tensor<5xi32>, tensor<?xi32>, tensor<?x2xf32>) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// CHECK-LABEL: func @route
// Scores viewed [N, G, E]; top-k as masked arg-max passes; global ids g*E + e.
// CHECK:         tensor.expand_shape %{{.*}} {{\[}}[0], [1, 2]] output_shape [%{{.*}}, 2, 4] : tensor<?x8xf32> into tensor<?x2x4xf32>
// CHECK:         scf.for
// CHECK:           arith.cmpf ogt
// CHECK:         math.exp
// CHECK:         arith.muli
// CHECK:         tensor.collapse_shape {{.*}} into tensor<?x4xf32>
// CHECK-NOT:     moe.route %
func.func @route(%s: tensor<?x8xf32>) -> (tensor<?x4xf32>, tensor<?x4xi32>) {
  %w, %i = moe.route %s gate<sigmoid> {k = 2 : i64, groups = 2 : i64} : tensor<?x8xf32> -> tensor<?x4xf32>, tensor<?x4xi32>
  return %w, %i : tensor<?x4xf32>, tensor<?x4xi32>
}

// -----

// CHECK-LABEL: func @switch_route
// CHECK:         math.ceil
// CHECK:         arith.cmpi sle
// CHECK-NOT:     moe.switch_route
func.func @switch_route(%s: tensor<?x4xf32>) -> (tensor<?x1xf32>, tensor<?x1xi32>, tensor<?xi1>) {
  %w, %i, %k = moe.switch_route %s {capacity_factor = 1.5 : f64} : tensor<?x4xf32> -> tensor<?x1xf32>, tensor<?x1xi32>, tensor<?xi1>
  return %w, %i, %k : tensor<?x1xf32>, tensor<?x1xi32>, tensor<?xi1>
}

// -----

// CHECK-LABEL: func @tree_route
// CHECK:         arith.cmpf ogt
// CHECK:         arith.shli
// CHECK-NOT:     moe.tree_route
func.func @tree_route(%u: tensor<?x2xf32>) -> (tensor<?x3xf32>, tensor<?x3xi32>) {
  %w, %i = moe.tree_route %u mode<path> : tensor<?x2xf32> -> tensor<?x3xf32>, tensor<?x3xi32>
  return %w, %i : tensor<?x3xf32>, tensor<?x3xi32>
}

// -----

// RoPE: cos and sin once per (position, frequency) in a [T, half] table
// (two results of one generic over [T, max(half, 1)]), read by the
// elementwise rotation, which computes no transcendental itself.
// CHECK-LABEL: func @attention_rope
// CHECK:         %[[TAB:.*]]:2 = linalg.generic {{.*}}iterator_types = ["parallel", "parallel"]{{.*}} outs({{.*}} : tensor<?x?xf32>, tensor<?x?xf32>)
// CHECK:           math.powf
// CHECK:           math.cos
// CHECK:           math.sin
// CHECK:         linalg.generic {{.*}}ins(%{{.*}} : tensor<1x?x2x8xf32>)
// CHECK-NOT:       math.
// CHECK:           tensor.extract %[[TAB]]#0
// CHECK:           tensor.extract %[[TAB]]#1
// CHECK:           arith.select
// Attention without a cache in blocks of 32 query rows per (batch, head):
// the causal blocks read only the keys their last row sees (S' = t0 + rows
// + S - T when that is in [1, S)), and a block's scores, softmax and P·V
// never leave it.
// CHECK:         %[[KT:.*]] = linalg.transpose
// CHECK:         scf.forall (%[[B:.*]], %[[H:.*]], %[[BLK:.*]]) in (1, 2, %{{.*}}) shared_outs(%[[OUT:.*]] = %{{.*}}) -> (tensor<1x2x?x8xf32>)
// CHECK:           %[[T0:.*]] = arith.muli %[[BLK]], %c32
// CHECK:           arith.cmpi sge
// CHECK:           arith.cmpi slt
// CHECK:           %[[COLS:.*]] = arith.select
// CHECK:           %[[QB:.*]] = tensor.extract_slice %{{.*}}[%[[B]], %[[H]], %[[T0]], 0] [1, 1, %[[ROWS:.*]], 8] [1, 1, 1, 1] : tensor<1x2x?x8xf32> to tensor<?x8xf32>
// CHECK:           %[[KB:.*]] = tensor.extract_slice %[[KT]][%[[B]], %[[H]], 0, 0] [1, 1, 8, %[[COLS]]] [1, 1, 1, 1] : tensor<1x2x8x?xf32> to tensor<8x?xf32>
// CHECK:           %[[VB:.*]] = tensor.extract_slice %{{.*}}[%[[B]], %[[H]], 0, 0] [1, 1, %[[COLS]], 8] [1, 1, 1, 1] : tensor<1x2x?x8xf32> to tensor<?x8xf32>
// CHECK:           %[[S:.*]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction"]{{.*}} ins(%[[QB]], %[[KB]] : tensor<?x8xf32>, tensor<8x?xf32>)
// CHECK:           linalg.generic {{.*}} ins(%[[S]] : tensor<?x?xf32>)
// CHECK:             linalg.index 0
// CHECK:             arith.cmpi sle
// CHECK:           math.exp
// CHECK:           arith.divf
// CHECK:           %[[O:.*]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction"]{{.*}} ins(%{{.*}}, %[[VB]] : tensor<?x?xf32>, tensor<?x8xf32>)
// CHECK:             tensor.parallel_insert_slice %[[O]] into %[[OUT]][%[[B]], %[[H]], %[[T0]], 0] [1, 1, %[[ROWS]], 8]
// CHECK-NOT:     moe.{{[a-z_]+}} %
func.func @attention_rope(%q: tensor<1x?x2x8xf32>, %k: tensor<1x2x?x8xf32>) -> tensor<1x2x?x8xf32> {
  %r = moe.rope %q : tensor<1x?x2x8xf32> -> tensor<1x?x2x8xf32>
  %o = moe.attention %k, %k, %k {causal} : (tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>) -> tensor<1x2x?x8xf32>
  return %o : tensor<1x2x?x8xf32>
}

// -----

// Attention over a cache read in place: the scores of the P cached keys
// ([B, H, P, d] read as "bhpd") and of the S new ones (read in place as
// "bhsd", d contiguous in both operands: dot products for a decode step's
// one query row) side by side [B, H, T, P + S], the causal mask shifted by
// P + S - T, then the cached and the new values' shares added.
// The parts are located at "<node>.scores", ".softmax" and ".values"
// (build::partLoc), the names moe-run --profile shows.
// LOC-LABEL: func @attention_past
// LOC:         } -> tensor<1x2x1x1xf32> loc("l0.att.attention.scores"("l0.att.attention"))
// LOC:         math.exp {{.*}} loc("l0.att.attention.softmax"("l0.att.attention"))
// LOC:         } -> tensor<1x2x1x4xf32> loc("l0.att.attention.values"("l0.att.attention"))
// CHECK-LABEL: func @attention_past
// CHECK-SAME:    %[[Q:[a-z0-9]+]]: tensor<1x2x1x8xf32>, %[[PK:[a-z0-9]+]]: tensor<1x2x?x8xf32>, %[[PV:[a-z0-9]+]]: tensor<1x2x?x4xf32>
// CHECK-NOT:     linalg.transpose
// CHECK:         %[[NEW:.*]] = linalg.generic {{.*}}ins(%[[Q]], %[[Q]] : tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>)
// CHECK:         %[[OLD:.*]] = linalg.generic {{.*}}ins(%[[Q]], %{{.*}} : tensor<1x2x1x8xf32>, tensor<1x2x?x8xf32>)
// CHECK:         %[[S1:.*]] = tensor.insert_slice %[[OLD]] into
// CHECK:         tensor.insert_slice %[[NEW]] into %[[S1]][0, 0, 0, %{{.*}}]
// CHECK:         arith.cmpi sle
// CHECK:         math.exp
// CHECK:         %[[A:.*]] = linalg.generic {{.*}}ins(%{{.*}}, %{{.*}} : tensor<1x2x1x?xf32>, tensor<1x2x?x4xf32>)
// CHECK:         %[[B:.*]] = linalg.generic {{.*}}ins(%{{.*}}, %{{.*}} : tensor<1x2x1x1xf32>, tensor<1x2x1x4xf32>)
// CHECK:         linalg.generic {{.*}}ins(%[[A]], %[[B]] : tensor<1x2x1x4xf32>, tensor<1x2x1x4xf32>)
// CHECK:           arith.addf
// CHECK-NOT:     moe.attention
func.func @attention_past(%q: tensor<1x2x1x8xf32>, %pk: tensor<1x2x?x8xf32>, %pv: tensor<1x2x?x4xf32>, %v: tensor<1x2x1x4xf32>) -> tensor<1x2x1x4xf32> {
  %o = moe.attention %q, %q, %v past(%pk, %pv) {causal} : (tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>, tensor<1x2x1x4xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x4xf32>) -> tensor<1x2x1x4xf32> loc("l0.att.attention")
  return %o : tensor<1x2x1x4xf32>
}

// -----

// A cache of no position (@prefill's): the blocked form without a cache.
// CHECK-LABEL: func @attention_empty_past
// CHECK:         scf.forall (%{{.*}}, %{{.*}}, %{{.*}}) in (1, 2, %{{.*}})
// CHECK-NOT:     tensor.insert_slice
// CHECK-NOT:     moe.attention
func.func @attention_empty_past(%q: tensor<1x2x?x8xf32>, %pk: tensor<1x2x0x8xf32>, %pv: tensor<1x2x0x4xf32>, %v: tensor<1x2x?x4xf32>) -> tensor<1x2x?x4xf32> {
  %o = moe.attention %q, %q, %v past(%pk, %pv) {causal} : (tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x4xf32>, tensor<1x2x0x8xf32>, tensor<1x2x0x4xf32>) -> tensor<1x2x?x4xf32>
  return %o : tensor<1x2x?x4xf32>
}

// -----

// With an offset, the table's positions are offset + t.
// CHECK-LABEL: func @rope_offset
// CHECK-SAME:    %{{.*}}: tensor<1x?x2x8xf32>, %[[P:.*]]: index
// CHECK:         linalg.generic {{.*}}outs({{.*}} : tensor<?x?xf32>, tensor<?x?xf32>)
// CHECK:           %[[T:.*]] = linalg.index 0 : index
// CHECK:           arith.addi %[[T]], %[[P]] : index
// CHECK:           math.cos
func.func @rope_offset(%q: tensor<1x?x2x8xf32>, %p: index) -> tensor<1x?x2x8xf32> {
  %r = moe.rope %q offset(%p) : tensor<1x?x2x8xf32> -> tensor<1x?x2x8xf32>
  return %r : tensor<1x?x2x8xf32>
}

// -----

// CHECK-LABEL: func @mot
// CHECK-COUNT-2: linalg.generic
// CHECK-NOT:     moe.mot
func.func @mot(%x: tensor<4x?x8xf32>, %l: tensor<4x?x3xf32>) -> tensor<4x?x8xf32> {
  %z, %m = moe.mot_mix %x, %l mode<continuous> {group_size = 2 : i64} : (tensor<4x?x8xf32>, tensor<4x?x3xf32>) -> tensor<?x2x3x8xf32>, tensor<?x2x2x3xf32>
  %o = moe.mot_unmix %z, %m : (tensor<?x2x3x8xf32>, tensor<?x2x2x3xf32>) -> tensor<4x?x8xf32>
  return %o : tensor<4x?x8xf32>
}

// -----

// An expand_shape with two dynamic dims in one group stays a view (it was
// a gather copy until moe-expand-views made the view lowerable).
// CHECK-LABEL: func @expand_two_dynamic
// CHECK-NEXT:    %[[E:.*]] = tensor.expand_shape
// CHECK-NEXT:    return %[[E]]
func.func @expand_two_dynamic(%x: tensor<?x4xf32>, %b: index, %t: index) -> tensor<?x?x4xf32> {
  %e = tensor.expand_shape %x [[0, 1], [2]] output_shape [%b, %t, 4] : tensor<?x4xf32> into tensor<?x?x4xf32>
  return %e : tensor<?x?x4xf32>
}

// -----

// The sizes of such an expand are its own operands (upstream's fold of
// tensor.dim handles a group with one dynamic dim only), so a broadcast
// check on them folds away.
// CHECK-LABEL: func @dim_of_expand_two_dynamic
// CHECK-SAME:    (%{{.*}}: tensor<?x4xf32>, %[[B:.*]]: index, %[[T:.*]]: index)
// CHECK-NOT:     tensor.dim
// CHECK:         return %[[B]], %[[T]]
func.func @dim_of_expand_two_dynamic(%x: tensor<?x4xf32>, %b: index, %t: index) -> (index, index) {
  %e = tensor.expand_shape %x [[0, 1], [2]] output_shape [%b, %t, 4] : tensor<?x4xf32> into tensor<?x?x4xf32>
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %d0 = tensor.dim %e, %c0 : tensor<?x?x4xf32>
  %d1 = tensor.dim %e, %c1 : tensor<?x?x4xf32>
  return %d0, %d1 : index, index
}

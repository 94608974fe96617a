// RUN: moe-opt %s -moe-roll-repeats="min-ops=2" | FileCheck %s
// RUN: moe-opt %s -moe-roll-repeats | FileCheck %s --check-prefix=DEFAULT

// The default min-ops (16) leaves these short sequences alone.
// DEFAULT-NOT: scf.for

// Three copies of a two-op layer on the shared weight %w: one loop whose
// iteration argument is the stream (copy 0 reads %x where copy k reads copy
// k-1's sum).
// CHECK-LABEL: func.func @three_copies
//  CHECK-SAME: (%[[X:.*]]: tensor<4xf32>, %[[W:.*]]: tensor<4xf32>)
//   CHECK-DAG: %[[C0:.*]] = arith.constant 0 : index
//   CHECK-DAG: %[[C1:.*]] = arith.constant 1 : index
//   CHECK-DAG: %[[C3:.*]] = arith.constant 3 : index
//       CHECK: %[[R:.*]] = scf.for %{{.*}} = %[[C0]] to %[[C3]] step %[[C1]] iter_args(%[[H:.*]] = %[[X]]) -> (tensor<4xf32>) {
//  CHECK-NEXT:   %[[A:.*]] = arith.mulf %[[H]], %[[W]]
//  CHECK-NEXT:   %[[B:.*]] = arith.addf %[[A]], %[[H]]
//  CHECK-NEXT:   scf.yield %[[B]]
//  CHECK-NEXT: } {moe.repeats = 3 : i64}
//  CHECK-NEXT: return %[[R]]
func.func @three_copies(%x: tensor<4xf32>, %w: tensor<4xf32>) -> tensor<4xf32> {
  %a0 = arith.mulf %x, %w : tensor<4xf32>
  %b0 = arith.addf %a0, %x : tensor<4xf32>
  %a1 = arith.mulf %b0, %w : tensor<4xf32>
  %b1 = arith.addf %a1, %b0 : tensor<4xf32>
  %a2 = arith.mulf %b1, %w : tensor<4xf32>
  %b2 = arith.addf %a2, %b1 : tensor<4xf32>
  return %b2 : tensor<4xf32>
}

// %x is both the stream's start (carried) and a skip input every copy
// reads (invariant): the invariant use keeps %x.
// CHECK-LABEL: func.func @carried_and_invariant
//  CHECK-SAME: (%[[X:.*]]: tensor<4xf32>, %[[W:.*]]: tensor<4xf32>)
//       CHECK: %[[R:.*]] = scf.for %{{.*}} iter_args(%[[H:.*]] = %[[X]]) -> (tensor<4xf32>) {
//  CHECK-NEXT:   %[[A:.*]] = arith.mulf %[[H]], %[[W]]
//  CHECK-NEXT:   %[[B:.*]] = arith.addf %[[A]], %[[H]]
//  CHECK-NEXT:   %[[C:.*]] = arith.addf %[[B]], %[[X]]
//  CHECK-NEXT:   scf.yield %[[C]]
//  CHECK-NEXT: } {moe.repeats = 2 : i64}
//  CHECK-NEXT: return %[[R]]
func.func @carried_and_invariant(%x: tensor<4xf32>, %w: tensor<4xf32>) -> tensor<4xf32> {
  %a0 = arith.mulf %x, %w : tensor<4xf32>
  %b0 = arith.addf %a0, %x : tensor<4xf32>
  %c0 = arith.addf %b0, %x : tensor<4xf32>
  %a1 = arith.mulf %c0, %w : tensor<4xf32>
  %b1 = arith.addf %a1, %c0 : tensor<4xf32>
  %c1 = arith.addf %b1, %x : tensor<4xf32>
  return %c1 : tensor<4xf32>
}

// MoEUT's shape: G = 2 layers with their own weights (%w1, %w2), R = 2.
// One layer is no period (its copies read different weights); two are.
// CHECK-LABEL: func.func @two_groups
//  CHECK-SAME: (%[[X:.*]]: tensor<4xf32>, %[[W1:.*]]: tensor<4xf32>, %[[W2:.*]]: tensor<4xf32>)
//       CHECK: scf.for %{{.*}} iter_args(%[[H:.*]] = %[[X]]) -> (tensor<4xf32>) {
//  CHECK-NEXT:   %[[A:.*]] = arith.mulf %[[H]], %[[W1]]
//  CHECK-NEXT:   %[[B:.*]] = arith.addf %[[A]], %[[H]]
//  CHECK-NEXT:   %[[C:.*]] = arith.mulf %[[B]], %[[W2]]
//  CHECK-NEXT:   %[[D:.*]] = arith.addf %[[C]], %[[B]]
//  CHECK-NEXT:   scf.yield %[[D]]
//  CHECK-NEXT: } {moe.repeats = 2 : i64}
func.func @two_groups(%x: tensor<4xf32>, %w1: tensor<4xf32>, %w2: tensor<4xf32>) -> tensor<4xf32> {
  %a0 = arith.mulf %x, %w1 : tensor<4xf32>
  %b0 = arith.addf %a0, %x : tensor<4xf32>
  %c0 = arith.mulf %b0, %w2 : tensor<4xf32>
  %d0 = arith.addf %c0, %b0 : tensor<4xf32>
  %a1 = arith.mulf %d0, %w1 : tensor<4xf32>
  %b1 = arith.addf %a1, %d0 : tensor<4xf32>
  %c1 = arith.mulf %b1, %w2 : tensor<4xf32>
  %d1 = arith.addf %c1, %b1 : tensor<4xf32>
  return %d1 : tensor<4xf32>
}

// Same structure, different weights in every copy: not a repeat.
// CHECK-LABEL: func.func @distinct_weights
//   CHECK-NOT: scf.for
//       CHECK: return
func.func @distinct_weights(%x: tensor<4xf32>, %w1: tensor<4xf32>, %w2: tensor<4xf32>, %w3: tensor<4xf32>) -> tensor<4xf32> {
  %a0 = arith.mulf %x, %w1 : tensor<4xf32>
  %b0 = arith.addf %a0, %x : tensor<4xf32>
  %a1 = arith.mulf %b0, %w2 : tensor<4xf32>
  %b1 = arith.addf %a1, %b0 : tensor<4xf32>
  %a2 = arith.mulf %b1, %w3 : tensor<4xf32>
  %b2 = arith.addf %a2, %b1 : tensor<4xf32>
  return %b2 : tensor<4xf32>
}

// Copy k reads copy k-2's sum too: both are carried, as two streams. The
// loop starts one op in (copy 0's product reads %y, no copy's value), which
// is the same computation: b0 = a0 + x, a1 = b0 * x, b1 = a1 + b0,
// a2 = b1 * b0, b2 = a2 + b1.
// CHECK-LABEL: func.func @reads_two_back
//  CHECK-SAME: (%[[X:.*]]: tensor<4xf32>, %[[Y:.*]]: tensor<4xf32>)
//       CHECK: %[[A0:.*]] = arith.mulf %[[X]], %[[Y]]
//       CHECK: %[[R:.*]]:2 = scf.for %{{.*}} iter_args(%[[P:.*]] = %[[A0]], %[[Q:.*]] = %[[X]])
//  CHECK-NEXT:   %[[B:.*]] = arith.addf %[[P]], %[[Q]]
//  CHECK-NEXT:   %[[A:.*]] = arith.mulf %[[B]], %[[Q]]
//  CHECK-NEXT:   scf.yield %[[A]], %[[B]]
//  CHECK-NEXT: } {moe.repeats = 2 : i64}
//  CHECK-NEXT: %[[B2:.*]] = arith.addf %[[R]]#0, %[[R]]#1
//  CHECK-NEXT: return %[[B2]]
func.func @reads_two_back(%x: tensor<4xf32>, %y: tensor<4xf32>) -> tensor<4xf32> {
  %a0 = arith.mulf %x, %y : tensor<4xf32>
  %b0 = arith.addf %a0, %x : tensor<4xf32>
  %a1 = arith.mulf %b0, %x : tensor<4xf32>
  %b1 = arith.addf %a1, %b0 : tensor<4xf32>
  %a2 = arith.mulf %b1, %b0 : tensor<4xf32>
  %b2 = arith.addf %a2, %b1 : tensor<4xf32>
  return %b2 : tensor<4xf32>
}

// Copies 0 and 1 read %y (invariant) where copy 2 reads %x: copy 2 is no
// repeat and stays after a loop of two, reading its result.
// CHECK-LABEL: func.func @inconsistent_third_copy
//  CHECK-SAME: (%[[X:.*]]: tensor<4xf32>, %[[Y:.*]]: tensor<4xf32>)
//       CHECK: %[[R:.*]] = scf.for %{{.*}} iter_args(%[[H:.*]] = %[[X]])
//  CHECK-NEXT:   %[[A:.*]] = arith.mulf %[[H]], %[[Y]]
//  CHECK-NEXT:   %[[B:.*]] = arith.addf %[[A]], %[[H]]
//  CHECK-NEXT:   scf.yield %[[B]]
//  CHECK-NEXT: } {moe.repeats = 2 : i64}
//  CHECK-NEXT: %[[A2:.*]] = arith.mulf %[[R]], %[[X]]
//  CHECK-NEXT: %[[B2:.*]] = arith.addf %[[A2]], %[[R]]
//  CHECK-NEXT: return %[[B2]]
func.func @inconsistent_third_copy(%x: tensor<4xf32>, %y: tensor<4xf32>) -> tensor<4xf32> {
  %a0 = arith.mulf %x, %y : tensor<4xf32>
  %b0 = arith.addf %a0, %x : tensor<4xf32>
  %a1 = arith.mulf %b0, %y : tensor<4xf32>
  %b1 = arith.addf %a1, %b0 : tensor<4xf32>
  %a2 = arith.mulf %b1, %x : tensor<4xf32>
  %b2 = arith.addf %a2, %b1 : tensor<4xf32>
  return %b2 : tensor<4xf32>
}

// The last copy's product is used after the sequence and is no carried
// value: the last copy stays after the loop and reads its result.
// CHECK-LABEL: func.func @last_copy_escapes
//  CHECK-SAME: (%[[X:.*]]: tensor<4xf32>, %[[W:.*]]: tensor<4xf32>)
//       CHECK: %[[R:.*]] = scf.for %{{.*}} iter_args(%[[H:.*]] = %[[X]])
//       CHECK: } {moe.repeats = 2 : i64}
//  CHECK-NEXT: %[[A:.*]] = arith.mulf %[[R]], %[[W]]
//  CHECK-NEXT: %[[B:.*]] = arith.addf %[[A]], %[[R]]
//  CHECK-NEXT: return %[[B]], %[[A]]
func.func @last_copy_escapes(%x: tensor<4xf32>, %w: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %a0 = arith.mulf %x, %w : tensor<4xf32>
  %b0 = arith.addf %a0, %x : tensor<4xf32>
  %a1 = arith.mulf %b0, %w : tensor<4xf32>
  %b1 = arith.addf %a1, %b0 : tensor<4xf32>
  %a2 = arith.mulf %b1, %w : tensor<4xf32>
  %b2 = arith.addf %a2, %b1 : tensor<4xf32>
  return %b2, %a2 : tensor<4xf32>, tensor<4xf32>
}

// A middle copy's product is used after the sequence: no loop can hold it.
// CHECK-LABEL: func.func @middle_copy_escapes
//   CHECK-NOT: scf.for
//       CHECK: return
func.func @middle_copy_escapes(%x: tensor<4xf32>, %w: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %a0 = arith.mulf %x, %w : tensor<4xf32>
  %b0 = arith.addf %a0, %x : tensor<4xf32>
  %a1 = arith.mulf %b0, %w : tensor<4xf32>
  %b1 = arith.addf %a1, %b0 : tensor<4xf32>
  %a2 = arith.mulf %b1, %w : tensor<4xf32>
  %b2 = arith.addf %a2, %b1 : tensor<4xf32>
  return %b2, %a1 : tensor<4xf32>, tensor<4xf32>
}

// Two streams carried side by side; regions compared op by op, and a
// carried value read inside a region (tensor.extract in the body) is the
// iteration argument there too.
// CHECK-LABEL: func.func @regions_and_two_streams
//  CHECK-SAME: (%[[X:.*]]: tensor<4xf32>, %[[Y:.*]]: tensor<4xf32>, %[[W:.*]]: tensor<4xf32>)
//       CHECK: %[[R:.*]]:2 = scf.for %{{.*}} iter_args(%[[H:.*]] = %[[X]], %[[G:.*]] = %[[Y]]) -> (tensor<4xf32>, tensor<4xf32>) {
//       CHECK:   %[[S:.*]] = linalg.generic {{.*}} ins(%[[H]] : tensor<4xf32>)
//       CHECK:     tensor.extract %[[G]]
//       CHECK:   %[[T:.*]] = arith.mulf %[[G]], %[[W]]
//       CHECK:   scf.yield %[[S]], %[[T]]
//       CHECK: } {moe.repeats = 3 : i64}
//       CHECK: return %[[R]]#0, %[[R]]#1
#id = affine_map<(d0) -> (d0)>
func.func @regions_and_two_streams(%x: tensor<4xf32>, %y: tensor<4xf32>, %w: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %c0 = arith.constant 0 : index
  %e = tensor.empty() : tensor<4xf32>
  %s0 = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel"]} ins(%x : tensor<4xf32>) outs(%e : tensor<4xf32>) {
  ^bb0(%in: f32, %out: f32):
    %v = tensor.extract %y[%c0] : tensor<4xf32>
    %r = arith.addf %in, %v : f32
    linalg.yield %r : f32
  } -> tensor<4xf32>
  %t0 = arith.mulf %y, %w : tensor<4xf32>
  %s1 = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel"]} ins(%s0 : tensor<4xf32>) outs(%e : tensor<4xf32>) {
  ^bb0(%in: f32, %out: f32):
    %v = tensor.extract %t0[%c0] : tensor<4xf32>
    %r = arith.addf %in, %v : f32
    linalg.yield %r : f32
  } -> tensor<4xf32>
  %t1 = arith.mulf %t0, %w : tensor<4xf32>
  %s2 = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel"]} ins(%s1 : tensor<4xf32>) outs(%e : tensor<4xf32>) {
  ^bb0(%in: f32, %out: f32):
    %v = tensor.extract %t1[%c0] : tensor<4xf32>
    %r = arith.addf %in, %v : f32
    linalg.yield %r : f32
  } -> tensor<4xf32>
  %t2 = arith.mulf %t1, %w : tensor<4xf32>
  return %s2, %t2 : tensor<4xf32>, tensor<4xf32>
}

// Bodies that differ (addf against subf in the region) are no repeat.
// CHECK-LABEL: func.func @different_bodies
//   CHECK-NOT: scf.for
//       CHECK: return
func.func @different_bodies(%x: tensor<4xf32>) -> tensor<4xf32> {
  %e = tensor.empty() : tensor<4xf32>
  %s0 = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel"]} ins(%x : tensor<4xf32>) outs(%e : tensor<4xf32>) {
  ^bb0(%in: f32, %out: f32):
    %r = arith.addf %in, %in : f32
    linalg.yield %r : f32
  } -> tensor<4xf32>
  %n0 = arith.negf %s0 : tensor<4xf32>
  %s1 = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel"]} ins(%n0 : tensor<4xf32>) outs(%e : tensor<4xf32>) {
  ^bb0(%in: f32, %out: f32):
    %r = arith.subf %in, %in : f32
    linalg.yield %r : f32
  } -> tensor<4xf32>
  %n1 = arith.negf %s1 : tensor<4xf32>
  return %n1 : tensor<4xf32>
}

// The first copy reads %x where the others read %w, which no carried value
// expresses: the loop starts at the second copy (found by trying every
// start of the repeating run, not only the first period's).
// CHECK-LABEL: func.func @first_copy_differs
//  CHECK-SAME: (%[[X:.*]]: tensor<4xf32>, %[[W:.*]]: tensor<4xf32>)
//       CHECK: %[[A0:.*]] = arith.mulf %[[X]], %[[W]]
//  CHECK-NEXT: %[[B0:.*]] = arith.addf %[[A0]], %[[X]]
//       CHECK: %[[R:.*]] = scf.for %{{.*}} iter_args(%[[H:.*]] = %[[B0]])
//  CHECK-NEXT:   %[[A:.*]] = arith.mulf %[[H]], %[[W]]
//  CHECK-NEXT:   %[[B:.*]] = arith.addf %[[A]], %[[W]]
//  CHECK-NEXT:   scf.yield %[[B]]
//  CHECK-NEXT: } {moe.repeats = 3 : i64}
//  CHECK-NEXT: return %[[R]]
func.func @first_copy_differs(%x: tensor<4xf32>, %w: tensor<4xf32>) -> tensor<4xf32> {
  %a0 = arith.mulf %x, %w : tensor<4xf32>
  %b0 = arith.addf %a0, %x : tensor<4xf32>
  %a1 = arith.mulf %b0, %w : tensor<4xf32>
  %b1 = arith.addf %a1, %w : tensor<4xf32>
  %a2 = arith.mulf %b1, %w : tensor<4xf32>
  %b2 = arith.addf %a2, %w : tensor<4xf32>
  %a3 = arith.mulf %b2, %w : tensor<4xf32>
  %b3 = arith.addf %a3, %w : tensor<4xf32>
  return %b3 : tensor<4xf32>
}

// Indexed constants (the generation entries' layer index into a stacked
// cache): copy k reads the marked integer constant c + k·s (here 1 + 2k),
// defined before the sequence; the loop computes it from its induction
// variable.
// The stacked output is carried through insert_slice.
// CHECK-LABEL: func.func @indexed_constants
//  CHECK-SAME: (%[[X:.*]]: tensor<4xf32>, %[[S:.*]]: tensor<8x4xf32>, %[[W:.*]]: tensor<4xf32>)
//       CHECK: %[[R:.*]]:2 = scf.for %[[I:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%[[H:.*]] = %[[X]], %[[ACC:.*]] = %[[S]])
//  CHECK-NEXT:   %[[TWO:.*]] = arith.constant 2 : index
//  CHECK-NEXT:   %[[M:.*]] = arith.muli %[[I]], %[[TWO]] : index
//  CHECK-NEXT:   %[[ONE:.*]] = arith.constant 1 : index
//  CHECK-NEXT:   %[[L:.*]] = arith.addi %[[M]], %[[ONE]] : index
//  CHECK-NEXT:   %[[A:.*]] = arith.mulf %[[H]], %[[W]]
//  CHECK-NEXT:   %[[INS:.*]] = tensor.insert_slice %[[A]] into %[[ACC]][%[[L]], 0] [1, 4] [1, 1]
//  CHECK-NEXT:   scf.yield %[[A]], %[[INS]]
//  CHECK-NEXT: } {moe.repeats = 3 : i64}
//  CHECK-NEXT: return %[[R]]#0, %[[R]]#1
func.func @indexed_constants(%x: tensor<4xf32>, %s: tensor<8x4xf32>, %w: tensor<4xf32>) -> (tensor<4xf32>, tensor<8x4xf32>) {
  %c1 = arith.constant {moe.indexed_constant} 1 : index
  %c3 = arith.constant {moe.indexed_constant} 3 : index
  %c5 = arith.constant {moe.indexed_constant} 5 : index
  %a0 = arith.mulf %x, %w : tensor<4xf32>
  %s0 = tensor.insert_slice %a0 into %s[%c1, 0] [1, 4] [1, 1] : tensor<4xf32> into tensor<8x4xf32>
  %a1 = arith.mulf %a0, %w : tensor<4xf32>
  %s1 = tensor.insert_slice %a1 into %s0[%c3, 0] [1, 4] [1, 1] : tensor<4xf32> into tensor<8x4xf32>
  %a2 = arith.mulf %a1, %w : tensor<4xf32>
  %s2 = tensor.insert_slice %a2 into %s1[%c5, 0] [1, 4] [1, 1] : tensor<4xf32> into tensor<8x4xf32>
  return %a2, %s2 : tensor<4xf32>, tensor<8x4xf32>
}

// Constants that are no progression (1, 3, 4) roll no further than the
// copies that agree: the third copy stays after a loop of two.
// CHECK-LABEL: func.func @no_progression
//       CHECK: scf.for
//       CHECK: } {moe.repeats = 2 : i64}
//  CHECK-NEXT: arith.mulf
//  CHECK-NEXT: tensor.insert_slice %{{.*}} into %{{.*}}[%c4, 0]
func.func @no_progression(%x: tensor<4xf32>, %s: tensor<8x4xf32>, %w: tensor<4xf32>) -> (tensor<4xf32>, tensor<8x4xf32>) {
  %c1 = arith.constant {moe.indexed_constant} 1 : index
  %c3 = arith.constant {moe.indexed_constant} 3 : index
  %c4 = arith.constant {moe.indexed_constant} 4 : index
  %a0 = arith.mulf %x, %w : tensor<4xf32>
  %s0 = tensor.insert_slice %a0 into %s[%c1, 0] [1, 4] [1, 1] : tensor<4xf32> into tensor<8x4xf32>
  %a1 = arith.mulf %a0, %w : tensor<4xf32>
  %s1 = tensor.insert_slice %a1 into %s0[%c3, 0] [1, 4] [1, 1] : tensor<4xf32> into tensor<8x4xf32>
  %a2 = arith.mulf %a1, %w : tensor<4xf32>
  %s2 = tensor.insert_slice %a2 into %s1[%c4, 0] [1, 4] [1, 1] : tensor<4xf32> into tensor<8x4xf32>
  return %a2, %s2 : tensor<4xf32>, tensor<8x4xf32>
}

// Unmarked constants that differ between the copies are not an index: the
// copies stay as they are (a static operand is never made a loop value
// unasked).
// CHECK-LABEL: func.func @unmarked_constants
//   CHECK-NOT: scf.for
func.func @unmarked_constants(%x: tensor<4xf32>, %s: tensor<8x4xf32>, %w: tensor<4xf32>) -> (tensor<4xf32>, tensor<8x4xf32>) {
  %c1 = arith.constant 1 : index
  %c3 = arith.constant 3 : index
  %c5 = arith.constant 5 : index
  %a0 = arith.mulf %x, %w : tensor<4xf32>
  %s0 = tensor.insert_slice %a0 into %s[%c1, 0] [1, 4] [1, 1] : tensor<4xf32> into tensor<8x4xf32>
  %a1 = arith.mulf %a0, %w : tensor<4xf32>
  %s1 = tensor.insert_slice %a1 into %s0[%c3, 0] [1, 4] [1, 1] : tensor<4xf32> into tensor<8x4xf32>
  %a2 = arith.mulf %a1, %w : tensor<4xf32>
  %s2 = tensor.insert_slice %a2 into %s1[%c5, 0] [1, 4] [1, 1] : tensor<4xf32> into tensor<8x4xf32>
  return %a2, %s2 : tensor<4xf32>, tensor<8x4xf32>
}

// A marked i32 constant: the loop's index value is cast to its type.
// CHECK-LABEL: func.func @indexed_i32
//       CHECK: scf.for %[[I:.*]] =
//       CHECK:   %[[L:.*]] = arith.addi
//       CHECK:   %[[C:.*]] = arith.index_cast %[[L]] : index to i32
//       CHECK:   arith.addi %{{.*}}, %[[C]] : i32
//       CHECK: } {moe.repeats = 2 : i64}
func.func @indexed_i32(%x: i32) -> i32 {
  %c7 = arith.constant {moe.indexed_constant} 7 : i32
  %c9 = arith.constant {moe.indexed_constant} 9 : i32
  %a0 = arith.addi %x, %c7 : i32
  %b0 = arith.muli %a0, %a0 : i32
  %a1 = arith.addi %b0, %c9 : i32
  %b1 = arith.muli %a1, %a1 : i32
  return %b1 : i32
}

// RUN: moe-opt %s --convert-moe-to-linalg="fuse-routing=true" --split-input-file | FileCheck %s
// RUN: moe-opt %s --convert-moe-to-linalg --split-input-file | FileCheck %s --check-prefix=OFF

// convert-moe-to-linalg{fuse-routing}: moe.route as one scf.forall over its
// rows. Each iteration writes its row's ranked scores into the row's buffer
// ([1, k + E]: the selected values first, then the ranked copy), selects
// the k best there (the reference's walk: one pass with insertion, the k
// passes for rows with NaN or -inf), applies the gate to the k selected
// values, and writes the row back. The reference form (OFF) makes a pass
// over all rows per step: linalg.generic reductions and maps before the
// selection's loop.

// The softmax gate: the row's maximum, the exponentials (a loop of their
// own, so that it vectorizes), their sum, the quotients, all in the loop
// over rows, before the selection.
// CHECK-LABEL: func @softmax
// CHECK-NOT:     linalg.generic
// CHECK:         %[[R:.*]]:2 = scf.forall (%[[N:.*]]) in (%{{.*}}) shared_outs(%[[B:.*]] = %{{.*}}, %[[I:.*]] = %{{.*}}) -> (tensor<?x8xf32>, tensor<?x2xi64>)
// CHECK:           %[[ROW:.*]] = tensor.extract_slice %[[B]][%[[N]], 0] [1, 8] [1, 1]
// CHECK:           %[[MAX:.*]] = scf.for {{.*}} iter_args(%[[M:.*]] = %{{.*}}) -> (f32)
// CHECK:             %[[S:.*]] = tensor.extract %{{.*}}[%[[N]], %{{.*}}] : tensor<?x6xf32>
// CHECK:             arith.maximumf %[[S]], %[[M]]
// CHECK:           %[[EXP:.*]] = scf.for {{.*}} iter_args(%{{.*}} = %[[ROW]]) -> (tensor<1x8xf32>)
// CHECK:             arith.subf %{{.*}}, %[[MAX]]
// CHECK:             math.exp
// CHECK:             tensor.insert
// CHECK:           %[[SUM:.*]] = scf.for {{.*}} -> (f32)
// CHECK:             tensor.extract %[[EXP]]
// CHECK:             arith.addf
// CHECK:           %[[P:.*]] = scf.for {{.*}} iter_args(%{{.*}} = %[[EXP]]) -> (tensor<1x8xf32>)
// CHECK:             arith.divf %{{.*}}, %[[SUM]]
// CHECK:           scf.for {{.*}} iter_args(%{{.*}} = %[[P]], {{.*}}) -> (tensor<1x8xf32>, tensor<1x2xi64>, index, i1)
// CHECK:             scf.while
// CHECK:           scf.forall.in_parallel
// CHECK-NEXT:        tensor.parallel_insert_slice %{{.*}} into %[[B]][%[[N]], 0] [1, 8]
// CHECK-NEXT:        tensor.parallel_insert_slice %{{.*}} into %[[I]][%[[N]], 0] [1, 2]
// The selected values, contiguous; the ids to i32.
// CHECK:         tensor.extract_slice %[[R]]#0[0, 0] [%{{.*}}, 2] [1, 1]
// CHECK:         linalg.copy
// CHECK-NOT:     math.exp
// CHECK:         arith.trunci
// CHECK-NOT:     moe.route
// OFF-LABEL:   func @softmax
// OFF:           linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]
// OFF:             arith.maximumf
// OFF:           linalg.generic
// OFF:             math.exp
// OFF:           linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]
// OFF:             arith.addf
// OFF:           linalg.generic
// OFF:             arith.divf
// OFF:           tensor.insert_slice
// OFF:           scf.forall
func.func @softmax(%s: tensor<?x6xf32>) -> (tensor<?x2xf32>, tensor<?x2xi32>) {
  %w, %i = moe.route %s gate<softmax> {k = 2 : i64} : tensor<?x6xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  return %w, %i : tensor<?x2xf32>, tensor<?x2xi32>
}

// -----

// The sigmoid gate on the k selected values, after the selection, in the
// same loop. Two groups: the loop runs over N x G = 10 rows of E = 4
// scores, copied into the row's buffer first; ids become g E + e.
// CHECK-LABEL: func @sigmoid_groups
// CHECK:         tensor.expand_shape %{{.*}} {{\[}}[0], [1, 2]] output_shape [5, 2, 4]
// CHECK:         scf.forall (%[[N:.*]]) in (10) shared_outs(%[[B:.*]] = %{{.*}}, %{{.*}} = %{{.*}}) -> (tensor<10x6xf32>, tensor<10x2xi64>)
// CHECK:           scf.for {{.*}} -> (tensor<1x6xf32>)
// CHECK:             tensor.extract %{{.*}}[%[[N]], %{{.*}}] : tensor<10x4xf32>
// CHECK:             tensor.insert
// CHECK-NOT:       math.exp
// CHECK:           scf.while
// CHECK:           %[[G:.*]] = scf.for {{.*}} -> (tensor<1x6xf32>)
// CHECK:             arith.negf
// CHECK:             math.exp
// CHECK:             arith.addf
// CHECK:             arith.divf
// CHECK:           scf.forall.in_parallel
// CHECK-NEXT:        tensor.parallel_insert_slice %[[G]] into %[[B]][%[[N]], 0] [1, 6]
// CHECK:         linalg.generic
// CHECK:           linalg.index 1
// CHECK:           arith.muli
// CHECK:         arith.trunci
// OFF-LABEL:   func @sigmoid_groups
// OFF:           scf.forall
// OFF:           linalg.generic
// OFF:             arith.negf
// OFF:             math.exp
func.func @sigmoid_groups(%s: tensor<5x8xf32>) -> (tensor<5x4xf32>, tensor<5x4xi32>) {
  %w, %i = moe.route %s gate<sigmoid> {k = 2 : i64, groups = 2 : i64} : tensor<5x8xf32> -> tensor<5x4xf32>, tensor<5x4xi32>
  return %w, %i : tensor<5x4xf32>, tensor<5x4xi32>
}

// -----

// topk_softmax: the softmax over the k selected values (columns [0, k) of
// the row's buffer), after the selection, in the same loop; i64 ids.
// CHECK-LABEL: func @topk_softmax
// CHECK:         scf.forall (%{{.*}}) in (3) shared_outs(%{{.*}}) -> (tensor<3x7xf32>, tensor<3x2xi64>)
// CHECK-NOT:       math.exp
// CHECK:           scf.while
// CHECK:           scf.for %{{.*}} = %{{.*}} to %[[K:.*]] step {{.*}} -> (f32)
// CHECK:             arith.maximumf
// CHECK:           scf.for %{{.*}} = %{{.*}} to %[[K]] step {{.*}} -> (tensor<1x7xf32>)
// CHECK:             math.exp
// CHECK:           scf.for %{{.*}} = %{{.*}} to %[[K]] step {{.*}} -> (f32)
// CHECK:             arith.addf
// CHECK:           scf.for %{{.*}} = %{{.*}} to %[[K]] step {{.*}} -> (tensor<1x7xf32>)
// CHECK:             arith.divf
// CHECK:           scf.forall.in_parallel
// CHECK-NOT:     arith.trunci
// CHECK:         return
// OFF-LABEL:   func @topk_softmax
// OFF:           scf.forall
// OFF:           linalg.generic
// OFF:             arith.maximumf
func.func @topk_softmax(%s: tensor<3x5xf32>) -> (tensor<3x2xf32>, tensor<3x2xi64>) {
  %w, %i = moe.route %s gate<topk_softmax> {k = 2 : i64} : tensor<3x5xf32> -> tensor<3x2xf32>, tensor<3x2xi64>
  return %w, %i : tensor<3x2xf32>, tensor<3x2xi64>
}

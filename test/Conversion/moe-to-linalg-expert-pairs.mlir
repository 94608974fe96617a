// RUN: moe-opt %s --convert-moe-to-linalg="fuse-expert-pairs=true" --split-input-file | FileCheck %s
// RUN: moe-opt %s --convert-moe-to-linalg --split-input-file | FileCheck %s --check-prefix=OFF

// convert-moe-to-linalg{fuse-expert-pairs}: an up projection whose rows in
// expert order only a down projection reads (sorted_result / sorted_input,
// the same offsets and perm, static weights) runs in the same loop over
// experts. Each iteration computes its expert's rows of the up projection
// (with its epilogue) into its rows of the hidden result, then the down
// projection of those rows; the hidden result, which nothing reads after
// the loop, is given back there (bufferization.dealloc_tensor keeps the
// canonicalizer from turning it into a buffer per iteration).

// CHECK-LABEL: func @pair
// CHECK:         %[[R:.*]]:2 = scf.forall (%[[E:.*]]) in (4) shared_outs(%[[O:.*]] = %{{.*}}, %[[H:.*]] = %{{.*}}) -> (tensor<?x16xf32>, tensor<?x8xf32>)
// CHECK:           tensor.extract_slice %{{.*}}[%[[E]], 0, 0] [1, 16, 8]
// CHECK:           %[[HR:.*]] = tensor.extract_slice %[[H]][%[[LO:.*]], 0] [%[[N:.*]], 8] [1, 1]
// CHECK:           %[[UP:.*]] = linalg.matmul ins(%{{.*}}, %{{.*}} : tensor<?x16xf32>, tensor<16x8xf32>)
// CHECK:           %[[ACT:.*]] = linalg.generic {{.*}} ins(%[[UP]], %{{.*}} : tensor<?x8xf32>, tensor<8xf32>)
// CHECK:             arith.addf
// CHECK:             arith.maximumf
// CHECK:           tensor.extract_slice %{{.*}}[%[[E]], 0, 0] [1, 8, 16]
// CHECK:           %[[OR:.*]] = tensor.extract_slice %[[O]][%[[LO]], 0] [%[[N]], 16] [1, 1]
// CHECK:           %[[DOWN:.*]] = linalg.matmul ins(%[[ACT]], %{{.*}} : tensor<?x8xf32>, tensor<8x16xf32>)
// CHECK:           %[[B2:.*]] = tensor.extract_slice %{{.*}}[%[[E]], 0] [1, 16] [1, 1] : tensor<4x16xf32> to tensor<16xf32>
// CHECK:           %[[DB:.*]] = linalg.generic {{.*}} ins(%[[DOWN]], %[[B2]] : tensor<?x16xf32>, tensor<16xf32>)
// CHECK:             arith.addf
// CHECK-NOT:         arith.maximumf
// CHECK:           scf.forall.in_parallel
// CHECK-NEXT:        tensor.parallel_insert_slice %[[DB]] into %[[O]][%[[LO]], 0] [%[[N]], 16]
// CHECK-NEXT:        tensor.parallel_insert_slice %[[ACT]] into %[[H]][%[[LO]], 0] [%[[N]], 8]
// CHECK:         bufferization.dealloc_tensor %[[R]]#1 : tensor<?x8xf32>
// CHECK-NOT:     scf.forall (%{{.*}}) in (4)
// CHECK:         %[[INV:.*]] = scf.for
// CHECK:         scf.forall
// CHECK:             tensor.extract %[[INV]]
// CHECK:             tensor.extract_slice %[[R]]#0
// CHECK-NOT:     moe.grouped_matmul
// OFF-LABEL:   func @pair
// OFF:           scf.forall (%{{.*}}) in (4) shared_outs(%{{.*}}) -> (tensor<?x8xf32>)
// OFF:           scf.forall (%{{.*}}) in (4) shared_outs(%{{.*}}) -> (tensor<?x16xf32>)
// OFF-NOT:       bufferization.dealloc_tensor
func.func @pair(%x: tensor<?x16xf32>, %w1: tensor<4x16x8xf32>, %b1: tensor<4x8xf32>,
                %w2: tensor<4x8x16xf32>, %b2: tensor<4x16xf32>, %off: tensor<5xi32>,
                %perm: tensor<?xi32>, %sw: tensor<?x2xf32>) -> tensor<?x16xf32> {
  %h = moe.grouped_matmul %x, %w1, %off, %perm bias(%b1) act<relu> {sorted_result} : (tensor<?x16xf32>, tensor<4x16x8xf32>, tensor<5xi32>, tensor<?xi32>, tensor<4x8xf32>) -> tensor<?x8xf32>
  %y = moe.grouped_matmul %h, %w2, %off, %perm weights(%sw) bias(%b2) {sorted_input} : (tensor<?x8xf32>, tensor<4x8x16xf32>, tensor<5xi32>, tensor<?xi32>, tensor<?x2xf32>, tensor<4x16xf32>) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// Weights in column panels: both projections' panel loops (and the down
// projection's tail) in the one loop over experts; the down projection in
// slot order (no slot weights: the rows scattered back by the inverse
// permutation).
// CHECK-LABEL: func @pair_panels
// CHECK:         scf.forall (%[[E:.*]]) in (2) shared_outs(%{{.*}}, %{{.*}}) -> (tensor<?x5xf32>, tensor<?x4xf32>)
// CHECK:           %[[UP:.*]] = scf.for %{{.*}} = %{{.*}} to %{{.*}} step %{{.*}} iter_args
// CHECK:             tensor.extract_slice %{{.*}}[%[[E]], %{{.*}}, 0, 0] [1, 1, 3, 2] [1, 1, 1, 1] : tensor<2x2x3x2xf32> to tensor<3x2xf32>
// CHECK:             linalg.matmul
// CHECK:             math.exp
// CHECK:           scf.for %{{.*}} = %{{.*}} to %{{.*}} step %{{.*}} iter_args
// CHECK:             %[[W2:.*]] = tensor.extract_slice %{{.*}}[%[[E]], %{{.*}}, 0, 0] [1, 1, 4, 2] [1, 1, 1, 1] : tensor<2x2x4x2xf32> to tensor<4x2xf32>
// CHECK:             linalg.matmul ins(%[[UP]], %[[W2]] :
// CHECK:           %[[T:.*]] = tensor.extract_slice %{{.*}}[%[[E]], 0, 0] [1, 4, 1] [1, 1, 1] : tensor<2x4x1xf32> to tensor<4x1xf32>
// CHECK:           linalg.matmul ins(%[[UP]], %[[T]] :
// CHECK:         bufferization.dealloc_tensor
// CHECK-NOT:     scf.forall (%{{.*}}) in (2)
// CHECK-NOT:     moe.
func.func @pair_panels(%x: tensor<?x3xf32>, %p1: tensor<2x2x3x2xf32>, %p2: tensor<2x2x4x2xf32>,
                       %t2: tensor<2x4x1xf32>, %off: tensor<3xi32>, %perm: tensor<?xi32>) -> tensor<?x5xf32> {
  %w1 = moe.unpack_panels %p1 : (tensor<2x2x3x2xf32>) -> tensor<2x3x4xf32>
  %w2 = moe.unpack_panels %p2, %t2 : (tensor<2x2x4x2xf32>, tensor<2x4x1xf32>) -> tensor<2x4x5xf32>
  %h = moe.grouped_matmul %x, %w1, %off, %perm act<silu> {sorted_result} : (tensor<?x3xf32>, tensor<2x3x4xf32>, tensor<3xi32>, tensor<?xi32>) -> tensor<?x4xf32>
  %y = moe.grouped_matmul %h, %w2, %off, %perm {sorted_input} : (tensor<?x4xf32>, tensor<2x4x5xf32>, tensor<3xi32>, tensor<?xi32>) -> tensor<?x5xf32>
  return %y : tensor<?x5xf32>
}

// -----

// Not a pair: the hidden rows have a second user.
// CHECK-LABEL: func @hidden_read_twice
// CHECK:         scf.forall (%{{.*}}) in (4) shared_outs(%{{.*}}) -> (tensor<?x8xf32>)
// CHECK:         scf.forall (%{{.*}}) in (4) shared_outs(%{{.*}}) -> (tensor<?x16xf32>)
// CHECK-NOT:     bufferization.dealloc_tensor
func.func @hidden_read_twice(%x: tensor<?x16xf32>, %w1: tensor<4x16x8xf32>, %w2: tensor<4x8x16xf32>,
                             %off: tensor<5xi32>, %perm: tensor<?xi32>) -> (tensor<?x16xf32>, tensor<?x8xf32>) {
  %h = moe.grouped_matmul %x, %w1, %off, %perm {sorted_result} : (tensor<?x16xf32>, tensor<4x16x8xf32>, tensor<5xi32>, tensor<?xi32>) -> tensor<?x8xf32>
  %y = moe.grouped_matmul %h, %w2, %off, %perm {sorted_input} : (tensor<?x8xf32>, tensor<4x8x16xf32>, tensor<5xi32>, tensor<?xi32>) -> tensor<?x16xf32>
  return %y, %h : tensor<?x16xf32>, tensor<?x8xf32>
}

// -----

// Not a pair: another permutation, other offsets, a weight with a
// dynamic dim, and a down projection whose result stays in expert order.
// CHECK-LABEL: func @other_perm
// CHECK:         scf.forall (%{{.*}}) in (4) shared_outs(%{{.*}}) -> (tensor<?x8xf32>)
// CHECK:         scf.forall (%{{.*}}) in (4) shared_outs(%{{.*}}) -> (tensor<?x16xf32>)
// CHECK-NOT:     bufferization.dealloc_tensor
func.func @other_perm(%x: tensor<?x16xf32>, %w1: tensor<4x16x8xf32>, %w2: tensor<4x8x16xf32>,
                      %off: tensor<5xi32>, %perm: tensor<?xi32>, %perm2: tensor<?xi32>) -> tensor<?x16xf32> {
  %h = moe.grouped_matmul %x, %w1, %off, %perm {sorted_result} : (tensor<?x16xf32>, tensor<4x16x8xf32>, tensor<5xi32>, tensor<?xi32>) -> tensor<?x8xf32>
  %y = moe.grouped_matmul %h, %w2, %off, %perm2 {sorted_input} : (tensor<?x8xf32>, tensor<4x8x16xf32>, tensor<5xi32>, tensor<?xi32>) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// CHECK-LABEL: func @other_offsets
// CHECK:         scf.forall (%{{.*}}) in (4) shared_outs(%{{.*}}) -> (tensor<?x8xf32>)
// CHECK:         scf.forall (%{{.*}}) in (4) shared_outs(%{{.*}}) -> (tensor<?x16xf32>)
// CHECK-NOT:     bufferization.dealloc_tensor
func.func @other_offsets(%x: tensor<?x16xf32>, %w1: tensor<4x16x8xf32>, %w2: tensor<4x8x16xf32>,
                         %off: tensor<5xi32>, %off2: tensor<5xi32>, %perm: tensor<?xi32>) -> tensor<?x16xf32> {
  %h = moe.grouped_matmul %x, %w1, %off, %perm {sorted_result} : (tensor<?x16xf32>, tensor<4x16x8xf32>, tensor<5xi32>, tensor<?xi32>) -> tensor<?x8xf32>
  %y = moe.grouped_matmul %h, %w2, %off2, %perm {sorted_input} : (tensor<?x8xf32>, tensor<4x8x16xf32>, tensor<5xi32>, tensor<?xi32>) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// Not a pair: the up projection outside the block of the down projection
// (the pair would move it into the branch).
// CHECK-LABEL: func @other_block
// CHECK:         scf.forall (%{{.*}}) in (4) shared_outs(%{{.*}}) -> (tensor<?x8xf32>)
// CHECK:         scf.if
// CHECK:           scf.forall (%{{.*}}) in (4) shared_outs(%{{.*}}) -> (tensor<?x16xf32>)
// CHECK-NOT:     bufferization.dealloc_tensor
func.func @other_block(%x: tensor<?x16xf32>, %w1: tensor<4x16x8xf32>, %w2: tensor<4x8x16xf32>,
                       %off: tensor<5xi32>, %perm: tensor<?xi32>, %c: i1,
                       %other: tensor<?x16xf32>) -> tensor<?x16xf32> {
  %h = moe.grouped_matmul %x, %w1, %off, %perm {sorted_result} : (tensor<?x16xf32>, tensor<4x16x8xf32>, tensor<5xi32>, tensor<?xi32>) -> tensor<?x8xf32>
  %r = scf.if %c -> tensor<?x16xf32> {
    %y = moe.grouped_matmul %h, %w2, %off, %perm {sorted_input} : (tensor<?x8xf32>, tensor<4x8x16xf32>, tensor<5xi32>, tensor<?xi32>) -> tensor<?x16xf32>
    scf.yield %y : tensor<?x16xf32>
  } else {
    scf.yield %other : tensor<?x16xf32>
  }
  return %r : tensor<?x16xf32>
}

// -----

// CHECK-LABEL: func @dynamic_weight
// CHECK:         scf.forall (%{{.*}}) in (%{{.*}}) shared_outs(%{{.*}}) -> (tensor<?x8xf32>)
// CHECK:         scf.forall (%{{.*}}) in (4) shared_outs(%{{.*}}) -> (tensor<?x16xf32>)
// CHECK-NOT:     bufferization.dealloc_tensor
func.func @dynamic_weight(%x: tensor<?x16xf32>, %w1: tensor<?x16x8xf32>, %w2: tensor<4x8x16xf32>,
                          %off: tensor<5xi32>, %perm: tensor<?xi32>) -> tensor<?x16xf32> {
  %h = moe.grouped_matmul %x, %w1, %off, %perm {sorted_result} : (tensor<?x16xf32>, tensor<?x16x8xf32>, tensor<5xi32>, tensor<?xi32>) -> tensor<?x8xf32>
  %y = moe.grouped_matmul %h, %w2, %off, %perm {sorted_input} : (tensor<?x8xf32>, tensor<4x8x16xf32>, tensor<5xi32>, tensor<?xi32>) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// CHECK-LABEL: func @down_sorted_result
// CHECK:         scf.forall (%{{.*}}) in (4) shared_outs(%{{.*}}) -> (tensor<?x8xf32>)
// CHECK:         scf.forall (%{{.*}}) in (4) shared_outs(%{{.*}}) -> (tensor<?x16xf32>)
// CHECK-NOT:     bufferization.dealloc_tensor
func.func @down_sorted_result(%x: tensor<?x16xf32>, %w1: tensor<4x16x8xf32>, %w2: tensor<4x8x16xf32>,
                              %off: tensor<5xi32>, %perm: tensor<?xi32>) -> tensor<?x16xf32> {
  %h = moe.grouped_matmul %x, %w1, %off, %perm {sorted_result} : (tensor<?x16xf32>, tensor<4x16x8xf32>, tensor<5xi32>, tensor<?xi32>) -> tensor<?x8xf32>
  %y = moe.grouped_matmul %h, %w2, %off, %perm {sorted_input, sorted_result} : (tensor<?x8xf32>, tensor<4x8x16xf32>, tensor<5xi32>, tensor<?xi32>) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// RUN: moe-opt %s --moe-sort-expert-layouts --split-input-file | FileCheck %s

// Up projection straight into the down projection: both sorted.
// CHECK-LABEL: func @direct
// CHECK:         %[[H:.+]] = moe.grouped_matmul %{{.*}}, %{{.*}}, %[[OFF:[^,]+]], %[[PERM:[^ ]+]] act<relu> {sorted_result}
// CHECK-NEXT:    moe.grouped_matmul %[[H]], %{{.*}}, %[[OFF]], %[[PERM]] weights(%{{.*}}) {sorted_input}
func.func @direct(%x: tensor<?x16xf32>, %w1: tensor<4x16x8xf32>, %w2: tensor<4x8x16xf32>,
                  %off: tensor<5xi32>, %perm: tensor<?xi32>, %sw: tensor<?x2xf32>) -> tensor<?x16xf32> {
  %h = moe.grouped_matmul %x, %w1, %off, %perm act<relu> : (tensor<?x16xf32>, tensor<4x16x8xf32>, tensor<5xi32>, tensor<?xi32>) -> tensor<?x8xf32>
  %y = moe.grouped_matmul %h, %w2, %off, %perm weights(%sw) : (tensor<?x8xf32>, tensor<4x8x16xf32>, tensor<5xi32>, tensor<?xi32>, tensor<?x2xf32>) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// Row-wise elementwise ops in between (an activation the op has no
// epilogue for) commute with the row order.
// CHECK-LABEL: func @through_elementwise
// CHECK:         %[[H:.+]] = moe.grouped_matmul {{.*}} {sorted_result}
// CHECK:         %[[A:.+]] = linalg.generic {{.*}} ins(%[[H]] :
// CHECK:           math.tanh
// CHECK:         %[[B:.+]] = linalg.generic {{.*}} ins(%[[A]] :
// CHECK:         moe.grouped_matmul %[[B]], {{.*}} {sorted_input}
#id = affine_map<(d0, d1) -> (d0, d1)>
func.func @through_elementwise(%x: tensor<6x16xf32>, %w1: tensor<4x16x8xf32>, %w2: tensor<4x8x16xf32>,
                               %off: tensor<5xi32>, %perm: tensor<12xi32>, %sw: tensor<6x2xf32>) -> tensor<6x16xf32> {
  %c = arith.constant 0.5 : f32
  %h = moe.grouped_matmul %x, %w1, %off, %perm : (tensor<6x16xf32>, tensor<4x16x8xf32>, tensor<5xi32>, tensor<12xi32>) -> tensor<12x8xf32>
  %e = tensor.empty() : tensor<12x8xf32>
  %a = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%h : tensor<12x8xf32>) outs(%e : tensor<12x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %t = math.tanh %in : f32
    linalg.yield %t : f32
  } -> tensor<12x8xf32>
  %b = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%a : tensor<12x8xf32>) outs(%e : tensor<12x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %m = arith.mulf %in, %c : f32
    linalg.yield %m : f32
  } -> tensor<12x8xf32>
  %y = moe.grouped_matmul %b, %w2, %off, %perm weights(%sw) : (tensor<12x8xf32>, tensor<4x8x16xf32>, tensor<5xi32>, tensor<12xi32>, tensor<6x2xf32>) -> tensor<6x16xf32>
  return %y : tensor<6x16xf32>
}

// -----

// Left alone: an op in between that reads across rows (linalg.index, a
// gather by slot: the row's meaning depends on its slot).
// CHECK-LABEL: func @not_rowwise
// CHECK-NOT:     sorted_
#id = affine_map<(d0, d1) -> (d0, d1)>
func.func @not_rowwise(%x: tensor<6x16xf32>, %w1: tensor<4x16x8xf32>, %w2: tensor<4x8x16xf32>,
                       %off: tensor<5xi32>, %perm: tensor<12xi32>, %sw: tensor<6x2xf32>) -> tensor<6x16xf32> {
  %h = moe.grouped_matmul %x, %w1, %off, %perm : (tensor<6x16xf32>, tensor<4x16x8xf32>, tensor<5xi32>, tensor<12xi32>) -> tensor<12x8xf32>
  %e = tensor.empty() : tensor<12x8xf32>
  %a = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%h : tensor<12x8xf32>) outs(%e : tensor<12x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %i = linalg.index 0 : index
    %ii = arith.index_cast %i : index to i32
    %f = arith.sitofp %ii : i32 to f32
    %s = arith.addf %in, %f : f32
    linalg.yield %s : f32
  } -> tensor<12x8xf32>
  %y = moe.grouped_matmul %a, %w2, %off, %perm weights(%sw) : (tensor<12x8xf32>, tensor<4x8x16xf32>, tensor<5xi32>, tensor<12xi32>, tensor<6x2xf32>) -> tensor<6x16xf32>
  return %y : tensor<6x16xf32>
}

// -----

// Left alone: another dispatch, a second user of the up projection, and
// an up projection that reduces into token order.
// CHECK-LABEL: func @not_paired
// CHECK-NOT:     sorted_
func.func @not_paired(%x: tensor<6x16xf32>, %w1: tensor<4x16x8xf32>, %w2: tensor<4x8x16xf32>,
                      %off: tensor<5xi32>, %perm: tensor<12xi32>, %perm2: tensor<12xi32>,
                      %sw: tensor<6x2xf32>, %w3: tensor<4x16x16xf32>)
    -> (tensor<6x16xf32>, tensor<6x16xf32>, tensor<12x8xf32>, tensor<12x16xf32>) {
  %h = moe.grouped_matmul %x, %w1, %off, %perm : (tensor<6x16xf32>, tensor<4x16x8xf32>, tensor<5xi32>, tensor<12xi32>) -> tensor<12x8xf32>
  %y = moe.grouped_matmul %h, %w2, %off, %perm2 weights(%sw) : (tensor<12x8xf32>, tensor<4x8x16xf32>, tensor<5xi32>, tensor<12xi32>, tensor<6x2xf32>) -> tensor<6x16xf32>
  %h2 = moe.grouped_matmul %x, %w1, %off, %perm : (tensor<6x16xf32>, tensor<4x16x8xf32>, tensor<5xi32>, tensor<12xi32>) -> tensor<12x8xf32>
  %y2 = moe.grouped_matmul %h2, %w2, %off, %perm weights(%sw) : (tensor<12x8xf32>, tensor<4x8x16xf32>, tensor<5xi32>, tensor<12xi32>, tensor<6x2xf32>) -> tensor<6x16xf32>
  %t = moe.grouped_matmul %x, %w3, %off, %perm weights(%sw) : (tensor<6x16xf32>, tensor<4x16x16xf32>, tensor<5xi32>, tensor<12xi32>, tensor<6x2xf32>) -> tensor<6x16xf32>
  %y3 = moe.grouped_matmul %t, %w3, %off, %perm : (tensor<6x16xf32>, tensor<4x16x16xf32>, tensor<5xi32>, tensor<12xi32>) -> tensor<12x16xf32>
  return %y, %y2, %h2, %y3 : tensor<6x16xf32>, tensor<6x16xf32>, tensor<12x8xf32>, tensor<12x16xf32>
}

// -----

// Sizes taken of the intermediate (tensor.dim, as an importer's elementwise
// op sizes its output) do not depend on the order of its rows.
// CHECK-LABEL: func @dim_users
// CHECK:         %[[H:.+]] = moe.grouped_matmul {{.*}} {sorted_result}
// CHECK:         tensor.dim %[[H]]
// CHECK:         moe.grouped_matmul {{.*}} {sorted_input}
#id = affine_map<(d0, d1) -> (d0, d1)>
func.func @dim_users(%x: tensor<?x16xf32>, %w1: tensor<4x16x8xf32>, %w2: tensor<4x8x16xf32>,
                     %off: tensor<5xi32>, %perm: tensor<?xi32>, %sw: tensor<?x2xf32>) -> tensor<?x16xf32> {
  %c0 = arith.constant 0 : index
  %h = moe.grouped_matmul %x, %w1, %off, %perm : (tensor<?x16xf32>, tensor<4x16x8xf32>, tensor<5xi32>, tensor<?xi32>) -> tensor<?x8xf32>
  %m = tensor.dim %h, %c0 : tensor<?x8xf32>
  %e = tensor.empty(%m) : tensor<?x8xf32>
  %a = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%h : tensor<?x8xf32>) outs(%e : tensor<?x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %t = math.tanh %in : f32
    linalg.yield %t : f32
  } -> tensor<?x8xf32>
  %y = moe.grouped_matmul %a, %w2, %off, %perm weights(%sw) : (tensor<?x8xf32>, tensor<4x8x16xf32>, tensor<5xi32>, tensor<?xi32>, tensor<?x2xf32>) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// Three projections on one dispatch: the first pair sorts; the third reads
// the second's token-order result and is left alone.
// CHECK-LABEL: func @chain_of_three
// CHECK:         moe.grouped_matmul {{.*}} {sorted_result}
// CHECK-NEXT:    moe.grouped_matmul {{.*}} weights({{.*}}) {sorted_input}
// CHECK-NEXT:    moe.grouped_matmul %{{[^,]+}}, %{{[^,]+}}, %{{[^,]+}}, %{{[^ ]+}} : (
func.func @chain_of_three(%x: tensor<6x16xf32>, %w1: tensor<4x16x8xf32>, %w2: tensor<4x8x16xf32>,
                          %off: tensor<5xi32>, %perm: tensor<12xi32>, %sw: tensor<6x2xf32>) -> tensor<12x8xf32> {
  %h = moe.grouped_matmul %x, %w1, %off, %perm : (tensor<6x16xf32>, tensor<4x16x8xf32>, tensor<5xi32>, tensor<12xi32>) -> tensor<12x8xf32>
  %y = moe.grouped_matmul %h, %w2, %off, %perm weights(%sw) : (tensor<12x8xf32>, tensor<4x8x16xf32>, tensor<5xi32>, tensor<12xi32>, tensor<6x2xf32>) -> tensor<6x16xf32>
  %z = moe.grouped_matmul %y, %w1, %off, %perm : (tensor<6x16xf32>, tensor<4x16x8xf32>, tensor<5xi32>, tensor<12xi32>) -> tensor<12x8xf32>
  return %z : tensor<12x8xf32>
}

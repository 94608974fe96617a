// RUN: moe-opt %s --split-input-file --moe-pack-expert-weights="panel-width=2 min-tail=1" | FileCheck %s
// RUN: moe-opt %s --split-input-file --moe-pack-expert-weights="panel-width=2 min-tail=1" --moe-decompose --convert-moe-to-linalg | FileCheck %s --check-prefix=LOWER
// RUN: moe-opt %s --split-input-file --moe-pack-expert-weights="panel-width=2 min-tail=1 dense-weights=false" | FileCheck %s --check-prefix=NODENSE
// RUN: not moe-opt %s --split-input-file --moe-pack-expert-weights="panel-width=0" 2>&1 | FileCheck %s --check-prefix=WIDTH

// RUN: not moe-opt %s --split-input-file --moe-pack-expert-weights="min-tail=0" 2>&1 | FileCheck %s --check-prefix=WIDTH
// RUN: not moe-opt %s --split-input-file --moe-pack-expert-weights="panel-width=4 min-tail=5" 2>&1 | FileCheck %s --check-prefix=WIDTH
// RUN: moe-opt %s --split-input-file --moe-pack-expert-weights="panel-width=2 min-tail=2" | FileCheck %s --check-prefix=MERGE

// WIDTH: moe-pack-expert-weights: panel-width and min-tail must be positive, min-tail at most panel-width, got {{(0 and 16|64 and 0|4 and 5)}}

// Each expert's [K, N] = [2, 5] matrix: two panels of two columns, each a
// contiguous [2, 2] block, and the fifth column as a [2, 1] tail.
// CHECK-LABEL: func.func @grouped_matmul_tail
// The row-major constant is gone.
// CHECK-NOT:     arith.constant {{.*}} : tensor<2x2x5xf32>
// CHECK-DAG:     %[[P:.+]] = arith.constant dense<{{\[\[\[\[}}0.000000e+00, 1.000000e+00], [5.000000e+00, 6.000000e+00]], {{\[\[}}2.000000e+00, 3.000000e+00], [7.000000e+00, 8.000000e+00]]], {{\[\[\[}}1.000000e+01, 1.100000e+01], [1.500000e+01, 1.600000e+01]], {{\[\[}}1.200000e+01, 1.300000e+01], [1.700000e+01, 1.800000e+01]]]]> : tensor<2x2x2x2xf32>
// CHECK-DAG:     %[[T:.+]] = arith.constant dense<{{\[\[\[}}4.000000e+00], [9.000000e+00]], {{\[\[}}1.400000e+01], [1.900000e+01]]]> : tensor<2x2x1xf32>
// CHECK:         %[[W:.+]] = moe.unpack_panels %[[P]], %[[T]] : (tensor<2x2x2x2xf32>, tensor<2x2x1xf32>) -> tensor<2x2x5xf32>
// CHECK:         moe.grouped_matmul %{{.*}}, %[[W]],
// With min-tail 2, the one-column tail joins the last
// panel: one panel of two columns and a tail of three.
// MERGE-LABEL: func.func @grouped_matmul_tail
// MERGE:         moe.unpack_panels %{{.*}}, %{{.*}} : (tensor<2x1x2x2xf32>, tensor<2x2x3xf32>) -> tensor<2x2x5xf32>
// The grouped matmul reads each panel's [2, 2] block and then the tail's
// [2, 1] block where they are; no copy of the weight.
// LOWER-LABEL: func.func @grouped_matmul_tail
// LOWER-NOT:     tensor.empty() : tensor<2x2x5xf32>
// LOWER:         scf.forall
// LOWER:         scf.forall
// LOWER:           scf.for %[[J:.+]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args
// LOWER:             %[[C:.+]] = arith.muli %[[J]], %{{.*}}
// LOWER:             tensor.extract_slice %{{.*}}[%{{.*}}, %[[J]], 0, 0] [1, 1, 2, 2] [1, 1, 1, 1] : tensor<2x2x2x2xf32> to tensor<2x2xf32>
// LOWER:             linalg.matmul
// LOWER:             tensor.insert_slice %{{.*}}[0, %[[C]]] [%{{.*}}, 2] [1, 1]
// LOWER:           tensor.extract_slice %{{.*}}[%{{.*}}, 0, 0] [1, 2, 1] [1, 1, 1] : tensor<2x2x1xf32> to tensor<2x1xf32>
// LOWER:           linalg.matmul
// LOWER:           tensor.insert_slice %{{.*}}[0, 4] [%{{.*}}, 1] [1, 1]
// LOWER-NOT:     moe.unpack_panels
func.func @grouped_matmul_tail(%x: tensor<?x2xf32>, %off: tensor<3xi32>, %perm: tensor<?xi32>) -> tensor<?x5xf32> {
  %w = arith.constant dense<[[[0.0, 1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0, 9.0]],
                             [[10.0, 11.0, 12.0, 13.0, 14.0], [15.0, 16.0, 17.0, 18.0, 19.0]]]> : tensor<2x2x5xf32>
  %y = moe.grouped_matmul %x, %w, %off, %perm : (tensor<?x2xf32>, tensor<2x2x5xf32>, tensor<3xi32>, tensor<?xi32>) -> tensor<?x5xf32>
  return %y : tensor<?x5xf32>
}

// -----

// One layout for a constant that both ffn projections read; a user that
// is no expert weight (here the return) keeps the row-major constant.
// CHECK-LABEL: func.func @ffn_shared
// CHECK:         %[[W:.+]] = arith.constant {{.*}} : tensor<2x4x4xf32>
// CHECK:         %[[P:.+]] = arith.constant {{.*}} : tensor<2x2x4x2xf32>
// CHECK:         %[[U:.+]] = moe.unpack_panels %[[P]] : (tensor<2x2x4x2xf32>) -> tensor<2x4x4xf32>
// CHECK-NOT:     moe.unpack_panels
// CHECK:         moe.ffn %{{.*}}, %{{.*}}, %[[U]], %[[U]] gate<sigmoid>
// CHECK:         return %{{.*}}, %[[W]]
func.func @ffn_shared(%x: tensor<3x4xf32>, %sel: tensor<2x4xf32>) -> (tensor<3x4xf32>, tensor<2x4x4xf32>) {
  %w = arith.constant dense<[[[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0], [8.0, 9.0, 10.0, 11.0], [12.0, 13.0, 14.0, 15.0]],
                             [[1.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0], [8.0, 9.0, 10.0, 11.0], [12.0, 13.0, 14.0, 16.0]]]> : tensor<2x4x4xf32>
  %y = moe.ffn %x, %sel, %w, %w gate<sigmoid> act<relu> {k = 1 : i64} : (tensor<3x4xf32>, tensor<2x4xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>) -> tensor<3x4xf32>
  return %y, %w : tensor<3x4xf32>, tensor<2x4x4xf32>
}

// -----

// Left alone: a weight of no more than panel-width columns (one block per
// expert already), a splat, and a weight computed at run time.
// CHECK-LABEL: func.func @left_alone
// CHECK-NOT:     moe.unpack_panels
// CHECK:         return
func.func @left_alone(%x: tensor<?x2xf32>, %off: tensor<3xi32>, %perm: tensor<?xi32>, %w3: tensor<2x2x3xf32>)
    -> (tensor<?x2xf32>, tensor<?x3xf32>, tensor<?x3xf32>) {
  %narrow = arith.constant dense<[[[0.0, 1.0], [2.0, 3.0]], [[4.0, 5.0], [6.0, 7.0]]]> : tensor<2x2x2xf32>
  %splat = arith.constant dense<1.0> : tensor<2x2x3xf32>
  %a = moe.grouped_matmul %x, %narrow, %off, %perm : (tensor<?x2xf32>, tensor<2x2x2xf32>, tensor<3xi32>, tensor<?xi32>) -> tensor<?x2xf32>
  %b = moe.grouped_matmul %x, %splat, %off, %perm : (tensor<?x2xf32>, tensor<2x2x3xf32>, tensor<3xi32>, tensor<?xi32>) -> tensor<?x3xf32>
  %c = moe.grouped_matmul %x, %w3, %off, %perm : (tensor<?x2xf32>, tensor<2x2x3xf32>, tensor<3xi32>, tensor<?xi32>) -> tensor<?x3xf32>
  return %a, %b, %c : tensor<?x2xf32>, tensor<?x3xf32>, tensor<?x3xf32>
}

// -----

// Three columns in panels of two: a panel and a tail of one with min-tail
// 1; with min-tail 2 the tail would join the only panel, and no
// full panel would be left: left alone.
// CHECK-LABEL: func.func @no_full_panel
// CHECK:         moe.unpack_panels %{{.*}}, %{{.*}} : (tensor<1x1x2x2xf32>, tensor<1x2x1xf32>) -> tensor<1x2x3xf32>
// MERGE-LABEL: func.func @no_full_panel
// MERGE-NOT:     moe.unpack_panels
// MERGE:         return
func.func @no_full_panel(%x: tensor<?x2xf32>, %off: tensor<2xi32>, %perm: tensor<?xi32>) -> tensor<?x3xf32> {
  %w = arith.constant dense<[[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]]> : tensor<1x2x3xf32>
  %y = moe.grouped_matmul %x, %w, %off, %perm : (tensor<?x2xf32>, tensor<1x2x3xf32>, tensor<2xi32>, tensor<?xi32>) -> tensor<?x3xf32>
  return %y : tensor<?x3xf32>
}

// -----

// An unpacked weight that something other than a grouped matmul reads is
// copied back to rows: the panels' columns through a generic reading
// panels[e, n / P, k, n % P], then the tail's columns.
// LOWER:       #[[$READ:.+]] = affine_map<(d0, d1, d2) -> (d0, d2 floordiv 2, d1, d2 mod 2)>
// LOWER-LABEL: func.func @unpacked_copy
// LOWER:         %[[G:.+]] = linalg.generic {indexing_maps = [#[[$READ]], #{{.+}}], iterator_types = ["parallel", "parallel", "parallel"]} ins(%arg0 : tensor<2x2x3x2xf32>) outs(%{{.*}} : tensor<2x3x4xf32>)
// LOWER:         %[[A:.+]] = tensor.insert_slice %[[G]] into %{{.*}}[0, 0, 0] [2, 3, 4] [1, 1, 1] : tensor<2x3x4xf32> into tensor<2x3x5xf32>
// LOWER:         tensor.insert_slice %arg1 into %[[A]][0, 0, 4] [2, 3, 1] [1, 1, 1] : tensor<2x3x1xf32> into tensor<2x3x5xf32>
func.func @unpacked_copy(%p: tensor<2x2x3x2xf32>, %t: tensor<2x3x1xf32>) -> tensor<2x3x5xf32> {
  %w = moe.unpack_panels %p, %t : (tensor<2x2x3x2xf32>, tensor<2x3x1xf32>) -> tensor<2x3x5xf32>
  return %w : tensor<2x3x5xf32>
}

// -----

// With a bias: each block's epilogue reads the bias from the block's first
// column on.
// LOWER-LABEL: func.func @bias_columns
// LOWER:         scf.for %[[J:.+]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args
// LOWER:           %[[C:.+]] = arith.muli %[[J]], %{{.*}}
// LOWER:           linalg.matmul
// LOWER:           tensor.extract_slice %{{.*}}[%{{.*}}, %[[C]]] [1, 2] [1, 1] : tensor<2x5xf32> to tensor<2xf32>
// LOWER:           linalg.generic
// LOWER:         linalg.matmul
// LOWER:         tensor.extract_slice %{{.*}}[%{{.*}}, 4] [1, 1] [1, 1] : tensor<2x5xf32> to tensor<1xf32>
// LOWER:         linalg.generic
func.func @bias_columns(%x: tensor<?x2xf32>, %off: tensor<3xi32>, %perm: tensor<?xi32>, %b: tensor<2x5xf32>) -> tensor<?x5xf32> {
  %w = arith.constant dense<[[[0.0, 1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0, 9.0]],
                             [[10.0, 11.0, 12.0, 13.0, 14.0], [15.0, 16.0, 17.0, 18.0, 19.0]]]> : tensor<2x2x5xf32>
  %y = moe.grouped_matmul %x, %w, %off, %perm bias(%b) act<relu> : (tensor<?x2xf32>, tensor<2x2x5xf32>, tensor<3xi32>, tensor<?xi32>, tensor<2x5xf32>) -> tensor<?x5xf32>
  return %y : tensor<?x5xf32>
}

// -----

// Only f32 weights: the register tiles are f32 only.
// CHECK-LABEL: func.func @bf16_left_alone
// CHECK-NOT:     moe.unpack_panels
// CHECK:         return
func.func @bf16_left_alone(%x: tensor<?x2xbf16>, %off: tensor<2xi32>, %perm: tensor<?xi32>) -> tensor<?x3xbf16> {
  %w = arith.constant dense<[[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]]> : tensor<1x2x3xbf16>
  %y = moe.grouped_matmul %x, %w, %off, %perm : (tensor<?x2xbf16>, tensor<1x2x3xbf16>, tensor<2xi32>, tensor<?xi32>) -> tensor<?x3xbf16>
  return %y : tensor<?x3xbf16>
}

// -----

// A dense contraction reading a constant [K, N] (here K 2, N 4) as (k, n),
// n the output's last dim: the constant is stored as panels [N/P, K, P],
// n splits into (p, j) over an expanded output, collapsed back after.
// CHECK-DAG:   #[[X:[a-z0-9]+]] = affine_map<(d0, d1, d2, d3) -> (d0, d3)>
// CHECK-DAG:   #[[W:[a-z0-9]+]] = affine_map<(d0, d1, d2, d3) -> (d1, d3, d2)>
// CHECK-DAG:   #[[Y:[a-z0-9]+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @dense_rhs
// CHECK-SAME:    %[[XA:[a-z0-9]+]]: tensor<?x2xf32>
// CHECK-NOT:     tensor<2x4xf32>
// CHECK-DAG:     %[[P:.+]] = arith.constant dense<{{\[\[\[}}1.000000e+00, 2.000000e+00], [5.000000e+00, 6.000000e+00]], {{\[\[}}3.000000e+00, 4.000000e+00], [7.000000e+00, 8.000000e+00]]]> : tensor<2x2x2xf32>
// CHECK-DAG:     %[[E:.+]] = tensor.expand_shape %{{.+}} {{\[}}[0], [1, 2]] output_shape [%{{.+}}, 2, 2] : tensor<?x4xf32> into tensor<?x2x2xf32>
// CHECK:         %[[G:.+]] = linalg.generic {indexing_maps = [#[[X]], #[[W]], #[[Y]]], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%[[XA]], %[[P]] : tensor<?x2xf32>, tensor<2x2x2xf32>) outs(%[[E]] : tensor<?x2x2xf32>)
// CHECK:         %[[C:.+]] = tensor.collapse_shape %[[G]] {{\[}}[0], [1, 2]] : tensor<?x2x2xf32> into tensor<?x4xf32>
// CHECK:         return %[[C]]
// NODENSE-LABEL: func.func @dense_rhs
// NODENSE:         arith.constant {{.*}} : tensor<2x4xf32>
// NODENSE-NOT:     tensor.expand_shape
#dx = affine_map<(n, c, k) -> (n, k)>
#dw = affine_map<(n, c, k) -> (k, c)>
#dy = affine_map<(n, c, k) -> (n, c)>
func.func @dense_rhs(%x: tensor<?x2xf32>) -> tensor<?x4xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %w = arith.constant dense<[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]> : tensor<2x4xf32>
  %n = tensor.dim %x, %c0 : tensor<?x2xf32>
  %e = tensor.empty(%n) : tensor<?x4xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<?x4xf32>) -> tensor<?x4xf32>
  %y = linalg.generic {indexing_maps = [#dx, #dw, #dy], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : tensor<?x2xf32>, tensor<2x4xf32>) outs(%f : tensor<?x4xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b : f32
    %s = arith.addf %c, %m : f32
    linalg.yield %s : f32
  } -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}

// -----

// A named linalg.matmul reading a constant: generalized, then the same.
// CHECK-LABEL: func.func @named_matmul
// CHECK:         linalg.generic {{.*}} ins(%{{.+}}, %{{.+}} : tensor<3x2xf32>, tensor<2x2x2xf32>)
// CHECK:         tensor.collapse_shape {{.*}} into tensor<3x4xf32>
func.func @named_matmul(%x: tensor<3x2xf32>) -> tensor<3x4xf32> {
  %zero = arith.constant 0.0 : f32
  %w = arith.constant dense<[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]> : tensor<2x4xf32>
  %e = tensor.empty() : tensor<3x4xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<3x4xf32>) -> tensor<3x4xf32>
  %y = linalg.matmul ins(%x, %w : tensor<3x2xf32>, tensor<2x4xf32>) outs(%f : tensor<3x4xf32>) -> tensor<3x4xf32>
  return %y : tensor<3x4xf32>
}

// -----

// Left alone: a right-hand side read as (n, k) (a selector), one read at
// run time, a splat, an f64 weight, N of one panel only (2), and N = 3,
// whose padded second panel would be a quarter of the columns (more than
// an eighth).
// The named matmuls among them stay named (generalized only to be packed).
// CHECK-LABEL: func.func @dense_left_alone
// CHECK-NOT:     tensor.expand_shape
// CHECK-NOT:     tensor.collapse_shape
// CHECK-COUNT-5: linalg.matmul
// CHECK-NOT:     tensor.expand_shape
#lx = affine_map<(n, c, k) -> (n, k)>
#lw = affine_map<(n, c, k) -> (k, c)>
#lt = affine_map<(n, c, k) -> (c, k)>
#ly = affine_map<(n, c, k) -> (n, c)>
func.func @dense_left_alone(%x: tensor<5x2xf32>, %wd: tensor<2x4xf32>, %x64: tensor<5x2xf64>)
    -> (tensor<5x3xf32>, tensor<5x4xf32>, tensor<5x4xf32>, tensor<5x4xf32>, tensor<5x4xf64>, tensor<5x2xf32>) {
  %zero = arith.constant 0.0 : f32
  %zero64 = arith.constant 0.0 : f64
  %w3 = arith.constant dense<[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]> : tensor<2x3xf32>
  %wt = arith.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]> : tensor<4x2xf32>
  %ws = arith.constant dense<1.0> : tensor<2x4xf32>
  %w64 = arith.constant dense<[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]> : tensor<2x4xf64>
  %w2 = arith.constant dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>
  %e3 = tensor.empty() : tensor<5x3xf32>
  %f3 = linalg.fill ins(%zero : f32) outs(%e3 : tensor<5x3xf32>) -> tensor<5x3xf32>
  %e4 = tensor.empty() : tensor<5x4xf32>
  %f4 = linalg.fill ins(%zero : f32) outs(%e4 : tensor<5x4xf32>) -> tensor<5x4xf32>
  %e64 = tensor.empty() : tensor<5x4xf64>
  %f64 = linalg.fill ins(%zero64 : f64) outs(%e64 : tensor<5x4xf64>) -> tensor<5x4xf64>
  %e2 = tensor.empty() : tensor<5x2xf32>
  %f2 = linalg.fill ins(%zero : f32) outs(%e2 : tensor<5x2xf32>) -> tensor<5x2xf32>
  %yt = linalg.generic {indexing_maps = [#lx, #lt, #ly], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %wt : tensor<5x2xf32>, tensor<4x2xf32>) outs(%f4 : tensor<5x4xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b : f32
    %s = arith.addf %c, %m : f32
    linalg.yield %s : f32
  } -> tensor<5x4xf32>
  %yd = linalg.matmul ins(%x, %wd : tensor<5x2xf32>, tensor<2x4xf32>) outs(%f4 : tensor<5x4xf32>) -> tensor<5x4xf32>
  %ys = linalg.matmul ins(%x, %ws : tensor<5x2xf32>, tensor<2x4xf32>) outs(%f4 : tensor<5x4xf32>) -> tensor<5x4xf32>
  %y64 = linalg.matmul ins(%x64, %w64 : tensor<5x2xf64>, tensor<2x4xf64>) outs(%f64 : tensor<5x4xf64>) -> tensor<5x4xf64>
  %y2 = linalg.matmul ins(%x, %w2 : tensor<5x2xf32>, tensor<2x2xf32>) outs(%f2 : tensor<5x2xf32>) -> tensor<5x2xf32>
  %y3 = linalg.matmul ins(%x, %w3 : tensor<5x2xf32>, tensor<2x3xf32>) outs(%f3 : tensor<5x3xf32>) -> tensor<5x3xf32>
  return %y3, %yt, %yd, %ys, %y64, %y2 : tensor<5x3xf32>, tensor<5x4xf32>, tensor<5x4xf32>, tensor<5x4xf32>, tensor<5x4xf64>, tensor<5x2xf32>
}

// -----

// One constant read by two contractions: each reads the panels (two equal
// constants, which moe-outline-weights stores once), the row-major one
// erased (once: it was listed for both). A constant something else reads
// too stays for that reader.
// CHECK-LABEL: func.func @dense_two_readers
// CHECK-NOT:     arith.constant {{.*}} : tensor<2x4xf32>
// CHECK-COUNT-2: arith.constant {{.*}} : tensor<2x2x2xf32>
// CHECK-NOT:     arith.constant {{.*}} : tensor<2x4xf32>
// CHECK-LABEL: func.func @dense_kept_for_another_reader
// CHECK-DAG:     %[[W:.+]] = arith.constant {{.*}} : tensor<2x4xf32>
// CHECK-DAG:     arith.constant {{.*}} : tensor<2x2x2xf32>
// CHECK:         return %{{.+}}, %[[W]]
func.func @dense_two_readers(%x: tensor<3x2xf32>, %z: tensor<3x2xf32>) -> (tensor<3x4xf32>, tensor<3x4xf32>) {
  %zero = arith.constant 0.0 : f32
  %w = arith.constant dense<[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]> : tensor<2x4xf32>
  %e = tensor.empty() : tensor<3x4xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<3x4xf32>) -> tensor<3x4xf32>
  %y = linalg.matmul ins(%x, %w : tensor<3x2xf32>, tensor<2x4xf32>) outs(%f : tensor<3x4xf32>) -> tensor<3x4xf32>
  %v = linalg.matmul ins(%z, %w : tensor<3x2xf32>, tensor<2x4xf32>) outs(%f : tensor<3x4xf32>) -> tensor<3x4xf32>
  return %y, %v : tensor<3x4xf32>, tensor<3x4xf32>
}
func.func @dense_kept_for_another_reader(%x: tensor<3x2xf32>) -> (tensor<3x4xf32>, tensor<2x4xf32>) {
  %zero = arith.constant 0.0 : f32
  %w = arith.constant dense<[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]> : tensor<2x4xf32>
  %e = tensor.empty() : tensor<3x4xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<3x4xf32>) -> tensor<3x4xf32>
  %y = linalg.matmul ins(%x, %w : tensor<3x2xf32>, tensor<2x4xf32>) outs(%f : tensor<3x4xf32>) -> tensor<3x4xf32>
  return %y, %w : tensor<3x4xf32>, tensor<2x4xf32>
}

// -----

// Other loop orders: a batch dim with k first ((k, b, m, n): n, the last
// loop, becomes (p, j) after the others); an init whose n dim is dynamic
// is left alone (its result type would change).
// CHECK-DAG:   #[[BX:[a-z0-9]+]] = affine_map<(d0, d1, d2, d3, d4) -> (d1, d2, d0)>
// CHECK-DAG:   #[[BW:[a-z0-9]+]] = affine_map<(d0, d1, d2, d3, d4) -> (d3, d0, d4)>
// CHECK-DAG:   #[[BY:[a-z0-9]+]] = affine_map<(d0, d1, d2, d3, d4) -> (d1, d2, d3, d4)>
// CHECK-LABEL: func.func @dense_batch_k_first
// CHECK:         linalg.generic {indexing_maps = [#[[BX]], #[[BW]], #[[BY]]], iterator_types = ["reduction", "parallel", "parallel", "parallel", "parallel"]} {{.*}} outs(%{{.+}} : tensor<2x3x2x2xf32>)
// CHECK:         tensor.collapse_shape %{{.+}} {{\[}}[0], [1], [2, 3]] : tensor<2x3x2x2xf32> into tensor<2x3x4xf32>
// CHECK-LABEL: func.func @dense_dynamic_init
// CHECK-NOT:     tensor.expand_shape
#kx = affine_map<(k, b, m, n) -> (b, m, k)>
#kw = affine_map<(k, b, m, n) -> (k, n)>
#ky = affine_map<(k, b, m, n) -> (b, m, n)>
func.func @dense_batch_k_first(%x: tensor<2x3x2xf32>, %init: tensor<2x3x4xf32>) -> tensor<2x3x4xf32> {
  %w = arith.constant dense<[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]> : tensor<2x4xf32>
  %y = linalg.generic {indexing_maps = [#kx, #kw, #ky], iterator_types = ["reduction", "parallel", "parallel", "parallel"]}
      ins(%x, %w : tensor<2x3x2xf32>, tensor<2x4xf32>) outs(%init : tensor<2x3x4xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b : f32
    %s = arith.addf %c, %m : f32
    linalg.yield %s : f32
  } -> tensor<2x3x4xf32>
  return %y : tensor<2x3x4xf32>
}
#nx = affine_map<(m, n, k) -> (m, k)>
#nw = affine_map<(m, n, k) -> (k, n)>
#ny = affine_map<(m, n, k) -> (m, n)>
func.func @dense_dynamic_init(%x: tensor<3x2xf32>, %init: tensor<?x?xf32>) -> tensor<?x?xf32> {
  %w = arith.constant dense<[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]> : tensor<2x4xf32>
  %y = linalg.generic {indexing_maps = [#nx, #nw, #ny], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : tensor<3x2xf32>, tensor<2x4xf32>) outs(%init : tensor<?x?xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b : f32
    %s = arith.addf %c, %m : f32
    linalg.yield %s : f32
  } -> tensor<?x?xf32>
  return %y : tensor<?x?xf32>
}

// -----

// N = 9 in panels of 2: five panels [5, K, 2], the last one zero-padded
// (min-tail plays no part here). The contraction runs over ten columns
// into a fill of the same value (here 0.5), and the result is its first
// nine.
// CHECK-LABEL: func.func @dense_padded
// CHECK-SAME:    %[[XA:[a-z0-9]+]]: tensor<3x2xf32>
// CHECK-NOT:     arith.constant {{.*}} : tensor<2x9xf32>
// CHECK-DAG:     %[[HALF:.+]] = arith.constant 5.000000e-01 : f32
// CHECK-DAG:     %[[P:.+]] = arith.constant dense<{{\[\[\[}}1.000000e+00, 2.000000e+00], [1.000000e+01, 1.100000e+01]], {{\[\[}}3.000000e+00, 4.000000e+00], [1.200000e+01, 1.300000e+01]], {{\[\[}}5.000000e+00, 6.000000e+00], [1.400000e+01, 1.500000e+01]], {{\[\[}}7.000000e+00, 8.000000e+00], [1.600000e+01, 1.700000e+01]], {{\[\[}}9.000000e+00, 0.000000e+00], [1.800000e+01, 0.000000e+00]]]> : tensor<5x2x2xf32>
// CHECK-DAG:     %[[F:.+]] = linalg.fill ins(%[[HALF]] : f32) outs(%{{.+}} : tensor<3x10xf32>) -> tensor<3x10xf32>
// CHECK:         %[[E:.+]] = tensor.expand_shape %[[F]] {{\[}}[0], [1, 2]] output_shape [3, 5, 2] : tensor<3x10xf32> into tensor<3x5x2xf32>
// CHECK:         %[[G:.+]] = linalg.generic {{.*}} ins(%[[XA]], %[[P]] : tensor<3x2xf32>, tensor<5x2x2xf32>) outs(%[[E]] : tensor<3x5x2xf32>)
// CHECK:         %[[C:.+]] = tensor.collapse_shape %[[G]] {{\[}}[0], [1, 2]] : tensor<3x5x2xf32> into tensor<3x10xf32>
// CHECK:         %[[R:.+]] = tensor.extract_slice %[[C]][0, 0] [3, 9] [1, 1] : tensor<3x10xf32> to tensor<3x9xf32>
// CHECK:         return %[[R]]
// Left alone: an init that is no fill (a padded panel would need its
// values spread over the wider destination), and N = 5 (its padded
// column would be a fifth of them).
// CHECK-LABEL: func.func @dense_padded_left_alone
// CHECK-NOT:     tensor.expand_shape
// CHECK:         linalg.generic {{.*}} ins(%{{.+}}, %{{.+}} : tensor<3x2xf32>, tensor<2x9xf32>) outs(%{{.+}} : tensor<3x9xf32>)
// CHECK-NOT:     tensor.expand_shape
// CHECK:         linalg.matmul ins(%{{.+}}, %{{.+}} : tensor<3x2xf32>, tensor<2x5xf32>)
// CHECK-NOT:     tensor.expand_shape
func.func @dense_padded(%x: tensor<3x2xf32>) -> tensor<3x9xf32> {
  %half = arith.constant 0.5 : f32
  %w = arith.constant dense<[[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], [10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0]]> : tensor<2x9xf32>
  %e = tensor.empty() : tensor<3x9xf32>
  %f = linalg.fill ins(%half : f32) outs(%e : tensor<3x9xf32>) -> tensor<3x9xf32>
  %y = linalg.matmul ins(%x, %w : tensor<3x2xf32>, tensor<2x9xf32>) outs(%f : tensor<3x9xf32>) -> tensor<3x9xf32>
  return %y : tensor<3x9xf32>
}
#px = affine_map<(m, n, k) -> (m, k)>
#pw = affine_map<(m, n, k) -> (k, n)>
#py = affine_map<(m, n, k) -> (m, n)>
func.func @dense_padded_left_alone(%x: tensor<3x2xf32>, %init: tensor<3x9xf32>) -> (tensor<3x9xf32>, tensor<3x5xf32>) {
  %zero = arith.constant 0.0 : f32
  %w = arith.constant dense<[[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], [10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0]]> : tensor<2x9xf32>
  %y = linalg.generic {indexing_maps = [#px, #pw, #py], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : tensor<3x2xf32>, tensor<2x9xf32>) outs(%init : tensor<3x9xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b : f32
    %s = arith.addf %c, %m : f32
    linalg.yield %s : f32
  } -> tensor<3x9xf32>
  %w5 = arith.constant dense<[[1.0, 2.0, 3.0, 4.0, 5.0], [6.0, 7.0, 8.0, 9.0, 10.0]]> : tensor<2x5xf32>
  %e5 = tensor.empty() : tensor<3x5xf32>
  %f5 = linalg.fill ins(%zero : f32) outs(%e5 : tensor<3x5xf32>) -> tensor<3x5xf32>
  %z = linalg.matmul ins(%x, %w5 : tensor<3x2xf32>, tensor<2x5xf32>) outs(%f5 : tensor<3x5xf32>) -> tensor<3x5xf32>
  return %y, %z : tensor<3x9xf32>, tensor<3x5xf32>
}

// -----

// SwitchHead's query and key projections ([D, H*dk] = [2, 9]) and its
// selectors stored [D, H*E] under a transpose (one constant read as both
// sel_o and sel_v): each constant once as one expert's panels (the last
// one zero-padded where P does not divide N), read back as [K, N].
// After the decomposition the contractions read the panels where they are;
// nothing copies them back to rows (a copy of a layout would be a generic
// writing its [1, K, Nb * P] result).
// CHECK-LABEL: func.func @switchhead_dense
// CHECK-NOT:     arith.constant {{.*}} : tensor<2x9xf32>
// CHECK-NOT:     arith.constant {{.*}} : tensor<2x4xf32>
// CHECK-DAG:     %[[QP:.+]] = arith.constant dense<{{\[\[\[\[}}1.000000e+00, 2.000000e+00], [1.000000e+01, 1.100000e+01]], {{.*}}, {{\[\[}}9.000000e+00, 0.000000e+00], [1.800000e+01, 0.000000e+00]]]]> : tensor<1x5x2x2xf32>
// CHECK-DAG:     %[[QU:.+]] = moe.unpack_panels %[[QP]] : (tensor<1x5x2x2xf32>) -> tensor<1x2x10xf32>
// CHECK-DAG:     %[[QC:.+]] = tensor.collapse_shape %[[QU]] {{\[}}[0, 1], [2]] : tensor<1x2x10xf32> into tensor<2x10xf32>
// CHECK-DAG:     %[[Q:.+]] = tensor.extract_slice %[[QC]][0, 0] [2, 9] [1, 1] : tensor<2x10xf32> to tensor<2x9xf32>
// CHECK-DAG:     %[[KC:.+]] = tensor.collapse_shape %{{.+}} {{\[}}[0, 1], [2]] : tensor<1x2x10xf32> into tensor<2x10xf32>
// CHECK-DAG:     %[[K:.+]] = tensor.extract_slice %[[KC]][0, 0] [2, 9] [1, 1] : tensor<2x10xf32> to tensor<2x9xf32>
// CHECK-DAG:     %[[SU:.+]] = moe.unpack_panels %{{[a-z0-9_]+}} : (tensor<1x2x2x2xf32>) -> tensor<1x2x4xf32>
// CHECK-DAG:     %[[S:.+]] = tensor.collapse_shape %[[SU]] {{\[}}[0, 1], [2]] : tensor<1x2x4xf32> into tensor<2x4xf32>
// CHECK-DAG:     %[[ST:.+]] = linalg.transpose ins(%[[S]] : tensor<2x4xf32>) {{.*}} permutation = [1, 0]
// CHECK:         moe.switchhead %{{.+}}, %{{.+}}, %{{.+}}, %[[Q]], %[[K]], %{{.+}}, %{{.+}}, %[[ST]] sel_v(%[[ST]])
// One layout for the selector that sel_o and sel_v share, two for wq and wk.
// CHECK-LABEL: func.func @switchhead_layouts_once
// CHECK-COUNT-3: moe.unpack_panels
// CHECK-NOT:     moe.unpack_panels
// NODENSE-LABEL: func.func @switchhead_dense
// NODENSE-NOT:     moe.unpack_panels {{.*}} -> tensor<1x
// LOWER-LABEL: func.func @switchhead_dense
// LOWER-NOT:     tensor<1x2x10xf32>
// LOWER-NOT:     tensor<1x2x4xf32>
// The query and the key projections over ten columns, the first nine kept.
// LOWER-COUNT-2: linalg.fill {{.*}} -> tensor<2x10xf32>
// LOWER-NEXT:    tensor.expand_shape %{{.+}} {{\[}}[0], [1, 2]] output_shape [2, 5, 2] : tensor<2x10xf32> into tensor<2x5x2xf32>
// LOWER-NEXT:    linalg.generic {{.*}} ins(%{{.+}}, %{{.+}} : tensor<2x2xf32>, tensor<5x2x2xf32>) outs(%{{.+}} : tensor<2x5x2xf32>)
// LOWER-NEXT:      ^bb0
// LOWER-NEXT:        arith.mulf
// LOWER-NEXT:        arith.addf
// LOWER-NEXT:        linalg.yield
// LOWER-NEXT:    } -> tensor<2x5x2xf32>
// LOWER-NEXT:    tensor.collapse_shape
// LOWER-NEXT:    tensor.extract_slice %{{.+}}[0, 0] [2, 9] [1, 1] : tensor<2x10xf32> to tensor<2x9xf32>
// The selectors' scores, [2, 4] in two panels, none padded.
// LOWER:         linalg.generic {{.*}} ins(%{{.+}}, %{{.+}} : tensor<2x2xf32>, tensor<2x2x2xf32>) outs(%{{.+}} : tensor<2x2x2xf32>)
// LOWER-NOT:     moe.unpack_panels
// LOWER-NOT:     tensor<1x2x10xf32>
// LOWER-NOT:     tensor<1x2x4xf32>
// LOWER-LABEL: func.func @switchhead_layouts_once
func.func @switchhead_dense(%x: tensor<1x2x2xf32>, %wv: tensor<4x2x5xf32>, %wo: tensor<4x5x2xf32>) -> tensor<1x2x2xf32> {
  %wq = arith.constant dense<[[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], [10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0]]> : tensor<2x9xf32>
  %wk = arith.constant dense<[[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], [10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 19.0]]> : tensor<2x9xf32>
  %s = arith.constant dense<[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]> : tensor<2x4xf32>
  %e = tensor.empty() : tensor<4x2xf32>
  %st = linalg.transpose ins(%s : tensor<2x4xf32>) outs(%e : tensor<4x2xf32>) permutation = [1, 0]
  %y = moe.switchhead %x, %x, %x, %wq, %wk, %wv, %wo, %st sel_v(%st) {num_heads = 1 : i64, k = 1 : i64, rotate_fraction = 0.0 : f64}
      : (tensor<1x2x2xf32>, tensor<1x2x2xf32>, tensor<1x2x2xf32>, tensor<2x9xf32>, tensor<2x9xf32>,
         tensor<4x2x5xf32>, tensor<4x5x2xf32>, tensor<4x2xf32>, tensor<4x2xf32>) -> tensor<1x2x2xf32>
  return %y : tensor<1x2x2xf32>
}
func.func @switchhead_layouts_once(%x: tensor<1x2x2xf32>, %wv: tensor<4x2x5xf32>, %wo: tensor<4x5x2xf32>) -> tensor<1x2x2xf32> {
  %wq = arith.constant dense<[[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], [10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0]]> : tensor<2x9xf32>
  %wk = arith.constant dense<[[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], [10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 19.0]]> : tensor<2x9xf32>
  %s = arith.constant dense<[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]> : tensor<2x4xf32>
  %e = tensor.empty() : tensor<4x2xf32>
  %st = linalg.transpose ins(%s : tensor<2x4xf32>) outs(%e : tensor<4x2xf32>) permutation = [1, 0]
  %y = moe.switchhead %x, %x, %x, %wq, %wk, %wv, %wo, %st sel_v(%st) {num_heads = 1 : i64, k = 1 : i64, rotate_fraction = 0.0 : f64}
      : (tensor<1x2x2xf32>, tensor<1x2x2xf32>, tensor<1x2x2xf32>, tensor<2x9xf32>, tensor<2x9xf32>,
         tensor<4x2x5xf32>, tensor<4x5x2xf32>, tensor<4x2xf32>, tensor<4x2xf32>) -> tensor<1x2x2xf32>
  return %y : tensor<1x2x2xf32>
}

// -----

// With a cache: moe.switchhead_cached's projections and selectors too.
// CHECK-LABEL: func.func @switchhead_cached_dense
// CHECK-DAG:     moe.unpack_panels %{{.+}} : (tensor<1x5x2x2xf32>) -> tensor<1x2x10xf32>
// CHECK-DAG:     moe.unpack_panels %{{.+}} : (tensor<1x2x2x2xf32>) -> tensor<1x2x4xf32>
// CHECK:         moe.switchhead_cached
func.func @switchhead_cached_dense(%x: tensor<1x1x2xf32>, %wv: tensor<4x2x5xf32>, %wo: tensor<4x5x2xf32>,
                                   %pk: tensor<1x1x3x9xf32>, %pv: tensor<1x1x3x5xf32>)
    -> (tensor<1x1x2xf32>, tensor<1x1x1x9xf32>, tensor<1x1x1x5xf32>) {
  %wq = arith.constant dense<[[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], [10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0]]> : tensor<2x9xf32>
  %s = arith.constant dense<[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]> : tensor<2x4xf32>
  %e = tensor.empty() : tensor<4x2xf32>
  %st = linalg.transpose ins(%s : tensor<2x4xf32>) outs(%e : tensor<4x2xf32>) permutation = [1, 0]
  %y, %nk, %nv = moe.switchhead_cached %x, %x, %x, %wq, %wq, %wv, %wo, %st past(%pk, %pv) sel_v(%st) {num_heads = 1 : i64, k = 1 : i64, rotate_fraction = 0.0 : f64}
      : (tensor<1x1x2xf32>, tensor<1x1x2xf32>, tensor<1x1x2xf32>, tensor<2x9xf32>, tensor<2x9xf32>,
         tensor<4x2x5xf32>, tensor<4x5x2xf32>, tensor<4x2xf32>, tensor<1x1x3x9xf32>, tensor<1x1x3x5xf32>, tensor<4x2xf32>)
      -> (tensor<1x1x2xf32>, tensor<1x1x1x9xf32>, tensor<1x1x1x5xf32>)
  return %y, %nk, %nv : tensor<1x1x2xf32>, tensor<1x1x1x9xf32>, tensor<1x1x1x5xf32>
}

// -----

// moe.ffn's selector stored [D, E] (E = 9 in five panels of 2, the last
// padded), read through a transpose; the scores read the panels.
// CHECK-LABEL: func.func @ffn_selector
// CHECK:         %[[U:.+]] = moe.unpack_panels %{{.+}} : (tensor<1x5x2x2xf32>) -> tensor<1x2x10xf32>
// CHECK:         %[[C:.+]] = tensor.collapse_shape %[[U]]
// CHECK:         %[[S:.+]] = tensor.extract_slice %[[C]][0, 0] [2, 9] [1, 1]
// CHECK:         linalg.transpose ins(%[[S]] : tensor<2x9xf32>)
// LOWER-LABEL: func.func @ffn_selector
// LOWER-NOT:     tensor<1x2x10xf32>
// LOWER:         linalg.generic {{.*}} ins(%{{.+}}, %{{.+}} : tensor<?x2xf32>, tensor<5x2x2xf32>) outs(%{{.+}} : tensor<?x5x2xf32>)
// LOWER:         tensor.extract_slice %{{.+}}[0, 0] [%{{.+}}, 9] [1, 1] : tensor<?x10xf32> to tensor<?x9xf32>
// LOWER-NOT:     moe.unpack_panels
// LOWER-NOT:     tensor<1x2x10xf32>
func.func @ffn_selector(%x: tensor<?x2xf32>, %w1: tensor<9x2x2xf32>, %w2: tensor<9x2x2xf32>) -> tensor<?x2xf32> {
  %s = arith.constant dense<[[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], [10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0]]> : tensor<2x9xf32>
  %e = tensor.empty() : tensor<9x2xf32>
  %st = linalg.transpose ins(%s : tensor<2x9xf32>) outs(%e : tensor<9x2xf32>) permutation = [1, 0]
  %y = moe.ffn %x, %st, %w1, %w2 gate<sigmoid> act<relu> {k = 1 : i64}
      : (tensor<?x2xf32>, tensor<9x2xf32>, tensor<9x2x2xf32>, tensor<9x2x2xf32>) -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}

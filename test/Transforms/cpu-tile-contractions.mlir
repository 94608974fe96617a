// RUN: moe-opt %s --moe-cpu-tile-contractions="vector-bits=512" --split-input-file | FileCheck %s
// RUN: moe-opt %s --moe-cpu-tile-contractions="vector-bits=256 rows=6" --split-input-file | FileCheck %s --check-prefix=AVX2
// RUN: moe-opt %s --moe-cpu-tile-contractions="vector-bits=128 rows=6 fma=false" --split-input-file | FileCheck %s --check-prefix=NOFMA
// RUN: moe-opt %s --moe-cpu-tile-contractions="parallel-rows=true" --split-input-file | FileCheck %s --check-prefix=PAR
// RUN: moe-opt %s --moe-cpu-tile-contractions="dot-products=false" --split-input-file | FileCheck %s --check-prefix=NODOT
// RUN: moe-opt %s --moe-cpu-tile-contractions="row-column-vectors=8" --split-input-file | FileCheck %s --check-prefix=WIDE
// RUN: moe-opt %s --moe-cpu-tile-contractions="row-column-vectors=16" --split-input-file | FileCheck %s --check-prefix=WIDE16
// RUN: moe-opt %s --moe-cpu-tile-contractions="dot-products=false row-column-vectors=16" --split-input-file | FileCheck %s --check-prefix=NODOT
// RUN: moe-opt %s --moe-cpu-tile-contractions="parallel-rows=true row-column-vectors=16" --split-input-file | FileCheck %s --check-prefix=PARCOL
// RUN: moe-opt %s --moe-cpu-tile-contractions="vector-bits=256 rows=6 remainder-tiles=true" --split-input-file | FileCheck %s --check-prefix=REM
// RUN: moe-opt %s --moe-cpu-tile-contractions="vector-bits=512 merge-tail-slices=false" --split-input-file | FileCheck %s --check-prefix=NOMERGE
// RUN: moe-opt %s --moe-cpu-tile-contractions="vector-bits=512 accumulator-chains=4" --split-input-file | FileCheck %s --check-prefix=CHAIN512
// RUN: moe-opt %s --moe-cpu-tile-contractions="vector-bits=256 rows=6 remainder-tiles=true parallel-rows=true" --split-input-file | FileCheck %s --check-prefix=PARREM
// RUN: moe-opt %s --moe-cpu-tile-contractions="vector-bits=256 rows=6 row-column-vectors=8 accumulator-chains=4" --split-input-file | FileCheck %s --check-prefix=CHAIN
// RUN: moe-opt %s --moe-cpu-tile-contractions="vector-bits=256 rows=6 row-column-vectors=8 accumulator-chains=4 fuse-epilogues=true" --split-input-file | FileCheck %s --check-prefix=CHAINEPI
// RUN: moe-opt %s --moe-cpu-tile-contractions="vector-bits=256 rows=6 row-column-vectors=8 accumulator-chains=4 parallel-rows=true" --split-input-file | FileCheck %s --check-prefix=PARCHAIN

// With parallel-rows, the one-row loop of a wide contraction splits its
// columns instead of its rows (a decode step has one row): an scf.parallel
// over chunks of 128 columns (the 1 x 256 one-row tile halved until there
// are four chunks), the remainder (1000 = 7 x 128 + 104) behind an scf.if
// so that every part stays static, each chunk a loop over the rows. (104 =
// 64 + 32 + 8, the 8 in a 16-lane accumulator: merge-tail-slices.)
// PARCOL-LABEL: func @one_row_columns
// PARCOL:         scf.parallel ({{.*}}) = ({{.*}}) to ({{.*}}) step (%c8)
// PARCOL:           scf.for {{.*}} -> (vector<8x32xf32>)
// PARCOL:         %[[ROWS:.*]] = arith.cmpi slt
// PARCOL:         scf.if %[[ROWS]] {
// PARCOL:           scf.parallel (%[[CH:.*]]) = (%c0) to (%c8) step (%c1)
// PARCOL:             %[[FULL:.*]] = arith.cmpi ult, %[[CH]], %c7
// PARCOL:             scf.if %[[FULL]]
// PARCOL:               scf.for
// PARCOL:                 scf.for {{.*}} -> (vector<128xf32>)
// PARCOL:             } else {
// PARCOL:               scf.for
// PARCOL:                 scf.for {{.*}} -> (vector<64xf32>, vector<32xf32>, vector<16xf32>)
// Without parallel-rows, the one-row loop is a sequential loop over rows
// with the whole width in one-row tiles.
// WIDE16-LABEL: func @one_row_columns
// WIDE16:         scf.for {{.*}} step %c1
// WIDE16-NOT:     scf.parallel
// WIDE16-NOT:     scf.if
func.func @one_row_columns(%a: memref<?x412xf32>, %b: memref<412x1000xf32>, %c: memref<?x1000xf32>) {
  linalg.matmul ins(%a, %b : memref<?x412xf32>, memref<412x1000xf32>) outs(%c : memref<?x1000xf32>)
  return
}

// -----

// A static single row: the column chunks alone (512 = 4 x 128, no
// remainder).
// PARCOL-LABEL: func @static_one_row
// PARCOL:         scf.parallel ({{.*}}) = (%c0) to (%c4) step (%c1)
// PARCOL-NOT:       scf.if
// PARCOL:           scf.for {{.*}} -> (vector<128xf32>)
func.func @static_one_row(%a: memref<1x412xf32>, %b: memref<412x512xf32>, %c: memref<1x512xf32>) {
  linalg.matmul ins(%a, %b : memref<1x412xf32>, memref<412x512xf32>) outs(%c : memref<1x512xf32>)
  return
}

// -----

// Too little work per row to pay for a fork-join (412 x 82 multiply-adds):
// the one-row loop stays a parallel loop over rows.
// A remainder narrower than a vector (1025 = 4 x 256 + 1) joins the last
// chunk, which is 257 columns wide (a 256-wide tile, then a 1-wide one).
// PARCOL-LABEL: func @narrow_remainder
// PARCOL:         scf.if
// PARCOL:           scf.parallel (%[[CH:.*]]) = (%c0) to (%c4) step (%c1)
// PARCOL:             %[[NOTLAST:.*]] = arith.cmpi ult, %[[CH]], %c3
// PARCOL:             scf.if %[[NOTLAST]]
// PARCOL:               scf.for {{.*}} -> (vector<256xf32>)
// PARCOL:             } else {
// PARCOL:               scf.for {{.*}} -> (vector<256xf32>)
// PARCOL:               scf.for {{.*}} -> (vector<1xf32>)
func.func @narrow_remainder(%a: memref<?x64xf32>, %b: memref<64x1025xf32>, %c: memref<?x1025xf32>) {
  linalg.matmul ins(%a, %b : memref<?x64xf32>, memref<64x1025xf32>) outs(%c : memref<?x1025xf32>)
  return
}

// -----

// PARCOL-LABEL: func @narrow_one_row
// PARCOL:         scf.parallel ({{.*}}) = ({{.*}}) to ({{.*}}) step (%c8)
// PARCOL:         scf.parallel ({{.*}}) = ({{.*}}) to ({{.*}}) step (%c1)
// PARCOL-NOT:     scf.if
func.func @narrow_one_row(%a: memref<?x412xf32>, %b: memref<412x82xf32>, %c: memref<?x82xf32>) {
  linalg.matmul ins(%a, %b : memref<?x412xf32>, memref<412x82xf32>) outs(%c : memref<?x82xf32>)
  return
}

// -----

// Dynamic rows, 100 columns: 8x32 register tiles up to the last multiple of
// 8 rows, the 4-column tail as an 8x4 tile, then the remaining rows one at a
// time (no padding, no masks); every accumulator is carried across k in
// registers (iter_args) and written once after the k loop.
// CHECK-LABEL: func @matmul
// CHECK-SAME:    (%[[A:.*]]: memref<?x64xf32>, %[[B:.*]]: memref<64x100xf32>, %[[C:.*]]: memref<?x100xf32>)
// CHECK-DAG:     %[[C8:.*]] = arith.constant 8 : index
// CHECK-DAG:     %[[C32:.*]] = arith.constant 32 : index
// CHECK:         %[[M:.*]] = memref.dim %[[A]]
// CHECK:         %[[R8:.*]] = affine.apply #{{.*}}()[%[[M]]]
// CHECK:         scf.for %[[I:.*]] = %{{.*}} to %[[R8]] step %[[C8]] {
// CHECK:           scf.for %[[J:.*]] = %{{.*}} to %{{.*}} step %[[C32]] {
// CHECK:             %[[ACC:.*]] = vector.transfer_read %[[C]][%[[I]], %[[J]]]{{.*}} : memref<?x100xf32>, vector<8x32xf32>
// CHECK:             %[[R:.*]] = scf.for %{{.*}} iter_args(%{{.*}} = %[[ACC]]) -> (vector<8x32xf32>) {
// CHECK-COUNT-8:       vector.fma {{.*}} : vector<32xf32>
// CHECK:               scf.yield
// CHECK-NOT:           vector.transfer_write
// CHECK:             }
// CHECK:             vector.transfer_write %[[R]], %[[C]][%[[I]], %[[J]]]
// CHECK:           scf.for {{.*}} -> (vector<8x4xf32>) {
// CHECK-COUNT-8:     vector.fma {{.*}} : vector<4xf32>
// CHECK:         scf.for %{{.*}} = %[[R8]] to %[[M]] step %c1 {
// CHECK:           scf.for {{.*}} -> (vector<32xf32>) {
// CHECK:             vector.fma {{.*}} : vector<32xf32>
// CHECK-NOT:         vector.fma
// CHECK:           scf.for {{.*}} -> (vector<4xf32>) {
// CHECK-NOT:     linalg.matmul
// With row-column-vectors=8, the one-row loop's tiles are 1 x 128 (here
// narrower: the 100 columns as 64 + 32 + 4, the 4 in a 16-lane
// accumulator, merge-tail-slices), the row tiles unchanged.
// WIDE-LABEL: func @matmul
// WIDE:         scf.for {{.*}} step %c8 {
// WIDE:           scf.for {{.*}} -> (vector<8x32xf32>) {
// WIDE:         scf.for {{.*}} step %c1 {
// WIDE-NEXT:      vector.transfer_read
// WIDE:           scf.for {{.*}} -> (vector<64xf32>, vector<32xf32>, vector<16xf32>) {
// AVX2-LABEL: func @matmul
// AVX2:         scf.for {{.*}} step %c6
// AVX2:           scf.for {{.*}} -> (vector<6x16xf32>) {
// AVX2-COUNT-6:     vector.fma {{.*}} : vector<16xf32>
// AVX2:         scf.for {{.*}} step %c1
// AVX2:           scf.for {{.*}} -> (vector<16xf32>) {
// With parallel-rows, both row loops are scf.parallel (rows are disjoint;
// 64 x 100 multiply-adds per row are too few for column chunks).
// PARCOL-LABEL: func @matmul
// PARCOL:         scf.parallel ({{.*}}) = ({{.*}}) to (%{{.*}}) step (%c8)
// PARCOL:         scf.parallel ({{.*}}) = (%{{.*}}) to (%{{.*}}) step (%c1)
// PAR-LABEL: func @matmul
// PAR:         scf.parallel ({{.*}}) = ({{.*}}) to ({{.*}}) step (%c8)
// PAR:           scf.for {{.*}} -> (vector<8x32xf32>)
// PAR:         scf.parallel ({{.*}}) = ({{.*}}) to ({{.*}}) step (%c1)
// Without FMA instructions: a multiply and an add per term.
// NOFMA-LABEL: func @matmul
// NOFMA:         scf.for {{.*}} -> (vector<6x8xf32>) {
// NOFMA:           arith.mulf {{.*}} : vector<8xf32>
// NOFMA:           arith.addf {{.*}} : vector<8xf32>
// NOFMA-NOT:     vector.fma
func.func @matmul(%a: memref<?x64xf32>, %b: memref<64x100xf32>, %c: memref<?x100xf32>) {
  linalg.matmul ins(%a, %b : memref<?x64xf32>, memref<64x100xf32>) outs(%c : memref<?x100xf32>)
  return
}

// -----

// A generic contraction in (m, k, n) loop order (what moe-cpu-loop-order
// leaves) takes the same kernel.
// CHECK-LABEL: func @generic_mkn
// CHECK:         scf.for {{.*}} -> (vector<8x32xf32>) {
// CHECK-COUNT-8:   vector.fma
// CHECK-NOT:     linalg.generic
#lhs = affine_map<(m, k, n) -> (m, k)>
#rhs = affine_map<(m, k, n) -> (k, n)>
#out = affine_map<(m, k, n) -> (m, n)>
func.func @generic_mkn(%a: memref<16x8xf32>, %b: memref<8x64xf32>, %c: memref<16x64xf32>) {
  linalg.generic {indexing_maps = [#lhs, #rhs, #out],
                  iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%a, %b : memref<16x8xf32>, memref<8x64xf32>) outs(%c : memref<16x64xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y fastmath<contract> : f32
    %s = arith.addf %acc, %p fastmath<contract> : f32
    linalg.yield %s : f32
  }
  return
}

// -----

// No m dim (the combine: out[n, o] += w[n, s] * y[n, s, o]): n is a batch
// dim tiled by 1, o the vector dim.
// CHECK-LABEL: func @combine
// CHECK:         scf.for
// CHECK:           scf.for {{.*}} -> (vector<32xf32>) {
// CHECK:             vector.fma {{.*}} : vector<32xf32>
// CHECK-NOT:     linalg.generic
#w = affine_map<(n, o, s) -> (n, s)>
#y = affine_map<(n, o, s) -> (n, s, o)>
#o = affine_map<(n, o, s) -> (n, o)>
func.func @combine(%w: memref<?x4xf32>, %y: memref<?x4x64xf32>, %out: memref<?x64xf32>) {
  linalg.generic {indexing_maps = [#w, #y, #o],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%w, %y : memref<?x4xf32>, memref<?x4x64xf32>) outs(%out : memref<?x64xf32>) {
  ^bb0(%x: f32, %v: f32, %acc: f32):
    %p = arith.mulf %x, %v : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// -----

// 60 columns: one 32-wide tile, then a 28-wide tail split into 16 + 8 + 4
// columns (no vector<28xf32>, no masks), carried across k by one loop.
// The 8 and 4 slices share one 16-lane accumulator (merge-tail-slices):
// their accumulators (read from C, not zero) go into its lanes 0-7 and
// 8-11 before the loop; one read of B at column 48 runs past the row's
// end (not in bounds: lanes 12-15 masked, no 8- or 4-lane vector in the
// loop); after it, each slice's lanes are taken out again.
// CHECK-LABEL: func @split_tail
// CHECK:         scf.for {{.*}} -> (vector<8x32xf32>)
// CHECK:         vector.insert_strided_slice %{{.*}}, %{{.*}} {offsets = [0], strides = [1]} : vector<8xf32> into vector<16xf32>
// CHECK:         vector.insert_strided_slice %{{.*}}, %{{.*}} {offsets = [8], strides = [1]} : vector<4xf32> into vector<16xf32>
// CHECK:         %[[T:.*]]:2 = scf.for {{.*}} -> (vector<8x16xf32>, vector<8x16xf32>)
// CHECK-NOT:       vector<8xf32>
// CHECK-NOT:       vector<4xf32>
// CHECK:           vector.transfer_read %{{.*}}[%{{.*}}, %c32], %{{.*}} {in_bounds = [true]} : memref<64x60xf32>, vector<16xf32>
// CHECK-NOT:       vector<8xf32>
// CHECK-NOT:       vector<4xf32>
// CHECK:           vector.transfer_read %{{.*}}[%{{.*}}, %c48], %{{[^ ]*}} : memref<64x60xf32>, vector<16xf32>
// CHECK-NOT:       vector<8xf32>
// CHECK-NOT:       vector<4xf32>
// CHECK:           scf.yield
// CHECK:         %[[ROW:.*]] = vector.extract %[[T]]#1[0] : vector<16xf32> from vector<8x16xf32>
// CHECK:         vector.extract_strided_slice %[[ROW]] {offsets = [0], sizes = [8], strides = [1]}
// CHECK:         vector.extract_strided_slice %[[ROW]] {offsets = [8], sizes = [4], strides = [1]}
// CHECK:         vector.transfer_write %{{.*}}, %{{.*}}[%c0, %c56] {{.*}} : vector<8x4xf32>
// CHECK:         vector.transfer_write %{{.*}}, %{{.*}}[%c0, %c48] {{.*}} : vector<8x8xf32>
// CHECK:         vector.transfer_write %[[T]]#0, %{{.*}}[%c0, %c32] {{.*}} : vector<8x16xf32>
// CHECK-NOT:     vector.create_mask
// CHECK-NOT:     vector<8x28xf32>
// Switched off, the three accumulators of before.
// NOMERGE-LABEL: func @split_tail
// NOMERGE:       scf.for {{.*}} -> (vector<8x16xf32>, vector<8x8xf32>, vector<8x4xf32>)
// NOMERGE-NOT:   vector.extract_strided_slice
func.func @split_tail(%a: memref<8x64xf32>, %b: memref<64x60xf32>, %c: memref<8x60xf32>) {
  linalg.matmul ins(%a, %b : memref<8x64xf32>, memref<64x60xf32>) outs(%c : memref<8x60xf32>)
  return
}

// -----

// One row with the output's values as the start (no fill): the 8 and 4
// slices' accumulators start as lanes 0-7 and 8-11 of the merged one. With
// accumulator chains, the one-row tile's two registers (three before the
// merge) rotate over four sets each, summed pairwise after the loop, and
// the slices are taken from the sum.
// CHECK-LABEL: func @one_row_tail
// CHECK-DAG:     %[[C8:.*]] = vector.transfer_read %{{.*}}[%c0, %c16]{{.*}} : memref<1x28xf32>, vector<8xf32>
// CHECK-DAG:     %[[C4:.*]] = vector.transfer_read %{{.*}}[%c0, %c24]{{.*}} : memref<1x28xf32>, vector<4xf32>
// CHECK:         %[[I8:.*]] = vector.insert_strided_slice %[[C8]], %{{.*}} {offsets = [0], strides = [1]}
// CHECK:         %[[I4:.*]] = vector.insert_strided_slice %[[C4]], %[[I8]] {offsets = [8], strides = [1]}
// CHECK:         %[[R:.*]]:2 = scf.for {{.*}} iter_args(%{{.*}} = %{{.*}}, %{{.*}} = %[[I4]]) -> (vector<16xf32>, vector<16xf32>)
// CHECK-COUNT-2:   vector.fma {{.*}} : vector<16xf32>
// CHECK-NOT:       vector.fma
// CHECK:         vector.extract_strided_slice %[[R]]#1 {offsets = [0], sizes = [8], strides = [1]}
// CHECK:         vector.extract_strided_slice %[[R]]#1 {offsets = [8], sizes = [4], strides = [1]}
// CHAIN512-LABEL: func @one_row_tail
// CHAIN512:       %[[R:.*]]:8 = scf.for {{.*}} -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
// CHAIN512:       %[[A:.*]] = arith.addf %[[R]]#4, %[[R]]#5
// CHAIN512:       %[[B:.*]] = arith.addf %[[R]]#6, %[[R]]#7
// CHAIN512:       %[[S:.*]] = arith.addf %[[A]], %[[B]]
// CHAIN512:       vector.extract_strided_slice %[[S]] {offsets = [0], sizes = [8], strides = [1]}
// CHAIN512:       vector.extract_strided_slice %[[S]] {offsets = [8], sizes = [4], strides = [1]}
func.func @one_row_tail(%a: memref<1x64xf32>, %b: memref<64x28xf32>, %c: memref<1x28xf32>) {
  linalg.matmul ins(%a, %b : memref<1x64xf32>, memref<64x28xf32>) outs(%c : memref<1x28xf32>)
  return
}

// -----

// The same tail after a zero fill, with dynamic rows: the full row tiles'
// merged accumulator starts from zero like the others, and the one-row
// tiles' 1-D slices merge too (vector<16xf32> accumulators). The last
// read of B at column 16 of a 28-column row is not in bounds.
// CHECK-LABEL: func @split_tail_rows
// CHECK:         %[[Z:.*]] = arith.constant dense<0.000000e+00> : vector<8x16xf32>
// CHECK:         scf.for {{.*}} step %c8
// CHECK:           scf.for {{.*}} iter_args(%{{.*}} = %[[Z]], %{{.*}} = %[[Z]]) -> (vector<8x16xf32>, vector<8x16xf32>)
// CHECK:             vector.transfer_read %{{.*}}[%{{.*}}, %c16], %{{[^ ]*}} : memref<64x28xf32>, vector<16xf32>
// CHECK:         scf.for {{.*}} step %c1
// CHECK:           %[[R:.*]]:2 = scf.for {{.*}} -> (vector<16xf32>, vector<16xf32>)
// CHECK:             vector.transfer_read %{{.*}}[%{{.*}}, %c16], %{{[^ ]*}} : memref<64x28xf32>, vector<16xf32>
// CHECK-DAG:       %[[S8:.*]] = vector.extract_strided_slice %[[R]]#1 {offsets = [0], sizes = [8], strides = [1]}
// CHECK-DAG:       %[[S4:.*]] = vector.extract_strided_slice %[[R]]#1 {offsets = [8], sizes = [4], strides = [1]}
// CHECK-DAG:       vector.transfer_write %[[S4]], %{{.*}}[%{{.*}}, %c24]
// CHECK-DAG:       vector.transfer_write %[[S8]], %{{.*}}[%{{.*}}, %c16]
// CHECK-NOT:     linalg.fill
// NOMERGE-LABEL: func @split_tail_rows
// NOMERGE:         scf.for {{.*}} -> (vector<8x16xf32>, vector<8x8xf32>, vector<8x4xf32>)
// NOMERGE:         scf.for {{.*}} -> (vector<16xf32>, vector<8xf32>, vector<4xf32>)
func.func @split_tail_rows(%a: memref<?x64xf32>, %b: memref<64x28xf32>, %c: memref<?x28xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%c : memref<?x28xf32>)
  linalg.matmul ins(%a, %b : memref<?x64xf32>, memref<64x28xf32>) outs(%c : memref<?x28xf32>)
  return
}

// -----

// Dynamic columns: the column tail is a masked vector. Its mask does not
// change over k, so its accumulator is carried across the k loop like a
// full tile's: one masked read before the loop, one masked write after
// it (not a masked load and store per k).
// CHECK-LABEL: func @dynamic_columns
// CHECK:         scf.for {{.*}} step %c32 {
// CHECK:           %[[MASK:.*]] = vector.create_mask %c8, %{{.*}} : vector<8x32xi1>
// CHECK:           %[[ACC:.*]] = vector.transfer_read %{{.*}}, %[[MASK]] {{.*}} : memref<8x?xf32>, vector<8x32xf32>
// CHECK:           %[[SUM:.*]] = scf.for {{.*}} iter_args(%{{.*}} = %[[ACC]]) -> (vector<8x32xf32>) {
// CHECK-NOT:         vector.transfer_write
// CHECK:             vector.fma
// CHECK:           }
// CHECK:           vector.transfer_write %[[SUM]], %{{.*}}, %[[MASK]] {{.*}} : vector<8x32xf32>, memref<8x?xf32>
// CHECK-NOT:     linalg.matmul
func.func @dynamic_columns(%a: memref<8x16xf32>, %b: memref<16x?xf32>, %c: memref<8x?xf32>) {
  linalg.matmul ins(%a, %b : memref<8x16xf32>, memref<16x?xf32>) outs(%c : memref<8x?xf32>)
  return
}

// -----

// One row (a decode step's product with a weight of dynamic width): the
// wide tile, its dynamic tail masked at the tile's width (a mask of the
// narrow tile's 32 lanes would drop columns).
// CHECK-LABEL: func @one_row_dynamic_columns
// CHECK:         scf.for {{.*}} step %c32
// CHECK:           vector.create_mask {{.*}} : vector<1x32xi1>
// WIDE-LABEL: func @one_row_dynamic_columns
// WIDE:         scf.for {{.*}} step %c128
// WIDE:           scf.for {{.*}} -> (vector<128xf32>) {
// WIDE:         scf.for {{.*}} step %c128
// WIDE:           vector.create_mask {{.*}} : vector<1x128xi1>
// The setting moe-compile uses with AVX-512: 1 x 256.
// WIDE16-LABEL: func @one_row_dynamic_columns
// WIDE16:         scf.for {{.*}} step %c256
// WIDE16:           scf.for {{.*}} -> (vector<256xf32>) {
// WIDE16:         scf.for {{.*}} step %c256
// WIDE16:           vector.create_mask {{.*}} : vector<1x256xi1>
func.func @one_row_dynamic_columns(%a: memref<1x16xf32>, %b: memref<16x?xf32>, %c: memref<1x?xf32>) {
  linalg.matmul ins(%a, %b : memref<1x16xf32>, memref<16x?xf32>) outs(%c : memref<1x?xf32>)
  return
}

// -----

// A transposed right-hand side (a selector [E, D] read as "nd,ed->ne"):
// the same register tiles, reading a strided column of the selector per k.
// CHECK-LABEL: func @transposed_rhs
// CHECK:         scf.for {{.*}} -> (vector<8x32xf32>) {
// CHECK:           vector.transfer_read %{{.*}} : memref<64x16xf32>, vector<32x1xf32>
// CHECK-COUNT-8:   vector.fma {{.*}} : vector<32xf32>
// CHECK-NOT:     linalg.generic
#t_lhs = affine_map<(n, e, d) -> (n, d)>
#t_rhs = affine_map<(n, e, d) -> (e, d)>
#t_out = affine_map<(n, e, d) -> (n, e)>
func.func @transposed_rhs(%x: memref<?x16xf32>, %wsel: memref<64x16xf32>, %s: memref<?x64xf32>) {
  linalg.generic {indexing_maps = [#t_lhs, #t_rhs, #t_out],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %wsel : memref<?x16xf32>, memref<64x16xf32>) outs(%s : memref<?x64xf32>) {
  ^bb0(%p: f32, %q: f32, %acc: f32):
    %m = arith.mulf %p, %q : f32
    %a = arith.addf %acc, %m : f32
    linalg.yield %a : f32
  }
  return
}

// -----

// Left to the loop path: an output narrower than one vector, integers,
// and tensors.
// CHECK-LABEL: func @not_taken
// CHECK-NOT:     vector.
// CHECK:         linalg.matmul {{.*}} memref<4x8xf32>
// CHECK:         linalg.matmul {{.*}} memref<4x64xi32>
// CHECK:         linalg.matmul {{.*}} -> tensor<4x64xf32>
func.func @not_taken(%x: memref<4x16xf32>,
                     %b8: memref<16x8xf32>, %c8: memref<4x8xf32>,
                     %xi: memref<4x16xi32>, %bi: memref<16x64xi32>, %ci: memref<4x64xi32>,
                     %tx: tensor<4x16xf32>, %tb: tensor<16x64xf32>, %tc: tensor<4x64xf32>) -> tensor<4x64xf32> {
  linalg.matmul ins(%x, %b8 : memref<4x16xf32>, memref<16x8xf32>) outs(%c8 : memref<4x8xf32>)
  linalg.matmul ins(%xi, %bi : memref<4x16xi32>, memref<16x64xi32>) outs(%ci : memref<4x64xi32>)
  %r = linalg.matmul ins(%tx, %tb : tensor<4x16xf32>, tensor<16x64xf32>) outs(%tc : tensor<4x64xf32>) -> tensor<4x64xf32>
  return %r : tensor<4x64xf32>
}

// -----

// Also left alone: a body that is more than a multiply-add (a unary op
// around the product or the sum would be lost), an output that is a view
// of an input's buffer (the accumulator could not stay in registers), and
// a zero-sized dim.
// CHECK-LABEL: func @not_plain
// CHECK-NOT:     vector.
// CHECK:         arith.negf
// CHECK:         math.tanh
// CHECK:         linalg.matmul ins(%[[V:.*]], %{{.*}} : memref<8x64xf32
// CHECK:         linalg.matmul {{.*}} memref<0x64xf32>
#nm_lhs = affine_map<(m, n, k) -> (m, k)>
#nm_rhs = affine_map<(m, n, k) -> (k, n)>
#nm_out = affine_map<(m, n, k) -> (m, n)>
func.func @not_plain(%a: memref<8x16xf32>, %b: memref<16x64xf32>, %c: memref<8x64xf32>,
                     %z: memref<0x16xf32>, %cz: memref<0x64xf32>, %sq: memref<8x64xf32>,
                     %b64: memref<64x64xf32>) {
  linalg.generic {indexing_maps = [#nm_lhs, #nm_rhs, #nm_out],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%a, %b : memref<8x16xf32>, memref<16x64xf32>) outs(%c : memref<8x64xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %ny = arith.negf %y : f32
    %p = arith.mulf %x, %ny : f32
    %s = arith.addf %acc, %p : f32
    %t = math.tanh %s : f32
    linalg.yield %t : f32
  }
  %v = memref.reinterpret_cast %sq to offset: [0], sizes: [8, 64], strides: [64, 1] : memref<8x64xf32> to memref<8x64xf32, strided<[64, 1]>>
  linalg.matmul ins(%v, %b64 : memref<8x64xf32, strided<[64, 1]>>, memref<64x64xf32>) outs(%sq : memref<8x64xf32>)
  linalg.matmul ins(%z, %b : memref<0x16xf32>, memref<16x64xf32>) outs(%cz : memref<0x64xf32>)
  return
}

// -----

// Inside another loop (a grouped matmul's expert loop) the row loops stay
// sequential even with parallel-rows: a fork-join per expert costs more
// than it saves.
// CHECK-LABEL: func @in_loop
// CHECK:         scf.for {{.*}} -> (vector<8x32xf32>)
// PAR-LABEL: func @in_loop
// PAR-NOT:       scf.parallel
func.func @in_loop(%a: memref<4x?x16xf32>, %b: memref<4x16x64xf32>, %c: memref<?x64xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %n = memref.dim %a, %c1 : memref<4x?x16xf32>
  scf.for %e = %c0 to %c4 step %c1 {
    %ae = memref.subview %a[%e, 0, 0] [1, %n, 16] [1, 1, 1] : memref<4x?x16xf32> to memref<?x16xf32, strided<[16, 1], offset: ?>>
    %be = memref.subview %b[%e, 0, 0] [1, 16, 64] [1, 1, 1] : memref<4x16x64xf32> to memref<16x64xf32, strided<[64, 1], offset: ?>>
    linalg.matmul ins(%ae, %be : memref<?x16xf32, strided<[16, 1], offset: ?>>, memref<16x64xf32, strided<[64, 1], offset: ?>>) outs(%c : memref<?x64xf32>)
  }
  return
}

// -----

// The loop over a model's repeats (moe-roll-repeats marks it moe.repeats)
// runs whole layers: its contractions' row loops are parallel.
// PAR-LABEL: func @in_repeats
// PAR:         scf.for
// PAR:           scf.parallel
// PAR:         } {moe.repeats = 3 : i64}
func.func @in_repeats(%a: memref<?x16xf32>, %b: memref<16x64xf32>, %c: memref<?x64xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c3 = arith.constant 3 : index
  scf.for %r = %c0 to %c3 step %c1 {
    linalg.matmul ins(%a, %b : memref<?x16xf32>, memref<16x64xf32>) outs(%c : memref<?x64xf32>)
  } {moe.repeats = 3 : i64}
  return
}


// -----

// A decode step's scores against a head-major cache (the first P rows of
// a longer buffer, a strided slice): the vector dim p is strided in the
// cache, k (d) is contiguous in both operands. Dot
// products: p in strips of 8 then 1, d in chunks of one vector with a
// vector of partial sums per output, halved to a scalar, the d tail (82 =
// 5 x 16 + 2) added after, then the output.
// CHECK-LABEL: func @cached_scores
// CHECK:         %[[FULL:.*]] = affine.apply
// CHECK:         scf.for %[[P:.*]] = %c0 to %[[FULL]] step %c8
// CHECK:           scf.for {{.*}} to %c4 step %c1
// CHECK:             %[[S:.*]]:8 = scf.for %[[K:.*]] = %c0 to %c80 step %c16 iter_args({{.*}}) -> (vector<16xf32>, {{.*}})
// CHECK:               %[[Q:.*]] = vector.load %{{.*}}[{{.*}}, %[[K]]] : memref<?x4x1x82xf32>, vector<16xf32>
// CHECK:               %[[K0:.*]] = vector.load %{{.*}}[{{.*}}, {{.*}}, %[[P]], %[[K]]] : memref<?x4x?x82xf32, {{.*}}>, vector<16xf32>
// CHECK:               vector.fma %[[Q]], %[[K0]], {{.*}} : vector<16xf32>
// CHECK-COUNT-7:       vector.fma %[[Q]]
// CHECK:             vector.extract_strided_slice %[[S]]#0 {offsets = [0], sizes = [8], strides = [1]}
// CHECK:             scf.for {{.*}} = %c80 to %c82 step %c1 iter_args
// CHECK:               memref.load
// CHECK:             memref.store
// CHECK:         scf.for {{.*}} = %[[FULL]] to %{{.*}} step %c1
// CHECK:           scf.for {{.*}} -> (vector<16xf32>)
// CHECK-NOT:     vector.insert
// With parallel-rows, an op outside any loop splits its dot-product
// strips of 8 over the threads (an scf.parallel); the last few stay a
// sequential loop.
// PARCOL-LABEL: func @cached_scores
// PARCOL:         scf.parallel ({{.*}}) = (%c0) to ({{.*}}) step (%c8)
// PARCOL:           vector.fma
// PARCOL:         scf.for {{.*}} step %c1
// NODOT-LABEL: func @cached_scores
// (One row read strided: the narrow tile even with row-column-vectors=16.)
// NODOT:         scf.for {{.*}} step %c32
// NODOT:           scf.for {{.*}} -> (vector<32xf32>)
// NODOT:         vector.insert
// NODOT-NOT:     vector.load
#cq = affine_map<(b, h, t, p, d) -> (b, h, t, d)>
#ck = affine_map<(b, h, t, p, d) -> (b, h, p, d)>
#cs = affine_map<(b, h, t, p, d) -> (b, h, t, p)>
func.func @cached_scores(%q: memref<?x4x1x82xf32>, %k: memref<?x4x?x82xf32, strided<[?, ?, 82, 1], offset: ?>>, %s: memref<?x4x1x?xf32>) {
  linalg.generic {indexing_maps = [#cq, #ck, #cs], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %k : memref<?x4x1x82xf32>, memref<?x4x?x82xf32, strided<[?, ?, 82, 1], offset: ?>>) outs(%s : memref<?x4x1x?xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %c, %m : f32
    linalg.yield %r : f32
  }
  return
}

// -----

// Scores of a query with rows of unknown count (a decode step's one row)
// against the cache: with parallel-rows, the 8-row tiles stay a parallel
// loop, the one-row loop becomes sequential and the dot-product strips of
// its rows are the parallel loops (the keys split over the threads).
// Without parallel-rows: both row loops sequential, no parallel strips.
// CHECK-LABEL: func @cached_scores_rows
// CHECK-NOT:     scf.parallel
// NODOT-LABEL: func @cached_scores_rows
// PARCOL-LABEL: func @cached_scores_rows
// PARCOL:         scf.parallel ({{.*}}) = ({{.*}}) to ({{.*}}) step (%c8)
// PARCOL:         scf.for {{.*}} step %c1 {
// PARCOL-NOT:       moe.cpu_dot_rows
// PARCOL:           scf.parallel ({{.*}}) = (%c0) to ({{.*}}) step (%c8)
// PARCOL:             vector.fma
// PARCOL:           scf.for {{.*}} step %c1
// PARCOL-NOT:     moe.cpu_dot_rows
#rq = affine_map<(b, h, t, p, d) -> (b, h, t, d)>
#rk = affine_map<(b, h, t, p, d) -> (p, b, h, d)>
#rs = affine_map<(b, h, t, p, d) -> (b, h, t, p)>
func.func @cached_scores_rows(%q: memref<1x4x?x82xf32>, %k: memref<?x1x4x82xf32>, %s: memref<1x4x?x?xf32>) {
  linalg.generic {indexing_maps = [#rq, #rk, #rs], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %k : memref<1x4x?x82xf32>, memref<?x1x4x82xf32>) outs(%s : memref<1x4x?x?xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %c, %m : f32
    linalg.yield %r : f32
  }
  return
}

// -----

// A selector narrower than one vector (E = 8 < 16 lanes) with rows of
// unknown count: the rows in tiles of 8 stay on the loop path, the one-row
// tail becomes dot products (one strip of 8).
// CHECK-LABEL: func @narrow_selector
// CHECK:         scf.for {{.*}} step %c8
// CHECK:           linalg.contract
// CHECK:         scf.for {{.*}} step %c1
// CHECK:           scf.for {{.*}} to %c32 step %c16 iter_args({{.*}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
// CHECK-COUNT-8:     vector.fma
// CHECK-NOT:     linalg.
// NODOT-LABEL: func @narrow_selector
// NODOT-NOT:     vector.
// NODOT:         linalg.generic
#nx = affine_map<(n, e, d) -> (n, d)>
#nw = affine_map<(n, e, d) -> (e, d)>
#ny = affine_map<(n, e, d) -> (n, e)>
func.func @narrow_selector(%x: memref<?x32xf32>, %w: memref<8x32xf32>, %y: memref<?x8xf32>) {
  linalg.generic {indexing_maps = [#nx, #nw, #ny], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<?x32xf32>, memref<8x32xf32>) outs(%y : memref<?x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %c, %m : f32
    linalg.yield %r : f32
  }
  return
}

// -----

// Mixture of Tokens' expert product "tced,edj->tcej": the rows t and c
// are adjacent dims of the mixed tokens and of the output, so they fold
// into one row dim (memref.collapse_shape): 8-row tiles over t * c, where
// the innermost row dim alone (c, one group: size 1) would give one-row
// tiles. The batch dim e (the expert, whose weights are the right-hand
// side) is the outer loop, so each expert's weights are read by all its
// row tiles while in cache; with parallel-rows it is the scf.parallel and
// the row loops inside it are sequential.
// CHECK-LABEL: func @mot_experts
// CHECK-DAG:     memref.collapse_shape %{{.*}} {{\[\[}}0, 1], [2], [3]] : memref<?x?x4x16xf32> into memref<?x4x16xf32>
// CHECK-DAG:     memref.collapse_shape %{{.*}} {{\[\[}}0, 1], [2], [3]] : memref<?x?x4x64xf32> into memref<?x4x64xf32>
// CHECK:         scf.for %{{.*}} = %c0 to %c4 step %c1
// CHECK:           scf.for {{.*}} step %c8
// CHECK:             scf.for {{.*}} step %c32
// CHECK:               scf.for {{.*}} -> (vector<8x1x32xf32>)
// CHECK:           scf.for {{.*}} step %c1
// PAR-LABEL: func @mot_experts
// PAR:           scf.parallel ({{.*}}) = (%c0) to (%c4) step (%c1)
// PAR-NOT:         scf.parallel
// PAR:           return
#ma = affine_map<(t, c, e, j, d) -> (t, c, e, d)>
#mb = affine_map<(t, c, e, j, d) -> (e, d, j)>
#mc = affine_map<(t, c, e, j, d) -> (t, c, e, j)>
func.func @mot_experts(%z: memref<?x?x4x16xf32>, %w: memref<4x16x64xf32>, %h: memref<?x?x4x64xf32>) {
  linalg.generic {indexing_maps = [#ma, #mb, #mc], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%z, %w : memref<?x?x4x16xf32>, memref<4x16x64xf32>) outs(%h : memref<?x?x4x64xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %c, %m : f32
    linalg.yield %r : f32
  }
  return
}

// -----

// The same product on a view whose rows t and c need not be contiguous
// (dynamic strides): no fold, the rows stay two loops.
// CHECK-LABEL: func @mot_experts_strided
// CHECK-NOT:     memref.collapse_shape
// CHECK:         return
#sa = affine_map<(t, c, e, j, d) -> (t, c, e, d)>
#sb = affine_map<(t, c, e, j, d) -> (e, d, j)>
#sc = affine_map<(t, c, e, j, d) -> (t, c, e, j)>
func.func @mot_experts_strided(%z: memref<?x?x4x16xf32, strided<[?, ?, 16, 1]>>, %w: memref<4x16x64xf32>, %h: memref<?x?x4x64xf32>) {
  linalg.generic {indexing_maps = [#sa, #sb, #sc], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%z, %w : memref<?x?x4x16xf32, strided<[?, ?, 16, 1]>>, memref<4x16x64xf32>) outs(%h : memref<?x?x4x64xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %c, %m : f32
    linalg.yield %r : f32
  }
  return
}

// -----

// Mixture of Tokens' mix "cgte,cgtd->tced": per token t and group c, the
// mixing weights [E, g] times the group's tokens [g, D]. The batch dims t
// and c are dynamic: loops outside the row tiles of e all the same (each
// group's tokens read by every row tile while in cache), the first one
// parallel with parallel-rows.
// CHECK-LABEL: func @mot_mix
// CHECK:         scf.for %{{.*}} = %c0 to %{{.*}} step %c1
// CHECK:           scf.for %{{.*}} = %c0 to %{{.*}} step %c1
// CHECK:             scf.for {{.*}} = %c0 to %c32 step %c8
// CHECK:               scf.for {{.*}} step %c32
// CHECK:                 scf.for {{.*}} -> (vector<8x32xf32>)
// PAR-LABEL: func @mot_mix
// PAR:           scf.parallel ({{.*}}) = (%c0) to ({{.*}}) step (%c1)
// PAR-NOT:         scf.parallel
// PAR:           return
#xm = affine_map<(t, c, e, d, g) -> (c, g, t, e)>
#xx = affine_map<(t, c, e, d, g) -> (c, g, t, d)>
#xz = affine_map<(t, c, e, d, g) -> (t, c, e, d)>
func.func @mot_mix(%m: memref<?x32x?x32xf32>, %x: memref<?x32x?x64xf32>, %z: memref<?x?x32x64xf32>) {
  linalg.generic {indexing_maps = [#xm, #xx, #xz], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%m, %x : memref<?x32x?x32xf32>, memref<?x32x?x64xf32>) outs(%z : memref<?x?x32x64xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %r = arith.addf %c, %p : f32
    linalg.yield %r : f32
  }
  return
}

// -----

// A zero fill right before a contraction of the same output (what
// bufferization makes of linalg.fill + matmul on tensors): every register
// tile starts from zero instead of reading the output back, and the fill
// is gone (the contraction writes each output element once).
// CHECK-LABEL: func @zero_filled
// CHECK-NOT:     linalg.fill
// CHECK:         scf.for {{.*}} step %c8
// CHECK:           scf.for {{.*}} step %c32
// CHECK-NOT:         vector.transfer_read %arg2
// CHECK:             scf.for {{.*}} iter_args(%{{.*}} = %cst{{.*}}) -> (vector<8x32xf32>)
// CHECK:         scf.for {{.*}} step %c1
// CHECK-NOT:       vector.transfer_read %arg2
// CHECK:           scf.for {{.*}} iter_args(%{{.*}} = %cst{{.*}}) -> (vector<32xf32>)
// CHECK-NOT:     linalg.fill
// CHECK:         return
func.func @zero_filled(%a: memref<?x16xf32>, %b: memref<16x64xf32>, %c: memref<?x64xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%c : memref<?x64xf32>)
  linalg.matmul ins(%a, %b : memref<?x16xf32>, memref<16x64xf32>) outs(%c : memref<?x64xf32>)
  return
}

// -----

// The same through the views of an output read as column panels (the LM
// head's [N, 128] output as [N, 8, 16]): the fill writes one expand of the
// buffer and the contraction the expand that the pass casts
// (castExpandedOperands); both are the whole buffer, so the tiles start
// from zero and the fill goes. A cast the pass did not make of an expand
// (@panels_offset, @panels_half: an offset of its own, or half of the
// buffer) is not known to view each element of the filled buffer once,
// and its fill stays.
// CHECK-LABEL: func @zero_filled_panels
// CHECK-NOT:     linalg.fill
// CHECK:         %[[O:.*]] = memref.reinterpret_cast %arg2
// CHECK-NOT:     vector.transfer_read %[[O]]
// CHECK:         scf.for {{.*}} iter_args(%{{.*}} = %cst{{.*}}) -> (vector<8x1x16xf32>)
// CHECK-NOT:     linalg.fill
// CHECK:         return
// CHECK-LABEL: func @panels_half
// CHECK:         linalg.fill
// CHECK:         vector.transfer_read %{{.*}} : memref<?x4x16xf32, strided<[128, 16, 1]>>, vector<8x1x16xf32>
// CHECK-LABEL: func @panels_offset
// CHECK:         linalg.fill
// CHECK:         vector.transfer_read %{{.*}} : memref<?x8x16xf32, strided<[128, 16, 1], offset: 16>>, vector<8x1x16xf32>
#pan_x = affine_map<(d0, d1, d2, d3) -> (d0, d3)>
#pan_w = affine_map<(d0, d1, d2, d3) -> (d1, d3, d2)>
#pan_o = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
func.func @zero_filled_panels(%x: memref<?x64xf32>, %w: memref<8x64x16xf32>, %flat: memref<?x128xf32>, %n: index) {
  %zero = arith.constant 0.0 : f32
  %o = memref.expand_shape %flat [[0], [1, 2]] output_shape [%n, 8, 16] : memref<?x128xf32> into memref<?x8x16xf32>
  linalg.fill ins(%zero : f32) outs(%o : memref<?x8x16xf32>)
  linalg.generic {indexing_maps = [#pan_x, #pan_w, #pan_o], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<?x64xf32>, memref<8x64x16xf32>) outs(%o : memref<?x8x16xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  }
  return
}
func.func @panels_half(%x: memref<?x64xf32>, %w: memref<4x64x16xf32>, %flat: memref<?x128xf32>, %n: index) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%flat : memref<?x128xf32>)
  %o = memref.reinterpret_cast %flat to offset: [0], sizes: [%n, 4, 16], strides: [128, 16, 1] : memref<?x128xf32> to memref<?x4x16xf32, strided<[128, 16, 1]>>
  linalg.generic {indexing_maps = [#pan_x, #pan_w, #pan_o], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<?x64xf32>, memref<4x64x16xf32>) outs(%o : memref<?x4x16xf32, strided<[128, 16, 1]>>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  }
  return
}
func.func @panels_offset(%x: memref<?x64xf32>, %w: memref<8x64x16xf32>, %flat: memref<?x128xf32>, %n: index) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%flat : memref<?x128xf32>)
  %o = memref.reinterpret_cast %flat to offset: [16], sizes: [%n, 8, 16], strides: [128, 16, 1] : memref<?x128xf32> to memref<?x8x16xf32, strided<[128, 16, 1], offset: 16>>
  linalg.generic {indexing_maps = [#pan_x, #pan_w, #pan_o], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<?x64xf32>, memref<8x64x16xf32>) outs(%o : memref<?x8x16xf32, strided<[128, 16, 1], offset: 16>>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  }
  return
}

// -----

// Fills that stay: of another value than +0.0 (-0.0 + x is not 0.0 + x
// for x = -0.0), with a write of the output in between, of an output some
// of whose parts read it back (the one-row tail of a selector as dot
// products adds the output's initial value), and of a contraction with
// two reduction dims (a weighted sum over slots s and t: the k loop of t
// runs once per s, and reads what the previous s left), and of a
// contraction whose only k is one step (its k loop is inlined, and the
// tile reads the output).
// CHECK-LABEL: func @fills_kept
// CHECK:         linalg.fill ins(%{{.*}} : f32) outs(%arg2
// CHECK:         linalg.fill ins(%{{.*}} : f32) outs(%arg3
// CHECK:         memref.store
// CHECK:         linalg.fill ins(%{{.*}} : f32) outs(%arg6
// CHECK:         linalg.fill ins(%{{.*}} : f32) outs(%arg9
// CHECK:         scf.for
// CHECK:           scf.for
// CHECK:             vector.transfer_read %arg9
// CHECK:         linalg.fill ins(%{{.*}} : f32) outs(%arg12
// CHECK:         vector.transfer_read %arg12
// CHECK:         return
#kx = affine_map<(n, e, d) -> (n, d)>
#kw = affine_map<(n, e, d) -> (e, d)>
#ky = affine_map<(n, e, d) -> (n, e)>
#tw = affine_map<(n, o, s, t) -> (n, s, t)>
#ty = affine_map<(n, o, s, t) -> (n, s, t, o)>
#to = affine_map<(n, o, s, t) -> (n, o)>
func.func @fills_kept(%a: memref<?x16xf32>, %b: memref<16x64xf32>, %c: memref<?x64xf32>,
                      %d: memref<?x64xf32>, %x: memref<?x32xf32>, %w: memref<20x32xf32>,
                      %y: memref<?x20xf32>, %sw: memref<?x2x2xf32>, %sy: memref<?x2x2x32xf32>,
                      %so: memref<?x32xf32>, %a1: memref<?x1xf32>, %b1: memref<1x64xf32>,
                      %o1: memref<?x64xf32>) {
  %negzero = arith.constant -0.0 : f32
  %zero = arith.constant 0.0 : f32
  %one = arith.constant 1.0 : f32
  %c0 = arith.constant 0 : index
  linalg.fill ins(%negzero : f32) outs(%c : memref<?x64xf32>)
  linalg.matmul ins(%a, %b : memref<?x16xf32>, memref<16x64xf32>) outs(%c : memref<?x64xf32>)
  linalg.fill ins(%zero : f32) outs(%d : memref<?x64xf32>)
  memref.store %one, %d[%c0, %c0] : memref<?x64xf32>
  linalg.matmul ins(%a, %b : memref<?x16xf32>, memref<16x64xf32>) outs(%d : memref<?x64xf32>)
  linalg.fill ins(%zero : f32) outs(%y : memref<?x20xf32>)
  linalg.generic {indexing_maps = [#kx, #kw, #ky], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<?x32xf32>, memref<20x32xf32>) outs(%y : memref<?x20xf32>) {
  ^bb0(%p: f32, %q: f32, %r: f32):
    %m = arith.mulf %p, %q : f32
    %s = arith.addf %r, %m : f32
    linalg.yield %s : f32
  }
  linalg.fill ins(%zero : f32) outs(%so : memref<?x32xf32>)
  linalg.generic {indexing_maps = [#tw, #ty, #to], iterator_types = ["parallel", "parallel", "reduction", "reduction"]}
      ins(%sw, %sy : memref<?x2x2xf32>, memref<?x2x2x32xf32>) outs(%so : memref<?x32xf32>) {
  ^bb0(%p: f32, %q: f32, %r: f32):
    %m = arith.mulf %p, %q : f32
    %s = arith.addf %r, %m : f32
    linalg.yield %s : f32
  }
  linalg.fill ins(%zero : f32) outs(%o1 : memref<?x64xf32>)
  linalg.matmul ins(%a1, %b1 : memref<?x1xf32>, memref<1x64xf32>) outs(%o1 : memref<?x64xf32>)
  return
}

// -----

// A right-hand side larger than an L1 cache (412 x 328 floats: 527 KB):
// the 8-row tiles run in panels of 32 columns, all the row tiles of a panel
// while its 52 KB are in cache, instead of each row tile sweeping all of
// it. Nine panels, then a last one of 32 + 8 columns (an 8-column rest on
// its own would be narrower than a vector and leave the register tiles).
// With parallel-rows the panel loop is the scf.parallel and the row tiles
// inside it sequential. The rows left over (fewer than 8) are not in
// panels. A small right-hand side (@no_panels: 16 x 328, 21 KB) keeps its
// row tiles outermost.

// CHECK-LABEL: func.func @panels
// CHECK:       scf.for %[[P:.*]] = %c0 to %c9 step %c1 {
// CHECK-NEXT:    scf.for %[[M:.*]] = %c0 to %{{.*}} step %c8 {
// CHECK:           scf.for {{.*}} -> (vector<8x32xf32>)
// CHECK:       scf.for %{{.*}} = %c0 to %{{.*}} step %c8 {
// CHECK:         scf.for {{.*}} -> (vector<8x32xf32>)
// CHECK:         scf.for {{.*}} -> (vector<8x8xf32>)
// CHECK:       scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c1 {
// CHECK-NOT:   vector<8x{{[0-9]}}
// CHECK:       return
// PAR-LABEL: func.func @panels
// PAR:       scf.parallel (%{{.*}}) = (%c0) to (%c9) step (%c1) {
// PAR-NEXT:    scf.for %{{.*}} = %c0 to %{{.*}} step %c8 {
// PAR:       scf.parallel (%{{.*}}) = (%c0) to (%{{.*}}) step (%c8) {
// PAR:         -> (vector<8x8xf32>)
func.func @panels(%a: memref<?x412xf32>, %b: memref<412x328xf32>, %c: memref<?x328xf32>) {
  linalg.matmul ins(%a, %b : memref<?x412xf32>, memref<412x328xf32>)
                outs(%c : memref<?x328xf32>)
  return
}

// CHECK-LABEL: func.func @no_panels
// CHECK:       scf.for %{{.*}} = %c0 to %{{.*}} step %c8 {
// CHECK-NEXT:    scf.for %{{.*}} = %c0 to %c320 step %c32 {
// PAR-LABEL: func.func @no_panels
// PAR:       scf.parallel (%{{.*}}) = (%c0) to (%{{.*}}) step (%c8) {
func.func @no_panels(%a: memref<?x16xf32>, %b: memref<16x328xf32>, %c: memref<?x328xf32>) {
  linalg.matmul ins(%a, %b : memref<?x16xf32>, memref<16x328xf32>)
                outs(%c : memref<?x328xf32>)
  return
}

// -----

// A dense right-hand side stored in column panels (moe-pack-expert-weights:
// [N / P, K, P], the panel index an n dim besides the vector dim) of at
// least 1 MB (@stored_panels: the MoEUT-44M LM head, 125 x 412 x 16 here,
// 3.3 MB): the panel loop goes outside the rows, so each panel is read by
// all the row tiles while it is in L2 (before, every 8-row tile swept all
// 125 panels). With parallel-rows the panel loop is the scf.parallel, and
// the row tiles and the remainder switch are inside it. A zero fill
// before it still goes (@stored_panels_filled: the tiles start from
// zero). A smaller one (@small_stored_panels: 4 panels, 105 KB) keeps its
// rows outermost, and so do fewer than 8 panels however large
// (@few_stored_panels: 4 of 1 MB in all; the panel loop would be the
// parallel loop).
// CHECK-LABEL: func.func @stored_panels
// CHECK:       scf.for %{{.*}} = %c0 to %c125 step %c1 {
// CHECK:         scf.for %{{.*}} = %c0 to %{{.*}} step %c8 {
// CHECK:           scf.for {{.*}} -> (vector<8x1x16xf32>)
// CHECK:         scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c1 {
// CHECK:           scf.for {{.*}} -> (vector<16xf32>)
// CHECK:       return
// CHECK-LABEL: func.func @stored_panels_filled
// CHECK-NOT:   linalg.fill
// CHECK:       scf.for %{{.*}} = %c0 to %c125 step %c1 {
// CHECK:         scf.for %{{.*}} = %c0 to %{{.*}} step %c8 {
// CHECK:           scf.for {{.*}} iter_args(%{{.*}} = %cst{{.*}}) -> (vector<8x1x16xf32>)
// CHECK-NOT:   linalg.fill
// CHECK:       return
// CHECK-LABEL: func.func @few_stored_panels
// CHECK:       scf.for %{{.*}} = %c0 to %{{.*}} step %c8 {
// CHECK-NEXT:    scf.for %{{.*}} = %c0 to %c4 step %c1 {
// CHECK-LABEL: func.func @small_stored_panels
// CHECK:       scf.for %{{.*}} = %c0 to %{{.*}} step %c8 {
// CHECK-NEXT:    scf.for %{{.*}} = %c0 to %c4 step %c1 {
// PARREM-LABEL: func.func @stored_panels
// PARREM:       scf.parallel (%{{.*}}) = (%c0) to (%c125) step (%c1) {
// PARREM:         scf.for %{{.*}} = %c0 to %{{.*}} step %c6 {
// PARREM:           -> (vector<6x1x16xf32>)
// PARREM:         scf.index_switch
// PARREM:           -> (vector<5x1x16xf32>)
// PARREM-NOT:   scf.parallel
// PARREM:       return
// PARREM-LABEL: func.func @small_stored_panels
// PARREM:       scf.parallel (%{{.*}}) = (%c0) to (%{{.*}}) step (%c6) {
// PARREM-NEXT:    scf.for %{{.*}} = %c0 to %c4 step %c1 {
#sp_x = affine_map<(d0, d1, d2, d3) -> (d0, d3)>
#sp_w = affine_map<(d0, d1, d2, d3) -> (d1, d3, d2)>
#sp_o = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
func.func @stored_panels(%x: memref<?x412xf32>, %w: memref<125x412x16xf32>, %o: memref<?x125x16xf32>) {
  linalg.generic {indexing_maps = [#sp_x, #sp_w, #sp_o], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<?x412xf32>, memref<125x412x16xf32>) outs(%o : memref<?x125x16xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  }
  return
}
func.func @stored_panels_filled(%x: memref<?x412xf32>, %w: memref<125x412x16xf32>, %o: memref<?x125x16xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%o : memref<?x125x16xf32>)
  linalg.generic {indexing_maps = [#sp_x, #sp_w, #sp_o], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<?x412xf32>, memref<125x412x16xf32>) outs(%o : memref<?x125x16xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  }
  return
}
func.func @few_stored_panels(%x: memref<?x4096xf32>, %w: memref<4x4096x16xf32>, %o: memref<?x4x16xf32>) {
  linalg.generic {indexing_maps = [#sp_x, #sp_w, #sp_o], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<?x4096xf32>, memref<4x4096x16xf32>) outs(%o : memref<?x4x16xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  }
  return
}
func.func @small_stored_panels(%x: memref<?x412xf32>, %w: memref<4x412x16xf32>, %o: memref<?x4x16xf32>) {
  linalg.generic {indexing_maps = [#sp_x, #sp_w, #sp_o], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<?x412xf32>, memref<4x412x16xf32>) outs(%o : memref<?x4x16xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  }
  return
}

// -----

// Operands that are views through a memref.expand_shape are read through
// an equivalent memref.reinterpret_cast (folding the tiles' transfers
// through the expand_shape did not converge, and the pass failed).
// AVX2-LABEL: func @expanded_input
// AVX2:         memref.reinterpret_cast %{{.*}} to offset: [0], sizes: [16, 8], strides: [8, 1] : memref<128xf32> to memref<16x8xf32>
// AVX2-NOT:     linalg.matmul
// AVX2:         vector.fma
func.func @expanded_input(%flat: memref<128xf32>, %b: memref<8x16xf32>, %c: memref<16x16xf32>) {
  %a = memref.expand_shape %flat [[0, 1]] output_shape [16, 8] : memref<128xf32> into memref<16x8xf32>
  linalg.matmul ins(%a, %b : memref<16x8xf32>, memref<8x16xf32>) outs(%c : memref<16x16xf32>)
  return
}

// -----

// AVX2-LABEL: func @expanded_output
// AVX2:         %[[C:.*]] = memref.reinterpret_cast %{{.*}} to offset: [0], sizes: [16, 16], strides: [16, 1]
// AVX2-NOT:     linalg.matmul
// AVX2:         vector.fma
// AVX2:         vector.transfer_write %{{.*}}, %[[C]]
func.func @expanded_output(%a: memref<16x8xf32>, %b: memref<8x16xf32>, %flat: memref<256xf32>) {
  %c = memref.expand_shape %flat [[0, 1]] output_shape [16, 16] : memref<256xf32> into memref<16x16xf32>
  linalg.matmul ins(%a, %b : memref<16x8xf32>, memref<8x16xf32>) outs(%c : memref<16x16xf32>)
  return
}

// -----

// Mixture of Tokens' mix (convert-moe-to-linalg): x [B, T, D] read as
// [B/g, g, T, D] with dynamic B and T. The group's strides: the source's
// for g, times g (4) for B/g.
// AVX2: #[[$TIMES4:.*]] = affine_map<()[s0] -> (s0 * 4)>
// AVX2-LABEL: func @mix_expanded
// AVX2:         %{{.*}}, %{{.*}}, %{{.*}}:3, %[[S:.*]]:3 = memref.extract_strided_metadata %[[X:[^ ]*]]
// AVX2:         %[[OUTER:.*]] = affine.apply #[[$TIMES4]]()[%[[S]]#0]
// AVX2:         %[[X4:.*]] = memref.reinterpret_cast %[[X]] to offset: [0], sizes: [%{{.*}}, 4, %{{.*}}, 32], strides: [%[[OUTER]], %[[S]]#0, 32, 1] : memref<?x?x32xf32> to memref<?x4x?x32xf32>
// AVX2-NOT:     linalg.generic
// AVX2:         vector.transfer_read %[[X4]]
// AVX2:         vector.fma
#mix_m = affine_map<(d0, d1, d2, d3, d4) -> (d1, d3, d0, d2)>
#mix_x = affine_map<(d0, d1, d2, d3, d4) -> (d1, d3, d0, d4)>
#mix_o = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d4)>
func.func @mix_expanded(%m: memref<?x4x?x8xf32>, %x: memref<?x?x32xf32>, %out: memref<?x?x8x32xf32>, %c: index, %t: index) {
  %x4 = memref.expand_shape %x [[0, 1], [2], [3]] output_shape [%c, 4, %t, 32] : memref<?x?x32xf32> into memref<?x4x?x32xf32>
  linalg.generic {indexing_maps = [#mix_m, #mix_x, #mix_o], iterator_types = ["parallel", "parallel", "parallel", "reduction", "parallel"]} ins(%m, %x4 : memref<?x4x?x8xf32>, memref<?x4x?x32xf32>) outs(%out : memref<?x?x8x32xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %o, %p : f32
    linalg.yield %s : f32
  }
  return
}

// -----

// A source with an offset and a row stride of its own (a subview): the
// cast starts at the same element, and the split dim's strides are the
// source's (24) and that times 8.
// AVX2-LABEL: func @expanded_subview
// AVX2:         memref.reinterpret_cast %{{.*}} to offset: [8], sizes: [16, 8, 8], strides: [192, 24, 1]
// AVX2:         vector.fma
func.func @expanded_subview(%big: memref<128x24xf32>, %b: memref<16x8x16xf32>, %c: memref<16x8x16xf32>) {
  %s = memref.subview %big[0, 8] [128, 8] [1, 1] : memref<128x24xf32> to memref<128x8xf32, strided<[24, 1], offset: 8>>
  %a = memref.expand_shape %s [[0, 1], [2]] output_shape [16, 8, 8] : memref<128x8xf32, strided<[24, 1], offset: 8>> into memref<16x8x8xf32, strided<[192, 24, 1], offset: 8>>
  linalg.batch_matmul ins(%a, %b : memref<16x8x8xf32, strided<[192, 24, 1], offset: 8>>, memref<16x8x16xf32>) outs(%c : memref<16x8x16xf32>)
  return
}

// -----

// A rank-0 source, expanded to unit dims: no groups, unit strides.
// AVX2-LABEL: func @expanded_scalar
// AVX2:         memref.reinterpret_cast %{{.*}} to offset: [0], sizes: [1, 1], strides: [1, 1] : memref<f32> to memref<1x1xf32>
func.func @expanded_scalar(%s: memref<f32>, %b: memref<1x16xf32>, %c: memref<1x16xf32>) {
  %a = memref.expand_shape %s [] output_shape [1, 1] : memref<f32> into memref<1x1xf32>
  linalg.matmul ins(%a, %b : memref<1x1xf32>, memref<1x16xf32>) outs(%c : memref<1x16xf32>)
  return
}

// -----

// An input that is a view of the output's buffer keeps the loop path, and
// its expand_shape stays (planFor refuses it with or without a cast).
// AVX2-LABEL: func @expanded_alias
// AVX2-NOT:     memref.reinterpret_cast
// AVX2:         linalg.matmul
// AVX2-NOT:     vector.fma
func.func @expanded_alias(%flat: memref<256xf32>, %b: memref<16x16xf32>) {
  %a = memref.expand_shape %flat [[0, 1]] output_shape [16, 16] : memref<256xf32> into memref<16x16xf32>
  %c = memref.expand_shape %flat [[0, 1]] output_shape [16, 16] : memref<256xf32> into memref<16x16xf32>
  linalg.matmul ins(%a, %b : memref<16x16xf32>, memref<16x16xf32>) outs(%c : memref<16x16xf32>)
  return
}

// -----

// AVX2-LABEL: func @collapsed_output
// AVX2-NOT:     linalg.matmul
// AVX2:         vector.fma
func.func @collapsed_output(%a: memref<16x8xf32>, %b: memref<8x16xf32>, %c3: memref<4x4x16xf32>) {
  %c = memref.collapse_shape %c3 [[0, 1], [2]] : memref<4x4x16xf32> into memref<16x16xf32>
  linalg.matmul ins(%a, %b : memref<16x8xf32>, memref<8x16xf32>) outs(%c : memref<16x16xf32>)
  return
}

// -----

// remainder-tiles: the rows after the full 6-row tiles (2 to 5 of them) run
// as one tile of that many rows (an scf.index_switch on their count), so
// the 16-column block is read once instead of once per row; one row (and
// none) keeps the one-row loop.
// REM-LABEL: func.func @remainder_rows
// REM:         %[[FULL:.*]] = affine.apply
// REM:         scf.for %{{.*}} = %c0 to %[[FULL]] step %c6
// REM:           scf.for {{.*}} -> (vector<6x16xf32>)
// REM:         %[[LEFT:.*]] = arith.subi %{{.*}}, %[[FULL]] : index
// REM:         scf.index_switch %[[LEFT]]
// REM-NEXT:    case 2 {
// REM:           scf.for {{.*}} -> (vector<2x16xf32>)
// REM:           vector.transfer_write {{.*}} : vector<2x16xf32>, memref<?x16xf32>
// REM:         case 3 {
// REM:           scf.for {{.*}} -> (vector<3x16xf32>)
// REM:         case 4 {
// REM:           scf.for {{.*}} -> (vector<4x16xf32>)
// REM:         case 5 {
// REM:           scf.for {{.*}} -> (vector<5x16xf32>)
// REM:         default {
// REM:           scf.for %{{.*}} = %[[FULL]] to %{{.*}} step %c1 {
// REM:             scf.for {{.*}} -> (vector<16xf32>)
// REM-NOT:     case
// Without the option: the one-row loop after the full tiles.
// AVX2-LABEL: func.func @remainder_rows
// AVX2-NOT:     scf.index_switch
// AVX2:         scf.for {{.*}} -> (vector<16xf32>)
func.func @remainder_rows(%a: memref<?x412xf32>, %b: memref<412x16xf32>, %c: memref<?x16xf32>) {
  linalg.matmul ins(%a, %b : memref<?x412xf32>, memref<412x16xf32>) outs(%c : memref<?x16xf32>)
  return
}

// -----

// A right-hand side read in column panels (412 x 328: 527 KB): its row
// tiles read 64 of every 1312 bytes, and the last rows stay one-row tiles.
// REM-LABEL: func.func @remainder_panels
// REM-NOT:     scf.index_switch
// REM:         return
func.func @remainder_panels(%a: memref<?x412xf32>, %b: memref<412x328xf32>, %c: memref<?x328xf32>) {
  linalg.matmul ins(%a, %b : memref<?x412xf32>, memref<412x328xf32>) outs(%c : memref<?x328xf32>)
  return
}

// -----

// accumulator-chains: a 1 x 16 tile (two registers) rotates its k steps over
// four accumulators (the iter_args shift by one per step, the new sum
// last; the added ones start at -0.0, the identity of addition), summed
// pairwise after the loop.
// CHAIN-LABEL: func.func @chains
// CHAIN:         %[[INIT:.*]] = vector.transfer_read
// CHAIN:         %[[ZERO:.*]] = arith.constant dense<-0.000000e+00> : vector<16xf32>
// CHAIN:         %[[R:.*]]:4 = scf.for {{.*}} iter_args(%[[A0:.*]] = %[[INIT]], %[[A1:.*]] = %[[ZERO]], %[[A2:.*]] = %[[ZERO]], %[[A3:.*]] = %[[ZERO]]) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
// CHAIN:           %[[F:.*]] = vector.fma {{.*}}, %[[A0]] : vector<16xf32>
// CHAIN:           scf.yield %[[A1]], %[[A2]], %[[A3]], %[[F]]
// CHAIN:         %[[S01:.*]] = arith.addf %[[R]]#0, %[[R]]#1 : vector<16xf32>
// CHAIN:         %[[S23:.*]] = arith.addf %[[R]]#2, %[[R]]#3 : vector<16xf32>
// CHAIN:         %[[S:.*]] = arith.addf %[[S01]], %[[S23]] : vector<16xf32>
// CHAIN:         vector.transfer_write %[[S]]
// Without the option: one accumulator.
// AVX2-LABEL: func.func @chains
// AVX2:         scf.for {{.*}} -> (vector<16xf32>) {
// AVX2-NOT:     arith.addf
func.func @chains(%a: memref<1x412xf32>, %b: memref<412x16xf32>, %c: memref<1x16xf32>) {
  linalg.matmul ins(%a, %b : memref<1x412xf32>, memref<412x16xf32>) outs(%c : memref<1x16xf32>)
  return
}

// -----

// A 1 x 64 tile has eight registers of accumulators already: one set.
// CHAIN-LABEL: func.func @wide_one_row
// CHAIN:         scf.for {{.*}} -> (vector<64xf32>) {
// CHAIN-NOT:     arith.addf
// CHAIN:         return
func.func @wide_one_row(%a: memref<1x412xf32>, %b: memref<412x64xf32>, %c: memref<1x64xf32>) {
  linalg.matmul ins(%a, %b : memref<1x412xf32>, memref<412x64xf32>) outs(%c : memref<1x64xf32>)
  return
}

// -----

// The chains with a zero fill and an epilogue (fuse-epilogues): every set
// starts from zero (the fill is not read back: +0.0 for the first, -0.0
// for the others), the ReLU runs on the sum, and neither the fill nor the
// generic stays.
// CHAINEPI-LABEL: func.func @chains_epilogue
// CHAINEPI-NOT:   linalg.fill
// CHAINEPI:       %[[R:.*]]:4 = scf.for {{.*}} -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
// CHAINEPI:       %[[S01:.*]] = arith.addf %[[R]]#0, %[[R]]#1 : vector<16xf32>
// CHAINEPI:       %[[S23:.*]] = arith.addf %[[R]]#2, %[[R]]#3 : vector<16xf32>
// CHAINEPI:       %[[S:.*]] = arith.addf %[[S01]], %[[S23]] : vector<16xf32>
// CHAINEPI:       %[[A:.*]] = arith.maximumf %[[S]], %{{.*}} : vector<16xf32>
// CHAINEPI:       vector.transfer_write %[[A]]
// CHAINEPI-NOT:   linalg.generic
// CHAINEPI:       return
func.func @chains_epilogue(%a: memref<1x412xf32>, %b: memref<412x16xf32>, %c: memref<1x16xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%c : memref<1x16xf32>)
  linalg.matmul ins(%a, %b : memref<1x412xf32>, memref<412x16xf32>) outs(%c : memref<1x16xf32>)
  linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} outs(%c : memref<1x16xf32>) {
  ^bb0(%v: f32):
    %r = arith.maximumf %v, %zero : f32
    linalg.yield %r : f32
  }
  return
}

// -----

// A k loop of fewer steps than chains keeps one set.
// CHAIN-LABEL: func.func @chains_short
// CHAIN-NOT:     arith.addf
// CHAIN:         return
func.func @chains_short(%a: memref<1x3xf32>, %b: memref<3x16xf32>, %c: memref<1x16xf32>) {
  linalg.matmul ins(%a, %b : memref<1x3xf32>, memref<3x16xf32>) outs(%c : memref<1x16xf32>)
  return
}

// -----

// One row against weights stored in column panels [N / P, K, P]
// (moe-pack-expert-weights, build::contractOverPanels): a panel's 16
// columns are too few to split, so with parallel-rows the panels are the
// parallel loop, one per iteration (160 x 412 multiply-adds are enough to
// pay for a fork-join). Nine panels (144 x 412) are not: a sequential
// loop over them.
// PAR-LABEL: func.func @one_row_panels
// PAR:         scf.parallel (%{{.*}}) = (%c0) to (%c10) step (%c1)
// PAR:           scf.for {{.*}} -> (vector<16xf32>)
// PAR-LABEL: func.func @few_panels
// PAR-NOT:     scf.parallel
// PAR:         scf.for %{{.*}} = %c0 to %c9 step %c1
// PAR-NOT:     scf.parallel
// PAR-LABEL: func.func @rows_panels
// PAR:         scf.parallel (%{{.*}}) = (%c0) to (%{{.*}}) step (%c8)
// PAR:         scf.if
// PAR:           scf.parallel (%{{.*}}) = (%c0) to (%c10) step (%c1)
// PAR:             scf.for
// PAR:               scf.for {{.*}} -> (vector<16xf32>)
// With remainder tiles, the rows after the full tiles are one tile of
// their count, and a single row (the default case) is split by panels:
// a sequential build runs the same tiles, so it has the same bits.
// PARREM-LABEL: func.func @rows_panels
// PARREM:         scf.parallel (%{{.*}}) = (%c0) to (%{{.*}}) step (%c6)
// PARREM:         scf.index_switch
// PARREM:         case 5 {
// PARREM:           scf.for {{.*}} -> (vector<5x1x16xf32>)
// PARREM:         default {
// PARREM:           scf.if
// PARREM:             scf.parallel (%{{.*}}) = (%c0) to (%c10) step (%c1)
// PARREM:               scf.for {{.*}} -> (vector<16xf32>)
#lhs = affine_map<(m, p, j, k) -> (m, k)>
#rhs = affine_map<(m, p, j, k) -> (p, k, j)>
#out = affine_map<(m, p, j, k) -> (m, p, j)>
func.func @one_row_panels(%a: memref<1x412xf32>, %b: memref<10x412x16xf32>, %c: memref<1x10x16xf32>) {
  linalg.generic {indexing_maps = [#lhs, #rhs, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%a, %b : memref<1x412xf32>, memref<10x412x16xf32>) outs(%c : memref<1x10x16xf32>) {
  ^bb0(%x: f32, %y: f32, %z: f32):
    %0 = arith.mulf %x, %y : f32
    %1 = arith.addf %z, %0 : f32
    linalg.yield %1 : f32
  }
  return
}
func.func @few_panels(%a: memref<1x412xf32>, %b: memref<9x412x16xf32>, %c: memref<1x9x16xf32>) {
  linalg.generic {indexing_maps = [#lhs, #rhs, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%a, %b : memref<1x412xf32>, memref<9x412x16xf32>) outs(%c : memref<1x9x16xf32>) {
  ^bb0(%x: f32, %y: f32, %z: f32):
    %0 = arith.mulf %x, %y : f32
    %1 = arith.addf %z, %0 : f32
    linalg.yield %1 : f32
  }
  return
}
func.func @rows_panels(%a: memref<?x412xf32>, %b: memref<10x412x16xf32>, %c: memref<?x10x16xf32>) {
  linalg.generic {indexing_maps = [#lhs, #rhs, #out], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%a, %b : memref<?x412xf32>, memref<10x412x16xf32>) outs(%c : memref<?x10x16xf32>) {
  ^bb0(%x: f32, %y: f32, %z: f32):
    %0 = arith.mulf %x, %y : f32
    %1 = arith.addf %z, %0 : f32
    linalg.yield %1 : f32
  }
  return
}

// -----

// Column chunks are not halved below eight vectors: a 1 x 32 chunk would
// rotate its k steps over two accumulator sets and differ in the last bits
// from the sequential build's 1 x 64 tiles. 160 columns (412 x 160
// multiply-adds, enough to split) are two chunks of 64 and the 32-column
// rest, which the sequential build rotates too.
// PARCHAIN-LABEL: func.func @chunks_keep_the_row_tile
// PARCHAIN:         scf.parallel (%{{.*}}) = (%c0) to (%c3) step (%c1)
// PARCHAIN:           scf.if
// PARCHAIN:             scf.for {{.*}} -> (vector<64xf32>) {
// PARCHAIN:           } else {
// PARCHAIN:             scf.for {{.*}} -> (vector<32xf32>, vector<32xf32>) {
func.func @chunks_keep_the_row_tile(%a: memref<1x412xf32>, %b: memref<412x160xf32>, %c: memref<1x160xf32>) {
  linalg.matmul ins(%a, %b : memref<1x412xf32>, memref<412x160xf32>) outs(%c : memref<1x160xf32>)
  return
}

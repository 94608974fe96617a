// RUN: moe-opt %s --moe-cpu-tile-contractions="vector-bits=256 rows=6 fuse-epilogues=true" --split-input-file | FileCheck %s
// RUN: moe-opt %s --moe-cpu-tile-contractions="vector-bits=256 rows=6" --split-input-file | FileCheck %s --check-prefix=OFF
// RUN: moe-opt %s --moe-cpu-tile-contractions="vector-bits=256 rows=6 fuse-epilogues=true parallel-rows=true" --split-input-file | FileCheck %s --check-prefix=PAR

// moe-cpu-tile-contractions{fuse-epilogues}: an elementwise generic right
// after a contraction, on its output, runs on each register tile's
// accumulators before the tile is stored, and goes.

#id = affine_map<(d0, d1) -> (d0, d1)>
#col = affine_map<(d0, d1) -> (d1)>

// A bias (read per column, broadcast over the tile's rows) and a ReLU (a
// scalar from outside the body, broadcast): on the 6 x 16 tiles and on
// the one-row tiles of the rows after the last full tile.
// CHECK-LABEL: func @bias_relu
// CHECK-SAME:    %[[BIAS:[^:]*]]: memref<32xf32>, %[[C:[^:]*]]: memref<?x32xf32>
// CHECK-NOT:     linalg.generic
// CHECK:         scf.for %[[I:.*]] = %c0 to %{{.*}} step %c6
// CHECK:           scf.for %[[J:.*]] = %c0 to %c32 step %c16
// CHECK:             %[[ACC:.*]] = scf.for {{.*}} -> (vector<6x16xf32>)
// CHECK:             %[[B:.*]] = vector.transfer_read %[[BIAS]][%[[J]]]{{.*}} : memref<32xf32>, vector<16xf32>
// CHECK:             %[[BB:.*]] = vector.broadcast %[[B]] : vector<16xf32> to vector<6x16xf32>
// CHECK:             %[[SUM:.*]] = arith.addf %[[ACC]], %[[BB]] : vector<6x16xf32>
// CHECK:             %[[Z:.*]] = vector.broadcast %{{.*}} : f32 to vector<6x16xf32>
// CHECK:             %[[RELU:.*]] = arith.maximumf %[[SUM]], %[[Z]] : vector<6x16xf32>
// CHECK:             vector.transfer_write %[[RELU]], %[[C]][%[[I]], %[[J]]]
// CHECK:         scf.for %[[R:.*]] = %{{.*}} to %{{.*}} step %c1
// CHECK:           scf.for %[[J1:.*]] = %c0 to %c32 step %c16
// CHECK:             %[[ACC1:.*]] = scf.for {{.*}} -> (vector<16xf32>)
// CHECK:             %[[B1:.*]] = vector.transfer_read %[[BIAS]][%[[J1]]]
// CHECK:             %[[SUM1:.*]] = arith.addf %[[ACC1]], %[[B1]] : vector<16xf32>
// CHECK:             %[[RELU1:.*]] = arith.maximumf %[[SUM1]], {{.*}} : vector<16xf32>
// CHECK:             vector.transfer_write %[[RELU1]], %[[C]][%[[R]], %[[J1]]]
// CHECK-NOT:     linalg.generic
// With parallel-rows, the same in the scf.parallel over row tiles.
// PAR-LABEL: func @bias_relu
// PAR-NOT:     linalg.generic
// PAR:         scf.parallel
// PAR:           arith.maximumf {{.*}} : vector<6x16xf32>
// PAR-NOT:     linalg.generic
// PAR:         return
// Off by default: the generic stays after the tiles.
// OFF-LABEL: func @bias_relu
// OFF:         scf.for
// OFF:         linalg.generic
func.func @bias_relu(%a: memref<?x64xf32>, %b: memref<64x32xf32>, %bias: memref<32xf32>, %c: memref<?x32xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.matmul ins(%a, %b : memref<?x64xf32>, memref<64x32xf32>) outs(%c : memref<?x32xf32>)
  linalg.generic {indexing_maps = [#id, #col, #id], iterator_types = ["parallel", "parallel"]}
      ins(%c, %bias : memref<?x32xf32>, memref<32xf32>) outs(%c : memref<?x32xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %s = arith.addf %x, %y : f32
    %r = arith.maximumf %s, %zero : f32
    linalg.yield %r : f32
  }
  return
}

// -----

#id = affine_map<(d0, d1) -> (d0, d1)>
#scalar = affine_map<(d0, d1) -> ()>

// The output a view of an expert's rows of a larger buffer (the subview
// is folded into the tiles' stores): the other operands are read at the
// element's place in the view (the store's row minus the view's offset).
// A residual read element by element, a scale from a rank-0 buffer, a
// constant of the body (the pass's cleanup hoists it out of the body; it is
// broadcast as any scalar from outside), and the output read through the
// generic's init argument.
// CHECK-LABEL: func @view_residual_scale
// CHECK-SAME:    %[[RES:[^:]*]]: memref<?x16xf32>, %[[S:[^:]*]]: memref<f32>, %[[C:[^:]*]]: memref<?x16xf32>, %[[START:[^:]*]]: index
// CHECK-NOT:     linalg.generic
// CHECK:         scf.for %[[I:.*]] = %c0 to %{{.*}} step %c6
// CHECK:           %[[ROW:.*]] = affine.apply {{.*}}[%[[START]], %[[I]]]
// CHECK:           %[[ACC:.*]] = scf.for {{.*}} -> (vector<6x16xf32>)
// CHECK:           %[[R:.*]] = vector.transfer_read %[[RES]][%[[I]], %c0]{{.*}} : memref<?x16xf32>, vector<6x16xf32>
// CHECK:           %[[SC:.*]] = memref.load %[[S]][] : memref<f32>
// CHECK:           %[[SV:.*]] = vector.broadcast %[[SC]] : f32 to vector<6x16xf32>
// CHECK:           %[[M:.*]] = arith.mulf %[[ACC]], %[[SV]] : vector<6x16xf32>
// CHECK:           %[[A:.*]] = arith.addf %[[M]], %[[R]] : vector<6x16xf32>
// CHECK:           %[[TWO:.*]] = vector.broadcast %{{.*}} : f32 to vector<6x16xf32>
// CHECK:           %[[D:.*]] = arith.mulf %[[A]], %[[TWO]] : vector<6x16xf32>
// CHECK:           vector.transfer_write %[[D]], %[[C]][%[[ROW]], %c0]
func.func @view_residual_scale(%a: memref<?x8xf32>, %b: memref<8x16xf32>, %res: memref<?x16xf32>, %s: memref<f32>, %c: memref<?x16xf32>, %off: index) {
  %c0 = arith.constant 0 : index
  %n = memref.dim %a, %c0 : memref<?x8xf32>
  %v = memref.subview %c[%off, 0] [%n, 16] [1, 1] : memref<?x16xf32> to memref<?x16xf32, strided<[16, 1], offset: ?>>
  linalg.matmul ins(%a, %b : memref<?x8xf32>, memref<8x16xf32>) outs(%v : memref<?x16xf32, strided<[16, 1], offset: ?>>)
  linalg.generic {indexing_maps = [#id, #scalar, #id], iterator_types = ["parallel", "parallel"]}
      ins(%res, %s : memref<?x16xf32>, memref<f32>) outs(%v : memref<?x16xf32, strided<[16, 1], offset: ?>>) {
  ^bb0(%r: f32, %k: f32, %o: f32):
    %two = arith.constant 2.0 : f32
    %m = arith.mulf %o, %k : f32
    %x = arith.addf %m, %r : f32
    %y = arith.mulf %x, %two : f32
    linalg.yield %y : f32
  }
  return
}

// -----

#id = affine_map<(d0, d1) -> (d0, d1)>
#col = affine_map<(d0, d1) -> (d1)>

// The views the generic reads may be made between the two ops: they move
// before the contraction.
// CHECK-LABEL: func @view_between
// CHECK:         memref.subview
// CHECK:         scf.for
// CHECK-NOT:     linalg.generic
func.func @view_between(%a: memref<?x8xf32>, %b: memref<8x16xf32>, %bias: memref<4x16xf32>, %c: memref<?x16xf32>, %e: index) {
  linalg.matmul ins(%a, %b : memref<?x8xf32>, memref<8x16xf32>) outs(%c : memref<?x16xf32>)
  %row = memref.subview %bias[%e, 0] [1, 16] [1, 1] : memref<4x16xf32> to memref<16xf32, strided<[1], offset: ?>>
  linalg.generic {indexing_maps = [#id, #col, #id], iterator_types = ["parallel", "parallel"]}
      ins(%c, %row : memref<?x16xf32>, memref<16xf32, strided<[1], offset: ?>>) outs(%c : memref<?x16xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %s = arith.addf %x, %y : f32
    linalg.yield %s : f32
  }
  return
}

// -----

#id = affine_map<(d0, d1) -> (d0, d1)>
#col = affine_map<(d0, d1) -> (d1)>

// Refused, the generic stays: a store between the two.
// CHECK-LABEL: func @store_between
// CHECK-NOT:     arith.addf {{.*}} : vector
// CHECK:         memref.store
// CHECK:         linalg.generic
func.func @store_between(%a: memref<?x8xf32>, %b: memref<8x16xf32>, %bias: memref<16xf32>, %c: memref<?x16xf32>) {
  %c0 = arith.constant 0 : index
  %f = arith.constant 1.0 : f32
  linalg.matmul ins(%a, %b : memref<?x8xf32>, memref<8x16xf32>) outs(%c : memref<?x16xf32>)
  memref.store %f, %bias[%c0] : memref<16xf32>
  linalg.generic {indexing_maps = [#id, #col, #id], iterator_types = ["parallel", "parallel"]}
      ins(%c, %bias : memref<?x16xf32>, memref<16xf32>) outs(%c : memref<?x16xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %s = arith.addf %x, %y : f32
    linalg.yield %s : f32
  }
  return
}

// -----

#id = affine_map<(d0, d1) -> (d0, d1)>
#t = affine_map<(d0, d1) -> (d1, d0)>

// Refused: an input read transposed.
// CHECK-LABEL: func @transposed_input
// CHECK-NOT:     arith.addf {{.*}} : vector
// CHECK:         linalg.generic
func.func @transposed_input(%a: memref<16x8xf32>, %b: memref<8x16xf32>, %r: memref<16x16xf32>, %c: memref<16x16xf32>) {
  linalg.matmul ins(%a, %b : memref<16x8xf32>, memref<8x16xf32>) outs(%c : memref<16x16xf32>)
  linalg.generic {indexing_maps = [#t, #id], iterator_types = ["parallel", "parallel"]}
      ins(%r : memref<16x16xf32>) outs(%c : memref<16x16xf32>) {
  ^bb0(%x: f32, %o: f32):
    %s = arith.addf %x, %o : f32
    linalg.yield %s : f32
  }
  return
}

// -----

#id = affine_map<(d0, d1) -> (d0, d1)>

// Refused: an input that is another view of the output's buffer (its
// elements may be ones the tiles have already changed).
// CHECK-LABEL: func @same_buffer_input
// CHECK-NOT:     arith.addf {{.*}} : vector
// CHECK:         linalg.generic
func.func @same_buffer_input(%a: memref<8x8xf32>, %b: memref<8x16xf32>, %c: memref<16x16xf32>) {
  %top = memref.subview %c[0, 0] [8, 16] [1, 1] : memref<16x16xf32> to memref<8x16xf32, strided<[16, 1]>>
  %bottom = memref.subview %c[8, 0] [8, 16] [1, 1] : memref<16x16xf32> to memref<8x16xf32, strided<[16, 1], offset: 128>>
  linalg.matmul ins(%a, %b : memref<8x8xf32>, memref<8x16xf32>) outs(%top : memref<8x16xf32, strided<[16, 1]>>)
  linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%bottom : memref<8x16xf32, strided<[16, 1], offset: 128>>) outs(%top : memref<8x16xf32, strided<[16, 1]>>) {
  ^bb0(%x: f32, %o: f32):
    %s = arith.addf %x, %o : f32
    linalg.yield %s : f32
  }
  return
}

// -----

#id = affine_map<(d0, d1) -> (d0, d1)>

// Refused: a body that reads its position (not elementwise on values).
// CHECK-LABEL: func @index_in_body
// CHECK-NOT:     arith.addf {{.*}} : vector
// CHECK:         linalg.generic
func.func @index_in_body(%a: memref<16x8xf32>, %b: memref<8x16xf32>, %c: memref<16x16xf32>) {
  linalg.matmul ins(%a, %b : memref<16x8xf32>, memref<8x16xf32>) outs(%c : memref<16x16xf32>)
  linalg.generic {indexing_maps = [#id], iterator_types = ["parallel", "parallel"]}
      outs(%c : memref<16x16xf32>) {
  ^bb0(%o: f32):
    %i = linalg.index 1 : index
    %n = arith.index_cast %i : index to i32
    %f = arith.sitofp %n : i32 to f32
    %s = arith.addf %f, %o : f32
    linalg.yield %s : f32
  }
  return
}

// -----

#id = affine_map<(d0, d1) -> (d0, d1)>

// Refused: the generic writes another buffer.
// CHECK-LABEL: func @other_output
// CHECK-NOT:     arith.addf {{.*}} : vector
// CHECK:         linalg.generic
func.func @other_output(%a: memref<16x8xf32>, %b: memref<8x16xf32>, %c: memref<16x16xf32>, %d: memref<16x16xf32>) {
  linalg.matmul ins(%a, %b : memref<16x8xf32>, memref<8x16xf32>) outs(%c : memref<16x16xf32>)
  linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%c : memref<16x16xf32>) outs(%d : memref<16x16xf32>) {
  ^bb0(%x: f32, %o: f32):
    %s = arith.addf %x, %x : f32
    linalg.yield %s : f32
  }
  return
}

// -----

#id = affine_map<(d0, d1) -> (d0, d1)>

// Refused: a k of 1 leaves no k loop, so the parts' stores are not known
// to be the final ones.
// CHECK-LABEL: func @k_of_one
// CHECK-NOT:     arith.addf {{.*}} : vector
// CHECK:         linalg.generic
func.func @k_of_one(%a: memref<16x1xf32>, %b: memref<1x16xf32>, %c: memref<16x16xf32>) {
  linalg.matmul ins(%a, %b : memref<16x1xf32>, memref<1x16xf32>) outs(%c : memref<16x16xf32>)
  linalg.generic {indexing_maps = [#id], iterator_types = ["parallel", "parallel"]}
      outs(%c : memref<16x16xf32>) {
  ^bb0(%o: f32):
    %s = arith.addf %o, %o : f32
    linalg.yield %s : f32
  }
  return
}

// -----

#a = affine_map<(m, n, k) -> (m, k)>
#b = affine_map<(m, n, k) -> (n, k)>
#c = affine_map<(m, n, k) -> (m, n)>
#id = affine_map<(d0, d1) -> (d0, d1)>

// Refused: one row against a right-hand side read along k (dot products,
// no register tiles).
// CHECK-LABEL: func @dot_products
// CHECK:         linalg.generic {{.*}}iterator_types = ["parallel", "parallel"]
func.func @dot_products(%a: memref<1x64xf32>, %b: memref<32x64xf32>, %c: memref<1x32xf32>) {
  linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%a, %b : memref<1x64xf32>, memref<32x64xf32>) outs(%c : memref<1x32xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %o, %p : f32
    linalg.yield %s : f32
  }
  linalg.generic {indexing_maps = [#id], iterator_types = ["parallel", "parallel"]}
      outs(%c : memref<1x32xf32>) {
  ^bb0(%o: f32):
    %s = arith.addf %o, %o : f32
    linalg.yield %s : f32
  }
  return
}

// -----

#id = affine_map<(d0, d1) -> (d0, d1)>
#col = affine_map<(d0, d1) -> (d1)>

// A column tail (28 = 16 + 8 + 4: a peeled loop of full 16-column tiles,
// then power-of-two slices that share one k loop): every slice's store
// takes the epilogue, with the bias read at its own columns. The 4-column
// slice runs in an 8-lane accumulator (merge-tail-slices) and is taken
// out of it before the epilogue.
// CHECK-LABEL: func @column_tail
// CHECK-SAME:    %[[BIAS:[^:]*]]: memref<28xf32>
// CHECK-NOT:     linalg.generic
// CHECK:         arith.addf {{.*}} : vector<6x16xf32>
// CHECK:         %[[T:.*]]:2 = scf.for {{.*}} -> (vector<6x8xf32>, vector<6x8xf32>)
// CHECK:         %[[ROW:.*]] = vector.extract %[[T]]#1[0]
// CHECK:         vector.extract_strided_slice %[[ROW]] {offsets = [0], sizes = [4], strides = [1]}
// CHECK-DAG:     vector.transfer_read %[[BIAS]][%c16]{{.*}} vector<8xf32>
// CHECK-DAG:     vector.transfer_read %[[BIAS]][%c24]{{.*}} vector<4xf32>
// CHECK-DAG:     arith.addf %[[T]]#0, {{.*}} : vector<6x8xf32>
// CHECK-DAG:     arith.addf {{.*}} : vector<6x4xf32>
// CHECK-NOT:     linalg.generic
func.func @column_tail(%a: memref<?x64xf32>, %b: memref<64x28xf32>, %bias: memref<28xf32>, %c: memref<?x28xf32>) {
  linalg.matmul ins(%a, %b : memref<?x64xf32>, memref<64x28xf32>) outs(%c : memref<?x28xf32>)
  linalg.generic {indexing_maps = [#id, #col, #id], iterator_types = ["parallel", "parallel"]}
      ins(%c, %bias : memref<?x28xf32>, memref<28xf32>) outs(%c : memref<?x28xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %s = arith.addf %x, %y : f32
    linalg.yield %s : f32
  }
  return
}

// -----

#id = affine_map<(d0, d1) -> (d0, d1)>

// A yield of a scalar from outside the body: each tile stores it,
// broadcast. (12 rows: two tiles of 6 and no loop of one-row tiles.)
// CHECK-LABEL: func @yield_scalar
// CHECK-SAME:    %[[F:[^:]*]]: f32
// CHECK-NOT:     linalg.generic
// CHECK:         %[[V:.*]] = vector.broadcast %[[F]] : f32 to vector<6x16xf32>
// CHECK:         vector.transfer_write %[[V]]
func.func @yield_scalar(%a: memref<12x8xf32>, %b: memref<8x16xf32>, %c: memref<12x16xf32>, %f: f32) {
  linalg.matmul ins(%a, %b : memref<12x8xf32>, memref<8x16xf32>) outs(%c : memref<12x16xf32>)
  linalg.generic {indexing_maps = [#id], iterator_types = ["parallel", "parallel"]}
      outs(%c : memref<12x16xf32>) {
  ^bb0(%o: f32):
    linalg.yield %f : f32
  }
  return
}

// -----

#id = affine_map<(d0, d1) -> (d0, d1)>

// A generic that yields its input unchanged: the pass's cleanup erases it
// before the epilogues are applied, and nothing else changes.
// CHECK-LABEL: func @identity_body
// CHECK-NOT:     linalg.generic
// CHECK-NOT:     arith.addf {{.*}} : vector
// CHECK:         return
func.func @identity_body(%a: memref<12x8xf32>, %b: memref<8x16xf32>, %c: memref<12x16xf32>) {
  linalg.matmul ins(%a, %b : memref<12x8xf32>, memref<8x16xf32>) outs(%c : memref<12x16xf32>)
  linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%c : memref<12x16xf32>) outs(%c : memref<12x16xf32>) {
  ^bb0(%x: f32, %o: f32):
    linalg.yield %x : f32
  }
  return
}

// -----

#id = affine_map<(d0, d1) -> (d0, d1)>
#col = affine_map<(d0, d1) -> (d1)>

// Refused: a dynamic column count leaves a masked tail tile.
// CHECK-LABEL: func @dynamic_columns
// CHECK-NOT:     arith.addf {{.*}} : vector
// CHECK:         linalg.generic
func.func @dynamic_columns(%a: memref<?x64xf32>, %b: memref<64x?xf32>, %bias: memref<?xf32>, %c: memref<?x?xf32>) {
  linalg.matmul ins(%a, %b : memref<?x64xf32>, memref<64x?xf32>) outs(%c : memref<?x?xf32>)
  linalg.generic {indexing_maps = [#id, #col, #id], iterator_types = ["parallel", "parallel"]}
      ins(%c, %bias : memref<?x?xf32>, memref<?xf32>) outs(%c : memref<?x?xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %s = arith.addf %x, %y : f32
    linalg.yield %s : f32
  }
  return
}

// -----

#id = affine_map<(d0, d1) -> (d0, d1)>

// Refused: the output is a view (not a subview) of a buffer the input is
// another view of.
// CHECK-LABEL: func @aliasing_views
// CHECK-NOT:     arith.addf {{.*}} : vector
// CHECK:         linalg.generic
func.func @aliasing_views(%a: memref<16x8xf32>, %b: memref<8x16xf32>, %flat: memref<256xf32>) {
  %c = memref.reinterpret_cast %flat to offset: [0], sizes: [16, 16], strides: [16, 1] : memref<256xf32> to memref<16x16xf32>
  %r = memref.reinterpret_cast %flat to offset: [16], sizes: [16, 16], strides: [15, 1] : memref<256xf32> to memref<16x16xf32, strided<[15, 1], offset: 16>>
  linalg.matmul ins(%a, %b : memref<16x8xf32>, memref<8x16xf32>) outs(%c : memref<16x16xf32>)
  linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%r : memref<16x16xf32, strided<[15, 1], offset: 16>>) outs(%c : memref<16x16xf32>) {
  ^bb0(%x: f32, %o: f32):
    %s = arith.addf %x, %o : f32
    linalg.yield %s : f32
  }
  return
}

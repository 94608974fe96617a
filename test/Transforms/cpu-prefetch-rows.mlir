// RUN: moe-opt %s --moe-cpu-prefetch-rows --split-input-file | FileCheck %s
// RUN: moe-opt %s --moe-cpu-prefetch-rows="distance=1" --split-input-file | FileCheck %s --check-prefix=ONE
// RUN: not moe-opt %s --moe-cpu-prefetch-rows="distance=0" --split-input-file 2>&1 | FileCheck %s --check-prefix=ZERO
// RUN: not moe-opt %s --moe-cpu-prefetch-rows="distance=1025" --split-input-file 2>&1 | FileCheck %s --check-prefix=FAR

// ZERO: error: moe-cpu-prefetch-rows: distance must be 1 to 1024, got 0
// FAR: error: moe-cpu-prefetch-rows: distance must be 1 to 1024, got 1025

// The combine's slot loop: slot j = n * 12 + s, row inv[j] of %ps (412
// floats: 26 lines from the row's start, and its last element). The
// prefetch recomputes the row of slot s + 2, inside s + 2 < 12.

// CHECK-LABEL: func.func @combine
// CHECK-SAME: (%[[PS:.*]]: memref<?x412xf32>, %[[INV:.*]]: memref<?xi32>, %[[ACC:.*]]: memref<1x412xf32>, %[[FIRST:.*]]: index)
// CHECK: scf.for %[[S:.*]] = %[[LB:.*]] to %[[UB:.*]] step
// CHECK:   %[[ROW:.*]] = memref.subview %[[PS]]
// CHECK:   %[[AHEAD:.*]] = arith.addi %[[S]], %[[C2:.*]] : index
// CHECK:   %[[LEFT:.*]] = arith.subi %[[UB]], %[[S]]
// CHECK:   %[[IN:.*]] = arith.cmpi ugt, %[[LEFT]], %[[C2]]
// CHECK:   scf.if %[[IN]] {
// CHECK:     %[[J:.*]] = arith.addi %[[FIRST]], %[[AHEAD]]
// CHECK:     %[[V:.*]] = memref.load %[[INV]][%[[J]]]
// CHECK:     %[[R:.*]] = arith.index_cast %[[V]]
// CHECK:     %[[C0:.*]] = arith.constant 0 : index
// CHECK:     memref.prefetch %[[PS]][%[[R]], %[[C0]]], read, locality<3>, data
// CHECK:     %[[C16:.*]] = arith.constant 16 : index
// CHECK:     memref.prefetch %[[PS]][%[[R]], %[[C16]]]
// CHECK-COUNT-24: memref.prefetch
// CHECK:     %[[LAST:.*]] = arith.constant 411 : index
// CHECK:     memref.prefetch %[[PS]][%[[R]], %[[LAST]]]
// CHECK-NOT: memref.prefetch
// CHECK:   }
// CHECK:   linalg.generic
// ONE-LABEL: func.func @combine
// ONE: %[[C1:.*]] = arith.constant 1 : index
// ONE: arith.cmpi ugt, %{{.*}}, %[[C1]]
func.func @combine(%ps: memref<?x412xf32>, %inv: memref<?xi32>,
                   %acc: memref<1x412xf32>, %first: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c12 = arith.constant 12 : index
  scf.for %s = %c0 to %c12 step %c1 {
    %j = arith.addi %first, %s : index
    %v = memref.load %inv[%j] : memref<?xi32>
    %r = arith.index_cast %v : i32 to index
    %row = memref.subview %ps[%r, 0] [1, 412] [1, 1]
        : memref<?x412xf32> to memref<1x412xf32, strided<[412, 1], offset: ?>>
    linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>,
                                     affine_map<(d0, d1) -> (d0, d1)>],
                    iterator_types = ["parallel", "parallel"]}
        ins(%row : memref<1x412xf32, strided<[412, 1], offset: ?>>)
        outs(%acc : memref<1x412xf32>) {
    ^bb0(%in: f32, %out: f32):
      %sum = arith.addf %in, %out : f32
      linalg.yield %sum : f32
    }
  }
  return
}

// -----

// The gather into expert order: a parallel loop, the row index clamped
// and divided by a loop-invariant k (cloned: the current iteration used
// the same divisor). A 48-byte row: one line, and its last element.

// CHECK-LABEL: func.func @gather
// CHECK: scf.parallel (%[[I:.*]]) =
// CHECK:   memref.subview
// CHECK:   scf.if
// CHECK:     memref.load
// CHECK:     arith.select
// CHECK:     arith.divui
// CHECK:     memref.prefetch %{{.*}}[%{{.*}}, %{{.*}}]
// CHECK:     arith.constant 11 : index
// CHECK:     memref.prefetch
// CHECK-NOT: memref.prefetch
// CHECK:   }
// CHECK:   memref.copy
func.func @gather(%x: memref<?x12xf32>, %perm: memref<?xi32>,
                  %out: memref<?x12xf32>, %k: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %m = memref.dim %perm, %c0 : memref<?xi32>
  %n = memref.dim %x, %c0 : memref<?x12xf32>
  scf.parallel (%i) = (%c0) to (%m) step (%c1) {
    %v = memref.load %perm[%i] : memref<?xi32>
    %slot = arith.index_cast %v : i32 to index
    %ok = arith.cmpi slt, %slot, %m : index
    %safe = arith.select %ok, %slot, %c0 : index
    %t = arith.divui %safe, %k : index
    %src = memref.subview %x[%t, 0] [1, 12] [1, 1]
        : memref<?x12xf32> to memref<1x12xf32, strided<[12, 1], offset: ?>>
    %dst = memref.subview %out[%i, 0] [1, 12] [1, 1]
        : memref<?x12xf32> to memref<1x12xf32, strided<[12, 1], offset: ?>>
    memref.copy %src, %dst : memref<1x12xf32, strided<[12, 1], offset: ?>>
        to memref<1x12xf32, strided<[12, 1], offset: ?>>
    scf.reduce
  }
  return
}

// -----

// Left alone:
// - a row at the induction variable itself (no load: the hardware's
//   prefetcher follows it), and %dst, which is only written;
// - a load at a loaded index (ahead, it could read out of bounds);
// - a division by a value computed in the loop (it could trap ahead);
// - a view that is not one row (two non-unit sizes);
// - a row of dynamic width;
// - a row index loaded from a buffer the loop defines.

// CHECK-LABEL: func.func @refused
// CHECK-NOT: memref.prefetch
// CHECK: return
func.func @refused(%x: memref<?x12xf32>, %perm: memref<?xi32>,
                   %out: memref<?x12xf32>, %d: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %m = memref.dim %perm, %c0 : memref<?xi32>
  scf.for %i = %c0 to %m step %c1 {
    // direct
    %a = memref.subview %x[%i, 0] [1, 12] [1, 1]
        : memref<?x12xf32> to memref<1x12xf32, strided<[12, 1], offset: ?>>
    %dst = memref.subview %out[%i, 0] [1, 12] [1, 1]
        : memref<?x12xf32> to memref<1x12xf32, strided<[12, 1], offset: ?>>
    memref.copy %a, %dst : memref<1x12xf32, strided<[12, 1], offset: ?>>
        to memref<1x12xf32, strided<[12, 1], offset: ?>>
    // a load at a loaded index
    %v = memref.load %perm[%i] : memref<?xi32>
    %vi = arith.index_cast %v : i32 to index
    %w = memref.load %perm[%vi] : memref<?xi32>
    %wi = arith.index_cast %w : i32 to index
    %b = memref.subview %x[%wi, 0] [1, 12] [1, 1]
        : memref<?x12xf32> to memref<1x12xf32, strided<[12, 1], offset: ?>>
    memref.copy %b, %dst : memref<1x12xf32, strided<[12, 1], offset: ?>>
        to memref<1x12xf32, strided<[12, 1], offset: ?>>
    // a divisor computed in the loop
    %q = arith.addi %i, %d : index
    %t = arith.divui %vi, %q : index
    %c = memref.subview %x[%t, 0] [1, 12] [1, 1]
        : memref<?x12xf32> to memref<1x12xf32, strided<[12, 1], offset: ?>>
    memref.copy %c, %dst : memref<1x12xf32, strided<[12, 1], offset: ?>>
        to memref<1x12xf32, strided<[12, 1], offset: ?>>
    // two rows
    %e = memref.subview %x[%vi, 0] [2, 12] [1, 1]
        : memref<?x12xf32> to memref<2x12xf32, strided<[12, 1], offset: ?>>
    %f = memref.load %e[%c0, %c0] : memref<2x12xf32, strided<[12, 1], offset: ?>>
    // a dynamic width
    %g = memref.subview %x[%vi, 0] [1, %d] [1, 1]
        : memref<?x12xf32> to memref<1x?xf32, strided<[12, 1], offset: ?>>
    %h = memref.load %g[%c0, %c0] : memref<1x?xf32, strided<[12, 1], offset: ?>>
    // an index buffer the loop defines
    %local = memref.alloca(%m) : memref<?xi32>
    %l = memref.load %local[%i] : memref<?xi32>
    %li = arith.index_cast %l : i32 to index
    %o = memref.subview %x[%li, 0] [1, 12] [1, 1]
        : memref<?x12xf32> to memref<1x12xf32, strided<[12, 1], offset: ?>>
    memref.copy %o, %dst : memref<1x12xf32, strided<[12, 1], offset: ?>>
        to memref<1x12xf32, strided<[12, 1], offset: ?>>
  }
  return
}

// -----

// A step of 3 from 5 (two iterations ahead: 6 further), a rank-reduced row
// of a strided source (indices in the source's space), and an unsigned
// loop. A dynamic step is left alone.

// CHECK-LABEL: func.func @steps
// CHECK: scf.for %[[I:.*]] = %{{.*}} to %[[UB:.*]] step %{{.*}} {
// CHECK:   memref.subview
// CHECK:   %[[C6:.*]] = arith.constant 6 : index
// CHECK:   %[[AHEAD:.*]] = arith.addi %[[I]], %[[C6]]
// CHECK:   %[[LEFT:.*]] = arith.subi %[[UB]], %[[I]]
// CHECK:   arith.cmpi ugt, %[[LEFT]], %[[C6]]
// CHECK:   memref.load %{{.*}}[%[[AHEAD]]]
// CHECK:   %[[R:.*]] = arith.index_cast
// CHECK:   %[[C2:.*]] = arith.constant 2 : index
// CHECK:   %[[C0:.*]] = arith.constant 0 : index
// CHECK:   memref.prefetch %{{.*}}[%[[R]], %[[C2]], %[[C0]]], {{.*}} : memref<?x3x20xf32, strided<[120, 40, 1], offset: 7>>
// CHECK-NOT: memref.prefetch {{.*}} strided<[120, 40, 2]
// CHECK: scf.for unsigned
// CHECK:   memref.prefetch
// CHECK: scf.for
// CHECK-NOT: memref.prefetch
// CHECK: return
func.func @steps(%x: memref<?x3x20xf32, strided<[120, 40, 1], offset: 7>>,
                 %y: memref<?x3x20xf32, strided<[120, 40, 2], offset: 7>>,
                 %perm: memref<?xi32>, %n: index, %step: index) {
  %c1 = arith.constant 1 : index
  %c3 = arith.constant 3 : index
  %c5 = arith.constant 5 : index
  %c0 = arith.constant 0 : index
  scf.for %i = %c5 to %n step %c3 {
    %v = memref.load %perm[%i] : memref<?xi32>
    %r = arith.index_cast %v : i32 to index
    %row = memref.subview %x[%r, 2, 0] [1, 1, 20] [1, 1, 1]
        : memref<?x3x20xf32, strided<[120, 40, 1], offset: 7>>
          to memref<20xf32, strided<[1], offset: ?>>
    %e = memref.load %row[%c0] : memref<20xf32, strided<[1], offset: ?>>
    // The source's last stride is 2: not a contiguous row.
    %odd = memref.subview %y[%r, 2, 0] [1, 1, 20] [1, 1, 1]
        : memref<?x3x20xf32, strided<[120, 40, 2], offset: 7>>
          to memref<20xf32, strided<[2], offset: ?>>
    %f = memref.load %odd[%c0] : memref<20xf32, strided<[2], offset: ?>>
  }
  scf.for unsigned %i = %c0 to %n step %c1 {
    %v = memref.load %perm[%i] : memref<?xi32>
    %r = arith.index_cast %v : i32 to index
    %row = memref.subview %x[%r, 0, 0] [1, 1, 20] [1, 1, 1]
        : memref<?x3x20xf32, strided<[120, 40, 1], offset: 7>>
          to memref<20xf32, strided<[1], offset: ?>>
    %e = memref.load %row[%c0] : memref<20xf32, strided<[1], offset: ?>>
  }
  scf.for %i = %c0 to %n step %step {
    %v = memref.load %perm[%i] : memref<?xi32>
    %r = arith.index_cast %v : i32 to index
    %row = memref.subview %x[%r, 0, 0] [1, 1, 20] [1, 1, 1]
        : memref<?x3x20xf32, strided<[120, 40, 1], offset: 7>>
          to memref<20xf32, strided<[1], offset: ?>>
    %e = memref.load %row[%c0] : memref<20xf32, strided<[1], offset: ?>>
  }
  return
}

// -----

// A row of 2000 floats (125 lines): only its first 64 lines are
// prefetched; the hardware's stream prefetcher has the rest by then.

// CHECK-LABEL: func.func @long_row
// CHECK:       scf.if
// CHECK-COUNT-64: memref.prefetch
// CHECK-NOT:   memref.prefetch
// CHECK:       return
func.func @long_row(%x: memref<?x2000xf32>, %perm: memref<?xi32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  scf.for %i = %c0 to %n step %c1 {
    %v = memref.load %perm[%i] : memref<?xi32>
    %r = arith.index_cast %v : i32 to index
    %row = memref.subview %x[%r, 0] [1, 2000] [1, 1]
        : memref<?x2000xf32> to memref<1x2000xf32, strided<[2000, 1], offset: ?>>
    %e = memref.load %row[%c0, %c0] : memref<1x2000xf32, strided<[2000, 1], offset: ?>>
  }
  return
}

// RUN: moe-opt %s --moe-cpu-prefetch-panels --split-input-file | FileCheck %s
// RUN: moe-opt %s --moe-cpu-prefetch-panels="cross-blocks=true locality=2" --split-input-file | FileCheck %s --check-prefix=CROSS
// RUN: not moe-opt %s --moe-cpu-prefetch-panels="locality=4" --split-input-file 2>&1 | FileCheck %s --check-prefix=LOCALITY
// RUN: not moe-opt %s --moe-cpu-prefetch-panels="ahead-locality=5" --split-input-file 2>&1 | FileCheck %s --check-prefix=AHEADLOC
// RUN: not moe-opt %s --moe-cpu-prefetch-panels="ahead-rows=-1" --split-input-file 2>&1 | FileCheck %s --check-prefix=AHEADNEG
// RUN: moe-opt %s --moe-cpu-prefetch-panels="cross-blocks=true locality=2 ahead-rows=24" --split-input-file | FileCheck %s --check-prefix=AHEAD
// RUN: moe-opt %s --moe-cpu-prefetch-panels="cross-blocks=true locality=2 spread-tiles=true" --split-input-file | FileCheck %s --check-prefix=SPREAD
// RUN: moe-opt %s --moe-cpu-prefetch-panels="stores=true" --split-input-file | FileCheck %s --check-prefix=STORES

// LOCALITY: error: moe-cpu-prefetch-panels: locality and ahead-locality must be 0 to 3, got 4 and 3
// AHEADLOC: error: moe-cpu-prefetch-panels: locality and ahead-locality must be 0 to 3, got 3 and 5
// AHEADNEG: error: moe-cpu-prefetch-panels: ahead-rows must not be negative, got -1

// A 6 x 16 tile's k loop over column panels [E = 3, Nf = 2, K = 412,
// P = 64] (moe-pack-expert-weights): row k of the next panel is 26368
// elements (412 x 64) further, and one 16-float read is one line.
// Without cross-blocks only from panel 0 (the expert's next panel); with
// them from every panel, the block's start clamped once before the loop so
// that k = 411's line stays in the buffer (3 x 2 x 412 x 64 - 1 - 411 x 64
// = 131903: the last panel prefetches the buffer's last rows), no clamp
// per k step.

// CHECK-LABEL: func.func @panel_tile
// CHECK-SAME: (%[[W:.*]]: memref<3x2x412x64xf32>, %[[E:.*]]: index, %[[J:.*]]: index, %[[C:.*]]: index
// CHECK: %[[FLAT:.*]] = memref.collapse_shape %[[W]] {{\[}}[0, 1, 2, 3]] : memref<3x2x412x64xf32> into memref<158208xf32>
// CHECK: %[[NEXT:.*]] = arith.constant 26368 : index
// CHECK: %[[SE:.*]] = arith.constant 52736 : index
// CHECK: %[[A0:.*]] = arith.muli %[[E]], %[[SE]]
// CHECK: %[[A1:.*]] = arith.addi %[[NEXT]], %[[A0]]
// CHECK: %[[A2:.*]] = arith.muli %[[J]], %{{.*}}
// CHECK: %[[A3:.*]] = arith.addi %[[A1]], %[[A2]]
// CHECK: %[[BASE:.*]] = arith.addi %[[A3]], %[[C]]
// CHECK: %[[NOTLAST:.*]] = arith.cmpi ult, %[[J]], %{{.*}} : index
// CHECK: scf.for %[[K:.*]] = {{.*}} iter_args
// CHECK: %[[C64:.*]] = arith.constant 64 : index
// CHECK: %[[ROW:.*]] = arith.muli %[[K]], %[[C64]]
// CHECK: %[[AT:.*]] = arith.addi %[[BASE]], %[[ROW]]
// CHECK: scf.if %[[NOTLAST]] {
// CHECK-NEXT: memref.prefetch %[[FLAT]][%[[AT]]], read, locality<3>, data : memref<158208xf32>
// CHECK-NEXT: }
// CHECK-NEXT: vector.transfer_read %[[W]][%[[E]], %[[J]], %[[K]], %[[C]]]
// CHECK-NOT: memref.prefetch

// CROSS-LABEL: func.func @panel_tile
// CROSS-NOT: scf.if
// CROSS: %[[LIMIT:.*]] = arith.constant 131903 : index
// CROSS: %[[BASE:.*]] = arith.minui %{{.*}}, %[[LIMIT]] : index
// CROSS: scf.for %[[K:.*]] = {{.*}} iter_args
// CROSS-NOT: scf.if
// CROSS: %[[ROW:.*]] = arith.muli %[[K]], %{{.*}}
// CROSS-NEXT: %[[AT:.*]] = arith.addi %[[BASE]], %[[ROW]] : index
// CROSS-NEXT: memref.prefetch %{{.*}}[%[[AT]]], read, locality<2>, data : memref<158208xf32>
// CROSS-NEXT: vector.transfer_read
func.func @panel_tile(%w: memref<3x2x412x64xf32>, %e: index, %j: index,
                      %c: index, %a: memref<6x412xf32>) -> vector<6x16xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c412 = arith.constant 412 : index
  %f0 = arith.constant 0.0 : f32
  %init = arith.constant dense<0.0> : vector<6x16xf32>
  %r = scf.for %k = %c0 to %c412 step %c1 iter_args(%acc = %init)
      -> (vector<6x16xf32>) {
    %b = vector.transfer_read %w[%e, %j, %k, %c], %f0 {in_bounds = [true]}
        : memref<3x2x412x64xf32>, vector<16xf32>
    %x = vector.transfer_read %a[%c0, %k], %f0 {in_bounds = [true]}
        : memref<6x412xf32>, vector<6xf32>
    %s = vector.extract %x[0] : f32 from vector<6xf32>
    %bs = vector.broadcast %s : f32 to vector<16xf32>
    %row = vector.extract %acc[0] : vector<16xf32> from vector<6x16xf32>
    %f = vector.fma %bs, %b, %row : vector<16xf32>
    %n = vector.insert %f, %acc[0] : vector<16xf32> into vector<6x16xf32>
    scf.yield %n : vector<6x16xf32>
  }
  return %r : vector<6x16xf32>
}

// -----

// A read of 32 floats: two lines, 0 and 16 elements from the read's start.
// An expert's row-major weight [E = 4, K = 128, N = 40] (rank 3): the next
// block is the next expert (5120 further), guarded by e < 3.

// CHECK-LABEL: func.func @two_lines_rank3
// CHECK: memref.collapse_shape {{.*}} into memref<20480xf32>
// CHECK: arith.constant 5120 : index
// CHECK: %[[C3:.*]] = arith.constant 3 : index
// CHECK: %[[NOTLAST:.*]] = arith.cmpi ult, %{{.*}}, %[[C3]] : index
// CHECK: scf.for
// CHECK: arith.constant 40 : index
// CHECK: %[[AT:.*]] = arith.addi
// CHECK: scf.if %[[NOTLAST]]
// CHECK-NEXT: memref.prefetch %{{.*}}[%[[AT]]]
// CHECK-NEXT: %[[C16:.*]] = arith.constant 16 : index
// CHECK-NEXT: %[[AT16:.*]] = arith.addi %[[AT]], %[[C16]]
// CHECK-NEXT: memref.prefetch %{{.*}}[%[[AT16]]]
// CHECK-NEXT: }

// CROSS-LABEL: func.func @two_lines_rank3
// With cross-blocks the start is clamped once, to 20479 - 127 x 40 - 16
// (k = 127's second line in the buffer).
// CROSS: %[[LIMIT:.*]] = arith.constant 15383 : index
// CROSS: %[[BASE:.*]] = arith.minui %{{.*}}, %[[LIMIT]] : index
// CROSS: scf.for
// CROSS-NOT: arith.minui
// CROSS-NOT: scf.if
// CROSS: %[[AT:.*]] = arith.addi %[[BASE]], %{{.*}}
// CROSS-NEXT: memref.prefetch %{{.*}}[%[[AT]]]
// CROSS-NEXT: %[[C16:.*]] = arith.constant 16 : index
// CROSS-NEXT: %[[AT16:.*]] = arith.addi %[[AT]], %[[C16]]
// CROSS-NEXT: memref.prefetch %{{.*}}[%[[AT16]]]
// CROSS-NOT: arith.minui
// CROSS: return
func.func @two_lines_rank3(%w: memref<4x128x40xf32>, %e: index)
    -> vector<2x32xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c128 = arith.constant 128 : index
  %f0 = arith.constant 0.0 : f32
  %init = arith.constant dense<0.0> : vector<2x32xf32>
  %r = scf.for %k = %c0 to %c128 step %c1 iter_args(%acc = %init)
      -> (vector<2x32xf32>) {
    %b = vector.transfer_read %w[%e, %k, %c0], %f0 {in_bounds = [true]}
        : memref<4x128x40xf32>, vector<32xf32>
    %n = vector.insert %b, %acc[0] : vector<32xf32> into vector<2x32xf32>
    scf.yield %n : vector<2x32xf32>
  }
  return %r : vector<2x32xf32>
}

// -----

// A k loop whose bound is known only at run time: with cross-blocks each
// line's address is clamped in the loop, to the buffer's last element
// (4 x 128 x 40 - 1).

// CROSS-LABEL: func.func @dynamic_k_bound
// CROSS: scf.for
// CROSS: %[[LAST:.*]] = arith.constant 20479 : index
// CROSS: %[[AT:.*]] = arith.minui %{{.*}}, %[[LAST]] : index
// CROSS-NEXT: memref.prefetch %{{.*}}[%[[AT]]]
// CROSS: %[[LAST2:.*]] = arith.constant 20479 : index
// CROSS-NEXT: arith.minui %{{.*}}, %[[LAST2]] : index
// CROSS-NEXT: memref.prefetch
// CROSS: return
func.func @dynamic_k_bound(%w: memref<4x128x40xf32>, %e: index, %n: index)
    -> vector<2x32xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %f0 = arith.constant 0.0 : f32
  %init = arith.constant dense<0.0> : vector<2x32xf32>
  %r = scf.for %k = %c0 to %n step %c1 iter_args(%acc = %init)
      -> (vector<2x32xf32>) {
    %b = vector.transfer_read %w[%e, %k, %c0], %f0 {in_bounds = [true]}
        : memref<4x128x40xf32>, vector<32xf32>
    %m = vector.insert %b, %acc[0] : vector<32xf32> into vector<2x32xf32>
    scf.yield %m : vector<2x32xf32>
  }
  return %r : vector<2x32xf32>
}

// -----

// One-row tiles: the one-row loop over an expert's rows (%lo to %hi, step
// 1) around the k loop of a 1 x 64 tile that reads whole 64-float rows of
// a panel. Pass p >= 1 prefetches line (p - 1) * 412 + k of the next
// block (1648 lines of 16 floats); pass 0 (a decode step's only row)
// wraps to a huge unsigned line and prefetches nothing.

// CHECK-LABEL: func.func @one_row_passes
// CHECK-SAME: (%[[W:.*]]: memref<3x2x412x64xf32>, %[[E:.*]]: index, %[[J:.*]]: index, %[[LO:.*]]: index, %[[HI:.*]]: index
// CHECK: %[[FLAT:.*]] = memref.collapse_shape %[[W]]
// CHECK: %[[ONE:.*]] = arith.constant 1 : index
// CHECK: %[[B0:.*]] = arith.addi %[[ONE]], %[[J]]
// CHECK: %[[TWO:.*]] = arith.constant 2 : index
// CHECK: %[[B1:.*]] = arith.muli %[[E]], %[[TWO]]
// CHECK: %[[B2:.*]] = arith.addi %[[B0]], %[[B1]]
// CHECK: %[[SIZE:.*]] = arith.constant 26368 : index
// CHECK: %[[NEXT:.*]] = arith.muli %[[B2]], %[[SIZE]]
// CHECK: %[[NOTLAST:.*]] = arith.cmpi ult, %[[J]]
// CHECK: scf.for %[[R:.*]] = %[[LO]] to %[[HI]] step
// CHECK: scf.for %[[K:.*]] = {{.*}} iter_args
// CHECK: %[[P:.*]] = arith.subi %[[R]], %[[LO]]
// CHECK: %[[P1:.*]] = arith.subi %[[P]], %{{.*}}
// CHECK: %[[C412:.*]] = arith.constant 412 : index
// CHECK: %[[L0:.*]] = arith.muli %[[P1]], %[[C412]]
// CHECK: %[[LINE:.*]] = arith.addi %[[L0]], %[[K]]
// CHECK: %[[LINES:.*]] = arith.constant 1648 : index
// CHECK: %[[IN:.*]] = arith.cmpi ult, %[[LINE]], %[[LINES]]
// CHECK: %[[GO:.*]] = arith.andi %[[IN]], %[[NOTLAST]]
// CHECK: scf.if %[[GO]] {
// CHECK: %[[C16:.*]] = arith.constant 16 : index
// CHECK: %[[OFF:.*]] = arith.muli %[[LINE]], %[[C16]]
// CHECK: %[[AT:.*]] = arith.addi %[[NEXT]], %[[OFF]]
// CHECK: memref.prefetch %[[FLAT]][%[[AT]]], read, locality<3>, data
// CHECK: }
// CHECK-NEXT: vector.transfer_read %[[W]][%[[E]], %[[J]], %[[K]], %{{.*}}], {{.*}} vector<64xf32>

// CROSS-LABEL: func.func @one_row_passes
// CROSS-NOT: arith.andi
// CROSS: %[[LAST:.*]] = arith.constant 158207 : index
// CROSS: arith.minui %{{.*}}, %[[LAST]]
// CROSS: memref.prefetch {{.*}} locality<2>
// Rows of two lines or more (this 1 x 64 tile reads four per k step) have
// misses enough in flight: no ahead-rows prefetch.
// AHEAD-LABEL: func.func @one_row_passes
// AHEAD-NOT: locality<3>
// AHEAD: return
func.func @one_row_passes(%w: memref<3x2x412x64xf32>, %e: index, %j: index,
                          %lo: index, %hi: index, %a: memref<?x412xf32>,
                          %out: memref<?x64xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c412 = arith.constant 412 : index
  %f0 = arith.constant 0.0 : f32
  %init = arith.constant dense<0.0> : vector<64xf32>
  scf.for %r = %lo to %hi step %c1 {
    %acc = scf.for %k = %c0 to %c412 step %c1 iter_args(%v = %init)
        -> (vector<64xf32>) {
      %b = vector.transfer_read %w[%e, %j, %k, %c0], %f0 {in_bounds = [true]}
          : memref<3x2x412x64xf32>, vector<64xf32>
      %x = memref.load %a[%r, %k] : memref<?x412xf32>
      %xs = vector.broadcast %x : f32 to vector<64xf32>
      %n = vector.fma %xs, %b, %v : vector<64xf32>
      scf.yield %n : vector<64xf32>
    }
    vector.transfer_write %acc, %out[%r, %c0] {in_bounds = [true]}
        : vector<64xf32>, memref<?x64xf32>
  }
  return
}

// -----

// ahead-rows: a 1 x 16 tile over 16-column panels [3, 8, 412, 16] reads one
// line per k step. Its first pass (pass 0: a decode step's only one) also
// prefetches row k + 24 of its own block (which starts one block before
// the next), into L1 (ahead-locality 3), clamped to the buffer's last
// element (3 x 8 x 412 x 16 - 1); the passes after it prefetch the next
// block as before.
// AHEAD-LABEL: func.func @one_row_ahead
// AHEAD-SAME: (%[[W:[a-z0-9]+]]: memref<3x8x412x16xf32>, %{{[a-z0-9]+}}: index, %{{[a-z0-9]+}}: index, %[[LO:[a-z0-9]+]]: index
// AHEAD: %[[FLAT:.*]] = memref.collapse_shape %[[W]]
// AHEAD: %[[SIZE:.*]] = arith.constant 6592 : index
// AHEAD: %[[NEXT:.*]] = arith.muli %{{.*}}, %[[SIZE]]
// AHEAD: scf.for %[[R:.*]] = %[[LO]] to
// AHEAD: scf.for %[[K:.*]] = {{.*}} iter_args
// AHEAD: %[[P:.*]] = arith.subi %[[R]], %[[LO]]
// AHEAD: %[[FIRST:.*]] = arith.cmpi eq, %[[P]], %{{.*}}
// AHEAD: scf.if %[[FIRST]] {
// AHEAD: %[[C24:.*]] = arith.constant 24 : index
// AHEAD: %[[ROW:.*]] = arith.addi %[[K]], %[[C24]]
// AHEAD: %[[THIS:.*]] = arith.subi %[[NEXT]], %{{.*}}
// AHEAD: %[[C16:.*]] = arith.constant 16 : index
// AHEAD: %[[OFF:.*]] = arith.muli %[[ROW]], %[[C16]]
// AHEAD: %[[AT:.*]] = arith.addi %[[THIS]], %[[OFF]]
// AHEAD: %[[END:.*]] = arith.constant 158207 : index
// AHEAD: %[[CL:.*]] = arith.minui %[[AT]], %[[END]]
// AHEAD: memref.prefetch %[[FLAT]][%[[CL]]], read, locality<3>, data
// AHEAD-NEXT: }
// AHEAD: scf.if
// AHEAD: memref.prefetch %[[FLAT]][{{.*}}], read, locality<2>, data
// AHEAD: vector.transfer_read %[[W]]
// Without ahead-rows, only the passes after the first.
// CROSS-LABEL: func.func @one_row_ahead
// CROSS-NOT: locality<3>
// CROSS: return
func.func @one_row_ahead(%w: memref<3x8x412x16xf32>, %e: index, %j: index,
                         %lo: index, %hi: index, %a: memref<?x412xf32>,
                         %out: memref<?x16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c412 = arith.constant 412 : index
  %f0 = arith.constant 0.0 : f32
  %init = arith.constant dense<0.0> : vector<16xf32>
  scf.for %r = %lo to %hi step %c1 {
    %acc = scf.for %k = %c0 to %c412 step %c1 iter_args(%v = %init)
        -> (vector<16xf32>) {
      %b = vector.transfer_read %w[%e, %j, %k, %c0], %f0 {in_bounds = [true]}
          : memref<3x8x412x16xf32>, vector<16xf32>
      %x = memref.load %a[%r, %k] : memref<?x412xf32>
      %xs = vector.broadcast %x : f32 to vector<16xf32>
      %n = vector.fma %xs, %b, %v : vector<16xf32>
      scf.yield %n : vector<16xf32>
    }
    vector.transfer_write %acc, %out[%r, %c0] {in_bounds = [true]}
        : vector<16xf32>, memref<?x16xf32>
  }
  return
}

// -----

// Left alone: a one-row tile outside a loop over rows (a decode step's
// product: it reads each block once, and the next block in memory is
// often an expert nobody selected), or in one whose read is not a whole
// row of the block; k not the second-to-last index; another index that
// changes in the loop; a two-dim weight (no block dim); a dynamic shape;
// a strided view; a block under 1 KB; a loop outside any row loop.

// CHECK-LABEL: func.func @left_alone
// CHECK-NOT: memref.prefetch
// CHECK-NOT: memref.collapse_shape
// CHECK: return

// CROSS-LABEL: func.func @left_alone
// CROSS-NOT: memref.prefetch
// CROSS: return
func.func @left_alone(%w: memref<3x2x412x64xf32>, %d: memref<?x412x64xf32>,
                      %m: memref<412x64xf32>,
                      %s: memref<3x412x64xf32, strided<[52736, 64, 1]>>,
                      %small: memref<3x4x16xf32>, %e: index)
    -> (vector<64xf32>, vector<2x16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c412 = arith.constant 412 : index
  %f0 = arith.constant 0.0 : f32
  %one = arith.constant dense<0.0> : vector<64xf32>
  %two = arith.constant dense<0.0> : vector<2x16xf32>
  %r1 = scf.for %k = %c0 to %c412 step %c1 iter_args(%acc = %one)
      -> (vector<64xf32>) {
    %b = vector.transfer_read %w[%e, %c0, %k, %c0], %f0 {in_bounds = [true]}
        : memref<3x2x412x64xf32>, vector<64xf32>
    %n = arith.addf %acc, %b : vector<64xf32>
    scf.yield %n : vector<64xf32>
  }
  %r2 = scf.for %k = %c0 to %c4 step %c1 iter_args(%acc = %two)
      -> (vector<2x16xf32>) {
    %b1 = vector.transfer_read %w[%e, %c0, %c0, %k], %f0 {in_bounds = [true]}
        : memref<3x2x412x64xf32>, vector<16xf32>
    %j = arith.addi %k, %c1 : index
    %b2 = vector.transfer_read %w[%e, %j, %k, %c0], %f0 {in_bounds = [true]}
        : memref<3x2x412x64xf32>, vector<16xf32>
    %b3 = vector.transfer_read %m[%k, %c0], %f0 {in_bounds = [true]}
        : memref<412x64xf32>, vector<16xf32>
    %b4 = vector.transfer_read %d[%e, %k, %c0], %f0 {in_bounds = [true]}
        : memref<?x412x64xf32>, vector<16xf32>
    %b5 = vector.transfer_read %s[%e, %k, %c0], %f0 {in_bounds = [true]}
        : memref<3x412x64xf32, strided<[52736, 64, 1]>>, vector<16xf32>
    %b6 = vector.transfer_read %small[%e, %k, %c0], %f0 {in_bounds = [true]}
        : memref<3x4x16xf32>, vector<16xf32>
    %t1 = arith.addf %b1, %b2 : vector<16xf32>
    %t2 = arith.addf %b3, %b4 : vector<16xf32>
    %t3 = arith.addf %b5, %b6 : vector<16xf32>
    %t4 = arith.addf %t1, %t2 : vector<16xf32>
    %t5 = arith.addf %t4, %t3 : vector<16xf32>
    %n = vector.insert %t5, %acc[0] : vector<16xf32> into vector<2x16xf32>
    scf.yield %n : vector<2x16xf32>
  }
  scf.for %k = %c0 to %c412 step %c1 {
    %b = vector.transfer_read %w[%e, %c0, %k, %c0], %f0 {in_bounds = [true]}
        : memref<3x2x412x64xf32>, vector<16xf32>
    vector.transfer_write %b, %m[%k, %c0] {in_bounds = [true]}
        : vector<16xf32>, memref<412x64xf32>
  }
  %sixteen = arith.constant dense<0.0> : vector<16xf32>
  scf.for %r = %c0 to %c4 step %c1 {
    %part = scf.for %k = %c0 to %c412 step %c1 iter_args(%v = %sixteen)
        -> (vector<16xf32>) {
      %b = vector.transfer_read %w[%e, %c0, %k, %c0], %f0 {in_bounds = [true]}
          : memref<3x2x412x64xf32>, vector<16xf32>
      %n = arith.addf %v, %b : vector<16xf32>
      scf.yield %n : vector<16xf32>
    }
    vector.transfer_write %part, %m[%r, %c0] {in_bounds = [true]}
        : vector<16xf32>, memref<412x64xf32>
  }
  return %r1, %r2 : vector<64xf32>, vector<2x16xf32>
}

// -----

// Left alone inside loops over rows: a tile of one row with a two-dim
// accumulator (vector<1x16>: not multi-row, and its read is not a whole
// row); a row loop of step 2; a block index that changes with the row; a
// k loop without an accumulator; a read that may run past the row (not in
// bounds) in a multi-row tile.

// CHECK-LABEL: func.func @left_alone_rows
// CHECK-NOT: memref.prefetch
// CHECK: return
// CROSS-LABEL: func.func @left_alone_rows
// CROSS-NOT: memref.prefetch
// CROSS: return
func.func @left_alone_rows(%w: memref<3x2x412x64xf32>, %e: index,
                           %m: memref<8x64xf32>, %c: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c8 = arith.constant 8 : index
  %c412 = arith.constant 412 : index
  %f0 = arith.constant 0.0 : f32
  %one = arith.constant dense<0.0> : vector<1x16xf32>
  %row = arith.constant dense<0.0> : vector<64xf32>
  %six = arith.constant dense<0.0> : vector<6x16xf32>
  scf.for %r = %c0 to %c8 step %c1 {
    %a = scf.for %k = %c0 to %c412 step %c1 iter_args(%v = %one)
        -> (vector<1x16xf32>) {
      %b = vector.transfer_read %w[%e, %c0, %k, %c0], %f0 {in_bounds = [true]}
          : memref<3x2x412x64xf32>, vector<16xf32>
      %n = vector.insert %b, %v[0] : vector<16xf32> into vector<1x16xf32>
      scf.yield %n : vector<1x16xf32>
    }
    %a0 = vector.extract %a[0] : vector<16xf32> from vector<1x16xf32>
    vector.transfer_write %a0, %m[%r, %c0] {in_bounds = [true]}
        : vector<16xf32>, memref<8x64xf32>
  }
  scf.for %r = %c0 to %c8 step %c2 {
    %a = scf.for %k = %c0 to %c412 step %c1 iter_args(%v = %row)
        -> (vector<64xf32>) {
      %b = vector.transfer_read %w[%e, %c0, %k, %c0], %f0 {in_bounds = [true]}
          : memref<3x2x412x64xf32>, vector<64xf32>
      %n = arith.addf %v, %b : vector<64xf32>
      scf.yield %n : vector<64xf32>
    }
    vector.transfer_write %a, %m[%r, %c0] {in_bounds = [true]}
        : vector<64xf32>, memref<8x64xf32>
  }
  scf.for %r = %c0 to %c2 step %c1 {
    %a = scf.for %k = %c0 to %c412 step %c1 iter_args(%v = %row)
        -> (vector<64xf32>) {
      %b = vector.transfer_read %w[%e, %r, %k, %c0], %f0 {in_bounds = [true]}
          : memref<3x2x412x64xf32>, vector<64xf32>
      %n = arith.addf %v, %b : vector<64xf32>
      scf.yield %n : vector<64xf32>
    }
    vector.transfer_write %a, %m[%r, %c0] {in_bounds = [true]}
        : vector<64xf32>, memref<8x64xf32>
  }
  scf.for %r = %c0 to %c8 step %c1 {
    scf.for %k = %c0 to %c412 step %c1 {
      %b = vector.transfer_read %w[%e, %c0, %k, %c0], %f0 {in_bounds = [true]}
          : memref<3x2x412x64xf32>, vector<64xf32>
      vector.transfer_write %b, %m[%r, %c0] {in_bounds = [true]}
          : vector<64xf32>, memref<8x64xf32>
    }
  }
  %t = scf.for %k = %c0 to %c412 step %c1 iter_args(%v = %six)
      -> (vector<6x16xf32>) {
    %b = vector.transfer_read %w[%e, %c0, %k, %c], %f0
        : memref<3x2x412x64xf32>, vector<16xf32>
    %n = vector.insert %b, %v[0] : vector<16xf32> into vector<6x16xf32>
    scf.yield %n : vector<6x16xf32>
  }
  %t0 = vector.extract %t[0] : vector<16xf32> from vector<6x16xf32>
  vector.transfer_write %t0, %m[%c0, %c0] {in_bounds = [true]}
      : vector<16xf32>, memref<8x64xf32>
  return
}

// -----

// One panel per expert ([3, 1, 412, 64]): without cross-blocks there is
// no next panel of the same expert, so nothing; with them, the next
// expert's.

// CHECK-LABEL: func.func @single_panel
// CHECK-NOT: memref.prefetch
// CHECK: return
// CROSS-LABEL: func.func @single_panel
// CROSS: memref.prefetch {{.*}} : memref<79104xf32>
func.func @single_panel(%w: memref<3x1x412x64xf32>, %e: index)
    -> vector<6x16xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c412 = arith.constant 412 : index
  %f0 = arith.constant 0.0 : f32
  %six = arith.constant dense<0.0> : vector<6x16xf32>
  %t = scf.for %k = %c0 to %c412 step %c1 iter_args(%v = %six)
      -> (vector<6x16xf32>) {
    %b = vector.transfer_read %w[%e, %c0, %k, %c0], %f0 {in_bounds = [true]}
        : memref<3x1x412x64xf32>, vector<16xf32>
    %n = vector.insert %b, %v[0] : vector<16xf32> into vector<6x16xf32>
    scf.yield %n : vector<6x16xf32>
  }
  return %t : vector<6x16xf32>
}

// -----

// An iteration over experts that reads several weight buffers (with
// convert-moe-to-linalg{fuse-expert-pairs}: the up projection's panels
// [E, 2, 32, 16], then the down projection's [E, 2, 16, 16] and its tail
// [E, 16, 16]). With cross-blocks, the expert's last block of a buffer
// prefetches the first block read after it, not the next one in memory:
// the k loop of a panel comes in two versions, chosen by j == 1 (the
// expert's last panel). The up projection's last panel prefetches the
// down projection's first one, its 16 lines over the 32 k steps, one a
// step (line k: steps 16 to 31 reach into the second panel, read next),
// the start clamped once before the loop so that step 31's line is in the
// buffer (1535 - 31 x 16 = 1039); the down projection's the tail's rows;
// the tail (every block its expert's last) the next expert's first
// up-projection panel, two lines per k step (32 lines, K = 16).

// CHECK-LABEL: func.func @expert_products
// CHECK-NOT: scf.if %{{.*}} -> (vector<2x16xf32>)
// CHECK: return
// CROSS-LABEL: func.func @expert_products
// CROSS-SAME: (%[[P1:[^:]*]]: memref<3x2x32x16xf32>, %[[P2:[^:]*]]: memref<3x2x16x16xf32>, %[[T2:[^:]*]]: memref<3x16x16xf32>
// CROSS: scf.parallel (%[[E:[^)]*]]) =
// CROSS: scf.for %[[J:[^ ]*]] =
// CROSS: %[[ONE:.*]] = arith.constant 1 : index
// CROSS: %[[L1:.*]] = arith.cmpi eq, %[[J]], %[[ONE]] : index
// CROSS-NOT: arith.andi
// CROSS: scf.if %[[L1]] -> (vector<2x16xf32>) {
// CROSS: %[[NF:.*]] = memref.collapse_shape %[[P2]] {{\[}}[0, 1, 2, 3]] : memref<3x2x16x16xf32> into memref<1536xf32>
// CROSS: %[[STRIDE:.*]] = arith.constant 512 : index
// CROSS: %[[NS:.*]] = arith.muli %[[E]], %[[STRIDE]] : index
// CROSS: %[[LIMIT:.*]] = arith.constant 1039 : index
// CROSS: %[[NSC:.*]] = arith.minui %[[NS]], %[[LIMIT]] : index
// CROSS: scf.for %[[K:[^ ]*]] =
// CROSS: %[[LINE:.*]] = arith.constant 16 : index
// CROSS: %[[OFF:.*]] = arith.muli %[[K]], %[[LINE]] : index
// CROSS: %[[AT:.*]] = arith.addi %[[NSC]], %[[OFF]] : index
// CROSS-NEXT: memref.prefetch %[[NF]][%[[AT]]], read, locality<2>, data : memref<1536xf32>
// CROSS-NEXT: vector.transfer_read %[[P1]]
// CROSS: } else {
// CROSS-NOT: memref<1536xf32>
// CROSS: memref.prefetch %{{.*}} : memref<3072xf32>
// CROSS-NEXT: vector.transfer_read %[[P1]]
// CROSS: scf.if %{{.*}} -> (vector<2x16xf32>) {
// CROSS: memref.collapse_shape %[[T2]]
// CROSS: memref.prefetch %{{.*}} : memref<768xf32>
// CROSS-NEXT: vector.transfer_read %[[P2]]
// CROSS: } else {
// CROSS-NOT: memref<768xf32>
// CROSS: memref.prefetch %{{.*}} : memref<1536xf32>
// CROSS-NEXT: vector.transfer_read %[[P2]]
// CROSS-NOT: memref.collapse_shape %[[T2]]
// CROSS: %[[E1:.*]] = arith.addi %[[E]], %{{.*}} : index
// CROSS: %[[NS2:.*]] = arith.muli %[[E1]], %{{.*}} : index
// CROSS: %[[LIMIT2:.*]] = arith.constant 2575 : index
// CROSS: arith.minui %[[NS2]], %[[LIMIT2]] : index
// CROSS: scf.for %[[K2:[^ ]*]] =
// CROSS-NOT: scf.if
// CROSS-NOT: arith.minui
// CROSS: arith.muli %[[K2]], %{{.*}} : index
// CROSS-COUNT-2: memref.prefetch %{{.*}} : memref<3072xf32>
// CROSS-NEXT: vector.transfer_read %[[T2]]
func.func @expert_products(%p1: memref<3x2x32x16xf32>, %p2: memref<3x2x16x16xf32>,
                           %t2: memref<3x16x16xf32>, %out: memref<3x2x2x16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %c16 = arith.constant 16 : index
  %c32 = arith.constant 32 : index
  %f0 = arith.constant 0.0 : f32
  %two = arith.constant dense<0.0> : vector<2x16xf32>
  scf.parallel (%e) = (%c0) to (%c3) step (%c1) {
    scf.for %j = %c0 to %c2 step %c1 {
      %u = scf.for %k = %c0 to %c32 step %c1 iter_args(%v = %two)
          -> (vector<2x16xf32>) {
        %b = vector.transfer_read %p1[%e, %j, %k, %c0], %f0 {in_bounds = [true]}
            : memref<3x2x32x16xf32>, vector<16xf32>
        %n = vector.insert %b, %v[0] : vector<16xf32> into vector<2x16xf32>
        scf.yield %n : vector<2x16xf32>
      }
      vector.transfer_write %u, %out[%e, %j, %c0, %c0] {in_bounds = [true, true]}
          : vector<2x16xf32>, memref<3x2x2x16xf32>
    }
    scf.for %j = %c0 to %c2 step %c1 {
      %d = scf.for %k = %c0 to %c16 step %c1 iter_args(%v = %two)
          -> (vector<2x16xf32>) {
        %b = vector.transfer_read %p2[%e, %j, %k, %c0], %f0 {in_bounds = [true]}
            : memref<3x2x16x16xf32>, vector<16xf32>
        %n = vector.insert %b, %v[1] : vector<16xf32> into vector<2x16xf32>
        scf.yield %n : vector<2x16xf32>
      }
      vector.transfer_write %d, %out[%e, %j, %c0, %c0] {in_bounds = [true, true]}
          : vector<2x16xf32>, memref<3x2x2x16xf32>
    }
    %t = scf.for %k = %c0 to %c16 step %c1 iter_args(%v = %two)
        -> (vector<2x16xf32>) {
      %b = vector.transfer_read %t2[%e, %k, %c0], %f0 {in_bounds = [true]}
          : memref<3x16x16xf32>, vector<16xf32>
      %n = vector.insert %b, %v[0] : vector<16xf32> into vector<2x16xf32>
      scf.yield %n : vector<2x16xf32>
    }
    vector.transfer_write %t, %out[%e, %c0, %c0, %c0] {in_bounds = [true, true]}
        : vector<2x16xf32>, memref<3x2x2x16xf32>
    scf.reduce
  }
  return
}

// -----

// A rank-3 weight read one column tile per loop (a row-major [E, K, N]
// wider than the tile, --no-pack-weights) is not a tail: its loop keeps
// the next block in memory (the next expert's [32, 32], not the second
// buffer), even where the iteration reads another buffer after it. The
// second one, read in whole rows, is: it prefetches the next expert's
// first buffer, its 64 lines two a k step, from a start clamped once
// before the loop (3071 - 63 x 16 = 2063).

// CROSS-LABEL: func.func @row_major_pair
// CROSS-NOT: memref<1536xf32>
// CROSS: memref.prefetch %{{.*}} : memref<3072xf32>
// CROSS-NEXT: vector.transfer_read %{{.*}} : memref<3x32x32xf32>, vector<16xf32>
// CROSS-NOT: memref<1536xf32>
// CROSS: %[[LIMIT:.*]] = arith.constant 2063 : index
// CROSS: %[[START:.*]] = arith.minui %{{.*}}, %[[LIMIT]] : index
// CROSS: scf.for
// CROSS: %[[AT:.*]] = arith.addi %[[START]], %{{.*}} : index
// CROSS-NEXT: memref.prefetch %{{.*}}[%[[AT]]], {{.*}} : memref<3072xf32>
// CROSS-NEXT: %[[C16:.*]] = arith.constant 16 : index
// CROSS-NEXT: arith.addi %[[AT]], %[[C16]] : index
// CROSS-NEXT: memref.prefetch %{{.*}} : memref<3072xf32>
// CROSS-NEXT: vector.transfer_read %{{.*}} : memref<3x32x16xf32>, vector<16xf32>
// CROSS: return
func.func @row_major_pair(%w1: memref<3x32x32xf32>, %w2: memref<3x32x16xf32>,
                          %out: memref<3x2x16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c3 = arith.constant 3 : index
  %c32 = arith.constant 32 : index
  %f0 = arith.constant 0.0 : f32
  %two = arith.constant dense<0.0> : vector<2x16xf32>
  scf.parallel (%e) = (%c0) to (%c3) step (%c1) {
    %u = scf.for %k = %c0 to %c32 step %c1 iter_args(%v = %two)
        -> (vector<2x16xf32>) {
      %b = vector.transfer_read %w1[%e, %k, %c0], %f0 {in_bounds = [true]}
          : memref<3x32x32xf32>, vector<16xf32>
      %n = vector.insert %b, %v[0] : vector<16xf32> into vector<2x16xf32>
      scf.yield %n : vector<2x16xf32>
    }
    vector.transfer_write %u, %out[%e, %c0, %c0] {in_bounds = [true, true]}
        : vector<2x16xf32>, memref<3x2x16xf32>
    %d = scf.for %k = %c0 to %c32 step %c1 iter_args(%v = %two)
        -> (vector<2x16xf32>) {
      %b = vector.transfer_read %w2[%e, %k, %c0], %f0 {in_bounds = [true]}
          : memref<3x32x16xf32>, vector<16xf32>
      %n = vector.insert %b, %v[1] : vector<16xf32> into vector<2x16xf32>
      scf.yield %n : vector<2x16xf32>
    }
    vector.transfer_write %d, %out[%e, %c0, %c0] {in_bounds = [true, true]}
        : vector<2x16xf32>, memref<3x2x16xf32>
    scf.reduce
  }
  return
}

// -----

// A tail whose narrow slices moe-cpu-tile-contractions merged
// (merge-tail-slices): [E, 32, 28] read as 16 columns at 0 and 16 at 16,
// the second not in bounds (its last 4 lanes past the row). The two
// still cover the row, so it is a tail: it prefetches the next expert's
// first buffer, 64 lines two a k step, from a start clamped once before
// the loop (3071 - 31 x 32 = 2079 for the first buffer's own, 3071 - 63
// x 16 = 2063 here).

// CROSS-LABEL: func.func @merged_tail_pair
// CROSS: %[[LIMIT:.*]] = arith.constant 2063 : index
// CROSS: %[[START:.*]] = arith.minui %{{.*}}, %[[LIMIT]] : index
// CROSS: scf.for
// CROSS: %[[AT:.*]] = arith.addi %[[START]], %{{.*}} : index
// CROSS-NEXT: memref.prefetch %{{.*}}[%[[AT]]], {{.*}} : memref<3072xf32>
// CROSS: memref.prefetch %{{.*}} : memref<3072xf32>
// CROSS-NEXT: vector.transfer_read %{{.*}}[%{{.*}}, %{{.*}}, %c0], {{.*}} : memref<3x32x28xf32>, vector<16xf32>
// CROSS-NOT: memref.prefetch
// CROSS: vector.transfer_read %{{.*}}[%{{.*}}, %{{.*}}, %c16], {{.*}} : memref<3x32x28xf32>, vector<16xf32>
// CROSS: return
func.func @merged_tail_pair(%w1: memref<3x32x32xf32>, %w2: memref<3x32x28xf32>,
                            %out: memref<3x2x16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c3 = arith.constant 3 : index
  %c16 = arith.constant 16 : index
  %c32 = arith.constant 32 : index
  %f0 = arith.constant 0.0 : f32
  %two = arith.constant dense<0.0> : vector<2x16xf32>
  scf.parallel (%e) = (%c0) to (%c3) step (%c1) {
    %u = scf.for %k = %c0 to %c32 step %c1 iter_args(%v = %two)
        -> (vector<2x16xf32>) {
      %b = vector.transfer_read %w1[%e, %k, %c0], %f0 {in_bounds = [true]}
          : memref<3x32x32xf32>, vector<16xf32>
      %n = vector.insert %b, %v[0] : vector<16xf32> into vector<2x16xf32>
      scf.yield %n : vector<2x16xf32>
    }
    vector.transfer_write %u, %out[%e, %c0, %c0] {in_bounds = [true, true]}
        : vector<2x16xf32>, memref<3x2x16xf32>
    %d:2 = scf.for %k = %c0 to %c32 step %c1 iter_args(%v = %two, %w = %two)
        -> (vector<2x16xf32>, vector<2x16xf32>) {
      %b = vector.transfer_read %w2[%e, %k, %c0], %f0 {in_bounds = [true]}
          : memref<3x32x28xf32>, vector<16xf32>
      %n = vector.insert %b, %v[1] : vector<16xf32> into vector<2x16xf32>
      %r = vector.transfer_read %w2[%e, %k, %c16], %f0
          : memref<3x32x28xf32>, vector<16xf32>
      %m = vector.insert %r, %w[1] : vector<16xf32> into vector<2x16xf32>
      scf.yield %n, %m : vector<2x16xf32>, vector<2x16xf32>
    }
    vector.transfer_write %d#0, %out[%e, %c0, %c0] {in_bounds = [true, true]}
        : vector<2x16xf32>, memref<3x2x16xf32>
    vector.transfer_write %d#1, %out[%e, %c0, %c0] {in_bounds = [true, true]}
        : vector<2x16xf32>, memref<3x2x16xf32>
    scf.reduce
  }
  return
}

// -----

// The same with the second read at column 1 (not where the first one
// ends): not a tail; its loop prefetches its own next block in memory.

// CROSS-LABEL: func.func @past_row_gap
// CROSS: memref.prefetch %{{.*}} : memref<3072xf32>
// CROSS-NEXT: vector.transfer_read %{{.*}} : memref<3x32x32xf32>, vector<16xf32>
// CROSS-NOT: memref<3072xf32>
// CROSS: memref.prefetch %{{.*}} : memref<2688xf32>
// CROSS-NEXT: vector.transfer_read %{{.*}} : memref<3x32x28xf32>, vector<16xf32>
// CROSS: return
func.func @past_row_gap(%w1: memref<3x32x32xf32>, %w2: memref<3x32x28xf32>,
                            %out: memref<3x2x16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c3 = arith.constant 3 : index
  %c16 = arith.constant 16 : index
  %c32 = arith.constant 32 : index
  %f0 = arith.constant 0.0 : f32
  %two = arith.constant dense<0.0> : vector<2x16xf32>
  scf.parallel (%e) = (%c0) to (%c3) step (%c1) {
    %u = scf.for %k = %c0 to %c32 step %c1 iter_args(%v = %two)
        -> (vector<2x16xf32>) {
      %b = vector.transfer_read %w1[%e, %k, %c0], %f0 {in_bounds = [true]}
          : memref<3x32x32xf32>, vector<16xf32>
      %n = vector.insert %b, %v[0] : vector<16xf32> into vector<2x16xf32>
      scf.yield %n : vector<2x16xf32>
    }
    vector.transfer_write %u, %out[%e, %c0, %c0] {in_bounds = [true, true]}
        : vector<2x16xf32>, memref<3x2x16xf32>
    %d:2 = scf.for %k = %c0 to %c32 step %c1 iter_args(%v = %two, %w = %two)
        -> (vector<2x16xf32>, vector<2x16xf32>) {
      %b = vector.transfer_read %w2[%e, %k, %c0], %f0 {in_bounds = [true]}
          : memref<3x32x28xf32>, vector<16xf32>
      %n = vector.insert %b, %v[1] : vector<16xf32> into vector<2x16xf32>
      %r = vector.transfer_read %w2[%e, %k, %c1], %f0
          : memref<3x32x28xf32>, vector<16xf32>
      %m = vector.insert %r, %w[1] : vector<16xf32> into vector<2x16xf32>
      scf.yield %n, %m : vector<2x16xf32>, vector<2x16xf32>
    }
    vector.transfer_write %d#0, %out[%e, %c0, %c0] {in_bounds = [true, true]}
        : vector<2x16xf32>, memref<3x2x16xf32>
    vector.transfer_write %d#1, %out[%e, %c0, %c0] {in_bounds = [true, true]}
        : vector<2x16xf32>, memref<3x2x16xf32>
    scf.reduce
  }
  return
}

// -----

// A k loop of constant bounds that does not start at 0 nor step by 1: the
// start is clamped for its last k (2 + 136 x 3 = 410): 158207 - 410 x 64
// = 131967.

// CROSS-LABEL: func.func @strided_k
// CROSS: %[[LIMIT:.*]] = arith.constant 131967 : index
// CROSS: %[[BASE:.*]] = arith.minui %{{.*}}, %[[LIMIT]] : index
// CROSS: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %{{.*}} iter_args
// CROSS-NOT: arith.minui
// CROSS: memref.prefetch
// CROSS-NEXT: vector.transfer_read
func.func @strided_k(%w: memref<3x2x412x64xf32>, %e: index, %j: index,
                     %c: index) -> vector<6x16xf32> {
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %c412 = arith.constant 412 : index
  %f0 = arith.constant 0.0 : f32
  %init = arith.constant dense<0.0> : vector<6x16xf32>
  %r = scf.for %k = %c2 to %c412 step %c3 iter_args(%acc = %init)
      -> (vector<6x16xf32>) {
    %b = vector.transfer_read %w[%e, %j, %k, %c], %f0 {in_bounds = [true]}
        : memref<3x2x412x64xf32>, vector<16xf32>
    %n = vector.insert %b, %acc[0] : vector<16xf32> into vector<6x16xf32>
    scf.yield %n : vector<6x16xf32>
  }
  return %r : vector<6x16xf32>
}

// -----

// The next expert's first buffer prefetched from a tail whose k loop steps
// by 2 (not 0 to K by 1): each line is clamped in the loop, to the
// buffer's last element (3071), instead of one clamp before it.

// CROSS-LABEL: func.func @next_read_strided_k
// CROSS: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %{{.*}} iter_args
// CROSS: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %{{.*}} iter_args
// CROSS: %[[LAST:.*]] = arith.constant 3071 : index
// CROSS-NEXT: %[[AT:.*]] = arith.minui %{{.*}}, %[[LAST]] : index
// CROSS-NEXT: memref.prefetch %{{.*}}[%[[AT]]], {{.*}} : memref<3072xf32>
// CROSS: arith.minui
// CROSS-NEXT: memref.prefetch %{{.*}} : memref<3072xf32>
// CROSS-NEXT: vector.transfer_read %{{.*}} : memref<3x32x16xf32>, vector<16xf32>
func.func @next_read_strided_k(%w1: memref<3x32x32xf32>,
                               %w2: memref<3x32x16xf32>,
                               %out: memref<3x2x16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %c32 = arith.constant 32 : index
  %f0 = arith.constant 0.0 : f32
  %two = arith.constant dense<0.0> : vector<2x16xf32>
  scf.parallel (%e) = (%c0) to (%c3) step (%c1) {
    %u = scf.for %k = %c0 to %c32 step %c1 iter_args(%v = %two)
        -> (vector<2x16xf32>) {
      %b = vector.transfer_read %w1[%e, %k, %c0], %f0 {in_bounds = [true]}
          : memref<3x32x32xf32>, vector<16xf32>
      %n = vector.insert %b, %v[0] : vector<16xf32> into vector<2x16xf32>
      scf.yield %n : vector<2x16xf32>
    }
    vector.transfer_write %u, %out[%e, %c0, %c0] {in_bounds = [true, true]}
        : vector<2x16xf32>, memref<3x2x16xf32>
    %d = scf.for %k = %c0 to %c32 step %c2 iter_args(%v = %two)
        -> (vector<2x16xf32>) {
      %b = vector.transfer_read %w2[%e, %k, %c0], %f0 {in_bounds = [true]}
          : memref<3x32x16xf32>, vector<16xf32>
      %n = vector.insert %b, %v[1] : vector<16xf32> into vector<2x16xf32>
      scf.yield %n : vector<2x16xf32>
    }
    vector.transfer_write %d, %out[%e, %c0, %c0] {in_bounds = [true, true]}
        : vector<2x16xf32>, memref<3x2x16xf32>
    scf.reduce
  }
  return
}

// -----

// spread-tiles: a 6 x 64 tile's k loop directly in the loop over an
// expert's row tiles (step 6). The next panel's L = 1648 lines (412 x 64
// / 16) are spread over the S = ceil(rows / 6) * 412 k steps of all the
// tiles, c lines a step: the j-th prefetch of step k in tile t takes line
// ((t * 412 + k) * c * inc + j * inc) >> 20, inc = min(2^20, ((1648 <<
// 20) / S) / c) (1648 << 20 = 1728053248; computed in the tile, in the
// version that runs: no division before the row loop, which runs for
// experts without rows too), from the next panel's start
// clamped so that its last line is in the buffer (158208 - 1648 x 16 =
// 131840). The loop comes in versions by c: 1 where S >= 1648 (at least 4
// tiles), 2 where 2 S >= 1648, else 4 (ceil(1648 / 412): one tile).

// CROSS-LABEL: func.func @spread_panel_tiles
// CROSS-NOT: arith.shrui
// CROSS-COUNT-4: memref.prefetch
// CROSS-NOT: memref.prefetch
// CROSS: return

// SPREAD-LABEL: func.func @spread_panel_tiles
// SPREAD-SAME: (%[[W:[^:]*]]: memref<3x2x412x64xf32>, %[[E:[^:]*]]: index, %[[J:[^:]*]]: index, %[[ROWS:[^:]*]]: index
// SPREAD: %[[LO:.*]] = arith.constant 0 : index
// SPREAD: %[[SIX:.*]] = arith.constant 6 : index
// SPREAD: %[[MAXT:.*]] = arith.constant 16777216 : index
// SPREAD: %[[SPAN:.*]] = arith.subi %[[ROWS]], %[[LO]] : index
// SPREAD: %[[NT:.*]] = arith.ceildivui %[[SPAN]], %{{.*}} : index
// SPREAD: %[[TILES:.*]] = arith.minui %[[NT]], %[[MAXT]] : index
// SPREAD: %[[STEPS:.*]] = arith.muli %[[TILES]], %{{.*}} : index
// SPREAD: %[[NT1:.*]] = arith.maxui %[[TILES]], %{{.*}} : index
// SPREAD: %[[LASTT:.*]] = arith.subi %[[NT1]], %{{.*}} : index
// SPREAD-NOT: arith.divui
// SPREAD: scf.for %[[M:[^ ]*]] = %{{.*}} to %[[ROWS]] step %[[SIX]]
// SPREAD: %[[REL:.*]] = arith.subi %[[M]], %[[LO]] : index
// SPREAD: %[[T0:.*]] = arith.divui %[[REL]], %{{.*}} : index
// SPREAD: %[[TILE:.*]] = arith.minui %[[T0]], %[[LASTT]] : index
// SPREAD: %[[S1C:.*]] = arith.muli %[[STEPS]], %{{.*}} : index
// SPREAD: %[[NEED:.*]] = arith.constant 1648 : index
// SPREAD: %[[ENOUGH:.*]] = arith.cmpi uge, %[[S1C]], %[[NEED]] : index
// SPREAD: scf.if %[[ENOUGH]] -> (vector<6x64xf32>) {
// SPREAD: %[[FLAT:.*]] = memref.collapse_shape %[[W]]
// SPREAD: %[[PANEL:.*]] = arith.constant 26368 : index
// SPREAD: %[[EXPERT:.*]] = arith.constant 52736 : index
// SPREAD: %[[B0:.*]] = arith.muli %[[E]], %[[EXPERT]] : index
// SPREAD: %[[B1:.*]] = arith.addi %[[PANEL]], %[[B0]] : index
// SPREAD: %[[B2:.*]] = arith.muli %[[J]], %{{.*}} : index
// SPREAD: %[[B3:.*]] = arith.addi %[[B1]], %[[B2]] : index
// SPREAD: %[[NEXTP:.*]] = arith.addi %[[B3]], %{{.*}} : index
// SPREAD: %[[LINES20:.*]] = arith.constant 1728053248 : index
// SPREAD: %[[S1:.*]] = arith.maxui %[[STEPS]], %{{.*}} : index
// SPREAD: %[[Q:.*]] = arith.divui %[[LINES20]], %[[S1]] : index
// SPREAD: %[[ONE20:.*]] = arith.constant 1048576 : index
// SPREAD: %[[INC:.*]] = arith.minui %[[ONE20]], %[[Q]] : index
// SPREAD: %[[STEPINC:.*]] = arith.muli %[[INC]], %{{.*}} : index
// SPREAD: %[[KINC:.*]] = arith.muli %[[STEPINC]], %{{.*}} : index
// SPREAD: %[[FIRST:.*]] = arith.muli %[[TILE]], %[[KINC]] : index
// SPREAD: %[[LIMIT:.*]] = arith.constant 131840 : index
// SPREAD: %[[START:.*]] = arith.minui %[[NEXTP]], %[[LIMIT]] : index
// SPREAD: scf.for %[[K:[^ ]*]] =
// SPREAD: %[[KI:.*]] = arith.muli %[[K]], %[[STEPINC]] : index
// SPREAD: %[[FP:.*]] = arith.addi %[[FIRST]], %[[KI]] : index
// SPREAD: %[[BITS:.*]] = arith.constant 20 : index
// SPREAD: %[[LINE:.*]] = arith.shrui %[[FP]], %[[BITS]] : index
// SPREAD: %[[OFF:.*]] = arith.muli %[[LINE]], %{{.*}} : index
// SPREAD: %[[AT:.*]] = arith.addi %[[START]], %[[OFF]] : index
// SPREAD-NEXT: memref.prefetch %[[FLAT]][%[[AT]]], read, locality<2>, data : memref<158208xf32>
// SPREAD-NEXT: vector.transfer_read %[[W]][%[[E]], %[[J]], %[[K]], %{{.*}}]
// SPREAD: } else {
// SPREAD: %[[TWO:.*]] = arith.constant 2 : index
// SPREAD: %[[S2:.*]] = arith.muli %[[STEPS]], %[[TWO]] : index
// SPREAD: arith.cmpi uge, %[[S2]], %{{.*}} : index
// SPREAD: scf.if
// SPREAD: %[[Q2:.*]] = arith.divui %{{.*}}, %{{.*}} : index
// SPREAD: arith.divui %[[Q2]], %{{.*}} : index
// SPREAD: scf.for
// SPREAD-COUNT-2: memref.prefetch
// SPREAD-NEXT: vector.transfer_read %[[W]]
// SPREAD: } else {
// SPREAD: scf.for
// SPREAD-COUNT-4: arith.shrui
// SPREAD: vector.transfer_read %[[W]]
// SPREAD-NOT: memref.prefetch
// SPREAD: return
func.func @spread_panel_tiles(%w: memref<3x2x412x64xf32>, %e: index, %j: index,
                              %rows: index, %a: memref<?x412xf32>,
                              %out: memref<?x64xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c6 = arith.constant 6 : index
  %c412 = arith.constant 412 : index
  %f0 = arith.constant 0.0 : f32
  %init = arith.constant dense<0.0> : vector<6x64xf32>
  scf.for %m = %c0 to %rows step %c6 {
    %r = scf.for %k = %c0 to %c412 step %c1 iter_args(%acc = %init)
        -> (vector<6x64xf32>) {
      %b = vector.transfer_read %w[%e, %j, %k, %c0], %f0 {in_bounds = [true]}
          : memref<3x2x412x64xf32>, vector<64xf32>
      %x = vector.transfer_read %a[%m, %k], %f0 {in_bounds = [true]}
          : memref<?x412xf32>, vector<1xf32>
      %s = vector.extract %x[0] : f32 from vector<1xf32>
      %bs = vector.broadcast %s : f32 to vector<64xf32>
      %row = vector.extract %acc[0] : vector<64xf32> from vector<6x64xf32>
      %f = vector.fma %bs, %b, %row : vector<64xf32>
      %n = vector.insert %f, %acc[0] : vector<64xf32> into vector<6x64xf32>
      scf.yield %n : vector<6x64xf32>
    }
    %r0 = vector.extract %r[0] : vector<64xf32> from vector<6x64xf32>
    vector.transfer_write %r0, %out[%m, %c0] {in_bounds = [true]}
        : vector<64xf32>, memref<?x64xf32>
  }
  return
}

// -----

// spread-tiles with cross-blocks, an expert's panels [E, 2, 32, 64] and
// tail [E, 32, 64] in 4-row tiles: every block is 128 lines, so the
// versions by lines a step are 1 (at least 128 k steps: 4 tiles), 2 and
// 4 (ceil(128 / 32)). In the first, the up panels' last one spreads the
// tail's first block (e * 2048, clamped to 6144 - 128 x 16 = 4096), the
// other panel the next panel (clamped to 12288 - 2048 = 10240), and the
// tail the next expert's first panel ((e + 1) * 4096, clamped to 10240),
// one line a step.

// SPREAD-LABEL: func.func @spread_expert_pair
// SPREAD-SAME: (%[[P1:[^:]*]]: memref<3x2x32x64xf32>, %[[T2:[^:]*]]: memref<3x32x64xf32>
// SPREAD: scf.parallel (%[[E:[^)]*]]) =
// SPREAD: arith.cmpi uge, %{{.*}}, %{{.*}} : index
// SPREAD: scf.if
// SPREAD: scf.if
// SPREAD: memref.collapse_shape %[[T2]]
// SPREAD: %[[TS:.*]] = arith.muli %[[E]], %{{.*}} : index
// SPREAD: %[[L1:.*]] = arith.constant 4096 : index
// SPREAD: arith.minui %[[TS]], %[[L1]] : index
// SPREAD: scf.for
// SPREAD: arith.shrui
// SPREAD: memref.prefetch %{{.*}} : memref<6144xf32>
// SPREAD-NEXT: vector.transfer_read %[[P1]]
// SPREAD: } else {
// SPREAD: arith.constant 10240 : index
// SPREAD: scf.for
// SPREAD: arith.shrui
// SPREAD: memref.prefetch %{{.*}} : memref<12288xf32>
// SPREAD-NEXT: vector.transfer_read %[[P1]]
// SPREAD: } else {
// SPREAD: scf.if
// SPREAD: scf.if
// SPREAD-COUNT-2: memref.prefetch %{{.*}} : memref<6144xf32>
// SPREAD: } else {
// SPREAD-COUNT-2: memref.prefetch %{{.*}} : memref<12288xf32>
// SPREAD: } else {
// SPREAD: scf.if
// SPREAD-COUNT-4: memref.prefetch %{{.*}} : memref<6144xf32>
// SPREAD: } else {
// SPREAD-COUNT-4: memref.prefetch %{{.*}} : memref<12288xf32>
// SPREAD: arith.cmpi uge, %{{.*}}, %{{.*}} : index
// SPREAD: scf.if
// SPREAD: %[[E1:.*]] = arith.addi %[[E]], %{{.*}} : index
// SPREAD: %[[NS:.*]] = arith.muli %[[E1]], %{{.*}} : index
// SPREAD: %[[L2:.*]] = arith.constant 10240 : index
// SPREAD: arith.minui %[[NS]], %[[L2]] : index
// SPREAD: scf.for
// SPREAD: arith.shrui
// SPREAD: memref.prefetch %{{.*}} : memref<12288xf32>
// SPREAD-NEXT: vector.transfer_read %[[T2]]
// SPREAD: } else {
// SPREAD-COUNT-2: memref.prefetch %{{.*}} : memref<12288xf32>
// SPREAD-NEXT: vector.transfer_read %[[T2]]
// SPREAD: } else {
// SPREAD-COUNT-4: memref.prefetch %{{.*}} : memref<12288xf32>
// SPREAD-NEXT: vector.transfer_read %[[T2]]
func.func @spread_expert_pair(%p1: memref<3x2x32x64xf32>, %t2: memref<3x32x64xf32>,
                              %rows: index, %out: memref<3x4x64xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %c4 = arith.constant 4 : index
  %c32 = arith.constant 32 : index
  %f0 = arith.constant 0.0 : f32
  %four = arith.constant dense<0.0> : vector<4x64xf32>
  scf.parallel (%e) = (%c0) to (%c3) step (%c1) {
    scf.for %j = %c0 to %c2 step %c1 {
      scf.for %m = %c0 to %rows step %c4 {
        %u = scf.for %k = %c0 to %c32 step %c1 iter_args(%v = %four)
            -> (vector<4x64xf32>) {
          %b = vector.transfer_read %p1[%e, %j, %k, %c0], %f0 {in_bounds = [true]}
              : memref<3x2x32x64xf32>, vector<64xf32>
          %n = vector.insert %b, %v[0] : vector<64xf32> into vector<4x64xf32>
          scf.yield %n : vector<4x64xf32>
        }
        vector.transfer_write %u, %out[%e, %c0, %c0] {in_bounds = [true, true]}
            : vector<4x64xf32>, memref<3x4x64xf32>
      }
    }
    scf.for %m = %c0 to %rows step %c4 {
      %t = scf.for %k = %c0 to %c32 step %c1 iter_args(%v = %four)
          -> (vector<4x64xf32>) {
        %b = vector.transfer_read %t2[%e, %k, %c0], %f0 {in_bounds = [true]}
            : memref<3x32x64xf32>, vector<64xf32>
        %n = vector.insert %b, %v[1] : vector<64xf32> into vector<4x64xf32>
        scf.yield %n : vector<4x64xf32>
      }
      vector.transfer_write %t, %out[%e, %c0, %c0] {in_bounds = [true, true]}
          : vector<4x64xf32>, memref<3x4x64xf32>
    }
    scf.reduce
  }
  return
}

// -----

// A 48-column panel (3 lines a row): L = 64 x 48 / 16 = 192 lines over K =
// 64, so the versions are 1, 2 and 3 lines a step (ceil(192 / 64), not a
// power of two), the last's step ((192 << 20) / S) / 3, computed in the
// version (no division before the row loop).

// SPREAD-LABEL: func.func @spread_three_lines
// SPREAD: scf.for
// SPREAD: arith.constant 192 : index
// SPREAD: scf.if
// SPREAD: scf.for
// SPREAD-COUNT-1: memref.prefetch
// SPREAD-NEXT: vector.transfer_read
// SPREAD: } else {
// SPREAD: scf.if
// SPREAD: scf.for
// SPREAD-COUNT-2: memref.prefetch
// SPREAD-NEXT: vector.transfer_read
// SPREAD: } else {
// SPREAD: %[[Q3:.*]] = arith.divui %c201326592{{.*}}, %{{.*}} : index
// SPREAD: %[[THREE:.*]] = arith.constant 3 : index
// SPREAD: arith.divui %[[Q3]], %[[THREE]] : index
// SPREAD: scf.for
// SPREAD-COUNT-3: memref.prefetch
// SPREAD-NEXT: vector.transfer_read
// SPREAD-NOT: memref.prefetch
// SPREAD: return
func.func @spread_three_lines(%w: memref<3x2x64x48xf32>, %e: index, %j: index,
                              %rows: index, %out: memref<?x48xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c6 = arith.constant 6 : index
  %c64 = arith.constant 64 : index
  %f0 = arith.constant 0.0 : f32
  %init = arith.constant dense<0.0> : vector<6x48xf32>
  scf.for %m = %c0 to %rows step %c6 {
    %r = scf.for %k = %c0 to %c64 step %c1 iter_args(%acc = %init)
        -> (vector<6x48xf32>) {
      %b = vector.transfer_read %w[%e, %j, %k, %c0], %f0 {in_bounds = [true]}
          : memref<3x2x64x48xf32>, vector<48xf32>
      %n = vector.insert %b, %acc[0] : vector<48xf32> into vector<6x48xf32>
      scf.yield %n : vector<6x48xf32>
    }
    %r0 = vector.extract %r[0] : vector<48xf32> from vector<6x48xf32>
    vector.transfer_write %r0, %out[%m, %c0] {in_bounds = [true]}
        : vector<48xf32>, memref<?x48xf32>
  }
  return
}

// -----

// Not spread (the prefetches are those without spread-tiles, a row of
// the next block a step): a row loop of step 1; a loop of step 2 whose
// iterations read other blocks (the read's panel is its induction
// variable); row tiles whose k loop reads two buffers.

// SPREAD-LABEL: func.func @no_spread
// SPREAD-NOT: arith.shrui
// SPREAD-NOT: scf.if
// SPREAD: return
func.func @no_spread(%w: memref<3x2x64x64xf32>, %v: memref<3x2x64x64xf32>,
                     %e: index, %j: index, %rows: index,
                     %out: memref<?x64xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c6 = arith.constant 6 : index
  %c64 = arith.constant 64 : index
  %f0 = arith.constant 0.0 : f32
  %init = arith.constant dense<0.0> : vector<6x64xf32>
  // A row loop of step 1.
  scf.for %m = %c0 to %rows step %c1 {
    %r = scf.for %k = %c0 to %c64 step %c1 iter_args(%acc = %init)
        -> (vector<6x64xf32>) {
      %b = vector.transfer_read %w[%e, %j, %k, %c0], %f0 {in_bounds = [true]}
          : memref<3x2x64x64xf32>, vector<64xf32>
      %n = vector.insert %b, %acc[0] : vector<64xf32> into vector<6x64xf32>
      scf.yield %n : vector<6x64xf32>
    }
    %r0 = vector.extract %r[0] : vector<64xf32> from vector<6x64xf32>
    vector.transfer_write %r0, %out[%m, %c0] {in_bounds = [true]}
        : vector<64xf32>, memref<?x64xf32>
  }
  // A loop of step 2 whose iterations read other blocks (its induction
  // variable is the panel).
  scf.for %p = %c0 to %c2 step %c2 {
    %r = scf.for %k = %c0 to %c64 step %c1 iter_args(%acc = %init)
        -> (vector<6x64xf32>) {
      %b = vector.transfer_read %w[%e, %p, %k, %c0], %f0 {in_bounds = [true]}
          : memref<3x2x64x64xf32>, vector<64xf32>
      %n = vector.insert %b, %acc[0] : vector<64xf32> into vector<6x64xf32>
      scf.yield %n : vector<6x64xf32>
    }
    %r0 = vector.extract %r[0] : vector<64xf32> from vector<6x64xf32>
    vector.transfer_write %r0, %out[%p, %c0] {in_bounds = [true]}
        : vector<64xf32>, memref<?x64xf32>
  }
  // Row tiles whose k loop reads two buffers.
  scf.for %m = %c0 to %rows step %c6 {
    %r = scf.for %k = %c0 to %c64 step %c1 iter_args(%acc = %init)
        -> (vector<6x64xf32>) {
      %b = vector.transfer_read %w[%e, %j, %k, %c0], %f0 {in_bounds = [true]}
          : memref<3x2x64x64xf32>, vector<64xf32>
      %c = vector.transfer_read %v[%e, %j, %k, %c0], %f0 {in_bounds = [true]}
          : memref<3x2x64x64xf32>, vector<64xf32>
      %s = arith.addf %b, %c : vector<64xf32>
      %n = vector.insert %s, %acc[0] : vector<64xf32> into vector<6x64xf32>
      scf.yield %n : vector<6x64xf32>
    }
    %r0 = vector.extract %r[0] : vector<64xf32> from vector<6x64xf32>
    vector.transfer_write %r0, %out[%m, %c0] {in_bounds = [true]}
        : vector<64xf32>, memref<?x64xf32>
  }
  return
}

// -----

// With stores, a multi-row tile's store after its k loop (through the
// epilogue's ops) has its output lines prefetched for writing before the
// loop: each of the 2 rows from column 4 (a 20-column row: its 16 columns
// reach a second line, whose start column 4 + 15 = 19 is). Without the
// option, none.

// STORES-LABEL: func.func @tile_stores
// STORES-SAME: %[[C:[^:]*]]: memref<?x20xf32>, %{{[^:]*}}: memref<20xf32>, %[[I:[^:]*]]: index
// STORES: memref.prefetch %[[C]][%[[I]], %[[C4:.*]]], write, locality<3>, data
// STORES: %[[C15:.*]] = arith.constant 15 : index
// STORES: %[[END:.*]] = arith.addi %[[C4]], %[[C15]] : index
// STORES: memref.prefetch %[[C]][%[[I]], %[[END]]], write
// STORES: %[[I1:.*]] = arith.addi %[[I]], %{{.*}} : index
// STORES: memref.prefetch %[[C]][%[[I1]], %[[C4]]], write
// STORES: %[[END1:.*]] = arith.addi %[[C4]], %[[C15]] : index
// STORES: memref.prefetch %[[C]][%[[I1]], %[[END1]]], write
// STORES-NOT: memref.prefetch
// STORES: scf.for
// STORES-NOT: memref.prefetch
// STORES: vector.transfer_write
// CHECK-LABEL: func.func @tile_stores
// CHECK-NOT: memref.prefetch
// CHECK: return
func.func @tile_stores(%a: memref<?x16xf32>, %c: memref<?x20xf32>, %bias: memref<20xf32>, %i: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c8 = arith.constant 8 : index
  %f0 = arith.constant 0.0 : f32
  %zero = arith.constant dense<0.0> : vector<2x16xf32>
  %r = scf.for %k = %c0 to %c8 step %c1 iter_args(%acc = %zero) -> (vector<2x16xf32>) {
    %v = vector.transfer_read %a[%i, %c0], %f0 {in_bounds = [true, true]} : memref<?x16xf32>, vector<2x16xf32>
    %s = arith.addf %acc, %v : vector<2x16xf32>
    scf.yield %s : vector<2x16xf32>
  }
  %b = vector.transfer_read %bias[%c4], %f0 {in_bounds = [true]} : memref<20xf32>, vector<16xf32>
  %bb = vector.broadcast %b : vector<16xf32> to vector<2x16xf32>
  %e = arith.addf %r, %bb : vector<2x16xf32>
  vector.transfer_write %e, %c[%i, %c4] {in_bounds = [true, true]} : vector<2x16xf32>, memref<?x20xf32>
  return
}

// -----

// Left alone: a one-row tile's result stored as two rows, a store at a
// row index made after the loop, a masked store, a store not in bounds,
// a store into a buffer made after the loop, a store inside a region.

// STORES-LABEL: func.func @not_tile_stores
// STORES-NOT: memref.prefetch
// STORES: return
func.func @not_tile_stores(%a: memref<?x16xf32>, %c: memref<?x20xf32>, %i: index, %m: vector<2x16xi1>, %b: i1) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c8 = arith.constant 8 : index
  %f0 = arith.constant 0.0 : f32
  %zero = arith.constant dense<0.0> : vector<2x16xf32>
  %one = arith.constant dense<0.0> : vector<16xf32>
  // A one-row tile's result, stored as two rows.
  %r1 = scf.for %k = %c0 to %c8 step %c1 iter_args(%acc = %one) -> (vector<16xf32>) {
    %v = vector.transfer_read %a[%i, %c0], %f0 {in_bounds = [true]} : memref<?x16xf32>, vector<16xf32>
    %s = arith.addf %acc, %v : vector<16xf32>
    scf.yield %s : vector<16xf32>
  }
  %r2 = vector.broadcast %r1 : vector<16xf32> to vector<2x16xf32>
  vector.transfer_write %r2, %c[%i, %c4] {in_bounds = [true, true]} : vector<2x16xf32>, memref<?x20xf32>
  %r = scf.for %k = %c0 to %c8 step %c1 iter_args(%acc = %zero) -> (vector<2x16xf32>) {
    %v = vector.transfer_read %a[%i, %c0], %f0 {in_bounds = [true, true]} : memref<?x16xf32>, vector<2x16xf32>
    %s = arith.addf %acc, %v : vector<2x16xf32>
    scf.yield %s : vector<2x16xf32>
  }
  // A row index made after the loop.
  %j = arith.addi %i, %c1 : index
  vector.transfer_write %r, %c[%j, %c4] {in_bounds = [true, true]} : vector<2x16xf32>, memref<?x20xf32>
  // A masked store.
  vector.transfer_write %r, %c[%i, %c4], %m {in_bounds = [true, true]} : vector<2x16xf32>, memref<?x20xf32>
  // A store not in bounds.
  vector.transfer_write %r, %c[%i, %c4] {in_bounds = [true, false]} : vector<2x16xf32>, memref<?x20xf32>
  // A buffer made after the loop.
  %d = memref.alloc(%i) : memref<?x20xf32>
  vector.transfer_write %r, %d[%i, %c4] {in_bounds = [true, true]} : vector<2x16xf32>, memref<?x20xf32>
  // A store inside a region.
  scf.if %b {
    vector.transfer_write %r, %c[%i, %c4] {in_bounds = [true, true]} : vector<2x16xf32>, memref<?x20xf32>
  }
  return
}

// -----

// A 64-column store into rows of 412 floats (rank 3: an expert's slot
// rows): columns 0, 16, 32, 48 of each of the 3 rows, and 63 (the row's
// last line when it does not start on one). f64 rows (8 to a line), a
// vector of 8: columns 0 and 7 of each of the 2 rows.

// STORES-LABEL: func.func @wide_rows
// STORES-COUNT-15: memref.prefetch %{{.*}}, write, locality<3>, data : memref<2x?x412xf32>
// STORES-NOT: memref.prefetch
// STORES: scf.for
// STORES-LABEL: func.func @f64_rows
// STORES-COUNT-4: memref.prefetch %{{.*}}, write, locality<3>, data : memref<?x9xf64>
// STORES-NOT: memref.prefetch
// STORES: scf.for
func.func @wide_rows(%a: memref<?x64xf32>, %c: memref<2x?x412xf32>, %e: index, %i: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %c100 = arith.constant 100 : index
  %f0 = arith.constant 0.0 : f32
  %zero = arith.constant dense<0.0> : vector<3x64xf32>
  %r = scf.for %k = %c0 to %c8 step %c1 iter_args(%acc = %zero) -> (vector<3x64xf32>) {
    %v = vector.transfer_read %a[%i, %c0], %f0 {in_bounds = [true, true]} : memref<?x64xf32>, vector<3x64xf32>
    %s = arith.addf %acc, %v : vector<3x64xf32>
    scf.yield %s : vector<3x64xf32>
  }
  vector.transfer_write %r, %c[%e, %i, %c100] {in_bounds = [true, true]} : vector<3x64xf32>, memref<2x?x412xf32>
  return
}
func.func @f64_rows(%a: memref<?x8xf64>, %c: memref<?x9xf64>, %i: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %f0 = arith.constant 0.0 : f64
  %zero = arith.constant dense<0.0> : vector<2x8xf64>
  %r = scf.for %k = %c0 to %c8 step %c1 iter_args(%acc = %zero) -> (vector<2x8xf64>) {
    %v = vector.transfer_read %a[%i, %c0], %f0 {in_bounds = [true, true]} : memref<?x8xf64>, vector<2x8xf64>
    %s = arith.addf %acc, %v : vector<2x8xf64>
    scf.yield %s : vector<2x8xf64>
  }
  vector.transfer_write %r, %c[%i, %c1] {in_bounds = [true, true]} : vector<2x8xf64>, memref<?x9xf64>
  return
}

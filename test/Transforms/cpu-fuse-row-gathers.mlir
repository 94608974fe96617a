// RUN: moe-opt %s --moe-cpu-fuse-row-gathers --split-input-file | FileCheck %s

// Buffers as moe-lower-to-host-abi leaves them: descriptors built from a
// pointer (an input's, loaded from the frame, or a workspace allocation's)
// and cast to memrefs. The gather copies row perm[i] of %x (columns 4..11)
// into row i of %b; the tiles read %b four rows at a time, one row slice at
// a time, and element-wise.

// CHECK-LABEL: func.func @fused
// CHECK-SAME: (%[[FRAME:.*]]: !llvm.ptr, %[[N:.*]]: index)
// CHECK: %[[X:.*]] = builtin.unrealized_conversion_cast %{{.*}} to memref<?x12xf32>
// CHECK: %[[PERM:.*]] = builtin.unrealized_conversion_cast %{{.*}} to memref<?xi32>
// The gathered buffer and its allocation are gone: only %c's is left.
// CHECK-COUNT-1: llvm.call @__moe_workspace_alloc
// CHECK-NOT: llvm.call @__moe_workspace_alloc
// CHECK-NOT: linalg.copy
// The gather loop keeps its bounds check, nothing else.
// CHECK: scf.parallel (%[[I:[^)]+]]) =
// CHECK-NEXT: %[[V:.*]] = memref.load %[[PERM]][%[[I]]]
// CHECK-NEXT: %[[BAD:.*]] = arith.cmpi slt, %[[V]]
// CHECK-NEXT: scf.if %[[BAD]]
// CHECK-NOT: memref.subview
// CHECK: scf.reduce
// Row m + j of the tile is row perm[m + j] of %x, computed outside the k
// loop.
// CHECK: scf.for %[[M:[^ ]+]] = %{{.*}} to %[[N]] step
// CHECK-DAG: %[[P0:.*]] = memref.load %[[PERM]][%[[M]]]
// CHECK-DAG: %[[R0:.*]] = arith.index_cast %[[P0]]
// CHECK-DAG: %[[M3:.*]] = arith.addi %[[M]], %c3{{(_[0-9]+)?}} : index
// CHECK-DAG: %[[P3:.*]] = memref.load %[[PERM]][%[[M3]]]
// CHECK-DAG: %[[R3:.*]] = arith.index_cast %[[P3]]
// CHECK: scf.for %[[K:[^ ]+]] =
// CHECK-NOT: memref.load %[[PERM]]
// CHECK: %[[COL0:.*]] = arith.addi %{{.*}}, %[[K]]
// CHECK: %[[A0:.*]] = vector.transfer_read %[[X]][%[[R0]], %[[COL0]]], %{{.*}} {in_bounds = [true]} : memref<?x12xf32>, vector<1xf32>
// CHECK: vector.insert %[[A0]], %{{.*}} [0] : vector<1xf32> into vector<4x1xf32>
// CHECK-COUNT-2: vector.insert
// CHECK: %[[A3:.*]] = vector.transfer_read %[[X]][%[[R3]], %{{.*}}]
// CHECK: vector.insert %[[A3]], %{{.*}} [3] : vector<1xf32> into vector<4x1xf32>
// CHECK: scf.yield
// CHECK: %[[WHOLE:.*]] = vector.transfer_read %[[X]][%[[R0]], %{{.*}}], %{{.*}} {in_bounds = [true]} : memref<?x12xf32>, vector<8xf32>
// CHECK: memref.load %[[X]][%[[R0]], %{{.*}}] : memref<?x12xf32>
// CHECK-NOT: memref<?x8xf32>, vector
// CHECK: return

!d1 = !llvm.struct<(ptr, ptr, i64, array<1 x i64>, array<1 x i64>)>
!d2 = !llvm.struct<(ptr, ptr, i64, array<2 x i64>, array<2 x i64>)>
llvm.func @__moe_workspace_alloc(!llvm.ptr, i64) -> !llvm.ptr

func.func @fused(%frame: !llvm.ptr, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c8 = arith.constant 8 : index
  %c2_i32 = arith.constant 2 : i32
  %c0_i32 = arith.constant 0 : i32
  %pad = arith.constant 0.0 : f32
  %zero = arith.constant dense<0.0> : vector<4x1xf32>
  %bytes = arith.constant 4096 : i64
  %n64 = arith.index_cast %n : index to i64
  %u1 = llvm.mlir.poison : !d1
  %u2 = llvm.mlir.poison : !d2
  %xp = llvm.load %frame : !llvm.ptr -> !llvm.ptr
  %x0 = llvm.insertvalue %xp, %u2[0] : !d2
  %x1 = llvm.insertvalue %xp, %x0[1] : !d2
  %x = builtin.unrealized_conversion_cast %x1 : !d2 to memref<?x12xf32>
  %pg = llvm.getelementptr %frame[8] : (!llvm.ptr) -> !llvm.ptr, i8
  %pp = llvm.load %pg : !llvm.ptr -> !llvm.ptr
  %p0 = llvm.insertvalue %pp, %u1[0] : !d1
  %p1 = llvm.insertvalue %pp, %p0[1] : !d1
  %perm = builtin.unrealized_conversion_cast %p1 : !d1 to memref<?xi32>
  %bp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %b0 = llvm.insertvalue %bp, %u2[0] : !d2
  %b1 = llvm.insertvalue %bp, %b0[1] : !d2
  %b2 = llvm.insertvalue %n64, %b1[3, 0] : !d2
  %b = builtin.unrealized_conversion_cast %b2 : !d2 to memref<?x8xf32>
  %cp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %cd0 = llvm.insertvalue %cp, %u2[0] : !d2
  %cd1 = llvm.insertvalue %cp, %cd0[1] : !d2
  %c = builtin.unrealized_conversion_cast %cd1 : !d2 to memref<?x8xf32>
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    %v = memref.load %perm[%i] : memref<?xi32>
    %bad = arith.cmpi slt, %v, %c0_i32 : i32
    scf.if %bad {
      %table = llvm.load %frame : !llvm.ptr -> !llvm.ptr
      %slot = llvm.getelementptr %table[8] : (!llvm.ptr) -> !llvm.ptr, i8
      %report = llvm.load %slot : !llvm.ptr -> !llvm.ptr
      llvm.call %report(%frame, %c2_i32) : !llvm.ptr, (!llvm.ptr, i32) -> ()
    }
    %r = arith.index_cast %v : i32 to index
    %row = memref.subview %x[%r, 4] [1, 8] [1, 1]
        : memref<?x12xf32> to memref<1x8xf32, strided<[12, 1], offset: ?>>
    %dst = memref.subview %b[%i, 0] [1, 8] [1, 1]
        : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    linalg.copy ins(%row : memref<1x8xf32, strided<[12, 1], offset: ?>>)
                outs(%dst : memref<1x8xf32, strided<[8, 1], offset: ?>>)
    scf.reduce
  }
  scf.for %m = %c0 to %n step %c4 {
    %t = scf.for %k = %c0 to %c8 step %c1 iter_args(%acc = %zero) -> (vector<4x1xf32>) {
      %a = vector.transfer_read %b[%m, %k], %pad {in_bounds = [true, true]}
          : memref<?x8xf32>, vector<4x1xf32>
      %s = arith.addf %a, %acc : vector<4x1xf32>
      scf.yield %s : vector<4x1xf32>
    }
    vector.transfer_write %t, %c[%m, %c0] {in_bounds = [true, true]}
        : vector<4x1xf32>, memref<?x8xf32>
    %whole = vector.transfer_read %b[%m, %c0], %pad {in_bounds = [true]}
        : memref<?x8xf32>, vector<8xf32>
    vector.transfer_write %whole, %c[%m, %c0] {in_bounds = [true]}
        : vector<8xf32>, memref<?x8xf32>
    %e = memref.load %b[%m, %c1] : memref<?x8xf32>
    memref.store %e, %c[%m, %c1] : memref<?x8xf32>
  }
  return
}

// -----

// A row index defined before the gather: its clones go before the read,
// after the gather. A gather loop with no check left is erased.

// A read under an scf.if: its row's index loads stay under it (they may
// only run where the read does).

// CHECK-LABEL: func.func @guarded
// CHECK: scf.if
// CHECK-NEXT: memref.load
// CHECK: vector.transfer_read %{{.*}} : memref<?x8xf32>, vector<8xf32>
// CHECK-LABEL: func.func @row_before
// CHECK-NOT: linalg.copy
// CHECK-NOT: scf.for
// CHECK: %[[P:.*]] = memref.load %{{.*}}[%[[C0:.*]]] : memref<?xi32>
// CHECK: %[[R:.*]] = arith.index_cast %[[P]]
// CHECK: vector.transfer_read %{{.*}}[%[[R]], %{{.*}}]{{.*}}: memref<?x8xf32>, vector<8xf32>

!d1 = !llvm.struct<(ptr, ptr, i64, array<1 x i64>, array<1 x i64>)>
!d2 = !llvm.struct<(ptr, ptr, i64, array<2 x i64>, array<2 x i64>)>
llvm.func @__moe_workspace_alloc(!llvm.ptr, i64) -> !llvm.ptr

func.func @guarded(%frame: !llvm.ptr, %n: index, %m: index, %go: i1) -> vector<8xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %pad = arith.constant 0.0 : f32
  %bytes = arith.constant 4096 : i64
  %n64 = arith.index_cast %n : index to i64
  %u1 = llvm.mlir.poison : !d1
  %u2 = llvm.mlir.poison : !d2
  %xp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %x0 = llvm.insertvalue %xp, %u2[0] : !d2
  %x1 = llvm.insertvalue %xp, %x0[1] : !d2
  %x = builtin.unrealized_conversion_cast %x1 : !d2 to memref<?x8xf32>
  %pp = llvm.load %frame : !llvm.ptr -> !llvm.ptr
  %p0 = llvm.insertvalue %pp, %u1[0] : !d1
  %p1 = llvm.insertvalue %pp, %p0[1] : !d1
  %perm = builtin.unrealized_conversion_cast %p1 : !d1 to memref<?xi32>
  %bp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %b0 = llvm.insertvalue %bp, %u2[0] : !d2
  %b1 = llvm.insertvalue %bp, %b0[1] : !d2
  %b2 = llvm.insertvalue %n64, %b1[3, 0] : !d2
  %b = builtin.unrealized_conversion_cast %b2 : !d2 to memref<?x8xf32>
  scf.for %i = %c0 to %n step %c1 {
    %v = memref.load %perm[%i] : memref<?xi32>
    %r = arith.index_cast %v : i32 to index
    %row = memref.subview %x[%r, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    %dst = memref.subview %b[%i, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    linalg.copy ins(%row : memref<1x8xf32, strided<[8, 1], offset: ?>>) outs(%dst : memref<1x8xf32, strided<[8, 1], offset: ?>>)
  }
  %got = scf.if %go -> (vector<8xf32>) {
    %row = vector.transfer_read %b[%m, %c0], %pad {in_bounds = [true]} : memref<?x8xf32>, vector<8xf32>
    scf.yield %row : vector<8xf32>
  } else {
    %zero = vector.broadcast %pad : f32 to vector<8xf32>
    scf.yield %zero : vector<8xf32>
  }
  return %got : vector<8xf32>
}

func.func @row_before(%frame: !llvm.ptr, %n: index) -> vector<8xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %pad = arith.constant 0.0 : f32
  %bytes = arith.constant 4096 : i64
  %n64 = arith.index_cast %n : index to i64
  %u1 = llvm.mlir.poison : !d1
  %u2 = llvm.mlir.poison : !d2
  %xp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %x0 = llvm.insertvalue %xp, %u2[0] : !d2
  %x1 = llvm.insertvalue %xp, %x0[1] : !d2
  %x = builtin.unrealized_conversion_cast %x1 : !d2 to memref<?x8xf32>
  %pp = llvm.load %frame : !llvm.ptr -> !llvm.ptr
  %p0 = llvm.insertvalue %pp, %u1[0] : !d1
  %p1 = llvm.insertvalue %pp, %p0[1] : !d1
  %perm = builtin.unrealized_conversion_cast %p1 : !d1 to memref<?xi32>
  %bp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %b0 = llvm.insertvalue %bp, %u2[0] : !d2
  %b1 = llvm.insertvalue %bp, %b0[1] : !d2
  %b2 = llvm.insertvalue %n64, %b1[3, 0] : !d2
  %b = builtin.unrealized_conversion_cast %b2 : !d2 to memref<?x8xf32>
  scf.for %i = %c0 to %n step %c1 {
    %v = memref.load %perm[%i] : memref<?xi32>
    %r = arith.index_cast %v : i32 to index
    %row = memref.subview %x[%r, 0] [1, 8] [1, 1]
        : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    %dst = memref.subview %b[%i, 0] [1, 8] [1, 1]
        : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    memref.copy %row, %dst : memref<1x8xf32, strided<[8, 1], offset: ?>>
        to memref<1x8xf32, strided<[8, 1], offset: ?>>
  }
  %first = vector.transfer_read %b[%c0, %c0], %pad {in_bounds = [true]}
      : memref<?x8xf32>, vector<8xf32>
  return %first : vector<8xf32>
}

// -----

// Refused: each function breaks one condition, and keeps its copy.

// CHECK-LABEL: func.func @x_written
// CHECK: linalg.copy
// CHECK-LABEL: func.func @perm_written
// CHECK: linalg.copy
// CHECK-LABEL: func.func @unknown_write
// CHECK: linalg.copy
// CHECK-LABEL: func.func @same_allocation
// CHECK: linalg.copy
// CHECK-LABEL: func.func @other_call
// CHECK: linalg.copy
// CHECK-LABEL: func.func @other_use
// CHECK: linalg.copy
// CHECK-LABEL: func.func @read_before
// CHECK: linalg.copy
// CHECK-LABEL: func.func @not_in_bounds
// CHECK: linalg.copy
// CHECK-LABEL: func.func @rows_differ
// CHECK: linalg.copy
// CHECK-LABEL: func.func @step_two
// CHECK: linalg.copy
// CHECK-LABEL: func.func @offset_written_in_loop
// CHECK: linalg.copy
// CHECK-LABEL: func.func @x_from_argument
// CHECK: linalg.copy
// CHECK-LABEL: func.func @x_written_by_linalg
// CHECK: linalg.copy
// CHECK-LABEL: func.func @b_alias
// CHECK: linalg.copy
// CHECK-LABEL: func.func @parallel_for_call
// CHECK: linalg.copy
// CHECK-LABEL: func.func @offset_written_by_linalg
// CHECK: linalg.copy
// CHECK-LABEL: func.func @masked_read
// CHECK: linalg.copy
// CHECK-LABEL: func.func @scalable
// CHECK: linalg.copy
// CHECK-LABEL: func.func @vec_elem
// CHECK: linalg.copy
// CHECK-LABEL: func.func @rank0
// CHECK: memref.copy

!d1 = !llvm.struct<(ptr, ptr, i64, array<1 x i64>, array<1 x i64>)>
!d2 = !llvm.struct<(ptr, ptr, i64, array<2 x i64>, array<2 x i64>)>
llvm.func @__moe_workspace_alloc(!llvm.ptr, i64) -> !llvm.ptr
llvm.func @other(!llvm.ptr)

// The pieces every case shares: %x (workspace), %perm (input), %b
// (workspace, %n rows), %c (workspace), the gather, and a read of %b.
func.func @x_written(%frame: !llvm.ptr, %n: index, %f: f32) -> vector<8xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %pad = arith.constant 0.0 : f32
  %bytes = arith.constant 4096 : i64
  %n64 = arith.index_cast %n : index to i64
  %u1 = llvm.mlir.poison : !d1
  %u2 = llvm.mlir.poison : !d2
  %xp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %x0 = llvm.insertvalue %xp, %u2[0] : !d2
  %x1 = llvm.insertvalue %xp, %x0[1] : !d2
  %x = builtin.unrealized_conversion_cast %x1 : !d2 to memref<?x8xf32>
  %pp = llvm.load %frame : !llvm.ptr -> !llvm.ptr
  %p0 = llvm.insertvalue %pp, %u1[0] : !d1
  %p1 = llvm.insertvalue %pp, %p0[1] : !d1
  %perm = builtin.unrealized_conversion_cast %p1 : !d1 to memref<?xi32>
  %bp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %b0 = llvm.insertvalue %bp, %u2[0] : !d2
  %b1 = llvm.insertvalue %bp, %b0[1] : !d2
  %b2 = llvm.insertvalue %n64, %b1[3, 0] : !d2
  %b = builtin.unrealized_conversion_cast %b2 : !d2 to memref<?x8xf32>
  scf.for %i = %c0 to %n step %c1 {
    %v = memref.load %perm[%i] : memref<?xi32>
    %r = arith.index_cast %v : i32 to index
    %row = memref.subview %x[%r, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    %dst = memref.subview %b[%i, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    linalg.copy ins(%row : memref<1x8xf32, strided<[8, 1], offset: ?>>) outs(%dst : memref<1x8xf32, strided<[8, 1], offset: ?>>)
  }
  // X changes after the gather: the copy holds the old rows.
  memref.store %f, %x[%c0, %c0] : memref<?x8xf32>
  %first = vector.transfer_read %b[%c0, %c0], %pad {in_bounds = [true]} : memref<?x8xf32>, vector<8xf32>
  return %first : vector<8xf32>
}

func.func @perm_written(%frame: !llvm.ptr, %n: index, %f: i32) -> vector<8xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %pad = arith.constant 0.0 : f32
  %bytes = arith.constant 4096 : i64
  %n64 = arith.index_cast %n : index to i64
  %u1 = llvm.mlir.poison : !d1
  %u2 = llvm.mlir.poison : !d2
  %xp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %x0 = llvm.insertvalue %xp, %u2[0] : !d2
  %x1 = llvm.insertvalue %xp, %x0[1] : !d2
  %x = builtin.unrealized_conversion_cast %x1 : !d2 to memref<?x8xf32>
  %pp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %p0 = llvm.insertvalue %pp, %u1[0] : !d1
  %p1 = llvm.insertvalue %pp, %p0[1] : !d1
  %perm = builtin.unrealized_conversion_cast %p1 : !d1 to memref<?xi32>
  %bp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %b0 = llvm.insertvalue %bp, %u2[0] : !d2
  %b1 = llvm.insertvalue %bp, %b0[1] : !d2
  %b2 = llvm.insertvalue %n64, %b1[3, 0] : !d2
  %b = builtin.unrealized_conversion_cast %b2 : !d2 to memref<?x8xf32>
  scf.for %i = %c0 to %n step %c1 {
    %v = memref.load %perm[%i] : memref<?xi32>
    %r = arith.index_cast %v : i32 to index
    %row = memref.subview %x[%r, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    %dst = memref.subview %b[%i, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    linalg.copy ins(%row : memref<1x8xf32, strided<[8, 1], offset: ?>>) outs(%dst : memref<1x8xf32, strided<[8, 1], offset: ?>>)
  }
  // The index buffer changes after the gather.
  memref.store %f, %perm[%c0] : memref<?xi32>
  %first = vector.transfer_read %b[%c0, %c0], %pad {in_bounds = [true]} : memref<?x8xf32>, vector<8xf32>
  return %first : vector<8xf32>
}

func.func @unknown_write(%frame: !llvm.ptr, %n: index, %other: memref<4xf32>, %f: f32) -> vector<8xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %pad = arith.constant 0.0 : f32
  %bytes = arith.constant 4096 : i64
  %n64 = arith.index_cast %n : index to i64
  %u1 = llvm.mlir.poison : !d1
  %u2 = llvm.mlir.poison : !d2
  %xp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %x0 = llvm.insertvalue %xp, %u2[0] : !d2
  %x1 = llvm.insertvalue %xp, %x0[1] : !d2
  %x = builtin.unrealized_conversion_cast %x1 : !d2 to memref<?x8xf32>
  %pp = llvm.load %frame : !llvm.ptr -> !llvm.ptr
  %p0 = llvm.insertvalue %pp, %u1[0] : !d1
  %p1 = llvm.insertvalue %pp, %p0[1] : !d1
  %perm = builtin.unrealized_conversion_cast %p1 : !d1 to memref<?xi32>
  %bp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %b0 = llvm.insertvalue %bp, %u2[0] : !d2
  %b1 = llvm.insertvalue %bp, %b0[1] : !d2
  %b2 = llvm.insertvalue %n64, %b1[3, 0] : !d2
  %b = builtin.unrealized_conversion_cast %b2 : !d2 to memref<?x8xf32>
  scf.for %i = %c0 to %n step %c1 {
    %v = memref.load %perm[%i] : memref<?xi32>
    %r = arith.index_cast %v : i32 to index
    %row = memref.subview %x[%r, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    %dst = memref.subview %b[%i, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    linalg.copy ins(%row : memref<1x8xf32, strided<[8, 1], offset: ?>>) outs(%dst : memref<1x8xf32, strided<[8, 1], offset: ?>>)
  }
  // A buffer of unknown origin (it might be X) is written.
  memref.store %f, %other[%c0] : memref<4xf32>
  %first = vector.transfer_read %b[%c0, %c0], %pad {in_bounds = [true]} : memref<?x8xf32>, vector<8xf32>
  return %first : vector<8xf32>
}

func.func @same_allocation(%frame: !llvm.ptr, %n: index, %f: f32) -> vector<8xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %pad = arith.constant 0.0 : f32
  %bytes = arith.constant 4096 : i64
  %n64 = arith.index_cast %n : index to i64
  %u1 = llvm.mlir.poison : !d1
  %u2 = llvm.mlir.poison : !d2
  %xp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %x0 = llvm.insertvalue %xp, %u2[0] : !d2
  %x1 = llvm.insertvalue %xp, %x0[1] : !d2
  %x = builtin.unrealized_conversion_cast %x1 : !d2 to memref<?x8xf32>
  // A second view of X's allocation, written through a different cast.
  %alias = builtin.unrealized_conversion_cast %x1 : !d2 to memref<?x8xf32>
  %pp = llvm.load %frame : !llvm.ptr -> !llvm.ptr
  %p0 = llvm.insertvalue %pp, %u1[0] : !d1
  %p1 = llvm.insertvalue %pp, %p0[1] : !d1
  %perm = builtin.unrealized_conversion_cast %p1 : !d1 to memref<?xi32>
  %bp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %b0 = llvm.insertvalue %bp, %u2[0] : !d2
  %b1 = llvm.insertvalue %bp, %b0[1] : !d2
  %b2 = llvm.insertvalue %n64, %b1[3, 0] : !d2
  %b = builtin.unrealized_conversion_cast %b2 : !d2 to memref<?x8xf32>
  scf.for %i = %c0 to %n step %c1 {
    %v = memref.load %perm[%i] : memref<?xi32>
    %r = arith.index_cast %v : i32 to index
    %row = memref.subview %x[%r, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    %dst = memref.subview %b[%i, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    linalg.copy ins(%row : memref<1x8xf32, strided<[8, 1], offset: ?>>) outs(%dst : memref<1x8xf32, strided<[8, 1], offset: ?>>)
  }
  memref.store %f, %alias[%c0, %c0] : memref<?x8xf32>
  %first = vector.transfer_read %b[%c0, %c0], %pad {in_bounds = [true]} : memref<?x8xf32>, vector<8xf32>
  return %first : vector<8xf32>
}

func.func @other_call(%frame: !llvm.ptr, %n: index) -> vector<8xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %pad = arith.constant 0.0 : f32
  %bytes = arith.constant 4096 : i64
  %n64 = arith.index_cast %n : index to i64
  %u1 = llvm.mlir.poison : !d1
  %u2 = llvm.mlir.poison : !d2
  %xp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %x0 = llvm.insertvalue %xp, %u2[0] : !d2
  %x1 = llvm.insertvalue %xp, %x0[1] : !d2
  %x = builtin.unrealized_conversion_cast %x1 : !d2 to memref<?x8xf32>
  %pp = llvm.load %frame : !llvm.ptr -> !llvm.ptr
  %p0 = llvm.insertvalue %pp, %u1[0] : !d1
  %p1 = llvm.insertvalue %pp, %p0[1] : !d1
  %perm = builtin.unrealized_conversion_cast %p1 : !d1 to memref<?xi32>
  %bp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %b0 = llvm.insertvalue %bp, %u2[0] : !d2
  %b1 = llvm.insertvalue %bp, %b0[1] : !d2
  %b2 = llvm.insertvalue %n64, %b1[3, 0] : !d2
  %b = builtin.unrealized_conversion_cast %b2 : !d2 to memref<?x8xf32>
  scf.for %i = %c0 to %n step %c1 {
    %v = memref.load %perm[%i] : memref<?xi32>
    %r = arith.index_cast %v : i32 to index
    %row = memref.subview %x[%r, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    %dst = memref.subview %b[%i, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    linalg.copy ins(%row : memref<1x8xf32, strided<[8, 1], offset: ?>>) outs(%dst : memref<1x8xf32, strided<[8, 1], offset: ?>>)
  }
  // A call that is neither the allocator nor a host function.
  llvm.call @other(%xp) : (!llvm.ptr) -> ()
  %first = vector.transfer_read %b[%c0, %c0], %pad {in_bounds = [true]} : memref<?x8xf32>, vector<8xf32>
  return %first : vector<8xf32>
}

func.func @other_use(%frame: !llvm.ptr, %n: index, %out: memref<?x8xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %bytes = arith.constant 4096 : i64
  %n64 = arith.index_cast %n : index to i64
  %u1 = llvm.mlir.poison : !d1
  %u2 = llvm.mlir.poison : !d2
  %xp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %x0 = llvm.insertvalue %xp, %u2[0] : !d2
  %x1 = llvm.insertvalue %xp, %x0[1] : !d2
  %x = builtin.unrealized_conversion_cast %x1 : !d2 to memref<?x8xf32>
  %pp = llvm.load %frame : !llvm.ptr -> !llvm.ptr
  %p0 = llvm.insertvalue %pp, %u1[0] : !d1
  %p1 = llvm.insertvalue %pp, %p0[1] : !d1
  %perm = builtin.unrealized_conversion_cast %p1 : !d1 to memref<?xi32>
  %bp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %b0 = llvm.insertvalue %bp, %u2[0] : !d2
  %b1 = llvm.insertvalue %bp, %b0[1] : !d2
  %b2 = llvm.insertvalue %n64, %b1[3, 0] : !d2
  %b = builtin.unrealized_conversion_cast %b2 : !d2 to memref<?x8xf32>
  scf.for %i = %c0 to %n step %c1 {
    %v = memref.load %perm[%i] : memref<?xi32>
    %r = arith.index_cast %v : i32 to index
    %row = memref.subview %x[%r, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    %dst = memref.subview %b[%i, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    linalg.copy ins(%row : memref<1x8xf32, strided<[8, 1], offset: ?>>) outs(%dst : memref<1x8xf32, strided<[8, 1], offset: ?>>)
  }
  // B read by an op that is not a row read.
  linalg.copy ins(%b : memref<?x8xf32>) outs(%out : memref<?x8xf32>)
  return
}

func.func @read_before(%frame: !llvm.ptr, %n: index) -> vector<8xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %pad = arith.constant 0.0 : f32
  %bytes = arith.constant 4096 : i64
  %n64 = arith.index_cast %n : index to i64
  %u1 = llvm.mlir.poison : !d1
  %u2 = llvm.mlir.poison : !d2
  %xp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %x0 = llvm.insertvalue %xp, %u2[0] : !d2
  %x1 = llvm.insertvalue %xp, %x0[1] : !d2
  %x = builtin.unrealized_conversion_cast %x1 : !d2 to memref<?x8xf32>
  %pp = llvm.load %frame : !llvm.ptr -> !llvm.ptr
  %p0 = llvm.insertvalue %pp, %u1[0] : !d1
  %p1 = llvm.insertvalue %pp, %p0[1] : !d1
  %perm = builtin.unrealized_conversion_cast %p1 : !d1 to memref<?xi32>
  %bp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %b0 = llvm.insertvalue %bp, %u2[0] : !d2
  %b1 = llvm.insertvalue %bp, %b0[1] : !d2
  %b2 = llvm.insertvalue %n64, %b1[3, 0] : !d2
  %b = builtin.unrealized_conversion_cast %b2 : !d2 to memref<?x8xf32>
  // B read before the gather writes it.
  %early = vector.transfer_read %b[%c0, %c0], %pad {in_bounds = [true]} : memref<?x8xf32>, vector<8xf32>
  scf.for %i = %c0 to %n step %c1 {
    %v = memref.load %perm[%i] : memref<?xi32>
    %r = arith.index_cast %v : i32 to index
    %row = memref.subview %x[%r, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    %dst = memref.subview %b[%i, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    linalg.copy ins(%row : memref<1x8xf32, strided<[8, 1], offset: ?>>) outs(%dst : memref<1x8xf32, strided<[8, 1], offset: ?>>)
  }
  return %early : vector<8xf32>
}

func.func @not_in_bounds(%frame: !llvm.ptr, %n: index, %k: index) -> vector<8xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %pad = arith.constant 0.0 : f32
  %bytes = arith.constant 4096 : i64
  %n64 = arith.index_cast %n : index to i64
  %u1 = llvm.mlir.poison : !d1
  %u2 = llvm.mlir.poison : !d2
  %xp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %x0 = llvm.insertvalue %xp, %u2[0] : !d2
  %x1 = llvm.insertvalue %xp, %x0[1] : !d2
  %x = builtin.unrealized_conversion_cast %x1 : !d2 to memref<?x8xf32>
  %pp = llvm.load %frame : !llvm.ptr -> !llvm.ptr
  %p0 = llvm.insertvalue %pp, %u1[0] : !d1
  %p1 = llvm.insertvalue %pp, %p0[1] : !d1
  %perm = builtin.unrealized_conversion_cast %p1 : !d1 to memref<?xi32>
  %bp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %b0 = llvm.insertvalue %bp, %u2[0] : !d2
  %b1 = llvm.insertvalue %bp, %b0[1] : !d2
  %b2 = llvm.insertvalue %n64, %b1[3, 0] : !d2
  %b = builtin.unrealized_conversion_cast %b2 : !d2 to memref<?x8xf32>
  scf.for %i = %c0 to %n step %c1 {
    %v = memref.load %perm[%i] : memref<?xi32>
    %r = arith.index_cast %v : i32 to index
    %row = memref.subview %x[%r, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    %dst = memref.subview %b[%i, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    linalg.copy ins(%row : memref<1x8xf32, strided<[8, 1], offset: ?>>) outs(%dst : memref<1x8xf32, strided<[8, 1], offset: ?>>)
  }
  // A read that may run past the row (padded): not a plain row read.
  %part = vector.transfer_read %b[%c0, %k], %pad : memref<?x8xf32>, vector<8xf32>
  return %part : vector<8xf32>
}

func.func @rows_differ(%frame: !llvm.ptr, %n: index, %m: index) -> vector<8xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %pad = arith.constant 0.0 : f32
  %bytes = arith.constant 4096 : i64
  %m64 = arith.index_cast %m : index to i64
  %u1 = llvm.mlir.poison : !d1
  %u2 = llvm.mlir.poison : !d2
  %xp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %x0 = llvm.insertvalue %xp, %u2[0] : !d2
  %x1 = llvm.insertvalue %xp, %x0[1] : !d2
  %x = builtin.unrealized_conversion_cast %x1 : !d2 to memref<?x8xf32>
  %pp = llvm.load %frame : !llvm.ptr -> !llvm.ptr
  %p0 = llvm.insertvalue %pp, %u1[0] : !d1
  %p1 = llvm.insertvalue %pp, %p0[1] : !d1
  %perm = builtin.unrealized_conversion_cast %p1 : !d1 to memref<?xi32>
  %bp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %b0 = llvm.insertvalue %bp, %u2[0] : !d2
  %b1 = llvm.insertvalue %bp, %b0[1] : !d2
  // B has %m rows; the gather writes %n of them (rows past %n would be
  // read at perm indices the gather never loaded).
  %b2 = llvm.insertvalue %m64, %b1[3, 0] : !d2
  %b = builtin.unrealized_conversion_cast %b2 : !d2 to memref<?x8xf32>
  scf.for %i = %c0 to %n step %c1 {
    %v = memref.load %perm[%i] : memref<?xi32>
    %r = arith.index_cast %v : i32 to index
    %row = memref.subview %x[%r, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    %dst = memref.subview %b[%i, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    linalg.copy ins(%row : memref<1x8xf32, strided<[8, 1], offset: ?>>) outs(%dst : memref<1x8xf32, strided<[8, 1], offset: ?>>)
  }
  %first = vector.transfer_read %b[%c0, %c0], %pad {in_bounds = [true]} : memref<?x8xf32>, vector<8xf32>
  return %first : vector<8xf32>
}

func.func @step_two(%frame: !llvm.ptr, %n: index) -> vector<8xf32> {
  %c0 = arith.constant 0 : index
  %c2 = arith.constant 2 : index
  %pad = arith.constant 0.0 : f32
  %bytes = arith.constant 4096 : i64
  %n64 = arith.index_cast %n : index to i64
  %u1 = llvm.mlir.poison : !d1
  %u2 = llvm.mlir.poison : !d2
  %xp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %x0 = llvm.insertvalue %xp, %u2[0] : !d2
  %x1 = llvm.insertvalue %xp, %x0[1] : !d2
  %x = builtin.unrealized_conversion_cast %x1 : !d2 to memref<?x8xf32>
  %pp = llvm.load %frame : !llvm.ptr -> !llvm.ptr
  %p0 = llvm.insertvalue %pp, %u1[0] : !d1
  %p1 = llvm.insertvalue %pp, %p0[1] : !d1
  %perm = builtin.unrealized_conversion_cast %p1 : !d1 to memref<?xi32>
  %bp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %b0 = llvm.insertvalue %bp, %u2[0] : !d2
  %b1 = llvm.insertvalue %bp, %b0[1] : !d2
  %b2 = llvm.insertvalue %n64, %b1[3, 0] : !d2
  %b = builtin.unrealized_conversion_cast %b2 : !d2 to memref<?x8xf32>
  // Every other row is written.
  scf.for %i = %c0 to %n step %c2 {
    %v = memref.load %perm[%i] : memref<?xi32>
    %r = arith.index_cast %v : i32 to index
    %row = memref.subview %x[%r, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    %dst = memref.subview %b[%i, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    linalg.copy ins(%row : memref<1x8xf32, strided<[8, 1], offset: ?>>) outs(%dst : memref<1x8xf32, strided<[8, 1], offset: ?>>)
  }
  %first = vector.transfer_read %b[%c0, %c0], %pad {in_bounds = [true]} : memref<?x8xf32>, vector<8xf32>
  return %first : vector<8xf32>
}

func.func @offset_written_in_loop(%frame: !llvm.ptr, %n: index) -> vector<8xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %pad = arith.constant 0.0 : f32
  %bytes = arith.constant 4096 : i64
  %n64 = arith.index_cast %n : index to i64
  %u1 = llvm.mlir.poison : !d1
  %u2 = llvm.mlir.poison : !d2
  %xp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %x0 = llvm.insertvalue %xp, %u2[0] : !d2
  %x1 = llvm.insertvalue %xp, %x0[1] : !d2
  %x = builtin.unrealized_conversion_cast %x1 : !d2 to memref<?x8xf32>
  %pp = llvm.load %frame : !llvm.ptr -> !llvm.ptr
  %p0 = llvm.insertvalue %pp, %u1[0] : !d1
  %p1 = llvm.insertvalue %pp, %p0[1] : !d1
  %perm = builtin.unrealized_conversion_cast %p1 : !d1 to memref<?xi32>
  %bp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %b0 = llvm.insertvalue %bp, %u2[0] : !d2
  %b1 = llvm.insertvalue %bp, %b0[1] : !d2
  %b2 = llvm.insertvalue %n64, %b1[3, 0] : !d2
  %b = builtin.unrealized_conversion_cast %b2 : !d2 to memref<?x8xf32>
  %tp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %t0 = llvm.insertvalue %tp, %u1[0] : !d1
  %t1 = llvm.insertvalue %tp, %t0[1] : !d1
  %tmp = builtin.unrealized_conversion_cast %t1 : !d1 to memref<1xi32>
  scf.for %i = %c0 to %n step %c1 {
    %v = memref.load %perm[%i] : memref<?xi32>
    // The row index passes through memory the loop writes (a workspace
    // buffer: the write itself is to a known allocation).
    memref.store %v, %tmp[%c0] : memref<1xi32>
    %w = memref.load %tmp[%c0] : memref<1xi32>
    %r = arith.index_cast %w : i32 to index
    %row = memref.subview %x[%r, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    %dst = memref.subview %b[%i, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    linalg.copy ins(%row : memref<1x8xf32, strided<[8, 1], offset: ?>>) outs(%dst : memref<1x8xf32, strided<[8, 1], offset: ?>>)
  }
  %first = vector.transfer_read %b[%c0, %c0], %pad {in_bounds = [true]} : memref<?x8xf32>, vector<8xf32>
  return %first : vector<8xf32>
}

func.func @x_from_argument(%frame: !llvm.ptr, %n: index, %x: memref<?x8xf32>) -> vector<8xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %pad = arith.constant 0.0 : f32
  %bytes = arith.constant 4096 : i64
  %n64 = arith.index_cast %n : index to i64
  %u1 = llvm.mlir.poison : !d1
  %u2 = llvm.mlir.poison : !d2
  %pp = llvm.load %frame : !llvm.ptr -> !llvm.ptr
  %p0 = llvm.insertvalue %pp, %u1[0] : !d1
  %p1 = llvm.insertvalue %pp, %p0[1] : !d1
  %perm = builtin.unrealized_conversion_cast %p1 : !d1 to memref<?xi32>
  %bp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %b0 = llvm.insertvalue %bp, %u2[0] : !d2
  %b1 = llvm.insertvalue %bp, %b0[1] : !d2
  %b2 = llvm.insertvalue %n64, %b1[3, 0] : !d2
  %b = builtin.unrealized_conversion_cast %b2 : !d2 to memref<?x8xf32>
  // X's memory is of unknown origin: nothing can be said about writes.
  scf.for %i = %c0 to %n step %c1 {
    %v = memref.load %perm[%i] : memref<?xi32>
    %r = arith.index_cast %v : i32 to index
    %row = memref.subview %x[%r, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    %dst = memref.subview %b[%i, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    linalg.copy ins(%row : memref<1x8xf32, strided<[8, 1], offset: ?>>) outs(%dst : memref<1x8xf32, strided<[8, 1], offset: ?>>)
  }
  %first = vector.transfer_read %b[%c0, %c0], %pad {in_bounds = [true]} : memref<?x8xf32>, vector<8xf32>
  return %first : vector<8xf32>
}

func.func @x_written_by_linalg(%frame: !llvm.ptr, %n: index, %f: f32) -> vector<8xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %pad = arith.constant 0.0 : f32
  %bytes = arith.constant 4096 : i64
  %n64 = arith.index_cast %n : index to i64
  %u1 = llvm.mlir.poison : !d1
  %u2 = llvm.mlir.poison : !d2
  %xp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %x0 = llvm.insertvalue %xp, %u2[0] : !d2
  %x1 = llvm.insertvalue %xp, %x0[1] : !d2
  %x = builtin.unrealized_conversion_cast %x1 : !d2 to memref<?x8xf32>
  %pp = llvm.load %frame : !llvm.ptr -> !llvm.ptr
  %p0 = llvm.insertvalue %pp, %u1[0] : !d1
  %p1 = llvm.insertvalue %pp, %p0[1] : !d1
  %perm = builtin.unrealized_conversion_cast %p1 : !d1 to memref<?xi32>
  %bp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %b0 = llvm.insertvalue %bp, %u2[0] : !d2
  %b1 = llvm.insertvalue %bp, %b0[1] : !d2
  %b2 = llvm.insertvalue %n64, %b1[3, 0] : !d2
  %b = builtin.unrealized_conversion_cast %b2 : !d2 to memref<?x8xf32>
  scf.for %i = %c0 to %n step %c1 {
    %v = memref.load %perm[%i] : memref<?xi32>
    %r = arith.index_cast %v : i32 to index
    %row = memref.subview %x[%r, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    %dst = memref.subview %b[%i, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    linalg.copy ins(%row : memref<1x8xf32, strided<[8, 1], offset: ?>>) outs(%dst : memref<1x8xf32, strided<[8, 1], offset: ?>>)
  }
  // A linalg op writes X (its own effect, next to its region's).
  linalg.fill ins(%f : f32) outs(%x : memref<?x8xf32>)
  %first = vector.transfer_read %b[%c0, %c0], %pad {in_bounds = [true]} : memref<?x8xf32>, vector<8xf32>
  return %first : vector<8xf32>
}

func.func @b_alias(%frame: !llvm.ptr, %n: index, %f: f32) -> vector<8xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %pad = arith.constant 0.0 : f32
  %bytes = arith.constant 4096 : i64
  %n64 = arith.index_cast %n : index to i64
  %u1 = llvm.mlir.poison : !d1
  %u2 = llvm.mlir.poison : !d2
  %xp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %x0 = llvm.insertvalue %xp, %u2[0] : !d2
  %x1 = llvm.insertvalue %xp, %x0[1] : !d2
  %x = builtin.unrealized_conversion_cast %x1 : !d2 to memref<?x8xf32>
  %pp = llvm.load %frame : !llvm.ptr -> !llvm.ptr
  %p0 = llvm.insertvalue %pp, %u1[0] : !d1
  %p1 = llvm.insertvalue %pp, %p0[1] : !d1
  %perm = builtin.unrealized_conversion_cast %p1 : !d1 to memref<?xi32>
  %bp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %b0 = llvm.insertvalue %bp, %u2[0] : !d2
  %b1 = llvm.insertvalue %bp, %b0[1] : !d2
  %b2 = llvm.insertvalue %n64, %b1[3, 0] : !d2
  %b = builtin.unrealized_conversion_cast %b2 : !d2 to memref<?x8xf32>
  // A second view of B's allocation.
  %balias = builtin.unrealized_conversion_cast %b2 : !d2 to memref<?x8xf32>
  scf.for %i = %c0 to %n step %c1 {
    %v = memref.load %perm[%i] : memref<?xi32>
    %r = arith.index_cast %v : i32 to index
    %row = memref.subview %x[%r, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    %dst = memref.subview %b[%i, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    linalg.copy ins(%row : memref<1x8xf32, strided<[8, 1], offset: ?>>) outs(%dst : memref<1x8xf32, strided<[8, 1], offset: ?>>)
  }
  memref.store %f, %balias[%c0, %c0] : memref<?x8xf32>
  %first = vector.transfer_read %b[%c0, %c0], %pad {in_bounds = [true]} : memref<?x8xf32>, vector<8xf32>
  return %first : vector<8xf32>
}

func.func @parallel_for_call(%frame: !llvm.ptr, %n: index, %body: !llvm.ptr) -> vector<8xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %pad = arith.constant 0.0 : f32
  %bytes = arith.constant 4096 : i64
  %n64 = arith.index_cast %n : index to i64
  %u1 = llvm.mlir.poison : !d1
  %u2 = llvm.mlir.poison : !d2
  %xp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %x0 = llvm.insertvalue %xp, %u2[0] : !d2
  %x1 = llvm.insertvalue %xp, %x0[1] : !d2
  %x = builtin.unrealized_conversion_cast %x1 : !d2 to memref<?x8xf32>
  %pp = llvm.load %frame : !llvm.ptr -> !llvm.ptr
  %p0 = llvm.insertvalue %pp, %u1[0] : !d1
  %p1 = llvm.insertvalue %pp, %p0[1] : !d1
  %perm = builtin.unrealized_conversion_cast %p1 : !d1 to memref<?xi32>
  %bp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %b0 = llvm.insertvalue %bp, %u2[0] : !d2
  %b1 = llvm.insertvalue %bp, %b0[1] : !d2
  %b2 = llvm.insertvalue %n64, %b1[3, 0] : !d2
  %b = builtin.unrealized_conversion_cast %b2 : !d2 to memref<?x8xf32>
  scf.for %i = %c0 to %n step %c1 {
    %v = memref.load %perm[%i] : memref<?xi32>
    %r = arith.index_cast %v : i32 to index
    %row = memref.subview %x[%r, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    %dst = memref.subview %b[%i, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    linalg.copy ins(%row : memref<1x8xf32, strided<[8, 1], offset: ?>>) outs(%dst : memref<1x8xf32, strided<[8, 1], offset: ?>>)
  }
  // The host's parallel_for (slot 2) runs code that may write anything.
  %table = llvm.load %frame : !llvm.ptr -> !llvm.ptr
  %slot = llvm.getelementptr %table[16] : (!llvm.ptr) -> !llvm.ptr, i8
  %pfor = llvm.load %slot : !llvm.ptr -> !llvm.ptr
  %z = arith.constant 0 : i64
  llvm.call %pfor(%frame, %z, %z, %z, %body, %xp) : !llvm.ptr, (!llvm.ptr, i64, i64, i64, !llvm.ptr, !llvm.ptr) -> ()
  %first = vector.transfer_read %b[%c0, %c0], %pad {in_bounds = [true]} : memref<?x8xf32>, vector<8xf32>
  return %first : vector<8xf32>
}

func.func @offset_written_by_linalg(%frame: !llvm.ptr, %n: index) -> vector<8xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %pad = arith.constant 0.0 : f32
  %bytes = arith.constant 4096 : i64
  %n64 = arith.index_cast %n : index to i64
  %u1 = llvm.mlir.poison : !d1
  %u2 = llvm.mlir.poison : !d2
  %xp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %x0 = llvm.insertvalue %xp, %u2[0] : !d2
  %x1 = llvm.insertvalue %xp, %x0[1] : !d2
  %x = builtin.unrealized_conversion_cast %x1 : !d2 to memref<?x8xf32>
  %pp = llvm.load %frame : !llvm.ptr -> !llvm.ptr
  %p0 = llvm.insertvalue %pp, %u1[0] : !d1
  %p1 = llvm.insertvalue %pp, %p0[1] : !d1
  %perm = builtin.unrealized_conversion_cast %p1 : !d1 to memref<?xi32>
  %bp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %b0 = llvm.insertvalue %bp, %u2[0] : !d2
  %b1 = llvm.insertvalue %bp, %b0[1] : !d2
  %b2 = llvm.insertvalue %n64, %b1[3, 0] : !d2
  %b = builtin.unrealized_conversion_cast %b2 : !d2 to memref<?x8xf32>
  %tp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %t0 = llvm.insertvalue %tp, %u1[0] : !d1
  %t1 = llvm.insertvalue %tp, %t0[1] : !d1
  %tmp = builtin.unrealized_conversion_cast %t1 : !d1 to memref<?xi32>
  scf.for %i = %c0 to %n step %c1 {
    // The index buffer is rewritten by a linalg op in every iteration.
    %i32 = arith.index_cast %i : index to i32
    %one = memref.subview %tmp[0] [1] [1] : memref<?xi32> to memref<1xi32, strided<[1]>>
    linalg.fill ins(%i32 : i32) outs(%one : memref<1xi32, strided<[1]>>)
    %v = memref.load %tmp[%c0] : memref<?xi32>
    %r = arith.index_cast %v : i32 to index
    %row = memref.subview %x[%r, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    %dst = memref.subview %b[%i, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    linalg.copy ins(%row : memref<1x8xf32, strided<[8, 1], offset: ?>>) outs(%dst : memref<1x8xf32, strided<[8, 1], offset: ?>>)
  }
  %first = vector.transfer_read %b[%c0, %c0], %pad {in_bounds = [true]} : memref<?x8xf32>, vector<8xf32>
  return %first : vector<8xf32>
}

func.func @masked_read(%frame: !llvm.ptr, %n: index, %m: index, %mask: vector<8xi1>) -> vector<8xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %pad = arith.constant 0.0 : f32
  %bytes = arith.constant 4096 : i64
  %n64 = arith.index_cast %n : index to i64
  %u1 = llvm.mlir.poison : !d1
  %u2 = llvm.mlir.poison : !d2
  %xp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %x0 = llvm.insertvalue %xp, %u2[0] : !d2
  %x1 = llvm.insertvalue %xp, %x0[1] : !d2
  %x = builtin.unrealized_conversion_cast %x1 : !d2 to memref<?x8xf32>
  %pp = llvm.load %frame : !llvm.ptr -> !llvm.ptr
  %p0 = llvm.insertvalue %pp, %u1[0] : !d1
  %p1 = llvm.insertvalue %pp, %p0[1] : !d1
  %perm = builtin.unrealized_conversion_cast %p1 : !d1 to memref<?xi32>
  %bp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %b0 = llvm.insertvalue %bp, %u2[0] : !d2
  %b1 = llvm.insertvalue %bp, %b0[1] : !d2
  %b2 = llvm.insertvalue %n64, %b1[3, 0] : !d2
  %b = builtin.unrealized_conversion_cast %b2 : !d2 to memref<?x8xf32>
  scf.for %i = %c0 to %n step %c1 {
    %v = memref.load %perm[%i] : memref<?xi32>
    %r = arith.index_cast %v : i32 to index
    %row = memref.subview %x[%r, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    %dst = memref.subview %b[%i, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    linalg.copy ins(%row : memref<1x8xf32, strided<[8, 1], offset: ?>>) outs(%dst : memref<1x8xf32, strided<[8, 1], offset: ?>>)
  }
  // A masked read of B.
  %first = vector.transfer_read %b[%c0, %c0], %pad, %mask {in_bounds = [true]} : memref<?x8xf32>, vector<8xf32>
  return %first : vector<8xf32>
}

// (The next three came from the review: a scalable read, a buffer of
// vectors and a rank-0 source crashed the pass or made invalid IR.)
!d0 = !llvm.struct<(ptr, ptr, i64)>

func.func @scalable(%frame: !llvm.ptr, %n: index, %f: f32) -> vector<[8]xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %pad = arith.constant 0.0 : f32
  %bytes = arith.constant 4096 : i64
  %n64 = arith.index_cast %n : index to i64
  %u1 = llvm.mlir.poison : !d1
  %u2 = llvm.mlir.poison : !d2
  %xp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %x0 = llvm.insertvalue %xp, %u2[0] : !d2
  %x1 = llvm.insertvalue %xp, %x0[1] : !d2
  %x = builtin.unrealized_conversion_cast %x1 : !d2 to memref<?x8xf32>
  %pp = llvm.load %frame : !llvm.ptr -> !llvm.ptr
  %p0 = llvm.insertvalue %pp, %u1[0] : !d1
  %p1 = llvm.insertvalue %pp, %p0[1] : !d1
  %perm = builtin.unrealized_conversion_cast %p1 : !d1 to memref<?xi32>
  %bp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %b0 = llvm.insertvalue %bp, %u2[0] : !d2
  %b1 = llvm.insertvalue %bp, %b0[1] : !d2
  %b2 = llvm.insertvalue %n64, %b1[3, 0] : !d2
  %b = builtin.unrealized_conversion_cast %b2 : !d2 to memref<?x8xf32>
  scf.for %i = %c0 to %n step %c1 {
    %v = memref.load %perm[%i] : memref<?xi32>
    %r = arith.index_cast %v : i32 to index
    %row = memref.subview %x[%r, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    %dst = memref.subview %b[%i, 0] [1, 8] [1, 1] : memref<?x8xf32> to memref<1x8xf32, strided<[8, 1], offset: ?>>
    linalg.copy ins(%row : memref<1x8xf32, strided<[8, 1], offset: ?>>) outs(%dst : memref<1x8xf32, strided<[8, 1], offset: ?>>)
  }
  %first = vector.transfer_read %b[%c0, %c0], %pad {in_bounds = [true]} : memref<?x8xf32>, vector<[8]xf32>
  return %first : vector<[8]xf32>
}

func.func @vec_elem(%frame: !llvm.ptr, %n: index, %f: f32) -> vector<8x4xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %pad = arith.constant dense<0.0> : vector<4xf32>
  %bytes = arith.constant 4096 : i64
  %n64 = arith.index_cast %n : index to i64
  %u1 = llvm.mlir.poison : !d1
  %u2 = llvm.mlir.poison : !d2
  %xp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %x0 = llvm.insertvalue %xp, %u2[0] : !d2
  %x1 = llvm.insertvalue %xp, %x0[1] : !d2
  %x = builtin.unrealized_conversion_cast %x1 : !d2 to memref<?x8xvector<4xf32>>
  %pp = llvm.load %frame : !llvm.ptr -> !llvm.ptr
  %p0 = llvm.insertvalue %pp, %u1[0] : !d1
  %p1 = llvm.insertvalue %pp, %p0[1] : !d1
  %perm = builtin.unrealized_conversion_cast %p1 : !d1 to memref<?xi32>
  %bp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %b0 = llvm.insertvalue %bp, %u2[0] : !d2
  %b1 = llvm.insertvalue %bp, %b0[1] : !d2
  %b2 = llvm.insertvalue %n64, %b1[3, 0] : !d2
  %b = builtin.unrealized_conversion_cast %b2 : !d2 to memref<?x8xvector<4xf32>>
  scf.for %i = %c0 to %n step %c1 {
    %v = memref.load %perm[%i] : memref<?xi32>
    %r = arith.index_cast %v : i32 to index
    %row = memref.subview %x[%r, 0] [1, 8] [1, 1] : memref<?x8xvector<4xf32>> to memref<1x8xvector<4xf32>, strided<[8, 1], offset: ?>>
    %dst = memref.subview %b[%i, 0] [1, 8] [1, 1] : memref<?x8xvector<4xf32>> to memref<1x8xvector<4xf32>, strided<[8, 1], offset: ?>>
    linalg.copy ins(%row : memref<1x8xvector<4xf32>, strided<[8, 1], offset: ?>>) outs(%dst : memref<1x8xvector<4xf32>, strided<[8, 1], offset: ?>>)
  }
  %first = vector.transfer_read %b[%c0, %c0], %pad {in_bounds = [true]} : memref<?x8xvector<4xf32>>, vector<8x4xf32>
  return %first : vector<8x4xf32>
}

func.func @rank0(%frame: !llvm.ptr, %n: index) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %bytes = arith.constant 4096 : i64
  %n64 = arith.index_cast %n : index to i64
  %u0 = llvm.mlir.poison : !d0
  %u2 = llvm.mlir.poison : !d2
  %xp = llvm.load %frame : !llvm.ptr -> !llvm.ptr
  %x0 = llvm.insertvalue %xp, %u0[0] : !d0
  %x1 = llvm.insertvalue %xp, %x0[1] : !d0
  %x = builtin.unrealized_conversion_cast %x1 : !d0 to memref<f32>
  %bp = llvm.call @__moe_workspace_alloc(%frame, %bytes) : (!llvm.ptr, i64) -> !llvm.ptr
  %b0 = llvm.insertvalue %bp, %u2[0] : !d2
  %b1 = llvm.insertvalue %bp, %b0[1] : !d2
  %b2 = llvm.insertvalue %n64, %b1[3, 0] : !d2
  %b = builtin.unrealized_conversion_cast %b2 : !d2 to memref<?x1xf32>
  scf.for %i = %c0 to %n step %c1 {
    %row = memref.subview %x[] [] [] : memref<f32> to memref<f32>
    %dst = memref.subview %b[%i, 0] [1, 1] [1, 1] : memref<?x1xf32> to memref<f32, strided<[], offset: ?>>
    memref.copy %row, %dst : memref<f32> to memref<f32, strided<[], offset: ?>>
  }
  %e = memref.load %b[%c0, %c0] : memref<?x1xf32>
  return %e : f32
}

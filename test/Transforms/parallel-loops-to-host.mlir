// RUN: moe-opt %s --split-input-file --moe-parallel-loops-to-host | FileCheck %s
// RUN: moe-opt %s --split-input-file --moe-parallel-loops-to-host="max-chunks=0" | FileCheck %s --check-prefix=NOLIMIT

// NOLIMIT-LABEL: func.func @moe_entry_main(
// NOLIMIT-NOT:   arith.ceildivui
// NOLIMIT:       llvm.call

// The outermost scf.parallel runs through the host's parallel_for (host
// slot 2, byte 16) over its first dim; the body function loops over
// [begin, end) of it and runs the other dim inside.
// CHECK-LABEL: func.func @moe_entry_main(
// CHECK-SAME:      %[[F:.+]]: !llvm.ptr)
// CHECK:   %[[SLOT:.+]] = llvm.alloca %{{.+}} x !llvm.struct<(
// CHECK:   llvm.store %{{.+}}, %[[SLOT]]
// CHECK:   %[[FN:.+]] = constant @__moe_parallel_body_0
// CHECK:   %[[FNP:.+]] = builtin.unrealized_conversion_cast %[[FN]] : {{.*}} to !llvm.ptr
// The grain: at least 1, and ceil(trips / 64) so that no loop is cut into
// more than 64 chunks (max-chunks).
// CHECK:   llvm.getelementptr %{{.+}}[16]
// CHECK:   %[[G1:.+]] = llvm.mlir.constant(1 : i64) : i64
// CHECK:   %[[C64:.+]] = arith.constant 64 : i64
// CHECK:   %[[PER:.+]] = arith.ceildivui %[[TRIPS:.+]], %[[C64]] : i64
// CHECK:   %[[GRAIN:.+]] = arith.maxui %[[G1]], %[[PER]] : i64
// CHECK:   llvm.call %{{.+}}(%[[F]], %{{.+}}, %[[TRIPS]], %[[GRAIN]], %[[FNP]], %[[SLOT]])
// CHECK-NOT: scf.parallel
// CHECK:   return
// CHECK-LABEL: func.func private @__moe_parallel_body_0(
// CHECK-SAME:      %{{.+}}: !llvm.ptr, %{{.+}}: i64, %{{.+}}: i64)
// CHECK:   llvm.load %{{.+}} : !llvm.ptr -> !llvm.struct<(
// CHECK:   scf.for
// CHECK:     scf.parallel
// CHECK:       memref.store
func.func @moe_entry_main(%frame: !llvm.ptr) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %c64 = arith.constant 64 : index
  %zero = arith.constant 0.0 : f32
  %m = memref.alloca() : memref<8x64xf32>
  scf.parallel (%i, %j) = (%c0, %c0) to (%c8, %c64) step (%c1, %c1) {
    memref.store %zero, %m[%i, %j] : memref<8x64xf32>
    scf.reduce
  }
  return
}

// -----

// A loop that allocates from the workspace, or one with a reduction, stays.
// CHECK-LABEL: func.func @moe_entry_main(
// CHECK:   scf.parallel
// CHECK:     llvm.call @__moe_workspace_alloc
// CHECK:   scf.parallel
// CHECK:     scf.reduce(
// CHECK-NOT: __moe_parallel_body
llvm.func @__moe_workspace_alloc(%f: !llvm.ptr, %n: i64) -> !llvm.ptr {
  llvm.return %f : !llvm.ptr
}
func.func @moe_entry_main(%frame: !llvm.ptr) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %n = arith.constant 64 : i64
  %zero = arith.constant 0.0 : f32
  scf.parallel (%i) = (%c0) to (%c8) step (%c1) {
    %p = llvm.call @__moe_workspace_alloc(%frame, %n) : (!llvm.ptr, i64) -> !llvm.ptr
    scf.reduce
  }
  %s = scf.parallel (%i) = (%c0) to (%c8) step (%c1) init (%zero) -> f32 {
    %one = arith.constant 1.0 : f32
    scf.reduce(%one : f32) {
    ^bb0(%a: f32, %b: f32):
      %r = arith.addf %a, %b : f32
      scf.reduce.return %r : f32
    }
  }
  return %s : f32
}

// -----

// A loop whose iterations allocate from private workspace slots
// (moe-lower-to-host-abi's moe.private_workspace) runs on the pool: the
// allocations and the stores go to its slot, not to the frame.
// CHECK-LABEL: func.func @moe_entry_main(
// CHECK-NOT:   scf.parallel
// CHECK:       constant @__moe_parallel_body_0
// CHECK-LABEL: func.func private @__moe_parallel_body_0(
// CHECK:         llvm.getelementptr %{{.+}}[16]
// CHECK:         llvm.store
// CHECK:         llvm.call @__moe_workspace_alloc(
llvm.func @__moe_workspace_alloc(%f: !llvm.ptr, %n: i64) -> !llvm.ptr {
  llvm.return %f : !llvm.ptr
}
func.func @moe_entry_main(%frame: !llvm.ptr) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %n = arith.constant 64 : i64
  %arena = llvm.call @__moe_workspace_alloc(%frame, %n) : (!llvm.ptr, i64) -> !llvm.ptr
  scf.parallel (%i) = (%c0) to (%c8) step (%c1) {
    %off = arith.index_cast %i : index to i64
    %slot = llvm.getelementptr %arena[%off] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %cursor = llvm.getelementptr %slot[16] : (!llvm.ptr) -> !llvm.ptr, i8
    llvm.store %slot, %cursor : !llvm.ptr, !llvm.ptr
    %p = llvm.call @__moe_workspace_alloc(%slot, %n) : (!llvm.ptr, i64) -> !llvm.ptr
    scf.reduce
  } {moe.private_workspace}
  return
}

// -----

// Even so marked, a loop that allocates from the frame's workspace or
// writes the frame's words stays sequential.
// CHECK-LABEL: func.func @moe_entry_main(
// CHECK:   scf.parallel
// CHECK:     llvm.call @__moe_workspace_alloc(%{{.+}}, %{{.+}})
// CHECK:   } {moe.private_workspace}
// CHECK:   scf.parallel
// CHECK:     llvm.store
// CHECK:   } {moe.private_workspace}
// CHECK-NOT: __moe_parallel_body
llvm.func @__moe_workspace_alloc(%f: !llvm.ptr, %n: i64) -> !llvm.ptr {
  llvm.return %f : !llvm.ptr
}
func.func @moe_entry_main(%frame: !llvm.ptr) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %n = arith.constant 64 : i64
  scf.parallel (%i) = (%c0) to (%c8) step (%c1) {
    %p = llvm.call @__moe_workspace_alloc(%frame, %n) : (!llvm.ptr, i64) -> !llvm.ptr
    scf.reduce
  } {moe.private_workspace}
  scf.parallel (%i) = (%c0) to (%c8) step (%c1) {
    %cursor = llvm.getelementptr %frame[16] : (!llvm.ptr) -> !llvm.ptr, i8
    llvm.store %frame, %cursor : !llvm.ptr, !llvm.ptr
    scf.reduce
  } {moe.private_workspace}
  return
}

// -----

// A vector constant used in the body (a register tile's zero accumulator)
// is cloned into the body function, not passed through the closure.
// CHECK-LABEL: func.func @moe_entry_main(
// CHECK-NOT:   scf.parallel
// CHECK-LABEL: func.func private @__moe_parallel_body_0(
// CHECK:   arith.constant dense<0.000000e+00> : vector<8xf32>
// CHECK:   vector.transfer_write
func.func @moe_entry_main(%frame: !llvm.ptr) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %zeros = arith.constant dense<0.0> : vector<8xf32>
  %m = memref.alloca() : memref<8x8xf32>
  scf.parallel (%i) = (%c0) to (%c8) step (%c1) {
    vector.transfer_write %zeros, %m[%i, %c0] {in_bounds = [true]} : vector<8xf32>, memref<8x8xf32>
    scf.reduce
  }
  return
}


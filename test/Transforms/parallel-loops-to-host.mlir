// RUN: moe-opt %s --split-input-file --moe-parallel-loops-to-host | FileCheck %s
// RUN: moe-opt %s --split-input-file --moe-parallel-loops-to-host="max-chunks=0" | FileCheck %s --check-prefix=NOLIMIT
// RUN: moe-opt %s --split-input-file --moe-parallel-loops-to-host="min-chunk-work=64" | FileCheck %s --check-prefix=WORK
// RUN: moe-opt %s --split-input-file --moe-parallel-loops-to-host="min-chunk-work=1000" | FileCheck %s --check-prefix=WORKK
// RUN: moe-opt %s --split-input-file --moe-parallel-loops-to-host="split-leading-dims=false" | FileCheck %s --check-prefix=FIRST

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


// -----

// With min-chunk-work=64 (prefix WORK), a chunk holds at least 64 units of
// the body's estimated work: one unit per op, one per 8 vector elements, a
// loop's body (plus one) times its trip count, the costlier branch of an
// scf.if plus one, plus one per iteration of the split dim. With 1000
// (WORKK) the grains pin the estimates: ceil(1000 / 8) = 125,
// ceil(1000 / 27) = 38 (26 or 28 units would give 39 or 36).
// WORKK-LABEL: func.func @moe_entry_work(
// WORKK:       llvm.mlir.constant(125 : i64) : i64
// WORKK:       llvm.mlir.constant(38 : i64) : i64
// WORKK:       arith.ceildivui %c1000{{(_[0-9]+)?}}, %{{.+}} : index
// WORK-LABEL: func.func @moe_entry_work(
// Static: 4 x (1 + 1) = 8 units an iteration, so at least 8 iterations.
// WORK:       %[[G8:.+]] = llvm.mlir.constant(8 : i64) : i64
// WORK:       %[[PER8:.+]] = arith.ceildivui %{{.+}}, %{{.+}} : i64
// WORK:       %[[GRAIN8:.+]] = arith.maxui %[[G8]], %[[PER8]] : i64
// WORK:       llvm.call %{{.+}}(%{{.+}}, %{{.+}}, %{{.+}}, %[[GRAIN8]],
// The compare (1) and the scf.if (1 + its costlier branch: a loop of 4
// over a muli (1) and a store of 32 lanes (4), 4 x (5 + 1) = 24), plus one
// for the iteration: 27 units, at least ceil(64 / 27) = 3 iterations.
// WORK:       %[[G3:.+]] = llvm.mlir.constant(3 : i64) : i64
// WORK:       arith.maxui %[[G3]],
// WORK:       llvm.call
// A loop of %n (read above the parallel loop): the work is computed where
// the loop is called, clamped at 64: min(min(min(max(n, 0), 64) * 2, 64)
// + 1, 64), and the grain is at least ceil(64 / that).
// WORK:       %[[N:.+]] = arith.index_cast %{{.+}} : i64 to index
// WORK:       %[[SPAN:.+]] = arith.maxsi %[[N]], %{{.+}} : index
// WORK:       %[[TRIPS:.+]] = arith.minui %[[SPAN]], %[[CAP:.+]] : index
// WORK:       %[[BODY:.+]] = arith.muli %[[TRIPS]], %{{.+}} : index
// WORK:       %[[BODYC:.+]] = arith.minui %[[BODY]], %{{.+}} : index
// WORK:       %[[ITER:.+]] = arith.addi %[[BODYC]], %{{.+}} : index
// WORK:       %[[WORK:.+]] = arith.minui %[[ITER]], %{{.+}} : index
// WORK:       %[[ATLEAST1:.+]] = arith.maxui %[[WORK]], %{{.+}} : index
// WORK:       %[[LEAST:.+]] = arith.ceildivui %{{.+}}, %[[ATLEAST1]] : index
// WORK:       %[[LEASTI:.+]] = arith.index_cast %[[LEAST]] : index to i64
// WORK:       %[[GD:.+]] = arith.maxui %{{.+}}, %[[LEASTI]] : i64
// WORK:       arith.maxui %[[GD]], %{{.+}} : i64
// WORK:       llvm.call
// A trip count read inside the body: the work is unknown, the grain only
// ceil(trips / 64).
// WORK:       %[[G1:.+]] = llvm.mlir.constant(1 : i64) : i64
// WORK-NEXT:  arith.constant 64 : i64
// WORK-NEXT:  arith.ceildivui
// WORK-NEXT:  arith.maxui %[[G1]],
// WORK:       llvm.call
// WORK-LABEL: func.func private @__moe_parallel_body_
func.func @moe_entry_work(%frame: !llvm.ptr) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c8 = arith.constant 8 : index
  %zero = arith.constant 0.0 : f32
  %zeros = arith.constant dense<0.0> : vector<32xf32>
  %m = memref.alloca() : memref<8x128xf32>
  scf.parallel (%i, %j) = (%c0, %c0) to (%c8, %c4) step (%c1, %c1) {
    memref.store %zero, %m[%i, %j] : memref<8x128xf32>
    scf.reduce
  }
  scf.parallel (%i) = (%c0) to (%c8) step (%c1) {
    %small = arith.cmpi ult, %i, %c4 : index
    scf.if %small {
      scf.for %k = %c0 to %c4 step %c1 {
        %col = arith.muli %k, %c8 : index
        vector.transfer_write %zeros, %m[%i, %col] {in_bounds = [true]} : vector<32xf32>, memref<8x128xf32>
      }
    } else {
      memref.store %zero, %m[%i, %c0] : memref<8x128xf32>
    }
    scf.reduce
  }
  %raw = llvm.load %frame : !llvm.ptr -> i64
  %n = arith.index_cast %raw : i64 to index
  %d = memref.alloca(%n, %n) : memref<?x?xf32>
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    scf.for %k = %c0 to %n step %c1 {
      memref.store %zero, %d[%i, %k] : memref<?x?xf32>
    }
    scf.reduce
  }
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    %x = memref.load %d[%i, %c0] : memref<?x?xf32>
    %e = arith.fptosi %x : f32 to i64
    %len = arith.index_cast %e : i64 to index
    scf.for %k = %c0 to %len step %c1 {
      memref.store %zero, %d[%i, %k] : memref<?x?xf32>
    }
    scf.reduce
  }
  return
}

// -----

// An scf.while counts as a countdown of constant bound (the top-k
// insertion walk): p starts at minui(n, 3), goes on while p > 0 and steps
// by -1, so at most 3 iterations of both regions (1 + 2, plus one) and the
// last check (1): 13 units; with the load, casts and minui (4) and one for
// the iteration, 18: at least ceil(1000 / 18) = 56 iterations a chunk. A
// while loop of another form is unknown work: the grain is only
// ceil(trips / 64).
// WORKK-LABEL: func.func @moe_entry_while(
// WORKK:       %[[G56:.+]] = llvm.mlir.constant(56 : i64) : i64
// WORKK-NEXT:  arith.constant 64 : i64
// WORKK-NEXT:  %[[PER:.+]] = arith.ceildivui
// WORKK-NEXT:  arith.maxui %[[G56]], %[[PER]] : i64
// WORKK:       llvm.call
// WORKK:       %[[G1:.+]] = llvm.mlir.constant(1 : i64) : i64
// WORKK-NEXT:  arith.constant 64 : i64
// WORKK-NEXT:  %[[PER1:.+]] = arith.ceildivui
// WORKK-NEXT:  arith.maxui %[[G1]], %[[PER1]] : i64
// WORKK:       llvm.call
// Nor are a countdown whose condition is an `or` (p > 0 or another
// flag) and one that steps by -2: unknown too.
// WORKK:       %[[G1B:.+]] = llvm.mlir.constant(1 : i64) : i64
// WORKK-NEXT:  arith.constant 64 : i64
// WORKK-NEXT:  %[[PER1B:.+]] = arith.ceildivui
// WORKK-NEXT:  arith.maxui %[[G1B]], %[[PER1B]] : i64
// WORKK:       llvm.call
// WORKK:       %[[G1C:.+]] = llvm.mlir.constant(1 : i64) : i64
// WORKK-NEXT:  arith.constant 64 : i64
// WORKK-NEXT:  %[[PER1C:.+]] = arith.ceildivui
// WORKK-NEXT:  arith.maxui %[[G1C]], %[[PER1C]] : i64
// WORKK:       llvm.call
func.func @moe_entry_while(%frame: !llvm.ptr) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c3 = arith.constant 3 : index
  %c8 = arith.constant 8 : index
  %zero = arith.constant 0.0 : f32
  %m = memref.alloca() : memref<8x128xf32>
  scf.parallel (%i) = (%c0) to (%c8) step (%c1) {
    %x = memref.load %m[%i, %c0] : memref<8x128xf32>
    %e = arith.fptosi %x : f32 to i64
    %n = arith.index_cast %e : i64 to index
    %start = arith.minui %n, %c3 : index
    %r = scf.while (%p = %start) : (index) -> index {
      %go = arith.cmpi ugt, %p, %c0 : index
      scf.condition(%go) %p : index
    } do {
    ^bb0(%q: index):
      %next = arith.subi %q, %c1 : index
      memref.store %zero, %m[%i, %q] : memref<8x128xf32>
      scf.yield %next : index
    }
    scf.reduce
  }
  scf.parallel (%i) = (%c0) to (%c8) step (%c1) {
    %x = memref.load %m[%i, %c0] : memref<8x128xf32>
    %e = arith.fptosi %x : f32 to i64
    %n = arith.index_cast %e : i64 to index
    %r = scf.while (%p = %c0) : (index) -> index {
      %go = arith.cmpi ult, %p, %n : index
      scf.condition(%go) %p : index
    } do {
    ^bb0(%q: index):
      %next = arith.addi %q, %c1 : index
      memref.store %zero, %m[%i, %q] : memref<8x128xf32>
      scf.yield %next : index
    }
    scf.reduce
  }
  scf.parallel (%i) = (%c0) to (%c8) step (%c1) {
    %x = memref.load %m[%i, %c0] : memref<8x128xf32>
    %e = arith.fptosi %x : f32 to i64
    %n = arith.index_cast %e : i64 to index
    %flag = arith.cmpi ult, %n, %c8 : index
    %start = arith.minui %n, %c3 : index
    %r = scf.while (%p = %start) : (index) -> index {
      %pos = arith.cmpi ugt, %p, %c0 : index
      %go = arith.ori %pos, %flag : i1
      scf.condition(%go) %p : index
    } do {
    ^bb0(%q: index):
      %next = arith.subi %q, %c1 : index
      memref.store %zero, %m[%i, %q] : memref<8x128xf32>
      scf.yield %next : index
    }
    scf.reduce
  }
  scf.parallel (%i) = (%c0) to (%c8) step (%c1) {
    %x = memref.load %m[%i, %c0] : memref<8x128xf32>
    %e = arith.fptosi %x : f32 to i64
    %n = arith.index_cast %e : i64 to index
    %start = arith.minui %n, %c3 : index
    %r = scf.while (%p = %start) : (index) -> index {
      %go = arith.cmpi ugt, %p, %c0 : index
      scf.condition(%go) %p : index
    } do {
    ^bb0(%q: index):
      %c2 = arith.constant 2 : index
      %next = arith.subi %q, %c2 : index
      memref.store %zero, %m[%i, %q] : memref<8x128xf32>
      scf.yield %next : index
    }
    scf.reduce
  }
  return
}

// -----

// The body function is named after the first name in the loop's location
// (the ONNX node), characters outside [A-Za-z0-9_.] as '_', at most 48 of
// them; a loop without a name keeps the bare number. A decomposition's
// part ("<node>.<part>" around the node's name, build::partLoc) keeps up
// to 24 of the 48 characters: a long node name is cut first.
// CHECK-LABEL: func.func @moe_entry_main(
// CHECK:   constant @__moe_parallel_body_0_layer0.ffn
// CHECK:   constant @__moe_parallel_body_1__model_layers.1_att_MatMul_0
// CHECK:   constant @__moe_parallel_body_2_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa :
// CHECK:   constant @__moe_parallel_body_3 :
// CHECK:   constant @__moe_parallel_body_4_layer0.att.attention.scores :
// CHECK:   constant @__moe_parallel_body_5_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.attention.scores :
// CHECK-LABEL: func.func private @__moe_parallel_body_0_layer0.ffn(
// CHECK-LABEL: func.func private @__moe_parallel_body_1__model_layers.1_att_MatMul_0(
// CHECK-LABEL: func.func private @__moe_parallel_body_2_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa(
// CHECK-LABEL: func.func private @__moe_parallel_body_3(
func.func @moe_entry_main(%frame: !llvm.ptr) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %zero = arith.constant 0.0 : f32
  %m = memref.alloca() : memref<8xf32>
  scf.parallel (%i) = (%c0) to (%c8) step (%c1) {
    memref.store %zero, %m[%i] : memref<8xf32>
    scf.reduce
  } loc(fused["layer0.ffn"("model.onnx":0:0), "other"])
  scf.parallel (%i) = (%c0) to (%c8) step (%c1) {
    memref.store %zero, %m[%i] : memref<8xf32>
    scf.reduce
  } loc("/model/layers.1/att/MatMul_0")
  scf.parallel (%i) = (%c0) to (%c8) step (%c1) {
    memref.store %zero, %m[%i] : memref<8xf32>
    scf.reduce
  } loc("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
  scf.parallel (%i) = (%c0) to (%c8) step (%c1) {
    memref.store %zero, %m[%i] : memref<8xf32>
    scf.reduce
  } loc("model.onnx":3:7)
  scf.parallel (%i) = (%c0) to (%c8) step (%c1) {
    memref.store %zero, %m[%i] : memref<8xf32>
    scf.reduce
  } loc("layer0.att.attention.scores"("layer0.att.attention"("layer0.att"("model.onnx":0:0))))
  scf.parallel (%i) = (%c0) to (%c8) step (%c1) {
    memref.store %zero, %m[%i] : memref<8xf32>
    scf.reduce
  } loc("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.attention.scores"("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.attention"("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")))
  return
}

// -----

// A loop of three dims or more splits its leading dims, all but the last,
// linearized row-major: a [1, 8, T, S] softmax of batch 1 would otherwise
// be one iteration. parallel_for runs 1 x 8 x 4 iterations (steps 1, 1 and
// 2 over 0..8); the body takes each linear index apart, last split dim
// fastest, and runs the last dim inside.
// CHECK-LABEL: func.func @moe_entry_main(
// CHECK:   %[[T0:.+]] = arith.divui %{{.+}}, %{{.+}} : index
// CHECK:   %[[T1:.+]] = arith.divui %{{.+}}, %{{.+}} : index
// CHECK:   %[[P:.+]] = arith.muli %[[T0]], %[[T1]] : index
// CHECK:   %[[T2:.+]] = arith.divui %{{.+}}, %{{.+}} : index
// CHECK:   %[[ALL:.+]] = arith.muli %[[P]], %[[T2]] : index
// CHECK:   %[[N:.+]] = arith.index_cast %[[ALL]] : index to i64
// CHECK:   llvm.call %{{.+}}(%{{.+}}, %{{.+}}, %[[N]],
// CHECK-LABEL: func.func private @__moe_parallel_body_{{[0-9]+}}(
// CHECK:   scf.for %[[I:.+]] = %{{.+}} to %{{.+}} step %{{.+}} {
// CHECK:     %[[I2:.+]] = arith.remui %[[I]], %[[N2:.+]] : index
// CHECK:     %[[R:.+]] = arith.divui %[[I]], %[[N2]] : index
// CHECK:     %[[S2:.+]] = arith.muli %[[I2]], %c2
// CHECK:     %[[V2:.+]] = arith.addi %{{.+}}, %[[S2]]
// CHECK:     %[[I1:.+]] = arith.remui %[[R]], %[[N1:.+]] : index
// CHECK:     %[[I0:.+]] = arith.divui %[[R]], %[[N1]] : index
// CHECK:     %[[S1:.+]] = arith.muli %[[I1]]
// CHECK:     %[[V1:.+]] = arith.addi %{{.+}}, %[[S1]]
// CHECK:     %[[S0:.+]] = arith.muli %[[I0]]
// CHECK:     %[[V0:.+]] = arith.addi %{{.+}}, %[[S0]]
// CHECK:     scf.parallel (%[[S:.+]]) = (%{{.+}}) to (%{{.+}}) step (%{{.+}}) {
// CHECK:       memref.store %{{.+}}, %{{.+}}[%[[V0]], %[[V1]], %[[V2]], %[[S]]]
// With split-leading-dims=false, the first dim only (the batch of 1):
// FIRST: scf.parallel (%{{.+}}, %{{.+}}, %{{.+}}) = (%{{.+}}, %{{.+}}, %{{.+}}) to
// FIRST-NEXT: memref.store %{{.+}} : memref<1x8x8x64xf32>
func.func @moe_entry_main(%frame: !llvm.ptr) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c8 = arith.constant 8 : index
  %c64 = arith.constant 64 : index
  %zero = arith.constant 0.0 : f32
  %m = memref.alloca() : memref<1x8x8x64xf32>
  scf.parallel (%b, %h, %t, %s) = (%c0, %c0, %c0, %c0) to (%c1, %c8, %c8, %c64) step (%c1, %c1, %c2, %c1) {
    memref.store %zero, %m[%b, %h, %t, %s] : memref<1x8x8x64xf32>
    scf.reduce
  }
  return
}

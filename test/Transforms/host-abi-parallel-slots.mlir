// RUN: moe-opt %s --split-input-file --moe-lower-to-host-abi="parallel-slots=4" | FileCheck %s
// RUN: moe-opt %s --split-input-file --moe-lower-to-host-abi | FileCheck %s --check-prefix=OFF

// An outermost scf.parallel whose iterations allocate a bounded amount
// (rows = min(4, T - i): at most 4 x 8 floats, 128 bytes) takes its
// temporaries from private slots: an arena of min(N, 4) slots of 64 + 128
// bytes from the workspace, then one iteration per slot, each running a
// run of ceil(N / slots) of the original (i, j) iterations (row-major,
// the last run in slot 0) with the slot's header (host, run, workspace
// words over the slot's own bytes) as its allocator. The static workspace
// counts 4 slots: 768 bytes, and it no longer grows.
// CHECK-LABEL: func.func @moe_entry_main(
// CHECK-SAME:      %[[F:.+]]: !llvm.ptr)
// CHECK-SAME:      moe.workspace_bytes = 768 : i64, moe.workspace_grows = false
// CHECK:   %[[C4:.+]] = arith.constant 4 : index
// CHECK:   %[[SLOTS:.+]] = arith.minui %[[N:.+]], %[[C4]] : index
// CHECK:   %[[PER:.+]] = arith.ceildivui %[[N]], %{{.+}} : index
// CHECK:   %[[SLOTSI:.+]] = arith.index_cast %[[SLOTS]] : index to i64
// CHECK:   %[[BYTES:.+]] = arith.muli %[[SLOTSI]], %{{.+}} : i64
// CHECK:   %[[ARENA:.+]] = llvm.call @__moe_workspace_alloc(%[[F]], %[[BYTES]])
// CHECK:   scf.parallel (%[[C:.+]]) = (%{{.+}}) to (%[[SLOTS]]) step
// CHECK:     %[[W:.+]] = llvm.getelementptr %[[ARENA]][%{{.+}}] : (!llvm.ptr, i64)
// CHECK:     llvm.getelementptr %[[F]][0]
// CHECK:     llvm.store %{{.+}}, %{{.+}} : !llvm.ptr, !llvm.ptr
// CHECK:     llvm.getelementptr %[[F]][8]
// CHECK:     llvm.store
// CHECK:     llvm.getelementptr %[[F]][32]
// CHECK:     llvm.store
// CHECK:     %[[START:.+]] = llvm.getelementptr %[[W]][64]
// CHECK:     %[[CUR:.+]] = llvm.getelementptr %[[W]][16]
// CHECK:     llvm.store %[[START]], %[[CUR]]
// CHECK:     %[[END:.+]] = llvm.getelementptr %[[W]][192]
// CHECK:     %[[ENDW:.+]] = llvm.getelementptr %[[W]][24]
// CHECK:     llvm.store %[[END]], %[[ENDW]]
// CHECK:     scf.for %[[IT:.+]] = %{{.+}} to %{{.+}} step
// The iteration's workspace words saved, (i, j) from it, the allocation
// from the slot, the words restored.
// CHECK:       llvm.getelementptr %[[W]][16]
// CHECK:       %[[J:.+]] = arith.remui %[[IT]], %{{.+}} : index
// CHECK:       arith.divui %[[IT]], %{{.+}} : index
// CHECK:       affine.min
// CHECK:       llvm.call @__moe_workspace_alloc(%[[W]], %{{.+}})
// CHECK:       linalg.fill
// CHECK:       llvm.store %{{.+}}, %{{.+}} : !llvm.ptr, !llvm.ptr
// CHECK:     }
// CHECK:   } {moe.private_workspace}
// Without parallel-slots, the loop allocates from the frame's workspace
// (and moe-parallel-loops-to-host keeps it sequential); its allocation
// still counts at its bound.
// OFF-LABEL: func.func @moe_entry_main(
// OFF-SAME:      moe.workspace_bytes = 128 : i64, moe.workspace_grows = false
// OFF:   scf.parallel (%{{.+}}, %{{.+}}) =
// OFF:     llvm.call @__moe_workspace_alloc(%arg0,
// OFF-NOT: moe.private_workspace
func.func @main(%x: memref<?x8xf32>) -> memref<?x8xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c3 = arith.constant 3 : index
  %cst = arith.constant 0.0 : f32
  %t = memref.dim %x, %c0 : memref<?x8xf32>
  %y = memref.alloc(%t) : memref<?x8xf32>
  scf.parallel (%i, %j) = (%c0, %c0) to (%t, %c3) step (%c1, %c1) {
    %r = affine.min affine_map<(d0)[s0] -> (4, s0 - d0)>(%i)[%t]
    %tmp = memref.alloc(%r) : memref<?x8xf32>
    linalg.fill ins(%cst : f32) outs(%tmp : memref<?x8xf32>)
    memref.copy %tmp, %tmp : memref<?x8xf32> to memref<?x8xf32>
    scf.reduce
  }
  return %y : memref<?x8xf32>
}

// -----

// An allocation without a constant bound (T rows), one that may outlive
// the iteration (its address escapes), or a loop with a reduction: the
// loop keeps the frame's workspace.
// CHECK-LABEL: func.func @moe_entry_main(
// CHECK-NOT:   moe.private_workspace
// CHECK:       scf.parallel
// CHECK:         llvm.call @__moe_workspace_alloc(%arg0,
// CHECK:       scf.parallel
// CHECK:         llvm.call @__moe_workspace_alloc(%arg0,
// CHECK:       scf.parallel
// CHECK:         llvm.call @__moe_workspace_alloc(%arg0,
// CHECK:         scf.reduce(
// CHECK-NOT:   moe.private_workspace
func.func @main(%x: memref<?x8xf32>, %keep: memref<1xindex>, %sum: memref<1xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %cst = arith.constant 0.0 : f32
  %t = memref.dim %x, %c0 : memref<?x8xf32>
  scf.parallel (%i) = (%c0) to (%t) step (%c1) {
    %tmp = memref.alloc(%t) : memref<?x8xf32>
    linalg.fill ins(%cst : f32) outs(%tmp : memref<?x8xf32>)
    scf.reduce
  }
  scf.parallel (%i) = (%c0) to (%t) step (%c1) {
    %tmp = memref.alloc() : memref<4xf32>
    %p = memref.extract_aligned_pointer_as_index %tmp : memref<4xf32> -> index
    memref.store %p, %keep[%c0] : memref<1xindex>
    scf.reduce
  }
  %s = scf.parallel (%i) = (%c0) to (%t) step (%c1) init (%cst) -> f32 {
    %tmp = memref.alloc() : memref<4xf32>
    %v = memref.load %tmp[%c0] : memref<4xf32>
    scf.reduce(%v : f32) {
    ^bb0(%a: f32, %b: f32):
      %r = arith.addf %a, %b : f32
      scf.reduce.return %r : f32
    }
  }
  memref.store %s, %sum[%c0] : memref<1xf32>
  return
}

// -----

// Only the outermost loop gets slots (an inner one runs inside its
// iteration), also where it is nested in a sequential loop.
// CHECK-LABEL: func.func @moe_entry_main(
// CHECK:   scf.for
// CHECK:     llvm.call @__moe_workspace_alloc(%arg0,
// CHECK:     scf.parallel
// CHECK:       scf.for
// CHECK:         scf.parallel
// CHECK:           llvm.call @__moe_workspace_alloc(%{{[0-9]+}},
// CHECK:         }
// CHECK-NOT:     moe.private_workspace
// CHECK:     } {moe.private_workspace}
func.func @main(%x: memref<?x8xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c4 = arith.constant 4 : index
  %cst = arith.constant 0.0 : f32
  scf.for %r = %c0 to %c2 step %c1 {
    scf.parallel (%i) = (%c0) to (%c4) step (%c1) {
      scf.parallel (%j) = (%c0) to (%c4) step (%c1) {
        %tmp = memref.alloc() : memref<4xf32>
        linalg.fill ins(%cst : f32) outs(%tmp : memref<4xf32>)
        scf.reduce
      }
      scf.reduce
    }
  }
  return
}

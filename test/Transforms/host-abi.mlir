// RUN: moe-opt %s --split-input-file --moe-lower-to-host-abi | FileCheck %s

// The entry takes one argument, the frame (runtime/include/moe/code_abi.h),
// and returns nothing.
// CHECK-LABEL: func.func @moe_entry_main(
// CHECK-SAME:      %[[F:.+]]: !llvm.ptr)
// CHECK-SAME:      moe.workspace_bytes = 64 : i64, moe.workspace_grows = true
// The input: data pointer frame->inputs[0] (offset 40), dim 0 from
// frame->input_dims[0] (offset 48).
// CHECK:   %[[IN:.+]] = llvm.getelementptr %[[F]][40]
// CHECK:   %[[INS:.+]] = llvm.load %[[IN]] : !llvm.ptr -> !llvm.ptr
// CHECK:   %[[X0:.+]] = llvm.load %{{.+}} : !llvm.ptr -> !llvm.ptr
// CHECK:   llvm.getelementptr %[[F]][48]
// CHECK:   %[[N:.+]] = llvm.load %{{.+}} : !llvm.ptr -> i64
// CHECK:   %[[X:.+]] = builtin.unrealized_conversion_cast %{{.+}} : !llvm.struct<(ptr, ptr, i64, array<2 x i64>, array<2 x i64>)> to memref<?x4xf32>
// The weight: frame->weights[0] (offset 56).
// CHECK:   llvm.getelementptr %[[F]][56]
// CHECK:   %[[W:.+]] = builtin.unrealized_conversion_cast %{{.+}} to memref<4xf32>
// Result 0 is allocated in the entry block: it becomes output_alloc
// (host slot 4, byte 32) with its dims, no copy.
// CHECK:   %[[D:.+]] = memref.dim %[[X]], %{{.+}} : memref<?x4xf32>
// CHECK:   %[[HOST:.+]] = llvm.load %{{.+}} : !llvm.ptr -> !llvm.ptr
// CHECK:   %[[SLOT:.+]] = llvm.getelementptr %[[HOST]][32]
// CHECK:   %[[OA:.+]] = llvm.load %[[SLOT]]
// CHECK:   %[[Y:.+]] = llvm.call %[[OA]](%[[F]], %{{.+}}, %{{.+}}) : !llvm.ptr, (!llvm.ptr, i64, !llvm.ptr) -> !llvm.ptr
// A static temporary: 64 bytes from the workspace.
// CHECK:   llvm.call @__moe_workspace_alloc(%[[F]], %{{.+}}) : (!llvm.ptr, i64) -> !llvm.ptr
// The loop body gives its allocation back: it saves cursor, end and
// segment (offsets 16, 24, 32) first and restores them last.
// CHECK:   scf.for
// CHECK:     llvm.getelementptr %[[F]][16]
// CHECK:     llvm.getelementptr %[[F]][24]
// CHECK:     llvm.getelementptr %[[F]][32]
// CHECK:     llvm.call @__moe_workspace_alloc
// The error hook calls report_error (host slot 1, byte 8).
// CHECK:     llvm.getelementptr %{{.+}}[8]
// CHECK:     llvm.call %{{.+}}(%[[F]], %{{.+}}) : !llvm.ptr, (!llvm.ptr, i32) -> ()
// CHECK:     llvm.store %{{.+}}, %{{.+}} : !llvm.ptr, !llvm.ptr
// CHECK:     llvm.store %{{.+}}, %{{.+}} : !llvm.ptr, !llvm.ptr
// CHECK:     llvm.store %{{.+}}, %{{.+}} : i64, !llvm.ptr
// CHECK:   }
// A copy between strided views becomes linalg.copy (no memrefCopy).
// CHECK:   linalg.copy ins(%{{.+}} : memref<?x2xf32, strided<[4, 1]>>) outs(%{{.+}} : memref<?x2xf32, strided<[4, 1]>>)
// Result 1 (the weight) is static: copied into frame->outputs[1]
// (offset 64, then 8).
// CHECK:   llvm.getelementptr %[[F]][64]
// CHECK:   llvm.getelementptr %{{.+}}[8]
// CHECK:   memref.copy %[[W]], %{{.+}} : memref<4xf32> to memref<4xf32>
// Result 2 (the input) is dynamic and copied: output_alloc at the return.
// CHECK:   llvm.call %{{.+}}(%[[F]], %{{.+}}, %{{.+}}) : !llvm.ptr, (!llvm.ptr, i64, !llvm.ptr) -> !llvm.ptr
// CHECK:   memref.copy %[[X]], %{{.+}} : memref<?x4xf32> to memref<?x4xf32>
// CHECK:   return
// CHECK-NOT: memref.alloc
// CHECK-NOT: moe_report_error
// The bump allocator: fast path in the segment, else workspace_grow
// (host slot 3, byte 24).
// CHECK-LABEL: llvm.func internal @__moe_workspace_alloc(
// CHECK:   llvm.cond_br
// CHECK:   llvm.store
// CHECK:   llvm.return
// CHECK:   llvm.getelementptr %{{.+}}[24]
// CHECK:   llvm.call
// CHECK:   llvm.return
func.func private @moe_report_error(i32)
func.func @main(%x: memref<?x4xf32>, %w: memref<4xf32> {moe.weight = 0 : i64}) -> (memref<?x4xf32>, memref<4xf32>, memref<?x4xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c3 = arith.constant 3 : index
  %n = memref.dim %x, %c0 : memref<?x4xf32>
  %y = memref.alloc(%n) {alignment = 64 : i64} : memref<?x4xf32>
  %t = memref.alloc() : memref<16xf32>
  scf.for %i = %c0 to %c3 step %c1 {
    %s = memref.alloc(%n) : memref<?xf32>
    %e = arith.constant 2 : i32
    func.call @moe_report_error(%e) : (i32) -> ()
    memref.dealloc %s : memref<?xf32>
  }
  %a = memref.subview %x[0, 0] [%n, 2] [1, 1] : memref<?x4xf32> to memref<?x2xf32, strided<[4, 1]>>
  %b = memref.subview %y[0, 0] [%n, 2] [1, 1] : memref<?x4xf32> to memref<?x2xf32, strided<[4, 1]>>
  memref.copy %a, %b : memref<?x2xf32, strided<[4, 1]>> to memref<?x2xf32, strided<[4, 1]>>
  return %y, %w, %x : memref<?x4xf32>, memref<4xf32>, memref<?x4xf32>
}

// -----

// Static shapes: the workspace is exact. A loop that yields a buffer keeps
// its allocations (three iterations of 4 KiB), and a static result is
// allocated straight in frame->outputs[0].
// CHECK-LABEL: func.func @moe_entry_main(
// CHECK-SAME:      moe.workspace_bytes = 12288 : i64, moe.workspace_grows = false
// CHECK:   llvm.getelementptr %{{.+}}[64]
// CHECK:   scf.for
// CHECK-NOT:   llvm.store
// CHECK:     llvm.call @__moe_workspace_alloc
// CHECK:     scf.yield
func.func @main(%x: memref<1024xf32>) -> memref<1024xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c3 = arith.constant 3 : index
  %y = memref.alloc() : memref<1024xf32>
  %r = scf.for %i = %c0 to %c3 step %c1 iter_args(%acc = %x) -> memref<1024xf32> {
    %s = memref.alloc() : memref<1024xf32>
    scf.yield %s : memref<1024xf32>
  }
  memref.copy %r, %y : memref<1024xf32> to memref<1024xf32>
  return %y : memref<1024xf32>
}

// -----

// A result returned twice is allocated in the first output and copied
// into the second.
// CHECK-LABEL: func.func @moe_entry_main(
// CHECK:   llvm.getelementptr %{{.+}}[64]
// CHECK:   %[[O0:.+]] = builtin.unrealized_conversion_cast %{{.+}} to memref<8xf32>
// CHECK:   %[[O1:.+]] = builtin.unrealized_conversion_cast %{{.+}} to memref<8xf32>
// CHECK:   memref.copy %[[O0]], %[[O1]]
func.func @main() -> (memref<8xf32>, memref<8xf32>) {
  %y = memref.alloc() : memref<8xf32>
  return %y, %y : memref<8xf32>, memref<8xf32>
}


// -----

// Every public function is an entry, under the prefix.
// CHECK-LABEL: func.func @moe_entry_prefill(%{{.+}}: !llvm.ptr)
// CHECK-LABEL: func.func @moe_entry_decode(%{{.+}}: !llvm.ptr)
func.func @prefill() {
  return
}
func.func @decode() {
  return
}

// -----

// Weights are read by their index (moe.weight = k is frame->weights[k]),
// not by their position.
// CHECK-LABEL: func.func @moe_entry_main(
// CHECK:   %[[W:.+]] = llvm.load %{{.+}} : !llvm.ptr -> !llvm.ptr
// CHECK:   %[[B:.+]] = llvm.getelementptr %[[W]][8] : (!llvm.ptr) -> !llvm.ptr, i8
// CHECK:   llvm.load %[[B]] : !llvm.ptr -> !llvm.ptr
// CHECK:   %[[W2:.+]] = llvm.load %{{.+}} : !llvm.ptr -> !llvm.ptr
// CHECK:   %[[A:.+]] = llvm.getelementptr %[[W2]][0] : (!llvm.ptr) -> !llvm.ptr, i8
// CHECK:   llvm.load %[[A]] : !llvm.ptr -> !llvm.ptr
func.func @main(%b: memref<4xf32> {moe.weight = 1 : i64}, %a: memref<4xf32> {moe.weight = 0 : i64}) {
  return
}

// -----

// A region of several blocks keeps its allocations (values flow from block
// to block): no restore, and the blocks' needs add up (2 x 4 KiB).
// CHECK-LABEL: func.func @moe_entry_main(
// CHECK-SAME:      moe.workspace_bytes = 8192 : i64, moe.workspace_grows = false
// CHECK:   scf.execute_region
// CHECK-NOT: llvm.store
// CHECK:   return
func.func @main() {
  scf.execute_region {
    %t = memref.alloc() : memref<1024xf32>
    cf.br ^bb1
  ^bb1:
    %u = memref.alloc() : memref<1024xf32>
    memref.copy %t, %u : memref<1024xf32> to memref<1024xf32>
    scf.yield
  }
  return
}

// -----

// A buffer stored into memory escapes its block: the loop body keeps its
// allocation (no restore).
// CHECK-LABEL: func.func @moe_entry_main(
// CHECK-SAME:      moe.workspace_bytes = 64 : i64
// CHECK:   scf.for
// CHECK-NOT: llvm.store
// CHECK:     memref.store
// CHECK:   }
func.func @main() {
  %box = memref.alloca() : memref<memref<4xf32>>
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  scf.for %i = %c0 to %c1 step %c1 {
    %t = memref.alloc() : memref<4xf32>
    memref.store %t, %box[] : memref<memref<4xf32>>
  }
  return
}

// -----

// Sizes beyond 2^62 bytes are not sizes: the workspace is left to grow.
// CHECK-LABEL: func.func @moe_entry_main(
// CHECK-SAME:      moe.workspace_bytes = 0 : i64, moe.workspace_grows = true
func.func @main() {
  %t = memref.alloc() : memref<4294967296x4294967296xf32>
  return
}

// -----

// A result that is a view cast to an identity type (a Split part of a
// dynamic dim): its copy into the output goes through linalg.copy, since
// memref.copy would fold the cast and call MLIR's memrefCopy.
// CHECK-LABEL: func.func @moe_entry_main(
// CHECK-NOT:   memref.copy
// CHECK:   linalg.copy ins(%{{.+}} : memref<?x3xf32>) outs(%{{.+}} : memref<?x3xf32>)
// CHECK-NOT:   memref.copy
func.func @main(%x: memref<?x3xf32>) -> memref<?x3xf32> {
  %c1 = arith.constant 1 : index
  %c0 = arith.constant 0 : index
  %d = memref.dim %x, %c0 : memref<?x3xf32>
  %n = arith.subi %d, %c1 : index
  %v = memref.subview %x[0, 0] [%n, 3] [1, 1]
      : memref<?x3xf32> to memref<?x3xf32, strided<[3, 1]>>
  %c = memref.cast %v : memref<?x3xf32, strided<[3, 1]>> to memref<?x3xf32>
  return %c : memref<?x3xf32>
}

// -----

// A loop over a model's repeats carries its state in a buffer each
// iteration allocates: it becomes a pair of buffers allocated before the
// loop (the input copied into the first), each iteration copies what it
// yields into the second and yields the two swapped, so the body yields
// only its arguments and gives its workspace back (the restore before the
// yield). The need: the two 4 KiB buffers and one iteration's 4 KiB,
// then the unmarked loop below keeps 4 x 4 KiB.
// CHECK-LABEL: func.func @moe_entry_main(
// CHECK-SAME:      moe.workspace_bytes = 28672 : i64, moe.workspace_grows = false
// CHECK:   %[[A:.*]] = llvm.call @__moe_workspace_alloc
// CHECK:   %[[B:.*]] = llvm.call @__moe_workspace_alloc
// CHECK:   %[[R:.*]]:2 = scf.for {{.*}} iter_args(%[[CUR:.*]] = %{{.*}}, %[[OTHER:.*]] = %{{.*}}) -> (memref<1024xf32>, memref<1024xf32>) {
// CHECK:     llvm.load
// CHECK:     llvm.call @__moe_workspace_alloc
// CHECK:     linalg.generic {{.*}} ins(%[[CUR]] : memref<1024xf32>)
// CHECK:     memref.copy %{{.*}}, %[[OTHER]]
// CHECK-COUNT-3: llvm.store
// CHECK:     scf.yield %[[OTHER]], %[[CUR]] : memref<1024xf32>, memref<1024xf32>
// CHECK:   } {moe.repeats = 4 : i64}
// A loop without the repeats mark keeps its buffers.
// CHECK:   scf.for {{.*}} -> (memref<1024xf32>) {
// CHECK-NOT: llvm.store
// CHECK:   }
#id = affine_map<(i) -> (i)>
func.func @main(%x: memref<1024xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %r = scf.for %i = %c0 to %c4 step %c1 iter_args(%h = %x) -> (memref<1024xf32>) {
    %t = memref.alloc() : memref<1024xf32>
    linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel"]}
        ins(%h : memref<1024xf32>) outs(%t : memref<1024xf32>) {
    ^bb0(%a: f32, %b: f32):
      %s = arith.addf %a, %a : f32
      linalg.yield %s : f32
    }
    scf.yield %t : memref<1024xf32>
  } {moe.repeats = 4 : i64}
  %q = scf.for %i = %c0 to %c4 step %c1 iter_args(%h = %r) -> (memref<1024xf32>) {
    %t = memref.alloc() : memref<1024xf32>
    memref.copy %h, %t : memref<1024xf32> to memref<1024xf32>
    scf.yield %t : memref<1024xf32>
  }
  return
}

// -----

// A repeats loop whose carried buffer has a dynamic dim: the copy into the
// pair's second buffer is guarded by a dims check (a repeat that yields
// other dims reports error 3 instead of writing past the buffer). A
// position the body updates in place (it yields its own argument) is not
// paired.
// CHECK-LABEL: func.func @moe_entry_main(
// CHECK:   scf.for {{.*}} -> (memref<?xf32>, memref<4xf32>, memref<?xf32>) {
// CHECK:     %[[EQ:.*]] = arith.cmpi eq
// CHECK:     scf.if %[[EQ]] {
// CHECK:       memref.copy
// CHECK:     } else {
// CHECK:       %[[C3:.*]] = arith.constant 3 : i32
// CHECK:       llvm.call %{{.*}}(%{{.*}}, %[[C3]])
// CHECK:     }
// CHECK-COUNT-3: llvm.store
// CHECK:     scf.yield
// CHECK:   } {moe.repeats = 2 : i64}
#id2 = affine_map<(i) -> (i)>
func.func @main(%x: memref<?xf32>, %acc: memref<4xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %r:2 = scf.for %i = %c0 to %c2 step %c1 iter_args(%h = %x, %a = %acc) -> (memref<?xf32>, memref<4xf32>) {
    %n = memref.dim %h, %c0 : memref<?xf32>
    %t = memref.alloc(%n) : memref<?xf32>
    linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel"]}
        ins(%h : memref<?xf32>) outs(%t : memref<?xf32>) {
    ^bb0(%p: f32, %q: f32):
      %s = arith.addf %p, %p : f32
      linalg.yield %s : f32
    }
    %f = arith.constant 1.0 : f32
    memref.store %f, %a[%c0] : memref<4xf32>
    scf.yield %t, %a : memref<?xf32>, memref<4xf32>
  } {moe.repeats = 2 : i64}
  return
}

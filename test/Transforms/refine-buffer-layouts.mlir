// RUN: moe-opt %s --moe-refine-buffer-layouts --split-input-file | FileCheck %s

// A run-time size check after bufferization: a view of a cache or zeros.
// Both have unit columns and 4 x 82 rows of 82: those strides become
// static; the outer stride and the offset stay dynamic. Users read a cast
// of the refined result to the old type.
// CHECK-LABEL: func @view_or_zeros
// CHECK:         %[[R:.*]] = scf.if %{{.*}} -> (memref<?x?x4x82xf32, strided<[?, 328, 82, 1], offset: ?>>)
// CHECK:           scf.yield %{{.*}} : memref<?x?x4x82xf32, strided<[?, 328, 82, 1], offset: ?>>
// CHECK:         } else {
// CHECK:           %[[Z:.*]] = memref.alloc
// CHECK:           %[[C:.*]] = memref.cast %[[Z]] : memref<?x?x4x82xf32> to memref<?x?x4x82xf32, strided<[?, 328, 82, 1], offset: ?>>
// CHECK:           scf.yield %[[C]]
// CHECK:         %[[OLD:.*]] = memref.cast %[[R]] : {{.*}} to memref<?x?x4x82xf32, strided<[?, ?, ?, ?], offset: ?>>
// CHECK:         return %[[OLD]]
func.func @view_or_zeros(%ok: i1, %cache: memref<?x?x?x4x82xf32>, %l: index, %p: index, %b: index) -> memref<?x?x4x82xf32, strided<[?, ?, ?, ?], offset: ?>> {
  %view = memref.subview %cache[0, %l, 0, 0, 0] [%p, 1, %b, 4, 82] [1, 1, 1, 1, 1] : memref<?x?x?x4x82xf32> to memref<?x?x4x82xf32, strided<[?, 328, 82, 1], offset: ?>>
  %any = memref.cast %view : memref<?x?x4x82xf32, strided<[?, 328, 82, 1], offset: ?>> to memref<?x?x4x82xf32, strided<[?, ?, ?, ?], offset: ?>>
  %r = scf.if %ok -> (memref<?x?x4x82xf32, strided<[?, ?, ?, ?], offset: ?>>) {
    scf.yield %any : memref<?x?x4x82xf32, strided<[?, ?, ?, ?], offset: ?>>
  } else {
    %z = memref.alloc(%p, %b) : memref<?x?x4x82xf32>
    %c = memref.cast %z : memref<?x?x4x82xf32> to memref<?x?x4x82xf32, strided<[?, ?, ?, ?], offset: ?>>
    scf.yield %c : memref<?x?x4x82xf32, strided<[?, ?, ?, ?], offset: ?>>
  }
  return %r : memref<?x?x4x82xf32, strided<[?, ?, ?, ?], offset: ?>>
}

// -----

// Chained checks: the second if yields the first one's result; both are
// refined (the cast between them folds away).
// CHECK-LABEL: func @chained
// CHECK:         %[[A:.*]] = scf.if {{.*}} -> (memref<?x16xf32, strided<[?, 1], offset: ?>>)
// CHECK:         scf.if {{.*}} -> (memref<?x16xf32, strided<[?, 1], offset: ?>>)
// CHECK:           scf.yield %[[A]] : memref<?x16xf32, strided<[?, 1], offset: ?>>
func.func @chained(%ok: i1, %ok2: i1, %x: memref<?x32xf32>, %n: index) -> memref<?x16xf32, strided<[?, ?], offset: ?>> {
  %v = memref.subview %x[0, 8] [%n, 16] [1, 1] : memref<?x32xf32> to memref<?x16xf32, strided<[32, 1], offset: 8>>
  %a = scf.if %ok -> (memref<?x16xf32, strided<[?, ?], offset: ?>>) {
    %c = memref.cast %v : memref<?x16xf32, strided<[32, 1], offset: 8>> to memref<?x16xf32, strided<[?, ?], offset: ?>>
    scf.yield %c : memref<?x16xf32, strided<[?, ?], offset: ?>>
  } else {
    %z = memref.alloc(%n) : memref<?x16xf32>
    %c = memref.cast %z : memref<?x16xf32> to memref<?x16xf32, strided<[?, ?], offset: ?>>
    scf.yield %c : memref<?x16xf32, strided<[?, ?], offset: ?>>
  }
  %b = scf.if %ok2 -> (memref<?x16xf32, strided<[?, ?], offset: ?>>) {
    scf.yield %a : memref<?x16xf32, strided<[?, ?], offset: ?>>
  } else {
    %z = memref.alloc(%n) : memref<?x16xf32>
    %c = memref.cast %z : memref<?x16xf32> to memref<?x16xf32, strided<[?, ?], offset: ?>>
    scf.yield %c : memref<?x16xf32, strided<[?, ?], offset: ?>>
  }
  return %b : memref<?x16xf32, strided<[?, ?], offset: ?>>
}

// -----

// Left alone: branches that agree on nothing more than the result type
// says, a result that is already static, and non-memref results.
// CHECK-LABEL: func @unchanged
// CHECK:         scf.if {{.*}} -> (memref<?x?xf32, strided<[?, ?], offset: ?>>, index)
// CHECK:         scf.if {{.*}} -> (memref<4x4xf32>)
func.func @unchanged(%ok: i1, %x: memref<?x?xf32, strided<[?, ?], offset: ?>>, %y: memref<4x4xf32>, %n: index) -> (memref<?x?xf32, strided<[?, ?], offset: ?>>, index, memref<4x4xf32>) {
  %a:2 = scf.if %ok -> (memref<?x?xf32, strided<[?, ?], offset: ?>>, index) {
    scf.yield %x, %n : memref<?x?xf32, strided<[?, ?], offset: ?>>, index
  } else {
    %z = memref.alloc(%n, %n) : memref<?x?xf32>
    %c = memref.cast %z : memref<?x?xf32> to memref<?x?xf32, strided<[?, ?], offset: ?>>
    scf.yield %c, %n : memref<?x?xf32, strided<[?, ?], offset: ?>>, index
  }
  %b = scf.if %ok -> (memref<4x4xf32>) {
    scf.yield %y : memref<4x4xf32>
  } else {
    %z = memref.alloc() : memref<4x4xf32>
    scf.yield %z : memref<4x4xf32>
  }
  return %a#0, %a#1, %b : memref<?x?xf32, strided<[?, ?], offset: ?>>, index, memref<4x4xf32>
}


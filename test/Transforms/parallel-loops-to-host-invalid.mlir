// RUN: moe-opt %s --verify-diagnostics --moe-parallel-loops-to-host

// A value the closure cannot carry (a vector) is refused at the loop.
func.func @moe_entry_main(%frame: !llvm.ptr) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %m = memref.alloca() : memref<8x4xf32>
  %v = vector.broadcast %c0 : index to vector<4xindex>
  %f = arith.index_cast %v : vector<4xindex> to vector<4xi32>
  %g = arith.sitofp %f : vector<4xi32> to vector<4xf32>
  // expected-error @below {{moe-parallel-loops-to-host: cannot pass a 'vector<4xf32>' to a parallel body}}
  scf.parallel (%i) = (%c0) to (%c8) step (%c1) {
    vector.store %g, %m[%i, %c0] : memref<8x4xf32>, vector<4xf32>
    scf.reduce
  }
  return
}

// RUN: not moe-opt %s --moe-cpu-tile-contractions="vector-bits=100" 2>&1 | FileCheck %s --check-prefix=BITS
// RUN: not moe-opt %s --moe-cpu-tile-contractions="rows=0" 2>&1 | FileCheck %s --check-prefix=ROWS
// RUN: not moe-opt %s --moe-cpu-tile-contractions="row-column-vectors=-1" 2>&1 | FileCheck %s --check-prefix=ROWCOLS
// RUN: not moe-opt %s --moe-cpu-tile-contractions="accumulator-chains=0" 2>&1 | FileCheck %s --check-prefix=CHAINS

// BITS: error: moe-cpu-tile-contractions: vector-bits must be a multiple of 32 of at least 128, got 100
// ROWS: error: moe-cpu-tile-contractions: rows and column-vectors must be positive and row-column-vectors not negative, got 0, 2 and 0
// ROWCOLS: error: moe-cpu-tile-contractions: rows and column-vectors must be positive and row-column-vectors not negative, got 8, 2 and -1
// CHAINS: error: moe-cpu-tile-contractions: accumulator-chains must be at least 1 (1: off), got 0
func.func @f(%a: memref<8x8xf32>, %b: memref<8x64xf32>, %c: memref<8x64xf32>) {
  linalg.matmul ins(%a, %b : memref<8x8xf32>, memref<8x64xf32>) outs(%c : memref<8x64xf32>)
  return
}

// Input of cpu-tile-contractions-invalid.mlir (CONVERGE).
func.func @aliasing_views(%a: memref<16x8xf32>, %b: memref<8x16xf32>, %flat: memref<256xf32>) {
  %c = memref.expand_shape %flat [[0, 1]] output_shape [16, 16] : memref<256xf32> into memref<16x16xf32>
  linalg.matmul ins(%a, %b : memref<16x8xf32>, memref<8x16xf32>) outs(%c : memref<16x16xf32>)
  return
}

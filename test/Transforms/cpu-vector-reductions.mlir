// RUN: moe-opt %s --split-input-file --moe-cpu-vector-reductions | FileCheck %s

// A softmax's row maximum and row sum along the innermost (contiguous)
// loop: their combining ops get reassoc; the exponent before the sum and
// the maximum's operands keep their flags.
#id = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d0)>
// CHECK-LABEL: func.func @softmax_rows
// CHECK:      arith.maximumf %{{.+}}, %{{.+}} fastmath<reassoc> : f32
// CHECK:      math.exp %{{.+}} : f32
// CHECK-NEXT: arith.addf %{{.+}}, %{{.+}} fastmath<reassoc> : f32
func.func @softmax_rows(%s: tensor<?x256xf32>, %m0: tensor<?xf32>, %l0: tensor<?xf32>) -> (tensor<?xf32>, tensor<?xf32>) {
  %max = linalg.generic {indexing_maps = [#id, #row], iterator_types = ["parallel", "reduction"]}
      ins(%s : tensor<?x256xf32>) outs(%m0 : tensor<?xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %m = arith.maximumf %a, %acc : f32
    linalg.yield %m : f32
  } -> tensor<?xf32>
  %sum = linalg.generic {indexing_maps = [#id, #row, #row], iterator_types = ["parallel", "reduction"]}
      ins(%s, %max : tensor<?x256xf32>, tensor<?xf32>) outs(%l0 : tensor<?xf32>) {
  ^bb0(%a: f32, %m: f32, %acc: f32):
    %d = arith.subf %a, %m : f32
    %e = math.exp %d : f32
    %r = arith.addf %acc, %e : f32
    linalg.yield %r : f32
  } -> tensor<?xf32>
  return %max, %sum : tensor<?xf32>, tensor<?xf32>
}

// -----

// Flags already set are kept.
#id = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d0)>
// CHECK-LABEL: func.func @keeps_flags
// CHECK:      arith.addf %{{.+}}, %{{.+}} fastmath<reassoc,contract> : f32
func.func @keeps_flags(%s: tensor<?x256xf32>, %l0: tensor<?xf32>) -> tensor<?xf32> {
  %sum = linalg.generic {indexing_maps = [#id, #row], iterator_types = ["parallel", "reduction"]}
      ins(%s : tensor<?x256xf32>) outs(%l0 : tensor<?xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %r = arith.addf %a, %acc fastmath<contract> : f32
    linalg.yield %r : f32
  } -> tensor<?xf32>
  return %sum : tensor<?xf32>
}

// -----

// Left alone: a reduction that is not the innermost loop (a column sum),
// one whose input walks a strided dim with the reduction (x^T's rows), a
// matmul-like body with two reductions, a product (mulf is not a
// combiner it handles), and an accumulator read twice.
#id = affine_map<(d0, d1) -> (d0, d1)>
#t = affine_map<(d0, d1) -> (d1, d0)>
#row = affine_map<(d0, d1) -> (d0)>
#col = affine_map<(d0, d1) -> (d1)>
#a3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#r3 = affine_map<(d0, d1, d2) -> (d0)>
// CHECK-LABEL: func.func @kept
// CHECK-NOT:  reassoc
// CHECK:      return
func.func @kept(%s: tensor<64x256xf32>, %c0: tensor<256xf32>, %r0: tensor<64xf32>, %r3: tensor<4x8x16xf32>, %z: tensor<4xf32>) -> (tensor<256xf32>, tensor<64xf32>, tensor<4xf32>, tensor<64xf32>, tensor<64xf32>) {
  %col = linalg.generic {indexing_maps = [#t, #row], iterator_types = ["parallel", "reduction"]}
      ins(%s : tensor<64x256xf32>) outs(%c0 : tensor<256xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %r = arith.addf %a, %acc : f32
    linalg.yield %r : f32
  } -> tensor<256xf32>
  %strided = linalg.generic {indexing_maps = [#t, #col], iterator_types = ["parallel", "reduction"]}
      ins(%s : tensor<64x256xf32>) outs(%r0 : tensor<64xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %r = arith.addf %a, %acc : f32
    linalg.yield %r : f32
  } -> tensor<64xf32>
  %two = linalg.generic {indexing_maps = [#a3, #r3], iterator_types = ["parallel", "reduction", "reduction"]}
      ins(%r3 : tensor<4x8x16xf32>) outs(%z : tensor<4xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %r = arith.addf %a, %acc : f32
    linalg.yield %r : f32
  } -> tensor<4xf32>
  %prod = linalg.generic {indexing_maps = [#id, #row], iterator_types = ["parallel", "reduction"]}
      ins(%s : tensor<64x256xf32>) outs(%r0 : tensor<64xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %r = arith.mulf %a, %acc : f32
    linalg.yield %r : f32
  } -> tensor<64xf32>
  %twice = linalg.generic {indexing_maps = [#id, #row], iterator_types = ["parallel", "reduction"]}
      ins(%s : tensor<64x256xf32>) outs(%r0 : tensor<64xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %m = arith.mulf %a, %acc : f32
    %r = arith.addf %m, %acc : f32
    linalg.yield %r : f32
  } -> tensor<64xf32>
  return %col, %strided, %two, %prod, %twice : tensor<256xf32>, tensor<64xf32>, tensor<4xf32>, tensor<64xf32>, tensor<64xf32>
}

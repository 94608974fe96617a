// One MoEUT layer (shared/spec/models.md section 4) with peri-layernorm:
//
//   xn  = LN1(x)
//   x   = x + SwitchHead(q_src = xn, k_src = xn, v_src = x)
//   x   = x + sigma-MoE(experts read x, selector reads LN2(x))
//
// Sizes: D = 64, SwitchHead H = 2, dh = 16, 4 experts per head, k = 2,
// RoPE on half of each head; sigma-MoE E = 8, Ge = 32, k = 2. Batch and
// sequence are dynamic. LayerNorm (no affine parameters, eps = 1e-5) is plain
// linalg. Run: moe-opt examples/moeut_layer.mlir --moe-decompose

func.func @layer_norm(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?x64xf32>
  %zero = arith.constant 0.0 : f32
  %inv_d = arith.constant 0.015625 : f32
  %eps = arith.constant 1.0e-5 : f32
  %acc0 = tensor.empty(%n) : tensor<?xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%acc0 : tensor<?xf32>) -> tensor<?xf32>
  %sum = linalg.reduce ins(%x : tensor<?x64xf32>) outs(%acc : tensor<?xf32>) dimensions = [1]
    (%in: f32, %out: f32) {
      %s = arith.addf %in, %out : f32
      linalg.yield %s : f32
    }
  %full = tensor.empty(%n) : tensor<?x64xf32>
  %mean = linalg.broadcast ins(%sum : tensor<?xf32>) outs(%full : tensor<?x64xf32>) dimensions = [1]
  %centered = linalg.generic {
      indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>],
      iterator_types = ["parallel", "parallel"]}
      ins(%x, %mean : tensor<?x64xf32>, tensor<?x64xf32>) outs(%full : tensor<?x64xf32>) {
    ^bb0(%v: f32, %m: f32, %o: f32):
      %mu = arith.mulf %m, %inv_d : f32
      %c = arith.subf %v, %mu : f32
      linalg.yield %c : f32
  } -> tensor<?x64xf32>
  %sq = linalg.reduce ins(%centered : tensor<?x64xf32>) outs(%acc : tensor<?xf32>) dimensions = [1]
    (%in: f32, %out: f32) {
      %p = arith.mulf %in, %in : f32
      %s = arith.addf %p, %out : f32
      linalg.yield %s : f32
    }
  %var = linalg.broadcast ins(%sq : tensor<?xf32>) outs(%full : tensor<?x64xf32>) dimensions = [1]
  %y = linalg.generic {
      indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>],
      iterator_types = ["parallel", "parallel"]}
      ins(%centered, %var : tensor<?x64xf32>, tensor<?x64xf32>) outs(%full : tensor<?x64xf32>) {
    ^bb0(%c: f32, %s: f32, %o: f32):
      %v = arith.mulf %s, %inv_d : f32
      %ve = arith.addf %v, %eps : f32
      %r = math.rsqrt %ve : f32
      %n2 = arith.mulf %c, %r : f32
      linalg.yield %n2 : f32
  } -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

func.func @moeut_layer(%x: tensor<?x?x64xf32>,
                       // SwitchHead
                       %wq: tensor<64x32xf32>, %wk: tensor<64x32xf32>, %wv: tensor<8x64x16xf32>,
                       %wo: tensor<8x16x64xf32>, %sel_o: tensor<8x64xf32>, %sel_v: tensor<8x64xf32>,
                       // sigma-MoE
                       %wsel: tensor<8x64xf32>, %w1: tensor<8x64x32xf32>, %w2: tensor<8x32x64xf32>)
    -> tensor<?x?x64xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %b = tensor.dim %x, %c0 : tensor<?x?x64xf32>
  %t = tensor.dim %x, %c1 : tensor<?x?x64xf32>
  %rows = tensor.collapse_shape %x [[0, 1], [2]] : tensor<?x?x64xf32> into tensor<?x64xf32>

  // Attention block.
  %xn_rows = func.call @layer_norm(%rows) : (tensor<?x64xf32>) -> tensor<?x64xf32>
  %xn = tensor.expand_shape %xn_rows [[0, 1], [2]] output_shape [%b, %t, 64] : tensor<?x64xf32> into tensor<?x?x64xf32>
  %att = moe.switchhead %xn, %xn, %x, %wq, %wk, %wv, %wo, %sel_o sel_v(%sel_v)
      {num_heads = 2 : i64, k = 2 : i64, rotate_fraction = 0.5 : f64}
      : (tensor<?x?x64xf32>, tensor<?x?x64xf32>, tensor<?x?x64xf32>, tensor<64x32xf32>, tensor<64x32xf32>,
         tensor<8x64x16xf32>, tensor<8x16x64xf32>, tensor<8x64xf32>, tensor<8x64xf32>) -> tensor<?x?x64xf32>
  %x1 = arith.addf %x, %att : tensor<?x?x64xf32>

  // Feed-forward block: experts read x, the selector reads LN2(x).
  %x1_rows = tensor.collapse_shape %x1 [[0, 1], [2]] : tensor<?x?x64xf32> into tensor<?x64xf32>
  %ln2 = func.call @layer_norm(%x1_rows) : (tensor<?x64xf32>) -> tensor<?x64xf32>
  %upd = moe.ffn %x1_rows, %wsel, %w1, %w2 selector(%ln2) gate<sigmoid> act<relu> {k = 2 : i64}
      : (tensor<?x64xf32>, tensor<8x64xf32>, tensor<8x64x32xf32>, tensor<8x32x64xf32>, tensor<?x64xf32>) -> tensor<?x64xf32>
  %x2_rows = arith.addf %x1_rows, %upd : tensor<?x64xf32>
  %x2 = tensor.expand_shape %x2_rows [[0, 1], [2]] output_shape [%b, %t, 64] : tensor<?x64xf32> into tensor<?x?x64xf32>
  return %x2 : tensor<?x?x64xf32>
}

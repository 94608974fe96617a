// RUN: moe-opt %s --moe-generation-entries --split-input-file --verify-diagnostics

// Refusals: no or non-causal attention, a static sequence length, and ops
// the position analysis cannot show to treat each position on its own.

#map_tok = affine_map<(b, t, d) -> (b, t)>
#map3 = affine_map<(b, t, d) -> (b, t, d)>
#map_sum = affine_map<(b, t, d) -> (b, d)>

// expected-error @+1 {{cannot derive generation entries: the model has no causal attention (moe.switchhead); generation needs a causal language model}}
func.func @main(%tokens: tensor<?x?xi64>) -> tensor<?x?x32xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %emb = arith.constant dense<0.5> : tensor<16x32xf32>
  %b = tensor.dim %tokens, %c0 : tensor<?x?xi64>
  %t = tensor.dim %tokens, %c1 : tensor<?x?xi64>
  %e0 = tensor.empty(%b, %t) : tensor<?x?x32xf32>
  %x = linalg.generic {indexing_maps = [#map_tok, #map3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%tokens : tensor<?x?xi64>) outs(%e0 : tensor<?x?x32xf32>) {
  ^bb0(%tok: i64, %out: f32):
    %i = arith.index_cast %tok : i64 to index
    %d = linalg.index 2 : index
    %v = tensor.extract %emb[%i, %d] : tensor<16x32xf32>
    linalg.yield %v : f32
  } -> tensor<?x?x32xf32>
  return %x : tensor<?x?x32xf32>
}

// -----

#map_tok = affine_map<(b, t, d) -> (b, t)>
#map3 = affine_map<(b, t, d) -> (b, t, d)>
#map_sum = affine_map<(b, t, d) -> (b, d)>
func.func @main(%tokens: tensor<?x?xi64>) -> tensor<?x?x32xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %emb = arith.constant dense<0.5> : tensor<16x32xf32>
  %b = tensor.dim %tokens, %c0 : tensor<?x?xi64>
  %t = tensor.dim %tokens, %c1 : tensor<?x?xi64>
  %e0 = tensor.empty(%b, %t) : tensor<?x?x32xf32>
  %x = linalg.generic {indexing_maps = [#map_tok, #map3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%tokens : tensor<?x?xi64>) outs(%e0 : tensor<?x?x32xf32>) {
  ^bb0(%tok: i64, %out: f32):
    %i = arith.index_cast %tok : i64 to index
    %d = linalg.index 2 : index
    %v = tensor.extract %emb[%i, %d] : tensor<16x32xf32>
    linalg.yield %v : f32
  } -> tensor<?x?x32xf32>
  %wq = arith.constant dense<0.1> : tensor<32x16xf32>
  %wv = arith.constant dense<0.1> : tensor<8x32x8xf32>
  %wo = arith.constant dense<0.1> : tensor<8x8x32xf32>
  %s = arith.constant dense<0.1> : tensor<8x32xf32>
  // expected-error @+1 {{cannot derive generation entries: this attention is not causal}}
  %a = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %s sel_v(%s) {num_heads = 2 : i64, k = 2 : i64, causal = false}
      : (tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>,
         tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<?x?x32xf32>
  return %a : tensor<?x?x32xf32>
}

// -----

#map_tok = affine_map<(b, t, d) -> (b, t)>
#map3 = affine_map<(b, t, d) -> (b, t, d)>
#map_sum = affine_map<(b, t, d) -> (b, d)>
// expected-error @+1 {{cannot derive generation entries: the sequence dim of the tokens is static ('tensor<2x5xi64>'); export the model with a dynamic sequence axis}}
func.func @main(%tokens: tensor<2x5xi64>) -> tensor<2x5x32xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %emb = arith.constant dense<0.5> : tensor<16x32xf32>
  %b = tensor.dim %tokens, %c0 : tensor<2x5xi64>
  %t = tensor.dim %tokens, %c1 : tensor<2x5xi64>
  %e0 = tensor.empty() : tensor<2x5x32xf32>
  %x = linalg.generic {indexing_maps = [#map_tok, #map3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%tokens : tensor<2x5xi64>) outs(%e0 : tensor<2x5x32xf32>) {
  ^bb0(%tok: i64, %out: f32):
    %i = arith.index_cast %tok : i64 to index
    %d = linalg.index 2 : index
    %v = tensor.extract %emb[%i, %d] : tensor<16x32xf32>
    linalg.yield %v : f32
  } -> tensor<2x5x32xf32>
  return %x : tensor<2x5x32xf32>
}

// -----

#map_tok = affine_map<(b, t, d) -> (b, t)>
#map3 = affine_map<(b, t, d) -> (b, t, d)>
#map_sum = affine_map<(b, t, d) -> (b, d)>
func.func @main(%tokens: tensor<?x?xi64>) -> tensor<?x32xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %emb = arith.constant dense<0.5> : tensor<16x32xf32>
  %b = tensor.dim %tokens, %c0 : tensor<?x?xi64>
  %t = tensor.dim %tokens, %c1 : tensor<?x?xi64>
  %e0 = tensor.empty(%b, %t) : tensor<?x?x32xf32>
  %x = linalg.generic {indexing_maps = [#map_tok, #map3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%tokens : tensor<?x?xi64>) outs(%e0 : tensor<?x?x32xf32>) {
  ^bb0(%tok: i64, %out: f32):
    %i = arith.index_cast %tok : i64 to index
    %d = linalg.index 2 : index
    %v = tensor.extract %emb[%i, %d] : tensor<16x32xf32>
    linalg.yield %v : f32
  } -> tensor<?x?x32xf32>
  %wq = arith.constant dense<0.1> : tensor<32x16xf32>
  %wv = arith.constant dense<0.1> : tensor<8x32x8xf32>
  %wo = arith.constant dense<0.1> : tensor<8x8x32xf32>
  %s = arith.constant dense<0.1> : tensor<8x32xf32>
  %a = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %s sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>,
         tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<?x?x32xf32>
  %zero = arith.constant 0.0 : f32
  %e1 = tensor.empty(%b) : tensor<?x32xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e1 : tensor<?x32xf32>) -> tensor<?x32xf32>
  // expected-error @+1 {{cannot derive generation entries: 'linalg.generic' reduces over the position dim (loop 1)}}
  %m = linalg.generic {indexing_maps = [#map3, #map_sum], iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%a : tensor<?x?x32xf32>) outs(%z : tensor<?x32xf32>) {
  ^bb0(%p: f32, %o: f32):
    %v = arith.addf %p, %o : f32
    linalg.yield %v : f32
  } -> tensor<?x32xf32>
  return %m : tensor<?x32xf32>
}

// -----

#map_tok = affine_map<(b, t, d) -> (b, t)>
#map3 = affine_map<(b, t, d) -> (b, t, d)>
#map_sum = affine_map<(b, t, d) -> (b, d)>
func.func @main(%tokens: tensor<?x?xi64>) -> tensor<?x?x32xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %emb = arith.constant dense<0.5> : tensor<16x32xf32>
  %b = tensor.dim %tokens, %c0 : tensor<?x?xi64>
  %t = tensor.dim %tokens, %c1 : tensor<?x?xi64>
  %e0 = tensor.empty(%b, %t) : tensor<?x?x32xf32>
  %x = linalg.generic {indexing_maps = [#map_tok, #map3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%tokens : tensor<?x?xi64>) outs(%e0 : tensor<?x?x32xf32>) {
  ^bb0(%tok: i64, %out: f32):
    %i = arith.index_cast %tok : i64 to index
    %d = linalg.index 2 : index
    %v = tensor.extract %emb[%i, %d] : tensor<16x32xf32>
    linalg.yield %v : f32
  } -> tensor<?x?x32xf32>
  %wq = arith.constant dense<0.1> : tensor<32x16xf32>
  %wv = arith.constant dense<0.1> : tensor<8x32x8xf32>
  %wo = arith.constant dense<0.1> : tensor<8x8x32xf32>
  %s = arith.constant dense<0.1> : tensor<8x32xf32>
  %a = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %s sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>,
         tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<?x?x32xf32>
  %e1 = tensor.empty(%b, %t) : tensor<?x?x32xf32>
  // expected-error @+1 {{cannot derive generation entries: 'linalg.generic' reads the index of the position loop 1}}
  %m = linalg.generic {indexing_maps = [#map3, #map3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%a : tensor<?x?x32xf32>) outs(%e1 : tensor<?x?x32xf32>) {
  ^bb0(%p: f32, %o: f32):
    %pos = linalg.index 1 : index
    %pi = arith.index_cast %pos : index to i64
    %pf = arith.sitofp %pi : i64 to f32
    %v = arith.addf %p, %pf : f32
    linalg.yield %v : f32
  } -> tensor<?x?x32xf32>
  return %m : tensor<?x?x32xf32>
}

// -----

#map_tok = affine_map<(b, t, d) -> (b, t)>
#map3 = affine_map<(b, t, d) -> (b, t, d)>
#map_sum = affine_map<(b, t, d) -> (b, d)>
func.func @main(%tokens: tensor<?x?xi64>) -> tensor<?x?x32xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %emb = arith.constant dense<0.5> : tensor<16x32xf32>
  %b = tensor.dim %tokens, %c0 : tensor<?x?xi64>
  %t = tensor.dim %tokens, %c1 : tensor<?x?xi64>
  %e0 = tensor.empty(%b, %t) : tensor<?x?x32xf32>
  %x = linalg.generic {indexing_maps = [#map_tok, #map3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%tokens : tensor<?x?xi64>) outs(%e0 : tensor<?x?x32xf32>) {
  ^bb0(%tok: i64, %out: f32):
    %i = arith.index_cast %tok : i64 to index
    %d = linalg.index 2 : index
    %v = tensor.extract %emb[%i, %d] : tensor<16x32xf32>
    linalg.yield %v : f32
  } -> tensor<?x?x32xf32>
  %wq = arith.constant dense<0.1> : tensor<32x16xf32>
  %wv = arith.constant dense<0.1> : tensor<8x32x8xf32>
  %wo = arith.constant dense<0.1> : tensor<8x8x32xf32>
  %s = arith.constant dense<0.1> : tensor<8x32xf32>
  %a = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %s sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>,
         tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<?x?x32xf32>
  %e1 = tensor.empty(%b, %t) : tensor<?x?x32xf32>
  %ti = arith.index_cast %t : index to i64
  %tf = arith.sitofp %ti : i64 to f32
  // expected-error @+1 {{cannot derive generation entries: 'linalg.generic' reads a position-carrying tensor or a sequence length inside its body ('arith.mulf')}}
  %m = linalg.generic {indexing_maps = [#map3, #map3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%a : tensor<?x?x32xf32>) outs(%e1 : tensor<?x?x32xf32>) {
  ^bb0(%p: f32, %o: f32):
    %v = arith.mulf %p, %tf : f32
    linalg.yield %v : f32
  } -> tensor<?x?x32xf32>
  return %m : tensor<?x?x32xf32>
}

// -----

#map_tok = affine_map<(b, t, d) -> (b, t)>
#map3 = affine_map<(b, t, d) -> (b, t, d)>
#map_sum = affine_map<(b, t, d) -> (b, d)>
func.func @main(%tokens: tensor<?x?xi64>) -> tensor<?x1x32xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %emb = arith.constant dense<0.5> : tensor<16x32xf32>
  %b = tensor.dim %tokens, %c0 : tensor<?x?xi64>
  %t = tensor.dim %tokens, %c1 : tensor<?x?xi64>
  %e0 = tensor.empty(%b, %t) : tensor<?x?x32xf32>
  %x = linalg.generic {indexing_maps = [#map_tok, #map3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%tokens : tensor<?x?xi64>) outs(%e0 : tensor<?x?x32xf32>) {
  ^bb0(%tok: i64, %out: f32):
    %i = arith.index_cast %tok : i64 to index
    %d = linalg.index 2 : index
    %v = tensor.extract %emb[%i, %d] : tensor<16x32xf32>
    linalg.yield %v : f32
  } -> tensor<?x?x32xf32>
  %wq = arith.constant dense<0.1> : tensor<32x16xf32>
  %wv = arith.constant dense<0.1> : tensor<8x32x8xf32>
  %wo = arith.constant dense<0.1> : tensor<8x8x32xf32>
  %s = arith.constant dense<0.1> : tensor<8x32xf32>
  %a = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %s sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>,
         tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<?x?x32xf32>
  // expected-error @+1 {{cannot derive generation entries: 'tensor.extract_slice' reads the sequence positions in a way the derivation cannot check}}
  %m = tensor.extract_slice %a[0, 0, 0] [%b, 1, 32] [1, 1, 1] : tensor<?x?x32xf32> to tensor<?x1x32xf32>
  return %m : tensor<?x1x32xf32>
}

// -----

#map_tok = affine_map<(b, t, d) -> (b, t)>
#map3 = affine_map<(b, t, d) -> (b, t, d)>
#map_sum = affine_map<(b, t, d) -> (b, d)>
func.func @main(%tokens: tensor<?x?xi64>) -> tensor<?x?x32xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %emb = arith.constant dense<0.5> : tensor<16x32xf32>
  %b = tensor.dim %tokens, %c0 : tensor<?x?xi64>
  %t = tensor.dim %tokens, %c1 : tensor<?x?xi64>
  %e0 = tensor.empty(%b, %t) : tensor<?x?x32xf32>
  %x = linalg.generic {indexing_maps = [#map_tok, #map3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%tokens : tensor<?x?xi64>) outs(%e0 : tensor<?x?x32xf32>) {
  ^bb0(%tok: i64, %out: f32):
    %i = arith.index_cast %tok : i64 to index
    %d = linalg.index 2 : index
    %v = tensor.extract %emb[%i, %d] : tensor<16x32xf32>
    linalg.yield %v : f32
  } -> tensor<?x?x32xf32>
  %wq = arith.constant dense<0.1> : tensor<32x16xf32>
  %wv = arith.constant dense<0.1> : tensor<8x32x8xf32>
  %wo = arith.constant dense<0.1> : tensor<8x8x32xf32>
  %s = arith.constant dense<0.1> : tensor<8x32xf32>
  %a = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %s sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>,
         tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<?x?x32xf32>
  %e1 = tensor.empty(%b, %t) : tensor<?x?x32xf32>
  // expected-error @+1 {{cannot derive generation entries: 'linalg.generic' reads element 0 of a position dim}}
  %m = linalg.generic {indexing_maps = [affine_map<(b, t, d) -> (b, 0, d)>, #map3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%a : tensor<?x?x32xf32>) outs(%e1 : tensor<?x?x32xf32>) {
  ^bb0(%p: f32, %o: f32):
    linalg.yield %p : f32
  } -> tensor<?x?x32xf32>
  return %m : tensor<?x?x32xf32>
}


// -----

#map_tok = affine_map<(b, t, d) -> (b, t)>
#map3 = affine_map<(b, t, d) -> (b, t, d)>
#map_sum = affine_map<(b, t, d) -> (b, d)>
func.func private @opaque(tensor<?x?x32xf32>) -> tensor<?x?x32xf32>
func.func @main(%tokens: tensor<?x?xi64>) -> tensor<?x?x32xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %emb = arith.constant dense<0.5> : tensor<16x32xf32>
  %b = tensor.dim %tokens, %c0 : tensor<?x?xi64>
  %t = tensor.dim %tokens, %c1 : tensor<?x?xi64>
  %e0 = tensor.empty(%b, %t) : tensor<?x?x32xf32>
  %x = linalg.generic {indexing_maps = [#map_tok, #map3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%tokens : tensor<?x?xi64>) outs(%e0 : tensor<?x?x32xf32>) {
  ^bb0(%tok: i64, %out: f32):
    %i = arith.index_cast %tok : i64 to index
    %d = linalg.index 2 : index
    %v = tensor.extract %emb[%i, %d] : tensor<16x32xf32>
    linalg.yield %v : f32
  } -> tensor<?x?x32xf32>
  %wq = arith.constant dense<0.1> : tensor<32x16xf32>
  %wv = arith.constant dense<0.1> : tensor<8x32x8xf32>
  %wo = arith.constant dense<0.1> : tensor<8x8x32xf32>
  %s = arith.constant dense<0.1> : tensor<8x32xf32>
  %a = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %s sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>,
         tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<?x?x32xf32>
  // expected-error @+1 {{cannot derive generation entries: 'func.call' reads the sequence positions in a way the derivation cannot check}}
  %m = func.call @opaque(%a) : (tensor<?x?x32xf32>) -> tensor<?x?x32xf32>
  return %m : tensor<?x?x32xf32>
}


// -----

#map_tok = affine_map<(b, t, d) -> (b, t)>
#map3 = affine_map<(b, t, d) -> (b, t, d)>
#map_sum = affine_map<(b, t, d) -> (b, d)>
func.func @main(%tokens: tensor<?x?xi64>) -> tensor<2x?x16xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %emb = arith.constant dense<0.5> : tensor<16x32xf32>
  %b = tensor.dim %tokens, %c0 : tensor<?x?xi64>
  %t = tensor.dim %tokens, %c1 : tensor<?x?xi64>
  %e0 = tensor.empty(%b, %t) : tensor<?x?x32xf32>
  %x = linalg.generic {indexing_maps = [#map_tok, #map3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%tokens : tensor<?x?xi64>) outs(%e0 : tensor<?x?x32xf32>) {
  ^bb0(%tok: i64, %out: f32):
    %i = arith.index_cast %tok : i64 to index
    %d = linalg.index 2 : index
    %v = tensor.extract %emb[%i, %d] : tensor<16x32xf32>
    linalg.yield %v : f32
  } -> tensor<?x?x32xf32>
  %wq = arith.constant dense<0.1> : tensor<32x16xf32>
  %wv = arith.constant dense<0.1> : tensor<8x32x8xf32>
  %wo = arith.constant dense<0.1> : tensor<8x8x32xf32>
  %s = arith.constant dense<0.1> : tensor<8x32xf32>
  %a = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %s sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>,
         tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<?x?x32xf32>
  %flat = tensor.collapse_shape %a [[0, 1, 2]] : tensor<?x?x32xf32> into tensor<?xf32>
  %bt = arith.muli %b, %t : index
  // expected-error @+1 {{cannot derive generation entries: this expand_shape splits dim 0 off outside the positions, not a batch size}}
  %m = tensor.expand_shape %flat [[0, 1, 2]] output_shape [2, %bt, 16] : tensor<?xf32> into tensor<2x?x16xf32>
  return %m : tensor<2x?x16xf32>
}

// -----

#map_tok = affine_map<(b, t, d) -> (b, t)>
#map3 = affine_map<(b, t, d) -> (b, t, d)>
#map_sum = affine_map<(b, t, d) -> (b, d)>
func.func @main(%tokens: tensor<?x?xi64>) -> tensor<?x32xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %emb = arith.constant dense<0.5> : tensor<16x32xf32>
  %b = tensor.dim %tokens, %c0 : tensor<?x?xi64>
  %t = tensor.dim %tokens, %c1 : tensor<?x?xi64>
  %e0 = tensor.empty(%b, %t) : tensor<?x?x32xf32>
  %x = linalg.generic {indexing_maps = [#map_tok, #map3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%tokens : tensor<?x?xi64>) outs(%e0 : tensor<?x?x32xf32>) {
  ^bb0(%tok: i64, %out: f32):
    %i = arith.index_cast %tok : i64 to index
    %d = linalg.index 2 : index
    %v = tensor.extract %emb[%i, %d] : tensor<16x32xf32>
    linalg.yield %v : f32
  } -> tensor<?x?x32xf32>
  %wq = arith.constant dense<0.1> : tensor<32x16xf32>
  %wv = arith.constant dense<0.1> : tensor<8x32x8xf32>
  %wo = arith.constant dense<0.1> : tensor<8x8x32xf32>
  %s = arith.constant dense<0.1> : tensor<8x32xf32>
  %a = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %s sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>,
         tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<?x?x32xf32>
  %e1 = tensor.empty(%b) : tensor<?x32xf32>
  // expected-error @+1 {{cannot derive generation entries: 'linalg.generic' folds the position loop 1 into its result}}
  %m = linalg.generic {indexing_maps = [#map3, #map_sum], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%a : tensor<?x?x32xf32>) outs(%e1 : tensor<?x32xf32>) {
  ^bb0(%p: f32, %o: f32):
    %v = arith.addf %p, %o : f32
    linalg.yield %v : f32
  } -> tensor<?x32xf32>
  return %m : tensor<?x32xf32>
}


// -----

#map_tok = affine_map<(b, t, d) -> (b, t)>
#map3 = affine_map<(b, t, d) -> (b, t, d)>
#map_sum = affine_map<(b, t, d) -> (b, d)>
func.func @main(%tokens: tensor<?x?xi64>) -> tensor<?x?x32xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %emb = arith.constant dense<0.5> : tensor<16x32xf32>
  %b = tensor.dim %tokens, %c0 : tensor<?x?xi64>
  %t = tensor.dim %tokens, %c1 : tensor<?x?xi64>
  %e0 = tensor.empty(%b, %t) : tensor<?x?x32xf32>
  %x = linalg.generic {indexing_maps = [#map_tok, #map3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%tokens : tensor<?x?xi64>) outs(%e0 : tensor<?x?x32xf32>) {
  ^bb0(%tok: i64, %out: f32):
    %i = arith.index_cast %tok : i64 to index
    %d = linalg.index 2 : index
    %v = tensor.extract %emb[%i, %d] : tensor<16x32xf32>
    linalg.yield %v : f32
  } -> tensor<?x?x32xf32>
  %wq = arith.constant dense<0.1> : tensor<32x16xf32>
  %wv = arith.constant dense<0.1> : tensor<8x32x8xf32>
  %wo = arith.constant dense<0.1> : tensor<8x8x32xf32>
  %s = arith.constant dense<0.1> : tensor<8x32xf32>
  %a = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %s sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>,
         tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<?x?x32xf32>
  %e1 = tensor.empty(%b, %t) : tensor<?x?x32xf32>
  %ti = arith.index_cast %t : index to i64
  %tf = arith.sitofp %ti : i64 to f32
  // expected-error @+1 {{cannot derive generation entries: 'linalg.generic' takes the sequence length as operand #1}}
  %m = linalg.generic {indexing_maps = [#map3, affine_map<(b, t, d) -> ()>, #map3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%a, %tf : tensor<?x?x32xf32>, f32) outs(%e1 : tensor<?x?x32xf32>) {
  ^bb0(%p: f32, %len: f32, %o: f32):
    %v = arith.divf %p, %len : f32
    linalg.yield %v : f32
  } -> tensor<?x?x32xf32>
  return %m : tensor<?x?x32xf32>
}


// -----

#map_tok = affine_map<(b, t, d) -> (b, t)>
#map3 = affine_map<(b, t, d) -> (b, t, d)>
#map_sum = affine_map<(b, t, d) -> (b, d)>
func.func @main(%tokens: tensor<?x?xi64>) -> tensor<?x?x32xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %emb = arith.constant dense<0.5> : tensor<16x32xf32>
  %b = tensor.dim %tokens, %c0 : tensor<?x?xi64>
  %t = tensor.dim %tokens, %c1 : tensor<?x?xi64>
  %e0 = tensor.empty(%b, %t) : tensor<?x?x32xf32>
  %x = linalg.generic {indexing_maps = [#map_tok, #map3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%tokens : tensor<?x?xi64>) outs(%e0 : tensor<?x?x32xf32>) {
  ^bb0(%tok: i64, %out: f32):
    %i = arith.index_cast %tok : i64 to index
    %d = linalg.index 2 : index
    %v = tensor.extract %emb[%i, %d] : tensor<16x32xf32>
    linalg.yield %v : f32
  } -> tensor<?x?x32xf32>
  %wq = arith.constant dense<0.1> : tensor<32x16xf32>
  %wv = arith.constant dense<0.1> : tensor<8x32x8xf32>
  %wo = arith.constant dense<0.1> : tensor<8x8x32xf32>
  %s = arith.constant dense<0.1> : tensor<8x32xf32>
  %a = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %s sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>,
         tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<?x?x32xf32>
  %c4 = arith.constant 4 : index
  // expected-error @+1 {{cannot derive generation entries: 'scf.for' reads the sequence positions in a way the derivation cannot check}}
  %m = scf.for %i = %c0 to %c4 step %c1 iter_args(%acc = %x) -> (tensor<?x?x32xf32>) {
    %n = tensor.cast %a : tensor<?x?x32xf32> to tensor<?x?x32xf32>
    scf.yield %n : tensor<?x?x32xf32>
  }
  return %m : tensor<?x?x32xf32>
}


// -----

#map_tok = affine_map<(b, t, d) -> (b, t)>
#map3 = affine_map<(b, t, d) -> (b, t, d)>
#map_sum = affine_map<(b, t, d) -> (b, d)>
func.func @main(%tokens: tensor<?x?xi64>) -> tensor<?x?x32xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %emb = arith.constant dense<0.5> : tensor<16x32xf32>
  %b = tensor.dim %tokens, %c0 : tensor<?x?xi64>
  %t = tensor.dim %tokens, %c1 : tensor<?x?xi64>
  %e0 = tensor.empty(%b, %t) : tensor<?x?x32xf32>
  %x = linalg.generic {indexing_maps = [#map_tok, #map3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%tokens : tensor<?x?xi64>) outs(%e0 : tensor<?x?x32xf32>) {
  ^bb0(%tok: i64, %out: f32):
    %i = arith.index_cast %tok : i64 to index
    %d = linalg.index 2 : index
    %v = tensor.extract %emb[%i, %d] : tensor<16x32xf32>
    linalg.yield %v : f32
  } -> tensor<?x?x32xf32>
  %wq = arith.constant dense<0.1> : tensor<32x16xf32>
  %wv = arith.constant dense<0.1> : tensor<8x32x8xf32>
  %wo = arith.constant dense<0.1> : tensor<8x8x32xf32>
  %s = arith.constant dense<0.1> : tensor<8x32xf32>
  %a = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %s sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>,
         tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<?x?x32xf32>
  %long = arith.cmpi ugt, %t, %c1 : index
  // expected-error @+1 {{cannot derive generation entries: 'scf.if' branches on the sequence length}}
  %m = scf.if %long -> (tensor<?x?x32xf32>) {
    scf.yield %a : tensor<?x?x32xf32>
  } else {
    scf.yield %x : tensor<?x?x32xf32>
  }
  return %m : tensor<?x?x32xf32>
}


// -----

#map_tok = affine_map<(b, t, d) -> (b, t)>
#map3 = affine_map<(b, t, d) -> (b, t, d)>
#map_sum = affine_map<(b, t, d) -> (b, d)>
func.func @main(%tokens: tensor<?x?xi64>) -> tensor<?x64xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %emb = arith.constant dense<0.5> : tensor<16x32xf32>
  %b = tensor.dim %tokens, %c0 : tensor<?x?xi64>
  %t = tensor.dim %tokens, %c1 : tensor<?x?xi64>
  %e0 = tensor.empty(%b, %t) : tensor<?x?x32xf32>
  %x = linalg.generic {indexing_maps = [#map_tok, #map3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%tokens : tensor<?x?xi64>) outs(%e0 : tensor<?x?x32xf32>) {
  ^bb0(%tok: i64, %out: f32):
    %i = arith.index_cast %tok : i64 to index
    %d = linalg.index 2 : index
    %v = tensor.extract %emb[%i, %d] : tensor<16x32xf32>
    linalg.yield %v : f32
  } -> tensor<?x?x32xf32>
  %wq = arith.constant dense<0.1> : tensor<32x16xf32>
  %wv = arith.constant dense<0.1> : tensor<8x32x8xf32>
  %wo = arith.constant dense<0.1> : tensor<8x8x32xf32>
  %s = arith.constant dense<0.1> : tensor<8x32xf32>
  %a = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %s sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>,
         tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<?x?x32xf32>
  %flat = tensor.collapse_shape %a [[0, 1, 2]] : tensor<?x?x32xf32> into tensor<?xf32>
  %bt = arith.muli %b, %t : index
  %c2 = arith.constant 2 : index
  %half = arith.divui %bt, %c2 : index
  // expected-error @+1 {{cannot derive generation entries: this expand_shape cuts across positions (64 elements per row, 32 per position)}}
  %m = tensor.expand_shape %flat [[0, 1]] output_shape [%half, 64] : tensor<?xf32> into tensor<?x64xf32>
  return %m : tensor<?x64xf32>
}


// -----

#map_tok = affine_map<(b, t, d) -> (b, t)>
#map3 = affine_map<(b, t, d) -> (b, t, d)>
#map_sum = affine_map<(b, t, d) -> (b, d)>
func.func @main(%tokens: tensor<?x?xi64>) -> tensor<?x32xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %emb = arith.constant dense<0.5> : tensor<16x32xf32>
  %b = tensor.dim %tokens, %c0 : tensor<?x?xi64>
  %t = tensor.dim %tokens, %c1 : tensor<?x?xi64>
  %e0 = tensor.empty(%b, %t) : tensor<?x?x32xf32>
  %x = linalg.generic {indexing_maps = [#map_tok, #map3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%tokens : tensor<?x?xi64>) outs(%e0 : tensor<?x?x32xf32>) {
  ^bb0(%tok: i64, %out: f32):
    %i = arith.index_cast %tok : i64 to index
    %d = linalg.index 2 : index
    %v = tensor.extract %emb[%i, %d] : tensor<16x32xf32>
    linalg.yield %v : f32
  } -> tensor<?x?x32xf32>
  %wq = arith.constant dense<0.1> : tensor<32x16xf32>
  %wv = arith.constant dense<0.1> : tensor<8x32x8xf32>
  %wo = arith.constant dense<0.1> : tensor<8x8x32xf32>
  %s = arith.constant dense<0.1> : tensor<8x32xf32>
  %a = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %s sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>,
         tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<?x?x32xf32>
  %rows = tensor.collapse_shape %a [[0, 1], [2]] : tensor<?x?x32xf32> into tensor<?x32xf32>
  %ws = arith.constant dense<0.1> : tensor<4x32xf32>
  %w1 = arith.constant dense<0.1> : tensor<4x32x8xf32>
  %w2 = arith.constant dense<0.1> : tensor<4x8x32xf32>
  // expected-error @+1 {{cannot derive generation entries: 'moe.ffn' has a capacity limit: a token's result depends on the other tokens}}
  %m = moe.ffn %rows, %ws, %w1, %w2 gate<softmax> act<relu> {capacity_factor = 1.0 : f64, k = 1 : i64} : (tensor<?x32xf32>, tensor<4x32xf32>, tensor<4x32x8xf32>, tensor<4x8x32xf32>) -> tensor<?x32xf32>
  return %m : tensor<?x32xf32>
}

// -----

// A report nested under a condition that never holds does not make a
// branch on the length an error path.
#map_tok = affine_map<(b, t, d) -> (b, t)>
#map3 = affine_map<(b, t, d) -> (b, t, d)>
#map_sum = affine_map<(b, t, d) -> (b, d)>
func.func private @moe_report_error(i32)
func.func @main(%tokens: tensor<?x?xi64>) -> tensor<?x?x32xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %emb = arith.constant dense<0.5> : tensor<16x32xf32>
  %b = tensor.dim %tokens, %c0 : tensor<?x?xi64>
  %t = tensor.dim %tokens, %c1 : tensor<?x?xi64>
  %e0 = tensor.empty(%b, %t) : tensor<?x?x32xf32>
  %x = linalg.generic {indexing_maps = [#map_tok, #map3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%tokens : tensor<?x?xi64>) outs(%e0 : tensor<?x?x32xf32>) {
  ^bb0(%tok: i64, %out: f32):
    %i = arith.index_cast %tok : i64 to index
    %d = linalg.index 2 : index
    %v = tensor.extract %emb[%i, %d] : tensor<16x32xf32>
    linalg.yield %v : f32
  } -> tensor<?x?x32xf32>
  %wq = arith.constant dense<0.1> : tensor<32x16xf32>
  %wv = arith.constant dense<0.1> : tensor<8x32x8xf32>
  %wo = arith.constant dense<0.1> : tensor<8x8x32xf32>
  %s = arith.constant dense<0.1> : tensor<8x32xf32>
  %a = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %s sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>,
         tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<?x?x32xf32>
  %long = arith.cmpi ugt, %t, %c1 : index
  %never = arith.constant false
  // expected-error @+1 {{cannot derive generation entries: 'scf.if' branches on the sequence length}}
  %m = scf.if %long -> (tensor<?x?x32xf32>) {
    scf.yield %a : tensor<?x?x32xf32>
  } else {
    scf.if %never {
      %code = arith.constant 3 : i32
      func.call @moe_report_error(%code) : (i32) -> ()
    }
    scf.yield %x : tensor<?x?x32xf32>
  }
  return %m : tensor<?x?x32xf32>
}

// -----

#map_tok = affine_map<(b, t, d) -> (b, t)>
#map3 = affine_map<(b, t, d) -> (b, t, d)>
#map_sum = affine_map<(b, t, d) -> (b, d)>
// expected-error @+1 {{cannot derive generation entries: @main must take one input, the tokens [B, T]; it takes 2}}
func.func @main(%tokens: tensor<?x?xi64>, %extra: tensor<?x?xi64>) -> tensor<?x?xi64> {
  return %tokens : tensor<?x?xi64>
}


// -----

#map_tok = affine_map<(b, t, d) -> (b, t)>
#map3 = affine_map<(b, t, d) -> (b, t, d)>
#map_sum = affine_map<(b, t, d) -> (b, d)>
// expected-error @+1 {{cannot derive generation entries: the module already has a symbol @prefill}}
func.func @main(%tokens: tensor<?x?xi64>) -> tensor<?x?x32xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %emb = arith.constant dense<0.5> : tensor<16x32xf32>
  %b = tensor.dim %tokens, %c0 : tensor<?x?xi64>
  %t = tensor.dim %tokens, %c1 : tensor<?x?xi64>
  %e0 = tensor.empty(%b, %t) : tensor<?x?x32xf32>
  %x = linalg.generic {indexing_maps = [#map_tok, #map3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%tokens : tensor<?x?xi64>) outs(%e0 : tensor<?x?x32xf32>) {
  ^bb0(%tok: i64, %out: f32):
    %i = arith.index_cast %tok : i64 to index
    %d = linalg.index 2 : index
    %v = tensor.extract %emb[%i, %d] : tensor<16x32xf32>
    linalg.yield %v : f32
  } -> tensor<?x?x32xf32>
  %wq = arith.constant dense<0.1> : tensor<32x16xf32>
  %wv = arith.constant dense<0.1> : tensor<8x32x8xf32>
  %wo = arith.constant dense<0.1> : tensor<8x8x32xf32>
  %s = arith.constant dense<0.1> : tensor<8x32xf32>
  %a = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %s sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>,
         tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<?x?x32xf32>
  return %a : tensor<?x?x32xf32>
}

func.func private @prefill()


// -----

#map_tok = affine_map<(b, t, d) -> (b, t)>
#map3 = affine_map<(b, t, d) -> (b, t, d)>
#map_sum = affine_map<(b, t, d) -> (b, d)>
// expected-error @+1 {{cannot derive generation entries: output 0 must be [B, T, V] with the positions in dim 1 only}}
func.func @main(%tokens: tensor<?x?xi64>) -> tensor<4x32xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %emb = arith.constant dense<0.5> : tensor<16x32xf32>
  %b = tensor.dim %tokens, %c0 : tensor<?x?xi64>
  %t = tensor.dim %tokens, %c1 : tensor<?x?xi64>
  %e0 = tensor.empty(%b, %t) : tensor<?x?x32xf32>
  %x = linalg.generic {indexing_maps = [#map_tok, #map3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%tokens : tensor<?x?xi64>) outs(%e0 : tensor<?x?x32xf32>) {
  ^bb0(%tok: i64, %out: f32):
    %i = arith.index_cast %tok : i64 to index
    %d = linalg.index 2 : index
    %v = tensor.extract %emb[%i, %d] : tensor<16x32xf32>
    linalg.yield %v : f32
  } -> tensor<?x?x32xf32>
  %wq = arith.constant dense<0.1> : tensor<32x16xf32>
  %wv = arith.constant dense<0.1> : tensor<8x32x8xf32>
  %wo = arith.constant dense<0.1> : tensor<8x8x32xf32>
  %s = arith.constant dense<0.1> : tensor<8x32xf32>
  %a = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %s sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>,
         tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<?x?x32xf32>
  %w = arith.constant dense<0.5> : tensor<4x32xf32>
  return %w : tensor<4x32xf32>
}


// -----

// Layers whose caches differ in shape (2 heads of 8, then 4 heads of 4)
// cannot share one stacked cache.
#map_tok = affine_map<(b, t, d) -> (b, t)>
#map3 = affine_map<(b, t, d) -> (b, t, d)>
func.func @main(%tokens: tensor<?x?xi64>) -> tensor<?x?x32xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %emb = arith.constant dense<0.5> : tensor<16x32xf32>
  %b = tensor.dim %tokens, %c0 : tensor<?x?xi64>
  %t = tensor.dim %tokens, %c1 : tensor<?x?xi64>
  %e0 = tensor.empty(%b, %t) : tensor<?x?x32xf32>
  %x = linalg.generic {indexing_maps = [#map_tok, #map3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%tokens : tensor<?x?xi64>) outs(%e0 : tensor<?x?x32xf32>) {
  ^bb0(%tok: i64, %out: f32):
    %i = arith.index_cast %tok : i64 to index
    %d = linalg.index 2 : index
    %v = tensor.extract %emb[%i, %d] : tensor<16x32xf32>
    linalg.yield %v : f32
  } -> tensor<?x?x32xf32>
  %wq = arith.constant dense<0.1> : tensor<32x16xf32>
  %wv = arith.constant dense<0.1> : tensor<8x32x8xf32>
  %wo = arith.constant dense<0.1> : tensor<8x8x32xf32>
  %s = arith.constant dense<0.1> : tensor<8x32xf32>
  %a = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %s sel_v(%s) {num_heads = 2 : i64, k = 2 : i64}
      : (tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>,
         tensor<8x32x8xf32>, tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<?x?x32xf32>
  %wv4 = arith.constant dense<0.1> : tensor<8x32x4xf32>
  %wo4 = arith.constant dense<0.1> : tensor<8x4x32xf32>
  // expected-error @+1 {{cannot derive generation entries: every attention layer must have the same element type, batch, heads and static key and value widths, for one stacked cache}}
  %a2 = moe.switchhead %a, %a, %a, %wq, %wq, %wv4, %wo4, %s sel_v(%s) {num_heads = 4 : i64, k = 2 : i64}
      : (tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>,
         tensor<8x32x4xf32>, tensor<8x4x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<?x?x32xf32>
  return %a2 : tensor<?x?x32xf32>
}

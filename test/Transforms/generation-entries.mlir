// RUN: moe-opt %s --moe-generation-entries --split-input-file | FileCheck %s

// A causal model: embedding, one SwitchHead layer with a residual, and a
// projection to 8 logits. @prefill and @decode are copies of @main whose
// attention is moe.switchhead_cached reading positions 0..past_length-1 of
// slice l of the stacked caches [L, B, H, C, d] (empty caches in @prefill)
// and writing its new rows into slice l of new_key/new_value
// [L, B, H, T, d], which follow the logits, named and with their dim
// symbols. The layer index is a constant defined before the layers
// (moe-roll-repeats makes it the loop's c + i*s).
// @prefill returns the last position's logits, after a run-time check that
// there is one.
// CHECK-LABEL: func.func @main(
// CHECK:         moe.switchhead %
// CHECK-LABEL: func.func @prefill(
// CHECK-SAME:      %[[T:.*]]: tensor<?x?xi64> {onnx.dim_params = ["B", "T"], onnx.name = "tokens"})
// CHECK-SAME:      -> (tensor<?x1x8xf32> {onnx.name = "logits"}, tensor<1x?x2x?x8xf32> {onnx.dim_params = ["", "B", "", "T", ""], onnx.name = "new_key"}, tensor<1x?x2x?x8xf32> {onnx.dim_params = ["", "B", "", "T", ""], onnx.name = "new_value"})
// CHECK:         %[[LEN:.*]] = tensor.dim %[[T]], %c1
// CHECK:         %[[B:.*]] = tensor.dim %[[T]], %c0
// CHECK-NEXT:    %[[L0:.*]] = arith.constant {moe.indexed_constant} 0 : index
// CHECK:         %[[KEYS:.*]] = tensor.empty(%[[B]], %[[LEN]]) : tensor<1x?x2x?x8xf32>
// CHECK:         %[[VALUES:.*]] = tensor.empty(%[[B]], %[[LEN]]) : tensor<1x?x2x?x8xf32>
// CHECK:         %[[PK:.*]] = tensor.empty(%[[B]]) : tensor<?x2x0x8xf32>
// CHECK:         %[[PV:.*]] = tensor.empty(%[[B]]) : tensor<?x2x0x8xf32>
// CHECK:         %[[A:.*]], %[[NK:.*]], %[[NV:.*]] = moe.switchhead_cached {{.*}} past(%[[PK]], %[[PV]]) sel_v(%{{.*}}) {k = 2 : i64, num_heads = 2 : i64}
// The new rows are checked to have the tokens' length and batch before they are
// stacked (a report and zeros otherwise, never a write past the slice).
// CHECK:         %[[NKT:.*]] = tensor.dim %[[NK]], %{{.*}}
// CHECK:         arith.cmpi eq, %[[NKT]], %[[LEN]]
// CHECK:         %[[NKB:.*]] = scf.if
// CHECK:         %[[NK2:.*]] = scf.if
// CHECK:         %[[SK:.*]] = tensor.insert_slice %[[NK2]] into %[[KEYS]][%[[L0]], 0, 0, 0, 0] [1, %[[B]], 2, %[[LEN]], 8] [1, 1, 1, 1, 1]
// CHECK:         %[[SV:.*]] = tensor.insert_slice %{{.*}} into %[[VALUES]][%[[L0]], 0, 0, 0, 0] [1, %[[B]], 2, %[[LEN]], 8] [1, 1, 1, 1, 1]
// CHECK:         %[[LOGITS:.*]] = linalg.generic {{.*}}"reduction", "parallel"]
// An empty prompt: a report and one position of zeros, so the slice at
// max(T, 1) - 1 stays inside the logits.
// CHECK:         %[[ONE:.*]] = arith.maxui %[[LEN]], %{{.*}}
// CHECK-NEXT:    %[[LAST:.*]] = arith.subi %[[ONE]], %{{.*}}
// CHECK:         %[[T1:.*]] = tensor.dim %[[LOGITS]], %{{.*}}
// CHECK-NEXT:    %[[OK:.*]] = arith.cmpi eq, %[[T1]], %[[ONE]]
// CHECK-NEXT:    %[[SAFE:.*]] = scf.if %[[OK]] -> (tensor<?x?x8xf32>) {
// CHECK-NEXT:      scf.yield %[[LOGITS]]
// CHECK-NEXT:    } else {
// CHECK:           func.call @moe_report_error
// CHECK:         %[[SLICE:.*]] = tensor.extract_slice %[[SAFE]][0, %[[LAST]], 0] [%{{.*}}, 1, 8] [1, 1, 1] : tensor<?x?x8xf32> to tensor<?x1x8xf32>
// CHECK:         return %[[SLICE]], %[[SK]], %[[SV]]
// CHECK-LABEL: func.func @decode(
// CHECK-SAME:      %[[DT:[^:]*]]: tensor<?x?xi64> {onnx.dim_params = ["B", "T"], onnx.name = "tokens"},
// CHECK-SAME:      %[[DK:.*]]: tensor<1x?x2x?x8xf32> {onnx.dim_params = ["", "B", "", "C", ""], onnx.name = "past_key"},
// CHECK-SAME:      %[[DV:.*]]: tensor<1x?x2x?x8xf32> {onnx.dim_params = ["", "B", "", "C", ""], onnx.name = "past_value"},
// CHECK-SAME:      %[[DL:.*]]: tensor<i64> {onnx.name = "past_length"})
// CHECK-SAME:      -> (tensor<?x?x8xf32> {onnx.name = "logits"}, tensor<1x?x2x?x8xf32> {{.*}}onnx.name = "new_key"}, tensor<1x?x2x?x8xf32> {{.*}}onnx.name = "new_value"})
// The value cache as long as the key cache, both of the tokens' batch: a
// report and zeros of the right size otherwise, so the slices stay inside.
// CHECK:         %[[C:.*]] = tensor.dim %[[DK]], %c3 : tensor<1x?x2x?x8xf32>
// CHECK:         %[[CV:.*]] = tensor.dim %[[DV]], %c3{{(_[0-9]+)?}} : tensor<1x?x2x?x8xf32>
// CHECK:         arith.cmpi eq, %[[CV]], %[[C]]
// CHECK:         %[[DV1:.*]] = scf.if
// CHECK:         %[[DK1:.*]] = scf.if
// CHECK:         %[[DV2:.*]] = scf.if
// past_length in [0, C] (code 4 otherwise, and 0 positions are read).
// CHECK:         %[[RAW:.*]] = tensor.extract %[[DL]][] : tensor<i64>
// CHECK:         %[[LEN:.*]] = arith.index_cast %[[RAW]] : i64 to index
// CHECK:         %[[C1:.*]] = arith.addi %[[C]], %c1{{(_[0-9]+)?}} : index
// CHECK:         arith.cmpi sge, %[[LEN]], %c0{{(_[0-9]+)?}} : index
// CHECK:         arith.cmpi slt, %[[LEN]], %[[C1]] : index
// CHECK:         %[[OK:.*]] = arith.andi
// CHECK:         arith.constant 4 : i32
// CHECK-NEXT:    func.call @moe_report_error
// CHECK:         %[[P:.*]] = arith.select %[[OK]], %[[LEN]], %{{.*}} : index
// CHECK:         %[[LK:.*]] = tensor.extract_slice %[[DK1]][%{{.*}}, 0, 0, 0, 0] [1, %{{.*}}, 2, %[[P]], 8] [1, 1, 1, 1, 1] : tensor<1x?x2x?x8xf32> to tensor<?x2x?x8xf32>
// CHECK:         %[[LV:.*]] = tensor.extract_slice %[[DV2]][%{{.*}}, 0, 0, 0, 0] [1, %{{.*}}, 2, %[[P]], 8] [1, 1, 1, 1, 1] : tensor<1x?x2x?x8xf32> to tensor<?x2x?x8xf32>
// CHECK:         moe.switchhead_cached {{.*}} past(%[[LK]], %[[LV]])
// CHECK-NOT:     moe.switchhead %
// CHECK-NOT:     tensor.extract_slice %{{.*}}[0, %{{.*}}, 0] [%{{.*}}, 1, 8]
#map_tok = affine_map<(b, t, d) -> (b, t)>
#map3 = affine_map<(b, t, d) -> (b, t, d)>
#map_x = affine_map<(b, t, d, j) -> (b, t, d)>
#map_w = affine_map<(b, t, d, j) -> (d, j)>
#map_y = affine_map<(b, t, d, j) -> (b, t, j)>
func.func @main(%tokens: tensor<?x?xi64> {onnx.name = "tokens", onnx.dim_params = ["B", "T"]})
    -> (tensor<?x?x8xf32> {onnx.name = "logits"}) {
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
  %r = linalg.generic {indexing_maps = [#map3, #map3, #map3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%a, %x : tensor<?x?x32xf32>, tensor<?x?x32xf32>) outs(%e1 : tensor<?x?x32xf32>) {
  ^bb0(%p: f32, %q: f32, %o: f32):
    %v = arith.addf %p, %q : f32
    linalg.yield %v : f32
  } -> tensor<?x?x32xf32>
  %head = arith.constant dense<0.2> : tensor<32x8xf32>
  %zero = arith.constant 0.0 : f32
  %e2 = tensor.empty(%b, %t) : tensor<?x?x8xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e2 : tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  %y = linalg.generic {indexing_maps = [#map_x, #map_w, #map_y], iterator_types = ["parallel", "parallel", "reduction", "parallel"]}
      ins(%r, %head : tensor<?x?x32xf32>, tensor<32x8xf32>) outs(%z : tensor<?x?x8xf32>) {
  ^bb0(%p: f32, %q: f32, %o: f32):
    %m = arith.mulf %p, %q : f32
    %v = arith.addf %m, %o : f32
    linalg.yield %v : f32
  } -> tensor<?x?x8xf32>
  return %y : tensor<?x?x8xf32>
}

// -----

// The cache capacity gets a dim symbol of its own when the tokens' sequence
// symbol is already "C" (the runtime ties equal symbols together).
// CHECK-LABEL: func.func @main(
// CHECK-LABEL: func.func @decode(
// CHECK-SAME:      onnx.dim_params = ["", "B", "", "C_", ""], onnx.name = "past_key"
#map_tok = affine_map<(b, t, d) -> (b, t)>
#map3 = affine_map<(b, t, d) -> (b, t, d)>
#map_x = affine_map<(b, t, d, j) -> (b, t, d)>
#map_w = affine_map<(b, t, d, j) -> (d, j)>
#map_y = affine_map<(b, t, d, j) -> (b, t, j)>
func.func @main(%tokens: tensor<?x?xi64> {onnx.name = "tokens", onnx.dim_params = ["B", "C"]})
    -> (tensor<?x?x8xf32> {onnx.name = "logits"}) {
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
  %r = linalg.generic {indexing_maps = [#map3, #map3, #map3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%a, %x : tensor<?x?x32xf32>, tensor<?x?x32xf32>) outs(%e1 : tensor<?x?x32xf32>) {
  ^bb0(%p: f32, %q: f32, %o: f32):
    %v = arith.addf %p, %q : f32
    linalg.yield %v : f32
  } -> tensor<?x?x32xf32>
  %head = arith.constant dense<0.2> : tensor<32x8xf32>
  %zero = arith.constant 0.0 : f32
  %e2 = tensor.empty(%b, %t) : tensor<?x?x8xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e2 : tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  %y = linalg.generic {indexing_maps = [#map_x, #map_w, #map_y], iterator_types = ["parallel", "parallel", "reduction", "parallel"]}
      ins(%r, %head : tensor<?x?x32xf32>, tensor<32x8xf32>) outs(%z : tensor<?x?x8xf32>) {
  ^bb0(%p: f32, %q: f32, %o: f32):
    %m = arith.mulf %p, %q : f32
    %v = arith.addf %m, %o : f32
    linalg.yield %v : f32
  } -> tensor<?x?x8xf32>
  return %y : tensor<?x?x8xf32>
}

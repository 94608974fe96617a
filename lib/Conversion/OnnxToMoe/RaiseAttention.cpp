//===- RaiseAttention.cpp - exported attention cores as moe.attention -----===//
//
// PyTorch writes scaled dot-product attention (torch's own
// scaled_dot_product_attention, or a model's matmul / softmax / matmul) as
//
//   Softmax(MatMul(q', kT') [* c | / c] [+ mask], axis -1) @ v
//
// or with the probabilities p guarded as Where(IsNaN(p), 0, p) (torch's own
// scaled_dot_product_attention, exported by TorchScript or dynamo: a row
// whose keys are all masked is 0 instead of NaN; moe.attention's
// zero_nan_probs),
//
// with the scale multiplied into q' and kT' (torch's own
// scaled_dot_product_attention), or into the scores as `* c` (a Hugging
// Face eager attention; c a scalar constant, which becomes the op's scale:
// the same f32 multiply), or as `/ c` (older Hugging Face eager attention,
// c = sqrt(d)): the scale 1 / c, the same bits where c is a power of two
// and within an ulp of each score otherwise (x / c is not x * (1 / c) in
// f32; docs/tolerance.md). The conversion would materialise the [B, H, T, S]
// scores, add the mask in one pass, and run the softmax in three more. This
// matcher recognises the core and hands it to
// org.moe_mlir.internal.MaskedAttention, i.e. moe.attention with the mask added
// to the scores and scale c (1 without), whose CPU lowering is the flash-style
// one (no [B, H, T, S] scores). The mask is whatever the export computes;
// nothing about it is assumed (not even that it is causal), so the answer is
// the exported graph's. Where ONNX would broadcast the scores up to the mask's
// or k's size, the raised core reports a shape error instead: the scores' T or
// S, or their B or H, being 1 at run time against the mask's larger one (a
// causal LM's mask has the queries' T and the keys' S, and B and H of 1 or the
// scores'), and q's B or H being 1 at run time against k's larger one (k's and
// v's 1s are repeated, as MatMul does).
//
//===----------------------------------------------------------------------===//

#include "RaiseMatchers.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::raise;

namespace {

/// A rank-4 f32 tensor value (of unranked type where the graph's shape
/// arithmetic knows its rank: a TorchScript export with dynamic axes).
bool isRank4F32(Value v) {
  Type elt = elementTypeOf(v);
  return elt && elt.isF32() && rankOf(v) == 4;
}

/// The standard node of `opType` defining `v` with exactly `inputs` inputs
/// and one result, at opset `minVersion` or later (what the conversion
/// accepts: older Add and Mul broadcast by attributes).
onnxir::NodeOp exactly(Value v, StringRef opType, unsigned inputs,
                       int64_t minVersion) {
  onnxir::NodeOp n = producer(v, opType);
  return n && n.getInputs().size() == inputs && n.getNumResults() == 1 &&
                 n.getVersion() >= minVersion
             ? n
             : onnxir::NodeOp();
}

/// `v` has one user (the matched node reads it once).
bool oneUse(Value v) { return v.hasOneUse(); }

/// `v` is a constant f32 zero (of either sign) of one element and at most
/// rank 4 (Where's broadcast then leaves the probabilities' shape as it is).
bool isZeroScalar(Value v) {
  std::optional<APFloat> c =
      oneElementFloat(v, 4, Float32Type::get(v.getContext()));
  return c && c->isZero();
}

/// a's dim i and b's dim j are provably equal, or one is not a known
/// constant (checked at run time).
bool compatible(Value a, int64_t i, Value b, int64_t j) {
  return sameDim(a, i, b, j) || !constantDim(a, i) || !constantDim(b, j);
}

} // namespace

FailureOr<AttentionCore> raise::matchAttentionCore(onnxir::NodeOp pv,
                                                   Miss &miss) {
  if (!pv.getDomain().empty() || pv.getOpType() != "MatMul" ||
      pv.getNumResults() != 1 || pv.getInputs().size() != 2)
    return failure();
  onnxir::NodeOp sm = exactly(pv.getInputs()[0], "Softmax", 1, 1);
  // torch's exported scaled_dot_product_attention guards the softmax:
  // Where(IsNaN(p), 0, p) (a fully masked row is NaN, then 0).
  onnxir::NodeOp guard = exactly(pv.getInputs()[0], "Where", 3, 9);
  onnxir::NodeOp isNan =
      guard ? exactly(guard.getInputs()[0], "IsNaN", 1, 13) : onnxir::NodeOp();
  if (!sm && isNan && isNan.getInputs()[0] == guard.getInputs()[2] &&
      isZeroScalar(guard.getInputs()[1]))
    sm = exactly(guard.getInputs()[2], "Softmax", 1, 1);
  else
    guard = onnxir::NodeOp();
  if (!sm) {
    // gpt-oss's attention sinks: the softmax runs over the scores and one
    // more column per head (Concat on the last axis), which a Slice drops
    // before P·V. moe.attention has no such column: say so.
    Value p = pv.getInputs()[0];
    onnxir::NodeOp slice = producer(p, "Slice");
    Value sliced = slice ? slice.getInputs()[0] : Value();
    if (onnxir::NodeOp cast = sliced ? producer(sliced, "Cast") : nullptr)
      sliced = cast.getInputs()[0];
    onnxir::NodeOp inner = sliced ? producer(sliced, "Softmax") : nullptr;
    if (inner) {
      Value logits = inner.getInputs()[0];
      if (onnxir::NodeOp sub = producer(logits, "Sub"))
        logits = sub.getInputs()[0];
      if (producer(logits, "Concat"))
        miss.why = "the softmax runs over the scores and extra columns "
                   "(attention sinks, as gpt-oss writes them) that P·V "
                   "leaves out; moe.attention has no such columns";
    }
    return failure(); // not an attention core
  }
  if (pv.getResult(0).use_empty())
    return failure(); // dead: eraseDead takes it
  Value x = sm.getInputs()[0];
  onnxir::NodeOp add = exactly(x, "Add", 2, 7);
  Value scores = x, mask;
  // The scores: a MatMul, or a Mul of one, or one divided (the scale,
  // checked below).
  auto isScores = [](Value v) {
    if (exactly(v, "MatMul", 2, 1))
      return true;
    onnxir::NodeOp mul = exactly(v, "Mul", 2, 7);
    onnxir::NodeOp div = exactly(v, "Div", 2, 7);
    return (mul && (exactly(mul.getInputs()[0], "MatMul", 2, 1) ||
                    exactly(mul.getInputs()[1], "MatMul", 2, 1))) ||
           (div && exactly(div.getInputs()[0], "MatMul", 2, 1));
  };
  if (add) {
    for (int i : {0, 1})
      if (isScores(add.getInputs()[i])) {
        scores = add.getInputs()[i];
        mask = add.getInputs()[1 - i];
        break;
      }
  }
  onnxir::NodeOp scaled = exactly(scores, "Mul", 2, 7);
  onnxir::NodeOp divided = exactly(scores, "Div", 2, 7);
  onnxir::NodeOp qk = exactly(scores, "MatMul", 2, 1);
  double scale = 1.0;
  Value product = scores;
  // A scalar f32 constant's value.
  auto scalarOf = [&](Value v) -> std::optional<double> {
    std::optional<APFloat> c =
        oneElementFloat(v, 0, Float32Type::get(pv.getContext()));
    return c ? std::optional<double>(c->convertToDouble()) : std::nullopt;
  };
  if (scaled) {
    for (int i : {0, 1}) {
      std::optional<double> c = scalarOf(scaled.getInputs()[1 - i]);
      if (exactly(scaled.getInputs()[i], "MatMul", 2, 1) && c) {
        scale = *c;
        product = scaled.getInputs()[i];
        qk = exactly(product, "MatMul", 2, 1);
        break;
      }
    }
  }
  // A division by c (older Hugging Face eager attention: by sqrt(d)) is
  // the scale 1 / c rounded to f32 (the op's attribute): exact where c is
  // a power of two, within an ulp of each score otherwise
  // (docs/tolerance.md), so only where 1 / c is a normal f32 (a c beyond
  // 8.5e37 would make it subnormal, one below 2.9e-39 infinite).
  bool abnormal = false;
  if (divided) {
    std::optional<double> c = scalarOf(divided.getInputs()[1]);
    if (exactly(divided.getInputs()[0], "MatMul", 2, 1) && c) {
      float reciprocal = static_cast<float>(1.0 / *c);
      abnormal = !std::isnormal(reciprocal);
      if (!abnormal) {
        scale = reciprocal;
        product = divided.getInputs()[0];
        qk = exactly(product, "MatMul", 2, 1);
      }
    }
  }
  if (!qk) {
    if (scaled)
      miss.why = "the scores are multiplied by something other than a "
                 "scalar f32 constant";
    if (divided)
      miss.why = abnormal ? "the scores are divided by a constant whose "
                            "reciprocal is not a normal f32"
                          : "the scores are not a MatMul divided by a scalar "
                            "f32 constant";
    return failure();
  }
  AttentionCore core{qk.getInputs()[0],
                     qk.getInputs()[1],
                     pv.getInputs()[1],
                     mask,
                     scale,
                     /*zeroNanProbs=*/bool(guard)};
  miss.why = "the softmax is not over the last axis of rank-4 f32 scores";
  // Softmax-13 and later (older ones flatten the dims from `axis` on, and
  // the conversion has no handler for them) over the last axis, given as
  // an int or absent (-1).
  std::optional<int64_t> axis = strictInt(sm, "axis", -1);
  if (sm.getVersion() < 13 || !axis || (*axis != -1 && *axis != 3))
    return failure();
  if (!isRank4F32(core.q) || !isRank4F32(core.kT) || !isRank4F32(core.v) ||
      !isRank4F32(scores) || (mask && !isRank4F32(mask)) ||
      !isRank4F32(pv.getResult(0)))
    return failure();
  miss.why = "the scores or probabilities have another reader";
  // (Guarded: the softmax is read by the IsNaN and the Where only.)
  bool probsReadOnce =
      guard ? oneUse(guard.getResult(0)) && oneUse(isNan.getResult(0)) &&
                  llvm::all_of(sm.getResult(0).getUsers(),
                               [&](Operation *user) {
                                 return user == guard || user == isNan;
                               }) &&
                  llvm::range_size(sm.getResult(0).getUses()) == 2
            : oneUse(sm.getResult(0));
  if (!probsReadOnce || !oneUse(x) || (add && !oneUse(scores)) ||
      (product != scores && !oneUse(product)))
    return failure();
  miss.why = "the scores' scale is 0 or not finite";
  if (!std::isfinite(scale) || scale == 0.0)
    return failure();
  // Batch and head dims: equal, or dynamic. moe.attention checks them at
  // run time and repeats k's and v's where they are 1 (as MatMul
  // broadcasts them; a run-time 1 of q's against k's larger one is
  // reported instead). Static sizes that differ (MatMul's static
  // broadcast, or its diagnostic) are left to the conversion.
  miss.why = "the batch or head dims of q, k and v differ";
  for (int64_t d : {0, 1})
    if (!compatible(core.kT, d, core.q, d) || !compatible(core.v, d, core.q, d))
      return failure();
  // The mask: [B or 1, H or 1, T or 1, S or 1] (a padding mask is [B, 1,
  // 1, S]). The lowering reads a static 1 in place and broadcasts a dim
  // that is 1 at run time, as Add does; static sizes that differ are not
  // taken.
  if (mask) {
    miss.why = "the mask is not [B or 1, H or 1, T or 1, S or 1] (a static "
               "size differs)";
    auto unit = [&](int64_t d) { return constantDim(mask, d) == 1; };
    for (int64_t d : {0, 1})
      if (!unit(d) && !compatible(mask, d, core.q, d))
        return failure();
    std::pair<Value, int64_t> scoreDims[2] = {{core.q, 2}, {core.kT, 3}};
    for (int64_t d : {2, 3}) {
      auto [of, i] = scoreDims[d - 2];
      if (!unit(d) && !compatible(mask, d, of, i))
        return failure();
    }
  }
  miss.why.clear();
  return core;
}

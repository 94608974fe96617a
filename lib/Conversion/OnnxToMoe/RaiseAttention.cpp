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
// or, as gpt-oss's eager attention writes its attention sinks, with the
// softmax over the scores and one constant logit per head concatenated as
// a last column (after an optional Sub of the row maximum), an f32 Cast,
// and a Slice that drops that column before P·V (moe.attention's sinks;
// matchSinks),
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
                 static_cast<int64_t>(n.getVersion()) >= minVersion
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

/// gpt-oss's attention sinks, as its eager attention is exported:
///
///   C = Concat(scores, Expand(sinks [1, H, 1, 1], shape), axis -1)
///   P = Slice(Cast?(Softmax(Sub(C, ReduceMax(C, axis -1)) | C)),
///             starts 0, ends -1, axis -1)
///   P @ v
///
/// Each row's softmax runs over its scores and its head's sink logit, and
/// the Slice drops the sink's column (the Sub of the row maximum changes
/// nothing a softmax computes; moe.attention's lowering subtracts its own).
/// The Expand must be to [B, H, T, 1]: a column one wide.
struct SinkForm {
  Value scores;            // C's first input
  DenseElementsAttr sinks; // [H] f32
  onnxir::NodeOp softmax;
  bool readOnce = false; // each intermediate has the one reader above
};

/// The integer list `name` of `node` (attribute), if present.
std::optional<SmallVector<int64_t>> intsAttr(onnxir::NodeOp node,
                                             StringRef name) {
  auto ints =
      dyn_cast_or_null<DenseI64ArrayAttr>(node.getNodeAttributes().get(name));
  if (!ints)
    return std::nullopt;
  return SmallVector<int64_t>(ints.asArrayRef());
}

/// `v` is the list {-1} or {3} (the last axis of a rank-4 tensor).
bool lastAxis(std::optional<SmallVector<int64_t>> v) {
  return v && v->size() == 1 && ((*v)[0] == -1 || (*v)[0] == 3);
}

std::optional<SinkForm> matchSinks(Value p, Miss &miss) {
  onnxir::NodeOp slice = producer(p, "Slice");
  if (!slice || slice.getNumResults() != 1)
    return std::nullopt;
  Value probs = slice.getInputs()[0];
  onnxir::NodeOp cast = exactly(probs, "Cast", 1, 13);
  if (cast)
    probs = cast.getInputs()[0];
  onnxir::NodeOp sm = exactly(probs, "Softmax", 1, 1);
  if (!sm)
    return std::nullopt;
  Value logits = sm.getInputs()[0];
  onnxir::NodeOp sub = exactly(logits, "Sub", 2, 7);
  onnxir::NodeOp rowMax =
      sub ? producer(sub.getInputs()[1], "ReduceMax") : onnxir::NodeOp();
  if (sub && rowMax && rowMax.getInputs()[0] == sub.getInputs()[0])
    logits = sub.getInputs()[0];
  else
    sub = rowMax = onnxir::NodeOp();
  onnxir::NodeOp concat = producer(logits, "Concat");
  if (!concat)
    return std::nullopt;
  // From here on it is the form; what does not fit is said.
  miss.why = "the softmax runs over the scores and extra columns (attention "
             "sinks, as gpt-oss writes them), but not as one constant logit "
             "per head concatenated on the last axis and sliced off before "
             "P·V";
  if (concat.getInputs().size() != 2 || concat.getNumResults() != 1 ||
      !lastAxis(SmallVector<int64_t>{strictInt(concat, "axis", 0).value_or(0)}))
    return std::nullopt;
  // The Slice: starts {0}, ends {-1}, axes {-1}, steps absent or {1}.
  auto ints = [&](unsigned i) -> std::optional<SmallVector<int64_t>> {
    if (i >= slice.getInputs().size() ||
        isa<NoneType>(slice.getInputs()[i].getType()))
      return std::nullopt;
    return intsOf(slice.getInputs()[i]);
  };
  std::optional<SmallVector<int64_t>> starts = ints(1), ends = ints(2),
                                      steps = ints(4);
  bool noSteps = slice.getInputs().size() < 5 ||
                 isa<NoneType>(slice.getInputs()[4].getType());
  if (!starts || *starts != SmallVector<int64_t>{0} || !ends ||
      *ends != SmallVector<int64_t>{-1} || !lastAxis(ints(3)) ||
      (!noSteps && (!steps || *steps != SmallVector<int64_t>{1})))
    return std::nullopt;
  if (cast) {
    std::optional<int64_t> to = intAttrOf(cast, "to");
    Type in = elementTypeOf(cast.getInputs()[0]);
    if (!to || *to != 1 || !in || !in.isF32())
      return std::nullopt;
  }
  if (rowMax) {
    // keepdims 1 (the default); the axes an attribute before opset 18, an
    // input from 18.
    std::optional<int64_t> keep = strictInt(rowMax, "keepdims", 1);
    std::optional<SmallVector<int64_t>> axes =
        rowMax.getVersion() < 18        ? intsAttr(rowMax, "axes")
        : rowMax.getInputs().size() > 1 ? intsOf(rowMax.getInputs()[1])
                                        : std::nullopt;
    if (!keep || *keep != 1 || !lastAxis(axes))
      return std::nullopt;
  }
  // The sinks: a constant [1, H, 1, 1], expanded or not.
  Value sinkColumn = concat.getInputs()[1];
  if (onnxir::NodeOp expand = producer(sinkColumn, "Expand")) {
    // To [B, H, T, 1]: the column one wide (torch computes the target
    // with its expand(-1) idiom, which the shape arithmetic follows).
    Value target = expand.getInputs()[1];
    if (knownLength(target) != 4 || knownEntry(target, 3) != 1) {
      miss.why = "the sink column is not provably one wide (the last "
                 "entry of its Expand's shape is not 1)";
      return std::nullopt;
    }
    sinkColumn = expand.getInputs()[0];
  }
  DenseElementsAttr sinks = constantOf(sinkColumn);
  if (!sinks || !sinks.getElementType().isF32())
    return std::nullopt;
  ArrayRef<int64_t> shape = sinks.getType().getShape();
  if (shape.size() != 4 || shape[0] != 1 || shape[1] < 1 || shape[2] != 1 ||
      shape[3] != 1)
    return std::nullopt;
  SinkForm form;
  form.scores = concat.getInputs()[0];
  form.sinks =
      sinks.reshape(RankedTensorType::get({shape[1]}, sinks.getElementType()));
  form.softmax = sm;
  form.readOnce =
      oneUse(p) && oneUse(sm.getResult(0)) &&
      (!cast || oneUse(cast.getResult(0))) &&
      (!sub || (oneUse(sub.getResult(0)) && oneUse(rowMax.getResult(0)) &&
                llvm::range_size(concat.getResult(0).getUses()) == 2)) &&
      (sub || oneUse(concat.getResult(0)));
  miss.why.clear();
  return form;
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
  std::optional<SinkForm> sinkForm;
  if (!sm) {
    // gpt-oss's attention sinks.
    sinkForm = matchSinks(pv.getInputs()[0], miss);
    if (!sinkForm)
      return failure(); // not an attention core, or miss.why says why not
    sm = sinkForm->softmax;
  }
  if (pv.getResult(0).use_empty())
    return failure(); // dead: eraseDead takes it
  Value x = sinkForm ? sinkForm->scores : sm.getInputs()[0];
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
                     /*zeroNanProbs=*/bool(guard),
                     sinkForm ? sinkForm->sinks : DenseElementsAttr()};
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
      sinkForm ? sinkForm->readOnce
      : guard  ? oneUse(guard.getResult(0)) && oneUse(isNan.getResult(0)) &&
                    llvm::all_of(sm.getResult(0).getUsers(),
                                 [&](Operation *user) {
                                   return user == guard || user == isNan;
                                 }) &&
                    llvm::range_size(sm.getResult(0).getUses()) == 2
              : oneUse(sm.getResult(0));
  if (!probsReadOnce || !oneUse(x) || (add && !oneUse(scores)) ||
      (product != scores && !oneUse(product)))
    return failure();
  if (sinkForm) {
    // One sink per head; one for every head is repeated where the head
    // count is known (not otherwise: moe.attention's sinks are [H]).
    std::optional<int64_t> heads = constantDim(core.q, 1);
    int64_t count = core.sinks.getNumElements();
    miss.why = "one sink shared by every head, with a head count known "
               "only at run time";
    if (count == 1 && !heads)
      return failure();
    if (count == 1 && *heads != 1)
      core.sinks = DenseElementsAttr::get(
          RankedTensorType::get({*heads}, core.sinks.getElementType()),
          SmallVector<APFloat>(*heads, core.sinks.getValues<APFloat>()[0]));
    miss.why = "the sinks are not one per head of q";
    if (heads && *heads != core.sinks.getNumElements())
      return failure();
  }
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

//===- RaiseMot.cpp - moe-raise-onnx's Mixture of Tokens ------------------===//
//
// Form (f) of moe-raise-onnx: a continuous Mixture of Tokens layer as
// `torch.onnx.export` writes the reference module (python/moe_ref/
// modules.py, MixtureOfTokens: one expert at a time, then a stacked sum)
// becomes one org.moe_mlir.MixtureOfTokens node, which the conversion turns
// into moe.mot:
//
//   xg = Reshape(x [B, T, D], [B / g, g, T, D])
//   m  = Softmax(MatMul(xg, Wctrl) / temperature, axis 1)   [C, g, T, E]
//   for each expert e (every e in [0, E) exactly once):
//     m_e = Gather(m, e, axis 3)                             [C, g, T]
//     z_e = Einsum("cgt,cgtd->ctd", m_e, xg)
//     y_e = Einsum("cgt,ctd->cgtd", m_e, MatMul(act(MatMul(z_e, W1_e)),
//                                               W2_e))
//   out = ReduceSum(Concat(Unsqueeze(y_e, 0) ..., axis 0), axes [0])
//
// with act relu, gelu (exact), silu or none; Wctrl, W1_e, W2_e constants.
// The node computes the same sums (moe.mot: z_e = sum_i m[i, e] x_i, y_e =
// act(z_e W1[e]) W2[e], out_i = sum_e m[i, e] y_e) with the experts'
// weights stacked [E, D, s] and [E, s, D], adding the experts' terms in
// another order. Its [B, T, D] result is reshaped back to [C, g, T, D] as
// the export's sum was. The group reshape's sizes are checked to be read
// from x's shape (B / g through Casts, T and D), or to equal x's static
// sizes.
//
//===----------------------------------------------------------------------===//

#include "RaiseMatchers.h"

#include "llvm/ADT/STLExtras.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::raise;

namespace {

/// `xg` = Reshape(x, [B / g, g, T, D]): x and g.
std::optional<std::pair<Value, int64_t>> groupsOf(Value xg) {
  onnxir::NodeOp rs = producer(xg, "Reshape");
  Value x = rs ? rs.getInputs()[0] : Value();
  auto t = x ? dyn_cast<RankedTensorType>(x.getType()) : RankedTensorType();
  if (!t || t.getRank() != 3)
    return std::nullopt;
  // A static export's constant shape [B / g, g, T, D].
  if (std::optional<SmallVector<int64_t>> c = intsOf(rs.getInputs()[1])) {
    if (c->size() != 4 || !t.hasStaticShape() || (*c)[0] < 1 || (*c)[1] < 1 ||
        t.getDimSize(0) % (*c)[1] != 0 ||
        (*c)[0] != t.getDimSize(0) / (*c)[1] || (*c)[2] != t.getDimSize(1) ||
        (*c)[3] != t.getDimSize(2))
      return std::nullopt;
    return std::make_pair(x, (*c)[1]);
  }
  onnxir::NodeOp cat = producer(rs.getInputs()[1], "Concat");
  if (!cat || cat.getInputs().size() != 4)
    return std::nullopt;
  ValueRange p = cat.getInputs();
  std::optional<SmallVector<int64_t>> g = intsOf(p[1]);
  if (!g || g->size() != 1 || (*g)[0] < 1 || !isDimPiece(p[2], x, 1) ||
      !isDimPiece(p[3], x, 2))
    return std::nullopt;
  // B / g: Div(Gather(Shape(x), 0), g) through Casts, or its static value.
  Value c = p[0];
  if (Value s = unsqueezed(c, 0))
    c = s;
  // (The dynamo exporter makes the scalar a piece with Reshape(s, [-1]).)
  if (onnxir::NodeOp r = producer(c, "Reshape"))
    if (isInts(r.getInputs()[1], {-1}) || isInts(r.getInputs()[1], {1}))
      c = r.getInputs()[0];
  while (onnxir::NodeOp cast = producer(c, "Cast"))
    c = cast.getInputs()[0];
  onnxir::NodeOp div = producer(c, "Div");
  bool groups = div && isDimOf(div.getInputs()[0], x, 0) &&
                isInts(div.getInputs()[1], {(*g)[0]});
  if (!groups && !t.isDynamicDim(0) && t.getDimSize(0) % (*g)[0] == 0)
    groups = isInts(p[0], {t.getDimSize(0) / (*g)[0]});
  if (!groups)
    return std::nullopt;
  return std::make_pair(x, (*g)[0]);
}

} // namespace

FailureOr<MotBlock> raise::matchMot(Value out, Miss &miss) {
  // out = ReduceSum(Concat(Unsqueeze(y_e, 0)...), [0]), keepdims 0.
  onnxir::NodeOp sum = producer(out, "ReduceSum");
  onnxir::NodeOp cat = sum && sum.getInputs().size() == 2
                           ? producer(sum.getInputs()[0], "Concat")
                           : onnxir::NodeOp();
  if (!cat || intAttrOf(cat, "axis").value_or(-1) != 0 ||
      cat.getInputs().empty())
    return failure();
  SmallVector<Value> terms;
  for (Value in : cat.getInputs()) {
    Value y = unsqueezed(in, 0);
    onnxir::NodeOp e;
    auto eq = y ? einsumOf(y, e) : std::nullopt;
    if (!eq || !matchEquation(*eq, "cgt", "ctd", "cgtd"))
      return failure(); // not a Mixture of Tokens sum
    terms.push_back(y);
  }
  miss.why = "the sum over experts is not ReduceSum over axis 0 without "
             "keepdims";
  if (!isInts(sum.getInputs()[1], {0}) ||
      intAttrOf(sum, "keepdims").value_or(1) != 0)
    return failure();
  MotBlock blk;
  Value mix, xg;
  int64_t numExperts = -1;
  SmallVector<DenseElementsAttr> w1, w2;
  for (Value y : terms) {
    onnxir::NodeOp unmix, down, up, mixIn;
    einsumOf(y, unmix);
    Value me = unmix.getInputs()[0];
    onnxir::NodeOp g = producer(me, "Gather");
    DenseElementsAttr index = g ? constantOf(g.getInputs()[1]) : nullptr;
    miss.why = "an expert's mixing weights are not Gather(m, e, axis 3) of "
               "one mixing tensor with a scalar constant e";
    if (!g || intAttrOf(g, "axis") != 3 || !index ||
        index.getType().getRank() != 0 ||
        !isa<IntegerType>(index.getElementType()) ||
        (mix && g.getInputs()[0] != mix))
      return failure();
    mix = g.getInputs()[0];
    int64_t e = (*index.getValues<APInt>().begin()).getSExtValue();
    // y_e = MatMul(act(MatMul(z_e, W1_e)), W2_e).
    miss.why = "an expert is not MatMul(act(MatMul(z, W1)), W2) with "
               "constant weights and act relu, gelu, silu or none";
    down = producer(unmix.getInputs()[1], "MatMul");
    DenseElementsAttr w2e = down ? constantOf(down.getInputs()[1]) : nullptr;
    if (!w2e || w2e.getType().getRank() != 2)
      return failure();
    Value hidden = down.getInputs()[0];
    std::string act = "identity";
    if (!producer(hidden, "MatMul")) {
      FailureOr<std::pair<std::string, Value>> a = matchActivation(hidden);
      if (failed(a) || a->first == "identity")
        return failure();
      act = a->first;
      hidden = a->second;
    }
    up = producer(hidden, "MatMul");
    DenseElementsAttr w1e = up ? constantOf(up.getInputs()[1]) : nullptr;
    if (!w1e || w1e.getType().getRank() != 2)
      return failure();
    if (!blk.activation.empty() && blk.activation != act) {
      miss.why = "the experts' activations differ";
      return failure();
    }
    blk.activation = act;
    // z_e = Einsum("cgt,cgtd->ctd", m_e, xg).
    auto zEq = einsumOf(up.getInputs()[0], mixIn);
    if (!zEq || !matchEquation(*zEq, "cgt", "cgtd", "ctd") ||
        mixIn.getInputs()[0] != me || (xg && mixIn.getInputs()[1] != xg)) {
      miss.why = "an expert's input is not Einsum(\"cgt,cgtd->ctd\") of its "
                 "mixing weights and the grouped tokens";
      return failure();
    }
    xg = mixIn.getInputs()[1];
    if (numExperts < 0)
      numExperts = cat.getInputs().size();
    if (e < 0 || e >= numExperts) {
      miss.why = "an expert index is out of range";
      return failure();
    }
    if (w1.empty()) {
      w1.assign(numExperts, nullptr);
      w2.assign(numExperts, nullptr);
    }
    if (w1[e]) {
      miss.why = "an expert appears twice in the sum";
      return failure();
    }
    w1[e] = w1e;
    w2[e] = w2e;
  }
  // m = Softmax(MatMul(xg, Wctrl) [/ temperature], axis 1), opset >= 13.
  miss.why = "the mixing weights are not Softmax(MatMul(x_grouped, W) / "
             "temperature) over the group axis";
  onnxir::NodeOp sm = producer(mix, "Softmax");
  if (!sm || intAttrOf(sm, "axis") != 1 || sm.getVersion() < 13)
    return failure();
  Value logits = sm.getInputs()[0];
  blk.temperature = 1.0;
  if (onnxir::NodeOp div = producer(logits, "Div")) {
    DenseElementsAttr c = constantOf(div.getInputs()[1]);
    if (!c || c.getNumElements() != 1 || c.getType().getRank() > 1 ||
        !isa<FloatType>(c.getElementType()))
      return failure();
    blk.temperature = (*c.getValues<APFloat>().begin()).convertToDouble();
    logits = div.getInputs()[0];
  }
  onnxir::NodeOp ctrl = producer(logits, "MatMul");
  blk.wCtrl = ctrl ? constantOf(ctrl.getInputs()[1]) : nullptr;
  if (!ctrl || ctrl.getInputs()[0] != xg || !blk.wCtrl ||
      blk.wCtrl.getType().getRank() != 2 ||
      // (as the node's f32 attribute keeps it)
      !((float)blk.temperature > 0 && std::isfinite((float)blk.temperature)))
    return failure();
  std::optional<std::pair<Value, int64_t>> groups = groupsOf(xg);
  if (!groups) {
    miss.why = "the grouped tokens are not Reshape(x [B, T, D], [B / g, g, "
               "T, D]) with sizes read from x";
    return failure();
  }
  blk.x = groups->first;
  blk.groupSize = groups->second;
  blk.groupShape = producer(xg, "Reshape").getInputs()[1];
  blk.reshape = producer(xg, "Reshape");
  // Shapes: Wctrl [D, E], W1_e [D, s], W2_e [s, D], all of one type.
  auto ctrlType = blk.wCtrl.getType();
  int64_t d = ctrlType.getDimSize(0);
  auto w1Type = w1[0].getType(), w2Type = w2[0].getType();
  bool ok = ctrlType.getDimSize(1) == numExperts;
  for (int64_t e = 0; ok && e < numExperts; ++e)
    ok = w1[e].getType() == w1Type && w2[e].getType() == w2Type;
  ok = ok && w1Type.getDimSize(0) == d && w2Type.getDimSize(1) == d &&
       w1Type.getDimSize(1) == w2Type.getDimSize(0) &&
       w1Type.getElementType() == ctrlType.getElementType() &&
       w2Type.getElementType() == ctrlType.getElementType();
  if (!ok) {
    miss.why = "the controller and expert weights disagree in E, D, the "
               "expert width or element type";
    return failure();
  }
  blk.w1 = stack(w1);
  blk.w2 = stack(w2);
  miss.why.clear();
  return blk;
}

//===- RaiseMoe.cpp - raise exported MoE blocks to routed moe ops --------===//
//
// `torch.onnx.export` writes an MoE layer as generic ops: a loop over
// experts, every expert computed, or a weight matrix gathered per routing
// slot. This pass, run on the ONNX graph before convert-onnx-to-moe,
// recognises such blocks and rewrites each into one node of our domains,
// which the conversion turns into routed moe ops (only the selected experts
// are computed, and the ops' verifiers check every shape). The forms:
//
//   (a) the per-expert loop of Hugging Face exports (Mixtral, Qwen2-MoE,
//       OLMoE), into an internal `org.moe_mlir.internal.RoutedExperts`
//       (moe.route + moe.dispatch + moe.grouped_matmul):
//         R = rows; L = MatMul(R, Wg) (or with a bias: Add, Gemm)
//         v, ids = TopK(Cast*(Softmax(L)), k)
//         rw = Cast*(v) (gate softmax) or Cast*(v / ReduceSum(v, -1))
//              (renormalised: gate topk_softmax)
//         M = Transpose(OneHot(ids, E, [0, 1]), [2, 1, 0])
//         for each expert e (every e in [0, E) exactly once):
//           slot, tok = Squeeze(Split(Transpose(NonZero(M[e]))))
//           out = MLP_e(Reshape(Gather(Unsqueeze(R, 0), tok, axis 1)))
//           acc += ScatterElements(zeros, Expand(Unsqueeze(tok, 1)),
//                                  Expand(out * rw_flat[tok * k + slot]))
//       with MLP_e = MatMul(act(MatMul(x, W1_e)) [* MatMul(x, W3_e)], W2_e).
//
//   (c) gathered per-slot weights, as the σ-MoE authors write it:
//         s = MatMul(xs, Wsel); v, i = TopK(s, k); w = gate(v)
//         h = Einsum("nd,nsdo->nso", x, Gather(W1, i))
//         y = Einsum("nsg,nsgd->nsd", act(h), Gather(W2, i))
//         out = Einsum("ns,nsd->nd", w, y)
//   (b) "run every expert, then mask":
//         g = ScatterElements(zeros(shape(s)), i, w, axis=-1)
//         h = Einsum("nd,edg->neg", x, W1)
//         y = Einsum("neg,egd->ned", act(h), W2)
//         out = Einsum("ne,ned->nd", g, y)
//
//   (g) transformers 5's `batched_mm` experts: each routing slot's
//       expert weights gathered and applied to the token's row (biases
//       and GPT-OSS's clamped SwiGLU included), then the k slots of a
//       token summed; into RoutedExperts, as (a), or, where the routing
//       is the graph's own, into SelectedExperts (the section "Form (g)"
//       below).
//
//   (e) SwitchHead attention as the reference module writes it, into
//       org.moe_mlir.SwitchHeadAttention (RaiseSwitchHead.cpp).
//   (f) continuous Mixture of Tokens as the reference module writes it
//       (one expert at a time, then a stacked sum), into
//       org.moe_mlir.MixtureOfTokens (RaiseMot.cpp).
//
// with gate(v) one of Sigmoid(v) (sigmoid), Softmax(v) (topk_softmax) or v
// itself when the TopK reads Softmax(s) (softmax); act one of Relu, Gelu
// (exact), x * Sigmoid(x) (silu) or none; Wsel, W1, W2 constants. Letters
// of the equations may differ; their structure is what is matched.
//
// Equivalence: (a) adds, for each token n and each slot s, rw[n, s] *
// MLP_{ids[n, s]}(R[n]): NonZero of M[e] lists exactly the (slot, token)
// pairs routed to e, a TopK's ids are distinct within a row so the scatter
// of one expert writes each token row at most once (ScatterElements without
// reduction into zeros, then Add, is the index_add_ it was exported from),
// and the chain visits every expert once. The raised code adds the same
// terms in slot order instead of expert order, and computes the
// renormalised gate as a softmax over the top-k logits, equal to the
// export's softmax-then-divide in exact arithmetic (the difference is
// rounding, as for com.microsoft.MoE's normalize_routing_weights).
// (c) computes exactly what moe.ffn computes (the same slots,
// the same weights). (b) adds g[n, e] * y[n, e] over every expert, where g
// is zero off the top-k: the same sum as long as the experts' outputs are
// finite (0 * inf is NaN in the dense form only), which the rewrite assumes,
// as ONNX Runtime's and OpenVINO's MoE fusions do.
//
// Anything else is left as exported (generic, correct). With `report`,
// every raise and every near miss (a combine Einsum, a SwitchHead output
// Einsum("nhk,nhkd->nd"), a Mixture of Tokens sum, or a per-expert OneHot
// -> NonZero loop, that did not match) is a remark at its node.
//
// Forms (e) and (f) also rewrite one node outside the block: where the
// export reshapes the block's result back to its source's own shape, that
// Reshape becomes the raised node's result (the round trip of views would
// compile to a copy).
//
//===----------------------------------------------------------------------===//

#include "RaiseMatchers.h"

#include "moe/Conversion/OnnxToMoe/OnnxToMoe.h"
#include "moe/Conversion/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/PatternMatch.h"

#include "llvm/ADT/StringSwitch.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <tuple>

namespace mlir::moe {
#define GEN_PASS_DEF_RAISEONNXMOE
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::raise;

namespace {

/// `v` with Cast-to-float nodes skipped (f32 models: they are identities).
Value skipFloatCasts(Value v) {
  while (onnxir::NodeOp c = producer(v, "Cast")) {
    if (intAttrOf(c, "to") != 1)
      break;
    v = c.getInputs()[0];
  }
  return v;
}

/// The rank of `v` where it is known: from its (stage 1) type, the
/// preparation's shapes, or through the ops that keep or define it
/// (MatMul, Reshape to a shape of known length, unary elementwise ops,
/// TopK, Softmax, Cast; for the nodes a raise created).
std::optional<int64_t> rankOf(Value v, int depth = 0) {
  if (int64_t r = raise::rankOf(v); r >= 0)
    return r;
  auto node = v.getDefiningOp<onnxir::NodeOp>();
  if (!node || !node.getDomain().empty() || depth > 8 ||
      node.getInputs().empty())
    return std::nullopt;
  StringRef op = node.getOpType();
  if (op == "Cast" || op == "Softmax" || op == "Sigmoid" || op == "TopK" ||
      op == "Relu" || op == "Identity")
    return rankOf(node.getInputs()[0], depth + 1);
  if (op == "MatMul" && node.getInputs().size() == 2) {
    std::optional<int64_t> a = rankOf(node.getInputs()[0], depth + 1);
    std::optional<int64_t> b = rankOf(node.getInputs()[1], depth + 1);
    if (a && b && *a >= 2 && *b >= 2)
      return std::max(*a, *b);
    return std::nullopt;
  }
  if (op == "Reshape" && node.getInputs().size() == 2) {
    Value shape = node.getInputs()[1];
    if (auto t = dyn_cast<RankedTensorType>(shape.getType());
        t && t.getRank() == 1 && !t.isDynamicDim(0))
      return t.getDimSize(0);
    if (DenseElementsAttr c = constantOf(shape))
      return c.getNumElements();
    // Concat of one-element pieces: constants and Unsqueeze(scalar).
    onnxir::NodeOp cat = producer(shape, "Concat");
    if (!cat)
      return std::nullopt;
    int64_t n = 0;
    for (Value piece : cat.getInputs()) {
      if (DenseElementsAttr c = constantOf(piece))
        n += c.getNumElements();
      else if (onnxir::NodeOp u = producer(piece, "Unsqueeze");
               u && rankOf(u.getInputs()[0], depth + 1) == 0)
        n += 1;
      else
        return std::nullopt;
    }
    return n;
  }
  if (op == "Gather" && node.getInputs().size() == 2) {
    // A scalar from a 1-D tensor (a dim out of a Shape).
    std::optional<int64_t> d = rankOf(node.getInputs()[0], depth + 1);
    std::optional<int64_t> i = rankOf(node.getInputs()[1], depth + 1);
    if (d && i)
      return *d - 1 + *i;
    if (producer(node.getInputs()[0], "Shape") && i)
      return *i;
    return std::nullopt;
  }
  if (op == "Constant") {
    if (DenseElementsAttr c = constantOf(v))
      return c.getType().getRank();
  }
  return std::nullopt;
}

/// Whether `axis` names the last axis of `v`: -1, or rank - 1 where the
/// rank of `v` is known.
bool isLastAxis(int64_t axis, Value v) {
  if (axis == -1)
    return true;
  std::optional<int64_t> rank = rankOf(v);
  return rank && axis == *rank - 1;
}

/// The same for a node's `axis` attribute (default -1, as Softmax-13 and
/// TopK have).
bool attrIsLastAxis(onnxir::NodeOp node, Value v) {
  // (Softmax before opset 13 defaults to axis 1, over which it flattens.)
  int64_t dflt =
      node.getOpType() == "Softmax" && node.getVersion() < 13 ? 1 : -1;
  return isLastAxis(intAttrOf(node, "axis").value_or(dflt), v);
}

/// The routing of a block: TopK over scores = MatMul(xs, Wsel) (+ bias).
struct Routing {
  Value selectorInput;
  DenseElementsAttr wsel; // [D, E] as the MatMul reads it
  DenseElementsAttr bias; // [E] (or [1, E]) where the router has one
  Value logits;           // the scores
  int64_t k;
  std::string gate;
  Value ids, weights;
};

/// The router `scores` = MatMul(x, W), Add(MatMul(x, W), b) or Gemm(x, W,
/// b) (alpha and beta 1, no transA; W^T read where transB), W a constant
/// [D, E] and b a constant of E elements: sets x, W and b.
bool matchRouter(Value scores, Routing &r) {
  auto selector = [&](DenseElementsAttr w) {
    return w && w.getType().getRank() == 2;
  };
  auto biasOf = [&](Value v) -> DenseElementsAttr {
    DenseElementsAttr b = constantOf(v);
    if (!b || !isa<FloatType>(b.getElementType()) ||
        b.getType().getRank() > 2 ||
        (b.getType().getRank() == 2 && b.getType().getDimSize(0) != 1))
      return {};
    return b;
  };
  if (onnxir::NodeOp mm = producer(scores, "MatMul")) {
    r.selectorInput = mm.getInputs()[0];
    r.wsel = constantOf(mm.getInputs()[1]);
  } else if (onnxir::NodeOp add = producer(scores, "Add")) {
    for (int i = 0; i < 2 && !r.wsel; ++i) {
      onnxir::NodeOp mm = producer(add.getInputs()[i], "MatMul");
      if (!mm || !selector(constantOf(mm.getInputs()[1])) ||
          !(r.bias = biasOf(add.getInputs()[1 - i])))
        continue;
      r.selectorInput = mm.getInputs()[0];
      r.wsel = constantOf(mm.getInputs()[1]);
    }
  } else if (onnxir::NodeOp gemm = producer(scores, "Gemm")) {
    auto unit = [&](StringRef name) {
      auto f = dyn_cast_or_null<FloatAttr>(gemm.getNodeAttributes().get(name));
      return !gemm.getNodeAttributes().get(name) ||
             (f && f.getValueAsDouble() == 1.0);
    };
    std::optional<int64_t> transA = strictInt(gemm, "transA", 0),
                           transB = strictInt(gemm, "transB", 0);
    DenseElementsAttr w = constantOf(gemm.getInputs()[1]);
    // (Gemm's A is 2-D: the Gemm stays in (a) and (g), and the conversion
    // checks it; (b) and (c), which would drop it, take MatMuls only.)
    if (!unit("alpha") || !unit("beta") || transA != 0 || !transB ||
        !selector(w))
      return false;
    if (gemm.getInputs().size() == 3 &&
        !isa<NoneType>(gemm.getInputs()[2].getType()) &&
        !(r.bias = biasOf(gemm.getInputs()[2])))
      return false;
    r.selectorInput = gemm.getInputs()[0];
    r.wsel = *transB ? transpose2d(w) : w;
  }
  if (!selector(r.wsel) ||
      (r.bias && (r.bias.getNumElements() != r.wsel.getType().getDimSize(1) ||
                  r.bias.getElementType() != r.wsel.getElementType())))
    return false;
  r.logits = scores;
  return true;
}

/// `weights` and `ids` from one TopK: w = gate(values).
FailureOr<Routing> matchRouting(Value weights, Value ids, Miss &miss) {
  Routing r;
  onnxir::NodeOp topk = producer(ids, "TopK");
  if (!topk || topk.getNumResults() != 2 || ids != topk.getResult(1)) {
    miss.why = "the expert ids are not the indices of a TopK";
    return failure();
  }
  Value values = topk.getResult(0);
  if (topk.getInputs().size() != 2 ||
      !attrIsLastAxis(topk, topk.getInputs()[0]) ||
      intAttrOf(topk, "largest").value_or(1) != 1) {
    miss.why = "the TopK is not a largest-k along the expert axis";
    return failure();
  }
  DenseElementsAttr kAttr = constantOf(topk.getInputs()[1]);
  if (!kAttr || kAttr.getNumElements() != 1 ||
      !isa<IntegerType>(kAttr.getElementType())) {
    miss.why = "the TopK's K is not a constant";
    return failure();
  }
  r.k = (*kAttr.getValues<APInt>().begin()).getSExtValue();
  Value scores = skipFloatCasts(topk.getInputs()[0]);
  if (weights == values) {
    onnxir::NodeOp sm = producer(scores, "Softmax");
    if (!sm || !attrIsLastAxis(sm, sm.getInputs()[0])) {
      miss.why = "the slot weights are the TopK values of something other "
                 "than a softmax over experts";
      return failure();
    }
    r.gate = "softmax";
    scores = sm.getInputs()[0];
  } else if (onnxir::NodeOp sg = producer(weights, "Sigmoid");
             sg && sg.getInputs()[0] == values) {
    r.gate = "sigmoid";
  } else if (onnxir::NodeOp sm = producer(weights, "Softmax");
             sm && sm.getInputs()[0] == values &&
             attrIsLastAxis(sm, values)) {
    r.gate = "topk_softmax";
  } else {
    miss.why = "the slot weights are not Sigmoid or Softmax of the TopK "
               "values, nor a TopK of a softmax";
    return failure();
  }
  if (!matchRouter(scores, r)) {
    miss.why = "the routing scores are not a MatMul with a constant [D, E] "
               "selector (and a constant bias)";
    return failure();
  }
  r.ids = ids;
  r.weights = weights;
  return r;
}

/// A constant weight read as Gather(W, ids, axis 0).
DenseElementsAttr gatheredWeight(Value v, Value ids) {
  onnxir::NodeOp g = producer(v, "Gather");
  if (!g || g.getInputs()[1] != ids || intAttrOf(g, "axis").value_or(0) != 0)
    return {};
  DenseElementsAttr w = constantOf(g.getInputs()[0]);
  return w && w.getType().getRank() == 3 ? w : nullptr;
}

/// What the raise builds: MoEFeedForward(x, xs, w_sel, w1, w2).
struct Block {
  Value x;
  Routing routing;
  std::string activation;
  DenseElementsAttr w1, w2;
  Value w1Value, w2Value; // the constants as the graph holds them
  const char *form;
};

/// Form (c), ending at `out` = Einsum("ns,nsd->nd", w, y).
FailureOr<Block> matchGathered(Value out, Miss &miss) {
  onnxir::NodeOp combine, down, up;
  auto eq = einsumOf(out, combine);
  if (!eq || !matchEquation(*eq, "ns", "nsd", "nd"))
    return failure();
  auto downEq = einsumOf(combine.getInputs()[1], down);
  if (!downEq || !matchEquation(*downEq, "nsg", "nsgd", "nsd")) {
    miss.why = "the combined slots are not Einsum(\"nsg,nsgd->nsd\") of a "
               "gathered weight";
    return failure();
  }
  Block blk;
  blk.form = "(c) gathered per-slot weights";
  FailureOr<Routing> r =
      matchRouting(combine.getInputs()[0],
                   producer(down.getInputs()[1], "Gather")
                       ? producer(down.getInputs()[1], "Gather").getInputs()[1]
                       : Value(),
                   miss);
  if (failed(r))
    return failure();
  blk.routing = *r;
  blk.w2 = gatheredWeight(down.getInputs()[1], r->ids);
  if (blk.w2)
    blk.w2Value = producer(down.getInputs()[1], "Gather").getInputs()[0];
  FailureOr<std::pair<std::string, Value>> act =
      matchActivation(down.getInputs()[0]);
  if (!blk.w2 || failed(act)) {
    miss.why = !blk.w2 ? "the down projection is not a constant [E, G, D] "
                         "gathered by the routing ids"
                       : "the expert activation is not relu, gelu, silu or "
                         "none";
    return failure();
  }
  blk.activation = act->first;
  auto upEq = einsumOf(act->second, up);
  if (!upEq || !matchEquation(*upEq, "nd", "nsdo", "nso")) {
    miss.why = "the up projection is not Einsum(\"nd,nsdo->nso\") of the "
               "token rows and a gathered weight";
    return failure();
  }
  blk.w1 = gatheredWeight(up.getInputs()[1], r->ids);
  if (blk.w1)
    blk.w1Value = producer(up.getInputs()[1], "Gather").getInputs()[0];
  if (!blk.w1) {
    miss.why = "the up projection is not a constant [E, D, G] gathered by "
               "the routing ids";
    return failure();
  }
  blk.x = up.getInputs()[0];
  return blk;
}

/// Form (b), ending at `out` = Einsum("ne,ned->nd", g, y).
FailureOr<Block> matchDense(Value out, Miss &miss) {
  onnxir::NodeOp combine, down, up;
  auto eq = einsumOf(out, combine);
  if (!eq || !matchEquation(*eq, "ne", "ned", "nd"))
    return failure();
  Block blk;
  blk.form = "(b) every expert computed, then masked";
  onnxir::NodeOp scatter = producer(combine.getInputs()[0], "ScatterElements");
  if (!scatter || scatter.getInputs().size() != 3) {
    miss.why = "the dense gate is not a ScatterElements of routing weights";
    return failure();
  }
  auto reduction = dyn_cast_or_null<StringAttr>(
      scatter.getNodeAttributes().get("reduction"));
  if ((reduction && reduction.getValue() != "none") ||
      !isLastAxis(intAttrOf(scatter, "axis").value_or(0),
                  scatter.getInputs()[1])) {
    miss.why = "the dense gate's ScatterElements reduces or scatters along "
               "another axis than the experts";
    return failure();
  }
  // zeros(shape(scores)): ConstantOfShape(Shape(s)) with value 0, or (as
  // the dynamo exporter writes zeros_like) Expand(0, Shape(s)).
  auto isFloatZero = [](DenseElementsAttr z) {
    return z && z.isSplat() && isa<FloatType>(z.getElementType()) &&
           z.getSplatValue<APFloat>().isZero();
  };
  Value zerosShape;
  if (onnxir::NodeOp c = producer(scatter.getInputs()[0], "ConstantOfShape")) {
    auto value = c.getNodeAttributes().get("value");
    if (!value || isFloatZero(dyn_cast<DenseElementsAttr>(value)))
      zerosShape = c.getInputs()[0];
  } else if (onnxir::NodeOp e = producer(scatter.getInputs()[0], "Expand")) {
    DenseElementsAttr z = constantOf(e.getInputs()[0]);
    if (isFloatZero(z) && z.getNumElements() == 1)
      zerosShape = e.getInputs()[1];
  }
  if (!zerosShape) {
    miss.why = "the dense gate does not start from zeros";
    return failure();
  }
  FailureOr<Routing> r =
      matchRouting(scatter.getInputs()[2], scatter.getInputs()[1], miss);
  if (failed(r))
    return failure();
  onnxir::NodeOp shape = producer(zerosShape, "Shape");
  if (shape && (intAttrOf(shape, "start").value_or(0) != 0 ||
                shape.getNodeAttributes().get("end")))
    shape = nullptr; // part of a shape
  onnxir::NodeOp topk = producer(r->ids, "TopK");
  Value scores = skipFloatCasts(topk.getInputs()[0]);
  if (r->gate == "softmax")
    scores = producer(scores, "Softmax").getInputs()[0];
  if (!shape || (shape.getInputs()[0] != topk.getInputs()[0] &&
                 shape.getInputs()[0] != scores)) {
    miss.why = "the dense gate's zeros are not shaped like the scores";
    return failure();
  }
  blk.routing = *r;
  auto downEq = einsumOf(combine.getInputs()[1], down);
  if (!downEq || !matchEquation(*downEq, "neg", "egd", "ned")) {
    miss.why = "the expert outputs are not Einsum(\"neg,egd->ned\") with a "
               "constant [E, G, D]";
    return failure();
  }
  blk.w2 = constantOf(down.getInputs()[1]);
  blk.w2Value = down.getInputs()[1];
  FailureOr<std::pair<std::string, Value>> act =
      matchActivation(down.getInputs()[0]);
  if (!blk.w2 || blk.w2.getType().getRank() != 3 || failed(act)) {
    miss.why = failed(act) ? "the expert activation is not relu, gelu, silu "
                             "or none"
                           : "the down projection weight is not a constant "
                             "[E, G, D]";
    return failure();
  }
  blk.activation = act->first;
  auto upEq = einsumOf(act->second, up);
  if (!upEq || !matchEquation(*upEq, "nd", "edg", "neg")) {
    miss.why = "the expert hidden states are not Einsum(\"nd,edg->neg\") of "
               "the token rows and a constant [E, D, G]";
    return failure();
  }
  blk.w1 = constantOf(up.getInputs()[1]);
  blk.w1Value = up.getInputs()[1];
  if (!blk.w1 || blk.w1.getType().getRank() != 3) {
    miss.why = "the up projection weight is not a constant [E, D, G]";
    return failure();
  }
  blk.x = up.getInputs()[0];
  return blk;
}

/// Checks the weights agree in E, D and G, so that a mismatch is refused
/// here (left generic) rather than by moe.ffn's verifier.
LogicalResult checkShapes(const Block &blk, Miss &miss) {
  auto sel = blk.routing.wsel.getType(), w1 = blk.w1.getType(),
       w2 = blk.w2.getType();
  int64_t d = sel.getDimSize(0), e = sel.getDimSize(1);
  if (blk.routing.bias || !producer(blk.routing.logits, "MatMul")) {
    miss.why = "the router is not a MatMul (MoEFeedForward's router is one, "
               "without a bias)";
    return failure();
  }
  if (w1.getDimSize(0) != e || w2.getDimSize(0) != e ||
      w1.getDimSize(1) != d || w2.getDimSize(2) != d ||
      w1.getDimSize(2) != w2.getDimSize(1)) {
    miss.why = "the selector and expert weights disagree in E, D or G";
    return failure();
  }
  if (blk.routing.k < 1 || blk.routing.k > e) {
    miss.why = "K is not in [1, E]";
    return failure();
  }
  if (sel.getElementType() != w1.getElementType() ||
      sel.getElementType() != w2.getElementType()) {
    miss.why = "the weights differ in element type";
    return failure();
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Form (a): the per-expert loop of Hugging Face exports
//===----------------------------------------------------------------------===//

/// ConstantOfShape(...) filled with zeros (the default value or 0), or a
/// constant of zeros (static exports fold the former into the latter).
bool isZeros(Value v) {
  if (DenseElementsAttr c = constantOf(v))
    return c.isSplat() && isa<FloatType>(c.getElementType()) &&
           c.getSplatValue<APFloat>().isZero();
  onnxir::NodeOp z = producer(v, "ConstantOfShape");
  if (!z)
    return false;
  auto value =
      dyn_cast_or_null<DenseElementsAttr>(z.getNodeAttributes().get("value"));
  return !value ||
         (value.isSplat() && isa<FloatType>(value.getElementType()) &&
          value.getSplatValue<APFloat>().isZero());
}

/// One expert of the loop.
struct HfExpert {
  int64_t index = -1;
  std::optional<int64_t> kConstant; // the k of token * k + slot, if constant
  std::optional<int64_t> expandCols; // D of a constant [1, D] expand shape
  Value tokens, slots;      // token ids and slot of each gathered row
  Value rowsSource;         // R, the [N, D] token rows
  Value routingWeights;     // RW [N, k], as gathered per row
  DenseElementsAttr w1, w3, w2;
  std::string activation;
};

/// The expert MLP `out` = f(rows): MatMul(act(MatMul(rows, W1)) [* MatMul(
/// rows, W3)], W2) with constant weights.
LogicalResult matchExpertMlp(Value out, Value rows, HfExpert &ex, Miss &miss) {
  miss.why = "an expert is not MatMul(act(MatMul(x, W1)) [* MatMul(x, W3)], "
             "W2) with constant weights and act silu, relu or gelu";
  onnxir::NodeOp down = producer(out, "MatMul");
  if (!down || !(ex.w2 = constantOf(down.getInputs()[1])))
    return failure();
  Value hidden = down.getInputs()[0];
  auto upOf = [&](Value v) -> DenseElementsAttr {
    onnxir::NodeOp mm = producer(v, "MatMul");
    if (!mm || mm.getInputs()[0] != rows)
      return {};
    return constantOf(mm.getInputs()[1]);
  };
  auto activated = [&](Value a) -> DenseElementsAttr {
    FailureOr<std::pair<std::string, Value>> act = matchActivation(a);
    if (failed(act) || act->first == "identity")
      return {};
    ex.activation = act->first;
    return upOf(act->second);
  };
  if (onnxir::NodeOp mul = producer(hidden, "Mul")) {
    for (int i = 0; i < 2 && !ex.w1; ++i) {
      DenseElementsAttr w3 = upOf(mul.getInputs()[1 - i]);
      if (!w3)
        continue;
      if (DenseElementsAttr w1 = activated(mul.getInputs()[i])) {
        ex.w1 = w1;
        ex.w3 = w3;
      }
    }
  }
  if (!ex.w1) {
    ex.w3 = {};
    ex.w1 = activated(hidden);
  }
  if (!ex.w1)
    return failure();
  miss.why.clear();
  return success();
}

/// The single standard-domain user of `v`, of `opType`, reading it as its
/// first input (a node found downstream, where producer() checks nothing).
onnxir::NodeOp onlyUser(Value v, StringRef opType) {
  if (!v.hasOneUse())
    return {};
  auto n = dyn_cast<onnxir::NodeOp>(*v.getUsers().begin());
  if (!n || !n.getDomain().empty() || n.getOpType() != opType ||
      n.getNumResults() != 1 || n.getInputs().size() < requiredInputs(opType) ||
      n.getInputs()[0] != v)
    return {};
  return n;
}

/// Whether Reshape `rs` makes an [n, 1] column of the n routing weights
/// gathered at `index` (1-D): its shape is a constant [a, 1], or
/// Concat(first, last) with `last` a constant [1] or dim 2 of an
/// Unsqueeze(., [2]) (1 by construction), and `first` one element: a
/// constant or Shape(index).
bool reshapeToColumn(onnxir::NodeOp rs, Value index) {
  if (rs.getInputs().size() != 2)
    return false;
  Value shape = rs.getInputs()[1];
  if (std::optional<SmallVector<int64_t>> c = intsOf(shape))
    return c->size() == 2 && (*c)[1] == 1;
  onnxir::NodeOp cat = producer(shape, "Concat");
  if (!cat || cat.getInputs().size() != 2)
    return false;
  Value first = cat.getInputs()[0], last = cat.getInputs()[1];
  bool lastIsOne = isInts(last, {1});
  if (onnxir::NodeOp g = producer(last, "Gather")) {
    onnxir::NodeOp sh = producer(g.getInputs()[0], "Shape");
    lastIsOne = sh && !sh.getNodeAttributes().get("start") &&
                !sh.getNodeAttributes().get("end") &&
                isInts(g.getInputs()[1], {2}) &&
                unsqueezed(sh.getInputs()[0], 2);
  }
  std::optional<SmallVector<int64_t>> fc = intsOf(first);
  onnxir::NodeOp fs = producer(first, "Shape");
  bool firstIsOne = (fc && fc->size() == 1) ||
                    (fs && fs.getInputs()[0] == index &&
                     !fs.getNodeAttributes().get("start") &&
                     !fs.getNodeAttributes().get("end"));
  return lastIsOne && firstIsOne;
}

/// One `ScatterElements` of the accumulator chain: the expert it adds.
LogicalResult matchHfExpert(onnxir::NodeOp scatter, HfExpert &ex,
                            Value &oneHotT, Miss &miss) {
  auto reduction = dyn_cast_or_null<StringAttr>(
      scatter.getNodeAttributes().get("reduction"));
  if (scatter.getInputs().size() != 3 ||
      intAttrOf(scatter, "axis").value_or(0) != 0 ||
      (reduction && reduction.getValue() != "none") ||
      !isZeros(scatter.getInputs()[0])) {
    miss.why = "a scatter of the accumulator is not ScatterElements(zeros, "
               "rows, updates, axis 0)";
    return failure();
  }
  // updates = Expand(contrib, Shape(Slice(., [0, 0], [1, end], [0, 1]))):
  // contrib [n, D] itself; indices = Expand(Unsqueeze(tokens, 1),
  // Shape(updates)): each token id repeated along D.
  miss.why = "a scatter's indices and updates are not the token ids and the "
             "weighted expert rows, expanded along D (index_add_)";
  onnxir::NodeOp upd = producer(scatter.getInputs()[2], "Expand");
  onnxir::NodeOp idxExp = producer(scatter.getInputs()[1], "Expand");
  if (!upd || !idxExp)
    return failure();
  // The expand shape: [1, D] as a constant (static exports fold it), or
  // Shape(Slice(acc, [0, 0], [1, end], [0, 1])).
  if (std::optional<SmallVector<int64_t>> c = intsOf(upd.getInputs()[1])) {
    if (c->size() != 2 || (*c)[0] != 1)
      return failure();
    ex.expandCols = (*c)[1];
  } else {
    onnxir::NodeOp updShape = producer(upd.getInputs()[1], "Shape");
    onnxir::NodeOp slice = updShape ? producer(updShape.getInputs()[0], "Slice")
                                    : onnxir::NodeOp();
    if (!slice || slice.getInputs().size() < 4 ||
        !isInts(slice.getInputs()[1], {0, 0}) ||
        !isInts(slice.getInputs()[3], {0, 1}))
      return failure();
    std::optional<SmallVector<int64_t>> ends = intsOf(slice.getInputs()[2]);
    if (!ends || ends->size() != 2 || (*ends)[0] != 1 ||
        (*ends)[1] < (int64_t(1) << 31))
      return failure();
  }
  onnxir::NodeOp idxShape = producer(idxExp.getInputs()[1], "Shape");
  if (!idxShape || idxShape.getInputs()[0] != upd.getResult(0))
    return failure();
  ex.tokens = unsqueezed(idxExp.getInputs()[0], 1);
  if (!ex.tokens)
    return failure();
  // tokens, slots = Squeeze(Split(Transpose(NonZero(Cast(Gather(
  //     Transpose(OneHot(ids), [2, 1, 0]), e), bool)), [1, 0]), [1, 1]), 1).
  miss.why = "the token ids of an expert are not the NonZero of its row of "
             "the OneHot expert mask";
  onnxir::NodeOp sqTok = producer(ex.tokens, "Squeeze");
  onnxir::NodeOp split =
      sqTok ? producer(sqTok.getInputs()[0], "Split") : onnxir::NodeOp();
  if (!split || split.getNumResults() != 2 ||
      sqTok.getInputs()[0] != split.getResult(1) ||
      intAttrOf(split, "axis").value_or(0) != 1 ||
      (split.getInputs().size() > 1 && !isInts(split.getInputs()[1], {1, 1})))
    return failure();
  for (Operation *user : split.getResult(0).getUsers()) {
    auto sq = dyn_cast<onnxir::NodeOp>(user);
    if (sq && sq.getOpType() == "Squeeze" && sq.getDomain().empty())
      ex.slots = sq.getResult(0);
  }
  onnxir::NodeOp tr =
      producer(split.getInputs()[0], "Transpose");
  if (tr) {
    // [2, n] -> [n, 2]: perm [1, 0] (or absent: reversed).
    Attribute p = tr.getNodeAttributes().get("perm");
    auto perm = dyn_cast_or_null<DenseI64ArrayAttr>(p);
    if (p && !(perm && perm.asArrayRef() == ArrayRef<int64_t>{1, 0}))
      return failure();
  }
  onnxir::NodeOp nz = tr ? producer(tr.getInputs()[0], "NonZero")
                         : onnxir::NodeOp();
  if (!ex.slots || !nz)
    return failure();
  Value mask = nz.getInputs()[0];
  if (onnxir::NodeOp c = producer(mask, "Cast"))
    mask = c.getInputs()[0];
  onnxir::NodeOp pick = producer(mask, "Gather");
  std::optional<SmallVector<int64_t>> e =
      pick ? intsOf(pick.getInputs()[1]) : std::nullopt;
  if (!pick || intAttrOf(pick, "axis").value_or(0) != 0 || !e ||
      e->size() != 1)
    return failure();
  ex.index = (*e)[0];
  if (oneHotT && pick.getInputs()[0] != oneHotT) {
    miss.why = "the experts read different expert masks";
    return failure();
  }
  oneHotT = pick.getInputs()[0];
  // contrib = Cast*(Mul(out, rw_rows)).
  miss.why = "an expert's rows are not scaled by their routing weight";
  onnxir::NodeOp mul = producer(skipFloatCasts(upd.getInputs()[0]), "Mul");
  if (!mul)
    return failure();
  // rw_rows = Reshape*(Gather(Flatten(Unsqueeze(RW, 2), 2),
  //                         slots + tokens * k)).
  for (int i = 0; i < 2; ++i) {
    Value w = mul.getInputs()[i];
    SmallVector<onnxir::NodeOp> reshapes;
    while (onnxir::NodeOp r = producer(w, "Reshape")) {
      reshapes.push_back(r);
      w = r.getInputs()[0];
    }
    onnxir::NodeOp g = producer(w, "Gather");
    onnxir::NodeOp flat =
        g ? producer(g.getInputs()[0], "Flatten") : onnxir::NodeOp();
    onnxir::NodeOp sum =
        g ? producer(g.getInputs()[1], "Add") : onnxir::NodeOp();
    if (!flat || !sum || intAttrOf(flat, "axis").value_or(1) != 2 ||
        intAttrOf(g, "axis").value_or(0) != 0 ||
        !llvm::all_of(reshapes, [&](onnxir::NodeOp rs) {
          return reshapeToColumn(rs, sum.getResult(0));
        }))
      continue;
    Value rw = unsqueezed(flat.getInputs()[0], 2);
    if (!rw)
      continue;
    // slots + tokens * k, either order; k a constant or a dim of RW.
    for (int j = 0; j < 2; ++j) {
      onnxir::NodeOp prod = producer(sum.getInputs()[1 - j], "Mul");
      if (sum.getInputs()[j] != ex.slots || !prod)
        continue;
      for (int m = 0; m < 2; ++m)
        if (prod.getInputs()[m] == ex.tokens) {
          ex.routingWeights = rw;
          // The multiplier must be k: checked by the caller against the
          // TopK's constant K (constant here, or dim 1 of RW's
          // Unsqueeze, taken from its Shape).
          Value kv = prod.getInputs()[1 - m];
          onnxir::NodeOp gk = producer(kv, "Gather");
          onnxir::NodeOp sh =
              gk ? producer(gk.getInputs()[0], "Shape") : onnxir::NodeOp();
          bool kFromShape = sh && !sh.getNodeAttributes().get("start") &&
                            !sh.getNodeAttributes().get("end") &&
                            isInts(gk.getInputs()[1], {1}) &&
                            unsqueezed(sh.getInputs()[0], 2) == rw;
          std::optional<SmallVector<int64_t>> kc = intsOf(kv);
          if (!kFromShape && (!kc || kc->size() != 1))
            ex.routingWeights = {};
          else if (!kFromShape)
            ex.kConstant = (*kc)[0]; // checked by the caller
        }
    }
    if (ex.routingWeights) {
      Value out = mul.getInputs()[1 - i];
      // rows = Reshape(Gather(Unsqueeze(R, 0), tokens, axis 1), [-1, D]).
      miss.why = "an expert's input rows are not the token rows gathered by "
                 "its token ids";
      Value rows;
      for (Operation *user : ex.tokens.getUsers()) {
        auto gr = dyn_cast<onnxir::NodeOp>(user);
        if (!gr || gr.getNumResults() != 1 || gr.getOpType() != "Gather" ||
            !gr.getDomain().empty() || gr.getInputs().size() != 2 ||
            intAttrOf(gr, "axis").value_or(0) != 1 ||
            gr.getInputs()[1] != ex.tokens)
          continue;
        Value src = unsqueezed(gr.getInputs()[0], 0);
        onnxir::NodeOp rs = onlyUser(gr.getResult(0), "Reshape");
        if (!src || !rs)
          continue;
        ex.rowsSource = src;
        rows = rs.getResult(0);
      }
      if (!rows)
        return failure();
      return matchExpertMlp(out, rows, ex, miss);
    }
  }
  return failure();
}

/// What form (a) raises into.
struct HfBlock {
  Value rows, logits;
  int64_t k;
  std::string gate, activation;
  DenseElementsAttr w1, w2, w3; // stacked; w3 null when not gated
  // Form (g): the projections' biases [E, I], [E, D], [E, I] (null where
  // absent), and the constants of activation "swiglu".
  DenseElementsAttr b1, b2, b3;
  double alpha = 1.0, beta = 0.0,
         limit = std::numeric_limits<double>::infinity();
  // Form (g) with the graph's own routing (no logits): the flat [N * k]
  // expert ids and slot weights as the export pairs them.
  Value slotIds, slotWeights;
};

FailureOr<HfBlock> finishHfLoop(SmallVector<HfExpert> &experts, Value ids,
                                int64_t numExperts, Miss &miss);

/// The accumulator chain ending at `acc`: acc_{e+1} = acc_e +
/// ScatterElements(zeros, tokens_e, weighted expert rows_e), acc_0 zeros.
FailureOr<HfBlock> matchHfLoop(Value acc, Miss &miss) {
  SmallVector<onnxir::NodeOp> scatters;
  Value cur = acc;
  while (onnxir::NodeOp add = producer(cur, "Add")) {
    onnxir::NodeOp sc;
    for (int i = 0; i < 2 && !sc; ++i)
      if ((sc = producer(add.getInputs()[i], "ScatterElements")))
        cur = add.getInputs()[1 - i];
    if (!sc)
      break;
    scatters.push_back(sc);
  }
  if (scatters.empty() || !isZeros(cur)) {
    miss.why = "the expert outputs are not summed into zeros";
    return failure();
  }
  Value oneHotT;
  SmallVector<HfExpert> experts(scatters.size());
  for (auto [sc, ex] : llvm::zip(scatters, experts))
    if (failed(matchHfExpert(sc, ex, oneHotT, miss)))
      return failure();
  // The expert mask: Transpose(OneHot(ids, E, [0, 1], axis -1), [2, 1, 0]).
  miss.why = "the expert mask is not Transpose(OneHot(ids, E, [0, 1]), "
             "[2, 1, 0])";
  onnxir::NodeOp tr = producer(oneHotT, "Transpose");
  SmallVector<int64_t> perm;
  if (tr) {
    Attribute p = tr.getNodeAttributes().get("perm");
    if (auto dense = dyn_cast_or_null<DenseI64ArrayAttr>(p))
      llvm::append_range(perm, dense.asArrayRef());
    else if (auto array = dyn_cast_or_null<ArrayAttr>(p))
      for (Attribute a : array)
        if (auto i = dyn_cast<IntegerAttr>(a))
          perm.push_back(i.getInt());
  }
  onnxir::NodeOp oh = tr ? producer(tr.getInputs()[0], "OneHot")
                         : onnxir::NodeOp();
  if (!oh || perm != SmallVector<int64_t>{2, 1, 0} ||
      intAttrOf(oh, "axis").value_or(-1) != -1)
    return failure();
  std::optional<SmallVector<int64_t>> depth = intsOf(oh.getInputs()[1]);
  DenseElementsAttr onOff = constantOf(oh.getInputs()[2]);
  if (!depth || depth->size() != 1 || !onOff || onOff.getNumElements() != 2)
    return failure();
  SmallVector<double> vals;
  for (Attribute a : onOff.getValues<Attribute>()) {
    if (auto i = dyn_cast<IntegerAttr>(a))
      vals.push_back(i.getValue().getSExtValue());
    else if (auto f = dyn_cast<FloatAttr>(a))
      vals.push_back(f.getValueAsDouble());
  }
  if (vals.size() != 2 || vals[0] != 0 || vals[1] != 1)
    return failure();
  return finishHfLoop(experts, oh.getInputs()[0], (*depth)[0], miss);
}

/// The routing of Hugging Face's MoE blocks.
struct HfRouting {
  Routing routing; // the TopK of a softmax
  std::string gate;
  Value logits;
};

/// Whether `a` and `b` are one tensor: the same value, or one an identity
/// Reshape of the other (the router and the experts may read different
/// views of the rows). `width`, where given, is the rows' size along their
/// last axis as the experts' products require it (a run where it differs
/// fails in the export too): a Reshape of [N, width] rows to [-1, width]
/// is then an identity whatever the shape arithmetic knows.
bool sameRows(Value a, Value b, std::optional<int64_t> width = {}) {
  if (a == b)
    return true;
  auto identity = [&](onnxir::NodeOp rs) {
    if (!rs)
      return false;
    if (isIdentityReshape(rs))
      return true;
    Value shape = rs.getInputs()[1];
    return width && raise::rankOf(rs.getInputs()[0]) == 2 &&
           knownLength(shape) == 2 && knownEntry(shape, 0) == -1 &&
           knownEntry(shape, 1) == *width &&
           constantDim(rs.getInputs()[0], 1).value_or(*width) == *width;
  };
  // Each side down to its first value that is no identity view.
  auto root = [&](Value v) {
    for (int i = 0; i < 64; ++i) {
      onnxir::NodeOp rs = producer(v, "Reshape");
      if (!identity(rs))
        break;
      v = rs.getInputs()[0];
    }
    return v;
  };
  return root(a) == root(b);
}

/// `ids` the indices of TopK(Cast*(Softmax(MatMul(rows, Wg))), k) (the
/// router may read a view of `rows` as they are), and `rw` the slot
/// weights as the experts read them: Cast*(values) (gate softmax) or
/// Cast*(values / ReduceSum(values, -1)) (topk_softmax).
FailureOr<HfRouting> matchHfRouting(Value ids, Value rw, Value rows, Miss &miss,
                                    std::optional<int64_t> width = {}) {
  HfRouting out;
  onnxir::NodeOp topk = producer(ids, "TopK");
  if (!topk || topk.getNumResults() != 2 || ids != topk.getResult(1)) {
    miss.why = "the expert ids are not the indices of a TopK";
    return failure();
  }
  rw = skipFloatCasts(rw);
  Value values = topk.getResult(0);
  if (rw == values) {
    out.gate = "softmax";
  } else if (onnxir::NodeOp div = producer(rw, "Div")) {
    onnxir::NodeOp sum = producer(div.getInputs()[1], "ReduceSum");
    if (div.getInputs()[0] == values && sum &&
        sum.getInputs()[0] == values &&
        intAttrOf(sum, "keepdims").value_or(1) == 1 &&
        sum.getInputs().size() > 1 &&
        (isInts(sum.getInputs()[1], {-1}) ||
         (intsOf(sum.getInputs()[1]) &&
          intsOf(sum.getInputs()[1])->size() == 1 &&
          isLastAxis((*intsOf(sum.getInputs()[1]))[0], values))))
      out.gate = "topk_softmax";
  }
  // GraniteMoE's: a softmax of the TopK of the logits themselves.
  bool softmaxOfTopK = false;
  if (onnxir::NodeOp sm = producer(rw, "Softmax");
      out.gate.empty() && sm && sm.getVersion() >= 13 &&
      sm.getInputs()[0] == values && attrIsLastAxis(sm, values)) {
    out.gate = "topk_softmax";
    softmaxOfTopK = true;
  }
  if (out.gate.empty()) {
    miss.why = "the routing weights are not the TopK values, the TopK "
               "values divided by their sum, nor their softmax";
    return failure();
  }
  // The TopK of a softmax, or (softmaxOfTopK) of the logits.
  FailureOr<Routing> routing =
      matchRouting(softmaxOfTopK ? rw : values, ids, miss);
  if (failed(routing))
    return failure();
  if (routing->gate != (softmaxOfTopK ? "topk_softmax" : "softmax")) {
    miss.why = "the routing is not a TopK of a softmax over the experts";
    return failure();
  }
  if (!sameRows(routing->selectorInput, rows, width)) {
    miss.why = "the router does not read the rows the experts read";
    return failure();
  }
  out.routing = *routing;
  out.logits = routing->logits;
  return out;
}

/// What the forms of the per-expert loop share, from the experts matched,
/// the TopK ids their mask is built from, and E: every expert once, the
/// routing (gate, renormalisation, k), and the stacked weights.
FailureOr<HfBlock> finishHfLoop(SmallVector<HfExpert> &experts, Value ids,
                                int64_t numExperts, Miss &miss) {
  // Every expert exactly once.
  miss.why = "the loop does not run every expert of the mask exactly once";
  if ((int64_t)experts.size() != numExperts)
    return failure();
  llvm::sort(experts, [](const HfExpert &a, const HfExpert &b) {
    return a.index < b.index;
  });
  for (auto [e, ex] : llvm::enumerate(experts))
    if (ex.index != (int64_t)e)
      return failure();
  for (const HfExpert &ex : experts)
    if (skipFloatCasts(ex.routingWeights) !=
            skipFloatCasts(experts.front().routingWeights) ||
        ex.rowsSource != experts.front().rowsSource) {
      miss.why = "the experts read different routing weights or rows";
      return failure();
    }
  FailureOr<HfRouting> hr = matchHfRouting(ids, experts.front().routingWeights,
                                           experts.front().rowsSource, miss);
  if (failed(hr))
    return failure();
  Routing *routing = &hr->routing;
  std::string gate = hr->gate;
  for (const HfExpert &ex : experts)
    if (ex.kConstant && *ex.kConstant != routing->k) {
      miss.why = "the routing weight of a row is not read at token * k + "
                 "slot";
      return failure();
    }
  // Same structure and shapes for every expert.
  HfBlock blk;
  blk.rows = experts.front().rowsSource;
  blk.logits = hr->logits;
  blk.k = routing->k;
  blk.gate = gate;
  blk.activation = experts.front().activation;
  SmallVector<DenseElementsAttr> w1s, w2s, w3s;
  for (const HfExpert &ex : experts) {
    if (ex.activation != blk.activation || bool(ex.w3) !=
                                               bool(experts.front().w3) ||
        ex.w1.getType() != experts.front().w1.getType() ||
        ex.w2.getType() != experts.front().w2.getType() ||
        (ex.w3 && ex.w3.getType() != experts.front().w1.getType()) ||
        ex.w1.getType().getRank() != 2 || ex.w2.getType().getRank() != 2) {
      miss.why = "the experts differ in structure or weight shapes";
      return failure();
    }
    if (ex.expandCols && *ex.expandCols != ex.w2.getType().getDimSize(1)) {
      miss.why = "a scatter's updates are expanded to another width than D";
      return failure();
    }
    w1s.push_back(ex.w1);
    w2s.push_back(ex.w2);
    if (ex.w3)
      w3s.push_back(ex.w3);
  }
  auto w1t = experts.front().w1.getType(), w2t = experts.front().w2.getType();
  auto selT = routing->wsel.getType();
  if (w1t.getDimSize(0) != selT.getDimSize(0) ||
      w2t.getDimSize(1) != selT.getDimSize(0) ||
      w1t.getDimSize(1) != w2t.getDimSize(0) ||
      selT.getDimSize(1) != numExperts || routing->k > numExperts ||
      !w1t.getElementType().isF32() || !selT.getElementType().isF32()) {
    miss.why = "the router and expert weights disagree in D, E or I, or are "
               "not f32";
    return failure();
  }
  blk.w1 = stack(w1s);
  blk.w2 = stack(w2s);
  if (!w3s.empty())
    blk.w3 = stack(w3s);
  miss.why.clear();
  return blk;
}

//===----------------------------------------------------------------------===//
// Form (a) as the dynamo exporters write it
//===----------------------------------------------------------------------===//
//
//   M = Transpose(Cast*(Equal(Unsqueeze(ids, 2), arange(E))), [2, 1, 0])
//   for each expert e:
//     nz = Transpose(NonZero(Cast*(Gather(M, e))), [1, 0])      [n, 2]
//     slot, tok = Squeeze(Slice(nz, 0:1 / 1:2, axis 1), 1)
//     rows = Reshape(Transpose(Gather(Transpose(Unsqueeze(R, 0),
//                    [1, 0, 2]), tok), [1, 0, 2]), [n, D])
//     w = GatherND(Unsqueeze(RW, 2), Concat(tok[:, None], slot[:, None]))
//     acc = ScatterND(acc, tok[:, None], Cast*(MLP_e(rows) * w), add)
// (after the preparation: GatherND(x, Unsqueeze(i, -1)) is a Gather, a
// Gemm with a constant weight a MatMul). Each token row gets, per slot
// routed to e, rw[tok, slot] * MLP_e(R[tok]): what form (a) adds.

/// `x` = Unsqueeze(v, [a]) with `a` axis `axis` of the rank-`rank` result
/// (written non-negative or negative): v.
Value unsqueezedAt(Value x, int64_t axis, int64_t rank) {
  if (Value v = unsqueezed(x, axis))
    return v;
  return unsqueezed(x, axis - rank);
}

/// `v` = Unsqueeze(x, [-1]) (or [axis], the last axis of the result):
/// x.
Value unsqueezedLast(Value v, int64_t rankOfX) {
  return unsqueezedAt(v, rankOfX, rankOfX + 1);
}

/// `v` = Squeeze(Slice(nz, [c], [c + 1], [1]), [1]): nz and c.
std::optional<std::pair<Value, int64_t>> nonZeroColumn(Value v) {
  onnxir::NodeOp sq = producer(v, "Squeeze");
  if (!sq || sq.getInputs().size() != 2 || !isInts(sq.getInputs()[1], {1}))
    return std::nullopt;
  onnxir::NodeOp sl = producer(sq.getInputs()[0], "Slice");
  if (!sl || sl.getInputs().size() < 4 || sl.getInputs().size() > 5)
    return std::nullopt;
  std::optional<SmallVector<int64_t>> st = intsOf(sl.getInputs()[1]),
                                      en = intsOf(sl.getInputs()[2]);
  if (!st || !en || st->size() != 1 || en->size() != 1 ||
      (*en)[0] != (*st)[0] + 1 || (*st)[0] < 0 || (*st)[0] > 1 ||
      !isInts(sl.getInputs()[3], {1}) ||
      (sl.getInputs().size() == 5 && !isInts(sl.getInputs()[4], {1})))
    return std::nullopt;
  return std::make_pair(sl.getInputs()[0], (*st)[0]);
}

/// One ScatterND of the dynamo chain: the expert it adds.
LogicalResult matchHfExpertNd(onnxir::NodeOp scatter, HfExpert &ex,
                              Value &maskT, Miss &miss) {
  miss.why = "a scatter of the accumulator is not ScatterND(acc, token ids, "
             "weighted expert rows, reduction add)";
  auto reduction = dyn_cast_or_null<StringAttr>(
      scatter.getNodeAttributes().get("reduction"));
  if (scatter.getInputs().size() != 3 || !reduction ||
      reduction.getValue() != "add")
    return failure();
  ex.tokens = unsqueezedLast(scatter.getInputs()[1], 1);
  onnxir::NodeOp mul = producer(skipFloatCasts(scatter.getInputs()[2]), "Mul");
  if (!ex.tokens || !mul)
    return failure();
  // The token and slot columns of NonZero(M[e]).
  miss.why = "the token ids of an expert are not a column of the NonZero of "
             "its row of the expert mask";
  std::optional<std::pair<Value, int64_t>> tokCol = nonZeroColumn(ex.tokens);
  onnxir::NodeOp tr =
      tokCol ? producer(tokCol->first, "Transpose") : onnxir::NodeOp();
  auto perm = tr ? dyn_cast_or_null<DenseI64ArrayAttr>(
                       tr.getNodeAttributes().get("perm"))
                 : DenseI64ArrayAttr();
  onnxir::NodeOp nz =
      tr ? producer(tr.getInputs()[0], "NonZero") : onnxir::NodeOp();
  if (!tokCol || tokCol->second != 1 || !nz ||
      !(perm && perm.asArrayRef() == ArrayRef<int64_t>{1, 0}))
    return failure();
  Value m = nz.getInputs()[0];
  while (onnxir::NodeOp c = producer(m, "Cast"))
    m = c.getInputs()[0];
  // M[e] with a scalar e: a [e] index would keep a unit dim, and NonZero's
  // columns would be others.
  onnxir::NodeOp pick = producer(m, "Gather");
  DenseElementsAttr eAttr = pick ? constantOf(pick.getInputs()[1]) : nullptr;
  if (!pick || strictInt(pick, "axis", 0) != 0 || !eAttr ||
      eAttr.getType().getRank() != 0 ||
      !isa<IntegerType>(eAttr.getElementType()))
    return failure();
  ex.index = (*eAttr.getValues<APInt>().begin()).getSExtValue();
  if (maskT && pick.getInputs()[0] != maskT) {
    miss.why = "the experts read different expert masks";
    return failure();
  }
  maskT = pick.getInputs()[0];
  // rw_rows = GatherND(Unsqueeze(RW, 2), Concat(tok[:, None],
  // slot[:, None], axis -1)); the other factor is the expert's output.
  miss.why = "an expert's rows are not scaled by their routing weight "
             "RW[token, slot]";
  for (int i = 0; i < 2 && !ex.routingWeights; ++i) {
    onnxir::NodeOp g = producer(mul.getInputs()[i], "GatherND");
    onnxir::NodeOp cat =
        g ? producer(g.getInputs()[1], "Concat") : onnxir::NodeOp();
    std::optional<int64_t> catAxis =
        cat ? strictInt(cat, "axis", 0) : std::nullopt;
    if (!g || strictInt(g, "batch_dims", 0) != 0 || !cat ||
        cat.getInputs().size() != 2 || !catAxis ||
        !isLastAxis(*catAxis, cat.getInputs()[0]))
      continue;
    Value rw = unsqueezedLast(g.getInputs()[0], 2);
    Value tok = unsqueezedLast(cat.getInputs()[0], 1);
    Value slot = unsqueezedLast(cat.getInputs()[1], 1);
    std::optional<std::pair<Value, int64_t>> slotCol =
        slot ? nonZeroColumn(slot) : std::nullopt;
    if (!rw || tok != ex.tokens || !slotCol ||
        slotCol->first != tokCol->first || slotCol->second != 0)
      continue;
    ex.slots = slot;
    ex.routingWeights = rw;
    Value out = mul.getInputs()[1 - i];
    // rows = Reshape(Transpose(Gather(Transpose(Unsqueeze(R, 0),
    // [1, 0, 2]), tok), [1, 0, 2]), [n, D]).
    miss.why = "an expert's input rows are not the token rows gathered by "
               "its token ids";
    auto isPerm102 = [](onnxir::NodeOp t) {
      auto p = t ? dyn_cast_or_null<DenseI64ArrayAttr>(
                       t.getNodeAttributes().get("perm"))
                 : DenseI64ArrayAttr();
      return p && p.asArrayRef() == ArrayRef<int64_t>{1, 0, 2};
    };
    Value rows;
    for (Operation *user : ex.tokens.getUsers()) {
      auto gr = dyn_cast<onnxir::NodeOp>(user);
      if (!gr || gr.getNumResults() != 1 || gr.getOpType() != "Gather" ||
          !gr.getDomain().empty() || gr.getInputs().size() != 2 ||
          strictInt(gr, "axis", 0) != 0 || gr.getInputs()[1] != ex.tokens)
        continue;
      onnxir::NodeOp inT = producer(gr.getInputs()[0], "Transpose");
      Value src = isPerm102(inT) ? unsqueezed(inT.getInputs()[0], 0) : Value();
      onnxir::NodeOp outT = onlyUser(gr.getResult(0), "Transpose");
      onnxir::NodeOp rs =
          outT ? onlyUser(outT.getResult(0), "Reshape") : onnxir::NodeOp();
      std::optional<int64_t> rank = rs ? rankOf(rs.getResult(0)) : std::nullopt;
      if (!src || !isPerm102(outT) || !rs || !rank || *rank != 2)
        continue;
      ex.rowsSource = src;
      rows = rs.getResult(0);
    }
    if (!rows)
      return failure();
    return matchExpertMlp(out, rows, ex, miss);
  }
  return failure();
}

/// The ScatterND chain ending at `acc`.
FailureOr<HfBlock> matchHfLoopNd(Value acc, Miss &miss) {
  SmallVector<onnxir::NodeOp> scatters;
  Value cur = acc;
  while (onnxir::NodeOp sc = producer(cur, "ScatterND")) {
    if (sc.getInputs().size() != 3)
      break;
    scatters.push_back(sc);
    cur = sc.getInputs()[0];
  }
  // zeros [N, D]: Expand(0, shape) or ConstantOfShape(shape), shape R's.
  Value zerosShape;
  if (onnxir::NodeOp z = producer(cur, "ConstantOfShape")) {
    if (isZeros(cur))
      zerosShape = z.getInputs()[0];
  } else if (onnxir::NodeOp z = producer(cur, "Expand")) {
    DenseElementsAttr c = constantOf(z.getInputs()[0]);
    if (c && c.getNumElements() == 1 && isZeros(z.getInputs()[0]))
      zerosShape = z.getInputs()[1];
  }
  if (scatters.empty() || !zerosShape) {
    miss.why = "the expert outputs are not scattered into zeros";
    return failure();
  }
  Value maskT;
  SmallVector<HfExpert> experts(scatters.size());
  for (auto [sc, ex] : llvm::zip(scatters, experts))
    if (failed(matchHfExpertNd(sc, ex, maskT, miss)))
      return failure();
  // The rows the experts read, and the zeros of their shape (the sizes are
  // the same symbols: the exporter reads both from the input).
  if (!sameShape(zerosShape, experts.front().rowsSource)) {
    miss.why = "the accumulator's zeros are not shaped like the token rows";
    return failure();
  }
  // M = Transpose(Cast*(Equal(Unsqueeze(ids, 2), arange(E))), [2, 1, 0]).
  miss.why = "the expert mask is not Transpose(Equal(Unsqueeze(ids, 2), "
             "arange(E)), [2, 1, 0])";
  onnxir::NodeOp tr = producer(maskT, "Transpose");
  auto perm = tr ? dyn_cast_or_null<DenseI64ArrayAttr>(
                       tr.getNodeAttributes().get("perm"))
                 : DenseI64ArrayAttr();
  if (!perm || perm.asArrayRef() != ArrayRef<int64_t>{2, 1, 0})
    return failure();
  Value eqIn = tr.getInputs()[0];
  while (onnxir::NodeOp c = producer(eqIn, "Cast"))
    eqIn = c.getInputs()[0];
  onnxir::NodeOp eq = producer(eqIn, "Equal");
  if (!eq)
    return failure();
  // arange(E): a constant 0, 1, ..., E - 1, or Range(0, E, 1) of constants
  // (through Casts).
  int64_t numExperts = -1;
  // (A Cast to int64 of an integer constant keeps its value; a narrowing
  // or float Cast is not looked through.)
  auto scalarInt = [](Value v) -> std::optional<int64_t> {
    if (onnxir::NodeOp c = producer(v, "Cast")) {
      if (intAttrOf(c, "to") != 7)
        return std::nullopt;
      v = c.getInputs()[0];
    }
    DenseElementsAttr a = constantOf(v);
    if (!a || a.getNumElements() != 1 || !isa<IntegerType>(a.getElementType()))
      return std::nullopt;
    return (*a.getValues<APInt>().begin()).getSExtValue();
  };
  Value ids, ar;
  auto idsFirst = [&](Value a, Value b) {
    ids = unsqueezedLast(a, 2);
    ar = b;
    return bool(ids);
  };
  if (!idsFirst(eq.getInputs()[0], eq.getInputs()[1]) &&
      !idsFirst(eq.getInputs()[1], eq.getInputs()[0]))
    return failure();
  if (std::optional<SmallVector<int64_t>> c = intsOf(ar)) {
    bool iota = !c->empty();
    for (auto [i, v] : llvm::enumerate(*c))
      iota &= v == (int64_t)i;
    if (iota)
      numExperts = c->size();
  } else if (onnxir::NodeOp range = producer(ar, "Range")) {
    std::optional<int64_t> start = scalarInt(range.getInputs()[0]),
                           limit = scalarInt(range.getInputs()[1]),
                           delta = scalarInt(range.getInputs()[2]);
    if (start && limit && delta && *start == 0 && *delta == 1 && *limit >= 1)
      numExperts = *limit;
  }
  if (!ids || numExperts < 1)
    return failure();
  return finishHfLoop(experts, ids, numExperts, miss);
}

//===----------------------------------------------------------------------===//
// Form (g): per-slot expert products (transformers 5's `batched_mm`)
//===----------------------------------------------------------------------===//
//
// transformers 5 computes a block's experts, with experts_implementation
// "batched_mm" (the one both torch exporters can trace), one routing slot
// at a time, s = n * k + j over the [N, k] TopK:
//
//   ids_f = Reshape(ids, [-1]); rw_f = Reshape(rw, [-1])          [S]
//   xs = repeat_interleave(R, k)                                   [S, D]
//      = Reshape(Expand(Unsqueeze(R, 1), [., k, .]), [-1, D])  (dynamo)
//      | Flatten(Tile(Unsqueeze(R, 1), [1, k, 1]), 2)      (TorchScript)
//   h = bmv(Gather(W1, ids_f), xs) [+ Gather(B1, ids_f)]  [S, 2I] or [S, I]
//   a = act(g) * u | swiglu(g, u) | act(h), with g, u the halves of h:
//       h[:, :I] and h[:, I:] (Split, or two Slices), or h[:, 0::2] and
//       h[:, 1::2] (GPT-OSS), either one the gate g
//   y = bmv(Gather(W2, ids_f), a) [+ Gather(B2, ids_f)]           [S, D]
//   out = ReduceSum(Reshape(y * Unsqueeze(rw_f, -1), [N, k, D]), [1])
//
// swiglu(g, u) = (Clip(u, -L, L) + beta) * g' * Sigmoid(g' * alpha), g' =
// Clip(g, none, L), is GPT-OSS's gate (L = 7, alpha 1.702, beta 1): the
// internal nodes' activation "swiglu", ONNX Runtime MoE's clamped SwiGLU.
//
// with bmv(Wg, v) = Squeeze(MatMul(Wg, Unsqueeze(v, -1)), -1) (weights
// [E, out, in], as nn.Linear holds them) or Squeeze(MatMul(Unsqueeze(v,
// 1), Wg), 1) (weights [E, in, out]: transformers' is_transposed), and
// ids, rw the routing of form (a). Slot s reads token n's row, expert
// ids[n, j] and weight rw[n, j] (a Reshape to [-1] is row-major), and the
// sum adds token n's k slots: sum_j rw[n, j] * MLP_{ids[n, j]}(R[n]),
// what the routed experts compute (in slot order, as here). Where ids and
// rw come from a routing moe.route does not compute (biased or grouped
// sigmoid routings, anything else), the routing stays as exported and the
// experts become SelectedExperts(R, Reshape(ids_f, [-1, k]),
// Reshape(rw_f, [-1, k]), ...): row n, column j is slot n * k + j, the
// pairing of the export whatever computed ids and rw.

/// bmv(Gather(W, ids_f), v) (+ Gather(B, ids_f)): W [E, out, in] or
/// [E, in, out], B [E, out].
struct SlotProduct {
  DenseElementsAttr w;
  bool transposed = false; // W is [E, in, out]
  Value idsFlat, v;
  DenseElementsAttr bias; // B, where the product has one
};

/// `out` = bmv(Gather(W, ids_f), v) as above, or as the Einsum that the
/// preparation recovered from it ("sod,sd->so", "sd,sdo->so").
std::optional<SlotProduct> bareSlotProduct(Value out) {
  auto gathered = [&](Value g, SlotProduct &p) {
    onnxir::NodeOp gather = producer(g, "Gather");
    if (!gather || intAttrOf(gather, "axis").value_or(0) != 0)
      return false;
    p.w = constantOf(gather.getInputs()[0]);
    p.idsFlat = gather.getInputs()[1];
    return p.w && p.w.getType().getRank() == 3 &&
           p.w.getElementType().isF32() && raise::rankOf(p.idsFlat) == 1;
  };
  SlotProduct p;
  onnxir::NodeOp einsum;
  if (auto eq = einsumOf(out, einsum)) {
    Value a = einsum.getInputs()[0], b = einsum.getInputs()[1];
    if (matchEquation(*eq, "sod", "sd", "so") && gathered(a, p))
      p.v = b;
    else if (matchEquation(*eq, "sd", "sod", "so") && gathered(b, p))
      p.v = a;
    else if (matchEquation(*eq, "sd", "sdo", "so") && gathered(b, p))
      std::tie(p.v, p.transposed) = std::make_pair(a, true);
    else if (matchEquation(*eq, "sdo", "sd", "so") && gathered(a, p))
      std::tie(p.v, p.transposed) = std::make_pair(b, true);
    if (!p.v || raise::rankOf(p.v) != 2)
      return std::nullopt;
    return p;
  }
  onnxir::NodeOp sq = producer(out, "Squeeze");
  if (!sq || sq.getInputs().size() != 2)
    return std::nullopt;
  onnxir::NodeOp mm = producer(sq.getInputs()[0], "MatMul");
  if (!mm)
    return std::nullopt;
  std::optional<SmallVector<int64_t>> axes = intsOf(sq.getInputs()[1]);
  if (!axes || axes->size() != 1)
    return std::nullopt;
  int64_t axis = (*axes)[0] < 0 ? (*axes)[0] + 3 : (*axes)[0];
  if (axis == 2 && gathered(mm.getInputs()[0], p)) {
    p.v = unsqueezedAt(mm.getInputs()[1], 2, 3);
  } else if (axis == 1 && gathered(mm.getInputs()[1], p)) {
    p.transposed = true;
    p.v = unsqueezedAt(mm.getInputs()[0], 1, 3);
  }
  if (!p.v || raise::rankOf(p.v) != 2)
    return std::nullopt;
  return p;
}

/// The input and output widths of a slot product's weights.
int64_t inWidth(const SlotProduct &p) {
  return p.w.getType().getDimSize(p.transposed ? 1 : 2);
}
int64_t outWidth(const SlotProduct &p) {
  return p.w.getType().getDimSize(p.transposed ? 2 : 1);
}

/// `flat` = Reshape(v, [-1]) (v of rank 2): v.
Value flattened(Value flat) {
  onnxir::NodeOp rs = producer(flat, "Reshape");
  if (!rs || knownLength(rs.getInputs()[1]) != 1 ||
      knownEntry(rs.getInputs()[1], 0) != -1 ||
      raise::rankOf(rs.getInputs()[0]) != 2)
    return {};
  return rs.getInputs()[0];
}

/// Whether two flat id vectors are one: the same value, or the same [N, k]
/// ids flattened.
bool sameSlotIds(Value a, Value b) {
  if (a == b)
    return true;
  Value fa = flattened(a);
  return fa && fa == flattened(b);
}

/// `out` = a slot product, or one plus its bias: Add(p, Gather(B, ids_f,
/// axis 0)) with B a constant [E, out] gathered by p's own ids (GPT-OSS's
/// biased experts).
std::optional<SlotProduct> slotProduct(Value out) {
  onnxir::NodeOp add = producer(out, "Add");
  if (!add)
    return bareSlotProduct(out);
  for (int i = 0; i < 2; ++i) {
    onnxir::NodeOp g = producer(add.getInputs()[1 - i], "Gather");
    DenseElementsAttr b = g ? constantOf(g.getInputs()[0]) : nullptr;
    if (!b || intAttrOf(g, "axis").value_or(0) != 0 ||
        b.getType().getRank() != 2 || !b.getElementType().isF32())
      continue;
    std::optional<SlotProduct> p = bareSlotProduct(add.getInputs()[i]);
    if (!p || !sameSlotIds(g.getInputs()[1], p->idsFlat) ||
        b.getType().getDimSize(0) != p->w.getType().getDimSize(0) ||
        b.getType().getDimSize(1) != outWidth(*p))
      continue;
    p->bias = b;
    return p;
  }
  return std::nullopt;
}

/// Output columns start, start + stride, ... (len of them) of a slot
/// product, as a stacked [E, in, len] weight (what the routed experts'
/// MatMul reads).
DenseElementsAttr expertColumns(const SlotProduct &p, int64_t start,
                                int64_t len, int64_t stride = 1) {
  auto t = p.w.getType();
  int64_t e = t.getDimSize(0), in = inWidth(p), out = outWidth(p);
  auto type = RankedTensorType::get({e, in, len}, t.getElementType());
  if (p.w.isSplat())
    return DenseElementsAttr::get(type, p.w.getSplatValue<Attribute>());
  // Raw f32 storage (slotProduct checked the type), copied element-wise:
  // per-element Attributes would cost seconds and GBs on a real model.
  ArrayRef<char> raw = p.w.getRawData();
  const float *w = reinterpret_cast<const float *>(raw.data());
  std::vector<float> buf(static_cast<size_t>(e) * in * len);
  for (int64_t x = 0; x < e; ++x)
    for (int64_t i = 0; i < in; ++i)
      for (int64_t o = 0; o < len; ++o)
        buf[(x * in + i) * len + o] =
            p.transposed ? w[(x * in + i) * out + start + o * stride]
                         : w[(x * out + start + o * stride) * in + i];
  return DenseElementsAttr::getFromRawBuffer(
      type, ArrayRef<char>(reinterpret_cast<const char *>(buf.data()),
                           buf.size() * sizeof(float)));
}

/// The same columns of a slot product's bias [E, out], as [E, len].
DenseElementsAttr biasColumns(const SlotProduct &p, int64_t start, int64_t len,
                              int64_t stride = 1) {
  auto t = p.bias.getType();
  int64_t e = t.getDimSize(0), out = t.getDimSize(1);
  auto type = RankedTensorType::get({e, len}, t.getElementType());
  if (p.bias.isSplat())
    return DenseElementsAttr::get(type, p.bias.getSplatValue<Attribute>());
  ArrayRef<char> raw = p.bias.getRawData();
  const float *b = reinterpret_cast<const float *>(raw.data());
  std::vector<float> buf(static_cast<size_t>(e) * len);
  for (int64_t x = 0; x < e; ++x)
    for (int64_t o = 0; o < len; ++o)
      buf[x * len + o] = b[x * out + start + o * stride];
  return DenseElementsAttr::getFromRawBuffer(
      type, ArrayRef<char>(reinterpret_cast<const char *>(buf.data()),
                           buf.size() * sizeof(float)));
}

/// How two values split h's last axis into halves.
enum class Halves {
  None,
  Contiguous, // [0, I) and [I, 2I): one Split, or two Slices
  Interleaved // [0::2] and [1::2]: two Slices of step 2 (GPT-OSS)
};

/// Whether `a` and `b` are h's two halves along its last axis (each
/// `half` wide), `a` the first (columns 0.. or the even ones).
Halves halvesOf(Value a, Value b, Value h, int64_t half) {
  int64_t rank = raise::rankOf(h);
  if (rank < 1)
    return Halves::None;
  auto lastAxis = [&](int64_t axis) { return axis == -1 || axis == rank - 1; };
  onnxir::NodeOp split = producer(a, "Split");
  if (split && split.getNumResults() == 2 && split.getInputs()[0] == h &&
      a == split.getResult(0) && b == split.getResult(1) &&
      lastAxis(intAttrOf(split, "axis").value_or(0))) {
    bool equal;
    if (split.getInputs().size() >= 2 &&
        !isa<NoneType>(split.getInputs()[1].getType()))
      equal = isInts(split.getInputs()[1], {half, half});
    else // No sizes: equal parts (num_outputs 2 from opset 18; the two
         // results before it).
      equal = intAttrOf(split, "num_outputs").value_or(2) == 2 &&
              constantDim(h, rank - 1) == 2 * half;
    return equal ? Halves::Contiguous : Halves::None;
  }
  // Slice(h, [start], [end], [last axis], [step]): the columns start,
  // start + step, ... below end (an end past the axis is its size).
  auto slice = [&](Value v, int64_t start, int64_t end, int64_t step) {
    onnxir::NodeOp sl = producer(v, "Slice");
    if (!sl || sl.getInputs()[0] != h || sl.getInputs().size() < 4)
      return false;
    std::optional<int64_t> s = knownEntry(sl.getInputs()[1], 0),
                           e = knownEntry(sl.getInputs()[2], 0),
                           ax = knownEntry(sl.getInputs()[3], 0);
    bool noStep =
        sl.getInputs().size() < 5 || isa<NoneType>(sl.getInputs()[4].getType());
    if (noStep ? step != 1
               : (knownLength(sl.getInputs()[4]) != 1 ||
                  knownEntry(sl.getInputs()[4], 0) != step))
      return false;
    return knownLength(sl.getInputs()[1]) == 1 &&
           knownLength(sl.getInputs()[2]) == 1 &&
           knownLength(sl.getInputs()[3]) == 1 && s == start && ax &&
           lastAxis(*ax) && (e == end || (e && *e >= end && end == 2 * half));
  };
  if (constantDim(h, rank - 1) != 2 * half)
    return Halves::None;
  if (slice(a, 0, half, 1) && slice(b, half, 2 * half, 1))
    return Halves::Contiguous;
  if (slice(a, 0, 2 * half, 2) && slice(b, 1, 2 * half, 2))
    return Halves::Interleaved;
  return Halves::None;
}

/// GPT-OSS's gate on halves g and u of h (ONNX Runtime MoE's "swiglu"):
///   (Clip(u, -l, l) + beta) * (g' * Sigmoid(g' * alpha)), g' = Clip(g,
///   none, l)
/// the factors in either order; without the clips (l = +inf), the Add
/// (beta 0) or the scale (alpha 1). Sets g, u, alpha, beta, limit.
bool matchSwiglu(Value v, Value &g, Value &u, double &alpha, double &beta,
                 double &limit) {
  onnxir::NodeOp mul = producer(v, "Mul");
  if (!mul)
    return false;
  auto scalar = [](Value c) -> std::optional<double> {
    std::optional<APFloat> f = oneElementFloat(c, 1);
    if (!f)
      return std::nullopt;
    return f->convertToDouble();
  };
  auto none = [](onnxir::NodeOp n, unsigned i) {
    return n.getInputs().size() <= i ||
           isa<NoneType>(n.getInputs()[i].getType());
  };
  for (int i = 0; i < 2; ++i) {
    // The gate: g' * Sigmoid(g' * alpha) (or Sigmoid(g')).
    onnxir::NodeOp glu = producer(mul.getInputs()[i], "Mul");
    if (!glu)
      continue;
    Value gc;
    std::optional<double> a;
    for (int j = 0; j < 2 && !gc; ++j) {
      onnxir::NodeOp sg = producer(glu.getInputs()[1 - j], "Sigmoid");
      if (!sg)
        continue;
      Value z = sg.getInputs()[0], cand = glu.getInputs()[j];
      if (z == cand) {
        std::tie(gc, a) = std::make_pair(cand, 1.0);
      } else if (onnxir::NodeOp sc = producer(z, "Mul")) {
        for (int m = 0; m < 2 && !gc; ++m)
          if (sc.getInputs()[m] == cand && (a = scalar(sc.getInputs()[1 - m])))
            gc = cand;
      }
    }
    if (!gc)
      continue;
    // g' = Clip(g, none, l), or g.
    std::optional<double> gateLimit;
    Value gate = gc;
    if (onnxir::NodeOp clip = producer(gc, "Clip")) {
      if (clip.getInputs().size() != 3 || !none(clip, 1) ||
          !(gateLimit = scalar(clip.getInputs()[2])))
        continue;
      gate = clip.getInputs()[0];
    }
    // The linear half: Clip(u, -l, l) (+ beta), or u (+ beta).
    Value lin = mul.getInputs()[1 - i];
    std::optional<double> b = 0.0;
    if (onnxir::NodeOp add = producer(lin, "Add")) {
      std::optional<double> c0 = scalar(add.getInputs()[0]),
                            c1 = scalar(add.getInputs()[1]);
      if (c1 && !c0)
        std::tie(lin, b) = std::make_pair(add.getInputs()[0], c1);
      else if (c0 && !c1)
        std::tie(lin, b) = std::make_pair(add.getInputs()[1], c0);
      else
        continue;
    }
    std::optional<double> upLow, upHigh;
    if (onnxir::NodeOp clip = producer(lin, "Clip")) {
      if (clip.getInputs().size() != 3 ||
          !(upLow = scalar(clip.getInputs()[1])) ||
          !(upHigh = scalar(clip.getInputs()[2])))
        continue;
      lin = clip.getInputs()[0];
    }
    // One limit l > 0 on both halves, or none.
    if (bool(gateLimit) != bool(upHigh) ||
        (gateLimit &&
         (*gateLimit != *upHigh || *upLow != -*upHigh || !(*gateLimit > 0))))
      continue;
    if (!std::isfinite(*a) || !std::isfinite(*b))
      continue;
    g = gate;
    u = lin;
    alpha = *a;
    beta = *b;
    limit = gateLimit ? *gateLimit : std::numeric_limits<double>::infinity();
    return true;
  }
  return false;
}

/// `xs` = repeat_interleave(rows, k) along rows' first axis: the rows.
Value repeatedRows(Value xs, int64_t k, Value ids) {
  // An entry of a [?, k, ?] shape that is k: a constant, or ids' last size.
  auto isK = [&](Value shape, int64_t e) {
    return knownEntry(shape, e) == k || entryIsDim(shape, e, ids, 1);
  };
  Value tiled;
  if (onnxir::NodeOp fl = producer(xs, "Flatten")) {
    if (intAttrOf(fl, "axis").value_or(1) != 2)
      return {};
    tiled = fl.getInputs()[0];
  } else if (onnxir::NodeOp rs = producer(xs, "Reshape")) {
    // To [-1, D].
    tiled = rs.getInputs()[0];
    if (knownLength(rs.getInputs()[1]) != 2 ||
        knownEntry(rs.getInputs()[1], 0) != -1 ||
        !entryIsDim(rs.getInputs()[1], 1, tiled, 2))
      return {};
  } else {
    return {};
  }
  // Tile's repeats [1, k, 1]: known entries, or as TorchScript writes
  // them, Reshape(OneHot([1], 3, [1, k]), [-1]) (a [1, 3] matrix, whose
  // entries the shape arithmetic does not keep).
  auto isRepeats = [&](Value reps) {
    if (knownLength(reps) == 3)
      return knownEntry(reps, 0) == 1 && isK(reps, 1) &&
             knownEntry(reps, 2) == 1;
    onnxir::NodeOp rs = producer(reps, "Reshape");
    onnxir::NodeOp oh =
        rs ? producer(rs.getInputs()[0], "OneHot") : onnxir::NodeOp();
    if (!oh || knownLength(rs.getInputs()[1]) != 1 ||
        (knownEntry(rs.getInputs()[1], 0) != -1 &&
         knownEntry(rs.getInputs()[1], 0) != 3) ||
        intAttrOf(oh, "axis").value_or(-1) != -1)
      return false;
    DenseElementsAttr index = constantOf(oh.getInputs()[0]);
    Value values = oh.getInputs()[2];
    return index && index.getNumElements() == 1 &&
           index.getType().getRank() <= 1 && isInts(oh.getInputs()[0], {1}) &&
           knownLength(oh.getInputs()[1]) == 1 &&
           knownEntry(oh.getInputs()[1], 0) == 3 && knownLength(values) == 2 &&
           knownEntry(values, 0) == 1 && isK(values, 1);
  };
  Value u;
  if (onnxir::NodeOp tile = producer(tiled, "Tile")) {
    if (tile.getInputs().size() != 2 || !isRepeats(tile.getInputs()[1]))
      return {};
    u = tile.getInputs()[0];
  } else if (onnxir::NodeOp ex = producer(tiled, "Expand")) {
    Value shape = ex.getInputs()[1];
    u = ex.getInputs()[0];
    // [1 | N, k, 1 | D] over Unsqueeze(R, 1) [N, 1, D].
    if (knownLength(shape) != 3 || !isK(shape, 1))
      return {};
    Value rows = unsqueezedAt(u, 1, 3);
    if (!rows ||
        !(knownEntry(shape, 0) == 1 || entryIsDim(shape, 0, rows, 0)) ||
        !(knownEntry(shape, 2) == 1 || entryIsDim(shape, 2, rows, 1)))
      return {};
  } else {
    return {};
  }
  Value rows = unsqueezedAt(u, 1, 3);
  return rows && raise::rankOf(rows) == 2 ? rows : Value();
}

/// The activation of form (g)'s experts: matchActivation's, or squared
/// ReLU (Nemotron-H's relu2: Pow(Relu(x), 2) or Relu(x) * Relu(x)), which
/// only the internal experts nodes take (not moe.ffn's activations).
FailureOr<std::pair<std::string, Value>> slotActivation(Value a) {
  FailureOr<std::pair<std::string, Value>> act = matchActivation(a);
  if (succeeded(act) && act->first != "identity")
    return act;
  Value r;
  if (onnxir::NodeOp pow = producer(a, "Pow")) {
    std::optional<APFloat> e = oneElementFloat(pow.getInputs()[1], 1);
    DenseElementsAttr ie = constantOf(pow.getInputs()[1]);
    bool two = (e && e->isExactlyValue(2.0)) ||
               (ie && ie.getNumElements() == 1 && ie.getType().getRank() <= 1 &&
                isa<IntegerType>(ie.getElementType()) &&
                (*ie.getValues<APInt>().begin()).getSExtValue() == 2);
    if (two)
      r = pow.getInputs()[0];
  } else if (onnxir::NodeOp mul = producer(a, "Mul")) {
    if (mul.getInputs()[0] == mul.getInputs()[1])
      r = mul.getInputs()[0];
  }
  if (onnxir::NodeOp relu = r ? producer(r, "Relu") : onnxir::NodeOp())
    return std::make_pair(std::string("relu2"), relu.getInputs()[0]);
  return failure();
}

/// Form (g), ending at `out` = ReduceSum(Reshape(y * w, [N, k, D]), [1]);
/// failure without a reason where `out` is not such a sum of slot
/// products.
FailureOr<HfBlock> matchSlotProducts(onnxir::NodeOp sum, Miss &miss) {
  // The candidate: a sum over axis 1, no kept dim, of a reshaped product
  // one of whose factors is a slot product.
  if (sum.getNumResults() != 1 || sum.getInputs().empty() ||
      intAttrOf(sum, "keepdims").value_or(1) != 0)
    return failure();
  std::optional<SmallVector<int64_t>> axes =
      sum.getInputs().size() >= 2 ? intsOf(sum.getInputs()[1])
                                  : std::optional<SmallVector<int64_t>>();
  if (sum.getInputs().size() < 2)
    if (auto a = dyn_cast_or_null<DenseI64ArrayAttr>(
            sum.getNodeAttributes().get("axes")))
      axes = SmallVector<int64_t>(a.asArrayRef());
  if (!axes || axes->size() != 1 || ((*axes)[0] != 1 && (*axes)[0] != -2))
    return failure();
  onnxir::NodeOp view = producer(sum.getInputs()[0], "Reshape");
  onnxir::NodeOp mul =
      view ? producer(view.getInputs()[0], "Mul") : onnxir::NodeOp();
  if (!mul)
    return failure();
  std::optional<SlotProduct> down;
  Value weightCol;
  for (int i = 0; i < 2 && !down; ++i)
    if ((down = slotProduct(mul.getInputs()[i])))
      weightCol = mul.getInputs()[1 - i];
  if (!down) {
    // Something else added to the down projection's product.
    for (Value f : mul.getInputs())
      if (onnxir::NodeOp add = producer(f, "Add"))
        if (bareSlotProduct(add.getInputs()[0]) ||
            bareSlotProduct(add.getInputs()[1]))
          miss.why = "the down projection's product has an addend that is "
                     "not a bias [E, D] gathered by its expert ids";
    return failure();
  }

  Value rwFlat = unsqueezedAt(weightCol, 1, 2);
  if (!rwFlat || raise::rankOf(rwFlat) != 1) {
    miss.why = "the slot weights are not one weight per slot, as a column";
    return failure();
  }
  Value ids = flattened(down->idsFlat);
  if (!ids) {
    miss.why = "the down projection's expert ids are not a [N, k] tensor "
               "flattened";
    return failure();
  }
  // The activation: act(h), or act(gate) * up or swiglu(gate, up) with
  // gate and up h's two halves (contiguous or interleaved, either first).
  HfBlock blk;
  int64_t inter = inWidth(*down);
  Value h;
  bool gated = false;
  Halves halves = Halves::None;
  bool gateFirst = true;
  // Sets h and the layout where `gate` and `up` are the halves of one h.
  auto gatedHalves = [&](Value gate, Value up) {
    onnxir::NodeOp part = producer(gate, "Split");
    if (!part)
      part = producer(gate, "Slice");
    if (!part)
      return false;
    Value whole = part.getInputs()[0];
    gateFirst = true;
    halves = halvesOf(gate, up, whole, inter);
    if (halves == Halves::None) {
      gateFirst = false;
      halves = halvesOf(up, gate, whole, inter);
    }
    if (halves == Halves::None)
      return false;
    h = whole;
    return true;
  };
  if (onnxir::NodeOp gm = producer(down->v, "Mul")) {
    for (int i = 0; i < 2 && !gated; ++i) {
      FailureOr<std::pair<std::string, Value>> act =
          slotActivation(gm.getInputs()[i]);
      if (failed(act))
        continue;
      if (gatedHalves(act->second, gm.getInputs()[1 - i])) {
        gated = true;
        blk.activation = act->first;
      }
    }
  }
  if (!gated) {
    Value gate, up;
    if (matchSwiglu(down->v, gate, up, blk.alpha, blk.beta, blk.limit) &&
        gatedHalves(gate, up)) {
      gated = true;
      blk.activation = "swiglu";
    }
  }
  if (!gated) {
    FailureOr<std::pair<std::string, Value>> act = slotActivation(down->v);
    if (succeeded(act)) {
      blk.activation = act->first;
      h = act->second;
    }
  }
  std::optional<SlotProduct> up = h ? slotProduct(h) : std::nullopt;
  if (!up) {
    miss.why = "the expert hidden rows are not act(h), act(gate) * up "
               "(act silu, relu, relu2 or gelu) nor GPT-OSS's clamped "
               "swiglu of h's halves, h a product of the slot rows with "
               "gathered weights";
    return failure();
  }
  if (!sameSlotIds(up->idsFlat, down->idsFlat)) {
    miss.why = "the two projections gather their weights by different ids";
    return failure();
  }
  if (up->transposed != down->transposed ||
      outWidth(*up) != (gated ? 2 : 1) * inter ||
      up->w.getType().getDimSize(0) != down->w.getType().getDimSize(0) ||
      inWidth(*up) != outWidth(*down)) {
    miss.why = "the two projections' weights disagree in E, D or I";
    return failure();
  }
  // k: the ids' static last size, or their TopK's constant K.
  std::optional<int64_t> slots = constantDim(ids, 1);
  if (onnxir::NodeOp topk = producer(ids, "TopK");
      !slots && topk && topk.getNumResults() == 2 &&
      topk.getInputs().size() == 2 && ids == topk.getResult(1) &&
      attrIsLastAxis(topk, topk.getInputs()[0]) &&
      raise::rankOf(topk.getInputs()[0]) == 2)
    if (std::optional<SmallVector<int64_t>> kc = intsOf(topk.getInputs()[1]);
        kc && kc->size() == 1)
      slots = (*kc)[0];
  if (!slots || *slots < 1) {
    miss.why = "the slots per token (the expert ids' last size) are not a "
               "known constant";
    return failure();
  }
  int64_t k = *slots, d = outWidth(*down), e = down->w.getType().getDimSize(0);
  Value rows = repeatedRows(up->v, k, ids);
  if (!rows) {
    miss.why = "the slot rows are not the token rows repeated k times "
               "each (repeat_interleave)";
    return failure();
  }
  if (constantDim(rows, 1).value_or(d) != d) {
    miss.why = "the token rows are not as wide as the experts' inputs";
    return failure();
  }
  // The sum's view: [N | -1, k, D].
  Value shape = view.getInputs()[1];
  if (knownLength(shape) != 3 ||
      !(knownEntry(shape, 0) == -1 || entryIsDim(shape, 0, rows, 0)) ||
      !(knownEntry(shape, 1) == k || entryIsDim(shape, 1, ids, 1)) ||
      !(knownEntry(shape, 2) == d || entryIsDim(shape, 2, rows, 1))) {
    miss.why = "the slot rows are not summed per token ([N, k, D] summed "
               "over k)";
    return failure();
  }
  blk.rows = rows;
  blk.k = k;
  // A routing moe.route computes (RoutedExperts: one routing kernel), or
  // else the graph's own (SelectedExperts: its ids and weights, reshaped
  // to [N, k] as the export pairs them with the slots).
  Value rw = flattened(rwFlat);
  Miss routingMiss;
  FailureOr<HfRouting> hr =
      rw ? matchHfRouting(ids, rw, rows, routingMiss, inWidth(*up))
         : FailureOr<HfRouting>(failure());
  if (succeeded(hr)) {
    auto selT = hr->routing.wsel.getType();
    if (selT.getDimSize(0) != d || selT.getDimSize(1) != e || k > e ||
        hr->routing.k != k || !selT.getElementType().isF32())
      hr = failure();
  }
  if (succeeded(hr)) {
    blk.logits = hr->logits;
    blk.gate = hr->gate;
  } else {
    Type idType = elementTypeOf(down->idsFlat);
    Type weightType = elementTypeOf(rwFlat);
    if (!idType ||
        !(idType.isSignlessInteger(64) || idType.isSignlessInteger(32)) ||
        !weightType || !weightType.isF32()) {
      miss.why = "the expert ids are not int64 or int32, or the slot "
                 "weights not f32";
      return failure();
    }
    blk.slotIds = down->idsFlat;
    blk.slotWeights = rwFlat;
  }
  // The gate's and the up half's columns of W1 (and of its bias).
  int64_t stride = halves == Halves::Interleaved ? 2 : 1;
  int64_t second = halves == Halves::Interleaved ? 1 : inter;
  int64_t gateStart = gateFirst ? 0 : second, upStart = gateFirst ? second : 0;
  if (!gated)
    gateStart = 0;
  blk.w1 = expertColumns(*up, gateStart, inter, stride);
  if (up->bias)
    blk.b1 = biasColumns(*up, gateStart, inter, stride);
  if (gated) {
    blk.w3 = expertColumns(*up, upStart, inter, stride);
    if (up->bias)
      blk.b3 = biasColumns(*up, upStart, inter, stride);
  }
  blk.w2 = expertColumns(*down, 0, d);
  blk.b2 = down->bias;
  miss.why.clear();
  return blk;
}

struct RaiseOnnxMoePass : moe::impl::RaiseOnnxMoeBase<RaiseOnnxMoePass> {
  using RaiseOnnxMoeBase::RaiseOnnxMoeBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    // A node whose schema changed after its handler (OnnxToMoe.h) is
    // refused by the conversion; raising first could erase it unreported.
    const OnnxHandlerRegistry &registry = getDefaultOnnxHandlers();
    WalkResult stale = module.walk([&](onnxir::NodeOp node) {
      return registry.staleHandler(node.getDomain(), node.getOpType(),
                                   node.getVersion())
                 ? WalkResult::interrupt()
                 : WalkResult::advance();
    });
    if (stale.wasInterrupted())
      return;
    IRRewriter rewriter(&getContext());
    // Nodes already unused in the model are left to the conversion (which
    // reports them if unsupported); only what a raise leaves unused goes.
    llvm::SmallPtrSet<Operation *, 16> unusedBefore;
    module.walk([&](Operation *op) {
      if (isa<onnxir::NodeOp, onnxir::NoneOp, arith::ConstantOp>(op) &&
          op->use_empty())
        unusedBefore.insert(op);
    });
    // Einsums recovered from the dynamo exporter's MatMul chains
    // (RaisePrepare.cpp) are provisional: the chain each replaced stays
    // (pinned) until the matchers are done; then each recovered Einsum no
    // raise consumed is replaced by its chain again.
    llvm::SmallPtrSet<Operation *, 16> pinned;
    // Nodes left without uses (a raised block's interior) go, so that the
    // next matchers and the conversion never see them.
    auto eraseDead = [&] {
      bool erased = true;
      while (erased) {
        erased = false;
        SmallVector<Operation *> dead;
        module.walk([&](Operation *op) {
          if (isa<onnxir::NodeOp, onnxir::NoneOp, arith::ConstantOp>(op) &&
              op->use_empty() && !unusedBefore.contains(op) &&
              !pinned.contains(op) && op->getParentOp() &&
              !isa<ModuleOp>(op->getParentOp()))
            dead.push_back(op);
        });
        for (Operation *op : dead) {
          rewriter.eraseOp(op);
          erased = true;
        }
      }
    };
    auto einsumsOf = [&] {
      SmallVector<onnxir::NodeOp> einsums;
      module.walk([&](onnxir::NodeOp node) {
        if (node.getDomain().empty() && node.getOpType() == "Einsum")
          if (node.getNumResults() == 1)
            einsums.push_back(node);
      });
      return einsums;
    };
    int64_t moeVersion = 1;
    // The mark of a recovered Einsum (below) is this run's own: an input
    // .mlir that carries it loses it.
    module.walk([](Operation *op) { op->removeAttr("moe.recovered"); });
    PreparedGraph prepared = prepareForRaise(module, rewriter);
    SizeFactsScope sizeFacts(prepared.shapes.get());
    rewriter.setListener(prepared.listener());
    auto &recovered = prepared.recovered;
    for (auto [i, r] : llvm::enumerate(recovered)) {
      r.first->setAttr("moe.recovered", rewriter.getI64IntegerAttr(i));
      if (Operation *def = r.second.getDefiningOp())
        pinned.insert(def);
    }
    // `view` (a raised node's result reshaped as the export's interior
    // was) feeding a Reshape back to `src`'s own shape is `result` itself:
    // the export's final view; the round trip would be a copy.
    auto skipRoundTrip = [&](Value view, Value result, Value src) {
      for (Operation *user : llvm::make_early_inc_range(view.getUsers())) {
        auto rs = dyn_cast<onnxir::NodeOp>(user);
        if (rs && rs.getDomain().empty() && rs.getOpType() == "Reshape" &&
            rs.getNumResults() == 1 && rs.getInputs().size() == 2 &&
            rs.getInputs()[0] == view &&
            rs.getResult(0).getType() == result.getType() &&
            isShapeOf(rs.getInputs()[1], src))
          rewriter.replaceAllUsesWith(rs.getResult(0), result);
      }
    };
    // Replaces `out` by the raised `node`'s result reshaped to `shape` as
    // the export's Reshape `like` did (its attributes and version), then
    // skips the export's view of that back to `src`'s own shape.
    auto replaceWithView = [&](Value out, onnxir::NodeOp node,
                               onnxir::NodeOp like, Value shape, Value src) {
      auto view = onnxir::NodeOp::create(
          rewriter, node.getLoc(), TypeRange{out.getType()},
          like.getOpTypeAttr(), like.getDomainAttr(), like.getVersionAttr(),
          like.getNodeAttributesAttr(), ValueRange{node.getResult(0), shape});
      rewriter.replaceAllUsesWith(out, view.getResult(0));
      skipRoundTrip(view.getResult(0), node.getResult(0), src);
    };
    // Form (e) first: its value projection has the shape of a σ-MoE's.
    for (onnxir::NodeOp combine : einsumsOf()) {
      Miss miss;
      Value out = combine.getResult(0);
      FailureOr<SwitchHeadBlock> blk = matchSwitchHead(out, miss);
      if (failed(blk)) {
        if (report && !miss.why.empty())
          combine.emitRemark()
              << "SwitchHead attention not raised: " << miss.why;
        continue;
      }
      rewriter.setInsertionPoint(combine);
      Location loc = combine.getLoc();
      bool gated = !blk->selV;
      SmallVector<Value> ins = {
          blk->qSrc,
          blk->kSrc,
          blk->vSrc,
          blk->wq,
          blk->wk,
          blk->wv,
          blk->wo,
          arith::ConstantOp::create(rewriter, loc, transpose2d(blk->selO))};
      if (!gated)
        ins.push_back(
            arith::ConstantOp::create(rewriter, loc, transpose2d(blk->selV)));
      SmallVector<NamedAttribute> attrs = {
          rewriter.getNamedAttr("num_heads",
                                rewriter.getI64IntegerAttr(blk->heads)),
          rewriter.getNamedAttr("k", rewriter.getI64IntegerAttr(blk->k)),
          rewriter.getNamedAttr("causal",
                                rewriter.getI64IntegerAttr(blk->causal)),
          rewriter.getNamedAttr("rotate_fraction",
                                rewriter.getF32FloatAttr(blk->fraction)),
          rewriter.getNamedAttr("rope_base",
                                rewriter.getF32FloatAttr(blk->base))};
      StringRef name =
          gated ? "SwitchHeadGatedAttention" : "SwitchHeadAttention";
      auto node = onnxir::NodeOp::create(
          rewriter, loc, TypeRange{blk->qSrc.getType()},
          rewriter.getStringAttr(name), rewriter.getStringAttr(kMoeDomain),
          rewriter.getI64IntegerAttr(moeVersion),
          rewriter.getDictionaryAttr(attrs), ins);
      // Back to the rows [B * T, D] the combine produced, as the queries
      // were flattened.
      replaceWithView(out, node, blk->qFlatten, blk->qFlatten.getInputs()[1],
                      blk->qSrc);
      char baseText[32];
      std::snprintf(baseText, sizeof(baseText), "%g", blk->base);
      if (report)
        node.emitRemark() << "raised (e) SwitchHead attention into "
                          << kMoeDomain << "." << name << " (H = " << blk->heads
                          << ", E = " << blk->experts << ", k = " << blk->k
                          << ", dk = " << blk->dk << ", dv = " << blk->dv
                          << ", RoPE on " << blk->rotated << " dims, base "
                          << baseText
                          << (blk->causal ? ", causal" : ", not causal") << ")";
      ++numRaised;
    }
    // Form (f): Mixture of Tokens, from its sum over experts.
    SmallVector<onnxir::NodeOp> sums;
    module.walk([&](onnxir::NodeOp node) {
      if (node.getDomain().empty() && node.getOpType() == "ReduceSum")
        if (node.getNumResults() == 1)
          sums.push_back(node);
    });
    for (onnxir::NodeOp sum : sums) {
      Miss miss;
      Value out = sum.getResult(0);
      FailureOr<MotBlock> blk = matchMot(out, miss);
      if (failed(blk)) {
        if (report && !miss.why.empty())
          sum.emitRemark() << "Mixture of Tokens not raised: " << miss.why;
        continue;
      }
      rewriter.setInsertionPoint(sum);
      Location loc = sum.getLoc();
      SmallVector<Value> ins = {
          blk->x, arith::ConstantOp::create(rewriter, loc, blk->wCtrl),
          arith::ConstantOp::create(rewriter, loc, blk->w1),
          arith::ConstantOp::create(rewriter, loc, blk->w2)};
      SmallVector<NamedAttribute> attrs = {
          rewriter.getNamedAttr("group_size",
                                rewriter.getI64IntegerAttr(blk->groupSize)),
          rewriter.getNamedAttr("temperature",
                                rewriter.getF32FloatAttr(blk->temperature)),
          rewriter.getNamedAttr("mode", rewriter.getStringAttr("continuous")),
          rewriter.getNamedAttr("activation",
                                rewriter.getStringAttr(blk->activation))};
      auto node =
          onnxir::NodeOp::create(rewriter, loc, TypeRange{blk->x.getType()},
                                 rewriter.getStringAttr("MixtureOfTokens"),
                                 rewriter.getStringAttr(kMoeDomain),
                                 rewriter.getI64IntegerAttr(moeVersion),
                                 rewriter.getDictionaryAttr(attrs), ins);
      // Back to the [B / g, g, T, D] the sum produced.
      replaceWithView(out, node, blk->reshape, blk->groupShape, blk->x);
      if (report)
        node.emitRemark() << "raised (f) Mixture of Tokens into " << kMoeDomain
                          << ".MixtureOfTokens (E = "
                          << blk->w1.getType().getDimSize(0) << ", group "
                          << blk->groupSize << ", activation "
                          << blk->activation << ")";
      ++numRaised;
    }
    eraseDead();
    SmallVector<onnxir::NodeOp> einsums = einsumsOf();
    for (onnxir::NodeOp combine : einsums) {
      if (!combine->getBlock())
        continue; // erased as part of an earlier block
      Miss miss, gatheredMiss;
      Value out = combine.getResult(0);
      // Both combine equations have one structure ("ns,nsd->nd"): the
      // forms differ in what feeds them.
      FailureOr<Block> blk = matchGathered(out, gatheredMiss);
      if (failed(blk)) {
        blk = matchDense(out, miss);
        if (failed(blk) && !gatheredMiss.why.empty())
          miss.why = miss.why.empty()
                         ? gatheredMiss.why
                         : "as (c), " + gatheredMiss.why + "; as (b), " +
                               miss.why;
      }
      if (succeeded(blk) && failed(checkShapes(*blk, miss)))
        blk = failure();
      if (failed(blk)) {
        if (report && !miss.why.empty())
          combine.emitRemark() << "MoE block not raised: " << miss.why;
        continue;
      }
      rewriter.setInsertionPoint(combine);
      Location loc = combine.getLoc();
      auto wsel = arith::ConstantOp::create(rewriter, loc,
                                            transpose2d(blk->routing.wsel));
      SmallVector<NamedAttribute> attrs = {
          rewriter.getNamedAttr("k", rewriter.getI64IntegerAttr(blk->routing.k)),
          rewriter.getNamedAttr("gate",
                                rewriter.getStringAttr(blk->routing.gate)),
          rewriter.getNamedAttr("activation",
                                rewriter.getStringAttr(blk->activation))};
      auto node = onnxir::NodeOp::create(
          rewriter, loc, TypeRange{out.getType()},
          rewriter.getStringAttr("MoEFeedForward"),
          rewriter.getStringAttr(kMoeDomain),
          rewriter.getI64IntegerAttr(moeVersion),
          rewriter.getDictionaryAttr(attrs),
          ValueRange{blk->x, blk->routing.selectorInput, wsel, blk->w1Value,
                     blk->w2Value});
      rewriter.replaceAllUsesWith(out, node.getResult(0));
      if (report)
        node.emitRemark() << "raised " << blk->form << " into "
                          << kMoeDomain << ".MoEFeedForward (k = "
                          << blk->routing.k << ", gate " << blk->routing.gate
                          << ", activation " << blk->activation << ", E = "
                          << blk->w1.getType().getDimSize(0) << ")";
      ++numRaised;
    }
    // Form (a): chains of Add(acc, ScatterElements(...)) ending in a value
    // no such Add reads.
    SmallVector<onnxir::NodeOp> chainEnds;
    module.walk([&](onnxir::NodeOp add) {
      // (Nodes found by walking may have no outputs: ONNX allows it.)
      if (!add.getDomain().empty() || add.getOpType() != "Add" ||
          add.getNumResults() != 1 ||
          !llvm::any_of(add.getInputs(), [](Value v) {
            return bool(producer(v, "ScatterElements"));
          }))
        return;
      for (Operation *user : add.getResult(0).getUsers()) {
        auto next = dyn_cast<onnxir::NodeOp>(user);
        if (next && next.getOpType() == "Add" && next.getDomain().empty())
          for (Value v : next.getInputs())
            if (producer(v, "ScatterElements"))
              return;
      }
      chainEnds.push_back(add);
    });
    // The dynamo exporters' form (a): chains of ScatterND(acc, ., ., add)
    // ending in a value no such ScatterND reads as its data.
    auto isAddScatter = [](Operation *op) {
      auto n = dyn_cast_or_null<onnxir::NodeOp>(op);
      auto r = n ? dyn_cast_or_null<StringAttr>(
                       n.getNodeAttributes().get("reduction"))
                 : StringAttr();
      return n && n.getDomain().empty() && n.getOpType() == "ScatterND" &&
             n.getNumResults() == 1 && n.getInputs().size() == 3 && r &&
             r.getValue() == "add";
    };
    SmallVector<std::pair<onnxir::NodeOp, bool>> ends;
    for (onnxir::NodeOp end : chainEnds)
      ends.push_back({end, false});
    module.walk([&](onnxir::NodeOp sc) {
      if (!isAddScatter(sc))
        return;
      for (OpOperand &use : sc.getResult(0).getUses())
        if (isAddScatter(use.getOwner()) && use.getOperandNumber() == 0)
          return;
      ends.push_back({sc, true});
    });
    // Replaces `end`'s result by the routed experts of `blk`.
    auto raiseRoutedExperts = [&](onnxir::NodeOp end, const HfBlock *blk,
                                  StringRef form) {
      rewriter.setInsertionPoint(end);
      Location loc = end.getLoc();
      bool selected = bool(blk->slotIds);
      SmallVector<Value> ins = {blk->rows};
      if (selected) {
        // The flat ids and weights as [N, k] (Reshape-14 to [-1, k]): row
        // n, column j is slot n * k + j, as the export pairs them.
        auto shape = arith::ConstantOp::create(
            rewriter, loc,
            DenseElementsAttr::get(
                RankedTensorType::get({2}, rewriter.getI64Type()),
                ArrayRef<int64_t>{-1, blk->k}));
        for (Value flat : {blk->slotIds, blk->slotWeights}) {
          auto type = RankedTensorType::get({ShapedType::kDynamic, blk->k},
                                            elementTypeOf(flat));
          ins.push_back(
              onnxir::NodeOp::create(
                  rewriter, loc, TypeRange{type},
                  rewriter.getStringAttr("Reshape"), rewriter.getStringAttr(""),
                  rewriter.getI64IntegerAttr(14),
                  rewriter.getDictionaryAttr({}), ValueRange{flat, shape})
                  .getResult(0));
        }
      } else {
        ins.push_back(blk->logits);
      }
      ins.push_back(arith::ConstantOp::create(rewriter, loc, blk->w1));
      ins.push_back(arith::ConstantOp::create(rewriter, loc, blk->w2));
      // w3, b1, b2, b3: each optional (none where absent before a present
      // one).
      SmallVector<DenseElementsAttr> optional = {blk->w3, blk->b1, blk->b2,
                                                 blk->b3};
      while (!optional.empty() && !optional.back())
        optional.pop_back();
      for (DenseElementsAttr c : optional)
        ins.push_back(c ? Value(arith::ConstantOp::create(rewriter, loc, c))
                        : Value(onnxir::NoneOp::create(
                              rewriter, loc, rewriter.getNoneType())));
      SmallVector<NamedAttribute> attrs = {rewriter.getNamedAttr(
          "activation", rewriter.getStringAttr(blk->activation))};
      bool swiglu = blk->activation == "swiglu";
      if (swiglu)
        for (auto [name, v] : {std::make_pair("alpha", blk->alpha),
                               std::make_pair("beta", blk->beta),
                               std::make_pair("limit", blk->limit)})
          attrs.push_back(
              rewriter.getNamedAttr(name, rewriter.getF64FloatAttr(v)));
      if (!selected) {
        attrs.push_back(
            rewriter.getNamedAttr("k", rewriter.getI64IntegerAttr(blk->k)));
        attrs.push_back(
            rewriter.getNamedAttr("gate", rewriter.getStringAttr(blk->gate)));
      }
      auto node = onnxir::NodeOp::create(
          rewriter, loc, TypeRange{end.getResult(0).getType()},
          rewriter.getStringAttr(selected ? "SelectedExperts"
                                          : "RoutedExperts"),
          rewriter.getStringAttr("org.moe_mlir.internal"),
          rewriter.getI64IntegerAttr(1), rewriter.getDictionaryAttr(attrs),
          ins);
      rewriter.replaceAllUsesWith(end.getResult(0), node.getResult(0));
      if (report) {
        InFlightDiagnostic remark = node.emitRemark();
        remark << "raised " << form;
        if (selected)
          remark << " into selected experts (k = " << blk->k
                 << ", the graph's own routing, ";
        else
          remark << " into routed experts (k = " << blk->k << ", gate "
                 << blk->gate << ", ";
        if (swiglu) {
          char text[96];
          std::snprintf(text, sizeof(text),
                        "swiglu (alpha %g, beta %g, limit %g)", blk->alpha,
                        blk->beta, blk->limit);
          remark << Twine(text); // copied: `text` ends here
        } else {
          remark << (blk->w3 ? "gated " : "") << blk->activation;
        }
        if (blk->b1 || blk->b2 || blk->b3)
          remark << ", with biases";
        remark << ", E = " << blk->w1.getType().getDimSize(0) << ")";
      }
      ++numRaised;
    };
    for (auto [end, dynamo] : ends) {
      Miss miss;
      FailureOr<HfBlock> blk = dynamo ? matchHfLoopNd(end.getResult(0), miss)
                                      : matchHfLoop(end.getResult(0), miss);
      if (failed(blk)) {
        if (report && !miss.why.empty())
          end.emitRemark() << "MoE block not raised: as (a), " << miss.why;
        continue;
      }
      raiseRoutedExperts(end, &*blk, "(a) the per-expert loop");
    }
    // Form (g): sums over the slots of per-slot expert products.
    SmallVector<onnxir::NodeOp> slotSums;
    module.walk([&](onnxir::NodeOp n) {
      if (n.getDomain().empty() && n.getOpType() == "ReduceSum")
        slotSums.push_back(n);
    });
    for (onnxir::NodeOp sum : slotSums) {
      Miss miss;
      FailureOr<HfBlock> blk = matchSlotProducts(sum, miss);
      if (failed(blk)) {
        if (report && !miss.why.empty())
          sum.emitRemark() << "MoE block not raised: as (g), " << miss.why;
        continue;
      }
      raiseRoutedExperts(sum, &*blk, "(g) the per-slot expert products");
    }

    // (Those a raise consumed are gone; the marked ones are left.)
    SmallVector<onnxir::NodeOp> unconsumed;
    module.walk([&](onnxir::NodeOp n) {
      if (n->hasAttr("moe.recovered"))
        unconsumed.push_back(n);
    });
    for (onnxir::NodeOp einsum : unconsumed) {
      auto i = dyn_cast<IntegerAttr>(einsum->getAttr("moe.recovered"));
      einsum->removeAttr("moe.recovered");
      if (!i || i.getInt() < 0 || i.getInt() >= (int64_t)recovered.size())
        continue;
      rewriter.replaceAllUsesWith(einsum.getResult(0),
                                  recovered[i.getInt()].second);
      rewriter.eraseOp(einsum);
    }
    pinned.clear();
    eraseDead();
    // Attention cores left after the SwitchHead raise (form (e) takes its
    // own): Softmax(MatMul(q, kT) [+ mask]) @ v as MaskedAttention.
    if (attention) {
      SmallVector<onnxir::NodeOp> products;
      module.walk([&](onnxir::NodeOp n) {
        if (n.getDomain().empty() && n.getOpType() == "MatMul")
          products.push_back(n);
      });
      for (onnxir::NodeOp pv : products) {
        if (!pv->getBlock())
          continue;
        Miss miss;
        FailureOr<AttentionCore> core = matchAttentionCore(pv, miss);
        if (failed(core)) {
          if (report && !miss.why.empty())
            pv.emitRemark() << "attention not raised: " << miss.why;
          continue;
        }
        rewriter.setInsertionPoint(pv);
        SmallVector<Value> ins = {core->q, core->kT, core->v};
        if (core->mask)
          ins.push_back(core->mask);
        if (core->sinks) {
          if (!core->mask)
            ins.push_back(onnxir::NoneOp::create(rewriter, pv.getLoc(),
                                                 rewriter.getNoneType()));
          ins.push_back(
              arith::ConstantOp::create(rewriter, pv.getLoc(), core->sinks));
        }
        SmallVector<NamedAttribute> attrs = {rewriter.getNamedAttr(
            "scale", rewriter.getF32FloatAttr(core->scale))};
        if (core->zeroNanProbs)
          attrs.push_back(rewriter.getNamedAttr("zero_nan_probs",
                                                rewriter.getI64IntegerAttr(1)));
        auto node = onnxir::NodeOp::create(
            rewriter, pv.getLoc(), TypeRange{pv.getResult(0).getType()},
            rewriter.getStringAttr("MaskedAttention"),
            rewriter.getStringAttr("org.moe_mlir.internal"),
            rewriter.getI64IntegerAttr(1), rewriter.getDictionaryAttr(attrs),
            ins);
        rewriter.replaceAllUsesWith(pv.getResult(0), node.getResult(0));
        char scaleText[32];
        std::snprintf(scaleText, sizeof(scaleText), "%g", core->scale);
        if (report)
          node.emitRemark()
              << "raised the attention core into "
                 "moe.attention (scale "
              << scaleText << ", " << (core->mask ? "with" : "without")
              << " an additive mask"
              << (core->zeroNanProbs ? ", NaN probabilities as 0" : "")
              << (core->sinks ? ", with sinks" : "") << ")";
        ++numRaised;
      }
      eraseDead();
    }
    if (!report)
      return;
    // The per-expert loop of Hugging Face exports: OneHot expert mask ->
    // NonZero token list, one per expert. Not raised yet.
    // Per-expert loops (OneHot expert mask -> NonZero token list) still
    // there were not raised.
    SmallVector<onnxir::NodeOp> nonZeros;
    module.walk([&](onnxir::NodeOp node) {
      if (node.getDomain().empty() && node.getOpType() == "NonZero" &&
          !node.getInputs().empty())
        nonZeros.push_back(node);
    });
    llvm::SmallPtrSet<Operation *, 8> reported;
    for (onnxir::NodeOp nz : nonZeros) {
      Value v = nz.getInputs()[0];
      while (onnxir::NodeOp n = producer(v, "Cast"))
        v = n.getInputs()[0];
      onnxir::NodeOp g = producer(v, "Gather");
      Value m = g ? g.getInputs()[0] : Value();
      if (onnxir::NodeOp t = producer(m, "Transpose"))
        m = t.getInputs()[0];
      onnxir::NodeOp oneHot = producer(m, "OneHot");
      if (oneHot && reported.insert(oneHot).second)
        oneHot.emitRemark()
            << "MoE block not raised: a per-expert loop (OneHot expert "
               "mask -> NonZero token list per expert) that form (a) does "
               "not cover; it runs as exported";
    }
  }
};

} // namespace

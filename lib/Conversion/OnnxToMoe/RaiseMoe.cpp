//===- RaiseMoe.cpp - raise exported MoE blocks to routed moe ops ----------===//
//
// `torch.onnx.export` writes an MoE layer as generic ops that compute every
// expert, or gather a weight matrix per routing slot. This pass, run on the
// ONNX graph before convert-onnx-to-moe, recognises such blocks and rewrites
// each into one `org.moe_mlir.MoEFeedForward` node, which the conversion
// turns into `moe.ffn` (routed: only the selected experts are computed, and
// its verifier checks every shape). The forms recognised:
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
// with gate(v) one of Sigmoid(v) (sigmoid), Softmax(v) (topk_softmax) or v
// itself when the TopK reads Softmax(s) (softmax); act one of Relu, Gelu
// (exact), x * Sigmoid(x) (silu) or none; Wsel, W1, W2 constants. Letters
// of the equations may differ; their structure is what is matched.
//
// Equivalence: (c) computes exactly what moe.ffn computes (the same slots,
// the same weights). (b) adds g[n, e] * y[n, e] over every expert, where g
// is zero off the top-k: the same sum as long as the experts' outputs are
// finite (0 * inf is NaN in the dense form only), which the rewrite assumes,
// as ONNX Runtime's and OpenVINO's MoE fusions do.
//
// Anything else is left as exported (generic, correct). With `report`,
// every raise and every near miss (a combine Einsum, or a per-expert
// OneHot -> NonZero loop, that did not match) is a remark at its node.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/OnnxToMoe/OnnxToMoe.h"
#include "moe/Conversion/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/PatternMatch.h"

#include <string>

namespace mlir::moe {
#define GEN_PASS_DEF_RAISEONNXMOE
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

constexpr StringLiteral kMoeDomain = "org.moe_mlir";

/// The standard-domain node of `opType` defining `v`, if any.
onnxir::NodeOp producer(Value v, StringRef opType) {
  auto node = v ? v.getDefiningOp<onnxir::NodeOp>() : onnxir::NodeOp();
  if (!node || !node.getDomain().empty() || node.getOpType() != opType)
    return {};
  return node;
}

/// A constant tensor: an initializer or a Constant node's value.
DenseElementsAttr constantOf(Value v) {
  if (auto cst = v.getDefiningOp<arith::ConstantOp>())
    return dyn_cast<DenseElementsAttr>(cst.getValue());
  if (onnxir::NodeOp node = producer(v, "Constant"))
    return dyn_cast_or_null<DenseElementsAttr>(
        node.getNodeAttributes().get("value"));
  return {};
}

std::optional<int64_t> intAttrOf(onnxir::NodeOp node, StringRef name) {
  if (auto a = dyn_cast_or_null<IntegerAttr>(
          node.getNodeAttributes().get(name)))
    return a.getInt();
  return std::nullopt;
}

/// An Einsum's equation as (lhs, rhs, out) subscripts; none for other forms
/// (ellipses, one operand, an implicit output).
std::optional<std::array<std::string, 3>> einsumOf(Value v,
                                                   onnxir::NodeOp &node) {
  node = producer(v, "Einsum");
  if (!node || node.getInputs().size() != 2)
    return std::nullopt;
  auto eq = dyn_cast_or_null<StringAttr>(
      node.getNodeAttributes().get("equation"));
  if (!eq)
    return std::nullopt;
  std::string s;
  for (char c : eq.getValue())
    if (c != ' ')
      s += c;
  size_t comma = s.find(','), arrow = s.find("->");
  if (comma == std::string::npos || arrow == std::string::npos ||
      arrow < comma || s.find('.') != std::string::npos)
    return std::nullopt;
  return std::array<std::string, 3>{s.substr(0, comma),
                                    s.substr(comma + 1, arrow - comma - 1),
                                    s.substr(arrow + 2)};
}

/// Whether subscripts `got` follow `pattern` letter for letter under one
/// consistent renaming (`names` maps pattern letters to got letters).
bool matchSubscripts(StringRef pattern, StringRef got,
                     llvm::DenseMap<char, char> &names) {
  if (pattern.size() != got.size())
    return false;
  for (auto [p, g] : llvm::zip(pattern, got)) {
    auto [it, inserted] = names.try_emplace(p, g);
    if (!inserted && it->second != g)
      return false;
  }
  // Distinct pattern letters stay distinct.
  llvm::SmallDenseSet<char> seen;
  for (auto &kv : names)
    if (!seen.insert(kv.second).second)
      return false;
  return true;
}

bool matchEquation(const std::array<std::string, 3> &eq, StringRef lhs,
                   StringRef rhs, StringRef out) {
  llvm::DenseMap<char, char> names;
  return matchSubscripts(lhs, eq[0], names) &&
         matchSubscripts(rhs, eq[1], names) &&
         matchSubscripts(out, eq[2], names);
}

/// A failed match: the reason, for --raise=report.
struct Miss {
  std::string why;
};

/// The routing of a block: TopK over scores = MatMul(xs, Wsel).
struct Routing {
  Value selectorInput;
  DenseElementsAttr wsel; // [D, E] as the MatMul reads it
  int64_t k;
  std::string gate;
  Value ids, weights;
};

/// `weights` and `ids` from one TopK: w = gate(values).
FailureOr<Routing> matchRouting(Value weights, Value ids, Miss &miss) {
  Routing r;
  onnxir::NodeOp topk = producer(ids, "TopK");
  if (!topk || topk.getNumResults() != 2 || ids != topk.getResult(1)) {
    miss.why = "the expert ids are not the indices of a TopK";
    return failure();
  }
  Value values = topk.getResult(0);
  int64_t axis = intAttrOf(topk, "axis").value_or(-1);
  if ((axis != -1 && axis != 1) || intAttrOf(topk, "largest").value_or(1) != 1) {
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
  Value scores = topk.getInputs()[0];
  if (weights == values) {
    onnxir::NodeOp sm = producer(scores, "Softmax");
    if (!sm || intAttrOf(sm, "axis").value_or(-1) == 0) {
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
             intAttrOf(sm, "axis").value_or(-1) != 0) {
    r.gate = "topk_softmax";
  } else {
    miss.why = "the slot weights are not Sigmoid or Softmax of the TopK "
               "values, nor a TopK of a softmax";
    return failure();
  }
  onnxir::NodeOp mm = producer(scores, "MatMul");
  DenseElementsAttr wsel = mm ? constantOf(mm.getInputs()[1]) : nullptr;
  if (!wsel || wsel.getType().getRank() != 2) {
    miss.why = "the routing scores are not a MatMul with a constant [D, E] "
               "selector";
    return failure();
  }
  r.selectorInput = mm.getInputs()[0];
  r.wsel = wsel;
  r.ids = ids;
  r.weights = weights;
  return r;
}

/// act(h): the activation and h.
FailureOr<std::pair<std::string, Value>> matchActivation(Value a) {
  if (onnxir::NodeOp relu = producer(a, "Relu"))
    return std::make_pair(std::string("relu"), relu.getInputs()[0]);
  if (onnxir::NodeOp gelu = producer(a, "Gelu")) {
    auto approx = dyn_cast_or_null<StringAttr>(
        gelu.getNodeAttributes().get("approximate"));
    if (approx && approx.getValue() != "none")
      return failure();
    return std::make_pair(std::string("gelu"), gelu.getInputs()[0]);
  }
  if (onnxir::NodeOp mul = producer(a, "Mul")) {
    for (int i = 0; i < 2; ++i) {
      onnxir::NodeOp sg = producer(mul.getInputs()[1 - i], "Sigmoid");
      if (sg && sg.getInputs()[0] == mul.getInputs()[i])
        return std::make_pair(std::string("silu"), mul.getInputs()[i]);
    }
  }
  if (producer(a, "Einsum"))
    return std::make_pair(std::string("identity"), a);
  return failure();
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
  int64_t axis = intAttrOf(scatter, "axis").value_or(0);
  if ((reduction && reduction.getValue() != "none") ||
      (axis != -1 && axis != 1)) {
    miss.why = "the dense gate's ScatterElements reduces or scatters along "
               "another axis than the experts";
    return failure();
  }
  // zeros(shape(scores)): ConstantOfShape(Shape(s)) with value 0.
  onnxir::NodeOp zeros = producer(scatter.getInputs()[0], "ConstantOfShape");
  DenseElementsAttr zeroValue =
      zeros ? dyn_cast_or_null<DenseElementsAttr>(
                  zeros.getNodeAttributes().get("value"))
            : nullptr;
  bool isZero = zeros && (!zeroValue || (zeroValue.isSplat() &&
                                         isa<FloatType>(zeroValue.getElementType()) &&
                                         zeroValue.getSplatValue<APFloat>().isZero()));
  if (!isZero) {
    miss.why = "the dense gate does not start from zeros";
    return failure();
  }
  FailureOr<Routing> r =
      matchRouting(scatter.getInputs()[2], scatter.getInputs()[1], miss);
  if (failed(r))
    return failure();
  onnxir::NodeOp shape = producer(zeros.getInputs()[0], "Shape");
  onnxir::NodeOp topk = producer(r->ids, "TopK");
  Value scores = topk.getInputs()[0];
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

/// `a` [D, E] transposed to [E, D].
DenseElementsAttr transpose2d(DenseElementsAttr a) {
  auto t = a.getType();
  int64_t rows = t.getDimSize(0), cols = t.getDimSize(1);
  auto type = RankedTensorType::get({cols, rows}, t.getElementType());
  SmallVector<Attribute> in(a.getValues<Attribute>());
  SmallVector<Attribute> out(in.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      out[c * rows + r] = in[r * cols + c];
  return DenseElementsAttr::get(type, out);
}

/// Checks the weights agree in E, D and G, so that a mismatch is refused
/// here (left generic) rather than by moe.ffn's verifier.
LogicalResult checkShapes(const Block &blk, Miss &miss) {
  auto sel = blk.routing.wsel.getType(), w1 = blk.w1.getType(),
       w2 = blk.w2.getType();
  int64_t d = sel.getDimSize(0), e = sel.getDimSize(1);
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

struct RaiseOnnxMoePass : moe::impl::RaiseOnnxMoeBase<RaiseOnnxMoePass> {
  using RaiseOnnxMoeBase::RaiseOnnxMoeBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    IRRewriter rewriter(&getContext());
    SmallVector<onnxir::NodeOp> einsums, nonZeros;
    module.walk([&](onnxir::NodeOp node) {
      if (!node.getDomain().empty())
        return;
      if (node.getOpType() == "Einsum")
        einsums.push_back(node);
      else if (node.getOpType() == "NonZero")
        nonZeros.push_back(node);
    });
    int64_t moeVersion = 1;
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
    // Nodes left without uses (the raised blocks' interiors) go now, so
    // that the conversion never materialises them.
    bool erased = true;
    while (erased) {
      erased = false;
      SmallVector<Operation *> dead;
      module.walk([&](Operation *op) {
        if ((isa<onnxir::NodeOp>(op) || isa<arith::ConstantOp>(op)) &&
            op->use_empty() && op->getParentOp() &&
            !isa<ModuleOp>(op->getParentOp()))
          dead.push_back(op);
      });
      for (Operation *op : dead) {
        rewriter.eraseOp(op);
        erased = true;
      }
    }
    if (!report)
      return;
    // The per-expert loop of Hugging Face exports: OneHot expert mask ->
    // NonZero token list, one per expert. Not raised yet.
    llvm::SmallPtrSet<Operation *, 8> reported;
    for (onnxir::NodeOp nz : nonZeros) {
      if (!nz->getBlock())
        continue;
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
               "mask -> NonZero token list per expert), form (a) of Hugging "
               "Face exports, is not raised yet; it runs as exported";
    }
  }
};

} // namespace

//===- MoeDomain.cpp - handlers for the org.moe_mlir domain ----------------===//
//
// Each function of docs/onnx-moe-domain.md becomes its composite `moe` op.
// Attributes are checked against the documented schema here; shapes are
// checked by the created op's verifier, whose diagnostic is located at the
// ONNX node. A mismatch is an error, never a fallback to the function body.
//
//===----------------------------------------------------------------------===//

#include "HandlerUtils.h"
#include "moe/IR/MoeOps.h"

#include "moe/Utils/BuildUtils.h"
#include "moe/Utils/RuntimeErrors.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Verifier.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <tuple>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::onnx_conv;

namespace {

constexpr StringLiteral kDomain = "org.moe_mlir";

FailureOr<Activation> activation(onnxir::NodeOp node) {
  FailureOr<std::string> s =
      stringAttr(node, "activation", {"relu", "gelu", "silu", "identity"});
  if (failed(s))
    return failure();
  return *symbolizeActivation(*s);
}

/// Operands 0..n-1 as ranked tensors (the checks name them).
FailureOr<SmallVector<Value>> operands(onnxir::NodeOp node,
                                       ArrayRef<StringRef> names) {
  if (failed(checkOperandCount(node, names.size(), names.size())))
    return failure();
  SmallVector<Value> out;
  for (auto [i, name] : llvm::enumerate(names)) {
    FailureOr<Value> v = tensorOperand(node, i, name);
    if (failed(v))
      return failure();
    out.push_back(*v);
  }
  return out;
}

/// Verifies a created op (its diagnostics are located at the node); erases
/// it when it does not verify.
LogicalResult verified(Operation *op, RewriterBase &rewriter) {
  if (succeeded(verify(op)))
    return success();
  rewriter.eraseOp(op);
  return failure();
}

/// The created op's result, once it verifies.
Values finish(Operation *op, RewriterBase &rewriter) {
  if (failed(verified(op, rewriter)))
    return failure();
  return SmallVector<Value>{op->getResult(0)};
}

Values moeFeedForward(onnxir::NodeOp node, RewriterBase &b) {
  auto ins = operands(node, {"x", "selector_input", "w_sel", "w1", "w2"});
  FailureOr<int64_t> k = intAttr(node, "k");
  FailureOr<std::string> gate =
      stringAttr(node, "gate", {"sigmoid", "softmax", "topk_softmax"});
  FailureOr<Activation> act = activation(node);
  if (failed(ins) || failed(k) || failed(gate) || failed(act))
    return failure();
  auto &v = *ins;
  Value selector = v[1] == v[0] ? Value() : v[1];
  auto op = FfnOp::create(b, node.getLoc(), v[0].getType(), v[0], v[2], v[3],
                          v[4], selector, *symbolizeGateKind(*gate), *k, *act,
                          /*capacity_factor=*/FloatAttr());
  return finish(op, b);
}

/// The parts of an internal experts node past its weights: the biases of
/// the projections (operands `first` .. `first` + 2: b1 [E, I], b2 [E, D],
/// b3 [E, I], each optional) and the activation: relu, gelu, silu,
/// identity, relu2 (squared ReLU, Nemotron-H's) or swiglu. "swiglu" is
/// GPT-OSS's (and ONNX Runtime MoE's) clamped SwiGLU of the two up projections,
///   g = min(x w1[e] + b1, limit); u = clamp(x w3[e] + b3, -limit, limit)
///   h = g * sigmoid(alpha * g) * (u + beta)
/// with attributes alpha, beta and limit (limit may be +inf).
struct ExpertParts {
  Value b1, b2, b3;
  Activation act = Activation::Identity;
  bool swiglu = false;
  bool relu2 = false; // squared ReLU (Nemotron-H): max(x, 0)^2
  double alpha = 1.0, beta = 0.0,
         limit = std::numeric_limits<double>::infinity();
};

FailureOr<ExpertParts> expertParts(onnxir::NodeOp node, unsigned first,
                                   Value w3) {
  ExpertParts p;
  FailureOr<Value> b1 = tensorOperand(node, first, "b1", 2, true);
  FailureOr<Value> b2 = tensorOperand(node, first + 1, "b2", 2, true);
  FailureOr<Value> b3 = tensorOperand(node, first + 2, "b3", 2, true);
  FailureOr<std::string> act =
      stringAttr(node, "activation",
                 {"relu", "gelu", "silu", "identity", "relu2", "swiglu"});
  if (failed(b1) || failed(b2) || failed(b3) || failed(act))
    return failure();
  std::tie(p.b1, p.b2, p.b3) = std::make_tuple(*b1, *b2, *b3);
  if (p.b3 && !w3) {
    nodeError(node) << "b3 needs w3 (the gated experts' second up "
                       "projection)";
    return failure();
  }
  p.swiglu = *act == "swiglu";
  if (!p.swiglu) {
    for (StringRef name : {"alpha", "beta", "limit"})
      if (node.getNodeAttributes().get(name)) {
        nodeError(node) << "attribute '" << name
                        << "' is for activation swiglu only";
        return failure();
      }
    p.relu2 = *act == "relu2";
    p.act = p.relu2 ? Activation::Relu : *symbolizeActivation(*act);
    return p;
  }
  FailureOr<double> alpha = floatAttr(node, "alpha", 1.0);
  FailureOr<double> beta = floatAttr(node, "beta", 0.0);
  FailureOr<double> limit =
      floatAttr(node, "limit", std::numeric_limits<double>::infinity());
  if (failed(alpha) || failed(beta) || failed(limit))
    return failure();
  if (!w3) {
    nodeError(node) << "activation swiglu needs w3 (it gates one up "
                       "projection by the other)";
    return failure();
  }
  if (!std::isfinite(*alpha) || !std::isfinite(*beta) || std::isnan(*limit) ||
      *limit <= 0) {
    char text[128];
    std::snprintf(text, sizeof(text), "alpha %g, beta %g, limit %g", *alpha,
                  *beta, *limit);
    nodeError(node) << "swiglu needs a finite alpha and beta and a limit "
                       "above 0, got "
                    << Twine(text);
    return failure();
  }
  std::tie(p.alpha, p.beta, p.limit) = std::make_tuple(*alpha, *beta, *limit);
  return p;
}

/// The experts of a routed layer once its slots are dispatched (`n` rows
/// of `k` slots each):
///   h = act(x w1[e] + b1[e]) (* (x w3[e] + b3[e]) when `w3`), or swiglu
///   y = moe.grouped_matmul h, w2 weights(weights) bias(b2)
/// (each bias optional; the down projection's bias is added before the
/// slot weight scales the row).
Values expertLayers(onnxir::NodeOp node, RewriterBase &b, Value x,
                    DispatchOp dispatch, Value weights, Value w1, Value w2,
                    Value w3, const ExpertParts &parts, OpFoldResult n,
                    int64_t k) {
  Location loc = node.getLoc();
  Type elt = cast<RankedTensorType>(x.getType()).getElementType();
  auto w2Type = cast<RankedTensorType>(w2.getType());
  // x's D must be the experts' (a run-time check where it is dynamic).
  int64_t d = cast<RankedTensorType>(w1.getType()).getDimSize(1);
  int64_t xd = cast<RankedTensorType>(x.getType()).getDimSize(1);
  if (!ShapedType::isDynamic(d) && !ShapedType::isDynamic(xd) && d != xd) {
    nodeError(node) << "x has " << xd << " columns but the experts take " << d
                    << " (w1 " << w1.getType() << ")";
    return failure();
  }
  if (!ShapedType::isDynamic(d))
    x = build::requireSize(b, loc, x, 1, b.getIndexAttr(d),
                           kErrorShapeMismatch);
  auto upProjection = [&](Value w, Value bias) -> Value {
    auto op = GroupedMatmulOp::create(
        b, loc,
        RankedTensorType::get(
            {build::staticMul(n, k),
             cast<RankedTensorType>(w.getType()).getDimSize(2)},
            elt),
        x, w, dispatch.getOffsets(), dispatch.getPerm(),
        /*slot_weights=*/Value(), bias, ActivationAttr(),
        /*sorted_input=*/false, /*sorted_result=*/false);
    return succeeded(verified(op, b)) ? Value(op) : Value();
  };
  Value h = upProjection(w1, parts.b1);
  Value h3 = w3 ? upProjection(w3, parts.b3) : Value();
  if (!h || (w3 && !h3))
    return failure();
  if (h3 && h.getType() != h3.getType()) {
    nodeError(node) << "w1 and w3 differ in shape: " << w1.getType() << " and "
                    << w3.getType();
    return failure();
  }
  // act(h) (* h3), or swiglu(h, h3): one elementwise pass.
  SmallVector<Value> ins = {h};
  if (h3)
    ins.push_back(h3);
  AffineMap id = b.getMultiDimIdentityMap(2);
  h = linalg::GenericOp::create(
          b, loc, TypeRange{h.getType()}, ins,
          ValueRange{build::emptyTensor(b, loc,
                                        tensor::getMixedSizes(b, loc, h), elt)},
          SmallVector<AffineMap>(ins.size() + 1, id),
          SmallVector<utils::IteratorType>(2, utils::IteratorType::parallel),
          [&](OpBuilder &nb, Location nl, ValueRange a) {
            Value v;
            if (parts.swiglu) {
              v = build::swigluScalar(nb, nl, a[0], a[1], parts.alpha,
                                      parts.beta, parts.limit);
            } else {
              v = build::activateScalar(nb, nl, a[0], parts.act);
              if (parts.relu2)
                v = arith::MulFOp::create(nb, nl, v, v);
              if (a.size() > 2)
                v = arith::MulFOp::create(nb, nl, v, a[1]);
            }
            linalg::YieldOp::create(nb, nl, ValueRange{v});
          })
          .getResult(0);
  auto down = GroupedMatmulOp::create(
      b, loc,
      RankedTensorType::get({cast<RankedTensorType>(x.getType()).getDimSize(0),
                             w2Type.getDimSize(2)},
                            elt),
      h, w2, dispatch.getOffsets(), dispatch.getPerm(), weights, parts.b2,
      ActivationAttr(), /*sorted_input=*/false, /*sorted_result=*/false);
  return finish(down, b);
}

/// RoutedExperts: internal, made by moe-raise-onnx from the per-expert loop
/// of Hugging Face exports (docs/importer.md, "Raising exported MoE
/// blocks"). x [N, D], logits [N, E], w1 [E, D, I], w2 [E, I, D] and, for
/// gated experts, w3 [E, D, I]; optional biases b1 [E, I], b2 [E, D], b3
/// [E, I] (ExpertParts); attributes k, gate (softmax | topk_softmax) and
/// activation (with alpha, beta, limit for swiglu). As primitives:
///   w, ids = moe.route logits; off, perm = moe.dispatch ids
///   h = act(x w1[e] + b1[e]) (* (x w3[e] + b3[e]) when gated)
///   y = moe.grouped_matmul h, w2 weights(w) bias(b2)
Values routedExperts(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 4, 8)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "x", 2);
  FailureOr<Value> logits = tensorOperand(node, 1, "logits", 2);
  FailureOr<Value> w1 = tensorOperand(node, 2, "w1", 3);
  FailureOr<Value> w2 = tensorOperand(node, 3, "w2", 3);
  FailureOr<Value> w3 = tensorOperand(node, 4, "w3", 3, /*optional=*/true);
  FailureOr<int64_t> k = intAttr(node, "k");
  FailureOr<std::string> gate =
      stringAttr(node, "gate", {"softmax", "topk_softmax"});
  if (failed(x) || failed(logits) || failed(w1) || failed(w2) || failed(w3) ||
      failed(k) || failed(gate))
    return failure();
  FailureOr<ExpertParts> parts = expertParts(node, 5, *w3);
  if (failed(parts))
    return failure();
  Location loc = node.getLoc();
  auto w1Type = cast<RankedTensorType>(w1->getType());
  int64_t experts = w1Type.getDimSize(0);
  if (ShapedType::isDynamic(experts)) {
    nodeError(node) << "the expert count must be static";
    return failure();
  }
  int64_t logitCols = cast<RankedTensorType>(logits->getType()).getDimSize(1);
  if (logitCols != experts) {
    nodeError(node) << "logits must have one column per expert (" << experts
                    << "), got " << logits->getType();
    return failure();
  }
  Type elt = cast<RankedTensorType>(x->getType()).getElementType();
  Type idType = b.getI32Type();
  OpFoldResult n = tensor::getMixedSize(b, loc, *x, 0);
  auto route = RouteOp::create(
      b, loc, build::matrixType(n, *k, elt), build::matrixType(n, *k, idType),
      *logits, *symbolizeGateKind(*gate), *k, 1);
  if (failed(verified(route, b)))
    return failure();
  auto dispatch = DispatchOp::create(
      b, loc, RankedTensorType::get({experts + 1}, idType),
      RankedTensorType::get({build::staticMul(n, *k)}, idType),
      route.getIds(), experts);
  return expertLayers(node, b, *x, dispatch, route.getWeights(), *w1, *w2, *w3,
                      *parts, n, *k);
}

/// SelectedExperts: internal, made by moe-raise-onnx from transformers 5's
/// per-slot expert products where the routing is the graph's own (biased,
/// grouped, or any other; docs/importer.md, form (g)). x [N, D], ids
/// [N, k] (int64 or int32), weights [N, k], w1 [E, D, I], w2 [E, I, D]
/// and, for gated experts, w3 [E, D, I]; biases and activation as
/// RoutedExperts':
///   off, perm = moe.dispatch ids
///   y[n] = sum_j weights[n, j] * MLP_{ids[n, j]}(x[n])
/// Negative ids count from the end (-1 is expert E - 1), as ONNX Gather
/// reads them; ids outside [-E, E) are a run-time error of moe.dispatch
/// (the export's Gather fails on them too). Rows of x, ids and weights
/// that differ are an error (at run time where dynamic).
Values selectedExperts(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 5, 9)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "x", 2);
  FailureOr<Value> ids = tensorOperand(node, 1, "ids", 2);
  FailureOr<Value> weights = tensorOperand(node, 2, "weights", 2);
  FailureOr<Value> w1 = tensorOperand(node, 3, "w1", 3);
  FailureOr<Value> w2 = tensorOperand(node, 4, "w2", 3);
  FailureOr<Value> w3 = tensorOperand(node, 5, "w3", 3, /*optional=*/true);
  if (failed(x) || failed(ids) || failed(weights) || failed(w1) || failed(w2) ||
      failed(w3))
    return failure();
  FailureOr<ExpertParts> parts = expertParts(node, 6, *w3);
  if (failed(parts))
    return failure();
  RankedTensorType xType = typeOf(*x), idType = typeOf(*ids),
                   wType = typeOf(*weights);
  Type elt = xType.getElementType();
  if (!isa<FloatType>(elt) || wType.getElementType() != elt) {
    nodeError(node) << "x and weights must share one float element type, got "
                    << xType << " and " << wType;
    return failure();
  }
  if (!idType.getElementType().isSignlessInteger(64) &&
      !idType.getElementType().isSignlessInteger(32)) {
    nodeError(node) << "ids must be an int64 or int32 tensor, got " << idType;
    return failure();
  }
  int64_t k = idType.getDimSize(1);
  if (ShapedType::isDynamic(k)) {
    nodeError(node) << "the slots per row (dim 1 of ids) must be static, got "
                    << idType;
    return failure();
  }
  int64_t experts = typeOf(*w1).getDimSize(0);
  if (ShapedType::isDynamic(experts)) {
    nodeError(node) << "the expert count must be static";
    return failure();
  }
  // Sizes known to differ are refused here; dynamic ones are checked at
  // run time.
  auto differ = [](int64_t a, int64_t b) {
    return !ShapedType::isDynamic(a) && !ShapedType::isDynamic(b) && a != b;
  };
  if (differ(xType.getDimSize(0), idType.getDimSize(0)) ||
      differ(xType.getDimSize(0), wType.getDimSize(0)) ||
      differ(wType.getDimSize(1), k)) {
    nodeError(node) << "x " << xType << ", ids " << idType << " and weights "
                    << wType << " must have one row per token and ids' k "
                    << "columns of ids and weights";
    return failure();
  }
  Location loc = node.getLoc();
  build::declareErrorHook(b, node);
  OpFoldResult n = tensor::getMixedSize(b, loc, *x, 0);
  Value sel = build::requireSize(b, loc, *ids, 0, n, kErrorShapeMismatch);
  Value slotWeights =
      build::requireSize(b, loc, *weights, 0, n, kErrorShapeMismatch);
  slotWeights = build::requireSize(b, loc, slotWeights, 1, b.getIndexAttr(k),
                                   kErrorShapeMismatch);
  Type idElt = typeOf(sel).getElementType();
  // Ids count from the end where negative, as ONNX Gather reads them (-1
  // is expert E - 1); below -E they stay negative, and moe.dispatch
  // refuses them.
  {
    Value count =
        arith::ConstantOp::create(b, loc, b.getIntegerAttr(idElt, experts));
    Value zero = arith::ConstantOp::create(b, loc, b.getIntegerAttr(idElt, 0));
    AffineMap id = b.getMultiDimIdentityMap(2);
    sel =
        linalg::GenericOp::create(
            b, loc, TypeRange{sel.getType()}, ValueRange{sel},
            ValueRange{build::emptyTensor(
                b, loc, tensor::getMixedSizes(b, loc, sel), idElt)},
            SmallVector<AffineMap>(2, id),
            SmallVector<utils::IteratorType>(2, utils::IteratorType::parallel),
            [&](OpBuilder &nb, Location nl, ValueRange a) {
              Value negative = arith::CmpIOp::create(
                  nb, nl, arith::CmpIPredicate::slt, a[0], zero);
              Value wrapped = arith::AddIOp::create(nb, nl, a[0], count);
              linalg::YieldOp::create(nb, nl,
                                      ValueRange{arith::SelectOp::create(
                                          nb, nl, negative, wrapped, a[0])});
            })
            .getResult(0);
  }
  auto dispatch = DispatchOp::create(
      b, loc, RankedTensorType::get({experts + 1}, idElt),
      RankedTensorType::get({build::staticMul(n, k)}, idElt), sel, experts);
  if (failed(verified(dispatch, b)))
    return failure();
  return expertLayers(node, b, *x, dispatch, slotWeights, *w1, *w2, *w3, *parts,
                      n, k);
}

/// ai.onnx GroupedMatMul-29, ONNX's MoE op: input [M, K], weights [G, K, N],
/// group_indices int [M, S], optional bias [G, N] -> [M, S, N] with
///   out[m, s] = input[m] @ weights[ids[m, s]] (+ bias[ids[m, s]]).
/// ONNX specifies it by a Gather/Expand/MatMul body that materialises the
/// selected weights [M*S, K, N]; here it is the routed form instead:
///   off, perm = moe.dispatch ids; y = moe.grouped_matmul input, weights
/// so each selected expert's weights are read once per call. Ids outside
/// [0, G) (negative ones included; ONNX leaves them undefined) are a
/// run-time error of moe.dispatch.
Values groupedMatMul(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 3, 4)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "input", 2);
  FailureOr<Value> w = tensorOperand(node, 1, "weights", 3);
  FailureOr<Value> ids = tensorOperand(node, 2, "group_indices", 2);
  FailureOr<Value> bias =
      tensorOperand(node, 3, "bias", 2, /*optional=*/true);
  if (failed(x) || failed(w) || failed(ids) || failed(bias))
    return failure();
  RankedTensorType xType = typeOf(*x), wType = typeOf(*w),
                   idType = typeOf(*ids);
  Type elt = xType.getElementType();
  if (!isa<FloatType>(elt) || wType.getElementType() != elt ||
      (*bias && typeOf(*bias).getElementType() != elt)) {
    InFlightDiagnostic d = nodeError(node);
    d << "input, weights and bias must share one float element type, got "
      << xType << " and " << wType;
    if (*bias)
      d << " and " << typeOf(*bias);
    return failure();
  }
  if (!idType.getElementType().isSignlessInteger(64) &&
      !idType.getElementType().isSignlessInteger(32)) {
    nodeError(node) << "group_indices must be an integer tensor (int64), got " << idType;
    return failure();
  }
  int64_t groups = wType.getDimSize(0), n = wType.getDimSize(2);
  if (ShapedType::isDynamic(groups) || ShapedType::isDynamic(n) ||
      ShapedType::isDynamic(wType.getDimSize(1))) {
    nodeError(node) << "weights must have a static shape, got " << wType;
    return failure();
  }
  auto mismatch = [](int64_t a, int64_t b) {
    return !ShapedType::isDynamic(a) && !ShapedType::isDynamic(b) && a != b;
  };
  if (mismatch(xType.getDimSize(1), wType.getDimSize(1))) {
    nodeError(node) << "input has " << xType.getDimSize(1)
                    << " columns but weights have K = " << wType.getDimSize(1);
    return failure();
  }
  if (mismatch(xType.getDimSize(0), idType.getDimSize(0))) {
    nodeError(node) << "input has " << xType.getDimSize(0)
                    << " rows but group_indices has " << idType.getDimSize(0);
    return failure();
  }
  int64_t slots = idType.getDimSize(1);
  if (ShapedType::isDynamic(slots)) {
    nodeError(node) << "the number of selections per row (dim 1 of "
                       "group_indices) must be static, got "
                    << idType;
    return failure();
  }
  if (*bias && (typeOf(*bias).getDimSize(0) != groups ||
                typeOf(*bias).getDimSize(1) != n)) {
    nodeError(node) << "bias must be [" << groups << ", " << n << "], got "
                    << typeOf(*bias);
    return failure();
  }
  Location loc = node.getLoc();
  build::declareErrorHook(b, node);
  // Dynamic sizes must agree at run time: K with the weights, and the rows
  // of group_indices with those of the input.
  Value input =
      build::requireSize(b, loc, *x, 1, b.getIndexAttr(wType.getDimSize(1)),
                         kErrorShapeMismatch);
  OpFoldResult m = tensor::getMixedSize(b, loc, input, 0);
  Value sel = build::requireSize(b, loc, *ids, 0, m, kErrorShapeMismatch);
  Type idElt = typeOf(sel).getElementType();
  int64_t total = build::staticMul(m, slots);
  auto dispatch = DispatchOp::create(
      b, loc, RankedTensorType::get({groups + 1}, idElt),
      RankedTensorType::get({total}, idElt), sel, groups);
  if (failed(verified(dispatch, b)))
    return failure();
  auto gmm = GroupedMatmulOp::create(
      b, loc, RankedTensorType::get({total, n}, elt), input, *w,
      dispatch.getOffsets(), dispatch.getPerm(), Value());
  if (failed(verified(gmm, b)))
    return failure();
  Value y = gmm;
  if (*bias) {
    // y[j] += bias[ids[j]]: the ids were checked by moe.dispatch; an
    // out-of-range one is read as 0 here and the run reports the error.
    Value flatIds = build::collapse(b, loc, sel, {{0, 1}});
    Value groupCount = arith::ConstantIndexOp::create(b, loc, groups);
    MLIRContext *ctx = b.getContext();
    AffineMap rowMap = AffineMap::get(2, 0, getAffineDimExpr(0, ctx));
    AffineMap id = b.getMultiDimIdentityMap(2);
    Value biasT = *bias;
    y = linalg::GenericOp::create(
            b, loc, TypeRange{y.getType()}, ValueRange{y, flatIds},
            ValueRange{build::emptyTensor(
                b, loc, tensor::getMixedSizes(b, loc, y), elt)},
            SmallVector<AffineMap>{id, rowMap, id},
            SmallVector<utils::IteratorType>(2,
                                             utils::IteratorType::parallel),
            [&](OpBuilder &nb, Location nl, ValueRange a) {
              Value g = build::checkedIndex(
                  nb, nl,
                  arith::IndexCastOp::create(nb, nl, nb.getIndexType(), a[1]),
                  groupCount, kErrorIndexOutOfRange);
              Value col = linalg::IndexOp::create(nb, nl, 1);
              Value bv = tensor::ExtractOp::create(nb, nl, biasT,
                                                   ValueRange{g, col});
              linalg::YieldOp::create(
                  nb, nl, ValueRange{arith::AddFOp::create(nb, nl, a[0], bv)});
            })
            .getResult(0);
  }
  return SmallVector<Value>{build::expand(
      b, loc, y, {{0, 1}, {2}},
      {m, b.getIndexAttr(slots), b.getIndexAttr(n)})};
}

Values switchFeedForward(onnxir::NodeOp node, RewriterBase &b) {
  auto ins = operands(node, {"x", "w_sel", "w1", "w2"});
  FailureOr<double> cf = floatAttr(node, "capacity_factor");
  FailureOr<Activation> act = activation(node);
  if (failed(ins) || failed(cf) || failed(act))
    return failure();
  auto &v = *ins;
  auto op = FfnOp::create(b, node.getLoc(), v[0].getType(), v[0], v[1], v[2],
                          v[3], Value(), GateKind::Softmax, 1, *act,
                          b.getF64FloatAttr(*cf));
  return finish(op, b);
}

Values switchHead(onnxir::NodeOp node, RewriterBase &b, bool gated) {
  SmallVector<StringRef> names = {"q_src", "k_src", "v_src", "wq",
                                  "wk",    "wv",    "wo",    "sel_o"};
  if (!gated)
    names.push_back("sel_v");
  auto ins = operands(node, names);
  FailureOr<int64_t> heads = intAttr(node, "num_heads");
  FailureOr<int64_t> k = intAttr(node, "k");
  FailureOr<int64_t> causal = intAttr(node, "causal");
  FailureOr<double> fraction = floatAttr(node, "rotate_fraction");
  FailureOr<double> base = floatAttr(node, "rope_base");
  if (failed(ins) || failed(heads) || failed(k) || failed(causal) ||
      failed(fraction) || failed(base))
    return failure();
  if (*causal != 0 && *causal != 1) {
    nodeError(node) << "attribute 'causal' must be 0 or 1, got " << *causal;
    return failure();
  }
  auto &v = *ins;
  auto op = SwitchHeadOp::create(
      b, node.getLoc(), v[0].getType(), v[0], v[1], v[2], v[3], v[4], v[5],
      v[6], v[7], gated ? Value() : v[8], *heads, *k, *causal == 1,
      APFloat(*fraction), APFloat(*base));
  return finish(op, b);
}

Values switchHeadAttention(onnxir::NodeOp node, RewriterBase &b) {
  return switchHead(node, b, /*gated=*/false);
}

Values switchHeadGatedAttention(onnxir::NodeOp node, RewriterBase &b) {
  return switchHead(node, b, /*gated=*/true);
}

Values mixtureOfTokens(onnxir::NodeOp node, RewriterBase &b) {
  auto ins = operands(node, {"x", "w_ctrl", "w1", "w2"});
  FailureOr<int64_t> group = intAttr(node, "group_size");
  FailureOr<double> temperature = floatAttr(node, "temperature");
  FailureOr<std::string> mode =
      stringAttr(node, "mode", {"continuous", "discrete"});
  FailureOr<Activation> act = activation(node);
  if (failed(ins) || failed(group) || failed(temperature) || failed(mode) ||
      failed(act))
    return failure();
  auto &v = *ins;
  auto op = MotOp::create(b, node.getLoc(), v[0].getType(), v[0], v[1], v[2],
                          v[3], *symbolizeMixMode(*mode), *act, *group,
                          APFloat(*temperature));
  return finish(op, b);
}

Values treeGatedLayer(onnxir::NodeOp node, RewriterBase &b) {
  auto ins = operands(node, {"h", "w_gate", "w"});
  FailureOr<std::string> mode = stringAttr(node, "mode", {"path", "flat"});
  FailureOr<Activation> act = activation(node);
  if (failed(ins) || failed(mode) || failed(act))
    return failure();
  auto &v = *ins;
  auto hType = cast<RankedTensorType>(v[0].getType());
  auto wType = cast<RankedTensorType>(v[2].getType());
  if (hType.getRank() != 2 || wType.getRank() != 3) {
    nodeError(node) << "expected h of rank 2 and w of rank 3, got " << hType
                    << " and " << wType;
    return failure();
  }
  auto resultType = RankedTensorType::get(
      {hType.getDimSize(0), wType.getDimSize(2)}, hType.getElementType());
  auto op = TreeFfnOp::create(b, node.getLoc(), resultType, v[0], v[1], v[2],
                              *symbolizeTreeMode(*mode), *act);
  return finish(op, b);
}

/// org.moe_mlir.internal MaskedAttention (made by moe-raise-onnx from an
/// exported attention core, Softmax(MatMul(q, kT) [+ mask]) @ v): q [B, H,
/// T, dk], kT [B, H, dk, S] (the keys transposed, as the export multiplies
/// them), v [B, H, S, dv], mask [B or 1, H or 1, T or 1, S or 1]
/// (optional); the attribute `scale` (f32, default 1) multiplies the
/// scores, as the export's Mul did (or 1/c for its division by c):
/// moe.attention with that scale, not causal, the keys transposed back
/// (the lowering's own transpose then cancels). `zero_nan_probs` (0 or 1,
/// default 0): the export guarded its softmax with Where(IsNaN(p), 0, p).
/// `sinks` [H] (optional, input 4): gpt-oss's sink logits, one per head.
Values maskedAttention(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 3, 5)))
    return failure();
  FailureOr<Value> q = tensorOperand(node, 0, "query", 4);
  FailureOr<Value> kT = tensorOperand(node, 1, "key_transposed", 4);
  FailureOr<Value> v = tensorOperand(node, 2, "value", 4);
  FailureOr<Value> mask = tensorOperand(node, 3, "mask", 4, /*optional=*/true);
  FailureOr<Value> sinks =
      tensorOperand(node, 4, "sinks", 1, /*optional=*/true);
  FailureOr<double> scale = floatAttr(node, "scale", 1.0);
  FailureOr<int64_t> zeroNan = intAttr(node, "zero_nan_probs", 0);
  if (failed(q) || failed(kT) || failed(v) || failed(mask) || failed(sinks) ||
      failed(scale) || failed(zeroNan))
    return failure();
  if (*zeroNan != 0 && *zeroNan != 1) {
    nodeError(node) << "zero_nan_probs must be 0 or 1, got " << *zeroNan;
    return failure();
  }
  float f32Scale = static_cast<float>(*scale);
  if (!std::isfinite(f32Scale) || f32Scale == 0.0f) {
    nodeError(node) << "scale must be finite and non-zero, got " << *scale;
    return failure();
  }
  Location loc = node.getLoc();
  Value k = build::transpose(b, loc, *kT, {0, 1, 3, 2});
  auto sz = [&](Value t, int64_t d) {
    return tensor::getMixedSize(b, loc, t, d);
  };
  Type elt = cast<RankedTensorType>((*q).getType()).getElementType();
  auto op = AttentionOp::create(
      b, loc,
      build::tensorTypeOf({sz(*q, 0), sz(*q, 1), sz(*q, 2), sz(*v, 3)}, elt),
      *q, k, *v, Value(), Value(), *mask, *sinks, /*causal=*/false,
      b.getF64FloatAttr(f32Scale), /*zero_nan_probs=*/*zeroNan == 1);
  return finish(op, b);
}

} // namespace

void mlir::moe::populateMoeDomainHandlers(OnnxHandlerRegistry &r) {
  r.add(kDomain, "MoEFeedForward", 1, moeFeedForward);
  r.add(kDomain, "SwitchFeedForward", 1, switchFeedForward);
  r.add(kDomain, "SwitchHeadAttention", 1, switchHeadAttention);
  r.add(kDomain, "SwitchHeadGatedAttention", 1, switchHeadGatedAttention);
  r.add(kDomain, "MixtureOfTokens", 1, mixtureOfTokens);
  r.add(kDomain, "TreeGatedLayer", 1, treeGatedLayer);
  // ONNX's own MoE op lowers to the same routed ops as the domain above.
  r.add("", "GroupedMatMul", 29, groupedMatMul);
  // Made only by moe-raise-onnx; not part of the documented domain.
  r.add("org.moe_mlir.internal", "RoutedExperts", 1, routedExperts);
  r.add("org.moe_mlir.internal", "SelectedExperts", 1, selectedExperts);
  r.add("org.moe_mlir.internal", "MaskedAttention", 1, maskedAttention);
}

//===- MicrosoftDomain.cpp - handler for com.microsoft.MoE -----------------===//
//
// ONNX Runtime's MoE (semantics in docs/onnx-moe-domain.md, checked against
// onnxruntime 1.32's CPU kernel) as moe primitives:
//
//   w, ids   = moe.route logits gate<softmax | topk_softmax>   (normalize 0|1:
//              softmax-then-top-k renormalised equals softmax over the top-k)
//   off,perm = moe.dispatch ids
//   h        = moe.grouped_matmul x, fc1ᵀ bias(b1) act<relu|silu|identity>
//              (ORT's gelu and swiglu: elementwise ops after it)
//   y        = moe.grouped_matmul h, fc2ᵀ weights(w) bias(b2)
//
// Activations follow ORT: gelu is the tanh approximation; swiglu is the
// interleaved form (gate at even, linear at odd columns), with alpha, beta
// and limit. fc3 and the sparse mixer are refused, as ORT's CPU kernel does.
//
//===----------------------------------------------------------------------===//

#include "HandlerUtils.h"
#include "moe/IR/MoeOps.h"
#include "moe/Utils/BuildUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Verifier.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::build;
using namespace mlir::moe::onnx_conv;

namespace {

/// Terminates a linalg body with one value.
void yield(OpBuilder &b, Location loc, Value v) {
  linalg::YieldOp::create(b, loc, ValueRange{v});
}

RankedTensorType typeOf(Value v) { return cast<RankedTensorType>(v.getType()); }

Value fconst(OpBuilder &b, Location loc, Type t, double v) {
  return arith::ConstantOp::create(b, loc, b.getFloatAttr(t, v));
}

struct SwiGlu {
  double alpha, beta, limit;
};

/// ORT's activations on slot rows h [M, F] -> [M, F] (or [M, F/2] swiglu).
Value activate(OpBuilder &b, Location loc, Value h, StringRef kind,
               SwiGlu swiglu) {
  RankedTensorType t = typeOf(h);
  Type elt = t.getElementType();
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, loc, h);
  if (kind == "swiglu") {
    sizes[1] = divSizes(b, loc, sizes[1], b.getIndexAttr(2));
    Value init = emptyTensor(b, loc, sizes, elt);
    return linalg::GenericOp::create(
               b, loc, TypeRange{init.getType()}, ValueRange{},
               ValueRange{init}, SmallVector<AffineMap>{b.getMultiDimIdentityMap(2)},
               SmallVector<utils::IteratorType>(2,
                                                utils::IteratorType::parallel),
               [&](OpBuilder &nb, Location nl, ValueRange) {
                 Value j = linalg::IndexOp::create(nb, nl, 0);
                 Value i = linalg::IndexOp::create(nb, nl, 1);
                 Value two = arith::ConstantIndexOp::create(nb, nl, 2);
                 Value one = arith::ConstantIndexOp::create(nb, nl, 1);
                 Value even = arith::MulIOp::create(nb, nl, i, two);
                 Value odd = arith::AddIOp::create(nb, nl, even, one);
                 Value gate = tensor::ExtractOp::create(nb, nl, h,
                                                        ValueRange{j, even});
                 Value lin = tensor::ExtractOp::create(nb, nl, h,
                                                       ValueRange{j, odd});
                 Value out =
                     build::swigluScalar(nb, nl, gate, lin, swiglu.alpha,
                                         swiglu.beta, swiglu.limit);
                 yield(nb, nl, out);
               })
        .getResult(0);
  }
  if (kind == "identity")
    return h;
  Value init = emptyTensor(b, loc, sizes, elt);
  AffineMap id = b.getMultiDimIdentityMap(2);
  return linalg::GenericOp::create(
             b, loc, TypeRange{init.getType()}, ValueRange{h},
             ValueRange{init}, SmallVector<AffineMap>{id, id},
             SmallVector<utils::IteratorType>(2, utils::IteratorType::parallel),
             [&](OpBuilder &nb, Location nl, ValueRange a) {
               Value x = a[0], y;
               if (kind == "relu") {
                 y = arith::MaximumFOp::create(nb, nl, x,
                                               fconst(nb, nl, elt, 0.0));
               } else if (kind == "silu") {
                 Value e = math::ExpOp::create(
                     nb, nl, arith::NegFOp::create(nb, nl, x));
                 y = arith::DivFOp::create(
                     nb, nl, x,
                     arith::AddFOp::create(nb, nl, fconst(nb, nl, elt, 1.0),
                                           e));
               } else { // gelu, tanh approximation
                 Value x3 = arith::MulFOp::create(
                     nb, nl, x, arith::MulFOp::create(nb, nl, x, x));
                 Value inner = arith::MulFOp::create(
                     nb, nl, fconst(nb, nl, elt, std::sqrt(2.0 / M_PI)),
                     arith::AddFOp::create(
                         nb, nl, x,
                         arith::MulFOp::create(nb, nl,
                                               fconst(nb, nl, elt, 0.044715),
                                               x3)));
                 Value t = math::TanhOp::create(nb, nl, inner);
                 y = arith::MulFOp::create(
                     nb, nl,
                     arith::MulFOp::create(nb, nl, x, fconst(nb, nl, elt, 0.5)),
                     arith::AddFOp::create(nb, nl, t, fconst(nb, nl, elt, 1.0)));
               }
               yield(nb, nl, y);
             })
      .getResult(0);
}

Values microsoftMoE(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 5, 8)))
    return failure();
  FailureOr<Value> input = tensorOperand(node, 0, "input");
  FailureOr<Value> logits = tensorOperand(node, 1, "router_probs", 2);
  FailureOr<Value> fc1 = tensorOperand(node, 2, "fc1_experts_weights", 3);
  FailureOr<Value> b1 = tensorOperand(node, 3, "fc1_experts_bias", 2, true);
  FailureOr<Value> fc2 = tensorOperand(node, 4, "fc2_experts_weights", 3);
  FailureOr<Value> b2 = tensorOperand(node, 5, "fc2_experts_bias", 2, true);
  FailureOr<Value> fc3 = tensorOperand(node, 6, "fc3_experts_weights", 3, true);
  FailureOr<int64_t> k = intAttr(node, "k", 1);
  FailureOr<std::string> act = stringAttr(
      node, "activation_type", {"relu", "gelu", "silu", "identity", "swiglu"},
      StringRef("relu"));
  FailureOr<int64_t> normalize = intAttr(node, "normalize_routing_weights", 0);
  FailureOr<int64_t> sparseMixer = intAttr(node, "use_sparse_mixer", 0);
  if (failed(input) || failed(logits) || failed(fc1) || failed(b1) ||
      failed(fc2) || failed(b2) || failed(fc3) || failed(k) || failed(act) ||
      failed(normalize) || failed(sparseMixer))
    return failure();
  if (*fc3 || (node.getInputs().size() > 7 &&
               !isa<NoneType>(node.getInputs()[7].getType()))) {
    nodeError(node) << "fc3_experts_weights/bias are not supported (ONNX "
                       "Runtime's CPU kernel rejects them too)";
    return failure();
  }
  if (*sparseMixer) {
    nodeError(node) << "use_sparse_mixer = 1 is not supported";
    return failure();
  }
  SwiGlu swiglu{1.0, 0.0, std::numeric_limits<double>::infinity()};
  if (*act == "swiglu") {
    FailureOr<int64_t> fusion = intAttr(node, "swiglu_fusion", 0);
    FailureOr<double> alpha = floatAttr(node, "activation_alpha");
    FailureOr<double> beta = floatAttr(node, "activation_beta");
    FailureOr<double> limit = floatAttr(node, "swiglu_limit");
    if (failed(fusion) || failed(alpha) || failed(beta) || failed(limit))
      return failure();
    if (*fusion != 1) {
      nodeError(node) << "swiglu needs swiglu_fusion = 1 (interleaved), got "
                      << *fusion;
      return failure();
    }
    swiglu = {*alpha, *beta, *limit};
  }

  Location loc = node.getLoc();
  Value x = *input;
  RankedTensorType xType = typeOf(x);
  if (xType.getRank() == 3)
    x = collapse(b, loc, x, {{0, 1}, {2}});
  else if (xType.getRank() != 2) {
    nodeError(node) << "input must have rank 2 or 3, got " << xType;
    return failure();
  }
  RankedTensorType w1Type = typeOf(*fc1), w2Type = typeOf(*fc2);
  int64_t experts = typeOf(*logits).getDimSize(1);
  if (ShapedType::isDynamic(experts))
    experts = w1Type.getDimSize(0);
  if (ShapedType::isDynamic(experts)) {
    nodeError(node) << "the expert count must be static";
    return failure();
  }
  Type elt = xType.getElementType();
  Type idType = b.getI32Type();
  OpFoldResult n = tensor::getMixedSize(b, loc, x, 0);

  auto route = RouteOp::create(
      b, loc, matrixType(n, *k, elt), matrixType(n, *k, idType), *logits,
      *normalize ? GateKind::TopkSoftmax : GateKind::Softmax, *k, 1);
  if (failed(verify(route))) {
    b.eraseOp(route);
    return failure();
  }
  auto dispatch = DispatchOp::create(
      b, loc, RankedTensorType::get({experts + 1}, idType),
      RankedTensorType::get({staticMul(n, *k)}, idType), route.getIds(),
      experts);
  Value w1t = transpose(b, loc, *fc1, {0, 2, 1});          // [E, H, F1]
  Value w2t = transpose(b, loc, *fc2, {0, 2, 1});          // [E, I, H]
  // The bias and an activation of moe.grouped_matmul's own (relu, silu,
  // identity) are the up projection's epilogue; ORT's gelu (the tanh
  // approximation) and swiglu stay elementwise ops after it.
  std::optional<Activation> epilogueAct =
      llvm::StringSwitch<std::optional<Activation>>(*act)
          .Case("relu", Activation::Relu)
          .Case("silu", Activation::Silu)
          .Case("identity", Activation::Identity)
          .Default(std::nullopt);
  auto up = GroupedMatmulOp::create(
      b, loc,
      RankedTensorType::get({staticMul(n, *k), w1Type.getDimSize(1)}, elt), x,
      w1t, dispatch.getOffsets(), dispatch.getPerm(), /*slot_weights=*/Value(),
      /*bias=*/*b1,
      epilogueAct ? ActivationAttr::get(b.getContext(), *epilogueAct)
                  : ActivationAttr(),
      /*sorted_input=*/false, /*sorted_result=*/false);
  if (failed(verify(up))) {
    b.eraseOp(up);
    return failure();
  }
  Value h = up;
  if (!epilogueAct)
    h = activate(b, loc, h, *act, swiglu);
  // y[n] = Σ_k w[n, k] * (h @ w2[e] + b2[e]): the bias in the epilogue.
  auto down = GroupedMatmulOp::create(
      b, loc, RankedTensorType::get({typeOf(x).getDimSize(0),
                                     w2Type.getDimSize(1)}, elt),
      h, w2t, dispatch.getOffsets(), dispatch.getPerm(), route.getWeights(),
      /*bias=*/*b2, ActivationAttr(),
      /*sorted_input=*/false, /*sorted_result=*/false);
  if (failed(verify(down))) {
    b.eraseOp(down);
    return failure();
  }
  Value y = down;
  if (xType.getRank() == 3)
    y = expand(b, loc, y, {{0, 1}, {2}},
               tensor::getMixedSizes(b, loc, *input));
  return SmallVector<Value>{y};
}

} // namespace

void mlir::moe::populateMicrosoftDomainHandlers(OnnxHandlerRegistry &r) {
  r.add("com.microsoft", "MoE", 1, microsoftMoE);
}

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

#include "mlir/IR/Verifier.h"

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

/// Verifies the created op (its diagnostics are located at the node) and
/// returns its result, or erases it.
Values finish(Operation *op, RewriterBase &rewriter) {
  if (failed(verify(op))) {
    rewriter.eraseOp(op);
    return failure();
  }
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

} // namespace

void mlir::moe::populateMoeDomainHandlers(OnnxHandlerRegistry &r) {
  r.add(kDomain, "MoEFeedForward", 1, moeFeedForward);
  r.add(kDomain, "SwitchFeedForward", 1, switchFeedForward);
  r.add(kDomain, "SwitchHeadAttention", 1, switchHeadAttention);
  r.add(kDomain, "SwitchHeadGatedAttention", 1, switchHeadGatedAttention);
  r.add(kDomain, "MixtureOfTokens", 1, mixtureOfTokens);
  r.add(kDomain, "TreeGatedLayer", 1, treeGatedLayer);
}

//===- HandlerUtils.cpp - helpers for ONNX node handlers -------------------===//

#include "HandlerUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/ADT/STLExtras.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::onnx_conv;

std::string onnx_conv::describe(onnxir::NodeOp node) {
  std::string name = "?";
  if (auto loc = dyn_cast<NameLoc>(node.getLoc()))
    name = loc.getName().str();
  std::string op = node.getOpType().str();
  if (!node.getDomain().empty())
    op = node.getDomain().str() + "." + op;
  return "node '" + name + "' (" + op + ")";
}

InFlightDiagnostic onnx_conv::nodeError(onnxir::NodeOp node) {
  return node.emitError() << describe(node) << ": ";
}

FailureOr<int64_t> onnx_conv::intAttr(onnxir::NodeOp node, StringRef name,
                                      std::optional<int64_t> fallback) {
  Attribute a = node.getNodeAttributes().get(name);
  if (!a) {
    if (fallback)
      return *fallback;
    nodeError(node) << "missing integer attribute '" << name << "'";
    return failure();
  }
  if (auto i = dyn_cast<IntegerAttr>(a))
    return i.getInt();
  nodeError(node) << "attribute '" << name << "' must be an integer, got "
                  << a;
  return failure();
}

FailureOr<double> onnx_conv::floatAttr(onnxir::NodeOp node, StringRef name,
                                       std::optional<double> fallback) {
  Attribute a = node.getNodeAttributes().get(name);
  if (!a) {
    if (fallback)
      return *fallback;
    nodeError(node) << "missing float attribute '" << name << "'";
    return failure();
  }
  if (auto f = dyn_cast<FloatAttr>(a))
    return f.getValueAsDouble();
  nodeError(node) << "attribute '" << name << "' must be a float, got " << a;
  return failure();
}

FailureOr<std::string>
onnx_conv::stringAttr(onnxir::NodeOp node, StringRef name,
                      ArrayRef<StringRef> allowed,
                      std::optional<StringRef> fallback) {
  Attribute a = node.getNodeAttributes().get(name);
  std::string value;
  if (!a) {
    if (!fallback) {
      nodeError(node) << "missing string attribute '" << name << "'";
      return failure();
    }
    value = fallback->str();
  } else if (auto s = dyn_cast<StringAttr>(a)) {
    value = s.str();
  } else {
    nodeError(node) << "attribute '" << name << "' must be a string, got "
                    << a;
    return failure();
  }
  if (!allowed.empty() && !llvm::is_contained(allowed, value)) {
    InFlightDiagnostic diag = nodeError(node);
    diag << "attribute '" << name << "' is '" << value << "'; expected one of";
    for (StringRef s : allowed)
      diag << " " << s;
    return failure();
  }
  return value;
}

LogicalResult onnx_conv::checkOperandCount(onnxir::NodeOp node, unsigned min,
                                           unsigned max) {
  unsigned n = node.getInputs().size();
  if (n >= min && n <= max)
    return success();
  InFlightDiagnostic diag = nodeError(node);
  diag << "expected ";
  if (min == max)
    diag << min;
  else
    diag << min << " to " << max;
  diag << " inputs, got " << n;
  return failure();
}

FailureOr<Value> onnx_conv::tensorOperand(onnxir::NodeOp node, unsigned index,
                                          StringRef name,
                                          std::optional<int64_t> rank,
                                          bool optional) {
  if (index >= node.getInputs().size() ||
      isa<NoneType>(node.getInputs()[index].getType())) {
    if (optional)
      return Value();
    nodeError(node) << "input " << index << " (" << name << ") is required";
    return failure();
  }
  Value v = node.getInputs()[index];
  auto type = dyn_cast<RankedTensorType>(v.getType());
  if (!type) {
    nodeError(node) << "input " << index << " (" << name
                    << ") must be a ranked tensor, got " << v.getType();
    return failure();
  }
  if (rank && type.getRank() != *rank) {
    nodeError(node) << "input " << index << " (" << name << ") must have rank "
                    << *rank << ", got " << type;
    return failure();
  }
  return v;
}

std::optional<SmallVector<int64_t>> onnx_conv::constantInts(Value v) {
  auto cst = v.getDefiningOp<arith::ConstantOp>();
  if (!cst)
    return std::nullopt;
  auto dense = dyn_cast<DenseIntElementsAttr>(cst.getValue());
  if (!dense)
    return std::nullopt;
  return llvm::map_to_vector(dense.getValues<APInt>(), [](const APInt &i) {
    return i.getSExtValue();
  });
}

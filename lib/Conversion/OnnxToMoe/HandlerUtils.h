//===- HandlerUtils.h - helpers for ONNX node handlers ----------*- C++ -*-===//
//
// Attribute and operand accessors that refuse with a diagnostic located at the
// node (`node 'name' (OpType): ...`), shared by the handler files.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_ONNXTOMOE_HANDLERUTILS_H
#define MOE_LIB_CONVERSION_ONNXTOMOE_HANDLERUTILS_H

#include "moe/Conversion/OnnxToMoe/OnnxToMoe.h"

#include <optional>
#include <string>

namespace mlir::moe::onnx_conv {

using Values = FailureOr<SmallVector<Value>>;

/// "node 'name' (OpType)".
std::string describe(onnxir::NodeOp node);

/// Emits "node 'name' (OpType): " at the node's location; append the rest.
InFlightDiagnostic nodeError(onnxir::NodeOp node);

/// Integer attribute `name`; `fallback` when absent (error if none).
FailureOr<int64_t> intAttr(onnxir::NodeOp node, StringRef name,
                           std::optional<int64_t> fallback = std::nullopt);
/// Float attribute `name`.
FailureOr<double> floatAttr(onnxir::NodeOp node, StringRef name,
                            std::optional<double> fallback = std::nullopt);
/// String attribute `name`, one of `allowed`.
FailureOr<std::string>
stringAttr(onnxir::NodeOp node, StringRef name, ArrayRef<StringRef> allowed,
           std::optional<StringRef> fallback = std::nullopt);

/// Checks the operand count is within [min, max].
LogicalResult checkOperandCount(onnxir::NodeOp node, unsigned min,
                                unsigned max);

/// Operand `index` as a ranked tensor (of `rank` when given); absent
/// optional operands (onnx.none) are refused unless `optional`, then null.
FailureOr<Value> tensorOperand(onnxir::NodeOp node, unsigned index,
                               StringRef name,
                               std::optional<int64_t> rank = std::nullopt,
                               bool optional = false);

/// The integer values of a constant (arith.constant) tensor, if constant.
std::optional<SmallVector<int64_t>> constantInts(Value v);

} // namespace mlir::moe::onnx_conv

#endif // MOE_LIB_CONVERSION_ONNXTOMOE_HANDLERUTILS_H

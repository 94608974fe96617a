//===- HandlerUtils.h - helpers for ONNX node handlers ----------*- C++ -*-===//
//
// Attribute and operand accessors that refuse with a diagnostic located at the
// node (`node 'name' (OpType): ...`), shared by the handler files.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_ONNXTOMOE_HANDLERUTILS_H
#define MOE_LIB_CONVERSION_ONNXTOMOE_HANDLERUTILS_H

#include "moe/Conversion/OnnxToMoe/OnnxToMoe.h"

#include "mlir/Dialect/Utils/ReshapeOpsUtils.h"
#include "mlir/Dialect/Utils/StructuredOpsUtils.h"

#include <optional>
#include <string>

namespace mlir::moe::onnx_conv {

/// Most elements of one constant that a handler computes element by element
/// at import (Range; docs/security.md). Larger values are refused with a
/// located error rather than materialised.
constexpr int64_t kMaxFoldedElements = int64_t(1) << 24;

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

/// The two operands of a binary elementwise node (A, B), ranked and of one
/// element type.
FailureOr<std::pair<Value, Value>> binaryOperands(onnxir::NodeOp node);

/// The inputs of a variadic elementwise node (Sum, Mean, Max, Min): at
/// least one, each a ranked tensor, all of one element type.
FailureOr<SmallVector<Value>> variadicOperands(onnxir::NodeOp node);

/// The integer values of a constant (arith.constant) tensor, if constant.
std::optional<SmallVector<int64_t>> constantInts(Value v);

/// Operand `index` as constant integers (axes, shapes, sizes); refuses
/// computed values. Absent optional operands give `fallback`.
FailureOr<SmallVector<int64_t>>
constantIntsOperand(onnxir::NodeOp node, unsigned index, StringRef name,
                    std::optional<SmallVector<int64_t>> fallback =
                        std::nullopt);

/// An integer index read at run time (inside a linalg body or loop), a
/// negative value wrapped once by `bound`, checked to lie in [0, bound):
/// out of range is reported (kErrorIndexOutOfRange) and read as 0. Call
/// declareErrorHook first.
Value wrappedIndex(OpBuilder &b, Location loc, Value raw, Value bound);

/// Normalises `axis` into [0, rank), refusing out-of-range values.
FailureOr<int64_t> normalizeAxis(onnxir::NodeOp node, int64_t axis,
                                 int64_t rank);

RankedTensorType typeOf(Value v);
bool isFloat(Value v);

/// A scalar constant of `type` (float or integer).
Value scalar(OpBuilder &b, Location loc, Type type, double v);

/// Terminates a linalg body with one value.
void yield(OpBuilder &b, Location loc, Value v);

/// Scalar body of an elementwise op: its operands' elements -> result.
using ScalarFn = function_ref<Value(OpBuilder &, Location, ValueRange)>;

/// Elementwise `fn` over `operands` with numpy broadcasting (a dimension
/// dynamic in one operand and static in another is assumed to match).
/// Unsigned integer tensors are computed on their signless bit pattern:
/// `fn` sees signless values. The result has `resultElement` (default: the
/// first operand's element type).
Values elementwise(onnxir::NodeOp node, RewriterBase &b, ValueRange operands,
                   ScalarFn fn, Type resultElement = {});

/// Coordinates into a gather's source for one result element, from the
/// result's indices (inside a linalg body).
using CoordsFn =
    function_ref<SmallVector<Value>(OpBuilder &, Location, ValueRange)>;

/// A tensor of `sizes` whose element at indices i is source[coords(i)]: one
/// linalg.generic reading `source` with tensor.extract (Slice, Tile, Pad).
/// `coords` must keep every read inside `source`.
Value gatherByIndices(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> sizes,
                      Value source, CoordsFn coords);

/// `tensor.bitcast` between an unsigned integer tensor and its signless twin
/// (identity for other types).
Value toSignless(OpBuilder &b, Location loc, Value v);
Value toElementType(OpBuilder &b, Location loc, Value v, Type element);

/// Reassociation between a rank `rank` tensor and the same tensor without
/// the unit dims marked in `dropped`: each dropped dim joins its neighbour's
/// group (for collapse_shape to drop them, expand_shape to reinsert them).
SmallVector<ReassociationIndices> foldUnitDims(int64_t rank,
                                               ArrayRef<bool> dropped);

/// Handler groups of populateStandardOnnxHandlers, one per file.
void populateStandardShapeHandlers(OnnxHandlerRegistry &registry);
void populateStandardReduceHandlers(OnnxHandlerRegistry &registry);
void populateStandardIndexHandlers(OnnxHandlerRegistry &registry);
void populateStandardElementwiseHandlers(OnnxHandlerRegistry &registry);
void populateStandardSpatialHandlers(OnnxHandlerRegistry &registry);

} // namespace mlir::moe::onnx_conv

#endif // MOE_LIB_CONVERSION_ONNXTOMOE_HANDLERUTILS_H

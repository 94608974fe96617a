//===- ShapeValues.h - shape values computed in an ONNX graph ---*- C++ -*-===//
//
// Exported graphs compute shapes: Shape -> Gather -> Concat -> Reshape, or
// Shape -> Slice -> Mul -> Expand. The importer keeps such small integer
// tensors (rank <= 1, at most kMaxShapeElements elements) as
// `tensor.from_elements` of scalars, folded to constants where a size is
// static, so that consumers see each entry: a constant becomes a static
// dim, a computed scalar a dynamic one. This is the shape lattice of the
// conversion: constant < known scalar (tensor.dim arithmetic) < data.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_ONNXTOMOE_SHAPEVALUES_H
#define MOE_LIB_CONVERSION_ONNXTOMOE_SHAPEVALUES_H

#include "HandlerUtils.h"

#include <optional>

namespace mlir::moe::onnx_conv {

/// Largest tensor treated as a shape value.
constexpr int64_t kMaxShapeElements = 64;

/// The value of a one-element constant tensor (integer or float).
std::optional<double> constantScalar(Value v);

/// The entries of a shape value as they are: IntegerAttrs for constants,
/// scalar SSA values (of the tensor's element type) for computed entries.
/// None when `v` is not a constant or `tensor.from_elements` of rank <= 1.
/// Creates no IR.
std::optional<SmallVector<OpFoldResult>> shapeScalars(Value v);

/// The entries of a rank-1 (or rank-0) integer tensor as index sizes: static
/// where constant, otherwise index values (from the scalars of a shape
/// value, or read from the tensor at run time when it has a static length of
/// at most kMaxShapeElements). None for other tensors.
std::optional<SmallVector<OpFoldResult>>
shapeElements(OpBuilder &b, Location loc, Value v);

/// A shape value of `type` from its entries: an arith.constant when every
/// entry is constant, else a tensor.from_elements.
Value makeShapeValue(OpBuilder &b, Location loc, RankedTensorType type,
                     ArrayRef<OpFoldResult> entries);

/// The result of `node` computed on shape values, when it is a shape
/// computation (Shape, Size, Gather, Concat, Slice, Squeeze, Unsqueeze,
/// Cast, Add, Sub, Mul, Div, Mod, Max, Min, Equal, Less, Greater, Where) whose
/// inputs are shape values, at least one computed. None otherwise: the
/// node's handler then converts it as a tensor op. Never fails.
std::optional<SmallVector<Value>> foldShapeNode(onnxir::NodeOp node,
                                                RewriterBase &b);

/// ONNX Slice's clamped start and element count on a dim of size `dim`
/// (numpy rules; step != 0), at compile time.
struct Range1D {
  int64_t start, size, step;
};
Range1D sliceRange(int64_t dim, int64_t start, int64_t end, int64_t step);

/// The same at run time: `start`, `end`, `dim` are index values, `step` a
/// constant. Returns (start, size) as index values.
std::pair<Value, Value> sliceRangeAt(OpBuilder &b, Location loc, Value dim,
                                     Value start, Value end, int64_t step);

} // namespace mlir::moe::onnx_conv

#endif // MOE_LIB_CONVERSION_ONNXTOMOE_SHAPEVALUES_H

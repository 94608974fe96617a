//===- StandardOpsShape.cpp - ai.onnx shape, selection and cast ops --------===//
//
// Transpose, Squeeze, Unsqueeze, Concat, Slice, Split, Expand,
// ConstantOfShape, Range, Trilu, Cast, Where, Dropout, Not and the
// comparisons. Axes and steps given as inputs must be constants; shapes,
// sizes, starts and ends may be computed (ShapeValues.h).
//
//===----------------------------------------------------------------------===//

#include "HandlerUtils.h"
#include "ShapeValues.h"
#include "moe/Utils/RuntimeErrors.h"
#include "moe/Utils/BuildUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::build;
using namespace mlir::moe::onnx_conv;

namespace {

/// Transpose-13..: perm defaults to reversing the dims.
Values transposeOp(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 1, 1)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "data");
  if (failed(x))
    return failure();
  int64_t rank = typeOf(*x).getRank();
  SmallVector<int64_t> perm;
  if (auto p = dyn_cast_or_null<DenseI64ArrayAttr>(
          node.getNodeAttributes().get("perm")))
    perm.assign(p.asArrayRef().begin(), p.asArrayRef().end());
  else
    for (int64_t i = rank - 1; i >= 0; --i)
      perm.push_back(i);
  SmallVector<int64_t> sorted(perm);
  llvm::sort(sorted);
  for (int64_t i = 0; i < rank; ++i)
    if ((int64_t)sorted.size() != rank || sorted[i] != i) {
      nodeError(node) << "perm is not a permutation of 0.." << rank - 1;
      return failure();
    }
  return SmallVector<Value>{transpose(b, node.getLoc(), *x, perm)};
}

/// Squeeze-13..: axes (input) or every static unit dim. A listed dim of a
/// size known only at run time must be 1 then (else a report, and zeros of
/// size 1): the dynamo exporter squeezes slices of computed length.
Values squeeze(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 1, 2)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "data");
  FailureOr<SmallVector<int64_t>> axes =
      constantIntsOperand(node, 1, "axes", SmallVector<int64_t>{});
  if (failed(x) || failed(axes))
    return failure();
  RankedTensorType t = typeOf(*x);
  SmallVector<bool> dropped(t.getRank(), axes->empty());
  if (axes->empty()) {
    for (int64_t d = 0; d < t.getRank(); ++d)
      dropped[d] = t.getDimSize(d) == 1;
  }
  for (int64_t a : *axes) {
    FailureOr<int64_t> d = normalizeAxis(node, a, t.getRank());
    if (failed(d))
      return failure();
    if (!t.isDynamicDim(*d) && t.getDimSize(*d) != 1) {
      nodeError(node) << "dim " << *d << " of " << t << " is not 1";
      return failure();
    }
    dropped[*d] = true;
  }
  Value in = *x;
  for (int64_t d = 0; d < t.getRank(); ++d)
    if (dropped[d] && t.isDynamicDim(d)) {
      declareErrorHook(b, node);
      in = requireSize(b, node.getLoc(), in, d, b.getIndexAttr(1),
                       kErrorShapeMismatch);
    }
  return SmallVector<Value>{
      collapse(b, node.getLoc(), in, foldUnitDims(t.getRank(), dropped))};
}

/// Unsqueeze-13..: inserts unit dims at `axes` (an input) of the output.
Values unsqueeze(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 2, 2)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "data");
  FailureOr<SmallVector<int64_t>> axes = constantIntsOperand(node, 1, "axes");
  if (failed(x) || failed(axes))
    return failure();
  Location loc = node.getLoc();
  int64_t outRank = typeOf(*x).getRank() + axes->size();
  SmallVector<bool> inserted(outRank, false);
  for (int64_t a : *axes) {
    FailureOr<int64_t> d = normalizeAxis(node, a, outRank);
    if (failed(d))
      return failure();
    if (inserted[*d]) {
      nodeError(node) << "axis " << a << " is repeated";
      return failure();
    }
    inserted[*d] = true;
  }
  SmallVector<OpFoldResult> sizes;
  int64_t src = 0;
  for (int64_t d = 0; d < outRank; ++d)
    sizes.push_back(inserted[d] ? b.getIndexAttr(1)
                                : tensor::getMixedSize(b, loc, *x, src++));
  return SmallVector<Value>{
      expand(b, loc, *x, foldUnitDims(outRank, inserted), sizes)};
}

/// Concat-13..
Values concat(onnxir::NodeOp node, RewriterBase &b) {
  if (node.getInputs().empty()) {
    nodeError(node) << "expected at least one input";
    return failure();
  }
  SmallVector<Value> inputs;
  for (unsigned i = 0; i < node.getInputs().size(); ++i) {
    FailureOr<Value> v = tensorOperand(node, i, "inputs");
    if (failed(v))
      return failure();
    inputs.push_back(*v);
  }
  FailureOr<int64_t> axisAttr = intAttr(node, "axis");
  if (failed(axisAttr))
    return failure();
  FailureOr<int64_t> axis =
      normalizeAxis(node, *axisAttr, typeOf(inputs[0]).getRank());
  if (failed(axis))
    return failure();
  for (Value v : inputs)
    if (typeOf(v).getRank() != typeOf(inputs[0]).getRank() ||
        typeOf(v).getElementType() != typeOf(inputs[0]).getElementType()) {
      nodeError(node) << "inputs " << inputs[0].getType() << " and "
                      << v.getType() << " do not concatenate";
      return failure();
    }
  // Inputs empty along the axis add nothing; they go, whatever their other
  // dims, as in ONNX Runtime (tensor.concat's bufferization would take a
  // view at the end of the result for each, which the subview verifier
  // refuses: a rotary split that rotates every column leaves an empty
  // pass-through part). One input stays.
  SmallVector<Value> nonEmpty;
  for (Value v : inputs)
    if (typeOf(v).getDimSize(*axis) != 0)
      nonEmpty.push_back(v);
  if (nonEmpty.empty())
    nonEmpty.push_back(inputs[0]);
  // The dims other than the axis must agree: static ones here, dynamic ones
  // at run time (tensor.concat's lowering sizes the result by one input and
  // copies each whole, so a larger one would be written past the result's
  // end and a smaller one would leave it partly unwritten). Each input is
  // checked against the first with a static size in that dim, else the
  // first.
  Location loc = node.getLoc();
  int64_t rank = typeOf(inputs[0]).getRank();
  for (int64_t d = 0; d < rank; ++d) {
    if (d == *axis)
      continue;
    Value reference = nonEmpty[0];
    for (Value v : nonEmpty)
      if (!typeOf(v).isDynamicDim(d)) {
        reference = v;
        break;
      }
    for (Value &v : nonEmpty) {
      RankedTensorType vt = typeOf(v), rt = typeOf(reference);
      if (!vt.isDynamicDim(d) && !rt.isDynamicDim(d)) {
        if (vt.getDimSize(d) != rt.getDimSize(d)) {
          nodeError(node) << "inputs " << rt << " and " << vt
                          << " do not concatenate (dim " << d << ")";
          return failure();
        }
        continue;
      }
      if (v != reference)
        v = requireSize(b, loc, v, d,
                        tensor::getMixedSize(b, loc, reference, d),
                        kErrorShapeMismatch);
    }
  }
  if (nonEmpty.size() == 1)
    return SmallVector<Value>{nonEmpty[0]};
  return SmallVector<Value>{tensor::ConcatOp::create(b, loc, *axis, nonEmpty)};
}

/// Elements [start, start + size*step) of a dim of extent `dim` under ONNX
/// Slice clamping; `dim` static.
/// Slice-13..: constant axes and steps (negative steps included); starts
/// and ends constant or computed (shape values, or read at run time), on
/// static or dynamic dims. Clamping follows ONNX at compile time where
/// everything is known, at run time otherwise.
Values slice(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 3, 5)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "data");
  FailureOr<Value> startsIn = tensorOperand(node, 1, "starts", 1);
  FailureOr<Value> endsIn = tensorOperand(node, 2, "ends", 1);
  if (failed(x) || failed(startsIn) || failed(endsIn))
    return failure();
  Location loc = node.getLoc();
  std::optional<SmallVector<OpFoldResult>> starts =
      shapeElements(b, loc, *startsIn);
  std::optional<SmallVector<OpFoldResult>> ends =
      shapeElements(b, loc, *endsIn);
  if (!starts || !ends) {
    nodeError(node) << "starts and ends must be 1-D integer tensors of a "
                       "static length (at most "
                    << kMaxShapeElements << ")";
    return failure();
  }
  RankedTensorType t = typeOf(*x);
  SmallVector<int64_t> defaultAxes;
  for (size_t i = 0; i < starts->size(); ++i)
    defaultAxes.push_back(i);
  FailureOr<SmallVector<int64_t>> axes =
      constantIntsOperand(node, 3, "axes", defaultAxes);
  FailureOr<SmallVector<int64_t>> steps = constantIntsOperand(
      node, 4, "steps", SmallVector<int64_t>(starts->size(), 1));
  if (failed(axes) || failed(steps))
    return failure();
  if (ends->size() != starts->size() || axes->size() != starts->size() ||
      steps->size() != starts->size()) {
    nodeError(node) << "starts, ends, axes and steps differ in length";
    return failure();
  }
  int64_t rank = t.getRank();
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, loc, *x);
  // Per sliced dim: (start, step); the start is static or an index value.
  SmallVector<std::optional<std::pair<OpFoldResult, int64_t>>> perDim(rank);
  for (size_t i = 0; i < starts->size(); ++i) {
    FailureOr<int64_t> d = normalizeAxis(node, (*axes)[i], rank);
    if (failed(d))
      return failure();
    if (perDim[*d]) {
      nodeError(node) << "axis " << *d << " is sliced twice";
      return failure();
    }
    int64_t step = (*steps)[i];
    if (step == 0) {
      nodeError(node) << "step 0 on axis " << *d;
      return failure();
    }
    std::optional<int64_t> start = getConstantIntValue((*starts)[i]);
    std::optional<int64_t> end = getConstantIntValue((*ends)[i]);
    if (start && end && !ShapedType::isDynamic(t.getDimSize(*d))) {
      Range1D r = sliceRange(t.getDimSize(*d), *start, *end, step);
      perDim[*d] = {b.getIndexAttr(r.start), step};
      sizes[*d] = b.getIndexAttr(r.size);
      continue;
    }
    // At run time. Constant entries beyond the index range (INT64_MAX for
    // "to the end") are clamped first so the arithmetic cannot overflow.
    auto asIndex = [&](OpFoldResult v) -> Value {
      if (std::optional<int64_t> c = getConstantIntValue(v))
        return arith::ConstantIndexOp::create(
            b, loc, std::clamp<int64_t>(*c, -(int64_t(1) << 62),
                                        int64_t(1) << 62));
      Value big = arith::ConstantIndexOp::create(b, loc, int64_t(1) << 62);
      Value small = arith::ConstantIndexOp::create(b, loc, -(int64_t(1) << 62));
      return arith::MinSIOp::create(
          b, loc, arith::MaxSIOp::create(b, loc, cast<Value>(v), small), big);
    };
    Value dim = tensor::DimOp::create(b, loc, *x, *d);
    // A step beyond +-2^62 selects at most one element, as 2^62 does, and
    // keeps the run-time arithmetic from overflowing.
    step = std::clamp<int64_t>(step, -(int64_t(1) << 62), int64_t(1) << 62);
    auto [s, n] = sliceRangeAt(b, loc, dim, asIndex((*starts)[i]),
                               asIndex((*ends)[i]), step);
    perDim[*d] = {getAsOpFoldResult(s), step};
    sizes[*d] = getAsOpFoldResult(n);
  }
  Value gathered = gatherByIndices(
      b, loc, sizes, *x, [&](OpBuilder &nb, Location nl, ValueRange indices) {
        SmallVector<Value> coords;
        for (int64_t d = 0; d < rank; ++d) {
          Value i = indices[d];
          if (perDim[d]) {
            Value step =
                arith::ConstantIndexOp::create(nb, nl, perDim[d]->second);
            Value start =
                getValueOrCreateConstantIndexOp(nb, nl, perDim[d]->first);
            i = arith::AddIOp::create(nb, nl, start,
                                      arith::MulIOp::create(nb, nl, i, step));
          }
          coords.push_back(i);
        }
        return coords;
      });
  return SmallVector<Value>{gathered};
}

/// Sizes from a shape input (constant or computed entries); a negative
/// computed entry is reported at run time and taken as 0.
std::optional<SmallVector<OpFoldResult>>
sizesOperand(onnxir::NodeOp node, RewriterBase &b, Value shape) {
  Location loc = node.getLoc();
  std::optional<SmallVector<OpFoldResult>> sizes =
      shapeElements(b, loc, shape);
  if (!sizes || typeOf(shape).getRank() != 1) {
    nodeError(node) << "the shape must be a 1-D integer tensor of a static "
                       "length (at most "
                    << kMaxShapeElements << "), got " << shape.getType();
    return std::nullopt;
  }
  for (OpFoldResult &s : *sizes) {
    if (std::optional<int64_t> c = getConstantIntValue(s)) {
      if (*c < 0) {
        nodeError(node) << "negative dimension " << *c;
        return std::nullopt;
      }
      continue;
    }
    declareErrorHook(b, node);
    Value v = cast<Value>(s);
    Value zero = arith::ConstantIndexOp::create(b, loc, 0);
    Value negative =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, v, zero);
    reportIf(b, loc, negative, kErrorShapeMismatch);
    s = arith::SelectOp::create(b, loc, negative, zero, v).getResult();
  }
  return sizes;
}

/// Split-13..: sizes from the `split` input or equal parts.
Values split(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 1, 2)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "input");
  FailureOr<int64_t> axisAttr = intAttr(node, "axis", 0);
  if (failed(x) || failed(axisAttr))
    return failure();
  RankedTensorType t = typeOf(*x);
  FailureOr<int64_t> axis = normalizeAxis(node, *axisAttr, t.getRank());
  if (failed(axis))
    return failure();
  int64_t dim = t.getDimSize(*axis);
  int64_t parts = node.getNumResults();
  FailureOr<int64_t> numOutputs = intAttr(node, "num_outputs", parts);
  if (failed(numOutputs))
    return failure();
  Location loc = node.getLoc();
  SmallVector<OpFoldResult> sizes;
  if (node.getInputs().size() > 1 &&
      !isa<NoneType>(node.getInputs()[1].getType())) {
    // Constant or computed sizes (a negative computed size is reported).
    std::optional<SmallVector<OpFoldResult>> given =
        sizesOperand(node, b, node.getInputs()[1]);
    if (!given)
      return failure();
    sizes = *given;
  } else {
    if (ShapedType::isDynamic(dim)) {
      nodeError(node) << "an equal split needs a static dim " << *axis;
      return failure();
    }
    int64_t chunk = (dim + *numOutputs - 1) / *numOutputs;
    for (int64_t i = 0, left = dim; i < *numOutputs; ++i, left -= chunk)
      sizes.push_back(b.getIndexAttr(std::max<int64_t>(0, std::min(chunk, left))));
  }
  if ((int64_t)sizes.size() != parts) {
    nodeError(node) << "split gives " << sizes.size() << " parts for "
                    << parts << " outputs";
    return failure();
  }
  OpFoldResult total = b.getIndexAttr(0);
  for (OpFoldResult s : sizes) {
    std::optional<int64_t> ct = getConstantIntValue(total);
    std::optional<int64_t> cs = getConstantIntValue(s);
    total = ct && cs ? OpFoldResult(b.getIndexAttr(*ct + *cs))
                     : OpFoldResult(arith::AddIOp::create(
                                        b, loc,
                                        getValueOrCreateConstantIndexOp(b, loc,
                                                                        total),
                                        getValueOrCreateConstantIndexOp(b, loc,
                                                                        s))
                                        .getResult());
  }
  std::optional<int64_t> staticTotal = getConstantIntValue(total);
  if (!ShapedType::isDynamic(dim) && staticTotal && *staticTotal != dim) {
    nodeError(node) << "split sizes add up to " << *staticTotal << ", dim "
                    << *axis << " is " << dim;
    return failure();
  }
  // Where the sizes or the dim are only known at run time, they must add up
  // to the dim: otherwise a report, and the parts are cut from zeros of the
  // expected size, never read past the input.
  Value input = *x;
  if (ShapedType::isDynamic(dim) || !staticTotal) {
    declareErrorHook(b, node);
    input = requireSize(b, loc, input, *axis, total, kErrorShapeMismatch);
  }
  SmallVector<Value> results;
  OpFoldResult offset = b.getIndexAttr(0);
  for (OpFoldResult size : sizes) {
    SmallVector<OpFoldResult> offsets(t.getRank(), b.getIndexAttr(0));
    SmallVector<OpFoldResult> shape = tensor::getMixedSizes(b, loc, input);
    SmallVector<OpFoldResult> strides(t.getRank(), b.getIndexAttr(1));
    offsets[*axis] = offset;
    shape[*axis] = size;
    // An empty part is a fresh empty tensor: a slice at offset == dim would
    // be out of bounds.
    results.push_back(getConstantIntValue(size) == 0
                          ? emptyTensor(b, loc, shape, t.getElementType())
                          : Value(tensor::ExtractSliceOp::create(
                                b, loc, input, offsets, shape, strides)));
    std::optional<int64_t> co = getConstantIntValue(offset);
    std::optional<int64_t> cs = getConstantIntValue(size);
    offset = co && cs ? OpFoldResult(b.getIndexAttr(*co + *cs))
                      : OpFoldResult(arith::AddIOp::create(
                                         b, loc,
                                         getValueOrCreateConstantIndexOp(
                                             b, loc, offset),
                                         getValueOrCreateConstantIndexOp(
                                             b, loc, size))
                                         .getResult());
  }
  return results;
}


/// Expand-13..: numpy broadcast of the input and a shape (constant or
/// computed entries; dims that meet at run time are checked then).
Values expandOp(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 2, 2)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "input");
  FailureOr<Value> shape = tensorOperand(node, 1, "shape");
  if (failed(x) || failed(shape))
    return failure();
  std::optional<SmallVector<OpFoldResult>> sizes =
      sizesOperand(node, b, *shape);
  if (!sizes)
    return failure();
  Value target = emptyTensor(b, node.getLoc(), *sizes,
                             typeOf(*x).getElementType());
  return elementwise(node, b, {*x, target},
                     [](OpBuilder &, Location, ValueRange a) { return a[0]; });
}

/// ConstantOfShape-9..: a constant or computed shape; value defaults to
/// float 0.
Values constantOfShape(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 1, 1)))
    return failure();
  FailureOr<Value> shape = tensorOperand(node, 0, "input");
  if (failed(shape))
    return failure();
  Attribute fill = b.getF32FloatAttr(0.0);
  if (auto v = dyn_cast_or_null<DenseElementsAttr>(
          node.getNodeAttributes().get("value"))) {
    if (v.getNumElements() != 1) {
      nodeError(node) << "value must hold one element";
      return failure();
    }
    fill = v.getSplatValue<Attribute>();
  }
  Type elt = cast<TypedAttr>(fill).getType();
  Location loc = node.getLoc();
  if (typeOf(*shape).getRank() == 1 && typeOf(*shape).getDimSize(0) == 0)
    return SmallVector<Value>{arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(RankedTensorType::get({}, elt), fill))};
  std::optional<SmallVector<OpFoldResult>> sizes =
      sizesOperand(node, b, *shape);
  if (!sizes)
    return failure();
  if (std::optional<SmallVector<int64_t>> known =
          getConstantIntValues(*sizes)) {
    auto type = RankedTensorType::get(*known, elt);
    return SmallVector<Value>{
        arith::ConstantOp::create(b, loc, DenseElementsAttr::get(type, fill))};
  }
  // Signless in the IR; the declared (possibly unsigned) type is restored
  // at the function boundary.
  Type signlessElt = elt;
  if (auto i = dyn_cast<IntegerType>(elt))
    signlessElt = b.getIntegerType(i.getWidth());
  Attribute signlessFill = fill;
  if (auto i = dyn_cast<IntegerAttr>(fill))
    signlessFill = IntegerAttr::get(signlessElt, i.getValue());
  Value value =
      arith::ConstantOp::create(b, loc, cast<TypedAttr>(signlessFill));
  Value init = emptyTensor(b, loc, *sizes, signlessElt);
  return SmallVector<Value>{
      linalg::FillOp::create(b, loc, value, init).getResult(0)};
}

/// Range-11..: out[i] = start + i * delta for i in [0, n), n = max(0,
/// ceil((limit - start) / delta)). Constant scalars fold to a constant;
/// computed ones give a dynamic length, with float elements accumulated
/// (value += delta) as ONNX's function body and ONNX Runtime do.
Values rangeComputed(onnxir::NodeOp node, RewriterBase &b);

Values range(onnxir::NodeOp node, RewriterBase &b);

/// Range-27 adds float16 and bfloat16, computed in float32 by default
/// (`stash_type`); the Range-11 handler would count and accumulate in the
/// 16-bit type, so those are refused here. Other types are unchanged.
Values range27(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 3, 3)))
    return failure();
  Type elt = getElementTypeOrSelf(node.getInputs()[0].getType());
  if (elt.isF16() || elt.isBF16()) {
    nodeError(node) << "Range on " << elt
                    << " (opset 27, computed in the stash type) is not "
                       "supported; cast start, limit and delta to float";
    return failure();
  }
  return range(node, b);
}

Values range(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 3, 3)))
    return failure();
  SmallVector<DenseElementsAttr> args;
  for (unsigned i = 0; i < 3; ++i) {
    auto cst = node.getInputs()[i].getDefiningOp<arith::ConstantOp>();
    auto dense = cst ? dyn_cast<DenseElementsAttr>(cst.getValue()) : nullptr;
    if (!dense || dense.getNumElements() != 1)
      return rangeComputed(node, b);
    args.push_back(dense);
  }
  Type elt = args[0].getElementType();
  // Mixed element types are refused there, with their names (read as one
  // type here, they would not be).
  if (args[1].getElementType() != elt || args[2].getElementType() != elt)
    return rangeComputed(node, b);
  Location loc = node.getLoc();
  // The element count, checked against the import-time cap before anything
  // is materialised. Integer ranges are computed exactly in 128 bits (a
  // double loses int64 values above 2^53); float ranges follow ONNX's
  // ceil((limit - start) / delta) in double, as ONNX Runtime does.
  int64_t n = 0;
  if (isa<FloatType>(elt)) {
    auto f = [](DenseElementsAttr a) {
      return a.getSplatValue<APFloat>().convertToDouble();
    };
    double start = f(args[0]), limit = f(args[1]), delta = f(args[2]);
    double count = std::ceil((limit - start) / delta);
    if (delta == 0 || !std::isfinite(count)) {
      nodeError(node) << "delta is 0, or start, limit or delta is not finite";
      return failure();
    }
    if (count > static_cast<double>(kMaxFoldedElements)) {
      nodeError(node) << "the range has " << count
                      << " elements, over the import-time cap of "
                      << kMaxFoldedElements << " elements per constant";
      return failure();
    }
    n = std::max<int64_t>(0, static_cast<int64_t>(count));
    SmallVector<APFloat> values;
    for (int64_t i = 0; i < n; ++i) {
      APFloat v(start + static_cast<double>(i) * delta);
      bool lost;
      v.convert(cast<FloatType>(elt).getFloatSemantics(),
                APFloat::rmNearestTiesToEven, &lost);
      values.push_back(v);
    }
    auto type = RankedTensorType::get({n}, elt);
    return SmallVector<Value>{arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(type, values))};
  }
  unsigned width = elt.getIntOrFloatBitWidth();
  auto i128 = [](DenseElementsAttr a) {
    return a.getSplatValue<APInt>().sext(128);
  };
  APInt start = i128(args[0]), limit = i128(args[1]), delta = i128(args[2]);
  if (delta.isZero()) {
    nodeError(node) << "delta is 0";
    return failure();
  }
  // ceil((limit - start) / delta) for either sign of delta.
  APInt span = limit - start;
  APInt quotient = span.sdiv(delta);
  if (!(span.srem(delta)).isZero() &&
      (span.isNegative() == delta.isNegative()))
    quotient += 1;
  if (quotient.isNegative())
    quotient = APInt(128, 0);
  if (quotient.sgt(APInt(128, kMaxFoldedElements))) {
    nodeError(node) << "the range has "
                    << llvm::toString(quotient, 10, /*Signed=*/true)
                    << " elements, over the import-time cap of "
                    << kMaxFoldedElements << " elements per constant";
    return failure();
  }
  n = quotient.getSExtValue();
  SmallVector<APInt> values;
  APInt v = start;
  for (int64_t i = 0; i < n; ++i, v += delta)
    values.push_back(v.trunc(width));
  auto type = RankedTensorType::get({n}, elt);
  return SmallVector<Value>{
      arith::ConstantOp::create(b, loc, DenseElementsAttr::get(type, values))};
}

/// Most elements of a Range computed at run time; larger counts are
/// reported (kErrorShapeMismatch) and give an empty result.
constexpr int64_t kMaxRangeElements = int64_t(1) << 31;

Values rangeComputed(onnxir::NodeOp node, RewriterBase &b) {
  SmallVector<Value> args;
  for (unsigned i = 0; i < 3; ++i) {
    FailureOr<Value> v = tensorOperand(node, i, i == 0   ? "start"
                                                : i == 1 ? "limit"
                                                         : "delta");
    if (failed(v))
      return failure();
    if (!typeOf(*v).hasStaticShape() || typeOf(*v).getNumElements() != 1) {
      nodeError(node) << "start, limit and delta must be scalars, got "
                      << v->getType();
      return failure();
    }
    args.push_back(*v);
  }
  Type elt = typeOf(args[0]).getElementType();
  if (typeOf(args[1]).getElementType() != elt ||
      typeOf(args[2]).getElementType() != elt) {
    nodeError(node) << "start, limit and delta differ in element type";
    return failure();
  }
  if (!isa<FloatType>(elt) && !elt.isSignlessInteger()) {
    nodeError(node) << "unsupported element type " << elt;
    return failure();
  }
  Location loc = node.getLoc();
  declareErrorHook(b, node);
  auto scalarOf = [&](Value v) -> Value {
    SmallVector<Value> coords(typeOf(v).getRank(),
                              arith::ConstantIndexOp::create(b, loc, 0));
    return tensor::ExtractOp::create(b, loc, v, coords);
  };
  Value start = scalarOf(args[0]), limit = scalarOf(args[1]),
        delta = scalarOf(args[2]);
  Type i64 = b.getI64Type();
  Value zero64 = arith::ConstantIntOp::create(b, loc, 0, 64);
  Value count, bad;
  if (isa<FloatType>(elt)) {
    // ceil((limit - start) / delta) in double, as ONNX Runtime computes it.
    Type f64 = b.getF64Type();
    auto ext = [&](Value v) -> Value {
      return v.getType() == f64 ? v
                                : Value(arith::ExtFOp::create(b, loc, f64, v));
    };
    Value q = math::CeilOp::create(
        b, loc,
        arith::DivFOp::create(
            b, loc, arith::SubFOp::create(b, loc, ext(limit), ext(start)),
            ext(delta)));
    Value cap = arith::ConstantOp::create(
        b, loc, b.getF64FloatAttr(static_cast<double>(kMaxRangeElements)));
    // Not (q <= cap) catches NaN and infinity (delta 0) too.
    bad = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::UGT, q, cap);
    Value clamped = arith::MaximumFOp::create(
        b, loc, q, arith::ConstantOp::create(b, loc, b.getF64FloatAttr(0.0)));
    count = arith::FPToSIOp::create(
        b, loc, i64,
        arith::SelectOp::create(
            b, loc, bad,
            arith::ConstantOp::create(b, loc, b.getF64FloatAttr(0.0)),
            clamped));
  } else {
    auto ext = [&](Value v) -> Value {
      return v.getType() == i64 ? v
                                : Value(arith::ExtSIOp::create(b, loc, i64, v));
    };
    Value s = ext(start), l = ext(limit), d = ext(delta);
    Value isZero =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, d, zero64);
    Value one64 = arith::ConstantIntOp::create(b, loc, 1, 64);
    Value safeD = arith::SelectOp::create(b, loc, isZero, one64, d);
    // ceil(span / delta) for either sign: C division truncates, so add one
    // where the remainder is non-zero and the quotient is positive.
    Value span = arith::SubIOp::create(b, loc, l, s);
    Value q = arith::DivSIOp::create(b, loc, span, safeD);
    Value r = arith::RemSIOp::create(b, loc, span, safeD);
    Value sameSign = arith::CmpIOp::create(
        b, loc, arith::CmpIPredicate::eq,
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, span, zero64),
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, safeD,
                              zero64));
    Value roundUp = arith::AndIOp::create(
        b, loc,
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne, r, zero64),
        sameSign);
    q = arith::AddIOp::create(
        b, loc, q, arith::ExtUIOp::create(b, loc, i64, roundUp));
    q = arith::MaxSIOp::create(b, loc, q, zero64);
    Value tooMany = arith::CmpIOp::create(
        b, loc, arith::CmpIPredicate::sgt, q,
        arith::ConstantIntOp::create(b, loc, kMaxRangeElements, 64));
    bad = arith::OrIOp::create(b, loc, isZero, tooMany);
    count = arith::SelectOp::create(b, loc, bad, zero64, q);
  }
  reportIf(b, loc, bad, kErrorShapeMismatch);
  Value n = arith::IndexCastOp::create(b, loc, b.getIndexType(), count);
  Value init = tensor::EmptyOp::create(
      b, loc, ArrayRef<int64_t>{ShapedType::kDynamic}, elt, ValueRange{n});
  if (!isa<FloatType>(elt)) {
    auto generic = linalg::GenericOp::create(
        b, loc, TypeRange{init.getType()}, ValueRange{}, ValueRange{init},
        SmallVector<AffineMap>{b.getMultiDimIdentityMap(1)},
        SmallVector<utils::IteratorType>{utils::IteratorType::parallel},
        [&](OpBuilder &nb, Location nl, ValueRange) {
          Value i = arith::IndexCastOp::create(
              nb, nl, elt, linalg::IndexOp::create(nb, nl, 0));
          yield(nb, nl,
                arith::AddIOp::create(nb, nl, start,
                                      arith::MulIOp::create(nb, nl, i, delta)));
        });
    return SmallVector<Value>{generic.getResult(0)};
  }
  Value zero = arith::ConstantIndexOp::create(b, loc, 0);
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  auto loop = scf::ForOp::create(
      b, loc, zero, n, one, ValueRange{init, start},
      [&](OpBuilder &nb, Location nl, Value i, ValueRange acc) {
        Value out = tensor::InsertOp::create(nb, nl, acc[1], acc[0],
                                             ValueRange{i});
        Value next = arith::AddFOp::create(nb, nl, acc[1], delta);
        scf::YieldOp::create(nb, nl, ValueRange{out, next});
      });
  return SmallVector<Value>{loop.getResult(0)};
}

/// Trilu-14..: keeps j - i >= k (upper) or j - i <= k (lower) in the last two
/// dims; k is a scalar input (default 0), constant or computed (the causal
/// mask `ones(T, S).tril(S - T)` of an export computes it from shapes).
Values trilu(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 1, 2)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "input");
  FailureOr<int64_t> upper = intAttr(node, "upper", 1);
  if (failed(x) || failed(upper))
    return failure();
  int64_t rank = typeOf(*x).getRank();
  if (rank < 2) {
    nodeError(node) << "input must have rank >= 2, got " << x->getType();
    return failure();
  }
  Location loc = node.getLoc();
  OpFoldResult kv = b.getIndexAttr(0);
  if (node.getInputs().size() > 1 &&
      !isa<NoneType>(node.getInputs()[1].getType())) {
    FailureOr<Value> kIn = tensorOperand(node, 1, "k");
    if (failed(kIn))
      return failure();
    std::optional<SmallVector<OpFoldResult>> k = shapeElements(b, loc, *kIn);
    if (!k || k->size() != 1) {
      nodeError(node) << "k must be an integer scalar, got "
                      << kIn->getType();
      return failure();
    }
    kv = (*k)[0];
  }
  bool up = *upper != 0;
  return elementwise(node, b, {*x}, [&](OpBuilder &nb, Location nl,
                                        ValueRange a) -> Value {
    Value i = linalg::IndexOp::create(nb, nl, rank - 2);
    Value j = linalg::IndexOp::create(nb, nl, rank - 1);
    Value diff = arith::SubIOp::create(nb, nl, j, i);
    Value kc = getValueOrCreateConstantIndexOp(nb, nl, kv);
    Value keep = arith::CmpIOp::create(
        nb, nl, up ? arith::CmpIPredicate::sge : arith::CmpIPredicate::sle,
        diff, kc);
    Type t = a[0].getType();
    Value zero = isa<FloatType>(t) ? scalar(nb, nl, t, 0.0)
                                   : arith::ConstantOp::create(
                                         nb, nl, nb.getIntegerAttr(t, 0))
                                         .getResult();
    return arith::SelectOp::create(nb, nl, keep, a[0], zero);
  });
}

/// `x` converted element by element to `target` (ONNX Cast semantics: to
/// bool is `!= 0`; float to integer truncates toward zero; unsigned
/// integers and bools widen with zeros). `target` may be an unsigned
/// integer type; the result is signless as every integer tensor here.
static Values castElements(onnxir::NodeOp node, RewriterBase &b, Value x,
                           Type target) {
  MLIRContext *ctx = b.getContext();
  Type from = typeOf(x).getElementType();
  bool fromUnsigned = from.isUnsignedInteger() || from.isInteger(1);
  bool toUnsigned = target.isUnsignedInteger();
  return elementwise(
      node, b, {x},
      [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
        Value v = a[0];
        Type src = v.getType();
        Type dst = target;
        if (auto i = dyn_cast<IntegerType>(dst))
          dst = IntegerType::get(ctx, i.getWidth());
        if (src == dst)
          return v;
        bool srcFloat = isa<FloatType>(src), dstFloat = isa<FloatType>(dst);
        if (dst.isInteger(1)) { // x != 0
          Value zero = srcFloat ? scalar(nb, nl, src, 0.0)
                                : arith::ConstantOp::create(
                                      nb, nl, nb.getIntegerAttr(src, 0))
                                      .getResult();
          return srcFloat ? Value(arith::CmpFOp::create(
                                nb, nl, arith::CmpFPredicate::UNE, v, zero))
                          : Value(arith::CmpIOp::create(
                                nb, nl, arith::CmpIPredicate::ne, v, zero));
        }
        if (srcFloat && dstFloat)
          return src.getIntOrFloatBitWidth() < dst.getIntOrFloatBitWidth()
                     ? Value(arith::ExtFOp::create(nb, nl, dst, v))
                     : Value(arith::TruncFOp::create(nb, nl, dst, v));
        if (!srcFloat && dstFloat)
          return fromUnsigned ? Value(arith::UIToFPOp::create(nb, nl, dst, v))
                              : Value(arith::SIToFPOp::create(nb, nl, dst, v));
        if (srcFloat && !dstFloat)
          return toUnsigned ? Value(arith::FPToUIOp::create(nb, nl, dst, v))
                            : Value(arith::FPToSIOp::create(nb, nl, dst, v));
        unsigned sw = src.getIntOrFloatBitWidth(),
                 dw = dst.getIntOrFloatBitWidth();
        if (sw > dw)
          return arith::TruncIOp::create(nb, nl, dst, v);
        return fromUnsigned ? Value(arith::ExtUIOp::create(nb, nl, dst, v))
                            : Value(arith::ExtSIOp::create(nb, nl, dst, v));
      },
      target);
}

/// Cast-13..: numeric types and bool (strings are refused).
Values castOp(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 1, 1)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "input");
  FailureOr<int64_t> to = intAttr(node, "to");
  if (failed(x) || failed(to))
    return failure();
  MLIRContext *ctx = b.getContext();
  Type target;
  // clang-format off
  switch (*to) {
  case 1: target = Float32Type::get(ctx); break;
  case 2: target = IntegerType::get(ctx, 8, IntegerType::Unsigned); break;
  case 3: target = IntegerType::get(ctx, 8); break;
  case 4: target = IntegerType::get(ctx, 16, IntegerType::Unsigned); break;
  case 5: target = IntegerType::get(ctx, 16); break;
  case 6: target = IntegerType::get(ctx, 32); break;
  case 7: target = IntegerType::get(ctx, 64); break;
  case 9: target = IntegerType::get(ctx, 1); break;
  case 10: target = Float16Type::get(ctx); break;
  case 11: target = Float64Type::get(ctx); break;
  case 12: target = IntegerType::get(ctx, 32, IntegerType::Unsigned); break;
  case 13: target = IntegerType::get(ctx, 64, IntegerType::Unsigned); break;
  case 16: target = BFloat16Type::get(ctx); break;
  default:
    nodeError(node) << "unsupported target type " << *to
                    << " (strings, complex and 4- or 8-bit floats are not "
                       "supported)";
    return failure();
  }
  // clang-format on
  return castElements(node, b, *x, target);
}

/// CastLike-15..: Cast to the element type of `target_type` (its values are
/// not read). `saturate` (19..) applies only to float8 targets, which are
/// refused like every element type the importer does not read.
Values castLike(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 2, 2)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "input");
  FailureOr<Value> like = tensorOperand(node, 1, "target_type");
  if (failed(x) || failed(like))
    return failure();
  // Every element type a tensor here can have is one Cast converts: the
  // importer refuses the others (strings, float8, ...) at their value.
  return castElements(node, b, *x, typeOf(*like).getElementType());
}

/// Where-16..
Values where(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 3, 3)))
    return failure();
  FailureOr<Value> c = tensorOperand(node, 0, "condition");
  FailureOr<Value> x = tensorOperand(node, 1, "X");
  FailureOr<Value> y = tensorOperand(node, 2, "Y");
  if (failed(c) || failed(x) || failed(y))
    return failure();
  if (!typeOf(*c).getElementType().isInteger(1)) {
    nodeError(node) << "condition must be bool, got " << c->getType();
    return failure();
  }
  return elementwise(node, b, {*c, *x, *y},
                     [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                       return arith::SelectOp::create(nb, nl, a[0], a[1], a[2]);
                     },
                     typeOf(*x).getElementType());
}

/// Dropout-13..: inference only (training_mode must be absent or false);
/// the optional mask output is all true.
Values dropout(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 1, 3)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "data");
  if (failed(x))
    return failure();
  if (node.getInputs().size() > 2 &&
      !isa<NoneType>(node.getInputs()[2].getType())) {
    std::optional<SmallVector<int64_t>> training =
        constantInts(node.getInputs()[2]);
    if (!training || (!training->empty() && (*training)[0] != 0)) {
      nodeError(node) << "training_mode must be a constant false";
      return failure();
    }
  }
  SmallVector<Value> results = {*x};
  if (node.getNumResults() > 1) {
    Location loc = node.getLoc();
    Value init = emptyTensor(b, loc, tensor::getMixedSizes(b, loc, *x),
                             b.getI1Type());
    Value yes = arith::ConstantOp::create(b, loc, b.getBoolAttr(true));
    results.push_back(linalg::FillOp::create(b, loc, yes, init).getResult(0));
  }
  return results;
}

/// Comparisons-13..: float (ordered), signed or unsigned integer forms.
template <arith::CmpFPredicate F, arith::CmpIPredicate S,
          arith::CmpIPredicate U>
Values compare(onnxir::NodeOp node, RewriterBase &b) {
  FailureOr<std::pair<Value, Value>> ops = binaryOperands(node);
  if (failed(ops))
    return failure();
  Type elt = typeOf(ops->first).getElementType();
  bool isF = isa<FloatType>(elt), isU = elt.isUnsignedInteger();
  return elementwise(node, b, {ops->first, ops->second},
                     [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                       if (isF)
                         return arith::CmpFOp::create(nb, nl, F, a[0], a[1]);
                       return arith::CmpIOp::create(nb, nl, isU ? U : S, a[0],
                                                    a[1]);
                     },
                     b.getI1Type());
}

/// Not-1..
Values notOp(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 1, 1)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "X");
  if (failed(x))
    return failure();
  if (!typeOf(*x).getElementType().isInteger(1)) {
    nodeError(node) << "expected a bool input, got " << x->getType();
    return failure();
  }
  return elementwise(node, b, {*x},
                     [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                       Value yes = arith::ConstantOp::create(
                           nb, nl, nb.getBoolAttr(true));
                       return arith::XOrIOp::create(nb, nl, a[0], yes);
                     });
}

} // namespace

void mlir::moe::onnx_conv::populateStandardShapeHandlers(
    OnnxHandlerRegistry &r) {
  using P = arith::CmpFPredicate;
  using I = arith::CmpIPredicate;
  r.add("", "Transpose", 13, transposeOp);
  r.add("", "Squeeze", 13, squeeze);
  r.add("", "Unsqueeze", 13, unsqueeze);
  r.add("", "Concat", 13, concat);
  r.add("", "Slice", 13, slice);
  r.add("", "Split", 13, split);
  r.add("", "Expand", 13, expandOp);
  r.add("", "ConstantOfShape", 9, constantOfShape);
  r.add("", "Range", 11, range);
  r.add("", "Range", 27, range27);
  r.add("", "Trilu", 14, trilu);
  r.add("", "Cast", 13, castOp);
  r.add("", "CastLike", 15, castLike);
  r.add("", "Where", 9, where);
  r.add("", "Dropout", 13, dropout);
  r.add("", "Not", 1, notOp);
  r.add("", "Equal", 13, compare<P::OEQ, I::eq, I::eq>);
  r.add("", "Less", 13, compare<P::OLT, I::slt, I::ult>);
  r.add("", "Greater", 13, compare<P::OGT, I::sgt, I::ugt>);
  r.add("", "LessOrEqual", 16, compare<P::OLE, I::sle, I::ule>);
  r.add("", "GreaterOrEqual", 16, compare<P::OGE, I::sge, I::uge>);
}

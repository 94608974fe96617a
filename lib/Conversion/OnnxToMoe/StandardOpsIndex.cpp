//===- StandardOpsIndex.cpp - ai.onnx index and data-dependent ops ---------===//
//
// Flatten, NonZero, OneHot, Tile, GatherND and ScatterND: the ops that exported Hugging Face MoE
// blocks build their per-expert token lists from (OneHot -> NonZero -> Gather)
// and that shape computations use. NonZero's result size depends on the data:
// it is counted, then the result is allocated and filled, at run time.
//
//===----------------------------------------------------------------------===//

#include "HandlerUtils.h"
#include "ShapeValues.h"
#include "moe/Utils/BuildUtils.h"
#include "moe/Utils/RuntimeErrors.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::build;
using namespace mlir::moe::onnx_conv;

namespace {

Value indexConst(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantIndexOp::create(b, loc, v);
}

/// An integer or float scalar as an index (floats truncate toward zero).
Value toIndex(OpBuilder &b, Location loc, Value v) {
  if (isa<FloatType>(v.getType()))
    v = arith::FPToSIOp::create(b, loc, b.getI64Type(), v);
  return arith::IndexCastOp::create(b, loc, b.getIndexType(), v);
}

/// Flatten-13..: [d0 * .. * d(axis-1), d(axis) * .. * d(rank-1)]; axis in
/// [-rank, rank].
Values flatten(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 1, 1)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "input");
  FailureOr<int64_t> axisAttr = intAttr(node, "axis", 1);
  if (failed(x) || failed(axisAttr))
    return failure();
  int64_t rank = typeOf(*x).getRank();
  int64_t axis = *axisAttr < 0 ? *axisAttr + rank : *axisAttr;
  if (axis < 0 || axis > rank) {
    nodeError(node) << "axis " << *axisAttr << " is out of range for rank "
                    << rank;
    return failure();
  }
  Location loc = node.getLoc();
  if (axis > 0 && axis < rank) {
    ReassociationIndices outer, inner;
    for (int64_t d = 0; d < axis; ++d)
      outer.push_back(d);
    for (int64_t d = axis; d < rank; ++d)
      inner.push_back(d);
    return SmallVector<Value>{collapse(b, loc, *x, {outer, inner})};
  }
  // One side is empty (size 1): collapse everything, then add the unit dim.
  OpFoldResult count = b.getIndexAttr(1);
  for (int64_t d = 0; d < rank; ++d)
    count = mulSizes(b, loc, count, tensor::getMixedSize(b, loc, *x, d));
  Value flat = *x;
  if (rank != 1) {
    ReassociationIndices all;
    for (int64_t d = 0; d < rank; ++d)
      all.push_back(d);
    flat = rank == 0 ? expand(b, loc, *x, {}, {b.getIndexAttr(1)})
                     : collapse(b, loc, *x, {all});
  }
  SmallVector<OpFoldResult> sizes = {b.getIndexAttr(1), count};
  if (axis != 0)
    std::swap(sizes[0], sizes[1]);
  return SmallVector<Value>{expand(b, loc, flat, {{0, 1}}, sizes)};
}

/// `v != 0` for a float (NaN counts as non-zero, as in numpy) or integer.
Value isNonZero(OpBuilder &b, Location loc, Value v) {
  if (isa<FloatType>(v.getType()))
    return arith::CmpFOp::create(b, loc, arith::CmpFPredicate::UNE, v,
                                 scalar(b, loc, v.getType(), 0.0));
  return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne, v,
                               scalar(b, loc, v.getType(), 0.0));
}

/// NonZero-13..: int64 [rank, n], the coordinates of the n non-zero elements
/// in row-major order. Two passes at run time: count, then allocate [rank, n]
/// and write each non-zero element's coordinates.
Values nonZero(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 1, 1)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "X");
  if (failed(x))
    return failure();
  RankedTensorType t = typeOf(*x);
  int64_t rank = t.getRank();
  if (rank == 0) {
    nodeError(node) << "a scalar input is not supported (its result shape "
                       "differs between ONNX implementations)";
    return failure();
  }
  Location loc = node.getLoc();
  Value data = toSignless(b, loc, *x);
  Value flat = data;
  if (rank > 1) {
    ReassociationIndices all;
    for (int64_t d = 0; d < rank; ++d)
      all.push_back(d);
    flat = collapse(b, loc, data, {all});
  }
  Value total = tensor::DimOp::create(b, loc, flat, 0);
  Value zero = indexConst(b, loc, 0), one = indexConst(b, loc, 1);
  auto count = scf::ForOp::create(
      b, loc, zero, total, one, ValueRange{zero},
      [&](OpBuilder &nb, Location nl, Value i, ValueRange acc) {
        Value v = tensor::ExtractOp::create(nb, nl, flat, ValueRange{i});
        Value inc = arith::IndexCastOp::create(
            nb, nl, nb.getIndexType(),
            arith::ExtUIOp::create(nb, nl, nb.getI64Type(),
                                   isNonZero(nb, nl, v)));
        scf::YieldOp::create(nb, nl,
                             ValueRange{arith::AddIOp::create(nb, nl, acc[0],
                                                              inc)});
      });
  Value n = count.getResult(0);
  SmallVector<Value> dims;
  for (int64_t d = 0; d < rank; ++d)
    dims.push_back(tensor::DimOp::create(b, loc, data, d));
  Value init = tensor::EmptyOp::create(
      b, loc, ArrayRef<int64_t>{rank, ShapedType::kDynamic}, b.getI64Type(),
      ValueRange{n});
  auto fill = scf::ForOp::create(
      b, loc, zero, total, one, ValueRange{init, zero},
      [&](OpBuilder &nb, Location nl, Value i, ValueRange acc) {
        Value v = tensor::ExtractOp::create(nb, nl, flat, ValueRange{i});
        auto ifOp = scf::IfOp::create(
            nb, nl, isNonZero(nb, nl, v),
            [&](OpBuilder &tb, Location tl) {
              // Row-major coordinates of flat index i.
              Value out = acc[0], rest = i;
              for (int64_t d = rank - 1; d >= 0; --d) {
                Value c = d == 0 ? rest
                                 : Value(arith::RemUIOp::create(tb, tl, rest,
                                                                dims[d]));
                if (d > 0)
                  rest = arith::DivUIOp::create(tb, tl, rest, dims[d]);
                Value c64 =
                    arith::IndexCastOp::create(tb, tl, tb.getI64Type(), c);
                out = tensor::InsertOp::create(
                    tb, tl, c64, out, ValueRange{indexConst(tb, tl, d), acc[1]});
              }
              Value next =
                  arith::AddIOp::create(tb, tl, acc[1], indexConst(tb, tl, 1));
              scf::YieldOp::create(tb, tl, ValueRange{out, next});
            },
            [&](OpBuilder &eb, Location el) {
              scf::YieldOp::create(eb, el, ValueRange{acc[0], acc[1]});
            });
        scf::YieldOp::create(nb, nl, ifOp.getResults());
      });
  return SmallVector<Value>{fill.getResult(0)};
}

/// The single element of a scalar or one-element tensor, as a scalar value.
Value onlyElement(OpBuilder &b, Location loc, Value v) {
  SmallVector<Value> coords(typeOf(v).getRank(), indexConst(b, loc, 0));
  return tensor::ExtractOp::create(b, loc, v, coords);
}

/// OneHot-11..: out[.., j at axis, ..] = values[1] if j == indices[..]
/// (negative indices count from depth) else values[0]; indices outside
/// [-depth, depth) select no class. depth is a scalar: a constant gives a
/// static dim, a computed one a dynamic dim (checked to be >= 0).
Values oneHot(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 3, 3)))
    return failure();
  FailureOr<Value> indices = tensorOperand(node, 0, "indices");
  FailureOr<Value> depthIn = tensorOperand(node, 1, "depth");
  FailureOr<Value> values = tensorOperand(node, 2, "values", 1);
  FailureOr<int64_t> axisAttr = intAttr(node, "axis", -1);
  if (failed(indices) || failed(depthIn) || failed(values) || failed(axisAttr))
    return failure();
  if (typeOf(*depthIn).getNumElements() != 1 ||
      !typeOf(*depthIn).hasStaticShape()) {
    nodeError(node) << "depth must hold one element, got "
                    << depthIn->getType();
    return failure();
  }
  if (typeOf(*values).getDimSize(0) != 2) {
    nodeError(node) << "values must hold two elements [off, on], got "
                    << values->getType();
    return failure();
  }
  int64_t inRank = typeOf(*indices).getRank();
  int64_t axis = *axisAttr < 0 ? *axisAttr + inRank + 1 : *axisAttr;
  if (axis < 0 || axis > inRank) {
    nodeError(node) << "axis " << *axisAttr << " is out of range for rank "
                    << inRank + 1;
    return failure();
  }
  Location loc = node.getLoc();
  OpFoldResult depth;
  if (std::optional<double> known = constantScalar(*depthIn)) {
    int64_t d = static_cast<int64_t>(*known);
    if (d < 0) {
      nodeError(node) << "depth " << d << " is negative";
      return failure();
    }
    depth = b.getIndexAttr(d);
  } else {
    declareErrorHook(b, node);
    Value d = toIndex(b, loc, onlyElement(b, loc, toSignless(b, loc, *depthIn)));
    Value negative = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, d,
                                           indexConst(b, loc, 0));
    reportIf(b, loc, negative, kErrorShapeMismatch);
    depth = arith::SelectOp::create(b, loc, negative, indexConst(b, loc, 0), d)
                .getResult();
  }
  Value vals = toSignless(b, loc, *values);
  Value off = tensor::ExtractOp::create(b, loc, vals,
                                        ValueRange{indexConst(b, loc, 0)});
  Value on = tensor::ExtractOp::create(b, loc, vals,
                                       ValueRange{indexConst(b, loc, 1)});
  Value depthIdx = getValueOrCreateConstantIndexOp(b, loc, depth);
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, loc, *indices);
  sizes.insert(sizes.begin() + axis, depth);
  Value init = emptyTensor(b, loc, sizes, typeOf(vals).getElementType());
  int64_t rank = inRank + 1;
  MLIRContext *ctx = b.getContext();
  SmallVector<AffineExpr> inExprs;
  for (int64_t d = 0; d < rank; ++d)
    if (d != axis)
      inExprs.push_back(getAffineDimExpr(d, ctx));
  SmallVector<AffineMap> maps = {AffineMap::get(rank, 0, inExprs, ctx),
                                 b.getMultiDimIdentityMap(rank)};
  Value idx = toSignless(b, loc, *indices);
  bool unsignedIdx = typeOf(*indices).getElementType().isUnsignedInteger();
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{init.getType()}, ValueRange{idx}, ValueRange{init},
      maps,
      SmallVector<utils::IteratorType>(rank, utils::IteratorType::parallel),
      [&](OpBuilder &nb, Location nl, ValueRange args) {
        Value i = args[0];
        if (isa<FloatType>(i.getType()))
          i = arith::FPToSIOp::create(nb, nl, nb.getI64Type(), i);
        else if (i.getType().getIntOrFloatBitWidth() < 64)
          i = unsignedIdx ? Value(arith::ExtUIOp::create(nb, nl,
                                                         nb.getI64Type(), i))
                          : Value(arith::ExtSIOp::create(nb, nl,
                                                         nb.getI64Type(), i));
        Value d64 =
            arith::IndexCastOp::create(nb, nl, nb.getI64Type(), depthIdx);
        Value zero64 = arith::ConstantIntOp::create(nb, nl, 0, 64);
        if (!unsignedIdx) {
          Value negative = arith::CmpIOp::create(
              nb, nl, arith::CmpIPredicate::slt, i, zero64);
          i = arith::SelectOp::create(nb, nl, negative,
                                      arith::AddIOp::create(nb, nl, i, d64), i);
        }
        Value j = arith::IndexCastOp::create(
            nb, nl, nb.getI64Type(), linalg::IndexOp::create(nb, nl, axis));
        Value hit =
            arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::eq, i, j);
        yield(nb, nl, arith::SelectOp::create(nb, nl, hit, on, off));
      });
  return SmallVector<Value>{generic.getResult(0)};
}

/// Tile-13..: out[i] = input[i mod dim] with dims multiplied by `repeats`
/// (constant or computed; a negative computed repeat is reported at run
/// time).
Values tile(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 2, 2)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "input");
  FailureOr<Value> repeatsIn = tensorOperand(node, 1, "repeats", 1);
  if (failed(x) || failed(repeatsIn))
    return failure();
  int64_t rank = typeOf(*x).getRank();
  Location loc = node.getLoc();
  std::optional<SmallVector<OpFoldResult>> repeats =
      shapeElements(b, loc, *repeatsIn);
  if (!repeats || (int64_t)repeats->size() != rank) {
    nodeError(node) << "repeats must be a 1-D integer tensor of length "
                    << rank << " whose entries are constants or computed "
                                "scalars, got "
                    << repeatsIn->getType();
    return failure();
  }
  declareErrorHook(b, node);
  SmallVector<OpFoldResult> sizes;
  for (int64_t d = 0; d < rank; ++d) {
    OpFoldResult r = (*repeats)[d];
    if (std::optional<int64_t> c = getConstantIntValue(r)) {
      if (*c < 0) {
        nodeError(node) << "repeats[" << d << "] = " << *c << " is negative";
        return failure();
      }
    } else {
      Value v = getValueOrCreateConstantIndexOp(b, loc, r);
      Value negative = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt,
                                             v, indexConst(b, loc, 0));
      reportIf(b, loc, negative, kErrorShapeMismatch);
      r = arith::SelectOp::create(b, loc, negative, indexConst(b, loc, 0), v)
              .getResult();
    }
    sizes.push_back(mulSizes(b, loc, tensor::getMixedSize(b, loc, *x, d), r));
  }
  Value data = toSignless(b, loc, *x);
  SmallVector<Value> dims;
  for (int64_t d = 0; d < rank; ++d)
    dims.push_back(getValueOrCreateConstantIndexOp(
        b, loc, tensor::getMixedSize(b, loc, data, d)));
  return SmallVector<Value>{gatherByIndices(
      b, loc, sizes, data, [&](OpBuilder &nb, Location nl, ValueRange indices) {
        SmallVector<Value> coords;
        for (int64_t d = 0; d < rank; ++d)
          coords.push_back(arith::RemUIOp::create(nb, nl, indices[d], dims[d]));
        return coords;
      })};
}

/// GatherND-12..: out[i..., rest...] = data[batch..., indices[i..., :],
/// rest...], the first batch_dims dims shared by data and indices; the
/// last dim of indices (m) must be static.
Values gatherND(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 2, 2)))
    return failure();
  FailureOr<Value> data = tensorOperand(node, 0, "data");
  FailureOr<Value> indices = tensorOperand(node, 1, "indices");
  FailureOr<int64_t> batchDims = intAttr(node, "batch_dims", 0);
  if (failed(data) || failed(indices) || failed(batchDims))
    return failure();
  int64_t r = typeOf(*data).getRank(), q = typeOf(*indices).getRank();
  int64_t bd = *batchDims;
  if (q < 1 || bd < 0 || bd >= std::min(r, q)) {
    nodeError(node) << "batch_dims " << bd << " is out of range for data of "
                    << "rank " << r << " and indices of rank " << q;
    return failure();
  }
  if (!typeOf(*indices).getElementType().isInteger(64)) {
    nodeError(node) << "indices must be int64, got " << indices->getType();
    return failure();
  }
  int64_t m = typeOf(*indices).getDimSize(q - 1);
  if (ShapedType::isDynamic(m) || m < 1 || bd + m > r) {
    nodeError(node) << "the last dim of indices must be static and in [1, "
                    << r - bd << "], got " << indices->getType();
    return failure();
  }
  Location loc = node.getLoc();
  declareErrorHook(b, node);
  // Batch dims agree (checked at run time where dynamic).
  Value idx = *indices;
  for (int64_t d = 0; d < bd; ++d)
    idx = requireSize(b, loc, idx, d, tensor::getMixedSize(b, loc, *data, d),
                      kErrorShapeMismatch);
  SmallVector<OpFoldResult> sizes;
  for (int64_t d = 0; d + 1 < q; ++d)
    sizes.push_back(tensor::getMixedSize(b, loc, idx, d));
  for (int64_t d = bd + m; d < r; ++d)
    sizes.push_back(tensor::getMixedSize(b, loc, *data, d));
  int64_t rank = sizes.size();
  Value src = toSignless(b, loc, *data);
  SmallVector<Value> bounds;
  for (int64_t d = 0; d < r; ++d)
    bounds.push_back(tensor::DimOp::create(b, loc, src, d));
  Value init = emptyTensor(b, loc, sizes, typeOf(src).getElementType());
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{init.getType()}, ValueRange{}, ValueRange{init},
      SmallVector<AffineMap>{b.getMultiDimIdentityMap(rank)},
      SmallVector<utils::IteratorType>(rank, utils::IteratorType::parallel),
      [&](OpBuilder &nb, Location nl, ValueRange) {
        SmallVector<Value> lead;
        for (int64_t d = 0; d + 1 < q; ++d)
          lead.push_back(linalg::IndexOp::create(nb, nl, d));
        SmallVector<Value> coords(lead.begin(), lead.begin() + bd);
        for (int64_t j = 0; j < m; ++j) {
          SmallVector<Value> at(lead);
          at.push_back(indexConst(nb, nl, j));
          Value raw = tensor::ExtractOp::create(nb, nl, idx, at);
          coords.push_back(wrappedIndex(nb, nl, raw, bounds[bd + j]));
        }
        for (int64_t d = q - 1; d < rank; ++d)
          coords.push_back(linalg::IndexOp::create(nb, nl, d));
        yield(nb, nl, tensor::ExtractOp::create(nb, nl, src, coords));
      });
  return SmallVector<Value>{generic.getResult(0)};
}

/// ScatterND-11..: a copy of data with updates[i..., rest...] written at
/// data[indices[i..., :], rest...], in order (reduction none, add, mul,
/// max, min). Sequential over the index tuples, as ONNX specifies.
Values scatterND(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 3, 3)))
    return failure();
  FailureOr<Value> data = tensorOperand(node, 0, "data");
  FailureOr<Value> indices = tensorOperand(node, 1, "indices");
  FailureOr<Value> updates = tensorOperand(node, 2, "updates");
  FailureOr<std::string> reduction = stringAttr(
      node, "reduction", {"none", "add", "mul", "max", "min"},
      StringRef("none"));
  if (failed(data) || failed(indices) || failed(updates) || failed(reduction))
    return failure();
  int64_t r = typeOf(*data).getRank(), q = typeOf(*indices).getRank();
  int64_t m = q ? typeOf(*indices).getDimSize(q - 1) : ShapedType::kDynamic;
  if (q < 1 || ShapedType::isDynamic(m) || m < 1 || m > r) {
    nodeError(node) << "the last dim of indices must be static and in [1, "
                    << r << "], got " << indices->getType();
    return failure();
  }
  if (!typeOf(*indices).getElementType().isInteger(64)) {
    nodeError(node) << "indices must be int64, got " << indices->getType();
    return failure();
  }
  if (typeOf(*updates).getRank() != q - 1 + r - m ||
      typeOf(*updates).getElementType() != typeOf(*data).getElementType()) {
    nodeError(node) << "updates must be " << q - 1 + r - m
                    << "-D with the data's element type, got "
                    << updates->getType();
    return failure();
  }
  Location loc = node.getLoc();
  declareErrorHook(b, node);
  Value src = toSignless(b, loc, *data);
  Value upd = toSignless(b, loc, *updates);
  // updates' shape is indices.shape[:-1] + data.shape[m:] (checked at run
  // time where dynamic).
  for (int64_t d = 0; d + 1 < q; ++d)
    upd = requireSize(b, loc, upd, d, tensor::getMixedSize(b, loc, *indices, d),
                      kErrorShapeMismatch);
  for (int64_t d = m; d < r; ++d)
    upd = requireSize(b, loc, upd, q - 1 + d - m,
                      tensor::getMixedSize(b, loc, src, d),
                      kErrorShapeMismatch);
  Type elt = typeOf(src).getElementType();
  bool isF = isa<FloatType>(elt);
  bool isU = typeOf(*data).getElementType().isUnsignedInteger();
  // The copy the updates go into.
  Value out = linalg::CopyOp::create(
                  b, loc, src,
                  emptyTensor(b, loc, tensor::getMixedSizes(b, loc, src), elt))
                  .getResult(0);
  SmallVector<Value> lead; // index tuple dims
  Value count = indexConst(b, loc, 1);
  for (int64_t d = 0; d + 1 < q; ++d) {
    lead.push_back(tensor::DimOp::create(b, loc, *indices, d));
    count = arith::MulIOp::create(b, loc, count, lead.back());
  }
  SmallVector<Value> bounds;
  for (int64_t d = 0; d < r; ++d)
    bounds.push_back(tensor::DimOp::create(b, loc, src, d));
  // The slice one tuple updates: [1] * m + data.shape[m:].
  SmallVector<OpFoldResult> sliceSizes(m, b.getIndexAttr(1));
  for (int64_t d = m; d < r; ++d)
    sliceSizes.push_back(tensor::getMixedSize(b, loc, src, d));
  SmallVector<OpFoldResult> updSizes(q - 1, b.getIndexAttr(1));
  for (int64_t d = m; d < r; ++d)
    updSizes.push_back(tensor::getMixedSize(b, loc, src, d));
  SmallVector<OpFoldResult> restSizes(sliceSizes.begin() + m,
                                     sliceSizes.end());
  // Both slices drop their leading unit dims (rank-reducing slices).
  auto restType = tensorTypeOf(restSizes, elt);
  SmallVector<OpFoldResult> ones(r, b.getIndexAttr(1));
  SmallVector<OpFoldResult> updOnes(q - 1 + r - m, b.getIndexAttr(1));
  auto loop = scf::ForOp::create(
      b, loc, indexConst(b, loc, 0), count, indexConst(b, loc, 1),
      ValueRange{out},
      [&](OpBuilder &nb, Location nl, Value t, ValueRange acc) {
        // Row-major coordinates of tuple t.
        SmallVector<Value> tc(q - 1);
        Value rest = t;
        for (int64_t d = q - 2; d >= 0; --d) {
          tc[d] = arith::RemUIOp::create(nb, nl, rest, lead[d]);
          rest = arith::DivUIOp::create(nb, nl, rest, lead[d]);
        }
        SmallVector<OpFoldResult> offsets;
        for (int64_t j = 0; j < m; ++j) {
          SmallVector<Value> at(tc);
          at.push_back(indexConst(nb, nl, j));
          Value raw = tensor::ExtractOp::create(nb, nl, *indices, at);
          offsets.push_back(wrappedIndex(nb, nl, raw, bounds[j]));
        }
        offsets.append(r - m, nb.getIndexAttr(0));
        SmallVector<OpFoldResult> updOffsets(tc.begin(), tc.end());
        updOffsets.append(r - m, nb.getIndexAttr(0));
        Value piece = tensor::ExtractSliceOp::create(
            nb, nl, restType, upd, updOffsets, updSizes, updOnes);
        if (*reduction != "none") {
          Value old = tensor::ExtractSliceOp::create(
              nb, nl, restType, acc[0], offsets, sliceSizes, ones);
          AffineMap id = nb.getMultiDimIdentityMap(r - m);
          piece =
              linalg::GenericOp::create(
                  nb, nl, TypeRange{piece.getType()}, ValueRange{old, piece},
                  ValueRange{emptyTensor(nb, nl, restSizes, elt)},
                  SmallVector<AffineMap>(3, id),
                  SmallVector<utils::IteratorType>(
                      r - m, utils::IteratorType::parallel),
                  [&](OpBuilder &gb, Location gl, ValueRange a) {
                    Value v;
                    StringRef red = *reduction;
                    if (red == "add")
                      v = isF ? Value(arith::AddFOp::create(gb, gl, a[0], a[1]))
                              : Value(arith::AddIOp::create(gb, gl, a[0], a[1]));
                    else if (red == "mul")
                      v = isF ? Value(arith::MulFOp::create(gb, gl, a[0], a[1]))
                              : Value(arith::MulIOp::create(gb, gl, a[0], a[1]));
                    else if (red == "max")
                      v = isF ? Value(arith::MaximumFOp::create(gb, gl, a[0],
                                                                a[1]))
                          : isU ? Value(arith::MaxUIOp::create(gb, gl, a[0], a[1]))
                              : Value(arith::MaxSIOp::create(gb, gl, a[0], a[1]));
                    else
                      v = isF ? Value(arith::MinimumFOp::create(gb, gl, a[0],
                                                                a[1]))
                          : isU ? Value(arith::MinUIOp::create(gb, gl, a[0], a[1]))
                              : Value(arith::MinSIOp::create(gb, gl, a[0], a[1]));
                    yield(gb, gl, v);
                  })
                  .getResult(0);
        }
        Value next = tensor::InsertSliceOp::create(nb, nl, piece, acc[0],
                                                   offsets, sliceSizes, ones);
        scf::YieldOp::create(nb, nl, ValueRange{next});
      });
  return SmallVector<Value>{loop.getResult(0)};
}

} // namespace

void mlir::moe::onnx_conv::populateStandardIndexHandlers(
    OnnxHandlerRegistry &r) {
  r.add("", "Flatten", 13, flatten);
  r.add("", "NonZero", 13, nonZero);
  r.add("", "OneHot", 11, oneHot);
  r.add("", "Tile", 13, tile);
  r.add("", "GatherND", 12, gatherND);
  r.add("", "ScatterND", 11, scatterND);
}

//===- StandardOpsReduce.cpp - ai.onnx reductions and contractions -----===//
//
// ReduceSum/Mean/Max/Min/Prod/L1/L2/SumSquare, Softmax, LogSoftmax, ArgMax,
// ArgMin, CumSum, Gemm, Pow, Einsum, GatherElements, ScatterElements, Gelu.
//
//===----------------------------------------------------------------------===//

#include "HandlerUtils.h"
#include "ShapeValues.h"
#include "moe/Utils/BuildUtils.h"
#include "moe/Utils/RuntimeErrors.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::build;
using namespace mlir::moe::onnx_conv;

namespace {

/// The lowest (`highest`: the highest) value of a float (an infinity),
/// signed, unsigned (its signless twin's bits) or bool type: the identity
/// of max (min), and what it gives over no values.
Value extreme(OpBuilder &b, Location loc, Type t, bool highest,
              bool isUnsigned = false) {
  if (auto f = dyn_cast<FloatType>(t))
    return arith::ConstantOp::create(
        b, loc,
        b.getFloatAttr(t, APFloat::getInf(f.getFloatSemantics(),
                                          /*Negative=*/!highest)));
  unsigned w = t.getIntOrFloatBitWidth();
  APInt v = isUnsigned || w == 1
                ? (highest ? APInt::getMaxValue(w) : APInt::getMinValue(w))
                : (highest ? APInt::getSignedMaxValue(w)
                           : APInt::getSignedMinValue(w));
  return arith::ConstantOp::create(b, loc, b.getIntegerAttr(t, v));
}

enum class ReduceKind { Sum, Mean, Max, Min, Prod, L1, L2, SumSquare };

/// Reduces `x` over `reduced` dims; the result keeps unit dims when
/// `keepDims`. Unsigned integers are reduced on their signless bits (max
/// and min compare them unsigned); bools (max, min) as unsigned 1-bit
/// integers: max is any, min is all. Over no values the result is the
/// reduction's identity: 0, 1 for Prod, the lowest value for Max and the
/// highest for Min (ONNX-18's rule).
Value reduce(OpBuilder &b, Location loc, Value xIn, ArrayRef<bool> reduced,
             bool keepDims, ReduceKind kind) {
  Type given = typeOf(xIn).getElementType();
  bool isU = given.isUnsignedInteger() || given.isInteger(1);
  Value x = toSignless(b, loc, xIn);
  RankedTensorType t = typeOf(x);
  int64_t rank = t.getRank();
  Type elt = t.getElementType();
  MLIRContext *ctx = b.getContext();
  SmallVector<OpFoldResult> sizes, keptSizes;
  SmallVector<AffineExpr> outExprs;
  SmallVector<utils::IteratorType> iterators;
  OpFoldResult count = b.getIndexAttr(1);
  for (int64_t d = 0; d < rank; ++d) {
    OpFoldResult size = tensor::getMixedSize(b, loc, x, d);
    if (reduced[d]) {
      iterators.push_back(utils::IteratorType::reduction);
      count = mulSizes(b, loc, count, size);
      keptSizes.push_back(b.getIndexAttr(1));
    } else {
      iterators.push_back(utils::IteratorType::parallel);
      sizes.push_back(size);
      keptSizes.push_back(size);
      outExprs.push_back(getAffineDimExpr(d, ctx));
    }
  }
  Value identity =
      kind == ReduceKind::Max ? extreme(b, loc, elt, false, isU)
      : kind == ReduceKind::Min
          ? extreme(b, loc, elt, true, isU)
          : scalar(b, loc, elt, kind == ReduceKind::Prod ? 1.0 : 0.0);
  Value init =
      linalg::FillOp::create(b, loc, identity, emptyTensor(b, loc, sizes, elt))
          .getResult(0);
  bool isF = isa<FloatType>(elt);
  Value out =
      linalg::GenericOp::create(
          b, loc, TypeRange{init.getType()}, ValueRange{x}, ValueRange{init},
          SmallVector<AffineMap>{b.getMultiDimIdentityMap(rank),
                                 AffineMap::get(rank, 0, outExprs, ctx)},
          iterators,
          [&](OpBuilder &nb, Location nl, ValueRange a) {
            Value e = a[0], acc = a[1], r;
            switch (kind) {
            case ReduceKind::Max:
              r = isF   ? Value(arith::MaximumFOp::create(nb, nl, e, acc))
                  : isU ? Value(arith::MaxUIOp::create(nb, nl, e, acc))
                        : Value(arith::MaxSIOp::create(nb, nl, e, acc));
              break;
            case ReduceKind::Min:
              r = isF   ? Value(arith::MinimumFOp::create(nb, nl, e, acc))
                  : isU ? Value(arith::MinUIOp::create(nb, nl, e, acc))
                        : Value(arith::MinSIOp::create(nb, nl, e, acc));
              break;
            case ReduceKind::Prod:
              r = isF ? Value(arith::MulFOp::create(nb, nl, e, acc))
                      : Value(arith::MulIOp::create(nb, nl, e, acc));
              break;
            default:
              if (kind == ReduceKind::L1 && !isU)
                e = isF ? Value(math::AbsFOp::create(nb, nl, e))
                        : Value(math::AbsIOp::create(nb, nl, e));
              if (kind == ReduceKind::L2 || kind == ReduceKind::SumSquare)
                e = isF ? Value(arith::MulFOp::create(nb, nl, e, e))
                        : Value(arith::MulIOp::create(nb, nl, e, e));
              r = isF ? Value(arith::AddFOp::create(nb, nl, e, acc))
                      : Value(arith::AddIOp::create(nb, nl, e, acc));
            }
            yield(nb, nl, r);
          })
          .getResult(0);
  auto perElement = [&](function_ref<Value(OpBuilder &, Location, Value)> fn) {
    int64_t outRank = sizes.size();
    AffineMap id = b.getMultiDimIdentityMap(outRank);
    return linalg::GenericOp::create(
               b, loc, TypeRange{out.getType()}, ValueRange{out},
               ValueRange{emptyTensor(b, loc, sizes, elt)},
               SmallVector<AffineMap>{id, id},
               SmallVector<utils::IteratorType>(outRank,
                                                utils::IteratorType::parallel),
               [&](OpBuilder &nb, Location nl, ValueRange a) {
                 yield(nb, nl, fn(nb, nl, a[0]));
               })
        .getResult(0);
  };
  if (kind == ReduceKind::Mean) {
    Value n = getValueOrCreateConstantIndexOp(b, loc, count);
    Value nI = arith::IndexCastOp::create(b, loc, b.getI64Type(), n);
    // Integers: the sum divided in 64 bits (a count above the element
    // type's range stays exact) by the count, or by 1 over no values (the
    // sum is 0 then; a division by zero would trap).
    Value divisor =
        isF ? Value(arith::UIToFPOp::create(b, loc, elt, nI))
            : Value(arith::MaxUIOp::create(
                  b, loc, nI,
                  arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(1))));
    unsigned width = isF ? 0 : elt.getIntOrFloatBitWidth();
    out = perElement([&](OpBuilder &nb, Location nl, Value v) -> Value {
      if (isF)
        return arith::DivFOp::create(nb, nl, v, divisor);
      Type i64 = nb.getI64Type();
      if (width < 64)
        v = isU ? Value(arith::ExtUIOp::create(nb, nl, i64, v))
                : Value(arith::ExtSIOp::create(nb, nl, i64, v));
      Value q = isU ? Value(arith::DivUIOp::create(nb, nl, v, divisor))
                    : Value(arith::DivSIOp::create(nb, nl, v, divisor));
      return width < 64 ? Value(arith::TruncIOp::create(nb, nl, elt, q)) : q;
    });
  }
  if (kind == ReduceKind::L2)
    out = perElement([](OpBuilder &nb, Location nl, Value v) -> Value {
      return math::SqrtOp::create(nb, nl, v);
    });
  out = toElementType(b, loc, out, given);
  if (!keepDims)
    return out;
  // Reinsert the reduced dims as units.
  return expand(b, loc, out, foldUnitDims(rank, reduced), keptSizes);
}

/// ReduceSum-13 (axes input), the others -13 (axes attribute), all -18
/// (axes input); keepdims, noop_with_empty_axes. L2 (a square root) takes
/// floats; Max and Min bools too (-20), the others numbers.
template <ReduceKind Kind, bool AxesAsInput>
Values reduceOp(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 1, AxesAsInput ? 2 : 1)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "data");
  FailureOr<int64_t> keep = intAttr(node, "keepdims", 1);
  FailureOr<int64_t> noop = intAttr(node, "noop_with_empty_axes", 0);
  if (failed(x) || failed(keep) || failed(noop))
    return failure();
  Type elt = typeOf(*x).getElementType();
  bool boolOk = Kind == ReduceKind::Max || Kind == ReduceKind::Min;
  bool floatOnly = Kind == ReduceKind::L2;
  if (!elt.isIntOrFloat() || (elt.isInteger(1) && !boolOk) ||
      (floatOnly && !isa<FloatType>(elt))) {
    nodeError(node) << "expected "
                    << (floatOnly ? "a float"
                        : boolOk  ? "a numeric or bool"
                                  : "a numeric")
                    << " input, got " << x->getType();
    return failure();
  }
  SmallVector<int64_t> axes;
  if (AxesAsInput) {
    FailureOr<SmallVector<int64_t>> given =
        constantIntsOperand(node, 1, "axes", SmallVector<int64_t>{});
    if (failed(given))
      return failure();
    axes = *given;
  } else if (auto a = dyn_cast_or_null<DenseI64ArrayAttr>(
                 node.getNodeAttributes().get("axes"))) {
    axes.assign(a.asArrayRef().begin(), a.asArrayRef().end());
  }
  int64_t rank = typeOf(*x).getRank();
  // No axes with noop_with_empty_axes: nothing is reduced, but the
  // per-element step still applies (the ONNX reference's ReduceL1-18,
  // ReduceL2-18, ReduceSumSquare-18: |x|, sqrt(x * x), x * x).
  if (axes.empty() && *noop) {
    if (Kind != ReduceKind::L1 && Kind != ReduceKind::L2 &&
        Kind != ReduceKind::SumSquare)
      return SmallVector<Value>{*x};
    bool isF = isa<FloatType>(elt), isU = elt.isUnsignedInteger();
    return elementwise(
        node, b, {*x}, [&](OpBuilder &nb, Location l, ValueRange a) -> Value {
          Value e = a[0];
          if (Kind == ReduceKind::L1)
            return isU   ? e
                   : isF ? Value(math::AbsFOp::create(nb, l, e))
                         : Value(math::AbsIOp::create(nb, l, e));
          Value sq = isF ? Value(arith::MulFOp::create(nb, l, e, e))
                         : Value(arith::MulIOp::create(nb, l, e, e));
          return Kind == ReduceKind::L2 ? Value(math::SqrtOp::create(nb, l, sq))
                                        : sq;
        });
  }
  SmallVector<bool> reduced(rank, axes.empty());
  for (int64_t a : axes) {
    FailureOr<int64_t> d = normalizeAxis(node, a, rank);
    if (failed(d))
      return failure();
    reduced[*d] = true;
  }
  return SmallVector<Value>{
      reduce(b, node.getLoc(), *x, reduced, *keep != 0, Kind)};
}

/// Softmax-13 / LogSoftmax-13 along one axis.
template <bool Log>
Values softmax(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 1, 1)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "input");
  FailureOr<int64_t> axisAttr = intAttr(node, "axis", -1);
  if (failed(x) || failed(axisAttr))
    return failure();
  if (!isFloat(*x)) {
    nodeError(node) << "expected a float input, got " << x->getType();
    return failure();
  }
  int64_t rank = typeOf(*x).getRank();
  FailureOr<int64_t> axis = normalizeAxis(node, *axisAttr, rank);
  if (failed(axis))
    return failure();
  Location loc = node.getLoc();
  SmallVector<bool> reduced(rank, false);
  reduced[*axis] = true;
  Value max = reduce(b, loc, *x, reduced, /*keepDims=*/true, ReduceKind::Max);
  FailureOr<SmallVector<Value>> shifted = elementwise(
      node, b, {*x, max}, [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
        return arith::SubFOp::create(nb, nl, a[0], a[1]);
      });
  FailureOr<SmallVector<Value>> e = elementwise(
      node, b, {(*shifted)[0]},
      [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
        return math::ExpOp::create(nb, nl, a[0]);
      });
  Value sum = reduce(b, loc, (*e)[0], reduced, true, ReduceKind::Sum);
  if (Log)
    return elementwise(node, b, {(*shifted)[0], sum},
                       [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                         return arith::SubFOp::create(
                             nb, nl, a[0], math::LogOp::create(nb, nl, a[1]));
                       });
  return elementwise(node, b, {(*e)[0], sum},
                     [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                       return arith::DivFOp::create(nb, nl, a[0], a[1]);
                     });
}

/// ArgMax-13 and ArgMin-13: int64 indices of the first or last maximum
/// (minimum) (select_last_index); unsigned integers compared unsigned.
template <bool IsMax> Values argExtreme(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 1, 1)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "data");
  FailureOr<int64_t> axisAttr = intAttr(node, "axis", 0);
  FailureOr<int64_t> keep = intAttr(node, "keepdims", 1);
  FailureOr<int64_t> last = intAttr(node, "select_last_index", 0);
  if (failed(x) || failed(axisAttr) || failed(keep) || failed(last))
    return failure();
  RankedTensorType t = typeOf(*x);
  int64_t rank = t.getRank();
  FailureOr<int64_t> axis = normalizeAxis(node, *axisAttr, rank);
  if (failed(axis))
    return failure();
  Location loc = node.getLoc();
  MLIRContext *ctx = b.getContext();
  Value xs = toSignless(b, loc, *x);
  Type elt = typeOf(xs).getElementType();
  bool isF = isa<FloatType>(elt);
  bool isU = t.getElementType().isUnsignedInteger();
  if (!elt.isIntOrFloat() || elt.isInteger(1)) {
    nodeError(node) << "expected a numeric input, got " << x->getType();
    return failure();
  }
  SmallVector<OpFoldResult> sizes, keptSizes;
  SmallVector<AffineExpr> outExprs;
  SmallVector<utils::IteratorType> iterators;
  for (int64_t d = 0; d < rank; ++d) {
    OpFoldResult size = tensor::getMixedSize(b, loc, *x, d);
    if (d == *axis) {
      iterators.push_back(utils::IteratorType::reduction);
      keptSizes.push_back(b.getIndexAttr(1));
      continue;
    }
    iterators.push_back(utils::IteratorType::parallel);
    sizes.push_back(size);
    keptSizes.push_back(size);
    outExprs.push_back(getAffineDimExpr(d, ctx));
  }
  Value values =
      linalg::FillOp::create(b, loc, extreme(b, loc, elt, !IsMax, isU),
                             emptyTensor(b, loc, sizes, elt))
          .getResult(0);
  Value indices =
      linalg::FillOp::create(
          b, loc,
          Value(arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(-1))),
          emptyTensor(b, loc, sizes, b.getI64Type()))
          .getResult(0);
  AffineMap outMap = AffineMap::get(rank, 0, outExprs, ctx);
  bool selectLast = *last != 0;
  int64_t a = *axis;
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{values.getType(), indices.getType()},
      ValueRange{xs}, ValueRange{values, indices},
      SmallVector<AffineMap>{b.getMultiDimIdentityMap(rank), outMap, outMap},
      iterators, [&](OpBuilder &nb, Location nl, ValueRange v) {
        Value i = arith::IndexCastOp::create(
            nb, nl, nb.getI64Type(), linalg::IndexOp::create(nb, nl, a));
        using FP = arith::CmpFPredicate;
        using IP = arith::CmpIPredicate;
        FP fp = IsMax ? (selectLast ? FP::OGE : FP::OGT)
                      : (selectLast ? FP::OLE : FP::OLT);
        IP ip = isU ? (IsMax ? (selectLast ? IP::uge : IP::ugt)
                             : (selectLast ? IP::ule : IP::ult))
                    : (IsMax ? (selectLast ? IP::sge : IP::sgt)
                             : (selectLast ? IP::sle : IP::slt));
        Value better =
            isF ? Value(arith::CmpFOp::create(nb, nl, fp, v[0], v[1]))
                : Value(arith::CmpIOp::create(nb, nl, ip, v[0], v[1]));
        Value first = arith::CmpIOp::create(
            nb, nl, arith::CmpIPredicate::slt, v[2],
            arith::ConstantOp::create(nb, nl, nb.getI64IntegerAttr(0)));
        Value take = arith::OrIOp::create(nb, nl, better, first);
        linalg::YieldOp::create(
            nb, nl,
            ValueRange{arith::SelectOp::create(nb, nl, take, v[0], v[1]),
                       arith::SelectOp::create(nb, nl, take, i, v[2])});
      });
  Value out = generic.getResult(1);
  if (*keep) {
    SmallVector<bool> reduced(rank, false);
    reduced[a] = true;
    out = expand(b, loc, out, foldUnitDims(rank, reduced), keptSizes);
  }
  return SmallVector<Value>{out};
}

/// CumSum-14: axis a constant input; exclusive and reverse attributes.
Values cumsum(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 2, 2)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "x");
  FailureOr<SmallVector<int64_t>> axisIn = constantIntsOperand(node, 1, "axis");
  FailureOr<int64_t> exclusive = intAttr(node, "exclusive", 0);
  FailureOr<int64_t> reverse = intAttr(node, "reverse", 0);
  if (failed(x) || failed(axisIn) || failed(exclusive) || failed(reverse))
    return failure();
  RankedTensorType t = typeOf(*x);
  int64_t rank = t.getRank();
  if (axisIn->size() != 1) {
    nodeError(node) << "axis must hold one value";
    return failure();
  }
  FailureOr<int64_t> axis = normalizeAxis(node, (*axisIn)[0], rank);
  if (failed(axis))
    return failure();
  // out[.., i, ..] = Σ_j x[.., j, ..] over j <= i (variants by flags): an
  // extra reduction loop j.
  Location loc = node.getLoc();
  MLIRContext *ctx = b.getContext();
  Type elt = t.getElementType();
  bool isF = isa<FloatType>(elt);
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, loc, *x);
  SmallVector<AffineExpr> inExprs;
  for (int64_t d = 0; d < rank; ++d)
    inExprs.push_back(getAffineDimExpr(d == *axis ? rank : d, ctx));
  Value init = linalg::FillOp::create(b, loc, scalar(b, loc, elt, 0.0),
                                      emptyTensor(b, loc, sizes, elt))
                   .getResult(0);
  SmallVector<utils::IteratorType> iterators(rank,
                                             utils::IteratorType::parallel);
  iterators.push_back(utils::IteratorType::reduction);
  int64_t a = *axis;
  bool excl = *exclusive, rev = *reverse;
  Value out =
      linalg::GenericOp::create(
          b, loc, TypeRange{init.getType()}, ValueRange{*x}, ValueRange{init},
          SmallVector<AffineMap>{AffineMap::get(rank + 1, 0, inExprs, ctx),
                                 AffineMap::getMultiDimIdentityMap(rank + 1,
                                                                   ctx)
                                     .dropResult(rank)},
          iterators,
          [&](OpBuilder &nb, Location nl, ValueRange v) {
            Value i = linalg::IndexOp::create(nb, nl, a);
            Value j = linalg::IndexOp::create(nb, nl, rank);
            arith::CmpIPredicate p =
                rev ? (excl ? arith::CmpIPredicate::sgt
                            : arith::CmpIPredicate::sge)
                    : (excl ? arith::CmpIPredicate::slt
                            : arith::CmpIPredicate::sle);
            Value in = arith::CmpIOp::create(nb, nl, p, j, i);
            Value sum = isF ? Value(arith::AddFOp::create(nb, nl, v[1], v[0]))
                            : Value(arith::AddIOp::create(nb, nl, v[1], v[0]));
            yield(nb, nl, arith::SelectOp::create(nb, nl, in, sum, v[1]));
          })
          .getResult(0);
  return SmallVector<Value>{out};
}

/// Gemm-13: alpha * A' @ B' + beta * C (C broadcast), A' and B' optionally
/// transposed.
Values gemm(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 2, 3)))
    return failure();
  FailureOr<Value> a = tensorOperand(node, 0, "A", 2);
  FailureOr<Value> bm = tensorOperand(node, 1, "B", 2);
  FailureOr<Value> c = tensorOperand(node, 2, "C", std::nullopt, true);
  FailureOr<double> alpha = floatAttr(node, "alpha", 1.0);
  FailureOr<double> beta = floatAttr(node, "beta", 1.0);
  FailureOr<int64_t> ta = intAttr(node, "transA", 0);
  FailureOr<int64_t> tb = intAttr(node, "transB", 0);
  if (failed(a) || failed(bm) || failed(c) || failed(alpha) || failed(beta) ||
      failed(ta) || failed(tb))
    return failure();
  if (!isFloat(*a)) {
    nodeError(node) << "expected float inputs, got " << a->getType();
    return failure();
  }
  Location loc = node.getLoc();
  std::string spec = std::string(*ta ? "km" : "mk") + "," +
                     (*tb ? "nk" : "kn") + "->mn";
  SmallVector<OpFoldResult> sizes = {
      tensor::getMixedSize(b, loc, *a, *ta ? 1 : 0),
      tensor::getMixedSize(b, loc, *bm, *tb ? 0 : 1)};
  Value y = contract(b, loc, spec, *a, *bm, sizes);
  Type elt = typeOf(*a).getElementType();
  double al = *alpha, be = *beta;
  if (al != 1.0) {
    FailureOr<SmallVector<Value>> s = elementwise(
        node, b, {y}, [&](OpBuilder &nb, Location nl, ValueRange v) -> Value {
          return arith::MulFOp::create(nb, nl, v[0], scalar(nb, nl, elt, al));
        });
    y = (*s)[0];
  }
  if (*c) {
    FailureOr<SmallVector<Value>> s = elementwise(
        node, b, {y, *c}, [&](OpBuilder &nb, Location nl, ValueRange v) -> Value {
          return arith::AddFOp::create(
              nb, nl, v[0],
              arith::MulFOp::create(nb, nl, v[1], scalar(nb, nl, elt, be)));
        });
    if (failed(s))
      return failure();
    y = (*s)[0];
  }
  return SmallVector<Value>{y};
}

/// Pow-15: float base (any exponent type) or integer base and exponent.
/// A float base to a constant exponent of 2 or 3 is `x * x` or `x * x * x`,
/// as ONNX Runtime computes it (RMSNorm's `x.pow(2)` is in every Hugging
/// Face export; `powf` per element cost 1.5 ms of a 148 ms OLMoE forward,
/// docs/performance.md). `x * x` is the correctly rounded square, so equal
/// to `powf`; the cube rounds twice, as ONNX Runtime's does. The operand
/// stays in the elementwise op, so broadcasting is unchanged.
Values pow(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 2, 2)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "X");
  FailureOr<Value> y = tensorOperand(node, 1, "Y");
  if (failed(x) || failed(y))
    return failure();
  Type xt = typeOf(*x).getElementType();
  bool yUnsigned = typeOf(*y).getElementType().isUnsignedInteger();
  std::optional<double> known = constantScalar(*y);
  int power =
      known && (*known == 2.0 || *known == 3.0) ? static_cast<int>(*known) : 0;
  return elementwise(
      node, b, {*x, *y}, [&](OpBuilder &nb, Location nl, ValueRange v) -> Value {
        Value base = v[0], e = v[1];
        if (isa<FloatType>(xt) && power) {
          Value sq = arith::MulFOp::create(nb, nl, base, base);
          return power == 2 ? sq : arith::MulFOp::create(nb, nl, sq, base);
        }
        if (isa<FloatType>(xt)) {
          if (!isa<FloatType>(e.getType()))
            e = yUnsigned ? Value(arith::UIToFPOp::create(nb, nl, xt, e))
                          : Value(arith::SIToFPOp::create(nb, nl, xt, e));
          else if (e.getType() != xt)
            e = e.getType().getIntOrFloatBitWidth() < xt.getIntOrFloatBitWidth()
                    ? Value(arith::ExtFOp::create(nb, nl, xt, e))
                    : Value(arith::TruncFOp::create(nb, nl, xt, e));
          return math::PowFOp::create(nb, nl, base, e);
        }
        Type it = base.getType();
        if (isa<FloatType>(e.getType())) {
          Value fb = arith::SIToFPOp::create(nb, nl, e.getType(), base);
          return arith::FPToSIOp::create(
              nb, nl, it, math::PowFOp::create(nb, nl, fb, e));
        }
        if (e.getType() != it)
          e = e.getType().getIntOrFloatBitWidth() < it.getIntOrFloatBitWidth()
                  ? Value(arith::ExtSIOp::create(nb, nl, it, e))
                  : Value(arith::TruncIOp::create(nb, nl, it, e));
        return math::IPowIOp::create(nb, nl, base, e);
      });
}

/// Einsum-12: one or two float operands, each letter at most once per
/// operand (no diagonals), explicit or implicit output.
Values einsum(onnxir::NodeOp node, RewriterBase &b) {
  FailureOr<std::string> eq = stringAttr(node, "equation", {});
  if (failed(eq) || failed(checkOperandCount(node, 1, 2)))
    return failure();
  std::string spec;
  for (char c : *eq)
    if (c != ' ')
      spec.push_back(c);
  if (spec.find("...") != std::string::npos) {
    nodeError(node) << "ellipsis in equation '" << *eq << "' is not supported";
    return failure();
  }
  StringRef inputs = spec, output;
  bool implicit = spec.find("->") == std::string::npos;
  if (!implicit)
    std::tie(inputs, output) = StringRef(spec).split("->");
  SmallVector<StringRef> terms;
  inputs.split(terms, ',');
  if (terms.size() != node.getInputs().size()) {
    nodeError(node) << "equation '" << *eq << "' names " << terms.size()
                    << " operands, the node has " << node.getInputs().size();
    return failure();
  }
  std::string implicitOut;
  if (implicit) {
    std::map<char, int> count;
    for (StringRef t : terms)
      for (char c : t)
        ++count[c];
    for (auto [c, n] : count)
      if (n == 1)
        implicitOut.push_back(c);
    output = implicitOut;
  }
  SmallVector<Value> operands;
  for (auto [i, term] : llvm::enumerate(terms)) {
    FailureOr<Value> v = tensorOperand(node, i, "Inputs", term.size());
    if (failed(v))
      return failure();
    if (!isFloat(*v)) {
      nodeError(node) << "expected float operands, got " << v->getType();
      return failure();
    }
    llvm::SmallDenseSet<char> seen;
    for (char c : term)
      if (!seen.insert(c).second) {
        nodeError(node) << "repeated subscript '" << c << "' in '" << term
                        << "' (diagonals) is not supported";
        return failure();
      }
    operands.push_back(*v);
  }
  // Loops: output letters, then the summed ones.
  std::string letters = output.str();
  for (StringRef t : terms)
    for (char c : t)
      if (letters.find(c) == std::string::npos)
        letters.push_back(c);
  Location loc = node.getLoc();
  MLIRContext *ctx = b.getContext();
  SmallVector<OpFoldResult> sizes;
  for (char c : output) {
    OpFoldResult size;
    for (auto [i, t] : llvm::enumerate(terms))
      if (size_t p = t.find(c); p != StringRef::npos) {
        size = tensor::getMixedSize(b, loc, operands[i], p);
        break;
      }
    if (!size) {
      nodeError(node) << "output subscript '" << c << "' is in no operand";
      return failure();
    }
    sizes.push_back(size);
  }
  SmallVector<AffineMap> maps;
  for (StringRef t : terms) {
    SmallVector<AffineExpr> exprs;
    for (char c : t)
      exprs.push_back(getAffineDimExpr(letters.find(c), ctx));
    maps.push_back(AffineMap::get(letters.size(), 0, exprs, ctx));
  }
  SmallVector<AffineExpr> outExprs;
  for (char c : output)
    outExprs.push_back(getAffineDimExpr(letters.find(c), ctx));
  maps.push_back(AffineMap::get(letters.size(), 0, outExprs, ctx));
  SmallVector<utils::IteratorType> iterators;
  for (size_t i = 0; i < letters.size(); ++i)
    iterators.push_back(i < output.size() ? utils::IteratorType::parallel
                                          : utils::IteratorType::reduction);
  Type elt = typeOf(operands[0]).getElementType();
  Value init = filledTensor(b, loc, sizes, elt, 0.0);
  Value out = linalg::GenericOp::create(
                  b, loc, TypeRange{init.getType()}, operands,
                  ValueRange{init}, maps, iterators,
                  [&](OpBuilder &nb, Location nl, ValueRange v) {
                    Value p = v[0];
                    for (size_t i = 1; i + 1 < v.size(); ++i)
                      p = arith::MulFOp::create(nb, nl, p, v[i]);
                    yield(nb, nl, arith::AddFOp::create(nb, nl, v.back(), p));
                  })
                  .getResult(0);
  return SmallVector<Value>{out};
}

/// Reads data at the coordinates of the current iteration with dim `axis`
/// replaced by `index` (wrapped if negative).
Value extractAlong(OpBuilder &b, Location loc, Value data, int64_t axis,
                   Value index, ArrayRef<Value> coords) {
  Value extent = tensor::DimOp::create(b, loc, data, axis);
  Value i = wrappedIndex(b, loc, index, extent);
  SmallVector<Value> at(coords);
  at[axis] = i;
  return tensor::ExtractOp::create(b, loc, data, at);
}

/// GatherElements-13.
Values gatherElements(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 2, 2)))
    return failure();
  FailureOr<Value> data = tensorOperand(node, 0, "data");
  FailureOr<Value> idx = tensorOperand(node, 1, "indices");
  FailureOr<int64_t> axisAttr = intAttr(node, "axis", 0);
  if (failed(data) || failed(idx) || failed(axisAttr))
    return failure();
  int64_t rank = typeOf(*data).getRank();
  if (typeOf(*idx).getRank() != rank) {
    nodeError(node) << "indices must have the data's rank " << rank;
    return failure();
  }
  FailureOr<int64_t> axis = normalizeAxis(node, *axisAttr, rank);
  if (failed(axis))
    return failure();
  Location loc = node.getLoc();
  declareErrorHook(b, node);
  Value init = emptyTensor(b, loc, tensor::getMixedSizes(b, loc, *idx),
                           typeOf(*data).getElementType());
  AffineMap id = b.getMultiDimIdentityMap(rank);
  Value source = *data;
  int64_t a = *axis;
  return SmallVector<Value>{
      linalg::GenericOp::create(
          b, loc, TypeRange{init.getType()}, ValueRange{*idx},
          ValueRange{init}, SmallVector<AffineMap>{id, id},
          SmallVector<utils::IteratorType>(rank,
                                           utils::IteratorType::parallel),
          [&](OpBuilder &nb, Location nl, ValueRange v) {
            SmallVector<Value> coords;
            for (int64_t d = 0; d < rank; ++d)
              coords.push_back(linalg::IndexOp::create(nb, nl, d));
            yield(nb, nl, extractAlong(nb, nl, source, a, v[0], coords));
          })
          .getResult(0)};
}

/// ScatterElements-13/16/18: a loop nest over the indices writing (or
/// reducing: add, mul, max, min) updates into a copy of data.
Values scatterElements(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 3, 3)))
    return failure();
  FailureOr<Value> data = tensorOperand(node, 0, "data");
  FailureOr<Value> idx = tensorOperand(node, 1, "indices");
  FailureOr<Value> upd = tensorOperand(node, 2, "updates");
  FailureOr<int64_t> axisAttr = intAttr(node, "axis", 0);
  FailureOr<std::string> reduction = stringAttr(
      node, "reduction", {"none", "add", "mul", "max", "min"},
      StringRef("none"));
  if (failed(data) || failed(idx) || failed(upd) || failed(axisAttr) ||
      failed(reduction))
    return failure();
  int64_t rank = typeOf(*data).getRank();
  if (typeOf(*idx).getRank() != rank || typeOf(*upd).getRank() != rank) {
    nodeError(node) << "data, indices and updates must share a rank";
    return failure();
  }
  FailureOr<int64_t> axis = normalizeAxis(node, *axisAttr, rank);
  if (failed(axis))
    return failure();
  Location loc = node.getLoc();
  declareErrorHook(b, node);
  Value zero = arith::ConstantIndexOp::create(b, loc, 0);
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  SmallVector<Value> lbs(rank, zero), steps(rank, one), ubs;
  for (int64_t d = 0; d < rank; ++d)
    ubs.push_back(tensor::DimOp::create(b, loc, *idx, d));
  Type elt = typeOf(*data).getElementType();
  bool isF = isa<FloatType>(elt);
  std::string kind = *reduction;
  int64_t a = *axis;
  Value source = *data, indices = *idx, updates = *upd;
  scf::LoopNest nest = scf::buildLoopNest(
      b, loc, lbs, ubs, steps, ValueRange{source},
      [&](OpBuilder &nb, Location nl, ValueRange ivs,
          ValueRange iter) -> scf::ValueVector {
        Value acc = iter[0];
        Value i = tensor::ExtractOp::create(nb, nl, indices, ivs);
        Value u = tensor::ExtractOp::create(nb, nl, updates, ivs);
        Value extent = tensor::DimOp::create(nb, nl, acc, a);
        Value pos = wrappedIndex(nb, nl, i, extent);
        SmallVector<Value> at(ivs.begin(), ivs.end());
        at[a] = pos;
        Value v = u;
        if (kind != "none") {
          Value old = tensor::ExtractOp::create(nb, nl, acc, at);
          if (kind == "add")
            v = isF ? Value(arith::AddFOp::create(nb, nl, old, u))
                    : Value(arith::AddIOp::create(nb, nl, old, u));
          else if (kind == "mul")
            v = isF ? Value(arith::MulFOp::create(nb, nl, old, u))
                    : Value(arith::MulIOp::create(nb, nl, old, u));
          else if (kind == "max")
            v = isF ? Value(arith::MaximumFOp::create(nb, nl, old, u))
                    : Value(arith::MaxSIOp::create(nb, nl, old, u));
          else
            v = isF ? Value(arith::MinimumFOp::create(nb, nl, old, u))
                    : Value(arith::MinSIOp::create(nb, nl, old, u));
        }
        return {tensor::InsertOp::create(nb, nl, v, acc, at)};
      });
  return SmallVector<Value>{nest.results[0]};
}

/// TopK-11..: K (constant input) largest or smallest along `axis`, sorted;
/// ties go to the lower index. K passes of a masked arg-max (O(K n)), each
/// in an scf.for iteration.
Values topk(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 2, 2)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "X");
  FailureOr<Value> kIn = tensorOperand(node, 1, "K");
  FailureOr<int64_t> axisAttr = intAttr(node, "axis", -1);
  FailureOr<int64_t> largestAttr = intAttr(node, "largest", 1);
  if (failed(x) || failed(kIn) || failed(axisAttr) || failed(largestAttr))
    return failure();
  RankedTensorType t = typeOf(*x);
  int64_t rank = t.getRank();
  FailureOr<int64_t> axis = normalizeAxis(node, *axisAttr, rank);
  if (failed(axis))
    return failure();
  Location loc = node.getLoc();
  // K: a constant, or computed (a shape value such as GraniteMoE's token
  // count, or data), which gives a dynamic result dim checked at run time.
  std::optional<SmallVector<OpFoldResult>> kv = shapeElements(b, loc, *kIn);
  if (!kv || kv->size() != 1) {
    nodeError(node) << "K must be one integer, got " << kIn->getType();
    return failure();
  }
  int64_t a = *axis;
  OpFoldResult k = (*kv)[0];
  if (std::optional<int64_t> known = getConstantIntValue(k)) {
    if (*known < 0) {
      nodeError(node) << "K must be one non-negative value";
      return failure();
    }
    if (!ShapedType::isDynamic(t.getDimSize(a)) && *known > t.getDimSize(a)) {
      nodeError(node) << "K = " << *known << " exceeds dim " << a << " of "
                      << t;
      return failure();
    }
  } else {
    // 0 <= K <= dim, or a report and K = 0.
    declareErrorHook(b, node);
    Value kValue = cast<Value>(k);
    Value dim = tensor::DimOp::create(b, loc, *x, a);
    Value zero = arith::ConstantIndexOp::create(b, loc, 0);
    Value bad = arith::OrIOp::create(
        b, loc,
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, kValue, zero),
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sgt, kValue, dim));
    reportIf(b, loc, bad, kErrorShapeMismatch);
    k = arith::SelectOp::create(b, loc, bad, zero, kValue).getResult();
  }
  Value xs = toSignless(b, loc, *x);
  auto [values, indices] = build::topK(b, loc, xs, k, a, *largestAttr != 0);
  return SmallVector<Value>{toElementType(b, loc, values, t.getElementType()),
                            indices};
}

/// Gelu-20: exact (erf) or tanh approximation.
Values gelu(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 1, 1)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "X");
  FailureOr<std::string> approx =
      stringAttr(node, "approximate", {"none", "tanh"}, StringRef("none"));
  if (failed(x) || failed(approx))
    return failure();
  bool tanhForm = *approx == "tanh";
  return elementwise(node, b, {*x},
                     [&](OpBuilder &nb, Location nl, ValueRange v) -> Value {
                       Type t = v[0].getType();
                       Value inner;
                       if (tanhForm) {
                         Value x3 = arith::MulFOp::create(
                             nb, nl, v[0], arith::MulFOp::create(nb, nl, v[0], v[0]));
                         inner = math::TanhOp::create(
                             nb, nl,
                             arith::MulFOp::create(
                                 nb, nl, scalar(nb, nl, t, std::sqrt(2.0 / M_PI)),
                                 arith::AddFOp::create(
                                     nb, nl, v[0],
                                     arith::MulFOp::create(
                                         nb, nl, scalar(nb, nl, t, 0.044715), x3))));
                       } else {
                         inner = math::ErfOp::create(
                             nb, nl,
                             arith::MulFOp::create(nb, nl, v[0],
                                                   scalar(nb, nl, t, M_SQRT1_2)));
                       }
                       Value half = arith::MulFOp::create(
                           nb, nl, v[0], scalar(nb, nl, t, 0.5));
                       return arith::MulFOp::create(
                           nb, nl, half,
                           arith::AddFOp::create(nb, nl, inner,
                                                 scalar(nb, nl, t, 1.0)));
                     });
}

} // namespace

void mlir::moe::onnx_conv::populateStandardReduceHandlers(
    OnnxHandlerRegistry &r) {
  r.add("", "ReduceSum", 13, reduceOp<ReduceKind::Sum, true>);
  r.add("", "ReduceMean", 13, reduceOp<ReduceKind::Mean, false>);
  r.add("", "ReduceMean", 18, reduceOp<ReduceKind::Mean, true>);
  r.add("", "ReduceMax", 13, reduceOp<ReduceKind::Max, false>);
  r.add("", "ReduceMax", 18, reduceOp<ReduceKind::Max, true>);
  r.add("", "ReduceMin", 13, reduceOp<ReduceKind::Min, false>);
  r.add("", "ReduceMin", 18, reduceOp<ReduceKind::Min, true>);
  r.add("", "ReduceProd", 13, reduceOp<ReduceKind::Prod, false>);
  r.add("", "ReduceProd", 18, reduceOp<ReduceKind::Prod, true>);
  r.add("", "ReduceL1", 13, reduceOp<ReduceKind::L1, false>);
  r.add("", "ReduceL1", 18, reduceOp<ReduceKind::L1, true>);
  r.add("", "ReduceL2", 13, reduceOp<ReduceKind::L2, false>);
  r.add("", "ReduceL2", 18, reduceOp<ReduceKind::L2, true>);
  r.add("", "ReduceSumSquare", 13, reduceOp<ReduceKind::SumSquare, false>);
  r.add("", "ReduceSumSquare", 18, reduceOp<ReduceKind::SumSquare, true>);
  r.add("", "Softmax", 13, softmax<false>);
  r.add("", "LogSoftmax", 13, softmax<true>);
  r.add("", "ArgMax", 13, argExtreme<true>);
  r.add("", "ArgMin", 13, argExtreme<false>);
  r.add("", "CumSum", 14, cumsum);
  r.add("", "Gemm", 13, gemm);
  r.add("", "Pow", 13, pow);
  r.add("", "Einsum", 12, einsum);
  r.add("", "GatherElements", 13, gatherElements);
  r.add("", "ScatterElements", 13, scatterElements);
  r.add("", "Gelu", 20, gelu);
  r.add("", "TopK", 11, topk);
}

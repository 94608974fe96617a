//===- StandardOps.cpp - handlers for ai.onnx ops --------------------------===//
//
// Standard ONNX ops lowered to linalg, tensor, arith and math. Each handler
// names the ONNX semantics it implements and refuses (with a located
// diagnostic) what it does not.
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
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::build;
using namespace mlir::moe::onnx_conv;

namespace {

/// Binary arithmetic that wraps (Add, Sub, Mul): float and integer forms
/// (one for signed and unsigned: two's complement). Div has its own.
template <typename FOp, typename IOp>
Values binary(onnxir::NodeOp node, RewriterBase &b) {
  FailureOr<std::pair<Value, Value>> ops = binaryOperands(node);
  if (failed(ops))
    return failure();
  auto [lhs, rhs] = *ops;
  if (isFloat(lhs))
    return elementwise(node, b, {lhs, rhs},
                       [](OpBuilder &nb, Location l, ValueRange a) -> Value {
                         return FOp::create(nb, l, a[0], a[1]);
                       });
  return elementwise(node, b, {lhs, rhs},
                     [](OpBuilder &nb, Location l, ValueRange a) -> Value {
                       return IOp::create(nb, l, a[0], a[1]);
                     });
}

/// How an integer division rounds: the quotient (C's truncation), the
/// remainder with the dividend's sign (C's %, ONNX Mod fmod = 1) or with the
/// divisor's (Python's %, ONNX Mod fmod = 0).
enum class IntDivKind { Quotient, TruncRem, FloorRem };

/// a / b or a % b on integers (signless, `isU` for unsigned) without the
/// traps of LLVM's division: a zero divisor reports kErrorDivisionByZero and
/// gives 0 (ONNX Runtime refuses such a run), and the signed minimum over -1
/// wraps (two's complement: the quotient is the minimum, the remainder 0)
/// instead of raising SIGFPE.
Value integerDivide(OpBuilder &b, Location l, Value x, Value y, bool isU,
                    IntDivKind kind) {
  Type t = x.getType();
  unsigned width = t.getIntOrFloatBitWidth();
  auto cst = [&](const APInt &v) -> Value {
    return arith::ConstantOp::create(b, l, b.getIntegerAttr(t, v));
  };
  Value zero = cst(APInt(width, 0)), one = cst(APInt(width, 1));
  Value isZero = arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, y, zero);
  reportIf(b, l, isZero, kErrorDivisionByZero);
  Value bad = isZero;
  if (!isU) {
    Value isMin = arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, x,
                                        cst(APInt::getSignedMinValue(width)));
    Value isMinusOne = arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, y,
                                             cst(APInt::getAllOnes(width)));
    bad = arith::OrIOp::create(b, l, bad,
                               arith::AndIOp::create(b, l, isMin, isMinusOne));
  }
  // Over 1, the quotient is x (the wrapped minimum) and the remainder 0.
  Value safe = arith::SelectOp::create(b, l, bad, one, y);
  Value r;
  if (kind == IntDivKind::Quotient)
    r = isU ? Value(arith::DivUIOp::create(b, l, x, safe))
            : Value(arith::DivSIOp::create(b, l, x, safe));
  else
    r = isU ? Value(arith::RemUIOp::create(b, l, x, safe))
            : Value(arith::RemSIOp::create(b, l, x, safe));
  if (kind == IntDivKind::FloorRem && !isU) {
    // A non-zero remainder whose sign differs from the divisor's moves by
    // one divisor (r + y cannot overflow: |r| < |y| and the signs differ).
    Value rNeg =
        arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, r, zero);
    Value yNeg =
        arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, safe, zero);
    Value nonZero =
        arith::CmpIOp::create(b, l, arith::CmpIPredicate::ne, r, zero);
    Value fix = arith::AndIOp::create(
        b, l, nonZero,
        arith::CmpIOp::create(b, l, arith::CmpIPredicate::ne, rNeg, yNeg));
    r = arith::SelectOp::create(b, l, fix, arith::AddIOp::create(b, l, r, safe),
                                r);
  }
  return arith::SelectOp::create(b, l, isZero, zero, r);
}

/// Div-13..: float division, integer division truncating toward zero
/// (integerDivide's checks).
Values divide(onnxir::NodeOp node, RewriterBase &b) {
  FailureOr<std::pair<Value, Value>> ops = binaryOperands(node);
  if (failed(ops))
    return failure();
  auto [lhs, rhs] = *ops;
  Type elt = typeOf(lhs).getElementType();
  if (isFloat(lhs))
    return elementwise(node, b, {lhs, rhs},
                       [](OpBuilder &nb, Location l, ValueRange a) -> Value {
                         return arith::DivFOp::create(nb, l, a[0], a[1]);
                       });
  if (!elt.isIntOrFloat() || elt.isInteger(1)) {
    nodeError(node) << "expected numeric inputs, got " << elt;
    return failure();
  }
  declareErrorHook(b, node);
  bool isU = elt.isUnsignedInteger();
  return elementwise(node, b, {lhs, rhs},
                     [isU](OpBuilder &nb, Location l, ValueRange a) -> Value {
                       return integerDivide(nb, l, a[0], a[1], isU,
                                            IntDivKind::Quotient);
                     });
}

/// Mod-13 and Mod-28: the remainder with the divisor's sign (fmod = 0,
/// Python's %) or the dividend's (fmod = 1, C's fmod). Mod-13 takes floats
/// with fmod = 1 only, as its spec requires; Mod-28 defines fmod = 0 for
/// floats as A - floor(A / B) * B (a zero result takes B's sign).
template <bool floatFloor> Values modOp(onnxir::NodeOp node, RewriterBase &b) {
  FailureOr<std::pair<Value, Value>> ops = binaryOperands(node);
  FailureOr<int64_t> fmod = intAttr(node, "fmod", 0);
  if (failed(ops) || failed(fmod))
    return failure();
  if (*fmod != 0 && *fmod != 1) {
    nodeError(node) << "fmod must be 0 or 1, got " << *fmod;
    return failure();
  }
  auto [lhs, rhs] = *ops;
  Type elt = typeOf(lhs).getElementType();
  if (isFloat(lhs)) {
    if (*fmod == 0 && !floatFloor) {
      nodeError(node) << "fmod = 0 takes integer inputs before opset 28; "
                         "floats need fmod = 1, got "
                      << elt;
      return failure();
    }
    bool floor = *fmod == 0;
    return elementwise(
        node, b, {lhs, rhs},
        [floor](OpBuilder &nb, Location l, ValueRange a) -> Value {
          Value r = arith::RemFOp::create(nb, l, a[0], a[1]);
          if (!floor)
            return r;
          // A non-zero remainder of the other sign than B moves by B (an
          // infinite B then gives B, as the spec says); a zero one takes
          // B's sign. NaN stays NaN.
          Value zero = scalar(nb, l, r.getType(), 0.0);
          Value rNeg =
              arith::CmpFOp::create(nb, l, arith::CmpFPredicate::OLT, r, zero);
          Value yNeg = arith::CmpFOp::create(nb, l, arith::CmpFPredicate::OLT,
                                             a[1], zero);
          Value nonZero =
              arith::CmpFOp::create(nb, l, arith::CmpFPredicate::ONE, r, zero);
          Value fix = arith::AndIOp::create(
              nb, l, nonZero, arith::XOrIOp::create(nb, l, rNeg, yNeg));
          Value moved = arith::SelectOp::create(
              nb, l, fix, arith::AddFOp::create(nb, l, r, a[1]), r);
          Value isZero =
              arith::CmpFOp::create(nb, l, arith::CmpFPredicate::OEQ, r, zero);
          return arith::SelectOp::create(
              nb, l, isZero, math::CopySignOp::create(nb, l, zero, a[1]),
              moved);
        });
  }
  if (!elt.isIntOrFloat() || elt.isInteger(1)) {
    nodeError(node) << "expected numeric inputs, got " << elt;
    return failure();
  }
  declareErrorHook(b, node);
  bool isU = elt.isUnsignedInteger();
  IntDivKind kind = *fmod ? IntDivKind::TruncRem : IntDivKind::FloorRem;
  return elementwise(
      node, b, {lhs, rhs},
      [isU, kind](OpBuilder &nb, Location l, ValueRange a) -> Value {
        return integerDivide(nb, l, a[0], a[1], isU, kind);
      });
}

/// Unary float op `fn`.
template <Value (*fn)(OpBuilder &, Location, ValueRange)>
Values unaryFloat(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 1, 1)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "X");
  if (failed(x))
    return failure();
  if (!isFloat(*x)) {
    nodeError(node) << "expected a float input, got " << x->getType();
    return failure();
  }
  return elementwise(node, b, {*x}, fn);
}

Value reluFn(OpBuilder &b, Location l, ValueRange a) {
  return arith::MaximumFOp::create(b, l, a[0],
                                   scalar(b, l, a[0].getType(), 0.0));
}
Value sigmoidFn(OpBuilder &b, Location l, ValueRange a) {
  Value e = math::ExpOp::create(b, l, arith::NegFOp::create(b, l, a[0]));
  Value one = scalar(b, l, a[0].getType(), 1.0);
  return arith::DivFOp::create(b, l, one, arith::AddFOp::create(b, l, one, e));
}
template <typename Op>
Value mathFn(OpBuilder &b, Location l, ValueRange a) {
  return Op::create(b, l, a[0]);
}
Value reciprocalFn(OpBuilder &b, Location l, ValueRange a) {
  return arith::DivFOp::create(b, l, scalar(b, l, a[0].getType(), 1.0), a[0]);
}

/// Abs-13..: float, signed (wrapping at the minimum, as two's complement
/// does) and unsigned (identity) integers.
Values absOp(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 1, 1)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "X");
  if (failed(x))
    return failure();
  Type elt = typeOf(*x).getElementType();
  if (elt.isUnsignedInteger())
    return SmallVector<Value>{*x};
  bool isF = isa<FloatType>(elt);
  return elementwise(node, b, {*x},
                     [isF](OpBuilder &nb, Location l, ValueRange a) -> Value {
                       if (isF)
                         return math::AbsFOp::create(nb, l, a[0]);
                       return math::AbsIOp::create(nb, l, a[0]);
                     });
}

/// Neg-13: float and signed integer (wrapping at the minimum, as two's
/// complement does).
Values negOp(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 1, 1)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "X");
  if (failed(x))
    return failure();
  Type elt = typeOf(*x).getElementType();
  if (!isa<FloatType>(elt) &&
      (!elt.isInteger() || elt.isUnsignedInteger() || elt.isInteger(1))) {
    nodeError(node) << "expected a float or signed integer input, got " << elt;
    return failure();
  }
  return elementwise(
      node, b, {*x}, [](OpBuilder &nb, Location l, ValueRange a) -> Value {
        Type t = a[0].getType();
        if (isa<FloatType>(t))
          return arith::NegFOp::create(nb, l, a[0]);
        Value zero = arith::ConstantOp::create(nb, l, nb.getIntegerAttr(t, 0));
        return arith::SubIOp::create(nb, l, zero, a[0]);
      });
}

/// Sign-13: -1, 0 or 1 by the sign of x (NaN stays NaN).
Values signOp(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 1, 1)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "input");
  if (failed(x))
    return failure();
  Type elt = typeOf(*x).getElementType();
  if (!elt.isIntOrFloat() || elt.isInteger(1)) {
    nodeError(node) << "expected a numeric input, got " << elt;
    return failure();
  }
  bool isF = isa<FloatType>(elt), isU = elt.isUnsignedInteger();
  return elementwise(
      node, b, {*x},
      [isF, isU, elt](OpBuilder &nb, Location l, ValueRange a) -> Value {
        auto cst = [&](int64_t v) -> Value {
          return isF ? Value(arith::ConstantOp::create(
                           nb, l, nb.getFloatAttr(elt, (double)v)))
                     : Value(arith::ConstantOp::create(
                           nb, l, nb.getIntegerAttr(elt, v)));
        };
        Value zero = cst(0), one = cst(1);
        Value pos, neg;
        if (isF) {
          pos = arith::CmpFOp::create(nb, l, arith::CmpFPredicate::OGT, a[0],
                                      zero);
          neg = arith::CmpFOp::create(nb, l, arith::CmpFPredicate::OLT, a[0],
                                      zero);
          // Zero and NaN: x itself.
          Value rest = arith::SelectOp::create(nb, l, neg, cst(-1), a[0]);
          return arith::SelectOp::create(nb, l, pos, one, rest);
        }
        pos = arith::CmpIOp::create(
            nb, l, isU ? arith::CmpIPredicate::ugt : arith::CmpIPredicate::sgt,
            a[0], zero);
        if (isU)
          return arith::SelectOp::create(nb, l, pos, one, zero);
        neg =
            arith::CmpIOp::create(nb, l, arith::CmpIPredicate::slt, a[0], zero);
        Value rest = arith::SelectOp::create(nb, l, neg, cst(-1), zero);
        return arith::SelectOp::create(nb, l, pos, one, rest);
      });
}

/// Max-13.. / Min-13..: variadic with numpy broadcasting; a NaN operand
/// gives NaN (as ONNX Runtime and PyTorch do).
template <bool isMax>
Values minMax(onnxir::NodeOp node, RewriterBase &b) {
  FailureOr<SmallVector<Value>> inputs = variadicOperands(node);
  if (failed(inputs))
    return failure();
  SmallVector<Value> xs = std::move(*inputs);
  Type elt = typeOf(xs[0]).getElementType();
  bool isF = isa<FloatType>(elt), isU = elt.isUnsignedInteger();
  return elementwise(
      node, b, xs, [&](OpBuilder &nb, Location l, ValueRange a) -> Value {
        Value acc = a[0];
        for (Value v : a.drop_front()) {
          if (isF)
            acc = isMax ? Value(arith::MaximumFOp::create(nb, l, acc, v))
                        : Value(arith::MinimumFOp::create(nb, l, acc, v));
          else if (isU)
            acc = isMax ? Value(arith::MaxUIOp::create(nb, l, acc, v))
                        : Value(arith::MinUIOp::create(nb, l, acc, v));
          else
            acc = isMax ? Value(arith::MaxSIOp::create(nb, l, acc, v))
                        : Value(arith::MinSIOp::create(nb, l, acc, v));
        }
        return acc;
      });
}

//===----------------------------------------------------------------------===//
// Structural ops
//===----------------------------------------------------------------------===//

/// Identity-1..: the input.
Values identity(onnxir::NodeOp node, RewriterBase &) {
  if (failed(checkOperandCount(node, 1, 1)))
    return failure();
  return SmallVector<Value>{node.getInputs()[0]};
}

/// Constant-13..: value (tensor) or value_float(s) / value_int(s).
Values constant(onnxir::NodeOp node, RewriterBase &b) {
  DictionaryAttr attrs = node.getNodeAttributes();
  Location loc = node.getLoc();
  if (auto v = dyn_cast_or_null<ElementsAttr>(attrs.get("value")))
    return SmallVector<Value>{
        arith::ConstantOp::create(b, loc, cast<TypedAttr>(v))};
  if (auto f = dyn_cast_or_null<FloatAttr>(attrs.get("value_float")))
    return SmallVector<Value>{arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(RankedTensorType::get({}, b.getF32Type()),
                                       f.getValue()))};
  if (auto i = dyn_cast_or_null<IntegerAttr>(attrs.get("value_int")))
    return SmallVector<Value>{arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(RankedTensorType::get({}, b.getI64Type()),
                                       i.getValue()))};
  if (auto is = dyn_cast_or_null<DenseI64ArrayAttr>(attrs.get("value_ints")))
    return SmallVector<Value>{arith::ConstantOp::create(
        b, loc,
        DenseElementsAttr::get(RankedTensorType::get({is.size()}, b.getI64Type()),
                               is.asArrayRef()))};
  if (auto fs = dyn_cast_or_null<DenseF32ArrayAttr>(attrs.get("value_floats")))
    return SmallVector<Value>{arith::ConstantOp::create(
        b, loc,
        DenseElementsAttr::get(RankedTensorType::get({fs.size()}, b.getF32Type()),
                               fs.asArrayRef()))};
  nodeError(node) << "expected a 'value', 'value_float(s)' or 'value_int(s)' "
                     "attribute (sparse and string constants are not "
                     "supported)";
  return failure();
}

/// Shape-15..: dims [start, end) of the input as an int64 tensor.
Values shapeOf(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 1, 1)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "data");
  FailureOr<int64_t> start = intAttr(node, "start", 0);
  if (failed(x) || failed(start))
    return failure();
  int64_t rank = typeOf(*x).getRank();
  FailureOr<int64_t> end = intAttr(node, "end", rank);
  if (failed(end))
    return failure();
  auto clampAxis = [&](int64_t a) {
    if (a < 0)
      a += rank;
    return std::clamp<int64_t>(a, 0, rank);
  };
  int64_t s = clampAxis(*start), e = clampAxis(*end);
  Location loc = node.getLoc();
  // A shape value (ShapeValues.h): static dims are constants, dynamic ones
  // tensor.dim values.
  SmallVector<OpFoldResult> dims;
  for (int64_t i = s; i < e; ++i) {
    OpFoldResult d = tensor::getMixedSize(b, loc, *x, i);
    if (auto v = dyn_cast<Value>(d))
      d = arith::IndexCastOp::create(b, loc, b.getI64Type(), v).getResult();
    dims.push_back(d);
  }
  return SmallVector<Value>{makeShapeValue(
      b, loc,
      RankedTensorType::get({(int64_t)dims.size()}, b.getI64Type()), dims)};
}

/// Size-13..: the element count as an int64 scalar.
Values sizeOf(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 1, 1)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "data");
  if (failed(x))
    return failure();
  Location loc = node.getLoc();
  OpFoldResult count = b.getIndexAttr(1);
  for (int64_t d = 0; d < typeOf(*x).getRank(); ++d)
    count = mulSizes(b, loc, count, tensor::getMixedSize(b, loc, *x, d));
  if (auto v = dyn_cast<Value>(count))
    count = arith::IndexCastOp::create(b, loc, b.getI64Type(), v).getResult();
  return SmallVector<Value>{makeShapeValue(
      b, loc, RankedTensorType::get({}, b.getI64Type()), {count})};
}

/// Reshape-14..: shape entries follow ONNX (0 copies the input dim unless
/// allowzero, one -1 is inferred), at compile time for constant entries and
/// at run time for computed ones; sizes that do not fit the data are
/// reported at run time.
Values reshape(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 2, 2)))
    return failure();
  FailureOr<Value> data = tensorOperand(node, 0, "data");
  FailureOr<Value> shape = tensorOperand(node, 1, "shape", 1);
  FailureOr<int64_t> allowZero = intAttr(node, "allowzero", 0);
  if (failed(data) || failed(shape) || failed(allowZero))
    return failure();
  int64_t rank = typeOf(*shape).getDimSize(0);
  if (ShapedType::isDynamic(rank)) {
    nodeError(node) << "the shape input must have a static length";
    return failure();
  }
  Location loc = node.getLoc();
  std::optional<SmallVector<int64_t>> constant = constantInts(*shape);
  auto fromElements = (*shape).getDefiningOp<tensor::FromElementsOp>();
  int64_t inRank = typeOf(*data).getRank();
  // Entries known at compile time follow ONNX here; computed entries follow
  // the same rules at run time (0 copies the input dim unless allowzero, one
  // -1 is inferred), and the sizes are checked to multiply to the element
  // count. A shape the data cannot take is reported (kErrorShapeMismatch)
  // and every computed size becomes 0: the result is then an empty view,
  // never one larger than the data.
  SmallVector<OpFoldResult> sizes(rank);
  SmallVector<Value> computed(rank); // the raw entry, for computed entries
  int64_t inferred = -1;
  Value bad;
  auto idx = [&](int64_t v) -> Value {
    return arith::ConstantIndexOp::create(b, loc, v);
  };
  auto cmp = [&](arith::CmpIPredicate p, Value x, Value y) -> Value {
    return arith::CmpIOp::create(b, loc, p, x, y);
  };
  auto orInto = [&](Value &acc, Value c) {
    acc = acc ? Value(arith::OrIOp::create(b, loc, acc, c)) : c;
  };
  // -1 entries: a static one sets `inferred`, computed ones are counted in
  // `negOnes` at run time.
  Value negOnes;
  for (int64_t i = 0; i < rank; ++i) {
    std::optional<int64_t> known;
    Value element;
    if (constant) {
      known = (*constant)[i];
    } else {
      element = fromElements
                    ? fromElements.getElements()[i]
                    : Value(tensor::ExtractOp::create(b, loc, *shape,
                                                      ValueRange{idx(i)}));
      known = getConstantIntValue(element);
    }
    if (known) {
      int64_t v = *known;
      if (v == -1) {
        if (inferred >= 0) {
          nodeError(node) << "the shape has more than one -1";
          return failure();
        }
        inferred = i;
        continue;
      }
      if (v < -1) {
        nodeError(node) << "invalid shape entry " << v;
        return failure();
      }
      if (v == 0 && !*allowZero) {
        if (i >= inRank) {
          nodeError(node) << "shape entry " << i
                          << " is 0 (copy) but the input has rank " << inRank;
          return failure();
        }
        sizes[i] = tensor::getMixedSize(b, loc, *data, i);
        continue;
      }
      sizes[i] = b.getIndexAttr(v);
      continue;
    }
    Value v = arith::IndexCastOp::create(b, loc, b.getIndexType(), element);
    computed[i] = v;
    Value isNegOne = cmp(arith::CmpIPredicate::eq, v, idx(-1));
    orInto(bad, cmp(arith::CmpIPredicate::slt, v, idx(-1)));
    if (!negOnes)
      negOnes = idx(0);
    negOnes = arith::AddIOp::create(
        b, loc, negOnes,
        arith::IndexCastOp::create(
            b, loc, b.getIndexType(),
            arith::ExtUIOp::create(b, loc, b.getI64Type(), isNegOne)));
    Value size = v;
    if (!*allowZero) {
      Value isZero = cmp(arith::CmpIPredicate::eq, v, idx(0));
      Value copied;
      if (i < inRank) {
        copied = tensor::DimOp::create(b, loc, *data, i);
      } else {
        orInto(bad, isZero); // 0 copies a dim the input does not have
        copied = idx(0);
      }
      size = arith::SelectOp::create(b, loc, isZero, copied, size);
    }
    // -1 counts as 1 in the product of the known sizes.
    sizes[i] = getAsOpFoldResult(
        arith::SelectOp::create(b, loc, isNegOne, idx(1), size).getResult());
  }
  OpFoldResult total = b.getIndexAttr(1);
  for (int64_t d = 0; d < inRank; ++d)
    total = mulSizes(b, loc, total, tensor::getMixedSize(b, loc, *data, d));
  OpFoldResult known = b.getIndexAttr(1);
  for (int64_t i = 0; i < rank; ++i)
    if (i != inferred)
      known = mulSizes(b, loc, known, sizes[i]);
  bool anyComputed = llvm::any_of(computed, [](Value v) { return bool(v); });
  std::optional<int64_t> knownCount = getConstantIntValue(known);
  std::optional<int64_t> totalCount = getConstantIntValue(total);
  if (!anyComputed && knownCount && totalCount) {
    // Everything static: checked here.
    bool fits = inferred >= 0 ? *knownCount != 0 && *totalCount % *knownCount == 0
                              : *knownCount == *totalCount;
    if (!fits) {
      nodeError(node) << "cannot reshape " << data->getType() << " ("
                      << *totalCount << " elements) to a shape of "
                      << *knownCount << " elements"
                      << (inferred >= 0 ? " times -1" : "");
      return failure();
    }
    if (inferred >= 0)
      sizes[inferred] = b.getIndexAttr(*totalCount / *knownCount);
  } else {
    // At run time: one -1 at most (inferred = count / known, which must
    // divide it exactly); without one, known must equal the count.
    Value k = getValueOrCreateConstantIndexOp(b, loc, known);
    Value t = getValueOrCreateConstantIndexOp(b, loc, total);
    Value hasNegOne = arith::ConstantOp::create(b, loc,
                                                b.getBoolAttr(inferred >= 0));
    if (anyComputed) {
      Value count = inferred >= 0
                        ? Value(arith::AddIOp::create(b, loc, negOnes, idx(1)))
                        : negOnes;
      orInto(bad, cmp(arith::CmpIPredicate::ugt, count, idx(1)));
      hasNegOne = cmp(arith::CmpIPredicate::eq, count, idx(1));
    }
    Value zeroKnown = cmp(arith::CmpIPredicate::eq, k, idx(0));
    Value safeK = arith::SelectOp::create(b, loc, zeroKnown, idx(1), k);
    Value inferredSize = arith::DivUIOp::create(b, loc, t, safeK);
    Value withNegOne = arith::OrIOp::create(
        b, loc, zeroKnown,
        cmp(arith::CmpIPredicate::ne, arith::RemUIOp::create(b, loc, t, safeK),
            idx(0)));
    Value withoutNegOne = cmp(arith::CmpIPredicate::ne, k, t);
    orInto(bad, arith::SelectOp::create(b, loc, hasNegOne, withNegOne,
                                        withoutNegOne));
    if (inferred >= 0)
      sizes[inferred] = getAsOpFoldResult(inferredSize);
    for (int64_t i = 0; i < rank; ++i)
      if (computed[i])
        sizes[i] = getAsOpFoldResult(
            arith::SelectOp::create(
                b, loc, cmp(arith::CmpIPredicate::eq, computed[i], idx(-1)),
                inferredSize,
                getValueOrCreateConstantIndexOp(b, loc, sizes[i]))
                .getResult());
  }
  if (bad) {
    reportIf(b, loc, bad, kErrorShapeMismatch);
    for (int64_t i = 0; i < rank; ++i)
      if (!getConstantIntValue(sizes[i]))
        sizes[i] = getAsOpFoldResult(
            arith::SelectOp::create(
                b, loc, bad, idx(0),
                getValueOrCreateConstantIndexOp(b, loc, sizes[i]))
                .getResult());
  }
  // A reshape of a contiguous tensor is a collapse to 1-D and an expand to
  // the new sizes; both bufferize to strided views. (tensor.reshape with a
  // computed shape lowers through memref.reshape, which MLIR 22's
  // expand-strided-metadata crashes on.)
  if (inRank == 0 || rank == 0) {
    SmallVector<Value> sizeValues = llvm::map_to_vector(
        sizes, [&](OpFoldResult s) -> Value {
          return getValueOrCreateConstantIndexOp(b, loc, s);
        });
    Value shapeTensor = tensor::FromElementsOp::create(
        b, loc, RankedTensorType::get({rank}, b.getIndexType()), sizeValues);
    auto resultType = tensorTypeOf(sizes, typeOf(*data).getElementType());
    return SmallVector<Value>{
        tensor::ReshapeOp::create(b, loc, resultType, *data, shapeTensor)};
  }
  ReassociationIndices all;
  for (int64_t d = 0; d < inRank; ++d)
    all.push_back(d);
  Value flat = collapse(b, loc, *data, {all});
  ReassociationIndices outAll;
  for (int64_t d = 0; d < rank; ++d)
    outAll.push_back(d);
  return SmallVector<Value>{expand(b, loc, flat, {outAll}, sizes)};
}

/// MatMul-13..: numpy matmul. A rank-1 A is a row [1, K] and a rank-1 B a
/// column [K, 1], their unit dim removed from the result. Batch dims
/// broadcast as numpy's, aligned from the right: a missing or static-1 dim
/// is not a loop of that operand (the contraction reads it once per result
/// index); a dynamic dim is brought to the result size at run time (equal
/// passes, 1 is repeated, anything else is reported).
Values matmul(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 2, 2)))
    return failure();
  FailureOr<Value> lhsIn = tensorOperand(node, 0, "A");
  FailureOr<Value> rhsIn = tensorOperand(node, 1, "B");
  if (failed(lhsIn) || failed(rhsIn))
    return failure();
  int64_t ra = typeOf(*lhsIn).getRank(), rb = typeOf(*rhsIn).getRank();
  if (ra < 1 || rb < 1 || !isFloat(*lhsIn) ||
      typeOf(*lhsIn).getElementType() != typeOf(*rhsIn).getElementType()) {
    nodeError(node) << "supported: float A and B of rank >= 1 and the same "
                       "element type; got "
                    << lhsIn->getType() << " and " << rhsIn->getType();
    return failure();
  }
  Location loc = node.getLoc();
  Value lhs = *lhsIn, rhs = *rhsIn;
  // Vectors as one-row / one-column matrices.
  if (ra == 1)
    lhs = expand(b, loc, lhs, {{0, 1}},
                 {b.getIndexAttr(1), tensor::getMixedSize(b, loc, lhs, 0)});
  if (rb == 1)
    rhs = expand(b, loc, rhs, {{0, 1}},
                 {tensor::getMixedSize(b, loc, rhs, 0), b.getIndexAttr(1)});
  int64_t la = typeOf(lhs).getRank() - 2, lb = typeOf(rhs).getRank() - 2;
  int64_t batch = std::max(la, lb);
  // The contraction's loops are named by letters: m, k and n, and one per
  // batch dim from the others.
  static constexpr StringLiteral kBatchLetters = "abcdefghijlopqrstuvwxyz";
  if (batch > static_cast<int64_t>(kBatchLetters.size())) {
    nodeError(node) << "supported: at most " << kBatchLetters.size()
                    << " batch dims; got " << lhsIn->getType() << " and "
                    << rhsIn->getType();
    return failure();
  }
  // The contracted dim: refused here when static, checked at run time when
  // dynamic.
  {
    int64_t sa = typeOf(lhs).getDimSize(la + 1);
    int64_t sb = typeOf(rhs).getDimSize(lb);
    if (!ShapedType::isDynamic(sa) && !ShapedType::isDynamic(sb) && sa != sb) {
      nodeError(node) << "A dim " << typeOf(*lhsIn).getRank() - 1 << " (" << sa
                      << ") and B dim " << (rb == 1 ? 0 : rb - 2) << " (" << sb
                      << ") must be equal; got " << lhsIn->getType() << " and "
                      << rhsIn->getType();
      return failure();
    }
    rhs =
        requireSize(b, loc, rhs, lb, tensor::getMixedSize(b, loc, lhs, la + 1),
                    kErrorShapeMismatch);
  }
  // Batch dims: result sizes, and which operand dims are not loops.
  SmallVector<OpFoldResult> sizes;
  SmallVector<bool> dropA(la + 2, false), dropB(lb + 2, false);
  std::string specA, specB, specOut;
  for (int64_t i = 0; i < batch; ++i) {
    char letter = kBatchLetters[i];
    int64_t da = i - (batch - la), db = i - (batch - lb);
    int64_t sa = da < 0 ? 1 : typeOf(lhs).getDimSize(da);
    int64_t sb = db < 0 ? 1 : typeOf(rhs).getDimSize(db);
    bool dynA = ShapedType::isDynamic(sa), dynB = ShapedType::isDynamic(sb);
    if (!dynA && !dynB && sa != sb && sa != 1 && sb != 1) {
      nodeError(node) << "batch dims of A and B do not broadcast: "
                      << lhsIn->getType() << " and " << rhsIn->getType();
      return failure();
    }
    // A static 1 (or a missing dim) against anything else is read once.
    bool aOnce = !dynA && sa == 1 && (dynB || sb != 1);
    bool bOnce = !dynB && sb == 1 && (dynA || sa != 1) && !aOnce;
    OpFoldResult size;
    if (aOnce) {
      size = db < 0 ? OpFoldResult(b.getIndexAttr(1))
                    : tensor::getMixedSize(b, loc, rhs, db);
    } else if (bOnce) {
      size = tensor::getMixedSize(b, loc, lhs, da);
    } else if (!dynA) {
      size = b.getIndexAttr(sa);
      if (dynB)
        rhs = build::broadcastDim(b, loc, rhs, db, size, kErrorShapeMismatch);
    } else if (!dynB) {
      size = b.getIndexAttr(sb);
      lhs = build::broadcastDim(b, loc, lhs, da, size, kErrorShapeMismatch);
    } else {
      // Both dynamic: the size is the one that is not 1.
      Value dimA = tensor::DimOp::create(b, loc, lhs, da);
      Value dimB = tensor::DimOp::create(b, loc, rhs, db);
      Value one = arith::ConstantIndexOp::create(b, loc, 1);
      Value aIsOne =
          arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, dimA, one);
      size = arith::SelectOp::create(b, loc, aIsOne, dimB, dimA).getResult();
      lhs = build::broadcastDim(b, loc, lhs, da, size, kErrorShapeMismatch);
      rhs = build::broadcastDim(b, loc, rhs, db, size, kErrorShapeMismatch);
    }
    sizes.push_back(size);
    specOut.push_back(letter);
    if (da >= 0) {
      dropA[da] = aOnce;
      if (!aOnce)
        specA.push_back(letter);
    }
    if (db >= 0) {
      dropB[db] = bOnce;
      if (!bOnce)
        specB.push_back(letter);
    }
  }
  // Static unit dims read once are folded away (views).
  if (llvm::is_contained(dropA, true))
    lhs = collapse(b, loc, lhs, foldUnitDims(la + 2, dropA));
  if (llvm::is_contained(dropB, true))
    rhs = collapse(b, loc, rhs, foldUnitDims(lb + 2, dropB));
  sizes.push_back(tensor::getMixedSize(b, loc, lhs, typeOf(lhs).getRank() - 2));
  sizes.push_back(tensor::getMixedSize(b, loc, rhs, typeOf(rhs).getRank() - 1));
  std::string spec = specA + "mk," + specB + "kn->" + specOut + "mn";
  Value result = contract(b, loc, spec, lhs, rhs, sizes);
  // The unit dims of vector operands leave the result.
  if (ra == 1 || rb == 1) {
    SmallVector<bool> dropped(batch + 2, false);
    dropped[batch] = ra == 1;
    dropped[batch + 1] = rb == 1;
    result = collapse(b, loc, result, foldUnitDims(batch + 2, dropped));
  }
  return SmallVector<Value>{result};
}

/// Gather-13..: out = data[:axis] + indices + data[axis+1:]; negative
/// indices wrap once (out-of-range indices are checked by the lowered code).
Values gather(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 2, 2)))
    return failure();
  FailureOr<Value> data = tensorOperand(node, 0, "data");
  FailureOr<Value> indices = tensorOperand(node, 1, "indices");
  FailureOr<int64_t> axisAttr = intAttr(node, "axis", 0);
  if (failed(data) || failed(indices) || failed(axisAttr))
    return failure();
  int64_t rd = typeOf(*data).getRank(), ri = typeOf(*indices).getRank();
  FailureOr<int64_t> axis = normalizeAxis(node, *axisAttr, rd);
  if (failed(axis))
    return failure();
  if (!isa<IntegerType>(typeOf(*indices).getElementType())) {
    nodeError(node) << "indices must be integers, got " << indices->getType();
    return failure();
  }
  Location loc = node.getLoc();
  declareErrorHook(b, node);
  int64_t a = *axis, rank = rd - 1 + ri;
  SmallVector<OpFoldResult> sizes;
  for (int64_t d = 0; d < a; ++d)
    sizes.push_back(tensor::getMixedSize(b, loc, *data, d));
  llvm::append_range(sizes, tensor::getMixedSizes(b, loc, *indices));
  for (int64_t d = a + 1; d < rd; ++d)
    sizes.push_back(tensor::getMixedSize(b, loc, *data, d));
  Value init = emptyTensor(b, loc, sizes, typeOf(*data).getElementType());
  MLIRContext *ctx = b.getContext();
  SmallVector<AffineExpr> idxExprs;
  for (int64_t i = 0; i < ri; ++i)
    idxExprs.push_back(getAffineDimExpr(a + i, ctx));
  SmallVector<AffineMap> maps = {AffineMap::get(rank, 0, idxExprs, ctx),
                                 b.getMultiDimIdentityMap(rank)};
  Value extent = tensor::DimOp::create(b, loc, *data, a);
  Value source = *data;
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{init.getType()}, ValueRange{*indices},
      ValueRange{init}, maps,
      SmallVector<utils::IteratorType>(rank, utils::IteratorType::parallel),
      [&](OpBuilder &nb, Location nl, ValueRange args) {
        Value at = wrappedIndex(nb, nl, args[0], extent);
        SmallVector<Value> coords;
        for (int64_t d = 0; d < a; ++d)
          coords.push_back(linalg::IndexOp::create(nb, nl, d));
        coords.push_back(at);
        for (int64_t d = a + ri; d < rank; ++d)
          coords.push_back(linalg::IndexOp::create(nb, nl, d));
        yield(nb, nl, tensor::ExtractOp::create(nb, nl, source, coords));
      });
  return SmallVector<Value>{generic.getResult(0)};
}

/// LayerNormalization-17..: normalises over dims [axis, rank); Scale and B
/// broadcast to those dims; optional outputs Mean and InvStdDev have the
/// input's rank with unit dims from axis on.
Values layerNorm(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 2, 3)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "X");
  FailureOr<Value> scale = tensorOperand(node, 1, "Scale");
  FailureOr<Value> bias = tensorOperand(node, 2, "B", std::nullopt, true);
  FailureOr<int64_t> axisAttr = intAttr(node, "axis", -1);
  FailureOr<double> epsilon = floatAttr(node, "epsilon", 1e-5);
  if (failed(x) || failed(scale) || failed(bias) || failed(axisAttr) ||
      failed(epsilon))
    return failure();
  if (!isFloat(*x)) {
    nodeError(node) << "expected a float input, got " << x->getType();
    return failure();
  }
  int64_t rank = typeOf(*x).getRank();
  FailureOr<int64_t> axis = normalizeAxis(node, *axisAttr, rank);
  if (failed(axis))
    return failure();
  int64_t a = *axis;
  for (Value p : {*scale, *bias})
    if (p && typeOf(p).getRank() > rank - a) {
      nodeError(node) << "Scale and B must broadcast to the normalized dims "
                         "of rank "
                      << rank - a << ", got " << p.getType();
      return failure();
    }
  Location loc = node.getLoc();
  Type elt = typeOf(*x).getElementType();
  MLIRContext *ctx = b.getContext();
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, loc, *x);
  SmallVector<OpFoldResult> rowSizes(sizes.begin(), sizes.begin() + a);
  AffineMap id = b.getMultiDimIdentityMap(rank);
  SmallVector<AffineExpr> rowExprs;
  for (int64_t d = 0; d < a; ++d)
    rowExprs.push_back(getAffineDimExpr(d, ctx));
  AffineMap rowMap = AffineMap::get(rank, 0, rowExprs, ctx);
  auto trailingMap = [&](Value p) {
    RankedTensorType t = typeOf(p);
    SmallVector<AffineExpr> exprs;
    for (int64_t j = 0; j < t.getRank(); ++j) {
      int64_t d = rank - t.getRank() + j;
      bool broadcast = t.getDimSize(j) == 1 && typeOf(*x).getDimSize(d) != 1;
      exprs.push_back(broadcast ? getAffineConstantExpr(0, ctx)
                                : getAffineDimExpr(d, ctx));
    }
    return AffineMap::get(rank, 0, exprs, ctx);
  };
  SmallVector<utils::IteratorType> reduce(rank, utils::IteratorType::parallel);
  for (int64_t d = a; d < rank; ++d)
    reduce[d] = utils::IteratorType::reduction;
  SmallVector<utils::IteratorType> parallel(rank,
                                            utils::IteratorType::parallel);
  OpFoldResult count = b.getIndexAttr(1);
  for (int64_t d = a; d < rank; ++d)
    count = mulSizes(b, loc, count, sizes[d]);
  Value width = arith::UIToFPOp::create(
      b, loc, elt,
      arith::IndexCastOp::create(
          b, loc, b.getI64Type(),
          getValueOrCreateConstantIndexOp(b, loc, count)));
  SmallVector<utils::IteratorType> rowParallel(a,
                                               utils::IteratorType::parallel);
  AffineMap rowId = b.getMultiDimIdentityMap(a);

  // mean = Σ x / n ; var = Σ (x - mean)^2 / n over the normalized dims.
  auto reduceRows = [&](ValueRange inputs, ArrayRef<AffineMap> inMaps,
                        bool squared) -> Value {
    Value init = filledTensor(b, loc, rowSizes, elt, 0.0);
    SmallVector<AffineMap> maps(inMaps);
    maps.push_back(rowMap);
    Value sum = linalg::GenericOp::create(
                    b, loc, TypeRange{init.getType()}, inputs,
                    ValueRange{init}, maps, reduce,
                    [&](OpBuilder &nb, Location nl, ValueRange v) {
                      Value e = v[0];
                      if (squared) {
                        Value c = arith::SubFOp::create(nb, nl, v[0], v[1]);
                        e = arith::MulFOp::create(nb, nl, c, c);
                      }
                      yield(nb, nl, arith::AddFOp::create(nb, nl, e, v.back()));
                    })
                    .getResult(0);
    return linalg::GenericOp::create(
               b, loc, TypeRange{init.getType()}, ValueRange{sum},
               ValueRange{emptyTensor(b, loc, rowSizes, elt)},
               SmallVector<AffineMap>{rowId, rowId}, rowParallel,
               [&](OpBuilder &nb, Location nl, ValueRange v) {
                 yield(nb, nl, arith::DivFOp::create(nb, nl, v[0], width));
               })
        .getResult(0);
  };
  Value mean = reduceRows({*x}, {id}, false);
  Value var = reduceRows({*x, mean}, {id, rowMap}, true);
  Value eps = scalar(b, loc, elt, *epsilon);
  Value invStd = linalg::GenericOp::create(
                     b, loc, TypeRange{var.getType()}, ValueRange{var},
                     ValueRange{emptyTensor(b, loc, rowSizes, elt)},
                     SmallVector<AffineMap>{rowId, rowId}, rowParallel,
                     [&](OpBuilder &nb, Location nl, ValueRange v) {
                       yield(nb, nl,
                             math::RsqrtOp::create(
                                 nb, nl, arith::AddFOp::create(nb, nl, v[0],
                                                               eps)));
                     })
                     .getResult(0);

  SmallVector<Value> inputs = {*x, mean, invStd, *scale};
  SmallVector<AffineMap> maps = {id, rowMap, rowMap, trailingMap(*scale)};
  bool hasBias = static_cast<bool>(*bias);
  if (hasBias) {
    inputs.push_back(*bias);
    maps.push_back(trailingMap(*bias));
  }
  maps.push_back(id);
  Value y = linalg::GenericOp::create(
                b, loc, TypeRange{emptyTensor(b, loc, sizes, elt).getType()},
                inputs, ValueRange{emptyTensor(b, loc, sizes, elt)}, maps,
                parallel,
                [&](OpBuilder &nb, Location nl, ValueRange v) {
                  Value c = arith::SubFOp::create(nb, nl, v[0], v[1]);
                  Value out = arith::MulFOp::create(
                      nb, nl, arith::MulFOp::create(nb, nl, c, v[2]), v[3]);
                  if (hasBias)
                    out = arith::AddFOp::create(nb, nl, out, v[4]);
                  yield(nb, nl, out);
                })
                .getResult(0);

  // Mean and InvStdDev: [d0 .. d(axis-1), 1, ..., 1].
  auto withUnitDims = [&](Value rows) -> Value {
    SmallVector<OpFoldResult> outSizes(rowSizes);
    outSizes.append(rank - a, b.getIndexAttr(1));
    SmallVector<ReassociationIndices> reassociation;
    for (int64_t d = 0; d < a; ++d)
      reassociation.push_back({d});
    if (a > 0)
      for (int64_t d = a; d < rank; ++d)
        reassociation.back().push_back(d);
    return expand(b, loc, rows, reassociation, outSizes);
  };
  SmallVector<Value> results = {y};
  if (node.getNumResults() > 1)
    results.push_back(withUnitDims(mean));
  if (node.getNumResults() > 2)
    results.push_back(withUnitDims(invStd));
  return results;
}

} // namespace

void mlir::moe::populateStandardOnnxHandlers(OnnxHandlerRegistry &r) {
  r.add("", "Identity", 1, identity);
  r.add("", "Constant", 13, constant);
  r.add("", "Shape", 13, shapeOf);
  r.add("", "Size", 13, sizeOf);
  r.add("", "Reshape", 13, reshape);
  r.add("", "MatMul", 13, matmul);
  r.add("", "Gather", 13, gather);
  r.add("", "LayerNormalization", 17, layerNorm);
  r.add("", "Add", 13, binary<arith::AddFOp, arith::AddIOp>);
  r.add("", "Sub", 13, binary<arith::SubFOp, arith::SubIOp>);
  r.add("", "Mul", 13, binary<arith::MulFOp, arith::MulIOp>);
  r.add("", "Div", 13, divide);
  r.add("", "Mod", 13, modOp<false>);
  r.add("", "Mod", 28, modOp<true>);
  r.add("", "Relu", 13, unaryFloat<reluFn>);
  r.add("", "Sigmoid", 13, unaryFloat<sigmoidFn>);
  r.add("", "Tanh", 13, unaryFloat<mathFn<math::TanhOp>>);
  r.add("", "Exp", 13, unaryFloat<mathFn<math::ExpOp>>);
  r.add("", "Log", 13, unaryFloat<mathFn<math::LogOp>>);
  r.add("", "Sqrt", 13, unaryFloat<mathFn<math::SqrtOp>>);
  r.add("", "Erf", 13, unaryFloat<mathFn<math::ErfOp>>);
  r.add("", "Neg", 13, negOp);
  r.add("", "Reciprocal", 13, unaryFloat<reciprocalFn>);
  r.add("", "Cos", 7, unaryFloat<mathFn<math::CosOp>>);
  r.add("", "Sin", 7, unaryFloat<mathFn<math::SinOp>>);
  r.add("", "Abs", 13, absOp);
  r.add("", "Sign", 13, signOp);
  r.add("", "Floor", 13, unaryFloat<mathFn<math::FloorOp>>);
  r.add("", "Ceil", 13, unaryFloat<mathFn<math::CeilOp>>);
  r.add("", "Max", 13, minMax<true>);
  r.add("", "Min", 13, minMax<false>);
  onnx_conv::populateStandardIndexHandlers(r);
  onnx_conv::populateStandardShapeHandlers(r);
  onnx_conv::populateStandardReduceHandlers(r);
  onnx_conv::populateStandardElementwiseHandlers(r);
  onnx_conv::populateStandardSpatialHandlers(r);
}

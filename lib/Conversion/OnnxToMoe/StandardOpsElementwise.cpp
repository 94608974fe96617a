//===- StandardOpsElementwise.cpp - activations, logic, Clip, IsNaN -------===//
//
// Elementwise ai.onnx ops beyond the arithmetic of StandardOps.cpp: Clip,
// the logical and bitwise ops, IsNaN and IsInf, Round, the variadic Sum and
// Mean, and the activations of the ONNX operator set (LeakyRelu, PRelu,
// Elu, Selu, HardSigmoid, HardSwish, Softplus, Softsign, Mish,
// ThresholdedRelu). Each follows its ONNX schema's definition; where ONNX
// leaves a case open (Clip's NaN bounds), ONNX Runtime's CPU kernel is the
// reference (test/conformance, test/Execution/onnx-ops.test).
//
//===----------------------------------------------------------------------===//

#include "HandlerUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::onnx_conv;

namespace {

/// The single float input X of an activation, or a located refusal.
FailureOr<Value> floatInput(onnxir::NodeOp node, StringRef name = "X") {
  if (failed(checkOperandCount(node, 1, 1)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, name);
  if (failed(x))
    return failure();
  if (!isFloat(*x)) {
    nodeError(node) << "expected a float input, got " << x->getType();
    return failure();
  }
  return *x;
}

/// Clip-13: x < min ? min : x, then max < y ? max : y, with min and max
/// optional scalars (rank 0, or one element of rank 1) that default to the
/// type's lowest and highest finite values (the schema's
/// numeric_limits::lowest() and max(): a float infinity is clipped to
/// +-FLT_MAX even without bounds). As ONNX Runtime's kernel computes it: a
/// NaN x stays NaN, a NaN bound leaves x as it is, and min > max gives max
/// everywhere (the schema's rule).
Values clip(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 1, 3)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "input");
  FailureOr<Value> lo = tensorOperand(node, 1, "min", std::nullopt, true);
  FailureOr<Value> hi = tensorOperand(node, 2, "max", std::nullopt, true);
  if (failed(x) || failed(lo) || failed(hi))
    return failure();
  Type elt = typeOf(*x).getElementType();
  if (!elt.isIntOrFloat() || elt.isInteger(1)) {
    nodeError(node) << "expected a numeric input, got " << x->getType();
    return failure();
  }
  Location loc = node.getLoc();
  bool isF = isa<FloatType>(elt), isU = elt.isUnsignedInteger();
  SmallVector<Value> operands = {*x};
  // Per bound (min, then max): its operand's index; -1 for an absent bound
  // of a float (the type's finite limit), -2 for one of an integer (which
  // would clip nothing).
  SmallVector<int> boundAt;
  for (auto [bound, name] : {std::pair{*lo, "min"}, std::pair{*hi, "max"}}) {
    if (!bound) {
      boundAt.push_back(isF ? -1 : -2);
      continue;
    }
    RankedTensorType t = typeOf(bound);
    if (t.getElementType() != elt) {
      nodeError(node) << "'" << name << "' must have the input's element type "
                      << elt << ", got " << bound.getType();
      return failure();
    }
    if (t.getRank() > 1 || (t.getRank() == 1 && t.getDimSize(0) != 1)) {
      nodeError(node) << "'" << name
                      << "' must be a scalar (rank 0, or one element), got "
                      << bound.getType();
      return failure();
    }
    if (t.getRank() == 1)
      bound = tensor::CollapseShapeOp::create(b, loc, bound,
                                              ArrayRef<ReassociationIndices>{});
    boundAt.push_back(operands.size());
    operands.push_back(bound);
  }
  if (boundAt[0] == -2 && boundAt[1] == -2)
    return SmallVector<Value>{*x};
  return elementwise(
      node, b, operands, [&](OpBuilder &nb, Location l, ValueRange a) -> Value {
        Value y = a[0];
        for (auto [i, at] : llvm::enumerate(boundAt)) {
          if (at == -2)
            continue;
          bool lower = i == 0;
          Value bound =
              at >= 0
                  ? a[at]
                  : Value(arith::ConstantOp::create(
                        nb, l,
                        nb.getFloatAttr(
                            elt, APFloat::getLargest(
                                     cast<FloatType>(elt).getFloatSemantics(),
                                     /*Negative=*/lower))));
          // lower: bound > y takes the bound; upper: bound < y.
          Value lhs = lower ? y : bound, rhs = lower ? bound : y;
          Value take =
              isF ? Value(arith::CmpFOp::create(
                        nb, l, arith::CmpFPredicate::OLT, lhs, rhs))
                  : Value(arith::CmpIOp::create(nb, l,
                                                isU ? arith::CmpIPredicate::ult
                                                    : arith::CmpIPredicate::slt,
                                                lhs, rhs));
          y = arith::SelectOp::create(nb, l, take, bound, y);
        }
        return y;
      });
}

/// And-7, Or-7, Xor-7 on bools; BitwiseAnd/Or/Xor-18 on integers. Both
/// with numpy broadcasting.
template <typename Op, bool Bitwise>
Values logical(onnxir::NodeOp node, RewriterBase &b) {
  FailureOr<std::pair<Value, Value>> ops = binaryOperands(node);
  if (failed(ops))
    return failure();
  Type elt = typeOf(ops->first).getElementType();
  bool ok =
      Bitwise ? isa<IntegerType>(elt) && !elt.isInteger(1) : elt.isInteger(1);
  if (!ok) {
    nodeError(node) << "expected " << (Bitwise ? "integer" : "bool")
                    << " inputs, got " << ops->first.getType();
    return failure();
  }
  return elementwise(node, b, {ops->first, ops->second},
                     [](OpBuilder &nb, Location l, ValueRange a) -> Value {
                       return Op::create(nb, l, a[0], a[1]);
                     });
}

/// BitwiseNot-18: all bits of an integer flipped.
Values bitwiseNot(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 1, 1)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "X");
  if (failed(x))
    return failure();
  Type elt = typeOf(*x).getElementType();
  if (!isa<IntegerType>(elt) || elt.isInteger(1)) {
    nodeError(node) << "expected an integer input, got " << x->getType();
    return failure();
  }
  return elementwise(
      node, b, {*x}, [](OpBuilder &nb, Location l, ValueRange a) -> Value {
        Type t = a[0].getType();
        Value ones = arith::ConstantOp::create(nb, l, nb.getIntegerAttr(t, -1));
        return arith::XOrIOp::create(nb, l, a[0], ones);
      });
}

/// IsNaN-13/20: bool, true where x is NaN.
Values isNaN(onnxir::NodeOp node, RewriterBase &b) {
  FailureOr<Value> x = floatInput(node);
  if (failed(x))
    return failure();
  return elementwise(
      node, b, {*x},
      [](OpBuilder &nb, Location l, ValueRange a) -> Value {
        return arith::CmpFOp::create(nb, l, arith::CmpFPredicate::UNO, a[0],
                                     a[0]);
      },
      b.getI1Type());
}

/// IsInf-10/20: bool, true where x is +inf (detect_positive, default 1) or
/// -inf (detect_negative, default 1).
Values isInf(onnxir::NodeOp node, RewriterBase &b) {
  FailureOr<Value> x = floatInput(node);
  FailureOr<int64_t> neg = intAttr(node, "detect_negative", 1);
  FailureOr<int64_t> pos = intAttr(node, "detect_positive", 1);
  if (failed(x) || failed(neg) || failed(pos))
    return failure();
  bool detectNeg = *neg != 0, detectPos = *pos != 0;
  return elementwise(
      node, b, {*x},
      [&](OpBuilder &nb, Location l, ValueRange a) -> Value {
        Type t = a[0].getType();
        auto inf = [&](bool negative) -> Value {
          return arith::ConstantOp::create(
              nb, l,
              nb.getFloatAttr(
                  t, APFloat::getInf(cast<FloatType>(t).getFloatSemantics(),
                                     negative)));
        };
        Value no = arith::ConstantOp::create(nb, l, nb.getBoolAttr(false));
        Value isPos =
            detectPos ? Value(arith::CmpFOp::create(
                            nb, l, arith::CmpFPredicate::OEQ, a[0], inf(false)))
                      : no;
        Value isNeg =
            detectNeg ? Value(arith::CmpFOp::create(
                            nb, l, arith::CmpFPredicate::OEQ, a[0], inf(true)))
                      : no;
        return arith::OrIOp::create(nb, l, isPos, isNeg);
      },
      b.getI1Type());
}

/// Round-11/22: to the nearest integer, halves to even.
Values round(onnxir::NodeOp node, RewriterBase &b) {
  FailureOr<Value> x = floatInput(node);
  if (failed(x))
    return failure();
  return elementwise(node, b, {*x},
                     [](OpBuilder &nb, Location l, ValueRange a) -> Value {
                       return math::RoundEvenOp::create(nb, l, a[0]);
                     });
}

/// Sum-13 and Mean-13: the elementwise sum (mean) of one or more inputs of
/// one element type, with numpy broadcasting; Mean on floats only.
template <bool IsMean> Values sumOrMean(onnxir::NodeOp node, RewriterBase &b) {
  FailureOr<SmallVector<Value>> inputs = variadicOperands(node);
  if (failed(inputs))
    return failure();
  SmallVector<Value> xs = std::move(*inputs);
  Type elt = typeOf(xs[0]).getElementType();
  bool isF = isa<FloatType>(elt);
  if ((IsMean && !isF) || !elt.isIntOrFloat() || elt.isInteger(1)) {
    nodeError(node) << "expected " << (IsMean ? "float" : "numeric")
                    << " inputs, got " << xs[0].getType();
    return failure();
  }
  double count = static_cast<double>(xs.size());
  return elementwise(
      node, b, xs, [&](OpBuilder &nb, Location l, ValueRange a) -> Value {
        Value acc = a[0];
        for (Value v : a.drop_front())
          acc = isF ? Value(arith::AddFOp::create(nb, l, acc, v))
                    : Value(arith::AddIOp::create(nb, l, acc, v));
        if (IsMean)
          acc = arith::DivFOp::create(nb, l, acc,
                                      scalar(nb, l, acc.getType(), count));
        return acc;
      });
}

//===----------------------------------------------------------------------===//
// Activations
//===----------------------------------------------------------------------===//

/// An activation y = fn(x, attributes) over a float X. `attrs` names the
/// float attributes and their defaults; fn sees them in that order.
using ActivationFn =
    function_ref<Value(OpBuilder &, Location, Value, ArrayRef<double>)>;

Values activation(onnxir::NodeOp node, RewriterBase &b,
                  ArrayRef<std::pair<StringRef, double>> attrs,
                  ActivationFn fn) {
  FailureOr<Value> x = floatInput(node);
  if (failed(x))
    return failure();
  SmallVector<double> values;
  for (auto [name, fallback] : attrs) {
    FailureOr<double> v = floatAttr(node, name, fallback);
    if (failed(v))
      return failure();
    values.push_back(*v);
  }
  return elementwise(node, b, {*x},
                     [&](OpBuilder &nb, Location l, ValueRange a) -> Value {
                       return fn(nb, l, a[0], values);
                     });
}

Value cst(OpBuilder &b, Location l, Value like, double v) {
  return scalar(b, l, like.getType(), v);
}
Value isNegative(OpBuilder &b, Location l, Value x) {
  return arith::CmpFOp::create(b, l, arith::CmpFPredicate::OLT, x,
                               cst(b, l, x, 0.0));
}
/// log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|)).
Value softplusOf(OpBuilder &b, Location l, Value x) {
  Value e = math::ExpOp::create(
      b, l, arith::NegFOp::create(b, l, math::AbsFOp::create(b, l, x)));
  return arith::AddFOp::create(
      b, l, arith::MaximumFOp::create(b, l, x, cst(b, l, x, 0.0)),
      math::Log1pOp::create(b, l, e));
}

/// LeakyRelu-6/16: x < 0 ? alpha x : x (alpha 0.01).
Values leakyRelu(onnxir::NodeOp node, RewriterBase &b) {
  return activation(
      node, b, {{"alpha", 0.01}},
      [](OpBuilder &nb, Location l, Value x, ArrayRef<double> p) -> Value {
        Value scaled = arith::MulFOp::create(nb, l, x, cst(nb, l, x, p[0]));
        return arith::SelectOp::create(nb, l, isNegative(nb, l, x), scaled, x);
      });
}

/// Elu-6/22: x < 0 ? alpha (exp(x) - 1) : x (alpha 1).
Values elu(onnxir::NodeOp node, RewriterBase &b) {
  return activation(
      node, b, {{"alpha", 1.0}},
      [](OpBuilder &nb, Location l, Value x, ArrayRef<double> p) -> Value {
        Value em1 = math::ExpM1Op::create(nb, l, x);
        Value neg = arith::MulFOp::create(nb, l, em1, cst(nb, l, x, p[0]));
        return arith::SelectOp::create(nb, l, isNegative(nb, l, x), neg, x);
      });
}

/// Selu-6/22: gamma (x <= 0 ? alpha (exp(x) - 1) : x), the schema's
/// default alpha and gamma.
Values selu(onnxir::NodeOp node, RewriterBase &b) {
  return activation(
      node, b,
      {{"alpha", 1.67326319217681884765625},
       {"gamma", 1.05070102214813232421875}},
      [](OpBuilder &nb, Location l, Value x, ArrayRef<double> p) -> Value {
        Value em1 = math::ExpM1Op::create(nb, l, x);
        Value neg = arith::MulFOp::create(nb, l, em1, cst(nb, l, x, p[0]));
        Value notPos = arith::CmpFOp::create(nb, l, arith::CmpFPredicate::OLE,
                                             x, cst(nb, l, x, 0.0));
        Value y = arith::SelectOp::create(nb, l, notPos, neg, x);
        return arith::MulFOp::create(nb, l, y, cst(nb, l, x, p[1]));
      });
}

/// HardSigmoid-6/22: max(0, min(1, alpha x + beta)) (alpha 0.2, beta 0.5).
Value hardSigmoidOf(OpBuilder &b, Location l, Value x, double alpha,
                    double beta) {
  Value y =
      math::FmaOp::create(b, l, x, cst(b, l, x, alpha), cst(b, l, x, beta));
  y = arith::MinimumFOp::create(b, l, y, cst(b, l, x, 1.0));
  return arith::MaximumFOp::create(b, l, y, cst(b, l, x, 0.0));
}
Values hardSigmoid(onnxir::NodeOp node, RewriterBase &b) {
  return activation(
      node, b, {{"alpha", 0.2}, {"beta", 0.5}},
      [](OpBuilder &nb, Location l, Value x, ArrayRef<double> p) -> Value {
        return hardSigmoidOf(nb, l, x, p[0], p[1]);
      });
}

/// HardSwish-14/22: x HardSigmoid(x) with alpha 1/6, beta 0.5.
Values hardSwish(onnxir::NodeOp node, RewriterBase &b) {
  return activation(
      node, b, {},
      [](OpBuilder &nb, Location l, Value x, ArrayRef<double>) -> Value {
        return arith::MulFOp::create(nb, l, x,
                                     hardSigmoidOf(nb, l, x, 1.0 / 6.0, 0.5));
      });
}

/// Softplus-1/22: log(exp(x) + 1), computed without overflow.
Values softplus(onnxir::NodeOp node, RewriterBase &b) {
  return activation(node, b, {},
                    [](OpBuilder &nb, Location l, Value x, ArrayRef<double>) {
                      return softplusOf(nb, l, x);
                    });
}

/// Softsign-1/22: x / (1 + |x|).
Values softsign(onnxir::NodeOp node, RewriterBase &b) {
  return activation(
      node, b, {},
      [](OpBuilder &nb, Location l, Value x, ArrayRef<double>) -> Value {
        Value d = arith::AddFOp::create(nb, l, cst(nb, l, x, 1.0),
                                        math::AbsFOp::create(nb, l, x));
        return arith::DivFOp::create(nb, l, x, d);
      });
}

/// Mish-18/22: x tanh(softplus(x)).
Values mish(onnxir::NodeOp node, RewriterBase &b) {
  return activation(
      node, b, {},
      [](OpBuilder &nb, Location l, Value x, ArrayRef<double>) -> Value {
        return arith::MulFOp::create(
            nb, l, x, math::TanhOp::create(nb, l, softplusOf(nb, l, x)));
      });
}

/// ThresholdedRelu-10/22: x > alpha ? x : 0 (alpha 1).
Values thresholdedRelu(onnxir::NodeOp node, RewriterBase &b) {
  return activation(
      node, b, {{"alpha", 1.0}},
      [](OpBuilder &nb, Location l, Value x, ArrayRef<double> p) -> Value {
        Value above = arith::CmpFOp::create(nb, l, arith::CmpFPredicate::OGT, x,
                                            cst(nb, l, x, p[0]));
        return arith::SelectOp::create(nb, l, above, x, cst(nb, l, x, 0.0));
      });
}

/// PRelu-9/16: x < 0 ? slope x : x on floats (integer PRelu, which ONNX
/// allows, is refused), slope broadcast one way to X.
Values prelu(onnxir::NodeOp node, RewriterBase &b) {
  FailureOr<std::pair<Value, Value>> ops = binaryOperands(node);
  if (failed(ops))
    return failure();
  auto [x, slope] = *ops;
  if (!isFloat(x)) {
    nodeError(node) << "expected a float input, got " << x.getType();
    return failure();
  }
  // One-way broadcasting: each slope dim is 1 or X's. A static slope dim
  // against a dynamic X dim could widen an X of 1 at run time (numpy
  // broadcasting would), so it is refused; so is a dynamic slope dim.
  RankedTensorType xt = typeOf(x), st = typeOf(slope);
  bool widens = st.getRank() > xt.getRank();
  for (int64_t i = 0; !widens && i < st.getRank(); ++i) {
    int64_t s = st.getDimSize(st.getRank() - 1 - i);
    int64_t d = xt.getDimSize(xt.getRank() - 1 - i);
    widens = s != 1 && (ShapedType::isDynamic(s) || d != s);
  }
  if (widens) {
    nodeError(node) << "slope " << slope.getType()
                    << " must broadcast one way to X " << x.getType()
                    << " (each slope dim 1 or X's, known at compile time)";
    return failure();
  }
  return elementwise(node, b, {x, slope},
                     [](OpBuilder &nb, Location l, ValueRange a) -> Value {
                       Value scaled = arith::MulFOp::create(nb, l, a[0], a[1]);
                       return arith::SelectOp::create(
                           nb, l, isNegative(nb, l, a[0]), scaled, a[0]);
                     });
}

} // namespace

void mlir::moe::onnx_conv::populateStandardElementwiseHandlers(
    OnnxHandlerRegistry &r) {
  r.add("", "Clip", 13, clip);
  r.add("", "And", 7, logical<arith::AndIOp, false>);
  r.add("", "Or", 7, logical<arith::OrIOp, false>);
  r.add("", "Xor", 7, logical<arith::XOrIOp, false>);
  r.add("", "BitwiseAnd", 18, logical<arith::AndIOp, true>);
  r.add("", "BitwiseOr", 18, logical<arith::OrIOp, true>);
  r.add("", "BitwiseXor", 18, logical<arith::XOrIOp, true>);
  r.add("", "BitwiseNot", 18, bitwiseNot);
  r.add("", "IsNaN", 13, isNaN);
  r.add("", "IsNaN", 20, isNaN);
  r.add("", "IsInf", 10, isInf);
  r.add("", "IsInf", 20, isInf);
  r.add("", "Sum", 13, sumOrMean<false>);
  r.add("", "Mean", 13, sumOrMean<true>);
  // The schemas of version 22 add bfloat16 only.
  for (int64_t v : {11, 22})
    r.add("", "Round", v, round);
  r.add("", "LeakyRelu", 6, leakyRelu);
  r.add("", "LeakyRelu", 16, leakyRelu);
  r.add("", "PRelu", 9, prelu);
  r.add("", "PRelu", 16, prelu);
  for (int64_t v : {6, 22}) {
    r.add("", "Elu", v, elu);
    r.add("", "Selu", v, selu);
    r.add("", "HardSigmoid", v, hardSigmoid);
  }
  for (int64_t v : {14, 22})
    r.add("", "HardSwish", v, hardSwish);
  for (int64_t v : {1, 22}) {
    r.add("", "Softplus", v, softplus);
    r.add("", "Softsign", v, softsign);
  }
  for (int64_t v : {18, 22})
    r.add("", "Mish", v, mish);
  for (int64_t v : {10, 22})
    r.add("", "ThresholdedRelu", v, thresholdedRelu);
}

//===- ShapeValues.cpp - shape values computed in an ONNX graph -----------===//

#include "ShapeValues.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/Matchers.h"
#include "llvm/ADT/StringSet.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::onnx_conv;

std::optional<double> onnx_conv::constantScalar(Value v) {
  auto cst = v.getDefiningOp<arith::ConstantOp>();
  if (!cst)
    return std::nullopt;
  auto dense = dyn_cast<DenseElementsAttr>(cst.getValue());
  if (!dense || dense.getNumElements() != 1)
    return std::nullopt;
  Type e = dense.getElementType();
  if (isa<FloatType>(e))
    return dense.getSplatValue<APFloat>().convertToDouble();
  if (auto it = dyn_cast<IntegerType>(e)) {
    APInt i = dense.getSplatValue<APInt>();
    return it.isUnsigned() ? static_cast<double>(i.getZExtValue())
                           : static_cast<double>(i.getSExtValue());
  }
  return std::nullopt;
}

namespace {

/// A small, statically shaped, signless integer tensor of rank <= 1.
bool isShapeType(Type type) {
  auto t = dyn_cast<RankedTensorType>(type);
  if (!t || t.getRank() > 1 || !t.hasStaticShape() ||
      t.getNumElements() > kMaxShapeElements)
    return false;
  auto i = dyn_cast<IntegerType>(t.getElementType());
  return i && i.isSignless();
}

} // namespace

std::optional<SmallVector<OpFoldResult>> onnx_conv::shapeScalars(Value v) {
  if (!isShapeType(v.getType()))
    return std::nullopt;
  Type elt = cast<RankedTensorType>(v.getType()).getElementType();
  if (auto cst = v.getDefiningOp<arith::ConstantOp>()) {
    auto dense = dyn_cast<DenseIntElementsAttr>(cst.getValue());
    if (!dense)
      return std::nullopt;
    SmallVector<OpFoldResult> out;
    for (APInt i : dense.getValues<APInt>())
      out.push_back(IntegerAttr::get(elt, i));
    return out;
  }
  if (auto fe = v.getDefiningOp<tensor::FromElementsOp>())
    return getAsOpFoldResult(ValueRange(fe.getElements()));
  return std::nullopt;
}

std::optional<SmallVector<OpFoldResult>>
onnx_conv::shapeElements(OpBuilder &b, Location loc, Value v) {
  auto t = dyn_cast<RankedTensorType>(v.getType());
  if (!t || t.getRank() > 1 || !t.hasStaticShape() ||
      t.getNumElements() > kMaxShapeElements ||
      !isa<IntegerType>(t.getElementType()) ||
      t.getElementType().getIntOrFloatBitWidth() < 8)
    return std::nullopt;
  bool isUnsigned = t.getElementType().isUnsignedInteger();
  auto toIndex = [&](Value s) -> OpFoldResult {
    if (isUnsigned)
      return arith::IndexCastUIOp::create(b, loc, b.getIndexType(), s)
          .getResult();
    return arith::IndexCastOp::create(b, loc, b.getIndexType(), s).getResult();
  };
  SmallVector<OpFoldResult> out;
  if (std::optional<SmallVector<OpFoldResult>> s = shapeScalars(v)) {
    for (OpFoldResult e : *s) {
      if (auto a = dyn_cast<Attribute>(e))
        out.push_back(b.getIndexAttr(cast<IntegerAttr>(a).getInt()));
      else
        out.push_back(toIndex(cast<Value>(e)));
    }
    return out;
  }
  if (auto cst = v.getDefiningOp<arith::ConstantOp>())
    if (auto dense = dyn_cast<DenseIntElementsAttr>(cst.getValue())) {
      for (APInt i : dense.getValues<APInt>())
        out.push_back(b.getIndexAttr(isUnsigned ? (int64_t)i.getZExtValue()
                                                : i.getSExtValue()));
      return out;
    }
  // Computed from data: read at run time.
  Value src = toSignless(b, loc, v);
  if (t.getRank() == 0)
    return SmallVector<OpFoldResult>{
        toIndex(tensor::ExtractOp::create(b, loc, src, ValueRange{}))};
  for (int64_t i = 0; i < t.getDimSize(0); ++i)
    out.push_back(toIndex(tensor::ExtractOp::create(
        b, loc, src, ValueRange{arith::ConstantIndexOp::create(b, loc, i)})));
  return out;
}

Value onnx_conv::makeShapeValue(OpBuilder &b, Location loc,
                                RankedTensorType type,
                                ArrayRef<OpFoldResult> entries) {
  Type elt = type.getElementType();
  unsigned width = elt.getIntOrFloatBitWidth();
  auto attrValue = [&](Attribute a) {
    return cast<IntegerAttr>(a).getValue().sextOrTrunc(width);
  };
  if (llvm::all_of(entries, [](OpFoldResult e) { return isa<Attribute>(e); })) {
    SmallVector<APInt> values = llvm::map_to_vector(
        entries, [&](OpFoldResult e) { return attrValue(cast<Attribute>(e)); });
    return arith::ConstantOp::create(b, loc,
                                     DenseElementsAttr::get(type, values));
  }
  SmallVector<Value> values = llvm::map_to_vector(entries, [&](OpFoldResult e) {
    if (auto a = dyn_cast<Attribute>(e))
      return Value(arith::ConstantOp::create(
          b, loc, IntegerAttr::get(elt, attrValue(a))));
    return cast<Value>(e);
  });
  return tensor::FromElementsOp::create(b, loc, type, values);
}

Range1D onnx_conv::sliceRange(int64_t dim, int64_t start, int64_t end,
                              int64_t step) {
  auto clamp = [](int64_t v, int64_t lo, int64_t hi) {
    return std::max(lo, std::min(v, hi));
  };
  // An empty axis has no element to start from (the clamps below would
  // give a negative step the span [0, -1], one element).
  if (dim <= 0)
    return {0, 0, step};
  if (start < 0)
    start += dim;
  if (end < 0)
    end += dim;
  if (step > 0) {
    start = clamp(start, 0, dim);
    end = clamp(end, 0, dim);
  } else {
    start = clamp(start, 0, dim - 1);
    end = clamp(end, -1, dim - 1);
  }
  // In 128 bits: a step near INT64_MAX (or INT64_MIN) must not wrap.
  __int128 st = step, span = step > 0 ? (__int128)end - start
                                      : (__int128)start - end;
  __int128 mag = step > 0 ? st : -st;
  __int128 size = span <= 0 ? 0 : (span + mag - 1) / mag;
  return {start, static_cast<int64_t>(size), step};
}

std::pair<Value, Value> onnx_conv::sliceRangeAt(OpBuilder &b, Location loc,
                                                Value dim, Value start,
                                                Value end, int64_t step) {
  auto c = [&](int64_t v) -> Value {
    return arith::ConstantIndexOp::create(b, loc, v);
  };
  auto wrap = [&](Value v) -> Value {
    Value negative =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, v, c(0));
    return arith::SelectOp::create(b, loc, negative,
                                   arith::AddIOp::create(b, loc, v, dim), v);
  };
  auto clamp = [&](Value v, Value lo, Value hi) -> Value {
    return arith::MinSIOp::create(b, loc,
                                  arith::MaxSIOp::create(b, loc, v, lo), hi);
  };
  start = wrap(start);
  end = wrap(end);
  Value span;
  if (step > 0) {
    start = clamp(start, c(0), dim);
    end = clamp(end, c(0), dim);
    span = arith::SubIOp::create(b, loc, end, start);
  } else {
    Value last = arith::SubIOp::create(b, loc, dim, c(1));
    start = clamp(start, c(0), last);
    end = clamp(end, c(-1), last);
    span = arith::SubIOp::create(b, loc, start, end);
  }
  int64_t s = step > 0 ? step : -step;
  span = arith::MaxSIOp::create(b, loc, span, c(0));
  Value size = arith::DivUIOp::create(
      b, loc, arith::AddIOp::create(b, loc, span, c(s - 1)), c(s));
  return {start, size};
}

//===----------------------------------------------------------------------===//
// Folding shape computations
//===----------------------------------------------------------------------===//

namespace {

using Entries = SmallVector<OpFoldResult>;

Value materialize(OpBuilder &b, Location loc, OpFoldResult e, Type elt) {
  if (auto a = dyn_cast<Attribute>(e))
    return arith::ConstantOp::create(
        b, loc,
        IntegerAttr::get(elt, cast<IntegerAttr>(a).getValue().sextOrTrunc(
                                  elt.getIntOrFloatBitWidth())));
  return cast<Value>(e);
}

std::optional<int64_t> intOf(OpFoldResult e) {
  if (auto a = dyn_cast<Attribute>(e))
    return cast<IntegerAttr>(a).getValue().getSExtValue();
  return std::nullopt;
}

/// Constant integer attribute `name` of `node`, or `fallback`.
std::optional<int64_t> attrInt(onnxir::NodeOp node, StringRef name,
                               std::optional<int64_t> fallback) {
  Attribute a = node.getNodeAttributes().get(name);
  if (!a)
    return fallback;
  if (auto i = dyn_cast<IntegerAttr>(a))
    return i.getInt();
  return std::nullopt;
}

RankedTensorType shapeType(MLIRContext *ctx, int64_t rank, int64_t n,
                           Type elt) {
  return rank == 0 ? RankedTensorType::get({}, elt)
                   : RankedTensorType::get({n}, elt);
}

/// Two shape values combined elementwise with numpy broadcasting (one side
/// may hold a single entry).
std::optional<SmallVector<Value>>
foldBinary(onnxir::NodeOp node, RewriterBase &b, ArrayRef<Entries> in,
           ArrayRef<int64_t> ranks, Type elt, Type resultElt,
           function_ref<Value(Value, Value)> fn) {
  size_t n = std::max(in[0].size(), in[1].size());
  if ((in[0].size() != n && in[0].size() != 1) ||
      (in[1].size() != n && in[1].size() != 1))
    return std::nullopt;
  Location loc = node.getLoc();
  Entries out;
  for (size_t i = 0; i < n; ++i) {
    Value x = materialize(b, loc, in[0][in[0].size() == 1 ? 0 : i], elt);
    Value y = materialize(b, loc, in[1][in[1].size() == 1 ? 0 : i], elt);
    out.push_back(getAsOpFoldResult(fn(x, y)));
  }
  int64_t rank = std::max(ranks[0], ranks[1]);
  return SmallVector<Value>{makeShapeValue(
      b, loc, shapeType(b.getContext(), rank, n, resultElt), out)};
}

} // namespace

std::optional<SmallVector<Value>>
onnx_conv::foldShapeNode(onnxir::NodeOp node, RewriterBase &b) {
  if (!node.getDomain().empty() || node.getNumResults() != 1)
    return std::nullopt;
  StringRef op = node.getOpType();
  static const llvm::StringSet<llvm::MallocAllocator> kOps = {
      "Gather", "Concat", "Slice", "Squeeze", "Unsqueeze", "Cast",
      "Add",    "Sub",    "Mul",   "Div",     "Mod",       "Max",
      "Min",    "Equal",  "Less",  "Greater", "Where"};
  if (!kOps.contains(op))
    return std::nullopt;
  SmallVector<Value> inputs(node.getInputs());
  SmallVector<Entries> in;
  SmallVector<int64_t> ranks;
  for (Value v : inputs) {
    std::optional<Entries> s = shapeScalars(v);
    if (!s)
      return std::nullopt;
    in.push_back(*s);
    ranks.push_back(cast<RankedTensorType>(v.getType()).getRank());
  }
  if (in.empty())
    return std::nullopt;
  MLIRContext *ctx = b.getContext();
  Location loc = node.getLoc();
  Type elt = cast<RankedTensorType>(inputs[0].getType()).getElementType();
  auto result = [&](int64_t rank, const Entries &entries,
                    Type type = {}) -> SmallVector<Value> {
    return {makeShapeValue(b, loc,
                           shapeType(ctx, rank, entries.size(),
                                     type ? type : elt),
                           entries)};
  };
  auto allConstant = [](const Entries &e) {
    return llvm::all_of(e, [](OpFoldResult x) { return isa<Attribute>(x); });
  };

  if (op == "Gather") {
    std::optional<int64_t> axis = attrInt(node, "axis", 0);
    if (inputs.size() != 2 || ranks[0] != 1 || ranks[1] > 1 || !axis ||
        (*axis != 0 && *axis != -1) || !allConstant(in[1]))
      return std::nullopt;
    int64_t n = in[0].size();
    Entries out;
    for (OpFoldResult i : in[1]) {
      int64_t k = *intOf(i);
      if (k < 0)
        k += n;
      if (k < 0 || k >= n)
        return std::nullopt; // the handler reports it at run time
      out.push_back(in[0][k]);
    }
    return result(ranks[1], out);
  }
  if (op == "Concat") {
    std::optional<int64_t> axis = attrInt(node, "axis", std::nullopt);
    if (!axis || (*axis != 0 && *axis != -1))
      return std::nullopt;
    Entries out;
    for (auto [r, e] : llvm::zip(ranks, in)) {
      if (r != 1)
        return std::nullopt;
      llvm::append_range(out, e);
    }
    for (Value v : inputs)
      if (cast<RankedTensorType>(v.getType()).getElementType() != elt)
        return std::nullopt;
    return result(1, out);
  }
  if (op == "Slice") {
    if (inputs.size() < 3 || ranks[0] != 1)
      return std::nullopt;
    for (size_t i = 1; i < inputs.size(); ++i)
      if (!allConstant(in[i]) || in[i].size() != 1)
        return std::nullopt;
    if (inputs.size() > 3 && *intOf(in[3][0]) != 0 && *intOf(in[3][0]) != -1)
      return std::nullopt;
    int64_t step = inputs.size() > 4 ? *intOf(in[4][0]) : 1;
    if (step == 0)
      return std::nullopt;
    Range1D r = sliceRange(in[0].size(), *intOf(in[1][0]), *intOf(in[2][0]),
                           step);
    Entries out;
    for (int64_t i = 0; i < r.size; ++i)
      out.push_back(in[0][r.start + i * r.step]);
    return result(1, out);
  }
  if (op == "Squeeze" || op == "Unsqueeze") {
    bool squeeze = op == "Squeeze";
    if (ranks[0] != (squeeze ? 1 : 0) || in[0].size() != 1)
      return std::nullopt;
    if (inputs.size() > 1) {
      if (!allConstant(in[1]) || in[1].size() != 1)
        return std::nullopt;
      int64_t a = *intOf(in[1][0]);
      if (a != 0 && a != -1)
        return std::nullopt;
    } else if (!squeeze) {
      return std::nullopt;
    }
    return result(squeeze ? 0 : 1, in[0]);
  }
  if (op == "Cast") {
    std::optional<int64_t> to = attrInt(node, "to", std::nullopt);
    // ONNX TensorProto element types: INT8 3, INT16 5, INT32 6, INT64 7,
    // BOOL 9.
    unsigned width = 0;
    if (to == 3)
      width = 8;
    else if (to == 5)
      width = 16;
    else if (to == 6)
      width = 32;
    else if (to == 7)
      width = 64;
    else if (to == 9)
      width = 1;
    if (!width)
      return std::nullopt;
    Type dst = b.getIntegerType(width);
    unsigned srcWidth = elt.getIntOrFloatBitWidth();
    Entries out;
    for (OpFoldResult e : in[0]) {
      Value v = materialize(b, loc, e, elt);
      Value c;
      if (width == 1)
        c = b.createOrFold<arith::CmpIOp>(
            loc, arith::CmpIPredicate::ne, v,
            arith::ConstantOp::create(b, loc, IntegerAttr::get(elt, 0)));
      else if (width == srcWidth)
        c = v;
      else if (width < srcWidth)
        c = b.createOrFold<arith::TruncIOp>(loc, dst, v);
      else if (srcWidth == 1)
        c = b.createOrFold<arith::ExtUIOp>(loc, dst, v);
      else
        c = b.createOrFold<arith::ExtSIOp>(loc, dst, v);
      out.push_back(getAsOpFoldResult(c));
    }
    return result(ranks[0], out, dst);
  }
  if (op == "Where") {
    if (inputs.size() != 3 || !elt.isInteger(1))
      return std::nullopt;
    Type valueElt = cast<RankedTensorType>(inputs[1].getType()).getElementType();
    if (cast<RankedTensorType>(inputs[2].getType()).getElementType() !=
        valueElt)
      return std::nullopt;
    size_t n = std::max({in[0].size(), in[1].size(), in[2].size()});
    for (const Entries &e : in)
      if (e.size() != n && e.size() != 1)
        return std::nullopt;
    Entries out;
    for (size_t i = 0; i < n; ++i) {
      auto at = [&](int k) { return in[k][in[k].size() == 1 ? 0 : i]; };
      Value c = materialize(b, loc, at(0), elt);
      Value x = materialize(b, loc, at(1), valueElt);
      Value y = materialize(b, loc, at(2), valueElt);
      out.push_back(getAsOpFoldResult(
          b.createOrFold<arith::SelectOp>(loc, c, x, y)));
    }
    int64_t rank = std::max({ranks[0], ranks[1], ranks[2]});
    return result(rank, out, valueElt);
  }
  // Binary integer arithmetic and comparisons.
  if (inputs.size() != 2 || elt.isInteger(1) ||
      cast<RankedTensorType>(inputs[1].getType()).getElementType() != elt)
    return std::nullopt;
  auto binary = [&](Type resultElt, function_ref<Value(Value, Value)> fn) {
    return foldBinary(node, b, in, ranks, elt, resultElt, fn);
  };
  if (op == "Add")
    return binary(elt, [&](Value x, Value y) {
      return b.createOrFold<arith::AddIOp>(loc, x, y);
    });
  if (op == "Sub")
    return binary(elt, [&](Value x, Value y) {
      return b.createOrFold<arith::SubIOp>(loc, x, y);
    });
  if (op == "Mul")
    return binary(elt, [&](Value x, Value y) {
      return b.createOrFold<arith::MulIOp>(loc, x, y);
    });
  if (op == "Max")
    return binary(elt, [&](Value x, Value y) {
      return b.createOrFold<arith::MaxSIOp>(loc, x, y);
    });
  if (op == "Min")
    return binary(elt, [&](Value x, Value y) {
      return b.createOrFold<arith::MinSIOp>(loc, x, y);
    });
  // Div and Mod only by constants other than 0 and -1, which cannot trap: a
  // zero divisor and the minimum over -1 are left to the handler's checks.
  auto trapFreeDivisor = [&] {
    return llvm::all_of(in[1], [&](OpFoldResult d) {
      std::optional<int64_t> c = intOf(d);
      return c && *c != 0 && *c != -1;
    });
  };
  if (op == "Div") {
    if (!trapFreeDivisor())
      return std::nullopt;
    return binary(elt, [&](Value x, Value y) {
      return b.createOrFold<arith::DivSIOp>(loc, x, y);
    });
  }
  if (op == "Mod") {
    // fmod = 0: the remainder takes the divisor's sign (Python's %).
    std::optional<int64_t> fmod = attrInt(node, "fmod", 0);
    if (!fmod || (*fmod != 0 && *fmod != 1) || !trapFreeDivisor())
      return std::nullopt;
    return binary(elt, [&](Value x, Value y) {
      Value r = b.createOrFold<arith::RemSIOp>(loc, x, y);
      if (*fmod)
        return r;
      Value zero = arith::ConstantOp::create(b, loc, IntegerAttr::get(elt, 0));
      auto cmp = [&](arith::CmpIPredicate p, Value u, Value v) {
        return b.createOrFold<arith::CmpIOp>(loc, p, u, v);
      };
      Value fix = b.createOrFold<arith::AndIOp>(
          loc, cmp(arith::CmpIPredicate::ne, r, zero),
          cmp(arith::CmpIPredicate::ne, cmp(arith::CmpIPredicate::slt, r, zero),
              cmp(arith::CmpIPredicate::slt, y, zero)));
      return b.createOrFold<arith::SelectOp>(
          loc, fix, b.createOrFold<arith::AddIOp>(loc, r, y), r);
    });
  }
  Type i1 = b.getI1Type();
  arith::CmpIPredicate pred;
  if (op == "Equal")
    pred = arith::CmpIPredicate::eq;
  else if (op == "Less")
    pred = arith::CmpIPredicate::slt;
  else if (op == "Greater")
    pred = arith::CmpIPredicate::sgt;
  else
    return std::nullopt;
  return binary(i1, [&](Value x, Value y) {
    return b.createOrFold<arith::CmpIOp>(loc, pred, x, y);
  });
}

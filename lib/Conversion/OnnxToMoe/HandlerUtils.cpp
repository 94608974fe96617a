//===- HandlerUtils.cpp - helpers for ONNX node handlers -------------------===//

#include "HandlerUtils.h"

#include "moe/Utils/BuildUtils.h"
#include "moe/Utils/RuntimeErrors.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
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

FailureOr<std::pair<Value, Value>>
onnx_conv::binaryOperands(onnxir::NodeOp node) {
  if (failed(checkOperandCount(node, 2, 2)))
    return failure();
  FailureOr<Value> lhs = tensorOperand(node, 0, "A");
  FailureOr<Value> rhs = tensorOperand(node, 1, "B");
  if (failed(lhs) || failed(rhs))
    return failure();
  if (cast<RankedTensorType>(lhs->getType()).getElementType() !=
      cast<RankedTensorType>(rhs->getType()).getElementType()) {
    nodeError(node) << "inputs have different element types: "
                    << lhs->getType() << " and " << rhs->getType();
    return failure();
  }
  return std::make_pair(*lhs, *rhs);
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

FailureOr<SmallVector<int64_t>>
onnx_conv::constantIntsOperand(onnxir::NodeOp node, unsigned index,
                               StringRef name,
                               std::optional<SmallVector<int64_t>> fallback) {
  if (index >= node.getInputs().size() ||
      isa<NoneType>(node.getInputs()[index].getType())) {
    if (fallback)
      return *fallback;
    nodeError(node) << "input " << index << " (" << name << ") is required";
    return failure();
  }
  std::optional<SmallVector<int64_t>> values =
      constantInts(node.getInputs()[index]);
  if (!values) {
    nodeError(node) << "input " << index << " (" << name
                    << ") must be a constant (an initializer or a Constant "
                       "node); computed values are not supported";
    return failure();
  }
  return *values;
}

Value onnx_conv::wrappedIndex(OpBuilder &b, Location loc, Value raw,
                              Value bound) {
  Value i = arith::IndexCastOp::create(b, loc, b.getIndexType(), raw);
  Value zero = arith::ConstantIndexOp::create(b, loc, 0);
  Value negative =
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, i, zero);
  Value wrapped = arith::SelectOp::create(
      b, loc, negative, arith::AddIOp::create(b, loc, i, bound), i);
  return build::checkedIndex(b, loc, wrapped, bound, kErrorIndexOutOfRange);
}

FailureOr<int64_t> onnx_conv::normalizeAxis(onnxir::NodeOp node, int64_t axis,
                                            int64_t rank) {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) {
    nodeError(node) << "axis " << axis << " is out of range for rank " << rank;
    return failure();
  }
  return a;
}

RankedTensorType onnx_conv::typeOf(Value v) {
  return cast<RankedTensorType>(v.getType());
}

bool onnx_conv::isFloat(Value v) {
  return isa<FloatType>(typeOf(v).getElementType());
}

Value onnx_conv::scalar(OpBuilder &b, Location loc, Type type, double v) {
  if (isa<FloatType>(type))
    return arith::ConstantOp::create(b, loc, b.getFloatAttr(type, v));
  return arith::ConstantOp::create(b, loc,
                                   b.getIntegerAttr(type, (int64_t)v));
}

void onnx_conv::yield(OpBuilder &b, Location loc, Value v) {
  linalg::YieldOp::create(b, loc, ValueRange{v});
}

static Type signlessOf(Type t) {
  if (auto i = dyn_cast<IntegerType>(t); i && !i.isSignless())
    return IntegerType::get(t.getContext(), i.getWidth());
  return t;
}

Value onnx_conv::toElementType(OpBuilder &b, Location loc, Value v,
                               Type element) {
  RankedTensorType t = typeOf(v);
  if (t.getElementType() == element)
    return v;
  return tensor::BitcastOp::create(b, loc, t.clone(element), v);
}

Value onnx_conv::gatherByIndices(OpBuilder &b, Location loc,
                                 ArrayRef<OpFoldResult> sizes, Value source,
                                 CoordsFn coords) {
  int64_t rank = sizes.size();
  Value init =
      build::emptyTensor(b, loc, sizes, typeOf(source).getElementType());
  return linalg::GenericOp::create(
             b, loc, TypeRange{init.getType()}, ValueRange{}, ValueRange{init},
             SmallVector<AffineMap>{b.getMultiDimIdentityMap(rank)},
             SmallVector<utils::IteratorType>(rank,
                                              utils::IteratorType::parallel),
             [&](OpBuilder &nb, Location nl, ValueRange) {
               SmallVector<Value> indices;
               for (int64_t d = 0; d < rank; ++d)
                 indices.push_back(linalg::IndexOp::create(nb, nl, d));
               yield(nb, nl,
                     tensor::ExtractOp::create(nb, nl, source,
                                               coords(nb, nl, indices)));
             })
      .getResult(0);
}

Value onnx_conv::toSignless(OpBuilder &b, Location loc, Value v) {
  return toElementType(b, loc, v, signlessOf(typeOf(v).getElementType()));
}

FailureOr<SmallVector<Value>> onnx_conv::variadicOperands(onnxir::NodeOp node) {
  if (node.getInputs().empty()) {
    nodeError(node) << "expected at least one input";
    return failure();
  }
  SmallVector<Value> xs;
  for (unsigned i = 0; i < node.getInputs().size(); ++i) {
    FailureOr<Value> x = tensorOperand(node, i, "data_" + std::to_string(i));
    if (failed(x))
      return failure();
    if (!xs.empty() &&
        typeOf(*x).getElementType() != typeOf(xs[0]).getElementType()) {
      nodeError(node) << "inputs differ in element type: " << xs[0].getType()
                      << " and " << x->getType();
      return failure();
    }
    xs.push_back(*x);
  }
  return xs;
}

Values onnx_conv::elementwise(onnxir::NodeOp node, RewriterBase &b,
                              ValueRange operandsIn, ScalarFn fn,
                              Type resultElement) {
  Location loc = node.getLoc();
  SmallVector<Value> operands = llvm::map_to_vector(
      operandsIn, [&](Value v) { return toSignless(b, loc, v); });
  int64_t rank = 0;
  for (Value v : operands)
    rank = std::max(rank, typeOf(v).getRank());
  // Result sizes (numpy/ONNX broadcasting): a static size other than 1 wins;
  // dynamic sizes are combined at run time (a 1 takes the other size).
  SmallVector<OpFoldResult> sizes(rank);
  SmallVector<int64_t> shape(rank, 1);
  SmallVector<SmallVector<unsigned>> dynamicAt(rank); // operands, per dim
  for (int64_t i = 0; i < rank; ++i) {
    for (auto [j, v] : llvm::enumerate(operands)) {
      RankedTensorType t = typeOf(v);
      int64_t d = i - (rank - t.getRank());
      if (d < 0)
        continue;
      int64_t size = t.getDimSize(d);
      if (ShapedType::isDynamic(size)) {
        dynamicAt[i].push_back(j);
        continue;
      }
      if (size == 1)
        continue;
      if (shape[i] != 1 && shape[i] != size) {
        nodeError(node) << "inputs of shapes " << operandsIn[0].getType()
                        << " and " << v.getType() << " do not broadcast";
        return failure();
      }
      shape[i] = size;
    }
    if (shape[i] != 1 || dynamicAt[i].empty()) {
      sizes[i] = b.getIndexAttr(shape[i]);
      continue;
    }
    shape[i] = ShapedType::kDynamic;
    Value one = arith::ConstantIndexOp::create(b, loc, 1);
    Value size;
    for (unsigned j : dynamicAt[i]) {
      Value v = operands[j];
      Value dim = tensor::DimOp::create(
          b, loc, v, i - (rank - typeOf(v).getRank()));
      size = !size ? dim
                   : Value(arith::SelectOp::create(
                         b, loc,
                         arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                               size, one),
                         dim, size));
    }
    sizes[i] = size;
  }
  // Every dynamic operand dim is brought to the result size at run time:
  // equal sizes pass, a size of 1 is repeated, anything else is reported.
  // A dim that alone defines a dynamic result size needs nothing.
  for (int64_t i = 0; i < rank; ++i) {
    if (ShapedType::isDynamic(shape[i]) && dynamicAt[i].size() == 1)
      continue;
    for (unsigned j : dynamicAt[i]) {
      Value &v = operands[j];
      v = build::broadcastDim(b, loc, v, i - (rank - typeOf(v).getRank()),
                              sizes[i], kErrorShapeMismatch);
    }
  }
  MLIRContext *ctx = b.getContext();
  SmallVector<AffineMap> maps;
  for (Value v : operands) {
    RankedTensorType t = typeOf(v);
    SmallVector<AffineExpr> exprs;
    for (int64_t d = 0; d < t.getRank(); ++d) {
      int64_t i = d + (rank - t.getRank());
      bool broadcast = t.getDimSize(d) == 1 && shape[i] != 1;
      exprs.push_back(broadcast ? getAffineConstantExpr(0, ctx)
                                : getAffineDimExpr(i, ctx));
    }
    maps.push_back(AffineMap::get(rank, 0, exprs, ctx));
  }
  maps.push_back(b.getMultiDimIdentityMap(rank));
  Type declared = resultElement ? resultElement
                                : typeOf(operandsIn[0]).getElementType();
  Type elt = signlessOf(declared);
  Value init = build::emptyTensor(b, loc, sizes, elt);
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{init.getType()}, operands, ValueRange{init}, maps,
      SmallVector<utils::IteratorType>(rank, utils::IteratorType::parallel),
      [&](OpBuilder &nb, Location nl, ValueRange args) {
        yield(nb, nl, fn(nb, nl, args.drop_back()));
      });
  return SmallVector<Value>{
      toElementType(b, loc, generic.getResult(0), declared)};
}

SmallVector<ReassociationIndices>
onnx_conv::foldUnitDims(int64_t rank, ArrayRef<bool> dropped) {
  SmallVector<ReassociationIndices> groups;
  ReassociationIndices pending;
  for (int64_t d = 0; d < rank; ++d) {
    pending.push_back(d);
    if (!dropped[d]) {
      groups.push_back(pending);
      pending.clear();
    }
  }
  if (!pending.empty() && !groups.empty())
    llvm::append_range(groups.back(), pending);
  return groups;
}

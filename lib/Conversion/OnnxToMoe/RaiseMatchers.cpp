//===- RaiseMatchers.cpp - what moe-raise-onnx's matchers share ----------===//
//
// See RaiseMatchers.h.
//
//===----------------------------------------------------------------------===//

#include "RaiseMatchers.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringSwitch.h"

#include <cmath>
#include <cstring>
#include <vector>

using namespace mlir;
using namespace mlir::moe;

unsigned raise::requiredInputs(StringRef opType) {
  return llvm::StringSwitch<unsigned>(opType)
      .Case("Constant", 0)
      .Cases({"MatMul", "Add", "Sub", "Mul", "Div", "Pow", "Gather", "Reshape",
              "Expand", "Equal", "Gemm"},
             2)
      .Cases({"Where", "Range", "ScatterElements", "OneHot", "ScatterND"}, 3)
      .Case("GatherND", 2)
      .Default(1);
}

onnxir::NodeOp raise::producer(Value v, StringRef opType) {
  auto node = v ? v.getDefiningOp<onnxir::NodeOp>() : onnxir::NodeOp();
  if (!node || !node.getDomain().empty() || node.getOpType() != opType ||
      node.getInputs().size() < requiredInputs(opType))
    return {};
  return node;
}

DenseElementsAttr raise::constantOf(Value v) {
  if (auto cst = v.getDefiningOp<arith::ConstantOp>())
    return dyn_cast<DenseElementsAttr>(cst.getValue());
  if (onnxir::NodeOp node = producer(v, "Constant")) {
    DictionaryAttr attrs = node.getNodeAttributes();
    if (auto value = dyn_cast_or_null<DenseElementsAttr>(attrs.get("value")))
      return value;
    // value_ints / value_int (the dynamo exporter's shape pieces).
    Builder b(v.getContext());
    if (auto ints =
            dyn_cast_or_null<DenseI64ArrayAttr>(attrs.get("value_ints")))
      return DenseElementsAttr::get(
          RankedTensorType::get({(int64_t)ints.size()}, b.getI64Type()),
          ints.asArrayRef());
    if (auto i = dyn_cast_or_null<IntegerAttr>(attrs.get("value_int")))
      return DenseElementsAttr::get(RankedTensorType::get({}, b.getI64Type()),
                                    i.getInt());
  }
  return {};
}

std::optional<int64_t> raise::intAttrOf(onnxir::NodeOp node, StringRef name) {
  if (auto a =
          dyn_cast_or_null<IntegerAttr>(node.getNodeAttributes().get(name)))
    return a.getInt();
  return std::nullopt;
}

std::optional<int64_t> raise::strictInt(onnxir::NodeOp node, StringRef name,
                                        int64_t otherwise) {
  Attribute a = node.getNodeAttributes().get(name);
  if (!a)
    return otherwise;
  if (auto i = dyn_cast<IntegerAttr>(a))
    return i.getInt();
  return std::nullopt;
}

std::optional<std::array<std::string, 3>>
raise::einsumOf(Value v, onnxir::NodeOp &node) {
  node = producer(v, "Einsum");
  if (!node || node.getInputs().size() != 2)
    return std::nullopt;
  auto eq =
      dyn_cast_or_null<StringAttr>(node.getNodeAttributes().get("equation"));
  if (!eq)
    return std::nullopt;
  std::string s;
  for (char c : eq.getValue())
    if (c != ' ')
      s += c;
  size_t comma = s.find(','), arrow = s.find("->");
  if (comma == std::string::npos || arrow == std::string::npos ||
      arrow < comma || s.find('.') != std::string::npos)
    return std::nullopt;
  return std::array<std::string, 3>{s.substr(0, comma),
                                    s.substr(comma + 1, arrow - comma - 1),
                                    s.substr(arrow + 2)};
}

namespace {

/// Whether subscripts `got` follow `pattern` letter for letter under one
/// consistent renaming (`names` maps pattern letters to got letters).
bool matchSubscripts(StringRef pattern, StringRef got,
                     llvm::DenseMap<char, char> &names) {
  if (pattern.size() != got.size())
    return false;
  for (auto [p, g] : llvm::zip(pattern, got)) {
    auto [it, inserted] = names.try_emplace(p, g);
    if (!inserted && it->second != g)
      return false;
  }
  // Distinct pattern letters stay distinct.
  llvm::SmallDenseSet<char> seen;
  for (auto &kv : names)
    if (!seen.insert(kv.second).second)
      return false;
  return true;
}

} // namespace

bool raise::matchEquation(const std::array<std::string, 3> &eq, StringRef lhs,
                          StringRef rhs, StringRef out) {
  llvm::DenseMap<char, char> names;
  return matchSubscripts(lhs, eq[0], names) &&
         matchSubscripts(rhs, eq[1], names) &&
         matchSubscripts(out, eq[2], names);
}

/// The bytes of one element of `a` where its storage is one whole number
/// of bytes per element (not i1, which is bit-packed), else 0.
static size_t elementBytes(DenseElementsAttr a) {
  unsigned bits = a.getElementType().getIntOrFloatBitWidth();
  return bits >= 8 && bits % 8 == 0 ? bits / 8 : 0;
}

DenseElementsAttr raise::transpose2d(DenseElementsAttr a) {
  auto t = a.getType();
  int64_t rows = t.getDimSize(0), cols = t.getDimSize(1);
  auto type = RankedTensorType::get({cols, rows}, t.getElementType());
  if (a.isSplat())
    return DenseElementsAttr::get(type, a.getSplatValue<Attribute>());
  // Byte copies of the raw storage: a weight through per-element
  // Attributes (uniqued FloatAttrs that stay in the context) took most of
  // a 135 MB model's 44 s compile and 2.5 GB.
  if (size_t bytes = elementBytes(a)) {
    ArrayRef<char> in = a.getRawData();
    std::vector<char> out(in.size());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        std::memcpy(&out[(c * rows + r) * bytes], &in[(r * cols + c) * bytes],
                    bytes);
    return DenseElementsAttr::getFromRawBuffer(type, out);
  }
  SmallVector<Attribute> in(a.getValues<Attribute>());
  SmallVector<Attribute> out(in.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      out[c * rows + r] = in[r * cols + c];
  return DenseElementsAttr::get(type, out);
}

std::optional<SmallVector<int64_t>> raise::intsOf(Value v) {
  DenseElementsAttr a = constantOf(v);
  if (!a || !isa<IntegerType>(a.getElementType()))
    return std::nullopt;
  // Bool and unsigned elements zero-extended (true is 1, uint8 255 is 255).
  auto t = cast<IntegerType>(a.getElementType());
  bool zext = t.getWidth() == 1 || t.isUnsigned();
  return llvm::map_to_vector(a.getValues<APInt>(), [&](const APInt &i) {
    return zext ? (int64_t)i.getZExtValue() : i.getSExtValue();
  });
}

bool raise::isInts(Value v, ArrayRef<int64_t> want) {
  std::optional<SmallVector<int64_t>> got = intsOf(v);
  return got && ArrayRef<int64_t>(*got) == want;
}

Value raise::unsqueezed(Value u, int64_t axis) {
  onnxir::NodeOp n = producer(u, "Unsqueeze");
  if (!n || n.getInputs().size() != 2 || !isInts(n.getInputs()[1], {axis}))
    return {};
  return n.getInputs()[0];
}

std::optional<APFloat> raise::oneElementFloat(Value v, int64_t maxRank,
                                              Type type) {
  DenseElementsAttr c = constantOf(v);
  if (!c || c.getNumElements() != 1 || c.getType().getRank() > maxRank ||
      !isa<FloatType>(c.getElementType()) ||
      (type && c.getElementType() != type))
    return std::nullopt;
  return *c.getValues<APFloat>().begin();
}

namespace {

/// The one-element float constant of `v` (rank 0 or 1), if any.
std::optional<double> scalarConstant(Value v) {
  std::optional<APFloat> c = raise::oneElementFloat(v, 1);
  return c ? std::optional<double>(c->convertToDouble()) : std::nullopt;
}

bool near(std::optional<double> v, double want) {
  return v && std::abs(*v - want) <= 1e-6 * std::abs(want);
}

/// The x of exact GELU as exporters before opset 20 write it:
/// Mul(Mul(x, Add(Erf(Div(x, sqrt(2))), 1)), 0.5), the products and the
/// sum in either order, the Div possibly Mul(x, 1/sqrt(2)).
Value exactGeluInput(onnxir::NodeOp outer) {
  for (int i = 0; i < 2; ++i) {
    if (!near(scalarConstant(outer.getInputs()[1 - i]), 0.5))
      continue;
    onnxir::NodeOp inner = raise::producer(outer.getInputs()[i], "Mul");
    for (int j = 0; inner && j < 2; ++j) {
      Value x = inner.getInputs()[j];
      onnxir::NodeOp add = raise::producer(inner.getInputs()[1 - j], "Add");
      for (int k = 0; add && k < 2; ++k) {
        if (!near(scalarConstant(add.getInputs()[1 - k]), 1.0))
          continue;
        onnxir::NodeOp erf = raise::producer(add.getInputs()[k], "Erf");
        Value arg = erf ? erf.getInputs()[0] : Value();
        if (onnxir::NodeOp div = raise::producer(arg, "Div"))
          if (div.getInputs()[0] == x &&
              near(scalarConstant(div.getInputs()[1]), std::sqrt(2.0)))
            return x;
        if (onnxir::NodeOp mul = raise::producer(arg, "Mul"))
          for (int l = 0; l < 2; ++l)
            if (mul.getInputs()[l] == x &&
                near(scalarConstant(mul.getInputs()[1 - l]),
                     1.0 / std::sqrt(2.0)))
              return x;
      }
    }
  }
  return {};
}

} // namespace

FailureOr<std::pair<std::string, Value>> raise::matchActivation(Value a) {
  if (onnxir::NodeOp relu = producer(a, "Relu"))
    return std::make_pair(std::string("relu"), relu.getInputs()[0]);
  if (onnxir::NodeOp gelu = producer(a, "Gelu")) {
    auto approx = dyn_cast_or_null<StringAttr>(
        gelu.getNodeAttributes().get("approximate"));
    if (approx && approx.getValue() != "none")
      return failure();
    return std::make_pair(std::string("gelu"), gelu.getInputs()[0]);
  }
  if (onnxir::NodeOp mul = producer(a, "Mul")) {
    for (int i = 0; i < 2; ++i) {
      onnxir::NodeOp sg = producer(mul.getInputs()[1 - i], "Sigmoid");
      if (sg && sg.getInputs()[0] == mul.getInputs()[i])
        return std::make_pair(std::string("silu"), mul.getInputs()[i]);
    }
    if (Value x = exactGeluInput(mul))
      return std::make_pair(std::string("gelu"), x);
  }
  if (producer(a, "Einsum"))
    return std::make_pair(std::string("identity"), a);
  return failure();
}

DenseElementsAttr raise::stack(ArrayRef<DenseElementsAttr> parts) {
  auto t = parts.front().getType();
  SmallVector<int64_t> shape = {(int64_t)parts.size()};
  llvm::append_range(shape, t.getShape());
  auto type = RankedTensorType::get(shape, t.getElementType());
  // Byte copies of the raw storage (see transpose2d); a splat part is its
  // one value repeated.
  bool sameTypes = llvm::all_of(
      parts, [&](DenseElementsAttr p) { return p.getType() == t; });
  if (size_t bytes = sameTypes ? elementBytes(parts.front()) : 0) {
    size_t count = t.getNumElements();
    std::vector<char> out;
    out.reserve(parts.size() * count * bytes);
    for (DenseElementsAttr p : parts) {
      ArrayRef<char> raw = p.getRawData();
      if (p.isSplat())
        for (size_t i = 0; i < count; ++i)
          out.insert(out.end(), raw.begin(), raw.begin() + bytes);
      else
        out.insert(out.end(), raw.begin(), raw.end());
    }
    return DenseElementsAttr::getFromRawBuffer(type, out);
  }
  SmallVector<Attribute> values;
  for (DenseElementsAttr p : parts)
    llvm::append_range(values, p.getValues<Attribute>());
  return DenseElementsAttr::get(type, values);
}

bool raise::isDimOf(Value v, Value x, int64_t i) {
  if (sameSize(v, x, i))
    return true;
  if (Value s = unsqueezed(v, 0))
    v = s;
  while (onnxir::NodeOp c = producer(v, "Cast"))
    v = c.getInputs()[0];
  onnxir::NodeOp g = producer(v, "Gather");
  if (!g || intAttrOf(g, "axis").value_or(0) != 0)
    return false;
  onnxir::NodeOp shape = producer(g.getInputs()[0], "Shape");
  return shape && shape.getInputs()[0] == x &&
         !shape.getNodeAttributes().get("start") &&
         !shape.getNodeAttributes().get("end") && isInts(g.getInputs()[1], {i});
}

bool raise::isDimPiece(Value v, Value x, int64_t i) {
  if (isDimOf(v, x, i))
    return true;
  auto t = dyn_cast<RankedTensorType>(x.getType());
  return t && i < t.getRank() && !t.isDynamicDim(i) &&
         isInts(v, {t.getDimSize(i)});
}

bool raise::isShapeOf(Value shape, Value x) {
  auto t = dyn_cast<RankedTensorType>(x.getType());
  if (!t)
    return false;
  SmallVector<Value> pieces;
  if (onnxir::NodeOp cat = producer(shape, "Concat"))
    pieces.assign(cat.getInputs().begin(), cat.getInputs().end());
  else if (t.hasStaticShape())
    return isInts(shape, t.getShape());
  if ((int64_t)pieces.size() != t.getRank())
    return false;
  for (auto [i, piece] : llvm::enumerate(pieces))
    if (!isDimPiece(piece, x, i))
      return false;
  return true;
}

//===- RaiseMatchers.cpp - what moe-raise-onnx's matchers share ----------===//
//
// See RaiseMatchers.h.
//
//===----------------------------------------------------------------------===//

#include "RaiseMatchers.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringSwitch.h"

using namespace mlir;
using namespace mlir::moe;

unsigned raise::requiredInputs(StringRef opType) {
  return llvm::StringSwitch<unsigned>(opType)
      .Case("Constant", 0)
      .Cases({"MatMul", "Add", "Sub", "Mul", "Div", "Gather", "Reshape",
              "Expand", "Equal"},
             2)
      .Cases({"Where", "Range", "ScatterElements", "OneHot"}, 3)
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
  if (onnxir::NodeOp node = producer(v, "Constant"))
    return dyn_cast_or_null<DenseElementsAttr>(
        node.getNodeAttributes().get("value"));
  return {};
}

std::optional<int64_t> raise::intAttrOf(onnxir::NodeOp node, StringRef name) {
  if (auto a =
          dyn_cast_or_null<IntegerAttr>(node.getNodeAttributes().get(name)))
    return a.getInt();
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

DenseElementsAttr raise::transpose2d(DenseElementsAttr a) {
  auto t = a.getType();
  int64_t rows = t.getDimSize(0), cols = t.getDimSize(1);
  auto type = RankedTensorType::get({cols, rows}, t.getElementType());
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
  return llvm::map_to_vector(a.getValues<APInt>(),
                             [](const APInt &i) { return i.getSExtValue(); });
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

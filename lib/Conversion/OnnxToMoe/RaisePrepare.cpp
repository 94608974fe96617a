//===- RaisePrepare.cpp - undo the dynamo exporter's decompositions -------===//
//
// PyTorch's dynamo exporter (`torch.onnx.export(..., dynamo=True)`, the
// default from PyTorch 2.9) exports from torch.export's ATen graph, after
// its decompositions. An `einsum` arrives as ATen's own lowering of it
// (aten/src/ATen/native/Linear.cpp, sumproduct_pair): each operand
// unsqueezed and permuted to a common label order, reshaped to
// [batch, rows, contracted] / [batch, contracted, cols], one batched
// MatMul, then reshaped and permuted back. A weight indexed by the routing
// ids, `w[ids]`, arrives as GatherND over Unsqueeze(Expand(ids, ...)).
// Constants arrive as CastLike(c, x); copies as Identity; permutations
// that do nothing as Transpose.
//
// The raise matchers read the forms the TorchScript exporter writes. This
// step rewrites the dynamo forms into those, before the matchers run:
//
//   * a node result of unranked type (no shape from ONNX inference; its
//     stage-1 element type, the importer's f32 placeholder, is not
//     trusted) gets the rank and element type ONNX's rules give it from
//     its inputs, for the view, elementwise, reduction, MatMul, Gemm,
//     Gather, Tile, Split, TopK and Cast ops (SymbolicShapes::computeRank,
//     computeElementType; Split and TopK's types in visit);
//   * no-op nodes go: Identity, Transpose with the identity permutation
//     (of a known rank), one-input Max/Min/Sum/Mean/Concat, a Cast of a
//     float or a bool to its own type, Expand of x to x's own shape (Shape(x),
//     or a shape value equal to it symbolically), Squeeze(Unsqueeze(x, [a]),
//     [a]);
//   * GatherND(w, Unsqueeze(i, -1)) with batch_dims 0 is Gather(w, i, 0);
//   * CastLike(c, x) of a constant c (at most 64 elements, float or
//     integer) with a float x is c in x's element type;
//   * a linear layer's weight: Transpose([1, 0]) of a 2-D constant whose
//     users are all MatMuls' B is the transposed constant, and Gemm(x, W)
//     with a 2-D x, a constant W, alpha 1, no C and no transA is
//     MatMul(x, W) (W^T folded when transB);
//   * a MatMul between view chains (Reshape, Transpose, Unsqueeze,
//     Squeeze, Identity) of operands a and b, whose result a view chain
//     reshapes back, is Einsum(a, b) again. Each dim of every tensor in the
//     chains is tracked as the list of a's and b's dims ("atoms") it holds,
//     row-major; Reshape regroups atoms by their sizes, which are products
//     of integer constants and symbols (graph-input dims by dim_param name;
//     other unknown dims a symbol each), computed through the graph's shape
//     arithmetic. A grouping is accepted only where the sizes are provably
//     equal, so a recovered Einsum computes what the chain computed. Only
//     MatMuls of rank-3 operands whose chains change a rank (bmm, as ATen
//     lowers an einsum) are considered.
//
// A rewrite never turns a node the conversion would refuse into a valid
// one: input counts and attribute types are checked as the handlers check
// them. The recovered Einsums are provisional: the pass reverts those no
// matcher consumed (RaiseMoe.cpp), so a graph that raises nothing keeps its
// MatMuls. The other rewrites stay (each computes what it replaces).
//
//===----------------------------------------------------------------------===//

#include "RaiseMatchers.h"
#include "ShapeValues.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/FunctionInterfaces.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/EquivalenceClasses.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSwitch.h"

#include <cstring>
#include <limits>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::raise;

namespace {

//===----------------------------------------------------------------------===//
// Symbolic sizes
//===----------------------------------------------------------------------===//

/// A dim size: coef times a product of symbols (sorted ids, repeats
/// allowed). Two sizes are known equal only when both parts are.
struct Size {
  int64_t coef = 1;
  SmallVector<unsigned, 2> syms;
  bool operator==(const Size &o) const {
    return coef == o.coef && syms == o.syms;
  }
  bool operator!=(const Size &o) const { return !(*this == o); }
  bool isConst(int64_t c) const { return syms.empty() && coef == c; }
};
using Sizes = SmallVector<Size, 4>;

/// A size with symbols has a positive coefficient (a symbol is a size,
/// >= 0); 0 * N is the constant 0. Anything else is no size.
std::optional<Size> normalized(Size r) {
  if (r.coef == 0)
    r.syms.clear();
  if (!r.syms.empty() && r.coef < 0)
    return std::nullopt;
  return r;
}

std::optional<Size> mul(const Size &a, const Size &b) {
  Size r;
  if (__builtin_mul_overflow(a.coef, b.coef, &r.coef))
    return std::nullopt;
  r.syms.append(a.syms.begin(), a.syms.end());
  r.syms.append(b.syms.begin(), b.syms.end());
  llvm::sort(r.syms);
  return normalized(r);
}

/// a / b when b divides a exactly as a monomial.
std::optional<Size> divide(const Size &a, const Size &b) {
  if (b.coef == 0 || a.coef % b.coef != 0)
    return std::nullopt;
  Size r;
  r.coef = a.coef / b.coef;
  SmallVector<unsigned, 2> rest(a.syms.begin(), a.syms.end());
  for (unsigned s : b.syms) {
    auto it = llvm::find(rest, s);
    if (it == rest.end())
      return std::nullopt;
    rest.erase(it);
  }
  r.syms = rest;
  return r;
}

std::optional<Size> product(ArrayRef<Size> sizes) {
  Size p;
  for (const Size &s : sizes) {
    std::optional<Size> q = mul(p, s);
    if (!q)
      return std::nullopt;
    p = *q;
  }
  return p;
}

/// An integer element of type `type` as int64: bool and unsigned ones
/// zero-extended (true is 1, uint8 255 is 255).
int64_t intValue(const APInt &i, Type type) {
  auto t = dyn_cast<IntegerType>(type);
  return t && (t.getWidth() == 1 || t.isUnsigned()) ? (int64_t)i.getZExtValue()
                                                    : i.getSExtValue();
}

/// An ints attribute of `node` (imported as a DenseI64ArrayAttr).
std::optional<SmallVector<int64_t>> intsAttrOf(onnxir::NodeOp node,
                                               StringRef name) {
  Attribute a = node.getNodeAttributes().get(name);
  if (auto d = dyn_cast_or_null<DenseI64ArrayAttr>(a))
    return SmallVector<int64_t>(d.asArrayRef());
  if (auto arr = dyn_cast_or_null<ArrayAttr>(a)) {
    SmallVector<int64_t> out;
    for (Attribute x : arr) {
      auto i = dyn_cast<IntegerAttr>(x);
      if (!i)
        return std::nullopt;
      out.push_back(i.getInt());
    }
    return out;
  }
  return std::nullopt;
}

/// A Transpose's permutation: its attribute, or the reversal of `rank`
/// dims (-1: unknown).
std::optional<SmallVector<int64_t>> permOf(onnxir::NodeOp t, int64_t rank) {
  if (t.getNodeAttributes().get("perm"))
    return intsAttrOf(t, "perm");
  if (rank < 0)
    return std::nullopt;
  SmallVector<int64_t> perm;
  for (int64_t i = rank - 1; i >= 0; --i)
    perm.push_back(i);
  return perm;
}

/// Whether a node type is elementwise with numpy broadcasting (its output
/// has the broadcast shape of its inputs).
// clang-format off
bool isBroadcastElementwise(StringRef op) {
  return llvm::StringSwitch<bool>(op)
      .Cases({"Add", "Sub", "Mul", "Div", "Mod", "Pow", "Max", "Min", "Sum", "Mean",
              "Where", "Equal", "Less", "Greater", "LessOrEqual",
              "GreaterOrEqual", "And", "Or", "Xor", "BitwiseAnd", "BitwiseOr",
              "BitwiseXor", "PRelu"},
             true)
      .Default(false);
}
// clang-format on

/// Whether a node type keeps its first input's shape.
// clang-format off
bool keepsShape(StringRef op) {
  return llvm::StringSwitch<bool>(op)
      .Cases({"Relu", "Sigmoid", "Tanh", "Erf", "Exp", "Log", "Neg", "Abs",
              "Sqrt", "Reciprocal", "Gelu", "Softmax", "LogSoftmax", "Cast",
              "CastLike", "Identity", "Not", "Floor", "Ceil", "Sin", "Cos",
              "LayerNormalization", "ScatterElements", "ScatterND", "Clip",
              "LeakyRelu", "Softplus", "Elu", "Selu", "Round", "Sign",
              "CumSum", "Trilu", "HardSigmoid", "HardSwish", "Softsign", "Mish",
              "ThresholdedRelu", "IsNaN", "IsInf", "BitwiseNot"},
             true)
      .Default(false);
}
// clang-format on

} // namespace

/// Shapes and small integer values of the ONNX graph, as symbolic sizes.
/// Computed once in program order (operands before users), so no query
/// recurses.
class raise::SymbolicShapes : public RewriterBase::Listener {
public:
  explicit SymbolicShapes(ModuleOp module) {
    module.walk<WalkOrder::PreOrder>([&](Operation *op) {
      if (auto fn = dyn_cast<FunctionOpInterface>(op)) {
        for (BlockArgument arg : fn.getArguments())
          seedArgument(fn, arg);
        return;
      }
      if (auto node = dyn_cast<onnxir::NodeOp>(op))
        visit(node);
      else if (auto cst = dyn_cast<arith::ConstantOp>(op))
        visitConstant(cst.getResult(), cst.getValue());
    });
  }

  /// The shape of `v`, where known.
  const Sizes *shapeOf(Value v) const {
    auto it = shapes.find(v);
    return it == shapes.end() ? nullptr : &it->second;
  }
  /// The entries of a small integer tensor `v`, where known.
  const Sizes *valuesOf(Value v) const {
    auto it = values.find(v);
    return it == values.end() ? nullptr : &it->second;
  }

  /// The element type of `v`: its ranked type's, or, for a node result
  /// of unranked type, the one ONNX's rules give it from its inputs (the
  /// importer types an unknown result as tensor<*xf32>, a placeholder);
  /// null when unknown.
  Type elementTypeOf(Value v) const {
    if (auto t = dyn_cast<RankedTensorType>(v.getType()))
      return t.getElementType();
    if (isa<BlockArgument>(v)) { // a declared graph input
      auto t = dyn_cast<ShapedType>(v.getType());
      return t ? t.getElementType() : Type();
    }
    return elementTypes.lookup(v);
  }

  /// Records what an inserted node computes (a recovered Einsum).
  void setShape(Value v, Sizes s) { shapes[v] = std::move(s); }

  /// An erased op's results are forgotten: a node made later may reuse
  /// their storage, and must not inherit their sizes.
  void notifyOperationErased(Operation *op) override {
    for (Value r : op->getResults()) {
      shapes.erase(r);
      values.erase(r);
      elementTypes.erase(r);
    }
  }

private:
  unsigned symbolOf(Value v, int64_t i) {
    auto [it, inserted] = opaque.try_emplace({v, i}, next);
    if (inserted)
      ++next;
    return it->second;
  }
  unsigned symbolNamed(StringRef name) {
    auto [it, inserted] = named.try_emplace(name, next);
    if (inserted)
      ++next;
    return it->second;
  }
  Size sym(unsigned id) {
    Size s;
    s.syms.push_back(id);
    return s;
  }
  Size constant(int64_t c) {
    Size s;
    s.coef = c;
    return s;
  }

  void seedArgument(FunctionOpInterface fn, BlockArgument arg) {
    auto t = dyn_cast<RankedTensorType>(arg.getType());
    if (!t)
      return;
    auto names = dyn_cast_or_null<ArrayAttr>(
        fn.getArgAttr(arg.getArgNumber(), "onnx.dim_params"));
    Sizes s;
    for (int64_t i = 0; i < t.getRank(); ++i) {
      if (!t.isDynamicDim(i)) {
        s.push_back(constant(t.getDimSize(i)));
        continue;
      }
      auto name = names && (int64_t)names.size() == t.getRank()
                      ? dyn_cast<StringAttr>(names[i])
                      : StringAttr();
      s.push_back(name && !name.getValue().empty()
                      ? sym(symbolNamed(name.getValue()))
                      : sym(symbolOf(arg, i)));
    }
    shapes[arg] = s;
  }

  void visitConstant(Value v, Attribute value) {
    auto a = dyn_cast_or_null<DenseElementsAttr>(value);
    if (!a)
      return;
    shapes[v] = llvm::map_to_vector<4>(a.getType().getShape(),
                                       [&](int64_t d) { return constant(d); });
    if (isa<IntegerType>(a.getElementType()) && a.getNumElements() <= 64 &&
        a.getType().getRank() <= 1)
      values[v] = llvm::map_to_vector<4>(a.getValues<APInt>(), [&](APInt i) {
        return constant(intValue(i, a.getElementType()));
      });
  }

  /// A shape that is known only as a rank: a fresh symbol per dim.
  void opaqueShape(Value v) {
    if (auto t = dyn_cast<RankedTensorType>(v.getType())) {
      Sizes s;
      for (int64_t i = 0; i < t.getRank(); ++i)
        s.push_back(t.isDynamicDim(i) ? sym(symbolOf(v, i))
                                      : constant(t.getDimSize(i)));
      shapes[v] = s;
    }
  }

  std::optional<SmallVector<int64_t>> ints(Value v) {
    const Sizes *s = valuesOf(v);
    if (!s)
      return std::nullopt;
    SmallVector<int64_t> out;
    for (const Size &e : *s) {
      if (!e.syms.empty())
        return std::nullopt;
      out.push_back(e.coef);
    }
    return out;
  }

  /// Unsqueeze/Squeeze axes: the input (opset 13) or the attribute.
  std::optional<SmallVector<int64_t>> axesOf(onnxir::NodeOp node) {
    if (node.getInputs().size() >= 2)
      return ints(node.getInputs()[1]);
    return intsAttrOf(node, "axes");
  }

  void visit(onnxir::NodeOp node) {
    for (Value r : node.getResults())
      opaqueShape(r); // the default; refined below where computable
    if (!node.getDomain().empty() || node.getNumResults() == 0)
      return;
    if (node.getNumResults() == 1 &&
        isa<UnrankedTensorType>(node.getResult(0).getType()))
      if (Type t = computeElementType(node))
        elementTypes[node.getResult(0)] = t;
    // Split: each unranked result has the input's rank and element type,
    // its sizes unknown (DeepSeek-V3's attention splits q and k into their
    // rotated and unrotated parts).
    // TopK's values have the input's element type, its indices int64 (an
    // export whose types ONNX could not infer: GPT-OSS's biased router by
    // TorchScript); their sizes come from computeShape.
    if (node.getOpType() == "TopK" && node.getNumResults() == 2 &&
        !node.getInputs().empty()) {
      if (Type elt = elementTypeOf(node.getInputs()[0]);
          elt && isa<UnrankedTensorType>(node.getResult(0).getType()))
        elementTypes[node.getResult(0)] = elt;
      if (isa<UnrankedTensorType>(node.getResult(1).getType()))
        elementTypes[node.getResult(1)] =
            IntegerType::get(node.getContext(), 64);
    }
    if (node.getOpType() == "Split" && !node.getInputs().empty()) {
      Value in = node.getInputs()[0];
      const Sizes *inShape = shapeOf(in);
      Type elt = elementTypeOf(in);
      for (Value r : node.getResults()) {
        if (!isa<UnrankedTensorType>(r.getType()))
          continue;
        if (elt)
          elementTypes[r] = elt;
        if (!inShape)
          continue;
        Sizes opaqueSizes;
        for (int64_t i = 0, e = inShape->size(); i < e; ++i)
          opaqueSizes.push_back(sym(symbolOf(r, i)));
        shapes[r] = opaqueSizes;
      }
      return;
    }
    std::optional<Sizes> v = computeValues(node);
    std::optional<Sizes> s = computeShape(node);
    // An unranked result whose sizes are not computable here still has
    // the rank ONNX gives it: its sizes become unknowns of that rank.
    if (!s && node.getNumResults() == 1 &&
        isa<UnrankedTensorType>(node.getResult(0).getType()))
      if (std::optional<int64_t> rank = computeRank(node)) {
        Sizes opaqueSizes;
        for (int64_t i = 0; i < *rank; ++i)
          opaqueSizes.push_back(sym(symbolOf(node.getResult(0), i)));
        s = opaqueSizes;
      }
    // Values are kept for tensors of rank <= 1 only (shape values: a
    // Concat, Gather or Reshape of a matrix does not keep their order).
    if (v) {
      auto t = dyn_cast<RankedTensorType>(node.getResult(0).getType());
      const Sizes *known = shapeOf(node.getResult(0)); // Constant, type
      std::optional<int64_t> rank;
      if (s)
        rank = s->size();
      else if (known)
        rank = known->size();
      if (rank && *rank <= 1 && (!t || t.getRank() == *rank))
        values[node.getResult(0)] = *v;
    }
    if (s) {
      // A stage-1 type, where there is one, must agree in rank and in
      // static sizes; otherwise the computation here is wrong and unused.
      if (auto t = dyn_cast<RankedTensorType>(node.getResult(0).getType())) {
        if (t.getRank() != (int64_t)s->size())
          return;
        for (int64_t i = 0; i < t.getRank(); ++i) {
          if (t.isDynamicDim(i))
            continue;
          if (!(*s)[i].syms.empty())
            (*s)[i] = constant(t.getDimSize(i));
          else if ((*s)[i].coef != t.getDimSize(i))
            return;
        }
      }
      shapes[node.getResult(0)] = *s;
    }
  }

  std::optional<Sizes> computeValues(onnxir::NodeOp node) {
    StringRef op = node.getOpType();
    auto in = [&](unsigned i) -> const Sizes * {
      return i < node.getInputs().size() ? valuesOf(node.getInputs()[i])
                                         : nullptr;
    };
    if (op == "Constant") {
      visitConstant(node.getResult(0), node.getNodeAttributes().get("value"));
      if (std::optional<SmallVector<int64_t>> ints =
              intsAttrOf(node, "value_ints")) {
        Sizes s;
        for (int64_t i : *ints)
          s.push_back(constant(i));
        shapes[node.getResult(0)] = {constant(s.size())};
        return s;
      }
      if (auto i = dyn_cast_or_null<IntegerAttr>(
              node.getNodeAttributes().get("value_int"))) {
        shapes[node.getResult(0)] = {};
        return Sizes{constant(i.getInt())};
      }
      const Sizes *s = valuesOf(node.getResult(0));
      return s ? std::optional<Sizes>(*s) : std::nullopt;
    }
    if (op == "Shape" && !node.getInputs().empty()) {
      const Sizes *s = shapeOf(node.getInputs()[0]);
      if (!s)
        return std::nullopt;
      int64_t rank = s->size();
      int64_t start = intAttrOf(node, "start").value_or(0);
      int64_t end = intAttrOf(node, "end").value_or(rank);
      if (start < 0)
        start += rank;
      if (end < 0)
        end += rank;
      start = std::clamp<int64_t>(start, 0, rank);
      end = std::clamp<int64_t>(end, start, rank);
      return Sizes(s->begin() + start, s->begin() + end);
    }
    if ((op == "Squeeze" || op == "Unsqueeze" || op == "Reshape" ||
         op == "Identity" || op == "Cast") &&
        in(0)) {
      if (op == "Cast") {
        std::optional<int64_t> to = intAttrOf(node, "to");
        if (!to || (*to != 6 && *to != 7)) // int32, int64
          return std::nullopt;
      }
      // (A result of rank <= 1 keeps the entries in order; visit() keeps
      // values of such results only.)
      return *in(0);
    }
    if ((op == "Max" || op == "Min") && node.getInputs().size() == 1 && in(0))
      return *in(0);
    if (op == "Concat") {
      Sizes out;
      for (unsigned i = 0; i < node.getInputs().size(); ++i) {
        if (!in(i))
          return std::nullopt;
        out.append(in(i)->begin(), in(i)->end());
      }
      return out;
    }
    if (op == "Gather" && node.getInputs().size() == 2 && in(0) &&
        intAttrOf(node, "axis").value_or(0) == 0) {
      std::optional<SmallVector<int64_t>> idx = ints(node.getInputs()[1]);
      if (!idx)
        return std::nullopt;
      Sizes out;
      for (int64_t i : *idx) {
        if (i < 0)
          i += in(0)->size();
        if (i < 0 || i >= (int64_t)in(0)->size())
          return std::nullopt;
        out.push_back((*in(0))[i]);
      }
      return out;
    }
    // A Slice of a shape value along its one axis (TorchScript reads a
    // tensor's last size as Slice(Shape(x), [-1], [max])).
    if (op == "Slice" && in(0) && node.getInputs().size() >= 3) {
      std::optional<SmallVector<int64_t>> starts = ints(node.getInputs()[1]),
                                          ends = ints(node.getInputs()[2]);
      auto optional = [&](unsigned i) {
        return i < node.getInputs().size() &&
               !isa<NoneType>(node.getInputs()[i].getType());
      };
      std::optional<SmallVector<int64_t>> axes =
          optional(3) ? ints(node.getInputs()[3])
                      : std::optional<SmallVector<int64_t>>({0});
      std::optional<SmallVector<int64_t>> steps =
          optional(4) ? ints(node.getInputs()[4])
                      : std::optional<SmallVector<int64_t>>({1});
      if (!starts || !ends || !axes || !steps || starts->size() != 1 ||
          ends->size() != 1 || axes->size() != 1 || steps->size() != 1 ||
          ((*axes)[0] != 0 && (*axes)[0] != -1) || (*steps)[0] == 0)
        return std::nullopt;
      int64_t n = in(0)->size();
      onnx_conv::Range1D r =
          onnx_conv::sliceRange(n, (*starts)[0], (*ends)[0], (*steps)[0]);
      Sizes out;
      for (int64_t i = 0; i < r.size; ++i) {
        int64_t at = r.start + i * r.step;
        if (at < 0 || at >= n)
          return std::nullopt;
        out.push_back((*in(0))[at]);
      }
      return out;
    }
    // OneHot of a constant index over a constant depth, its two values
    // shape values: TorchScript builds a Tile's repeats [1, k, 1] so.
    if (op == "OneHot" && node.getInputs().size() == 3 && in(2) &&
        in(2)->size() == 2 && intAttrOf(node, "axis").value_or(-1) == -1) {
      DenseElementsAttr index = constantOf(node.getInputs()[0]);
      std::optional<SmallVector<int64_t>> depth = ints(node.getInputs()[1]);
      if (!index || index.getType().getRank() != 0 ||
          !isa<IntegerType>(index.getElementType()) || !depth ||
          depth->size() != 1 || (*depth)[0] < 1 || (*depth)[0] > 64)
        return std::nullopt;
      int64_t d = (*depth)[0];
      int64_t i =
          intValue(*index.getValues<APInt>().begin(), index.getElementType());
      if (i < 0)
        i += d;
      Sizes out;
      for (int64_t j = 0; j < d; ++j)
        out.push_back((*in(2))[j == i ? 1 : 0]);
      return out;
    }
    // Entry-wise over the broadcast of vectors (or one-element tensors).
    auto entrywise =
        [&](unsigned n,
            function_ref<std::optional<Size>(ArrayRef<const Size *>)> fn)
        -> std::optional<Sizes> {
      size_t len = 1;
      for (unsigned i = 0; i < n; ++i) {
        if (!in(i))
          return std::nullopt;
        if (in(i)->size() != 1) {
          if (len != 1 && len != in(i)->size())
            return std::nullopt;
          len = in(i)->size();
        }
      }
      Sizes out;
      for (size_t j = 0; j < len; ++j) {
        SmallVector<const Size *, 3> args;
        for (unsigned i = 0; i < n; ++i)
          args.push_back(&(*in(i))[in(i)->size() == 1 ? 0 : j]);
        std::optional<Size> r = fn(args);
        if (!r)
          return std::nullopt;
        out.push_back(*r);
      }
      return out;
    };
    // torch's expand(-1) idiom: Where(Equal(shape, ConstantOfShape(...) *
    // -1), ones, shape) keeps the sizes of `shape` that are not -1.
    if (op == "ConstantOfShape" && in(0) && in(0)->size() == 1 &&
        in(0)->front().syms.empty() && in(0)->front().coef >= 0 &&
        in(0)->front().coef <= 64) {
      auto value = dyn_cast_or_null<DenseElementsAttr>(
          node.getNodeAttributes().get("value"));
      if (!value || value.getNumElements() != 1 ||
          !isa<IntegerType>(value.getElementType()))
        return std::nullopt;
      int64_t c =
          intValue(*value.getValues<APInt>().begin(), value.getElementType());
      return Sizes(in(0)->front().coef, constant(c));
    }
    if (op == "Equal" && node.getInputs().size() == 2)
      return entrywise(2, [&](ArrayRef<const Size *> e) -> std::optional<Size> {
        const Size &a = *e[0], &b = *e[1];
        if (a == b)
          return constant(1);
        if (a.syms.empty() && b.syms.empty())
          return constant(0);
        // A size (>= 0) is no negative constant.
        if ((a.syms.empty() && a.coef < 0) || (b.syms.empty() && b.coef < 0))
          return constant(0);
        return std::nullopt;
      });
    if (op == "Where" && node.getInputs().size() == 3)
      return entrywise(3, [&](ArrayRef<const Size *> e) -> std::optional<Size> {
        if (!e[0]->syms.empty())
          return std::nullopt;
        return e[0]->coef != 0 ? *e[1] : *e[2];
      });
    if ((op == "Mul" || op == "Div" || op == "Add" || op == "Sub") && in(0) &&
        in(1) && in(0)->size() == 1 && in(1)->size() == 1) {
      const Size &a = in(0)->front(), &b = in(1)->front();
      std::optional<Size> r;
      if (op == "Mul")
        r = mul(a, b);
      else if (op == "Div" && b.syms.empty() && b.coef > 0)
        // Exact as a monomial, or between constants the quotient rounded
        // down (what integer Div gives non-negative operands: torch's
        // chunk computes its part size as (n + 1) / 2).
        r = a.syms.empty() && a.coef >= 0 ? constant(a.coef / b.coef)
                                          : divide(a, b);
      else if ((op == "Add" || op == "Sub") && a.syms == b.syms) {
        Size s = a;
        bool overflow = op == "Add"
                            ? __builtin_add_overflow(a.coef, b.coef, &s.coef)
                            : __builtin_sub_overflow(a.coef, b.coef, &s.coef);
        if (!overflow)
          r = normalized(s);
      }
      if (r)
        return Sizes{*r};
    }
    if (op == "Mul" && node.getInputs().size() == 2)
      return entrywise(2, [&](ArrayRef<const Size *> e) -> std::optional<Size> {
        // Constants only: a size times a constant is no size in general.
        if (!e[0]->syms.empty() || !e[1]->syms.empty())
          return std::nullopt;
        Size r;
        if (__builtin_mul_overflow(e[0]->coef, e[1]->coef, &r.coef))
          return std::nullopt;
        return r;
      });
    return std::nullopt;
  }

  /// ONNX broadcasting of `ins`. Where two sizes of a dim are neither
  /// known equal nor 1: with `result` given, a constant on one side is the
  /// size (ONNX requires the other side to be 1 or equal) and two symbols
  /// make an unknown of `result`; without it, there is no shape. Two
  /// different constants other than 1 are no shape either way.
  std::optional<Sizes> broadcast(ArrayRef<const Sizes *> ins,
                                 Value result = Value()) {
    size_t rank = 0;
    for (const Sizes *s : ins) {
      if (!s)
        return std::nullopt;
      rank = std::max(rank, s->size());
    }
    Sizes out(rank, constant(1));
    SmallVector<bool> unknown(rank, false);
    for (const Sizes *s : ins)
      for (size_t i = 0; i < s->size(); ++i) {
        size_t at = rank - s->size() + i;
        Size &o = out[at];
        const Size &d = (*s)[i];
        if (d.isConst(1) || (d == o && !unknown[at]))
          continue;
        if (o.isConst(1) && !unknown[at]) {
          o = d;
          continue;
        }
        bool dConst = d.syms.empty(), oConst = o.syms.empty() && !unknown[at];
        if (!result || (dConst && oConst))
          return std::nullopt; // unknown which side broadcasts, or invalid
        if (dConst) {
          o = d;
          unknown[at] = false;
        } else if (!oConst) {
          o = sym(symbolOf(result, at));
          unknown[at] = true;
        }
      }
    return out;
  }

  /// The element type of `node`'s result by ONNX's rules, from its
  /// inputs' (elementTypeOf); null where not known.
  Type computeElementType(onnxir::NodeOp node) {
    StringRef op = node.getOpType();
    auto inputs = node.getInputs();
    MLIRContext *ctx = node.getContext();
    auto of = [&](unsigned i) -> Type {
      return i < inputs.size() ? elementTypeOf(inputs[i]) : Type();
    };
    if (op == "Cast") {
      std::optional<int64_t> to = strictInt(node, "to", -1);
      if (!to)
        return Type();
      switch (*to) {
      case 1:
        return Float32Type::get(ctx);
      case 10:
        return Float16Type::get(ctx);
      case 11:
        return Float64Type::get(ctx);
      case 16:
        return BFloat16Type::get(ctx);
      case 6:
        return IntegerType::get(ctx, 32);
      case 7:
        return IntegerType::get(ctx, 64);
      case 9:
        return IntegerType::get(ctx, 1);
      default:
        return Type();
      }
    }
    if (op == "CastLike")
      return of(1);
    if (op == "Not" || op == "Equal" || op == "Less" || op == "Greater" ||
        op == "LessOrEqual" || op == "GreaterOrEqual" || op == "And" ||
        op == "Or" || op == "Xor" || op == "IsNaN" || op == "IsInf")
      return IntegerType::get(ctx, 1);
    if (op == "Shape" || op == "Size" || op == "ArgMax" || op == "ArgMin")
      return IntegerType::get(ctx, 64);
    if (op == "Where")
      return of(1);
    if (keepsShape(op) || isBroadcastElementwise(op) || op == "MatMul" ||
        op == "Transpose" || op == "Reshape" || op == "Slice" ||
        op == "Concat" || op == "Expand" || op == "Unsqueeze" ||
        op == "Squeeze" || op == "Gather" || op == "Tile" || op == "Flatten" ||
        op == "Gemm" || op.starts_with("Reduce"))
      return of(0);
    return Type();
  }

  /// The rank of `node`'s result by ONNX's rules, from its inputs' ranks,
  /// for the ops an attention core's operands come through (the sizes
  /// themselves may be beyond computeShape: a ReduceMean, a computed
  /// Slice).
  std::optional<int64_t> computeRank(onnxir::NodeOp node) {
    StringRef op = node.getOpType();
    auto inputs = node.getInputs();
    auto rank = [&](unsigned i) -> std::optional<int64_t> {
      if (i >= inputs.size())
        return std::nullopt;
      if (const Sizes *s = shapeOf(inputs[i]))
        return static_cast<int64_t>(s->size());
      return std::nullopt;
    };
    // The length of a 1-d shape operand of static size.
    auto length = [&](unsigned i) -> std::optional<int64_t> {
      auto t = i < inputs.size()
                   ? dyn_cast<RankedTensorType>(inputs[i].getType())
                   : RankedTensorType();
      if (!t || t.getRank() != 1 || t.isDynamicDim(0))
        return std::nullopt;
      return t.getDimSize(0);
    };
    if (inputs.empty())
      return std::nullopt;
    if (keepsShape(op) || op == "Slice" || op == "Concat" || op == "Tile")
      return rank(0);
    if (op == "Flatten" || op == "Gemm")
      return 2;
    if (isBroadcastElementwise(op)) {
      int64_t most = 0;
      for (unsigned i = 0; i < inputs.size(); ++i) {
        std::optional<int64_t> r = rank(i);
        if (!r)
          return std::nullopt;
        most = std::max(most, *r);
      }
      return most;
    }
    if (op == "MatMul") {
      std::optional<int64_t> a = rank(0), b = rank(1);
      if (!a || !b || *a < 2 || *b < 2)
        return std::nullopt;
      return std::max(*a, *b);
    }
    if (op == "Transpose") {
      std::optional<int64_t> r = rank(0);
      if (std::optional<SmallVector<int64_t>> perm = intsAttrOf(node, "perm"))
        return r && *r != static_cast<int64_t>(perm->size())
                   ? std::nullopt
                   : std::optional<int64_t>(perm->size());
      return r;
    }
    if (op == "Reshape" && inputs.size() == 2)
      return length(1);
    if (op == "Expand" && inputs.size() == 2) {
      std::optional<int64_t> r = rank(0), n = length(1);
      if (!r || !n)
        return std::nullopt;
      return std::max(*r, *n);
    }
    if (op == "Unsqueeze" || op == "Squeeze") {
      std::optional<int64_t> r = rank(0);
      std::optional<SmallVector<int64_t>> axes = axesOf(node);
      if (!r || !axes || (op == "Squeeze" && axes->empty()))
        return std::nullopt;
      int64_t n = static_cast<int64_t>(axes->size());
      return op == "Unsqueeze"
                 ? *r + n
                 : (*r >= n ? std::optional<int64_t>(*r - n) : std::nullopt);
    }
    if (op == "Gather") {
      std::optional<int64_t> r = rank(0), ri = rank(1);
      if (!r || !ri || *r < 1)
        return std::nullopt;
      return *r - 1 + *ri;
    }
    if (op.starts_with("Reduce") &&
        intAttrOf(node, "keepdims").value_or(1) == 1)
      return rank(0);
    if (op == "ArgMax" || op == "ArgMin") {
      std::optional<int64_t> r = rank(0);
      if (!r || intAttrOf(node, "keepdims").value_or(1) == 1)
        return r;
      return *r >= 1 ? std::optional<int64_t>(*r - 1) : std::nullopt;
    }
    return std::nullopt;
  }

  std::optional<Sizes> computeShape(onnxir::NodeOp node) {
    StringRef op = node.getOpType();
    auto inputs = node.getInputs();
    auto in = [&](unsigned i) -> const Sizes * {
      return i < inputs.size() ? shapeOf(inputs[i]) : nullptr;
    };
    if (inputs.empty())
      return std::nullopt;
    if (keepsShape(op))
      return in(0) ? std::optional<Sizes>(*in(0)) : std::nullopt;
    if (isBroadcastElementwise(op)) {
      SmallVector<const Sizes *> ins;
      for (unsigned i = 0; i < inputs.size(); ++i)
        ins.push_back(in(i));
      return broadcast(ins, node.getResult(0));
    }
    if (op == "MatMul" && in(0) && in(1) && in(0)->size() >= 2 &&
        in(1)->size() >= 2) {
      const Sizes &a = *in(0), &b = *in(1);
      Sizes ab(a.begin(), a.end() - 2), bb(b.begin(), b.end() - 2);
      std::optional<Sizes> batch = broadcast({&ab, &bb});
      if (!batch) {
        // Batch sizes not known equal: unknowns, the matrix sizes still
        // known.
        batch = Sizes();
        for (size_t i = 0; i < std::max(ab.size(), bb.size()); ++i)
          batch->push_back(sym(symbolOf(node.getResult(0), i)));
      }
      batch->push_back(a[a.size() - 2]);
      batch->push_back(b.back());
      return batch;
    }
    if ((op == "ArgMax" || op == "ArgMin") && in(0)) {
      // The reduced axis becomes 1, or goes (keepdims 0).
      int64_t rank = in(0)->size(), axis = intAttrOf(node, "axis").value_or(0);
      if (axis < 0)
        axis += rank;
      if (axis < 0 || axis >= rank)
        return std::nullopt;
      Sizes s = *in(0);
      if (intAttrOf(node, "keepdims").value_or(1) == 1)
        s[axis] = constant(1);
      else
        s.erase(s.begin() + axis);
      return s;
    }
    if (op == "TopK" && in(0) && inputs.size() == 2) {
      std::optional<SmallVector<int64_t>> k = ints(inputs[1]);
      int64_t axis = intAttrOf(node, "axis").value_or(-1);
      int64_t rank = in(0)->size();
      if (axis < 0)
        axis += rank;
      if (!k || k->size() != 1 || axis < 0 || axis >= rank)
        return std::nullopt;
      Sizes s = *in(0);
      s[axis] = constant(k->front());
      // Both outputs.
      if (node.getNumResults() == 2)
        shapes[node.getResult(1)] = s;
      return s;
    }
    if (op == "Transpose" && in(0)) {
      const Sizes &s = *in(0);
      std::optional<SmallVector<int64_t>> perm = permOf(node, s.size());
      if (!perm || perm->size() != s.size())
        return std::nullopt;
      Sizes out;
      for (int64_t p : *perm) {
        if (p < 0 || p >= (int64_t)s.size())
          return std::nullopt;
        out.push_back(s[p]);
      }
      return out;
    }
    if ((op == "Unsqueeze" || op == "Squeeze") && in(0)) {
      std::optional<SmallVector<int64_t>> axes = axesOf(node);
      if (!axes)
        return std::nullopt;
      Sizes s = *in(0);
      int64_t rank = s.size() + (op == "Unsqueeze" ? axes->size() : 0);
      SmallVector<bool> marked(rank, false);
      for (int64_t a : *axes) {
        if (a < 0)
          a += rank;
        if (a < 0 || a >= rank || marked[a])
          return std::nullopt;
        marked[a] = true;
      }
      Sizes out;
      if (op == "Unsqueeze") {
        auto it = s.begin();
        for (int64_t i = 0; i < rank; ++i)
          out.push_back(marked[i] ? constant(1) : *it++);
      } else {
        for (int64_t i = 0; i < rank; ++i)
          if (!marked[i])
            out.push_back(s[i]);
      }
      return out;
    }
    if (op == "Reshape" && in(0) && inputs.size() == 2) {
      const Sizes *target = valuesOf(inputs[1]);
      if (!target)
        return std::nullopt;
      std::optional<int64_t> allowZero = strictInt(node, "allowzero", 0);
      if (!allowZero)
        return std::nullopt;
      return resolveReshape(*in(0), *target, *allowZero != 0);
    }
    if (op == "Expand" && in(0) && inputs.size() == 2) {
      const Sizes *target = valuesOf(inputs[1]);
      return target ? broadcast({in(0), target}) : std::nullopt;
    }
    if (op == "Gather" && in(0) && in(1)) {
      int64_t axis = intAttrOf(node, "axis").value_or(0);
      int64_t rank = in(0)->size();
      if (axis < 0)
        axis += rank;
      if (axis < 0 || axis >= rank)
        return std::nullopt;
      Sizes out(in(0)->begin(), in(0)->begin() + axis);
      out.append(in(1)->begin(), in(1)->end());
      out.append(in(0)->begin() + axis + 1, in(0)->end());
      return out;
    }
    if (op == "Concat") {
      int64_t axis = intAttrOf(node, "axis").value_or(0);
      const Sizes *first = in(0);
      if (!first)
        return std::nullopt;
      int64_t rank = first->size();
      if (axis < 0)
        axis += rank;
      if (axis < 0 || axis >= rank)
        return std::nullopt;
      Sizes out = *first;
      // Dims not known equal (the other dims) or not like terms (the
      // axis) become unknowns of the result; a constant other dim is the
      // size (ONNX requires the inputs to agree).
      SmallVector<bool> unknown(rank, false);
      for (unsigned i = 1; i < inputs.size(); ++i) {
        const Sizes *s = in(i);
        if (!s || (int64_t)s->size() != rank)
          return std::nullopt;
        for (int64_t d = 0; d < rank; ++d) {
          const Size &x = (*s)[d];
          if (unknown[d]) {
            if (d != axis && x.syms.empty()) {
              out[d] = x;
              unknown[d] = false;
            }
            continue;
          }
          if (d != axis) {
            if (x == out[d])
              continue;
            bool xConst = x.syms.empty(), oConst = out[d].syms.empty();
            if (xConst && oConst)
              return std::nullopt; // two different sizes: invalid
            if (xConst)
              out[d] = x;
            else if (!oConst)
              unknown[d] = true;
            continue;
          }
          // Sizes add up only as like terms.
          if (x.syms != out[d].syms ||
              __builtin_add_overflow(out[d].coef, x.coef, &out[d].coef))
            unknown[d] = true;
        }
      }
      for (int64_t d = 0; d < rank; ++d)
        if (unknown[d])
          out[d] = sym(symbolOf(node.getResult(0), d));
      return out;
    }
    if (op == "GatherND" && in(0) && in(1) &&
        intAttrOf(node, "batch_dims").value_or(0) == 0) {
      const Sizes &d = *in(0), &i = *in(1);
      if (i.empty() || !i.back().syms.empty() || i.back().coef < 1 ||
          i.back().coef > (int64_t)d.size())
        return std::nullopt;
      Sizes out(i.begin(), i.end() - 1);
      out.append(d.begin() + i.back().coef, d.end());
      return out;
    }
    if (op.starts_with("Reduce") && in(0)) {
      // Axes: the input (ReduceSum 13, the others 18) or the attribute.
      std::optional<SmallVector<int64_t>> axes;
      if (inputs.size() >= 2 && !isa<NoneType>(inputs[1].getType()))
        axes = ints(inputs[1]);
      else
        axes = intsAttrOf(node, "axes").value_or(SmallVector<int64_t>{});
      bool keep = intAttrOf(node, "keepdims").value_or(1) != 0;
      if (!axes || (axes->empty() &&
                    intAttrOf(node, "noop_with_empty_axes").value_or(0) != 0))
        return std::nullopt;
      int64_t rank = in(0)->size();
      SmallVector<bool> reduced(rank, axes->empty());
      for (int64_t a : *axes) {
        if (a < 0)
          a += rank;
        if (a < 0 || a >= rank)
          return std::nullopt;
        reduced[a] = true;
      }
      Sizes out;
      for (int64_t d = 0; d < rank; ++d)
        if (!reduced[d])
          out.push_back((*in(0))[d]);
        else if (keep)
          out.push_back(constant(1));
      return out;
    }
    if (op == "NonZero" && in(0)) {
      // [rank, count]: the count is data.
      Sizes out = {constant(in(0)->size()),
                   sym(symbolOf(node.getResult(0), 1))};
      return out;
    }
    if (op == "Slice" && in(0) && inputs.size() >= 3) {
      // Constant starts, ends (axes, steps); a symbolic dim only when the
      // slice keeps all of it.
      std::optional<SmallVector<int64_t>> starts = ints(inputs[1]),
                                          ends = ints(inputs[2]);
      Sizes out = *in(0);
      int64_t rank = out.size();
      SmallVector<int64_t> axes, steps;
      if (starts)
        for (int64_t i = 0; i < (int64_t)starts->size(); ++i)
          axes.push_back(i);
      if (inputs.size() >= 4 && !isa<NoneType>(inputs[3].getType())) {
        std::optional<SmallVector<int64_t>> a = ints(inputs[3]);
        if (!a)
          return std::nullopt;
        axes = *a;
      }
      steps.assign(axes.size(), 1);
      if (inputs.size() >= 5 && !isa<NoneType>(inputs[4].getType())) {
        std::optional<SmallVector<int64_t>> st = ints(inputs[4]);
        if (!st)
          return std::nullopt;
        steps = *st;
      }
      if (!starts || !ends || starts->size() != axes.size() ||
          ends->size() != axes.size() || steps.size() != axes.size())
        return std::nullopt;
      for (auto [i, a] : llvm::enumerate(axes)) {
        if (a < 0)
          a += rank;
        if (a < 0 || a >= rank || steps[i] == 0)
          return std::nullopt;
        Size &d = out[a];
        int64_t st = (*starts)[i], en = (*ends)[i];
        if (d.syms.empty()) {
          onnx_conv::Range1D r =
              onnx_conv::sliceRange(d.coef, st, en, steps[i]);
          d = constant(r.size);
        } else if (!(st == 0 && steps[i] == 1 &&
                     en == std::numeric_limits<int64_t>::max())) {
          d = sym(symbolOf(node.getResult(0), a));
        }
      }
      return out;
    }
    // ConstantOfShape: the shape its input's entries give; OneHot: the
    // indices' shape and the depth.
    if (op == "ConstantOfShape") {
      // A 1-D shape input whose entries are sizes (constants >= 0).
      const Sizes *dims = valuesOf(inputs[0]);
      if (!dims || !in(0) || in(0)->size() != 1 ||
          llvm::any_of(*dims, [](const Size &s) {
            return s.syms.empty() && s.coef < 0;
          }))
        return std::nullopt;
      return *dims;
    }
    if (op == "OneHot" && in(0) && inputs.size() == 3 &&
        intAttrOf(node, "axis").value_or(-1) == -1) {
      const Sizes *depth = valuesOf(inputs[1]);
      if (!depth || depth->size() != 1 ||
          (depth->front().syms.empty() && depth->front().coef < 1))
        return std::nullopt;
      Sizes out = *in(0);
      out.push_back(depth->front());
      return out;
    }
    if (op == "Flatten" && in(0)) {
      int64_t rank = in(0)->size();
      int64_t axis = intAttrOf(node, "axis").value_or(1);
      if (axis < 0)
        axis += rank;
      if (axis < 0 || axis > rank)
        return std::nullopt;
      std::optional<Size> outer =
          product(ArrayRef<Size>(*in(0)).take_front(axis));
      std::optional<Size> inner =
          product(ArrayRef<Size>(*in(0)).drop_front(axis));
      if (!outer || !inner)
        return std::nullopt;
      return Sizes{*outer, *inner};
    }
    if (op == "Einsum")
      return std::nullopt; // recovered ones are recorded by setShape
    return std::nullopt;
  }

public:
  /// The output shape of Reshape(x, target) with x's shape `in`: 0 copies
  /// the input dim (unless allowzero), -1 is what remains.
  static std::optional<Sizes>
  resolveReshape(const Sizes &in, const Sizes &target, bool allowZero) {
    Sizes out;
    int64_t inferred = -1;
    for (auto [i, e] : llvm::enumerate(target)) {
      if (e.isConst(0) && !allowZero) {
        if (i >= in.size())
          return std::nullopt;
        out.push_back(in[i]);
      } else if (e.isConst(-1)) {
        if (inferred >= 0)
          return std::nullopt;
        inferred = i;
        out.push_back(Size());
      } else if (e.coef < 0 || (!e.syms.empty() && e.coef == 0)) {
        return std::nullopt;
      } else {
        out.push_back(e);
      }
    }
    if (inferred >= 0) {
      std::optional<Size> total = product(in);
      Sizes rest = out;
      rest.erase(rest.begin() + inferred);
      std::optional<Size> known = product(rest);
      if (!total || !known)
        return std::nullopt;
      std::optional<Size> q = divide(*total, *known);
      if (!q)
        return std::nullopt;
      out[inferred] = *q;
    }
    return out;
  }

private:
  DenseMap<Value, Sizes> shapes, values;
  DenseMap<Value, Type> elementTypes; // of unranked node results
  DenseMap<std::pair<Value, int64_t>, unsigned> opaque;
  llvm::StringMap<unsigned> named;
  unsigned next = 0;
};

namespace {

//===----------------------------------------------------------------------===//
// No-op and index forms
//===----------------------------------------------------------------------===//

bool isViewOp(StringRef op) {
  return op == "Reshape" || op == "Transpose" || op == "Unsqueeze" ||
         op == "Squeeze" || op == "Identity";
}

bool isIdentityPerm(ArrayRef<int64_t> perm) {
  for (auto [i, p] : llvm::enumerate(perm))
    if (p != (int64_t)i)
      return false;
  return true;
}

/// `a` with its dims permuted by `perm` (out dim i = in dim perm[i]), or
/// null for element types stored as bits.
DenseElementsAttr transposeConstant(DenseElementsAttr a,
                                    ArrayRef<int64_t> perm) {
  ShapedType t = a.getType();
  int64_t rank = t.getRank();
  if ((int64_t)perm.size() != rank || !t.hasStaticShape())
    return {};
  SmallVector<int64_t> shape;
  for (int64_t p : perm) {
    if (p < 0 || p >= rank)
      return {};
    shape.push_back(t.getDimSize(p));
  }
  auto type = RankedTensorType::get(shape, t.getElementType());
  if (a.isSplat())
    return a.reshape(type); // same element, new shape
  unsigned bits = t.getElementTypeBitWidth();
  if (bits % 8 != 0 || !t.getElementType().isIntOrFloat())
    return {};
  size_t width = bits / 8;
  ArrayRef<char> raw = a.getRawData();
  if (raw.size() != (size_t)t.getNumElements() * width)
    return {};
  SmallVector<int64_t> inStrides(rank, 1);
  for (int64_t i = rank - 2; i >= 0; --i)
    inStrides[i] = inStrides[i + 1] * t.getDimSize(i + 1);
  std::vector<char> out(raw.size());
  SmallVector<int64_t> idx(rank, 0);
  for (int64_t n = 0, e = t.getNumElements(); n < e; ++n) {
    int64_t src = 0;
    for (int64_t i = 0; i < rank; ++i)
      src += idx[i] * inStrides[perm[i]];
    std::memcpy(out.data() + n * width, raw.data() + src * width, width);
    for (int64_t i = rank - 1; i >= 0; --i) {
      if (++idx[i] < shape[i])
        break;
      idx[i] = 0;
    }
  }
  return DenseElementsAttr::getFromRawBuffer(type, out);
}

/// Removes the no-op nodes and rewrites the index forms (see the file
/// comment).
void simplifyNodes(ModuleOp module, RewriterBase &rewriter,
                   const SymbolicShapes &shapes) {
  SmallVector<onnxir::NodeOp> nodes;
  module.walk([&](onnxir::NodeOp n) {
    if (n.getDomain().empty() && n.getNumResults() >= 1 &&
        !n.getInputs().empty())
      nodes.push_back(n);
  });
  for (onnxir::NodeOp n : nodes) {
    if (n.getNumResults() != 1)
      continue;
    StringRef op = n.getOpType();
    Value in = n.getInputs()[0], out = n.getResult(0);
    // Nodes take any type; a graph output keeps its declared one (the
    // node stays for it).
    auto replace = [&](Value v) {
      rewriter.replaceUsesWithIf(out, v, [&](OpOperand &use) {
        return v.getType() == out.getType() ||
               isa<onnxir::NodeOp>(use.getOwner());
      });
    };
    if (n.getInputs().size() == 1 &&
        (op == "Identity" || op == "Max" || op == "Min" || op == "Sum" ||
         op == "Mean" || op == "Concat")) {
      replace(in);
      continue;
    }
    // Squeeze(Unsqueeze(x, [a]), [a]) is x (the dynamo exporter views a
    // bmm's result back and forth this way).
    if (op == "Squeeze") {
      onnxir::NodeOp u = producer(in, "Unsqueeze");
      auto axesOf =
          [](onnxir::NodeOp node) -> std::optional<SmallVector<int64_t>> {
        if (node.getInputs().size() == 2)
          return intsOf(node.getInputs()[1]);
        if (node.getInputs().size() == 1)
          if (auto a = dyn_cast_or_null<DenseI64ArrayAttr>(
                  node.getNodeAttributes().get("axes")))
            return SmallVector<int64_t>(a.asArrayRef());
        return std::nullopt;
      };
      std::optional<SmallVector<int64_t>> sq = axesOf(n),
                                          un = u ? axesOf(u) : std::nullopt;
      if (!sq || !un || sq->size() != 1 || un->size() != 1)
        continue;
      // Both axes index Unsqueeze's result (Squeeze's input), whose rank
      // must be known: an axis out of range leaves both nodes to the
      // conversion, which refuses them.
      const Sizes *s = shapes.shapeOf(in);
      if (!s)
        continue;
      int64_t rank = s->size(), a = (*sq)[0], b = (*un)[0];
      a = a < 0 ? a + rank : a;
      b = b < 0 ? b + rank : b;
      if (a == b && a >= 0 && a < rank)
        replace(u.getInputs()[0]);
      continue;
    }
    // A Cast of a float to its own type (Hugging Face's eager attention
    // casts the softmax to the query's dtype: f32 to f32), or of a bool to
    // bool (torch 1.13's masked_fill casts its mask).
    if (op == "Cast" && n.getInputs().size() == 1) {
      std::optional<int64_t> to = strictInt(n, "to", -1);
      Type elt = shapes.elementTypeOf(in);
      if (to && elt &&
          ((*to == 1 && elt.isF32()) || (*to == 10 && elt.isF16()) ||
           (*to == 11 && elt.isF64()) || (*to == 16 && elt.isBF16()) ||
           (*to == 9 && elt.isInteger(1)))) {
        replace(in);
        continue;
      }
    }
    if (op == "Transpose" && n.getInputs().size() == 1) {
      const Sizes *s = shapes.shapeOf(in);
      std::optional<SmallVector<int64_t>> perm =
          permOf(n, s ? (int64_t)s->size() : -1);
      if (perm && isIdentityPerm(*perm) && s && perm->size() == s->size()) {
        replace(in);
        continue;
      }
      // A linear layer's weight (x @ w.t(): the routing scores), as the
      // TorchScript exporter would have folded it. Other transposed
      // constants are left to the einsum recovery, which reads them
      // through the Transpose as the einsum's operand.
      // (A shared layer's weight feeds one MatMul per repeat.)
      DenseElementsAttr c = constantOf(in);
      bool linear = !out.use_empty() &&
                    llvm::all_of(out.getUses(), [&](OpOperand &use) {
                      auto user = dyn_cast<onnxir::NodeOp>(use.getOwner());
                      return user && user.getDomain().empty() &&
                             user.getOpType() == "MatMul" &&
                             user.getInputs().size() == 2 &&
                             use.getOperandNumber() == 1 &&
                             user.getInputs()[0] != out;
                    });
      if (perm && c && in.hasOneUse() && linear && c.getType().getRank() == 2) {
        if (DenseElementsAttr t = transposeConstant(c, *perm)) {
          rewriter.setInsertionPoint(n);
          replace(arith::ConstantOp::create(rewriter, n.getLoc(), t));
        }
      }
      continue;
    }
    if (op == "Expand" && n.getInputs().size() == 2) {
      const Sizes *s = shapes.shapeOf(in);
      const Sizes *target = shapes.valuesOf(n.getInputs()[1]);
      onnxir::NodeOp shape = producer(n.getInputs()[1], "Shape");
      bool ownShape = shape && shape.getInputs()[0] == in &&
                      intAttrOf(shape, "start").value_or(0) == 0 &&
                      !shape.getNodeAttributes().get("end");
      if (ownShape || (s && target && *s == *target))
        replace(in);
      continue;
    }
    if (op == "CastLike" && n.getInputs().size() == 2) {
      // A small constant cast to a float type (torch writes zeros_like's
      // 0 as an int64 constant cast like the tensor).
      DenseElementsAttr c = constantOf(in);
      auto like = dyn_cast<RankedTensorType>(n.getInputs()[1].getType());
      auto to = like ? dyn_cast<FloatType>(like.getElementType()) : nullptr;
      if (!c || !to || c.getNumElements() > 64)
        continue;
      SmallVector<APFloat> vals;
      if (isa<FloatType>(c.getElementType())) {
        for (APFloat v : c.getValues<APFloat>()) {
          bool lost = false;
          v.convert(to.getFloatSemantics(), APFloat::rmNearestTiesToEven,
                    &lost);
          vals.push_back(v);
        }
      } else if (auto it = dyn_cast<IntegerType>(c.getElementType());
                 it && it.getWidth() > 1) {
        for (const APInt &i : c.getValues<APInt>()) {
          APFloat v(to.getFloatSemantics());
          v.convertFromAPInt(i, /*isSigned=*/!it.isUnsigned(),
                             APFloat::rmNearestTiesToEven);
          vals.push_back(v);
        }
      } else {
        continue;
      }
      rewriter.setInsertionPoint(n);
      replace(arith::ConstantOp::create(
          rewriter, n.getLoc(),
          DenseElementsAttr::get(
              RankedTensorType::get(c.getType().getShape(), to), vals)));
      continue;
    }
    if (op == "Gemm" && n.getVersion() >= 13) {
      // nn.Linear without bias as the dynamo exporter of PyTorch 2.9
      // writes it: Gemm(x, W, transB = 1) is MatMul(x, W^T), the
      // transposed constant folded (the form the TorchScript exporter
      // writes).
      auto inputs = n.getInputs();
      bool noC = inputs.size() == 2 ||
                 (inputs.size() == 3 && isa<NoneType>(inputs[2].getType()));
      Attribute alpha = n.getNodeAttributes().get("alpha");
      auto alphaF = dyn_cast_or_null<FloatAttr>(alpha);
      std::optional<int64_t> transA = strictInt(n, "transA", 0),
                             transB = strictInt(n, "transB", 0);
      const Sizes *a = shapes.shapeOf(in);
      if (!noC || (alpha && (!alphaF || alphaF.getValueAsDouble() != 1.0)) ||
          transA != 0 || !transB || !a || a->size() != 2)
        continue;
      DenseElementsAttr w = constantOf(inputs[1]);
      if (!w || w.getType().getRank() != 2)
        continue;
      Value weight = inputs[1];
      rewriter.setInsertionPoint(n);
      if (*transB != 0) {
        if (!inputs[1].hasOneUse())
          continue;
        DenseElementsAttr t = transposeConstant(w, {1, 0});
        if (!t)
          continue;
        weight = arith::ConstantOp::create(rewriter, n.getLoc(), t);
      }
      auto mm = onnxir::NodeOp::create(
          rewriter, n.getLoc(), TypeRange{out.getType()},
          rewriter.getStringAttr("MatMul"), n.getDomainAttr(),
          n.getVersionAttr(), rewriter.getDictionaryAttr({}),
          ValueRange{in, weight});
      replace(mm.getResult(0));
      continue;
    }
    if (op == "GatherND" && n.getInputs().size() == 2 &&
        strictInt(n, "batch_dims", 0) == 0) {
      onnxir::NodeOp u = producer(n.getInputs()[1], "Unsqueeze");
      if (!u)
        continue;
      const Sizes *s = shapes.shapeOf(u.getInputs()[0]);
      std::optional<SmallVector<int64_t>> axes;
      if (u.getInputs().size() == 2)
        axes = intsOf(u.getInputs()[1]);
      if (!axes || axes->size() != 1 ||
          !((*axes)[0] == -1 || (s && (*axes)[0] == (int64_t)s->size())))
        continue;
      rewriter.setInsertionPoint(n);
      auto g = onnxir::NodeOp::create(
          rewriter, n.getLoc(), TypeRange{out.getType()},
          rewriter.getStringAttr("Gather"), n.getDomainAttr(),
          n.getVersionAttr(),
          rewriter.getDictionaryAttr(
              {rewriter.getNamedAttr("axis", rewriter.getI64IntegerAttr(0))}),
          ValueRange{n.getInputs()[0], u.getInputs()[0]});
      replace(g.getResult(0));
    }
  }
}

//===----------------------------------------------------------------------===//
// Einsum recovery
//===----------------------------------------------------------------------===//

/// A tensor of a view chain: for each dim, the atoms it holds, row-major.
using Dims = SmallVector<SmallVector<unsigned, 2>, 4>;

class EinsumRecovery {
public:
  EinsumRecovery(SymbolicShapes &shapes) : shapes(shapes) {}

  /// Tries `mm`; on success creates the Einsum and returns it with the
  /// value it replaces.
  std::optional<std::pair<onnxir::NodeOp, Value>>
  recover(onnxir::NodeOp mm, RewriterBase &rewriter);

private:
  /// The view chain ending at `v`, from its root (the first value not made
  /// by a view node); `sawRankChange` is set when it changes a rank.
  Value rootOf(Value v, SmallVector<onnxir::NodeOp> &chain,
               bool &sawRankChange);
  /// Applies view node `n` to `dims`.
  bool apply(onnxir::NodeOp n, Dims &dims);
  bool regroup(const Sizes &target, Dims &dims);
  /// Starts a root of `rank` dims whose atoms begin at `first`.
  std::optional<Dims> start(Value root, unsigned first);

  SymbolicShapes &shapes;
  SmallVector<Size> atomSize;
  llvm::EquivalenceClasses<unsigned> same;
};

Value EinsumRecovery::rootOf(Value v, SmallVector<onnxir::NodeOp> &chain,
                             bool &sawRankChange) {
  while (auto n = v.getDefiningOp<onnxir::NodeOp>()) {
    if (!n.getDomain().empty() || !isViewOp(n.getOpType()) ||
        n.getNumResults() != 1 || n.getInputs().empty())
      break;
    if (n.getOpType() != "Transpose" && n.getOpType() != "Identity")
      sawRankChange = true;
    chain.push_back(n);
    v = n.getInputs()[0];
  }
  std::reverse(chain.begin(), chain.end());
  return v;
}

std::optional<Dims> EinsumRecovery::start(Value root, unsigned first) {
  const Sizes *s = shapes.shapeOf(root);
  if (!s)
    return std::nullopt;
  Dims dims;
  for (auto [i, size] : llvm::enumerate(*s)) {
    dims.emplace_back();
    if (!size.isConst(1))
      dims.back().push_back(first + i);
  }
  return dims;
}

bool EinsumRecovery::regroup(const Sizes &target, Dims &dims) {
  SmallVector<unsigned> atoms;
  for (auto &d : dims)
    atoms.append(d.begin(), d.end());
  Dims out;
  size_t next = 0;
  for (const Size &want : target) {
    out.emplace_back();
    if (want.isConst(1))
      continue;
    Size have;
    while (have != want) {
      if (next == atoms.size())
        return false;
      std::optional<Size> p = mul(have, atomSize[atoms[next]]);
      if (!p)
        return false;
      have = *p;
      out.back().push_back(atoms[next++]);
    }
  }
  if (next != atoms.size())
    return false;
  dims = std::move(out);
  return true;
}

bool EinsumRecovery::apply(onnxir::NodeOp n, Dims &dims) {
  StringRef op = n.getOpType();
  int64_t rank = dims.size();
  if (op == "Identity")
    return true;
  if (op == "Transpose") {
    std::optional<SmallVector<int64_t>> perm = permOf(n, rank);
    if (!perm || (int64_t)perm->size() != rank)
      return false;
    Dims out;
    for (int64_t p : *perm) {
      if (p < 0 || p >= rank)
        return false;
      out.push_back(dims[p]);
    }
    dims = std::move(out);
    return true;
  }
  if (op == "Unsqueeze" || op == "Squeeze") {
    std::optional<SmallVector<int64_t>> axes;
    if (n.getInputs().size() >= 2)
      axes = intsOf(n.getInputs()[1]);
    if (!axes)
      return false; // Squeeze without axes, or the attribute form
    int64_t outRank = rank + (op == "Unsqueeze" ? axes->size() : 0);
    SmallVector<bool> marked(outRank, false);
    for (int64_t a : *axes) {
      if (a < 0)
        a += outRank;
      if (a < 0 || a >= outRank || marked[a])
        return false;
      marked[a] = true;
    }
    Dims out;
    if (op == "Unsqueeze") {
      auto it = dims.begin();
      for (int64_t i = 0; i < outRank; ++i)
        out.push_back(marked[i] ? SmallVector<unsigned, 2>() : *it++);
    } else {
      for (int64_t i = 0; i < outRank; ++i) {
        if (!marked[i])
          out.push_back(dims[i]);
        else if (!dims[i].empty())
          return false; // a dim of an unknown size, squeezed
      }
    }
    dims = std::move(out);
    return true;
  }
  if (op == "Reshape" && n.getInputs().size() == 2) {
    const Sizes *target = shapes.valuesOf(n.getInputs()[1]);
    if (!target)
      return false;
    Sizes in;
    for (auto &d : dims) {
      SmallVector<Size> parts;
      for (unsigned a : d)
        parts.push_back(atomSize[a]);
      std::optional<Size> p = product(parts);
      if (!p)
        return false;
      in.push_back(*p);
    }
    std::optional<int64_t> allowZero = strictInt(n, "allowzero", 0);
    if (!allowZero)
      return false;
    std::optional<Sizes> resolved =
        SymbolicShapes::resolveReshape(in, *target, *allowZero != 0);
    return resolved && regroup(*resolved, dims);
  }
  return false;
}

std::optional<std::pair<onnxir::NodeOp, Value>>
EinsumRecovery::recover(onnxir::NodeOp mm, RewriterBase &rewriter) {
  if (mm.getNumResults() != 1 || mm.getInputs().size() != 2 ||
      mm.getVersion() < 12)
    return std::nullopt;
  SmallVector<onnxir::NodeOp> chainA, chainB;
  bool rankChange = false;
  Value rootA = rootOf(mm.getInputs()[0], chainA, rankChange);
  Value rootB = rootOf(mm.getInputs()[1], chainB, rankChange);
  atomSize.clear();
  same = {};
  const Sizes *sa = shapes.shapeOf(rootA), *sb = shapes.shapeOf(rootB);
  if (!sa || !sb)
    return std::nullopt;
  atomSize.append(sa->begin(), sa->end());
  atomSize.append(sb->begin(), sb->end());
  unsigned rankA = sa->size(), rankB = sb->size();
  std::optional<Dims> a = start(rootA, 0), b = start(rootB, rankA);
  if (!a || !b)
    return std::nullopt;
  for (onnxir::NodeOp n : chainA)
    if (!apply(n, *a))
      return std::nullopt;
  for (onnxir::NodeOp n : chainB)
    if (!apply(n, *b))
      return std::nullopt;
  // ATen lowers each contraction of an einsum to one bmm: [batch, rows,
  // contracted] x [batch, contracted, cols]. Other MatMuls (a linear layer
  // on flattened rows, say) stay as they are.
  if (a->size() != 3 || b->size() != 3 || !rankChange)
    return std::nullopt;
  for (unsigned i = 0; i < rankA + rankB; ++i)
    same.insert(i);
  // Two dims that a MatMul pairs hold the same atoms.
  auto pair = [&](ArrayRef<unsigned> x, ArrayRef<unsigned> y) {
    if (x.size() != y.size())
      return false;
    for (auto [p, q] : llvm::zip(x, y)) {
      if (atomSize[p] != atomSize[q])
        return false;
      same.unionSets(p, q);
    }
    return true;
  };
  Dims out;
  size_t batchA = a->size() - 2, batchB = b->size() - 2;
  size_t batch = std::max(batchA, batchB);
  for (size_t i = 0; i < batch; ++i) {
    // Right-aligned; a missing or atom-less dim broadcasts.
    ArrayRef<unsigned> x, y;
    if (i + batchA >= batch)
      x = (*a)[i + batchA - batch];
    if (i + batchB >= batch)
      y = (*b)[i + batchB - batch];
    if (!x.empty() && !y.empty()) {
      if (!pair(x, y))
        return std::nullopt;
      out.push_back(SmallVector<unsigned, 2>(x));
    } else {
      out.push_back(SmallVector<unsigned, 2>(x.empty() ? y : x));
    }
  }
  if (!pair((*a)[a->size() - 1], (*b)[b->size() - 2]))
    return std::nullopt;
  out.push_back((*a)[a->size() - 2]);
  out.push_back((*b)[b->size() - 1]);
  auto canonical = [&](Dims &dims) {
    for (auto &d : dims)
      for (unsigned &x : d)
        x = same.getLeaderValue(x);
  };
  canonical(out);
  // Where ATen's einsum produced its output: along the result's chain of
  // views (one user each), ATen unflattens the bmm result to the common
  // label order, permutes it back and drops the contracted size-1 dims. So
  // the output is the first tensor whose every dim is exactly one atom and
  // that a rank-reducing view made; failing that, the last tensor with one
  // atom per dim. (What follows such a point may be the next einsum's
  // operand preparation.)
  auto clean = [](const Dims &dims) {
    return llvm::all_of(dims, [](const auto &d) { return d.size() == 1; });
  };
  Value cur = mm.getResult(0), chosen;
  Dims chosenDims;
  if (clean(out)) {
    chosen = cur;
    chosenDims = out;
  }
  while (cur.hasOneUse()) {
    auto n = dyn_cast<onnxir::NodeOp>(*cur.getUsers().begin());
    if (!n || !n.getDomain().empty() || !isViewOp(n.getOpType()) ||
        n.getNumResults() != 1 || n.getInputs()[0] != cur ||
        llvm::count(n.getInputs(), cur) != 1)
      break;
    size_t rankBefore = out.size();
    if (!apply(n, out))
      break;
    cur = n.getResult(0);
    if (!clean(out))
      continue;
    chosen = cur;
    chosenDims = out;
    if (out.size() < rankBefore)
      break;
  }
  if (!chosen)
    return std::nullopt;
  cur = chosen;
  out = std::move(chosenDims);
  // Letters: one per class, in order of first appearance in a, b.
  DenseMap<unsigned, char> letter;
  std::string eq[3];
  auto letterOf = [&](unsigned atom) -> std::optional<char> {
    unsigned leader = same.getLeaderValue(atom);
    auto [it, inserted] = letter.try_emplace(leader, 0);
    if (inserted) {
      size_t n = letter.size() - 1;
      if (n >= 52)
        return std::nullopt;
      it->second = n < 26 ? 'a' + n : 'A' + (n - 26);
    }
    return it->second;
  };
  for (unsigned i = 0; i < rankA + rankB; ++i) {
    std::optional<char> c = letterOf(i);
    if (!c)
      return std::nullopt;
    eq[i < rankA ? 0 : 1] += *c;
  }
  Sizes outSizes;
  for (auto &d : out) {
    eq[2] += letter.lookup(d.front());
    outSizes.push_back(atomSize[d.front()]);
  }
  // Each letter at most once per subscript (Einsum has no diagonals). A
  // guard: each atom is paired at most once, so this holds by
  // construction.
  for (const std::string &s : eq)
    for (char c : s)
      if (llvm::count(s, c) != 1)
        return std::nullopt;
  rewriter.setInsertionPointAfterValue(cur);
  std::string equation = eq[0] + "," + eq[1] + "->" + eq[2];
  auto einsum = onnxir::NodeOp::create(
      rewriter, mm.getLoc(), TypeRange{cur.getType()},
      rewriter.getStringAttr("Einsum"), mm.getDomainAttr(), mm.getVersionAttr(),
      rewriter.getDictionaryAttr({rewriter.getNamedAttr(
          "equation", rewriter.getStringAttr(equation))}),
      ValueRange{rootA, rootB});
  shapes.setShape(einsum.getResult(0), outSizes);
  return std::make_pair(einsum, cur);
}

} // namespace

raise::PreparedGraph::PreparedGraph() = default;
raise::PreparedGraph::~PreparedGraph() = default;
raise::PreparedGraph::PreparedGraph(PreparedGraph &&) = default;

RewriterBase::Listener *raise::PreparedGraph::listener() {
  return shapes.get();
}

raise::PreparedGraph raise::prepareForRaise(ModuleOp module,
                                            RewriterBase &rewriter) {
  simplifyNodes(module, rewriter, SymbolicShapes(module));
  PreparedGraph out;
  // Again, for the nodes the simplification made.
  out.shapes = std::make_unique<SymbolicShapes>(module);
  SmallVector<onnxir::NodeOp> matmuls;
  module.walk([&](onnxir::NodeOp n) {
    if (n.getDomain().empty() && n.getOpType() == "MatMul")
      matmuls.push_back(n);
  });
  EinsumRecovery recovery(*out.shapes);
  for (onnxir::NodeOp mm : matmuls) {
    auto r = recovery.recover(mm, rewriter);
    if (!r)
      continue;
    rewriter.replaceAllUsesExcept(r->second, r->first.getResult(0), r->first);
    out.recovered.push_back(*r);
  }
  return out;
}

namespace {
thread_local const raise::SymbolicShapes *currentShapes = nullptr;
} // namespace

raise::SizeFactsScope::SizeFactsScope(const SymbolicShapes *shapes)
    : saved(currentShapes) {
  currentShapes = shapes;
}

raise::SizeFactsScope::~SizeFactsScope() { currentShapes = saved; }

bool raise::sameSize(Value piece, Value x, int64_t i) {
  if (!currentShapes || !piece || !x)
    return false;
  const Sizes *v = currentShapes->valuesOf(piece);
  const Sizes *s = currentShapes->shapeOf(x);
  return v && s && v->size() == 1 && i >= 0 && i < (int64_t)s->size() &&
         v->front() == (*s)[i];
}

bool raise::sameDim(Value a, int64_t i, Value b, int64_t j) {
  auto ta = dyn_cast<RankedTensorType>(a.getType());
  auto tb = dyn_cast<RankedTensorType>(b.getType());
  if (i < 0 || j < 0 || (ta && i >= ta.getRank()) || (tb && j >= tb.getRank()))
    return false;
  if (ta && tb && !ta.isDynamicDim(i) && !tb.isDynamicDim(j))
    return ta.getDimSize(i) == tb.getDimSize(j);
  if (!currentShapes)
    return false;
  const Sizes *sa = currentShapes->shapeOf(a);
  const Sizes *sb = currentShapes->shapeOf(b);
  return sa && sb && i < (int64_t)sa->size() && j < (int64_t)sb->size() &&
         (*sa)[i] == (*sb)[j];
}

Type raise::elementTypeOf(Value v) {
  if (currentShapes)
    return currentShapes->elementTypeOf(v);
  auto t = dyn_cast<RankedTensorType>(v.getType());
  return t ? t.getElementType() : Type();
}

int64_t raise::rankOf(Value v) {
  if (auto t = dyn_cast<RankedTensorType>(v.getType()))
    return t.getRank();
  const Sizes *s = currentShapes ? currentShapes->shapeOf(v) : nullptr;
  return s ? static_cast<int64_t>(s->size()) : -1;
}

std::optional<int64_t> raise::constantDim(Value v, int64_t d) {
  if (auto t = dyn_cast<RankedTensorType>(v.getType())) {
    if (d < 0 || d >= t.getRank())
      return std::nullopt;
    if (!t.isDynamicDim(d))
      return t.getDimSize(d);
  }
  const Sizes *s = currentShapes ? currentShapes->shapeOf(v) : nullptr;
  if (!s || d < 0 || d >= static_cast<int64_t>(s->size()) ||
      !(*s)[d].syms.empty())
    return std::nullopt;
  return (*s)[d].coef;
}

std::optional<int64_t> raise::knownEntry(Value v, int64_t e) {
  if (!currentShapes) {
    std::optional<SmallVector<int64_t>> c = intsOf(v);
    if (!c || e < 0 || e >= (int64_t)c->size())
      return std::nullopt;
    return (*c)[e];
  }
  const Sizes *s = currentShapes->valuesOf(v);
  if (!s || e < 0 || e >= (int64_t)s->size() || !(*s)[e].syms.empty())
    return std::nullopt;
  return (*s)[e].coef;
}

int64_t raise::knownLength(Value v) {
  if (!currentShapes) {
    std::optional<SmallVector<int64_t>> c = intsOf(v);
    return c ? (int64_t)c->size() : -1;
  }
  const Sizes *s = currentShapes->valuesOf(v);
  return s ? (int64_t)s->size() : -1;
}

bool raise::entryIsDim(Value v, int64_t e, Value x, int64_t i) {
  if (std::optional<int64_t> c = knownEntry(v, e))
    if (std::optional<int64_t> d = constantDim(x, i))
      return *c == *d;
  if (!currentShapes)
    return false;
  const Sizes *s = currentShapes->valuesOf(v);
  const Sizes *shape = currentShapes->shapeOf(x);
  return s && shape && e >= 0 && e < (int64_t)s->size() && i >= 0 &&
         i < (int64_t)shape->size() && (*s)[e] == (*shape)[i];
}

bool raise::isIdentityReshape(onnxir::NodeOp rs) {
  if (!rs || rs.getOpType() != "Reshape" || rs.getInputs().size() != 2)
    return false;
  Value x = rs.getInputs()[0], shape = rs.getInputs()[1];
  int64_t rank = rankOf(x);
  if (rank < 0 || knownLength(shape) != rank)
    return false;
  bool allowZero = intAttrOf(rs, "allowzero").value_or(0) != 0;
  int64_t inferred = 0;
  for (int64_t i = 0; i < rank; ++i) {
    std::optional<int64_t> c = knownEntry(shape, i);
    if (c && *c == -1) {
      ++inferred;
      continue;
    }
    if (c && *c == 0 && !allowZero)
      continue; // copies dim i
    if (!entryIsDim(shape, i, x, i))
      return false;
  }
  // Every other entry is x's own size, so one -1 is x's size there too.
  return inferred <= 1;
}

bool raise::sameShape(Value shape, Value x) {
  if (!currentShapes || !shape || !x)
    return false;
  const Sizes *v = currentShapes->valuesOf(shape);
  const Sizes *s = currentShapes->shapeOf(x);
  return v && s && *v == *s;
}

//===- OnnxToMoe.cpp - the handler registry and its thin pass --------------===//
//
// Why not the dialect conversion framework: an ONNX node's result type is
// known only once its producer has been converted (stage 1 types are hints),
// so nodes are converted in program order, each handler seeing converted
// operands, and uses are replaced as we go. `onnx.node` accepts operands of
// any type, so the IR stays valid between steps; the function results get a
// `tensor.cast` where the converted type differs from the declared one.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/OnnxToMoe/OnnxToMoe.h"
#include "moe/Conversion/Passes.h"

#include "HandlerUtils.h"
#include "ShapeValues.h"
#include "moe/Utils/BuildUtils.h"
#include "moe/Utils/RuntimeErrors.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinDialect.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/PatternMatch.h"
#include "moe/Import/ONNX/Importer.h"
#include "llvm/ADT/DenseSet.h"

#include <algorithm>

namespace mlir::moe {
#define GEN_PASS_DEF_CONVERTONNXTOMOE
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::onnx_conv;

void OnnxHandlerRegistry::add(StringRef domain, StringRef opType,
                              int64_t sinceVersion, OnnxHandler handler) {
  SmallVector<Entry> &list = handlers[(domain + ":" + opType).str()];
  list.push_back({sinceVersion, handler});
  llvm::sort(list, [](const Entry &a, const Entry &b) {
    return a.since < b.since;
  });
}

/// The newest ai.onnx schema version of `opType` in (kAuditedOnnxOpset,
/// version], or 0.
static int64_t newestSchemaChange(StringRef opType, int64_t version) {
  struct Changes {
    StringLiteral op;
    int64_t versions[12]; // zero-padded
  };
#define ONNX_SCHEMA_CHANGES(OP, ...) {OP, {__VA_ARGS__}},
  static const Changes table[] = {
#include "OnnxSchemaChanges.inc"
  };
#undef ONNX_SCHEMA_CHANGES
  for (const Changes &c : table) {
    if (c.op != opType)
      continue;
    int64_t newest = 0;
    for (int64_t v : c.versions)
      if (v <= version)
        newest = std::max(newest, v);
    return newest;
  }
  return 0;
}

OnnxHandler OnnxHandlerRegistry::lookup(StringRef domain, StringRef opType,
                                        int64_t version) const {
  auto it = handlers.find((domain + ":" + opType).str());
  if (it == handlers.end())
    return nullptr;
  const Entry *best = nullptr;
  for (const Entry &e : it->second)
    if (e.since <= version)
      best = &e;
  if (!best)
    return nullptr;
  if (domain.empty() && newestSchemaChange(opType, version) > best->since)
    return nullptr;
  return best->handler;
}

std::optional<std::pair<int64_t, int64_t>>
OnnxHandlerRegistry::staleHandler(StringRef domain, StringRef opType,
                                  int64_t version) const {
  auto it = handlers.find((domain + ":" + opType).str());
  if (it == handlers.end() || !domain.empty())
    return std::nullopt;
  int64_t since = 0;
  for (const Entry &e : it->second)
    if (e.since <= version)
      since = e.since;
  int64_t schema = newestSchemaChange(opType, version);
  if (since == 0 || schema <= since)
    return std::nullopt;
  return std::make_pair(since, schema);
}

std::vector<std::tuple<std::string, std::string, int64_t>>
OnnxHandlerRegistry::entries() const {
  std::vector<std::tuple<std::string, std::string, int64_t>> out;
  for (const auto &kv : handlers) {
    auto [domain, op] = StringRef(kv.getKey()).split(':');
    for (const Entry &e : kv.getValue())
      out.emplace_back(domain.str(), op.str(), e.since);
  }
  std::sort(out.begin(), out.end());
  return out;
}

const OnnxHandlerRegistry &mlir::moe::getDefaultOnnxHandlers() {
  static const OnnxHandlerRegistry registry = [] {
    OnnxHandlerRegistry r;
    populateStandardOnnxHandlers(r);
    populateMoeDomainHandlers(r);
    populateMicrosoftDomainHandlers(r);
    // ai.onnx schema versions after kAuditedOnnxOpset that the handlers
    // above were checked against. Each only adds element types the handler
    // converts as before or refuses (bfloat16; 2- and 4-bit integers; 4-, 6-
    // and 8-bit floats). Mod-28, which defines fmod = 0 for floats, has its
    // own registration. Cast-24's and CastLike-24's `round_mode` applies
    // only to float8e8m0, which the importer does not read. Range-27 has its
    // own handler.
    // clang-format off
    static const std::pair<StringLiteral, int64_t> typeOnly[] = {
        {"Cast", 23}, {"Cast", 24}, {"Cast", 25}, {"Cast", 28},
        {"CastLike", 23}, {"CastLike", 24}, {"CastLike", 25},
        {"Constant", 23}, {"Constant", 24}, {"Constant", 25},
        {"ConstantOfShape", 23}, {"ConstantOfShape", 24}, {"ConstantOfShape", 25},
        {"Conv", 22},
        {"Cos", 22},
        {"Dropout", 22},
        {"Einsum", 28},
        {"Flatten", 23}, {"Flatten", 24}, {"Flatten", 25},
        {"Identity", 23}, {"Identity", 24}, {"Identity", 25},
        {"OneHot", 28},
        {"Pad", 23}, {"Pad", 24}, {"Pad", 25},
        {"Reshape", 23}, {"Reshape", 24}, {"Reshape", 25},
        {"Shape", 23}, {"Shape", 24}, {"Shape", 25},
        {"Sin", 22},
        {"Size", 23}, {"Size", 24}, {"Size", 25},
        {"Squeeze", 23}, {"Squeeze", 24}, {"Squeeze", 25},
        {"TopK", 24},
        {"Transpose", 23}, {"Transpose", 24}, {"Transpose", 25},
        {"Unsqueeze", 23}, {"Unsqueeze", 24}, {"Unsqueeze", 25}};
    // clang-format on
    for (auto [op, version] : typeOnly) {
      OnnxHandler previous = r.lookup("", op, version - 1);
      if (!previous)
        llvm::report_fatal_error(Twine("audited ONNX schema without a handler: ") + op + "-" + Twine(version));
      r.add("", op, version, previous);
    }
    return r;
  }();
  return registry;
}

namespace {

Type signless(Type t) {
  if (auto r = dyn_cast<RankedTensorType>(t))
    if (auto i = dyn_cast<IntegerType>(r.getElementType());
        i && !i.isSignless())
      return r.clone(IntegerType::get(t.getContext(), i.getWidth()));
  return t;
}

void normalizeUnsigned(ModuleOp module, RewriterBase &rewriter) {
  MLIRContext *ctx = module.getContext();
  module.walk([&](func::FuncOp func) {
    FunctionType type = func.getFunctionType();
    SmallVector<Type> args, results;
    for (auto [i, t] : llvm::enumerate(type.getInputs())) {
      args.push_back(signless(t));
      if (args.back() != t)
        func.setArgAttr(i, "moe.unsigned", UnitAttr::get(ctx));
    }
    for (auto [i, t] : llvm::enumerate(type.getResults())) {
      results.push_back(signless(t));
      if (results.back() != t)
        func.setResultAttr(i, "moe.unsigned", UnitAttr::get(ctx));
    }
    func.setFunctionType(FunctionType::get(ctx, args, results));
    for (BlockArgument arg : func.getArguments())
      arg.setType(signless(arg.getType()));
  });
  module.walk([&](Operation *op) {
    for (Value r : op->getResults())
      r.setType(signless(r.getType()));
  });
  // Constants of unsigned elements keep their bits under the signless type
  // their result now has.
  module.walk([&](arith::ConstantOp cst) {
    auto type = dyn_cast<RankedTensorType>(cst.getType());
    if (!type || cst.getValue().getType() == type)
      return;
    if (auto dense = dyn_cast<DenseElementsAttr>(cst.getValue()))
      cst.setValueAttr(dense.bitcast(type.getElementType()));
    else if (auto resource =
                 dyn_cast<DenseResourceElementsAttr>(cst.getValue()))
      cst.setValueAttr(
          DenseResourceElementsAttr::get(type, resource.getRawHandle()));
  });
  module.walk([&](tensor::BitcastOp cast) {
    if (cast.getSource().getType() == cast.getType())
      rewriter.replaceOp(cast, cast.getSource());
  });
}

/// ONNX's name of a tensor element type ("tensor(float)"), if it has one.
std::string onnxTensorTypeName(Type t) {
  auto tensor = dyn_cast<RankedTensorType>(t);
  if (!tensor)
    return "";
  Type e = tensor.getElementType();
  const char *name = nullptr;
  if (e.isF32())
    name = "float";
  else if (e.isF64())
    name = "double";
  else if (e.isF16())
    name = "float16";
  else if (e.isBF16())
    name = "bfloat16";
  else if (e.isInteger(1))
    name = "bool";
  else if (auto i = dyn_cast<IntegerType>(e)) {
    static const char *const kSigned[] = {"int8", "int16", "int32", "int64"};
    static const char *const kUnsigned[] = {"uint8", "uint16", "uint32",
                                            "uint64"};
    unsigned w = i.getWidth();
    int at = w == 8 ? 0 : w == 16 ? 1 : w == 32 ? 2 : w == 64 ? 3 : -1;
    if (at >= 0)
      name = i.isUnsigned() ? kUnsigned[at] : kSigned[at];
  }
  return name ? "tensor(" + std::string(name) + ")" : "";
}

/// Refuses an ai.onnx node one of whose tensor inputs has an element type
/// its schema's type constraint does not allow (findSchemaTypeMismatch).
/// ONNX Runtime refuses such a model at load time; a handler could compute
/// something no specification defines on it, e.g. a CumSum of bools, which
/// torch.onnx.export writes for `mask.cumsum(-1)`.
LogicalResult checkSchemaTypes(onnxir::NodeOp node) {
  if (!node.getDomain().empty())
    return success();
  SmallVector<std::string> types =
      llvm::map_to_vector(node.getInputs(), [](Value v) {
        return onnxTensorTypeName(v.getType());
      });
  std::optional<SchemaTypeMismatch> bad =
      findSchemaTypeMismatch(node.getOpType(), node.getVersion(), types);
  if (!bad)
    return success();
  InFlightDiagnostic d = nodeError(node);
  d << "input " << bad->input << " ('" << bad->formal << "') is a "
    << types[bad->input] << ", which " << node.getOpType() << "-" << bad->since
    << " does not accept (";
  llvm::interleaveComma(bad->allowed, d);
  d << ")";
  return failure();
}

struct ConvertOnnxToMoePass
    : moe::impl::ConvertOnnxToMoeBase<ConvertOnnxToMoePass> {
  void runOnOperation() override {
    const OnnxHandlerRegistry &registry = getDefaultOnnxHandlers();
    ModuleOp module = getOperation();

    // 1. Every node without a handler, in one run.
    bool unsupported = false;
    module.walk([&](onnxir::NodeOp node) {
      if (registry.lookup(node.getDomain(), node.getOpType(),
                          node.getVersion()))
        return;
      unsupported = true;
      if (auto stale = registry.staleHandler(
              node.getDomain(), node.getOpType(), node.getVersion())) {
        node.emitError() << describe(node) << ": ai.onnx." << node.getOpType()
                         << "-" << stale->second << " (opset "
                         << node.getVersion() << ") is not supported: its "
                         << "schema changed after " << node.getOpType() << "-"
                         << stale->first << ", the version this importer "
                         << "implements";
        return;
      }
      node.emitError() << describe(node) << ": unsupported op "
                       << (node.getDomain().empty() ? "ai.onnx"
                                                    : node.getDomain())
                       << "." << node.getOpType() << " at opset version "
                       << node.getVersion();
    });
    if (unsupported)
      return signalPassFailure();

    // 2. Convert in program order.
    IRRewriter rewriter(&getContext());
    bool failedAny = false;
    SmallVector<onnxir::NodeOp> nodes;
    module.walk([&](onnxir::NodeOp node) { nodes.push_back(node); });
    // Results of nodes that failed, and of nodes that depend on them: those
    // are skipped without a diagnostic of their own, so that each refusal
    // is reported once, at the node that caused it.
    llvm::DenseSet<Value> failedValues;
    for (onnxir::NodeOp node : nodes) {
      if (llvm::any_of(node.getInputs(),
                       [&](Value v) { return failedValues.contains(v); })) {
        failedValues.insert(node.getResults().begin(),
                            node.getResults().end());
        continue;
      }
      rewriter.setInsertionPoint(node);
      OnnxHandler handler = registry.lookup(
          node.getDomain(), node.getOpType(), node.getVersion());
      // Shape computations on shape values fold entry by entry
      // (ShapeValues.h); everything else goes to its handler.
      FailureOr<SmallVector<Value>> results = failure();
      if (failed(checkSchemaTypes(node)))
        results = failure();
      else if (std::optional<SmallVector<Value>> folded =
                   onnx_conv::foldShapeNode(node, rewriter))
        results = *folded;
      else
        results = handler(node, rewriter);
      if (failed(results)) {
        failedAny = true;
        failedValues.insert(node.getResults().begin(),
                            node.getResults().end());
        continue;
      }
      assert(results->size() <= node.getNumResults() &&
             "handler returned too many results");
      for (auto [i, old] : llvm::enumerate(node.getResults())) {
        if (i < results->size() && (*results)[i]) {
          rewriter.replaceAllUsesWith(old, (*results)[i]);
        } else if (!old.use_empty()) {
          nodeError(node) << "output " << i << " is used but not supported";
          failedAny = true;
          failedValues.insert(old);
        }
      }
    }
    if (failedAny)
      return signalPassFailure();
    for (onnxir::NodeOp node : nodes)
      rewriter.eraseOp(node);
    module.walk([&](onnxir::NoneOp none) {
      if (none.use_empty())
        rewriter.eraseOp(none);
    });

    // 3. Unsigned integers: after conversion every op computes on signless
    // values (arith is signless; handlers bitcast at their boundaries), so
    // the remaining unsigned types (function boundaries, tensor.bitcast,
    // which MLIR 22 cannot bufferize) become signless; arguments and results
    // that were unsigned keep a `moe.unsigned` mark for the runtime
    // signature.
    normalizeUnsigned(module, rewriter);

    // 4. Function results keep their declared types.
    module.walk([&](func::ReturnOp ret) {
      auto func = ret->getParentOfType<func::FuncOp>();
      rewriter.setInsertionPoint(ret);
      for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
        Type want = func.getResultTypes()[i];
        if (v.getType() == want)
          continue;
        if (!tensor::CastOp::areCastCompatible(v.getType(), want)) {
          emitError(ret.getLoc())
              << "graph output " << i << " is computed as " << v.getType()
              << " but declared " << want;
          failedAny = true;
          continue;
        }
        // Declared sizes are checked at run time where the computed type is
        // dynamic: a cast alone would trust them.
        ret.setOperand(i, build::checkedCast(rewriter, ret.getLoc(), v, want,
                                             kErrorShapeMismatch));
      }
    });
    if (failedAny)
      signalPassFailure();
  }
};

} // namespace

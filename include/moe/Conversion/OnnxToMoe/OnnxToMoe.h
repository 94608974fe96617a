//===- OnnxToMoe.h - onnx.node -> moe and upstream dialects -----*- C++ -*-===//
//
// Stage 2 of the ONNX importer. Each `onnx.node` is given meaning by a
// handler registered under (domain, op type, since version): the handler with
// the greatest since version not above the node's opset version converts it.
// Handlers live in one file per group (StandardOps*.cpp, MoeDomain.cpp,
// MicrosoftDomain.cpp) and are added by their populate function.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_ONNXTOMOE_ONNXTOMOE_H
#define MOE_CONVERSION_ONNXTOMOE_ONNXTOMOE_H

#include "moe/Import/ONNX/OnnxOps.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Pass/Pass.h"

#include <memory>
#include <string>
#include <vector>

namespace mlir::moe {

/// Converts `node` (whose operands are already converted values) at the
/// rewriter's insertion point; returns the values replacing its results, or
/// failure after emitting a diagnostic at the node's location.
using OnnxHandler = FailureOr<SmallVector<Value>> (*)(onnxir::NodeOp node,
                                                      RewriterBase &rewriter);

/// Handlers by (domain, op type), each list sorted by since version.
/// The last ai.onnx opset whose schemas every handler was checked against;
/// newer schema versions are listed per operator in OnnxSchemaChanges.inc.
constexpr int64_t kAuditedOnnxOpset = 21;

class OnnxHandlerRegistry {
public:
  void add(StringRef domain, StringRef opType, int64_t sinceVersion,
           OnnxHandler handler);
  /// The handler for `opType` of `domain` at opset `version`, or null. An
  /// ai.onnx handler registered at `since` covers opset `version` only if the
  /// operator's schema did not change in (max(since, kAuditedOnnxOpset),
  /// version] (OnnxSchemaChanges.inc): a newer schema needs its own
  /// registration, made once the handler was checked against it.
  OnnxHandler lookup(StringRef domain, StringRef opType,
                     int64_t version) const;
  /// Where `lookup` is null because the schema changed after the newest
  /// handler: that handler's since version and the newer schema version.
  std::optional<std::pair<int64_t, int64_t>>
  staleHandler(StringRef domain, StringRef opType, int64_t version) const;
  /// Every registered (domain, op type, since version), sorted.
  std::vector<std::tuple<std::string, std::string, int64_t>> entries() const;

private:
  struct Entry {
    int64_t since;
    OnnxHandler handler;
  };
  llvm::StringMap<SmallVector<Entry>> handlers; // "domain:op"
};

/// Standard ai.onnx ops.
void populateStandardOnnxHandlers(OnnxHandlerRegistry &registry);
/// The org.moe_mlir domain (docs/onnx-moe-domain.md).
void populateMoeDomainHandlers(OnnxHandlerRegistry &registry);
/// com.microsoft.MoE.
void populateMicrosoftDomainHandlers(OnnxHandlerRegistry &registry);

/// The registry with every handler above.
const OnnxHandlerRegistry &getDefaultOnnxHandlers();

#define GEN_PASS_DECL_CONVERTONNXTOMOE
#include "moe/Conversion/Passes.h.inc"

} // namespace mlir::moe

#endif // MOE_CONVERSION_ONNXTOMOE_ONNXTOMOE_H

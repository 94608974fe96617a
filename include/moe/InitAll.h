//===- InitAll.h - register every moe dialect, pass and pipeline -*- C++ -*-===//

#ifndef MOE_INITALL_H
#define MOE_INITALL_H

#include "moe/Conversion/Passes.h"
#include "moe/IR/MoeOps.h"
#include "moe/Import/ONNX/OnnxOps.h"
#include "moe/Pipelines/Pipelines.h"
#include "moe/Transforms/Passes.h"
#include "moe/Transforms/Transforms.h"

#include "mlir/IR/DialectRegistry.h"

namespace mlir::moe {

/// Adds the moe dialect and the mechanical onnx dialect to `registry`, and
/// the interface models that replace upstream ones (tensor slices' subset
/// equivalence). Call it before mlir::registerAllDialects: MLIR keeps the
/// first model attached for an interface.
inline void registerAllDialects(DialectRegistry &registry) {
  registry.insert<MoeDialect, onnxir::OnnxDialect>();
  registerSliceSubsetModels(registry);
}

/// Registers every moe pass and named pipeline with the global registry.
inline void registerAllPasses() {
  registerMoePasses();
  registerMoeConversionPasses();
  registerMoePipelines();
}

} // namespace mlir::moe

#endif // MOE_INITALL_H

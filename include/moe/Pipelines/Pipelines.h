//===- Pipelines.h - named moe pass pipelines -------------------*- C++ -*-===//

#ifndef MOE_PIPELINES_PIPELINES_H
#define MOE_PIPELINES_PIPELINES_H

namespace mlir {
class OpPassManager;
namespace moe {

/// Adds the decomposition of every composite moe op into primitive ones,
/// followed by canonicalization and CSE (`moe-decompose`).
void buildDecomposePipeline(OpPassManager &pm);

/// Adds the reference lowering to the LLVM dialect (`moe-lower-to-llvm`):
/// the decomposition, convert-moe-to-linalg, one-shot bufferization, loops,
/// and the conversions to LLVM; every function gets a `_mlir_ciface_`
/// wrapper taking memref descriptors.
void buildLowerToLLVMPipeline(OpPassManager &pm);

/// Registers the named pipelines (`moe-decompose`, `moe-lower-to-llvm`).
void registerMoePipelines();

} // namespace moe
} // namespace mlir

#endif // MOE_PIPELINES_PIPELINES_H

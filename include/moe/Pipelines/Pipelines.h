//===- Pipelines.h - named moe pass pipelines -------------------*- C++ -*-===//

#ifndef MOE_PIPELINES_PIPELINES_H
#define MOE_PIPELINES_PIPELINES_H

namespace mlir {
class OpPassManager;
namespace moe {

/// Adds the decomposition of every composite moe op into primitive ones,
/// followed by canonicalization and CSE (`moe-decompose`).
void buildDecomposePipeline(OpPassManager &pm);

/// Registers the named pipelines (`moe-decompose`) with the global registry.
void registerMoePipelines();

} // namespace moe
} // namespace mlir

#endif // MOE_PIPELINES_PIPELINES_H

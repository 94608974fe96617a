//===- Pipelines.h - named moe pass pipelines -------------------*- C++ -*-===//

#ifndef MOE_PIPELINES_PIPELINES_H
#define MOE_PIPELINES_PIPELINES_H

namespace mlir {
class OpPassManager;
namespace moe {

/// Adds the decomposition of every composite moe op into primitive ones,
/// followed by canonicalization and CSE (`moe-decompose`).
void buildDecomposePipeline(OpPassManager &pm);

/// Adds the lowering to the LLVM dialect: the decomposition,
/// convert-moe-to-linalg, one-shot bufferization, the code ABI
/// (moe-lower-to-host-abi: every public function becomes
/// `moe_entry_<name>(frame)`), loops, and the conversions to LLVM. With
/// `cpuLoopOrder`, moe-cpu-loop-order runs after convert-moe-to-linalg
/// (moe-compile's default); without, it is the reference lowering
/// (`moe-lower-to-llvm`, `moe-compile --reference`).
/// With `parallelLoops`, linalg's parallel dims become scf.parallel and the
/// outermost ones run on the runtime's thread pool
/// (moe-parallel-loops-to-host; `moe-compile --parallel-loops`).
void buildLowerToLLVMPipeline(OpPassManager &pm, bool cpuLoopOrder = false,
                              bool parallelLoops = false);

/// Registers the named pipelines (`moe-decompose`, `moe-lower-to-llvm`,
/// `moe-lower-to-llvm-cpu`).
void registerMoePipelines();

} // namespace moe
} // namespace mlir

#endif // MOE_PIPELINES_PIPELINES_H

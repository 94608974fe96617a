//===- Pipelines.cpp - named moe pass pipelines ----------------------------===//

#include "moe/Pipelines/Pipelines.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

void moe::buildDecomposePipeline(OpPassManager &pm) {
  pm.addPass(createMoeDecomposeFfn());
  pm.addPass(createMoeDecomposeTreeFfn());
  pm.addPass(createMoeDecomposeSwitchHead());
  pm.addPass(createMoeDecomposeMot());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
}

void moe::registerMoePipelines() {
  PassPipelineRegistration<>(
      "moe-decompose",
      "Decompose every composite moe op (ffn, tree_ffn, switchhead, mot) "
      "into primitive moe ops, then canonicalize and CSE",
      buildDecomposePipeline);
}

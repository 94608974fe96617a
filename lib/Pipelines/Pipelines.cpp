//===- Pipelines.cpp - named moe pass pipelines ----------------------------===//

#include "moe/Pipelines/Pipelines.h"
#include "moe/Conversion/Passes.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"

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

void moe::buildLowerToLLVMPipeline(OpPassManager &pm) {
  buildDecomposePipeline(pm);
  pm.addPass(createConvertMoeToLinalg());
  pm.addPass(createCanonicalizerPass());
  pm.addNestedPass<func::FuncOp>(LLVM::createLLVMRequestCWrappersPass());
  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  bufferize.allowReturnAllocsFromLoops = true;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  pm.addPass(createCanonicalizerPass());
  // Free every intermediate buffer (results pass to the caller, which the
  // runtime frees); without this each run would leak its temporaries.
  bufferization::BufferDeallocationPipelineOptions dealloc;
  bufferization::buildBufferDeallocationPipeline(pm, dealloc);
  // Clones the deallocation inserts (e.g. for returned constants).
  pm.addPass(createConvertBufferizationToMemRefPass());
  pm.addPass(createConvertLinalgToLoopsPass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  // Math ops with an LLVM intrinsic first; libm calls for the rest (erf,
  // tanh, ...): libm has no rsqrtf.
  pm.addPass(createConvertMathToFuncs()); // integer powers (math.ipowi)
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createConvertMathToLibmPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
}

void moe::registerMoePipelines() {
  PassPipelineRegistration<>(
      "moe-decompose",
      "Decompose every composite moe op (ffn, tree_ffn, switchhead, mot) "
      "into primitive moe ops, then canonicalize and CSE",
      buildDecomposePipeline);
  PassPipelineRegistration<>(
      "moe-lower-to-llvm",
      "Lower a module of moe and upstream ops on tensors to the LLVM dialect "
      "(reference lowering: decompose, convert-moe-to-linalg, one-shot "
      "bufferize, loops, LLVM); functions get C interface wrappers",
      buildLowerToLLVMPipeline);
}

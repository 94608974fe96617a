//===- Pipelines.cpp - named moe pass pipelines ----------------------------===//

#include "moe/Pipelines/Pipelines.h"
#include "moe/Conversion/Passes.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Conversion/VectorToSCF/VectorToSCF.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/SCF/Transforms/Passes.h"
#include "mlir/Dialect/Vector/Transforms/Passes.h"

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

void moe::buildToLinalgPipeline(OpPassManager &pm,
                                const CpuCodegenOptions &options) {
  buildDecomposePipeline(pm);
  if (options.sortExpertLayouts)
    pm.addPass(createMoeSortExpertLayouts());
  ConvertMoeToLinalgOptions toLinalg;
  toLinalg.flashKeyBlock = options.flashKeyBlock;
  toLinalg.skipMaskedKeyBlocks = options.skipMaskedKeyBlocks;
  toLinalg.fuseExpertPairs = options.fuseExpertPairs;
  toLinalg.fuseRouting = options.fuseRouting;
  pm.addPass(createConvertMoeToLinalg(toLinalg));
  pm.addPass(createCanonicalizerPass());
  if (options.fuseElementwise)
    pm.addPass(createMoeFuseElementwise());
  if (options.cpuLoopOrder)
    pm.addPass(createMoeCpuLoopOrder());
  if (options.vectorReductions)
    pm.addPass(createMoeCpuVectorReductions());
}

/// Private workspace slots of a parallel loop whose iterations allocate
/// (moe-lower-to-host-abi's parallel-slots): enough for 16 threads to share
/// out about equal work with 2 slots each, few enough that the arena stays
/// small (flash attention's iterations take about 50 KB each).
constexpr int64_t kParallelSlots = 32;

int64_t moe::registerTileColumns(int64_t vectorBits) {
  return (vectorBits >= 512 ? 4 : 2) * (vectorBits / 32);
}

int64_t moe::oneRowTileColumns(int64_t vectorBits) {
  return (vectorBits >= 512 ? 16 : 8) * (vectorBits / 32);
}

namespace {
/// Adds passes to `pm` in order: those that rewrite one function at a time
/// nested on func.func, one nested pass manager for each run of them
/// between module-level passes (so that MLIR runs each run on the
/// context's threads, a function at a time, and a pipeline dump shows the
/// runs).
class PassSequence {
public:
  explicit PassSequence(OpPassManager &pm) : pm(pm) {}
  void perFunction(std::unique_ptr<Pass> pass) {
    if (!nested)
      nested = &pm.nest<func::FuncOp>();
    nested->addPass(std::move(pass));
  }
  void module(std::unique_ptr<Pass> pass) {
    nested = nullptr;
    pm.addPass(std::move(pass));
  }

private:
  OpPassManager &pm;
  OpPassManager *nested = nullptr;
};
} // namespace

void moe::buildLowerToLLVMPipeline(OpPassManager &pm,
                                   const CpuCodegenOptions &options) {
  buildToLinalgPipeline(pm, options);
  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  bufferize.allowReturnAllocsFromLoops = true;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  // Static strides through the run-time size checks' scf.if results.
  if (options.refineLayouts)
    pm.addPass(createMoeRefineBufferLayouts());
  pm.addPass(createCanonicalizerPass());
  // The grouped matmul's independent loops (scf.forall) as scf.parallel:
  // sequential loops below, or the thread pool with parallelLoops.
  pm.addPass(createForallToParallelLoopPass());
  // Bufferization copies each expert's product onto its own rows through
  // two equal subviews: CSE makes them one value, the canonicalizer drops
  // the self-copy.
  pm.addPass(createCSEPass());
  pm.addPass(createCanonicalizerPass());
  // The code ABI (runtime/include/moe/code_abi.h): one frame argument,
  // results written into the runtime's buffers, temporaries from the run's
  // workspace arena (so no deallocation pipeline: the arena is given back
  // as a whole), errors through the host table.
  // With threads, an outermost parallel loop whose iterations allocate
  // (attention's query blocks) takes its temporaries from private slots of
  // the workspace, one per slot of iterations, so that it may run on the
  // thread pool.
  MoeLowerToHostAbiOptions hostAbi;
  hostAbi.parallelSlots = options.parallelLoops ? kParallelSlots : 0;
  pm.addPass(createMoeLowerToHostAbi(hostAbi));
  // From here on, the passes that rewrite one function at a time run nested
  // on func.func, so that MLIR runs them on the context's threads, one
  // function each (after moe-parallel-loops-to-host, MoEUT-44M's
  // --generation module has about 700: the code lowering took 12.9 s of
  // wall time at module level, 8.6 s nested on 2 cores; the output is the
  // same, byte for byte). At module level stay the passes that add
  // symbols to the module (moe-parallel-loops-to-host outlines loop bodies;
  // math-to-funcs, math-to-libm, finalize-memref-to-llvm and cf-to-llvm
  // declare functions or convert globals), func-to-llvm (func.func becomes
  // llvm.func, so nothing nested on func.func runs after it) and what
  // follows it. (Nested convert-vector-to-llvm would declare printf from
  // several threads for a vector.print; the code has none.)
  PassSequence passes(pm);
  if (options.tileVectorBits) {
    MoeCpuTileContractionsOptions tile;
    tile.vectorBits = options.tileVectorBits;
    // Registers: MR x NR/lanes accumulators, NR/lanes loads of B and one
    // broadcast must fit (32 vector registers with AVX-512, 16 below).
    // AVX-512: 6 x 64 (24 accumulators, 4 loads of B and 6 broadcasts per
    // k step: 24 FMAs for 10 loads, where 8 x 32 had 16 for 10). Measured
    // against 8 x 32 (docs/performance.md, "6 x 64 register tiles"): the
    // MoEUT-44M forward at T = 256 about 12% faster, com.microsoft.MoE at
    // N = 2048 about 7%; a C kernel of the down projection (K 128, N 412)
    // 135-139 -> 154-175 GFLOP/s. Below 512 bits: 6 x 2 vectors.
    tile.rows = 6;
    tile.columnVectors = registerTileColumns(options.tileVectorBits) /
                         (options.tileVectorBits / 32);
    // One row (decode: an expert's or the LM head's product for one
    // token): the accumulators of a whole register file's worth of
    // columns, so each k step streams 1 KB (AVX-512) of the weight row
    // instead of 128 bytes, and the rows' misses overlap.
    tile.rowColumnVectors = oneRowTileColumns(options.tileVectorBits) /
                            (options.tileVectorBits / 32);
    tile.fma = options.fma;
    tile.dotProducts = options.dotProducts;
    tile.parallelRows = options.parallelLoops;
    tile.fuseEpilogues = options.fuseEpilogues;
    tile.remainderTiles = options.remainderTiles;
    tile.accumulatorChains = options.accumulatorChains;
    tile.mergeTailSlices = options.mergeTailSlices;
    passes.perFunction(createMoeCpuTileContractions(tile));
    // The tiles read gathered rows where they are (before the prefetch,
    // which would otherwise prefetch rows for a copy that goes away).
    if (options.fuseRowGathers)
      passes.perFunction(createMoeCpuFuseRowGathers());
    // While a register tile computes on one weight block (a multi-row
    // tile, or an expert's one-row passes after its first), the next one
    // in memory streams in (memory time and compute time of an expert
    // overlap instead of adding up). Locality 2 (L2): the next block, a
    // 105 KB panel at K = 412, does not fit L1; 2 and 3 measured the same.
    if (options.prefetchPanels) {
      MoeCpuPrefetchPanelsOptions panels;
      panels.crossBlocks = true;
      panels.locality = 2;
      // A one-row tile's first pass (a decode step's expert) 24 rows ahead
      // of itself, into L1: 1.5 KB in a 16-column panel (docs/
      // performance.md: 8 to 128 rows, L1 and L2, measured).
      panels.aheadRows = 24;
      panels.aheadLocality = 3;
      // A multi-row tile's next block one line a k step over all of its
      // expert's row tiles, not the whole block in every tile.
      panels.spreadTiles = true;
      // The output lines a tile's stores write, prefetched for writing
      // before its k loop: the down projection's rows in the slot-order
      // buffer (40 MB at N = 2048) were missing every cache when the
      // tile stored them.
      panels.stores = true;
      passes.perFunction(createMoeCpuPrefetchPanels(panels));
    }
  }
  // Gathered rows (loaded row indices) prefetched a few iterations ahead.
  if (options.prefetchDistance > 0) {
    MoeCpuPrefetchRowsOptions prefetch;
    prefetch.distance = options.prefetchDistance;
    passes.perFunction(createMoeCpuPrefetchRows(prefetch));
  }
  // exp as polynomial arith (upstream's approximation), so that softmax,
  // sigmoid and SiLU loops vectorize instead of calling expf per element.
  if (options.approximateExp)
    passes.perFunction(createMoeApproximateMath());
  if (options.stopOnBuffers)
    return;
  if (options.parallelLoops) {
    // Parallel dims as scf.parallel; the outermost ones run on the
    // runtime's thread pool.
    passes.perFunction(createConvertLinalgToParallelLoopsPass());
    MoeParallelLoopsToHostOptions host;
    host.minChunkWork = options.parallelMinChunkWork;
    host.splitLeadingDims = options.parallelSplitLeadingDims;
    passes.module(createMoeParallelLoopsToHost(host));
  }
  passes.perFunction(createConvertLinalgToLoopsPass());
  if (options.tileVectorBits) {
    passes.perFunction(vector::createLowerVectorMaskPass());
    // Fully unrolled: the rolled form overflowed llc's stack
    // (guides/build-notes.md).
    passes.perFunction(createConvertVectorToSCFPass(
        VectorTransferToSCFOptions().enableFullUnroll(true)));
  }
  // Without pattern rollback (the dialect conversion driver that applies
  // each rewrite at once): the same CFG, and no rollback log whose upkeep
  // grows with the function (a traced Qwen3-Next layer: 27 s and most of
  // 9 GB of peak memory with it; docs/performance.md).
  SCFToControlFlowPassOptions scfToCf;
  scfToCf.allowPatternRollback = false;
  passes.perFunction(createSCFToControlFlowPass(scfToCf));
  // Views that upstream's expand-strided-metadata crashes on (several
  // dynamic sizes in one expand group) as reinterpret_casts first.
  passes.perFunction(createMoeExpandViews());
  passes.perFunction(memref::createExpandStridedMetadataPass());
  passes.perFunction(createLowerAffinePass());
  // Math ops with an LLVM intrinsic first; libm calls for the rest (erf,
  // tanh, ...): libm has no rsqrtf.
  passes.module(createConvertMathToFuncs()); // integer powers (math.ipowi)
  passes.perFunction(createConvertMathToLLVMPass());
  passes.module(createConvertMathToLibmPass());
  if (options.tileVectorBits)
    passes.perFunction(createConvertVectorToLLVMPass());
  passes.module(createFinalizeMemRefToLLVMConversionPass());
  passes.perFunction(createArithToLLVMConversionPass());
  passes.perFunction(createConvertIndexToLLVMPass());
  passes.module(createConvertControlFlowToLLVMPass());
  passes.module(createConvertFuncToLLVMPass());
  passes.module(createUBToLLVMConversionPass()); // poison of vector lowerings
  passes.module(createReconcileUnrealizedCastsPass());
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
      "bufferize, the runtime's code ABI (moe-lower-to-host-abi: @main "
      "becomes @moe_entry_main(frame)), loops, LLVM)",
      [](OpPassManager &pm) { buildLowerToLLVMPipeline(pm); });
  PassPipelineRegistration<>(
      "moe-lower-to-llvm-cpu",
      "moe-lower-to-llvm with moe-sort-expert-layouts before, "
      "convert-moe-to-linalg{fuse-expert-pairs fuse-routing}, and "
      "moe-fuse-elementwise, moe-cpu-loop-order and "
      "moe-cpu-vector-reductions after it, gathered rows "
      "prefetched two iterations ahead (moe-cpu-prefetch-rows), and "
      "outermost parallel loops on the thread pool "
      "(moe-parallel-loops-to-host) (what moe-compile --no-tile runs)",
      [](OpPassManager &pm) {
        CpuCodegenOptions options;
        options.sortExpertLayouts = true;
        options.fuseExpertPairs = true;
        options.fuseRouting = true;
        options.fuseElementwise = true;
        options.cpuLoopOrder = true;
        options.vectorReductions = true;
        options.parallelLoops = true;
        options.prefetchDistance = 2;
        buildLowerToLLVMPipeline(pm, options);
      });
  PassPipelineRegistration<>(
      "moe-lower-to-llvm-cpu-tiled",
      "moe-lower-to-llvm-cpu with moe-refine-buffer-layouts and "
      "moe-cpu-tile-contractions (512-bit vectors, remainder tiles, "
      "accumulator chains) and "
      "moe-cpu-fuse-row-gathers and moe-cpu-prefetch-panels{ahead-rows=24 "
      "spread-tiles} after bufferization, the tiles' epilogues "
      "(fuse-epilogues), moe-approximate-math (exp), the flash-style attention "
      "(convert-moe-to-linalg{flash-key-block=128}), and the vector lowering "
      "(what moe-compile runs at 512 bits)",
      [](OpPassManager &pm) {
        CpuCodegenOptions options;
        options.sortExpertLayouts = true;
        options.fuseExpertPairs = true;
        options.fuseRouting = true;
        options.fuseElementwise = true;
        options.cpuLoopOrder = true;
        options.vectorReductions = true;
        options.parallelLoops = true;
        options.refineLayouts = true;
        options.tileVectorBits = 512;
        options.fuseRowGathers = true;
        options.fuseEpilogues = true;
        options.remainderTiles = true;
        options.accumulatorChains = 4;
        options.approximateExp = true;
        options.flashKeyBlock = 128;
        options.prefetchDistance = 2;
        options.prefetchPanels = true;
        buildLowerToLLVMPipeline(pm, options);
      });
}

//===- Pipelines.h - named moe pass pipelines -------------------*- C++ -*-===//

#ifndef MOE_PIPELINES_PIPELINES_H
#define MOE_PIPELINES_PIPELINES_H

#include <cstdint>

namespace mlir {
class OpPassManager;
namespace moe {

/// Adds the decomposition of every composite moe op into primitive ones,
/// followed by canonicalization and CSE (`moe-decompose`).
void buildDecomposePipeline(OpPassManager &pm);

/// The fewest units of estimated work per chunk of a parallel loop that
/// moe-compile and the named CPU pipelines use (moe-parallel-loops-to-host's
/// min-chunk-work; moe-compile --parallel-min-work).
constexpr int64_t kDefaultParallelMinChunkWork = 8192;

/// What the CPU lowering adds to the reference one.
struct CpuCodegenOptions {
  /// moe-sort-expert-layouts before convert-moe-to-linalg.
  bool sortExpertLayouts = false;
  /// convert-moe-to-linalg{fuse-expert-pairs}: an up projection in expert
  /// order and the down projection that alone reads it in one loop over
  /// experts (needs `sortExpertLayouts` to find any pair).
  bool fuseExpertPairs = false;
  /// convert-moe-to-linalg{fuse-routing}: moe.route's gate, top-k and
  /// gate on the selected values in one loop over its rows.
  bool fuseRouting = false;
  /// convert-moe-to-linalg's flash-key-block: attention without a cache
  /// flash-style over blocks of this many keys (0: the reference's form).
  int64_t flashKeyBlock = 0;
  /// convert-moe-to-linalg's skip-masked-key-blocks (with flashKeyBlock).
  bool skipMaskedKeyBlocks = true;
  /// moe-fuse-elementwise after convert-moe-to-linalg.
  bool fuseElementwise = false;
  /// moe-cpu-loop-order after convert-moe-to-linalg.
  bool cpuLoopOrder = false;
  /// moe-cpu-vector-reductions after moe-cpu-loop-order.
  bool vectorReductions = false;
  /// moe-refine-buffer-layouts after bufferization.
  bool refineLayouts = false;
  /// moe-cpu-tile-contractions after bufferization with this vector width
  /// in bits (0: off), and the vector lowering it needs.
  int64_t tileVectorBits = 0;
  /// The target has FMA instructions (moe-cpu-tile-contractions' `fma`).
  bool fma = true;
  /// moe-cpu-tile-contractions' `dot-products`.
  bool dotProducts = true;
  /// moe-parallel-loops-to-host.
  bool parallelLoops = false;
  /// moe-parallel-loops-to-host's min-chunk-work (0: every loop splits).
  int64_t parallelMinChunkWork = kDefaultParallelMinChunkWork;
  /// moe-parallel-loops-to-host's split-leading-dims.
  bool parallelSplitLeadingDims = true;
  /// moe-cpu-fuse-row-gathers after moe-cpu-tile-contractions (the tiles
  /// read gathered rows in place; only with `tileVectorBits`).
  bool fuseRowGathers = false;
  /// moe-cpu-tile-contractions{fuse-epilogues}: an expert matmul's bias
  /// and activation applied to the register tiles before they are stored.
  bool fuseEpilogues = false;
  /// moe-cpu-tile-contractions{remainder-tiles}: an expert's last r < MR
  /// rows (r >= 2) in one r-row register tile instead of r one-row ones.
  bool remainderTiles = false;
  /// moe-cpu-tile-contractions{accumulator-chains}: narrow one-row tiles
  /// rotate their k steps over this many accumulator sets (1: off).
  int64_t accumulatorChains = 1;
  /// moe-cpu-tile-contractions{merge-tail-slices}.
  bool mergeTailSlices = true;
  /// moe-cpu-prefetch-rows after moe-cpu-tile-contractions, this many
  /// iterations ahead (0: off).
  int64_t prefetchDistance = 0;
  /// moe-cpu-prefetch-panels{cross-blocks locality=2} after the tiling
  /// (only with `tileVectorBits`).
  bool prefetchPanels = false;
  /// moe-approximate-math (exp) after the CPU codegen passes on buffers:
  /// the loops around exp vectorize instead of calling libm per element.
  bool approximateExp = false;
  /// Stop on buffers, after the CPU codegen passes and before the loops
  /// and the conversion to LLVM (moe-compile --emit=buffers).
  bool stopOnBuffers = false;
};

/// Adds the lowering's first part, up to linalg on tensors: the
/// decomposition, moe-sort-expert-layouts (with `sortExpertLayouts`),
/// convert-moe-to-linalg, canonicalize, moe-fuse-elementwise (with
/// `fuseElementwise`) and moe-cpu-loop-order (with `cpuLoopOrder`).
/// `moe-compile --emit=linalg` stops after it.
void buildToLinalgPipeline(OpPassManager &pm,
                           const CpuCodegenOptions &options = {});

/// Adds the lowering to the LLVM dialect: buildToLinalgPipeline, one-shot
/// bufferization, scf-forall-to-parallel
/// (then cse, canonicalize), the code ABI
/// (moe-lower-to-host-abi: every public function becomes
/// `moe_entry_<name>(frame)`), loops, and the conversions to LLVM. With
/// default `options` it is the reference lowering (`moe-lower-to-llvm`,
/// `moe-compile --reference`). With `cpuLoopOrder`, moe-cpu-loop-order runs
/// after convert-moe-to-linalg; with `tileVectorBits`,
/// moe-cpu-tile-contractions after bufferization (moe-compile's default
/// has both). With `parallelLoops`, linalg's parallel dims become
/// scf.parallel and the outermost ones run on the runtime's thread pool
/// (moe-parallel-loops-to-host; moe-compile's default). With
/// `prefetchDistance`, moe-cpu-prefetch-rows runs after the tiling; with
/// `prefetchPanels`, moe-cpu-prefetch-panels too.
void buildLowerToLLVMPipeline(OpPassManager &pm,
                              const CpuCodegenOptions &options = {});

/// The columns of moe-cpu-tile-contractions' register tile (NR) at
/// `vectorBits`: 4 vectors with AVX-512 (64 columns), 2 below (16 at 256
/// bits, 8 at 128). moe-pack-expert-weights' panels are this wide, so
/// that each register tile sweeps one contiguous block of the weights.
int64_t registerTileColumns(int64_t vectorBits);

/// The columns of moe-cpu-tile-contractions' one-row register tile at
/// `vectorBits`: 16 vectors with AVX-512 (256 columns), 8 below (64 at 256
/// bits, 32 at 128).
int64_t oneRowTileColumns(int64_t vectorBits);

/// Registers the named pipelines (`moe-decompose`, `moe-lower-to-llvm`,
/// `moe-lower-to-llvm-cpu`, `moe-lower-to-llvm-cpu-tiled`).
void registerMoePipelines();

} // namespace moe
} // namespace mlir

#endif // MOE_PIPELINES_PIPELINES_H

//===- Compiler.h - module -> .moeb artifact --------------------*- C++ -*-===//
//
// The driver behind moe-compile: weight outlining, the signature, the
// moe-lower-to-llvm pipeline, native code generation and the artifact
// (runtime/include/moe/artifact_format.h). Errors are MLIR diagnostics.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_COMPILER_COMPILER_H
#define MOE_COMPILER_COMPILER_H

#include "moe/Pipelines/Pipelines.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "mlir/Support/LLVM.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/MemoryBufferRef.h"
#include "llvm/Support/raw_ostream.h"

#include <functional>
#include <string>

namespace mlir {
class PassManager;
namespace moe {

/// Largest statically shaped tensor moe-compile accepts (16 GiB); larger
/// shapes are refused at the op that makes them (docs/security.md).
constexpr uint64_t kMaxTensorBytes = uint64_t(16) << 30;

/// Where moe-compile stops (--emit=).
enum class EmitLevel { Moe, Linalg, Buffers, LLVM, Obj, Artifact };

/// Raising exported MoE blocks to routed ops (moe-raise-onnx) at import.
enum class RaiseMode { Off, On, Report };

struct CompileOptions {
  EmitLevel emit = EmitLevel::Artifact;
  /// The C compiler that turns LLVM IR into a shared object.
  std::string cc = "clang-22";
  /// Target CPU for the native code (-march=).
  std::string march = "native";
  /// Optimisation level of the C compiler (-O<n>).
  unsigned optLevel = 3;
  /// Parts the LLVM module is split into, each compiled by its own C
  /// compiler process (moe-compile --codegen-parts); 0: by the module's
  /// size, one part per 20000 instructions, at most 16 (small models stay
  /// whole). The code depends on the parts, not on `codegenJobs`.
  unsigned codegenParts = 0;
  /// C compiler processes run at once (moe-compile --codegen-jobs); 0: one
  /// per hardware thread.
  unsigned codegenJobs = 0;
  /// Identical LLVM functions compiled once: one body, the others thunks
  /// that jump to it (LLVM's MergeFunctions, before the split); off with
  /// moe-compile --no-merge-functions.
  bool mergeFunctions = true;
  /// The native-code step's temporary files are also removed when the
  /// process gets SIGINT or SIGTERM (llvm::sys::RemoveFileOnSignal, which
  /// installs LLVM's process-wide signal handlers). moe-compile sets it;
  /// the in-process Python compile does not, so that the host program's
  /// signal handling stays its own.
  bool removeTempsOnSignal = false;
  /// The reference lowering only (no moe-cpu-loop-order): the oracle the
  /// optimised code is compared with (moe-compile --reference).
  bool reference = false;
  /// Run outermost parallel loops on the runtime's thread pool
  /// (moe-parallel-loops-to-host); off with moe-compile --no-parallel-loops.
  /// The split changes no bit, for any thread count.
  bool parallelLoops = true;
  /// Loops whose iterations hold less work than this (a static estimate,
  /// moe-parallel-loops-to-host's min-chunk-work) split into fewer chunks,
  /// down to one (no fork-join); moe-compile --parallel-min-work. 0: every
  /// loop splits as far as max-chunks allows.
  int64_t parallelMinChunkWork = kDefaultParallelMinChunkWork;
  /// Parallel loops of three dims or more split over all but their last
  /// (moe-parallel-loops-to-host{split-leading-dims}); off with moe-compile
  /// --no-split-leading-dims (their first dim only; debugging).
  bool parallelSplitLeadingDims = true;
  /// Up/down expert projections that share a dispatch keep their rows in
  /// expert order (moe-sort-expert-layouts); off with moe-compile
  /// --no-sorted-experts (debugging) and with `reference`.
  bool sortExpertLayouts = true;
  /// Such a pair of projections runs in one loop over experts, each
  /// expert's hidden rows read by its down projection while in cache
  /// (convert-moe-to-linalg{fuse-expert-pairs}); off with moe-compile
  /// --no-fuse-expert-pairs (debugging), with --no-sorted-experts and with
  /// `reference`.
  bool fuseExpertPairs = true;
  /// moe.route's gate, top-k and gate on the selected values in one loop
  /// over its rows (convert-moe-to-linalg{fuse-routing}; same bits); off
  /// with moe-compile --no-fuse-routing (debugging) and with `reference`.
  bool fuseRouting = true;
  /// Register-tiled, vectorized contractions (moe-cpu-tile-contractions);
  /// off with moe-compile --no-tile (debugging: the loop path only).
  bool tile = true;
  /// One-row contractions that read their vector dim strided as dot
  /// products (moe-cpu-tile-contractions' `dot-products`); off with
  /// moe-compile --no-dot-products (debugging).
  bool dotProducts = true;
  /// Loops that read rows at loaded row indices prefetch the rows a few
  /// iterations ahead (moe-cpu-prefetch-rows); off with moe-compile
  /// --no-prefetch (debugging; no software prefetch at all, so
  /// `prefetchPanels` too) and with `reference`.
  bool prefetchRows = true;
  /// Register tiles prefetch the next weight block in memory while they
  /// read this one (moe-cpu-prefetch-panels, across experts: multi-row
  /// tiles, and one-row tiles in an expert's passes after its first; with
  /// `tile`); off with moe-compile --no-prefetch-panels or --no-prefetch
  /// (debugging) and with `reference`.
  bool prefetchPanels = true;
  /// An expert's last r rows after its full register tiles (2 <= r < MR)
  /// run as one r-row tile instead of r one-row passes over its weights
  /// (moe-cpu-tile-contractions{remainder-tiles}; with `tile`); off with
  /// moe-compile --no-remainder-tiles (debugging) and with `reference`.
  bool remainderTiles = true;
  /// One-row register tiles narrower than 8 vector registers (a decode
  /// step's 1 x 16 tiles over 16-column panels) rotate their k steps over
  /// up to four sets of accumulators, so that their FMAs overlap
  /// (moe-cpu-tile-contractions{accumulator-chains=4}; the sum's order
  /// differs, docs/tolerance.md); off with moe-compile
  /// --no-accumulator-chains (debugging) and with `reference`.
  bool accumulatorChains = true;
  /// The narrow slices of a split column tail share one full-width
  /// accumulator (moe-cpu-tile-contractions{merge-tail-slices}; the same
  /// bits); off with moe-compile --no-merge-tail-slices (debugging).
  bool mergeTailSlices = true;
  /// Columns of moe-pack-expert-weights' panels (moe-compile
  /// --panel-columns, tuning); 0: a register tile's (16 at 256 bits, 64
  /// at 512), generation artifacts included.
  int64_t panelColumns = 0;
  /// The register tiles read gathered rows in place instead of from a
  /// gathered copy (moe-cpu-fuse-row-gathers; with `tile`); off with
  /// moe-compile --no-fuse-gathers (debugging) and with `reference`.
  bool fuseGathers = true;
  /// A contraction's elementwise consumer (an expert matmul's bias and
  /// activation) applied to its register tiles before they are stored
  /// (moe-cpu-tile-contractions{fuse-epilogues}; with `tile`); off with
  /// moe-compile --no-fuse-epilogues (debugging) and with `reference`.
  bool fuseEpilogues = true;
  /// Elementwise loops fused into the loop that alone reads them, where no
  /// element is computed twice (moe-fuse-elementwise); off with
  /// moe-compile --no-fuse-elementwise (debugging) and with `reference`.
  bool fuseElementwise = true;
  /// Innermost row reductions (softmax, normalizations) vectorized, their
  /// sums in vector partial sums (moe-cpu-vector-reductions); off with
  /// moe-compile --no-vector-reductions (the reference's order) and with
  /// `reference`.
  bool vectorReductions = true;
  /// exp as upstream's polynomial approximation, so that the loops around
  /// it vectorize (moe-approximate-math; with `tile`); off with
  /// moe-compile --no-fast-exp (libm's expf, as `reference` calls it).
  bool fastExp = true;
  /// Attention without a cache flash-style (an online softmax over blocks
  /// of 128 keys; convert-moe-to-linalg's flash-key-block; with `tile`);
  /// off with moe-compile --no-flash-attention (the reference's blocked
  /// softmax over all keys a block of queries sees).
  bool flashAttention = true;
  /// In the flash-style attention, key blocks an additive mask leaves out
  /// whole are not computed once every query row has seen a key (same
  /// bits; convert-moe-to-linalg's skip-masked-key-blocks); off with
  /// moe-compile --no-skip-masked-blocks (debugging).
  bool skipMaskedKeyBlocks = true;
  /// Constant expert weights stored in column panels (as wide as the
  /// one-row tile) that the grouped matmul's tiles read as contiguous blocks
  /// (moe-pack-expert-weights; with `tile`); off with moe-compile
  /// --no-pack-weights (debugging) and with `reference`.
  bool packWeights = true;
  /// Emit a sequence of layers the model repeats (MoEUT's R repeats of G
  /// layers) once, in a loop (moe-roll-repeats); off with
  /// moe-compile --no-roll and with `reference`.
  bool rollRepeats = true;
  /// Also derive the generation entries @prefill and @decode (with a
  /// key/value cache) from @main (moe-generation-entries;
  /// moe-compile --generation).
  bool generation = false;
  /// With `generation`: @prefill returns the logits of every position, not
  /// only the last (moe-compile --generation-all-logits).
  bool generationAllLogits = false;
  /// Raise exported MoE blocks to routed `moe` ops at import
  /// (moe-raise-onnx); Off with moe-compile --no-raise.
  RaiseMode raise = RaiseMode::On;
  /// Smallest constant (elements) stored as a weight.
  int64_t minWeightElements = 16;
  /// Progress lines ("moe-compile: ...") go here when set.
  std::function<void(StringRef)> progress;
  /// Applied to every pass manager (timing, IR printing options).
  std::function<LogicalResult(PassManager &)> configure;
};

/// How a model's bytes are read.
enum class InputKind {
  /// ONNX if the name ends in ".onnx", MLIR if it ends in ".mlir",
  /// otherwise by content (MLIR text starts with printable text; anything
  /// else is taken as an ONNX protobuf).
  Auto,
  Onnx,
  Mlir
};

/// Registers every dialect a model may hold (moe, onnx, upstream).
void registerCompilerDialects(DialectRegistry &registry);

/// For the tools' --help: hides every registered option but those of
/// `toolOptions`, MLIR's (--mlir-*, put in a category of their own) and the
/// generic ones (--help, --version). The LLVM backends linked in register
/// hundreds; they stay accepted, and --help-hidden lists them. Call after
/// registering MLIR's options and before parsing the command line.
void hideUnrelatedOptions(llvm::cl::OptionCategory &toolOptions);

/// The one import entry point of the tools and the Python package: reads
/// `input` (named `name` in diagnostics) as ONNX (imported, then converted
/// to moe and upstream dialects when `convertToMoe`; external data relative
/// to `baseDir`) or as MLIR text. Diagnostics go to `context`'s handler;
/// null on failure. `configure`, if set, is applied to the pass manager.
/// `raise` decides whether exported MoE blocks are raised before the
/// conversion (moe-raise-onnx).
OwningOpRef<ModuleOp>
loadModel(llvm::MemoryBufferRef input, StringRef name, StringRef baseDir,
          InputKind kind, MLIRContext *context, bool convertToMoe = true,
          const std::function<LogicalResult(PassManager &)> &configure = {},
          RaiseMode raise = RaiseMode::On);

/// loadModel, then compileModule: what `moe-compile` and
/// `moe_mlir.compile` do.
LogicalResult compileModel(llvm::MemoryBufferRef input, StringRef name,
                           StringRef baseDir, InputKind kind,
                           MLIRContext *context, const CompileOptions &options,
                           llvm::raw_ostream &out);

/// Compiles `module` (moe and upstream dialects on tensors, entry @main)
/// and writes the requested level to `out` (text for Moe/Linalg/LLVM, the
/// shared object for Obj, the artifact otherwise). `module` is modified.
LogicalResult compileModule(ModuleOp module, const CompileOptions &options,
                            llvm::raw_ostream &out);

} // namespace moe
} // namespace mlir

#endif // MOE_COMPILER_COMPILER_H

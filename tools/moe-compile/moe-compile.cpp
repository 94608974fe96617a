//===- moe-compile.cpp - ONNX or MLIR -> .moeb artifact --------------------===//
//
//   moe-compile model.onnx -o model.moeb
//   moe-compile model.mlir --emit=linalg -o -     (moe | linalg | llvm | obj)
//   moe-compile model.onnx -o m.moeb --mlir-timing   (pass timing)
//
// Progress lines go to stderr unless -q. Everything but the command line
// lives in lib/Compiler (moe::compileModel, shared with the Python
// package; the lowering is also moe-opt --moe-lower-to-llvm).
//
//===----------------------------------------------------------------------===//

#include "moe/Compiler/Compiler.h"
#include "moe/Import/ONNX/Importer.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/Timing.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include <optional>

using namespace mlir;

namespace {
/// The tool's own options: what --help lists, with MLIR's (--mlir-*).
llvm::cl::OptionCategory toolOptions("moe-compile options");
llvm::cl::opt<std::string> inputFile(llvm::cl::Positional,
                                     llvm::cl::desc("<model.onnx|model.mlir>"),
                                     llvm::cl::Required,
                                     llvm::cl::cat(toolOptions));
llvm::cl::opt<std::string> outputFile("o", llvm::cl::desc("output file"),
                                      llvm::cl::value_desc("filename"),
                                      llvm::cl::Required,
                                      llvm::cl::cat(toolOptions));
llvm::cl::opt<moe::EmitLevel>
    emit("emit", llvm::cl::desc("what to write"),
         llvm::cl::init(moe::EmitLevel::Artifact),
         llvm::cl::values(
             clEnumValN(moe::EmitLevel::Moe, "moe", "moe IR, weights outlined"),
             clEnumValN(moe::EmitLevel::Linalg, "linalg",
                        "after decomposition and convert-moe-to-linalg"),
             clEnumValN(moe::EmitLevel::Buffers, "buffers",
                        "code on buffers after the CPU codegen passes "
                        "(moe-cpu-tile-contractions), before loops and LLVM"),
             clEnumValN(moe::EmitLevel::LLVM, "llvm", "LLVM IR"),
             clEnumValN(moe::EmitLevel::Obj, "obj", "the shared object"),
             clEnumValN(moe::EmitLevel::Artifact, "artifact",
                        "the .moeb artifact (default)")),
         llvm::cl::cat(toolOptions));
llvm::cl::opt<std::string> cc("cc", llvm::cl::desc("C compiler for LLVM IR"),
                              llvm::cl::init("clang-22"),
                              llvm::cl::cat(toolOptions));
llvm::cl::opt<std::string> march("march", llvm::cl::desc("target CPU"),
                                 llvm::cl::init("native"),
                                 llvm::cl::cat(toolOptions));
llvm::cl::opt<unsigned>
    optLevel("opt",
             llvm::cl::desc("optimisation level of the native code (0-3)"),
             llvm::cl::init(3), llvm::cl::cat(toolOptions));
llvm::cl::opt<unsigned> codegenParts(
    "codegen-parts",
    llvm::cl::desc("split the LLVM module into N parts by function, each "
                   "compiled by its own C compiler process, then linked; 0 "
                   "(default): one part per 20000 instructions, at most 16, "
                   "so small models stay whole. The code depends on the "
                   "parts, not on --codegen-jobs"),
    llvm::cl::init(0), llvm::cl::cat(toolOptions));
llvm::cl::opt<unsigned> codegenJobs(
    "codegen-jobs",
    llvm::cl::desc("C compiler processes run at once; 0 (default): one per "
                   "hardware thread"),
    llvm::cl::init(0), llvm::cl::cat(toolOptions));
llvm::cl::opt<bool> quiet("q", llvm::cl::desc("no progress lines"),
                          llvm::cl::cat(toolOptions));
llvm::cl::opt<bool> parallelLoops(
    "parallel-loops",
    llvm::cl::desc("run outermost parallel loops on the runtime's thread "
                   "pool (moe-parallel-loops-to-host); the default, kept "
                   "for scripts that pass it"),
    llvm::cl::Hidden, llvm::cl::cat(toolOptions));
llvm::cl::opt<bool> noParallelLoops(
    "no-parallel-loops",
    llvm::cl::desc("every loop on the calling thread (no "
                   "moe-parallel-loops-to-host; debugging, and the "
                   "sequential baseline)"),
    llvm::cl::cat(toolOptions));
llvm::cl::opt<int64_t> parallelMinWork(
    "parallel-min-work",
    llvm::cl::desc("fewest work units (a static estimate: one per "
                   "operation, one per 8 vector elements) per chunk of a "
                   "parallel loop; smaller loops split into fewer chunks, "
                   "down to one, which runs without a fork-join. 0: every "
                   "loop splits (tests of the parallel paths)"),
    llvm::cl::init(moe::kDefaultParallelMinChunkWork),
    llvm::cl::cat(toolOptions));
llvm::cl::opt<bool>
    noTile("no-tile",
           llvm::cl::desc("leave contractions on the loop path (no "
                          "moe-cpu-tile-contractions; debugging)"),
           llvm::cl::cat(toolOptions));
llvm::cl::opt<bool> noSortedExperts(
    "no-sorted-experts",
    llvm::cl::desc("up and down expert projections exchange their rows in "
                   "slot order (no moe-sort-expert-layouts; debugging)"),
    llvm::cl::cat(toolOptions));
llvm::cl::opt<bool> noFuseExpertPairs(
    "no-fuse-expert-pairs",
    llvm::cl::desc("an expert layer's up and down projections run in two "
                   "loops over experts instead of one (no "
                   "convert-moe-to-linalg{fuse-expert-pairs}; debugging)"),
    llvm::cl::cat(toolOptions));
llvm::cl::opt<bool> noFuseRouting(
    "no-fuse-routing",
    llvm::cl::desc("moe.route's gate, top-k and gate on the selected values "
                   "as one pass over all rows each instead of one loop over "
                   "rows (no convert-moe-to-linalg{fuse-routing}; "
                   "debugging)"),
    llvm::cl::cat(toolOptions));
llvm::cl::opt<bool> noDotProducts(
    "no-dot-products",
    llvm::cl::desc("one-row contractions that read their vector dim "
                   "strided keep the strided-column register tiles (no "
                   "dot products; debugging)"),
    llvm::cl::cat(toolOptions));
llvm::cl::opt<bool> noPrefetch(
    "no-prefetch",
    llvm::cl::desc("no software prefetch: loops that read rows at loaded "
                   "row indices do not prefetch them ahead (no "
                   "moe-cpu-prefetch-rows), nor register tiles the next "
                   "weight block (no moe-cpu-prefetch-panels; debugging)"),
    llvm::cl::cat(toolOptions));
llvm::cl::opt<bool> noPrefetchPanels(
    "no-prefetch-panels",
    llvm::cl::desc("register tiles do not prefetch the next weight block "
                   "nor their output lines (no moe-cpu-prefetch-panels; "
                   "debugging)"),
    llvm::cl::cat(toolOptions));
llvm::cl::opt<bool> noRemainderTiles(
    "no-remainder-tiles",
    llvm::cl::desc("an expert's last rows after its full register tiles "
                   "run as one-row tiles, one pass over its weights per "
                   "row, instead of one tile of that many rows (no "
                   "remainder-tiles; debugging)"),
    llvm::cl::cat(toolOptions));
llvm::cl::opt<bool> noAccumulatorChains(
    "no-accumulator-chains",
    llvm::cl::desc("narrow one-row register tiles keep one set of "
                   "accumulators (their FMAs wait for each other) instead "
                   "of up to four summed after the k loop (debugging)"),
    llvm::cl::cat(toolOptions));
llvm::cl::opt<bool> noMergeTailSlices(
    "no-merge-tail-slices",
    llvm::cl::desc("the slices of a split column tail narrower than a "
                   "vector keep one accumulator, read and FMA each instead "
                   "of sharing a full-width one (the same bits; "
                   "debugging)"),
    llvm::cl::cat(toolOptions));
llvm::cl::opt<unsigned> panelColumns(
    "panel-columns",
    llvm::cl::desc("columns of the panels expert weights are packed in "
                   "(default 0: a register tile's, 16 with AVX2 and 64 "
                   "with AVX-512; tuning)"),
    llvm::cl::init(0), llvm::cl::cat(toolOptions));
llvm::cl::opt<bool> noFuseGathers(
    "no-fuse-gathers",
    llvm::cl::desc("the register tiles read a gathered copy of the rows "
                   "instead of the rows in place (no "
                   "moe-cpu-fuse-row-gathers; debugging)"),
    llvm::cl::cat(toolOptions));
llvm::cl::opt<bool> noFuseEpilogues(
    "no-fuse-epilogues",
    llvm::cl::desc("a contraction's bias and activation run as a second "
                   "pass over its output instead of on the register tiles "
                   "before they are stored (moe-cpu-tile-contractions "
                   "without fuse-epilogues; debugging)"),
    llvm::cl::cat(toolOptions));
llvm::cl::opt<bool> noFuseElementwise(
    "no-fuse-elementwise",
    llvm::cl::desc("every elementwise op of the graph keeps its own loop "
                   "(no moe-fuse-elementwise; debugging)"),
    llvm::cl::cat(toolOptions));
llvm::cl::opt<bool> noVectorReductions(
    "no-vector-reductions",
    llvm::cl::desc("row reductions (softmax, normalizations) keep one "
                   "scalar accumulator, the reference's order (no "
                   "moe-cpu-vector-reductions; debugging)"),
    llvm::cl::cat(toolOptions));
llvm::cl::opt<bool> noSplitLeadingDims(
    "no-split-leading-dims",
    llvm::cl::desc("parallel loops of three dims or more split over their "
                   "first dim only, not all but their last (debugging)"),
    llvm::cl::cat(toolOptions));
llvm::cl::opt<bool> noFastExp(
    "no-fast-exp",
    llvm::cl::desc("exp calls libm's expf per element instead of the "
                   "vectorizable polynomial (no moe-approximate-math; "
                   "debugging)"),
    llvm::cl::cat(toolOptions));
llvm::cl::opt<bool> noFlashAttention(
    "no-flash-attention",
    llvm::cl::desc("attention without a cache computes each block of "
                   "queries' softmax over all its keys at once instead of "
                   "online over blocks of 128 keys (debugging; --no-tile "
                   "and --reference do too)"),
    llvm::cl::cat(toolOptions));
llvm::cl::opt<bool> noSkipMaskedBlocks(
    "no-skip-masked-blocks",
    llvm::cl::desc("the flash-style attention computes every key block, "
                   "also those an additive mask leaves out whole "
                   "(debugging; same bits)"),
    llvm::cl::cat(toolOptions));
llvm::cl::opt<bool> noPackWeights(
    "no-pack-weights",
    llvm::cl::desc("constant expert weights stay row-major instead of in "
                   "contiguous column panels (no moe-pack-expert-weights; "
                   "debugging)"),
    llvm::cl::cat(toolOptions));
llvm::cl::opt<bool>
    noRoll("no-roll",
           llvm::cl::desc("compile every copy of a repeated layer sequence "
                          "(no moe-roll-repeats; debugging)"),
           llvm::cl::cat(toolOptions));
llvm::cl::opt<bool> noMergeFunctions(
    "no-merge-functions",
    llvm::cl::desc("compile identical functions each on its own instead "
                   "of once, the others thunks that jump to it (distinct "
                   "layers of the same shapes, @main's and @prefill's "
                   "loops); perf then names each layer's own code "
                   "(debugging)"),
    llvm::cl::cat(toolOptions));
llvm::cl::opt<bool> generation(
    "generation",
    llvm::cl::desc("also derive the entries 'prefill' and 'decode' (a "
                   "key/value cache stacked over the attention layers) "
                   "from a causal language model (moe-generation-entries)"),
    llvm::cl::cat(toolOptions));
llvm::cl::opt<bool> generationAllLogits(
    "generation-all-logits",
    llvm::cl::desc("with --generation: 'prefill' returns the logits of "
                   "every prompt position, not only the last"),
    llvm::cl::cat(toolOptions));
llvm::cl::opt<bool> noRaise(
    "no-raise",
    llvm::cl::desc("leave exported MoE blocks as exported (no "
                   "moe-raise-onnx; debugging, and the unraised baseline)"),
    llvm::cl::cat(toolOptions));
llvm::cl::opt<bool> reference(
    "reference",
    llvm::cl::desc("the reference lowering only (moe-lower-to-llvm, without "
                   "moe-cpu-loop-order): the oracle for optimised code"),
    llvm::cl::cat(toolOptions));
} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM y(argc, argv);
  registerAsmPrinterCLOptions();
  registerMLIRContextCLOptions();
  registerPassManagerCLOptions();
  registerDefaultTimingManagerCLOptions();
  moe::hideUnrelatedOptions(toolOptions);
  llvm::cl::ParseCommandLineOptions(argc, argv,
                                    "moe-compile: model -> .moeb artifact\n");

  DialectRegistry registry;
  moe::registerCompilerDialects(registry);
  MLIRContext context(registry);
  context.printOpOnDiagnostic(false);
  ScopedDiagnosticHandler handler(&context, [](Diagnostic &diag) {
    moe::printOnnxDiagnostic(diag, llvm::errs(), "moe-compile");
    return success();
  });
  auto progress = [](StringRef msg) {
    if (!quiet)
      llvm::errs() << "moe-compile: " << msg << "\n";
  };

  std::string error;
  std::unique_ptr<llvm::MemoryBuffer> input =
      openInputFile(inputFile, &error);
  if (!input) {
    llvm::errs() << "moe-compile: " << error << "\n";
    return 1;
  }
  SmallString<256> baseDir(inputFile.getValue());
  llvm::sys::path::remove_filename(baseDir);
  if (baseDir.empty())
    baseDir = ".";

  // The result goes to a temporary file beside the output, renamed over
  // it only when the compile succeeds: a failed or interrupted compile
  // leaves an existing artifact as it was (and no truncated one). "-"
  // (stdout) and an existing path that is not a regular file (/dev/null,
  // a FIFO, a symbolic link: a rename would replace the node itself) are
  // written directly.
  std::optional<llvm::sys::fs::TempFile> temp;
  std::unique_ptr<llvm::raw_fd_ostream> tempStream;
  std::unique_ptr<llvm::ToolOutputFile> directFile;
  llvm::sys::fs::file_status outputStatus;
  bool direct =
      outputFile == "-" ||
      (!llvm::sys::fs::status(outputFile, outputStatus, /*Follow=*/false) &&
       llvm::sys::fs::exists(outputStatus) &&
       outputStatus.type() != llvm::sys::fs::file_type::regular_file);
  if (direct) {
    directFile = openOutputFile(outputFile, &error);
    if (!directFile) {
      llvm::errs() << "moe-compile: " << error << "\n";
      return 1;
    }
  } else {
    llvm::Expected<llvm::sys::fs::TempFile> created =
        llvm::sys::fs::TempFile::create(outputFile + ".tmp-%%%%%%");
    if (!created) {
      llvm::errs() << "moe-compile: cannot write '" << outputFile
                   << "': " << llvm::toString(created.takeError()) << "\n";
      return 1;
    }
    temp.emplace(std::move(*created));
    tempStream = std::make_unique<llvm::raw_fd_ostream>(temp->FD,
                                                         /*shouldClose=*/false);
  }
  llvm::raw_ostream &os = temp ? *tempStream : directFile->os();
  // On every early return below: the temporary file goes.
  auto discard = [&] {
    tempStream.reset();
    if (temp)
      llvm::consumeError(temp->discard());
    return 1;
  };
  moe::CompileOptions options;
  options.emit = emit;
  options.cc = cc;
  options.march = march;
  if (optLevel > 3) {
    llvm::errs() << "moe-compile: --opt must be 0 to 3, got " << optLevel
                 << "\n";
    return discard();
  }
  options.optLevel = optLevel;
  options.codegenParts = codegenParts;
  options.codegenJobs = codegenJobs;
  options.reference = reference;
  options.parallelLoops = !noParallelLoops;
  if (parallelMinWork < 0) {
    llvm::errs() << "moe-compile: --parallel-min-work must be >= 0, got "
                 << parallelMinWork << "\n";
    return discard();
  }
  options.parallelMinChunkWork = parallelMinWork;
  options.tile = !noTile;
  options.dotProducts = !noDotProducts;
  options.prefetchRows = !noPrefetch;
  options.prefetchPanels = !noPrefetchPanels;
  options.remainderTiles = !noRemainderTiles;
  options.accumulatorChains = !noAccumulatorChains;
  options.mergeTailSlices = !noMergeTailSlices;
  options.panelColumns = panelColumns;
  options.fuseGathers = !noFuseGathers;
  options.fuseEpilogues = !noFuseEpilogues;
  options.fuseElementwise = !noFuseElementwise;
  options.vectorReductions = !noVectorReductions;
  options.parallelSplitLeadingDims = !noSplitLeadingDims;
  options.fastExp = !noFastExp;
  options.flashAttention = !noFlashAttention;
  options.skipMaskedKeyBlocks = !noSkipMaskedBlocks;
  options.sortExpertLayouts = !noSortedExperts;
  options.fuseExpertPairs = !noFuseExpertPairs;
  options.fuseRouting = !noFuseRouting;
  options.rollRepeats = !noRoll;
  options.mergeFunctions = !noMergeFunctions;
  // A user's Ctrl-C leaves no temporary file behind.
  options.removeTempsOnSignal = true;
  options.packWeights = !noPackWeights;
  options.generation = generation;
  options.generationAllLogits = generationAllLogits;
  options.raise = noRaise ? moe::RaiseMode::Off : moe::RaiseMode::On;
  options.progress = progress;
  options.configure = [](PassManager &pm) {
    if (failed(applyPassManagerCLOptions(pm)))
      return failure();
    applyDefaultTimingPassManagerCLOptions(pm);
    return success();
  };
  if (failed(moe::compileModel(input->getMemBufferRef(), inputFile, baseDir,
                               moe::InputKind::Auto, &context, options,
                               os)))
    return discard();
  if (directFile) {
    directFile->keep();
  } else {
    tempStream->flush();
    if (tempStream->has_error()) {
      llvm::errs() << "moe-compile: cannot write '" << outputFile
                   << "': " << tempStream->error().message() << "\n";
      tempStream->clear_error();
      return discard();
    }
    tempStream.reset();
    if (llvm::Error e = temp->keep(outputFile)) {
      llvm::errs() << "moe-compile: cannot write '" << outputFile
                   << "': " << llvm::toString(std::move(e)) << "\n";
      return discard();
    }
  }
  progress("wrote " + outputFile);
  return 0;
}

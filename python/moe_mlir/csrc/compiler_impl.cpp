//===- compiler_impl.cpp - moe::compileModel for moe_mlir._compiler --------===//
//
// The MLIR half of moe_mlir._compiler (see compiler_impl.h): one MLIR
// context per call, diagnostics printed as moe-compile prints them
// (moe::printOnnxDiagnostic) into a string instead of stderr.
//
//===----------------------------------------------------------------------===//

#include "compiler_impl.h"

#include "moe/Compiler/Compiler.h"
#include "moe/Import/ONNX/Importer.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/MemoryBufferRef.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;

bool moe_python::compile(const CompileRequest &request, std::string &output,
                         std::string &diagnostics) {
  output.clear();
  diagnostics.clear();
  llvm::raw_string_ostream diagOut(diagnostics);

  std::optional<moe::EmitLevel> emit =
      llvm::StringSwitch<std::optional<moe::EmitLevel>>(request.emit)
          .Case("moe", moe::EmitLevel::Moe)
          .Case("linalg", moe::EmitLevel::Linalg)
          .Case("buffers", moe::EmitLevel::Buffers)
          .Case("llvm", moe::EmitLevel::LLVM)
          .Case("obj", moe::EmitLevel::Obj)
          .Case("artifact", moe::EmitLevel::Artifact)
          .Default(std::nullopt);
  if (!emit) {
    diagOut << "moe_mlir.compile: emit must be one of moe, linalg, buffers, llvm, "
               "obj, artifact; got '"
            << request.emit << "'\n";
    return false;
  }

  DialectRegistry registry;
  moe::registerCompilerDialects(registry);
  MLIRContext context(registry);
  context.printOpOnDiagnostic(false);
  ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
    moe::printOnnxDiagnostic(diag, diagOut, "moe_mlir.compile");
    return success();
  });

  moe::CompileOptions options;
  options.emit = *emit;
  options.cc = request.cc;
  options.march = request.march;
  options.optLevel = request.optLevel;
  options.reference = request.reference;
  options.parallelLoops = request.parallelLoops;
  options.tile = request.tile;
  options.sortExpertLayouts = request.sortExpertLayouts;
  options.dotProducts = request.dotProducts;
  options.prefetchRows = request.prefetchRows;
  options.prefetchPanels = request.prefetchPanels;
  options.fuseGathers = request.fuseGathers;
  options.fuseEpilogues = request.fuseEpilogues;
  options.fuseElementwise = request.fuseElementwise;
  options.vectorReductions = request.vectorReductions;
  options.fastExp = request.fastExp;
  options.flashAttention = request.flashAttention;
  options.packWeights = request.packWeights;
  options.rollRepeats = request.rollRepeats;
  options.remainderTiles = request.remainderTiles;
  options.accumulatorChains = request.accumulatorChains;
  options.mergeTailSlices = request.mergeTailSlices;
  options.panelColumns = request.panelColumns;
  if (request.parallelMinWork >= 0)
    options.parallelMinChunkWork = request.parallelMinWork;
  options.fuseExpertPairs = request.fuseExpertPairs;
  options.fuseRouting = request.fuseRouting;
  options.codegenJobs = request.codegenJobs;
  options.generation = request.generation;
  options.generationAllLogits = request.generationAllLogits;
  options.raise = request.raiseBlocks ? moe::RaiseMode::On : moe::RaiseMode::Off;
  if (request.progress) {
    auto *fn = request.progress;
    void *ctx = request.progressContext;
    options.progress = [fn, ctx](StringRef line) {
      fn(ctx, line.data(), line.size());
    };
  }

  llvm::raw_string_ostream out(output);
  llvm::MemoryBufferRef input(StringRef(request.data, request.size),
                              request.name);
  bool ok = succeeded(moe::compileModel(input, request.name, request.baseDir,
                                        moe::InputKind::Auto, &context,
                                        options, out));
  out.flush();
  diagOut.flush();
  if (!ok) {
    output.clear();
    if (diagnostics.empty())
      diagnostics = "moe_mlir.compile: compilation failed (no diagnostic)\n";
  }
  return ok;
}

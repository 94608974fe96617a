//===- moe-import.cpp - ONNX model -> MLIR ---------------------------------===//
//
//   moe-import model.onnx -o model.mlir        (- for stdin / stdout)
//   moe-import model.onnx --stage=onnx         mechanical import only
//   moe-import --list-handlers                 ops the conversion knows
//
// Errors are diagnostics located at the ONNX node or value; the exit status
// is non-zero on any error.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/OnnxToMoe/OnnxToMoe.h"
#include "moe/Compiler/Compiler.h"
#include "moe/Import/ONNX/Importer.h"
#include "moe/InitAll.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/InitAllDialects.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Support/ToolUtilities.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/ToolOutputFile.h"

using namespace mlir;

namespace {
/// The tool's own options: what --help lists, with MLIR's (--mlir-*).
llvm::cl::OptionCategory toolOptions("moe-import options");
enum class Stage { Onnx, Moe };

llvm::cl::opt<std::string> inputFile(llvm::cl::Positional,
                                     llvm::cl::desc("<model.onnx>"),
                                     llvm::cl::init("-"),
                                     llvm::cl::cat(toolOptions));
llvm::cl::opt<std::string> outputFile("o", llvm::cl::desc("output file"),
                                      llvm::cl::value_desc("filename"),
                                      llvm::cl::init("-"),
                                      llvm::cl::cat(toolOptions));
llvm::cl::opt<Stage> stage(
    "stage", llvm::cl::desc("where to stop"), llvm::cl::init(Stage::Moe),
    llvm::cl::values(
        clEnumValN(Stage::Onnx, "onnx", "mechanical import (onnx.node ops)"),
        clEnumValN(Stage::Moe, "moe",
                   "converted to moe and upstream dialects (default)")),
    llvm::cl::cat(toolOptions));
enum class RaiseFlag { On, Report };
llvm::cl::opt<RaiseFlag> raiseFlag(
    "raise",
    llvm::cl::desc("raising of exported MoE blocks to routed moe ops "
                   "(moe-raise-onnx)"),
    llvm::cl::init(RaiseFlag::On),
    llvm::cl::values(
        clEnumValN(RaiseFlag::On, "on", "raise what matches (default)"),
        clEnumValN(RaiseFlag::Report, "report",
                   "raise, and print a remark for every raised block and "
                   "every near miss")),
    llvm::cl::cat(toolOptions));
llvm::cl::opt<bool> noRaise(
    "no-raise",
    llvm::cl::desc("leave exported MoE blocks as exported (no moe-raise-onnx)"),
    llvm::cl::cat(toolOptions));
llvm::cl::opt<bool> listHandlers(
    "list-handlers",
    llvm::cl::desc("print every (domain, op, since version) with a handler "
                   "and exit"),
    llvm::cl::cat(toolOptions));
} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM y(argc, argv);
  registerAsmPrinterCLOptions();
  registerMLIRContextCLOptions();
  registerPassManagerCLOptions();
  moe::hideUnrelatedOptions(toolOptions);
  llvm::cl::ParseCommandLineOptions(argc, argv,
                                    "moe-import: ONNX model -> MLIR\n");

  if (listHandlers) {
    for (const auto &[domain, op, since] :
         moe::getDefaultOnnxHandlers().entries())
      llvm::outs() << (domain.empty() ? "ai.onnx" : domain) << " " << op
                   << " " << since << "\n";
    return 0;
  }

  DialectRegistry registry;
  moe::registerCompilerDialects(registry);
  MLIRContext context(registry);

  // Diagnostics read "model.onnx: node 'name': error: message": ONNX has no
  // lines, its nodes have names (the locations stage 1 gives every op).
  context.printOpOnDiagnostic(false);
  ScopedDiagnosticHandler handler(&context, [](Diagnostic &diag) {
    moe::printOnnxDiagnostic(diag, llvm::errs(), "moe-import");
    return success();
  });

  std::string error;
  std::unique_ptr<llvm::MemoryBuffer> input =
      openInputFile(inputFile, &error);
  if (!input) {
    llvm::errs() << "moe-import: " << error << "\n";
    return 1;
  }
  StringRef name = inputFile == "-" ? StringRef("<stdin>")
                                    : StringRef(inputFile);
  SmallString<256> baseDir(inputFile == "-" ? "." : inputFile.getValue());
  llvm::sys::path::remove_filename(baseDir);
  if (baseDir.empty())
    baseDir = ".";

  OwningOpRef<ModuleOp> module = moe::loadModel(
      input->getMemBufferRef(), name, baseDir, moe::InputKind::Onnx, &context,
      /*convertToMoe=*/stage == Stage::Moe,
      [](PassManager &pm) { return applyPassManagerCLOptions(pm); },
      noRaise ? moe::RaiseMode::Off
      : raiseFlag == RaiseFlag::Report ? moe::RaiseMode::Report
                                       : moe::RaiseMode::On);
  if (!module)
    return 1;
  if (failed(verify(*module)))
    return 1;

  std::unique_ptr<llvm::ToolOutputFile> output =
      openOutputFile(outputFile, &error);
  if (!output) {
    llvm::errs() << "moe-import: " << error << "\n";
    return 1;
  }
  module->print(output->os());
  output->os() << "\n";
  output->keep();
  return 0;
}

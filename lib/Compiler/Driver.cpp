//===- Driver.cpp - model bytes -> module -> artifact ----------------------===//
//
// The one import-and-compile sequence of moe-import, moe-compile and the
// Python package (python/moe_mlir): ONNX is imported (stage 1) and
// converted to the moe dialect (stage 2); MLIR text is parsed.
//
//===----------------------------------------------------------------------===//

#include "moe/Compiler/Compiler.h"
#include "moe/Conversion/Passes.h"
#include "moe/Import/ONNX/Importer.h"
#include "moe/InitAll.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "mlir/InitAllDialects.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"

using namespace mlir;
using namespace mlir::moe;

void mlir::moe::registerCompilerDialects(DialectRegistry &registry) {
  // moe's first: its tensor slice models replace upstream's.
  moe::registerAllDialects(registry);
  mlir::registerAllDialects(registry);
}

void mlir::moe::hideUnrelatedOptions(llvm::cl::OptionCategory &toolOptions) {
  static llvm::cl::OptionCategory mlirOptions("MLIR options");
  for (auto &[name, option] : llvm::cl::getRegisteredOptions()) {
    if (name.starts_with("mlir-")) {
      option->addCategory(mlirOptions);
      continue;
    }
    bool shown = llvm::any_of(option->Categories, [&](auto *category) {
      return category == &toolOptions ||
             category->getName() == "Generic Options";
    });
    if (!shown && option->getOptionHiddenFlag() == llvm::cl::NotHidden)
      option->setHiddenFlag(llvm::cl::Hidden);
  }
}

namespace {
/// Whether `bytes` look like MLIR text: non-blank, and no control byte but
/// tab, CR and LF in the first 4 KiB. An ONNX protobuf starts with a field
/// tag (0x08 for ir_version) and holds binary lengths soon after.
bool looksLikeMlir(StringRef bytes) {
  StringRef head = bytes.take_front(4096);
  for (char c : head) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\n' && c != '\r' && c != '\t') || u == 0x7f)
      return false;
  }
  return !head.trim().empty();
}
} // namespace

OwningOpRef<ModuleOp> mlir::moe::loadModel(
    llvm::MemoryBufferRef input, StringRef name, StringRef baseDir,
    InputKind kind, MLIRContext *context, bool convertToMoe,
    const std::function<LogicalResult(PassManager &)> &configure,
    RaiseMode raise) {
  if (kind == InputKind::Auto)
    kind = name.ends_with(".onnx")   ? InputKind::Onnx
           : name.ends_with(".mlir") ? InputKind::Mlir
           : looksLikeMlir(input.getBuffer()) ? InputKind::Mlir
                                              : InputKind::Onnx;
  context->loadAllAvailableDialects();
  if (kind == InputKind::Mlir) {
    // A copy: the MLIR lexer needs a NUL after the text, which bytes from
    // a caller (Python) need not have.
    llvm::SourceMgr sourceMgr;
    sourceMgr.AddNewSourceBuffer(
        llvm::MemoryBuffer::getMemBufferCopy(input.getBuffer(), name),
        llvm::SMLoc());
    return parseSourceFile<ModuleOp>(sourceMgr, context);
  }
  std::unique_ptr<llvm::MemoryBuffer> buffer = llvm::MemoryBuffer::getMemBuffer(
      input.getBuffer(), name, /*RequiresNullTerminator=*/false);
  OwningOpRef<ModuleOp> module =
      importOnnxModel(*buffer, name, baseDir, context);
  if (!module || !convertToMoe)
    return module;
  PassManager pm(context);
  if (configure && failed(configure(pm)))
    return nullptr;
  if (raise != RaiseMode::Off) {
    RaiseOnnxMoeOptions raiseOptions;
    raiseOptions.report = raise == RaiseMode::Report;
    pm.addPass(createRaiseOnnxMoe(raiseOptions));
  }
  pm.addPass(createConvertOnnxToMoe());
  if (failed(pm.run(*module)))
    return nullptr;
  return module;
}

LogicalResult mlir::moe::compileModel(llvm::MemoryBufferRef input,
                                      StringRef name, StringRef baseDir,
                                      InputKind kind, MLIRContext *context,
                                      const CompileOptions &options,
                                      llvm::raw_ostream &out) {
  if (options.progress)
    options.progress(("importing " + name).str());
  OwningOpRef<ModuleOp> module = loadModel(input, name, baseDir, kind, context,
                                           /*convertToMoe=*/true,
                                           options.configure, options.raise);
  if (!module)
    return failure();
  return compileModule(*module, options, out);
}

//===- fuzz_import.cpp - libFuzzer harness of the ONNX importer -----------===//
//
// Bytes -> moe-import's two stages: the mechanical import (protobuf, opsets,
// payloads, external data, functions, graph), then moe-raise-onnx and the
// conversion to the moe dialect, then the verifier. Every input must end in success or in
// diagnostics: a crash, a sanitizer report, a leak or a hang is a finding.
// External data resolves against an empty private folder.
//
// Built by the main build with -DMOE_BUILD_FUZZERS=ON (test/fuzz/
// CMakeLists.txt); run by scripts/fuzz.sh.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"
#include "moe/Import/ONNX/Importer.h"
#include "moe/InitAll.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cstdint>
#include <cstdlib>
#include <string>

#include <unistd.h>

using namespace mlir;

namespace {
const std::string &emptyFolder() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/moe-fuzz-import-XXXXXX";
    const char *d = mkdtemp(tmpl);
    return std::string(d ? d : "/nonexistent");
  }();
  return dir;
}

DialectRegistry &registry() {
  static DialectRegistry *r = [] {
    // Only what the importer and the conversion load (a context with every
    // upstream dialect costs more than most inputs).
    auto *reg = new DialectRegistry;
    moe::registerAllDialects(*reg);
    return reg;
  }();
  return *r;
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  MLIRContext context(registry());
  context.printOpOnDiagnostic(false);
  ScopedDiagnosticHandler quiet(&context, [](Diagnostic &) { return success(); });
  auto buffer = llvm::MemoryBuffer::getMemBuffer(
      llvm::StringRef(reinterpret_cast<const char *>(data), size), "fuzz.onnx",
      /*RequiresNullTerminator=*/false);
  OwningOpRef<ModuleOp> module =
      moe::importOnnxModel(*buffer, "fuzz.onnx", emptyFolder(), &context);
  if (!module)
    return 0;
  PassManager pm(&context);
  // As moe-import and moe-compile run them: the raise matchers read the
  // graph before any node has been checked.
  pm.addPass(moe::createRaiseOnnxMoe());
  pm.addPass(moe::createConvertOnnxToMoe());
  if (succeeded(pm.run(*module)))
    (void)verify(*module);
  return 0;
}

//===- ExportEntries.cpp - only the entries leave the shared object --------===//
//
// After lowering to the LLVM dialect: the entry functions (those named by
// the `symbols` option) and the signature digest are the module's only
// external definitions. Every other defined function and global becomes
// internal, so the shared object exports nothing else and its calls never
// bind to a host symbol of the same name (a host process that exports its
// own `main`, say). Declarations (libc and libm functions) stay external.
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "moe/artifact_format.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "llvm/ADT/StringSet.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEEXPORTENTRIES
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {
struct MoeExportEntriesPass
    : mlir::moe::impl::MoeExportEntriesBase<MoeExportEntriesPass> {
  using Base::Base;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    llvm::StringSet<> exported;
    for (const std::string &symbol : symbols) {
      auto fn = module.lookupSymbol<LLVM::LLVMFuncOp>(symbol);
      if (!fn || fn.isExternal()) {
        module.emitError() << "moe-export-entries: no entry function '"
                           << symbol << "' in the LLVM dialect";
        return signalPassFailure();
      }
      exported.insert(symbol);
    }
    exported.insert(::moe::artifact::kSignatureDigestSymbol);
    for (auto fn : module.getOps<LLVM::LLVMFuncOp>())
      if (!fn.isExternal() && !exported.contains(fn.getSymName()))
        fn.setLinkage(LLVM::Linkage::Internal);
    for (auto global : module.getOps<LLVM::GlobalOp>())
      if (global.getLinkage() == LLVM::Linkage::External &&
          !exported.contains(global.getSymName()) &&
          (global.getValueOrNull() || !global.getInitializerRegion().empty()))
        global.setLinkage(LLVM::Linkage::Internal);
  }
};
} // namespace

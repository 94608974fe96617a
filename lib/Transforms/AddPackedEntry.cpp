//===- AddPackedEntry.cpp - the runtime's uniform entry point --------------===//

#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/Builders.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEADDPACKEDENTRY
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {
struct MoeAddPackedEntryPass
    : moe::impl::MoeAddPackedEntryBase<MoeAddPackedEntryPass> {
  using Base::Base;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    std::string wrapperName = "_mlir_ciface_" + entry;
    auto wrapper = module.lookupSymbol<LLVM::LLVMFuncOp>(wrapperName);
    if (!wrapper) {
      module.emitError() << "moe-add-packed-entry: no '" << wrapperName
                         << "' (lower with C interface wrappers first)";
      return signalPassFailure();
    }
    MLIRContext *ctx = module.getContext();
    OpBuilder b(ctx);
    b.setInsertionPointToEnd(module.getBody());
    Location loc = wrapper.getLoc();
    auto ptr = LLVM::LLVMPointerType::get(ctx);
    auto fnType = LLVM::LLVMFunctionType::get(LLVM::LLVMVoidType::get(ctx),
                                              {ptr});
    auto packed = LLVM::LLVMFuncOp::create(b, loc, "moe_entry", fnType);
    Block *block = packed.addEntryBlock(b);
    b.setInsertionPointToStart(block);
    SmallVector<Value> args;
    for (auto [i, type] :
         llvm::enumerate(wrapper.getFunctionType().getParams())) {
      if (!isa<LLVM::LLVMPointerType>(type)) {
        wrapper.emitError() << "moe-add-packed-entry: parameter " << i
                            << " of " << wrapperName
                            << " is not a pointer: " << type;
        return signalPassFailure();
      }
      Value slot = LLVM::GEPOp::create(
          b, loc, ptr, ptr, block->getArgument(0),
          ArrayRef<LLVM::GEPArg>{static_cast<int32_t>(i)});
      args.push_back(LLVM::LoadOp::create(b, loc, ptr, slot));
    }
    LLVM::CallOp::create(b, loc, wrapper, args);
    LLVM::ReturnOp::create(b, loc, ValueRange{});

    // The packed entry is the only definition the code exports: every other
    // function and global becomes internal, so that calls bind directly
    // (never through the PLT to a host symbol of the same name, such as a
    // host's own `main`) and nothing else is visible to the loader.
    for (auto fn : module.getOps<LLVM::LLVMFuncOp>())
      if (fn != packed && !fn.isExternal())
        fn.setLinkage(LLVM::Linkage::Internal);
    for (auto global : module.getOps<LLVM::GlobalOp>())
      if (global.getLinkage() == LLVM::Linkage::External &&
          (global.getValueOrNull() || !global.getInitializerRegion().empty()))
        global.setLinkage(LLVM::Linkage::Internal);
  }
};
} // namespace

//===- OutlineWeights.cpp - weight constants -> entry arguments ------------===//

#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEOUTLINEWEIGHTS
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {
struct MoeOutlineWeightsPass
    : moe::impl::MoeOutlineWeightsBase<MoeOutlineWeightsPass> {
  using Base::Base;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto func = module.lookupSymbol<func::FuncOp>(entry);
    if (!func || func.isExternal()) {
      module.emitError() << "moe-outline-weights: no entry function '"
                         << entry << "'";
      return signalPassFailure();
    }
    SmallVector<arith::ConstantOp> weights;
    func.walk([&](arith::ConstantOp cst) {
      auto type = dyn_cast<RankedTensorType>(cst.getType());
      auto value = dyn_cast<DenseElementsAttr>(cst.getValue());
      // Bytes-wide element types only (i1 is bit-packed in attributes).
      if (type && value && type.getNumElements() >= minElements &&
          type.getElementType().isIntOrFloat() &&
          type.getElementType().getIntOrFloatBitWidth() % 8 == 0)
        weights.push_back(cst);
    });
    SmallVector<Attribute> values;
    Block &body = func.getBody().front();
    OpBuilder b(module.getContext());
    for (arith::ConstantOp cst : weights) {
      unsigned index = func.getNumArguments();
      if (failed(func.insertArgument(index, cst.getType(),
                                     b.getDictionaryAttr(b.getNamedAttr(
                                         "moe.weight",
                                         b.getI64IntegerAttr(values.size()))),
                                     cst.getLoc())))
        return signalPassFailure();
      cst.getResult().replaceAllUsesWith(body.getArgument(index));
      values.push_back(cst.getValue());
      cst.erase();
    }
    module->setAttr("moe.weights", b.getArrayAttr(values));
  }
};
} // namespace

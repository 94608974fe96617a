//===- OutlineWeights.cpp - weight constants -> entry arguments ------------===//

#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
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
    SmallVector<arith::ConstantOp> weights, splats;
    func.walk([&](arith::ConstantOp cst) {
      auto type = dyn_cast<RankedTensorType>(cst.getType());
      auto value = dyn_cast<DenseElementsAttr>(cst.getValue());
      if (!type || !value || type.getNumElements() < minElements ||
          !type.getElementType().isIntOrFloat())
        return;
      // A splat is one value: it becomes a fill, never bytes in the
      // artifact (ConstantOfShape of a large shape would otherwise be
      // expanded element by element).
      if (value.isSplat())
        splats.push_back(cst);
      // Bytes-wide element types only (i1 is bit-packed in attributes).
      else if (type.getElementType().getIntOrFloatBitWidth() % 8 == 0)
        weights.push_back(cst);
    });
    // Weights outlined before (the output of `moe-compile --emit=moe`,
    // compiled again) keep their indices; new ones follow.
    SmallVector<Attribute> values;
    if (auto existing = module->getAttrOfType<ArrayAttr>("moe.weights"))
      values.append(existing.begin(), existing.end());
    Block &body = func.getBody().front();
    OpBuilder b(module.getContext());
    for (arith::ConstantOp cst : splats) {
      b.setInsertionPoint(cst);
      auto type = cast<RankedTensorType>(cst.getType());
      auto value = cast<DenseElementsAttr>(cst.getValue());
      Value scalar = arith::ConstantOp::create(
          b, cst.getLoc(), cast<TypedAttr>(value.getSplatValue<Attribute>()));
      Value empty = tensor::EmptyOp::create(b, cst.getLoc(), type.getShape(),
                                            type.getElementType());
      Value filled =
          linalg::FillOp::create(b, cst.getLoc(), scalar, empty).getResult(0);
      cst.getResult().replaceAllUsesWith(filled);
      cst.erase();
    }
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

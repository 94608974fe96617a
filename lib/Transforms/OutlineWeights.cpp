//===- OutlineWeights.cpp - weight constants -> entry arguments ------------===//

#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/ADT/DenseMap.h"

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
    // The entries: @main and, for generation, @prefill and @decode; every
    // public function the module defines and does not call. They share the weight records:
    // one value used by several entries is one record.
    SmallVector<func::FuncOp> entries;
    for (auto fn : module.getOps<func::FuncOp>())
      if (!fn.isExternal() && fn.isPublic() &&
          SymbolTable::symbolKnownUseEmpty(fn, module))
        entries.push_back(fn);
    if (entries.empty()) {
      module.emitError() << "moe-outline-weights: the module defines no "
                            "public (entry) function";
      return signalPassFailure();
    }
    // Weights outlined before (the output of `moe-compile --emit=moe`,
    // compiled again) keep their indices; new ones follow.
    SmallVector<Attribute> values;
    llvm::DenseMap<Attribute, int64_t> indexOf;
    if (auto existing = module->getAttrOfType<ArrayAttr>("moe.weights"))
      for (Attribute v : existing) {
        indexOf.try_emplace(v, values.size());
        values.push_back(v);
      }
    OpBuilder b(module.getContext());
    for (func::FuncOp func : entries)
      if (failed(outline(func, b, values, indexOf)))
        return signalPassFailure();
    module->setAttr("moe.weights", b.getArrayAttr(values));
  }

  LogicalResult outline(func::FuncOp func, OpBuilder &b,
                        SmallVectorImpl<Attribute> &values,
                        llvm::DenseMap<Attribute, int64_t> &indexOf) {
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
    Block &body = func.getBody().front();
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
    // One argument per record this function uses (marked with the record's
    // index: the runtime passes every record to every entry).
    llvm::DenseMap<int64_t, Value> argOf;
    for (unsigned i = 0; i < func.getNumArguments(); ++i)
      if (auto w = func.getArgAttrOfType<IntegerAttr>(i, "moe.weight"))
        argOf.try_emplace(w.getInt(), body.getArgument(i));
    for (arith::ConstantOp cst : weights) {
      auto [it, added] = indexOf.try_emplace(cst.getValue(), values.size());
      if (added)
        values.push_back(cst.getValue());
      int64_t index = it->second;
      Value arg = argOf.lookup(index);
      if (!arg) {
        unsigned at = func.getNumArguments();
        if (failed(func.insertArgument(
                at, cst.getType(),
                b.getDictionaryAttr(b.getNamedAttr(
                    "moe.weight", b.getI64IntegerAttr(index))),
                cst.getLoc())))
          return failure();
        arg = body.getArgument(at);
        argOf[index] = arg;
      }
      cst.getResult().replaceAllUsesWith(arg);
      cst.erase();
    }
    return success();
  }
};
} // namespace

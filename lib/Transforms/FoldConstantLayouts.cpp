//===- FoldConstantLayouts.cpp - weight layouts decided at compile time ----===//
//
// A transpose of a constant (the [E, F, H] -> [E, H, F] of com.microsoft.MoE
// expert weights, an ONNX Transpose of a MatMul weight) would otherwise run
// on every call over the whole weight. This pass evaluates it once: the
// transposes whose input is a constant become linalg.generic
// (generalizeNamedOp) and upstream's constant folding of linalg
// (populateConstantFoldLinalgOperations) turns them into new constants,
// which moe-outline-weights then stores in the layout the code reads.
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEFOLDCONSTANTLAYOUTS
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

/// Whether `v` is a dense constant of at most `maxElements` elements.
bool isSmallConstant(Value v, int64_t maxElements) {
  auto cst = v.getDefiningOp<arith::ConstantOp>();
  if (!cst || !isa<DenseElementsAttr>(cst.getValue()))
    return false;
  auto type = dyn_cast<RankedTensorType>(v.getType());
  return type && type.hasStaticShape() && type.getNumElements() <= maxElements;
}

struct MoeFoldConstantLayoutsPass
    : mlir::moe::impl::MoeFoldConstantLayoutsBase<MoeFoldConstantLayoutsPass> {
  using Base::Base;
  void runOnOperation() override {
    Operation *root = getOperation();
    // 1. Transposes of constants as generic ops (the form the folder reads).
    IRRewriter rewriter(root->getContext());
    SmallVector<linalg::TransposeOp> transposes;
    root->walk([&](linalg::TransposeOp op) {
      if (isSmallConstant(op.getInput(), maxElements))
        transposes.push_back(op);
    });
    for (linalg::TransposeOp op : transposes) {
      rewriter.setInsertionPoint(op);
      if (failed(linalg::generalizeNamedOp(rewriter, op)))
        return signalPassFailure();
    }
    // 2. Fold them (only those reading constants, within the size limit).
    RewritePatternSet patterns(root->getContext());
    int64_t limit = maxElements;
    linalg::populateConstantFoldLinalgOperations(
        patterns, [limit](OpOperand *operand) {
          return isSmallConstant(operand->get(), limit);
        });
    if (failed(applyPatternsGreedily(root, std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace

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
// It also decides one layout itself: a constant selector [E, D] (the w_sel
// of moe.ffn, the sel_o and sel_v of moe.switchhead) is read as
// "nd,ed->ne", a strided column of it per k step of a register tile. It is
// stored transposed, [D, E], and the op reads it back through a
// linalg.transpose, which the decompositions read through
// (build::selectorScores): the tiles then load D rows of contiguous
// columns.
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoeOps.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <cstring>

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

/// The transpose of a dense rank-2 constant with a static shape and an
/// element type of whole bytes, or null.
DenseElementsAttr transposed2d(DenseElementsAttr attr) {
  auto type = cast<RankedTensorType>(attr.getType());
  unsigned bits = type.getElementTypeBitWidth();
  if (type.getRank() != 2 || !type.hasStaticShape() || bits % 8 != 0 ||
      attr.isSplat())
    return {};
  int64_t rows = type.getDimSize(0), cols = type.getDimSize(1);
  size_t bytes = bits / 8;
  ArrayRef<char> raw = attr.getRawData();
  if (raw.size() != size_t(rows * cols) * bytes)
    return {};
  std::vector<char> out(raw.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      std::memcpy(&out[(c * rows + r) * bytes], &raw[(r * cols + c) * bytes],
                  bytes);
  auto newType = RankedTensorType::get({cols, rows}, type.getElementType());
  return DenseElementsAttr::getFromRawBuffer(newType, out);
}

/// The selector operands ([E, D], read as "nd,ed->ne") of `op`.
SmallVector<OpOperand *> selectorOperands(Operation *op) {
  SmallVector<OpOperand *> uses;
  auto addAll = [&](MutableOperandRange range) {
    for (OpOperand &use : range)
      uses.push_back(&use);
  };
  if (auto ffn = dyn_cast<moe::FfnOp>(op))
    addAll(ffn.getWSelMutable());
  if (auto sh = dyn_cast<moe::SwitchHeadOp>(op)) {
    addAll(sh.getSelOMutable());
    addAll(sh.getSelVMutable());
  }
  if (auto sh = dyn_cast<moe::SwitchHeadCachedOp>(op)) {
    addAll(sh.getSelOMutable());
    addAll(sh.getSelVMutable());
  }
  return uses;
}

/// Stores the constant selectors transposed ([D, E]) and hands each op a
/// linalg.transpose of that, just before it (so that a layer's ops stay
/// together for moe-roll-repeats). Selectors of one constant share the
/// transposed one.
void transposeSelectors(Operation *root, int64_t maxElements) {
  IRRewriter rewriter(root->getContext());
  DenseMap<Value, Value> stored;
  SmallVector<OpOperand *> uses;
  root->walk([&](Operation *op) {
    for (OpOperand *use : selectorOperands(op))
      if (isSmallConstant(use->get(), maxElements))
        uses.push_back(use);
  });
  for (OpOperand *use : uses) {
    Value sel = use->get();
    auto cst = sel.getDefiningOp<arith::ConstantOp>();
    Value &t = stored[sel];
    if (!t) {
      DenseElementsAttr attr =
          transposed2d(cast<DenseElementsAttr>(cst.getValue()));
      if (!attr)
        continue;
      rewriter.setInsertionPointAfter(cst);
      t = arith::ConstantOp::create(rewriter, cst.getLoc(), attr);
    }
    Operation *user = use->getOwner();
    rewriter.setInsertionPoint(user);
    auto type = cast<RankedTensorType>(sel.getType());
    Value init = tensor::EmptyOp::create(
        rewriter, user->getLoc(), type.getShape(), type.getElementType());
    Value back = linalg::TransposeOp::create(rewriter, user->getLoc(), t, init,
                                             ArrayRef<int64_t>{1, 0})
                     .getResult()[0];
    rewriter.modifyOpInPlace(user, [&] { use->set(back); });
  }
  for (auto &[sel, t] : stored)
    if (sel.use_empty())
      rewriter.eraseOp(sel.getDefiningOp());
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
    // 3. Constant selectors stored [D, E].
    if (selectorsByColumn)
      transposeSelectors(root, maxElements);
  }
};

} // namespace

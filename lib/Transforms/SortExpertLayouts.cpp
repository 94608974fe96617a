//===- SortExpertLayouts.cpp - expert order between two projections -------===//
//
// An up projection's rows go from expert order (where each expert's matmul
// writes them) to slot order, and the down projection gathers them back
// into expert order. When both grouped matmuls share the dispatch and only
// row-wise elementwise ops sit between them, the rows can stay in expert
// order: the producer gets `sorted_result`, the consumer `sorted_input`.
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoeOps.h"
#include "moe/Transforms/Passes.h"
#include "moe/Transforms/Transforms.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOESORTEXPERTLAYOUTS
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// Whether `generic` maps row r of its one input to row r of its result
/// and computes each element from that element alone (so a permutation of
/// the rows commutes with it): identity maps, parallel iterators, and a
/// body of arith/math ops on the input element (no linalg.index, no
/// tensor.extract, no read of the init).
bool isRowwiseElementwise(linalg::GenericOp generic) {
  if (generic.getNumDpsInputs() != 1 || generic.getNumDpsInits() != 1 ||
      generic.getNumResults() != 1 || generic.getNumLoops() != 2)
    return false;
  if (!llvm::all_of(generic.getIndexingMapsArray(),
                    [](AffineMap m) { return m.isIdentity(); }) ||
      generic.getNumReductionLoops() != 0)
    return false;
  Block &body = generic.getRegion().front();
  if (!body.getArgument(1).use_empty())
    return false;
  for (Operation &op : body.without_terminator()) {
    if (!isa<arith::ArithDialect, math::MathDialect>(op.getDialect()) ||
        op.getNumRegions() != 0)
      return false;
    // Values from above the body would be the same for every element,
    // which is fine; the ops only read the element and constants.
  }
  return true;
}

/// Whether `user` is the only op that reads `v`'s elements: other users
/// may only take its sizes (tensor.dim), which do not depend on the order
/// of its rows.
bool onlyReader(Value v, Operation *user) {
  return llvm::all_of(v.getUsers(), [&](Operation *u) {
    return u == user || isa<tensor::DimOp>(u);
  });
}

struct SortExpertLayout : OpRewritePattern<GroupedMatmulOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(GroupedMatmulOp down,
                                PatternRewriter &rewriter) const override {
    if (down.getSortedInput())
      return rewriter.notifyMatchFailure(down, "already sorted");
    // The rows reach the consumer as its input only.
    if (down.getBias() == down.getInput() ||
        down.getSlotWeights() == down.getInput())
      return rewriter.notifyMatchFailure(down, "input used twice");
    // Walk back through single-use row-wise elementwise ops.
    Value v = down.getInput();
    Operation *reader = down;
    while (auto generic = v.getDefiningOp<linalg::GenericOp>()) {
      if (!isRowwiseElementwise(generic) || !onlyReader(v, reader))
        return rewriter.notifyMatchFailure(down, "not row-wise between");
      reader = generic;
      v = generic.getDpsInputOperand(0)->get();
    }
    auto up = v.getDefiningOp<GroupedMatmulOp>();
    if (!up || !onlyReader(v, reader))
      return rewriter.notifyMatchFailure(down, "no single-reader producer");
    if (up.getSlotWeights() || up.getSortedResult())
      return rewriter.notifyMatchFailure(down, "producer not in slot order");
    if (up.getOffsets() != down.getOffsets() || up.getPerm() != down.getPerm())
      return rewriter.notifyMatchFailure(down, "different dispatch");
    rewriter.modifyOpInPlace(up, [&] { up.setSortedResult(true); });
    rewriter.modifyOpInPlace(down, [&] { down.setSortedInput(true); });
    return success();
  }
};

struct MoeSortExpertLayoutsPass
    : moe::impl::MoeSortExpertLayoutsBase<MoeSortExpertLayoutsPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateSortExpertLayoutsPatterns(patterns);
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace

void mlir::moe::populateSortExpertLayoutsPatterns(RewritePatternSet &patterns) {
  patterns.add<SortExpertLayout>(patterns.getContext());
}

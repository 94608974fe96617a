//===- FuseElementwise.cpp - fuse elementwise generics into their reader -===//
//
// The importer converts ONNX nodes one at a time, so the glue of an
// exported model (normalizations, residual adds, rotary embeddings, masks)
// is one loop per node, each writing a whole tensor that the next reads.
// Upstream's elementwise fusion (linalg::fuseElementwiseOps) merges such
// loops. Its pass fuses every single-use producer, into contractions too
// (a matmul would recompute its operand once per output column), and adds
// constant folding, reshape propagation and a rewrite of unread `outs`
// that the CPU passes after this one do not expect. Written here: the
// control function, which fuses where every element is still computed
// once, and the pattern that applies it (docs/passes.md).
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEFUSEELEMENTWISE
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

/// Fuse the producer of `operand` into its consumer when the producer's
/// only user is that operand and the consumer reads it through a
/// permutation of all its loops (each element computed once).
bool fusesOnce(OpOperand *operand) {
  auto producer = operand->get().getDefiningOp<linalg::GenericOp>();
  auto consumer = dyn_cast<linalg::GenericOp>(operand->getOwner());
  if (!producer || !consumer || !producer->hasOneUse())
    return false;
  return consumer.getMatchingIndexingMap(operand).isPermutation();
}

/// Upstream's producer-into-consumer fusion (linalg::fuseElementwiseOps)
/// where fusesOnce allows it. Not populateElementwiseOpsFusionPatterns:
/// its other patterns replace an elementwise op's `outs` that the body does
/// not read by a new tensor.empty, which takes an epilogue's in-place write
/// into its contraction's result away (moe-cpu-tile-contractions' fused
/// epilogues then no longer apply).
struct FuseOnce : OpRewritePattern<linalg::GenericOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(linalg::GenericOp consumer,
                                PatternRewriter &rewriter) const override {
    for (OpOperand &operand : consumer->getOpOperands()) {
      if (!linalg::areElementwiseOpsFusable(&operand) || !fusesOnce(&operand))
        continue;
      Operation *producer = operand.get().getDefiningOp();
      FailureOr<linalg::ElementwiseOpFusionResult> fused =
          linalg::fuseElementwiseOps(rewriter, &operand);
      if (failed(fused))
        return rewriter.notifyMatchFailure(consumer, "fusion failed");
      for (auto [from, to] : fused->replacements)
        rewriter.replaceUsesWithIf(from, to, [&](OpOperand &use) {
          return use.getOwner() != producer;
        });
      rewriter.eraseOp(consumer);
      return success();
    }
    return failure();
  }
};

struct MoeFuseElementwisePass
    : mlir::moe::impl::MoeFuseElementwiseBase<MoeFuseElementwisePass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<FuseOnce>(&getContext());
    // Operands a body no longer reads (a Pow's constant exponent 2, now
    // x * x) and operands read twice are dropped.
    linalg::populateEraseUnusedOperandsAndResultsPatterns(patterns);
    // (Not converging within the driver's limit leaves correct, less fused
    // IR: no failure.)
    (void)applyPatternsGreedily(getOperation(), std::move(patterns));
  }
};

} // namespace

//===- CpuVectorReductions.cpp - reassociable innermost row reductions ----===//
//
// A reduction whose innermost loop is the reduction (a softmax's row sum
// and max, a LayerNorm's or RMSNorm's mean and variance) lowers to a scalar
// loop that carries one accumulator: LLVM may not vectorize it, since
// vector partial sums change the order of the additions. Giving the
// combining op the `reassoc` fast-math flag lets LLVM's loop vectorizer keep
// several vector partial sums and add them at the end. The order then
// differs from the reference lowering's (docs/tolerance.md), but it is
// fixed by the code: the same bits on every run and for any thread count
// (a row is never split across threads). Written here: only the choice of
// loops; the vectorization is LLVM's.
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOECPUVECTORREDUCTIONS
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

/// The op combining the accumulator of `op`'s single output with a new
/// value, if it is a float add, maximum or minimum of the output's block
/// argument and something else, and the output has no other use.
Operation *combiner(linalg::GenericOp op) {
  if (op.getNumDpsInits() != 1 || op.getNumResults() != 1)
    return nullptr;
  Block &body = op.getRegion().front();
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  Operation *def = yield.getValues()[0].getDefiningOp();
  if (!def || def->getBlock() != &body ||
      !isa<arith::AddFOp, arith::MaximumFOp, arith::MinimumFOp,
           arith::MaxNumFOp, arith::MinNumFOp>(def))
    return nullptr;
  BlockArgument acc = op.getMatchingBlockArgument(op.getDpsInitOperand(0));
  if (!acc.hasOneUse() ||
      (def->getOperand(0) != acc && def->getOperand(1) != acc) ||
      def->getOperand(0) == def->getOperand(1))
    return nullptr;
  return def;
}

/// `op` reduces along its innermost loop only, and every input either
/// ignores that loop or walks its last dim with it (contiguous loads).
bool innermostRowReduction(linalg::GenericOp op) {
  SmallVector<utils::IteratorType> iterators = op.getIteratorTypesArray();
  if (iterators.empty() || iterators.back() != utils::IteratorType::reduction ||
      op.getNumReductionLoops() != 1)
    return false;
  unsigned inner = iterators.size() - 1;
  for (OpOperand *in : op.getDpsInputOperands()) {
    AffineMap map = op.getMatchingIndexingMap(in);
    if (!map.isFunctionOfDim(inner))
      continue;
    if (map.getNumResults() == 0 ||
        map.getResults().back() != getAffineDimExpr(inner, op.getContext()) ||
        map.dropResult(map.getNumResults() - 1).isFunctionOfDim(inner))
      return false;
  }
  return true;
}

struct MoeCpuVectorReductionsPass
    : mlir::moe::impl::MoeCpuVectorReductionsBase<MoeCpuVectorReductionsPass> {
  void runOnOperation() override {
    getOperation()->walk([](linalg::GenericOp op) {
      if (!innermostRowReduction(op))
        return;
      Operation *def = combiner(op);
      if (!def)
        return;
      auto fm = cast<arith::ArithFastMathInterface>(def);
      def->setAttr(fm.getFastMathAttrName(),
                   arith::FastMathFlagsAttr::get(
                       op.getContext(), fm.getFastMathFlagsAttr().getValue() |
                                            arith::FastMathFlags::reassoc));
    });
  }
};

} // namespace

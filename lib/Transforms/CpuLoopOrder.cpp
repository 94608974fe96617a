//===- CpuLoopOrder.cpp - unit-stride innermost loops for contractions ----===//
//
// linalg.matmul and the other contractions lower (convert-linalg-to-loops)
// to loops in iterator order, which puts the reduction innermost: one
// scalar accumulator, a strided walk over the right-hand operand and no
// vectorization. This pass generalizes each contraction and interchanges
// its loops so that the innermost loop is the parallel dim that indexes
// the output's last (contiguous) dim: for C[m, n] += A[m, k] * B[k, n] the
// order becomes (m, k, n), whose inner loop clang vectorizes over n with
// contiguous loads of B and C. The multiply and add get the `contract`
// fast-math flag, so LLVM emits FMAs. Both are upstream utilities
// (generalizeNamedOp, interchangeGenericOp); the choice of order is the
// part written here. It is a first step of the CPU codegen (issue 10), not
// its tiled kernel; moe-compile --reference leaves it out.
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOECPULOOPORDER
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

/// The smallest static size of the loop moved innermost.
constexpr int64_t kMinInnerSize = 64;

/// The interchange that makes the output's last dim the innermost loop,
/// reductions just outside it; empty if there is nothing to gain.
SmallVector<unsigned> unitStrideOrder(linalg::LinalgOp op) {
  if (op.getNumDpsInits() != 1 || op.getNumReductionLoops() == 0)
    return {};
  AffineMap out = op.getMatchingIndexingMap(op.getDpsInitOperand(0));
  if (out.getNumResults() == 0)
    return {};
  auto last = dyn_cast<AffineDimExpr>(out.getResults().back());
  SmallVector<utils::IteratorType> iterators = op.getIteratorTypesArray();
  if (!last || iterators[last.getPosition()] != utils::IteratorType::parallel)
    return {};
  unsigned inner = last.getPosition();
  // A short static inner loop gains nothing from vectors and loses its
  // register accumulator (moeut_tiny's 8- to 32-wide heads got slower).
  SmallVector<int64_t> ranges = op.getStaticLoopRanges();
  if (!ShapedType::isDynamic(ranges[inner]) && ranges[inner] < kMinInnerSize)
    return {};
  // Not where an input would walk a dim other than its last with that
  // loop: a LayerNorm's variance, sum over d of (x[n, d] - mean[n])^2 into
  // [N], walked x with a stride of a row, and, with the rows parallel,
  // ran one parallel loop per d (412 fork-joins per LayerNorm).
  for (OpOperand *in : op.getDpsInputOperands()) {
    AffineMap map = op.getMatchingIndexingMap(in);
    if (map.getNumResults() > 1 &&
        map.dropResult(map.getNumResults() - 1).isFunctionOfDim(inner))
      return {};
  }
  // The same for a gather in the body (tensor.extract) indexed by that loop
  // in a dim other than its last.
  WalkResult stridedGather = op->walk([&](tensor::ExtractOp extract) {
    for (Value index : extract.getIndices().drop_back()) {
      auto loopIndex = index.getDefiningOp<linalg::IndexOp>();
      if (loopIndex && loopIndex.getDim() == inner)
        return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  if (stridedGather.wasInterrupted())
    return {};
  // Only where an input walks its last (contiguous) dim with that loop too:
  // a row reduction into [N] would otherwise walk its rows with a stride.
  bool unitStrideInput = llvm::any_of(op.getDpsInputOperands(), [&](OpOperand *in) {
    AffineMap map = op.getMatchingIndexingMap(in);
    return map.getNumResults() &&
           map.getResults().back() == getAffineDimExpr(inner, op.getContext());
  });
  // Or a gather in the body whose last index is that loop (com.microsoft.
  // MoE's per-slot bias rows: tensor.extract %bias[%id, linalg.index d]).
  if (!unitStrideInput) {
    op->walk([&](tensor::ExtractOp extract) {
      if (extract.getIndices().empty())
        return;
      auto index =
          extract.getIndices().back().getDefiningOp<linalg::IndexOp>();
      if (index && index.getDim() == inner)
        unitStrideInput = true;
    });
  }
  if (!unitStrideInput)
    return {};
  SmallVector<unsigned> order;
  for (unsigned d = 0; d < iterators.size(); ++d)
    if (d != inner && iterators[d] == utils::IteratorType::parallel)
      order.push_back(d);
  for (unsigned d = 0; d < iterators.size(); ++d)
    if (iterators[d] == utils::IteratorType::reduction)
      order.push_back(d);
  order.push_back(inner);
  bool identity = true;
  for (unsigned d = 0; d < order.size(); ++d)
    identity &= order[d] == d;
  if (identity)
    return {};
  return order;
}

struct MoeCpuLoopOrderPass
    : mlir::moe::impl::MoeCpuLoopOrderBase<MoeCpuLoopOrderPass> {
  using Base::Base;
  void runOnOperation() override {
    SmallVector<linalg::LinalgOp> candidates;
    getOperation()->walk([&](linalg::LinalgOp op) {
      if (!unitStrideOrder(op).empty())
        candidates.push_back(op);
    });
    IRRewriter rewriter(&getContext());
    for (linalg::LinalgOp op : candidates) {
      SmallVector<unsigned> order = unitStrideOrder(op);
      rewriter.setInsertionPoint(op);
      auto generic = dyn_cast<linalg::GenericOp>(op.getOperation());
      if (!generic) {
        FailureOr<linalg::GenericOp> g = linalg::generalizeNamedOp(rewriter, op);
        if (failed(g))
          continue;
        generic = *g;
      }
      FailureOr<linalg::GenericOp> swapped =
          linalg::interchangeGenericOp(rewriter, generic, order);
      if (failed(swapped))
        continue;
      // Multiply-adds of the body may fuse into FMAs.
      swapped->getRegion().walk([&](Operation *inner) {
        if (auto fm = dyn_cast<arith::ArithFastMathInterface>(inner))
          if (isa<arith::MulFOp, arith::AddFOp>(inner))
            inner->setAttr(fm.getFastMathAttrName(),
                           arith::FastMathFlagsAttr::get(
                               &getContext(), arith::FastMathFlags::contract));
      });
    }
  }
};

} // namespace

//===- DecomposeTreeFfn.cpp - moe.tree_ffn -> primitive moe ops ------------===//
//
//   u          = input @ w_gate                                   [N, depth]
//   w, ids     = moe.tree_route u                                 [N, S]
//   off, perm  = moe.dispatch ids                                 [P+1], [N*S]
//   result     = act(moe.grouped_matmul input, weight weights(w)) [N, Dout]
//
// The weighted reduction with unit weights sums the matrices on the path.
//
//===----------------------------------------------------------------------===//

#include "moe/Utils/BuildUtils.h"
#include "moe/Transforms/Passes.h"
#include "moe/Transforms/Transforms.h"

#include "mlir/IR/PatternMatch.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEDECOMPOSETREEFFN
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::build;

namespace {

struct DecomposeTreeFfn : OpRewritePattern<TreeFfnOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(TreeFfnOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = op.getInput();
    auto gateType = cast<RankedTensorType>(op.getWGate().getType());
    Type elementType = gateType.getElementType();
    Type idType = rewriter.getI32Type();
    int64_t depth = gateType.getDimSize(1); // static (verifier C2)
    bool path = op.getMode() == TreeMode::Path;
    int64_t slots = path ? depth + 1 : 1;
    int64_t nodes =
        path ? (int64_t(1) << (depth + 1)) - 1 : int64_t(1) << depth;

    OpFoldResult n = sizeOf(rewriter, loc, x, 0);
    Value u = contract(rewriter, loc, "nd,dj->nj", x, op.getWGate(),
                       {n, rewriter.getIndexAttr(depth)});
    auto route = TreeRouteOp::create(
        rewriter, loc, matrixType(n, slots, elementType),
        matrixType(n, slots, idType), u, op.getMode());
    auto dispatch = DispatchOp::create(
        rewriter, loc, RankedTensorType::get({nodes + 1}, idType),
        RankedTensorType::get({staticMul(n, slots)}, idType), route.getIds(),
        nodes);
    Value sum = GroupedMatmulOp::create(
        rewriter, loc, op.getType(), x, op.getWeight(), dispatch.getOffsets(),
        dispatch.getPerm(), route.getWeights());
    rewriter.replaceOp(op, activate(rewriter, loc, sum, op.getActivation()));
    return success();
  }
};

struct MoeDecomposeTreeFfnPass
    : moe::impl::MoeDecomposeTreeFfnBase<MoeDecomposeTreeFfnPass> {
  void runOnOperation() override {
    applyDecomposition(getOperation(), populateDecomposeTreeFfnPatterns);
  }
};

} // namespace

void mlir::moe::populateDecomposeTreeFfnPatterns(
    RewritePatternSet &patterns) {
  patterns.add<DecomposeTreeFfn>(patterns.getContext());
}

//===- DecomposeMot.cpp - moe.mot -> primitive moe ops ---------------------===//
//
//   logits     = input @ w_ctrl                                [B, T, E]
//   z, m       = moe.mot_mix input, logits                     [T, C, E, D], [T, C, g, E]
//   h[t,c,e]   = act(z[t,c,e] @ w1[e])                         [T, C, E, s]
//   y[t,c,e]   = h[t,c,e] @ w2[e]                              [T, C, E, D]
//   result     = moe.mot_unmix y, m                            [B, T, D]
//
//===----------------------------------------------------------------------===//

#include "moe/Utils/BuildUtils.h"
#include "moe/Transforms/Passes.h"
#include "moe/Transforms/Transforms.h"

#include "mlir/IR/PatternMatch.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEDECOMPOSEMOT
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::build;

namespace {

struct DecomposeMot : OpRewritePattern<MotOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(MotOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = op.getInput();
    Type elementType = cast<RankedTensorType>(x.getType()).getElementType();
    OpFoldResult b = sizeOf(rewriter, loc, x, 0);
    OpFoldResult t = sizeOf(rewriter, loc, x, 1);
    OpFoldResult d = sizeOf(rewriter, loc, x, 2);
    OpFoldResult e = sizeOf(rewriter, loc, op.getW1(), 0);
    OpFoldResult s = sizeOf(rewriter, loc, op.getW1(), 2);
    OpFoldResult g = rewriter.getIndexAttr(op.getGroupSize());
    OpFoldResult c = divSizes(rewriter, loc, b, g);

    Value logits =
        contract(rewriter, loc, "btd,de->bte", x, op.getWCtrl(), {b, t, e});
    auto mix = MotMixOp::create(
        rewriter, loc, tensorTypeOf({t, c, e, d}, elementType),
        tensorTypeOf({t, c, g, e}, elementType), x, logits, op.getMode(),
        op.getGroupSize(), op.getTemperature());
    Value h = contract(rewriter, loc, "tced,edj->tcej", mix.getMixed(),
                       op.getW1(), {t, c, e, s});
    h = activate(rewriter, loc, h, op.getActivation());
    Value y =
        contract(rewriter, loc, "tcej,ejo->tceo", h, op.getW2(), {t, c, e, d});
    rewriter.replaceOpWithNewOp<MotUnmixOp>(op, op.getType(), y,
                                            mix.getWeights());
    return success();
  }
};

struct MoeDecomposeMotPass
    : moe::impl::MoeDecomposeMotBase<MoeDecomposeMotPass> {
  void runOnOperation() override {
    applyDecomposition(getOperation(), populateDecomposeMotPatterns);
  }
};

} // namespace

void mlir::moe::populateDecomposeMotPatterns(RewritePatternSet &patterns) {
  patterns.add<DecomposeMot>(patterns.getContext());
}

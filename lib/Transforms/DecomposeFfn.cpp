//===- DecomposeFfn.cpp - moe.ffn -> primitive moe ops ---------------------===//
//
//   scores      = selector_input @ w_sel^T                     [N, E]
//   w, ids      = moe.route (or moe.switch_route)               [N, S]
//   off, perm   = moe.dispatch ids                              [E+1], [N*S]
//   h           = moe.grouped_matmul input, w1 act<...>         [N*S, Ge]
//   result      = moe.grouped_matmul h, w2 weights(w)           [N, D]
//
//===----------------------------------------------------------------------===//

#include "moe/Utils/BuildUtils.h"
#include "moe/Transforms/Passes.h"
#include "moe/Transforms/Transforms.h"

#include "mlir/IR/PatternMatch.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEDECOMPOSEFFN
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::build;

namespace {

struct DecomposeFfn : OpRewritePattern<FfnOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(FfnOp op,
                                PatternRewriter &rewriter) const override {
    // Each part's ops named after it (build::partLoc: "<node>.selector",
    // ".route", ".experts"), so that a profile tells them apart.
    Location base = op.getLoc(), loc = partLoc(base, "selector");
    Value x = op.getInput();
    Value xs = op.getSelectorInput() ? op.getSelectorInput() : x;
    auto xType = cast<RankedTensorType>(x.getType());
    Type elementType = xType.getElementType();
    Type idType = rewriter.getI32Type();

    // The verifier (C3) guarantees one weight has a static expert count.
    int64_t numExperts = ShapedType::kDynamic;
    for (Value w : {op.getWSel(), op.getW1(), op.getW2()})
      if (int64_t e = cast<RankedTensorType>(w.getType()).getDimSize(0);
          !ShapedType::isDynamic(e))
        numExperts = e;
    if (ShapedType::isDynamic(numExperts))
      return rewriter.notifyMatchFailure(op, "dynamic expert count");

    OpFoldResult n = sizeOf(rewriter, loc, x, 0);
    OpFoldResult hidden = sizeOf(rewriter, loc, op.getW1(), 2);
    Value scores = selectorScores(rewriter, loc, xs, op.getWSel(),
                                  {n, rewriter.getIndexAttr(numExperts)});

    // Routing: S slots per token.
    loc = partLoc(base, "route");
    Value slotWeights, ids;
    int64_t slots;
    if (std::optional<APFloat> cf = op.getCapacityFactor()) {
      slots = 1;
      auto route = SwitchRouteOp::create(
          rewriter, loc, matrixType(n, 1, elementType),
          matrixType(n, 1, idType),
          tensorTypeOf({n}, rewriter.getI1Type()), scores,
          rewriter.getF64FloatAttr(cf->convertToDouble()));
      slotWeights = route.getWeights();
      ids = route.getIds();
    } else {
      slots = op.getK();
      auto route = RouteOp::create(
          rewriter, loc, matrixType(n, slots, elementType),
          matrixType(n, slots, idType), scores, op.getGate(), op.getK(),
          /*groups=*/1);
      slotWeights = route.getWeights();
      ids = route.getIds();
    }

    int64_t numSlots = staticMul(n, slots);
    auto dispatch = DispatchOp::create(
        rewriter, loc, RankedTensorType::get({numExperts + 1}, idType),
        RankedTensorType::get({numSlots}, idType), ids, numExperts);

    // Up-projection with the activation as its epilogue: each token row
    // feeds its S slots; results in slot order.
    loc = partLoc(base, "experts");
    Value act = GroupedMatmulOp::create(
        rewriter, loc,
        RankedTensorType::get({numSlots, staticMul(hidden, 1)}, elementType), x,
        op.getW1(), dispatch.getOffsets(), dispatch.getPerm(),
        /*slot_weights=*/Value(), /*bias=*/Value(),
        op.getActivation() == Activation::Identity
            ? ActivationAttr()
            : ActivationAttr::get(rewriter.getContext(), op.getActivation()),
        /*sorted_input=*/false, /*sorted_result=*/false);

    // Down-projection reduced into token order with the slot weights.
    Value down = GroupedMatmulOp::create(
        rewriter, loc, op.getType(), act, op.getW2(), dispatch.getOffsets(),
        dispatch.getPerm(), slotWeights);
    rewriter.replaceOp(op, down);
    return success();
  }
};

struct MoeDecomposeFfnPass
    : moe::impl::MoeDecomposeFfnBase<MoeDecomposeFfnPass> {
  void runOnOperation() override {
    applyDecomposition(getOperation(), populateDecomposeFfnPatterns);
  }
};

} // namespace

void mlir::moe::populateDecomposeFfnPatterns(RewritePatternSet &patterns) {
  patterns.add<DecomposeFfn>(patterns.getContext());
}

//===- DecomposeSwitchHead.cpp - moe.switchhead -> primitive moe ops -------===//
//
// With N = B*T token rows, H heads, E experts per head and K = k:
//
//   q, k    = rope(expand(q_src @ wq)), rope(expand(k_src @ wk))  [B, T, H, dk]
//   value   = moe.route (k_src @ sel_v^T) sigmoid groups(H)       [N, H*K]
//             moe.dispatch, moe.grouped_matmul v_src, wv           [N*H, dv]
//             (rows N, N*H*K slots, reduced per head with the
//             weights viewed as [N*H, K])
//   R       = moe.attention (transposed to [B, H, T, *])          [B, H, T, dv]
//   output  = moe.route (q_src @ sel_o^T) sigmoid groups(H)       [N, H*K]
//             moe.grouped_matmul R as [N*H, dv], wo weights(ro)    [N, D]
//
// Without sel_v (E = 1) the value projection is a dense per-head contraction.
//
//===----------------------------------------------------------------------===//

#include "moe/Utils/BuildUtils.h"
#include "moe/Utils/RuntimeErrors.h"
#include "moe/Transforms/Passes.h"
#include "moe/Transforms/Transforms.h"

#include "mlir/IR/PatternMatch.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEDECOMPOSESWITCHHEAD
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::build;

namespace {

/// The decomposed layer's values: the result and, with a cache, the new
/// keys and values [B, H, T, *] to append to it.
struct SwitchHeadParts {
  Value result, newKey, newValue;
};

/// Builds the primitive ops of `op` (moe.switchhead, or moe.switchhead_cached
/// with its past keys and values [B, H, P, *]: the new tokens are at
/// positions P..P+T-1 and attend to the cache and to each other).
template <typename OpT>
FailureOr<SwitchHeadParts> buildSwitchHead(PatternRewriter &rewriter, OpT op,
                                           Value pastKey, Value pastValue) {
  // Each part's ops named after it (build::partLoc: "<node>.qk",
  // ".value_route", ".values", ".attention", ".output_route",
  // ".output"), so that a profile tells them apart.
  Location base = op.getLoc(), loc = base;
  auto wvType = cast<RankedTensorType>(op.getWv().getType());
  Type elementType = wvType.getElementType();
  Type idType = rewriter.getI32Type();
  int64_t heads = op.getNumHeads(), topK = op.getK();

  // The verifier (C4) guarantees a static H*E in one of these.
  int64_t headExperts = ShapedType::kDynamic;
  for (Value w : {op.getWv(), op.getWo(), op.getSelO(), op.getSelV()})
    if (w)
      if (int64_t he = cast<RankedTensorType>(w.getType()).getDimSize(0);
          !ShapedType::isDynamic(he))
        headExperts = he;
  if (ShapedType::isDynamic(headExperts))
    return failure(); // the verifier (C4) rules this out

  auto idx = [&](int64_t v) -> OpFoldResult {
    return rewriter.getIndexAttr(v);
  };
  OpFoldResult b = sizeOf(rewriter, loc, op.getQSrc(), 0);
  OpFoldResult t = sizeOf(rewriter, loc, op.getQSrc(), 1);
  OpFoldResult d = sizeOf(rewriter, loc, op.getQSrc(), 2);
  OpFoldResult n = mulSizes(rewriter, loc, b, t);
  OpFoldResult qkWidth = sizeOf(rewriter, loc, op.getWq(), 1);
  OpFoldResult dk = divSizes(rewriter, loc, qkWidth, idx(heads));
  OpFoldResult dv = sizeOf(rewriter, loc, op.getWv(), 2);

  auto rows = [&](Value src) {
    return collapse(rewriter, loc, src, {{0, 1}, {2}});
  };
  // k_src and v_src have q_src's B, T and D: the verifier checks the
  // static sizes, and dynamic ones are checked here at run time (a
  // mismatch is reported and never read past).
  auto likeQueries = [&](Value src) {
    if (src == op.getQSrc())
      return src;
    declareErrorHook(rewriter, op);
    OpFoldResult sizes[] = {b, t, d};
    for (int64_t i = 0; i < 3; ++i)
      src = requireSize(rewriter, loc, src, i, sizes[i], kErrorShapeMismatch);
    return src;
  };
  Value qRows = rows(op.getQSrc()), kRows = rows(likeQueries(op.getKSrc())),
        vRows = rows(likeQueries(op.getVSrc()));

  // With a cache, the new tokens' positions start after it; the value
  // cache must have as many positions as the key cache (checked at run
  // time when dynamic, C8).
  if (pastKey) {
    declareErrorHook(rewriter, op);
    pastValue =
        requireSize(rewriter, loc, pastValue, 2,
                    sizeOf(rewriter, loc, pastKey, 2), kErrorShapeMismatch);
  }
  Value offset = pastKey
                     ? Value(tensor::DimOp::create(rewriter, loc, pastKey, 2))
                     : Value();
  // Queries and keys: [N, H*dk] -> [B, T, H, dk] -> rope -> [B, T, H, dk].
  auto project = [&](Value src, Value w) {
    Value flat = contract(rewriter, loc, "nd,dj->nj", src, w, {n, qkWidth});
    Value heads4 =
        expand(rewriter, loc, flat, {{0, 1}, {2, 3}}, {b, t, idx(heads), dk});
    if (op.getRotateFraction().convertToDouble() > 0.0)
      heads4 = RopeOp::create(rewriter, loc, heads4.getType(), heads4, offset,
                              op.getRotateFraction(), op.getRopeBase());
    return heads4;
  };
  // [B, T, H, d] -> [B, H, T, d] for the attention; with a cache, the
  // same rows are the ones to append to it (head-major as the cache).
  // The attention reads the cache ([B, H, P, d]) where it is
  // (moe.attention's `past`), so it is never copied next to the new rows.
  auto withCache = [&](Value fresh, Value past) -> std::pair<Value, Value> {
    Value heads4 = transpose(rewriter, loc, fresh, {0, 2, 1, 3});
    return {heads4, past ? heads4 : Value()};
  };
  loc = partLoc(base, "qk");
  Value q = transpose(rewriter, loc, project(qRows, op.getWq()), {0, 2, 1, 3});
  auto [k, newKey] = withCache(project(kRows, op.getWk()), pastKey);

  // Per-head top-k routing with sigmoid gates over `sel` ([H*E, D]).
  auto routeHeads = [&](Value src, Value sel) {
    Value scores =
        selectorScores(rewriter, loc, src, sel, {n, idx(headExperts)});
    auto route =
        RouteOp::create(rewriter, loc, matrixType(n, heads * topK, elementType),
                        matrixType(n, heads * topK, idType), scores,
                        GateKind::Sigmoid, topK, heads);
    auto dispatch = DispatchOp::create(
        rewriter, loc, RankedTensorType::get({headExperts + 1}, idType),
        RankedTensorType::get({staticMul(n, heads * topK)}, idType),
        route.getIds(), headExperts);
    return std::make_pair(route, dispatch);
  };

  // Values: [N*H, dv] -> [B, T, H, dv] -> [B, H, T, dv].
  Value values;
  if (Value selV = op.getSelV()) {
    loc = partLoc(base, "value_route");
    auto [route, dispatch] = routeHeads(kRows, selV);
    loc = partLoc(base, "values");
    // View the slot weights [N, H*K] as [N*H, K]: one reduction per head.
    Value perHead = collapse(rewriter, loc,
                             expand(rewriter, loc, route.getWeights(),
                                    {{0}, {1, 2}}, {n, idx(heads), idx(topK)}),
                             {{0, 1}, {2}});
    values = GroupedMatmulOp::create(
        rewriter, loc,
        RankedTensorType::get({staticMul(n, heads), staticMul(dv, 1)},
                              elementType),
        vRows, op.getWv(), dispatch.getOffsets(), dispatch.getPerm(), perHead);
  } else {
    // E = 1: dense per-head projection wv[h].
    loc = partLoc(base, "values");
    Value dense = contract(rewriter, loc, "nd,hdj->nhj", vRows, op.getWv(),
                           {n, idx(heads), dv});
    values = collapse(rewriter, loc, dense, {{0, 1}, {2}});
  }
  auto [v, newValue] = withCache(
      expand(rewriter, loc, values, {{0, 1, 2}, {3}}, {b, t, idx(heads), dv}),
      pastValue);

  loc = partLoc(base, "attention");
  Value attn = AttentionOp::create(
      rewriter, loc, tensorTypeOf({b, idx(heads), t, dv}, elementType), q, k, v,
      pastKey, pastValue, /*mask=*/Value(), /*sinks=*/Value(), op.getCausal(),
      /*scale=*/FloatAttr());
  // [B, H, T, dv] -> [B, T, H, dv] -> [N*H, dv].
  Value attnRows =
      collapse(rewriter, loc, transpose(rewriter, loc, attn, {0, 2, 1, 3}),
               {{0, 1, 2}, {3}});

  // Output projection: N*H rows, each feeding its head's K slots, reduced
  // into token rows with the output gates.
  loc = partLoc(base, "output_route");
  auto [route, dispatch] = routeHeads(qRows, op.getSelO());
  loc = partLoc(base, "output");
  Value out = GroupedMatmulOp::create(
      rewriter, loc, tensorTypeOf({n, d}, elementType), attnRows, op.getWo(),
      dispatch.getOffsets(), dispatch.getPerm(), route.getWeights());
  Value result = expand(rewriter, loc, out, {{0, 1}, {2}}, {b, t, d});
  return SwitchHeadParts{result, newKey, newValue};
}

/// `v` with the type of `like` (a cast where the built value is less
/// static).
Value castTo(PatternRewriter &rewriter, Location loc, Value v, Value like) {
  if (v.getType() == like.getType())
    return v;
  return tensor::CastOp::create(rewriter, loc, like.getType(), v);
}

struct DecomposeSwitchHead : OpRewritePattern<SwitchHeadOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(SwitchHeadOp op,
                                PatternRewriter &rewriter) const override {
    FailureOr<SwitchHeadParts> parts =
        buildSwitchHead(rewriter, op, Value(), Value());
    if (failed(parts))
      return rewriter.notifyMatchFailure(op, "dynamic expert count");
    rewriter.replaceOp(
        op, castTo(rewriter, op.getLoc(), parts->result, op.getResult()));
    return success();
  }
};

struct DecomposeSwitchHeadCached : OpRewritePattern<SwitchHeadCachedOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(SwitchHeadCachedOp op,
                                PatternRewriter &rewriter) const override {
    FailureOr<SwitchHeadParts> parts = buildSwitchHead(
        rewriter, op, op.getPastKey(), op.getPastValue());
    if (failed(parts))
      return rewriter.notifyMatchFailure(op, "dynamic expert count");
    Location loc = op.getLoc();
    rewriter.replaceOp(
        op, ValueRange{castTo(rewriter, loc, parts->result, op.getResult()),
                       castTo(rewriter, loc, parts->newKey, op.getNewKey()),
                       castTo(rewriter, loc, parts->newValue,
                              op.getNewValue())});
    return success();
  }
};

struct MoeDecomposeSwitchHeadPass
    : moe::impl::MoeDecomposeSwitchHeadBase<MoeDecomposeSwitchHeadPass> {
  void runOnOperation() override {
    applyDecomposition(getOperation(), populateDecomposeSwitchHeadPatterns);
  }
};

} // namespace

void mlir::moe::populateDecomposeSwitchHeadPatterns(
    RewritePatternSet &patterns) {
  patterns.add<DecomposeSwitchHead, DecomposeSwitchHeadCached>(
      patterns.getContext());
}

void mlir::moe::populateDecomposeCompositePatterns(
    RewritePatternSet &patterns) {
  populateDecomposeFfnPatterns(patterns);
  populateDecomposeTreeFfnPatterns(patterns);
  populateDecomposeSwitchHeadPatterns(patterns);
  populateDecomposeMotPatterns(patterns);
}

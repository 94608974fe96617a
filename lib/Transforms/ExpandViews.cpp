//===- ExpandViews.cpp - dynamic expand_shape views as strided casts ------===//
//
// A computed ONNX Reshape (sizes read from Shape at run time) is a collapse
// to one dim and an expand to the new sizes; a head split [B, T, H, dk] or
// Mixture of Tokens' grouping [B / g, g, T, D] then has two or more dynamic
// sizes in the expand's one group. Upstream's expand-strided-metadata (MLIR
// 22.1.8) segfaults on such a memref.expand_shape: it builds the result's
// strides from static sizes only. The view itself is simple: every dim of a
// group is strided by the source dim's stride times the sizes after it. So
// each such expand becomes a memref.reinterpret_cast of its source's base
// buffer with those strides, which expand-strided-metadata leaves alone.
// Written here because upstream has no pattern for it; until this pass,
// convert-moe-to-linalg copied every such expand element by element.
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"
#include "moe/Transforms/Transforms.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEEXPANDVIEWS
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

Value moe::expandAsReinterpretCast(OpBuilder &b, memref::ExpandShapeOp expand) {
  Location loc = expand.getLoc();
  auto meta = memref::ExtractStridedMetadataOp::create(b, loc, expand.getSrc());
  SmallVector<OpFoldResult> sourceStrides = meta.getConstifiedMixedStrides();
  SmallVector<OpFoldResult> sizes = expand.getMixedOutputShape();
  // A rank-0 source (expanded to unit dims) has no groups: unit strides.
  SmallVector<OpFoldResult> strides(sizes.size(), b.getIndexAttr(1));
  AffineExpr s0, s1;
  bindSymbols(b.getContext(), s0, s1);
  for (auto [i, group] : llvm::enumerate(expand.getReassociationIndices())) {
    OpFoldResult stride = sourceStrides[i];
    for (int64_t d : llvm::reverse(group)) {
      strides[d] = stride;
      stride = affine::makeComposedFoldedAffineApply(b, loc, s0 * s1,
                                                     {stride, sizes[d]});
    }
  }
  OpFoldResult offset = meta.getConstifiedMixedOffset();
  auto staticOf = [](OpFoldResult v) {
    std::optional<int64_t> c = getConstantIntValue(v);
    return c ? *c : ShapedType::kDynamic;
  };
  SmallVector<int64_t> staticStrides = llvm::map_to_vector(strides, staticOf);
  // The expand's own type where what it states statically is what was
  // computed here (always, but for values the folds above left dynamic):
  // an identity layout stays one, so that a memref.copy of the view is
  // still a memcpy, not a strided memrefCopy.
  MemRefType type = expand.getResultType();
  SmallVector<int64_t> typeStrides;
  int64_t typeOffset;
  auto agrees = [](int64_t stated, int64_t computed) {
    return ShapedType::isDynamic(stated) || stated == computed;
  };
  if (failed(type.getStridesAndOffset(typeStrides, typeOffset)) ||
      !agrees(typeOffset, staticOf(offset)) ||
      !llvm::all_of(llvm::zip_equal(typeStrides, staticStrides), [&](auto p) {
        return agrees(std::get<0>(p), std::get<1>(p));
      })) {
    MemRefType source = expand.getSrcType();
    type = MemRefType::get(
        type.getShape(), source.getElementType(),
        StridedLayoutAttr::get(b.getContext(), staticOf(offset), staticStrides),
        source.getMemorySpace());
  }
  return memref::ReinterpretCastOp::create(b, loc, type, meta.getBaseBuffer(),
                                           offset, sizes, strides);
}

namespace {

/// A memref.expand_shape with two or more dynamic sizes in one group, as
/// expandAsReinterpretCast (cast to the expand's type where that could not
/// keep it).
struct DynamicExpandAsReinterpretCast
    : OpRewritePattern<memref::ExpandShapeOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(memref::ExpandShapeOp op,
                                PatternRewriter &b) const override {
    MemRefType out = op.getResultType();
    bool crashes = llvm::any_of(op.getReassociationIndices(),
                                [&](const ReassociationIndices &g) {
                                  return llvm::count_if(g, [&](int64_t d) {
                                           return out.isDynamicDim(d);
                                         }) > 1;
                                });
    if (!crashes)
      return b.notifyMatchFailure(op, "no group with two dynamic sizes");
    Value cast = moe::expandAsReinterpretCast(b, op);
    if (cast.getType() != out)
      cast = memref::CastOp::create(b, op.getLoc(), out, cast);
    b.replaceOp(op, cast);
    return success();
  }
};

struct MoeExpandViewsPass
    : mlir::moe::impl::MoeExpandViewsBase<MoeExpandViewsPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    moe::populateExpandViewsPatterns(patterns);
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace

void moe::populateExpandViewsPatterns(RewritePatternSet &patterns) {
  patterns.add<DynamicExpandAsReinterpretCast>(patterns.getContext());
}

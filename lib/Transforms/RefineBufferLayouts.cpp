//===- RefineBufferLayouts.cpp - static strides through scf.if results ----===//
//
// One-shot bufferization gives an scf.if whose branches yield buffers of
// different layouts (a view of a cache, strided<[?, 328, 82, 1]>, and a
// fresh buffer of zeros, the identity layout: every run-time size check of
// build::requireSize is such an if) the fully dynamic layout
// strided<[?, ?, ?, ?], offset: ?>. Everything downstream then reads the
// buffer with unknown strides: the register tiles cannot load a row as one
// vector (a vector.transfer_read with a dynamic innermost stride becomes
// scalar loads), and moe-cpu-tile-contractions' dot products do not apply.
//
// This pass gives such an if the most static layout that every yielded
// buffer has (looking through memref.cast): per dim, a stride that all
// agree on is kept static, likewise the offset. Users keep the old type
// through a memref.cast, which the consumers' folders (linalg ops,
// memref.dim, subviews) fold away. Nothing upstream refines scf.if result
// layouts after bufferization.
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"
#include "moe/Transforms/Transforms.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEREFINEBUFFERLAYOUTS
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

/// `v` without the memref.casts around it.
Value castSource(Value v) {
  while (auto cast = v.getDefiningOp<memref::CastOp>())
    v = cast.getSource();
  return v;
}

/// The most static layout of `type`'s shape that every one of `sources`
/// has, or nothing when it is no more static than `type`'s own.
std::optional<MemRefType> commonLayout(MemRefType type,
                                       ArrayRef<Value> sources) {
  SmallVector<int64_t> strides;
  int64_t offset;
  if (failed(type.getStridesAndOffset(strides, offset)))
    return std::nullopt;
  SmallVector<int64_t> meet;
  std::optional<int64_t> meetOffset;
  for (auto [i, source] : llvm::enumerate(sources)) {
    auto sourceType = dyn_cast<MemRefType>(source.getType());
    if (!sourceType || sourceType.getRank() != type.getRank() ||
        sourceType.getElementType() != type.getElementType() ||
        sourceType.getMemorySpace() != type.getMemorySpace())
      return std::nullopt;
    SmallVector<int64_t> s;
    int64_t o;
    if (failed(sourceType.getStridesAndOffset(s, o)))
      return std::nullopt;
    if (i == 0) {
      meet = s;
      meetOffset = o;
      continue;
    }
    for (auto [m, x] : llvm::zip(meet, s))
      if (m != x)
        m = ShapedType::kDynamic;
    if (*meetOffset != o)
      meetOffset = ShapedType::kDynamic;
  }
  if (meet.empty() && type.getRank() != 0)
    return std::nullopt;
  // No more static than the current layout: nothing to gain.
  // (A static offset or stride of the current type that the sources do not
  // all share: leave the if alone.)
  if (!ShapedType::isDynamic(offset) && *meetOffset != offset)
    return std::nullopt;
  bool gains = *meetOffset != offset;
  for (auto [m, s] : llvm::zip(meet, strides)) {
    if (m == s)
      continue;
    if (!ShapedType::isDynamic(s))
      return std::nullopt; // the sources disagree with a static stride
    gains |= !ShapedType::isDynamic(m);
  }
  if (!gains)
    return std::nullopt;
  auto layout =
      StridedLayoutAttr::get(type.getContext(), *meetOffset, meet);
  auto refined = MemRefType::get(type.getShape(), type.getElementType(),
                                 layout, type.getMemorySpace());
  for (Value source : sources)
    if (!memref::CastOp::areCastCompatible(source.getType(), refined))
      return std::nullopt;
  return refined;
}

struct RefineIfResultLayouts : OpRewritePattern<scf::IfOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(scf::IfOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getNumResults() == 0 || op.getElseRegion().empty())
      return failure();
    scf::YieldOp thenYield = op.thenYield(), elseYield = op.elseYield();
    SmallVector<Type> types(op.getResultTypes());
    SmallVector<unsigned> refined;
    for (auto [i, type] : llvm::enumerate(op.getResultTypes())) {
      auto memref = dyn_cast<MemRefType>(type);
      if (!memref)
        continue;
      Value sources[] = {castSource(thenYield.getOperand(i)),
                         castSource(elseYield.getOperand(i))};
      if (std::optional<MemRefType> better = commonLayout(memref, sources)) {
        types[i] = *better;
        refined.push_back(i);
      }
    }
    if (refined.empty())
      return failure();
    for (scf::YieldOp yield : {thenYield, elseYield}) {
      rewriter.setInsertionPoint(yield);
      for (unsigned i : refined) {
        Value source = castSource(yield.getOperand(i));
        Value value = source.getType() == types[i]
                          ? source
                          : memref::CastOp::create(rewriter, yield.getLoc(),
                                                   types[i], source)
                                .getResult();
        rewriter.modifyOpInPlace(
            yield, [&] { yield->setOperand(i, value); });
      }
    }
    rewriter.setInsertionPoint(op);
    auto newIf = scf::IfOp::create(rewriter, op.getLoc(), types,
                                   op.getCondition(), /*addThenBlock=*/false,
                                   /*addElseBlock=*/false);
    newIf->setDiscardableAttrs(op->getDiscardableAttrDictionary());
    rewriter.inlineRegionBefore(op.getThenRegion(), newIf.getThenRegion(),
                                newIf.getThenRegion().end());
    rewriter.inlineRegionBefore(op.getElseRegion(), newIf.getElseRegion(),
                                newIf.getElseRegion().end());
    rewriter.setInsertionPointAfter(newIf);
    SmallVector<Value> results(newIf.getResults());
    for (unsigned i : refined)
      results[i] = memref::CastOp::create(rewriter, op.getLoc(),
                                          op.getResultTypes()[i], results[i]);
    rewriter.replaceOp(op, results);
    return success();
  }
};

struct MoeRefineBufferLayoutsPass
    : mlir::moe::impl::MoeRefineBufferLayoutsBase<MoeRefineBufferLayoutsPass> {
  using Base::Base;
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    moe::populateRefineBufferLayoutsPatterns(patterns);
    // memref.cast's own canonicalizations, so that chains of casts and
    // casts into consumers fold.
    memref::CastOp::getCanonicalizationPatterns(patterns, &getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace

void moe::populateRefineBufferLayoutsPatterns(RewritePatternSet &patterns) {
  patterns.add<RefineIfResultLayouts>(patterns.getContext());
}

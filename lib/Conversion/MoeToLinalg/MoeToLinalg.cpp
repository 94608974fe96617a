//===- MoeToLinalg.cpp - moe primitives -> linalg, scf, tensor -------------===//
//
// Why hand-written: routing (top-k), the counting sort and the segment-wise
// grouped matmul are data-dependent gathers and scatters that no upstream op
// expresses; each lowering builds them from linalg.generic, linalg.matmul,
// tensor.extract/insert and scf.for, so upstream bufferization and lowering
// take it from there. Data errors found at run time (expert ids outside
// [0, E)) are reported to the runtime and clamped (build::checkedIndex).
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/MoeToLinalg/MoeToLinalg.h"
#include "moe/Conversion/Passes.h"
#include "moe/Utils/BuildUtils.h"
#include "moe/Utils/RuntimeErrors.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"
#include "llvm/Support/MathExtras.h"

#include <cmath>
#include <functional>
#include <limits>

namespace mlir::moe {
#define GEN_PASS_DEF_CONVERTMOETOLINALG
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::build;

namespace {

RankedTensorType typeOf(Value v) { return cast<RankedTensorType>(v.getType()); }

void yield(OpBuilder &b, Location loc, Value v) {
  linalg::YieldOp::create(b, loc, ValueRange{v});
}

Value fconst(OpBuilder &b, Location loc, Type t, double v) {
  return arith::ConstantOp::create(b, loc, b.getFloatAttr(t, v));
}

Value idx(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantIndexOp::create(b, loc, v);
}

Value toIndex(OpBuilder &b, Location loc, Value v) {
  return arith::IndexCastOp::create(b, loc, b.getIndexType(), v);
}

/// Elementwise map of `inputs` (same shape as the first) with `fn`.
Value mapElements(OpBuilder &b, Location loc, ValueRange inputs, Type elt,
                  function_ref<Value(OpBuilder &, Location, ValueRange)> fn) {
  int64_t rank = typeOf(inputs[0]).getRank();
  Value init = emptyTensor(b, loc, tensor::getMixedSizes(b, loc, inputs[0]),
                           elt);
  SmallVector<AffineMap> maps(inputs.size() + 1,
                              b.getMultiDimIdentityMap(rank));
  return linalg::GenericOp::create(
             b, loc, TypeRange{init.getType()}, inputs, ValueRange{init},
             maps,
             SmallVector<utils::IteratorType>(rank,
                                              utils::IteratorType::parallel),
             [&](OpBuilder &nb, Location nl, ValueRange a) {
               yield(nb, nl, fn(nb, nl, a.drop_back()));
             })
      .getResult(0);
}

/// Reduction of `x` along `axis` to a tensor with that dim of size 1.
Value reduceKeep(OpBuilder &b, Location loc, Value x, int64_t axis,
                 bool isMax) {
  RankedTensorType t = typeOf(x);
  int64_t rank = t.getRank();
  MLIRContext *ctx = b.getContext();
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, loc, x);
  sizes[axis] = b.getIndexAttr(1);
  Type elt = t.getElementType();
  Value start =
      isMax ? Value(arith::ConstantOp::create(
                  b, loc,
                  b.getFloatAttr(elt, APFloat::getInf(
                                          cast<FloatType>(elt)
                                              .getFloatSemantics(),
                                          true))))
            : fconst(b, loc, elt, 0.0);
  Value init = linalg::FillOp::create(b, loc, start,
                                      emptyTensor(b, loc, sizes, elt))
                   .getResult(0);
  SmallVector<AffineExpr> out;
  for (int64_t d = 0; d < rank; ++d)
    out.push_back(d == axis ? getAffineConstantExpr(0, ctx)
                            : getAffineDimExpr(d, ctx));
  SmallVector<utils::IteratorType> it(rank, utils::IteratorType::parallel);
  it[axis] = utils::IteratorType::reduction;
  return linalg::GenericOp::create(
             b, loc, TypeRange{init.getType()}, ValueRange{x},
             ValueRange{init},
             SmallVector<AffineMap>{b.getMultiDimIdentityMap(rank),
                                    AffineMap::get(rank, 0, out, ctx)},
             it,
             [&](OpBuilder &nb, Location nl, ValueRange a) {
               yield(nb, nl,
                     isMax ? Value(arith::MaximumFOp::create(nb, nl, a[0], a[1]))
                           : Value(arith::AddFOp::create(nb, nl, a[0], a[1])));
             })
      .getResult(0);
}

/// Elementwise op of x with a keep-dims reduction r (broadcast along axis).
Value withReduced(OpBuilder &b, Location loc, Value x, Value r, int64_t axis,
                  function_ref<Value(OpBuilder &, Location, Value, Value)> fn) {
  RankedTensorType t = typeOf(x);
  int64_t rank = t.getRank();
  MLIRContext *ctx = b.getContext();
  SmallVector<AffineExpr> rexprs;
  for (int64_t d = 0; d < rank; ++d)
    rexprs.push_back(d == axis ? getAffineConstantExpr(0, ctx)
                               : getAffineDimExpr(d, ctx));
  Value init = emptyTensor(b, loc, tensor::getMixedSizes(b, loc, x),
                           t.getElementType());
  return linalg::GenericOp::create(
             b, loc, TypeRange{init.getType()}, ValueRange{x, r},
             ValueRange{init},
             SmallVector<AffineMap>{b.getMultiDimIdentityMap(rank),
                                    AffineMap::get(rank, 0, rexprs, ctx),
                                    b.getMultiDimIdentityMap(rank)},
             SmallVector<utils::IteratorType>(rank,
                                              utils::IteratorType::parallel),
             [&](OpBuilder &nb, Location nl, ValueRange a) {
               yield(nb, nl, fn(nb, nl, a[0], a[1]));
             })
      .getResult(0);
}

/// Numerically stable softmax along `axis`.
Value softmax(OpBuilder &b, Location loc, Value x, int64_t axis) {
  Value max = reduceKeep(b, loc, x, axis, /*isMax=*/true);
  Value e = withReduced(b, loc, x, max, axis,
                        [](OpBuilder &nb, Location nl, Value v, Value m) {
                          return math::ExpOp::create(
                              nb, nl, arith::SubFOp::create(nb, nl, v, m));
                        });
  Value sum = reduceKeep(b, loc, e, axis, /*isMax=*/false);
  return withReduced(b, loc, e, sum, axis,
                     [](OpBuilder &nb, Location nl, Value v, Value s) {
                       return arith::DivFOp::create(nb, nl, v, s);
                     });
}

/// Softmax of each row of the [rows, cols] `x` over its columns and one more
/// logit, the scalar `sink`, whose probability is left out: exp(x - m) /
/// (sum exp(x - m) + exp(sink - m)), m the maximum of the row and the sink.
static Value softmaxWithSink(OpBuilder &b, Location loc, Value x, Value sink) {
  Type elt = typeOf(x).getElementType();
  Value max =
      mapElements(b, loc, {reduceKeep(b, loc, x, 1, /*isMax=*/true)}, elt,
                  [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                    return arith::MaximumFOp::create(nb, nl, a[0], sink);
                  });
  Value e = withReduced(
      b, loc, x, max, 1, [](OpBuilder &nb, Location nl, Value v, Value m) {
        return math::ExpOp::create(nb, nl, arith::SubFOp::create(nb, nl, v, m));
      });
  Value sum =
      mapElements(b, loc, {reduceKeep(b, loc, e, 1, /*isMax=*/false), max}, elt,
                  [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                    Value own = math::ExpOp::create(
                        nb, nl, arith::SubFOp::create(nb, nl, sink, a[1]));
                    return arith::AddFOp::create(nb, nl, a[0], own);
                  });
  return withReduced(b, loc, e, sum, 1,
                     [](OpBuilder &nb, Location nl, Value v, Value s) {
                       return arith::DivFOp::create(nb, nl, v, s);
                     });
}

Value sigmoid(OpBuilder &b, Location loc, Value x) {
  return mapElements(b, loc, {x}, typeOf(x).getElementType(),
                     [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                       Type t = a[0].getType();
                       Value e = math::ExpOp::create(
                           nb, nl, arith::NegFOp::create(nb, nl, a[0]));
                       return arith::DivFOp::create(
                           nb, nl, fconst(nb, nl, t, 1.0),
                           arith::AddFOp::create(nb, nl, fconst(nb, nl, t, 1.0),
                                                 e));
                     });
}

/// int64 index tensor -> the op's id element type.
Value castIds(OpBuilder &b, Location loc, Value ids, Type idType) {
  if (typeOf(ids).getElementType() == idType)
    return ids;
  return mapElements(b, loc, {ids}, idType,
                     [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                       return arith::TruncIOp::create(nb, nl, idType, a[0]);
                     });
}

/// `v` as `type` (a tensor.cast when the op's declared result type is more
/// or less static than what the computation inferred).
Value castTo(OpBuilder &b, Location loc, Value v, Type type) {
  return checkedCast(b, loc, v, type, kErrorShapeMismatch);
}

//===----------------------------------------------------------------------===//
// Routing
//===----------------------------------------------------------------------===//

void replaceRoute(PatternRewriter &b, RouteOp op, Value weights,
                  Value indices, OpFoldResult e);

struct LowerRoute : OpRewritePattern<RouteOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(RouteOp op, PatternRewriter &b) const override {
    Location loc = op.getLoc();
    Value scores = op.getScores();
    int64_t groups = op.getGroups(), k = op.getK();
    OpFoldResult n = tensor::getMixedSize(b, loc, scores, 0);
    OpFoldResult cols = tensor::getMixedSize(b, loc, scores, 1);
    OpFoldResult e = divSizes(b, loc, cols, b.getIndexAttr(groups));
    Value s3 = expand(b, loc, scores, {{0}, {1, 2}},
                      {n, b.getIndexAttr(groups), e});
    Value ranked = op.getGate() == GateKind::Softmax ? softmax(b, loc, s3, 2)
                                                     : s3;
    auto [values, indices] = topK(b, loc, ranked, k, 2, /*largest=*/true);
    Value weights = values;
    if (op.getGate() == GateKind::Sigmoid)
      weights = sigmoid(b, loc, values);
    else if (op.getGate() == GateKind::TopkSoftmax)
      weights = softmax(b, loc, values, 2);
    replaceRoute(b, op, weights, indices, e);
    return success();
  }
};

/// Replaces `op` by the [N, G, k] `weights` and group-local int64
/// `indices` of its selection, as [N, G k] with global ids g E + e.
void replaceRoute(PatternRewriter &b, RouteOp op, Value weights,
                  Value indices, OpFoldResult e) {
  Location loc = op.getLoc();
  Value eIdx = getValueOrCreateConstantIndexOp(b, loc, e);
  Value eI64 = arith::IndexCastOp::create(b, loc, b.getI64Type(), eIdx);
  Value ids = mapElements(
      b, loc, {indices}, b.getI64Type(),
      [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
        Value g = arith::IndexCastOp::create(
            nb, nl, nb.getI64Type(), linalg::IndexOp::create(nb, nl, 1));
        return arith::AddIOp::create(nb, nl, a[0],
                                     arith::MulIOp::create(nb, nl, g, eI64));
      });
  Value w2 = collapse(b, loc, weights, {{0}, {1, 2}});
  Value i2 = collapse(b, loc, castIds(b, loc, ids,
                                      typeOf(op.getIds()).getElementType()),
                      {{0}, {1, 2}});
  b.replaceOp(op, {castTo(b, loc, w2, op.getWeights().getType()),
                   castTo(b, loc, i2, op.getIds().getType())});
}

/// moe.route in one loop over its rows (convert-moe-to-linalg{fuse-routing}):
/// each iteration ranks its row of scores (the softmax gate: the row's
/// maximum, exponentials, sum and quotients), selects the k best with
/// topK's walk, and applies the gate to the k selected values (sigmoid,
/// or the softmax over them), all on the row's buffer while it is in
/// cache. The reference's form makes one pass over the [N, G E] scores per
/// step (four for the softmax, a copy, the selection, the gate). Every
/// element's arithmetic is the reference's, in the same order (a row's
/// maximum and sum run over its columns in index order, as the reference's
/// reductions do), so the bits are the same.
struct LowerRouteFused : OpRewritePattern<RouteOp> {
  LowerRouteFused(MLIRContext *ctx) : OpRewritePattern(ctx, /*benefit=*/2) {}
  LogicalResult matchAndRewrite(RouteOp op, PatternRewriter &b) const override {
    Location loc = op.getLoc();
    Value scores = op.getScores();
    auto floatType = dyn_cast<FloatType>(typeOf(scores).getElementType());
    int64_t groups = op.getGroups(), k = op.getK();
    if (!floatType || k < 1)
      return failure();
    OpFoldResult n = tensor::getMixedSize(b, loc, scores, 0);
    OpFoldResult cols = tensor::getMixedSize(b, loc, scores, 1);
    OpFoldResult e = divSizes(b, loc, cols, b.getIndexAttr(groups));
    Value s3 = expand(b, loc, scores, {{0}, {1, 2}},
                      {n, b.getIndexAttr(groups), e});
    GateKind gate = op.getGate();
    Value ck = idx(b, loc, k);
    auto c = [](OpBuilder &nb, Location nl, int64_t v) {
      return arith::ConstantIndexOp::create(nb, nl, v).getResult();
    };
    auto at = [&](OpBuilder &nb, Location nl, Value row, Value col) {
      return tensor::ExtractOp::create(nb, nl, row,
                                       ValueRange{c(nb, nl, 0), col})
          .getResult();
    };
    auto put = [&](OpBuilder &nb, Location nl, Value v, Value row, Value col) {
      return tensor::InsertOp::create(nb, nl, v, row,
                                      ValueRange{c(nb, nl, 0), col})
          .getResult();
    };
    // Columns [from, from + count) of `row` set to fn(j, the row as it
    // stands), j = 0, 1, ...: no value carried from one to the next, so
    // that the C compiler can vectorize the loop.
    using ColumnFn = function_ref<Value(OpBuilder &, Location, Value, Value)>;
    auto rewriteCols = [&](OpBuilder &nb, Location nl, Value row, Value from,
                           Value count, ColumnFn fn) -> Value {
      return scf::ForOp::create(
                 nb, nl, c(nb, nl, 0), count, c(nb, nl, 1), ValueRange{row},
                 [&](OpBuilder &lb, Location ll, Value j, ValueRange it) {
                   Value colJ = arith::AddIOp::create(lb, ll, from, j);
                   scf::YieldOp::create(
                       lb, ll,
                       ValueRange{put(lb, ll, fn(lb, ll, j, it[0]), it[0],
                                      colJ)});
                 })
          .getResult(0);
    };
    // A scalar folded over j = 0 .. count - 1 in order: acc = fn(j, acc).
    auto fold = [&](OpBuilder &nb, Location nl, Value count, Value init,
                    ColumnFn fn) -> Value {
      return scf::ForOp::create(
                 nb, nl, c(nb, nl, 0), count, c(nb, nl, 1), ValueRange{init},
                 [&](OpBuilder &lb, Location ll, Value j, ValueRange it) {
                   scf::YieldOp::create(lb, ll,
                                        ValueRange{fn(lb, ll, j, it[0])});
                 })
          .getResult(0);
    };
    // The softmax of `count` values, get(j, the row as it stands), into
    // columns [to, to + count) of `row`, as the reference computes it: the
    // maximum (from -inf, in column order), exp(v - max), their sum (from
    // 0, in column order), each divided by the sum. The exponentials have a
    // loop of their own, apart from the sum's chain, so that it vectorizes.
    auto softmaxInto = [&](OpBuilder &nb, Location nl, Value row, Value to,
                           Value count, ColumnFn get) -> Value {
      Value negInf = arith::ConstantOp::create(
          nb, nl,
          nb.getFloatAttr(floatType, APFloat::getInf(
                                         floatType.getFloatSemantics(), true)));
      Value max = fold(nb, nl, count, negInf,
                       [&](OpBuilder &lb, Location ll, Value j, Value acc) {
                         return arith::MaximumFOp::create(
                                    lb, ll, get(lb, ll, j, row), acc)
                             .getResult();
                       });
      Value exps = rewriteCols(
          nb, nl, row, to, count,
          [&](OpBuilder &lb, Location ll, Value j, Value cur) {
            return math::ExpOp::create(
                       lb, ll,
                       arith::SubFOp::create(lb, ll, get(lb, ll, j, cur), max))
                .getResult();
          });
      Value sum = fold(nb, nl, count, fconst(nb, nl, floatType, 0.0),
                       [&](OpBuilder &lb, Location ll, Value j, Value acc) {
                         Value colJ = arith::AddIOp::create(lb, ll, to, j);
                         return arith::AddFOp::create(
                                    lb, ll, at(lb, ll, exps, colJ), acc)
                             .getResult();
                       });
      return rewriteCols(nb, nl, exps, to, count,
                         [&](OpBuilder &lb, Location ll, Value j, Value cur) {
                           Value colJ = arith::AddIOp::create(lb, ll, to, j);
                           return arith::DivFOp::create(
                                      lb, ll, at(lb, ll, cur, colJ), sum)
                               .getResult();
                         });
    };
    auto fill = [&](OpBuilder &nb, Location nl, Value rows, Value r,
                    Value row) -> Value {
      Value width = tensor::DimOp::create(nb, nl, rows, 1);
      auto get = [&](OpBuilder &lb, Location ll, Value j, Value) -> Value {
        return tensor::ExtractOp::create(lb, ll, rows, ValueRange{r, j});
      };
      if (gate == GateKind::Softmax)
        return softmaxInto(nb, nl, row, ck, width, get);
      return rewriteCols(nb, nl, row, ck, width, get);
    };
    auto finish = [&](OpBuilder &nb, Location nl, Value row) -> Value {
      Value c0 = c(nb, nl, 0);
      // Each selected value is read from the row as it stands in that loop
      // (its own column, not yet rewritten), so the row stays one buffer.
      auto selected = [&](OpBuilder &lb, Location ll, Value j, Value cur) {
        return at(lb, ll, cur, j);
      };
      if (gate == GateKind::TopkSoftmax)
        return softmaxInto(nb, nl, row, c0, ck, selected);
      if (gate != GateKind::Sigmoid)
        return row;
      return rewriteCols(
          nb, nl, row, c0, ck,
          [&](OpBuilder &lb, Location ll, Value j, Value cur) {
            Value one = fconst(lb, ll, floatType, 1.0);
            Value ex = math::ExpOp::create(
                lb, ll, arith::NegFOp::create(lb, ll, selected(lb, ll, j, cur)));
            return arith::DivFOp::create(lb, ll, one,
                                         arith::AddFOp::create(lb, ll, one, ex))
                .getResult();
          });
    };
    TopKRowHooks hooks;
    hooks.fill = fill;
    hooks.finish = finish;
    auto [values, indices] = topKLargestWithHooks(b, loc, s3, k, hooks);
    replaceRoute(b, op, values, indices, e);
    return success();
  }
};

struct LowerSwitchRoute : OpRewritePattern<SwitchRouteOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(SwitchRouteOp op,
                                PatternRewriter &b) const override {
    Location loc = op.getLoc();
    Value scores = op.getScores();
    Type elt = typeOf(scores).getElementType();
    MLIRContext *ctx = b.getContext();
    Value p = softmax(b, loc, scores, 1);
    auto [pmax, index] = topK(b, loc, p, 1, 1, /*largest=*/true); // [N, 1]
    Value rows = tensor::DimOp::create(b, loc, scores, 0);
    // Position of each token among the earlier-or-equal tokens of its
    // expert (1-based): an O(N^2) count.
    Value zero = linalg::FillOp::create(
                     b, loc,
                     Value(arith::ConstantOp::create(b, loc,
                                                     b.getI64IntegerAttr(0))),
                     emptyTensor(b, loc, {getAsOpFoldResult(rows)},
                                 b.getI64Type()))
                     .getResult(0);
    Value idxCol = collapse(b, loc, index, {{0, 1}}); // [N]
    Value position =
        linalg::GenericOp::create(
            b, loc, TypeRange{zero.getType()}, ValueRange{idxCol, idxCol},
            ValueRange{zero},
            SmallVector<AffineMap>{
                AffineMap::get(2, 0, getAffineDimExpr(0, ctx)),
                AffineMap::get(2, 0, getAffineDimExpr(1, ctx)),
                AffineMap::get(2, 0, getAffineDimExpr(0, ctx))},
            {utils::IteratorType::parallel, utils::IteratorType::reduction},
            [&](OpBuilder &nb, Location nl, ValueRange a) {
              Value n = linalg::IndexOp::create(nb, nl, 0);
              Value m = linalg::IndexOp::create(nb, nl, 1);
              Value earlier = arith::CmpIOp::create(
                  nb, nl, arith::CmpIPredicate::ule, m, n);
              Value same = arith::CmpIOp::create(
                  nb, nl, arith::CmpIPredicate::eq, a[0], a[1]);
              Value both = arith::AndIOp::create(nb, nl, earlier, same);
              Value one = arith::ExtUIOp::create(nb, nl, nb.getI64Type(), both);
              yield(nb, nl, arith::AddIOp::create(nb, nl, a[2], one));
            })
            .getResult(0);
    // capacity = ceil(f32(N) / f32(E) * capacity_factor); inf: no limit.
    double cf = op.getCapacityFactor().convertToDouble();
    Value kept;
    if (std::isinf(cf)) {
      kept = mapElements(b, loc, {position}, b.getI1Type(),
                         [](OpBuilder &nb, Location nl, ValueRange) -> Value {
                           return arith::ConstantOp::create(
                               nb, nl, nb.getBoolAttr(true));
                         });
    } else {
      Type f32 = b.getF32Type();
      auto asF32 = [&](Value index) -> Value {
        return arith::SIToFPOp::create(
            b, loc, f32,
            arith::IndexCastOp::create(b, loc, b.getI64Type(), index));
      };
      Value experts = tensor::DimOp::create(b, loc, scores, 1);
      Value cap = math::CeilOp::create(
          b, loc,
          arith::MulFOp::create(
              b, loc,
              arith::DivFOp::create(b, loc, asF32(rows), asF32(experts)),
              fconst(b, loc, f32, cf)));
      Value capI = arith::FPToSIOp::create(b, loc, b.getI64Type(), cap);
      kept = mapElements(b, loc, {position}, b.getI1Type(),
                         [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                           return arith::CmpIOp::create(
                               nb, nl, arith::CmpIPredicate::sle, a[0], capI);
                         });
    }
    Value keptCol = expand(b, loc, kept, {{0, 1}},
                           {getAsOpFoldResult(rows), b.getIndexAttr(1)});
    Value weights = mapElements(
        b, loc, {pmax, keptCol}, elt,
        [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
          return arith::SelectOp::create(nb, nl, a[1], a[0],
                                         fconst(nb, nl, elt, 0.0));
        });
    Value ids = castIds(b, loc, index, typeOf(op.getIds()).getElementType());
    b.replaceOp(op, {castTo(b, loc, weights, op.getWeights().getType()),
                     castTo(b, loc, ids, op.getIds().getType()),
                     castTo(b, loc, kept, op.getKept().getType())});
    return success();
  }
};

struct LowerTreeRoute : OpRewritePattern<TreeRouteOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(TreeRouteOp op,
                                PatternRewriter &b) const override {
    Location loc = op.getLoc();
    Value gates = op.getGates();
    int64_t depth = typeOf(gates).getDimSize(1); // static (C2)
    bool path = op.getMode() == TreeMode::Path;
    int64_t slots = path ? depth + 1 : 1;
    Type idType = typeOf(op.getIds()).getElementType();
    OpFoldResult n = tensor::getMixedSize(b, loc, gates, 0);
    Value g = gates;
    // ids[n, j] = base_j + Σ_i [gates[n, i] > 0] * 2^(j-1-i) over i < j
    // (path) or over all i with weight 2^(depth-1-i) (flat).
    Value init = emptyTensor(b, loc, {n, b.getIndexAttr(slots)}, idType);
    Value ids = linalg::GenericOp::create(
                    b, loc, TypeRange{init.getType()}, ValueRange{},
                    ValueRange{init},
                    SmallVector<AffineMap>{b.getMultiDimIdentityMap(2)},
                    SmallVector<utils::IteratorType>(
                        2, utils::IteratorType::parallel),
                    [&](OpBuilder &nb, Location nl, ValueRange) {
                      Value row = linalg::IndexOp::create(nb, nl, 0);
                      Value j = linalg::IndexOp::create(nb, nl, 1);
                      Value jI = arith::IndexCastOp::create(
                          nb, nl, nb.getI64Type(), j);
                      Value one = arith::ConstantOp::create(
                          nb, nl, nb.getI64IntegerAttr(1));
                      Value acc;
                      if (path)
                        acc = arith::SubIOp::create(
                            nb, nl, arith::ShLIOp::create(nb, nl, one, jI), one);
                      else
                        acc = arith::ConstantOp::create(
                            nb, nl, nb.getI64IntegerAttr(0));
                      Type ft = typeOf(g).getElementType();
                      for (int64_t i = 0; i < depth; ++i) {
                        Value u = tensor::ExtractOp::create(
                            nb, nl, g, ValueRange{row, idx(nb, nl, i)});
                        Value bit = arith::ExtUIOp::create(
                            nb, nl, nb.getI64Type(),
                            arith::CmpFOp::create(nb, nl,
                                                  arith::CmpFPredicate::OGT, u,
                                                  fconst(nb, nl, ft, 0.0)));
                        // Shift of bit i: (j-1-i) (path, only for i < j) or
                        // (depth-1-i) (flat).
                        Value shift =
                            path ? arith::SubIOp::create(
                                       nb, nl, jI,
                                       arith::ConstantOp::create(
                                           nb, nl,
                                           nb.getI64IntegerAttr(i + 1)))
                                       .getResult()
                                 : arith::ConstantOp::create(
                                       nb, nl,
                                       nb.getI64IntegerAttr(depth - 1 - i))
                                       .getResult();
                        Value term = arith::ShLIOp::create(nb, nl, bit, shift);
                        if (path) {
                          Value active = arith::CmpIOp::create(
                              nb, nl, arith::CmpIPredicate::slt,
                              arith::ConstantOp::create(
                                  nb, nl, nb.getI64IntegerAttr(i)),
                              jI);
                          term = arith::SelectOp::create(
                              nb, nl, active, term,
                              arith::ConstantOp::create(
                                  nb, nl, nb.getI64IntegerAttr(0)));
                        }
                        acc = arith::AddIOp::create(nb, nl, acc, term);
                      }
                      yield(nb, nl,
                            idType.isInteger(64)
                                ? acc
                                : Value(arith::TruncIOp::create(nb, nl, idType,
                                                                acc)));
                    })
                    .getResult(0);
    Value ones = filledTensor(b, loc, {n, b.getIndexAttr(slots)},
                              typeOf(gates).getElementType(), 1.0);
    b.replaceOp(op, {castTo(b, loc, ones, op.getWeights().getType()),
                     castTo(b, loc, ids, op.getIds().getType())});
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Dispatch and the grouped matmul
//===----------------------------------------------------------------------===//

struct LowerDispatch : OpRewritePattern<DispatchOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(DispatchOp op,
                                PatternRewriter &b) const override {
    Location loc = op.getLoc();
    declareErrorHook(b, op);
    int64_t experts = op.getNumExperts();
    Type outType = typeOf(op.getOffsets()).getElementType();
    Value flat = collapse(b, loc, op.getIds(), {{0, 1}});
    Value m = tensor::DimOp::create(b, loc, flat, 0);
    Value c0 = idx(b, loc, 0), c1 = idx(b, loc, 1);
    Value e = idx(b, loc, experts);
    auto zeros = [&](OpFoldResult size) {
      return linalg::FillOp::create(
                 b, loc,
                 Value(arith::ConstantOp::create(b, loc,
                                                 b.getIntegerAttr(outType, 0))),
                 emptyTensor(b, loc, {size}, outType))
          .getResult(0);
    };
    auto expertOf = [&](OpBuilder &nb, Location nl, Value j) {
      Value id = toIndex(nb, nl,
                         tensor::ExtractOp::create(nb, nl, flat, ValueRange{j}));
      return checkedIndex(nb, nl, id, idx(nb, nl, experts),
                          kErrorExpertIdOutOfRange);
    };
    auto one = [&](OpBuilder &nb, Location nl) {
      return arith::ConstantOp::create(nb, nl, nb.getIntegerAttr(outType, 1));
    };
    // Histogram.
    auto hist = scf::ForOp::create(
        b, loc, c0, m, c1, ValueRange{zeros(b.getIndexAttr(experts))},
        [&](OpBuilder &nb, Location nl, Value j, ValueRange it) {
          Value id = expertOf(nb, nl, j);
          Value c = tensor::ExtractOp::create(nb, nl, it[0], ValueRange{id});
          Value inc = arith::AddIOp::create(nb, nl, c, one(nb, nl));
          scf::YieldOp::create(
              nb, nl,
              ValueRange{tensor::InsertOp::create(nb, nl, inc, it[0],
                                                  ValueRange{id})});
        });
    // Exclusive prefix sum into offsets[0..E].
    auto prefix = scf::ForOp::create(
        b, loc, c0, e, c1, ValueRange{zeros(b.getIndexAttr(experts + 1))},
        [&](OpBuilder &nb, Location nl, Value i, ValueRange it) {
          Value next = arith::AddIOp::create(nb, nl, i, idx(nb, nl, 1));
          Value s = arith::AddIOp::create(
              nb, nl,
              tensor::ExtractOp::create(nb, nl, it[0], ValueRange{i}),
              tensor::ExtractOp::create(nb, nl, hist.getResult(0),
                                        ValueRange{i}));
          scf::YieldOp::create(
              nb, nl,
              ValueRange{tensor::InsertOp::create(nb, nl, s, it[0],
                                                  ValueRange{next})});
        });
    Value offsets = prefix.getResult(0);
    // Stable scatter of slot numbers.
    Value cursor = tensor::ExtractSliceOp::create(
        b, loc, offsets, ArrayRef<OpFoldResult>{b.getIndexAttr(0)},
        ArrayRef<OpFoldResult>{b.getIndexAttr(experts)},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1)});
    auto scatter = scf::ForOp::create(
        b, loc, c0, m, c1,
        ValueRange{cursor, zeros(getAsOpFoldResult(m))},
        [&](OpBuilder &nb, Location nl, Value j, ValueRange it) {
          Value id = expertOf(nb, nl, j);
          Value at = tensor::ExtractOp::create(nb, nl, it[0], ValueRange{id});
          Value slot = arith::IndexCastOp::create(nb, nl, outType, j);
          Value perm = tensor::InsertOp::create(nb, nl, slot, it[1],
                                                ValueRange{toIndex(nb, nl, at)});
          Value cur = tensor::InsertOp::create(
              nb, nl, arith::AddIOp::create(nb, nl, at, one(nb, nl)), it[0],
              ValueRange{id});
          scf::YieldOp::create(nb, nl, ValueRange{cur, perm});
        });
    b.replaceOp(op, {castTo(b, loc, offsets, op.getOffsets().getType()),
                     castTo(b, loc, scatter.getResult(1),
                            op.getPerm().getType())});
    return success();
  }
};

/// `act(rows + bias[e, col:col+width])` for the rows `[count, width]` of
/// expert `e`'s product from column `col` on (no bias when `bias` is null).
static Value expertEpilogue(OpBuilder &b, Location loc, Value rows, Value bias,
                            Value e, OpFoldResult col, OpFoldResult doutF,
                            Activation act) {
  MLIRContext *ctx = b.getContext();
  AffineMap id = AffineMap::getMultiDimIdentityMap(2, ctx);
  SmallVector<Value> ins{rows};
  SmallVector<AffineMap> maps{id};
  if (bias) {
    auto rowType = RankedTensorType::get(
        {getConstantIntValue(doutF).value_or(ShapedType::kDynamic)},
        typeOf(rows).getElementType());
    ins.push_back(tensor::ExtractSliceOp::create(
        b, loc, rowType, bias, ArrayRef<OpFoldResult>{e, col},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1), doutF},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)}));
    maps.push_back(AffineMap::get(2, 0, {getAffineDimExpr(1, ctx)}, ctx));
  }
  maps.push_back(id);
  return linalg::GenericOp::create(
             b, loc, TypeRange{rows.getType()}, ins, ValueRange{rows}, maps,
             {utils::IteratorType::parallel, utils::IteratorType::parallel},
             [&](OpBuilder &nb, Location nl, ValueRange a) {
               Value v = a[0];
               if (bias)
                 v = arith::AddFOp::create(nb, nl, v, a[1]);
               linalg::YieldOp::create(nb, nl,
                                       activateScalar(nb, nl, v, act));
             })
      .getResult(0);
}

/// moe.unpack_panels as a copy: the full panels through a generic reading
/// panels[e, n / P, k, n % P], the tail's columns inserted after them.
/// An op nothing uses any more (its grouped matmuls read the panels where
/// they are) is erased.
struct LowerUnpackPanels : OpRewritePattern<UnpackPanelsOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(UnpackPanelsOp op,
                                PatternRewriter &b) const override {
    if (op->use_empty()) {
      b.eraseOp(op);
      return success();
    }
    Location loc = op.getLoc();
    MLIRContext *ctx = b.getContext();
    auto type = op.getType();
    int64_t experts = type.getDimSize(0), k = type.getDimSize(1);
    int64_t width = op.getPanelWidth();
    int64_t full = op.getNumPanels() * width;
    Type elt = type.getElementType();
    AffineExpr de, dk, dn;
    bindDims(ctx, de, dk, dn);
    AffineMap read =
        AffineMap::get(3, 0, {de, dn.floorDiv(width), dk, dn % width}, ctx);
    Value panels =
        linalg::GenericOp::create(
            b, loc, TypeRange{RankedTensorType::get({experts, k, full}, elt)},
            ValueRange{op.getPanels()},
            ValueRange{emptyTensor(b, loc,
                                   {b.getIndexAttr(experts), b.getIndexAttr(k),
                                    b.getIndexAttr(full)},
                                   elt)},
            ArrayRef<AffineMap>{read,
                                AffineMap::getMultiDimIdentityMap(3, ctx)},
            SmallVector<utils::IteratorType>(3, utils::IteratorType::parallel),
            [&](OpBuilder &nb, Location nl, ValueRange a) {
              linalg::YieldOp::create(nb, nl, a[0]);
            })
            .getResult(0);
    Value tail = op.getTail();
    if (!tail) {
      b.replaceOp(op, panels);
      return success();
    }
    SmallVector<OpFoldResult> ones(3, b.getIndexAttr(1));
    Value out = emptyTensor(b, loc,
                            {b.getIndexAttr(experts), b.getIndexAttr(k),
                             b.getIndexAttr(type.getDimSize(2))},
                            elt);
    auto insertAt = [&](Value part, Value dest, int64_t col, int64_t cols) {
      return tensor::InsertSliceOp::create(
                 b, loc, part, dest,
                 ArrayRef<OpFoldResult>{b.getIndexAttr(0), b.getIndexAttr(0),
                                        b.getIndexAttr(col)},
                 ArrayRef<OpFoldResult>{b.getIndexAttr(experts),
                                        b.getIndexAttr(k),
                                        b.getIndexAttr(cols)},
                 ones)
          .getResult();
    };
    out = insertAt(panels, out, 0, full);
    out = insertAt(tail, out, full, typeOf(tail).getDimSize(2));
    b.replaceOp(op, out);
    return success();
  }
};

/// A contraction reading the [K, N] matrix of a one-expert
/// moe.unpack_panels (collapsed from [1, K, Nb * P], and sliced to its
/// first N columns where the last panel is padded) reads the panels
/// [Nb, K, P] where they are.
struct ContractOverUnpackedPanels : OpRewritePattern<linalg::GenericOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(linalg::GenericOp op,
                                PatternRewriter &b) const override {
    if (!build::isContractionOverColumns(op))
      return failure();
    Value rhs = op.getDpsInputOperand(1)->get();
    if (auto slice = rhs.getDefiningOp<tensor::ExtractSliceOp>();
        slice && slice.hasZeroOffset() && slice.hasUnitStride())
      rhs = slice.getSource();
    auto shape = rhs.getDefiningOp<tensor::CollapseShapeOp>();
    auto unpack = shape ? shape.getSrc().getDefiningOp<UnpackPanelsOp>()
                        : UnpackPanelsOp();
    if (!unpack || unpack.getTail() || unpack.getType().getDimSize(0) != 1 ||
        shape.getReassociationIndices() !=
            SmallVector<ReassociationIndices>{{0, 1}, {2}})
      return failure();
    // Checked before anything is created: a pattern that fails leaves the
    // IR as it was.
    auto packed = cast<RankedTensorType>(unpack.getPanels().getType());
    if (!canContractOverPanels(
            op, RankedTensorType::get(packed.getShape().drop_front(),
                                      packed.getElementType())))
      return failure();
    Value panels =
        collapse(b, op.getLoc(), unpack.getPanels(), {{0, 1}, {2}, {3}});
    return success(succeeded(contractOverPanels(b, op, panels)));
  }
};

/// The weight side of one expert product of a grouped matmul: the weight
/// (or the column panels it is read from), the bias and the activation.
struct ExpertStage {
  Value w;
  UnpackPanelsOp unpack;
  Value bias;
  Activation act = Activation::Identity;
  int64_t din = 0, dout = 0;
  OpFoldResult dinF, doutF;
};

static ExpertStage expertStage(OpBuilder &b, Location loc,
                               GroupedMatmulOp op) {
  ExpertStage s;
  s.w = op.getWeight();
  // Weights in column panels are read where they are (static shapes).
  s.unpack = s.w.getDefiningOp<UnpackPanelsOp>();
  s.bias = op.getBias();
  s.act = op.getActivationOrIdentity();
  s.din = typeOf(s.w).getDimSize(1);
  s.dout = typeOf(s.w).getDimSize(2);
  s.dinF = tensor::getMixedSize(b, loc, s.w, 1);
  s.doutF = tensor::getMixedSize(b, loc, s.w, 2);
  return s;
}

/// The bias [E, Dout] (C8 when static), checked at run time otherwise.
static void checkBias(OpBuilder &b, Location loc, ExpertStage &s,
                      Value experts) {
  if (!s.bias)
    return;
  s.bias = requireSize(b, loc, s.bias, 0,
                       typeOf(s.w).isDynamicDim(0)
                           ? OpFoldResult(experts)
                           : OpFoldResult(
                                 b.getIndexAttr(typeOf(s.w).getDimSize(0))),
                       kErrorShapeMismatch);
  s.bias = requireSize(b, loc, s.bias, 1, s.doutF, kErrorShapeMismatch);
}

/// Expert `e`'s segment of the sorted positions, [lo, lo + count), from
/// `offsets`: bounds in [0, M] with lo <= hi (moe.dispatch's offsets always
/// are; anything else is reported and clamped).
static std::pair<Value, OpFoldResult> expertSegment(OpBuilder &nb, Location nl,
                                                    Value offsets, Value e,
                                                    Value m) {
  Value mPlus1 = arith::AddIOp::create(nb, nl, m, idx(nb, nl, 1));
  auto bound = [&](Value at) {
    return checkedIndex(
        nb, nl,
        toIndex(nb, nl,
                tensor::ExtractOp::create(nb, nl, offsets, ValueRange{at})),
        mPlus1, kErrorIndexOutOfRange);
  };
  Value lo = bound(e);
  Value hi = bound(arith::AddIOp::create(nb, nl, e, idx(nb, nl, 1)));
  reportIf(nb, nl,
           arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::ult, hi, lo),
           kErrorIndexOutOfRange);
  hi = arith::MaxUIOp::create(nb, nl, hi, lo);
  return {lo, getAsOpFoldResult(arith::SubIOp::create(nb, nl, hi, lo))};
}

/// Expert `e`'s product of `segment` ([count, Din]) and its weight, with
/// the epilogue (bias[e], act) on its rows while they are in cache,
/// written into makeDst()'s rows ([count, Dout]): one linalg.matmul, or with the
/// weight in column panels (moe.unpack_panels) one per panel (an scf.for),
/// each reading its contiguous [Din, P] block, then one for the tail's
/// [Din, T] block.
static Value expertProduct(OpBuilder &nb, Location nl, const ExpertStage &s,
                           Value e, Value segment, OpFoldResult count,
                           function_ref<Value()> makeDst) {
  Type elt = typeOf(segment).getElementType();
  int64_t din = s.din;
  auto unitStrides = [&](OpBuilder &pb) {
    return SmallVector<OpFoldResult>{pb.getIndexAttr(1), pb.getIndexAttr(1)};
  };
  Value we;
  if (!s.unpack) {
    auto wType = RankedTensorType::get({din, s.dout}, elt);
    we = tensor::ExtractSliceOp::create(
        nb, nl, wType, s.w,
        ArrayRef<OpFoldResult>{e, nb.getIndexAttr(0), nb.getIndexAttr(0)},
        ArrayRef<OpFoldResult>{nb.getIndexAttr(1), s.dinF, s.doutF},
        ArrayRef<OpFoldResult>{nb.getIndexAttr(1), nb.getIndexAttr(1),
                               nb.getIndexAttr(1)});
  }
  Value dst = makeDst();
  Value zero = arith::ConstantOp::create(nb, nl, nb.getFloatAttr(elt, 0.0));
  // The product of the segment and a block of the weight's columns
  // [col, col + width), with its epilogue.
  auto product = [&](OpBuilder &pb, Location pl, Value out, Value wBlock,
                     OpFoldResult col, OpFoldResult width) {
    Value init = linalg::FillOp::create(pb, pl, zero, out).getResult(0);
    Value prod = linalg::MatmulOp::create(pb, pl, ValueRange{segment, wBlock},
                                          ValueRange{init})
                     .getResult(0);
    if (s.bias || s.act != Activation::Identity)
      prod = expertEpilogue(pb, pl, prod, s.bias, e, col, width, s.act);
    return prod;
  };
  if (!s.unpack)
    return product(nb, nl, dst, we, nb.getIndexAttr(0), s.doutF);
  UnpackPanelsOp unpack = s.unpack;
  int64_t width = unpack.getPanelWidth();
  auto blockOf = [&](OpBuilder &pb, Location pl, Value src,
                     ArrayRef<OpFoldResult> offsets, int64_t cols) -> Value {
    SmallVector<OpFoldResult> sizes(offsets.size() - 2, pb.getIndexAttr(1));
    sizes.append({pb.getIndexAttr(din), pb.getIndexAttr(cols)});
    SmallVector<OpFoldResult> strides(offsets.size(), pb.getIndexAttr(1));
    return tensor::ExtractSliceOp::create(
        pb, pl, RankedTensorType::get({din, cols}, elt), src, offsets, sizes,
        strides);
  };
  auto columns = [&](OpBuilder &pb, Location pl, Value src, OpFoldResult col,
                     int64_t cols) -> Value {
    return tensor::ExtractSliceOp::create(
        pb, pl, src, ArrayRef<OpFoldResult>{pb.getIndexAttr(0), col},
        ArrayRef<OpFoldResult>{count, pb.getIndexAttr(cols)}, unitStrides(pb));
  };
  auto into = [&](OpBuilder &pb, Location pl, Value part, Value out,
                  OpFoldResult col, int64_t cols) {
    return tensor::InsertSliceOp::create(
               pb, pl, part, out,
               ArrayRef<OpFoldResult>{pb.getIndexAttr(0), col},
               ArrayRef<OpFoldResult>{count, pb.getIndexAttr(cols)},
               unitStrides(pb))
        .getResult();
  };
  auto panelLoop = scf::ForOp::create(
      nb, nl, idx(nb, nl, 0), idx(nb, nl, unpack.getNumPanels()),
      idx(nb, nl, 1), ValueRange{dst},
      [&](OpBuilder &pb, Location pl, Value j, ValueRange it) {
        Value col = arith::MulIOp::create(pb, pl, j, idx(pb, pl, width));
        Value wBlock =
            blockOf(pb, pl, unpack.getPanels(),
                    {e, j, pb.getIndexAttr(0), pb.getIndexAttr(0)}, width);
        Value part = product(pb, pl, columns(pb, pl, it[0], col, width),
                             wBlock, col, pb.getIndexAttr(width));
        scf::YieldOp::create(pb, pl, into(pb, pl, part, it[0], col, width));
      });
  Value prod = panelLoop.getResult(0);
  if (Value tail = unpack.getTail()) {
    int64_t cols = typeOf(tail).getDimSize(2);
    OpFoldResult col = nb.getIndexAttr(unpack.getNumPanels() * width);
    Value wBlock = blockOf(nb, nl, tail,
                           {e, nb.getIndexAttr(0), nb.getIndexAttr(0)}, cols);
    Value part = product(nb, nl, columns(nb, nl, prod, col, cols), wBlock, col,
                         nb.getIndexAttr(cols));
    prod = into(nb, nl, part, prod, col, cols);
  }
  return prod;
}

/// The up projection whose result only `down` reads, when the two can run
/// in one loop over experts (convert-moe-to-linalg{fuse-expert-pairs}):
/// `down` reads it in expert order (`sorted_input`, made by
/// moe-sort-expert-layouts), directly, in the same block, with the same
/// `offsets` and `perm`,
/// both weights are statically shaped with no zero-sized dim, and `down`'s
/// result is in slot or token order (no `sorted_result`: its rows are
/// read where the loop wrote them, beside the hidden rows). Null
/// otherwise.
static GroupedMatmulOp fusableUpProjection(GroupedMatmulOp down) {
  if (!down.getSortedInput())
    return {};
  auto up = down.getInput().getDefiningOp<GroupedMatmulOp>();
  // (In the same block: the pair is built at `down`, which must not move
  // `up` into a loop or a branch.)
  if (!up || !up.getSortedResult() || !up->hasOneUse() ||
      up->getBlock() != down->getBlock() || down.getSortedResult() ||
      up.getOffsets() != down.getOffsets() || up.getPerm() != down.getPerm())
    return {};
  RankedTensorType w1 = typeOf(up.getWeight()), w2 = typeOf(down.getWeight());
  for (RankedTensorType t : {w1, w2})
    if (!t.hasStaticShape() || llvm::is_contained(t.getShape(), 0))
      return {};
  if (w1.getDimSize(0) != w2.getDimSize(0) ||
      w1.getDimSize(2) != w2.getDimSize(1) ||
      llvm::is_contained(typeOf(up.getInput()).getShape(), 0) ||
      typeOf(up.getPerm()).getDimSize(0) == 0)
    return {};
  return up;
}

/// Lowers `op`. With `up` (fusableUpProjection(op)), lowers the pair in one
/// loop over experts: each iteration computes its expert's rows of the up
/// projection, then the down projection of those rows while they are in
/// cache (the hidden rows are still written to memory, in expert order
/// beside the down projection's rows, but read back by the same
/// iteration; `up` is erased). Each row's arithmetic is that of the two
/// ops lowered one by one.
static LogicalResult lowerGroupedMatmul(PatternRewriter &b, GroupedMatmulOp op,
                                        GroupedMatmulOp up) {
  Location loc = op.getLoc();
  // The loops' bodies are built before they are attached to the module.
  declareErrorHook(b, op);
  GroupedMatmulOp first = up ? up : op;
  Value x = first.getInput(), offsets = op.getOffsets(), perm = op.getPerm();
  Type elt = typeOf(x).getElementType();
  ExpertStage s1 = expertStage(b, loc, first);
  std::optional<ExpertStage> s2;
  if (up)
    s2 = expertStage(b, loc, op);
  const ExpertStage &last = up ? *s2 : s1;
  Value w = s1.w;
  // With Din = 0 every product is zero and a bias would make each row
  // its expert's bias; no model has such a layer.
  if (s1.bias && (typeOf(x).getDimSize(1) == 0 || s1.din == 0))
    return op.emitOpError("a bias with a zero-sized Din is not supported");
  // Static zero-sized operands: the result is all zeros (and slices of a
  // zero-sized dim do not verify; act(0) = 0 for every activation). (Never
  // with `up`: fusableUpProjection excludes them.)
  if (!up && (llvm::is_contained(typeOf(x).getShape(), 0) ||
              llvm::is_contained(typeOf(w).getShape(), 0) ||
              typeOf(perm).getDimSize(0) == 0)) {
    Value rowsOf = op.getSlotWeights() ? op.getSlotWeights() : perm;
    Value zeros = filledTensor(b, loc,
                               {tensor::getMixedSize(b, loc, rowsOf, 0),
                                tensor::getMixedSize(b, loc, w, 2)},
                               elt, 0.0);
    b.replaceOp(op, castTo(b, loc, zeros, op.getType()));
    return success();
  }
  Value c0 = idx(b, loc, 0), c1 = idx(b, loc, 1);
  Value rows = tensor::DimOp::create(b, loc, x, 0);
  Value m = tensor::DimOp::create(b, loc, perm, 0);
  // (A constant when static: a weight in panels keeps no other use.)
  Value experts = getValueOrCreateConstantIndexOp(
      b, loc, tensor::getMixedSize(b, loc, w, 0));
  // Fan-out F = M / R (R = 0 only when M = 0).
  Value rowsOr1 = arith::MaxUIOp::create(b, loc, rows, c1);
  Value fan = arith::DivUIOp::create(b, loc, m, rowsOr1);
  Value fanOr1 = arith::MaxUIOp::create(b, loc, fan, c1);
  // Shapes the verifier checks only when static: offsets of E + 1
  // elements, input rows of Din elements, R rows with R dividing M (then
  // every slot's row perm[i] / F is below M / F = R). Anything else is
  // reported and replaced by zeros of the expected shape. (With `up`, the
  // down projection's input is the hidden rows made here: M rows of its
  // static Din.)
  offsets = requireSize(
      b, loc, offsets, 0,
      typeOf(w).isDynamicDim(0)
          ? OpFoldResult(
                arith::AddIOp::create(b, loc, experts, c1).getResult())
          : OpFoldResult(b.getIndexAttr(typeOf(w).getDimSize(0) + 1)),
      kErrorShapeMismatch);
  x = requireSize(b, loc, x, 1, s1.dinF, kErrorShapeMismatch);
  checkBias(b, loc, s1, experts);
  if (s2)
    checkBias(b, loc, *s2, experts);
  x = requireSize(
      b, loc, x, 0,
      first.getSortedInput()
          ? getAsOpFoldResult(m)
          : getAsOpFoldResult(
                arith::DivUIOp::create(b, loc, m, fanOr1).getResult()),
      kErrorShapeMismatch);
  // The segments must cover [0, M): offsets[0] = 0 and offsets[E] = M
  // (moe.dispatch's always do; otherwise rows of the result would never
  // be written).
  {
    auto offsetAt = [&](Value at) {
      return toIndex(b, loc,
                     tensor::ExtractOp::create(b, loc, offsets, ValueRange{at}));
    };
    Value firstOff = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne,
                                           offsetAt(c0), c0);
    Value lastOff = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne,
                                          offsetAt(experts), m);
    reportIf(b, loc, arith::OrIOp::create(b, loc, firstOff, lastOff),
             kErrorIndexOutOfRange);
  }
  // Three loops whose iterations are independent (scf.forall: on the
  // thread pool unless moe-compile --no-parallel-loops), none of
  // which allocates per iteration:
  //  1. gather the rows in expert order: xs[i] = x[perm[i] / F] (none
  //     with sorted_input: xs = x);
  //  2. one matmul per expert segment, xs[lo, hi) @ w[e], with the
  //     epilogue (bias[e], act) on its rows while they are in cache,
  //     written in place into its rows of ps (with `up`: first the up
  //     projection's into its rows of the hidden buffer, then the down
  //     projection of those);
  //  3. back to slot order: y[s] = ps[inv[s]], with inv the inverse of
  //     perm (every row of y is written by exactly one iteration, so the
  //     result does not depend on the order, even for a perm that is no
  //     permutation); none with sorted_result: the result is ps.
  auto rowOf = [&](int64_t width) {
    return RankedTensorType::get({1, width}, elt);
  };
  auto unitStrides = [&](OpBuilder &nb) {
    return SmallVector<OpFoldResult>{nb.getIndexAttr(1), nb.getIndexAttr(1)};
  };
  // One scf.forall terminator inserting each part (src, dest, width) at
  // rows [row, row + rowCount) of its dest.
  struct RowsPart {
    Value src, dest;
    OpFoldResult width;
  };
  auto insertRows = [&](OpBuilder &nb, Location nl, OpFoldResult row,
                        OpFoldResult rowCount, ArrayRef<RowsPart> parts) {
    auto term = scf::InParallelOp::create(nb, nl);
    OpBuilder::InsertionGuard guard(nb);
    nb.setInsertionPointToStart(term.getBody());
    for (const RowsPart &p : parts)
      tensor::ParallelInsertSliceOp::create(
          nb, nl, p.src, p.dest,
          ArrayRef<OpFoldResult>{row, nb.getIndexAttr(0)},
          ArrayRef<OpFoldResult>{rowCount, p.width}, unitStrides(nb));
  };
  // Row `row` of `src` ([*, width]) as a [1, width] slice.
  auto sliceRow = [&](OpBuilder &nb, Location nl, Value src, OpFoldResult row,
                      int64_t width, OpFoldResult widthF) -> Value {
    return tensor::ExtractSliceOp::create(
        nb, nl, rowOf(width), src,
        ArrayRef<OpFoldResult>{row, nb.getIndexAttr(0)},
        ArrayRef<OpFoldResult>{nb.getIndexAttr(1), widthF}, unitStrides(nb));
  };
  OpFoldResult mF = getAsOpFoldResult(m);
  int64_t dout = last.dout;
  OpFoldResult doutF = last.doutF;
  // [M, width] whose row i is src[sourceRow(i)], a row copy per
  // iteration of an scf.forall.
  auto gatherRows = [&](Value src, int64_t width, OpFoldResult widthF,
                        function_ref<Value(OpBuilder &, Location, Value)>
                            sourceRow) {
    return scf::ForallOp::create(
               b, loc, ArrayRef<OpFoldResult>{mF},
               ValueRange{emptyTensor(b, loc, {mF, widthF}, elt)},
               std::nullopt,
               [&](OpBuilder &nb, Location nl, ValueRange args) {
                 Value i = args[0];
                 Value row = sliceRow(nb, nl, src, sourceRow(nb, nl, i),
                                      width, widthF);
                 insertRows(nb, nl, i, nb.getIndexAttr(1),
                            {{row, args[1], widthF}});
               })
        .getResult(0);
  };
  Value xs = first.getSortedInput()
                 ? x
                 : gatherRows(x, s1.din, s1.dinF,
                              [&](OpBuilder &nb, Location nl, Value i) -> Value {
                                Value slot = checkedIndex(
                                    nb, nl,
                                    toIndex(nb, nl,
                                            tensor::ExtractOp::create(
                                                nb, nl, perm, ValueRange{i})),
                                    m, kErrorIndexOutOfRange);
                                return arith::DivUIOp::create(nb, nl, slot,
                                                              fanOr1);
                              });
  // With `up`, a second result: the hidden rows, in expert order. Nothing
  // reads it after the loop, so it is given back right there
  // (bufferization.dealloc_tensor, which the canonicalizer keeps: without
  // a use, it would drop the result and each iteration's hidden rows would
  // become a buffer allocated per iteration, which keeps the loop off the
  // thread pool).
  SmallVector<Value> products{emptyTensor(b, loc, {mF, last.doutF}, elt)};
  if (s2)
    products.push_back(emptyTensor(b, loc, {mF, s1.doutF}, elt));
  auto expertLoop = scf::ForallOp::create(
      b, loc, ArrayRef<OpFoldResult>{getAsOpFoldResult(experts)}, products,
      std::nullopt, [&](OpBuilder &nb, Location nl, ValueRange args) {
        Value e = args[0];
        std::pair<Value, OpFoldResult> seg =
            expertSegment(nb, nl, offsets, e, m);
        Value lo = seg.first;
        OpFoldResult count = seg.second;
        auto rowsOfOut = [&](Value out, OpFoldResult width) -> Value {
          return tensor::ExtractSliceOp::create(
              nb, nl, out, ArrayRef<OpFoldResult>{lo, nb.getIndexAttr(0)},
              ArrayRef<OpFoldResult>{count, width}, unitStrides(nb));
        };
        Value segment = tensor::ExtractSliceOp::create(
            nb, nl, xs, ArrayRef<OpFoldResult>{lo, nb.getIndexAttr(0)},
            ArrayRef<OpFoldResult>{count, s1.dinF}, unitStrides(nb));
        Value hiddenOut = s2 ? args[2] : args[1];
        Value prod = expertProduct(nb, nl, s1, e, segment, count, [&] {
          return rowsOfOut(hiddenOut, s1.doutF);
        });
        SmallVector<RowsPart> parts;
        if (s2) {
          Value down = expertProduct(nb, nl, *s2, e, prod, count, [&] {
            return rowsOfOut(args[1], s2->doutF);
          });
          parts.push_back({down, args[1], s2->doutF});
        }
        parts.push_back({prod, hiddenOut, s1.doutF});
        insertRows(nb, nl, lo, count, parts);
      });
  if (s2)
    bufferization::DeallocTensorOp::create(b, loc, expertLoop.getResult(1));
  Value ps = expertLoop.getResult(0);
  // The op's result; with `up`, the up projection (which nothing reads
  // any more) goes too.
  auto finish = [&](Value result) {
    b.replaceOp(op, castTo(b, loc, result, op.getType()));
    if (up)
      b.eraseOp(up);
    return success();
  };
  if (op.getSortedResult())
    return finish(ps);
  // inv[perm[i]] = i (a sequential scatter of M indices). Every entry
  // starts at -1; an entry written twice (perm is no permutation) is
  // reported, and so every slot is written exactly once when no report
  // is made.
  Type permElt = typeOf(perm).getElementType();
  Value unset = arith::ConstantOp::create(b, loc,
                                          b.getIntegerAttr(permElt, -1));
  Value inv0 = linalg::FillOp::create(b, loc, unset,
                                      emptyTensor(b, loc, {mF}, permElt))
                   .getResult(0);
  Value inv =
      scf::ForOp::create(
          b, loc, c0, m, c1, ValueRange{inv0},
          [&](OpBuilder &nb, Location nl, Value i, ValueRange it) {
            Value slot = checkedIndex(
                nb, nl,
                toIndex(nb, nl,
                        tensor::ExtractOp::create(nb, nl, perm,
                                                  ValueRange{i})),
                m, kErrorIndexOutOfRange);
            Value before =
                tensor::ExtractOp::create(nb, nl, it[0], ValueRange{slot});
            reportIf(nb, nl,
                     arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::ne,
                                           before, unset),
                     kErrorIndexOutOfRange);
            Value iv = arith::IndexCastOp::create(nb, nl, permElt, i);
            scf::YieldOp::create(
                nb, nl,
                ValueRange{tensor::InsertOp::create(nb, nl, iv, it[0],
                                                    ValueRange{slot})});
          })
          .getResult(0);
  // Row of ps that holds slot j (a slot no entry of perm named, reported
  // above, reads row 0).
  auto rowOfSlot = [&](OpBuilder &nb, Location nl, Value j) -> Value {
    Value from = toIndex(
        nb, nl, tensor::ExtractOp::create(nb, nl, inv, ValueRange{j}));
    return arith::MaxSIOp::create(nb, nl, from, idx(nb, nl, 0)).getResult();
  };
  Value sw = op.getSlotWeights();
  if (!sw) {
    // [M, Dout] in slot order.
    Value y = gatherRows(ps, dout, doutF, rowOfSlot);
    return finish(y);
  }
  // The weighted reduction straight from the rows in expert order, one
  // token per iteration: out[n] = Σ_s sw[n, s] * ps[inv[n*S + s]], s in
  // increasing order (no [M, Dout] copy in slot order in between).
  OpFoldResult nF = tensor::getMixedSize(b, loc, sw, 0);
  Value sDim = tensor::DimOp::create(b, loc, sw, 1);
  // N * S = M (C5 when static): otherwise reported, and no token is
  // reduced (no slot past M is read).
  Value nDim = getValueOrCreateConstantIndexOp(b, loc, nF);
  Value mismatch = arith::CmpIOp::create(
      b, loc, arith::CmpIPredicate::ne,
      arith::MulIOp::create(b, loc, nDim, sDim), m);
  reportIf(b, loc, mismatch, kErrorShapeMismatch);
  Value tokens = arith::SelectOp::create(b, loc, mismatch, c0, nDim);
  // With the mismatch reported, the result is zeros (as requireSize's).
  Value outInit = emptyTensor(b, loc, {nF, doutF}, elt);
  outInit = scf::IfOp::create(
                b, loc, mismatch,
                [&](OpBuilder &ib, Location il) {
                  Value z = arith::ConstantOp::create(
                      ib, il, ib.getFloatAttr(elt, 0.0));
                  scf::YieldOp::create(
                      ib, il,
                      linalg::FillOp::create(ib, il, z, outInit)
                          .getResult(0));
                },
                [&](OpBuilder &ib, Location il) {
                  scf::YieldOp::create(ib, il, outInit);
                })
                .getResult(0);
  Value result =
      scf::ForallOp::create(
          b, loc, ArrayRef<OpFoldResult>{getAsOpFoldResult(tokens)},
          ValueRange{outInit}, std::nullopt,
          [&](OpBuilder &nb, Location nl, ValueRange args) {
            Value n = args[0];
            Value acc0 = sliceRow(nb, nl, args[1], n, dout, doutF);
            Value zero =
                arith::ConstantOp::create(nb, nl, nb.getFloatAttr(elt, 0.0));
            acc0 = linalg::FillOp::create(nb, nl, zero, acc0).getResult(0);
            Value first = arith::MulIOp::create(nb, nl, n, sDim);
            auto slots = scf::ForOp::create(
                nb, nl, idx(nb, nl, 0), sDim, idx(nb, nl, 1),
                ValueRange{acc0},
                [&](OpBuilder &fb, Location fl, Value s, ValueRange it) {
                  Value j = arith::AddIOp::create(fb, fl, first, s);
                  Value row = sliceRow(fb, fl, ps, rowOfSlot(fb, fl, j),
                                       dout, doutF);
                  Value wgt = tensor::ExtractOp::create(fb, fl, sw,
                                                        ValueRange{n, s});
                  AffineMap id = fb.getMultiDimIdentityMap(2);
                  Value next =
                      linalg::GenericOp::create(
                          fb, fl, TypeRange{it[0].getType()},
                          ValueRange{row}, ValueRange{it[0]},
                          SmallVector<AffineMap>{id, id},
                          {utils::IteratorType::parallel,
                           utils::IteratorType::parallel},
                          [&](OpBuilder &gb, Location gl, ValueRange a) {
                            Value prod =
                                arith::MulFOp::create(gb, gl, wgt, a[0]);
                            linalg::YieldOp::create(
                                gb, gl,
                                ValueRange{arith::AddFOp::create(gb, gl, a[1],
                                                                 prod)});
                          })
                          .getResult(0);
                  scf::YieldOp::create(fb, fl, ValueRange{next});
                });
            insertRows(nb, nl, n, nb.getIndexAttr(1),
                       {{slots.getResult(0), args[1], doutF}});
          })
          .getResult(0);
  return finish(result);
}

struct LowerGroupedMatmul : OpRewritePattern<GroupedMatmulOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(GroupedMatmulOp op,
                                PatternRewriter &b) const override {
    return lowerGroupedMatmul(b, op, /*up=*/nullptr);
  }
};

/// A down projection and the up projection whose sorted rows it reads, in
/// one loop over experts (populateMoeExpertPairPatterns).
struct LowerGroupedMatmulPair : OpRewritePattern<GroupedMatmulOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(GroupedMatmulOp op,
                                PatternRewriter &b) const override {
    GroupedMatmulOp up = fusableUpProjection(op);
    if (!up)
      return b.notifyMatchFailure(op, "no up projection to lower with");
    return lowerGroupedMatmul(b, op, up);
  }
};

struct LowerCombine : OpRewritePattern<CombineOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(CombineOp op,
                                PatternRewriter &b) const override {
    Location loc = op.getLoc();
    Value r = contract(b, loc, "ns,nsd->nd", op.getWeights(), op.getSlots(),
                       {tensor::getMixedSize(b, loc, op.getSlots(), 0),
                        tensor::getMixedSize(b, loc, op.getSlots(), 2)});
    b.replaceOp(op, castTo(b, loc, r, op.getType()));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Mixture of Tokens
//===----------------------------------------------------------------------===//

struct LowerMotMix : OpRewritePattern<MotMixOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(MotMixOp op, PatternRewriter &b) const override {
    Location loc = op.getLoc();
    Value x = op.getInput(), logits = op.getLogits();
    Type elt = typeOf(x).getElementType();
    int64_t g = op.getGroupSize();
    OpFoldResult bsz = tensor::getMixedSize(b, loc, x, 0);
    OpFoldResult t = tensor::getMixedSize(b, loc, x, 1);
    OpFoldResult d = tensor::getMixedSize(b, loc, x, 2);
    OpFoldResult e = tensor::getMixedSize(b, loc, logits, 2);
    OpFoldResult c = divSizes(b, loc, bsz, b.getIndexAttr(g));
    OpFoldResult gs = b.getIndexAttr(g);
    // A dynamic batch must be a multiple of the group size (C2 checks static
    // ones): otherwise the code reports it and mixes zeros of C*g rows.
    if (!getConstantIntValue(bsz)) {
      OpFoldResult rows = mulSizes(b, loc, c, gs);
      x = requireSize(b, loc, x, 0, rows, kErrorShapeMismatch);
      logits = requireSize(b, loc, logits, 0, rows, kErrorShapeMismatch);
    }
    Value x4 = expand(b, loc, x, {{0, 1}, {2}, {3}}, {c, gs, t, d});
    Value l4 = expand(b, loc, logits, {{0, 1}, {2}, {3}}, {c, gs, t, e});
    double tau = op.getTemperature().convertToDouble();
    Value m;
    if (op.getMode() == MixMode::Continuous) {
      Value scaled = mapElements(
          b, loc, {l4}, elt, [&](OpBuilder &nb, Location nl, ValueRange a) {
            return arith::DivFOp::create(nb, nl, a[0],
                                         fconst(nb, nl, elt, tau));
          });
      m = softmax(b, loc, scaled, 1);
    } else {
      Value index = topK(b, loc, l4, 1, 1, /*largest=*/true).second;
      // One-hot over the group axis: index has the group dim of size 1.
      MLIRContext *ctx = b.getContext();
      AffineMap id = b.getMultiDimIdentityMap(4);
      AffineMap onGroup = AffineMap::get(
          4, 0,
          {getAffineDimExpr(0, ctx), getAffineConstantExpr(0, ctx),
           getAffineDimExpr(2, ctx), getAffineDimExpr(3, ctx)},
          ctx);
      Value init = emptyTensor(b, loc, {c, gs, t, e}, elt);
      m = linalg::GenericOp::create(
              b, loc, TypeRange{init.getType()}, ValueRange{index},
              ValueRange{init}, SmallVector<AffineMap>{onGroup, id},
              SmallVector<utils::IteratorType>(4,
                                               utils::IteratorType::parallel),
              [&](OpBuilder &nb, Location nl, ValueRange a) {
                Value i = arith::IndexCastOp::create(
                    nb, nl, nb.getI64Type(), linalg::IndexOp::create(nb, nl, 1));
                Value hit = arith::CmpIOp::create(
                    nb, nl, arith::CmpIPredicate::eq, i, a[0]);
                yield(nb, nl,
                      arith::SelectOp::create(nb, nl, hit,
                                              fconst(nb, nl, elt, 1.0),
                                              fconst(nb, nl, elt, 0.0)));
              })
              .getResult(0);
    }
    Value mixed = contract(b, loc, "cgte,cgtd->tced", m, x4, {t, c, e, d});
    Value weights = transpose(b, loc, m, {2, 0, 1, 3}); // [T, C, g, E]
    b.replaceOp(op, {castTo(b, loc, mixed, op.getMixed().getType()),
                     castTo(b, loc, weights, op.getWeights().getType())});
    return success();
  }
};

struct LowerMotUnmix : OpRewritePattern<MotUnmixOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(MotUnmixOp op,
                                PatternRewriter &b) const override {
    Location loc = op.getLoc();
    Value y = op.getOutputs(), m = op.getWeights();
    OpFoldResult t = tensor::getMixedSize(b, loc, y, 0);
    OpFoldResult c = tensor::getMixedSize(b, loc, y, 1);
    OpFoldResult d = tensor::getMixedSize(b, loc, y, 3);
    OpFoldResult g = tensor::getMixedSize(b, loc, m, 2);
    Value out4 = contract(b, loc, "tcge,tced->cgtd", m, y, {c, g, t, d});
    Value out = collapse(b, loc, out4, {{0, 1}, {2}, {3}});
    b.replaceOp(op, castTo(b, loc, out, op.getType()));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Attention and RoPE
//===----------------------------------------------------------------------===//

/// The softmax scale of `op` (default 1/sqrt(dk)).
static Value attentionScale(OpBuilder &b, Location loc, AttentionOp op,
                            Value q, Type elt) {
  if (std::optional<APFloat> s = op.getScale())
    return fconst(b, loc, elt, s->convertToDouble());
  Value dk = arith::SIToFPOp::create(
      b, loc, elt,
      arith::IndexCastOp::create(b, loc, b.getI64Type(),
                                 tensor::DimOp::create(b, loc, q, 3)));
  return arith::DivFOp::create(b, loc, fconst(b, loc, elt, 1.0),
                               math::SqrtOp::create(b, loc, dk));
}

/// `scores * scale`, and with `causal` -inf where key j is not visible to
/// query row t (j > t + shift); t is `rowOffset` plus the index of dim
/// `rowDim`, j the index of dim `rowDim + 1`.
static Value scaleAndMask(OpBuilder &b, Location loc, Value scores,
                          Value scale, bool causal, Value shift,
                          int64_t rowDim, Value rowOffset) {
  Type elt = typeOf(scores).getElementType();
  return mapElements(
      b, loc, {scores}, elt, [&](OpBuilder &nb, Location nl, ValueRange a) {
        Value s = arith::MulFOp::create(nb, nl, a[0], scale);
        if (!causal)
          return s;
        Value t = linalg::IndexOp::create(nb, nl, rowDim);
        if (rowOffset)
          t = arith::AddIOp::create(nb, nl, t, rowOffset);
        Value j = linalg::IndexOp::create(nb, nl, rowDim + 1);
        Value visible = arith::CmpIOp::create(
            nb, nl, arith::CmpIPredicate::sle, j,
            arith::AddIOp::create(nb, nl, t, shift));
        Value ninf = arith::ConstantOp::create(
            nb, nl,
            nb.getFloatAttr(elt, APFloat::getInf(
                                     cast<FloatType>(elt).getFloatSemantics(),
                                     true)));
        return Value(arith::SelectOp::create(nb, nl, visible, s, ninf));
      });
}

/// Query rows per block of attention without a cache.
constexpr int64_t kQueryBlockRows = 32;

/// min(bound, end - start) as affine.min (end > start), whose constant
/// upper bound ValueBounds sees.
static Value minIndex(OpBuilder &b, Location loc, int64_t bound, Value end,
                      Value start) {
  MLIRContext *ctx = b.getContext();
  AffineExpr e = getAffineDimExpr(0, ctx), s = getAffineDimExpr(1, ctx);
  AffineMap map =
      AffineMap::get(2, 0, {getAffineConstantExpr(bound, ctx), e - s}, ctx);
  return affine::AffineMinOp::create(b, loc, map, ValueRange{end, start});
}

/// One block of query rows of one (batch, head), as forEachQueryBlock
/// hands it to its body.
struct QueryBlock {
  Value batch, head;
  Value t0;              // the block's first query row
  OpFoldResult rows;     // its rows: min(kQueryBlockRows, T - t0)
  Value cols;            // the keys it sees, from key 0
  Value shift;           // S - T: query t sees keys j <= t + shift
  Value scale;           // the softmax scale
  Value queries;         // its rows of q, [rows, dk]
  OpFoldResult dk, dv;
};

/// Attention without a cache as an scf.forall over (batch, head, block of
/// kQueryBlockRows query rows); `body` returns the block's output
/// [rows, dv], inserted at its rows. With `causal`, a block sees only the
/// keys its last row sees: cols = min(S, last row + S - T + 1) when that
/// is at least one key, else all S (a row that sees none is NaN, as the
/// full form makes it, or 0 with a finite sink), about half the
/// multiply-adds of the full square.
static Value forEachQueryBlock(
    OpBuilder &b, AttentionOp op, Value q, Value v,
    function_ref<Value(OpBuilder &, Location, const QueryBlock &)> body) {
  Location loc = op.getLoc();
  Type elt = typeOf(q).getElementType();
  auto sz = [&](Value t, int64_t d) { return tensor::getMixedSize(b, loc, t, d); };
  Value scale = attentionScale(b, loc, op, q, elt);
  bool causal = op.getCausal();
  Value c1 = idx(b, loc, 1);
  Value tq = tensor::DimOp::create(b, loc, q, 2);
  Value sk = tensor::DimOp::create(b, loc, v, 2);
  Value shift = arith::SubIOp::create(b, loc, sk, tq);
  Value blockRows = idx(b, loc, kQueryBlockRows);
  Value blocks = arith::CeilDivUIOp::create(b, loc, tq, blockRows);
  OpFoldResult dk = sz(q, 3), dv = sz(v, 3);
  Value out0 = emptyTensor(b, loc, {sz(q, 0), sz(q, 1), sz(q, 2), dv}, elt);
  return scf::ForallOp::create(
             b, loc,
             ArrayRef<OpFoldResult>{sz(q, 0), sz(q, 1),
                                    getAsOpFoldResult(blocks)},
             ValueRange{out0}, std::nullopt,
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               QueryBlock blk;
               blk.batch = args[0];
               blk.head = args[1];
               blk.t0 = arith::MulIOp::create(nb, nl, args[2], blockRows);
               // affine.min, so that the rows' bound is visible to
               // ValueBounds (moe-lower-to-host-abi sizes a parallel
               // body's private workspace with it).
               Value rows = minIndex(nb, nl, kQueryBlockRows, tq, blk.t0);
               blk.rows = rows;
               blk.cols = sk;
               if (causal) {
                 Value reach = arith::AddIOp::create(
                     nb, nl, arith::AddIOp::create(nb, nl, blk.t0, rows),
                     shift);
                 Value some = arith::CmpIOp::create(
                     nb, nl, arith::CmpIPredicate::sge, reach, c1);
                 Value fewer = arith::CmpIOp::create(
                     nb, nl, arith::CmpIPredicate::slt, reach, sk);
                 blk.cols = arith::SelectOp::create(
                     nb, nl, arith::AndIOp::create(nb, nl, some, fewer), reach,
                     sk);
               }
               blk.shift = shift;
               blk.scale = scale;
               blk.dk = dk;
               blk.dv = dv;
               OpFoldResult zero = nb.getIndexAttr(0), one = nb.getIndexAttr(1);
               SmallVector<OpFoldResult> unit(4, one);
               blk.queries = tensor::ExtractSliceOp::create(
                   nb, nl, tensorTypeOf({blk.rows, dk}, elt), q,
                   ArrayRef<OpFoldResult>{blk.batch, blk.head, blk.t0, zero},
                   ArrayRef<OpFoldResult>{one, one, blk.rows, dk}, unit);
               Value ob = body(nb, nl, blk);
               auto term = scf::InParallelOp::create(nb, nl);
               OpBuilder::InsertionGuard guard(nb);
               nb.setInsertionPointToStart(term.getBody());
               tensor::ParallelInsertSliceOp::create(
                   nb, nl, ob, args[3],
                   ArrayRef<OpFoldResult>{blk.batch, blk.head, blk.t0, zero},
                   ArrayRef<OpFoldResult>{one, one, blk.rows, dv}, unit);
             })
      .getResult(0);
}

/// Keys [j0, j0 + count) of (batch, head) from the keys transposed to
/// [B, H, dk, S] ([dk, count]) and from the values ([count, dv]).
static std::pair<Value, Value>
keyBlockSlices(OpBuilder &b, Location loc, const QueryBlock &blk, Value keysT,
               Value v, OpFoldResult j0, OpFoldResult count) {
  Type elt = typeOf(v).getElementType();
  OpFoldResult zero = b.getIndexAttr(0), one = b.getIndexAttr(1);
  SmallVector<OpFoldResult> unit(4, one);
  Value keys = tensor::ExtractSliceOp::create(
      b, loc, tensorTypeOf({blk.dk, count}, elt), keysT,
      ArrayRef<OpFoldResult>{blk.batch, blk.head, zero, j0},
      ArrayRef<OpFoldResult>{one, one, blk.dk, count}, unit);
  Value values = tensor::ExtractSliceOp::create(
      b, loc, tensorTypeOf({count, blk.dv}, elt), v,
      ArrayRef<OpFoldResult>{blk.batch, blk.head, j0, zero},
      ArrayRef<OpFoldResult>{one, one, count, blk.dv}, unit);
  return {keys, values};
}

/// The additive mask's block of `blk` for keys [j0, j0 + count)
/// (moe.attention's `mask`, [B or 1, H or 1, T or 1, S or 1]: a static 1
/// broadcasts): [rows, count], with 1 in place of rows or count where the
/// mask's T or S is a static 1. A dynamic B or H is read at index 0 where
/// it is 1 at run time (checkAttentionSizes allows 1 or q's size there).
static Value maskBlock(OpBuilder &b, Location loc, Value mask,
                       const QueryBlock &blk, OpFoldResult j0,
                       OpFoldResult count) {
  RankedTensorType mt = typeOf(mask);
  OpFoldResult zero = b.getIndexAttr(0), one = b.getIndexAttr(1);
  auto unit = [&](int64_t d) { return mt.getDimSize(d) == 1; };
  auto index = [&](int64_t d, OpFoldResult at) -> OpFoldResult {
    if (unit(d))
      return zero;
    if (!mt.isDynamicDim(d))
      return at;
    Value isOne =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                              tensor::DimOp::create(b, loc, mask, d),
                              arith::ConstantIndexOp::create(b, loc, 1));
    return arith::SelectOp::create(b, loc, isOne,
                                   arith::ConstantIndexOp::create(b, loc, 0),
                                   getValueOrCreateConstantIndexOp(b, loc, at))
        .getResult();
  };
  OpFoldResult batch = index(0, blk.batch);
  OpFoldResult head = index(1, blk.head);
  OpFoldResult row = unit(2) ? zero : blk.t0, rows = unit(2) ? one : blk.rows;
  OpFoldResult col = unit(3) ? zero : j0, cols = unit(3) ? one : count;
  return tensor::ExtractSliceOp::create(
      b, loc, tensorTypeOf({rows, cols}, mt.getElementType()), mask,
      ArrayRef<OpFoldResult>{batch, head, row, col},
      ArrayRef<OpFoldResult>{one, one, rows, cols},
      SmallVector<OpFoldResult>(4, one));
}

/// `scores` [rows, count] of `blk` for keys [j0, j0 + count) plus the
/// additive mask's block; `scores` when there is none.
static Value addMaskBlock(OpBuilder &b, Location loc, Value scores, Value mask,
                          const QueryBlock &blk, OpFoldResult j0,
                          OpFoldResult count) {
  if (!mask)
    return scores;
  RankedTensorType mt = typeOf(mask);
  Value block = maskBlock(b, loc, mask, blk, j0, count);
  MLIRContext *ctx = b.getContext();
  AffineExpr zero = getAffineConstantExpr(0, ctx);
  AffineMap id = AffineMap::getMultiDimIdentityMap(2, ctx);
  AffineMap read =
      AffineMap::get(2, 0,
                     {mt.getDimSize(2) == 1 ? zero : getAffineDimExpr(0, ctx),
                      mt.getDimSize(3) == 1 ? zero : getAffineDimExpr(1, ctx)},
                     ctx);
  Value init = emptyTensor(b, loc, tensor::getMixedSizes(b, loc, scores),
                           mt.getElementType());
  return linalg::GenericOp::create(
             b, loc, TypeRange{init.getType()}, ValueRange{scores, block},
             ValueRange{init}, SmallVector<AffineMap>{id, read, id},
             SmallVector<utils::IteratorType>(2, utils::IteratorType::parallel),
             [&](OpBuilder &nb, Location nl, ValueRange a) {
               yield(nb, nl, arith::AddFOp::create(nb, nl, a[0], a[1]));
             })
      .getResult(0);
}

/// Whether flashAttention may leave out the key block [j0, j0 + count) of
/// `blk`: every value of the mask's block is at most -1e30 (a causal or
/// padding mask's "masked", -inf or the float minimum) and every row's
/// running maximum `m` [rows, 1] is at least -1e20 (the row has seen a key
/// it may attend to). Each score of the block is then at most its own
/// value minus 1e30, below the row's maximum by far more than exp's
/// underflow (about -87.7: upstream's polynomial and expf return 0 there):
/// computed, the block would keep the maximum, scale l and acc by exp(0) =
/// 1 and add exact zeros, so leaving it out gives the same bits. (Unless a
/// hidden key's score is NaN, inf or beyond 1e29 in magnitude (a NaN or inf
/// in its key row), or its value row holds an inf or NaN, which 0 * v
/// would have spread as NaN; or in the sign of a zero output.) Reads the
/// mask's block once, against the block's rows x count x dk multiply-adds.
static Value maskedBlockSkippable(OpBuilder &b, Location loc, Value mask,
                                  const QueryBlock &blk, OpFoldResult j0,
                                  OpFoldResult count, Value m) {
  MLIRContext *ctx = b.getContext();
  Type maskElt = typeOf(mask).getElementType(),
       elt = typeOf(m).getElementType();
  double inf = std::numeric_limits<double>::infinity();
  // The maximum or minimum of a [n, 1] tensor, as a scalar.
  auto overRows = [&](Value x, bool isMax) -> Value {
    Type t = typeOf(x).getElementType();
    Value init = filledTensor(b, loc, {}, t, isMax ? -inf : inf);
    auto reduce = linalg::GenericOp::create(
        b, loc, TypeRange{init.getType()}, ValueRange{x}, ValueRange{init},
        SmallVector<AffineMap>{AffineMap::getMultiDimIdentityMap(2, ctx),
                               AffineMap::get(2, 0, {}, ctx)},
        SmallVector<utils::IteratorType>(2, utils::IteratorType::reduction),
        [&](OpBuilder &nb, Location nl, ValueRange a) {
          yield(nb, nl,
                isMax ? Value(arith::MaximumFOp::create(nb, nl, a[0], a[1]))
                      : Value(arith::MinimumFOp::create(nb, nl, a[0], a[1])));
        });
    return tensor::ExtractOp::create(b, loc, reduce.getResult(0));
  };
  // (Row maxima first: the long reduction is over contiguous columns.)
  Value maskMax = overRows(
      reduceKeep(b, loc, maskBlock(b, loc, mask, blk, j0, count), 1, true),
      true);
  Value seenMin = overRows(m, false);
  Value allMasked =
      arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OLE, maskMax,
                            fconst(b, loc, maskElt, -1e30));
  Value allSeen = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGE,
                                        seenMin, fconst(b, loc, elt, -1e20));
  return arith::AndIOp::create(b, loc, allMasked, allSeen);
}

/// `probs` with every NaN replaced by 0 where `op` has zero_nan_probs (the
/// exported guard Where(IsNaN(p), 0, p)); `probs` otherwise.
static Value guardNanProbs(OpBuilder &b, Location loc, AttentionOp op,
                           Value probs) {
  if (!op.getZeroNanProbs())
    return probs;
  Type elt = typeOf(probs).getElementType();
  return mapElements(b, loc, {probs}, elt,
                     [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
                       Value nan = arith::CmpFOp::create(
                           nb, nl, arith::CmpFPredicate::UNO, a[0], a[0]);
                       return arith::SelectOp::create(
                           nb, nl, nan, fconst(nb, nl, elt, 0.0), a[0]);
                     });
}

/// Attention without a cache, one block of query rows at a time
/// (forEachQueryBlock): the block's scores [rows, S'] against all the
/// keys it sees (kept in cache, never the whole [B, H, T, S]), scaled and
/// masked, their softmax, and the block's share of P·V. Every score,
/// maximum, sum and output element is computed by the same operations in
/// the same order as over the whole tensor (the keys left out would add
/// exact zeros), so the result is the same.
static Value blockedAttention(OpBuilder &b, AttentionOp op, Value q,
                              Value keysT, Value v, Value mask, Value sinks) {
  bool causal = op.getCausal();
  return forEachQueryBlock(
      b, op, q, v, [&](OpBuilder &nb, Location nl, const QueryBlock &blk) {
        OpFoldResult cols = blk.cols;
        auto [kb, vb] =
            keyBlockSlices(nb, nl, blk, keysT, v, nb.getIndexAttr(0), cols);
        Value scores =
            contract(nb, nl, "td,ds->ts", blk.queries, kb, {blk.rows, cols});
        Value masked = scaleAndMask(nb, nl, scores, blk.scale, causal,
                                    blk.shift, /*rowDim=*/0, blk.t0);
        masked =
            addMaskBlock(nb, nl, masked, mask, blk, nb.getIndexAttr(0), cols);
        Value probs = sinks ? softmaxWithSink(nb, nl, masked,
                                              tensor::ExtractOp::create(
                                                  nb, nl, sinks, blk.head))
                            : softmax(nb, nl, masked, 1);
        probs = guardNanProbs(nb, nl, op, probs);
        return contract(nb, nl, "ts,sv->tv", probs, vb, {blk.rows, blk.dv});
      });
}

/// `k`, `v` (and the caches `pk`, `pv` when set) of `op`, through run-time
/// checks that their dynamic sizes agree (C2, C6): B and H of all, dk of
/// q and the keys, S of k and v, P of the caches, dv of the values. A value
/// shorter than the keys would otherwise be read past its end. A B or H of
/// k and v that is 1 at run time where q's is not is repeated, as ONNX's
/// MatMul broadcasts it (the exported cores moe-raise-onnx raises); the
/// caches' must match.
static void checkAttentionSizes(OpBuilder &b, AttentionOp op, Value q, Value &k,
                                Value &v, Value &pk, Value &pv, Value &mask,
                                Value &sinks) {
  Location loc = op.getLoc();
  auto sz = [&](Value t, int64_t d) {
    return tensor::getMixedSize(b, loc, t, d);
  };
  declareErrorHook(b, op);
  for (int64_t d : {0, 1}) {
    k = broadcastDim(b, loc, k, d, sz(q, d), kErrorShapeMismatch);
    v = broadcastDim(b, loc, v, d, sz(q, d), kErrorShapeMismatch);
  }
  k = requireSize(b, loc, k, 3, sz(q, 3), kErrorShapeMismatch);
  v = requireSize(b, loc, v, 2, sz(k, 2), kErrorShapeMismatch);
  if (sinks)
    sinks = requireSize(b, loc, sinks, 0, sz(q, 1), kErrorShapeMismatch);
  if (pk) {
    for (int64_t d : {0, 1})
      pk = requireSize(b, loc, pk, d, sz(q, d), kErrorShapeMismatch);
    pk = requireSize(b, loc, pk, 3, sz(q, 3), kErrorShapeMismatch);
    pv = requireSize(b, loc, pv, 2, sz(pk, 2), kErrorShapeMismatch);
    for (int64_t d : {0, 1})
      pv = requireSize(b, loc, pv, d, sz(q, d), kErrorShapeMismatch);
    pv = requireSize(b, loc, pv, 3, sz(v, 3), kErrorShapeMismatch);
  }

  // The mask broadcast as ONNX's Add does: a static 1 is read in place at
  // index 0, and so is a B or H that is 1 at run time (maskBlock selects
  // the index; checked here to be 1 or q's); a T or S that is 1 at run
  // time is copied across (a block's rows and columns are slices of it).
  if (mask) {
    OpFoldResult want[4] = {sz(q, 0), sz(q, 1), sz(q, 2), sz(k, 2)};
    for (int64_t d = 0; d < 4; ++d) {
      if (typeOf(mask).getDimSize(d) == 1)
        continue;
      mask =
          d < 2
              ? requireSizeOrOne(b, loc, mask, d, want[d], kErrorShapeMismatch)
              : broadcastDim(b, loc, mask, d, want[d], kErrorShapeMismatch);
    }
  }
}

/// Whether `op`'s cache holds no position (what @prefill passes): it reads
/// nothing, and the form without a cache applies.
static bool hasEmptyPast(AttentionOp op) {
  Value pk = op.getPastKey(), pv = op.getPastValue();
  return pk && typeOf(pk).getDimSize(2) == 0 && typeOf(pv).getDimSize(2) == 0;
}

/// Attention without a cache, flash-style: per block of query rows
/// (forEachQueryBlock, with the same causal trimming of the keys), the
/// keys in blocks (full blocks of `keyBlock`, then static halvings down
/// to kMinKeyBlock, then a dynamic rest) with an online softmax (Milakov
/// and Gimelshein; FlashAttention's recurrence): a running row maximum m,
/// a running sum l of exp(score - m) and the unnormalised output acc,
/// each rescaled by exp(m_old - m_new) when a key block raises the
/// maximum; out = acc / l after the last block. The maximum subtracted is
/// 0 while it is -inf (a row whose keys so far all scored -inf: masked, or
/// an overflow), so such blocks add exact zeros instead of NaN; a row with
/// no finite score at all ends with l = 0 and is NaN, as the reference's
/// softmax makes it (with a finite sink, l starts at 1 and the row is 0),
/// and no keys at all (S = 0) give zeros, as the reference's empty P·V
/// does. The scores, their exponentials and the
/// block's share of P·V stay in a kQueryBlockRows x keyBlock tile (16 KB
/// at 32 x 128) instead of kQueryBlockRows x S. m, l and acc are
/// loop-carried tensors updated in place (each update writes its own
/// operand), so they bufferize to one buffer each and the loop body's
/// temporaries are given back every iteration. The sums are in another
/// order than the reference's (docs/tolerance.md).
static Value flashAttention(OpBuilder &b, AttentionOp op, Value q, Value keysT,
                            Value v, Value mask, Value sinks,
                            int64_t keyBlockSize, bool skipMaskedBlocks) {
  // The smallest static key block of a rest (one AVX-512 vector).
  constexpr int64_t kMinKeyBlock = 16;
  Type elt = typeOf(q).getElementType();
  MLIRContext *ctx = b.getContext();
  bool causal = op.getCausal();
  double inf = std::numeric_limits<double>::infinity();
  // Elementwise over `init`'s [rows, c] (written in place), reading
  // `inputs` of [rows, c] or, where `column[i]`, [rows, 1] broadcast.
  auto update = [&](OpBuilder &nb, Location nl, ValueRange inputs,
                    ArrayRef<bool> column, Value init,
                    function_ref<Value(OpBuilder &, Location, ValueRange)> fn) {
    AffineMap id = AffineMap::getMultiDimIdentityMap(2, ctx);
    AffineMap col = AffineMap::get(
        2, 0, {getAffineDimExpr(0, ctx), getAffineConstantExpr(0, ctx)}, ctx);
    SmallVector<AffineMap> maps;
    for (bool c : column)
      maps.push_back(c ? col : id);
    maps.push_back(id);
    return linalg::GenericOp::create(
               nb, nl, TypeRange{init.getType()}, inputs, ValueRange{init},
               maps,
               SmallVector<utils::IteratorType>(2,
                                                utils::IteratorType::parallel),
               [&](OpBuilder &bb, Location bl, ValueRange a) {
                 yield(bb, bl, fn(bb, bl, a));
               })
        .getResult(0);
  };
  // exp(x - m), with 0 for m while m is -inf.
  auto expBelow = [&](OpBuilder &nb, Location nl, Value x, Value m) -> Value {
    Value none = arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::OEQ, m,
                                       fconst(nb, nl, elt, -inf));
    Value safe =
        arith::SelectOp::create(nb, nl, none, fconst(nb, nl, elt, 0.0), m);
    return math::ExpOp::create(nb, nl, arith::SubFOp::create(nb, nl, x, safe));
  };
  return forEachQueryBlock(
      b, op, q, v, [&](OpBuilder &nb, Location nl, const QueryBlock &blk) {
        OpFoldResult one = nb.getIndexAttr(1);
        Value m0 = filledTensor(nb, nl, {blk.rows, one}, elt, -inf);
        Value l0 = filledTensor(nb, nl, {blk.rows, one}, elt, 0.0);
        if (sinks) {
          // The head's sink logit is one more key with no value: it starts
          // the running maximum, and exp(sink - sink) = 1 the sum (0 for a
          // sink of -inf, which then changes nothing).
          Value s = tensor::ExtractOp::create(nb, nl, sinks, blk.head);
          auto fill = [&](Value x) {
            return linalg::FillOp::create(
                       nb, nl, ValueRange{x},
                       ValueRange{emptyTensor(nb, nl, {blk.rows, one}, elt)})
                .getResult(0);
          };
          m0 = fill(s);
          l0 = fill(expBelow(nb, nl, s, s));
        }
        Value acc0 = filledTensor(nb, nl, {blk.rows, blk.dv}, elt, 0.0);
        // One key block at j0 of `count` keys (static for all blocks but
        // the last, so that their tiles are static and unmasked): the
        // updated m, l and acc.
        auto keyBlock = [&](OpBuilder &lb, Location ll, Value j0,
                            ValueRange carried,
                            OpFoldResult count) -> SmallVector<Value> {
          Value m = carried[0], l = carried[1], acc = carried[2];
          auto [kb, vb] = keyBlockSlices(lb, ll, blk, keysT, v, j0, count);
          Value scores =
              contract(lb, ll, "td,ds->ts", blk.queries, kb, {blk.rows, count});
          // Key j0 + j is masked where j > t + (shift - j0).
          Value masked = scaleAndMask(
              lb, ll, scores, blk.scale, causal,
              arith::SubIOp::create(lb, ll, blk.shift, j0), /*rowDim=*/0,
              blk.t0);
          masked = addMaskBlock(lb, ll, masked, mask, blk, j0, count);
          Value blockMax = reduceKeep(lb, ll, masked, 1, true);
          // The rescale of what came before, then the new maximum in place
          // of the old.
          Value corr = update(
              lb, ll, {m, blockMax}, {false, false},
              emptyTensor(lb, ll, {blk.rows, one}, elt),
              [&](OpBuilder &bb, Location bl, ValueRange a) {
                return expBelow(bb, bl, a[0],
                                arith::MaximumFOp::create(bb, bl, a[0], a[1]));
              });
          Value mNew = update(lb, ll, {blockMax}, {false}, m,
                              [&](OpBuilder &bb, Location bl, ValueRange a) {
                                return Value(arith::MaximumFOp::create(
                                    bb, bl, a[1], a[0]));
                              });
          Value p = update(lb, ll, {mNew}, {true}, masked,
                           [&](OpBuilder &bb, Location bl, ValueRange a) {
                             return expBelow(bb, bl, a[1], a[0]);
                           });
          Value blockSum = reduceKeep(lb, ll, p, 1, false);
          Value lNew = update(
              lb, ll, {corr, blockSum}, {false, false}, l,
              [&](OpBuilder &bb, Location bl, ValueRange a) {
                return Value(arith::AddFOp::create(
                    bb, bl, arith::MulFOp::create(bb, bl, a[2], a[0]), a[1]));
              });
          Value scaled = update(lb, ll, {corr}, {true}, acc,
                                [&](OpBuilder &bb, Location bl, ValueRange a) {
                                  return Value(
                                      arith::MulFOp::create(bb, bl, a[1], a[0]));
                                });
          Value accNew = contractInto(lb, ll, "ts,sv->tv", p, vb, scaled);
          return {mNew, lNew, accNew};
        };
        // The key block at j0, or, where the mask leaves all of it out
        // and every row has seen a key (maskedBlockSkippable), nothing.
        auto keyStep = [&](OpBuilder &lb, Location ll, Value j0,
                           ValueRange carried, OpFoldResult count) {
          if (mask && skipMaskedBlocks) {
            Value skip =
                maskedBlockSkippable(lb, ll, mask, blk, j0, count, carried[0]);
            auto branch = scf::IfOp::create(
                lb, ll, skip,
                [&](OpBuilder &tb, Location tl) {
                  scf::YieldOp::create(tb, tl, carried);
                },
                [&](OpBuilder &eb, Location el) {
                  scf::YieldOp::create(eb, el,
                                       keyBlock(eb, el, j0, carried, count));
                });
            scf::YieldOp::create(lb, ll, branch.getResults());
            return;
          }
          scf::YieldOp::create(lb, ll, keyBlock(lb, ll, j0, carried, count));
        };
        // The full blocks, then the rest in static halvings down to
        // kMinKeyBlock keys (each at most once), then what is left
        // (< kMinKeyBlock keys): the register tiles of every block but the
        // last are static and unmasked. (A dynamic block's column tail is
        // a masked tile whose masks the k loop recomputed: with one
        // dynamic rest block the causal blocks' rests took most of the
        // attention's time.)
        Value from = idx(nb, nl, 0);
        SmallVector<Value> state = {m0, l0, acc0};
        for (int64_t size = keyBlockSize; size >= kMinKeyBlock;
             size = size == keyBlockSize
                        ? static_cast<int64_t>(
                              llvm::PowerOf2Ceil(keyBlockSize)) / 2
                        : size / 2) {
          Value step = idx(nb, nl, size);
          Value left = arith::SubIOp::create(nb, nl, blk.cols, from);
          Value to = arith::AddIOp::create(
              nb, nl, from,
              arith::MulIOp::create(
                  nb, nl, arith::DivUIOp::create(nb, nl, left, step), step));
          auto loop = scf::ForOp::create(
              nb, nl, from, to, step, state,
              [&](OpBuilder &lb, Location ll, Value j0, ValueRange carried) {
                keyStep(lb, ll, j0, carried, lb.getIndexAttr(size));
              });
          state.assign(loop.getResults().begin(), loop.getResults().end());
          from = to;
        }
        auto loop = scf::ForOp::create(
            nb, nl, from, blk.cols, idx(nb, nl, keyBlockSize), state,
            [&](OpBuilder &lb, Location ll, Value j0, ValueRange carried) {
              // (One iteration, unless keyBlockSize < kMinKeyBlock.)
              keyStep(lb, ll, j0, carried,
                      minIndex(lb, ll, keyBlockSize, blk.cols, j0));
            });
        // l is 0 only where no key scored above -inf: no keys at all
        // (S = 0: zeros, as the reference's empty P·V) or none a row may
        // see with a finite score (NaN, as the reference's softmax). With
        // zero_nan_probs such rows are 0, and so are rows whose l is NaN
        // (a NaN or +inf score: the reference's softmax is NaN across the
        // row, since every probability divides by its NaN sum, and the
        // guard makes each 0).
        bool zeroNan = op.getZeroNanProbs();
        Value noKeys = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::eq,
                                             blk.cols, idx(nb, nl, 0));
        Value empty = arith::SelectOp::create(
            nb, nl, noKeys, fconst(nb, nl, elt, 0.0),
            fconst(nb, nl, elt,
                   zeroNan ? 0.0 : std::numeric_limits<double>::quiet_NaN()));
        // (No keys at all also where a sink of +inf or NaN made l NaN.)
        return update(nb, nl, {loop.getResult(1)}, {true}, loop.getResult(2),
                      [&](OpBuilder &bb, Location bl, ValueRange a) {
                        Value none = arith::OrIOp::create(
                            bb, bl,
                            arith::CmpFOp::create(
                                bb, bl,
                                zeroNan ? arith::CmpFPredicate::ULE
                                        : arith::CmpFPredicate::OEQ,
                                a[0], fconst(bb, bl, elt, 0.0)),
                            noKeys);
                        return Value(arith::SelectOp::create(
                            bb, bl, none, empty,
                            arith::DivFOp::create(bb, bl, a[1], a[0])));
                      });
      });
}

struct LowerAttention : OpRewritePattern<AttentionOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(AttentionOp op,
                                PatternRewriter &b) const override {
    Location loc = op.getLoc();
    Value q = op.getQuery(), k = op.getKey(), v = op.getValue();
    Value pk = op.getPastKey(), pv = op.getPastValue();
    // A cache of no position (what @prefill passes) reads nothing: the
    // form without a cache, blocked and causally trimmed.
    if (hasEmptyPast(op))
      pk = pv = Value();
    Type elt = typeOf(q).getElementType();
    auto sz = [&](Value t, int64_t d) {
      return tensor::getMixedSize(b, loc, t, d);
    };
    Value mask = op.getMask(), sinks = op.getSinks();
    checkAttentionSizes(b, op, q, k, v, pk, pv, mask, sinks);
    if (!pk) {
      // q k^T over the keys transposed to [B, H, dk, S] once (B*H*S*dk
      // elements, against T*S*dk multiply-adds): the score dim s is then
      // contiguous in the right-hand side, so the register tiles load it
      // as vectors; read as "bhsd" it is strided and loaded lane by lane.
      // The terms of each score keep their order (d ascending).
      Value keysT = transpose(b, loc, k, {0, 1, 3, 2});
      b.replaceOp(op, castTo(b, loc,
                             blockedAttention(b, op, q, keysT, v, mask, sinks),
                             op.getType()));
      return success();
    }
    // With a cache the new keys are a decode step's few (one per new
    // token), read in place as the cached ones are: with one query row
    // both are dot products over the contiguous d
    // (moe-cpu-tile-contractions{dot-products}). Over a transposed copy
    // the one row was a register tile whose column tail, S = 1 of a
    // vector's lanes, was masked on every k step (10-20 us per layer of
    // MoEUT-44M's decode, for 4 x 82 multiply-adds).
    // The parts named for a profile (build::partLoc): "<node>.scores",
    // ".softmax", ".values".
    Location base = loc;
    loc = partLoc(base, "scores");
    Value scores = contract(b, loc, "bhtd,bhsd->bhts", q, k,
                            {sz(q, 0), sz(q, 1), sz(q, 2), sz(k, 2)});
    // With a cache: the scores of the P cached keys, read in place
    // (head-major: each head's rows are contiguous), then the new ones,
    // side by side [B, H, T, P + S].
    Value sk = tensor::DimOp::create(b, loc, k, 2);
    OpFoldResult p;
    if (pk) {
      p = sz(pk, 2);
      Value past = contract(b, loc, "bhtd,bhpd->bhtp", q, pk,
                            {sz(q, 0), sz(q, 1), sz(q, 2), p});
      sk = arith::AddIOp::create(b, loc, getValueOrCreateConstantIndexOp(
                                             b, loc, p),
                                 sk);
      SmallVector<OpFoldResult> all = {sz(q, 0), sz(q, 1), sz(q, 2), sk};
      Value both = emptyTensor(b, loc, all, elt);
      SmallVector<OpFoldResult> zero(4, b.getIndexAttr(0)),
          ones(4, b.getIndexAttr(1));
      both = tensor::InsertSliceOp::create(
          b, loc, past, both, zero,
          SmallVector<OpFoldResult>{all[0], all[1], all[2], p}, ones);
      SmallVector<OpFoldResult> at = zero;
      at[3] = p;
      scores = tensor::InsertSliceOp::create(
          b, loc, scores, both, at,
          SmallVector<OpFoldResult>{all[0], all[1], all[2], sz(k, 2)}, ones);
    }
    // Scale (default 1/sqrt(dk)) and the causal mask.
    loc = partLoc(base, "softmax");
    Value scale = attentionScale(b, loc, op, q, elt);
    Value tq = tensor::DimOp::create(b, loc, q, 2);
    Value shift = arith::SubIOp::create(b, loc, sk, tq);
    Value masked = scaleAndMask(b, loc, scores, scale, op.getCausal(), shift,
                                /*rowDim=*/2, /*rowOffset=*/Value());
    Value probs = guardNanProbs(b, loc, op, softmax(b, loc, masked, 3));
    loc = partLoc(base, "values");
    if (!pk) {
      Value out = contract(b, loc, "bhts,bhsv->bhtv", probs, v,
                           {sz(q, 0), sz(q, 1), sz(q, 2), sz(v, 3)});
      b.replaceOp(op, castTo(b, loc, out, op.getType()));
      return success();
    }
    // The cached values' share plus the new values' share.
    SmallVector<OpFoldResult> zero(4, b.getIndexAttr(0)),
        ones(4, b.getIndexAttr(1));
    SmallVector<OpFoldResult> lead = {sz(q, 0), sz(q, 1), sz(q, 2)};
    auto columns = [&](OpFoldResult from, OpFoldResult count) {
      SmallVector<OpFoldResult> offsets = zero, sizes = lead;
      offsets[3] = from;
      sizes.push_back(count);
      return tensor::ExtractSliceOp::create(b, loc, probs, offsets, sizes,
                                            ones)
          .getResult();
    };
    SmallVector<OpFoldResult> outSizes = {sz(q, 0), sz(q, 1), sz(q, 2),
                                          sz(v, 3)};
    Value fromPast = contract(b, loc, "bhtp,bhpv->bhtv",
                              columns(b.getIndexAttr(0), p), pv, outSizes);
    Value fromNew = contract(b, loc, "bhts,bhsv->bhtv",
                             columns(p, sz(k, 2)), v, outSizes);
    Value out = mapElements(
        b, loc, {fromPast, fromNew}, elt,
        [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
          return arith::AddFOp::create(nb, nl, a[0], a[1]);
        });
    b.replaceOp(op, castTo(b, loc, out, op.getType()));
    return success();
  }
};

/// moe.attention without a cache (or with an empty one) as flashAttention;
/// benefit 2, ahead of LowerAttention when both are in a pattern set.
struct LowerAttentionFlash : OpRewritePattern<AttentionOp> {
  LowerAttentionFlash(MLIRContext *ctx, int64_t keyBlock, bool skipMaskedBlocks)
      : OpRewritePattern(ctx, /*benefit=*/2), keyBlock(keyBlock),
        skipMaskedBlocks(skipMaskedBlocks) {}
  LogicalResult matchAndRewrite(AttentionOp op,
                                PatternRewriter &b) const override {
    if (op.getPastKey() && !hasEmptyPast(op))
      return b.notifyMatchFailure(op, "a cache: LowerAttention's form");
    Value q = op.getQuery(), k = op.getKey(), v = op.getValue();
    Value pk, pv, mask = op.getMask(), sinks = op.getSinks();
    checkAttentionSizes(b, op, q, k, v, pk, pv, mask, sinks);
    Value keysT = transpose(b, op.getLoc(), k, {0, 1, 3, 2});
    b.replaceOp(op, castTo(b, op.getLoc(),
                           flashAttention(b, op, q, keysT, v, mask, sinks,
                                          keyBlock, skipMaskedBlocks),
                           op.getType()));
    return success();
  }

private:
  int64_t keyBlock;
  bool skipMaskedBlocks;
};

struct LowerRope : OpRewritePattern<RopeOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(RopeOp op, PatternRewriter &b) const override {
    Location loc = op.getLoc();
    Value x = op.getInput();
    Type elt = typeOf(x).getElementType();
    double fraction = op.getRotateFraction().convertToDouble();
    double base = op.getBase().convertToDouble();
    // r = floor(dh * fraction) rounded down to an even number (computed at
    // run time when dh is dynamic): half = floor(dh * fraction) / 2,
    // r = 2 * half.
    Value dh = tensor::DimOp::create(b, loc, x, 3);
    Value dhF = arith::SIToFPOp::create(
        b, loc, b.getF64Type(),
        arith::IndexCastOp::create(b, loc, b.getI64Type(), dh));
    Value floorF = math::FloorOp::create(
        b, loc,
        arith::MulFOp::create(b, loc, dhF, fconst(b, loc, b.getF64Type(),
                                                  fraction)));
    Value half = arith::DivUIOp::create(
        b, loc,
        arith::IndexCastOp::create(
            b, loc, b.getIndexType(),
            arith::FPToSIOp::create(b, loc, b.getI64Type(), floorF)),
        idx(b, loc, 2));
    Value r = arith::MulIOp::create(b, loc, half, idx(b, loc, 2));
    Value rE = arith::SIToFPOp::create(
        b, loc, elt,
        arith::IndexCastOp::create(b, loc, b.getI64Type(), r));
    auto toE = [&](OpBuilder &nb, Location nl, Value index) -> Value {
      return arith::SIToFPOp::create(
          nb, nl, elt,
          arith::IndexCastOp::create(nb, nl, nb.getI64Type(), index));
    };
    // cos and sin of theta = (offset + t) * base^(-2 fi / r), once per
    // (position, frequency) in a [T, max(half, 1)] table, not once per
    // element of every head (the extra column when half = 0 keeps the reads below in
    // bounds; it is never selected).
    Value positions = tensor::DimOp::create(b, loc, x, 1);
    Value offset = op.getOffset() ? op.getOffset() : idx(b, loc, 0);
    Value columns = arith::MaxUIOp::create(b, loc, half, idx(b, loc, 1));
    SmallVector<OpFoldResult> tableSizes = {positions, columns};
    Value cosInit = emptyTensor(b, loc, tableSizes, elt);
    Value sinInit = emptyTensor(b, loc, tableSizes, elt);
    AffineMap id2 = b.getMultiDimIdentityMap(2);
    auto table = linalg::GenericOp::create(
        b, loc, TypeRange{cosInit.getType(), sinInit.getType()}, ValueRange{},
        ValueRange{cosInit, sinInit}, SmallVector<AffineMap>{id2, id2},
        SmallVector<utils::IteratorType>(2, utils::IteratorType::parallel),
        [&](OpBuilder &nb, Location nl, ValueRange) {
          Value t = arith::AddIOp::create(
              nb, nl, linalg::IndexOp::create(nb, nl, 0), offset);
          Value fi = linalg::IndexOp::create(nb, nl, 1);
          Value expo = arith::DivFOp::create(
              nb, nl,
              arith::MulFOp::create(nb, nl, toE(nb, nl, fi),
                                    fconst(nb, nl, elt, -2.0)),
              rE);
          Value invFreq =
              math::PowFOp::create(nb, nl, fconst(nb, nl, elt, base), expo);
          Value theta = arith::MulFOp::create(nb, nl, toE(nb, nl, t), invFreq);
          linalg::YieldOp::create(
              nb, nl,
              ValueRange{math::CosOp::create(nb, nl, theta).getResult(),
                         math::SinOp::create(nb, nl, theta).getResult()});
        });
    Value cosTable = table.getResult(0), sinTable = table.getResult(1);
    Value out = mapElements(
        b, loc, {x}, elt, [&](OpBuilder &nb, Location nl, ValueRange a) {
          Value bb = linalg::IndexOp::create(nb, nl, 0);
          Value t = linalg::IndexOp::create(nb, nl, 1);
          Value h = linalg::IndexOp::create(nb, nl, 2);
          Value i = linalg::IndexOp::create(nb, nl, 3);
          Value inFirst = arith::CmpIOp::create(nb, nl,
                                                arith::CmpIPredicate::ult, i,
                                                half);
          Value inRot = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::ult,
                                              i, r);
          // Frequency index and partner element (both clamped in range
          // outside the rotated part, where the result is x itself).
          Value zero = idx(nb, nl, 0);
          Value fi = arith::SelectOp::create(
              nb, nl, inFirst, i, arith::SubIOp::create(nb, nl, i, half));
          Value safeFi = arith::SelectOp::create(nb, nl, inRot, fi, zero);
          Value partner = arith::SelectOp::create(
              nb, nl, inFirst, arith::AddIOp::create(nb, nl, i, half),
              arith::SubIOp::create(nb, nl, i, half));
          Value safePartner = arith::SelectOp::create(nb, nl, inRot, partner, i);
          Value other = tensor::ExtractOp::create(
              nb, nl, x, ValueRange{bb, t, h, safePartner});
          Value cos = tensor::ExtractOp::create(nb, nl, cosTable,
                                                ValueRange{t, safeFi});
          Value sin = tensor::ExtractOp::create(nb, nl, sinTable,
                                                ValueRange{t, safeFi});
          Value xc = arith::MulFOp::create(nb, nl, a[0], cos);
          Value os = arith::MulFOp::create(nb, nl, other, sin);
          Value first = arith::SubFOp::create(nb, nl, xc, os);
          Value second = arith::AddFOp::create(nb, nl, xc, os);
          Value rotated =
              arith::SelectOp::create(nb, nl, inFirst, first, second);
          return Value(arith::SelectOp::create(nb, nl, inRot, rotated, a[0]));
        });
    b.replaceOp(op, out);
    return success();
  }
};

/// tensor.dim of a tensor.expand_shape result as the expand's own size for
/// that dim. Upstream's fold (tensor.dim canonicalization) handles only a
/// dim alone with dynamic size in its group; a computed ONNX Reshape gives
/// groups of several (`[B, T, H, dk]` from one flat dim), and their dims
/// then stayed unknown: an elementwise op's broadcast check on them kept
/// its broadcast branches (the residual Add after an attention layer
/// compiled eight more loops). The sizes are the expand's operands.
struct DimOfExpandShape : OpRewritePattern<tensor::DimOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(tensor::DimOp op,
                                PatternRewriter &b) const override {
    auto expand = op.getSource().getDefiningOp<tensor::ExpandShapeOp>();
    std::optional<int64_t> dim = op.getConstantIndex();
    if (!expand || !dim || *dim < 0 || *dim >= expand.getResultType().getRank())
      return b.notifyMatchFailure(op, "not a known dim of an expand_shape");
    OpFoldResult size = expand.getMixedOutputShape()[*dim];
    b.replaceOp(op, getValueOrCreateConstantIndexOp(b, op.getLoc(), size));
    return success();
  }
};

struct ConvertMoeToLinalgPass
    : moe::impl::ConvertMoeToLinalgBase<ConvertMoeToLinalgPass> {
  using Base::Base;
  void runOnOperation() override {
    if (flashKeyBlock < 0) {
      getOperation()->emitError()
          << "convert-moe-to-linalg: flash-key-block must be 0 (off) or "
             "positive, got "
          << static_cast<int64_t>(flashKeyBlock);
      return signalPassFailure();
    }
    if (fuseExpertPairs) {
      // The pattern applied to the down projections of the pairs only
      // (applyPatternsGreedily would also erase any dead op, a composite
      // moe op left over included, which must be reported below).
      SmallVector<Operation *> downs;
      getOperation()->walk([&](GroupedMatmulOp op) {
        if (fusableUpProjection(op))
          downs.push_back(op);
      });
      RewritePatternSet pairs(&getContext());
      populateMoeExpertPairPatterns(pairs);
      GreedyRewriteConfig config;
      config.setStrictness(GreedyRewriteStrictness::ExistingOps)
          .enableFolding(false)
          .enableConstantCSE(false);
      if (!downs.empty())
        (void)applyOpPatternsGreedily(downs, std::move(pairs), config);
    }
    RewritePatternSet patterns(&getContext());
    populateMoeToLinalgPatterns(patterns);
    if (fuseRouting)
      populateMoeFusedRoutingPatterns(patterns);
    if (flashKeyBlock > 0)
      populateMoeFlashAttentionPatterns(patterns, flashKeyBlock,
                                        skipMaskedKeyBlocks);
    walkAndApplyPatterns(getOperation(), std::move(patterns));
    // Weight layouts after their users: a grouped matmul reads the panels
    // where they are, and so does a contraction reading a dense weight's
    // (the reshapes that fed it go with it), so only the layouts something
    // else reads are copied.
    RewritePatternSet contractions(&getContext());
    populateMoeContractOverPanelsPatterns(contractions);
    walkAndApplyPatterns(getOperation(), std::move(contractions));
    // The reshapes and slices of a layout that nothing reads any more.
    SmallVector<Operation *> unread;
    std::function<bool(Operation *)> unused = [&](Operation *op) {
      return isa<tensor::CollapseShapeOp, tensor::ExtractSliceOp>(op) &&
             llvm::all_of(op->getUsers(), unused);
    };
    getOperation()->walk([&](UnpackPanelsOp op) {
      for (Operation *user : op->getUsers())
        if (unused(user))
          unread.push_back(user);
    });
    for (Operation *op : unread) {
      // Users first (a slice of the reshape).
      SmallVector<Operation *> chain{op};
      for (size_t i = 0; i < chain.size(); ++i)
        llvm::append_range(chain, chain[i]->getUsers());
      for (Operation *dead : llvm::reverse(chain))
        dead->erase();
    }
    RewritePatternSet layouts(&getContext());
    populateMoeWeightLayoutToLinalgPatterns(layouts);
    walkAndApplyPatterns(getOperation(), std::move(layouts));
    RewritePatternSet dims(&getContext());
    dims.add<DimOfExpandShape>(&getContext());
    walkAndApplyPatterns(getOperation(), std::move(dims));
    WalkResult left = getOperation()->walk([&](Operation *op) {
      if (isa<MoeDialect>(op->getDialect())) {
        op->emitError() << "'" << op->getName()
                        << "' has no lowering here; composite ops need "
                           "moe-decompose first";
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (left.wasInterrupted())
      signalPassFailure();
  }
};

} // namespace

void mlir::moe::populateMoeToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<LowerRoute, LowerSwitchRoute, LowerTreeRoute, LowerDispatch,
               LowerGroupedMatmul, LowerCombine, LowerMotMix, LowerMotUnmix,
               LowerAttention, LowerRope>(patterns.getContext());
}

void mlir::moe::populateMoeFusedRoutingPatterns(RewritePatternSet &patterns) {
  patterns.add<LowerRouteFused>(patterns.getContext());
}

void mlir::moe::populateMoeExpertPairPatterns(RewritePatternSet &patterns) {
  patterns.add<LowerGroupedMatmulPair>(patterns.getContext());
}

void mlir::moe::populateMoeContractOverPanelsPatterns(
    RewritePatternSet &patterns) {
  patterns.add<ContractOverUnpackedPanels>(patterns.getContext());
}

void mlir::moe::populateMoeWeightLayoutToLinalgPatterns(
    RewritePatternSet &patterns) {
  patterns.add<LowerUnpackPanels>(patterns.getContext());
}

void mlir::moe::populateMoeFlashAttentionPatterns(RewritePatternSet &patterns,
                                                  int64_t keyBlock,
                                                  bool skipMaskedBlocks) {
  assert(keyBlock > 0 && "a key block of at least one key");
  patterns.add<LowerAttentionFlash>(patterns.getContext(), keyBlock,
                                    skipMaskedBlocks);
}

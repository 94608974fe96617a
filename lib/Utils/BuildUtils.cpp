//===- BuildUtils.cpp - IR-building helpers for moe rewrites ---------------===//

#include "moe/Utils/BuildUtils.h"
#include "moe/Utils/RuntimeErrors.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/IR/LinalgInterfaces.h"
#include "mlir/Dialect/Linalg/Utils/Utils.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/CheckedArithmetic.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::build;

OpFoldResult moe::build::sizeOf(OpBuilder &b, Location loc, Value v, int64_t dim) {
  return tensor::getMixedSize(b, loc, v, dim);
}

OpFoldResult moe::build::mulSizes(OpBuilder &b, Location loc, OpFoldResult a,
                              OpFoldResult c) {
  std::optional<int64_t> ca = getConstantIntValue(a),
                         cc = getConstantIntValue(c);
  if (ca && cc)
    return b.getIndexAttr(*ca * *cc);
  if (cc && *cc == 1)
    return a;
  if (ca && *ca == 1)
    return c;
  return arith::MulIOp::create(b, loc,
                               getValueOrCreateConstantIndexOp(b, loc, a),
                               getValueOrCreateConstantIndexOp(b, loc, c))
      .getResult();
}

OpFoldResult moe::build::addSizes(OpBuilder &b, Location loc, OpFoldResult a,
                                  OpFoldResult c) {
  std::optional<int64_t> ca = getConstantIntValue(a),
                         cc = getConstantIntValue(c);
  if (ca && cc)
    return b.getIndexAttr(*ca + *cc);
  if (cc && *cc == 0)
    return a;
  if (ca && *ca == 0)
    return c;
  return arith::AddIOp::create(b, loc,
                               getValueOrCreateConstantIndexOp(b, loc, a),
                               getValueOrCreateConstantIndexOp(b, loc, c))
      .getResult();
}

OpFoldResult moe::build::divSizes(OpBuilder &b, Location loc, OpFoldResult a,
                              OpFoldResult c) {
  std::optional<int64_t> ca = getConstantIntValue(a),
                         cc = getConstantIntValue(c);
  if (ca && cc && *cc != 0)
    return b.getIndexAttr(*ca / *cc);
  if (cc && *cc == 1)
    return a;
  return arith::DivUIOp::create(b, loc,
                                getValueOrCreateConstantIndexOp(b, loc, a),
                                getValueOrCreateConstantIndexOp(b, loc, c))
      .getResult();
}

int64_t moe::build::staticMul(OpFoldResult a, int64_t c) {
  std::optional<int64_t> ca = getConstantIntValue(a);
  std::optional<int64_t> product =
      ca ? llvm::checkedMul(*ca, c) : std::nullopt;
  return product ? *product : ShapedType::kDynamic;
}

RankedTensorType moe::build::tensorTypeOf(ArrayRef<OpFoldResult> sizes,
                                      Type elementType) {
  SmallVector<int64_t> shape = llvm::map_to_vector(sizes, [](OpFoldResult s) {
    std::optional<int64_t> c = getConstantIntValue(s);
    return c ? *c : ShapedType::kDynamic;
  });
  return RankedTensorType::get(shape, elementType);
}

RankedTensorType moe::build::matrixType(OpFoldResult rows, int64_t cols,
                                    Type elementType) {
  std::optional<int64_t> r = getConstantIntValue(rows);
  return RankedTensorType::get({r ? *r : ShapedType::kDynamic, cols},
                               elementType);
}

Value moe::build::emptyTensor(OpBuilder &b, Location loc,
                          ArrayRef<OpFoldResult> sizes, Type elementType) {
  return tensor::EmptyOp::create(b, loc, sizes, elementType);
}

Value moe::build::filledTensor(OpBuilder &b, Location loc,
                           ArrayRef<OpFoldResult> sizes, Type elementType,
                           double value) {
  Value init = emptyTensor(b, loc, sizes, elementType);
  Value cst = arith::ConstantOp::create(
      b, loc, b.getFloatAttr(elementType, value));
  return linalg::FillOp::create(b, loc, cst, init).getResult(0);
}

Value moe::build::contract(OpBuilder &b, Location loc, StringRef spec, Value lhs,
                       Value rhs, ArrayRef<OpFoldResult> outSizes) {
  Type elementType = cast<RankedTensorType>(lhs.getType()).getElementType();
  return contractInto(b, loc, spec, lhs, rhs,
                      filledTensor(b, loc, outSizes, elementType, 0.0));
}

Value moe::build::contractInto(OpBuilder &b, Location loc, StringRef spec,
                               Value lhs, Value rhs, Value init) {
  // Parse "ab,cb->ac": the loops are the output's letters (parallel) followed
  // by the letters it lacks (reductions), the canonical contraction order.
  auto [inputs, out] = spec.split("->");
  auto [lhsSpec, rhsSpec] = inputs.split(',');
  std::string letters = out.str();
  for (char c : (lhsSpec + rhsSpec).str())
    if (letters.find(c) == std::string::npos)
      letters.push_back(c);
  MLIRContext *ctx = b.getContext();
  auto mapFor = [&](StringRef operand) {
    SmallVector<AffineExpr> exprs;
    for (char c : operand)
      exprs.push_back(getAffineDimExpr(letters.find(c), ctx));
    return AffineMap::get(letters.size(), 0, exprs, ctx);
  };
  SmallVector<AffineMap> maps = {mapFor(lhsSpec), mapFor(rhsSpec),
                                 mapFor(out)};
  SmallVector<utils::IteratorType> iterators;
  for (char c : letters)
    iterators.push_back(out.contains(c) ? utils::IteratorType::parallel
                                        : utils::IteratorType::reduction);

  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{init.getType()}, ValueRange{lhs, rhs},
      ValueRange{init}, maps, iterators,
      [](OpBuilder &nb, Location nl, ValueRange args) {
        Value prod = arith::MulFOp::create(nb, nl, args[0], args[1]);
        Value sum = arith::AddFOp::create(nb, nl, args[2], prod);
        linalg::YieldOp::create(nb, nl, sum);
      });
  return generic.getResult(0);
}

Value moe::build::selectorScores(OpBuilder &b, Location loc, Value x, Value sel,
                                 ArrayRef<OpFoldResult> outSizes) {
  if (auto t = sel.getDefiningOp<linalg::TransposeOp>();
      t && t.getPermutation() == ArrayRef<int64_t>{1, 0} &&
      t.hasPureTensorSemantics())
    return contract(b, loc, "nd,de->ne", x, t.getInput(), outSizes);
  return contract(b, loc, "nd,ed->ne", x, sel, outSizes);
}

bool moe::build::isContractionOverColumns(linalg::GenericOp op) {
  if (!op.hasPureTensorSemantics() || op.getNumDpsInputs() != 2 ||
      op.getNumDpsInits() != 1 || !linalg::isaContractionOpInterface(op))
    return false;
  auto rhsType =
      dyn_cast<RankedTensorType>(op.getDpsInputOperand(1)->get().getType());
  auto initType =
      dyn_cast<RankedTensorType>(op.getDpsInitOperand(0)->get().getType());
  if (!rhsType || rhsType.getRank() != 2 || !rhsType.hasStaticShape() ||
      !initType || initType.getRank() == 0 ||
      initType.getDimSize(initType.getRank() - 1) != rhsType.getDimSize(1))
    return false;
  AffineMap rhsMap = op.getMatchingIndexingMap(op.getDpsInputOperand(1));
  AffineMap lhsMap = op.getMatchingIndexingMap(op.getDpsInputOperand(0));
  AffineMap outMap = op.getMatchingIndexingMap(op.getDpsInitOperand(0));
  auto kDim = dyn_cast<AffineDimExpr>(rhsMap.getResult(0));
  auto nDim = dyn_cast<AffineDimExpr>(rhsMap.getResult(1));
  return kDim && nDim && outMap.getResults().back() == nDim &&
         !lhsMap.isFunctionOfDim(nDim.getPosition()) &&
         !outMap.dropResult(outMap.getNumResults() - 1)
              .isFunctionOfDim(nDim.getPosition()) &&
         linalg::isReductionIterator(
             op.getIteratorTypesArray()[kDim.getPosition()]) &&
         linalg::isParallelIterator(
             op.getIteratorTypesArray()[nDim.getPosition()]);
}

bool moe::build::canContractOverPanels(linalg::GenericOp op,
                                       RankedTensorType panelType) {
  if (!isContractionOverColumns(op))
    return false;
  auto rhsType =
      cast<RankedTensorType>(op.getDpsInputOperand(1)->get().getType());
  int64_t k = rhsType.getDimSize(0), n = rhsType.getDimSize(1);
  if (!panelType || panelType.getRank() != 3 || !panelType.hasStaticShape() ||
      panelType.getElementType() != rhsType.getElementType() ||
      panelType.getDimSize(1) != k)
    return false;
  int64_t numPanels = panelType.getDimSize(0), width = panelType.getDimSize(2);
  int64_t padded = numPanels * width;
  if (numPanels < 1 || width < 1 || padded < n || padded - width >= n)
    return false;
  auto fill = op.getDpsInitOperand(0)->get().getDefiningOp<linalg::FillOp>();
  return padded == n || (fill && fill.hasPureTensorSemantics());
}

FailureOr<Value> moe::build::contractOverPanels(RewriterBase &b,
                                                linalg::GenericOp op,
                                                Value panels) {
  auto panelType = dyn_cast<RankedTensorType>(panels.getType());
  if (!canContractOverPanels(op, panelType))
    return failure();
  int64_t n = cast<RankedTensorType>(op.getDpsInputOperand(1)->get().getType())
                  .getDimSize(1);
  int64_t numPanels = panelType.getDimSize(0), width = panelType.getDimSize(2);
  int64_t padded = numPanels * width;
  Value init = op.getDpsInitOperand(0)->get();
  auto fill = init.getDefiningOp<linalg::FillOp>();

  AffineMap lhsMap = op.getMatchingIndexingMap(op.getDpsInputOperand(0));
  AffineMap rhsMap = op.getMatchingIndexingMap(op.getDpsInputOperand(1));
  AffineMap outMap = op.getMatchingIndexingMap(op.getDpsInitOperand(0));
  unsigned np = cast<AffineDimExpr>(rhsMap.getResult(1)).getPosition();
  unsigned numLoops = op.getNumLoops() + 1;
  MLIRContext *ctx = op.getContext();
  // Loops: n's position becomes (p, j).
  auto shift = [&](AffineMap map) {
    SmallVector<AffineExpr> dims;
    for (unsigned d = 0; d < op.getNumLoops(); ++d)
      dims.push_back(getAffineDimExpr(d < np ? d : d + 1, ctx));
    return map.replaceDimsAndSymbols(dims, {}, numLoops, 0);
  };
  AffineExpr p = getAffineDimExpr(np, ctx), j = getAffineDimExpr(np + 1, ctx);
  AffineMap newLhs = shift(lhsMap);
  AffineMap newRhs =
      AffineMap::get(numLoops, 0, {p, shift(rhsMap).getResult(0), j}, ctx);
  SmallVector<AffineExpr> outExprs(shift(outMap).getResults());
  outExprs.back() = p;
  outExprs.push_back(j);
  AffineMap newOut = AffineMap::get(numLoops, 0, outExprs, ctx);
  SmallVector<utils::IteratorType> iterators = op.getIteratorTypesArray();
  iterators.insert(iterators.begin() + np, utils::IteratorType::parallel);

  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(op);
  Location loc = op.getLoc();
  int64_t rank = cast<RankedTensorType>(init.getType()).getRank();
  // Where padded, the sizes are the fill's destination's, so that nothing
  // new reads the fill this replaces.
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(
      b, loc, padded != n ? fill.getDpsInitOperand(0)->get() : init);
  if (padded != n) {
    SmallVector<OpFoldResult> wide = sizes;
    wide.back() = b.getIndexAttr(padded);
    init = linalg::FillOp::create(
               b, loc, fill.value(),
               emptyTensor(
                   b, loc, wide,
                   cast<RankedTensorType>(init.getType()).getElementType()))
               .getResult(0);
  }
  SmallVector<ReassociationIndices> reassoc;
  for (int64_t d = 0; d + 1 < rank; ++d)
    reassoc.push_back({d});
  reassoc.push_back({rank - 1, rank});
  SmallVector<OpFoldResult> expanded = sizes;
  expanded.back() = b.getIndexAttr(numPanels);
  expanded.push_back(b.getIndexAttr(width));
  Value expandedInit = expand(b, loc, init, reassoc, expanded);
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{expandedInit.getType()},
      ValueRange{op.getDpsInputOperand(0)->get(), panels},
      ValueRange{expandedInit}, SmallVector<AffineMap>{newLhs, newRhs, newOut},
      iterators);
  b.inlineRegionBefore(op.getRegion(), generic.getRegion(),
                       generic.getRegion().begin());
  Value result = collapse(b, loc, generic.getResult(0), reassoc);
  if (padded != n) {
    SmallVector<OpFoldResult> offsets(rank, b.getIndexAttr(0)),
        ones(rank, b.getIndexAttr(1));
    result =
        tensor::ExtractSliceOp::create(b, loc, result, offsets, sizes, ones);
  }
  b.replaceOp(op, result);
  return result;
}

/// Emits `act(x)` on one scalar.
Value moe::build::activateScalar(OpBuilder &b, Location loc, Value x,
                                Activation act) {
  Type t = x.getType();
  auto cst = [&](double v) {
    return arith::ConstantOp::create(b, loc, b.getFloatAttr(t, v));
  };
  switch (act) {
  case Activation::Relu:
    return arith::MaximumFOp::create(b, loc, x, cst(0.0));
  case Activation::Gelu: {
    // Exact GELU: 0.5 * x * (1 + erf(x / sqrt(2))).
    Value scaled = arith::MulFOp::create(b, loc, x, cst(M_SQRT1_2));
    Value erf = math::ErfOp::create(b, loc, scaled);
    Value onePlus = arith::AddFOp::create(b, loc, erf, cst(1.0));
    Value half = arith::MulFOp::create(b, loc, x, cst(0.5));
    return arith::MulFOp::create(b, loc, half, onePlus);
  }
  case Activation::Silu: {
    // x * sigmoid(x) = x / (1 + exp(-x)).
    Value neg = arith::NegFOp::create(b, loc, x);
    Value exp = math::ExpOp::create(b, loc, neg);
    Value denom = arith::AddFOp::create(b, loc, exp, cst(1.0));
    return arith::DivFOp::create(b, loc, x, denom);
  }
  case Activation::Identity:
    return x;
  }
  llvm_unreachable("unknown activation");
}

Value moe::build::swigluScalar(OpBuilder &b, Location loc, Value gate,
                               Value lin, double alpha, double beta,
                               double limit) {
  Type t = gate.getType();
  auto cst = [&](double v) -> Value {
    return arith::ConstantOp::create(b, loc, b.getFloatAttr(t, v));
  };
  if (!std::isinf(limit)) {
    gate = arith::MinimumFOp::create(b, loc, gate, cst(limit));
    lin = arith::MinimumFOp::create(
        b, loc, arith::MaximumFOp::create(b, loc, lin, cst(-limit)),
        cst(limit));
  }
  // g * sigmoid(alpha g) = g / (1 + exp(-alpha g)).
  Value z = arith::MulFOp::create(b, loc, gate, cst(alpha));
  Value e = math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, z));
  Value glu = arith::DivFOp::create(b, loc, gate,
                                    arith::AddFOp::create(b, loc, e, cst(1.0)));
  if (beta != 0.0)
    lin = arith::AddFOp::create(b, loc, lin, cst(beta));
  return arith::MulFOp::create(b, loc, glu, lin);
}

Value moe::build::activate(OpBuilder &b, Location loc, Value x, Activation act) {
  if (act == Activation::Identity)
    return x;
  auto type = cast<RankedTensorType>(x.getType());
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, loc, x);
  Value init = emptyTensor(b, loc, sizes, type.getElementType());
  AffineMap id = b.getMultiDimIdentityMap(type.getRank());
  SmallVector<utils::IteratorType> iterators(type.getRank(),
                                             utils::IteratorType::parallel);
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{init.getType()}, ValueRange{x}, ValueRange{init},
      SmallVector<AffineMap>{id, id}, iterators,
      [act](OpBuilder &nb, Location nl, ValueRange args) {
        linalg::YieldOp::create(nb, nl,
                                activateScalar(nb, nl, args[0], act));
      });
  return generic.getResult(0);
}

Value moe::build::collapse(OpBuilder &b, Location loc, Value v,
                       ArrayRef<ReassociationIndices> reassociation) {
  return tensor::CollapseShapeOp::create(b, loc, v, reassociation);
}

Value moe::build::expand(OpBuilder &b, Location loc, Value v,
                     ArrayRef<ReassociationIndices> reassociation,
                     ArrayRef<OpFoldResult> sizes) {
  auto srcType = cast<RankedTensorType>(v.getType());
  Type elementType = srcType.getElementType();
  RankedTensorType resultType = tensorTypeOf(sizes, elementType);
  // A group whose sizes are all static needs a static source dim.
  SmallVector<int64_t> srcShape(srcType.getShape());
  for (auto [i, group] : llvm::enumerate(reassociation)) {
    int64_t product = 1;
    for (int64_t d : group)
      product = ShapedType::isDynamic(resultType.getDimSize(d)) ||
                        ShapedType::isDynamic(product)
                    ? ShapedType::kDynamic
                    : product * resultType.getDimSize(d);
    if (!ShapedType::isDynamic(product))
      srcShape[i] = product;
  }
  auto castType = RankedTensorType::get(srcShape, elementType);
  if (castType != srcType)
    v = checkedCast(b, loc, v, castType, kErrorShapeMismatch);
  return tensor::ExpandShapeOp::create(b, loc, resultType, v, reassociation,
                                       sizes);
}

Value moe::build::transpose(OpBuilder &b, Location loc, Value v,
                        ArrayRef<int64_t> perm) {
  SmallVector<OpFoldResult> inSizes = tensor::getMixedSizes(b, loc, v);
  SmallVector<OpFoldResult> outSizes =
      llvm::map_to_vector(perm, [&](int64_t p) { return inSizes[p]; });
  Type elementType = cast<RankedTensorType>(v.getType()).getElementType();
  Value init = emptyTensor(b, loc, outSizes, elementType);
  return linalg::TransposeOp::create(b, loc, v, init, perm).getResult()[0];
}

void moe::build::applyDecomposition(Operation *root,
                                void (*populate)(RewritePatternSet &)) {
  RewritePatternSet patterns(root->getContext());
  populate(patterns);
  walkAndApplyPatterns(root, std::move(patterns));
}

/// topK along the last axis of `xs`: for each row (all leading dims
/// collapsed into one), the semantics of k passes over the row; a pass
/// takes the first element, then every later one strictly better (OGT/OLT,
/// sgt/slt), and the chosen element is masked to `worst` for the next
/// pass. Same results, ties and NaNs as the general form. Rows without NaN
/// or `worst` are selected in one pass with insertion (same results); the
/// others run the k passes.
static std::pair<Value, Value>
topKLastAxis(OpBuilder &b, Location loc, Value xs, OpFoldResult kF0, bool largest,
             function_ref<Value(OpBuilder &, Location)> worst,
             const TopKRowHooks &hooks = {}) {
  using namespace moe::build;
  auto t = cast<RankedTensorType>(xs.getType());
  int64_t rank = t.getRank();
  Type elt = t.getElementType();
  Type i64 = b.getI64Type();
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, loc, xs);
  // [R, E]: leading dims collapsed (a vector becomes one row).
  Value rows2;
  if (rank == 1) {
    rows2 = expand(b, loc, xs, {{0, 1}}, {b.getIndexAttr(1), sizes[0]});
  } else {
    ReassociationIndices lead;
    for (int64_t d = 0; d + 1 < rank; ++d)
      lead.push_back(d);
    rows2 = rank == 2 ? xs : collapse(b, loc, xs, {lead, {rank - 1}});
  }
  OpFoldResult rowsF = tensor::getMixedSize(b, loc, rows2, 0);
  Value width = tensor::DimOp::create(b, loc, rows2, 1);
  std::optional<int64_t> staticK = getConstantIntValue(kF0);
  Value values0 = emptyTensor(b, loc, {rowsF, kF0}, elt);
  Value indices0 = emptyTensor(b, loc, {rowsF, kF0}, i64);
  Value c0 = arith::ConstantIndexOp::create(b, loc, 0);
  Value c1 = arith::ConstantIndexOp::create(b, loc, 1);
  Value ck = getValueOrCreateConstantIndexOp(b, loc, kF0);
  bool isF = isa<FloatType>(elt);
  // Rows are independent: an scf.forall over them (on the thread pool
  // unless moe-compile --no-parallel-loops), each iteration masking and writing only
  // its own row, so no order changes a bit. The masked working copy shares
  // one buffer with the values ([R, k + E]: values, then the row's copy):
  // as a result of its own it would be unused, the canonicalizer would drop
  // it, and bufferization would then copy every row into a buffer of its
  // own, an allocation per iteration that keeps the loop off the pool.
  OpFoldResult widthF = tensor::getMixedSize(b, loc, rows2, 1);
  std::optional<int64_t> staticWidth = getConstantIntValue(widthF);
  OpFoldResult bothF =
      staticWidth && staticK ? OpFoldResult(b.getIndexAttr(*staticK + *staticWidth))
                  : OpFoldResult(arith::AddIOp::create(b, loc, ck, width)
                                     .getResult());
  // The rows' working copies: filled row by row inside the loop by
  // hooks.fill, or copied in here.
  Value both0 = emptyTensor(b, loc, {rowsF, bothF}, elt);
  if (!hooks.fill)
    both0 = tensor::InsertSliceOp::create(
        b, loc, rows2, both0, ArrayRef<OpFoldResult>{b.getIndexAttr(0), kF0},
        ArrayRef<OpFoldResult>{rowsF, widthF},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
  auto unit = [&](OpBuilder &nb) {
    return SmallVector<OpFoldResult>{nb.getIndexAttr(1), nb.getIndexAttr(1)};
  };
  auto rowLoop = scf::ForallOp::create(
      b, loc, ArrayRef<OpFoldResult>{rowsF}, ValueRange{both0, indices0},
      std::nullopt, [&](OpBuilder &rb, Location rl, ValueRange args) {
        Value n = args[0];
        auto slice = [&](Value full, OpFoldResult row, OpFoldResult col,
                         OpFoldResult size) {
          return tensor::ExtractSliceOp::create(
              rb, rl, full, ArrayRef<OpFoldResult>{row, col},
              ArrayRef<OpFoldResult>{rb.getIndexAttr(1), size}, unit(rb));
        };
        OpFoldResult kF = kF0, zeroF = rb.getIndexAttr(0);
        // One row of both: the values at [0, k), the working copy at
        // [k, k + E) (one tensor, so that bufferization keeps it in place).
        Value bothRow = slice(args[1], n, zeroF, bothF);
        if (hooks.fill)
          bothRow = hooks.fill(rb, rl, rows2, n, bothRow);
        Value indicesRow = slice(args[2], n, zeroF, kF);
        Value r0 = arith::ConstantIndexOp::create(rb, rl, 0);
        auto col = [&](OpBuilder &ob, Location ol, Value e) {
          return arith::AddIOp::create(ob, ol, e, ck).getResult();
        };
        auto better = [&](OpBuilder &ob, Location ol, Value a, Value bv) {
          return isF ? Value(arith::CmpFOp::create(
                           ob, ol,
                           largest ? arith::CmpFPredicate::OGT
                                   : arith::CmpFPredicate::OLT,
                           a, bv))
                     : Value(arith::CmpIOp::create(
                           ob, ol,
                           largest ? arith::CmpIPredicate::sgt
                                   : arith::CmpIPredicate::slt,
                           a, bv));
        };
        // One pass over the row keeps the best k so far, sorted (better
        // first, ties in index order), in the values/indices rows: an
        // element enters when fewer than k are kept or it is better than
        // the last kept, and bubbles up to its place (an element of a
        // lower index that it only ties stays ahead). On rows without NaN
        // and without the masking value `worst` this selects exactly what
        // the k passes below do, in the same order; rows with either (and
        // k above the row's width) take the k passes, so every row gets
        // the passes' results bit for bit. About W + (the places entries
        // move up) steps instead of k x W.
        Value ckm1 = arith::SubIOp::create(rb, rl, ck, c1);
        Value i1False =
            arith::ConstantOp::create(rb, rl, rb.getBoolAttr(false));
        // k = 0 (a K reported bad, or computed as 0) selects nothing: no
        // scan, so column k - 1 is never read.
        Value scanTo = arith::SelectOp::create(
            rb, rl,
            arith::CmpIOp::create(rb, rl, arith::CmpIPredicate::eq, ck, c0),
            c0, width);
        auto single = scf::ForOp::create(
            rb, rl, c0, scanTo, c1,
            ValueRange{bothRow, indicesRow, c0, i1False},
            [&](OpBuilder &sb, Location sl, Value e, ValueRange it) {
              Value vals = it[0], idxs = it[1], count = it[2];
              Value v = tensor::ExtractOp::create(
                  sb, sl, vals, ValueRange{r0, col(sb, sl, e)});
              // NaN or the masking value.
              Value special =
                  isF ? Value(arith::CmpFOp::create(
                            sb, sl, arith::CmpFPredicate::OEQ, v,
                            worst(sb, sl)))
                      : Value(arith::CmpIOp::create(
                            sb, sl, arith::CmpIPredicate::eq, v,
                            worst(sb, sl)));
              if (isF)
                special = arith::OrIOp::create(
                    sb, sl, special,
                    arith::CmpFOp::create(sb, sl, arith::CmpFPredicate::UNO,
                                          v, v));
              special = arith::OrIOp::create(sb, sl, special, it[3]);
              Value notFull = arith::CmpIOp::create(
                  sb, sl, arith::CmpIPredicate::ult, count, ck);
              // The last kept value (column k - 1; read only when full).
              Value lastAt = arith::SelectOp::create(sb, sl, notFull, c0, ckm1);
              Value last = tensor::ExtractOp::create(sb, sl, vals,
                                                     ValueRange{r0, lastAt});
              Value enter = arith::OrIOp::create(sb, sl, notFull,
                                                 better(sb, sl, v, last));
              Value ei = arith::IndexCastOp::create(sb, sl, i64, e);
              auto ins = scf::IfOp::create(
                  sb, sl, enter,
                  [&](OpBuilder &ib, Location il) {
                    // v goes to position min(count, k - 1) (an empty slot,
                    // or over the last kept element), then moves up past
                    // every kept element it is strictly better than: an
                    // element of a lower index that it only ties stays
                    // ahead. Walking from the back stops after the few
                    // elements v beats (most entries land near the end),
                    // where a walk from the front visited all k.
                    Value at0 = arith::MinUIOp::create(ib, il, count, ckm1);
                    auto walk = scf::WhileOp::create(
                        ib, il, TypeRange{vals.getType(), idxs.getType(),
                                          ib.getIndexType()},
                        ValueRange{vals, idxs, at0},
                        [&](OpBuilder &wb, Location wl, ValueRange st) {
                          Value p = st[2];
                          Value inside = arith::CmpIOp::create(
                              wb, wl, arith::CmpIPredicate::ugt, p, c0);
                          // Column p - 1, or 0 at p = 0 (read, not used).
                          Value prev = arith::SelectOp::create(
                              wb, wl, inside,
                              arith::SubIOp::create(wb, wl, p, c1), c0);
                          Value pv = tensor::ExtractOp::create(
                              wb, wl, st[0], ValueRange{r0, prev});
                          Value go = arith::AndIOp::create(
                              wb, wl, inside, better(wb, wl, v, pv));
                          scf::ConditionOp::create(wb, wl, go, st);
                        },
                        [&](OpBuilder &wb, Location wl, ValueRange st) {
                          Value p = st[2];
                          Value prev = arith::SubIOp::create(wb, wl, p, c1);
                          Value pv = tensor::ExtractOp::create(
                              wb, wl, st[0], ValueRange{r0, prev});
                          Value pi = tensor::ExtractOp::create(
                              wb, wl, st[1], ValueRange{r0, prev});
                          Value nv = tensor::InsertOp::create(
                              wb, wl, pv, st[0], ValueRange{r0, p});
                          Value ni = tensor::InsertOp::create(
                              wb, wl, pi, st[1], ValueRange{r0, p});
                          scf::YieldOp::create(wb, wl,
                                               ValueRange{nv, ni, prev});
                        });
                    Value at = walk.getResult(2);
                    Value placedV = tensor::InsertOp::create(
                        ib, il, v, walk.getResult(0), ValueRange{r0, at});
                    Value placedI = tensor::InsertOp::create(
                        ib, il, ei, walk.getResult(1), ValueRange{r0, at});
                    Value upTo = arith::MinUIOp::create(
                        ib, il, arith::AddIOp::create(ib, il, count, c1), ck);
                    scf::YieldOp::create(ib, il,
                                         ValueRange{placedV, placedI, upTo});
                  },
                  [&](OpBuilder &ib, Location il) {
                    scf::YieldOp::create(ib, il,
                                         ValueRange{vals, idxs, count});
                  });
              scf::YieldOp::create(
                  sb, sl,
                  ValueRange{ins.getResult(0), ins.getResult(1),
                             ins.getResult(2), special});
            });
        // k above the row's width: the passes (they repeat the first
        // element, as before).
        Value needPasses = arith::OrIOp::create(
            rb, rl, single.getResult(3),
            arith::CmpIOp::create(rb, rl, arith::CmpIPredicate::ugt, ck,
                                  width));
        auto chosen = scf::IfOp::create(
            rb, rl, needPasses,
            [&](OpBuilder &tb, Location tl) {
        auto passLoop = scf::ForOp::create(
            tb, tl, c0, ck, c1, ValueRange{single.getResult(0),
                                           single.getResult(1)},
            [&](OpBuilder &pb, Location pl, Value r, ValueRange it) {
              Value work = it[0];
              Value none = arith::ConstantOp::create(
                  pb, pl, pb.getI64IntegerAttr(-1));
              auto scan = scf::ForOp::create(
                  pb, pl, c0, width, c1,
                  ValueRange{worst(pb, pl), none},
                  [&](OpBuilder &sb, Location sl, Value e, ValueRange best) {
                    Value v = tensor::ExtractOp::create(
                        sb, sl, work, ValueRange{r0, col(sb, sl, e)});
                    Value better =
                        isF ? Value(arith::CmpFOp::create(
                                  sb, sl,
                                  largest ? arith::CmpFPredicate::OGT
                                          : arith::CmpFPredicate::OLT,
                                  v, best[0]))
                            : Value(arith::CmpIOp::create(
                                  sb, sl,
                                  largest ? arith::CmpIPredicate::sgt
                                          : arith::CmpIPredicate::slt,
                                  v, best[0]));
                    Value first = arith::CmpIOp::create(
                        sb, sl, arith::CmpIPredicate::slt, best[1],
                        arith::ConstantOp::create(sb, sl,
                                                  sb.getI64IntegerAttr(0)));
                    Value take = arith::OrIOp::create(sb, sl, better, first);
                    Value ei = arith::IndexCastOp::create(sb, sl, i64, e);
                    scf::YieldOp::create(
                        sb, sl,
                        ValueRange{
                            arith::SelectOp::create(sb, sl, take, v, best[0]),
                            arith::SelectOp::create(sb, sl, take, ei,
                                                    best[1])});
                  });
              Value bestV = scan.getResult(0), bestI = scan.getResult(1);
              Value idxs = tensor::InsertOp::create(pb, pl, bestI, it[1],
                                                    ValueRange{r0, r});
              // Mask the chosen element (none in an empty row).
              Value found = arith::CmpIOp::create(
                  pb, pl, arith::CmpIPredicate::sge, bestI,
                  arith::ConstantOp::create(pb, pl, pb.getI64IntegerAttr(0)));
              auto mask = scf::IfOp::create(
                  pb, pl, found,
                  [&](OpBuilder &ib, Location il) {
                    Value at = arith::IndexCastOp::create(
                        ib, il, ib.getIndexType(), bestI);
                    scf::YieldOp::create(
                        ib, il,
                        ValueRange{tensor::InsertOp::create(
                            ib, il, worst(ib, il), work,
                            ValueRange{r0, col(ib, il, at)})});
                  },
                  [&](OpBuilder &ib, Location il) {
                    scf::YieldOp::create(ib, il, ValueRange{work});
                  });
              // Columns [0, k) hold the values and are never scanned.
              Value vals = tensor::InsertOp::create(
                  pb, pl, bestV, mask.getResult(0), ValueRange{r0, r});
              scf::YieldOp::create(pb, pl, ValueRange{vals, idxs});
            });
        scf::YieldOp::create(tb, tl, passLoop.getResults());
            },
            [&](OpBuilder &tb, Location tl) {
              scf::YieldOp::create(tb, tl,
                                   ValueRange{single.getResult(0),
                                              single.getResult(1)});
            });
        Value row = chosen.getResult(0);
        if (hooks.finish)
          row = hooks.finish(rb, rl, row);
        auto term = scf::InParallelOp::create(rb, rl);
        OpBuilder::InsertionGuard guard(rb);
        rb.setInsertionPointToStart(term.getBody());
        tensor::ParallelInsertSliceOp::create(
            rb, rl, row, args[1], ArrayRef<OpFoldResult>{n, zeroF},
            ArrayRef<OpFoldResult>{rb.getIndexAttr(1), bothF}, unit(rb));
        tensor::ParallelInsertSliceOp::create(
            rb, rl, chosen.getResult(1), args[2],
            ArrayRef<OpFoldResult>{n, zeroF},
            ArrayRef<OpFoldResult>{rb.getIndexAttr(1), kF}, unit(rb));
      });
  // The values, contiguous.
  Value values = linalg::CopyOp::create(
                     b, loc,
                     tensor::ExtractSliceOp::create(
                         b, loc, rowLoop.getResult(0),
                         ArrayRef<OpFoldResult>{b.getIndexAttr(0),
                                                b.getIndexAttr(0)},
                         ArrayRef<OpFoldResult>{rowsF, kF0},
                         ArrayRef<OpFoldResult>{b.getIndexAttr(1),
                                                b.getIndexAttr(1)})
                         .getResult(),
                     values0)
                     .getResult(0);
  Value indices = rowLoop.getResult(1);
  SmallVector<OpFoldResult> outSizes(sizes);
  outSizes[rank - 1] = kF0;
  if (rank == 2)
    return {values, indices};
  ReassociationIndices lead;
  for (int64_t d = 0; d + 1 < rank; ++d)
    lead.push_back(d);
  SmallVector<ReassociationIndices> back =
      rank == 1 ? SmallVector<ReassociationIndices>{{0, 1}}
                : SmallVector<ReassociationIndices>{lead, {rank - 1}};
  if (rank == 1)
    return {collapse(b, loc, values, back), collapse(b, loc, indices, back)};
  return {expand(b, loc, values, back, outSizes),
          expand(b, loc, indices, back, outSizes)};
}

std::pair<Value, Value>
moe::build::topKLargestWithHooks(OpBuilder &b, Location loc, Value xs,
                                 int64_t k, const TopKRowHooks &hooks) {
  auto t = cast<RankedTensorType>(xs.getType());
  auto f = cast<FloatType>(t.getElementType());
  assert(t.getRank() >= 2 && k > 0 && "rows of a float tensor, k > 0");
  if (llvm::is_contained(t.getShape(), 0)) {
    // No element to select (topK's case).
    SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, loc, xs);
    sizes.back() = b.getIndexAttr(k);
    return {emptyTensor(b, loc, sizes, f),
            emptyTensor(b, loc, sizes, b.getI64Type())};
  }
  auto worst = [&](OpBuilder &nb, Location nl) -> Value {
    return arith::ConstantOp::create(
        nb, nl,
        nb.getFloatAttr(f, APFloat::getInf(f.getFloatSemantics(), true)));
  };
  return topKLastAxis(b, loc, xs, b.getIndexAttr(k), /*largest=*/true, worst,
                      hooks);
}

std::pair<Value, Value> moe::build::topK(OpBuilder &b, Location loc, Value xs,
                                         int64_t k, int64_t a, bool largest) {
  return topK(b, loc, xs, b.getIndexAttr(k), a, largest);
}

std::pair<Value, Value> moe::build::topK(OpBuilder &b, Location loc, Value xs,
                                         OpFoldResult kF, int64_t a,
                                         bool largest) {
  std::optional<int64_t> staticK = getConstantIntValue(kF);
  MLIRContext *ctx = b.getContext();
  auto t = cast<RankedTensorType>(xs.getType());
  int64_t rank = t.getRank();
  Type elt = t.getElementType();
  bool isF = isa<FloatType>(elt);
  // The value that can never be selected again (-inf / +inf, or the integer
  // extremes).
  auto worst = [&](OpBuilder &nb, Location nl) -> Value {
    if (auto f = dyn_cast<FloatType>(elt))
      return arith::ConstantOp::create(
          nb, nl, nb.getFloatAttr(elt, APFloat::getInf(f.getFloatSemantics(),
                                                        largest)));
    unsigned w = elt.getIntOrFloatBitWidth();
    return arith::ConstantOp::create(
        nb, nl, nb.getIntegerAttr(elt, largest ? APInt::getSignedMinValue(w)
                                               : APInt::getSignedMaxValue(w)));
  };
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, loc, xs);
  SmallVector<OpFoldResult> outSizes(sizes);
  outSizes[a] = kF;
  // A static zero-sized dim: no element to select (and slices at offset 0
  // of a zero-sized dim do not verify).
  if (llvm::is_contained(t.getShape(), 0) || staticK == 0)
    return {emptyTensor(b, loc, outSizes, elt),
            emptyTensor(b, loc, outSizes, b.getI64Type())};
  // Along the last axis (routing, ONNX TopK's default): the same passes,
  // row by row with the running best in registers (scf.for iter_args), the
  // row masked in place. The general form below keeps its best in memory
  // and rewrites the whole masked tensor on every pass.
  if (a == rank - 1)
    return topKLastAxis(b, loc, xs, kF, largest, worst);
  SmallVector<OpFoldResult> rowSizes(sizes);
  rowSizes[a] = b.getIndexAttr(1);
  Value values = emptyTensor(b, loc, outSizes, elt);
  Value indices = emptyTensor(b, loc, outSizes, b.getI64Type());
  SmallVector<AffineExpr> rowExprs;
  for (int64_t d = 0; d < rank; ++d)
    rowExprs.push_back(d == a ? getAffineConstantExpr(0, ctx)
                              : getAffineDimExpr(d, ctx));
  AffineMap id = b.getMultiDimIdentityMap(rank);
  AffineMap rowMap = AffineMap::get(rank, 0, rowExprs, ctx);
  SmallVector<utils::IteratorType> iterators(rank,
                                             utils::IteratorType::parallel);
  iterators[a] = utils::IteratorType::reduction;

  Value lb = arith::ConstantIndexOp::create(b, loc, 0);
  Value ub = getValueOrCreateConstantIndexOp(b, loc, kF);
  Value step = arith::ConstantIndexOp::create(b, loc, 1);
  auto loop = scf::ForOp::create(
      b, loc, lb, ub, step, ValueRange{xs, values, indices},
      [&](OpBuilder &nb, Location nl, Value iv, ValueRange iter) {
        Value masked = iter[0];
        // Best value and its index along the axis.
        Value bestInit = linalg::FillOp::create(
                             nb, nl, worst(nb, nl),
                             emptyTensor(nb, nl, rowSizes, elt))
                             .getResult(0);
        Value idxInit =
            linalg::FillOp::create(
                nb, nl,
                Value(arith::ConstantOp::create(nb, nl,
                                                nb.getI64IntegerAttr(-1))),
                emptyTensor(nb, nl, rowSizes, nb.getI64Type()))
                .getResult(0);
        auto best = linalg::GenericOp::create(
            nb, nl, TypeRange{bestInit.getType(), idxInit.getType()},
            ValueRange{masked}, ValueRange{bestInit, idxInit},
            SmallVector<AffineMap>{id, rowMap, rowMap}, iterators,
            [&](OpBuilder &bb, Location bl, ValueRange v) {
              Value i = arith::IndexCastOp::create(
                  bb, bl, bb.getI64Type(), linalg::IndexOp::create(bb, bl, a));
              Value better =
                  isF ? Value(arith::CmpFOp::create(
                            bb, bl,
                            largest ? arith::CmpFPredicate::OGT
                                    : arith::CmpFPredicate::OLT,
                            v[0], v[1]))
                      : Value(arith::CmpIOp::create(
                            bb, bl,
                            largest ? arith::CmpIPredicate::sgt
                                    : arith::CmpIPredicate::slt,
                            v[0], v[1]));
              Value none = arith::CmpIOp::create(
                  bb, bl, arith::CmpIPredicate::slt, v[2],
                  arith::ConstantOp::create(bb, bl, bb.getI64IntegerAttr(0)));
              Value take = arith::OrIOp::create(bb, bl, better, none);
              linalg::YieldOp::create(
                  bb, bl,
                  ValueRange{arith::SelectOp::create(bb, bl, take, v[0], v[1]),
                             arith::SelectOp::create(bb, bl, take, i, v[2])});
            });
        SmallVector<OpFoldResult> offsets(rank, nb.getIndexAttr(0));
        offsets[a] = iv;
        SmallVector<OpFoldResult> strides(rank, nb.getIndexAttr(1));
        Value newValues = tensor::InsertSliceOp::create(
            nb, nl, best.getResult(0), iter[1], offsets, rowSizes, strides);
        Value newIndices = tensor::InsertSliceOp::create(
            nb, nl, best.getResult(1), iter[2], offsets, rowSizes, strides);
        // Mask the selected element.
        Value maskedNext =
            linalg::GenericOp::create(
                nb, nl, TypeRange{masked.getType()},
                ValueRange{masked, best.getResult(1)},
                ValueRange{emptyTensor(nb, nl, sizes, elt)},
                SmallVector<AffineMap>{id, rowMap, id},
                SmallVector<utils::IteratorType>(rank,
                                                 utils::IteratorType::parallel),
                [&](OpBuilder &bb, Location bl, ValueRange v) {
                  Value i = arith::IndexCastOp::create(
                      bb, bl, bb.getI64Type(),
                      linalg::IndexOp::create(bb, bl, a));
                  Value hit = arith::CmpIOp::create(
                      bb, bl, arith::CmpIPredicate::eq, i, v[1]);
                  linalg::YieldOp::create(bb, bl, ValueRange{
                        arith::SelectOp::create(bb, bl, hit, worst(bb, bl),
                                                v[0]).getResult()});
                })
                .getResult(0);
        scf::YieldOp::create(nb, nl,
                             ValueRange{maskedNext, newValues, newIndices});
      });
  return {loop.getResult(1), loop.getResult(2)};
}


static constexpr StringLiteral kErrorHook = "moe_report_error";

StringRef moe::build::locationName(Location loc) {
  StringRef name;
  loc->walk([&](Location l) {
    if (auto named = dyn_cast<NameLoc>(l)) {
      name = named.getName().getValue();
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  return name;
}

Location moe::build::partLoc(Location loc, StringRef part) {
  StringRef name = locationName(loc);
  if (name.empty())
    return loc;
  return NameLoc::get(StringAttr::get(loc->getContext(), name + "." + part),
                      loc);
}

void moe::build::declareErrorHook(OpBuilder &b, Operation *anchor) {
  // (Inside a region still being built, the anchor is not attached yet: the
  // callers declare the hook before building nested regions.)
  auto module = anchor ? anchor->getParentOfType<ModuleOp>() : ModuleOp();
  if (!module || module.lookupSymbol(kErrorHook))
    return;
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(module.getBody());
  auto hook = func::FuncOp::create(b, anchor->getLoc(), kErrorHook,
                                   b.getFunctionType({b.getI32Type()}, {}));
  hook.setPrivate();
}

/// Calls the error hook with `code` (declared by the caller).
static void emitReport(OpBuilder &b, Location loc, int32_t code) {
  Value c = arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(code));
  func::CallOp::create(b, loc, kErrorHook, TypeRange{}, ValueRange{c});
}

Value moe::build::checkedIndex(OpBuilder &b, Location loc, Value index,
                               Value bound, int32_t code) {
  Value zero = arith::ConstantIndexOp::create(b, loc, 0);
  Value lo = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, index,
                                   zero);
  Value hi = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, index,
                                   bound);
  Value ok = arith::AndIOp::create(b, loc, lo, hi);
  Value bad = arith::XOrIOp::create(
      b, loc, ok, arith::ConstantOp::create(b, loc, b.getBoolAttr(true)));
  reportIf(b, loc, bad, code);
  return arith::SelectOp::create(b, loc, ok, index, zero);
}

void moe::build::reportIf(OpBuilder &b, Location loc, Value bad,
                          int32_t code) {
  declareErrorHook(b, b.getInsertionBlock()->getParentOp());
  scf::IfOp::create(b, loc, bad, [&](OpBuilder &nb, Location nl) {
    emitReport(nb, nl, code);
    scf::YieldOp::create(nb, nl);
  });
}

namespace {
using ValueBuilder = function_ref<Value(OpBuilder &, Location)>;

/// `cond ? thenValue() : elseValue()` as an scf.if (both of one type).
Value ifElse(OpBuilder &b, Location loc, Value cond, ValueBuilder thenValue,
             ValueBuilder elseValue) {
  return scf::IfOp::create(
             b, loc, cond,
             [&](OpBuilder &nb, Location nl) {
               scf::YieldOp::create(nb, nl, thenValue(nb, nl));
             },
             [&](OpBuilder &nb, Location nl) {
               scf::YieldOp::create(nb, nl, elseValue(nb, nl));
             })
      .getResult(0);
}

/// `v` as `type` (a tensor.cast unless it already is).
Value castTo(OpBuilder &b, Location loc, Value v, Type type) {
  return v.getType() == type ? v
                             : Value(tensor::CastOp::create(b, loc, type, v));
}

/// Reports `code` and returns zeros of `type`, whose dynamic dims are those
/// of `v`, except dim `dim` (if any), which is `dimSize`.
Value reportedZeros(OpBuilder &b, Location loc, Value v,
                    RankedTensorType type, int32_t code, int64_t dim,
                    OpFoldResult dimSize) {
  emitReport(b, loc, code);
  SmallVector<OpFoldResult> sizes;
  for (int64_t d = 0; d < type.getRank(); ++d)
    sizes.push_back(!type.isDynamicDim(d)
                        ? OpFoldResult(b.getIndexAttr(type.getDimSize(d)))
                    : d == dim ? dimSize
                               : tensor::getMixedSize(b, loc, v, d));
  Type elt = type.getElementType();
  Value zero = arith::ConstantOp::create(b, loc, b.getZeroAttr(elt));
  Value empty = moe::build::emptyTensor(b, loc, sizes, elt);
  return castTo(b, loc, linalg::FillOp::create(b, loc, zero, empty).getResult(0),
                type);
}

/// `ok ? v : (report code; zeros)` as a tensor of `type` (see
/// reportedZeros); a null `ok` means never ok.
Value orZeros(OpBuilder &b, Location loc, Value ok, Value v,
              RankedTensorType type, int32_t code, int64_t dim = -1,
              OpFoldResult dimSize = {}) {
  moe::build::declareErrorHook(b, b.getInsertionBlock()->getParentOp());
  auto zeros = [&](OpBuilder &nb, Location nl) {
    return reportedZeros(nb, nl, v, type, code, dim, dimSize);
  };
  if (!ok)
    return zeros(b, loc);
  return ifElse(
      b, loc, ok,
      [&](OpBuilder &nb, Location nl) { return castTo(nb, nl, v, type); },
      zeros);
}
} // namespace

Value moe::build::requireSize(OpBuilder &b, Location loc, Value v, int64_t d,
                              OpFoldResult size, int32_t code) {
  auto type = cast<RankedTensorType>(v.getType());
  std::optional<int64_t> want = getConstantIntValue(size);
  SmallVector<int64_t> shape(type.getShape());
  shape[d] = want ? *want : ShapedType::kDynamic;
  auto resultType = type.clone(shape);
  if (!type.isDynamicDim(d) && want) {
    if (type.getDimSize(d) == *want)
      return v;
    // Two different static sizes: the caller should have refused it at
    // compile time; still fail safely.
    return orZeros(b, loc, Value(), v, resultType, code, d, size);
  }
  Value actual = tensor::DimOp::create(b, loc, v, d);
  Value wanted = getValueOrCreateConstantIndexOp(b, loc, size);
  Value ok = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, actual,
                                   wanted);
  return orZeros(b, loc, ok, v, resultType, code, d, size);
}

Value moe::build::requireSizeOrOne(OpBuilder &b, Location loc, Value v,
                                   int64_t d, OpFoldResult size, int32_t code) {
  auto type = cast<RankedTensorType>(v.getType());
  std::optional<int64_t> want = getConstantIntValue(size);
  if (!type.isDynamicDim(d) &&
      (type.getDimSize(d) == 1 || (want && type.getDimSize(d) == *want)))
    return v;
  Value actual = tensor::DimOp::create(b, loc, v, d);
  Value wanted = getValueOrCreateConstantIndexOp(b, loc, size);
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  Value ok = arith::OrIOp::create(
      b, loc,
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, actual, wanted),
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, actual, one));
  return orZeros(b, loc, ok, v, type, code);
}

Value moe::build::checkedCast(OpBuilder &b, Location loc, Value v, Type type,
                              int32_t code) {
  if (v.getType() == type)
    return v;
  auto from = dyn_cast<RankedTensorType>(v.getType());
  auto to = dyn_cast<RankedTensorType>(type);
  if (!from || !to || from.getRank() != to.getRank())
    return tensor::CastOp::create(b, loc, type, v);
  Value ok;
  for (int64_t d = 0; d < to.getRank(); ++d) {
    if (!from.isDynamicDim(d) || to.isDynamicDim(d))
      continue;
    Value actual = tensor::DimOp::create(b, loc, v, d);
    Value wanted = arith::ConstantIndexOp::create(b, loc, to.getDimSize(d));
    Value eq = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, actual,
                                     wanted);
    ok = ok ? Value(arith::AndIOp::create(b, loc, ok, eq)) : eq;
  }
  if (!ok)
    return tensor::CastOp::create(b, loc, type, v);
  return orZeros(b, loc, ok, v, to, code);
}

Value moe::build::broadcastDim(OpBuilder &b, Location loc, Value v, int64_t d,
                               OpFoldResult size, int32_t code) {
  declareErrorHook(b, b.getInsertionBlock()->getParentOp());
  auto type = cast<RankedTensorType>(v.getType());
  std::optional<int64_t> want = getConstantIntValue(size);
  SmallVector<int64_t> shape(type.getShape());
  shape[d] = want ? *want : ShapedType::kDynamic;
  auto resultType = type.clone(shape);
  // Both sizes static and equal: nothing to decide.
  if (!type.isDynamicDim(d) && want && type.getDimSize(d) == *want)
    return v;
  Value actual = tensor::DimOp::create(b, loc, v, d);
  Value wanted = getValueOrCreateConstantIndexOp(b, loc, size);
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  Value same = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, actual,
                                     wanted);
  Value isOne = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                      actual, one);
  // The repeated copy: dim d of the input is read at index 0.
  auto repeated = [&](OpBuilder &nb, Location nl) -> Value {
    SmallVector<OpFoldResult> sizes;
    for (int64_t i = 0; i < type.getRank(); ++i)
      sizes.push_back(i == d ? size : tensor::getMixedSize(nb, nl, v, i));
    Value init = emptyTensor(nb, nl, sizes, type.getElementType());
    MLIRContext *ctx = nb.getContext();
    SmallVector<AffineExpr> in;
    for (int64_t i = 0; i < type.getRank(); ++i)
      in.push_back(i == d ? getAffineConstantExpr(0, ctx)
                          : getAffineDimExpr(i, ctx));
    SmallVector<AffineMap> maps = {
        AffineMap::get(type.getRank(), 0, in, ctx),
        nb.getMultiDimIdentityMap(type.getRank())};
    Value out =
        linalg::GenericOp::create(
            nb, nl, TypeRange{init.getType()}, ValueRange{v}, ValueRange{init},
            maps,
            SmallVector<utils::IteratorType>(type.getRank(),
                                             utils::IteratorType::parallel),
            [](OpBuilder &bb, Location bl, ValueRange args) {
              linalg::YieldOp::create(bb, bl, args[0]);
            })
            .getResult(0);
    return castTo(nb, nl, out, resultType);
  };
  // `v` when it has the size, else the repeated copy when it has one slice,
  // else zeros of the right shape (reported).
  return ifElse(
      b, loc, same,
      [&](OpBuilder &nb, Location nl) { return castTo(nb, nl, v, resultType); },
      [&](OpBuilder &nb, Location nl) {
        return ifElse(nb, nl, isOne, repeated,
                      [&](OpBuilder &ib, Location il) {
                        return reportedZeros(ib, il, v, resultType, code, d,
                                             size);
                      });
      });
}

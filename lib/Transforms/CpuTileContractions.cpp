//===- CpuTileContractions.cpp - register-tiled, vectorized contractions --===//
//
// The inner kernel of the CPU codegen (issue 10). Every multiply-add
// contraction on buffers whose output's last dim is a parallel dim `n` of
// the right-hand side -- C[.., m, n] += A[.., m, k] * B[.., k, n] (or
// B[.., n, k]): the expert matmuls of moe.grouped_matmul, dense
// projections, the LM head, attention's P*V, the combine, the selectors --
// becomes an MR x NR register tile swept over k:
//
//   for m0 in 0..M step MR, for n0 in 0..N step NR:   (full tiles)
//     acc[MR][NR] = C[m0.., n0..]              (hoisted out of the k loop)
//     for k: acc += broadcast(A[m0.., k]) * B[k, n0..]   (MR x NR/lanes FMAs)
//     C[m0.., n0..] = acc
//
// The transformations are upstream's: scf::tileUsingSCF for the tiles,
// scf::peelForLoopAndSimplifyBounds so that full tiles are static (no
// masks in the hot loop), linalg::vectorize to vector.contract, the
// outer-product contraction lowering to FMAs. Written here: which ops,
// which dims go to MR and NR, the tile sizes from the target's vector
// width (a one-row tile is wider: 1 x 256 with AVX-512, so a decode
// step's expert and LM-head products stream 1 KB of each weight row per k
// instead of 128 bytes), the row split (row loops of static steps MR and
// 1: a decode segment of r < MR rows is never padded to MR; with
// remainder-tiles the 2 to MR - 1 rows after the full tiles are one tile
// of their count), the power-of-two split of a static column tail, the
// accumulator hoist (see hoistAccumulators for why not upstream's), and
// accumulator chains for narrow one-row tiles (rotateAccumulators). A dynamic column tail is a
// masked vector.
//
// A one-row contraction whose n is strided in the right-hand side and
// whose k is the contiguous last dim of both operands (a decode step's
// q k^T against the cache, a selector at decode) is written out as dot
// products instead (emitDotTile): both operands read as vectors along k.
//
//===----------------------------------------------------------------------===//

#include "CpuTileEpilogues.h"
#include "moe/Transforms/Passes.h"
#include "moe/Transforms/Transforms.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/MemRef/Transforms/Transforms.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Transforms/TileUsingInterface.h"
#include "mlir/Dialect/SCF/Transforms/Transforms.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/Vector/Transforms/LoweringPatterns.h"
#include "mlir/Dialect/Vector/Transforms/VectorRewritePatterns.h"
#include "mlir/IR/Dominance.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Transforms/CSE.h"
#include "mlir/Transforms/LoopInvariantCodeMotionUtils.h"
#include "llvm/ADT/Sequence.h"
#include "llvm/ADT/bit.h"
#include "llvm/Support/MathExtras.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOECPUTILECONTRACTIONS
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using mlir::moe::cpu::viewRoot;

namespace {

/// Marks the register-tile ops between tiling and vectorization.
constexpr StringLiteral kTileMarker = "moe.cpu_tile";
/// Marks the k loop of a register tile until its accumulator is hoisted.
constexpr StringLiteral kReductionLoopMarker = "moe.cpu_k_loop";
/// Marks the sequential one-row loop of a contraction that becomes dot
/// products: its strips are the parallel loops (see splitRows).
constexpr StringLiteral kDotRowLoopMarker = "moe.cpu_dot_rows";
/// Marks a contraction whose output a zero fill has just written, and the
/// parts and k loops made of it: the fill's index in the pass's list (see
/// ZeroFills).
constexpr StringLiteral kZeroInitMarker = "moe.cpu_zero_init";
/// Marks the k loop of each register-tile part of such a contraction with
/// the part's index (see ZeroFills::parts).
constexpr StringLiteral kZeroPartMarker = "moe.cpu_zero_part";
/// Marks a contraction with an epilogue (fuse-epilogues), and its parts:
/// the epilogue's index in the pass's list (see Epilogues).
constexpr StringLiteral kEpilogueMarker = "moe.cpu_epilogue";
/// Marks the k loops of such a contraction's register tiles with the
/// epilogue's index, and with the part's (see Epilogues::partOwner).
constexpr StringLiteral kEpilogueLoopMarker = "moe.cpu_epilogue_loop";
constexpr StringLiteral kEpiloguePartMarker = "moe.cpu_epilogue_part";
/// Marks the epilogue generic itself with its index (found again at the
/// end: the pass's cleanups may have changed or erased it meanwhile).
constexpr StringLiteral kEpilogueGenericMarker = "moe.cpu_epilogue_generic";

/// How one contraction is tiled: per loop, its tile size; the loop order
/// (batch, m, n, then k dims); which loops are the MR and NR ones.
struct TilePlan {
  SmallVector<int64_t> tileSizes;
  SmallVector<int64_t> interchange;
  std::optional<unsigned> mDim;
  unsigned nDim = 0;
};

/// Whether `op`'s body is exactly `out + lhs * rhs` (either operand order):
/// isaContractionOpInterface also accepts unary ops around the multiply
/// and the add (a negation, a rounding through bf16, a tanh of the sum),
/// which the rewrite to linalg.contract would drop.
bool isPlainMultiplyAdd(linalg::LinalgOp op) {
  Block *body = op.getBlock();
  if (body->getNumArguments() != 3 ||
      !llvm::hasNItems(body->without_terminator(), 2))
    return false;
  auto yield = cast<linalg::YieldOp>(body->getTerminator());
  auto add = yield.getValues().size() == 1
                 ? yield.getValues()[0].getDefiningOp<arith::AddFOp>()
                 : arith::AddFOp();
  if (!add)
    return false;
  Value acc = body->getArgument(2);
  Value other = add.getLhs() == acc   ? add.getRhs()
                : add.getRhs() == acc ? add.getLhs()
                                      : Value();
  auto mul = other ? other.getDefiningOp<arith::MulFOp>() : arith::MulFOp();
  if (!mul)
    return false;
  Value a = body->getArgument(0), b = body->getArgument(1);
  return (mul.getLhs() == a && mul.getRhs() == b) ||
         (mul.getLhs() == b && mul.getRhs() == a);
}

/// Whether `op` is a contraction the register kernel may take, but for
/// the views its operands are taken through.
bool isPlainContraction(linalg::LinalgOp op) {
  return op.hasPureBufferSemantics() && op.getNumDpsInputs() == 2 &&
         op.getNumDpsInits() == 1 && linalg::isaContractionOpInterface(op) &&
         isPlainMultiplyAdd(op);
}

/// The operands of plain contractions that are memref.expand_shape views
/// (Mixture of Tokens' mix reads x [B, T, D] as [B/g, g, T, D]) become
/// reinterpret_casts, which the tiles' transfers fold through. Not where
/// an input is a view of the output's buffer: planFor refuses those with
/// or without the cast. Each cast made is recorded in `expands` with the
/// expand's source (the same elements).
void castExpandedOperands(IRRewriter &rewriter, Operation *root,
                          DenseMap<Value, Value> &expands) {
  root->walk([&](linalg::LinalgOp op) {
    if (!isPlainContraction(op))
      return;
    Value outRoot = viewRoot(op.getDpsInitOperand(0)->get());
    for (OpOperand *in : op.getDpsInputOperands())
      if (viewRoot(in->get()) == outRoot)
        return;
    for (OpOperand &operand : op->getOpOperands()) {
      auto expand = operand.get().getDefiningOp<memref::ExpandShapeOp>();
      if (!expand)
        continue;
      rewriter.setInsertionPoint(op);
      Value cast = moe::expandAsReinterpretCast(rewriter, expand);
      expands[cast] = expand.getSrc();
      rewriter.modifyOpInPlace(op, [&] { operand.set(cast); });
    }
  });
}

/// The plan for `op`, or nothing when the register kernel does not apply.
std::optional<TilePlan> planFor(linalg::LinalgOp op, int64_t mr, int64_t nr,
                                int64_t lanes) {
  if (!isPlainContraction(op))
    return std::nullopt;
  for (OpOperand &operand : op->getOpOperands()) {
    auto type = dyn_cast<MemRefType>(operand.get().getType());
    if (!type || !type.getElementType().isF32())
      return std::nullopt;
  }
  // The accumulator is kept in registers across k: an output that may
  // share memory with an input (views of one buffer) keeps the loop path.
  Value outRoot = viewRoot(op.getDpsInitOperand(0)->get());
  for (OpOperand *in : op.getDpsInputOperands())
    if (viewRoot(in->get()) == outRoot)
      return std::nullopt;
  // An operand that is a view through a memref.expand_shape keeps the loop
  // path: folding such views into the tiles' transfers (step 5) did not
  // converge, and the pass failed. Step 0 (castExpandedOperands) has made
  // an operand that is itself an expand_shape a reinterpret_cast; one
  // further up its chain of views (a subview of an expand) remains.
  for (OpOperand &operand : op->getOpOperands())
    for (Value v = operand.get(); Operation *def = v.getDefiningOp();) {
      if (isa<memref::ExpandShapeOp>(def))
        return std::nullopt;
      auto view = dyn_cast<ViewLikeOpInterface>(def);
      if (!view)
        break;
      v = view.getViewSource();
    }
  // A static zero-sized dim: nothing to compute (and no tile to make).
  if (llvm::is_contained(op.getStaticLoopRanges(), 0))
    return std::nullopt;
  FailureOr<linalg::ContractionDimensions> dims =
      linalg::inferContractionDims(op);
  if (failed(dims) || dims->n.empty() || dims->k.empty())
    return std::nullopt;
  AffineMap out = op.getMatchingIndexingMap(op.getDpsInitOperand(0));
  AffineMap rhs = op.getMatchingIndexingMap(op.getDpsInputOperand(1));
  if (out.getNumResults() == 0 || rhs.getNumResults() == 0)
    return std::nullopt;
  // The vector dim: the output's last dim, an n dim (in the right-hand
  // side). Where it is not the right-hand side's last dim too (a selector
  // [E, D] read as "nd,ed->ne"), the tile reads a strided column of it per
  // k: lane-by-lane loads, but FMAs into registers instead of a scalar
  // chain through memory.
  auto outLast = dyn_cast<AffineDimExpr>(out.getResults().back());
  if (!outLast || !llvm::is_contained(dims->n, outLast.getPosition()) ||
      !llvm::is_contained(rhs.getResults(), AffineExpr(outLast)))
    return std::nullopt;
  TilePlan plan;
  plan.nDim = outLast.getPosition();
  // Too narrow for one vector: the loop path keeps a scalar accumulator.
  SmallVector<int64_t> ranges = op.getStaticLoopRanges();
  if (!ShapedType::isDynamic(ranges[plan.nDim]) && ranges[plan.nDim] < lanes)
    return std::nullopt;
  // The MR dim: the innermost m dim of the output.
  for (AffineExpr e : llvm::reverse(out.getResults())) {
    auto d = dyn_cast<AffineDimExpr>(e);
    if (d && llvm::is_contained(dims->m, d.getPosition())) {
      plan.mDim = d.getPosition();
      break;
    }
  }
  unsigned numLoops = op.getNumLoops();
  plan.tileSizes.assign(numLoops, 1);
  plan.tileSizes[plan.nDim] = nr;
  if (plan.mDim)
    plan.tileSizes[*plan.mDim] = mr;
  auto append = [&](ArrayRef<unsigned> group, std::optional<unsigned> last) {
    for (unsigned d : group)
      if (!last || d != *last)
        plan.interchange.push_back(d);
    if (last && llvm::is_contained(group, *last))
      plan.interchange.push_back(*last);
  };
  append(dims->batch, std::nullopt);
  append(dims->m, plan.mDim);
  append(dims->n, plan.nDim);
  append(dims->k, std::nullopt);
  if (plan.interchange.size() != numLoops)
    return std::nullopt;
  return plan;
}

/// A one-row tile with fewer accumulator registers than this rotates its
/// k steps over several sets of them (rotateAccumulators): two FMA ports
/// with a latency of about 4 cycles keep 8 independent sums in flight.
constexpr int64_t kChainRegisters = 8;

/// Strips of n of the dot-product form (its partial sums: this many
/// vector registers).
constexpr int64_t kDotColumns = 8;

/// The dot-product form of a contraction: its n and k dims.
struct DotPlan {
  unsigned nDim = 0;
  unsigned kDim = 0;
};

/// Whether the last dim of `value`'s memref type has a static unit stride.
bool lastDimContiguous(Value value) {
  auto type = dyn_cast<MemRefType>(value.getType());
  if (!type || type.getRank() == 0)
    return false;
  SmallVector<int64_t> strides;
  int64_t offset;
  return succeeded(type.getStridesAndOffset(strides, offset)) &&
         strides.back() == 1;
}

/// The dot-product form's plan for `op`, or nothing: one n and one k dim;
/// k the last dim of both operands, both contiguous in it, static and at
/// least one vector (of `lanes`, a power of two); the output's last dim n
/// (so not contiguous in the right-hand side). With `oneRow`, also every m
/// dim of static size 1 (otherwise the rows are split first).
std::optional<DotPlan> dotPlanFor(linalg::LinalgOp op, int64_t lanes,
                                  bool oneRow) {
  if (!llvm::isPowerOf2_64(lanes))
    return std::nullopt;
  std::optional<TilePlan> plan = planFor(op, 1, 1, 1);
  if (!plan)
    return std::nullopt;
  FailureOr<linalg::ContractionDimensions> dims =
      linalg::inferContractionDims(op);
  if (failed(dims) || dims->n.size() != 1 || dims->k.size() != 1)
    return std::nullopt;
  unsigned k = dims->k.front();
  for (OpOperand *in : op.getDpsInputOperands()) {
    auto last = dyn_cast<AffineDimExpr>(
        op.getMatchingIndexingMap(in).getResults().back());
    if (!last || last.getPosition() != k || !lastDimContiguous(in->get()))
      return std::nullopt;
  }
  SmallVector<int64_t> ranges = op.getStaticLoopRanges();
  if (ShapedType::isDynamic(ranges[k]) || ranges[k] < lanes)
    return std::nullopt;
  if (oneRow && llvm::any_of(dims->m, [&](unsigned m) {
        return ranges[m] != 1;
      }))
    return std::nullopt;
  return DotPlan{plan->nDim, k};
}

/// Multiply-adds a split over threads must have at least to pay for its
/// fork-join (about 64K: a 412 x 82 head projection of one row has fewer,
/// a 412 x 412 one more).
constexpr int64_t kMinRowWork = 1 << 16;

/// A right-hand side of at least this many bytes is read in column panels
/// by the row tiles (columnPanelsFor): about an L1 data cache.
constexpr int64_t kPanelMinBytes = 32 * 1024;

/// A dense right-hand side stored in column panels of at least this many
/// bytes, in at least kStoredPanelMinCount panels, is read panel by panel
/// by all the row tiles (slicePanels). 1 MB is half the L2 of a core of
/// the AVX-512 host measured and all of it on the AVX2 one: from there on
/// each row tile's sweep no longer stays in L2 (the LM head's 13 MB went
/// to memory for every row tile); smaller ones keep their rows outermost.
constexpr int64_t kStoredPanelMinBytes = 1024 * 1024;
/// Fewest stored panels for that: with parallel loops the panel loop
/// replaces the row tiles as the parallel loop, so a few wide panels would
/// leave threads idle.
constexpr int64_t kStoredPanelMinCount = 8;

/// The rows of a contraction with dims `dims` and static loop `ranges`:
/// the product of its m ranges, dynamic if one of them is.
int64_t rowCount(const linalg::ContractionDimensions &dims,
                 ArrayRef<int64_t> ranges) {
  int64_t rows = 1;
  for (unsigned m : dims.m) {
    if (ShapedType::isDynamic(ranges[m]))
      return ShapedType::kDynamic;
    rows *= ranges[m];
  }
  return rows;
}

/// The multiply-adds of `columns` output columns of one row of contraction
/// `op` (the product of its static k ranges; a dynamic k counts as enough).
int64_t rowWork(linalg::LinalgOp op, int64_t columns) {
  FailureOr<linalg::ContractionDimensions> dims =
      linalg::inferContractionDims(op);
  if (failed(dims))
    return 0;
  SmallVector<int64_t> ranges = op.getStaticLoopRanges();
  int64_t work = columns;
  for (unsigned k : dims->k) {
    if (ShapedType::isDynamic(ranges[k]))
      return kMinRowWork;
    work *= ranges[k];
  }
  return work;
}

/// Whether `op` is inside a loop other than the loop over a model's
/// repeats (moe-roll-repeats' `moe.repeats` scf.for) and the one-row loop
/// of a dot-product contraction (splitRows).
bool insideInnerLoop(Operation *op) {
  for (auto loop = op->getParentOfType<LoopLikeOpInterface>(); loop;
       loop = loop->getParentOfType<LoopLikeOpInterface>())
    if (!loop->hasAttr(moe::kRepeatsAttrName) &&
        !loop->hasAttr(kDotRowLoopMarker))
      return true;
  return false;
}

/// Peels `loop` so that its main part runs full tiles only.
void peel(RewriterBase &rewriter, LoopLikeOpInterface loop) {
  auto forOp = dyn_cast_or_null<scf::ForOp>(loop.getOperation());
  if (!forOp)
    return;
  scf::ForOp partial;
  rewriter.setInsertionPoint(forOp);
  (void)scf::peelForLoopAndSimplifyBounds(rewriter, forOp, partial);
}

/// A loop over [lo, hi) by `step` at the insertion point: an scf.parallel
/// with `parallel`, else an scf.for. Returns it and its induction variable.
std::pair<Operation *, Value> createLoop(OpBuilder &b, Location loc, Value lo,
                                         Value hi, Value step, bool parallel) {
  if (parallel) {
    auto par = scf::ParallelOp::create(b, loc, ValueRange{lo}, ValueRange{hi},
                                       ValueRange{step});
    return {par, par.getInductionVars()[0]};
  }
  auto seq = scf::ForOp::create(b, loc, lo, hi, step);
  return {seq, seq.getInductionVar()};
}

struct MoeCpuTileContractionsPass
    : mlir::moe::impl::MoeCpuTileContractionsBase<
          MoeCpuTileContractionsPass> {
  using Base::Base;

  void runOnOperation() override {
    Operation *root = getOperation();
    MLIRContext *ctx = &getContext();
    if (vectorBits < 128 || vectorBits % 32 != 0) {
      root->emitError() << "moe-cpu-tile-contractions: vector-bits must be a "
                           "multiple of 32 of at least 128, got "
                        << static_cast<int64_t>(vectorBits);
      return signalPassFailure();
    }
    if (rows < 1 || columnVectors < 1 || rowColumnVectors < 0) {
      root->emitError()
          << "moe-cpu-tile-contractions: rows and column-vectors must be "
             "positive and row-column-vectors not negative, got "
          << static_cast<int64_t>(rows) << ", "
          << static_cast<int64_t>(columnVectors) << " and "
          << static_cast<int64_t>(rowColumnVectors);
      return signalPassFailure();
    }
    if (accumulatorChains < 1) {
      root->emitError() << "moe-cpu-tile-contractions: accumulator-chains "
                           "must be at least 1 (1: off), got "
                        << static_cast<int64_t>(accumulatorChains);
      return signalPassFailure();
    }
    int64_t lanes = vectorBits / 32;
    int64_t mr = rows, nr = columnVectors * lanes;
    // One-row tiles: wider (see the option).
    int64_t rowNr = (rowColumnVectors ? rowColumnVectors : columnVectors) *
                    lanes;
    IRRewriter rewriter(ctx);

    // 0. Operands viewed through an expand_shape as reinterpret_casts.
    DenseMap<Value, Value> expands;
    castExpandedOperands(rewriter, root, expands);

    // 1. Named contractions in (batch, m, n, k) order, adjacent row dims
    //    as one.
    SmallVector<linalg::LinalgOp> candidates;
    root->walk([&](linalg::LinalgOp op) {
      if (planFor(op, mr, nr, 1))
        candidates.push_back(op);
    });
    for (linalg::LinalgOp op : candidates)
      collapseRowDims(rewriter, op);
    SmallVector<std::pair<linalg::LinalgOp, TilePlan>> work;
    // (An output narrower than one vector only as dot products.)
    root->walk([&](linalg::LinalgOp op) {
      std::optional<TilePlan> plan = planFor(op, mr, nr, lanes);
      if (!plan && dotProducts && dotPlanFor(op, lanes, /*oneRow=*/false))
        plan = planFor(op, mr, nr, 1);
      if (plan)
        work.push_back({op, *plan});
    });
    if (work.empty())
      return;
    // Zero fills right before a contraction of the same output: the
    // register tiles start from zero instead of reading the fill back,
    // and the fill goes when every part of the contraction did so.
    ZeroFills zeroFills;
    Epilogues epilogues;
    SmallVector<linalg::LinalgOp> parts;
    for (auto &[op, plan] : work) {
      linalg::FillOp fill = zeroFillBefore(op, expands);
      FailureOr<linalg::LinalgOp> named = toNamedContraction(rewriter, op, plan);
      if (failed(named))
        continue;
      // (One reduction loop only: with more, the loops outside the
      // innermost one carry the sum through the output, and the read
      // before the innermost k loop is not the first.)
      if (fill && (*named).getNumReductionLoops() != 1)
        fill = {};
      if (fuseEpilogues)
        if (linalg::GenericOp epilogue = moe::cpu::findTileEpilogue(*named)) {
          IntegerAttr index =
              rewriter.getI64IntegerAttr(epilogues.failed.size());
          (*named)->setAttr(kEpilogueMarker, index);
          epilogue->setAttr(kEpilogueGenericMarker, index);
          epilogues.failed.push_back(false);
        }
      if (fill) {
        (*named)->setAttr(kZeroInitMarker,
                          rewriter.getI64IntegerAttr(zeroFills.fills.size()));
        zeroFills.fills.push_back(fill);
        zeroFills.keep.push_back(false);
      }
      // 2. Row loops of static steps MR and 1 (no masks).
      bool dotRows =
          dotProducts && dotPlanFor(*named, lanes, /*oneRow=*/false);
      if (failed(splitRows(rewriter, *named, mr, nr, rowNr, lanes,
                           parallelRows, dotRows, remainderTiles, parts)))
        return signalPassFailure();
    }
    // 3. Register tiles (k innermost, marked for the accumulator hoist);
    //    a partial column tile peeled off the full ones.
    //    One-row contractions that read n strided: dot products instead.
    for (linalg::LinalgOp op : parts) {
      if (dotProducts) {
        if (std::optional<DotPlan> dot =
                dotPlanFor(op, lanes, /*oneRow=*/true)) {
          zeroFills.keepFor(op); // the dot products read the output
          epilogues.failFor(op);   // and store no register tiles
          if (failed(lowerToDots(rewriter, op, *dot, lanes,
                                 parallelRows && !insideInnerLoop(op))))
            return signalPassFailure();
          continue;
        }
      }
      std::optional<TilePlan> plan = planFor(op, mr, nr, lanes);
      if (!plan) {
        epilogues.failFor(op);
        continue; // narrower than a vector, taken for dots: the loop path
      }
      if (plan->mDim && !ShapedType::isDynamic(
                            op.getStaticLoopRanges()[*plan->mDim]))
        plan->tileSizes[*plan->mDim] =
            std::min(plan->tileSizes[*plan->mDim],
                     op.getStaticLoopRanges()[*plan->mDim]);
      // One row (no m dim, or the one-row loop of the row split) that
      // reads its columns contiguously: a wider tile of columns. (Read
      // strided, per lane, a wider tile streams nothing.)
      int64_t width = nr;
      AffineMap rhsMap = op.getMatchingIndexingMap(op.getDpsInputOperand(1));
      auto rhsLast = dyn_cast<AffineDimExpr>(rhsMap.getResults().back());
      bool contiguous = rhsLast && rhsLast.getPosition() == plan->nDim;
      if (contiguous &&
          (!plan->mDim || op.getStaticLoopRanges()[*plan->mDim] == 1))
        width = rowNr;
      plan->tileSizes[plan->nDim] = width;
      scf::SCFTilingOptions options;
      options.setTileSizes(getAsIndexOpFoldResult(ctx, plan->tileSizes));
      rewriter.setInsertionPoint(op);
      FailureOr<scf::SCFTilingResult> tiled = scf::tileUsingSCF(
          rewriter, cast<TilingInterface>(op.getOperation()), options);
      if (failed(tiled)) {
        op.emitError("moe-cpu-tile-contractions: tiling failed");
        return signalPassFailure();
      }
      for (Operation *t : tiled->tiledOps)
        t->setAttr(kTileMarker, rewriter.getI64IntegerAttr(width));
      tiled->loops.back()->setAttr(kReductionLoopMarker,
                                   rewriter.getUnitAttr());
      // The k loop carries the fill's (the epilogue's) index and its
      // part's, so that a part whose k loop goes is found missing.
      auto markPart = [&](StringLiteral opMarker, StringLiteral loopMarker,
                          StringLiteral partMarker,
                          SmallVectorImpl<int64_t> &owners) {
        auto id = dyn_cast_if_present<IntegerAttr>(op->getAttr(opMarker));
        if (!id)
          return;
        Operation *kLoop = tiled->loops.back();
        kLoop->setAttr(loopMarker, id);
        kLoop->setAttr(partMarker, rewriter.getI64IntegerAttr(owners.size()));
        owners.push_back(id.getInt());
      };
      markPart(kZeroInitMarker, kZeroInitMarker, kZeroPartMarker,
               zeroFills.parts);
      markPart(kEpilogueMarker, kEpilogueLoopMarker, kEpiloguePartMarker,
               epilogues.partOwner);
      rewriter.eraseOp(op);
      peel(rewriter, tiled->loops[plan->nDim]);
    }
    // Constant tile sizes into the subview types (affine.min of a tile
    // size the loop bounds prove full, too).
    {
      RewritePatternSet patterns(ctx);
      addCleanup(patterns);
      if (failed(applyPatternsGreedily(root, std::move(patterns))))
        return cleanupFailed(root);
    }
    // A k loop of one step (a static k of 1) is gone now, inlined with its
    // marker: that part will read its output, and its fill stays.
    {
      SmallVector<bool> seen(zeroFills.parts.size(), false);
      root->walk([&](scf::ForOp loop) {
        if (auto part = dyn_cast_if_present<IntegerAttr>(
                loop->getAttr(kZeroPartMarker)))
          seen[part.getInt()] = true;
        loop->removeAttr(kZeroPartMarker);
      });
      for (auto [fill, found] : llvm::zip(zeroFills.parts, seen))
        if (!found)
          zeroFills.keep[fill] = true;
    }

    // 4. Each tile to a vector.contract (masked on a dynamic column tail).
    //    A static column tail whose width is not a power of two (412 =
    //    12 x 32 + 28) is split into power-of-two slices (16 + 8 + 4): LLVM
    //    would split a vector<28xf32> and assemble it lane by lane, and a
    //    mask would put a select on every FMA.
    //    Each tile keeps its register tile's width (the vector size of a
    //    dynamic column tail).
    SmallVector<linalg::LinalgOp> marked;
    SmallVector<std::pair<linalg::LinalgOp, int64_t>> tiles;
    root->walk([&](linalg::LinalgOp op) {
      if (op->hasAttr(kTileMarker))
        marked.push_back(op);
    });
    for (linalg::LinalgOp op : marked) {
      // (A marker of other origin, without a width: the narrow tile's.)
      auto widthAttr =
          dyn_cast_if_present<IntegerAttr>(op->getAttr(kTileMarker));
      int64_t tileWidth = widthAttr ? widthAttr.getInt() : nr;
      op->removeAttr(kTileMarker);
      std::optional<TilePlan> plan = planFor(op, mr, nr, 1);
      if (!plan)
        continue; // left to the loop path
      int64_t width = op.getStaticLoopRanges()[plan->nDim];
      if (ShapedType::isDynamic(width) || llvm::isPowerOf2_64(width)) {
        tiles.push_back({op, tileWidth});
        continue;
      }
      auto tiling = cast<TilingInterface>(op.getOperation());
      rewriter.setInsertionPoint(op);
      SmallVector<Range> domain = tiling.getIterationDomain(rewriter);
      SmallVector<OpFoldResult> offsets, sizes;
      for (Range r : domain) {
        offsets.push_back(r.offset);
        sizes.push_back(r.size);
      }
      int64_t at = 0;
      for (int64_t bit = int64_t(llvm::bit_floor(uint64_t(width))); bit;
           bit >>= 1) {
        if (!(width & bit))
          continue;
        offsets[plan->nDim] = rewriter.getIndexAttr(at);
        sizes[plan->nDim] = rewriter.getIndexAttr(bit);
        FailureOr<TilingResult> slice =
            tiling.getTiledImplementation(rewriter, offsets, sizes);
        if (failed(slice)) {
          op.emitError("moe-cpu-tile-contractions: column split failed");
          return signalPassFailure();
        }
        tiles.push_back(
            {cast<linalg::LinalgOp>(slice->tiledOps.back()), tileWidth});
        at += bit;
      }
      rewriter.eraseOp(op);
    }
    for (auto [op, tileWidth] : tiles) {
      std::optional<TilePlan> plan = planFor(op, mr, nr, 1);
      if (!plan)
        continue;
      SmallVector<int64_t> vectorSizes;
      for (auto [d, r] : llvm::enumerate(op.getStaticLoopRanges()))
        vectorSizes.push_back(!ShapedType::isDynamic(r) ? r
                              : d == plan->nDim         ? tileWidth
                                                        : 1);
      rewriter.setInsertionPoint(op);
      FailureOr<linalg::VectorizationResult> vectorized = linalg::vectorize(
          // Explicit `false`s: with an empty list the vectorizer builds
          // vector types whose scalable-dims array is not the canonical
          // one, and the outer-product lowering then refuses them.
          rewriter, op, vectorSizes,
          /*inputScalableVecDims=*/SmallVector<bool>(vectorSizes.size(), false),
          /*vectorizeNDExtract=*/false, /*flatten1DDepthwiseConv=*/false,
          /*assumeDynamicDimsMatchVecSizes=*/false,
          /*createNamedContraction=*/true);
      if (failed(vectorized))
        continue; // stays a (tiled) linalg op: correct, on the loop path
      rewriter.eraseOp(op);
    }

    // 5. Contractions to FMAs, subviews folded into the transfers.
    {
      // Alone first: unit-dim rewrites would otherwise reshape the
      // contraction into a form the outer-product lowering does not take.
      RewritePatternSet patterns(ctx);
      vector::populateVectorContractLoweringPatterns(
          patterns, vector::VectorContractLowering::OuterProduct);
      if (failed(applyPatternsGreedily(root, std::move(patterns))))
        return cleanupFailed(root);
    }
    {
      RewritePatternSet patterns(ctx);
      vector::populateVectorOuterProductLoweringPatterns(patterns);
      vector::populateVectorTransposeLoweringPatterns(
          patterns, vector::VectorTransposeLowering::EltWise);
      vector::populateVectorTransferPermutationMapLoweringPatterns(patterns);
      vector::populateVectorBroadcastLoweringPatterns(patterns);
      vector::populateVectorShapeCastLoweringPatterns(patterns);
      vector::populateCastAwayVectorLeadingOneDimPatterns(patterns);
      vector::populateVectorMaskLoweringPatternsForSideEffectingOps(patterns);
      memref::populateFoldMemRefAliasOpPatterns(patterns);
      // Not the full canonicalization: it would turn the accumulator's
      // insert chain into a from_elements of every scalar.
      if (failed(applyPatternsGreedily(root, std::move(patterns))))
        return cleanupFailed(root);
    }
    DominanceInfo dominance(root);
    eliminateCommonSubExpressions(rewriter, dominance, root);

    // Without FMA instructions llvm.fma becomes a libm call per element:
    // a separate multiply and add instead (two roundings, see
    // docs/tolerance.md).
    if (!fma) {
      root->walk([&](vector::FMAOp op) {
        rewriter.setInsertionPoint(op);
        auto flags = arith::FastMathFlagsAttr::get(
            ctx, arith::FastMathFlags::none);
        Value product = arith::MulFOp::create(rewriter, op.getLoc(),
                                              op.getLhs(), op.getRhs(), flags);
        rewriter.replaceOpWithNewOp<arith::AddFOp>(op, product, op.getAcc(),
                                                   flags);
      });
    }

    // 6. The accumulator into registers across k.
    SmallVector<scf::ForOp> kLoops;
    root->walk([&](scf::ForOp loop) {
      if (loop->hasAttr(kReductionLoopMarker))
        kLoops.push_back(loop);
    });
    SmallVector<SmallVector<scf::ForOp>> epilogueLoops(
        epilogues.failed.size());
    SmallVector<bool> epiloguePartSeen(epilogues.partOwner.size(), false);
    for (scf::ForOp &loop : kLoops) { // (hoisting replaces the loop)
      loop->removeAttr(kReductionLoopMarker);
      auto zero = dyn_cast_if_present<IntegerAttr>(
          loop->getAttr(kZeroInitMarker));
      loop->removeAttr(kZeroInitMarker);
      auto epilogue = dyn_cast_if_present<IntegerAttr>(
          loop->getAttr(kEpilogueLoopMarker));
      auto epiloguePart = dyn_cast_if_present<IntegerAttr>(
          loop->getAttr(kEpiloguePartMarker));
      loop->removeAttr(kEpilogueLoopMarker);
      loop->removeAttr(kEpiloguePartMarker);
      SmallVector<vector::TransferReadOp> hoisted;
      bool all = hoistAccumulators(rewriter, loop, hoisted);
      if (epilogue && epiloguePart) {
        epilogueLoops[epilogue.getInt()].push_back(loop);
        epiloguePartSeen[epiloguePart.getInt()] = true;
      }
      if (!zero)
        continue;
      // The fill wrote zeros and nothing else writes these elements before
      // this read: the read is zero (also when the fill stays).
      for (vector::TransferReadOp read : hoisted) {
        rewriter.setInsertionPoint(read);
        rewriter.replaceOpWithNewOp<arith::ConstantOp>(
            read, read.getVectorType(),
            rewriter.getZeroAttr(read.getVectorType()));
      }
      if (!all)
        zeroFills.keep[zero.getInt()] = true;
    }
    // Anything still marked (a part left on the loop path: not vectorized,
    // or never tiled) reads its output: its fill stays.
    root->walk([&](Operation *op) {
      zeroFills.keepFor(op);
      op->removeAttr(kZeroInitMarker);
    });
    for (auto [fill, keep] : llvm::zip(zeroFills.fills, zeroFills.keep))
      if (!keep)
        rewriter.eraseOp(fill);
    root->walk([&](scf::ForOp loop) { loop->removeAttr(kDotRowLoopMarker); });
    // 7. Epilogues into the register tiles' stores: only where every part
    //    of the contraction ended in register tiles (a part still marked
    //    is on the loop path; a part whose k loop is gone, a k of 1, reads
    //    and writes its output inside no marked loop).
    root->walk([&](Operation *op) {
      epilogues.failFor(op);
      op->removeAttr(kEpilogueMarker);
    });
    for (auto [owner, seen] : llvm::zip(epilogues.partOwner,
                                        epiloguePartSeen))
      if (!seen)
        epilogues.failed[owner] = true;
    SmallVector<std::pair<linalg::GenericOp, int64_t>> epilogueOps;
    root->walk([&](linalg::GenericOp generic) {
      if (auto id = dyn_cast_if_present<IntegerAttr>(
              generic->getAttr(kEpilogueGenericMarker))) {
        generic->removeAttr(kEpilogueGenericMarker);
        if (!epilogues.failed[id.getInt()])
          epilogueOps.push_back({generic, id.getInt()});
      }
    });
    for (auto [epilogue, index] : epilogueOps)
      (void)moe::cpu::applyTileEpilogue(rewriter, epilogue,
                                        epilogueLoops[index]);
    // 8. The narrow slices of a split column tail (8 + 4 of 16 + 8 + 4)
    //    as one vector of the full width. (The slices read the same A
    //    column: one read once the stores are out of the loop.)
    //    (CSE also erases k loops nothing uses now, a tile whose
    //    epilogue stores a value of its own: the loops left are found
    //    again by a marker.)
    if (mergeTailSlices) {
      for (scf::ForOp loop : kLoops)
        loop->setAttr(kReductionLoopMarker, rewriter.getUnitAttr());
      DominanceInfo dom(root);
      eliminateCommonSubExpressions(rewriter, dom, root);
      kLoops.clear();
      root->walk([&](scf::ForOp loop) {
        if (loop->hasAttr(kReductionLoopMarker))
          kLoops.push_back(loop);
      });
      for (scf::ForOp &loop : kLoops) {
        loop->removeAttr(kReductionLoopMarker);
        if (FailureOr<scf::ForOp> merged =
                mergeNarrowSlices(rewriter, loop, lanes);
            succeeded(merged))
          loop = *merged;
      }
    }
    // 9. Accumulator chains of narrow one-row tiles.
    if (accumulatorChains > 1)
      for (scf::ForOp loop : kLoops)
        rotateAccumulators(rewriter, loop, lanes, accumulatorChains);
    // The slices of a split column tail read the same A column: one read
    // once the stores are out of the loop.
    DominanceInfo after(root);
    eliminateCommonSubExpressions(rewriter, after, root);
  }

  /// One narrow slice of a split column tail in a register tile's k loop
  /// (see mergeNarrowSlices).
  struct NarrowSlice {
    unsigned arg = 0;                // its iter_arg
    int64_t lanes = 0;               // its columns
    int64_t col = 0;                 // the first, in the read of B
    vector::TransferReadOp read;     // B[.., col .. col + lanes)
    SmallVector<vector::FMAOp> fmas; // one per row
    SmallVector<Operation *> ops;    // its extracts, FMAs and inserts
  };

  /// The k loop's iter_arg `i` as a narrow slice: a vector<R x n> (or
  /// vector<n>, one row) with n < `lanes`, whose k step is, for each row r,
  /// acc[r] = fma(a_r, B, acc[r]): B one unmasked, in-bounds read of n
  /// elements at a constant column of the last dim (unit stride) of a
  /// buffer, the rows inserted in order into a constant, nothing else
  /// using the iter_arg or the FMAs.
  static std::optional<NarrowSlice> narrowSlice(scf::ForOp loop, unsigned i,
                                                int64_t lanes) {
    BlockArgument arg = loop.getRegionIterArgs()[i];
    auto type = dyn_cast<VectorType>(arg.getType());
    if (!type || type.isScalable() || type.getRank() < 1 ||
        type.getRank() > 2 || !isa<FloatType>(type.getElementType()) ||
        type.getShape().back() >= lanes)
      return std::nullopt;
    NarrowSlice slice;
    slice.arg = i;
    slice.lanes = type.getShape().back();
    int64_t rows = type.getRank() == 2 ? type.getDimSize(0) : 1;
    Value next = loop.getBody()->getTerminator()->getOperand(i);
    slice.fmas.assign(rows, vector::FMAOp());
    if (type.getRank() == 1) {
      auto fma = next.getDefiningOp<vector::FMAOp>();
      if (!fma || fma.getAcc() != arg || !arg.hasOneUse() || !fma->hasOneUse())
        return std::nullopt;
      slice.fmas[0] = fma;
      slice.ops.push_back(fma);
    } else {
      // The insert chain, last row first, down to its constant.
      while (auto insert = next.getDefiningOp<vector::InsertOp>()) {
        std::optional<int64_t> row =
            insert.hasDynamicPosition() || insert.getNumIndices() != 1
                ? std::nullopt
                : std::optional(insert.getStaticPosition()[0]);
        auto fma = insert.getValueToStore().getDefiningOp<vector::FMAOp>();
        if (!row || *row < 0 || *row >= rows || slice.fmas[*row] ||
            !insert->hasOneUse() || !fma || !fma->hasOneUse())
          return std::nullopt;
        auto acc = fma.getAcc().getDefiningOp<vector::ExtractOp>();
        if (!acc || acc.getSource() != arg || acc.hasDynamicPosition() ||
            acc.getNumIndices() != 1 || acc.getStaticPosition()[0] != *row ||
            !acc->hasOneUse())
          return std::nullopt;
        slice.fmas[*row] = fma;
        slice.ops.append({insert, fma, acc});
        next = insert.getDest();
      }
      if (!next.getDefiningOp<arith::ConstantOp>() ||
          llvm::any_of(slice.fmas, [](vector::FMAOp f) { return !f; }) ||
          !llvm::all_of(arg.getUsers(), [&](Operation *user) {
            return llvm::is_contained(slice.ops, user);
          }))
        return std::nullopt;
    }
    Value b = slice.fmas[0].getRhs();
    auto read = b.getDefiningOp<vector::TransferReadOp>();
    std::optional<int64_t> col =
        read && read.getVectorType().getRank() == 1 &&
                !read.getIndices().empty()
            ? getConstantIntValue(read.getIndices().back())
            : std::nullopt;
    if (!read || read.getMask() || !read.isDimInBounds(0) ||
        !read.getPermutationMap().isMinorIdentity() ||
        !lastDimContiguous(read.getBase()) || !col ||
        read->getBlock() != loop.getBody() ||
        llvm::any_of(slice.fmas,
                     [&](vector::FMAOp f) { return f.getRhs() != b; }))
      return std::nullopt;
    slice.read = read;
    slice.col = *col;
    return slice;
  }

  /// The scalar a tile row's FMA broadcasts: `lhs` is vector.broadcast of
  /// it, or the low lanes of such a broadcast.
  static Value broadcastScalar(Value lhs) {
    if (auto slice = lhs.getDefiningOp<vector::ExtractStridedSliceOp>()) {
      if (slice.getSourceVectorType().getRank() != 1 ||
          getConstantIntValue(slice.getOffsets()[0]) != 0)
        return {};
      lhs = slice.getSource();
    }
    auto broadcast = lhs.getDefiningOp<vector::BroadcastOp>();
    if (!broadcast || !broadcast.getSource().getType().isIntOrFloat())
      return {};
    return broadcast.getSource();
  }

  /// A split column tail (28 = 16 + 8 + 4 at 16 lanes) carries one
  /// accumulator per slice across k. Its narrow slices, here 8 and 4
  /// columns, each take an FMA a row and k step, as many as the full
  /// 16 (an FMA of 4 lanes costs the port what one of 16 does), and
  /// LLVM broadcasts their A element again from the 16-lane broadcast (a
  /// shuffle on the FMA port per row and slice): 18 FMAs and 6 shuffles
  /// a k step for the 6 x 28 tile, as many port cycles as a 6 x 64 tile's
  /// 24 FMAs. Here the narrow slices of `loop` (contiguous columns of one
  /// buffer, at most `lanes` of them in all) become one accumulator of
  /// `lanes` lanes: one read of B from the first slice's column (lanes
  /// past the buffer's last dim masked, by an out-of-bounds
  /// transfer_read; lanes past the slices read what is there), one FMA a
  /// row with the row's full-width broadcast, and after the loop each
  /// slice's lanes taken out again. Every slice lane computes what it
  /// did (the same FMAs of the same operands in the same order); the
  /// lanes past the slices are never stored. 12 FMAs and no shuffle for
  /// the 6 x 28 tile. Returns the new loop, or failure (nothing changed).
  static FailureOr<scf::ForOp>
  mergeNarrowSlices(RewriterBase &rewriter, scf::ForOp loop, int64_t lanes) {
    SmallVector<NarrowSlice> slices;
    for (unsigned i = 0, e = loop.getNumRegionIterArgs(); i < e; ++i)
      if (std::optional<NarrowSlice> slice = narrowSlice(loop, i, lanes))
        slices.push_back(std::move(*slice));
    if (slices.empty())
      return failure();
    llvm::sort(slices, [](const NarrowSlice &a, const NarrowSlice &b) {
      return a.col < b.col;
    });
    // One buffer, the same leading indices, rows and element type,
    // contiguous columns, at most `lanes` of them.
    vector::TransferReadOp first = slices.front().read;
    auto accType = cast<VectorType>(
        loop.getRegionIterArgs()[slices.front().arg].getType());
    int64_t rows = slices.front().fmas.size();
    Type elt = accType.getElementType();
    int64_t covered = 0;
    for (NarrowSlice &slice : slices) {
      auto type =
          cast<VectorType>(loop.getRegionIterArgs()[slice.arg].getType());
      if (slice.read.getBase() != first.getBase() ||
          !llvm::equal(slice.read.getIndices().drop_back(),
                       first.getIndices().drop_back()) ||
          type.getRank() != accType.getRank() ||
          int64_t(slice.fmas.size()) != rows || type.getElementType() != elt ||
          slice.col != slices.front().col + covered)
        return failure();
      covered += slice.lanes;
    }
    if (covered > lanes)
      return failure();
    // Each row's scalar, the same in every slice.
    SmallVector<Value> scalars;
    for (int64_t r = 0; r < rows; ++r) {
      Value s = broadcastScalar(slices.front().fmas[r].getLhs());
      if (!s || s.getType() != elt ||
          llvm::any_of(slices, [&](NarrowSlice &slice) {
            return broadcastScalar(slice.fmas[r].getLhs()) != s;
          }))
        return failure();
      scalars.push_back(s);
    }
    // (One slice alone is merged only where the loop also broadcasts its
    // rows' scalars wider, the wider slices of the tail, which LLVM would
    // broadcast it from again: otherwise it gains nothing.)
    if (slices.size() == 1 &&
        !llvm::any_of(scalars.front().getUsers(), [&](Operation *user) {
          auto wide = dyn_cast<vector::BroadcastOp>(user);
          return wide && wide->getBlock() == loop.getBody() &&
                 wide.getResultVectorType().getRank() == 1 &&
                 wide.getResultVectorType().getNumElements() >
                     slices.front().lanes;
        }))
      return failure();

    Location loc = loop.getLoc();
    SmallVector<int64_t> wideShape(accType.getShape());
    wideShape.back() = lanes;
    auto wideType = VectorType::get(wideShape, elt);
    auto rowType = VectorType::get({lanes}, elt);
    auto zeroOf = [&](OpBuilder &b, VectorType type) -> Value {
      return arith::ConstantOp::create(b, loc, type, b.getZeroAttr(type));
    };
    // The accumulator's start: each slice's lanes at its offset.
    rewriter.setInsertionPoint(loop);
    Value init = zeroOf(rewriter, wideType);
    {
      int64_t offset = 0;
      for (NarrowSlice &slice : slices) {
        Value part = loop.getInitArgs()[slice.arg];
        if (!matchPattern(part, m_PosZeroFloat())) {
          for (int64_t r = 0; r < rows; ++r) {
            Value narrowRow = part, wideRow = init;
            if (accType.getRank() == 2) {
              narrowRow = vector::ExtractOp::create(rewriter, loc, part,
                                                    ArrayRef<int64_t>{r});
              wideRow = vector::ExtractOp::create(rewriter, loc, init,
                                                  ArrayRef<int64_t>{r});
            }
            wideRow = vector::InsertStridedSliceOp::create(
                rewriter, loc, narrowRow, wideRow, ArrayRef<int64_t>{offset},
                ArrayRef<int64_t>{1});
            init = accType.getRank() == 2
                       ? vector::InsertOp::create(rewriter, loc, wideRow, init,
                                                  ArrayRef<int64_t>{r})
                             .getResult()
                       : wideRow;
          }
        }
        offset += slice.lanes;
      }
    }
    llvm::SmallDenseSet<unsigned> narrow;
    llvm::SmallPtrSet<Operation *, 32> dropped;
    for (NarrowSlice &slice : slices) {
      narrow.insert(slice.arg);
      dropped.insert(slice.ops.begin(), slice.ops.end());
    }
    SmallVector<Value> inits;
    SmallVector<unsigned> kept;
    for (auto [i, value] : llvm::enumerate(loop.getInitArgs()))
      if (!narrow.contains(i)) {
        inits.push_back(value);
        kept.push_back(i);
      }
    inits.push_back(init);
    auto yield = cast<scf::YieldOp>(loop.getBody()->getTerminator());
    auto merged = scf::ForOp::create(
        rewriter, loc, loop.getLowerBound(), loop.getUpperBound(),
        loop.getStep(), inits,
        [&](OpBuilder &b, Location l, Value iv, ValueRange args) {
          IRMapping map;
          map.map(loop.getInductionVar(), iv);
          for (auto [j, i] : llvm::enumerate(kept))
            map.map(loop.getRegionIterArgs()[i], args[j]);
          // B's columns of every slice in one read, where the first
          // slice's was (its operands are mapped by then).
          Value wideB;
          for (Operation &op : loop.getBody()->without_terminator()) {
            if (!dropped.contains(&op))
              b.clone(op, map);
            if (&op != first.getOperation())
              continue;
            SmallVector<Value> indices;
            for (Value index : first.getIndices())
              indices.push_back(map.lookupOrDefault(index));
            int64_t dim =
                cast<MemRefType>(first.getBase().getType()).getShape().back();
            bool inBounds = !ShapedType::isDynamic(dim) &&
                            slices.front().col + lanes <= dim;
            Value padding =
                arith::ConstantOp::create(b, l, elt, b.getZeroAttr(elt));
            wideB = vector::TransferReadOp::create(
                b, l, rowType, map.lookupOrDefault(first.getBase()), indices,
                padding, ArrayRef<bool>{inBounds});
          }
          Value acc = args.back();
          Value next = accType.getRank() == 2 ? zeroOf(b, wideType) : Value();
          for (int64_t r = 0; r < rows; ++r) {
            Value lhs = vector::BroadcastOp::create(
                b, l, rowType, map.lookupOrDefault(scalars[r]));
            Value accRow =
                accType.getRank() == 2
                    ? vector::ExtractOp::create(b, l, acc, ArrayRef<int64_t>{r})
                          .getResult()
                    : acc;
            Value sum = vector::FMAOp::create(b, l, lhs, wideB, accRow);
            next = accType.getRank() == 2
                       ? vector::InsertOp::create(b, l, sum, next,
                                                  ArrayRef<int64_t>{r})
                             .getResult()
                       : sum;
          }
          SmallVector<Value> yielded;
          for (unsigned i : kept)
            yielded.push_back(map.lookupOrDefault(yield.getOperand(i)));
          yielded.push_back(next);
          scf::YieldOp::create(b, l, yielded);
        });
    merged->setDiscardableAttrs(loop->getDiscardableAttrDictionary());
    // The loop's results: the kept ones, and each slice's lanes.
    rewriter.setInsertionPointAfter(merged);
    Value wide = merged.getResults().back();
    SmallVector<Value> results(loop.getNumResults());
    for (auto [j, i] : llvm::enumerate(kept))
      results[i] = merged.getResult(j);
    int64_t offset = 0;
    for (NarrowSlice &slice : slices) {
      auto type =
          cast<VectorType>(loop.getRegionIterArgs()[slice.arg].getType());
      auto take = [&](Value row) -> Value {
        return vector::ExtractStridedSliceOp::create(
            rewriter, loc, row, ArrayRef<int64_t>{offset},
            ArrayRef<int64_t>{slice.lanes}, ArrayRef<int64_t>{1});
      };
      if (type.getRank() == 1) {
        results[slice.arg] = take(wide);
      } else {
        Value part = zeroOf(rewriter, type);
        for (int64_t r = 0; r < rows; ++r)
          part = vector::InsertOp::create(
              rewriter, loc,
              take(vector::ExtractOp::create(rewriter, loc, wide,
                                             ArrayRef<int64_t>{r})),
              part, ArrayRef<int64_t>{r});
        results[slice.arg] = part;
      }
      offset += slice.lanes;
    }
    rewriter.replaceOp(loop, results);
    // The slices' reads and broadcasts nothing uses now.
    SmallVector<Operation *> body;
    for (Operation &op : merged.getBody()->without_terminator())
      body.push_back(&op);
    for (Operation *op : llvm::reverse(body))
      if (op->use_empty() && (isPure(op) || isa<vector::TransferReadOp>(op)))
        rewriter.eraseOp(op);
    return merged;
  }

  /// A one-row register tile's k loop whose accumulators are fewer vector
  /// registers than kChainRegisters (a 16-column panel's 1 x 16 tile is
  /// two at 256 bits): each k step's FMA waits for the last one's (about 4
  /// cycles), so the loop runs at the FMA latency, not its throughput. The
  /// k steps rotate over `maxChains` (at most; enough for kChainRegisters
  /// registers) sets of accumulators instead: step k adds into set
  /// k mod chains (the loop's iter_args shift by one set per step), and
  /// the sets are summed after the loop, ((s0 + s1) + (s2 + s3)). The sum
  /// is of the same terms in another order (docs/tolerance.md). Leaves
  /// any other loop: each iter_arg must be a 1-D vector whose only use is
  /// the accumulator of a vector.fma that only the yield uses, and the
  /// loop must have a static trip count of at least the chains used.
  static void rotateAccumulators(RewriterBase &rewriter, scf::ForOp loop,
                                 int64_t lanes, int64_t maxChains) {
    auto yield = cast<scf::YieldOp>(loop.getBody()->getTerminator());
    if (loop.getNumRegionIterArgs() == 0)
      return;
    int64_t registers = 0;
    for (auto [arg, next] :
         llvm::zip(loop.getRegionIterArgs(), yield.getOperands())) {
      auto type = dyn_cast<VectorType>(arg.getType());
      auto fma = next.getDefiningOp<vector::FMAOp>();
      if (!type || type.getRank() != 1 || type.isScalable() ||
          !isa<FloatType>(type.getElementType()) || !fma ||
          fma.getAcc() != arg || !arg.hasOneUse() || !fma->hasOneUse() ||
          fma->getBlock() != loop.getBody())
        return;
      registers += llvm::divideCeil(type.getNumElements(), lanes);
    }
    if (registers >= kChainRegisters)
      return;
    int64_t chains =
        std::min<int64_t>(maxChains, llvm::divideCeil(kChainRegisters, registers));
    std::optional<APInt> trips = loop.getStaticTripCount();
    if (chains < 2 || !trips || trips->getZExtValue() < uint64_t(chains))
      return;
    Location loc = loop.getLoc();
    rewriter.setInsertionPoint(loop);
    SmallVector<Value> inits;
    for (Value init : loop.getInitArgs()) {
      inits.push_back(init);
      // -0.0, the exact identity of addition (a sum of -0.0 terms onto a
      // -0.0 output stays -0.0).
      auto type = cast<VectorType>(init.getType());
      auto floatType = cast<FloatType>(type.getElementType());
      Value zero = arith::ConstantOp::create(
          rewriter, loc,
          DenseElementsAttr::get(
              type, APFloat::getZero(floatType.getFloatSemantics(),
                                     /*Negative=*/true)));
      inits.append(chains - 1, zero);
    }
    auto rotated = scf::ForOp::create(
        rewriter, loc, loop.getLowerBound(), loop.getUpperBound(),
        loop.getStep(), inits,
        [&](OpBuilder &b, Location l, Value iv, ValueRange args) {
          IRMapping map;
          map.map(loop.getInductionVar(), iv);
          for (auto [i, arg] : llvm::enumerate(loop.getRegionIterArgs()))
            map.map(arg, args[i * chains]);
          for (Operation &op : loop.getBody()->without_terminator())
            b.clone(op, map);
          SmallVector<Value> next;
          for (auto [i, value] : llvm::enumerate(yield.getOperands())) {
            for (int64_t c = 1; c < chains; ++c)
              next.push_back(args[i * chains + c]);
            next.push_back(map.lookup(value));
          }
          scf::YieldOp::create(b, l, next);
        });
    rotated->setDiscardableAttrs(loop->getDiscardableAttrDictionary());
    rewriter.setInsertionPointAfter(rotated);
    SmallVector<Value> sums;
    for (unsigned i = 0, e = loop.getNumResults(); i < e; ++i) {
      SmallVector<Value> level(rotated.getResults().slice(i * chains, chains));
      while (level.size() > 1) {
        SmallVector<Value> up;
        for (size_t j = 0; j + 1 < level.size(); j += 2)
          up.push_back(
              arith::AddFOp::create(rewriter, loc, level[j], level[j + 1]));
        if (level.size() % 2)
          up.push_back(level.back());
        level = std::move(up);
      }
      sums.push_back(level.front());
    }
    rewriter.replaceOp(loop, sums);
  }

  /// Folds each run of m dims that are adjacent loops and adjacent,
  /// contiguous dims of every operand that has them into one dim
  /// (upstream's collapseOpIterationDims; the operands through
  /// memref.collapse_shape). The register tile's rows are the innermost m
  /// dim: a Mixture-of-Tokens expert product "tced,edj->tcej" with one
  /// group (c = 1) would otherwise run one-row tiles T times instead of
  /// T / MR full ones.
  static void collapseRowDims(IRRewriter &rewriter, linalg::LinalgOp op) {
    FailureOr<linalg::ContractionDimensions> dims =
        linalg::inferContractionDims(op);
    if (failed(dims) || dims->m.size() < 2)
      return;
    SmallVector<unsigned> m(dims->m.begin(), dims->m.end());
    llvm::sort(m);
    SmallVector<ReassociationIndices> runs;
    for (unsigned d : m) {
      if (!runs.empty() && runs.back().back() + 1 == int64_t(d))
        runs.back().push_back(d);
      else
        runs.push_back({int64_t(d)});
    }
    llvm::erase_if(runs, [](const ReassociationIndices &r) {
      return r.size() < 2;
    });
    if (runs.empty())
      return;
    SmallVector<AffineMap> maps = op.getIndexingMapsArray();
    if (!linalg::areDimSequencesPreserved(maps, runs))
      return;
    // Each operand's collapse must be a view of its memref.
    for (OpOperand &operand : op->getOpOperands()) {
      auto type = cast<MemRefType>(operand.get().getType());
      AffineMap map = op.getMatchingIndexingMap(&operand);
      SmallVector<ReassociationIndices> groups;
      for (unsigned r = 0; r < map.getNumResults();) {
        auto d = dyn_cast<AffineDimExpr>(map.getResult(r));
        const ReassociationIndices *run =
            d ? llvm::find_if(runs,
                              [&](const ReassociationIndices &g) {
                                return g.front() == d.getPosition();
                              })
              : runs.end();
        if (run != runs.end()) {
          ReassociationIndices group;
          for (size_t i = 0; i < run->size(); ++i)
            group.push_back(r + i);
          groups.push_back(group);
          r += run->size();
        } else {
          groups.push_back({r});
          ++r;
        }
      }
      if (!memref::CollapseShapeOp::isGuaranteedCollapsible(type, groups))
        return;
    }
    FailureOr<linalg::GenericOp> target = asGeneric(rewriter, op);
    if (failed(target))
      return;
    OpBuilder::InsertionGuard guard(rewriter);
    rewriter.setInsertionPoint(*target);
    FailureOr<linalg::CollapseResult> collapsed =
        linalg::collapseOpIterationDims(*target, runs, rewriter);
    if (failed(collapsed))
      return;
    rewriter.eraseOp(*target);
  }

  /// `op` as a linalg.generic (generalized in place when named).
  static FailureOr<linalg::GenericOp> asGeneric(IRRewriter &rewriter,
                                                linalg::LinalgOp op) {
    if (auto generic = dyn_cast<linalg::GenericOp>(op.getOperation()))
      return generic;
    OpBuilder::InsertionGuard guard(rewriter);
    rewriter.setInsertionPoint(op);
    return linalg::generalizeNamedOp(rewriter, op);
  }

  /// The zero fills whose contractions start their tiles from zero; a
  /// fill stays (`keep`) when any part of its contraction reads it back.
  /// `parts`: the fill of each register-tile part, by the part's index.
  struct ZeroFills {
    SmallVector<linalg::FillOp> fills;
    SmallVector<bool> keep;
    SmallVector<int64_t> parts;
    void keepFor(Operation *op) {
      if (auto id = dyn_cast_if_present<IntegerAttr>(
              op->getAttr(kZeroInitMarker)))
        keep[id.getInt()] = true;
    }
  };

  /// The epilogues of contractions (fuse-epilogues), by index (the
  /// generics carry it in kEpilogueGenericMarker); `failed` when a part of
  /// the contraction does not end in register tiles;
  /// `partOwner`: the epilogue of each register-tile part, by the part's
  /// index.
  struct Epilogues {
    SmallVector<bool> failed;
    SmallVector<int64_t> partOwner;
    void failFor(Operation *op) {
      if (auto id = dyn_cast_if_present<IntegerAttr>(
              op->getAttr(kEpilogueMarker)))
        failed[id.getInt()] = true;
    }
  };

  /// The buffer `v` is a reshape of: through memref.collapse_shape,
  /// memref.expand_shape and the casts castExpandedOperands made of expands
  /// (`expands`: the LM head's [B, T, N] output read as column panels
  /// [B, T, N / 16, 16]), each of which views all the elements of its
  /// source, each once. Any other cast may view fewer elements, or some
  /// twice, and ends the walk.
  static Value reshapeRoot(Value v, const DenseMap<Value, Value> &expands) {
    while (true) {
      if (auto it = expands.find(v); it != expands.end()) {
        v = it->second;
        continue;
      }
      Operation *def = v.getDefiningOp();
      if (!isa_and_nonnull<memref::CollapseShapeOp, memref::ExpandShapeOp>(def))
        return v;
      v = def->getOperand(0);
    }
  }

  /// The linalg.fill of +0.0 into `op`'s whole output right before `op`:
  /// the last op with memory effects before it in its block, filling a
  /// reshape of the buffer the output is a reshape of (reshapeRoot;
  /// collapseRowDims puts a memref.collapse_shape in between). Null
  /// otherwise.
  static linalg::FillOp zeroFillBefore(linalg::LinalgOp op,
                                       const DenseMap<Value, Value> &expands) {
    Value out = reshapeRoot(op.getDpsInitOperand(0)->get(), expands);
    Operation *prev = op->getPrevNode();
    while (prev && isMemoryEffectFree(prev))
      prev = prev->getPrevNode();
    auto fill = dyn_cast_or_null<linalg::FillOp>(prev);
    if (!fill || !fill.hasPureBufferSemantics() ||
        reshapeRoot(fill.getDpsInitOperand(0)->get(), expands) != out)
      return {};
    auto value =
        fill.getDpsInputOperand(0)->get().getDefiningOp<arith::ConstantOp>();
    auto f = value ? dyn_cast<FloatAttr>(value.getValue()) : FloatAttr();
    if (!f || !f.getValue().isPosZero())
      return {};
    return fill;
  }

  /// A contraction as a named op whose loops run (batch, m, n, k): a
  /// linalg.contract with the generic's maps, interchanged. The vectorizer
  /// forms a vector.contract only from a named contraction; from a generic
  /// it broadcasts every operand to the whole iteration space and reduces,
  /// which lowers element by element.
  static FailureOr<linalg::LinalgOp>
  toNamedContraction(IRRewriter &rewriter, linalg::LinalgOp op,
                     const TilePlan &plan) {
    SmallVector<unsigned> order(plan.interchange.begin(),
                                plan.interchange.end());
    bool identity = llvm::equal(order, llvm::seq<unsigned>(0, order.size()));
    if (identity && isa<linalg::ContractionOpInterface>(op.getOperation()))
      return op;
    FailureOr<linalg::GenericOp> asGenericOp = asGeneric(rewriter, op);
    if (failed(asGenericOp))
      return failure();
    linalg::GenericOp generic = *asGenericOp;
    if (!identity) {
      FailureOr<linalg::GenericOp> swapped =
          linalg::interchangeGenericOp(rewriter, generic, order);
      if (failed(swapped))
        return failure();
      generic = *swapped;
    }
    rewriter.setInsertionPoint(generic);
    auto contract = linalg::ContractOp::create(
        rewriter, generic.getLoc(), generic.getResultTypes(),
        generic.getDpsInputs(), generic.getDpsInits(),
        generic.getIndexingMaps());
    rewriter.replaceOp(generic, contract->getResults());
    return cast<linalg::LinalgOp>(contract.getOperation());
  }

  /// Splits `op`'s m range into row loops of static steps (MR, then 1).
  /// Each loop's body is `op` on that static row slice (appended to
  /// `parts`), so the register tiles are static with no masks.
  ///
  /// `dotRows`: `op`'s one-row parts become dot products, whose strips of
  /// n are parallel loops of their own (lowerToDots); the one-row loop
  /// around them is then sequential (a decode step's q k^T: one row, the
  /// cache's keys split over the threads).
  static LogicalResult splitRows(IRRewriter &rewriter, linalg::LinalgOp op,
                                 int64_t mr, int64_t nr, int64_t rowNr,
                                 int64_t lanes, bool parallelRows, bool dotRows,
                                 bool remainderTiles,
                                 SmallVectorImpl<linalg::LinalgOp> &parts) {
    // (The narrow-output check was made when `op` was picked.)
    std::optional<TilePlan> plan = planFor(op, mr, nr, 1);
    if (!plan)
      return success();
    if (!plan->mDim) {
      parts.push_back(op);
      return success();
    }
    // Batch dims outside the rows: one batch slice's right-hand side (an
    // expert's weights in a Mixture-of-Tokens layer, a head's keys) is
    // then read by all its row tiles while it is in cache, instead of
    // every row tile sweeping every slice.
    // (Not for dot products or a single row tile: nothing to reuse; a
    // decode step's q k^T reads all heads of a strip of positions
    // together, a block of contiguous rows per head of the cache.)
    FailureOr<linalg::LinalgOp> slice =
        dotRows ? FailureOr<linalg::LinalgOp>(op)
                : sliceBatches(rewriter, op, mr,
                               parallelRows && !insideInnerLoop(op));
    if (failed(slice))
      return failure();
    if (*slice != op)
      return splitRows(rewriter, *slice, mr, nr, rowNr, lanes, parallelRows,
                       dotRows, remainderTiles, parts);
    // Stored column panels outside the rows in the same way (below).
    if (!dotRows && !insideInnerLoop(op)) {
      slice = slicePanels(rewriter, op, *plan, mr, parallelRows);
      if (failed(slice))
        return failure();
      if (*slice != op)
        return splitRows(rewriter, *slice, mr, nr, rowNr, lanes, parallelRows,
                         dotRows, remainderTiles, parts);
    }
    // Row steps MR, then 1: each step's loop covers up to the last
    // multiple of it. Halvings in between (8, 4, 2, 1) took a grouped
    // matmul with ~5 rows per expert from 3.5 to 3.1 ms but the MoEUT-44M
    // compile from 120 to 221 s (four copies of every kernel, before
    // moe-roll-repeats compiled the repeated layers once). The rows after
    // the MR tiles are one tile of their count instead (remainder-tiles,
    // in splitDim), where there are no column panels.
    SmallVector<int64_t> steps = {mr};
    if (mr > 1)
      steps.push_back(1);
    // Row tiles write disjoint rows: with `parallelRows` they form an
    // scf.parallel (moe-parallel-loops-to-host runs it on the thread pool;
    // every element's terms keep their order, so any thread count gives
    // the same bits). Not inside another loop (a grouped matmul's expert
    // loop): a fork-join per expert cost more than it gained (N = 512: 22
    // ms on one thread, 28 ms on two). The loop over a model's repeats
    // (moe-roll-repeats) runs whole layers and does not count.
    // The one-row loop (a decode step's only rows) runs its columns in
    // parallel chunks instead, where there are enough of them.
    bool parallel = parallelRows && !insideInnerLoop(op);
    std::optional<ColumnChunks> columns;
    if (parallel && !dotRows) {
      columns = columnChunksFor(op, plan->nDim, nr, rowNr, lanes);
      if (!columns)
        columns = panelChunksFor(op, plan->nDim);
    }
    std::optional<ColumnPanels> panels;
    if (!dotRows)
      panels = columnPanelsFor(op, *plan, mr, nr, lanes);
    return splitDim(rewriter, op, *plan->mDim, steps, parallel, parts,
                    columns, /*sequentialStepOne=*/parallel && dotRows,
                    panels, remainderTiles && !dotRows);
  }

  /// Column panels of the MR-row tiles: `count` panels `width` columns
  /// wide, then one `rest` wide (0: none), along n = `nDim`.
  struct ColumnPanels {
    unsigned nDim;
    int64_t width;
    int64_t count;
    int64_t rest;
  };

  /// Panels for `op` when its right-hand side is too large to stay in the
  /// L1 cache while one row tile sweeps all of it (kPanelMinBytes), its n
  /// is static and at least two register tiles wide, and its rows may fill
  /// more than one tile: each panel of nr columns (K x nr of the
  /// right-hand side: 52 KB at K = 412) is then read by all the row tiles
  /// while it is in cache, instead of every row tile streaming the whole
  /// right-hand side from L2 or memory. A rest narrower than a vector
  /// (`lanes`) joins the last panel: alone, it would leave the register
  /// tiles for the loop path (other bits), where as the tail of a wider
  /// panel it is the tile it was.
  static std::optional<ColumnPanels> columnPanelsFor(linalg::LinalgOp op,
                                                     const TilePlan &plan,
                                                     int64_t mr, int64_t nr,
                                                     int64_t lanes) {
    SmallVector<int64_t> ranges = op.getStaticLoopRanges();
    int64_t n = ranges[plan.nDim], rows = ranges[*plan.mDim];
    if (ShapedType::isDynamic(n) || n < 2 * nr ||
        (!ShapedType::isDynamic(rows) && rows <= mr))
      return std::nullopt;
    // Bytes of the right-hand side one row tile reads: its n and k dims
    // (batch dims are sliced to one by now; a dynamic k counts as large).
    FailureOr<linalg::ContractionDimensions> dims =
        linalg::inferContractionDims(op);
    if (failed(dims))
      return std::nullopt;
    int64_t bytes = 4;
    bool large = false;
    for (unsigned d : llvm::concat<unsigned>(dims->n, dims->k)) {
      if (ShapedType::isDynamic(ranges[d]))
        large = true;
      else
        bytes *= ranges[d];
    }
    if (!large && bytes < kPanelMinBytes)
      return std::nullopt;
    int64_t count = n / nr, rest = n % nr;
    if (rest > 0 && rest < lanes)
      return ColumnPanels{plan.nDim, nr, count - 1, nr + rest};
    return ColumnPanels{plan.nDim, nr, count, rest};
  }

  /// `op` inside loops over its batch dims (dims of all three operands
  /// that are neither m, n nor k), each of step 1, when one of them may
  /// be larger than one and the rows may fill more than one register tile
  /// (`mr` rows); with `parallel`, one of these loops is an scf.parallel
  /// (the rows inside are then sequential: each thread takes whole
  /// slices). Returns the op of one slice, or `op` itself when there is
  /// nothing to slice.
  static FailureOr<linalg::LinalgOp> sliceBatches(IRRewriter &rewriter,
                                                  linalg::LinalgOp op,
                                                  int64_t mr, bool parallel) {
    FailureOr<linalg::ContractionDimensions> dims =
        linalg::inferContractionDims(op);
    if (failed(dims) || dims->batch.empty())
      return op;
    SmallVector<int64_t> ranges = op.getStaticLoopRanges();
    int64_t rows = rowCount(*dims, ranges);
    if (!ShapedType::isDynamic(rows) && rows <= mr)
      return op;
    // The parallel loop: the first batch dim of a static range of at
    // least two (a head, an expert), else the first dynamic one (a token
    // of a Mixture of Tokens' mix); none when all are static ones.
    auto wide = llvm::find_if(dims->batch, [&](unsigned d) {
      return !ShapedType::isDynamic(ranges[d]) && ranges[d] >= 2;
    });
    if (wide == dims->batch.end())
      wide = llvm::find_if(dims->batch, [&](unsigned d) {
        return ShapedType::isDynamic(ranges[d]);
      });
    if (wide == dims->batch.end())
      return op;
    unsigned parallelDim = *wide;
    // The parallel loop outermost: one fork-join, not one per iteration of
    // the loops around it.
    SmallVector<unsigned> order = {parallelDim};
    for (unsigned d : dims->batch)
      if (d != parallelDim)
        order.push_back(d);
    return sliceAlong(rewriter, op, order, parallel,
                      "moe-cpu-tile-contractions: batch split failed");
  }

  /// `op` inside a loop over its stored column panels when its right-hand
  /// side is a dense weight packed [N / P, K, P] (build::
  /// contractOverPanels: its first dim, the panel index, is an n dim
  /// besides its last, the vector dim) of at least kStoredPanelMinBytes in
  /// at least kStoredPanelMinCount panels, and its rows may fill more
  /// than one register tile: each panel (K x P) is then read by all the
  /// row tiles while it is in the L2 cache. Otherwise every row tile swept
  /// the whole right-hand side: the MoEUT-44M LM head at T = 256 read its
  /// 13 MB 43 times, from memory (docs/performance.md, "The LM head's
  /// panels outside its rows"). With `parallel`, the panel loop is the
  /// scf.parallel (panels write disjoint columns) and the rows inside are
  /// sequential. Every register tile is the one it was, so every output
  /// element's sum is too. Returns the op of one panel, or `op` itself.
  static FailureOr<linalg::LinalgOp> slicePanels(IRRewriter &rewriter,
                                                 linalg::LinalgOp op,
                                                 const TilePlan &plan,
                                                 int64_t mr, bool parallel) {
    FailureOr<linalg::ContractionDimensions> dims =
        linalg::inferContractionDims(op);
    if (failed(dims) || !plan.mDim)
      return op;
    SmallVector<int64_t> ranges = op.getStaticLoopRanges();
    int64_t rows = rowCount(*dims, ranges);
    if (!ShapedType::isDynamic(rows) && rows <= mr)
      return op;
    // The stored layout: the right-hand side's first dim is the panel
    // index, an n dim other than the vector dim, and its last the vector
    // dim.
    AffineMap rhs = op.getMatchingIndexingMap(op.getDpsInputOperand(1));
    auto first = dyn_cast<AffineDimExpr>(rhs.getResult(0));
    auto last = dyn_cast<AffineDimExpr>(rhs.getResults().back());
    if (rhs.getNumResults() < 3 || !first || !last ||
        last.getPosition() != plan.nDim || first.getPosition() == plan.nDim ||
        !llvm::is_contained(dims->n, first.getPosition()))
      return op;
    unsigned panelDim = first.getPosition();
    // Enough panels to keep the threads as busy as the row tiles did.
    if (ShapedType::isDynamic(ranges[panelDim]) ||
        ranges[panelDim] < kStoredPanelMinCount)
      return op;
    int64_t bytes = 4;
    for (unsigned d : llvm::concat<unsigned>(dims->n, dims->k)) {
      if (ShapedType::isDynamic(ranges[d]))
        return op;
      bytes *= ranges[d];
    }
    if (bytes < kStoredPanelMinBytes)
      return op;
    return sliceAlong(rewriter, op, {panelDim}, parallel,
                      "moe-cpu-tile-contractions: panel split failed");
  }

  /// `op` inside loops over `order`'s dims (outermost first), each of step
  /// 1, the first an scf.parallel with `parallel`: the op of one slice.
  static FailureOr<linalg::LinalgOp> sliceAlong(IRRewriter &rewriter,
                                                linalg::LinalgOp op,
                                                ArrayRef<unsigned> order,
                                                bool parallel,
                                                StringRef failureMessage) {
    Location loc = op.getLoc();
    OpBuilder::InsertionGuard guard(rewriter);
    rewriter.setInsertionPoint(op);
    auto tiling = cast<TilingInterface>(op.getOperation());
    SmallVector<Range> domain = tiling.getIterationDomain(rewriter);
    Value one = arith::ConstantIndexOp::create(rewriter, loc, 1);
    SmallVector<SliceDim> slice;
    for (unsigned d : order) {
      Value lo =
          getValueOrCreateConstantIndexOp(rewriter, loc, domain[d].offset);
      Value hi = arith::AddIOp::create(
          rewriter, loc, lo,
          getValueOrCreateConstantIndexOp(rewriter, loc, domain[d].size));
      auto [loop, iv] =
          createLoop(rewriter, loc, lo, hi, one, parallel && d == order[0]);
      rewriter.setInsertionPoint(loop->getRegion(0).front().getTerminator());
      slice.push_back({d, iv, 1});
    }
    SmallVector<linalg::LinalgOp> sliced;
    if (failed(appendSlice(rewriter, tiling, domain, slice, sliced)))
      return op.emitError(failureMessage);
    rewriter.eraseOp(op);
    return sliced.front();
  }

  /// One dim of a slice: its offset and static size.
  struct SliceDim {
    unsigned dim;
    OpFoldResult offset;
    int64_t size;
  };

  /// The op that computes the slice of `tiling`'s iteration `domain` with
  /// the dims of `slice` narrowed, at the insertion point, appended to
  /// `parts`.
  static LogicalResult appendSlice(IRRewriter &rewriter,
                                   TilingInterface tiling,
                                   ArrayRef<Range> domain,
                                   ArrayRef<SliceDim> slice,
                                   SmallVectorImpl<linalg::LinalgOp> &parts) {
    SmallVector<OpFoldResult> offsets, sizes;
    for (Range r : domain) {
      offsets.push_back(r.offset);
      sizes.push_back(r.size);
    }
    for (const SliceDim &d : slice) {
      offsets[d.dim] = d.offset;
      sizes[d.dim] = rewriter.getIndexAttr(d.size);
    }
    FailureOr<TilingResult> tiled =
        tiling.getTiledImplementation(rewriter, offsets, sizes);
    if (failed(tiled))
      return failure();
    parts.push_back(cast<linalg::LinalgOp>(tiled->tiledOps.back()));
    return success();
  }

  /// The column chunks of a parallel one-row loop: its n dim, `count`
  /// chunks, each `width` columns wide but the last, `last` wide.
  struct ColumnChunks {
    unsigned nDim;
    int64_t width;
    int64_t count;
    int64_t last;
  };

  /// Chunks of columns for the one-row loop of `op` (n = `nDim`): the
  /// one-row tile's width `rowNr`, halved while that leaves fewer than four
  /// chunks and stays a multiple of `nr` and at least kChainRegisters
  /// vectors wide (a narrower tile's k steps would rotate over several
  /// accumulator sets, rotateAccumulators, and its sums would not be the
  /// sequential build's 1 x `rowNr` tile's), and at least two chunks; the
  /// remainder a chunk of its own, or, narrower than a vector (`lanes`),
  /// part of the last one (a part narrower than a vector would leave the
  /// register tiles, and its bits those of the sequential code). None for
  /// a dynamic n, or where a row's products (n x k) are too few to pay for
  /// a fork-join (kMinRowWork: a 412 x 82 head projection is not split, a
  /// 412 x 412 one is).
  static std::optional<ColumnChunks> columnChunksFor(linalg::LinalgOp op,
                                                     unsigned nDim, int64_t nr,
                                                     int64_t rowNr,
                                                     int64_t lanes) {
    SmallVector<int64_t> ranges = op.getStaticLoopRanges();
    int64_t n = ranges[nDim];
    if (ShapedType::isDynamic(n) || rowWork(op, n) < kMinRowWork)
      return std::nullopt;
    int64_t width = std::max(rowNr, nr);
    while (width > nr && n / width < 4 && (width / 2) % nr == 0 &&
           width / 2 >= kChainRegisters * lanes)
      width /= 2;
    int64_t full = n / width, rem = n % width;
    if (full < 2)
      return std::nullopt;
    if (rem == 0)
      return ColumnChunks{nDim, width, full, width};
    if (rem >= lanes)
      return ColumnChunks{nDim, width, full + 1, rem};
    return ColumnChunks{nDim, width, full, width + rem};
  }

  /// The chunks of a parallel one-row loop over column panels: `op`'s
  /// first n dim other than the vector dim `vectorDim` (the panel index of
  /// a contraction over weights stored [N / P, K, P], build::
  /// contractOverPanels), one panel per chunk (moe-parallel-loops-to-host
  /// groups them by its max-chunks). A panel's columns are too few to
  /// split (columnChunksFor), so without this a decode step's projection
  /// over panels ran on one thread. None where the row's products over all
  /// panels are too few to pay for a fork-join (kMinRowWork) or a range is
  /// dynamic.
  static std::optional<ColumnChunks> panelChunksFor(linalg::LinalgOp op,
                                                    unsigned vectorDim) {
    FailureOr<linalg::ContractionDimensions> dims =
        linalg::inferContractionDims(op);
    if (failed(dims))
      return std::nullopt;
    SmallVector<int64_t> ranges = op.getStaticLoopRanges();
    int64_t columns = 1;
    std::optional<unsigned> outer;
    for (unsigned d : dims->n) {
      if (ShapedType::isDynamic(ranges[d]))
        return std::nullopt;
      columns *= ranges[d];
      if (d != vectorDim && !outer && ranges[d] >= 2)
        outer = d;
    }
    if (!outer || rowWork(op, columns) < kMinRowWork)
      return std::nullopt;
    return ColumnChunks{*outer, 1, ranges[*outer], 1};
  }

  /// Rows [from, to) of `op`, one at a time, in the column chunks of its
  /// static n: an scf.parallel over the chunks (the last one, if of
  /// another width, behind an scf.if so that every part is static), each
  /// a loop over the rows; all of it behind an scf.if when the rows may
  /// be none (no fork-join for nothing). Every output element is still
  /// one part's, with its terms in the same order.
  static LogicalResult splitColumns(IRRewriter &rewriter, linalg::LinalgOp op,
                                    ArrayRef<Range> domain, unsigned mDim,
                                    Value from, Value to,
                                    const ColumnChunks &chunks,
                                    SmallVectorImpl<linalg::LinalgOp> &parts) {
    Location loc = op.getLoc();
    auto tiling = cast<TilingInterface>(op.getOperation());
    unsigned nDim = chunks.nDim;
    auto index = [&](int64_t v) -> Value {
      return arith::ConstantIndexOp::create(rewriter, loc, v);
    };
    OpBuilder::InsertionGuard guard(rewriter);
    std::optional<int64_t> lo = getConstantIntValue(from),
                           hi = getConstantIntValue(to);
    if (!lo || !hi) {
      Value any = arith::CmpIOp::create(rewriter, loc,
                                        arith::CmpIPredicate::slt, from, to);
      auto rowsLeft = scf::IfOp::create(rewriter, loc, any,
                                        /*withElseRegion=*/false);
      rewriter.setInsertionPoint(rowsLeft.thenBlock()->getTerminator());
    }
    auto par = scf::ParallelOp::create(rewriter, loc, ValueRange{index(0)},
                                       ValueRange{index(chunks.count)},
                                       ValueRange{index(1)});
    rewriter.setInsertionPoint(par.getBody()->getTerminator());
    Value chunk = par.getInductionVars()[0];
    AffineExpr s0 = rewriter.getAffineSymbolExpr(0),
               s1 = rewriter.getAffineSymbolExpr(1);
    auto rowsOf = [&](OpFoldResult column, int64_t width) -> LogicalResult {
      auto rows = scf::ForOp::create(rewriter, loc, from, to, index(1));
      OpBuilder::InsertionGuard inner(rewriter);
      rewriter.setInsertionPoint(rows.getBody()->getTerminator());
      return appendSlice(rewriter, tiling, domain,
                         {{mDim, rows.getInductionVar(), 1},
                          {nDim, column, width}},
                         parts);
    };
    Value nLo = getValueOrCreateConstantIndexOp(rewriter, loc,
                                                domain[nDim].offset);
    OpFoldResult column = affine::makeComposedFoldedAffineApply(
        rewriter, loc, s0 + s1 * chunks.width, {nLo, chunk});
    if (chunks.last == chunks.width)
      return rowsOf(column, chunks.width);
    Value notLast = arith::CmpIOp::create(rewriter, loc,
                                          arith::CmpIPredicate::ult, chunk,
                                          index(chunks.count - 1));
    auto branch = scf::IfOp::create(rewriter, loc, notLast,
                                    /*withElseRegion=*/true);
    rewriter.setInsertionPoint(branch.thenBlock()->getTerminator());
    if (failed(rowsOf(column, chunks.width)))
      return failure();
    rewriter.setInsertionPoint(branch.elseBlock()->getTerminator());
    OpFoldResult last = affine::makeComposedFoldedAffineApply(
        rewriter, loc, s0 + (chunks.count - 1) * chunks.width, {nLo});
    return rowsOf(last, chunks.last);
  }

  /// Splits loop `dim` of `op` into loops of static steps `steps` (the
  /// first step, then each next one up to the end). Each loop's body is
  /// `op` on that static slice of `dim` (appended to `parts`). A static
  /// range no larger than the first step is one part: `op` itself.
  /// Each step must divide the one before it: the loop of a step ends at
  /// the last multiple of it counted from the range's start, which is
  /// where the next loop starts (with steps 3 then 2, the 2-row tiles
  /// would run past the end).
  ///
  /// With `columns` (and `parallel`), the loop of step 1 is split by
  /// columns instead (splitColumns), and so is a static range of one.
  /// With `sequentialStepOne`, the loop of step 1 is a sequential scf.for
  /// (marked kDotRowLoopMarker: the one-row loop of a dot-product
  /// contraction, or the last strips of one).
  ///
  /// With `remainderTiles`, a dynamic range's last step of 1 after a step
  /// s > 2 (the r < s rows after the full tiles: an expert's last rows)
  /// is an scf.index_switch on r: for r in [2, s), one tile of r rows,
  /// by default a sequential loop of step 1 (r of 0 or 1: a decode step's
  /// single row keeps its wide one-row tile), or with `columns` (panel
  /// chunks) that row split by panels, one tile each as in the sequential
  /// build. Each r-row tile reads the
  /// right-hand side once where r one-row tiles read it r times; every
  /// output element's terms keep their order. Not with `panels`: a tile
  /// that reads 64 of every 256 bytes of a wide right-hand side from
  /// memory, once, was slower than r contiguous one-row passes over it.
  static LogicalResult
  splitDim(IRRewriter &rewriter, linalg::LinalgOp op, unsigned dim,
           ArrayRef<int64_t> steps, bool parallel,
           SmallVectorImpl<linalg::LinalgOp> &parts,
           std::optional<ColumnChunks> columns = std::nullopt,
           bool sequentialStepOne = false,
           std::optional<ColumnPanels> panels = std::nullopt,
           bool remainderTiles = false) {
    assert(llvm::all_of(llvm::seq<size_t>(1, steps.size()),
                        [&](size_t i) {
                          return steps[i] > 0 && steps[i - 1] % steps[i] == 0;
                        }) &&
           "each step divides the one before it");
    int64_t staticSize = op.getStaticLoopRanges()[dim];
    bool byColumns = parallel && columns && steps.back() == 1;
    if (byColumns && staticSize == 1) {
      Location loc = op.getLoc();
      rewriter.setInsertionPoint(op);
      SmallVector<Range> domain =
          cast<TilingInterface>(op.getOperation()).getIterationDomain(rewriter);
      Value lo = getValueOrCreateConstantIndexOp(rewriter, loc,
                                                 domain[dim].offset);
      Value hi = arith::AddIOp::create(
          rewriter, loc, lo, arith::ConstantIndexOp::create(rewriter, loc, 1));
      if (failed(splitColumns(rewriter, op, domain, dim, lo, hi, *columns,
                              parts)))
        return op.emitError("moe-cpu-tile-contractions: column split failed");
      rewriter.eraseOp(op);
      return success();
    }
    if (!ShapedType::isDynamic(staticSize) && staticSize <= steps.front()) {
      parts.push_back(op);
      return success();
    }
    Location loc = op.getLoc();
    rewriter.setInsertionPoint(op);
    auto tiling = cast<TilingInterface>(op.getOperation());
    SmallVector<Range> domain = tiling.getIterationDomain(rewriter);
    Value lo =
        getValueOrCreateConstantIndexOp(rewriter, loc, domain[dim].offset);
    Value size =
        getValueOrCreateConstantIndexOp(rewriter, loc, domain[dim].size);
    AffineExpr s0 = rewriter.getAffineSymbolExpr(0),
               s1 = rewriter.getAffineSymbolExpr(1);
    auto index = [&](int64_t v) -> Value {
      return arith::ConstantIndexOp::create(rewriter, loc, v);
    };
    // Row tiles of `step` rows in panels of columns (columnPanelsFor): a
    // loop over the panels around a sequential loop over the row tiles
    // (with `parallel`, the panel loop is the scf.parallel: panels write
    // disjoint columns), then the rest of the columns as one more panel,
    // its row tiles parallel as before. Every tile is the one it was, so
    // every output element's sum is too.
    auto panelLoops = [&](Value from, Value to, int64_t step) -> LogicalResult {
      OpBuilder::InsertionGuard guard(rewriter);
      Value stepValue = index(step);
      Value nLo = getValueOrCreateConstantIndexOp(
          rewriter, loc, domain[panels->nDim].offset);
      auto rowTiles = [&](OpFoldResult nOffset, int64_t width,
                          bool parallelRows) -> LogicalResult {
        auto [loop, iv] =
            createLoop(rewriter, loc, from, to, stepValue, parallelRows);
        OpBuilder::InsertionGuard inner(rewriter);
        rewriter.setInsertionPoint(
            loop->getRegion(0).front().getTerminator());
        return appendSlice(rewriter, tiling, domain,
                           {{dim, iv, step}, {panels->nDim, nOffset, width}},
                           parts);
      };
      auto [panelLoop, p] = createLoop(rewriter, loc, index(0),
                                       index(panels->count), index(1),
                                       parallel);
      {
        OpBuilder::InsertionGuard inner(rewriter);
        rewriter.setInsertionPoint(
            panelLoop->getRegion(0).front().getTerminator());
        OpFoldResult nOffset = affine::makeComposedFoldedAffineApply(
            rewriter, loc, s0 + s1 * panels->width,
            ArrayRef<OpFoldResult>{nLo, p});
        if (failed(rowTiles(nOffset, panels->width, /*parallelRows=*/false)))
          return failure();
      }
      if (panels->rest == 0)
        return success();
      OpFoldResult restOffset = affine::makeComposedFoldedAffineApply(
          rewriter, loc, s0 + panels->count * panels->width,
          ArrayRef<OpFoldResult>{nLo});
      return rowTiles(restOffset, panels->rest, parallel);
    };
    auto stepLoop = [&](Value from, Value to, int64_t step) -> LogicalResult {
      if (panels && step > 1)
        return panelLoops(from, to, step);
      bool dotRowLoop = sequentialStepOne && step == 1;
      auto [loop, iv] = createLoop(rewriter, loc, from, to, index(step),
                                   parallel && !dotRowLoop);
      if (dotRowLoop)
        loop->setAttr(kDotRowLoopMarker, rewriter.getUnitAttr());
      OpBuilder::InsertionGuard guard(rewriter);
      rewriter.setInsertionPoint(loop->getRegion(0).front().getTerminator());
      return appendSlice(rewriter, tiling, domain, {{dim, iv, step}}, parts);
    };
    // The r = to - from < `below` rows after the full tiles: a switch on
    // r, one r-row tile per case in [2, below), the one-row loop by
    // default.
    auto remainderSwitch = [&](Value from, Value to,
                               int64_t below) -> LogicalResult {
      OpBuilder::InsertionGuard guard(rewriter);
      Value count = arith::SubIOp::create(rewriter, loc, to, from);
      SmallVector<int64_t> cases = llvm::to_vector(llvm::seq<int64_t>(2, below));
      auto branch = scf::IndexSwitchOp::create(rewriter, loc, TypeRange{},
                                               count, cases, cases.size());
      auto enter = [&](Region &region) {
        Block *block = rewriter.createBlock(&region);
        rewriter.setInsertionPointToEnd(block);
        scf::YieldOp::create(rewriter, loc);
        rewriter.setInsertionPoint(block->getTerminator());
      };
      for (auto [rows, region] : llvm::zip(cases, branch.getCaseRegions())) {
        enter(region);
        if (failed(appendSlice(rewriter, tiling, domain,
                               {{dim, from, rows}}, parts)))
          return failure();
      }
      // (At most one row: a sequential loop, no fork-join; with `columns`,
      // that row's column chunks in parallel. Only panel chunks get here,
      // panelChunksFor: a dynamic row range with column chunks of one wide
      // right-hand side has column panels too, and no remainder switch.
      // A panel is at most one register tile wide, so the parallel build
      // runs the sequential build's tiles and has its bits.)
      enter(branch.getDefaultRegion());
      if (byColumns)
        return splitColumns(rewriter, op, domain, dim, from, to, *columns,
                            parts);
      auto [loop, iv] = createLoop(rewriter, loc, from, to, index(1),
                                   /*parallel=*/false);
      rewriter.setInsertionPoint(loop->getRegion(0).front().getTerminator());
      return appendSlice(rewriter, tiling, domain, {{dim, iv, 1}}, parts);
    };
    Value from = lo;
    int64_t covered = 0; // (a static size: what the loops so far cover)
    for (auto [i, step] : llvm::enumerate(steps)) {
      // A static range this step adds nothing to (12 rows in tiles of 6,
      // then of 1): no loop, so no part that never runs (whose code the
      // cleanup would delete, which the zero fills and the epilogues would
      // take for a part they cannot see).
      if (!ShapedType::isDynamic(staticSize)) {
        int64_t upTo = i + 1 == steps.size() ? staticSize
                                             : staticSize / step * step;
        if (upTo == covered)
          continue;
        covered = upTo;
      }
      Value to = i + 1 == steps.size()
                     ? affine::makeComposedAffineApply(rewriter, loc, s0 + s1,
                                                       {lo, size})
                     : affine::makeComposedAffineApply(
                           rewriter, loc, s0 + s1.floorDiv(step) * step,
                           {lo, size});
      bool remainder = remainderTiles && step == 1 && i > 0 &&
                       steps[i - 1] > 2 && ShapedType::isDynamic(staticSize) &&
                       !sequentialStepOne && !panels;
      if (remainder) {
        if (failed(remainderSwitch(from, to, steps[i - 1])))
          return op.emitError(
              "moe-cpu-tile-contractions: remainder split failed");
      } else if (byColumns && step == 1) {
        if (failed(splitColumns(rewriter, op, domain, dim, from, to, *columns,
                                parts)))
          return op.emitError("moe-cpu-tile-contractions: column split failed");
      } else if (failed(stepLoop(from, to, step))) {
        return op.emitError("moe-cpu-tile-contractions: loop split failed");
      }
      from = to;
    }
    rewriter.eraseOp(op);
    return success();
  }

  /// `op` (one row: every dim but n and k of size 1 or tiled to 1 here)
  /// as dot products, written out (see emitDotTile). n in strips of
  /// kDotColumns, then 1 (a static n of at most kDotColumns: one strip).
  /// With `parallel` (an op outside any loop), the strips of kDotColumns
  /// form an scf.parallel (a decode step's q k^T splits the cache's keys
  /// over the threads), unless a static n has too little work
  /// (kMinRowWork); the last few columns stay sequential.
  static LogicalResult lowerToDots(IRRewriter &rewriter, linalg::LinalgOp op,
                                   const DotPlan &plan, int64_t lanes,
                                   bool parallel) {
    int64_t n = op.getStaticLoopRanges()[plan.nDim];
    if (!ShapedType::isDynamic(n) && rowWork(op, n) < kMinRowWork)
      parallel = false;
    SmallVector<linalg::LinalgOp> strips;
    if (failed(splitDim(rewriter, op, plan.nDim, {kDotColumns, 1},
                        parallel, strips, std::nullopt,
                        /*sequentialStepOne=*/true)))
      return failure();
    for (linalg::LinalgOp strip : strips) {
      SmallVector<int64_t> ranges = strip.getStaticLoopRanges();
      SmallVector<int64_t> tileSizes(ranges.size(), 1);
      tileSizes[plan.nDim] = 0;
      tileSizes[plan.kDim] = 0;
      bool unit = llvm::all_of(llvm::enumerate(ranges), [&](auto it) {
        return it.index() == plan.nDim || it.index() == plan.kDim ||
               it.value() == 1;
      });
      linalg::LinalgOp tile = strip;
      if (!unit) {
        scf::SCFTilingOptions options;
        options.setTileSizes(
            getAsIndexOpFoldResult(rewriter.getContext(), tileSizes));
        rewriter.setInsertionPoint(strip);
        FailureOr<scf::SCFTilingResult> tiled = scf::tileUsingSCF(
            rewriter, cast<TilingInterface>(strip.getOperation()), options);
        if (failed(tiled))
          return strip.emitError("moe-cpu-tile-contractions: tiling failed");
        rewriter.eraseOp(strip);
        tile = cast<linalg::LinalgOp>(tiled->tiledOps.back());
      }
      if (failed(emitDotTile(rewriter, tile, plan, lanes)))
        return failure();
    }
    return success();
  }

  /// Replaces `op` (static: n of at most kDotColumns, k of at least `lanes`,
  /// every other dim 1) with its dot products written out:
  ///
  ///   s[j] = 0 (vectors)                            for j < n
  ///   for k0 in 0..K - K % L step L:
  ///     a = lhs[k0 : k0 + L]; s[j] += a * rhs[j, k0 : k0 + L]
  ///   t[j] = halving sum of s[j] (L/2 + L/2, then L/4 + L/4, ...)
  ///   for k in K - K % L..K: t[j] += lhs[k] * rhs[j, k]
  ///   out[j] += t[j]
  ///
  /// Upstream's lowerings of a vector.contract keep the output dim as the
  /// vector dim (outer products: n strided in the right-hand side, loaded
  /// lane by lane) or reduce each k chunk horizontally at once (a
  /// shuffle tree per chunk and output); none carries lane partial sums
  /// across k. linalg::splitReduction does, through a tensor of partial
  /// sums; on buffers that is a workspace round trip per row.
  static LogicalResult emitDotTile(IRRewriter &rewriter, linalg::LinalgOp op,
                                   const DotPlan &plan, int64_t lanes) {
    SmallVector<int64_t> ranges = op.getStaticLoopRanges();
    int64_t width = ranges[plan.nDim], depth = ranges[plan.kDim];
    if (ShapedType::isDynamic(width) || ShapedType::isDynamic(depth) ||
        depth < lanes)
      return op.emitError("moe-cpu-tile-contractions: dot tile not static");
    Location loc = op.getLoc();
    rewriter.setInsertionPoint(op);
    Type f32 = rewriter.getF32Type();
    auto vectorType = VectorType::get({lanes}, f32);
    Value lhs = op.getDpsInputOperand(0)->get();
    Value rhs = op.getDpsInputOperand(1)->get();
    Value out = op.getDpsInitOperand(0)->get();
    AffineMap lhsMap = op.getMatchingIndexingMap(op.getDpsInputOperand(0));
    AffineMap rhsMap = op.getMatchingIndexingMap(op.getDpsInputOperand(1));
    AffineMap outMap = op.getMatchingIndexingMap(op.getDpsInitOperand(0));
    Value zeroIndex = arith::ConstantIndexOp::create(rewriter, loc, 0);
    auto indices = [&](AffineMap map, Value n, Value k) {
      SmallVector<Value> result;
      for (AffineExpr e : map.getResults()) {
        unsigned d = cast<AffineDimExpr>(e).getPosition();
        result.push_back(d == plan.nDim   ? n
                         : d == plan.kDim ? k
                                          : zeroIndex);
      }
      return result;
    };
    SmallVector<Value> columns;
    for (int64_t j = 0; j < width; ++j)
      columns.push_back(arith::ConstantIndexOp::create(rewriter, loc, j));
    int64_t full = depth / lanes * lanes;
    Value zero = arith::ConstantOp::create(
        rewriter, loc, vectorType,
        DenseElementsAttr::get(vectorType, rewriter.getF32FloatAttr(0.0f)));
    auto chunks = scf::ForOp::create(
        rewriter, loc, zeroIndex,
        arith::ConstantIndexOp::create(rewriter, loc, full),
        arith::ConstantIndexOp::create(rewriter, loc, lanes),
        SmallVector<Value>(width, zero),
        [&](OpBuilder &b, Location loc, Value k, ValueRange sums) {
          Value a = vector::LoadOp::create(b, loc, vectorType, lhs,
                                           indices(lhsMap, zeroIndex, k));
          SmallVector<Value> next;
          for (int64_t j = 0; j < width; ++j) {
            Value row = vector::LoadOp::create(
                b, loc, vectorType, rhs, indices(rhsMap, columns[j], k));
            next.push_back(vector::FMAOp::create(b, loc, a, row, sums[j]));
          }
          scf::YieldOp::create(b, loc, next);
        });
    SmallVector<Value> totals;
    for (Value sum : chunks.getResults()) {
      for (int64_t half = lanes / 2; half >= 1; half /= 2) {
        Value low = vector::ExtractStridedSliceOp::create(rewriter, loc, sum,
                                                          {0}, {half}, {1});
        Value high = vector::ExtractStridedSliceOp::create(
            rewriter, loc, sum, {half}, {half}, {1});
        sum = arith::AddFOp::create(rewriter, loc, low, high);
      }
      totals.push_back(vector::ExtractOp::create(rewriter, loc, sum,
                                                 ArrayRef<int64_t>{0}));
    }
    if (full < depth) {
      auto tail = scf::ForOp::create(
          rewriter, loc, arith::ConstantIndexOp::create(rewriter, loc, full),
          arith::ConstantIndexOp::create(rewriter, loc, depth),
          arith::ConstantIndexOp::create(rewriter, loc, 1), totals,
          [&](OpBuilder &b, Location loc, Value k, ValueRange sums) {
            Value a = memref::LoadOp::create(b, loc, lhs,
                                             indices(lhsMap, zeroIndex, k));
            SmallVector<Value> next;
            for (int64_t j = 0; j < width; ++j) {
              Value r = memref::LoadOp::create(
                  b, loc, rhs, indices(rhsMap, columns[j], k));
              Value product = arith::MulFOp::create(b, loc, a, r);
              next.push_back(arith::AddFOp::create(b, loc, sums[j], product));
            }
            scf::YieldOp::create(b, loc, next);
          });
      totals.assign(tail.getResults().begin(), tail.getResults().end());
    }
    for (int64_t j = 0; j < width; ++j) {
      SmallVector<Value> at = indices(outMap, columns[j], zeroIndex);
      Value old = memref::LoadOp::create(rewriter, loc, out, at);
      Value sum = arith::AddFOp::create(rewriter, loc, old, totals[j]);
      memref::StoreOp::create(rewriter, loc, sum, out, at);
    }
    rewriter.eraseOp(op);
    return success();
  }

  /// Whether `a` and `b` (transfers of the same memref with minor identity
  /// maps) touch different elements: the same indices but for the last,
  /// constants whose column ranges do not overlap. (Upstream's
  /// isDisjointTransferSet requires equal vector types.)
  static bool disjointColumns(VectorTransferOpInterface a,
                              VectorTransferOpInterface b) {
    if (!a.getPermutationMap().isMinorIdentity() ||
        !b.getPermutationMap().isMinorIdentity() ||
        a.getIndices().size() != b.getIndices().size() ||
        a.getIndices().empty())
      return false;
    size_t last = a.getIndices().size() - 1;
    for (size_t i = 0; i < last; ++i)
      if (a.getIndices()[i] != b.getIndices()[i])
        return false;
    std::optional<int64_t> ca = getConstantIntValue(a.getIndices()[last]);
    std::optional<int64_t> cb = getConstantIntValue(b.getIndices()[last]);
    if (!ca || !cb)
      return false;
    int64_t la = a.getVectorType().getShape().back();
    int64_t lb = b.getVectorType().getShape().back();
    return *ca + la <= *cb || *cb + lb <= *ca;
  }

  /// Keeps the accumulator of a register tile in registers across the k
  /// loop: each transfer_write in `loop`'s body whose matching
  /// transfer_read (same memref, loop-invariant indices, same type, the
  /// same mask or none, a mask defined outside the loop) is in the body
  /// too becomes a loop-carried value, read before the loop and written
  /// after it. Upstream's hoistRedundantVectorTransfers does the
  /// same but refuses every memref that is, or has, a view (all of ours:
  /// subviews of workspace buffers). Here the k loop of a register tile
  /// writes nothing but its output tiles (checked below), and planFor
  /// refuses an output that is a view of an input's buffer (one-shot
  /// bufferization never makes one), so the loads of A and B cannot see
  /// these stores. The reads moved out of the loop are appended to
  /// `hoisted`; returns whether every write was hoisted with its read.
  static bool hoistAccumulators(IRRewriter &rewriter, scf::ForOp &loop,
                                SmallVectorImpl<vector::TransferReadOp> &hoisted) {
    moveLoopInvariantCode(cast<LoopLikeOpInterface>(loop.getOperation()));
    Block *body = loop.getBody();
    // Only writes of accumulators: bail out on any other memory write.
    SmallVector<vector::TransferWriteOp> writes;
    for (Operation &op : body->without_terminator()) {
      if (auto write = dyn_cast<vector::TransferWriteOp>(op)) {
        writes.push_back(write);
        continue;
      }
      if (isa<vector::TransferReadOp>(op) || isMemoryEffectFree(&op))
        continue;
      // A scalar load is fine unless it reads an accumulator's memref.
      if (auto load = dyn_cast<memref::LoadOp>(op)) {
        bool readsOutput = false;
        for (Operation &o : body->without_terminator())
          if (auto w = dyn_cast<vector::TransferWriteOp>(o))
            readsOutput |= w.getBase() == load.getMemRef();
        if (!readsOutput)
          continue;
      }
      return false;
    }
    bool all = true;
    for (vector::TransferWriteOp write : writes) {
      // A masked tile (a dynamic column tail) hoists too when its mask is
      // loop-invariant: the masked read before the loop and the masked
      // write after it touch the same elements as every iteration did.
      // (In the loop, a masked store per k and vector was the most costly
      // part of a decode step's q k^T against its one new key: 64 lanes
      // masked to 1, eight masked stores per k, microcoded on AMD.)
      if ((write.getMask() && !loop.isDefinedOutsideOfLoop(write.getMask())) ||
          !loop.isDefinedOutsideOfLoop(write.getBase()) ||
          !llvm::all_of(write.getIndices(), [&](Value v) {
            return loop.isDefinedOutsideOfLoop(v);
          })) {
        all = false;
        continue;
      }
      vector::TransferReadOp read;
      for (Operation &op : body->without_terminator()) {
        auto candidate = dyn_cast<vector::TransferReadOp>(op);
        if (candidate && candidate.getBase() == write.getBase() &&
            candidate.getIndices() == write.getIndices() &&
            candidate.getVectorType() == write.getVectorType() &&
            candidate.getPermutationMap() == write.getPermutationMap() &&
            candidate.getMask() == write.getMask() &&
            candidate->isBeforeInBlock(write)) {
          read = candidate;
          break;
        }
      }
      if (!read) {
        all = false;
        continue;
      }
      // Every other transfer of this memref in the loop (the other slices
      // of a split column tail) must touch other elements.
      bool disjoint = llvm::all_of(body->without_terminator(),
                                   [&](Operation &op) {
        auto other = dyn_cast<VectorTransferOpInterface>(op);
        if (!other || &op == read.getOperation() ||
            &op == write.getOperation() || other.getBase() != write.getBase())
          return true;
        return disjointColumns(write, other);
      });
      if (!disjoint) {
        all = false;
        continue;
      }
      rewriter.moveOpBefore(read, loop);
      FailureOr<LoopLikeOpInterface> grown =
          cast<LoopLikeOpInterface>(loop.getOperation())
              .replaceWithAdditionalYields(
                  rewriter, read.getResult(),
                  /*replaceInitOperandUsesInLoop=*/true,
                  [&](OpBuilder &, Location, ArrayRef<BlockArgument>) {
                    return SmallVector<Value>{write.getVector()};
                  });
      if (failed(grown)) {
        rewriter.moveOpBefore(read, &body->front()); // back in the loop
        return false;
      }
      loop = cast<scf::ForOp>(grown->getOperation());
      body = loop.getBody();
      rewriter.moveOpAfter(write, loop);
      rewriter.modifyOpInPlace(write, [&] {
        write.getValueToStoreMutable().assign(loop.getResults().back());
      });
      hoisted.push_back(read);
    }
    return all;
  }

  /// A rewrite that did not converge: an error rather than a silent
  /// failure. (Found with an operand viewed through a
  /// memref.expand_shape, which step 0 now casts and planFor otherwise
  /// leaves to the loop path; no known input reaches this any more.)
  void cleanupFailed(Operation *root) {
    root->emitError("moe-cpu-tile-contractions: the rewrites after tiling "
                    "did not converge");
    signalPassFailure();
  }

  /// Canonicalization patterns of every loaded dialect and op.
  static void addCleanup(RewritePatternSet &patterns) {
    MLIRContext *ctx = patterns.getContext();
    for (Dialect *d : ctx->getLoadedDialects())
      d->getCanonicalizationPatterns(patterns);
    for (RegisteredOperationName op : ctx->getRegisteredOperations())
      op.getCanonicalizationPatterns(patterns, ctx);
  }
};

} // namespace

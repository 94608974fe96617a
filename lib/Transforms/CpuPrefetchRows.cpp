//===- CpuPrefetchRows.cpp - software prefetch of gathered rows ------------===//
//
// A loop that reads one row of a buffer per iteration at a row index it
// loads from another buffer (the expert layer's gather of token rows into
// expert order, the weighted combine reading each slot's row back, the
// per-head gathers of SwitchHead) walks memory in an order no hardware
// prefetcher can guess: every row starts with a miss to memory. At the
// MoEUT-44M feed-forward shape (N = 2048, k = 12, D = 412) the combine
// reads 24576 rows of 1.6 KB from a 40 MB buffer, one after the other, at
// about 7 GB/s; a C loop that prefetches the row two slots ahead reads
// them at 15 GB/s on the same machine.
//
// This pass gives such a loop that prefetch: for a row view
// `memref.subview %src[%r, ..., %c][1, ..., 1, W][...]` in the body, where
// %r is computed from the induction variable through `memref.load`s of
// loop-invariant buffers (the indirection) and side-effect-free arith, it
// recomputes the offsets for the iteration `distance` steps ahead and
// prefetches every cache line of that row (`memref.prefetch`), guarded by
// that iteration being in the loop's range.
//
// Why it cannot read out of bounds: the loads it clones take their indices
// from the induction variable and loop-invariant values only (a load whose
// index is itself loaded is refused), so the clone at iteration i + d reads
// exactly the addresses iteration i + d reads. Unsigned divisions and
// remainders are cloned only with a loop-invariant divisor, which the
// current iteration has just used. The row address itself only feeds the
// prefetch, which never faults and changes no value.
//
// Upstream has no such transform: LLVM's loop data prefetch handles
// strided accesses, and MLIR's memref.prefetch is emitted by hand.
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"
#include "moe/Transforms/Transforms.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/Support/CheckedArithmetic.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOECPUPREFETCHROWS
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

constexpr int64_t kLineBytes = 64;
/// Longer rows prefetch their first kMaxLines lines; the hardware's stream
/// prefetcher has found the rest by then.
constexpr int64_t kMaxLines = 64;

/// The loop's single induction variable, upper bound and step,
/// for scf.for and one-dim scf.parallel.
struct LoopRange {
  Value iv, upper, step;
};

std::optional<LoopRange> rangeOf(Operation *loop) {
  if (auto f = dyn_cast<scf::ForOp>(loop))
    return LoopRange{f.getInductionVar(), f.getUpperBound(), f.getStep()};
  if (auto p = dyn_cast<scf::ParallelOp>(loop))
    if (p.getNumLoops() == 1)
      return LoopRange{p.getInductionVars()[0], p.getUpperBound()[0],
                       p.getStep()[0]};
  return std::nullopt;
}

bool definedOutside(Value v, Operation *loop) {
  return !loop->isAncestor(v.getParentBlock()->getParentOp());
}

/// An op of the body that the prefetch may compute again for a later
/// iteration: no regions, no effects, and no possible trap unless the
/// current iteration has just executed it with the same divisor.
bool clonable(Operation *op, Operation *loop) {
  if (op->getNumRegions() || !isMemoryEffectFree(op))
    return false;
  if (isSpeculatable(op))
    return true;
  if (isa<arith::DivUIOp, arith::RemUIOp, arith::CeilDivUIOp>(op))
    return definedOutside(op->getOperand(1), loop);
  return false;
}

/// The ops of `body` that `roots` depend on, in block order, when every one
/// of them may be computed again ahead (clonable ops, and memref.loads of
/// loop-invariant buffers at indices computed without loads), at least one
/// is such a load, and the values depend on `iv`. Empty otherwise.
SmallVector<Operation *> indirectSlice(ValueRange roots, Operation *loop,
                                       Value iv) {
  Block *body = iv.getParentBlock();
  llvm::SetVector<Operation *> slice;
  bool dependsOnIv = false, anyLoad = false;
  // Whether each visited value's computation involves a load.
  llvm::DenseMap<Value, bool> loaded;
  std::function<std::optional<bool>(Value)> visit =
      [&](Value v) -> std::optional<bool> {
    if (v == iv) {
      dependsOnIv = true;
      return false;
    }
    if (definedOutside(v, loop))
      return false;
    if (auto it = loaded.find(v); it != loaded.end())
      return it->second;
    Operation *op = v.getDefiningOp();
    if (!op || op->getBlock() != body)
      return std::nullopt;
    bool isLoad = false;
    if (auto load = dyn_cast<memref::LoadOp>(op)) {
      if (!definedOutside(load.getMemRef(), loop))
        return std::nullopt;
      isLoad = true;
    } else if (!clonable(op, loop)) {
      return std::nullopt;
    }
    bool viaLoad = false;
    for (Value operand : isLoad ? ValueRange(cast<memref::LoadOp>(op)
                                                 .getIndices())
                                : ValueRange(op->getOperands())) {
      std::optional<bool> r = visit(operand);
      if (!r)
        return std::nullopt;
      // A load at a loaded index could read out of bounds ahead.
      if (isLoad && *r)
        return std::nullopt;
      viaLoad |= *r;
    }
    anyLoad |= isLoad;
    slice.insert(op);
    loaded[v] = viaLoad || isLoad;
    return viaLoad || isLoad;
  };
  for (Value root : roots)
    if (!visit(root))
      return {};
  if (!dependsOnIv || !anyLoad)
    return {};
  SmallVector<Operation *> ordered(slice.begin(), slice.end());
  llvm::sort(ordered, [](Operation *a, Operation *b) {
    return a->isBeforeInBlock(b);
  });
  return ordered;
}

/// Whether `view` is read by one of its users.
bool isRead(memref::SubViewOp view) {
  return llvm::any_of(view->getUsers(), [&](Operation *user) {
    return hasEffect<MemoryEffects::Read>(user, view.getResult());
  });
}

/// Adds the prefetch for `view` in `loop`, if it is an indirectly indexed
/// row; returns whether it did.
bool prefetchRow(memref::SubViewOp view, Operation *loop, LoopRange range,
                 int64_t distance) {
  if (!definedOutside(view.getSource(), loop) || !isRead(view))
    return false;
  MemRefType source = view.getSourceType();
  int64_t rank = source.getRank();
  if (rank == 0 || !range.iv.getType().isIndex())
    return false;
  // A row: unit sizes, a static last size, unit strides along it.
  SmallVector<OpFoldResult> offsets = view.getMixedOffsets(),
                            sizes = view.getMixedSizes(),
                            strides = view.getMixedStrides();
  for (int64_t d = 0; d + 1 < rank; ++d)
    if (getConstantIntValue(sizes[d]) != 1)
      return false;
  std::optional<int64_t> width = getConstantIntValue(sizes[rank - 1]);
  std::optional<int64_t> unit = getConstantIntValue(strides[rank - 1]);
  SmallVector<int64_t> sourceStrides;
  int64_t sourceOffset;
  if (!width || *width < 1 || unit != 1 ||
      failed(source.getStridesAndOffset(sourceStrides, sourceOffset)) ||
      sourceStrides.back() != 1 || !source.getElementType().isIntOrFloat())
    return false;
  SmallVector<Value> dynamicOffsets(view.getOffsets());
  if (dynamicOffsets.empty())
    return false;
  // A static step (every loop here has one), and steps ahead that fit.
  std::optional<int64_t> step = getConstantIntValue(range.step);
  std::optional<int64_t> stepTimesDistance;
  if (step && *step > 0)
    stepTimesDistance = llvm::checkedMul<int64_t>(*step, distance);
  if (!stepTimesDistance)
    return false;
  SmallVector<Operation *> slice =
      indirectSlice(dynamicOffsets, loop, range.iv);
  if (slice.empty())
    return false;

  int64_t eltBytes =
      std::max<int64_t>(1, source.getElementTypeBitWidth() / 8);
  int64_t perLine = std::max<int64_t>(1, kLineBytes / eltBytes);
  Location loc = view.getLoc();
  OpBuilder b(view->getContext());
  b.setInsertionPointAfter(view);
  // Iteration iv + by exists when ub - iv > by: in the body iv < ub (in
  // the loop's own signed or unsigned sense), so ub - iv fits unsigned,
  // and nothing wraps (iv + by itself may, for bounds near the index
  // type's limit, and is then never used).
  Value by = arith::ConstantIndexOp::create(b, loc, *stepTimesDistance);
  Value ahead = arith::AddIOp::create(b, loc, range.iv, by);
  Value inRange = arith::CmpIOp::create(
      b, loc, arith::CmpIPredicate::ugt,
      arith::SubIOp::create(b, loc, range.upper, range.iv), by);
  auto guard = scf::IfOp::create(b, loc, inRange, /*withElse=*/false);
  b.setInsertionPointToStart(guard.thenBlock());
  IRMapping map;
  map.map(range.iv, ahead);
  for (Operation *op : slice)
    b.clone(*op, map);
  SmallVector<Value> at;
  for (OpFoldResult offset : offsets)
    at.push_back(isa<Value>(offset)
                     ? map.lookupOrDefault(cast<Value>(offset))
                     : arith::ConstantIndexOp::create(
                           b, loc, *getConstantIntValue(offset))
                           .getResult());
  // One prefetch per line the row may touch: every perLine elements from
  // its start, and its last element (the row need not start on a line).
  SmallVector<int64_t> columns;
  for (int64_t c = 0; c < *width && (int64_t)columns.size() < kMaxLines;
       c += perLine)
    columns.push_back(c);
  if (*width - 1 > columns.back() &&
      (int64_t)columns.size() < kMaxLines)
    columns.push_back(*width - 1);
  Value start = at.back();
  for (int64_t c : columns) {
    std::optional<int64_t> first = getConstantIntValue(start);
    at.back() =
        c == 0 ? start
        : first ? arith::ConstantIndexOp::create(b, loc, *first + c)
                      .getResult()
                : arith::AddIOp::create(
                      b, loc, start, arith::ConstantIndexOp::create(b, loc, c))
                      .getResult();
    memref::PrefetchOp::create(b, loc, view.getSource(), at,
                               /*isWrite=*/false, /*localityHint=*/3,
                               /*isDataCache=*/true);
  }
  return true;
}

struct CpuPrefetchRowsPass
    : moe::impl::MoeCpuPrefetchRowsBase<CpuPrefetchRowsPass> {
  using MoeCpuPrefetchRowsBase::MoeCpuPrefetchRowsBase;
  void runOnOperation() override {
    if (distance < 1 || distance > 1024) {
      getOperation()->emitError("moe-cpu-prefetch-rows: distance must be "
                                "1 to 1024, got ")
          << static_cast<int64_t>(distance);
      return signalPassFailure();
    }
    moe::prefetchIndirectRows(getOperation(), distance);
  }
};

} // namespace

int64_t moe::prefetchIndirectRows(Operation *root, int64_t distance) {
  SmallVector<std::pair<memref::SubViewOp, Operation *>> candidates;
  root->walk([&](memref::SubViewOp view) {
    Operation *loop = view->getParentOp();
    if (isa<scf::ForOp, scf::ParallelOp>(loop))
      candidates.push_back({view, loop});
  });
  int64_t added = 0;
  for (auto [view, loop] : candidates)
    if (std::optional<LoopRange> range = rangeOf(loop))
      added += prefetchRow(view, loop, *range, distance);
  return added;
}

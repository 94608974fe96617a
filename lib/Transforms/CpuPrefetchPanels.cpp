//===- CpuPrefetchPanels.cpp - prefetch the next weight block ahead ------===//
//
// A register tile's k loop reads a constant weight block row by row: one
// [K, P] column panel of a packed expert weight ([E, Nf, K, P], from
// moe-pack-expert-weights), an expert's [K, T] tail ([E, K, T]), or an
// expert's whole row-major [K, N] weight ([E, K, N]). The hardware
// prefetchers run a few lines ahead of the demand stream, so the first
// pass over a block waits on memory while the FMA units idle, and the
// passes after it (the other row tiles of an expert) compute while the
// memory bus idles: per expert, memory time and compute time add up.
// At the MoEUT-44M feed-forward shape and N = 64 (about 5 rows per
// expert, all 155 experts, 65 MB of weights a call) that sum was the
// layer's time.
//
// This pass overlaps them. In a multi-row tile's k loop, next to each read
// of the block's row k, it prefetches the same row of the next block in
// memory (a packed weight's next panel of the expert; with `cross-blocks`,
// after the last panel, the next expert's first one), one prefetch per
// 64-byte line of the read. A one-row tile (an expert's rows after its
// last full multi-row tile, one pass over the block each) prefetches the
// next block only in the passes after the first, one line per k step
// (prefetchAcrossPasses); a single-row expert (decode) issues none.
//
// Which reads: an unmasked, in-bounds `vector.transfer_read` of a one-dim
// vector along the last dim of a statically shaped, identity-layout
// memref of rank >= 3, directly in an `scf.for` whose induction variable
// is its index at dim rank - 2, with every other index defined outside
// that loop. The next block is one stride of dim rank - 3 further: for
// [E, Nf, K, P] the expert's next panel, for [E, K, N] the next expert.
// Without `cross-blocks` the prefetch happens only when that dim's index
// is not its last; with it, the addresses are kept in the buffer (in a
// multi-row tile's k loop of constant bounds by one clamp of the next
// block's start before the loop, otherwise by a clamp per line).
//
// With `cross-blocks`, an expert loop's iteration that reads several weight
// buffers (a packed weight's panels and tail; an up and a down projection
// in one loop, convert-moe-to-linalg{fuse-expert-pairs}) prefetches, from
// the expert's last block of one, the first block it reads of the next
// (nextProductRead), in a copy of the k loop chosen before it.
//
// With `spread-tiles`, a multi-row tile in the loop over its expert's row
// tiles prefetches that next block's lines spread over all the tiles' k
// steps (spreadLines), c lines a step, in versions of the k loop by c (1,
// 2, 4, ... up to a whole block in one tile) chosen before it by the
// tiles' count: the whole block at the rate of one row a step, in every
// tile, asked the memory for more than it delivers.
//
// With `stores`, a multi-row tile also prefetches, for writing and before
// its k loop, the output lines its stores after the loop will write
// (prefetchTileStores): the down projection's rows go to a slot-order
// buffer that no cache holds, and each store waited for its line.
//
// Values never change (a prefetch is a hint, and its address is in the
// buffer). Upstream has no such transform: LLVM's loop data prefetch
// looks a fixed number of iterations ahead in the same stream.
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"
#include "moe/Transforms/Transforms.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/Dominance.h"
#include "mlir/IR/IRMapping.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOECPUPREFETCHPANELS
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

constexpr int64_t kLineBytes = 64;

bool definedOutside(Value v, Operation *loop) {
  return !loop->isAncestor(v.getParentBlock()->getParentOp());
}

/// A read this pass may look at: unmasked, in bounds (so that the same
/// position of the next block is too), a one-dim vector along the last dim
/// of a statically shaped, identity-layout memref of rank >= 3. With
/// `pastRow`, one that is not in bounds instead (its lanes past the last
/// dim masked).
bool plainBlockRead(vector::TransferReadOp read, bool pastRow = false) {
  auto type = dyn_cast<MemRefType>(read.getBase().getType());
  VectorType vector = read.getVectorType();
  return type && type.hasStaticShape() && type.getLayout().isIdentity() &&
         type.getRank() >= 3 && vector.getRank() == 1 && !vector.isScalable() &&
         !read.getMask() && read.isDimInBounds(0) != pastRow &&
         read.getPermutationMap().isMinorIdentity() &&
         type.getElementType().isIntOrFloat();
}

/// Whether blocks of `blockElems` elements of `type` (rank >= 3, the block
/// dim rank - 3) are worth a prefetch (at least 1 KB) and may have a next
/// block to prefetch.
bool worthPrefetching(MemRefType type, int64_t blockElems, bool crossBlocks) {
  int64_t eltBytes =
      std::max<int64_t>(1, type.getElementTypeBitWidth() / 8);
  return blockElems * eltBytes >= 16 * kLineBytes &&
         (crossBlocks || type.getShape()[type.getRank() - 3] >= 2);
}

/// Elements per 64-byte line.
int64_t elementsPerLine(MemRefType type) {
  return std::max<int64_t>(
      1, kLineBytes / std::max<int64_t>(1, type.getElementTypeBitWidth() / 8));
}

/// `base` (static shape, identity layout) as one dim.
Value flatView(OpBuilder &b, Location loc, Value base) {
  SmallVector<ReassociationIndices> all(1);
  for (int64_t d = 0, e = cast<MemRefType>(base.getType()).getRank(); d < e;
       ++d)
    all.front().push_back(d);
  return memref::CollapseShapeOp::create(b, loc, base, all);
}

/// Whether `index` is not the last of `size` blocks (the next block in
/// memory is then the same outer block's: without cross-blocks, the only
/// one prefetched).
Value notLastBlock(OpBuilder &b, Location loc, Value index, int64_t size) {
  return arith::CmpIOp::create(
      b, loc, arith::CmpIPredicate::ult, index,
      arith::ConstantIndexOp::create(b, loc, size - 1));
}

/// Where an expert's iteration reads more than one weight buffer (the
/// panels and the tail of a packed weight, and with
/// convert-moe-to-linalg{fuse-expert-pairs} those of both projections),
/// the buffer whose first block for an expert the iteration reads after
/// its last block of `read`'s buffer: the next one read for the same
/// expert (`nextExpert` false), or after the last, the first one's for
/// the next expert (`nextExpert` true). None where it reads one buffer
/// (the next block in memory is then the next one read).
struct NextProductRead {
  Value base;
  bool nextExpert = false;
};

std::optional<NextProductRead> nextProductRead(vector::TransferReadOp read) {
  auto type = cast<MemRefType>(read.getBase().getType());
  Value expert = read.getIndices()[0];
  auto arg = dyn_cast<BlockArgument>(expert);
  if (!arg)
    return std::nullopt;
  Block *body = arg.getOwner();
  Operation *loop = body->getParentOp();
  // (An induction variable, not an iter_arg.)
  bool inductionVar = false;
  if (auto forOp = dyn_cast<scf::ForOp>(loop))
    inductionVar = forOp.getInductionVar() == arg;
  else if (auto parallel = dyn_cast<scf::ParallelOp>(loop))
    inductionVar = llvm::is_contained(parallel.getInductionVars(), arg);
  if (!inductionVar)
    return std::nullopt;
  // The packed weights the iteration reads, in the order of their first
  // block reads indexed by the expert.
  SmallVector<Value> bases;
  for (Operation &op : *body)
    op.walk<WalkOrder::PreOrder>([&](vector::TransferReadOp r) {
      Value base = r.getBase();
      auto t = cast<MemRefType>(base.getType());
      if (plainBlockRead(r) && r.getIndices()[0] == expert &&
          definedOutside(base, loop) &&
          t.getElementType() == type.getElementType() &&
          !llvm::is_contained(bases, base))
        bases.push_back(base);
    });
  auto at = llvm::find(bases, read.getBase());
  if (bases.size() < 2 || at == bases.end())
    return std::nullopt;
  if (std::next(at) != bases.end())
    return NextProductRead{*std::next(at), false};
  return NextProductRead{bases.front(), true};
}

/// Puts `loop` in the else branch of an `scf.if` on `cond` made before it
/// (whose results replace the loop's) and a copy of it in the then branch;
/// returns the copy and the copy of `op`, an op in the loop.
std::pair<scf::ForOp, Operation *> versionLoop(scf::ForOp loop, Value cond,
                                               Operation *op) {
  Location loc = loop.getLoc();
  OpBuilder b(loop);
  auto choice = scf::IfOp::create(b, loc, loop.getResultTypes(), cond,
                                  /*withElse=*/true);
  OpBuilder tb = OpBuilder::atBlockEnd(choice.thenBlock());
  IRMapping map;
  auto copy = cast<scf::ForOp>(tb.clone(*loop, map));
  scf::YieldOp::create(tb, loc, copy.getResults());
  loop->replaceAllUsesWith(choice.getResults());
  OpBuilder eb = OpBuilder::atBlockEnd(choice.elseBlock());
  auto yield = scf::YieldOp::create(eb, loc, loop.getResults());
  loop->moveBefore(yield);
  return {copy, map.lookup(op)};
}

/// Fixed-point bits of the spread prefetches' line step (spreadLines).
constexpr int64_t kSpreadBits = 20;
/// The most row tiles a spread counts (RowTiles), and the most lines of a
/// block it spreads: the products in spreadLines (at most about lines x
/// 2^kSpreadBits, and tiles x K x lines a step) then stay far below 2^63.
constexpr int64_t kMaxSpreadTiles = int64_t(1) << 24;
constexpr int64_t kMaxSpreadLines = int64_t(1) << 36;

/// A multi-row tile's k loop (0 to K by 1) directly in a loop over its
/// expert's full row tiles (an `scf.for` of constant step > 1: the tiles
/// of one block): the prefetches of the next block can be spread over all
/// those tiles' k steps (spreadLines). `index` is this tile's (made before
/// the k loop), `steps` the k steps of all the tiles (made before the row
/// loop).
struct RowTiles {
  scf::ForOp rowLoop;
  Value index;
  Value steps;
};

std::optional<RowTiles> rowTiles(scf::ForOp kLoop, vector::TransferReadOp read,
                                 bool spread) {
  auto rowLoop = dyn_cast_or_null<scf::ForOp>(kLoop->getParentOp());
  if (!spread || !rowLoop || !rowLoop.getInductionVar().getType().isIndex())
    return std::nullopt;
  // The tiles read one block: the read's indices but k are the same in
  // every iteration of the row loop.
  for (Value index : read.getIndices())
    if (index != kLoop.getInductionVar() && !definedOutside(index, rowLoop))
      return std::nullopt;
  std::optional<int64_t> step = getConstantIntValue(rowLoop.getStep());
  std::optional<int64_t> lo = getConstantIntValue(kLoop.getLowerBound());
  std::optional<int64_t> hi = getConstantIntValue(kLoop.getUpperBound());
  std::optional<int64_t> kStep = getConstantIntValue(kLoop.getStep());
  if (!step || *step < 2 || !lo || *lo != 0 || !hi || *hi < 1 || !kStep ||
      *kStep != 1)
    return std::nullopt;
  Location loc = kLoop.getLoc();
  OpBuilder b(rowLoop);
  auto cst = [&](int64_t v) {
    return arith::ConstantIndexOp::create(b, loc, v).getResult();
  };
  // The loop runs only where its upper bound is above its lower one; the
  // count is not used otherwise. At most kMaxSpreadTiles tiles, and a tile
  // index below the count, so that no product of spreadLines wraps (more
  // tiles than that, 100 million rows, spread over the first ones).
  // Tiles from the row loop's lower bound to `row` (rounded up or down),
  // at most `cap`.
  auto tilesTo = [&](Value row, bool roundUp, Value cap) -> Value {
    Value span = arith::SubIOp::create(b, loc, row, rowLoop.getLowerBound());
    Value count =
        roundUp
            ? arith::CeilDivUIOp::create(b, loc, span, cst(*step)).getResult()
            : arith::DivUIOp::create(b, loc, span, cst(*step)).getResult();
    return arith::MinUIOp::create(b, loc, count, cap);
  };
  Value tiles =
      tilesTo(rowLoop.getUpperBound(), /*roundUp=*/true, cst(kMaxSpreadTiles));
  Value steps = arith::MulIOp::create(b, loc, tiles, cst(*hi));
  Value lastTile = arith::SubIOp::create(
      b, loc, arith::MaxUIOp::create(b, loc, tiles, cst(1)), cst(1));
  b.setInsertionPoint(kLoop);
  Value index = tilesTo(rowLoop.getInductionVar(), /*roundUp=*/false, lastTile);
  return RowTiles{rowLoop, index, steps};
}

/// Prefetches, `perStep` lines a k step next to `at` in `kLoop`
/// (RowTiles'), the `lines` contiguous 64-byte lines of `flat` from
/// element `start`, spread over the S k steps of all the row tiles: the
/// j-th prefetch of step s (tile t, step k: s = t * K + k) takes line
/// floor((s * perStep + j) * lines / (S * perStep)), in fixed point
/// (kSpreadBits), at most one line apart (with S * perStep < lines, the
/// first S * perStep lines). Before the k loop, `start` is clamped so that
/// every line is in the buffer (`total` elements). The whole next block at
/// every tile (one prefetch per line of the row each k step) asked the
/// memory for a panel in one tile's time: 4 lines in the 12 cycles of a
/// 6 x 64 tile's step, several times what a core's memory bandwidth
/// delivers, and the tile waited (docs/performance.md, "Next-block
/// prefetches spread over the row tiles").
void spreadLines(const RowTiles &tiles, int64_t perStep, scf::ForOp kLoop,
                 Operation *at, Value flat, Value start, int64_t lines,
                 int64_t perLine, int64_t total, int64_t locality,
                 Value guard) {
  Location loc = at->getLoc();
  int64_t k = *getConstantIntValue(kLoop.getUpperBound());
  OpBuilder b(kLoop);
  auto cst = [&](int64_t v) {
    return arith::ConstantIndexOp::create(b, loc, v).getResult();
  };
  // The step between two prefetches in 1 / 2^kSpreadBits lines:
  // floor(floor((lines << kSpreadBits) / S) / perStep), at most one line.
  // In the tile, in the version it runs: before the row loop, the three
  // or four versions' divisions ran for every expert and panel, rows or
  // none (com.microsoft.MoE at N = 1 on two threads took 1.025x the time).
  Value perTile = arith::DivUIOp::create(
      b, loc, cst(lines << kSpreadBits),
      arith::MaxUIOp::create(b, loc, tiles.steps, cst(1)));
  if (perStep > 1)
    perTile = arith::DivUIOp::create(b, loc, perTile, cst(perStep));
  Value inc =
      arith::MinUIOp::create(b, loc, cst(int64_t(1) << kSpreadBits), perTile);
  Value stepInc = arith::MulIOp::create(b, loc, inc, cst(perStep));
  Value first = arith::MulIOp::create(
      b, loc, tiles.index, arith::MulIOp::create(b, loc, stepInc, cst(k)));
  if (total >= lines * perLine)
    start = arith::MinUIOp::create(b, loc, start, cst(total - lines * perLine));
  b.setInsertionPoint(at);
  if (guard) {
    auto ifOp = scf::IfOp::create(b, loc, guard, /*withElse=*/false);
    b.setInsertionPointToStart(ifOp.thenBlock());
  }
  Value position = arith::AddIOp::create(
      b, loc, first,
      arith::MulIOp::create(b, loc, kLoop.getInductionVar(), stepInc));
  for (int64_t j = 0; j < perStep; ++j) {
    Value pos =
        j ? arith::AddIOp::create(b, loc, position,
                                  arith::MulIOp::create(b, loc, inc, cst(j)))
                .getResult()
          : position;
    Value line = arith::ShRUIOp::create(b, loc, pos, cst(kSpreadBits));
    Value addr = arith::AddIOp::create(
        b, loc, start, arith::MulIOp::create(b, loc, line, cst(perLine)));
    if (total < lines * perLine)
      addr = arith::MinUIOp::create(b, loc, addr, cst(total - 1));
    memref::PrefetchOp::create(b, loc, flat, ValueRange{addr},
                               /*isWrite=*/false, locality,
                               /*isDataCache=*/true);
  }
}

/// A one-row tile's read of whole rows of a weight block (a one-dim vector
/// as wide as the block's last dim), in a k loop directly inside a loop
/// of step 1 over rows (the one-row loop of an expert's rows): the first
/// pass over the block streams it from memory, the next passes read it
/// from L2 while the memory bus idles. Those passes prefetch the next
/// block, one line per k step: in pass p (p >= 1, counted from the row
/// loop's lower bound), line (p - 1) * K + k of the next block, while it
/// has lines left. An expert with one row (a decode step) issues none.
///
/// With `aheadRows`, the first pass (the only one of a decode step's
/// expert) also prefetches the block's row k + aheadRows (past the block's
/// last row, the next block's first rows; clamped to the buffer), every
/// line of it, with `aheadLocality`, where a row is less than two lines: a
/// 16-column panel's one-row tile reads one 64-byte line per k step, too
/// few misses in flight for the memory bus to stream at full speed.
bool prefetchAcrossPasses(vector::TransferReadOp read, scf::ForOp loop,
                          bool crossBlocks, int64_t locality,
                          int64_t aheadRows, int64_t aheadLocality) {
  // A register tile's k loop carries its accumulator (one-dim here).
  auto rowLoop = dyn_cast<scf::ForOp>(loop->getParentOp());
  if (!rowLoop || getConstantIntValue(rowLoop.getStep()) != 1 ||
      !rowLoop.getInductionVar().getType().isIndex() ||
      !llvm::any_of(loop.getRegionIterArgs(),
                    [](Value arg) { return isa<VectorType>(arg.getType()); }))
    return false;
  if (!plainBlockRead(read) || !definedOutside(read.getBase(), rowLoop))
    return false;
  auto type = cast<MemRefType>(read.getBase().getType());
  VectorType vector = read.getVectorType();
  int64_t rank = type.getRank();
  ArrayRef<int64_t> shape = type.getShape();
  ValueRange indices = read.getIndices();
  if (indices[rank - 2] != loop.getInductionVar() ||
      vector.getDimSize(0) != shape[rank - 1] ||
      getConstantIntValue(indices[rank - 1]) != 0)
    return false;
  for (int64_t d = 0; d + 2 < rank; ++d)
    if (!definedOutside(indices[d], rowLoop))
      return false;
  int64_t blockElems = shape[rank - 2] * shape[rank - 1];
  int64_t blockDim = rank - 3;
  if (!worthPrefetching(type, blockElems, crossBlocks))
    return false;
  int64_t perLine = elementsPerLine(type);
  int64_t lines = (blockElems + perLine - 1) / perLine;
  int64_t k = shape[rank - 2];
  // Ahead only for rows of less than two lines: a wider row's k step has
  // misses enough in flight (64-column panels: decode measured slower
  // with it).
  if (shape[rank - 1] >= 2 * perLine)
    aheadRows = 0;

  Location loc = read.getLoc();
  OpBuilder b(rowLoop);
  auto cst = [&](int64_t v) {
    return arith::ConstantIndexOp::create(b, loc, v).getResult();
  };
  // Before the row loop: the buffer as one dim, and where the next block
  // starts ((the read's block's linear index + 1) * its size).
  Value flat = flatView(b, loc, read.getBase());
  Value block = cst(1);
  int64_t stride = 1;
  for (int64_t d = blockDim; d >= 0; --d) {
    block = arith::AddIOp::create(
        b, loc, block,
        stride == 1
            ? indices[d]
            : arith::MulIOp::create(b, loc, indices[d], cst(stride))
                  .getResult());
    stride *= shape[d];
  }
  Value next = arith::MulIOp::create(b, loc, block, cst(blockElems));
  Value notLast =
      crossBlocks ? Value() : notLastBlock(b, loc, indices[blockDim],
                                           shape[blockDim]);
  // In the k loop: line (pass - 1) * K + k. Pass 0 wraps to a huge
  // unsigned line, so one unsigned compare covers pass >= 1 and the end
  // of the block.
  b.setInsertionPoint(read);
  Value pass = arith::SubIOp::create(b, loc, rowLoop.getInductionVar(),
                                     rowLoop.getLowerBound());
  Value line = arith::AddIOp::create(
      b, loc,
      arith::MulIOp::create(b, loc,
                            arith::SubIOp::create(b, loc, pass, cst(1)),
                            cst(k)),
      loop.getInductionVar());
  if (aheadRows > 0) {
    // Pass 0: row k + aheadRows of this block (it starts at next - one
    // block), every line of it.
    OpBuilder::InsertionGuard first(b);
    auto guard = scf::IfOp::create(
        b, loc,
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, pass, cst(0)),
        /*withElse=*/false);
    b.setInsertionPointToStart(guard.thenBlock());
    int64_t rowElems = shape[rank - 1];
    Value row = arith::AddIOp::create(b, loc, loop.getInductionVar(),
                                      cst(aheadRows));
    Value at = arith::AddIOp::create(
        b, loc, arith::SubIOp::create(b, loc, next, cst(blockElems)),
        arith::MulIOp::create(b, loc, row, cst(rowElems)));
    // One element per line from the row's first, and its last: every line
    // of a row that does not start on one.
    SmallVector<int64_t> offsets;
    for (int64_t c = 0; c < rowElems; c += perLine)
      offsets.push_back(c);
    if (rowElems % perLine != 0)
      offsets.push_back(rowElems - 1);
    for (int64_t c : offsets) {
      Value l = c ? arith::AddIOp::create(b, loc, at, cst(c)).getResult() : at;
      l = arith::MinUIOp::create(b, loc, l, cst(type.getNumElements() - 1));
      memref::PrefetchOp::create(b, loc, flat, ValueRange{l},
                                 /*isWrite=*/false, aheadLocality,
                                 /*isDataCache=*/true);
    }
  }
  Value go = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, line,
                                   cst(lines));
  if (notLast)
    go = arith::AndIOp::create(b, loc, go, notLast);
  auto guard = scf::IfOp::create(b, loc, go, /*withElse=*/false);
  b.setInsertionPointToStart(guard.thenBlock());
  Value at = arith::AddIOp::create(
      b, loc, next, arith::MulIOp::create(b, loc, line, cst(perLine)));
  if (crossBlocks)
    at = arith::MinUIOp::create(b, loc, at, cst(type.getNumElements() - 1));
  memref::PrefetchOp::create(b, loc, flat, ValueRange{at},
                             /*isWrite=*/false, locality,
                             /*isDataCache=*/true);
  return true;
}

/// Adds the prefetches for `read` when it reads row k of a weight block in
/// its k loop; returns whether it did. With `spread`, a multi-row tile in
/// a loop over row tiles spreads its next block's lines over the tiles
/// (spreadLines), in versions of the k loop by lines per step; `given` and
/// `perStep` are one such version's (set when this is called for it).
bool prefetchNextBlock(vector::TransferReadOp read, bool crossBlocks,
                       int64_t locality, int64_t aheadRows,
                       int64_t aheadLocality, bool spread,
                       const RowTiles *given = nullptr, int64_t perStep = 1) {
  auto loop = dyn_cast<scf::ForOp>(read->getParentOp());
  if (!loop)
    return false;
  // Multi-row register tiles (their k loop carries a [rows, columns]
  // accumulator): such an expert has at least MR rows, its neighbours
  // likely rows too, and its tiles compute long enough per block for the
  // next one to stream in. A one-row tile prefetches only in the passes
  // after its expert's first (prefetchAcrossPasses): a decode step reads
  // each block once, at the speed of memory, and the next block in memory
  // is then often an expert nobody selected.
  if (!llvm::any_of(loop.getRegionIterArgs(), [](Value arg) {
        auto acc = dyn_cast<VectorType>(arg.getType());
        return acc && acc.getRank() == 2 && acc.getDimSize(0) > 1;
      }))
    return prefetchAcrossPasses(read, loop, crossBlocks, locality, aheadRows,
                                aheadLocality);
  if (!plainBlockRead(read) || !definedOutside(read.getBase(), loop))
    return false;
  auto type = cast<MemRefType>(read.getBase().getType());
  VectorType vector = read.getVectorType();
  int64_t rank = type.getRank();
  ValueRange indices = read.getIndices();
  Value iv = loop.getInductionVar();
  if (indices[rank - 2] != iv)
    return false;
  for (int64_t d = 0; d < rank; ++d)
    if (d != rank - 2 && !definedOutside(indices[d], loop))
      return false;
  ArrayRef<int64_t> shape = type.getShape();
  // Strides of the identity layout; the buffer's element count.
  SmallVector<int64_t> strides(rank, 1);
  for (int64_t d = rank - 2; d >= 0; --d)
    strides[d] = strides[d + 1] * shape[d + 1];
  int64_t elements = strides[0] * shape[0];
  int64_t blockDim = rank - 3;
  if (!worthPrefetching(type, strides[blockDim], crossBlocks))
    return false;
  int64_t perLine = elementsPerLine(type);
  int64_t width = vector.getDimSize(0);

  Location loc = read.getLoc();
  OpBuilder b(loop);
  auto cst = [&](int64_t v) {
    return arith::ConstantIndexOp::create(b, loc, v).getResult();
  };
  // With cross-blocks, where an expert's iteration reads several weight
  // buffers (nextProductRead), the expert's last block of this buffer
  // prefetches the first block read after it instead of the next one in
  // memory: its lines spread over the k steps, so that they are covered
  // whatever the two Ks are (prefetchNextRead). Every block of an [E, K, T] tail is its
  // expert's last (only the loop's first block read prefetches, where a
  // tile reads a row in two vectors). A panel's k loop comes in two
  // versions, chosen before it by whether this is the expert's last panel:
  // the tile's k step is at the limit of the instructions a core issues
  // (a select per step made the MoEUT-44M feed-forward layer 7% slower at
  // N = 512), and a branch in it kept LLVM from folding the tile's loads
  // into its broadcasts (the down projection's loop took 55% more time).
  std::optional<NextProductRead> next =
      crossBlocks ? nextProductRead(read) : std::nullopt;
  SmallVector<vector::TransferReadOp> blockReads;
  for (Operation &op : loop.getBody()->getOperations())
    if (auto r = dyn_cast<vector::TransferReadOp>(op); r && plainBlockRead(r))
      blockReads.push_back(r);
  if (next && blockDim > 0 && blockReads.size() != 1)
    next.reset();
  // A rank-3 buffer counts as an expert's tail (its one block is the last)
  // only where this loop reads whole rows of it, in reads at constant
  // columns that cover them: a row-major weight wider than a tile
  // ([E, K, N], --no-pack-weights) is read one column tile per loop, and
  // every such loop would issue the next buffer's prefetches.
  // (The last read may run past the row, its lanes there masked: the
  // narrow slices of a split tail read as one vector, see
  // moe-cpu-tile-contractions' merge-tail-slices.)
  if (next && blockDim == 0) {
    int64_t covered = 0;
    for (Operation &op : loop.getBody()->getOperations()) {
      auto r = dyn_cast<vector::TransferReadOp>(op);
      bool plain = r && plainBlockRead(r);
      if (!plain && !(r && plainBlockRead(r, /*pastRow=*/true)))
        continue;
      std::optional<int64_t> col = getConstantIntValue(r.getIndices().back());
      if (r.getBase() != read.getBase() || !col || *col != covered)
        break;
      covered =
          std::min(shape[rank - 1], covered + r.getVectorType().getDimSize(0));
      if (!plain)
        break;
    }
    if (covered != shape[rank - 1])
      next.reset();
  }
  if (next && blockDim == 0 && read != blockReads.front())
    return false;
  // Spread over the row tiles (spreadLines): the next buffer's first
  // block, or a whole-row read's next block in memory. The k loop comes
  // in versions by the lines a step that spread all of them over the
  // tiles' S k steps: one where S >= L (L: the larger block's lines), two
  // where 2 S >= L, and so on by powers of two, the last ceil(L / K) (one
  // tile: every tile then prefetches at the rate of a row a step, as
  // without spread-tiles, but only its share of the block). Issuing that
  // last rate in every loop was the instructions of 13 prefetches in a
  // step of 18 FMAs in the tail of the MoEUT-44M down projection, and one
  // line a step for every expert covered a quarter of the block per tile
  // where an expert had fewer than 4 tiles (com.microsoft.MoE at N = 64,
  // about 5 rows an expert, took 1.09x the time).
  bool wholeRows =
      width == shape[rank - 1] && getConstantIntValue(indices[rank - 1]) == 0;
  // (A tail prefetches only the next buffer's block.)
  int64_t spreadNeed = wholeRows && !(next && blockDim == 0)
                           ? llvm::divideCeil(strides[blockDim], perLine)
                           : 0;
  if (next) {
    auto nextType = cast<MemRefType>(next->base.getType());
    int64_t nextRank = nextType.getRank();
    spreadNeed = std::max<int64_t>(
        spreadNeed, llvm::divideCeil(nextType.getShape()[nextRank - 2] *
                                         nextType.getShape()[nextRank - 1],
                                     elementsPerLine(nextType)));
  }
  // Only where every block read of the loop is of this buffer: the
  // versions are made for this read's lines and only its copies in them
  // are given their rate (another buffer's read keeps its prefetches in
  // the last version alone).
  bool oneBuffer = llvm::all_of(blockReads, [&](vector::TransferReadOp r) {
    return r.getBase() == read.getBase();
  });
  std::optional<RowTiles> tiles;
  if (given) {
    tiles = *given;
  } else if (spreadNeed && spreadNeed <= kMaxSpreadLines && oneBuffer &&
             (tiles = rowTiles(loop, read, spread))) {
    int64_t steps = *getConstantIntValue(loop.getUpperBound());
    int64_t lastRate = llvm::divideCeil(spreadNeed, steps);
    for (int64_t rate = 1; rate < lastRate; rate *= 2) {
      OpBuilder vb(loop);
      Value enough = arith::CmpIOp::create(
          vb, loc, arith::CmpIPredicate::uge,
          arith::MulIOp::create(vb, loc, tiles->steps,
                                arith::ConstantIndexOp::create(vb, loc, rate)),
          arith::ConstantIndexOp::create(vb, loc, spreadNeed));
      Operation *versionRead =
          versionLoop(loop, enough, read.getOperation()).second;
      prefetchNextBlock(cast<vector::TransferReadOp>(versionRead), crossBlocks,
                        locality, aheadRows, aheadLocality, spread, &*tiles,
                        rate);
    }
    // The original loop, in the last else branch.
    perStep = lastRate;
    b.setInsertionPoint(loop);
  }
  // Emits the prefetches of the next buffer's first block for the k step
  // of `loopOp` before `at` (the loop-invariant part before `loopOp`). The
  // block (the expert's first nextRows x rowElems elements of it: a
  // panel, or a row-major weight's rows) is contiguous: its L lines are
  // spread over the K k steps, ceil(L / K) a step, line k * ceil(L / K) + j
  // at step k; the steps past line L - 1 prefetch the lines after the
  // block (the buffer's next panel or expert, read later). The start is
  // clamped once before the loop, so that the last step's lines are in the
  // buffer (a clamp per line in the k step cost the down projection's tail
  // loop about 30 instructions a step and spilled its accumulators); a
  // loop of other bounds clamps each line.
  auto prefetchNextRead = [&](scf::ForOp loopOp, Operation *at) {
    auto nextType = cast<MemRefType>(next->base.getType());
    ArrayRef<int64_t> nextShape = nextType.getShape();
    int64_t nextRank = nextType.getRank();
    int64_t expertStride = 1;
    for (int64_t d = 1; d < nextRank; ++d)
      expertStride *= nextShape[d];
    int64_t total = expertStride * nextShape[0];
    int64_t nextPerLine = elementsPerLine(nextType);
    int64_t nextLines = llvm::divideCeil(
        nextShape[nextRank - 2] * nextShape[nextRank - 1], nextPerLine);
    int64_t steps = shape[rank - 2];
    int64_t linesPerStep = llvm::divideCeil(nextLines, steps);
    OpBuilder lb(loopOp);
    auto lcst = [&](int64_t v) {
      return arith::ConstantIndexOp::create(lb, loc, v).getResult();
    };
    Value nextFlat = flatView(lb, loc, next->base);
    Value expert = indices[0];
    if (next->nextExpert)
      expert = arith::AddIOp::create(lb, loc, expert, lcst(1));
    Value nextStart =
        arith::MulIOp::create(lb, loc, expert, lcst(expertStride));
    if (tiles) {
      spreadLines(*tiles, perStep, loopOp, at, nextFlat, nextStart, nextLines,
                  nextPerLine, total, locality, Value());
      return;
    }
    int64_t limit = total - 1 - (steps * linesPerStep - 1) * nextPerLine;
    bool clampEach = !(getConstantIntValue(loopOp.getLowerBound()) == 0 &&
                       getConstantIntValue(loopOp.getUpperBound()) == steps &&
                       getConstantIntValue(loopOp.getStep()) == 1 &&
                       limit >= 0);
    if (!clampEach)
      nextStart = arith::MinUIOp::create(lb, loc, nextStart, lcst(limit));
    lb.setInsertionPoint(at);
    Value first = arith::AddIOp::create(
        lb, loc, nextStart,
        arith::MulIOp::create(lb, loc, loopOp.getInductionVar(),
                              lcst(linesPerStep * nextPerLine)));
    for (int64_t j = 0; j < linesPerStep; ++j) {
      Value line =
          j ? arith::AddIOp::create(lb, loc, first, lcst(j * nextPerLine))
                  .getResult()
            : first;
      if (clampEach)
        line = arith::MinUIOp::create(lb, loc, line, lcst(total - 1));
      memref::PrefetchOp::create(lb, loc, nextFlat, ValueRange{line},
                                 /*isWrite=*/false, locality,
                                 /*isDataCache=*/true);
    }
  };
  if (next && blockDim == 0) {
    prefetchNextRead(loop, read);
    return true;
  }
  // Before the loop: the buffer as one dim, the linear position of the
  // read's block one block further (all but k are loop-invariant), and
  // whether that block is in the same outer block.
  Value flat = flatView(b, loc, read.getBase());
  Value base = cst(strides[blockDim]);
  for (int64_t d = 0; d < rank; ++d)
    if (d != rank - 2)
      base = arith::AddIOp::create(
          b, loc, base,
          strides[d] == 1
              ? indices[d]
              : arith::MulIOp::create(b, loc, indices[d], cst(strides[d]))
                    .getResult());
  Value notLast =
      crossBlocks ? Value() : notLastBlock(b, loc, indices[blockDim],
                                           shape[blockDim]);
  if (next) {
    Value last;
    for (int64_t d = 1; d <= blockDim; ++d) {
      Value isLast = arith::CmpIOp::create(
          b, loc, arith::CmpIPredicate::eq, indices[d], cst(shape[d] - 1));
      last = last ? arith::AndIOp::create(b, loc, last, isLast).getResult()
                  : isLast;
    }
    auto [lastLoop, lastRead] = versionLoop(loop, last, read.getOperation());
    prefetchNextRead(lastLoop, lastRead);
  }
  if (tiles && wholeRows) {
    spreadLines(*tiles, perStep, loop, read, flat, base,
                llvm::divideCeil(strides[blockDim], perLine), perLine, elements,
                locality, notLast);
    return true;
  }
  // With cross-blocks, the addresses past the buffer's end (the last
  // block's next one) are kept in it. Where the loop's bounds are constant
  // this is one clamp of the block's start before the loop, to the last
  // start from which every k step's lines are in the buffer (the last
  // block then prefetches the buffer's last rows): a clamp per line and k
  // step was four instructions more in a k step of about 25, the tile's
  // loop at the limit of what a core issues. (The one-row tiles' clamps,
  // above, stay per line: their loops wait on memory, and the same hoist
  // there measured slower decode, 101.4 against 106.3 tokens/s in 10
  // alternated rounds; docs/performance.md.)
  int64_t lastCol = ((width - 1) / perLine) * perLine;
  std::optional<int64_t> lo = getConstantIntValue(loop.getLowerBound());
  std::optional<int64_t> hi = getConstantIntValue(loop.getUpperBound());
  std::optional<int64_t> step = getConstantIntValue(loop.getStep());
  bool clampPerStep = crossBlocks;
  if (crossBlocks && lo && hi && step && *lo >= 0 && *step > 0 && *hi > *lo) {
    int64_t lastK = *lo + (*hi - 1 - *lo) / *step * *step;
    int64_t limit = elements - 1 - lastK * strides[rank - 2] - lastCol;
    if (limit >= 0) {
      b.setInsertionPoint(loop);
      base = arith::MinUIOp::create(b, loc, base, cst(limit));
      clampPerStep = false;
    }
  }
  // In the loop, next to the read: row k of that block.
  b.setInsertionPoint(read);
  Value at = arith::AddIOp::create(
      b, loc, base,
      arith::MulIOp::create(b, loc, iv, cst(strides[rank - 2])));
  if (!crossBlocks) {
    auto guard = scf::IfOp::create(b, loc, notLast, /*withElse=*/false);
    b.setInsertionPointToStart(guard.thenBlock());
  }
  for (int64_t c = 0; c < width; c += perLine) {
    Value line = c ? arith::AddIOp::create(b, loc, at, cst(c)).getResult()
                   : at;
    if (clampPerStep)
      line = arith::MinUIOp::create(b, loc, line, cst(elements - 1));
    memref::PrefetchOp::create(b, loc, flat, ValueRange{line},
                               /*isWrite=*/false, locality,
                               /*isDataCache=*/true);
  }
  return true;
}

struct CpuPrefetchPanelsPass
    : moe::impl::MoeCpuPrefetchPanelsBase<CpuPrefetchPanelsPass> {
  using MoeCpuPrefetchPanelsBase::MoeCpuPrefetchPanelsBase;
  void runOnOperation() override {
    if (locality < 0 || locality > 3 || aheadLocality < 0 ||
        aheadLocality > 3) {
      getOperation()->emitError("moe-cpu-prefetch-panels: locality and "
                                "ahead-locality must be 0 to 3, got ")
          << static_cast<int64_t>(locality) << " and "
          << static_cast<int64_t>(aheadLocality);
      return signalPassFailure();
    }
    if (aheadRows < 0) {
      getOperation()->emitError("moe-cpu-prefetch-panels: ahead-rows must "
                                "not be negative, got ")
          << static_cast<int64_t>(aheadRows);
      return signalPassFailure();
    }
    // (First: the prefetches go before the k loop, which the next-block
    // prefetches may then version.)
    if (stores)
      moe::prefetchTileStores(getOperation());
    moe::prefetchNextBlocks(getOperation(), crossBlocks, locality, aheadRows,
                            aheadLocality, spreadTiles);
  }
};

} // namespace

int64_t moe::prefetchNextBlocks(Operation *root, bool crossBlocks,
                                int64_t locality, int64_t aheadRows,
                                int64_t aheadLocality, bool spreadTiles) {
  SmallVector<vector::TransferReadOp> reads;
  root->walk([&](vector::TransferReadOp read) { reads.push_back(read); });
  int64_t added = 0;
  for (vector::TransferReadOp read : reads)
    added += prefetchNextBlock(read, crossBlocks, locality, aheadRows,
                               aheadLocality, spreadTiles);
  return added;
}

int64_t moe::prefetchTileStores(Operation *root) {
  // A multi-row tile's k loop: an scf.for carrying a [rows, columns]
  // accumulator (rows >= 2).
  auto isTileLoop = [](scf::ForOp loop) {
    return llvm::any_of(loop.getRegionIterArgs(), [](Value arg) {
      auto acc = dyn_cast<VectorType>(arg.getType());
      return acc && acc.getRank() == 2 && acc.getDimSize(0) > 1;
    });
  };
  SmallVector<vector::TransferWriteOp> stores;
  root->walk([&](vector::TransferWriteOp store) { stores.push_back(store); });
  DominanceInfo dominance(root);
  int64_t added = 0;
  for (vector::TransferWriteOp store : stores) {
    auto type = dyn_cast<MemRefType>(store.getBase().getType());
    VectorType vector = store.getVectorType();
    if (!type || vector.getRank() != 2 || vector.isScalable() ||
        vector.getDimSize(0) < 2 || store.getMask() ||
        !store.getPermutationMap().isMinorIdentity() ||
        !llvm::all_of(store.getInBoundsValues(), [](bool b) { return b; }) ||
        !type.getElementType().isIntOrFloat())
      continue;
    // The k loop whose result the stored value is made of (through the
    // epilogue's ops), in the store's block.
    scf::ForOp kLoop;
    SmallVector<Value> work{store.getValueToStore()};
    llvm::SmallPtrSet<Operation *, 16> seen;
    while (!work.empty() && !kLoop) {
      Operation *def = work.pop_back_val().getDefiningOp();
      if (!def || def->getBlock() != store->getBlock() ||
          !seen.insert(def).second)
        continue;
      if (auto loop = dyn_cast<scf::ForOp>(def)) {
        if (isTileLoop(loop))
          kLoop = loop;
        continue;
      }
      if (def->getNumRegions() == 0)
        llvm::append_range(work, def->getOperands());
    }
    if (!kLoop || !dominance.properlyDominates(store.getBase(), kLoop) ||
        !llvm::all_of(store.getIndices(), [&](Value index) {
          return dominance.properlyDominates(index, kLoop);
        }))
      continue;
    // Every line of every row of the stored block: the row's start, one
    // line apart, and its last element (a row that does not start on a
    // line, 412 floats to a row, ends in one more).
    OpBuilder b(kLoop);
    Location loc = store.getLoc();
    int64_t rank = type.getRank();
    int64_t perLine = elementsPerLine(type);
    int64_t width = vector.getDimSize(1);
    SmallVector<int64_t> cols;
    for (int64_t c = 0; c < width; c += perLine)
      cols.push_back(c);
    if (width > 1 && (width - 1) % perLine != 0)
      cols.push_back(width - 1);
    DenseMap<int64_t, Value> constants;
    auto plus = [&](Value v, int64_t by) -> Value {
      if (!by)
        return v;
      Value &c = constants[by];
      if (!c)
        c = arith::ConstantIndexOp::create(b, loc, by);
      return arith::AddIOp::create(b, loc, v, c);
    };
    for (int64_t r = 0; r < vector.getDimSize(0); ++r) {
      SmallVector<Value> indices(store.getIndices());
      indices[rank - 2] = plus(indices[rank - 2], r);
      Value col = indices[rank - 1];
      for (int64_t c : cols) {
        indices[rank - 1] = plus(col, c);
        memref::PrefetchOp::create(b, loc, store.getBase(), indices,
                                   /*isWrite=*/true, /*localityHint=*/3,
                                   /*isDataCache=*/true);
      }
    }
    ++added;
  }
  return added;
}

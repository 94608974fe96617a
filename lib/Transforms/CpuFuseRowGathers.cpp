//===- CpuFuseRowGathers.cpp - register tiles read gathered rows in place -===//
//
// The expert layers gather their token rows into expert order before the
// first expert matmul: a loop over slots copies row `src(slot)` of the
// activations X into row `slot` of a workspace buffer B, and the register
// tiles of moe-cpu-tile-contractions then read B. At the MoEUT-44M
// feed-forward shape (N = 2048, k = 12, D = 412) B holds 24576 rows of
// 1.6 KB: 40 MB written once and read back once, for rows that the tiles
// could read from X directly (a 6-row tile's broadcasts come from six
// rows either way).
//
// This pass removes the copy: every read of B at row r (the tiles'
// `vector.transfer_read`s and plain `memref.load`s) becomes a read of X at
// row src(r), where src is the gather loop's own index computation, cloned
// with the induction variable replaced by r (before the read, hoisted out
// of the loops around it that surely run and do not define r: outside the
// tile's k loop, never out of an scf.if). The gather loop keeps its bounds checks (the
// error status and the clamped index are unchanged), and B's allocation
// goes away when nothing else uses it.
//
// When it applies (everything else is left as it was):
//  - the gather: `linalg.copy` / `memref.copy` of a row view of X
//    (unit sizes but the last, which is B's static row width W, unit
//    strides) into `B[iv, 0][1, W]`, directly in the body of an scf.for or
//    one-dim scf.parallel from 0 by 1 to a bound that is B's row count;
//    B is a rank-2 identity-layout workspace allocation; X's offsets are
//    computed in the body from the induction variable, loop-invariant
//    values and `memref.load`s of loop-invariant buffers, by ops without
//    regions or writes (each was executed for that very row by the gather,
//    and the clone runs only where the read of that row runs, so it reads
//    no address the gather did not);
//  - every other use of B is an unmasked, in-bounds `vector.transfer_read`
//    (rows x W-slice, or one row slice) or a `memref.load`, after the
//    gather in its block;
//  - B's allocation has no other view (its pointer and descriptor serve B
//    alone);
//  - from the gather to the last read, nothing may write X, the index
//    buffers or B: every write goes to a workspace allocation other than
//    theirs (two workspace allocations live at once never overlap, and
//    workspace memory is never an input or a weight), and the only calls
//    are the workspace allocator and the host functions that write no
//    buffer of the code (report_error, workspace_grow, output_alloc; not
//    parallel_for, which runs code).
//
// Upstream has no such transform: linalg's fusion works on tensors through
// tiling, and the tiles here are vector code on buffers.
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/HostAbi.h"
#include "moe/Transforms/Passes.h"
#include "moe/Transforms/Transforms.h"

#include "moe/code_abi.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/Dominance.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOECPUFUSEROWGATHERS
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

constexpr StringLiteral kAllocFn = moe::kWorkspaceAllocFn;

bool definedOutside(Value v, Operation *loop) {
  return !loop->isAncestor(v.getParentBlock()->getParentOp());
}

/// The struct a memref was made from by moe-lower-to-host-abi
/// (`unrealized_conversion_cast` of an `llvm.insertvalue` chain), or null.
Value descriptorOf(Value memref) {
  auto cast = memref.getDefiningOp<UnrealizedConversionCastOp>();
  if (!cast || cast->getNumOperands() != 1 ||
      !isa<LLVM::LLVMStructType>(cast->getOperand(0).getType()))
    return {};
  return cast->getOperand(0);
}

/// The value inserted at `position` of a descriptor's insertvalue chain.
Value fieldOf(Value descriptor, ArrayRef<int64_t> position) {
  while (auto insert = descriptor.getDefiningOp<LLVM::InsertValueOp>()) {
    if (insert.getPosition() == position)
      return insert.getValue();
    descriptor = insert.getContainer();
  }
  return {};
}

bool isWorkspaceAlloc(Value ptr) {
  auto call = ptr.getDefiningOp<LLVM::CallOp>();
  return call && call.getCallee() == kAllocFn;
}

/// The aligned pointers a memref's memory may come from: through views,
/// casts and scf.if results to the descriptors moe-lower-to-host-abi built.
/// Fails for anything else (block arguments, calls, ...).
LogicalResult collectRoots(Value v, SmallVectorImpl<Value> &roots,
                           int depth = 0) {
  if (depth > 32)
    return failure();
  Operation *def = v.getDefiningOp();
  if (!def)
    return failure();
  if (auto view = dyn_cast<ViewLikeOpInterface>(def))
    return collectRoots(view.getViewSource(), roots, depth + 1);
  if (auto cast = dyn_cast<memref::CastOp>(def))
    return collectRoots(cast.getSource(), roots, depth + 1);
  if (auto ifOp = dyn_cast<scf::IfOp>(def)) {
    unsigned index = cast<OpResult>(v).getResultNumber();
    if (ifOp.getElseRegion().empty())
      return failure();
    for (scf::YieldOp yield : {ifOp.thenYield(), ifOp.elseYield()})
      if (failed(collectRoots(yield.getOperand(index), roots, depth + 1)))
        return failure();
    return success();
  }
  Value descriptor = descriptorOf(v);
  Value ptr = descriptor ? fieldOf(descriptor, {1}) : Value();
  if (!ptr)
    return failure();
  roots.push_back(ptr);
  return success();
}

/// Whether `call` calls a host function that writes no buffer of the
/// code: report_error, workspace_grow or output_alloc, loaded from the
/// frame's host table (not parallel_for, which runs code).
bool isHarmlessHostCall(LLVM::CallOp call, Value frame) {
  if (call.getCallee() || call.getNumOperands() == 0)
    return false;
  std::optional<int64_t> slot =
      moe::hostFunctionSlot(call.getOperand(0), frame);
  return slot == MOE_HOST_REPORT_ERROR || slot == MOE_HOST_WORKSPACE_GROW ||
         slot == MOE_HOST_OUTPUT_ALLOC;
}

/// Whether `op` (its own effects; ops in its regions are visited on their
/// own) writes nothing but workspace allocations other than `kept`, and
/// calls nothing but the workspace allocator and the host functions that
/// write no buffer.
bool writesOnlyOthers(Operation *op, ArrayRef<Value> kept, Value frame) {
  if (auto call = dyn_cast<LLVM::CallOp>(op)) {
    if (call.getCallee())
      return *call.getCallee() == kAllocFn;
    return isHarmlessHostCall(call, frame);
  }
  auto iface = dyn_cast<MemoryEffectOpInterface>(op);
  if (!iface)
    // Ops whose effects are those of their regions (scf.for, scf.if, ...).
    return op->hasTrait<OpTrait::HasRecursiveMemoryEffects>();
  SmallVector<MemoryEffects::EffectInstance> effects;
  iface.getEffects(effects);
  for (const MemoryEffects::EffectInstance &effect : effects) {
    if (!isa<MemoryEffects::Write, MemoryEffects::Free>(effect.getEffect()))
      continue;
    Value target = effect.getValue();
    SmallVector<Value> roots;
    if (!target || !isa<BaseMemRefType>(target.getType()) ||
        failed(collectRoots(target, roots)))
      return false;
    for (Value root : roots)
      if (!isWorkspaceAlloc(root) || llvm::is_contained(kept, root))
        return false;
  }
  return true;
}

/// One gather loop that qualifies.
struct Gather {
  Operation *loop;
  Value iv;
  Operation *copy;
  memref::SubViewOp from, into;
  /// The body's ops that compute `from`'s offsets, in block order.
  SmallVector<Operation *> slice;
  /// Roots of X, of the buffers the slice loads and of B: from the gather
  /// to the last read, nothing may write them.
  SmallVector<Value> kept;
  /// The reads of B (fuse sorts them into program order).
  SmallVector<Operation *> reads;
};

/// The ops of the loop body computing `roots` from the induction variable,
/// loop-invariant values and loads of loop-invariant buffers; fails on
/// anything else (other block arguments, regions, writes).
FailureOr<SmallVector<Operation *>>
offsetSlice(ValueRange roots, Operation *loop, Value iv,
            SmallVectorImpl<Value> &loaded) {
  Block *body = iv.getParentBlock();
  llvm::SetVector<Operation *> slice;
  std::function<LogicalResult(Value)> visit = [&](Value v) -> LogicalResult {
    if (v == iv || definedOutside(v, loop))
      return success();
    Operation *op = v.getDefiningOp();
    if (!op || op->getBlock() != body)
      return failure();
    if (slice.contains(op))
      return success();
    if (auto load = dyn_cast<memref::LoadOp>(op)) {
      if (!definedOutside(load.getMemRef(), loop))
        return failure();
      loaded.push_back(load.getMemRef());
    } else if (op->getNumRegions() || !isMemoryEffectFree(op)) {
      return failure();
    }
    for (Value operand : op->getOperands())
      if (failed(visit(operand)))
        return failure();
    slice.insert(op);
    return success();
  };
  for (Value root : roots)
    if (failed(visit(root)))
      return failure();
  SmallVector<Operation *> ordered(slice.begin(), slice.end());
  llvm::sort(ordered,
             [](Operation *a, Operation *b) { return a->isBeforeInBlock(b); });
  return ordered;
}

/// Whether `rows` (an i64 descriptor size or an index) is the value `ub`.
bool sameCount(Value rows, Value ub) {
  if (rows == ub)
    return true;
  if (auto cast = rows.getDefiningOp<arith::IndexCastOp>())
    return cast.getIn() == ub;
  if (auto cast = rows.getDefiningOp<arith::IndexCastUIOp>())
    return cast.getIn() == ub;
  return false;
}

/// Whether a read of B qualifies: an unmasked, in-bounds transfer_read of
/// a row slice or rows x slice, or a memref.load.
bool isFusableRead(Operation *user, Value buffer) {
  if (auto load = dyn_cast<memref::LoadOp>(user))
    return load.getMemRef() == buffer;
  auto read = dyn_cast<vector::TransferReadOp>(user);
  if (!read || read.getBase() != buffer || read.getMask() ||
      !llvm::all_of(read.getInBoundsValues(), [](bool b) { return b; }))
    return false;
  AffineMap map = read.getPermutationMap();
  VectorType type = read.getVectorType();
  return map.isMinorIdentity() && map.getNumResults() >= 1 &&
         map.getNumResults() <= 2 &&
         type.getRank() == static_cast<int64_t>(map.getNumResults()) &&
         !type.isScalable();
}

/// Whether `buffer` is the only view of its workspace allocation: the
/// allocation's pointer and the descriptor chain have no other user, so
/// B's uses are all of B's memory's uses.
bool isPrivate(Value buffer) {
  Value descriptor = descriptorOf(buffer);
  if (!descriptor || !descriptor.hasOneUse())
    return false;
  SmallPtrSet<Operation *, 8> chain;
  Value ptr;
  while (auto insert = descriptor.getDefiningOp<LLVM::InsertValueOp>()) {
    if (!insert->hasOneUse())
      return false;
    chain.insert(insert);
    if (insert.getPosition() == ArrayRef<int64_t>{1})
      ptr = insert.getValue();
    descriptor = insert.getContainer();
  }
  return ptr && llvm::all_of(ptr.getUsers(), [&](Operation *user) {
           return chain.contains(user);
         });
}

std::optional<Gather> matchGather(Operation *copy, Value frame) {
  Value in, out;
  if (auto c = dyn_cast<linalg::CopyOp>(copy)) {
    if (!c.hasPureBufferSemantics())
      return std::nullopt;
    in = c.getInputs()[0];
    out = c.getOutputs()[0];
  } else if (auto c = dyn_cast<memref::CopyOp>(copy)) {
    in = c.getSource();
    out = c.getTarget();
  } else {
    return std::nullopt;
  }
  Gather g;
  g.copy = copy;
  g.loop = copy->getParentOp();
  if (auto f = dyn_cast<scf::ForOp>(g.loop)) {
    g.iv = f.getInductionVar();
    if (getConstantIntValue(f.getLowerBound()) != 0 ||
        getConstantIntValue(f.getStep()) != 1 || f.getNumRegionIterArgs())
      return std::nullopt;
  } else if (auto p = dyn_cast<scf::ParallelOp>(g.loop)) {
    if (p.getNumLoops() != 1 || p.getNumReductions() ||
        getConstantIntValue(p.getLowerBound()[0]) != 0 ||
        getConstantIntValue(p.getStep()[0]) != 1)
      return std::nullopt;
    g.iv = p.getInductionVars()[0];
  } else {
    return std::nullopt;
  }
  if (!g.iv.getType().isIndex())
    return std::nullopt;
  Value ub = isa<scf::ForOp>(g.loop)
                 ? cast<scf::ForOp>(g.loop).getUpperBound()
                 : cast<scf::ParallelOp>(g.loop).getUpperBound()[0];
  g.from = in.getDefiningOp<memref::SubViewOp>();
  g.into = out.getDefiningOp<memref::SubViewOp>();
  if (!g.from || !g.into || g.from->getBlock() != copy->getBlock() ||
      g.into->getBlock() != copy->getBlock() || !g.from->hasOneUse() ||
      !g.into->hasOneUse())
    return std::nullopt;

  // B: a rank-2 identity workspace buffer, written row iv, whole rows.
  Value buffer = g.into.getSource();
  auto bType = cast<MemRefType>(buffer.getType());
  if (!definedOutside(buffer, g.loop) || bType.getRank() != 2 ||
      !bType.getLayout().isIdentity() || bType.isDynamicDim(1) ||
      !isa<FloatType>(bType.getElementType()))
    return std::nullopt;
  int64_t width = bType.getDimSize(1);
  SmallVector<OpFoldResult> intoOffsets = g.into.getMixedOffsets();
  auto ivOffset = dyn_cast<Value>(intoOffsets[0]);
  if (ivOffset != g.iv || getConstantIntValue(intoOffsets[1]) != 0 ||
      getConstantIntValue(g.into.getMixedSizes()[0]) != 1 ||
      getConstantIntValue(g.into.getMixedSizes()[1]) != width ||
      !llvm::all_of(g.into.getMixedStrides(), [](OpFoldResult s) {
        return getConstantIntValue(s) == 1;
      }))
    return std::nullopt;
  Value descriptor = descriptorOf(buffer);
  Value bPtr = descriptor ? fieldOf(descriptor, {1}) : Value();
  Value bRows = descriptor ? fieldOf(descriptor, {3, 0}) : Value();
  if (!bPtr || !isWorkspaceAlloc(bPtr) || !bRows || !sameCount(bRows, ub) ||
      !isPrivate(buffer))
    return std::nullopt;

  // X's row view: unit sizes but the last (W), unit strides, a unit-stride
  // last dim in X.
  Value source = g.from.getSource();
  auto xType = cast<MemRefType>(source.getType());
  SmallVector<OpFoldResult> sizes = g.from.getMixedSizes();
  int64_t rank = xType.getRank();
  SmallVector<int64_t> xStrides;
  int64_t xOffset;
  if (rank < 1 || !definedOutside(source, g.loop) ||
      xType.getElementType() != bType.getElementType() ||
      getConstantIntValue(sizes.back()) != width ||
      failed(xType.getStridesAndOffset(xStrides, xOffset)) ||
      xStrides.back() != 1 ||
      !llvm::all_of(g.from.getMixedStrides(), [](OpFoldResult s) {
        return getConstantIntValue(s) == 1;
      }))
    return std::nullopt;
  for (int64_t d = 0; d + 1 < rank; ++d)
    if (getConstantIntValue(sizes[d]) != 1)
      return std::nullopt;
  SmallVector<Value> loaded;
  FailureOr<SmallVector<Operation *>> slice =
      offsetSlice(g.from.getOffsets(), g.loop, g.iv, loaded);
  if (failed(slice))
    return std::nullopt;
  g.slice = std::move(*slice);
  if (failed(collectRoots(source, g.kept)))
    return std::nullopt;
  for (Value index : loaded)
    if (failed(collectRoots(index, g.kept)))
      return std::nullopt;
  if (llvm::is_contained(g.kept, bPtr))
    return std::nullopt;
  // Nothing may write B either (a write through another view of it).
  g.kept.push_back(bPtr);

  // B's other uses: reads after the gather in its block.
  Block *block = g.loop->getBlock();
  Operation *last = g.loop;
  for (Operation *user : buffer.getUsers()) {
    if (user == g.into)
      continue;
    Operation *at = block->findAncestorOpInBlock(*user);
    if (!isFusableRead(user, buffer) || !at || !g.loop->isBeforeInBlock(at))
      return std::nullopt;
    g.reads.push_back(user);
    if (last->isBeforeInBlock(at))
      last = at;
  }
  if (g.reads.empty())
    return std::nullopt;

  // Nothing from the gather to the last read writes X or the indices.
  for (Operation *op = g.loop;; op = op->getNextNode()) {
    WalkResult walk = op->walk([&](Operation *nested) {
      if (nested == copy || nested == g.from || nested == g.into)
        return WalkResult::advance();
      return writesOnlyOthers(nested, g.kept, frame) ? WalkResult::advance()
                                                     : WalkResult::interrupt();
    });
    if (walk.wasInterrupted())
      return std::nullopt;
    if (op == last)
      break;
  }
  return g;
}

/// Where the index computation of a read of row `row` goes: before the
/// read, hoisted out of each enclosing scf.for that surely runs (constant
/// bounds, lower below upper), does not hold the gather, and does not
/// define `row`. Never out of an scf.if or a loop that may not run: the
/// clones load the index buffers, so they may run only where the read
/// does, and only for rows the read reads.
Operation *anchorFor(Operation *read, Value row, Operation *gather) {
  Operation *anchor = read;
  while (auto loop = dyn_cast<scf::ForOp>(anchor->getParentOp())) {
    std::optional<int64_t> lb = getConstantIntValue(loop.getLowerBound());
    std::optional<int64_t> ub = getConstantIntValue(loop.getUpperBound());
    if (!lb || !ub || *lb >= *ub || loop->isAncestor(gather) ||
        !definedOutside(row, loop))
      break;
    anchor = loop;
  }
  return anchor;
}

/// Rewrites the reads of B into reads of X and removes the copy.
void fuse(Gather &g) {
  OpBuilder b(g.copy->getContext());
  SmallVector<OpFoldResult> fromOffsets = g.from.getMixedOffsets();
  Location loc = g.from.getLoc();
  // X's offsets for row `row` + `plus`, computed before an anchor; a later
  // read reuses them where that anchor dominates its own.
  DominanceInfo dominance(g.loop->getParentOfType<FunctionOpInterface>());
  DenseMap<std::pair<Value, int64_t>,
           SmallVector<std::pair<Operation *, SmallVector<Value>>>>
      memo;
  auto offsetsAt = [&](Operation *read, Value row,
                       int64_t plus) -> SmallVector<Value> {
    Operation *anchor = anchorFor(read, row, g.loop);
    auto &known = memo[{row, plus}];
    for (auto &[before, offsets] : known)
      if (dominance.dominates(before, anchor))
        return offsets;
    known.push_back({anchor, {}});
    SmallVector<Value> &offsets = known.back().second;
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(anchor);
    Value at = row;
    if (plus)
      at = arith::AddIOp::create(b, loc, row,
                                 arith::ConstantIndexOp::create(b, loc, plus));
    IRMapping map;
    map.map(g.iv, at);
    for (Operation *op : g.slice)
      b.clone(*op, map);
    for (OpFoldResult offset : fromOffsets)
      offsets.push_back(
          isa<Value>(offset)
              ? map.lookupOrDefault(cast<Value>(offset))
              : arith::ConstantIndexOp::create(b, loc,
                                               *getConstantIntValue(offset))
                    .getResult());
    return offsets;
  };
  // Reads in program order, so that an earlier read's offsets serve the
  // later reads its anchor dominates.
  DenseMap<Operation *, unsigned> order;
  g.loop->getParentOp()->walk<WalkOrder::PreOrder>(
      [&](Operation *op) { order.try_emplace(op, order.size()); });
  llvm::sort(g.reads, [&](Operation *a, Operation *b) {
    return order.lookup(a) < order.lookup(b);
  });
  // First every read's X offsets per row (no op is erased meanwhile, so
  // the memo's keys stay valid), then the reads themselves.
  SmallVector<SmallVector<SmallVector<Value>>> rowOffsets;
  for (Operation *user : g.reads) {
    Value row = isa<memref::LoadOp>(user)
                    ? cast<memref::LoadOp>(user).getIndices()[0]
                    : cast<vector::TransferReadOp>(user).getIndices()[0];
    int64_t rows = 1;
    if (auto read = dyn_cast<vector::TransferReadOp>(user))
      if (read.getVectorType().getRank() == 2)
        rows = read.getVectorType().getDimSize(0);
    SmallVector<SmallVector<Value>> perRow;
    for (int64_t i = 0; i < rows; ++i)
      perRow.push_back(offsetsAt(user, row, i));
    rowOffsets.push_back(std::move(perRow));
  }
  Value source = g.from.getSource();
  auto xType = cast<MemRefType>(source.getType());
  bool fromColumnZero = getConstantIntValue(fromOffsets.back()) == 0;
  // X's indices for a row's offsets and B's column.
  auto indicesAt = [&](SmallVector<Value> at, Value column) {
    at.back() = fromColumnZero
                    ? column
                    : arith::AddIOp::create(b, loc, at.back(), column)
                          .getResult();
    return at;
  };
  AffineMap rowMap = AffineMap::getMinorIdentityMap(xType.getRank(), 1,
                                                    b.getContext());
  for (size_t r = 0; r < g.reads.size(); ++r) {
    Operation *user = g.reads[r];
    const SmallVector<SmallVector<Value>> &perRow = rowOffsets[r];
    b.setInsertionPoint(user);
    if (auto load = dyn_cast<memref::LoadOp>(user)) {
      Value value = memref::LoadOp::create(
          b, load.getLoc(), source,
          indicesAt(perRow[0], load.getIndices()[1]));
      load.replaceAllUsesWith(value);
      load.erase();
      continue;
    }
    auto read = cast<vector::TransferReadOp>(user);
    VectorType type = read.getVectorType();
    Value column = read.getIndices()[1];
    auto rowType = VectorType::get(type.getShape().back(),
                                   type.getElementType());
    auto readRow = [&](int64_t i) -> Value {
      return vector::TransferReadOp::create(
          b, read.getLoc(), rowType, source, indicesAt(perRow[i], column),
          read.getPadding(), rowMap, ArrayRef<bool>{true});
    };
    Value result;
    if (type.getRank() == 1) {
      result = readRow(0);
    } else {
      result = vector::BroadcastOp::create(b, read.getLoc(), type,
                                           read.getPadding());
      for (int64_t i = 0; i < type.getDimSize(0); ++i)
        result = vector::InsertOp::create(b, read.getLoc(), readRow(i),
                                          result, i);
    }
    read.replaceAllUsesWith(result);
    read.erase();
  }
  g.copy->erase();
  g.into->erase();
  if (g.from->use_empty())
    g.from->erase();
  // What only computed the copy's offsets goes too; the bounds checks
  // (scf.if) stay, and a loop left with nothing goes.
  Block *body = g.iv.getParentBlock();
  for (Operation *op : llvm::reverse(g.slice))
    if (isOpTriviallyDead(op))
      op->erase();
  if (body->getOperations().size() == 1)
    g.loop->erase();
}

/// Erases a buffer nothing uses any more, with its descriptor chain and
/// workspace allocation.
void eraseDeadBuffer(Value buffer) {
  auto cast = buffer.getDefiningOp<UnrealizedConversionCastOp>();
  if (!cast || !cast->use_empty())
    return;
  Value descriptor = cast->getOperand(0);
  cast->erase();
  Value ptr;
  while (auto insert = descriptor.getDefiningOp<LLVM::InsertValueOp>()) {
    if (!insert->use_empty())
      return;
    descriptor = insert.getContainer();
    Value value = insert.getValue();
    insert->erase();
    if (isWorkspaceAlloc(value))
      ptr = value;
  }
  if (ptr && ptr.use_empty())
    ptr.getDefiningOp()->erase();
}

struct CpuFuseRowGathersPass
    : moe::impl::MoeCpuFuseRowGathersBase<CpuFuseRowGathersPass> {
  void runOnOperation() override { moe::fuseRowGathers(getOperation()); }
};

} // namespace

int64_t moe::fuseRowGathers(Operation *root) {
  SmallVector<std::pair<Operation *, Value>> copies;
  root->walk([&](Operation *op) {
    if (!isa<linalg::CopyOp, memref::CopyOp>(op) ||
        !isa<scf::ForOp, scf::ParallelOp>(op->getParentOp()))
      return;
    auto func = op->getParentOfType<FunctionOpInterface>();
    if (!func || func.isExternal() || func.getNumArguments() == 0)
      return;
    copies.push_back({op, func.getArgument(0)});
  });
  int64_t fused = 0;
  for (auto [copy, frame] : copies) {
    std::optional<Gather> gather = matchGather(copy, frame);
    if (!gather)
      continue;
    Value buffer = gather->into.getSource();
    fuse(*gather);
    eraseDeadBuffer(buffer);
    ++fused;
  }
  return fused;
}

//===- RollRepeats.cpp - repeated op sequences -> one scf.for --------------===//
//
// A MoEUT runs its G distinct layers R times with the same weights; the
// importer (like any ONNX graph) spells out all R·G layers. This pass finds
// a sequence of ops that the block repeats back to back, each copy doing
// the same thing to the previous copy's results, and emits the sequence
// once inside an `scf.for` of R iterations. Values flowing from one copy to
// the next (the residual stream) become iteration arguments.
//
// The rewrite is exact: the loop runs the same ops in the same order on the
// same values, so the results are the same bits. It is found, not assumed:
// copy k (k >= 1) must be structurally equivalent to copy 0
// (OperationEquivalence, regions included), and every operand of copy k
// must be either
//   - the corresponding value of copy k itself,
//   - the very value copy 0 uses there, defined before the sequence (a
//     weight, a constant: loop-invariant), or
//   - the corresponding value of copy k-1, where copy 0 uses a value defined
//     before the sequence (carried: copy 0's use becomes the iteration
//     argument, initialised with that value), or
//   - an integer constant marked moe.indexed_constant, defined before the
//     sequence, whose value is c + k·s, where copy 0 uses the constant c
//     and copy 1 the constant c + s (indexed: the loop computes c + i·s
//     from its induction variable; the generation entries index their
//     stacked caches by the absolute layer this way). Unmarked constants
//     must be the same value in every copy, so that no static operand
//     becomes a loop-computed one unasked.
// Each use keeps the kind copy 1 gives it in every later copy. Values of the
// copies used after the sequence must be carried values of the last copy;
// otherwise the last copy stays unrolled after the loop.
//
// Candidates come from a hash of each op's structure (name, attributes,
// types): for each period P, a run of ops whose hash equals the hash P ops
// later. The candidate that removes the most ops wins (the smallest period
// on a tie); the search repeats on the result.
//
// Upstream has loop unrolling but no rerolling of straight-line code, so
// this is written here.
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"
#include "moe/Transforms/Transforms.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/OperationSupport.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/Support/MathExtras.h"

#include <optional>

namespace mlir::moe {
#define GEN_PASS_DEF_MOEROLLREPEATS
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

/// A use, inside copy 0, of a value defined before the sequence: where it
/// is (top-level op, op in that op's pre-order walk, operand) and how the
/// other copies use the corresponding operand.
struct OutsideUse {
  unsigned op;
  unsigned walk;
  unsigned operand;
  Value init; // the value copy 0 uses
  bool carried;
  unsigned from; // carried: result `result` of op `from` of the previous copy
  unsigned result;
  bool indexed = false; // copy k uses the constant c0 + k * stride
  int64_t c0 = 0, stride = 0;
};

/// The value of an integer or index arith.constant marked
/// moe.indexed_constant that fits in 64 bits, if `v` is one.
std::optional<int64_t> integerConstant(Value v) {
  auto cst = v.getDefiningOp<arith::ConstantOp>();
  if (!cst || !cst->hasAttr(moe::kIndexedConstantAttrName))
    return std::nullopt;
  auto attr = dyn_cast<IntegerAttr>(cst.getValue());
  if (!attr || attr.getValue().getSignificantBits() > 64)
    return std::nullopt;
  return attr.getValue().getSExtValue();
}

/// One sequence found: `count` copies of `period` ops from `start`.
struct Repeat {
  size_t start = 0, period = 0, count = 0;
  SmallVector<OutsideUse> uses;
  int64_t saved() const {
    return static_cast<int64_t>((count - 1) * period);
  }
};

class Roller {
public:
  Roller(Block &block, int64_t minOps) : block(block), minOps(minOps) {
    for (Operation &op : block.without_terminator()) {
      index[&op] = ops.size();
      ops.push_back(&op);
    }
  }

  /// The best repeat of the block, if any.
  std::optional<Repeat> find();
  /// Rewrites `r` into an scf.for.
  void roll(const Repeat &r);

private:
  /// Index in `ops` of the top-level op defining `v`; -1 for a block
  /// argument of the block (before every op).
  int64_t position(Value v) const {
    Operation *def = v.getDefiningOp();
    if (!def)
      return -1;
    Operation *top = block.findAncestorOpInBlock(*def);
    return top ? static_cast<int64_t>(index.lookup(top)) : -1;
  }
  /// How many copies from `start` (at most `count`) do what copy 0 does;
  /// fills `uses` with copy 0's uses of values defined before it.
  size_t verify(size_t start, size_t period, size_t count,
                SmallVector<OutsideUse> &uses) const;
  /// Whether `count` copies may become a loop: every use after them is a
  /// carried value of the last copy.
  bool escapesAreCarried(const Repeat &r) const;

  Block &block;
  int64_t minOps;
  SmallVector<Operation *> ops;
  DenseMap<Operation *, size_t> index;
};

/// The ops of `op`, pre-order (op first).
SmallVector<Operation *> preorder(Operation *op) {
  SmallVector<Operation *> list;
  op->walk<WalkOrder::PreOrder>([&](Operation *o) { list.push_back(o); });
  return list;
}

size_t Roller::verify(size_t start, size_t period, size_t count,
                      SmallVector<OutsideUse> &uses) const {
  uses.clear();
  for (size_t k = 1; k < count; ++k) {
    size_t next = 0; // index into `uses` for k >= 2
    size_t base = start + k * period, prev = base - period;
    for (size_t i = 0; i < period; ++i) {
      Operation *a = ops[start + i], *b = ops[base + i];
      if (!OperationEquivalence::isEquivalentTo(
              a, b, OperationEquivalence::ignoreValueEquivalence, nullptr,
              OperationEquivalence::IgnoreLocations))
        return k;
      SmallVector<Operation *> wa = preorder(a), wb = preorder(b);
      if (wa.size() != wb.size())
        return k;
      // Values defined inside the two ops correspond one to one.
      DenseMap<Value, Value> inner;
      for (auto [x, y] : llvm::zip(wa, wb)) {
        if (x->getName() != y->getName() ||
            x->getNumOperands() != y->getNumOperands() ||
            x->getNumResults() != y->getNumResults() ||
            x->getNumRegions() != y->getNumRegions())
          return k;
        for (auto [rx, ry] : llvm::zip(x->getResults(), y->getResults()))
          inner[rx] = ry;
        for (auto [gx, gy] : llvm::zip(x->getRegions(), y->getRegions())) {
          if (gx.getBlocks().size() != gy.getBlocks().size())
            return k;
          for (auto [bx, by] : llvm::zip(gx, gy)) {
            if (bx.getNumArguments() != by.getNumArguments())
              return k;
            for (auto [ax, ay] :
                 llvm::zip(bx.getArguments(), by.getArguments()))
              inner[ax] = ay;
          }
        }
      }
      for (auto [w, pair] : llvm::enumerate(llvm::zip(wa, wb))) {
        auto [x, y] = pair;
        for (unsigned o = 0; o < x->getNumOperands(); ++o) {
          Value u = x->getOperand(o), v = y->getOperand(o);
          if (u.getType() != v.getType())
            return k;
          if (auto it = inner.find(u); it != inner.end()) {
            if (it->second != v)
              return k;
            continue;
          }
          int64_t pu = position(u), pv = position(v);
          if (pu >= static_cast<int64_t>(start)) {
            // Copy 0's own value: copy k's must be the same result of the
            // same op of copy k.
            if (pu >= static_cast<int64_t>(start + period))
              return k; // not dominating: cannot happen in verified IR
            if (pv != static_cast<int64_t>(base) + (pu - (int64_t)start) ||
                cast<OpResult>(u).getResultNumber() !=
                    cast<OpResult>(v).getResultNumber())
              return k;
            continue;
          }
          // A value defined before the sequence.
          if (k == 1) {
            OutsideUse use{static_cast<unsigned>(i),
                           static_cast<unsigned>(w), o, u, false, 0, 0};
            if (v != u) {
              std::optional<int64_t> cu = integerConstant(u),
                                     cv = integerConstant(v);
              if (pv >= static_cast<int64_t>(prev) &&
                  pv < static_cast<int64_t>(base)) {
                use.carried = true;
                use.from = static_cast<unsigned>(pv - prev);
                use.result = cast<OpResult>(v).getResultNumber();
              } else if (cu && cv && pv < static_cast<int64_t>(start) &&
                         !llvm::SubOverflow(*cv, *cu, use.stride)) {
                use.indexed = true;
                use.c0 = *cu;
              } else {
                return k;
              }
            }
            uses.push_back(use);
            continue;
          }
          if (next >= uses.size())
            return k;
          const OutsideUse &use = uses[next++];
          if (use.op != i || use.walk != w || use.operand != o)
            return k;
          if (use.indexed) {
            std::optional<int64_t> cv = integerConstant(v);
            int64_t step, want;
            if (!cv || pv >= static_cast<int64_t>(start) ||
                llvm::MulOverflow(static_cast<int64_t>(k), use.stride, step) ||
                llvm::AddOverflow(use.c0, step, want) || *cv != want)
              return k;
            continue;
          }
          Value expected =
              use.carried ? ops[prev + use.from]->getResult(use.result)
                          : use.init;
          if (v != expected)
            return k;
        }
      }
    }
  }
  return count;
}

bool Roller::escapesAreCarried(const Repeat &r) const {
  size_t end = r.start + r.count * r.period;
  size_t last = end - r.period;
  for (size_t p = r.start; p < end; ++p) {
    for (OpResult v : ops[p]->getResults()) {
      for (Operation *user : v.getUsers()) {
        Operation *top = block.findAncestorOpInBlock(*user);
        // The terminator is not in `ops`: it comes after everything.
        if (top && top != block.getTerminator() && index.lookup(top) < end)
          continue;
        if (p < last)
          return false;
        bool carried = llvm::any_of(r.uses, [&](const OutsideUse &u) {
          return u.carried && u.from == p - last &&
                 u.result == v.getResultNumber();
        });
        if (!carried)
          return false;
      }
    }
  }
  return true;
}

std::optional<Repeat> Roller::find() {
  size_t n = ops.size();
  SmallVector<llvm::hash_code> hashes;
  hashes.reserve(n);
  for (Operation *op : ops)
    hashes.push_back(OperationEquivalence::computeHash(
        op, OperationEquivalence::ignoreHashValue,
        OperationEquivalence::ignoreHashValue,
        OperationEquivalence::IgnoreLocations));
  std::optional<Repeat> best;
  size_t first = std::max<int64_t>(minOps, 1);
  for (size_t period = first; 2 * period <= n; ++period) {
    size_t i = 0;
    while (i + period < n) {
      if (hashes[i] != hashes[i + period]) {
        ++i;
        continue;
      }
      size_t j = i;
      while (j + period < n && hashes[j] == hashes[j + period])
        ++j;
      // ops[i, j + period) repeat with this period (by hash). Every start
      // in the run is tried while its copies could beat the best so far:
      // the first copies may differ in what they read (the first layer
      // reads the embedding where later ones read the stream), so a
      // repeat may start anywhere in the run.
      size_t runEnd = j + period;
      for (size_t start = i; start + 2 * period <= runEnd; ++start) {
        size_t count = (runEnd - start) / period;
        if (best &&
            static_cast<int64_t>((count - 1) * period) <= best->saved())
          break;
        Repeat r;
        r.start = start;
        r.period = period;
        r.count = verify(start, period, count, r.uses);
        // The last copy stays outside when its other values are used
        // after the sequence.
        while (r.count >= 2 && !escapesAreCarried(r))
          --r.count;
        if (r.count >= 2 && (!best || r.saved() > best->saved()))
          best = std::move(r);
      }
      i = j;
    }
  }
  return best;
}

void Roller::roll(const Repeat &r) {
  Operation *front = ops[r.start];
  OpBuilder b(front);
  Location loc = front->getLoc();
  // One iteration argument per (initial value, carried result) pair.
  llvm::MapVector<std::tuple<Value, unsigned, unsigned>, unsigned> iterIndex;
  SmallVector<Value> inits;
  for (const OutsideUse &u : r.uses) {
    if (!u.carried)
      continue;
    auto key = std::make_tuple(u.init, u.from, u.result);
    if (iterIndex.insert({key, inits.size()}).second)
      inits.push_back(u.init);
  }
  Value lb = arith::ConstantIndexOp::create(b, loc, 0);
  Value ub = arith::ConstantIndexOp::create(b, loc, r.count);
  Value step = arith::ConstantIndexOp::create(b, loc, 1);
  auto loop = scf::ForOp::create(
      b, loc, lb, ub, step, inits,
      [&](OpBuilder &nb, Location, Value iv, ValueRange iters) {
        // Indexed uses read c0 + iv * stride, computed first.
        llvm::MapVector<std::tuple<int64_t, int64_t, Type>, Value> indexed;
        for (const OutsideUse &u : r.uses) {
          if (!u.indexed)
            continue;
          auto key = std::make_tuple(u.c0, u.stride, u.init.getType());
          if (indexed.count(key))
            continue;
          Value scaled = arith::MulIOp::create(
              nb, loc, iv, arith::ConstantIndexOp::create(nb, loc, u.stride));
          Value value = arith::AddIOp::create(
              nb, loc, scaled, arith::ConstantIndexOp::create(nb, loc, u.c0));
          if (!u.init.getType().isIndex())
            value = arith::IndexCastOp::create(nb, loc, u.init.getType(),
                                               value);
          indexed[key] = value;
        }
        IRMapping map;
        SmallVector<Operation *> clones;
        for (size_t i = 0; i < r.period; ++i)
          clones.push_back(nb.clone(*ops[r.start + i], map));
        // Carried uses read the iteration argument.
        unsigned current = ~0u;
        SmallVector<Operation *> walk;
        for (const OutsideUse &u : r.uses) {
          if (u.op != current) {
            current = u.op;
            walk = preorder(clones[u.op]);
          }
          if (u.indexed)
            walk[u.walk]->setOperand(
                u.operand, indexed.lookup(std::make_tuple(
                               u.c0, u.stride, u.init.getType())));
          else if (u.carried)
            walk[u.walk]->setOperand(
                u.operand,
                iters[iterIndex.lookup(std::make_tuple(u.init, u.from,
                                                       u.result))]);
        }
        SmallVector<Value> yields;
        for (auto &[key, idx] : iterIndex)
          yields.push_back(
              clones[std::get<1>(key)]->getResult(std::get<2>(key)));
        scf::YieldOp::create(nb, loc, yields);
      });
  loop->setAttr(moe::kRepeatsAttrName, b.getI64IntegerAttr(r.count));
  // Uses after the sequence read the last iteration's carried values.
  size_t end = r.start + r.count * r.period;
  size_t last = end - r.period;
  for (auto &[key, idx] : iterIndex) {
    Value v = ops[last + std::get<1>(key)]->getResult(std::get<2>(key));
    Value result = loop.getResult(idx);
    v.replaceUsesWithIf(result, [&](OpOperand &use) {
      Operation *top = block.findAncestorOpInBlock(*use.getOwner());
      return top == block.getTerminator() || !index.count(top) ||
             index.lookup(top) >= end;
    });
  }
  for (size_t p = end; p-- > r.start;)
    ops[p]->erase();
}

struct MoeRollRepeatsPass
    : moe::impl::MoeRollRepeatsBase<MoeRollRepeatsPass> {
  using Base::Base;
  void runOnOperation() override {
    moe::rollRepeats(getOperation(), minOps);
  }
};

} // namespace

int64_t mlir::moe::rollRepeats(func::FuncOp func, int64_t minOps) {
  if (func.isExternal() || !func.getBody().hasOneBlock())
    return 0;
  int64_t rolled = 0;
  // Each roll shortens the block; a few rounds find every sequence.
  for (int round = 0; round < 8; ++round) {
    Roller roller(func.getBody().front(), minOps);
    std::optional<Repeat> r = roller.find();
    if (!r)
      break;
    roller.roll(*r);
    ++rolled;
  }
  return rolled;
}

//===- ParallelLoops.cpp - scf.parallel on the runtime's thread pool ----===//
//
// After moe-lower-to-host-abi, every outermost scf.parallel of an entry
// (convert-linalg-to-parallel-loops makes them from linalg's parallel
// dims) runs through the host's parallel_for over its leading dims: the
// first, or, in a loop of three dims or more, all but the last, linearized
// row-major (a [1, 8, T, S] softmax or a [1, T, D] elementwise op would
// otherwise run on one thread: a batch of one). Its body
// moves into a function `void body(closure, begin, end)` that loops over
// [begin, end) of those dims (and over the other dims inside, sequentially,
// so inner loops stay contiguous and vectorizable), the values it uses from
// above are stored in a closure on the stack, and the loop becomes one call of
// parallel_for(frame, 0, n, grain, body, closure). The iterations of an
// scf.parallel are independent and each runs its own reductions in
// order, so the result does not depend on how the range is split: the
// same bits for any thread count. A loop whose body allocates from the
// workspace (the workspace belongs to the entering thread) or reduces
// across iterations (scf.reduce with operands) stays sequential; one whose
// iterations allocate from private slots (moe-lower-to-host-abi's
// moe.private_workspace) does not.
//
// Upstream's async dialect lowering would bring its own runtime; the
// thread pool here is the artifact runtime's (code_abi.h), so the
// outlining is written here.
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/HostAbi.h"
#include "moe/Transforms/Passes.h"
#include "moe/Utils/BuildUtils.h"

#include "moe/code_abi.h"

#include "mlir/Conversion/LLVMCommon/TypeConverter.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/ViewLikeInterface.h"
#include "mlir/Transforms/RegionUtils.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEPARALLELLOOPSTOHOST
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

constexpr StringLiteral kAllocFn = moe::kWorkspaceAllocFn;

/// Whether `address` is `frame` or a constant offset into it.
bool isFrameAddress(Value address, Value frame) {
  if (address == frame)
    return true;
  auto gep = address.getDefiningOp<LLVM::GEPOp>();
  return gep && gep.getBase() == frame;
}

/// Whether `loop` may run its iterations on several threads.
bool mayRunInParallel(scf::ParallelOp loop, Value frame) {
  if (loop.getNumReductions() != 0)
    return false;
  // moe-lower-to-host-abi gave the iterations of a loop so marked private
  // workspace slots: their allocations and the slot's words are theirs.
  bool privateSlots = loop->hasAttr(moe::kPrivateWorkspaceAttrName);
  WalkResult r = loop.getBody()->walk([&](Operation *op) {
    // Workspace allocations and the workspace words (save/restore).
    if (auto call = dyn_cast<LLVM::CallOp>(op))
      if (call.getCallee() && *call.getCallee() == kAllocFn &&
          (!privateSlots || call.getArgOperands()[0] == frame))
        return WalkResult::interrupt();
    if (auto store = dyn_cast<LLVM::StoreOp>(op))
      if (!privateSlots || isFrameAddress(store.getAddr(), frame))
        return WalkResult::interrupt();
    if (isa<memref::AllocOp, memref::AllocaOp, func::CallOp>(op))
      return WalkResult::interrupt();
    return WalkResult::advance();
  });
  return !r.wasInterrupted();
}

/// The work of a parallel loop's iteration, in units: one per operation,
/// one per 8 elements of a vector operation (a 256-bit register's worth),
/// a loop's body (plus one) times its trip count, the costlier branch of
/// an scf.if or scf.index_switch; one for a register move of unrolled
/// vectors (vector.extract, insert, ...) whatever its width. Constants,
/// views and terminators are free. A trip count is a constant
/// or computed where the loop is called, from bounds defined above it; an
/// scf.while counts only as a countdown of constant bound (countdownTrips:
/// the insertion walk of the top-k). Where a bound is defined inside (or
/// an op has regions of another kind, or an scf.while is not a countdown)
/// the work is unknown and the loop is taken to be large. Values saturate
/// at `cap` (min-chunk-work), so no product overflows.
class WorkEstimate {
public:
  WorkEstimate(Operation *loop, int64_t cap) : loop(loop), cap(cap) {}

  /// A term: `constant` if `kind` is Constant, else the trip count of
  /// (lb, ub, step), or the sum, product or maximum of two terms.
  struct Term {
    enum Kind { Constant, Trips, Add, Mul, Max } kind = Constant;
    int64_t constant = 0;
    Value lb, ub, step;
    std::shared_ptr<Term> lhs, rhs;
  };
  using TermPtr = std::shared_ptr<Term>;

  std::optional<TermPtr> ofBlock(Block &block);
  std::optional<TermPtr> ofTrips(ValueRange lbs, ValueRange ubs,
                                 ValueRange steps);
  TermPtr combine(Term::Kind kind, TermPtr a, TermPtr b);
  TermPtr constant(int64_t c) {
    auto t = std::make_shared<Term>();
    t->constant = std::min(std::max<int64_t>(c, 0), cap);
    return t;
  }
  /// `term` as an index value at `b`'s insertion point (clamped to cap).
  Value materialize(OpBuilder &b, Location loc, const Term &term);

private:
  bool definedAbove(Value v) {
    Operation *owner = v.getDefiningOp();
    if (!owner)
      owner = cast<BlockArgument>(v).getOwner()->getParentOp();
    return !loop->isAncestor(owner);
  }
  Operation *loop;
  int64_t cap;
};

WorkEstimate::TermPtr WorkEstimate::combine(Term::Kind kind, TermPtr a,
                                            TermPtr b) {
  if (a->kind == Term::Constant && b->kind == Term::Constant) {
    int64_t x = a->constant, y = b->constant;
    switch (kind) {
    case Term::Add:
      return constant(x + y); // Both <= cap <= 2^31.
    case Term::Mul:
      return constant(x == 0 || y <= cap / x ? x * y : cap);
    case Term::Max:
      return constant(std::max(x, y));
    default:
      llvm_unreachable("not a combination");
    }
  }
  // Identities: x + 0, x * 1, max(x, 0) (terms are never negative), x * 0.
  auto is = [](const TermPtr &t, int64_t c) {
    return t->kind == Term::Constant && t->constant == c;
  };
  if (kind == Term::Mul && (is(a, 0) || is(b, 0)))
    return constant(0);
  int64_t identity = kind == Term::Mul ? 1 : 0;
  if (is(a, identity))
    return b;
  if (is(b, identity))
    return a;
  auto t = std::make_shared<Term>();
  t->kind = kind;
  t->lhs = std::move(a);
  t->rhs = std::move(b);
  return t;
}

std::optional<WorkEstimate::TermPtr>
WorkEstimate::ofTrips(ValueRange lbs, ValueRange ubs, ValueRange steps) {
  TermPtr trips = constant(1);
  for (auto [lb, ub, step] : llvm::zip(lbs, ubs, steps)) {
    std::optional<int64_t> l = getConstantIntValue(lb),
                           u = getConstantIntValue(ub),
                           s = getConstantIntValue(step);
    TermPtr dim;
    if (!lb.getType().isIndex() || !ub.getType().isIndex() ||
        !step.getType().isIndex())
      return std::nullopt; // (Integer-typed scf.for bounds: not estimated.)
    if (l && u && s && *s > 0) {
      dim = constant(*u > *l ? llvm::divideCeil(*u - *l, *s) : 0);
    } else if (definedAbove(lb) && definedAbove(ub) && definedAbove(step)) {
      dim = std::make_shared<Term>();
      dim->kind = Term::Trips;
      dim->lb = lb;
      dim->ub = ub;
      dim->step = step;
    } else {
      return std::nullopt;
    }
    trips = combine(Term::Mul, trips, dim);
  }
  return trips;
}

/// Whether `cond` holds only where `p > 0`: `p` compared unsigned
/// greater than, or not equal to, 0, alone or in a conjunction.
static bool requiresPositive(Value cond, Value p) {
  if (auto conj = cond.getDefiningOp<arith::AndIOp>())
    return requiresPositive(conj.getLhs(), p) ||
           requiresPositive(conj.getRhs(), p);
  auto cmp = cond.getDefiningOp<arith::CmpIOp>();
  return cmp && cmp.getLhs() == p && isConstantIntValue(cmp.getRhs(), 0) &&
         (cmp.getPredicate() == arith::CmpIPredicate::ugt ||
          cmp.getPredicate() == arith::CmpIPredicate::ne);
}

/// The most iterations of a countdown scf.while: one that continues only
/// while a carried index p > 0, passes p on to its body, which yields
/// p - 1 in p's place, and starts p at a constant c or at minui(x, c): at
/// most c iterations (p goes down by one from at most c, and 0 stops it).
/// moe.route's top-k insertion walk has this form (BuildUtils.cpp,
/// topKLargestWithHooks: at most k - 1 moves). Other loops: unknown.
static std::optional<int64_t> countdownTrips(scf::WhileOp loop) {
  scf::ConditionOp cond = loop.getConditionOp();
  Block &after = loop.getAfter().front();
  auto yield = cast<scf::YieldOp>(after.getTerminator());
  for (auto [i, p] : llvm::enumerate(loop.getBeforeArguments())) {
    if (!p.getType().isIndex() || !requiresPositive(cond.getCondition(), p))
      continue;
    for (auto [j, passed] : llvm::enumerate(cond.getArgs())) {
      auto next = yield.getOperand(i).getDefiningOp<arith::SubIOp>();
      if (passed != p || !next || next.getLhs() != after.getArgument(j) ||
          !isConstantIntValue(next.getRhs(), 1))
        continue;
      Value init = loop.getInits()[i];
      if (std::optional<int64_t> c = getConstantIntValue(init); c && *c >= 0)
        return *c;
      if (auto min = init.getDefiningOp<arith::MinUIOp>())
        for (Value side : {min.getLhs(), min.getRhs()})
          if (std::optional<int64_t> c = getConstantIntValue(side);
              c && *c >= 0)
            return *c;
    }
  }
  return std::nullopt;
}

std::optional<WorkEstimate::TermPtr> WorkEstimate::ofBlock(Block &block) {
  TermPtr work = constant(0);
  for (Operation &op : block) {
    if (op.hasTrait<OpTrait::IsTerminator>() ||
        op.hasTrait<OpTrait::ConstantLike>() || isa<ViewLikeOpInterface>(op))
      continue;
    TermPtr cost;
    if (isa<scf::ForOp, scf::ParallelOp>(op)) {
      std::optional<TermPtr> trips;
      if (auto f = dyn_cast<scf::ForOp>(op))
        trips = ofTrips(ValueRange{f.getLowerBound()},
                        ValueRange{f.getUpperBound()}, ValueRange{f.getStep()});
      else if (auto p = dyn_cast<scf::ParallelOp>(op))
        trips = ofTrips(p.getLowerBound(), p.getUpperBound(), p.getStep());
      std::optional<TermPtr> body = ofBlock(op.getRegion(0).front());
      if (!trips || !body)
        return std::nullopt;
      cost = combine(Term::Mul, *trips, combine(Term::Add, *body, constant(1)));
    } else if (isa<scf::IfOp, scf::IndexSwitchOp>(op)) {
      TermPtr most = constant(0);
      for (Region &region : op.getRegions()) {
        if (region.empty())
          continue;
        std::optional<TermPtr> w = ofBlock(region.front());
        if (!w)
          return std::nullopt;
        most = combine(Term::Max, most, *w);
      }
      cost = combine(Term::Add, most, constant(1));
    } else if (auto loop = dyn_cast<scf::WhileOp>(op)) {
      // Both regions (plus one) per iteration, and the last check.
      std::optional<int64_t> trips = countdownTrips(loop);
      std::optional<TermPtr> before = ofBlock(loop.getBefore().front()),
                             after = ofBlock(loop.getAfter().front());
      if (!trips || !before || !after)
        return std::nullopt;
      cost = combine(
          Term::Add,
          combine(Term::Mul, constant(*trips),
                  combine(Term::Add, combine(Term::Add, *before, *after),
                          constant(1))),
          *before);
    } else if (op.getNumRegions() != 0) {
      return std::nullopt;
    } else if (auto copy = dyn_cast<memref::CopyOp>(op)) {
      auto type = cast<MemRefType>(copy.getSource().getType());
      if (!type.hasStaticShape())
        return std::nullopt;
      cost = constant(
          llvm::divideCeil(std::max<int64_t>(type.getNumElements(), 1), 8));
    } else if (isa<vector::ExtractOp, vector::InsertOp,
                   vector::ExtractStridedSliceOp, vector::ShapeCastOp>(op)) {
      cost = constant(1); // Register moves once the vectors are unrolled.
    } else {
      // A vector op by the vector it makes (or, a store, writes).
      int64_t elements = 1;
      TypeRange types = op.getNumResults() ? TypeRange(op.getResultTypes())
                                           : TypeRange(op.getOperandTypes());
      for (Type t : types)
        if (auto v = dyn_cast<VectorType>(t))
          elements = std::max(elements, v.getNumElements());
      cost = constant(llvm::divideCeil(elements, 8));
    }
    work = combine(Term::Add, work, cost);
  }
  return work;
}

Value WorkEstimate::materialize(OpBuilder &b, Location loc, const Term &term) {
  // (combine folds constants: the ops made here have a run-time operand.)
  auto clamp = [&](Value v) {
    return arith::MinUIOp::create(b, loc, v,
                                  arith::ConstantIndexOp::create(b, loc, cap));
  };
  switch (term.kind) {
  case Term::Constant:
    return arith::ConstantIndexOp::create(b, loc, term.constant);
  case Term::Trips: {
    // max(ub - lb, 0) / step, rounded up (a step below 1 counts as 1).
    Value span = term.ub;
    if (getConstantIntValue(term.lb) != 0)
      span = arith::SubIOp::create(b, loc, span, term.lb);
    span = arith::MaxSIOp::create(b, loc, span,
                                  arith::ConstantIndexOp::create(b, loc, 0));
    std::optional<int64_t> stepConstant = getConstantIntValue(term.step);
    if (stepConstant && *stepConstant <= 1)
      return clamp(span);
    Value step = term.step;
    if (!stepConstant)
      step = arith::MaxSIOp::create(b, loc, step,
                                    arith::ConstantIndexOp::create(b, loc, 1));
    else
      step = arith::ConstantIndexOp::create(b, loc, *stepConstant);
    return clamp(arith::CeilDivUIOp::create(b, loc, span, step));
  }
  case Term::Add:
  case Term::Mul:
  case Term::Max: {
    Value x = materialize(b, loc, *term.lhs);
    Value y = materialize(b, loc, *term.rhs);
    if (term.kind == Term::Max)
      return arith::MaxUIOp::create(b, loc, x, y);
    // Both <= cap <= 2^31: neither the sum nor the product overflows.
    if (term.kind == Term::Add)
      return clamp(arith::AddIOp::create(b, loc, x, y));
    return clamp(arith::MulIOp::create(b, loc, x, y));
  }
  }
  llvm_unreachable("unknown term");
}

class Outliner {
public:
  Outliner(ModuleOp module, Value frame, int64_t grainWork, int64_t maxChunks,
           int64_t minChunkWork, bool splitLeadingDims)
      : module(module), frame(frame), converter(module.getContext()),
        grainWork(grainWork), maxChunks(maxChunks), minChunkWork(minChunkWork),
        splitLeadingDims(splitLeadingDims) {}

  LogicalResult outline(scf::ParallelOp loop, unsigned id);

private:
  Type llvmTypeOf(Type t) {
    if (t.isIndex())
      return IntegerType::get(t.getContext(), 64);
    if (isa<MemRefType>(t))
      return converter.convertType(t);
    return t;
  }
  Value toLlvm(OpBuilder &b, Location loc, Value v) {
    Type t = v.getType();
    if (t.isIndex())
      return arith::IndexCastOp::create(b, loc, b.getI64Type(), v);
    if (isa<MemRefType>(t))
      return UnrealizedConversionCastOp::create(b, loc, llvmTypeOf(t), v)
          .getResult(0);
    return v;
  }
  Value fromLlvm(OpBuilder &b, Location loc, Value v, Type t) {
    if (t.isIndex())
      return arith::IndexCastOp::create(b, loc, b.getIndexType(), v);
    if (isa<MemRefType>(t))
      return UnrealizedConversionCastOp::create(b, loc, t, v).getResult(0);
    return v;
  }

  ModuleOp module;
  Value frame;
  LLVMTypeConverter converter;
  int64_t grainWork;
  int64_t maxChunks;
  int64_t minChunkWork;
  bool splitLeadingDims;
};

/// The body function's name: `__moe_parallel_body_<id>`, followed by the
/// first name in the loop's location (the ONNX node it comes from, through
/// the importer's NameLoc, and the part of it where a decomposition named
/// one: build::partLoc's "<node>.<part>" around the node's name), its
/// characters outside [A-Za-z0-9_.] as '_', at most kMaxNameChars of them,
/// of which up to kMaxPartChars for the part (a long node name is cut
/// first): so that a profile of the code (moe-run --profile) says which
/// node, and which part of it, each loop computes.
std::string bodyName(Location loc, unsigned id) {
  constexpr size_t kMaxNameChars = 48, kMaxPartChars = 24;
  std::string name = "__moe_parallel_body_" + std::to_string(id);
  StringRef full = moe::build::locationName(loc);
  if (full.empty())
    return name;
  // The node: the shortest name inside `loc` that `full` extends.
  StringRef node = full;
  loc->walk([&](Location l) {
    if (auto named = dyn_cast<NameLoc>(l)) {
      StringRef n = named.getName().getValue();
      if (!n.empty() && n.size() < node.size() && full.starts_with(n))
        node = n;
    }
    return WalkResult::advance();
  });
  StringRef part = full.drop_front(node.size()).take_front(kMaxPartChars);
  name += '_';
  std::string kept =
      node.take_front(kMaxNameChars - part.size()).str() + part.str();
  for (char c : kept)
    name += llvm::isAlnum(c) || c == '_' || c == '.' ? c : '_';
  return name;
}

/// The trip count of (lb, ub, step), 0 where ub <= lb; step > 0.
Value tripCount(OpBuilder &b, Location loc, Value lb, Value ub, Value step) {
  Value span =
      arith::MaxSIOp::create(b, loc, arith::SubIOp::create(b, loc, ub, lb),
                             arith::ConstantIndexOp::create(b, loc, 0));
  Value stepM1 = arith::SubIOp::create(
      b, loc, step, arith::ConstantIndexOp::create(b, loc, 1));
  return arith::DivUIOp::create(
      b, loc, arith::AddIOp::create(b, loc, span, stepM1), step);
}

LogicalResult Outliner::outline(scf::ParallelOp loop, unsigned id) {
  MLIRContext *ctx = module.getContext();
  Location loc = loop.getLoc();
  IRRewriter rewriter(ctx);
  // The captured values and the closure's type.
  SetVector<Value> captured;
  getUsedValuesDefinedAbove(loop.getRegion(), captured);
  // The body computes lb + i * step itself, and loops over the other dims
  // (an scf.parallel of the remaining dims, run sequentially: only the
  // leading dims are split, so inner loops stay contiguous and
  // vectorizable).
  unsigned dims = loop.getNumLoops();
  unsigned split = splitLeadingDims && dims >= 3 ? dims - 1 : 1;
  for (unsigned d = 0; d < dims; ++d) {
    captured.insert(loop.getLowerBound()[d]);
    captured.insert(loop.getStep()[d]);
    if (d > 0)
      captured.insert(loop.getUpperBound()[d]);
  }
  // Constants are cloned into the body, not passed: loop bounds, strides
  // and sizes must stay known to LLVM there (and vector constants of the
  // register tiles have no closure field type).
  SmallVector<Operation *> constants;
  SetVector<Value> passed;
  for (Value v : captured) {
    Operation *def = v.getDefiningOp();
    if (def && def->hasTrait<OpTrait::ConstantLike>())
      constants.push_back(def);
    else
      passed.insert(v);
  }
  captured = std::move(passed);
  for (Value v : captured) {
    Type t = v.getType();
    if (!t.isIntOrIndexOrFloat() && !isa<MemRefType, LLVM::LLVMPointerType>(t))
      return loop.emitError() << "moe-parallel-loops-to-host: cannot pass a "
                              << t << " to a parallel body";
  }
  SmallVector<Type> fields;
  for (Value v : captured)
    fields.push_back(llvmTypeOf(v.getType()));
  auto closureType = LLVM::LLVMStructType::getLiteral(ctx, fields);
  auto ptr = LLVM::LLVMPointerType::get(ctx);
  auto i64 = IntegerType::get(ctx, 64);

  // The body function: for (i = begin; i < end; ++i) body(lb + i * step).
  OpBuilder mb = OpBuilder::atBlockEnd(module.getBody());
  std::string name = bodyName(loc, id);
  auto fn = func::FuncOp::create(
      mb, loc, name, FunctionType::get(ctx, {ptr, i64, i64}, {}));
  fn.setPrivate();
  Block *entry = fn.addEntryBlock();
  OpBuilder fb = OpBuilder::atBlockEnd(entry);
  Value closure = LLVM::LoadOp::create(fb, loc, closureType,
                                       entry->getArgument(0));
  IRMapping map;
  for (Operation *c : constants)
    if (!map.contains(c->getResult(0)))
      fb.clone(*c, map);
  for (auto [i, v] : llvm::enumerate(captured)) {
    Value field = LLVM::ExtractValueOp::create(fb, loc, closure,
                                               ArrayRef<int64_t>{(int64_t)i});
    map.map(v, fromLlvm(fb, loc, field, v.getType()));
  }
  Value begin = arith::IndexCastOp::create(fb, loc, fb.getIndexType(),
                                           entry->getArgument(1));
  Value end = arith::IndexCastOp::create(fb, loc, fb.getIndexType(),
                                         entry->getArgument(2));
  Value one = arith::ConstantIndexOp::create(fb, loc, 1);
  auto inner = scf::ForOp::create(fb, loc, begin, end, one);
  func::ReturnOp::create(fb, loc);
  {
    OpBuilder ib = OpBuilder::atBlockBegin(inner.getBody());
    // The split dims' indices from the linear one, last dim fastest: their
    // trip counts (all but the first's) are computed once, before the
    // loop. The loop runs only where every trip count is positive.
    SmallVector<Value> trips(split);
    {
      OpBuilder::InsertionGuard guard(fb);
      fb.setInsertionPoint(inner);
      for (unsigned d = 1; d < split; ++d)
        trips[d] =
            tripCount(fb, loc, map.lookupOrDefault(loop.getLowerBound()[d]),
                      map.lookupOrDefault(loop.getUpperBound()[d]),
                      map.lookupOrDefault(loop.getStep()[d]));
    }
    Value rest = inner.getInductionVar();
    for (int d = static_cast<int>(split) - 1; d >= 0; --d) {
      Value i = d == 0 ? rest : arith::RemUIOp::create(ib, loc, rest, trips[d]);
      if (d > 0)
        rest = arith::DivUIOp::create(ib, loc, rest, trips[d]);
      Value lb = map.lookupOrDefault(loop.getLowerBound()[d]);
      Value step = map.lookupOrDefault(loop.getStep()[d]);
      map.map(loop.getInductionVars()[d],
              arith::AddIOp::create(ib, loc, lb,
                                    arith::MulIOp::create(ib, loc, i, step)));
    }
    ib.setInsertionPoint(inner.getBody()->getTerminator());
    if (dims == split) {
      for (Operation &op : loop.getBody()->without_terminator())
        ib.clone(op, map);
    } else {
      auto mapped = [&](ValueRange vs) {
        return llvm::map_to_vector(vs.drop_front(split), [&](Value v) {
          return map.lookupOrDefault(v);
        });
      };
      auto rest = scf::ParallelOp::create(
          ib, loc, mapped(loop.getLowerBound()), mapped(loop.getUpperBound()),
          mapped(loop.getStep()));
      for (unsigned d = split; d < dims; ++d)
        map.map(loop.getInductionVars()[d], rest.getInductionVars()[d - split]);
      OpBuilder rb = OpBuilder::atBlockBegin(rest.getBody());
      rb.setInsertionPoint(rest.getBody()->getTerminator());
      for (Operation &op : loop.getBody()->without_terminator())
        rb.clone(op, map);
    }
  }

  // The call: closure on the stack, parallel_for over the trip count.
  OpBuilder b(loop);
  Value trips = tripCount(b, loc, loop.getLowerBound()[0],
                          loop.getUpperBound()[0], loop.getStep()[0]);
  for (unsigned d = 1; d < split; ++d)
    trips = arith::MulIOp::create(b, loc, trips,
                                  tripCount(b, loc, loop.getLowerBound()[d],
                                            loop.getUpperBound()[d],
                                            loop.getStep()[d]));
  Value tripsI = arith::IndexCastOp::create(b, loc, i64, trips);
  Value packed = LLVM::PoisonOp::create(b, loc, closureType);
  for (auto [i, v] : llvm::enumerate(captured))
    packed = LLVM::InsertValueOp::create(b, loc, packed, toLlvm(b, loc, v),
                                         ArrayRef<int64_t>{(int64_t)i});
  Value slot;
  {
    OpBuilder::InsertionGuard guard(b);
    auto parent = loop->getParentOfType<func::FuncOp>();
    b.setInsertionPointToStart(&parent.getBody().front());
    slot = LLVM::AllocaOp::create(
        b, loc, ptr, closureType,
        LLVM::ConstantOp::create(b, loc, i64, b.getI64IntegerAttr(1)));
  }
  LLVM::StoreOp::create(b, loc, packed, slot);
  Value bodyFn = UnrealizedConversionCastOp::create(
                     b, loc, ptr,
                     func::ConstantOp::create(b, loc, fn.getFunctionType(),
                                              SymbolRefAttr::get(fn))
                         .getResult())
                     .getResult(0);
  Value pfor = moe::loadHostFunction(b, loc, frame, MOE_HOST_PARALLEL_FOR);
  // Chunks of at least grainWork iterations, and at most maxChunks of them
  // (one call and one atomic per chunk; a loop of 256 x 8000 logits was
  // 256 of each before), and of at least minChunkWork units of work: a
  // fork-join costs about as much as 3-5 us of work on two threads (a
  // decode step's 300 loops of a few stores each took longer split than
  // alone). The split depends on the trip count and the sizes only, so it
  // does not change the result.
  int64_t leastGrain = grainWork;
  Value leastAtRunTime;
  if (minChunkWork > 0) {
    int64_t cap = std::min<int64_t>(minChunkWork, int64_t(1) << 31);
    WorkEstimate estimate(loop, cap);
    // One iteration of the split dims runs the other dims inside it.
    std::optional<WorkEstimate::TermPtr> body =
        estimate.ofBlock(*loop.getBody());
    std::optional<WorkEstimate::TermPtr> rest =
        estimate.ofTrips(loop.getLowerBound().drop_front(split),
                         loop.getUpperBound().drop_front(split),
                         loop.getStep().drop_front(split));
    if (body && rest) {
      WorkEstimate::TermPtr perIteration =
          estimate.combine(WorkEstimate::Term::Mul, *rest,
                           estimate.combine(WorkEstimate::Term::Add, *body,
                                            estimate.constant(1)));
      if (perIteration->kind == WorkEstimate::Term::Constant) {
        leastGrain = std::max<int64_t>(
            leastGrain, llvm::divideCeil(
                            cap, std::max<int64_t>(perIteration->constant, 1)));
      } else {
        // At run time: ceil(cap / max(work, 1)).
        Value work = estimate.materialize(b, loc, *perIteration);
        Value least = arith::CeilDivUIOp::create(
            b, loc, arith::ConstantIndexOp::create(b, loc, cap),
            arith::MaxUIOp::create(b, loc, work,
                                   arith::ConstantIndexOp::create(b, loc, 1)));
        leastAtRunTime = arith::IndexCastOp::create(b, loc, i64, least);
      }
    }
  }
  Value grain =
      LLVM::ConstantOp::create(b, loc, i64, b.getI64IntegerAttr(leastGrain));
  if (leastAtRunTime)
    grain = arith::MaxUIOp::create(b, loc, grain, leastAtRunTime);
  if (maxChunks > 0) {
    Value perChunk = arith::CeilDivUIOp::create(
        b, loc, tripsI,
        arith::ConstantIntOp::create(b, loc, i64, maxChunks));
    grain = arith::MaxUIOp::create(b, loc, grain, perChunk);
  }
  Value zero = LLVM::ConstantOp::create(b, loc, i64, b.getI64IntegerAttr(0));
  auto pforType = LLVM::LLVMFunctionType::get(
      LLVM::LLVMVoidType::get(ctx), {ptr, i64, i64, i64, ptr, ptr});
  LLVM::CallOp::create(b, loc, pforType,
                       ValueRange{pfor, frame, zero, tripsI, grain, bodyFn,
                                  slot});
  loop.erase();
  return success();
}

struct MoeParallelLoopsToHostPass
    : mlir::moe::impl::MoeParallelLoopsToHostBase<MoeParallelLoopsToHostPass> {
  using Base::Base;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    unsigned id = 0;
    SmallVector<func::FuncOp> entries;
    for (auto fn : module.getOps<func::FuncOp>())
      if (!fn.isExternal() && fn.getSymName().starts_with(prefix) &&
          fn.getNumArguments() == 1 &&
          isa<LLVM::LLVMPointerType>(fn.getArgument(0).getType()))
        entries.push_back(fn);
    for (func::FuncOp fn : entries) {
      // Outermost parallel loops only (an inner one runs inside a body).
      SmallVector<scf::ParallelOp> loops;
      fn.walk<WalkOrder::PreOrder>([&](scf::ParallelOp loop) {
        if (mayRunInParallel(loop, fn.getArgument(0)))
          loops.push_back(loop);
        return WalkResult::skip();
      });
      Outliner outliner(module, fn.getArgument(0), grain, maxChunks,
                        minChunkWork, splitLeadingDims);
      for (scf::ParallelOp loop : loops)
        if (failed(outliner.outline(loop, id++)))
          return signalPassFailure();
    }
  }
};

} // namespace

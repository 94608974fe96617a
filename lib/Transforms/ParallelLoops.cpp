//===- ParallelLoops.cpp - scf.parallel on the runtime's thread pool -------===//
//
// After moe-lower-to-host-abi, every outermost scf.parallel of an entry
// (convert-linalg-to-parallel-loops makes them from linalg's parallel
// dims) runs through the host's parallel_for over its first dim: its body
// moves into a function `void body(closure, begin, end)` that loops over
// [begin, end) of that dim (and over the other dims inside, sequentially,
// so inner loops stay contiguous and vectorizable), the values it uses from above are
// stored in a closure on the stack, and the loop becomes one call of
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

#include "moe/code_abi.h"

#include "mlir/Conversion/LLVMCommon/TypeConverter.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"
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

class Outliner {
public:
  Outliner(ModuleOp module, Value frame, int64_t grainWork, int64_t maxChunks)
      : module(module), frame(frame), converter(module.getContext()),
        grainWork(grainWork), maxChunks(maxChunks) {}

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
};

LogicalResult Outliner::outline(scf::ParallelOp loop, unsigned id) {
  MLIRContext *ctx = module.getContext();
  Location loc = loop.getLoc();
  IRRewriter rewriter(ctx);
  // The captured values and the closure's type.
  SetVector<Value> captured;
  getUsedValuesDefinedAbove(loop.getRegion(), captured);
  // The body computes lb + i * step itself, and loops over the other dims
  // (an scf.parallel of the remaining dims, run sequentially: only the
  // first dim is split, so inner loops stay contiguous and vectorizable).
  for (unsigned d = 0; d < loop.getNumLoops(); ++d) {
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
  std::string name = "__moe_parallel_body_" + std::to_string(id);
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
    Value lb = map.lookupOrDefault(loop.getLowerBound()[0]);
    Value step = map.lookupOrDefault(loop.getStep()[0]);
    Value iv = arith::AddIOp::create(
        ib, loc, lb,
        arith::MulIOp::create(ib, loc, inner.getInductionVar(), step));
    map.map(loop.getInductionVars()[0], iv);
    ib.setInsertionPoint(inner.getBody()->getTerminator());
    if (loop.getNumLoops() == 1) {
      for (Operation &op : loop.getBody()->without_terminator())
        ib.clone(op, map);
    } else {
      auto mapped = [&](ValueRange vs) {
        return llvm::map_to_vector(
            vs.drop_front(), [&](Value v) { return map.lookupOrDefault(v); });
      };
      auto rest = scf::ParallelOp::create(
          ib, loc, mapped(loop.getLowerBound()), mapped(loop.getUpperBound()),
          mapped(loop.getStep()));
      for (unsigned d = 1; d < loop.getNumLoops(); ++d)
        map.map(loop.getInductionVars()[d], rest.getInductionVars()[d - 1]);
      OpBuilder rb = OpBuilder::atBlockBegin(rest.getBody());
      rb.setInsertionPoint(rest.getBody()->getTerminator());
      for (Operation &op : loop.getBody()->without_terminator())
        rb.clone(op, map);
    }
  }

  // The call: closure on the stack, parallel_for over the trip count.
  OpBuilder b(loop);
  Value lb = loop.getLowerBound()[0], ub = loop.getUpperBound()[0],
        st = loop.getStep()[0];
  Value span = arith::SubIOp::create(b, loc, ub, lb);
  Value stepM1 = arith::SubIOp::create(
      b, loc, st, arith::ConstantIndexOp::create(b, loc, 1));
  Value trips = arith::DivUIOp::create(
      b, loc,
      arith::AddIOp::create(
          b, loc, arith::MaxSIOp::create(b, loc, span,
                                         arith::ConstantIndexOp::create(b, loc, 0)),
          stepM1),
      st);
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
  // 256 of each before). The split depends on the trip count only, so it
  // does not change the result.
  Value grain = LLVM::ConstantOp::create(b, loc, i64,
                                         b.getI64IntegerAttr(grainWork));
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
      Outliner outliner(module, fn.getArgument(0), grain, maxChunks);
      for (scf::ParallelOp loop : loops)
        if (failed(outliner.outline(loop, id++)))
          return signalPassFailure();
    }
  }
};

} // namespace

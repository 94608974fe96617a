//===- HostAbi.cpp - put the entry function on the runtime's code ABI ------===//
//
// Rewrites the bufferized entry function into a function of one argument,
// the runtime's `moe_frame` (runtime/include/moe/code_abi.h):
//
//  - inputs and weights are read from the frame (data pointers and dims);
//  - results are written into buffers the runtime owns: a result allocated
//    in the entry block is allocated in its output buffer (no copy); any
//    other result (an input, a constant, a loop result) is copied into it
//    at the return;
//  - every other memref.alloc takes its bytes from the run's workspace arena
//    with an inline bump allocation; a block whose allocations cannot leave
//    it (it yields no memref but its own arguments) gives them back when it
//    ends, so a loop reuses the same bytes every iteration; the loop over a
//    model's repeats carries its state in a pair of buffers from before the
//    loop so that it qualifies (carryRepeatsInPlace);
//  - `moe_report_error` calls go through the host table;
//  - memref.copy that memref-to-llvm would not make a memcpy (from or to a
//    view, also through memref.cast) becomes linalg.copy (loops), so that
//    nothing calls MLIR's `memrefCopy`.
//
// Upstream's buffer-results-to-out-params needs the caller to know every
// result's shape before the call; a result whose shape the code computes
// (a dynamic dim) is allocated here through output_alloc instead, once
// the code knows its dims. Upstream has no arena allocation of
// memref.alloc, so that is written here too.
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/HostAbi.h"
#include "moe/Transforms/Passes.h"
#include "moe/Transforms/Transforms.h"

#include "moe/Utils/BuildUtils.h"
#include "moe/Utils/RuntimeErrors.h"
#include "moe/code_abi.h"

#include "mlir/Conversion/LLVMCommon/MemRefBuilder.h"
#include "mlir/Conversion/LLVMCommon/TypeConverter.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/ValueBoundsOpInterface.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOELOWERTOHOSTABI
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

constexpr uint64_t kAlign = MOE_WORKSPACE_ALIGNMENT;
constexpr StringLiteral kErrorHook = "moe_report_error";
constexpr StringLiteral kAllocFn = moe::kWorkspaceAllocFn;

/// Bytes of one element of a memref as LLVM lays it out (i1 is stored as a
/// byte), or 0 for an element type the ABI does not take (vectors,
/// complex numbers, odd widths such as i24 or f80, whose LLVM size is not
/// their bit width rounded to bytes).
uint64_t elementBytes(Type t) {
  if (t.isIndex())
    return 8;
  if (!t.isIntOrFloat())
    return 0;
  unsigned bits = t.getIntOrFloatBitWidth();
  if (bits == 1)
    return 1;
  if (bits < 8 || bits > 64 || !llvm::isPowerOf2_32(bits))
    return 0;
  return bits / 8;
}

/// a * b, saturated at kMaxBytes (then the size counts as unknown).
constexpr uint64_t kMaxBytes = uint64_t(1) << 62;
uint64_t saturatingMul(uint64_t a, uint64_t b) {
  uint64_t r;
  return __builtin_mul_overflow(a, b, &r) || r > kMaxBytes ? kMaxBytes : r;
}

/// IR building against the frame.
struct FrameBuilder {
  OpBuilder &b;
  Value frame;
  const LLVMTypeConverter &converter;

  Type ptrType() { return LLVM::LLVMPointerType::get(b.getContext()); }
  Type i64Type() { return b.getI64Type(); }

  Value i64(Location loc, int64_t v) {
    return arith::ConstantIntOp::create(b, loc, v, 64);
  }
  /// `base + offset` bytes.
  Value byteAddress(Location loc, Value base, Value offset) {
    return LLVM::GEPOp::create(b, loc, ptrType(), b.getI8Type(), base,
                               ValueRange{offset});
  }
  Value byteAddress(Location loc, Value base, int64_t offset) {
    return LLVM::GEPOp::create(b, loc, ptrType(), b.getI8Type(), base,
                               ArrayRef<LLVM::GEPArg>{offset});
  }
  Value loadPtr(Location loc, Value base, int64_t offset) {
    return moe::loadPointerAt(b, loc, base, offset);
  }
  /// The `index`-th pointer of the pointer array at frame field `field`.
  Value framePointer(Location loc, int64_t field, int64_t index) {
    Value array = loadPtr(loc, frame, field);
    return loadPtr(loc, array, 8 * index);
  }
  /// The host function in slot `slot` of the host table.
  Value hostFunction(Location loc, int64_t slot) {
    return moe::loadHostFunction(b, loc, frame, slot);
  }

  /// A memref of `type` (identity layout) over the dense row-major buffer
  /// at `ptr`; `dims` holds one i64 per dim of the type.
  Value memrefAt(Location loc, Value ptr, MemRefType type,
                 ArrayRef<Value> dims) {
    Type descType = converter.convertType(type);
    auto desc = MemRefDescriptor::poison(b, loc, descType);
    desc.setAllocatedPtr(b, loc, ptr);
    desc.setAlignedPtr(b, loc, ptr);
    desc.setConstantOffset(b, loc, 0);
    Value stride = i64(loc, 1);
    for (int64_t d = type.getRank() - 1; d >= 0; --d) {
      desc.setSize(b, loc, d, dims[d]);
      desc.setStride(b, loc, d, stride);
      if (d > 0)
        stride = arith::MulIOp::create(b, loc, stride, dims[d]);
    }
    return UnrealizedConversionCastOp::create(b, loc, type, Value(desc))
        .getResult(0);
  }

  /// The dims of a memref.alloc-like shape: static ones as constants,
  /// dynamic ones from `dynamicSizes` (index values), all as i64.
  SmallVector<Value> dimsOf(Location loc, MemRefType type,
                            ValueRange dynamicSizes) {
    SmallVector<Value> dims;
    unsigned next = 0;
    for (int64_t d = 0; d < type.getRank(); ++d) {
      if (!type.isDynamicDim(d)) {
        dims.push_back(i64(loc, type.getDimSize(d)));
        continue;
      }
      dims.push_back(arith::IndexCastOp::create(b, loc, i64Type(),
                                                dynamicSizes[next++]));
    }
    return dims;
  }

  /// Bytes of a dense buffer of `dims` (i64), saturated to 2^64 - 1 on
  /// overflow (the allocation then fails cleanly).
  Value byteSize(Location loc, MemRefType type, ArrayRef<Value> dims) {
    assert(elementBytes(type.getElementType()) && "checked by the caller");
    Value bytes = i64(loc, elementBytes(type.getElementType()));
    Value overflow = arith::ConstantIntOp::create(b, loc, 0, 1);
    for (Value d : dims) {
      auto product = arith::MulUIExtendedOp::create(b, loc, bytes, d);
      Value high = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne,
                                         product.getHigh(), i64(loc, 0));
      overflow = arith::OrIOp::create(b, loc, overflow, high);
      bytes = product.getLow();
    }
    return arith::SelectOp::create(b, loc, overflow, i64(loc, -1), bytes);
  }
};

/// Defines `ptr __moe_workspace_alloc(ptr frame, i64 bytes)`: the inline
/// bump allocation of code_abi.h, calling workspace_grow when the segment
/// is full.
LLVM::LLVMFuncOp defineAllocFunction(ModuleOp module) {
  if (auto fn = module.lookupSymbol<LLVM::LLVMFuncOp>(kAllocFn))
    return fn;
  MLIRContext *ctx = module.getContext();
  OpBuilder b = OpBuilder::atBlockEnd(module.getBody());
  Location loc = module.getLoc();
  auto ptr = LLVM::LLVMPointerType::get(ctx);
  auto i64 = b.getI64Type();
  auto fn = LLVM::LLVMFuncOp::create(
      b, loc, kAllocFn, LLVM::LLVMFunctionType::get(ptr, {ptr, i64}),
      LLVM::Linkage::Internal);
  Block *entry = fn.addEntryBlock(b);
  Block *fast = fn.addBlock();
  Block *slow = fn.addBlock();
  Value frame = entry->getArgument(0), bytes = entry->getArgument(1);
  b.setInsertionPointToStart(entry);
  auto field = [&](int64_t offset) {
    return LLVM::GEPOp::create(b, loc, ptr, b.getI8Type(), frame,
                               ArrayRef<LLVM::GEPArg>{offset});
  };
  auto c = [&](int64_t v) {
    return LLVM::ConstantOp::create(b, loc, i64, b.getI64IntegerAttr(v));
  };
  Value cursorField = field(MOE_FRAME_WS_CURSOR);
  Value cursor = LLVM::PtrToIntOp::create(
      b, loc, i64, LLVM::LoadOp::create(b, loc, ptr, cursorField));
  Value end = LLVM::PtrToIntOp::create(
      b, loc, i64, LLVM::LoadOp::create(b, loc, ptr, field(MOE_FRAME_WS_END)));
  // start = (cursor + 63) & ~63; fits: start <= end && bytes <= end - start.
  Value start = LLVM::AndOp::create(
      b, loc, LLVM::AddOp::create(b, loc, cursor, c(kAlign - 1)),
      c(~static_cast<int64_t>(kAlign - 1)));
  Value startOk =
      LLVM::ICmpOp::create(b, loc, LLVM::ICmpPredicate::ule, start, end);
  Value room = LLVM::SubOp::create(b, loc, end, start);
  Value sizeOk =
      LLVM::ICmpOp::create(b, loc, LLVM::ICmpPredicate::ule, bytes, room);
  // start < cursor when the rounding wrapped: then take the slow path.
  Value noWrap =
      LLVM::ICmpOp::create(b, loc, LLVM::ICmpPredicate::uge, start, cursor);
  Value ok = LLVM::AndOp::create(
      b, loc, LLVM::AndOp::create(b, loc, startOk, sizeOk), noWrap);
  LLVM::CondBrOp::create(b, loc, ok, fast, ValueRange{}, slow, ValueRange{});

  b.setInsertionPointToStart(fast);
  Value next = LLVM::AddOp::create(b, loc, start, bytes);
  LLVM::StoreOp::create(b, loc, LLVM::IntToPtrOp::create(b, loc, ptr, next),
                        cursorField);
  LLVM::ReturnOp::create(b, loc,
                         ValueRange{LLVM::IntToPtrOp::create(b, loc, ptr, start)});

  b.setInsertionPointToStart(slow);
  Value grow =
      moe::loadHostFunction(b, loc, frame, MOE_HOST_WORKSPACE_GROW);
  auto growType = LLVM::LLVMFunctionType::get(ptr, {ptr, i64});
  Value grown =
      LLVM::CallOp::create(b, loc, growType, ValueRange{grow, frame, bytes})
          .getResult();
  LLVM::ReturnOp::create(b, loc, ValueRange{grown});
  return fn;
}

/// Static workspace bytes of a block (its allocations and what its nested
/// blocks keep), and whether the amount is only known at run time.
struct WorkspaceNeed {
  uint64_t bytes = 0;
  bool dynamic = false;
};

/// Where lowerAllocs takes a block's allocations from.
struct AllocScope {
  /// The frame, or the private slot of a parallel iteration: a pointer
  /// with the frame's layout up to MOE_FRAME_WS_SEGMENT, whose workspace
  /// words the bump allocation reads and advances.
  Value words;
  /// Only measure (no IR is changed).
  bool dryRun = false;
  /// Inside an scf.parallel: its dynamic sizes count with their constant
  /// upper bounds (ValueBounds), and no nested loop gets private slots.
  bool inParallel = false;
};

/// The header of a private slot: the frame's fields up to the workspace
/// words, rounded up to the workspace alignment.
constexpr uint64_t kSlotHeader = kAlign;
/// The most bytes one iteration of a parallel loop may take from a private
/// slot; a loop that needs more keeps the workspace and runs sequentially.
constexpr uint64_t kMaxSlotBytes = uint64_t(16) << 20;

/// Bytes of `alloc` with each dynamic size at its constant upper bound
/// (ValueBounds, e.g. an affine.min with a constant), or nullopt.
std::optional<uint64_t> boundedBytes(memref::AllocOp alloc) {
  MemRefType type = alloc.getType();
  uint64_t bytes = elementBytes(type.getElementType());
  unsigned next = 0;
  for (int64_t d = 0; d < type.getRank(); ++d) {
    int64_t size = type.getDimSize(d);
    if (type.isDynamicDim(d)) {
      FailureOr<int64_t> ub = ValueBoundsConstraintSet::computeConstantBound(
          presburger::BoundType::UB, alloc.getDynamicSizes()[next++],
          /*stopCondition=*/nullptr, /*closedUB=*/true);
      if (failed(ub) || *ub < 0)
        return std::nullopt;
      size = *ub;
    }
    bytes = saturatingMul(bytes, static_cast<uint64_t>(size));
  }
  if (bytes >= kMaxBytes)
    return std::nullopt;
  return bytes;
}

class HostAbiLowering {
public:
  HostAbiLowering(func::FuncOp func, std::string symbol,
                  int64_t parallelSlots)
      : func(func), symbol(std::move(symbol)), converter(func.getContext()),
        parallelSlots(parallelSlots) {}

  LogicalResult run();
  WorkspaceNeed need;

private:
  LogicalResult checkShape();
  void lowerArguments(FrameBuilder &fb);
  void lowerResults(FrameBuilder &fb);
  void lowerErrorCalls(FrameBuilder &fb);
  void lowerCopies();
  void carryRepeatsInPlace();
  WorkspaceNeed lowerAllocs(FrameBuilder &fb, Block &block, bool isEntry,
                            const AllocScope &scope);
  std::optional<uint64_t> privateNeed(FrameBuilder &fb, scf::ParallelOp par);
  uint64_t privatize(FrameBuilder &fb, scf::ParallelOp par, uint64_t need);
  Value outputBuffer(FrameBuilder &fb, Location loc, unsigned index,
                     MemRefType type, ArrayRef<Value> dims);

  func::FuncOp func;
  std::string symbol;
  LLVMTypeConverter converter;
  int64_t parallelSlots;
  Value frame;
  LLVM::LLVMFuncOp allocFn;
  /// Entry-block allocations that became output buffers.
  DenseSet<Operation *> outputAllocs;
};

LogicalResult HostAbiLowering::checkShape() {
  for (auto [i, t] : llvm::enumerate(func.getArgumentTypes())) {
    auto m = dyn_cast<MemRefType>(t);
    if (!m || !m.getLayout().isIdentity())
      return func.emitError()
             << "moe-lower-to-host-abi: the entry's arguments must be "
                "identity-layout memrefs (bufferize with "
                "function-boundary-type-conversion=identity-layout-map), got "
             << t;
    if (auto w = func.getArgAttrOfType<IntegerAttr>(i, "moe.weight")) {
      if (!m.hasStaticShape())
        return func.emitError() << "moe-lower-to-host-abi: weight argument "
                                << i << " has a dynamic shape: " << t;
      if (w.getValue().isNegative())
        return func.emitError() << "moe-lower-to-host-abi: weight argument "
                                << i << " has a negative index";
    }
  }
  for (Type t : func.getResultTypes()) {
    auto m = dyn_cast<MemRefType>(t);
    if (!m || !m.getLayout().isIdentity())
      return func.emitError()
             << "moe-lower-to-host-abi: the entry's results must be "
                "identity-layout memrefs, got "
             << t;
  }
  if (!func.getBody().hasOneBlock())
    return func.emitError()
           << "moe-lower-to-host-abi: the entry must have a single block "
              "(run it before scf-to-cf)";
  // Every buffer the ABI lays out: arguments, results, allocations.
  WalkResult walk = func.walk([&](Operation *op) -> WalkResult {
    if (auto alloc = dyn_cast<memref::AllocOp>(op)) {
      if (alloc.getAlignment() && *alloc.getAlignment() > kAlign)
        return alloc.emitError()
               << "moe-lower-to-host-abi: alignment "
               << *alloc.getAlignment() << " is above the workspace's "
               << kAlign;
    }
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return failure();
  SmallVector<Type> types(func.getArgumentTypes());
  llvm::append_range(types, func.getResultTypes());
  func.walk([&](memref::AllocOp alloc) { types.push_back(alloc.getType()); });
  for (Type t : types)
    if (!elementBytes(cast<MemRefType>(t).getElementType()))
      return func.emitError()
             << "moe-lower-to-host-abi: element type "
             << cast<MemRefType>(t).getElementType()
             << " has no layout in the code ABI (integers and floats of 1, "
                "8, 16, 32 or 64 bits, and index)";
  return success();
}

void HostAbiLowering::lowerArguments(FrameBuilder &fb) {
  Block &entry = func.getBody().front();
  OpBuilder &b = fb.b;
  b.setInsertionPointToStart(&entry);
  Location loc = func.getLoc();
  unsigned numInputs = 0;
  int64_t dimOffset = 0;
  Value inputDims;
  for (unsigned i = 1; i < func.getNumArguments(); ++i) { // 0: the frame
    BlockArgument arg = entry.getArgument(i);
    auto type = cast<MemRefType>(arg.getType());
    // A weight is frame->weights[k] for its `moe.weight = k` (the k-th
    // weight record); inputs are numbered in order.
    auto weightIndex = func.getArgAttrOfType<IntegerAttr>(i, "moe.weight");
    bool weight = static_cast<bool>(weightIndex);
    Value data =
        weight ? fb.framePointer(loc, MOE_FRAME_WEIGHTS,
                                 weightIndex.getValue().getZExtValue())
               : fb.framePointer(loc, MOE_FRAME_INPUTS, numInputs++);
    SmallVector<Value> dims;
    for (int64_t d = 0; d < type.getRank(); ++d) {
      if (!type.isDynamicDim(d)) {
        dims.push_back(fb.i64(loc, type.getDimSize(d)));
        continue;
      }
      assert(!weight && "weights have static shapes");
      if (!inputDims)
        inputDims = fb.loadPtr(loc, frame, MOE_FRAME_INPUT_DIMS);
      dims.push_back(LLVM::LoadOp::create(
          b, loc, fb.i64Type(),
          fb.byteAddress(loc, inputDims, 8 * (dimOffset + d))));
    }
    if (!weight)
      dimOffset += type.getRank();
    arg.replaceAllUsesWith(fb.memrefAt(loc, data, type, dims));
  }
}

Value HostAbiLowering::outputBuffer(FrameBuilder &fb, Location loc,
                                    unsigned index, MemRefType type,
                                    ArrayRef<Value> dims) {
  OpBuilder &b = fb.b;
  Value data;
  if (type.hasStaticShape()) {
    data = fb.framePointer(loc, MOE_FRAME_OUTPUTS, index);
  } else {
    // output_alloc(frame, index, dims): the dims in a stack array.
    Value array;
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(&func.getBody().front());
      array = LLVM::AllocaOp::create(b, loc, fb.ptrType(), fb.i64Type(),
                                     fb.i64(loc, std::max<int64_t>(
                                                     type.getRank(), 1)));
    }
    for (auto [d, dim] : llvm::enumerate(dims))
      LLVM::StoreOp::create(b, loc, dim,
                            fb.byteAddress(loc, array, 8 * (int64_t)d));
    Value fn = fb.hostFunction(loc, MOE_HOST_OUTPUT_ALLOC);
    auto fnType = LLVM::LLVMFunctionType::get(
        fb.ptrType(), {fb.ptrType(), fb.i64Type(), fb.ptrType()});
    data = LLVM::CallOp::create(b, loc, fnType,
                                ValueRange{fn, frame, fb.i64(loc, index),
                                           array})
               .getResult();
  }
  return fb.memrefAt(loc, data, type, dims);
}

void HostAbiLowering::lowerResults(FrameBuilder &fb) {
  OpBuilder &b = fb.b;
  auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
  Block *entry = &func.getBody().front();
  for (auto [i, value] : llvm::enumerate(ret.getOperands())) {
    auto type = cast<MemRefType>(value.getType());
    auto alloc = value.getDefiningOp<memref::AllocOp>();
    if (alloc && alloc->getBlock() == entry &&
        outputAllocs.insert(alloc).second) {
      // Allocated for this result: allocate it in the output buffer.
      b.setInsertionPoint(alloc);
      SmallVector<Value> dims =
          fb.dimsOf(alloc.getLoc(), type, alloc.getDynamicSizes());
      Value out = outputBuffer(fb, alloc.getLoc(), i, type, dims);
      alloc.getResult().replaceAllUsesWith(out);
      continue;
    }
    // Anything else is copied into the output buffer at the return.
    b.setInsertionPoint(ret);
    Location loc = ret.getLoc();
    SmallVector<Value> dynamicSizes;
    for (int64_t d = 0; d < type.getRank(); ++d)
      if (type.isDynamicDim(d))
        dynamicSizes.push_back(memref::DimOp::create(b, loc, value, d));
    SmallVector<Value> dims = fb.dimsOf(loc, type, dynamicSizes);
    Value out = outputBuffer(fb, loc, i, type, dims);
    memref::CopyOp::create(b, loc, value, out);
  }
  b.setInsertionPoint(ret);
  func::ReturnOp::create(b, ret.getLoc());
  ret.erase();
  for (Operation *op : outputAllocs)
    op->erase();
}

void HostAbiLowering::lowerErrorCalls(FrameBuilder &fb) {
  SmallVector<func::CallOp> calls;
  func.walk([&](func::CallOp call) {
    if (call.getCallee() == kErrorHook)
      calls.push_back(call);
  });
  OpBuilder &b = fb.b;
  for (func::CallOp call : calls) {
    b.setInsertionPoint(call);
    Location loc = call.getLoc();
    Value fn = fb.hostFunction(loc, MOE_HOST_REPORT_ERROR);
    auto fnType = LLVM::LLVMFunctionType::get(
        LLVM::LLVMVoidType::get(b.getContext()),
        {fb.ptrType(), b.getI32Type()});
    SmallVector<Value> args = {fn, frame};
    args.append(call.getOperands().begin(), call.getOperands().end());
    LLVM::CallOp::create(b, loc, fnType, args);
    call.erase();
  }
}

/// Whether the workspace allocations of a block may be given back when it
/// ends: it is the only block of its region (in a region of several blocks,
/// values flow from one block to the next), the only memrefs it yields are
/// its own arguments (a loop's iter_args: by induction, buffers from before
/// the loop), and nothing in it lets a buffer escape otherwise (a memref
/// stored into memory, or turned into an address or another type).
bool mayRelease(Block &block) {
  Region *region = block.getParent();
  if (!region || !region->hasOneBlock() || !block.mightHaveTerminator())
    return false;
  Operation *term = block.getTerminator();
  if (isa<func::ReturnOp>(term))
    return false;
  auto isMemRef = [](Type t) { return isa<BaseMemRefType>(t); };
  for (Value v : term->getOperands()) {
    auto arg = dyn_cast<BlockArgument>(v);
    if (isMemRef(v.getType()) && (!arg || arg.getOwner() != &block))
      return false;
  }
  WalkResult escapes = block.walk([&](Operation *op) {
    if (auto store = dyn_cast<memref::StoreOp>(op))
      if (isMemRef(store.getValueToStore().getType()))
        return WalkResult::interrupt();
    if (isa<memref::ExtractAlignedPointerAsIndexOp,
            UnrealizedConversionCastOp>(op) &&
        llvm::any_of(op->getOperandTypes(), isMemRef))
      return WalkResult::interrupt();
    if (isa<LLVM::LLVMDialect>(op->getDialect()) &&
        llvm::any_of(op->getOperandTypes(), isMemRef))
      return WalkResult::interrupt();
    return WalkResult::advance();
  });
  return !escapes.wasInterrupted();
}

WorkspaceNeed HostAbiLowering::lowerAllocs(FrameBuilder &fb, Block &block,
                                           bool isEntry,
                                           const AllocScope &scope) {
  OpBuilder &b = fb.b;
  WorkspaceNeed kept; // what this block keeps until it ends
  uint64_t transient = 0; // the most a released nested block takes at once
  bool any = false;
  for (Operation &op : llvm::make_early_inc_range(block)) {
    if (auto alloc = dyn_cast<memref::AllocOp>(&op)) {
      any = true;
      Location loc = alloc.getLoc();
      MemRefType type = alloc.getType();
      // Bufferization allocates with the identity layout.
      if (!type.getLayout().isIdentity()) {
        if (!scope.dryRun)
          alloc.emitError() << "moe-lower-to-host-abi: cannot allocate a "
                               "memref with a non-identity layout: "
                            << type;
        kept.dynamic = true;
        continue;
      }
      std::optional<uint64_t> bytesBound;
      if (type.hasStaticShape() || scope.inParallel)
        bytesBound = boundedBytes(alloc);
      if (bytesBound)
        kept.bytes = std::min(kMaxBytes,
                              kept.bytes + llvm::alignTo(*bytesBound, kAlign));
      else
        kept.dynamic = true;
      if (scope.dryRun)
        continue;
      b.setInsertionPoint(alloc);
      SmallVector<Value> dims = fb.dimsOf(loc, type, alloc.getDynamicSizes());
      Value bytes = fb.byteSize(loc, type, dims);
      Value data = LLVM::CallOp::create(b, loc, allocFn,
                                        ValueRange{scope.words, bytes})
                       .getResult();
      Value view = fb.memrefAt(loc, data, type, dims);
      alloc.getResult().replaceAllUsesWith(view);
      alloc.erase();
      continue;
    }
    if (isa<memref::DeallocOp>(&op)) {
      if (!scope.dryRun)
        op.erase(); // The arena is given back as a whole.
      continue;
    }
    // The outermost parallel loops whose iterations allocate: each
    // iteration allocates from a private slot instead, so that the loop
    // may run on the thread pool (privatize).
    if (auto par = dyn_cast<scf::ParallelOp>(&op);
        par && !scope.inParallel && !scope.dryRun) {
      if (std::optional<uint64_t> need = privateNeed(fb, par)) {
        uint64_t arena = privatize(fb, par, *need);
        kept.bytes = std::min(kMaxBytes,
                              kept.bytes + llvm::alignTo(arena, kAlign));
        any = true;
        continue;
      }
    }
    AllocScope inner = scope;
    inner.inParallel |= isa<scf::ParallelOp>(op);
    for (Region &region : op.getRegions()) {
      // The blocks of a region keep what they allocate (several run one
      // after another on a path), so their needs add up.
      WorkspaceNeed regionNeed;
      for (Block &innerBlock : region) {
        WorkspaceNeed n =
            lowerAllocs(fb, innerBlock, /*isEntry=*/false, inner);
        regionNeed.bytes = std::min(kMaxBytes, regionNeed.bytes + n.bytes);
        regionNeed.dynamic |= n.dynamic;
        if (n.bytes || n.dynamic)
          any = true;
      }
      bool released = llvm::all_of(region, [](Block &innerBlock) {
        return mayRelease(innerBlock);
      });
      if (released) {
        transient = std::max(transient, regionNeed.bytes);
        kept.dynamic |= regionNeed.dynamic;
        continue;
      }
      // Kept past the op: once, or once per iteration of a loop.
      if (regionNeed.bytes || regionNeed.dynamic) {
        std::optional<int64_t> trips;
        if (auto loop = dyn_cast<scf::ForOp>(&op)) {
          if (std::optional<APInt> n = loop.getStaticTripCount())
            if (n->getActiveBits() <= 32)
              trips = static_cast<int64_t>(n->getZExtValue());
        } else if (isa<scf::IfOp, scf::IndexSwitchOp, scf::ExecuteRegionOp>(op))
          trips = 1;
        if (!trips)
          kept.dynamic = true;
        else
          kept.bytes = std::min(
              kMaxBytes,
              kept.bytes + saturatingMul(regionNeed.bytes,
                                         static_cast<uint64_t>(*trips)));
        kept.dynamic |= regionNeed.dynamic;
      }
    }
  }
  // Give the block's allocations back when it ends.
  if (any && !isEntry && !scope.dryRun && mayRelease(block)) {
    Location loc = block.getParentOp()->getLoc();
    b.setInsertionPointToStart(&block);
    SmallVector<Value> saved;
    for (int64_t field :
         {MOE_FRAME_WS_CURSOR, MOE_FRAME_WS_END, MOE_FRAME_WS_SEGMENT})
      saved.push_back(LLVM::LoadOp::create(
          b, loc, field == MOE_FRAME_WS_SEGMENT ? fb.i64Type() : fb.ptrType(),
          fb.byteAddress(loc, scope.words, field)));
    b.setInsertionPoint(block.getTerminator());
    for (auto [value, field] :
         llvm::zip(saved, ArrayRef<int64_t>{MOE_FRAME_WS_CURSOR,
                                            MOE_FRAME_WS_END,
                                            MOE_FRAME_WS_SEGMENT}))
      LLVM::StoreOp::create(b, loc, value,
                            fb.byteAddress(loc, scope.words, field));
  }
  WorkspaceNeed total{std::min(kMaxBytes, kept.bytes + transient),
                      kept.dynamic};
  // A size at the cap is not a size: the runtime learns it.
  if (total.bytes >= kMaxBytes)
    total = {0, true};
  return total;
}

/// The workspace bytes one iteration of `par` takes, when the loop should
/// take them from private slots (privatize): an outermost scf.parallel
/// without reductions whose iterations allocate a bounded amount (dynamic
/// sizes at their constant upper bounds, at most kMaxSlotBytes) and give
/// it back when they end. nullopt otherwise: the loop keeps allocating
/// from the workspace, and moe-parallel-loops-to-host keeps it sequential.
std::optional<uint64_t> HostAbiLowering::privateNeed(FrameBuilder &fb,
                                                     scf::ParallelOp par) {
  if (parallelSlots <= 0 || par.getNumReductions() != 0)
    return std::nullopt;
  Block &body = *par.getBody();
  bool allocates = body.walk([](memref::AllocOp) {
                         return WalkResult::interrupt();
                       }).wasInterrupted();
  if (!allocates || !mayRelease(body))
    return std::nullopt;
  WorkspaceNeed n = lowerAllocs(
      fb, body, /*isEntry=*/false,
      AllocScope{frame, /*dryRun=*/true, /*inParallel=*/true});
  if (n.dynamic || n.bytes == 0 || n.bytes > kMaxSlotBytes)
    return std::nullopt;
  return n.bytes;
}

/// Rewrites `par` (dims i_0..i_r, N iterations in all) into
///
///   arena = workspace_alloc(min(N, parallelSlots) * slot)
///   scf.parallel (%c) = (0) to (min(N, parallelSlots)) step (1) {
///     slot c of the arena: a frame-shaped header (host, run and the
///     workspace words, over the slot's own bytes), then `need` bytes
///     scf.for %w = %c to N step min(N, parallelSlots) {
///       (i_0, ..., i_r) = the w-th iteration of `par` (row-major)
///       <par's body, allocating from slot c>
///     }
///   } {moe.private_workspace}
///
/// so that no iteration allocates from the workspace, which belongs to
/// the entering thread (code_abi.h): moe-parallel-loops-to-host may run
/// the slots on the thread pool. Slot c takes iterations c, c + slots,
/// ..., so slots of a loop whose iterations cost more the later they come
/// (causal attention's query blocks) get about the same work. The slots
/// are bounded at compile time (their allocations never reach the header's
/// end, so workspace_grow is never called from one). Returns the arena's
/// bytes at most.
uint64_t HostAbiLowering::privatize(FrameBuilder &fb, scf::ParallelOp par,
                                    uint64_t need) {
  OpBuilder &b = fb.b;
  Location loc = par.getLoc();
  uint64_t slot = llvm::alignTo(kSlotHeader + need, kAlign);
  b.setInsertionPoint(par);
  auto index = [&](int64_t v) -> Value {
    return arith::ConstantIndexOp::create(b, loc, v);
  };
  Value zero = index(0), one = index(1);
  SmallVector<Value> trips;
  Value total = one;
  for (auto [lb, ub, step] :
       llvm::zip(par.getLowerBound(), par.getUpperBound(), par.getStep())) {
    Value t = arith::CeilDivSIOp::create(
        b, loc, arith::SubIOp::create(b, loc, ub, lb), step);
    t = arith::MaxSIOp::create(b, loc, t, zero);
    trips.push_back(t);
    total = arith::MulIOp::create(b, loc, total, t);
  }
  Value slots = arith::MinUIOp::create(b, loc, total, index(parallelSlots));
  Value per = arith::CeilDivUIOp::create(
      b, loc, total, arith::MaxUIOp::create(b, loc, slots, one));
  Value arenaBytes = arith::MulIOp::create(
      b, loc,
      arith::IndexCastOp::create(b, loc, fb.i64Type(), slots),
      fb.i64(loc, static_cast<int64_t>(slot)));
  Value arena =
      LLVM::CallOp::create(b, loc, allocFn, ValueRange{frame, arenaBytes})
          .getResult();

  Block *forBody = nullptr;
  Value words;
  auto slotsLoop = scf::ParallelOp::create(
      b, loc, ValueRange{zero}, ValueRange{slots}, ValueRange{one},
      [&](OpBuilder &nb, Location nl, ValueRange ivs) {
        FrameBuilder sb{nb, frame, converter};
        Value c = arith::IndexCastOp::create(nb, nl, sb.i64Type(), ivs[0]);
        words = sb.byteAddress(
            nl, arena,
            arith::MulIOp::create(nb, nl, c,
                                  sb.i64(nl, static_cast<int64_t>(slot))));
        auto copy = [&](int64_t field, Type type) {
          Value v = LLVM::LoadOp::create(nb, nl, type,
                                         sb.byteAddress(nl, frame, field));
          LLVM::StoreOp::create(nb, nl, v, sb.byteAddress(nl, words, field));
        };
        copy(MOE_FRAME_HOST, sb.ptrType());
        copy(8, sb.ptrType()); // run
        copy(MOE_FRAME_WS_SEGMENT, sb.i64Type());
        LLVM::StoreOp::create(
            nb, nl, sb.byteAddress(nl, words, static_cast<int64_t>(kSlotHeader)),
            sb.byteAddress(nl, words, MOE_FRAME_WS_CURSOR));
        LLVM::StoreOp::create(
            nb, nl, sb.byteAddress(nl, words, static_cast<int64_t>(slot)),
            sb.byteAddress(nl, words, MOE_FRAME_WS_END));
        // Slot c takes the c-th last run of `per` iterations.
        Value last = arith::SubIOp::create(
            nb, nl, arith::SubIOp::create(nb, nl, slots, ivs[0]), one);
        Value from = arith::MulIOp::create(nb, nl, last, per);
        Value to = arith::MinUIOp::create(
            nb, nl, arith::AddIOp::create(nb, nl, from, per), total);
        auto loop = scf::ForOp::create(
            nb, nl, from, to, one, ValueRange{},
            [&](OpBuilder &lb, Location ll, Value w, ValueRange) {
              scf::YieldOp::create(lb, ll);
            });
        forBody = loop.getBody();
      });
  slotsLoop->setAttr(moe::kPrivateWorkspaceAttrName, b.getUnitAttr());

  // The w-th iteration's indices, then par's body.
  OpBuilder::InsertionGuard guard(b);
  Operation *yield = forBody->getTerminator();
  b.setInsertionPoint(yield);
  Value rest = forBody->getArgument(0);
  SmallVector<Value> ivs(trips.size());
  for (int64_t d = static_cast<int64_t>(trips.size()) - 1; d >= 0; --d) {
    Value i = d == 0 ? rest : arith::RemUIOp::create(b, loc, rest, trips[d]);
    ivs[d] = arith::AddIOp::create(
        b, loc, par.getLowerBound()[d],
        arith::MulIOp::create(b, loc, i, par.getStep()[d]));
    if (d > 0)
      rest = arith::DivUIOp::create(b, loc, rest, trips[d]);
  }
  Block *body = par.getBody();
  body->getTerminator()->erase(); // scf.reduce (no reductions)
  IRRewriter rewriter(b);
  rewriter.inlineBlockBefore(body, yield, ivs);
  par.erase();
  lowerAllocs(fb, *forBody, /*isEntry=*/false,
              AllocScope{words, /*dryRun=*/false, /*inParallel=*/true});
  return saturatingMul(static_cast<uint64_t>(parallelSlots), slot);
}

/// A loop over a model's repeats (moe-roll-repeats) carries its state (the
/// residual stream) in a buffer each iteration allocates anew, so its block
/// could not give its workspace back (mayRelease): the arena grew by all of
/// a layer sequence's temporaries per repeat (MoEUT-44M's prefill at
/// T = 1024: 4.4 GB, every page of it faulted in on first use). Here each
/// carried buffer becomes a pair allocated before the loop: an iteration
/// reads one (its iter_arg), copies what it yields into the other (which
/// nothing in the body reads or yields), and yields the two swapped. The
/// body then yields only its own arguments, and lowerAllocs gives its
/// workspace back at the end of every iteration. The cost: one copy of the
/// state per repeat. A position whose yield is already one of the body's
/// arguments (a buffer updated in place) is left as it is. The pair has the
/// dims of the loop's input; a repeat that yields other dims (the types
/// allow it where dims are dynamic) reports kErrorShapeMismatch and skips
/// the copy instead of writing past the buffer.
void HostAbiLowering::carryRepeatsInPlace() {
  SmallVector<scf::ForOp> loops;
  func.walk([&](scf::ForOp loop) {
    if (loop->hasAttr(moe::kRepeatsAttrName) &&
        llvm::any_of(loop.getInitArgs().getTypes(),
                     [](Type t) { return isa<MemRefType>(t); }))
      loops.push_back(loop);
  });
  for (scf::ForOp loop : loops) {
    // Every carried buffer must be castable from a fresh (identity) one.
    auto identityOf = [](MemRefType t) {
      return MemRefType::get(t.getShape(), t.getElementType(),
                             MemRefLayoutAttrInterface(), t.getMemorySpace());
    };
    bool castable = llvm::all_of(loop.getInitArgs().getTypes(), [&](Type t) {
      auto m = dyn_cast<MemRefType>(t);
      return !m || (elementBytes(m.getElementType()) &&
                    memref::CastOp::areCastCompatible(identityOf(m), m));
    });
    if (!castable)
      continue;
    Location loc = loop.getLoc();
    OpBuilder b(loop);
    auto fresh = [&](Value like, MemRefType type) -> Value {
      SmallVector<Value> dims;
      for (int64_t d = 0; d < type.getRank(); ++d)
        if (type.isDynamicDim(d))
          dims.push_back(memref::DimOp::create(b, loc, like, d));
      Value buffer = memref::AllocOp::create(b, loc, identityOf(type), dims);
      return buffer.getType() == type
                 ? buffer
                 : memref::CastOp::create(b, loc, type, buffer).getResult();
    };
    SmallVector<unsigned> carried;
    SmallVector<Value> others;
    auto oldYield = cast<scf::YieldOp>(loop.getBody()->getTerminator());
    for (auto [i, init] : llvm::enumerate(loop.getInitArgs())) {
      auto type = dyn_cast<MemRefType>(init.getType());
      auto yielded = dyn_cast<BlockArgument>(oldYield.getOperand(i));
      if (!type || (yielded && yielded.getOwner() == loop.getBody()))
        continue;
      Value first = fresh(init, type);
      memref::CopyOp::create(b, loc, init, first);
      loop.getInitArgsMutable()[i].set(first);
      others.push_back(fresh(init, type));
      carried.push_back(i);
    }
    if (carried.empty())
      continue;
    // The second buffer of each pair as an extra iter_arg; next iteration's
    // second buffer is this iteration's first.
    IRRewriter rewriter(b);
    FailureOr<LoopLikeOpInterface> grown =
        cast<LoopLikeOpInterface>(loop.getOperation())
            .replaceWithAdditionalYields(
                rewriter, others, /*replaceInitOperandUsesInLoop=*/false,
                [&](OpBuilder &, Location, ArrayRef<BlockArgument>) {
                  SmallVector<Value> firsts;
                  for (unsigned i : carried)
                    firsts.push_back(loop.getRegionIterArgs()[i]);
                  return firsts;
                });
    if (failed(grown))
      continue; // (cannot fail for scf.for) the loop keeps its workspace
    auto newLoop = cast<scf::ForOp>(grown->getOperation());
    auto yield = cast<scf::YieldOp>(newLoop.getBody()->getTerminator());
    unsigned numOld = newLoop.getNumRegionIterArgs() - carried.size();
    b.setInsertionPoint(yield);
    for (auto [k, i] : llvm::enumerate(carried)) {
      Value second = newLoop.getRegionIterArgs()[numOld + k];
      Value value = yield.getOperand(i);
      auto type = cast<MemRefType>(value.getType());
      Value same;
      for (int64_t d = 0; d < type.getRank(); ++d) {
        if (!type.isDynamicDim(d))
          continue;
        Value eq = arith::CmpIOp::create(
            b, loc, arith::CmpIPredicate::eq,
            memref::DimOp::create(b, loc, value, d),
            memref::DimOp::create(b, loc, second, d));
        same = same ? Value(arith::AndIOp::create(b, loc, same, eq)) : eq;
      }
      if (!same) {
        memref::CopyOp::create(b, loc, value, second);
      } else {
        moe::build::declareErrorHook(b, func);
        scf::IfOp::create(
            b, loc, same,
            [&](OpBuilder &nb, Location nl) {
              memref::CopyOp::create(nb, nl, value, second);
              scf::YieldOp::create(nb, nl);
            },
            [&](OpBuilder &nb, Location nl) {
              Value code = arith::ConstantIntOp::create(
                  nb, nl, nb.getI32Type(), moe::kErrorShapeMismatch);
              func::CallOp::create(nb, nl, kErrorHook, TypeRange{},
                                   ValueRange{code});
              scf::YieldOp::create(nb, nl);
            });
      }
      yield->setOperand(i, second);
    }
  }
}

void HostAbiLowering::lowerCopies() {
  SmallVector<memref::CopyOp> copies;
  func.walk([&](memref::CopyOp copy) {
    // memref-to-llvm turns a copy into a memcpy for identity layouts (or
    // static contiguous ones); anything else calls MLIR's `memrefCopy`. The
    // copy's folder looks through memref.cast, so a cast of a view to an
    // identity type is a view too.
    auto memcpyable = [](Value v) {
      for (;;) {
        auto t = dyn_cast<MemRefType>(v.getType());
        if (!t || !t.getLayout().isIdentity())
          return false;
        auto cast = v.getDefiningOp<memref::CastOp>();
        if (!cast)
          return true;
        v = cast.getSource();
      }
    };
    if (!memcpyable(copy.getSource()) || !memcpyable(copy.getTarget()))
      copies.push_back(copy);
  });
  for (memref::CopyOp copy : copies) {
    OpBuilder b(copy);
    linalg::CopyOp::create(b, copy.getLoc(), copy.getSource(),
                           copy.getTarget());
    copy.erase();
  }
}

LogicalResult HostAbiLowering::run() {
  if (failed(checkShape()))
    return failure();
  MLIRContext *ctx = func.getContext();
  auto module = func->getParentOfType<ModuleOp>();
  allocFn = defineAllocFunction(module);
  Block &entry = func.getBody().front();
  if (failed(func.insertArgument(0, LLVM::LLVMPointerType::get(ctx),
                                 DictionaryAttr(), func.getLoc())))
    return failure();
  frame = entry.getArgument(0);
  OpBuilder b(ctx);
  FrameBuilder fb{b, frame, converter};
  lowerArguments(fb);
  lowerResults(fb);
  // Before lowerCopies: its copies are lowered too.
  carryRepeatsInPlace();
  // After lowerResults: its copies into the output buffers are lowered too.
  lowerCopies();
  lowerErrorCalls(fb);
  need = lowerAllocs(fb, entry, /*isEntry=*/true, AllocScope{frame});
  bool failedAlloc = false;
  func.walk([&](memref::AllocOp) { failedAlloc = true; });
  if (failedAlloc)
    return failure();

  // One argument, the frame; no results.
  unsigned numOld = func.getNumArguments() - 1;
  BitVector erase(func.getNumArguments());
  erase.set(1, numOld + 1);
  if (failed(func.eraseArguments(erase)))
    return failure();
  func.setType(FunctionType::get(ctx, func.getArgumentTypes(), {}));
  func.setAllResultAttrs(ArrayRef<DictionaryAttr>{});
  func->removeAttr("llvm.emit_c_interface");
  func.setSymName(symbol);
  func->setAttr("moe.workspace_bytes",
                IntegerAttr::get(IntegerType::get(ctx, 64), need.bytes));
  func->setAttr("moe.workspace_grows", BoolAttr::get(ctx, need.dynamic));
  // The error hook's declaration is no longer called.
  if (auto hook = module.lookupSymbol<func::FuncOp>(kErrorHook))
    if (SymbolTable::symbolKnownUseEmpty(hook, module))
      hook.erase();
  return success();
}

} // namespace

Value mlir::moe::loadPointerAt(OpBuilder &b, Location loc, Value base,
                               int64_t offset) {
  auto ptr = LLVM::LLVMPointerType::get(b.getContext());
  Value address = LLVM::GEPOp::create(b, loc, ptr, b.getI8Type(), base,
                                      ArrayRef<LLVM::GEPArg>{offset});
  return LLVM::LoadOp::create(b, loc, ptr, address);
}

Value mlir::moe::loadHostFunction(OpBuilder &b, Location loc, Value frame,
                                  int64_t slot) {
  Value host = loadPointerAt(b, loc, frame, MOE_FRAME_HOST);
  return loadPointerAt(b, loc, host, 8 * slot);
}

/// The pointer `value` loads from `base` + a constant byte offset (an i8
/// llvm.getelementptr with one constant index, or none for offset 0).
static std::optional<std::pair<Value, int64_t>> loadedFrom(Value value) {
  auto load = value.getDefiningOp<LLVM::LoadOp>();
  if (!load)
    return std::nullopt;
  Value address = load.getAddr();
  auto gep = address.getDefiningOp<LLVM::GEPOp>();
  if (!gep)
    return std::make_pair(address, int64_t{0});
  if (!gep.getDynamicIndices().empty() ||
      gep.getRawConstantIndices().size() != 1 ||
      !gep.getElemType().isInteger(8))
    return std::nullopt;
  return std::make_pair(gep.getBase(),
                        int64_t{gep.getRawConstantIndices()[0]});
}

std::optional<int64_t> mlir::moe::hostFunctionSlot(Value callee,
                                                   Value frame) {
  std::optional<std::pair<Value, int64_t>> fn = loadedFrom(callee);
  if (!fn || fn->second < 0 || fn->second % 8 != 0)
    return std::nullopt;
  std::optional<std::pair<Value, int64_t>> host = loadedFrom(fn->first);
  if (!host || host->first != frame || host->second != MOE_FRAME_HOST)
    return std::nullopt;
  return fn->second / 8;
}

namespace {

struct MoeLowerToHostAbiPass
    : mlir::moe::impl::MoeLowerToHostAbiBase<MoeLowerToHostAbiPass> {
  using Base::Base;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    // Every public function defined in the module is an entry; anything
    // else the code would call must have been inlined.
    SmallVector<func::FuncOp> entries;
    for (auto func : module.getOps<func::FuncOp>()) {
      if (func.isExternal())
        continue;
      if (func.isPrivate()) {
        func.emitError() << "moe-lower-to-host-abi: every function the "
                            "module defines must be a public entry, found "
                            "private '"
                         << func.getSymName() << "' (inline it first)";
        return signalPassFailure();
      }
      entries.push_back(func);
    }
    if (entries.empty()) {
      module.emitError() << "moe-lower-to-host-abi: the module defines no "
                            "entry function";
      return signalPassFailure();
    }
    for (func::FuncOp func : entries) {
      HostAbiLowering lowering(func, prefix + func.getSymName().str(),
                               parallelSlots);
      if (failed(lowering.run()))
        return signalPassFailure();
    }
  }
};

} // namespace

//===- CpuTileEpilogues.cpp - elementwise consumers in register tiles -----===//
//
// An expert matmul's bias and activation were a second pass over its output
// after the register tiles had stored it: for each expert, every element
// read back, changed and stored again. Here that generic's body is applied
// to the accumulators of each register tile right before the tile's store
// (the scalar body cloned on vectors), and the generic goes.
//
// Why not upstream's consumer fusion (scf::tileAndFuseConsumerOfSlices):
// it works on tensors, and the register tiles are made on buffers, after
// bufferization; and the pieces of one contraction here are many (row
// loops of MR and 1 rows, column panels, peeled and power-of-two column
// tails), each ending in its own stores.
//
//===----------------------------------------------------------------------===//

#include "CpuTileEpilogues.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

using namespace mlir;

namespace {

/// The buffer `v` is a view of, through memref.subview ops of unit strides
/// that keep the rank, or null. `offsets` (optional) gets, per dim, the
/// offsets of the subviews on the way (their sum is `v`'s offset in the
/// root).
Value subviewRoot(Value v,
                  SmallVectorImpl<SmallVector<OpFoldResult>> *offsets) {
  auto type = dyn_cast<MemRefType>(v.getType());
  if (!type)
    return {};
  if (offsets)
    offsets->assign(type.getRank(), {});
  while (auto sub = v.getDefiningOp<memref::SubViewOp>()) {
    if (sub.getSourceType().getRank() != type.getRank() ||
        !llvm::all_of(sub.getMixedStrides(), [](OpFoldResult s) {
          return isConstantIntValue(s, 1);
        }))
      return {};
    if (offsets)
      for (auto [dim, off] : llvm::enumerate(sub.getMixedOffsets()))
        (*offsets)[dim].push_back(off);
    v = sub.getSource();
  }
  return v;
}

/// How the generic reads an input at an output element (i, j).
enum class Access { Output, Element, Column, Scalar };

/// (`outputBase`: the buffer the output is a view of, through every view.)
std::optional<Access> accessOf(linalg::GenericOp generic, OpOperand &input,
                               Value output, Value outputBase) {
  Value x = input.get();
  AffineMap map = generic.getMatchingIndexingMap(&input);
  if (x == output)
    return map.isIdentity() ? std::optional(Access::Output) : std::nullopt;
  auto type = dyn_cast<MemRefType>(x.getType());
  if (!type || !type.getElementType().isIntOrFloat() ||
      moe::cpu::viewRoot(x) == outputBase)
    return std::nullopt;
  if (map.isIdentity() && type.getRank() == 2)
    return Access::Element;
  if (map.getNumResults() == 1 && map.getResult(0) == getAffineDimExpr(1,
      map.getContext()) && type.getRank() == 1)
    return Access::Column;
  if (map.getNumResults() == 0 && type.getRank() == 0)
    return Access::Scalar;
  return std::nullopt;
}

bool isScalarConstant(Operation &op) {
  auto constant = dyn_cast<arith::ConstantOp>(op);
  return constant && constant.getType().isIntOrFloat();
}

/// Whether `op` may write memory of `base` (a buffer, through every view;
/// any write of unknown target counts).
bool mayWrite(Operation *op, Value base) {
  auto iface = dyn_cast<MemoryEffectOpInterface>(op);
  if (!iface)
    return !op->hasTrait<OpTrait::HasRecursiveMemoryEffects>();
  SmallVector<MemoryEffects::EffectInstance> effects;
  iface.getEffects(effects);
  for (const MemoryEffects::EffectInstance &effect : effects) {
    if (!isa<MemoryEffects::Write>(effect.getEffect()))
      continue;
    Value target = effect.getValue();
    if (!target || moe::cpu::viewRoot(target) == base)
      return true;
  }
  return false;
}

/// Whether `generic` can be an epilogue on its output (see
/// findTileEpilogue): the output, its base buffers, the inputs' access and
/// the body.
bool isEpilogue(linalg::GenericOp generic) {
  if (!generic.hasPureBufferSemantics() || generic.getNumDpsInits() != 1 ||
      generic.getNumLoops() != 2 || generic.getNumParallelLoops() != 2 ||
      !generic.getMatchingIndexingMap(generic.getDpsInitOperand(0))
           .isIdentity())
    return false;
  Value output = generic.getDpsInitOperand(0)->get();
  auto outputType = dyn_cast<MemRefType>(output.getType());
  Value root = subviewRoot(output, nullptr);
  if (!outputType || outputType.getRank() != 2 || !root)
    return false;
  Value base = moe::cpu::viewRoot(root);
  for (OpOperand *input : generic.getDpsInputOperands())
    if (!accessOf(generic, *input, output, base))
      return false;
  Block *body = generic.getBody();
  auto scalarOutside = [&](Value v) {
    return v.getParentBlock() == body || v.getType().isIntOrFloat();
  };
  for (Operation &inner : body->without_terminator()) {
    if (isScalarConstant(inner))
      continue;
    if (!OpTrait::hasElementwiseMappableTraits(&inner) ||
        inner.getNumRegions() != 0 ||
        !llvm::all_of(inner.getResultTypes(),
                      [](Type t) { return t.isIntOrFloat(); }) ||
        !llvm::all_of(inner.getOperands(), scalarOutside))
      return false;
  }
  Operation *yield = body->getTerminator();
  return yield->getNumOperands() == 1 &&
         scalarOutside(yield->getOperand(0));
}

} // namespace

linalg::GenericOp mlir::moe::cpu::findTileEpilogue(linalg::LinalgOp op) {
  if (!op.hasPureBufferSemantics() || op.getNumDpsInits() != 1 ||
      op.getNumReductionLoops() != 1)
    return {};
  Value output = op.getDpsInitOperand(0)->get();
  SmallVector<Operation *> between;
  Operation *next = op->getNextNode();
  while (next && next->getNumRegions() == 0 && isMemoryEffectFree(next)) {
    between.push_back(next);
    next = next->getNextNode();
  }
  auto generic = dyn_cast_or_null<linalg::GenericOp>(next);
  if (!generic || !generic.hasPureBufferSemantics() ||
      generic.getNumDpsInits() != 1 ||
      generic.getDpsInitOperand(0)->get() != output || !isEpilogue(generic))
    return {};
  // The views and scalars the generic reads may be made between the two:
  // they move before the contraction, whose tiles will read them. (Only
  // if what they use is there already.)
  llvm::SmallPtrSet<Operation *, 8> moved(between.begin(), between.end());
  for (Operation *pure : between)
    for (Value operand : pure->getOperands())
      if (Operation *def = operand.getDefiningOp();
          def && !moved.contains(def) && def->getBlock() == op->getBlock() &&
          op->isBeforeInBlock(def))
        return {};
  for (Operation *pure : between)
    pure->moveBefore(op);
  return generic;
}

LogicalResult mlir::moe::cpu::applyTileEpilogue(RewriterBase &rewriter,
                                                linalg::GenericOp epilogue,
                                                ArrayRef<scf::ForOp> kLoops) {
  // (The generic may have changed in the pass's cleanups since it was
  // found: it is checked again.)
  if (!isEpilogue(epilogue) || kLoops.empty())
    return failure();
  Value output = epilogue.getDpsInitOperand(0)->get();
  SmallVector<SmallVector<OpFoldResult>> offsets;
  Value root = subviewRoot(output, &offsets);
  Value base = moe::cpu::viewRoot(root);
  // Every store of the contraction's tiles, found first: nothing changes
  // unless all of them take the epilogue.
  SmallVector<vector::TransferWriteOp> stores;
  for (scf::ForOp loop : kLoops) {
    if (loop.getNumResults() == 0)
      return failure();
    WalkResult inside = loop.getBody()->walk([&](Operation *op) {
      return mayWrite(op, base) ? WalkResult::interrupt()
                                : WalkResult::advance();
    });
    if (inside.wasInterrupted())
      return failure();
    for (Value result : loop.getResults()) {
      for (OpOperand &use : result.getUses()) {
        auto store = dyn_cast<vector::TransferWriteOp>(use.getOwner());
        if (!store || use.getOperandNumber() != 0 ||
            store.getBase() != root || store.getMask() ||
            store.getVectorType().getRank() > 2 ||
            !store.getPermutationMap().isMinorIdentity() ||
            llvm::any_of(store.getInBoundsValues(),
                         [](bool b) { return !b; }))
          return failure();
        stores.push_back(store);
      }
    }
  }

  Block *body = epilogue.getBody();
  MLIRContext *ctx = rewriter.getContext();
  for (vector::TransferWriteOp store : stores) {
    OpBuilder::InsertionGuard guard(rewriter);
    rewriter.setInsertionPoint(store);
    Location loc = store.getLoc();
    VectorType type = store.getVectorType();
    auto vectorOf = [&](Type element) {
      return VectorType::get(type.getShape(), element);
    };
    // The element (i, j) of the output the store's first lane is.
    SmallVector<Value> local;
    for (auto [dim, index] : llvm::enumerate(store.getIndices())) {
      AffineExpr e = getAffineSymbolExpr(0, ctx);
      SmallVector<OpFoldResult> operands{index};
      for (OpFoldResult off : offsets[dim]) {
        e = e - getAffineSymbolExpr(operands.size(), ctx);
        operands.push_back(off);
      }
      local.push_back(getValueOrCreateConstantIndexOp(
          rewriter, loc,
          affine::makeComposedFoldedAffineApply(
              rewriter, loc, AffineMap::get(0, operands.size(), e),
              operands)));
    }
    Value accumulator = store.getValueToStore();
    IRMapping mapping;
    for (OpOperand *input : epilogue.getDpsInputOperands()) {
      Value x = input->get();
      Value value;
      switch (*accessOf(epilogue, *input, output, base)) {
      case Access::Output:
        value = accumulator;
        break;
      case Access::Element: {
        Type element = cast<MemRefType>(x.getType()).getElementType();
        value = vector::TransferReadOp::create(
            rewriter, loc, vectorOf(element), x, local,
            arith::ConstantOp::create(rewriter, loc,
                                      rewriter.getZeroAttr(element)),
            SmallVector<bool>(type.getRank(), true));
        break;
      }
      case Access::Column: {
        Type element = cast<MemRefType>(x.getType()).getElementType();
        auto row = VectorType::get(type.getShape().back(), element);
        value = vector::TransferReadOp::create(
            rewriter, loc, row, x, ValueRange{local[1]},
            arith::ConstantOp::create(rewriter, loc,
                                      rewriter.getZeroAttr(element)),
            ArrayRef<bool>{true});
        if (type.getRank() == 2)
          value = vector::BroadcastOp::create(rewriter, loc,
                                              vectorOf(element), value);
        break;
      }
      case Access::Scalar: {
        Value scalar = memref::LoadOp::create(rewriter, loc, x, ValueRange{});
        value = vector::BroadcastOp::create(
            rewriter, loc, vectorOf(scalar.getType()), scalar);
        break;
      }
      }
      mapping.map(epilogue.getMatchingBlockArgument(input), value);
    }
    mapping.map(epilogue.getMatchingBlockArgument(
                    epilogue.getDpsInitOperand(0)),
                accumulator);
    for (Operation &inner : body->without_terminator()) {
      if (isScalarConstant(inner)) {
        auto constant = cast<arith::ConstantOp>(inner);
        mapping.map(constant.getResult(),
                    arith::ConstantOp::create(
                        rewriter, loc,
                        DenseElementsAttr::get(
                            vectorOf(constant.getType()),
                            cast<TypedAttr>(constant.getValue()))));
        continue;
      }
      for (Value operand : inner.getOperands())
        if (!mapping.contains(operand))
          mapping.map(operand, vector::BroadcastOp::create(
                                   rewriter, loc,
                                   vectorOf(operand.getType()), operand));
      Operation *clone = rewriter.clone(inner, mapping);
      for (OpResult result : clone->getResults())
        result.setType(vectorOf(result.getType()));
    }
    // (A yield of a scalar from outside the body: broadcast.)
    Value yielded = body->getTerminator()->getOperand(0);
    Value result = mapping.lookupOrNull(yielded);
    if (!result)
      result = vector::BroadcastOp::create(
          rewriter, loc, vectorOf(yielded.getType()), yielded);
    rewriter.modifyOpInPlace(store, [&] {
      store.getValueToStoreMutable().assign(result);
    });
  }
  rewriter.eraseOp(epilogue);
  return success();
}

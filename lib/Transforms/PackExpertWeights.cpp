//===- PackExpertWeights.cpp - expert weights in column panels -------------===//
//
// The layout in which the CPU code reads constant expert weights (issue 10,
// "weights stored once in the layout the kernel reads"). A grouped matmul
// reads, per expert, the [K, N] matrix W[e]; its one-row tiles (decode, and
// the rows of an expert beyond its last full row tile) take P columns of
// each row at a time: P * 4 bytes from each of K rows 4N bytes apart. From
// memory, that pattern streams at 0.6-0.7x the rate of one contiguous block
// (docs/performance.md, "Weights in column panels"). So each expert's
// columns are cut into panels of P, each stored as a contiguous [K, P]
// block, and the N mod P columns left as a contiguous [K, N mod P] block:
//
//   %w = arith.constant dense<...> : tensor<E x K x N>
// becomes
//   %p = arith.constant dense<...> : tensor<E x N/P x K x P>
//   %t = arith.constant dense<...> : tensor<E x K x (N mod P)>
//   %w = moe.unpack_panels %p, %t : ... -> tensor<E x K x N>
//
// for the expert-weight operands of the ops that become grouped matmuls
// (moe.grouped_matmul, ffn's w1 and w2, tree_ffn's weight, switchhead's
// wo, and wv where it is routed). convert-moe-to-linalg's grouped matmul
// reads the blocks where they are; moe-outline-weights then stores them.
// Only f32 weights: the register tiles are f32 only, and other types would
// get the per-panel loops and nothing from them.
// Weights of N <= P columns are one block per expert already. A tail
// narrower than min-tail (moe-compile: one vector of the target) joins the
// last panel's block, so that every block is at least a vector wide (and
// the sums are those of the row-major layout, tile for tile).
//
// Written here rather than with upstream's linalg.pack: that packs both
// operands and the result of a plain matmul (mmt4d), and the grouped
// matmul's left operand is gathered rows and its result rows scattered or
// reduced per token, which stay as they are; only the constant operand's
// layout changes, once, at compile time.
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoeOps.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/TypeSwitch.h"

#include <cstring>

namespace mlir::moe {
#define GEN_PASS_DEF_MOEPACKEXPERTWEIGHTS
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// The expert-weight operands of `op` that its decomposition gives to a
/// grouped matmul.
SmallVector<OpOperand *> expertWeightOperands(Operation *op) {
  SmallVector<OpOperand *> operands;
  llvm::TypeSwitch<Operation *>(op)
      .Case<GroupedMatmulOp>(
          [&](auto g) { operands.push_back(&g.getWeightMutable()); })
      .Case<FfnOp>([&](auto f) {
        operands.push_back(&f.getW1Mutable());
        operands.push_back(&f.getW2Mutable());
      })
      .Case<TreeFfnOp>(
          [&](auto t) { operands.push_back(&t.getWeightMutable()); })
      .Case<SwitchHeadOp, SwitchHeadCachedOp>([&](auto s) {
        operands.push_back(&s.getWoMutable());
        // Without value selectors wv is a dense per-head projection.
        if (s.getSelV())
          operands.push_back(&s.getWvMutable());
      });
  return operands;
}

/// The panels and the tail of `value` ([E, K, N], f32),
/// or nothing when that leaves no full panel.
struct Packed {
  DenseElementsAttr panels, tail;
};
std::optional<Packed> pack(DenseElementsAttr value, int64_t width,
                           int64_t minTail) {
  auto type = cast<RankedTensorType>(value.getType());
  int64_t experts = type.getDimSize(0), k = type.getDimSize(1),
          n = type.getDimSize(2);
  int64_t numPanels = n / width, rest = n % width;
  // A tail narrower than a vector would be a product of its own on the
  // scalar path; the last panel takes it (the columns then get the tiles
  // and the sums they get in the row-major layout).
  if (rest && rest < minTail) {
    --numPanels;
    rest += width;
  }
  if (numPanels < 1)
    return std::nullopt;
  size_t esize = type.getElementTypeBitWidth() / 8;
  ArrayRef<char> raw = value.getRawData();
  assert(raw.size() == esize * type.getNumElements() && "dense, not splat");
  std::vector<char> panels(esize * experts * numPanels * k * width);
  std::vector<char> tail(esize * experts * k * rest);
  char *p = panels.data(), *t = tail.data();
  for (int64_t e = 0; e < experts; ++e) {
    const char *we = raw.data() + esize * e * k * n;
    for (int64_t j = 0; j < numPanels; ++j)
      for (int64_t r = 0; r < k; ++r, p += esize * width)
        std::memcpy(p, we + esize * (r * n + j * width), esize * width);
    for (int64_t r = 0; r < k && rest; ++r, t += esize * rest)
      std::memcpy(t, we + esize * (r * n + numPanels * width), esize * rest);
  }
  Type elt = type.getElementType();
  Packed out;
  out.panels = DenseElementsAttr::getFromRawBuffer(
      RankedTensorType::get({experts, numPanels, k, width}, elt), panels);
  if (rest)
    out.tail = DenseElementsAttr::getFromRawBuffer(
        RankedTensorType::get({experts, k, rest}, elt), tail);
  // A block of one repeated value would be stored as a splat, and
  // moe-outline-weights turns splats into fills run on every call.
  if (out.panels.isSplat() || (out.tail && out.tail.isSplat()))
    return std::nullopt;
  return out;
}

struct MoePackExpertWeightsPass
    : moe::impl::MoePackExpertWeightsBase<MoePackExpertWeightsPass> {
  using Base::Base;
  void runOnOperation() override {
    Operation *root = getOperation();
    if (panelWidth < 1 || minTail < 1 || minTail > panelWidth) {
      root->emitError() << "moe-pack-expert-weights: panel-width and "
                           "min-tail must be positive, min-tail at most "
                           "panel-width, got "
                        << static_cast<int64_t>(panelWidth) << " and "
                        << static_cast<int64_t>(minTail);
      return signalPassFailure();
    }
    SmallVector<OpOperand *> operands;
    root->walk([&](Operation *op) {
      llvm::append_range(operands, expertWeightOperands(op));
    });
    // One layout per constant, however many ops read it (MoEUT's
    // repeats), and one packing per value, however many functions hold it
    // (@main, @prefill and @decode with --generation).
    llvm::DenseMap<Value, Value> unpacked;
    llvm::DenseMap<Attribute, std::optional<Packed>> packedOf;
    SmallVector<arith::ConstantOp> replaced;
    OpBuilder b(&getContext());
    for (OpOperand *operand : operands) {
      auto cst = operand->get().getDefiningOp<arith::ConstantOp>();
      auto value = cst ? dyn_cast<DenseElementsAttr>(cst.getValue())
                       : DenseElementsAttr();
      auto type = cst ? dyn_cast<RankedTensorType>(cst.getType())
                      : RankedTensorType();
      if (!value || value.isSplat() || !type || type.getRank() != 3 ||
          !type.hasStaticShape() || !type.getElementType().isF32() ||
          type.getDimSize(2) <= panelWidth || type.getNumElements() == 0)
        continue;
      Value &layout = unpacked[cst.getResult()];
      if (!layout) {
        auto [it, added] = packedOf.try_emplace(value);
        if (added)
          it->second = pack(value, panelWidth, minTail);
        std::optional<Packed> packed = it->second;
        if (!packed) {
          unpacked.erase(cst.getResult());
          continue;
        }
        b.setInsertionPointAfter(cst);
        Location loc = cst.getLoc();
        Value panels = arith::ConstantOp::create(b, loc, packed->panels);
        Value tail = packed->tail
                         ? arith::ConstantOp::create(b, loc, packed->tail)
                               .getResult()
                         : Value();
        layout = UnpackPanelsOp::create(b, loc, type, panels, tail);
        replaced.push_back(cst);
      }
      operand->set(layout);
    }
    // The row-major constants nothing else reads are not stored.
    for (arith::ConstantOp cst : replaced)
      if (cst->use_empty())
        cst->erase();
  }
};

} // namespace

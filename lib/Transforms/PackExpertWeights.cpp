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
// Dense [K, N] weights that a contraction reads as (k, n) get panels too
// (dense-weights), [ceil(N / P), K, P] with the last one zero-padded
// instead of a tail: the contraction then runs over N rounded up to P
// columns into a fresh fill and keeps the first N (a tail would need the
// destination sliced in two, and one-shot bufferization's analysis of
// those slices took seconds per model). The right-hand sides of linalg
// contractions (the LM head) are rewritten here to read the panels; the
// dense weights of moe ops (switchhead's wq and wk, the selectors stored
// [D, E]) become a one-expert moe.unpack_panels collapsed to [K, Nb * P]
// (and sliced to N columns), which convert-moe-to-linalg's contractions
// read in place once the ops are decomposed (build::contractOverPanels
// for both).
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
#include "moe/Utils/BuildUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/IR/LinalgInterfaces.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/Linalg/Utils/Utils.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/SmallPtrSet.h"
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

/// The constant behind `rhs` where it is a dense, non-splat, static [K, N]
/// f32 matrix of more than `width` columns.
DenseElementsAttr packableDenseConstant(Value rhs, int64_t width) {
  auto cst = rhs.getDefiningOp<arith::ConstantOp>();
  auto value =
      cst ? dyn_cast<DenseElementsAttr>(cst.getValue()) : DenseElementsAttr();
  auto type = dyn_cast<RankedTensorType>(rhs.getType());
  if (!value || value.isSplat() || !type || type.getRank() != 2 ||
      !type.hasStaticShape() || !type.getElementType().isF32() ||
      type.getDimSize(0) == 0 || type.getDimSize(1) <= width)
    return {};
  return value;
}

/// `value` ([K, N], f32) as column panels [ceil(N / P), K, P], the last one
/// zero-padded where P does not divide N; nothing where that would be a
/// splat, or where the padding would be more than an eighth of N (every
/// padded column is multiplied, and stored: 155 columns in 64-column
/// panels would cost 24% more work, and keep their row-major layout).
DenseElementsAttr packMatrix(DenseElementsAttr value, int64_t width) {
  auto type = cast<RankedTensorType>(value.getType());
  int64_t k = type.getDimSize(0), n = type.getDimSize(1);
  int64_t numPanels = (n + width - 1) / width;
  if ((numPanels * width - n) * 8 > n)
    return {};
  size_t esize = type.getElementTypeBitWidth() / 8;
  ArrayRef<char> raw = value.getRawData();
  assert(raw.size() == esize * type.getNumElements() && "dense, not splat");
  std::vector<char> panels(esize * numPanels * k * width, 0);
  char *out = panels.data();
  for (int64_t j = 0; j < numPanels; ++j) {
    int64_t cols = std::min(width, n - j * width);
    for (int64_t r = 0; r < k; ++r, out += esize * width)
      std::memcpy(out, raw.data() + esize * (r * n + j * width), esize * cols);
  }
  auto packed = DenseElementsAttr::getFromRawBuffer(
      RankedTensorType::get({numPanels, k, width}, type.getElementType()),
      panels);
  return packed.isSplat() ? DenseElementsAttr() : packed;
}

/// A dense contraction on tensors whose right-hand side is a constant
/// [K, N] f32 matrix read as (k, n), n the output's last dim and in no other
/// operand (the LM head, a projection): the same contraction over the
/// panels (build::contractOverPanels).
LogicalResult
packDenseRhs(linalg::GenericOp op, int64_t width,
             function_ref<DenseElementsAttr(DenseElementsAttr)> packedMatrix) {
  if (!build::isContractionOverColumns(op))
    return failure();
  DenseElementsAttr value =
      packableDenseConstant(op.getDpsInputOperand(1)->get(), width);
  DenseElementsAttr packed = value ? packedMatrix(value) : DenseElementsAttr();
  // A padded panel needs an init that is a fill.
  if (!packed || !build::canContractOverPanels(
                     op, cast<RankedTensorType>(packed.getType())))
    return failure();
  IRRewriter b(op);
  Value panels = arith::ConstantOp::create(b, op.getLoc(), packed);
  return build::contractOverPanels(b, op, panels);
}

/// The dense [K, N] weights of `op` that its decomposition reads as the
/// right-hand side of a contraction over columns: switchhead's query and
/// key projections, and the selectors that moe-fold-constant-layouts
/// stores [D, E] (the operand is then a transpose of that constant, and
/// the constant is the weight).
SmallVector<OpOperand *> denseWeightOperands(Operation *op) {
  SmallVector<OpOperand *> operands;
  auto selector = [&](OpOperand &operand) {
    if (auto t = operand.get().getDefiningOp<linalg::TransposeOp>();
        t && t.getPermutation() == ArrayRef<int64_t>{1, 0} &&
        t.hasPureTensorSemantics())
      operands.push_back(&t.getInputMutable());
  };
  llvm::TypeSwitch<Operation *>(op)
      .Case<FfnOp>([&](auto f) { selector(f.getWSelMutable()); })
      .Case<SwitchHeadOp, SwitchHeadCachedOp>([&](auto s) {
        operands.push_back(&s.getWqMutable());
        operands.push_back(&s.getWkMutable());
        selector(s.getSelOMutable());
        if (s.getSelV())
          selector(*s.getSelVMutable().begin());
      });
  return operands;
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
    // Dense contractions' constant right-hand sides too (after the expert
    // weights: these are not expert weights).
    if (denseWeights) {
      // The dense weights of moe ops, contracted after their
      // decomposition: laid out here as one expert's panels, read back as
      // [K, N] (a collapse of moe.unpack_panels [1, K, Nb * P], sliced to
      // N columns where padded); convert-moe-to-linalg's contractions
      // read the panels where they are.
      SmallVector<OpOperand *> dense;
      root->walk([&](Operation *op) {
        llvm::append_range(dense, denseWeightOperands(op));
      });
      llvm::DenseMap<Attribute, DenseElementsAttr> matrices;
      auto packedMatrix = [&](DenseElementsAttr value) -> DenseElementsAttr {
        if (!value)
          return {};
        auto [it, added] = matrices.try_emplace(value);
        if (added)
          it->second = packMatrix(value, panelWidth);
        return it->second;
      };
      for (OpOperand *operand : dense) {
        DenseElementsAttr value =
            packableDenseConstant(operand->get(), panelWidth);
        if (!value)
          continue;
        auto cst = operand->get().getDefiningOp<arith::ConstantOp>();
        Value &layout = unpacked[cst.getResult()];
        if (!layout) {
          DenseElementsAttr packed = packedMatrix(value);
          if (!packed) {
            unpacked.erase(cst.getResult());
            continue;
          }
          b.setInsertionPointAfter(cst);
          Location loc = cst.getLoc();
          auto type = cast<RankedTensorType>(cst.getType());
          auto panelType = cast<RankedTensorType>(packed.getType());
          int64_t k = type.getDimSize(0), n = type.getDimSize(1);
          int64_t padded = panelType.getDimSize(0) * panelType.getDimSize(2);
          Type elt = type.getElementType();
          Value panels = arith::ConstantOp::create(
              b, loc,
              packed.reshape(RankedTensorType::get(
                  {1, panelType.getDimSize(0), k, panelType.getDimSize(2)},
                  elt)));
          Value one = UnpackPanelsOp::create(
              b, loc, RankedTensorType::get({1, k, padded}, elt), panels,
              Value());
          layout = build::collapse(b, loc, one, {{0, 1}, {2}});
          if (padded != n)
            layout = tensor::ExtractSliceOp::create(
                b, loc, layout,
                ArrayRef<OpFoldResult>{b.getIndexAttr(0), b.getIndexAttr(0)},
                ArrayRef<OpFoldResult>{b.getIndexAttr(k), b.getIndexAttr(n)},
                ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
          replaced.push_back(cst);
        }
        operand->set(layout);
      }
      // A named linalg.matmul (its maps the plain (m, k), (k, n)) reading
      // a constant it will pack becomes its generic form first (the one
      // the rewrite reads).
      SmallVector<linalg::MatmulOp> named;
      root->walk([&](linalg::MatmulOp op) {
        Value rhs = op.getDpsInputOperand(1)->get();
        Value init = op.getDpsInitOperand(0)->get();
        if (!op.hasPureTensorSemantics() ||
            op.getIndexingMapsArray() !=
                op.getDefaultIndexingMaps(op.getContext()))
          return;
        DenseElementsAttr packed =
            packedMatrix(packableDenseConstant(rhs, panelWidth));
        if (!packed)
          return;
        // The conditions of build::canContractOverPanels on the generic
        // form: the result is N wide, and a fill where the panels pad.
        int64_t n = cast<ShapedType>(rhs.getType()).getDimSize(1);
        bool padded = packed.getType().getNumElements() !=
                      cast<ShapedType>(rhs.getType()).getNumElements();
        if (cast<ShapedType>(init.getType()).getDimSize(1) == n &&
            (!padded || init.getDefiningOp<linalg::FillOp>()))
          named.push_back(op);
      });
      IRRewriter rewriter(&getContext());
      for (linalg::MatmulOp op : named) {
        rewriter.setInsertionPoint(op);
        (void)linalg::generalizeNamedOp(rewriter, op);
      }
      SmallVector<linalg::GenericOp> generics;
      root->walk([&](linalg::GenericOp op) { generics.push_back(op); });
      for (linalg::GenericOp op : generics) {
        Value rhs = op.getNumDpsInputs() == 2 ? op.getDpsInputOperand(1)->get()
                                              : Value();
        if (succeeded(packDenseRhs(op, panelWidth, packedMatrix)))
          if (auto cst = rhs.getDefiningOp<arith::ConstantOp>())
            replaced.push_back(cst);
      }
    }
    // The row-major constants nothing else reads are not stored (a
    // constant two contractions read is listed twice: looked at once).
    llvm::SmallPtrSet<Operation *, 8> seen;
    for (arith::ConstantOp cst : replaced)
      if (seen.insert(cst).second && cst->use_empty())
        cst->erase();
  }
};

} // namespace

//===- GenerationEntries.cpp - @prefill and @decode from a causal @main ----===//
//
// A causal language model (MoEUT: tokens [B, T] -> logits [B, T, V], its
// attention `moe.switchhead` with `causal`) computes each position from the
// positions before it. This pass derives the two functions a generation
// loop runs, next to @main and sharing its weights:
//
//   @prefill(tokens [B, T])
//       -> (logits [B, 1, V], new_key [L, B, H, T, dk], new_value [..., dv])
//   @decode(tokens [B, T], past_key [L, B, H, C, dk], past_value [..., dv],
//           past_length i64 [])
//       -> (logits [B, T, V], new_key, new_value)
//
// for the L attention layers l in program order: each moe.switchhead
// becomes a moe.switchhead_cached that reads positions 0..P-1 (P =
// past_length, 0 <= P <= C, else a run-time report) of slice l of the
// stacked cache (empty in @prefill) and whose rows to append go to slice l
// of new_key and new_value. The cache is layer- and head-major with room
// for C positions: a decode step reads each head's P rows as one
// contiguous block, and a generation context appends a step's rows at P
// without moving the others. The layer index is a constant marked for
// moe-roll-repeats (kIndexedConstantAttrName), so the derived layers roll
// like @main's.
// @decode's logits of the T new tokens equal rows P..P+T-1 of @main on the
// whole sequence; @prefill returns the last row (all with all-logits).
//
// That holds only if everything else in @main treats each position on its
// own. The pass checks it on each derived copy before rewriting it (a
// forward dataflow analysis; anything it cannot follow is refused, located
// at the op). For each tensor it tracks the dims that hold positions and
// their stride (index steps per position: 1, or 32 for positions merged
// with an inner dim of 32); for each scalar, whether it is a position size
// (derived from such a dim's extent):
//   - the tokens' dim 1 holds the positions; tensor.empty sized by a
//     position size has positions there;
//   - a linalg op maps each position dim of its operands to one parallel
//     loop with one stride, keeps that loop as a dim of every result, reads
//     no position-free operand along it, takes no position size as an
//     operand, and its body reads neither the loop's index nor anything
//     position-dependent from outside; element 0 of a position dim is read
//     only in the importer's run-time broadcast branch (`scf.if dim == 1`);
//   - collapse_shape merges a position dim with the static dims inside it;
//     expand_shape must split it exactly: one dim sized by a position size,
//     the static dims inside it multiplying to the stride, batch sizes
//     (or 1) outside it;
//   - moe.ffn (without a capacity limit) and moe.tree_ffn work on rows
//     (positions in dim 0, stride 1), moe.mot mixes across the batch at one
//     position (dim 1), moe.switchhead takes sources [B, T, D] with the
//     positions in dim 1 only;
//   - scf.if may branch on a position size only to report an error or to
//     compare two position extents; results take either branch's positions;
//   - any other op, or region op, that sees a position is refused, as are a
//     static sequence length and attention nested in a region.
// The importer's Reshape size selects (0 and -1 rules) are first replaced in
// the copies by the arm a well-formed model takes, under run-time checks
// (simplifySizeSelects).
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoeOps.h"
#include "moe/Transforms/Passes.h"
#include "moe/Transforms/Transforms.h"
#include "moe/Utils/BuildUtils.h"
#include "moe/Utils/RuntimeErrors.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEGENERATIONENTRIES
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// Where a tensor value holds the position: per dim, 0 (not there), the
/// stride (index steps per position: 1 for a dim of positions, 32 for
/// positions merged with an inner dim of 32), or kUnknownStride.
using PosInfo = SmallVector<int64_t, 4>;
constexpr int64_t kUnknownStride = -1;

/// `v` through integer casts.
Value stripCasts(Value v) {
  while (Operation *op = v.getDefiningOp()) {
    if (!isa<arith::IndexCastOp, arith::IndexCastUIOp, arith::ExtSIOp,
             arith::ExtUIOp, arith::TruncIOp>(op))
      break;
    v = op->getOperand(0);
  }
  return v;
}

/// True if one branch of `ifOp` always reports a run-time error: a call of
/// the error hook directly in its block (the run then fails, whatever it
/// yields).
bool reportsError(scf::IfOp ifOp) {
  for (Region &r : ifOp->getRegions())
    if (!r.empty())
      for (Operation &op : r.front())
        if (auto call = dyn_cast<func::CallOp>(&op);
            call && call.getCallee() == "moe_report_error")
          return true;
  return false;
}

/// The position-locality analysis of the file comment.
class PositionAnalysis {
public:
  explicit PositionAnalysis(Value tokens) { info[tokens] = {0, 1}; }

  LogicalResult run(Block &block) {
    for (Operation &op : block)
      if (failed(visit(&op)))
        return failure();
    return success();
  }

  /// The value's position info (all zeros when it holds none).
  PosInfo of(Value v) const {
    auto it = info.find(v);
    if (it != info.end())
      return it->second;
    auto type = dyn_cast<RankedTensorType>(v.getType());
    return PosInfo(type ? type.getRank() : 0, 0);
  }
  bool carries(Value v) const {
    return llvm::any_of(of(v), [](int64_t s) { return s != 0; });
  }
  bool isPositionSize(Value v) const { return sizes.contains(v); }

private:
  InFlightDiagnostic refuse(Operation *op) {
    return op->emitError()
           << "cannot derive generation entries: '" << op->getName() << "' ";
  }

  bool readsPosition(Operation *op) const {
    return llvm::any_of(op->getOperands(), [&](Value v) {
      return carries(v) || isPositionSize(v);
    });
  }

  /// A size known to hold no position: a static 0 or 1, or (through casts
  /// and selects) a tensor.dim of a dim without one.
  bool isBatchSize(Value v) const {
    if (isPositionSize(v))
      return false;
    v = stripCasts(v);
    // 0 is an empty dim (the importer's value after a reported error).
    if (std::optional<int64_t> c = getConstantIntValue(v))
      return *c == 0 || *c == 1;
    if (auto select = v.getDefiningOp<arith::SelectOp>())
      return isBatchSize(select.getTrueValue()) &&
             isBatchSize(select.getFalseValue());
    auto dim = v.getDefiningOp<tensor::DimOp>();
    if (!dim)
      return false;
    std::optional<int64_t> d = dim.getConstantIndex();
    PosInfo src = of(dim.getSource());
    return d && *d < static_cast<int64_t>(src.size()) && src[*d] == 0;
  }

  LogicalResult visit(Operation *op) {
    if (auto dim = dyn_cast<tensor::DimOp>(op)) {
      std::optional<int64_t> d = dim.getConstantIndex();
      PosInfo src = of(dim.getSource());
      if (!d ? carries(dim.getSource())
             : *d < static_cast<int64_t>(src.size()) && src[*d] != 0)
        sizes.insert(dim.getResult());
      return success();
    }
    if (auto empty = dyn_cast<tensor::EmptyOp>(op)) {
      auto type = empty.getType();
      PosInfo result(type.getRank(), 0);
      unsigned next = 0;
      for (int64_t d = 0; d < type.getRank(); ++d)
        if (type.isDynamicDim(d) &&
            isPositionSize(empty.getDynamicSizes()[next++]))
          result[d] = 1;
      info[empty.getResult()] = result;
      return success();
    }
    if (auto ifOp = dyn_cast<scf::IfOp>(op))
      return visitIf(ifOp);
    if (isa<scf::YieldOp, func::ReturnOp>(op))
      return success();
    // The importer's error hook (moe_report_error(code)); any other call
    // must not see the positions.
    if (isa<func::CallOp>(op) && !readsPosition(op))
      return success();
    if (auto linalgOp = dyn_cast<linalg::LinalgOp>(op))
      return visitLinalg(linalgOp);
    if (auto collapse = dyn_cast<tensor::CollapseShapeOp>(op))
      return visitCollapse(collapse);
    if (auto expand = dyn_cast<tensor::ExpandShapeOp>(op))
      return visitExpand(expand);
    if (auto cast = dyn_cast<tensor::CastOp>(op)) {
      info[cast.getResult()] = of(cast.getSource());
      return success();
    }
    if (auto ffn = dyn_cast<FfnOp>(op)) {
      // Switch capacity: which token an expert drops depends on all rows.
      if (ffn.getCapacityFactor() && readsPosition(op))
        return refuse(op) << "has a capacity limit: a token's result "
                             "depends on the other tokens";
      return rows(op, {ffn.getInput(), ffn.getSelectorInput()}, 0);
    }
    if (auto tree = dyn_cast<TreeFfnOp>(op))
      return rows(op, {tree.getInput()}, 0);
    if (auto mot = dyn_cast<MotOp>(op))
      return rows(op, {mot.getInput()}, 1);
    if (auto sh = dyn_cast<SwitchHeadOp>(op)) {
      for (Value src : {sh.getQSrc(), sh.getKSrc(), sh.getVSrc()})
        if (of(src) != PosInfo{0, 1, 0})
          return refuse(op) << "needs sources [B, T, D] with the positions "
                               "in dim 1 only";
      for (Value w : {sh.getWq(), sh.getWk(), sh.getWv(), sh.getWo(),
                      sh.getSelO(), sh.getSelV()})
        if (w && carries(w))
          return refuse(op) << "reads weights computed from the tokens";
      info[sh.getResult()] = {0, 1, 0};
      return success();
    }
    // Scalars: position sizes propagate through arithmetic; a select is one
    // of its arms (its condition decides which, not what).
    if (op->getNumRegions() == 0 &&
        llvm::all_of(op->getResultTypes(),
                     [](Type t) { return t.isIntOrIndexOrFloat(); }) &&
        llvm::all_of(op->getOperands(), [&](Value v) {
          return v.getType().isIntOrIndexOrFloat();
        })) {
      ValueRange from = op->getOperands();
      if (auto select = dyn_cast<arith::SelectOp>(op))
        from = from.drop_front();
      if (llvm::any_of(from, [&](Value v) { return isPositionSize(v); }))
        for (Value r : op->getResults())
          sizes.insert(r);
      return success();
    }
    // Anything else must not see the positions, nor capture them in a
    // region (scf.for, tensor.generate, ...).
    bool captures = false;
    op->walk([&](Operation *inner) {
      if (inner != op && readsPosition(inner))
        captures = true;
    });
    if (!readsPosition(op) && !captures)
      return success();
    return refuse(op) << "reads the sequence positions in a way the "
                         "derivation cannot check";
  }

  /// scf.if: a condition that depends on the positions must be one whose
  /// branches differ only by a reported error, or compare two position
  /// extents (equal in @main and @decode alike for values of the same
  /// positions). Tensor results take the position of either branch; a
  /// scalar result is a position size if either branch yields one.
  LogicalResult visitIf(scf::IfOp ifOp) {
    Value cond = ifOp.getCondition();
    if (isPositionSize(cond) && !reportsError(ifOp)) {
      auto cmp = cond.getDefiningOp<arith::CmpIOp>();
      if (!cmp ||
          (cmp.getPredicate() != arith::CmpIPredicate::eq &&
           cmp.getPredicate() != arith::CmpIPredicate::ne) ||
          !isPositionSize(cmp.getLhs()) || !isPositionSize(cmp.getRhs()))
        return refuse(ifOp) << "branches on the sequence length";
    }
    for (Region &r : ifOp->getRegions())
      if (!r.empty() && failed(run(r.front())))
        return failure();
    for (auto [i, res] : llvm::enumerate(ifOp.getResults())) {
      PosInfo merged = of(res);
      bool size = false;
      for (Region &r : ifOp->getRegions()) {
        if (r.empty())
          continue;
        Value v = cast<scf::YieldOp>(r.front().getTerminator()).getOperand(i);
        size |= isPositionSize(v);
        PosInfo branch = of(v);
        for (auto [m, s] : llvm::zip(merged, branch))
          if (s != 0)
            m = (m == 0 || m == s) ? s : kUnknownStride;
      }
      info[res] = merged;
      if (size)
        sizes.insert(res);
    }
    return success();
  }

  /// Row-wise moe ops: the position may only be in dim `allowed` of the
  /// inputs, one per index, and is there in the result.
  LogicalResult rows(Operation *op, ArrayRef<Value> inputs, int64_t allowed) {
    for (Value v : inputs) {
      if (!v)
        continue;
      PosInfo in = of(v);
      for (auto [d, s] : llvm::enumerate(in))
        if (s != 0 && (static_cast<int64_t>(d) != allowed || s != 1))
          return refuse(op) << "mixes rows across the position dim";
    }
    for (Value w : op->getOperands())
      if (!llvm::is_contained(inputs, w) && (carries(w) || isPositionSize(w)))
        return refuse(op) << "reads weights computed from the tokens";
    PosInfo result(cast<RankedTensorType>(op->getResult(0).getType())
                       .getRank(),
                   0);
    if (llvm::any_of(inputs, [&](Value v) { return v && carries(v); }))
      result[allowed] = 1;
    info[op->getResult(0)] = result;
    return success();
  }

  /// True if `op` is the importer's run-time broadcast of `operand` along
  /// `d`: the then-branch of `scf.if (tensor.dim operand, d) == 1`.
  static bool isBroadcastBranch(Operation *op, Value operand, int64_t d) {
    auto ifOp = dyn_cast<scf::IfOp>(op->getParentOp());
    if (!ifOp || op->getParentRegion() != &ifOp.getThenRegion())
      return false;
    auto cmp = ifOp.getCondition().getDefiningOp<arith::CmpIOp>();
    if (!cmp || cmp.getPredicate() != arith::CmpIPredicate::eq)
      return false;
    std::optional<int64_t> one = getConstantIntValue(cmp.getRhs());
    auto dim = cmp.getLhs().getDefiningOp<tensor::DimOp>();
    return one && *one == 1 && dim && dim.getSource() == operand &&
           dim.getConstantIndex() == d;
  }

  LogicalResult visitLinalg(linalg::LinalgOp op) {
    Operation *raw = op.getOperation();
    SmallVector<utils::IteratorType> iters = op.getIteratorTypesArray();
    // The loops that run along positions, with their strides.
    DenseMap<unsigned, int64_t> loopStride;
    for (OpOperand &operand : raw->getOpOperands()) {
      if (isPositionSize(operand.get()))
        return refuse(raw) << "takes the sequence length as operand #"
                           << operand.getOperandNumber();
      PosInfo in = of(operand.get());
      AffineMap map = op.getMatchingIndexingMap(&operand);
      for (unsigned r = 0; r < in.size() && r < map.getNumResults(); ++r) {
        if (in[r] == 0)
          continue;
        AffineExpr e = map.getResult(r);
        if (auto c = dyn_cast<AffineConstantExpr>(e)) {
          if (c.getValue() == 0 && isBroadcastBranch(raw, operand.get(), r))
            continue;
          return refuse(raw) << "reads element " << c.getValue()
                             << " of a position dim";
        }
        auto dimExpr = dyn_cast<AffineDimExpr>(e);
        if (!dimExpr) {
          std::string text;
          llvm::raw_string_ostream os(text);
          e.print(os);
          return refuse(raw) << "indexes a position dim with " << text;
        }
        auto [it, added] = loopStride.try_emplace(dimExpr.getPosition(), in[r]);
        if (!added && it->second != in[r])
          return refuse(raw) << "reads positions with different layouts "
                                "along loop "
                             << dimExpr.getPosition();
      }
    }
    for (auto [l, s] : loopStride) {
      if (iters[l] != utils::IteratorType::parallel)
        return refuse(raw) << "reduces over the position dim (loop " << l
                           << ")";
      // Each result keeps its positions apart: the loop is one of its dims.
      for (OpOperand &init : op.getDpsInitsMutable())
        if (!llvm::is_contained(op.getMatchingIndexingMap(&init).getResults(),
                                getAffineDimExpr(l, raw->getContext())))
          return refuse(raw) << "folds the position loop " << l
                             << " into its result";
    }
    // Position-free operands must not be read along a position loop (a
    // table indexed by the position, a mask).
    for (OpOperand &operand : raw->getOpOperands()) {
      if (carries(operand.get()))
        continue;
      AffineMap map = op.getMatchingIndexingMap(&operand);
      for (auto [l, s] : loopStride)
        if (map.isFunctionOfDim(l))
          return refuse(raw) << "reads operand #" << operand.getOperandNumber()
                             << ", which is position-free, along the "
                                "position (loop "
                             << l << ")";
    }
    // The body: no index of a position loop; nothing from outside that
    // depends on the positions.
    if (raw->getNumRegions()) {
      WalkResult walk = raw->getRegion(0).walk([&](Operation *inner) {
        if (auto index = dyn_cast<linalg::IndexOp>(inner))
          if (loopStride.count(index.getDim())) {
            refuse(raw) << "reads the index of the position loop "
                        << index.getDim();
            return WalkResult::interrupt();
          }
        for (Value v : inner->getOperands())
          if (carries(v) || isPositionSize(v)) {
            refuse(raw) << "reads a position-carrying tensor or a "
                           "sequence length inside its body ('"
                        << inner->getName() << "')";
            return WalkResult::interrupt();
          }
        return WalkResult::advance();
      });
      if (walk.wasInterrupted())
        return failure();
    }
    for (OpResult r : raw->getResults()) {
      AffineMap map = op.getIndexingMapMatchingResult(r);
      PosInfo result(map.getNumResults(), 0);
      for (unsigned i = 0; i < map.getNumResults(); ++i)
        if (auto e = dyn_cast<AffineDimExpr>(map.getResult(i)))
          if (auto it = loopStride.find(e.getPosition());
              it != loopStride.end())
            result[i] = it->second;
      info[r] = result;
    }
    return success();
  }

  /// A group holding a position dim p with stride s merges into one dim of
  /// stride s times the (static) sizes inside p in the group.
  LogicalResult visitCollapse(tensor::CollapseShapeOp collapse) {
    PosInfo src = of(collapse.getSrc());
    auto srcType = collapse.getSrcType();
    PosInfo result;
    for (ReassociationIndices group : collapse.getReassociationIndices()) {
      int64_t stride = 0;
      for (auto [i, d] : llvm::enumerate(group)) {
        if (src[d] == 0)
          continue;
        if (stride != 0 || src[d] == kUnknownStride) {
          stride = kUnknownStride; // two position dims in one group
          break;
        }
        stride = src[d];
        for (int64_t inner : ArrayRef<int64_t>(group).drop_front(i + 1)) {
          int64_t size = srcType.getDimSize(inner);
          if (ShapedType::isDynamic(size)) {
            stride = kUnknownStride;
            break;
          }
          stride *= size;
        }
        if (stride == kUnknownStride)
          break;
      }
      result.push_back(stride);
    }
    info[collapse.getResult()] = result;
    return success();
  }

  /// A merged dim of stride s splits exactly when one result dim p is sized
  /// by a position size, the (static) sizes inside it multiply to s, and
  /// the dims outside it are batch sizes or 1 (the rows were batch-major).
  LogicalResult visitExpand(tensor::ExpandShapeOp expand) {
    PosInfo src = of(expand.getSrc());
    auto type = expand.getResultType();
    SmallVector<OpFoldResult> sizes = expand.getMixedOutputShape();
    PosInfo result(type.getRank(), 0);
    auto sizeIs = [&](int64_t d, auto pred) {
      auto v = dyn_cast<Value>(sizes[d]);
      return v && pred(v);
    };
    for (auto [g, group] : llvm::enumerate(expand.getReassociationIndices())) {
      if (src[g] == 0)
        continue;
      SmallVector<int64_t> positional;
      for (int64_t d : group)
        if (sizeIs(d, [&](Value v) { return isPositionSize(v); }))
          positional.push_back(d);
      if (positional.size() != 1 || src[g] == kUnknownStride)
        return expand->emitError()
               << "cannot derive generation entries: this expand_shape does "
                  "not split the positions from the other dims exactly";
      int64_t p = positional.front();
      int64_t inner = 1;
      bool outer = true;
      for (int64_t d : group) {
        if (d == p) {
          outer = false;
          continue;
        }
        if (outer) {
          if (type.getDimSize(d) != 1 &&
              !sizeIs(d, [&](Value v) { return isBatchSize(v); }))
            return expand->emitError()
                   << "cannot derive generation entries: this expand_shape "
                      "splits dim "
                   << d << " off outside the positions, not a batch size";
          continue;
        }
        if (ShapedType::isDynamic(type.getDimSize(d)))
          return expand->emitError()
                 << "cannot derive generation entries: this expand_shape "
                    "has a dynamic dim inside the positions";
        inner *= type.getDimSize(d);
      }
      if (inner != src[g])
        return expand->emitError()
               << "cannot derive generation entries: this expand_shape cuts "
                  "across positions ("
               << inner << " elements per row, " << src[g] << " per position)";
      result[p] = 1;
    }
    info[expand.getResult()] = result;
    return success();
  }

  llvm::DenseMap<Value, PosInfo> info;
  llvm::DenseSet<Value> sizes;
};

/// The importer computes sizes of shapes read from the graph with
/// Reshape's 0 and -1 rules; a 0 entry copies an input dim, so one value can
/// be a batch size or a row count. In a derived entry, each function-level
/// select of such a rule is replaced by the arm a well-formed model takes:
///   select(x == -1, y, z) -> z, where x is a tensor.dim (never -1);
///   select(x == 0, y, x)  -> x, with a run-time check that y is 0 too
///                            where x is (an error, not a wrong answer).
/// This leaves sizes the position analysis can follow.
void simplifySizeSelects(func::FuncOp fn) {
  SmallVector<arith::SelectOp> selects;
  for (Operation &op : fn.getBody().front())
    if (auto select = dyn_cast<arith::SelectOp>(&op);
        select && select.getType().isIndex())
      selects.push_back(select);
  OpBuilder b(fn.getContext());
  for (arith::SelectOp op : selects) {
    auto cmp = op.getCondition().getDefiningOp<arith::CmpIOp>();
    Value t = op.getTrueValue(), f = op.getFalseValue();
    if (!cmp || cmp.getPredicate() != arith::CmpIPredicate::eq)
      continue;
    std::optional<int64_t> c = getConstantIntValue(cmp.getRhs());
    if (c && *c == -1 &&
        stripCasts(cmp.getLhs()).getDefiningOp<tensor::DimOp>()) {
      op.replaceAllUsesWith(f);
      op.erase();
    } else if (c && *c == 0 && cmp.getLhs() == f) {
      b.setInsertionPoint(op);
      Location loc = op.getLoc();
      Value differs = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne,
                                            t, cmp.getRhs());
      Value bad = arith::AndIOp::create(b, loc, op.getCondition(), differs);
      build::reportIf(b, loc, bad, kErrorShapeMismatch);
      op.replaceAllUsesWith(f);
      op.erase();
    }
  }
}

struct MoeGenerationEntriesPass
    : moe::impl::MoeGenerationEntriesBase<MoeGenerationEntriesPass> {
  using Base::Base;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto main = module.lookupSymbol<func::FuncOp>("main");
    if (!main || main.isExternal()) {
      module.emitError() << "cannot derive generation entries: no @main";
      return signalPassFailure();
    }
    for (StringRef name : {"prefill", "decode"})
      if (module.lookupSymbol(name)) {
        main.emitError() << "cannot derive generation entries: the module "
                            "already has a symbol @"
                         << name;
        return signalPassFailure();
      }
    if (failed(check(main)))
      return signalPassFailure();
    // Both or neither: a failure erases what was derived.
    SmallVector<func::FuncOp> derived;
    for (bool withCache : {true, false}) {
      FailureOr<func::FuncOp> fn = derive(module, main, withCache);
      if (failed(fn)) {
        for (func::FuncOp f : derived)
          f.erase();
        return signalPassFailure();
      }
      derived.push_back(*fn);
    }
  }

  /// The token input, and the checks of the file comment.
  LogicalResult check(func::FuncOp main) {
    Location loc = main.getLoc();
    // Outlined weights (moe-compile --emit=moe compiled again) are not
    // inputs.
    unsigned inputs = 0;
    for (unsigned i = 0; i < main.getNumArguments(); ++i)
      if (!main.getArgAttr(i, "moe.weight"))
        ++inputs;
    if (inputs != 1 || main.getArgAttr(0, "moe.weight"))
      return emitError(loc) << "cannot derive generation entries: @main must "
                               "take one input, the tokens [B, T]; it takes "
                            << inputs;
    Value tokens = main.getArgument(0);
    auto type = dyn_cast<RankedTensorType>(tokens.getType());
    if (!type || type.getRank() != 2 ||
        !isa<IntegerType>(type.getElementType()))
      return emitError(loc) << "cannot derive generation entries: the input "
                               "must be integer tokens [B, T], got "
                            << tokens.getType();
    if (!type.isDynamicDim(1))
      return emitError(loc)
             << "cannot derive generation entries: the sequence dim of the "
                "tokens is static ("
             << type << "); export the model with a dynamic sequence axis";
    SmallVector<SwitchHeadOp> heads;
    main.walk([&](SwitchHeadOp op) { heads.push_back(op); });
    if (heads.empty())
      return emitError(loc) << "cannot derive generation entries: the model "
                               "has no causal attention (moe.switchhead); "
                               "generation needs a causal language model";
    for (SwitchHeadOp op : heads) {
      if (!op.getCausal())
        return op.emitError() << "cannot derive generation entries: this "
                                 "attention is not causal";
      // Its new rows become results of the function: it must run once,
      // in the function body.
      if (op->getBlock() != &main.getBody().front())
        return op.emitError() << "cannot derive generation entries: this "
                                 "attention is inside a region";
    }
    return success();
  }

  /// The position analysis of the file comment, on a derived copy.
  LogicalResult checkPositions(func::FuncOp fn) {
    PositionAnalysis analysis(fn.getArgument(0));
    if (failed(analysis.run(fn.getBody().front())))
      return failure();
    auto ret = cast<func::ReturnOp>(fn.getBody().front().getTerminator());
    for (auto [i, v] : llvm::enumerate(ret.getOperands()))
      if (analysis.of(v) != PosInfo{0, 1, 0})
        return emitError(fn.getLoc())
               << "cannot derive generation entries: output " << i
               << " must be [B, T, V] with the positions in dim 1 only";
    return success();
  }

  /// @prefill (no cache) or @decode (caches as inputs): a copy of @main
  /// whose attention layers read the cache and return their new rows.
  FailureOr<func::FuncOp> derive(ModuleOp module, func::FuncOp main,
                                 bool withCache) {
    StringRef name = withCache ? "decode" : "prefill";
    OpBuilder b(main);
    b.setInsertionPointAfter(main);
    auto fn = cast<func::FuncOp>(b.clone(*main));
    fn.setSymName(name);
    simplifySizeSelects(fn);
    if (failed(checkPositions(fn))) {
      fn.erase();
      return failure();
    }
    // The cache length's dim symbol, distinct from the tokens' own.
    MLIRContext *ctx = module.getContext();
    Block &body = fn.getBody().front();
    ArrayAttr tokenParams =
        fn.getArgAttrOfType<ArrayAttr>(0, "onnx.dim_params");
    auto param = [&](unsigned d) -> Attribute {
      return tokenParams && d < tokenParams.size() ? tokenParams[d]
                                                   : StringAttr::get(ctx, "");
    };
    std::string capacity = "C";
    while (tokenParams && llvm::any_of(tokenParams, [&](Attribute a) {
             auto str = dyn_cast<StringAttr>(a);
             return str && str.getValue() == capacity;
           }))
      capacity += "_";
    Attribute capacitySymbol = StringAttr::get(ctx, capacity);
    SmallVector<SwitchHeadOp> heads;
    fn.walk([&](SwitchHeadOp op) { heads.push_back(op); });
    // One cache shape for every layer: [L, B, H, *, dk] and
    // [L, B, H, *, dv] hold them all, layer- and head-major.
    auto cacheDims = [](SwitchHeadOp op) {
      auto srcType = cast<RankedTensorType>(op.getQSrc().getType());
      int64_t h = op.getNumHeads();
      int64_t dk = cast<RankedTensorType>(op.getWq().getType()).getDimSize(1);
      dk = ShapedType::isDynamic(dk) ? dk : dk / h;
      int64_t dv = cast<RankedTensorType>(op.getWv().getType()).getDimSize(2);
      return std::make_tuple(srcType.getElementType(), srcType.getDimSize(0),
                             h, dk, dv);
    };
    auto first = cacheDims(heads.front());
    Type elt = std::get<0>(first);
    int64_t batch = std::get<1>(first), h = std::get<2>(first),
            dk = std::get<3>(first), dv = std::get<4>(first);
    bool widthsStatic = !ShapedType::isDynamic(std::get<3>(first)) &&
                        !ShapedType::isDynamic(std::get<4>(first));
    for (SwitchHeadOp op : heads)
      if (!widthsStatic || cacheDims(op) != first) {
        op.emitError() << "cannot derive generation entries: every attention "
                          "layer must have the same element type, batch, "
                          "heads and static key and value widths, for one "
                          "stacked cache";
        fn.erase();
        return failure();
      }
    int64_t layers = static_cast<int64_t>(heads.size());
    auto stacked = [&](int64_t p, int64_t d) {
      return RankedTensorType::get({layers, batch, h, p, d}, elt);
    };
    auto attrs = [&](StringRef name, Attribute positions) {
      NamedAttribute n(StringAttr::get(ctx, "onnx.name"),
                       StringAttr::get(ctx, name));
      Attribute none = StringAttr::get(ctx, "");
      NamedAttribute p(
          StringAttr::get(ctx, "onnx.dim_params"),
          ArrayAttr::get(ctx, {none, param(0), none, positions, none}));
      return DictionaryAttr::get(ctx, {n, p});
    };
    // Sizes and layer indices before the first op: values every layer uses
    // the same way, or (the indices) constants RollRepeats turns into the
    // loop's c + i*s, so that the derived layers roll like @main's.
    Location loc = fn.getLoc();
    b.setInsertionPointToStart(&body);
    Value tokens = body.getArgument(0);
    Value t = tensor::DimOp::create(b, loc, tokens, 1);
    // The sources' batch is the tokens' (the attention checks it at run
    // time).
    OpFoldResult bSize =
        ShapedType::isDynamic(batch)
            ? OpFoldResult(tensor::DimOp::create(b, loc, tokens, 0))
            : OpFoldResult(b.getIndexAttr(batch));
    SmallVector<Value> layerIndex;
    for (int64_t l = 0; l < layers; ++l) {
      auto index = arith::ConstantIndexOp::create(b, loc, l);
      index->setAttr(kIndexedConstantAttrName, b.getUnitAttr());
      layerIndex.push_back(index);
    }
    Value pastKey, pastValue, pastLen;
    if (withCache) {
      unsigned at = fn.getNumArguments();
      NamedAttribute lengthName(StringAttr::get(ctx, "onnx.name"),
                                StringAttr::get(ctx, "past_length"));
      if (failed(fn.insertArgument(at, stacked(ShapedType::kDynamic, dk),
                                   attrs("past_key", capacitySymbol), loc)) ||
          failed(fn.insertArgument(at + 1, stacked(ShapedType::kDynamic, dv),
                                   attrs("past_value", capacitySymbol), loc)) ||
          failed(fn.insertArgument(
              at + 2, RankedTensorType::get({}, b.getI64Type()),
              DictionaryAttr::get(ctx, {lengthName}), loc))) {
        fn.erase();
        return failure();
      }
      pastKey = body.getArgument(at);
      pastValue = body.getArgument(at + 1);
      Value capacityDim = tensor::DimOp::create(b, loc, pastKey, 3);
      build::declareErrorHook(b, fn);
      // The values' cache as long as the keys', both of the tokens' batch:
      // otherwise a report and zeros of that size (requireSize), so that
      // the slices below stay inside their buffers.
      pastValue = build::requireSize(b, loc, pastValue, 3, capacityDim,
                                     kErrorShapeMismatch);
      pastKey =
          build::requireSize(b, loc, pastKey, 1, bSize, kErrorShapeMismatch);
      pastValue =
          build::requireSize(b, loc, pastValue, 1, bSize, kErrorShapeMismatch);
      // The cached positions: 0 <= P <= C, otherwise a report and P = 0.
      Value length = arith::IndexCastOp::create(
          b, loc, b.getIndexType(),
          tensor::ExtractOp::create(b, loc, body.getArgument(at + 2),
                                    ValueRange{}));
      Value one = arith::ConstantIndexOp::create(b, loc, 1);
      pastLen = build::checkedIndex(
          b, loc, length, arith::AddIOp::create(b, loc, capacityDim, one),
          kErrorCacheLengthOutOfRange);
    }
    auto full = [&](OpFoldResult positions, int64_t d) {
      return SmallVector<OpFoldResult>{b.getIndexAttr(1), bSize,
                                       b.getIndexAttr(h), positions,
                                       b.getIndexAttr(d)};
    };
    auto newRowsInit = [&](int64_t d) -> Value {
      SmallVector<Value> dyn;
      if (ShapedType::isDynamic(batch))
        dyn.push_back(cast<Value>(bSize));
      dyn.push_back(t);
      return tensor::EmptyOp::create(b, loc,
                                     stacked(ShapedType::kDynamic, d), dyn);
    };
    Value newKeys = newRowsInit(dk), newValues = newRowsInit(dv);
    SmallVector<OpFoldResult> ones(5, b.getIndexAttr(1));
    for (auto [l, op] : llvm::enumerate(heads)) {
      Location opLoc = op.getLoc();
      b.setInsertionPoint(op);
      SmallVector<OpFoldResult> at{layerIndex[l], b.getIndexAttr(0),
                                   b.getIndexAttr(0), b.getIndexAttr(0),
                                   b.getIndexAttr(0)};
      auto layerType = [&](int64_t p, int64_t d) {
        return RankedTensorType::get({batch, h, p, d}, elt);
      };
      Value layerKey, layerValue;
      if (withCache) {
        layerKey = tensor::ExtractSliceOp::create(
            b, opLoc, layerType(ShapedType::kDynamic, dk), pastKey, at,
            full(pastLen, dk), ones);
        layerValue = tensor::ExtractSliceOp::create(
            b, opLoc, layerType(ShapedType::kDynamic, dv), pastValue, at,
            full(pastLen, dv), ones);
      } else {
        SmallVector<Value> dyn;
        if (ShapedType::isDynamic(batch))
          dyn.push_back(cast<Value>(bSize));
        layerKey = tensor::EmptyOp::create(b, opLoc, layerType(0, dk), dyn);
        layerValue = tensor::EmptyOp::create(b, opLoc, layerType(0, dv), dyn);
      }
      int64_t tStatic = cast<RankedTensorType>(op.getQSrc().getType())
                            .getDimSize(1);
      auto cached = SwitchHeadCachedOp::create(
          b, opLoc,
          TypeRange{op.getType(), layerType(tStatic, dk),
                    layerType(tStatic, dv)},
          op.getQSrc(), op.getKSrc(), op.getVSrc(), op.getWq(), op.getWk(),
          op.getWv(), op.getWo(), op.getSelO(), layerKey, layerValue,
          op.getSelV(), op.getNumHeads(), op.getK(), op.getCausal(),
          op.getRotateFraction(), op.getRopeBase());
      op.getResult().replaceAllUsesWith(cached.getResult());
      op.erase();
      b.setInsertionPointAfter(cached);
      // The new rows [B, H, T, d] as the tokens size them.
      auto rowsOf = [&](Value rows) {
        rows = build::requireSize(b, opLoc, rows, 2, t, kErrorShapeMismatch);
        return build::requireSize(b, opLoc, rows, 0, bSize,
                                  kErrorShapeMismatch);
      };
      newKeys = tensor::InsertSliceOp::create(
          b, opLoc, rowsOf(cached.getNewKey()), newKeys, at, full(t, dk),
          ones);
      newValues = tensor::InsertSliceOp::create(
          b, opLoc, rowsOf(cached.getNewValue()), newValues, at,
          full(t, dv), ones);
    }
    SmallVector<Value> newRows{newKeys, newValues};
    SmallVector<DictionaryAttr> rowAttrs{attrs("new_key", param(1)),
                                         attrs("new_value", param(1))};
    // The new rows follow the model's outputs.
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    SmallVector<Value> results(ret.getOperands());
    SmallVector<DictionaryAttr> resultAttrs;
    for (unsigned i = 0; i < fn.getNumResults(); ++i)
      resultAttrs.push_back(fn.getResultAttrDict(i));
    b.setInsertionPoint(ret);
    if (!withCache && !allLogits) {
      // @prefill returns the last position of each output [B, T, V] as
      // [B, 1, V]: what the next token is drawn from. An empty prompt has
      // none: requireSize reports it and gives zeros of one position, so
      // the slice at max(T, 1) - 1 stays inside its tensor.
      Value one = arith::ConstantIndexOp::create(b, loc, 1);
      Value atLeastOne = arith::MaxUIOp::create(b, loc, t, one);
      Value last = arith::SubIOp::create(b, loc, atLeastOne, one);
      for (size_t i = 0; i < results.size(); ++i) {
        Value v = build::requireSize(b, loc, results[i], 1, atLeastOne,
                                     kErrorShapeMismatch);
        auto type = cast<RankedTensorType>(v.getType());
        SmallVector<int64_t> shape(type.getShape());
        shape[1] = 1;
        SmallVector<OpFoldResult> offsets(type.getRank(), b.getIndexAttr(0));
        offsets[1] = last;
        SmallVector<OpFoldResult> sizes;
        for (int64_t d = 0; d < type.getRank(); ++d)
          sizes.push_back(d == 1 ? OpFoldResult(b.getIndexAttr(1))
                                 : build::sizeOf(b, loc, v, d));
        SmallVector<OpFoldResult> strides(type.getRank(), b.getIndexAttr(1));
        results[i] = tensor::ExtractSliceOp::create(
            b, loc, RankedTensorType::get(shape, type.getElementType()), v,
            offsets, sizes, strides);
        // Its dim 1 is now static.
        if (DictionaryAttr dict = resultAttrs[i]) {
          NamedAttrList list(dict);
          if (auto params = dyn_cast_or_null<ArrayAttr>(
                  list.get("onnx.dim_params"))) {
            SmallVector<Attribute> p(params.getValue());
            if (p.size() > 1)
              p[1] = StringAttr::get(ctx, "");
            list.set("onnx.dim_params", ArrayAttr::get(ctx, p));
          }
          resultAttrs[i] = list.getDictionary(ctx);
        }
      }
    }
    results.append(newRows);
    resultAttrs.append(rowAttrs);
    func::ReturnOp::create(b, ret.getLoc(), results);
    ret.erase();
    fn.setType(FunctionType::get(ctx, body.getArgumentTypes(),
                                 ValueRange(results).getTypes()));
    for (auto [i, a] : llvm::enumerate(resultAttrs))
      fn.setResultAttrs(i, a ? a : DictionaryAttr::get(ctx));
    return fn;
  }
};

} // namespace

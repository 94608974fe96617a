//===- GenerationEntries.cpp - @prefill and @decode from a causal @main ----===//
//
// A causal language model (MoEUT: tokens [B, T] -> logits [B, T, V], its
// attention `moe.switchhead` with `causal`) computes each position from the
// positions before it. This pass derives the two functions a generation
// loop runs, next to @main and sharing its weights:
//
//   @prefill(tokens [B, T])
//       -> (logits [B, T, V], new_key.l [T, B, H, dk], new_value.l ...)
//   @decode(tokens [B, T], past_key.l [P, B, H, dk], past_value.l ...)
//       -> (logits [B, T, V], new_key.l, new_value.l ...)
//
// for the attention layers l in program order: each moe.switchhead becomes
// a moe.switchhead_cached that reads the cache (empty in @prefill) and
// returns the rows to append. The logits of the T new tokens equal rows
// P..P+T-1 of @main on the whole sequence.
//
// That holds only if everything else in @main treats each position on its
// own. The pass checks it before deriving anything (a forward dataflow
// analysis over the position dims of each tensor):
//   - the tokens' dim 1 is the position dim; a tensor.dim of a position dim
//     is a position size, and so is arithmetic on one; a tensor.empty sized
//     by one has that dim as a position dim;
//   - a linalg op maps each position dim of its operands to one parallel
//     loop, reads no position-free operand along such a loop, does not read
//     the loop's index (linalg.index), and reads no position-carrying tensor
//     with tensor.extract inside its body; the position loops give the
//     result's position dims;
//   - collapse_shape and expand_shape keep the position in the groups that
//     hold it (an expanded dim is a position dim when its size is a position
//     size, or is not known to be a batch size or 1);
//   - moe.ffn and moe.tree_ffn work on rows (position in dim 0 only),
//     moe.mot mixes across the batch at one position (position in dim 1
//     only), moe.switchhead takes sources with the position in dim 1 only;
//   - scf.if yields the union of its branches;
//   - any other op that reads a position-carrying tensor is refused, by
//     name, as are static sequence lengths (a derived @decode needs the
//     tokens' dim 1 dynamic).
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoeOps.h"
#include "moe/Transforms/Passes.h"
#include "moe/Utils/BuildUtils.h"
#include "moe/Utils/RuntimeErrors.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEGENERATIONENTRIES
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// Position dims of a tensor value (bit d: dim d may hold the position).
using Dims = uint64_t;

bool has(Dims dims, int64_t d) { return d < 64 && (dims >> d) & 1; }
Dims bit(int64_t d) { return d < 64 ? Dims(1) << d : 0; }

/// The position-locality analysis of the file comment.
class PositionAnalysis {
public:
  explicit PositionAnalysis(Value tokens) { dims[tokens] = bit(1); }

  LogicalResult run(Block &block) {
    for (Operation &op : block)
      if (failed(visit(&op)))
        return failure();
    return success();
  }

  Dims of(Value v) const { return dims.lookup(v); }
  bool isPositionSize(Value v) const { return sizes.contains(v); }

private:
  InFlightDiagnostic refuse(Operation *op) {
    return op->emitError()
           << "cannot derive generation entries: '" << op->getName() << "' ";
  }

  bool readsPosition(Operation *op) const {
    return llvm::any_of(op->getOperands(), [&](Value v) {
      return of(v) != 0 || isPositionSize(v);
    });
  }

  LogicalResult visit(Operation *op) {
    if (auto dim = dyn_cast<tensor::DimOp>(op)) {
      std::optional<int64_t> d = dim.getConstantIndex();
      if (!d ? of(dim.getSource()) != 0 : has(of(dim.getSource()), *d))
        sizes.insert(dim.getResult());
      return success();
    }
    if (auto empty = dyn_cast<tensor::EmptyOp>(op)) {
      Dims result = 0;
      auto type = empty.getType();
      unsigned next = 0;
      for (int64_t d = 0; d < type.getRank(); ++d)
        if (type.isDynamicDim(d) &&
            isPositionSize(empty.getDynamicSizes()[next++]))
          result |= bit(d);
      dims[empty.getResult()] = result;
      return success();
    }
    if (auto ifOp = dyn_cast<scf::IfOp>(op)) {
      for (Region &r : ifOp->getRegions())
        if (!r.empty() && failed(run(r.front())))
          return failure();
      for (Region &r : ifOp->getRegions()) {
        if (r.empty())
          continue;
        auto yield = cast<scf::YieldOp>(r.front().getTerminator());
        for (auto [res, v] : llvm::zip(ifOp.getResults(), yield.getOperands()))
          dims[res] |= of(v);
      }
      return success();
    }
    if (isa<scf::YieldOp, func::ReturnOp>(op))
      return success();
    // The importer's error hook (moe_report_error(code)); any other call
    // must not see the positions.
    if (isa<func::CallOp>(op) && !readsPosition(op))
      return success();
    if (auto linalgOp = dyn_cast<linalg::LinalgOp>(op))
      return visitLinalg(linalgOp);
    if (auto collapse = dyn_cast<tensor::CollapseShapeOp>(op)) {
      Dims src = of(collapse.getSrc()), result = 0;
      for (auto [g, group] :
           llvm::enumerate(collapse.getReassociationIndices()))
        for (int64_t d : group)
          if (has(src, d))
            result |= bit(g);
      dims[collapse.getResult()] = result;
      return success();
    }
    if (auto expand = dyn_cast<tensor::ExpandShapeOp>(op))
      return visitExpand(expand);
    if (auto cast = dyn_cast<tensor::CastOp>(op)) {
      dims[cast.getResult()] = of(cast.getSource());
      return success();
    }
    if (auto ffn = dyn_cast<FfnOp>(op))
      return rows(op, {ffn.getInput(), ffn.getSelectorInput()}, ffn, 0);
    if (auto tree = dyn_cast<TreeFfnOp>(op))
      return rows(op, {tree.getInput()}, tree, 0);
    if (auto mot = dyn_cast<MotOp>(op))
      return rows(op, {mot.getInput()}, mot, 1);
    if (auto sh = dyn_cast<SwitchHeadOp>(op)) {
      for (Value src : {sh.getQSrc(), sh.getKSrc(), sh.getVSrc()})
        if (of(src) != bit(1))
          return refuse(op) << "needs sources whose only position dim is "
                               "dim 1 (the sequence), got a position in "
                               "dims mask "
                            << of(src);
      for (Value w : {sh.getWq(), sh.getWk(), sh.getWv(), sh.getWo(),
                      sh.getSelO(), sh.getSelV()})
        if (w && of(w) != 0)
          return refuse(op) << "reads weights computed from the tokens";
      dims[sh.getResult()] = bit(1);
      return success();
    }
    // Scalars: position sizes propagate through arithmetic.
    if (op->getNumRegions() == 0 &&
        llvm::all_of(op->getResultTypes(),
                     [](Type t) { return t.isIntOrIndexOrFloat(); }) &&
        llvm::all_of(op->getOperands(),
                     [&](Value v) { return v.getType().isIntOrIndexOrFloat(); })) {
      if (llvm::any_of(op->getOperands(),
                       [&](Value v) { return isPositionSize(v); }))
        for (Value r : op->getResults())
          sizes.insert(r);
      return success();
    }
    if (!readsPosition(op)) {
      // Nothing derived from the positions: constants, weights, fills of
      // position-free shapes.
      for (Value r : op->getResults())
        if (isa<RankedTensorType>(r.getType()))
          dims[r] = 0;
      return success();
    }
    return refuse(op) << "reads the sequence positions in a way the "
                         "derivation cannot check";
  }

  /// Row-wise moe ops: the position may only be in dim `allowed` of the
  /// inputs, and is there in the result.
  LogicalResult rows(Operation *op, ArrayRef<Value> inputs, Operation *res,
                     int64_t allowed) {
    for (Value v : inputs)
      if (v && (of(v) & ~bit(allowed)))
        return refuse(op) << "mixes rows across the position dim";
    for (Value w : op->getOperands())
      if (!llvm::is_contained(inputs, w) && of(w) != 0)
        return refuse(op) << "reads weights computed from the tokens";
    dims[res->getResult(0)] = bit(allowed);
    return success();
  }

  LogicalResult visitLinalg(linalg::LinalgOp op) {
    Operation *raw = op.getOperation();
    SmallVector<AffineMap> maps = op.getIndexingMapsArray();
    SmallVector<utils::IteratorType> iters = op.getIteratorTypesArray();
    // Loops that run along a position dim of some operand.
    llvm::SmallBitVector posLoops(op.getNumLoops());
    for (OpOperand &operand : raw->getOpOperands()) {
      Dims d = of(operand.get());
      if (!d)
        continue;
      AffineMap map = op.getMatchingIndexingMap(&operand);
      for (unsigned r = 0; r < map.getNumResults(); ++r) {
        if (!has(d, r))
          continue;
        AffineExpr e = map.getResult(r);
        if (auto c = dyn_cast<AffineConstantExpr>(e)) {
          // Element 0 of a position dim: the branch of the importer's
          // run-time broadcast (an scf.if), taken only when the dim is 1
          // while the other operand's is not, which two values of the same
          // positions never are. Elsewhere it reads one position for all
          // (first-token pooling): refused.
          if (c.getValue() == 0 && raw->getParentOfType<scf::IfOp>())
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
        posLoops.set(dimExpr.getPosition());
      }
    }
    for (unsigned l : posLoops.set_bits())
      if (iters[l] != utils::IteratorType::parallel)
        return refuse(raw) << "reduces over the position dim (loop " << l
                           << ")";
    // Position-free operands must not be read along a position loop (a
    // table indexed by the position, a mask).
    for (OpOperand &operand : raw->getOpOperands()) {
      if (of(operand.get()))
        continue;
      AffineMap map = op.getMatchingIndexingMap(&operand);
      for (unsigned l : posLoops.set_bits())
        if (map.isFunctionOfDim(l))
          return refuse(raw) << "reads operand #" << operand.getOperandNumber()
                             << ", which is position-free, along the "
                                "position (loop "
                             << l << ")";
    }
    // The body: no index of a position loop; no extract from a
    // position-carrying tensor; nothing else position-dependent.
    if (raw->getNumRegions()) {
      WalkResult walk = raw->getRegion(0).walk([&](Operation *inner) {
        if (auto index = dyn_cast<linalg::IndexOp>(inner))
          if (posLoops.test(index.getDim())) {
            refuse(raw) << "reads the index of the position loop "
                        << index.getDim();
            return WalkResult::interrupt();
          }
        for (Value v : inner->getOperands())
          if (of(v) != 0 || isPositionSize(v)) {
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
      Dims result = 0;
      for (unsigned i = 0; i < map.getNumResults(); ++i)
        if (auto e = dyn_cast<AffineDimExpr>(map.getResult(i)))
          if (posLoops.test(e.getPosition()))
            result |= bit(i);
      // An init that carries a position keeps it (elementwise updates).
      dims[r] = result | of(op.getDpsInitOperand(r.getResultNumber())->get());
    }
    return success();
  }

  LogicalResult visitExpand(tensor::ExpandShapeOp expand) {
    Dims src = of(expand.getSrc()), result = 0;
    auto type = expand.getResultType();
    SmallVector<OpFoldResult> sizes = expand.getMixedOutputShape();
    for (auto [g, group] : llvm::enumerate(expand.getReassociationIndices())) {
      if (!has(src, g))
        continue;
      Dims inGroup = 0, unknown = 0;
      bool outer = true; // before the first dim sized by a position size
      for (int64_t d : group) {
        if (type.getDimSize(d) == 1)
          continue;
        auto v = dyn_cast<Value>(sizes[d]);
        if (v && isPositionSize(v)) {
          inGroup |= bit(d);
          outer = false;
          continue;
        }
        bool batch = v && isBatchSize(v);
        // A dim split off outside the positions must be a batch size (the
        // rows were batch-major): a static one would cut across them.
        if (outer && !batch && v == Value() && inGroup == 0 &&
            llvm::any_of(group, [&](int64_t e) {
              auto w = dyn_cast<Value>(sizes[e]);
              return w && isPositionSize(w);
            }))
          return expand->emitError()
                 << "cannot derive generation entries: this expand_shape "
                    "splits a dim of static size "
                 << type.getDimSize(d) << " off outside the positions";
        if (!batch)
          unknown |= bit(d);
      }
      // The dims sized by a position size hold it; with none, every dim
      // that may hold it does.
      result |= inGroup ? inGroup : unknown;
      if (!(inGroup | unknown))
        return expand->emitError()
               << "cannot derive generation entries: this expand_shape "
                  "loses track of the position dim";
    }
    dims[expand.getResult()] = result;
    return success();
  }

  /// A size known not to be a position size: a tensor.dim of a dim that
  /// holds no position.
  bool isBatchSize(Value v) const {
    auto dim = v.getDefiningOp<tensor::DimOp>();
    if (!dim)
      return false;
    std::optional<int64_t> d = dim.getConstantIndex();
    return d && !has(of(dim.getSource()), *d) && !isPositionSize(v);
  }

  llvm::DenseMap<Value, Dims> dims;
  llvm::DenseSet<Value> sizes;
};

/// True if `c` is the condition of an scf.if that reports a run-time error
/// (the importer's shape checks: the run fails when it holds).
bool isErrorCondition(Value c) {
  return llvm::any_of(c.getUsers(), [](Operation *user) {
    auto ifOp = dyn_cast<scf::IfOp>(user);
    if (!ifOp)
      return false;
    WalkResult walk = ifOp.getThenRegion().walk([](func::CallOp call) {
      return call.getCallee() == "moe_report_error" ? WalkResult::interrupt()
                                                    : WalkResult::advance();
    });
    return walk.wasInterrupted();
  });
}

/// The importer computes sizes of shapes read from the graph (Reshape's 0
/// and -1 rules, checked sizes) with selects that can mix a batch size with
/// a row count in one value. In a derived entry, each such size is replaced
/// by the arm it takes whenever the model is well formed, under a run-time
/// check where it is not implied (an error instead of a wrong answer):
///   select(x == 0, y, x) -> x, checking not (x == 0 and y != 0)
///   select(x == -1, y, x) -> x, checking not (x == -1 and y != -1)
///   select(bad, 0, v)    -> v, where `bad` already reports an error.
/// This leaves sizes the position analysis can follow.
void simplifySizeSelects(func::FuncOp fn) {
  SmallVector<arith::SelectOp> selects;
  fn.walk([&](arith::SelectOp op) {
    if (op.getType().isIntOrIndex())
      selects.push_back(op);
  });
  OpBuilder b(fn.getContext());
  for (arith::SelectOp op : selects) {
    Value cond = op.getCondition(), t = op.getTrueValue(),
          f = op.getFalseValue();
    b.setInsertionPoint(op);
    Location loc = op.getLoc();
    if (auto cmp = cond.getDefiningOp<arith::CmpIOp>();
        cmp && cmp.getPredicate() == arith::CmpIPredicate::eq &&
        cmp.getLhs() == f) {
      std::optional<int64_t> c = getConstantIntValue(cmp.getRhs());
      if (c && (*c == 0 || *c == -1)) {
        // Bad: the rule applies and the other arm differs.
        Value differs = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne,
                                              t, cmp.getRhs());
        Value bad = arith::AndIOp::create(b, loc, cond, differs);
        build::reportIf(b, loc, bad, kErrorShapeMismatch);
        op.replaceAllUsesWith(f);
        op.erase();
        continue;
      }
    }
    std::optional<int64_t> tc = getConstantIntValue(t);
    if (tc && *tc == 0 && isErrorCondition(cond)) {
      op.replaceAllUsesWith(f);
      op.erase();
    }
  }
}

struct MoeGenerationEntriesPass
    : moe::impl::MoeGenerationEntriesBase<MoeGenerationEntriesPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto main = module.lookupSymbol<func::FuncOp>("main");
    if (!main || main.isExternal()) {
      module.emitError() << "cannot derive generation entries: no @main";
      return signalPassFailure();
    }
    if (failed(check(main)))
      return signalPassFailure();
    for (bool withCache : {true, false})
      if (failed(derive(module, main, withCache)))
        return signalPassFailure();
  }

  /// The token input, and the checks of the file comment.
  LogicalResult check(func::FuncOp main) {
    Location loc = main.getLoc();
    if (main.getNumArguments() != 1)
      return emitError(loc) << "cannot derive generation entries: @main must "
                               "take one input, the tokens [B, T]; it takes "
                            << main.getNumArguments();
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
    for (SwitchHeadOp op : heads)
      if (!op.getCausal())
        return op.emitError() << "cannot derive generation entries: this "
                                 "attention is not causal";
    return success();
  }

  /// The position analysis of the file comment, on a derived copy.
  LogicalResult checkPositions(func::FuncOp fn) {
    PositionAnalysis analysis(fn.getArgument(0));
    if (failed(analysis.run(fn.getBody().front())))
      return failure();
    auto ret = cast<func::ReturnOp>(fn.getBody().front().getTerminator());
    for (auto [i, v] : llvm::enumerate(ret.getOperands()))
      if (analysis.of(v) != bit(1))
        return emitError(fn.getLoc())
               << "cannot derive generation entries: output " << i
               << " must hold the sequence in dim 1 only (logits [B, T, V])";
    return success();
  }

  /// @prefill (no cache) or @decode (caches as inputs): a copy of @main
  /// whose attention layers read the cache and return their new rows.
  LogicalResult derive(ModuleOp module, func::FuncOp main, bool withCache) {
    StringRef name = withCache ? "decode" : "prefill";
    if (module.lookupSymbol(name))
      return main.emitError() << "cannot derive generation entries: the "
                                 "module already has a symbol @"
                              << name;
    OpBuilder b(main);
    b.setInsertionPointAfter(main);
    auto fn = cast<func::FuncOp>(b.clone(*main));
    fn.setSymName(name);
    simplifySizeSelects(fn);
    if (failed(checkPositions(fn))) {
      fn.erase();
      return failure();
    }
    MLIRContext *ctx = module.getContext();
    Block &body = fn.getBody().front();
    ArrayAttr tokenParams =
        fn.getArgAttrOfType<ArrayAttr>(0, "onnx.dim_params");
    auto param = [&](unsigned d) -> Attribute {
      return tokenParams && d < tokenParams.size() ? tokenParams[d]
                                                   : StringAttr::get(ctx, "");
    };
    SmallVector<SwitchHeadOp> heads;
    fn.walk([&](SwitchHeadOp op) { heads.push_back(op); });
    SmallVector<Value> newRows;
    SmallVector<DictionaryAttr> rowAttrs;
    for (auto [index, op] : llvm::enumerate(heads)) {
      size_t l = index;
      auto srcType = cast<RankedTensorType>(op.getQSrc().getType());
      int64_t h = op.getNumHeads();
      int64_t dk = cast<RankedTensorType>(op.getWq().getType()).getDimSize(1);
      dk = ShapedType::isDynamic(dk) ? dk : dk / h;
      int64_t dv = cast<RankedTensorType>(op.getWv().getType()).getDimSize(2);
      Type elt = srcType.getElementType();
      int64_t batch = srcType.getDimSize(0);
      auto cacheType = [&](int64_t p, int64_t d) {
        return RankedTensorType::get({p, batch, h, d}, elt);
      };
      auto attrs = [&](StringRef kind, Attribute first) {
        NamedAttribute n(StringAttr::get(ctx, "onnx.name"),
                         StringAttr::get(ctx, (kind + "." + Twine(l)).str()));
        NamedAttribute p(
            StringAttr::get(ctx, "onnx.dim_params"),
            ArrayAttr::get(ctx, {first, param(0), StringAttr::get(ctx, ""),
                                 StringAttr::get(ctx, "")}));
        return DictionaryAttr::get(ctx, {n, p});
      };
      Value pastKey, pastValue;
      b.setInsertionPoint(op);
      if (withCache) {
        unsigned at = fn.getNumArguments();
        if (failed(fn.insertArgument(at, cacheType(ShapedType::kDynamic, dk),
                                     attrs("past_key",
                                           StringAttr::get(ctx, "P")),
                                     op.getLoc())) ||
            failed(fn.insertArgument(at + 1,
                                     cacheType(ShapedType::kDynamic, dv),
                                     attrs("past_value",
                                           StringAttr::get(ctx, "P")),
                                     op.getLoc())))
          return failure();
        pastKey = body.getArgument(at);
        pastValue = body.getArgument(at + 1);
      } else {
        SmallVector<Value> dyn;
        if (ShapedType::isDynamic(batch))
          dyn.push_back(tensor::DimOp::create(b, op.getLoc(), op.getQSrc(), 0));
        pastKey = tensor::EmptyOp::create(b, op.getLoc(), cacheType(0, dk),
                                          dyn);
        pastValue = tensor::EmptyOp::create(b, op.getLoc(), cacheType(0, dv),
                                            dyn);
      }
      int64_t t = srcType.getDimSize(1);
      auto cached = SwitchHeadCachedOp::create(
          b, op.getLoc(),
          TypeRange{op.getType(), RankedTensorType::get({t, batch, h, dk}, elt),
                    RankedTensorType::get({t, batch, h, dv}, elt)},
          op.getQSrc(), op.getKSrc(), op.getVSrc(), op.getWq(), op.getWk(),
          op.getWv(), op.getWo(), op.getSelO(), pastKey, pastValue,
          op.getSelV(), op.getNumHeads(), op.getK(), op.getCausal(),
          op.getRotateFraction(), op.getRopeBase());
      op.getResult().replaceAllUsesWith(cached.getResult());
      op.erase();
      newRows.push_back(cached.getNewKey());
      newRows.push_back(cached.getNewValue());
      rowAttrs.push_back(attrs("new_key", param(1)));
      rowAttrs.push_back(attrs("new_value", param(1)));
    }
    // The new rows follow the model's outputs.
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    SmallVector<Value> results(ret.getOperands());
    results.append(newRows);
    SmallVector<DictionaryAttr> resultAttrs;
    for (unsigned i = 0; i < fn.getNumResults(); ++i)
      resultAttrs.push_back(fn.getResultAttrDict(i));
    resultAttrs.append(rowAttrs);
    b.setInsertionPoint(ret);
    func::ReturnOp::create(b, ret.getLoc(), results);
    ret.erase();
    fn.setType(FunctionType::get(ctx, body.getArgumentTypes(),
                                 ValueRange(results).getTypes()));
    for (auto [i, a] : llvm::enumerate(resultAttrs))
      fn.setResultAttrs(i, a ? a : DictionaryAttr::get(ctx));
    return success();
  }
};

} // namespace

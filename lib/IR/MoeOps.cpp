//===- MoeOps.cpp - moe operation verifiers --------------------------------===//
//
// Every check names its constraint id (C1, C2, ...), the same id as in the op
// description, docs/spec.md and the @<op>_c<N> case of
// test/Dialect/moe/invalid.mlir. Dynamic dimensions are accepted wherever a
// static one would be; what cannot be checked statically is checked by the
// lowered code at run time.
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoeOps.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/Support/CheckedArithmetic.h"

#include <cmath>
#include <cstdio>
#include <string>
#include <optional>

using namespace mlir;
using namespace mlir::moe;

//===----------------------------------------------------------------------===//
// Verification helpers
//===----------------------------------------------------------------------===//

namespace {
/// A named operand or result, as it appears in diagnostics.
struct Named {
  StringRef name;
  Value value;
};

/// A named value with the rank it must have.
struct RankRef {
  StringRef name;
  Value value;
  int64_t rank;
};

/// One dimension of a named value.
struct DimRef {
  StringRef name;
  Value value;
  unsigned dim;
};
} // namespace

static RankedTensorType tensorType(Value v) {
  return cast<RankedTensorType>(v.getType());
}

static int64_t dimOf(Value v, unsigned dim) {
  return tensorType(v).getDimSize(dim);
}

static bool isStatic(int64_t d) { return !ShapedType::isDynamic(d); }

/// The signed value of an I64Attr (ODS accessors return it as uint64_t, so a
/// negative value written by the user would otherwise wrap).
static int64_t signedValue(IntegerAttr attr) { return attr.getInt(); }

/// Formats a real for diagnostics the way a user wrote it (1.5, 0, inf, nan).
static std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

/// Checks the ranks of all non-null values.
static LogicalResult checkRanks(Operation *op, StringRef cid,
                                ArrayRef<RankRef> refs) {
  for (const RankRef &r : refs) {
    if (!r.value)
      continue;
    int64_t rank = tensorType(r.value).getRank();
    if (rank != r.rank)
      return op->emitOpError()
             << "expected " << r.name << " to have rank " << r.rank
             << ", got " << rank << " (" << cid << ")";
  }
  return success();
}

/// Checks that all static dimensions among `refs` (skipping null values) are
/// equal; `sym` is the spec's name for the dimension.
static LogicalResult checkSameDim(Operation *op, StringRef cid, StringRef sym,
                                  ArrayRef<DimRef> refs) {
  const DimRef *first = nullptr;
  for (const DimRef &r : refs) {
    if (!r.value || !isStatic(dimOf(r.value, r.dim)))
      continue;
    if (!first) {
      first = &r;
      continue;
    }
    int64_t expected = dimOf(first->value, first->dim);
    int64_t actual = dimOf(r.value, r.dim);
    if (actual != expected)
      return op->emitOpError()
             << "expected " << r.name << " dim " << r.dim << " (" << sym
             << ") to be " << expected << " as in " << first->name << " dim "
             << first->dim << ", got " << actual << " (" << cid << ")";
  }
  return success();
}

/// Returns the first static dimension among `refs`, if any.
static std::optional<int64_t> firstStatic(ArrayRef<DimRef> refs) {
  for (const DimRef &r : refs)
    if (r.value && isStatic(dimOf(r.value, r.dim)))
      return dimOf(r.value, r.dim);
  return std::nullopt;
}

/// Checks that a dimension equals a value derived from the op's attributes or
/// other dimensions (skipped when either side is dynamic).
static LogicalResult checkDimIs(Operation *op, StringRef cid, DimRef ref,
                                std::optional<int64_t> expected,
                                StringRef what) {
  if (!expected || !isStatic(*expected) || !ref.value)
    return success();
  int64_t actual = dimOf(ref.value, ref.dim);
  if (isStatic(actual) && actual != *expected)
    return op->emitOpError()
           << "expected " << ref.name << " dim " << ref.dim << " to be "
           << what << " = " << *expected << ", got " << actual << " (" << cid
           << ")";
  return success();
}

/// Checks that all non-null values share the element type of the first.
static LogicalResult checkElementTypes(Operation *op, StringRef cid,
                                       ArrayRef<Named> refs) {
  const Named *first = nullptr;
  for (const Named &r : refs) {
    if (!r.value)
      continue;
    if (!first) {
      first = &r;
      continue;
    }
    Type expected = tensorType(first->value).getElementType();
    Type actual = tensorType(r.value).getElementType();
    if (actual != expected)
      return op->emitOpError()
             << "expected " << r.name << " element type " << actual
             << " to match " << first->name << " element type " << expected
             << " (" << cid << ")";
  }
  return success();
}

/// Checks `1 <= k <= numExperts` (the upper bound only when known).
static LogicalResult checkTopK(Operation *op, StringRef cid, int64_t k,
                               std::optional<int64_t> numExperts) {
  if (k < 1)
    return op->emitOpError() << "expected k >= 1, got " << k << " (" << cid
                             << ")";
  if (numExperts && isStatic(*numExperts) && k > *numExperts)
    return op->emitOpError() << "expected k <= E = " << *numExperts
                             << ", got k = " << k << " (" << cid << ")";
  return success();
}

/// Checks that `divisor >= 1` divides the static dimension `ref`.
static LogicalResult checkDivides(Operation *op, StringRef cid,
                                  StringRef divisorName, int64_t divisor,
                                  DimRef ref) {
  if (divisor < 1)
    return op->emitOpError() << "expected " << divisorName << " >= 1, got "
                             << divisor << " (" << cid << ")";
  if (!ref.value)
    return success();
  int64_t d = dimOf(ref.value, ref.dim);
  if (isStatic(d) && d % divisor != 0)
    return op->emitOpError()
           << "expected " << divisorName << " = " << divisor << " to divide "
           << ref.name << " dim " << ref.dim << " = " << d << " (" << cid
           << ")";
  return success();
}

/// Checks a real attribute lies in [lo, hi] (and is not NaN).
static LogicalResult checkInRange(Operation *op, StringRef cid, StringRef name,
                                  double v, double lo, double hi) {
  if (!(v >= lo && v <= hi))
    return op->emitOpError() << "expected " << name << " in [" << fmt(lo) << ", "
                             << fmt(hi) << "], got " << fmt(v) << " (" << cid
                             << ")";
  return success();
}

/// Checks a real attribute is finite and strictly positive (or +inf when
/// `allowInf`).
static LogicalResult checkPositive(Operation *op, StringRef cid,
                                   StringRef name, double v,
                                   bool allowInf = false) {
  bool ok = v > 0 && (allowInf ? !std::isnan(v) : std::isfinite(v));
  if (!ok)
    return op->emitOpError() << "expected " << name << " > 0"
                             << (allowInf ? "" : " and finite") << ", got "
                             << fmt(v) << " (" << cid << ")";
  return success();
}

/// Checks the RoPE attributes: fraction in [0, 1], base > 0. The rotated
/// width floor(dh * fraction) is rounded down to an even number by the op's
/// definition (the published MoEUT-44M: dh = 82 rotates 40 dims), so any
/// head width is valid.
static LogicalResult checkRope(Operation *op, StringRef fracCid,
                               StringRef baseCid, double fraction,
                               double base) {
  if (failed(checkInRange(op, fracCid, "rotate_fraction", fraction, 0.0, 1.0)))
    return failure();
  return checkPositive(op, baseCid, "rope base", base);
}

//===----------------------------------------------------------------------===//
// RouteOp
//===----------------------------------------------------------------------===//

LogicalResult RouteOp::verify() {
  Operation *op = getOperation();
  Value scores = getScores(), w = getWeights(), ids = getIds();
  // C1: ranks.
  if (failed(checkRanks(op, "C1",
                        {{"scores", scores, 2}, {"weights", w, 2},
                         {"ids", ids, 2}})))
    return failure();
  // C4: groups >= 1 divides the score columns.
  int64_t groups = signedValue(getGroupsAttr());
  int64_t k = signedValue(getKAttr());
  if (failed(checkDivides(op, "C4", "groups", groups, {"scores", scores, 1})))
    return failure();
  // C5: 1 <= k <= E.
  std::optional<int64_t> numExperts;
  if (isStatic(dimOf(scores, 1)))
    numExperts = dimOf(scores, 1) / groups;
  if (failed(checkTopK(op, "C5", k, numExperts)))
    return failure();
  // C2: result shapes [N, groups*k].
  std::optional<int64_t> slots = llvm::checkedMul(groups, k);
  if (!slots)
    return emitOpError() << "expected groups * k to fit in 64 bits, got "
                            "groups = "
                         << groups << " and k = " << k << " (C2)";
  if (failed(checkSameDim(op, "C2", "N",
                          {{"scores", scores, 0}, {"weights", w, 0},
                           {"ids", ids, 0}})) ||
      failed(checkDimIs(op, "C2", {"weights", w, 1}, *slots, "groups * k")) ||
      failed(checkDimIs(op, "C2", {"ids", ids, 1}, *slots, "groups * k")))
    return failure();
  // C3: element type.
  return checkElementTypes(op, "C3", {{"scores", scores}, {"weights", w}});
}

//===----------------------------------------------------------------------===//
// SwitchRouteOp
//===----------------------------------------------------------------------===//

LogicalResult SwitchRouteOp::verify() {
  Operation *op = getOperation();
  Value scores = getScores(), w = getWeights(), ids = getIds(),
        kept = getKept();
  // C1: ranks.
  if (failed(checkRanks(op, "C1",
                        {{"scores", scores, 2},
                         {"weights", w, 2},
                         {"ids", ids, 2},
                         {"kept", kept, 1}})))
    return failure();
  // C2: N rows, one slot.
  if (failed(checkSameDim(op, "C2", "N",
                          {{"scores", scores, 0},
                           {"weights", w, 0},
                           {"ids", ids, 0},
                           {"kept", kept, 0}})) ||
      failed(checkDimIs(op, "C2", {"weights", w, 1}, 1, "one slot")) ||
      failed(checkDimIs(op, "C2", {"ids", ids, 1}, 1, "one slot")))
    return failure();
  // C3: element type.
  if (failed(checkElementTypes(op, "C3", {{"scores", scores}, {"weights", w}})))
    return failure();
  // C4: capacity factor.
  return checkPositive(op, "C4", "capacity_factor",
                       getCapacityFactor().convertToDouble(),
                       /*allowInf=*/true);
}

//===----------------------------------------------------------------------===//
// TreeRouteOp
//===----------------------------------------------------------------------===//

/// Checks a tree depth: static and in [1, 30] (node ids fit in 32 bits).
static LogicalResult checkTreeDepth(Operation *op, StringRef cid,
                                    DimRef depthRef) {
  int64_t depth = dimOf(depthRef.value, depthRef.dim);
  if (!isStatic(depth))
    return op->emitOpError() << "expected a static tree depth in "
                             << depthRef.name << " dim " << depthRef.dim
                             << " (" << cid << ")";
  if (depth < 1 || depth > 30)
    return op->emitOpError() << "expected the tree depth " << depthRef.name
                             << " dim " << depthRef.dim
                             << " in [1, 30], got " << depth << " (" << cid
                             << ")";
  return success();
}

LogicalResult TreeRouteOp::verify() {
  Operation *op = getOperation();
  Value gates = getGates(), w = getWeights(), ids = getIds();
  // C1: ranks.
  if (failed(checkRanks(op, "C1",
                        {{"gates", gates, 2}, {"weights", w, 2},
                         {"ids", ids, 2}})))
    return failure();
  // C2: static depth in [1, 30].
  if (failed(checkTreeDepth(op, "C2", {"gates", gates, 1})))
    return failure();
  // C3: N rows, depth + 1 (path) or 1 (flat) slots.
  int64_t depth = dimOf(gates, 1);
  int64_t slots = getMode() == TreeMode::Path ? depth + 1 : 1;
  StringRef what = getMode() == TreeMode::Path ? "depth + 1" : "one slot";
  if (failed(checkSameDim(op, "C3", "N",
                          {{"gates", gates, 0}, {"weights", w, 0},
                           {"ids", ids, 0}})) ||
      failed(checkDimIs(op, "C3", {"weights", w, 1}, slots, what)) ||
      failed(checkDimIs(op, "C3", {"ids", ids, 1}, slots, what)))
    return failure();
  // C4: element type.
  return checkElementTypes(op, "C4", {{"gates", gates}, {"weights", w}});
}

//===----------------------------------------------------------------------===//
// DispatchOp
//===----------------------------------------------------------------------===//

/// Product of two dims, dynamic if either is or if it overflows (then the
/// check it feeds is left to run time).
static int64_t mulDims(int64_t a, int64_t b) {
  if (!isStatic(a) || !isStatic(b))
    return ShapedType::kDynamic;
  std::optional<int64_t> product = llvm::checkedMul(a, b);
  return product ? *product : ShapedType::kDynamic;
}

LogicalResult DispatchOp::verify() {
  Operation *op = getOperation();
  Value ids = getIds(), offsets = getOffsets(), perm = getPerm();
  // C1: ranks.
  if (failed(checkRanks(op, "C1",
                        {{"ids", ids, 2}, {"offsets", offsets, 1},
                         {"perm", perm, 1}})))
    return failure();
  // C2: at least one expert.
  int64_t numExperts = signedValue(getNumExpertsAttr());
  if (numExperts < 1)
    return emitOpError() << "expected num_experts >= 1, got " << numExperts
                         << " (C2)";
  // C3: offsets [E + 1].
  if (failed(checkDimIs(op, "C3", {"offsets", offsets, 0}, numExperts + 1,
                        "num_experts + 1")))
    return failure();
  // C4: perm [N * S].
  return checkDimIs(op, "C4", {"perm", perm, 0},
                    mulDims(dimOf(ids, 0), dimOf(ids, 1)), "N * S");
}

//===----------------------------------------------------------------------===//
// GroupedMatmulOp
//===----------------------------------------------------------------------===//

LogicalResult GroupedMatmulOp::verify() {
  Operation *op = getOperation();
  Value x = getInput(), w = getWeight(), offsets = getOffsets(),
        perm = getPerm(), sw = getSlotWeights(), bias = getBias(),
        res = getResult();
  // C1: ranks.
  if (failed(checkRanks(op, "C1",
                        {{"input", x, 2},
                         {"weight", w, 3},
                         {"offsets", offsets, 1},
                         {"perm", perm, 1},
                         {"slot_weights", sw, 2},
                         {"bias", bias, 2},
                         {"result", res, 2}})))
    return failure();
  // C9: a weighted reduction is in token order.
  if (sw && getSortedResult())
    return emitOpError() << "expected no slot_weights with sorted_result "
                            "(C9)";
  // C2: Din.
  if (failed(checkSameDim(op, "C2", "Din", {{"input", x, 1}, {"weight", w, 1}})))
    return failure();
  // C3: offsets [E + 1].
  int64_t numExperts = dimOf(w, 0);
  if (failed(checkDimIs(op, "C3", {"offsets", offsets, 0},
                        isStatic(numExperts) ? numExperts + 1
                                             : ShapedType::kDynamic,
                        "E + 1")))
    return failure();
  // C4: R divides M.
  int64_t rows = dimOf(x, 0), slots = dimOf(perm, 0);
  if (getSortedInput()) {
    if (failed(checkSameDim(op, "C4", "M (sorted_input)",
                            {{"input", x, 0}, {"perm", perm, 0}})))
      return failure();
  } else if (isStatic(rows) && isStatic(slots)) {
    if ((rows == 0 && slots != 0) || (rows != 0 && slots % rows != 0))
      return emitOpError() << "expected the input rows R = " << rows
                           << " to divide the slot count M = " << slots
                           << " (C4)";
  }
  // C5: result rows.
  if (sw) {
    if (failed(checkDimIs(op, "C5", {"perm", perm, 0},
                          mulDims(dimOf(sw, 0), dimOf(sw, 1)),
                          "slot_weights N * S")) ||
        failed(checkSameDim(op, "C5", "N",
                            {{"slot_weights", sw, 0}, {"result", res, 0}})))
      return failure();
  } else if (failed(checkSameDim(op, "C5", "M",
                                 {{"perm", perm, 0}, {"result", res, 0}}))) {
    return failure();
  }
  // C6: Dout.
  if (failed(checkSameDim(op, "C6", "Dout",
                          {{"weight", w, 2}, {"result", res, 1}})))
    return failure();
  // C8: bias [E, Dout].
  if (bias && (failed(checkSameDim(op, "C8", "E",
                                   {{"weight", w, 0}, {"bias", bias, 0}})) ||
               failed(checkSameDim(op, "C8", "Dout",
                                   {{"weight", w, 2}, {"bias", bias, 1}}))))
    return failure();
  // C7: element types.
  return checkElementTypes(op, "C7",
                           {{"input", x},
                            {"weight", w},
                            {"slot_weights", sw},
                            {"bias", bias},
                            {"result", res}});
}

//===----------------------------------------------------------------------===//
// CombineOp
//===----------------------------------------------------------------------===//

LogicalResult CombineOp::verify() {
  Operation *op = getOperation();
  Value y = getSlots(), w = getWeights(), res = getResult();
  if (failed(checkRanks(op, "C1",
                        {{"slots", y, 3}, {"weights", w, 2},
                         {"result", res, 2}})))
    return failure();
  if (failed(checkSameDim(op, "C2", "N",
                          {{"slots", y, 0}, {"weights", w, 0},
                           {"result", res, 0}})) ||
      failed(checkSameDim(op, "C2", "S", {{"slots", y, 1}, {"weights", w, 1}})) ||
      failed(checkSameDim(op, "C2", "D", {{"slots", y, 2}, {"result", res, 1}})))
    return failure();
  return checkElementTypes(op, "C3",
                           {{"slots", y}, {"weights", w}, {"result", res}});
}

//===----------------------------------------------------------------------===//
// MotMixOp / MotUnmixOp
//===----------------------------------------------------------------------===//

/// Quotient of a dim by a positive divisor, dynamic if the dim is.
static int64_t divDim(int64_t a, int64_t b) {
  return isStatic(a) ? a / b : ShapedType::kDynamic;
}

LogicalResult MotMixOp::verify() {
  Operation *op = getOperation();
  Value x = getInput(), logits = getLogits(), z = getMixed(),
        m = getWeights();
  // C1: ranks.
  if (failed(checkRanks(op, "C1",
                        {{"input", x, 3},
                         {"logits", logits, 3},
                         {"mixed", z, 4},
                         {"weights", m, 4}})))
    return failure();
  // C2: g divides B.
  int64_t g = signedValue(getGroupSizeAttr());
  if (failed(checkDivides(op, "C2", "group_size", g, {"input", x, 0})))
    return failure();
  // C3: logits [B, T, E].
  if (failed(checkSameDim(op, "C3", "B", {{"input", x, 0}, {"logits", logits, 0}})) ||
      failed(checkSameDim(op, "C3", "T", {{"input", x, 1}, {"logits", logits, 1}})))
    return failure();
  // C4: mixed [T, B/g, E, D], weights [T, B/g, g, E].
  if (failed(checkSameDim(op, "C4", "T",
                          {{"input", x, 1}, {"mixed", z, 0}, {"weights", m, 0}})) ||
      failed(checkDimIs(op, "C4", {"mixed", z, 1}, divDim(dimOf(x, 0), g),
                        "B / group_size")) ||
      failed(checkSameDim(op, "C4", "B/g", {{"mixed", z, 1}, {"weights", m, 1}})) ||
      failed(checkDimIs(op, "C4", {"weights", m, 2}, g, "group_size")) ||
      failed(checkSameDim(op, "C4", "E",
                          {{"logits", logits, 2}, {"mixed", z, 2},
                           {"weights", m, 3}})) ||
      failed(checkSameDim(op, "C4", "D", {{"input", x, 2}, {"mixed", z, 3}})))
    return failure();
  // C5: temperature.
  if (failed(checkPositive(op, "C5", "temperature",
                           getTemperature().convertToDouble())))
    return failure();
  // C6: element types.
  return checkElementTypes(op, "C6",
                           {{"input", x}, {"logits", logits}, {"mixed", z},
                            {"weights", m}});
}

LogicalResult MotUnmixOp::verify() {
  Operation *op = getOperation();
  Value y = getOutputs(), m = getWeights(), res = getResult();
  if (failed(checkRanks(op, "C1",
                        {{"outputs", y, 4}, {"weights", m, 4},
                         {"result", res, 3}})))
    return failure();
  if (failed(checkSameDim(op, "C2", "T", {{"outputs", y, 0}, {"weights", m, 0}})) ||
      failed(checkSameDim(op, "C2", "C", {{"outputs", y, 1}, {"weights", m, 1}})) ||
      failed(checkSameDim(op, "C2", "E", {{"outputs", y, 2}, {"weights", m, 3}})))
    return failure();
  if (failed(checkDimIs(op, "C3", {"result", res, 0},
                        mulDims(dimOf(m, 1), dimOf(m, 2)), "C * g")) ||
      failed(checkSameDim(op, "C3", "T", {{"outputs", y, 0}, {"result", res, 1}})) ||
      failed(checkSameDim(op, "C3", "D", {{"outputs", y, 3}, {"result", res, 2}})))
    return failure();
  return checkElementTypes(op, "C4",
                           {{"outputs", y}, {"weights", m}, {"result", res}});
}

//===----------------------------------------------------------------------===//
// AttentionOp / RopeOp
//===----------------------------------------------------------------------===//

LogicalResult AttentionOp::verify() {
  Operation *op = getOperation();
  Value q = getQuery(), k = getKey(), v = getValue(), res = getResult();
  if (failed(checkRanks(op, "C1",
                        {{"query", q, 4}, {"key", k, 4}, {"value", v, 4},
                         {"result", res, 4}})))
    return failure();
  if (failed(checkSameDim(op, "C2", "B",
                          {{"query", q, 0}, {"key", k, 0}, {"value", v, 0}})) ||
      failed(checkSameDim(op, "C2", "H",
                          {{"query", q, 1}, {"key", k, 1}, {"value", v, 1}})) ||
      failed(checkSameDim(op, "C2", "S", {{"key", k, 2}, {"value", v, 2}})) ||
      failed(checkSameDim(op, "C2", "dk", {{"query", q, 3}, {"key", k, 3}})))
    return failure();
  if (failed(checkSameDim(op, "C3", "B", {{"query", q, 0}, {"result", res, 0}})) ||
      failed(checkSameDim(op, "C3", "H", {{"query", q, 1}, {"result", res, 1}})) ||
      failed(checkSameDim(op, "C3", "T", {{"query", q, 2}, {"result", res, 2}})) ||
      failed(checkSameDim(op, "C3", "dv", {{"value", v, 3}, {"result", res, 3}})))
    return failure();
  if (failed(checkElementTypes(op, "C4",
                               {{"query", q}, {"key", k}, {"value", v},
                                {"result", res}})))
    return failure();
  if (std::optional<APFloat> scale = getScale()) {
    double s = scale->convertToDouble();
    if (!std::isfinite(s) || s == 0.0)
      return emitOpError() << "expected scale finite and non-zero, got " << fmt(s)
                           << " (C5)";
  }
  Value pk = getPastKey(), pv = getPastValue();
  if (Value s = getSinks()) {
    if (pk || pv)
      return emitOpError() << "expected no sinks with a cache (C8)";
    if (failed(checkRanks(op, "C8", {{"sinks", s, 1}})) ||
        failed(checkElementTypes(op, "C8", {{"query", q}, {"sinks", s}})) ||
        failed(checkSameDim(op, "C8", "H", {{"query", q, 1}, {"sinks", s, 0}})))
      return failure();
  }
  if (Value m = getMask()) {
    if (pk || pv)
      return emitOpError() << "expected no mask with a cache (C7)";
    if (failed(checkRanks(op, "C7", {{"mask", m, 4}})) ||
        failed(checkElementTypes(op, "C7", {{"query", q}, {"mask", m}})))
      return failure();
    auto mt = cast<RankedTensorType>(m.getType());
    auto qt = cast<RankedTensorType>(q.getType());
    auto kt = cast<RankedTensorType>(k.getType());
    int64_t want[4] = {qt.getDimSize(0), qt.getDimSize(1), qt.getDimSize(2),
                       kt.getDimSize(2)};
    const char *names[4] = {"B", "H", "T", "S"};
    for (int d = 0; d < 4; ++d) {
      int64_t got = mt.getDimSize(d);
      if (ShapedType::isDynamic(got) || ShapedType::isDynamic(want[d]) ||
          got == want[d] || got == 1)
        continue;
      return emitOpError() << "expected mask dim " << d << " to be " << names[d]
                           << " (" << want[d] << ") or 1, got " << got
                           << " (C7)";
    }
  }
  if (!pk && !pv)
    return success();
  if (!pk || !pv)
    return emitOpError() << "expected past_key and past_value together (C6)";
  if (failed(
          checkRanks(op, "C6", {{"past_key", pk, 4}, {"past_value", pv, 4}})) ||
      failed(checkSameDim(op, "C6", "P",
                          {{"past_key", pk, 2}, {"past_value", pv, 2}})) ||
      failed(checkSameDim(
          op, "C6", "B",
          {{"query", q, 0}, {"past_key", pk, 0}, {"past_value", pv, 0}})) ||
      failed(checkSameDim(
          op, "C6", "H",
          {{"query", q, 1}, {"past_key", pk, 1}, {"past_value", pv, 1}})) ||
      failed(checkSameDim(op, "C6", "dk",
                          {{"query", q, 3}, {"past_key", pk, 3}})) ||
      failed(checkSameDim(op, "C6", "dv",
                          {{"value", v, 3}, {"past_value", pv, 3}})) ||
      failed(checkElementTypes(
          op, "C6", {{"query", q}, {"past_key", pk}, {"past_value", pv}})))
    return failure();
  return success();
}

LogicalResult RopeOp::verify() {
  Operation *op = getOperation();
  if (failed(checkRanks(op, "C1", {{"input", getInput(), 4}})))
    return failure();
  if (getInput().getType() != getResult().getType())
    return emitOpError() << "expected result type " << getResult().getType()
                         << " to equal input type " << getInput().getType()
                         << " (C1)";
  return checkRope(op, "C2", "C3",
                   getRotateFraction().convertToDouble(),
                   getBase().convertToDouble());
}

//===----------------------------------------------------------------------===//
// UnpackPanelsOp
//===----------------------------------------------------------------------===//

LogicalResult UnpackPanelsOp::verify() {
  Operation *op = getOperation();
  Value panels = getPanels(), tail = getTail(), res = getResult();
  if (failed(checkRanks(op, "C1",
                        {{"panels", panels, 4},
                         {"tail", tail, 3},
                         {"result", res, 3}})))
    return failure();
  for (Named v : {Named{"panels", panels}, Named{"tail", tail},
                  Named{"result", res}})
    if (v.value && !tensorType(v.value).hasStaticShape())
      return emitOpError() << "expected " << v.name
                           << " to have a static shape (C1)";
  if (failed(checkSameDim(op, "C2", "E",
                          {{"panels", panels, 0},
                           {"tail", tail, 0},
                           {"result", res, 0}})) ||
      failed(checkSameDim(op, "C2", "K",
                          {{"panels", panels, 2},
                           {"tail", tail, 1},
                           {"result", res, 1}})))
    return failure();
  int64_t numPanels = dimOf(panels, 1), width = dimOf(panels, 3);
  int64_t rest = tail ? dimOf(tail, 2) : 0;
  if (numPanels < 1 || width < 1)
    return emitOpError() << "expected at least one panel of at least one "
                            "column, got "
                         << numPanels << " of " << width << " (C3)";
  if (tail && rest < 1)
    return emitOpError() << "expected the tail to have at least one "
                            "column (C3)";
  if (dimOf(res, 2) != numPanels * width + rest)
    return emitOpError() << "expected the result to have " << numPanels
                         << " x " << width << " + " << rest << " = "
                         << numPanels * width + rest << " columns, got "
                         << dimOf(res, 2) << " (C3)";
  return checkElementTypes(op, "C4", {{"panels", panels},
                                      {"tail", tail},
                                      {"result", res}});
}

//===----------------------------------------------------------------------===//
// FfnOp
//===----------------------------------------------------------------------===//

LogicalResult FfnOp::verify() {
  Operation *op = getOperation();
  Value x = getInput(), wsel = getWSel(), w1 = getW1(), w2 = getW2(),
        xs = getSelectorInput(), res = getResult();
  // C1: ranks.
  if (failed(checkRanks(op, "C1",
                        {{"input", x, 2},
                         {"w_sel", wsel, 2},
                         {"w1", w1, 3},
                         {"w2", w2, 3},
                         {"selector_input", xs, 2},
                         {"result", res, 2}})))
    return failure();
  // C2: N, D, E, Ge.
  if (failed(checkSameDim(op, "C2", "N",
                          {{"input", x, 0}, {"selector_input", xs, 0},
                           {"result", res, 0}})) ||
      failed(checkSameDim(op, "C2", "D",
                          {{"input", x, 1},
                           {"selector_input", xs, 1},
                           {"w_sel", wsel, 1},
                           {"w1", w1, 1},
                           {"w2", w2, 2},
                           {"result", res, 1}})) ||
      failed(checkSameDim(op, "C2", "E",
                          {{"w_sel", wsel, 0}, {"w1", w1, 0}, {"w2", w2, 0}})) ||
      failed(checkSameDim(op, "C2", "Ge", {{"w1", w1, 2}, {"w2", w2, 1}})))
    return failure();
  // C3: static E.
  std::optional<int64_t> numExperts =
      firstStatic({{"w_sel", wsel, 0}, {"w1", w1, 0}, {"w2", w2, 0}});
  if (!numExperts)
    return emitOpError() << "expected the expert count E to be static in "
                            "w_sel, w1 or w2 dim 0 (C3)";
  // C4: 1 <= k <= E.
  int64_t k = signedValue(getKAttr());
  if (failed(checkTopK(op, "C4", k, numExperts)))
    return failure();
  // C5: Switch capacity.
  if (std::optional<APFloat> cf = getCapacityFactor()) {
    if (failed(checkPositive(op, "C5", "capacity_factor", cf->convertToDouble(),
                             /*allowInf=*/true)))
      return failure();
    if (k != 1 || getGate() != GateKind::Softmax)
      return emitOpError() << "expected k = 1 and gate softmax with "
                              "capacity_factor (Switch routing), got k = "
                           << k << " and gate "
                           << stringifyGateKind(getGate()) << " (C5)";
  }
  // C6: element types.
  return checkElementTypes(op, "C6",
                           {{"input", x},
                            {"w_sel", wsel},
                            {"w1", w1},
                            {"w2", w2},
                            {"selector_input", xs},
                            {"result", res}});
}

//===----------------------------------------------------------------------===//
// TreeFfnOp
//===----------------------------------------------------------------------===//

LogicalResult TreeFfnOp::verify() {
  Operation *op = getOperation();
  Value x = getInput(), wg = getWGate(), w = getWeight(), res = getResult();
  if (failed(checkRanks(op, "C1",
                        {{"input", x, 2}, {"w_gate", wg, 2}, {"weight", w, 3},
                         {"result", res, 2}})))
    return failure();
  if (failed(checkTreeDepth(op, "C2", {"w_gate", wg, 1})))
    return failure();
  int64_t depth = dimOf(wg, 1);
  bool path = getMode() == TreeMode::Path;
  int64_t nodes = path ? (int64_t(1) << (depth + 1)) - 1 : int64_t(1) << depth;
  if (failed(checkDimIs(op, "C3", {"weight", w, 0}, nodes,
                        path ? "2^(depth+1) - 1 tree nodes"
                             : "2^depth leaves")))
    return failure();
  if (failed(checkSameDim(op, "C4", "Din",
                          {{"input", x, 1}, {"w_gate", wg, 0}, {"weight", w, 1}})) ||
      failed(checkSameDim(op, "C4", "N", {{"input", x, 0}, {"result", res, 0}})) ||
      failed(checkSameDim(op, "C4", "Dout", {{"weight", w, 2}, {"result", res, 1}})))
    return failure();
  return checkElementTypes(op, "C5",
                           {{"input", x}, {"w_gate", wg}, {"weight", w},
                            {"result", res}});
}

//===----------------------------------------------------------------------===//
// SwitchHeadOp
//===----------------------------------------------------------------------===//

namespace {
/// Constraint ids of the switchhead checks, passed in by each verifier so
/// that its body names every constraint it enforces (docs/spec.md).
struct SwitchHeadIds {
  const char *c1, *c2, *c3, *c4, *c5, *c6, *c7;
};

/// C1 to C7 of moe.switchhead, shared with moe.switchhead_cached.
template <typename OpT>
LogicalResult verifySwitchHeadCore(OpT self, const SwitchHeadIds &id) {
  Operation *op = self.getOperation();
  Value qs = self.getQSrc(), ks = self.getKSrc(), vs = self.getVSrc(),
        wq = self.getWq(), wk = self.getWk(), wv = self.getWv(),
        wo = self.getWo(), so = self.getSelO(), sv = self.getSelV(),
        res = self.getResult();
  // C1: ranks.
  if (failed(checkRanks(op, id.c1,
                        {{"q_src", qs, 3},
                         {"k_src", ks, 3},
                         {"v_src", vs, 3},
                         {"wq", wq, 2},
                         {"wk", wk, 2},
                         {"wv", wv, 3},
                         {"wo", wo, 3},
                         {"sel_o", so, 2},
                         {"sel_v", sv, 2},
                         {"result", res, 3}})))
    return failure();
  // C2: heads divide the projection widths and the expert rows.
  int64_t heads = signedValue(self.getNumHeadsAttr());
  if (failed(checkDivides(op, id.c2, "num_heads", heads, {"wq", wq, 1})) ||
      failed(checkDivides(op, id.c2, "num_heads", heads, {"wk", wk, 1})) ||
      failed(checkDivides(op, id.c2, "num_heads", heads, {"wv", wv, 0})) ||
      failed(checkDivides(op, id.c2, "num_heads", heads, {"wo", wo, 0})) ||
      failed(checkDivides(op, id.c2, "num_heads", heads, {"sel_o", so, 0})) ||
      failed(checkDivides(op, id.c2, "num_heads", heads, {"sel_v", sv, 0})))
    return failure();
  // C3: shared dims.
  if (failed(checkSameDim(op, id.c3, "B",
                          {{"q_src", qs, 0}, {"k_src", ks, 0}, {"v_src", vs, 0},
                           {"result", res, 0}})) ||
      failed(checkSameDim(op, id.c3, "T",
                          {{"q_src", qs, 1}, {"k_src", ks, 1}, {"v_src", vs, 1},
                           {"result", res, 1}})) ||
      failed(checkSameDim(op, id.c3, "D",
                          {{"q_src", qs, 2},
                           {"k_src", ks, 2},
                           {"v_src", vs, 2},
                           {"wq", wq, 0},
                           {"wk", wk, 0},
                           {"wv", wv, 1},
                           {"wo", wo, 2},
                           {"sel_o", so, 1},
                           {"sel_v", sv, 1},
                           {"result", res, 2}})) ||
      failed(checkSameDim(op, id.c3, "H*dk", {{"wq", wq, 1}, {"wk", wk, 1}})) ||
      failed(checkSameDim(op, id.c3, "dv", {{"wv", wv, 2}, {"wo", wo, 1}})) ||
      failed(checkSameDim(op, id.c3, "H*E",
                          {{"wv", wv, 0}, {"wo", wo, 0}, {"sel_o", so, 0},
                           {"sel_v", sv, 0}})))
    return failure();
  // C4: static E and 1 <= k <= E.
  std::optional<int64_t> headExperts = firstStatic(
      {{"wv", wv, 0}, {"wo", wo, 0}, {"sel_o", so, 0}, {"sel_v", sv, 0}});
  if (!headExperts)
    return self.emitOpError()
           << "expected the expert count H*E to be static in wv, wo, sel_o "
              "or sel_v dim 0 ("
           << id.c4 << ")";
  int64_t numExperts = *headExperts / heads;
  if (failed(checkTopK(op, id.c4, signedValue(self.getKAttr()), numExperts)))
    return failure();
  // C5: a dense value projection needs E = 1.
  if (!sv && numExperts != 1)
    return self.emitOpError()
           << "expected sel_v when E = " << numExperts
           << " > 1; only E = 1 allows a dense value projection (" << id.c5
           << ")";
  // C6: RoPE.
  if (failed(checkRope(op, id.c6, id.c6,
                       self.getRotateFraction().convertToDouble(),
                       self.getRopeBase().convertToDouble())))
    return failure();
  // C7: element types.
  return checkElementTypes(op, id.c7,
                           {{"q_src", qs},
                            {"k_src", ks},
                            {"v_src", vs},
                            {"wq", wq},
                            {"wk", wk},
                            {"wv", wv},
                            {"wo", wo},
                            {"sel_o", so},
                            {"sel_v", sv},
                            {"result", res}});
}
} // namespace

LogicalResult SwitchHeadOp::verify() {
  return verifySwitchHeadCore(
      *this, {"C1", "C2", "C3", "C4", "C5", "C6", "C7"});
}

//===----------------------------------------------------------------------===//
// SwitchHeadCachedOp
//===----------------------------------------------------------------------===//

LogicalResult SwitchHeadCachedOp::verify() {
  if (failed(verifySwitchHeadCore(
          *this, {"C1", "C2", "C3", "C4", "C5", "C6", "C7"})))
    return failure();
  Operation *op = getOperation();
  Value qs = getQSrc(), pk = getPastKey(), pv = getPastValue(),
        nk = getNewKey(), nv = getNewValue();
  // C8: the caches [B, H, P, dk|dv] and the new rows [B, H, T, dk|dv].
  if (failed(checkRanks(op, "C8",
                        {{"past_key", pk, 4},
                         {"past_value", pv, 4},
                         {"new_key", nk, 4},
                         {"new_value", nv, 4}})))
    return failure();
  int64_t heads = signedValue(getNumHeadsAttr());
  auto headsDim = [&](StringRef name, Value v) -> LogicalResult {
    int64_t h = cast<RankedTensorType>(v.getType()).getDimSize(1);
    if (!ShapedType::isDynamic(h) && h != heads)
      return emitOpError() << "expected " << name << " dim 1 (H) to be "
                           << "num_heads = " << heads << ", got " << h
                           << " (C8)";
    return success();
  };
  if (failed(checkSameDim(op, "C8", "P",
                          {{"past_key", pk, 2}, {"past_value", pv, 2}})) ||
      failed(checkSameDim(
          op, "C8", "T",
          {{"q_src", qs, 1}, {"new_key", nk, 2}, {"new_value", nv, 2}})) ||
      failed(checkSameDim(op, "C8", "B",
                          {{"q_src", qs, 0},
                           {"past_key", pk, 0},
                           {"past_value", pv, 0},
                           {"new_key", nk, 0},
                           {"new_value", nv, 0}})) ||
      failed(headsDim("past_key", pk)) || failed(headsDim("past_value", pv)) ||
      failed(headsDim("new_key", nk)) || failed(headsDim("new_value", nv)) ||
      failed(checkSameDim(op, "C8", "dk",
                          {{"past_key", pk, 3}, {"new_key", nk, 3}})) ||
      failed(checkSameDim(
          op, "C8", "dv",
          {{"wv", getWv(), 2}, {"past_value", pv, 3}, {"new_value", nv, 3}})))
    return failure();
  int64_t qkWidth = cast<RankedTensorType>(getWq().getType()).getDimSize(1);
  int64_t dk = cast<RankedTensorType>(pk.getType()).getDimSize(3);
  if (!ShapedType::isDynamic(qkWidth) && !ShapedType::isDynamic(dk) &&
      qkWidth != heads * dk)
    return emitOpError() << "expected past_key dim 3 (dk) to be wq dim 1 / "
                            "num_heads = "
                         << qkWidth / heads << ", got " << dk << " (C8)";
  if (failed(checkElementTypes(op, "C8",
                               {{"q_src", qs},
                                {"past_key", pk},
                                {"past_value", pv},
                                {"new_key", nk},
                                {"new_value", nv}})))
    return failure();
  // C9: a cache holds earlier positions only.
  if (!getCausal())
    return emitOpError() << "expected causal attention: a key/value cache "
                            "holds only earlier positions (C9)";
  return success();
}

//===----------------------------------------------------------------------===//
// MotOp
//===----------------------------------------------------------------------===//

LogicalResult MotOp::verify() {
  Operation *op = getOperation();
  Value x = getInput(), wc = getWCtrl(), w1 = getW1(), w2 = getW2(),
        res = getResult();
  if (failed(checkRanks(op, "C1",
                        {{"input", x, 3}, {"w_ctrl", wc, 2}, {"w1", w1, 3},
                         {"w2", w2, 3}, {"result", res, 3}})))
    return failure();
  if (failed(checkDivides(op, "C2", "group_size",
                          signedValue(getGroupSizeAttr()),
                          {"input", x, 0})))
    return failure();
  if (failed(checkSameDim(op, "C3", "D",
                          {{"input", x, 2},
                           {"w_ctrl", wc, 0},
                           {"w1", w1, 1},
                           {"w2", w2, 2},
                           {"result", res, 2}})) ||
      failed(checkSameDim(op, "C3", "E",
                          {{"w_ctrl", wc, 1}, {"w1", w1, 0}, {"w2", w2, 0}})) ||
      failed(checkSameDim(op, "C3", "s", {{"w1", w1, 2}, {"w2", w2, 1}})) ||
      failed(checkSameDim(op, "C3", "B", {{"input", x, 0}, {"result", res, 0}})) ||
      failed(checkSameDim(op, "C3", "T", {{"input", x, 1}, {"result", res, 1}})))
    return failure();
  if (failed(checkPositive(op, "C4", "temperature",
                           getTemperature().convertToDouble())))
    return failure();
  return checkElementTypes(op, "C5",
                           {{"input", x}, {"w_ctrl", wc}, {"w1", w1},
                            {"w2", w2}, {"result", res}});
}

//===----------------------------------------------------------------------===//
// Result shapes (ReifyRankedShapedTypeOpInterface)
//===----------------------------------------------------------------------===//
//
// Each op gives its result sizes from its operands' dims, by the shape rules
// of its description (the verifiers check them). Static sizes come from the
// result type; dynamic ones are tensor.dim of an operand, or arithmetic on
// them (affine.apply folds to a constant where it can).

namespace {
/// Builds the reified sizes: `rule(result, dim)` is asked only for the
/// dims the result type leaves dynamic.
LogicalResult
reify(Operation *op, OpBuilder &b, ReifiedRankedShapedTypeDims &shapes,
      llvm::function_ref<OpFoldResult(unsigned, unsigned)> rule) {
  shapes.clear();
  for (OpResult r : op->getResults()) {
    auto type = cast<RankedTensorType>(r.getType());
    SmallVector<OpFoldResult> dims;
    for (int64_t d = 0; d < type.getRank(); ++d) {
      if (!type.isDynamicDim(d)) {
        dims.push_back(b.getIndexAttr(type.getDimSize(d)));
        continue;
      }
      OpFoldResult size = rule(r.getResultNumber(), d);
      if (!size)
        return failure();
      dims.push_back(size);
    }
    shapes.push_back(std::move(dims));
  }
  return success();
}

OpFoldResult dimOf(OpBuilder &b, Location loc, Value v, int64_t d) {
  return tensor::getMixedSize(b, loc, v, d);
}

OpFoldResult mulOf(OpBuilder &b, Location loc, OpFoldResult x,
                   OpFoldResult y) {
  AffineExpr s0, s1;
  bindSymbols(b.getContext(), s0, s1);
  return affine::makeComposedFoldedAffineApply(b, loc, s0 * s1, {x, y});
}

OpFoldResult divOf(OpBuilder &b, Location loc, OpFoldResult x, int64_t y) {
  AffineExpr s0;
  bindSymbols(b.getContext(), s0);
  return affine::makeComposedFoldedAffineApply(b, loc, s0.floorDiv(y), {x});
}

/// Every dim of every result is the same dim of `like`.
LogicalResult reifyLike(Operation *op, OpBuilder &b,
                        ReifiedRankedShapedTypeDims &shapes, Value like) {
  return reify(op, b, shapes, [&](unsigned, unsigned d) {
    return dimOf(b, op->getLoc(), like, d);
  });
}
} // namespace

LogicalResult RouteOp::reifyResultShapes(OpBuilder &b,
                                         ReifiedRankedShapedTypeDims &s) {
  return reify(*this, b, s, [&](unsigned, unsigned d) -> OpFoldResult {
    return d == 0 ? dimOf(b, getLoc(), getScores(), 0) : OpFoldResult();
  });
}

LogicalResult SwitchRouteOp::reifyResultShapes(OpBuilder &b,
                                               ReifiedRankedShapedTypeDims &s) {
  return reify(*this, b, s, [&](unsigned, unsigned d) -> OpFoldResult {
    return d == 0 ? dimOf(b, getLoc(), getScores(), 0) : OpFoldResult();
  });
}

LogicalResult TreeRouteOp::reifyResultShapes(OpBuilder &b,
                                             ReifiedRankedShapedTypeDims &s) {
  return reify(*this, b, s, [&](unsigned, unsigned d) -> OpFoldResult {
    return d == 0 ? dimOf(b, getLoc(), getGates(), 0) : OpFoldResult();
  });
}

LogicalResult DispatchOp::reifyResultShapes(OpBuilder &b,
                                            ReifiedRankedShapedTypeDims &s) {
  // offsets: [E + 1] (static); perm: [N * S].
  return reify(*this, b, s, [&](unsigned r, unsigned) -> OpFoldResult {
    if (r != 1)
      return OpFoldResult();
    return mulOf(b, getLoc(), dimOf(b, getLoc(), getIds(), 0),
                 dimOf(b, getLoc(), getIds(), 1));
  });
}

LogicalResult GroupedMatmulOp::reifyResultShapes(
    OpBuilder &b, ReifiedRankedShapedTypeDims &s) {
  // [N, Dout] with slot weights, else [M, Dout].
  return reify(*this, b, s, [&](unsigned, unsigned d) -> OpFoldResult {
    if (d == 1)
      return dimOf(b, getLoc(), getWeight(), 2);
    return getSlotWeights() ? dimOf(b, getLoc(), getSlotWeights(), 0)
                            : dimOf(b, getLoc(), getPerm(), 0);
  });
}

LogicalResult UnpackPanelsOp::reifyResultShapes(
    OpBuilder &b, ReifiedRankedShapedTypeDims &s) {
  // Static shapes only (C1).
  return reify(*this, b, s,
               [&](unsigned, unsigned) { return OpFoldResult(); });
}

LogicalResult CombineOp::reifyResultShapes(OpBuilder &b,
                                           ReifiedRankedShapedTypeDims &s) {
  // slots [N, S, D] -> [N, D].
  return reify(*this, b, s, [&](unsigned, unsigned d) {
    return dimOf(b, getLoc(), getSlots(), d == 0 ? 0 : 2);
  });
}

LogicalResult MotMixOp::reifyResultShapes(OpBuilder &b,
                                          ReifiedRankedShapedTypeDims &s) {
  // input [B, T, D], logits [B, T, E] -> mixed [T, B/g, E, D] and weights
  // [T, B/g, g, E].
  Location loc = getLoc();
  int64_t g = getGroupSize();
  return reify(*this, b, s, [&](unsigned r, unsigned d) -> OpFoldResult {
    switch (d) {
    case 0:
      return dimOf(b, loc, getInput(), 1);
    case 1:
      return divOf(b, loc, dimOf(b, loc, getInput(), 0), g);
    case 2:
      return r == 0 ? dimOf(b, loc, getLogits(), 2) : b.getIndexAttr(g);
    default:
      return r == 0 ? dimOf(b, loc, getInput(), 2)
                    : dimOf(b, loc, getLogits(), 2);
    }
  });
}

LogicalResult MotUnmixOp::reifyResultShapes(OpBuilder &b,
                                            ReifiedRankedShapedTypeDims &s) {
  // outputs [T, C, E, D], weights [T, C, g, E] -> [C*g, T, D].
  Location loc = getLoc();
  return reify(*this, b, s, [&](unsigned, unsigned d) -> OpFoldResult {
    if (d == 0)
      return mulOf(b, loc, dimOf(b, loc, getOutputs(), 1),
                   dimOf(b, loc, getWeights(), 2));
    return dimOf(b, loc, getOutputs(), d == 1 ? 0 : 3);
  });
}

LogicalResult AttentionOp::reifyResultShapes(OpBuilder &b,
                                             ReifiedRankedShapedTypeDims &s) {
  // q [B, H, T, dk], v [B, H, S, dv] -> [B, H, T, dv].
  return reify(*this, b, s, [&](unsigned, unsigned d) {
    return d < 3 ? dimOf(b, getLoc(), getQuery(), d)
                 : dimOf(b, getLoc(), getValue(), 3);
  });
}

LogicalResult RopeOp::reifyResultShapes(OpBuilder &b,
                                        ReifiedRankedShapedTypeDims &s) {
  return reifyLike(*this, b, s, getInput());
}

LogicalResult FfnOp::reifyResultShapes(OpBuilder &b,
                                       ReifiedRankedShapedTypeDims &s) {
  return reifyLike(*this, b, s, getInput());
}

LogicalResult TreeFfnOp::reifyResultShapes(OpBuilder &b,
                                           ReifiedRankedShapedTypeDims &s) {
  // input [N, Din], weight [.., .., Dout] -> [N, Dout].
  return reify(*this, b, s, [&](unsigned, unsigned d) {
    return d == 0 ? dimOf(b, getLoc(), getInput(), 0)
                  : dimOf(b, getLoc(), getWeight(), 2);
  });
}

LogicalResult SwitchHeadOp::reifyResultShapes(OpBuilder &b,
                                              ReifiedRankedShapedTypeDims &s) {
  return reifyLike(*this, b, s, getQSrc());
}

LogicalResult
SwitchHeadCachedOp::reifyResultShapes(OpBuilder &b,
                                      ReifiedRankedShapedTypeDims &s) {
  // result [B, T, D] as q_src; new_key [B, H, T, dk], new_value
  // [B, H, T, dv] (dk as past_key's, dv as wv's).
  Location loc = getLoc();
  return reify(*this, b, s, [&](unsigned r, unsigned d) -> OpFoldResult {
    if (r == 0)
      return dimOf(b, loc, getQSrc(), d);
    switch (d) {
    case 0:
      return dimOf(b, loc, getQSrc(), 0);
    case 1:
      return b.getIndexAttr(getNumHeads());
    case 2:
      return dimOf(b, loc, getQSrc(), 1);
    default:
      return r == 1 ? dimOf(b, loc, getPastKey(), 3)
                    : dimOf(b, loc, getWv(), 2);
    }
  });
}

LogicalResult MotOp::reifyResultShapes(OpBuilder &b,
                                       ReifiedRankedShapedTypeDims &s) {
  return reifyLike(*this, b, s, getInput());
}

#define GET_OP_CLASSES
#include "moe/MoeOps.cpp.inc"

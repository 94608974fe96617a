//===- StandardOpsSpatial.cpp - ai.onnx Pad and Conv ----------------------===//
//
// Pad (constant, reflect, edge and wrap modes, negative pads, computed pads)
// and Conv (any number of spatial dims, groups, strides, dilations, explicit
// and automatic padding, bias). Pad amounts may be computed at run time
// (torch's F.pad exports derive them from shapes); Conv's weights need a
// static shape.
//
//===----------------------------------------------------------------------===//

#include "HandlerUtils.h"
#include "ShapeValues.h"
#include "moe/Utils/BuildUtils.h"
#include "moe/Utils/RuntimeErrors.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

#include "llvm/ADT/SmallSet.h"
#include "llvm/Support/MathExtras.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::build;
using namespace mlir::moe::onnx_conv;

namespace {

/// Index arithmetic on sizes that folds where both sides are constant.
struct IndexMath {
  OpBuilder &b;
  Location loc;

  Value v(OpFoldResult x) { return getValueOrCreateConstantIndexOp(b, loc, x); }
  OpFoldResult c(int64_t x) { return b.getIndexAttr(x); }
  template <typename Op> OpFoldResult fold(OpFoldResult x, OpFoldResult y) {
    return getAsOpFoldResult(b.createOrFold<Op>(loc, v(x), v(y)));
  }
  OpFoldResult add(OpFoldResult x, OpFoldResult y) {
    return fold<arith::AddIOp>(x, y);
  }
  OpFoldResult sub(OpFoldResult x, OpFoldResult y) {
    return fold<arith::SubIOp>(x, y);
  }
  OpFoldResult mul(OpFoldResult x, OpFoldResult y) {
    return fold<arith::MulIOp>(x, y);
  }
  OpFoldResult max(OpFoldResult x, OpFoldResult y) {
    return fold<arith::MaxSIOp>(x, y);
  }
  OpFoldResult min(OpFoldResult x, OpFoldResult y) {
    return fold<arith::MinSIOp>(x, y);
  }
  /// Floor division by a positive constant.
  OpFoldResult floorDiv(OpFoldResult x, int64_t d) {
    return fold<arith::FloorDivSIOp>(x, c(d));
  }
  Value lt(OpFoldResult x, OpFoldResult y) {
    return b.createOrFold<arith::CmpIOp>(loc, arith::CmpIPredicate::slt, v(x),
                                         v(y));
  }
};

/// Whether `v` is a constant i1 false (a check that cannot fail).
bool isFalse(Value v) {
  std::optional<int64_t> c = getConstantIntValue(getAsOpFoldResult(v));
  return c && *c == 0;
}

/// Whether `v` is a constant i1 true (a check that always fails).
bool isTrue(Value v) {
  std::optional<int64_t> c = getConstantIntValue(getAsOpFoldResult(v));
  return c && *c != 0;
}

/// Largest pad (in magnitude) Pad takes: sizes stay far from overflow.
constexpr int64_t kMaxPad = int64_t(1) << 30;

/// Largest stride, dilation, pad or group Conv takes: the window
/// arithmetic stays far from overflow.
constexpr int64_t kMaxConvAttr = int64_t(1) << 31;

/// `j` (an index, any value) mapped into [0, m) for Pad's non-constant
/// modes; `m` >= 1.
Value padSource(OpBuilder &b, Location l, Value j, Value m, StringRef mode) {
  Value zero = arith::ConstantIndexOp::create(b, l, 0);
  Value one = arith::ConstantIndexOp::create(b, l, 1);
  Value last = arith::SubIOp::create(b, l, m, one);
  if (mode == "edge")
    return arith::MinSIOp::create(b, l, arith::MaxSIOp::create(b, l, j, zero),
                                  last);
  if (mode == "wrap") {
    // j mod m, toward the divisor's sign.
    Value r = arith::RemSIOp::create(b, l, j, m);
    Value neg = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, r, zero);
    return arith::SelectOp::create(b, l, neg, arith::AddIOp::create(b, l, r, m),
                                   r);
  }
  // reflect about 0 and m - 1 without repeating the edge; the pads are at
  // most m - 1 (checked), so one mirror suffices. Clamped all the same.
  Value below = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, j, zero);
  Value above = arith::CmpIOp::create(b, l, arith::CmpIPredicate::sgt, j, last);
  Value r = arith::SelectOp::create(b, l, below,
                                    arith::SubIOp::create(b, l, zero, j), j);
  r = arith::SelectOp::create(
      b, l, above,
      arith::SubIOp::create(b, l, arith::AddIOp::create(b, l, last, last), j),
      r);
  return arith::MinSIOp::create(b, l, arith::MaxSIOp::create(b, l, r, zero),
                                last);
}

/// Pad-13, 18 (axes), 19 (wrap), 21, with ONNX Runtime's reading of
/// negative pads. On a padded axis of n elements with pads (pb, pe):
///  - constant: result[o] = data[o - pb] where 0 <= o - pb < n, else the
///    value; n + pb + pe elements (negative: an error);
///  - edge, reflect, wrap: negative pads first remove elements, leaving
///    [max(-pb, 0), n - max(-pe, 0)) of m elements, which the positive pads
///    then extend: m + max(pb, 0) + max(pe, 0) elements. Extending nothing
///    (m = 0), and a reflection by more than m - 1, are errors.
/// Errors are located at compile time where the sizes are known, else
/// reported at run time.
Values pad(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 2, 4)))
    return failure();
  FailureOr<Value> x = tensorOperand(node, 0, "data");
  FailureOr<Value> padsIn = tensorOperand(node, 1, "pads", 1);
  FailureOr<Value> cvIn =
      tensorOperand(node, 2, "constant_value", std::nullopt, true);
  FailureOr<std::string> mode = stringAttr(
      node, "mode", {"constant", "reflect", "edge", "wrap"}, "constant");
  if (failed(x) || failed(padsIn) || failed(cvIn) || failed(mode))
    return failure();
  Location loc = node.getLoc();
  RankedTensorType t = typeOf(*x);
  int64_t rank = t.getRank();
  SmallVector<int64_t> allAxes;
  for (int64_t d = 0; d < rank; ++d)
    allAxes.push_back(d);
  FailureOr<SmallVector<int64_t>> axes =
      constantIntsOperand(node, 3, "axes", allAxes);
  if (failed(axes))
    return failure();
  llvm::SmallSet<int64_t, 8> seen;
  for (int64_t &a : *axes) {
    FailureOr<int64_t> d = normalizeAxis(node, a, rank);
    if (failed(d))
      return failure();
    if (!seen.insert(*d).second) {
      nodeError(node) << "axis " << *d << " is padded twice";
      return failure();
    }
    a = *d;
  }
  std::optional<SmallVector<OpFoldResult>> pads =
      shapeElements(b, loc, *padsIn);
  if (!pads || pads->size() != 2 * axes->size()) {
    nodeError(node) << "pads must be a 1-D integer tensor of 2 x "
                    << axes->size() << " entries (begins, then ends; at most "
                    << kMaxShapeElements << "), got " << padsIn->getType();
    return failure();
  }

  // The pad value, of the data's element type (signless from here on).
  Type origElt = t.getElementType();
  Value data = toSignless(b, loc, *x);
  Type elt = typeOf(data).getElementType();
  Value padValue;
  if (*cvIn) {
    RankedTensorType ct = typeOf(*cvIn);
    if (ct.getElementType() != origElt || !ct.hasStaticShape() ||
        ct.getNumElements() != 1) {
      nodeError(node) << "constant_value must be one element of the data's "
                         "type "
                      << origElt << ", got " << ct;
      return failure();
    }
    Value cv = toSignless(b, loc, *cvIn);
    SmallVector<Value> zeros(ct.getRank(),
                             arith::ConstantIndexOp::create(b, loc, 0));
    padValue = tensor::ExtractOp::create(b, loc, cv, zeros);
  } else {
    padValue = isa<FloatType>(elt)
                   ? scalar(b, loc, elt, 0.0)
                   : arith::ConstantOp::create(b, loc, b.getIntegerAttr(elt, 0))
                         .getResult();
  }

  // Per axis: elements dropped at the begin, kept count, padding added.
  IndexMath im{b, loc};
  SmallVector<OpFoldResult> cropOffsets(rank, b.getIndexAttr(0));
  SmallVector<OpFoldResult> kept = tensor::getMixedSizes(b, loc, data);
  SmallVector<OpFoldResult> low(rank, b.getIndexAttr(0)),
      high(rank, b.getIndexAttr(0));
  bool constantMode = *mode == "constant";
  bool declared = false;
  auto check = [&](Value bad, StringRef what) -> LogicalResult {
    if (isFalse(bad))
      return success();
    if (isTrue(bad)) {
      nodeError(node) << what;
      return failure();
    }
    if (!declared)
      declareErrorHook(b, node);
    declared = true;
    reportIf(b, loc, bad, kErrorShapeMismatch);
    return success();
  };
  // Each pad at most 2^30 in magnitude (so that no size below wraps, and a
  // computed pad cannot ask for an absurd allocation): an error otherwise,
  // at run time with the pad taken as 0.
  for (OpFoldResult &p : *pads) {
    OpFoldResult bound = im.c(kMaxPad);
    Value bad = b.createOrFold<arith::OrIOp>(loc, im.lt(bound, p),
                                             im.lt(p, im.c(-kMaxPad)));
    if (failed(check(bad, "a pad beyond +-2^30")))
      return failure();
    if (!isFalse(bad))
      p = getAsOpFoldResult(
          b.createOrFold<arith::SelectOp>(loc, bad, im.v(im.c(0)), im.v(p)));
  }
  for (auto [i, d] : llvm::enumerate(*axes)) {
    OpFoldResult pb = (*pads)[i], pe = (*pads)[axes->size() + i];
    OpFoldResult zero = im.c(0);
    OpFoldResult n = kept[d];
    OpFoldResult cb = im.max(im.sub(zero, pb), zero);
    OpFoldResult ce = im.max(im.sub(zero, pe), zero);
    OpFoldResult lb = im.max(pb, zero), le = im.max(pe, zero);
    OpFoldResult m = im.sub(im.sub(n, cb), ce);
    // Inside the axis also where the cuts overlap (m < 0; the slice is
    // empty then, and an offset must still lie below the size).
    cropOffsets[d] = im.min(cb, im.max(im.sub(n, im.c(1)), zero));
    if (constantMode) {
      // Padded, then cut: n + pb + pe elements (ONNX Runtime's sizes, also
      // where the cuts reach into the other side's padding).
      OpFoldResult size = im.add(im.add(n, pb), pe);
      if (failed(check(im.lt(size, zero), "pads on axis " + std::to_string(d) +
                                              " leave a negative size")))
        return failure();
      size = im.max(size, zero);
      m = im.max(m, zero);
      low[d] = im.min(lb, size);
      high[d] = im.sub(im.sub(size, low[d]), m);
      kept[d] = m;
      continue;
    }
    // Cut, then extended from what is left (m elements): nothing left to
    // extend from, or a reflection longer than m - 1, is an error (as in
    // ONNX Runtime).
    Value bad = im.lt(m, zero);
    m = im.max(m, zero);
    Value grows = im.lt(zero, im.add(lb, le));
    Value empty = b.createOrFold<arith::CmpIOp>(loc, arith::CmpIPredicate::eq,
                                                im.v(m), im.v(zero));
    bad = b.createOrFold<arith::OrIOp>(
        loc, bad, b.createOrFold<arith::AndIOp>(loc, empty, grows));
    if (*mode == "reflect") {
      // A side that grows reflects at most m - 1 elements (a side of pad 0
      // asks nothing: an empty axis left as it is passes).
      OpFoldResult most = im.sub(m, im.c(1));
      auto tooLong = [&](OpFoldResult p) {
        return b.createOrFold<arith::AndIOp>(loc, im.lt(zero, p),
                                             im.lt(most, p));
      };
      bad = b.createOrFold<arith::OrIOp>(
          loc, bad,
          b.createOrFold<arith::OrIOp>(loc, tooLong(lb), tooLong(le)));
    }
    if (failed(check(bad, "mode '" + *mode + "' cannot pad axis " +
                              std::to_string(d) +
                              " by these pads (negative pads removing every "
                              "element, or a reflection longer than the "
                              "axis less one)")))
      return failure();
    // The run fails then; its result is empty on that axis.
    auto orZero = [&](OpFoldResult v) {
      return getAsOpFoldResult(
          b.createOrFold<arith::SelectOp>(loc, bad, im.v(zero), im.v(v)));
    };
    low[d] = orZero(lb);
    high[d] = orZero(le);
    kept[d] = orZero(m);
  }
  Value cropped = tensor::ExtractSliceOp::create(
      b, loc, data, cropOffsets, kept,
      SmallVector<OpFoldResult>(rank, b.getIndexAttr(1)));

  Value result;
  if (constantMode) {
    auto padOp = tensor::PadOp::create(b, loc, Type(), cropped, low, high,
                                       padValue, /*nofold=*/false);
    result = padOp.getResult();
  } else {
    SmallVector<OpFoldResult> outSizes;
    for (int64_t d = 0; d < rank; ++d)
      outSizes.push_back(im.add(im.add(kept[d], low[d]), high[d]));
    StringRef m = *mode;
    result = gatherByIndices(
        b, loc, outSizes, cropped,
        [&](OpBuilder &nb, Location nl, ValueRange indices) {
          SmallVector<Value> coords;
          for (int64_t d = 0; d < rank; ++d) {
            Value i = indices[d];
            if (!seen.contains(d)) {
              coords.push_back(i);
              continue;
            }
            Value j = arith::SubIOp::create(
                nb, nl, i, getValueOrCreateConstantIndexOp(nb, nl, low[d]));
            // The body runs only where the axis is non-empty.
            Value n = arith::MaxSIOp::create(
                nb, nl, getValueOrCreateConstantIndexOp(nb, nl, kept[d]),
                arith::ConstantIndexOp::create(nb, nl, 1));
            coords.push_back(padSource(nb, nl, j, n, m));
          }
          return coords;
        });
  }
  return SmallVector<Value>{toElementType(b, loc, result, origElt)};
}

/// Conv-11, 22: Y[n, m, o...] = B[m] + sum over c in m's group and the
/// kernel offsets r of X[n, g C/G + c, o s + r d - pb] W[m, c, r], zeros
/// outside X. Groups, strides, dilations, explicit pads and auto_pad
/// (SAME_UPPER, SAME_LOWER, VALID) on any number of spatial dims; W needs a
/// static shape, X's sizes may be dynamic (a channel count other than W's
/// is reported at run time).
Values conv(onnxir::NodeOp node, RewriterBase &b) {
  if (failed(checkOperandCount(node, 2, 3)))
    return failure();
  FailureOr<Value> xIn = tensorOperand(node, 0, "X");
  FailureOr<Value> wIn = tensorOperand(node, 1, "W");
  FailureOr<Value> bIn = tensorOperand(node, 2, "B", 1, true);
  FailureOr<std::string> autoPad =
      stringAttr(node, "auto_pad",
                 {"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"}, "NOTSET");
  FailureOr<int64_t> group = intAttr(node, "group", 1);
  if (failed(xIn) || failed(wIn) || failed(bIn) || failed(autoPad) ||
      failed(group))
    return failure();
  RankedTensorType xt = typeOf(*xIn), wt = typeOf(*wIn);
  Type elt = xt.getElementType();
  if (!isa<FloatType>(elt) || wt.getElementType() != elt ||
      (*bIn && typeOf(*bIn).getElementType() != elt)) {
    nodeError(node) << "X, W and B must share one float element type, got "
                    << xt << " and " << wt;
    return failure();
  }
  int64_t rank = xt.getRank(), k = rank - 2;
  if (rank < 3 || wt.getRank() != rank) {
    nodeError(node) << "X and W must have one rank of at least 3 (N, C and "
                       "the spatial dims), got "
                    << xt << " and " << wt;
    return failure();
  }
  if (!wt.hasStaticShape()) {
    nodeError(node) << "W must have a static shape, got " << wt;
    return failure();
  }
  int64_t g = *group, outCh = wt.getDimSize(0), cg = wt.getDimSize(1);
  int64_t channels = 0;
  if (g < 1 || g > kMaxConvAttr || outCh % g != 0 ||
      llvm::MulOverflow(g, cg, channels)) {
    nodeError(node) << "group " << g << " must be positive and divide W's "
                    << outCh << " output channels";
    return failure();
  }
  if (!xt.isDynamicDim(1) && xt.getDimSize(1) != channels) {
    nodeError(node) << "X has " << xt.getDimSize(1) << " channels; W and group "
                    << g << " take " << channels;
    return failure();
  }
  if (*bIn && !typeOf(*bIn).isDynamicDim(0) &&
      typeOf(*bIn).getDimSize(0) != outCh) {
    nodeError(node) << "B has " << typeOf(*bIn).getDimSize(0) << " entries, W "
                    << outCh << " output channels";
    return failure();
  }
  SmallVector<int64_t> kernel(wt.getShape().drop_front(2));
  auto listAttr = [&](StringRef name, size_t n,
                      int64_t fallback) -> FailureOr<SmallVector<int64_t>> {
    Attribute attr = node.getNodeAttributes().get(name);
    SmallVector<int64_t> out(n, fallback);
    if (!attr)
      return out;
    auto ints = dyn_cast<DenseI64ArrayAttr>(attr);
    if (!ints) {
      nodeError(node) << name << " must be a list of integers";
      return failure();
    }
    if (ints.size() != (int64_t)n) {
      nodeError(node) << name << " must have " << n << " entries, got "
                      << ints.size();
      return failure();
    }
    out.assign(ints.asArrayRef().begin(), ints.asArrayRef().end());
    return out;
  };
  FailureOr<SmallVector<int64_t>> strides = listAttr("strides", k, 1);
  FailureOr<SmallVector<int64_t>> dilations = listAttr("dilations", k, 1);
  FailureOr<SmallVector<int64_t>> padsAttr = listAttr("pads", 2 * k, 0);
  FailureOr<SmallVector<int64_t>> kernelShape = listAttr("kernel_shape", k, 0);
  if (failed(strides) || failed(dilations) || failed(padsAttr) ||
      failed(kernelShape))
    return failure();
  for (int64_t i = 0; i < k; ++i) {
    if ((*strides)[i] < 1 || (*dilations)[i] < 1 ||
        (*strides)[i] > kMaxConvAttr || (*dilations)[i] > kMaxConvAttr) {
      nodeError(node) << "strides and dilations must be from 1 to 2^31";
      return failure();
    }
    if ((*padsAttr)[i] < 0 || (*padsAttr)[k + i] < 0 ||
        (*padsAttr)[i] > kMaxConvAttr || (*padsAttr)[k + i] > kMaxConvAttr) {
      nodeError(node) << "pads must be from 0 to 2^31";
      return failure();
    }
    if (node.getNodeAttributes().get("kernel_shape") &&
        (*kernelShape)[i] != kernel[i]) {
      nodeError(node) << "kernel_shape differs from W's spatial dims";
      return failure();
    }
    if (kernel[i] < 1) {
      nodeError(node) << "W's kernel dims must be positive, got " << wt;
      return failure();
    }
  }
  if (*autoPad != "NOTSET" &&
      llvm::any_of(*padsAttr, [](int64_t p) { return p != 0; })) {
    nodeError(node) << "pads and auto_pad " << *autoPad << " both given";
    return failure();
  }

  Location loc = node.getLoc();
  IndexMath im{b, loc};
  declareErrorHook(b, node);
  Value x = *xIn;
  // The channel count W expects, checked at run time where X's is dynamic.
  x = requireSize(b, loc, x, 1, b.getIndexAttr(channels), kErrorShapeMismatch);

  // Per spatial dim: padding and output size.
  SmallVector<OpFoldResult> low(rank, im.c(0)), high(rank, im.c(0));
  SmallVector<OpFoldResult> outSpatial;
  for (int64_t i = 0; i < k; ++i) {
    OpFoldResult in = sizeOf(b, loc, x, 2 + i);
    int64_t s = (*strides)[i];
    int64_t span = 0;
    if (llvm::MulOverflow((*dilations)[i], kernel[i] - 1, span) ||
        span >= kMaxConvAttr * 4) {
      nodeError(node) << "the dilated kernel of spatial dim " << i
                      << " spans more than 2^33 elements";
      return failure();
    }
    span += 1;
    OpFoldResult pb = im.c((*padsAttr)[i]), pe = im.c((*padsAttr)[k + i]);
    if (*autoPad == "SAME_UPPER" || *autoPad == "SAME_LOWER") {
      // Output ceil(in / s); the padding that takes, odd half at the end
      // (UPPER) or the begin (LOWER).
      OpFoldResult out = im.floorDiv(im.add(in, im.c(s - 1)), s);
      OpFoldResult total = im.max(
          im.sub(im.add(im.mul(im.sub(out, im.c(1)), im.c(s)), im.c(span)), in),
          im.c(0));
      OpFoldResult half = im.floorDiv(total, 2);
      OpFoldResult rest = im.sub(total, half);
      pb = *autoPad == "SAME_UPPER" ? half : rest;
      pe = *autoPad == "SAME_UPPER" ? rest : half;
    }
    // floor((in + pb + pe - span) / s) + 1 windows; none fit: an error.
    OpFoldResult room = im.sub(im.add(im.add(in, pb), pe), im.c(span));
    Value bad = im.lt(room, im.c(0));
    if (isTrue(bad)) {
      nodeError(node) << "the kernel (" << span
                      << " wide with its dilation) does not fit spatial dim "
                      << i << " of X, padded";
      return failure();
    }
    if (!isFalse(bad))
      reportIf(b, loc, bad, kErrorShapeMismatch);
    OpFoldResult out = im.add(im.floorDiv(room, s), im.c(1));
    out = im.max(out, im.c(0));
    low[2 + i] = pb;
    high[2 + i] = pe;
    outSpatial.push_back(out);
  }
  bool anyPad =
      llvm::any_of(llvm::concat<OpFoldResult>(low, high), [](OpFoldResult p) {
        std::optional<int64_t> c = getConstantIntValue(p);
        return !c || *c != 0;
      });
  if (anyPad)
    x = tensor::PadOp::create(b, loc, Type(), x, low, high,
                              scalar(b, loc, elt, 0.0), /*nofold=*/false);

  // X [N, G, C/G, S...], W [G, M/G, C/G, K...], Y [N, G, M/G, O...].
  OpFoldResult n = sizeOf(b, loc, x, 0);
  SmallVector<ReassociationIndices> groupDims = {{0}, {1, 2}};
  for (int64_t i = 0; i < k; ++i)
    groupDims.push_back({3 + i});
  SmallVector<OpFoldResult> xSizes = {n, im.c(g), im.c(cg)};
  for (int64_t i = 0; i < k; ++i)
    xSizes.push_back(sizeOf(b, loc, x, 2 + i));
  Value xg = expand(b, loc, x, groupDims, xSizes);
  SmallVector<ReassociationIndices> wDims = {{0, 1}};
  for (int64_t i = 1; i < rank; ++i)
    wDims.push_back({i + 1});
  SmallVector<OpFoldResult> wSizes = {im.c(g), im.c(outCh / g), im.c(cg)};
  for (int64_t i = 0; i < k; ++i)
    wSizes.push_back(im.c(kernel[i]));
  Value wg = expand(b, loc, *wIn, wDims, wSizes);
  SmallVector<OpFoldResult> ySizes = {n, im.c(g), im.c(outCh / g)};
  ySizes.append(outSpatial);
  Value init;
  if (*bIn) {
    // The bias, broadcast over N and the output positions.
    Value bias = requireSize(b, loc, *bIn, 0, b.getIndexAttr(outCh),
                             kErrorShapeMismatch);
    Value bg = expand(b, loc, bias, {{0, 1}},
                      {b.getIndexAttr(g), b.getIndexAttr(outCh / g)});
    Value empty = emptyTensor(b, loc, ySizes, elt);
    int64_t yRank = 3 + k;
    AffineMap bMap =
        AffineMap::get(yRank, 0, {b.getAffineDimExpr(1), b.getAffineDimExpr(2)},
                       b.getContext());
    init = linalg::GenericOp::create(
               b, loc, TypeRange{empty.getType()}, ValueRange{bg},
               ValueRange{empty},
               SmallVector<AffineMap>{bMap, b.getMultiDimIdentityMap(yRank)},
               SmallVector<utils::IteratorType>(yRank,
                                                utils::IteratorType::parallel),
               [](OpBuilder &nb, Location nl, ValueRange a) {
                 yield(nb, nl, a[0]);
               })
               .getResult(0);
  } else {
    init = filledTensor(b, loc, ySizes, elt, 0.0);
  }

  // Loops (n, g, m, o_1..o_k, c, r_1..r_k).
  int64_t loops = 4 + 2 * k;
  auto d = [&](int64_t i) { return b.getAffineDimExpr(i); };
  SmallVector<AffineExpr> xExprs = {d(0), d(1), d(3 + k)};
  SmallVector<AffineExpr> wExprs = {d(1), d(2), d(3 + k)};
  SmallVector<AffineExpr> yExprs = {d(0), d(1), d(2)};
  for (int64_t i = 0; i < k; ++i) {
    AffineExpr o = d(3 + i), r = d(4 + k + i);
    xExprs.push_back(o * (*strides)[i] + r * (*dilations)[i]);
    wExprs.push_back(r);
    yExprs.push_back(o);
  }
  MLIRContext *ctx = b.getContext();
  SmallVector<AffineMap> maps = {AffineMap::get(loops, 0, xExprs, ctx),
                                 AffineMap::get(loops, 0, wExprs, ctx),
                                 AffineMap::get(loops, 0, yExprs, ctx)};
  SmallVector<utils::IteratorType> iters(3 + k, utils::IteratorType::parallel);
  iters.append(1 + k, utils::IteratorType::reduction);
  Value y = linalg::GenericOp::create(
                b, partLoc(loc, "conv"), TypeRange{init.getType()},
                ValueRange{xg, wg}, ValueRange{init}, maps, iters,
                [](OpBuilder &nb, Location nl, ValueRange a) {
                  Value p = arith::MulFOp::create(nb, nl, a[0], a[1]);
                  yield(nb, nl, arith::AddFOp::create(nb, nl, a[2], p));
                })
                .getResult(0);
  SmallVector<ReassociationIndices> yDims = {{0}, {1, 2}};
  for (int64_t i = 0; i < k; ++i)
    yDims.push_back({3 + i});
  return SmallVector<Value>{collapse(b, loc, y, yDims)};
}

} // namespace

void onnx_conv::populateStandardSpatialHandlers(OnnxHandlerRegistry &r) {
  for (int64_t v : {13, 18, 19, 21})
    r.add("", "Pad", v, pad);
  r.add("", "Conv", 11, conv);
}

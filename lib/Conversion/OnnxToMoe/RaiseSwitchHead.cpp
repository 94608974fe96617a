//===- RaiseSwitchHead.cpp - moe-raise-onnx's SwitchHead attention -------===//
//
// Form (e) of moe-raise-onnx (RaiseMoe.cpp runs it, before the feed-forward
// forms): a SwitchHead attention layer as `torch.onnx.export` writes the
// reference module (python/moe_ref/modules.py, SwitchHead), matched from
// its output combine back to its sources and weights, becomes one
// org.moe_mlir.SwitchHeadAttention node (SwitchHeadGatedAttention for
// dense values), which the conversion turns into moe.switchhead:
//
//    qs, ks, vs = Reshape(q_src | k_src | v_src, [n, D])
//    route(x, Sel): w = Sigmoid(v), ids = i + h * E, where
//                   v, i = TopK(Reshape(MatMul(x, Sel), [n, H, E]), K)
//    q = RoPE(Reshape(MatMul(qs, Wq), [B, T, H, dk])), k likewise
//    v = Einsum("nhk,nhkv->nhv", route(ks, SelV),
//               Einsum("nd,nhkdv->nhkv", vs, Gather(Wv, ids)))
//        (or Einsum("nd,hdv->nhv", vs, Wv)), reshaped [B, T, H, dv]
//    s = MatMul(q^T(0,2,1,3), k^T(0,2,3,1)) / sqrt(dk), masked by
//        Where(Not(Trilu(ones([T, S]), S - T)), -inf, s) if causal
//    r = Reshape(MatMul(Softmax(s), v^T(0,2,1,3))^T(0,2,1,3), [n, H, dv])
//    out = Einsum("nhk,nhkd->nd", route(qs, SelO),
//                 Einsum("nhv,nhkvd->nhkd", r, Gather(Wo, ids)))
// with RoPE = Concat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, x3]) on
// x1, x2, x3 = x[..., :r/2], x[..., r/2:r], x[..., r:], cos/sin of
// Range(0, T) x inv_freq (or a static export's folded constant), the base
// read back from inv_freq and checked on every frequency.
//
// The raised node computes what the export does, term for term: the same
// routed slots and weights, RoPE on the same pairs at positions 0..T-1 with
// the same frequencies (the rotated width r read from the slices, expressed
// as a rotate_fraction that gives r under the op's rounding), the same
// scale and mask. Every reshape's batch and sequence sizes are checked to
// be read from the sources' shapes (or, in a static export, to equal their
// static sizes), so the heads are split as the op splits them. The raised
// op computes the attention flash-style: the same sums in another order.
//
//===----------------------------------------------------------------------===//

#include "RaiseMatchers.h"

#include "llvm/ADT/STLExtras.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::raise;

namespace {

/// The float constant(s) of `v` (float or integer constants).
std::optional<SmallVector<double>> floatsOf(Value v) {
  DenseElementsAttr a = constantOf(v);
  if (!a)
    return std::nullopt;
  if (isa<FloatType>(a.getElementType()))
    return llvm::map_to_vector(a.getValues<APFloat>(), [](APFloat f) {
      bool lost;
      f.convert(APFloat::IEEEdouble(), APFloat::rmNearestTiesToEven, &lost);
      return f.convertToDouble();
    });
  if (std::optional<SmallVector<int64_t>> ints = intsOf(v))
    return llvm::map_to_vector(*ints, [](int64_t i) { return double(i); });
  return std::nullopt;
}

std::optional<double> scalarOf(Value v) {
  std::optional<SmallVector<double>> f = floatsOf(v);
  if (!f || f->size() != 1)
    return std::nullopt;
  return f->front();
}

/// The one-element pieces of a shape operand: the inputs of a Concat, or
/// the elements of a constant (each a value or a constant integer).
struct ShapePiece {
  Value value; // a computed piece (null for constants)
  std::optional<int64_t> constant;
};
std::optional<SmallVector<ShapePiece>> shapePieces(Value shape) {
  SmallVector<ShapePiece> pieces;
  if (std::optional<SmallVector<int64_t>> c = intsOf(shape)) {
    for (int64_t i : *c)
      pieces.push_back({Value(), i});
    return pieces;
  }
  onnxir::NodeOp cat = producer(shape, "Concat");
  if (!cat)
    return std::nullopt;
  for (Value in : cat.getInputs()) {
    if (std::optional<SmallVector<int64_t>> c = intsOf(in)) {
      for (int64_t i : *c)
        pieces.push_back({Value(), i});
      continue;
    }
    pieces.push_back({in, std::nullopt});
  }
  return pieces;
}

/// `Gather(Shape(x), i)` (through an Unsqueeze to one element): the x and
/// the i.
std::optional<std::pair<Value, int64_t>> shapeDim(Value v) {
  if (Value s = unsqueezed(v, 0))
    v = s;
  onnxir::NodeOp g = producer(v, "Gather");
  if (!g || g.getInputs().size() != 2 || intAttrOf(g, "axis").value_or(0) != 0)
    return std::nullopt;
  onnxir::NodeOp shape = producer(g.getInputs()[0], "Shape");
  std::optional<SmallVector<int64_t>> index = intsOf(g.getInputs()[1]);
  if (!shape || !index || index->size() != 1 || (*index)[0] < 0 ||
      intAttrOf(shape, "start").value_or(0) != 0 ||
      shape.getNodeAttributes().get("end"))
    return std::nullopt;
  return std::make_pair(shape.getInputs()[0], (*index)[0]);
}

/// The tensors whose dims hold a block's batch size and sequence length:
/// the queries' source (the reference reads b and t from q_src.shape, and
/// the op takes B and T from it), then the head splits once their sizes
/// are checked to be those, and the tensors that keep their dims. In a
/// static export the sizes are constants: q_src's static dims (equal
/// numbers give equal reshapes, whichever dim they were read from).
struct Extents {
  SmallVector<std::pair<Value, int64_t>> batch, seq;
  std::optional<int64_t> staticBatch, staticSeq;
  bool isBatch(Value v) const { return is(v, batch); }
  bool isSeq(Value v) const { return is(v, seq); }
  bool isBatch(const ShapePiece &p) const {
    return p.value ? isBatch(p.value) : isStatic(p.constant, staticBatch);
  }
  bool isSeq(const ShapePiece &p) const {
    return p.value ? isSeq(p.value) : isStatic(p.constant, staticSeq);
  }
  bool isStatic(std::optional<int64_t> c, std::optional<int64_t> size) const {
    return c && size && *c == *size;
  }
  /// Records the queries' source [B, T, D]: its dims, and their sizes where
  /// static.
  void setSource(Value src) {
    add(src);
    auto t = dyn_cast<RankedTensorType>(src.getType());
    if (t && t.getRank() == 3 && !t.isDynamicDim(0))
      staticBatch = t.getDimSize(0);
    if (t && t.getRank() == 3 && !t.isDynamicDim(1))
      staticSeq = t.getDimSize(1);
  }
  /// Records a tensor [B, T, ...] of the block.
  void add(Value v) {
    batch.push_back({v, 0});
    seq.push_back({v, 1});
  }
  static bool is(Value v, ArrayRef<std::pair<Value, int64_t>> known);
};

/// Composes the Transposes above `v` (rank 4): the source and the
/// permutation out[i] = source[perm[i]]; null if one of them has no `perm`
/// (its rank would have to be known) or one that is not a permutation of
/// 0..3.
Value throughTransposes(Value v, SmallVector<int64_t> &perm) {
  perm = {0, 1, 2, 3};
  while (onnxir::NodeOp t = producer(v, "Transpose")) {
    auto p =
        dyn_cast_or_null<DenseI64ArrayAttr>(t.getNodeAttributes().get("perm"));
    if (!p || p.size() != 4)
      return {};
    SmallVector<int64_t> step(p.asArrayRef());
    SmallVector<int64_t> sorted = step;
    llvm::sort(sorted);
    if (ArrayRef<int64_t>(sorted) != ArrayRef<int64_t>{0, 1, 2, 3})
      return {};
    for (int64_t &i : perm)
      i = step[i];
    v = t.getInputs()[0];
  }
  return v;
}

/// A dim of a known tensor, or of a transpose of one.
bool Extents::is(Value v, ArrayRef<std::pair<Value, int64_t>> known) {
  if (llvm::any_of(known, [&](const std::pair<Value, int64_t> &k) {
        return sameSize(v, k.first, k.second);
      }))
    return true;
  std::optional<std::pair<Value, int64_t>> d = shapeDim(v);
  if (!d)
    return false;
  if (llvm::is_contained(known, *d))
    return true;
  SmallVector<int64_t> perm;
  Value base = throughTransposes(d->first, perm);
  return base && d->second < 4 &&
         llvm::is_contained(known, std::make_pair(base, perm[d->second]));
}

bool isPerm(const SmallVector<int64_t> &perm, ArrayRef<int64_t> want) {
  return ArrayRef<int64_t>(perm) == want;
}

/// `v` with Casts skipped.
Value skipCasts(Value v) {
  while (onnxir::NodeOp c = producer(v, "Cast"))
    v = c.getInputs()[0];
  return v;
}

/// Reshape(x, shape): the node, or null.
onnxir::NodeOp reshapeOf(Value v) {
  onnxir::NodeOp r = producer(v, "Reshape");
  return r && r.getInputs().size() == 2 ? r : onnxir::NodeOp();
}

/// The [B, T, H, d] split of `v` (a Reshape of [n, H * d] or [n, H, d]
/// rows) with batch and sequence read from `ext`: H and d.
LogicalResult matchSplit(onnxir::NodeOp rs, const Extents &ext, int64_t &heads,
                         int64_t &width) {
  std::optional<SmallVector<ShapePiece>> p = shapePieces(rs.getInputs()[1]);
  if (!p || p->size() != 4 || !ext.isBatch((*p)[0]) || !ext.isSeq((*p)[1]) ||
      !(*p)[2].constant || !(*p)[3].constant || *(*p)[2].constant <= 0)
    return failure();
  heads = *(*p)[2].constant;
  width = *(*p)[3].constant; // -1: from the weights
  return success();
}

/// `flat` = Reshape(src, [n, D]): src.
onnxir::NodeOp flattenOf(Value flat) {
  onnxir::NodeOp rs = reshapeOf(flat);
  if (!rs)
    return {};
  std::optional<SmallVector<ShapePiece>> p = shapePieces(rs.getInputs()[1]);
  return p && p->size() == 2 ? rs : onnxir::NodeOp();
}

/// Per-head routing: gate = Sigmoid(v), ids = local + h * E, where v, local
/// = TopK(Reshape(MatMul(flat, Sel), [n, H, E]), K), Sel a constant
/// [D, H * E].
struct HeadRouting {
  Value flat;
  DenseElementsAttr sel; // [D, H * E]
  int64_t heads = 0, experts = 0, k = 0;
};

FailureOr<HeadRouting> matchHeadRouting(Value gate, Value ids, Miss &miss) {
  miss.why = "the expert gate is not Sigmoid(TopK(Reshape(MatMul(x, Sel), "
             "[n, H, E]), K)) with expert ids local + h * E";
  onnxir::NodeOp sig = producer(gate, "Sigmoid");
  onnxir::NodeOp topk =
      sig ? producer(sig.getInputs()[0], "TopK") : onnxir::NodeOp();
  if (!topk || topk.getNumResults() != 2 ||
      sig.getInputs()[0] != topk.getResult(0) || topk.getInputs().size() != 2 ||
      intAttrOf(topk, "largest").value_or(1) != 1 ||
      !llvm::is_contained(SmallVector<int64_t>{-1, 2},
                          intAttrOf(topk, "axis").value_or(-1)))
    return failure();
  HeadRouting r;
  std::optional<SmallVector<int64_t>> k = intsOf(topk.getInputs()[1]);
  onnxir::NodeOp rs = reshapeOf(topk.getInputs()[0]);
  onnxir::NodeOp mm =
      rs ? producer(rs.getInputs()[0], "MatMul") : onnxir::NodeOp();
  std::optional<SmallVector<ShapePiece>> p =
      rs ? shapePieces(rs.getInputs()[1]) : std::nullopt;
  if (!k || k->size() != 1 || !mm || !p || p->size() != 3 ||
      !(*p)[1].constant || !(*p)[2].constant)
    return failure();
  r.k = (*k)[0];
  r.heads = *(*p)[1].constant;
  r.experts = *(*p)[2].constant;
  r.sel = constantOf(mm.getInputs()[1]);
  r.flat = mm.getInputs()[0];
  if (!r.sel || r.sel.getType().getRank() != 2 || r.heads <= 0)
    return failure();
  int64_t cols = r.sel.getType().getDimSize(1);
  if (r.experts == -1 && cols % r.heads == 0)
    r.experts = cols / r.heads;
  if (r.experts <= 0 || cols % r.heads != 0 || cols / r.heads != r.experts)
    return failure();
  // ids = Add(local, offsets), offsets [1, H, 1] (or [H, 1]) = h * E.
  onnxir::NodeOp add = producer(ids, "Add");
  if (!add)
    return failure();
  for (int i = 0; i < 2; ++i) {
    if (add.getInputs()[i] != topk.getResult(1))
      continue;
    DenseElementsAttr off = constantOf(add.getInputs()[1 - i]);
    std::optional<SmallVector<int64_t>> o = intsOf(add.getInputs()[1 - i]);
    if (!off || !o || (int64_t)o->size() != r.heads)
      continue;
    ArrayRef<int64_t> shape = off.getType().getShape();
    bool aligned = shape.size() >= 2 && shape.size() <= 3 &&
                   shape[shape.size() - 1] == 1 &&
                   shape[shape.size() - 2] == r.heads &&
                   (shape.size() == 2 || shape[0] == 1);
    bool values = true;
    for (int64_t h = 0; h < r.heads; ++h)
      values &= (*o)[h] == h * r.experts;
    if (aligned && values) {
      miss.why.clear();
      return r;
    }
  }
  return failure();
}

/// RoPE as the reference writes it on x [B, T, H, dk]:
///   Concat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, rest], -1)
/// with x1, x2, rest = x[..., :r/2], x[..., r/2:r], x[..., r:], cos/sin of
/// angle = Unsqueeze(positions, 1) * inv_freq [r/2], positions = Range(0,
/// T, 1) of a sequence extent, broadcast as [1, T, 1, r/2].
struct Rope {
  Value input;
  int64_t width = 0;
  std::optional<int64_t> restEnd; // the end of x[..., r:], if sliced
  double base = 10000.0;
};

/// Slice(x, [start], [end], [-1 or 3], [1]): x, start, end.
std::optional<std::tuple<Value, int64_t, int64_t>> lastAxisSlice(Value v) {
  onnxir::NodeOp s = producer(v, "Slice");
  if (!s || s.getInputs().size() < 4)
    return std::nullopt;
  std::optional<SmallVector<int64_t>> st = intsOf(s.getInputs()[1]),
                                      en = intsOf(s.getInputs()[2]),
                                      ax = intsOf(s.getInputs()[3]);
  if (!st || !en || !ax || st->size() != 1 || en->size() != 1 ||
      ax->size() != 1 || ((*ax)[0] != -1 && (*ax)[0] != 3))
    return std::nullopt;
  if (s.getInputs().size() > 4 && !isa<NoneType>(s.getInputs()[4].getType()) &&
      !isInts(s.getInputs()[4], {1}))
    return std::nullopt;
  return std::make_tuple(s.getInputs()[0], (*st)[0], (*en)[0]);
}

/// The table operand of `Mul(slice, table)` (either order) and the slice.
std::optional<std::pair<Value, Value>> sliceTimesTable(Value v) {
  onnxir::NodeOp m = producer(v, "Mul");
  if (!m || m.getInputs().size() != 2)
    return std::nullopt;
  for (int i = 0; i < 2; ++i)
    if (producer(m.getInputs()[i], "Slice"))
      return std::make_pair(m.getInputs()[i], m.getInputs()[1 - i]);
  return std::nullopt;
}

/// `table` = Unsqueeze*(fn(angle)) laid out [1, T, 1, F]: the angle.
Value tableAngle(Value table, StringRef fn) {
  SmallVector<onnxir::NodeOp> chain;
  Value v = table;
  while (onnxir::NodeOp u = producer(v, "Unsqueeze")) {
    chain.push_back(u);
    v = u.getInputs()[0];
  }
  onnxir::NodeOp f = producer(v, fn);
  if (!f)
    return {};
  // The angle is [T, F]; apply the Unsqueezes from the inside out.
  SmallVector<char> dims = {'T', 'F'};
  for (onnxir::NodeOp u : llvm::reverse(chain)) {
    std::optional<SmallVector<int64_t>> axes =
        u.getInputs().size() == 2 ? intsOf(u.getInputs()[1]) : std::nullopt;
    if (!axes)
      return {};
    int64_t rank = dims.size() + axes->size();
    SmallVector<int64_t> norm;
    for (int64_t a : *axes)
      norm.push_back(a < 0 ? a + rank : a);
    llvm::sort(norm);
    for (int64_t a : norm) {
      if (a < 0 || a > (int64_t)dims.size())
        return {};
      dims.insert(dims.begin() + a, '1');
    }
  }
  while (dims.size() < 4)
    dims.insert(dims.begin(), '1');
  if (StringRef(dims.data(), dims.size()) != "1T1F")
    return {};
  return f.getInputs()[0];
}

FailureOr<Rope> matchRope(Value v, const Extents &ext, Miss &miss) {
  Rope rope;
  onnxir::NodeOp cat = producer(v, "Concat");
  if (!cat) {
    rope.input = v; // no rotation
    return rope;
  }
  miss.why = "the rotation is not RoPE as Concat([x1 * cos - x2 * sin, x2 * "
             "cos + x1 * sin, rest], -1) of the rotate-half pairs";
  int64_t axis = intAttrOf(cat, "axis").value_or(0);
  if ((axis != -1 && axis != 3) || cat.getInputs().size() < 2 ||
      cat.getInputs().size() > 3)
    return failure();
  onnxir::NodeOp sub = producer(cat.getInputs()[0], "Sub");
  onnxir::NodeOp add = producer(cat.getInputs()[1], "Add");
  if (!sub || !add)
    return failure();
  auto a = sliceTimesTable(sub.getInputs()[0]);
  auto b = sliceTimesTable(sub.getInputs()[1]);
  auto c = sliceTimesTable(add.getInputs()[0]);
  auto d = sliceTimesTable(add.getInputs()[1]);
  if (!a || !b || !c || !d)
    return failure();
  // a = x1 * cos, b = x2 * sin; c, d = x2 * cos, x1 * sin in either order.
  if (c->first != b->first)
    std::swap(c, d);
  if (a->second != c->second || b->second != d->second ||
      a->first != d->first || b->first != c->first)
    return failure();
  auto x1 = lastAxisSlice(a->first), x2 = lastAxisSlice(b->first);
  if (!x1 || !x2)
    return failure();
  Value x = std::get<0>(*x1);
  int64_t half = std::get<2>(*x1);
  // (half is a slice end: bounded before it is doubled.)
  if (half < 1 || half > (int64_t(1) << 24) || std::get<0>(*x2) != x ||
      std::get<1>(*x1) != 0 || std::get<1>(*x2) != half ||
      std::get<2>(*x2) != 2 * half)
    return failure();
  rope.input = x;
  rope.width = 2 * half;
  if (cat.getInputs().size() == 3) {
    auto rest = lastAxisSlice(cat.getInputs()[2]);
    if (!rest || std::get<0>(*rest) != x || std::get<1>(*rest) != 2 * half)
      return failure();
    rope.restEnd = std::get<2>(*rest); // checked against dk by the caller
  }
  Value angle = tableAngle(a->second, "Cos");
  if (!angle || tableAngle(b->second, "Sin") != angle) {
    miss.why = "the RoPE tables are not cos and sin of one angle laid out "
               "[1, T, 1, r/2]";
    return failure();
  }
  SmallVector<double> freqs; // the observed inv_freq, when observable
  if (std::optional<SmallVector<double>> table = floatsOf(angle)) {
    // A static export folds the angle into a constant [T, r/2]: row t is
    // t * inv_freq.
    DenseElementsAttr attr = constantOf(angle);
    ArrayRef<int64_t> shape = attr.getType().getShape();
    if (shape.size() != 2 || shape[1] != half ||
        !ext.isSeq(ShapePiece{Value(), shape[0]})) {
      miss.why = "the RoPE angle is a constant that is not [T, r/2]";
      return failure();
    }
    if (shape[0] >= 2)
      freqs.assign(table->begin() + half, table->begin() + 2 * half);
    for (int64_t t = 0; t < shape[0]; ++t)
      for (int64_t i = 0; i < half; ++i) {
        double want = t * (freqs.empty() ? 0.0 : freqs[i]);
        if (!(std::abs((*table)[t * half + i] - want) <= 1e-6 * (1 + want))) {
          miss.why = "the RoPE angle's rows are not multiples of one row of "
                     "frequencies";
          return failure();
        }
      }
  } else {
    // angle = Unsqueeze(positions, 1) * inv_freq.
    onnxir::NodeOp mul = producer(angle, "Mul");
    std::optional<SmallVector<double>> inv;
    DenseElementsAttr invAttr;
    Value pos;
    for (int i = 0; mul && i < 2 && !inv; ++i)
      if ((inv = floatsOf(mul.getInputs()[1 - i]))) {
        pos = mul.getInputs()[i];
        invAttr = constantOf(mul.getInputs()[1 - i]);
      }
    Value range = pos ? unsqueezed(pos, 1) : Value();
    if (!range && pos)
      range = unsqueezed(pos, -1);
    onnxir::NodeOp rg =
        range ? producer(skipCasts(range), "Range") : onnxir::NodeOp();
    std::optional<double> limit =
        rg ? scalarOf(skipCasts(rg.getInputs()[1])) : std::nullopt;
    bool seq = rg && (ext.isSeq(skipCasts(rg.getInputs()[1])) ||
                      (limit && *limit >= 0 && *limit <= 0x1p53 &&
                       *limit == std::floor(*limit) &&
                       ext.isSeq(ShapePiece{Value(), (int64_t)*limit})));
    // inv_freq [r/2] (or [1, r/2]): Unsqueeze(positions, 1) * inv_freq
    // is then [T, r/2].
    ArrayRef<int64_t> invShape =
        invAttr ? invAttr.getType().getShape() : ArrayRef<int64_t>();
    bool invLaidOut =
        (invShape.size() == 1 && invShape[0] == half) ||
        (invShape.size() == 2 && invShape[0] == 1 && invShape[1] == half);
    if (!inv || (int64_t)inv->size() != half || !invLaidOut || !rg ||
        scalarOf(rg.getInputs()[0]) != 0.0 ||
        scalarOf(rg.getInputs()[2]) != 1.0 || !seq) {
      miss.why = "the RoPE angle is not Range(0, T, 1) of the sequence "
                 "times a constant of r/2 frequencies";
      return failure();
    }
    freqs = *inv;
  }
  // inv_freq[i] = base^(-2i / r): the base from inv_freq[1] (with one pair,
  // or at position 0 alone, any base gives the same angles).
  double r = rope.width;
  if (half >= 2 && !freqs.empty() && freqs[1] > 0 && freqs[1] < 1) {
    rope.base = std::pow(freqs[1], -r / 2);
    double rounded = std::round(rope.base);
    if (std::abs(rounded - rope.base) <= 1e-4 * rope.base)
      rope.base = rounded;
  }
  for (int64_t i = 0; i < (int64_t)freqs.size(); ++i) {
    double want = std::pow(rope.base, -2.0 * i / r);
    if (!(std::abs(freqs[i] - want) <= 1e-5 * want)) {
      miss.why = "the RoPE frequencies are not base^(-2i/r) for one base";
      return failure();
    }
  }
  miss.why.clear();
  return rope;
}

/// The rotated width of the op's definition: floor(dk * f) rounded down to
/// an even number.
int64_t ropeWidth(int64_t dk, double f) {
  return (int64_t)std::floor(dk * f) / 2 * 2;
}

/// The causal mask's condition on the scores: `masked` true where -inf
/// goes. Accepts Not(tril) for Where(masked, -inf, s), tril for Where(tril,
/// s, -inf); tril = Trilu(ConstantOfShape([T, S], 1), S - T or 0), lower.
bool isCausalTril(Value tril, const Extents &ext) {
  onnxir::NodeOp t = producer(skipCasts(tril), "Trilu");
  if (!t || intAttrOf(t, "upper").value_or(1) != 0)
    return false;
  if (t.getInputs().size() > 1 && !isa<NoneType>(t.getInputs()[1].getType())) {
    Value kIn = t.getInputs()[1];
    std::optional<SmallVector<int64_t>> kc = intsOf(kIn);
    onnxir::NodeOp sub = producer(kIn, "Sub");
    // S - T of two sequence extents (the raised op has S = T: 0).
    bool ok =
        (kc && kc->size() == 1 && (*kc)[0] == 0) ||
        (sub && ext.isSeq(sub.getInputs()[0]) && ext.isSeq(sub.getInputs()[1]));
    if (!ok)
      return false;
  }
  onnxir::NodeOp ones = producer(t.getInputs()[0], "ConstantOfShape");
  DenseElementsAttr value;
  Value onesShape;
  if (ones) {
    value = dyn_cast_or_null<DenseElementsAttr>(
        ones.getNodeAttributes().get("value"));
    onesShape = ones.getInputs()[0];
  } else if (onnxir::NodeOp e = producer(t.getInputs()[0], "Expand")) {
    // torch.ones as the dynamo exporter writes it: Expand(1, shape).
    value = constantOf(e.getInputs()[0]);
    if (value && value.getNumElements() != 1)
      value = nullptr;
    onesShape = e.getInputs()[1];
  } else {
    // A static export's ones([T, T]).
    DenseElementsAttr c = constantOf(t.getInputs()[0]);
    if (!c || c.getType().getRank() != 2 || !c.isSplat() ||
        c.getType().getDimSize(0) != c.getType().getDimSize(1) ||
        !ext.isSeq(ShapePiece{Value(), c.getType().getDimSize(0)}))
      return false;
    return isa<FloatType>(c.getElementType())
               ? c.getSplatValue<APFloat>().convertToDouble() == 1.0
               : !c.getSplatValue<APInt>().isZero();
  }
  if (!value || !value.isSplat())
    return false;
  bool one = isa<FloatType>(value.getElementType())
                 ? value.getSplatValue<APFloat>().convertToDouble() == 1.0
                 : !value.getSplatValue<APInt>().isZero();
  std::optional<SmallVector<ShapePiece>> p = shapePieces(onesShape);
  return one && p && p->size() == 2 && ext.isSeq((*p)[0]) && ext.isSeq((*p)[1]);
}

} // namespace

/// Form (e), ending at `out` = Einsum("nhk,nhkd->nd", gate_o, y).
FailureOr<SwitchHeadBlock> raise::matchSwitchHead(Value out, Miss &miss) {
  onnxir::NodeOp combine, down;
  auto eq = einsumOf(out, combine);
  if (!eq || !matchEquation(*eq, "nhk", "nhkd", "nd"))
    return failure();
  SwitchHeadBlock blk;
  auto downEq = einsumOf(combine.getInputs()[1], down);
  onnxir::NodeOp woGather =
      down ? producer(down.getInputs()[1], "Gather") : onnxir::NodeOp();
  if (!downEq || !matchEquation(*downEq, "nhv", "nhkvd", "nhkd") || !woGather ||
      intAttrOf(woGather, "axis").value_or(0) != 0) {
    miss.why = "the heads' outputs are not Einsum(\"nhv,nhkvd->nhkd\") of "
               "a gathered output weight";
    return failure();
  }
  DenseElementsAttr wo = constantOf(woGather.getInputs()[0]);
  FailureOr<HeadRouting> ro =
      matchHeadRouting(combine.getInputs()[0], woGather.getInputs()[1], miss);
  if (failed(ro))
    return failure();
  if (!wo || wo.getType().getRank() != 3) {
    miss.why = "the output weight is not a constant [H * E, dv, D]";
    return failure();
  }
  blk.wo = woGather.getInputs()[0];
  blk.heads = ro->heads;
  blk.experts = ro->experts;
  blk.k = ro->k;
  blk.selO = ro->sel;
  blk.dv = wo.getType().getDimSize(1);
  Value qs = ro->flat;
  onnxir::NodeOp qFlat = flattenOf(qs);
  if (!qFlat) {
    miss.why = "the output router does not read the query rows flattened "
               "from [B, T, D]";
    return failure();
  }
  blk.qFlatten = qFlat;
  blk.qSrc = qFlat.getInputs()[0];

  // r = Reshape(Transpose(MatMul(Softmax(scores), v), [0, 2, 1, 3]),
  //             [n, H, dv]).
  miss.why = "the attention is not Softmax(masked scaled Q K^T) V in [B, H, "
             "T, d] with the heads' rows reshaped to [n, H, dv]";
  onnxir::NodeOp rRs = reshapeOf(down.getInputs()[0]);
  std::optional<SmallVector<ShapePiece>> rShape =
      rRs ? shapePieces(rRs.getInputs()[1]) : std::nullopt;
  if (!rShape || rShape->size() != 3 || (*rShape)[1].constant != blk.heads ||
      ((*rShape)[2].constant != blk.dv && (*rShape)[2].constant != -1))
    return failure();
  SmallVector<int64_t> perm;
  Value av = throughTransposes(rRs.getInputs()[0], perm);
  onnxir::NodeOp pv = producer(av, "MatMul");
  if (!pv || !isPerm(perm, {0, 2, 1, 3}))
    return failure();
  // Softmax on the last axis: explicit, or the default of opsets >= 13
  // (before, the default axis was 1, over a flattened tail).
  onnxir::NodeOp sm = producer(pv.getInputs()[0], "Softmax");
  std::optional<int64_t> smAxis = sm ? intAttrOf(sm, "axis") : std::nullopt;
  if (!sm ||
      !(smAxis ? (*smAxis == -1 || *smAxis == 3) : sm.getVersion() >= 13))
    return failure();
  Value scores = sm.getInputs()[0];
  Value maskTril;
  if (onnxir::NodeOp w = producer(scores, "Where")) {
    std::optional<double> neg2 = scalarOf(w.getInputs()[2]);
    std::optional<double> neg1 = scalarOf(w.getInputs()[1]);
    if (neg1 && *neg1 <= -1e30) {
      onnxir::NodeOp n = producer(skipCasts(w.getInputs()[0]), "Not");
      if (!n)
        return failure();
      maskTril = n.getInputs()[0];
      scores = w.getInputs()[2];
    } else if (neg2 && *neg2 <= -1e30) {
      maskTril = w.getInputs()[0];
      scores = w.getInputs()[1];
    } else {
      return failure();
    }
    blk.causal = true;
  }
  // Scaled: Div(qk, sqrt(dk)) or Mul(qk, 1/sqrt(dk)).
  Value qk;
  double scale = 0.0;
  if (onnxir::NodeOp div = producer(scores, "Div")) {
    std::optional<double> c = scalarOf(div.getInputs()[1]);
    if (c && *c > 0) {
      qk = div.getInputs()[0];
      scale = 1.0 / *c;
    }
  } else if (onnxir::NodeOp mul = producer(scores, "Mul")) {
    for (int i = 0; i < 2 && !qk; ++i)
      if (std::optional<double> c = scalarOf(mul.getInputs()[1 - i])) {
        qk = mul.getInputs()[i];
        scale = *c;
      }
  }
  onnxir::NodeOp qkMm = qk ? producer(qk, "MatMul") : onnxir::NodeOp();
  if (!qkMm)
    return failure();
  SmallVector<int64_t> qPerm, kPerm, vPerm;
  Value q = throughTransposes(qkMm.getInputs()[0], qPerm);
  Value key = throughTransposes(qkMm.getInputs()[1], kPerm);
  Value v4 = throughTransposes(pv.getInputs()[1], vPerm);
  if (!q || !key || !v4 || !isPerm(qPerm, {0, 2, 1, 3}) ||
      !isPerm(kPerm, {0, 2, 3, 1}) || !isPerm(vPerm, {0, 2, 1, 3}))
    return failure();

  // The values: Reshape(v_flat [n, H, dv], [B, T, H, dv]).
  onnxir::NodeOp vRs = reshapeOf(v4);
  if (!vRs) {
    miss.why = "the values are not the heads' rows reshaped to [B, T, H, dv]";
    return failure();
  }
  Value vFlat = vRs.getInputs()[0];
  onnxir::NodeOp vComb, vUp;
  auto vEq = einsumOf(vFlat, vComb);
  Value vs, vRouterRows;
  if (vEq && matchEquation(*vEq, "nhk", "nhkv", "nhv")) {
    auto upEq = einsumOf(vComb.getInputs()[1], vUp);
    onnxir::NodeOp wvGather =
        vUp ? producer(vUp.getInputs()[1], "Gather") : onnxir::NodeOp();
    if (!upEq || !matchEquation(*upEq, "nd", "nhkdv", "nhkv") || !wvGather ||
        intAttrOf(wvGather, "axis").value_or(0) != 0) {
      miss.why = "the values are not Einsum(\"nd,nhkdv->nhkv\") of a "
                 "gathered value weight";
      return failure();
    }
    FailureOr<HeadRouting> rv =
        matchHeadRouting(vComb.getInputs()[0], wvGather.getInputs()[1], miss);
    if (failed(rv))
      return failure();
    if (rv->heads != blk.heads || rv->experts != blk.experts ||
        rv->k != blk.k) {
      miss.why = "the value and output routers differ in H, E or K";
      return failure();
    }
    blk.selV = rv->sel;
    blk.wv = wvGather.getInputs()[0];
    vs = vUp.getInputs()[0];
    vRouterRows = rv->flat; // the keys' rows: checked below
  } else if (vEq && matchEquation(*vEq, "nd", "hdv", "nhv")) {
    // The gated variant (E = 1): dense values, no value router.
    blk.wv = vComb.getInputs()[1];
    vs = vComb.getInputs()[0];
  } else {
    miss.why = "the values are neither Einsum(\"nhk,nhkv->nhv\") of routed "
               "experts nor Einsum(\"nd,hdv->nhv\") of a dense weight";
    return failure();
  }
  onnxir::NodeOp vFlatten = flattenOf(vs);
  if (!vFlatten) {
    miss.why = "the value rows are not flattened from [B, T, D]";
    return failure();
  }
  blk.vSrc = vFlatten.getInputs()[0];

  // Queries and keys: RoPE(Reshape(MatMul(rows, W), [B, T, H, dk])).
  Extents ext;
  ext.setSource(blk.qSrc);
  auto matchProjection = [&](Value rotated, Value rowsWanted, Value &w,
                             Value &src, Rope &rope) -> LogicalResult {
    miss.why = "the queries and keys are not RoPE(Reshape(MatMul(rows, W), "
               "[B, T, H, dk])) with B and T read from the sources";
    // The sequence extent may also be read from the split itself.
    Value split = rotated;
    // (x1 * cos - x2 * sin: the x of x1.)
    if (onnxir::NodeOp cat = producer(rotated, "Concat"))
      if (onnxir::NodeOp sub = producer(cat.getInputs()[0], "Sub"))
        if (auto m = sliceTimesTable(sub.getInputs()[0]))
          if (auto s = lastAxisSlice(m->first))
            split = std::get<0>(*s);
    onnxir::NodeOp rs = reshapeOf(split);
    onnxir::NodeOp mm =
        rs ? producer(rs.getInputs()[0], "MatMul") : onnxir::NodeOp();
    onnxir::NodeOp flat = mm ? flattenOf(mm.getInputs()[0]) : onnxir::NodeOp();
    if (!flat || (rowsWanted && mm.getInputs()[0] != rowsWanted))
      return failure();
    src = flat.getInputs()[0];
    int64_t heads, width;
    DenseElementsAttr wc = constantOf(mm.getInputs()[1]);
    if (failed(matchSplit(rs, ext, heads, width)) || !wc ||
        wc.getType().getRank() != 2 || heads != blk.heads)
      return failure();
    // Its B and T are q_src's: so are its dims 0 and 1 (RoPE's positions).
    ext.add(split);
    int64_t cols = wc.getType().getDimSize(1);
    if (width == -1 && cols % heads == 0)
      width = cols / heads;
    if (width <= 0 || cols % heads != 0 || cols / heads != width)
      return failure();
    if (blk.dk && blk.dk != width)
      return failure();
    blk.dk = width;
    w = mm.getInputs()[1];
    FailureOr<Rope> r = matchRope(rotated, ext, miss);
    if (failed(r))
      return failure();
    if (r->input != split || r->width > width ||
        (r->width && (r->restEnd ? *r->restEnd < width : r->width != width))) {
      miss.why = "RoPE does not rotate the first r dims of the heads' split "
                 "and keep the others";
      return failure();
    }
    rope = *r;
    return success();
  };
  // The rotated queries and keys keep their splits' dims, and the values
  // are a split too: claimed here, each checked below (a split cannot read
  // its own shape).
  for (Value x : {q, key, v4})
    ext.add(x);
  Rope qRope, kRope;
  if (failed(matchProjection(q, qs, blk.wq, blk.qSrc, qRope)) ||
      failed(matchProjection(key, vRouterRows, blk.wk, blk.kSrc, kRope)))
    return failure();
  if (qRope.width != kRope.width || qRope.base != kRope.base ||
      qRope.width > blk.dk) {
    miss.why = "the queries and keys are rotated differently";
    return failure();
  }
  blk.rotated = qRope.width;
  blk.base = qRope.base;
  if (!(std::abs(scale * std::sqrt((double)blk.dk) - 1.0) <= 1e-6)) {
    miss.why = "the scores are not scaled by 1/sqrt(dk)";
    return failure();
  }
  if (blk.causal && !isCausalTril(maskTril, ext)) {
    miss.why = "the mask is not the causal Trilu(ones([T, S]), S - T) "
               "(or 0), lower, of the sequence lengths";
    return failure();
  }
  int64_t vHeads, vWidth;
  if (failed(matchSplit(vRs, ext, vHeads, vWidth)) || vHeads != blk.heads ||
      (vWidth != blk.dv && vWidth != -1)) {
    miss.why = "the values are not split to [B, T, H, dv] with B and T read "
               "from the sources";
    return failure();
  }
  // The rotated width as the op defines it from a fraction of dk.
  if (blk.rotated == 0) {
    blk.fraction = 0.0;
  } else {
    SmallVector<double> candidates = {0.5, 0.25, 1.0,
                                      (double)blk.rotated / blk.dk,
                                      (blk.rotated + 0.5) / blk.dk};
    blk.fraction = -1.0;
    for (double f : candidates) {
      f = (double)(float)f; // as the node attribute keeps it
      if (f >= 0.0 && f <= 1.0 && ropeWidth(blk.dk, f) == blk.rotated) {
        blk.fraction = f;
        break;
      }
    }
    if (blk.fraction < 0.0) {
      miss.why = "no rotate fraction gives the rotated width";
      return failure();
    }
  }
  // The weights agree in D, H, E, dk and dv.
  DenseElementsAttr wq = constantOf(blk.wq), wk = constantOf(blk.wk),
                    wv = constantOf(blk.wv);
  int64_t d = wq.getType().getDimSize(0), he = blk.heads * blk.experts;
  bool gated = !blk.selV;
  bool shapes =
      wv && wv.getType().getRank() == 3 && wk.getType().getDimSize(0) == d &&
      wv.getType().getDimSize(0) == (gated ? blk.heads : he) &&
      wv.getType().getDimSize(1) == d && wv.getType().getDimSize(2) == blk.dv &&
      wo.getType().getDimSize(0) == he && wo.getType().getDimSize(2) == d &&
      blk.selO.getType().getDimSize(0) == d &&
      (gated || blk.selV.getType().getDimSize(0) == d);
  Type elt = wq.getType().getElementType();
  bool types = shapes && wk.getType().getElementType() == elt &&
               wv.getType().getElementType() == elt &&
               wo.getType().getElementType() == elt &&
               blk.selO.getType().getElementType() == elt &&
               (gated || blk.selV.getType().getElementType() == elt);
  if (!types) {
    miss.why = "the weights disagree in D, H * E, dk, dv or element type";
    return failure();
  }
  // The sources are [B, T, D] as the op takes them: rank 3 and D where
  // known, and k_src and v_src of q_src's B and T where both are static
  // (dynamic ones are checked at run time by the op's lowering).
  auto qType = dyn_cast<RankedTensorType>(blk.qSrc.getType());
  for (Value src : {blk.qSrc, blk.kSrc, blk.vSrc}) {
    auto t = dyn_cast<RankedTensorType>(src.getType());
    if (!t)
      continue;
    bool ok = t.getRank() == 3 && (t.isDynamicDim(2) || t.getDimSize(2) == d);
    for (int64_t i = 0; ok && i < 2 && qType && qType.getRank() == 3; ++i)
      ok = t.isDynamicDim(i) || qType.isDynamicDim(i) ||
           t.getDimSize(i) == qType.getDimSize(i);
    if (!ok) {
      miss.why = "the sources are not [B, T, D] with the queries' B and T";
      return failure();
    }
  }
  if (blk.k < 1 || blk.k > blk.experts ||
      (gated && (blk.experts != 1 || blk.k != 1))) {
    miss.why =
        gated ? "dense values need E = 1 and K = 1" : "K is not in [1, E]";
    return failure();
  }
  miss.why.clear();
  return blk;
}

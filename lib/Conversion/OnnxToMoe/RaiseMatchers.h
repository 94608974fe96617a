//===- RaiseMatchers.h - what moe-raise-onnx's matchers share ---*- C++ -*-===//
//
// The ONNX-graph helpers of moe-raise-onnx, shared by RaiseMoe.cpp (the
// feed-forward forms (a)-(c) and the pass), RaiseSwitchHead.cpp
// (SwitchHead attention, form (e)) and RaiseMot.cpp (Mixture of Tokens,
// form (f)). They read `onnx.node` graphs before
// the conversion has checked any node, so each refuses what it does not
// recognise instead of assuming it.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_ONNXTOMOE_RAISEMATCHERS_H
#define MOE_LIB_CONVERSION_ONNXTOMOE_RAISEMATCHERS_H

#include "moe/Conversion/OnnxToMoe/OnnxToMoe.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Support/LLVM.h"

#include <array>
#include <memory>
#include <optional>
#include <string>

namespace mlir::moe::raise {

inline constexpr StringLiteral kMoeDomain = "org.moe_mlir";

/// The inputs every valid node of `opType` has (the matchers index them
/// without further checks; the raise runs before the conversion has
/// checked any node).
unsigned requiredInputs(StringRef opType);

/// The standard-domain node of `opType` defining `v`, if any (and if it has
/// the inputs its schema requires).
onnxir::NodeOp producer(Value v, StringRef opType);

/// A constant tensor: an initializer or a Constant node's value.
DenseElementsAttr constantOf(Value v);

/// The value of a one-element float constant of rank at most `maxRank`
/// (and of element type `type`, where given), if `v` is one.
std::optional<APFloat> oneElementFloat(Value v, int64_t maxRank,
                                       Type type = Type());

/// An integer attribute of `node`, if present.
std::optional<int64_t> intAttrOf(onnxir::NodeOp node, StringRef name);

/// An int attribute of `node`, `otherwise` when absent; none when present
/// with another type (the conversion refuses such a node: a rewrite must
/// not turn it into a valid one).
std::optional<int64_t> strictInt(onnxir::NodeOp node, StringRef name,
                                 int64_t otherwise);

/// An Einsum's equation as (lhs, rhs, out) subscripts; none for other forms
/// (ellipses, one operand, an implicit output).
std::optional<std::array<std::string, 3>> einsumOf(Value v,
                                                   onnxir::NodeOp &node);

/// Whether `eq` has the structure of lhs,rhs->out under one consistent
/// renaming of letters.
bool matchEquation(const std::array<std::string, 3> &eq, StringRef lhs,
                   StringRef rhs, StringRef out);

/// A failed match: the reason, for --raise=report.
struct Miss {
  std::string why;
};

/// `a` [D, E] transposed to [E, D].
DenseElementsAttr transpose2d(DenseElementsAttr a);

/// The integer constant(s) of `v`.
std::optional<SmallVector<int64_t>> intsOf(Value v);

/// Whether `v` is the integer constant `want`.
bool isInts(Value v, ArrayRef<int64_t> want);

/// `Unsqueeze(v, [axis])`'s v, or null.
Value unsqueezed(Value u, int64_t axis);

/// act(h): the activation and h.
FailureOr<std::pair<std::string, Value>> matchActivation(Value a);

/// Stacks E constant [A, B] matrices into one [E, A, B].
DenseElementsAttr stack(ArrayRef<DenseElementsAttr> parts);

/// `Gather(Shape(x), i)` (through Unsqueeze(., 0) and Casts): x's dim i.
/// (A Cast that changed the value would make the export's Reshape fail.)
bool isDimOf(Value v, Value x, int64_t i);

/// `v` is a one-element piece equal to x's dim i: read from its shape, or a
/// constant equal to its static size.
bool isDimPiece(Value v, Value x, int64_t i);

/// `shape` is x's own shape, piece by piece (a Reshape to it is the
/// identity).
bool isShapeOf(Value shape, Value x);

/// Symbolic sizes of the graph's tensors and small integer tensors
/// (RaisePrepare.cpp).
class SymbolicShapes;

/// What prepareForRaise did.
struct PreparedGraph {
  PreparedGraph();
  ~PreparedGraph();
  PreparedGraph(PreparedGraph &&);
  /// Each recovered Einsum with the value it replaced (still computed, now
  /// unused), so that the caller can revert those no matcher consumed.
  SmallVector<std::pair<onnxir::NodeOp, Value>> recovered;
  /// The sizes, for sameSize() (through a SizeFactsScope).
  std::unique_ptr<SymbolicShapes> shapes;
  /// Set it on the rewriter that erases ops afterwards: the sizes of an
  /// erased op's results are forgotten.
  RewriterBase::Listener *listener();
};

/// Rewrites what PyTorch's dynamo exporter writes into the forms the
/// matchers read (RaisePrepare.cpp): drops no-op nodes, reads
/// GatherND(w, Unsqueeze(i, -1)) as Gather(w, i), folds CastLike and
/// Transpose of constants, and recovers Einsum nodes from ATen's
/// Transpose/Reshape/MatMul lowering of einsum.
PreparedGraph prepareForRaise(ModuleOp module, RewriterBase &rewriter);

/// While alive, sameSize() on this thread reads `shapes`.
class SizeFactsScope {
public:
  explicit SizeFactsScope(const SymbolicShapes *shapes);
  ~SizeFactsScope();

private:
  const SymbolicShapes *saved;
};

/// Whether the one-element shape value `piece` equals dim `i` of `x` by the
/// graph's shape arithmetic (the dynamo exporter reads every size from the
/// graph input that defines it, not from the tensor at hand). False
/// outside a SizeFactsScope.
bool sameSize(Value piece, Value x, int64_t i);

/// Whether a's dim i and b's dim j are provably one size: static and
/// equal, or one symbolic size (in a SizeFactsScope; also for values of
/// unranked type whose shape the graph's shape arithmetic knows).
bool sameDim(Value a, int64_t i, Value b, int64_t j);

/// The rank of `v`: its type's, or, for a value of unranked type (what
/// ONNX shape inference left of a TorchScript export with dynamic axes),
/// the rank the graph's shape arithmetic gives it (in a SizeFactsScope);
/// -1 when unknown.
int64_t rankOf(Value v);

/// The element type of `v`: its ranked type's, or, for a value of
/// unranked type (whose stage-1 element type may be the importer's f32
/// placeholder), the one ONNX's rules give it from its producers (in a
/// SizeFactsScope); null when unknown.
Type elementTypeOf(Value v);

/// Dim `d` of `v` where it is a known constant: static in its type, or
/// constant by the graph's shape arithmetic (in a SizeFactsScope).
std::optional<int64_t> constantDim(Value v, int64_t d);

/// Entry `e` of the small integer tensor `v` where the graph's shape
/// arithmetic knows it as a constant (in a SizeFactsScope; a constant's
/// entry outside one).
std::optional<int64_t> knownEntry(Value v, int64_t e);

/// The number of entries of the small integer tensor `v` where known; -1
/// otherwise.
int64_t knownLength(Value v);

/// Whether entry `e` of the small integer tensor `v` equals dim `i` of
/// `x`: one symbolic size, or one constant.
bool entryIsDim(Value v, int64_t e, Value x, int64_t i);

/// Whether the Reshape `rs` returns its input as it is: a shape of the
/// input's rank whose entries are the input's sizes, 0 (copied, without
/// allowzero) or one -1.
bool isIdentityReshape(onnxir::NodeOp rs);

/// What the attention-core raise makes MaskedAttention of:
/// Softmax(MatMul(q, kT) [* scale] [+ mask], axis -1) @ v.
struct AttentionCore {
  Value q, kT, v, mask;
  /// The constant the scores are multiplied by (1 where none).
  double scale = 1.0;
  /// The probabilities pass through Where(IsNaN(p), 0, p) (torch's
  /// exported scaled_dot_product_attention).
  bool zeroNanProbs = false;
  /// gpt-oss's attention sinks, [H] f32: one more logit per head in each
  /// row's softmax, left out of P·V. Null where none.
  DenseElementsAttr sinks;
};

/// An exported attention core ending in the MatMul `pv` (RaiseAttention.cpp):
/// failure without a reason where `pv` is not one.
FailureOr<AttentionCore> matchAttentionCore(onnxir::NodeOp pv, Miss &miss);

/// Whether the shape value `shape` is x's shape, entry by entry, by the
/// same symbolic values. False outside a SizeFactsScope.
bool sameShape(Value shape, Value x);

/// What form (e) raises into.
struct SwitchHeadBlock {
  Value qSrc, kSrc, vSrc;
  onnxir::NodeOp qFlatten;
  Value wq, wk, wv, wo;         // constants as the graph holds them
  DenseElementsAttr selO, selV; // [D, H * E]; selV null when gated
  int64_t heads = 0, experts = 0, k = 0, dk = 0, dv = 0, rotated = 0;
  double fraction = 0.0, base = 10000.0;
  bool causal = false;
};

/// Form (e): the SwitchHead attention layer whose output combine is `out`
/// = Einsum("nhk,nhkd->nd", ...), or failure with `miss.why` set (empty
/// when `out` is not such a combine).
FailureOr<SwitchHeadBlock> matchSwitchHead(Value out, Miss &miss);

/// What form (f) raises into: MixtureOfTokens(x, w_ctrl, w1, w2).
struct MotBlock {
  Value x;                         // [B, T, D]
  onnxir::NodeOp reshape;          // x -> [B / g, g, T, D]
  Value groupShape;                // that reshape's shape
  DenseElementsAttr wCtrl, w1, w2; // [D, E], [E, D, s], [E, s, D]
  int64_t groupSize = 0;
  double temperature = 1.0;
  std::string activation;
};

/// Form (f): the continuous Mixture of Tokens layer whose sum over experts
/// is `out` = ReduceSum(Concat(Unsqueeze(y_e, 0) ...), [0]), or failure
/// with `miss.why` set (empty when `out` is not such a sum).
FailureOr<MotBlock> matchMot(Value out, Miss &miss);

} // namespace mlir::moe::raise

#endif // MOE_LIB_CONVERSION_ONNXTOMOE_RAISEMATCHERS_H

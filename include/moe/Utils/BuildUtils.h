//===- BuildUtils.h - IR-building helpers for moe rewrites ------*- C++ -*-===//
//
// Small helpers for building IR in rewrites: sizes as OpFoldResult
// (static where known, `tensor.dim` otherwise), destination tensors,
// einsum-style contractions as linalg.generic, activations and reshapes.
// Shared by the decomposition patterns and the ONNX conversions.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_UTILS_BUILDUTILS_H
#define MOE_UTILS_BUILDUTILS_H

#include "moe/IR/MoeOps.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Utils/ReshapeOpsUtils.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::moe::build {

/// Size `dim` of tensor `v`: an attribute when static, a `tensor.dim` value
/// otherwise.
OpFoldResult sizeOf(OpBuilder &b, Location loc, Value v, int64_t dim);

/// `a + c`, folded when both sides are static.
OpFoldResult addSizes(OpBuilder &b, Location loc, OpFoldResult a,
                      OpFoldResult c);

/// `a * c` and `a / c` (exact), folded when both sides are static.
OpFoldResult mulSizes(OpBuilder &b, Location loc, OpFoldResult a,
                      OpFoldResult c);
OpFoldResult divSizes(OpBuilder &b, Location loc, OpFoldResult a,
                      OpFoldResult c);

/// `a * c` for result types only: static when `a` is, dynamic otherwise; no
/// IR is created.
int64_t staticMul(OpFoldResult a, int64_t c);

/// Ranked tensor type with the given sizes (dynamic where not constant).
RankedTensorType tensorTypeOf(ArrayRef<OpFoldResult> sizes, Type elementType);

/// `tensor.empty` of the given sizes.
Value emptyTensor(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> sizes,
                  Type elementType);

/// A tensor of the given sizes filled with `value` (float element type).
Value filledTensor(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> sizes,
                   Type elementType, double value);

/// Einsum-style contraction `out[outMap] += lhs[lhsMap] * rhs[rhsMap]` as a
/// linalg.generic over a zero-initialised `out` of `outSizes`. `spec` names
/// the loops in the order of the maps' dims, e.g. "nd,ed->ne" with every
/// letter absent from the output being a reduction.
Value contract(OpBuilder &b, Location loc, StringRef spec, Value lhs,
               Value rhs, ArrayRef<OpFoldResult> outSizes);

/// `contract` accumulating into `init` (the output's initial values)
/// instead of a zero-filled tensor.
Value contractInto(OpBuilder &b, Location loc, StringRef spec, Value lhs,
                   Value rhs, Value init);

/// Routing scores `x @ sel^T` ("nd,ed->ne") of a selector `sel` [E, D].
/// Where `sel` is a 2-d `linalg.transpose` of a [D, E] value (the layout
/// moe-fold-constant-layouts stores constant selectors in), the scores
/// read that value directly ("nd,de->ne"): same products, same order of
/// the sums over d, contiguous rows for the register tiles.
Value selectorScores(OpBuilder &b, Location loc, Value x, Value sel,
                     ArrayRef<OpFoldResult> outSizes);

/// Whether `op` is a contraction that contractOverPanels can rebuild: on
/// tensors, two inputs and one init, its right-hand side a static [K, N]
/// matrix read as (k, n), with k a reduction loop and n a parallel one, the
/// init's last dim (statically N) and in no other operand.
bool isContractionOverColumns(linalg::GenericOp op);

/// Whether contractOverPanels(b, op, panels) succeeds for panels of type
/// `panelType`: `op` isContractionOverColumns, the panels [Nb, K, P] of its
/// element type and K hold N columns ((Nb - 1) * P < N <= Nb * P), and the
/// init is a linalg.fill where they are padded.
bool canContractOverPanels(linalg::GenericOp op, RankedTensorType panelType);

/// `op` (isContractionOverColumns) rebuilt to read its right-hand side
/// [K, N] from column panels (moe-pack-expert-weights): `panels` [Nb, K, P]
/// holds column n at panels[n / P, k, n % P], the last panel zero-padded
/// where P does not divide N ((Nb - 1) * P < N <= Nb * P). The columns
/// become loops (p, j) over an expanded init, collapsed back after. Where
/// the panels are padded, the init must be a linalg.fill: the contraction
/// then runs over a fill of the same value [..., Nb * P] and the result is
/// its first N columns (an extract_slice; no slice of a destination, whose
/// in-place analysis is slow in one-shot bufferization). Same products and
/// the same order of the sums over k for every output element. Replaces
/// `op` and returns the new result, or fails without changing anything
/// where the shapes do not fit.
FailureOr<Value> contractOverPanels(RewriterBase &b, linalg::GenericOp op,
                                    Value panels);

/// `act` of one scalar (inside a linalg body).
Value activateScalar(OpBuilder &b, Location loc, Value x, Activation act);

/// The clamped SwiGLU of one gate and one linear scalar (ONNX Runtime
/// MoE's "swiglu", GPT-OSS's experts): g = min(gate, limit),
/// u = clamp(lin, -limit, limit), g * sigmoid(alpha * g) * (u + beta); no
/// clamps where `limit` is +inf.
Value swigluScalar(OpBuilder &b, Location loc, Value gate, Value lin,
                   double alpha, double beta, double limit);

/// Applies `act` elementwise (identity returns `x`).
Value activate(OpBuilder &b, Location loc, Value x, Activation act);

/// `tensor.collapse_shape` with the result type inferred.
Value collapse(OpBuilder &b, Location loc, Value v,
               ArrayRef<ReassociationIndices> reassociation);

/// `tensor.expand_shape` to `sizes`.
Value expand(OpBuilder &b, Location loc, Value v,
             ArrayRef<ReassociationIndices> reassociation,
             ArrayRef<OpFoldResult> sizes);

/// `linalg.transpose` of `v` by `perm` (result dim i is input dim perm[i]).
Value transpose(OpBuilder &b, Location loc, Value v, ArrayRef<int64_t> perm);

/// The `k` largest (or smallest) elements of `x` along `axis`, sorted, ties to
/// the lower index: (values of x's type, int64 indices), both with dim
/// `axis` of size k. K passes of a masked arg-max in an scf.for. `x` must have
/// a float or signless integer element type.
std::pair<Value, Value> topK(OpBuilder &b, Location loc, Value x, int64_t k,
                             int64_t axis, bool largest);
/// The same with a k known only at run time (a dynamic result dim); the
/// caller guarantees 0 <= k <= the axis size.
std::pair<Value, Value> topK(OpBuilder &b, Location loc, Value x,
                             OpFoldResult k, int64_t axis, bool largest);

/// Work done on a row inside topK's loop over rows (routing in one loop:
/// convert-moe-to-linalg{fuse-routing}). Each hook gets the row's buffer
/// `row` ([1, k + W]: the k selected values at columns [0, k), the ranked
/// copy of the row at [k, k + W)) and returns it rewritten.
struct TopKRowHooks {
  /// Writes row `r` of `rows` ([R, W]), ranked (a gate applied, say), into
  /// columns [k, k + W). Without it the rows are copied in before the loop,
  /// as they are.
  function_ref<Value(OpBuilder &, Location, Value rows, Value r, Value row)>
      fill;
  /// Rewrites the k selected values at columns [0, k), after the selection.
  function_ref<Value(OpBuilder &, Location, Value row)> finish;
};

/// topK of the largest `k` along the last axis of a float tensor `x` (rank
/// 2 or more), with `hooks` run on each row: same selection, ties and NaNs
/// as topK on the filled rows.
std::pair<Value, Value> topKLargestWithHooks(OpBuilder &b, Location loc,
                                             Value x, int64_t k,
                                             const TopKRowHooks &hooks);

/// `index` when 0 <= index < bound; otherwise calls the runtime's
/// `moe_report_error(code)` and yields 0 (in-bounds). Works inside linalg
/// bodies and loops (scf.if); call declareErrorHook first.
Value checkedIndex(OpBuilder &b, Location loc, Value index, Value bound,
                   int32_t code);

/// Calls `moe_report_error(code)` when the i1 `bad` holds (scf.if); call
/// declareErrorHook first.
void reportIf(OpBuilder &b, Location loc, Value bad, int32_t code);

/// Run-time shape checks (docs/security.md). The compiled code relies on
/// dynamic sizes agreeing; where they do not, it reports `code` and goes on
/// with a zero-filled tensor of the expected shape, so that no later access
/// leaves its buffer (the runtime turns the report into an error status).
///
/// `v` with dim `d` of size `size`: `v` itself when dim(v, d) == size at run
/// time, else a report and zeros. The result type is static in `d` when
/// `size` is constant.
Value requireSize(OpBuilder &b, Location loc, Value v, int64_t d,
                  OpFoldResult size, int32_t code);

/// `v` itself when dim(v, d) is `size` or 1 at run time (a broadcast that
/// its reader resolves by index, with no copy), else a report of `code`
/// and zeros of `v`'s type.
Value requireSizeOrOne(OpBuilder &b, Location loc, Value v, int64_t d,
                       OpFoldResult size, int32_t code);

/// `v` broadcast in dim `d` to `size` (numpy/ONNX rules, decided at run
/// time): `v` when dim(v, d) == size, a copy repeating its only slice when
/// dim(v, d) == 1, else a report of `code` and zeros.
Value broadcastDim(OpBuilder &b, Location loc, Value v, int64_t d,
                   OpFoldResult size, int32_t code);

/// `v` as `type` (cast-compatible): a plain tensor.cast when no dim becomes
/// static, else checked at run time as requireSize does.
Value checkedCast(OpBuilder &b, Location loc, Value v, Type type,
                  int32_t code);

/// The first name in `loc` (a NameLoc's: the ONNX node, from the importer),
/// or "" when it has none.
StringRef locationName(Location loc);

/// `loc` named for one part of the op it comes from: a NameLoc
/// "<name>.<part>" around `loc`, <name> the first name in `loc` (the ONNX
/// node, from the importer); `loc` itself when it has no name. The loops
/// built at it carry the part's name into the code, where moe-run
/// --profile shows it (moe-parallel-loops-to-host names each body after
/// the first name in its loop's location).
Location partLoc(Location loc, StringRef part);

/// Declares `func.func private @moe_report_error(i32)` in the module of
/// `anchor` if it is not there yet.
void declareErrorHook(OpBuilder &b, Operation *anchor);

/// Result type of a `moe.route`-like op: `[rows, cols]` of `elementType`.
RankedTensorType matrixType(OpFoldResult rows, int64_t cols, Type elementType);

} // namespace mlir::moe::build

#endif // MOE_UTILS_BUILDUTILS_H

namespace mlir {
class RewritePatternSet;
namespace moe::build {
/// Body of every thin decomposition pass: one walk applying the patterns
/// added by `populate` to `root`.
void applyDecomposition(Operation *root,
                        void (*populate)(RewritePatternSet &));
} // namespace moe::build
} // namespace mlir

//===- MoeToLinalg.h - moe primitives -> linalg, scf, tensor ----*- C++ -*-===//
//
// The reference lowering of the primitive moe ops: correct for every
// verifier-valid input (static or dynamic shapes), written for clarity, not
// speed. Routing uses K passes of a masked arg-max, dispatch is a sequential
// counting sort (scf.for), the grouped matmul multiplies each expert's
// gathered segment with linalg.matmul. Composite ops must be decomposed first
// (moe-decompose).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_MOETOLINALG_MOETOLINALG_H
#define MOE_CONVERSION_MOETOLINALG_MOETOLINALG_H

#include <cstdint>

namespace mlir {
class RewritePatternSet;
namespace moe {

/// One pattern per primitive moe op.
void populateMoeToLinalgPatterns(RewritePatternSet &patterns);

/// moe.route in one loop over its rows: each row's gate (the softmax over
/// the scores), top-k selection and gate on the selected values (sigmoid,
/// softmax over the k) while the row is in cache, instead of one pass over
/// all rows per step. Same bits as the set above. Benefit 2: added to that
/// set, it takes every moe.route with a float score type.
void populateMoeFusedRoutingPatterns(RewritePatternSet &patterns);

/// A down projection `moe.grouped_matmul` with `sorted_input` and no
/// `sorted_result`, and the up projection in its block (`sorted_result`,
/// same offsets and perm, statically shaped weights without a zero-sized
/// dim) whose result only it reads, lowered together: one loop over
/// experts, each iteration the up projection's rows of its expert and
/// then the down projection of those rows while they are in cache. Apply
/// it before the set above (which would lower the up projection alone):
/// it erases the up projection, an op other than its root, so it needs a
/// driver that allows that. convert-moe-to-linalg applies it with
/// applyOpPatternsGreedily to the pairs' down projections only (on the
/// whole op, the greedy driver would also erase dead ops, a leftover
/// composite op included, that the pass must report).
void populateMoeExpertPairPatterns(RewritePatternSet &patterns);

/// Contractions on tensors whose right-hand side is the [K, N] matrix of a
/// one-expert moe.unpack_panels (a tensor.collapse_shape of [1, K, Nb * P],
/// sliced to N columns where the last panel is padded: the dense weights
/// moe-pack-expert-weights lays out) read the panels where they are
/// (build::contractOverPanels). Apply it before the set below, which
/// would otherwise copy those weights back to rows.
void populateMoeContractOverPanelsPatterns(RewritePatternSet &patterns);

/// moe.unpack_panels as a copy into the row-major [E, K, N] (and erased
/// where nothing uses it). Apply it after the set above, whose grouped
/// matmul reads a weight in panels where it is: only the layouts something
/// else reads are then copied.
void populateMoeWeightLayoutToLinalgPatterns(RewritePatternSet &patterns);

/// moe.attention without a cache (or with an empty one) flash-style: an
/// online softmax over blocks of `keyBlock` (> 0) keys per block of query
/// rows, no [rows, S] scores. Benefit 2: added to the set above, it takes
/// those attention ops ahead of the reference's form. With
/// `skipMaskedBlocks`, a key block that an additive mask leaves out whole
/// (at most -1e30 throughout) is not computed once every row of the query
/// block has seen a key (same bits; see maskedBlockSkippable).
void populateMoeFlashAttentionPatterns(RewritePatternSet &patterns,
                                       int64_t keyBlock,
                                       bool skipMaskedBlocks = true);

} // namespace moe
} // namespace mlir

#endif // MOE_CONVERSION_MOETOLINALG_MOETOLINALG_H

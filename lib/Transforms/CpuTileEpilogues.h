//===- CpuTileEpilogues.h - elementwise consumers in register tiles -*- C++ -*-===//
//
// Part of moe-cpu-tile-contractions (its fuse-epilogues option): an
// elementwise linalg.generic that reads a contraction's output right after
// it (an expert matmul's bias and activation) is applied to each register
// tile's accumulators before they are stored, instead of in a second pass
// over the output.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_TRANSFORMS_CPUTILEEPILOGUES_H
#define MOE_LIB_TRANSFORMS_CPUTILEEPILOGUES_H

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

namespace mlir::moe::cpu {

/// The buffer a view is taken of, through every view-like op (subviews,
/// casts, reshapes).
inline Value viewRoot(Value v) {
  while (auto view = v.getDefiningOp<ViewLikeOpInterface>())
    v = view.getViewSource();
  return v;
}

/// The generic that can be `op`'s epilogue, or null:
/// - `op` is on buffers with one output V (a rank-2 memref: a memref the
///   tiles store into, or a chain of unit-stride subviews of one, the
///   subviews folded into the stores) and one reduction loop, so each
///   register tile's stored accumulator is final;
/// - the next op after `op` that is not a pure op without regions is a
///   linalg.generic on buffers whose only output is V, with all loops
///   parallel and V's map the identity;
/// - its inputs are V itself (identity map), or memrefs that are no view
///   of the buffer V is a view of (through every view), read through the
///   identity, the column map (d0, d1) -> (d1) or no dims at all (a
///   rank-0 buffer);
/// - its body is elementwise-mappable ops (and scalar constants) on
///   scalars of int or float type, and it yields one scalar.
/// On success, the pure ops between `op` and the generic (the views it
/// reads) are moved before `op`.
linalg::GenericOp findTileEpilogue(linalg::LinalgOp op);

/// Applies `epilogue`, the epilogue of a contraction whose every part
/// became the register-tile k loops `kLoops`, to the stores of their
/// results, and erases it. Fails, changing nothing, unless `epilogue`
/// still matches (the cleanups between may have changed it) and each loop
/// writes nothing of V's root buffer inside and each of its results is
/// stored only by unmasked, in-bounds vector.transfer_writes of rank 1 or
/// 2 into V's root buffer.
LogicalResult applyTileEpilogue(RewriterBase &rewriter,
                                linalg::GenericOp epilogue,
                                ArrayRef<scf::ForOp> kLoops);

} // namespace mlir::moe::cpu

#endif // MOE_LIB_TRANSFORMS_CPUTILEEPILOGUES_H

//===- Transforms.h - reusable moe rewrite pattern sets ---------*- C++ -*-===//
//
// Pattern sets behind the moe passes, exposed so that other passes and
// pipelines can reuse them without running the pass.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TRANSFORMS_TRANSFORMS_H
#define MOE_TRANSFORMS_TRANSFORMS_H

#include "llvm/ADT/StringRef.h"

#include <cstdint>

namespace mlir {
class DialectRegistry;
class OpBuilder;
class Operation;
class RewritePatternSet;
class Value;
namespace memref {
class ExpandShapeOp;
} // namespace memref
namespace func {
class FuncOp;
} // namespace func
namespace moe {

/// moe.ffn -> route/switch_route, dispatch, grouped_matmul x2.
void populateDecomposeFfnPatterns(RewritePatternSet &patterns);

/// moe.tree_ffn -> matmul, tree_route, dispatch, grouped_matmul.
void populateDecomposeTreeFfnPatterns(RewritePatternSet &patterns);

/// moe.switchhead -> matmuls, rope, route, dispatch, grouped_matmul,
/// attention.
void populateDecomposeSwitchHeadPatterns(RewritePatternSet &patterns);

/// moe.mot -> matmul, mot_mix, expert contractions, mot_unmix.
void populateDecomposeMotPatterns(RewritePatternSet &patterns);

/// All of the above.
void populateDecomposeCompositePatterns(RewritePatternSet &patterns);

/// Up/down moe.grouped_matmul pairs that share a dispatch keep their rows
/// in expert order (moe-sort-expert-layouts).
void populateSortExpertLayoutsPatterns(RewritePatternSet &patterns);

/// scf.if results of memref type get the most static layout that both
/// branches' buffers have (moe-refine-buffer-layouts).
void populateRefineBufferLayoutsPatterns(RewritePatternSet &patterns);

/// memref.expand_shape ops with two or more dynamic sizes in one group as
/// strided memref.reinterpret_casts (moe-expand-views).
void populateExpandViewsPatterns(RewritePatternSet &patterns);

/// `expand` as a memref.reinterpret_cast of its source's base buffer, with
/// the sizes and strides the expansion implies (the last dim of a group
/// takes the source dim's stride, each earlier one that times the sizes
/// after it) and the source's offset. Of the result type's layout, what is
/// static is static. Inserted at `b`'s insertion point.
Value expandAsReinterpretCast(OpBuilder &b, memref::ExpandShapeOp expand);

/// The attribute moe-roll-repeats puts on the loop over a model's repeats
/// (its value: the repeat count); moe-cpu-tile-contractions reads it.
inline constexpr llvm::StringLiteral kRepeatsAttrName = "moe.repeats";

/// Marks an integer arith.constant that moe-roll-repeats may treat as an
/// index of the copies (copy k reads c + k*s: an "indexed" use);
/// moe-generation-entries marks its layer indices with it. Unmarked
/// constants that differ between copies keep those copies unrolled, so
/// that no static operand becomes a loop-computed value by accident.
inline constexpr llvm::StringLiteral kIndexedConstantAttrName =
    "moe.indexed_constant";

/// Rolls every sequence of at least `minOps` top-level ops that `func`'s
/// body repeats back to back into an scf.for (moe-roll-repeats); returns
/// how many loops it made.
int64_t rollRepeats(func::FuncOp func, int64_t minOps);

/// Prefetches, `distance` iterations ahead, the rows that loops under
/// `root` read at loaded row indices (moe-cpu-prefetch-rows); returns how
/// many row views got a prefetch.
int64_t prefetchIndirectRows(Operation *root, int64_t distance);

/// Prefetches, next to each read of row k of a weight block in a register
/// tile's k loop, row k of the next block in memory
/// (moe-cpu-prefetch-panels; a one-row tile's first pass also prefetches
/// its block `aheadRows` rows ahead, 0: not; with `spreadTiles`, a
/// multi-row tile in a loop over its expert's row tiles spreads the next
/// block's lines over all the tiles' k steps, in versions by lines a
/// step); returns how many reads got prefetches.
int64_t prefetchNextBlocks(Operation *root, bool crossBlocks, int64_t locality,
                           int64_t aheadRows = 0, int64_t aheadLocality = 3,
                           bool spreadTiles = false);

/// Prefetches for writing, before each multi-row register tile's k loop,
/// the output lines its stores after the loop write
/// (moe-cpu-prefetch-panels{stores}); returns how many stores got them.
int64_t prefetchTileStores(Operation *root);

/// Makes the reads of gathered-row buffers under `root` read the gathered
/// rows in place, and removes the gather copies
/// (moe-cpu-fuse-row-gathers); returns how many gathers it removed.
int64_t fuseRowGathers(Operation *root);

/// Attaches SubsetOpInterface to tensor.extract_slice, insert_slice and
/// parallel_insert_slice with a fast path for slices of the same SSA
/// offsets, sizes and strides (lib/Transforms/SliceSubsets.cpp). Call before
/// mlir::registerAllDialects: the first model attached wins.
void registerSliceSubsetModels(DialectRegistry &registry);

} // namespace moe
} // namespace mlir

#endif // MOE_TRANSFORMS_TRANSFORMS_H

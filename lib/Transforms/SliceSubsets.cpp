//===- SliceSubsets.cpp - cheap subset equivalence for tensor slices ------===//
//
// One-Shot Bufferize asks, for every insert_slice/parallel_insert_slice, if
// the value inserted was extracted from the same subset of the same buffer
// (then the insertion bufferizes in place, with no copy). Upstream's
// tensor models (MLIR 22.1) answer through
// ValueBoundsConstraintSet::areEquivalentSlices for every offset, size and
// stride, even when both sides name the same SSA value. Its `compare`
// populates the first operand's constraints with a stop condition that
// cannot hold until the second operand is inserted, so it walks the whole
// backward slice of that value (the dims of every tensor it derives from)
// and then runs Fourier-Motzkin over the result. A TopK whose K is a
// computed size (a TorchScript sort of the routed expert ids: K = T * k)
// has such slices: JetMoE's TorchScript export spent more than 10 minutes
// in that analysis, 93% of it in Presburger GCD tests.
//
// These models attach SubsetOpInterface to tensor.extract_slice,
// tensor.insert_slice and tensor.parallel_insert_slice with the same
// semantics, plus the fast case the analysis needs: slices of equivalent
// containers whose offsets, sizes and strides are the same SSA values or
// the same constants are equivalent, without building a constraint set.
// Every other pair falls back to the upstream default. They must be
// attached before upstream's: MLIR keeps the first model attached for an
// interface (moe::registerAllDialects runs before mlir::registerAllDialects
// in every tool; test/Transforms/slice-subsets.mlir checks it).
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Transforms.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Interfaces/SubsetOpInterface.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

using namespace mlir;

namespace {
template <typename OpTy>
struct SliceSubsetModel
    : SubsetOpInterface::ExternalModel<SliceSubsetModel<OpTy>, OpTy> {
  FailureOr<HyperrectangularSlice>
  getAccessedHyperrectangularSlice(Operation *op) const {
    return HyperrectangularSlice(cast<OffsetSizeAndStrideOpInterface>(op));
  }

  bool operatesOnEquivalentSubset(
      Operation *op, SubsetOpInterface candidate,
      function_ref<bool(Value, Value)> equivalenceFn) const {
    auto other =
        dyn_cast<OffsetSizeAndStrideOpInterface>(candidate.getOperation());
    // (The cheap comparison first: equivalenceFn walks alias sets.)
    if (other &&
        detail::sameOffsetsSizesAndStrides(
            cast<OffsetSizeAndStrideOpInterface>(op), other,
            isEqualConstantIntOrValue) &&
        equivalenceFn(detail::getTensorContainer(op),
                      detail::getTensorContainer(candidate)))
      return true;
    return detail::defaultOperatesOnEquivalentSubset(op, candidate,
                                                     equivalenceFn);
  }

  bool operatesOnDisjointSubset(
      Operation *op, SubsetOpInterface candidate,
      function_ref<bool(Value, Value)> equivalenceFn) const {
    return detail::defaultOperatesOnDisjointSubset(op, candidate,
                                                   equivalenceFn);
  }
};
} // namespace

void mlir::moe::registerSliceSubsetModels(DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *ctx, tensor::TensorDialect *) {
    tensor::ExtractSliceOp::attachInterface<
        SliceSubsetModel<tensor::ExtractSliceOp>>(*ctx);
    tensor::InsertSliceOp::attachInterface<
        SliceSubsetModel<tensor::InsertSliceOp>>(*ctx);
    tensor::ParallelInsertSliceOp::attachInterface<
        SliceSubsetModel<tensor::ParallelInsertSliceOp>>(*ctx);
  });
}

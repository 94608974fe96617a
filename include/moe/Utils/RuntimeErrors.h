//===- RuntimeErrors.h - error codes compiled code reports ------*- C++ -*-===//
//
// Compiled code reports data errors it detects at run time by calling
// `moe_report_error(code)` (a declaration the lowering emits;
// moe-lower-to-host-abi turns each call into the host table's report_error,
// runtime/include/moe/code_abi.h) and then continues on a clamped,
// in-bounds index; the runtime turns the first report of a run into an
// error status. The codes are shared with runtime/src/run.cpp.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_UTILS_RUNTIMEERRORS_H
#define MOE_UTILS_RUNTIMEERRORS_H

#include <cstdint>

namespace mlir::moe {

/// An expert id outside [0, E) reached moe.dispatch.
constexpr int32_t kErrorExpertIdOutOfRange = 1;
/// An index outside its dimension reached a gather (ONNX Gather,
/// GatherElements, ScatterElements): for an embedding, a token id outside
/// the vocabulary.
constexpr int32_t kErrorIndexOutOfRange = 2;
/// A dynamic dimension has a size the compiled code cannot take: broadcast
/// operands that are neither equal nor 1, a reshape whose sizes do not
/// multiply to the element count, a batch that is not a multiple of the
/// group size, a size that differs from the declared one.
constexpr int32_t kErrorShapeMismatch = 3;
/// A generation entry's `past_length` is outside [0, C], C the positions
/// its key/value caches hold.
constexpr int32_t kErrorCacheLengthOutOfRange = 4;
/// An integer Div or Mod met a zero divisor (ONNX Runtime refuses the run
/// too; the element is taken as 0).
constexpr int32_t kErrorDivisionByZero = 5;

} // namespace mlir::moe

#endif // MOE_UTILS_RUNTIMEERRORS_H

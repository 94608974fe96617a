//===- HostAbi.h - IR for the runtime's code ABI ----------------*- C++ -*-===//
//
// Shared by the passes that emit calls to the runtime's host table
// (moe-lower-to-host-abi, moe-parallel-loops-to-host): the layout is
// runtime/include/moe/code_abi.h.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TRANSFORMS_HOSTABI_H
#define MOE_TRANSFORMS_HOSTABI_H

#include "mlir/IR/Builders.h"

namespace mlir::moe {

/// The pointer stored `offset` bytes into the memory at `base`
/// (llvm.getelementptr i8 + llvm.load).
Value loadPointerAt(OpBuilder &b, Location loc, Value base, int64_t offset);

/// The host function in slot `slot` (MOE_HOST_*) of the table the frame
/// `frame` points to.
Value loadHostFunction(OpBuilder &b, Location loc, Value frame, int64_t slot);

} // namespace mlir::moe

#endif // MOE_TRANSFORMS_HOSTABI_H

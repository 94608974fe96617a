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

#include <optional>

namespace mlir::moe {

/// The inline bump allocation from the run's workspace arena that
/// moe-lower-to-host-abi defines and calls for every temporary buffer.
inline constexpr StringLiteral kWorkspaceAllocFn = "__moe_workspace_alloc";

/// Marks an scf.parallel whose iterations allocate from private slots of
/// the workspace (moe-lower-to-host-abi), not from the frame's workspace
/// words: moe-parallel-loops-to-host may run it on the thread pool.
inline constexpr StringLiteral kPrivateWorkspaceAttrName =
    "moe.private_workspace";

/// The pointer stored `offset` bytes into the memory at `base`
/// (llvm.getelementptr i8 + llvm.load).
Value loadPointerAt(OpBuilder &b, Location loc, Value base, int64_t offset);

/// The host function in slot `slot` (MOE_HOST_*) of the table the frame
/// `frame` points to.
Value loadHostFunction(OpBuilder &b, Location loc, Value frame, int64_t slot);

/// The slot (MOE_HOST_*) whose host function `callee` is, when it is loaded
/// as loadHostFunction loads it (zero offsets may have been folded away);
/// nullopt for any other value.
std::optional<int64_t> hostFunctionSlot(Value callee, Value frame);

} // namespace mlir::moe

#endif // MOE_TRANSFORMS_HOSTABI_H

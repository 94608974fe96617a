//===- executor.h - the code of a session -----------------------*- C++ -*-===//
//
// Internal to runtime/src. An Executor holds the loaded code of one
// session, for the device its signature names (`device cpu`: CpuExecutor,
// the code section in a memfd loaded with dlopen; a CUDA executor will load
// CudaCode sections behind the same interface), and calls its entries with
// a moe_frame (moe/code_abi.h).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_EXECUTOR_H
#define MOE_RUNTIME_EXECUTOR_H

#include "moe/artifact_reader.h"
#include "moe/code_abi.h"
#include "moe_runtime.h"

#include <memory>
#include <string>
#include <vector>

namespace moe::detail {

class Executor {
public:
  virtual ~Executor() = default;
  /// Makes the weight records of `contents` available to the code: `out`
  /// receives one pointer per record, in record order (CPU: pointers into
  /// the session's read-only copy or mapping of the artifact; a CUDA
  /// executor would upload them).
  virtual moe_status_t prepare(const artifact::Contents &contents,
                               std::vector<void *> &out) = 0;
  /// Calls entry `index` (signature order) with `frame`; false when a host
  /// function abandoned the call (code_abi.h; the reason is in the run).
  virtual bool run(size_t index, moe_frame &frame) = 0;
  /// Reads the names of the code's functions from `contents` (CPU: the
  /// code section's ELF .symtab), for functionName; a session that
  /// profiles calls it once, at load, before any run.
  virtual void readFunctionNames(const artifact::Contents &contents) = 0;
  /// The name of the code's function at `address` (readFunctionNames), or
  /// its offset in the code as "code+0x<hex>" where there is none.
  virtual std::string functionName(const void *address) const = 0;
};

/// The executor of the device that `contents`' signature names, with its
/// code loaded and checked: the code section it needs is present, carries
/// the signature's digest and exports every entry symbol as a function.
/// `path` names the artifact in messages.
moe_status_t createExecutor(const artifact::Contents &contents,
                            const std::string &path,
                            std::unique_ptr<Executor> &out);

} // namespace moe::detail

#endif // MOE_RUNTIME_EXECUTOR_H

//===- Compiler.h - module -> .moeb artifact --------------------*- C++ -*-===//
//
// The driver behind moe-compile: weight outlining, the signature, the
// moe-lower-to-llvm pipeline, native code generation and the artifact
// (runtime/include/moe/artifact_format.h). Errors are MLIR diagnostics.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_COMPILER_COMPILER_H
#define MOE_COMPILER_COMPILER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LLVM.h"
#include "llvm/Support/raw_ostream.h"

#include <functional>
#include <string>

namespace mlir {
class PassManager;
namespace moe {

/// Largest statically shaped tensor moe-compile accepts (16 GiB); larger
/// shapes are refused at the op that makes them (docs/security.md).
constexpr uint64_t kMaxTensorBytes = uint64_t(16) << 30;

/// Where moe-compile stops (--emit=).
enum class EmitLevel { Moe, Linalg, LLVM, Obj, Artifact };

struct CompileOptions {
  EmitLevel emit = EmitLevel::Artifact;
  /// The C compiler that turns LLVM IR into a shared object.
  std::string cc = "clang-22";
  /// Target CPU for the native code (-march=).
  std::string march = "native";
  /// Optimisation level of the C compiler (-O<n>).
  unsigned optLevel = 3;
  /// Smallest constant (elements) stored as a weight.
  int64_t minWeightElements = 16;
  /// Progress lines ("moe-compile: ...") go here when set.
  std::function<void(StringRef)> progress;
  /// Applied to every pass manager (timing, IR printing options).
  std::function<LogicalResult(PassManager &)> configure;
};

/// Compiles `module` (moe and upstream dialects on tensors, entry @main)
/// and writes the requested level to `out` (text for Moe/Linalg/LLVM, the
/// shared object for Obj, the artifact otherwise). `module` is modified.
LogicalResult compileModule(ModuleOp module, const CompileOptions &options,
                            llvm::raw_ostream &out);

} // namespace moe
} // namespace mlir

#endif // MOE_COMPILER_COMPILER_H

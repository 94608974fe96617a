//===- NativeCode.h - LLVM IR -> shared object, in parallel parts -*- C++ -*-===//
//
// The last step of moe-compile: the system C compiler optimises the LLVM
// module and links a shared object. A large module is split into parts by
// function first, each part compiled by its own C compiler process (several
// at once), and the objects linked (docs/runtime.md, moe-compile step 5).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_COMPILER_NATIVECODE_H
#define MOE_LIB_COMPILER_NATIVECODE_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <functional>
#include <string>

namespace llvm {
class Module;
} // namespace llvm

namespace mlir::moe {

struct NativeCodeOptions {
  /// The C compiler (a path).
  std::string cc;
  /// -march= and -O<n>.
  std::string march;
  unsigned optLevel = 3;
  /// Parts the module is split into; 0: by its size (one part per
  /// kInstructionsPerPart instructions, at most kMaxParts). The code depends
  /// on the parts, never on `jobs`.
  unsigned parts = 0;
  /// C compiler processes run at once; 0: one per hardware thread.
  unsigned jobs = 0;
  /// Identical functions merged first (one body, the others thunks that
  /// jump to it).
  bool mergeFunctions = true;
  /// Temporary files also removed on SIGINT/SIGTERM (TempFileRemover).
  bool removeTempsOnSignal = false;
  /// Progress lines.
  std::function<void(const llvm::Twine &)> progress;
};

/// Instructions per part when NativeCodeOptions::parts is 0.
constexpr uint64_t kInstructionsPerPart = 20000;
/// The most parts a module is split into by its size.
constexpr unsigned kMaxParts = 16;

/// Removes the file at `path` when it goes out of scope, and, with
/// `onSignal`, also when the process is interrupted first (SIGINT, SIGTERM,
/// a crash: through llvm::sys::RemoveFileOnSignal), so that a compile
/// stopped with Ctrl-C leaves no temporary bitcode, objects or shared object
/// behind. (A C compiler process that gets no signal itself, when only
/// moe-compile is signalled, may still write its output afterwards; Ctrl-C
/// in a terminal reaches both.)
class TempFileRemover {
public:
  TempFileRemover(llvm::StringRef path, bool onSignal);
  ~TempFileRemover();
  TempFileRemover(const TempFileRemover &) = delete;
  TempFileRemover &operator=(const TempFileRemover &) = delete;

private:
  std::string path;
  bool onSignal;
};

/// Compiles `module` into the shared object `soPath`. `module` may be
/// changed (the local functions and variables the split moves between
/// parts become hidden external symbols). The error names the step and the
/// part that failed. --cc must read LLVM 22 bitcode and IR (clang 22 or
/// later).
llvm::Error buildSharedObject(llvm::Module &module,
                              const NativeCodeOptions &options,
                              llvm::StringRef soPath);

} // namespace mlir::moe

#endif // MOE_LIB_COMPILER_NATIVECODE_H

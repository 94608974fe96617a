//===- NativeCode.cpp - LLVM IR -> shared object, in parallel parts -------===//
//
// The C compiler's -O3 is most of a large model's compile time (MoEUT-44M
// with --generation: about 36 of 45 s in one clang process), and one process
// uses one core. The code lends itself to splitting: an entry and the
// parallel loop bodies it hands the thread pool call each other only
// through addresses (apart from the thunks of merged bodies, below), so no
// inlining is lost between them. A module of many
// instructions is therefore split by function into parts of about equal
// size, each part compiled to an object by its own C compiler process,
// several at once, and the objects linked into the shared object.
//
// - Functions with local linkage that are only called directly (the
//   workspace allocator: inlined at each call) are copied into every part,
//   as are local constants whose address nobody compares (unnamed_addr),
//   so that each part can still inline and fold them. Every other function
//   goes to exactly one part, every other variable to part 0; local ones
//   become hidden external symbols, so that the other parts reach them at
//   link time and the shared object still exports only what it did (the
//   entries and the signature digest). The link refuses undefined symbols
//   (-z defs), so a definition lost between parts fails the compile, not
//   the load.
// - The parts depend on the module alone (longest function first to the
//   lightest part), never on how many compilers run at once or on the
//   host's cores.
// - A module the split would have to handle with more care is compiled
//   whole: aliases, ifuncs, comdats, module-level assembly, unnamed
//   definitions, linkages other than external and local (a weak or
//   linkonce definition could be dropped by its part while others call
//   it, appending globals such as llvm.used), block addresses. The code
//   emits none of them.
// - The module's functions that are moved between parts keep none of what
//   internal linkage allows (dead function removal, changed calling
//   conventions): the parallel loop bodies are called through addresses
//   (a merged body also directly by its thunks, which may sit in another
//   part: the hidden symbol links them), and an entry's body whose call
//   the optimiser proves
//   unreachable stays in the object (18 of the 678 bodies of MoEUT-44M's
//   generation module, 913 bytes).
//
// Identical functions are merged first (LLVM's MergeFunctions): one keeps
// its body, each of the others becomes a thunk that jumps to it. Distinct
// layers of the same shapes lower to the same loop bodies (their weights
// come in through the closure), and so do @main's and @prefill's: 59% of
// the lines of MoEUT-44M's --generation module were such copies, and
// moe-compile took 29.9 s instead of 19.7 (docs/performance.md). The thunks
// keep every body's own symbol and address, so moe-run --profile still
// counts each loop on its own; perf attributes the shared body's samples
// to the symbol that kept it (--no-merge-functions for a per-layer view).
// The C compiler may inline a small kept body back into its thunks (only
// bodies above its inlining threshold stay shared); that costs size, not
// correctness. moe-compile --emit=llvm prints the module before the merge.
//
// llvm::SplitModule does the cloning too, but puts each function by a hash
// of its name or round-robin (MoEUT-44M's --generation module: parts of
// 39k to 82k lines, 4.1 to 10.0 s), and with externalized locals it cannot
// copy the allocator into the parts; hence the partition here, on
// CloneModule.
//
//===----------------------------------------------------------------------===//

#include "NativeCode.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Bitcode/BitcodeWriter.h"
#include "llvm/IR/Constants.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/Signals.h"
#include "llvm/Support/Threading.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Transforms/IPO/MergeFunctions.h"
#include "llvm/Transforms/Utils/Cloning.h"
#include "llvm/Transforms/Utils/ValueMapper.h"

#include <algorithm>
#include <deque>
#include <memory>

using namespace llvm;

namespace {

/// Flags of every C compiler run.
SmallVector<std::string> compileFlags(const mlir::moe::NativeCodeOptions &o) {
  return {"-O" + std::to_string(o.optLevel), "-march=" + o.march, "-fPIC",
          "-Wno-override-module"};
}

/// Flags of the link (and of the one-step compile of an unsplit module).
SmallVector<StringRef> linkFlags() {
  return {"-shared",
          // compiler-rt's builtins provide conversions libgcc 12 lacks (bf16)
          "-rtlib=compiler-rt",
          // builtins stay hidden: the code exports only its entries and
          // signature digest
          "-Wl,--exclude-libs,ALL",
          // no C runtime start files: the code has no constructors, and
          // they would add weak undefined symbols
          "-nostartfiles",
          // every symbol defined at link time (a definition lost between
          // parts fails here, not when the code is loaded)
          "-Wl,-z,defs"};
}

/// Writes `path` with `write`; an I/O error (a full disk) is an Error, not
/// raw_fd_ostream's fatal error.
Error writeFile(StringRef path, function_ref<void(raw_ostream &)> write) {
  std::error_code ec;
  raw_fd_ostream os(path, ec, sys::fs::OF_None);
  if (!ec) {
    write(os);
    os.close();
    if (os.has_error()) {
      ec = os.error();
      os.clear_error();
    }
  }
  if (ec)
    return createStringError("cannot write '" + path + "': " + ec.message());
  return Error::success();
}

/// Runs `cc args...`, waiting; the failure names `what`.
Error run(StringRef cc, ArrayRef<StringRef> args, const Twine &what) {
  SmallVector<StringRef> argv = {cc};
  argv.append(args.begin(), args.end());
  std::string err;
  int rc = sys::ExecuteAndWait(cc, argv, std::nullopt, {}, 0, 0, &err);
  if (rc != 0)
    return createStringError("the C compiler failed" +
                             (what.isTriviallyEmpty() ? "" : " " + what) +
                             " (" + Twine(rc) +
                             (err.empty() ? "" : ": " + err) + ")");
  return Error::success();
}

/// A function copied into every part: local, and only ever called.
bool isShared(const Function &f) {
  return f.hasLocalLinkage() && !f.isDeclaration() && !f.hasAddressTaken();
}

/// A local constant copied into every part (its address is not
/// significant, so the copies may differ).
bool isCopied(const GlobalVariable &g) {
  return g.hasLocalLinkage() && g.isConstant() && g.hasInitializer() &&
         g.hasGlobalUnnamedAddr();
}

/// Whether the module holds something the split does not handle (the file
/// comment).
bool splittable(const Module &m) {
  if (!m.alias_empty() || !m.ifunc_empty() || !m.getModuleInlineAsm().empty())
    return false;
  for (const GlobalObject &g : m.global_objects()) {
    if (g.hasComdat())
      return false;
    if (g.isDeclaration())
      continue;
    if (!g.hasName() || !(g.hasExternalLinkage() || g.hasLocalLinkage()))
      return false;
    if (auto *f = dyn_cast<Function>(&g))
      if (llvm::any_of(f->users(),
                       [](const User *u) { return isa<BlockAddress>(u); }))
        return false;
  }
  return true;
}

/// The part of each function that is not shared; empty when the module
/// stays whole.
DenseMap<const Function *, unsigned> partition(Module &m, unsigned parts) {
  struct Sized {
    uint64_t instructions;
    unsigned order;
    const Function *function;
  };
  SmallVector<Sized> sized;
  uint64_t total = 0;
  for (const Function &f : m) {
    if (f.isDeclaration() || isShared(f))
      continue;
    uint64_t n = f.getInstructionCount();
    sized.push_back({n, static_cast<unsigned>(sized.size()), &f});
    total += n;
  }
  if (parts == 0)
    parts = static_cast<unsigned>(std::clamp<uint64_t>(
        (total + mlir::moe::kInstructionsPerPart - 1) /
            mlir::moe::kInstructionsPerPart,
        1, mlir::moe::kMaxParts));
  parts = std::min<unsigned>(parts, sized.size());
  DenseMap<const Function *, unsigned> part;
  if (parts <= 1 || !splittable(m))
    return part;
  // Longest first, each to the part with the fewest instructions so far
  // (ties: module order, the lower part).
  llvm::sort(sized, [](const Sized &a, const Sized &b) {
    return a.instructions != b.instructions ? a.instructions > b.instructions
                                            : a.order < b.order;
  });
  SmallVector<uint64_t> load(parts, 0);
  for (const Sized &s : sized) {
    unsigned p = std::min_element(load.begin(), load.end()) - load.begin();
    load[p] += s.instructions;
    part[s.function] = p;
  }
  return part;
}

/// One temporary file, removed when this goes (or on a signal).
struct TempFile {
  SmallString<128> path;
  std::unique_ptr<mlir::moe::TempFileRemover> remover;
  Error create(StringRef prefix, StringRef suffix, bool onSignal) {
    if (std::error_code ec =
            sys::fs::createTemporaryFile(prefix, suffix, path))
      return createStringError("cannot create a temporary file: " +
                               ec.message());
    remover = std::make_unique<mlir::moe::TempFileRemover>(path, onSignal);
    return Error::success();
  }
};

} // namespace

mlir::moe::TempFileRemover::TempFileRemover(StringRef path, bool onSignal)
    : path(path.str()), onSignal(onSignal) {
  // (Registers LLVM's signal handlers if they are not yet.)
  if (onSignal)
    sys::RemoveFileOnSignal(path);
}

mlir::moe::TempFileRemover::~TempFileRemover() {
  sys::fs::remove(path);
  if (onSignal)
    sys::DontRemoveFileOnSignal(path);
}

Error mlir::moe::buildSharedObject(Module &module,
                                   const NativeCodeOptions &options,
                                   StringRef soPath) {
  auto progress = [&](const Twine &msg) {
    if (options.progress)
      options.progress(msg);
  };
  SmallVector<std::string> flags = compileFlags(options);
  if (options.mergeFunctions)
    MergeFunctionsPass::runOnModule(module);
  DenseMap<const Function *, unsigned> part =
      partition(module, options.parts);
  unsigned parts = 0;
  for (auto &entry : part)
    parts = std::max(parts, entry.second + 1);

  if (parts <= 1) {
    // One process compiles and links.
    TempFile ir;
    if (Error e = ir.create("moe-model", "ll", options.removeTempsOnSignal))
      return e;
    if (Error e = writeFile(ir.path, [&](raw_ostream &os) {
          module.print(os, nullptr);
        }))
      return e;
    progress("generating native code: " + options.cc + " " + flags[0] + " " +
             flags[1]);
    SmallVector<StringRef> args(flags.begin(), flags.end());
    args.append(linkFlags());
    args.append({"-x", "ir", ir.path, "-o", soPath, "-lm"});
    return run(options.cc, args, Twine());
  }

  // The split: local functions that go to one part and local variables
  // that are not copied (defined in part 0) become hidden external symbols.
  for (Function &f : module)
    if (part.count(&f) && f.hasLocalLinkage()) {
      f.setLinkage(GlobalValue::ExternalLinkage);
      f.setVisibility(GlobalValue::HiddenVisibility);
    }
  for (GlobalVariable &g : module.globals())
    if (g.hasLocalLinkage() && !isCopied(g)) {
      g.setLinkage(GlobalValue::ExternalLinkage);
      g.setVisibility(GlobalValue::HiddenVisibility);
    }
  unsigned jobs = options.jobs ? options.jobs
                               : hardware_concurrency().compute_thread_count();
  jobs = std::max(1u, std::min(jobs, parts));
  progress("generating native code: " + options.cc + " " + flags[0] + " " +
           flags[1] + " in " + Twine(parts) + " parts, " + Twine(jobs) +
           " at a time");

  // Each part is cloned, written as bitcode and handed to a C compiler
  // while the next is cloned; up to `jobs` compilers at once, waited for in
  // the order they started (the parts are of about equal size). After a
  // failure no part is started, and those running are waited for.
  struct Running {
    unsigned part;
    sys::ProcessInfo info;
  };
  std::deque<Running> running;
  std::string failure;
  auto finish = [&](Running &r) {
    std::string err;
    sys::ProcessInfo done = sys::Wait(r.info, std::nullopt, &err);
    if (done.ReturnCode != 0 && failure.empty())
      failure = ("the C compiler failed on part " + Twine(r.part + 1) +
                 " of " + Twine(parts) + " (" + Twine(done.ReturnCode) +
                 (err.empty() ? "" : ": " + err) + ")")
                    .str();
  };
  std::vector<TempFile> bitcode(parts), objects(parts);
  for (unsigned p = 0; p < parts && failure.empty(); ++p) {
    if (Error e = bitcode[p].create("moe-model-part", "bc",
                                    options.removeTempsOnSignal)) {
      failure = toString(std::move(e));
      break;
    }
    if (Error e = objects[p].create("moe-model-part", "o",
                                    options.removeTempsOnSignal)) {
      failure = toString(std::move(e));
      break;
    }
    {
      ValueToValueMapTy map;
      std::unique_ptr<Module> piece =
          CloneModule(module, map, [&](const GlobalValue *gv) {
            if (auto *f = dyn_cast<Function>(gv))
              return isShared(*f) || part.lookup(f) == p;
            if (auto *g = dyn_cast<GlobalVariable>(gv))
              return isCopied(*g) || p == 0;
            return true;
          });
      if (Error e = writeFile(bitcode[p].path, [&](raw_ostream &os) {
            WriteBitcodeToFile(*piece, os);
          })) {
        failure = toString(std::move(e));
        break;
      }
    }
    if (running.size() == jobs) {
      finish(running.front());
      running.pop_front();
      if (!failure.empty())
        break;
    }
    SmallVector<StringRef> argv = {options.cc};
    argv.append(flags.begin(), flags.end());
    argv.append({"-c", "-x", "ir", bitcode[p].path, "-o", objects[p].path});
    std::string err;
    bool notRun = false;
    sys::ProcessInfo info = sys::ExecuteNoWait(options.cc, argv, std::nullopt,
                                               {}, 0, &err, &notRun);
    if (notRun) {
      failure = "cannot run the C compiler '" + options.cc + "': " + err;
      break;
    }
    running.push_back({p, info});
  }
  for (Running &r : running)
    finish(r);
  if (!failure.empty())
    return createStringError(failure);

  SmallVector<StringRef> args = linkFlags();
  for (TempFile &o : objects)
    args.push_back(o.path);
  args.append({"-o", soPath, "-lm"});
  return run(options.cc, args, "to link the parts");
}

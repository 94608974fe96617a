//===- executor.cpp - loading and calling the code of a session -----------===//
//
// The CPU executor: the code section is written into an anonymous, sealed
// memfd and loaded with dlopen("/proc/self/fd/N") (a mkstemp file in
// $TMPDIR where memfd or /proc is missing), checked against the
// signature's digest, and its entry symbols looked up; entries are called
// through enterCode (run.h), the setjmp that host functions return to when
// they abandon a run.
//
//===----------------------------------------------------------------------===//

#include "executor.h"

#include "moe/artifact_format.h"
#include "moe/text.h"

#include "posix_io.h"
#include "run.h"
#include "runtime_internal.h"
#include "test_hooks.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

using moe::detail::Executor;
using moe::detail::makeStatus;

namespace {

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U // Linux 6.3: an executable memfd under memfd_noexec.
#endif

/// Whether an object is loaded under `name`. glibc matches a dlopen name
/// against the names of loaded objects before it looks at any file, so
/// dlopen(name) would hand back that object instead of loading ours.
bool nameInUse(const std::string &name) {
  void *handle = dlopen(name.c_str(), RTLD_NOLOAD | RTLD_LAZY);
  if (!handle) {
    dlerror(); // Clear the error state.
    return false;
  }
  dlclose(handle);
  return true;
}

/// Drops our reference to a loaded object; closes `fd` (the memfd it was
/// loaded from, or -1) only if the object is really gone. If it is still
/// loaded (another reference, or an object that cannot be unloaded), the
/// descriptor is kept open for good, so that no later memfd gets its
/// number and with it the name "/proc/self/fd/N" of a loaded object.
void unload(void *handle, int fd, const std::string &name) {
  if (handle)
    dlclose(handle);
  if (fd < 0)
    return;
  if (nameInUse(name))
    return; // Deliberately leaked: see above.
  ::close(fd);
}

using moe::detail::writeAll;

/// Set by test_hooks::setForceFileStaging.
std::atomic<bool> gForceFileStaging{false};

/// The code in an anonymous memory file, named "/proc/self/fd/N" for
/// dlopen: nothing is left behind if the process dies while loading. -1 if
/// the kernel has no memfd_create or /proc is not mounted (or a test forces
/// the file fallback); -2 with `error` on failure.
int stageInMemfd(const unsigned char *code, size_t size, std::string &name,
                 std::string &error) {
  if (gForceFileStaging.load(std::memory_order_relaxed))
    return -1;
  int fd = memfd_create("moe-code", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
  if (fd < 0 && errno == EINVAL) // A kernel before 6.3 knows no MFD_EXEC.
    fd = memfd_create("moe-code", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0)
    return -1;
  if (!writeAll(fd, code, size)) {
    error = std::string("cannot stage the code: ") + std::strerror(errno);
    ::close(fd);
    return -2;
  }
  // Nobody may change the code once it is checked (failures are harmless).
  fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE |
                             F_SEAL_SEAL);
  for (int attempt = 0;; ++attempt) {
    name = "/proc/self/fd/" + std::to_string(fd);
    if (::access(name.c_str(), R_OK) != 0) {
      ::close(fd);
      return -1; // No /proc: use a file.
    }
    if (!nameInUse(name))
      return fd;
    // An object outside our control holds this name: keep the number (so
    // that we are not handed it again) and take another.
    int other = attempt < 8 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (other < 0) {
      error = "no unused /proc/self/fd name to load the code from";
      ::close(fd);
      return -2;
    }
    fd = other;
  }
}

/// The fallback without memfd: a private temporary file, unlinked as soon
/// as dlopen has mapped it. Returns the handle or null with `error`.
void *loadFromFile(const unsigned char *code, size_t size,
                   std::string &error) {
  const char *tmp = std::getenv("TMPDIR");
  for (int attempt = 0; attempt < 8; ++attempt) {
    std::string path = std::string(tmp && *tmp ? tmp : "/tmp") +
                       "/moe-code-XXXXXX";
    int fd = mkostemp(&path[0], O_CLOEXEC);
    if (fd < 0) {
      error = "cannot stage the code in '" + path +
              "': " + std::strerror(errno);
      return nullptr;
    }
    bool ok = writeAll(fd, code, size);
    int savedErrno = errno;
    ::close(fd);
    if (!ok) {
      ::unlink(path.c_str());
      error = std::string("cannot stage the code: ") +
              std::strerror(savedErrno);
      return nullptr;
    }
    if (nameInUse(path)) { // A still-loaded object once had this name.
      ::unlink(path.c_str());
      continue;
    }
    void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    ::unlink(path.c_str());
    if (!handle) {
      const char *err = dlerror();
      error = err ? err : "unknown error";
    }
    return handle;
  }
  error = "no unused temporary file name to load the code from";
  return nullptr;
}

/// The address of `name` in the loaded object `handle` itself (not in a
/// library it pulls in) if its ELF symbol has `type` (STT_OBJECT,
/// STT_FUNC) and, for objects, at least `minSize` bytes; null otherwise.
void *codeSymbol(void *handle, const char *name, unsigned type,
                 size_t minSize) {
  void *sym = dlsym(handle, name);
  Dl_info info;
  void *symEntry = nullptr;
  struct link_map *map = nullptr;
  bool found = sym && dladdr1(sym, &info, &symEntry, RTLD_DL_SYMENT) &&
               symEntry &&
               ELF64_ST_TYPE(static_cast<ElfW(Sym) *>(symEntry)->st_info) ==
                   type &&
               static_cast<ElfW(Sym) *>(symEntry)->st_size >= minSize &&
               dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map &&
               info.dli_fname && map->l_name &&
               std::strcmp(info.dli_fname, map->l_name) == 0;
  dlerror(); // Clear the error state.
  return found ? sym : nullptr;
}

/// Checks that the loaded code carries `digest`, the digest of the
/// signature it is run with (artifact_format.h, kSignatureDigestSymbol).
moe_status_t checkDigest(void *handle, uint64_t digest) {
  using moe::artifact::kSignatureDigestSymbol;
  // An object of at least 8 bytes (more under ASan, which pads globals).
  void *sym = codeSymbol(handle, kSignatureDigestSymbol, STT_OBJECT,
                         sizeof(uint64_t));
  if (!sym)
    return makeStatus(MOE_DATA_LOSS,
                      "the code section has no signature digest ('%s', an "
                      "8-byte constant): the signature does not match the "
                      "code it was compiled with; recompile the model with "
                      "moe-compile",
                      kSignatureDigestSymbol);
  uint64_t value;
  std::memcpy(&value, sym, sizeof(value));
  if (value != digest)
    return makeStatus(MOE_DATA_LOSS,
                      "the signature does not match the code it was "
                      "compiled with (signature digest %016llx, the code's "
                      "%016llx): the artifact was edited after compilation; "
                      "recompile the model with moe-compile",
                      static_cast<unsigned long long>(digest),
                      static_cast<unsigned long long>(value));
  return nullptr;
}

/// A function of the code: its offset from the load base, size and name.
struct CodeFunction {
  uint64_t start = 0, size = 0;
  std::string name;
};

/// The sized functions of the first well-formed ELF .symtab of
/// `data[0, size)`, sorted by start; empty where there is none or the
/// tables do not lie within the bytes (the code section is checksummed,
/// but nothing here trusts it).
std::vector<CodeFunction> readCodeFunctions(const unsigned char *data,
                                            size_t size) {
  std::vector<CodeFunction> out;
  Elf64_Ehdr eh;
  if (!data || size < sizeof(eh))
    return out;
  std::memcpy(&eh, data, sizeof(eh));
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != ELFCLASS64 ||
      eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shoff > size ||
      eh.e_shnum > (size - eh.e_shoff) / sizeof(Elf64_Shdr))
    return out;
  auto section = [&](size_t i) {
    Elf64_Shdr sh;
    std::memcpy(&sh, data + eh.e_shoff + i * sizeof(sh), sizeof(sh));
    return sh;
  };
  auto within = [&](const Elf64_Shdr &sh) {
    return sh.sh_offset <= size && sh.sh_size <= size - sh.sh_offset;
  };
  for (size_t i = 0; i < eh.e_shnum; ++i) {
    Elf64_Shdr symtab = section(i);
    if (symtab.sh_type != SHT_SYMTAB ||
        symtab.sh_entsize != sizeof(Elf64_Sym) || !within(symtab) ||
        symtab.sh_link >= eh.e_shnum)
      continue;
    Elf64_Shdr strtab = section(symtab.sh_link);
    if (strtab.sh_type != SHT_STRTAB || !within(strtab))
      continue;
    const char *strings =
        reinterpret_cast<const char *>(data + strtab.sh_offset);
    for (uint64_t at = 0; at + sizeof(Elf64_Sym) <= symtab.sh_size;
         at += sizeof(Elf64_Sym)) {
      Elf64_Sym sym;
      std::memcpy(&sym, data + symtab.sh_offset + at, sizeof(sym));
      if (ELF64_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_size == 0 ||
          sym.st_name >= strtab.sh_size)
        continue;
      const char *name = strings + sym.st_name;
      out.push_back(
          {sym.st_value, sym.st_size,
           std::string(name, strnlen(name, strtab.sh_size - sym.st_name))});
    }
    break; // (ELF allows one .symtab.)
  }
  std::sort(out.begin(), out.end(),
            [](const CodeFunction &a, const CodeFunction &b) {
              return a.start < b.start;
            });
  return out;
}

/// The x86-64 code of `device cpu` signatures: a shared object, one
/// exported function per entry (code_abi.h).
class CpuExecutor final : public Executor {
public:
  static moe_status_t create(const moe::artifact::Contents &contents,
                             const std::string &path,
                             std::unique_ptr<Executor> &out) {
    if (!contents.code)
      return makeStatus(MOE_DATA_LOSS, "'%s' lacks its CPU code section",
                        path.c_str());
    std::string name, error;
    int fd = stageInMemfd(contents.code, contents.codeSize, name, error);
    if (fd == -2)
      return makeStatus(MOE_INTERNAL, "%s", error.c_str());
    void *handle = nullptr;
    if (fd >= 0) {
      handle = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (!handle) {
        const char *err = dlerror();
        error = err ? err : "unknown error";
        ::close(fd);
      }
    } else {
      handle = loadFromFile(contents.code, contents.codeSize, error);
    }
    if (!handle)
      return makeStatus(MOE_DATA_LOSS, "cannot load the code section: %s",
                        error.c_str());
    std::unique_ptr<CpuExecutor> exec(new (std::nothrow) CpuExecutor);
    if (!exec) {
      unload(handle, fd, name);
      return makeStatus(MOE_RESOURCE_EXHAUSTED, "out of memory");
    }
    exec->handle = handle;
    exec->fd = fd;
    exec->name = std::move(name);
    struct link_map *map = nullptr;
    if (dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map)
      exec->base = map->l_addr;
    // From here on, `exec` unloads the code if anything fails.
    if (moe_status_t st = checkDigest(handle, contents.signatureDigest))
      return st;
    for (const moe::artifact::EntryRecord &e : contents.signature.entries) {
      void *sym = dlsym(handle, e.symbol.c_str());
      dlerror();
      if (!sym)
        return makeStatus(MOE_DATA_LOSS,
                          "the code section has no entry symbol '%s' (entry "
                          "'%s')",
                          e.symbol.c_str(),
                          moe::printable(e.name, 64).c_str());
      if (!codeSymbol(handle, e.symbol.c_str(), STT_FUNC, 0))
        return makeStatus(MOE_DATA_LOSS,
                          "the entry symbol '%s' is not a function of the "
                          "code section",
                          e.symbol.c_str());
      exec->entries.push_back(reinterpret_cast<moe::detail::EntryFunction>(
          reinterpret_cast<uintptr_t>(sym)));
    }
    out = std::move(exec);
    return nullptr;
  }

  ~CpuExecutor() override { unload(handle, fd, name); }

  moe_status_t prepare(const moe::artifact::Contents &contents,
                       std::vector<void *> &out) override {
    // The artifact's memory (copy or mapping) is read only; the code never
    // writes weights.
    out.clear();
    for (const moe::artifact::TensorRecord &w : contents.signature.weights)
      out.push_back(const_cast<unsigned char *>(contents.weights) + w.offset);
    return nullptr;
  }

  bool run(size_t index, moe_frame &frame) override {
    return moe::detail::enterCode(entries[index], &frame);
  }

  void readFunctionNames(const moe::artifact::Contents &contents) override {
    try {
      functions = readCodeFunctions(contents.code, contents.codeSize);
    } catch (...) { // std::bad_alloc: offsets only
      functions.clear();
    }
  }

  std::string functionName(const void *address) const override {
    uint64_t offset = reinterpret_cast<uintptr_t>(address) - base;
    auto after = std::upper_bound(
        functions.begin(), functions.end(), offset,
        [](uint64_t o, const CodeFunction &f) { return o < f.start; });
    if (after != functions.begin() &&
        offset - std::prev(after)->start < std::prev(after)->size)
      return std::prev(after)->name;
    char text[32];
    std::snprintf(text, sizeof(text), "code+0x%" PRIx64, offset);
    return text;
  }

private:
  CpuExecutor() = default;
  void *handle = nullptr;
  /// The memfd the code was loaded from (-1 for the file fallback), open
  /// for as long as the code is loaded: see unload().
  int fd = -1;
  std::string name;
  std::vector<moe::detail::EntryFunction> entries;
  /// Where dlopen put the code, and its functions (readFunctionNames).
  uintptr_t base = 0;
  std::vector<CodeFunction> functions;
};

} // namespace

moe_status_t moe::detail::createExecutor(const artifact::Contents &contents,
                                         const std::string &path,
                                         std::unique_ptr<Executor> &out) {
  const artifact::Signature &sig = contents.signature;
  if (sig.device == "cpu" && sig.arch == "x86-64")
    return CpuExecutor::create(contents, path, out);
  return makeStatus(MOE_UNIMPLEMENTED, "no executor for device '%s %s'",
                    moe::printable(sig.device, 32).c_str(),
                    moe::printable(sig.arch, 32).c_str());
}

std::vector<std::string>
moe::test_hooks::codeFunctionNames(const unsigned char *data, size_t size) {
  std::vector<std::string> names;
  for (CodeFunction &f : readCodeFunctions(data, size))
    names.push_back(std::move(f.name));
  return names;
}

void moe::test_hooks::setForceFileStaging(bool force) {
  gForceFileStaging.store(force, std::memory_order_relaxed);
}

//===- runtime.cpp - the moe-mlir runtime ----------------------------------===//
//
// Artifact loading (mmap, then the pure parser of artifact_reader.cpp), the
// CPU executor (the code section in an anonymous memfd loaded with dlopen,
// checked against the signature's digest, called through its packed entry),
// input validation and the copy of the results. Everything that can fail
// returns a status; no exception leaves this file.
//
//===----------------------------------------------------------------------===//

#include "moe_runtime.h"

#include "moe/artifact_format.h"
#include "moe/artifact_reader.h"

#include "posix_io.h"
#include "test_hooks.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <set>
#include <string>
#include <vector>

/// The first error compiled code reported during the current run on this
/// thread (codes: include/moe/Utils/RuntimeErrors.h in the compiler).
static thread_local int32_t tReportedError = 0;

extern "C" __attribute__((visibility("default"))) void
moe_report_error(int32_t code) {
  if (!tReportedError)
    tReportedError = code;
}

/// The same hook under the C-interface name (moe-lower-to-llvm requests C
/// wrappers for every function, declarations included).
extern "C" __attribute__((visibility("default"))) void
_mlir_ciface_moe_report_error(int32_t code) {
  moe_report_error(code);
}

struct moe_status {
  moe_status_code_t code;
  std::string message;
};

namespace {

moe_status_t makeStatus(moe_status_code_t code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

moe_status_t makeStatus(moe_status_code_t code, const char *fmt, ...) {
  char buf[1024];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, args);
  va_end(args);
  auto *status = new (std::nothrow) moe_status{code, buf};
  return status;
}

struct DTypeInfo {
  const char *name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {"f32", 4}, {"f64", 8},  {"f16", 2},  {"bf16", 2}, {"i64", 8},
    {"i32", 4}, {"i8", 1},   {"u8", 1},   {"bool", 1}, {"i16", 2},
    {"u16", 2}, {"u32", 4},  {"u64", 8}};
constexpr size_t kNumDTypes = sizeof(kDTypes) / sizeof(kDTypes[0]);

/// One input, output or weight of the signature.
using TensorSpec = moe::artifact::TensorRecord;

/// Bytes of a memref descriptor of `rank`: 2 pointers, offset, sizes,
/// strides (all 8 bytes on x86-64).
size_t descriptorWords(size_t rank) { return 3 + 2 * rank; }

/// Fills a descriptor for a dense row-major buffer.
void fillDescriptor(int64_t *words, const void *data,
                    const std::vector<int64_t> &dims) {
  std::memcpy(&words[0], &data, sizeof(void *));
  std::memcpy(&words[1], &data, sizeof(void *));
  words[2] = 0;
  size_t rank = dims.size();
  int64_t stride = 1;
  for (size_t d = rank; d-- > 0;) {
    words[3 + d] = dims[d];
    words[3 + rank + d] = stride;
    stride *= dims[d];
  }
}

/// The code of a session. A CUDA executor will implement the same
/// interface; the artifact's section kinds select the executor.
class Executor {
public:
  virtual ~Executor() = default;
  /// Calls the entry with the packed argument array.
  virtual moe_status_t run(void **packed) = 0;
  /// Whether `ptr` points into memory owned by the code (a constant
  /// returned as an output must not be freed).
  virtual bool ownsAddress(const void *ptr) const = 0;
};

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

/// Checks that the loaded code carries `digest`, the digest of the
/// signature it is run with (artifact_format.h, kSignatureDigestSymbol).
moe_status_t checkDigest(void *handle, uint64_t digest) {
  using moe::artifact::kSignatureDigestSymbol;
  void *sym = dlsym(handle, kSignatureDigestSymbol);
  Dl_info info;
  void *symEntry = nullptr;
  struct link_map *map = nullptr;
  // The symbol must be an object of at least 8 bytes (more under ASan,
  // which pads globals) of the code itself, not of a library it pulls in.
  bool found = sym &&
               dladdr1(sym, &info, &symEntry, RTLD_DL_SYMENT) && symEntry &&
               ELF64_ST_TYPE(static_cast<ElfW(Sym) *>(symEntry)->st_info) ==
                   STT_OBJECT &&
               static_cast<ElfW(Sym) *>(symEntry)->st_size >=
                   sizeof(uint64_t) &&
               dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map &&
               info.dli_fname && map->l_name &&
               std::strcmp(info.dli_fname, map->l_name) == 0;
  dlerror();
  if (!found)
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

class CpuExecutor final : public Executor {
public:
  static moe_status_t create(const unsigned char *code, size_t size,
                             const std::string &entry, uint64_t digest,
                             std::unique_ptr<Executor> &out) {
    std::string name, error;
    int fd = stageInMemfd(code, size, name, error);
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
      handle = loadFromFile(code, size, error);
    }
    if (!handle)
      return makeStatus(MOE_DATA_LOSS, "cannot load the code section: %s",
                        error.c_str());
    if (moe_status_t st = checkDigest(handle, digest)) {
      unload(handle, fd, name);
      return st;
    }
    void *sym = dlsym(handle, entry.c_str());
    if (!sym) {
      unload(handle, fd, name);
      return makeStatus(MOE_DATA_LOSS,
                        "the code section has no entry symbol '%s'",
                        entry.c_str());
    }
    auto exec = std::unique_ptr<CpuExecutor>(new (std::nothrow) CpuExecutor);
    if (!exec) {
      unload(handle, fd, name);
      return makeStatus(MOE_RESOURCE_EXHAUSTED, "out of memory");
    }
    exec->handle = handle;
    exec->fd = fd;
    exec->name = std::move(name);
    exec->entry = reinterpret_cast<void (*)(void **)>(sym);
    Dl_info info;
    if (dladdr(sym, &info))
      exec->base = info.dli_fbase;
    out = std::move(exec);
    return nullptr;
  }

  ~CpuExecutor() override { unload(handle, fd, name); }

  moe_status_t run(void **packed) override {
    entry(packed);
    return nullptr;
  }

  bool ownsAddress(const void *ptr) const override {
    Dl_info info;
    return dladdr(ptr, &info) && info.dli_fbase == base;
  }

private:
  CpuExecutor() = default;
  void *handle = nullptr;
  /// The memfd the code was loaded from (-1 for the file fallback), open
  /// for as long as the code is loaded: see unload().
  int fd = -1;
  std::string name;
  void *base = nullptr;
  void (*entry)(void **) = nullptr;
};

} // namespace

struct moe_tensor {
  moe_dtype_t dtype;
  std::vector<int64_t> dims;
  size_t count = 0;
  std::unique_ptr<unsigned char, void (*)(void *)> data{nullptr, std::free};
};

struct moe_instance {
  int placeholder = 0;
};

struct moe_session {
  moe_instance *instance = nullptr;
  void *mapping = MAP_FAILED;
  size_t mappingSize = 0;
  std::string entry;
  std::vector<TensorSpec> inputs, outputs, weights;
  const unsigned char *weightBase = nullptr;
  uint64_t weightSize = 0;
  std::unique_ptr<Executor> executor;

  ~moe_session() {
    executor.reset();
    if (mapping != MAP_FAILED)
      munmap(mapping, mappingSize);
  }
};

//===----------------------------------------------------------------------===//
// Status and dtypes
//===----------------------------------------------------------------------===//

extern "C" moe_status_code_t moe_status_code(const moe_status *status) {
  return status ? status->code : MOE_OK;
}

extern "C" const char *moe_status_message(const moe_status *status) {
  return status ? status->message.c_str() : "";
}

extern "C" void moe_status_release(moe_status *status) { delete status; }

namespace {
/// A dtype argument as a raw integer: C callers may pass any int, and loading
/// an out-of-range value as the C++ enum is undefined.
unsigned rawDType(const moe_dtype_t &dtype) {
  unsigned raw = 0;
  std::memcpy(&raw, &dtype, sizeof(raw) < sizeof(dtype) ? sizeof(raw)
                                                        : sizeof(dtype));
  return raw;
}
} // namespace

extern "C" size_t moe_dtype_size(moe_dtype_t dtype) {
  unsigned raw = rawDType(dtype);
  return raw < kNumDTypes ? kDTypes[raw].size : 0;
}

extern "C" const char *moe_dtype_name(moe_dtype_t dtype) {
  unsigned raw = rawDType(dtype);
  return raw < kNumDTypes ? kDTypes[raw].name : "?";
}

//===----------------------------------------------------------------------===//
// Tensors
//===----------------------------------------------------------------------===//

namespace {
/// Element count of `dims`, or false on a negative dim or overflow.
bool elementCount(const int64_t *dims, size_t rank, size_t elementSize,
                  size_t &count) {
  size_t n = 1;
  for (size_t i = 0; i < rank; ++i) {
    if (dims[i] < 0)
      return false;
    size_t d = static_cast<size_t>(dims[i]);
    if (d != 0 && n > SIZE_MAX / d)
      return false;
    n *= d;
  }
  if (elementSize && n > SIZE_MAX / elementSize)
    return false;
  count = n;
  return true;
}
} // namespace

extern "C" moe_status_t moe_tensor_create(moe_dtype_t dtype, size_t rank,
                                          const int64_t *dims,
                                          const void *data,
                                          moe_tensor **out) {
  if (!out)
    return makeStatus(MOE_INVALID_ARGUMENT, "moe_tensor_create: out is null");
  *out = nullptr;
  size_t esize = moe_dtype_size(dtype);
  if (!esize)
    return makeStatus(MOE_INVALID_ARGUMENT, "unknown dtype %u",
                      rawDType(dtype));
  if (rank && !dims)
    return makeStatus(MOE_INVALID_ARGUMENT, "dims is null for rank %zu",
                      rank);
  size_t count;
  if (!elementCount(dims, rank, esize, count))
    return makeStatus(MOE_INVALID_ARGUMENT,
                      "negative dimension or size overflow");
  auto *t = new (std::nothrow) moe_tensor{dtype, {}, count, {nullptr, std::free}};
  if (!t)
    return makeStatus(MOE_RESOURCE_EXHAUSTED, "out of memory");
  t->dims.assign(dims, dims + rank);
  size_t bytes = count * esize;
  // 64-byte aligned; at least one byte so that the pointer is never null.
  size_t alloc = ((bytes ? bytes : 1) + 63) / 64 * 64;
  t->data.reset(static_cast<unsigned char *>(std::aligned_alloc(64, alloc)));
  if (!t->data) {
    delete t;
    return makeStatus(MOE_RESOURCE_EXHAUSTED, "cannot allocate %zu bytes",
                      bytes);
  }
  if (data)
    std::memcpy(t->data.get(), data, bytes);
  else
    std::memset(t->data.get(), 0, bytes);
  *out = t;
  return nullptr;
}

extern "C" void moe_tensor_release(moe_tensor *tensor) { delete tensor; }
extern "C" moe_dtype_t moe_tensor_dtype(const moe_tensor *t) {
  return t ? t->dtype : MOE_DTYPE_F32;
}
extern "C" size_t moe_tensor_rank(const moe_tensor *t) {
  return t ? t->dims.size() : 0;
}
extern "C" const int64_t *moe_tensor_dims(const moe_tensor *t) {
  return t ? t->dims.data() : nullptr;
}
extern "C" size_t moe_tensor_element_count(const moe_tensor *t) {
  return t ? t->count : 0;
}
extern "C" size_t moe_tensor_byte_size(const moe_tensor *t) {
  return t ? t->count * moe_dtype_size(t->dtype) : 0;
}
extern "C" void *moe_tensor_data(moe_tensor *t) {
  return t ? t->data.get() : nullptr;
}

//===----------------------------------------------------------------------===//
// Instance and session
//===----------------------------------------------------------------------===//

extern "C" moe_status_t moe_instance_create(moe_instance **out) {
  if (!out)
    return makeStatus(MOE_INVALID_ARGUMENT, "moe_instance_create: out is null");
  *out = new (std::nothrow) moe_instance;
  return *out ? nullptr : makeStatus(MOE_RESOURCE_EXHAUSTED, "out of memory");
}

extern "C" void moe_instance_release(moe_instance *instance) {
  delete instance;
}

namespace {

/// Set by test_hooks::setCpuFeatureQuery; null: the CPU's own answer.
std::atomic<moe::test_hooks::CpuFeatureQuery> gCpuFeatureQuery{nullptr};

/// Whether this CPU has `feature` (1), lacks it (0), or the runtime cannot
/// tell (-1). __builtin_cpu_supports needs literal names: the features are
/// those of MOE_CHECKABLE_CPU_FEATURES (artifact_format.h).
int cpuHas(const std::string &f) {
  if (moe::test_hooks::CpuFeatureQuery query =
          gCpuFeatureQuery.load(std::memory_order_relaxed))
    return query(f.c_str());
#if defined(__x86_64__)
  __builtin_cpu_init();
#define MOE_CPU_FEATURE_CHECK(name)                                            \
  if (f == name)                                                               \
    return __builtin_cpu_supports(name) ? 1 : 0;
  MOE_CHECKABLE_CPU_FEATURES(MOE_CPU_FEATURE_CHECK)
#undef MOE_CPU_FEATURE_CHECK
#endif
  return -1;
}

} // namespace

extern "C" moe_status_t moe_session_create(moe_instance *instance,
                                           const char *path,
                                           moe_session **out) {
  if (!out)
    return makeStatus(MOE_INVALID_ARGUMENT, "moe_session_create: out is null");
  *out = nullptr;
  if (!instance || !path)
    return makeStatus(MOE_INVALID_ARGUMENT,
                      "moe_session_create: null instance or path");
  std::unique_ptr<moe_session> s(new (std::nothrow) moe_session);
  if (!s)
    return makeStatus(MOE_RESOURCE_EXHAUSTED, "out of memory");
  s->instance = instance;

  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
  // writer before fstat could tell that it is no regular file.
  int fd = ::open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return makeStatus(errno == ENOENT ? MOE_NOT_FOUND : MOE_INVALID_ARGUMENT,
                      "cannot open '%s': %s", path, std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return makeStatus(MOE_INVALID_ARGUMENT, "'%s' is not a regular file",
                      path);
  }
  size_t size = static_cast<size_t>(st.st_size);
  if (size < sizeof(moe::artifact::Header)) {
    ::close(fd);
    return makeStatus(MOE_DATA_LOSS,
                      "'%s' is truncated: %zu bytes, smaller than a header",
                      path, size);
  }
  void *map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED)
    return makeStatus(MOE_INTERNAL, "cannot map '%s': %s", path,
                      std::strerror(errno));
  s->mapping = map;
  s->mappingSize = size;

  moe::artifact::Contents contents;
  moe::artifact::Result parsed = moe::artifact::parse(
      static_cast<const unsigned char *>(map), size, path, contents);
  if (!parsed.ok())
    return makeStatus(parsed.code, "%s", parsed.message.c_str());
  moe::artifact::Signature &sig = contents.signature;
  // CPU features the code was compiled for: refuse to load code this CPU
  // cannot run rather than fault on its first instruction.
  for (const std::string &feature : sig.requiredFeatures) {
    int has = cpuHas(feature);
    if (has < 0)
      return makeStatus(MOE_UNIMPLEMENTED,
                        "the code needs CPU feature '%s', which this runtime "
                        "cannot check",
                        feature.c_str());
    if (has == 0)
      return makeStatus(MOE_UNIMPLEMENTED,
                        "this CPU lacks '%s', which the artifact's code was "
                        "compiled for (recompile with moe-compile "
                        "--march=x86-64-v3 or lower)",
                        feature.c_str());
  }
  s->entry = std::move(sig.entry);
  s->inputs = std::move(sig.inputs);
  s->outputs = std::move(sig.outputs);
  s->weights = std::move(sig.weights);
  s->weightBase = contents.weights;
  s->weightSize = contents.weightsSize;
  if (moe_status_t st3 =
          CpuExecutor::create(contents.code, contents.codeSize, s->entry,
                              contents.signatureDigest, s->executor))
    return st3;
  *out = s.release();
  return nullptr;
}

extern "C" void moe_session_release(moe_session *session) { delete session; }

void moe::test_hooks::setCpuFeatureQuery(CpuFeatureQuery query) {
  gCpuFeatureQuery.store(query, std::memory_order_relaxed);
}

void moe::test_hooks::setForceFileStaging(bool force) {
  gForceFileStaging.store(force, std::memory_order_relaxed);
}

namespace {
const TensorSpec *specAt(const std::vector<TensorSpec> &v, size_t i) {
  return i < v.size() ? &v[i] : nullptr;
}
} // namespace

#define MOE_SPEC_ACCESSORS(KIND, LIST)                                         \
  extern "C" size_t moe_session_##KIND##_count(const moe_session *s) {         \
    return s ? s->LIST.size() : 0;                                             \
  }                                                                            \
  extern "C" const char *moe_session_##KIND##_name(const moe_session *s,       \
                                                   size_t i) {                 \
    const TensorSpec *t = s ? specAt(s->LIST, i) : nullptr;                    \
    return t ? t->name.c_str() : "";                                           \
  }                                                                            \
  extern "C" moe_dtype_t moe_session_##KIND##_dtype(const moe_session *s,      \
                                                    size_t i) {                \
    const TensorSpec *t = s ? specAt(s->LIST, i) : nullptr;                    \
    return t ? t->dtype : MOE_DTYPE_F32;                                       \
  }                                                                            \
  extern "C" size_t moe_session_##KIND##_rank(const moe_session *s,            \
                                              size_t i) {                      \
    const TensorSpec *t = s ? specAt(s->LIST, i) : nullptr;                    \
    return t ? t->dims.size() : 0;                                             \
  }                                                                            \
  extern "C" int64_t moe_session_##KIND##_dim(const moe_session *s, size_t i,  \
                                              size_t d) {                      \
    const TensorSpec *t = s ? specAt(s->LIST, i) : nullptr;                    \
    return t && d < t->dims.size() ? t->dims[d] : -1;                          \
  }                                                                            \
  extern "C" const char *moe_session_##KIND##_dim_name(const moe_session *s,   \
                                                       size_t i, size_t d) {   \
    const TensorSpec *t = s ? specAt(s->LIST, i) : nullptr;                    \
    return t && d < t->symbols.size() ? t->symbols[d].c_str() : "";            \
  }

MOE_SPEC_ACCESSORS(input, inputs)
MOE_SPEC_ACCESSORS(output, outputs)

//===----------------------------------------------------------------------===//
// Running
//===----------------------------------------------------------------------===//

namespace {
/// Checks the result descriptor `w` the code returned for `o` before
/// anything is read through it: dims non-negative and equal to the
/// signature's static ones, every element's offset within int64.
moe_status_t checkResult(const TensorSpec &o, const int64_t *w) {
  size_t rank = o.dims.size();
  const int64_t *dims = w + 3, *strides = w + 3 + rank;
  const char *name = o.name.c_str();
  for (size_t d = 0; d < rank; ++d) {
    if (dims[d] < 0 || (o.dims[d] >= 0 && dims[d] != o.dims[d]))
      return makeStatus(MOE_INTERNAL,
                        "the code returned output '%s' with dim %zu = %lld, "
                        "but the signature says %s%lld",
                        name, d, (long long)dims[d],
                        o.dims[d] >= 0 ? "" : "a size >= ",
                        (long long)(o.dims[d] >= 0 ? o.dims[d] : 0));
  }
  size_t count;
  if (!elementCount(dims, rank, moe_dtype_size(o.dtype), count))
    return makeStatus(MOE_INTERNAL,
                      "the code returned output '%s' with more elements "
                      "than memory can hold",
                      name);
  if (count == 0)
    return nullptr;
  void *aligned;
  std::memcpy(&aligned, &w[1], sizeof(void *));
  // The lowest and highest element offsets, in elements then bytes.
  int64_t lo = w[2], hi = w[2];
  bool overflow = false;
  for (size_t d = 0; d < rank; ++d) {
    int64_t span;
    overflow |= __builtin_mul_overflow(strides[d], dims[d] - 1, &span);
    overflow |= __builtin_add_overflow(span < 0 ? lo : hi, span,
                                       span < 0 ? &lo : &hi);
  }
  int64_t esize = static_cast<int64_t>(moe_dtype_size(o.dtype));
  overflow |= __builtin_mul_overflow(lo, esize, &lo) ||
              __builtin_mul_overflow(hi, esize, &hi);
  if (!aligned || overflow)
    return makeStatus(MOE_INTERNAL,
                      "the code returned output '%s' with a %s", name,
                      aligned ? "layout whose offsets overflow"
                              : "null data pointer");
  return nullptr;
}
} // namespace

extern "C" moe_status_t moe_session_run(moe_session *s, size_t numInputs,
                                        const char *const *names,
                                        const moe_tensor *const *inputs,
                                        size_t numOutputs,
                                        moe_tensor **outputs) {
  if (!s)
    return makeStatus(MOE_INVALID_ARGUMENT, "moe_session_run: session is null");
  if (numInputs && (!names || !inputs))
    return makeStatus(MOE_INVALID_ARGUMENT,
                      "moe_session_run: names or inputs is null");
  if (numOutputs != s->outputs.size() || (numOutputs && !outputs))
    return makeStatus(MOE_INVALID_ARGUMENT,
                      "moe_session_run: the model has %zu outputs, %zu asked",
                      s->outputs.size(), numOutputs);
  if (numInputs != s->inputs.size())
    return makeStatus(MOE_INVALID_ARGUMENT,
                      "the model takes %zu inputs, %zu given",
                      s->inputs.size(), numInputs);

  // Match inputs by name and validate them.
  std::vector<const moe_tensor *> ordered(s->inputs.size(), nullptr);
  std::map<std::string, int64_t> symbols;
  for (size_t i = 0; i < numInputs; ++i) {
    if (!names[i] || !inputs[i])
      return makeStatus(MOE_INVALID_ARGUMENT, "input %zu is null", i);
    auto it = std::find_if(s->inputs.begin(), s->inputs.end(),
                           [&](const TensorSpec &t) { return t.name == names[i]; });
    if (it == s->inputs.end())
      return makeStatus(MOE_INVALID_ARGUMENT, "the model has no input '%s'",
                        names[i]);
    size_t at = static_cast<size_t>(it - s->inputs.begin());
    if (ordered[at])
      return makeStatus(MOE_INVALID_ARGUMENT, "input '%s' is given twice",
                        names[i]);
    const moe_tensor *t = inputs[i];
    const TensorSpec &spec = *it;
    if (t->dtype != spec.dtype)
      return makeStatus(MOE_INVALID_ARGUMENT,
                        "input '%s' must be %s, got %s", names[i],
                        moe_dtype_name(spec.dtype), moe_dtype_name(t->dtype));
    if (t->dims.size() != spec.dims.size())
      return makeStatus(MOE_INVALID_ARGUMENT,
                        "input '%s' must have rank %zu, got %zu", names[i],
                        spec.dims.size(), t->dims.size());
    for (size_t d = 0; d < spec.dims.size(); ++d) {
      if (spec.dims[d] >= 0 && spec.dims[d] != t->dims[d])
        return makeStatus(MOE_INVALID_ARGUMENT,
                          "input '%s' dim %zu must be %lld, got %lld",
                          names[i], d, (long long)spec.dims[d],
                          (long long)t->dims[d]);
      if (spec.dims[d] < 0 && t->dims[d] > MOE_MAX_SYMBOLIC_DIM)
        return makeStatus(MOE_INVALID_ARGUMENT,
                          "input '%s' dim %zu ('%s') is %lld, above the "
                          "limit of %lld for symbolic dims "
                          "(MOE_MAX_SYMBOLIC_DIM)",
                          names[i], d,
                          spec.symbols[d].empty() ? "?"
                                                  : spec.symbols[d].c_str(),
                          (long long)t->dims[d],
                          (long long)MOE_MAX_SYMBOLIC_DIM);
      if (spec.dims[d] < 0 && !spec.symbols[d].empty()) {
        auto [sym, inserted] = symbols.emplace(spec.symbols[d], t->dims[d]);
        if (!inserted && sym->second != t->dims[d])
          return makeStatus(MOE_INVALID_ARGUMENT,
                            "input '%s' dim %zu ('%s') is %lld, but '%s' "
                            "was %lld in an earlier input",
                            names[i], d, spec.symbols[d].c_str(),
                            (long long)t->dims[d], spec.symbols[d].c_str(),
                            (long long)sym->second);
      }
    }
    // Strides and byte offsets of the descriptor must fit int64 (a zero
    // dim makes the tensor empty, not its strides small).
    uint64_t extent = moe_dtype_size(t->dtype);
    for (int64_t dim : t->dims) {
      uint64_t d = dim > 1 ? static_cast<uint64_t>(dim) : 1;
      if (extent > static_cast<uint64_t>(INT64_MAX) / d)
        return makeStatus(MOE_INVALID_ARGUMENT,
                          "input '%s' is too large: its strides overflow",
                          names[i]);
      extent *= d;
    }
    ordered[at] = t;
  }

  // Descriptors: results first, then inputs, then weights.
  size_t resultWords = 0;
  for (const TensorSpec &o : s->outputs)
    resultWords += descriptorWords(o.dims.size());
  std::vector<int64_t> results(std::max<size_t>(resultWords, 1), 0);
  std::vector<std::vector<int64_t>> argWords;
  std::vector<void *> packed;
  packed.push_back(results.data());
  for (size_t i = 0; i < ordered.size(); ++i) {
    argWords.emplace_back(descriptorWords(ordered[i]->dims.size()));
    fillDescriptor(argWords.back().data(), ordered[i]->data.get(),
                   ordered[i]->dims);
  }
  for (const TensorSpec &w : s->weights) {
    argWords.emplace_back(descriptorWords(w.dims.size()));
    fillDescriptor(argWords.back().data(), s->weightBase + w.offset, w.dims);
  }
  for (std::vector<int64_t> &words : argWords)
    packed.push_back(words.data());

  tReportedError = 0;
  if (moe_status_t st = s->executor->run(packed.data()))
    return st;
  int32_t reported = tReportedError;
  // A data error the code reported comes first: its result descriptors are
  // not checked or read (only the buffers they hold are freed), so that the
  // caller gets the data error, not a consequence of it.
  moe_status_t failure = nullptr;
  if (reported)
    failure = makeStatus(
        MOE_INVALID_ARGUMENT, "%s",
        reported == 1
            ? "an expert id outside [0, E) reached moe.dispatch"
        : reported == 2
            ? "an index is out of range in a gather (for an embedding: a "
              "token id outside the vocabulary)"
        : reported == 3
            ? "a dynamic dimension has a size the model cannot take "
              "(broadcast operands neither equal nor 1, reshape sizes that do "
              "not match the element count, a batch that is not a multiple "
              "of the group size, or a size other than the declared one)"
            : "the model reported a data error");

  // Copy the results out; free the buffers the code allocated for them.
  auto inside = [&](const void *p) {
    auto *c = static_cast<const unsigned char *>(p);
    for (const moe_tensor *t : ordered) {
      const unsigned char *b = t->data.get();
      if (c >= b && c < b + std::max<size_t>(moe_tensor_byte_size(t), 1))
        return true;
    }
    return c >= s->weightBase && c < s->weightBase + s->weightSize;
  };
  std::vector<moe_tensor *> made;
  std::set<void *> toFree;
  size_t at = 0;
  for (const TensorSpec &o : s->outputs) {
    size_t rank = o.dims.size();
    const int64_t *w = &results[at];
    at += descriptorWords(rank);
    void *allocated, *aligned;
    std::memcpy(&allocated, &w[0], sizeof(void *));
    std::memcpy(&aligned, &w[1], sizeof(void *));
    std::vector<int64_t> dims(w + 3, w + 3 + rank);
    const int64_t *strides = w + 3 + rank;
    moe_tensor *t = nullptr;
    if (!failure)
      failure = checkResult(o, w);
    if (!failure)
      failure = moe_tensor_create(o.dtype, rank, dims.data(), nullptr, &t);
    if (t) {
      // Gather through the strides (results may be views). The offset is
      // summed in elements in checkResult's order, from the descriptor's
      // offset, and scaled to bytes last: checkResult bounded every partial
      // sum and the scaled extremes, so nothing here overflows. The address
      // is computed as the code's own is, modulo 2^64 (an offset near
      // +-2^63 bytes may wrap around the address space to valid memory).
      int64_t esize = static_cast<int64_t>(moe_dtype_size(o.dtype));
      auto base = reinterpret_cast<uintptr_t>(aligned);
      std::vector<int64_t> index(rank, 0);
      for (size_t n = 0; n < t->count; ++n) {
        int64_t off = w[2];
        for (size_t d = 0; d < rank; ++d)
          off += index[d] * strides[d];
        uintptr_t src = base + static_cast<uintptr_t>(off * esize);
        std::memcpy(t->data.get() + n * static_cast<size_t>(esize),
                    reinterpret_cast<const void *>(src),
                    static_cast<size_t>(esize));
        for (size_t d = rank; d-- > 0;) {
          if (++index[d] < dims[d])
            break;
          index[d] = 0;
        }
      }
      made.push_back(t);
    }
    // Constants are returned as views of the code's globals: MLIR marks
    // them with the allocated pointer 0xdeadbeef; their data lies in the code.
    bool global = allocated == reinterpret_cast<void *>(0xdeadbeef) ||
                  s->executor->ownsAddress(aligned);
    if (allocated && !global && !inside(allocated) &&
        !s->executor->ownsAddress(allocated))
      toFree.insert(allocated);
  }
  for (void *p : toFree)
    std::free(p);
  if (failure) {
    for (moe_tensor *t : made)
      moe_tensor_release(t);
    return failure;
  }
  for (size_t i = 0; i < made.size(); ++i)
    outputs[i] = made[i];
  return nullptr;
}

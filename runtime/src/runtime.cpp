//===- runtime.cpp - the moe-mlir runtime ----------------------------------===//
//
// Artifact loading (mmap, format and checksum checks), the signature, input
// validation and the CPU executor (the code section staged in a private file
// and loaded with dlopen, called through its packed entry). Everything that can fail returns
// a status; no exception leaves this file.
//
//===----------------------------------------------------------------------===//

#include "moe_runtime.h"

#include "moe/artifact_format.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <set>
#include <sstream>
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

bool parseDType(const std::string &s, moe_dtype_t &out) {
  for (size_t i = 0; i < kNumDTypes; ++i)
    if (s == kDTypes[i].name) {
      out = static_cast<moe_dtype_t>(i);
      return true;
    }
  return false;
}

/// One input, output or weight of the signature.
struct TensorSpec {
  std::string name;
  moe_dtype_t dtype = MOE_DTYPE_F32;
  std::vector<int64_t> dims;         // -1: symbolic
  std::vector<std::string> symbols;  // "" for static dims
  uint64_t offset = 0, bytes = 0;    // weights only
};

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

class CpuExecutor final : public Executor {
public:
  static moe_status_t create(const unsigned char *code, size_t size,
                             const std::string &entry,
                             std::unique_ptr<Executor> &out) {
    // dlopen needs a path. Each load gets a unique one (a mkstemp file,
    // unlinked once loaded): glibc matches loaded objects by name, so a
    // reused /proc/self/fd/N could hand back another session's code.
    const char *tmp = std::getenv("TMPDIR");
    std::string path = std::string(tmp && *tmp ? tmp : "/tmp") +
                       "/moe-code-XXXXXX";
    int fd = mkstemp(&path[0]);
    if (fd < 0)
      return makeStatus(MOE_INTERNAL, "cannot stage the code in '%s': %s",
                        path.c_str(), std::strerror(errno));
    size_t written = 0;
    while (written < size) {
      ssize_t n = ::write(fd, code + written, size - written);
      if (n <= 0) {
        ::close(fd);
        ::unlink(path.c_str());
        return makeStatus(MOE_INTERNAL, "cannot stage the code: %s",
                          std::strerror(errno));
      }
      written += static_cast<size_t>(n);
    }
    ::close(fd);
    void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    ::unlink(path.c_str());
    if (!handle) {
      const char *err = dlerror();
      return makeStatus(MOE_DATA_LOSS, "cannot load the code section: %s",
                        err ? err : "unknown error");
    }
    void *sym = dlsym(handle, entry.c_str());
    if (!sym) {
      dlclose(handle);
      return makeStatus(MOE_DATA_LOSS,
                        "the code section has no entry symbol '%s'",
                        entry.c_str());
    }
    auto exec = std::unique_ptr<CpuExecutor>(new (std::nothrow) CpuExecutor);
    if (!exec) {
      dlclose(handle);
      return makeStatus(MOE_RESOURCE_EXHAUSTED, "out of memory");
    }
    exec->handle = handle;
    exec->entry = reinterpret_cast<void (*)(void **)>(sym);
    Dl_info info;
    if (dladdr(sym, &info))
      exec->base = info.dli_fbase;
    out = std::move(exec);
    return nullptr;
  }

  ~CpuExecutor() override {
    if (handle)
      dlclose(handle);
  }

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

std::string decodeName(const std::string &s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out.push_back(static_cast<char>(std::strtol(s.substr(i + 1, 2).c_str(),
                                                  nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

/// Parses "<dtype> <rank> <dim>..." of a record into `spec`.
bool parseShape(std::istringstream &in, TensorSpec &spec, bool allowSymbols) {
  std::string dtype;
  size_t rank;
  if (!(in >> dtype >> rank) || !parseDType(dtype, spec.dtype) || rank > 64)
    return false;
  for (size_t d = 0; d < rank; ++d) {
    std::string dim;
    if (!(in >> dim))
      return false;
    if (dim[0] == '?') {
      if (!allowSymbols)
        return false;
      spec.dims.push_back(-1);
      spec.symbols.push_back(dim.substr(1));
    } else {
      char *end = nullptr;
      long long v = std::strtoll(dim.c_str(), &end, 10);
      if (*end || v < 0)
        return false;
      spec.dims.push_back(v);
      spec.symbols.emplace_back();
    }
  }
  return true;
}

/// Whether this CPU has `feature` (1), lacks it (0), or the runtime cannot
/// tell (-1). __builtin_cpu_supports needs literal names.
int cpuHas(const std::string &f) {
#if defined(__x86_64__)
  __builtin_cpu_init();
#define MOE_FEATURE(name)                                                      \
  if (f == name)                                                               \
    return __builtin_cpu_supports(name) ? 1 : 0;
  MOE_FEATURE("sse4.2")
  MOE_FEATURE("avx")
  MOE_FEATURE("avx2")
  MOE_FEATURE("fma")
  MOE_FEATURE("bmi")
  MOE_FEATURE("bmi2")
  MOE_FEATURE("f16c")
  MOE_FEATURE("avx512f")
  MOE_FEATURE("avx512bw")
  MOE_FEATURE("avx512dq")
  MOE_FEATURE("avx512vl")
  MOE_FEATURE("avx512cd")
#undef MOE_FEATURE
#endif
  return -1;
}

moe_status_t parseSignature(const char *text, size_t size, moe_session &s) {
  std::istringstream lines(std::string(text, size));
  std::string line;
  size_t lineNo = 0;
  while (std::getline(lines, line)) {
    ++lineNo;
    if (line.empty())
      continue;
    std::istringstream in(line);
    std::string kind;
    in >> kind;
    bool ok = true;
    if (kind == "entry") {
      ok = static_cast<bool>(in >> s.entry);
    } else if (kind == "requires") {
      // CPU features the code was compiled for: refuse to load code this
      // CPU cannot run rather than fault on its first instruction.
      std::string feature;
      while (in >> feature) {
        int has = cpuHas(feature);
        if (has < 0)
          return makeStatus(MOE_UNIMPLEMENTED,
                            "the code needs CPU feature '%s', which this "
                            "runtime cannot check",
                            feature.c_str());
        if (has == 0)
          return makeStatus(MOE_UNIMPLEMENTED,
                            "this CPU lacks '%s', which the artifact's code "
                            "was compiled for (recompile with "
                            "moe-compile --march=x86-64-v3 or lower)",
                            feature.c_str());
      }
    } else if (kind == "input" || kind == "output") {
      TensorSpec spec;
      std::string name;
      ok = (in >> name) && parseShape(in, spec, true);
      spec.name = decodeName(name);
      (kind == "input" ? s.inputs : s.outputs).push_back(spec);
    } else if (kind == "weight") {
      TensorSpec spec;
      ok = (in >> spec.offset >> spec.bytes) && parseShape(in, spec, false);
      s.weights.push_back(spec);
    } else {
      ok = false;
    }
    if (!ok)
      return makeStatus(MOE_DATA_LOSS, "corrupt signature at line %zu: '%s'",
                        lineNo, line.c_str());
  }
  if (s.entry.empty())
    return makeStatus(MOE_DATA_LOSS, "the signature names no entry symbol");
  return nullptr;
}

} // namespace

extern "C" moe_status_t moe_session_create(moe_instance *instance,
                                           const char *path,
                                           moe_session **out) {
  using namespace moe::artifact;
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

  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
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
  if (size < sizeof(Header)) {
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
  const auto *bytes = static_cast<const unsigned char *>(map);

  Header header;
  std::memcpy(&header, bytes, sizeof(header));
  if (std::memcmp(header.magic, kMagic, sizeof(kMagic)) != 0)
    return makeStatus(MOE_DATA_LOSS, "'%s' is not a moe artifact (bad magic)",
                      path);
  if (header.version != kVersion)
    return makeStatus(MOE_UNIMPLEMENTED,
                      "'%s' has artifact format version %u; this runtime "
                      "reads version %u",
                      path, header.version, kVersion);
  if (header.fileSize != size)
    return makeStatus(MOE_DATA_LOSS,
                      "'%s' is %zu bytes but its header says %llu "
                      "(truncated or extended)",
                      path, size, (unsigned long long)header.fileSize);
  if (header.sectionCount > 64 ||
      sizeof(Header) + header.sectionCount * sizeof(SectionEntry) > size)
    return makeStatus(MOE_DATA_LOSS, "'%s' has a corrupt section table", path);
  std::vector<SectionEntry> table(header.sectionCount);
  std::memcpy(table.data(), bytes + sizeof(Header),
              table.size() * sizeof(SectionEntry));
  if (headerChecksum(header, table.data()) != header.checksum)
    return makeStatus(MOE_DATA_LOSS, "'%s': header checksum mismatch", path);

  const unsigned char *signature = nullptr, *code = nullptr;
  size_t signatureSize = 0, codeSize = 0;
  for (const SectionEntry &e : table) {
    if (e.offset > size || e.size > size - e.offset ||
        e.offset % kSectionAlignment != 0)
      return makeStatus(MOE_DATA_LOSS, "'%s': section %u lies outside the file",
                        path, e.kind);
    if (fnv1a(bytes + e.offset, e.size) != e.checksum)
      return makeStatus(MOE_DATA_LOSS, "'%s': checksum mismatch in section %u",
                        path, e.kind);
    switch (static_cast<SectionKind>(e.kind)) {
    case SectionKind::Signature:
      signature = bytes + e.offset;
      signatureSize = e.size;
      break;
    case SectionKind::CpuCode:
      code = bytes + e.offset;
      codeSize = e.size;
      break;
    case SectionKind::Weights:
      s->weightBase = bytes + e.offset;
      s->weightSize = e.size;
      break;
    default: // unknown or device sections: not for this executor
      break;
    }
  }
  if (!signature || !code)
    return makeStatus(MOE_DATA_LOSS, "'%s' lacks its %s section", path,
                      signature ? "CPU code" : "signature");
  if (moe_status_t st2 = parseSignature(
          reinterpret_cast<const char *>(signature), signatureSize, *s))
    return st2;
  for (const TensorSpec &w : s->weights) {
    size_t count;
    if (!elementCount(w.dims.data(), w.dims.size(), moe_dtype_size(w.dtype),
                      count) ||
        count * moe_dtype_size(w.dtype) != w.bytes || w.offset > s->weightSize ||
        w.bytes > s->weightSize - w.offset || w.offset % 64 != 0)
      return makeStatus(MOE_DATA_LOSS, "'%s': corrupt weight record", path);
  }
  if (moe_status_t st3 =
          CpuExecutor::create(code, codeSize, s->entry, s->executor))
    return st3;
  *out = s.release();
  return nullptr;
}

extern "C" void moe_session_release(moe_session *session) { delete session; }

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
  moe_status_t failure = nullptr;
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
      failure = moe_tensor_create(o.dtype, rank, dims.data(), nullptr, &t);
    if (t) {
      // Gather through the strides (results may be views).
      size_t esize = moe_dtype_size(o.dtype);
      const auto *src = static_cast<const unsigned char *>(aligned) +
                        w[2] * static_cast<int64_t>(esize);
      std::vector<int64_t> index(rank, 0);
      for (size_t n = 0; n < t->count; ++n) {
        int64_t off = 0;
        for (size_t d = 0; d < rank; ++d)
          off += index[d] * strides[d];
        std::memcpy(t->data.get() + n * esize, src + off * (int64_t)esize,
                    esize);
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
  if (!failure && reported)
    failure = makeStatus(
        MOE_INVALID_ARGUMENT, "%s",
        reported == 1
            ? "an expert id outside [0, E) reached moe.dispatch"
        : reported == 2
            ? "an index is out of range in a gather (for an embedding: a "
              "token id outside the vocabulary)"
            : "the model reported a data error");
  if (failure) {
    for (moe_tensor *t : made)
      moe_tensor_release(t);
    return failure;
  }
  for (size_t i = 0; i < made.size(); ++i)
    outputs[i] = made[i];
  return nullptr;
}

//===- runtime.cpp - the moe-mlir runtime's C API --------------------------===//
//
// Statuses, tensors (owned or borrowed views), instances, session options
// and sessions: artifact loading (mmap, then the pure parser of
// artifact_reader.cpp, the CPU feature check, the executor of
// executor.cpp), the signature accessors, and moe_session_run's checks of
// the caller's inputs before run.cpp runs the entry. A process-wide
// registry of live sessions and instances lets the API refuse a released
// one instead of touching freed memory. Everything that can fail returns a
// status; no exception leaves this file.
//
//===----------------------------------------------------------------------===//

#include "moe_runtime.h"

#include "moe/artifact_format.h"
#include "moe/artifact_reader.h"
#include "moe/text.h"

#include "executor.h"
#include "run.h"
#include "runtime_internal.h"
#include "test_hooks.h"
#include "thread_pool.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

// AddressSanitizer, by clang's or GCC's test (kept buffers are poisoned).
#if defined(__SANITIZE_ADDRESS__)
#define MOE_KEPT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MOE_KEPT_ASAN 1
#endif
#endif
#ifdef MOE_KEPT_ASAN
#include <sanitizer/asan_interface.h>
#endif

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

using namespace moe::detail;
using moe::artifact::EntryRecord;
using moe::artifact::TensorRecord;

//===----------------------------------------------------------------------===//
// Internals shared with executor.cpp and run.cpp
//===----------------------------------------------------------------------===//

moe_status_t moe::detail::makeStatus(moe_status_code_t code, const char *fmt,
                                     ...) {
  char buf[1024];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, args);
  va_end(args);
  try {
    return new moe_status{code, buf};
  } catch (...) {
    // NULL would mean success: a failure that cannot even allocate its
    // message is reported as this static status.
    return outOfMemoryStatus();
  }
}

moe_status_t moe::detail::outOfMemoryStatus() {
  static moe_status status{MOE_RESOURCE_EXHAUSTED,
                           "out of memory (while reporting another error)"};
  return &status;
}

bool moe::detail::elementCount(const int64_t *dims, size_t rank,
                               size_t elementSize, size_t &count) {
  size_t n = 1;
  for (size_t i = 0; i < rank; ++i) {
    if (dims[i] < 0)
      return false;
    auto d = static_cast<size_t>(dims[i]);
    if (d != 0 && n > SIZE_MAX / d)
      return false;
    n *= d;
  }
  if (elementSize && n > SIZE_MAX / elementSize)
    return false;
  count = n;
  return true;
}

namespace {
/// `size` rounded up to 64 bytes, at least 64; 0 where that overflows.
uint64_t roundedSize(uint64_t size) {
  return size > UINT64_MAX - 63 ? 0 : (size ? size + 63 : 64) / 64 * 64;
}
} // namespace

void *moe::detail::alignedAlloc(uint64_t size) {
  uint64_t rounded = roundedSize(size);
  if (!rounded || rounded > SIZE_MAX)
    return nullptr;
  return std::aligned_alloc(64, static_cast<size_t>(rounded));
}

namespace {

/// Under AddressSanitizer a kept buffer is poisoned until it is handed out
/// again, so that a read through a released tensor's data is still caught.
#ifdef MOE_KEPT_ASAN
#define MOE_KEPT_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define MOE_KEPT_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define MOE_KEPT_POISON(p, n) ((void)(p), (void)(n))
#define MOE_KEPT_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/// Released tensors' buffers kept for the next tensor of the same size,
/// while a session is live. glibc gives a large freed block back to the
/// system (unmapped above its mmap threshold, 32 MB at most; trimmed from
/// the heap's top above its trim threshold), and the next run's writes
/// fault its pages back in, each zeroed by the kernel: a third of the time
/// of a grouped matmul whose output is 40 MB, a sixth of one whose output
/// is 3 MB (docs/performance.md). ONNX Runtime's arena keeps its outputs'
/// memory the same way. Only buffers of at least kKeptMinBytes, at most
/// kKeptMaxBuffers of them and MOE_RUNTIME_KEEP_BYTES bytes in all
/// (default 256 MB; 0: none), the oldest freed first. A size that never
/// comes again (a dynamic shape that changes) stays until pushed out or
/// until the last session's release.
constexpr uint64_t kKeptMinBytes = uint64_t(1) << 20;
constexpr size_t kKeptMaxBuffers = 8;

struct KeptBuffers {
  struct Buffer {
    uint64_t bytes;
    void *data;
  };
  std::mutex mutex;
  Buffer buffers[kKeptMaxBuffers];
  size_t count = 0; // buffers[0, count), the most recently kept last
  uint64_t held = 0;
  uint64_t sessions = 0;

  /// Buffer i, out of the list (unpoisoned).
  void *take(size_t i) {
    void *data = buffers[i].data;
    MOE_KEPT_UNPOISON(data, buffers[i].bytes);
    held -= buffers[i].bytes;
    for (size_t j = i + 1; j < count; ++j)
      buffers[j - 1] = buffers[j];
    --count;
    return data;
  }
  void drop(size_t i) { std::free(take(i)); }
};

/// Never destroyed: tensors may be released after static destructors ran.
KeptBuffers &keptBuffers() {
  static KeptBuffers *k = new KeptBuffers;
  return *k;
}

/// MOE_RUNTIME_KEEP_BYTES, or 256 MB.
uint64_t keptMaxBytes() {
  static const uint64_t max = [] {
    // A decimal byte count, digits only (no sign, space or suffix) and
    // below 2^63; anything else is the default.
    constexpr uint64_t kDefault = uint64_t(256) << 20;
    const char *value = std::getenv("MOE_RUNTIME_KEEP_BYTES");
    if (!value || !*value)
      return kDefault;
    uint64_t v = 0;
    for (const char *c = value; *c; ++c) {
      if (*c < '0' || *c > '9' || v > (UINT64_MAX >> 1) / 10)
        return kDefault;
      v = v * 10 + static_cast<uint64_t>(*c - '0');
    }
    return v;
  }();
  return max;
}

/// A kept buffer of exactly `size` (rounded) bytes, or alignedAlloc's.
void *tensorAlloc(uint64_t size) {
  uint64_t rounded = roundedSize(size);
  if (rounded >= kKeptMinBytes) {
    KeptBuffers &k = keptBuffers();
    std::lock_guard<std::mutex> lock(k.mutex);
    for (size_t i = k.count; i-- > 0;)
      if (k.buffers[i].bytes == rounded)
        return k.take(i);
  }
  return moe::detail::alignedAlloc(size);
}

} // namespace

void moe::detail::releaseTensorData(void *data, uint64_t size) {
  if (!data)
    return;
  uint64_t rounded = roundedSize(size);
  if (rounded >= kKeptMinBytes && rounded <= keptMaxBytes()) {
    KeptBuffers &k = keptBuffers();
    std::lock_guard<std::mutex> lock(k.mutex);
    if (k.sessions > 0) {
      while (k.count > 0 &&
             (k.count == kKeptMaxBuffers || k.held + rounded > keptMaxBytes()))
        k.drop(0);
      MOE_KEPT_POISON(data, rounded);
      k.buffers[k.count++] = {rounded, data};
      k.held += rounded;
      return;
    }
  }
  std::free(data);
}

void moe::detail::keptBuffersSessionOpened() {
  KeptBuffers &k = keptBuffers();
  std::lock_guard<std::mutex> lock(k.mutex);
  ++k.sessions;
}

void moe::detail::keptBuffersSessionClosed() {
  KeptBuffers &k = keptBuffers();
  std::lock_guard<std::mutex> lock(k.mutex);
  if (k.sessions > 0 && --k.sessions == 0)
    while (k.count > 0)
      k.drop(k.count - 1);
}

uint64_t moe::test_hooks::keptBufferBytes() {
  KeptBuffers &k = keptBuffers();
  std::lock_guard<std::mutex> lock(k.mutex);
  return k.held;
}

moe_tensor::~moe_tensor() {
  if (owned)
    moe::detail::releaseTensorData(data,
                                   uint64_t(count) * moe_dtype_size(dtype));
}

moe_tensor *moe::detail::newTensor(moe_dtype_t dtype, const int64_t *dims,
                                   size_t rank, size_t count) {
  auto *t = new (std::nothrow) moe_tensor;
  if (!t)
    return nullptr;
  t->dtype = dtype;
  t->count = count;
  try {
    t->dims.assign(dims, dims + rank);
  } catch (...) {
    delete t;
    return nullptr;
  }
  // 64-byte aligned; at least 64 bytes, so that the pointer is never null.
  t->data = static_cast<unsigned char *>(
      tensorAlloc(uint64_t(count) * moe_dtype_size(dtype)));
  if (!t->data) {
    delete t;
    return nullptr;
  }
  if (poisonFreshMemory())
    std::memset(t->data, 0xFF, uint64_t(count) * moe_dtype_size(dtype));
  return t;
}

bool moe::detail::poisonFreshMemory() {
  static const bool poison = [] {
    const char *value = std::getenv("MOE_RUNTIME_POISON");
    return value && *value && std::strcmp(value, "0") != 0;
  }();
  return poison;
}

namespace {

struct DTypeInfo {
  const char *name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {"f32", 4}, {"f64", 8},  {"f16", 2},  {"bf16", 2}, {"i64", 8},
    {"i32", 4}, {"i8", 1},   {"u8", 1},   {"bool", 1}, {"i16", 2},
    {"u16", 2}, {"u32", 4},  {"u64", 8}};
constexpr size_t kNumDTypes = sizeof(kDTypes) / sizeof(kDTypes[0]);

/// The sessions and instances alive (created and not yet released): the
/// API refuses any other pointer instead of reading freed memory. Never
/// destroyed, so that it outlives sessions released at exit.
struct Registry {
  std::mutex mutex;
  std::unordered_set<const void *> sessions, instances;
};

Registry &registry() {
  static Registry *r = new Registry;
  return *r;
}

bool isLive(const std::unordered_set<const void *> Registry::*set,
            const void *p) {
  if (!p)
    return false;
  Registry &r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return (r.*set).count(p) != 0;
}

/// Adds `p` to the live ones; false when memory cannot be had.
bool addLive(std::unordered_set<const void *> Registry::*set, const void *p) {
  Registry &r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  try {
    (r.*set).insert(p);
    return true;
  } catch (...) {
    return false;
  }
}

/// Removes `p` from the live ones; whether it was there.
bool removeLive(std::unordered_set<const void *> Registry::*set,
                const void *p) {
  if (!p)
    return false;
  Registry &r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return (r.*set).erase(p) != 0;
}

bool isLiveSession(const moe_session *s) {
  return isLive(&Registry::sessions, s);
}

} // namespace

namespace {

/// Zeroed private memory on 2 MB boundaries, advised to be backed by
/// transparent huge pages where the kernel grants them (its THP mode
/// "always" or "madvise"; elsewhere it is 4 KB pages, which work the
/// same, slower). For what the code streams: the weights of a decode step,
/// a generation context's caches.
class PageMemory {
public:
  static constexpr size_t kHugePage = size_t(2) << 20;

  PageMemory() = default;
  PageMemory(const PageMemory &) = delete;
  PageMemory &operator=(const PageMemory &) = delete;
  PageMemory(PageMemory &&o) noexcept
      : data_(std::exchange(o.data_, nullptr)),
        bytes_(std::exchange(o.bytes_, 0)) {}
  PageMemory &operator=(PageMemory &&o) noexcept {
    std::swap(data_, o.data_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  ~PageMemory() {
    if (data_)
      munmap(data_, bytes_);
  }

  /// At least `bytes` zeroed bytes (at least one page); false where the
  /// memory cannot be had.
  bool allocate(size_t bytes) {
    if (bytes > SIZE_MAX - 2 * kHugePage)
      return false;
    size_t size =
        (std::max<size_t>(bytes, 1) + kHugePage - 1) / kHugePage * kHugePage;
    // One huge page more, to start on a 2 MB boundary (huge pages map
    // only aligned ranges); the unaligned ends go back.
    size_t mapped = size + kHugePage;
    void *p = mmap(nullptr, mapped, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
      return false;
    auto base = reinterpret_cast<uintptr_t>(p);
    uintptr_t start = (base + kHugePage - 1) / kHugePage * kHugePage;
    if (start > base)
      munmap(p, start - base);
    if (size_t tail = base + mapped - (start + size))
      munmap(reinterpret_cast<void *>(start + size), tail);
#ifdef MADV_HUGEPAGE
    (void)madvise(reinterpret_cast<void *>(start), size,
                  MADV_HUGEPAGE); // A hint: 4 KB pages work too.
#endif
    if (data_)
      munmap(data_, bytes_);
    data_ = reinterpret_cast<unsigned char *>(start);
    bytes_ = size;
    return true;
  }
  unsigned char *data() const { return data_; }
  float *floats() const { return reinterpret_cast<float *>(data_); }
  /// Makes the memory read-only (false if the kernel refused).
  bool protect() { return mprotect(data_, bytes_, PROT_READ) == 0; }

private:
  unsigned char *data_ = nullptr;
  size_t bytes_ = 0;
};

} // namespace

struct moe_instance {
  int placeholder = 0;
};

struct moe_session_options {
  /// 0: the default (the machine's cores).
  int64_t threads = 0;
  moe_weight_memory_t weightMemory = MOE_WEIGHTS_COPIED;
  bool profile = false;
};

struct moe_session {
  explicit moe_session(unsigned threads) : pool(threads) {}
  ~moe_session() {
    executor.reset();
    if (mapping != MAP_FAILED)
      munmap(mapping, mappingSize);
  }

  moe_instance *instance = nullptr;
  /// The artifact: the file mapped (MOE_WEIGHTS_MAPPED), or `copy`.
  void *mapping = MAP_FAILED;
  size_t mappingSize = 0;
  PageMemory copy;
  moe::artifact::Signature signature;
  /// The entry "main" (moe_session_run and the accessors without an entry
  /// index) and every entry's plan, in signature order.
  const EntryRecord *main = nullptr;
  size_t mainIndex = 0;
  std::vector<EntryPlan> plans;
  /// One pointer per weight record (Executor::prepare).
  std::vector<void *> weights;
  std::unique_ptr<Executor> executor;
  ThreadPool pool;
  ArenaPool arenas;
  /// With moe_session_options_set_profile: the runs' and loops' times, and
  /// the last moe_session_profile's answer (its names and loops).
  std::unique_ptr<Profile> profile;
  std::vector<std::string> profileNames;
  std::vector<moe_profile_loop> profileLoops;
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

extern "C" void moe_status_release(moe_status *status) {
  if (status != moe::detail::outOfMemoryStatus())
    delete status;
}

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
/// The checks moe_tensor_create and moe_tensor_create_view share; the
/// element count in `count`.
moe_status_t checkTensorArgs(const char *function, moe_dtype_t dtype,
                             size_t rank, const int64_t *dims,
                             moe_tensor **out, size_t &count) {
  if (!out)
    return makeStatus(MOE_INVALID_ARGUMENT, "%s: out is null", function);
  *out = nullptr;
  size_t esize = moe_dtype_size(dtype);
  if (!esize)
    return makeStatus(MOE_INVALID_ARGUMENT, "unknown dtype %u",
                      rawDType(dtype));
  if (rank && !dims)
    return makeStatus(MOE_INVALID_ARGUMENT, "dims is null for rank %zu",
                      rank);
  if (!elementCount(dims, rank, esize, count))
    return makeStatus(MOE_INVALID_ARGUMENT,
                      "negative dimension or size overflow");
  return nullptr;
}
} // namespace

extern "C" moe_status_t moe_tensor_create(moe_dtype_t dtype, size_t rank,
                                          const int64_t *dims,
                                          const void *data,
                                          moe_tensor **out) {
  size_t count;
  if (moe_status_t st =
          checkTensorArgs("moe_tensor_create", dtype, rank, dims, out, count))
    return st;
  size_t bytes = count * moe_dtype_size(dtype);
  moe_tensor *t = newTensor(dtype, dims, rank, count);
  if (!t)
    return makeStatus(MOE_RESOURCE_EXHAUSTED, "cannot allocate %zu bytes",
                      bytes);
  if (data)
    std::memcpy(t->data, data, bytes);
  else
    std::memset(t->data, 0, bytes);
  *out = t;
  return nullptr;
}

extern "C" moe_status_t moe_tensor_create_view(moe_dtype_t dtype, size_t rank,
                                               const int64_t *dims, void *data,
                                               moe_tensor **out) {
  size_t count;
  if (moe_status_t st = checkTensorArgs("moe_tensor_create_view", dtype, rank,
                                        dims, out, count))
    return st;
  size_t esize = moe_dtype_size(dtype);
  if (!data && count)
    return makeStatus(MOE_INVALID_ARGUMENT,
                      "moe_tensor_create_view: data is null for %zu elements",
                      count);
  if (reinterpret_cast<uintptr_t>(data) % esize != 0)
    return makeStatus(MOE_INVALID_ARGUMENT,
                      "moe_tensor_create_view: data is not aligned for %s "
                      "(%zu bytes)",
                      moe_dtype_name(dtype), esize);
  auto *t = new (std::nothrow) moe_tensor;
  if (!t)
    return makeStatus(MOE_RESOURCE_EXHAUSTED, "out of memory");
  t->dtype = dtype;
  t->count = count;
  t->data = static_cast<unsigned char *>(data);
  t->owned = false;
  try {
    t->dims.assign(dims, dims + rank);
  } catch (...) {
    delete t;
    return makeStatus(MOE_RESOURCE_EXHAUSTED, "out of memory");
  }
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
  return t ? t->data : nullptr;
}

//===----------------------------------------------------------------------===//
// Instances and options
//===----------------------------------------------------------------------===//

extern "C" moe_status_t moe_instance_create(moe_instance **out) {
  if (!out)
    return makeStatus(MOE_INVALID_ARGUMENT, "moe_instance_create: out is null");
  *out = nullptr;
  auto *instance = new (std::nothrow) moe_instance;
  if (!instance || !addLive(&Registry::instances, instance)) {
    delete instance;
    return makeStatus(MOE_RESOURCE_EXHAUSTED, "out of memory");
  }
  *out = instance;
  return nullptr;
}

extern "C" void moe_instance_release(moe_instance *instance) {
  if (removeLive(&Registry::instances, instance))
    delete instance;
}

extern "C" moe_status_t
moe_session_options_create(moe_session_options **out) {
  if (!out)
    return makeStatus(MOE_INVALID_ARGUMENT,
                      "moe_session_options_create: out is null");
  *out = new (std::nothrow) moe_session_options;
  return *out ? nullptr : makeStatus(MOE_RESOURCE_EXHAUSTED, "out of memory");
}

extern "C" void moe_session_options_release(moe_session_options *options) {
  delete options;
}

extern "C" moe_status_t
moe_session_options_set_threads(moe_session_options *options,
                                int64_t threads) {
  if (!options)
    return makeStatus(MOE_INVALID_ARGUMENT,
                      "moe_session_options_set_threads: options is null");
  if (threads < 1 || threads > MOE_MAX_THREADS)
    return makeStatus(MOE_INVALID_ARGUMENT,
                      "the thread count must be from 1 to %d "
                      "(MOE_MAX_THREADS), got %lld",
                      MOE_MAX_THREADS, static_cast<long long>(threads));
  options->threads = threads;
  return nullptr;
}

extern "C" moe_status_t
moe_session_options_set_weight_memory(moe_session_options *options,
                                      int memory) {
  if (!options)
    return makeStatus(MOE_INVALID_ARGUMENT,
                      "moe_session_options_set_weight_memory: options is "
                      "null");
  if (memory != MOE_WEIGHTS_COPIED && memory != MOE_WEIGHTS_MAPPED)
    return makeStatus(MOE_INVALID_ARGUMENT,
                      "the weight memory must be MOE_WEIGHTS_COPIED (0) or "
                      "MOE_WEIGHTS_MAPPED (1), got %d",
                      memory);
  options->weightMemory = static_cast<moe_weight_memory_t>(memory);
  return nullptr;
}

extern "C" moe_status_t
moe_session_options_set_profile(moe_session_options *options, int enabled) {
  if (!options)
    return makeStatus(MOE_INVALID_ARGUMENT,
                      "moe_session_options_set_profile: options is null");
  if (enabled != 0 && enabled != 1)
    return makeStatus(MOE_INVALID_ARGUMENT,
                      "profiling must be 0 (off) or 1 (on), got %d", enabled);
  options->profile = enabled == 1;
  return nullptr;
}

//===----------------------------------------------------------------------===//
// Sessions
//===----------------------------------------------------------------------===//

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

/// The threads of a session without options: the machine's cores.
unsigned defaultThreads() {
  unsigned n = std::thread::hardware_concurrency();
  return std::min<unsigned>(std::max(n, 1u), MOE_MAX_THREADS);
}

/// Reads `size` bytes of `fd` into `s.copy` (MOE_WEIGHTS_COPIED).
moe_status_t readArtifact(moe_session &s, int fd, size_t size,
                          const char *path) {
  if (!s.copy.allocate(size))
    return makeStatus(MOE_RESOURCE_EXHAUSTED,
                      "out of memory for the %zu bytes of '%s'", size, path);
  for (size_t done = 0; done < size;) {
    ssize_t n = ::pread(fd, s.copy.data() + done, size - done,
                        static_cast<off_t>(done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return makeStatus(MOE_DATA_LOSS, "cannot read '%s': %s", path,
                        std::strerror(errno));
    if (n == 0)
      return makeStatus(MOE_DATA_LOSS,
                        "'%s' shrank while it was read: %zu of %zu bytes", path,
                        done, size);
    done += static_cast<size_t>(n);
  }
  // Read-only, as a mapping of the file would be: the code never writes
  // its weights.
  if (!s.copy.protect())
    return makeStatus(MOE_INTERNAL, "cannot protect the copy of '%s': %s", path,
                      std::strerror(errno));
  return nullptr;
}

/// Reads (or maps) the artifact at `path` and loads it into `s`
/// (everything but the registration).
moe_status_t loadSession(moe_session &s, const char *path,
                         moe_weight_memory_t memory) {
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
  auto size = static_cast<size_t>(st.st_size);
  if (size < sizeof(moe::artifact::Header)) {
    ::close(fd);
    return makeStatus(MOE_DATA_LOSS,
                      "'%s' is truncated: %zu bytes, smaller than a header",
                      path, size);
  }
  const unsigned char *map;
  if (memory == MOE_WEIGHTS_COPIED) {
    // Blocking reads from here on (O_NONBLOCK was for the open; some
    // network and FUSE file systems would answer EAGAIN).
    int flags = fcntl(fd, F_GETFL);
    if (flags != -1)
      (void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    moe_status_t st = readArtifact(s, fd, size, path);
    ::close(fd);
    if (st)
      return st;
    map = s.copy.data();
  } else {
    void *m = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (m == MAP_FAILED)
      return makeStatus(MOE_INTERNAL, "cannot map '%s': %s", path,
                        std::strerror(errno));
    s.mapping = m;
    s.mappingSize = size;
    map = static_cast<const unsigned char *>(m);
  }

  moe::artifact::Contents contents;
  moe::artifact::Result parsed =
      moe::artifact::parse(map, size, path, contents);
  if (!parsed.ok())
    return makeStatus(parsed.code, "%s", parsed.message.c_str());
  const moe::artifact::Signature &sig = contents.signature;
  if (!sig.states.empty())
    return makeStatus(MOE_UNIMPLEMENTED,
                      "'%s' declares state tensors: state tensors need a "
                      "generation context, which this runtime does not "
                      "provide yet",
                      path);
  size_t mainIndex = sig.entries.size();
  std::string entryNames;
  for (size_t i = 0; i < sig.entries.size(); ++i) {
    if (sig.entries[i].name == "main")
      mainIndex = i;
    entryNames += (i ? ", '" : "'") + moe::printable(sig.entries[i].name, 64) +
                  "'";
  }
  if (mainIndex == sig.entries.size())
    return makeStatus(MOE_UNIMPLEMENTED,
                      "'%s' has no entry 'main' (its entries: %s): every "
                      "artifact needs one",
                      path, entryNames.c_str());
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
  if (moe_status_t st2 = createExecutor(contents, path, s.executor))
    return st2;
  if (moe_status_t st3 = s.executor->prepare(contents, s.weights))
    return st3;
  // A profile names the code's functions: read now, while the artifact is
  // known good and no run holds the profile's lock.
  if (s.profile)
    s.executor->readFunctionNames(contents);
  s.signature = std::move(contents.signature);
  s.main = &s.signature.entries[mainIndex];
  s.mainIndex = mainIndex;
  for (size_t i = 0; i < s.signature.entries.size(); ++i)
    s.plans.push_back(planEntry(s.signature.entries[i], i));
  return nullptr;
}

} // namespace

void moe::test_hooks::setCpuFeatureQuery(CpuFeatureQuery query) {
  gCpuFeatureQuery.store(query, std::memory_order_relaxed);
}

extern "C" moe_status_t
moe_session_create_with_options(moe_instance *instance, const char *path,
                                const moe_session_options *options,
                                moe_session **out) {
  if (!out)
    return makeStatus(MOE_INVALID_ARGUMENT, "moe_session_create: out is null");
  *out = nullptr;
  if (!instance || !path)
    return makeStatus(MOE_INVALID_ARGUMENT,
                      "moe_session_create: null instance or path");
  if (!isLive(&Registry::instances, instance))
    return makeStatus(MOE_INVALID_ARGUMENT,
                      "moe_session_create: instance was released (or is not "
                      "an instance)");
  int64_t threads = options ? options->threads : 0;
  if (threads < 0 || threads > MOE_MAX_THREADS)
    return makeStatus(MOE_INVALID_ARGUMENT,
                      "the thread count must be from 1 to %d "
                      "(MOE_MAX_THREADS), got %lld",
                      MOE_MAX_THREADS, static_cast<long long>(threads));
  std::unique_ptr<moe_session> s(new (std::nothrow) moe_session(
      threads ? static_cast<unsigned>(threads) : defaultThreads()));
  if (!s)
    return makeStatus(MOE_RESOURCE_EXHAUSTED, "out of memory");
  s->instance = instance;
  moe_status_t st;
  try {
    if (options && options->profile)
      s->profile = std::make_unique<Profile>();
    st = loadSession(*s, path,
                     options ? options->weightMemory : MOE_WEIGHTS_COPIED);
  } catch (...) { // std::bad_alloc
    st = makeStatus(MOE_RESOURCE_EXHAUSTED, "out of memory");
  }
  if (st)
    return st;
  if (!addLive(&Registry::sessions, s.get()))
    return makeStatus(MOE_RESOURCE_EXHAUSTED, "out of memory");
  keptBuffersSessionOpened();
  *out = s.release();
  return nullptr;
}

extern "C" moe_status_t moe_session_create(moe_instance *instance,
                                           const char *path,
                                           moe_session **out) {
  return moe_session_create_with_options(instance, path, nullptr, out);
}

extern "C" void moe_session_release(moe_session *session) {
  if (removeLive(&Registry::sessions, session)) {
    delete session;
    keptBuffersSessionClosed();
  }
}

extern "C" size_t moe_session_thread_count(const moe_session *s) {
  return isLiveSession(s) ? s->pool.threads() : 0;
}

extern "C" moe_status_t moe_session_profile(moe_session *s, uint64_t *runs,
                                            uint64_t *runNs,
                                            const moe_profile_loop **loops,
                                            size_t *count) {
  if (!runs || !runNs || !loops || !count)
    return makeStatus(MOE_INVALID_ARGUMENT,
                      "moe_session_profile: null output pointer");
  *runs = *runNs = 0;
  *loops = nullptr;
  *count = 0;
  if (!isLiveSession(s))
    return makeStatus(MOE_INVALID_ARGUMENT,
                      "moe_session_profile: not a live session");
  if (!s->profile)
    return makeStatus(MOE_INVALID_ARGUMENT,
                      "the session was created without profiling "
                      "(moe_session_options_set_profile)");
  try {
    Profile &p = *s->profile;
    std::lock_guard<std::mutex> lock(p.mutex);
    std::vector<std::pair<moe_parallel_body, Profile::Loop>> sorted(
        p.loops.begin(), p.loops.end());
    std::sort(sorted.begin(), sorted.end(), [](const auto &a, const auto &b) {
      return a.second.nanoseconds != b.second.nanoseconds
                 ? a.second.nanoseconds > b.second.nanoseconds
                 : reinterpret_cast<uintptr_t>(a.first) <
                       reinterpret_cast<uintptr_t>(b.first);
    });
    std::vector<std::string> names;
    std::vector<moe_profile_loop> out;
    names.reserve(sorted.size());
    for (const auto &[body, loop] : sorted)
      names.push_back(
          s->executor->functionName(reinterpret_cast<const void *>(body)));
    for (size_t i = 0; i < sorted.size(); ++i) {
      const Profile::Loop &loop = sorted[i].second;
      out.push_back({names[i].c_str(), loop.calls, loop.splitCalls,
                     loop.iterations, loop.nanoseconds});
    }
    s->profileNames = std::move(names);
    s->profileLoops = std::move(out);
    *runs = p.runs;
    *runNs = p.runNanoseconds;
  } catch (...) { // std::bad_alloc
    return makeStatus(MOE_RESOURCE_EXHAUSTED, "out of memory");
  }
  *loops = s->profileLoops.data();
  *count = s->profileLoops.size();
  return nullptr;
}

extern "C" void moe_session_profile_reset(moe_session *s) {
  if (!isLiveSession(s) || !s->profile)
    return;
  std::lock_guard<std::mutex> lock(s->profile->mutex);
  s->profile->runs = s->profile->runNanoseconds = 0;
  s->profile->loops.clear();
  s->profileLoops.clear();
  s->profileNames.clear();
}

extern "C" size_t moe_session_entry_count(const moe_session *s) {
  return isLiveSession(s) ? s->signature.entries.size() : 0;
}

extern "C" const char *moe_session_entry_name(const moe_session *s,
                                              size_t i) {
  return isLiveSession(s) && i < s->signature.entries.size()
             ? s->signature.entries[i].name.c_str()
             : "";
}

namespace {
/// Entry `e` of a live session, or null.
const EntryRecord *entryAt(const moe_session *s, size_t e) {
  if (!isLiveSession(s) || e >= s->signature.entries.size())
    return nullptr;
  return &s->signature.entries[e];
}

/// Record `i` of entry `e`'s inputs (or outputs) of a live session.
const TensorRecord *specAt(const moe_session *s, size_t e,
                           std::vector<TensorRecord> EntryRecord::*list,
                           size_t i) {
  const EntryRecord *entry = entryAt(s, e);
  if (!entry)
    return nullptr;
  const std::vector<TensorRecord> &v = entry->*list;
  return i < v.size() ? &v[i] : nullptr;
}

size_t mainOf(const moe_session *s) {
  return isLiveSession(s) ? s->mainIndex : SIZE_MAX;
}
} // namespace

#define MOE_SPEC_ACCESSORS(KIND, LIST)                                         \
  extern "C" size_t moe_session_entry_##KIND##_count(const moe_session *s,     \
                                                     size_t e) {               \
    const EntryRecord *entry = entryAt(s, e);                                  \
    return entry ? entry->LIST.size() : 0;                                     \
  }                                                                            \
  extern "C" const char *moe_session_entry_##KIND##_name(                      \
      const moe_session *s, size_t e, size_t i) {                              \
    const TensorRecord *t = specAt(s, e, &EntryRecord::LIST, i);               \
    return t ? t->name.c_str() : "";                                           \
  }                                                                            \
  extern "C" moe_dtype_t moe_session_entry_##KIND##_dtype(                     \
      const moe_session *s, size_t e, size_t i) {                              \
    const TensorRecord *t = specAt(s, e, &EntryRecord::LIST, i);               \
    return t ? t->dtype : MOE_DTYPE_F32;                                       \
  }                                                                            \
  extern "C" size_t moe_session_entry_##KIND##_rank(const moe_session *s,      \
                                                    size_t e, size_t i) {      \
    const TensorRecord *t = specAt(s, e, &EntryRecord::LIST, i);               \
    return t ? t->dims.size() : 0;                                             \
  }                                                                            \
  extern "C" int64_t moe_session_entry_##KIND##_dim(                           \
      const moe_session *s, size_t e, size_t i, size_t d) {                    \
    const TensorRecord *t = specAt(s, e, &EntryRecord::LIST, i);               \
    return t && d < t->dims.size() ? t->dims[d] : -1;                          \
  }                                                                            \
  extern "C" const char *moe_session_entry_##KIND##_dim_name(                  \
      const moe_session *s, size_t e, size_t i, size_t d) {                    \
    const TensorRecord *t = specAt(s, e, &EntryRecord::LIST, i);               \
    return t && d < t->symbols.size() ? t->symbols[d].c_str() : "";            \
  }                                                                            \
  extern "C" size_t moe_session_##KIND##_count(const moe_session *s) {         \
    return moe_session_entry_##KIND##_count(s, mainOf(s));                     \
  }                                                                            \
  extern "C" const char *moe_session_##KIND##_name(const moe_session *s,       \
                                                   size_t i) {                 \
    return moe_session_entry_##KIND##_name(s, mainOf(s), i);                   \
  }                                                                            \
  extern "C" moe_dtype_t moe_session_##KIND##_dtype(const moe_session *s,      \
                                                    size_t i) {                \
    return moe_session_entry_##KIND##_dtype(s, mainOf(s), i);                  \
  }                                                                            \
  extern "C" size_t moe_session_##KIND##_rank(const moe_session *s,            \
                                              size_t i) {                      \
    return moe_session_entry_##KIND##_rank(s, mainOf(s), i);                   \
  }                                                                            \
  extern "C" int64_t moe_session_##KIND##_dim(const moe_session *s, size_t i,  \
                                              size_t d) {                      \
    return moe_session_entry_##KIND##_dim(s, mainOf(s), i, d);                 \
  }                                                                            \
  extern "C" const char *moe_session_##KIND##_dim_name(const moe_session *s,   \
                                                       size_t i, size_t d) {   \
    return moe_session_entry_##KIND##_dim_name(s, mainOf(s), i, d);            \
  }

MOE_SPEC_ACCESSORS(input, inputs)
MOE_SPEC_ACCESSORS(output, outputs)

extern "C" size_t moe_session_entry_index(const moe_session *s,
                                          const char *name) {
  if (!isLiveSession(s) || !name)
    return moe_session_entry_count(s);
  for (size_t i = 0; i < s->signature.entries.size(); ++i)
    if (s->signature.entries[i].name == name)
      return i;
  return s->signature.entries.size();
}

//===----------------------------------------------------------------------===//
// Running
//===----------------------------------------------------------------------===//

namespace {

/// Checks the caller's inputs against entry `e`'s signature and puts them in
/// signature order into arena.ordered.
moe_status_t checkInputs(const moe_session &s, size_t e, Arena &arena,
                         size_t numInputs, const char *const *names,
                         const moe_tensor *const *inputs) {
  const std::vector<TensorRecord> &specs = s.signature.entries[e].inputs;
  const EntryPlan &plan = s.plans[e];
  arena.ordered.assign(specs.size(), nullptr);
  arena.symbolValues.assign(plan.symbolCount, -1);
  for (size_t i = 0; i < numInputs; ++i) {
    if (!names[i] || !inputs[i])
      return makeStatus(MOE_INVALID_ARGUMENT, "input %zu is null", i);
    size_t at = 0;
    while (at < specs.size() && specs[at].name != names[i])
      ++at;
    if (at == specs.size())
      return makeStatus(MOE_INVALID_ARGUMENT, "the model has no input '%s'",
                        names[i]);
    if (arena.ordered[at])
      return makeStatus(MOE_INVALID_ARGUMENT, "input '%s' is given twice",
                        names[i]);
    const moe_tensor *t = inputs[i];
    const TensorRecord &spec = specs[at];
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
      int id = plan.symbolIds[plan.inputDimOffset[at] + d];
      if (id >= 0) {
        int64_t &value = arena.symbolValues[static_cast<size_t>(id)];
        if (value >= 0 && value != t->dims[d])
          return makeStatus(MOE_INVALID_ARGUMENT,
                            "input '%s' dim %zu ('%s') is %lld, but '%s' "
                            "was %lld in an earlier input",
                            names[i], d, spec.symbols[d].c_str(),
                            (long long)t->dims[d], spec.symbols[d].c_str(),
                            (long long)value);
        value = t->dims[d];
      }
    }
    // Strides and byte offsets must fit int64 (a zero dim makes the tensor
    // empty, not its strides small).
    uint64_t extent = moe_dtype_size(t->dtype);
    for (int64_t dim : t->dims) {
      uint64_t d = dim > 1 ? static_cast<uint64_t>(dim) : 1;
      if (extent > static_cast<uint64_t>(INT64_MAX) / d)
        return makeStatus(MOE_INVALID_ARGUMENT,
                          "input '%s' is too large: its strides overflow",
                          names[i]);
      extent *= d;
    }
    arena.ordered[at] = t;
  }
  return nullptr;
}

/// moe_session_run(_entry) of entry `e` once `s` is known to be live.
moe_status_t runEntryAt(moe_session &s, size_t e, size_t numInputs,
                        const char *const *names,
                        const moe_tensor *const *inputs, size_t numOutputs,
                        moe_tensor **outputs) {
  const EntryRecord &entry = s.signature.entries[e];
  std::string name = moe::printable(entry.name, 64);
  // "the model" is entry main; other entries are named.
  std::string who = e == s.mainIndex
                        ? std::string("the model")
                        : "entry '" + name + "'";
  const char *call =
      e == s.mainIndex ? "moe_session_run" : "moe_session_run_entry";
  if (numInputs && (!names || !inputs))
    return makeStatus(MOE_INVALID_ARGUMENT, "%s: names or inputs is null",
                      call);
  if (numOutputs != entry.outputs.size() || (numOutputs && !outputs))
    return makeStatus(MOE_INVALID_ARGUMENT, "%s: %s has %zu outputs, %zu asked",
                      call, who.c_str(), entry.outputs.size(), numOutputs);
  if (numInputs != entry.inputs.size())
    return makeStatus(MOE_INVALID_ARGUMENT, "%s takes %zu inputs, %zu given",
                      who.c_str(), entry.inputs.size(), numInputs);
  std::unique_ptr<Arena> arena = s.arenas.acquire(entry.workspaceBytes);
  if (!arena)
    return makeStatus(MOE_RESOURCE_EXHAUSTED,
                      "cannot allocate the %llu bytes of workspace of entry "
                      "'%s'",
                      static_cast<unsigned long long>(entry.workspaceBytes),
                      name.c_str());
  moe_status_t st = checkInputs(s, e, *arena, numInputs, names, inputs);
  if (!st)
    st = runEntry(s.plans[e], *s.executor, s.pool, s.weights.data(), *arena,
                  arena->ordered.data(), outputs, s.profile.get());
  s.arenas.release(std::move(arena));
  return st;
}

/// The checks of a live session shared by both run calls.
moe_status_t checkSession(const moe_session *s) {
  if (!s)
    return makeStatus(MOE_INVALID_ARGUMENT, "moe_session_run: session is null");
  if (!isLiveSession(s))
    return makeStatus(MOE_INVALID_ARGUMENT,
                      "moe_session_run: session was released (or is not a "
                      "session)");
  return nullptr;
}

} // namespace

extern "C" moe_status_t moe_session_run(moe_session *s, size_t numInputs,
                                        const char *const *names,
                                        const moe_tensor *const *inputs,
                                        size_t numOutputs,
                                        moe_tensor **outputs) {
  if (moe_status_t st = checkSession(s))
    return st;
  try {
    return runEntryAt(*s, s->mainIndex, numInputs, names, inputs, numOutputs,
                      outputs);
  } catch (...) { // std::bad_alloc from the input checks.
    return makeStatus(MOE_RESOURCE_EXHAUSTED, "out of memory");
  }
}

extern "C" moe_status_t
moe_session_run_entry(moe_session *s, const char *entry, size_t numInputs,
                      const char *const *names,
                      const moe_tensor *const *inputs, size_t numOutputs,
                      moe_tensor **outputs) {
  if (moe_status_t st = checkSession(s))
    return st;
  if (!entry)
    return makeStatus(MOE_INVALID_ARGUMENT,
                      "moe_session_run_entry: entry is null");
  size_t e = moe_session_entry_index(s, entry);
  if (e == s->signature.entries.size())
    return makeStatus(MOE_NOT_FOUND, "the model has no entry '%s'",
                      moe::printable(entry, 64).c_str());
  try {
    return runEntryAt(*s, e, numInputs, names, inputs, numOutputs, outputs);
  } catch (...) { // std::bad_alloc from the input checks.
    return makeStatus(MOE_RESOURCE_EXHAUSTED, "out of memory");
  }
}

//===----------------------------------------------------------------------===//
// Generation contexts
//===----------------------------------------------------------------------===//

struct moe_generation {
  moe_session *session = nullptr;
  size_t prefill = 0, decode = 0;
  int64_t batch = 0, maxLength = 0, position = 0;
  /// One cache per f32 decode input ("past_key" and "past_value",
  /// [L, B, H, C, d] from moe-compile --generation), with room for
  /// maxLength positions in its dim C (the second to last): `outer` blocks
  /// (the dims before C) of maxLength rows of `inner` floats (the dims
  /// after it). The decode entry reads positions 0..past_length-1 of each
  /// block; a step's new rows [..., T, ...] go to rows P..P+T-1.
  struct Cache {
    std::string input;
    std::vector<int64_t> dims; // with C = maxLength
    size_t outer = 0, inner = 0;
    PageMemory data;
  };
  std::vector<Cache> caches;
};

extern "C" moe_status_t moe_generation_create(moe_session *s, int64_t batch,
                                              int64_t maxLength,
                                              moe_generation **out) {
  if (!out)
    return makeStatus(MOE_INVALID_ARGUMENT,
                      "moe_generation_create: out is null");
  *out = nullptr;
  if (moe_status_t st = checkSession(s))
    return st;
  size_t prefill = moe_session_entry_index(s, "prefill"),
         decode = moe_session_entry_index(s, "decode");
  if (prefill == s->signature.entries.size() ||
      decode == s->signature.entries.size())
    return makeStatus(MOE_NOT_FOUND,
                      "the model has no entries 'prefill' and 'decode': "
                      "compile it with moe-compile --generation");
  if (batch < 1 || batch > MOE_MAX_SYMBOLIC_DIM || maxLength < 1 ||
      maxLength > MOE_MAX_SYMBOLIC_DIM)
    return makeStatus(MOE_INVALID_ARGUMENT,
                      "the batch and the maximum length must be from 1 to "
                      "%d, got %lld and %lld",
                      MOE_MAX_SYMBOLIC_DIM, (long long)batch,
                      (long long)maxLength);
  try {
    auto g = std::make_unique<moe_generation>();
    g->session = s;
    g->prefill = prefill;
    g->decode = decode;
    g->batch = batch;
    g->maxLength = maxLength;
    const EntryRecord &entry = s->signature.entries[decode];
    const TensorRecord &tokens = entry.inputs.front();
    if (tokens.dims.size() != 2)
      return makeStatus(MOE_INVALID_ARGUMENT,
                        "decode input '%s' is not tokens [B, T]",
                        moe::printable(tokens.name, 64).c_str());
    if (tokens.dims[0] >= 0 && tokens.dims[0] != batch)
      return makeStatus(MOE_INVALID_ARGUMENT,
                        "the model takes a batch of %lld, not %lld",
                        (long long)tokens.dims[0], (long long)batch);
    // The cache length P: an artifact without it is of the earlier
    // position-major layout (a cache [P, ...] without room to append).
    auto length = std::find_if(
        entry.inputs.begin() + 1, entry.inputs.end(),
        [](const TensorRecord &t) { return t.name == "past_length"; });
    if (length == entry.inputs.end())
      return makeStatus(MOE_INVALID_ARGUMENT,
                        "the decode entry has no input 'past_length': "
                        "compile the model again with this moe-compile");
    if (length->dtype != MOE_DTYPE_I64 || !length->dims.empty())
      return makeStatus(MOE_INVALID_ARGUMENT,
                        "decode input 'past_length' is not an int64 scalar");
    for (size_t i = 1; i < entry.inputs.size(); ++i) {
      const TensorRecord &t = entry.inputs[i];
      if (&t == &*length)
        continue;
      // [dims..., C, d]: C dynamic, of a named symbol of its own (not
      // the tokens'); the others static, or at most one the batch (the
      // tokens' dim 0 symbol; both anonymous counts as the same).
      moe_generation::Cache c;
      c.input = t.name;
      size_t rank = t.dims.size();
      bool ok = t.dtype == MOE_DTYPE_F32 && rank >= 2 && t.dims[rank - 2] < 0;
      if (ok && (t.symbols[rank - 2].empty() ||
                 t.symbols[rank - 2] == tokens.symbols[0] ||
                 t.symbols[rank - 2] == tokens.symbols[1]))
        return makeStatus(MOE_INVALID_ARGUMENT,
                          "decode input '%s': its positions dim (the second "
                          "to last) needs a named symbol of its own, not "
                          "the tokens'",
                          moe::printable(t.name, 64).c_str());
      double outer = 1, inner = 1;
      int dynamic = 0;
      for (size_t d = 0; ok && d < rank; ++d) {
        int64_t n = t.dims[d];
        if (d == rank - 2) {
          c.dims.push_back(maxLength);
          continue;
        }
        if (n < 0) {
          ok = ++dynamic == 1 && tokens.dims[0] < 0 &&
               t.symbols[d] == tokens.symbols[0];
          n = batch;
        }
        c.dims.push_back(n);
        (d < rank - 2 ? outer : inner) *= static_cast<double>(n);
      }
      if (!ok)
        return makeStatus(MOE_INVALID_ARGUMENT,
                          "decode input '%s' is not a f32 cache [..., C, d] "
                          "whose other dims are static or the batch",
                          moe::printable(t.name, 64).c_str());
      if (outer * inner * static_cast<double>(maxLength) * sizeof(float) >
          static_cast<double>(moe::artifact::kMaxStaticBytes))
        return makeStatus(MOE_RESOURCE_EXHAUSTED,
                          "a cache of %lld positions for '%s' is too large",
                          (long long)maxLength,
                          moe::printable(t.name, 64).c_str());
      c.outer = static_cast<size_t>(outer);
      c.inner = static_cast<size_t>(inner);
      // (Huge pages: a decode step streams the caches and the weights, and
      // with 4 KB pages every page is a TLB miss.)
      if (!c.data.allocate(c.outer * c.inner * static_cast<size_t>(maxLength) *
                           sizeof(float)))
        return makeStatus(MOE_RESOURCE_EXHAUSTED,
                          "out of memory for the key/value caches");
      g->caches.push_back(std::move(c));
    }
    *out = g.release();
    return nullptr;
  } catch (...) { // std::bad_alloc
    return makeStatus(MOE_RESOURCE_EXHAUSTED,
                      "out of memory for the key/value caches");
  }
}

extern "C" void moe_generation_release(moe_generation *g) { delete g; }

extern "C" int64_t moe_generation_position(const moe_generation *g) {
  return g ? g->position : 0;
}

extern "C" void moe_generation_reset(moe_generation *g) {
  if (g)
    g->position = 0;
}

extern "C" moe_status_t moe_generation_step(moe_generation *g,
                                            const moe_tensor *tokens,
                                            moe_tensor **logits) {
  if (!g || !tokens || !logits)
    return makeStatus(MOE_INVALID_ARGUMENT,
                      "moe_generation_step: null context, tokens or logits");
  *logits = nullptr;
  if (moe_status_t st = checkSession(g->session))
    return st;
  if (tokens->dtype != MOE_DTYPE_I64 || tokens->dims.size() != 2 ||
      tokens->dims[0] != g->batch || tokens->dims[1] < 1)
    return makeStatus(MOE_INVALID_ARGUMENT,
                      "the tokens must be int64 [%lld, T] with T >= 1",
                      (long long)g->batch);
  int64_t t = tokens->dims[1];
  if (g->position + t > g->maxLength)
    return makeStatus(MOE_INVALID_ARGUMENT,
                      "%lld positions and %lld new tokens exceed the maximum "
                      "length %lld",
                      (long long)g->position, (long long)t,
                      (long long)g->maxLength);
  try {
    bool first = g->position == 0;
    size_t e = first ? g->prefill : g->decode;
    std::vector<const char *> names = {"tokens"};
    std::vector<const moe_tensor *> inputs = {tokens};
    std::vector<std::unique_ptr<moe_tensor, void (*)(moe_tensor *)>> views;
    auto addView = [&](const char *name, moe_dtype_t dtype,
                       const std::vector<int64_t> &dims,
                       void *data) -> moe_status_t {
      moe_tensor *view = nullptr;
      if (moe_status_t st = moe_tensor_create_view(dtype, dims.size(),
                                                   dims.data(), data, &view))
        return st;
      views.emplace_back(view, moe_tensor_release);
      names.push_back(name);
      inputs.push_back(view);
      return nullptr;
    };
    // The whole caches (the code reads their first P positions) and P.
    int64_t length = g->position;
    if (!first) {
      for (moe_generation::Cache &c : g->caches)
        if (moe_status_t st = addView(c.input.c_str(), MOE_DTYPE_F32, c.dims,
                                      c.data.floats()))
          return st;
      if (moe_status_t st = addView("past_length", MOE_DTYPE_I64, {}, &length))
        return st;
    }
    size_t numOutputs = g->session->signature.entries[e].outputs.size();
    if (numOutputs != g->caches.size() + 1)
      return makeStatus(MOE_INTERNAL,
                        "entry '%s' has %zu outputs for %zu caches",
                        first ? "prefill" : "decode", numOutputs,
                        g->caches.size());
    std::vector<moe_tensor *> outputs(numOutputs, nullptr);
    if (moe_status_t st =
            runEntryAt(*g->session, e, names.size(), names.data(),
                       inputs.data(), numOutputs, outputs.data()))
      return st;
    auto releaseAll = [&] {
      for (moe_tensor *o : outputs)
        moe_tensor_release(o);
    };
    // Each cache's new rows: its dims with T in place of C.
    for (size_t i = 0; i < g->caches.size(); ++i) {
      std::vector<int64_t> rows = g->caches[i].dims;
      rows[rows.size() - 2] = t;
      if (outputs[i + 1]->dims != rows ||
          outputs[i + 1]->dtype != MOE_DTYPE_F32) {
        releaseAll();
        return makeStatus(MOE_INTERNAL,
                          "output %zu of entry '%s' is not the rows of "
                          "cache '%s'",
                          i + 1, first ? "prefill" : "decode",
                          moe::printable(g->caches[i].input, 64).c_str());
      }
    }
    // The new rows [..., T, d] go after the cached ones, in each block.
    for (size_t i = 0; i < g->caches.size(); ++i) {
      moe_generation::Cache &c = g->caches[i];
      size_t rows = size_t(t) * c.inner;
      const float *from = reinterpret_cast<const float *>(outputs[i + 1]->data);
      for (size_t o = 0; o < c.outer; ++o)
        std::memcpy(c.data.floats() +
                        (o * size_t(g->maxLength) + size_t(g->position)) *
                            c.inner,
                    from + o * rows, rows * sizeof(float));
      moe_tensor_release(outputs[i + 1]);
    }
    g->position += t;
    *logits = outputs[0];
    return nullptr;
  } catch (...) { // std::bad_alloc
    return makeStatus(MOE_RESOURCE_EXHAUSTED, "out of memory");
  }
}

//===- run.cpp - the host side of the code ABI -----------------------------===//
//
// A run: the frame of moe/code_abi.h, filled from the caller's tensors
// (inputs are passed as they are, never copied), the session's weight
// pointers, preallocated static outputs and the run's arena; the host
// functions of the one moe_host_api table; and what happens after the
// call (the first reported data error, outputs never requested, the
// abandoned run).
//
// Abandoning: output_alloc and workspace_grow never return failure to the
// code; they longjmp to enterCode. Between that setjmp and the longjmp
// there are only the code's frames and the host function's, and no C++
// object with a destructor is alive in either (each host function calls a
// helper that returns a status, and jumps after it has returned).
//
//===----------------------------------------------------------------------===//

#include "run.h"

#include "executor.h"
#include "runtime_internal.h"
#include "test_hooks.h"
#include "thread_pool.h"

#include "moe/text.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <map>
#include <new>
#include <string>

using namespace moe::detail;
using moe::artifact::TensorRecord;

namespace {

/// Set by test_hooks::setEntryTiming; the time spent inside entries.
std::atomic<bool> gEntryTiming{false};
std::atomic<uint64_t> gEntryNanoseconds{0};
/// Workspace segments allocated so far (test_hooks::workspaceAllocations).
std::atomic<uint64_t> gWorkspaceAllocations{0};

/// The code reported 0: recorded as this, so that the run still fails.
constexpr int32_t kUnnamedError = -1;
/// The largest workspace request and segment (larger ones are refused).
constexpr uint64_t kMaxWorkspaceBytes = uint64_t(1) << 62;
/// The most a grown segment adds to the current segment's size, when the
/// request is smaller (below it, segments double).
constexpr uint64_t kMaxGrowSlack = uint64_t(16) << 20;

uint64_t roundUp64(uint64_t n) {
  return (n + MOE_WORKSPACE_ALIGNMENT - 1) / MOE_WORKSPACE_ALIGNMENT *
         MOE_WORKSPACE_ALIGNMENT;
}

/// A new workspace segment of `size` bytes (a multiple of 64), or one
/// with null data.
Arena::Segment newSegment(uint64_t size) {
  Arena::Segment s;
  s.data = static_cast<uint8_t *>(alignedAlloc(size));
  if (s.data) {
    if (poisonFreshMemory())
      std::memset(s.data, 0xFF, size);
    s.size = size;
    gWorkspaceAllocations.fetch_add(1, std::memory_order_relaxed);
  }
  return s;
}

/// The state of one run; its frame is the entry's argument.
struct Run {
  moe_frame frame;
  const EntryPlan *plan = nullptr;
  Arena *arena = nullptr;
  ThreadPool *pool = nullptr;
  /// Where the run's loops are timed, or null.
  Profile *profile = nullptr;
  /// The smallest data error code the code reported (any thread), or 0.
  std::atomic<int32_t> reported{0};
  /// Whether a parallel_for body misused the ABI (called output_alloc or
  /// workspace_grow), and the status saying so (null if even that could
  /// not be allocated).
  std::atomic<bool> misused{false};
  std::atomic<moe_status *> misuse{nullptr};
  /// Why the run was abandoned (owner thread only; may be null if even
  /// the status could not be allocated).
  moe_status_t abandoned = nullptr;
  /// The thread that entered the code.
  pthread_t owner;
  std::jmp_buf jump;
};

Run *runOf(moe_frame *frame) { return static_cast<Run *>(frame->run); }

[[noreturn]] void abandon(Run *run, moe_status_t why) {
  run->abandoned = why;
  std::longjmp(run->jump, 1);
}

/// output_alloc and workspace_grow may be called only by the thread that
/// entered the code, outside parallel_for bodies: a body's call fails the
/// run and abandons the body's chunk (the run's setjmp is out of reach: a
/// jump there would skip the pool's frames, and the frame's workspace
/// fields are the entering thread's). A thread the code started itself
/// cannot be recovered from.
void checkCaller(Run *run, const char *function) {
  if (std::jmp_buf *chunk = currentChunkJump()) {
    run->misused.store(true, std::memory_order_relaxed);
    moe_status_t st = makeStatus(
        MOE_INTERNAL,
        "the code called %s inside a parallel_for body (only the thread "
        "that entered the code may)",
        function);
    moe_status *expected = nullptr;
    if (!st || !run->misuse.compare_exchange_strong(expected, st))
      moe_status_release(st);
    std::longjmp(*chunk, 1);
  }
  if (!pthread_equal(pthread_self(), run->owner)) {
    std::fprintf(stderr,
                 "moe runtime: the code called %s from a thread it started "
                 "itself (code ABI violation); aborting\n",
                 function);
    std::abort();
  }
}

/// "[3, ?N, 4]": dims as the signature writes them (symbol names printable).
std::string signatureDims(const TensorRecord &t) {
  std::string s = "[";
  for (size_t d = 0; d < t.dims.size(); ++d) {
    if (d)
      s += ", ";
    s += t.dims[d] >= 0 ? std::to_string(t.dims[d])
                        : "?" + moe::printable(t.symbols[d], 32);
  }
  return s + "]";
}

std::string dimsText(const int64_t *dims, size_t rank) {
  std::string s = "[";
  for (size_t d = 0; d < rank; ++d)
    s += (d ? ", " : "") + std::to_string(dims[d]);
  return s + "]";
}

/// The checks and the allocation of output_alloc; the output's data in
/// `data`, or the reason to abandon the run.
moe_status_t allocOutput(Run &run, uint64_t index, const int64_t *dims,
                         void *&data) noexcept {
  try {
    const auto &outputs = run.plan->record->outputs;
    const std::string &entry = run.plan->record->name;
    if (index >= outputs.size())
      return makeStatus(MOE_INTERNAL,
                        "the code asked for output %llu, but entry '%s' has "
                        "%zu outputs",
                        static_cast<unsigned long long>(index),
                        moe::printable(entry, 64).c_str(), outputs.size());
    const TensorRecord &o = outputs[index];
    std::string name = moe::printable(o.name, 64);
    if (!run.plan->dynamicOutput[index])
      return makeStatus(MOE_INTERNAL,
                        "the code asked for output '%s' through output_alloc, "
                        "but its dims are static (the runtime allocates it)",
                        name.c_str());
    if (run.arena->made[index])
      return makeStatus(MOE_INTERNAL,
                        "the code asked for output '%s' twice", name.c_str());
    if (!dims)
      return makeStatus(MOE_INTERNAL,
                        "the code asked for output '%s' without dims",
                        name.c_str());
    size_t rank = o.dims.size();
    for (size_t d = 0; d < rank; ++d)
      if (dims[d] < 0 || (o.dims[d] >= 0 && dims[d] != o.dims[d]))
        return makeStatus(MOE_INTERNAL,
                          "the code produced output '%s' with dims %s, but "
                          "the signature says %s",
                          name.c_str(), dimsText(dims, rank).c_str(),
                          signatureDims(o).c_str());
    // Sizes the code computed from the data: too large is the data's fault.
    for (size_t d = 0; d < rank; ++d)
      if (o.dims[d] < 0 && dims[d] > MOE_MAX_SYMBOLIC_DIM)
        return makeStatus(MOE_INVALID_ARGUMENT,
                          "output '%s' dim %zu ('%s') would be %lld, above "
                          "the limit of %lld for symbolic dims "
                          "(MOE_MAX_SYMBOLIC_DIM)",
                          name.c_str(), d,
                          o.symbols[d].empty()
                              ? "?"
                              : moe::printable(o.symbols[d], 32).c_str(),
                          static_cast<long long>(dims[d]),
                          static_cast<long long>(MOE_MAX_SYMBOLIC_DIM));
    size_t count, esize = moe_dtype_size(o.dtype);
    if (!elementCount(dims, rank, esize, count) ||
        count * esize > static_cast<uint64_t>(INT64_MAX))
      return makeStatus(MOE_INVALID_ARGUMENT,
                        "output '%s' would have dims %s: more elements than "
                        "memory can hold",
                        name.c_str(), dimsText(dims, rank).c_str());
    moe_tensor *t = newTensor(o.dtype, dims, rank, count);
    if (!t)
      return makeStatus(MOE_RESOURCE_EXHAUSTED,
                        "cannot allocate %zu bytes for output '%s'",
                        count * esize, name.c_str());
    run.arena->made[index] = t;
    run.arena->outputs[index] = t->data;
    data = t->data;
    return nullptr;
  } catch (...) { // std::bad_alloc from a message or the dims.
    return makeStatus(MOE_RESOURCE_EXHAUSTED, "out of memory");
  }
}

/// The arena work of workspace_grow: the next segment, big enough for
/// `bytes`, made current in the frame with `bytes` taken from its start.
moe_status_t growWorkspace(Run &run, uint64_t bytes, void *&data) noexcept {
  Arena &arena = *run.arena;
  moe_frame &f = run.frame;
  if (f.ws_segment >= arena.segments.size())
    return makeStatus(MOE_INTERNAL,
                      "the code's workspace state is corrupt (segment %llu "
                      "of %zu)",
                      static_cast<unsigned long long>(f.ws_segment),
                      arena.segments.size());
  if (bytes > kMaxWorkspaceBytes)
    return makeStatus(MOE_RESOURCE_EXHAUSTED,
                      "cannot allocate %llu bytes of workspace",
                      static_cast<unsigned long long>(bytes));
  uint64_t need = roundUp64(bytes ? bytes : 1);
  size_t next = static_cast<size_t>(f.ws_segment) + 1;
  if (next >= arena.segments.size() || arena.segments[next].size < need) {
    // Room for more than `bytes` (fewer calls when the code keeps asking):
    // twice the current segment, at most kMaxGrowSlack more than it; or
    // just what is needed if that cannot be had.
    uint64_t prev = arena.segments[next - 1].size;
    uint64_t roomy = prev + std::min(prev, kMaxGrowSlack);
    Arena::Segment s = newSegment(
        roomy > need && roomy <= kMaxWorkspaceBytes ? roomy : need);
    if (!s.data && need < roomy)
      s = newSegment(need);
    if (!s.data)
      return makeStatus(MOE_RESOURCE_EXHAUSTED,
                        "cannot allocate %llu bytes of workspace",
                        static_cast<unsigned long long>(need));
    if (next < arena.segments.size()) {
      std::free(arena.segments[next].data);
      arena.segments[next] = s;
    } else {
      try {
        arena.segments.push_back(s);
      } catch (...) {
        std::free(s.data);
        return makeStatus(MOE_RESOURCE_EXHAUSTED, "out of memory");
      }
    }
    arena.grew = true;
  }
  const Arena::Segment &s = arena.segments[next];
  f.ws_segment = next;
  f.ws_cursor = s.data + bytes;
  f.ws_end = s.data + s.size;
  data = s.data;
  return nullptr;
}

//--- The host functions (moe_host_api) ------------------------------------//

/// Keeps the smallest code reported (kUnnamedError for 0 sorts first), so
/// that the status does not depend on which thread reported first.
void hostReportError(moe_frame *frame, int32_t code) {
  int32_t value = code ? code : kUnnamedError;
  std::atomic<int32_t> &reported = runOf(frame)->reported;
  int32_t current = reported.load(std::memory_order_relaxed);
  while ((current == 0 || value < current) &&
         !reported.compare_exchange_weak(current, value,
                                         std::memory_order_relaxed)) {
  }
}

void hostParallelFor(moe_frame *frame, int64_t begin, int64_t end,
                     int64_t grain, moe_parallel_body body, void *closure) {
  Run *run = runOf(frame);
  if (!run->profile) {
    run->pool->parallelFor(begin, end, grain, body, closure);
    return;
  }
  auto start = std::chrono::steady_clock::now();
  run->pool->parallelFor(begin, end, grain, body, closure);
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                std::chrono::steady_clock::now() - start)
                .count();
  // (As ThreadPool::parallelFor counts them: span / grain, rounded up; a
  // call from inside a chunk runs its chunks on its own thread.)
  uint64_t span =
      end > begin ? static_cast<uint64_t>(end) - static_cast<uint64_t>(begin)
                  : 0;
  uint64_t g = grain < 1 ? 1 : static_cast<uint64_t>(grain);
  bool split = span / g + (span % g != 0) > 1 && run->pool->threads() > 1 &&
               !currentChunkJump();
  Profile &p = *run->profile;
  std::lock_guard<std::mutex> lock(p.mutex);
  try {
    Profile::Loop &loop = p.loops[body];
    ++loop.calls;
    loop.splitCalls += split;
    loop.iterations += span;
    loop.nanoseconds += static_cast<uint64_t>(ns);
  } catch (...) { // std::bad_alloc: the call goes uncounted
  }
}

void *hostWorkspaceGrow(moe_frame *frame, uint64_t bytes) {
  Run *run = runOf(frame);
  checkCaller(run, "workspace_grow");
  void *data = nullptr;
  if (moe_status_t st = growWorkspace(*run, bytes, data))
    abandon(run, st);
  return data;
}

void *hostOutputAlloc(moe_frame *frame, uint64_t index, const int64_t *dims) {
  Run *run = runOf(frame);
  checkCaller(run, "output_alloc");
  void *data = nullptr;
  if (moe_status_t st = allocOutput(*run, index, dims, data))
    abandon(run, st);
  return data;
}

const moe_host_api kHostApi = {MOE_CODE_ABI_VERSION,
                               sizeof(moe_host_api),
                               hostReportError,
                               hostParallelFor,
                               hostWorkspaceGrow,
                               hostOutputAlloc,
                               {}};

/// The status of the data error `code` the code reported
/// (include/moe/Utils/RuntimeErrors.h in the compiler).
moe_status_t dataError(int32_t code) {
  return makeStatus(
      MOE_INVALID_ARGUMENT, "%s",
      code == 1   ? "an expert id outside [0, E) reached moe.dispatch"
      : code == 2 ? "an index is out of range in a gather (for an embedding: a "
                    "token id outside the vocabulary)"
      : code == 3
          ? "a dynamic dimension has a size the model cannot take "
            "(broadcast operands neither equal nor 1, reshape sizes that do "
            "not match the element count, a batch that is not a multiple "
            "of the group size, or a size other than the declared one)"
      : code == 4
          ? "past_length is out of range: it must be from 0 to the number "
            "of positions the key/value caches hold"
      : code == 5 ? "an integer division or Mod by zero"
                  : "the model reported a data error");
}

/// A 64-byte aligned stand-in for the data of an input without elements
/// whose caller gave none (a view of NULL).
alignas(64) const unsigned char kNoData[64] = {};

} // namespace

bool moe::detail::enterCode(EntryFunction fn, moe_frame *frame) {
  // No C++ object with a destructor may live in this frame: host functions
  // longjmp back here.
  if (setjmp(runOf(frame)->jump) != 0)
    return false;
  fn(frame);
  return true;
}

//--- Arenas ---------------------------------------------------------------//

Arena::~Arena() {
  for (Segment &s : segments)
    std::free(s.data);
}

bool Arena::reserve(uint64_t bytes) {
  uint64_t size = roundUp64(bytes ? bytes : 1);
  if (!segments.empty() && segments[0].size >= size)
    return true;
  if (bytes > kMaxWorkspaceBytes)
    return false;
  Segment s = newSegment(size);
  if (!s.data)
    return false;
  if (segments.empty()) {
    try {
      segments.push_back(s);
    } catch (...) {
      std::free(s.data);
      return false;
    }
  } else {
    std::free(segments[0].data);
    segments[0] = s;
  }
  return true;
}

void Arena::coalesce() {
  grew = false;
  if (segments.size() < 2)
    return;
  uint64_t total = 0;
  for (const Segment &s : segments)
    total += s.size; // Each at most 2^62 + 64, and few: no overflow.
  if (total > kMaxWorkspaceBytes)
    return;
  Segment one = newSegment(total);
  if (!one.data)
    return;
  for (Segment &s : segments)
    std::free(s.data);
  segments.resize(1);
  segments[0] = one;
}

std::unique_ptr<Arena> ArenaPool::acquire(uint64_t bytes) {
  std::unique_ptr<Arena> arena;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!free_.empty()) {
      arena = std::move(free_.back());
      free_.pop_back();
    }
  }
  if (!arena)
    arena.reset(new (std::nothrow) Arena);
  if (arena && !arena->reserve(bytes))
    arena.reset();
  return arena;
}

void ArenaPool::release(std::unique_ptr<Arena> arena) {
  if (arena->grew)
    arena->coalesce();
  std::lock_guard<std::mutex> lock(mutex_);
  try {
    free_.push_back(std::move(arena));
  } catch (...) {
    // No room to keep it: `arena` frees it.
  }
}

//--- Running an entry -----------------------------------------------------//

EntryPlan moe::detail::planEntry(const artifact::EntryRecord &record,
                                 size_t index) {
  EntryPlan plan;
  plan.record = &record;
  plan.index = index;
  std::map<std::string, int> symbols; // Symbol -> id.
  for (const TensorRecord &in : record.inputs) {
    plan.inputDimOffset.push_back(plan.inputDimCount);
    for (size_t d = 0; d < in.dims.size(); ++d) {
      int id = -1;
      if (in.dims[d] < 0 && !in.symbols[d].empty())
        id = symbols.emplace(in.symbols[d], static_cast<int>(symbols.size()))
                 .first->second;
      plan.symbolIds.push_back(id);
      ++plan.inputDimCount;
    }
  }
  plan.symbolCount = symbols.size();
  for (const TensorRecord &out : record.outputs) {
    bool dynamic = false;
    size_t count = 1;
    for (int64_t d : out.dims) {
      dynamic |= d < 0;
      if (d >= 0)
        count *= static_cast<size_t>(d); // Bounded by kMaxStaticBytes.
    }
    plan.dynamicOutput.push_back(dynamic);
    plan.staticCount.push_back(dynamic ? 0 : count);
  }
  return plan;
}

moe_status_t moe::detail::runEntry(const EntryPlan &plan, Executor &executor,
                                   ThreadPool &pool, void *const *weights,
                                   Arena &arena,
                                   const moe_tensor *const *inputs,
                                   moe_tensor **outputs, Profile *profile) {
  const artifact::EntryRecord &entry = *plan.record;
  size_t numOutputs = entry.outputs.size();
  try {
    arena.inputs.resize(entry.inputs.size());
    arena.inputDims.resize(plan.inputDimCount);
    arena.outputs.assign(numOutputs, nullptr);
    arena.made.assign(numOutputs, nullptr);
  } catch (...) {
    return makeStatus(MOE_RESOURCE_EXHAUSTED, "out of memory");
  }
  size_t at = 0;
  for (size_t i = 0; i < entry.inputs.size(); ++i) {
    const moe_tensor *t = inputs[i];
    arena.inputs[i] = t->data ? static_cast<void *>(t->data)
                              : const_cast<unsigned char *>(kNoData);
    for (int64_t d : t->dims)
      arena.inputDims[at++] = d;
  }
  moe_status_t failure = nullptr;
  for (size_t i = 0; i < numOutputs && !failure; ++i) {
    if (plan.dynamicOutput[i])
      continue;
    const TensorRecord &o = entry.outputs[i];
    moe_tensor *t =
        newTensor(o.dtype, o.dims.data(), o.dims.size(), plan.staticCount[i]);
    if (!t)
      failure = makeStatus(MOE_RESOURCE_EXHAUSTED,
                           "cannot allocate %zu bytes for output '%s'",
                           plan.staticCount[i] * moe_dtype_size(o.dtype),
                           moe::printable(o.name, 64).c_str());
    else {
      arena.made[i] = t;
      arena.outputs[i] = t->data;
    }
  }

  if (!failure) {
    Run run;
    run.plan = &plan;
    run.arena = &arena;
    run.pool = &pool;
    run.profile = profile;
    run.owner = pthread_self();
    moe_frame &f = run.frame;
    std::memset(&f, 0, sizeof(f));
    f.host = &kHostApi;
    f.run = &run;
    const Arena::Segment &s0 = arena.segments[0];
    f.ws_cursor = s0.data;
    f.ws_end = s0.data + s0.size;
    f.ws_segment = 0;
    f.inputs = arena.inputs.data();
    f.input_dims = arena.inputDims.data();
    f.weights = weights;
    f.outputs = arena.outputs.data();
    f.state = nullptr;

    bool timing = gEntryTiming.load(std::memory_order_relaxed) || profile;
    auto start = timing ? std::chrono::steady_clock::now()
                        : std::chrono::steady_clock::time_point();
    bool completed = executor.run(plan.index, f);
    if (timing) {
      auto ns = static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(
              std::chrono::steady_clock::now() - start)
              .count());
      if (gEntryTiming.load(std::memory_order_relaxed))
        gEntryNanoseconds.fetch_add(ns, std::memory_order_relaxed);
      if (profile) {
        std::lock_guard<std::mutex> lock(profile->mutex);
        ++profile->runs;
        profile->runNanoseconds += ns;
      }
    }

    // A data error comes first: what follows from it (impossible dims, an
    // output never requested) would only hide it.
    moe_status_t misuse = run.misuse.exchange(nullptr);
    if (int32_t code = run.reported.load(std::memory_order_relaxed))
      failure = dataError(code);
    else if (!completed)
      failure = run.abandoned ? run.abandoned
                              : makeStatus(MOE_RESOURCE_EXHAUSTED,
                                           "out of memory");
    else if (misuse || run.misused.load(std::memory_order_relaxed))
      failure = misuse ? misuse
                       : makeStatus(MOE_INTERNAL,
                                    "the code called output_alloc or "
                                    "workspace_grow inside a parallel_for "
                                    "body");
    if (failure != run.abandoned)
      moe_status_release(run.abandoned);
    if (failure != misuse)
      moe_status_release(misuse);
    for (size_t i = 0; i < numOutputs && !failure; ++i)
      if (!arena.made[i])
        failure = makeStatus(
            MOE_INTERNAL,
            "the code never produced output '%s' (a dynamic output is "
            "requested with output_alloc)",
            moe::printable(entry.outputs[i].name, 64).c_str());
  }

  for (size_t i = 0; i < numOutputs; ++i) {
    if (failure)
      moe_tensor_release(arena.made[i]);
    else
      outputs[i] = arena.made[i];
    arena.made[i] = nullptr;
    arena.outputs[i] = nullptr;
  }
  return failure;
}

//--- Test hooks -------------------------------------------------------------//

void moe::test_hooks::setEntryTiming(bool on) {
  gEntryTiming.store(on, std::memory_order_relaxed);
}

uint64_t moe::test_hooks::entryNanoseconds() {
  return gEntryNanoseconds.load(std::memory_order_relaxed);
}

uint64_t moe::test_hooks::workspaceAllocations() {
  return gWorkspaceAllocations.load(std::memory_order_relaxed);
}

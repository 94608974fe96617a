//===- run.h - the host side of the code ABI --------------------*- C++ -*-===//
//
// Internal to runtime/src. One run of an entry (moe/code_abi.h): the frame
// the code receives, the host functions it calls back (one static
// moe_host_api table), the workspace arenas runs take their temporaries
// from, and the checks of what the code produced. runtime.cpp validates
// the caller's inputs and calls runEntry; executors call enterCode.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_RUN_H
#define MOE_RUNTIME_RUN_H

#include "moe/artifact_reader.h"
#include "moe/code_abi.h"
#include "moe_runtime.h"

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace moe::detail {

class Executor;
class ThreadPool;

/// An entry of the code: `void <symbol>(moe_frame *frame)`.
using EntryFunction = void (*)(moe_frame *);

/// Calls fn(frame) behind the setjmp that output_alloc and workspace_grow
/// return to when they abandon the run; false if one did (the reason is
/// kept in the run). `frame->run` must be the run's.
bool enterCode(EntryFunction fn, moe_frame *frame);

/// A run's workspace (a stack of 64-byte aligned segments, code_abi.h) and
/// the arrays of its frame, kept from one run to the next.
struct Arena {
  struct Segment {
    uint8_t *data = nullptr;
    uint64_t size = 0;
  };
  /// Segment 0 is where each run starts; the code's workspace_grow calls
  /// make the others.
  std::vector<Segment> segments;
  /// Whether a run made or replaced a segment since the last coalesce().
  bool grew = false;
  /// The frame's arrays and the per-run state of the input checks.
  std::vector<void *> inputs, outputs;
  std::vector<int64_t> inputDims, symbolValues;
  std::vector<moe_tensor *> made;
  /// The caller's inputs in signature order (moe_session_run's checks).
  std::vector<const moe_tensor *> ordered;

  Arena() = default;
  Arena(const Arena &) = delete;
  Arena &operator=(const Arena &) = delete;
  ~Arena();
  /// Makes segment 0 hold at least `bytes`; false when memory cannot be
  /// had.
  bool reserve(uint64_t bytes);
  /// After a run that grew the arena: one segment as large as all of them
  /// together (at least the run's high-water mark), so that the next run
  /// like it allocates nothing. Keeps the segments if memory cannot be had.
  void coalesce();
};

/// A session's arenas: each run takes one (concurrent runs get their own)
/// and gives it back for later runs.
class ArenaPool {
public:
  /// An arena whose segment 0 holds at least `bytes`, or null when memory
  /// cannot be had.
  std::unique_ptr<Arena> acquire(uint64_t bytes);
  /// Gives `arena` back, coalesced if its run grew it.
  void release(std::unique_ptr<Arena> arena);

private:
  std::mutex mutex_;
  std::vector<std::unique_ptr<Arena>> free_;
};

/// A session's profile (moe_session_options_set_profile): the runs of its
/// entries and, per function of the code, the parallel loops it ran.
struct Profile {
  struct Loop {
    uint64_t calls = 0, splitCalls = 0, iterations = 0, nanoseconds = 0;
  };
  std::mutex mutex;
  uint64_t runs = 0, runNanoseconds = 0;
  std::unordered_map<moe_parallel_body, Loop> loops;
};

/// What a run of one entry needs to know beyond its record, computed once
/// per session.
struct EntryPlan {
  const artifact::EntryRecord *record = nullptr;
  /// The entry's index in the signature (the executor's numbering).
  size_t index = 0;
  /// Per output: whether a dim is symbolic (the code calls output_alloc),
  /// and else its element count.
  std::vector<bool> dynamicOutput;
  std::vector<size_t> staticCount;
  /// Per input and dim, flattened: the index of the dim's symbol among the
  /// entry's input symbols, or -1 (static or anonymous).
  std::vector<int> symbolIds;
  /// Per input: where its dims start in symbolIds (and input_dims).
  std::vector<size_t> inputDimOffset;
  size_t symbolCount = 0, inputDimCount = 0;
};

/// Builds the plan of `record` (entry number `index`).
EntryPlan planEntry(const artifact::EntryRecord &record, size_t index);

/// Runs an entry: `inputs` holds one tensor per input of the entry, in
/// signature order, checked by the caller; `weights` one pointer per
/// weight record (Executor::prepare). Static outputs are allocated before
/// the call, dynamic ones by the code (output_alloc); the code's reports
/// and requests are checked. On success outputs[0, n) receive new tensors,
/// owned by the caller; on failure nothing is written. With `profile`, the
/// run and its parallel loops are timed into it.
moe_status_t runEntry(const EntryPlan &plan, Executor &executor,
                      ThreadPool &pool, void *const *weights, Arena &arena,
                      const moe_tensor *const *inputs, moe_tensor **outputs,
                      Profile *profile = nullptr);

} // namespace moe::detail

#endif // MOE_RUNTIME_RUN_H

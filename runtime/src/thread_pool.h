//===- thread_pool.h - a session's threads for parallel_for -----*- C++ -*-===//
//
// Internal to runtime/src. The host side of the code ABI's parallel_for
// (moe/code_abi.h): each session owns one pool of `threads - 1` workers
// (the thread that calls parallel_for is the last one), started on the
// first parallel loop that can use them and joined when the session is
// released. Several runs of one session may use the pool at once: each
// parallel_for is a job of its own, whose chunks any worker and its caller
// claim in turn.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_THREAD_POOL_H
#define MOE_RUNTIME_THREAD_POOL_H

#include "moe/code_abi.h"

#include <atomic>
#include <condition_variable>
#include <csetjmp>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace moe::detail {

/// Where a host function that a parallel_for body may not call
/// (output_alloc, workspace_grow) jumps to abandon the body's chunk: set
/// while a thread runs a chunk, null otherwise.
std::jmp_buf *currentChunkJump();

/// (Exported: the runtime's unit tests use it directly.)
class __attribute__((visibility("default"))) ThreadPool {
public:
  /// A pool of `threads` threads, the caller of parallelFor included
  /// (1 <= threads <= MOE_MAX_THREADS). Starts no thread.
  explicit ThreadPool(unsigned threads);
  /// Stops and joins the workers (no parallelFor may be running).
  ~ThreadPool();
  ThreadPool(const ThreadPool &) = delete;
  ThreadPool &operator=(const ThreadPool &) = delete;

  unsigned threads() const { return threads_; }

  /// Calls body(closure, b, e) for the chunks [b, e) of [begin, end) that
  /// start at begin + k * grain (grain < 1 counts as 1; the last chunk may
  /// be shorter), on the workers and the calling thread, and returns when
  /// all are done. Called from inside a body, runs the chunks on the
  /// calling thread, in order. Never throws: where workers cannot be had,
  /// the calling thread runs every chunk.
  void parallelFor(int64_t begin, int64_t end, int64_t grain,
                   moe_parallel_body body, void *closure) noexcept;

private:
  /// One parallelFor call: its chunks, the next one to claim, and how many
  /// workers are using it (it lives on its caller's stack until none is).
  struct Job {
    moe_parallel_body body;
    void *closure;
    int64_t begin, end, grain;
    uint64_t chunks;
    std::atomic<uint64_t> next{0};
    std::atomic<unsigned> users{0}; ///< Workers holding the job.
  };

  /// Starts the workers if not yet done; whether there is at least one.
  bool startWorkers() noexcept;
  void workerLoop();
  /// Claims and runs chunks of `job` until none is left.
  static void runChunks(Job &job);
  /// Runs every chunk of `job` in order on this thread (no other thread
  /// has it: no atomic claim per chunk).
  static void runChunksAlone(const Job &job);
  /// A job of jobs_ with chunks left, taken by a worker (users + 1), or
  /// null; drops exhausted jobs from jobs_. Under mutex_.
  Job *takeJobLocked();
  void dropJobLocked(Job *job);

  const unsigned threads_;
  std::mutex mutex_;
  std::condition_variable wake_; ///< Workers wait here for jobs.
  std::condition_variable done_; ///< Callers wait here for their job.
  std::vector<Job *> jobs_;      ///< Jobs that may have chunks left.
  std::atomic<size_t> pending_{0}; ///< jobs_.size(), read while spinning.
  std::vector<std::thread> workers_;
  unsigned sleepers_ = 0;
  bool stopping_ = false;
  /// Set once startWorkers has run; haveWorkers_ is written before it.
  std::atomic<bool> started_{false};
  bool haveWorkers_ = false;
};

} // namespace moe::detail

#endif // MOE_RUNTIME_THREAD_POOL_H

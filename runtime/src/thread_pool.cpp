//===- thread_pool.cpp - a session's threads for parallel_for --------------===//
//
// The chunks of a parallel_for depend only on (begin, end, grain); the
// threads claim them in turn from an atomic counter, so which thread runs a
// chunk varies, but what each chunk computes does not. A job lives on its
// caller's stack: workers take it under the pool's mutex (counting
// themselves in `users`) only while it has chunks left, and its caller
// returns once it has run out of chunks and no worker holds it.
//
// Every chunk runs behind a setjmp (runChunk): output_alloc and
// workspace_grow, which a body may not call, abandon the chunk by jumping
// back there, so that a misbehaving body fails its run instead of
// corrupting the frame of the thread that entered the code.
//
//===----------------------------------------------------------------------===//

#include "thread_pool.h"

#include <algorithm>

using moe::detail::ThreadPool;

namespace {

/// Set while this thread runs a chunk (see currentChunkJump).
thread_local std::jmp_buf *tChunkJump = nullptr;

/// Iterations a thread without work spins before it sleeps: parallel loops
/// of a run come in quick succession, and a sleeping worker takes tens of
/// microseconds to wake.
constexpr int kSpins = 2000;

inline void cpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/// Runs body(closure, b, e) behind a setjmp that host functions use to
/// abandon the chunk. No C++ object with a destructor may live in this
/// frame: a longjmp skips it.
__attribute__((noinline)) void runChunk(moe_parallel_body body, void *closure,
                                        int64_t b, int64_t e) {
  std::jmp_buf jump;
  std::jmp_buf *outer = tChunkJump;
  tChunkJump = &jump;
  if (setjmp(jump) == 0)
    body(closure, b, e);
  tChunkJump = outer;
}

} // namespace

std::jmp_buf *moe::detail::currentChunkJump() { return tChunkJump; }

ThreadPool::ThreadPool(unsigned threads) : threads_(std::max(threads, 1u)) {}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread &t : workers_)
    t.join();
}

bool ThreadPool::startWorkers() noexcept {
  if (started_.load(std::memory_order_acquire))
    return haveWorkers_;
  std::lock_guard<std::mutex> lock(mutex_);
  if (!started_.load(std::memory_order_relaxed)) {
    try {
      workers_.reserve(threads_ - 1);
      jobs_.reserve(16);
      for (unsigned i = 1; i < threads_; ++i)
        workers_.emplace_back([this] { workerLoop(); });
    } catch (...) {
      // Fewer workers (or none): the callers run more chunks themselves.
    }
    haveWorkers_ = !workers_.empty();
    started_.store(true, std::memory_order_release);
  }
  return haveWorkers_;
}

void ThreadPool::runChunks(Job &job) {
  const auto grain = static_cast<uint64_t>(job.grain);
  for (uint64_t k; (k = job.next.fetch_add(1, std::memory_order_relaxed)) <
                   job.chunks;) {
    // Modulo 2^64: begin + k * grain never passes `end`.
    uint64_t start = static_cast<uint64_t>(job.begin) + k * grain;
    int64_t b = static_cast<int64_t>(start);
    int64_t e =
        k + 1 == job.chunks ? job.end : static_cast<int64_t>(start + grain);
    runChunk(job.body, job.closure, b, e);
  }
}

void ThreadPool::runChunksAlone(const Job &job) {
  const auto grain = static_cast<uint64_t>(job.grain);
  for (uint64_t k = 0; k < job.chunks; ++k) {
    uint64_t start = static_cast<uint64_t>(job.begin) + k * grain;
    runChunk(job.body, job.closure, static_cast<int64_t>(start),
             k + 1 == job.chunks ? job.end
                                 : static_cast<int64_t>(start + grain));
  }
}

ThreadPool::Job *ThreadPool::takeJobLocked() {
  while (!jobs_.empty()) {
    Job *job = jobs_.front();
    if (job->next.load(std::memory_order_relaxed) < job->chunks) {
      job->users.fetch_add(1, std::memory_order_relaxed);
      // Another run's job goes first next time.
      std::rotate(jobs_.begin(), jobs_.begin() + 1, jobs_.end());
      return job;
    }
    dropJobLocked(job);
  }
  return nullptr;
}

void ThreadPool::dropJobLocked(Job *job) {
  auto it = std::find(jobs_.begin(), jobs_.end(), job);
  if (it != jobs_.end())
    jobs_.erase(it);
  pending_.store(jobs_.size(), std::memory_order_relaxed);
}

void ThreadPool::workerLoop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    if (stopping_)
      return;
    if (Job *job = takeJobLocked()) {
      lock.unlock();
      runChunks(*job);
      lock.lock();
      if (job->next.load(std::memory_order_relaxed) >= job->chunks)
        dropJobLocked(job);
      // The job's caller may return as soon as this reaches 0 and it holds
      // the mutex: `job` is not touched after it.
      if (job->users.fetch_sub(1, std::memory_order_acq_rel) == 1)
        done_.notify_all();
      continue;
    }
    lock.unlock();
    for (int i = 0; i < kSpins && pending_.load(std::memory_order_relaxed) == 0;
         ++i)
      cpuRelax();
    lock.lock();
    if (stopping_ || !jobs_.empty())
      continue;
    ++sleepers_;
    wake_.wait(lock);
    --sleepers_;
  }
}

void ThreadPool::parallelFor(int64_t begin, int64_t end, int64_t grain,
                             moe_parallel_body body, void *closure) noexcept {
  if (end <= begin || !body)
    return;
  if (grain < 1)
    grain = 1;
  uint64_t span = static_cast<uint64_t>(end) - static_cast<uint64_t>(begin);
  auto g = static_cast<uint64_t>(grain);
  uint64_t chunks = span / g + (span % g != 0);
  if (tChunkJump) {
    // Called from a body: on this thread, in order. Nothing with a
    // destructor lives here either (a misbehaving body jumps past it).
    for (uint64_t k = 0; k < chunks; ++k) {
      uint64_t start = static_cast<uint64_t>(begin) + k * g;
      body(closure, static_cast<int64_t>(start),
           k + 1 == chunks ? end : static_cast<int64_t>(start + g));
    }
    return;
  }
  Job job;
  job.body = body;
  job.closure = closure;
  job.begin = begin;
  job.end = end;
  job.grain = grain;
  job.chunks = chunks;
  // Alone (one thread, or no worker could start): the same chunks, in
  // order, without the atomic claim each (a locked add per chunk was 3.5%
  // of a one-thread decode step).
  if (chunks == 1 || threads_ == 1 || !startWorkers()) {
    runChunksAlone(job);
    return;
  }
  unsigned toWake = 0, sleepers = 0;
  bool listed = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    try {
      jobs_.push_back(&job);
      listed = true;
    } catch (...) {
      // No room in the list: the job runs here alone.
    }
    if (listed) {
      pending_.store(jobs_.size(), std::memory_order_relaxed);
      sleepers = sleepers_;
      toWake = static_cast<unsigned>(std::min<uint64_t>(chunks - 1, sleepers));
    }
  }
  if (!listed) {
    runChunks(job);
    return;
  }
  if (toWake && toWake >= sleepers)
    wake_.notify_all();
  else
    for (unsigned i = 0; i < toWake; ++i)
      wake_.notify_one();
  runChunks(job);
  // Workers still running chunks of the job: spin a little, then sleep.
  for (int i = 0;
       i < kSpins && job.users.load(std::memory_order_acquire) != 0; ++i)
    cpuRelax();
  std::unique_lock<std::mutex> lock(mutex_);
  dropJobLocked(&job);
  while (job.users.load(std::memory_order_acquire) != 0)
    done_.wait(lock);
}

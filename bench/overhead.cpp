//===- overhead.cpp - the runtime's overhead per moe_session_run -----------===//
//
//   moe-overhead-bench MODEL.moeb INPUT.npy NAME [RUNS] [--threads N]
//
// Runs the model's one input NAME (read from INPUT.npy, passed as a view:
// never copied) 200 times to warm up, then RUNS times (default 2000), and
// prints the median time of a whole moe_session_run and the median time
// spent outside the code's entry (checks, arena, output tensors, the call):
//
//   p50 per run X us, p50 runtime overhead Y us (threads T)
//
// The time inside the entry comes from the runtime's test hook
// (src/test_hooks.h, setEntryTiming). Built by runtime/CMakeLists.txt; the
// goal for a small model is an overhead under 10 us. Errors: a message on
// stderr and exit status 1.
//
//===----------------------------------------------------------------------===//

#include "moe/npy.h"
#include "moe_runtime.hpp"
#include "test_hooks.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

int fail(const std::string &message) {
  std::fprintf(stderr, "moe-overhead-bench: error: %s\n", message.c_str());
  return 1;
}

/// A positive count from `text`, or -1.
long long count(const char *text, long long max) {
  char *end = nullptr;
  long long n = std::strtoll(text, &end, 10);
  return *text && !*end && n >= 1 && n <= max ? n : -1;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

} // namespace

int main(int argc, char **argv) {
  std::vector<std::string> args;
  long long threads = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) {
      if ((threads = count(argv[++i], MOE_MAX_THREADS)) < 0)
        return fail("--threads expects an integer from 1 to " +
                    std::to_string(MOE_MAX_THREADS));
    } else {
      args.push_back(a);
    }
  }
  if (args.size() < 3 || args.size() > 4) {
    std::fprintf(stderr, "usage: moe-overhead-bench MODEL.moeb INPUT.npy "
                         "NAME [RUNS] [--threads N]\n");
    return 1;
  }
  long long runs = args.size() == 4 ? count(args[3].c_str(), 100000000) : 2000;
  if (runs < 0)
    return fail("RUNS expects a positive count, got '" + args[3] + "'");

  moe::Instance instance;
  moe::Status st = moe::Instance::create(instance);
  moe::SessionOptions options;
  if (st.ok())
    st = moe::SessionOptions::create(options);
  if (st.ok() && threads)
    st = options.setThreads(threads);
  moe::Session session;
  if (st.ok())
    st = moe::Session::load(instance, args[0], options, session);
  if (!st.ok())
    return fail(st.message());
  moe::npy::Array array;
  std::string err = moe::npy::read(args[1], array);
  if (!err.empty())
    return fail(err);
  moe::Tensor input;
  st = moe::Tensor::view(array.dtype, array.dims, array.bytes.data(), input);
  if (!st.ok())
    return fail(st.message());

  const std::vector<std::string> names = {args[2]};
  const std::vector<const moe::Tensor *> inputs = {&input};
  std::vector<moe::Tensor> outputs;
  moe::test_hooks::setEntryTiming(true);
  for (int i = 0; i < 200; ++i)
    if (!(st = session.run(names, inputs, outputs)).ok())
      return fail(st.message());
  using clock = std::chrono::steady_clock;
  std::vector<double> total, overhead;
  total.reserve(static_cast<size_t>(runs));
  overhead.reserve(static_cast<size_t>(runs));
  for (long long i = 0; i < runs; ++i) {
    outputs.clear(); // The last run's outputs are freed outside the clock.
    uint64_t inside = moe::test_hooks::entryNanoseconds();
    auto start = clock::now();
    st = session.run(names, inputs, outputs);
    double ns = static_cast<double>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() -
                                                             start)
            .count());
    if (!st.ok())
      return fail(st.message());
    inside = moe::test_hooks::entryNanoseconds() - inside;
    total.push_back(ns / 1000.0);
    overhead.push_back((ns - static_cast<double>(inside)) / 1000.0);
  }
  std::printf("p50 per run %.2f us, p50 runtime overhead %.2f us (threads "
              "%zu)\n",
              median(total), median(overhead), session.threadCount());
  return 0;
}

//===- moe-run.cpp - run a .moeb artifact ---------------------------------===//
//
//   moe-run model.moeb --input x=x.npy [--input ...] [--output-dir out/]
//   moe-run model.moeb --input x=x.npy --benchmark [--warmup 3] [--repeats 20]
//   moe-run model.moeb --input x=x.npy --threads 4
//   moe-run model.moeb --input tokens=prompt.npy --generate N
//       [--temperature T --top-k K --seed S] [--max-length L]
//       [--output-dir out/]
//
// Links only the runtime (no MLIR, no LLVM). Prints the signature's outputs
// (dtype, shape, min/max/mean, first values); with --output-dir writes one
// .npy file per output, named by moe::npy::fileNameFor (the output name,
// percent-encoded so that it stays inside the directory; the name written
// is printed); two outputs whose file names are equal but for ASCII case
// (or clash through the hash of long names) are refused before anything
// is written. --benchmark prints latency percentiles and tokens/s
// (tokens: the product of the first input's first two dims, or its first
// dim when it has rank 1) and the session's thread count. --threads N sets
// the threads of the session's pool (1 to MOE_MAX_THREADS; default: the
// machine's cores). --map-weights maps the artifact instead of reading it
// into memory advised for huge pages (moe_session_options_set_weight_memory).
// --profile times every run of an entry and every parallel loop of the
// code (moe_session_options_set_profile) and prints, after everything else,
// the loops by time: their function names in the code (the ONNX node each
// computes), calls, calls split over the pool, iterations and time.
// Inputs are passed to the runtime as views of the .npy
// data (never copied). --generate N runs an artifact compiled with
// `moe-compile --generation` through a generation context
// (moe_generation_*): its entry "prefill" on the prompt, then N - 1 steps
// of "decode", one token each, with the key/value caches of the context
// (sized for --max-length positions, default prompt + N). Tokens are
// greedy (argmax) at temperature 0, else sampled from softmax(logits / T),
// over the K most likely with --top-k, from a generator seeded by --seed.
// Each step's tokens are printed as they come, then tokens/s of the
// prefill and of the decode steps; --output-dir gets generated.npy (int64
// [B, N]). Errors: "moe-run: error: ..." and exit status 1.
//
//===----------------------------------------------------------------------===//

#include "moe/npy.h"
#include "moe/text.h"
#include "moe_runtime.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace {

/// `text` with every byte outside printable ASCII (and '\\') as \xNN:
/// names come from the artifact and must not drive the terminal.
std::string printable(const std::string &text) {
  return moe::printable(text, std::string::npos);
}

/// `file` with ASCII letters in lower case: two names equal this way are
/// one file on a case-insensitive file system.
std::string caseFolded(std::string file) {
  for (char &c : file)
    if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');
  return file;
}

int fail(const std::string &message) {
  std::fprintf(stderr, "moe-run: error: %s\n", printable(message).c_str());
  return 1;
}

void usage() {
  std::fprintf(stderr,
               "usage: moe-run MODEL.moeb --input NAME=FILE.npy ... "
               "[--output-dir DIR] [--threads N] [--map-weights] "
               "[--profile] [--benchmark] [--warmup N] "
               "[--repeats N] [--generate N [--temperature T] [--top-k K] "
               "[--seed S] [--max-length L]]\n");
}

double asDouble(const void *data, moe_dtype_t dtype, size_t i) {
  switch (dtype) {
  case MOE_DTYPE_F32:
    return static_cast<const float *>(data)[i];
  case MOE_DTYPE_F64:
    return static_cast<const double *>(data)[i];
  case MOE_DTYPE_I64:
    return static_cast<double>(static_cast<const int64_t *>(data)[i]);
  case MOE_DTYPE_I32:
    return static_cast<const int32_t *>(data)[i];
  case MOE_DTYPE_I8:
    return static_cast<const int8_t *>(data)[i];
  case MOE_DTYPE_U8:
  case MOE_DTYPE_BOOL:
    return static_cast<const uint8_t *>(data)[i];
  case MOE_DTYPE_I16:
    return static_cast<const int16_t *>(data)[i];
  case MOE_DTYPE_U16:
    return static_cast<const uint16_t *>(data)[i];
  case MOE_DTYPE_U32:
    return static_cast<const uint32_t *>(data)[i];
  case MOE_DTYPE_U64:
    return static_cast<double>(static_cast<const uint64_t *>(data)[i]);
  default:
    return NAN;
  }
}

std::string shapeString(const std::vector<int64_t> &dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i)
    s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

struct GenerateOptions {
  int64_t steps = 0;
  double temperature = 0;
  int64_t topK = 0; // 0: all tokens
  uint64_t seed = 0;
  int64_t maxLength = 0; // 0: prompt + steps
};

/// The next token of each row of `logits` [B, T, V] (its last position).
std::vector<int64_t> pickTokens(const moe::Tensor &logits,
                                const GenerateOptions &o,
                                std::mt19937_64 &rng) {
  std::vector<int64_t> d = logits.dims();
  int64_t b = d[0], t = d[1], v = d[2];
  std::vector<int64_t> out(static_cast<size_t>(b));
  for (int64_t r = 0; r < b; ++r) {
    const float *row = logits.data<float>() + (r * t + t - 1) * v;
    if (o.temperature == 0) {
      out[r] = std::max_element(row, row + v) - row;
      continue;
    }
    std::vector<double> z(row, row + v);
    for (double &x : z)
      x /= o.temperature;
    if (o.topK > 0 && o.topK < v) {
      std::vector<double> sorted = z;
      std::nth_element(sorted.begin(), sorted.begin() + (o.topK - 1),
                       sorted.end(), std::greater<double>());
      double kth = sorted[o.topK - 1];
      for (double &x : z)
        if (x < kth)
          x = -INFINITY;
    }
    double top = *std::max_element(z.begin(), z.end());
    for (double &x : z)
      x = std::exp(x - top);
    std::discrete_distribution<int64_t> pick(z.begin(), z.end());
    out[r] = pick(rng);
  }
  return out;
}

/// --generate: prefill, then decode steps, through a generation context
/// (moe_generation_*: the runtime keeps the caches).
int generate(moe::Session &session, const moe::Tensor &prompt,
             const GenerateOptions &o, const std::string &outputDir) {
  std::vector<int64_t> pd = prompt.dims();
  if (prompt.dtype() != MOE_DTYPE_I64 || pd.size() != 2 || pd[1] < 1)
    return fail("--generate needs tokens int64 [B, T] with T >= 1");
  int64_t batch = pd[0], length = pd[1];
  int64_t limit = o.maxLength ? o.maxLength : length + o.steps;
  if (length + o.steps > limit)
    return fail(std::to_string(length) + " prompt tokens and " +
                std::to_string(o.steps) + " new ones exceed the maximum "
                "length " + std::to_string(limit));
  moe::Generation gen;
  moe::Status st = moe::Generation::create(session, batch, limit, gen);
  if (st.code() == MOE_NOT_FOUND)
    return fail("--generate needs the entries 'prefill' and 'decode': "
                "compile the model with moe-compile --generation");
  if (!st.ok())
    return fail(st.message());
  using clock = std::chrono::steady_clock;
  std::mt19937_64 rng(o.seed);
  moe::Tensor logits;
  auto start = clock::now();
  if (!(st = gen.step(prompt, logits)).ok())
    return fail(st.message());
  double prefillMs =
      std::chrono::duration<double, std::milli>(clock::now() - start).count();
  std::vector<int64_t> generated(static_cast<size_t>(batch * o.steps));
  double decodeMs = 0;
  for (int64_t step = 0; step < o.steps; ++step) {
    std::vector<int64_t> token = pickTokens(logits, o, rng);
    std::printf("token %lld:", static_cast<long long>(step));
    for (int64_t r = 0; r < batch; ++r) {
      generated[r * o.steps + step] = token[r];
      std::printf(" %lld", static_cast<long long>(token[r]));
    }
    std::printf("\n");
    std::fflush(stdout);
    if (step + 1 == o.steps)
      break;
    moe::Tensor tokens;
    if (!(st = moe::Tensor::view(MOE_DTYPE_I64, {batch, 1}, token.data(),
                                 tokens))
             .ok())
      return fail(st.message());
    auto t0 = clock::now();
    st = gen.step(tokens, logits);
    decodeMs +=
        std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    if (!st.ok())
      return fail(st.message());
  }
  std::printf("prefill: %lld tokens x %lld in %.3f ms, %.1f tokens/s\n",
              static_cast<long long>(length), static_cast<long long>(batch),
              prefillMs, length * batch / (prefillMs / 1000.0));
  if (o.steps > 1)
    std::printf("decode: %lld steps in %.3f ms, %.1f tokens/s (batch %lld); "
                "%zu threads\n",
                static_cast<long long>(o.steps - 1), decodeMs,
                (o.steps - 1) * batch / (decodeMs / 1000.0),
                static_cast<long long>(batch), session.threadCount());
  if (!outputDir.empty()) {
    if (mkdir(outputDir.c_str(), 0755) != 0 && errno != EEXIST)
      return fail("cannot create the output directory '" + outputDir +
                  "': " + std::strerror(errno));
    int dirFd = open(outputDir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirFd < 0)
      return fail("cannot open the output directory '" + outputDir +
                  "': " + std::strerror(errno));
    std::string err = moe::npy::writeAt(dirFd, "generated.npy", MOE_DTYPE_I64,
                                        {batch, o.steps}, generated.data());
    close(dirFd);
    if (!err.empty())
      return fail("generated.npy: " + err);
    std::printf("written: %s/generated.npy\n", printable(outputDir).c_str());
  }
  return 0;
}

/// Prints the session's profile: the runs, then up to kShown loops by time.
int printProfile(const moe::Session &session) {
  constexpr size_t kShown = 40;
  uint64_t runs = 0, runNs = 0;
  std::vector<moe_profile_loop> loops;
  moe::Status st = session.profile(runs, runNs, loops);
  if (!st.ok())
    return fail(st.message());
  uint64_t loopNs = 0;
  for (const moe_profile_loop &l : loops)
    loopNs += l.nanoseconds;
  auto percent = [&](uint64_t ns) {
    return runNs ? 100.0 * static_cast<double>(ns) / static_cast<double>(runNs)
                 : 0.0;
  };
  std::printf("profile: %llu runs of entries in %.3f ms; %zu parallel "
              "loops, %.3f ms (%.1f%%)\n",
              static_cast<unsigned long long>(runs), runNs / 1e6, loops.size(),
              loopNs / 1e6, percent(loopNs));
  if (loops.empty())
    return 0;
  std::printf("  %10s %6s %9s %9s %11s %10s  %s\n", "ms", "%", "calls", "split",
              "iters/call", "us/call", "loop");
  for (size_t i = 0; i < std::min(loops.size(), kShown); ++i) {
    const moe_profile_loop &l = loops[i];
    double calls = l.calls ? static_cast<double>(l.calls) : 1.0;
    std::printf("  %10.3f %6.1f %9llu %9llu %11.1f %10.2f  %s\n",
                l.nanoseconds / 1e6, percent(l.nanoseconds),
                static_cast<unsigned long long>(l.calls),
                static_cast<unsigned long long>(l.split_calls),
                static_cast<double>(l.iterations) / calls,
                static_cast<double>(l.nanoseconds) / 1e3 / calls,
                printable(l.name).c_str());
  }
  if (loops.size() > kShown) {
    uint64_t rest = 0;
    for (size_t i = kShown; i < loops.size(); ++i)
      rest += loops[i].nanoseconds;
    std::printf("  %10.3f %6.1f  (%zu more loops)\n", rest / 1e6, percent(rest),
                loops.size() - kShown);
  }
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  std::string model, outputDir;
  std::vector<std::pair<std::string, std::string>> inputs;
  bool benchmark = false;
  int warmup = 3, repeats = 20;
  int64_t threads = 0; // The session's default.
  bool mapWeights = false;
  bool profile = false;
  GenerateOptions gen;
  bool generating = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char *flag) -> const char * {
      if (i + 1 >= argc) {
        fail(std::string(flag) + " needs a value");
        return nullptr;
      }
      return argv[++i];
    };
    if (a == "--input") {
      const char *v = value("--input");
      if (!v)
        return 1;
      std::string spec = v;
      size_t eq = spec.find('=');
      if (eq == std::string::npos || eq == 0)
        return fail("--input expects NAME=FILE.npy, got '" + spec + "'");
      inputs.emplace_back(spec.substr(0, eq), spec.substr(eq + 1));
    } else if (a == "--output-dir") {
      const char *v = value("--output-dir");
      if (!v)
        return 1;
      outputDir = v;
    } else if (a == "--benchmark") {
      benchmark = true;
    } else if (a == "--map-weights") {
      mapWeights = true;
    } else if (a == "--profile") {
      profile = true;
    } else if (a == "--warmup" || a == "--repeats") {
      const char *v = value(a.c_str());
      if (!v)
        return 1;
      char *end = nullptr;
      long n = std::strtol(v, &end, 10);
      if (*end || n < (a == "--repeats" ? 1 : 0) || n > 1000000)
        return fail(a + " expects a count, got '" + v + "'");
      (a == "--warmup" ? warmup : repeats) = static_cast<int>(n);
    } else if (a == "--threads") {
      const char *v = value("--threads");
      if (!v)
        return 1;
      char *end = nullptr;
      errno = 0;
      long long n = std::strtoll(v, &end, 10);
      if (!(*v >= '0' && *v <= '9') || *end || errno == ERANGE || n < 1 ||
          n > MOE_MAX_THREADS)
        return fail(std::string("--threads expects an integer from 1 to ") +
                    std::to_string(MOE_MAX_THREADS) + ", got '" + v + "'");
      threads = n;
    } else if (a == "--generate" || a == "--top-k" || a == "--seed" ||
               a == "--max-length") {
      const char *v = value(a.c_str());
      if (!v)
        return 1;
      char *end = nullptr;
      errno = 0;
      long long n = std::strtoll(v, &end, 10);
      long long lo = a == "--generate" || a == "--top-k" ? 1 : 0;
      if (!(*v >= '0' && *v <= '9') || *end || errno == ERANGE || n < lo ||
          (a != "--seed" && n > MOE_MAX_SYMBOLIC_DIM))
        return fail(a + " expects an integer from " + std::to_string(lo) +
                    (a == "--seed" ? "" : " to " +
                                              std::to_string(
                                                  MOE_MAX_SYMBOLIC_DIM)) +
                    ", got '" + v + "'");
      if (a == "--generate") {
        gen.steps = n;
        generating = true;
      } else if (a == "--top-k") {
        gen.topK = n;
      } else if (a == "--seed") {
        gen.seed = static_cast<uint64_t>(n);
      } else {
        gen.maxLength = n;
      }
    } else if (a == "--temperature") {
      const char *v = value("--temperature");
      if (!v)
        return 1;
      char *end = nullptr;
      double t = std::strtod(v, &end);
      if (*end || !(t >= 0) || !std::isfinite(t))
        return fail(std::string("--temperature expects a number >= 0, got '") +
                    v + "'");
      gen.temperature = t;
    } else if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else if (!a.empty() && a[0] == '-') {
      usage();
      return fail("unknown option '" + a + "'");
    } else if (model.empty()) {
      model = a;
    } else {
      usage();
      return fail("more than one model given");
    }
  }
  if (model.empty()) {
    usage();
    return fail("no model given");
  }

  moe::Instance instance;
  moe::Status st = moe::Instance::create(instance);
  if (!st.ok())
    return fail(st.message());
  moe::SessionOptions options;
  st = moe::SessionOptions::create(options);
  if (st.ok() && threads)
    st = options.setThreads(threads);
  if (st.ok() && mapWeights)
    st = options.setWeightMemory(MOE_WEIGHTS_MAPPED);
  if (st.ok() && profile)
    st = options.setProfile(true);
  moe::Session session;
  if (st.ok())
    st = moe::Session::load(instance, model, options, session);
  if (!st.ok())
    return fail(st.message());

  if (generating) {
    if (benchmark)
      return fail("--generate and --benchmark are exclusive (--generate "
                  "prints its own tokens/s)");
    if (inputs.size() != 1 || inputs[0].first != "tokens")
      return fail("--generate takes one input, tokens=PROMPT.npy");
    moe::npy::Array prompt;
    std::string err = moe::npy::read(inputs[0].second, prompt);
    if (!err.empty())
      return fail("input 'tokens': " + err);
    moe::Tensor tokens;
    st = moe::Tensor::view(prompt.dtype, prompt.dims, prompt.bytes.data(),
                           tokens);
    if (!st.ok())
      return fail("input 'tokens': " + st.message());
    int rc = generate(session, tokens, gen, outputDir);
    return rc == 0 && profile ? printProfile(session) : rc;
  } else if (gen.temperature != 0 || gen.topK || gen.seed || gen.maxLength) {
    return fail("--temperature, --top-k, --seed and --max-length need "
                "--generate");
  }

  // The output files, all named before anything runs or is written: two
  // outputs must not share a file, not even on a case-insensitive file
  // system (the second would silently replace the first).
  std::vector<std::string> files;
  if (!outputDir.empty()) {
    std::map<std::string, size_t> written; // Case-folded name -> output.
    for (size_t i = 0; i < session.outputCount(); ++i) {
      files.push_back(moe::npy::fileNameFor(session.outputName(i)));
      auto [it, fresh] = written.emplace(caseFolded(files.back()), i);
      if (fresh)
        continue;
      const std::string &first = files[it->second];
      return fail("outputs '" + session.outputName(it->second) + "' and '" +
                  session.outputName(i) + "' would both be written to " +
                  (first == files.back()
                       ? "'" + first + "'"
                       : "'" + first + "' and '" + files.back() +
                             "', one file where case is ignored") +
                  "; nothing was written");
    }
  }

  // The arrays outlive the runs: the tensors are views of their data.
  std::vector<moe::npy::Array> arrays(inputs.size());
  std::vector<moe::Tensor> tensors(inputs.size());
  std::vector<std::string> names;
  std::vector<const moe::Tensor *> pointers;
  for (size_t i = 0; i < inputs.size(); ++i) {
    moe::npy::Array &array = arrays[i];
    std::string err = moe::npy::read(inputs[i].second, array);
    if (!err.empty())
      return fail("input '" + inputs[i].first + "': " + err);
    st = moe::Tensor::view(array.dtype, array.dims, array.bytes.data(),
                           tensors[i]);
    if (!st.ok())
      return fail("input '" + inputs[i].first + "': " + st.message());
    names.push_back(inputs[i].first);
    pointers.push_back(&tensors[i]);
  }

  std::vector<moe::Tensor> outputs;
  st = session.run(names, pointers, outputs);
  if (!st.ok())
    return fail(st.message());

  // Output files are created inside this directory only (openat on its
  // descriptor, never through a path built from an output name).
  int dirFd = -1;
  if (!outputDir.empty()) {
    if (mkdir(outputDir.c_str(), 0755) != 0 && errno != EEXIST)
      return fail("cannot create the output directory '" + outputDir +
                  "': " + std::strerror(errno));
    dirFd = open(outputDir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirFd < 0)
      return fail("cannot open the output directory '" + outputDir +
                  "': " + std::strerror(errno));
  }

  for (size_t i = 0; i < outputs.size(); ++i) {
    const moe::Tensor &t = outputs[i];
    std::string name = session.outputName(i);
    size_t n = t.elementCount();
    double lo = INFINITY, hi = -INFINITY, sum = 0;
    for (size_t k = 0; k < n; ++k) {
      double v = asDouble(t.data<void>(), t.dtype(), k);
      lo = std::min(lo, v);
      hi = std::max(hi, v);
      sum += v;
    }
    std::printf("output %s: %s %s", printable(name).c_str(),
                moe_dtype_name(t.dtype()),
                shapeString(t.dims()).c_str());
    if (n)
      std::printf(" min %.6g max %.6g mean %.6g", lo, hi, sum / n);
    std::printf("\n  first:");
    for (size_t k = 0; k < std::min<size_t>(n, 8); ++k)
      std::printf(" %.6g", asDouble(t.data<void>(), t.dtype(), k));
    std::printf("\n");
    if (dirFd >= 0) {
      const std::string &file = files[i];
      std::string err = moe::npy::writeAt(dirFd, file, t.dtype(), t.dims(),
                                          t.data<void>());
      if (!err.empty())
        return fail("output '" + name + "': " + err);
      std::printf("  written: %s/%s\n", printable(outputDir).c_str(),
                  file.c_str());
    }
  }
  if (dirFd >= 0)
    close(dirFd);

  if (benchmark) {
    using clock = std::chrono::steady_clock;
    for (int i = 0; i < warmup; ++i)
      if (!(st = session.run(names, pointers, outputs)).ok())
        return fail(st.message());
    std::vector<double> ms;
    for (int i = 0; i < repeats; ++i) {
      auto start = clock::now();
      if (!(st = session.run(names, pointers, outputs)).ok())
        return fail(st.message());
      ms.push_back(std::chrono::duration<double, std::milli>(clock::now() -
                                                             start)
                       .count());
    }
    std::sort(ms.begin(), ms.end());
    auto pct = [&](double p) {
      return ms[std::min(ms.size() - 1,
                         static_cast<size_t>(p * (ms.size() - 1) + 0.5))];
    };
    double tokens = 0;
    if (!tensors.empty()) {
      std::vector<int64_t> d = tensors[0].dims();
      tokens = d.empty() ? 1 : d.size() == 1 ? d[0] : d[0] * d[1];
    }
    std::printf("benchmark: %d runs after %d warm-up: p50 %.3f ms, p90 %.3f "
                "ms, p99 %.3f ms, min %.3f ms; %.1f tokens/s; %zu threads\n",
                repeats, warmup, pct(0.5), pct(0.9), pct(0.99), ms.front(),
                tokens / (pct(0.5) / 1000.0), session.threadCount());
  }
  return profile ? printProfile(session) : 0;
}

//===- moe-run.cpp - run a .moeb artifact ----------------------------------===//
//
//   moe-run model.moeb --input x=x.npy [--input ...] [--output-dir out/]
//   moe-run model.moeb --input x=x.npy --benchmark [--warmup 3] [--repeats 20]
//   moe-run model.moeb --input x=x.npy --threads 4
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
// machine's cores). Inputs are passed to the runtime as views of the .npy
// data (never copied). Errors: "moe-run: error: ..." and exit status 1.
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
               "[--output-dir DIR] [--threads N] [--benchmark] [--warmup N] "
               "[--repeats N]\n");
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

} // namespace

int main(int argc, char **argv) {
  std::string model, outputDir;
  std::vector<std::pair<std::string, std::string>> inputs;
  bool benchmark = false;
  int warmup = 3, repeats = 20;
  int64_t threads = 0; // The session's default.
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
  moe::Session session;
  if (st.ok())
    st = moe::Session::load(instance, model, options, session);
  if (!st.ok())
    return fail(st.message());

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
  return 0;
}

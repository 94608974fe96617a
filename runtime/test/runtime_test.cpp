//===- runtime_test.cpp - unit tests of the moe-mlir runtime ---------------===//

#include "moe/artifact_format.h"
#include "moe/artifact_reader.h"
#include "moe/npy.h"
#include "moe/text.h"
#include "moe_runtime.hpp"
#include "test_hooks.h"

#include <gtest/gtest.h>

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <iterator>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace moe;

namespace {

std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

/// An artifact from sections, with the writer moe-compile uses.
std::string artifactBytes(
    const std::vector<std::pair<artifact::SectionKind, std::string>> &sections,
    uint32_t version = artifact::kVersion) {
  return artifact::serialize(sections, version);
}

const std::string &testModel() {
  static const std::string bytes = readFile(MOE_TEST_MODEL_PATH);
  return bytes;
}

/// Overwrites the bytes after the one occurrence of `marker` in `code`.
void patchAfter(std::string &code, const std::string &marker, size_t skip,
                const void *bytes, size_t size) {
  size_t at = code.find(marker);
  ASSERT_NE(at, std::string::npos) << "no " << marker << " in the test model";
  ASSERT_EQ(code.find(marker, at + 1), std::string::npos)
      << marker << " occurs twice in the test model";
  std::memcpy(&code[at + skip], bytes, size);
}

/// The test model's code as moe-compile would emit it for `signature`: its
/// moe_signature_digest placeholder replaced by the signature's digest;
/// `bias` and `mode` set its knobs (test_model.c).
std::string codeFor(const std::string &signature, float bias = 0,
                    int32_t mode = 0) {
  std::string code = testModel();
  const uint64_t placeholder = 0x5AFE5AFE5AFE5AFEull;
  uint64_t digest =
      artifact::signatureDigest(signature.data(), signature.size());
  patchAfter(code, std::string(reinterpret_cast<const char *>(&placeholder), 8),
             0, &digest, 8);
  // struct { char marker[16]; float bias; int32_t mode; }
  std::string marker("MOE-TEST-KNOBS:", 16);
  patchAfter(code, marker, 16, &bias, 4);
  patchAfter(code, marker, 20, &mode, 4);
  return code;
}

const float kWeights[4] = {0.5f, -1.0f, 2.0f, 10.0f};
const char kSignature[] = "entry moe_entry\n"
                          "input x f32 2 ?N 4\n"
                          "output y f32 2 ?N 4\n"
                          "weight 0 16 f32 1 4\n";

std::string weightBytes() {
  return std::string(reinterpret_cast<const char *>(kWeights), 16);
}

/// An artifact of the test model compiled for `signature`.
std::string artifactFor(const std::string &signature,
                        const std::string &weights = weightBytes(),
                        float bias = 0, int32_t mode = 0) {
  return artifactBytes(
      {{artifact::SectionKind::Signature, signature},
       {artifact::SectionKind::CpuCode, codeFor(signature, bias, mode)},
       {artifact::SectionKind::Weights, weights}});
}

std::string goodArtifact() { return artifactFor(kSignature); }

class RuntimeTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_TRUE(Instance::create(instance).ok());
    char tmpl[] = "/tmp/moe-runtime-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir = tmpl;
  }
  void TearDown() override {
    for (const std::string &f : files)
      std::remove(f.c_str());
    rmdir(dir.c_str());
  }
  std::string write(const std::string &name, const std::string &bytes) {
    std::string path = dir + "/" + name;
    std::ofstream(path, std::ios::binary) << bytes;
    files.push_back(path);
    return path;
  }
  /// Loads `bytes` from a file of its own (a live session maps its file).
  Status load(const std::string &bytes, Session &session) {
    std::string name = "model-" + std::to_string(files.size()) + ".moeb";
    return Session::load(instance, write(name, bytes), session);
  }
  void expectLoadError(const std::string &bytes, moe_status_code_t code,
                       const std::string &text) {
    Session session;
    Status s = load(bytes, session);
    EXPECT_FALSE(s.ok()) << "loaded, expected: " << text;
    EXPECT_EQ(s.code(), code) << s.message();
    EXPECT_NE(s.message().find(text), std::string::npos) << s.message();
  }
  Instance instance;
  std::string dir;
  std::vector<std::string> files;
};

void expectBias(Session &session, float bias);

Tensor makeInput(int64_t rows, float base = 1.0f) {
  std::vector<float> data(rows * 4);
  for (size_t i = 0; i < data.size(); ++i)
    data[i] = base + static_cast<float>(i);
  Tensor t;
  EXPECT_TRUE(Tensor::create(MOE_DTYPE_F32, {rows, 4}, data.data(), t).ok());
  return t;
}

} // namespace

TEST_F(RuntimeTest, RunsAndReturnsOwnedOutputs) {
  Session session;
  Status s = load(goodArtifact(), session);
  ASSERT_TRUE(s.ok()) << s.message();
  Tensor x = makeInput(3);
  std::vector<Tensor> outputs;
  s = session.run({"x"}, {&x}, outputs);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(outputs[0].dims(), (std::vector<int64_t>{3, 4}));
  for (int i = 0; i < 12; ++i)
    EXPECT_FLOAT_EQ(outputs[0].data<float>()[i], 1.0f + i + kWeights[i % 4]);
}

TEST_F(RuntimeTest, Signature) {
  Session session;
  ASSERT_TRUE(load(goodArtifact(), session).ok());
  moe_session *s = session.get();
  EXPECT_EQ(moe_session_input_count(s), 1u);
  EXPECT_STREQ(moe_session_input_name(s, 0), "x");
  EXPECT_EQ(moe_session_input_dtype(s, 0), MOE_DTYPE_F32);
  EXPECT_EQ(moe_session_input_rank(s, 0), 2u);
  EXPECT_EQ(moe_session_input_dim(s, 0, 0), -1);
  EXPECT_STREQ(moe_session_input_dim_name(s, 0, 0), "N");
  EXPECT_EQ(moe_session_input_dim(s, 0, 1), 4);
  EXPECT_STREQ(moe_session_output_name(s, 0), "y");
  // Out of range queries do not crash.
  EXPECT_STREQ(moe_session_input_name(s, 7), "");
  EXPECT_EQ(moe_session_input_dim(s, 0, 9), -1);
}

TEST_F(RuntimeTest, ZeroRows) {
  Session session;
  ASSERT_TRUE(load(goodArtifact(), session).ok());
  Tensor x = makeInput(0);
  std::vector<Tensor> outputs;
  Status s = session.run({"x"}, {&x}, outputs);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(outputs[0].elementCount(), 0u);
}

TEST_F(RuntimeTest, RefusesBadInputs) {
  Session session;
  ASSERT_TRUE(load(goodArtifact(), session).ok());
  Tensor x = makeInput(2);
  Tensor wrongDType, wrongRank, wrongDim;
  int64_t ints[8] = {};
  ASSERT_TRUE(Tensor::create(MOE_DTYPE_I64, {2, 4}, ints, wrongDType).ok());
  ASSERT_TRUE(Tensor::create(MOE_DTYPE_F32, {8}, nullptr, wrongRank).ok());
  ASSERT_TRUE(Tensor::create(MOE_DTYPE_F32, {2, 5}, nullptr, wrongDim).ok());
  std::vector<Tensor> outputs;
  auto expectError = [&](const Status &s, const char *text) {
    EXPECT_FALSE(s.ok());
    EXPECT_EQ(s.code(), MOE_INVALID_ARGUMENT);
    EXPECT_NE(s.message().find(text), std::string::npos) << s.message();
  };
  expectError(session.run({"z"}, {&x}, outputs), "the model has no input 'z'");
  expectError(session.run({"x"}, {&wrongDType}, outputs),
              "input 'x' must be f32, got i64");
  expectError(session.run({"x"}, {&wrongRank}, outputs),
              "input 'x' must have rank 2, got 1");
  expectError(session.run({"x"}, {&wrongDim}, outputs),
              "input 'x' dim 1 must be 4, got 5");
  expectError(session.run({}, {}, outputs), "takes 1 inputs, 0 given");
  expectError(session.run({"x"}, {nullptr}, outputs), "input 0 is null");
  // Raw C API misuse.
  expectError(Status(moe_session_run(nullptr, 0, nullptr, nullptr, 0, nullptr)),
              "session is null");
  moe_tensor *out = nullptr;
  expectError(Status(moe_session_run(session.get(), 1, nullptr, nullptr, 1, &out)),
              "names or inputs is null");
  expectError(Status(moe_session_run(session.get(), 0, nullptr, nullptr, 2, &out)),
              "the model has 1 outputs, 2 asked");
}

TEST_F(RuntimeTest, SymbolsMustAgree) {
  std::string signature = "entry moe_entry\n"
                          "input a f32 2 ?N 4\n"
                          "input b f32 2 ?N 4\n"
                          "output y f32 2 ?N 4\n"
                          "weight 0 16 f32 1 4\n";
  Session session;
  ASSERT_TRUE(
      load(artifactFor(signature, std::string(16, '\0')), session).ok());
  Tensor a = makeInput(2), b = makeInput(3);
  std::vector<Tensor> outputs;
  Status s = session.run({"a", "b"}, {&a, &b}, outputs);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("('N') is 3, but 'N' was 2"), std::string::npos)
      << s.message();
  s = session.run({"a", "a"}, {&a, &a}, outputs);
  EXPECT_NE(s.message().find("given twice"), std::string::npos);
}

TEST_F(RuntimeTest, SymbolsAreDecoded) {
  // "?N" and "?%4E" are one symbol, named "N" (symbols are percent-encoded
  // like names).
  std::string signature = "entry moe_entry\n"
                          "input a f32 2 ?N 4\n"
                          "input b f32 2 ?%4E 4\n"
                          "output y f32 2 ?N 4\n"
                          "weight 0 16 f32 1 4\n";
  Session session;
  ASSERT_TRUE(
      load(artifactFor(signature, std::string(16, '\0')), session).ok());
  EXPECT_STREQ(moe_session_input_dim_name(session.get(), 1, 0), "N");
  Tensor a = makeInput(2), b = makeInput(3);
  std::vector<Tensor> outputs;
  Status s = session.run({"a", "b"}, {&a, &b}, outputs);
  EXPECT_EQ(s.code(), MOE_INVALID_ARGUMENT);
  EXPECT_NE(s.message().find("input 'b' dim 0 ('N') is 3, but 'N' was 2"),
            std::string::npos)
      << s.message();
}

TEST_F(RuntimeTest, RefusesCorruptArtifacts) {
  std::string good = goodArtifact();
  std::string flipped = good;
  flipped[flipped.size() - 3] ^= 0x40; // inside the weights
  expectLoadError(flipped, MOE_DATA_LOSS, "checksum mismatch in section 3");
  expectLoadError(good.substr(0, good.size() / 2), MOE_DATA_LOSS,
                  "truncated or extended");
  expectLoadError(good.substr(0, 10), MOE_DATA_LOSS, "smaller than a header");
  expectLoadError("", MOE_DATA_LOSS, "smaller than a header");
  std::string magic = good;
  magic[0] = 'X';
  expectLoadError(magic, MOE_DATA_LOSS, "bad magic");
  std::string table = good;
  table[40] ^= 1; // section table entry
  expectLoadError(table, MOE_DATA_LOSS, "header checksum mismatch");
  expectLoadError(
      artifactBytes({{artifact::SectionKind::Signature, "entry moe_entry\n"}},
                    /*version=*/99),
      MOE_UNIMPLEMENTED, "format version 99");
  expectLoadError(
      artifactBytes({{artifact::SectionKind::Signature, "entry moe_entry\n"}}),
      MOE_DATA_LOSS, "lacks its CPU code section");
  expectLoadError(
      artifactBytes({{artifact::SectionKind::Signature, "input x f99 1 3\n"},
                     {artifact::SectionKind::CpuCode, "not an elf"}}),
      MOE_DATA_LOSS, "corrupt signature at line 1");
  // Load a good model first: the bad code section below must not be
  // confused with code already loaded.
  Session first;
  ASSERT_TRUE(load(good, first).ok());
  expectLoadError(
      artifactBytes({{artifact::SectionKind::Signature, "entry moe_entry\n"},
                     {artifact::SectionKind::CpuCode, "not an elf"}}),
      MOE_DATA_LOSS, "cannot load the code section");
  expectLoadError(artifactFor("entry moe_entry\nweight 0 64 f32 1 16\n",
                              std::string(8, '\0')),
                  MOE_DATA_LOSS, "corrupt weight record");
  expectLoadError(artifactFor("entry nothere\n"), MOE_DATA_LOSS,
                  "no entry symbol 'nothere'");
  Session missing;
  Status s = Session::load(instance, dir + "/does-not-exist.moeb", missing);
  EXPECT_EQ(s.code(), MOE_NOT_FOUND);
  EXPECT_NE(s.message().find("No such file"), std::string::npos);
  Session directory;
  s = Session::load(instance, dir, directory);
  EXPECT_EQ(s.code(), MOE_INVALID_ARGUMENT);
  EXPECT_NE(s.message().find("is not a regular file"), std::string::npos)
      << s.message();
}

TEST_F(RuntimeTest, RefusesAFifoWithoutWaiting) {
  // Opening a FIFO for reading waits for a writer: the loader must see that
  // it is no regular file before that. Should the load block all the same,
  // a writer's open releases it, and the test fails instead of hanging.
  std::string fifo = dir + "/model.fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  files.push_back(fifo);
  auto loading = std::async(std::launch::async, [&] {
    Session session;
    return Session::load(instance, fifo, session);
  });
  if (loading.wait_for(std::chrono::seconds(10)) !=
      std::future_status::ready) {
    ADD_FAILURE() << "loading a FIFO blocked";
    int w = open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (w >= 0)
      close(w);
  }
  Status s = loading.get();
  EXPECT_EQ(s.code(), MOE_INVALID_ARGUMENT);
  EXPECT_NE(s.message().find("is not a regular file"), std::string::npos)
      << s.message();
}

TEST_F(RuntimeTest, ChecksRequiredCpuFeatures) {
  auto withRequires = [&](const std::string &line) {
    std::string signature = "entry moe_entry\n" + line +
                            "input x f32 2 ?N 4\noutput y f32 2 ?N 4\n"
                            "weight 0 16 f32 1 4\n";
    return artifactFor(signature);
  };
  Session ok;
  Status s = load(withRequires(__builtin_cpu_supports("sse4.2")
                                   ? "requires sse4.2\n"
                                   : "\n"),
                  ok);
  EXPECT_TRUE(s.ok()) << s.message();
  Session unknown;
  // A feature no runtime can check is a corrupt signature, not a CPU gap.
  s = load(withRequires("requires quantum-entanglement\n"), unknown);
  EXPECT_EQ(s.code(), MOE_DATA_LOSS);
  EXPECT_NE(s.message().find("unknown CPU feature 'quantum-entanglement'"),
            std::string::npos)
      << s.message();
  if (!__builtin_cpu_supports("avx512f")) {
    Session lacking;
    s = load(withRequires("requires avx512f\n"), lacking);
    EXPECT_NE(s.message().find("this CPU lacks 'avx512f'"), std::string::npos)
        << s.message();
  }
  // Whatever this CPU has: a CPU without avx512f, then a runtime that
  // cannot check a feature, through the loader's query hook.
  test_hooks::setCpuFeatureQuery([](const char *feature) {
    return std::strcmp(feature, "avx512f") == 0 ? 0 : 1;
  });
  Session lacking, allThere;
  s = load(withRequires("requires avx2 avx512f\n"), lacking);
  EXPECT_EQ(s.code(), MOE_UNIMPLEMENTED);
  EXPECT_NE(s.message().find("this CPU lacks 'avx512f', which the "
                             "artifact's code was compiled for"),
            std::string::npos)
      << s.message();
  s = load(withRequires("requires avx2 fma\n"), allThere);
  EXPECT_TRUE(s.ok()) << s.message();
  test_hooks::setCpuFeatureQuery([](const char *) { return -1; });
  Session unchecked;
  s = load(withRequires("requires avx2\n"), unchecked);
  test_hooks::setCpuFeatureQuery(nullptr);
  EXPECT_EQ(s.code(), MOE_UNIMPLEMENTED);
  EXPECT_NE(s.message().find("the code needs CPU feature 'avx2', which this "
                             "runtime cannot check"),
            std::string::npos)
      << s.message();
}

TEST(SignatureTest, OneListOfCpuFeatures) {
  // The reader accepts exactly the features the loader can check (one
  // list, artifact::kCheckableCpuFeatures); on x86-64 each has an answer.
  std::set<std::string> seen;
  std::string line = "requires";
  for (const char *f : artifact::kCheckableCpuFeatures) {
    EXPECT_TRUE(seen.insert(f).second) << f << " listed twice";
    EXPECT_TRUE(artifact::isKnownCpuFeature(f)) << f;
    line += std::string(" ") + f;
  }
  EXPECT_EQ(seen.size(), 12u);
  EXPECT_FALSE(artifact::isKnownCpuFeature("avx512fp16"));
  std::string text = "entry moe_entry\n" + line + "\n";
  artifact::Signature sig;
  artifact::Result r = artifact::parseSignature(text.data(), text.size(), sig);
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_EQ(sig.requiredFeatures.size(), 12u);
}

#if defined(__x86_64__)
TEST_F(RuntimeTest, ChecksEveryListedFeatureOnThisCpu) {
  // Every listed feature is one the real query can answer: a feature this
  // CPU lacks is refused as lacking, never as uncheckable.
  for (const char *f : artifact::kCheckableCpuFeatures) {
    std::string signature = std::string("entry moe_entry\nrequires ") + f +
                            "\ninput x f32 2 ?N 4\noutput y f32 2 ?N 4\n"
                            "weight 0 16 f32 1 4\n";
    Session session;
    Status s = load(artifactFor(signature), session);
    EXPECT_TRUE(s.ok() || s.message().find("this CPU lacks") !=
                              std::string::npos)
        << f << ": " << s.message();
  }
}
#endif

TEST_F(RuntimeTest, ConcurrentRuns) {
  Session session;
  ASSERT_TRUE(load(goodArtifact(), session).ok());
  std::vector<std::thread> threads;
  std::vector<int> failures(8, 0);
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int iter = 0; iter < 50; ++iter) {
        Tensor x = makeInput(1 + t, static_cast<float>(t));
        std::vector<Tensor> outputs;
        if (!session.run({"x"}, {&x}, outputs).ok()) {
          ++failures[t];
          continue;
        }
        for (int i = 0; i < (1 + t) * 4; ++i)
          if (outputs[0].data<float>()[i] != t + i + kWeights[i % 4])
            ++failures[t];
      }
    });
  for (std::thread &th : threads)
    th.join();
  for (int f : failures)
    EXPECT_EQ(f, 0);
}

TEST(TensorTest, RefusesBadShapes) {
  moe_tensor *t = nullptr;
  int64_t negative[2] = {2, -1};
  Status s(moe_tensor_create(MOE_DTYPE_F32, 2, negative, nullptr, &t));
  EXPECT_EQ(s.code(), MOE_INVALID_ARGUMENT);
  EXPECT_EQ(t, nullptr);
  int64_t huge[3] = {1ll << 40, 1ll << 40, 1ll << 40};
  Status s2(moe_tensor_create(MOE_DTYPE_F32, 3, huge, nullptr, &t));
  EXPECT_EQ(s2.code(), MOE_INVALID_ARGUMENT);
  // An unknown dtype (a C caller may pass any int; 15 stays inside the
  // enum's C++ value range, 0 to 15).
  Status s3(moe_tensor_create(static_cast<moe_dtype_t>(15), 0, nullptr,
                              nullptr, &t));
  EXPECT_NE(s3.message().find("unknown dtype"), std::string::npos);
  Status s4(moe_tensor_create(MOE_DTYPE_F32, 0, nullptr, nullptr, nullptr));
  EXPECT_EQ(s4.code(), MOE_INVALID_ARGUMENT);
  // NULL is a valid no-op everywhere it is released or queried.
  moe_tensor_release(nullptr);
  moe_status_release(nullptr);
  moe_session_release(nullptr);
  moe_instance_release(nullptr);
  EXPECT_EQ(moe_tensor_rank(nullptr), 0u);
  EXPECT_STREQ(moe_status_message(nullptr), "");
}

TEST(NpyTest, RoundTripAndErrors) {
  char tmpl[] = "/tmp/moe-npy-dir-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string path = std::string(tmpl) + "/x.npy";
  int dirFd = open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dirFd, 0);
  float data[6] = {1, 2, 3, 4, 5, 6};
  ASSERT_EQ(npy::writeAt(dirFd, "x.npy", MOE_DTYPE_F32, {2, 3}, data), "");
  close(dirFd);
  npy::Array a;
  ASSERT_EQ(npy::read(path, a), "");
  EXPECT_EQ(a.dtype, MOE_DTYPE_F32);
  EXPECT_EQ(a.dims, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::memcmp(a.bytes.data(), data, sizeof(data)), 0);
  std::string bytes = readFile(path);
  // The header NumPy writes, padded so that the data is 64-byte aligned.
  EXPECT_EQ(bytes.substr(10, bytes.size() - 10 - sizeof(data)),
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,3), }" +
                std::string(59, ' ') + "\n");
  std::remove(path.c_str());
  EXPECT_EQ(rmdir(tmpl), 0);
  npy::Array b;
  EXPECT_NE(npy::parse(reinterpret_cast<const unsigned char *>(bytes.data()),
                       bytes.size() - 4, b)
                .find("truncated .npy data"),
            std::string::npos);
  EXPECT_NE(npy::parse(reinterpret_cast<const unsigned char *>("junk"), 4, b)
                .find("bad magic"),
            std::string::npos);
  EXPECT_NE(npy::read("/nonexistent.npy", b).find("cannot open"),
            std::string::npos);
}

//===----------------------------------------------------------------------===//
// The signature digest and structural checks of the signature
//===----------------------------------------------------------------------===//

/// Expects loading `bytes` to fail with `code` and a message holding `text`.
#define EXPECT_LOAD_ERROR(bytes, status, text)                                 \
  do {                                                                         \
    SCOPED_TRACE(text);                                                        \
    expectLoadError(bytes, status, text);                                      \
  } while (false)

TEST_F(RuntimeTest, RefusesSignatureEditedAfterCompilation) {
  // Each edit keeps the artifact's checksums valid (the writer recomputes
  // them) but pairs the code with a signature it was not compiled with.
  std::string code = codeFor(kSignature);
  const char *edits[] = {
      // Output dtype changed: the copy would read 8-byte elements.
      "entry moe_entry\ninput x f32 2 ?N 4\noutput y f64 2 ?N 4\n"
      "weight 0 16 f32 1 4\n",
      // An output duplicated.
      "entry moe_entry\ninput x f32 2 ?N 4\noutput y f32 2 ?N 4\n"
      "output z f32 2 ?N 4\nweight 0 16 f32 1 4\n",
      // A weight record dropped: the code would read a missing descriptor.
      "entry moe_entry\ninput x f32 2 ?N 4\noutput y f32 2 ?N 4\n",
      // A static dim changed.
      "entry moe_entry\ninput x f32 2 ?N 8\noutput y f32 2 ?N 8\n"
      "weight 0 16 f32 1 4\n",
  };
  for (const char *edited : edits) {
    std::string bytes =
        artifactBytes({{artifact::SectionKind::Signature, edited},
                       {artifact::SectionKind::CpuCode, code},
                       {artifact::SectionKind::Weights, weightBytes()}});
    EXPECT_LOAD_ERROR(bytes, MOE_DATA_LOSS,
                      "the signature does not match the code it was compiled "
                      "with");
  }
  // The unpatched placeholder is a digest like any wrong one.
  EXPECT_LOAD_ERROR(
      artifactBytes({{artifact::SectionKind::Signature, kSignature},
                     {artifact::SectionKind::CpuCode, testModel()},
                     {artifact::SectionKind::Weights, weightBytes()}}),
      MOE_DATA_LOSS, "recompile the model with moe-compile");
}

TEST_F(RuntimeTest, RefusesCodeWithoutDigest) {
  // The test model built without moe_signature_digest: it loads, but the
  // loader cannot tell which signature it was compiled with.
  std::string code = readFile(MOE_TEST_MODEL_NODIGEST_PATH);
  ASSERT_FALSE(code.empty());
  EXPECT_LOAD_ERROR(
      artifactBytes({{artifact::SectionKind::Signature, kSignature},
                     {artifact::SectionKind::CpuCode, code},
                     {artifact::SectionKind::Weights, weightBytes()}}),
      MOE_DATA_LOSS, "the code section has no signature digest");
}

TEST(SignatureTest, RefusesMalformedSignatures) {
  struct Case {
    const char *text, *why;
  } cases[] = {
      {"entry moe_entry\ninput x f32 1 4\ninput x f32 1 4\n",
       "a second input named 'x'"},
      {"entry moe_entry\noutput y f32 1 4\noutput y f32 1 4\n",
       "a second output named 'y'"},
      {"entry moe_entry\ninput x%41 f32 1 4\ninput xA f32 1 4\n",
       "a second input named 'xA'"},
      {"entry moe_entry\nentry other\n", "a second entry line"},
      {"entry moe_entry extra\n", "not one C identifier"},
      {"entry 9lives\n", "not one C identifier"},
      {"entry moe_entry\ninput x f32 33 " // rank above the limit
       "1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1\n",
       "the rank is not an integer in [0, 32]"},
      {"entry moe_entry\ninput x f32 2 4\n", "rank 2 but 1 dims"},
      {"entry moe_entry\ninput x f32 1 4 5\n", "rank 1 but 2 dims"},
      {"entry moe_entry\ninput x f32 1 -4\n", "dim 0 is not a non-negative"},
      {"entry moe_entry\ninput x f32 1 04\n", "dim 0 is not a non-negative"},
      {"entry moe_entry\ninput x f32 1 0x10\n", "dim 0 is not a non-negative"},
      {"entry moe_entry\ninput x f32 1 99999999999999999999\n",
       "dim 0 is not a non-negative"},
      {"entry moe_entry\ninput x f32 3 4294967296 4294967296 4\n",
       "the static dims are too large"},
      {"entry moe_entry\ninput x f99 1 3\n", "unknown dtype 'f99'"},
      {"entry moe_entry\ninput x%4 f32 1 3\n", "a malformed name"},
      {"entry moe_entry\ninput x%zz f32 1 3\n", "a malformed name"},
      {"entry moe_entry\ninput %00 f32 1 3\n",
       "an empty name or one with a NUL"},
      {"entry moe_entry\ninput x f32 1 ?%G0\n", "a malformed dim symbol"},
      {"entry moe_entry\ninput x  f32 1 3\n", "an empty field"},
      {"entry moe_entry\ninput x f32 1 3 \n", "an empty field"},
      {"entry moe_entry\ninput x\tf32 1 3\n", "whitespace byte"},
      {"entry moe_entry\ninput x f32 1 3\r\n", "whitespace byte"},
      {"entry moe_entry\nweight 0 16 f32 1 ?N\n", "a weight with a symbolic"},
      {"entry moe_entry\nweight -64 16 f32 1 4\n",
       "a malformed weight offset or size"},
      {"entry moe_entry\nrequires\n", "a requires line naming no feature"},
      {"entry moe_entry\nrequires avx2 avx2\n", "listed twice"},
      {"entry moe_entry\nrequires avx2\nrequires fma\n",
       "a second requires line"},
      {"entry moe_entry\nrequires avx2 warp-drive\n",
       "unknown CPU feature 'warp-drive'"},
      {"entry moe_entry\nexport y\n", "an unknown record"},
  };
  for (const Case &c : cases) {
    artifact::Signature sig;
    artifact::Result r =
        artifact::parseSignature(c.text, std::strlen(c.text), sig);
    EXPECT_EQ(r.code, MOE_DATA_LOSS) << c.text;
    EXPECT_NE(r.message.find(c.why), std::string::npos)
        << c.text << " gave: " << r.message;
    EXPECT_NE(r.message.find("corrupt signature at line"), std::string::npos)
        << r.message;
  }
  artifact::Signature sig;
  EXPECT_NE(artifact::parseSignature("", 0, sig).message.find(
                "names no entry symbol"),
            std::string::npos);
  // A NUL byte inside the text.
  const char nul[] = "entry moe_entry\ninput x\0 f32 1 3\n";
  EXPECT_EQ(artifact::parseSignature(nul, sizeof(nul) - 1, sig).code,
            MOE_DATA_LOSS);
  // What moe-compile writes parses: encoded names, anonymous and named
  // symbols, no trailing newline, an input and an output of one name.
  const char good[] = "entry moe_entry\nrequires sse4.2 avx2\n"
                      "input a%20b i64 2 ?B ?\ninput c bool 0\n"
                      "output a%20b f32 3 ?B ? 50\n"
                      "weight 0 16 f32 2 2 2\nweight 64 0 f32 1 0";
  artifact::Result r =
      artifact::parseSignature(good, sizeof(good) - 1, sig);
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_EQ(sig.inputs[0].name, "a b");
  EXPECT_EQ(sig.inputs[0].symbols, (std::vector<std::string>{"B", ""}));
  EXPECT_EQ(sig.outputs[0].dims, (std::vector<int64_t>{-1, -1, 50}));
  EXPECT_EQ(sig.weights.size(), 2u);
  EXPECT_EQ(sig.requiredFeatures, (std::vector<std::string>{"sse4.2", "avx2"}));
}

TEST_F(RuntimeTest, RefusesBadWeightRecordsAndSections) {
  std::string weights(256, '\0');
  auto withWeights = [&](const std::string &records) {
    return artifactFor("entry moe_entry\n" + records, weights);
  };
  EXPECT_LOAD_ERROR(withWeights("weight 0 16 f32 1 4\nweight 0 16 f32 1 4\n"),
                    MOE_DATA_LOSS, "overlap");
  EXPECT_LOAD_ERROR(withWeights("weight 0 128 f32 1 32\n"
                                "weight 64 16 f32 1 4\n"),
                    MOE_DATA_LOSS, "overlap");
  EXPECT_LOAD_ERROR(withWeights("weight 192 128 f32 1 32\n"), MOE_DATA_LOSS,
                    "outside the weights section");
  EXPECT_LOAD_ERROR(withWeights("weight 18446744073709551552 128 f32 1 32\n"),
                    MOE_DATA_LOSS, "corrupt signature");
  EXPECT_LOAD_ERROR(withWeights("weight 9223372036854775744 128 f32 1 32\n"),
                    MOE_DATA_LOSS, "outside the weights section");
  EXPECT_LOAD_ERROR(withWeights("weight 32 16 f32 1 4\n"), MOE_DATA_LOSS,
                    "not 64-byte aligned");
  EXPECT_LOAD_ERROR(withWeights("weight 0 12 f32 1 4\n"), MOE_DATA_LOSS,
                    "does not match its shape");
  // Disjoint records, and empty ones anywhere, are fine.
  Session ok;
  Status s = load(withWeights("weight 0 64 f32 1 16\nweight 64 16 f32 1 4\n"
                              "weight 64 0 f32 1 0\n"),
                  ok);
  EXPECT_TRUE(s.ok()) << s.message();
  // Two signature sections.
  std::string sig = kSignature;
  EXPECT_LOAD_ERROR(
      artifactBytes({{artifact::SectionKind::Signature, sig},
                     {artifact::SectionKind::CpuCode, codeFor(sig)},
                     {artifact::SectionKind::Signature, sig}}),
      MOE_DATA_LOSS, "two sections of kind 1");
  // A section table entry pointing into the table or at another section
  // (the header checksum recomputed, as an attacker would).
  std::string bytes = goodArtifact();
  auto retable = [&](auto edit) {
    std::string out = bytes;
    artifact::Header h;
    std::memcpy(&h, out.data(), sizeof(h));
    std::vector<artifact::SectionEntry> table(h.sectionCount);
    std::memcpy(table.data(), out.data() + sizeof(h),
                table.size() * sizeof(artifact::SectionEntry));
    edit(table, out);
    h.checksum = artifact::headerChecksum(h, table.data());
    std::memcpy(&out[0], &h, sizeof(h));
    std::memcpy(&out[sizeof(h)], table.data(),
                table.size() * sizeof(artifact::SectionEntry));
    return out;
  };
  EXPECT_LOAD_ERROR(retable([](std::vector<artifact::SectionEntry> &t,
                               std::string &) { t[2].offset = 0; }),
                    MOE_DATA_LOSS, "lies outside the file");
  EXPECT_LOAD_ERROR(
      retable([](std::vector<artifact::SectionEntry> &t, std::string &out) {
        // The weights section over the code's first bytes.
        t[2].offset = t[1].offset;
        t[2].checksum = artifact::fnv1a(out.data() + t[2].offset, t[2].size);
      }),
      MOE_DATA_LOSS, "overlapping sections");
  EXPECT_LOAD_ERROR(retable([](std::vector<artifact::SectionEntry> &t,
                               std::string &) { t[0].offset += 8; }),
                    MOE_DATA_LOSS, "section 1 is not 64-byte aligned");
  // A table of more than 64 entries, and one past the end of the file
  // (the header's size and checksum made consistent).
  auto withCount = [](uint32_t count, size_t size) {
    std::string out(size, '\0');
    artifact::Header h{};
    std::memcpy(h.magic, artifact::kMagic, sizeof(h.magic));
    h.version = artifact::kVersion;
    h.sectionCount = count;
    h.fileSize = size;
    std::memcpy(&out[0], &h, sizeof(h));
    return out;
  };
  EXPECT_LOAD_ERROR(withCount(65, 32 + 65 * 32), MOE_DATA_LOSS,
                    "has a corrupt section table");
  EXPECT_LOAD_ERROR(withCount(2, 32 + 32), MOE_DATA_LOSS,
                    "has a corrupt section table");
}

TEST_F(RuntimeTest, ZeroSections) {
  // An empty table: no memcpy from or to a null pointer (UBSan), a clean
  // refusal.
  std::string bytes = artifactBytes({});
  ASSERT_EQ(bytes.size(), sizeof(artifact::Header));
  EXPECT_LOAD_ERROR(bytes, MOE_DATA_LOSS, "lacks its signature section");
  artifact::Contents contents;
  artifact::Result r = artifact::parse(
      reinterpret_cast<const unsigned char *>(bytes.data()), bytes.size(),
      "mem", contents);
  EXPECT_EQ(r.code, MOE_DATA_LOSS);
  EXPECT_EQ(artifact::parse(nullptr, 0, "null", contents).code,
            MOE_DATA_LOSS);
}

TEST_F(RuntimeTest, PureParserNeedsNoFile) {
  std::string bytes = goodArtifact();
  artifact::Contents contents;
  artifact::Result r = artifact::parse(
      reinterpret_cast<const unsigned char *>(bytes.data()), bytes.size(),
      "mem", contents);
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_EQ(contents.signature.entry, "moe_entry");
  // FNV-1a 64 of kSignature, computed independently (Python).
  EXPECT_EQ(contents.signatureDigest, 0x6b189e61274cc78cull);
  EXPECT_EQ(contents.weightsSize, 16u);
  EXPECT_EQ(std::memcmp(contents.weights, kWeights, 16), 0);
}

//===----------------------------------------------------------------------===//
// Run-time checks: symbolic dims, input sizes, results
//===----------------------------------------------------------------------===//

TEST_F(RuntimeTest, CapsSymbolicDims) {
  std::string signature = "entry moe_entry\ninput x f32 2 ?N ?\n"
                          "output y f32 2 ?N ?\nweight 0 16 f32 1 4\n";
  Session session;
  ASSERT_TRUE(load(artifactFor(signature), session).ok());
  std::vector<Tensor> outputs;
  Tensor big, atCap, anonymous, huge;
  ASSERT_TRUE(Tensor::create(MOE_DTYPE_F32, {int64_t(1) << 30, 0}, nullptr,
                             big)
                  .ok());
  Status s = session.run({"x"}, {&big}, outputs);
  EXPECT_EQ(s.code(), MOE_INVALID_ARGUMENT);
  EXPECT_NE(s.message().find("input 'x' dim 0 ('N') is 1073741824, above "
                             "the limit of 16777216 for symbolic dims"),
            std::string::npos)
      << s.message();
  ASSERT_TRUE(Tensor::create(MOE_DTYPE_F32, {0, MOE_MAX_SYMBOLIC_DIM + 1},
                             nullptr, anonymous)
                  .ok());
  s = session.run({"x"}, {&anonymous}, outputs);
  EXPECT_NE(s.message().find("input 'x' dim 1 ('?') is 16777217"),
            std::string::npos)
      << s.message();
  // The cap itself is allowed.
  ASSERT_TRUE(Tensor::create(MOE_DTYPE_F32, {MOE_MAX_SYMBOLIC_DIM, 0}, nullptr,
                             atCap)
                  .ok());
  s = session.run({"x"}, {&atCap}, outputs);
  EXPECT_TRUE(s.ok()) << s.message();
  // Dims under the cap whose strides overflow int64.
  std::string rank3 = "entry moe_entry\ninput x f32 4 ?A ?B ?C ?D\n"
                      "output y f32 2 ?A ?B\nweight 0 16 f32 1 4\n";
  Session session3;
  ASSERT_TRUE(load(artifactFor(rank3), session3).ok());
  ASSERT_TRUE(Tensor::create(MOE_DTYPE_F32,
                             {0, MOE_MAX_SYMBOLIC_DIM, MOE_MAX_SYMBOLIC_DIM,
                              MOE_MAX_SYMBOLIC_DIM},
                             nullptr, huge)
                  .ok());
  s = session3.run({"x"}, {&huge}, outputs);
  EXPECT_EQ(s.code(), MOE_INVALID_ARGUMENT);
  EXPECT_NE(s.message().find("input 'x' is too large"), std::string::npos)
      << s.message();
}

TEST_F(RuntimeTest, RefusesBadResultsFromTheCode) {
  const char *messages[] = {
      nullptr,
      "the code returned output 'y' with dim 0 = -1",
      "the code returned output 'y' with dim 1 = 5, but the signature says 4",
      "the code returned output 'y' with more elements than memory can hold",
      "the code returned output 'y' with a null data pointer",
      "the code returned output 'y' with a layout whose offsets overflow",
  };
  for (int32_t mode = 1; mode <= 5; ++mode) {
    Session session;
    Status s = load(artifactFor(kSignature, weightBytes(), 0, mode), session);
    ASSERT_TRUE(s.ok()) << s.message();
    Tensor x = makeInput(3);
    std::vector<Tensor> outputs;
    s = session.run({"x"}, {&x}, outputs);
    EXPECT_EQ(s.code(), MOE_INTERNAL) << "mode " << mode;
    EXPECT_NE(s.message().find(messages[mode]), std::string::npos)
        << "mode " << mode << ": " << s.message();
    EXPECT_TRUE(outputs.empty());
  }
}

TEST_F(RuntimeTest, GathersThroughExtremeOffsets) {
  // A result whose element byte offsets are 2^63 - 16 + 4j (row 0) and
  // -2^63 + 4j (row 1): within int64, so accepted, and correct only if the
  // offset is summed from the descriptor's offset and scaled last, as the
  // check does (test_model.c, mode 6; UBSan reports the old order).
  Session session;
  Status s = load(artifactFor(kSignature, weightBytes(), 0, 6), session);
  ASSERT_TRUE(s.ok()) << s.message();
  expectBias(session, 0);
}

TEST_F(RuntimeTest, DataErrorComesFirst) {
  // The code reported a data error and returned a bad descriptor (mode 7):
  // the caller learns of the data error, the code's buffer is still freed
  // (LeakSanitizer would tell), nothing is copied.
  Session session;
  Status s = load(artifactFor(kSignature, weightBytes(), 0, 7), session);
  ASSERT_TRUE(s.ok()) << s.message();
  Tensor x = makeInput(3);
  std::vector<Tensor> outputs;
  s = session.run({"x"}, {&x}, outputs);
  EXPECT_EQ(s.code(), MOE_INVALID_ARGUMENT) << s.message();
  EXPECT_NE(s.message().find("an index is out of range in a gather"),
            std::string::npos)
      << s.message();
  EXPECT_TRUE(outputs.empty());
  // The next run on this thread starts without the error.
  Session good;
  ASSERT_TRUE(load(goodArtifact(), good).ok());
  expectBias(good, 0);
}

//===----------------------------------------------------------------------===//
// Code loading: memfd, no temporary files, no stale objects
//===----------------------------------------------------------------------===//

namespace {
size_t countEntries(const char *dir) {
  size_t n = 0;
  if (DIR *d = opendir(dir)) {
    while (dirent *e = readdir(d))
      if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, ".."))
        ++n;
    closedir(d);
  }
  return n;
}

size_t openFileDescriptors() { return countEntries("/proc/self/fd"); }

/// The names "/proc/self/fd/N" of the open memfds holding code.
std::set<std::string> codeMemfds() {
  std::set<std::string> out;
  if (DIR *d = opendir("/proc/self/fd")) {
    while (dirent *e = readdir(d)) {
      std::string path = std::string("/proc/self/fd/") + e->d_name;
      char target[256];
      ssize_t n = readlink(path.c_str(), target, sizeof(target) - 1);
      if (n > 0 && std::string(target, n).rfind("/memfd:moe-code", 0) == 0)
        out.insert(path);
    }
    closedir(d);
  }
  return out;
}

/// Runs the test model's session on 2 rows; expects its bias.
void expectBias(Session &session, float bias) {
  Tensor x = makeInput(2);
  std::vector<Tensor> outputs;
  Status s = session.run({"x"}, {&x}, outputs);
  ASSERT_TRUE(s.ok()) << s.message();
  for (int i = 0; i < 8; ++i)
    ASSERT_FLOAT_EQ(outputs[0].data<float>()[i],
                    1.0f + i + kWeights[i % 4] + bias);
}

/// Lines of /proc/self/maps that hold `text`.
size_t mappingsOf(const std::string &text) {
  std::ifstream maps("/proc/self/maps");
  size_t n = 0;
  for (std::string line; std::getline(maps, line);)
    n += line.find(text) != std::string::npos;
  return n;
}
} // namespace

TEST_F(RuntimeTest, SessionsRunTheirOwnCode) {
  // Two artifacts whose code differs only in a constant (and the digest):
  // whatever the order of creation and destruction, and however file
  // descriptor numbers are reused, each session runs its own code.
  std::string other = "entry moe_entry\ninput x f32 2 ?M 4\n"
                      "output y f32 2 ?M 4\nweight 0 16 f32 1 4\n";
  std::string a = artifactFor(kSignature, weightBytes(), 100.0f);
  std::string b = artifactFor(other, weightBytes(), 200.0f);
  std::string pathA = write("a.moeb", a), pathB = write("b.moeb", b);
  size_t fdsBefore = openFileDescriptors();
  for (int iter = 0; iter < 40; ++iter) {
    Session first, second;
    bool aFirst = iter % 2 == 0;
    ASSERT_TRUE(
        Session::load(instance, aFirst ? pathA : pathB, first).ok());
    if (iter % 3 == 0) { // Free the first number before the second load.
      expectBias(first, aFirst ? 100.0f : 200.0f);
      first = Session();
    }
    ASSERT_TRUE(
        Session::load(instance, aFirst ? pathB : pathA, second).ok());
    expectBias(second, aFirst ? 200.0f : 100.0f);
    if (iter % 3 != 0)
      expectBias(first, aFirst ? 100.0f : 200.0f);
    if (iter % 4 == 1)
      second = Session(); // Destroy in the other order.
  }
  // Unloaded code gives its memfd back.
  EXPECT_EQ(openFileDescriptors(), fdsBefore);
}

TEST_F(RuntimeTest, CodeStillLoadedKeepsItsName) {
  // Someone else holds a reference to a session's code (as an object that
  // cannot be unloaded would): when the session goes, its memfd must stay
  // open, or the next session's memfd could get its number, and dlopen of
  // "/proc/self/fd/N" would return the old code by name.
  Session first;
  std::set<std::string> before = codeMemfds();
  ASSERT_TRUE(
      load(artifactFor(kSignature, weightBytes(), 100.0f), first).ok());
  std::set<std::string> names = codeMemfds();
  for (const std::string &n : before)
    names.erase(n);
  ASSERT_EQ(names.size(), 1u);
  std::string name = *names.begin();
  void *extra = dlopen(name.c_str(), RTLD_NOLOAD | RTLD_LAZY);
  ASSERT_NE(extra, nullptr);
  first = Session();
  EXPECT_EQ(codeMemfds().count(name), 1u) << "the memfd of loaded code closed";
  std::string other = "entry moe_entry\ninput x f32 2 ?M 4\n"
                      "output y f32 2 ?M 4\nweight 0 16 f32 1 4\n";
  for (int i = 0; i < 4; ++i) {
    Session second;
    ASSERT_TRUE(
        load(artifactFor(other, weightBytes(), 200.0f), second).ok());
    expectBias(second, 200.0f);
  }
  dlclose(extra);
}

TEST_F(RuntimeTest, LeavesNoFileInTmpdir) {
  char tmpl[] = "/tmp/moe-runtime-tmpdir-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const char *saved = std::getenv("TMPDIR");
  std::string savedValue = saved ? saved : "";
  setenv("TMPDIR", tmpl, 1);
  auto entries = [&] { return countEntries(tmpl); };
  {
    std::vector<Session> sessions(4);
    for (Session &session : sessions)
      ASSERT_TRUE(load(goodArtifact(), session).ok());
    EXPECT_EQ(entries(), 0u) << "a file was staged in TMPDIR while loaded";
    // The code is mapped from anonymous memory files, not from files.
    EXPECT_GE(mappingsOf("/memfd:moe-code"), 4u);
    EXPECT_EQ(mappingsOf("moe-code-"), 0u);
  }
  EXPECT_EQ(mappingsOf("/memfd:moe-code"), 0u);
  EXPECT_EQ(entries(), 0u);
  if (saved)
    setenv("TMPDIR", savedValue.c_str(), 1);
  else
    unsetenv("TMPDIR");
  rmdir(tmpl);
}

TEST_F(RuntimeTest, FileStagingFallback) {
  // Where memfd_create or /proc is missing, the code is staged in a
  // temporary file of $TMPDIR, unlinked once dlopen has mapped it: forced
  // here through the test hook, in a private TMPDIR.
  char tmpl[] = "/tmp/moe-runtime-tmpdir-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const char *saved = std::getenv("TMPDIR");
  std::string savedValue = saved ? saved : "";
  setenv("TMPDIR", tmpl, 1);
  test_hooks::setForceFileStaging(true);
  size_t memfdsBefore = mappingsOf("/memfd:moe-code");
  {
    Session a, b;
    ASSERT_TRUE(load(artifactFor(kSignature, weightBytes(), 100.0f), a).ok());
    std::string other = "entry moe_entry\ninput x f32 2 ?M 4\n"
                        "output y f32 2 ?M 4\nweight 0 16 f32 1 4\n";
    ASSERT_TRUE(load(artifactFor(other, weightBytes(), 200.0f), b).ok());
    expectBias(a, 100.0f);
    expectBias(b, 200.0f);
    EXPECT_EQ(countEntries(tmpl), 0u) << "a staged file was left in TMPDIR";
    // Mapped from the (deleted) staged files, not from memfds.
    EXPECT_GE(mappingsOf(std::string(tmpl) + "/moe-code-"), 2u);
    EXPECT_EQ(mappingsOf("/memfd:moe-code"), memfdsBefore);
  }
  test_hooks::setForceFileStaging(false);
  EXPECT_EQ(mappingsOf(std::string(tmpl) + "/moe-code-"), 0u);
  EXPECT_EQ(countEntries(tmpl), 0u);
  // A TMPDIR that cannot hold the file: a clean refusal.
  setenv("TMPDIR", (std::string(tmpl) + "/missing").c_str(), 1);
  test_hooks::setForceFileStaging(true);
  Session failed;
  Status s = load(goodArtifact(), failed);
  test_hooks::setForceFileStaging(false);
  EXPECT_EQ(s.code(), MOE_DATA_LOSS) << s.message();
  EXPECT_NE(s.message().find("cannot stage the code in"), std::string::npos)
      << s.message();
  if (saved)
    setenv("TMPDIR", savedValue.c_str(), 1);
  else
    unsetenv("TMPDIR");
  EXPECT_EQ(rmdir(tmpl), 0);
}

namespace {
/// Loads `count` copies of the test model from memfds under the names
/// "/proc/self/fd/N" of the lowest free descriptor numbers, then closes the
/// memfds: objects outside the runtime's control now hold the names its
/// next memfds would get. Returns their handles (null on failure).
std::vector<void *> holdNames(size_t count) {
  std::vector<int> fds;
  std::vector<void *> handles;
  const std::string &code = testModel();
  for (size_t i = 0; i < count; ++i) {
    int fd = memfd_create("other-code", MFD_CLOEXEC);
    if (fd >= 0 && write(fd, code.data(), code.size()) !=
                       static_cast<ssize_t>(code.size())) {
      close(fd);
      fd = -1;
    }
    fds.push_back(fd);
  }
  for (int fd : fds) {
    std::string name = "/proc/self/fd/" + std::to_string(fd);
    handles.push_back(fd < 0 ? nullptr
                             : dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL));
  }
  for (int fd : fds)
    if (fd >= 0)
      close(fd);
  return handles;
}

void release(const std::vector<void *> &handles) {
  for (void *h : handles)
    if (h)
      dlclose(h);
}
} // namespace

TEST_F(RuntimeTest, SkipsMemfdNamesHeldByOtherObjects) {
  // The lowest free descriptor numbers, N, N + 1, ..., name loaded objects
  // the runtime did not load: its memfd gets N, then N + 1 and so on (each
  // kept open), until a name is free; dlopen by a held name would return
  // the other object instead of the session's code.
  for (size_t held : {1u, 3u}) {
    std::vector<void *> handles = holdNames(held);
    for (void *h : handles)
      ASSERT_NE(h, nullptr) << dlerror();
    Session session;
    Status s = load(artifactFor(kSignature, weightBytes(), 300.0f), session);
    EXPECT_TRUE(s.ok()) << s.message();
    if (s.ok())
      expectBias(session, 300.0f);
    release(handles);
  }
  // More held names than the runtime tries (8): a clean refusal.
  std::vector<void *> handles = holdNames(10);
  for (void *h : handles)
    ASSERT_NE(h, nullptr) << dlerror();
  Session session;
  Status s = load(goodArtifact(), session);
  EXPECT_EQ(s.code(), MOE_INTERNAL) << s.message();
  EXPECT_NE(s.message().find("no unused /proc/self/fd name"),
            std::string::npos)
      << s.message();
  release(handles);
}

//===----------------------------------------------------------------------===//
// .npy: strict headers, output file names
//===----------------------------------------------------------------------===//

namespace {
/// A version 1.0 .npy file with header text `dict` (padded and ended with
/// '\n' unless `raw`) and `dataBytes` zero bytes of data.
std::string npyFile(const std::string &dict, size_t dataBytes,
                    bool raw = false) {
  std::string header = dict;
  if (!raw) {
    header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
    header.push_back('\n');
  }
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  return out + header + std::string(dataBytes, '\0');
}

std::string npyError(const std::string &bytes) {
  npy::Array a;
  return npy::parse(reinterpret_cast<const unsigned char *>(bytes.data()),
                    bytes.size(), a);
}
} // namespace

TEST(NpyTest, StrictHeaders) {
  struct Case {
    std::string bytes;
    const char *error;
  } cases[] = {
      {npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 24), }",
               96),
       "negative dimension in .npy shape"},
      {npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (0x10,), }",
               64),
       "malformed .npy header"},
      {npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (2.0,), }",
               8),
       "malformed .npy header"},
      {npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (+2,), }",
               8),
       "malformed .npy header"},
      {npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (02,), }",
               8),
       "without leading zeros"},
      {npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (3), }", 12),
       "'(N,)' for a one-dim shape"},
      {npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
               12),
       "trailing bytes after the .npy data: 12 bytes, the shape needs 8"},
      {npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 4),
       "truncated .npy data: 4 bytes, the shape needs 8"},
      {npyFile("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8),
       "big-endian dtype '>f4' is not supported"},
      {npyFile("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }",
               16),
       "unsupported dtype '<c8'"},
      {npyFile("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", 8),
       "Fortran-order arrays are not supported"},
      {npyFile("{'descr': '<f4', 'fortran_order': 'False', 'shape': (2,), }",
               8),
       "expected True or False"},
      {npyFile("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, "
               "'shape': (2,), }",
               8),
       "key 'descr' appears twice"},
      {npyFile("{'descr': '<f4', 'fortran_order': False, }", 4),
       "it lacks 'shape'"},
      {npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), "
               "'extra': 1, }",
               8),
       "unknown key 'extra'"},
      {npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } x",
               8),
       "only spaces after '}'"},
      {npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8,
               /*raw=*/true),
       "does not end with a newline"},
      {npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': "
               "(4294967296, 4294967296, 4294967296), }",
               0),
       "the .npy shape overflows"},
      {npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': "
               "(9223372036854775808,), }",
               0),
       "larger than 2^63 - 1"},
      {npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (2,,), }",
               8),
       "malformed .npy header"},
      {npyFile("{'descr': '<f4' 'fortran_order': False, 'shape': (2,), }", 8),
       "malformed .npy header"},
      {std::string("\x93NUMPY\x01\x01\x10\x00", 10) + std::string(16, ' '),
       "unsupported .npy version 1.1"},
      {std::string("\x93NUMPY\x01\x00\xff\x7f", 10) + "{}",
       "truncated .npy header"},
      {std::string("\x93NUMPY\x02\x00\xff\xff\xff\xff", 12),
       "more than the 1048576 allowed"},
      {std::string("\x93NUMPY\x02\x00", 8), "truncated .npy header"},
  };
  for (const Case &c : cases) {
    std::string err = npyError(c.bytes);
    EXPECT_NE(err.find(c.error), std::string::npos)
        << "expected '" << c.error << "', got '" << err << "'";
  }
  // What NumPy writes and other valid spellings of it.
  struct Good {
    std::string dict;
    std::vector<int64_t> dims;
    size_t bytes;
  } goods[] = {
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", {2, 3},
       24},
      {"{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", {3}, 24},
      {"{'descr': '|u1', 'fortran_order': False, 'shape': (), }", {}, 1},
      {"{\"shape\": (2,3,), \"fortran_order\": False, \"descr\": \"<f2\"}",
       {2, 3}, 12},
      {"{'descr':'|b1','fortran_order':False,'shape':(0, 5)}", {0, 5}, 0},
  };
  for (const Good &g : goods) {
    npy::Array a;
    std::string bytes = npyFile(g.dict, g.bytes);
    std::string err = npy::parse(
        reinterpret_cast<const unsigned char *>(bytes.data()), bytes.size(), a);
    EXPECT_EQ(err, "") << g.dict;
    EXPECT_EQ(a.dims, g.dims) << g.dict;
    EXPECT_EQ(a.bytes.size(), g.bytes) << g.dict;
  }
}

TEST(NpyTest, ReadChecksTheFileSize) {
  char path[] = "/tmp/moe-npy-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  auto readBytes = [&](const std::string &bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    npy::Array a;
    return npy::read(path, a);
  };
  std::string dict =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  EXPECT_EQ(readBytes(npyFile(dict, 8)), "");
  EXPECT_NE(readBytes(npyFile(dict, 9)).find("trailing bytes"),
            std::string::npos);
  EXPECT_NE(readBytes(npyFile(dict, 7)).find("truncated .npy data"),
            std::string::npos);
  // A shape of 2^40 floats in a file of a few bytes: refused before any
  // allocation of that size.
  EXPECT_NE(readBytes(npyFile("{'descr': '<f4', 'fortran_order': False, "
                              "'shape': (1099511627776,), }",
                              8))
                .find("truncated .npy data: 8 bytes, the shape needs "
                      "4398046511104"),
            std::string::npos);
  EXPECT_NE(readBytes(std::string("\x93NUMPY\x02\x00\x00\x00\x01\x00", 12))
                .find("truncated .npy header"),
            std::string::npos);
  EXPECT_NE(readBytes("").find("bad magic"), std::string::npos);
  std::remove(path);
  npy::Array a;
  EXPECT_NE(npy::read("/tmp", a).find("is a directory"), std::string::npos);
}

TEST(NpyTest, OutputFileNames) {
  EXPECT_EQ(npy::fileNameFor("logits"), "logits.npy");
  EXPECT_EQ(npy::fileNameFor("a.b-c_D9"), "a.b-c_D9.npy");
  EXPECT_EQ(npy::fileNameFor("../../escaped_output"),
            "%2E.%2F..%2Fescaped_output.npy");
  EXPECT_EQ(npy::fileNameFor("a/b"), "a%2Fb.npy");
  EXPECT_EQ(npy::fileNameFor("50%"), "50%25.npy");
  EXPECT_EQ(npy::fileNameFor(""), "%.npy");
  EXPECT_EQ(npy::fileNameFor("."), "%2E.npy");
  EXPECT_EQ(npy::fileNameFor(".."), "%2E..npy");
  EXPECT_EQ(npy::fileNameFor("a b~\xff"), "a%20b%7E%FF.npy");
  // Injective on names that look alike, long ones included.
  std::vector<std::string> names = {"", "%", "%25", "a/b", "a%2Fb", ".a",
                                    "%2Ea", "a.", "~", "%7E",
                                    std::string(1, '\0'), std::string(300, 'a'),
                                    std::string(300, 'a') + "b",
                                    std::string(299, 'a') + "/",
                                    std::string(100, '/'),
                                    std::string(100, '/') + "x"};
  std::set<std::string> files;
  for (const std::string &n : names) {
    std::string f = npy::fileNameFor(n);
    EXPECT_TRUE(files.insert(f).second) << "clash: " << f;
    EXPECT_LT(f.size(), 255u) << f;
    EXPECT_EQ(f.find('/'), std::string::npos) << f;
    EXPECT_NE(f[0], '.') << f;
    // Every '%' starts a complete %XX (none cut by truncation).
    for (size_t i = f.find('%'); i != std::string::npos;
         i = f.find('%', i + 1))
      if (f != "%.npy")
        EXPECT_TRUE(i + 2 < f.size() && std::isxdigit(f[i + 1]) &&
                    std::isxdigit(f[i + 2]))
            << f;
  }
  EXPECT_EQ(npy::fileNameFor(std::string(300, 'a')).size(), 204u);
}

TEST(NpyTest, WriteAtReplacesPlantedLinks) {
  char tmpl[] = "/tmp/moe-npy-dir-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  std::string victim = dir + "-victim";
  std::ofstream(victim) << "precious";
  ASSERT_EQ(symlink(victim.c_str(), (dir + "/y.npy").c_str()), 0);
  int dirFd = open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dirFd, 0);
  float data[2] = {1, 2};
  EXPECT_EQ(npy::writeAt(dirFd, "y.npy", MOE_DTYPE_F32, {2}, data), "");
  EXPECT_EQ(readFile(victim), "precious");
  struct stat st;
  ASSERT_EQ(lstat((dir + "/y.npy").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  npy::Array a;
  EXPECT_EQ(npy::read(dir + "/y.npy", a), "");
  EXPECT_EQ(a.dims, (std::vector<int64_t>{2}));
  for (const char *bad : {"", ".", "..", "a/b", "../y.npy"})
    EXPECT_NE(npy::writeAt(dirFd, bad, MOE_DTYPE_F32, {2}, data)
                  .find("not a plain file name"),
              std::string::npos)
        << bad;
  close(dirFd);
  std::remove((dir + "/y.npy").c_str());
  std::remove(victim.c_str());
  EXPECT_EQ(rmdir(tmpl), 0) << "temporary files were left behind";
}

TEST(NpyTest, OutputFileNamesCutLongEncodings) {
  // Encodings of 201, 202 and 203 bytes, cut at byte 183, 181 and 182 so
  // that no %XX is split (expected names computed independently with the
  // rule of test/conformance/backend_node_tests.py, npy_file_name).
  auto repeat = [](const std::string &s, int n) {
    std::string out;
    for (int i = 0; i < n; ++i)
      out += s;
    return out;
  };
  EXPECT_EQ(npy::fileNameFor(std::string(67, '/')),
            repeat("%2F", 61) + "~BC01F426794C1624.npy");
  EXPECT_EQ(npy::fileNameFor("a" + std::string(67, '/')),
            "a" + repeat("%2F", 60) + "~6301D85BFA0A4DD7.npy");
  EXPECT_EQ(npy::fileNameFor("aa" + std::string(67, '/')),
            "aa" + repeat("%2F", 60) + "~6E36670D839F5A1E.npy");
}

TEST(NpyTest, MoreRefusals) {
  std::string structured = npyFile(
      "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8);
  EXPECT_NE(npyError(structured).find("structured (record) dtypes are not "
                                      "supported"),
            std::string::npos)
      << npyError(structured);
  std::string shape = "(";
  for (int i = 0; i < 65; ++i)
    shape += "1, ";
  std::string manyDims = npyFile(
      "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + "), }",
      4);
  EXPECT_NE(npyError(manyDims).find("the .npy shape has more than 64 dims"),
            std::string::npos)
      << npyError(manyDims);
}

TEST(NpyTest, NothingIsLeftInTheArrayOnError) {
  // Refusals after the shape was parsed (Fortran order, then the data's
  // size): the caller's array is left empty, by parse and by read.
  npy::Array a;
  a.dims = {7};
  a.bytes = {1, 2, 3};
  std::string fortran = npyFile("{'shape': (2, 3), 'descr': '<f4', "
                                "'fortran_order': True}",
                                24);
  EXPECT_NE(npy::parse(reinterpret_cast<const unsigned char *>(
                           fortran.data()),
                       fortran.size(), a)
                .find("Fortran-order"),
            std::string::npos);
  EXPECT_TRUE(a.dims.empty());
  EXPECT_TRUE(a.bytes.empty());
  std::string trailing = npyFile(
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 28);
  a.dims = {7};
  EXPECT_NE(npy::parse(reinterpret_cast<const unsigned char *>(
                           trailing.data()),
                       trailing.size(), a)
                .find("trailing bytes"),
            std::string::npos);
  EXPECT_TRUE(a.dims.empty());
  EXPECT_TRUE(a.bytes.empty());
  char path[] = "/tmp/moe-npy-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << trailing;
  a.dims = {7};
  EXPECT_NE(npy::read(path, a).find("trailing bytes"), std::string::npos);
  EXPECT_TRUE(a.dims.empty());
  std::remove(path);
}

TEST(NpyTest, ReadsShortAndSizelessFiles) {
  char path[] = "/tmp/moe-npy-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  auto readBytes = [&](const std::string &bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    npy::Array a;
    return npy::read(path, a);
  };
  // Files shorter than their preamble or header.
  EXPECT_NE(readBytes(std::string("\x93NUMPY\x01\x00\x10", 9))
                .find("truncated .npy header"),
            std::string::npos);
  EXPECT_NE(readBytes(std::string("\x93NUMPY\x02\x00\x10\x00", 10))
                .find("truncated .npy header"),
            std::string::npos);
  EXPECT_NE(readBytes(std::string("\x93NUMPY\x01\x00\x40\x00{'de", 14))
                .find("truncated .npy header"),
            std::string::npos);
  EXPECT_NE(readBytes(std::string("\x93NU", 4)).find("bad magic"),
            std::string::npos);
  std::remove(path);

  // A regular file whose size fstat gives as 0 (procfs): read to its end
  // all the same. The environment of a process is an .npy file when its
  // strings are the preamble, the header length and the header (each NUL
  // ends one: the NULs are the minor version, the length's high byte and
  // the one data byte).
  std::string header =
      "{'descr': '|u1', 'fortran_order': False, 'shape': (1,), }\n";
  ASSERT_LT(header.size(), 128u);
  std::string length(1, static_cast<char>(header.size()));
  const char *env[] = {"\x93NUMPY\x01", length.c_str(), header.c_str(),
                       nullptr};
  const char *argv[] = {"sleep", "30", nullptr};
  if (access("/bin/sleep", X_OK) != 0)
    GTEST_SKIP() << "no /bin/sleep";
  int ready[2];
  ASSERT_EQ(pipe2(ready, O_CLOEXEC), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(ready[0]);
    execve("/bin/sleep", const_cast<char **>(argv), const_cast<char **>(env));
    _exit(127);
  }
  close(ready[1]);
  char byte;
  while (read(ready[0], &byte, 1) < 0 && errno == EINTR) {
  } // EOF once execve has replaced the child (the pipe is close-on-exec).
  close(ready[0]);
  std::string envFile = "/proc/" + std::to_string(pid) + "/environ";
  struct stat st;
  ASSERT_EQ(stat(envFile.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 0);
  npy::Array a;
  EXPECT_EQ(npy::read(envFile, a), "");
  EXPECT_EQ(a.dims, (std::vector<int64_t>{1}));
  EXPECT_EQ(a.bytes, (std::vector<unsigned char>{0}));
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

TEST(NpyTest, ReadsPipesInChunks) {
  auto viaPipe = [](const std::string &bytes, npy::Array &a) {
    int fds[2];
    EXPECT_EQ(pipe2(fds, O_CLOEXEC), 0);
    std::thread writer([&] {
      size_t at = 0;
      while (at < bytes.size()) {
        ssize_t n = write(fds[1], bytes.data() + at, bytes.size() - at);
        if (n <= 0)
          break;
        at += static_cast<size_t>(n);
      }
      close(fds[1]);
    });
    std::string err =
        npy::read("/proc/self/fd/" + std::to_string(fds[0]), a);
    close(fds[0]); // Unblocks a writer the reader left behind.
    writer.join();
    return err;
  };
  std::string dict =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  npy::Array a;
  EXPECT_EQ(viaPipe(npyFile(dict, 8), a), "");
  EXPECT_EQ(a.dims, (std::vector<int64_t>{2}));
  EXPECT_EQ(a.bytes.size(), 8u);
  EXPECT_NE(viaPipe(npyFile(dict, 9), a).find("trailing bytes"),
            std::string::npos);
  EXPECT_TRUE(a.dims.empty());
  EXPECT_NE(viaPipe(npyFile(dict, 7), a).find("truncated .npy data"),
            std::string::npos);
  // Version 2.0 (a 4-byte header length) and a short preamble.
  std::string v1 = npyFile(dict, 8);
  std::string v2 = std::string("\x93NUMPY\x02\x00", 8) + v1.substr(8, 2) +
                   std::string(2, '\0') + v1.substr(10);
  EXPECT_EQ(viaPipe(v2, a), "");
  EXPECT_EQ(a.bytes.size(), 8u);
  EXPECT_NE(viaPipe(std::string("\x93NUMPY\x01\x00\x10", 9), a)
                .find("truncated .npy header"),
            std::string::npos);
  EXPECT_NE(viaPipe("", a).find("bad magic"), std::string::npos);
  // A shape of 2^40 floats announced by a few bytes: refused once they
  // end, without allocating for the shape.
  EXPECT_NE(viaPipe(npyFile("{'descr': '<f4', 'fortran_order': False, "
                            "'shape': (1099511627776,), }",
                            8),
                    a)
                .find("truncated .npy data: 8 bytes, the shape needs "
                      "4398046511104"),
            std::string::npos);
}

TEST(NpyTest, WriteAtReportsTheFailingCall) {
  // A file size limit makes the data's write fail (EFBIG): the message
  // gives that error, and no temporary file is left. In a child process,
  // whose limit does not reach the test's own files.
  char tmpl[] = "/tmp/moe-npy-dir-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit limit = {100, 100};
    int dirFd = open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    std::vector<float> data(1000, 1.0f);
    if (dirFd < 0 || setrlimit(RLIMIT_FSIZE, &limit) != 0)
      _exit(2);
    std::string err =
        npy::writeAt(dirFd, "big.npy", MOE_DTYPE_F32, {1000}, data.data());
    _exit(err == "cannot write 'big.npy': " + std::string(strerror(EFBIG))
              ? 0
              : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(rmdir(tmpl), 0) << "a temporary file was left behind";
}

TEST(TextTest, PrintableEscapesAllButPrintableAscii) {
  EXPECT_EQ(printable("logits_0 (a/b)~", 80), "logits_0 (a/b)~");
  // C0, DEL, C1 (0x9B is a CSI on some terminals), UTF-8 and '\'.
  EXPECT_EQ(printable(std::string("a\x1b[2J\x7f\x9b\xc3\xa9\\z\0", 12), 80),
            "a\\x1B[2J\\x7F\\x9B\\xC3\\xA9\\x5Cz\\x00");
  EXPECT_EQ(printable("abcdef", 3), "abc...");
  EXPECT_EQ(printable("abc", 3), "abc");
  EXPECT_EQ(printable("", 0), "");
}

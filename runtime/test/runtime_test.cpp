//===- runtime_test.cpp - unit tests of the moe-mlir runtime ---------------===//

#include "moe/artifact_format.h"
#include "moe/npy.h"
#include "moe_runtime.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <unistd.h>
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

const float kWeights[4] = {0.5f, -1.0f, 2.0f, 10.0f};

std::string goodArtifact() {
  std::string signature = "entry moe_entry\n"
                          "input x f32 2 ?N 4\n"
                          "output y f32 2 ?N 4\n"
                          "weight 0 16 f32 1 4\n";
  std::string weights(reinterpret_cast<const char *>(kWeights), 16);
  return artifactBytes({{artifact::SectionKind::Signature, signature},
                        {artifact::SectionKind::CpuCode,
                         readFile(MOE_TEST_MODEL_PATH)},
                        {artifact::SectionKind::Weights, weights}});
}

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
  Status load(const std::string &bytes, Session &session) {
    return Session::load(instance, write("model.moeb", bytes), session);
  }
  Instance instance;
  std::string dir;
  std::vector<std::string> files;
};

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
  ASSERT_TRUE(load(artifactBytes({{artifact::SectionKind::Signature, signature},
                                  {artifact::SectionKind::CpuCode,
                                   readFile(MOE_TEST_MODEL_PATH)},
                                  {artifact::SectionKind::Weights,
                                   std::string(16, '\0')}}),
                   session)
                  .ok());
  Tensor a = makeInput(2), b = makeInput(3);
  std::vector<Tensor> outputs;
  Status s = session.run({"a", "b"}, {&a, &b}, outputs);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("('N') is 3, but 'N' was 2"), std::string::npos)
      << s.message();
  s = session.run({"a", "a"}, {&a, &a}, outputs);
  EXPECT_NE(s.message().find("given twice"), std::string::npos);
}

TEST_F(RuntimeTest, RefusesCorruptArtifacts) {
  std::string good = goodArtifact();
  auto expectLoadError = [&](const std::string &bytes, moe_status_code_t code,
                             const char *text) {
    Session session;
    Status s = load(bytes, session);
    EXPECT_FALSE(s.ok());
    EXPECT_EQ(s.code(), code) << s.message();
    EXPECT_NE(s.message().find(text), std::string::npos) << s.message();
  };
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
  expectLoadError(
      artifactBytes({{artifact::SectionKind::Signature,
                      "entry moe_entry\nweight 0 64 f32 1 16\n"},
                     {artifact::SectionKind::CpuCode,
                      readFile(MOE_TEST_MODEL_PATH)},
                     {artifact::SectionKind::Weights, std::string(8, '\0')}}),
      MOE_DATA_LOSS, "corrupt weight record");
  expectLoadError(
      artifactBytes({{artifact::SectionKind::Signature, "entry nothere\n"},
                     {artifact::SectionKind::CpuCode,
                      readFile(MOE_TEST_MODEL_PATH)}}),
      MOE_DATA_LOSS, "no entry symbol 'nothere'");
  Session missing;
  Status s = Session::load(instance, dir + "/does-not-exist.moeb", missing);
  EXPECT_EQ(s.code(), MOE_NOT_FOUND);
  EXPECT_NE(s.message().find("No such file"), std::string::npos);
}

TEST_F(RuntimeTest, ChecksRequiredCpuFeatures) {
  auto withRequires = [&](const std::string &line) {
    std::string signature = "entry moe_entry\n" + line +
                            "input x f32 2 ?N 4\noutput y f32 2 ?N 4\n"
                            "weight 0 16 f32 1 4\n";
    return artifactBytes(
        {{artifact::SectionKind::Signature, signature},
         {artifact::SectionKind::CpuCode, readFile(MOE_TEST_MODEL_PATH)},
         {artifact::SectionKind::Weights,
          std::string(reinterpret_cast<const char *>(kWeights), 16)}});
  };
  Session ok;
  Status s = load(withRequires(__builtin_cpu_supports("sse4.2")
                                   ? "requires sse4.2\n"
                                   : "\n"),
                  ok);
  EXPECT_TRUE(s.ok()) << s.message();
  Session unknown;
  s = load(withRequires("requires quantum-entanglement\n"), unknown);
  EXPECT_EQ(s.code(), MOE_UNIMPLEMENTED);
  EXPECT_NE(s.message().find("cannot check"), std::string::npos)
      << s.message();
  if (!__builtin_cpu_supports("avx512f")) {
    Session lacking;
    s = load(withRequires("requires avx512f\n"), lacking);
    EXPECT_NE(s.message().find("this CPU lacks 'avx512f'"), std::string::npos)
        << s.message();
  }
}

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
  char path[] = "/tmp/moe-npy-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  float data[6] = {1, 2, 3, 4, 5, 6};
  ASSERT_EQ(npy::write(path, MOE_DTYPE_F32, {2, 3}, data), "");
  npy::Array a;
  ASSERT_EQ(npy::read(path, a), "");
  EXPECT_EQ(a.dtype, MOE_DTYPE_F32);
  EXPECT_EQ(a.dims, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::memcmp(a.bytes.data(), data, sizeof(data)), 0);
  std::string bytes = readFile(path);
  std::remove(path);
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

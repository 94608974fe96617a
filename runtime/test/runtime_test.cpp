//===- runtime_test.cpp - unit tests of the moe-mlir runtime ---------------===//
//
// The runtime on artifacts of format 3 built around the hand-written code
// object test/test_model.c (code ABI v2; its digest placeholder and knobs
// are patched per artifact), the strict parser, the thread pool, and the
// .npy and text helpers.
//
//===----------------------------------------------------------------------===//

#include "moe/artifact_format.h"
#include "moe/artifact_reader.h"
#include "moe/npy.h"
#include "moe/text.h"
#include "moe_runtime.hpp"
#include "test_hooks.h"
#include "thread_pool.h"

#include <gtest/gtest.h>

#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
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

/// The test model's modes (test_model.c).
enum Mode : int32_t {
  kNormal = 0,
  kWrongDims = 1,
  kTwice = 2,
  kNever = 3,
  kNegativeDims = 4,
  kHugeDims = 5,
  kWorkspace = 6,
  kWorkerError = 7,
  kMarkWorkers = 8,
  kStaticOutput = 9,
  kAllocInBody = 10,
  kHugeWorkspace = 11,
  kOverflowDims = 12,
  kBadIndex = 13,
  kNested = 14,
  kGrowInBody = 15,
  kErrorFirst = 16,
  kAllocStatic = 17,
  kZeroError = 18,
};

/// The test model's code as moe-compile would emit it for `signature`: its
/// moe_signature_digest placeholder replaced by the signature's digest;
/// `bias` and `mode` set its knobs (test_model.c).
std::string codeFor(const std::string &signature, float bias = 0,
                    int32_t mode = kNormal) {
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
const char kIo[] = "input x f32 2 ?N 4\noutput y f32 2 ?N 4\n";
const char kWeightRecord[] = "weight 0 16 row-major f32 1 4\n";

/// A format 2 signature: the header, the device line (with `features`,
/// e.g. " avx2"), `weights`, then entry main (moe_entry_main, 256 bytes of
/// workspace that may grow) with the records `io`.
std::string signatureOf(const std::string &io = kIo,
                        const std::string &weights = kWeightRecord,
                        const std::string &features = "",
                        const std::string &entry =
                            "entry main moe_entry_main 256 grows\n") {
  return "moe-signature 2\ndevice cpu x86-64" + features + "\n" + weights +
         entry + io + "end\n";
}

const std::string kSignature = signatureOf();

std::string weightBytes() {
  return std::string(reinterpret_cast<const char *>(kWeights), 16);
}

/// An artifact of the test model compiled for `signature`.
std::string artifactFor(const std::string &signature,
                        const std::string &weights = weightBytes(),
                        float bias = 0, int32_t mode = kNormal) {
  return artifactBytes(
      {{artifact::SectionKind::Signature, signature},
       {artifact::SectionKind::CpuCode, codeFor(signature, bias, mode)},
       {artifact::SectionKind::Weights, weights}});
}

std::string goodArtifact() { return artifactFor(kSignature); }

/// An artifact of the test model in `mode`, with the default signature.
std::string modeArtifact(int32_t mode, const std::string &signature =
                                           kSignature) {
  return artifactFor(signature, weightBytes(), 0, mode);
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
  /// Loads `bytes` from a file of its own (a mapped session keeps its
  /// file mapped), with `threads` threads (0: the default), copied or
  /// mapped.
  Status load(const std::string &bytes, Session &session, int64_t threads = 0,
              moe_weight_memory_t memory = MOE_WEIGHTS_COPIED) {
    std::string name = "model-" + std::to_string(files.size()) + ".moeb";
    std::string path = write(name, bytes);
    if (!threads && memory == MOE_WEIGHTS_COPIED)
      return Session::load(instance, path, session);
    SessionOptions options;
    Status s = SessionOptions::create(options);
    if (s.ok() && threads)
      s = options.setThreads(threads);
    if (s.ok())
      s = options.setWeightMemory(memory);
    return s.ok() ? Session::load(instance, path, options, session) : std::move(s);
  }
  /// Both ways of keeping the artifact refuse `bytes` with `code` and a
  /// message containing `text`.
  void expectLoadError(const std::string &bytes, moe_status_code_t code,
                       const std::string &text) {
    for (moe_weight_memory_t memory :
         {MOE_WEIGHTS_COPIED, MOE_WEIGHTS_MAPPED}) {
      Session session;
      Status s = load(bytes, session, 0, memory);
      EXPECT_FALSE(s.ok()) << "loaded, expected: " << text;
      EXPECT_EQ(s.code(), code) << s.message();
      EXPECT_NE(s.message().find(text), std::string::npos) << s.message();
    }
  }
  Instance instance;
  std::string dir;
  std::vector<std::string> files;
};

void expectBias(Session &session, float bias);
size_t mappingsOf(const std::string &text);

std::vector<float> inputData(int64_t rows, float base = 1.0f) {
  std::vector<float> data(static_cast<size_t>(rows) * 4);
  for (size_t i = 0; i < data.size(); ++i)
    data[i] = base + static_cast<float>(i);
  return data;
}

Tensor makeInput(int64_t rows, float base = 1.0f) {
  std::vector<float> data = inputData(rows, base);
  Tensor t;
  EXPECT_TRUE(Tensor::create(MOE_DTYPE_F32, {rows, 4}, data.data(), t).ok());
  return t;
}

/// Runs `session` on `x`; the status, and the outputs in `outputs`.
Status runX(const Session &session, const Tensor &x,
            std::vector<Tensor> &outputs) {
  return session.run({"x"}, {&x}, outputs);
}

/// Expects y = x + w + bias for the rows of makeInput(rows, base).
void expectSum(const Tensor &y, int64_t rows, float bias = 0,
               float base = 1.0f) {
  ASSERT_EQ(y.dims(), (std::vector<int64_t>{rows, 4}));
  for (int64_t i = 0; i < rows * 4; ++i)
    ASSERT_FLOAT_EQ(y.data<float>()[i],
                    base + static_cast<float>(i) + kWeights[i % 4] + bias)
        << "element " << i;
}

} // namespace

//===----------------------------------------------------------------------===//
// Running
//===----------------------------------------------------------------------===//

TEST_F(RuntimeTest, RunsAndReturnsOwnedOutputs) {
  Session session;
  Status s = load(goodArtifact(), session);
  ASSERT_TRUE(s.ok()) << s.message();
  Tensor x = makeInput(3);
  std::vector<Tensor> outputs;
  s = runX(session, x, outputs);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(outputs.size(), 1u);
  expectSum(outputs[0], 3);
  // The output is the caller's: 64-byte aligned, and it outlives the
  // session.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(outputs[0].data<float>()) % 64, 0u);
  session = Session();
  expectSum(outputs[0], 3);
}

TEST_F(RuntimeTest, Signature) {
  Session session;
  ASSERT_TRUE(load(goodArtifact(), session).ok());
  moe_session *s = session.get();
  EXPECT_EQ(moe_session_entry_count(s), 1u);
  EXPECT_STREQ(moe_session_entry_name(s, 0), "main");
  EXPECT_STREQ(moe_session_entry_name(s, 1), "");
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
  // Null sessions neither.
  EXPECT_EQ(moe_session_entry_count(nullptr), 0u);
  EXPECT_EQ(moe_session_thread_count(nullptr), 0u);
  EXPECT_EQ(moe_session_input_count(nullptr), 0u);
  EXPECT_STREQ(moe_session_output_dim_name(nullptr, 0, 0), "");
}

TEST_F(RuntimeTest, ZeroRows) {
  Session session;
  ASSERT_TRUE(load(goodArtifact(), session).ok());
  Tensor x = makeInput(0);
  std::vector<Tensor> outputs;
  Status s = runX(session, x, outputs);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(outputs[0].elementCount(), 0u);
  EXPECT_NE(outputs[0].data<float>(), nullptr);
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
  EXPECT_EQ(out, nullptr);
  // The session still runs.
  expectBias(session, 0);
}

TEST_F(RuntimeTest, SymbolsMustAgree) {
  std::string signature = signatureOf("input a f32 2 ?N 4\n"
                                      "input b f32 2 ?N 4\n"
                                      "output y f32 2 ?N 4\n");
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
  // Equal sizes run (the model reads the first input).
  Tensor c = makeInput(2);
  s = session.run({"b", "a"}, {&c, &a}, outputs);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(outputs[0].dims(), (std::vector<int64_t>{2, 4}));
}

TEST_F(RuntimeTest, SymbolsAreDecoded) {
  // "?N" and "?%4E" are one symbol, named "N" (symbols are percent-encoded
  // like names).
  std::string signature = signatureOf("input a f32 2 ?N 4\n"
                                      "input b f32 2 ?%4E 4\n"
                                      "output y f32 2 ?N 4\n");
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

TEST_F(RuntimeTest, ViewsAreZeroCopy) {
  // A view borrows the caller's buffer: the code reads it where it is, so
  // a change to the buffer shows in the next run without a new tensor.
  Session session;
  ASSERT_TRUE(load(goodArtifact(), session).ok());
  alignas(64) float data[3 * 4];
  std::vector<float> init = inputData(3);
  std::copy(init.begin(), init.end(), data);
  Tensor x;
  ASSERT_TRUE(Tensor::view(MOE_DTYPE_F32, {3, 4}, data, x).ok());
  EXPECT_EQ(x.data<float>(), data);
  std::vector<Tensor> outputs;
  ASSERT_TRUE(runX(session, x, outputs).ok());
  expectSum(outputs[0], 3);
  for (float &v : data)
    v += 100.0f;
  ASSERT_TRUE(runX(session, x, outputs).ok());
  expectSum(outputs[0], 3, 0, 101.0f);
  // Releasing the view leaves the buffer alone (ASan would tell).
  x = Tensor();
  EXPECT_EQ(data[0], 101.0f);
  // A view of nothing needs no data; of something, it does.
  moe_tensor *t = nullptr;
  int64_t empty[2] = {0, 4}, dims[2] = {3, 4};
  Status s(moe_tensor_create_view(MOE_DTYPE_F32, 2, empty, nullptr, &t));
  ASSERT_TRUE(s.ok()) << s.message();
  Tensor none(t);
  ASSERT_TRUE(runX(session, none, outputs).ok());
  EXPECT_EQ(outputs[0].elementCount(), 0u);
  s = Status(moe_tensor_create_view(MOE_DTYPE_F32, 2, dims, nullptr, &t));
  EXPECT_EQ(s.code(), MOE_INVALID_ARGUMENT);
  EXPECT_NE(s.message().find("data is null for 12 elements"),
            std::string::npos)
      << s.message();
  s = Status(moe_tensor_create_view(MOE_DTYPE_F32, 2, dims,
                                    reinterpret_cast<char *>(data) + 2, &t));
  EXPECT_NE(s.message().find("not aligned for f32"), std::string::npos)
      << s.message();
  int64_t negative[2] = {-1, 4};
  s = Status(moe_tensor_create_view(MOE_DTYPE_F32, 2, negative, data, &t));
  EXPECT_EQ(s.code(), MOE_INVALID_ARGUMENT);
  s = Status(moe_tensor_create_view(MOE_DTYPE_F32, 2, dims, data, nullptr));
  EXPECT_EQ(s.code(), MOE_INVALID_ARGUMENT);
}

TEST_F(RuntimeTest, SecondStaticOutput) {
  // A static output is allocated by the runtime before the call
  // (frame->outputs[1], 64-byte aligned; the model checks) and written by
  // the code; the dynamic one is requested by the code.
  std::string signature = signatureOf("input x f32 2 ?N 4\n"
                                      "output y f32 2 ?N 4\n"
                                      "output s f32 1 4\n");
  Session session;
  ASSERT_TRUE(load(artifactFor(signature, weightBytes(), 5.0f, kStaticOutput),
                   session)
                  .ok());
  Tensor x = makeInput(2);
  std::vector<Tensor> outputs;
  Status s = runX(session, x, outputs);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(outputs.size(), 2u);
  expectSum(outputs[0], 2, 5.0f);
  ASSERT_EQ(outputs[1].dims(), (std::vector<int64_t>{4}));
  for (int j = 0; j < 4; ++j)
    EXPECT_FLOAT_EQ(outputs[1].data<float>()[j], kWeights[j] + 5.0f);
  // A static output requested through output_alloc is the code's error.
  Session other;
  ASSERT_TRUE(load(modeArtifact(kAllocStatic, signature), other).ok());
  s = runX(other, x, outputs);
  EXPECT_EQ(s.code(), MOE_INTERNAL);
  EXPECT_NE(s.message().find("the code asked for output 's' through "
                             "output_alloc, but its dims are static"),
            std::string::npos)
      << s.message();
}

TEST_F(RuntimeTest, SeveralEntries) {
  // moe_session_run runs "main", wherever it is; the other entries are
  // listed and their symbols checked at load.
  std::string signature =
      "moe-signature 2\ndevice cpu x86-64\n" + std::string(kWeightRecord) +
      "entry decode moe_entry_aux 0 exact\n" + kIo + "end\n" +
      "entry main moe_entry_main 64 exact\n" + kIo + "end\n";
  Session session;
  Status s = load(artifactFor(signature), session);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(session.entryCount(), 2u);
  EXPECT_EQ(session.entryName(0), "decode");
  EXPECT_EQ(session.entryName(1), "main");
  expectBias(session, 0);
  // Any entry runs by name (moe_entry_aux adds 1000), with its own
  // signature; the main accessors describe "main".
  EXPECT_EQ(session.entryIndex("decode"), 0u);
  EXPECT_EQ(session.entryIndex("main"), 1u);
  EXPECT_EQ(session.entryIndex("nope"), 2u);
  EXPECT_EQ(session.entryInputCount(0), 1u);
  EXPECT_EQ(session.entryInputName(0, 0), "x");
  EXPECT_EQ(session.entryOutputName(0, 0), "y");
  EXPECT_EQ(session.entryInputCount(7), 0u);
  EXPECT_EQ(session.entryInputName(7, 0), "");
  EXPECT_EQ(moe_session_entry_input_dim(session.get(), 0, 0, 0), -1);
  EXPECT_STREQ(moe_session_entry_input_dim_name(session.get(), 0, 0, 0), "N");
  Tensor x = makeInput(3);
  std::vector<Tensor> outputs;
  s = session.runEntry("decode", {"x"}, {&x}, outputs);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(outputs.size(), 1u);
  expectSum(outputs[0], 3, 1000.0f);
  s = session.runEntry("main", {"x"}, {&x}, outputs);
  ASSERT_TRUE(s.ok()) << s.message();
  expectSum(outputs[0], 3);
  // An unknown entry, a null name, and an entry's own input checks.
  moe_tensor *raw = nullptr;
  const char *name = "x";
  const moe_tensor *in = x.get();
  Status unknown(moe_session_run_entry(session.get(), "nope", 1, &name, &in,
                                       1, &raw));
  EXPECT_EQ(unknown.code(), MOE_NOT_FOUND);
  EXPECT_NE(unknown.message().find("the model has no entry 'nope'"),
            std::string::npos)
      << unknown.message();
  Status null(moe_session_run_entry(session.get(), nullptr, 1, &name, &in, 1,
                                    &raw));
  EXPECT_EQ(null.code(), MOE_INVALID_ARGUMENT);
  s = session.runEntry("decode", {"z"}, {&x}, outputs);
  EXPECT_EQ(s.code(), MOE_INVALID_ARGUMENT);
  EXPECT_NE(s.message().find("the model has no input 'z'"), std::string::npos)
      << s.message();
  // An artifact without "main": this runtime cannot run it.
  std::string noMain = "moe-signature 2\ndevice cpu x86-64\n" +
                       std::string(kWeightRecord) +
                       "entry decode moe_entry_aux 0 exact\n" + kIo + "end\n";
  expectLoadError(artifactFor(noMain), MOE_UNIMPLEMENTED,
                  "has no entry 'main' (its entries: 'decode'): every "
                  "artifact needs one");
  // An entry whose symbol the code lacks, or names its data.
  std::string missing = "moe-signature 2\ndevice cpu x86-64\n" +
                        std::string(kWeightRecord) +
                        "entry main moe_entry_main 0 exact\n" + kIo +
                        "end\nentry prefill moe_entry_prefill 0 exact\nend\n";
  expectLoadError(artifactFor(missing), MOE_DATA_LOSS,
                  "no entry symbol 'moe_entry_prefill' (entry 'prefill')");
  std::string data = "moe-signature 2\ndevice cpu x86-64\n" +
                     std::string(kWeightRecord) +
                     "entry main moe_signature_digest 0 exact\n" + kIo +
                     "end\n";
  expectLoadError(artifactFor(data), MOE_DATA_LOSS,
                  "the entry symbol 'moe_signature_digest' is not a function");
}

TEST_F(RuntimeTest, StateTensorsAreNotSupportedYet) {
  // The parser reads state records; sessions cannot run them yet.
  std::string signature = signatureOf(
      kIo, std::string(kWeightRecord) + "state cache f32 3 ?B 8 16\n");
  artifact::Signature parsed;
  artifact::Result r =
      artifact::parseSignature(signature.data(), signature.size(), parsed);
  ASSERT_TRUE(r.ok()) << r.message;
  ASSERT_EQ(parsed.states.size(), 1u);
  EXPECT_EQ(parsed.states[0].name, "cache");
  EXPECT_EQ(parsed.states[0].dims, (std::vector<int64_t>{-1, 8, 16}));
  expectLoadError(artifactFor(signature), MOE_UNIMPLEMENTED,
                  "state tensors need a generation context, which this "
                  "runtime does not provide yet");
}

//===----------------------------------------------------------------------===//
// Loading: corrupt artifacts, versions, files, CPU features
//===----------------------------------------------------------------------===//

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
      artifactBytes({{artifact::SectionKind::Signature, kSignature}},
                    /*version=*/99),
      MOE_UNIMPLEMENTED, "format version 99");
  // `device cpu` needs the CPU code section (the executor's choice).
  expectLoadError(
      artifactBytes({{artifact::SectionKind::Signature, kSignature},
                     {artifact::SectionKind::Weights, weightBytes()}}),
      MOE_DATA_LOSS, "lacks its CPU code section");
  expectLoadError(
      artifactBytes({{artifact::SectionKind::Signature,
                      "moe-signature 2\ndevice cpu x86-64\n"
                      "entry main e 0 exact\ninput x f99 1 3\nend\n"},
                     {artifact::SectionKind::CpuCode, "not an elf"}}),
      MOE_DATA_LOSS, "corrupt signature at line 4");
  // Load a good model first: the bad code section below must not be
  // confused with code already loaded.
  Session first;
  ASSERT_TRUE(load(good, first).ok());
  expectLoadError(
      artifactBytes({{artifact::SectionKind::Signature, kSignature},
                     {artifact::SectionKind::CpuCode, "not an elf"},
                     {artifact::SectionKind::Weights, weightBytes()}}),
      MOE_DATA_LOSS, "cannot load the code section");
  expectLoadError(artifactFor(signatureOf(kIo,
                                          "weight 0 64 row-major f32 1 16\n"),
                              std::string(8, '\0')),
                  MOE_DATA_LOSS, "corrupt weight record");
  expectLoadError(
      artifactFor(signatureOf(kIo, kWeightRecord, "",
                              "entry main nothere 0 exact\n")),
      MOE_DATA_LOSS, "no entry symbol 'nothere'");
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

TEST_F(RuntimeTest, ReadsFormatVersion2) {
  // Format 2 differs only in its section checksums (byte-wise FNV-1a):
  // artifacts compiled before format 3 still load and run, and a flipped
  // byte is still caught.
  std::string v2 = artifactBytes(
      {{artifact::SectionKind::Signature, kSignature},
       {artifact::SectionKind::CpuCode, codeFor(kSignature, 0, kNormal)},
       {artifact::SectionKind::Weights, weightBytes()}},
      /*version=*/2);
  ASSERT_NE(v2, goodArtifact()); // the checksums differ
  Session session;
  Status s = load(v2, session);
  ASSERT_TRUE(s.ok()) << s.message();
  Tensor x = makeInput(3);
  std::vector<Tensor> outputs;
  s = runX(session, x, outputs);
  ASSERT_TRUE(s.ok()) << s.message();
  expectSum(outputs[0], 3);
  std::string flipped = v2;
  flipped[flipped.size() - 3] ^= 0x40; // inside the weights
  expectLoadError(flipped, MOE_DATA_LOSS, "checksum mismatch in section 3");
  // A format 3 table read as format 2 (the version field edited, the
  // header checksum made consistent): the section checksums no longer hold.
  std::string relabeled = goodArtifact();
  artifact::Header h;
  std::memcpy(&h, relabeled.data(), sizeof(h));
  std::vector<artifact::SectionEntry> table(h.sectionCount);
  std::memcpy(table.data(), relabeled.data() + sizeof(h),
              table.size() * sizeof(artifact::SectionEntry));
  h.version = 2;
  h.checksum = artifact::headerChecksum(h, table.data());
  std::memcpy(&relabeled[0], &h, sizeof(h));
  expectLoadError(relabeled, MOE_DATA_LOSS, "checksum mismatch in section 1");
}

TEST(SectionHash, FuzzSeedsOfTheIndependentWriter) {
  // test/fuzz/make_corpus.py writes artifacts with its own SectionHash and
  // FNV-1a: its valid seeds, format 3 and format 2, must parse.
  for (const char *name : {"valid.moeb", "version2.moeb"}) {
    std::string path = std::string(MOE_FUZZ_ARTIFACT_CORPUS) + "/" + name;
    std::string bytes = readFile(path);
    ASSERT_FALSE(bytes.empty()) << "cannot read " << path;
    artifact::Contents contents;
    artifact::Result r =
        artifact::parse(reinterpret_cast<const unsigned char *>(bytes.data()),
                        bytes.size(), name, contents);
    EXPECT_EQ(r.code, MOE_OK) << r.message;
  }
}

TEST(SectionHash, PiecesAndChanges) {
  // 1000 bytes: 31 blocks of 32 and a tail of 8.
  std::string bytes(1000, '\0');
  for (size_t i = 0; i < bytes.size(); ++i)
    bytes[i] = static_cast<char>((i * 131 + 7) & 0xff);
  uint64_t whole = artifact::SectionHash::of(bytes.data(), bytes.size());
  // Fed in pieces of every size from 1 to 70 (crossing blocks and the
  // pending buffer every way), the digest is the same.
  for (size_t piece = 1; piece <= 70; ++piece) {
    artifact::SectionHash h;
    for (size_t at = 0; at < bytes.size(); at += piece)
      h.update(bytes.data() + at, std::min(piece, bytes.size() - at));
    EXPECT_EQ(h.digest(), whole) << "pieces of " << piece;
  }
  // Every single-bit change, in the blocks and in the tail, changes it;
  // and so do a length change by one zero byte and swapping two words.
  for (size_t i = 0; i < bytes.size(); ++i)
    for (int bit = 0; bit < 8; ++bit) {
      std::string changed = bytes;
      changed[i] ^= static_cast<char>(1 << bit);
      ASSERT_NE(artifact::SectionHash::of(changed.data(), changed.size()),
                whole)
          << "byte " << i << " bit " << bit;
    }
  std::string longer = bytes + std::string(1, '\0');
  EXPECT_NE(artifact::SectionHash::of(longer.data(), longer.size()), whole);
  std::string swapped = bytes;
  std::swap_ranges(swapped.begin(), swapped.begin() + 8, swapped.begin() + 32);
  EXPECT_NE(artifact::SectionHash::of(swapped.data(), swapped.size()), whole);
  // Empty input: the digest of nothing, and what the writer records for an
  // empty section.
  EXPECT_EQ(artifact::SectionHash::of(nullptr, 0),
            artifact::SectionHash().digest());
}

TEST_F(RuntimeTest, RefusesFormatVersion1) {
  // What moe-compile wrote before format 2 (memref descriptors, a packed
  // entry): refused, with the way out.
  std::string v1 = artifactBytes(
      {{artifact::SectionKind::Signature,
        "entry moe_entry\ninput x f32 2 ?N 4\noutput y f32 2 ?N 4\n"
        "weight 0 16 f32 1 4\n"},
       {artifact::SectionKind::CpuCode, testModel()},
       {artifact::SectionKind::Weights, weightBytes()}},
      /*version=*/1);
  const char *message = "artifact format version 1 is no longer supported by "
                        "this runtime (format 3): recompile the model with "
                        "moe-compile";
  expectLoadError(v1, MOE_UNIMPLEMENTED, message);
  artifact::Contents contents;
  artifact::Result r = artifact::parse(
      reinterpret_cast<const unsigned char *>(v1.data()), v1.size(),
      "old.moeb", contents);
  EXPECT_EQ(r.code, MOE_UNIMPLEMENTED);
  EXPECT_EQ(r.message, std::string("'old.moeb': ") + message);
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
  // The features are those of the device line.
  auto withFeatures = [&](const std::string &features) {
    return artifactFor(signatureOf(kIo, kWeightRecord, features));
  };
  Session ok;
  Status s =
      load(withFeatures(__builtin_cpu_supports("sse4.2") ? " sse4.2" : ""),
           ok);
  EXPECT_TRUE(s.ok()) << s.message();
  Session unknown;
  // A feature no runtime can check is a corrupt signature, not a CPU gap.
  s = load(withFeatures(" quantum-entanglement"), unknown);
  EXPECT_EQ(s.code(), MOE_DATA_LOSS);
  EXPECT_NE(s.message().find("unknown CPU feature 'quantum-entanglement'"),
            std::string::npos)
      << s.message();
  if (!__builtin_cpu_supports("avx512f")) {
    Session lacking;
    s = load(withFeatures(" avx512f"), lacking);
    EXPECT_NE(s.message().find("this CPU lacks 'avx512f'"), std::string::npos)
        << s.message();
  }
  // Whatever this CPU has: a CPU without avx512f, then a runtime that
  // cannot check a feature, through the loader's query hook.
  test_hooks::setCpuFeatureQuery([](const char *feature) {
    return std::strcmp(feature, "avx512f") == 0 ? 0 : 1;
  });
  Session lacking, allThere;
  s = load(withFeatures(" avx2 avx512f"), lacking);
  EXPECT_EQ(s.code(), MOE_UNIMPLEMENTED);
  EXPECT_NE(s.message().find("this CPU lacks 'avx512f', which the "
                             "artifact's code was compiled for"),
            std::string::npos)
      << s.message();
  s = load(withFeatures(" avx2 fma"), allThere);
  EXPECT_TRUE(s.ok()) << s.message();
  test_hooks::setCpuFeatureQuery([](const char *) { return -1; });
  Session unchecked;
  s = load(withFeatures(" avx2"), unchecked);
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
  std::string line = "device cpu x86-64";
  for (const char *f : artifact::kCheckableCpuFeatures) {
    EXPECT_TRUE(seen.insert(f).second) << f << " listed twice";
    EXPECT_TRUE(artifact::isKnownCpuFeature(f)) << f;
    line += std::string(" ") + f;
  }
  EXPECT_EQ(seen.size(), 12u);
  EXPECT_FALSE(artifact::isKnownCpuFeature("avx512fp16"));
  std::string text =
      "moe-signature 2\n" + line + "\nentry main e 0 exact\nend\n";
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
    Session session;
    Status s = load(
        artifactFor(signatureOf(kIo, kWeightRecord, std::string(" ") + f)),
        session);
    EXPECT_TRUE(s.ok() || s.message().find("this CPU lacks") !=
                              std::string::npos)
        << f << ": " << s.message();
  }
}
#endif

//===----------------------------------------------------------------------===//
// Threads: options, the pool, determinism, concurrency
//===----------------------------------------------------------------------===//

TEST_F(RuntimeTest, ThreadOptions) {
  SessionOptions options;
  ASSERT_TRUE(SessionOptions::create(options).ok());
  for (int64_t bad : {int64_t(0), int64_t(-1), int64_t(MOE_MAX_THREADS + 1),
                      INT64_MIN, INT64_MAX}) {
    Status s = options.setThreads(bad);
    EXPECT_EQ(s.code(), MOE_INVALID_ARGUMENT) << bad;
    EXPECT_NE(s.message().find("the thread count must be from 1 to 1024 "
                               "(MOE_MAX_THREADS), got " +
                               std::to_string(bad)),
              std::string::npos)
        << s.message();
  }
  EXPECT_EQ(Status(moe_session_options_set_threads(nullptr, 2)).code(),
            MOE_INVALID_ARGUMENT);
  EXPECT_EQ(Status(moe_session_options_create(nullptr)).code(),
            MOE_INVALID_ARGUMENT);
  moe_session_options_release(nullptr);
  for (int64_t threads : {1, 4}) {
    Session session;
    Status s = load(goodArtifact(), session, threads);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(session.threadCount(), static_cast<size_t>(threads));
    expectBias(session, 0);
  }
  // The largest count is accepted (workers start only when a loop needs
  // them: this session never runs).
  ASSERT_TRUE(options.setThreads(MOE_MAX_THREADS).ok());
  std::string path = write("max.moeb", goodArtifact());
  Session most;
  ASSERT_TRUE(Session::load(instance, path, options, most).ok());
  EXPECT_EQ(most.threadCount(), size_t(MOE_MAX_THREADS));
  // No options, or null ones: the machine's cores.
  size_t cores = std::max(1u, std::thread::hardware_concurrency());
  Session plain;
  ASSERT_TRUE(Session::load(instance, path, plain).ok());
  EXPECT_EQ(plain.threadCount(), std::min<size_t>(cores, MOE_MAX_THREADS));
  moe_session *raw = nullptr;
  Status s(moe_session_create_with_options(instance.get(), path.c_str(),
                                           nullptr, &raw));
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(moe_session_thread_count(raw), plain.threadCount());
  moe_session_release(raw);
}

TEST_F(RuntimeTest, WeightMemory) {
  SessionOptions options;
  ASSERT_TRUE(SessionOptions::create(options).ok());
  Status bad(moe_session_options_set_weight_memory(options.get(), 7));
  EXPECT_EQ(bad.code(), MOE_INVALID_ARGUMENT);
  EXPECT_NE(bad.message().find("MOE_WEIGHTS_COPIED (0) or MOE_WEIGHTS_MAPPED "
                               "(1), got 7"),
            std::string::npos)
      << bad.message();
  EXPECT_EQ(
      Status(moe_session_options_set_weight_memory(nullptr, MOE_WEIGHTS_MAPPED))
          .code(),
      MOE_INVALID_ARGUMENT);
  // Both run the code on the same weights; only a mapped session keeps
  // its file in the process's mappings.
  for (moe_weight_memory_t memory : {MOE_WEIGHTS_COPIED, MOE_WEIGHTS_MAPPED}) {
    std::string path =
        write(memory == MOE_WEIGHTS_MAPPED ? "mapped.moeb" : "read.moeb",
              goodArtifact());
    ASSERT_TRUE(options.setWeightMemory(memory).ok());
    Session session;
    Status s = Session::load(instance, path, options, session);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(mappingsOf(path), memory == MOE_WEIGHTS_MAPPED ? 1u : 0u) << path;
    expectBias(session, 0);
  }
  // A copied artifact (the default) no longer needs its file: truncated
  // after the load (where a mapped session's next read of its pages would
  // fault), the session still runs.
  std::string path = write("copied.moeb", goodArtifact());
  Session copied;
  ASSERT_TRUE(Session::load(instance, path, copied).ok());
  ASSERT_EQ(truncate(path.c_str(), 0), 0);
  expectBias(copied, 0);
}

TEST_F(RuntimeTest, ThreadCountsGiveIdenticalBits) {
  // The chunks of a parallel loop depend only on its range and grain, so
  // the code computes the same bits on 1, 2, 3 or 8 threads (rows in
  // parallel, and rows whose columns are a nested loop).
  for (int32_t mode : {kNormal, kNested}) {
    std::vector<unsigned char> reference;
    for (int64_t threads : {1, 2, 3, 8}) {
      Session session;
      ASSERT_TRUE(
          load(artifactFor(kSignature, weightBytes(), 0.3f, mode), session,
               threads)
              .ok());
      Tensor x = makeInput(37, 0.1f);
      std::vector<Tensor> outputs;
      Status s = runX(session, x, outputs);
      ASSERT_TRUE(s.ok()) << s.message();
      expectSum(outputs[0], 37, 0.3f, 0.1f);
      const auto *bytes = outputs[0].data<unsigned char>();
      std::vector<unsigned char> got(bytes, bytes + outputs[0].byteSize());
      if (reference.empty())
        reference = got;
      EXPECT_EQ(got, reference) << "mode " << mode << ", " << threads
                                << " threads";
    }
  }
}

TEST_F(RuntimeTest, ThreadsReallyRunTheLoops) {
  // The model marks the rows a worker computed (its entering thread waits
  // in its first chunk until a worker has run one).
  Session session;
  ASSERT_TRUE(load(modeArtifact(kMarkWorkers), session, 4).ok());
  Tensor x = makeInput(32);
  std::vector<Tensor> outputs;
  ASSERT_TRUE(runX(session, x, outputs).ok());
  int byWorkers = 0;
  for (int i = 0; i < 32; ++i)
    byWorkers += outputs[0].data<float>()[i * 4 + 3] == 1.0f;
  EXPECT_GT(byWorkers, 0);
}

TEST_F(RuntimeTest, ThreadsReportErrorsFromWorkers) {
  // A data error reported in a chunk a worker runs fails the run.
  Session session, good;
  ASSERT_TRUE(load(modeArtifact(kWorkerError), session, 4).ok());
  ASSERT_TRUE(load(goodArtifact(), good, 4).ok());
  for (int iter = 0; iter < 3; ++iter) {
    Tensor x = makeInput(16);
    std::vector<Tensor> outputs;
    Status s = runX(session, x, outputs);
    EXPECT_EQ(s.code(), MOE_INVALID_ARGUMENT) << s.message();
    EXPECT_NE(s.message().find("an index is out of range in a gather"),
              std::string::npos)
        << s.message();
    EXPECT_TRUE(outputs.empty());
    // The error belongs to its run only.
    expectBias(good, 0);
  }
}

namespace {
/// 8 threads run `session` 50 times each on 1 to 36 rows (several chunks,
/// so the pool is used by several runs at once); expects every result.
void runConcurrently(Session &session) {
  std::vector<std::thread> threads;
  std::vector<int> failures(8, 0);
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int iter = 0; iter < 50; ++iter) {
        int64_t rows = 1 + t * 5;
        Tensor x = makeInput(rows, static_cast<float>(t));
        std::vector<Tensor> outputs;
        if (!runX(session, x, outputs).ok()) {
          ++failures[t];
          continue;
        }
        for (int i = 0; i < rows * 4; ++i)
          if (outputs[0].data<float>()[i] != t + i + kWeights[i % 4])
            ++failures[t];
      }
    });
  for (std::thread &th : threads)
    th.join();
  for (int f : failures)
    EXPECT_EQ(f, 0);
}
} // namespace

TEST_F(RuntimeTest, ConcurrentRuns) {
  Session session;
  ASSERT_TRUE(load(goodArtifact(), session).ok());
  runConcurrently(session);
}

TEST_F(RuntimeTest, ConcurrentRunsShareThePool) {
  for (int64_t threads : {1, 4}) {
    Session session;
    ASSERT_TRUE(load(goodArtifact(), session, threads).ok());
    runConcurrently(session);
  }
}

TEST_F(RuntimeTest, ConcurrentRunsWithWorkspace) {
  // Each concurrent run has an arena of its own.
  Session session;
  ASSERT_TRUE(load(modeArtifact(kWorkspace), session, 3).ok());
  runConcurrently(session);
}

TEST(ThreadPoolTest, ChunksDependOnlyOnTheRange) {
  using Chunks = std::vector<std::pair<int64_t, int64_t>>;
  struct Record {
    std::mutex mutex;
    Chunks chunks;
  };
  auto chunksOf = [](detail::ThreadPool &pool, int64_t begin, int64_t end,
                     int64_t grain) {
    Record record;
    pool.parallelFor(
        begin, end, grain,
        [](void *closure, int64_t b, int64_t e) {
          auto *r = static_cast<Record *>(closure);
          std::lock_guard<std::mutex> lock(r->mutex);
          r->chunks.emplace_back(b, e);
        },
        &record);
    std::sort(record.chunks.begin(), record.chunks.end());
    return record.chunks;
  };
  for (unsigned threads : {1u, 3u, 8u}) {
    detail::ThreadPool pool(threads);
    EXPECT_EQ(chunksOf(pool, -5, 17, 4),
              (Chunks{{-5, -1}, {-1, 3}, {3, 7}, {7, 11}, {11, 15}, {15, 17}}));
    // A grain below 1 counts as 1; empty and reversed ranges run nothing.
    EXPECT_EQ(chunksOf(pool, 0, 3, 0), (Chunks{{0, 1}, {1, 2}, {2, 3}}));
    EXPECT_EQ(chunksOf(pool, 0, 3, -7), (Chunks{{0, 1}, {1, 2}, {2, 3}}));
    EXPECT_EQ(chunksOf(pool, 5, 5, 1), Chunks{});
    EXPECT_EQ(chunksOf(pool, 5, 2, 1), Chunks{});
    // Extremes of int64 neither overflow nor lose a chunk.
    EXPECT_EQ(chunksOf(pool, INT64_MIN, INT64_MIN + 10, INT64_MAX),
              (Chunks{{INT64_MIN, INT64_MIN + 10}}));
    EXPECT_EQ(chunksOf(pool, INT64_MAX - 3, INT64_MAX, 2),
              (Chunks{{INT64_MAX - 3, INT64_MAX - 1},
                      {INT64_MAX - 1, INT64_MAX}}));
    EXPECT_EQ(chunksOf(pool, -1, INT64_MAX, INT64_MAX),
              (Chunks{{-1, INT64_MAX - 1}, {INT64_MAX - 1, INT64_MAX}}));
    EXPECT_EQ(pool.threads(), threads);
  }
}

TEST(ThreadPoolTest, NestedLoopsRunInlineInOrder) {
  detail::ThreadPool pool(4);
  struct Outer {
    detail::ThreadPool *pool;
    std::atomic<int> bad{0}, inner{0};
  } outer;
  outer.pool = &pool;
  struct Inner {
    std::thread::id thread;
    int64_t next = 0;
    Outer *outer;
  };
  pool.parallelFor(
      0, 16, 1,
      [](void *closure, int64_t, int64_t) {
        auto *o = static_cast<Outer *>(closure);
        Inner in;
        in.thread = std::this_thread::get_id();
        in.outer = o;
        o->pool->parallelFor(
            0, 8, 1,
            [](void *c, int64_t b, int64_t e) {
              auto *i = static_cast<Inner *>(c);
              if (std::this_thread::get_id() != i->thread || b != i->next ||
                  e != b + 1)
                ++i->outer->bad;
              i->next = e;
              ++i->outer->inner;
            },
            &in);
      },
      &outer);
  EXPECT_EQ(outer.bad.load(), 0);
  EXPECT_EQ(outer.inner.load(), 16 * 8);
}

TEST(ThreadPoolTest, ConcurrentCallersShareThePool) {
  detail::ThreadPool pool(3);
  std::vector<std::thread> callers;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 6; ++t)
    callers.emplace_back([&] {
      for (int iter = 0; iter < 200; ++iter) {
        std::vector<std::atomic<int>> hits(50);
        pool.parallelFor(
            0, 50, 3,
            [](void *c, int64_t b, int64_t e) {
              auto *h = static_cast<std::vector<std::atomic<int>> *>(c);
              for (int64_t i = b; i < e; ++i)
                ++(*h)[static_cast<size_t>(i)];
            },
            &hits);
        for (std::atomic<int> &h : hits)
          wrong += h.load() != 1;
      }
    });
  for (std::thread &t : callers)
    t.join();
  EXPECT_EQ(wrong.load(), 0);
}

//===----------------------------------------------------------------------===//
// Released sessions and instances
//===----------------------------------------------------------------------===//

TEST_F(RuntimeTest, RefusesReleasedSessions) {
  std::string path = write("m.moeb", goodArtifact());
  moe_session *raw = nullptr;
  Status s(moe_session_create(instance.get(), path.c_str(), &raw));
  ASSERT_TRUE(s.ok()) << s.message();
  moe_session_release(raw);
  // `raw` dangles: the API refuses it without reading it (ASan would
  // tell).
  Tensor x = makeInput(2);
  const moe_tensor *in[] = {x.get()};
  const char *names[] = {"x"};
  moe_tensor *out = nullptr;
  s = Status(moe_session_run(raw, 1, names, in, 1, &out));
  EXPECT_EQ(s.code(), MOE_INVALID_ARGUMENT);
  EXPECT_NE(s.message().find("session was released (or is not a session)"),
            std::string::npos)
      << s.message();
  EXPECT_EQ(out, nullptr);
  EXPECT_EQ(moe_session_input_count(raw), 0u);
  EXPECT_EQ(moe_session_output_count(raw), 0u);
  EXPECT_STREQ(moe_session_input_name(raw, 0), "");
  EXPECT_EQ(moe_session_input_dim(raw, 0, 0), -1);
  EXPECT_EQ(moe_session_thread_count(raw), 0u);
  EXPECT_EQ(moe_session_entry_count(raw), 0u);
  EXPECT_STREQ(moe_session_entry_name(raw, 0), "");
  moe_session_release(raw); // A second release does nothing.
  // Nor is anything else a session.
  alignas(64) char notASession[256] = {};
  s = Status(moe_session_run(reinterpret_cast<moe_session *>(notASession), 1,
                             names, in, 1, &out));
  EXPECT_NE(s.message().find("session was released"), std::string::npos);
  moe_session_release(reinterpret_cast<moe_session *>(notASession));
  // A released instance makes no session.
  moe_instance *gone = nullptr;
  ASSERT_TRUE(Status(moe_instance_create(&gone)).ok());
  moe_instance_release(gone);
  s = Status(moe_session_create(gone, path.c_str(), &raw));
  EXPECT_EQ(s.code(), MOE_INVALID_ARGUMENT);
  EXPECT_NE(s.message().find("instance was released (or is not an "
                             "instance)"),
            std::string::npos)
      << s.message();
  EXPECT_EQ(raw, nullptr);
  moe_instance_release(gone);
}

//===----------------------------------------------------------------------===//
// The code's requests: outputs, workspace, errors
//===----------------------------------------------------------------------===//

TEST_F(RuntimeTest, RefusesBadRequestsFromTheCode) {
  // Each is checked when the code makes it, and abandons the run (or, in a
  // parallel body, its chunk); the session goes on running.
  std::string rank3 = signatureOf("input x f32 2 ?N 4\n"
                                  "output y f32 3 ?A ?B ?C\n");
  struct Case {
    int32_t mode;
    moe_status_code_t code;
    const char *text;
    std::string signature;
  } cases[] = {
      {kWrongDims, MOE_INTERNAL,
       "the code produced output 'y' with dims [3, 5], but the signature "
       "says [?N, 4]",
       kSignature},
      {kNegativeDims, MOE_INTERNAL,
       "the code produced output 'y' with dims [-1, 4], but the signature "
       "says [?N, 4]",
       kSignature},
      {kTwice, MOE_INTERNAL, "the code asked for output 'y' twice",
       kSignature},
      {kNever, MOE_INTERNAL,
       "the code never produced output 'y' (a dynamic output is requested "
       "with output_alloc)",
       kSignature},
      {kHugeDims, MOE_INVALID_ARGUMENT,
       "output 'y' dim 0 ('N') would be 1099511627776, above the limit of "
       "16777216 for symbolic dims (MOE_MAX_SYMBOLIC_DIM)",
       kSignature},
      {kOverflowDims, MOE_INVALID_ARGUMENT,
       "output 'y' would have dims [16777216, 16777216, 16777216]: more "
       "elements than memory can hold",
       rank3},
      {kBadIndex, MOE_INTERNAL,
       "the code asked for output 7, but entry 'main' has 1 outputs",
       kSignature},
      {kAllocInBody, MOE_INTERNAL,
       "the code called output_alloc inside a parallel_for body",
       kSignature},
      {kGrowInBody, MOE_INTERNAL,
       "the code called workspace_grow inside a parallel_for body",
       kSignature},
      {kHugeWorkspace, MOE_RESOURCE_EXHAUSTED,
       "cannot allocate 4611686018427387905 bytes of workspace", kSignature},
      {kZeroError, MOE_INVALID_ARGUMENT, "the model reported a data error",
       kSignature},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE("mode " + std::to_string(c.mode));
    Session session;
    Status s = load(modeArtifact(c.mode, c.signature), session, 2);
    ASSERT_TRUE(s.ok()) << s.message();
    for (int iter = 0; iter < 2; ++iter) {
      Tensor x = makeInput(3);
      std::vector<Tensor> outputs;
      s = runX(session, x, outputs);
      EXPECT_EQ(s.code(), c.code) << s.message();
      EXPECT_NE(s.message().find(c.text), std::string::npos) << s.message();
      EXPECT_TRUE(outputs.empty());
    }
  }
}

TEST_F(RuntimeTest, DataErrorComesFirst) {
  // The code reported a data error, then asked for impossible dims (a
  // consequence): the caller learns of the data error, and the tensors
  // made are released (LeakSanitizer would tell).
  Session session;
  Status s = load(modeArtifact(kErrorFirst), session);
  ASSERT_TRUE(s.ok()) << s.message();
  Tensor x = makeInput(3);
  std::vector<Tensor> outputs;
  s = runX(session, x, outputs);
  EXPECT_EQ(s.code(), MOE_INVALID_ARGUMENT) << s.message();
  EXPECT_NE(s.message().find("a dynamic dimension has a size the model "
                             "cannot take"),
            std::string::npos)
      << s.message();
  EXPECT_TRUE(outputs.empty());
  // The next run starts without the error.
  Session good;
  ASSERT_TRUE(load(goodArtifact(), good).ok());
  expectBias(good, 0);
}

TEST_F(RuntimeTest, WorkspaceGrowsThenStaysPut) {
  // The model takes more workspace than the signature's 256 bytes (two
  // segments grown, a mark restored, the first segment taken again: the
  // model checks that it gets the same bytes). After a run that grew, the
  // arena is one segment of the high-water size: later runs like it
  // allocate nothing.
  for (const char *kind : {"grows", "exact"}) {
    SCOPED_TRACE(kind);
    std::string signature = signatureOf(
        kIo, kWeightRecord, "",
        std::string("entry main moe_entry_main 256 ") + kind + "\n");
    Session session;
    ASSERT_TRUE(load(modeArtifact(kWorkspace, signature), session, 2).ok());
    for (int64_t rows : {3, 1024}) {
      Tensor x = makeInput(rows);
      std::vector<Tensor> outputs;
      uint64_t before = test_hooks::workspaceAllocations();
      Status s = runX(session, x, outputs);
      ASSERT_TRUE(s.ok()) << s.message();
      expectSum(outputs[0], rows);
      uint64_t grown = test_hooks::workspaceAllocations();
      EXPECT_GT(grown, before);
      for (int iter = 0; iter < 5; ++iter) {
        s = runX(session, x, outputs);
        ASSERT_TRUE(s.ok()) << s.message();
        expectSum(outputs[0], rows);
      }
      EXPECT_EQ(test_hooks::workspaceAllocations(), grown)
          << "steady-state runs allocated workspace";
    }
  }
  // A need that creeps up (a decode step one position later each time)
  // fits the slack that growth leaves in the coalesced segment (each grown
  // segment is up to twice its predecessor): no new segment per run.
  {
    Session session;
    ASSERT_TRUE(load(modeArtifact(kWorkspace), session, 1).ok());
    Tensor x = makeInput(1024);
    std::vector<Tensor> outputs;
    ASSERT_TRUE(runX(session, x, outputs).ok());
    uint64_t grown = test_hooks::workspaceAllocations();
    // Each step needs 64 bytes more than the last: without headroom, each
    // would replace the segment.
    for (int64_t rows = 1028; rows <= 1100; rows += 4) {
      Tensor more = makeInput(rows);
      Status s = runX(session, more, outputs);
      ASSERT_TRUE(s.ok()) << s.message();
      expectSum(outputs[0], rows);
    }
    EXPECT_EQ(test_hooks::workspaceAllocations(), grown)
        << "a slowly growing need reallocated the workspace";
  }
  // A model that does not grow its arena allocates it once.
  Session plain;
  ASSERT_TRUE(load(goodArtifact(), plain).ok());
  expectBias(plain, 0);
  uint64_t before = test_hooks::workspaceAllocations();
  for (int iter = 0; iter < 5; ++iter)
    expectBias(plain, 0);
  EXPECT_EQ(test_hooks::workspaceAllocations(), before);
}

TEST_F(RuntimeTest, KeepsLargeBuffersForTheNextTensors) {
  // The limits below are the defaults'.
  if (const char *keep = std::getenv("MOE_RUNTIME_KEEP_BYTES"); keep && *keep)
    GTEST_SKIP() << "MOE_RUNTIME_KEEP_BYTES is set (" << keep
                 << "): this test needs the default";
  // [kRows, 4] f32 is 1 MB, the smallest size kept.
  constexpr int64_t kRows = int64_t(1) << 16;
  constexpr uint64_t kBytes = uint64_t(1) << 20;
  auto make = [](int64_t rows, Tensor &t) {
    ASSERT_TRUE(Tensor::create(MOE_DTYPE_F32, {rows, 4}, nullptr, t).ok());
  };
  ASSERT_EQ(test_hooks::keptBufferBytes(), 0u);
  // The inputs of the runs below (1 MB each), made before any buffer is
  // kept.
  Tensor x = makeInput(kRows), x2 = makeInput(kRows, 7.0f);
  // While no session is live, a released buffer is freed.
  {
    Tensor t;
    make(kRows, t);
  }
  EXPECT_EQ(test_hooks::keptBufferBytes(), 0u);
  Session session;
  ASSERT_TRUE(load(goodArtifact(), session).ok());
  void *kept = nullptr;
  {
    Tensor t;
    make(kRows, t);
    kept = t.data<void>();
    std::memset(kept, 0x5A, kBytes);
  }
  EXPECT_EQ(test_hooks::keptBufferBytes(), kBytes);
  // A smaller tensor (under 1 MB) neither takes it nor is kept.
  {
    Tensor t;
    make(kRows / 2, t);
    EXPECT_EQ(test_hooks::keptBufferBytes(), kBytes);
  }
  EXPECT_EQ(test_hooks::keptBufferBytes(), kBytes);
  // The next one of the same size takes it: moe_tensor_create without
  // data still zeroes it.
  {
    Tensor t;
    make(kRows, t);
    EXPECT_EQ(t.data<void>(), kept);
    EXPECT_EQ(test_hooks::keptBufferBytes(), 0u);
    for (int64_t i = 0; i < kRows * 4; ++i)
      ASSERT_EQ(t.data<float>()[i], 0.0f) << "element " << i;
  }
  // A run's outputs are kept and reused the same way, and their values are
  // the new run's.
  std::vector<Tensor> outputs;
  Status s = runX(session, x, outputs);
  ASSERT_TRUE(s.ok()) << s.message();
  void *out = outputs[0].data<void>();
  EXPECT_EQ(out, kept);
  outputs.clear();
  EXPECT_EQ(test_hooks::keptBufferBytes(), kBytes);
  s = runX(session, x2, outputs);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(outputs[0].data<void>(), out);
  expectSum(outputs[0], kRows, 0, 7.0f);
  outputs.clear();
  // At most 8 buffers, the oldest freed first: ten of sizes 1 MB + 64 i
  // (the first takes the run's kept output), released in order i = 0..9,
  // leave 2..9.
  {
    std::vector<Tensor> many(10);
    for (int64_t i = 0; i < 10; ++i)
      make(kRows + 4 * i, many[static_cast<size_t>(i)]);
  }
  uint64_t kept8 = 8 * kBytes + 64 * (2 + 3 + 4 + 5 + 6 + 7 + 8 + 9);
  EXPECT_EQ(test_hooks::keptBufferBytes(), kept8);
  {
    Tensor first, last;
    make(kRows, first); // size 0: freed, a new buffer
    EXPECT_EQ(test_hooks::keptBufferBytes(), kept8);
    make(kRows + 4 * 9, last); // size 9: taken
    EXPECT_EQ(test_hooks::keptBufferBytes(), kept8 - kBytes - 64 * 9);
  }
  // Released in reverse order: last (size 9) fills the eighth place again,
  // first (size 0) pushes out the oldest, size 2.
  uint64_t held = 8 * kBytes + 64 * (3 + 4 + 5 + 6 + 7 + 8 + 9);
  EXPECT_EQ(test_hooks::keptBufferBytes(), held);
  // Views borrow their data: never kept.
  {
    std::vector<float> data(static_cast<size_t>(kRows) * 4);
    Tensor view;
    ASSERT_TRUE(
        Tensor::view(MOE_DTYPE_F32, {kRows, 4}, data.data(), view).ok());
  }
  EXPECT_EQ(test_hooks::keptBufferBytes(), held);
#if defined(__SANITIZE_ADDRESS__)
#define MOE_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MOE_TEST_ASAN 1
#endif
#endif
#ifdef MOE_TEST_ASAN
  // Under AddressSanitizer a kept buffer is poisoned: a read through a
  // released tensor's data is still caught.
  // (threadsafe: the session's worker thread is alive.)
  std::string style = GTEST_FLAG_GET(death_test_style);
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Tensor t;
        make(kRows, t);
        volatile float *stale = t.data<float>();
        t = Tensor();
        (void)stale[7];
      },
      "use-after-poison");
  GTEST_FLAG_SET(death_test_style, style);
#endif
  // The last session's release frees them all; a tensor released after it
  // is freed, not kept.
  uint64_t before = test_hooks::keptBufferBytes();
  Session other;
  ASSERT_TRUE(load(goodArtifact(), other).ok());
  session = Session();
  EXPECT_EQ(test_hooks::keptBufferBytes(), before);
  Tensor late;
  make(kRows, late);
  other = Session();
  EXPECT_EQ(test_hooks::keptBufferBytes(), 0u);
  late = Tensor();
  EXPECT_EQ(test_hooks::keptBufferBytes(), 0u);
}

TEST_F(RuntimeTest, NestedLoopsInTheCode) {
  Session session;
  ASSERT_TRUE(load(modeArtifact(kNested), session, 3).ok());
  Tensor x = makeInput(9);
  std::vector<Tensor> outputs;
  ASSERT_TRUE(runX(session, x, outputs).ok());
  expectSum(outputs[0], 9);
}

TEST_F(RuntimeTest, Profile) {
  SessionOptions options;
  ASSERT_TRUE(SessionOptions::create(options).ok());
  Status bad(moe_session_options_set_profile(options.get(), 2));
  EXPECT_EQ(bad.code(), MOE_INVALID_ARGUMENT);
  EXPECT_NE(bad.message().find("0 (off) or 1 (on), got 2"), std::string::npos)
      << bad.message();
  EXPECT_EQ(Status(moe_session_options_set_profile(nullptr, 1)).code(),
            MOE_INVALID_ARGUMENT);
  uint64_t runs = 1, ns = 1;
  std::vector<moe_profile_loop> loops;
  // A session created without profiling has no profile.
  Session plain;
  ASSERT_TRUE(load(goodArtifact(), plain, 2).ok());
  expectBias(plain, 0);
  Status s = plain.profile(runs, ns, loops);
  EXPECT_EQ(s.code(), MOE_INVALID_ARGUMENT);
  EXPECT_NE(s.message().find("created without profiling"), std::string::npos)
      << s.message();
  EXPECT_EQ(runs, 0u);
  EXPECT_TRUE(loops.empty());
  const moe_profile_loop *data = nullptr;
  size_t count = 0;
  EXPECT_EQ(
      Status(moe_session_profile(plain.get(), nullptr, &ns, &data, &count))
          .code(),
      MOE_INVALID_ARGUMENT);
  EXPECT_EQ(
      Status(moe_session_profile(nullptr, &runs, &ns, &data, &count)).code(),
      MOE_INVALID_ARGUMENT);
  moe_session_profile_reset(nullptr);
  plain.resetProfile(); // (no profile: a no-op)

  // Profiled: every run, and each parallel loop under its function's name
  // in the code's symbol table, the nested one's calls from the workers
  // too. The outputs do not change.
  ASSERT_TRUE(options.setThreads(3).ok());
  ASSERT_TRUE(options.setProfile(true).ok());
  Session session;
  s = Session::load(instance, write("profiled.moeb", modeArtifact(kNested)),
                    options, session);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_TRUE(session.profile(runs, ns, loops).ok());
  EXPECT_EQ(runs, 0u);
  EXPECT_TRUE(loops.empty());
  for (int iter = 0; iter < 2; ++iter) {
    Tensor x = makeInput(9);
    std::vector<Tensor> outputs;
    ASSERT_TRUE(runX(session, x, outputs).ok());
    expectSum(outputs[0], 9);
  }
  s = session.profile(runs, ns, loops);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(runs, 2u);
  ASSERT_EQ(loops.size(), 2u);
  std::map<std::string, moe_profile_loop> byName;
  for (const moe_profile_loop &l : loops)
    byName[l.name] = l;
  EXPECT_GE(loops[0].nanoseconds, loops[1].nanoseconds); // by time
  ASSERT_EQ(byName.count("rowsBody"), 1u);
  ASSERT_EQ(byName.count("columnsBody"), 1u);
  // Two runs of 9 rows (grain 1: split); per row one loop of 4 columns.
  EXPECT_EQ(byName["rowsBody"].calls, 2u);
  EXPECT_EQ(byName["rowsBody"].split_calls, 2u);
  EXPECT_EQ(byName["rowsBody"].iterations, 18u);
  EXPECT_EQ(byName["columnsBody"].calls, 18u);
  EXPECT_EQ(byName["columnsBody"].iterations, 72u);
  // A nested call runs its chunks on its own thread: never split.
  EXPECT_EQ(byName["columnsBody"].split_calls, 0u);
  // The runs' time holds the outer loop's.
  EXPECT_GT(byName["rowsBody"].nanoseconds, 0u);
  EXPECT_LE(byName["rowsBody"].nanoseconds, ns);
  session.resetProfile();
  ASSERT_TRUE(session.profile(runs, ns, loops).ok());
  EXPECT_EQ(runs, 0u);
  EXPECT_EQ(ns, 0u);
  EXPECT_TRUE(loops.empty());
  expectBias(session, 0);
  ASSERT_TRUE(session.profile(runs, ns, loops).ok());
  EXPECT_EQ(runs, 1u);
}

TEST(CodeSymbolsTest, ReadsTheSymbolTableAndSurvivesAnyBytes) {
  // The profile's names come from the code's ELF .symtab; the reader must
  // stay inside the bytes whatever they say (run under ASan by
  // scripts/test.sh).
  const std::string so = readFile(MOE_TEST_MODEL_PATH);
  auto names = [](const std::string &bytes) {
    return test_hooks::codeFunctionNames(
        reinterpret_cast<const unsigned char *>(bytes.data()), bytes.size());
  };
  std::vector<std::string> found = names(so);
  for (const char *expected : {"rowsBody", "columnsBody", "moe_entry_main"})
    EXPECT_NE(std::find(found.begin(), found.end(), expected), found.end())
        << expected;
  EXPECT_TRUE(names("").empty());
  EXPECT_TRUE(names(std::string(64, '\0')).empty());
  // Every prefix: the section headers sit at the end, so a cut file has
  // none; no prefix may read past its end.
  for (size_t n = 0; n < so.size(); n += 97)
    EXPECT_TRUE(names(so.substr(0, n)).empty()) << n;
  // Hostile header fields, then random bytes anywhere: no crash, no read
  // outside the copy.
  Elf64_Ehdr eh;
  ASSERT_GE(so.size(), sizeof(eh));
  std::memcpy(&eh, so.data(), sizeof(eh));
  auto patched = [&](size_t at, const void *value, size_t bytes) {
    std::string copy = so;
    std::memcpy(&copy[at], value, bytes);
    return copy;
  };
  uint16_t manySections = 0xffff;
  uint64_t farAway = ~uint64_t(0) - 7;
  EXPECT_TRUE(names(patched(offsetof(Elf64_Ehdr, e_shnum), &manySections,
                            sizeof(manySections)))
                  .empty());
  EXPECT_TRUE(
      names(patched(offsetof(Elf64_Ehdr, e_shoff), &farAway, sizeof(farAway)))
          .empty());
  for (size_t i = 0; i < eh.e_shnum; ++i) {
    size_t header = eh.e_shoff + i * sizeof(Elf64_Shdr);
    for (size_t field :
         {offsetof(Elf64_Shdr, sh_offset), offsetof(Elf64_Shdr, sh_size)})
      names(patched(header + field, &farAway, sizeof(farAway)));
    uint32_t badLink = 0xfffffff0;
    names(patched(header + offsetof(Elf64_Shdr, sh_link), &badLink,
                  sizeof(badLink)));
  }
  uint64_t state = 12345;
  for (int round = 0; round < 200; ++round) {
    std::string copy = so;
    for (int k = 0; k < 16; ++k) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      copy[(state >> 33) % copy.size()] = static_cast<char>(state >> 24);
    }
    names(copy);
  }
}

TEST_F(RuntimeTest, MeasuresTimeInsideTheCode) {
  // The hook of bench/overhead.cpp: off, nothing is counted; on, every run
  // adds the time spent in its entry.
  Session session;
  ASSERT_TRUE(load(goodArtifact(), session).ok());
  uint64_t before = test_hooks::entryNanoseconds();
  expectBias(session, 0);
  EXPECT_EQ(test_hooks::entryNanoseconds(), before);
  test_hooks::setEntryTiming(true);
  expectBias(session, 0);
  test_hooks::setEntryTiming(false);
  EXPECT_GT(test_hooks::entryNanoseconds(), before);
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
  Status s5(moe_tensor_create_view(static_cast<moe_dtype_t>(15), 0, nullptr,
                                   nullptr, &t));
  EXPECT_NE(s5.message().find("unknown dtype"), std::string::npos);
  // NULL is a valid no-op everywhere it is released or queried.
  moe_tensor_release(nullptr);
  moe_status_release(nullptr);
  moe_session_release(nullptr);
  moe_instance_release(nullptr);
  EXPECT_EQ(moe_tensor_rank(nullptr), 0u);
  EXPECT_EQ(moe_tensor_data(nullptr), nullptr);
  EXPECT_STREQ(moe_status_message(nullptr), "");
  // Tensors are 64-byte aligned, even empty ones.
  Tensor empty;
  ASSERT_TRUE(Tensor::create(MOE_DTYPE_U8, {0}, nullptr, empty).ok());
  EXPECT_NE(empty.data<void>(), nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(empty.data<void>()) % 64, 0u);
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
  const std::string edits[] = {
      // Output dtype changed: the runtime would allocate 8-byte elements.
      signatureOf("input x f32 2 ?N 4\noutput y f64 2 ?N 4\n"),
      // An output added.
      signatureOf(std::string(kIo) + "output z f32 2 ?N 4\n"),
      // A weight record dropped: the code would read a missing pointer.
      signatureOf(kIo, ""),
      // A static dim changed.
      signatureOf("input x f32 2 ?N 8\noutput y f32 2 ?N 8\n"),
      // The workspace shrunk.
      signatureOf(kIo, kWeightRecord, "",
                  "entry main moe_entry_main 0 exact\n"),
  };
  for (const std::string &edited : edits) {
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
  const std::string h = "moe-signature 2\ndevice cpu x86-64\n";
  const std::string e = "entry main e 0 exact\n";
  struct Case {
    std::string text;
    size_t line;
    const char *why;
  } cases[] = {
      // The header and the device line.
      {"entry moe_entry\n", 1, "does not start with 'moe-signature 2'"},
      {"moe-signature 2 \n", 1, "does not start with 'moe-signature 2'"},
      {"moe-signature 2\nentry main e 0 exact\nend\n", 2,
       "a record before the device line"},
      {"moe-signature 2\n\n", 2, "an empty line"},
      {h + "device cpu x86-64\n", 3, "a second device line"},
      {"moe-signature 2\ndevice gpu x86-64\n", 2,
       "the device is not 'cpu x86-64'"},
      {"moe-signature 2\ndevice cpu\n", 2, "the device is not 'cpu x86-64'"},
      {"moe-signature 2\ndevice cpu aarch64\n", 2,
       "the device is not 'cpu x86-64'"},
      {"moe-signature 2\ndevice cpu x86-64 avx2 avx2\n", 2, "listed twice"},
      {"moe-signature 2\ndevice cpu x86-64 avx2 warp-drive\n", 2,
       "unknown CPU feature 'warp-drive'"},
      // Record order.
      {h + e + "end\nweight 0 16 row-major f32 1 4\n", 5,
       "a weight record after the state or entry records"},
      {h + "state s f32 0\nweight 0 16 row-major f32 1 4\n", 4,
       "a weight record after the state or entry records"},
      {h + e + "end\nstate s f32 0\n", 5,
       "a state record after the entry records"},
      {h + e + "output y f32 0\ninput x f32 0\nend\n", 5,
       "an input record after the entry's outputs"},
      {h + "input x f32 0\n", 3, "an input record outside an entry block"},
      {h + e + "end\noutput y f32 0\n", 5,
       "an output record outside an entry block"},
      {h + "end\n", 3, "an 'end' line outside an entry block"},
      {h + e + "end x\n", 4, "an 'end' line with fields"},
      {h + e + "entry other f 0 exact\nend\n", 4,
       "an entry inside entry 'main' (its 'end' line is missing)"},
      {h + e + "\nend\n", 4, "an empty line"},
      {h + e + "export y\nend\n", 4, "an unknown record 'export'"},
      {h + e + "requires avx2\nend\n", 4, "an unknown record 'requires'"},
      {h + e + "end", 4, "the last line does not end with a newline"},
      // Entries.
      {h + "entry main e 0 exact extra\nend\n", 3, "an entry record is"},
      {h + "entry main e 0\nend\n", 3, "an entry record is"},
      {h + "entry main 9lives 0 exact\nend\n", 3,
       "the entry symbol is not a C identifier"},
      {h + "entry main e%41 0 exact\nend\n", 3,
       "the entry symbol is not a C identifier"},
      {h + "entry main a-b 0 exact\nend\n", 3,
       "the entry symbol is not a C identifier"},
      {h + "entry main e -1 exact\nend\n", 3,
       "the workspace size is not an integer in [0, 2^62]"},
      {h + "entry main e 4611686018427387905 exact\nend\n", 3,
       "the workspace size is not an integer"},
      {h + "entry main e 0 maybe\nend\n", 3,
       "the workspace is neither 'exact' nor 'grows'"},
      {h + "entry %00 e 0 exact\nend\n", 3,
       "an empty name or one with a NUL"},
      {h + e + "end\nentry main f 0 exact\nend\n", 5,
       "a second entry named 'main'"},
      {h + e + "end\nentry other e 0 exact\nend\n", 5,
       "a second entry with the symbol 'e'"},
      // Inputs and outputs.
      {h + e + "input x f32 1 4\ninput x f32 1 4\nend\n", 5,
       "a second input named 'x'"},
      {h + e + "output y f32 1 4\noutput y f32 1 4\nend\n", 5,
       "a second output named 'y'"},
      {h + e + "input x%41 f32 1 4\ninput xA f32 1 4\nend\n", 5,
       "a second input named 'xA'"},
      {h + e + "input\nend\n", 4, "an input record without a name"},
      {h + e + "input x f32 33 " // rank above the limit
               "1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 "
               "1 1 1\nend\n",
       4, "the rank is not an integer in [0, 32]"},
      {h + e + "input x f32 2 4\nend\n", 4, "rank 2 but 1 dims"},
      {h + e + "input x f32 1 4 5\nend\n", 4, "rank 1 but 2 dims"},
      {h + e + "input x f32 1 -4\nend\n", 4, "dim 0 is not a non-negative"},
      {h + e + "input x f32 1 04\nend\n", 4, "dim 0 is not a non-negative"},
      {h + e + "input x f32 1 0x10\nend\n", 4, "dim 0 is not a non-negative"},
      {h + e + "input x f32 1 99999999999999999999\nend\n", 4,
       "dim 0 is not a non-negative"},
      {h + e + "input x f32 3 4294967296 4294967296 4\nend\n", 4,
       "the static dims are too large"},
      {h + e + "input x f99 1 3\nend\n", 4, "unknown dtype 'f99'"},
      {h + e + "input x%4 f32 1 3\nend\n", 4, "a malformed name"},
      {h + e + "input x%zz f32 1 3\nend\n", 4, "a malformed name"},
      {h + e + "input %00 f32 1 3\nend\n", 4,
       "an empty name or one with a NUL"},
      {h + e + "input x f32 1 ?%G0\nend\n", 4, "a malformed dim symbol"},
      {h + e + "input x  f32 1 3\nend\n", 4, "an empty field"},
      {h + e + "input x f32 1 3 \nend\n", 4, "an empty field"},
      {h + e + "input x\tf32 1 3\nend\n", 4, "whitespace byte"},
      {h + e + "input x f32 1 3\r\nend\n", 4, "whitespace byte"},
      // Weights and states.
      {h + "weight 0 16 row-major f32 1 ?N\n", 3, "a weight with a symbolic"},
      {h + "weight -64 16 row-major f32 1 4\n", 3,
       "a malformed weight offset or size"},
      {h + "weight 0 16\n", 3, "a malformed weight offset or size"},
      {h + "weight 0 16 column-major f32 1 4\n", 3,
       "an unknown weight layout 'column-major' (only 'row-major' is known)"},
      {h + "weight 0 16 f32 1 4\n", 3, "an unknown weight layout 'f32'"},
      {h + "weight 0 16 row-major\n", 3, "missing dtype or rank"},
      {h + "state s f32 0\nstate s f32 0\n", 4, "a second state named 's'"},
      {h + "state\n", 3, "a state record without a name"},
      {h + "state %00 f32 0\n", 3, "an empty name or one with a NUL"},
  };
  for (const Case &c : cases) {
    artifact::Signature sig;
    artifact::Result r =
        artifact::parseSignature(c.text.data(), c.text.size(), sig);
    EXPECT_EQ(r.code, MOE_DATA_LOSS) << c.text;
    EXPECT_NE(r.message.find(c.why), std::string::npos)
        << c.text << " gave: " << r.message;
    EXPECT_NE(r.message.find("corrupt signature at line " +
                             std::to_string(c.line) + " ("),
              std::string::npos)
        << r.message;
  }
  // Refusals of the whole text.
  struct Whole {
    std::string text;
    moe_status_code_t code;
    const char *why;
  } wholes[] = {
      {"", MOE_DATA_LOSS, "the signature is empty"},
      {"moe-signature 2\n", MOE_DATA_LOSS,
       "corrupt signature: it has no device line"},
      {h, MOE_DATA_LOSS, "corrupt signature: it declares no entry"},
      {h + "state s f32 0\n", MOE_DATA_LOSS, "it declares no entry"},
      {h + e + "input x f32 0\n", MOE_DATA_LOSS,
       "corrupt signature: entry 'main' has no 'end' line"},
      {"moe-signature 3\ndevice cpu x86-64\n", MOE_UNIMPLEMENTED,
       "the signature has version 3; this runtime reads 'moe-signature 2'"},
  };
  for (const Whole &w : wholes) {
    artifact::Signature sig;
    artifact::Result r =
        artifact::parseSignature(w.text.data(), w.text.size(), sig);
    EXPECT_EQ(r.code, w.code) << w.text;
    EXPECT_NE(r.message.find(w.why), std::string::npos)
        << w.text << " gave: " << r.message;
  }
  artifact::Signature sig;
  // A NUL byte inside the text.
  const char nul[] = "moe-signature 2\ndevice cpu x86-64\nentry main e 0 "
                     "exact\ninput x\0 f32 1 3\nend\n";
  EXPECT_EQ(artifact::parseSignature(nul, sizeof(nul) - 1, sig).code,
            MOE_DATA_LOSS);
  // What moe-compile writes parses: encoded names, anonymous and named
  // symbols, an input and an output of one name, state, several entries.
  const char good[] = "moe-signature 2\n"
                      "device cpu x86-64 sse4.2 avx2\n"
                      "weight 0 16 row-major f32 2 2 2\n"
                      "weight 64 0 row-major f32 1 0\n"
                      "state kv%20cache f16 2 ?B 8\n"
                      "entry main moe_entry_main 1024 grows\n"
                      "input a%20b i64 2 ?B ?\n"
                      "input c bool 0\n"
                      "output a%20b f32 3 ?B ? 50\n"
                      "end\n"
                      "entry de%63ode moe_entry_decode 0 exact\n"
                      "end\n";
  artifact::Result r = artifact::parseSignature(good, sizeof(good) - 1, sig);
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_EQ(sig.device, "cpu");
  EXPECT_EQ(sig.arch, "x86-64");
  EXPECT_EQ(sig.requiredFeatures, (std::vector<std::string>{"sse4.2", "avx2"}));
  ASSERT_EQ(sig.weights.size(), 2u);
  EXPECT_EQ(sig.weights[0].layout, "row-major");
  EXPECT_EQ(sig.weights[1].offset, 64u);
  ASSERT_EQ(sig.states.size(), 1u);
  EXPECT_EQ(sig.states[0].name, "kv cache");
  ASSERT_EQ(sig.entries.size(), 2u);
  const artifact::EntryRecord &main = sig.entries[0];
  EXPECT_EQ(main.name, "main");
  EXPECT_EQ(main.symbol, "moe_entry_main");
  EXPECT_EQ(main.workspaceBytes, 1024u);
  EXPECT_TRUE(main.workspaceGrows);
  ASSERT_EQ(main.inputs.size(), 2u);
  EXPECT_EQ(main.inputs[0].name, "a b");
  EXPECT_EQ(main.inputs[0].symbols, (std::vector<std::string>{"B", ""}));
  EXPECT_EQ(main.outputs[0].dims, (std::vector<int64_t>{-1, -1, 50}));
  EXPECT_EQ(sig.entries[1].name, "decode");
  EXPECT_FALSE(sig.entries[1].workspaceGrows);
  EXPECT_TRUE(sig.entries[1].inputs.empty());
}

TEST_F(RuntimeTest, RefusesBadWeightRecordsAndSections) {
  std::string weights(256, '\0');
  auto withWeights = [&](const std::string &records) {
    return artifactFor(signatureOf(kIo, records), weights);
  };
  EXPECT_LOAD_ERROR(withWeights("weight 0 16 row-major f32 1 4\n"
                                "weight 0 16 row-major f32 1 4\n"),
                    MOE_DATA_LOSS, "overlap");
  EXPECT_LOAD_ERROR(withWeights("weight 0 128 row-major f32 1 32\n"
                                "weight 64 16 row-major f32 1 4\n"),
                    MOE_DATA_LOSS, "overlap");
  EXPECT_LOAD_ERROR(withWeights("weight 192 128 row-major f32 1 32\n"),
                    MOE_DATA_LOSS, "outside the weights section");
  EXPECT_LOAD_ERROR(
      withWeights("weight 18446744073709551552 128 row-major f32 1 32\n"),
      MOE_DATA_LOSS, "corrupt signature");
  EXPECT_LOAD_ERROR(
      withWeights("weight 9223372036854775744 128 row-major f32 1 32\n"),
      MOE_DATA_LOSS, "outside the weights section");
  EXPECT_LOAD_ERROR(withWeights("weight 32 16 row-major f32 1 4\n"),
                    MOE_DATA_LOSS, "not 64-byte aligned");
  EXPECT_LOAD_ERROR(withWeights("weight 0 12 row-major f32 1 4\n"),
                    MOE_DATA_LOSS, "does not match its shape");
  EXPECT_LOAD_ERROR(withWeights("weight 0 16 packed f32 1 4\n"),
                    MOE_DATA_LOSS, "an unknown weight layout 'packed'");
  // Disjoint records, and empty ones anywhere, are fine.
  Session ok;
  Status s = load(withWeights("weight 0 64 row-major f32 1 16\n"
                              "weight 64 16 row-major f32 1 4\n"
                              "weight 64 0 row-major f32 1 0\n"),
                  ok);
  EXPECT_TRUE(s.ok()) << s.message();
  // Two signature sections.
  EXPECT_LOAD_ERROR(
      artifactBytes({{artifact::SectionKind::Signature, kSignature},
                     {artifact::SectionKind::CpuCode, codeFor(kSignature)},
                     {artifact::SectionKind::Signature, kSignature}}),
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
        t[2].checksum = artifact::sectionChecksum(
            artifact::kVersion, out.data() + t[2].offset, t[2].size);
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
  // Unknown sections (another device's code) are skipped.
  Session skipping;
  s = load(artifactBytes(
               {{artifact::SectionKind::Signature, kSignature},
                {artifact::SectionKind::CudaCode, "ptx"},
                {artifact::SectionKind::CpuCode, codeFor(kSignature)},
                {static_cast<artifact::SectionKind>(99), "future"},
                {artifact::SectionKind::Weights, weightBytes()}}),
           skipping);
  ASSERT_TRUE(s.ok()) << s.message();
  expectBias(skipping, 0);
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
  ASSERT_EQ(contents.signature.entries.size(), 1u);
  EXPECT_EQ(contents.signature.entries[0].symbol, "moe_entry_main");
  EXPECT_EQ(contents.signature.entries[0].workspaceBytes, 256u);
  // FNV-1a 64 of kSignature, computed independently (Python).
  EXPECT_EQ(contents.signatureDigest, 0xf473a49f62fc2bdcull);
  EXPECT_EQ(contents.weightsSize, 16u);
  EXPECT_EQ(std::memcmp(contents.weights, kWeights, 16), 0);
  EXPECT_NE(contents.code, nullptr);
  // Contents is what the file declares: without a code section, the
  // parser succeeds (the executor needs one, the parser does not).
  bytes = artifactBytes({{artifact::SectionKind::Signature, kSignature},
                         {artifact::SectionKind::Weights, weightBytes()}});
  r = artifact::parse(reinterpret_cast<const unsigned char *>(bytes.data()),
                      bytes.size(), "mem", contents);
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_EQ(contents.code, nullptr);
}

//===----------------------------------------------------------------------===//
// Run-time checks: symbolic dims, input sizes
//===----------------------------------------------------------------------===//

TEST_F(RuntimeTest, CapsSymbolicDims) {
  std::string signature =
      signatureOf("input x f32 2 ?N ?\noutput y f32 2 ?N ?\n");
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
  std::string rank4 =
      signatureOf("input x f32 4 ?A ?B ?C ?D\noutput y f32 2 ?A ?B\n");
  Session session4;
  ASSERT_TRUE(load(artifactFor(rank4), session4).ok());
  ASSERT_TRUE(Tensor::create(MOE_DTYPE_F32,
                             {0, MOE_MAX_SYMBOLIC_DIM, MOE_MAX_SYMBOLIC_DIM,
                              MOE_MAX_SYMBOLIC_DIM},
                             nullptr, huge)
                  .ok());
  s = session4.run({"x"}, {&huge}, outputs);
  EXPECT_EQ(s.code(), MOE_INVALID_ARGUMENT);
  EXPECT_NE(s.message().find("input 'x' is too large"), std::string::npos)
      << s.message();
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
  Status s = runX(session, x, outputs);
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

/// A signature like kSignature, of another symbol: another digest.
const std::string kOtherSignature =
    signatureOf("input x f32 2 ?M 4\noutput y f32 2 ?M 4\n");
} // namespace

TEST_F(RuntimeTest, SessionsRunTheirOwnCode) {
  // Two artifacts whose code differs only in a constant (and the digest):
  // whatever the order of creation and destruction, and however file
  // descriptor numbers are reused, each session runs its own code.
  std::string a = artifactFor(kSignature, weightBytes(), 100.0f);
  std::string b = artifactFor(kOtherSignature, weightBytes(), 200.0f);
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
  for (int i = 0; i < 4; ++i) {
    Session second;
    ASSERT_TRUE(
        load(artifactFor(kOtherSignature, weightBytes(), 200.0f), second)
            .ok());
    expectBias(second, 200.0f);
  }
  dlclose(extra);
}

namespace {
/// A private TMPDIR for one test: a new directory, set as $TMPDIR until
/// the end of the scope (also when an assertion returns early), then the
/// old value restored and the directory removed if empty.
class ScopedTmpdir {
public:
  ScopedTmpdir() {
    if (const char *old = std::getenv("TMPDIR"))
      saved = old;
    hadOld = std::getenv("TMPDIR") != nullptr;
    ok = mkdtemp(path) != nullptr;
    if (ok)
      setenv("TMPDIR", path, 1);
  }
  ~ScopedTmpdir() {
    if (hadOld)
      setenv("TMPDIR", saved.c_str(), 1);
    else
      unsetenv("TMPDIR");
    if (ok)
      rmdir(path);
  }
  ScopedTmpdir(const ScopedTmpdir &) = delete;
  ScopedTmpdir &operator=(const ScopedTmpdir &) = delete;
  /// Points $TMPDIR somewhere else until the end of the scope.
  void point(const std::string &dir) { setenv("TMPDIR", dir.c_str(), 1); }

  char path[32] = "/tmp/moe-runtime-tmpdir-XXXXXX";
  bool ok = false;

private:
  std::string saved;
  bool hadOld = false;
};
} // namespace

TEST_F(RuntimeTest, LeavesNoFileInTmpdir) {
  ScopedTmpdir tmpdir;
  ASSERT_TRUE(tmpdir.ok);
  const char *tmpl = tmpdir.path;
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
}

TEST_F(RuntimeTest, FileStagingFallback) {
  // Where memfd_create or /proc is missing, the code is staged in a
  // temporary file of $TMPDIR, unlinked once dlopen has mapped it: forced
  // here through the test hook, in a private TMPDIR.
  ScopedTmpdir tmpdir;
  ASSERT_TRUE(tmpdir.ok);
  const char *tmpl = tmpdir.path;
  test_hooks::setForceFileStaging(true);
  size_t memfdsBefore = mappingsOf("/memfd:moe-code");
  {
    Session a, b;
    ASSERT_TRUE(load(artifactFor(kSignature, weightBytes(), 100.0f), a).ok());
    ASSERT_TRUE(
        load(artifactFor(kOtherSignature, weightBytes(), 200.0f), b).ok());
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
  tmpdir.point(std::string(tmpl) + "/missing");
  test_hooks::setForceFileStaging(true);
  Session failed;
  Status s = load(goodArtifact(), failed);
  test_hooks::setForceFileStaging(false);
  EXPECT_EQ(s.code(), MOE_DATA_LOSS) << s.message();
  EXPECT_NE(s.message().find("cannot stage the code in"), std::string::npos)
      << s.message();
  EXPECT_EQ(countEntries(tmpl), 0u);
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

//===----------------------------------------------------------------------===//
// Generation contexts
//===----------------------------------------------------------------------===//

namespace {

/// A signature with entry main (the test model) and the toy language
/// model's prefill and decode (test_model.c, generate()): two layers of
/// one head with rows of 2 (caches [2, B, C, 2]), a 2-wide vocabulary.
std::string generationSignature() {
  const char rows[] = "f32 4 2 ?B ?T 2";
  const char past[] = "f32 4 2 ?B ?C 2";
  std::string entries =
      std::string("entry main moe_entry_main 256 grows\n") + kIo + "end\n" +
      "entry prefill moe_entry_gen_prefill 256 grows\n"
      "input tokens i64 2 ?B ?T\n"
      "output logits f32 3 ?B 1 2\n" +
      "output new_key " + rows + "\noutput new_value " + rows + "\nend\n" +
      "entry decode moe_entry_gen_decode 256 grows\n"
      "input tokens i64 2 ?B ?T\n" +
      "input past_key " + past + "\ninput past_value " + past + "\n" +
      "input past_length i64 0\n" + "output logits f32 3 ?B ?T 2\n" +
      "output new_key " + rows + "\noutput new_value " + rows + "\n";
  return signatureOf("", kWeightRecord, "", entries);
}

Tensor tokensOf(const std::vector<int64_t> &values, int64_t batch) {
  Tensor t;
  EXPECT_TRUE(Tensor::create(MOE_DTYPE_I64,
                             {batch, int64_t(values.size()) / batch},
                             values.data(), t)
                  .ok());
  return t;
}

/// What the toy model's logits[b, t] are after `seen` (the tokens of
/// sequence b so far, the new one last): the token at position i adds, for
/// each layer l and component c, (l + 1)(i + 1)(c + 1) times its key
/// (token + l + 3c) plus half its value (10 token + l + 3c); and the last
/// position. (Every term is a multiple of 1/2 far below 2^24: exact in any
/// order.)
std::pair<float, float> toyLogits(const std::vector<int64_t> &seen) {
  float sum = 0;
  for (size_t i = 0; i < seen.size(); ++i)
    for (int l = 0; l < 2; ++l)
      for (int c = 0; c < 2; ++c)
        sum += float((l + 1) * (i + 1) * (c + 1)) *
               (float(seen[i] + l + 3 * c) +
                0.5f * float(10 * seen[i] + l + 3 * c));
  return {sum, float(seen.size() - 1)};
}

} // namespace

TEST_F(RuntimeTest, GenerationContextKeepsTheCaches) {
  Session session;
  Status s = load(artifactFor(generationSignature()), session);
  ASSERT_TRUE(s.ok()) << s.message();
  Generation g;
  ASSERT_TRUE(Generation::create(session, 2, 6, g).ok());
  EXPECT_EQ(g.position(), 0);
  // Sequences {1, 2, 3, ...} and {4, 5, 6, ...}, fed 3, then 1, then 2.
  std::vector<std::vector<int64_t>> seen(2);
  auto check = [&](const Tensor &logits, int64_t t) {
    ASSERT_EQ(logits.dims(), (std::vector<int64_t>{2, t, 2}));
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t i = 0; i < t; ++i) {
        std::vector<int64_t> prefix(seen[b].begin(),
                                    seen[b].end() - (t - 1 - i));
        auto [sum, position] = toyLogits(prefix);
        EXPECT_FLOAT_EQ(logits.data<float>()[(b * t + i) * 2], sum)
            << "row " << b << " position " << i;
        EXPECT_FLOAT_EQ(logits.data<float>()[(b * t + i) * 2 + 1], position);
      }
  };
  Tensor logits;
  seen = {{1, 2, 3}, {4, 5, 6}};
  s = g.step(tokensOf({1, 2, 3, 4, 5, 6}, 2), logits);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(g.position(), 3);
  check(logits, 1); // a prefill: the last position only
  seen[0].push_back(7);
  seen[1].push_back(8);
  ASSERT_TRUE(g.step(tokensOf({7, 8}, 2), logits).ok());
  check(logits, 1);
  seen[0].insert(seen[0].end(), {9, 10});
  seen[1].insert(seen[1].end(), {11, 12});
  ASSERT_TRUE(g.step(tokensOf({9, 10, 11, 12}, 2), logits).ok());
  EXPECT_EQ(g.position(), 6);
  check(logits, 2);
  // The caches are full: one more token is refused and changes nothing.
  s = g.step(tokensOf({1, 1}, 2), logits);
  EXPECT_EQ(s.code(), MOE_INVALID_ARGUMENT);
  EXPECT_NE(s.message().find("exceed the maximum length 6"),
            std::string::npos)
      << s.message();
  EXPECT_EQ(g.position(), 6);
  // Tokens of another batch, or of another type, are refused.
  s = g.step(tokensOf({1, 2, 3}, 3), logits);
  EXPECT_EQ(s.code(), MOE_INVALID_ARGUMENT);
  Tensor floats = makeInput(2);
  EXPECT_EQ(g.step(floats, logits).code(), MOE_INVALID_ARGUMENT);
  // Reset: the next step is a prefill again, over nothing cached.
  g.reset();
  EXPECT_EQ(g.position(), 0);
  seen = {{5}, {6}};
  ASSERT_TRUE(g.step(tokensOf({5, 6}, 2), logits).ok());
  check(logits, 1);
}

TEST_F(RuntimeTest, GenerationContextRefusals) {
  Session plain;
  ASSERT_TRUE(load(goodArtifact(), plain).ok());
  Generation g;
  Status s = Generation::create(plain, 1, 4, g);
  EXPECT_EQ(s.code(), MOE_NOT_FOUND);
  EXPECT_NE(s.message().find("compile it with moe-compile --generation"),
            std::string::npos)
      << s.message();
  Session session;
  ASSERT_TRUE(load(artifactFor(generationSignature()), session).ok());
  EXPECT_EQ(Generation::create(session, 0, 4, g).code(), MOE_INVALID_ARGUMENT);
  EXPECT_EQ(Generation::create(session, 1, 0, g).code(), MOE_INVALID_ARGUMENT);
  EXPECT_EQ(Generation::create(session, 1, MOE_MAX_SYMBOLIC_DIM + 1, g).code(),
            MOE_INVALID_ARGUMENT);
  // A cache whose dims are neither static nor the batch.
  std::string sig = generationSignature();
  std::string from = "input past_value f32 4 2 ?B ?C 2";
  sig.replace(sig.find(from), from.size(), "input past_value f32 4 2 ?Q ?C 2");
  Session odd;
  ASSERT_TRUE(load(artifactFor(sig), odd).ok());
  s = Generation::create(odd, 1, 4, g);
  EXPECT_EQ(s.code(), MOE_INVALID_ARGUMENT);
  EXPECT_NE(s.message().find("decode input 'past_value' is not a f32 cache"),
            std::string::npos)
      << s.message();
  // Decode entries the context cannot drive: no past_length (an artifact
  // of the earlier layout) or one that is not an int64 scalar, caches of
  // another form, tokens of another form.
  for (auto [from, to, text] :
       {std::tuple<const char *, const char *, const char *>{
            "input past_length i64 0\n", "",
            "the decode entry has no input 'past_length'"},
        {"input past_length i64 0\n", "input past_length i32 0\n",
         "decode input 'past_length' is not an int64 scalar"},
        {"input past_length i64 0\n", "input past_length i64 1 1\n",
         "decode input 'past_length' is not an int64 scalar"},
        {"input past_key f32 4 2 ?B ?C 2", "input past_key f32 4 2 ?B 8 2",
         "decode input 'past_key' is not a f32 cache"},
        {"input past_key f32 4 2 ?B ?C 2", "input past_key f32 1 ?C",
         "decode input 'past_key' is not a f32 cache"},
        // Positions of the tokens' own symbol, or of none.
        {"input past_key f32 4 2 ?B ?C 2", "input past_key f32 4 2 ?B ?T 2",
         "decode input 'past_key': its positions dim (the second to last) "
         "needs a named symbol of its own"},
        {"input past_key f32 4 2 ?B ?C 2", "input past_key f32 4 2 ?B ? 2",
         "decode input 'past_key': its positions dim"},
        // Tokens that are not [B, T], and a static batch other than the
        // one asked.
        {"input tokens i64 2 ?B ?T\ninput past_key",
         "input tokens i64 1 ?T\ninput past_key",
         "decode input 'tokens' is not tokens [B, T]"},
        {"input tokens i64 2 ?B ?T\ninput past_key",
         "input tokens i64 2 2 ?T\ninput past_key",
         "the model takes a batch of 2, not 1"}}) {
    std::string changed = generationSignature();
    changed.replace(changed.find(from), std::strlen(from), to);
    Session model;
    s = load(artifactFor(changed), model);
    ASSERT_TRUE(s.ok()) << s.message();
    s = Generation::create(model, 1, 4, g);
    EXPECT_EQ(s.code(), MOE_INVALID_ARGUMENT) << s.message();
    EXPECT_NE(s.message().find(text), std::string::npos) << s.message();
  }
  // Caches too large for the maximum length asked (2^60 floats a
  // position): refused before any allocation.
  std::string wide = generationSignature();
  for (const char *name :
       {"input past_key f32 4 2 ?B ?C 2", "input past_value f32 4 2 ?B ?C 2"}) {
    std::string from = name, to = from;
    to.replace(to.find(" 2 ?B ?C 2"), 10, " 1073741824 ?B ?C 1073741824");
    wide.replace(wide.find(from), from.size(), to);
  }
  Session huge;
  s = load(artifactFor(wide), huge);
  ASSERT_TRUE(s.ok()) << s.message();
  s = Generation::create(huge, 1, MOE_MAX_SYMBOLIC_DIM, g);
  EXPECT_EQ(s.code(), MOE_RESOURCE_EXHAUSTED) << s.message();
  EXPECT_NE(s.message().find("is too large"), std::string::npos)
      << s.message();
}

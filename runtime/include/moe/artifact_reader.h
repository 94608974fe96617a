//===- artifact_reader.h - parsing .moeb artifacts --------------*- C++ -*-===//
//
// The pure part of loading an artifact: the header, the section table, every
// checksum, the signature and the weight records, read from bytes in memory.
// Nothing is loaded or executed, so a fuzzer can drive it
// (test/fuzz/fuzz_artifact.cpp); moe_session_create calls it on the mapped
// file, then checks the CPU features and loads the code.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_ARTIFACT_READER_H
#define MOE_ARTIFACT_READER_H

#include "moe_runtime.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace moe::artifact {

/// Limits of a signature a reader accepts (larger ones are corrupt).
constexpr size_t kMaxRank = 32;
constexpr uint32_t kMaxSections = 64;
/// The product of a record's static dims (a 0 counted as 1) times its
/// element size is at most this, so that strides and byte sizes fit int64.
constexpr uint64_t kMaxStaticBytes = uint64_t(1) << 62;
/// Longest entry symbol, name or dim symbol (encoded) of a signature.
constexpr size_t kMaxNameLength = 4096;

/// An input, output, state tensor or weight of the signature.
struct TensorRecord {
  std::string name;                 ///< Decoded; "" for weights.
  moe_dtype_t dtype = MOE_DTYPE_F32;
  std::vector<int64_t> dims;        ///< -1: symbolic.
  std::vector<std::string> symbols; ///< Decoded; "" for static and
                                    ///< anonymous dims.
  uint64_t offset = 0, bytes = 0;   ///< Weights only.
  std::string layout;               ///< Weights only: "row-major".
};

/// An `entry` block: a function of the code and its inputs and outputs.
struct EntryRecord {
  std::string name;   ///< Decoded ("main", later "prefill", "decode").
  std::string symbol; ///< The code's function (a C identifier).
  /// Bytes of workspace one run takes (exact), or preallocates (grows).
  uint64_t workspaceBytes = 0;
  bool workspaceGrows = false;
  std::vector<TensorRecord> inputs, outputs;
};

struct Signature {
  /// The device line: "cpu" (and its architecture, "x86-64").
  std::string device, arch;
  /// The CPU features the code needs (the device line's features).
  std::vector<std::string> requiredFeatures;
  std::vector<TensorRecord> weights, states;
  std::vector<EntryRecord> entries;
};

/// What a valid artifact holds; the pointers point into the parsed bytes.
struct Contents {
  Signature signature;
  /// The digest the code must carry (kSignatureDigestSymbol).
  uint64_t signatureDigest = 0;
  const unsigned char *code = nullptr;
  size_t codeSize = 0;
  const unsigned char *weights = nullptr;
  size_t weightsSize = 0;
};

/// A refusal: MOE_OK on success, else a code and a message.
struct Result {
  moe_status_code_t code = MOE_OK;
  std::string message;
  bool ok() const { return code == MOE_OK; }
};

/// Parses and validates the artifact `bytes[0, size)`; `name` (the path)
/// prefixes the messages. MOE_UNIMPLEMENTED for another format version
/// (version 1: with a message to recompile) or signature version,
/// MOE_DATA_LOSS for anything truncated, corrupt or inconsistent. The code
/// sections are not required here: the executor of the signature's device
/// needs its own (CpuCode for `device cpu`) and refuses an artifact without.
Result parse(const unsigned char *bytes, size_t size, const std::string &name,
             Contents &out);

/// Parses and validates signature text (format 2, artifact_format.h)
/// alone.
Result parseSignature(const char *text, size_t size, Signature &out);

/// Whether `feature` may appear on a signature's device line (the x86
/// features the runtime can check: artifact_format.h's
/// kCheckableCpuFeatures).
bool isKnownCpuFeature(const std::string &feature);

} // namespace moe::artifact

#endif // MOE_ARTIFACT_READER_H

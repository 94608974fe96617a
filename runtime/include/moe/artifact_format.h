//===- artifact_format.h - the .moeb artifact layout ------------*- C++ -*-===//
//
// Shared by the writer (moe-compile) and the reader (the runtime); no
// dependencies beyond the C++ standard library. Layout (little endian):
//
//   Header (32 bytes) | SectionEntry[count] (32 bytes each) | sections
//
// Each section starts at a multiple of kSectionAlignment. The header
// checksum covers the header (with its checksum field zero) and the section
// table; each section entry carries the checksum of its bytes (FNV-1a 64).
// Readers refuse unknown versions; unknown section kinds of a known version
// are ignored, so new kinds (CUDA code) can be added without breaking
// readers of the sections they know.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_ARTIFACT_FORMAT_H
#define MOE_ARTIFACT_FORMAT_H

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace moe::artifact {

constexpr char kMagic[8] = {'M', 'O', 'E', 'B', 'A', 'R', 'T', '\n'};
constexpr uint32_t kVersion = 1;
constexpr uint64_t kSectionAlignment = 64;

enum class SectionKind : uint32_t {
  /// Text: the entry symbol, inputs, outputs and weights (see below).
  Signature = 1,
  /// An x86-64 ELF shared object exporting the entry symbol.
  CpuCode = 2,
  /// Weight bytes; weight records in the signature give offsets into it.
  Weights = 3,
  /// Reserved: device code (PTX or cubin) for a CUDA executor.
  CudaCode = 16,
};

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t sectionCount;
  uint64_t fileSize;
  uint64_t checksum;
};
static_assert(sizeof(Header) == 32, "header layout");

struct SectionEntry {
  uint32_t kind;
  uint32_t flags;
  uint64_t offset;
  uint64_t size;
  uint64_t checksum;
};
static_assert(sizeof(SectionEntry) == 32, "section entry layout");

/// FNV-1a 64-bit, chained through `seed`.
inline uint64_t fnv1a(const void *data, size_t size,
                      uint64_t seed = 0xcbf29ce484222325ull) {
  const auto *p = static_cast<const unsigned char *>(data);
  uint64_t h = seed;
  for (size_t i = 0; i < size; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

/// Checksum of a header (its checksum field taken as zero) and its table.
inline uint64_t headerChecksum(const Header &header,
                               const SectionEntry *entries) {
  Header copy = header;
  copy.checksum = 0;
  uint64_t h = fnv1a(&copy, sizeof(copy));
  return fnv1a(entries, sizeof(SectionEntry) * header.sectionCount, h);
}

/// The bytes of an artifact holding `sections` in order: the one writer of
/// the layout (moe-compile, and the runtime tests that build artifacts).
inline std::string
serialize(const std::vector<std::pair<SectionKind, std::string>> &sections,
          uint32_t version = kVersion) {
  Header header{};
  std::memcpy(header.magic, kMagic, sizeof(kMagic));
  header.version = version;
  header.sectionCount = static_cast<uint32_t>(sections.size());
  std::vector<SectionEntry> table(sections.size());
  uint64_t offset = sizeof(Header) + sizeof(SectionEntry) * sections.size();
  for (size_t i = 0; i < sections.size(); ++i) {
    offset = (offset + kSectionAlignment - 1) / kSectionAlignment *
             kSectionAlignment;
    const std::string &bytes = sections[i].second;
    table[i] = {static_cast<uint32_t>(sections[i].first), 0, offset,
                bytes.size(), fnv1a(bytes.data(), bytes.size())};
    offset += bytes.size();
  }
  header.fileSize = offset;
  header.checksum = headerChecksum(header, table.data());
  std::string out(offset, '\0');
  std::memcpy(&out[0], &header, sizeof(header));
  if (!table.empty())
    std::memcpy(&out[sizeof(header)], table.data(),
                sizeof(SectionEntry) * table.size());
  for (size_t i = 0; i < sections.size(); ++i)
    if (!sections[i].second.empty())
      std::memcpy(&out[table[i].offset], sections[i].second.data(),
                  sections[i].second.size());
  return out;
}

// Signature text, one record per line, fields separated by single spaces;
// names never contain whitespace (moe-compile percent-encodes it):
//   entry <symbol>
//   requires <cpu feature>...   (optional; the loader refuses a CPU without)
//   input <name> <dtype> <rank> <dim>...     dim: an integer, or ?<symbol>
//   output <name> <dtype> <rank> <dim>...
//   weight <offset> <bytes> <dtype> <rank> <dim>...   (all static)
// The code's entry takes one argument, an array of pointers: the result
// descriptors' struct first, then one memref descriptor per input, then one
// per weight, in signature order.
//
// Readers (runtime/include/moe/artifact_reader.h) are strict: each line is
// exactly these fields; names are percent-encoded (%XX, two hex digits) and
// decode to non-empty strings without NUL; input names are unique, output
// names are unique; ranks are at most 32; dtypes are the runtime's; weight
// records are 64-byte aligned, inside the weights section and disjoint; a
// requires line names only features the runtime can check
// (kCheckableCpuFeatures below).

/// The data symbol every code section exports: a `const uint64_t` (an ELF
/// STT_OBJECT of at least 8 bytes, whose first 8 are read: sanitizers pad
/// globals; default visibility) holding signatureDigest() of
/// the signature section the code was compiled with. The loader refuses
/// code whose digest is missing or differs, so that a signature edited
/// after compilation (checksums recomputed) cannot make the runtime read
/// or pass buffers the code does not produce or expect.
constexpr char kSignatureDigestSymbol[] = "moe_signature_digest";

/// The x86 CPU features a requires line may name: those the runtime can
/// check (with __builtin_cpu_supports, which takes only literal names, hence
/// the X-macro) and moe-compile may list for a --march. The one list of
/// them: MOE_CPU_FEATURE(name) is expanded once per feature.
#define MOE_CHECKABLE_CPU_FEATURES(MOE_CPU_FEATURE)                            \
  MOE_CPU_FEATURE("sse4.2")                                                    \
  MOE_CPU_FEATURE("avx")                                                       \
  MOE_CPU_FEATURE("avx2")                                                      \
  MOE_CPU_FEATURE("fma")                                                       \
  MOE_CPU_FEATURE("bmi")                                                       \
  MOE_CPU_FEATURE("bmi2")                                                      \
  MOE_CPU_FEATURE("f16c")                                                      \
  MOE_CPU_FEATURE("avx512f")                                                   \
  MOE_CPU_FEATURE("avx512bw")                                                  \
  MOE_CPU_FEATURE("avx512dq")                                                  \
  MOE_CPU_FEATURE("avx512vl")                                                  \
  MOE_CPU_FEATURE("avx512cd")

#define MOE_CPU_FEATURE_NAME(name) name,
inline constexpr const char *kCheckableCpuFeatures[] = {
    MOE_CHECKABLE_CPU_FEATURES(MOE_CPU_FEATURE_NAME)};
#undef MOE_CPU_FEATURE_NAME

/// The digest of signature text: FNV-1a 64 of the section's bytes.
inline uint64_t signatureDigest(const void *signature, size_t size) {
  return fnv1a(signature, size);
}

} // namespace moe::artifact

#endif // MOE_ARTIFACT_FORMAT_H

//===- artifact_format.h - the .moeb artifact layout ------------*- C++ -*-===//
//
// Shared by the writer (moe-compile) and the reader (the runtime); no
// dependencies beyond the C++ standard library. Layout (little endian):
//
//   Header (32 bytes) | SectionEntry[count] (32 bytes each) | sections
//
// Each section starts at a multiple of kSectionAlignment. The header
// checksum covers the header (with its checksum field zero) and the section
// table; each section entry carries the checksum of its bytes
// (SectionHash in format 3; byte-wise FNV-1a 64 in format 2, which readers
// still accept). Readers refuse other versions. Section kinds a reader does not
// know are skipped; the signature's device line says which code section an
// executor needs (CpuCode for `device cpu`), so a file can carry code for
// several devices and a reader uses the one it can run.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_ARTIFACT_FORMAT_H
#define MOE_ARTIFACT_FORMAT_H

#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace moe::artifact {

constexpr char kMagic[8] = {'M', 'O', 'E', 'B', 'A', 'R', 'T', '\n'};
/// Format 3: the signature of artifact_format.h below, the code ABI of
/// code_abi.h and section checksums by SectionHash. Format 2 (the same
/// but for byte-wise FNV-1a section checksums, about 0.7 GB/s: 236 ms of
/// every load of a 179 MB model) is still read; version 1 artifacts (MLIR
/// memref descriptors, malloc'ed results) are refused with a message to
/// recompile.
constexpr uint32_t kVersion = 3;
/// The oldest format this reader accepts.
constexpr uint32_t kOldestVersion = 2;
constexpr uint64_t kSectionAlignment = 64;

enum class SectionKind : uint32_t {
  /// Text: device, weights, state and entries (the grammar below).
  Signature = 1,
  /// An x86-64 ELF shared object exporting the entry symbols (code_abi.h).
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

/// The section checksum of format 3, fed in pieces of any size. Four 64-bit
/// lanes take the words of each 32-byte block (lane i word i, little
/// endian): lane = rotl(lane ^ word * kP1, 31) * kP2. The digest folds the
/// length, the lanes and the last size % 32 bytes (byte-wise FNV-1a) into
/// one value and mixes it. Every step is a bijection of the running state
/// for a given input, so a change confined to one word (or one tail byte)
/// always changes the digest; it is a check against corruption, not
/// against forgery (the code's signature digest guards the signature).
/// The lanes are independent chains: about 10x the rate of byte-wise
/// FNV-1a.
class SectionHash {
public:
  void update(const void *data, size_t size) {
    if (size == 0)
      return; // `data` may be null; memcpy must not see it
    const auto *p = static_cast<const unsigned char *>(data);
    length += size;
    if (pendingSize) {
      size_t take = std::min(size, sizeof(pending) - pendingSize);
      std::memcpy(pending + pendingSize, p, take);
      pendingSize += take;
      p += take;
      size -= take;
      if (pendingSize < sizeof(pending))
        return;
      block(pending);
      pendingSize = 0;
    }
    for (; size >= sizeof(pending);
         p += sizeof(pending), size -= sizeof(pending))
      block(p);
    std::memcpy(pending, p, size);
    pendingSize = size;
  }

  uint64_t digest() const {
    uint64_t h = length * kP3;
    for (uint64_t lane : lanes)
      h = rotl((h ^ lane) * kP2, 27);
    h = fnv1a(pending, pendingSize, h);
    h ^= h >> 33;
    h *= kP1;
    h ^= h >> 29;
    return h;
  }

  static uint64_t of(const void *data, size_t size) {
    SectionHash hash;
    hash.update(data, size);
    return hash.digest();
  }

private:
  static constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull;
  static constexpr uint64_t kP2 = 0xC2B2AE3D27D4EB4Full;
  static constexpr uint64_t kP3 = 0x165667B19E3779F9ull;
  static uint64_t rotl(uint64_t v, int r) { return (v << r) | (v >> (64 - r)); }
  void block(const unsigned char *p) {
    for (int i = 0; i < 4; ++i) {
      uint64_t word;
      std::memcpy(&word, p + 8 * i, sizeof(word)); // x86-64: little endian
      lanes[i] = rotl(lanes[i] ^ word * kP1, 31) * kP2;
    }
  }
  uint64_t lanes[4] = {kP1, kP2, kP3, kP1 ^ kP2};
  unsigned char pending[32] = {};
  size_t pendingSize = 0;
  uint64_t length = 0;
};

/// The checksum of a section's bytes in artifact format `version`, fed in
/// pieces: SectionHash from format 3 on, byte-wise FNV-1a before (the one
/// place that decides which).
class SectionChecksum {
public:
  explicit SectionChecksum(uint32_t version) : wide(version >= 3) {}
  void update(const void *data, size_t size) {
    if (wide)
      hash.update(data, size);
    else
      fnv = fnv1a(data, size, fnv);
  }
  uint64_t digest() const { return wide ? hash.digest() : fnv; }

private:
  bool wide;
  SectionHash hash;
  uint64_t fnv = fnv1a(nullptr, 0);
};

/// The checksum of `size` bytes at `data` as a section of format `version`.
inline uint64_t sectionChecksum(uint32_t version, const void *data,
                                size_t size) {
  SectionChecksum checksum(version);
  checksum.update(data, size);
  return checksum.digest();
}

/// Checksum of a header (its checksum field taken as zero) and its table.
inline uint64_t headerChecksum(const Header &header,
                               const SectionEntry *entries) {
  Header copy = header;
  copy.checksum = 0;
  uint64_t h = fnv1a(&copy, sizeof(copy));
  return fnv1a(entries, sizeof(SectionEntry) * header.sectionCount, h);
}

/// A piece of a section's bytes: `size` bytes at `data`, or `size` zero
/// bytes when `data` is null (padding).
struct Chunk {
  const void *data;
  size_t size;
};

/// One section given as pieces, written back to back (the weights section
/// straight from the compiler's constants, with no copy into one buffer).
struct SectionSource {
  SectionKind kind;
  std::vector<Chunk> chunks;
};

/// Writes an artifact holding `sections` in order through
/// `write(const void *data, size_t size)`, in file order: the one writer of
/// the layout (moe-compile, and the runtime tests that build artifacts).
template <typename Write>
void serializeTo(const std::vector<SectionSource> &sections, Write &&write,
                 uint32_t version = kVersion) {
  static const char zeros[kSectionAlignment] = {};
  auto writeZeros = [&](uint64_t n) {
    for (; n; n -= std::min<uint64_t>(n, sizeof(zeros)))
      write(zeros, static_cast<size_t>(std::min<uint64_t>(n, sizeof(zeros))));
  };
  Header header{};
  std::memcpy(header.magic, kMagic, sizeof(kMagic));
  header.version = version;
  header.sectionCount = static_cast<uint32_t>(sections.size());
  std::vector<SectionEntry> table(sections.size());
  uint64_t offset = sizeof(Header) + sizeof(SectionEntry) * sections.size();
  for (size_t i = 0; i < sections.size(); ++i) {
    offset = (offset + kSectionAlignment - 1) / kSectionAlignment *
             kSectionAlignment;
    uint64_t size = 0;
    SectionChecksum checksum(version);
    for (const Chunk &c : sections[i].chunks) {
      if (c.data) {
        checksum.update(c.data, c.size);
      } else {
        for (size_t n = c.size; n; n -= std::min(n, sizeof(zeros)))
          checksum.update(zeros, std::min(n, sizeof(zeros)));
      }
      size += c.size;
    }
    table[i] = {static_cast<uint32_t>(sections[i].kind), 0, offset, size,
                checksum.digest()};
    offset += size;
  }
  header.fileSize = offset;
  header.checksum = headerChecksum(header, table.data());
  write(&header, sizeof(header));
  if (!table.empty())
    write(table.data(), sizeof(SectionEntry) * table.size());
  uint64_t at = sizeof(Header) + sizeof(SectionEntry) * sections.size();
  for (size_t i = 0; i < sections.size(); ++i) {
    writeZeros(table[i].offset - at);
    for (const Chunk &c : sections[i].chunks) {
      if (c.data)
        write(c.data, c.size);
      else
        writeZeros(c.size);
    }
    at = table[i].offset + table[i].size;
  }
}

/// The bytes of an artifact holding `sections` (kind, bytes) in order.
inline std::string
serialize(const std::vector<std::pair<SectionKind, std::string>> &sections,
          uint32_t version = kVersion) {
  std::vector<SectionSource> sources;
  for (const auto &[kind, bytes] : sections)
    sources.push_back({kind, {{bytes.data(), bytes.size()}}});
  std::string out;
  serializeTo(
      sources,
      [&](const void *data, size_t size) {
        out.append(static_cast<const char *>(data), size);
      },
      version);
  return out;
}

// Signature (format 2): text, one record per line, each line ended by
// '\n', fields separated by single spaces. The grammar, in order:
//
//   moe-signature 2
//   device cpu x86-64 [<feature>...]     exactly one device line
//   weight <offset> <bytes> <layout> <type>          zero or more
//   state <name> <type>                              zero or more
//   entry <name> <symbol> <workspace-bytes> <exact|grows>   one or more,
//   input <name> <type>                                each followed by its
//   output <name> <type>                               inputs, then its
//   end                                                outputs, then "end"
//
//   <type>    := <dtype> <rank> <dim>*   (rank dims)
//   <dim>     := a decimal integer | ?<symbol> | ?   (? alone: anonymous)
//   <dtype>   := f32 f64 f16 bf16 i64 i32 i16 i8 u64 u32 u16 u8 bool
//   <layout>  := row-major
//
// Names and symbols are percent-encoded (every byte outside printable
// ASCII, space and '%' as %XX) and decode to non-empty strings without NUL;
// entry symbols are C identifiers. Entry names are unique, and so are entry
// symbols; within an entry, input names are unique and output names are
// unique; state names are unique. Ranks are at most 32. Weights have static
// dims, are 64-byte aligned, sized by their type, inside the weights section
// and disjoint. Feature names are those the runtime can check
// (kCheckableCpuFeatures below). <workspace-bytes> is what one run of the
// entry takes from its arena when `exact`; with `grows` it is what the
// runtime preallocates and the code may ask for more (code_abi.h).
// Anything else (unknown record kinds included) is refused: a reader of
// format 2 understands every line of a format 2 signature. New records
// come with a new signature version.
//
// The code of entry `e` is the function <symbol> of the code section (the
// protocol: runtime/include/moe/code_abi.h). It receives the entry's
// inputs, every weight (in record order), the entry's outputs and every
// state tensor.
constexpr char kSignatureHeader[] = "moe-signature 2";

/// The data symbol every code section exports: a `const uint64_t` (an ELF
/// STT_OBJECT of at least 8 bytes, whose first 8 are read: sanitizers pad
/// globals; default visibility) holding signatureDigest() of
/// the signature section the code was compiled with. The loader refuses
/// code whose digest is missing or differs, so that a signature edited
/// after compilation (checksums recomputed) cannot make the runtime read
/// or pass buffers the code does not produce or expect.
constexpr char kSignatureDigestSymbol[] = "moe_signature_digest";

/// The x86 CPU features a device line may name: those the runtime can
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

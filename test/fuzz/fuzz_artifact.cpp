//===- fuzz_artifact.cpp - libFuzzer harness of the artifact parser --------===//
//
// Bytes -> moe::artifact::parse (header, section table, checksums,
// signature of format 2, weight records; nothing is loaded). Built by runtime/'s
// MOE_BUILD_FUZZERS option; run by scripts/fuzz.sh. Checksums make random
// mutations fail early, so the harness also parses the input as signature
// text alone, and re-wraps it as the signature section of an otherwise
// valid artifact (checksums recomputed) to reach the checks behind them.
//
//===----------------------------------------------------------------------===//

#include "moe/artifact_format.h"
#include "moe/artifact_reader.h"

#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  using namespace moe::artifact;
  Contents contents;
  Result r = parse(data, size, "fuzz", contents);
  if (r.ok()) {
    // What a valid parse promises the loader: a device it knows, at least
    // one entry, each with a C identifier for a symbol, ranks within the
    // cap, and weights inside their section (the code section is the
    // executor's business: it may be missing).
    const Signature &sig = contents.signature;
    if (sig.device != "cpu" || sig.arch != "x86-64" || sig.entries.empty())
      std::abort();
    for (const EntryRecord &e : sig.entries) {
      if (e.name.empty() || e.symbol.empty() ||
          e.workspaceBytes > kMaxStaticBytes)
        std::abort();
      for (const auto *list : {&e.inputs, &e.outputs})
        for (const TensorRecord &t : *list)
          if (t.name.empty() || t.dims.size() > kMaxRank ||
              t.symbols.size() != t.dims.size())
            std::abort();
    }
    size_t n = contents.weightsSize;
    for (const TensorRecord &w : sig.weights)
      if (w.offset > n || w.bytes > n - w.offset || // No wrap-around.
          w.layout != "row-major")
        std::abort();
  } else if (r.message.empty()) {
    std::abort();
  }

  Signature signature;
  r = parseSignature(reinterpret_cast<const char *>(data), size, signature);
  if (!r.ok() && r.message.empty())
    std::abort();

  // The input as the signature of an artifact with 256 weight bytes.
  std::string text(reinterpret_cast<const char *>(data), size);
  std::string bytes =
      serialize({{SectionKind::Signature, text},
                 {SectionKind::CpuCode, "\x7f" "ELF"},
                 {SectionKind::Weights, std::string(256, 'w')}});
  r = parse(reinterpret_cast<const unsigned char *>(bytes.data()),
            bytes.size(), "fuzz", contents);
  if (r.ok() && contents.signatureDigest != signatureDigest(data, size))
    std::abort();
  return 0;
}

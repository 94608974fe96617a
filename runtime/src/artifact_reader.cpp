//===- artifact_reader.cpp - parsing .moeb artifacts -----------------------===//
//
// Bytes in, a validated description out; no file, no dlopen, no allocation
// sized by untrusted fields before they are checked against the input size.
// Every refusal is a Result with a message naming what is wrong. Format 2:
// the signature grammar of artifact_format.h, every rule of it checked
// (record order, one device line, entry blocks closed by `end`, unique
// names, C identifiers for symbols, caps on ranks, sizes and lengths).
//
//===----------------------------------------------------------------------===//

#include "moe/artifact_reader.h"

#include "moe/artifact_format.h"
#include "moe/text.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <set>
#include <utility>

using namespace moe::artifact;

namespace {

Result fail(moe_status_code_t code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

Result fail(moe_status_code_t code, const char *fmt, ...) {
  va_list args, copy;
  va_start(args, fmt);
  va_copy(copy, args);
  int n = std::vsnprintf(nullptr, 0, fmt, copy);
  va_end(copy);
  std::string message(n > 0 ? static_cast<size_t>(n) : 0, '\0');
  if (n > 0)
    std::vsnprintf(&message[0], message.size() + 1, fmt, args);
  va_end(args);
  return Result{code, std::move(message)};
}

/// `text` for a message, at most `limit` bytes of it (moe/text.h).
std::string shown(const std::string &text, size_t limit = 80) {
  return moe::printable(text, limit);
}

int hexValue(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/// Decodes a percent-encoded name; false on a '%' not followed by two hex
/// digits.
bool decodeName(const std::string &s, std::string &out) {
  out.clear();
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size())
      return false;
    int hi = hexValue(s[i + 1]), lo = hexValue(s[i + 2]);
    if (hi < 0 || lo < 0)
      return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

/// A strict unsigned decimal: digits only, no sign, no leading zero (but
/// "0"), no overflow past `max`.
bool parseDecimal(const std::string &s, uint64_t max, uint64_t &out) {
  if (s.empty() || s.size() > 20 || (s[0] == '0' && s.size() > 1))
    return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9')
      return false;
    unsigned digit = static_cast<unsigned>(c - '0');
    if (v > (max - digit) / 10)
      return false;
    v = v * 10 + digit;
  }
  out = v;
  return true;
}

bool parseDType(const std::string &s, moe_dtype_t &out) {
  for (unsigned i = 0; moe_dtype_size(static_cast<moe_dtype_t>(i)); ++i)
    if (s == moe_dtype_name(static_cast<moe_dtype_t>(i))) {
      out = static_cast<moe_dtype_t>(i);
      return true;
    }
  return false;
}

/// A C identifier (ASCII, whatever the host's locale).
bool isIdentifier(const std::string &s) {
  if (s.empty() || s.size() > kMaxNameLength || (s[0] >= '0' && s[0] <= '9'))
    return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_'))
      return false;
  return true;
}

/// Splits a line at single spaces; false on an empty field (two spaces, a
/// leading or trailing space) or a byte no field may hold.
bool splitFields(const std::string &line, std::vector<std::string> &fields,
                 std::string &why) {
  fields.clear();
  size_t start = 0;
  for (size_t i = 0; i <= line.size(); ++i) {
    if (i < line.size()) {
      char c = line[i];
      if (c == '\0' || c == '\t' || c == '\r' || c == '\v' || c == '\f') {
        why = "a NUL or whitespace byte other than a single space";
        return false;
      }
      if (c != ' ')
        continue;
    }
    if (i == start) {
      why = "an empty field (fields are separated by single spaces)";
      return false;
    }
    fields.push_back(line.substr(start, i - start));
    start = i + 1;
  }
  return true;
}

/// Parses fields[at...] = "<dtype> <rank> <dim>..." (a <type>) into `rec`.
bool parseType(const std::vector<std::string> &fields, size_t at,
               TensorRecord &rec, bool allowSymbols, std::string &why) {
  if (fields.size() < at + 2) {
    why = "missing dtype or rank";
    return false;
  }
  if (!parseDType(fields[at], rec.dtype)) {
    why = "unknown dtype '" + shown(fields[at], 16) + "'";
    return false;
  }
  uint64_t rank;
  if (!parseDecimal(fields[at + 1], kMaxRank, rank)) {
    why = "the rank is not an integer in [0, " + std::to_string(kMaxRank) +
          "]";
    return false;
  }
  if (fields.size() != at + 2 + rank) {
    why = "rank " + std::to_string(rank) + " but " +
          std::to_string(fields.size() - at - 2) + " dims";
    return false;
  }
  uint64_t bytes = moe_dtype_size(rec.dtype);
  for (size_t d = 0; d < rank; ++d) {
    const std::string &dim = fields[at + 2 + d];
    if (dim[0] == '?') {
      std::string decoded;
      if (!allowSymbols) {
        why = "a weight with a symbolic dim";
        return false;
      }
      if (dim.size() > kMaxNameLength || !decodeName(dim.substr(1), decoded) ||
          decoded.find('\0') != std::string::npos) {
        why = "a malformed dim symbol";
        return false;
      }
      rec.dims.push_back(-1);
      // Decoded, as names are: "?B" and "?%42" are the same symbol.
      rec.symbols.push_back(std::move(decoded));
      continue;
    }
    uint64_t v;
    if (!parseDecimal(dim, INT64_MAX, v)) {
      why = "dim " + std::to_string(d) + " is not a non-negative integer";
      return false;
    }
    if (v > 1 && bytes > kMaxStaticBytes / v) {
      why = "the static dims are too large";
      return false;
    }
    bytes *= v ? v : 1;
    rec.dims.push_back(static_cast<int64_t>(v));
    rec.symbols.emplace_back();
  }
  return true;
}

/// Decodes the percent-encoded name `field` into `out`: non-empty, no NUL.
bool parseName(const std::string &field, std::string &out, std::string &why) {
  if (field.size() > kMaxNameLength || !decodeName(field, out)) {
    why = "a malformed name";
    return false;
  }
  if (out.empty() || out.find('\0') != std::string::npos) {
    why = "an empty name or one with a NUL byte";
    return false;
  }
  return true;
}

/// Where a signature's reader is in the grammar (artifact_format.h): the
/// records it may read next.
enum class Place {
  Device,  ///< After the header: the device line.
  Weights, ///< After the device line: weights, states, entries.
  States,  ///< After a state: states, entries.
  Between, ///< After an entry's `end`: entries.
  Inputs,  ///< In an entry block, before its outputs.
  Outputs, ///< In an entry block, after an output.
};

} // namespace

bool moe::artifact::isKnownCpuFeature(const std::string &feature) {
  for (const char *k : kCheckableCpuFeatures)
    if (feature == k)
      return true;
  return false;
}

Result moe::artifact::parseSignature(const char *text, size_t size,
                                     Signature &out) {
  out = Signature();
  if (!text || size == 0)
    return fail(MOE_DATA_LOSS, "the signature is empty (it must start with "
                               "'%s')",
                kSignatureHeader);
  Place place = Place::Device;
  // Names of the entries, their symbols, the states; per entry, its inputs
  // and outputs.
  std::set<std::string> entryNames, entrySymbols, stateNames, inputNames,
      outputNames;
  size_t lineNo = 0, start = 0;
  std::vector<std::string> fields;
  while (start < size) {
    const char *nl = static_cast<const char *>(
        std::memchr(text + start, '\n', size - start));
    size_t end = nl ? static_cast<size_t>(nl - text) : size;
    std::string line(text + start, end - start);
    start = end + 1;
    ++lineNo;
    std::string why;
    auto corrupt = [&]() {
      return fail(MOE_DATA_LOSS, "corrupt signature at line %zu (%s): '%s'",
                  lineNo, why.c_str(), shown(line).c_str());
    };
    if (!nl) {
      why = "the last line does not end with a newline";
      return corrupt();
    }
    if (lineNo == 1) {
      if (line == kSignatureHeader)
        continue;
      // "moe-signature N": a signature of another version.
      const std::string prefix = "moe-signature ";
      uint64_t version;
      if (line.compare(0, prefix.size(), prefix) == 0 &&
          parseDecimal(line.substr(prefix.size()), UINT32_MAX, version))
        return fail(MOE_UNIMPLEMENTED,
                    "the signature has version %llu; this runtime reads "
                    "'%s'",
                    static_cast<unsigned long long>(version),
                    kSignatureHeader);
      why = std::string("the signature does not start with '") +
            kSignatureHeader + "'";
      return corrupt();
    }
    if (line.empty()) {
      why = "an empty line";
      return corrupt();
    }
    if (!splitFields(line, fields, why))
      return corrupt();
    const std::string &kind = fields[0];
    bool inEntry = place == Place::Inputs || place == Place::Outputs;
    if (place == Place::Device && kind != "device") {
      why = "a record before the device line (the device line comes right "
            "after the header)";
    } else if (kind == "device") {
      std::set<std::string> seen;
      if (place != Place::Device)
        why = "a second device line";
      else if (fields.size() < 3 || fields[1] != "cpu" ||
               fields[2] != "x86-64")
        why = "the device is not 'cpu x86-64'";
      for (size_t i = 3; why.empty() && i < fields.size(); ++i) {
        if (!isKnownCpuFeature(fields[i]))
          why = "unknown CPU feature '" + shown(fields[i], 32) + "'";
        else if (!seen.insert(fields[i]).second)
          why = "CPU feature '" + fields[i] + "' listed twice";
        else
          out.requiredFeatures.push_back(fields[i]);
      }
      if (why.empty()) {
        out.device = fields[1];
        out.arch = fields[2];
        place = Place::Weights;
      }
    } else if (kind == "weight") {
      TensorRecord rec;
      if (place != Place::Weights)
        why = "a weight record after the state or entry records";
      else if (fields.size() < 4 ||
               !parseDecimal(fields[1], INT64_MAX, rec.offset) ||
               !parseDecimal(fields[2], INT64_MAX, rec.bytes))
        why = "a malformed weight offset or size";
      else if (fields[3] != "row-major")
        why = "an unknown weight layout '" + shown(fields[3], 32) +
            "' (only 'row-major' is known)";
      else if (parseType(fields, 4, rec, false, why)) {
        rec.layout = fields[3];
        out.weights.push_back(std::move(rec));
      }
    } else if (kind == "state") {
      TensorRecord rec;
      if (place != Place::Weights && place != Place::States)
        why = "a state record after the entry records";
      else if (fields.size() < 2)
        why = "a state record without a name";
      else if (!parseName(fields[1], rec.name, why) ||
               !parseType(fields, 2, rec, true, why))
        ; // `why` says what.
      else if (!stateNames.insert(rec.name).second)
        why = "a second state named '" + shown(rec.name, 64) + "'";
      else {
        out.states.push_back(std::move(rec));
        place = Place::States;
      }
    } else if (kind == "entry") {
      EntryRecord entry;
      if (inEntry)
        why = "an entry inside entry '" + shown(out.entries.back().name, 64) +
              "' (its 'end' line is missing)";
      else if (fields.size() != 5)
        why = "an entry record is 'entry <name> <symbol> <workspace-bytes> "
              "<exact|grows>'";
      else if (!parseName(fields[1], entry.name, why))
        ; // `why` says what.
      else if (!isIdentifier(fields[2]))
        why = "the entry symbol is not a C identifier";
      else if (!parseDecimal(fields[3], kMaxStaticBytes, entry.workspaceBytes))
        why = "the workspace size is not an integer in [0, 2^62]";
      else if (fields[4] != "exact" && fields[4] != "grows")
        why = "the workspace is neither 'exact' nor 'grows'";
      else if (!entryNames.insert(entry.name).second)
        why = "a second entry named '" + shown(entry.name, 64) + "'";
      else if (!entrySymbols.insert(fields[2]).second)
        why = "a second entry with the symbol '" + fields[2] + "'";
      else {
        entry.symbol = fields[2];
        entry.workspaceGrows = fields[4] == "grows";
        out.entries.push_back(std::move(entry));
        inputNames.clear();
        outputNames.clear();
        place = Place::Inputs;
      }
    } else if (kind == "input" || kind == "output") {
      TensorRecord rec;
      bool isInput = kind == "input";
      if (!inEntry)
        why = "an " + kind + " record outside an entry block";
      else if (isInput && place == Place::Outputs)
        why = "an input record after the entry's outputs";
      else if (fields.size() < 2)
        why = "an " + kind + " record without a name";
      else if (!parseName(fields[1], rec.name, why) ||
               !parseType(fields, 2, rec, true, why))
        ; // `why` says what.
      else if (!(isInput ? inputNames : outputNames).insert(rec.name).second)
        why = "a second " + kind + " named '" + shown(rec.name, 64) + "'";
      else {
        EntryRecord &entry = out.entries.back();
        (isInput ? entry.inputs : entry.outputs).push_back(std::move(rec));
        if (!isInput)
          place = Place::Outputs;
      }
    } else if (kind == "end") {
      if (!inEntry)
        why = "an 'end' line outside an entry block";
      else if (fields.size() != 1)
        why = "an 'end' line with fields";
      else
        place = Place::Between;
    } else {
      why = "an unknown record '" + shown(kind, 32) + "'";
    }
    if (!why.empty())
      return corrupt();
  }
  if (place == Place::Device)
    return fail(MOE_DATA_LOSS, "corrupt signature: it has no device line");
  if (place == Place::Inputs || place == Place::Outputs)
    return fail(MOE_DATA_LOSS,
                "corrupt signature: entry '%s' has no 'end' line",
                shown(out.entries.back().name, 64).c_str());
  if (out.entries.empty())
    return fail(MOE_DATA_LOSS, "corrupt signature: it declares no entry");
  return Result();
}

Result moe::artifact::parse(const unsigned char *bytes, size_t size,
                            const std::string &name, Contents &out) {
  out = Contents();
  const char *path = name.c_str();
  if (!bytes || size < sizeof(Header))
    return fail(MOE_DATA_LOSS,
                "'%s' is truncated: %zu bytes, smaller than a header", path,
                size);
  Header header;
  std::memcpy(&header, bytes, sizeof(header));
  if (std::memcmp(header.magic, kMagic, sizeof(kMagic)) != 0)
    return fail(MOE_DATA_LOSS, "'%s' is not a moe artifact (bad magic)", path);
  if (header.version == 1)
    return fail(MOE_UNIMPLEMENTED,
                "'%s': artifact format version 1 is no longer supported by "
                "this runtime (format %u): recompile the model with "
                "moe-compile",
                path, kVersion);
  if (header.version < kOldestVersion || header.version > kVersion)
    return fail(MOE_UNIMPLEMENTED,
                "'%s' has artifact format version %u; this runtime reads "
                "versions %u to %u",
                path, header.version, kOldestVersion, kVersion);
  if (header.fileSize != size)
    return fail(MOE_DATA_LOSS,
                "'%s' is %zu bytes but its header says %llu (truncated or "
                "extended)",
                path, size, static_cast<unsigned long long>(header.fileSize));
  uint64_t tableEnd =
      sizeof(Header) + uint64_t(header.sectionCount) * sizeof(SectionEntry);
  if (header.sectionCount > kMaxSections || tableEnd > size)
    return fail(MOE_DATA_LOSS, "'%s' has a corrupt section table", path);
  std::vector<SectionEntry> table(header.sectionCount);
  // An empty table has no storage: memcpy must not see its null pointer.
  if (!table.empty())
    std::memcpy(table.data(), bytes + sizeof(Header),
                table.size() * sizeof(SectionEntry));
  if (headerChecksum(header, table.data()) != header.checksum)
    return fail(MOE_DATA_LOSS, "'%s': header checksum mismatch", path);

  const unsigned char *signature = nullptr;
  size_t signatureSize = 0;
  bool haveWeights = false;
  std::vector<std::pair<uint64_t, uint64_t>> extents;
  for (const SectionEntry &e : table) {
    if (e.offset < tableEnd || e.offset > size || e.size > size - e.offset)
      return fail(MOE_DATA_LOSS, "'%s': section %u lies outside the file",
                  path, e.kind);
    if (e.offset % kSectionAlignment != 0)
      return fail(MOE_DATA_LOSS,
                  "'%s': section %u is not %llu-byte aligned (offset %llu)",
                  path, e.kind,
                  static_cast<unsigned long long>(kSectionAlignment),
                  static_cast<unsigned long long>(e.offset));
    if (sectionChecksum(header.version, bytes + e.offset, e.size) != e.checksum)
      return fail(MOE_DATA_LOSS, "'%s': checksum mismatch in section %u",
                  path, e.kind);
    if (e.size)
      extents.emplace_back(e.offset, e.size);
    bool twice = false;
    switch (static_cast<SectionKind>(e.kind)) {
    case SectionKind::Signature:
      twice = signature != nullptr;
      signature = bytes + e.offset;
      signatureSize = e.size;
      break;
    case SectionKind::CpuCode:
      twice = out.code != nullptr;
      out.code = bytes + e.offset;
      out.codeSize = e.size;
      break;
    case SectionKind::Weights:
      twice = haveWeights;
      haveWeights = true;
      out.weights = bytes + e.offset;
      out.weightsSize = e.size;
      break;
    default: // Unknown or device sections: not for this reader.
      break;
    }
    if (twice)
      return fail(MOE_DATA_LOSS, "'%s' has two sections of kind %u", path,
                  e.kind);
  }
  std::sort(extents.begin(), extents.end());
  for (size_t i = 1; i < extents.size(); ++i)
    if (extents[i - 1].first + extents[i - 1].second > extents[i].first)
      return fail(MOE_DATA_LOSS, "'%s' has overlapping sections", path);
  // The code sections are the executor's business: the device line says
  // which one it needs (the CPU executor refuses an artifact without
  // CpuCode).
  if (!signature)
    return fail(MOE_DATA_LOSS, "'%s' lacks its signature section", path);
  out.signatureDigest = signatureDigest(signature, signatureSize);
  Result r = parseSignature(reinterpret_cast<const char *>(signature),
                            signatureSize, out.signature);
  if (!r.ok())
    return fail(r.code, "'%s': %s", path, r.message.c_str());

  // Weight records: inside the section, aligned, sized by their shape, and
  // disjoint (the code may not see one weight through another's bytes).
  std::vector<std::pair<uint64_t, uint64_t>> weights;
  const std::vector<TensorRecord> &records = out.signature.weights;
  for (size_t i = 0; i < records.size(); ++i) {
    const TensorRecord &w = records[i];
    uint64_t count = 1;
    for (int64_t d : w.dims)
      count *= static_cast<uint64_t>(d); // Bounded by kMaxStaticBytes.
    const char *why = nullptr;
    if (count * moe_dtype_size(w.dtype) != w.bytes)
      why = "its size does not match its shape";
    else if (w.offset % kSectionAlignment != 0)
      why = "its offset is not 64-byte aligned";
    else if (w.offset > out.weightsSize || w.bytes > out.weightsSize - w.offset)
      why = "it lies outside the weights section";
    if (why)
      return fail(MOE_DATA_LOSS, "'%s': corrupt weight record %zu: %s", path,
                  i, why);
    if (w.bytes)
      weights.emplace_back(w.offset, w.bytes);
  }
  std::sort(weights.begin(), weights.end());
  for (size_t i = 1; i < weights.size(); ++i)
    if (weights[i - 1].first + weights[i - 1].second > weights[i].first)
      return fail(MOE_DATA_LOSS,
                  "'%s': corrupt weight record: weights at offsets %llu and "
                  "%llu overlap",
                  path, static_cast<unsigned long long>(weights[i - 1].first),
                  static_cast<unsigned long long>(weights[i].first));
  return Result();
}

//===- text.h - untrusted text in messages ----------------------*- C++ -*-===//
//
// Names and bytes from artifacts and .npy files end up in messages and on
// terminals: printable() is the one place that makes them harmless. Shared
// by the runtime and moe-run; header-only, no dependencies beyond the C++
// standard library.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TEXT_H
#define MOE_TEXT_H

#include <cstddef>
#include <string>

namespace moe {

/// `text` for a message: the printable ASCII bytes 0x20..0x7E as they are,
/// but '\\'; every other byte (C0 and C1 controls, DEL, any byte >= 0x80)
/// and '\\' as \xNN (two upper-case hex digits), so that the result is
/// plain ASCII that cannot drive a terminal and reads back unambiguously.
/// At most the first `limit` bytes of `text` are shown, then "...".
inline std::string printable(const std::string &text, size_t limit) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (size_t i = 0; i < text.size() && i < limit; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c <= 0x7e && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  if (text.size() > limit)
    out += "...";
  return out;
}

} // namespace moe

#endif // MOE_TEXT_H

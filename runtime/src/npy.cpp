//===- npy.cpp - NumPy .npy files ------------------------------------------===//
//
// A strict reader of the header NumPy writes (see npy.h), a writer into a
// directory, and the output file names of moe-run.
//
//===----------------------------------------------------------------------===//

#include "moe/npy.h"

#include "moe/artifact_format.h"
#include "moe/text.h"

#include "posix_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <stdexcept>

namespace {

struct Descr {
  const char *descr;
  moe_dtype_t dtype;
};
constexpr Descr kDescrs[] = {
    {"<f4", MOE_DTYPE_F32}, {"<f8", MOE_DTYPE_F64}, {"<f2", MOE_DTYPE_F16},
    {"<i8", MOE_DTYPE_I64}, {"<i4", MOE_DTYPE_I32}, {"|i1", MOE_DTYPE_I8},
    {"|u1", MOE_DTYPE_U8},  {"|b1", MOE_DTYPE_BOOL}, {"<i2", MOE_DTYPE_I16},
    {"<u2", MOE_DTYPE_U16}, {"<u4", MOE_DTYPE_U32}, {"<u8", MOE_DTYPE_U64}};

/// `text` for a message, at most 40 bytes of it (moe/text.h).
std::string shown(const std::string &text) {
  return moe::printable(text, 40);
}

/// The magic, the version and the header length: the header starts at
/// `start` and is `headerLen` bytes long. `size` is how many bytes of the
/// file `data` holds (its whole preamble, unless the file is shorter).
std::string preamble(const unsigned char *data, size_t size, size_t &start,
                     size_t &headerLen) {
  if (size < 8 || std::memcmp(data, "\x93NUMPY", 6) != 0)
    return "not a .npy file (bad magic)";
  unsigned major = data[6], minor = data[7];
  if ((major != 1 && major != 2 && major != 3) || minor != 0)
    return "unsupported .npy version " + std::to_string(major) + "." +
           std::to_string(minor);
  start = major == 1 ? 10 : 12;
  if (size < start)
    return "truncated .npy header";
  headerLen = data[8] | (data[9] << 8);
  if (major != 1)
    headerLen |= (size_t(data[10]) << 16) | (size_t(data[11]) << 24);
  if (headerLen > moe::npy::kMaxHeaderLength)
    return "the .npy header is " + std::to_string(headerLen) +
           " bytes, more than the " +
           std::to_string(moe::npy::kMaxHeaderLength) + " allowed";
  return "";
}

/// A strict parser of the header's dict literal.
class HeaderParser {
public:
  explicit HeaderParser(const std::string &text) : text(text) {}

  /// Parses the header into dtype and dims; returns "" or an error.
  std::string parse(moe_dtype_t &dtype, std::vector<int64_t> &dims) {
    if (text.empty() || text.back() != '\n')
      return "malformed .npy header: it does not end with a newline";
    end = text.size() - 1;
    bool haveDescr = false, haveOrder = false, haveShape = false;
    std::string descr;
    bool fortran = false;
    spaces();
    if (!eat('{'))
      return syntax("'{'");
    spaces();
    while (!peek('}')) {
      std::string key;
      if (!quoted(key))
        return syntax("a quoted key or '}'");
      spaces();
      if (!eat(':'))
        return syntax("':'");
      spaces();
      bool *seen = key == "descr"           ? &haveDescr
                   : key == "fortran_order" ? &haveOrder
                   : key == "shape"         ? &haveShape
                                            : nullptr;
      if (!seen)
        return "malformed .npy header: unknown key '" + shown(key) + "'";
      if (*seen)
        return "malformed .npy header: key '" + shown(key) +
               "' appears twice";
      *seen = true;
      if (key == "descr") {
        if (peek('['))
          return "structured (record) dtypes are not supported";
        if (!quoted(descr))
          return syntax("a quoted dtype");
      } else if (key == "fortran_order") {
        if (word("True"))
          fortran = true;
        else if (!word("False"))
          return syntax("True or False");
      } else if (std::string err = shape(dims); !err.empty()) {
        return err;
      }
      spaces();
      if (!eat(',')) {
        if (!peek('}'))
          return syntax("',' or '}'");
        break;
      }
      spaces();
    }
    if (!eat('}'))
      return syntax("'}'");
    spaces();
    if (at != end)
      return syntax("only spaces after '}'");
    if (!haveDescr || !haveOrder || !haveShape)
      return std::string("malformed .npy header: it lacks '") +
             (!haveDescr ? "descr" : !haveOrder ? "fortran_order" : "shape") +
             "'";
    if (fortran)
      return "Fortran-order arrays are not supported";
    for (const Descr &d : kDescrs)
      if (descr == d.descr) {
        dtype = d.dtype;
        return "";
      }
    if (!descr.empty() && descr[0] == '>')
      return "big-endian dtype '" + shown(descr) +
             "' is not supported: save the array as little-endian "
             "(arr.astype(arr.dtype.newbyteorder('<')))";
    return "unsupported dtype '" + shown(descr) + "'";
  }

private:
  bool peek(char c) const { return at < end && text[at] == c; }
  bool eat(char c) {
    if (!peek(c))
      return false;
    ++at;
    return true;
  }
  void spaces() {
    while (peek(' '))
      ++at;
  }
  bool word(const char *w) {
    size_t n = std::strlen(w);
    if (end - at < n || text.compare(at, n, w) != 0)
      return false;
    // Not the prefix of a longer identifier.
    char next = at + n < end ? text[at + n] : ' ';
    if ((next >= 'a' && next <= 'z') || (next >= 'A' && next <= 'Z') ||
        (next >= '0' && next <= '9') || next == '_')
      return false;
    at += n;
    return true;
  }
  /// A string in ' or " without escapes.
  bool quoted(std::string &out) {
    if (!peek('\'') && !peek('"'))
      return false;
    char q = text[at++];
    size_t close = text.find(q, at);
    if (close == std::string::npos || close >= end)
      return false;
    out = text.substr(at, close - at);
    for (char c : out)
      if (c == '\\' || static_cast<unsigned char>(c) < 0x20 ||
          static_cast<unsigned char>(c) >= 0x7f)
        return false;
    at = close + 1;
    return true;
  }
  /// "()", "(N,)", "(N, M)", "(N, M,)": decimal integers without sign.
  std::string shape(std::vector<int64_t> &dims) {
    dims.clear();
    if (!eat('('))
      return syntax("a shape tuple");
    spaces();
    bool comma = false;
    while (!peek(')')) {
      if (at >= end || text[at] < '0' || text[at] > '9') {
        if (peek('-'))
          return "negative dimension in .npy shape";
        return syntax("a non-negative decimal dim");
      }
      if (text[at] == '0' && at + 1 < end && text[at + 1] >= '0' &&
          text[at + 1] <= '9')
        return syntax("a dim without leading zeros");
      uint64_t v = 0;
      for (; at < end && text[at] >= '0' && text[at] <= '9'; ++at) {
        unsigned digit = static_cast<unsigned>(text[at] - '0');
        if (v > (uint64_t(INT64_MAX) - digit) / 10)
          return "a .npy dim is larger than 2^63 - 1";
        v = v * 10 + digit;
      }
      if (dims.size() == 64)
        return "the .npy shape has more than 64 dims";
      dims.push_back(static_cast<int64_t>(v));
      spaces();
      comma = eat(',');
      spaces();
      if (!comma && !peek(')'))
        return syntax("',' or ')' in the shape");
    }
    ++at;
    // "(3)" is the integer 3, not a tuple.
    if (dims.size() == 1 && !comma)
      return syntax("'(N,)' for a one-dim shape");
    return "";
  }
  std::string syntax(const char *expected) const {
    return "malformed .npy header: expected " + std::string(expected) +
           " at byte " + std::to_string(at) + ", near '" +
           shown(text.substr(at < 12 ? 0 : at - 12)) + "'";
  }

  const std::string &text;
  size_t at = 0, end = 0;
};

/// Parses the header text into dtype, dims and the data's byte size.
std::string parseHeader(const std::string &header, moe::npy::Array &out,
                        size_t &bytes) {
  if (std::string err = HeaderParser(header).parse(out.dtype, out.dims);
      !err.empty())
    return err;
  size_t count = 1;
  for (int64_t d : out.dims) {
    size_t u = static_cast<size_t>(d);
    if (u != 0 && count > SIZE_MAX / u)
      return "the .npy shape overflows";
    count *= u;
  }
  size_t esize = moe_dtype_size(out.dtype);
  if (count > SIZE_MAX / esize)
    return "the .npy shape overflows";
  bytes = count * esize;
  return "";
}

std::string sizeMismatch(size_t have, size_t need) {
  return std::string(have < need ? "truncated .npy data"
                                 : "trailing bytes after the .npy data") +
         ": " + std::to_string(have) + " bytes, the shape needs " +
         std::to_string(need);
}

/// Reads up to `n` bytes; fewer only at the end of the file.
ssize_t readFully(int fd, unsigned char *to, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::read(fd, to + got, n - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -1;
    if (r == 0)
      break;
    got += static_cast<size_t>(r);
  }
  return static_cast<ssize_t>(got);
}

std::string readError() {
  return std::string("read error: ") + std::strerror(errno);
}

/// Parses an in-memory .npy file into `out`; returns "" or an error. With
/// `owner` (the vector holding `data`), the data bytes are moved out of it
/// rather than copied.
std::string parseBytes(const unsigned char *data, size_t size,
                       moe::npy::Array &out,
                       std::vector<unsigned char> *owner = nullptr) {
  if (!data)
    size = 0;
  size_t start = 0, headerLen = 0;
  if (std::string err = preamble(data, size, start, headerLen); !err.empty())
    return err;
  if (headerLen > size - start)
    return "truncated .npy header";
  std::string header(reinterpret_cast<const char *>(data + start), headerLen);
  size_t bytes;
  if (std::string err = parseHeader(header, out, bytes); !err.empty())
    return err;
  size_t offset = start + headerLen;
  if (size - offset != bytes)
    return sizeMismatch(size - offset, bytes);
  if (owner) {
    owner->erase(owner->begin(), owner->begin() + offset);
    out.bytes = std::move(*owner);
  } else {
    out.bytes.assign(data + offset, data + size);
  }
  return "";
}

/// A regular file: read whole (to its end, whatever its size said: the size
/// of a /proc file is 0, and a file may change between fstat and read),
/// then parsed like bytes in memory. Only what the file holds is allocated.
std::string readRegular(int fd, size_t sizeHint, moe::npy::Array &out) {
  std::vector<unsigned char> file;
  size_t capacity = sizeHint < 4096 ? 4096 : sizeHint + 1;
  for (;;) {
    size_t at = file.size();
    file.resize(capacity);
    ssize_t n = readFully(fd, file.data() + at, capacity - at);
    if (n < 0)
      return readError();
    file.resize(at + static_cast<size_t>(n));
    if (file.size() < capacity)
      break; // The end of the file.
    capacity *= 2;
  }
  return parseBytes(file.data(), file.size(), out, &file);
}

/// A pipe or another stream: the preamble, the header, then the data the
/// header announces, in bounded chunks (a header that claims terabytes
/// cannot make us allocate them before they arrive); nothing is read past
/// the data but one byte, to refuse trailing bytes.
std::string readStream(int fd, moe::npy::Array &out) {
  unsigned char pre[12];
  ssize_t n = readFully(fd, pre, 8);
  if (n < 0)
    return readError();
  size_t have = static_cast<size_t>(n), start = 0, headerLen = 0;
  if (have == 8 && (pre[6] == 2 || pre[6] == 3)) { // The longer preamble.
    n = readFully(fd, pre + 8, 4);
    if (n < 0)
      return readError();
    have += static_cast<size_t>(n);
  } else if (have == 8) {
    n = readFully(fd, pre + 8, 2);
    if (n < 0)
      return readError();
    have += static_cast<size_t>(n);
  }
  if (std::string err = preamble(pre, have, start, headerLen); !err.empty())
    return err;
  std::string header(headerLen, '\0');
  n = readFully(fd, reinterpret_cast<unsigned char *>(&header[0]), headerLen);
  if (n < 0)
    return readError();
  if (static_cast<size_t>(n) != headerLen)
    return "truncated .npy header";
  size_t bytes;
  if (std::string err = parseHeader(header, out, bytes); !err.empty())
    return err;
  constexpr size_t kChunk = size_t(1) << 24;
  while (out.bytes.size() < bytes) {
    size_t at = out.bytes.size();
    size_t want = std::min(bytes - at, kChunk);
    out.bytes.resize(at + want);
    n = readFully(fd, out.bytes.data() + at, want);
    if (n < 0)
      return readError();
    out.bytes.resize(at + static_cast<size_t>(n));
    if (static_cast<size_t>(n) < want)
      return sizeMismatch(out.bytes.size(), bytes);
  }
  unsigned char extra;
  n = readFully(fd, &extra, 1);
  if (n != 0)
    return n < 0 ? readError() : "trailing bytes after the .npy data";
  return "";
}

std::string readFd(int fd, moe::npy::Array &out) {
  struct stat st;
  if (fstat(fd, &st) != 0)
    return std::string("cannot stat: ") + std::strerror(errno);
  if (S_ISDIR(st.st_mode))
    return "is a directory";
  try {
    if (S_ISREG(st.st_mode))
      return readRegular(fd,
                         st.st_size > 0 ? static_cast<size_t>(st.st_size) : 0,
                         out);
    return readStream(fd, out);
  } catch (const std::bad_alloc &) {
    return "out of memory";
  } catch (const std::length_error &) {
    return "out of memory";
  }
}

} // namespace

std::string moe::npy::parse(const unsigned char *data, size_t size,
                            Array &out) {
  std::string err = parseBytes(data, size, out);
  if (!err.empty())
    out = Array(); // Nothing half-parsed is left behind.
  return err;
}

std::string moe::npy::read(const std::string &path, Array &out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    out = Array();
    return "cannot open '" + path + "': " + std::strerror(errno);
  }
  std::string err = readFd(fd, out);
  ::close(fd);
  if (err.empty())
    return err;
  out = Array(); // Nothing half-read is left behind.
  return "'" + path + "': " + err;
}

namespace {

/// The header and data of an .npy file, or an error in `err`.
std::string npyHeader(moe_dtype_t dtype, const std::vector<int64_t> &dims,
                      size_t &dataBytes, std::string &err) {
  const char *descr = nullptr;
  for (const Descr &d : kDescrs)
    if (d.dtype == dtype)
      descr = d.descr;
  if (!descr) {
    err = std::string("no .npy dtype for ") + moe_dtype_name(dtype);
    return "";
  }
  std::string shape = "(";
  size_t count = 1;
  for (size_t i = 0; i < dims.size(); ++i) {
    shape += std::to_string(dims[i]) + (dims.size() == 1 || i + 1 < dims.size()
                                            ? ","
                                            : "");
    count *= static_cast<size_t>(dims[i]);
  }
  shape += ")";
  dataBytes = count * moe_dtype_size(dtype);
  std::string header = std::string("{'descr': '") + descr +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::string out = "\x93NUMPY\x01";
  out.push_back('\0');
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  return out + header;
}

using moe::detail::writeAll;

} // namespace

std::string moe::npy::fileNameFor(const std::string &name) {
  static const char kHex[] = "0123456789ABCDEF";
  if (name.empty())
    return "%.npy";
  std::string out;
  for (size_t i = 0; i < name.size(); ++i) {
    auto c = static_cast<unsigned char>(name[i]);
    bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                (c >= '0' && c <= '9') || c == '_' || c == '-' ||
                (c == '.' && i > 0);
    if (keep) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  if (out.size() > 200) {
    size_t cut = 183;
    // Not inside a %XX.
    if (out[cut - 1] == '%')
      cut -= 1;
    else if (out[cut - 2] == '%')
      cut -= 2;
    uint64_t h = moe::artifact::fnv1a(name.data(), name.size());
    out.resize(cut);
    out.push_back('~');
    for (int shift = 60; shift >= 0; shift -= 4)
      out.push_back(kHex[(h >> shift) & 15]);
  }
  return out + ".npy";
}

std::string moe::npy::writeAt(int dirFd, const std::string &fileName,
                              moe_dtype_t dtype,
                              const std::vector<int64_t> &dims,
                              const void *data) {
  if (fileName.empty() || fileName == "." || fileName == ".." ||
      fileName.find('/') != std::string::npos ||
      fileName.find('\0') != std::string::npos)
    return "'" + shown(fileName) + "' is not a plain file name";
  std::string err;
  size_t bytes = 0;
  std::string head = npyHeader(dtype, dims, bytes, err);
  if (!err.empty())
    return err;
  // A fresh temporary name (a leading '.', which fileNameFor never gives).
  static std::atomic<unsigned> counter{0};
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; fd < 0 && attempt < 100; ++attempt) {
    tmp = "." + fileName.substr(0, 200) + "." + std::to_string(getpid()) +
          "." + std::to_string(counter++) + ".tmp";
    fd = ::openat(dirFd, tmp.c_str(),
                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST)
      break;
  }
  if (fd < 0)
    return "cannot create a file for '" + fileName +
           "': " + std::strerror(errno);
  // errno is saved right after the call that failed: close, unlinkat and
  // the like may change it.
  int savedErrno = 0;
  if (!writeAll(fd, head.data(), head.size()) || !writeAll(fd, data, bytes))
    savedErrno = errno;
  if (::close(fd) != 0 && !savedErrno)
    savedErrno = errno;
  if (!savedErrno &&
      ::renameat(dirFd, tmp.c_str(), dirFd, fileName.c_str()) == 0)
    return "";
  if (!savedErrno)
    savedErrno = errno;
  ::unlinkat(dirFd, tmp.c_str(), 0);
  return "cannot write '" + moe::printable(fileName, 256) +
         "': " + std::strerror(savedErrno);
}

//===- npy.cpp - NumPy .npy files ------------------------------------------===//

#include "moe/npy.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

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

/// The value of `'key': ` in a header dict, up to the next top-level comma.
bool field(const std::string &header, const std::string &key,
           std::string &value) {
  size_t at = header.find("'" + key + "'");
  if (at == std::string::npos)
    return false;
  at = header.find(':', at);
  if (at == std::string::npos)
    return false;
  ++at;
  while (at < header.size() && header[at] == ' ')
    ++at;
  size_t end = at;
  int depth = 0;
  for (; end < header.size(); ++end) {
    char c = header[end];
    if (c == '(')
      ++depth;
    else if (c == ')')
      --depth;
    else if ((c == ',' || c == '}') && depth == 0)
      break;
  }
  value = header.substr(at, end - at);
  return true;
}

} // namespace

std::string moe::npy::parse(const unsigned char *data, size_t size,
                            Array &out) {
  if (size < 10 || std::memcmp(data, "\x93NUMPY", 6) != 0)
    return "not a .npy file (bad magic)";
  unsigned major = data[6];
  size_t headerLen, start;
  if (major == 1) {
    headerLen = data[8] | (data[9] << 8);
    start = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12)
      return "truncated .npy header";
    headerLen = data[8] | (data[9] << 8) | (data[10] << 16) |
                (size_t(data[11]) << 24);
    start = 12;
  } else {
    return "unsupported .npy version " + std::to_string(major);
  }
  if (start + headerLen > size)
    return "truncated .npy header";
  std::string header(reinterpret_cast<const char *>(data + start), headerLen);
  std::string descr, order, shape;
  if (!field(header, "descr", descr) || !field(header, "fortran_order", order) ||
      !field(header, "shape", shape))
    return "malformed .npy header";
  if (order.find("True") != std::string::npos)
    return "Fortran-order arrays are not supported";
  bool known = false;
  for (const Descr &d : kDescrs)
    if (descr.find(d.descr) != std::string::npos) {
      out.dtype = d.dtype;
      known = true;
    }
  if (!known)
    return "unsupported dtype " + descr;
  out.dims.clear();
  std::string inner = shape.substr(shape.find('(') + 1);
  std::stringstream ss(inner);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t b = item.find_first_of("0123456789");
    if (b == std::string::npos)
      continue;
    long long v = std::strtoll(item.c_str() + b, nullptr, 10);
    if (v < 0)
      return "negative dimension in .npy shape";
    out.dims.push_back(v);
  }
  size_t count = 1;
  for (int64_t d : out.dims) {
    if (d != 0 && count > SIZE_MAX / static_cast<size_t>(d))
      return "the .npy shape overflows";
    count *= static_cast<size_t>(d);
  }
  size_t bytes = count * moe_dtype_size(out.dtype);
  size_t offset = start + headerLen;
  if (size - offset < bytes)
    return "truncated .npy data: " + std::to_string(size - offset) +
           " bytes, the shape needs " + std::to_string(bytes);
  out.bytes.assign(data + offset, data + offset + bytes);
  return "";
}

std::string moe::npy::read(const std::string &path, Array &out) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return "cannot open '" + path + "'";
  std::vector<unsigned char> data((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
  std::string err = parse(data.data(), data.size(), out);
  return err.empty() ? err : "'" + path + "': " + err;
}

std::string moe::npy::write(const std::string &path, moe_dtype_t dtype,
                            const std::vector<int64_t> &dims,
                            const void *data) {
  const char *descr = nullptr;
  for (const Descr &d : kDescrs)
    if (d.dtype == dtype)
      descr = d.descr;
  if (!descr)
    return std::string("no .npy dtype for ") + moe_dtype_name(dtype);
  std::string shape = "(";
  for (size_t i = 0; i < dims.size(); ++i)
    shape += std::to_string(dims[i]) + (dims.size() == 1 || i + 1 < dims.size()
                                            ? ","
                                            : "");
  shape += ")";
  std::string header = std::string("{'descr': '") + descr +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  size_t count = 1;
  for (int64_t d : dims)
    count *= static_cast<size_t>(d);
  std::ofstream out(path, std::ios::binary);
  if (!out)
    return "cannot write '" + path + "'";
  out.write("\x93NUMPY\x01\x00", 8);
  unsigned char len[2] = {static_cast<unsigned char>(header.size() & 0xff),
                          static_cast<unsigned char>(header.size() >> 8)};
  out.write(reinterpret_cast<const char *>(len), 2);
  out << header;
  out.write(static_cast<const char *>(data),
            static_cast<std::streamsize>(count * moe_dtype_size(dtype)));
  return out ? "" : "write error on '" + path + "'";
}

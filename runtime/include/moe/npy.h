//===- npy.h - NumPy .npy files for the runtime's tools ---------*- C++ -*-===//
//
// Version 1.0 and 2.0 headers, C order, little-endian dtypes f4, f8, f2,
// i8, i4, i2, i1, u8, u4, u2, u1 and b1. Errors are returned as strings ("" on success).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_NPY_H
#define MOE_NPY_H

#include "moe_runtime.h"

#include <string>
#include <vector>

namespace moe::npy {

struct Array {
  moe_dtype_t dtype = MOE_DTYPE_F32;
  std::vector<int64_t> dims;
  std::vector<unsigned char> bytes;
};

/// Reads `path` into `out`; returns "" or an error message naming the file.
std::string read(const std::string &path, Array &out);
/// Parses an in-memory .npy file.
std::string parse(const unsigned char *data, size_t size, Array &out);
/// Writes a C-order array; returns "" or an error message.
std::string write(const std::string &path, moe_dtype_t dtype,
                  const std::vector<int64_t> &dims, const void *data);

} // namespace moe::npy

#endif // MOE_NPY_H

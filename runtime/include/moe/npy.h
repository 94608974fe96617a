//===- npy.h - NumPy .npy files for the runtime's tools ---------*- C++ -*-===//
//
// Version 1.0, 2.0 and 3.0 headers, C order, little-endian dtypes f4, f8,
// f2, i8, i4, i2, i1, u8, u4, u2, u1 and b1. Errors are returned as strings
// ("" on success).
//
// Reading is strict: the header must be the Python dict literal NumPy
// writes, {'descr': ..., 'fortran_order': ..., 'shape': (...), } with each
// key exactly once (either quote, any order, spaces between tokens, a
// trailing comma or not), padded with spaces and ended by '\n'. The shape is
// a tuple of decimal integers without sign ("(3,)" for one dim, "()" for a
// scalar); its element count must not overflow, and the data must be
// exactly count * itemsize bytes: neither truncated nor followed by more.
// Big-endian, Fortran-order and structured arrays are refused.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_NPY_H
#define MOE_NPY_H

#include "moe_runtime.h"

#include <string>
#include <vector>

namespace moe::npy {

/// Headers longer than this are refused (NumPy itself reads at most 10000
/// bytes by default).
constexpr size_t kMaxHeaderLength = 1 << 20;

struct Array {
  moe_dtype_t dtype = MOE_DTYPE_F32;
  std::vector<int64_t> dims;
  std::vector<unsigned char> bytes;
};

/// Reads `path` into `out`; returns "" or an error message naming the file.
/// A regular file is read whole (to its end, whatever fstat said its size
/// was), then parsed; a pipe's data is read in bounded chunks as the header
/// announces it, so a header claiming more than arrives allocates no more
/// than arrives (plus one chunk). On error `out` is left empty.
std::string read(const std::string &path, Array &out);
/// Parses an in-memory .npy file. On error `out` is left empty.
std::string parse(const unsigned char *data, size_t size, Array &out);

/// The file name moe-run gives the tensor `name` in an output directory:
/// "<encoded>.npy". The encoding keeps the bytes [A-Za-z0-9_.-] (but a
/// leading '.') and writes every other byte as %XX (two upper-case hex
/// digits), '%' included, so that distinct names give distinct files and
/// no name can leave the directory; the empty name is "%". An encoding
/// longer than 200 bytes is cut to at most its first 183 bytes (never
/// inside a %XX) followed by '~' and 16 hex digits of the name's FNV-1a 64
/// hash ('~' is otherwise always encoded), so that file names stay under
/// 255 bytes; two long names clash only if their hashes do.
std::string fileNameFor(const std::string &name);

/// Writes the array as `fileName` (a single path component, e.g. from
/// fileNameFor) in the directory `dirFd`: into a new temporary file of the
/// directory (O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC), then renamed over
/// `fileName`. A symlink or hard link planted under that name is replaced,
/// never written through. Returns "" or an error message.
std::string writeAt(int dirFd, const std::string &fileName, moe_dtype_t dtype,
                    const std::vector<int64_t> &dims, const void *data);

} // namespace moe::npy

#endif // MOE_NPY_H

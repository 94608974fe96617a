//===- posix_io.h - the runtime's file descriptor helpers -------*- C++ -*-===//
//
// Internal to runtime/src (not installed, not part of the API).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_POSIX_IO_H
#define MOE_RUNTIME_POSIX_IO_H

#include <unistd.h>

#include <cerrno>
#include <cstddef>

namespace moe::detail {

/// Writes all `size` bytes of `data` to `fd`, retrying short writes and
/// EINTR. On failure returns false with errno set by the failing write, or
/// to EIO if write wrote nothing without an error.
inline bool writeAll(int fd, const void *data, size_t size) {
  const auto *p = static_cast<const unsigned char *>(data);
  while (size) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return false;
    if (n == 0) {
      errno = EIO;
      return false;
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

} // namespace moe::detail

#endif // MOE_RUNTIME_POSIX_IO_H

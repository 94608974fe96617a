//===- runtime_internal.h - the runtime's shared internals ------*- C++ -*-===//
//
// Internal to runtime/src (not installed, not part of the API): the
// definitions of the C API's status and tensor objects, which the C API
// (runtime.cpp), the executors (executor.cpp) and the host side of the code
// ABI (run.cpp) all make.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_INTERNAL_H
#define MOE_RUNTIME_INTERNAL_H

#include "moe_runtime.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

struct moe_status {
  moe_status_code_t code;
  std::string message;
};

namespace moe::detail {
/// Gives back an owned tensor's data of `size` bytes (its element count
/// times the element size), made by newTensor: freed, or kept for the next
/// tensor of the same size (keptBuffers in runtime.cpp).
void releaseTensorData(void *data, uint64_t size);
} // namespace moe::detail

/// A dense row-major tensor. Its data is 64-byte aligned and owned (given
/// back with it: moe::detail::releaseTensorData), or borrowed from the
/// caller (a view: moe_tensor_create_view).
struct moe_tensor {
  moe_dtype_t dtype = MOE_DTYPE_F32;
  std::vector<int64_t> dims;
  size_t count = 0;
  unsigned char *data = nullptr;
  bool owned = true;

  moe_tensor() = default;
  moe_tensor(const moe_tensor &) = delete;
  moe_tensor &operator=(const moe_tensor &) = delete;
  ~moe_tensor();
};

namespace moe::detail {

/// A new status, its message formatted as by printf and cut at 1023
/// bytes; outOfMemoryStatus() if even that cannot be allocated (never
/// NULL).
moe_status_t makeStatus(moe_status_code_t code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/// The static status makeStatus returns when it cannot allocate one
/// (never NULL, which would mean success); moe_status_release ignores it.
moe_status_t outOfMemoryStatus();

/// The element count of `dims[0, rank)` into `count`; false on a negative
/// dim, or when the count or its size in bytes (`elementSize` each)
/// overflows size_t.
bool elementCount(const int64_t *dims, size_t rank, size_t elementSize,
                  size_t &count);

/// A new owned tensor of `count` elements (the product of `dims`, checked
/// by the caller), its data 64-byte aligned and left uninitialised (a
/// buffer kept from a released tensor of the same size, when there is
/// one: its old values); null when memory cannot be had. Never throws.
moe_tensor *newTensor(moe_dtype_t dtype, const int64_t *dims, size_t rank,
                      size_t count);

/// `size` bytes (rounded up to 64, at least 64) aligned to 64 bytes, or
/// null; released with std::free.
void *alignedAlloc(uint64_t size);

/// A session was created / released: while none is live, released
/// tensors' buffers are freed, not kept, and the last session's release
/// frees the kept ones.
void keptBuffersSessionOpened();
void keptBuffersSessionClosed();

/// Whether the environment variable MOE_RUNTIME_POISON is set to anything
/// but "" or "0" (read once). Fresh outputs and workspace segments are then
/// filled with 0xFF bytes (NaN as floats), so that code which reads memory
/// it never wrote gives visibly wrong answers in tests instead of the zeros
/// of fresh pages. A debugging aid: it costs a pass over each new buffer.
bool poisonFreshMemory();

} // namespace moe::detail

#endif // MOE_RUNTIME_INTERNAL_H

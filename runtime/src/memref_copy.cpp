//===- memref_copy.cpp - the C symbols compiled code expects ---------------===//
//
// Code lowered by moe-lower-to-llvm calls `memrefCopy` for memref.copy of
// non-contiguous buffers (MLIR's finalize-memref-to-llvm convention). The
// runtime provides it so that loading a model needs no LLVM library.
//
//===----------------------------------------------------------------------===//

#include <cstdint>
#include <cstring>
#include <vector>

namespace {
struct UnrankedMemRef {
  int64_t rank;
  void *descriptor;
};
/// View of a ranked descriptor: base, data, offset, sizes[rank], strides[rank].
struct Strided {
  char *data;
  int64_t offset;
  const int64_t *sizes;
  const int64_t *strides;
};
Strided view(const UnrankedMemRef &m) {
  auto *words = static_cast<int64_t *>(m.descriptor);
  Strided s;
  std::memcpy(&s.data, &words[1], sizeof(char *));
  s.offset = words[2];
  s.sizes = &words[3];
  s.strides = &words[3 + m.rank];
  return s;
}
} // namespace

extern "C" __attribute__((visibility("default"))) void
memrefCopy(int64_t elemSize, UnrankedMemRef *src, UnrankedMemRef *dst) {
  int64_t rank = src->rank;
  Strided s = view(*src), d = view(*dst);
  int64_t count = 1;
  for (int64_t i = 0; i < rank; ++i)
    count *= s.sizes[i];
  if (count == 0)
    return;
  std::vector<int64_t> index(rank, 0);
  for (int64_t n = 0; n < count; ++n) {
    int64_t so = s.offset, dof = d.offset;
    for (int64_t i = 0; i < rank; ++i) {
      so += index[i] * s.strides[i];
      dof += index[i] * d.strides[i];
    }
    std::memcpy(d.data + dof * elemSize, s.data + so * elemSize, elemSize);
    for (int64_t i = rank; i-- > 0;) {
      if (++index[i] < s.sizes[i])
        break;
      index[i] = 0;
    }
  }
}

//===- fuzz_npy.cpp - libFuzzer harness of the .npy parser -----------------===//
//
// Bytes -> moe::npy::parse. Built by runtime/'s MOE_BUILD_FUZZERS option;
// run by scripts/fuzz.sh. Besides crashes and sanitizer reports, checks
// what a successful parse promises: non-negative dims and data of exactly
// the shape's size.
//
//===----------------------------------------------------------------------===//

#include "moe/npy.h"

#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  moe::npy::Array array;
  std::string err = moe::npy::parse(data, size, array);
  if (!err.empty())
    return 0;
  size_t count = 1;
  for (int64_t d : array.dims) {
    if (d < 0)
      std::abort();
    count *= static_cast<size_t>(d);
  }
  if (array.bytes.size() != count * moe_dtype_size(array.dtype))
    std::abort();
  return 0;
}

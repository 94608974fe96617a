/* A hand-written "compiled model" for the runtime tests: y[n, j] = x[n, j] +
 * w[j] + bias with x: f32 [N, 4] (input), w: f32 [4] (weight). The entry
 * follows the artifact convention: packed[0] the result descriptor, then the
 * input, then the weight descriptors. */
#include <stdint.h>
#include <stdlib.h>

/* Exported by the runtime that loads the code. */
void moe_report_error(int32_t code) __attribute__((weak));

/* The digest of the signature this code belongs to (the contract in
 * runtime/include/moe/artifact_format.h). A placeholder here: the tests patch
 * these 8 bytes (found by value) with the digest of each artifact's
 * signature, as moe-compile writes the real one. Built once without it
 * (MOE_TEST_NO_DIGEST) to test that such code is refused. */
#ifndef MOE_TEST_NO_DIGEST
const volatile uint64_t moe_signature_digest = 0x5AFE5AFE5AFE5AFEull;
#endif

/* Knobs the tests patch after the marker: `bias` is added to every output
 * element (to tell the code of one artifact from another's), `mode` makes
 * the code return a bad result descriptor (1: a negative dim, 2: a static
 * dim other than the signature's, 3: dims whose element count overflows,
 * 4: a null data pointer, 5: an offset whose byte offset overflows int64),
 * an unusual but valid one (6: for 2 rows, the dense result through byte
 * offsets near -2^63 and 2^63 that wrap around the address space), or
 * report a data error (7: with a negative dim too). */
const volatile struct {
  char marker[16];
  float bias;
  int32_t mode;
} moe_test_knobs = {"MOE-TEST-KNOBS:", 0.0f, 0};

typedef struct {
  float *allocated, *aligned;
  int64_t offset, sizes[2], strides[2];
} Desc2;
typedef struct {
  float *allocated, *aligned;
  int64_t offset, sizes[1], strides[1];
} Desc1;

void moe_entry(void **packed) {
  Desc2 *y = (Desc2 *)packed[0];
  const Desc2 *x = (const Desc2 *)packed[1];
  const Desc1 *w = (const Desc1 *)packed[2];
  int64_t n = x->sizes[0], m = x->sizes[1];
  float bias = moe_test_knobs.bias;
  int32_t mode = moe_test_knobs.mode;
  float *out = (float *)malloc(sizeof(float) * (size_t)(n * m + 1));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j)
      out[i * m + j] = x->aligned[x->offset + i * x->strides[0] +
                                  j * x->strides[1]] +
                       w->aligned[w->offset + j * w->strides[0]] + bias;
  y->allocated = y->aligned = out;
  y->offset = 0;
  y->sizes[0] = n;
  y->sizes[1] = m;
  y->strides[0] = m;
  y->strides[1] = 1;
  if (mode == 1)
    y->sizes[0] = -1;
  else if (mode == 2)
    y->sizes[1] = m + 1;
  else if (mode == 3)
    y->sizes[0] = (int64_t)1 << 62;
  else if (mode == 4)
    y->aligned = 0;
  else if (mode == 5)
    y->offset = (int64_t)1 << 62;
  else if (mode == 6 && n == 2 && m == 4) {
    /* Element (i, j) at byte offset 4 * (2^61 - 4 + i * (4 - 2^62) + j)
     * from `aligned`: 2^63 - 16 + 4j for row 0, -2^63 + 4j for row 1 (the
     * extremes int64 allows); modulo 2^64 these are out + 4 * (4i + j). */
    y->aligned = (float *)((uintptr_t)out + 16 + ((uintptr_t)1 << 63));
    y->offset = ((int64_t)1 << 61) - 4;
    y->strides[0] = 4 - ((int64_t)1 << 62);
    y->strides[1] = 1;
  } else if (mode == 7) {
    if (moe_report_error)
      moe_report_error(2);
    y->sizes[0] = -1;
  }
}

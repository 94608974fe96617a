/* A hand-written "compiled model" for the runtime tests: y[n, j] = x[n, j] +
 * w[j] with x: f32 [N, 4] (input), w: f32 [4] (weight). The entry follows
 * the artifact convention: packed[0] the result descriptor, then the input,
 * then the weight descriptors. */
#include <stdint.h>
#include <stdlib.h>

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
  float *out = (float *)malloc(sizeof(float) * (size_t)(n * m + 1));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j)
      out[i * m + j] = x->aligned[x->offset + i * x->strides[0] +
                                  j * x->strides[1]] +
                       w->aligned[w->offset + j * w->strides[0]];
  y->allocated = y->aligned = out;
  y->offset = 0;
  y->sizes[0] = n;
  y->sizes[1] = m;
  y->strides[0] = m;
  y->strides[1] = 1;
}

/* One core's f32 FMA peak: 12 independent chains of vector FMAs at the
 * widest width the compiler targets (-march=native), best of 5 runs.
 * Built and run by bench/grouped_matmul.py; prints "peak <GFLOP/s>". */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

#if defined(__AVX512F__)
typedef __m512 vec;
#define LANES 16
#define FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define SET1(x) _mm512_set1_ps(x)
#define SUM(v) _mm512_reduce_add_ps(v)
#elif defined(__FMA__)
typedef __m256 vec;
#define LANES 8
#define FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define SET1(x) _mm256_set1_ps(x)
static float SUM(__m256 v) {
  float f[8];
  _mm256_storeu_ps(f, v);
  return f[0] + f[1] + f[2] + f[3] + f[4] + f[5] + f[6] + f[7];
}
#else
#error "peak_fma.c needs FMA (x86-64-v3) or AVX-512"
#endif

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(void) {
  vec a[12];
  vec b = SET1(1.0000001f), c = SET1(1e-7f);
  for (int i = 0; i < 12; i++)
    a[i] = SET1((float)i);
  long iters = 20000000;
  double best = 0;
  for (int rep = 0; rep < 5; rep++) {
    double t = now();
    for (long i = 0; i < iters; i++) {
      for (int j = 0; j < 12; j++)
        a[j] = FMA(a[j], b, c);
      __asm__ volatile("" : "+x"(a[0]), "+x"(a[1]), "+x"(a[2]), "+x"(a[3]),
                       "+x"(a[4]), "+x"(a[5]), "+x"(a[6]), "+x"(a[7]),
                       "+x"(a[8]), "+x"(a[9]), "+x"(a[10]), "+x"(a[11]));
    }
    double g = iters * 12.0 * LANES * 2 / (now() - t) / 1e9;
    if (g > best)
      best = g;
  }
  float s = 0;
  for (int j = 0; j < 12; j++)
    s += SUM(a[j]);
  printf("peak %.1f GFLOP/s (%d-lane FMA; checksum %g)\n", best, LANES, s);
  return 0;
}

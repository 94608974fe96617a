/* Memory read bandwidth: T threads (argv[1], default 1) each sum their
 * share of a 1 GiB f32 buffer (far larger than any cache), with 8 vector
 * accumulators so that the loads, not the adds, limit it; best of 5 passes.
 * The buffer is advised for transparent huge pages, as the runtime's copy
 * of the weights is (docs/runtime.md), so that TLB misses do not lower
 * the bound. Built and run by bench/generation.py; prints
 * "read_gbps <GB/s>". */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define BYTES (1ul << 30)

typedef float vec __attribute__((vector_size(64)));

struct part {
  const vec *begin;
  size_t count;
  float sum;
};

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void *reader(void *arg) {
  struct part *p = arg;
  vec a[8] = {{0}};
  for (size_t i = 0; i + 8 <= p->count; i += 8)
    for (int j = 0; j < 8; ++j)
      a[j] += p->begin[i + j];
  vec s = a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
  float total = 0;
  for (int j = 0; j < 16; ++j)
    total += s[j];
  p->sum = total;
  return NULL;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  if (threads < 1 || threads > 64) {
    fprintf(stderr, "usage: read_bandwidth [threads 1..64]\n");
    return 2;
  }
  vec *data = aligned_alloc(2ul << 20, BYTES);
  if (!data) {
    fprintf(stderr, "read_bandwidth: out of memory\n");
    return 1;
  }
#ifdef MADV_HUGEPAGE
  madvise(data, BYTES, MADV_HUGEPAGE); /* a hint; 4 KB pages work too */
#endif
  memset(data, 1, BYTES); /* fault every page in before timing */
  size_t vecs = BYTES / sizeof(vec), share = vecs / threads / 8 * 8;
  double best = 0, checksum = 0;
  for (int pass = 0; pass < 5; ++pass) {
    pthread_t tid[64];
    struct part parts[64];
    double t0 = now();
    for (int t = 0; t < threads; ++t) {
      parts[t] = (struct part){data + t * share, share, 0};
      pthread_create(&tid[t], NULL, reader, &parts[t]);
    }
    for (int t = 0; t < threads; ++t) {
      pthread_join(tid[t], NULL);
      checksum += parts[t].sum;
    }
    double gbps = share * threads * sizeof(vec) / (now() - t0) / 1e9;
    if (gbps > best)
      best = gbps;
  }
  printf("read_gbps %.2f\n", best);
  /* The sums are used, so the loads cannot be dropped. */
  return checksum == 1234.5 ? 3 : 0;
}

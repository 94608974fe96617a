/* A hand-written "compiled model" for the runtime tests, on the code ABI of
 * runtime/include/moe/code_abi.h: y[n, j] = x[n, j] + w[j] + bias with
 * x: f32 [N, M] (the entry's first input; M is 4 in the tests' signatures),
 * w: f32 [4] (the first weight) and y: f32 [N, M] (the first output, a
 * dynamic one: requested with output_alloc). Rows are computed in a
 * parallel_for of grain 1 (1024 for many rows), so that several threads
 * really run.
 *
 * The entry is moe_entry_main; moe_entry_aux is a second entry (the same
 * with 1000 added) for signatures of several entries. */
#include "moe/code_abi.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* The digest of the signature this code belongs to (the contract in
 * runtime/include/moe/artifact_format.h). A placeholder here: the tests patch
 * these 8 bytes (found by value) with the digest of each artifact's
 * signature, as moe-compile writes the real one. Built once without it
 * (MOE_TEST_NO_DIGEST) to test that such code is refused. */
#ifndef MOE_TEST_NO_DIGEST
const volatile uint64_t moe_signature_digest = 0x5AFE5AFE5AFE5AFEull;
#endif

/* What the code does, besides y (the tests patch `mode`). */
enum {
  MODE_NORMAL = 0,
  MODE_WRONG_DIMS = 1,      /* output_alloc(y, [N, M + 1]) */
  MODE_TWICE = 2,           /* output_alloc(y) twice */
  MODE_NEVER = 3,           /* no output_alloc */
  MODE_NEGATIVE_DIMS = 4,   /* output_alloc(y, [-1, M]) */
  MODE_HUGE_DIMS = 5,       /* output_alloc(y, [2^40, M]) */
  MODE_WORKSPACE = 6,       /* temporaries from the workspace, grown */
  MODE_WORKER_ERROR = 7,    /* report_error(2) from a worker's chunk */
  MODE_MARK_WORKERS = 8,    /* y[n, M - 1] = 1 for rows a worker ran, else 0 */
  MODE_STATIC_OUTPUT = 9,   /* output 1, static f32 [4], = w + bias */
  MODE_ALLOC_IN_BODY = 10,  /* output_alloc inside a parallel_for body */
  MODE_HUGE_WORKSPACE = 11, /* workspace_grow(2^62 + 1) */
  MODE_OVERFLOW_DIMS = 12,  /* output_alloc(y, [2^24, 2^24, 2^24]) */
  MODE_BAD_INDEX = 13,      /* output_alloc(7, ...) */
  MODE_NESTED = 14,         /* each row a nested parallel_for over columns */
  MODE_GROW_IN_BODY = 15,   /* workspace_grow inside a parallel_for body */
  MODE_ERROR_FIRST = 16,    /* report_error(3), then output_alloc([-1, M]) */
  MODE_ALLOC_STATIC = 17,   /* output_alloc(1, ...) of a static output */
  MODE_ZERO_ERROR = 18,     /* report_error(0) */
};

/* Knobs the tests patch after the marker: `bias` is added to every output
 * element (to tell the code of one artifact from another's), `mode` is one
 * of the modes above. */
const volatile struct {
  char marker[16];
  float bias;
  int32_t mode;
} moe_test_knobs = {"MOE-TEST-KNOBS:", 0.0f, 0};

/* The closure of the parallel loops. */
typedef struct {
  moe_frame *frame;
  const float *x, *w;
  float *y;
  int64_t m;
  float bias;
  int32_t mode;
  pthread_t caller;
  atomic_int workerSeen;
} Rows;

/* Waits (at most 10 s) until a worker has run a chunk: the modes that
 * need one make the entering thread wait in its first chunk. */
static void waitForWorker(Rows *r) {
  struct timespec pause = {0, 100000};
  for (int i = 0; i < 100000 && !atomic_load(&r->workerSeen); ++i)
    nanosleep(&pause, 0);
}

static void columnsBody(void *closure, int64_t b, int64_t e);

typedef struct {
  Rows *rows;
  int64_t row;
} Row;

static void rowsBody(void *closure, int64_t b, int64_t e) {
  Rows *r = (Rows *)closure;
  int worker = !pthread_equal(pthread_self(), r->caller);
  if (worker)
    atomic_store(&r->workerSeen, 1);
  else if (r->mode == MODE_WORKER_ERROR || r->mode == MODE_MARK_WORKERS)
    waitForWorker(r);
  if (worker && r->mode == MODE_WORKER_ERROR)
    r->frame->host->report_error(r->frame, 2);
  if (r->mode == MODE_ALLOC_IN_BODY) {
    int64_t dims[2] = {1, r->m};
    r->frame->host->output_alloc(r->frame, 0, dims);
  }
  if (r->mode == MODE_GROW_IN_BODY)
    r->frame->host->workspace_grow(r->frame, 1 << 20);
  for (int64_t i = b; i < e; ++i) {
    if (r->mode == MODE_NESTED) {
      Row row = {r, i};
      r->frame->host->parallel_for(r->frame, 0, r->m, 1, columnsBody, &row);
      continue;
    }
    for (int64_t j = 0; j < r->m; ++j)
      r->y[i * r->m + j] = r->x[i * r->m + j] + r->w[j] + r->bias;
    if (r->mode == MODE_MARK_WORKERS && r->m > 0)
      r->y[i * r->m + r->m - 1] = worker ? 1.0f : 0.0f;
  }
}

static void columnsBody(void *closure, int64_t b, int64_t e) {
  Row *row = (Row *)closure;
  Rows *r = row->rows;
  for (int64_t j = b; j < e; ++j)
    r->y[row->row * r->m + j] =
        r->x[row->row * r->m + j] + r->w[j] + r->bias;
}

/* A workspace allocation as compiled code makes it (code_abi.h). */
static void *workspaceAlloc(moe_frame *f, uint64_t n) {
  uintptr_t c = ((uintptr_t)f->ws_cursor + 63) & ~(uintptr_t)63;
  if (c + n <= (uintptr_t)f->ws_end) {
    f->ws_cursor = (uint8_t *)(c + n);
    return (void *)c;
  }
  return f->host->workspace_grow(f, n);
}

/* y through workspace temporaries: t = x + w in a first buffer (more than
 * the signature's workspace), a pattern written and read back in a second,
 * the mark restored, the first buffer taken again (the same bytes), and
 * y = t + bias. Any surprise is reported as data error 3. */
static void throughWorkspace(moe_frame *f, Rows *r, int64_t n) {
  uint64_t bytes = (uint64_t)(n * r->m) * sizeof(float) + 1024;
  uint8_t *cursor = f->ws_cursor, *end = f->ws_end;
  uint64_t segment = f->ws_segment;
  float *t = (float *)workspaceAlloc(f, bytes);
  for (int64_t i = 0; i < n * r->m; ++i)
    t[i] = r->x[i] + r->w[i % r->m];
  unsigned char *pattern = (unsigned char *)workspaceAlloc(f, 8192);
  for (int k = 0; k < 8192; ++k)
    pattern[k] = (unsigned char)(k * 7);
  int bad = ((uintptr_t)t % 64) != 0 || ((uintptr_t)pattern % 64) != 0;
  for (int k = 0; k < 8192; ++k)
    bad |= pattern[k] != (unsigned char)(k * 7);
  f->ws_cursor = cursor;
  f->ws_end = end;
  f->ws_segment = segment;
  float *again = (float *)workspaceAlloc(f, bytes);
  bad |= again != t;
  for (int64_t i = 0; i < n * r->m; ++i)
    r->y[i] = again[i] + r->bias;
  if (bad)
    f->host->report_error(f, 3);
}

static void run(moe_frame *f, float extra) {
  const moe_host_api *host = f->host;
  int32_t mode = moe_test_knobs.mode;
  int64_t n = f->input_dims[0], m = f->input_dims[1];
  Rows r;
  memset(&r, 0, sizeof(r));
  r.frame = f;
  r.x = (const float *)f->inputs[0];
  r.w = (const float *)f->weights[0];
  r.m = m;
  r.bias = moe_test_knobs.bias + extra;
  r.mode = mode;
  r.caller = pthread_self();
  atomic_init(&r.workerSeen, 0);

  if (mode == MODE_ERROR_FIRST || mode == MODE_ZERO_ERROR)
    host->report_error(f, mode == MODE_ZERO_ERROR ? 0 : 3);
  if (mode == MODE_HUGE_WORKSPACE)
    workspaceAlloc(f, ((uint64_t)1 << 62) + 1);
  if (mode == MODE_STATIC_OUTPUT) {
    float *s = (float *)f->outputs[1];
    if (!s || ((uintptr_t)s % 64) != 0) {
      host->report_error(f, 3);
    } else {
      for (int j = 0; j < 4; ++j)
        s[j] = r.w[j] + r.bias;
    }
  }
  if (mode == MODE_ALLOC_STATIC) {
    int64_t dims[1] = {4};
    host->output_alloc(f, 1, dims);
  }
  if (mode == MODE_BAD_INDEX) {
    int64_t dims[2] = {n, m};
    host->output_alloc(f, 7, dims);
  }
  if (mode == MODE_NEVER || mode == MODE_ALLOC_IN_BODY) {
    r.y = 0; /* The body of MODE_ALLOC_IN_BODY is abandoned. */
    host->parallel_for(f, 0, mode == MODE_NEVER ? 0 : n, 1, rowsBody, &r);
    return;
  }

  int64_t dims[3] = {n, m, 0};
  if (mode == MODE_WRONG_DIMS)
    dims[1] = m + 1;
  else if (mode == MODE_NEGATIVE_DIMS || mode == MODE_ERROR_FIRST)
    dims[0] = -1;
  else if (mode == MODE_HUGE_DIMS)
    dims[0] = (int64_t)1 << 40;
  else if (mode == MODE_OVERFLOW_DIMS)
    dims[0] = dims[1] = dims[2] = (int64_t)1 << 24;
  r.y = (float *)host->output_alloc(f, 0, dims);
  if (mode == MODE_TWICE)
    host->output_alloc(f, 0, dims);
  if (((uintptr_t)r.y % 64) != 0)
    host->report_error(f, 3);
  if (mode == MODE_WORKSPACE) {
    throughWorkspace(f, &r, n);
    return;
  }
  host->parallel_for(f, 0, n, n <= 1024 ? 1 : 1024, rowsBody, &r);
}

void moe_entry_main(moe_frame *frame) { run(frame, 0.0f); }

void moe_entry_aux(moe_frame *frame) { run(frame, 1000.0f); }

/* A toy language model for the generation context's tests (entries
 * "prefill" and "decode" of moe-compile --generation's shape): tokens
 * i64 [B, T]; caches past_key, past_value f32 [2, B, C, 2] (two layers,
 * room for C positions, rows of 2) of which the first past_length (i64 [])
 * are read; new_key[l, b, t, c] = tokens[b, t] + l + 3 c, new_value[l, b,
 * t, c] = 10 tokens[b, t] + l + 3 c (outputs 1 and 2, [2, B, T, 2]);
 * logits (output 0) [B, T, 2]: logits[b, t, 0] is the sum over every
 * position i the token sees (the P cached ones and the new ones up to t),
 * every layer l and component c of (l + 1)(i + 1)(c + 1)(key + value / 2),
 * so that a row in the wrong layer, position or component changes it;
 * logits[b, t, 1] the absolute position P + t. The prefill returns the
 * last position only ([B, 1, 2]). */
static float toyTerm(int64_t l, int64_t i, int64_t c, float key, float value) {
  return (float)((l + 1) * (i + 1) * (c + 1)) * (key + 0.5f * value);
}

static void generate(moe_frame *f, int cached) {
  const moe_host_api *host = f->host;
  const int64_t *d = f->input_dims;
  int64_t b = d[0], t = d[1], p = 0, cap = 0;
  const int64_t *tokens = (const int64_t *)f->inputs[0];
  const float *pk = 0, *pv = 0;
  if (cached) {
    /* past_key [2, B, C, 2], past_value likewise, past_length []. */
    cap = d[4];
    p = *(const int64_t *)f->inputs[3];
    if (d[2] != 2 || d[3] != b || d[5] != 2 || d[6] != 2 || d[7] != b ||
        d[8] != cap || d[9] != 2 || p < 0 || p > cap) {
      host->report_error(f, 3);
      return;
    }
    pk = (const float *)f->inputs[1];
    pv = (const float *)f->inputs[2];
  }
  int64_t rows[4] = {2, b, t, 2};
  float *nk = (float *)host->output_alloc(f, 1, rows);
  float *nv = (float *)host->output_alloc(f, 2, rows);
  int64_t shown = cached ? t : 1;
  int64_t ldims[3] = {b, shown, 2};
  float *logits = (float *)host->output_alloc(f, 0, ldims);
  if (!nk || !nv || !logits)
    return;
  for (int64_t l = 0; l < 2; ++l)
    for (int64_t j = 0; j < b; ++j)
      for (int64_t i = 0; i < t; ++i)
        for (int64_t c = 0; c < 2; ++c) {
          float token = (float)tokens[j * t + i];
          nk[((l * b + j) * t + i) * 2 + c] = token + (float)(l + 3 * c);
          nv[((l * b + j) * t + i) * 2 + c] =
              10.0f * token + (float)(l + 3 * c);
        }
  for (int64_t j = 0; j < b; ++j) {
    float sum = 0;
    for (int64_t l = 0; l < 2; ++l)
      for (int64_t i = 0; i < p; ++i)
        for (int64_t c = 0; c < 2; ++c) {
          int64_t at = ((l * b + j) * cap + i) * 2 + c;
          sum += toyTerm(l, i, c, pk[at], pv[at]);
        }
    for (int64_t i = 0; i < t; ++i) {
      for (int64_t l = 0; l < 2; ++l)
        for (int64_t c = 0; c < 2; ++c) {
          int64_t at = ((l * b + j) * t + i) * 2 + c;
          sum += toyTerm(l, p + i, c, nk[at], nv[at]);
        }
      int64_t at = cached ? i : 0;
      if (cached || i == t - 1) {
        logits[(j * shown + at) * 2] = sum;
        logits[(j * shown + at) * 2 + 1] = (float)(p + i);
      }
    }
  }
}

void moe_entry_gen_prefill(moe_frame *frame) { generate(frame, 0); }

void moe_entry_gen_decode(moe_frame *frame) { generate(frame, 1); }

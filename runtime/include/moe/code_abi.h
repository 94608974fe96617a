/*===- code_abi.h - the contract between compiled code and the runtime -*- C
 *-*-===*
 *
 * Code ABI version 2: how the runtime calls an entry of an artifact's code
 * section, and what the code may call back. Shared by the compiler (which
 * emits code against these offsets: lib/Transforms/HostAbi.cpp) and the
 * runtime (runtime/src/run.cpp); plain C, so that a second runtime or a
 * hand-written "compiled model" (runtime/test/test_model.c) can use it.
 * docs/runtime.md describes the protocol in prose.
 *
 * An entry is a function `void <symbol>(moe_frame *frame)`, exported with
 * default visibility (every other symbol of the code is hidden or local).
 * Its only undefined symbols are libc and libm functions.
 *
 * Inputs, weights and outputs are dense row-major buffers: a data pointer
 * plus dims (the signature's static dims, and `input_dims` for the dynamic
 * ones). Inputs and weights are read only.
 *
 * Outputs. An output whose dims are all static in the signature is
 * preallocated by the runtime: frame->outputs[i] points to its buffer
 * (64-byte aligned) and the code writes it. An output with a dynamic dim
 * has frame->outputs[i] == NULL; once the code knows its dims it calls
 * host->output_alloc(frame, i, dims) exactly once, with all `rank` dims
 * (static ones included), and writes the buffer it gets. The runtime
 * checks the dims against the signature; a run that requests an output
 * twice, or never, fails with MOE_INTERNAL.
 *
 * Workspace. Temporaries come from one arena per run, a stack of segments:
 * [ws_cursor, ws_end) is the free part of the current segment, whose index
 * is ws_segment. To allocate n bytes the code rounds ws_cursor up to 64;
 * if that plus n fits below ws_end it takes the bytes and advances
 * ws_cursor, otherwise it calls host->workspace_grow(frame, n), which makes
 * the next segment current (big enough for n), sets ws_cursor, ws_end and
 * ws_segment past the n bytes and returns them (64-byte aligned). To free
 * everything allocated since a point, the code saves (ws_cursor, ws_end,
 * ws_segment) and later writes the three words back (a stack discipline:
 * segments past ws_segment are free for reuse). The signature gives the
 * bytes one run needs when that is known at compile time, and says whether
 * the code may grow the arena; the runtime keeps each arena for later
 * runs, so steady-state runs allocate nothing.
 *
 * Calls that cannot return on failure. workspace_grow and output_alloc
 * never return NULL: when memory cannot be had, or output_alloc's dims are
 * impossible (negative, overflowing), the runtime abandons the call
 * (longjmp back to where it entered the code) and the run fails. They may
 * be called only from the thread that entered the code, never inside a
 * parallel_for body (there, the runtime abandons the body's chunk instead,
 * and the run fails with MOE_INTERNAL). The code holds no resources of its
 * own, so abandoning it leaks nothing.
 *
 * Errors. report_error(frame, code) records a data error (codes: 1 an
 * expert id outside [0, E), 2 an index out of range, 3 a dynamic size the
 * model cannot take, 4 a past_length outside the caches, 5 an integer
 * division by zero; include/moe/Utils/RuntimeErrors.h) from any thread,
 * including parallel_for bodies; the smallest code reported in the run
 * wins (so the status does not depend on which thread reported first).
 * The code then continues on safe values, and the run fails with
 * MOE_INVALID_ARGUMENT. The outputs of a failed run are discarded.
 *
 * Threads. parallel_for(frame, begin, end, grain, body, closure) calls
 * body(closure, b, e) for the chunks [b, e) of [begin, end) that start at
 * begin + k * grain (grain >= 1; the last chunk may be shorter), on the
 * session's thread pool and the calling thread, and returns when all are
 * done. The chunks depend only on (begin, end, grain), never on the number
 * of threads, so code whose chunks write disjoint data gives the same bits
 * for any thread count. A parallel_for called from a body runs its chunks
 * on the calling thread, in order. The ws_* words belong to the thread that
 * entered the code: a body must not allocate from the workspace. (It may
 * bump-allocate in memory the entering thread allocated for it before the
 * parallel_for: moe-lower-to-host-abi gives each slot of a parallel loop's
 * iterations such a region, with workspace words of its own.)
 *
 *===----------------------------------------------------------------------===*/

#ifndef MOE_CODE_ABI_H
#define MOE_CODE_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MOE_CODE_ABI_VERSION 2
/* Alignment of workspace allocations, output buffers and segments. */
#define MOE_WORKSPACE_ALIGNMENT 64

typedef struct moe_frame moe_frame;

typedef void (*moe_parallel_body)(void *closure, int64_t begin, int64_t end);

/* Functions the runtime offers the code. Members are only ever appended;
 * `struct_size` tells the code which exist. */
typedef struct moe_host_api {
  uint32_t abi_version; /* MOE_CODE_ABI_VERSION */
  uint32_t struct_size; /* sizeof(moe_host_api) */
  void (*report_error)(moe_frame *frame, int32_t code);
  void (*parallel_for)(moe_frame *frame, int64_t begin, int64_t end,
                       int64_t grain, moe_parallel_body body, void *closure);
  void *(*workspace_grow)(moe_frame *frame, uint64_t bytes);
  void *(*output_alloc)(moe_frame *frame, uint64_t index,
                        const int64_t *dims);
  /* Reserved for device calls (buffers, streams, kernel launches). */
  void *reserved[12];
} moe_host_api;

/* The one argument of an entry. Offsets are fixed (64-bit targets only). */
struct moe_frame {
  const moe_host_api *host;    /*  0 */
  void *run;                   /*  8: the runtime's; the code never reads it */
  uint8_t *ws_cursor;          /* 16: workspace (see above) */
  uint8_t *ws_end;             /* 24 */
  uint64_t ws_segment;         /* 32 */
  void *const *inputs;         /* 40: one data pointer per input */
  const int64_t *input_dims;   /* 48: all inputs' dims, in order */
  void *const *weights;        /* 56: one data pointer per weight record */
  void *const *outputs;        /* 64: per output: its buffer, or NULL */
  void *const *state;          /* 72: per state tensor (none yet) */
  uint64_t reserved[6];        /* 80 */
};

#define MOE_FRAME_HOST 0
#define MOE_FRAME_WS_CURSOR 16
#define MOE_FRAME_WS_END 24
#define MOE_FRAME_WS_SEGMENT 32
#define MOE_FRAME_INPUTS 40
#define MOE_FRAME_INPUT_DIMS 48
#define MOE_FRAME_WEIGHTS 56
#define MOE_FRAME_OUTPUTS 64
#define MOE_FRAME_STATE 72
/* Indices of the host functions, in pointer-sized slots from the start
 * of moe_host_api (slot 0 holds the two uint32_t fields). */
#define MOE_HOST_REPORT_ERROR 1
#define MOE_HOST_PARALLEL_FOR 2
#define MOE_HOST_WORKSPACE_GROW 3
#define MOE_HOST_OUTPUT_ALLOC 4

#ifdef __cplusplus
} /* extern "C" */
static_assert(sizeof(void *) == 8, "the code ABI is defined for 64-bit targets");
static_assert(offsetof(moe_frame, ws_cursor) == MOE_FRAME_WS_CURSOR, "abi");
static_assert(offsetof(moe_frame, ws_end) == MOE_FRAME_WS_END, "abi");
static_assert(offsetof(moe_frame, ws_segment) == MOE_FRAME_WS_SEGMENT, "abi");
static_assert(offsetof(moe_frame, inputs) == MOE_FRAME_INPUTS, "abi");
static_assert(offsetof(moe_frame, input_dims) == MOE_FRAME_INPUT_DIMS, "abi");
static_assert(offsetof(moe_frame, weights) == MOE_FRAME_WEIGHTS, "abi");
static_assert(offsetof(moe_frame, outputs) == MOE_FRAME_OUTPUTS, "abi");
static_assert(offsetof(moe_frame, state) == MOE_FRAME_STATE, "abi");
static_assert(offsetof(moe_host_api, report_error) ==
                  8 * MOE_HOST_REPORT_ERROR, "abi");
static_assert(offsetof(moe_host_api, parallel_for) ==
                  8 * MOE_HOST_PARALLEL_FOR, "abi");
static_assert(offsetof(moe_host_api, workspace_grow) ==
                  8 * MOE_HOST_WORKSPACE_GROW, "abi");
static_assert(offsetof(moe_host_api, output_alloc) ==
                  8 * MOE_HOST_OUTPUT_ALLOC, "abi");
#endif

#endif /* MOE_CODE_ABI_H */

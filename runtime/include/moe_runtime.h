/*===- moe_runtime.h - the moe-mlir runtime C API ---------------*- C -*-===*
 *
 * Loads artifacts produced by moe-compile (.moeb) and runs them. Builds
 * without MLIR or LLVM. Every function that can fail returns a moe_status_t:
 * NULL on success, otherwise a status object the caller owns and releases
 * with moe_status_release. No function aborts, throws or crashes on bad
 * input: corrupt artifacts, wrong names, dtypes or shapes are statuses.
 *
 * Ownership is stated on every declaration: "caller owns" means the caller
 * must call the matching *_release; "borrowed" means valid as long as the
 * owning object lives.
 *
 * Threads: an instance and a session may be used from several threads at
 * once; moe_session_run is reentrant. Tensors are not synchronised: do not
 * mutate one tensor from two threads. Each session has a thread pool for
 * the code's parallel loops (moe_session_options_set_threads; default: the
 * machine's cores); results are bitwise identical for any thread count.
 *
 *===----------------------------------------------------------------------===*/

#ifndef MOE_RUNTIME_H
#define MOE_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*--- Status ---------------------------------------------------------------*/

typedef enum moe_status_code_t {
  MOE_OK = 0,
  MOE_INVALID_ARGUMENT = 1, /* a null pointer, a wrong name, dtype or shape */
  MOE_NOT_FOUND = 2,        /* a missing file, or entry */
  MOE_DATA_LOSS = 3,        /* a truncated or corrupt artifact */
  MOE_UNIMPLEMENTED = 4,    /* an artifact version or section not supported */
  MOE_INTERNAL = 5,         /* an error inside the runtime or the code */
  MOE_RESOURCE_EXHAUSTED = 6
} moe_status_code_t;

typedef struct moe_status moe_status;
/* NULL means success. */
typedef moe_status *moe_status_t;

/* The code of `status` (MOE_OK for NULL). */
moe_status_code_t moe_status_code(const moe_status *status);
/* The message of `status` ("" for NULL); borrowed from `status`. */
const char *moe_status_message(const moe_status *status);
/* Releases a status (NULL is a no-op). */
void moe_status_release(moe_status *status);

/*--- Element types and tensors --------------------------------------------*/

typedef enum moe_dtype_t {
  MOE_DTYPE_F32 = 0,
  MOE_DTYPE_F64 = 1,
  MOE_DTYPE_F16 = 2,
  MOE_DTYPE_BF16 = 3,
  MOE_DTYPE_I64 = 4,
  MOE_DTYPE_I32 = 5,
  MOE_DTYPE_I8 = 6,
  MOE_DTYPE_U8 = 7,
  MOE_DTYPE_BOOL = 8,
  MOE_DTYPE_I16 = 9,
  MOE_DTYPE_U16 = 10,
  MOE_DTYPE_U32 = 11,
  MOE_DTYPE_U64 = 12
} moe_dtype_t;

/* Size in bytes of one element (0 for an unknown dtype). */
size_t moe_dtype_size(moe_dtype_t dtype);
/* The dtype's name ("f32", ...; "?" if unknown); static storage. */
const char *moe_dtype_name(moe_dtype_t dtype);

/* A dense row-major host tensor. */
typedef struct moe_tensor moe_tensor;

/* Creates a tensor of `rank` dims `dims[0..rank)`, copying `data` (which may
 * be NULL: zero-filled). On success the caller owns *out. Fails on negative
 * dims, an unknown dtype or a size overflow. */
moe_status_t moe_tensor_create(moe_dtype_t dtype, size_t rank,
                               const int64_t *dims, const void *data,
                               moe_tensor **out);
/* Creates a tensor that borrows `data` (not copied; must stay valid and
 * unchanged while the tensor is used, and be aligned for the dtype): the
 * zero-copy way to pass an input. Fails as moe_tensor_create does, and on
 * a NULL `data` with elements. On success the caller owns *out (releasing
 * it leaves `data` alone). Writing through moe_tensor_data of a view
 * writes the caller's memory. */
moe_status_t moe_tensor_create_view(moe_dtype_t dtype, size_t rank,
                                    const int64_t *dims, void *data,
                                    moe_tensor **out);
/* Releases a tensor (NULL is a no-op). While a session is live, the data
 * of a tensor of at least 1 MB that the runtime allocated may be kept for
 * the next tensor of the same size (at most 8 buffers and
 * MOE_RUNTIME_KEEP_BYTES bytes, default 256 MB, 0: none) until the last
 * session is released (docs/runtime.md, "Kept buffers"). */
void moe_tensor_release(moe_tensor *tensor);
moe_dtype_t moe_tensor_dtype(const moe_tensor *tensor);
size_t moe_tensor_rank(const moe_tensor *tensor);
/* Dims, borrowed from `tensor` (rank entries). */
const int64_t *moe_tensor_dims(const moe_tensor *tensor);
size_t moe_tensor_element_count(const moe_tensor *tensor);
size_t moe_tensor_byte_size(const moe_tensor *tensor);
/* The elements, borrowed from `tensor`; writable. */
void *moe_tensor_data(moe_tensor *tensor);

/*--- Instance and session ---------------------------------------------------*/

/* Process-level state (executors; a CUDA executor will live here). */
typedef struct moe_instance moe_instance;
/* One loaded artifact. */
typedef struct moe_session moe_session;

/* On success the caller owns *out. */
moe_status_t moe_instance_create(moe_instance **out);
/* Releases an instance; its sessions must be released first (NULL: no-op). */
void moe_instance_release(moe_instance *instance);

/* Options of a session. */
typedef struct moe_session_options moe_session_options;
/* The largest thread count a session accepts. */
#define MOE_MAX_THREADS 1024
/* On success the caller owns *out (defaults: threads = the machine's
 * cores). */
moe_status_t moe_session_options_create(moe_session_options **out);
void moe_session_options_release(moe_session_options *options);
/* Threads of the session's pool, the calling thread included: 1 to
 * MOE_MAX_THREADS (MOE_INVALID_ARGUMENT otherwise, the options unchanged). */
moe_status_t moe_session_options_set_threads(moe_session_options *options,
                                             int64_t threads);
/* Where a session keeps the artifact (its weights, code and signature). */
typedef enum moe_weight_memory_t {
  /* Read into private memory advised for transparent huge pages (the
   * default). A decode step streams every weight it reads from memory;
   * with 4 KB pages each page is a TLB miss. Costs a read of the file at
   * load and memory of the process's own. */
  MOE_WEIGHTS_COPIED = 0,
  /* The file mapped read-only, never copied: its pages are the page
   * cache's, shared with other processes and read on first use. */
  MOE_WEIGHTS_MAPPED = 1
} moe_weight_memory_t;
/* Where the session keeps the artifact: a moe_weight_memory_t value
 * (MOE_INVALID_ARGUMENT for another, the options unchanged). An int, so
 * that whatever value a caller passes is checked. */
moe_status_t moe_session_options_set_weight_memory(moe_session_options *options,
                                                   int memory);
/* Whether the session profiles its runs (0: no, the default; 1: yes;
 * MOE_INVALID_ARGUMENT for another value, the options unchanged): it times
 * every run of an entry and every parallel loop the code hands the thread
 * pool (moe_session_profile). Two clock reads and a lock per loop call;
 * the code's symbol table is read at load. */
moe_status_t moe_session_options_set_profile(moe_session_options *options,
                                             int enabled);

/* Loads the artifact at `path`: checks the format version, every checksum
 * and the signature's structure, reads it into memory advised for huge
 * pages (or maps it: moe_session_options_set_weight_memory), loads the
 * code and checks that it was compiled with this signature (its
 * moe_signature_digest; MOE_DATA_LOSS otherwise). On success the caller owns
 * *out; `instance` must outlive it. */
moe_status_t moe_session_create(moe_instance *instance, const char *path,
                                moe_session **out);
/* moe_session_create with options (NULL: the defaults); `options` may be
 * released as soon as this returns. */
moe_status_t moe_session_create_with_options(moe_instance *instance,
                                             const char *path,
                                             const moe_session_options *options,
                                             moe_session **out);
/* Releases a session (NULL is a no-op). It must not overlap any other call
 * on the session (a run still in progress), and the session must not be
 * used after release; moe_session_run and the accessors refuse one they can
 * tell was released (a status, or 0 / -1 / ""), as long as its memory has
 * not been reused by a new session. */
void moe_session_release(moe_session *session);
/* The session's thread count (0 for NULL). */
size_t moe_session_thread_count(const moe_session *session);

/* One loop of a profile (moe_session_options_set_profile): a function of
 * the code that the thread pool ran, and what its calls took. */
typedef struct moe_profile_loop {
  /* The function's name in the code's symbol table:
   * "__moe_parallel_body_<n>", followed by "_" and the ONNX node the loop
   * computes where the compiler knew it ("code+0x<offset>" for a function
   * without a symbol). Owned by the session. */
  const char *name;
  /* Calls, and of them the calls of more than one chunk on a pool of more
   * than one thread (a call of one chunk runs on the calling thread
   * without waking the pool; a call nested in a loop's body runs its
   * chunks on its own thread). */
  uint64_t calls, split_calls;
  /* Iterations over all calls (of the loop's outermost dim). */
  uint64_t iterations;
  /* Wall time over all calls, in nanoseconds. (Calls nested in another
   * loop's body, which compiled code never makes, are timed too: their
   * time is also inside that loop's, and may add up over threads.) */
  uint64_t nanoseconds;
} moe_profile_loop;
/* The profile since the session's creation or the last
 * moe_session_profile_reset: `*runs` runs of entries taking `*run_ns`
 * nanoseconds of wall time, and `*count` loops, sorted by time (most
 * first). `*loops` is owned by the session and valid until the next call of
 * moe_session_profile or moe_session_profile_reset on it, or its release:
 * calls of these two on one session must not overlap each other. Runs may
 * be in progress (a run in progress may be partly counted).
 * MOE_INVALID_ARGUMENT for a session created without profiling. */
moe_status_t moe_session_profile(moe_session *session, uint64_t *runs,
                                 uint64_t *run_ns,
                                 const moe_profile_loop **loops, size_t *count);
/* Empties the profile (no-op for NULL or a session without profiling). */
void moe_session_profile_reset(moe_session *session);

/* The artifact's entries ("main"; "prefill" and "decode" for generation),
 * in signature order. moe_session_run and the accessors below without
 * "entry" in their name describe and run the entry named "main"
 * (moe_session_create refuses an artifact without one, and one that
 * declares state tensors, with MOE_UNIMPLEMENTED). */
size_t moe_session_entry_count(const moe_session *session);
const char *moe_session_entry_name(const moe_session *session, size_t i);
/* The index of the entry named `name`, or moe_session_entry_count() if
 * there is none. */
size_t moe_session_entry_index(const moe_session *session, const char *name);

/* The signature of entry `entry` (an index as above), as the accessors
 * below give it for "main". Out-of-range indices give 0, -1 or "". */
size_t moe_session_entry_input_count(const moe_session *session,
                                     size_t entry);
size_t moe_session_entry_output_count(const moe_session *session,
                                      size_t entry);
const char *moe_session_entry_input_name(const moe_session *session,
                                         size_t entry, size_t i);
const char *moe_session_entry_output_name(const moe_session *session,
                                          size_t entry, size_t i);
moe_dtype_t moe_session_entry_input_dtype(const moe_session *session,
                                          size_t entry, size_t i);
moe_dtype_t moe_session_entry_output_dtype(const moe_session *session,
                                           size_t entry, size_t i);
size_t moe_session_entry_input_rank(const moe_session *session, size_t entry,
                                    size_t i);
size_t moe_session_entry_output_rank(const moe_session *session, size_t entry,
                                     size_t i);
int64_t moe_session_entry_input_dim(const moe_session *session, size_t entry,
                                    size_t i, size_t d);
int64_t moe_session_entry_output_dim(const moe_session *session, size_t entry,
                                     size_t i, size_t d);
const char *moe_session_entry_input_dim_name(const moe_session *session,
                                             size_t entry, size_t i,
                                             size_t d);
const char *moe_session_entry_output_dim_name(const moe_session *session,
                                              size_t entry, size_t i,
                                              size_t d);

/* The signature. Names are borrowed from the session. A dim is >= 0 when
 * static and -1 when symbolic; moe_session_*_dim_name gives the symbol
 * ("" for static dims). Out-of-range indices give 0, -1 or "". */
size_t moe_session_input_count(const moe_session *session);
size_t moe_session_output_count(const moe_session *session);
const char *moe_session_input_name(const moe_session *session, size_t i);
const char *moe_session_output_name(const moe_session *session, size_t i);
moe_dtype_t moe_session_input_dtype(const moe_session *session, size_t i);
moe_dtype_t moe_session_output_dtype(const moe_session *session, size_t i);
size_t moe_session_input_rank(const moe_session *session, size_t i);
size_t moe_session_output_rank(const moe_session *session, size_t i);
int64_t moe_session_input_dim(const moe_session *session, size_t i,
                              size_t d);
int64_t moe_session_output_dim(const moe_session *session, size_t i,
                               size_t d);
const char *moe_session_input_dim_name(const moe_session *session, size_t i,
                                       size_t d);
const char *moe_session_output_dim_name(const moe_session *session, size_t i,
                                        size_t d);

/* The largest size moe_session_run accepts for an input dim that is
 * symbolic in the signature (?B, ?T, ...): larger ones are refused with
 * MOE_INVALID_ARGUMENT before the code runs, so that a hostile or mistaken
 * shape (say 2^30 x 0 tokens) cannot make the code loop for hours. */
#define MOE_MAX_SYMBOLIC_DIM (1 << 24)

/* Runs the model's "main" entry. `names[i]` names input `inputs[i]`
 * (borrowed, read only, never copied);
 * every input of the signature must be given once, with its dtype, rank and
 * static dims, equal sizes for equal symbols and symbolic dims of at most
 * MOE_MAX_SYMBOLIC_DIM. The code writes its results straight into new
 * tensors: on success outputs[0..num_outputs) (num_outputs must equal the
 * signature's count) receive them in signature order, owned by the caller.
 * A result the code produces with dims other than the signature's is
 * MOE_INTERNAL. On failure no output is written. */
moe_status_t moe_session_run(moe_session *session, size_t num_inputs,
                             const char *const *names,
                             const moe_tensor *const *inputs,
                             size_t num_outputs, moe_tensor **outputs);

/* moe_session_run for the entry named `entry` (borrowed): the same checks
 * against that entry's signature. An unknown entry is MOE_NOT_FOUND.
 * Entries share the session's weights, threads and workspace arenas. */
moe_status_t moe_session_run_entry(moe_session *session, const char *entry,
                                   size_t num_inputs,
                                   const char *const *names,
                                   const moe_tensor *const *inputs,
                                   size_t num_outputs, moe_tensor **outputs);

/* Generation (an artifact compiled with moe-compile --generation, which has
 * the entries "prefill" and "decode"): a context owns the key/value caches
 * (decode's f32 inputs: past_key and past_value [L, B, H, C, d], C =
 * `max_length`, of which the code reads the first past_length positions)
 * of `batch` sequences of up to `max_length` positions. Not reentrant: one
 * thread at a time per context (several contexts may share a session). */
typedef struct moe_generation moe_generation;

/* Creates a context on `session` (borrowed: it must outlive the context).
 * MOE_NOT_FOUND without the generation entries; MOE_INVALID_ARGUMENT for a
 * batch or maximum length below 1 or above MOE_MAX_SYMBOLIC_DIM, a batch
 * other than the signature's static one, or a decode entry of another
 * layout (no int64 scalar input past_length: an artifact of an earlier
 * moe-compile, to be compiled again; or a cache whose positions dim is not
 * dynamic with a named symbol of its own, or whose other dims are neither
 * static nor the batch). */
moe_status_t moe_generation_create(moe_session *session, int64_t batch,
                                   int64_t max_length, moe_generation **out);
void moe_generation_release(moe_generation *generation);

/* Runs the next tokens (int64 [batch, T], T >= 1; "prefill" at position 0,
 * "decode" after), appends their keys and values to the caches, and puts
 * their logits (owned by the caller) in *logits: [batch, T, V] from
 * "decode"; from "prefill" [batch, 1, V], the last position's (all T with
 * moe-compile --generation-all-logits). A step that
 * would pass max_length is refused with MOE_INVALID_ARGUMENT before
 * anything runs; a failed step leaves the context as it was. */
moe_status_t moe_generation_step(moe_generation *generation,
                                 const moe_tensor *tokens,
                                 moe_tensor **logits);

/* The number of positions in the caches (0 after create and reset). */
int64_t moe_generation_position(const moe_generation *generation);
/* Empties the caches: the next step is a prefill. */
void moe_generation_reset(moe_generation *generation);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MOE_RUNTIME_H */

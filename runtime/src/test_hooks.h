//===- test_hooks.h - hooks the runtime's unit tests set --------*- C++ -*-===//
//
// Internal to runtime/src, runtime/test and bench/overhead.cpp (not
// installed, not part of the API): they let test/runtime_test.cpp reach
// code paths the host would not take, on any host, and measure what the
// API does not say. All hooks are process-wide and off by default.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_TEST_HOOKS_H
#define MOE_RUNTIME_TEST_HOOKS_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace moe::test_hooks {

/// Answers whether the CPU has `feature` (a name of
/// artifact::kCheckableCpuFeatures): 1 yes, 0 no, -1 cannot tell.
using CpuFeatureQuery = int (*)(const char *feature);

/// Replaces the loader's CPU feature query with `query` (null: the CPU's
/// own, __builtin_cpu_supports).
__attribute__((visibility("default"))) void
setCpuFeatureQuery(CpuFeatureQuery query);

/// Whether code is staged in a temporary file of $TMPDIR (the fallback for
/// hosts without memfd_create or /proc) even where a memfd would do.
__attribute__((visibility("default"))) void setForceFileStaging(bool force);

/// Whether runs measure the time spent inside the code's entry (from the
/// call to its return, parallel loops included), adding it up for
/// entryNanoseconds(): the rest of moe_session_run is the runtime's
/// overhead (bench/overhead.cpp).
__attribute__((visibility("default"))) void setEntryTiming(bool on);
/// Nanoseconds spent inside entries by all runs measured so far.
__attribute__((visibility("default"))) uint64_t entryNanoseconds();

/// Workspace segments allocated so far by all sessions (a run that does
/// not grow its arena allocates none).
__attribute__((visibility("default"))) uint64_t workspaceAllocations();

/// The bytes of released tensors' buffers the runtime keeps now for the
/// next tensors of the same sizes (runtime.cpp, keptBuffers).
__attribute__((visibility("default"))) uint64_t keptBufferBytes();

/// The names of the sized functions that the CPU executor reads from the
/// ELF bytes `data[0, size)` for a profile (readFunctionNames), by start.
__attribute__((visibility("default"))) std::vector<std::string>
codeFunctionNames(const unsigned char *data, size_t size);

} // namespace moe::test_hooks

#endif // MOE_RUNTIME_TEST_HOOKS_H

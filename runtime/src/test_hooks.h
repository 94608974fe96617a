//===- test_hooks.h - hooks the runtime's unit tests set --------*- C++ -*-===//
//
// Internal to runtime/src and runtime/test (not installed, not part of the
// API): they let test/runtime_test.cpp reach code paths the host would not
// take, on any host. Both hooks are process-wide and off by default.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_TEST_HOOKS_H
#define MOE_RUNTIME_TEST_HOOKS_H

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

} // namespace moe::test_hooks

#endif // MOE_RUNTIME_TEST_HOOKS_H

//===- compiler_impl.h - moe::compileModel behind a plain interface -*- C++ -*-===//
//
// The seam between the two halves of moe_mlir._compiler: compiler_impl.cpp
// includes MLIR and LLVM and is compiled like LLVM (no exceptions, no RTTI);
// compiler_module.cpp includes pybind11 (which needs both). Only standard
// types and a plain function pointer cross this header, so neither half
// sees the other's headers.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PYTHON_COMPILER_IMPL_H
#define MOE_PYTHON_COMPILER_IMPL_H

#include <cstddef>
#include <cstdint>
#include <string>

namespace moe_python {

struct CompileRequest {
  /// The model: ONNX protobuf or MLIR text (not owned; read only).
  const char *data = nullptr;
  size_t size = 0;
  /// Names the model in diagnostics; its extension (.onnx / .mlir) picks the
  /// reader, otherwise the bytes are sniffed (moe::InputKind::Auto).
  std::string name;
  /// External tensor data is read relative to this folder.
  std::string baseDir = ".";
  /// "moe", "linalg", "llvm", "obj" or "artifact".
  std::string emit = "artifact";
  std::string cc = "clang-22";
  std::string march = "native";
  unsigned optLevel = 3;
  /// moe::CompileOptions' reference, parallelLoops, tile, sortExpertLayouts,
  /// dotProducts, prefetchRows, prefetchPanels, fuseGathers,
  /// fuseEpilogues, fuseElementwise, vectorReductions, fastExp, flashAttention, packWeights,
  /// rollRepeats and raise (moe-compile --reference, --no-parallel-loops,
  /// --no-tile,
  /// --no-sorted-experts, --no-dot-products, --no-prefetch,
  /// --no-prefetch-panels, --no-fuse-gathers,
  /// --no-fuse-epilogues, --no-fuse-elementwise, --no-vector-reductions,
  /// --no-fast-exp,
  /// --no-flash-attention,
  /// --no-pack-weights, --no-roll, --no-raise).
  bool reference = false;
  bool parallelLoops = true;
  bool tile = true;
  bool sortExpertLayouts = true;
  bool dotProducts = true;
  bool prefetchRows = true;
  bool prefetchPanels = true;
  bool fuseGathers = true;
  bool fuseEpilogues = true;
  bool fuseElementwise = true;
  bool vectorReductions = true;
  bool fastExp = true;
  bool flashAttention = true;
  bool packWeights = true;
  bool rollRepeats = true;
  bool generation = false;
  bool generationAllLogits = false;
  bool raiseBlocks = true;
  /// moe::CompileOptions' remainderTiles, accumulatorChains,
  /// mergeTailSlices and panelColumns (moe-compile --no-remainder-tiles,
  /// --no-accumulator-chains, --no-merge-tail-slices, --panel-columns).
  bool remainderTiles = true;
  bool accumulatorChains = true;
  bool mergeTailSlices = true;
  unsigned panelColumns = 0;
  /// moe::CompileOptions::parallelMinChunkWork (moe-compile
  /// --parallel-min-work); negative: the compiler's default.
  int64_t parallelMinWork = -1;
  /// moe::CompileOptions::fuseExpertPairs (moe-compile
  /// --no-fuse-expert-pairs).
  bool fuseExpertPairs = true;
  /// moe::CompileOptions::fuseRouting (moe-compile --no-fuse-routing).
  bool fuseRouting = true;
  /// moe::CompileOptions::codegenJobs (moe-compile --codegen-jobs).
  unsigned codegenJobs = 0;
  /// Called with each progress line (may be null). Must not throw.
  void (*progress)(void *context, const char *line, size_t size) = nullptr;
  void *progressContext = nullptr;
};

/// Compiles `request`. On success returns true and `output` holds what was
/// asked for; on failure returns false and `diagnostics` holds the
/// diagnostics, one per line. Callable from any thread; each call has its
/// own MLIR context.
bool compile(const CompileRequest &request, std::string &output,
             std::string &diagnostics);

} // namespace moe_python

#endif // MOE_PYTHON_COMPILER_IMPL_H

//===- compiler_module.cpp - moe_mlir._compiler: the compiler for Python ----===//
//
// The pybind11 half of moe_mlir._compiler; the MLIR half is
// compiler_impl.cpp (see compiler_impl.h for why there are two). The GIL is
// released while the model compiles and taken back for each progress line.
// moe_mlir/_compile.py turns a failure into moe_mlir.CompileError.
//
//===----------------------------------------------------------------------===//

#include "compiler_impl.h"

#include <pybind11/pybind11.h>

#include <string>

namespace py = pybind11;

namespace {

/// `text` as a str, invalid UTF-8 replaced (model names may be anything).
py::str decode(const char *text, size_t size) {
  PyObject *s = PyUnicode_DecodeUTF8(text, static_cast<Py_ssize_t>(size),
                                     "replace");
  if (!s)
    throw py::error_already_set();
  return py::reinterpret_steal<py::str>(s);
}

/// Calls the Python progress callable (CompileRequest::progress) with the
/// GIL held. Its exceptions are reported as unraisable: the Python wrapper
/// (moe_mlir/_compile.py) catches them first and raises them after the
/// compilation.
void callProgress(void *context, const char *line, size_t size) {
  py::gil_scoped_acquire gil;
  try {
    auto *fn = static_cast<py::object *>(context);
    (*fn)(decode(line, size));
  } catch (py::error_already_set &e) {
    e.discard_as_unraisable("moe_mlir.compile progress callback");
  } catch (...) {
  }
}

/// (ok, output, diagnostics) for the model in `data`.
py::tuple compile(const py::bytes &data, const std::string &name,
                  const std::string &baseDir, const std::string &emit,
                  const std::string &cc, const std::string &march,
                  unsigned optLevel, bool reference, bool parallelLoops,
                  bool tile, bool sortedExperts, bool dotProducts,
                  bool prefetchRows, bool prefetchPanels, bool fuseGathers,
                  bool fuseEpilogues, bool fuseElementwise,
                  bool vectorReductions, bool fastExp, bool flashAttention,
                  bool packWeights, bool rollRepeats, bool raiseBlocks,
                  bool remainderTiles, bool accumulatorChains,
                  bool mergeTailSlices, unsigned panelColumns,
                  int64_t parallelMinWork, bool fuseExpertPairs,
                  bool fuseRouting, int generation, unsigned codegenJobs,
                  const py::object &progress) {
  moe_python::CompileRequest request;
  char *buffer = nullptr;
  Py_ssize_t size = 0;
  if (PyBytes_AsStringAndSize(data.ptr(), &buffer, &size) != 0)
    throw py::error_already_set();
  request.data = buffer; // `data` is immutable and held by the caller
  request.size = static_cast<size_t>(size);
  request.name = name;
  request.baseDir = baseDir;
  request.emit = emit;
  request.cc = cc;
  request.march = march;
  request.optLevel = optLevel;
  request.reference = reference;
  request.parallelLoops = parallelLoops;
  request.tile = tile;
  request.sortExpertLayouts = sortedExperts;
  request.dotProducts = dotProducts;
  request.prefetchRows = prefetchRows;
  request.prefetchPanels = prefetchPanels;
  request.fuseGathers = fuseGathers;
  request.fuseEpilogues = fuseEpilogues;
  request.fuseElementwise = fuseElementwise;
  request.vectorReductions = vectorReductions;
  request.fastExp = fastExp;
  request.flashAttention = flashAttention;
  request.packWeights = packWeights;
  request.rollRepeats = rollRepeats;
  request.raiseBlocks = raiseBlocks;
  request.remainderTiles = remainderTiles;
  request.accumulatorChains = accumulatorChains;
  request.mergeTailSlices = mergeTailSlices;
  request.panelColumns = panelColumns;
  request.parallelMinWork = parallelMinWork;
  request.fuseExpertPairs = fuseExpertPairs;
  request.fuseRouting = fuseRouting;
  request.codegenJobs = codegenJobs;
  // 0: no generation entries; 1: @prefill returns the last position's
  // outputs; 2: every position's.
  request.generation = generation != 0;
  request.generationAllLogits = generation == 2;
  py::object fn = progress;
  if (!progress.is_none()) {
    request.progress = callProgress;
    request.progressContext = &fn;
  }
  std::string output, diagnostics;
  bool ok;
  {
    py::gil_scoped_release release;
    ok = moe_python::compile(request, output, diagnostics);
  }
  return py::make_tuple(ok, py::bytes(output), decode(diagnostics.data(), diagnostics.size()));
}

} // namespace

PYBIND11_MODULE(_compiler, m) {
  m.doc() = "The moe-mlir compiler (moe::compileModel). Use "
            "moe_mlir.compile; importing this module loads LLVM and MLIR.";
  m.def("compile", &compile, py::arg("data"), py::arg("name"),
        py::arg("base_dir"), py::arg("emit"), py::arg("cc"), py::arg("march"),
        py::arg("opt_level"), py::arg("reference"), py::arg("parallel_loops"),
        py::arg("tile"), py::arg("sorted_experts"), py::arg("dot_products"),
        py::arg("prefetch_rows"), py::arg("prefetch_panels"),
        py::arg("fuse_gathers"), py::arg("fuse_epilogues"),
        py::arg("fuse_elementwise"), py::arg("vector_reductions"),
        py::arg("fast_exp"), py::arg("flash_attention"),
        py::arg("pack_weights"), py::arg("roll_repeats"),
        py::arg("raise_blocks"), py::arg("remainder_tiles"),
        py::arg("accumulator_chains"), py::arg("merge_tail_slices"),
        py::arg("panel_columns"), py::arg("parallel_min_work"),
        py::arg("fuse_expert_pairs"), py::arg("fuse_routing"),
        py::arg("generation"), py::arg("codegen_jobs"), py::arg("progress"),
        "(ok, output bytes, diagnostics text) for the model in `data`.");
}

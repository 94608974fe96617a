//===- Importer.h - ONNX model -> MLIR (stage 1) ----------------*- C++ -*-===//
//
// Stage 1 of the ONNX importer: a mechanical, one-to-one translation of an
// ONNX ModelProto into a module holding `func.func @main`, whose body is one
// `onnx.node` per ONNX node (located at the node name), `arith.constant`
// initializers and the graph's inputs and outputs. Model-local functions of
// other domains than org.moe_mlir are inlined; org.moe_mlir nodes are kept
// for stage 2. Every refusal is a diagnostic located at its source (file,
// node name, value name) and the result is null.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_IMPORT_ONNX_IMPORTER_H
#define MOE_IMPORT_ONNX_IMPORTER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <optional>
#include <string>
#include <vector>

namespace llvm {
class MemoryBuffer;
} // namespace llvm

namespace mlir::moe {

/// Lowest and highest ai.onnx opset versions the importer accepts. Within
/// them, each node's schema version must have a handler (a schema that
/// changed after its handler is refused per node: OnnxHandlerRegistry). 29
/// is the opset in development upstream, for GroupedMatMul.
constexpr int64_t kMinOnnxOpset = 13;
constexpr int64_t kMaxOnnxOpset = 29;

/// Imports the serialized ONNX model in `buffer`. `fileName` names it in
/// diagnostics; external tensor data is read relative to `baseDir`.
OwningOpRef<ModuleOp> importOnnxModel(const llvm::MemoryBuffer &buffer,
                                      llvm::StringRef fileName,
                                      llvm::StringRef baseDir,
                                      MLIRContext *context);

/// Prints `diag` and its notes as "file: node 'name': severity: message"
/// (ONNX has no lines; stage 1 locates every op at its node name). `tool`
/// replaces the file name when the location has none.
void printOnnxDiagnostic(Diagnostic &diag, llvm::raw_ostream &os,
                         llvm::StringRef tool);

/// An input of an ai.onnx node whose element type its schema does not
/// allow: the input's index, its formal parameter's name, the schema's
/// version and the types its constraint allows ("tensor(float)", sorted).
struct SchemaTypeMismatch {
  unsigned input;
  std::string formal;
  int since;
  std::vector<std::string> allowed;
};

/// Checks the element types of an ai.onnx node's inputs (`inputTypes`, as
/// ONNX names them, "tensor(float)"; "" where not a tensor or unknown)
/// against the type constraints of its schema at `opsetVersion`, read from
/// onnx's registry (libonnx). Nothing is reported for an op or an opset the
/// registry does not know (a newer schema may allow more types).
std::optional<SchemaTypeMismatch>
findSchemaTypeMismatch(llvm::StringRef opType, int64_t opsetVersion,
                       llvm::ArrayRef<std::string> inputTypes);

} // namespace mlir::moe

#endif // MOE_IMPORT_ONNX_IMPORTER_H

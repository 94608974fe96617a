//===- OnnxDialect.cpp - the mechanical ONNX import dialect ----------------===//

#include "moe/Import/ONNX/OnnxOps.h"

#include "mlir/IR/Builders.h"

using namespace mlir;
using namespace mlir::moe::onnxir;

#include "onnx/OnnxOpsDialect.cpp.inc"

void OnnxDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "onnx/OnnxOps.cpp.inc"
      >();
}

#define GET_OP_CLASSES
#include "onnx/OnnxOps.cpp.inc"

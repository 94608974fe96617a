//===- OnnxOps.h - the mechanical ONNX import dialect ------------*- C++ -*-===//

#ifndef MOE_IMPORT_ONNX_ONNXOPS_H
#define MOE_IMPORT_ONNX_ONNXOPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "onnx/OnnxOpsDialect.h.inc"

#define GET_OP_CLASSES
#include "onnx/OnnxOps.h.inc"

#endif // MOE_IMPORT_ONNX_ONNXOPS_H

//===- MoeOps.h - moe dialect, attributes and operations --------*- C++ -*-===//
//
// The one header for the `moe` dialect: the dialect class, its enums and
// enum attributes, and its operations (all generated from dialects/moe/).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_IR_MOEOPS_H
#define MOE_IR_MOEOPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "moe/MoeOpsDialect.h.inc"
#include "moe/MoeEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "moe/MoeAttrs.h.inc"

#define GET_OP_CLASSES
#include "moe/MoeOps.h.inc"

#endif // MOE_IR_MOEOPS_H

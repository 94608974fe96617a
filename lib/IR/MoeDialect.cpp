//===- MoeDialect.cpp - moe dialect registration ---------------------------===//

#include "moe/IR/MoeOps.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::moe;

#include "moe/MoeOpsDialect.cpp.inc"
#include "moe/MoeEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "moe/MoeAttrs.cpp.inc"

void MoeDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "moe/MoeAttrs.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "moe/MoeOps.cpp.inc"
      >();
}

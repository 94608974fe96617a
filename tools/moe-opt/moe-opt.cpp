//===- moe-opt.cpp - moe optimizer driver ----------------------------------===//
//
// mlir-opt with the moe dialect, its passes and pipelines, and every upstream
// dialect and pass registered.
//
//===----------------------------------------------------------------------===//

#include "moe/InitAll.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::registerAllPasses();
  mlir::moe::registerAllPasses();

  mlir::DialectRegistry registry;
  // moe's first: its tensor slice models replace upstream's.
  mlir::moe::registerAllDialects(registry);
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);

  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "moe-mlir optimizer driver\n", registry));
}

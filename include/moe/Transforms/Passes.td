//===- Passes.td - moe transformation passes ---------------*- tablegen -*-===//
//
// One decomposition pass per composite op. Each pass only applies the pattern
// set exposed by moe/Transforms/Transforms.h; the `moe-decompose` pipeline
// (moe/Pipelines/Pipelines.h) runs them all.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TRANSFORMS_PASSES_TD
#define MOE_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

class Moe_DecomposePass<string arg, string opName, string parts>
    : Pass<arg> {
  let summary = "Decompose `" # opName # "` into primitive moe ops";
  let description = "Rewrites every `" # opName # "` into " # parts # ". "
      "Shapes may be dynamic; the rewrite materialises dynamic sizes with "
      "`tensor.dim` and never fails on verified IR. See docs/passes.md for "
      "the before/after IR and test/Transforms for worked examples.";
  let dependentDialects = [
    "::mlir::moe::MoeDialect",
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

def MoeDecomposeFfn : Moe_DecomposePass<"moe-decompose-ffn", "moe.ffn",
    "a selector matmul (linalg.generic), `moe.route` or `moe.switch_route`, "
    "`moe.dispatch`, an up-projection `moe.grouped_matmul`, the activation "
    "and a down-projection `moe.grouped_matmul` reduced with the slot weights">;

def MoeDecomposeTreeFfn : Moe_DecomposePass<"moe-decompose-tree-ffn",
    "moe.tree_ffn",
    "the gating matmul, `moe.tree_route`, `moe.dispatch`, one "
    "`moe.grouped_matmul` summing the path's matrices and the activation">;

def MoeDecomposeSwitchHead : Moe_DecomposePass<"moe-decompose-switchhead",
    "moe.switchhead",
    "query/key matmuls with `moe.rope`, per-head `moe.route` and "
    "`moe.dispatch` on the value and output sides, value and output "
    "`moe.grouped_matmul`s and `moe.attention`">;

def MoeDecomposeMot : Moe_DecomposePass<"moe-decompose-mot", "moe.mot",
    "the controller matmul, `moe.mot_mix`, two expert-batched contractions "
    "(linalg.generic) with the activation, and `moe.mot_unmix`">;

def MoeOutlineWeights : Pass<"moe-outline-weights", "::mlir::ModuleOp"> {
  let summary = "Turn the entry function's weight constants into arguments";
  let description = [{
    Every `arith.constant` of a ranked tensor with at least `min-elements`
    elements in the entry function becomes a new trailing argument (marked
    `{moe.weight = <index>}`); the values move, in argument order, to the
    module attribute `moe.weights`. A constant used by several ops (MoEUT's
    shared layers) becomes one argument. moe-compile writes the values into
    the artifact's weight section, which the runtime maps and passes to the
    code without copying.

    Before:
    ```mlir
    func.func @main(%x: tensor<?x4xf32>) -> tensor<?x4xf32> {
      %w = arith.constant dense<...> : tensor<4x4xf32>
      ...
    ```
    After:
    ```mlir
    module attributes {moe.weights = [dense<...> : tensor<4x4xf32>]} {
      func.func @main(%x: tensor<?x4xf32>, %w: tensor<4x4xf32> {moe.weight = 0 : i64}) ...
    ```
  }];
  let options = [
    Option<"entry", "entry", "std::string", "\"main\"",
           "name of the entry function">,
    Option<"minElements", "min-elements", "int64_t", "16",
           "smallest constant (in elements) that becomes a weight">
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::tensor::TensorDialect"];
}

def MoeAddPackedEntry : Pass<"moe-add-packed-entry", "::mlir::ModuleOp"> {
  let summary = "Add the runtime's packed entry point to an LLVM-dialect module";
  let description = [{
    Adds `llvm.func @moe_entry(%packed: !llvm.ptr)` that loads the i-th
    pointer of the array `%packed` for each parameter of
    `_mlir_ciface_<entry>` and calls it, so that the runtime calls every
    model through one signature (docs/runtime.md). The packed entry is then
    the module's only external definition: every other defined function and
    global gets internal linkage, so the shared object exports nothing else
    and its calls never bind to a host symbol of the same name (a host
    process that exports its own `main`). Refuses a module without the C
    interface wrapper.
  }];
  let options = [
    Option<"entry", "entry", "std::string", "\"main\"",
           "name of the entry function">
  ];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect"];
}

#endif // MOE_TRANSFORMS_PASSES_TD

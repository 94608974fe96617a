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

#endif // MOE_TRANSFORMS_PASSES_TD

//===- MoeBase.td - moe dialect, enums and type constraints -*- tablegen -*-===//
//
// The `moe` dialect: first-class Mixture-of-Experts routing and compute.
// Constraint ids (C1, C2, ...) in op descriptions match docs/spec.md, the
// verifier comments in lib/IR/MoeOps.cpp and the test functions in
// test/Dialect/moe/invalid.mlir.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_BASE_TD
#define MOE_BASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def Moe_Dialect : Dialect {
  let name = "moe";
  let cppNamespace = "::mlir::moe";
  let summary = "Mixture-of-Experts routing, dispatch and expert compute";
  let description = [{
    The `moe` dialect models sparse and soft Mixture-of-Experts layers as
    first-class operations on tensors (value semantics, static or dynamic
    dimensions): expert routing, the counting sort of slots by expert, the
    expert-grouped matmul, the weighted combine, Mixture-of-Tokens mixing,
    attention with RoPE, and one composite op per model layer (σ-MoE / Switch
    FFN, sign-bit tree gating, SwitchHead attention, Mixture of Tokens).

    Composite ops decompose into the primitive ones (`moe-decompose`
    pipeline); the primitive ones are what backends lower. The reference
    semantics are those of `shared/spec/models.md`; every verifier constraint
    is numbered in `docs/spec.md`.
  }];
  let useDefaultAttributePrinterParser = 1;
  // Result shapes are reified as tensor.dim and affine.apply.
  let dependentDialects = ["::mlir::affine::AffineDialect",
                           "::mlir::tensor::TensorDialect"];
}

class Moe_Op<string mnemonic, list<Trait> traits = []>
    : Op<Moe_Dialect, mnemonic, traits>;

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def Moe_GateKind : I32EnumAttr<"GateKind", "expert-selection gate", [
    I32EnumAttrCase<"Sigmoid", 0, "sigmoid">,
    I32EnumAttrCase<"Softmax", 1, "softmax">,
    I32EnumAttrCase<"TopkSoftmax", 2, "topk_softmax">]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}
def Moe_GateAttr : EnumAttr<Moe_Dialect, Moe_GateKind, "gate"> {
  let summary = "gate: sigmoid, softmax (before top-k) or topk_softmax "
                "(softmax over the selected k, renormalised)";
  let assemblyFormat = "`<` $value `>`";
}

def Moe_Activation : I32EnumAttr<"Activation", "expert activation", [
    I32EnumAttrCase<"Relu", 0, "relu">,
    I32EnumAttrCase<"Gelu", 1, "gelu">,
    I32EnumAttrCase<"Silu", 2, "silu">,
    I32EnumAttrCase<"Identity", 3, "identity">]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}
def Moe_ActivationAttr : EnumAttr<Moe_Dialect, Moe_Activation, "activation"> {
  let summary = "activation: relu, gelu (exact, erf form), silu or identity";
  let assemblyFormat = "`<` $value `>`";
}

def Moe_MixMode : I32EnumAttr<"MixMode", "Mixture-of-Tokens mixing mode", [
    I32EnumAttrCase<"Continuous", 0, "continuous">,
    I32EnumAttrCase<"Discrete", 1, "discrete">]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}
def Moe_MixModeAttr : EnumAttr<Moe_Dialect, Moe_MixMode, "mix_mode"> {
  let summary = "continuous (group softmax) or discrete (one-hot argmax)";
  let assemblyFormat = "`<` $value `>`";
}

def Moe_TreeMode : I32EnumAttr<"TreeMode", "sign-bit tree gating mode", [
    I32EnumAttrCase<"Path", 0, "path">,
    I32EnumAttrCase<"Flat", 1, "flat">]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}
def Moe_TreeModeAttr : EnumAttr<Moe_Dialect, Moe_TreeMode, "tree_mode"> {
  let summary = "path (sum of the matrices on the root-to-leaf path) or flat "
                "(the leaf matrix only)";
  let assemblyFormat = "`<` $value `>`";
}

//===----------------------------------------------------------------------===//
// Type constraints. Ranks and dimensions are checked by the C++ verifiers so
// that every message names its constraint and the offending values.
//===----------------------------------------------------------------------===//

def Moe_FloatTensor : RankedTensorOf<[F16, BF16, F32, F64]>;
def Moe_IntTensor : RankedTensorOf<[I32, I64]>;
def Moe_MaskTensor : RankedTensorOf<[I1]>;

#endif // MOE_BASE_TD

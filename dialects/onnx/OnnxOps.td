//===- OnnxOps.td - the mechanical ONNX import dialect -----*- tablegen -*-===//
//
// Stage 1 of the ONNX importer: one generic op per ONNX node, carrying its op
// type, domain, opset version and attributes verbatim. Stage 2 (the
// `convert-onnx-to-moe` pass) gives the nodes meaning through handlers
// registered by (domain, op type, since version).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_ONNX_OPS_TD
#define MOE_ONNX_OPS_TD

include "mlir/IR/OpBase.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Onnx_Dialect : Dialect {
  let name = "onnx";
  let cppNamespace = "::mlir::moe::onnxir";
  let summary = "ONNX nodes as imported, before conversion";
  let description = [{
    The output of `moe-import --stage=onnx`: the ONNX graph one-to-one, each
    node an `onnx.node` located at its node name. Result types are ONNX shape
    inference's where it knew them, unranked otherwise: a hint for reading,
    not a contract (conversions compute their own result types).
  }];
}

def Onnx_NodeOp : Op<Onnx_Dialect, "node", [Pure]> {
  let summary = "one ONNX node";
  let description = [{
    An ONNX node: `op_type` in `domain` ("" for ai.onnx) at the model's
    opset `version` for that domain, its attributes as a dictionary
    (ints as i64, floats as f32, strings, tensors as elements attributes,
    lists as arrays). Absent optional inputs are `onnx.none` values.

    Example:
    ```mlir
    %y = onnx.node "MatMul"(%a, %b) {version = 17 : i64}
        : (tensor<?x4xf32>, tensor<4x8xf32>) -> tensor<?x8xf32>
    ```
  }];
  let arguments = (ins StrAttr:$op_type, DefaultValuedStrAttr<StrAttr, "">:$domain,
                       I64Attr:$version,
                       DefaultValuedAttr<DictionaryAttr, "{}">:$node_attributes,
                       Variadic<AnyType>:$inputs);
  let results = (outs Variadic<AnyType>:$outputs);
  let assemblyFormat = [{
    $op_type `(` $inputs `)` attr-dict `:` functional-type($inputs, $outputs)
  }];
}

def Onnx_NoneOp : Op<Onnx_Dialect, "none", [Pure]> {
  let summary = "an absent optional ONNX input";
  let description = [{
    Stands for an empty input name. Example: `%n = onnx.none : none`.
  }];
  let results = (outs NoneType:$result);
  let assemblyFormat = "attr-dict `:` type($result)";
}

#endif // MOE_ONNX_OPS_TD

// RUN: moe-opt --moe-raise-onnx %s | FileCheck %s
// RUN: moe-opt --moe-raise-onnx=report %s -o /dev/null 2>&1 | FileCheck %s --check-prefix=REPORT

// moe-raise-onnx's preparation (RaisePrepare.cpp) rewrites what PyTorch's
// dynamo exporter writes into the forms the matchers read; these rewrites
// stay whether or not a block is raised. (Einsum recovery and its revert:
// raise-onnx-moe.test, the aten_* models.)

// No-op nodes go: Identity, an identity Transpose, one-input Max and
// Concat, Expand of x to x's own shape.
// CHECK-LABEL: func.func @no_ops
// CHECK-SAME: (%[[X:.*]]: tensor<?x4xf32>
// CHECK-NEXT: %[[R:.*]] = onnx.node "Relu"(%[[X]])
// CHECK-NEXT: return %[[R]]
func.func @no_ops(%x: tensor<?x4xf32>) -> tensor<?x4xf32> {
  %a = onnx.node "Identity"(%x) {version = 18 : i64} : (tensor<?x4xf32>) -> tensor<?x4xf32>
  %b = onnx.node "Transpose"(%a) {node_attributes = {perm = array<i64: 0, 1>}, version = 18 : i64} : (tensor<?x4xf32>) -> tensor<?x4xf32>
  %c = onnx.node "Max"(%b) {version = 18 : i64} : (tensor<?x4xf32>) -> tensor<?x4xf32>
  %d = onnx.node "Concat"(%c) {node_attributes = {axis = 0 : i64}, version = 18 : i64} : (tensor<?x4xf32>) -> tensor<?x4xf32>
  %s = onnx.node "Shape"(%d) {version = 18 : i64} : (tensor<?x4xf32>) -> tensor<2xi64>
  %e = onnx.node "Expand"(%d, %s) {version = 18 : i64} : (tensor<?x4xf32>, tensor<2xi64>) -> tensor<?x4xf32>
  %r = onnx.node "Relu"(%e) {version = 18 : i64} : (tensor<?x4xf32>) -> tensor<?x4xf32>
  return %r : tensor<?x4xf32>
}

// Squeeze(Unsqueeze(x, [a]), [a]) is x (the dynamo exporter's view of a
// bmm result back and forth), also where one axis counts from the end;
// other axes, or an axis out of range, leave both nodes.
// CHECK-LABEL: func.func @squeeze_unsqueeze
// CHECK-SAME: (%[[X:.*]]: tensor<?x4xf32>
// CHECK-NEXT: %[[R:.*]] = onnx.node "Relu"(%[[X]])
// CHECK-NEXT: %[[R2:.*]] = onnx.node "Relu"(%[[X]])
// CHECK-NEXT: return %[[R]], %[[R2]]
func.func @squeeze_unsqueeze(%x: tensor<?x4xf32>) -> (tensor<?x4xf32>, tensor<?x4xf32>) {
  %a1 = arith.constant dense<1> : tensor<1xi64>
  %am2 = arith.constant dense<-2> : tensor<1xi64>
  %u = onnx.node "Unsqueeze"(%x, %a1) {version = 18 : i64} : (tensor<?x4xf32>, tensor<1xi64>) -> tensor<?x1x4xf32>
  %s = onnx.node "Squeeze"(%u, %a1) {version = 18 : i64} : (tensor<?x1x4xf32>, tensor<1xi64>) -> tensor<?x4xf32>
  %r = onnx.node "Relu"(%s) {version = 18 : i64} : (tensor<?x4xf32>) -> tensor<?x4xf32>
  %s2 = onnx.node "Squeeze"(%u, %am2) {version = 18 : i64} : (tensor<?x1x4xf32>, tensor<1xi64>) -> tensor<?x4xf32>
  %r2 = onnx.node "Relu"(%s2) {version = 18 : i64} : (tensor<?x4xf32>) -> tensor<?x4xf32>
  return %r, %r2 : tensor<?x4xf32>, tensor<?x4xf32>
}

// CHECK-LABEL: func.func @squeeze_unsqueeze_kept
// CHECK-COUNT-2: onnx.node "Squeeze"
func.func @squeeze_unsqueeze_kept(%x: tensor<1x4xf32>) -> (tensor<1x4xf32>, tensor<*xf32>) {
  %a0 = arith.constant dense<0> : tensor<1xi64>
  %a1 = arith.constant dense<1> : tensor<1xi64>
  %a5 = arith.constant dense<5> : tensor<1xi64>
  %u = onnx.node "Unsqueeze"(%x, %a1) {version = 18 : i64} : (tensor<1x4xf32>, tensor<1xi64>) -> tensor<1x1x4xf32>
  %s = onnx.node "Squeeze"(%u, %a0) {version = 18 : i64} : (tensor<1x1x4xf32>, tensor<1xi64>) -> tensor<1x4xf32>
  %u5 = onnx.node "Unsqueeze"(%x, %a5) {version = 18 : i64} : (tensor<1x4xf32>, tensor<1xi64>) -> tensor<*xf32>
  %s5 = onnx.node "Squeeze"(%u5, %a5) {version = 18 : i64} : (tensor<*xf32>, tensor<1xi64>) -> tensor<*xf32>
  return %s, %s5 : tensor<1x4xf32>, tensor<*xf32>
}

// An Expand to another shape, and a Transpose that permutes, stay.
// CHECK-LABEL: func.func @not_no_ops
// CHECK: onnx.node "Expand"
// CHECK: onnx.node "Transpose"
func.func @not_no_ops(%x: tensor<?x1xf32>, %shape: tensor<2xi64>) -> tensor<?x?xf32> {
  %e = onnx.node "Expand"(%x, %shape) {version = 18 : i64} : (tensor<?x1xf32>, tensor<2xi64>) -> tensor<?x?xf32>
  %t = onnx.node "Transpose"(%e) {node_attributes = {perm = array<i64: 1, 0>}, version = 18 : i64} : (tensor<?x?xf32>) -> tensor<?x?xf32>
  return %t : tensor<?x?xf32>
}

// A graph output keeps its declared type: an Identity that refines it stays
// for the return.
// CHECK-LABEL: func.func @typed_output
// CHECK: %[[I:.*]] = onnx.node "Identity"
// CHECK: return %[[I]]
func.func @typed_output(%x: tensor<?x4xf32>) -> tensor<3x4xf32> {
  %a = onnx.node "Identity"(%x) {version = 18 : i64} : (tensor<?x4xf32>) -> tensor<3x4xf32>
  return %a : tensor<3x4xf32>
}

// w[ids]: GatherND(w, Unsqueeze(ids, -1)) is Gather(w, ids, axis 0).
// CHECK-LABEL: func.func @gather_rows
// CHECK-SAME: (%[[IDS:.*]]: tensor<?x2xi64>
// CHECK: %[[W:.*]] = arith.constant dense<{{.*}}> : tensor<4x3xf32>
// CHECK: onnx.node "Gather"(%[[W]], %[[IDS]]) {node_attributes = {axis = 0 : i64}, version = 18 : i64}
// CHECK-NOT: GatherND
func.func @gather_rows(%ids: tensor<?x2xi64>) -> tensor<?x2x3xf32> {
  %w = arith.constant dense<1.0> : tensor<4x3xf32>
  %axes = arith.constant dense<-1> : tensor<1xi64>
  %u = onnx.node "Unsqueeze"(%ids, %axes) {version = 18 : i64} : (tensor<?x2xi64>, tensor<1xi64>) -> tensor<?x2x1xi64>
  %g = onnx.node "GatherND"(%w, %u) {node_attributes = {batch_dims = 0 : i64}, version = 18 : i64} : (tensor<4x3xf32>, tensor<?x2x1xi64>) -> tensor<?x2x3xf32>
  return %g : tensor<?x2x3xf32>
}

// GatherND over an index of another form, or with batch dims, stays.
// CHECK-LABEL: func.func @gather_nd_kept
// CHECK-COUNT-2: onnx.node "GatherND"
func.func @gather_nd_kept(%idx: tensor<?x2xi64>, %ids: tensor<?x2xi64>) -> (tensor<?xf32>, tensor<?x2x3xf32>) {
  %w = arith.constant dense<1.0> : tensor<4x3xf32>
  %g = onnx.node "GatherND"(%w, %idx) {node_attributes = {batch_dims = 0 : i64}, version = 18 : i64} : (tensor<4x3xf32>, tensor<?x2xi64>) -> tensor<?xf32>
  %axes = arith.constant dense<-1> : tensor<1xi64>
  %u = onnx.node "Unsqueeze"(%ids, %axes) {version = 18 : i64} : (tensor<?x2xi64>, tensor<1xi64>) -> tensor<?x2x1xi64>
  %h = onnx.node "GatherND"(%w, %u) {node_attributes = {batch_dims = 1 : i64}, version = 18 : i64} : (tensor<4x3xf32>, tensor<?x2x1xi64>) -> tensor<?x2x3xf32>
  return %g, %h : tensor<?xf32>, tensor<?x2x3xf32>
}

// CastLike of a constant is the constant in the other operand's type (torch
// writes zeros_like's 0 as an int64 constant).
// CHECK-LABEL: func.func @cast_like
// CHECK: %[[Z:.*]] = arith.constant dense<0.000000e+00> : tensor<f32>
// CHECK: onnx.node "Expand"(%[[Z]],
// CHECK-NOT: CastLike
func.func @cast_like(%x: tensor<?x4xf32>) -> tensor<?x4xf32> {
  %zero = arith.constant dense<0> : tensor<i64>
  %z = onnx.node "CastLike"(%zero, %x) {version = 18 : i64} : (tensor<i64>, tensor<?x4xf32>) -> tensor<f32>
  %s = onnx.node "Shape"(%x) {version = 18 : i64} : (tensor<?x4xf32>) -> tensor<2xi64>
  %e = onnx.node "Expand"(%z, %s) {version = 18 : i64} : (tensor<f32>, tensor<2xi64>) -> tensor<?x4xf32>
  return %e : tensor<?x4xf32>
}

// A linear layer's transposed weight, x @ w.t(), is folded into the
// constant; a transposed constant used otherwise stays a Transpose.
// CHECK-LABEL: func.func @linear_weight
// CHECK: %[[WT:.*]] = arith.constant dense<{{\[\[}}1.000000e+00, 4.000000e+00], [2.000000e+00, 5.000000e+00], [3.000000e+00, 6.000000e+00]]> : tensor<3x2xf32>
// CHECK: onnx.node "MatMul"(%{{.*}}, %[[WT]])
// CHECK: onnx.node "Transpose"
func.func @linear_weight(%x: tensor<?x3xf32>) -> (tensor<?x2xf32>, tensor<3x2xf32>) {
  %w = arith.constant dense<[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]> : tensor<2x3xf32>
  %wt = onnx.node "Transpose"(%w) {node_attributes = {perm = array<i64: 1, 0>}, version = 18 : i64} : (tensor<2x3xf32>) -> tensor<3x2xf32>
  %y = onnx.node "MatMul"(%x, %wt) {version = 18 : i64} : (tensor<?x3xf32>, tensor<3x2xf32>) -> tensor<?x2xf32>
  %v = arith.constant dense<[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]> : tensor<2x3xf32>
  %vt = onnx.node "Transpose"(%v) {node_attributes = {perm = array<i64: 1, 0>}, version = 18 : i64} : (tensor<2x3xf32>) -> tensor<3x2xf32>
  return %y, %vt : tensor<?x2xf32>, tensor<3x2xf32>
}

// Gemm(x, W) with a constant W, alpha 1 and no C is MatMul(x, W^T) (transB)
// or MatMul(x, W); anything else stays a Gemm: a C, alpha != 1, transA, a
// weight with another use (transB), a mistyped attribute.
// CHECK-LABEL: func.func @gemm
// CHECK: %[[WT:.*]] = arith.constant dense<{{\[\[}}1.000000e+00, 3.000000e+00], [2.000000e+00, 4.000000e+00]]> : tensor<2x2xf32>
// CHECK: onnx.node "MatMul"(%{{.*}}, %[[WT]])
// CHECK: onnx.node "MatMul"(%{{.*}}, %{{.*}})
// CHECK-COUNT-5: onnx.node "Gemm"
// CHECK-NOT: onnx.node "Gemm"
func.func @gemm(%x: tensor<?x2xf32>, %c: tensor<2xf32>) -> (tensor<?x2xf32>, tensor<?x2xf32>, tensor<?x2xf32>, tensor<?x2xf32>, tensor<?x2xf32>, tensor<?x2xf32>, tensor<?x2xf32>, tensor<2x2xf32>) {
  %w = arith.constant dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>
  %a = onnx.node "Gemm"(%x, %w) {node_attributes = {transB = 1 : i64}, version = 20 : i64} : (tensor<?x2xf32>, tensor<2x2xf32>) -> tensor<?x2xf32>
  %v = arith.constant dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>
  %b = onnx.node "Gemm"(%x, %v) {node_attributes = {alpha = 1.0 : f32}, version = 20 : i64} : (tensor<?x2xf32>, tensor<2x2xf32>) -> tensor<?x2xf32>
  %u = arith.constant dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>
  %c1 = onnx.node "Gemm"(%x, %u, %c) {node_attributes = {transB = 1 : i64}, version = 20 : i64} : (tensor<?x2xf32>, tensor<2x2xf32>, tensor<2xf32>) -> tensor<?x2xf32>
  %t = arith.constant dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>
  %c2 = onnx.node "Gemm"(%x, %t) {node_attributes = {alpha = 2.0 : f32}, version = 20 : i64} : (tensor<?x2xf32>, tensor<2x2xf32>) -> tensor<?x2xf32>
  %s = arith.constant dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>
  %c3 = onnx.node "Gemm"(%x, %s) {node_attributes = {transA = 1 : i64}, version = 20 : i64} : (tensor<?x2xf32>, tensor<2x2xf32>) -> tensor<?x2xf32>
  %r = arith.constant dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>
  %c4 = onnx.node "Gemm"(%x, %r) {node_attributes = {transB = 1.0 : f32}, version = 20 : i64} : (tensor<?x2xf32>, tensor<2x2xf32>) -> tensor<?x2xf32>
  %q = arith.constant dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>
  %c5 = onnx.node "Gemm"(%x, %q) {node_attributes = {transB = 1 : i64}, version = 20 : i64} : (tensor<?x2xf32>, tensor<2x2xf32>) -> tensor<?x2xf32>
  %qt = onnx.node "Identity"(%q) {version = 20 : i64} : (tensor<2x2xf32>) -> tensor<2x2xf32>
  return %a, %b, %c1, %c2, %c3, %c4, %c5, %qt : tensor<?x2xf32>, tensor<?x2xf32>, tensor<?x2xf32>, tensor<?x2xf32>, tensor<?x2xf32>, tensor<?x2xf32>, tensor<?x2xf32>, tensor<2x2xf32>
}

// GatherND over Unsqueeze(ids) on an axis that is not the last, or with a
// mistyped batch_dims, stays.
// CHECK-LABEL: func.func @gather_nd_not_rows
// CHECK-COUNT-2: onnx.node "GatherND"
func.func @gather_nd_not_rows(%ids: tensor<?x2xi64>) -> (tensor<?x3xf32>, tensor<?x2x3xf32>) {
  %w = arith.constant dense<1.0> : tensor<4x3xf32>
  %axes = arith.constant dense<0> : tensor<1xi64>
  %u = onnx.node "Unsqueeze"(%ids, %axes) {version = 18 : i64} : (tensor<?x2xi64>, tensor<1xi64>) -> tensor<1x?x2xi64>
  %g = onnx.node "GatherND"(%w, %u) {node_attributes = {batch_dims = 0 : i64}, version = 18 : i64} : (tensor<4x3xf32>, tensor<1x?x2xi64>) -> tensor<?x3xf32>
  %last = arith.constant dense<-1> : tensor<1xi64>
  %v = onnx.node "Unsqueeze"(%ids, %last) {version = 18 : i64} : (tensor<?x2xi64>, tensor<1xi64>) -> tensor<?x2x1xi64>
  %h = onnx.node "GatherND"(%w, %v) {node_attributes = {batch_dims = "0"}, version = 18 : i64} : (tensor<4x3xf32>, tensor<?x2x1xi64>) -> tensor<?x2x3xf32>
  return %g, %h : tensor<?x3xf32>, tensor<?x2x3xf32>
}

// Malformed nodes (too few inputs) are left to the conversion, which
// reports them; the preparation reads nothing that is not there.
// CHECK-LABEL: func.func @malformed
// CHECK: onnx.node "Gather"
// CHECK: onnx.node "Gemm"
// CHECK: onnx.node "Identity"
func.func @malformed(%x: tensor<?x4xf32>) -> (tensor<*xi64>, tensor<*xf32>, tensor<?x4xf32>) {
  %s = onnx.node "Shape"(%x) {version = 18 : i64} : (tensor<?x4xf32>) -> tensor<2xi64>
  %g = onnx.node "Gather"(%s) {version = 18 : i64} : (tensor<2xi64>) -> tensor<*xi64>
  %m = onnx.node "Gemm"(%x) {version = 20 : i64} : (tensor<?x4xf32>) -> tensor<*xf32>
  %i = onnx.node "Identity"(%x, %x) {version = 18 : i64} : (tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  return %g, %m, %i : tensor<*xi64>, tensor<*xf32>, tensor<?x4xf32>
}

// Malformed nodes in the places the per-expert matchers look (a one-input
// GatherND or Gather, a TopK with one result, a zero-output Transpose):
// nothing is raised and nothing is read that is not there.
// CHECK-LABEL: func.func @malformed_loop
// CHECK-NOT: RoutedExperts
func.func @malformed_loop(%x: tensor<?x4xf32>, %ids: tensor<?x2xi64>, %acc: tensor<?x4xf32>) -> tensor<?x4xf32> {
  %axes = arith.constant dense<-1> : tensor<1xi64>
  %u = onnx.node "Unsqueeze"(%ids, %axes) {version = 18 : i64} : (tensor<?x2xi64>, tensor<1xi64>) -> tensor<?x2x1xi64>
  %g = onnx.node "GatherND"(%x) {version = 18 : i64} : (tensor<?x4xf32>) -> tensor<?x4xf32>
  %t = onnx.node "Gather"(%ids) {version = 18 : i64} : (tensor<?x2xi64>) -> tensor<?x4xf32>
  onnx.node "Transpose"(%t) {node_attributes = {perm = array<i64: 1, 0, 2>}, version = 18 : i64} : (tensor<?x4xf32>) -> ()
  %k = arith.constant dense<2> : tensor<1xi64>
  %v = onnx.node "TopK"(%x, %k) {version = 18 : i64} : (tensor<?x4xf32>, tensor<1xi64>) -> tensor<?x2xf32>
  %m = onnx.node "Mul"(%g, %t) {version = 18 : i64} : (tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  %s = onnx.node "ScatterND"(%acc, %u, %m) {node_attributes = {reduction = "add"}, version = 18 : i64} : (tensor<?x4xf32>, tensor<?x2x1xi64>, tensor<?x4xf32>) -> tensor<?x4xf32>
  %n = onnx.node "NonZero"() {version = 18 : i64} : () -> tensor<2x?xi64>
  return %s : tensor<?x4xf32>
}

// A shared layer's weight (MoEUT: one MatMul per repeat) is folded once
// for every MatMul reading it; with any other user it stays a Transpose.
// CHECK-LABEL: func.func @shared_linear_weight
// CHECK: %[[WT:.*]] = arith.constant dense<{{\[\[}}1.000000e+00, 3.000000e+00], [2.000000e+00, 4.000000e+00]]> : tensor<2x2xf32>
// CHECK: onnx.node "MatMul"(%{{.*}}, %[[WT]])
// CHECK: onnx.node "MatMul"(%{{.*}}, %[[WT]])
// CHECK: onnx.node "Transpose"
// CHECK: onnx.node "MatMul"
// CHECK: onnx.node "Relu"
func.func @shared_linear_weight(%x: tensor<?x2xf32>, %y: tensor<?x2xf32>) -> (tensor<?x2xf32>, tensor<?x2xf32>, tensor<?x2xf32>, tensor<2x2xf32>) {
  %w = arith.constant dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>
  %wt = onnx.node "Transpose"(%w) {node_attributes = {perm = array<i64: 1, 0>}, version = 20 : i64} : (tensor<2x2xf32>) -> tensor<2x2xf32>
  %a = onnx.node "MatMul"(%x, %wt) {version = 20 : i64} : (tensor<?x2xf32>, tensor<2x2xf32>) -> tensor<?x2xf32>
  %b = onnx.node "MatMul"(%y, %wt) {version = 20 : i64} : (tensor<?x2xf32>, tensor<2x2xf32>) -> tensor<?x2xf32>
  %v = arith.constant dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>
  %vt = onnx.node "Transpose"(%v) {node_attributes = {perm = array<i64: 1, 0>}, version = 20 : i64} : (tensor<2x2xf32>) -> tensor<2x2xf32>
  %c = onnx.node "MatMul"(%x, %vt) {version = 20 : i64} : (tensor<?x2xf32>, tensor<2x2xf32>) -> tensor<?x2xf32>
  %r = onnx.node "Relu"(%vt) {version = 20 : i64} : (tensor<2x2xf32>) -> tensor<2x2xf32>
  return %a, %b, %c, %r : tensor<?x2xf32>, tensor<?x2xf32>, tensor<?x2xf32>, tensor<2x2xf32>
}

// A Cast of a float to its own type goes; a real conversion stays, and so
// does a Cast to f32 of an unranked result whose element type no rule
// gives (TopK's indices: the importer's tensor<*xf32> is a placeholder).
// An unranked result of a rule's op (Relu) has its input's element type.
// CHECK-LABEL: func.func @identity_cast
// CHECK-SAME: (%[[X:.*]]: tensor<?x4xf32>, %[[I:.*]]: tensor<?x4xi64>
// CHECK-NEXT: %[[R:.*]] = onnx.node "Relu"(%[[X]])
// CHECK-NEXT: %[[IF:.*]] = onnx.node "Cast"(%[[I]]) {node_attributes = {to = 1 : i64}
// CHECK-NEXT: %[[U:.*]] = onnx.node "Relu"(%[[X]]) {{.*}} -> tensor<*xf32>
// CHECK-NEXT: %[[K:.*]] = onnx.node "Constant"
// CHECK-NEXT: %[[TOPK:.*]]:2 = onnx.node "TopK"
// CHECK-NEXT: %[[IDXF:.*]] = onnx.node "Cast"(%[[TOPK]]#1) {node_attributes = {to = 1 : i64}
// CHECK-NEXT: return %[[R]], %[[IF]], %[[U]], %[[IDXF]]
func.func @identity_cast(%x: tensor<?x4xf32>, %i: tensor<?x4xi64>) -> (tensor<?x4xf32>, tensor<?x4xf32>, tensor<*xf32>, tensor<*xf32>) {
  %a = onnx.node "Cast"(%x) {node_attributes = {to = 1 : i64}, version = 17 : i64} : (tensor<?x4xf32>) -> tensor<?x4xf32>
  %r = onnx.node "Relu"(%a) {version = 17 : i64} : (tensor<?x4xf32>) -> tensor<?x4xf32>
  %if = onnx.node "Cast"(%i) {node_attributes = {to = 1 : i64}, version = 17 : i64} : (tensor<?x4xi64>) -> tensor<?x4xf32>
  %u0 = onnx.node "Relu"(%x) {version = 17 : i64} : (tensor<?x4xf32>) -> tensor<*xf32>
  %u = onnx.node "Cast"(%u0) {node_attributes = {to = 1 : i64}, version = 17 : i64} : (tensor<*xf32>) -> tensor<*xf32>
  %k = onnx.node "Constant"() {node_attributes = {value = dense<2> : tensor<1xi64>}, version = 17 : i64} : () -> tensor<1xi64>
  %vals, %idx = onnx.node "TopK"(%x, %k) {version = 17 : i64} : (tensor<?x4xf32>, tensor<1xi64>) -> (tensor<*xf32>, tensor<*xf32>)
  %idxf = onnx.node "Cast"(%idx) {node_attributes = {to = 1 : i64}, version = 17 : i64} : (tensor<*xf32>) -> tensor<*xf32>
  return %r, %if, %u, %idxf : tensor<?x4xf32>, tensor<?x4xf32>, tensor<*xf32>, tensor<*xf32>
}

// An attention core whose tensors ONNX shape inference left unranked (a
// TorchScript export with dynamic axes): their ranks (Transpose's perm,
// MatMul's operands) and element types come from the graph, so it is
// raised, the division by 2 as the scale 0.5 and the f32 -> f32 Cast
// dropped. With q from a OneHot (no rule: its element type is not known,
// whatever the placeholder says) it is not.
// CHECK-LABEL: func.func @unranked_core
// CHECK: onnx.node "MaskedAttention"({{.*}}) {domain = "org.moe_mlir.internal", node_attributes = {scale = 5.000000e-01 : f32}
// CHECK-NOT: onnx.node "Softmax"
// CHECK: return
func.func @unranked_core(%q: tensor<2x4x5x8xf32>, %k: tensor<2x4x5x8xf32>, %v: tensor<2x4x5x6xf32>) -> tensor<*xf32> {
  %kt = onnx.node "Transpose"(%k) {node_attributes = {perm = array<i64: 0, 1, 3, 2>}, version = 17 : i64} : (tensor<2x4x5x8xf32>) -> tensor<*xf32>
  %qr = onnx.node "Relu"(%q) {version = 17 : i64} : (tensor<2x4x5x8xf32>) -> tensor<*xf32>
  %s = onnx.node "MatMul"(%qr, %kt) {version = 17 : i64} : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
  %c = arith.constant dense<2.0> : tensor<f32>
  %d = onnx.node "Div"(%s, %c) {version = 17 : i64} : (tensor<*xf32>, tensor<f32>) -> tensor<*xf32>
  %p = onnx.node "Softmax"(%d) {node_attributes = {axis = -1 : i64}, version = 17 : i64} : (tensor<*xf32>) -> tensor<*xf32>
  %p2 = onnx.node "Cast"(%p) {node_attributes = {to = 1 : i64}, version = 17 : i64} : (tensor<*xf32>) -> tensor<*xf32>
  %y = onnx.node "MatMul"(%p2, %v) {version = 17 : i64} : (tensor<*xf32>, tensor<2x4x5x6xf32>) -> tensor<*xf32>
  return %y : tensor<*xf32>
}
// Keys and values repeated across heads by Tile (JetMoE's TorchScript
// export), unranked: Tile keeps its input's rank and element type.
// CHECK-LABEL: func.func @unranked_tiled_keys
// CHECK: onnx.node "MaskedAttention"({{.*}}) {domain = "org.moe_mlir.internal", node_attributes = {scale = 1.000000e+00 : f32}
// CHECK-NOT: onnx.node "Softmax"
// CHECK: return
func.func @unranked_tiled_keys(%q: tensor<2x4x5x8xf32>, %k: tensor<2x2x5x8xf32>, %v: tensor<2x2x5x6xf32>) -> tensor<*xf32> {
  %reps = arith.constant dense<[1, 2, 1, 1]> : tensor<4xi64>
  %kr = onnx.node "Tile"(%k, %reps) {version = 13 : i64} : (tensor<2x2x5x8xf32>, tensor<4xi64>) -> tensor<*xf32>
  %vr = onnx.node "Tile"(%v, %reps) {version = 13 : i64} : (tensor<2x2x5x6xf32>, tensor<4xi64>) -> tensor<*xf32>
  %kt = onnx.node "Transpose"(%kr) {node_attributes = {perm = array<i64: 0, 1, 3, 2>}, version = 17 : i64} : (tensor<*xf32>) -> tensor<*xf32>
  %s = onnx.node "MatMul"(%q, %kt) {version = 17 : i64} : (tensor<2x4x5x8xf32>, tensor<*xf32>) -> tensor<*xf32>
  %p = onnx.node "Softmax"(%s) {node_attributes = {axis = -1 : i64}, version = 17 : i64} : (tensor<*xf32>) -> tensor<*xf32>
  %y = onnx.node "MatMul"(%p, %vr) {version = 17 : i64} : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
  return %y : tensor<*xf32>
}
// q and k split into two parts and concatenated back (DeepSeek-V3's MLA
// splits them into unrotated and rotated parts), unranked: each result of
// Split has its input's rank and element type.
// CHECK-LABEL: func.func @unranked_split_parts
// CHECK: onnx.node "MaskedAttention"({{.*}}) {domain = "org.moe_mlir.internal", node_attributes = {scale = 1.000000e+00 : f32}
// CHECK-NOT: onnx.node "Softmax"
// CHECK: return
func.func @unranked_split_parts(%q: tensor<2x4x5x8xf32>, %k: tensor<2x4x5x8xf32>, %v: tensor<2x4x5x6xf32>) -> tensor<*xf32> {
  %sizes = arith.constant dense<[6, 2]> : tensor<2xi64>
  %qa, %qb = onnx.node "Split"(%q, %sizes) {node_attributes = {axis = -1 : i64}, version = 13 : i64} : (tensor<2x4x5x8xf32>, tensor<2xi64>) -> (tensor<*xf32>, tensor<*xf32>)
  %qn = onnx.node "Neg"(%qb) {version = 13 : i64} : (tensor<*xf32>) -> tensor<*xf32>
  %qc = onnx.node "Concat"(%qa, %qn) {node_attributes = {axis = -1 : i64}, version = 13 : i64} : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
  %kt = onnx.node "Transpose"(%k) {node_attributes = {perm = array<i64: 0, 1, 3, 2>}, version = 17 : i64} : (tensor<2x4x5x8xf32>) -> tensor<*xf32>
  %s = onnx.node "MatMul"(%qc, %kt) {version = 17 : i64} : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
  %p = onnx.node "Softmax"(%s) {node_attributes = {axis = -1 : i64}, version = 17 : i64} : (tensor<*xf32>) -> tensor<*xf32>
  %y = onnx.node "MatMul"(%p, %v) {version = 17 : i64} : (tensor<*xf32>, tensor<2x4x5x6xf32>) -> tensor<*xf32>
  return %y : tensor<*xf32>
}
// CHECK-LABEL: func.func @unranked_core_unknown_type
// CHECK: onnx.node "Softmax"
// CHECK-NOT: MaskedAttention
func.func @unranked_core_unknown_type(%i: tensor<2x4x5xi64>, %k: tensor<2x4x5x8xf32>, %v: tensor<2x4x5x6xf32>) -> tensor<*xf32> {
  %depth = arith.constant dense<8> : tensor<i64>
  %vals = arith.constant dense<[0.0, 1.0]> : tensor<2xf32>
  %q = onnx.node "OneHot"(%i, %depth, %vals) {version = 17 : i64} : (tensor<2x4x5xi64>, tensor<i64>, tensor<2xf32>) -> tensor<*xf32>
  %kt = onnx.node "Transpose"(%k) {node_attributes = {perm = array<i64: 0, 1, 3, 2>}, version = 17 : i64} : (tensor<2x4x5x8xf32>) -> tensor<*xf32>
  %s = onnx.node "MatMul"(%q, %kt) {version = 17 : i64} : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
  %p = onnx.node "Softmax"(%s) {node_attributes = {axis = -1 : i64}, version = 17 : i64} : (tensor<*xf32>) -> tensor<*xf32>
  %y = onnx.node "MatMul"(%p, %v) {version = 17 : i64} : (tensor<*xf32>, tensor<2x4x5x6xf32>) -> tensor<*xf32>
  return %y : tensor<*xf32>
}

// Malformed: a Cast and a Relu of a function argument that is no tensor
// are left alone (no element type to read).
// CHECK-LABEL: func.func @cast_of_scalar_argument
// CHECK: onnx.node "Cast"
func.func @cast_of_scalar_argument(%x: f32) -> tensor<*xf32> {
  %a = onnx.node "Relu"(%x) {version = 17 : i64} : (f32) -> tensor<*xf32>
  %b = onnx.node "Cast"(%x) {node_attributes = {to = 1 : i64}, version = 17 : i64} : (f32) -> tensor<*xf32>
  %c = onnx.node "Add"(%a, %b) {version = 17 : i64} : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
  return %c : tensor<*xf32>
}

// A division whose reciprocal is no normal f32 (1 / 1e-39 is inf as an
// f32 scale) is not raised.
// CHECK-LABEL: func.func @divided_by_tiny
// CHECK: onnx.node "Softmax"
// REPORT: remark: attention not raised: the scores are divided by a constant whose reciprocal is not a normal f32
func.func @divided_by_tiny(%q: tensor<2x4x5x8xf32>, %kt: tensor<2x4x8x5xf32>, %v: tensor<2x4x5x6xf32>) -> tensor<2x4x5x6xf32> {
  %s = onnx.node "MatMul"(%q, %kt) {version = 17 : i64} : (tensor<2x4x5x8xf32>, tensor<2x4x8x5xf32>) -> tensor<2x4x5x5xf32>
  %c = arith.constant dense<1.0e-39> : tensor<f32>
  %d = onnx.node "Div"(%s, %c) {version = 17 : i64} : (tensor<2x4x5x5xf32>, tensor<f32>) -> tensor<2x4x5x5xf32>
  %p = onnx.node "Softmax"(%d) {node_attributes = {axis = -1 : i64}, version = 17 : i64} : (tensor<2x4x5x5xf32>) -> tensor<2x4x5x5xf32>
  %y = onnx.node "MatMul"(%p, %v) {version = 17 : i64} : (tensor<2x4x5x5xf32>, tensor<2x4x5x6xf32>) -> tensor<2x4x5x6xf32>
  return %y : tensor<2x4x5x6xf32>
}

// RUN: moe-opt %s --one-shot-bufferize="test-analysis-only bufferize-function-boundaries" --split-input-file | FileCheck %s

// moe's SubsetOpInterface models of tensor slices (lib/Transforms/
// SliceSubsets.cpp) replace upstream's: slices of the same SSA offsets,
// sizes and strides are equivalent without a value-bounds proof. The loop
// never runs (5 to 2), so the value-bounds constraint set of its induction
// variable is empty and upstream's models (mlir-opt) cannot prove the
// extract_slice and the insert_slice equivalent: they copy the slice
// ("false"). A "true" here shows that moe's models are the ones attached,
// which takes registering them before upstream's.

// CHECK-LABEL: func @same_values
// CHECK: tensor.extract_slice {{.*}} {__inplace_operands_attr__ = ["true", "none", "none"]}
// CHECK: tensor.insert_slice {{.*}} {__inplace_operands_attr__ = ["true", "true", "none", "none"]}
func.func @same_values(%t: tensor<?xf32>, %v: f32, %n: index) -> tensor<?xf32> {
  %c5 = arith.constant 5 : index
  %c2 = arith.constant 2 : index
  %c1 = arith.constant 1 : index
  %r = scf.for %i = %c5 to %c2 step %c1 iter_args(%a = %t) -> tensor<?xf32> {
    %s = tensor.extract_slice %a[%i] [%n] [1] : tensor<?xf32> to tensor<?xf32>
    %f = linalg.fill ins(%v : f32) outs(%s : tensor<?xf32>) -> tensor<?xf32>
    %u = tensor.insert_slice %f into %a[%i] [%n] [1] : tensor<?xf32> into tensor<?xf32>
    scf.yield %u : tensor<?xf32>
  }
  return %r : tensor<?xf32>
}

// -----

// The same pair with tensor.parallel_insert_slice. Upstream's models find
// it in place too (an scf.forall's empty range leaves the set non-empty):
// this case checks that moe's model of parallel_insert_slice keeps the
// match.

// CHECK-LABEL: func @parallel_same_values
// CHECK: tensor.extract_slice {{.*}} {__inplace_operands_attr__ = ["true", "none", "none"]}
// CHECK: tensor.parallel_insert_slice {{.*}} {__inplace_operands_attr__ = ["true", "true", "none", "none"]}
func.func @parallel_same_values(%t: tensor<?x?xf32>, %v: f32,
                                %n: index) -> tensor<?x?xf32> {
  %r = scf.forall (%i) in (0) shared_outs(%a = %t) -> tensor<?x?xf32> {
    %s = tensor.extract_slice %a[%i, 0] [1, %n] [1, 1] : tensor<?x?xf32> to tensor<1x?xf32>
    %f = linalg.fill ins(%v : f32) outs(%s : tensor<1x?xf32>) -> tensor<1x?xf32>
    scf.forall.in_parallel {
      tensor.parallel_insert_slice %f into %a[%i, 0] [1, %n] [1, 1] : tensor<1x?xf32> into tensor<?x?xf32>
    }
  }
  return %r : tensor<?x?xf32>
}

// -----

// Different SSA values still go through upstream's value-bounds proof:
// %m = %n + 0 is the same size (in place), %k is unrelated (a copy).

// CHECK-LABEL: func @proved_and_unknown
// CHECK: tensor.extract_slice {{.*}} {__inplace_operands_attr__ = ["true", "none"]}
// CHECK: tensor.insert_slice {{.*}} {__inplace_operands_attr__ = ["true", "true", "none"]}
// CHECK: tensor.extract_slice {{.*}} {__inplace_operands_attr__ = ["false", "none"]}
// CHECK: tensor.insert_slice {{.*}} {__inplace_operands_attr__ = ["true", "true", "none"]}
func.func @proved_and_unknown(%t: tensor<?xf32>, %v: f32, %n: index,
                              %k: index) -> tensor<?xf32> {
  %c0 = arith.constant 0 : index
  %m = arith.addi %n, %c0 : index
  %s = tensor.extract_slice %t[0] [%n] [1] : tensor<?xf32> to tensor<?xf32>
  %f = linalg.fill ins(%v : f32) outs(%s : tensor<?xf32>) -> tensor<?xf32>
  %u = tensor.insert_slice %f into %t[0] [%m] [1] : tensor<?xf32> into tensor<?xf32>
  %s2 = tensor.extract_slice %u[0] [%n] [1] : tensor<?xf32> to tensor<?xf32>
  %f2 = linalg.fill ins(%v : f32) outs(%s2 : tensor<?xf32>) -> tensor<?xf32>
  %u2 = tensor.insert_slice %f2 into %u[0] [%k] [1] : tensor<?xf32> into tensor<?xf32>
  return %u2 : tensor<?xf32>
}

// RUN: moe-opt %s --split-input-file --moe-fold-constant-layouts | FileCheck %s
// RUN: moe-opt %s --split-input-file --moe-fold-constant-layouts="max-elements=4" | FileCheck %s --check-prefix=LIMIT
// RUN: moe-opt %s --split-input-file --moe-fold-constant-layouts="selectors-by-column=false" | FileCheck %s --check-prefix=OFF

// A transpose of a constant is evaluated: the weight is stored transposed.
// CHECK-LABEL: func.func @transposed_weight
// CHECK-NOT:     linalg.transpose
// CHECK-NOT:     linalg.generic
// CHECK:         %[[W:.+]] = arith.constant dense<{{\[\[\[}}1.000000e+00, 4.000000e+00], [2.000000e+00, 5.000000e+00], [3.000000e+00, 6.000000e+00]]]> : tensor<1x3x2xf32>
// CHECK:         return %[[W]]
// Above the size limit it is left for run time.
// LIMIT-LABEL: func.func @transposed_weight
// LIMIT:         linalg.transpose
func.func @transposed_weight() -> tensor<1x3x2xf32> {
  %w = arith.constant dense<[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]]> : tensor<1x2x3xf32>
  %e = tensor.empty() : tensor<1x3x2xf32>
  %t = linalg.transpose ins(%w : tensor<1x2x3xf32>) outs(%e : tensor<1x3x2xf32>) permutation = [0, 2, 1]
  return %t : tensor<1x3x2xf32>
}

// -----

// A transpose of a value computed at run time stays.
// CHECK-LABEL: func.func @dynamic_input
// CHECK:         linalg.transpose
func.func @dynamic_input(%x: tensor<2x3xf32>) -> tensor<3x2xf32> {
  %e = tensor.empty() : tensor<3x2xf32>
  %t = linalg.transpose ins(%x : tensor<2x3xf32>) outs(%e : tensor<3x2xf32>) permutation = [1, 0]
  return %t : tensor<3x2xf32>
}

// -----

// A constant selector [E, D] is stored [D, E] and handed back through a
// transpose just before its op; the row-major constant goes once nothing
// reads it. Two ops reading one selector share the transposed constant,
// and each gets its own transpose.
// CHECK-LABEL: func.func @ffn_selector
// CHECK-SAME:    %[[X:[a-z0-9]+]]: tensor<?x2xf32>
// CHECK-NOT:     arith.constant {{.*}} : tensor<3x2xf32>
// CHECK:         %[[ST:.+]] = arith.constant dense<{{\[\[}}1.000000e+00, 3.000000e+00, 5.000000e+00], [2.000000e+00, 4.000000e+00, 6.000000e+00]]> : tensor<2x3xf32>
// CHECK-NOT:     arith.constant {{.*}} : tensor<3x2xf32>
// CHECK:         %[[E1:.+]] = tensor.empty() : tensor<3x2xf32>
// CHECK-NEXT:    %[[S1:.+]] = linalg.transpose ins(%[[ST]] : tensor<2x3xf32>) outs(%[[E1]] : tensor<3x2xf32>) permutation = [1, 0]
// CHECK-NEXT:    %[[Y1:.+]] = moe.ffn %[[X]], %[[S1]],
// CHECK:         %[[E2:.+]] = tensor.empty() : tensor<3x2xf32>
// CHECK-NEXT:    %[[S2:.+]] = linalg.transpose ins(%[[ST]] : tensor<2x3xf32>) outs(%[[E2]] : tensor<3x2xf32>) permutation = [1, 0]
// CHECK-NEXT:    moe.ffn %[[Y1]], %[[S2]],
// Switched off, the selector stays as it is.
// OFF-LABEL: func.func @ffn_selector
// OFF-NOT:     linalg.transpose
// OFF:         %[[S:.+]] = arith.constant dense<{{\[\[}}1.000000e+00, 2.000000e+00], [3.000000e+00, 4.000000e+00], [5.000000e+00, 6.000000e+00]]> : tensor<3x2xf32>
// OFF-NOT:     linalg.transpose
// OFF:         moe.ffn %{{.+}}, %[[S]],
// OFF-NOT:     linalg.transpose
func.func @ffn_selector(%x: tensor<?x2xf32>, %w1: tensor<3x2x4xf32>, %w2: tensor<3x4x2xf32>) -> tensor<?x2xf32> {
  %s = arith.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]> : tensor<3x2xf32>
  %y = moe.ffn %x, %s, %w1, %w2 gate<sigmoid> act<relu> {k = 2 : i64}
      : (tensor<?x2xf32>, tensor<3x2xf32>, tensor<3x2x4xf32>, tensor<3x4x2xf32>) -> tensor<?x2xf32>
  %z = moe.ffn %y, %s, %w1, %w2 gate<sigmoid> act<relu> {k = 2 : i64}
      : (tensor<?x2xf32>, tensor<3x2xf32>, tensor<3x2x4xf32>, tensor<3x4x2xf32>) -> tensor<?x2xf32>
  return %z : tensor<?x2xf32>
}

// -----

// A selector that something else reads too keeps its row-major constant
// for that reader. A selector computed at run time, and a splat one
// (outlined as a fill), stay as they are.
// CHECK-LABEL: func.func @shared_and_dynamic
// CHECK-DAG:     %[[S:.+]] = arith.constant dense<{{\[\[}}1.000000e+00, 2.000000e+00], [3.000000e+00, 4.000000e+00], [5.000000e+00, 6.000000e+00]]> : tensor<3x2xf32>
// CHECK-DAG:     %[[ST:.+]] = arith.constant dense<{{\[\[}}1.000000e+00, 3.000000e+00, 5.000000e+00], [2.000000e+00, 4.000000e+00, 6.000000e+00]]> : tensor<2x3xf32>
// CHECK-DAG:     %[[SPLAT:.+]] = arith.constant dense<5.000000e-01> : tensor<3x2xf32>
// CHECK:         %[[T:.+]] = linalg.transpose ins(%[[ST]] : tensor<2x3xf32>)
// CHECK-NEXT:    %[[Y:.+]] = moe.ffn %{{.+}}, %[[T]],
// CHECK-NEXT:    %[[Z:.+]] = moe.ffn %[[Y]], %{{[a-z0-9]+}}, %{{.+}}
// CHECK-NEXT:    %[[V:.+]] = moe.ffn %[[Z]], %[[SPLAT]],
// CHECK-NEXT:    return %[[V]], %[[S]]
func.func @shared_and_dynamic(%x: tensor<?x2xf32>, %sd: tensor<3x2xf32>, %w1: tensor<3x2x4xf32>, %w2: tensor<3x4x2xf32>) -> (tensor<?x2xf32>, tensor<3x2xf32>) {
  %s = arith.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]> : tensor<3x2xf32>
  %h = arith.constant dense<0.5> : tensor<3x2xf32>
  %y = moe.ffn %x, %s, %w1, %w2 gate<sigmoid> act<relu> {k = 2 : i64}
      : (tensor<?x2xf32>, tensor<3x2xf32>, tensor<3x2x4xf32>, tensor<3x4x2xf32>) -> tensor<?x2xf32>
  %z = moe.ffn %y, %sd, %w1, %w2 gate<sigmoid> act<relu> {k = 2 : i64}
      : (tensor<?x2xf32>, tensor<3x2xf32>, tensor<3x2x4xf32>, tensor<3x4x2xf32>) -> tensor<?x2xf32>
  %v = moe.ffn %z, %h, %w1, %w2 gate<sigmoid> act<relu> {k = 2 : i64}
      : (tensor<?x2xf32>, tensor<3x2xf32>, tensor<3x2x4xf32>, tensor<3x4x2xf32>) -> tensor<?x2xf32>
  return %v, %s : tensor<?x2xf32>, tensor<3x2xf32>
}

// -----

// SwitchHead's two selectors, sel_o and sel_v ([H*E, D] = [2, 3]), in
// f64 (8-byte elements).
// CHECK-LABEL: func.func @switchhead_selectors
// CHECK-DAG:     %[[OT:.+]] = arith.constant dense<{{\[\[}}1.000000e+00, 4.000000e+00], [2.000000e+00, 5.000000e+00], [3.000000e+00, 6.000000e+00]]> : tensor<3x2xf64>
// CHECK-DAG:     %[[VT:.+]] = arith.constant dense<{{\[\[}}7.000000e+00, 1.000000e+01], [8.000000e+00, 1.100000e+01], [9.000000e+00, 1.200000e+01]]> : tensor<3x2xf64>
// CHECK-DAG:     %[[O:.+]] = linalg.transpose ins(%[[OT]] : tensor<3x2xf64>) outs(%{{.+}} : tensor<2x3xf64>) permutation = [1, 0]
// CHECK-DAG:     %[[V:.+]] = linalg.transpose ins(%[[VT]] : tensor<3x2xf64>) outs(%{{.+}} : tensor<2x3xf64>) permutation = [1, 0]
// CHECK:         moe.switchhead %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %[[O]] sel_v(%[[V]])
func.func @switchhead_selectors(%x: tensor<1x3x3xf64>, %wq: tensor<3x2xf64>, %wv: tensor<2x3x2xf64>, %wo: tensor<2x2x3xf64>) -> tensor<1x3x3xf64> {
  %so = arith.constant dense<[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]> : tensor<2x3xf64>
  %sv = arith.constant dense<[[7.0, 8.0, 9.0], [10.0, 11.0, 12.0]]> : tensor<2x3xf64>
  %y = moe.switchhead %x, %x, %x, %wq, %wq, %wv, %wo, %so sel_v(%sv) {num_heads = 1 : i64, k = 1 : i64, rotate_fraction = 0.0 : f64}
      : (tensor<1x3x3xf64>, tensor<1x3x3xf64>, tensor<1x3x3xf64>, tensor<3x2xf64>, tensor<3x2xf64>,
         tensor<2x3x2xf64>, tensor<2x2x3xf64>, tensor<2x3xf64>, tensor<2x3xf64>) -> tensor<1x3x3xf64>
  return %y : tensor<1x3x3xf64>
}

// -----

// An f16 selector (2-byte elements) of a moe.ffn in f16.
// CHECK-LABEL: func.func @ffn_selector_f16
// CHECK:         %[[ST:.+]] = arith.constant dense<{{\[\[}}1.000000e+00, 3.000000e+00, 5.000000e+00], [2.000000e+00, 4.000000e+00, 6.000000e+00]]> : tensor<2x3xf16>
// CHECK:         %[[T:.+]] = linalg.transpose ins(%[[ST]] : tensor<2x3xf16>)
// CHECK-NEXT:    moe.ffn %{{.+}}, %[[T]],
func.func @ffn_selector_f16(%x: tensor<?x2xf16>, %w1: tensor<3x2x4xf16>, %w2: tensor<3x4x2xf16>) -> tensor<?x2xf16> {
  %s = arith.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]> : tensor<3x2xf16>
  %y = moe.ffn %x, %s, %w1, %w2 gate<sigmoid> act<relu> {k = 2 : i64}
      : (tensor<?x2xf16>, tensor<3x2xf16>, tensor<3x2x4xf16>, tensor<3x4x2xf16>) -> tensor<?x2xf16>
  return %y : tensor<?x2xf16>
}

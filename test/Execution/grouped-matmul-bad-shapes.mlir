// With dynamic shapes the verifier cannot check moe.grouped_matmul's
// operands: offsets of E + 1 elements, input rows of Din elements, a row
// count R dividing the slot count M. Sizes that break these are a run-time
// error status, not a read out of bounds. Good shapes run.
// RUN: rm -rf %t && mkdir -p %t
// RUN: moe-compile -q %s -o %t/gm.moeb
// RUN: %python %S/Inputs/make_grouped_matmul_inputs.py %t
// RUN: moe-run %t/gm.moeb --input x=%t/x.npy --input w=%t/w.npy --input off=%t/off.npy --input perm=%t/perm.npy | FileCheck %s --check-prefix=GOOD
// GOOD: output result0: f32 [4, 3]
// RUN: not moe-run %t/gm.moeb --input x=%t/x.npy --input w=%t/w.npy --input off=%t/off_e.npy --input perm=%t/perm.npy 2>&1 | FileCheck %s --check-prefix=SHAPE
// RUN: not moe-run %t/gm.moeb --input x=%t/x_narrow.npy --input w=%t/w.npy --input off=%t/off.npy --input perm=%t/perm.npy 2>&1 | FileCheck %s --check-prefix=SHAPE
// RUN: not moe-run %t/gm.moeb --input x=%t/x_three.npy --input w=%t/w.npy --input off=%t/off.npy --input perm=%t/perm.npy 2>&1 | FileCheck %s --check-prefix=SHAPE
// The shape is reported; the zeros put in its place may break the routing
// checks too, and the smaller code (an index out of range) is the one shown.
// SHAPE: moe-run: error: {{a dynamic dimension has a size the model cannot take|an index is out of range}}

func.func @main(%x: tensor<?x?xf32> {onnx.name = "x"},
                %w: tensor<?x?x3xf32> {onnx.name = "w"},
                %off: tensor<?xi32> {onnx.name = "off"},
                %perm: tensor<?xi32> {onnx.name = "perm"}) -> tensor<?x3xf32> {
  %y = moe.grouped_matmul %x, %w, %off, %perm : (tensor<?x?xf32>, tensor<?x?x3xf32>, tensor<?xi32>, tensor<?xi32>) -> tensor<?x3xf32>
  return %y : tensor<?x3xf32>
}

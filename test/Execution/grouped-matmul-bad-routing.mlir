// moe.grouped_matmul takes its offsets and permutation from moe.dispatch;
// a model that feeds it other values (here straight from its inputs) gets a
// run-time error status, not a wild read or write: a permutation entry
// outside [0, M), and offsets outside [0, M] or decreasing, are reported and
// replaced by in-bounds values. Good routing runs and matches numpy.
// RUN: rm -rf %t && mkdir -p %t
// RUN: moe-compile -q %s -o %t/gm.moeb
// RUN: %python %S/Inputs/make_grouped_matmul_inputs.py %t
// RUN: moe-run %t/gm.moeb --input x=%t/x.npy --input w=%t/w.npy --input off=%t/off.npy --input perm=%t/perm.npy --output-dir %t/good | FileCheck %s --check-prefix=GOOD
// RUN: %python -c "import numpy as np; y = np.load('%t/good/result0.npy'); e = np.load('%t/expected.npy'); assert np.allclose(y, e, rtol=1e-5, atol=1e-5), abs(y - e).max(); print('matches numpy')" | FileCheck %s --check-prefix=NUMPY
// GOOD: output result0: f32 [4, 3]
// NUMPY: matches numpy
// RUN: not moe-run %t/gm.moeb --input x=%t/x.npy --input w=%t/w.npy --input off=%t/off.npy --input perm=%t/perm_big.npy 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not moe-run %t/gm.moeb --input x=%t/x.npy --input w=%t/w.npy --input off=%t/off.npy --input perm=%t/perm_neg.npy 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not moe-run %t/gm.moeb --input x=%t/x.npy --input w=%t/w.npy --input off=%t/off_big.npy --input perm=%t/perm.npy 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not moe-run %t/gm.moeb --input x=%t/x.npy --input w=%t/w.npy --input off=%t/off_down.npy --input perm=%t/perm.npy 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not moe-run %t/gm.moeb --input x=%t/x.npy --input w=%t/w.npy --input off=%t/off.npy --input perm=%t/perm_dup.npy 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not moe-run %t/gm.moeb --input x=%t/x.npy --input w=%t/w.npy --input off=%t/off_short.npy --input perm=%t/perm.npy 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not moe-run %t/gm.moeb --input x=%t/x.npy --input w=%t/w.npy --input off=%t/off_late.npy --input perm=%t/perm.npy 2>&1 | FileCheck %s --check-prefix=BAD
// BAD: moe-run: error: an index is out of range in a gather

func.func @main(%x: tensor<2x5xf32> {onnx.name = "x"},
                %w: tensor<3x5x3xf32> {onnx.name = "w"},
                %off: tensor<4xi32> {onnx.name = "off"},
                %perm: tensor<4xi32> {onnx.name = "perm"}) -> tensor<4x3xf32> {
  %y = moe.grouped_matmul %x, %w, %off, %perm : (tensor<2x5xf32>, tensor<3x5x3xf32>, tensor<4xi32>, tensor<4xi32>) -> tensor<4x3xf32>
  return %y : tensor<4x3xf32>
}

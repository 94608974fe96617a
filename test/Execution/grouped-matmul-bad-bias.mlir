// moe.grouped_matmul's epilogue bias [E, Dout] with dynamic dims: its sizes
// are checked at run time, a bias of other than E rows or Dout columns is
// an error status, not a read past it. Good shapes match NumPy
// (relu(x[perm / 2] @ w[e] + b[e]) in slot order).
// RUN: rm -rf %t && mkdir -p %t/good
// RUN: moe-compile -q %s -o %t/gm.moeb
// RUN: %python %S/Inputs/make_grouped_matmul_inputs.py %t
// RUN: moe-run %t/gm.moeb --input x=%t/x.npy --input w=%t/w.npy --input off=%t/off.npy --input perm=%t/perm.npy --input b=%t/bias.npy --output-dir %t/good | FileCheck %s --check-prefix=GOOD
// GOOD: output result0: f32 [4, 3]
// RUN: %python -c "import numpy as np; y = np.load('%t/good/result0.npy'); e = np.load('%t/biased.npy'); assert np.allclose(y, e, rtol=1e-5, atol=1e-5), abs(y - e).max(); print('matches numpy')" | FileCheck %s --check-prefix=NUMPY
// NUMPY: matches numpy
// RUN: not moe-run %t/gm.moeb --input x=%t/x.npy --input w=%t/w.npy --input off=%t/off.npy --input perm=%t/perm.npy --input b=%t/bias_rows.npy 2>&1 | FileCheck %s --check-prefix=SHAPE
// RUN: not moe-run %t/gm.moeb --input x=%t/x.npy --input w=%t/w.npy --input off=%t/off.npy --input perm=%t/perm.npy --input b=%t/bias_cols.npy 2>&1 | FileCheck %s --check-prefix=SHAPE
// SHAPE: moe-run: error: a dynamic dimension has a size the model cannot take

func.func @main(%x: tensor<?x5xf32> {onnx.name = "x"},
                %w: tensor<3x5x3xf32> {onnx.name = "w"},
                %off: tensor<4xi32> {onnx.name = "off"},
                %perm: tensor<?xi32> {onnx.name = "perm"},
                %b: tensor<?x?xf32> {onnx.name = "b"}) -> tensor<?x3xf32> {
  %y = moe.grouped_matmul %x, %w, %off, %perm bias(%b) act<relu> : (tensor<?x5xf32>, tensor<3x5x3xf32>, tensor<4xi32>, tensor<?xi32>, tensor<?x?xf32>) -> tensor<?x3xf32>
  return %y : tensor<?x3xf32>
}

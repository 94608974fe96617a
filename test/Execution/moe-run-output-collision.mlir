// Two outputs whose file names differ only in case ("Y.npy", "y.npy") are
// one file on a case-insensitive file system: moe-run names every output's
// file first and refuses the pair before anything is run or written (the
// second would silently replace the first). Without --output-dir they are
// printed as usual; a name byte outside printable ASCII (0x9B, a C1
// control: CSI on some terminals) is printed as \xNN.
// RUN: rm -rf %t && mkdir -p %t
// RUN: moe-compile -q %s -o %t/m.moeb
// RUN: %python -c "import numpy as np; np.save('%t/ids.npy', np.array([[0, 1], [3, 2]], np.int32))"
// RUN: moe-run %t/m.moeb --input ids=%t/ids.npy | FileCheck %s --check-prefix=PRINT
// PRINT: output Y: i32 [4]
// PRINT: output y: i32 [6]
// PRINT: output \x9B: i32 [4]

// RUN: not moe-run %t/m.moeb --input ids=%t/ids.npy --output-dir %t/out 2>&1 | FileCheck %s --check-prefix=CLASH
// CLASH: moe-run: error: outputs 'Y' and 'y' would both be written to 'Y.npy' and 'y.npy', one file where case is ignored; nothing was written
// RUN: %python -c "import os; assert not os.path.exists('%t/out')"

func.func @main(%ids: tensor<2x2xi32> {onnx.name = "ids"})
    -> (tensor<4xi32> {onnx.name = "Y"},
        tensor<6xi32> {onnx.name = "y"},
        tensor<4xi32> {onnx.name = "\9B"}) {
  %o4, %p4 = moe.dispatch %ids {num_experts = 4 : i64} : tensor<2x2xi32> -> tensor<5xi32>, tensor<4xi32>
  %o5, %p5 = moe.dispatch %ids {num_experts = 5 : i64} : tensor<2x2xi32> -> tensor<6xi32>, tensor<4xi32>
  return %p4, %o5, %p5 : tensor<4xi32>, tensor<6xi32>, tensor<4xi32>
}

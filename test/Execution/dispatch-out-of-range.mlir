// An expert id outside [0, E) is a run-time error status, not a wild write:
// the code reports it to the runtime and continues on an in-bounds index.
// RUN: rm -rf %t && mkdir -p %t
// RUN: moe-compile -q %s -o %t/dispatch.moeb
// RUN: %python -c "import numpy as np; np.save('%t/bad.npy', np.array([[0, 1], [3, 4]], np.int32)); np.save('%t/good.npy', np.array([[0, 1], [3, 2]], np.int32))"
// RUN: not moe-run %t/dispatch.moeb --input ids=%t/bad.npy 2>&1 | FileCheck %s --check-prefix=BAD
// BAD: moe-run: error: an expert id outside [0, E) reached moe.dispatch
// RUN: moe-run %t/dispatch.moeb --input ids=%t/good.npy | FileCheck %s --check-prefix=GOOD
// Slots by expert: e0: 0, e1: 1, e2: 3, e3: 2.
// GOOD: output result0: i32 [4]
// GOOD-NEXT: first: 0 1 3 2

func.func @main(%ids: tensor<2x2xi32> {onnx.name = "ids"}) -> tensor<4xi32> {
  %o, %p = moe.dispatch %ids {num_experts = 4 : i64} : tensor<2x2xi32> -> tensor<5xi32>, tensor<4xi32>
  return %p : tensor<4xi32>
}

// An expert id outside [0, E) is a run-time error, not a wild write: the
// lowered code aborts with the message (cf.assert prints it on stdout, hence
// stdbuf: abort() does not flush stdio buffers). Until the runtime returns
// error statuses (moe-run), this abort is the check.
// RUN: moe-opt %s --moe-lower-to-llvm | not --crash stdbuf -o0 mlir-runner -e main -entry-point-result=i32 -shared-libs=%mlir_c_runner_utils 2>/dev/null | FileCheck %s
// CHECK: moe.dispatch: expert id out of range

// In range, the same code runs and returns perm[3] = 2 (slot 2 is expert 3's
// only slot, the last sorted position).
// RUN: sed -e 's/\[3, 4\]/[3, 2]/' %s | moe-opt --moe-lower-to-llvm | mlir-runner -e main -entry-point-result=i32 -shared-libs=%mlir_c_runner_utils | FileCheck %s --check-prefix=OK
// OK: 2

func.func @main() -> i32 {
  %ids = arith.constant dense<[[0, 1], [3, 4]]> : tensor<2x2xi32>
  %o, %p = moe.dispatch %ids {num_experts = 4 : i64} : tensor<2x2xi32> -> tensor<5xi32>, tensor<4xi32>
  %c3 = arith.constant 3 : index
  %last = tensor.extract %p[%c3] : tensor<4xi32>
  return %last : i32
}

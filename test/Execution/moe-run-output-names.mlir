// Output names come from the artifact and are untrusted: moe-run encodes
// them into file names that stay inside --output-dir (docs/runtime.md: keep
// [A-Za-z0-9_.-] but a leading '.', %XX for every other byte), creates the
// files through the directory's descriptor, replaces a planted symlink
// instead of writing through it, and prints each file it wrote.
// RUN: rm -rf %t && mkdir -p %t/out
// RUN: moe-compile -q %s -o %t/m.moeb
// RUN: %python -c "import numpy as np, os; np.save('%t/ids.npy', np.array([[0, 1], [3, 2]], np.int32)); open('%t/victim', 'w').write('precious'); os.symlink('%t/victim', '%t/out/y.npy')"
// RUN: moe-run %t/m.moeb --input ids=%t/ids.npy --output-dir %t/out | FileCheck %s
// CHECK: output ../../escaped_output: i32 [4]
// CHECK-NEXT: first: 0 1 3 2
// CHECK-NEXT: written: {{.*}}/out/%2E.%2F..%2Fescaped_output.npy
// CHECK: output a/b: i32 [6]
// CHECK: written: {{.*}}/out/a%2Fb.npy
// CHECK: output y: i32 [4]
// CHECK: written: {{.*}}/out/y.npy

// Nothing escaped, the link's target is untouched, every file loads.
// RUN: %python -c "import numpy as np, os; t = '%t'; assert not os.path.exists(os.path.join(os.path.dirname(t), 'escaped_output.npy')); assert not os.path.exists(t + '/escaped_output.npy'); assert open(t + '/victim').read() == 'precious'; assert not os.path.islink(t + '/out/y.npy'); print(sorted(os.listdir(t + '/out'))); print(np.load(t + '/out/%%2E.%%2F..%%2Fescaped_output.npy').tolist(), np.load(t + '/out/y.npy').tolist())" | FileCheck %s --check-prefix=FILES
// FILES: ['%2E.%2F..%2Fescaped_output.npy', 'a%2Fb.npy', 'y.npy']
// FILES-NEXT: [0, 1, 3, 2] [0, 1, 3, 2]

func.func @main(%ids: tensor<2x2xi32> {onnx.name = "ids"})
    -> (tensor<4xi32> {onnx.name = "../../escaped_output"},
        tensor<6xi32> {onnx.name = "a/b"},
        tensor<4xi32> {onnx.name = "y"}) {
  %o4, %p4 = moe.dispatch %ids {num_experts = 4 : i64} : tensor<2x2xi32> -> tensor<5xi32>, tensor<4xi32>
  %o5, %p5 = moe.dispatch %ids {num_experts = 5 : i64} : tensor<2x2xi32> -> tensor<6xi32>, tensor<4xi32>
  return %p4, %o5, %p5 : tensor<4xi32>, tensor<6xi32>, tensor<4xi32>
}

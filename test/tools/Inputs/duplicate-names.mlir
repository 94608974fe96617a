// Two inputs named alike: one by its onnx.name, one by the fallback name
// (arg<i>) moe-compile gives an unnamed argument (test/tools/moe-compile.test).
func.func @main(%a: tensor<4xf32> {onnx.name = "arg1"}, %b: tensor<4xf32>) -> tensor<4xf32> {
  return %b : tensor<4xf32>
}

// Two public functions nobody calls: both are entries, and the second's name
// cannot be the C symbol moe_entry_<name>.
func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}
func.func @"step.2"(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}

// RUN: moe-opt %s --split-input-file --verify-diagnostics --moe-lower-to-host-abi

// expected-error @below {{moe-lower-to-host-abi: the entry's arguments must be identity-layout memrefs}}
func.func @main(%x: tensor<4xf32>) {
  return
}

// -----

// expected-error @below {{moe-lower-to-host-abi: every function the module defines must be a public entry, found private 'helper' (inline it first)}}
func.func private @helper() {
  return
}
func.func @main() {
  return
}

// -----

// expected-error @below {{moe-lower-to-host-abi: the entry must have a single block}}
func.func @main() {
  cf.br ^bb1
^bb1:
  return
}


// -----

// expected-error @below {{moe-lower-to-host-abi: the module defines no entry function}}
module {
  func.func private @moe_report_error(i32)
}

// -----

// expected-error @below {{moe-lower-to-host-abi: element type 'i24' has no layout in the code ABI (integers and floats of 1, 8, 16, 32 or 64 bits, and index)}}
func.func @main() {
  %t = memref.alloc() : memref<10xi24>
  return
}

// -----

// expected-error @below {{moe-lower-to-host-abi: element type 'vector<8xf32>' has no layout in the code ABI}}
func.func @main(%x: memref<4xvector<8xf32>>) {
  return
}

// -----

// expected-error @below {{moe-lower-to-host-abi: weight argument 0 has a dynamic shape: 'memref<?xf32>'}}
func.func @main(%w: memref<?xf32> {moe.weight = 0 : i64}) {
  return
}

// -----

func.func @main() {
  // expected-error @below {{moe-lower-to-host-abi: alignment 128 is above the workspace's 64}}
  %t = memref.alloc() {alignment = 128 : i64} : memref<4xf32>
  return
}

// -----

// expected-error @below {{moe-lower-to-host-abi: the entry's results must be identity-layout memrefs, got 'memref<4xf32, strided<[2]>>'}}
func.func @main(%x: memref<8xf32>) -> memref<4xf32, strided<[2]>> {
  %v = memref.subview %x[0] [4] [2] : memref<8xf32> to memref<4xf32, strided<[2]>>
  return %v : memref<4xf32, strided<[2]>>
}

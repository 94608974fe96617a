// RUN: moe-opt %s --moe-approximate-math --split-input-file | FileCheck %s
// RUN: moe-opt %s --moe-approximate-math="functions=tanh" --split-input-file | FileCheck %s --check-prefix=TANH
// RUN: not moe-opt %s --moe-approximate-math="functions=exp,log" --split-input-file 2>&1 | FileCheck %s --check-prefix=UNKNOWN

// UNKNOWN: error: moe-approximate-math: unknown function 'log' (known: exp, tanh, erf)

// f32 exp, scalar (a loop body) and vector: the Cephes polynomial (clamp,
// n = floor(x log2 e + 1/2), reduction by n ln 2 in two FMAs, FMA chain,
// 2^n from the exponent bits), no math.exp left. tanh is left alone by
// default, exp is left alone with functions=tanh.
// CHECK-LABEL: func.func @exp_f32
// CHECK-NOT: math.exp
// CHECK: arith.cmpf uge
// CHECK: math.floor
// CHECK: math.fma
// CHECK: arith.fptosi {{.*}} : f32 to i32
// CHECK: arith.shli
// CHECK: arith.bitcast {{.*}} : i32 to f32
// CHECK: math.tanh
// CHECK-NOT: math.exp
// CHECK: return
// TANH-LABEL: func.func @exp_f32
// TANH: math.exp
// TANH-NOT: math.tanh
// TANH: return
func.func @exp_f32(%x: f32) -> (f32, f32) {
  %e = math.exp %x : f32
  %t = math.tanh %x : f32
  return %e, %t : f32, f32
}

// -----

// CHECK-LABEL: func.func @exp_vector
// CHECK-NOT: math.exp
// CHECK: math.fma {{.*}} : vector<16xf32>
// CHECK: arith.bitcast {{.*}} : vector<16xi32> to vector<16xf32>
// CHECK-NOT: math.exp
// CHECK: return
func.func @exp_vector(%x: vector<16xf32>) -> vector<16xf32> {
  %e = math.exp %x : vector<16xf32>
  return %e : vector<16xf32>
}

// -----

// Other element types keep libm: the polynomial is f32's.
// CHECK-LABEL: func.func @exp_f64
// CHECK: math.exp {{.*}} : f64
// CHECK: math.exp {{.*}} : f16
func.func @exp_f64(%x: f64, %h: f16) -> (f64, f16) {
  %e = math.exp %x : f64
  %g = math.exp %h : f16
  return %e, %g : f64, f16
}

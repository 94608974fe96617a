//===- ApproximateMath.cpp - math functions as vectorizable polynomials ---===//
//
// The scalar loops that compute softmax, sigmoid and SiLU call libm's expf
// once per element: the call keeps LLVM's loop vectorizer off the whole
// loop (a T = 1024 MoEUT-44M forward spent 6.6% of its time in
// __expf_fma, every subtraction and division around it scalar too).
// Upstream's polynomial approximations (the Cephes exp: range reduction by
// ln 2, a degree-6 polynomial, 2^n built from the exponent bits) are plain
// arith ops that vectorize. This pass applies them to the functions named
// in its option. Written here: only the choice of functions (upstream
// offers the patterns, not a pass that takes a list).
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"
#include "llvm/ADT/StringSet.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEAPPROXIMATEMATH
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

/// The math ops whose upstream approximations the pass accepts: those
/// with an f32 polynomial that handles the whole input range (a clamp,
/// not a wrong value, outside it).
constexpr StringLiteral kKnown[] = {"exp", "tanh", "erf"};

struct MoeApproximateMathPass
    : mlir::moe::impl::MoeApproximateMathBase<MoeApproximateMathPass> {
  using Base::Base;

  void runOnOperation() override {
    llvm::StringSet<> names;
    // (Upstream's predicate gets the op names: "math.exp".)
    if (functions.empty())
      names.insert("math.exp");
    for (const std::string &f : functions) {
      if (!llvm::is_contained(kKnown, f)) {
        getOperation()->emitError()
            << "moe-approximate-math: unknown function '" << f
            << "' (known: exp, tanh, erf)";
        return signalPassFailure();
      }
      names.insert("math." + f);
    }
    RewritePatternSet patterns(&getContext());
    populateMathPolynomialApproximationPatterns(
        patterns, [&](StringRef name) { return names.contains(name); });
    // One walk, no folding: the rest of the IR stays as it was.
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace

//===- Passes.td - moe transformation passes ---------------*- tablegen -*-===//
//
// One decomposition pass per composite op. Each pass only applies the pattern
// set exposed by moe/Transforms/Transforms.h; the `moe-decompose` pipeline
// (moe/Pipelines/Pipelines.h) runs them all.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TRANSFORMS_PASSES_TD
#define MOE_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

class Moe_DecomposePass<string arg, string opName, string parts>
    : Pass<arg> {
  let summary = "Decompose `" # opName # "` into primitive moe ops";
  let description = "Rewrites every `" # opName # "` into " # parts # ". "
      "Shapes may be dynamic; the rewrite materialises dynamic sizes with "
      "`tensor.dim` and never fails on verified IR. See docs/passes.md for "
      "the before/after IR and test/Transforms for worked examples.";
  let dependentDialects = [
    "::mlir::moe::MoeDialect",
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

def MoeDecomposeFfn : Moe_DecomposePass<"moe-decompose-ffn", "moe.ffn",
    "a selector matmul (linalg.generic), `moe.route` or `moe.switch_route`, "
    "`moe.dispatch`, an up-projection `moe.grouped_matmul`, the activation "
    "and a down-projection `moe.grouped_matmul` reduced with the slot weights">;

def MoeDecomposeTreeFfn : Moe_DecomposePass<"moe-decompose-tree-ffn",
    "moe.tree_ffn",
    "the gating matmul, `moe.tree_route`, `moe.dispatch`, one "
    "`moe.grouped_matmul` summing the path's matrices and the activation">;

def MoeDecomposeSwitchHead : Moe_DecomposePass<"moe-decompose-switchhead",
    "moe.switchhead` and `moe.switchhead_cached",
    "query/key matmuls with `moe.rope`, per-head `moe.route` and "
    "`moe.dispatch` on the value and output sides, value and output "
    "`moe.grouped_matmul`s and `moe.attention`; with a cache, the rotation "
    "at the cache's length and the new keys and values placed after the "
    "cached ones">;

def MoeDecomposeMot : Moe_DecomposePass<"moe-decompose-mot", "moe.mot",
    "the controller matmul, `moe.mot_mix`, two expert-batched contractions "
    "(linalg.generic) with the activation, and `moe.mot_unmix`">;

def MoeGenerationEntries : Pass<"moe-generation-entries",
                                 "::mlir::ModuleOp"> {
  let summary = "Derive @prefill and @decode (with a key/value cache) from "
                "a causal @main";
  let description = [{
    For a causal language model `@main(tokens [B, T]) -> (logits [B, T, V],
    ...)` whose attention layers are `moe.switchhead` with `causal`, adds
    `@prefill(tokens)` and `@decode(tokens, past_key, past_value,
    past_length)` next to `@main`: copies of it where each attention layer
    `l` (in program order, L of them) is a `moe.switchhead_cached` that
    reads positions `0..P-1` (`P = past_length`, a run-time error outside
    `[0, C]`) of slice `l` of the stacked cache (`past_key [L, B, H, C,
    dk]`, `past_value [L, B, H, C, dv]`: layer- and head-major, so that a
    step reads each head's `P` rows as one block, and a caller appends rows
    at `P` without moving the others; empty in `@prefill`) and writes the
    rows to append into slice `l` of `new_key [L, B, H, T, dk]` and
    `new_value`, returned after the model's own outputs. The layer indices
    are constants defined before the layers, so that `moe-roll-repeats`
    rolls the derived entries as it rolls `@main` (the index becomes
    `c + i*s` of the loop).

    `@decode`'s outputs are rows `P..P+T-1` of `@main` on the whole
    sequence; `@prefill` returns the last position of each output (`[B, 1,
    V]`; an empty prompt is a run-time error), or all of them with
    `all-logits`. The pass first checks, with a dataflow analysis of the
    position dims, that everything but the attention treats each position
    on its own, and refuses with a located error any op it cannot show is
    (a reduction or an index along the sequence, a table read by the
    position), a model without causal attention, layers with different
    cache shapes, and a static sequence length. Run by `moe-compile
    --generation` before the weights are outlined; the entries share the
    weight records.

    Before:
    ```mlir
    func.func @main(%tokens: tensor<?x?xi64>) -> tensor<?x?x50xf32> {
      ...
      %a = moe.switchhead %h, %h, %h, ... {causal = true, ...}
      ...
    ```
    After (one layer):
    ```mlir
    func.func @decode(%tokens: tensor<?x?xi64>, %pk: tensor<1x?x2x?x8xf32>,
                      %pv: tensor<1x?x2x?x8xf32>, %len: tensor<i64>)
        -> (tensor<?x?x50xf32>, tensor<1x?x2x?x8xf32>,
            tensor<1x?x2x?x8xf32>) {
      %c0 = arith.constant 0 : index
      ...
      %pk0 = tensor.extract_slice %pk[%c0, 0, 0, 0, 0] [1, %b, 2, %p, 8] ...
      %a, %nk, %nv = moe.switchhead_cached %h, %h, %h, ... past(%pk0, %pv0)
      %keys = tensor.insert_slice %nk into %empty[%c0, 0, 0, 0, 0] ...
      ...
    ```
  }];
  let options = [
    Option<"allLogits", "all-logits", "bool", "false",
           "@prefill returns the outputs at every position, not only the "
           "last">
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::moe::MoeDialect",
                           "::mlir::tensor::TensorDialect"];
}

def MoeOutlineWeights : Pass<"moe-outline-weights", "::mlir::ModuleOp"> {
  let summary = "Turn the entry functions' weight constants into arguments";
  let description = [{
    Every `arith.constant` of a ranked tensor with at least `min-elements`
    elements in an entry function (every public function the module
    defines and calls nowhere: `@main`, and `@prefill` and `@decode` for
    generation) becomes
    a new trailing argument (marked `{moe.weight = <index>}`); the values
    move to the module attribute `moe.weights`, one record per distinct
    value. A constant used by several ops (MoEUT's shared layers), or by
    several entries, is one record; each entry takes an argument for each
    record it uses. moe-compile writes the values into
    the artifact's weight section, which the runtime maps and passes to the
    code without copying.

    Before:
    ```mlir
    func.func @main(%x: tensor<?x4xf32>) -> tensor<?x4xf32> {
      %w = arith.constant dense<...> : tensor<4x4xf32>
      ...
    ```
    After:
    ```mlir
    module attributes {moe.weights = [dense<...> : tensor<4x4xf32>]} {
      func.func @main(%x: tensor<?x4xf32>, %w: tensor<4x4xf32> {moe.weight = 0 : i64}) ...
    ```
  }];
  let options = [
    Option<"minElements", "min-elements", "int64_t", "16",
           "smallest constant (in elements) that becomes a weight">
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::tensor::TensorDialect"];
}

def MoeSortExpertLayouts : Pass<"moe-sort-expert-layouts"> {
  let summary = "Keep an up projection's rows in expert order for the down "
                "projection that reads them";
  let description = [{
    An expert layer computes `up = moe.grouped_matmul x, w1, off, perm`
    (rows in slot order: the lowering scatters each expert's rows back
    through the inverse permutation), maybe elementwise ops on it, then
    `moe.grouped_matmul up, w2, off, perm ...`, which gathers the same rows
    back into expert order. When the down projection uses the same
    `offsets` and `perm` and every op in between is elementwise (a
    `linalg.generic` with identity maps and only `arith`/`math` ops in its
    body, so rows may be permuted through it), this pass sets
    `sorted_result` on the up projection and `sorted_input` on the down
    projection: the rows stay in expert order, and the scatter and the
    gather between the two (2 * M * Ge element copies) disappear. The
    result of the layer does not change. `moe-compile --no-sorted-experts`
    leaves the pass out (debugging).

    Example:
    ```mlir
    %h = moe.grouped_matmul %x, %w1, %off, %perm act<relu> : ...
    %y = moe.grouped_matmul %h, %w2, %off, %perm weights(%sw) : ...
    // becomes
    %h = moe.grouped_matmul %x, %w1, %off, %perm act<relu> {sorted_result}
    %y = moe.grouped_matmul %h, %w2, %off, %perm weights(%sw) {sorted_input}
    ```
  }];
  let dependentDialects = ["::mlir::moe::MoeDialect"];
}

def MoeRefineBufferLayouts : Pass<"moe-refine-buffer-layouts"> {
  let summary = "Give scf.if buffer results the most static common layout";
  let description = [{
    One-shot bufferization types an `scf.if` whose branches yield buffers
    of different layouts (a view and a fresh buffer: every run-time size
    check that yields either its input or reported zeros) with the fully
    dynamic layout `strided<[?, ...], offset: ?>`. Downstream code then
    reads those buffers with unknown strides: a vector transfer with a
    dynamic innermost stride becomes scalar loads, and
    `moe-cpu-tile-contractions`' dot products do not apply. This pass gives
    each such result the layout every yielded buffer (looking through
    `memref.cast`) has: a stride or offset on which they all agree stays
    static. Users see the old type through a `memref.cast` that their
    folders remove. moe-compile runs it right after bufferization
    (`populateRefineBufferLayoutsPatterns` holds the pattern).

    Before:
    ```mlir
    %r = scf.if %ok -> (memref<?x82xf32, strided<[?, ?], offset: ?>>) {
      %c = memref.cast %view : memref<?x82xf32, strided<[328, 1], offset: ?>>
             to memref<?x82xf32, strided<[?, ?], offset: ?>>
      scf.yield %c : memref<?x82xf32, strided<[?, ?], offset: ?>>
    } else {
      %z = memref.alloc(%n) : memref<?x82xf32>
      %c = memref.cast %z : memref<?x82xf32>
             to memref<?x82xf32, strided<[?, ?], offset: ?>>
      scf.yield %c : memref<?x82xf32, strided<[?, ?], offset: ?>>
    }
    ```
    After: the if yields `memref<?x82xf32, strided<[?, 1], offset: ?>>`
    (the view's row stride 328 and the buffer's 82 differ; both have unit
    columns), and its users read a cast of it to the old type.
  }];
  let dependentDialects = ["::mlir::memref::MemRefDialect",
                           "::mlir::scf::SCFDialect"];
}

def MoeFoldConstantLayouts : Pass<"moe-fold-constant-layouts"> {
  let summary = "Evaluate transposes of constant weights at compile time";
  let description = [{
    A `linalg.transpose` whose input is a dense constant (the expert weights
    of `com.microsoft.MoE`, which the importer transposes to [E, in, out];
    an ONNX Transpose of a MatMul weight) would run on every call over the
    whole weight. This pass generalizes such transposes and folds them with
    upstream's `populateConstantFoldLinalgOperations`, so the weight is
    stored once, in the layout the code reads. Constants of more than
    `max-elements` elements are left alone. moe-compile runs it before
    `moe-outline-weights`.

    Before:
    ```mlir
    %w = arith.constant dense<...> : tensor<2x3x4xf32>
    %e = tensor.empty() : tensor<2x4x3xf32>
    %t = linalg.transpose ins(%w : tensor<2x3x4xf32>)
           outs(%e : tensor<2x4x3xf32>) permutation = [0, 2, 1]
    ```
    After:
    ```mlir
    %t = arith.constant dense<...> : tensor<2x4x3xf32>
    ```

    With `selectors-by-column` (the default), it also decides the layout of
    constant selectors: `moe.ffn`'s `w_sel` and `moe.switchhead`'s (and
    `moe.switchhead_cached`'s) `sel_o` and `sel_v`, `[E, D]` matrices that
    the routing scores read as `x @ sel^T`. A register tile reading that
    form loads a strided column of the selector per k step, lane by lane
    (at the MoEUT-244M shape, D 1024 and 387 experts, the scores took a
    quarter of the σ-MoE layer's time at 512 tokens). The selector is
    stored transposed, `[D, E]`, and handed to its op through a
    `linalg.transpose` placed just before it; the decompositions read
    through that transpose (`build::selectorScores`), so the scores become
    `x @ selT`, whose tiles load contiguous rows, and the transpose itself
    never runs. One transposed constant serves every op reading the same
    selector; a selector constant that something else reads too is kept
    for that reader, so it is then stored in both layouts. moe-compile
    turns this off with `--reference`.

    Before:
    ```mlir
    %sel = arith.constant dense<...> : tensor<4x3xf32>
    %y = moe.ffn %x, %sel, %w1, %w2 gate<sigmoid> act<relu> {k = 2 : i64} : ...
    ```
    After:
    ```mlir
    %selT = arith.constant dense<...> : tensor<3x4xf32>
    %e = tensor.empty() : tensor<4x3xf32>
    %sel = linalg.transpose ins(%selT : tensor<3x4xf32>)
             outs(%e : tensor<4x3xf32>) permutation = [1, 0]
    %y = moe.ffn %x, %sel, %w1, %w2 gate<sigmoid> act<relu> {k = 2 : i64} : ...
    ```
  }];
  let options = [
    Option<"maxElements", "max-elements", "int64_t", "int64_t(1) << 30",
           "largest constant (in elements) that is folded">,
    Option<"selectorsByColumn", "selectors-by-column", "bool", "true",
           "store constant selectors [E, D] as [D, E]">
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::tensor::TensorDialect"];
}

def MoePackExpertWeights : Pass<"moe-pack-expert-weights"> {
  let summary = "Store constant expert weights in column panels";
  let description = [{
    A grouped matmul's register tiles read `panel-width` columns of each
    of the `K` rows of an expert's `[K, N]` weight; from memory, rows `4N`
    bytes apart stream at 0.6-0.7x the rate of one contiguous block
    (docs/performance.md, "Weights in column panels"). This pass cuts each
    expert's columns into panels of `panel-width`, each a contiguous
    `[K, P]` block, plus a contiguous `[K, N mod P]` tail, evaluated at
    compile time (a tail narrower than `min-tail`, one AVX-512 vector by
    default, joins the last panel's block: every block is then at least a
    vector wide, and its columns get the tiles, and the sums, they get in
    the row-major layout), and reads them back through `moe.unpack_panels`, whose
    grouped-matmul lowering reads the blocks where they are.

    It rewrites the expert-weight operands that become grouped matmuls
    (`moe.grouped_matmul`'s weight, `moe.ffn`'s `w1` and `w2`,
    `moe.tree_ffn`'s weight, `moe.switchhead`'s and
    `moe.switchhead_cached`'s `wo`, and `wv` where `sel_v` routes it)
    when they are dense, non-splat, static rank-3 f32 constants of more
    than `panel-width` columns; one layout per constant, the row-major
    constant erased when nothing else reads it (a weight that something
    else reads too is then stored twice, once in each layout). Weights
    that would have no full panel stay as they are, and so do weights
    whose panels or tail would hold one repeated value (a splat, which
    moe-outline-weights would turn into a fill on every call).

    With `dense-weights` (the default) it also lays out dense `[K, N]`
    f32 constants of more than `panel-width` columns that a contraction
    reads as `(k, n)`, `n` the output's last dim and in no other operand,
    as panels `[ceil(N / P), K, P]`, the last one zero-padded where `P`
    does not divide `N` and the padding is at most `N / 8` (more would
    cost that much more work: 155 columns in 64-column panels, 24%;
    `min-tail` plays no part: the contraction runs
    over `N` rounded up to `P` columns into a fresh fill of the init's
    value and keeps the first `N`, which needs the init to be a
    `linalg.fill`; a tail block would need the destination sliced in two,
    whose analysis in one-shot bufferization took seconds per model).
    Two kinds:

    - the right-hand side of a dense contraction on tensors (a
      `linalg.generic` contraction, or a `linalg.matmul`, generalized
      first; the LM head: `[412, 8000]` in 500 panels of 16): the
      contraction becomes the same one over the panels, `n` split into
      `(p, j)` over a `tensor.expand_shape` of its init (whose last dim
      must be `N` statically), its result collapsed back
      (`build::contractOverPanels`);
    - the dense weights that a moe op's decomposition contracts that way:
      `moe.switchhead`'s and `moe.switchhead_cached`'s `wq` and `wk`, and
      the selectors that `moe-fold-constant-layouts` stores `[D, E]`
      (`moe.ffn`'s `w_sel`, switchhead's `sel_o` and `sel_v`: the operand
      is a transpose of that constant, whose input is rewritten). They
      become a one-expert `moe.unpack_panels` `[1, K, Nb * P]` collapsed
      to `[K, Nb * P]` (and sliced to `N` columns), and
      `convert-moe-to-linalg` builds the contraction over the panels where
      they are.

    Same products, and row tiles sum in the same order as over the
    row-major weight; the register tiles read contiguous `[K, P]` blocks
    instead of `P` columns of rows `4N` bytes apart. A one-row tile is now
    at most `P` wide, and one narrower than 8 vector registers rotates its
    k steps over several accumulator sets, so one-row results (decode) may
    differ in the last bits. A decode step of MoEUT-44M reads its LM head
    (13 MB) that way (docs/performance.md, "The LM head in column panels").

    moe-compile runs it before `moe-outline-weights` (not with
    `--reference`, `--no-tile` or `--no-pack-weights`), with
    `panel-width` a register tile's width (16 columns at 256 bits, 64 at
    512, 8 at 128; `--panel-columns` sets it) and `min-tail` one vector
    (8, 16 or 4 columns).

    Before:
    ```mlir
    %w = arith.constant dense<...> : tensor<2x3x5xf32>
    %y = moe.grouped_matmul %x, %w, %off, %perm : ...
    ```
    After (`panel-width=2 min-tail=1`):
    ```mlir
    %p = arith.constant dense<...> : tensor<2x2x3x2xf32>
    %t = arith.constant dense<...> : tensor<2x3x1xf32>
    %w = moe.unpack_panels %p, %t
        : (tensor<2x2x3x2xf32>, tensor<2x3x1xf32>) -> tensor<2x3x5xf32>
    %y = moe.grouped_matmul %x, %w, %off, %perm : ...
    ```
  }];
  let options = [
    Option<"panelWidth", "panel-width", "int64_t", "64",
           "columns per panel (moe-compile: a register tile's width)">,
    Option<"minTail", "min-tail", "int64_t", "16",
           "narrowest tail kept as a block of its own (a narrower one "
           "joins the last panel's block)">,
    Option<"denseWeights", "dense-weights", "bool", "true",
           "also constant dense [K, N] weights read by contractions (the "
           "right-hand sides of linalg contractions, switchhead's query and "
           "key projections, selectors stored [D, E])">
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::tensor::TensorDialect",
                           "::mlir::moe::MoeDialect"];
}

def MoeRollRepeats : Pass<"moe-roll-repeats", "::mlir::func::FuncOp"> {
  let summary = "Emit a sequence of ops that repeats back to back once, "
                "inside an scf.for";
  let description = [{
    A MoEUT runs its G distinct layers R times with shared weights, and its
    ONNX graph spells out all R·G layers. This pass finds such a sequence in
    a function's body: `count` copies of `period` ops, back to back, where
    copy k is structurally equivalent to copy 0 (regions included) and each
    of its operands is its own corresponding value, the very value copy 0
    uses there (defined before the sequence: a weight, a constant), or the
    corresponding value of copy k-1 where copy 0 uses a value defined before
    the sequence (carried from one copy to the next, like the residual
    stream), or an integer constant marked `moe.indexed_constant`, defined
    before the sequence, of value c + k·s (indexed: the loop computes
    c + i·s; moe-generation-entries marks its layer indices so). It then emits copy 0 once in an `scf.for` of `count` iterations
    (marked `moe.repeats`) whose iteration arguments are the carried values.
    The loop runs the same ops in the same order on the same values, so the
    result is the same bits; the code of the repeated layers is compiled
    once. Values of the copies used after the sequence must be carried
    values of the last copy, otherwise the last copy stays unrolled after
    the loop. Candidates come from a structural hash of each op; the one
    that removes the most ops wins (the smallest period on a tie), and the
    search repeats on the result. Sequences shorter than `min-ops` ops are
    left alone. moe-compile runs it after `moe-outline-weights` (weights
    are then arguments, loop-invariant); `moe-compile --no-roll` and
    `--reference` skip it.

    Before (two copies of a two-op layer reading the shared weight `%w`):
    ```mlir
    %a0 = linalg.matmul ins(%x, %w : ...) outs(%z : ...) -> tensor<4x4xf32>
    %b0 = linalg.add ins(%a0, %x : ...) outs(%e : ...) -> tensor<4x4xf32>
    %a1 = linalg.matmul ins(%b0, %w : ...) outs(%z : ...) -> tensor<4x4xf32>
    %b1 = linalg.add ins(%a1, %b0 : ...) outs(%e : ...) -> tensor<4x4xf32>
    ```
    After:
    ```mlir
    %r = scf.for %i = %c0 to %c2 step %c1 iter_args(%h = %x) -> tensor<4x4xf32> {
      %a = linalg.matmul ins(%h, %w : ...) outs(%z : ...) -> tensor<4x4xf32>
      %b = linalg.add ins(%a, %h : ...) outs(%e : ...) -> tensor<4x4xf32>
      scf.yield %b : tensor<4x4xf32>
    } {moe.repeats = 2 : i64}
    ```
  }];
  let options = [
    Option<"minOps", "min-ops", "int64_t", "16",
           "fewest top-level ops in one copy of a sequence that is rolled">
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::scf::SCFDialect"];
}

def MoeApproximateMath : Pass<"moe-approximate-math"> {
  let summary = "f32 math functions as upstream's polynomial "
                "approximations, so that the loops around them vectorize";
  let description = [{
    Rewrites the f32 `math` ops named in `functions` (scalars or vectors)
    into upstream's polynomial approximations
    (populateMathPolynomialApproximationPatterns): plain arith ops that
    LLVM's loop vectorizer vectorizes, where a libm call per element keeps
    the whole loop scalar. `exp` (the default) is the Cephes form: the
    input clamped to [-87.8, 88.8] (so exp(-inf) = 0: a masked softmax
    score), reduced by n ln 2, a degree-6 polynomial, times 2^n made from
    the exponent bits; results below 2^-126 are 0, not subnormal;
    exp(+inf) is +inf. NaN gives NaN on x86 (upstream converts floor(NaN)
    to an integer, which LLVM IR leaves undefined). It differs from libm's
    expf by a few units in the last place (docs/tolerance.md). `tanh` and
    `erf` are accepted too. An unknown name is an error. moe-compile runs
    it with `exp` on buffers, before the math lowering, where the target's
    features include FMA (`native` on such a host, `x86-64-v3`,
    `x86-64-v4`; without FMA every `math.fma` would be a libm call), unless
    `--reference`, `--no-tile` or `--no-fast-exp` is given.

    Before:
    ```mlir
    %e = math.exp %x : f32
    ```
    After (abridged):
    ```mlir
    %c = arith.cmpf uge, %x, %lo : f32
    %x0 = arith.select %c, %x, %lo : f32
    ...
    %n = math.floor %t : f32
    %p = math.fma %r, %p5, %p4 : f32
    ...
    %e = arith.mulf %z, %pow2 : f32
    ```
  }];
  let options = [
    ListOption<"functions", "functions", "std::string",
               "math functions to approximate (exp, tanh, erf)">
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::vector::VectorDialect"];
}

def MoeCpuLoopOrder : Pass<"moe-cpu-loop-order"> {
  let summary = "Put a unit-stride parallel loop innermost in contractions";
  let description = [{
    `convert-linalg-to-loops` keeps the iterator order, so a matmul becomes
    (m, n, k) loops with the reduction innermost: one scalar accumulator and
    a strided walk over the right-hand side, which LLVM cannot vectorize
    without reassociating. This pass generalizes every linalg op with a
    reduction whose output's last dim is a parallel loop that also indexes
    the last dim of an input, or is the last index of a `tensor.extract`
    gather in the body (so that both walk contiguous memory), and no
    input or gather indexes in another of its dims (a LayerNorm's variance into
    [N] keeps its rows outside: with the rows innermost, it walked x with
    a row's stride, and ran a parallel loop of rows per d), and is
    dynamic or at least 64 long (shorter ones keep their register
    accumulator), and interchanges
    its loops so that this dim is innermost and the reductions sit just
    outside it ((m, k, n) for a matmul: contiguous loads and stores of the
    right-hand side and the output, vectorized by LLVM). The multiply and
    add of the body get the `contract` fast-math flag, so LLVM emits FMAs
    (a rounding difference against the reference lowering, within
    docs/tolerance.md). moe-compile runs it after convert-moe-to-linalg
    unless `--reference` is given.

    Before:
    ```mlir
    linalg.matmul ins(%a, %b : tensor<?x64xf32>, tensor<64x128xf32>) outs(%c : tensor<?x128xf32>)
    ```
    After:
    ```mlir
    linalg.generic {indexing_maps = [(d0, d1, d2) -> (d0, d1),
                                     (d0, d1, d2) -> (d1, d2),
                                     (d0, d1, d2) -> (d0, d2)],
                    iterator_types = ["parallel", "reduction", "parallel"]}
        ins(%a, %b ...) outs(%c ...) {
      %p = arith.mulf %in, %in_0 fastmath<contract> : f32
      %s = arith.addf %out, %p fastmath<contract> : f32
      linalg.yield %s : f32
    }
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::linalg::LinalgDialect"];
}

def MoeFuseElementwise : Pass<"moe-fuse-elementwise"> {
  let summary = "Fuse elementwise linalg.generic ops into the generic that "
                "alone reads them, where no element is computed twice";
  let description = [{
    The importer converts each ONNX node on its own, so a Hugging Face
    RMSNorm (`x * x`, the mean, `+ eps`, `sqrt`, `1 / r`, `x * r`, `* w`)
    is seven loops with a full tensor written and read between each pair.
    This pass fuses an all-parallel `linalg.generic` (the producer) into a
    `linalg.generic` that reads its result (the consumer), with upstream's
    `linalg::fuseElementwiseOps`, where:

    - the producer's result has no other user (else it would be computed
      twice, and written anyway), and
    - the consumer reads it through a permutation of all its loops, so that
      each element is still computed once. A contraction's operand (`A[m,
      k]` of a matmul, indexed by two of three loops) or a broadcast one
      (`[N, 1]` read by `[N, D]`) is never fused: its producer would run
      once per column, or per `D`.

    Upstream's `linalg-fuse-elementwise-ops` fuses any single-use producer,
    including into contractions, and also folds constants and propagates
    reshapes; its pattern set (populateElementwiseOpsFusionPatterns) also
    replaces an unread `outs` by a new `tensor.empty`, which takes the
    contraction epilogues' in-place form away. Written here: the choice of
    what to fuse and the pattern that applies it; operands a body no
    longer reads, and operands read twice, are dropped (upstream's
    populateEraseUnusedOperandsAndResultsPatterns). The fused bodies compute the same operations in
    the same order: results do not change. moe-compile runs it after
    convert-moe-to-linalg unless `--reference` or `--no-fuse-elementwise`
    is given.

    Before:
    ```mlir
    %sq = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
        ins(%x : tensor<?x512xf32>) outs(%e : tensor<?x512xf32>) {
      ^bb0(%a: f32, %o: f32):
        %m = arith.mulf %a, %a : f32
        linalg.yield %m : f32
    } -> tensor<?x512xf32>
    %sum = linalg.generic {indexing_maps = [#id, #row], iterator_types = ["parallel", "reduction"]}
        ins(%sq : tensor<?x512xf32>) outs(%z : tensor<?xf32>) {
      ^bb0(%a: f32, %acc: f32):
        %s = arith.addf %a, %acc : f32
        linalg.yield %s : f32
    } -> tensor<?xf32>
    ```
    After:
    ```mlir
    %sum = linalg.generic {indexing_maps = [#id, #row], iterator_types = ["parallel", "reduction"]}
        ins(%x : tensor<?x512xf32>) outs(%z : tensor<?xf32>) {
      ^bb0(%a: f32, %acc: f32):
        %m = arith.mulf %a, %a : f32
        %s = arith.addf %m, %acc : f32
        linalg.yield %s : f32
    } -> tensor<?xf32>
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::tensor::TensorDialect"];
}

def MoeCpuVectorReductions : Pass<"moe-cpu-vector-reductions"> {
  let summary = "Let LLVM vectorize innermost row reductions (reassoc on "
                "their combining op)";
  let description = [{
    A `linalg.generic` whose only reduction is its innermost loop (a
    softmax's row max and sum, a LayerNorm's or RMSNorm's mean and
    variance), whose inputs either ignore that loop or walk their last dim
    with it, and whose body yields `addf`, `maximumf`, `minimumf`,
    `maxnumf` or `minnumf` of the accumulator and another value: that op
    gets the `reassoc` fast-math flag. LLVM's loop vectorizer then keeps
    vector partial results and combines them after the loop, where
    without the flag it keeps the scalar loop (a softmax over 256 keys
    spent 4 ns per element). The summation order differs from the
    reference lowering's (docs/tolerance.md); it is fixed by the code, the
    same for every run and thread count. Maxima and minima do not change.
    moe-compile runs it after moe-cpu-loop-order unless `--reference` or
    `--no-vector-reductions` is given.

    Before:
    ```mlir
    %s = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>,
                                          affine_map<(d0, d1) -> (d0)>],
                         iterator_types = ["parallel", "reduction"]}
        ins(%x : tensor<?x256xf32>) outs(%z : tensor<?xf32>) {
      ^bb0(%a: f32, %acc: f32):
        %r = arith.addf %a, %acc : f32
        linalg.yield %r : f32
    } -> tensor<?xf32>
    ```
    After: the same, with `%r = arith.addf %a, %acc fastmath<reassoc> : f32`.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect"];
}

def MoeExpandViews : Pass<"moe-expand-views"> {
  let summary = "memref.expand_shape views with several dynamic sizes in "
                "one group as strided reinterpret_casts";
  let description = [{
    A computed ONNX Reshape (its sizes read from `Shape` at run time) is a
    collapse to one dim and an expand to the new sizes, so an attention
    head split `[B, T, H, dk]` or Mixture of Tokens' grouping
    `[B / g, g, T, D]` holds two or more dynamic sizes in one reassociation
    group. Upstream's `expand-strided-metadata` segfaults on such a
    `memref.expand_shape` (MLIR 22.1.8). This pass rewrites each one into a
    `memref.reinterpret_cast` of the source's base buffer: the last dim of a
    group takes the source dim's stride, each earlier dim that times the
    sizes after it; the offset is the source's. The result has the
    expand's own type (an identity layout stays one, so that a
    `memref.copy` of the view is still a `memcpy`). Expands with at most
    one dynamic size per
    group are left to `expand-strided-metadata`. moe-compile runs it right
    before that pass; before it existed, `convert-moe-to-linalg` copied each
    such expand element by element (a 4 ms copy in a Mixture of Tokens
    layer of 7.7 ms).

    Before:
    ```mlir
    %e = memref.expand_shape %m [[0, 1, 2]] output_shape [%a, 2, %b]
        : memref<?xf32> into memref<?x2x?xf32>
    ```
    After (abridged):
    ```mlir
    %base, %offset, %size, %stride = memref.extract_strided_metadata %m
    %s1 = affine.apply affine_map<()[s0] -> (s0 * 2)>()[%b]
    %e = memref.reinterpret_cast %base to offset: [0], sizes: [%a, 2, %b],
        strides: [%s1, %b, 1] : memref<f32> to memref<?x2x?xf32>
    ```
  }];
  let dependentDialects = ["::mlir::affine::AffineDialect",
                           "::mlir::memref::MemRefDialect"];
}

def MoeCpuFuseRowGathers : Pass<"moe-cpu-fuse-row-gathers"> {
  let summary = "Let register tiles read gathered rows where they are, "
                "instead of from a gathered copy";
  let description = [{
    The expert layers gather their token rows into expert order before the
    first expert matmul: a loop copies row `src(i)` of the activations X
    into row `i` of a workspace buffer B, and the register tiles of
    moe-cpu-tile-contractions read B. This pass removes the copy. Every
    read of B at row `r` (an unmasked, in-bounds `vector.transfer_read` of
    rows x a row slice or of one row slice, or a `memref.load`) becomes a
    read of X at row `src(r)`, computed by a clone of the gather loop's own
    index computation with the induction variable replaced by `r` (and
    `r + 1`, ... for the rows of a tile), placed before the read and hoisted
    out of the loops around it that surely run (constant bounds) and do not
    define `r`: outside the tile's k loop, never out of an `scf.if`, so the
    clone runs only where the read does. The gather loop keeps its bounds checks, and
    B's workspace allocation goes away when nothing else uses it.

    It applies only when it cannot change a value:
    - the gather is a `linalg.copy` or `memref.copy` of a row view of X
      (unit sizes but the last, which is B's static row width, unit
      strides) into `B[%i, 0] [1, W] [1, 1]`, directly in the body of an
      `scf.for` (no iter_args) or one-dim `scf.parallel` from 0 by 1 to the
      row count B was allocated with; B is a rank-2 identity-layout
      workspace allocation (`__moe_workspace_alloc`, after
      moe-lower-to-host-abi); X's offsets come from the induction variable,
      loop-invariant values and `memref.load`s of loop-invariant buffers,
      through ops without regions or writes, so the clone for row r
      computes what the gather computed for row r;
    - every other use of B is such a read, after the gather in its block,
      and B's allocation has no other view;
    - from the gather to the last read, every write (an op's own effects,
      linalg outputs included) goes to a workspace allocation other than
      X's, B's and the index buffers' (two live workspace allocations never
      overlap, and the workspace holds no input or weight), and the only
      calls are the workspace allocator and the host functions that write
      no buffer (report_error, workspace_grow, output_alloc from the
      frame's host table; not parallel_for).

    Example: after
    ```mlir
    scf.parallel (%i) = (%c0) to (%n) step (%c1) {
      %s = memref.load %perm[%i] : memref<?xi32>
      %r = arith.index_cast %s : i32 to index
      %row = memref.subview %x[%r, 0] [1, 412] [1, 1] : ...
      %dst = memref.subview %b[%i, 0] [1, 412] [1, 1] : ...
      linalg.copy ins(%row : ...) outs(%dst : ...)
      scf.reduce
    }
    ... vector.transfer_read %b[%m, %k], %pad {in_bounds = [true, true]}
          : memref<?x412xf32>, vector<8x1xf32>
    ```
    the read becomes eight `vector.transfer_read %x[%r_j, %k]` of
    `vector<1xf32>` (with `%r_j` from `memref.load %perm[%m + j]`, computed
    before the k loop), inserted into a `vector<8x1xf32>`, and the loop only loads
    `%perm` (for its bounds checks, where it has any).
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::vector::VectorDialect"];
}

def MoeCpuPrefetchRows : Pass<"moe-cpu-prefetch-rows"> {
  let summary = "Prefetch the rows that loops read at loaded row indices";
  let description = [{
    A loop that reads one row of a buffer per iteration at a row index
    loaded from another buffer (the expert layer's gather into expert
    order, the weighted combine reading each slot's row back, SwitchHead's
    per-head gathers) misses to memory at the start of every row: no
    hardware prefetcher can guess the order. For each such row view
    (`memref.subview` with unit sizes but a static last one and unit
    strides along it, read by a user, its offsets computed from the
    induction variable through `memref.load`s of loop-invariant buffers and
    side-effect-free arith), this pass recomputes the offsets of the
    iteration `distance` steps ahead and prefetches every cache line of
    that row (`memref.prefetch`, at most 64 lines), inside an `scf.if` that
    the iteration is in range (`ub - iv > step * distance`, unsigned, so
    nothing wraps). Handles `scf.for` and one-dim `scf.parallel` bodies
    with a static positive step, on buffers.

    It reads no address the loop does not read: the cloned loads take their
    indices from the induction variable and loop-invariant values only (a
    load at a loaded index is not cloned, and the row is then left alone),
    so the clone for iteration i + d reads what iteration i + d reads.
    Unsigned divisions and remainders are cloned only with a loop-invariant
    divisor. The prefetched address itself never faults.

    Example (the combine's slot loop):
    ```mlir
    scf.for %s = %c0 to %c12 step %c1 {
      %j = arith.addi %first, %s : index
      %slot = memref.load %inv[%j] : memref<?xi32>
      %r = arith.index_cast %slot : i32 to index
      %row = memref.subview %ps[%r, 0] [1, 412] [1, 1] : ...
      linalg.generic ... ins(%row ...) outs(%acc ...)
    }
    ```
    gains, after the subview, `scf.if 12 - %s > 2 { ... memref.load
    %inv[%first + %s + 2] ... memref.prefetch %ps[%r2, 0] ... }` with one
    prefetch per 64-byte line of the row.
  }];
  let options = [
    Option<"distance", "distance", "int64_t", /*default=*/"2",
           "how many iterations ahead to prefetch (1 to 1024)">,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::scf::SCFDialect"];
}

def MoeCpuPrefetchPanels : Pass<"moe-cpu-prefetch-panels"> {
  let summary = "Prefetch the next weight block while a register tile "
                "reads this one";
  let description = [{
    A register tile's k loop reads a weight block row by row: a [K, P]
    column panel of a packed expert weight ([E, Nf, K, P]), an expert's
    tail ([E, K, T]) or an expert's row-major weight ([E, K, N]). The
    first pass over a block waits on memory while the FMA units idle, and
    the next row tiles compute while the memory bus idles. This pass
    overlaps the two: next to each `vector.transfer_read` of a one-dim
    vector along the last dim of a statically shaped, identity-layout
    memref of rank >= 3, directly in an `scf.for` whose induction variable
    is its index at dim rank - 2 (every other index defined outside the
    loop), it prefetches the same row of the next block in memory (one
    stride of dim rank - 3 further; one `memref.prefetch` per 64-byte line
    of the read, on a one-dim view of the buffer made before the loop).

    That is for multi-row tiles (the loop carries a two-dim accumulator of
    more than one row). A one-row tile's read of whole rows of a block (a
    vector as wide as the block's last dim), in a k loop directly inside
    a loop of step 1 over rows (an expert's one-row loop), prefetches
    instead in the passes after the first: in pass p >= 1 (from the row
    loop's lower bound), line (p - 1) * K + k of the next block, while it
    has lines left (one unsigned compare: pass 0 wraps). The first pass
    streams the block from memory; the next ones read it from L2 while the
    memory bus would idle. An expert with one row (a decode step) issues
    none: the next block in memory is then mostly an expert nobody
    selected. With `ahead-rows` R > 0, the first pass (a decode step's
    only one) prefetches row k + R of its own block, every line of it,
    with `ahead-locality` (past the block's last row: the next block's
    first rows; the address clamped to the buffer), where a row is less
    than two 64-byte lines: a tile of a 16-column panel reads one line
    per k step, too few misses in flight to stream the block at the
    memory's speed (wider rows have enough).

    Without `cross-blocks`, only when the index along dim rank - 3 is not
    its last (for [E, Nf, K, P] the expert's next panel, which the code
    reads next whatever the routing; for [E, K, N] the next expert); with
    it, also from the last block into the next one (the next expert's
    first panel), the addresses kept in the buffer: in a multi-row
    tile's k loop of constant bounds by one clamp of the next block's
    start before the loop (so that the last k step's lines are in the
    buffer; the last block then prefetches the buffer's last rows),
    otherwise by a clamp of each line's address to the buffer's last
    element. Only
    unmasked, in-bounds reads; blocks under 1 KB are left alone. Values
    never change.

    With `cross-blocks`, where the iteration of a loop over experts (the
    read's first index is its induction variable) reads more than one
    such buffer indexed by the expert (a packed weight's panels and tail;
    with convert-moe-to-linalg{fuse-expert-pairs} an up and a down
    projection's), the expert's last block of a buffer (all indices
    between the expert and k at their last; a rank-3 buffer's one block
    where the k loop reads its whole rows, a packed weight's tail)
    prefetches the first block the iteration reads after it
    instead: the next buffer's for the same expert, or after the last
    buffer, the first one's for the next expert; that block's L lines
    (contiguous) spread over the K k steps, lines ceil(L / K) * k to
    ceil(L / K) * (k + 1) - 1 at step k (the steps past line L - 1 reach
    the lines after the block, read later), from a start clamped once
    before the loop so that the last step's lines are in the buffer (a k
    loop that is not 0 to K by 1 clamps each line instead). A
    multi-row tile's k loop over a panel is then
    duplicated under an `scf.if` on whether this is the expert's last
    panel (the version for the last prefetches the other buffer), so
    that the k step carries neither a branch nor a select; a rank-3
    buffer's loop needs no copy (only its first block read prefetches).

    With `spread-tiles`, a multi-row tile's k loop (0 to K by 1) that is
    directly the body of a loop over an expert's full row tiles (an
    `scf.for` of constant step > 1 in which the read's indices other than
    k do not change), whose block reads are all of one buffer, and whose
    read takes whole rows of its block or prefetches another buffer's
    block, spreads those prefetches over all the tiles: of the S =
    ceil(span / step) * K k steps (at most 2^24 tiles counted), step s = t
    * K + k (tile t) prefetches c lines, the j-th line floor((s * c + j) *
    L / (S * c)) of the L-line block (in fixed point, 20 bits), from the
    block's start clamped before the loop so that its last line is in the
    buffer (each line, where the buffer is smaller than the block). The loop comes in versions by c, chosen by `scf.if`s before
    it: 1 where S >= L, 2 where 2 S >= L, and so on by powers of two, the
    last ceil(L / K) (the rate of a whole block in one tile).

    With `stores`, a multi-row tile's unmasked, in-bounds store of a
    [rows, columns] vector (minor identity) made of its k loop's result
    (through the epilogue's ops, in the loop's block), at a buffer and
    indices defined before the loop, gets a `memref.prefetch ... write`
    before the loop for each row's first column, every 64-byte line after
    it, and its last column (a row that starts inside a line ends in one
    more): the lines' misses overlap the loop instead of holding the
    stores (the down projection writes its expert's rows into a slot-order
    buffer of N x k rows that no cache holds). Done first, before the k
    loops are versioned.

    Example (the 6 x 16 tile's k loop over a panel of [155, 2, 412, 64]):
    ```mlir
    scf.for %k = %c0 to %c412 step %c1 iter_args(...) {
      %w = vector.transfer_read %p[%e, %j, %k, %c] ... : memref<155x2x412x64xf32>, vector<16xf32>
    ```
    gains `%flat = memref.collapse_shape %p [[0, 1, 2, 3]]` before the
    loop and, in it, `scf.if %j < 1 { memref.prefetch %flat[%e * 52736 +
    %j * 26368 + %k * 64 + %c + 26368] }`.
  }];
  let options = [
    Option<"crossBlocks", "cross-blocks", "bool", /*default=*/"false",
           "also prefetch from a dim's last block into the next one">,
    Option<"locality", "locality", "int64_t", /*default=*/"3",
           "the prefetches' locality hint (0 to 3)">,
    Option<"aheadRows", "ahead-rows", "int64_t", /*default=*/"0",
           "a one-row tile's first pass over a block also prefetches the "
           "block's row k + ahead-rows, every line of it (0: not)">,
    Option<"aheadLocality", "ahead-locality", "int64_t", /*default=*/"3",
           "the locality hint (0 to 3) of the ahead-rows prefetches">,
    Option<"spreadTiles", "spread-tiles", "bool", /*default=*/"false",
           "a multi-row tile in a loop over an expert's row tiles "
           "prefetches the next block's lines spread over all the tiles' "
           "k steps (versions by lines a step), instead of the next "
           "block's row k in every tile">,
    Option<"stores", "stores", "bool", /*default=*/"false",
           "a multi-row tile prefetches, for writing, the output lines "
           "its stores after the k loop write, before the loop (their "
           "misses overlap the loop instead of holding the stores)">,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::scf::SCFDialect"];
}

def MoeCpuTileContractions : Pass<"moe-cpu-tile-contractions"> {
  let summary = "Register-tile and vectorize contractions on buffers (the "
                "CPU inner kernel)";
  let description = [{
    Every f32 contraction on memrefs (named or generic) whose body is a
    plain multiply-add and whose output's last dim is a parallel dim `n`
    of the right-hand side -- C[.., m, n] += A[.., m, k] * B[.., k, n],
    or B[.., n, k] (a selector read transposed: a strided column per k) --
    is tiled into
    `rows` x (`column-vectors` * `vector-bits` / 32) register tiles swept
    over k (one-row contractions and the one-row loop of the row split,
    where the right-hand side is contiguous along n:
    1 x (`row-column-vectors` * `vector-bits` / 32), so that each k step
    reads a long contiguous piece of the weight row), with batch and k
    dims tiled by 1 (scf::tileUsingSCF, loops in
    batch, m, n, k order). Adjacent m dims that are contiguous in every
    operand fold into one first (collapseOpIterationDims), and batch dims
    become loops outside the row loops when the rows may fill more than
    one register tile (the first with a static range of at least two,
    else the first dynamic one, is the scf.parallel with `parallel-rows`).
    A zero fill of the whole output right before a contraction with one
    reduction loop is not read back: the register tiles start from zero,
    and the fill goes when no part of the contraction reads it. Rows run in loops of static steps (`rows`,
    then 1: a decode segment of fewer rows is never padded to a full
    tile); a static column tail is split
    into power-of-two widths, a dynamic one is a masked vector. Where the
    right-hand side is larger than an L1 cache (32 KB of its n and k dims),
    n is static and at least two tiles wide and the rows may fill more
    than one tile, the row tiles run inside a loop over column panels of
    one tile's width (the panel loop is the scf.parallel with
    `parallel-rows`), so each panel is read by all row tiles while in
    cache; a rest narrower than a vector joins the last panel. A
    right-hand side already stored in column panels ([N/P, K, P], from
    moe-pack-expert-weights) of at least 1 MB in at least 8 panels,
    outside any other loop, gets a loop over its stored panels around the
    rows in the same way.
    Each tile is vectorized to `vector.contract`, lowered to
    outer products (FMAs), the subviews are folded into the transfers and
    the accumulator is hoisted out of the k loop into registers.
    A one-row contraction (no m dim, or all of them of size 1: a decode
    step's attention scores against a cache "bhtd,bhpd->bhtp", the last
    rows of a selector "nd,ed->ne") whose k dim is the last dim of both
    operands and whose vector dim n is not contiguous in the right-hand
    side becomes dot products instead (`dot-products`): n in strips of 8
    and 1, k in chunks of one vector, a vector of partial sums per output
    carried across the chunks and reduced by halving after them, so that
    both operands are read as contiguous vectors; a k tail shorter than
    a vector is added after the reduction. The sum's order differs from
    the other paths' (docs/tolerance.md).
    With `fuse-epilogues`, an elementwise linalg.generic that is the next
    op with memory effects after a contraction with one reduction loop,
    whose only output is the contraction's output (the identity map) and
    whose other inputs are read through the identity, per column
    ((d0, d1) -> (d1): a bias) or as rank-0 buffers of other buffers
    (an expert matmul's bias and activation), runs on each register tile's
    accumulators right before the tile's store (its body cloned on
    vectors), and goes; it stays unless every part of the contraction
    ends in register tiles (docs/passes.md, "Epilogues").
    Contractions it does not match (other bodies, an output narrower than
    one vector outside the dot products, other element types, an output that is a view of an
    input's buffer, an operand viewed through a memref.expand_shape other
    than directly, zero-sized dims) are left for the loop path. An operand
    that is a memref.expand_shape is read through the equivalent
    memref.reinterpret_cast first (the tiles' transfers fold through it). moe-compile runs it after bufferization unless
    `--reference` or `--no-tile` is given, with `vector-bits` from the
    target's features (512 with AVX-512, 256 with AVX, else 128).

    Before:
    ```mlir
    linalg.matmul ins(%a, %b : memref<?x64xf32>, memref<64x64xf32>)
                  outs(%c : memref<?x64xf32>)
    ```
    After (full tiles; the partial row tiles follow in a second loop):
    ```mlir
    scf.for %i = %c0 to %full step %c8 {
      scf.for %j = %c0 to %c64 step %c32 {
        %acc0 = vector.transfer_read %c[%i, %j] ... : vector<32xf32>
        ...
        %r:8 = scf.for %k = %c0 to %c64 step %c1 iter_args(...) {
          %a0 = memref.load %a[%i, %k]
          %b = vector.transfer_read %b[%k, %j] ... : vector<32xf32>
          %f0 = vector.fma %bcast0, %b, %acc0 : vector<32xf32>
          ...
    ```
  }];
  let options = [
    Option<"vectorBits", "vector-bits", "int64_t", "512",
           "width of the target's vector registers in bits">,
    Option<"rows", "rows", "int64_t", "8",
           "rows of a register tile (MR)">,
    Option<"columnVectors", "column-vectors", "int64_t", "2",
           "vectors across a register tile (NR = column-vectors * lanes)">,
    Option<"rowColumnVectors", "row-column-vectors", "int64_t", "0",
           "vectors across the register tile of a one-row contraction "
           "(a decode step's expert and LM-head products; 0: "
           "column-vectors)">,
    Option<"parallelRows", "parallel-rows", "bool", "false",
           "for moe-parallel-loops-to-host, contractions outside any loop "
           "get scf.parallel loops: their row tiles, their one-row loop's "
           "column chunks (a static width with at least 64K multiply-adds "
           "per row; a contraction over weights in column panels: its "
           "panels) and their dot-product strips">,
    Option<"fma", "fma", "bool", "true",
           "the target has FMA instructions (otherwise a multiply and an "
           "add per term: llvm.fma would become a libm call)">,
    Option<"dotProducts", "dot-products", "bool", "true",
           "one-row contractions whose right-hand side is contiguous only "
           "in k (a cache's q k^T, a selector at decode) as dot products "
           "with vector partial sums (off: the strided-column tiles)">,
    Option<"fuseEpilogues", "fuse-epilogues", "bool", "false",
           "an elementwise linalg.generic right after a contraction, on "
           "its output (a bias, an activation), applied to each register "
           "tile's accumulators before they are stored, when every part "
           "of the contraction ends in register tiles (otherwise the "
           "generic stays)">,
    Option<"remainderTiles", "remainder-tiles", "bool", "false",
           "rows left after the full tiles of a dynamic row range (an "
           "expert's last rows), where the row tiles do not sweep a wide "
           "right-hand side in column panels (weights stored in panels "
           "are read one panel per tile, and do take them): an "
           "scf.index_switch on their count r runs one r-row register "
           "tile for each r in [2, rows) instead of r one-row passes over "
           "the right-hand side; a single row (decode) keeps the one-row "
           "tile">,
    Option<"accumulatorChains", "accumulator-chains", "int64_t", "1",
           "a one-row register tile with fewer than 8 accumulator "
           "registers (a 1 x 16 tile of a 16-column panel) rotates its k "
           "steps over up to this many sets of accumulators, summed after "
           "the k loop, so that its FMAs do not wait for each other (1: "
           "off; the sum's order differs, docs/tolerance.md)">,
    Option<"mergeTailSlices", "merge-tail-slices", "bool", "true",
           "the slices of a split column tail narrower than a vector (8 "
           "and 4 of 28 = 16 + 8 + 4 columns at 16 lanes) share one "
           "full-width accumulator, FMA and read of B in the k loop "
           "(lanes past the buffer's last dim masked), and are taken apart "
           "after it: the same bits, fewer FMAs and no re-broadcasts of "
           "the row's A element">
  ];
  let dependentDialects = ["::mlir::affine::AffineDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::vector::VectorDialect"];
}

def MoeLowerToHostAbi : Pass<"moe-lower-to-host-abi", "::mlir::ModuleOp"> {
  let summary = "Put the bufferized entry functions on the runtime's code ABI";
  let description = [{
    Every public function the module defines is an entry (`@main` today;
    `@prefill` and `@decode` later); a private definition is refused (the
    code calls nothing but its entries' own bodies). Each entry (memref
    arguments and results, identity layouts, one block) becomes
    `func.func @<prefix><name>(%frame: !llvm.ptr)`, the calling convention
    of runtime/include/moe/code_abi.h:

    - inputs and weights (arguments marked `moe.weight`) are memrefs over
      the frame's data pointers, with dynamic dims read from `input_dims`;
    - a result allocated in the entry block is allocated in its output
      buffer (the preallocated `outputs[i]` for a static shape, else
      `output_alloc(frame, i, dims)`); any other result is copied into its
      output buffer at the return;
    - every other `memref.alloc` is a bump allocation in the run's
      workspace (`__moe_workspace_alloc`, which calls `workspace_grow` when
      the segment is full); a nested block that yields no memref but its
      own arguments gives its allocations back when it ends; a loop over a
      model's repeats (`moe.repeats`) first carries its memref state in a
      pair of buffers allocated before it (each iteration copies what it
      yields into the one it did not read, and yields the two swapped;
      dims that changed are reported as a shape mismatch instead), so
      that each repeat reuses the same workspace; `memref.dealloc` is
      dropped;
    - with `parallel-slots` = P > 0, an outermost `scf.parallel` (no
      reductions) whose iterations allocate a bounded amount (dynamic
      sizes at their constant upper bounds, from ValueBounds: an
      `affine.min` with a constant) and give it back when they end takes
      its temporaries from private slots instead: one workspace allocation
      of min(N, P) slots before the loop (N: the loop's iterations), each
      slot a frame-shaped header (host, run and its own workspace words)
      and the bytes one iteration needs; the loop becomes an
      `scf.parallel` over the slots (marked `moe.private_workspace`), each
      running a contiguous run of ceil(N / slots) of the original
      iterations (row-major; the last run in slot 0, so that loops whose
      later iterations cost more start with them) with its slot as the
      allocator. The workspace belongs to the entering thread, so a loop
      that allocates from it stays sequential; one with slots may run on
      the thread pool (`moe-parallel-loops-to-host`). Inside any
      `scf.parallel`, dynamic sizes count with their bounds in
      `moe.workspace_bytes`;
    - `func.call @moe_report_error(%code)` calls the host's `report_error`;
    - `memref.copy` between non-identity layouts becomes `linalg.copy`, so
      nothing calls MLIR's `memrefCopy`.

    Each entry gets `moe.workspace_bytes` (the workspace one run takes,
    counted where shapes and trip counts are static) and
    `moe.workspace_grows` (whether more may be needed at run time), which
    moe-compile writes into the signature. Upstream's
    buffer-results-to-out-params cannot be used: it needs every result's
    shape before the call, and a dynamic result's shape is computed by the
    code.

    Before:
    ```mlir
    func.func @main(%x: memref<?x4xf32>) -> memref<?x4xf32> {
      %d = memref.dim %x, %c0 : memref<?x4xf32>
      %y = memref.alloc(%d) : memref<?x4xf32>
      ...
      return %y : memref<?x4xf32>
    }
    ```
    After:
    ```mlir
    func.func @moe_entry_main(%frame: !llvm.ptr) attributes {
        moe.workspace_bytes = 0 : i64, moe.workspace_grows = false} {
      // %x from frame->inputs[0] and frame->input_dims[0]
      // %y from output_alloc(frame, 0, [%d, 4])
      ...
      return
    }
    ```
  }];
  let options = [
    Option<"prefix", "prefix", "std::string", "\"moe_entry_\"",
           "prefix of the names the code exports the entries under">,
    Option<"parallelSlots", "parallel-slots", "int64_t", "0",
           "private workspace slots of an outermost scf.parallel whose "
           "iterations allocate (0: such loops allocate from the workspace "
           "and stay sequential)">
  ];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::memref::MemRefDialect"];
}

def MoeParallelLoopsToHost : Pass<"moe-parallel-loops-to-host", "::mlir::ModuleOp"> {
  let summary = "Run outermost scf.parallel loops on the runtime's thread pool";
  let description = [{
    Runs after `moe-lower-to-host-abi` on the entries (`<prefix><name>`
    functions of one `!llvm.ptr` frame argument). Every outermost
    `scf.parallel` whose body neither allocates from the workspace (which
    belongs to the entering thread; a loop marked `moe.private_workspace`
    by `moe-lower-to-host-abi` allocates from its own slots, and may) nor
    reduces across iterations is split
    over its leading dimensions: the first, or, in a loop of three dims or
    more, all but the last, linearized row-major (a `[1, 8, T, S]` softmax
    or a `[1, T, D]` elementwise op of batch 1 would otherwise be one
    iteration, on one thread). Its body moves into a private function
    `__moe_parallel_body_<n>(closure, begin, end)` (followed by `_` and
    the first name in the loop's location, the ONNX node it computes, its
    characters outside `[A-Za-z0-9_.]` as `_`, at most 48: what a profile
    of the code, `moe-run --profile`, shows) looping over
    `[begin, end)` of those dims, each linear index taken apart into
    theirs, the last fastest (the other dims inside it, sequentially, so
    inner loops stay contiguous and vectorizable), its captured values stored in a closure on the stack,
    and the loop replaced by the host's `parallel_for(frame, 0, trips,
    grain, body, closure)` (runtime/include/moe/code_abi.h), with
    grain = max(`grain`, ceil(trips / `max-chunks`),
    ceil(`min-chunk-work` / work per iteration)): the chunks depend on the
    trip count and the sizes only, never on the thread count. The work of
    an iteration is a static estimate in units: one per operation, one per
    8 elements of a vector operation, a loop's body (plus one) times its
    trip count, the costlier branch of an `scf.if` or `scf.index_switch`;
    a register move of unrolled vectors (`vector.extract`, `insert`, ...)
    is one unit whatever its width; constants and views are free.
    A trip count that is not a constant but is defined above the loop
    enters as a run-time value: the estimate (clamped at `min-chunk-work`
    or 2^31, whichever is smaller, so nothing overflows) is computed where
    the loop is called. An `scf.while` counts only as a countdown of
    constant bound (it goes on while a carried index p > 0, steps p by -1
    and starts it at a constant or `minui(x, c)`: at most c iterations; the
    top-k's insertion walk). Where a bound is defined inside the body, an
    op has other regions, or an `scf.while` is not such a countdown, the
    work is unknown and only `max-chunks` applies. A loop
    whose whole work is below `min-chunk-work` is one chunk, which the
    runtime runs on the calling thread without a fork-join (a fork-join
    cost 3-5 us on two threads of the AVX2 host: docs/performance.md,
    "Small loops on one chunk, weights and caches in huge pages"). The
    iterations
    of an `scf.parallel` are independent, so the split does not change any
    bit of the result. Upstream's async lowering brings its own runtime;
    this one uses the artifact runtime's pool.
  }];
  let options = [
    Option<"prefix", "prefix", "std::string", "\"moe_entry_\"",
           "prefix of the entry functions">,
    Option<"grain", "grain", "int64_t", "1",
           "fewest iterations per chunk handed to parallel_for">,
    Option<"maxChunks", "max-chunks", "int64_t", "64",
           "most chunks of one loop: the grain grows with the trip count "
           "(ceil(trips / max-chunks)), so a long loop of small bodies is "
           "not one call and one atomic per iteration; 0: no limit">,
    Option<"minChunkWork", "min-chunk-work", "int64_t", "0",
           "fewest units of estimated work per chunk (0: off; moe-compile "
           "uses 8192, --parallel-min-work)">,
    Option<"splitLeadingDims", "split-leading-dims", "bool", "true",
           "split a loop of three dims or more over all but its last "
           "(false: over its first only, as before 2026-12-06; "
           "moe-compile --no-split-leading-dims)">
  ];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::func::FuncDialect",
                           "::mlir::scf::SCFDialect"];
}

def MoeExportEntries : Pass<"moe-export-entries", "::mlir::ModuleOp"> {
  let summary = "Make the entry functions the only external definitions";
  let description = [{
    Runs on the LLVM dialect. The functions named by `symbols` (the
    artifact's entries) and the `moe_signature_digest` global keep external
    linkage; every other defined function and global becomes internal, so
    the shared object exports only its entries and its digest, and its
    calls never bind to a host symbol of the same name. Declarations (libc
    and libm functions) stay external. Refuses a module without one of the
    named entries.
  }];
  let options = [
    ListOption<"symbols", "symbols", "std::string",
               "entry functions to export (default: moe_entry_main)">
  ];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect"];
}

#endif // MOE_TRANSFORMS_PASSES_TD

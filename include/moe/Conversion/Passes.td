//===- Passes.td - moe conversion passes -------------------*- tablegen -*-===//

#ifndef MOE_CONVERSION_PASSES_TD
#define MOE_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertOnnxToMoe : Pass<"convert-onnx-to-moe", "::mlir::ModuleOp"> {
  let summary = "Give imported ONNX nodes meaning: moe, linalg, tensor, arith";
  let description = [{
    Stage 2 of the ONNX importer. Converts every `onnx.node` through the
    handler registered for its domain, op type and opset version
    (moe/Conversion/OnnxToMoe/OnnxToMoe.h): org.moe_mlir functions and
    com.microsoft.MoE become `moe` ops, standard ops become linalg, tensor,
    arith and math ops.

    Nodes are converted in program order, each handler reading the already
    converted operands, so result types come from the conversion rather than
    from ONNX shape inference. First every node without a handler is
    reported (one located error each, with its domain and opset version);
    then every node is converted, and a handler that refuses its node (bad
    attribute, weight shape mismatch) reports at the node's location. The
    pass fails if anything was reported.

    Before:
    ```mlir
    %y = onnx.node "Add"(%a, %b) {version = 17 : i64}
        : (tensor<4xf32>, tensor<4xf32>) -> tensor<*xf32>
    ```
    After: a `linalg.generic` adding `%a` and `%b` into `tensor<4xf32>`.
  }];
  let dependentDialects = [
    "::mlir::moe::MoeDialect",
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

def RaiseOnnxMoe : Pass<"moe-raise-onnx", "::mlir::ModuleOp"> {
  let summary = "Raise exported MoE blocks and SwitchHead attention to "
                "org.moe_mlir nodes";
  let description = [{
    Runs on the ONNX graph (`moe-import --stage=onnx`), before
    `convert-onnx-to-moe`. Recognises MoE layers that `torch.onnx.export`
    writes as generic ops and rewrites each into one node the conversion
    turns into routed moe ops (only the selected experts are computed).
    Forms: (a) the per-expert loop of Hugging Face exports (OneHot expert
    mask, NonZero token lists, expert MLPs with SwiGLU or a plain
    activation, index_add) into an internal
    `org.moe_mlir.internal.RoutedExperts` node (moe.route, moe.dispatch,
    moe.grouped_matmul), and into the same node (g) transformers 5's
    `batched_mm` experts (each routing slot's weights gathered and
    applied to its token's row, repeated k times; each token's k slots
    summed), or, where their routing is not one moe.route computes, into
    `org.moe_mlir.internal.SelectedExperts` (the graph's ids and weights,
    moe.dispatch, moe.grouped_matmul); into `org.moe_mlir.MoEFeedForward`
    (moe.ffn):
    (c) gathered per-slot weights, `Einsum("nd,nsdo->nso", x,
    Gather(W1, ids))` ... `Einsum("ns,nsd->nd", w, y)`; (b) every expert
    computed and masked by a dense gate `ScatterElements(zeros, ids, w)`.
    The routing is a TopK over `MatMul(xs, Wsel)` with a sigmoid, softmax
    or top-k softmax gate; the expert activation relu, gelu, silu or none;
    weights constant. (e) SwitchHead attention as the reference module
    writes it (per-head sigmoid top-k routers, gathered value and output
    expert weights or dense values, RoPE on the rotate-half pairs, the
    1/sqrt(dk) scale, the causal Trilu mask or none), from its output
    `Einsum("nhk,nhkd->nd", ...)`, into `org.moe_mlir.SwitchHeadAttention`
    (or `SwitchHeadGatedAttention`), so a `moe.switchhead`: the model then
    runs flash-style attention and `moe-compile --generation` can derive
    its decode step. (f) continuous Mixture of Tokens as the reference
    module writes it (a group softmax, one expert at a time, a stacked
    sum), from its `ReduceSum`, into `org.moe_mlir.MixtureOfTokens`, so a
    `moe.mot`; for (e) and (f), a Reshape of the block's result back to
    its source's shape becomes the raised node's result. With `attention`
    (the default), an attention core left after those, `Softmax(MatMul(q,
    kT) [* c | / c] [+ mask], last axis) @ v` on rank-4 f32 tensors whose
    batch and head dims do not differ statically (checked at run time;
    k's and v's run-time 1s are repeated, as MatMul broadcasts) and whose
    mask is `[B or 1, H or 1, T or 1, S or 1]`, becomes
    `org.moe_mlir.internal.MaskedAttention`, a `moe.attention` with that
    additive mask and scale c (1/c for a division; 1 without; a scaling of
    q and kT stays where the export put it): flash-style, no `[B, H, T, S]`
    scores. The mask is
    whatever the graph computes; nothing about it is assumed
    (RaiseAttention.cpp). Whatever does not match stays as exported. The
    forms PyTorch's dynamo exporter writes
    are first rewritten into these (RaisePrepare.cpp): einsums recovered
    from ATen's Transpose/Reshape/MatMul lowering, where sizes are
    provably equal (reverted when no form consumes them); GatherND row
    indexing as Gather; a linear layer's transposed weight, and Gemm,
    as MatMul; CastLike of constants folded; no-op nodes dropped; sizes
    that the graph reads from its inputs compared by symbolic value; and
    the per-expert loop with an Equal mask and ScatterND(add) is form (a)
    too. With
    `report`, each raise and each near miss is a remark at its node
    (`moe-import --raise=report`). lib/Conversion/OnnxToMoe/RaiseMoe.cpp
    (forms (a)-(c), (g)), RaiseSwitchHead.cpp (form (e)) and RaiseMot.cpp (form
    (f)) state the
    equivalence argument of each form.

    Before (form (c), abridged):
    ```mlir
    %g1 = onnx.node "Gather"(%w1, %ids) ...
    %h = onnx.node "Einsum"(%x, %g1) {node_attributes = {equation = "nd,nsdo->nso"}} ...
    %y = onnx.node "Einsum"(%w, %d) {node_attributes = {equation = "ns,nsd->nd"}} ...
    ```
    After:
    ```mlir
    %y = onnx.node "MoEFeedForward"(%x, %x, %wsel, %w1, %w2)
        {domain = "org.moe_mlir", node_attributes = {activation = "relu",
         gate = "sigmoid", k = 2 : i64}, version = 1 : i64} ...
    ```
  }];
  let options = [
    Option<"report", "report", "bool", /*default=*/"false",
           "emit a remark for every raised block and every near miss">,
    Option<"attention", "attention", "bool", /*default=*/"true",
           "raise attention cores (Softmax(MatMul(q, kT) + mask) @ v) into "
           "moe.attention">
  ];
  let statistics = [
    Statistic<"numRaised", "raised", "MoE blocks and attention layers raised">
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect"];
}

def ConvertMoeToLinalg : Pass<"convert-moe-to-linalg"> {
  let summary = "Reference lowering of primitive moe ops to linalg, scf and tensor";
  let description = [{
    Lowers every primitive `moe` op (route, switch_route, tree_route,
    dispatch, grouped_matmul, combine, mot_mix, mot_unmix, attention, rope,
    unpack_panels) to linalg, scf, tensor, arith and math ops on tensors, correct for
    static and dynamic shapes; composite ops must be decomposed first
    (`moe-decompose`), and any moe op left is an error. Written for
    correctness, not speed: top-k as K masked arg-max passes, the counting
    sort and the segment scatter as sequential `scf.for` loops, one
    `linalg.matmul` per expert segment (per column panel and tail of the
    weight when it is a `moe.unpack_panels`, read where it is; the
    unpack itself is lowered after its users, as a copy for those that
    remain). A contraction on tensors (`linalg.generic`, from
    `moe-decompose`) whose right-hand side is the `[K, N]` matrix of a
    one-expert `moe.unpack_panels` (collapsed from `[1, K, Nb * P]`, and
    sliced to `N` columns where padded: the dense weights
    `moe-pack-expert-weights` lays out) is rebuilt to read the panels
    where they are too (`build::contractOverPanels`), and the reshapes
    and slices nothing reads then are erased. Expert ids outside [0, E) are
    reported to the runtime (`func.call @moe_report_error`) and replaced by
    0, so the run ends with an error status and nothing is written out of
    bounds.

    Before:
    ```mlir
    %off, %perm = moe.dispatch %ids {num_experts = 4 : i64}
        : tensor<?x2xi32> -> tensor<5xi32>, tensor<?xi32>
    ```
    After: `scf.for` loops building the histogram, the exclusive prefix sum
    and the stable scatter, with `tensor.extract`/`tensor.insert`.

    With `flash-key-block` > 0 (moe-compile's optimised pipeline: 128),
    `moe.attention` without a cache is lowered flash-style instead
    (populateMoeFlashAttentionPatterns): per (batch, head) and block of 32
    query rows, `scf.for` loops over blocks of that many keys (then the
    rest in static blocks of the powers of two below it down to 16, then
    fewer than 16 keys) carrying the running row maximum, the running sum
    of exponentials and the unnormalised output, rescaled when a block
    raises the maximum, divided once after the last block; the scores
    never exceed 32 x the key block. Negative values are an error. With an
    additive `mask` and `skip-masked-key-blocks` (on by default), a key
    block whose mask values are all at most -1e30 (a causal or padding
    mask's masked keys) is not computed once every row of the query block
    has a running maximum of at least -1e20: it would add exact zeros (its
    exponentials underflow), so the bits are the same (unless a hidden
    key's score is NaN, inf or beyond 1e29 in magnitude, or its value row
    holds an inf or NaN that 0 * v would spread). A causal mask's blocks
    above the diagonal are then read, not computed.

    With `fuse-expert-pairs` (moe-compile's optimised pipeline), an up
    projection `moe.grouped_matmul` whose rows in expert order
    (`sorted_result`) only a down projection in the same block reads
    (`sorted_input`, the same offsets and perm; both made by
    moe-sort-expert-layouts), with statically shaped weights without a
    zero-sized dim and a down result in slot or token order (no
    `sorted_result`), is lowered together with it
    (populateMoeExpertPairPatterns): one `scf.forall` over experts whose
    iteration computes its expert's rows of the up projection, with its
    epilogue, into its rows of the hidden buffer, and then the down
    projection of those rows, while they are in cache, instead of one
    loop over experts per projection. Every row's arithmetic is the same.

    ```mlir
    %h = moe.grouped_matmul %x, %w1, %off, %perm act<relu> {sorted_result}
        : (...) -> tensor<?x128xf32>
    %y = moe.grouped_matmul %h, %w2, %off, %perm weights(%sw) {sorted_input}
        : (...) -> tensor<?x412xf32>
    ```
    becomes one `scf.forall (%e) in (155) shared_outs(%ys = ..., %hs = ...)`
    (the down projection's rows, then the hidden rows, given back after
    the loop by a `bufferization.dealloc_tensor`) with two `linalg.matmul`s
    (per column panel when the weights are in panels), then the weighted
    reduction into token order.

    With `fuse-routing` (moe-compile's pipelines, `--no-tile` included;
    off with `--reference` and `--no-fuse-routing`), `moe.route` is
    lowered as one `scf.forall` over its rows (populateMoeFusedRoutingPatterns):
    each iteration writes its row's ranked scores (for `gate<softmax>` the
    row's maximum, exponentials, their sum and the quotients) into the
    row's buffer, selects the k best there with the reference's walk, and
    applies `gate<sigmoid>` or `gate<topk_softmax>` to the k selected
    values, while the row is in cache. The reference's form makes a pass
    over all rows per step. Every element's arithmetic and order is the
    reference's, so the bits are the same.
  }];
  let options = [
    Option<"flashKeyBlock", "flash-key-block", "int64_t", "0",
           "keys per block of the flash-style attention without a cache "
           "(0: the reference's form)">,
    Option<"skipMaskedKeyBlocks", "skip-masked-key-blocks", "bool", "true",
           "with flash-key-block: key blocks an additive mask leaves out "
           "whole (all <= -1e30) are not computed once every row has seen "
           "a key">,
    Option<"fuseExpertPairs", "fuse-expert-pairs", "bool", "false",
           "an up projection in expert order and the down projection that "
           "alone reads it in one loop over experts">,
    Option<"fuseRouting", "fuse-routing", "bool", "false",
           "moe.route in one loop over its rows: gate, top-k and the gate "
           "on the selected values per row">
  ];
  let dependentDialects = [
    "::mlir::affine::AffineDialect",
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::func::FuncDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

#endif // MOE_CONVERSION_PASSES_TD

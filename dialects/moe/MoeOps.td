//===- MoeOps.td - moe dialect operations ------------------*- tablegen -*-===//
//
// Primitive ops first (what backends lower), then one composite op per model
// layer (what the importer produces and `moe-decompose` expands).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_OPS_TD
#define MOE_OPS_TD

include "MoeBase.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

// Every moe op is pure, and gives its result sizes in terms of its operands'
// (tensor.dim of a result folds to operand dims:
// -resolve-ranked-shaped-type-result-dims; the rules are in MoeOps.cpp).
defvar Moe_PureShaped = [Pure, DeclareOpInterfaceMethods<
    ReifyRankedShapedTypeOpInterface, ["reifyResultShapes"]>];

//===----------------------------------------------------------------------===//
// Routing
//===----------------------------------------------------------------------===//

def Moe_RouteOp : Moe_Op<"route", Moe_PureShaped> {
  let summary = "top-k expert routing with a sigmoid or softmax gate";
  let description = [{
    Selects `k` experts per row of `scores` (`[N, G*E]`, `G = groups`) within
    each of the `G` groups of `E` consecutive columns, and returns the slot
    weights `[N, G*k]` and the expert ids `[N, G*k]`. The id of expert `e` of
    group `g` is `g*E + e` (SwitchHead routes per head with `groups = H`).
    Slot `g*k + j` of a row is its `j`-th selected expert in group `g`; the
    order of the `k` slots within a group is unspecified.

    - `sigmoid`: weight = σ(score) of the selected expert (σ-MoE).
    - `softmax`: softmax over the `E` scores of the group, then top-k, no
      renormalisation.
    - `topk_softmax`: top-k of the scores, then softmax over the `k` selected
      scores (renormalised, Mixtral style).

    Constraints: C1 ranks are 2; C2 the results have `N` rows and `groups*k`
    columns; C3 the weights have the element type of the scores; C4
    `groups >= 1` divides the score columns; C5 `1 <= k <= E`.

    Example:
    ```mlir
    %w, %ids = moe.route %scores gate<sigmoid> {k = 2 : i64}
        : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$scores, Moe_GateAttr:$gate,
                       I64Attr:$k, DefaultValuedAttr<I64Attr, "1">:$groups);
  let results = (outs Moe_FloatTensor:$weights, Moe_IntTensor:$ids);
  let assemblyFormat = [{
    $scores `gate` `` $gate attr-dict `:` type($scores) `->`
    type($weights) `,` type($ids)
  }];
  let hasVerifier = 1;
}

def Moe_SwitchRouteOp : Moe_Op<"switch_route", Moe_PureShaped> {
  let summary = "Switch top-1 routing with a capacity limit";
  let description = [{
    Switch Transformer routing (models.md section 7): `p = softmax(scores)`
    per row, `i* = argmax p` (lowest index on ties), weight `p[i*]`. Each
    expert admits at most `C = ceil(N / E * capacity_factor)` tokens, in
    order of row; an overflowing token is dropped: its `kept` entry is false
    and its weight is 0, so its layer output is 0 (the residual passes it
    through). Its id stays the argmax so that dispatch stays in range.
    `capacity_factor = inf` never drops.

    Constraints: C1 `scores` has rank 2, `weights` and `ids` rank 2, `kept`
    rank 1; C2 the results have `N` rows and one slot; C3 the weights have the
    element type of the scores; C4 `capacity_factor > 0`.

    Example:
    ```mlir
    %w, %ids, %kept = moe.switch_route %scores {capacity_factor = 1.25 : f64}
        : tensor<16x4xf32> -> tensor<16x1xf32>, tensor<16x1xi32>, tensor<16xi1>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$scores, F64Attr:$capacity_factor);
  let results = (outs Moe_FloatTensor:$weights, Moe_IntTensor:$ids,
                      Moe_MaskTensor:$kept);
  let assemblyFormat = [{
    $scores attr-dict `:` type($scores) `->` type($weights) `,` type($ids) `,`
    type($kept)
  }];
  let hasVerifier = 1;
}

def Moe_TreeRouteOp : Moe_Op<"tree_route", Moe_PureShaped> {
  let summary = "sign-bit tree routing (conditional computation)";
  let description = [{
    Routes each row of `gates` (`[N, depth]`, the gating units `u`) by the
    sign bits `b_j = [u_j > 0]` (models.md section 6). In `path` mode the row
    gets `depth + 1` slots, the tree nodes on its root-to-leaf path: slot `j`
    is node `(2^j - 1) + int(b_1..b_j)` (node 0 is the root); the tree has
    `2^(depth+1) - 1` nodes. In `flat` mode the row gets one slot, leaf
    `int(b_1..b_depth)` of `2^depth`. Every weight is 1.

    Constraints: C1 ranks are 2; C2 the depth (gates dim 1) is static and in
    [1, 30]; C3 the results have `N` rows and `depth + 1` (path) or 1 (flat)
    columns; C4 the weights have the element type of the gates.

    Example:
    ```mlir
    %w, %ids = moe.tree_route %u mode<path>
        : tensor<?x3xf32> -> tensor<?x4xf32>, tensor<?x4xi32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$gates, Moe_TreeModeAttr:$mode);
  let results = (outs Moe_FloatTensor:$weights, Moe_IntTensor:$ids);
  let assemblyFormat = [{
    $gates `mode` `` $mode attr-dict `:` type($gates) `->`
    type($weights) `,` type($ids)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Dispatch, grouped matmul, combine
//===----------------------------------------------------------------------===//

def Moe_DispatchOp : Moe_Op<"dispatch", Moe_PureShaped> {
  let summary = "counting sort of routing slots by expert";
  let description = [{
    Sorts the `M = N*S` slots of `ids` (`[N, S]`, row-major slot order
    `n*S + s`) by expert id with a stable counting sort (models.md section
    1): `offsets[e]` (`[E+1]`, `offsets[0] = 0`, `offsets[E] = M`) is the
    exclusive prefix sum of the per-expert histogram, and sorted position `i`
    holds slot `perm[i]`; the segment of expert `e` is
    `[offsets[e], offsets[e+1])`. An id outside `[0, E)` is a run-time
    error of the lowered code.

    Constraints: C1 `ids` has rank 2, `offsets` and `perm` rank 1; C2
    `num_experts >= 1`; C3 `offsets` has `num_experts + 1` elements; C4
    `perm` has `N*S` elements.

    Example:
    ```mlir
    %off, %perm = moe.dispatch %ids {num_experts = 8 : i64}
        : tensor<?x2xi32> -> tensor<9xi32>, tensor<?xi32>
    ```
  }];
  let arguments = (ins Moe_IntTensor:$ids, I64Attr:$num_experts);
  let results = (outs Moe_IntTensor:$offsets, Moe_IntTensor:$perm);
  let assemblyFormat = [{
    $ids attr-dict `:` type($ids) `->` type($offsets) `,` type($perm)
  }];
  let hasVerifier = 1;
}

def Moe_GroupedMatmulOp : Moe_Op<"grouped_matmul",
    !listconcat(Moe_PureShaped, [AttrSizedOperandSegments])> {
  let summary = "expert-grouped matmul over dispatched slots";
  let description = [{
    The routed matmul of models.md section 1. `offsets` and `perm` come from
    `moe.dispatch`: sorted position `i` in the segment of expert `e` holds
    slot `j = perm[i]`. There are `M` slots (the size of `perm`) and `R` rows
    in `input` (`[R, Din]`); `R` divides `M` and slot `j` reads row
    `j / (M / R)`: `R = N` for an up-projection (each token row feeds its
    `S` slots), `R = M` when each slot has its own row (down-projection).

        Y[j] = act(input[j / (M / R)] @ weight[e] + bias[e])
                                    (weight: [E, Din, Dout], bias: [E, Dout])

    `bias` (optional, none adds nothing) and `act` (optional, `relu`,
    `gelu`, `silu` or `identity`; none is `identity`) form the epilogue of
    each expert's product.

    Without `slot_weights` the result is `Y` in slot order, `[M, Dout]`.
    With `slot_weights` (`[N, S]`, `N*S = M`) the result is the weighted
    reduction into token order, `[N, Dout]`:
    `out[n] = Σ_s slot_weights[n, s] * Y[n*S + s]` (no normalisation, `s`
    in increasing order). Experts may receive no slot; no slot is dropped.

    Sorted layout (made by `moe-sort-expert-layouts`, which keeps an up
    projection's rows in expert order for the down projection that reads
    them): with the unit attribute `sorted_result`, row `i` of the result
    is `Y[perm[i]]` (expert order, no scatter to slot order); with
    `sorted_input`, sorted position `i` reads `input[i]` (the input has `M`
    rows in expert order, no gather).

    Constraints: C1 ranks (input 2, weight 3, offsets 1, perm 1,
    slot_weights 2, bias 2, result 2); C2 `Din` of input and weight agree;
    C3 `offsets` has `E + 1` elements; C4 `R` divides `M` (with
    `sorted_input`, `R = M`); C5 with `slot_weights`, `N*S = M` and the
    result has `N` rows, otherwise `M` rows; C6 the result has `Dout`
    columns; C7 input, weight, slot weights, bias and result share one
    element type; C8 `bias` is `[E, Dout]`; C9 `sorted_result` excludes
    `slot_weights`.

    Example:
    ```mlir
    %y = moe.grouped_matmul %x, %w1, %off, %perm bias(%b1) act<relu>
        : (tensor<?x64xf32>, tensor<8x64x128xf32>, tensor<9xi32>,
           tensor<?xi32>, tensor<8x128xf32>) -> tensor<?x128xf32>
    %o = moe.grouped_matmul %y, %w2, %off, %perm weights(%sw)
        : (tensor<?x128xf32>, tensor<8x128x64xf32>, tensor<9xi32>,
           tensor<?xi32>, tensor<?x2xf32>) -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$input, Moe_FloatTensor:$weight,
                       Moe_IntTensor:$offsets, Moe_IntTensor:$perm,
                       Optional<Moe_FloatTensor>:$slot_weights,
                       Optional<Moe_FloatTensor>:$bias,
                       OptionalAttr<Moe_ActivationAttr>:$activation,
                       UnitAttr:$sorted_input, UnitAttr:$sorted_result);
  let results = (outs Moe_FloatTensor:$result);
  let builders = [
    // The plain form: no epilogue, slot order.
    OpBuilder<(ins "Type":$result, "Value":$input, "Value":$weight,
                   "Value":$offsets, "Value":$perm, "Value":$slot_weights), [{
      build($_builder, $_state, result, input, weight, offsets, perm,
            slot_weights, /*bias=*/Value(), /*activation=*/ActivationAttr(),
            /*sorted_input=*/false, /*sorted_result=*/false);
    }]>
  ];
  let assemblyFormat = [{
    $input `,` $weight `,` $offsets `,` $perm
    (`weights` `(` $slot_weights^ `)`)? (`bias` `(` $bias^ `)`)?
    (`act` `` $activation^)? attr-dict `:`
    functional-type(operands, results)
  }];
  let extraClassDeclaration = [{
    /// The epilogue's activation (identity when none is set).
    Activation getActivationOrIdentity() {
      return getActivation() ? *getActivation() : Activation::Identity;
    }
  }];
  let hasVerifier = 1;
}

def Moe_UnpackPanelsOp : Moe_Op<"unpack_panels", Moe_PureShaped> {
  let summary = "expert weights [E, K, N] from their column-panel layout";
  let description = [{
    The layout in which the CPU code reads constant expert weights
    (`moe-pack-expert-weights`, docs/passes.md): the columns of each
    expert's `[K, N]` matrix cut into `Nf` panels of `P` columns, each
    stored as a contiguous `[K, P]` block, and the `T = N - Nf*P` columns
    left over (optional; `moe-pack-expert-weights` gives a narrow remainder
    to the tail with the last panel's columns, so `T` may exceed `P`) as a
    contiguous `[K, T]` block:

        result[e, k, n] = panels[e, n / P, k, n % P]      (n < Nf*P)
        result[e, k, n] = tail[e, k, n - Nf*P]            (n >= Nf*P)

    A one-row tile of `P` columns then streams one block from memory
    instead of `P` columns of each of `K` rows `4N` bytes apart. The
    grouped matmul's lowering reads the panels where they are (no
    unpacked copy); any other use gets the copy above.

    Constraints: C1 ranks (panels 4, tail 3, result 3) and static shapes;
    C2 `E` and `K` agree; C3 `N = Nf*P + T` with `Nf >= 1`, `P >= 1` and
    `T >= 1` (`T = 0` without `tail`); C4 one element type.

    Example:
    ```mlir
    %w2 = moe.unpack_panels %panels, %tail
        : (tensor<8x6x128x64xf32>, tensor<8x128x28xf32>)
          -> tensor<8x128x412xf32>
    %w3 = moe.unpack_panels %p3, %t3
        : (tensor<8x1x128x64xf32>, tensor<8x128x67xf32>)
          -> tensor<8x128x131xf32>
    %w1 = moe.unpack_panels %p1
        : (tensor<8x2x412x64xf32>) -> tensor<8x412x128xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$panels,
                       Optional<Moe_FloatTensor>:$tail);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $panels (`,` $tail^)? attr-dict `:` functional-type(operands, results)
  }];
  let extraClassDeclaration = [{
    /// The panel width P.
    int64_t getPanelWidth() {
      return cast<RankedTensorType>(getPanels().getType()).getDimSize(3);
    }
    /// The number of full panels Nf.
    int64_t getNumPanels() {
      return cast<RankedTensorType>(getPanels().getType()).getDimSize(1);
    }
  }];
  let hasVerifier = 1;
}

def Moe_CombineOp : Moe_Op<"combine", Moe_PureShaped> {
  let summary = "weighted reduction of each token's slots";
  let description = [{
    `out[n] = Σ_s weights[n, s] * slots[n, s]` for `slots` `[N, S, D]` and
    `weights` `[N, S]`; no normalisation of the weights.

    Constraints: C1 ranks (slots 3, weights 2, result 2); C2 `N`, `S` and
    `D` agree; C3 one element type.

    Example:
    ```mlir
    %o = moe.combine %y, %w
        : (tensor<?x2x64xf32>, tensor<?x2xf32>) -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$slots, Moe_FloatTensor:$weights);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $slots `,` $weights attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Mixture of Tokens
//===----------------------------------------------------------------------===//

def Moe_MotMixOp : Moe_Op<"mot_mix", Moe_PureShaped> {
  let summary = "Mixture-of-Tokens mixing of each group into one token per expert";
  let description = [{
    Mixture of Tokens (models.md section 5). With `g = group_size` dividing
    `B`, a group is `g` consecutive batch elements at one position `t`;
    `C = B / g` groups per position. For `input` `[B, T, D]` and controller
    `logits` `[B, T, E]`:

        weights[t, c, i, e] = softmax_i(logits[c*g + i, t, e] / temperature)
        mixed[t, c, e]      = Σ_i weights[t, c, i, e] * input[c*g + i, t]

    giving `mixed` `[T, C, E, D]` and `weights` `[T, C, g, E]`. In `discrete`
    mode the weights are the one-hot argmax over the group (lowest index on
    ties), so each expert takes exactly one token per group, with weight 1.

    Constraints: C1 ranks (input 3, logits 3, mixed 4, weights 4); C2
    `group_size >= 1` divides `B`; C3 `logits` matches `B` and `T` of the
    input; C4 result shapes `[T, B/g, E, D]` and `[T, B/g, g, E]`; C5
    `temperature > 0` and finite; C6 one element type.

    Example:
    ```mlir
    %z, %m = moe.mot_mix %x, %logits mode<continuous>
        {group_size = 4 : i64, temperature = 1.0 : f64}
        : (tensor<8x?x32xf32>, tensor<8x?x6xf32>)
        -> tensor<?x2x6x32xf32>, tensor<?x2x4x6xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$input, Moe_FloatTensor:$logits,
                       Moe_MixModeAttr:$mode, I64Attr:$group_size,
                       DefaultValuedAttr<F64Attr, "1.0">:$temperature);
  let results = (outs Moe_FloatTensor:$mixed, Moe_FloatTensor:$weights);
  let assemblyFormat = [{
    $input `,` $logits `mode` `` $mode attr-dict `:`
    `(` type($input) `,` type($logits) `)` `->` type($mixed) `,` type($weights)
  }];
  let hasVerifier = 1;
}

def Moe_MotUnmixOp : Moe_Op<"mot_unmix", Moe_PureShaped> {
  let summary = "Mixture-of-Tokens redistribution of expert outputs";
  let description = [{
    The inverse step of `moe.mot_mix`: for expert outputs `[T, C, E, D]` and
    the mixing weights `[T, C, g, E]`,
    `out[c*g + i, t] = Σ_e weights[t, c, i, e] * outputs[t, c, e]`, giving
    `[C*g, T, D]`.

    Constraints: C1 ranks (outputs 4, weights 4, result 3); C2 `T`, `C` and
    `E` agree; C3 the result is `[C*g, T, D]`; C4 one element type.

    Example:
    ```mlir
    %o = moe.mot_unmix %y, %m
        : (tensor<?x2x6x32xf32>, tensor<?x2x4x6xf32>) -> tensor<8x?x32xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$outputs, Moe_FloatTensor:$weights);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $outputs `,` $weights attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

def Moe_AttentionOp : Moe_Op<"attention",
    !listconcat(Moe_PureShaped, [AttrSizedOperandSegments])> {
  let summary = "scaled dot-product attention core";
  let description = [{
    `out[b, h] = softmax(q[b, h] @ k[b, h]^T * scale) @ v[b, h]` for `q`
    `[B, H, T, dk]`, `k` `[B, H, S, dk]`, `v` `[B, H, S, dv]`; result
    `[B, H, T, dv]`. `scale` defaults to `1/sqrt(dk)`. With `causal`, query
    `t` sees keys `s <= t + (S - T)` (the queries are the last `T`
    positions of the `S` keys).

    With `past(%past_key, %past_value)` (`[B, H, P, dk]` and `[B, H, P,
    dv]`, head-major: a key/value cache), the keys are the `P` past
    ones followed by `k`'s `S`, and the values likewise: the attention of
    `moe.switchhead_cached`. The lowering reads the cache where it is (two
    score blocks and two value products), instead of copying it next to
    the new rows; `causal` then lets query `t` see keys
    `s <= t + (P + S - T)`.

    With `mask(%m)` (`[B or 1, H or 1, T or 1, S or 1]`, no cache), `m` is
    added to the scaled scores before the softmax (an exported model's
    additive attention mask: 0 where a key is seen, a large negative
    number or -inf where not; keys that `causal` hides are not read, nor
    are their mask entries; a padding mask is `[B, 1, 1, S]`). A size of 1
    broadcasts, as ONNX's Add does (a static 1, or a B or H that is 1 at
    run time, is read in place; a T or S that is 1 at run time is copied
    across first); any other size is an error at run time.

    Where `k`'s and `v`'s `B` or `H` is 1 (static, or at run time) against
    a larger dynamic `q`'s, they are repeated, as ONNX's MatMul broadcasts
    them (the other way round is an error at run time).

    With `sinks(%s)` (`[H]`, no cache), each row's softmax also runs over
    one more logit, `s[h]`, whose probability P·V leaves out (gpt-oss's
    attention sinks): `p_j = exp(x_j) / (sum_j' exp(x_j') + exp(s[h]))` for
    the row's scaled, masked scores `x`. A row then sums to less than 1,
    and a row that sees no key gives 0 (where `s[h]` is finite).

    With `zero_nan_probs`, a probability that is NaN counts as 0, as torch's
    exported `scaled_dot_product_attention` guards its softmax
    (`Where(IsNaN(p), 0, p)`): a row whose softmax is NaN (every key it sees
    masked to -inf, or a NaN or +inf score) gives 0 instead of NaN (but
    for the flash lowering's key blocks left out as masked:
    docs/tolerance.md).

    Constraints: C1 ranks are 4; C2 `B` and `H` agree, `k` and `v` share
    `S`, `q` and `k` share `dk`; C3 the result is `[B, H, T, dv]`; C4 one
    element type; C5 `scale`, when given, is finite and non-zero; C6
    `past_key` and `past_value` come together, of rank 4, `[B, H, P, dk]`
    and `[B, H, P, dv]` with one `P`, of the element type; C7 `mask` is of
    rank 4 and the element type, `[B or 1, H or 1, T or 1, S or 1]` where
    static, and not given with a cache; C8 `sinks` is of rank 1 and the
    element type, `[H]` where static, and not given with a cache.

    Example:
    ```mlir
    %o = moe.attention %q, %k, %v {causal}
        : (tensor<2x4x?x16xf32>, tensor<2x4x?x16xf32>, tensor<2x4x?x16xf32>)
        -> tensor<2x4x?x16xf32>
    %c = moe.attention %q1, %k1, %v1 past(%pk, %pv) {causal}
        : (tensor<2x4x1x16xf32>, tensor<2x4x1x16xf32>, tensor<2x4x1x16xf32>,
           tensor<2x4x?x16xf32>, tensor<2x4x?x16xf32>)
        -> tensor<2x4x1x16xf32>
    %m = moe.attention %q, %k, %v mask(%mask) {scale = 1.0 : f64, zero_nan_probs}
        : (tensor<2x4x?x16xf32>, tensor<2x4x?x16xf32>, tensor<2x4x?x16xf32>,
           tensor<1x1x?x?xf32>)
        -> tensor<2x4x?x16xf32>
    %s = moe.attention %q, %k, %v mask(%mask) sinks(%sinks) {scale = 0.25 : f64}
        : (tensor<2x4x?x16xf32>, tensor<2x4x?x16xf32>, tensor<2x4x?x16xf32>,
           tensor<1x1x?x?xf32>, tensor<4xf32>)
        -> tensor<2x4x?x16xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$query, Moe_FloatTensor:$key,
                       Moe_FloatTensor:$value,
                       Optional<Moe_FloatTensor>:$past_key,
                       Optional<Moe_FloatTensor>:$past_value,
                       Optional<Moe_FloatTensor>:$mask,
                       Optional<Moe_FloatTensor>:$sinks,
                       UnitAttr:$causal, OptionalAttr<F64Attr>:$scale,
                       UnitAttr:$zero_nan_probs);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $query `,` $key `,` $value
    (`past` `(` $past_key^ `,` $past_value `)`)?
    (`mask` `(` $mask^ `)`)?
    (`sinks` `(` $sinks^ `)`)?
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moe_RopeOp : Moe_Op<"rope", Moe_PureShaped> {
  let summary = "rotary position encoding on a fraction of each head's dims";
  let description = [{
    Applies RoPE to the first `r` dims of each head of `input`
    `[B, T, H, dh]` at positions `p = offset + t` for `t = 0..T-1`
    (`offset`, an index, defaults to 0: a decode step after `offset` cached
    positions rotates its tokens at their absolute positions), leaving the
    others unchanged, where `r = floor(dh * rotate_fraction)` rounded down to an
    even number (as the MoEUT authors' code does: the published MoEUT-44M
    has `dh = 82`, so `floor(41)` gives `r = 40`). Rotate-half convention:
    with `h = r/2`, for `i < h`, `θ = p * base^(-2i/r)`:

        out[..., i]     = x[i] * cos θ - x[i + h] * sin θ
        out[..., i + h] = x[i + h] * cos θ + x[i] * sin θ

    Constraints: C1 rank 4 and the result type equals the input type; C2
    `rotate_fraction` in [0, 1]; C3 `base > 0` and finite. Any head width
    is valid (the rotated width is even by definition).

    Example:
    ```mlir
    %r = moe.rope %q {rotate_fraction = 0.5 : f64, base = 10000.0 : f64}
        : tensor<2x?x4x16xf32> -> tensor<2x?x4x16xf32>
    %s = moe.rope %k offset(%past) {rotate_fraction = 0.5 : f64}
        : tensor<2x1x4x16xf32> -> tensor<2x1x4x16xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$input, Optional<Index>:$offset,
                       DefaultValuedAttr<F64Attr, "0.5">:$rotate_fraction,
                       DefaultValuedAttr<F64Attr, "10000.0">:$base);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $input (`offset` `(` $offset^ `)`)? attr-dict `:` type($input) `->`
    type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Composite ops: one per model layer
//===----------------------------------------------------------------------===//

def Moe_FfnOp : Moe_Op<"ffn", Moe_PureShaped> {
  let summary = "σ-MoE / Switch expert feed-forward layer";
  let description = [{
    One sparse MoE feed-forward layer (models.md sections 2 and 7) on token
    rows `input` `[N, D]`:

        s   = selector_input @ w_sel^T        (w_sel: [E, D])
        w, ids = route(s, gate, k)            or switch_route when
                                              capacity_factor is set
        y   = Σ_slots w * act(input @ w1[id]) @ w2[id]

    with `w1` `[E, D, Ge]` and `w2` `[E, Ge, D]`. `selector_input` defaults
    to `input` (MoEUT passes `LN2(x)` as selector input and raw `x` to the
    experts). `capacity_factor` makes it a Switch layer (top-1 softmax with
    a capacity limit; dropped tokens give 0).

    Constraints: C1 ranks (input, selector_input, result 2; w_sel 2; w1, w2
    3); C2 dims agree (`N`, `D`, `E`, `Ge` as above) and the result is
    `[N, D]`; C3 the expert count `E` is static in at least one weight; C4
    `1 <= k <= E`; C5 `capacity_factor`, when set, is `> 0` and needs
    `k = 1` and the `softmax` gate; C6 one element type.

    Decomposes (`moe-decompose-ffn`) into `moe.route` (or
    `moe.switch_route`), `moe.dispatch` and two `moe.grouped_matmul`.

    Example:
    ```mlir
    %y = moe.ffn %x, %wsel, %w1, %w2 gate<sigmoid> act<relu> {k = 2 : i64}
        : (tensor<?x64xf32>, tensor<8x64xf32>, tensor<8x64x128xf32>,
           tensor<8x128x64xf32>) -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$input, Moe_FloatTensor:$w_sel,
                       Moe_FloatTensor:$w1, Moe_FloatTensor:$w2,
                       Optional<Moe_FloatTensor>:$selector_input,
                       Moe_GateAttr:$gate, I64Attr:$k,
                       Moe_ActivationAttr:$activation,
                       OptionalAttr<F64Attr>:$capacity_factor);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $w_sel `,` $w1 `,` $w2
    (`selector` `(` $selector_input^ `)`)? `gate` `` $gate
    `act` `` $activation attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moe_TreeFfnOp : Moe_Op<"tree_ffn", Moe_PureShaped> {
  let summary = "sign-bit tree-gated layer (conditional computation)";
  let description = [{
    The layer of models.md section 6 on rows `input` `[N, Din]`: gating
    units `u = input @ w_gate` (`[Din, depth]`), bits `b_j = [u_j > 0]`, and

        path: y = act(Σ_{j=0..depth} input @ weight[node_j])   (2^(depth+1)-1 nodes)
        flat: y = act(input @ weight[leaf])                     (2^depth leaves)

    with `weight` `[P, Din, Dout]` and node ids as in `moe.tree_route`.

    Constraints: C1 ranks (input 2, w_gate 2, weight 3, result 2); C2
    `depth` (w_gate dim 1) is static and in [1, 30]; C3 `P` is
    `2^(depth+1) - 1` (path) or `2^depth` (flat); C4 `Din`, `N`, `Dout`
    agree and the result is `[N, Dout]`; C5 one element type.

    Decomposes (`moe-decompose-tree-ffn`) into a matmul, `moe.tree_route`,
    `moe.dispatch` and one `moe.grouped_matmul`.

    Example:
    ```mlir
    %y = moe.tree_ffn %h, %wg, %w mode<path> act<relu>
        : (tensor<?x32xf32>, tensor<32x2xf32>, tensor<7x32x16xf32>)
        -> tensor<?x16xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$input, Moe_FloatTensor:$w_gate,
                       Moe_FloatTensor:$weight, Moe_TreeModeAttr:$mode,
                       Moe_ActivationAttr:$activation);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $w_gate `,` $weight `mode` `` $mode
    `act` `` $activation attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moe_SwitchHeadOp : Moe_Op<"switchhead", Moe_PureShaped> {
  let summary = "SwitchHead MoE attention layer";
  let description = [{
    SwitchHead attention (models.md section 3) with `H = num_heads` heads and
    `E` experts per head, on `q_src`, `k_src`, `v_src` `[B, T, D]`:

        q = rope(q_src @ wq), k = rope(k_src @ wk)   wq, wk: [D, H*dk]
        rv = route(k_src @ sel_v^T, sigmoid, k, groups = H)   sel_v: [H*E, D]
        V[b,t,h] = Σ_k rv_k * v_src[b,t] @ wv[h*E + e_k]      wv: [H*E, D, dv]
        R = attention(q, k, V, causal)
        ro = route(q_src @ sel_o^T, sigmoid, k, groups = H)   sel_o: [H*E, D]
        y[b,t] = Σ_h Σ_k ro[h,k] * R[b,t,h] @ wo[h*E + e(h,k)]    wo: [H*E, dv, D]

    RoPE rotates the first `rotate_fraction` of each q/k head's dims (0
    disables it). Without `sel_v` (allowed only for `E = 1`) the value
    projection is dense and ungated: the E = 1 variant with a per-head
    sigmoid output gate.

    Constraints: C1 ranks (sources and result 3, wq/wk 2, wv/wo 3, selectors
    2); C2 `num_heads >= 1` divides the columns of wq and wk and the rows of
    wv, wo and the selectors; C3 dims agree (`B`, `T`, `D`, `dk`, `dv`,
    `H*E`) and the result is `[B, T, D]`; C4 `E` is static and
    `1 <= k <= E`; C5 `sel_v` may be absent only when `E = 1`; C6
    `rotate_fraction` in [0, 1] and `rope_base > 0` (the rotated width of
    `dk` is rounded down to an even number, as in `moe.rope`); C7 one
    element type.

    Decomposes (`moe-decompose-switchhead`) into matmuls, `moe.rope`,
    `moe.route`, `moe.dispatch`, `moe.grouped_matmul` and `moe.attention`.

    Example:
    ```mlir
    %y = moe.switchhead %x, %x, %x, %wq, %wk, %wv, %wo, %so sel_v(%sv)
        {num_heads = 2 : i64, k = 2 : i64}
        : (tensor<1x?x32xf32>, tensor<1x?x32xf32>, tensor<1x?x32xf32>,
           tensor<32x16xf32>, tensor<32x16xf32>, tensor<8x32x8xf32>,
           tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>)
        -> tensor<1x?x32xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$q_src, Moe_FloatTensor:$k_src,
                       Moe_FloatTensor:$v_src, Moe_FloatTensor:$wq,
                       Moe_FloatTensor:$wk, Moe_FloatTensor:$wv,
                       Moe_FloatTensor:$wo, Moe_FloatTensor:$sel_o,
                       Optional<Moe_FloatTensor>:$sel_v,
                       I64Attr:$num_heads, I64Attr:$k,
                       DefaultValuedAttr<BoolAttr, "true">:$causal,
                       DefaultValuedAttr<F64Attr, "0.5">:$rotate_fraction,
                       DefaultValuedAttr<F64Attr, "10000.0">:$rope_base);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $q_src `,` $k_src `,` $v_src `,` $wq `,` $wk `,` $wv `,` $wo `,` $sel_o
    (`sel_v` `(` $sel_v^ `)`)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moe_SwitchHeadCachedOp : Moe_Op<"switchhead_cached", Moe_PureShaped> {
  let summary = "SwitchHead attention of new tokens over a key/value cache";
  let description = [{
    One decode (or prefill) step of `moe.switchhead` with a key/value cache.
    `q_src`, `k_src`, `v_src` `[B, T, D]` are `T` new tokens at absolute
    positions `P..P+T-1`, after `P` positions whose keys and values are
    `past_key` `[B, H, P, dk]` and `past_value` `[B, H, P, dv]`
    (head-major: each head's `P` rows are contiguous, and may be the first
    `P` rows of a buffer sized for the longest sequence, a strided slice).
    With `k` the new keys (projected and rotated by RoPE at their absolute
    positions) and `V` the new values (after the value experts), both
    `[B, H, T, *]`:

        keys   = past_key ++ k         values = past_value ++ V   (along P)
        R      = attention(rope(q, at P..P+T-1), keys, values, causal)
        result = the output experts of moe.switchhead applied to R

    `result` `[B, T, D]` equals rows `P..P+T-1` of `moe.switchhead` on the
    whole sequence, and `new_key` `[B, H, T, dk]` and `new_value`
    `[B, H, T, dv]` are the rows to append to the cache. The query is
    rotated at its absolute position too (the MoEUT authors' cached path
    rotates it at position 0).

    Constraints: C1 to C7 as `moe.switchhead` (with its `result`); C8 ranks
    4 for the caches and the new rows, `past_key` `[B, H, P, dk]` and
    `past_value` `[B, H, P, dv]` with one `P`, `new_key` `[B, H, T, dk]`,
    `new_value` `[B, H, T, dv]`, all of the element type of the sources;
    C9 `causal` (a cache holds only earlier positions).

    Decomposed by `moe-decompose-switchhead` with the same builder as
    `moe.switchhead`.

    Example:
    ```mlir
    %y, %nk, %nv = moe.switchhead_cached %x, %x, %x, %wq, %wk, %wv, %wo, %so
        past(%pk, %pv) sel_v(%sv) {num_heads = 2 : i64, k = 2 : i64}
        : (tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>,
           tensor<32x16xf32>, tensor<32x16xf32>, tensor<8x32x8xf32>,
           tensor<8x8x32xf32>, tensor<8x32xf32>, tensor<1x2x?x8xf32>,
           tensor<1x2x?x8xf32>, tensor<8x32xf32>)
        -> (tensor<1x1x32xf32>, tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>)
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$q_src, Moe_FloatTensor:$k_src,
                       Moe_FloatTensor:$v_src, Moe_FloatTensor:$wq,
                       Moe_FloatTensor:$wk, Moe_FloatTensor:$wv,
                       Moe_FloatTensor:$wo, Moe_FloatTensor:$sel_o,
                       Moe_FloatTensor:$past_key, Moe_FloatTensor:$past_value,
                       Optional<Moe_FloatTensor>:$sel_v,
                       I64Attr:$num_heads, I64Attr:$k,
                       DefaultValuedAttr<BoolAttr, "true">:$causal,
                       DefaultValuedAttr<F64Attr, "0.5">:$rotate_fraction,
                       DefaultValuedAttr<F64Attr, "10000.0">:$rope_base);
  let results = (outs Moe_FloatTensor:$result, Moe_FloatTensor:$new_key,
                      Moe_FloatTensor:$new_value);
  let assemblyFormat = [{
    $q_src `,` $k_src `,` $v_src `,` $wq `,` $wk `,` $wv `,` $wo `,` $sel_o
    `past` `(` $past_key `,` $past_value `)`
    (`sel_v` `(` $sel_v^ `)`)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moe_MotOp : Moe_Op<"mot", Moe_PureShaped> {
  let summary = "Mixture-of-Tokens feed-forward layer";
  let description = [{
    Mixture of Tokens (models.md section 5) on `input` `[B, T, D]`: controller
    logits `input @ w_ctrl` (`[D, E]`), `moe.mot_mix` into one mixed token
    per expert and group, the per-expert FFN `act(z_e @ w1[e]) @ w2[e]`
    (`w1` `[E, D, s]`, `w2` `[E, s, D]`), and `moe.mot_unmix`.

    Constraints: C1 ranks (input and result 3, w_ctrl 2, w1 and w2 3); C2
    `group_size >= 1` divides `B`; C3 dims agree (`D`, `E`, `s`) and the
    result has the input's shape; C4 `temperature > 0` and finite; C5 one
    element type.

    Decomposes (`moe-decompose-mot`) into a matmul, `moe.mot_mix`, two
    expert-batched contractions and `moe.mot_unmix`.

    Example:
    ```mlir
    %y = moe.mot %x, %wc, %w1, %w2 mode<continuous> act<relu>
        {group_size = 4 : i64}
        : (tensor<8x?x32xf32>, tensor<32x6xf32>, tensor<6x32x16xf32>,
           tensor<6x16x32xf32>) -> tensor<8x?x32xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$input, Moe_FloatTensor:$w_ctrl,
                       Moe_FloatTensor:$w1, Moe_FloatTensor:$w2,
                       Moe_MixModeAttr:$mode, Moe_ActivationAttr:$activation,
                       I64Attr:$group_size,
                       DefaultValuedAttr<F64Attr, "1.0">:$temperature);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $w_ctrl `,` $w1 `,` $w2 `mode` `` $mode
    `act` `` $activation attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

#endif // MOE_OPS_TD

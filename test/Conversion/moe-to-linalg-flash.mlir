// RUN: moe-opt %s --convert-moe-to-linalg="flash-key-block=128" --split-input-file | FileCheck %s
// RUN: not moe-opt %s --convert-moe-to-linalg="flash-key-block=-1" --split-input-file 2>&1 | FileCheck %s --check-prefix=NEGATIVE
// RUN: moe-opt %s --convert-moe-to-linalg --split-input-file | FileCheck %s --check-prefix=OFF
// RUN: moe-opt %s --convert-moe-to-linalg="flash-key-block=128 skip-masked-key-blocks=false" --split-input-file | FileCheck %s --check-prefix=NOSKIP

// NEGATIVE: error: convert-moe-to-linalg: flash-key-block must be 0 (off) or positive, got -1

// Attention without a cache, flash-style: per (batch, head, block of 32
// query rows), scf.for loops over blocks of the keys the block sees,
// carrying the row maximum (from -inf), the sum of exponentials and the
// unnormalised output (from 0): full blocks of 128 keys, then the rest in
// static blocks of 64, 32 and 16 (each at most once), then what is left
// (< 16, dynamic). In each block the scores are scaled and masked with the
// causal shift minus the block's first key, the old maximum's rescale
// exp(m - max(m, block max)) is taken before the maximum is updated in
// place, the sum and the output are rescaled in place and the block's P·V
// accumulates into the output; one division after the loops (0 where no
// key was seen at all).
// CHECK:       #[[ROWS:.+]] = affine_map<(d0, d1) -> (32, d0 - d1)>
// CHECK:       #[[RESTMAP:.+]] = affine_map<(d0, d1) -> (128, d0 - d1)>
// CHECK-LABEL: func @attention
// CHECK:         %[[KT:.*]] = linalg.transpose
// CHECK:         scf.forall (%[[B:.*]], %[[H:.*]], %[[BLK:.*]]) in (1, 2, %{{.*}}) shared_outs(%[[OUT:.*]] = %{{.*}})
// CHECK:           %[[T0:.*]] = arith.muli %[[BLK]], %c32
// The block's rows as affine.min (32, T - t0): moe-lower-to-host-abi
// bounds the temporaries with it.
// CHECK:           affine.min #[[ROWS]](%{{.*}}, %[[T0]])
// CHECK:           %[[COLS:.*]] = arith.select
// CHECK:           %[[QB:.*]] = tensor.extract_slice %{{.*}}[%[[B]], %[[H]], %[[T0]], 0]
// CHECK:           %[[M0:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : tensor<?x1xf32>)
// CHECK:           %[[L0:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : tensor<?x1xf32>)
// CHECK:           %[[A0:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : tensor<?x4xf32>)
// CHECK:           arith.muli %{{.*}}, %c128
// CHECK:           %[[FULL:.*]] = arith.addi %c0, %{{.*}}
// CHECK:           %[[LOOP:.*]]:3 = scf.for %[[J0:.*]] = %c0 to %[[FULL]] step %c128 iter_args(%[[M:.*]] = %[[M0]], %[[L:.*]] = %[[L0]], %[[ACC:.*]] = %[[A0]])
// CHECK:             %[[KB:.*]] = tensor.extract_slice %[[KT]][%[[B]], %[[H]], 0, %[[J0]]] [1, 1, 8, 128]
// CHECK:             %[[VB:.*]] = tensor.extract_slice %{{.*}}[%[[B]], %[[H]], %[[J0]], 0] [1, 1, 128, 4]
// CHECK:             %[[S:.*]] = linalg.generic {{.*}} ins(%[[QB]], %[[KB]] : tensor<?x8xf32>, tensor<8x128xf32>)
// CHECK:             arith.subi %{{.*}}, %[[J0]] : index
// CHECK:             %[[MASKED:.*]] = linalg.generic {{.*}} ins(%[[S]] : tensor<?x128xf32>)
// CHECK:               arith.cmpi sle
// CHECK:             %[[BMAX:.*]] = linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]{{.*}} ins(%[[MASKED]] : tensor<?x128xf32>)
// CHECK:               arith.maximumf
// CHECK:             %[[CORR:.*]] = linalg.generic {{.*}} ins(%[[M]], %[[BMAX]] : tensor<?x1xf32>, tensor<?x1xf32>)
// CHECK:               math.exp
// CHECK:             %[[MNEW:.*]] = linalg.generic {{.*}} ins(%[[BMAX]] : tensor<?x1xf32>) outs(%[[M]] : tensor<?x1xf32>)
// CHECK:             %[[P:.*]] = linalg.generic {{.*}} ins(%[[MNEW]] : tensor<?x1xf32>) outs(%[[MASKED]] : tensor<?x128xf32>)
// CHECK:               math.exp
// CHECK:             %[[PSUM:.*]] = linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]{{.*}} ins(%[[P]] : tensor<?x128xf32>)
// CHECK:             %[[LNEW:.*]] = linalg.generic {{.*}} ins(%[[CORR]], %[[PSUM]] : tensor<?x1xf32>, tensor<?x1xf32>) outs(%[[L]] : tensor<?x1xf32>)
// CHECK:             %[[SCALED:.*]] = linalg.generic {{.*}} ins(%[[CORR]] : tensor<?x1xf32>) outs(%[[ACC]] : tensor<?x4xf32>)
// CHECK:             %[[ANEW:.*]] = linalg.generic {{.*}} ins(%[[P]], %[[VB]] : tensor<?x128xf32>, tensor<128x4xf32>) outs(%[[SCALED]] : tensor<?x4xf32>)
// CHECK:             scf.yield %[[MNEW]], %[[LNEW]], %[[ANEW]]
// CHECK:           %[[L64:.*]]:3 = scf.for %{{.*}} = %[[FULL]] to %{{.*}} step %c64 iter_args(%{{.*}} = %[[LOOP]]#0, %{{.*}} = %[[LOOP]]#1, %{{.*}} = %[[LOOP]]#2)
// CHECK:             tensor.extract_slice %[[KT]]{{.*}} [1, 1, 8, 64]
// CHECK:           %[[L32:.*]]:3 = scf.for {{.*}} step %c32{{.*}} iter_args(%{{.*}} = %[[L64]]#0, %{{.*}} = %[[L64]]#1, %{{.*}} = %[[L64]]#2)
// CHECK:             tensor.extract_slice %[[KT]]{{.*}} [1, 1, 8, 32]
// CHECK:           %[[L16:.*]]:3 = scf.for {{.*}} step %c16 iter_args(%{{.*}} = %[[L32]]#0, %{{.*}} = %[[L32]]#1, %{{.*}} = %[[L32]]#2)
// CHECK:             tensor.extract_slice %[[KT]]{{.*}} [1, 1, 8, 16]
// CHECK:           %[[REST:.*]]:3 = scf.for %[[JR:.*]] = %{{.*}} to %[[COLS]] step %c128{{.*}} iter_args(%{{.*}} = %[[L16]]#0, %{{.*}} = %[[L16]]#1, %{{.*}} = %[[L16]]#2)
// CHECK:             %[[BK:.*]] = affine.min #[[RESTMAP]](%[[COLS]], %[[JR]])
// CHECK:             tensor.extract_slice %[[KT]][%[[B]], %[[H]], 0, %[[JR]]] [1, 1, 8, %[[BK]]]
// CHECK:           %[[O:.*]] = linalg.generic {{.*}} ins(%[[REST]]#1 : tensor<?x1xf32>) outs(%[[REST]]#2 : tensor<?x4xf32>)
// CHECK:             arith.cmpf oeq
// CHECK:             arith.divf
// CHECK:             arith.select
// CHECK:           tensor.parallel_insert_slice %[[O]] into %[[OUT]][%[[B]], %[[H]], %[[T0]], 0]
// CHECK-NOT:     moe.attention
// OFF-LABEL: func @attention
// OFF-NOT:       iter_args
// OFF:           arith.divf
func.func @attention(%q: tensor<1x2x?x8xf32>, %k: tensor<1x2x?x8xf32>, %v: tensor<1x2x?x4xf32>) -> tensor<1x2x?x4xf32> {
  %o = moe.attention %q, %k, %v {causal} : (tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x4xf32>) -> tensor<1x2x?x4xf32>
  return %o : tensor<1x2x?x4xf32>
}

// -----

// An empty cache (@prefill's) takes the flash form too; a cache of
// positions keeps the reference's form (two score blocks side by side).
// CHECK-LABEL: func @attention_caches
// CHECK:         scf.for {{.*}} iter_args
// CHECK:         tensor.insert_slice
// CHECK-NOT:     moe.attention
func.func @attention_caches(%q: tensor<1x2x?x8xf32>, %e: tensor<1x2x0x8xf32>, %pk: tensor<1x2x?x8xf32>, %pv: tensor<1x2x?x8xf32>) -> (tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>) {
  %a = moe.attention %q, %q, %q past(%e, %e) {causal} : (tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>, tensor<1x2x0x8xf32>, tensor<1x2x0x8xf32>) -> tensor<1x2x?x8xf32>
  %b = moe.attention %q, %q, %q past(%pk, %pv) {causal} : (tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>) -> tensor<1x2x?x8xf32>
  return %a, %b : tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>
}

// -----

// An additive mask ([1, 1, T, S]: dims 0 and 1 broadcast): checked at run
// time to be [., ., T, S]; each key block's scores get the mask's block
// (rows of the query block, columns of the key block) added after the
// scale, before the block maximum. Without flash, the blocked form adds
// the block of all keys the query block sees. Before a key block is
// computed, its mask block's maximum and the rows' running maxima decide
// whether it can be left out: all of the mask at most -1e30 and every
// row's maximum at least -1e20 yield m, l and acc unchanged.
// CHECK-LABEL: func @attention_mask
// CHECK-SAME:    (%{{.*}}: tensor<1x2x?x8xf32>, %{{.*}}: tensor<1x2x?x8xf32>, %{{.*}}: tensor<1x2x?x4xf32>, %[[M:.*]]: tensor<1x1x?x?xf32>)
// CHECK:         scf.forall (%[[B:.*]], %[[H:.*]], %[[BLK:.*]]) in
// CHECK:           scf.for %[[J:.*]] = {{.*}} iter_args(%[[RM:.*]] = %{{.*}}, %[[RL:.*]] = %{{.*}}, %[[RACC:.*]] = %{{.*}})
// CHECK:             %[[MS:.*]] = tensor.extract_slice %{{.*}}[0, 0, %{{.*}}, %[[J]]] [1, 1, %{{.*}}, 128] [1, 1, 1, 1] : tensor<1x1x?x?xf32> to tensor<?x128xf32>
// CHECK:             %[[ROWMAX:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]} ins(%[[MS]] : tensor<?x128xf32>)
// CHECK:               arith.maximumf
// CHECK:             %[[MAXT:.*]] = linalg.generic {{.*}} iterator_types = ["reduction", "reduction"]} ins(%[[ROWMAX]] : tensor<?x1xf32>) outs(%{{.*}} : tensor<f32>)
// CHECK:               arith.maximumf
// CHECK:             %[[MAX:.*]] = tensor.extract %[[MAXT]][]
// CHECK:             %[[MINT:.*]] = linalg.generic {{.*}} iterator_types = ["reduction", "reduction"]} ins(%[[RM]] : tensor<?x1xf32>) outs(%{{.*}} : tensor<f32>)
// CHECK:               arith.minimumf
// CHECK:             %[[MIN:.*]] = tensor.extract %[[MINT]][]
// CHECK:             %[[ALLMASKED:.*]] = arith.cmpf ole, %[[MAX]], %{{.*}} : f32
// CHECK:             %[[ALLSEEN:.*]] = arith.cmpf oge, %[[MIN]], %{{.*}} : f32
// CHECK:             %[[SKIP:.*]] = arith.andi %[[ALLMASKED]], %[[ALLSEEN]]
// CHECK:             %[[NEXT:.*]]:3 = scf.if %[[SKIP]]
// CHECK-NEXT:          scf.yield %[[RM]], %[[RL]], %[[RACC]]
// CHECK-NEXT:        } else {
// CHECK:               %[[MB:.*]] = tensor.extract_slice %{{.*}}[0, 0, %{{.*}}, %[[J]]] [1, 1, %{{.*}}, 128] [1, 1, 1, 1] : tensor<1x1x?x?xf32> to tensor<?x128xf32>
// CHECK:               linalg.generic {{.*}} ins(%{{.*}}, %[[MB]] : tensor<?x128xf32>, tensor<?x128xf32>)
// CHECK-NEXT:          ^bb0
// CHECK-NEXT:            arith.addf
// CHECK:               arith.maximumf
// CHECK:             scf.yield %[[NEXT]]#0, %[[NEXT]]#1, %[[NEXT]]#2
// NOSKIP-LABEL: func @attention_mask
// NOSKIP-NOT:    arith.minimumf
// NOSKIP:        return
// OFF-LABEL: func @attention_mask
// OFF:           tensor.extract_slice %{{.*}}[0, 0, %{{.*}}, 0] [1, 1, %{{.*}}, %{{.*}}] [1, 1, 1, 1] : tensor<1x1x?x?xf32> to tensor<?x?xf32>
// OFF:           arith.addf
func.func @attention_mask(%q: tensor<1x2x?x8xf32>, %k: tensor<1x2x?x8xf32>, %v: tensor<1x2x?x4xf32>, %m: tensor<1x1x?x?xf32>) -> tensor<1x2x?x4xf32> {
  %o = moe.attention %q, %k, %v mask(%m) {scale = 1.0 : f64} : (tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x4xf32>, tensor<1x1x?x?xf32>) -> tensor<1x2x?x4xf32>
  return %o : tensor<1x2x?x4xf32>
}

// -----

// A padding mask [B, 1, 1, S] (static 1s in H and T): each key block reads
// one row of it, [1, 128], added to every row of the block's scores.
// CHECK:       #[[ROW0:.+]] = affine_map<(d0, d1) -> (0, d1)>
// CHECK-LABEL: func @attention_padding_mask
// CHECK:           scf.for %[[J:.*]] = {{.*}} iter_args(
// CHECK:             tensor.extract_slice %{{.*}}[%{{.*}}, 0, 0, %[[J]]] [1, 1, 1, 128] [1, 1, 1, 1] : tensor<2x1x1x?xf32> to tensor<1x128xf32>
// CHECK:             scf.if
// CHECK:               %[[MB:.*]] = tensor.extract_slice %{{.*}}[%{{.*}}, 0, 0, %[[J]]] [1, 1, 1, 128] [1, 1, 1, 1] : tensor<2x1x1x?xf32> to tensor<1x128xf32>
// CHECK:               linalg.generic {indexing_maps = [#{{.*}}, #[[ROW0]], #{{.*}}], {{.*}} ins(%{{.*}}, %[[MB]] : tensor<?x128xf32>, tensor<1x128xf32>)
// CHECK-NEXT:          ^bb0
// CHECK-NEXT:            arith.addf
// OFF-LABEL: func @attention_padding_mask
// OFF:           tensor.extract_slice %{{.*}}[%{{.*}}, 0, 0, 0] [1, 1, 1, %{{.*}}] [1, 1, 1, 1] : tensor<2x1x1x?xf32> to tensor<1x?xf32>
// OFF:           arith.addf
func.func @attention_padding_mask(%q: tensor<2x2x?x8xf32>, %k: tensor<2x2x?x8xf32>, %v: tensor<2x2x?x4xf32>, %m: tensor<2x1x1x?xf32>) -> tensor<2x2x?x4xf32> {
  %o = moe.attention %q, %k, %v mask(%m) {scale = 1.0 : f64} : (tensor<2x2x?x8xf32>, tensor<2x2x?x8xf32>, tensor<2x2x?x4xf32>, tensor<2x1x1x?xf32>) -> tensor<2x2x?x4xf32>
  return %o : tensor<2x2x?x4xf32>
}

// -----

// A mask whose B and H are dynamic: checked once to be 1 or q's (no copy
// across heads), and each block reads it at index 0 where it is 1 at run
// time, else at the block's (batch, head).
// CHECK-LABEL: func @attention_dynamic_mask_heads
// CHECK-SAME:    %[[M:[^:]*]]: tensor<?x?x?x?xf32>)
// CHECK:         %[[MB:.*]] = tensor.dim %[[M]], %c0
// CHECK-NEXT:    %{{.*}} = arith.constant 1 : index
// CHECK-NEXT:    %[[EQB:.*]] = arith.cmpi eq, %[[MB]], %{{.*}}
// CHECK-NEXT:    %[[ONEB:.*]] = arith.cmpi eq, %[[MB]], %{{.*}}
// CHECK-NEXT:    arith.ori %[[EQB]], %[[ONEB]] : i1
// CHECK:         arith.ori %{{.*}}, %{{.*}} : i1
// The only copies left are those of a T or S that is 1 at run time.
// CHECK-COUNT-2: linalg.yield %in : f32
// CHECK-NOT:     linalg.yield %in : f32
// CHECK:         scf.forall (%[[B:.*]], %[[H:.*]], %{{.*}}) in
// CHECK:           scf.for %[[J:.*]] = {{.*}} iter_args(
// CHECK:             %[[BI:.*]] = arith.select %{{.*}}, %c0{{.*}}, %[[B]] : index
// CHECK:             %[[HI:.*]] = arith.select %{{.*}}, %c0{{.*}}, %[[H]] : index
// CHECK:             tensor.extract_slice %{{.*}}[%[[BI]], %[[HI]], %{{.*}}, %[[J]]] [1, 1, %{{.*}}, 128] [1, 1, 1, 1] : tensor<?x?x?x?xf32> to tensor<?x128xf32>
func.func @attention_dynamic_mask_heads(%q: tensor<?x2x?x8xf32>, %k: tensor<?x2x?x8xf32>, %v: tensor<?x2x?x4xf32>, %m: tensor<?x?x?x?xf32>) -> tensor<?x2x?x4xf32> {
  %o = moe.attention %q, %k, %v mask(%m) {scale = 1.0 : f64} : (tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x4xf32>, tensor<?x?x?x?xf32>) -> tensor<?x2x?x4xf32>
  return %o : tensor<?x2x?x4xf32>
}

// -----

// sinks: the head's sink logit starts the running maximum, and exp(sink -
// sink) the sum (before the key loops); the reference form (OFF) takes the
// maximum of each row with the sink and adds exp(sink - max) to the sum.
// CHECK-LABEL: func @attention_sinks
// CHECK:         scf.forall (%{{.*}}, %[[SH:.*]], %{{.*}}) in
// CHECK:           %[[SINK:.*]] = tensor.extract %{{.*}}[%[[SH]]] : tensor<2xf32>
// CHECK:           %[[SM0:.*]] = linalg.fill ins(%[[SINK]] : f32) outs(%{{.*}} : tensor<?x1xf32>)
// CHECK:           math.exp
// CHECK:           %[[SL0:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : tensor<?x1xf32>)
// CHECK:           scf.for {{.*}} iter_args(%{{.*}} = %[[SM0]], %{{.*}} = %[[SL0]],
// OFF-LABEL: func @attention_sinks
// OFF:           %[[OSINK:.*]] = tensor.extract %{{.*}} : tensor<2xf32>
// OFF:           linalg.generic
// OFF:             arith.maximumf %{{.*}}, %[[OSINK]] : f32
// OFF:           linalg.generic
// OFF:             arith.subf %[[OSINK]], %{{.*}} : f32
// OFF-NEXT:        math.exp
// OFF-NEXT:        arith.addf
func.func @attention_sinks(%q: tensor<1x2x?x8xf32>, %k: tensor<1x2x?x8xf32>, %v: tensor<1x2x?x4xf32>, %m: tensor<1x1x?x?xf32>, %s: tensor<2xf32>) -> tensor<1x2x?x4xf32> {
  %o = moe.attention %q, %k, %v mask(%m) sinks(%s) {scale = 1.0 : f64} : (tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x4xf32>, tensor<1x1x?x?xf32>, tensor<2xf32>) -> tensor<1x2x?x4xf32>
  return %o : tensor<1x2x?x4xf32>
}

// -----

// zero_nan_probs: after the loops, a row whose sum of exponentials is 0 or
// NaN (cmpf ule: unordered or <= 0) is 0, not NaN. The reference form
// (OFF) replaces each NaN probability by 0 before P·V.
// CHECK-LABEL: func @attention_zero_nan_probs
// CHECK:         scf.forall
// CHECK:           linalg.generic {{.*}} ins(%{{.*}}#1 : tensor<?x1xf32>) outs(%{{.*}}#2 : tensor<?x4xf32>)
// CHECK:             arith.cmpf ule
// CHECK:             arith.divf
// CHECK:             arith.select
// OFF-LABEL: func @attention_zero_nan_probs
// OFF:           arith.divf
// OFF:           linalg.generic
// OFF-NEXT:      ^bb0(%[[P:.*]]: f32, %{{.*}}: f32):
// OFF-NEXT:        %[[NAN:.*]] = arith.cmpf uno, %[[P]], %[[P]] : f32
// OFF:             %[[Z:.*]] = arith.select %[[NAN]], %{{.*}}, %[[P]] : f32
// OFF-NEXT:        linalg.yield %[[Z]] : f32
func.func @attention_zero_nan_probs(%q: tensor<1x2x?x8xf32>, %k: tensor<1x2x?x8xf32>, %v: tensor<1x2x?x4xf32>, %m: tensor<1x1x?x?xf32>) -> tensor<1x2x?x4xf32> {
  %o = moe.attention %q, %k, %v mask(%m) {scale = 1.0 : f64, zero_nan_probs} : (tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x4xf32>, tensor<1x1x?x?xf32>) -> tensor<1x2x?x4xf32>
  return %o : tensor<1x2x?x4xf32>
}

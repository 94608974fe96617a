"""Inputs for grouped-matmul-bad-routing.mlir (and -bad-shapes,
-bad-slot-weights): x [2, 5], w [3, 5, 3], good offsets/permutation (4
slots, 2 per row, experts with 1, 0 and 3 slots) and the numpy result, plus
bad permutations, offsets, shapes and slot weights."""
import os
import sys

import numpy as np

out = sys.argv[1]
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 5)).astype(np.float32)
w = rng.standard_normal((3, 5, 3)).astype(np.float32)
off = np.array([0, 1, 1, 4], np.int32)
perm = np.array([2, 0, 3, 1], np.int32)
# Sorted position i is in the segment of expert e; slot perm[i] reads row
# perm[i] // 2 (M = 4 slots, R = 2 rows).
expected = np.zeros((4, 3), np.float32)
for e in range(3):
    for i in range(off[e], off[e + 1]):
        expected[perm[i]] = x[perm[i] // 2] @ w[e]
arrays = dict(x=x, w=w, off=off, perm=perm, expected=expected,
              perm_big=np.array([2, 0, 4, 1], np.int32),
              perm_neg=np.array([2, -1, 3, 1], np.int32),
              off_big=np.array([0, 1, 1, 5], np.int32),
              off_down=np.array([0, 3, 1, 4], np.int32),
              # a slot named twice (and one never); segments that leave
              # slots out
              perm_dup=np.array([2, 0, 3, 3], np.int32),
              off_short=np.array([0, 1, 1, 3], np.int32),
              off_late=np.array([1, 1, 1, 4], np.int32),
              # dynamic shapes: offsets of E elements, rows of 4 instead of
              # 5, 3 rows for 4 slots
              off_e=np.array([0, 1, 4], np.int32),
              x_narrow=rng.standard_normal((2, 4)).astype(np.float32),
              x_three=rng.standard_normal((3, 5)).astype(np.float32))
# Slot weights [2, 2] and the weighted reduction into token order
# (grouped-matmul-bad-slot-weights.mlir); [3, 2] names 6 slots of 4.
sw = rng.standard_normal((2, 2)).astype(np.float32)
arrays["sw"] = sw
arrays["reduced"] = (sw[:, :, None] * expected.reshape(2, 2, 3)).sum(1)
arrays["sw_three"] = rng.standard_normal((3, 2)).astype(np.float32)
# An epilogue bias [3, 3] and relu (grouped-matmul-bad-bias.mlir), and
# biases of 2 rows and of 4 columns.
bias = rng.standard_normal((3, 3)).astype(np.float32)
biased = np.zeros((4, 3), np.float32)
for e in range(3):
    for i in range(off[e], off[e + 1]):
        biased[perm[i]] = np.maximum(x[perm[i] // 2] @ w[e] + bias[e], 0)
arrays["bias"] = bias
arrays["biased"] = biased
arrays["bias_rows"] = rng.standard_normal((2, 3)).astype(np.float32)
arrays["bias_cols"] = rng.standard_normal((3, 4)).astype(np.float32)
for name, value in arrays.items():
    np.save(os.path.join(out, name + ".npy"), value)

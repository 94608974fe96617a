#!/usr/bin/env python3
"""Compares a .npy file written by moe-run with an expected one: the same
shape and dtype; integers exactly, floats within |got - want| <= 1e-5 +
1e-4 |want| (docs/tolerance.md).

usage: compare_npy.py GOT WANT
"""
import sys

import numpy as np

got, want = np.load(sys.argv[1]), np.load(sys.argv[2])
if got.shape != want.shape or got.dtype != want.dtype:
    sys.exit(f"FAIL {sys.argv[1]}: {got.dtype}{list(got.shape)}, expected "
             f"{want.dtype}{list(want.shape)}")
if got.dtype.kind in "iub":
    ok = np.array_equal(got, want)
else:
    ok = np.all(np.abs(got - want) <= 1e-5 + 1e-4 * np.abs(want))
if not ok:
    sys.exit(f"FAIL {sys.argv[1]}: differs from {sys.argv[2]}:\n{got}\n{want}")
print(f"OK {sys.argv[1]} equals {sys.argv[2]}")

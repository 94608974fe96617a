#!/usr/bin/env python3
"""Writes the bad inputs and damaged artifacts of moe-run-errors.test.

usage: make_bad_inputs.py FIXTURES_DIR OUT_DIR (OUT_DIR holds m.moeb)
"""
import os
import struct
import sys

import numpy as np

fixtures, out = sys.argv[1:3]
tokens = np.load(os.path.join(fixtures, "moeut_tiny.tokens.npy"))
np.save(os.path.join(out, "float_tokens.npy"), tokens.astype(np.float32))
np.save(os.path.join(out, "flat_tokens.npy"), tokens.reshape(-1))
oov = tokens.copy()
oov[1, 3] = 999
np.save(os.path.join(out, "oov_tokens.npy"), oov)
np.save(os.path.join(out, "negative_tokens.npy"), -tokens - 1)
good = open(os.path.join(fixtures, "moeut_tiny.tokens.npy"), "rb").read()
open(os.path.join(out, "broken.npy"), "wb").write(good[:-5])

artifact = open(os.path.join(out, "m.moeb"), "rb").read()
open(os.path.join(out, "truncated.moeb"), "wb").write(artifact[:len(artifact) // 2])
flipped = bytearray(artifact)
flipped[-10] ^= 0x55  # inside the last section (the weights)
open(os.path.join(out, "flipped.moeb"), "wb").write(bytes(flipped))
version = bytearray(artifact)
version[8:12] = struct.pack("<I", 2)
open(os.path.join(out, "version.moeb"), "wb").write(bytes(version))

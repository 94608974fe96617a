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
# Strict .npy headers: a negative dim (once read as 1 row), trailing bytes,
# big-endian data; a shape whose symbolic dim is above the runtime's cap.
header = b"{'descr': '<i8', 'fortran_order': False, 'shape': (-1, 24), }"
header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
open(os.path.join(out, "negative_dim.npy"), "wb").write(
    b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header +
    tokens.tobytes())
open(os.path.join(out, "trailing.npy"), "wb").write(good + bytes(8))
np.save(os.path.join(out, "big_endian.npy"), tokens.astype(">i8"))
np.save(os.path.join(out, "huge_tokens.npy"), np.zeros((2**30, 0), np.int64))

artifact = open(os.path.join(out, "m.moeb"), "rb").read()
open(os.path.join(out, "truncated.moeb"), "wb").write(artifact[:len(artifact) // 2])
flipped = bytearray(artifact)
flipped[-10] ^= 0x55  # inside the last section (the weights)
open(os.path.join(out, "flipped.moeb"), "wb").write(bytes(flipped))
version = bytearray(artifact)
version[8:12] = struct.pack("<I", 4)
open(os.path.join(out, "version.moeb"), "wb").write(bytes(version))
# A format 1 artifact (before the code ABI of runtime/include/moe/code_abi.h).
version[8:12] = struct.pack("<I", 1)
open(os.path.join(out, "version1.moeb"), "wb").write(bytes(version))


# The artifact checksums (FNV-1a for the header, format 3's SectionHash for
# sections), as the fuzz corpus writer computes them independently of the
# C++ writer.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "fuzz"))
from make_corpus import fnv1a, section_hash  # noqa: E402


# The signature edited after compilation (logits f32 -> f64, same length),
# every checksum recomputed as a careful forger would: the code's digest
# still tells.
edited = bytearray(artifact)
count = struct.unpack_from("<I", edited, 12)[0]
for i in range(count):
    kind, _, offset, size, _ = struct.unpack_from("<IIQQQ", edited, 32 + 32 * i)
    if kind == 1:
        section = bytes(edited[offset:offset + size])
        assert b"output logits f32 " in section
        section = section.replace(b"output logits f32 ", b"output logits f64 ")
        edited[offset:offset + size] = section
        struct.pack_into("<Q", edited, 32 + 32 * i + 24,
                         section_hash(section))
struct.pack_into("<Q", edited, 24, 0)
struct.pack_into("<Q", edited, 24, fnv1a(bytes(edited[:32 + 32 * count])))
open(os.path.join(out, "edited_signature.moeb"), "wb").write(bytes(edited))

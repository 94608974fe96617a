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


M64 = 0xFFFFFFFFFFFFFFFF


def fnv1a(data, h=0xcbf29ce484222325):
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & M64
    return h


def section_hash(data):
    """Format 3's section checksum (artifact_format.h, SectionHash),
    written again here from its description."""
    p1, p2, p3 = 0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9

    def rotl(v, r):
        return ((v << r) | (v >> (64 - r))) & M64
    lanes = [p1, p2, p3, p1 ^ p2]
    whole = len(data) // 32 * 32
    for at in range(0, whole, 32):
        for i in range(4):
            word = struct.unpack_from("<Q", data, at + 8 * i)[0]
            lanes[i] = rotl(lanes[i] ^ (word * p1 & M64), 31) * p2 & M64
    h = len(data) * p3 & M64
    for lane in lanes:
        h = rotl((h ^ lane) * p2 & M64, 27)
    h = fnv1a(data[whole:], h)
    h ^= h >> 33
    h = h * p1 & M64
    return h ^ (h >> 29)


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

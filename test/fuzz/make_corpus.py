#!/usr/bin/env python3
"""Writes the seed corpora of the runtime fuzzers (scripts/fuzz.sh).

usage: make_corpus.py [OUT_DIR]   (default: the corpus/ folder beside this
script; writes OUT_DIR/artifact/* and OUT_DIR/npy/*)

A writer of the .moeb layout independent of the C++ one
(runtime/include/moe/artifact_format.h): header, section table, FNV-1a 64
checksums (format 3's SectionHash, and format 2's FNV-1a for the seed that
format 3 readers still accept), 64-byte aligned sections, format 2
signatures. Seeds are small
valid artifacts and near-valid ones (each refused for one reason), and .npy
files NumPy writes plus near-valid ones. Only the standard library is used.
"""
import os
import struct
import sys

MAGIC = b"MOEBART\n"
SIGNATURE, CPU_CODE, WEIGHTS, CUDA_CODE = 1, 2, 3, 16


M64 = 0xFFFFFFFFFFFFFFFF


def fnv1a(data, h=0xcbf29ce484222325):
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & M64
    return h


def section_hash(data):
    """Format 3's section checksum (SectionHash): four lanes over 32-byte
    blocks, the tail through FNV-1a, the whole folded and mixed."""
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


def artifact(sections, version=3):
    """The bytes of an artifact holding [(kind, bytes)] in order (section
    checksums of format 3 from version 3 on, byte-wise FNV-1a before)."""
    offset = 32 + 32 * len(sections)
    table, body = [], b""
    for kind, data in sections:
        offset = (offset + 63) // 64 * 64
        checksum = section_hash(data) if version >= 3 else fnv1a(data)
        table.append((kind, 0, offset, len(data), checksum))
        offset += len(data)
    table_bytes = b"".join(struct.pack("<IIQQQ", *e) for e in table)
    header = MAGIC + struct.pack("<IIQQ", version, len(sections), offset, 0)
    checksum = fnv1a(table_bytes, fnv1a(header))
    out = bytearray(offset)
    out[:32] = MAGIC + struct.pack("<IIQQ", version, len(sections), offset,
                                   checksum)
    out[32:32 + len(table_bytes)] = table_bytes
    for (kind, _, off, size, _), (_, data) in zip(table, sections):
        out[off:off + size] = data
    return bytes(out)


def npy(header_dict, data, version=(1, 0), pad=True):
    """A .npy file with the header text `header_dict` and raw `data`."""
    header = header_dict.encode()
    prefix = 10 if version[0] == 1 else 12
    if pad:
        header += b" " * ((64 - (prefix + len(header) + 1) % 64) % 64) + b"\n"
    length = (struct.pack("<H", len(header)) if version[0] == 1
              else struct.pack("<I", len(header)))
    return b"\x93NUMPY" + bytes(version) + length + header + data


def dict_text(descr, shape, fortran="False"):
    return ("{'descr': '%s', 'fortran_order': %s, 'shape': %s, }"
            % (descr, fortran, shape))


# A stand-in for the code section: the parser never loads it.
CODE = b"\x7fELF\x02\x01\x01" + bytes(57)
HEAD = b"moe-signature 2\ndevice cpu x86-64\n"
SIG = (b"moe-signature 2\n"
       b"device cpu x86-64 sse4.2 avx avx2\n"
       b"weight 0 64 row-major f32 2 4 4\n"
       b"weight 64 32 row-major f16 1 16\n"
       b"entry main moe_entry_main 4096 grows\n"
       b"input tokens i64 2 ?B ?T\n"
       b"input mask%20x bool 2 ?B ?\n"
       b"output logits f32 3 ?B ?T 50\n"
       b"end\n")
WEIGHTS_BYTES = bytes(range(96))


def artifact_seeds():
    good = artifact([(SIGNATURE, SIG), (CPU_CODE, CODE),
                     (WEIGHTS, WEIGHTS_BYTES)])
    flipped = bytearray(good)
    flipped[-5] ^= 0x40
    return {
        "valid.moeb": good,
        "minimal.moeb": artifact([(SIGNATURE, HEAD + b"entry main e 0 exact\n"
                                               b"end\n"),
                                  (CPU_CODE, CODE)]),
        "scalars.moeb": artifact([
            (SIGNATURE, HEAD + b"entry main f 0 exact\ninput a f64 0\n"
                        b"input b u8 1 7\noutput a f64 0\n"
                        b"output c u64 2 ? 0\nend\n"),
            (CPU_CODE, CODE)]),
        "entries.moeb": artifact([
            (SIGNATURE, HEAD + b"weight 0 64 row-major f32 1 16\n"
                        b"state kv%20cache f16 3 ?B 4 8\n"
                        b"entry prefill moe_entry_prefill 1024 grows\n"
                        b"input tokens i64 2 ?B ?T\noutput logits f32 2 ?B 50\n"
                        b"end\n"
                        b"entry decode moe_entry_decode 256 exact\n"
                        b"input token i64 1 ?B\noutput logits f32 2 ?B 50\n"
                        b"end\n"
                        b"entry main moe_entry_main 0 exact\nend\n"),
            (CPU_CODE, CODE), (WEIGHTS, WEIGHTS_BYTES)]),
        "device_sections.moeb": artifact([
            (SIGNATURE, SIG), (CUDA_CODE, b"ptx"), (CPU_CODE, CODE),
            (99, b"future"), (WEIGHTS, WEIGHTS_BYTES)]),
        "zero_sections.moeb": artifact([]),
        "version1.moeb": artifact([(SIGNATURE, b"entry moe_entry\n"),
                                   (CPU_CODE, CODE)], version=1),
        "version4.moeb": artifact([(SIGNATURE, SIG)], version=4),
        "version2.moeb": artifact([(SIGNATURE, SIG), (CPU_CODE, CODE),
                                   (WEIGHTS, WEIGHTS_BYTES)], version=2),
        "no_code.moeb": artifact([(SIGNATURE, SIG), (WEIGHTS, WEIGHTS_BYTES)]),
        "flipped.moeb": bytes(flipped),
        "truncated.moeb": good[:len(good) - 40],
        "duplicate_input.moeb": artifact([
            (SIGNATURE, HEAD + b"entry main e 0 exact\ninput x f32 1 4\n"
                        b"input x f32 1 4\nend\n"),
            (CPU_CODE, CODE)]),
        "duplicate_entry.moeb": artifact([
            (SIGNATURE, HEAD + b"entry main e 0 exact\nend\n"
                        b"entry main f 0 exact\nend\n"),
            (CPU_CODE, CODE)]),
        "missing_end.moeb": artifact([
            (SIGNATURE, HEAD + b"entry main e 0 exact\ninput x f32 1 4\n"),
            (CPU_CODE, CODE)]),
        "bad_order.moeb": artifact([
            (SIGNATURE, HEAD + b"entry main e 0 exact\nend\n"
                        b"weight 0 64 row-major f32 1 16\n"),
            (CPU_CODE, CODE), (WEIGHTS, WEIGHTS_BYTES)]),
        "two_devices.moeb": artifact([
            (SIGNATURE, HEAD + b"device cpu x86-64\nentry main e 0 exact\n"
                        b"end\n"),
            (CPU_CODE, CODE)]),
        "unknown_layout.moeb": artifact([
            (SIGNATURE, HEAD + b"weight 0 64 column-major f32 1 16\n"
                        b"entry main e 0 exact\nend\n"),
            (CPU_CODE, CODE), (WEIGHTS, WEIGHTS_BYTES)]),
        "bad_symbol.moeb": artifact([
            (SIGNATURE, HEAD + b"entry main 9e 0 exact\nend\n"),
            (CPU_CODE, CODE)]),
        "overlapping_weights.moeb": artifact([
            (SIGNATURE, HEAD + b"weight 0 64 row-major f32 1 16\n"
                        b"weight 0 64 row-major f32 1 16\n"
                        b"entry main e 0 exact\nend\n"),
            (CPU_CODE, CODE), (WEIGHTS, WEIGHTS_BYTES)]),
        "weight_outside.moeb": artifact([
            (SIGNATURE, HEAD + b"weight 64 64 row-major f32 1 16\n"
                        b"entry main e 0 exact\nend\n"),
            (CPU_CODE, CODE), (WEIGHTS, WEIGHTS_BYTES)]),
        "unknown_feature.moeb": artifact([
            (SIGNATURE, b"moe-signature 2\ndevice cpu x86-64 avx9000\n"
                        b"entry main e 0 exact\nend\n"),
            (CPU_CODE, CODE)]),
        "bad_name.moeb": artifact([
            (SIGNATURE, HEAD + b"entry main e 0 exact\ninput x%G1 f32 1 4\n"
                        b"end\n"),
            (CPU_CODE, CODE)]),
    }


def npy_seeds():
    f32 = struct.pack("<6f", 1, 2, 3, 4, 5, 6)
    return {
        "f32_2x3.npy": npy(dict_text("<f4", "(2, 3)"), f32),
        "i64_3.npy": npy(dict_text("<i8", "(3,)"),
                         struct.pack("<3q", 1, -2, 3)),
        "u1_scalar.npy": npy(dict_text("|u1", "()"), b"\x07"),
        "b1_empty.npy": npy(dict_text("|b1", "(0, 5)"), b""),
        "f2_v2.npy": npy(dict_text("<f2", "(2,)"), b"\x00\x3c\x00\x40",
                         version=(2, 0)),
        "u4_v3.npy": npy(dict_text("<u4", "(1,)"), b"\x01\x00\x00\x00",
                         version=(3, 0)),
        "reordered.npy": npy("{\"shape\": (2,), \"descr\": \"<i4\", "
                             "\"fortran_order\": False}",
                             struct.pack("<2i", 1, 2)),
        "negative_dim.npy": npy(dict_text("<f4", "(-1, 24)"), f32),
        "hex_dim.npy": npy(dict_text("<f4", "(0x2,)"), f32[:8]),
        "big_endian.npy": npy(dict_text(">f4", "(2,)"), f32[:8]),
        "fortran.npy": npy(dict_text("<f4", "(2, 3)", "True"), f32),
        "trailing.npy": npy(dict_text("<f4", "(2,)"), f32),
        "truncated.npy": npy(dict_text("<f4", "(2, 3)"), f32[:20]),
        "huge_shape.npy": npy(dict_text("<f4", "(4294967296, 4294967296)"),
                              b""),
        "unpadded.npy": npy(dict_text("<f4", "(1,)"), f32[:4], pad=False),
    }


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus")
    for sub, seeds in (("artifact", artifact_seeds()), ("npy", npy_seeds())):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(out, sub, name), "wb") as f:
                f.write(data)
    print(f"wrote {len(artifact_seeds())} artifact and {len(npy_seeds())} "
          f"npy seeds under {out}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Compiles ONNX fixtures with moe-import + moe-opt --moe-lower-to-llvm,
runs the code, and compares the outputs with the expected .npy files
(computed by ONNX Runtime). The reference lowering's end-to-end check until
moe-compile and the runtime exist.

usage: run_fixture.py --bin BUILD/bin --fixtures DIR [NAME ...]
Prints one line per fixture and exits 1 if any differs beyond
|got - expected| <= 1e-5 + 1e-4 |expected| (docs/tolerance.md).
"""
import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx

ATOL, RTOL = 1e-5, 1e-4
CTYPES = {np.float32: ctypes.c_float, np.int64: ctypes.c_int64,
          np.int32: ctypes.c_int32}
ONNX_DTYPES = {onnx.TensorProto.FLOAT: np.float32,
               onnx.TensorProto.INT64: np.int64}


def descriptor_type(dtype, rank):
    ptr = ctypes.POINTER(CTYPES[dtype])
    fields = [("allocated", ptr), ("aligned", ptr), ("offset", ctypes.c_int64)]
    if rank:
        fields += [("sizes", ctypes.c_int64 * rank),
                   ("strides", ctypes.c_int64 * rank)]
    return type(f"MemRef{rank}", (ctypes.Structure,), {"_fields_": fields})


def to_descriptor(array):
    array = np.ascontiguousarray(array)
    desc = descriptor_type(array.dtype.type, array.ndim)()
    ptr = array.ctypes.data_as(ctypes.POINTER(CTYPES[array.dtype.type]))
    desc.allocated = desc.aligned = ptr
    desc.offset = 0
    for i, (size, stride) in enumerate(zip(array.shape, array.strides)):
        desc.sizes[i] = size
        desc.strides[i] = stride // array.itemsize
    return desc, array


def from_descriptor(desc, dtype, rank):
    shape = tuple(desc.sizes[i] for i in range(rank)) if rank else ()
    strides = tuple(desc.strides[i] for i in range(rank)) if rank else ()
    count = int(np.prod(shape)) if rank else 1
    out = np.empty(shape, dtype)
    if count:
        base = ctypes.cast(desc.aligned, ctypes.c_void_p).value
        item = np.dtype(dtype).itemsize
        flat = np.ctypeslib.as_array(
            ctypes.cast(base + desc.offset * item,
                        ctypes.POINTER(CTYPES[dtype])),
            shape=(max(sum((s - 1) * st for s, st in zip(shape, strides)) + 1,
                       1),))
        idx = np.zeros(shape, np.int64)
        for axis, st in enumerate(strides):
            idx += (np.arange(shape[axis]) * st).reshape(
                [-1 if a == axis else 1 for a in range(rank)])
        out[...] = flat[idx]
    return out


def compile_fixture(bindir, onnx_path, workdir):
    name = os.path.splitext(os.path.basename(onnx_path))[0]
    mlir = os.path.join(workdir, name + ".mlir")
    llvm = os.path.join(workdir, name + ".llvm.mlir")
    ll = os.path.join(workdir, name + ".ll")
    so = os.path.join(workdir, name + ".so")
    subprocess.run([os.path.join(bindir, "moe-import"), onnx_path, "-o", mlir],
                   check=True)
    subprocess.run([os.path.join(bindir, "moe-opt"), mlir,
                    "--moe-lower-to-llvm", "-o", llvm], check=True)
    subprocess.run(["/usr/lib/llvm-22/bin/mlir-translate", "--mlir-to-llvmir",
                    llvm, "-o", ll], check=True)
    lib = "/usr/lib/llvm-22/lib"
    subprocess.run(["clang-22", "-O2", "-shared", "-fPIC",
                    "-Wno-override-module", ll, "-o", so, "-lm", f"-L{lib}",
                    "-lmlir_c_runner_utils", f"-Wl,-rpath,{lib}"], check=True)
    return so


def run(so, model, inputs):
    lib = ctypes.CDLL(so)
    outs = [(ONNX_DTYPES[o.type.tensor_type.elem_type],
             len(o.type.tensor_type.shape.dim)) for o in model.graph.output]
    out_types = [descriptor_type(dt, r) for dt, r in outs]
    if len(outs) == 1:
        result = out_types[0]()
    else:
        result = type("Results", (ctypes.Structure,), {"_fields_": [
            (f"r{i}", t) for i, t in enumerate(out_types)]})()
    keep, args = [], [ctypes.byref(result)]
    for vi in model.graph.input:
        desc, array = to_descriptor(inputs[vi.name])
        keep.append((desc, array))
        args.append(ctypes.byref(desc))
    lib._mlir_ciface_main(*args)
    descs = [result] if len(outs) == 1 else [getattr(result, f"r{i}")
                                              for i in range(len(outs))]
    return [from_descriptor(d, dt, r) for d, (dt, r) in zip(descs, outs)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--fixtures", required=True)
    parser.add_argument("names", nargs="*")
    args = parser.parse_args()
    manifest = json.load(open(os.path.join(args.fixtures, "manifest.json")))
    names = args.names or sorted(manifest)
    failures = 0
    with tempfile.TemporaryDirectory() as work:
        for name in names:
            entry = manifest[name]
            path = os.path.join(args.fixtures, entry["model"])
            model = onnx.load(path)
            inputs = {k: np.load(os.path.join(args.fixtures, f"{name}.{k}.npy"))
                      for k in entry["inputs"]}
            expected = np.load(os.path.join(args.fixtures,
                                            f"{name}.{entry['output']}.npy"))
            try:
                got = run(compile_fixture(args.bin, path, work), model,
                          inputs)[0]
            except subprocess.CalledProcessError as e:
                print(f"FAIL {name}: compilation failed: {e}")
                failures += 1
                continue
            ok = got.shape == expected.shape and np.allclose(
                got, expected, atol=ATOL, rtol=RTOL)
            diff = (float(np.max(np.abs(got - expected)))
                    if got.shape == expected.shape and got.size else 0.0)
            print(f"{'ok  ' if ok else 'FAIL'} {name}: shape {got.shape}, "
                  f"max |got - expected| = {diff:.2e}")
            failures += not ok
    print(f"execution: {len(names) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

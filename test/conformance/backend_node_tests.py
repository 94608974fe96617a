#!/usr/bin/env python3
"""Runs the ONNX backend node tests (Debian libonnx-testdata) through moe-import.

Each single-node test whose op has a handler (moe-import --list-handlers) is
imported and converted; until the CPU backend executes models, "pass" means
the model imports, converts and verifies. Tests whose model opset lies outside
the importer's range (13 to 29) are reported as out of range, not run.

Parameter inputs: a static compiler needs axes, starts, split sizes, shapes
and the like as constants, while these tests pass them as graph inputs. Graph
inputs of integer or bool type and rank <= 1 are therefore bound to the
test's own input data (test_data_set_0) as initializers; the report counts
the tests where that was done.

With --execute (and --moe-compile, --moe-run), each test that imports is
also compiled to an artifact, run on test_data_set_0's inputs, and every
output compared with the expected one: |got - want| <= 1e-5 + 1e-3 |want|
(the ONNX backend's relative tolerance; a slightly looser absolute one for
libm's transcendental functions), NaN where NaN is expected, exact for
integers and bools.

usage: backend_node_tests.py --moe-import BIN [--execute --moe-compile BIN
       --moe-run BIN] [--claimed FILE] [--report MD]
Exit status 1 if any in-range test of a claimed op fails (or a claimed op has
no in-range test), 0 otherwise.
"""
import argparse
import collections
import concurrent.futures
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

DATA = "/usr/share/libonnx-testdata/data/node"
MIN_OPSET, MAX_OPSET = 13, 21


def single_node_tests(root):
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name, "model.onnx")
        if not os.path.exists(path):
            continue
        model = onnx.load(path, load_external_data=False)
        if len(model.graph.node) != 1:
            continue
        node = model.graph.node[0]
        domain = node.domain or "ai.onnx"
        opset = next((o.version for o in model.opset_import
                      if (o.domain or "ai.onnx") == domain), None)
        yield name, path, domain, node.op_type, opset


PARAM_TYPES = {TensorProto.INT64, TensorProto.INT32, TensorProto.BOOL}


def bind_parameters(path, scratch):
    """Returns (model path, bound?) with small integer/bool graph inputs
    turned into initializers holding the test's own input data."""
    model = onnx.load(path)
    data_dir = os.path.join(os.path.dirname(path), "test_data_set_0")
    bound = False
    keep = []
    for i, vi in enumerate(model.graph.input):
        tt = vi.type.tensor_type
        pb = os.path.join(data_dir, f"input_{i}.pb")
        if (vi.type.HasField("tensor_type") and tt.elem_type in PARAM_TYPES
                and len(tt.shape.dim) <= 1 and os.path.exists(pb)):
            tensor = TensorProto()
            with open(pb, "rb") as f:
                tensor.ParseFromString(f.read())
            tensor.name = vi.name
            model.graph.initializer.append(tensor)
            bound = True
        else:
            keep.append(vi)
    if not bound:
        return path, False
    del model.graph.input[:]
    model.graph.input.extend(keep)
    out = os.path.join(scratch, os.path.basename(os.path.dirname(path)) +
                       ".onnx")
    onnx.save(model, out)
    return out, True


def read_pb(path):
    tensor = TensorProto()
    with open(path, "rb") as f:
        tensor.ParseFromString(f.read())
    return numpy_helper.to_array(tensor)


def compare(got, want):
    if got.shape != want.shape:
        return f"shape {got.shape}, expected {want.shape}"
    if want.dtype.kind in "biu":
        return "" if np.array_equal(got, want) else "values differ"
    if not np.allclose(got, want, rtol=1e-3, atol=1e-5, equal_nan=True):
        diff = np.nanmax(np.abs(got.astype(np.float64) - want)) if got.size else 0
        return f"max |got - want| = {diff:.3g}"
    return ""


def npy_file_name(name):
    """moe-run's file for output `name` (moe::npy::fileNameFor): bytes
    [A-Za-z0-9_.-] kept (a leading '.' not), the others %XX; the empty name
    is '%'; an encoding over 200 bytes is cut and suffixed with '~' and the
    name's FNV-1a 64 hash."""
    raw = name.encode()
    if not raw:
        return "%.npy"
    keep = set(b"abcdefghijklmnopqrstuvwxyz"
               b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
    out = "".join(chr(c) if c in keep or (c == ord(".") and i) else "%%%02X" % c
                  for i, c in enumerate(raw))
    if len(out) > 200:
        cut = 183 - (1 if out[182] == "%" else 2 if out[181] == "%" else 0)
        h = 0xcbf29ce484222325
        for c in raw:
            h = ((h ^ c) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
        out = out[:cut] + "~%016X" % h
    return out + ".npy"


def execute(args, original, model_path, scratch):
    """Compiles and runs a model that imported; '' or what went wrong."""
    name = os.path.basename(os.path.dirname(original))
    work = os.path.join(scratch, name + ".run")
    os.makedirs(work, exist_ok=True)
    artifact = os.path.join(work, "m.moeb")
    proc = subprocess.run([args.moe_compile, "-q", "--opt=1", model_path,
                           "-o", artifact], capture_output=True, text=True,
                          timeout=300)
    if proc.returncode != 0:
        return "compile: " + (proc.stderr.strip().splitlines() or [""])[0]
    model = onnx.load(model_path)
    data = os.path.join(os.path.dirname(original), "test_data_set_0")
    original_inputs = [vi.name for vi in onnx.load(
        original, load_external_data=False).graph.input]
    cmd = [args.moe_run, artifact, "--output-dir", work]
    runtime_inputs = {vi.name for vi in model.graph.input}
    for i, input_name in enumerate(original_inputs):
        if input_name not in runtime_inputs:
            continue  # bound as an initializer
        npy = os.path.join(work, f"input_{i}.npy")
        np.save(npy, read_pb(os.path.join(data, f"input_{i}.pb")))
        cmd += ["--input", f"{input_name}={npy}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        return "run: " + (proc.stderr.strip().splitlines() or [""])[0]
    for j, out in enumerate(model.graph.output):
        got = np.load(os.path.join(work, npy_file_name(out.name)))
        want = read_pb(os.path.join(data, f"output_{j}.pb"))
        problem = compare(got, want)
        if problem:
            return f"output '{out.name}': {problem}"
    return ""


def run(args, path, scratch):
    model, bound = bind_parameters(path, scratch)
    proc = subprocess.run([args.moe_import, model, "-o", os.devnull],
                          capture_output=True, text=True, timeout=60)
    first = (proc.stderr.strip().splitlines() or [""])[0]
    if proc.returncode != 0 or not args.execute:
        return proc.returncode == 0, first, bound
    problem = execute(args, path, model, scratch)
    return not problem, problem, bound


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moe-import", required=True)
    parser.add_argument("--execute", action="store_true",
                        help="also compile, run and compare outputs")
    parser.add_argument("--moe-compile")
    parser.add_argument("--moe-run")
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--claimed", help="file with one claimed op per line")
    parser.add_argument("--report", help="write a markdown report here")
    parser.add_argument("-j", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    if args.execute and not (args.moe_compile and args.moe_run):
        parser.error("--execute needs --moe-compile and --moe-run")

    handled = set()
    listing = subprocess.run([args.moe_import, "--list-handlers"], check=True,
                             capture_output=True, text=True).stdout
    for line in listing.splitlines():
        domain, op, _ = line.split()
        handled.add((domain, op))
    claimed = set()
    if args.claimed:
        claimed = {l.split("#")[0].strip() for l in open(args.claimed)} - {""}

    tests = [t for t in single_node_tests(args.data)
             if (t[2], t[3]) in handled]
    results = collections.defaultdict(list)  # op -> [(name, status, msg)]
    jobs = {}
    bound_count = 0
    scratch = tempfile.mkdtemp(prefix="moe-conformance-")
    with concurrent.futures.ThreadPoolExecutor(args.j) as pool:
        for name, path, domain, op, opset in tests:
            if opset is None or not MIN_OPSET <= opset <= MAX_OPSET:
                results[op].append((name, "out of range",
                                    f"opset {opset}"))
                continue
            jobs[pool.submit(run, args, path, scratch)] = (name, op)
        for future in concurrent.futures.as_completed(jobs):
            name, op = jobs[future]
            ok, msg, bound = future.result()
            bound_count += bound
            results[op].append((name, "pass" if ok else "fail", msg))

    passed = failed = 0
    problems = []
    lines = [f"| op | pass | fail | out of range (opset < 13) | claimed |",
             "|---|---|---|---|---|"]
    for op in sorted(results):
        entries = sorted(results[op])
        p = sum(s == "pass" for _, s, _ in entries)
        f = sum(s == "fail" for _, s, _ in entries)
        o = sum(s == "out of range" for _, s, _ in entries)
        passed, failed = passed + p, failed + f
        lines.append(f"| {op} | {p} | {f} | {o} | "
                     f"{'yes' if op in claimed else 'no'} |")
        for name, status, msg in entries:
            if status == "fail":
                print(f"FAIL {op} {name}: {msg}")
                if op in claimed:
                    problems.append(f"claimed op {op}: {name} fails: {msg}")
        if op in claimed and p == 0:
            problems.append(f"claimed op {op} has no passing in-range test")
    for op in sorted(claimed - set(results)):
        problems.append(f"claimed op {op} has no handler or no test")

    if args.report:
        with open(args.report, "w") as out:
            out.write("\n".join(lines) + "\n")
            what = ("Import, compilation, execution and comparison of the "
                    "outputs" if args.execute else "Import and verification")
            out.write(f"\n{what}: {passed} passed, {failed} failed; "
                      f"parameter inputs bound to the test data in "
                      f"{bound_count} tests.\n")
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    print(f"conformance: {passed} passed, {failed} failed "
          f"({len(claimed)} claimed ops, {len(problems)} problems)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

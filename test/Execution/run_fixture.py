#!/usr/bin/env python3
"""Compiles every fixture with moe-compile, runs it with moe-run and compares
the outputs with the expected .npy files (computed by ONNX Runtime).

usage: run_fixture.py --bin BUILD/bin --fixtures DIR [NAME ...]
Prints one line per fixture and "execution: N passed, M failed"; exits 1 if
any output differs beyond |got - expected| <= 1e-5 + 1e-4 |expected|
(docs/tolerance.md) or a tool fails.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ATOL, RTOL = 1e-5, 1e-4


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
            artifact = os.path.join(work, name + ".moeb")
            out_dir = os.path.join(work, name)
            compile_cmd = [os.path.join(args.bin, "moe-compile"), "-q",
                           os.path.join(args.fixtures, entry["model"]),
                           "-o", artifact]
            run_cmd = [os.path.join(args.bin, "moe-run"), artifact,
                       "--output-dir", out_dir]
            for k in entry["inputs"]:
                run_cmd += ["--input", f"{k}={os.path.join(args.fixtures, f'{name}.{k}.npy')}"]
            for cmd in (compile_cmd, run_cmd):
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    print(f"FAIL {name}: {os.path.basename(cmd[0])} failed: "
                          f"{proc.stderr.strip()[:300]}")
                    failures += 1
                    break
            else:
                got = np.load(os.path.join(out_dir, entry["output"] + ".npy"))
                expected = np.load(os.path.join(
                    args.fixtures, f"{name}.{entry['output']}.npy"))
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

"""Checks the dynamic symbols of a compiled model's shared object.

usage: check_symbols.py NM CODE.so

The code ABI (runtime/include/moe/code_abi.h) allows the code to export only
its entries (moe_entry_*) and its signature digest, and to need only libc
and libm functions: then it runs in any process, loaded RTLD_LOCAL (a Python
extension), without the runtime in the global symbol scope. Prints the
exported and undefined symbols and exits non-zero on a violation.
"""
import ctypes
import subprocess
import sys

nm, so = sys.argv[1], sys.argv[2]


def symbols(*flags):
    out = subprocess.run([nm, "-D", *flags, so], check=True,
                         capture_output=True, text=True).stdout
    return sorted(line.split()[-1].split("@")[0] for line in out.splitlines()
                  if line.strip())


exported = symbols("--defined-only")
undefined = symbols("--undefined-only")
libs = [ctypes.CDLL("libc.so.6"), ctypes.CDLL("libm.so.6")]
bad = [s for s in exported
       if not (s.startswith("moe_entry_") or s == "moe_signature_digest")]
foreign = [s for s in undefined if not any(hasattr(lib, s) for lib in libs)]
print("exported:", " ".join(exported))
print("undefined:", " ".join(undefined))
if not any(s.startswith("moe_entry_") for s in exported):
    print("error: no entry is exported")
    sys.exit(1)
if bad:
    print("error: exported beyond the entries and the digest:", " ".join(bad))
    sys.exit(1)
if foreign:
    print("error: undefined symbols outside libc and libm:", " ".join(foreign))
    sys.exit(1)
print("ok")

#!/usr/bin/env python3
"""Checks that docs/spec.md, the verifiers and invalid.mlir agree.

Every constraint row `| Cn |` under `### \`moe.<op>\`` in the spec must have
a test function `@<op>_cn[_case]` in invalid.mlir and an `(Cn)` diagnostic in
the verifier of that op; every such test function must name a documented
constraint. Prints one line per problem and exits 1 if there is any.
"""
import re
import sys

spec_path, tests_path, verifier_path = sys.argv[1:4]

spec = {}
op = None
for line in open(spec_path, encoding="utf-8"):
    m = re.match(r"^### `moe\.(\w+)`", line)
    if m:
        op = m.group(1)
        spec[op] = set()
        continue
    m = re.match(r"^\| (C\d+) \|", line)
    if m and op:
        spec[op].add(m.group(1))

tests = {}
for name in re.findall(r"func\.func @(\w+)\(", open(tests_path).read()):
    m = re.match(r"^(\w+?)_c(\d+)(?:_\w+)?$", name)
    if m:
        tests.setdefault(m.group(1), set()).add("C" + m.group(2))

# Verifier ids per op: the text of each `XOp::verify()` body.
source = open(verifier_path).read()
class_of = lambda o: "".join(p.capitalize() for p in o.split("_")) + "Op"
verifier = {}
bodies = re.split(r"\nLogicalResult (\w+)::verify\(\) \{", source)
for cls, body in zip(bodies[1::2], bodies[2::2]):
    verifier[cls] = set(re.findall(r'"(C\d+)"|\((C\d+)\)', body))
    verifier[cls] = {a or b for a, b in verifier[cls]}

problems = []
for o, ids in sorted(spec.items()):
    cls = class_of(o).replace("Switchhead", "SwitchHead")
    for cid in sorted(ids):
        if cid not in tests.get(o, set()):
            problems.append(f"spec {o} {cid}: no @{o}_{cid.lower()} in invalid.mlir")
        if cid not in verifier.get(cls, set()):
            problems.append(f"spec {o} {cid}: no ({cid}) in {cls}::verify")
for o, ids in sorted(tests.items()):
    for cid in sorted(ids - spec.get(o, set())):
        problems.append(f"test @{o}_{cid.lower()}: {cid} is not in docs/spec.md")

for p in problems:
    print(p)
print(f"constraints: {sum(len(v) for v in spec.values())} documented, "
      f"{len(problems)} problems")
sys.exit(1 if problems else 0)

"""Checks moe-import --list-handlers against OnnxSchemaChanges.inc: each
schema version listed there for an ai.onnx operator with a handler must have
its own registration. Prints one 'unaudited' line per miss; exit 1 if any."""
import re
import sys

handlers = {}
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) == 3 and parts[0] == "ai.onnx":
        handlers.setdefault(parts[1], set()).add(int(parts[2]))
if not handlers:
    sys.exit("no ai.onnx handlers listed")

changes = {}
for line in open(sys.argv[2]):
    m = re.match(r'ONNX_SCHEMA_CHANGES\("(\w+)", ([\d, ]+)\)', line)
    if m:
        changes[m.group(1)] = [int(v) for v in m.group(2).split(",")]
if not changes:
    sys.exit("no schema changes read")

missing, audited, ops = [], 0, set()
for op, versions in sorted(changes.items()):
    if op not in handlers:
        continue
    for v in versions:
        if v in handlers[op]:
            audited += 1
            ops.add(op)
        else:
            missing.append(f"unaudited: ai.onnx {op}-{v} (handlers at "
                           f"{sorted(handlers[op])})")
print(f"audited: {audited} schema versions of {len(ops)} handled operators")
for m in missing:
    print(m)
sys.exit(1 if missing else 0)

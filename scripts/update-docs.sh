#!/usr/bin/env bash
# Regenerates docs/dialect/*.md from ODS (checked by test/docs/generated-docs.test).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${MOE_BUILD_DIR:-$root/build}"
"$root/scripts/build.sh" moe-import moe-compile moe-run MoeDialectDocGen MoePassesDocGen \
  OnnxDialectDocGen MoeConversionPassesDocGen
cp "$build/docs/moe/MoeDialect.md" "$build/docs/moe/MoePasses.md" \
   "$build/docs/moe/OnnxDialect.md" "$build/docs/moe/MoeConversionPasses.md" \
   "$root/docs/dialect/"
/usr/bin/python3 "$root/test/conformance/backend_node_tests.py" \
  --moe-import "$build/bin/moe-import" --execute \
  --moe-compile "$build/bin/moe-compile" --moe-run "$build/bin/moe-run" \
  --claimed "$root/test/conformance/claimed.txt" \
  --report "$root/docs/conformance-table.md" > /dev/null
echo "updated docs/dialect/*.md and docs/conformance-table.md"

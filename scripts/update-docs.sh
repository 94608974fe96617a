#!/usr/bin/env bash
# Regenerates docs/dialect/*.md from ODS (checked by test/docs/generated-docs.test).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${MOE_BUILD_DIR:-$root/build}"
"$root/scripts/build.sh" MoeDialectDocGen MoePassesDocGen
cp "$build/docs/moe/MoeDialect.md" "$build/docs/moe/MoePasses.md" "$root/docs/dialect/"
echo "updated docs/dialect/MoeDialect.md docs/dialect/MoePasses.md"

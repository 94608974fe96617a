#!/usr/bin/env bash
# The main job: set up, build, and run the bundled MoEUT layer example
# through the decomposition pipeline, printing the result.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${MOE_BUILD_DIR:-$root/build}"

"$root/scripts/setup.sh"
"$root/scripts/build.sh" moe-opt
echo "== moe-opt examples/moeut_layer.mlir --moe-decompose"
"$build/bin/moe-opt" "$root/examples/moeut_layer.mlir" --moe-decompose

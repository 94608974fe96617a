#!/usr/bin/env bash
# Configures (once) and builds moe-mlir in ${MOE_BUILD_DIR:-build}. Extra
# arguments are ninja targets (default: all).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${MOE_BUILD_DIR:-$root/build}"

if [ ! -f "$build/build.ninja" ]; then
  launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -G Ninja -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
    -DLLVM_USE_LINKER=lld \
    -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
    -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-22/bin/lit \
    -DMLIR_LINK_MLIR_DYLIB=ON \
    -DPython3_EXECUTABLE=/usr/bin/python3 \
    -DPython_EXECUTABLE=/usr/bin/python3 \
    -DMOE_BUILD_FUZZERS=ON \
    "${launcher[@]}" >/dev/null
elif ! grep -q '^MOE_BUILD_FUZZERS:BOOL=ON' "$build/CMakeCache.txt"; then
  # A build directory configured before the fuzzers existed.
  cmake -B "$build" -DMOE_BUILD_FUZZERS=ON >/dev/null
fi

# The Python package moe_mlir is built into $build/python (python/CMakeLists.txt):
# a .pth file puts it on the path of the project's venv (rewritten only when
# the build directory changes).
venv="$root/.venv"
if [ -x "$venv/bin/python" ]; then
  site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  pth="$site/moe_mlir.pth"
  want="$(cd "$build" && pwd)/python"
  if [ "$(cat "$pth" 2>/dev/null)" != "$want" ]; then
    echo "$want" > "$pth"
  fi
fi

ninja -C "$build" "$@"

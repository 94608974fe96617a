#!/usr/bin/env bash
# Installs what moe-mlir needs on a fresh Debian 12 machine (idempotent: a
# machine that has everything is checked in a second and left unchanged).
set -euo pipefail

APT_PACKAGES=(
  # LLVM/MLIR 22 and its tools (lit, FileCheck, not, split-file, mlir-tblgen)
  llvm-22-dev llvm-22-tools libmlir-22-dev mlir-22-tools
  # compiler and linker
  clang-22 lld-22 cmake ninja-build ccache
  # runtime unit tests, and its AddressSanitizer/UBSan build
  libgtest-dev libclang-rt-22-dev valgrind
  # the ONNX importer: ONNX 1.12 C++ and the system protobuf; backend node tests
  libonnx-dev libprotobuf-dev protobuf-compiler libonnx-testdata
  # quiet MLIR's CMake config
  libzstd-dev libedit-dev libcurl4-openssl-dev
  # lit runs on the system Python; the reference models use Debian's torch
  python3 python3-venv python3-numpy python3-torch python3-onnx
  # the Python package moe_mlir (python/moe_mlir): pybind11 and Python headers
  pybind11-dev python3-dev
  # bench/suite.py's plot
  python3-matplotlib
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present"
fi

# Python environment for the reference models and their tests: a venv over
# the system site-packages (Debian's torch and onnx) plus pinned pip packages.
# Reinstalled only when python/requirements.txt changes.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
requirements="$root/python/requirements.txt"
stamp="$venv/.requirements.sha256"
if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating $venv"
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing python/requirements.txt into $venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements"
  echo "$want" > "$stamp"
else
  echo "setup: python environment up to date"
fi

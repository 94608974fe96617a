#!/usr/bin/env bash
# Installs what moe-mlir needs on a fresh Debian 12 machine (idempotent: a
# machine that has everything is checked in a second and left unchanged).
set -euo pipefail

APT_PACKAGES=(
  # LLVM/MLIR 22 and its tools (lit, FileCheck, not, split-file, mlir-tblgen)
  llvm-22-dev llvm-22-tools libmlir-22-dev mlir-22-tools
  # compiler and linker
  clang-22 lld-22 cmake ninja-build ccache
  # quiet MLIR's CMake config
  libzstd-dev libedit-dev libcurl4-openssl-dev
  # lit runs on the system Python
  python3
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

#!/usr/bin/env bash
# Cross-compiles the CPU kernels and their tests for aarch64 and runs the tests under qemu, so
# the NEON code is built and checked on x86 machines too. Installs the cross compiler and qemu
# when missing. Usage: scripts/check-arm.sh [gtest options]
set -euo pipefail
cd "$(dirname "$0")/.."
build="build/aarch64"
need=()
command -v aarch64-linux-gnu-g++ >/dev/null || need+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
if ((${#need[@]})); then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
[ -f "$build/CMakeCache.txt" ] || cmake -S tests/arm -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 \
  -DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc -DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++ >/dev/null
cmake --build "$build" --target test_kernels
qemu-aarch64 -L /usr/aarch64-linux-gnu "$build/test_kernels" "$@"

#!/usr/bin/env bash
# Installs everything hakmem's build, tests and benchmarks need, from Debian's
# packages only. Idempotent; run as root on Debian 12.
set -euo pipefail

PACKAGES=(
  bazel-bootstrap      # Bazel 4.2.3 (WORKSPACE mode)
  bazel-rules-java     # local rules_java for the offline WORKSPACE
  g++ clang libclang-rt-14-dev  # compilers; clang's libFuzzer for the fuzz target
  googletest           # GoogleTest sources, compiled by //third_party:gtest
  libabsl-dev          # Abseil flags for the benchmarks
  libbenchmark-dev     # Google Benchmark
  libgoogle-perftools-dev libjemalloc-dev libmimalloc-dev  # comparison allocators
  strace valgrind      # syscall and instruction counts
  python3 perl sqlite3 # real programs run under LD_PRELOAD in the tests
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$pkg")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"

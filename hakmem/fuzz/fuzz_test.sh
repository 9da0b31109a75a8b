#!/usr/bin/env bash
# Builds the fuzz target with clang's libFuzzer (+ AddressSanitizer) from the
# sources in the runfiles and fuzzes for FUZZ_SECONDS (default 10; longer by
# hand: FUZZ_SECONDS=600 bazel test //hakmem/fuzz:fuzz_test, or see README).
set -euo pipefail
if ! command -v clang++ >/dev/null; then
  echo "SKIPPED: clang++ not installed (tools/setup.sh installs it)"
  exit 0
fi
root="${TEST_SRCDIR}/${TEST_WORKSPACE}"
out="${TEST_TMPDIR:-/tmp}/hakmem_fuzz"
sources=$(cd "$root" && ls hakmem/*.cc hakmem/*/*.cc | grep -v -e _test.cc -e libc_override.cc)
(cd "$root" && clang++ -std=c++17 -O1 -g -fsanitize=fuzzer,address -I. $sources -o "$out")
seconds="${FUZZ_SECONDS:-10}"
[ "${HAKMEM_LONG:-0}" = "1" ] && seconds=300
corpus="${TEST_TMPDIR:-/tmp}/corpus"
mkdir -p "$corpus"
"$out" -max_total_time="$seconds" -rss_limit_mb=4096 -max_len=4096 "$corpus" 2>&1 | tail -5
echo "fuzzed for ${seconds}s without a finding"

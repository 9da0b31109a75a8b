#!/bin/bash
# The HAKMEM_* knobs, seen through HAKMEM_STATS=1 / HAKMEM_VERBOSE=1 output at
# exit, for both the LD_PRELOAD and the linked variant of one workload
# (knob_workload.cc: ~300 MiB of small blocks and 40 x 1 MiB, all freed).
# Usage: knobs_test.sh <libhakmem.so> <knob_workload> <knob_workload_linked>
set -uo pipefail
lib="$1"; plain="$2"; linked="$3"
case "$lib" in /*) ;; *) lib="$PWD/$lib" ;; esac
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# run <variant> <env...>: runs the workload, leaves stderr in $tmp/err.
run() {
  local variant="$1"; shift
  local cmd=("$linked")
  [ "$variant" = preload ] && cmd=(env "LD_PRELOAD=$lib" "$plain")
  if ! env HAKMEM_STATS=1 "$@" "${cmd[@]}" >"$tmp/out" 2>"$tmp/err"; then
    fail "$variant $*: workload failed"; cat "$tmp/err" >&2
  fi
  grep -q "^workload: done$" "$tmp/out" || fail "$variant $*: no output"
  grep -q "^hakmem stats:" "$tmp/err" || fail "$variant $*: no hakmem stats (hakmem not active?)"
}
# stat <name>: the value of "  <name>: N" in the last run's stats.
stat() { sed -n "s/^  $1: \([0-9]*\)$/\1/p" "$tmp/err" | tail -1; }
expect() {  # expect <description> <value> <op> <bound>
  if [ -z "$2" ] || ! [ "$2" "$3" "$4" ]; then fail "$1: got '${2}', want $3 $4"; fi
}

for v in preload linked; do
  echo "== $v"
  run "$v"
  default_cached=$(stat "superslabs cached"); default_dirty=$(stat "extent free bytes perhaps resident")
  echo "defaults: superslabs cached $default_cached, extent free bytes perhaps resident $default_dirty"
  # Control: with the defaults (512 MiB / 256 SuperSlabs / 64 MiB of large
  # blocks) the freed memory stays cached (resident), so the limits below are what
  # makes the difference.
  expect "$v default superslabs cached" "$default_cached" -gt 16
  expect "$v default extent free bytes perhaps resident" "$default_dirty" -gt $((8 << 20))

  run "$v" HAKMEM_SUPERSLAB_MAX_MEMORY_MB=16
  expect "$v MAX_MEMORY_MB=16 superslabs cached" "$(stat "superslabs cached")" -le 8
  expect "$v MAX_MEMORY_MB=16 superslabs evicted" "$(stat "superslabs evicted")" -ge 1

  run "$v" HAKMEM_SUPERSLAB_MAX_CACHED=3
  expect "$v MAX_CACHED=3 superslabs cached" "$(stat "superslabs cached")" -le 3
  expect "$v MAX_CACHED=3 superslabs evicted" "$(stat "superslabs evicted")" -ge 1

  run "$v" HAKMEM_SUPERSLAB_MAX_CACHED=0
  expect "$v MAX_CACHED=0 superslabs cached" "$(stat "superslabs cached")" -eq 0

  # Evicted SuperSlabs keep their address space, up to the retain budget
  # (512 MiB by default: every one evicted here), none with 0.
  run "$v" HAKMEM_SUPERSLAB_MAX_CACHED=0
  expect "$v MAX_CACHED=0 superslabs retained" "$(stat "superslabs retained (address space only)")" -ge 16
  run "$v" HAKMEM_SUPERSLAB_MAX_CACHED=0 HAKMEM_SUPERSLAB_RETAIN_MB=8
  retained=$(stat "superslabs retained (address space only)")
  expect "$v RETAIN_MB=8 superslabs retained" "$retained" -le 4
  expect "$v RETAIN_MB=8 superslabs retained" "$retained" -ge 1
  run "$v" HAKMEM_SUPERSLAB_MAX_CACHED=0 HAKMEM_SUPERSLAB_RETAIN_MB=0
  expect "$v RETAIN_MB=0 superslabs retained" "$(stat "superslabs retained (address space only)")" -eq 0
  expect "$v RETAIN_MB=0 munmap calls" "$(stat "munmap calls")" -ge 16

  # The extent heap (the 1 MiB blocks' default home) keeps at most
  # LARGE_CACHE_MAX_MB of freed pages resident.
  expect "$v default extent chunks" "$(stat "extent chunks")" -ge 1
  run "$v" HAKMEM_LARGE_CACHE_MAX_MB=8
  expect "$v LARGE_CACHE_MAX_MB=8 extent free bytes perhaps resident" \
    "$(stat "extent free bytes perhaps resident")" -le $((8 << 20))
  expect "$v LARGE_CACHE_MAX_MB=8 extent bytes given back" "$(stat "extent bytes given back")" -ge 1
  # With it off, each block has a region of its own, which the large cache
  # keeps, within the same limit.
  run "$v" HAKMEM_LARGE_EXTENTS=0
  expect "$v LARGE_EXTENTS=0 extent chunks" "$(stat "extent chunks")" -eq 0
  expect "$v LARGE_EXTENTS=0 large blocks cached" "$(stat "large blocks cached")" -gt 8
  run "$v" HAKMEM_LARGE_EXTENTS=0 HAKMEM_LARGE_CACHE_MAX_MB=8
  expect "$v LARGE_CACHE_MAX_MB=8 large blocks cached" "$(stat "large blocks cached")" -le 8
  expect "$v LARGE_CACHE_MAX_MB=8 large blocks evicted" "$(stat "large blocks evicted")" -ge 1

  run "$v" HAKMEM_VERBOSE=1 HAKMEM_SUPERSLAB_MAX_MEMORY_MB=16 HAKMEM_SUPERSLAB_TTL_SEC=7
  grep -q "^hakmem: HAKMEM_SUPERSLAB_MAX_MEMORY_MB=16 " "$tmp/err" ||
    fail "$v HAKMEM_VERBOSE=1 does not show MAX_MEMORY_MB=16"
  grep -q "^hakmem: HAKMEM_SUPERSLAB_TTL_SEC=7 " "$tmp/err" ||
    fail "$v HAKMEM_VERBOSE=1 does not show TTL_SEC=7"

  # A bad value warns once, names the variable and falls back to the default.
  run "$v" HAKMEM_VERBOSE=1 HAKMEM_SUPERSLAB_TTL_SEC=12abc HAKMEM_SUPERSLAB_MAX_CACHED=-1
  n=$(grep -c "^hakmem: warning: HAKMEM_SUPERSLAB_TTL_SEC" "$tmp/err")
  expect "$v warnings for TTL_SEC=12abc" "$n" -eq 1
  n=$(grep -c "^hakmem: warning: HAKMEM_SUPERSLAB_MAX_CACHED" "$tmp/err")
  expect "$v warnings for MAX_CACHED=-1" "$n" -eq 1
  grep -q "^hakmem: HAKMEM_SUPERSLAB_TTL_SEC=60 " "$tmp/err" ||
    fail "$v a bad TTL_SEC did not fall back to 60"
done

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "PASS"

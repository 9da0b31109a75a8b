#!/usr/bin/env bash
# Instructions per malloc+free pair of a tiny class, counted exactly with
# callgrind (the difference between 200k and 100k pairs, so start-up cancels
# out), for hakmem linked in, hakmem preloaded, glibc and mimalloc. Fails if
# hakmem's count grows past the budget: a deterministic guard on the fast
# path, unlike a timing.
set -euo pipefail
BUDGET_LINKED="${BUDGET_LINKED:-70}"
BUDGET_PRELOAD="${BUDGET_PRELOAD:-72}"
if ! command -v valgrind >/dev/null; then
  echo "SKIPPED: valgrind not installed (tools/setup.sh installs it)"
  exit 0
fi
linked="$1"; plain="$2"; preload_so="$(cd "$(dirname "$3")" && pwd)/$(basename "$3")"

count() {  # count PRELOAD BINARY PAIRS
  env ${1:+LD_PRELOAD=$1} valgrind --tool=callgrind --callgrind-out-file=/dev/null \
      "$2" "$3" 32 2>&1 | awk '/I +refs:/ {gsub(",", "", $NF); print $NF}'
}
per_pair() {  # per_pair PRELOAD BINARY
  local a b
  a=$(count "$1" "$2" 100000)
  b=$(count "$1" "$2" 200000)
  echo $(( (b - a) / 100000 ))
}

hakmem_linked=$(per_pair "" "$linked")
hakmem_preload=$(per_pair "$preload_so" "$plain")
glibc=$(per_pair "" "$plain")
printf '%-28s %s\n' "allocator" "instructions per malloc(32)+free pair (loop included)"
printf '%-28s %s\n' "hakmem (linked)" "$hakmem_linked"
printf '%-28s %s\n' "hakmem (LD_PRELOAD)" "$hakmem_preload"
printf '%-28s %s\n' "glibc" "$glibc"
for lib in mimalloc:/usr/lib/x86_64-linux-gnu/libmimalloc.so.2 \
           "tcmalloc (gperftools)":/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \
           jemalloc:/usr/lib/x86_64-linux-gnu/libjemalloc.so.2; do
  name="${lib%%:*}"; so="${lib#*:}"
  [ -e "$so" ] && printf '%-28s %s\n' "$name (LD_PRELOAD)" "$(per_pair "$so" "$plain")"
done
status=0
if [ "$hakmem_linked" -gt "$BUDGET_LINKED" ]; then
  echo "FAIL: linked fast path grew to $hakmem_linked instructions (budget $BUDGET_LINKED)"
  status=1
fi
if [ "$hakmem_preload" -gt "$BUDGET_PRELOAD" ]; then
  echo "FAIL: preloaded fast path grew to $hakmem_preload instructions (budget $BUDGET_PRELOAD)"
  status=1
fi
exit $status

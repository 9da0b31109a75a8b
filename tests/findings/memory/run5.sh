#!/bin/bash
# run5.sh ./prog args... : runs prog under glibc, tcmalloc, jemalloc, mimalloc, hakmem
H=${HAKMEM_SO:-$(cd "$(dirname "$0")/../../.." && pwd)/bazel-bin/hakmem/libhakmem.so}
for a in glibc tc je mi hakmem; do
  case $a in glibc) P=;; tc) P=${TC_SO:-/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4};; je) P=${JE_SO:-/usr/lib/x86_64-linux-gnu/libjemalloc.so.2};; mi) P=${MI_SO:-/usr/lib/x86_64-linux-gnu/libmimalloc.so.2};; hakmem) P=$H;; esac
  printf "%-7s " $a
  /usr/bin/time -f "  [%es maxrss %MKB minflt %R]" env LD_PRELOAD=$P timeout ${TMO:-60} "$@" 2>&1 | tr '\n' ' '
  echo
done

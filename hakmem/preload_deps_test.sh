#!/bin/bash
# libhakmem.so needs libc only: a preloaded allocator that pulled in
# libstdc++ (and with it libm and libgcc_s) cost every process, C programs
# too, about 1.2 MB of RSS and three more libraries to map at start-up (an
# unwind personality from one file built with exceptions did, session 27).
set -euo pipefail
so="$1"
if command -v readelf >/dev/null; then
  needed=$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
else
  needed=$(objdump -p "$so" | awk '$1 == "NEEDED" {print $2}')
fi
echo "NEEDED: ${needed//$'\n'/ }"
if [[ "$needed" != "libc.so.6" ]]; then
  echo "FAIL: libhakmem.so must need libc.so.6 only" >&2
  exit 1
fi
# And no strong reference to the C++ runtime's unwind personality.
if nm -D --undefined-only "$so" | grep -v ' w ' | grep -q __gxx_personality; then
  echo "FAIL: a strong reference to __gxx_personality_v0 (code built with exceptions)" >&2
  exit 1
fi
echo PASS

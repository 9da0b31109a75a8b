#!/bin/bash
# Runs a test binary with libhakmem.so preloaded.
# Usage: run_preloaded.sh <libhakmem.so> <binary> [args...]
set -euo pipefail
lib="$1"
bin="$2"
shift 2
case "$lib" in /*) ;; *) lib="$PWD/$lib" ;; esac
[ -f "$lib" ] || { echo "run_preloaded: $lib not found" >&2; exit 1; }
LD_PRELOAD="$lib" exec "$bin" "$@"

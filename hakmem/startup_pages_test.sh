#!/bin/bash
# startup_pages (a plain glibc program) under LD_PRELOAD=libhakmem.so: see
# startup_pages.c.
set -euo pipefail
so="$(realpath "$1")"
LD_PRELOAD="$so" "$2"

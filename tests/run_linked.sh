#!/bin/bash
# Runs a test binary linked with //hakmem:malloc (an extra configuration of a
# cc_test, with its own environment and arguments).
# Usage: run_linked.sh <binary> [args...]
set -euo pipefail
bin="$1"
shift
exec "$bin" "$@"

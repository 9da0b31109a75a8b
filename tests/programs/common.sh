# Sourced by the real-program tests (tests/programs/*_test.sh). Each test gets
# the path of libhakmem.so as $1.
#
# run_preloaded <name> <command...>
#   Runs the command with LD_PRELOAD=libhakmem.so, HAKMEM_VERBOSE=1 (every
#   process that loads hakmem prints its config from hakmem's constructor)
#   and HAKMEM_STATS=1 (statistics at exit, unless the program closed stderr
#   first, as coreutils do); stdout -> $TMP/<name>.out, stderr ->
#   $TMP/<name>.err. Fails the test unless it exits 0, hakmem was loaded and
#   nothing printed a hakmem error.
# run_plain <name> <command...>
#   The same without hakmem (reference output), -> $TMP/<name>.ref.
set -uo pipefail

LIB="${1:?usage: $0 <libhakmem.so>}"
case "$LIB" in /*) ;; *) LIB="$PWD/$LIB" ;; esac
[ -f "$LIB" ] || { echo "FAIL: $LIB not found" >&2; exit 1; }
TMP="${TEST_TMPDIR:-$(mktemp -d)}/work"
mkdir -p "$TMP"
FAILURES=0

fail() {
  echo "FAIL: $*" >&2
  FAILURES=$((FAILURES + 1))
}

# Number of processes that loaded hakmem, from their HAKMEM_VERBOSE output.
loaded_count() { grep -c "^hakmem: HAKMEM_SUPERSLAB_MAX_CACHED=" "$1"; }

run_preloaded() {
  local name="$1"; shift
  local rc=0
  LD_PRELOAD="$LIB" HAKMEM_VERBOSE=1 HAKMEM_STATS=1 "$@" \
    >"$TMP/$name.out" 2>"$TMP/$name.err" || rc=$?
  if [ "$rc" -ne 0 ]; then
    fail "$name: exit status $rc under LD_PRELOAD"
    tail -20 "$TMP/$name.err" >&2
  fi
  if [ "$(loaded_count "$TMP/$name.err")" -lt 1 ]; then
    fail "$name: no HAKMEM_VERBOSE output on stderr, hakmem was not loaded"
  fi
  # Anything hakmem says other than its config and statistics is an error
  # (misuse reports are "hakmem: <what> 0x<pointer>: <why>").
  if grep "^hakmem: " "$TMP/$name.err" | grep -v "^hakmem: HAKMEM_" >&2; then
    fail "$name: hakmem reported errors"
  fi
  return 0
}

run_plain() {
  local name="$1"; shift
  "$@" >"$TMP/$name.ref" 2>"$TMP/$name.ref.err" ||
    fail "$name: exit status $? without LD_PRELOAD (test bug?)"
}

# same_output <name>: preloaded stdout == reference stdout.
same_output() {
  if ! cmp -s "$TMP/$1.out" "$TMP/$1.ref"; then
    fail "$1: output differs from the run without hakmem"
    diff "$TMP/$1.ref" "$TMP/$1.out" | head -20 >&2
  fi
}

# expect_line <name> <exact line>: the preloaded stdout has this line.
expect_line() {
  grep -qxF -- "$2" "$TMP/$1.out" || fail "$1: missing output line '$2'"
}

finish() {
  if [ "$FAILURES" -ne 0 ]; then
    echo "$FAILURES check(s) failed" >&2
    exit 1
  fi
  echo "PASS"
  exit 0
}

#!/usr/bin/env bash
# paired_ab.py on commands with known metrics: the ratios, their direction
# with --lower, the metric taken from the last line, and bad arguments.
set -euo pipefail
AB="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-hakmem}/tools/paired_ab.py"
[[ -f "$AB" ]] || AB="$(dirname "$0")/paired_ab.py"
fail() { echo "FAIL: $*"; exit 1; }

# The "library" is the metric itself: echo prints a header line, then it.
out=$(python3 "$AB" --reps 3 --seed 1 --cmd 'echo "run 7 of 9"; echo "result: {lib} Mops/s"' \
  base=100 faster=110 slower=80)
echo "$out"
grep -q '^faster .*x1.1000 of base' <<<"$out" || fail "faster is not 1.1x"
grep -q '^slower .*x0.8000 of base' <<<"$out" || fail "slower is not 0.8x"
grep -q '^base .*median *100.0000 *x1.0000' <<<"$out" || fail "base's median or ratio"

out=$(python3 "$AB" --reps 2 --lower --cmd 'echo {lib} ns' base=10 faster=8)
grep -q '^faster .*x1.2500 of base' <<<"$out" || fail "--lower: 8 ns is not 1.25x 10 ns"

if python3 "$AB" --reps 2 --cmd 'echo {lib}' base=1 nopath 2>/dev/null; then
  fail "a library without a path was accepted"
fi
if python3 "$AB" --reps 1 --cmd 'echo none' base=1 >/dev/null 2>&1; then
  fail "a command without a metric was accepted"
fi
# --copies: each round runs a copy of the library's file, in turn (copy k
# adds k to the metric; the command is a format string, so no braces but
# {lib}), each copy's median is printed, and the copies go away, also when
# an argument is refused.
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir "$dir/orig" "$dir/tmp"
echo 100 >"$dir/orig/base.so"
echo 125 >"$dir/orig/new.so"
copy_cmd='f={lib}; case $f in '"$dir"'/orig/*) echo inplace 1; exit;; esac
k=$(basename $f .so | cut -d. -f2); echo "$(( $(cat $f) + k )) Mops/s"'
out=$(TMPDIR="$dir/tmp" python3 "$AB" --reps 4 --copies 2 --cmd "$copy_cmd" \
  base="$dir/orig/base.so" new="$dir/orig/new.so")
echo "$out"
grep -q '^new .*median *125.5000 *x1.2488 of base' <<<"$out" || fail "--copies: ratio, or a run from the original file"
grep -q '^base  *per copy 100.0000 101.0000$' <<<"$out" || fail "--copies: base's per-copy medians, or no rotation"
grep -q '^new  *per copy 125.0000 126.0000$' <<<"$out" || fail "--copies: new's per-copy medians, or no rotation"
[[ -z $(ls "$dir/tmp") ]] || fail "--copies left its copies behind"
[[ $(ls "$dir/orig") == $'base.so\nnew.so' ]] || fail "--copies left files beside the originals"
if TMPDIR="$dir/tmp" python3 "$AB" --reps 2 --copies 2 --cmd 'echo {lib}' \
    base="$dir/orig/base.so" other=1 2>/dev/null; then
  fail "--copies accepted a library that is no file"
fi
[[ -z $(ls "$dir/tmp") ]] || fail "--copies left a directory behind after an error"
if python3 "$AB" --reps 1 --copies 2 --cmd 'echo {lib}' base="$dir/orig/base.so" 2>/dev/null; then
  fail "--copies accepted fewer rounds than copies"
fi
echo "PASS"

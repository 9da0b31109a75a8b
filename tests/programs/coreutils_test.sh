#!/bin/bash
# Everyday programs under LD_PRELOAD: /bin/true, ls, sort, bash itself.
# Under bazel test the script runs from the runfiles tree as tests/<target>.
here="${TEST_SRCDIR:+$TEST_SRCDIR/$TEST_WORKSPACE/tests/programs}"
source "${here:-$(dirname "$0")}/common.sh"

run_preloaded true /bin/true

run_preloaded ls ls -la /usr/bin /usr/include
run_plain ls ls -la /usr/bin /usr/include
same_output ls
[ "$(wc -l <"$TMP/ls.out")" -gt 100 ] || fail "ls printed too little"

seq 1 200000 | awk '{ print ($1 * 7919) % 100003 " line " $1 }' >"$TMP/input"
run_preloaded sort sort -n -k1,1 -k3,3n "$TMP/input"
run_plain sort sort -n -k1,1 -k3,3n "$TMP/input"
same_output sort
[ "$(wc -l <"$TMP/sort.out")" -eq 200000 ] || fail "sort lost lines"

run_preloaded bash /bin/bash -c '
  declare -A h
  for ((i = 0; i < 20000; i++)); do h[k$((i % 5000))]+=x; done
  s=""; for ((i = 0; i < 2000; i++)); do s+="$i,"; done
  echo "${#h[@]} ${#h[k42]} ${#s}"'
expect_line bash "5000 4 8890"

run_preloaded find sh -c 'find /usr/include -name "*.h" | sort | uniq | wc -l'
run_plain find sh -c 'find /usr/include -name "*.h" | sort | uniq | wc -l'
same_output find
finish

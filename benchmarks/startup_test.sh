#!/usr/bin/env bash
# End-to-end test of //benchmarks:startup with a few runs. Asserts no timing
# (the machine is noisy): only that the runs happen, the table parses, and
# that what hakmem maps and touches for a program that allocates once stays
# small next to glibc (address space within 8 MiB, RSS within 2 MiB).
set -euo pipefail

BIN="${TEST_SRCDIR}/${TEST_WORKSPACE}/benchmarks/startup"
TMP="${TEST_TMPDIR:-$(mktemp -d)}"

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

"${BIN}" --runs=3 --allocator=hakmem >"${TMP}/out" 2>"${TMP}/err" ||
  { cat "${TMP}/err" >&2; fail "startup exited with $?"; }
cat "${TMP}/out"

# row PROGRAM ALLOCATOR: the table row's fields after the program name.
row() {
  awk -v p="$1" -v a="$2" '$1 == p && $2 == a' "${TMP}/out"
}
for program in true alloc_once; do
  for allocator in glibc empty-preload hakmem; do
    [[ -n "$(row "${program}" "${allocator}")" ]] || fail "no ${program} row for ${allocator}"
  done
done

# The empty library was preloaded: it shows up in the process's maps only
# as its own few pages.
read -r _ _ _ _ empty_vmsize _ <<<"$(row alloc_once empty-preload)"
read -r _ _ _ _ glibc_vmsize glibc_rss <<<"$(row alloc_once glibc)"
read -r _ _ _ _ hakmem_vmsize hakmem_rss <<<"$(row alloc_once hakmem)"
for n in "${glibc_vmsize}" "${glibc_rss}" "${hakmem_vmsize}" "${hakmem_rss}"; do
  [[ "${n}" =~ ^[0-9]+$ ]] || fail "not a number: '${n}'"
done
(( hakmem_vmsize - glibc_vmsize <= 8192 )) ||
  fail "alloc_once maps $(( hakmem_vmsize - glibc_vmsize )) KiB more under hakmem (limit 8192)"
(( hakmem_rss - glibc_rss <= 2048 )) ||
  fail "alloc_once touches $(( hakmem_rss - glibc_rss )) KiB more under hakmem (limit 2048)"
(( hakmem_vmsize > glibc_vmsize )) || fail "hakmem was not preloaded (VmSize equal to glibc's)"
(( empty_vmsize > glibc_vmsize )) || fail "the empty library was not preloaded (VmSize equal to glibc's)"
echo "PASS: alloc_once under hakmem: +$(( hakmem_vmsize - glibc_vmsize )) KiB mapped, +$(( hakmem_rss - glibc_rss )) KiB resident"

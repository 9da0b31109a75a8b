#!/usr/bin/env bash
# End-to-end test of //benchmarks:patterns at a small scale. Asserts no
# timing (the machine is noisy): only that every pattern ran under glibc and
# hakmem and printed a positive time, and the ratio column for hakmem.
set -euo pipefail

BIN="${TEST_SRCDIR}/${TEST_WORKSPACE}/benchmarks/patterns"
TMP="${TEST_TMPDIR:-$(mktemp -d)}"

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

"${BIN}" --reps=1 --scale=0.02 --allocator=hakmem >"${TMP}/out" 2>"${TMP}/err" ||
  { cat "${TMP}/err" >&2; fail "patterns exited with $?"; }
cat "${TMP}/out"

header="$(grep -E '^pattern ' "${TMP}/out")" || fail "no table header"
[[ "$(awk '{print $2, $3}' <<<"${header}")" == "glibc hakmem" ]] ||
  fail "columns are not glibc, hakmem: ${header}"
rows=0
while read -r line; do
  # The last three fields: glibc ns, hakmem ns, ratio ("-" without a peer).
  read -r glibc hakmem ratio <<<"$(awk '{print $(NF-2), $(NF-1), $NF}' <<<"${line}")"
  for n in "${glibc}" "${hakmem}"; do
    awk -v n="${n}" 'BEGIN { exit !(n + 0 > 0) }' || fail "not a positive time: '${n}' in: ${line}"
  done
  [[ "${ratio}" == "-" ]] || fail "a ratio without a peer: ${line}"
  rows=$((rows + 1))
done < <(grep -E '\((ns|us)/(pair|call|write|block)\)' "${TMP}/out")
(( rows == 26 )) || fail "expected 26 pattern rows, got ${rows}"
echo "PASS: ${rows} patterns ran under glibc and hakmem"

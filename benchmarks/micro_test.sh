#!/usr/bin/env bash
# Smoke test of //benchmarks:micro: every benchmark runs for both hakmem and
# glibc, without errors, and reports a throughput. No timing is asserted.
set -euo pipefail

BIN="${TEST_SRCDIR}/${TEST_WORKSPACE}/benchmarks/micro"
OUT="${TEST_TMPDIR}/micro.json"
"${BIN}" --benchmark_format=json --benchmark_out="${OUT}" >/dev/null

python3 - "${OUT}" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))["benchmarks"]
names = {r["name"].split("/")[0] for r in runs}
families = ["BM_MallocFree", "BM_BatchAllocFree", "BM_ReallocGrowth",
            "BM_AlignedAlloc", "BM_CrossThreadFree"]
for family in families:
    for alloc in ("Hakmem", "Glibc"):
        name = f"{family}<{alloc}>"
        assert name in names, f"missing {name}; have {sorted(names)}"
for r in runs:
    assert not r.get("error_occurred"), r
    assert r.get("items_per_second", 0) > 0, r
sizes = {r["name"].split("/")[1] for r in runs if r["name"].startswith("BM_MallocFree<Hakmem>")}
assert sizes == {"16", "64", "256", "1024", "4096", "32768"}, sizes
print(f"PASS: {len(runs)} micro-benchmark runs")
PY

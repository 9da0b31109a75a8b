#!/usr/bin/env bash
# End-to-end tests of //benchmarks:random_mixed with tiny iteration counts.
# Usage: random_mixed_test.sh CASE, where CASE is one of the functions
# test_<CASE> below (BUILD.bazel makes one sh_test per case). Nothing here
# asserts timing: only that runs happen, flags take effect, and outputs parse.
set -euo pipefail

BIN="${TEST_SRCDIR}/${TEST_WORKSPACE}/benchmarks/random_mixed"
TMP="${TEST_TMPDIR:-$(mktemp -d)}"
# Quick by default: one rep, no strace, no files unless a test asks.
QUICK=(--iters=20000 --reps=1 --syscalls=false --json_out=none --svg_out=none)

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# Marks the test skipped, visibly: in the log and in the JUnit XML.
skip() {
  echo "SKIPPED: $*" >&2
  if [[ -n "${XML_OUTPUT_FILE:-}" ]]; then
    cat >"${XML_OUTPUT_FILE}" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="${TEST_TARGET:-random_mixed_test}" tests="1" skipped="1">
<testcase name="$1" classname="random_mixed"><skipped message="$*"/></testcase>
</testsuite></testsuites>
EOF
  fi
  exit 0
}

# run NAME ARGS...: runs random_mixed; stdout in $TMP/NAME.out, stderr in
# $TMP/NAME.err; fails the test unless it exits 0.
run() {
  local name=$1
  shift
  if ! "${BIN}" "$@" >"${TMP}/${name}.out" 2>"${TMP}/${name}.err"; then
    cat "${TMP}/${name}.err" >&2
    fail "${name}: random_mixed $* exited with $?"
  fi
}

# run_json NAME ARGS...: like run, with JSON results in $TMP/NAME.json.
run_json() {
  local name=$1
  shift
  run "${name}" "${QUICK[@]}" --json_out="${TMP}/${name}.json" "$@"
}

# check FILE EXPR: evaluates a Python expression over the JSON in FILE (as
# `d`, with `lane` = the first lane and `row(name)` = its row for `name`).
check() {
  python3 - "$1" "$2" <<'EOF' || fail "$(basename "$1"): expected $2"
import json, sys
d = json.load(open(sys.argv[1]))
lane = d["lanes"][0]
def row(name, lane=lane):
    return next(r for r in lane["results"] if r["allocator"] == name)
ok = eval(sys.argv[2])
if not ok:
    print("  JSON:", json.dumps(d["lanes"], indent=1)[:3000], file=sys.stderr)
sys.exit(0 if ok else 1)
EOF
}

expect_grep() {  # FILE REGEX
  grep -Eq -- "$2" "$1" || { cat "$1" >&2; fail "$(basename "$1") lacks /$2/"; }
}

expect_no_grep() {  # FILE REGEX
  if grep -Eq -- "$2" "$1"; then cat "$1" >&2; fail "$(basename "$1") has /$2/"; fi
}

# ---- (a) a single row ---------------------------------------------------------
test_single_row() {
  run hakmem "${QUICK[@]}" --allocator=hakmem --profile=256
  expect_grep "${TMP}/hakmem.out" '^\[1/1\] 256: 20,000 iters, ws=400, 256 B, 1 thread$'
  expect_grep "${TMP}/hakmem.out" '^  hakmem +[0-9]+\.[0-9]{2} '
  expect_grep "${TMP}/hakmem.out" '^  floor \(no-op alloc\) +[0-9]+\.[0-9]{2} '
  expect_no_grep "${TMP}/hakmem.out" '^  (glibc|jemalloc|mimalloc|tcmalloc)'
  expect_grep "${TMP}/hakmem.err" '^\[lane 1/1 256\] hakmem rep 1/1 '

  run glibc "${QUICK[@]}" --allocator=glibc --profile=phase9
  expect_grep "${TMP}/glibc.out" '^  glibc +[0-9]+\.[0-9]{2} +1\.00 '
  expect_grep "${TMP}/glibc.out" 'Phase 9 \(other machine\): hakmem 9\.71M ops/s'
  expect_grep "${TMP}/glibc.out" '^  This machine: glibc [0-9]+\.[0-9]{2}M ops/s'

  # A child whose malloc is not the allocator it should measure refuses to
  # run (here: hakmem's child started without LD_PRELOAD).
  local status=0
  LD_PRELOAD= "${BIN}" --child --allocator=hakmem --profile=256 --iters=1000 \
    --hakmem_so="${TEST_SRCDIR}/${TEST_WORKSPACE}/hakmem/libhakmem.so" \
    >"${TMP}/child.out" 2>"${TMP}/child.err" || status=$?
  [[ ${status} -ne 0 ]] || fail "a child measuring the wrong malloc exited 0"
  expect_grep "${TMP}/child.err" 'allocator hakmem: malloc comes from .*libc\.so.*, expected .*libhakmem\.so'
  expect_no_grep "${TMP}/child.out" RESULT
}

# ---- (b) every flag has its effect ---------------------------------------------
test_flags() {
  # --iters, --ws, --seed reach the child; the warm-up follows --ws.
  run_json a --allocator=hakmem --profile=16-1024 --iters=12345 --ws=77 --seed=5
  check "${TMP}/a.json" 'lane["iters"] == 12345 and lane["ws"] == 77 and d["seed"] == 5'
  check "${TMP}/a.json" 'lane["warmup_iters"] == max(12345 // 10, 4 * 77)'
  check "${TMP}/a.json" 'all(r["reps"][0]["allocs"] + r["reps"][0]["frees"] == 12345 for r in lane["results"])'
  # The same seed replays the same sequence (bytes is its checksum) under
  # every allocator; another seed does not.
  run_json b --allocator=glibc --profile=16-1024 --iters=12345 --ws=77 --seed=5
  run_json c --allocator=hakmem --profile=16-1024 --iters=12345 --ws=77 --seed=6
  local bytes_a bytes_b
  bytes_a=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["lanes"][0]["results"][0]["reps"][0]["bytes"])' "${TMP}/a.json")
  bytes_b=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["lanes"][0]["results"][0]["reps"][0]["bytes"])' "${TMP}/b.json")
  [[ "${bytes_a}" == "${bytes_b}" ]] || fail "seed 5: hakmem bytes ${bytes_a} != glibc bytes ${bytes_b}"
  check "${TMP}/c.json" "row('hakmem')['reps'][0]['bytes'] != ${bytes_a}"

  # --profile picks lanes, in the order given; phase9 keeps its 100K.
  run p1 --reps=1 --syscalls=false --json_out="${TMP}/p1.json" --svg_out=none \
    --allocator=floor --profile=app,phase9
  check "${TMP}/p1.json" '[l["profile"] for l in d["lanes"]] == ["app", "phase9"]'
  check "${TMP}/p1.json" 'len(lane["size_bands"]) == 3 and d["lanes"][1]["iters"] == 100000'
  # --min_size/--max_size make a custom lane, and bound the sizes drawn.
  run_json custom --allocator=hakmem --min_size=100 --max_size=200
  check "${TMP}/custom.json" 'lane["profile"] == "custom" and lane["size_bands"] == [{"min_size": 100, "max_size": 200, "weight_pct": 100}]'
  check "${TMP}/custom.json" '100 * row("hakmem")["reps"][0]["allocs"] <= row("hakmem")["reps"][0]["bytes"] <= 200 * row("hakmem")["reps"][0]["allocs"]'

  # --threads and --remote_pct: remote frees happen at about that share.
  run_json remote --allocator=hakmem --profile=16-1024 --threads=2 --remote_pct=50
  check "${TMP}/remote.json" 'lane["threads"] == 2 and lane["remote_pct"] == 50'
  check "${TMP}/remote.json" '0.4 < row("hakmem")["reps"][0]["remote_frees"] / row("hakmem")["reps"][0]["frees"] < 0.6'
  run_json noremote --allocator=hakmem --profile=remote90 --remote_pct=0
  check "${TMP}/noremote.json" 'lane["threads"] == 2 and row("hakmem")["reps"][0]["remote_frees"] == 0'

  # --reps and --allocator (floor always joins).
  run_json reps --allocator=glibc,hakmem --profile=256 --reps=2
  check "${TMP}/reps.json" '[r["allocator"] for r in lane["results"]] == ["glibc", "hakmem", "floor"]'
  check "${TMP}/reps.json" 'all(len(r["reps"]) == 2 for r in lane["results"]) and d["reps"] == 2'

  # --hakmem_so: the child must really run the object named.
  local so
  so=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["hakmem_so"])' "${TMP}/a.json")
  cp "${so}" "${TMP}/libhakmem_copy.so"
  run_json so --allocator=hakmem --profile=256 --hakmem_so="${TMP}/libhakmem_copy.so"
  check "${TMP}/so.json" "row('hakmem')['malloc_from'] == '$(realpath "${TMP}/libhakmem_copy.so")'"

  # The hakmem knobs become the child's HAKMEM_* variables (HAKMEM_VERBOSE
  # echoes them) and change what the caches do. Big blocks, each class's
  # slab a whole SuperSlab, and two threads, so a worker's SuperSlabs empty
  # when it exits: 33-34 of them in every run. (With 4096-32768 B blocks
  # how many emptied by then depended on timing: 0 to 7, and 0 in 2 runs of
  # 100, failing the eviction checks.)
  local knob_lane=(--allocator=hakmem --profile=32769-262144 --threads=2 --print_child_stats)
  run_json knobs_default "${knob_lane[@]}"
  expect_grep "${TMP}/knobs_default.err" 'HAKMEM_SUPERSLAB_MAX_CACHED=256 '
  expect_grep "${TMP}/knobs_default.err" '^  superslabs cached: [1-9]'
  expect_grep "${TMP}/knobs_default.err" '^  superslabs evicted: 0$'
  local knob
  for knob in superslab_max_cached superslab_ttl_sec superslab_max_memory_mb; do
    run_json "knob_${knob}" "${knob_lane[@]}" "--${knob}=0"
    local var="HAKMEM_${knob^^}"
    expect_grep "${TMP}/knob_${knob}.err" "${var}=0 "
    expect_grep "${TMP}/knob_${knob}.err" '^  superslabs cached: 0$'
    expect_grep "${TMP}/knob_${knob}.err" '^  superslabs evicted: [1-9]'
    check "${TMP}/knob_${knob}.json" "d['hakmem_env'] == {'${var}': 0}"
  done
  # Within the resident budget nothing is madvised; with none and no decay,
  # each SuperSlab cached gives its pages back at once.
  expect_grep "${TMP}/knobs_default.err" '^  madvise calls: 0$'
  run_json knob_resident "${knob_lane[@]}" --superslab_resident_mb=0 --superslab_decay_ms=0 \
    --superslab_demand_window_sec=0
  expect_grep "${TMP}/knob_resident.err" 'HAKMEM_SUPERSLAB_RESIDENT_MB=0 '
  expect_grep "${TMP}/knob_resident.err" 'HAKMEM_SUPERSLAB_DECAY_MS=0 '
  expect_grep "${TMP}/knob_resident.err" 'HAKMEM_SUPERSLAB_DEMAND_WINDOW_SEC=0 '
  expect_grep "${TMP}/knob_resident.err" '^  madvise calls: [1-9]'
  run_json knobs_both "${knob_lane[@]}" --superslab_max_cached=0 --superslab_ttl_sec=0
  expect_grep "${TMP}/knobs_both.err" '^  superslabs evicted: [1-9]'
  # Large blocks: up to 16 MiB, in the extent heap's chunks; with it off,
  # regions of their own, of which the default cache keeps some, a 0 MiB
  # cache none.
  local extent_lane=(--allocator=hakmem --min_size=300000 --max_size=400000 --print_child_stats)
  run_json large_extents "${extent_lane[@]}"
  expect_grep "${TMP}/large_extents.err" '^  extent chunks: [1-9]'
  expect_grep "${TMP}/large_extents.err" '^  large blocks cached: 0$'
  local large_lane=("${extent_lane[@]}" --large_extents=0)
  run_json large_default "${large_lane[@]}"
  expect_grep "${TMP}/large_default.err" 'HAKMEM_LARGE_EXTENTS=0 '
  expect_grep "${TMP}/large_default.err" '^  extent chunks: 0$'
  expect_grep "${TMP}/large_default.err" '^  large blocks cached: [1-9]'
  run_json large_zero "${large_lane[@]}" --large_cache_max_mb=0
  expect_grep "${TMP}/large_zero.err" 'HAKMEM_LARGE_CACHE_MAX_MB=0 '
  expect_grep "${TMP}/large_zero.err" '^  large blocks cached: 0$'
  expect_grep "${TMP}/large_zero.err" '^  large cache hits: 0$'
  # The knobs are hakmem's: other allocators' children don't get them.
  run_json knob_glibc --allocator=glibc --profile=256 --superslab_max_cached=0 --print_child_stats
  expect_no_grep "${TMP}/knob_glibc.err" 'HAKMEM_'

  # --syscalls=false skips the strace runs.
  check "${TMP}/a.json" 'not row("hakmem")["syscalls"]["measured"] and not d["syscall_runs"]["requested"]'
}

# ---- (c) bad flag values fail clearly --------------------------------------------
test_bad_flags() {
  local -a cases=(
    "--ws=-3|--ws=-3 is out of range"
    "--ws=abc|Illegal value 'abc' specified for flag 'ws'"
    "--iters=0|--iters=0 is out of range"
    "--reps=0|--reps=0 is out of range"
    "--threads=0|--threads=0 is out of range"
    "--remote_pct=101|--remote_pct=101 is out of range"
    "--profile=256 --remote_pct=50|lane 256: 50% remote frees need another thread"
    "--profile=remote50 --threads=1|lane remote50: 50% remote frees need another thread"
    "--profile=nonsense|--profile=nonsense: unknown profile 'nonsense'"
    "--allocator=foo|--allocator=foo: unknown allocator 'foo'"
    "--min_size=0|--min_size=0 is out of range"
    "--min_size=300 --max_size=200|--min_size=300 is larger than --max_size=200"
    "--profile=256 --min_size=64|--min_size/--max_size only apply to --profile=custom"
    "--superslab_ttl_sec=abc|Illegal value 'abc' specified for flag 'superslab_ttl_sec'"
    "--superslab_max_cached=-1|--superslab_max_cached=-1 is out of range"
    "--superslab_max_cached=99999999999|--superslab_max_cached=99999999999 is out of range"
    "--superslab_max_memory_mb=-5|--superslab_max_memory_mb=-5 is out of range"
    "--large_cache_max_mb=x|Illegal value 'x' specified for flag 'large_cache_max_mb'"
    "--seed=-1|Illegal value '-1' specified for flag 'seed'"
    "--syscall_iters=0|--syscall_iters=0 is out of range"
    "--hakmem_so=/nonexistent/libhakmem.so|--hakmem_so=/nonexistent/libhakmem.so: no such file"
    "--no_such_flag=1|Unknown command line flag 'no_such_flag'"
    "stray|unexpected argument 'stray'"
  )
  local entry args message status
  for entry in "${cases[@]}"; do
    args=${entry%%|*}
    message=${entry#*|}
    status=0
    # shellcheck disable=SC2086  # args is a word list on purpose
    "${BIN}" --allocator=hakmem --iters=1000 --reps=1 --syscalls=false \
      --json_out=none --svg_out=none ${args} >"${TMP}/bad.out" 2>"${TMP}/bad.err" || status=$?
    [[ ${status} -ne 0 ]] || fail "'${args}' exited 0"
    grep -qF -- "${message}" "${TMP}/bad.err" ||
      { cat "${TMP}/bad.err" >&2; fail "'${args}': stderr lacks '${message}'"; }
    [[ ! -s "${TMP}/bad.out" ]] || fail "'${args}' printed results"
    echo "ok: ${args} -> exit ${status}: $(grep -F -- "${message}" "${TMP}/bad.err" | head -1)"
  done
}

# ---- (d) JSON and SVG are written and parse --------------------------------------
test_outputs() {
  run outputs "${QUICK[@]}" --allocator=hakmem,glibc --profile=256,app \
    --json_out="${TMP}/out/r.json" --svg_out="${TMP}/out/r.svg"
  python3 - "${TMP}/out/r.json" "${TMP}/out/r.svg" <<'EOF' || fail "outputs do not parse"
import json, math, sys, xml.etree.ElementTree as ET
d = json.load(open(sys.argv[1]))
assert d["benchmark"] == "random_mixed" and d["machine"]["nproc"] >= 1, d["machine"]
assert [l["profile"] for l in d["lanes"]] == ["256", "app"]
for lane in d["lanes"]:
    names = [r["allocator"] for r in lane["results"]]
    assert names == ["hakmem", "glibc", "floor"], names
    for r in lane["results"]:
        assert r["ops_per_sec"] > 0 and math.isfinite(r["ns_per_op"]), r
        assert r["peak_rss_mib"] > 0, r
    glibc = lane["results"][1]
    assert glibc["ratio_to_glibc"] == 1, glibc
    assert lane["results"][2]["ratio_to_glibc"] is None  # the floor has none
svg = ET.parse(sys.argv[2]).getroot()
assert svg.tag.endswith("svg"), svg.tag
ns = "{http://www.w3.org/2000/svg}"
texts = " ".join(t.text or "" for t in svg.iter(ns + "text"))
assert "nproc" in texts and d["machine"]["cpu_model"] in texts, texts
assert "hakmem" in texts and "glibc" in texts and "256" in texts and "app" in texts, texts
bars = [r for r in svg.iter(ns + "rect") if r.find(ns + "title") is not None]
assert len(bars) == 4, len(bars)  # 2 lanes x (hakmem, glibc); no floor bar
print("outputs ok:", len(d["lanes"]), "lanes,", len(bars), "bars")
EOF
  # A partial run (here: one lane, one allocator, few iterations) writes no
  # default results: it must never overwrite the published full run's.
  mkdir -p "${TMP}/ws"
  (cd "${TMP}" && BUILD_WORKSPACE_DIRECTORY="${TMP}/ws" "${BIN}" --iters=20000 \
    --reps=1 --syscalls=false --allocator=glibc --profile=256 >/dev/null 2>&1) ||
    fail "default output paths: run failed"
  [[ ! -e "${TMP}/ws/results" ]] || fail "a partial run wrote $(ls "${TMP}/ws/results")"
  # "none" writes nothing.
  mkdir -p "${TMP}/none"
  (cd "${TMP}/none" && "${BIN}" "${QUICK[@]}" --allocator=glibc --profile=256 >/dev/null 2>&1) ||
    fail "--json_out=none: run failed"
  [[ -z "$(ls -A "${TMP}/none")" ]] || fail "--json_out=none wrote $(ls -A "${TMP}/none")"
}

# ---- comparison allocators (Debian packages) ------------------------------------
test_comparison() {
  local so
  for so in /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \
    /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 /usr/lib/x86_64-linux-gnu/libmimalloc.so.2; do
    [[ -f "${so}" ]] || skip comparison "${so} is missing (tools/setup.sh installs it)"
  done
  run_json all --allocator=all --profile=256
  local label
  for label in hakmem glibc 'tcmalloc \(gperftools\)' jemalloc mimalloc 'floor \(no-op alloc\)'; do
    expect_grep "${TMP}/all.out" "^  ${label} +[0-9]+\.[0-9]{2} "
  done
  expect_grep "${TMP}/all.out" '=> hakmem: [0-9.]+x best peer'
  # Each child verified it ran the intended allocator; the JSON shows which.
  check "${TMP}/all.json" '"libtcmalloc_minimal" in row("tcmalloc")["malloc_from"]'
  check "${TMP}/all.json" '"libjemalloc" in row("jemalloc")["malloc_from"] and "libmimalloc" in row("mimalloc")["malloc_from"]'
  check "${TMP}/all.json" '"libc.so" in row("glibc")["malloc_from"] and row("hakmem")["malloc_from"].endswith("libhakmem.so")'
  check "${TMP}/all.json" 'lane["best_peer"] in ("tcmalloc", "jemalloc", "mimalloc") and row("hakmem")["ratio_to_best_peer"] > 0'
}

# ---- syscall counts (strace) -------------------------------------------------------
test_syscalls() {
  command -v strace >/dev/null || [[ -x /usr/bin/strace ]] ||
    skip syscalls "strace is not installed (tools/setup.sh installs it)"
  strace -f -o /dev/null true 2>/dev/null ||
    skip syscalls "strace cannot trace here (ptrace not permitted)"
  run sys --iters=50000 --reps=1 --json_out="${TMP}/sys.json" --svg_out=none \
    --syscall_iters=20000 --allocator=hakmem,glibc --profile=256
  expect_grep "${TMP}/sys.out" 'mmap +munmap +madvise +mincore +brk'
  expect_grep "${TMP}/sys.out" '^  hakmem .* [0-9]+/[0-9]+ '
  check "${TMP}/sys.json" 'd["syscall_runs"]["requested"] and all(r["syscalls"]["measured"] and r["syscalls"]["iters"] == 20000 for r in lane["results"])'
  # The loader maps libraries: every process count has mmaps; the loop's
  # counts are a part of the process's.
  check "${TMP}/sys.json" 'all(r["syscalls"]["process"]["mmap"] > 0 for r in lane["results"])'
  check "${TMP}/sys.json" 'all(r["syscalls"]["in_loop"][k] <= r["syscalls"]["process"][k] for r in lane["results"] for k in r["syscalls"]["process"])'
  # A loop that must map: hakmem with no extent heap and no large-block
  # cache maps and unmaps every large block; the in-loop counts must see it.
  run big --iters=2000 --reps=1 --json_out="${TMP}/big.json" --svg_out=none \
    --allocator=hakmem --min_size=17000000 --max_size=18000000 --large_cache_max_mb=0 \
    --large_extents=0
  check "${TMP}/big.json" 'row("hakmem")["syscalls"]["in_loop"]["mmap"] >= 500 and row("hakmem")["syscalls"]["in_loop"]["munmap"] >= 500'
  check "${TMP}/big.json" 'row("floor")["syscalls"]["in_loop"]["mmap"] == 0'
}

case="${1:-}"
declare -F "test_${case}" >/dev/null || fail "unknown case '${case}'"
"test_${case}"
echo "PASS: ${case}"

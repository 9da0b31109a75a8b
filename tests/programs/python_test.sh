#!/bin/bash
# python3 under LD_PRELOAD: dict/list/string/bigint/json workload, output
# checked against known values and against a run without hakmem.
# Under bazel test the script runs from the runfiles tree as tests/<target>.
here="${TEST_SRCDIR:+$TEST_SRCDIR/$TEST_WORKSPACE/tests/programs}"
source "${here:-$(dirname "$0")}/common.sh"
PY=/usr/bin/python3

cat >"$TMP/work.py" <<'PY'
import collections, gc, hashlib, json, random, sys

# hakmem is mapped into this process.
print("hakmem mapped:", any("libhakmem.so" in l for l in open("/proc/self/maps")))

d = {}
for i in range(300000):
    k = "key%d" % (i * 7919 % 100003)
    d[k] = d.get(k, 0) + i
print("dict:", len(d), sum(d.values()))
assert len(d) == 100003 and sum(d.values()) == sum(range(300000))

parts = [str(x) * (x % 17) for x in range(60000)]
s = "".join(parts)
print("string:", len(s), hashlib.sha256(s.encode()).hexdigest()[:16])
assert s.count("7") == sum(str(x).count("7") * (x % 17) for x in range(60000))

random.seed(12345)
words = ["".join(random.choice("abcdefgh") for _ in range(random.randint(1, 12)))
         for _ in range(150000)]
c = collections.Counter(words)
srt = sorted(words)
assert all(srt[i] <= srt[i + 1] for i in range(len(srt) - 1))
print("words:", len(c), c.most_common(2))

blob = json.dumps({"k%d" % i: [i, str(i), {"x": i * 1.5}] for i in range(50000)})
back = json.loads(blob)
assert back["k49999"] == [49999, "49999", {"x": 74998.5}]
print("json:", len(blob))

if hasattr(sys, "set_int_max_str_digits"):
    sys.set_int_max_str_digits(100000)
f = 1
for i in range(1, 3000):
    f *= i
print("factorial digits:", len(str(f)))
assert len(str(f)) == 9128

# Reference cycles, collected by the GC.
class Node:
    def __init__(self, v):
        self.v, self.peer = v, None
nodes = [Node(i) for i in range(200000)]
for a, b in zip(nodes, nodes[1:]):
    a.peer, b.peer = b, a
del nodes, a, b
print("gc:", gc.collect() > 0)
print("done")
PY

run_preloaded work "$PY" "$TMP/work.py"
run_plain work "$PY" "$TMP/work.py"
expect_line work "hakmem mapped: True"
expect_line work "dict: 100003 44999850000"
expect_line work "factorial digits: 9128"
expect_line work "gc: True"
expect_line work "done"
# Same results without hakmem (apart from the mapping line).
sed -i '1d' "$TMP/work.ref"; sed -i '1d' "$TMP/work.out"
same_output work
finish

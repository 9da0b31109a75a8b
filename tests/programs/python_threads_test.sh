#!/bin/bash
# python3 with threads under LD_PRELOAD: objects made in one thread and
# freed in another (queues), a thread pool, and short-lived threads.
# Under bazel test the script runs from the runfiles tree as tests/<target>.
here="${TEST_SRCDIR:+$TEST_SRCDIR/$TEST_WORKSPACE/tests/programs}"
source "${here:-$(dirname "$0")}/common.sh"
PY=/usr/bin/python3

cat >"$TMP/threads.py" <<'PY'
import concurrent.futures, queue, threading

N_PRODUCERS, N_ITEMS = 4, 20000
q = queue.Queue(maxsize=1000)
totals = []
lock = threading.Lock()

def producer(p):
    for i in range(N_ITEMS):
        q.put({"p": p, "i": i, "payload": [str(i)] * (i % 20), "s": "x" * (i % 300)})
    q.put(None)

def consumer():
    total = done = 0
    while done < N_PRODUCERS:
        item = q.get()
        if item is None:
            done += 1
            continue
        assert len(item["payload"]) == item["i"] % 20
        assert item["s"] == "x" * (item["i"] % 300)
        total += item["i"]
    with lock:
        totals.append(total)

threads = [threading.Thread(target=producer, args=(p,)) for p in range(N_PRODUCERS)]
threads.append(threading.Thread(target=consumer))
for t in threads: t.start()
for t in threads: t.join()
print("queue total:", sum(totals))

def work(n):
    d = {i: str(i) * 3 for i in range(n)}
    return sum(len(v) for v in d.values())
with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
    results = list(ex.map(work, range(1000, 1200)))
print("pool:", sum(results))

# Many short-lived threads.
out = []
def short(i):
    out.append(len([j * j for j in range(i % 500)]))
for batch in range(20):
    ts = [threading.Thread(target=short, args=(batch * 50 + k,)) for k in range(50)]
    for t in ts: t.start()
    for t in ts: t.join()
print("short threads:", len(out), sum(out))
PY

run_preloaded threads "$PY" "$TMP/threads.py"
run_plain threads "$PY" "$TMP/threads.py"
# Expected values, worked out by hand:
#   queue: 4 producers x (0 + ... + 19999)
#   pool: sum over n = 1000..1199 of 3 * (digits of 0..n-1)
#       = 3 * (200 * 2890 + 4 * (0 + ... + 199)) = 1972800
#   short threads: 1000 threads, sum of i % 500 = 2 * (0 + ... + 499)
expect_line threads "queue total: $((4 * 20000 * 19999 / 2))"
expect_line threads "pool: 1972800"
expect_line threads "short threads: 1000 249500"
same_output threads
finish

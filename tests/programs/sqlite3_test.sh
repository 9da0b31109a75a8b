#!/bin/bash
# sqlite3 under LD_PRELOAD: 5000 single-row INSERTs, indexes, queries with
# known answers, UPDATE/DELETE/VACUUM and an integrity check.
# Under bazel test the script runs from the runfiles tree as tests/<target>.
here="${TEST_SRCDIR:+$TEST_SRCDIR/$TEST_WORKSPACE/tests/programs}"
source "${here:-$(dirname "$0")}/common.sh"
SQLITE=/usr/bin/sqlite3

# Row i (1..5000): name = 'name' || (i % 97), v = i*37 % 1000 (a permutation
# of 0..999 in every run of 1000 rows), payload = (i % 50 + 1) letters.
pad=abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwx
{
  echo "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v INTEGER, payload TEXT);"
  echo "BEGIN;"
  for ((i = 1; i <= 5000; i++)); do
    echo "INSERT INTO t VALUES($i, 'name$((i % 97))', $((i * 37 % 1000)), '${pad:0:$((i % 50 + 1))}');"
  done
  echo "COMMIT;"
  cat <<'SQL'
CREATE INDEX idx_v ON t(v);
CREATE INDEX idx_name ON t(name);
SELECT 'count', count(*) FROM t;
SELECT 'sum', sum(v) FROM t;
SELECT 'small', count(*) FROM t WHERE v < 100;
SELECT 'names', count(DISTINCT name) FROM t;
SELECT 'name5', count(*) FROM t WHERE name = 'name5';
SELECT 'join', count(*) FROM t a JOIN t b ON a.v = b.v;
EXPLAIN QUERY PLAN SELECT id FROM t WHERE v = 5;
UPDATE t SET payload = payload || payload WHERE v % 2 = 0;
SELECT 'payload', sum(length(payload)) FROM t;
DELETE FROM t WHERE id % 3 = 0;
SELECT 'after delete', count(*) FROM t;
VACUUM;
PRAGMA integrity_check;
SELECT 'group', name, count(*), sum(v) FROM t GROUP BY name ORDER BY name LIMIT 3;
SQL
} >"$TMP/work.sql"

# Expected payload total: every row's length, doubled where v (so i) is even.
payload=0
for ((i = 1; i <= 5000; i++)); do
  l=$((i % 50 + 1))
  payload=$((payload + (i % 2 == 0 ? 2 * l : l)))
done

rm -f "$TMP/preload.db" "$TMP/plain.db"
run_preloaded work "$SQLITE" -batch "$TMP/preload.db" <"$TMP/work.sql"
run_plain work "$SQLITE" -batch "$TMP/plain.db" <"$TMP/work.sql"
expect_line work "count|5000"
expect_line work "sum|2497500"
expect_line work "small|500"
expect_line work "names|97"
expect_line work "name5|52"
expect_line work "join|25000"
expect_line work "payload|$payload"
expect_line work "after delete|3334"
expect_line work "ok"
grep -q "USING .*INDEX idx_v" "$TMP/work.out" || fail "query plan does not use idx_v"
same_output work
finish

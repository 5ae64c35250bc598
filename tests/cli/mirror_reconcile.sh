#!/usr/bin/env bash
# `sluice mirror reconcile` and mirror workers against a real PostgreSQL.
#
# A store namespace of 20,000 keys is mirrored by two workers (each with its
# own position row, shown by status); rows are then deleted from, altered
# in, tombstoned in and added to the target table behind the mirror's back.
# A dry run reports exactly those and changes nothing; a reconciliation
# whose source fails halfway (its node answers items with 503 through a
# fault proxy) changes nothing; the real one repairs exactly those, the
# table then equals the namespace, and the bytes exchanged stay far below
# a listing and grow with the number of differences; one killed with
# SIGKILL while it repairs leaves what it committed counted in its run's
# row, and the next run repairs the rest. An NDJSON source (a
# window) gets its missing and altered rows back and its extra rows flagged
# missing_in_source_since, never deleted; a window that cannot be read to
# its end changes nothing. Changing the number of workers starts the new
# position rows at the slowest old one.
set -euo pipefail
. "$(dirname "$0")/common.bash"
. "$(dirname "$0")/pipeline_common.bash"
. "$(dirname "$0")/sync_common.bash"

command -v python3 >/dev/null || fail "python3 is needed"
trap 'cleanup_children; stop_services' EXIT
services_up pg

KEYS=20000
model="$TMP/model"
store="$TMP/store"

# mconfig FILE TABLE SOURCE_LINES [MIRROR_LINES]
mconfig() {
	{
		echo "[source]"
		printf '%s\n' "$3"
		echo "[postgres]"
		echo "url = \"$SLUICE_PG_URL\""
		echo "table = \"$2\""
		echo "[mirror]"
		echo "batch_ms = 20"
		if [ -n "${4:-}" ]; then printf '%s\n' "$4"; fi
	} >"$1"
}

# key|hex(value) of every live row of TABLE, sorted.
live_rows() {
	sql "SELECT key || '|' || encode(value, 'hex') FROM $1 WHERE NOT deleted" | LC_ALL=C sort
}

# Every column that matters of TABLE, to see that nothing changed.
all_rows() {
	sql "SELECT key || '|' || version || '|' || deleted || '|' || coalesce(encode(value, 'hex'), '')
	     || '|' || coalesce(missing_in_source_since::text, '') FROM $1" | LC_ALL=C sort
}

# key|hex(value) of every file under the model directory, sorted.
model_rows() {
	python3 - "$model" <<'PY' | LC_ALL=C sort
import os, sys
root = sys.argv[1]
for d, _, files in os.walk(root):
    for name in files:
        path = os.path.join(d, name)
        with open(path, "rb") as f:
            print("%s|%s" % (os.path.relpath(path, root), f.read().hex()))
PY
}

same() {
	if [ "$2" != "$3" ]; then
		diff <(echo "$2") <(echo "$3") | head -20 >&2 || true
		fail "$1"
	fi
}

jfield() { jq -r ".$2" <<<"$1"; }

# ---------------------------------------------------------------- the source
python3 - "$model" "$KEYS" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "doc", "%02d" % (i % 50))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, str(i)), "w") as f:
        f.write("value %d\n" % i)
PY
expect 0 "$SLUICE" init -d "$store"
expect 0 "$SLUICE" ns create kv --kind mutable -d "$store"
expect 0 "$SLUICE" import -d "$store" kv "$model"
mconfig "$TMP/store.toml" rec_items "type = \"node\"
dir = \"$store\"
namespace = \"kv\"" "workers = 2"

# ------------------------------------------------------------------- workers
expect 0 "$SLUICE" mirror run -c "$TMP/store.toml"
expect_in "$OUT" "2 workers" "mirror run with two workers"
same "two workers: the table differs from the namespace" "$(model_rows)" "$(live_rows rec_items)"
expect 0 "$SLUICE" mirror status -c "$TMP/store.toml" --json
[ "$(jq '.workers | length' <<<"$OUT")" = 2 ] || fail "status of two workers: $OUT"
[ "$(jq '[.workers[].applied] | add' <<<"$OUT")" -ge "$KEYS" ] || fail "workers applied: $OUT"
jq -e '.workers[0].source | endswith("#part=0/2")' <<<"$OUT" >/dev/null || fail "worker names: $OUT"
end=$(jq '.workers[0].head' <<<"$OUT")

# ------------------------------------------------------- behind the mirror
sql "DELETE FROM rec_items WHERE key IN ('doc/00/0', 'doc/01/1', 'doc/02/2', 'doc/03/3', 'doc/04/4');
     UPDATE rec_items SET value = 'altered' WHERE key IN ('doc/05/5', 'doc/06/6', 'doc/07/7');
     UPDATE rec_items SET value = 'altered', version = version - 1 WHERE key = 'doc/08/8';
     UPDATE rec_items SET deleted = true, value = NULL WHERE key = 'doc/09/9';
     INSERT INTO rec_items (key, value, version, deleted) VALUES
       ('extra/1', 'x', 1, false), ('extra/2', 'y', 2, false), ('extra/3', 'z', 3, false)"
before=$(all_rows rec_items)

expect 0 "$SLUICE" mirror reconcile -c "$TMP/store.toml" --dry-run --json
r=$OUT
[ "$(jfield "$r" added)/$(jfield "$r" changed)/$(jfield "$r" removed)" = 6/4/3 ] ||
	fail "dry run: expected 6 added, 4 changed, 3 removed: $r"
[ "$(jfield "$r" run_id)" = null ] || fail "a dry run recorded a run: $r"
# the columns reconciliation adds were added, nothing else changed
same "a dry run changed the table" "$before" "$(all_rows rec_items)"

# A source that fails halfway: its node answers the reconciliation but not
# the items.
start_server src "$store"
printf 'error503 /items' >"$TMP/control"
start_proxy "${PORT[src]}" "$TMP/control"
mconfig "$TMP/node.toml" rec_items "type = \"node\"
url = \"127.0.0.1:$PROXY_PORT\"
namespace = \"kv\"" "workers = 2"
expect 1 "$SLUICE" mirror reconcile -c "$TMP/node.toml"
expect_in "$ERR" "503" "a reconciliation through a failing node"
same "a failed reconciliation changed the table" "$before" "$(all_rows rec_items)"
[ "$(sql "SELECT count(*) FROM sluice_mirror_reconcile")" = 0 ] ||
	fail "a failed reconciliation recorded a run"

# Through the node (the proxy passing everything now).
printf 'pass' >"$TMP/control"
expect 0 "$SLUICE" mirror reconcile -c "$TMP/node.toml" --json
r=$OUT
[ "$(jfield "$r" added)/$(jfield "$r" changed)/$(jfield "$r" removed)/$(jfield "$r" written)" = 6/4/3/13 ] ||
	fail "reconcile: expected 6 added, 4 changed, 3 removed, 13 written: $r"
same "after reconcile: the table differs from the namespace" "$(model_rows)" "$(live_rows rec_items)"
[ "$(sql "SELECT count(*) FROM rec_items WHERE key LIKE 'extra/%' AND deleted AND version = $end")" = 3 ] ||
	fail "the extra rows are not tombstones at the source's end ($end)"
[ "$(sql "SELECT applied FROM sluice_mirror_reconcile WHERE finished_at IS NOT NULL")" = 13 ] ||
	fail "the run's row: $(sql "SELECT * FROM sluice_mirror_reconcile")"
bytes13=$(( $(jfield "$r" bytes_sent) + $(jfield "$r" bytes_received) ))
listing=$((KEYS * 32))
[ "$bytes13" -lt $((listing / 10)) ] ||
	fail "13 differences cost $bytes13 bytes; a listing of the ids alone is $listing"

expect 0 "$SLUICE" mirror reconcile -c "$TMP/store.toml" --json
[ "$(jfield "$OUT" added)/$(jfield "$OUT" changed)/$(jfield "$OUT" removed)" = 0/0/0 ] ||
	fail "a second reconcile found differences: $OUT"
bytes0=$(( $(jfield "$OUT" bytes_sent) + $(jfield "$OUT" bytes_received) ))

# 130 differences cost more than 13, and still far less than a listing.
sql "UPDATE rec_items SET value = 'again' WHERE key IN (SELECT key FROM rec_items WHERE key LIKE 'doc/1%' AND NOT deleted ORDER BY key LIMIT 130)"
expect 0 "$SLUICE" mirror reconcile -c "$TMP/store.toml" --json
[ "$(jfield "$OUT" changed)" = 130 ] || fail "expected 130 changed: $OUT"
bytes130=$(( $(jfield "$OUT" bytes_sent) + $(jfield "$OUT" bytes_received) ))
[ "$bytes0" -lt "$bytes13" ] && [ "$bytes13" -lt "$bytes130" ] && [ "$bytes130" -lt $((listing / 2)) ] ||
	fail "bytes do not follow the differences: 0: $bytes0, 13: $bytes13, 130: $bytes130 (listing $listing)"
echo "mirror_reconcile.sh: bytes exchanged for 0, 13, 130 differences among $KEYS keys: $bytes0, $bytes13, $bytes130"
same "after 130 repairs" "$(model_rows)" "$(live_rows rec_items)"

# Killed with SIGKILL while it repairs (batches of 10, each held up by its
# apply_sql): what committed is counted in its run's row, which never
# finished, and a run again repairs the rest.
echo 'SELECT pg_sleep(0.1);' >"$TMP/slow.sql"
sed 's/^batch_ms = 20/batch_ms = 20\nbatch_size = 10/' "$TMP/store.toml" >"$TMP/slow.toml"
sed -i 's|^table = "rec_items"|table = "rec_items"\napply_sql = "slow.sql"|' "$TMP/slow.toml"
sql "UPDATE rec_items SET value = 'killed' WHERE key IN (SELECT key FROM rec_items WHERE key LIKE 'doc/2%' AND NOT deleted ORDER BY key LIMIT 100)"
"$SLUICE" mirror reconcile -c "$TMP/slow.toml" >/dev/null 2>&1 &
pid=$!
CHILD_PIDS+=("$pid")
repairing() { [ "$(sql "SELECT coalesce(max(applied), 0) FROM sluice_mirror_reconcile WHERE finished_at IS NULL")" -gt 0 ]; }
wait_until 30 repairing || fail "the slow reconcile did not start repairing"
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
# The killed client's last statement (apply_sql, then COMMIT) may still
# run on the server: wait for its session to end, then read in one snapshot.
killed_gone() { [ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(0.1)%' AND pid <> pg_backend_pid()")" = 0 ]; }
wait_until 30 killed_gone || fail "the killed reconcile's session did not end"
IFS='|' read -r left done_rows <<<"$(sql "SELECT (SELECT count(*) FROM rec_items WHERE value = 'killed'),
	(SELECT applied FROM sluice_mirror_reconcile WHERE finished_at IS NULL)")"
echo "mirror_reconcile.sh: killed after $done_rows repairs, $left left"
[ "$((left + done_rows))" = 100 ] || fail "committed repairs ($done_rows) and rows left ($left) do not add up to 100"
expect 0 "$SLUICE" mirror reconcile -c "$TMP/store.toml" --json
[ "$(jfield "$OUT" changed)" = "$left" ] || fail "after the kill, expected $left changed: $OUT"
same "after a killed reconcile and another" "$(model_rows)" "$(live_rows rec_items)"

# --------------------------------------------- the number of workers changes
expect 0 "$SLUICE" put -d "$store" kv doc/00/0 <<<"later"
echo "later" >"$model/doc/00/0"
slowest=$(sql "SELECT min(pos) FROM sluice_mirror_position WHERE source LIKE 'store:%#part=%/2'")
sed -i 's/^workers = 2/workers = 3/' "$TMP/store.toml"
expect 0 "$SLUICE" mirror run -c "$TMP/store.toml"
expect_in "$OUT" "3 workers" "mirror run with three workers"
[ "$(sql "SELECT count(*) FROM sluice_mirror_position WHERE source LIKE 'store:%#part=%/3'")" = 3 ] ||
	fail "three workers, three rows: $(sql "SELECT source, pos FROM sluice_mirror_position")"
# They started at the slowest old row: only the put's operations were read
# (a put in a mutable namespace also moves a few old keys forward), not the
# whole log again.
applied=$(sed -n 's/^mirror run: \([0-9]*\) events applied.*/\1/p' <<<"$OUT")
[ -n "$applied" ] && [ "$applied" -ge 1 ] && [ "$applied" -lt 20 ] ||
	fail "three workers after two applied ${applied:-?} events: $OUT"
[ "$slowest" -gt 0 ] || fail "no old position"
same "three workers" "$(model_rows)" "$(live_rows rec_items)"

# -------------------------------------------------------- a window (NDJSON)
python3 - "$TMP/events.ndjson" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(300):
        f.write(json.dumps({"key": "w/%d" % (i % 100), "value": "v%d" % i}) + "\n")
PY
mconfig "$TMP/win.toml" win_items "type = \"ndjson\"
path = \"$TMP/events.ndjson\""
expect 0 "$SLUICE" mirror run -c "$TMP/win.toml"
want=$(live_rows win_items)
sql "DELETE FROM win_items WHERE key IN ('w/1', 'w/2', 'w/3');
     UPDATE win_items SET value = 'altered' WHERE key IN ('w/4', 'w/5');
     INSERT INTO win_items (key, value, version, deleted) VALUES ('gone/1', 'a', 1, false), ('gone/2', 'b', 1, false)"
expect 0 "$SLUICE" mirror reconcile -c "$TMP/win.toml" --json
r=$OUT
[ "$(jfield "$r" kind)/$(jfield "$r" added)/$(jfield "$r" changed)/$(jfield "$r" flagged)/$(jfield "$r" missing_in_source)" = window/3/2/2/2 ] ||
	fail "window reconcile: $r"
[ "$(jfield "$r" source_events)" = 300 ] || fail "window: events read: $r"
same "window: the rows in the source" "$want" "$(live_rows win_items | grep -v '^gone/')"
[ "$(sql "SELECT count(*) FROM win_items WHERE key LIKE 'gone/%' AND NOT deleted AND missing_in_source_since IS NOT NULL")" = 2 ] ||
	fail "the rows not in the window are not flagged (or were deleted)"
flagged_at=$(sql "SELECT min(missing_in_source_since) FROM win_items")
expect 0 "$SLUICE" mirror reconcile -c "$TMP/win.toml" --json
[ "$(jfield "$OUT" added)/$(jfield "$OUT" changed)/$(jfield "$OUT" flagged)/$(jfield "$OUT" missing_in_source)" = 0/0/0/2 ] ||
	fail "second window reconcile: $OUT"
[ "$(sql "SELECT min(missing_in_source_since) FROM win_items")" = "$flagged_at" ] ||
	fail "a second run moved the time the rows were first missed"

# A window that cannot be read to its end changes nothing.
sql "DELETE FROM win_items WHERE key = 'w/7'"
echo '{"key": "w/1", "op": "explode"}' >>"$TMP/events.ndjson"
before=$(all_rows win_items)
expect 1 "$SLUICE" mirror reconcile -c "$TMP/win.toml"
expect_in "$ERR" "line 301" "a window with a bad line"
same "a failed window reconciliation changed the table" "$before" "$(all_rows win_items)"
echo "mirror_reconcile.sh: ok"

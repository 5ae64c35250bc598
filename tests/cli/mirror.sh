#!/usr/bin/env bash
# `sluice mirror` against a real PostgreSQL: every config error refused
# with file, line and key before anything is touched; an NDJSON file of
# sets, updates and deletes (keys repeated, versions out of order) leaves
# the target table equal to a model computed here, a second run changes
# nothing and appended lines are applied alone; a local store's namespace
# is mirrored exactly; an apply_sql handler sees every event once; status
# and dlq say what they should (status also with the source away); a
# poison event goes to the dead letters and `dlq retry` applies it once
# fixed; `start` follows a growing file and serves every metric the docs
# name; a second mirror of the same source is fenced (exit 3).
set -euo pipefail
. "$(dirname "$0")/common.bash"
. "$(dirname "$0")/pipeline_common.bash"

command -v python3 >/dev/null || fail "python3 is needed to compute the model"
START_PID=
cleanup() {
	[ -n "$START_PID" ] && kill -9 "$START_PID" 2>/dev/null
	stop_services
	rm -rf "$TMP"
}
trap cleanup EXIT

SEED=${SEED:-$RANDOM}
echo "mirror.sh: seed $SEED"
services_up pg

# mconfig FILE TABLE SOURCE_LINES [POSTGRES_LINES] [MIRROR_LINES]
mconfig() {
	local file=$1 table=$2 source=$3 pg=${4:-} mirror=${5:-}
	{
		echo "[source]"
		printf '%s\n' "$source"
		echo "[postgres]"
		echo "url = \"$SLUICE_PG_URL\""
		echo "table = \"$table\""
		if [ -n "$pg" ]; then printf '%s\n' "$pg"; fi
		echo "[mirror]"
		echo "batch_ms = 20"
		if [ -n "$mirror" ]; then printf '%s\n' "$mirror"; fi
	} >"$file"
}

# The rows of a target table, one "key|version|deleted|hex(value)" a line.
rows_of() {
	sql "SELECT key || '|' || version || '|' || CASE WHEN deleted THEN 't' ELSE 'f' END || '|' || coalesce(encode(value, 'hex'), '')
	     FROM $1" | LC_ALL=C sort
}

# gen_events FILE FIRST N SEED: N lines of NDJSON (a few blank), keys k/0..k/39
# and two with bytes that are not UTF-8, versions unique per key but out of
# order (explicit ones far above the positions, the rest pos + 1).
gen_events() {
	python3 - "$@" <<'PY'
import base64, json, random, sys
path, first, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed * 1000003 + first)
with open(path, "a") as f:
    for pos in range(first, first + n):
        if rng.random() < 0.03:
            f.write("\n")
            continue
        ev = {"key": "k/%d" % rng.randrange(40)}
        op = rng.choice(["set", "update", "update", "delete"])
        if op != "set" or rng.random() < 0.5:
            ev["op"] = op
        if op != "delete":
            if rng.random() < 0.2:
                ev["value_b64"] = base64.b64encode(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))).decode()
            else:
                ev["value"] = "v%d-%s" % (pos, "é" * rng.randrange(3))
        if rng.random() < 0.7:
            # unique: the position decides the low digits
            ev["version"] = 10**9 + rng.randrange(10**6) * 10**5 + pos
        f.write(json.dumps(ev, ensure_ascii=False) + "\n")
PY
}

# The model of a target table after every line of FILE: per key the event
# of the highest version; a delete is a tombstone (or no row: MODE remove).
model_of() {
	(python3 - "$1" "${2:-tombstone}" <<'PY'
import base64, json, sys
rows = {}
with open(sys.argv[1], encoding="utf-8") as f:
    for pos, line in enumerate(f):
        if not line.strip():
            continue
        ev = json.loads(line)
        version = ev.get("version", pos + 1)
        if ev["key"] in rows and rows[ev["key"]][0] >= version:
            continue
        if "value_b64" in ev:
            value = base64.b64decode(ev["value_b64"])
        elif "value" in ev:
            value = ev["value"].encode()
        else:
            value = None
        rows[ev["key"]] = (version, ev.get("op") == "delete", value)
for key, (version, deleted, value) in rows.items():
    if deleted and sys.argv[2] == "remove":
        continue
    print("%s|%d|%s|%s" % (key, version, "t" if deleted else "f", "" if deleted else value.hex()))
PY
	) | LC_ALL=C sort
}

same_rows() {
	local what=$1 want=$2 got=$3
	if [ "$want" != "$got" ]; then
		diff <(echo "$want") <(echo "$got") | head -20 >&2 || true
		fail "$what: the target table differs from the model"
	fi
}

# -------------------------------------------------------------- help, usage
expect 0 "$SLUICE" mirror --help
expect_in "$OUT" "Commands:" "mirror --help"
for sub in run start status dlq; do
	expect 0 "$SLUICE" mirror $sub --help
	expect_in "$OUT" "Usage: sluice mirror $sub" "mirror $sub --help"
done
expect 2 "$SLUICE" mirror
expect 2 "$SLUICE" mirror nosuch
expect_in "$ERR" "sluice: mirror: unknown command 'nosuch'" "mirror nosuch"
expect 2 "$SLUICE" mirror run extra
expect 2 "$SLUICE" mirror dlq again -c /nonexistent

# ------------------------------------------------------------ config errors
# Each is refused (exit 1, as every config error of sluice) naming the file,
# the line and the key, and touches nothing.
printf '{"key": "a", "value": "x"}\n' >"$TMP/one.ndjson"
echo "SELECT 1;" >"$TMP/ok.sql"
SRC_NDJSON="type = \"ndjson\"
path = \"$TMP/one.ndjson\""
bad=0
refused() { # WANT_IN_MESSAGE SOURCE_LINES [POSTGRES_LINES] [MIRROR_LINES]
	bad=$((bad + 1))
	mconfig "$TMP/bad$bad.toml" bad_items "$2" "${3:-}" "${4:-}"
	expect 1 "$SLUICE" mirror run -c "$TMP/bad$bad.toml"
	expect_in "$ERR" "bad$bad.toml:" "bad config $bad names the file"
	expect_in "$ERR" "$1" "bad config $bad"
}
refused "[source] colour: unknown key" "$SRC_NDJSON
colour = 1"
refused "bad2.toml:7: [postgres] tabel: unknown key" "$SRC_NDJSON" 'tabel = "x"'
refused "[mirror] batch_size: expected an integer, got a string" "$SRC_NDJSON" "" 'batch_size = "10"'
refused "[mirror] max_attempts: 0 is out of range" "$SRC_NDJSON" "" "max_attempts = 0"
refused "[postgres] timeout_ms: 5 is out of range" "$SRC_NDJSON" "timeout_ms = 5"
refused "[mirror] metrics_port: 70000 is out of range" "$SRC_NDJSON" "" "metrics_port = 70000"
refused '[source] type: expected "node", "ndjson", "redis" or "kafka", got "bogus"' 'type = "bogus"'
refused "[source] type: missing" 'path = "x"'
refused "[source] namespace: not used with type = \"ndjson\"" "$SRC_NDJSON
namespace = \"ns\""
refused "[source] url: missing" "type = \"node\"
namespace = \"events\""
refused "[source] dir: set either url or dir, not both" "type = \"node\"
url = \"127.0.0.1:1\"
dir = \"$TMP/nostore\"
namespace = \"events\""
refused "[source] namespace: missing" "type = \"node\"
url = \"127.0.0.1:1\""
refused "[source] trust_key: expected 64 hex digits" "type = \"node\"
url = \"127.0.0.1:1\"
namespace = \"events\"
trust_key = \"abcd\""
refused "[source] trust_key: expected 64 hex digits" "type = \"node\"
url = \"127.0.0.1:1\"
namespace = \"events\"
trust_key = \"$(printf 'g%.0s' $(seq 64))\""
refused "[source] trust_key: only used with url" "type = \"node\"
dir = \"$TMP/nostore\"
namespace = \"events\"
trust_key = \"$(printf 'ab%.0s' $(seq 32))\""
refused "[postgres] deletes: expected \"tombstone\" or \"remove\"" "$SRC_NDJSON" 'deletes = "drop"'
refused "[postgres] apply_sql: cannot open" "$SRC_NDJSON" 'apply_sql = "no-such-handler.sql"'
refused "[mirror] retry_base_ms: retry_base_ms (9000) is more than retry_max_ms (5000)" "$SRC_NDJSON" "" "retry_base_ms = 9000"
refused "[sink]: unknown table" "$SRC_NDJSON
[sink]
x = 1"
# [postgres] url missing: written by hand
printf '[source]\n%s\n[postgres]\ntable = "t"\n' "$SRC_NDJSON" >"$TMP/nourl.toml"
expect 1 "$SLUICE" mirror run -c "$TMP/nourl.toml"
expect_in "$ERR" "nourl.toml:4: [postgres] url: missing" "missing url"
# the default config file, absent
(cd "$TMP" && expect 1 "$SLUICE" mirror run && expect_in "$ERR" "sluice-mirror.toml" "default config")
# the same refusals from status and dlq
expect 1 "$SLUICE" mirror status -c "$TMP/bad1.toml"
expect 1 "$SLUICE" mirror dlq -c "$TMP/bad1.toml"
[ "$(sql "SELECT to_regclass('sluice_mirror_position') IS NULL AND to_regclass('bad_items') IS NULL")" = t ] ||
	fail "a refused config created a table"

# status of a mirror that never ran: no tables made
mconfig "$TMP/never.toml" never_items "$SRC_NDJSON"
expect 0 "$SLUICE" mirror status -c "$TMP/never.toml"
expect_in "$OUT" "none yet (never run)" "status before a run"
expect 0 "$SLUICE" mirror status -c "$TMP/never.toml" --json
[ "$(jq -r '.exists' <<<"$OUT")" = false ] || fail "status --json before a run: $OUT"
[ "$(sql "SELECT to_regclass('sluice_mirror_position') IS NULL")" = t ] || fail "status created a table"

# -------------------------------------------------- ndjson, with a handler
sql "CREATE TABLE mirror_counter (id int PRIMARY KEY, n bigint NOT NULL);
     INSERT INTO mirror_counter VALUES (1, 0), (2, 0)"
echo "UPDATE mirror_counter SET n = n + (SELECT count(*) FROM sluice_batch) WHERE id = 1;" >"$TMP/count.sql"
gen_events "$TMP/events.ndjson" 0 400 "$SEED"
# apply_sql is relative to the config's directory; the run starts elsewhere
mconfig "$TMP/nd.toml" nd_items "type = \"ndjson\"
path = \"$TMP/events.ndjson\"" 'apply_sql = "count.sql"' "batch_size = 37"
lines=$(wc -l <"$TMP/events.ndjson")
events=$(grep -c . "$TMP/events.ndjson")
(cd / && expect 0 "$SLUICE" mirror run -c "$TMP/nd.toml" && echo "$OUT" >"$TMP/run1.out")
expect_in "$(cat "$TMP/run1.out")" "$events events applied" "ndjson run summary"
expect_in "$(cat "$TMP/run1.out")" "0 dead letters, position $lines" "ndjson run position"
same_rows "ndjson run" "$(model_of "$TMP/events.ndjson")" "$(rows_of nd_items)"
[ "$(sql "SELECT n FROM mirror_counter WHERE id = 1")" = "$events" ] || fail "the handler counted $(sql "SELECT n FROM mirror_counter WHERE id = 1"), not $events"

# again: nothing changes
before=$(sql "SELECT key, version, deleted, md5(coalesce(value, '')), updated_at FROM nd_items ORDER BY key")
expect 0 "$SLUICE" mirror run -c "$TMP/nd.toml"
expect_in "$OUT" "0 events applied in 0 batches, 0 dead letters, position $lines" "second run"
[ "$before" = "$(sql "SELECT key, version, deleted, md5(coalesce(value, '')), updated_at FROM nd_items ORDER BY key")" ] ||
	fail "a second run changed the table"
[ "$(sql "SELECT n FROM mirror_counter WHERE id = 1")" = "$events" ] || fail "a second run ran the handler on events"

# appended lines: only they are applied
gen_events "$TMP/events.ndjson" "$lines" 60 "$SEED"
lines2=$(wc -l <"$TMP/events.ndjson")
events2=$(grep -c . "$TMP/events.ndjson")
expect 0 "$SLUICE" mirror run -c "$TMP/nd.toml"
expect_in "$OUT" "$((events2 - events)) events applied" "run after appending"
expect_in "$OUT" "position $lines2" "position after appending"
same_rows "ndjson appended" "$(model_of "$TMP/events.ndjson")" "$(rows_of nd_items)"
[ "$(sql "SELECT n FROM mirror_counter WHERE id = 1")" = "$events2" ] || fail "the handler's count after appending"

# deletes = "remove": the same events, another table
cp "$TMP/events.ndjson" "$TMP/events-rm.ndjson"
mconfig "$TMP/rm.toml" rm_items "type = \"ndjson\"
path = \"$TMP/events-rm.ndjson\"" 'deletes = "remove"' "batch_size = 1000"
expect 0 "$SLUICE" mirror run -c "$TMP/rm.toml"
same_rows "deletes = remove" "$(model_of "$TMP/events-rm.ndjson" remove)" "$(rows_of rm_items)"

# status and dlq after the runs
expect 0 "$SLUICE" mirror status -c "$TMP/nd.toml" --json
[ "$(jq -r '[.exists, .position, .applied, .lag_events, .dead_letters, .last_error] | @csv' <<<"$OUT")" = \
	"true,$lines2,$events2,0,0," ] || fail "status --json after the runs: $OUT"
[ "$(jq -r '.lag_seconds' <<<"$OUT")" != null ] || fail "status --json: no lag_seconds: $OUT"
[ "$(jq -r '.updated_at' <<<"$OUT")" != null ] || fail "status --json: no updated_at: $OUT"
expect 0 "$SLUICE" mirror status -c "$TMP/nd.toml"
expect_in "$OUT" "position      $lines2" "status text position"
expect_in "$OUT" "behind        0 events" "status text lag"
expect_in "$OUT" "dead letters  0" "status text dead letters"
# the source away: status still answers, by the name the source had
mv "$TMP/events.ndjson" "$TMP/events.away"
expect 0 "$SLUICE" mirror status -c "$TMP/nd.toml" --json
[ "$(jq -r '[.position, .lag_events] | @csv' <<<"$OUT")" = "$lines2," ] || fail "status with the source away: $OUT"
expect_in "$(jq -r .lag_unknown <<<"$OUT")" "source not reachable" "status with the source away"
expect 0 "$SLUICE" mirror status -c "$TMP/nd.toml"
expect_in "$OUT" "behind        unknown (source not reachable" "status text with the source away"
mv "$TMP/events.away" "$TMP/events.ndjson"
expect 0 "$SLUICE" mirror dlq -c "$TMP/nd.toml"
expect_in "$OUT" "no dead letters" "dlq after clean runs"
expect 0 "$SLUICE" mirror dlq -c "$TMP/nd.toml" --json
[ "$OUT" = "[]" ] || fail "dlq --json after clean runs: $OUT"

# -------------------------------------------------------- a local store
store="$TMP/srcstore"
expect 0 "$SLUICE" init -d "$store"
expect 0 "$SLUICE" ns create kv --kind mutable -d "$store"
for i in $(seq 1 30); do
	printf 'value %s of %s' "$i" "$SEED" | "$SLUICE" put -d "$store" kv "doc/$i"
done
for i in 3 7 11; do "$SLUICE" del -d "$store" kv "doc/$i"; done
printf 'again' | "$SLUICE" put -d "$store" kv doc/7
printf '\x00\xff\xfe' | "$SLUICE" put -d "$store" kv bin/1
# The model from the log: per key, its last operation, version loc + 1.
store_model() {
	"$SLUICE" log -d "$store" kv --json | python3 -c '
import json, subprocess, sys
last = {}
for line in sys.stdin:
    op = json.loads(line)
    if op["key"] is not None:
        last[op["key"]] = op
for key, op in last.items():
    deleted = op["op"] == "delete"
    value = b"" if deleted else subprocess.run([sys.argv[1], "get", "-d", sys.argv[2], "kv", key], check=True, capture_output=True).stdout
    print("%s|%d|%s|%s" % (key, op["loc"] + 1, "t" if deleted else "f", value.hex()))
' "$SLUICE" "$store" | LC_ALL=C sort
}
mconfig "$TMP/store.toml" store_items "type = \"node\"
dir = \"$store\"
namespace = \"kv\""
expect 0 "$SLUICE" mirror run -c "$TMP/store.toml"
same_rows "store source" "$(store_model)" "$(rows_of store_items)"
for i in 1 2; do "$SLUICE" del -d "$store" kv "doc/$i"; done
printf 'later' | "$SLUICE" put -d "$store" kv doc/3
expect 0 "$SLUICE" mirror run -c "$TMP/store.toml"
same_rows "store source, incremental" "$(store_model)" "$(rows_of store_items)"
expect 0 "$SLUICE" mirror status -c "$TMP/store.toml" --json
[ "$(jq -r '.lag_events' <<<"$OUT")" = 0 ] || fail "store source status: $OUT"

# ------------------------------------------------------- a poison event
python3 - "$TMP/poison.ndjson" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(20):
        ev = {"key": "p/%d" % i, "value": "ok %d" % i}
        if i == 6:
            ev = {"key": "bad", "value": "poison text", "version": 77}
        if i == 13:
            ev = {"key": "bad/bin", "value_b64": "AP/+", "version": 88}
        f.write(json.dumps(ev) + "\n")
PY
cat >"$TMP/poison.sql" <<'SQL'
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM sluice_batch WHERE key LIKE 'bad%') THEN RAISE EXCEPTION 'bad key'; END IF;
END $$;
UPDATE mirror_counter SET n = n + (SELECT count(*) FROM sluice_batch) WHERE id = 2;
SQL
mconfig "$TMP/poison.toml" poison_items "type = \"ndjson\"
path = \"$TMP/poison.ndjson\"" "apply_sql = \"$TMP/poison.sql\"" "max_attempts = 2
retry_base_ms = 1
retry_max_ms = 10"
expect 0 "$SLUICE" mirror run -c "$TMP/poison.toml"
expect_in "$OUT" "18 events applied" "poison run"
expect_in "$OUT" "2 dead letters, position 20" "poison run dead letters"
[ "$(sql "SELECT count(*) FROM poison_items WHERE key LIKE 'p/%'")" = 18 ] || fail "the good events of the poison run"
[ "$(sql "SELECT count(*) FROM poison_items WHERE key LIKE 'bad%'")" = 0 ] || fail "a poison event reached the table"
[ "$(sql "SELECT n FROM mirror_counter WHERE id = 2")" = 18 ] || fail "the handler's count with poison"
expect 0 "$SLUICE" mirror dlq -c "$TMP/poison.toml" --json
[ "$(jq -c '[.[] | [.key, .op, .position, .version, .attempts, .sqlstate, .payload, .payload_b64]]' <<<"$OUT")" = \
	'[["bad","set",6,77,2,"P0001","poison text",null],["bad/bin","set",13,88,2,"P0001",null,"AP/+"]]' ] ||
	fail "dlq --json: $OUT"
jq -e 'all(.[]; (.error | contains("bad key")) and .first_failure != null and .last_failure != null and .id > 0)' <<<"$OUT" >/dev/null ||
	fail "dlq --json errors and times: $OUT"
bad_id=$(jq -r '.[0].id' <<<"$OUT")
expect 0 "$SLUICE" mirror dlq -c "$TMP/poison.toml"
expect_in "$OUT" "key=bad	op=set	version=77	attempts=2	sqlstate=P0001" "dlq text"
expect_in "$OUT" "payload=poison text" "dlq text payload"
expect_in "$OUT" "payload_b64=AP/+" "dlq text binary payload"
expect 0 "$SLUICE" mirror status -c "$TMP/poison.toml" --json
[ "$(jq -r .dead_letters <<<"$OUT")" = 2 ] || fail "status dead letters: $OUT"
# retried while the handler still refuses: fails again, attempts grow
expect 1 "$SLUICE" mirror dlq retry "$bad_id" -c "$TMP/poison.toml"
expect_in "$OUT" "0 applied, 1 failed again" "dlq retry refused"
[ "$(sql "SELECT attempts > 2 FROM sluice_dead_letter WHERE id = $bad_id")" = t ] || fail "attempts after a failed retry"
# the handler fixed: one, then the rest
sed -i '/^DO/,/^END/d' "$TMP/poison.sql"
expect 0 "$SLUICE" mirror dlq retry "$bad_id" -c "$TMP/poison.toml"
expect_in "$OUT" "1 applied, 0 failed again" "dlq retry ID"
expect 0 "$SLUICE" mirror dlq retry -c "$TMP/poison.toml" --json
[ "$(jq -c . <<<"$OUT")" = '{"applied":1,"failed":0}' ] || fail "dlq retry --json: $OUT"
expect 0 "$SLUICE" mirror dlq -c "$TMP/poison.toml" --json
[ "$OUT" = "[]" ] || fail "dlq after retry: $OUT"
[ "$(sql "SELECT n FROM mirror_counter WHERE id = 2")" = 20 ] || fail "the handler's count after retry"
[ "$(sql "SELECT key || ':' || version || ':' || encode(value, 'hex') FROM poison_items WHERE key LIKE 'bad%' ORDER BY key")" = \
	"$(printf 'bad:77:%s\nbad/bin:88:00fffe' "$(printf 'poison text' | xxd -p)")" ] || fail "the retried rows"
expect 0 "$SLUICE" mirror run -c "$TMP/poison.toml"
expect_in "$OUT" "0 events applied in 0 batches, 0 dead letters, position 20" "run after retry"

# ------------------------------------------------------------- start
gen_events "$TMP/follow.ndjson" 0 50 "$SEED"
mconfig "$TMP/follow.toml" follow_items "type = \"ndjson\"
path = \"$TMP/follow.ndjson\""
SLUICE_LOG=info "$SLUICE" mirror start -c "$TMP/follow.toml" -m 0 >"$TMP/start.out" 2>"$TMP/start.log" &
START_PID=$!
wait_until 20 grep -q 'msg="serving metrics"' "$TMP/start.log" || { cat "$TMP/start.log" >&2; fail "start did not serve metrics"; }
mport=$(sed -n 's/.*msg="serving metrics".*port=\([0-9]*\).*/\1/p' "$TMP/start.log" | head -1)
position_is() { [ "$("$SLUICE" mirror status -c "$TMP/follow.toml" --json | jq -r .position)" = "$1" ]; }
wait_until 30 position_is 50 || fail "start did not apply the file"
gen_events "$TMP/follow.ndjson" 50 30 "$SEED"
wait_until 30 position_is 80 || fail "start did not follow the file"
same_rows "start" "$(model_of "$TMP/follow.ndjson")" "$(rows_of follow_items)"
curl -sS "http://127.0.0.1:$mport/metrics" >"$TMP/metrics"
# the rows of the metrics table (other tables name sluice_mirror_* tables)
names=$(awk '/^\*\*Metrics\*\* \(`sluice mirror start/ { on = 1 } on && /^$/ && rows { exit }
	on && /^\| `sluice_mirror_/ { rows = 1; print }' "$SLUICE_SRC/docs/cli.md" |
	sed -n 's/^| `\(sluice_mirror_[a-z_0-9]*\)`.*/\1/p' | sort -u)
[ -n "$names" ] || fail "docs/cli.md names no mirror metric"
for m in $names; do
	grep -q "^$m" "$TMP/metrics" || fail "metric $m is not emitted"
done
grep -q '^sluice_mirror_position 80' "$TMP/metrics" || fail "sluice_mirror_position is not 80"
kill -TERM "$START_PID"
wait "$START_PID" || fail "start did not exit 0 on SIGTERM: $(cat "$TMP/start.log")"
START_PID=
expect_in "$(cat "$TMP/start.out")" "position 80" "start's summary"

# ------------------------------------------------------------- fenced
# The first mirror sleeps inside its batch's transaction; the second reads
# the same position, waits for the first's lock, and finds it moved.
printf '{"key": "f/%d", "value": "x"}\n' $(seq 1 10) >"$TMP/fence.ndjson"
echo "SELECT pg_sleep(3);" >"$TMP/sleep.sql"
mconfig "$TMP/fence.toml" fence_items "type = \"ndjson\"
path = \"$TMP/fence.ndjson\"" 'apply_sql = "sleep.sql"'
expect 0 "$SLUICE" mirror run -c "$TMP/fence.toml" # tables and position row exist
printf '{"key": "f/%d", "value": "y"}\n' $(seq 1 10) >>"$TMP/fence.ndjson"
"$SLUICE" mirror run -c "$TMP/fence.toml" >"$TMP/fence1.out" 2>&1 &
first=$!
sleeping() { [ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(3)%' AND pid <> pg_backend_pid()")" != 0 ]; }
wait_until 20 sleeping || fail "the first mirror did not start its batch"
expect 3 "$SLUICE" mirror run -c "$TMP/fence.toml"
expect_in "$ERR" "sluice: mirror run: fenced by another mirror" "fenced message"
wait "$first" || fail "the first mirror failed: $(cat "$TMP/fence1.out")"
[ "$(sql "SELECT count(*) FROM fence_items WHERE value = 'y'")" = 10 ] || fail "the first mirror's batch"
echo "mirror.sh: ok"

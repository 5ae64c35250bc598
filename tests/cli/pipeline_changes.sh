#!/usr/bin/env bash
# Changes mode ([database] mode = "changes") against a real PostgreSQL 15
# with wal_level = logical, and s3rver: the first copy, then inserts,
# updates (new bytes under the same key; a new key), deletes, a transaction
# mixing them all and a TRUNCATE reach a directory, an S3 bucket and a
# node namespace exactly; a row committed late with an application-set
# created_at in the past is copied; status shows the slot's lag; a missing
# slot, wal_level below logical and a role without REPLICATION each get
# their own message; reset drops the slot it made.
set -euo pipefail
. "$(dirname "$0")/common.bash"
. "$(dirname "$0")/sync_common.bash"
. "$(dirname "$0")/pipeline_common.bash"
trap 'stop_services; cleanup_children' EXIT

services_up pg s3
S3_ENDPOINT_FOR_SINK=$SLUICE_S3_ENDPOINT
create_table
add_rows 40

# write_changes_config FILE DEST SLOT
write_changes_config() {
	write_config "$1" "$2"
	sed -i "s|^url = \"$SLUICE_PG_URL\"|&\nmode = \"changes\"\nslot = \"$3\"|" "$1"
}
slot_exists() {
	[ "$(sql "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$1'")" = 1 ]
}
no_failures() {
	expect 0 "$SLUICE" status -c "$1" --json
	[ "$(jq -r '.failing + .parked' <<<"$OUT")" = 0 ] || {
		"$SLUICE" failed -c "$1" --all >&2 || true
		fail "failures left: $OUT"
	}
}

# ------------------------------------------------------------- clear refusals
# wal_level below logical: one message, nothing made. (Before any slot
# exists: a server with a logical slot refuses to start at wal_level replica.)
sql "ALTER SYSTEM SET wal_level = replica"
bash "$SLUICE_SRC/scripts/services.sh" restart-pg "$SVC_DIR" >/dev/null
write_changes_config "$TMP/dir.toml" "dir:$TMP/out" sluice_dir
expect 1 "$SLUICE" run -c "$TMP/dir.toml"
expect_in "$ERR" "changes mode needs wal_level = logical" "wal_level"
[ "$(sql "SELECT count(*) FROM pg_publication")" = 0 ] || fail "a publication was made anyway"
sql "ALTER SYSTEM RESET wal_level"
bash "$SLUICE_SRC/scripts/services.sh" restart-pg "$SVC_DIR" >/dev/null

# A role without REPLICATION.
sql "CREATE ROLE plain LOGIN; GRANT SELECT ON object_index TO plain"
write_changes_config "$TMP/plain.toml" "dir:$TMP/plain-out" sluice_plain
sed -i "s|postgresql://sluice@|postgresql://plain@|" "$TMP/plain.toml"
expect 1 "$SLUICE" run -c "$TMP/plain.toml"
expect_in "$ERR" "needs a role with the REPLICATION attribute, and role plain has not" "role"
! slot_exists sluice_plain || fail "a slot was made for a role that may not replicate"

# ------------------------------------------------------------- to a directory
expect 0 "$SLUICE" run -c "$TMP/dir.toml"
same_listing "first copy" "$(expected_listing)" "$(dir_listing "$TMP/out")"
slot_exists sluice_dir || fail "no slot after the first run"
[ "$(sql "SELECT count(*) FROM pg_publication_tables WHERE pubname = 'sluice_dir'")" = 1 ] ||
	fail "no publication of object_index"

# changes: the kinds one by one, then all in one transaction
change_all() {
	add_rows 10
	# new bytes under the same key
	sql "UPDATE object_index SET data = decode(md5(id::text || 'v2'), 'hex'), size_bytes = 16
	     WHERE id IN (SELECT id FROM object_index ORDER BY id LIMIT 5)"
	# a new key: agent_id changes
	sql "UPDATE object_index SET agent_id = gen_random_uuid()
	     WHERE id IN (SELECT id FROM object_index ORDER BY id OFFSET 5 LIMIT 3)"
	sql "DELETE FROM object_index WHERE id IN (SELECT id FROM object_index ORDER BY id OFFSET 8 LIMIT 4)"
	sql "BEGIN;
	     INSERT INTO object_index (id, data_type, data) VALUES (gen_random_uuid(), 'log', 'mixed');
	     UPDATE object_index SET data = 'again', size_bytes = 5 WHERE id = (SELECT id FROM object_index ORDER BY id OFFSET 12 LIMIT 1);
	     UPDATE object_index SET competition_id = gen_random_uuid() WHERE id = (SELECT id FROM object_index ORDER BY id OFFSET 13 LIMIT 1);
	     DELETE FROM object_index WHERE id = (SELECT id FROM object_index ORDER BY id OFFSET 14 LIMIT 1);
	     COMMIT"
}
before=$(dir_listing "$TMP/out")
change_all
expect 0 "$SLUICE" run -c "$TMP/dir.toml"
after=$(dir_listing "$TMP/out")
no_failures "$TMP/dir.toml"
same_listing "changes" "$(expected_listing)" "$after"
[ "$before" != "$after" ] || fail "the changes did not change the destination"
# the old keys of moved and deleted rows are gone (same_listing covers it;
# say it plainly too)
[ "$(wc -l <<<"$after")" = "$(sql "SELECT count(*) FROM object_index")" ] || fail "objects left behind"

# A row committed late, by a transaction that set created_at far in the past.
coproc LONG { psql "$SLUICE_PG_URL" -X -q -v ON_ERROR_STOP=1; }
long_pid=$LONG_PID # bash unsets LONG_PID once the coprocess has ended
echo "BEGIN; INSERT INTO object_index (id, data_type, data, created_at) VALUES ('99999999-9999-4999-8999-999999999999', 'trace', 'late', '2001-01-01 00:00:00+00');" >&"${LONG[1]}"
sleep 0.5
expect 0 "$SLUICE" run -c "$TMP/dir.toml" # catches up without it: not committed yet
echo "COMMIT;" >&"${LONG[1]}"
exec {LONG[1]}>&-
wait "$long_pid" || true # ended already: the copy check below tells
expect 0 "$SLUICE" run -c "$TMP/dir.toml"
[ "$(cat "$TMP/out/trace/99999999-9999-4999-8999-999999999999")" = late ] ||
	fail "the late row with an old created_at was not copied"
same_listing "late row" "$(expected_listing)" "$(dir_listing "$TMP/out")"

# A failure (a directory where the object goes) is recorded, does not hold
# the slot back, and `retry` stores it once the way is clear.
blocked=aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa
mkdir -p "$TMP/out/log/$blocked/in-the-way"
sql "INSERT INTO object_index (id, data_type, data, size_bytes) VALUES ('$blocked', 'log', 'blocked', 7)"
add_rows 2
expect 0 "$SLUICE" run -c "$TMP/dir.toml"
expect 0 "$SLUICE" failed -c "$TMP/dir.toml" --all
expect_in "$OUT" "$blocked" "failed lists the blocked object"
[ "$(dir_listing "$TMP/out" | wc -l)" = "$(($(sql "SELECT count(*) FROM object_index") - 1))" ] ||
	fail "the failure held the other rows back"
rm -rf "${TMP:?}/out/log/$blocked"
expect 0 "$SLUICE" retry -c "$TMP/dir.toml"
[ "$(cat "$TMP/out/log/$blocked")" = blocked ] || fail "retry did not store the object"
no_failures "$TMP/dir.toml"
expect 2 "$SLUICE" run -c "$TMP/dir.toml" --since 2020-01-01T00:00:00Z
expect_in "$ERR" "polling mode only" "--since in changes mode"

# status: the slot's lag, the position
add_rows 3
expect 0 "$SLUICE" status -c "$TMP/dir.toml" --json
[ "$(jq -r .mode <<<"$OUT")" = changes ] || fail "status mode: $OUT"
[ "$(jq -r .slot <<<"$OUT")" = sluice_dir ] || fail "status slot: $OUT"
[ "$(jq -r '.slot_lag_bytes > 0' <<<"$OUT")" = true ] || fail "no lag with rows waiting: $OUT"
expect 0 "$SLUICE" run -c "$TMP/dir.toml"
expect 0 "$SLUICE" status -c "$TMP/dir.toml"
expect_in "$OUT" "slot" "status text"
expect 0 "$SLUICE" status -c "$TMP/dir.toml" --json
[ "$(jq -r .copying <<<"$OUT")" = false ] || fail "still copying: $OUT"

# metrics: `start -m` in changes mode serves the slot's lag
SLUICE_LOG=info "$SLUICE" start -c "$TMP/dir.toml" --interval 200ms -m 0 >/dev/null 2>"$TMP/start.log" &
start_pid=$!
CHILD_PIDS+=("$start_pid") # killed on the way out if a check fails
wait_until 30 grep -q 'msg="serving metrics"' "$TMP/start.log" || fail "no metrics served: $(cat "$TMP/start.log")"
mport=$(sed -n 's/.*msg="serving metrics".* port=\([0-9]*\).*/\1/p' "$TMP/start.log" | head -1)
metric() { curl -sS --fail --max-time 10 "http://127.0.0.1:$mport/metrics" | awk -v n="$1" '$1 == n { print $2 }'; }
stored_at_least() { [ "$(metric sluice_pipeline_objects_stored_total)" -ge "$1" ]; }
has_metric() { [ -n "$(metric "$1")" ]; }
add_rows 4
wait_until 60 stored_at_least 4 ||
	fail "start did not store the new rows: $(curl -sS "http://127.0.0.1:$mport/metrics")"
wait_until 30 has_metric sluice_pipeline_slot_lag_bytes || fail "no slot lag metric"
kill -TERM "$start_pid"
wait "$start_pid" || fail "start did not exit 0 on SIGTERM"
same_listing "start" "$(expected_listing)" "$(dir_listing "$TMP/out")"

# ------------------------------------------------------------- S3 and a node
write_changes_config "$TMP/s3.toml" "s3:dest" sluice_s3
write_changes_config "$TMP/node.toml" "node:$TMP/node-store:objects" sluice_node
expect 0 "$SLUICE" run -c "$TMP/s3.toml"
expect 0 "$SLUICE" run -c "$TMP/node.toml"
change_all
expect 0 "$SLUICE" run -c "$TMP/s3.toml"
expect 0 "$SLUICE" run -c "$TMP/node.toml"
no_failures "$TMP/s3.toml"
no_failures "$TMP/node.toml"
same_listing "s3" "$(expected_listing)" "$(s3_listing dest)"
node_listing() {
	"$SLUICE" -d "$1" ls objects | LC_ALL=C sort | while read -r key; do
		echo "$key $("$SLUICE" -d "$1" get objects "$key" | sha256sum | cut -d' ' -f1)"
	done
}
same_listing "node" "$(expected_listing)" "$(node_listing "$TMP/node-store")"
expect 0 "$SLUICE" -d "$TMP/node-store" verify objects

# An immutable namespace cannot take deletes: refused at open.
expect 0 "$SLUICE" init -d "$TMP/frozen-store"
expect 0 "$SLUICE" -d "$TMP/frozen-store" ns create frozen --kind immutable
write_changes_config "$TMP/frozen.toml" "node:$TMP/frozen-store:frozen" sluice_frozen
expect 1 "$SLUICE" run -c "$TMP/frozen.toml"
expect_in "$ERR" "not mutable" "immutable namespace"

# ------------------------------------------------------------- TRUNCATE
sql "TRUNCATE object_index"
expect 0 "$SLUICE" run -c "$TMP/dir.toml"
[ -z "$(dir_listing "$TMP/out")" ] || fail "objects left after TRUNCATE: $(dir_listing "$TMP/out" | head -3)"
add_rows 5
expect 0 "$SLUICE" run -c "$TMP/dir.toml"
same_listing "after truncate" "$(expected_listing)" "$(dir_listing "$TMP/out")"

# ------------------------------------------------------------- the slot gone
sql "SELECT pg_drop_replication_slot('sluice_s3')" >/dev/null
expect 1 "$SLUICE" run -c "$TMP/s3.toml"
expect_in "$ERR" "replication slot sluice_s3 is gone" "missing slot"
expect_in "$ERR" "sluice reset" "missing slot remedy"

# ------------------------------------------------------------- reset
expect 0 "$SLUICE" reset -c "$TMP/dir.toml" --yes
! slot_exists sluice_dir || fail "reset left the slot it made"
expect_in "$OUT" "sluice_dir" "reset names the slot"
expect 0 "$SLUICE" run -c "$TMP/dir.toml"
same_listing "after reset" "$(expected_listing)" "$(dir_listing "$TMP/out")"
echo "pipeline_changes: ok"

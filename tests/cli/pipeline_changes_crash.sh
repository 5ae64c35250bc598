#!/usr/bin/env bash
# Changes mode under kill -9: a writer keeps inserting, updating (new bytes,
# new keys), deleting and mixing them in transactions while `sluice run`
# is killed at random moments, at least 20 times (runs that finish first
# do not count). After every kill the slot was never confirmed past the
# position the state saved (so nothing saved is ahead of what the server
# keeps); at the end a run to completion leaves the directory exactly equal
# to the table: no object missing, stale, or left behind after its row was
# deleted or moved to another key.
set -euo pipefail
. "$(dirname "$0")/common.bash"
. "$(dirname "$0")/sync_common.bash"
. "$(dirname "$0")/pipeline_common.bash"
trap 'stop_writer; stop_services; cleanup_children' EXIT

KILLS=${PIPELINE_CRASH_KILLS:-20}
MAX_RUNS=$((KILLS * 4))
SEED=${SLUICE_SEED:-$$}
RANDOM=$SEED
echo "pipeline_changes_crash: seed $SEED (rerun with SLUICE_SEED=$SEED)" >&2

services_up pg
create_table
add_rows 200
write_config "$TMP/crash.toml" "dir:$TMP/out" "batch_size = 20
concurrency = 3"
sed -i "s|^url = \"$SLUICE_PG_URL\"|&\nmode = \"changes\"|" "$TMP/crash.toml"

# The writer: random changes, each its own transaction or a mixed one.
writer() {
	local r=$1 i
	RANDOM=$r
	for i in $(seq 1 100000); do
		case $((RANDOM % 6)) in
		0 | 1) add_rows $((1 + RANDOM % 8)) ;;
		2) sql "UPDATE object_index SET data = decode(md5(random()::text), 'hex'), size_bytes = 16
		        WHERE id IN (SELECT id FROM object_index ORDER BY random() LIMIT 3)" ;;
		3) sql "UPDATE object_index SET agent_id = CASE WHEN agent_id IS NULL THEN gen_random_uuid() END
		        WHERE id IN (SELECT id FROM object_index ORDER BY random() LIMIT 2)" ;;
		4) sql "DELETE FROM object_index WHERE id IN (SELECT id FROM object_index ORDER BY random() LIMIT 3)" ;;
		5) sql "BEGIN;
		        INSERT INTO object_index (id, data_type, data, size_bytes) VALUES (gen_random_uuid(), 'log', decode(md5(random()::text), 'hex'), 16);
		        UPDATE object_index SET data = 'x' || data, size_bytes = size_bytes + 1 WHERE id = (SELECT id FROM object_index ORDER BY random() LIMIT 1);
		        UPDATE object_index SET competition_id = gen_random_uuid() WHERE id = (SELECT id FROM object_index ORDER BY random() LIMIT 1);
		        DELETE FROM object_index WHERE id = (SELECT id FROM object_index ORDER BY random() LIMIT 1);
		        COMMIT" ;;
		esac >/dev/null
		sleep 0.02
	done
}
WRITER=
stop_writer() {
	if [ -n "$WRITER" ]; then
		pkill -P "$WRITER" 2>/dev/null || true # its psql, or it outlives the server
		kill "$WRITER" 2>/dev/null || true
		wait "$WRITER" 2>/dev/null || true # killed: 143
	fi
	WRITER=
}
writer $RANDOM &
WRITER=$!

lsn_num() { # X/Y -> decimal
	local hi=${1%/*} lo=${1#*/}
	echo $(((16#$hi << 32) + 16#$lo))
}

killed=0 run=0 checked=0
# A run that catches up before its kill ends by itself; go on until KILLS
# runs were killed mid-way. The kill comes at a random moment within a
# window that halves after a run that ended first (a loaded machine makes
# the writer slow and the runs short) and grows back after a kill.
window_ms=700
while [ "$killed" -lt "$KILLS" ] && [ "$run" -lt "$MAX_RUNS" ]; do
	run=$((run + 1))
	"$SLUICE" run -c "$TMP/crash.toml" >"$TMP/run.log" 2>&1 &
	pid=$!
	sleep "$(awk -v ms=$((5 + RANDOM % window_ms)) 'BEGIN { printf "%.3f", ms / 1000 }')"
	if kill -9 "$pid" 2>/dev/null; then
		killed=$((killed + 1))
		window_ms=$((window_ms * 2 > 700 ? 700 : window_ms * 2))
	else
		window_ms=$((window_ms / 2 < 20 ? 20 : window_ms / 2))
	fi
	wait "$pid" 2>/dev/null || true
	# C1: the server never holds a position ahead of the state's.
	expect 0 "$SLUICE" status -c "$TMP/crash.toml" --json
	saved=$(jq -r '.lsn // ""' <<<"$OUT")
	confirmed=$(sql "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'sluice_object_index'")
	if [ -n "$saved" ] && [ -n "$confirmed" ] && [ "$saved" != "0/0" ]; then
		[ "$(lsn_num "$confirmed")" -le "$(lsn_num "$saved")" ] ||
			fail "run $run: the slot was confirmed at $confirmed, past the saved $saved"
		checked=$((checked + 1))
	fi
done
stop_writer
echo "pipeline_changes_crash: $killed of $run runs killed mid-way" >&2
[ "$killed" -ge "$KILLS" ] || fail "only $killed runs were killed; the test did not test"
# Until a run has saved its first position there is nothing to compare;
# most runs must have had one, or the check above checked nothing.
[ "$checked" -ge $((run / 2)) ] || fail "only $checked of $run runs had a position to check"

expect 0 "$SLUICE" run -c "$TMP/crash.toml"
[ "$(expected_listing)" = "$(dir_listing "$TMP/out")" ] ||
	"$SLUICE" failed -c "$TMP/crash.toml" --all >&2 || true
same_listing "after $killed kills" "$(expected_listing)" "$(dir_listing "$TMP/out")"
expect 0 "$SLUICE" status -c "$TMP/crash.toml" --json
[ "$(jq -r '.failing + .parked' <<<"$OUT")" = 0 ] || fail "failures left: $OUT"
echo "pipeline_changes_crash: ok ($(sql "SELECT count(*) FROM object_index") rows)"

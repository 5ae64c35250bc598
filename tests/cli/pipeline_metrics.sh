#!/usr/bin/env bash
# Pipeline metrics against a real PostgreSQL: `start -m` serves counters
# that follow the rows inserted while it runs (rows listed, objects and
# bytes stored, batch durations), a lag that rises while an open
# transaction holds new rows back and falls to 0 once they are copied, and
# the failures of an object the destination refuses; it exits 0 on
# SIGTERM. A failure parked by `retry` shows in the next process's gauges,
# while its counters start again from 0. `run -m` serves while its run is
# held at a gate (an advisory lock the source's view waits for), then
# finishes and exits 0. Nothing here depends on how long anything takes:
# every wait is for a state to be reached.
set -euo pipefail
. "$(dirname "$0")/common.bash"
. "$(dirname "$0")/sync_common.bash"
. "$(dirname "$0")/pipeline_common.bash"
trap 'stop_services; cleanup_children' EXIT

services_up pg
create_table

MPORT=
# wait_metrics LOG: the port a command logging to LOG serves metrics on.
wait_metrics() {
	wait_until 30 grep -q 'msg="serving metrics"' "$1" || { cat "$1" >&2; fail "no metrics served"; }
	MPORT=$(sed -n 's/.*msg="serving metrics".* port=\([0-9]*\).*/\1/p' "$1" | head -1)
}
scrape() {
	curl -sS --fail --max-time 10 "http://127.0.0.1:$MPORT/metrics" >"$TMP/metrics.tmp" &&
		mv "$TMP/metrics.tmp" "$TMP/metrics"
}
# value NAME: NAME's value in the last scrape (NAME with its labels, if any).
value() {
	awk -v n="$1" '$1 == n { v = $2; found = 1 } END { if (!found) exit 1; print v }' "$TMP/metrics"
}
# is NAME VALUE / above NAME VALUE: after a fresh scrape (for wait_until).
is() { scrape && [ "$(value "$1")" = "$2" ]; }
above() { scrape && awk -v v="$(value "$1")" -v w="$2" 'BEGIN { exit !(v + 0 > w + 0) }'; }
rows_in_table() { sql "SELECT count(*) FROM object_index"; }

# ---------------------------------------------------------------- start -m
write_config "$TMP/p.toml" "dir:$TMP/out" "retry_base_seconds = 3600"
expect 2 "$SLUICE" start -c "$TMP/p.toml" --interval 200ms -m notaport
expect_in "$ERR" "--metrics-port" "a bad port is named"

SLUICE_LOG=info "$SLUICE" start -c "$TMP/p.toml" --interval 200ms -m 0 >"$TMP/start.log" 2>&1 &
START_PID=$!
CHILD_PIDS+=("$START_PID")
wait_metrics "$TMP/start.log"
scrape || fail "no answer at /metrics"
# A port taken: refused before anything is copied.
write_config "$TMP/other.toml" "dir:$TMP/other-out"
expect 1 "$SLUICE" run -c "$TMP/other.toml" -m "$MPORT"
expect_in "$ERR" "metrics server" "a taken port is reported"
[ ! -e "$TMP/other-out" ] || [ -z "$(ls -A "$TMP/other-out")" ] || fail "copied with no metrics served"
for m in rows_listed_total:counter objects_stored_total:counter bytes_stored_total:counter \
	objects_failed_total:counter failures_retrying:gauge failures_parked:gauge lag_rows:gauge \
	lag_seconds:gauge batch_duration_seconds:histogram last_batch_timestamp_seconds:gauge \
	runs_completed_total:counter runs_failed_total:counter; do
	grep -qx "# TYPE sluice_pipeline_${m%%:*} ${m#*:}" "$TMP/metrics" ||
		fail "sluice_pipeline_${m%%:*} is not a ${m#*:}: $(cat "$TMP/metrics")"
done
[ "$(value sluice_pipeline_rows_listed_total)" = 0 ] || fail "rows listed before any row"
[ "$(value 'sluice_pipeline_batch_duration_seconds_bucket{le="+Inf"}')" = 0 ] || fail "a batch before any row"

# Rows arrive in rounds; each round is copied in at least one batch.
batches=0
caught_up() {
	scrape && [ "$(value sluice_pipeline_rows_listed_total)" = "$1" ] &&
		[ "$(value sluice_pipeline_objects_stored_total)" = "$1" ] &&
		[ "$(value sluice_pipeline_batch_duration_seconds_count)" -gt "$2" ]
}
for round in 1 2 3; do
	add_rows 30
	total=$(rows_in_table)
	wait_until 30 caught_up "$total" "$batches" || fail "round $round: not caught up: $(cat "$TMP/metrics")"
	batches=$(value sluice_pipeline_batch_duration_seconds_count)
	[ "$(value 'sluice_pipeline_batch_duration_seconds_bucket{le="+Inf"}')" = "$batches" ] ||
		fail "+Inf bucket and _count differ"
done
[ "$(value sluice_pipeline_bytes_stored_total)" = "$(sql "SELECT sum(length(data)) FROM object_index")" ] ||
	fail "bytes stored: $(value sluice_pipeline_bytes_stored_total)"
[ "$(value sluice_pipeline_objects_failed_total)" = 0 ] || fail "failures without a failing row"
above sluice_pipeline_last_batch_timestamp_seconds 1000000000 || fail "no last batch time"
above sluice_pipeline_runs_completed_total 0 || fail "no run completed"
[ "$(value sluice_pipeline_runs_failed_total)" = 0 ] || fail "a run failed"
wait_until 30 is sluice_pipeline_lag_rows 0 || fail "lag after catching up: $(value sluice_pipeline_lag_rows)"

# An open transaction holds newer rows back: the lag shows them, then
# falls to 0 once it commits and they are copied.
mkfifo "$TMP/txn.fifo"
psql "$SLUICE_PG_URL" -X -q -v ON_ERROR_STOP=1 <"$TMP/txn.fifo" >"$TMP/txn.log" 2>&1 &
TXN_PID=$!
CHILD_PIDS+=("$TXN_PID")
exec 7>"$TMP/txn.fifo"
echo "BEGIN; INSERT INTO object_index (id, data_type, data) VALUES ('00000000-0000-0000-0000-00000000fa7e', 'log', 'late');" >&7
txn_open() { [ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'")" = 1 ]; }
wait_until 10 txn_open || fail "the long transaction did not start"
add_rows 10
wait_until 30 is sluice_pipeline_lag_rows 10 || fail "lag while rows are held: $(cat "$TMP/metrics")"
above sluice_pipeline_lag_seconds 0 || fail "lag in seconds while rows are held: $(value sluice_pipeline_lag_seconds)"
echo "COMMIT;" >&7
exec 7>&-
wait "$TXN_PID"
total=$(rows_in_table)
wait_until 30 caught_up "$total" "$batches" || fail "rows not copied after the commit"
wait_until 30 is sluice_pipeline_lag_rows 0 || fail "lag after the commit: $(value sluice_pipeline_lag_rows)"
[ "$(value sluice_pipeline_lag_seconds)" = 0 ] || fail "lag in seconds with no row waiting"

# An object the destination refuses (a directory holds its name): counted,
# and retrying (retry_base_seconds keeps it waiting past this test).
FAILING=00000000-0000-0000-0000-0000000000e1
mkdir -p "$TMP/out/log/$FAILING/occupied"
sql "INSERT INTO object_index (id, data_type, data) VALUES ('$FAILING', 'log', 'refused')"
wait_until 30 is sluice_pipeline_objects_failed_total 1 || fail "the failure is not counted"
wait_until 30 is sluice_pipeline_failures_retrying 1 || fail "the failure is not retrying"
[ "$(value sluice_pipeline_failures_parked)" = 0 ] || fail "parked too soon"
[ "$(value sluice_pipeline_rows_listed_total)" = "$(rows_in_table)" ] || fail "the failing row was not listed"
[ "$(value sluice_pipeline_objects_stored_total)" = "$total" ] || fail "the failing object was counted stored"

kill -TERM "$START_PID"
wait "$START_PID" || fail "start did not exit 0 on SIGTERM: $(tail -5 "$TMP/start.log")"
expect_in "$(cat "$TMP/start.log")" "pipeline stopped" "start logs its stop"

# `retry` with one attempt allowed parks it.
write_config "$TMP/p.toml" "dir:$TMP/out" "retry_base_seconds = 3600
max_attempts = 1"
expect 0 "$SLUICE" retry -c "$TMP/p.toml"
expect_in "$OUT" "1 failed" "retry tried it again"

# ---------------------------------------------------------------- run -m, held at a gate
# The source reads a view that waits for an advisory lock a session holds;
# the run is served while it waits there, and ends once the lock is let go.
sql "CREATE VIEW gated_index AS SELECT o.* FROM object_index o
     WHERE (SELECT pg_advisory_xact_lock_shared(4242)) IS NOT NULL"
sed -i 's/^url = .*/&\ntable = "gated_index"/' "$TMP/p.toml"
add_rows 20
mkfifo "$TMP/gate.fifo"
psql "$SLUICE_PG_URL" -X -q -v ON_ERROR_STOP=1 <"$TMP/gate.fifo" >"$TMP/gate.log" 2>&1 &
GATE_PID=$!
CHILD_PIDS+=("$GATE_PID")
exec 8>"$TMP/gate.fifo"
echo "SELECT pg_advisory_lock(4242);" >&8
gate_held() { [ "$(sql "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")" = 1 ]; }
wait_until 10 gate_held || fail "the gate was not taken"

SLUICE_LOG=info "$SLUICE" run -c "$TMP/p.toml" --metrics-port 0 >"$TMP/run.out" 2>"$TMP/run.log" &
RUN_PID=$!
CHILD_PIDS+=("$RUN_PID")
wait_metrics "$TMP/run.log"
# The failures come from the state, whatever the gate; the counters are
# this process's own.
wait_until 30 is sluice_pipeline_failures_parked 1 || fail "the parked failure is not shown: $(cat "$TMP/metrics")"
[ "$(value sluice_pipeline_failures_retrying)" = 0 ] || fail "still retrying after being parked"
[ "$(value sluice_pipeline_objects_failed_total)" = 0 ] || fail "a new process counts old failures"
[ "$(value sluice_pipeline_runs_completed_total)" = 0 ] || fail "the run ended at the gate"
kill -0 "$RUN_PID" 2>/dev/null || fail "the run did not wait at the gate: $(cat "$TMP/run.log")"
echo "SELECT pg_advisory_unlock(4242);" >&8
exec 8>&-
wait "$GATE_PID"
wait "$RUN_PID" || fail "run -m did not exit 0: $(cat "$TMP/run.log")"
expect_in "$(cat "$TMP/run.out")" "20 new rows, 20 objects stored" "run -m copied the new rows"

echo "pipeline_metrics: ok"

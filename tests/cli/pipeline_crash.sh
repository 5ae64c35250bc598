#!/usr/bin/env bash
# kill -9 of `sluice run` at random moments until 20 runs were killed
# mid-way, with rows arriving in between. After every kill, every row at
# or before the saved cursor is in the destination with the right bytes,
# or recorded as a failure
# (nothing the state acknowledges is lost); in the end a run to completion
# leaves the destination equal to the source, nothing missing, no failure.
set -euo pipefail
. "$(dirname "$0")/common.bash"
. "$(dirname "$0")/sync_common.bash"
. "$(dirname "$0")/pipeline_common.bash"
trap 'stop_services; cleanup_children' EXIT

RUNS=${PIPELINE_CRASH_RUNS:-36}
SEED=${SLUICE_SEED:-$$}
RANDOM=$SEED
echo "pipeline_crash: seed $SEED (rerun with SLUICE_SEED=$SEED)" >&2

services_up pg
create_table
# Each run finds new work: small rows and a few larger objects (100-300 KiB)
# read in parts, so a kill can land before the first batch, in the middle
# of a write, between batches or after the last.
add_work() {
	add_rows 80
	sql "INSERT INTO object_index (id, data_type, data, created_at)
	     SELECT gen_random_uuid(), 'image', decode(repeat(md5(random()::text), 3200 + (g % 7) * 1600), 'hex'), clock_timestamp()
	     FROM generate_series(1, 4) g"
}
write_config "$TMP/crash.toml" "dir:$TMP/out" "batch_size = 10
concurrency = 2"

# Rows at or before the cursor (created_at $1, id $2), as "key sha256".
acknowledged() {
	local ts=$1 id=$2
	sql "SELECT concat_ws('/', competition_id::text, agent_id::text, data_type::text, id::text)
	            || ' ' || encode(sha256(data), 'hex')
	     FROM object_index WHERE (created_at, id) <= ('$ts'::timestamptz, '$id'::uuid)
	     ORDER BY 1" | LC_ALL=C sort
}

killed=0 checked=0
# Until a first batch is saved, each run is given longer before the kill:
# on a loaded machine a run may not reach its first commit in 180 ms, and
# a cursor, once saved, is what every later run is checked against.
# The kill comes within a window that halves after a run that ended first
# (under ASan, on a loaded machine, runs are short) and grows back after a
# kill; runs go on until 20 were killed mid-way (at most 3 x RUNS).
patience=0 window=175 run=0
while [ "$killed" -lt 20 ] && [ "$run" -lt $((RUNS * 3)) ]; do
	run=$((run + 1))
	add_work
	"$SLUICE" run -c "$TMP/crash.toml" >"$TMP/run.log" 2>&1 &
	pid=$!
	sleep "$(awk -v ms=$((5 + RANDOM % (window + patience))) 'BEGIN { printf "%.3f", ms / 1000 }')"
	if kill -9 "$pid" 2>/dev/null; then
		killed=$((killed + 1))
		window=$((window * 2 > 175 ? 175 : window * 2))
	else
		window=$((window / 2 < 20 ? 20 : window / 2))
	fi
	wait "$pid" 2>/dev/null || true
	# Nothing acknowledged is lost: every row up to the cursor is in the
	# destination (failures would be listed; this source has none).
	# A state a kill cannot spoil: status must read it.
	expect 0 "$SLUICE" status -c "$TMP/crash.toml" --json
	ts=$(jq -r '.cursor_created_at // ""' <<<"$OUT")
	if [ -n "$ts" ]; then # empty until a first batch is saved
		want=$(acknowledged "$ts" "$(jq -r .cursor_id <<<"$OUT")")
		[ -n "$want" ] || fail "run $run: no row at or before the cursor $ts"
		have=$(dir_listing "$TMP/out")
		missing=$(LC_ALL=C comm -23 <(echo "$want") <(echo "$have"))
		[ -z "$missing" ] || fail "run $run: acknowledged rows missing or wrong: $(head -3 <<<"$missing")"
		checked=$((checked + 1))
	else
		patience=$((patience + 150))
	fi
done
echo "pipeline_crash: $killed of $run runs killed mid-way, $checked checked against a saved cursor" >&2
[ "$killed" -ge 20 ] || fail "only $killed runs were killed; the test did not test"
[ "$checked" -ge $((run / 2)) ] || fail "only $checked of $run runs had a saved cursor to check"
# A killed write may leave its temporary file; it is never taken for an object.
echo "pipeline_crash: $(find "$TMP/out" -name '.*sluice-tmp*' | wc -l) temporary files left by kills" >&2

expect 0 "$SLUICE" run -c "$TMP/crash.toml"
same_listing "after $run runs" "$(expected_listing)" "$(dir_listing "$TMP/out")"
expect 0 "$SLUICE" status -c "$TMP/crash.toml" --json
[ "$(jq -r '.failing + .parked' <<<"$OUT")" = 0 ] || fail "failures left: $OUT"
[ "$(jq -r .objects <<<"$OUT")" -ge "$(sql "SELECT count(*) FROM object_index")" ] || fail "totals: $OUT"
echo "pipeline_crash: ok"

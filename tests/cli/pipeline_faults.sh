#!/usr/bin/env bash
# Pipelines through outages: the S3 sink answering 500 and then 503
# SlowDown (with Retry-After) for a while, through a fault-injecting proxy,
# and PostgreSQL restarted in the middle of a run. Every object still
# arrives, and nothing is left failing.
set -euo pipefail
. "$(dirname "$0")/common.bash"
. "$(dirname "$0")/sync_common.bash"
. "$(dirname "$0")/pipeline_common.bash"
trap 'stop_services; cleanup_children' EXIT

services_up pg s3
create_table
add_rows 300

# ---------------------------------------------------------------- S3 answering 500, then 503 SlowDown
start_proxy "$SLUICE_S3_PORT" "$TMP/control"
S3_ENDPOINT_FOR_SINK="http://127.0.0.1:$PROXY_PORT"
write_config "$TMP/s3.toml" "s3:dest" "concurrency = 8"
printf 'status500:40 /dest/\n' >"$TMP/control.tmp" && mv "$TMP/control.tmp" "$TMP/control"
expect 0 "$SLUICE" run -c "$TMP/s3.toml"
faults500=$(grep -c '^status500 ' "$TMP/proxy.log" || true)
[ "$faults500" -eq 40 ] || fail "expected 40 injected 500s, saw $faults500"
add_rows 200
printf 'slowdown503:16 /dest/\n' >"$TMP/control.tmp" && mv "$TMP/control.tmp" "$TMP/control"
expect 0 "$SLUICE" run -c "$TMP/s3.toml"
faults503=$(grep -c '^slowdown503 ' "$TMP/proxy.log" || true)
[ "$faults503" -eq 16 ] || fail "expected 16 injected 503s, saw $faults503"
# Whatever failed in a run is retried by the next; in the end none is left.
expect 0 "$SLUICE" run -c "$TMP/s3.toml"
expect 0 "$SLUICE" status -c "$TMP/s3.toml" --json
[ "$(jq -r '.failing + .parked' <<<"$OUT")" = 0 ] || fail "failures left after the S3 outage: $OUT"
same_listing "s3 through 500/503" "$(expected_listing)" "$(s3_listing dest)"

# ---------------------------------------------------------------- PostgreSQL restarted mid-run
# Objects of 100-200 KiB read in parts, two at a time, so the run is still
# going when the database goes away.
sql "INSERT INTO object_index (id, data_type, data, created_at)
     SELECT gen_random_uuid(), 'image', decode(repeat(md5(g::text), 3200 + (g % 5) * 640), 'hex'), clock_timestamp()
     FROM generate_series(1, 400) g"
write_config "$TMP/dir.toml" "dir:$TMP/out" "concurrency = 2
batch_size = 20"
"$SLUICE" run -c "$TMP/dir.toml" >"$TMP/run.out" 2>"$TMP/run.err" &
RUN_PID=$!
CHILD_PIDS+=("$RUN_PID")
copied_some() { [ "$(find "$TMP/out" -type f 2>/dev/null | wc -l)" -ge 40 ]; }
wait_until 60 copied_some || fail "the run did not start copying"
kill -0 "$RUN_PID" 2>/dev/null || fail "the run ended before PostgreSQL was restarted"
bash "$SLUICE_SRC/scripts/services.sh" restart-pg "$SVC_DIR"
wait "$RUN_PID" || fail "the run did not survive the restart: $(cat "$TMP/run.err")"
expect_in "$(cat "$TMP/run.err")" "lost the connection to PostgreSQL" "the run met the restart"
total=$(sql "SELECT count(*) FROM object_index")
expect_in "$(cat "$TMP/run.out")" "$total new rows" "every row read across the restart"
expect 0 "$SLUICE" status -c "$TMP/dir.toml" --json
[ "$(jq -r '.failing + .parked' <<<"$OUT")" = 0 ] || fail "failures left after the restart: $OUT"
same_listing "dir across a PostgreSQL restart" "$(expected_listing)" "$(dir_listing "$TMP/out")"

echo "pipeline_faults: ok"

#!/usr/bin/env bash
# Pipelines against a real PostgreSQL 15 and s3rver: every destination
# ends equal to the source, rows sharing a timestamp survive batch
# boundaries, --since filters, keys leave NULL segments out, a late commit
# is not skipped, a missing source object is recorded while the rest
# continue, and status / failed / retry / reset say and do what they claim.
set -euo pipefail
. "$(dirname "$0")/common.bash"
. "$(dirname "$0")/sync_common.bash"
. "$(dirname "$0")/pipeline_common.bash"
trap 'stop_services; cleanup_children' EXIT

services_up pg s3
S3_ENDPOINT_FOR_SINK=$SLUICE_S3_ENDPOINT
create_table

# ---------------------------------------------------------------- direct mode to a directory
add_rows 120
add_rows 5 "2020-01-01 00:00:00+00" # five rows sharing one created_at
write_config "$TMP/dir.toml" "dir:$TMP/out" "batch_size = 3"
expect 0 "$SLUICE" run -c "$TMP/dir.toml"
expect_in "$OUT" "125 new rows, 125 objects stored" "run summary"
same_listing "dir" "$(expected_listing)" "$(dir_listing "$TMP/out")"

# A second run finds nothing new and changes nothing.
expect 0 "$SLUICE" run -c "$TMP/dir.toml"
expect_in "$OUT" "0 new rows, 0 objects stored" "idempotent second run"

# New rows, including five more sharing a timestamp, arrive incrementally.
add_rows 7
add_rows 5 "$(sql "SELECT now()")" # five more sharing one (later) created_at
expect 0 "$SLUICE" run -c "$TMP/dir.toml"
expect_in "$OUT" "12 new rows" "incremental run"
same_listing "dir incremental" "$(expected_listing)" "$(dir_listing "$TMP/out")"

expect 0 "$SLUICE" status -c "$TMP/dir.toml" --json
[ "$(jq -r .objects <<<"$OUT")" = 137 ] || fail "status objects: $OUT"
[ "$(jq -r .rows_behind <<<"$OUT")" = 0 ] || fail "status rows_behind: $OUT"
[ "$(jq -r .parked <<<"$OUT")" = 0 ] || fail "status parked: $OUT"
# Compared as timestamps: PostgreSQL prints 11:18:26.00554 where the cursor keeps 11:18:26.005540.
[ "$(sql "SELECT '$(jq -r .cursor_created_at <<<"$OUT")'::timestamptz = max(created_at) FROM object_index")" = t ] ||
	fail "status cursor: $OUT"
expect 0 "$SLUICE" status -c "$TMP/dir.toml"
expect_in "$OUT" "behind       0 rows" "status text"

# ---------------------------------------------------------------- key format
SINCE=$(sql "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
sleep 0.01
sql "INSERT INTO object_index (id, competition_id, agent_id, data_type, data, created_at) VALUES
     ('00000000-0000-0000-0000-0000000000a1', '11111111-1111-1111-1111-111111111111', '22222222-2222-2222-2222-222222222222', 'trace', 'both', now()),
     ('00000000-0000-0000-0000-0000000000a2', '11111111-1111-1111-1111-111111111111', NULL, 'log', 'competition', now()),
     ('00000000-0000-0000-0000-0000000000a3', NULL, '22222222-2222-2222-2222-222222222222', 'image', 'agent', now()),
     ('00000000-0000-0000-0000-0000000000a4', NULL, NULL, 'trace', 'neither', now())"
expect 0 "$SLUICE" run -c "$TMP/dir.toml"
for f in "11111111-1111-1111-1111-111111111111/22222222-2222-2222-2222-222222222222/trace/00000000-0000-0000-0000-0000000000a1:both" \
	"11111111-1111-1111-1111-111111111111/log/00000000-0000-0000-0000-0000000000a2:competition" \
	"22222222-2222-2222-2222-222222222222/image/00000000-0000-0000-0000-0000000000a3:agent" \
	"trace/00000000-0000-0000-0000-0000000000a4:neither"; do
	[ "$(cat "$TMP/out/${f%%:*}")" = "${f#*:}" ] || fail "key format: ${f%%:*}"
done

# ---------------------------------------------------------------- --since
write_config "$TMP/since.toml" "dir:$TMP/since-out"
expect 0 "$SLUICE" run -c "$TMP/since.toml" --since "$SINCE"
expect_in "$OUT" "4 new rows" "--since: the four key-format rows"
[ "$(find "$TMP/since-out" -type f | wc -l)" = 4 ] || fail "--since copied other rows"
expect 2 "$SLUICE" run -c "$TMP/since.toml" --since yesterday
expect_in "$ERR" "--since: 'yesterday' is not an RFC 3339 time" "bad --since is named"
expect 2 timeout 20 "$SLUICE" start -c "$TMP/since.toml" --interval 1 --since 2026-02-30T00:00:00Z

# ---------------------------------------------------------------- a late commit
# A transaction inserts a row (created_at = its start) and stays open while
# newer rows commit and a run passes; once it commits, the next run copies it.
mkfifo "$TMP/late.fifo"
psql "$SLUICE_PG_URL" -X -q -v ON_ERROR_STOP=1 <"$TMP/late.fifo" >"$TMP/late.log" 2>&1 &
LATE_PID=$!
CHILD_PIDS+=("$LATE_PID")
exec 7>"$TMP/late.fifo"
echo "BEGIN; INSERT INTO object_index (id, data_type, data) VALUES ('00000000-0000-0000-0000-00000000fa7e', 'log', 'late');" >&7
txn_open() { [ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'")" = 1 ]; }
wait_until 10 txn_open || fail "the long transaction did not start"
add_rows 3 # newer rows, committed
expect 0 "$SLUICE" run -c "$TMP/dir.toml"
expect_in "$OUT" "wait for transaction pid" "a run says what holds it back"
# The three newer rows wait: copying them would move the cursor past the
# open transaction's row.
newer=$(sql "SELECT concat_ws('/', competition_id::text, agent_id::text, data_type::text, id::text)
             FROM object_index ORDER BY created_at DESC, id DESC LIMIT 3")
for key in $newer; do
	[ ! -e "$TMP/out/$key" ] || fail "a row newer than an open transaction was copied: $key"
done
echo "COMMIT;" >&7
exec 7>&-
wait "$LATE_PID"
expect 0 "$SLUICE" run -c "$TMP/dir.toml"
[ "$(cat "$TMP/out/log/00000000-0000-0000-0000-00000000fa7e")" = late ] || fail "late commit skipped"
same_listing "dir after late commit" "$(expected_listing)" "$(dir_listing "$TMP/out")"

# ---------------------------------------------------------------- to an S3 bucket
write_config "$TMP/s3.toml" "s3:dest"
expect 0 "$SLUICE" run -c "$TMP/s3.toml"
same_listing "s3" "$(expected_listing)" "$(s3_listing dest)"

# ---------------------------------------------------------------- to a local node namespace
write_config "$TMP/node.toml" "node:$TMP/node-store:objects"
expect 0 "$SLUICE" run -c "$TMP/node.toml"
node_listing() {
	"$SLUICE" -d "$1" ls objects | LC_ALL=C sort | while read -r key; do
		echo "$key $("$SLUICE" -d "$1" get objects "$key" | sha256sum | cut -d' ' -f1)"
	done
}
same_listing "node" "$(expected_listing)" "$(node_listing "$TMP/node-store")"
expect 0 "$SLUICE" -d "$TMP/node-store" verify objects

# ---------------------------------------------------------------- to a remote node
expect 0 "$SLUICE" -d "$TMP/remote" init
expect 0 "$SLUICE" -d "$TMP/remote" ns create objects --kind immutable
echo "pipeline-test-token-0123456789" >"$TMP/token"
start_server remote "$TMP/remote" --token-file "$TMP/token"
write_config "$TMP/url.toml" "url:http://127.0.0.1:${PORT[remote]}:$TMP/token:objects"
expect 0 "$SLUICE" run -c "$TMP/url.toml"
stop_server remote
same_listing "remote node" "$(expected_listing)" "$(node_listing "$TMP/remote")"

# ---------------------------------------------------------------- S3 mode: missing source objects
sql "CREATE TABLE s3_index (LIKE object_index INCLUDING ALL)"
for i in 1 2 3 4 5; do
	head -c $((i * 1000)) /dev/urandom >"$TMP/obj$i"
	s3 PUT source "objects/obj$i" "$TMP/obj$i" >/dev/null
	sql "INSERT INTO s3_index (id, object_key, data_type, size_bytes, created_at)
	     VALUES ('00000000-0000-0000-0000-00000000000$i', 'objects/obj$i', 'trace', $((i * 1000)), '2020-05-0$i')"
done
sql "INSERT INTO s3_index (id, object_key, data_type, created_at)
     VALUES ('00000000-0000-0000-0000-0000000000ff', 'objects/missing', 'trace', '2020-05-03 12:00')"
write_config "$TMP/s3mode.toml" "dir:$TMP/s3mode-out" "max_attempts = 2"
cat >>"$TMP/s3mode.toml" <<EOF
[s3]
endpoint = "$SLUICE_S3_ENDPOINT"
bucket = "source"
access_key_id = "S3RVER"
secret_access_key = "S3RVER"
EOF
sed -i 's/^url = .*/&\ntable = "s3_index"/' "$TMP/s3mode.toml"
expect 0 "$SLUICE" run -c "$TMP/s3mode.toml"
expect_in "$OUT" "5 objects stored" "S3 mode copies what exists"
for i in 1 2 3 4 5; do
	cmp "$TMP/obj$i" "$TMP/s3mode-out/trace/00000000-0000-0000-0000-00000000000$i" ||
		fail "S3 mode object $i"
done
expect 0 "$SLUICE" failed -c "$TMP/s3mode.toml" --json
[ "$(jq length <<<"$OUT")" = 1 ] || fail "one parked failure expected: $OUT"
[ "$(jq -r '.[0].key' <<<"$OUT")" = "trace/00000000-0000-0000-0000-0000000000ff" ] || fail "failed key: $OUT"
expect_in "$(jq -r '.[0].last_error' <<<"$OUT")" "objects/missing" "the error names the missing object"
expect 0 "$SLUICE" status -c "$TMP/s3mode.toml" --json
[ "$(jq -r .parked <<<"$OUT")" = 1 ] || fail "status parked: $OUT"
# The object appears; `retry` copies it now.
echo "found at last" >"$TMP/found"
s3 PUT source objects/missing "$TMP/found" >/dev/null
expect 0 "$SLUICE" retry -c "$TMP/s3mode.toml"
expect_in "$OUT" "1 objects stored" "retry"
[ "$(cat "$TMP/s3mode-out/trace/00000000-0000-0000-0000-0000000000ff")" = "found at last" ] || fail "retried object"
expect 0 "$SLUICE" failed -c "$TMP/s3mode.toml" --all --json
[ "$(jq length <<<"$OUT")" = 0 ] || fail "failures left after retry: $OUT"

# ---------------------------------------------------------------- reset
expect 1 "$SLUICE" reset -c "$TMP/dir.toml" </dev/null
expect_in "$ERR" "--yes" "reset asks"
expect 0 "$SLUICE" reset -c "$TMP/dir.toml" --yes
expect 0 "$SLUICE" status -c "$TMP/dir.toml" --json
[ "$(jq -r .objects <<<"$OUT")" = 0 ] || fail "reset kept totals"
expect 0 "$SLUICE" run -c "$TMP/dir.toml"
expect_in "$OUT" "$(sql "SELECT count(*) FROM object_index") new rows" "reset: every row read again"
same_listing "dir after reset" "$(expected_listing)" "$(dir_listing "$TMP/out")"

# ---------------------------------------------------------------- start: runs until told to stop
write_config "$TMP/start.toml" "dir:$TMP/start-out"
SLUICE_LOG=info "$SLUICE" start -c "$TMP/start.toml" --interval 200ms >"$TMP/start.log" 2>&1 &
START_PID=$!
CHILD_PIDS+=("$START_PID")
wait_until 30 test -e "$TMP/start-out/log/00000000-0000-0000-0000-00000000fa7e" || fail "start did not run"
add_rows 4
start_caught_up() { [ "$(dir_listing "$TMP/start-out" | wc -l)" = "$(sql "SELECT count(*) FROM object_index")" ]; }
wait_until 30 start_caught_up || fail "start did not pick up new rows"
kill -TERM "$START_PID"
wait "$START_PID" || fail "start did not exit 0 on SIGTERM"
expect_in "$(cat "$TMP/start.log")" "pipeline stopped" "start logs its stop"
same_listing "start" "$(expected_listing)" "$(dir_listing "$TMP/start-out")"

# Runs never overlap: with the lock held elsewhere, a run refuses to start.
expect 1 flock "$TMP/state-start.toml.db.lock" "$SLUICE" run -c "$TMP/start.toml"
expect_in "$ERR" "another run holds" "overlapping run refused"

echo "pipeline: ok"

#!/usr/bin/env bash
# `sluice mirror` from a Redis 7 stream into a real PostgreSQL.
#   - exactly once under SIGKILL: a writer keeps adding set, update and
#     delete entries while `sluice mirror start` (two workers, each owning
#     half of the keys) is killed at random moments 20 times; a handler
#     (apply_sql) adds each batch's event count to a counter row. At the
#     end the counter equals the stream's length and the table equals the
#     newest entry of every key;
#   - a stream trimmed past the mirror's position: the run stops with an
#     error naming the gap, which is recorded and shown by status, and the
#     position stays; with on_gap = "continue" the mirror goes past it
#     (the gap marked so) and applies what the stream still holds;
#   - `sluice mirror reconcile` on the stream puts back a row deleted
#     behind the mirror's back and flags the rows whose entries were
#     trimmed (missing_in_source_since), deleting none.
set -euo pipefail
. "$(dirname "$0")/common.bash"
. "$(dirname "$0")/pipeline_common.bash"
. "$(dirname "$0")/sync_common.bash"

trap 'cleanup_children; [ -n "${SVC_DIR:-}" ] && stop_services; true' EXIT
services_up pg redis
seed=${SLUICE_SEED:-$(($(date +%s) ^ $$))}
echo "mirror_redis.sh: seed $seed (rerun with SLUICE_SEED=$seed)"
RANDOM=$seed
rcli() { redis-cli -u "$SLUICE_REDIS_URL" "$@"; }

sql "CREATE TABLE mirror_counter (n bigint NOT NULL); INSERT INTO mirror_counter VALUES (0)" >/dev/null
echo 'UPDATE mirror_counter SET n = n + (SELECT count(*) FROM sluice_batch);' >"$TMP/handler.sql"

# mconfig FILE STREAM TABLE [MIRROR_LINE]
mconfig() {
	printf '%s\n' "[source]" 'type = "redis"' "url = \"$SLUICE_REDIS_URL\"" "stream = \"$2\"" \
		"[postgres]" "url = \"$SLUICE_PG_URL\"" "table = \"$3\"" 'apply_sql = "handler.sql"' \
		"timeout_ms = 5000" "[mirror]" "batch_size = $((RANDOM % 200 + 20))" "batch_ms = 20" \
		"retry_base_ms = 20" "retry_max_ms = 200" "${4:-}" >"$1"
}

# The newest entry of every key of STREAM as "key|deleted|hex(value)".
stream_model() {
	rcli --raw XRANGE "$1" - + | python3 -c '
import sys
lines = sys.stdin.read().split("\n")
last, i = {}, 0
while i < len(lines) and lines[i]:
    i += 1  # the entry id
    fields = {}
    while i + 1 < len(lines) and lines[i] in ("key", "op", "value"):
        fields[lines[i]] = lines[i + 1]
        i += 2
    last[fields["key"]] = fields
for k, f in last.items():
    if f.get("op") == "delete":
        print("%s|t|" % k)
    else:
        print("%s|f|%s" % (k, f.get("value", "").encode().hex()))
' | LC_ALL=C sort
}
table_rows() {
	sql "SELECT key || '|' || CASE WHEN deleted THEN 't' ELSE 'f' END || '|' || coalesce(encode(value, 'hex'), '') FROM $1" |
		LC_ALL=C sort
}

# ---------------------------------------------------- exactly once, killed
cfg="$TMP/mirror.toml"
mconfig "$cfg" events mirror_items "workers = 2"

# The writer: rounds of 5..30 entries over 150 keys, until told to stop.
writer() {
	local round=0 n i k
	while [ ! -e "$TMP/stop-writer" ]; do
		n=$((RANDOM % 26 + 5))
		for ((i = 0; i < n; i++)); do
			k=$((RANDOM % 150))
			case $((RANDOM % 4)) in
			0) echo "XADD events * key k/$k op delete" ;;
			1) echo "XADD events * key k/$k op update value \"round $round $i $RANDOM\"" ;;
			*) echo "XADD events * key k/$k value \"round $round $i $RANDOM\"" ;;
			esac
		done | rcli >/dev/null
		round=$((round + 1))
	done
}
writer &
WRITER_PID=$!
CHILD_PIDS+=("$WRITER_PID")

kill_mirror_rounds 20 "$cfg" "$TMP/mirror.log"
kills=$KILLS
touch "$TMP/stop-writer"
wait "$WRITER_PID"
echo "mirror_redis.sh: $kills kills"
[ "$kills" -ge 20 ] || fail "only $kills of 20 mirrors were killed (some ended on their own)"

expect 0 "$SLUICE" mirror run --config "$cfg"
events=$(rcli XLEN events)
[ "$events" -gt 100 ] || fail "the writer made only $events entries"
counter=$(sql "SELECT n FROM mirror_counter")
echo "mirror_redis.sh: $events entries in the stream, counter $counter"
[ "$counter" = "$events" ] || fail "the handler counted $counter events, the stream holds $events"
applied=$(sql "SELECT sum(applied) FROM sluice_mirror_position WHERE source LIKE 'redis:%/events#part=%/2'")
[ "$applied" = "$events" ] || fail "the two workers' positions count $applied events applied, not $events"
want=$(stream_model events)
got=$(table_rows mirror_items)
if [ "$want" != "$got" ]; then
	diff <(echo "$want") <(echo "$got") | head -20 >&2 || true
	fail "the target table differs from the stream's newest entries"
fi
echo "mirror_redis.sh: exactly once over $kills kills: ok"

# ------------------------------------------------------ a trimmed stream
for i in $(seq 0 49); do echo "XADD trimmed * key g/$i value a$i"; done | rcli >/dev/null
mconfig "$TMP/gap.toml" trimmed gap_items
expect 0 "$SLUICE" mirror run --config "$TMP/gap.toml"
for i in $(seq 50 99); do echo "XADD trimmed * key g/$i value b$i"; done | rcli >/dev/null
rcli XTRIM trimmed MAXLEN 20 >/dev/null # g/50..g/79 are lost unread
pos=$(sql "SELECT pos FROM sluice_mirror_position WHERE source LIKE 'redis:%/trimmed'")
expect 1 "$SLUICE" mirror run --config "$TMP/gap.toml"
expect_in "$ERR" "recorded as a gap" "a run past a trimmed part of the stream"
[ "$(sql "SELECT pos FROM sluice_mirror_position WHERE source LIKE 'redis:%/trimmed'")" = "$pos" ] ||
	fail "the position moved past a gap"
expect 0 "$SLUICE" mirror status --config "$TMP/gap.toml" --json
[ "$(jq -r '"\(.gaps)/\(.last_gap.continued)"' <<<"$OUT")" = 1/false ] ||
	fail "status does not show the gap: $OUT"
expect 0 "$SLUICE" mirror status --config "$TMP/gap.toml"
expect_in "$OUT" "the mirror stopped" "status text of a gap"
[ "$(sql "SELECT count(*) FROM gap_items")" = 50 ] || fail "something was applied past the gap"

mconfig "$TMP/gap.toml" trimmed gap_items 'on_gap = "continue"'
expect 0 "$SLUICE" mirror run --config "$TMP/gap.toml"
expect_in "$OUT" "went past 1 gaps" "a run that goes past the gap"
expect 0 "$SLUICE" mirror status --config "$TMP/gap.toml" --json
[ "$(jq -r '"\(.gaps)/\(.last_gap.continued)/\(.lag_events)"' <<<"$OUT")" = 1/true/0 ] ||
	fail "status after going past the gap: $OUT"
[ "$(sql "SELECT count(*) FROM gap_items")" = 70 ] || fail "expected the 50 first and the 20 kept keys"
[ "$(sql "SELECT count(*) FROM gap_items WHERE key IN ('g/50', 'g/79')")" = 0 ] || fail "trimmed keys appeared"

# Reconcile: a row deleted behind the mirror comes back; the rows whose
# entries were trimmed are flagged, not deleted.
sql "DELETE FROM gap_items WHERE key = 'g/90'"
expect 0 "$SLUICE" mirror reconcile --config "$TMP/gap.toml" --json
[ "$(jq -r '"\(.added)/\(.changed)/\(.flagged)/\(.missing_in_source)/\(.source_events)"' <<<"$OUT")" = 1/0/50/50/20 ] ||
	fail "reconcile of a trimmed stream: $OUT"
[ "$(sql "SELECT count(*) FROM gap_items WHERE NOT deleted")" = 70 ] || fail "reconcile deleted rows"
[ "$(sql "SELECT count(*) FROM gap_items WHERE missing_in_source_since IS NOT NULL AND value LIKE 'a%'")" = 50 ] ||
	fail "the first 50 keys are not the ones flagged"
[ "$(sql "SELECT convert_from(value, 'UTF8') FROM gap_items WHERE key = 'g/90'")" = b90 ] || fail "g/90 was not put back"
expect 0 "$SLUICE" mirror status --config "$TMP/gap.toml" --json
[ "$(jq -r '"\(.reconciled_applied)/\(.missing_in_source)/\(.reconciled_at != null)"' <<<"$OUT")" = 1/50/true ] ||
	fail "status after reconcile: $OUT"
echo "mirror_redis.sh: ok"

#!/usr/bin/env bash
# `sluice mirror` from a Kafka topic of two partitions into a real
# PostgreSQL, through librdkafka's mock cluster (tests/tools/kafka_mock.c;
# no Kafka broker is packaged, so this is the only Kafka it meets):
#   - exactly once under SIGKILL: a writer keeps producing set, update and
#     delete messages (each key always to one partition, as a key
#     partitioner does) while `sluice mirror start`, one worker per
#     partition, is killed at random moments 20 times and started again; a
#     handler (apply_sql) adds each batch's event count to a counter row.
#     At the end the counter equals the messages delivered, each
#     partition's position row stands at its end, and the table equals the
#     last message of every key;
#   - status shows one row per partition, dlq and reconcile take the topic
#     (a row deleted behind the mirror comes back), and a config that asks
#     for workers is refused.
set -euo pipefail
. "$(dirname "$0")/common.bash"
. "$(dirname "$0")/pipeline_common.bash"
. "$(dirname "$0")/sync_common.bash"

bin="$(dirname "$SLUICE")"
for tool in kafka_mock kafka_produce; do
	[ -x "$bin/$tool" ] || fail "no $bin/$tool: build the $tool target"
done
trap 'cleanup_children; [ -n "${SVC_DIR:-}" ] && stop_services; true' EXIT
services_up pg
seed=${SLUICE_SEED:-$(($(date +%s) ^ $$))}
echo "mirror_kafka.sh: seed $seed (rerun with SLUICE_SEED=$seed)"
RANDOM=$seed

"$bin/kafka_mock" --brokers 1 --partitions 2 --topic events --port-file "$TMP/port" \
	>"$TMP/mock.out" 2>"$TMP/mock.err" &
CHILD_PIDS+=($!)
wait_until 20 test -s "$TMP/port" || fail "kafka_mock wrote no port file: $(cat "$TMP/mock.err")"
brokers=$(cat "$TMP/port")

sql "CREATE TABLE mirror_counter (n bigint NOT NULL); INSERT INTO mirror_counter VALUES (0)" >/dev/null
echo 'UPDATE mirror_counter SET n = n + (SELECT count(*) FROM sluice_batch);' >"$TMP/handler.sql"
cfg="$TMP/mirror.toml"
printf '%s\n' "[source]" 'type = "kafka"' "brokers = \"$brokers\"" 'topic = "events"' \
	"[postgres]" "url = \"$SLUICE_PG_URL\"" 'table = "kafka_items"' 'apply_sql = "handler.sql"' \
	"timeout_ms = 5000" "[mirror]" "batch_size = $((RANDOM % 200 + 20))" "batch_ms = 20" \
	"retry_base_ms = 20" "retry_max_ms = 200" >"$cfg"

# The writer: rounds of 5..30 messages over 150 keys (k/N to partition
# N % 2), each round delivered before the next; what was delivered is
# appended to produced.tsv.
writer() {
	local round=0 n i k
	while [ ! -e "$TMP/stop-writer" ]; do
		n=$((RANDOM % 26 + 5))
		: >"$TMP/round.tsv"
		for ((i = 0; i < n; i++)); do
			k=$((RANDOM % 150))
			case $((RANDOM % 4)) in
			0) printf '%d\tk/%d\tdelete\n' $((k % 2)) "$k" ;;
			1) printf '%d\tk/%d\tupdate\tround %d %d %d\n' $((k % 2)) "$k" "$round" "$i" "$RANDOM" ;;
			*) printf '%d\tk/%d\tset\tround %d %d %d\n' $((k % 2)) "$k" "$round" "$i" "$RANDOM" ;;
			esac
		done >"$TMP/round.tsv"
		if "$bin/kafka_produce" "$brokers" events <"$TMP/round.tsv" >/dev/null 2>>"$TMP/produce.err"; then
			cat "$TMP/round.tsv" >>"$TMP/produced.tsv"
		else
			echo "a round was not delivered" >>"$TMP/produce.err"
			return 1
		fi
		round=$((round + 1))
	done
}
: >"$TMP/produced.tsv"
writer &
WRITER_PID=$!
CHILD_PIDS+=("$WRITER_PID")

kill_mirror_rounds 20 "$cfg" "$TMP/mirror.log"
kills=$KILLS
touch "$TMP/stop-writer"
wait "$WRITER_PID" || fail "the writer failed: $(cat "$TMP/produce.err")"
echo "mirror_kafka.sh: $kills kills"
[ "$kills" -ge 20 ] || fail "only $kills of 20 mirrors were killed (some ended on their own)"

expect 0 "$SLUICE" mirror run --config "$cfg"
expect_in "$OUT" "2 workers" "one worker per partition"
messages=$(wc -l <"$TMP/produced.tsv")
[ "$messages" -gt 100 ] || fail "the writer delivered only $messages messages"
counter=$(sql "SELECT n FROM mirror_counter")
echo "mirror_kafka.sh: $messages messages delivered, counter $counter"
[ "$counter" = "$messages" ] || fail "the handler counted $counter events, $messages were delivered"
for p in 0 1; do
	want=$(awk -F'\t' -v p="$p" '$1 == p' "$TMP/produced.tsv" | wc -l)
	got=$(sql "SELECT pos FROM sluice_mirror_position WHERE source = 'kafka:$brokers/events/$p'")
	[ "$got" = "$want" ] || fail "partition $p: position $got, $want messages"
done
model() {
	awk -F'\t' '{ last[$2] = $3 == "delete" ? "t|" : "f|" $4 } END { for (k in last) print k "|" last[k] }' \
		"$TMP/produced.tsv" | while IFS='|' read -r k d v; do
		printf '%s|%s|%s\n' "$k" "$d" "$(printf '%s' "$v" | xxd -p -c 1000)"
	done | LC_ALL=C sort
}
rows() {
	sql "SELECT key || '|' || CASE WHEN deleted THEN 't' ELSE 'f' END || '|' || coalesce(encode(value, 'hex'), '') FROM kafka_items" |
		LC_ALL=C sort
}
want=$(model)
got=$(rows)
if [ "$want" != "$got" ]; then
	diff <(echo "$want") <(echo "$got") | head -20 >&2 || true
	fail "the target table differs from the last message of every key"
fi
echo "mirror_kafka.sh: exactly once over $kills kills: ok"

# ------------------------------------------------ status, dlq, reconcile
expect 0 "$SLUICE" mirror status --config "$cfg" --json
[ "$(jq '.workers | length' <<<"$OUT")/$(jq '[.workers[].lag_events] | add' <<<"$OUT")" = 2/0 ] ||
	fail "status of two partitions: $OUT"
expect 0 "$SLUICE" mirror dlq --config "$cfg"
expect_in "$OUT" "no dead letters" "dlq of a topic"
victim=$(sql "SELECT key FROM kafka_items WHERE NOT deleted ORDER BY key LIMIT 1")
sql "DELETE FROM kafka_items WHERE key = '$victim'"
expect 0 "$SLUICE" mirror reconcile --config "$cfg" --json
[ "$(jq -r '"\(.kind)/\(.added)/\(.changed)/\(.flagged)/\(.source_events)"' <<<"$OUT")" = "window/1/0/0/$messages" ] ||
	fail "reconcile of a topic: $OUT"
[ "$(rows)" = "$want" ] || fail "reconcile did not put $victim back"

printf 'workers = 2\n' >>"$cfg"
expect 1 "$SLUICE" mirror run --config "$cfg"
expect_in "$ERR" "each partition of the topic is a worker" "workers with a topic"
echo "mirror_kafka.sh: ok"

#!/usr/bin/env bash
# The Kafka test tools, each in a process of its own, over TCP: kafka_mock
# (librdkafka's mock cluster, two brokers), kafka_produce (messages from
# text lines) and kafka_read (the Kafka event source, as a mirror reads
# it): events of two partitions with the op and version headers, binary
# values and tombstones; a partition that does not exist; a position past
# the end; a gap once the mock's 5 MiB log limit deleted the oldest
# messages; the mock stopping on SIGTERM.
set -euo pipefail
source "$(dirname "$0")/common.bash"

bin="$(dirname "$SLUICE")"
for tool in kafka_mock kafka_produce kafka_read; do
	[ -x "$bin/$tool" ] || fail "no $bin/$tool: build the $tool target"
done

MOCK_PID=
cleanup() {
	[ -z "$MOCK_PID" ] || kill "$MOCK_PID" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

"$bin/kafka_mock" --brokers 2 --partitions 2 --topic events --topic gap \
	--port-file "$TMP/port" >"$TMP/mock.out" 2>"$TMP/mock.err" &
MOCK_PID=$!
wait_until 20 test -s "$TMP/port" || fail "kafka_mock wrote no port file: $(cat "$TMP/mock.err")"
brokers=$(cat "$TMP/port")
expect_in "$brokers" "127.0.0.1:" "the bootstrap servers"

# Fields: PARTITION KEY OP [VALUE [VERSION]], "-" for none.
printf '%b' \
	'0\ta\tset\tone\n' \
	'0\ta\tupdate\ttwo\t7\n' \
	'# a comment\n' \
	'0\ta\tdelete\t-\t8\n' \
	'0\tb\t-\tbin\\x00\\xff\\t\n' \
	'0\tb\t-\t-\n' \
	'1\tc\t-\tthree\t100\n' >"$TMP/lines"
expect 0 "$bin/kafka_produce" "$brokers" events <"$TMP/lines"
[ "$OUT" = "delivered 6" ] || fail "kafka_produce: $OUT"

expect 0 "$bin/kafka_read" "$brokers" events 0 0 5
want=$(printf '%s\n' \
	$'0\tset\ta\tone\t1' \
	$'1\tupdate\ta\ttwo\t2' \
	$'2\tdelete\ta\t-\t3' \
	$'3\tset\tb\tbin\\x00\\xff\\t\t4' \
	$'4\tdelete\tb\t-\t5' \
	'next 5')
[ "$OUT" = "$want" ] || fail "partition 0 read as
$OUT
instead of
$want"

# From an event's pos + 1, versions from the header.
expect 0 "$bin/kafka_read" --version-header version "$brokers" events 0 1 1
[ "$OUT" = $'1\tupdate\ta\ttwo\t7\nnext 2' ] || fail "from 1: $OUT"
expect 0 "$bin/kafka_read" --version-header version "$brokers" events 1 0 1
[ "$OUT" = $'0\tset\tc\tthree\t100\nnext 1' ] || fail "partition 1: $OUT"
# A message without the version header is refused, naming its offset.
expect 1 "$bin/kafka_read" --version-header version "$brokers" events 0 0 1
expect_in "$ERR" "offset 0: no \"version\" header" "a missing version"

# Nothing more within the wait; past the end; no such partition or topic.
expect 3 "$bin/kafka_read" --wait-ms 300 "$brokers" events 0 5 1
expect 1 "$bin/kafka_read" "$brokers" events 0 6 1
expect_in "$ERR" "past the partition's end" "a position past the end"
expect 1 "$bin/kafka_read" "$brokers" events 2 0 1
expect_in "$ERR" "2 partitions" "a partition that does not exist"
expect 1 "$bin/kafka_read" "$brokers" nosuch 0 0 1
expect_in "$ERR" "no topic nosuch" "a topic that does not exist"
expect 1 "$bin/kafka_produce" "$brokers" events <<<$'5\tk\tset\tv'
expect 2 "$bin/kafka_produce" "$brokers" events <<<$'x\tk\tset\tv'

# A gap: three small messages, then 6.3 MB, of which the mock keeps 5 MiB.
printf '0\tsmall%d\t-\tv\n' 0 1 2 >"$TMP/small"
expect 0 "$bin/kafka_produce" "$brokers" gap <"$TMP/small"
big=$(head -c 900000 /dev/zero | tr '\0' x)
for i in 0 1 2 3 4 5 6; do printf '0\tbig%d\t-\t%s\n' "$i" "$big"; done >"$TMP/big"
expect 0 "$bin/kafka_produce" "$brokers" gap <"$TMP/big"
[ "$OUT" = "delivered 7" ] || fail "kafka_produce: $OUT"
expect 4 "$bin/kafka_read" "$brokers" gap 0 1 1
expect_in "$ERR" "kafka topic gap partition 0: offsets 1 to " "the gap"
expect_in "$ERR" "deleted before they were read" "the gap"
start=${OUT#next }
[ "$start" -gt 3 ] && [ "$start" -lt 10 ] || fail "the gap ends at $OUT"
expect 0 "$bin/kafka_read" "$brokers" gap 0 "$start" $((10 - start))
[ "$(tail -n 1 <<<"$OUT")" = "next 10" ] || fail "after the gap: $(tail -n 1 <<<"$OUT")"

# SIGTERM stops the mock.
kill -TERM "$MOCK_PID"
for _ in $(seq 100); do
	kill -0 "$MOCK_PID" 2>/dev/null || break
	sleep 0.1
done
kill -0 "$MOCK_PID" 2>/dev/null && fail "kafka_mock still runs 10 s after SIGTERM"
wait "$MOCK_PID" || fail "kafka_mock exited $? after SIGTERM"
MOCK_PID=
echo "kafka_tools: ok"

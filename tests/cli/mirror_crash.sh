#!/usr/bin/env bash
# The mirror exactly once, from a real `sluice serve` into a real
# PostgreSQL, under faults:
#   - `sluice mirror start` killed with SIGKILL at random moments, 20 times,
#     while a writer keeps setting, updating and deleting keys of the
#     served namespace; the server itself is killed once on the way and
#     comes back at another port (the source is known by its [source] name);
#   - its handler (apply_sql) adds each batch's event count to a counter
#     row, a side effect that is not idempotent;
#   - at the end the counter equals the number of events in the
#     namespace's log, and the target table equals the namespace's state
#     key by key (live rows by value digest, deleted keys as tombstones);
#   - a feed tampered with by the byte-altering proxy is refused, and
#     nothing of it is applied;
#   - a second mirror on the same source while one runs: exactly one of
#     them commits each range, the other says it was fenced (exit 3).
set -euo pipefail
. "$(dirname "$0")/common.bash"
. "$(dirname "$0")/pipeline_common.bash"
. "$(dirname "$0")/sync_common.bash"

trap 'cleanup_children; [ -n "${SVC_DIR:-}" ] && stop_services; true' EXIT
services_up pg
seed=${SLUICE_SEED:-$(($(date +%s) ^ $$))}
echo "mirror_crash.sh: seed $seed (rerun with SLUICE_SEED=$seed)"
RANDOM=$seed

store="$TMP/store"
"$SLUICE" -d "$store" init >/dev/null
"$SLUICE" -d "$store" ns create events --kind mutable >/dev/null
start_server node "$store"

sql "CREATE TABLE mirror_counter (n bigint NOT NULL); INSERT INTO mirror_counter VALUES (0)" >/dev/null
cat >"$TMP/handler.sql" <<'EOF'
UPDATE mirror_counter SET n = n + (SELECT count(*) FROM sluice_batch);
EOF
mirror_config() { # FILE PORT
	cat >"$1" <<EOF
[source]
type = "node"
url = "http://127.0.0.1:$2"
namespace = "events"
name = "events-feed"
[postgres]
url = "$SLUICE_PG_URL"
table = "mirror_items"
apply_sql = "handler.sql"
timeout_ms = 5000
[mirror]
batch_size = $((RANDOM % 200 + 20))
batch_ms = 20
retry_base_ms = 20
retry_max_ms = 200
EOF
}
cfg="$TMP/mirror.toml"
mirror_config "$cfg" "${PORT[node]}"

# The writer: each round imports 5..30 files over 150 keys (sets and
# updates, one commit) and sometimes deletes a key, until told to stop.
writer() {
	local round=0 n i dir
	while [ ! -e "$TMP/stop-writer" ]; do
		dir="$TMP/w$round"
		mkdir -p "$dir/k"
		n=$((RANDOM % 26 + 5))
		for ((i = 0; i < n; i++)); do
			printf 'round %d value %d %d' "$round" "$i" "$RANDOM" >"$dir/k/$((RANDOM % 150))"
		done
		"$SLUICE" -d "$store" import events "$dir" >/dev/null 2>&1 || true
		rm -rf "$dir"
		if ((RANDOM % 3 == 0)); then
			"$SLUICE" -d "$store" del events "k/$((RANDOM % 150))" >/dev/null 2>&1 || true
		fi
		round=$((round + 1))
	done
}
writer &
WRITER_PID=$!
CHILD_PIDS+=("$WRITER_PID")

kill_mirror_rounds 10 "$cfg" "$TMP/mirror.log"
# the node goes away and comes back at another port: the source keeps its
# name, so its position
stop_server node KILL
start_server node "$store"
mirror_config "$cfg" "${PORT[node]}"
kill_mirror_rounds 10 "$cfg" "$TMP/mirror.log"
kills=$KILLS
touch "$TMP/stop-writer"
wait "$WRITER_PID"
echo "mirror_crash.sh: $kills kills"
[ "$kills" -ge 20 ] || fail "only $kills of 20 mirrors were killed (some ended on their own)"

# Finish: apply what is left, then compare.
expect 0 "$SLUICE" mirror run --config "$cfg"
events=$("$SLUICE" -d "$store" log events | grep -cv ' commit ' || true)
[ "$events" -gt 100 ] || fail "the writer made only $events events"
counter=$(sql "SELECT n FROM mirror_counter")
echo "mirror_crash.sh: $events events in the log, counter $counter"
[ "$counter" = "$events" ] || fail "the handler counted $counter events, the log holds $events"
applied=$(sql "SELECT applied FROM sluice_mirror_position")
[ "$applied" = "$events" ] || fail "the position counts $applied events applied, not $events"

"$SLUICE" -d "$store" ls --json events | jq -r '"\(.key) \(.digest)"' | sort >"$TMP/want"
sql "SELECT key || ' ' || encode(sha256(value), 'hex') FROM mirror_items WHERE NOT deleted" |
	sort >"$TMP/got"
[ -s "$TMP/want" ] || fail "the namespace has no live key"
diff "$TMP/want" "$TMP/got" >&2 || fail "the target table differs from the namespace's state"
# every key ever deleted and not set again is a tombstone
"$SLUICE" -d "$store" log events | awk '$2 != "commit" { last[$3] = $2 } END { for (k in last) if (last[k] == "delete") print k }' |
	sort >"$TMP/want-deleted"
sql "SELECT key FROM mirror_items WHERE deleted" | sort >"$TMP/got-deleted"
diff "$TMP/want-deleted" "$TMP/got-deleted" >&2 || fail "the tombstones differ from the deletes"
echo "mirror_crash.sh: exactly once over $kills kills: ok"

# A tampered feed: every answer of the node altered by one bit.
sql "DELETE FROM mirror_items; DELETE FROM sluice_mirror_position; UPDATE mirror_counter SET n = 0" >/dev/null
printf 'corrupt /ops\n' >"$TMP/proxy.ctl"
start_proxy "${PORT[node]}" "$TMP/proxy.ctl"
mirror_config "$TMP/tampered.toml" "$PROXY_PORT"
set +e
"$SLUICE" mirror run --config "$TMP/tampered.toml" >"$TMP/tampered.out" 2>&1
code=$?
set -e
cat "$TMP/tampered.out"
[ "$code" != 0 ] || fail "a tampered feed was accepted"
grep -qi 'refused\|malformed\|verif\|proof\|digest\|corrupt' "$TMP/tampered.out" || fail "the refusal does not say why"
[ "$(sql "SELECT count(*) FROM mirror_items")" = 0 ] || fail "rows of a tampered feed were applied"
[ "$(sql "SELECT n FROM mirror_counter")" = 0 ] || fail "the handler ran on a tampered feed"
printf 'pass\n' >"$TMP/proxy.ctl.tmp" && mv "$TMP/proxy.ctl.tmp" "$TMP/proxy.ctl"
expect 0 "$SLUICE" mirror run --config "$TMP/tampered.toml"
[ "$(sql "SELECT n FROM mirror_counter")" = "$events" ] || fail "after the tamper, the events were not all applied once"
stop_proxy

# Two mirrors of one source at once: one commits each range, the other is fenced.
sql "DELETE FROM mirror_items; DELETE FROM sluice_mirror_position; UPDATE mirror_counter SET n = 0" >/dev/null
cat >"$TMP/slow.sql" <<'EOF'
UPDATE mirror_counter SET n = n + (SELECT count(*) FROM sluice_batch);
SELECT pg_sleep(0.02);
EOF
sed 's/handler.sql/slow.sql/; s/^batch_size = .*/batch_size = 10/' "$cfg" >"$TMP/two.toml"
set +e
"$SLUICE" mirror run --config "$TMP/two.toml" >"$TMP/one.out" 2>&1 &
one=$!
"$SLUICE" mirror run --config "$TMP/two.toml" >"$TMP/two.out" 2>&1 &
two=$!
wait "$one"
c1=$?
wait "$two"
c2=$?
set -e
echo "mirror_crash.sh: two mirrors exited $c1 and $c2"
[ "$c1" = 3 ] || [ "$c2" = 3 ] || fail "neither mirror was fenced: $(cat "$TMP/one.out" "$TMP/two.out")"
[ "$c1" = 0 ] || [ "$c2" = 0 ] || fail "neither mirror finished"
grep -qi fenced "$TMP/one.out" "$TMP/two.out" || fail "the fenced mirror did not say so"
[ "$(sql "SELECT n FROM mirror_counter")" = "$events" ] || fail "two mirrors applied a range twice or missed one"
echo "mirror_crash.sh: ok"

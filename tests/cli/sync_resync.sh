#!/usr/bin/env bash
# `sluice sync` after the server pruned operations a replica still needs,
# real processes over loopback. A replica is synced, then left behind
# while the server writes on (updates of the same keys, so its floor
# rises) and `sluice prune` deletes what lies below the floor. The next
# `sync --once` starts again from the server's floor by itself: it ends
# with a root match, the replica equals the server (root, keys, values)
# and verifies, no side namespace is left, and the resync is logged and
# counted. Then again with the client killed with SIGKILL at random
# moments of a resync: between kills the replica reads as it did before
# (or, once the swap is done, as the server), verifies, and the run after
# the last kill completes. Seeded by SLUICE_SEED.
set -euo pipefail
source "$(dirname "$0")/common.bash"
source "$(dirname "$0")/sync_common.bash"

seed=${SLUICE_SEED:-$RANDOM}
echo "sync_resync: seed $seed (rerun with SLUICE_SEED=$seed)" >&2
RANDOM=$seed

srv="$TMP/srv"
rep="$TMP/rep"

pruned_in() { # DIR NS: the pruned boundary
	"$SLUICE" ns list -d "$1" --json | jq -r --arg ns "$2" 'select(.name == $ns) | .pruned'
}

# write_on_and_prune N: the server commits N generated updates (over a
# key space that covers the replica's keys), then prunes; it must have
# pruned past what the replica holds.
write_on_and_prune() {
	local n=$1 port=${PORT[s]}
	stop_server s
	start_server s "$srv" --db mutable -i "$n" -o 0 -t 1h -p "$port"
	expect 0 "$SLUICE" prune -d "$srv" demo
	[ "$(pruned_in "$srv" demo)" -gt "$(size_in "$rep" demo)" ] ||
		fail "the server did not prune past the replica ($(pruned_in "$srv" demo) <= $(size_in "$rep" demo))"
}

# ---------------------------------------------------- a replica left behind
start_server s "$srv" --db mutable -i 3000 -o 0 -t 1h
SLUICE_LOG=info expect 0 "$SLUICE" sync -d "$rep" -s "127.0.0.1:${PORT[s]}" --once demo
assert_same_ns "$srv" "$rep" demo
write_on_and_prune 8000

# Before: the client used to stop here and ask for the replica to be removed.
SLUICE_LOG=info expect 0 "$SLUICE" sync -d "$rep" -s "127.0.0.1:${PORT[s]}" --once -m 0 demo
expect_in "$ERR" 'msg="the server pruned operations this replica still needs; rebuilding it' \
	"the resync is logged"
expect_in "$ERR" 'msg="replaced the local namespace with a copy rebuilt' "the swap is logged"
expect_in "$ERR" 'msg="root match"' "the resync ends with a root match"
assert_same_ns "$srv" "$rep" demo
[ "$(pruned_in "$rep" demo)" = "$(pruned_in "$srv" demo)" ] || fail "the replica starts at the server's floor"
"$SLUICE" ns list -d "$rep" >"$TMP/ns.txt"
grep -q resync "$TMP/ns.txt" && fail "a side namespace was left: $(cat "$TMP/ns.txt")"
"$SLUICE" verify -d "$rep" demo >/dev/null || fail "the replica does not verify"

# The count, from a continuous client's metrics.
write_on_and_prune 12000
SLUICE_LOG=info "$SLUICE" sync -d "$rep" -s "127.0.0.1:${PORT[s]}" -m 0 -i 1h demo 2>"$TMP/live.log" &
client=$!
CHILD_PIDS+=("$client")
wait_until 30 grep -q 'msg="root match"' "$TMP/live.log" ||
	fail "the continuous client did not resync: $(tail -5 "$TMP/live.log")"
mport=$(sed -n 's/.*msg="serving metrics" port=\([0-9]*\).*/\1/p' "$TMP/live.log")
[ "$(curl -sf "http://127.0.0.1:$mport/metrics" | awk '$1 == "sluice_client_resyncs_total" { print $2 }')" = 1 ] ||
	fail "sluice_client_resyncs_total is not 1"
kill -TERM "$client"
wait "$client" || fail "sync exits 0 on SIGTERM"
assert_same_ns "$srv" "$rep" demo

# ------------------------------------------------ killed during a resync
write_on_and_prune 20000
old_root=$(root_in "$rep" demo)
key=$("$SLUICE" ls -d "$rep" demo | sed -n 100p)
"$SLUICE" get -d "$rep" demo "$key" >"$TMP/old.value"
saw_side=0
for run in 1 2 3 4 5 6 7 8; do
	# Batches of two, one at a time: slow enough (seconds) for the kills
	# to land inside the resync, between the runs it applies.
	"$SLUICE" sync -d "$rep" -s "127.0.0.1:${PORT[s]}" --once -b 2 -r 1 demo \
		2>"$TMP/kill.$run.log" &
	pid=$!
	CHILD_PIDS+=("$pid")
	sleep "0.$((RANDOM % 5 + 1))$((RANDOM % 10))"
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	"$SLUICE" ns list -d "$rep" | grep -q '^\.resync\.demo ' && saw_side=$((saw_side + 1))
	"$SLUICE" verify -d "$rep" demo >/dev/null || fail "run $run: the replica does not verify"
	if [ "$(root_in "$rep" demo)" = "$old_root" ]; then
		# Not swapped yet: the old copy reads as it did.
		"$SLUICE" get -d "$rep" demo "$key" >"$TMP/now.value" ||
			fail "run $run: the old copy cannot be read"
		cmp -s "$TMP/old.value" "$TMP/now.value" || fail "run $run: the old copy changed"
	else
		[ "$(root_in "$rep" demo)" = "$(root_in "$srv" demo)" ] ||
			fail "run $run: the replica is neither the old copy nor the server's"
		break
	fi
done
echo "sync_resync: the side copy was there after $saw_side of the kills" >&2
[ "$saw_side" -gt 0 ] || fail "no kill landed inside the resync"
expect 0 "$SLUICE" sync -d "$rep" -s "127.0.0.1:${PORT[s]}" --once demo
assert_same_ns "$srv" "$rep" demo
"$SLUICE" ns list -d "$rep" >"$TMP/ns.txt"
grep -q resync "$TMP/ns.txt" && fail "a side namespace was left: $(cat "$TMP/ns.txt")"
"$SLUICE" verify -d "$rep" demo >/dev/null || fail "the replica does not verify"
stop_server s
echo "sync_resync: ok"

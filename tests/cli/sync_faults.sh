#!/usr/bin/env bash
# Sync under faults, real processes over loopback: the client killed with
# SIGKILL at random moments and resumed; the server killed and restarted
# mid-sync; a proxy that corrupts, truncates, stalls or refuses responses
# (every altered batch is rejected, and the client converges once the
# proxy behaves). Seeded by SLUICE_SEED.
set -euo pipefail
source "$(dirname "$0")/common.bash"
source "$(dirname "$0")/sync_common.bash"

seed=${SLUICE_SEED:-$RANDOM}
echo "sync_faults: seed $seed (rerun with SLUICE_SEED=$seed)" >&2
RANDOM=$seed

srv="$TMP/srv"
start_server s "$srv" --db immutable -i 40000 -o 0
port=${PORT[s]}

# --------------------------------------------- kill -9 of the client, resume
c="$TMP/c-kill"
for run in 1 2 3 4 5 6; do
	SLUICE_LOG=info "$SLUICE" sync -d "$c" -s "127.0.0.1:$port" --once -b 10 -r 1 demo \
		2>"$TMP/kill.$run.log" &
	pid=$!
	CHILD_PIDS+=("$pid")
	sleep "0.$((RANDOM % 6 + 1))"
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	if "$SLUICE" root -d "$c" demo >/dev/null 2>&1; then
		"$SLUICE" verify -d "$c" demo >/dev/null || fail "run $run: store damaged by kill -9"
		size=$(size_in "$c" demo)
		# The next run resumes at what is stored; nothing applied is fetched again.
		SLUICE_LOG=info "$SLUICE" sync -d "$c" -s "127.0.0.1:$port" --once -b 10 -r 1 demo \
			2>"$TMP/resume.$run.log" &
		pid=$!
		CHILD_PIDS+=("$pid")
		wait_until 20 grep -q 'msg="syncing"' "$TMP/resume.$run.log" || fail "resume did not start"
		grep -q "msg=\"syncing\" ns=demo local_size=$size " "$TMP/resume.$run.log" ||
			fail "run $run: resumed at $(grep syncing "$TMP/resume.$run.log"), stored $size"
		sleep "0.$((RANDOM % 3))"
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
done
expect 0 "$SLUICE" sync -d "$c" -s "127.0.0.1:$port" --once demo
assert_same_ns "$srv" "$c" demo

# ---------------------------------------------- server restart mid-sync
c="$TMP/c-restart"
SLUICE_LOG=info "$SLUICE" sync -d "$c" -s "127.0.0.1:$port" --once -b 10 -r 1 --timeout 2s demo \
	2>"$TMP/restart.log" &
client=$!
CHILD_PIDS+=("$client")
sleep 0.3
stop_server s KILL
sleep 1
start_server s "$srv" -p "$port"
wait "$client" || fail "the client did not survive a server restart: $(tail -5 "$TMP/restart.log")"
assert_same_ns "$srv" "$c" demo
grep -q 'retrying\|fetching it again\|starting over' "$TMP/restart.log" ||
	fail "the restart was not noticed: $(tail -5 "$TMP/restart.log")"

# --------------------------------------------- a proxy that alters bytes
control="$TMP/control"
set_mode() { echo "$1" >"$control.tmp" && mv "$control.tmp" "$control"; }
start_proxy "$port" "$control"
for mode in corrupt garbage truncate error503 reset stall; do
	c="$TMP/c-$mode"
	set_mode "$mode /ops"
	SLUICE_LOG=info "$SLUICE" sync -d "$c" -s "127.0.0.1:$PROXY_PORT" --once -b 500 -r 2 \
		--timeout 1s demo 2>"$TMP/$mode.log" &
	client=$!
	CHILD_PIDS+=("$client")
	wait_until 30 grep -q "^$mode GET /api/v0/ns/demo/ops" "$TMP/proxy.log" ||
		fail "$mode: no ops request reached the proxy"
	sleep 1
	# While the proxy alters every ops response, nothing is applied.
	if "$SLUICE" root -d "$c" demo >/dev/null 2>&1; then
		[ "$(size_in "$c" demo)" -eq 0 ] || fail "$mode: applied an altered batch"
	fi
	set_mode pass
	wait "$client" || fail "$mode: the client did not converge: $(tail -5 "$TMP/$mode.log")"
	assert_same_ns "$srv" "$c" demo
	altered=$(grep -c "^$mode GET /api/v0/ns/demo/ops" "$TMP/proxy.log" || true)
	if [ "$mode" = corrupt ] || [ "$mode" = garbage ]; then
		rejected=$(grep -c 'rejected a batch that failed verification' "$TMP/$mode.log" || true)
		[ "$rejected" -eq "$altered" ] ||
			fail "$mode: $altered responses altered, $rejected rejected"
	fi
	: >"$TMP/proxy.log.keep"
	cat "$TMP/proxy.log" >>"$TMP/proxy.log.keep"
	: >"$TMP/proxy.log"
done
stop_proxy
stop_server s
echo "sync_faults: ok"

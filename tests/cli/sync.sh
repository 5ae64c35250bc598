#!/usr/bin/env bash
# `sluice sync` against `sluice serve`, real processes over loopback:
# first sync of an immutable and of a mutable namespace (from the floor,
# with pinned nodes), following a server that keeps writing, trust keys,
# and a server that rewrites its history.
set -euo pipefail
source "$(dirname "$0")/common.bash"
source "$(dirname "$0")/sync_common.bash"

sync_once() { # DIR PORT NS [ARGS]
	local dir=$1 port=$2 ns=$3
	shift 3
	SLUICE_LOG=info "$SLUICE" sync -d "$dir" -s "127.0.0.1:$port" --once "$@" "$ns"
}

# ------------------------------------------------- first sync, immutable
imm="$TMP/imm"
start_server imm "$imm" --db immutable -i 3000 -o 0 -t 1h
expect 0 sync_once "$TMP/c1" "${PORT[imm]}" demo -b 64
expect_in "$ERR" 'msg="root match"' "first sync logs the root match"
assert_same_ns "$imm" "$TMP/c1" demo
# A second run has nothing to fetch.
expect 0 sync_once "$TMP/c1" "${PORT[imm]}" demo
expect_in "$ERR" 'ops_fetched=0' "an up-to-date client fetches nothing"

# ------------------------------------------ first sync, mutable from floor
mut="$TMP/mut"
start_server mut "$mut" --db mutable -i 4000 -o 0 -t 1h
floor=$(curl -sf "http://127.0.0.1:${PORT[mut]}/api/v0/ns/demo/target" | jq .floor)
[ "$floor" -gt 0 ] || fail "the generated mutable namespace has a floor"
expect 0 sync_once "$TMP/c2" "${PORT[mut]}" demo -b 100 -r 8
assert_same_ns "$mut" "$TMP/c2" demo
"$SLUICE" log -d "$TMP/c2" --json --from "$floor" --limit 1 demo | jq -e --argjson f "$floor" '.loc == $f' >/dev/null ||
	fail "the replica holds the server's floor $floor"
expect 1 "$SLUICE" log -d "$TMP/c2" --from $((floor - 1)) demo
expect_in "$ERR" "pruned" "the replica starts at the server's floor $floor"

# ----------------------------------------------------------- trust keys
key=$(node_key_of "${PORT[mut]}")
expect 0 sync_once "$TMP/c3" "${PORT[mut]}" demo --trust-key "$key" --local-ns copy
[ "$(root_in "$TMP/c3" copy)" = "$(root_in "$mut" demo)" ] || fail "--local-ns copy"
other=$(node_key_of "${PORT[imm]}")
expect 1 sync_once "$TMP/c4" "${PORT[mut]}" demo --trust-key "$other"
expect_in "$ERR" "not the trusted key" "a wrong trust key is refused"
expect 1 "$SLUICE" root -d "$TMP/c4" demo # nothing was created
expect 2 "$SLUICE" sync -d "$TMP/c4" -s "127.0.0.1:1" --trust-key abcd demo
# A namespace the server does not have: an answer, not an outage; no retries.
expect 1 timeout 20 "$SLUICE" sync -d "$TMP/c4" -s "127.0.0.1:${PORT[mut]}" --once nosuchns
expect_in "$ERR" "namespace nosuchns on http://127.0.0.1:${PORT[mut]}: fetch target: HTTP 404" \
	"a missing namespace is reported"
stop_server imm
stop_server mut

# ------------------------------------ following a server that keeps writing
live="$TMP/live"
start_server live "$live" --db immutable -i 20000 -t 20ms -o 10
SLUICE_LOG=info "$SLUICE" sync -d "$TMP/c5" -s "127.0.0.1:${PORT[live]}" -t 50ms -i 200ms \
	-b 10 -r 2 demo 2>"$TMP/c5.log" &
client=$!
CHILD_PIDS+=("$client")
three_syncs() { [ "$(grep -c 'msg="root match"' "$TMP/c5.log")" -ge 3 ]; }
wait_until 30 three_syncs ||
	fail "continuous sync did not complete three syncs: $(tail -5 "$TMP/c5.log")"
kill -TERM "$client"
wait "$client" || fail "sync exits 0 on SIGTERM"
grep -q 'msg="moving to a new target"' "$TMP/c5.log" || fail "the client followed new targets"
# Stop the writer; the client catches up to exactly the server.
stop_server live
start_server live "$live"
expect 0 sync_once "$TMP/c5" "${PORT[live]}" demo
assert_same_ns "$live" "$TMP/c5" demo
stop_server live

# --------------------------------------- a server that rewrites history
a="$TMP/hist-a"
b="$TMP/hist-b"
start_server a "$a" --db immutable -i 200 -o 0
expect 0 sync_once "$TMP/c6" "${PORT[a]}" demo
before=$(root_in "$TMP/c6" demo)
stop_server a
# Another history with more operations, on the same port.
start_server b "$b" --db immutable -i 400 -o 0 -p "${PORT[a]}"
expect 1 sync_once "$TMP/c6" "${PORT[b]}" demo
expect_in "$ERR" "rewrote its history" "a rewritten history is reported"
[ "$(root_in "$TMP/c6" demo)" = "$before" ] || fail "the client followed a rewritten history"
# Same size, other root.
stop_server b
rm -rf "$b"
start_server b "$b" --db immutable -i 200 -o 0 -p "${PORT[a]}"
expect 1 sync_once "$TMP/c6" "${PORT[b]}" demo
expect_in "$ERR" "rewrote its history" "another root at the same size is reported"
[ "$(root_in "$TMP/c6" demo)" = "$before" ] || fail "the client followed a rewritten history"
stop_server b
echo "sync: ok"

# Sourced by the sync tests (after common.bash): start and stop `sluice
# serve`, `sluice sync` and the fault proxy as real processes on loopback,
# on ports the kernel picks.
#
#   start_server NAME DIR [serve args...]  sets SERVER_PID[NAME], PORT[NAME]
#   stop_server NAME [SIGNAL]
#   start_proxy UPSTREAM_PORT CONTROL_FILE  sets PROXY_PID, PROXY_PORT
#   root_in DIR NS / size_in DIR NS         a store's root / size for NS

declare -A SERVER_PID PORT
PROXY_PID=
CHILD_PIDS=()

cleanup_children() {
	local pid
	for pid in "${SERVER_PID[@]}" $PROXY_PID "${CHILD_PIDS[@]}"; do
		kill -9 "$pid" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup_children EXIT

# start_server NAME DIR [ARGS]: logs in $TMP/NAME.log.
start_server() {
	local name=$1 dir=$2
	shift 2
	# Emptied here, not by the background job's redirection, which may
	# come after the wait below has read a previous server's log.
	: >"$TMP/$name.log"
	SLUICE_LOG=info "$SLUICE" serve -d "$dir" -p 0 -m 0 "$@" >>"$TMP/$name.log" 2>&1 &
	SERVER_PID[$name]=$!
	if ! wait_until 20 grep -q 'msg="serving"' "$TMP/$name.log"; then
		cat "$TMP/$name.log" >&2
		fail "server $name did not start"
	fi
	PORT[$name]=$(sed -n 's/.*msg="serving".* port=\([0-9]*\) .*/\1/p' "$TMP/$name.log" | tail -1)
	METRICS_PORT[$name]=$(sed -n 's/.*msg="serving".*metrics_port=\([0-9]*\).*/\1/p' "$TMP/$name.log" | tail -1)
}
declare -A METRICS_PORT

stop_server() {
	local name=$1 sig=${2:-TERM}
	kill -"$sig" "${SERVER_PID[$name]}" 2>/dev/null || true
	wait "${SERVER_PID[$name]}" 2>/dev/null || true
	unset "SERVER_PID[$name]"
}

start_proxy() {
	local upstream=$1 control=$2
	node "$SLUICE_SRC/tests/tools/faultproxy.js" --upstream "127.0.0.1:$upstream" \
		--control "$control" >"$TMP/proxy.out" 2>>"$TMP/proxy.log" &
	PROXY_PID=$!
	wait_until 20 grep -q '^listening' "$TMP/proxy.out" || fail "proxy did not start"
	PROXY_PORT=$(sed -n 's/^listening \([0-9]*\)/\1/p' "$TMP/proxy.out")
}

stop_proxy() {
	kill -TERM "$PROXY_PID" 2>/dev/null || true
	wait "$PROXY_PID" 2>/dev/null || true
	PROXY_PID=
}

root_in() {
	"$SLUICE" root -d "$1" --json "$2" | jq -r .root
}

size_in() {
	"$SLUICE" root -d "$1" --json "$2" | jq -r .size
}

# The node key a server in DIR signs with (public half of DIR/node.key).
node_key_of() {
	curl -sf "http://127.0.0.1:$1/api/v0/info" | jq -r .node
}

# assert_same_ns DIR_A DIR_B NS: same root, same keys and values, and B verifies.
assert_same_ns() {
	local a=$1 b=$2 ns=$3
	[ "$(root_in "$a" "$ns")" = "$(root_in "$b" "$ns")" ] ||
		fail "roots differ: $(root_in "$a" "$ns") vs $(root_in "$b" "$ns")"
	"$SLUICE" ls -d "$a" "$ns" >"$TMP/ls.a"
	"$SLUICE" ls -d "$b" "$ns" >"$TMP/ls.b"
	cmp -s "$TMP/ls.a" "$TMP/ls.b" || fail "key listings differ"
	"$SLUICE" verify -d "$b" "$ns" >/dev/null || fail "replica does not verify"
}

# Sourced by the engine tests (after common.bash): write an engine config,
# start and stop `sluice engine serve` as a real process on ports the
# kernel picks, and the load harness (tests/tools/engine_load.c).
#
#   engine_config FILE WALDIR L3... [EXTRA TOML LINES]
#       L3: "store DIR NS", "postgresql URL TABLE" or "mysql URL TABLE"
#   start_engine CONFIG      sets ENGINE_PID, EPORT, EMPORT, EURL; log in $TMP/engine.log
#   stop_engine [SIGNAL]
#   engine_status CONFIG     `sluice engine status --json` on EPORT

LOAD="$(dirname "$SLUICE")/engine_load"
[ -x "$LOAD" ] || fail "no $LOAD: build the engine_load target"
ENGINE_PID=

cleanup_engine() {
	[ -n "$ENGINE_PID" ] && kill -9 "$ENGINE_PID" 2>/dev/null
	[ -n "${LOAD_PID:-}" ] && kill -9 "$LOAD_PID" 2>/dev/null
	wait 2>/dev/null || true
	[ -n "${SVC_DIR:-}" ] && stop_services
	rm -rf "$TMP"
}
trap cleanup_engine EXIT

engine_config() {
	local file=$1 wal=$2 type=$3 a=$4 b=$5
	shift 5
	{
		echo "[wal]"
		echo "dir = \"$wal\""
		echo "[l3]"
		echo "type = \"$type\""
		if [ "$type" = store ]; then
			echo "dir = \"$a\""
			echo "namespace = \"$b\""
		else
			echo "url = \"$a\""
			echo "table = \"$b\""
		fi
		local line
		for line in "$@"; do echo "$line"; done
	} >"$file"
}

start_engine() {
	local config=$1
	: >"$TMP/engine.log"
	SLUICE_LOG=info "$SLUICE" engine serve --config "$config" -p 0 -m 0 >>"$TMP/engine.log" 2>&1 &
	ENGINE_PID=$!
	if ! wait_until 30 grep -q 'msg="serving"' "$TMP/engine.log"; then
		cat "$TMP/engine.log" >&2
		fail "the engine did not start"
	fi
	EPORT=$(sed -n 's/.*msg="serving".* port=\([0-9]*\) .*/\1/p' "$TMP/engine.log" | tail -1)
	EMPORT=$(sed -n 's/.*msg="serving".*metrics_port=\([0-9]*\).*/\1/p' "$TMP/engine.log" | tail -1)
	EURL="http://127.0.0.1:$EPORT"
}

stop_engine() {
	local sig=${1:-TERM}
	kill -"$sig" "$ENGINE_PID" 2>/dev/null || true
	wait "$ENGINE_PID" 2>/dev/null || true
	ENGINE_PID=
}

engine_status() {
	"$SLUICE" engine status --config "$1" -p "$EPORT" --json
}

# flushed CONFIG: true once L3 holds every acknowledged write
flushed() {
	[ "$(engine_status "$1" | jq -r '.l3.lag')" = 0 ]
}

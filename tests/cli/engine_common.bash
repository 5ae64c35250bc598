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

# l3_outage CONFIG NAME CRASH START ROW_FN FALSE SECONDS: L3 (NAME, its
# services.sh actions CRASH and START) is crashed while the load tool
# writes at `local` for SECONDS: writes stay acknowledged meanwhile and
# status shows L3 down; once it is back everything drains, every
# acknowledged write is there, and a key written as v1 during the outage
# and v2 after it is v2 in the table: ROW_FN KEY prints
# "version|deleted|sha256 of value", FALSE being how the table says false.
# Sets OUTAGE_DURING (writes acknowledged while L3 was down).
l3_outage() {
	local cfg=$1 name=$2 crash=$3 start=$4 row_fn=$5 false_word=$6 seconds=$7
	local log="$TMP/outage.log" before out v1 v2 want
	: >"$log"
	"$LOAD" load "$EURL" "$log" --threads 4 --keys 500 --seconds "$seconds" --ack local \
		>"$TMP/load.out" 2>"$TMP/load.err" &
	LOAD_PID=$!
	sleep 1
	bash "$SLUICE_SRC/scripts/services.sh" "$crash" "$SVC_DIR" >/dev/null 2>&1 ||
		fail "could not stop $name"
	before=$(wc -l <"$log")
	out=$(curl -sS -X PUT --data-binary 'v1 during the outage' "$EURL/api/v0/kv/outage/x")
	v1=$(echo "$out" | jq -r .version)
	[ "$v1" -gt 0 ] || fail "a write during the outage was not acknowledged: $out"
	sleep 1.5
	OUTAGE_DURING=$(($(wc -l <"$log") - before))
	[ "$OUTAGE_DURING" -gt 0 ] || fail "no write was acknowledged while $name was down"
	[ "$(engine_status "$cfg" | jq -r .l3.up)" = false ] || fail "status does not show L3 down"
	bash "$SLUICE_SRC/scripts/services.sh" "$start" "$SVC_DIR" >/dev/null 2>&1 ||
		fail "could not start $name"
	wait "$LOAD_PID"
	LOAD_PID=
	out=$(curl -sS -X PUT --data-binary 'v2 after it' "$EURL/api/v0/kv/outage/x")
	v2=$(echo "$out" | jq -r .version)
	wait_until 60 flushed "$cfg" || fail "the WAL did not drain after the outage"
	"$LOAD" check "$EURL" "$log" >"$TMP/check.out" 2>"$TMP/check.err" ||
		fail "after the outage: $(cat "$TMP/check.out" "$TMP/check.err" | head)"
	want="$v2|$false_word|$(printf 'v2 after it' | sha256sum | cut -d' ' -f1)"
	[ "$("$row_fn" outage/x)" = "$want" ] || fail "outage/x is $("$row_fn" outage/x), want $want"
}

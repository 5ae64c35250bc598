#!/usr/bin/env bash
# The engine with a real MariaDB table as L3: MariaDB killed (kill -9)
# mid-load with `--ack local`. Writes stay acknowledged meanwhile, status
# shows L3 down; once MariaDB is started again everything drains, the load
# tool's check finds every acknowledged write, and a key written as v1
# during the outage and v2 after it ends as v2 in the table, its value's
# SHA-256 the one MariaDB computes.
set -euo pipefail
. "$(dirname "$0")/common.bash"
. "$(dirname "$0")/pipeline_common.bash"
. "$(dirname "$0")/engine_common.bash"

services_up mysql

cfg="$TMP/engine.toml"
engine_config "$cfg" "$TMP/wal" mysql "$SLUICE_MYSQL_URL" kv "[batch]" "ms = 20"
sed -i 's/^\[l3\]$/[l3]\ntimeout_ms = 2000/' "$cfg"
log="$TMP/acked.log"

my_sql() {
	mariadb --no-defaults -h 127.0.0.1 -P "$SLUICE_MYSQL_PORT" -u sluice -N -B sluice -e "$1"
}
my_row() { # key -> "version|deleted|sha256 of value"
	my_sql "SELECT CONCAT_WS('|', version, deleted, SHA2(COALESCE(value, ''), 256)) FROM kv WHERE \`key\` = '$1'"
}

start_engine "$cfg"
"$LOAD" load "$EURL" "$log" --threads 4 --keys 500 --seconds 5 --ack local \
	>"$TMP/load.out" 2>"$TMP/load.err" &
LOAD_PID=$!
sleep 1
bash "$SLUICE_SRC/scripts/services.sh" crash-mysql "$SVC_DIR" >/dev/null 2>&1 ||
	fail "could not kill MariaDB"
before=$(wc -l <"$log")
out=$(curl -sS -X PUT --data-binary 'v1 during the outage' "$EURL/api/v0/kv/outage/x")
v1=$(echo "$out" | jq -r .version)
[ "$v1" -gt 0 ] || fail "a write during the outage was not acknowledged: $out"
sleep 1.5
during=$(($(wc -l <"$log") - before))
[ "$during" -gt 0 ] || fail "no write was acknowledged while MariaDB was down"
[ "$(engine_status "$cfg" | jq -r .l3.up)" = false ] || fail "status does not show L3 down"
bash "$SLUICE_SRC/scripts/services.sh" start-mysql "$SVC_DIR" >/dev/null 2>&1 ||
	fail "could not start MariaDB"
wait "$LOAD_PID"
LOAD_PID=
out=$(curl -sS -X PUT --data-binary 'v2 after it' "$EURL/api/v0/kv/outage/x")
v2=$(echo "$out" | jq -r .version)
wait_until 60 flushed "$cfg" || fail "the WAL did not drain after the outage"
"$LOAD" check "$EURL" "$log" >"$TMP/check.out" 2>"$TMP/check.err" ||
	fail "after the outage: $(cat "$TMP/check.out" "$TMP/check.err" | head)"
want="$v2|0|$(printf 'v2 after it' | sha256sum | cut -d' ' -f1)"
[ "$(my_row outage/x)" = "$want" ] || fail "outage/x is $(my_row outage/x), want $want"
# what the engine acknowledged is in the table itself, not only in its L1
[ "$(my_sql 'SELECT COUNT(*) FROM kv')" -gt 0 ] || fail "the table is empty"
stop_engine TERM
echo "engine_mysql.sh: outage: $during writes acknowledged while MariaDB was down, $(cat "$TMP/check.out")"
echo "engine_mysql.sh: ok"

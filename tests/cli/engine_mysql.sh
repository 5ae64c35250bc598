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

my_sql() {
	mariadb --no-defaults -h 127.0.0.1 -P "$SLUICE_MYSQL_PORT" -u sluice -N -B sluice -e "$1"
}
my_row() { # key -> "version|deleted|sha256 of value"
	my_sql "SELECT CONCAT_WS('|', version, deleted, SHA2(COALESCE(value, ''), 256)) FROM kv WHERE \`key\` = '$1'"
}

start_engine "$cfg"
l3_outage "$cfg" MariaDB crash-mysql start-mysql my_row 0 5
# what the engine acknowledged is in the table itself, not only in its L1
[ "$(my_sql 'SELECT COUNT(*) FROM kv')" -gt 0 ] || fail "the table is empty"
stop_engine TERM
echo "engine_mysql.sh: outage: $OUTAGE_DURING writes acknowledged while MariaDB was down, $(cat "$TMP/check.out")"
echo "engine_mysql.sh: ok"

#!/usr/bin/env bash
# The engine with a real PostgreSQL table as L3, under faults:
#   - kill -9 under `l3` load, then everything acknowledged is there;
#   - PostgreSQL stopped (pg_ctl stop -m immediate) for a while under load:
#     writes stay acknowledged meanwhile, all of it drains once it is back,
#     and a key written as v1 during the outage and v2 after it ends as v2;
#   - PostgreSQL frozen (SIGSTOP) under a fixed load: L1 stays within its
#     budget (4 MiB, while 8 KiB values pile up), callers get 429 once the
#     WAL nears its cap, and it all drains after SIGCONT;
#   - a row the table refuses (a CHECK constraint) is retried, then parked
#     and shown by `sluice engine status`, without holding up the others.
set -euo pipefail
. "$(dirname "$0")/common.bash"
. "$(dirname "$0")/pipeline_common.bash"
. "$(dirname "$0")/engine_common.bash"

services_up pg
seed=${SLUICE_SEED:-$(( $(date +%s) ^ $$ ))}
echo "engine_pg.sh: seed $seed (rerun with SLUICE_SEED=$seed)"
RANDOM=$seed

cfg="$TMP/engine.toml"
engine_config "$cfg" "$TMP/wal" postgresql "$SLUICE_PG_URL" kv "[batch]" "ms = 20"
sed -i 's/^\[l3\]$/[l3]\ntimeout_ms = 2000\nmax_attempts = 3/' "$cfg"
sed -i 's/^\[wal\]$/[wal]\nmax_mb = 8\nsegment_mb = 1/' "$cfg"
printf '[l1]\nbudget_mb = 4\n[backpressure]\nthrottle_wait_ms = 10\n' >>"$cfg"
log="$TMP/acked.log"

pg_row() { # key -> "version|deleted|sha256 of value"
	sql "SELECT version, deleted, encode(sha256(coalesce(value, ''::bytea)), 'hex') FROM kv WHERE key = '$1'"
}

# 1. kill -9 under l3 load
for round in 1 2 3 4 5; do
	start_engine "$cfg"
	"$LOAD" load "$EURL" "$log" --threads 4 --keys 200 --seconds 30 --ack l3 --deletes --give-up-ms 300 \
		>"$TMP/load.out" 2>"$TMP/load.err" &
	LOAD_PID=$!
	sleep "$((RANDOM % 10 + 3))e-1"
	stop_engine KILL
	wait "$LOAD_PID"
	LOAD_PID=
done
start_engine "$cfg"
"$LOAD" check "$EURL" "$log" >"$TMP/check.out" 2>"$TMP/check.err" ||
	fail "kill -9 with l3: $(cat "$TMP/check.out" "$TMP/check.err" | head)"
echo "engine_pg.sh: kill -9: $(wc -l <"$log") acknowledged, $(cat "$TMP/check.out")"

# 2. PostgreSQL stopped mid-load
l3_outage "$cfg" PostgreSQL crash-pg start-pg pg_row f 6
echo "engine_pg.sh: outage: $OUTAGE_DURING writes acknowledged while PostgreSQL was down, $(cat "$TMP/check.out")"

# 3. PostgreSQL frozen under a fixed load
pm=$(head -1 "$SVC_DIR/pg/postmaster.pid")
: >"$log"
budget=$(engine_status "$cfg" | jq -r .l1.budget_bytes)
"$LOAD" load "$EURL" "$log" --threads 4 --keys 5000 --seconds 8 --ack local --value-size 8192 \
	>"$TMP/load.out" 2>"$TMP/load.err" &
LOAD_PID=$!
sleep 0.5
kill -STOP "$pm" $(pgrep -P "$pm") 2>/dev/null || true
max_l1=0
for i in $(seq 1 40); do
	b=$(engine_status "$cfg" | jq -r .l1.bytes)
	[ "$b" -gt "$max_l1" ] && max_l1=$b
	sleep 0.1
done
kill -CONT "$pm" $(pgrep -P "$pm") 2>/dev/null || true
wait "$LOAD_PID"
LOAD_PID=
busy=$(sed -n 's/.*busy=\([0-9]*\).*/\1/p' "$TMP/load.out")
[ "$busy" -gt 0 ] || fail "no caller was refused while PostgreSQL was frozen: $(cat "$TMP/load.out")"
# within a tenth: values of the last few milliseconds, not yet synced,
# cannot be released yet
[ "$max_l1" -le $((budget + budget / 10)) ] || fail "L1 held $max_l1 bytes, over its budget of $budget"
wait_until 60 flushed "$cfg" || fail "the WAL did not drain after SIGCONT"
"$LOAD" check "$EURL" "$log" >"$TMP/check.out" 2>"$TMP/check.err" ||
	fail "after the freeze: $(cat "$TMP/check.out" "$TMP/check.err" | head)"
echo "engine_pg.sh: freeze: $(cat "$TMP/load.out"), L1 at most $max_l1 of $budget bytes, $(cat "$TMP/check.out")"

# 4. a row the table refuses is parked, the others go on
sql "ALTER TABLE kv ADD CONSTRAINT small CHECK (octet_length(value) < 1000) NOT VALID"
head -c 2000 /dev/zero | tr '\0' x >"$TMP/big"
code=$(curl -sS -o /dev/null -w '%{http_code}' -X PUT --data-binary @"$TMP/big" "$EURL/api/v0/kv/too/big")
[ "$code" = 200 ] || fail "a local write the table will refuse: $code"
out=$(curl -sS -X PUT -H 'Sluice-Ack: l3' --data-binary small "$EURL/api/v0/kv/fine")
[ "$(echo "$out" | jq -r .version)" -gt 0 ] || fail "a good row was held up: $out"
wait_until 30 sh -c "\"$SLUICE\" engine status --config '$cfg' -p $EPORT --json | jq -e '.parked_count == 1'" ||
	fail "the refused row was not parked: $(engine_status "$cfg")"
expect 0 "$SLUICE" engine status --config "$cfg" -p "$EPORT"
expect_in "$OUT" "too/big" "engine status lists the parked row"
expect_in "$OUT" "small" "engine status says why"
stop_engine TERM
echo "engine_pg.sh: ok"

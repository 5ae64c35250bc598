#!/usr/bin/env bash
# The engine with a real Redis 7 as L2 (and the store as L3), under faults:
#   1. the tiers per write: L2 only with a TTL (gone after it), L3 only (L2
#      keeps a hole, so the older L2 copy is never answered), both;
#   2. Redis killed with SIGKILL under load: every acknowledged write is
#      there (read back through the engine), L2's breaker opens, L2 is not
#      trusted, and reads keep being answered (L1 and L3);
#   3. Redis restarted from an older snapshot (RDB), both with the engine
#      running (L1 small, so reads reach L2) and across a clean engine
#      restart: no read answers a version older than L3's;
#   4. Redis frozen with SIGSTOP under load: its timeouts open the breaker,
#      writes keep being acknowledged (their latency is printed, not
#      asserted), and after SIGCONT L2 is used again (a new generation).
set -euo pipefail
. "$(dirname "$0")/common.bash"
. "$(dirname "$0")/pipeline_common.bash"
. "$(dirname "$0")/engine_common.bash"

services_up redis
rcli() { redis-cli -p "$SLUICE_REDIS_PORT" "$@"; }

cfg="$TMP/engine.toml"
engine_config "$cfg" "$TMP/wal" store "$TMP/store" kv "[batch]" "ms = 20" \
	"[l2]" "url = \"$SLUICE_REDIS_URL\"" "timeout_ms = 100" "connect_timeout_ms = 200" \
	"[l1]" "budget_mb = 1" "[breaker.l2]" "open_ms = 500"
log="$TMP/acked.log"

put() { # key value [header...] -> version
	local key=$1 value=$2
	shift 2
	local args=()
	for h in "$@"; do args+=(-H "$h"); done
	curl -sS -X PUT "${args[@]}" --data-binary "$value" "$EURL/api/v0/kv/$key" | jq -r .version
}
get() { curl -sS "$EURL/api/v0/kv/$1"; }
code() { curl -s -o /dev/null -w '%{http_code}' "$EURL/api/v0/kv/$1"; }
l2_field() { engine_status "$cfg" | jq -r ".l2.$1"; }
breaker_is() { # 0 closed, 1 open, 2 half-open
	curl -s "http://127.0.0.1:$EMPORT/metrics" >"$TMP/metrics"
	grep -q "^sluice_engine_breaker_state{backend=\"l2\"} $1\$" "$TMP/metrics"
}
l2_is() { [ "$(l2_field "$1")" = "$2" ]; } # field value

# ---------------------------------------------------------------- 1. tiers
start_engine "$cfg"
v=$(put both/a one "Sluice-Ack: l2")
[ "$v" -gt 0 ] || fail "a write to both tiers was not acknowledged"
[ "$(get both/a)" = one ] || fail "both/a does not read back"
rcli --raw keys 'sluice:*:both/a' | grep -q both/a || fail "L2 has no copy of both/a"

v=$(put cache/a fleeting "Sluice-Tiers: l2" "Sluice-Ack: l2" "Sluice-TTL: 300")
[ "$v" -gt 0 ] || fail "a write to L2 only was not acknowledged"
[ "$(get cache/a)" = fleeting ] || fail "an L2-only write does not read back"
[ "$(curl -sS "$EURL/api/v0/kv/cache/a/status" | jq -r '.l2, .l3, .wal' | tr '\n' ' ')" = "true false false " ] ||
	fail "an L2-only write's status: $(curl -sS "$EURL/api/v0/kv/cache/a/status")"
expired() { [ "$(code cache/a)" = 404 ]; }
wait_until 10 expired || fail "an L2-only write outlived its TTL"

put hole/a old "Sluice-Ack: l2" >/dev/null
put hole/a new "Sluice-Tiers: l3" "Sluice-Ack: l3" >/dev/null
hole_key=$(rcli --raw keys 'sluice:*:hole/a')
[ -n "$hole_key" ] || fail "L2 has no copy of hole/a"
older_copy_gone() { ! rcli --raw get "$hole_key" | grep -aq old; }
wait_until 10 older_copy_gone || fail "a write to L3 only left the older L2 copy in place"
[ "$(get hole/a)" = new ] || fail "a write to L3 only is not what reads answer"

[ "$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Sluice-TTL: soon' --data-binary x "$EURL/api/v0/kv/bad")" = 400 ] ||
	fail "a bad Sluice-TTL was not refused"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Sluice-Tiers: l2' -H 'Sluice-Ack: l3' --data-binary x "$EURL/api/v0/kv/bad")" = 400 ] ||
	fail "ack l3 on a write to L2 only was not refused"
[ "$(code bad)" = 404 ] || fail "a refused write changed something"
curl -sS "http://127.0.0.1:$EMPORT/metrics" >"$TMP/metrics"
names=$(sed -n 's/^| `\(sluice_engine_l2_[a-z_0-9]*\)`.*/\1/p' "$SLUICE_SRC/docs/cli.md" | sort -u)
[ -n "$names" ] || fail "docs/cli.md names no L2 metric"
for m in $names; do
	grep -q "^$m" "$TMP/metrics" || fail "metric $m is not emitted"
done
grep -q '^sluice_engine_breaker_state{backend="l2"}' "$TMP/metrics" || fail "L2's breaker has no metric"
echo "engine_redis.sh: tiers: L2 only with a TTL, L3 only (a hole), both"

# ------------------------------------------------ 2. Redis killed mid-load
: >"$log"
"$LOAD" load "$EURL" "$log" --threads 4 --keys 300 --seconds 4 --ack local --value-size 2048 \
	>"$TMP/load.out" 2>"$TMP/load.err" &
LOAD_PID=$!
sleep 1
bash "$SLUICE_SRC/scripts/services.sh" kill-redis "$SVC_DIR"
wait_until 10 l2_is up false || fail "L2 still shows up after Redis was killed"
wait_until 10 breaker_is 1 || fail "L2's breaker did not open: $(grep breaker "$TMP/metrics")"
wait "$LOAD_PID"
LOAD_PID=
grep -q "errors=0 " "$TMP/load.out" || fail "writes failed while Redis was down: $(cat "$TMP/load.out")"
[ "$(l2_field trusted)" = false ] || fail "L2 is trusted after it dropped writes"
[ "$(l2_field dropped)" -gt 0 ] || fail "no L2 write was counted as dropped"
"$LOAD" check "$EURL" "$log" >"$TMP/check.out" 2>"$TMP/check.err" ||
	fail "Redis killed: $(cat "$TMP/check.out" "$TMP/check.err" | head)"
echo "engine_redis.sh: Redis killed: $(cat "$TMP/load.out"), $(cat "$TMP/check.out")"

# ------------------------------------------- 3. Redis from an older snapshot
bash "$SLUICE_SRC/scripts/services.sh" start-redis "$SVC_DIR"
wait_until 30 l2_is trusted true || fail "L2 did not come back after Redis did"
gen_before=$(l2_field generation)
value_of() { head -c 20000 /dev/zero | tr '\0' "$1"; }
for i in $(seq 1 30); do put old/k$i "$(value_of a)" "Sluice-Ack: l2" >/dev/null; done
rcli save >/dev/null
for i in $(seq 1 30); do put old/k$i "$(value_of b)" "Sluice-Ack: l2" >/dev/null; done
wait_until 30 flushed "$cfg" || fail "L3 did not take the writes"
bash "$SLUICE_SRC/scripts/services.sh" kill-redis "$SVC_DIR"
bash "$SLUICE_SRC/scripts/services.sh" start-redis "$SVC_DIR"
[ "$(rcli --raw get "sluice:$gen_before:old/k1" | tail -c 2)" = a ] ||
	fail "the old snapshot did not bring the old copies back (the test would prove nothing)"
stale=0
for i in $(seq 1 30); do
	v=$(get old/k$i)
	[ "${v:0:1}" = b ] || stale=$((stale + 1))
done
[ "$stale" = 0 ] || fail "$stale reads answered the copy of an older snapshot (engine running)"
[ "$(l2_field generation)" -gt "$gen_before" ] || fail "no new L2 generation after Redis lost writes"

# across a clean restart of the engine
for i in $(seq 1 30); do put old/k$i "$(value_of c)" "Sluice-Ack: l2" >/dev/null; done
rcli save >/dev/null
for i in $(seq 1 30); do put old/k$i "$(value_of d)" "Sluice-Ack: l2" >/dev/null; done
stop_engine TERM
bash "$SLUICE_SRC/scripts/services.sh" kill-redis "$SVC_DIR"
bash "$SLUICE_SRC/scripts/services.sh" start-redis "$SVC_DIR"
start_engine "$cfg"
stale=0
for i in $(seq 1 30); do
	v=$(get old/k$i)
	[ "${v:0:1}" = d ] || stale=$((stale + 1))
done
[ "$stale" = 0 ] || fail "$stale reads answered the copy of an older snapshot (engine restarted)"
echo "engine_redis.sh: Redis from an older snapshot: no read older than L3"

# ----------------------------------------------------- 4. Redis frozen
wait_until 30 l2_is trusted true || fail "L2 is not trusted before the freeze"
: >"$log"
"$LOAD" load "$EURL" "$log" --threads 4 --keys 300 --seconds 4 --ack local \
	>"$TMP/load.out" 2>"$TMP/load.err" &
LOAD_PID=$!
sleep 1
kill -STOP "$(cat "$SVC_DIR/redis.pid")"
wait_until 10 breaker_is 1 || fail "Redis frozen: L2's breaker did not open"
sleep 1
kill -CONT "$(cat "$SVC_DIR/redis.pid")"
wait "$LOAD_PID"
LOAD_PID=
grep -q "errors=0 " "$TMP/load.out" || fail "writes failed while Redis was frozen: $(cat "$TMP/load.out")"
wait_until 30 l2_is trusted true || fail "L2 was not used again after SIGCONT"
wait_until 30 breaker_is 0 || fail "L2's breaker did not close after SIGCONT"
"$LOAD" check "$EURL" "$log" >"$TMP/check.out" 2>"$TMP/check.err" ||
	fail "Redis frozen: $(cat "$TMP/check.out" "$TMP/check.err" | head)"
echo "engine_redis.sh: Redis frozen (timeout 100 ms): $(cat "$TMP/load.out"), $(cat "$TMP/check.out")"
stop_engine TERM
echo "engine_redis.sh: ok"

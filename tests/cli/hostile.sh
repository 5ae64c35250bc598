#!/usr/bin/env bash
# `sluice serve` under hostile load, with different loopback addresses as
# different clients (127.0.0.2 misbehaves, 127.0.0.3 is a normal client):
#   - 300 half-open connections from one address: 64 are held (its share
#     of 256) and cut after the 10 s header timeout, the rest refused at
#     once, while another address's GET /api/v0/info answers in under a
#     second throughout;
#   - a flood of requests from one address (the server's rate lowered to
#     2000 tokens/s so the flood passes it) gets 429s with Retry-After
#     while a sync from another address completes, never throttled;
#   - a flood of expensive requests (frames of 65,536 operations) at the
#     default settings: the other address's sync completes (the times,
#     alone and under the flood, are printed, not asserted);
#   - a request body trickling in below the minimum rate is cut;
#   - a sync alone at the default settings meets no limit;
#   - every limit is counted in /metrics and logged once per client.
set -euo pipefail
source "$(dirname "$0")/common.bash"
source "$(dirname "$0")/sync_common.bash"

hostile() {
	node "$SLUICE_SRC/tests/tools/hostile_client.mjs" "$@"
}
metric() { # NAME PORT
	curl -s "http://127.0.0.1:$2/metrics" | sed -n "s/^$1 \([0-9]*\).*/\1/p"
}
elapsed() { # START: seconds since START (date +%s.%N)
	awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'
}

# ------------------------------------------------- half-open connections
start_server s "$TMP/s" --db immutable -i 1000 -o 0
port=${PORT[s]}
mport=${METRICS_PORT[s]}
hostile halfopen --port "$port" --from 127.0.0.2 --count 300 --hold 14 >"$TMP/half.json" &
attacker=$!
sleep 0.5
tries=0
while kill -0 "$attacker" 2>/dev/null; do
	code=$(curl -s --interface 127.0.0.3 --max-time 1 -o /dev/null -w '%{http_code}' \
		"http://127.0.0.1:$port/api/v0/info") || true
	[ "$code" = 200 ] || fail "GET /api/v0/info from another address: '$code' during the attack"
	tries=$((tries + 1))
	sleep 0.2
done
wait "$attacker"
half=$(cat "$TMP/half.json")
echo "hostile: info answered $tries times during the attack; $(jq -c '{opened, closed_at_once, still_open}' <<<"$half")"
[ "$tries" -ge 20 ] || fail "only $tries probes ran during the attack"
[ "$(jq .opened <<<"$half")" = 300 ] || fail "half-open: $half"
[ "$(jq .still_open <<<"$half")" = 0 ] || fail "half-open connections left open: $half"
held=$(jq '.closed_at | length' <<<"$half")
[ "$held" -ge 60 ] && [ "$held" -le 68 ] || fail "the attacker held $held connections, not its share of 64"
jq -e '.closed_at | all(. >= 9.5 and . <= 12)' <<<"$half" >/dev/null ||
	fail "held connections were not cut at the 10 s header timeout: $half"
[ "$(metric sluice_http_refused_connections_total "$mport")" -ge 230 ] || fail "refusals not counted"
[ "$(metric sluice_http_header_timeouts_total "$mport")" -ge 60 ] || fail "header timeouts not counted"
[ "$(grep -c 'refused a connection' "$TMP/s.log")" = 1 ] || fail "refusals not logged once"
[ "$(grep -c 'no complete request head' "$TMP/s.log")" = 1 ] || fail "header timeouts not logged once"

# ------------------------------------------------------- a slow body
slow=$(hostile slowbody --port "$port" --from 127.0.0.4 --bytes 100000 --rate 20)
echo "hostile: slow body $slow"
jq -e '.closed_after != null and .closed_after >= 9.5 and .closed_after <= 13' <<<"$slow" >/dev/null ||
	fail "a body at 20 B/s was not cut after the 10 s grace: $slow"
[ "$(metric sluice_http_slow_bodies_total "$mport")" = 1 ] || fail "the slow body not counted"
stop_server s

# ----------------------------------------------- a sync alone: no limit
start_server a "$TMP/a" --db immutable -i 100000 -o 0
started=$(date +%s.%N)
expect 0 "$SLUICE" sync -d "$TMP/c0" -s "127.0.0.1:${PORT[a]}" --bind 127.0.0.3 --once demo
alone=$(elapsed "$started")
for m in refused_connections throttled_requests header_timeouts slow_bodies; do
	[ "$(metric "sluice_http_${m}_total" "${METRICS_PORT[a]}")" = 0 ] ||
		fail "a sync alone met a limit: $m"
done
requests=$(curl -s "http://127.0.0.1:${METRICS_PORT[a]}/metrics" |
	awk '/^sluice_server_requests_total/ { n += $2 } END { print n }')
echo "hostile: a sync alone at the defaults: $requests requests in $alone s ($(awk -v n="$requests" -v t="$alone" 'BEGIN { printf "%d", n / t }') a second, against a default rate of 20000 tokens a second)"
[ "$(root_in "$TMP/c0" demo)" = "$(root_in "$TMP/a" demo)" ] || fail "the sync alone did not converge"

# ------------------------- an expensive flood at the default settings
hostile flood --port "${PORT[a]}" --from 127.0.0.2 --seconds 8 --concurrency 16 \
	--path '/api/v0/ns/demo/ops?start=0&max=65536' >"$TMP/flood1.json" &
flooder=$!
sleep 1
started=$(date +%s.%N)
expect 0 "$SLUICE" sync -d "$TMP/c1" -s "127.0.0.1:${PORT[a]}" --bind 127.0.0.3 --once demo
flooded=$(elapsed "$started")
wait "$flooder"
[ "$(root_in "$TMP/c1" demo)" = "$(root_in "$TMP/a" demo)" ] || fail "the sync under the flood did not converge"
[ "$(jq .ok "$TMP/flood1.json")" -gt 0 ] || fail "the expensive flood got nothing: $(cat "$TMP/flood1.json")"
echo "hostile: a sync of 100000 operations took ${alone} s alone, ${flooded} s under a flood of frames of 65536 operations ($(jq -c . "$TMP/flood1.json"))"
stop_server a

# -------------------------------- a flood past the rate: 429s, not the sync
start_server f "$TMP/a" --client-rate 2000
hostile flood --port "${PORT[f]}" --from 127.0.0.2 --seconds 6 --concurrency 16 \
	--path '/api/v0/ns/demo/target' >"$TMP/flood2.json" &
flooder=$!
sleep 1
SLUICE_LOG=info "$SLUICE" sync -d "$TMP/c2" -s "127.0.0.1:${PORT[f]}" --bind 127.0.0.3 \
	--once -b 1000 demo 2>"$TMP/sync2.log" || fail "the sync under the flood failed: $(tail -3 "$TMP/sync2.log")"
wait "$flooder"
flood=$(cat "$TMP/flood2.json")
echo "hostile: flood past the rate: $flood"
[ "$(jq .throttled <<<"$flood")" -gt 0 ] || fail "the flood got no 429: $flood"
jq -e '.retry_after | length > 0 and all(. != null)' <<<"$flood" >/dev/null || fail "429s without Retry-After"
! grep -q "slow down" "$TMP/sync2.log" || fail "the sync from another address was throttled"
[ "$(root_in "$TMP/c2" demo)" = "$(root_in "$TMP/a" demo)" ] || fail "the sync did not converge"
[ "$(metric sluice_http_throttled_requests_total "${METRICS_PORT[f]}")" -gt 0 ] || fail "429s not counted"
[ "$(grep -c 'over its request rate' "$TMP/f.log")" = 1 ] || fail "429s not logged once"
stop_server f

# ------------------------------------ a sync told to slow down waits and ends
# One client's own rate is low: it is answered 429, waits as told, and
# completes all the same, counting the waits. The store has 1000
# operations and the batches are 100, so the sync needs well over the
# burst of 4 tokens: on loopback it asks faster than 4 a second on any
# machine, so it is throttled however fast or slow the build is.
start_server t "$TMP/s" --client-rate 4 --client-burst 4
SLUICE_LOG=info "$SLUICE" sync -d "$TMP/c3" -s "127.0.0.1:${PORT[t]}" --once -b 100 demo \
	2>"$TMP/sync3.log" || fail "a throttled sync failed: $(tail -3 "$TMP/sync3.log")"
[ "$(grep -c 'slow down' "$TMP/sync3.log")" = 1 ] || fail "the sync did not log its wait once"
[ "$(root_in "$TMP/c3" demo)" = "$(root_in "$TMP/s" demo)" ] || fail "the throttled sync did not converge"
stop_server t
echo "hostile: ok"

#!/usr/bin/env bash
# Dag namespaces synced between real `sluice serve` processes on loopback:
#   - a ticket and a join: the joiner is pending (its sync refused, exit 1,
#     nothing taken) until the owner approves; then one `sync --once`
#     brings it level, and its own writes reach the owner;
#   - a proxy that alters every answer: the sync fails and nothing is
#     stored; once the proxy passes bytes unaltered, the sync converges;
#   - background sync in `serve`: writes on either side reach the other
#     without a command, and a chain A - B - C converges through B;
#   - the outbox survives kill -9: entries written while the peer is down
#     are delivered after the writer restarts and the peer comes back;
#   - the same entries everywhere give the same state (`verify` on every
#     store, and the key listings compared).
set -euo pipefail
source "$(dirname "$0")/common.bash"
source "$(dirname "$0")/sync_common.bash"

S() { # DIR ARGS...: sluice on the store in DIR
	local dir=$1
	shift
	"$SLUICE" "$@" -d "$dir"
}
entries() { # DIR
	S "$1" dag info --json team | jq .entries
}
listing() { # DIR: every key with its value's digest
	S "$1" ls --json team | jq -c '[.key, .digest]'
}
same_state() { # DIR DIR
	[ "$(listing "$1")" = "$(listing "$2")" ] && [ "$(entries "$1")" = "$(entries "$2")" ]
}

A=$TMP/a B=$TMP/b C=$TMP/c
for d in "$A" "$B" "$C"; do expect 0 "$SLUICE" init -d "$d"; done
expect 0 S "$A" ns create team --kind dag
for i in $(seq 1 30); do printf 'a%d' "$i" | S "$A" put team "a/$i"; done

start_server a "$A" --dag-sync 1s
T=$(S "$A" ticket team --addr "127.0.0.1:${PORT[a]}")
expect_in "$T" "sluice:?ns=" "ticket"

# --------------------------------------------------- join, pending, approve
expect 0 S "$B" join "$T" --write
expect_in "$OUT" "pending " "join"
id=${OUT#pending }
expect 1 S "$B" sync --once team
expect_in "$ERR" "pending" "sync while pending"
[ "$(entries "$B")" = 1 ] || fail "a pending node took entries"
expect 0 S "$A" peer requests --json
[ "$(jq -r .state <<<"$OUT")" = pending ] || fail "requests: $OUT"
expect 0 S "$A" peer approve "$id"
expect 0 S "$B" join "$T" --write
expect_in "$OUT" "approved write" "join after approval"
expect 0 S "$B" sync --once team
same_state "$A" "$B" || fail "B is not level with A after one sync"
printf 'from b' | S "$B" put team b/1
expect 0 S "$B" sync --once team
expect 0 S "$A" get team b/1
[ "$OUT" = "from b" ] || fail "B's write did not reach A"

# ------------------------------------------------- altered answers refused
control=$TMP/proxy.control
echo corrupt >"$control"
start_proxy "${PORT[a]}" "$control"
for i in $(seq 1 5); do printf 'a%d' "$i" | S "$A" put team "late/$i"; done
expect 0 S "$B" peer remove "127.0.0.1:${PORT[a]}" team
expect 0 S "$B" peer add "127.0.0.1:$PROXY_PORT" team --key "$(S "$A" key)"
for i in 1 2 3; do
	run S "$B" sync --once team
	[ "$STATUS" = 1 ] || fail "a sync through the corrupting proxy did not fail: $OUT $ERR"
done
# Whatever B took verified: every entry it holds is one of A's.
S "$A" dag log --json team | jq -r .id | sort >"$TMP/a.ids"
S "$B" dag log --json team | jq -r .id | sort >"$TMP/b.ids"
[ -z "$(comm -13 "$TMP/a.ids" "$TMP/b.ids")" ] || fail "B holds entries A never wrote"
expect 0 S "$B" verify team
echo pass >"$control"
expect 0 S "$B" sync --once team
same_state "$A" "$B" || fail "no convergence once the proxy passes bytes"
stop_proxy
expect 0 S "$B" peer remove "127.0.0.1:$PROXY_PORT" team
expect 0 S "$B" peer add "127.0.0.1:${PORT[a]}" team

# ------------------------------------------------ background sync, a chain
start_server b "$B" --dag-sync 1s
expect 0 S "$A" peer add "127.0.0.1:${PORT[b]}" team
expect 0 "$SLUICE" key -d "$C"
ckey=$OUT
expect 0 S "$A" dag grant team "$ckey" write
# C knows only B; A and B are peers. C joins B's namespace by its root.
CT=$(S "$B" ticket team --addr "127.0.0.1:${PORT[b]}")
expect 0 S "$C" join "$CT"
start_server c "$C" --dag-sync 1s
# A's grant travels A -> B -> C before C may write.
wait_until 30 sh -c "[ \"\$('$SLUICE' dag info --json team -d '$C' | jq -r .role)\" = write ]" ||
	fail "A's grant did not reach C through B"
printf 'from a' | S "$A" put team chain/a
printf 'from c' | S "$C" put team chain/c
wait_until 30 sh -c "'$SLUICE' get -d '$C' team chain/a >/dev/null 2>&1" ||
	fail "A's write did not reach C through B"
wait_until 30 sh -c "'$SLUICE' get -d '$A' team chain/c >/dev/null 2>&1" ||
	fail "C's write did not reach A through B"
wait_until 30 sh -c "[ \"\$('$SLUICE' dag info --json team -d '$A' | jq .entries)\" = \
\"\$('$SLUICE' dag info --json team -d '$C' | jq .entries)\" ]" || fail "A and C do not converge"
same_state "$A" "$C" || fail "A and C hold the same entries but not the same state"

# ------------------------------------------- the outbox survives kill -9
stop_server a
for i in $(seq 1 20); do printf 'b%d' "$i" | S "$B" put team "outbox/$i"; done
wait_until 10 sh -c "'$SLUICE' peer status --json -d '$B' team | jq -e 'select(.failures > 0)' >/dev/null" ||
	fail "B did not record the failed pushes to A"
owed=$(S "$B" peer status --json team | jq "select(.addr == \"127.0.0.1:${PORT[a]}\") | .backlog")
[ "$owed" -ge 20 ] || fail "B owes A $owed entries, not at least 20"
stop_server b KILL
start_server a "$A" --dag-sync 1s -p "${PORT[a]}"
start_server b "$B" --dag-sync 1s -p "${PORT[b]}"
wait_until 60 sh -c "'$SLUICE' get -d '$A' team outbox/20 >/dev/null 2>&1" ||
	fail "the outbox was not delivered after the restart"
for i in $(seq 1 20); do
	expect 0 S "$A" get team "outbox/$i"
	[ "$OUT" = "b$i" ] || fail "outbox/$i: '$OUT'"
done
wait_until 30 sh -c "'$SLUICE' peer status --json -d '$B' team | jq -e 'select(.backlog == 0 and .failures == 0)' >/dev/null" ||
	fail "B still owes A entries"
for d in "$A" "$B" "$C"; do expect 0 S "$d" verify team; done
echo "dag_sync: ok"

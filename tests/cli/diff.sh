#!/usr/bin/env bash
# `sluice diff` between two real stores, over loopback HTTP (`sluice serve`)
# and between two stores on disk: the reported keys equal the differences
# the test made, --pull makes the namespaces hold the same state (the same
# state fingerprint and key count), an immutable namespace reports
# conflicts and overwrites nothing, answers altered on the way (through the
# fault proxy) are refused with nothing written, and malformed or oversized
# reconciliation and items requests get 400/413 and change nothing.
set -euo pipefail
source "$(dirname "$0")/common.bash"
source "$(dirname "$0")/sync_common.bash"

seed=${SLUICE_SEED:-$RANDOM}
echo "diff: seed $seed (rerun with SLUICE_SEED=$seed)"
RANDOM=$seed

a="$TMP/a"
b="$TMP/b"
for s in "$a" "$b"; do
	expect 0 "$SLUICE" init -d "$s"
	expect 0 "$SLUICE" ns create -d "$s" m --kind mutable
	expect 0 "$SLUICE" ns create -d "$s" im --kind immutable
done

# Files for the imports: 3000 common keys; then, drawn at random, keys only
# in a, keys only in b, and keys whose values differ.
for d in $(seq 0 12); do
	mkdir -p "$TMP/fa/c/$d" "$TMP/fb/c/$d"
done
for i in $(seq 0 2999); do
	f="c/$((i % 13))/k$i"
	echo "value $i" >"$TMP/fa/$f"
	echo "value $i" >"$TMP/fb/$f"
done
: >"$TMP/want_local"
: >"$TMP/want_remote"
: >"$TMP/want_different"
n_local=$((5 + RANDOM % 30))
n_remote=$((5 + RANDOM % 30))
n_diff=$((5 + RANDOM % 30))
for i in $(seq 1 "$n_local"); do
	echo "only a $i" >"$TMP/fa/a$i" && echo "a$i" >>"$TMP/want_local"
done
for i in $(seq 1 "$n_remote"); do
	echo "only b $i" >"$TMP/fb/b$i" && echo "b$i" >>"$TMP/want_remote"
done
picked=0
while [ "$picked" -lt "$n_diff" ]; do
	i=$((RANDOM % 3000))
	f="c/$((i % 13))/k$i"
	grep -qx "$f" "$TMP/want_different" && continue
	echo "changed in b $i" >"$TMP/fb/$f"
	echo "$f" >>"$TMP/want_different"
	picked=$((picked + 1))
done
for w in local remote different; do
	LC_ALL=C sort -o "$TMP/want_$w" "$TMP/want_$w"
done
expect 0 "$SLUICE" import -d "$a" m "$TMP/fa"
expect 0 "$SLUICE" import -d "$b" m "$TMP/fb"

# keys_of FILE FIELD: a --json list as sorted lines.
keys_of() {
	jq -r ".$2[]" "$1" | LC_ALL=C sort
}

# check_report FILE WHAT: the three lists equal what the test made.
check_report() {
	for w in local remote different; do
		local field=only_$w
		[ "$w" = different ] && field=different
		keys_of "$1" "$field" >"$TMP/got_$w"
		cmp -s "$TMP/got_$w" "$TMP/want_$w" ||
			fail "$2: $field differs: $(diff "$TMP/got_$w" "$TMP/want_$w" | head -5)"
	done
}

# ----------------------------------------------------------- over HTTP
start_server b "$b"
peer="127.0.0.1:${PORT[b]}"
before_b=$("$SLUICE" root -d "$b" --json m)
expect 0 "$SLUICE" diff -d "$a" m --peer "$peer" --json
echo "$OUT" >"$TMP/r1.json"
check_report "$TMP/r1.json" "diff over HTTP"
trips=$(jq .round_trips "$TMP/r1.json")
sent=$(jq .bytes_sent "$TMP/r1.json")
received=$(jq .bytes_received "$TMP/r1.json")
# Every id alone would be 3000 x 32 bytes each way.
[ $((sent + received)) -lt 96000 ] || fail "diff sent $sent and received $received bytes"
[ "$trips" -ge 2 ] && [ "$trips" -le 6 ] || fail "diff took $trips round trips"
echo "diff: $n_local/$n_remote/$n_diff differences in $trips round trips, $sent bytes sent, $received received"

# The text form names the same keys.
expect 0 "$SLUICE" diff -d "$a" m --peer "$peer"
expect_in "$OUT" "only in m ($n_local)" "text: only here"
expect_in "$OUT" "only in m on $peer ($n_remote)" "text: only there"
expect_in "$OUT" "different ($n_diff)" "text: different"
expect_in "$OUT" "$(head -1 "$TMP/want_different")" "text lists a key"

# ------------------------------------------------------ stores on disk
expect 0 "$SLUICE" diff -d "$a" m m --other-dir "$b" --json
echo "$OUT" >"$TMP/r2.json"
check_report "$TMP/r2.json" "diff of two stores on disk"
expect 0 "$SLUICE" diff -d "$a" m m --json
[ "$(jq '.only_local + .only_remote + .different | length' <<<"$OUT")" = 0 ] ||
	fail "a namespace differs from itself"
[ "$(jq .round_trips <<<"$OUT")" = 1 ] || fail "equal namespaces take one round trip"

# --------------------------------------------------------- altered answers
# Answers to item reads altered on the way are refused and nothing is
# pulled: each answer must hash to the id asked for.
start_proxy "${PORT[b]}" "$TMP/fault"
root_a=$(root_in "$a" m)
for mode in corrupt corrupt corrupt garbage garbage truncate; do
	echo "$mode /items" >"$TMP/fault.tmp" && mv "$TMP/fault.tmp" "$TMP/fault"
	expect 1 "$SLUICE" diff -d "$a" m --peer "127.0.0.1:$PROXY_PORT" --pull --timeout 5s
	[ "$(root_in "$a" m)" = "$root_a" ] || fail "a $mode answer changed the namespace"
done
echo pass >"$TMP/fault.tmp" && mv "$TMP/fault.tmp" "$TMP/fault"
stop_proxy

# ------------------------------------------------------------------ pull
expect 0 "$SLUICE" diff -d "$a" m --peer "$peer" --pull --json
[ "$(jq .pulled <<<"$OUT")" = $((n_remote + n_diff)) ] || fail "pulled: $OUT"
f=$(head -1 "$TMP/want_different")
[ "$("$SLUICE" get -d "$a" m "$f")" = "$("$SLUICE" get -d "$b" m "$f")" ] ||
	fail "a differing key did not take the peer's value"
expect 0 "$SLUICE" diff -d "$a" m --peer "$peer" --json
[ "$(jq '.only_remote + .different | length' <<<"$OUT")" = 0 ] || fail "after pull: $OUT"
[ "$(jq '.only_local | length' <<<"$OUT")" = "$n_local" ] || fail "pull removed keys: $OUT"
# The other way round: b pulls what only a has. Then both hold one state.
stop_server b
expect 0 "$SLUICE" diff -d "$b" m m --other-dir "$a" --pull --json
[ "$(jq .pulled <<<"$OUT")" = "$n_local" ] || fail "pull into b: $OUT"
state_a=$("$SLUICE" root -d "$a" --json m | jq -c '{keys, state}')
state_b=$("$SLUICE" root -d "$b" --json m | jq -c '{keys, state}')
[ "$state_a" = "$state_b" ] || fail "after pulling both ways: $state_a vs $state_b"
[ "$(jq .keys <<<"$state_a")" = $((3000 + n_local + n_remote)) ] || fail "keys: $state_a"
expect 0 "$SLUICE" verify -d "$a" m
expect 0 "$SLUICE" verify -d "$b" m

# ------------------------------------------------------- immutable: conflicts
printf same | "$SLUICE" put -d "$a" im k/same
printf same | "$SLUICE" put -d "$b" im k/same
printf mine | "$SLUICE" put -d "$a" im k/clash
printf theirs | "$SLUICE" put -d "$b" im k/clash
printf new | "$SLUICE" put -d "$b" im k/new
start_server b "$b"
peer="127.0.0.1:${PORT[b]}"
expect 1 "$SLUICE" diff -d "$a" im --peer "$peer" --pull --json
[ "$(jq -c .conflicts <<<"$OUT")" = '["k/clash"]' ] || fail "conflicts: $OUT"
[ "$(jq .pulled <<<"$OUT")" = 1 ] || fail "immutable pull: $OUT"
expect_in "$ERR" "not pulled" "conflicts are reported"
[ "$("$SLUICE" get -d "$a" im k/clash)" = mine ] || fail "a conflict was overwritten"
[ "$("$SLUICE" get -d "$a" im k/new)" = new ] || fail "k/new was not pulled"

# ------------------------------------------------------------- bad input
base="http://127.0.0.1:${PORT[b]}/api/v0/ns"
post() { # BODYFILE QUERY-PATH: prints the status
	curl -s -o "$TMP/resp" -w '%{http_code}' -X POST --data-binary "@$1" \
		-H 'Content-Type: application/octet-stream' "$base/$2"
}
before_b=$("$SLUICE" root -d "$b" --json m)
: >"$TMP/empty"
printf 'hello' >"$TMP/garbage"
printf '\x62\x00\x00\x02\x00' >"$TMP/v2"
printf '\x61\x00\x00\x02\x05\xab' >"$TMP/cut"
printf '\x61\x00\x00\x07' >"$TMP/mode"
head -c $((1024 * 1024 + 1)) /dev/zero | tr '\0' 'a' >"$TMP/huge"
for case in empty:400 garbage:400 v2:400 cut:400 mode:400 huge:413; do
	f=${case%%:*}
	want=${case##*:}
	[ "$(post "$TMP/$f" m/reconcile)" = "$want" ] || fail "reconcile $f: $(cat "$TMP/resp")"
	jq -e '.error and .message' "$TMP/resp" >/dev/null || fail "reconcile $f: no JSON error"
done
expect_in "$(cat "$TMP/resp")" "too_large" "413 names its error"
post "$TMP/v2" m/reconcile >/dev/null
expect_in "$(cat "$TMP/resp")" "speaks version 1" "a wrong version is named"
printf '\x61\x00\x00\x02\x00' >"$TMP/ok"
[ "$(post "$TMP/ok" m/reconcile)" = 200 ] || fail "a good message"
[ "$(post "$TMP/ok" 'm/reconcile?frame_limit=100')" = 400 ] || fail "frame_limit 100"
[ "$(post "$TMP/ok" 'm/reconcile?frame_limit=x')" = 400 ] || fail "frame_limit x"
[ "$(post "$TMP/ok" nope/reconcile)" = 404 ] || fail "an unknown namespace"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/m/reconcile")" = 405 ] || fail "GET"
# items: version, flags, no ids, a count the body does not hold, too many
printf '\x02\x00\x00\x00\x00\x01' >"$TMP/i1"
head -c 32 /dev/zero >>"$TMP/i1"
printf '\x01\x04\x00\x00\x00\x01' >"$TMP/i2"
head -c 32 /dev/zero >>"$TMP/i2"
printf '\x01\x00\x00\x00\x00\x00' >"$TMP/i3"
printf '\x01\x00\x00\x00\x00\x02' >"$TMP/i4"
head -c 32 /dev/zero >>"$TMP/i4"
printf '\x01\x00\x00\x01\x00\x01' >"$TMP/i5"
for case in i1:400 i2:400 i3:400 i4:400 i5:413; do
	f=${case%%:*}
	want=${case##*:}
	[ "$(post "$TMP/$f" m/items)" = "$want" ] || fail "items $f: $(cat "$TMP/resp")"
done
# An id the namespace does not hold is answered as missing.
printf '\x01\x00\x00\x00\x00\x01' >"$TMP/i6"
head -c 32 /dev/zero >>"$TMP/i6"
[ "$(post "$TMP/i6" m/items)" = 200 ] || fail "items: a good request"
[ "$(od -An -tx1 -v "$TMP/resp" | tr -d ' \n')" = "0100000000000000$(printf '01%064d' 0)00000000" ] ||
	fail "items: missing id answer: $(od -An -tx1 "$TMP/resp")"
[ "$("$SLUICE" root -d "$b" --json m)" = "$before_b" ] || fail "bad requests changed the namespace"
metrics=$(curl -s "http://127.0.0.1:${METRICS_PORT[b]}/metrics")
expect_in "$metrics" 'sluice_server_requests_total{endpoint="reconcile"}' "metrics count reconcile"
expect_in "$metrics" 'sluice_server_errors_total{endpoint="items"}' "metrics count items errors"
stop_server b

# A peer that is not there: a clear error, quickly.
expect 1 "$SLUICE" diff -d "$a" m --peer 127.0.0.1:1 --timeout 1s
expect_in "$ERR" "127.0.0.1:1" "the error names the peer"
# Usage errors.
expect 2 "$SLUICE" diff -d "$a" m
expect 2 "$SLUICE" diff -d "$a" m m --peer "$peer"
expect 2 "$SLUICE" diff -d "$a" m --peer "$peer" --other-dir "$b"
expect 1 "$SLUICE" diff -d "$a" nope nope
echo "diff: ok"

#!/usr/bin/env bash
# `sluice serve` over real HTTP: every endpoint's answer, the signed
# target and its long poll, commits with and without the token, and
# malformed or oversized requests, each of which gets a 4xx JSON error and
# changes nothing.
set -euo pipefail
source "$(dirname "$0")/common.bash"
source "$(dirname "$0")/sync_common.bash"

srv="$TMP/srv"
expect 0 "$SLUICE" init -d "$srv"
expect 0 "$SLUICE" ns create -d "$srv" docs --kind immutable
expect 0 "$SLUICE" ns create -d "$srv" mut --kind mutable
printf hello | "$SLUICE" put -d "$srv" docs a/b
printf 'abcdefghijklmnopqrstuvwxyz0123456789' >"$TMP/token"
start_server s "$srv" --token-file "$TMP/token"
base="http://127.0.0.1:${PORT[s]}/api/v0"

# status BODYFILE CURL-ARGS...: prints the HTTP status, body into BODYFILE.
status() {
	local body=$1
	shift
	curl -s -o "$body" -w '%{http_code}' "$@"
}

# ------------------------------------------------------------------ info
[ "$(status "$TMP/b" "$base/info")" = 200 ] || fail "info"
jq -e '.namespaces | length == 2' "$TMP/b" >/dev/null || fail "info lists two namespaces"
jq -e '.namespaces[0].name == "docs" and .namespaces[0].kind == "immutable" and .namespaces[0].size == 2' \
	"$TMP/b" >/dev/null || fail "info: docs"
node=$(jq -r .node "$TMP/b")
[ "${#node}" -eq 64 ] || fail "node id is a 32-byte key"
[ "$(stat -c %a "$srv/node.key")" = 600 ] || fail "node.key is private"

# ---------------------------------------------------------------- target
[ "$(status "$TMP/b" "$base/ns/docs/target")" = 200 ] || fail "target"
jq -e '.size == 2 and .floor == 0 and .root == "5fcd37e0069bf2a7206dd68b2628003d017911e485d6f3d90488f90870e3001f"' \
	"$TMP/b" >/dev/null || fail "target matches the worked example: $(cat "$TMP/b")"
[ "$(jq -r .node "$TMP/b")" = "$node" ] || fail "target is signed by the node key"
[ "$(jq -r '.signature | length' "$TMP/b")" = 128 ] || fail "target carries a signature"

# ------------------------------------------------------------------- ops
[ "$(status "$TMP/ops" "$base/ns/docs/ops?start=0&max=10")" = 200 ] || fail "ops"
# The frame of docs/protocol.md's example, byte for byte.
want="0100000000000000000000000000000002000000022601"
want+="03612f62052cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
want+="68656c6c6f0904000000000000000009000000000000000200""00"
[ "$(xxd -p "$TMP/ops" | tr -d '\n')" = "$want" ] || fail "ops frame differs from the documented vector: $(xxd -p "$TMP/ops" | tr -d '\n')"

# --------------------------------------------------------------- errors
expect_error() { # STATUS CODE CURL-ARGS...
	local want=$1 code=$2
	shift 2
	local got
	got=$(status "$TMP/e" "$@")
	[ "$got" = "$want" ] || fail "$*: status $got, expected $want: $(cat "$TMP/e")"
	jq -e --arg c "$code" '.error == $c and (.message | length > 0)' "$TMP/e" >/dev/null ||
		fail "$*: not a JSON error '$code': $(cat "$TMP/e")"
}
expect_error 404 not_found "$base/nosuch"
expect_error 404 not_found "$base/ns/nosuch/target"
expect_error 404 not_found "$base/ns/bad..name/target"
expect_error 405 method_not_allowed -X POST "$base/ns/docs/target"
expect_error 405 method_not_allowed "$base/ns/docs/commit"
expect_error 400 bad_request "$base/ns/docs/ops"
expect_error 400 bad_request "$base/ns/docs/ops?start=abc"
expect_error 400 bad_request "$base/ns/docs/ops?start=-1"
expect_error 400 bad_request "$base/ns/docs/ops?start=99999999999999999999999"
expect_error 400 bad_request "$base/ns/docs/ops?start=2"
expect_error 400 bad_request "$base/ns/docs/ops?start=0&size=3"
expect_error 400 bad_request "$base/ns/docs/ops?start=0&max=0"
expect_error 400 bad_request "$base/ns/docs/consistency?from=2&to=1"
expect_error 400 bad_request "$base/ns/docs/consistency?from=1"
[ "$(status "$TMP/p" "$base/ns/docs/consistency?from=1&to=2")" = 200 ] || fail "consistency"

# --------------------------------------------------------------- commits
root_before=$(root_in "$srv" docs)
batch() { printf "$1" >"$TMP/batch"; } # printf escapes -> bytes
# put a/c = hi: version 1, 1 entry, kind 1, key "a/c", value "hi"
batch '\x01\x00\x00\x00\x01\x01\x03a/c\x02hi'
expect_error 401 unauthorized --data-binary @"$TMP/batch" "$base/ns/docs/commit"
expect_error 401 unauthorized -H "Authorization: Bearer wrongwrongwrongwrong" --data-binary @"$TMP/batch" "$base/ns/docs/commit"
auth=(-H "Authorization: Bearer $(cat "$TMP/token")")
for bad in '\x02\x00\x00\x00\x01\x01\x03a/c\x02hi' '\x01\x00\x00\x00\x02\x01\x03a/c\x02hi' \
	'\x01\x00\x00\x00\x01\x01\x03a/c\x05hi' '\x01\x00\x00\x00\x01\x01\x03a//\x02hi' \
	'\x01\x00\x00\x00\x01\x03\x03a/c' '\x01' '\x01\x00\x00\x00\x00' \
	'\x01\x00\x00\x00\x01\x01\x03a/c\x02hi!'; do
	batch "$bad"
	expect_error 400 bad_request "${auth[@]}" --data-binary @"$TMP/batch" "$base/ns/docs/commit"
done
# a delete in an immutable namespace, and an oversized body
batch '\x01\x00\x00\x00\x01\x02\x03a/b'
expect_error 400 bad_request "${auth[@]}" --data-binary @"$TMP/batch" "$base/ns/docs/commit"
head -c $((65 * 1024 * 1024)) /dev/zero >"$TMP/big"
expect_error 413 too_large "${auth[@]}" --data-binary @"$TMP/big" "$base/ns/docs/commit"
# an immutable key set to another value is a conflict
batch '\x01\x00\x00\x00\x01\x01\x03a/b\x02hi'
expect_error 409 conflict "${auth[@]}" --data-binary @"$TMP/batch" "$base/ns/docs/commit"
[ "$(root_in "$srv" docs)" = "$root_before" ] || fail "a refused request changed the namespace"
batch '\x01\x00\x00\x00\x01\x01\x03a/c\x02hi'
[ "$(status "$TMP/b" "${auth[@]}" --data-binary @"$TMP/batch" "$base/ns/docs/commit")" = 200 ] ||
	fail "commit with the token: $(cat "$TMP/b")"
jq -e '.size == 4' "$TMP/b" >/dev/null || fail "commit answers the new target"
[ "$(SLUICE_DIR=$srv "$SLUICE" get docs a/c)" = hi ] || fail "committed value"

# ------------------------------------------------------------ long polls
# GET .../target?after=N&wait_ms=M holds the request while the size is N,
# until a commit (or M ms). Each poll below may wait 20 s and must come
# back long before; the commit is made only once the server's gauge shows
# the poll waiting (else the poll would see the commit without waiting).
metrics="http://127.0.0.1:${METRICS_PORT[s]}/metrics"
# (grep reads it all: with -q it might stop early and fail curl's write)
waiting() { curl -sf "$metrics" | grep -x "sluice_http_waiting_requests $1" >/dev/null; }
size_now() { curl -sf "$base/ns/$1/target" | jq .size; }
# poll NS AFTER: a long poll in the background, answered into $TMP/poll.
poll() {
	rm -f "$TMP/poll" "$TMP/poll.status"
	curl -s -o "$TMP/poll" -w '%{http_code}' "$base/ns/$1/target?after=$2&wait_ms=20000" \
		>"$TMP/poll.status.part" && mv "$TMP/poll.status.part" "$TMP/poll.status" &
	POLL_PID=$!
	wait_until 10 waiting 1 || fail "the long poll on $1 does not wait"
}
# poll_answered SIZE: the poll came back, well within its wait, with SIZE.
poll_answered() {
	wait_until 10 test -s "$TMP/poll.status" || fail "a commit did not answer the long poll"
	wait "$POLL_PID"
	[ "$(cat "$TMP/poll.status")" = 200 ] || fail "long poll: status $(cat "$TMP/poll.status")"
	jq -e --argjson n "$1" '.size == $n' "$TMP/poll" >/dev/null ||
		fail "long poll: expected size $1: $(cat "$TMP/poll")"
	[ "$(jq -r .node "$TMP/poll")" = "$node" ] || fail "long poll: not signed by the node key"
}

size=$(size_now docs)
# A commit through the server answers a poll on the size before it.
poll docs "$size"
batch '\x01\x00\x00\x00\x01\x01\x03a/d\x02lp'
[ "$(status "$TMP/b" "${auth[@]}" --data-binary @"$TMP/batch" "$base/ns/docs/commit")" = 200 ] ||
	fail "commit during a long poll: $(cat "$TMP/b")"
poll_answered $((size + 2))
# So does a commit by another process writing to the store directory.
poll docs $((size + 2))
printf 'written elsewhere' | "$SLUICE" put -d "$srv" docs a/e
poll_answered $((size + 4))
# A mutable namespace too.
poll mut "$(size_now mut)"
printf v1 | "$SLUICE" put -d "$srv" mut k
poll_answered "$(size_now mut)"
[ "$(size_now mut)" -gt 0 ] || fail "mut was written"
# No commit: once the wait is over, the same target.
size=$(size_now docs)
[ "$(status "$TMP/lp" "$base/ns/docs/target?after=$size&wait_ms=300")" = 200 ] || fail "a short long poll"
jq -e --argjson n "$size" '.size == $n and (.signature | length) == 128' "$TMP/lp" >/dev/null ||
	fail "a long poll with no commit answers the same target: $(cat "$TMP/lp")"
# Answered at once (far within --max-time) when the size is not `after`,
# or without `after`, or with wait_ms=0.
for q in "after=$((size - 1))&wait_ms=20000" "after=$((size + 1))&wait_ms=20000" \
	"wait_ms=20000" "after=$size&wait_ms=0" "after=$size"; do
	[ "$(status "$TMP/lp" --max-time 10 "$base/ns/docs/target?$q")" = 200 ] || fail "target?$q"
	jq -e --argjson n "$size" '.size == $n' "$TMP/lp" >/dev/null || fail "target?$q: $(cat "$TMP/lp")"
done
for q in "after=x&wait_ms=100" "after=-1&wait_ms=100" "after=1&wait_ms=1.5" \
	"after=99999999999999999999999&wait_ms=100" "after=$size&wait_ms=99999999999999999999999"; do
	expect_error 400 bad_request --max-time 10 "$base/ns/docs/target?$q"
done
expect_error 404 not_found --max-time 10 "$base/ns/nosuch/target?after=0&wait_ms=20000"
# A dag namespace has no target here, long poll or not (its entries sync
# over /api/v0/dag).
expect 0 "$SLUICE" ns create -d "$srv" team --kind dag
expect_error 400 bad_request "$base/ns/team/target"
expect_error 400 bad_request --max-time 10 "$base/ns/team/target?after=0&wait_ms=20000"
waiting 0 || fail "no request is left waiting"

# A server without a token refuses commits.
stop_server s
start_server s "$srv"
base="http://127.0.0.1:${PORT[s]}/api/v0"
expect_error 403 forbidden "${auth[@]}" --data-binary @"$TMP/batch" "$base/ns/docs/commit"


# Metrics count what was served.
curl -sf "http://127.0.0.1:${METRICS_PORT[s]}/metrics" >"$TMP/m"
grep -q '^sluice_server_requests_total{endpoint="commit"} 1$' "$TMP/m" || fail "metrics: $(cat "$TMP/m")"
grep -q '^sluice_server_errors_total{endpoint="commit"} 1$' "$TMP/m" || fail "metrics count errors"
echo "serve: ok"

#!/usr/bin/env bash
# `sluice engine diff` between two engines with store L3s that share a
# history (B's L3 starts as a copy of A's: same keys, versions and
# values) and then diverge by a known set of keys: some only in A, some
# only in B, some changed in B, some deleted in B. The diff reports exactly
# that set, as text and as JSON, in bytes far below the full set's; the
# reconcile endpoints refuse bad frames with 400 and change nothing; a peer
# that answers garbage fails the diff with a clear error.
set -euo pipefail
. "$(dirname "$0")/common.bash"
. "$(dirname "$0")/engine_common.bash"

N=2000
GARBAGE_PID=
cleanup_diff() {
	[ -n "$GARBAGE_PID" ] && kill -9 "$GARBAGE_PID" 2>/dev/null
	cleanup_engine
}
trap cleanup_diff EXIT

cfg_a="$TMP/a.toml"
cfg_b="$TMP/b.toml"
engine_config "$cfg_a" "$TMP/wal-a" store "$TMP/l3-a" kv "[batch]" "ms = 10" "items = 5000"
engine_config "$cfg_b" "$TMP/wal-b" store "$TMP/l3-b" kv "[batch]" "ms = 10" "items = 5000"

# put URL KEY-GLOB VALUE: one connection, every key of the glob
put() {
	curl -sS -o /dev/null -X PUT -H 'Sluice-Ack: memory' --data-binary "$3" "$1/api/v0/kv/$2"
}
del() {
	curl -sS -o /dev/null -X DELETE -H 'Sluice-Ack: memory' "$1/api/v0/kv/$2"
}

# The shared history, then A's L3 copied for B (A stopped: drained).
start_engine "$cfg_a"
put "$EURL" "k/[1-$N]" shared
wait_until 30 flushed "$cfg_a" || fail "A did not drain"
stop_engine
cp -r "$TMP/l3-a" "$TMP/l3-b"

# A diverges: keys only in A.
start_engine "$cfg_a"
put "$EURL" "only-a/[1-4]" a
wait_until 30 flushed "$cfg_a" || fail "A did not drain"
stop_engine

# B diverges: keys only in B, changed in B, deleted in B.
start_engine "$cfg_b"
put "$EURL" "only-b/[1-3]" b
put "$EURL" "k/[10-14]" changed
del "$EURL" "k/[20-21]"
wait_until 30 flushed "$cfg_b" || fail "B did not drain"

want_local='["k/20","k/21","only-a/1","only-a/2","only-a/3","only-a/4"]'
want_remote='["only-b/1","only-b/2","only-b/3"]'
want_diff='["k/10","k/11","k/12","k/13","k/14"]'

expect 0 "$SLUICE" engine diff -c "$cfg_a" --peer "127.0.0.1:$EPORT" --json
j=$OUT
[ "$(echo "$j" | jq -c .only_local)" = "$want_local" ] || fail "only_local: $j"
[ "$(echo "$j" | jq -c .only_remote)" = "$want_remote" ] || fail "only_remote: $j"
[ "$(echo "$j" | jq -c .different)" = "$want_diff" ] || fail "different: $j"
[ "$(echo "$j" | jq -r .vanished)" = 0 ] || fail "vanished: $j"
[ "$(echo "$j" | jq -c 'keys')" = \
	'["bytes_received","bytes_sent","different","only_local","only_remote","round_trips","vanished"]' ] ||
	fail "the fields of sluice diff --json: $j"
# N+ keys at 32-byte ids would be 64000 bytes each way: the traffic follows
# the 19 differences
sent=$(echo "$j" | jq .bytes_sent)
recv=$(echo "$j" | jq .bytes_received)
[ "$((sent + recv))" -lt 16000 ] || fail "bytes follow the set, not the differences: $j"
echo "engine_diff.sh: $sent bytes sent, $recv received, $(echo "$j" | jq .round_trips) round trips"

expect 0 "$SLUICE" engine diff -c "$cfg_a" --peer "127.0.0.1:$EPORT"
expect_in "$OUT" "only in $cfg_a (6):" "text report"
expect_in "$OUT" "only in 127.0.0.1:$EPORT (3):" "text report"
expect_in "$OUT" "different (5):" "text report"
expect_in "$OUT" "  only-b/2" "text report"
expect_in "$OUT" "round trips" "text report"

# B against itself (its own L3, while it serves): nothing differs
expect 0 "$SLUICE" engine diff -c "$cfg_b" --peer "127.0.0.1:$EPORT"
expect_in "$OUT" "hold the same keys and values" "a diff with itself"

# bad frames are 400 and change nothing
lsn=$(engine_status "$cfg_b" | jq -r .wal.lsn)
code=$(printf 'garbage' | curl -sS -o "$TMP/r" -w '%{http_code}' --data-binary @- \
	"$EURL/api/v0/kv-reconcile")
[ "$code" = 400 ] || fail "a bad reconcile message: $code $(cat "$TMP/r")"
expect_in "$(jq -r .message "$TMP/r")" "version" "the error names the problem"
code=$(printf '\001\000\000\000\000\002abc' | curl -sS -o "$TMP/r" -w '%{http_code}' \
	--data-binary @- "$EURL/api/v0/kv-reconcile/keys")
[ "$code" = 400 ] || fail "a bad keys request: $code $(cat "$TMP/r")"
code=$(curl -sS -o /dev/null -w '%{http_code}' "$EURL/api/v0/kv-reconcile")
[ "$code" = 405 ] || fail "GET of the reconcile endpoint: $code"
[ "$(engine_status "$cfg_b" | jq -r .wal.lsn)" = "$lsn" ] || fail "a refused request wrote"

# a peer that answers garbage: a clear error, exit 1
cat >"$TMP/garbage.py" <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b"\x61not a reconciliation message"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
python3 "$TMP/garbage.py" >"$TMP/garbage.port" &
GARBAGE_PID=$!
wait_until 10 test -s "$TMP/garbage.port" || fail "the garbage peer did not start"
expect 1 "$SLUICE" engine diff -c "$cfg_a" --peer "127.0.0.1:$(cat "$TMP/garbage.port")"
expect_in "$ERR" "the answer of 127.0.0.1" "the error names the peer"
expect_in "$ERR" "reconciliation message" "the error says what is wrong"

# usage
expect 2 "$SLUICE" engine diff -c "$cfg_a"
echo "engine_diff.sh: ok"

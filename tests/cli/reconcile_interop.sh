#!/usr/bin/env bash
# Set reconciliation against an independent NIP-77 implementation,
# nostr-tools (pinned in tests/package.json):
#
#  1. tests/tools/nip77_compare.mjs drives sluice's reconciliation through
#     negentropy_harness (built next to sluice) and compares it with
#     nostr-tools over seeded random cases: byte identity of the messages
#     of runs without a frame limit, and full runs with frame limits, have
#     and need checked against the true difference. CASES sets the count (300 keeps the test near 25 s
#     under ASan on 2 cores), SEED replays a run.
#  2. tests/tools/nip77_peer.mjs plays a node's reconcile and items
#     endpoints (docs/protocol.md); nip77_http_check.mjs runs
#     nip77_client.mjs against it and checks the items frames and the
#     errors of bad requests.
#  3. The same checks against a real `sluice serve` holding the same set,
#     whose state fingerprint must equal the one nostr-tools computes.
#  4. `sluice diff --peer` against nip77_peer.mjs: the keys it reports are
#     the differences the test made.
set -euo pipefail
source "$(dirname "$0")/common.bash"

tools="$SLUICE_SRC/tests/tools"
harness="$(dirname "$SLUICE")/negentropy_harness"
[ -x "$harness" ] || fail "no $harness: build the negentropy_harness target"
[ -f "$SLUICE_SRC/tests/node_modules/nostr-tools/package.json" ] ||
	fail "nostr-tools is not installed in tests/node_modules: run scripts/deps.sh"

PEER_PID=
SERVE_PID=
# wait_for PATTERN FILE PID: until FILE has a line matching PATTERN (20 s).
wait_for() {
	for _ in $(seq 200); do
		grep -q "$1" "$2" && return 0
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
cleanup() {
	[ -z "$PEER_PID" ] || kill "$PEER_PID" 2>/dev/null || true
	[ -z "$SERVE_PID" ] || kill "$SERVE_PID" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

seed=${SEED:-$((RANDOM * 32768 + RANDOM))}
cases=${CASES:-300}

# ------------------------------------------------ sluice against nostr-tools
started=$SECONDS
if ! SEED=$seed CASES=$cases node "$tools/nip77_compare.mjs" "$harness" >"$TMP/compare.out" 2>&1; then
	cat "$TMP/compare.out" >&2
	fail "nip77_compare.mjs (replay with SEED=$seed CASES=$cases)"
fi
cat "$TMP/compare.out"
summary=$(tail -n 1 "$TMP/compare.out")
expect_in "$summary" "nip77_compare: $cases cases " "compare summary"
expect_in "$summary" "byte identity: $cases first messages" "compare summary"
expect_in "$summary" "full runs: $cases nostr-tools->sluice, $cases sluice->nostr-tools responder" \
	"compare summary"
echo "compare: $((SECONDS - started)) s"

# ------------------------------------------------- the endpoints over HTTP
started=$SECONDS
node "$tools/nip77_http_check.mjs" gen "$TMP/node.json" "$seed"
node "$tools/nip77_peer.mjs" docs "$TMP/node.json" 0 >"$TMP/peer.out" 2>"$TMP/peer.err" &
PEER_PID=$!
wait_for '^listening ' "$TMP/peer.out" "$PEER_PID" || true
port=$(sed -n 's/^listening \([0-9]*\)$/\1/p' "$TMP/peer.out")
[ -n "$port" ] || fail "nip77_peer.mjs did not start: $(cat "$TMP/peer.err")"
if ! node "$tools/nip77_http_check.mjs" check "http://127.0.0.1:$port" docs "$TMP/node.json" \
	"$TMP" "$seed"; then
	cat "$TMP/peer.err" >&2
	fail "nip77_http_check.mjs (seed $seed)"
fi
[ ! -s "$TMP/peer.err" ] || fail "nip77_peer.mjs wrote to stderr: $(cat "$TMP/peer.err")"
echo "http: $((SECONDS - started)) s"

# ------------------------------------------------- against sluice serve
started=$SECONDS
# The set as files, imported: key = path under the directory.
node -e '
const fs = require("fs"), path = require("path");
const [file, dir] = process.argv.slice(1);
for (const e of JSON.parse(fs.readFileSync(file))) {
	fs.mkdirSync(path.join(dir, path.dirname(e.key)), { recursive: true });
	fs.writeFileSync(path.join(dir, e.key), Buffer.from(e.value_b64, "base64"));
}' "$TMP/node.json" "$TMP/files"
srv="$TMP/srv"
expect 0 "$SLUICE" init -d "$srv"
expect 0 "$SLUICE" ns create -d "$srv" docs --kind mutable
expect 0 "$SLUICE" import -d "$srv" docs "$TMP/files"
SLUICE_LOG=info "$SLUICE" serve -d "$srv" -p 0 -m off >"$TMP/serve.log" 2>&1 &
SERVE_PID=$!
wait_for 'msg="serving"' "$TMP/serve.log" "$SERVE_PID" || true
sport=$(sed -n 's/.*msg="serving".* port=\([0-9]*\) .*/\1/p' "$TMP/serve.log")
[ -n "$sport" ] || fail "sluice serve did not start: $(cat "$TMP/serve.log")"
if ! node "$tools/nip77_http_check.mjs" check "http://127.0.0.1:$sport" docs "$TMP/node.json" \
	"$TMP" "$seed"; then
	fail "nip77_http_check.mjs against sluice serve (seed $seed)"
fi
# The fingerprint of the whole set, computed by nostr-tools, is the
# namespace's state fingerprint.
fp=$(node --input-type=module -e '
import { loadItems, makeStorage } from "'"$tools"'/nip77_lib.mjs";
const s = makeStorage(loadItems(process.argv[1]));
process.stdout.write(Buffer.from(s.fingerprint(0, s.size())).toString("hex"));' "$TMP/node.json")
[ "$("$SLUICE" root -d "$srv" --json docs | jq -r .state)" = "$fp" ] ||
	fail "the state fingerprint differs from nostr-tools' ($fp)"
kill "$SERVE_PID" && wait "$SERVE_PID" 2>/dev/null || true
SERVE_PID=
echo "sluice serve: $((SECONDS - started)) s"

# ------------------------------------------------ sluice diff against the peer
started=$SECONDS
mine="$TMP/mine"
expect 0 "$SLUICE" init -d "$mine"
expect 0 "$SLUICE" ns create -d "$mine" docs --kind mutable
for i in 00001 00002 00003 00500 02999; do rm "$TMP/files/s/$i"; done
for i in 00007 01234; do printf 'mine %s' "$i" >"$TMP/files/s/$i"; done
mkdir -p "$TMP/files/extra" && for i in 1 2 3; do printf 'x%s' "$i" >"$TMP/files/extra/$i"; done
expect 0 "$SLUICE" import -d "$mine" docs "$TMP/files"
expect 0 "$SLUICE" diff -d "$mine" docs --peer "127.0.0.1:$port" --json
[ "$(jq -c .only_remote <<<"$OUT")" = '["s/00001","s/00002","s/00003","s/00500","s/02999"]' ] ||
	fail "diff against nostr-tools: only_remote: $OUT"
[ "$(jq -c .only_local <<<"$OUT")" = '["extra/1","extra/2","extra/3"]' ] ||
	fail "diff against nostr-tools: only_local: $OUT"
[ "$(jq -c .different <<<"$OUT")" = '["s/00007","s/01234"]' ] ||
	fail "diff against nostr-tools: different: $OUT"
expect 0 "$SLUICE" diff -d "$mine" docs --peer "127.0.0.1:$port" --pull --json
[ "$(jq .pulled <<<"$OUT")" = 7 ] || fail "pull from the nostr-tools peer: $OUT"
expect 0 "$SLUICE" diff -d "$mine" docs --peer "127.0.0.1:$port" --json
[ "$(jq -c '[.only_remote, .different]' <<<"$OUT")" = '[[],[]]' ] || fail "after pull: $OUT"
echo "sluice diff against nostr-tools: $((SECONDS - started)) s"

#!/usr/bin/env bash
# DAG namespaces on the command line: create (the node key becomes admin),
# put/get/del/ls through signed entries, `dag log|tips|info` as text and
# JSON, `dag grant`, every stored entry read by an independent reader
# (tests/tools/dag_entry_check.mjs) exactly as sluice reads it, the
# vectors of docs/protocol.md, the commands of operation logs refusing a dag
# namespace with a clear error, `verify` passing and then catching an
# entry damaged in the database, bad arguments changing nothing, and a
# store of format 2 upgraded in place with its data intact.
set -euo pipefail
source "$(dirname "$0")/common.bash"

dag_json() { # NS: `dag info --json`
	"$SLUICE" dag info --json "$1"
}

expect 0 "$SLUICE" init
expect 0 "$SLUICE" ns create docs --kind dag
expect_in "$OUT" "created dag namespace docs (id " "ns create"
ns_id=$(sed -n 's/.*(id \([0-9a-f]*\)).*/\1/p' <<<"$OUT")
[ ${#ns_id} = 64 ] || fail "no namespace id in: $OUT"
admin=$("$SLUICE" key)
[ ${#admin} = 64 ] || fail "sluice key: '$admin'"

info=$(dag_json docs)
[ "$(jq -r .id <<<"$info")" = "$ns_id" ] || fail "info id: $info"
[ "$(jq -r .role <<<"$info")" = admin ] || fail "the creator is not admin: $info"
[ "$(jq -r .node <<<"$info")" = "$admin" ] || fail "info node: $info"
[ "$(jq .entries <<<"$info")" = 1 ] || fail "a new namespace holds its root only: $info"

# ---------------------------------------------------------------- writes
printf 'one' | "$SLUICE" put docs notes/a
printf 'two' | "$SLUICE" put docs notes/b
printf 'one, again' | "$SLUICE" put docs notes/a
expect 0 "$SLUICE" del docs notes/b
expect 0 "$SLUICE" get docs notes/a
[ "$OUT" = "one, again" ] || fail "get: '$OUT'"
expect 1 "$SLUICE" get docs notes/b
expect 0 "$SLUICE" ls docs
[ "$OUT" = notes/a ] || fail "ls: '$OUT'"

expect 0 "$SLUICE" dag log --json docs
[ "$(wc -l <<<"$OUT")" = 5 ] || fail "log: 5 entries expected: $OUT"
jq -se 'map(.height) == [0, 1, 2, 3, 4]' <<<"$OUT" >/dev/null || fail "log heights: $OUT"
jq -se '.[0].id == "'"$ns_id"'" and .[0].parents == [] and .[0].writes == []' <<<"$OUT" \
	>/dev/null || fail "the first entry is not the root: $OUT"
jq -se 'all(.[1:][]; (.parents | length) == 1 and .author == "'"$admin"'")' <<<"$OUT" \
	>/dev/null || fail "each write is on top of the one before: $OUT"
jq -se '.[4].writes == [{"delete": "notes/b"}]' <<<"$OUT" >/dev/null || fail "delete: $OUT"
jq -se '.[3].writes[0].set == "notes/a" and .[3].writes[0].size == 10' <<<"$OUT" >/dev/null ||
	fail "set: $OUT"
last=$(jq -r .id <<<"$(tail -1 <<<"$OUT")")
expect 0 "$SLUICE" dag tips --json docs
[ "$(jq -r .id <<<"$OUT")" = "$last" ] || fail "the tip is not the last write: $OUT"
expect 0 "$SLUICE" dag log docs
expect_in "$OUT" "4 $last by ${admin:0:16}: delete notes/b" "text log"

# ----------------------------------------------------------------- roles
expect 0 "$SLUICE" init -d "$TMP/writer"
writer=$("$SLUICE" key -d "$TMP/writer")
expect 0 "$SLUICE" dag grant docs "$writer" write
expect 0 "$SLUICE" dag log --json docs
jq -se '.[-1].writes == [{"role": "'"$writer"'", "to": "write"}]' <<<"$OUT" >/dev/null ||
	fail "grant: $OUT"
before=$(dag_json docs)
expect 2 "$SLUICE" dag grant docs "${writer:0:10}" write
expect_in "$ERR" "64 hex digits" "grant with a short key"
expect 2 "$SLUICE" dag grant docs "$writer" owner
expect_in "$ERR" "unknown role 'owner'" "grant with an unknown role"
[ "$(dag_json docs)" = "$before" ] || fail "a refused grant changed the namespace"

# ------------------------------------------ read by an independent reader
# tests/tools/dag_entry_check.mjs decodes and verifies each stored entry
# (Node's SHA-256 and Ed25519) and must read exactly what sluice reads.
check_entries() {
	node "$SLUICE_SRC/tests/tools/dag_entry_check.mjs"
}
sqlite3 "$SLUICE_DIR/sluice.db" "SELECT hex(encoding) FROM dag_entries ORDER BY height, id" \
	>"$TMP/encodings"
check_entries <"$TMP/encodings" | jq -cS . >"$TMP/theirs" || fail "an entry did not verify"
"$SLUICE" dag log --json docs | jq -cS . >"$TMP/ours"
[ "$(wc -l <"$TMP/ours")" = 6 ] || fail "6 entries expected"
cmp -s "$TMP/ours" "$TMP/theirs" || fail "the two readings differ: $(diff "$TMP/ours" "$TMP/theirs")"
sed '3s/^\(.\{300\}\)./\1F/' "$TMP/encodings" >"$TMP/damaged"
cmp -s "$TMP/encodings" "$TMP/damaged" && fail "the damage changed nothing"
! check_entries <"$TMP/damaged" >/dev/null 2>&1 || fail "the reader took a damaged entry"
# The vectors of docs/protocol.md.
vectors="01000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f000000000000000000d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a0000018bcfe568000000000092e85ea5614515f88d954cb4507c92508f43b016eb33c4895c92696ba7c1b70aaab3f6ff6bc8aede1bbe61908867e181d5c6121e887b776df921b2b8eaa46c07
01219095c4240be09b0259e68aaca21510a809d6ec23356da2c557471536fd6c10000000000000000101219095c4240be09b0259e68aaca21510a809d6ec23356da2c557471536fd6c10d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a0000018bcfe56801000000020103612f62052cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b982403111111111111111111111111111111111111111111111111111111111111111102818ffc674ec4f6b1cd05ce03f7cd781f4d0755c1170e5492c52bc63bbd10d2c7bef7d29f86803dd55a57084396de9b1cfa498e2c8768e43802a76576f2293b0a"
[ "$(check_entries <<<"$vectors" | jq -r .id | tr '\n' ' ')" = \
	"219095c4240be09b0259e68aaca21510a809d6ec23356da2c557471536fd6c10 1d1ed1b5ec00a58736af47630727f9737dd8b539f3f2d90497ca855789cf193e " ] ||
	fail "the vectors of docs/protocol.md do not read as documented"

# --------------------------------- operation-log commands refuse, clearly
expect 1 "$SLUICE" root docs
expect_in "$ERR" "dag namespace" "root"
expect 1 "$SLUICE" log docs
expect_in "$ERR" "dag namespace" "log"
expect 1 "$SLUICE" prove docs notes/a
expect_in "$ERR" "dag namespace" "prove"
expect 1 "$SLUICE" dag info nothere
expect_in "$ERR" "nothere" "info of a missing namespace"
expect 0 "$SLUICE" ns create plain --kind mutable
expect 1 "$SLUICE" dag log plain
expect_in "$ERR" "not a dag namespace" "dag log of a mutable namespace"
expect 0 "$SLUICE" ns list --json
jq -se 'map(select(.name == "docs"))[0] | .kind == "dag" and .size == 6' <<<"$OUT" >/dev/null ||
	fail "ns list: $OUT"

# ---------------------------------------------------------------- verify
expect 0 "$SLUICE" verify docs
expect_in "$OUT" "entries    6" "verify"
cp "$SLUICE_DIR/sluice.db" "$TMP/good.db"
# One byte of a stored entry's encoding changed: its id and signature no
# longer hold.
sqlite3 "$SLUICE_DIR/sluice.db" "UPDATE dag_entries SET encoding = \
	substr(encoding, 1, 100) || x'ff' || substr(encoding, 102) WHERE height = 2"
expect 1 "$SLUICE" verify docs
expect_in "$ERR" "does not verify" "verify of a damaged entry"
cp "$TMP/good.db" "$SLUICE_DIR/sluice.db"
sqlite3 "$SLUICE_DIR/sluice.db" "DELETE FROM dag_tips"
expect 1 "$SLUICE" verify docs
expect_in "$ERR" "dag_tips" "verify without tips"
cp "$TMP/good.db" "$SLUICE_DIR/sluice.db"
expect 0 "$SLUICE" verify docs

# ------------------------------------------------------ format 2 upgrade
export SLUICE_DIR="$TMP/old"
expect 0 "$SLUICE" init
expect 0 "$SLUICE" ns create kv --kind mutable
printf 'kept' | "$SLUICE" put kv k
root=$(root_of kv)
sqlite3 "$SLUICE_DIR/sluice.db" "DROP TABLE dag_entries; DROP TABLE dag_settings; \
	DROP TABLE dag_state; DROP TABLE dag_tips; DROP TABLE dag_peers; DROP TABLE dag_requests; \
	DROP TABLE request_nonces; DROP TABLE dag_values; DROP INDEX ops_value; \
	PRAGMA user_version = 2;"
expect 0 "$SLUICE" get kv k # read-only: no upgrade needed
[ "$(sqlite3 "$SLUICE_DIR/sluice.db" 'PRAGMA user_version')" = 2 ] || fail "a read upgraded"
expect 0 "$SLUICE" ns create shared --kind dag
[ "$(sqlite3 "$SLUICE_DIR/sluice.db" 'PRAGMA user_version')" = 4 ] || fail "no upgrade"
[ "$(root_of kv)" = "$root" ] || fail "the upgrade changed namespace kv"
expect 0 "$SLUICE" get kv k
[ "$OUT" = kept ] || fail "the upgrade lost a value"
expect 0 "$SLUICE" verify kv
expect 0 "$SLUICE" verify shared
echo "dag: ok"

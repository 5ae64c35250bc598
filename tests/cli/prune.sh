#!/usr/bin/env bash
# `sluice prune` end to end: large values overwritten in a mutable
# namespace, one value shared with another namespace and with a dag
# namespace; a prune deletes the operations below the floor and the
# values nothing refers to any more (text and --json), live keys still
# read back and prove, `verify` passes with every stored value referred
# to; --vacuum shrinks the file and empties the WAL; immutable, dag and
# unknown namespaces are refused with a clear error and nothing changes.
set -euo pipefail
source "$(dirname "$0")/common.bash"

DB="$SLUICE_DIR/sluice.db"

value() { # TAG: a value of about 300 bytes, too large to sit in its operation
	printf '%s:%0300d' "$1" 0
}

blobs() {
	sqlite3 "$DB" "SELECT count(*) FROM blobs"
}

held() { # TAG: 1 if the value of TAG is stored
	local digest
	digest=$(value "$1" | sha256sum | cut -d' ' -f1)
	sqlite3 "$DB" "SELECT count(*) FROM blobs WHERE digest = X'$digest'"
}

expect 0 "$SLUICE" init
expect 0 "$SLUICE" ns create kv --kind mutable
expect 0 "$SLUICE" ns create other --kind mutable
expect 0 "$SLUICE" ns create im --kind immutable
expect 0 "$SLUICE" ns create team --kind dag

value shared | "$SLUICE" put kv shared
value shared | "$SLUICE" put other shared
value shared | "$SLUICE" put team doc
value dagonly | "$SLUICE" put team note
value fixed | "$SLUICE" put im fixed
for round in 1 2 3 4 5 6; do
	for k in a b c; do
		value "$k$round" | "$SLUICE" put kv "$k"
	done
done
value replaced | "$SLUICE" put kv shared
for k in a b c; do value "${k}last" | "$SLUICE" put kv "$k"; done
before=$(blobs)
floor=$("$SLUICE" root --json kv | jq .floor)
[ "$floor" -gt 0 ] || fail "no floor to prune to"

# ------------------------------------------------------------------ prune
expect 0 "$SLUICE" prune kv
expect_in "$OUT" "pruned     operations [0, $floor): $floor deleted" "prune"
expect_in "$OUT" "values     " "prune"
expect_in "$OUT" "later writes reuse them" "prune says what becomes of the pages"
expect_in "$OUT" "(sluice.db and its WAL)" "prune"
n_values=$(sed -n 's/^values *\([0-9]*\) deleted.*/\1/p' <<<"$OUT")
[ "$n_values" -gt 0 ] || fail "no values deleted: $OUT"
[ "$(blobs)" = $((before - n_values)) ] || fail "blobs: $(blobs), expected $((before - n_values))"
[ "$(held a1)" = 0 ] || fail "an overwritten value is still stored"
[ "$(held shared)" = 1 ] || fail "the value other and team still use was deleted"
[ "$(held dagonly)" = 1 ] || fail "a dag value was deleted"
for k in a b c; do
	expect 0 "$SLUICE" get kv "$k"
	[ "$OUT" = "$(value "${k}last")" ] || fail "kv $k after prune"
done
expect 0 "$SLUICE" get other shared
[ "$OUT" = "$(value shared)" ] || fail "other shared after prune"
expect 0 "$SLUICE" get team doc
[ "$OUT" = "$(value shared)" ] || fail "team doc after prune"
"$SLUICE" prove kv a --json >"$TMP/proof.json"
expect 0 "$SLUICE" check-proof "$TMP/proof.json"
for ns in kv other im team; do
	expect 0 "$SLUICE" verify "$ns"
	expect_in "$OUT" "stored     $(blobs) values" "verify $ns after prune"
	expect_in "$OUT" "ok" "verify $ns after prune"
done
expect 1 "$SLUICE" log kv --from 0
expect_in "$ERR" "sluice: log: " "the pruned log"

# Nothing more below the floor: --json says so.
expect 0 "$SLUICE" prune kv --json
json=$OUT
[ "$(jq -c '[.namespace, .from, .to, .operations, .values, .vacuumed, .checkpointed]' \
	<<<"$json")" = "[\"kv\",$floor,$floor,0,0,false,null]" ] || fail "prune --json: $json"
for field in value_bytes page_size pages_before pages free_pages bytes_before bytes_after; do
	[ "$(jq ".$field | type" <<<"$json")" = '"number"' ] || fail "prune --json: no $field: $json"
done

# ----------------------------------------------------------------- vacuum
for round in 7 8 9 10; do
	for k in a b c; do value "$k$round" | "$SLUICE" put kv "$k"; done
done
expect 0 "$SLUICE" prune kv --vacuum --json
json=$OUT
[ "$(jq .vacuumed <<<"$json")" = true ] || fail "prune --vacuum: $json"
[ "$(jq .checkpointed <<<"$json")" = true ] || fail "prune --vacuum: $json"
[ "$(jq .free_pages <<<"$json")" = 0 ] || fail "free pages left after vacuum: $json"
[ "$(jq '.values > 0' <<<"$json")" = true ] || fail "prune --vacuum deleted no value: $json"
[ "$(jq '.bytes_after < .bytes_before' <<<"$json")" = true ] || fail "the file did not shrink: $json"
[ "$(jq '.pages < .pages_before' <<<"$json")" = true ] || fail "no page given back: $json"
[ "$(stat -c %s "$DB")" = "$(jq '.pages * .page_size' <<<"$json")" ] ||
	fail "sluice.db is not its pages: $(stat -c %s "$DB") bytes, $json"
[ ! -s "$DB-wal" ] || fail "the WAL is not empty after vacuum"
expect 0 "$SLUICE" prune --vacuum kv
expect_in "$OUT" "pages      " "prune --vacuum"
expect_in "$OUT" "0 free" "prune --vacuum"
for ns in kv other im team; do expect 0 "$SLUICE" verify "$ns"; done
for k in a b c; do
	expect 0 "$SLUICE" get kv "$k"
	[ "$OUT" = "$(value "${k}10")" ] || fail "kv $k after vacuum"
done

# -------------------------------------------------------------- refusals
state() {
	for ns in kv other im; do "$SLUICE" root --json "$ns"; done
	blobs
	sqlite3 "$DB" "SELECT count(*) FROM ops"
}
was=$(state)
expect 1 "$SLUICE" prune im
expect_in "$ERR" "sluice: prune: namespace 'im' is immutable" "prune of an immutable namespace"
expect_in "$ERR" "nothing to prune" "prune of an immutable namespace"
expect 1 "$SLUICE" prune team --vacuum
expect_in "$ERR" "sluice: prune: namespace 'team' is a dag namespace" "prune of a dag namespace"
expect 1 "$SLUICE" prune nosuch
expect_in "$ERR" "sluice: prune: no namespace 'nosuch'" "prune of an unknown namespace"
expect 1 "$SLUICE" prune 'bad name'
expect_in "$ERR" "sluice: prune: " "prune of a bad name"
[ "$(state)" = "$was" ] || fail "a refused prune changed the store"
expect 2 "$SLUICE" prune
expect_in "$ERR" "sluice: prune: missing argument" "prune without a namespace"
expect 2 "$SLUICE" prune kv other
expect 2 "$SLUICE" prune --bogus kv
expect 1 "$SLUICE" prune -d "$TMP/none" kv
expect_in "$ERR" "no store in" "prune without a store"
[ "$(state)" = "$was" ] || fail "a refused prune changed the store"
echo "prune: ok"

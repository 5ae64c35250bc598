#!/usr/bin/env bash
# `sluice prove` and `sluice check-proof`: every proof the store makes
# checks as valid; changing any one field, digest or element byte makes it
# invalid; malformed files are rejected as such. Exit 0 for valid, 1 for
# everything else.
set -euo pipefail
source "$(dirname "$0")/common.bash"

"$SLUICE" init >/dev/null
"$SLUICE" ns create im --kind immutable >/dev/null
"$SLUICE" ns create mu --kind mutable >/dev/null
for i in $(seq 1 11); do
	printf 'value %d' "$i" | "$SLUICE" put im "k/$i"
done
for i in 1 2 3; do
	printf 'v%d' "$i" | "$SLUICE" put mu a
	printf 'w%d' "$i" | "$SLUICE" put mu "b/$i"
done
"$SLUICE" del mu b/2

# check FILE WANT_STATUS WANT_PREFIX
check() {
	expect "$2" "$SLUICE" check-proof "$1"
	expect_in "$OUT" "$3" "check-proof $(head -c 300 "$1")"
	case "$OUT" in "$3"*) ;; *) fail "check-proof: '$OUT' does not start with '$3'" ;; esac
}
valid() { check "$1" 0 valid; }
invalid() { check "$1" 1 "invalid: "; }
malformed() { check "$1" 1 "invalid: malformed proof file: "; }

# flip_hex HEX POS: HEX with the hex digit at POS changed.
flip_hex() {
	local c=${1:$2:1} d=0
	[ "$c" != 0 ] || d=1
	echo "${1:0:$2}$d${1:$(($2 + 1))}"
}

# tamper SRC JQ-FILTER [ARGS]: SRC changed by a jq filter, into $TMP/t.json.
tamper() {
	local src=$1
	shift
	jq -c "$@" "$src" >"$TMP/t.json"
}

# ----------------------------------------------------------- valid proofs
for ns_key in im:k/1 im:k/6 im:k/11 mu:a mu:b/1 mu:b/3; do
	ns=${ns_key%%:*}
	key=${ns_key#*:}
	p="$TMP/proof-${ns}-${key//\//_}.json"
	expect 0 "$SLUICE" prove --json "$ns" "$key"
	echo "$OUT" >"$p"
	jq -e --arg ns "$ns" --arg key "$key" --arg root "$(root_of "$ns")" \
		--argjson size "$("$SLUICE" root --json "$ns" | jq .size)" '
		keys_unsorted == ["ns", "key", "loc", "size", "root", "element", "digests"] and
		.ns == $ns and .key == $key and .root == $root and .size == $size and
		.loc < .size and (.element | test("^[0-9a-f]+$")) and
		all(.digests[]; test("^[0-9a-f]{64}$"))' "$p" >/dev/null ||
		fail "prove --json $ns $key: $(cat "$p")"
	valid "$p"
	expect 0 "$SLUICE" check-proof - <"$p"
	[ "$OUT" = valid ] || fail "check-proof - said $OUT"
done
# The readable form carries the same numbers.
expect 0 "$SLUICE" prove im k/6
expect_in "$OUT" "root      $(root_of im)" "prove text"
expect_in "$OUT" "loc       $(jq .loc "$TMP/proof-im-k_6.json")" "prove text"
expect 1 "$SLUICE" prove im k/404
expect_in "$ERR" "sluice: prove: " "prove of an absent key"
expect 1 "$SLUICE" prove mu b/2 # deleted
expect 1 "$SLUICE" prove nosuch k/1
expect 1 "$SLUICE" prove im 'a//b'

# ------------------------------------------------------------- tampering
p="$TMP/proof-im-k_6.json"
n_digests=$(jq '.digests | length' "$p")
[ "$n_digests" -ge 2 ] || fail "expected a proof with at least 2 digests"
root=$(jq -r .root "$p")
element=$(jq -r .element "$p")
loc=$(jq .loc "$p")
size=$(jq .size "$p")

for pos in 0 31 63; do
	tamper "$p" --arg v "$(flip_hex "$root" "$pos")" '.root = $v'
	invalid "$TMP/t.json"
done
tamper "$p" '.loc += 1'
invalid "$TMP/t.json"
tamper "$p" '.loc -= 1'
invalid "$TMP/t.json"
tamper "$p" '.loc = .size'
invalid "$TMP/t.json"
tamper "$p" '.size += 1'
invalid "$TMP/t.json"
tamper "$p" '.size -= 1'
invalid "$TMP/t.json"
tamper "$p" '.size = 4611686018427387905'
invalid "$TMP/t.json"
# Every byte of the element: type, key length, key, value length, digest.
for ((pos = 0; pos < ${#element}; pos += 2)); do
	tamper "$p" --arg v "$(flip_hex "$element" "$((pos + 1))")" '.element = $v'
	invalid "$TMP/t.json"
done
tamper "$p" --arg v "${element}00" '.element = $v'
invalid "$TMP/t.json"
tamper "$p" --arg v "${element:0:$((${#element} - 2))}" '.element = $v'
invalid "$TMP/t.json"
tamper "$p" '.key = "k/7"'
invalid "$TMP/t.json"
expect_in "$OUT" "another key" "proof for another key"
for ((i = 0; i < n_digests; i++)); do
	d=$(jq -r ".digests[$i]" "$p")
	tamper "$p" --argjson i "$i" --arg v "$(flip_hex "$d" 17)" '.digests[$i] = $v'
	invalid "$TMP/t.json"
	tamper "$p" --argjson i "$i" 'del(.digests[$i])'
	invalid "$TMP/t.json"
	tamper "$p" --argjson i "$i" '.digests |= .[:$i] + [.[$i]] + .[$i:]'
	invalid "$TMP/t.json"
done
tamper "$p" '.digests += [.digests[0]]'
invalid "$TMP/t.json"
tamper "$p" '.digests = [.digests[0]] + .digests'
invalid "$TMP/t.json"
tamper "$p" '.digests |= reverse'
invalid "$TMP/t.json"
tamper "$p" '.digests = []'
invalid "$TMP/t.json"
# The element of a commit or of a delete proves no value.
commit_el=$("$SLUICE" log --json im | jq -r 'select(.op == "commit") | .element' | head -1)
tamper "$p" --arg v "$commit_el" '.element = $v'
invalid "$TMP/t.json"
expect_in "$OUT" "commit" "proof of a commit element"
# A proof from another namespace against this root.
tamper "$TMP/proof-mu-a.json" --arg r "$root" '.root = $r'
invalid "$TMP/t.json"
# Untouched, it is still valid (the tampering worked on copies).
valid "$p"
# Formatting is free: pretty-printed JSON in another key order is the same proof.
jq '{digests, element, root, size, loc, key, ns}' "$p" >"$TMP/pretty.json"
valid "$TMP/pretty.json"

# --------------------------------------------------------------- malformed
m="$TMP/m.json"
: >"$m"
malformed "$m"
echo 'not json' >"$m"
malformed "$m"
echo '[]' >"$m"
malformed "$m"
echo '"proof"' >"$m"
malformed "$m"
printf '%s\n{}' "$(cat "$p")" >"$m"
malformed "$m"
for field in ns key loc size root element digests; do
	tamper "$p" --arg f "$field" 'del(.[$f])'
	malformed "$TMP/t.json"
	expect_in "$OUT" "'$field' is missing" "missing $field"
	tamper "$p" --arg f "$field" '.[$f] = {}'
	malformed "$TMP/t.json"
	tamper "$p" --arg f "$field" '.[$f] = null'
	malformed "$TMP/t.json"
done
for field in loc size; do
	tamper "$p" --arg f "$field" '.[$f] = -1'
	malformed "$TMP/t.json"
	tamper "$p" --arg f "$field" '.[$f] = 1.5'
	malformed "$TMP/t.json"
	tamper "$p" --arg f "$field" '.[$f] = "1"'
	malformed "$TMP/t.json"
	tamper "$p" --arg f "$field" '.[$f] = 1e30'
	malformed "$TMP/t.json"
done
sed 's/"loc": [0-9]*/"loc": 123456789012345678901234567890/' "$p" >"$m"
malformed "$m"
tamper "$p" --arg v "zz${root:2}" '.root = $v'
malformed "$TMP/t.json"
tamper "$p" --arg v "${root:1}" '.root = $v'
malformed "$TMP/t.json"
tamper "$p" --arg v "${root}00" '.root = $v'
malformed "$TMP/t.json"
tamper "$p" --arg v "${element}0" '.element = $v'
malformed "$TMP/t.json"
tamper "$p" --arg v "x${element:1}" '.element = $v'
malformed "$TMP/t.json"
tamper "$p" '.element = ""'
malformed "$TMP/t.json"
tamper "$p" '.element = ("00" * 5000)'
malformed "$TMP/t.json"
tamper "$p" '.digests[0] = "abc"'
malformed "$TMP/t.json"
tamper "$p" '.digests[0] = 7'
malformed "$TMP/t.json"
tamper "$p" '.digests = "abc"'
malformed "$TMP/t.json"
tamper "$p" '.digests as $d | .digests = [range(513) | $d[0]]'
malformed "$TMP/t.json"
expect_in "$OUT" "at most 512" "too many digests"
tamper "$p" '.key = "a//b"'
malformed "$TMP/t.json"
tamper "$p" '.ns = "bad name"'
malformed "$TMP/t.json"
tamper "$p" '.extra = 1'
malformed "$TMP/t.json"
expect_in "$OUT" "unknown field 'extra'" "unknown field"
sed 's/^{/{"loc": 0, /' "$p" >"$m"
malformed "$m"
printf '{"ns": "im", "key": "a\\u0000b"}' >"$m"
malformed "$m"
# Past the 1 MiB cap, whatever it holds.
{ printf '{"ns": "%s", "pad": "' im; head -c 1100000 /dev/zero | tr '\0' a; printf '"}'; } >"$m"
malformed "$m"
expect_in "$OUT" "larger than" "oversized proof file"

expect 1 "$SLUICE" check-proof "$TMP/nosuchfile"
expect_in "$ERR" "sluice: check-proof: cannot open" "missing proof file"
expect 2 "$SLUICE" check-proof
expect 2 "$SLUICE" check-proof a b

echo "proof: ok"

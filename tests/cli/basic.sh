#!/usr/bin/env bash
# The sluice command line end to end: --help and exit codes of every
# command, init, namespaces, put/get/del/ls, root, log and verify, and the
# JSON shapes docs/cli.md promises.
set -euo pipefail
source "$(dirname "$0")/common.bash"

# ------------------------------------------------------------ help, usage
expect 0 "$SLUICE" --version
expect_in "$OUT" "sluice " "--version"
expect 0 "$SLUICE" --help
expect_in "$OUT" "Usage: sluice" "sluice --help"
for cmd in init "ns create" "ns list" put get del ls import root log prove check-proof \
	verify prune "tool mmr-root"; do
	# shellcheck disable=SC2086 # word splitting of "ns create" is intended
	for flag in --help -h; do
		expect 0 "$SLUICE" $cmd $flag
		expect_in "$OUT" "Usage: sluice $cmd" "$cmd $flag"
		expect_in "$OUT" "--dir DIR" "$cmd $flag lists the common options"
		[ -z "$ERR" ] || fail "$cmd $flag wrote to stderr: $ERR"
	done
done
for group in ns tool; do
	expect 0 "$SLUICE" $group --help
	expect_in "$OUT" "Commands:" "$group --help"
	expect 2 "$SLUICE" $group
	expect 2 "$SLUICE" $group nosuch
	expect_in "$ERR" "sluice: $group: unknown command 'nosuch'" "$group nosuch"
done

expect 2 "$SLUICE"
expect 2 "$SLUICE" nosuch
expect_in "$ERR" "sluice: unknown command 'nosuch'" "unknown command"
expect 2 "$SLUICE" --bogus
expect 2 "$SLUICE" ls --bogus ns
expect_in "$ERR" "sluice: ls: unrecognized option '--bogus'" "unknown long option"
expect 2 "$SLUICE" ls -z ns
expect_in "$ERR" "sluice: ls: unrecognized option '-z'" "unknown short option"
expect 2 "$SLUICE" get ns
expect_in "$ERR" "sluice: get: missing argument" "missing argument"
expect 2 "$SLUICE" get ns a b
expect_in "$ERR" "unexpected argument 'b'" "extra argument"
expect 2 "$SLUICE" log ns --from
expect_in "$ERR" "requires an argument" "missing option argument"
expect 2 "$SLUICE" log ns --from x
expect 2 "$SLUICE" log ns --limit -1
expect 2 "$SLUICE" log ns --from 99999999999999999999
expect 2 "$SLUICE" ns create x
expect_in "$ERR" "--kind" "ns create without --kind"
expect 2 "$SLUICE" ns create x --kind other
expect 2 "$SLUICE" import ns "$TMP" --batch 0
expect 2 "$SLUICE" root --json=1 ns
expect 2 "$SLUICE" -d

# ------------------------------------------------------------------ init
expect 1 "$SLUICE" ls ns
expect_in "$ERR" "sluice: ls: no store in" "command before init"
expect 0 "$SLUICE" init
expect_in "$OUT" "created store" "init"
[ -f "$SLUICE_DIR/sluice.db" ] || fail "init made no sluice.db"
expect 0 "$SLUICE" init
expect_in "$OUT" "already exists" "second init"
# -d wins over $SLUICE_DIR, before or after the command.
expect 0 "$SLUICE" init -d "$TMP/other"
[ -f "$TMP/other/sluice.db" ] || fail "init -d made no store"
expect 0 "$SLUICE" -d "$TMP/other2" init
[ -f "$TMP/other2/sluice.db" ] || fail "sluice -d DIR init made no store"
expect 0 "$SLUICE" --dir="$TMP/other3" init
[ -f "$TMP/other3/sluice.db" ] || fail "sluice --dir=DIR init made no store"

# ------------------------------------------------------------ namespaces
expect 0 "$SLUICE" ns create im --kind immutable
expect 0 "$SLUICE" ns create mu -k mutable
expect 1 "$SLUICE" ns create mu --kind mutable
expect_in "$ERR" "sluice: ns create: " "duplicate namespace"
expect 1 "$SLUICE" ns create 'bad name' --kind mutable
expect 0 "$SLUICE" ns list
expect_in "$OUT" "NAME" "ns list header"
[ "$(echo "$OUT" | wc -l)" -eq 3 ] || fail "ns list: expected header + 2 rows: $OUT"
expect 0 "$SLUICE" ns list --json
[ "$(echo "$OUT" | jq -r .name | tr '\n' ' ')" = "im mu " ] || fail "ns list --json names: $OUT"
# (jq -s: jq 1.6 -e looks only at the last input.)
echo "$OUT" | jq -s -e '.[] | select(.name == "im") | .kind == "immutable" and .size == 0 and
	(.root | test("^[0-9a-f]{64}$")) and .floor == 0' >/dev/null || fail "ns list --json: $OUT"

# ----------------------------------------------------------- put and get
printf 'hello' | "$SLUICE" put im greeting/en
printf 'bonjour' >"$TMP/fr"
expect 0 "$SLUICE" put im greeting/fr "$TMP/fr"
printf 'hallo' | "$SLUICE" put im greeting/de -
head -c 70000 /dev/urandom >"$TMP/binary"
expect 0 "$SLUICE" put im blob/random "$TMP/binary"
: >"$TMP/empty"
expect 0 "$SLUICE" put im blob/empty "$TMP/empty"
expect 1 "$SLUICE" put im x/y "$TMP/nosuchfile"
expect_in "$ERR" "sluice: put: cannot open" "put of a missing file"

[ "$("$SLUICE" get im greeting/en)" = hello ] || fail "get greeting/en"
[ "$("$SLUICE" get im greeting/fr)" = bonjour ] || fail "get greeting/fr"
[ "$("$SLUICE" get im greeting/de)" = hallo ] || fail "get greeting/de"
"$SLUICE" get im blob/random >"$TMP/binary.out"
cmp -s "$TMP/binary" "$TMP/binary.out" || fail "binary value changed on the way"
"$SLUICE" get im blob/empty >"$TMP/empty.out"
[ ! -s "$TMP/empty.out" ] || fail "empty value came back non-empty"
expect 1 "$SLUICE" get im greeting/xx
expect_in "$ERR" "sluice: get: " "get of an absent key"
# The same value again is a no-op in an immutable namespace.
before=$(root_of im)
printf 'hello' | "$SLUICE" put im greeting/en
[ "$(root_of im)" = "$before" ] || fail "same-value put changed the root"

# -------------------------------------------------------------------- ls
expect 0 "$SLUICE" ls im
[ "$OUT" = "$(printf 'blob/empty\nblob/random\ngreeting/de\ngreeting/en\ngreeting/fr')" ] ||
	fail "ls im: $OUT"
expect 0 "$SLUICE" ls im greeting/
[ "$(echo "$OUT" | wc -l)" -eq 3 ] || fail "ls with prefix: $OUT"
expect 0 "$SLUICE" ls im nothing/
[ -z "$OUT" ] || fail "ls with an unmatched prefix: $OUT"
expect 0 "$SLUICE" ls --json im greeting/en
echo "$OUT" | jq -e --arg d "$(printf hello | sha256sum | cut -c1-64)" \
	'keys_unsorted == ["key", "loc", "size", "digest"] and .key == "greeting/en" and
	 .size == 5 and .digest == $d and (.loc | type) == "number"' >/dev/null ||
	fail "ls --json: $OUT"

# ------------------------------------------------------------ mutable, del
printf 'one' | "$SLUICE" put mu k
printf 'two' | "$SLUICE" put mu k
[ "$("$SLUICE" get mu k)" = two ] || fail "mutable update"
printf 'x' | "$SLUICE" put mu other
expect 0 "$SLUICE" del mu k
expect 1 "$SLUICE" get mu k
expect 0 "$SLUICE" del mu k # absent: no-op
[ "$("$SLUICE" ls mu)" = other ] || fail "ls after del"

# ------------------------------------------------------------------ root
expect 0 "$SLUICE" root --json im
[[ "$OUT" =~ ^\{\"size\":\ [0-9]+,\ \"root\":\ \"[0-9a-f]{64}\",\ \"floor\":\ [0-9]+,\ \"keys\":\ [0-9]+,\ \"state\":\ \"[0-9a-f]{32}\"\}$ ]] ||
	fail "root --json shape: $OUT"
size=$(echo "$OUT" | jq .size)
root=$(echo "$OUT" | jq -r .root)
expect 0 "$SLUICE" root im
expect_in "$OUT" "$root" "root text"
expect_in "$OUT" "size  $size" "root text"

# ------------------------------------------------------------------- log
expect 0 "$SLUICE" log im
[ "$(echo "$OUT" | wc -l)" -eq "$size" ] || fail "log: expected $size lines: $OUT"
expect_in "$OUT" "0 set greeting/en size=5 digest=" "log text"
expect_in "$OUT" "commit floor=" "log text"
expect 0 "$SLUICE" log --json im
log_json=$OUT
[ "$(echo "$log_json" | wc -l)" -eq "$size" ] || fail "log --json line count"
echo "$log_json" | jq -s -e '
	(map(.loc) == [range(0; length)]) and
	all(.[]; (.element | test("^[0-9a-f]+$")) and
		if .op == "commit" then
			keys_unsorted == ["loc", "op", "key", "element", "floor"] and .key == null
		else
			.op == "set" and keys_unsorted ==
				["loc", "op", "key", "element", "digest", "value_size"] and
			(.digest | test("^[0-9a-f]{64}$"))
		end)' >/dev/null || fail "log --json shape: $log_json"
# The elements are what the MMR commits to: their root is the namespace root.
mmr=$(echo "$log_json" | jq -r .element | "$SLUICE" tool mmr-root)
[ "$mmr" = "$root" ] || fail "mmr-root of the log elements $mmr != root $root"
# set/update digests are the SHA-256 of the value.
want=$(printf bonjour | sha256sum | cut -c1-64)
echo "$log_json" | jq -s -e --arg d "$want" '.[] | select(.key == "greeting/fr") | .digest == $d and
	.value_size == 7' >/dev/null || fail "log digest of greeting/fr"
expect 0 "$SLUICE" log --json --from 2 --limit 3 im
[ "$(echo "$OUT" | jq -s -c 'map(.loc)')" = "[2,3,4]" ] || fail "log --from 2 --limit 3: $OUT"
expect 0 "$SLUICE" log --json mu
echo "$OUT" | jq -e -s 'any(.[]; .op == "update") and any(.[]; .op == "delete" and
	keys_unsorted == ["loc", "op", "key", "element"])' >/dev/null ||
	fail "mutable log --json: $OUT"

# ---------------------------------------------------------------- verify
expect 0 "$SLUICE" verify im
expect_in "$OUT" "ok" "verify"
expect 0 "$SLUICE" verify mu
expect 1 "$SLUICE" verify nosuch
expect_in "$ERR" "sluice: verify: " "verify of an unknown namespace"

echo "basic: ok"

#!/usr/bin/env bash
# Bad input gets a clear message, a non-zero exit and changes nothing:
# invalid keys, unknown namespaces, an immutable key set to a new value,
# oversized values, and a damaged store file.
set -euo pipefail
source "$(dirname "$0")/common.bash"

"$SLUICE" init >/dev/null
"$SLUICE" ns create im --kind immutable >/dev/null
"$SLUICE" ns create mu --kind mutable >/dev/null
printf 'original' | "$SLUICE" put im fixed
printf 'm' | "$SLUICE" put mu k

# unchanged: both namespaces have the roots and sizes they had before.
snapshot() { "$SLUICE" ns list --json; }
state=$(snapshot)
unchanged() {
	[ "$(snapshot)" = "$state" ] || fail "$1 changed the store"
}

# ------------------------------------------------------------ invalid keys
long_key=$(head -c 1025 /dev/zero | tr '\0' k)
for key in 'a//b' '.' '..' 'a/./b' 'a/../b' '/a' 'a/' $'a\x01b' $'a\x7fb' $'tab\there' \
	$'\xff\xfe' "$long_key"; do
	for cmd in put get del prove; do
		if [ "$cmd" = put ]; then
			run "$SLUICE" put im "$key" - <<<"value"
		else
			run "$SLUICE" "$cmd" im "$key"
		fi
		[ "$STATUS" -eq 1 ] || fail "$cmd of invalid key '$key' exited $STATUS"
		expect_in "$ERR" "sluice: $cmd: invalid key" "$cmd '$key'"
		[[ "$ERR" != *$'\x01'* ]] || fail "a control byte reached the terminal"
	done
	unchanged "put of '$key'"
done
# An empty key: same, through the argument parser.
expect 1 "$SLUICE" put im "" "$TMP/nosuch"
expect_in "$ERR" "invalid key" "empty key"
# The longest valid key works.
printf 'x' | "$SLUICE" put mu "$(head -c 1024 /dev/zero | tr '\0' k)"
state=$(snapshot)

# ------------------------------------------------------- unknown namespace
for args in "put nosuch k -" "get nosuch k" "del nosuch k" "ls nosuch" "root nosuch" \
	"log nosuch" "prove nosuch k" "verify nosuch" "import nosuch $TMP"; do
	# shellcheck disable=SC2086 # intended word splitting
	run "$SLUICE" $args </dev/null
	[ "$STATUS" -eq 1 ] || fail "'$args' exited $STATUS"
	expect_in "$ERR" "sluice: ${args%% *}: " "$args"
	expect_in "$ERR" "nosuch" "$args names the namespace"
done
unchanged "commands on an unknown namespace"
expect 1 "$SLUICE" ns create '.hidden' --kind mutable
expect 1 "$SLUICE" ns create "$(head -c 65 /dev/zero | tr '\0' n)" --kind mutable
unchanged "ns create with a bad name"

# -------------------------------------------------------------- immutable
expect 1 "$SLUICE" put im fixed - <<<"another value"
expect_in "$ERR" "sluice: put: " "immutable overwrite"
[ "$("$SLUICE" get im fixed)" = original ] || fail "immutable value changed"
unchanged "immutable overwrite"
printf 'original' | "$SLUICE" put im fixed # same value: no-op
unchanged "same-value put"
expect 1 "$SLUICE" del im fixed
[ "$("$SLUICE" get im fixed)" = original ] || fail "immutable key deleted"
unchanged "delete in an immutable namespace"

# ----------------------------------------------------------- value limits
# A sparse file one byte past SL_VALUE_MAX (1 GiB): rejected before reading.
truncate -s $(((1 << 30) + 1)) "$TMP/huge"
expect 1 "$SLUICE" put mu big "$TMP/huge"
expect_in "$ERR" "larger than" "oversized value"
unchanged "oversized put"
expect 1 "$SLUICE" put mu k "$TMP"
unchanged "put of a directory"

# --------------------------------------------------------- damaged stores
size=$(stat -c %s "$SLUICE_DIR/sluice.db")
cp -r "$SLUICE_DIR" "$TMP/half"
truncate -s $((size / 2)) "$TMP/half/sluice.db"
cp -r "$SLUICE_DIR" "$TMP/garbage"
head -c "$size" /dev/urandom >"$TMP/garbage/sluice.db"
cp -r "$SLUICE_DIR" "$TMP/empty"
: >"$TMP/empty/sluice.db"
for damaged in half garbage empty; do
	dir="$TMP/$damaged"
	before=$(sha256sum "$dir/sluice.db")
	for args in "root im" "ls im" "get im fixed" "ns list" "log im" "verify im" "verify mu" \
		"prove im fixed" "put mu k2 -" "prune mu" "init"; do
		# shellcheck disable=SC2086 # intended word splitting
		run "$SLUICE" -d "$dir" $args </dev/null
		[ "$STATUS" -eq 1 ] || fail "'$args' on a $damaged store exited $STATUS: $ERR"
		name=${args%% *}
		[ "$name" != ns ] || name="ns list"
		expect_in "$ERR" "sluice: $name: " "'$args' on a $damaged store"
		[ "$(echo "$ERR" | wc -l)" -le 3 ] || fail "long error for $damaged: $ERR"
	done
	[ "$(sha256sum "$dir/sluice.db")" = "$before" ] || fail "a command rewrote the $damaged store"
done
expect 1 "$SLUICE" -d "$TMP/half" root im
expect_in "$ERR" "truncated" "truncated store message"
expect 1 "$SLUICE" -d "$TMP/garbage" root im
expect_in "$ERR" "not a sluice store" "garbage store message"
unchanged "commands on damaged copies"

echo "badinput: ok"

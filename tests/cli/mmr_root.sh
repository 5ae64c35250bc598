#!/usr/bin/env bash
# `sluice tool mmr-root` against commonware's published MMR roots
# (tests/merkle/commonware_roots.txt: "n root" for the MMR of n elements,
# element i = SHA256(be64(i))), plus its input rules: empty lines skipped,
# CRLF accepted, bad hex and over-long lines rejected with the line number.
set -euo pipefail
source "$(dirname "$0")/common.bash"

roots="$SLUICE_SRC/tests/merkle/commonware_roots.txt"
[ -f "$roots" ] || fail "missing $roots"

# elements N: the hex elements 0..N-1, one per line.
elements() {
	local i
	for ((i = 0; i < $1; i++)); do
		printf '%016x' "$i" | xxd -r -p | sha256sum | cut -c1-64
	done
}

published() {
	awk -v n="$1" '$1 == n { print $2 }' "$roots"
}

elements 199 >"$TMP/all"
for n in 0 1 2 3 4 7 8 10 11 64 100 199; do
	want=$(published "$n")
	[ -n "$want" ] || fail "no published root for n=$n"
	head -n "$n" "$TMP/all" >"$TMP/in"
	expect 0 "$SLUICE" tool mmr-root <"$TMP/in"
	[ "$OUT" = "$want" ] || fail "n=$n: root $OUT, commonware has $want"
done

# Same input with CRLF line ends, blank lines, upper-case hex and no final
# newline: same root.
want=$(published 10)
head -n 10 "$TMP/all" | awk 'NR % 3 == 0 { print "" } { printf "%s\r\n", toupper($0) }' |
	head -c -2 >"$TMP/crlf"
expect 0 "$SLUICE" tool mmr-root <"$TMP/crlf"
[ "$OUT" = "$want" ] || fail "CRLF/blank lines/upper case: $OUT != $want"

# Elements need not be digests: any length, including long ones.
printf 'aa\n%s\n' "$(head -c 100000 /dev/zero | tr '\0' 0)" >"$TMP/odd-sizes"
expect 0 "$SLUICE" tool mmr-root <"$TMP/odd-sizes"
[[ "$OUT" =~ ^[0-9a-f]{64}$ ]] || fail "root of odd-sized elements: $OUT"

# ------------------------------------------------------------ bad input
printf '00\nzz\n' >"$TMP/bad"
expect 1 "$SLUICE" tool mmr-root <"$TMP/bad"
expect_in "$ERR" "sluice: tool mmr-root: line 2: bad hex" "bad hex"
[ -z "$OUT" ] || fail "printed a root for bad input: $OUT"
printf '0\n' >"$TMP/bad"
expect 1 "$SLUICE" tool mmr-root <"$TMP/bad"
expect_in "$ERR" "line 1" "odd hex"
printf '00\n\n 00\n' >"$TMP/bad"
expect 1 "$SLUICE" tool mmr-root <"$TMP/bad"
expect_in "$ERR" "line 3" "leading space"
printf '00\r\r\n' >"$TMP/bad"
expect 1 "$SLUICE" tool mmr-root <"$TMP/bad"
# A line past the 2 MiB cap (valid hex, just too long).
{ echo 00; head -c $(((2 << 20) + 4)) /dev/zero | tr '\0' a; echo; } >"$TMP/long"
expect 1 "$SLUICE" tool mmr-root <"$TMP/long"
expect_in "$ERR" "line 2: longer than" "over-long line"
# Exactly at the cap is fine.
{ head -c $((2 << 20)) /dev/zero | tr '\0' a; echo; } >"$TMP/long"
expect 0 "$SLUICE" tool mmr-root <"$TMP/long"
expect 2 "$SLUICE" tool mmr-root extra

echo "mmr_root: ok"

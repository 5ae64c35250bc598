#!/usr/bin/env bash
# `sluice import`: every regular file under a tree (nested directories
# included, symbolic links and special files skipped) lands under its
# relative path, in batches; an invalid path aborts before any change;
# importing again is safe.
set -euo pipefail
source "$(dirname "$0")/common.bash"

"$SLUICE" init >/dev/null
"$SLUICE" ns create files --kind immutable >/dev/null
"$SLUICE" ns create mfiles --kind mutable >/dev/null

src="$TMP/src"
mkdir -p "$src/docs/deep/er" "$src/img" "$src/empty-dir" "$src/.config"
printf 'top' >"$src/top.txt"
printf 'readme' >"$src/docs/README"
printf 'deep' >"$src/docs/deep/er/file.md"
head -c 100000 /dev/urandom >"$src/img/photo.bin"
: >"$src/img/empty"
printf 'hidden' >"$src/.config/settings"
printf 'spaces' >"$src/docs/with space.txt"
printf 'utf8' >"$src/docs/caf$(printf '\xc3\xa9').txt"
for i in $(seq 1 20); do printf 'n%d' "$i" >"$src/docs/deep/n$i"; done
n_files=28
ln -s top.txt "$src/link-to-file"
ln -s docs "$src/link-to-dir"
ln -s /nonexistent "$src/dangling"
mkfifo "$src/fifo"

# ------------------------------------------------------------- first run
expect 0 "$SLUICE" import files "$src" --batch 4
expect_in "$OUT" "files   $n_files" "import summary"
expect_in "$OUT" "skipped 4" "import summary (3 links and a FIFO)"
expect_in "$OUT" "commits $(((n_files + 3) / 4))" "import summary (batches of 4)"
bytes=$(find "$src" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
expect_in "$OUT" "bytes   $bytes" "import summary"
root=$(root_of files)
expect_in "$OUT" "root    $root" "import summary"
expect_in "$OUT" "size    $("$SLUICE" root --json files | jq .size)" "import summary"

[ "$("$SLUICE" ls files | wc -l)" -eq "$n_files" ] || fail "ls count after import"
[ "$("$SLUICE" ls files)" = "$(cd "$src" && find . -type f | sed 's|^\./||' | LC_ALL=C sort)" ] ||
	fail "imported keys differ from the files"
(cd "$src" && find . -type f | sed 's|^\./||') | while IFS= read -r rel; do
	"$SLUICE" get files "$rel" >"$TMP/got"
	cmp -s "$src/$rel" "$TMP/got" || fail "value of $rel differs"
done
expect 1 "$SLUICE" get files link-to-file
expect 0 "$SLUICE" verify files

# Keys are committed in bytewise order, whatever order the directory lists.
expect 0 "$SLUICE" log --json files
[ "$(echo "$OUT" | jq -r 'select(.op == "set") | .key')" = "$("$SLUICE" ls files)" ] ||
	fail "import did not commit in key order"

# ------------------------------------------------------- re-run: a no-op
expect 0 "$SLUICE" import files "$src"
expect_in "$OUT" "commits 0" "second import into an immutable namespace"
[ "$(root_of files)" = "$root" ] || fail "second import changed the root"

# The same tree gives the same root in a fresh namespace, whatever the batch size.
"$SLUICE" ns create files1 --kind immutable >/dev/null
expect 0 "$SLUICE" import --batch 1000 files1 "$src/"
expect_in "$OUT" "commits 1" "one batch"
"$SLUICE" ns create files2 --kind immutable >/dev/null
expect 0 "$SLUICE" import -b 1 files2 "$src"
expect_in "$OUT" "commits $n_files" "batch of 1"
"$SLUICE" ns create files3 --kind immutable >/dev/null
expect 0 "$SLUICE" import -b 4 files3 "$src"
[ "$(root_of files3)" = "$root" ] || fail "same tree, same batches, different root"

# Mutable namespace: importing twice is safe too.
expect 0 "$SLUICE" import mfiles "$src"
expect 0 "$SLUICE" import mfiles "$src"
[ "$("$SLUICE" ls mfiles | wc -l)" -eq "$n_files" ] || fail "mutable re-import"
expect 0 "$SLUICE" verify mfiles

# An empty tree imports nothing.
mkdir "$TMP/none"
expect 0 "$SLUICE" import files "$TMP/none"
expect_in "$OUT" "files   0" "empty import"

# ---------------------------------------------------------- bad trees
state=$("$SLUICE" ns list --json)
bad="$TMP/bad"
mkdir -p "$bad/ok"
printf 'fine' >"$bad/ok/a"
printf 'fine' >"$bad/aaa"
printf 'bad' >"$bad/ok/"$'ctl\x01name'
expect 1 "$SLUICE" import files "$bad"
expect_in "$ERR" "cannot import 'ok/ctl\\x01name'" "invalid file name"
expect_in "$ERR" "nothing was imported" "invalid file name"
[ "$("$SLUICE" ns list --json)" = "$state" ] || fail "an invalid path changed the store"
expect 1 "$SLUICE" get files aaa

# A path past the 1024-byte key limit, through nested directories.
rm "$bad/ok/"$'ctl\x01name'
deep="$bad"
for _ in 1 2 3 4 5; do
	deep="$deep/$(head -c 220 /dev/zero | tr '\0' d)"
done
mkdir -p "$deep"
printf 'x' >"$deep/file"
expect 1 "$SLUICE" import files "$bad"
expect_in "$ERR" "too long" "over-long path"
[ "$("$SLUICE" ns list --json)" = "$state" ] || fail "an over-long path changed the store"

# Not a directory, unknown namespace: errors, no change.
expect 1 "$SLUICE" import files "$src/top.txt"
expect_in "$ERR" "not a directory" "import of a file"
expect 1 "$SLUICE" import files "$TMP/nosuch"
expect 1 "$SLUICE" import nosuch "$src"
expect_in "$ERR" "sluice: import: " "import into an unknown namespace"
[ "$("$SLUICE" ns list --json)" = "$state" ] || fail "a failed import changed the store"

# A conflicting tree stops at the batch that conflicts; earlier batches stay.
"$SLUICE" ns create conflict --kind immutable >/dev/null
mkdir "$TMP/c"
for i in 1 2 3 4 5 6; do printf 'v%d' "$i" >"$TMP/c/f$i"; done
printf 'old' | "$SLUICE" put conflict f5
expect 1 "$SLUICE" import -b 2 conflict "$TMP/c"
expect_in "$ERR" "stopped after 4 of 6 files" "conflicting import"
[ "$("$SLUICE" get conflict f4)" = v4 ] || fail "earlier batches were not kept"
expect 1 "$SLUICE" get conflict f6
[ "$("$SLUICE" get conflict f5)" = old ] || fail "conflicting value was overwritten"

echo "import: ok"

#!/usr/bin/env bash
# `make install` as a user of it sees it: the built tree installed under a
# throwaway DESTDIR as /usr/local, then the program run from there, a
# program that uses the library built against the installed headers and
# sluice.pc (linked to libsluice.so, and again to libsluice.a) and checked
# against known values and against the installed program, the man page
# rendered without a warning and listing every command, and the example
# systemd units verified when systemd-analyze is here.
set -euo pipefail
source "$(dirname "$0")/common.bash"
: "${SLUICE_BUILD:?set SLUICE_BUILD to the build directory}"

prefix=/usr/local
dest=$TMP/dest
root=$dest$prefix
cc=${SLUICE_CC:-cc}
cflags=(-Wall -Wextra -Werror)
# A sanitized library needs its runtime in the program that links it.
[ "${SLUICE_SANITIZE:-OFF}" != ON ] || cflags+=("-fsanitize=address,undefined")

expect 0 env DESTDIR="$dest" cmake --install "$SLUICE_BUILD" --prefix "$prefix"
for f in bin/sluice lib/libsluice.a lib/libsluice.so lib/pkgconfig/sluice.pc \
	share/man/man1/sluice.1 share/doc/sluice/cli.md \
	share/doc/sluice/examples/config.example.toml \
	share/doc/sluice/examples/systemd/sluice-pipeline.service \
	share/doc/sluice/examples/systemd/sluice-serve.service; do
	[ -e "$root/$f" ] || fail "$prefix/$f was not installed"
done

# ------------------------------------------------------------ the program
expect 0 "$root/bin/sluice" --version
[ "$OUT" = "$("$SLUICE" --version)" ] || fail "installed --version: $OUT"
expect 0 "$root/bin/sluice" --help
expect_in "$OUT" "Usage: sluice" "installed --help"
commands=$(sed -n '/^Commands:/,/^$/s/^  \([a-z-]*\) .*/\1/p' <<<"$OUT")
[ -n "$commands" ] || fail "no commands in --help: $OUT"

# ------------------------------------------------------ headers, sluice.pc
# Exactly the public headers, as they are in include/sluice.
expect 0 diff -r "$SLUICE_SRC/include/sluice" "$root/include/sluice"

export PKG_CONFIG_PATH=$root/lib/pkgconfig
expect 0 pkg-config --variable=prefix sluice
[ "$OUT" = "$prefix" ] || fail "sluice.pc's prefix is $OUT, installed under $prefix"
expect 0 pkg-config --modversion sluice
[ "sluice $OUT" = "$("$SLUICE" --version)" ] || fail "sluice.pc's version: $OUT"
# The files are under DESTDIR here: move the prefix there. (This moves the
# prefix of the other packages' .pc files too, which only adds -I and -L
# paths that do not exist; theirs are on the default paths.)
pc() {
	pkg-config --define-variable=prefix="$root" "$@" sluice
}
expect 0 pc --libs --static
for lib in -lsluice -lsqlite3 -lcrypto -lsodium -lmicrohttpd -lcurl -ljansson -lpq -pthread; do
	[[ " $OUT " == *" $lib "* ]] || fail "pkg-config --libs --static sluice has no $lib: $OUT"
done

# Each public header compiles alone.
for h in "$root"/include/sluice/*.h; do
	echo "#include <sluice/${h##*/}>" >"$TMP/header.c"
	# shellcheck disable=SC2046 # pkg-config's output is a list of flags
	expect 0 "$cc" "${cflags[@]}" -fsyntax-only $(pc --cflags) "$TMP/header.c"
done

# ----------------------------------------------- a program using the library
cat >"$TMP/use.c" <<'EOF'
/* SHA-256 of "abc", then a key put and read back in a new store. */
#include <sluice/base.h>
#include <sluice/store.h>

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	static const char value[] = "installed";
	sl_store_options opts;
	sl_store *store = NULL;
	sl_batch *batch = NULL;
	sl_buf got = SL_BUF_INIT(1024);
	sl_target target;
	sl_digest d;
	int rc;

	if (argc != 2 || sl_base_init() != SL_OK)
		return 2;
	sl_sha256(&d, "abc", 3);
	printf("sha256 %s\n", sl_digest_to_hex(&d).s);

	sl_store_options_init(&opts);
	opts.flags = SL_STORE_CREATE;
	if ((rc = sl_store_open(&store, argv[1], &opts)) != SL_OK ||
	    (rc = sl_store_ns_create(store, "docs", SL_NS_IMMUTABLE)) != SL_OK ||
	    (rc = sl_batch_new(&batch, store, "docs")) != SL_OK ||
	    (rc = sl_batch_put(batch, "a/b", 3, value, strlen(value))) != SL_OK ||
	    (rc = sl_batch_commit(batch, &target)) != SL_OK ||
	    (rc = sl_store_get(store, "docs", "a/b", 3, &got, NULL)) != SL_OK)
		goto cleanup;
	printf("get %.*s\n", (int)got.len, (const char *)got.data);
	printf("root %s\n", sl_digest_to_hex(&target.root).s);
cleanup:
	if (rc != SL_OK)
		fprintf(stderr, "use: %s\n", sl_error_last()->message);
	sl_buf_free(&got);
	sl_batch_free(batch);
	sl_store_free(store);
	return rc == SL_OK ? 0 : 1;
}
EOF

# check_use PROGRAM STORE: its output is right, and the installed program
# reads the store it wrote and finds the same root.
check_use() {
	expect 0 "$1" "$2"
	expect_in "$OUT" "sha256 ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" \
		"$1: SHA-256 of abc"
	expect_in "$OUT" "get installed" "$1: the value read back"
	local lib_root cli_root
	lib_root=$(sed -n 's/^root //p' <<<"$OUT")
	cli_root=$("$root/bin/sluice" root docs --json -d "$2" | jq -r .root)
	[ "$lib_root" = "$cli_root" ] || fail "$1 made root $lib_root, sluice root says $cli_root"
}

# Against libsluice.so, found through the rpath in the install.
# shellcheck disable=SC2046
expect 0 "$cc" "${cflags[@]}" -o "$TMP/use-shared" "$TMP/use.c" $(pc --cflags --libs) \
	-Wl,-rpath,"$root/lib"
# (ldd's output is read whole: with pipefail, grep -q stopping at the first
# match could fail the pipe.)
loads=$(ldd "$TMP/use-shared")
expect_in "$loads" "libsluice.so.0 => $root/lib/libsluice.so.0" \
	"use-shared loads the installed libsluice.so"
check_use "$TMP/use-shared" "$TMP/store-shared"

# Against libsluice.a: the packages sluice.pc requires give what it needs.
# (--libs --static would also list what those packages need for a fully
# static link, whose -dev packages need not be here.)
requires=$(pc --print-requires-private | awk '{print $1}')
# shellcheck disable=SC2046,SC2086
expect 0 "$cc" "${cflags[@]}" -o "$TMP/use-static" "$TMP/use.c" $(pc --cflags) \
	"$root/lib/libsluice.a" $(pkg-config --libs $requires) -pthread
loads=$(ldd "$TMP/use-static")
[[ "$loads" != *libsluice* ]] || fail "use-static loads libsluice.so: $loads"
check_use "$TMP/use-static" "$TMP/store-static"

# --------------------------------------------------------------- man page
man_page=$root/share/man/man1/sluice.1
command -v groff >/dev/null || fail "no groff to render sluice.1 (scripts/deps.sh installs groff-base)"
expect 0 groff -man -ww -z -Tutf8 "$man_page"
[ -z "$ERR" ] || fail "groff warns about sluice.1: $ERR"
expect 0 groff -man -Tutf8 -P-c -P-b -P-u "$man_page"
for section in NAME SYNOPSIS DESCRIPTION COMMANDS FILES ENVIRONMENT "EXIT STATUS" \
	"SEE ALSO"; do
	grep -q "^$section\$" <<<"$OUT" || fail "sluice.1 has no $section section"
done
environment=$(sed -n '/^ENVIRONMENT$/,/^EXIT STATUS$/p' <<<"$OUT")
# What sluice reads with getenv, and what a config falls back to (config.c).
for var in $(grep -rho 'getenv("[A-Z_]*")' "$SLUICE_SRC/src" | sed 's/getenv("\(.*\)")/\1/') \
	SLUICE_DATABASE_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY; do
	expect_in "$environment" "$var" "sluice.1's ENVIRONMENT"
done
listed=$(sed -n '/^COMMANDS$/,/^FILES$/s/^       \([a-z-]*\).*/\1/p' <<<"$OUT")
for command in $commands; do
	grep -qx -- "$command" <<<"$listed" || fail "sluice.1 does not list '$command'"
done

# ------------------------------------------------------------ systemd units
units=$root/share/doc/sluice/examples/systemd
for unit in sluice-pipeline sluice-serve; do
	grep -q "^ExecStart=$prefix/bin/sluice " "$units/$unit.service" ||
		fail "$unit.service does not run $prefix/bin/sluice"
done
if command -v systemd-analyze >/dev/null; then
	# As on the installed system: the program and man page are under DESTDIR.
	mkdir "$TMP/units"
	for unit in "$units"/*.service; do
		sed "s|^\(Exec[A-Za-z]*=\)$prefix/|\1$root/|" "$unit" >"$TMP/units/${unit##*/}"
	done
	expect 0 env MANPATH="$root/share/man" systemd-analyze verify "$TMP"/units/*.service
	[ -z "$ERR" ] || fail "systemd-analyze verify: $ERR"
else
	echo "install: systemd-analyze not found, skipped verifying the systemd units"
fi

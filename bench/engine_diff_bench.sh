#!/usr/bin/env bash
# The diff between engines (`make bench-engine-diff`): bytes exchanged and
# time of `sluice engine diff` for D differences among N keys, next to the
# bytes a full listing of the keys would take.
#
#   bench/engine_diff_bench.sh BUILD_DIR [N] [D]     (default 1,000,000 and 100)
#
# Engine A's store L3 is filled with N keys (16-byte keys, 100-byte
# values) through the engine's own tier by bench/engine_diff_bench.c;
# B's L3 is a copy of it in which D keys, spread over the key space, got a
# new version and value. B is served by `sluice engine serve`; the diff
# runs from A's config, twice: the first run builds the items on both
# sides (each scans its L3), the second finds B's set cached (its L3 did
# not move) and only A scans. Printed, not recorded: copy the figures
# into bench/RESULTS.md.
set -euo pipefail

build=${1:?usage: bench/engine_diff_bench.sh BUILD_DIR [N] [D]}
n=${2:-1000000}
d=${3:-100}
sluice=$build/sluice
helper=$build/engine_diff_bench
[ -x "$helper" ] || { echo "engine_diff_bench.sh: build $helper first (make)" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sluice-diff-bench.XXXXXX")
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

config() {
	printf '[server]\nlisten = "127.0.0.1"\n[wal]\ndir = "%s"\n[l3]\ntype = "store"\ndir = "%s"\nnamespace = "kv"\n' \
		"$tmp/wal-$1" "$tmp/l3-$1" >"$tmp/$1.toml"
}
config a
config b
ms() { date +%s%3N; }

t0=$(ms)
"$helper" fill "$tmp/l3-a" kv "$n"
t1=$(ms)
cp -r "$tmp/l3-a" "$tmp/l3-b"
"$helper" diverge "$tmp/l3-b" kv "$n" "$d"
echo "filled $n keys in $(((t1 - t0) / 1000)) s; B diverged by $d"

SLUICE_LOG=info "$sluice" engine serve -c "$tmp/b.toml" -p 0 -m off >"$tmp/b.log" 2>&1 &
pid=$!
t0=$(ms)
for _ in $(seq 1 6000); do
	grep -q 'msg="serving"' "$tmp/b.log" && break
	sleep 0.1
done
t1=$(ms)
port=$(sed -n 's/.*msg="serving".* port=\([0-9]*\) .*/\1/p' "$tmp/b.log" | tail -1)
[ -n "$port" ] || { echo "engine B did not start:" >&2; cat "$tmp/b.log" >&2; exit 1; }
echo "engine B serving after $(((t1 - t0) / 1000)) s"

for run in first second; do
	t0=$(ms)
	/usr/bin/time -f '%M' -o "$tmp/rss" "$sluice" engine diff -c "$tmp/a.toml" --timeout 10m \
		--peer "127.0.0.1:$port" --json >"$tmp/out.json"
	t1=$(ms)
	jq -r --arg run "$run" --arg ms "$((t1 - t0))" --arg rss "$(cat "$tmp/rss")" \
		'"\($run) run: \($ms) ms, \(.different | length) different, \(.only_local | length) only here, \(.only_remote | length) only there, \(.round_trips) round trips, \(.bytes_sent) bytes sent, \(.bytes_received) received; client max RSS \($rss) KiB"' \
		"$tmp/out.json"
done
server_rss=$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status")
echo "server max RSS ${server_rss} KiB"
# a full listing: every key (16 bytes and a newline), or every key with its
# version and value digest (what a naive diff would ship)
echo "full key listing: $((n * 17)) bytes; with versions and digests: $((n * (16 + 8 + 32))) bytes"

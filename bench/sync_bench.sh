#!/usr/bin/env bash
# Sync benchmark (`make bench-sync`): how fast `sluice sync` copies and
# verifies a namespace over loopback, next to the limits and the reference
# measured in the same run:
#   - the store's own append rate: `sluice serve --db immutable -i N`
#     committing N operations (32-byte keys and values, 1000 per commit)
#     into the server's store, the same work the client's store does;
#   - SHA-256 of 72-byte inputs (openssl speed, the EVP code sluice uses):
#     a synced operation costs about six hashes (value, leaf and parent to
#     verify the frame, and again as the client's store appends it);
#   - a Redis replica's full sync of N keys of the same size
#     (bench/redis_reference.sh), which users know, though it verifies
#     nothing.
# Each sync starts from an empty client store and runs `sync --once`;
# timing covers the whole process: target, proofs, verification, writes.
# The rows: the default flags (adaptive batch, 4 requests in flight), the
# best flags measured (a fixed batch at the adaptive batch's cap), and the
# old default (-b 50) to compare with. The last lines put each sync next
# to the Redis reference and the store's own append rate, with the goals:
# the default flags at least 0.8 of the Redis replica, the best at least 1.0.
#
#   bench/sync_bench.sh BUILD_DIR [N]      (default N = 1,000,000)
set -euo pipefail

build=${1:?usage: bench/sync_bench.sh BUILD_DIR [N]}
n=${2:-1000000}
sluice=$build/sluice
src=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sluice-sync-bench.XXXXXX")
server=
cleanup() {
	[ -z "$server" ] || kill "$server" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

now() { date +%s.%N; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }
mb() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", b / 1e6 / s }'; }
row() { printf '%-44s %14s  %s\n' "$1" "$2" "$3"; }

echo "sluice sync benchmark, $(date -u '+%Y-%m-%dT%H:%M:%SZ'), $n operations of 32-byte keys and values"
echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc) cores; revision $(git -C "$src" describe --always --dirty)"
echo

# ------------------------------------------------------------- the server
start=$(now)
SLUICE_LOG=info "$sluice" serve -d "$tmp/server" --db immutable -i "$n" -o 0 -t 1h \
	-p 0 -m 0 2>"$tmp/server.log" &
server=$!
until grep -q 'msg="serving"' "$tmp/server.log"; do
	kill -0 "$server" 2>/dev/null || { cat "$tmp/server.log" >&2; exit 1; }
	sleep 0.05
done
gen_s=$(awk -v a="$start" -v b="$(now)" 'BEGIN { print b - a }')
port=$(sed -n 's/.*msg="serving".* port=\([0-9]*\) .*/\1/p' "$tmp/server.log")
metrics=$(sed -n 's/.*msg="serving".*metrics_port=\([0-9]*\).*/\1/p' "$tmp/server.log")
size=$(curl -sf "http://127.0.0.1:$port/api/v0/ns/demo/target" | jq .size)

row "limit: store append (server generating)" "$(rate "$n" "$gen_s") op/s" "$n puts in $(printf %.2f "$gen_s")s, $size operations with commits"
sha=$(openssl speed -evp sha256 -bytes 72 -seconds 2 2>/dev/null | awk '/^sha256/ { print $2 }')
sha=${sha%k}
sha_per_s=$(awk -v k="$sha" 'BEGIN { printf "%.0f", k * 1000 / 72 }')
row "limit: SHA-256, 72-byte inputs" "$sha_per_s /s" "about $(awk -v r="$sha_per_s" 'BEGIN { printf "%.0f", r / 6 }') op/s at six hashes per synced operation"

# ------------------------------------------------------------- the syncs
served_bytes() {
	curl -sf "http://127.0.0.1:$metrics/metrics" | awk '$1 == "sluice_server_bytes_served_total" { print $2 }'
}
declare -A flags=([default]="" [best]="-b 4096 -r 4" [old]="-b 50 -r 4") sync_rate
label() { # default|best|old
	case $1 in
	default) echo "sluice sync (default flags)" ;;
	best) echo "sluice sync ${flags[best]} (best flags)" ;;
	old) echo "sluice sync ${flags[old]} (old default)" ;;
	esac
}
for which in default best old; do
	args=${flags[$which]}
	dir="$tmp/client"
	rm -rf "$dir"
	before=$(served_bytes)
	start=$(now)
	# shellcheck disable=SC2086 # $args holds separate options
	/usr/bin/time -f '%M' -o "$tmp/rss" "$sluice" sync -d "$dir" -s "127.0.0.1:$port" --once \
		$args demo 2>"$tmp/sync.log" || { cat "$tmp/sync.log" >&2; exit 1; }
	s=$(awk -v a="$start" -v b="$(now)" 'BEGIN { print b - a }')
	wire=$(($(served_bytes) - before))
	[ "$("$sluice" root -d "$dir" --json demo | jq -r .root)" = \
		"$("$sluice" root -d "$tmp/server" --json demo | jq -r .root)" ] || { echo "roots differ" >&2; exit 1; }
	sync_rate[$which]=$(rate "$size" "$s")
	row "$(label "$which")" "${sync_rate[$which]} op/s" \
		"$(printf %.2f "$s")s, $(mb $((n * 64)) "$s") MB/s of keys+values, $(mb "$wire" "$s") MB/s on the wire, peak RSS $(($(cat "$tmp/rss") / 1024)) MiB"
done
kill "$server"
wait "$server" 2>/dev/null || true
server=

# ------------------------------------------------------------- reference
ref=$("$src/bench/redis_reference.sh" "$n" 2>/dev/null | grep redis_full_sync)
ref_s=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<<"$ref")
ref_rate=$(rate "$n" "$ref_s")
row "reference: Redis replica full sync" "$ref_rate keys/s" "${ref_s}s, $(mb $((n * 64)) "$ref_s") MB/s, no verification"

# ------------------------------------------------------------- against goals
append_rate=$(rate "$n" "$gen_s")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
for which in default best; do
	goal=1.0
	[ "$which" != default ] || goal=0.8
	row "$(label "$which")" "$(ratio "${sync_rate[$which]}" "$ref_rate") of Redis" \
		"goal $goal; $(ratio "${sync_rate[$which]}" "$append_rate") of the store's append rate"
done

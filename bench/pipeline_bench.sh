#!/usr/bin/env bash
# Pipeline benchmark (`make bench-pipeline`): `sluice run` from PostgreSQL
# (data inline, bytea) to an S3 server (s3rver from tests/package.json),
# next to, in the same run and against the same server:
#   - rclone copy --transfers 16 of the same objects from a local directory
#     (Debian's rclone), what users would otherwise reach for;
#   - `sluice run` of the same rows into a directory: the source side
#     alone (PostgreSQL reads and local writes), no S3;
#   - the server's raw PUT rate at the same concurrency: curl --parallel
#     with 16 uploads in flight, signing each PUT and doing nothing else.
#     That is the limit: no reads, no state.
# Two sets: SMALL objects of 4 KiB and LARGE objects of 4 MiB (defaults
# 10000 and 200). Peak memory is the maximum resident set of each program;
# the CPU seconds of the client, the S3 server and PostgreSQL during each
# measurement show which of them bounds it.
#
#   bench/pipeline_bench.sh BUILD_DIR [SMALL] [LARGE]
set -euo pipefail

build=${1:?usage: bench/pipeline_bench.sh BUILD_DIR [SMALL] [LARGE]}
n_small=${2:-10000}
n_large=${3:-200}
sluice=$build/sluice
src=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sluice-pipeline-bench.XXXXXX")
svc=
cleanup() {
	[ -z "$svc" ] || bash "$src/scripts/services.sh" stop "$svc" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT

env=$(bash "$src/scripts/services.sh" start pg s3)
eval "$env"
svc=$SLUICE_SERVICES_DIR
export PGOPTIONS="-c client_min_messages=warning" SLUICE_LOG=warn
sql() { psql "$SLUICE_PG_URL" -X -q -v ON_ERROR_STOP=1 -At -c "$1"; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }
mbs() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", b / 1048576 / s }'; }
now() { date +%s.%N; }
s3curl() {
	curl -sS --fail-with-body --aws-sigv4 "aws:amz:us-east-1:s3" --user S3RVER:S3RVER \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
}

echo "sluice pipeline benchmark, $(date -u '+%Y-%m-%dT%H:%M:%SZ')"
echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc) cores; revision $(git -C "$src" describe --always --dirty)"
echo "server: s3rver $(node -p "require('$src/tests/node_modules/s3rver/package.json').version") on loopback; PostgreSQL $(sql 'SHOW server_version')"
echo

sql "CREATE TABLE object_index (id uuid PRIMARY KEY, object_key text, competition_id uuid,
       agent_id uuid, data_type text NOT NULL, data bytea, size_bytes bigint, metadata jsonb,
       event_timestamp timestamptz, created_at timestamptz NOT NULL DEFAULT now());
     CREATE INDEX ON object_index (created_at, id);"

# CPU time in clock ticks used so far by process $1 and the children it
# has waited for, plus its live children: the S3 server is one process,
# PostgreSQL a postmaster whose backends come and go.
ticks() {
	local pid=$1 t
	t=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pid/stat")
	for c in $(pgrep -P "$pid" || true); do
		t=$((t + $(awk '{ print $14 + $15 }' "/proc/$c/stat" 2>/dev/null || echo 0)))
	done
	echo "$t"
}
hz=$(getconf CLK_TCK)
s3_pid=$(cat "$svc/s3.pid")
pg_pid=$(head -1 "$svc/pg/postmaster.pid")
# The counters at the start of a measurement.
start_clock() {
	s3_t0=$(ticks "$s3_pid")
	pg_t0=$(ticks "$pg_pid")
	t0=$(now)
}
stop_clock() {
	t1=$(now)
	s3_cpu=$(($(ticks "$s3_pid") - s3_t0))
	pg_cpu=$(($(ticks "$pg_pid") - pg_t0))
}
# `/usr/bin/time -f "$timefmt" -o "$tmp/time"` writes the client's peak RSS and CPU.
timefmt="%M %U %S"

# One result line, from t0, t1, count, bytes, the server counters and
# $tmp/time: rate, peak RSS, and the CPU seconds of the client, the S3
# server and PostgreSQL in that time.
report() {
	local secs rss user sys
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
	read -r rss user sys <"$tmp/time"
	printf '%-8s %-36s %6s obj/s %7s MiB/s %5s MiB  (%.2f s)  cpu s: %4.2f client %4.2f S3 %4.2f PG\n' \
		"$1" "$2" "$(rate "$count" "$secs")" "$(mbs "$bytes" "$secs")" "$((rss / 1024))" "$secs" \
		"$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')" \
		"$(awk -v t="$s3_cpu" -v h="$hz" 'BEGIN { print t / h }')" \
		"$(awk -v t="$pg_cpu" -v h="$hz" 'BEGIN { print t / h }')"
}

# One set: rows in PostgreSQL, the same bytes as files for rclone and curl.
# bench_set NAME COUNT SIZE
bench_set() {
	local name=$1 count=$2 size=$3 t0 t1
	local bucket_s="sluice-$name" bucket_r="rclone-$name" bucket_p="put-$name"
	bytes=$((count * size))
	sql "TRUNCATE object_index"
	sql "INSERT INTO object_index (id, data_type, data, size_bytes, created_at)
	     SELECT gen_random_uuid(), '$name', decode(repeat(md5(g::text), $size / 16), 'hex'), $size,
	            now() - interval '1 minute'
	     FROM generate_series(1, $count) g"
	for b in "$bucket_s" "$bucket_r" "$bucket_p"; do s3curl -X PUT "$SLUICE_S3_ENDPOINT/$b" >/dev/null; done

	# The files for rclone and curl come out of the same rows (a dir pipeline).
	cat >"$tmp/dir.toml" <<EOF
[database]
url = "$SLUICE_PG_URL"
[sync_storage]
db_path = "$tmp/dir-$name.db"
[destination]
type = "dir"
path = "$tmp/files-$name"
EOF
	start_clock
	/usr/bin/time -f "$timefmt" -o "$tmp/time" "$sluice" run -c "$tmp/dir.toml" >/dev/null
	stop_clock
	report "$name" "sluice run (PostgreSQL -> dir, 16)"

	cat >"$tmp/s3.toml" <<EOF
[database]
url = "$SLUICE_PG_URL"
[sync_storage]
db_path = "$tmp/s3-$name.db"
[sync]
concurrency = 16
[destination]
type = "s3"
endpoint = "$SLUICE_S3_ENDPOINT"
bucket = "$bucket_s"
access_key_id = "S3RVER"
secret_access_key = "S3RVER"
EOF
	start_clock
	/usr/bin/time -f "$timefmt" -o "$tmp/time" "$sluice" run -c "$tmp/s3.toml" >/dev/null
	stop_clock
	report "$name" "sluice run (PostgreSQL -> S3, 16)"

	export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other \
		RCLONE_CONFIG_BENCH_ENDPOINT="$SLUICE_S3_ENDPOINT" RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=S3RVER \
		RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=S3RVER RCLONE_CONFIG_BENCH_REGION=us-east-1
	start_clock
	/usr/bin/time -f "$timefmt" -o "$tmp/time" env -u AWS_CA_BUNDLE rclone copy --transfers 16 --checkers 16 \
		"$tmp/files-$name" "bench:$bucket_r" 2>"$tmp/rclone.err" || { cat "$tmp/rclone.err" >&2; exit 1; }
	stop_clock
	report "$name" "rclone copy --transfers 16 (dir)"

	(cd "$tmp/files-$name" && find . -type f -printf '%P\n') |
		awk -v ep="$SLUICE_S3_ENDPOINT/$bucket_p" -v dir="$tmp/files-$name" \
			'{ printf "upload-file = \"%s/%s\"\nurl = \"%s/%s\"\noutput = /dev/null\n", dir, $0, ep, $0 }' >"$tmp/curl.cfg"
	start_clock
	/usr/bin/time -f "$timefmt" -o "$tmp/time" curl -sS --fail-with-body --aws-sigv4 "aws:amz:us-east-1:s3" \
		--user S3RVER:S3RVER -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
		--parallel --parallel-max 16 -K "$tmp/curl.cfg" 2>"$tmp/curl.err" ||
		{ cat "$tmp/curl.err" >&2; exit 1; }
	stop_clock
	report "$name" "raw PUT limit (curl --parallel 16)"
	rm -rf "$tmp/files-$name"
}

bench_set small "$n_small" 4096
bench_set large "$n_large" 4194304

#!/usr/bin/env bash
# Changes-mode benchmark (`make bench-changes`): PostgreSQL (data inline,
# bytea, 1 KiB objects) into a directory, on one machine, in one run:
#   - polling mode's `sluice run` of N rows: the copy as it was;
#   - changes mode's first run of the same N rows (the copy in the slot's
#     exported snapshot, then a stream with nothing in it);
#   - changes mode following N updates (new bytes for every row, in
#     transactions of 1000): the stream, a job per row, the bytes read
#     again from the table, the files rewritten;
#   - the limit for that last one: pg_recvlogical decoding the same
#     updates from its own pgoutput slot to /dev/null, which only decodes
#     and receives (PostgreSQL's own client, nothing stored).
#
#   bench/changes_bench.sh BUILD_DIR [N]
set -euo pipefail

build=${1:?usage: bench/changes_bench.sh BUILD_DIR [N]}
n=${2:-50000}
sluice=$build/sluice
src=$(cd "$(dirname "$0")/.." && pwd)
BENCH=changes_bench.sh
source "$src/bench/bench_common.bash"

start_pg || fail "PostgreSQL did not start"
export PGOPTIONS="-c client_min_messages=warning" SLUICE_LOG=warn
sql() { psql "$SLUICE_PG_URL" -X -q -v ON_ERROR_STOP=1 -At -c "$1"; }
now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%7.0f rows/s  (%.2f s)", n / (b - a), b - a }'; }

echo "sluice changes-mode benchmark, $(date -u '+%Y-%m-%dT%H:%M:%SZ'), N = $n"
echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc) cores; revision $(git -C "$src" describe --always --dirty)"
echo "PostgreSQL $(sql 'SHOW server_version'), wal_level $(sql 'SHOW wal_level')"
echo

sql "CREATE TABLE object_index (id uuid PRIMARY KEY, competition_id uuid, agent_id uuid,
       data_type text NOT NULL, data bytea, size_bytes bigint,
       created_at timestamptz NOT NULL DEFAULT now());
     CREATE INDEX ON object_index (created_at, id);
     INSERT INTO object_index (id, data_type, data, size_bytes, created_at)
     SELECT gen_random_uuid(), 'log', decode(repeat(md5(g::text), 64), 'hex'), 1024,
            now() - interval '1 minute'
     FROM generate_series(1, $n) g"

config() { # FILE DIR MODE
	cat >"$1" <<EOF
[database]
url = "$SLUICE_PG_URL"
mode = "$3"
[sync_storage]
db_path = "$1.db"
[destination]
type = "dir"
path = "$2"
EOF
}
config "$tmp/poll.toml" "$tmp/poll-out" poll
config "$tmp/changes.toml" "$tmp/changes-out" changes

t0=$(now)
"$sluice" run -c "$tmp/poll.toml" >/dev/null
t1=$(now)
echo "polling mode, first run       $(rate "$n" "$t0" "$t1")"

t0=$(now)
"$sluice" run -c "$tmp/changes.toml" >/dev/null
t1=$(now)
echo "changes mode, first copy      $(rate "$n" "$t0" "$t1")"

# The reference's own slot, made before the updates, on the same publication.
sql "SELECT pg_create_logical_replication_slot('bench_reference', 'pgoutput')" >/dev/null
for ((from = 0; from < n; from += 1000)); do
	sql "UPDATE object_index SET data = decode(repeat(md5(id::text), 64), 'hex')
	     WHERE id IN (SELECT id FROM object_index ORDER BY id OFFSET $from LIMIT 1000)"
done
end=$(sql "SELECT pg_current_wal_flush_lsn()")

t0=$(now)
"$sluice" run -c "$tmp/changes.toml" >/dev/null
t1=$(now)
echo "changes mode, $n updates  $(rate "$n" "$t0" "$t1")"

t0=$(now)
pg_recvlogical -d "$SLUICE_PG_URL" --slot bench_reference --start --endpos "$end" \
	-o proto_version=1 -o publication_names=sluice_object_index -f /dev/null
t1=$(now)
echo "pg_recvlogical, same updates  $(rate "$n" "$t0" "$t1")  (decode and receive only)"

# The copies are right: every file has its row's new bytes.
want=$(sql "SELECT count(*) FROM object_index")
have=$(find "$tmp/changes-out" -type f ! -name '.*' | wc -l)
[ "$want" = "$have" ] || fail "changes mode left $have files for $want rows"

#!/usr/bin/env bash
# recall-synchronizer's own files work with sluice, against a real
# PostgreSQL 15 and s3rver. Its config.example.toml, as it is but for the
# values that point at this test's services, plus a [destination]; its
# schema's object_index table, in S3 mode over two buckets:
#   - each object is read from the bucket its row's bucket_name names (an
#     empty one: the [s3] bucket), and lands byte for byte;
#   - one whose bytes were altered after its content_hash was recorded is
#     refused, never stored, listed by `sluice failed` with why, and copied
#     by `sluice retry` once it holds what its row says;
#   - a 16-digit content_hash (as recall's sample rows have) and a NULL one
#     are not checked;
#   - [recall] is accepted with one line on stderr; without --config the
#     commands read ./config.toml; without [destination] the error says
#     to add one;
#   - max_connections = 5 holds against a role PostgreSQL limits to 5
#     connections (direct mode: concurrency is lowered to 4, and says so).
set -euo pipefail
. "$(dirname "$0")/common.bash"
. "$(dirname "$0")/sync_common.bash"
. "$(dirname "$0")/pipeline_common.bash"
trap 'stop_services; cleanup_children' EXIT

services_up pg s3

# recall-synchronizer's config.example.toml, verbatim.
cat >"$TMP/recall.example.toml" <<'EOF'
# Example configuration file for the Recall Data Synchronizer

# PostgreSQL database configuration (source of object metadata)
[database]
url = "postgresql://recall:recall_password@localhost:5432/recall_competitions"
max_connections = 5

# S3 configuration
[s3]
endpoint = "https://s3.amazonaws.com"         # For local testing: "http://localhost:9000"
region = "us-east-1"
bucket = "competition-data"
access_key_id = "YOUR_ACCESS_KEY"            # For local testing: "minioadmin"
secret_access_key = "YOUR_SECRET_KEY"        # For local testing: "minioadmin"

# Recall network configuration
[recall]
private_key = "YOUR_PRIVATE_KEY_HEX"        # 64 character hex string
network = "mainnet"                          # Network name from networks.toml
config_path = "networks.toml"                # Path to network configuration file

# Synchronization settings
[sync]
batch_size = 100
state_db_path = "./sync_state.db"
EOF

# Only the values change: the database (recall's user, on our server, which
# trusts it), the endpoint, the bucket, the keys and the state file.
PG_HOSTPORT=${SLUICE_PG_URL#postgresql://*@}
PG_HOSTPORT=${PG_HOSTPORT%%/*}
sed -e "s#^url = \"[^\"]*\"#url = \"postgresql://recall:recall_password@$PG_HOSTPORT/sluice\"#" \
	-e "s#^endpoint = \"[^\"]*\"#endpoint = \"$SLUICE_S3_ENDPOINT\"#" \
	-e "s#^bucket = \"[^\"]*\"#bucket = \"recall-primary\"#" \
	-e "s#^access_key_id = \"[^\"]*\"#access_key_id = \"S3RVER\"#" \
	-e "s#^secret_access_key = \"[^\"]*\"#secret_access_key = \"S3RVER\"#" \
	-e "s#^state_db_path = \"[^\"]*\"#state_db_path = \"$TMP/sync_state.db\"#" \
	"$TMP/recall.example.toml" >"$TMP/recall.toml"
# Nothing but those six lines differs.
[ "$(diff "$TMP/recall.example.toml" "$TMP/recall.toml" | grep -c '^>')" = 6 ] ||
	fail "the sed changed other lines: $(diff "$TMP/recall.example.toml" "$TMP/recall.toml")"
cp "$TMP/recall.toml" "$TMP/recall-no-destination.toml"
cat >>"$TMP/recall.toml" <<EOF

[destination]
type = "dir"
path = "$TMP/out"
EOF

# recall-synchronizer's schema/init.sql table (its two sample rows name
# objects that exist nowhere, so they are left out), and its user, limited
# to as many connections as its config allows.
sql "CREATE TABLE object_index (
    id UUID PRIMARY KEY,
    object_key TEXT UNIQUE NOT NULL,
    bucket_name VARCHAR(100) NOT NULL,
    competition_id UUID,
    agent_id UUID,
    data_type VARCHAR(50) NOT NULL,
    size_bytes BIGINT,
    content_hash VARCHAR(128),
    metadata JSONB,
    event_timestamp TIMESTAMPTZ,
    object_last_modified_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX object_index_last_modified_idx ON object_index (object_last_modified_at);"
sql "CREATE ROLE recall LOGIN PASSWORD 'recall_password' CONNECTION LIMIT 5;
     GRANT pg_read_all_stats TO recall;
     GRANT SELECT ON object_index TO recall"

s3curl() {
	curl -sS --fail-with-body --aws-sigv4 "aws:amz:us-east-1:s3" --user S3RVER:S3RVER \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
}
for b in recall-primary recall-archive; do s3curl -X PUT "$SLUICE_S3_ENDPOINT/$b" >/dev/null; done

COMP=11111111-1111-4111-8111-111111111111
AGENT=22222222-2222-4222-8222-222222222222
id() { printf '00000000-0000-4000-8000-%012d' "$1"; }

# add_object N BUCKET DATA_TYPE SIZE HASH: an object of SIZE random bytes in
# BUCKET ("" leaves bucket_name empty: the [s3] bucket), and its row with
# content_hash HASH: "sha256" (the object's), "SHA256" (upper case),
# "NULL", or a literal.
add_object() {
	local n=$1 bucket=$2 type=$3 size=$4 hash=$5 key
	key="test-competition/test-agent/$type/object-$n.jsonl"
	head -c "$size" /dev/urandom >"$TMP/object-$n"
	s3 PUT "${bucket:-recall-primary}" "$key" "$TMP/object-$n" >/dev/null
	case "$hash" in
	sha256) hash="'$(sha256sum "$TMP/object-$n" | cut -d' ' -f1)'" ;;
	SHA256) hash="'$(sha256sum "$TMP/object-$n" | cut -d' ' -f1 | tr a-f A-F)'" ;;
	NULL) ;;
	*) hash="'$hash'" ;;
	esac
	sql "INSERT INTO object_index (id, object_key, bucket_name, competition_id, agent_id,
	       data_type, size_bytes, content_hash, metadata, event_timestamp,
	       object_last_modified_at, created_at, updated_at)
	     VALUES ('$(id "$n")', '$key', '$bucket', '$COMP', '$AGENT', '$type', $size, $hash,
	       '{\"format\": \"jsonl\", \"compression\": null}', now(), now(),
	       '2025-05-01T12:00:00Z'::timestamptz + $n * interval '1 minute', now())"
}
add_object 1 recall-primary LOG 1000 sha256
add_object 2 recall-archive LOG 3000 sha256
add_object 3 recall-archive RESULT 200 SHA256
add_object 4 recall-primary LOG 4096 sha256 # altered below
add_object 5 recall-archive RESULT 512 abcdef1234567890
add_object 6 recall-primary LOG 700 NULL
add_object 7 "" RESULT 300 sha256
add_object 8 recall-archive LOG $((9 * 1024 * 1024 + 17)) sha256 # two 8 MiB parts
# Decoys: the [s3] bucket holds other bytes under the keys of the archive's
# rows, so reading from the wrong bucket would fail their hash.
for n in 2 3 8; do
	head -c 100 /dev/urandom >"$TMP/decoy"
	s3 PUT recall-primary "$(sql "SELECT object_key FROM object_index WHERE id = '$(id $n)'")" \
		"$TMP/decoy" >/dev/null
done
# Object 4 changes after its hash was recorded (same size: only the hash tells).
head -c 4096 /dev/urandom >"$TMP/object-4-altered"
s3 PUT recall-primary "test-competition/test-agent/LOG/object-4.jsonl" "$TMP/object-4-altered" >/dev/null

dest_of() { echo "$TMP/out/$COMP/$AGENT/$2/$(id "$1")"; }

# ---------------------------------------------------------------- without --config: ./config.toml
mkdir "$TMP/empty" "$TMP/cwd"
(cd "$TMP/empty" && expect 1 "$SLUICE" run) || exit 1
(cd "$TMP/empty" && run "$SLUICE" run && expect_in "$ERR" "neither ./sluice.toml nor ./config.toml exists" \
	"the error names both files") || exit 1
cp "$TMP/recall.toml" "$TMP/cwd/config.toml"
cd "$TMP/cwd"
expect 0 "$SLUICE" run
cd "$TMP"
expect_in "$OUT" "8 new rows, 7 objects stored" "run summary"
[ "$(grep -c '\[recall\] is not read' <<<"$ERR")" = 1 ] || fail "one [recall] notice expected: $ERR"
expect_in "$ERR" "type dir, s3 or node" "the notice says which destinations to use"

# ---------------------------------------------------------------- what was copied
for n in 1 2 3 5 6 7 8; do
	type=$(sql "SELECT data_type FROM object_index WHERE id = '$(id "$n")'")
	cmp "$TMP/object-$n" "$(dest_of "$n" "$type")" || fail "object $n differs"
done
[ ! -e "$(dest_of 4 LOG)" ] || fail "the altered object was stored"
[ "$(find "$TMP/out" -type f | wc -l)" = 7 ] || fail "unexpected files: $(find "$TMP/out" -type f)"

expect 0 "$SLUICE" failed -c "$TMP/recall.toml" --all --json
[ "$(jq length <<<"$OUT")" = 1 ] || fail "one failure expected: $OUT"
[ "$(jq -r '.[0].row_id' <<<"$OUT")" = "$(id 4)" ] || fail "failed row: $OUT"
expect_in "$(jq -r '.[0].last_error' <<<"$OUT")" "source object does not match its recorded hash" \
	"failed says why"
expect 0 "$SLUICE" failed -c "$TMP/recall.toml" --all
expect_in "$OUT" "source object does not match its recorded hash" "failed (text)"
expect 0 "$SLUICE" status -c "$TMP/recall.toml" --json
[ "$(jq -r .objects <<<"$OUT")" = 7 ] || fail "status objects: $OUT"
[ "$(jq -r .failing <<<"$OUT")" = 1 ] || fail "status failing: $OUT"
[ "$(jq -r .rows_behind <<<"$OUT")" = 0 ] || fail "status rows_behind: $OUT"

# Put back what the row records: `retry` copies it.
s3 PUT recall-primary "test-competition/test-agent/LOG/object-4.jsonl" "$TMP/object-4" >/dev/null
expect 0 "$SLUICE" retry -c "$TMP/recall.toml"
expect_in "$OUT" "1 objects stored" "retry"
cmp "$TMP/object-4" "$(dest_of 4 LOG)" || fail "object 4 after retry"
expect 0 "$SLUICE" failed -c "$TMP/recall.toml" --all --json
[ "$(jq length <<<"$OUT")" = 0 ] || fail "failures left after retry: $OUT"

# ./sluice.toml comes before ./config.toml.
echo "[database]" >"$TMP/cwd/sluice.toml"
cd "$TMP/cwd"
expect 1 "$SLUICE" status
cd "$TMP"
expect_in "$ERR" "./sluice.toml:1: [database] url: missing" "sluice.toml is read first"

# ---------------------------------------------------------------- without [destination]
expect 1 "$SLUICE" run -c "$TMP/recall-no-destination.toml"
expect_in "$ERR" "no [destination] table: sluice needs one to know where to copy the objects" \
	"a missing [destination] is named"
[ "$(grep -c '\[recall\] is not read' <<<"$ERR")" = 1 ] || fail "one [recall] notice expected: $ERR"

# ---------------------------------------------------------------- max_connections
# Direct mode: a source connection and one per worker. The role may open 5
# connections: concurrency 16 is lowered to 4 and every object is copied.
sql "CREATE TABLE direct_index (LIKE object_index INCLUDING ALL);
     ALTER TABLE direct_index ADD COLUMN data bytea;
     GRANT SELECT ON direct_index TO recall;
     INSERT INTO direct_index (id, object_key, bucket_name, data_type, size_bytes,
       content_hash, object_last_modified_at, created_at, updated_at, data)
     SELECT gen_random_uuid(), 'direct/' || g, '', 'LOG', length(d),
       encode(sha256(d), 'hex'), now(), '2025-01-01Z'::timestamptz + g * interval '1 s', now(), d
     FROM generate_series(1, 40) g,
          LATERAL (SELECT decode(repeat(md5(g::text), 1024 + g), 'hex') AS d) x"
sed -e '/^# S3 configuration/,/^$/d' -e 's/^max_connections = 5$/&\ntable = "direct_index"/' \
	-e "s#$TMP/sync_state.db#$TMP/direct_state.db#" -e "s#$TMP/out#$TMP/direct-out#" \
	"$TMP/recall.toml" >"$TMP/direct.toml"
SLUICE_LOG=info expect 0 "$SLUICE" run -c "$TMP/direct.toml"
expect_in "$OUT" "40 new rows, 40 objects stored" "direct run within max_connections"
expect_in "$ERR" "concurrency lowered to fit [database] max_connections" "the lowering is logged"
expect_in "$ERR" "concurrency=4 configured=16 max_connections=5" "to max_connections - 1"
[ "$(grep -c 'concurrency lowered' <<<"$ERR")" = 1 ] || fail "one line about concurrency: $ERR"
direct_listing() {
	sql "SELECT 'LOG/' || id || ' ' || encode(sha256(data), 'hex') FROM direct_index" | LC_ALL=C sort
}
same_listing "direct" "$(direct_listing)" "$(dir_listing "$TMP/direct-out")"
# One more than the role may open fails: the bound is what kept the run within it.
sed -e 's/^max_connections = 5$/max_connections = 6/' -e "s#$TMP/direct_state.db#$TMP/direct6.db#" \
	"$TMP/direct.toml" >"$TMP/direct6.toml"
expect 1 "$SLUICE" run -c "$TMP/direct6.toml"
expect_in "$ERR" "too many connections for role" "six connections are refused"

echo "recall_compat: ok"

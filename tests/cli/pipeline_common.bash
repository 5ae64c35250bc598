# Sourced by the pipeline tests (after common.bash): real PostgreSQL and
# s3rver from scripts/services.sh, an object_index table, configs, and ways
# to compare the destination with the source.
#
#   services_up [pg] [s3]        start them; stopped and removed on exit
#   sql SQL                      run SQL, print unaligned tuples
#   kill_mirror_rounds N CFG LOG `sluice mirror start` killed N times (KILLS)
#   create_table                 object_index as recall-synchronizer has it
#   add_rows N [TS]              N rows with random data (4..300 bytes); TS fixes created_at
#   write_config FILE DEST [EXTRA_SYNC]  DEST: dir:PATH | s3:BUCKET | node:STORE:NS | url:URL:TOKENFILE:NS
#   s3 METHOD BUCKET KEY [FILE]  a signed request to s3rver (curl --aws-sigv4)
#   expected_listing             "key sha256" of every row, sorted
#   dir_listing DIR              "key sha256" of every file, sorted
#   s3_listing BUCKET            same for a bucket (via ListObjectsV2 + GET)

SVC_DIR=
services_up() {
	local env
	env=$(bash "$SLUICE_SRC/scripts/services.sh" start "$@") || fail "services did not start"
	eval "$env"
	SVC_DIR=$SLUICE_SERVICES_DIR
}

stop_services() {
	[ -n "$SVC_DIR" ] && bash "$SLUICE_SRC/scripts/services.sh" stop "$SVC_DIR" >/dev/null 2>&1
	SVC_DIR=
}

# kill_mirror_rounds N CONFIG LOG: N times, `sluice mirror start` with
# CONFIG (its output appended to LOG) killed with SIGKILL at a random moment
# 0.2 to 1.3 s after it started; KILLS (not reset) counts the kills that
# found it running.
KILLS=0
kill_mirror_rounds() {
	local n=$1 config=$2 log=$3 pid i
	for ((i = 0; i < n; i++)); do
		SLUICE_LOG=warn "$SLUICE" mirror start --config "$config" >>"$log" 2>&1 &
		pid=$!
		sleep "$((RANDOM % 12 + 2))e-1"
		kill -9 "$pid" 2>/dev/null && KILLS=$((KILLS + 1))
		wait "$pid" 2>/dev/null || true
	done
}

sql() {
	psql "$SLUICE_PG_URL" -X -q -v ON_ERROR_STOP=1 -At -c "$1"
}

create_table() {
	sql "CREATE TYPE data_kind AS ENUM ('trace', 'log', 'image');
	     CREATE TABLE object_index (
	       id uuid PRIMARY KEY,
	       object_key text,
	       competition_id uuid NULL,
	       agent_id uuid NULL,
	       data_type data_kind NOT NULL,
	       data bytea,
	       size_bytes bigint,
	       metadata jsonb,
	       event_timestamp timestamptz,
	       created_at timestamptz NOT NULL DEFAULT now());
	     CREATE INDEX object_index_cursor ON object_index (created_at, id);"
}

# add_rows N [CREATED_AT] : direct-mode rows, random sizes, random NULL segments.
add_rows() {
	local n=$1 ts=${2:-}
	local ts_sql="clock_timestamp()"
	[ -n "$ts" ] && ts_sql="'$ts'::timestamptz"
	sql "INSERT INTO object_index (id, competition_id, agent_id, data_type, data, size_bytes, metadata, event_timestamp, created_at)
	     SELECT gen_random_uuid(),
	            CASE WHEN random() < 0.5 THEN gen_random_uuid() END,
	            CASE WHEN random() < 0.5 THEN gen_random_uuid() END,
	            (ARRAY['trace','log','image'])[1 + (g % 3)]::data_kind,
	            d, length(d), '{}'::jsonb, now(), $ts_sql
	     FROM generate_series(1, $n) g,
	          LATERAL (SELECT decode(string_agg(lpad(to_hex((random()*255)::int), 2, '0'), ''), 'hex') AS d
	                   FROM generate_series(1, 4 + (random() * 300)::int + g * 0)) x"
}

# write_config FILE DEST [SYNC_LINES]
write_config() {
	local file=$1 dest=$2 extra=${3:-}
	{
		echo "[database]"
		echo "url = \"$SLUICE_PG_URL\""
		echo "[sync_storage]"
		echo "db_path = \"$TMP/state-$(basename "$file").db\""
		echo "[sync]"
		local key
		for key in "batch_size = 50" "concurrency = 4" "retry_base_seconds = 0"; do
			grep -q "^${key%% *} " <<<"$extra" || echo "$key"
		done
		if [ -n "$extra" ]; then printf '%s\n' "$extra"; fi
		echo "[destination]"
		case "$dest" in
		dir:*)
			echo 'type = "dir"'
			echo "path = \"${dest#dir:}\""
			;;
		s3:*)
			echo 'type = "s3"'
			echo "endpoint = \"$S3_ENDPOINT_FOR_SINK\""
			echo "bucket = \"${dest#s3:}\""
			echo 'access_key_id = "S3RVER"'
			echo 'secret_access_key = "S3RVER"'
			;;
		node:*)
			local rest=${dest#node:}
			echo 'type = "node"'
			echo "store = \"${rest%%:*}\""
			echo "namespace = \"${rest#*:}\""
			;;
		url:*)
			# url:http://127.0.0.1:PORT:TOKENFILE:NS
			local rest=${dest#url:} ns tokenfile url
			ns=${rest##*:}
			rest=${rest%:*}
			tokenfile=${rest##*:}
			url=${rest%:*}
			echo 'type = "node"'
			echo "url = \"$url\""
			echo "token_file = \"$tokenfile\""
			echo "namespace = \"$ns\""
			;;
		esac
	} >"$file"
}
S3_ENDPOINT_FOR_SINK=

s3() {
	local method=$1 bucket=$2 key=$3 file=${4:-}
	local args=(-sS --fail-with-body --aws-sigv4 "aws:amz:us-east-1:s3" --user S3RVER:S3RVER
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -X "$method")
	[ -n "$file" ] && args+=(--data-binary "@$file" -H "Content-Type: application/octet-stream")
	curl "${args[@]}" "$SLUICE_S3_ENDPOINT/$bucket/$key"
}

expected_listing() {
	sql "SELECT concat_ws('/', competition_id::text, agent_id::text, data_type::text, id::text)
	            || ' ' || encode(sha256(data), 'hex')
	     FROM object_index ORDER BY 1" | LC_ALL=C sort
}

dir_listing() {
	(cd "$1" && find . -type f ! -name '.*sluice-tmp*' -printf '%P\0' | xargs -0 -r sha256sum |
		awk '{ print $2 " " $1 }' | LC_ALL=C sort)
}

s3_keys() {
	local bucket=$1 token="" out
	while :; do
		out=$(curl -sS --fail-with-body --aws-sigv4 "aws:amz:us-east-1:s3" --user S3RVER:S3RVER \
			-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
			"$SLUICE_S3_ENDPOINT/$bucket?list-type=2&max-keys=1000${token:+&continuation-token=$token}")
		grep -o '<Key>[^<]*</Key>' <<<"$out" | sed 's/<Key>\(.*\)<\/Key>/\1/'
		token=$(grep -o '<NextContinuationToken>[^<]*' <<<"$out" | sed 's/<NextContinuationToken>//')
		[ -n "$token" ] || break
	done
}

s3_listing() {
	local bucket=$1 key
	s3_keys "$bucket" | LC_ALL=C sort | while read -r key; do
		echo "$key $(s3 GET "$bucket" "$key" | sha256sum | cut -d' ' -f1)"
	done
}

# same_listing WHAT EXPECTED ACTUAL
same_listing() {
	if [ "$2" != "$3" ]; then
		diff <(echo "$2") <(echo "$3") | head -20 >&2 || true
		fail "$1: destination differs from source"
	fi
}

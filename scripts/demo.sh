#!/usr/bin/env bash
# `make demo`: the core on the embedded default. Creates a store in a
# temporary directory, imports generated sample data, prints the root,
# proves one key and verifies the proof offline, then checks the whole
# store with `sluice verify`.
set -euo pipefail

SLUICE=${1:-build/sluice}
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-demo-XXXXXX")
trap 'rm -rf "$work"' EXIT
store="$work/store"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "create a store in $store"
"$SLUICE" init -d "$store"
"$SLUICE" ns create objects --kind immutable -d "$store"

say "generate sample data: 3 competitions x 4 agents x 5 trades"
data="$work/data"
for c in 0 1 2; do
  for a in 0 1 2 3; do
    dir="$data/competition-$c/agent-$a/trade"
    mkdir -p "$dir"
    for t in 0 1 2 3 4; do
      printf '{"competition":%d,"agent":%d,"trade":%d,"amount":%d}\n' \
        "$c" "$a" "$t" $(( (c * 31 + a * 7 + t * 3) % 97 )) > "$dir/$t.json"
    done
  done
done

say "import it (key = relative path)"
"$SLUICE" import objects "$data" -d "$store"

say "the namespace root"
"$SLUICE" root objects -d "$store"

key="competition-1/agent-2/trade/3.json"
say "prove $key"
"$SLUICE" prove objects "$key" -d "$store"
"$SLUICE" prove objects "$key" --json -d "$store" > "$work/proof.json"

say "verify the proof offline (needs nothing but the file)"
"$SLUICE" check-proof "$work/proof.json"

say "the same proof against another root does not verify"
sed -E 's/"root": *"[0-9a-f]{64}"/"root": "af5570f5a1810b7af78caf4bc70a660f0df51e42baf91d4de5b2328de0e83dfc"/' \
  "$work/proof.json" > "$work/forged.json"
"$SLUICE" check-proof "$work/forged.json" || true

say "recompute every MMR node, the root and the state from the log"
"$SLUICE" verify objects -d "$store"

say "live sync: a server that keeps writing, a client that verifies and follows"
server_dir="$work/server"
client_dir="$work/client"
SLUICE_LOG=info "$SLUICE" serve -d "$server_dir" --db mutable -i 2000 -t 100ms -o 20 \
  -p 0 -m 0 2>"$work/server.log" &
server=$!
trap 'kill "$server" "${client:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do
  grep -q 'msg="serving"' "$work/server.log" && break
  sleep 0.1
done
port=$(sed -n 's/.*msg="serving".* port=\([0-9]*\) .*/\1/p' "$work/server.log")
key=$(curl -sf "http://127.0.0.1:$port/api/v0/info" | jq -r .node)
echo "server on 127.0.0.1:$port, node key $key"
echo "client: sluice sync -s 127.0.0.1:$port --trust-key <key> -i 2s demo (runs for 20 s)"
SLUICE_LOG=info "$SLUICE" sync -d "$client_dir" -s "127.0.0.1:$port" --trust-key "$key" \
  -t 500ms -i 2s demo 2> >(sed -u -E 's/^ts=[^ ]+ level=[a-z]+ //') &
client=$!
sleep 20
kill -TERM "$client" 2>/dev/null || true
wait "$client" 2>/dev/null || true
kill -TERM "$server"
wait "$server" 2>/dev/null || true
say "after stopping both: the client's copy verifies"
"$SLUICE" verify demo -d "$client_dir"

say "pipeline: a throwaway PostgreSQL with an object_index table"
services=$(bash "$(dirname "$0")/services.sh" start pg)
eval "$services"
trap 'bash "$(dirname "$0")/services.sh" stop "$SLUICE_SERVICES_DIR" >/dev/null 2>&1; rm -rf "$work"' EXIT
psql "$SLUICE_PG_URL" -X -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE TABLE object_index (
  id uuid PRIMARY KEY, object_key text, competition_id uuid, agent_id uuid,
  data_type text NOT NULL, data bytea, size_bytes bigint, metadata jsonb,
  event_timestamp timestamptz, created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO object_index (id, competition_id, agent_id, data_type, data, size_bytes, created_at)
SELECT gen_random_uuid(),
       CASE WHEN g % 3 <> 0 THEN ('00000000-0000-0000-0000-00000000000' || (g % 3))::uuid END,
       CASE WHEN g % 2 = 0 THEN ('00000000-0000-0000-0000-0000000000a' || (g % 4))::uuid END,
       (ARRAY['trace', 'log', 'portfolio'])[1 + g % 3],
       convert_to(format('{"row":%s,"amount":%s}', g, g * 7 % 97), 'UTF8'), NULL,
       now() - (500 - g) * interval '1 second'
FROM generate_series(1, 500) g;
SQL
echo "500 rows in object_index at $SLUICE_PG_URL"
for dest in dir node; do
  cat >"$work/$dest.toml" <<TOML
[database]
url = "$SLUICE_PG_URL"
[sync_storage]
db_path = "$work/$dest-state.db"
[sync]
batch_size = 100
[destination]
type = "$dest"
TOML
  if [ "$dest" = dir ]; then
    echo "path = \"$work/mirror\"" >>"$work/dir.toml"
  else
    printf 'store = "%s"\nnamespace = "objects"\n' "$work/node" >>"$work/node.toml"
  fi
  say "sluice run -c $dest.toml  (destination: $dest)"
  "$SLUICE" run -c "$work/$dest.toml"
  "$SLUICE" status -c "$work/$dest.toml"
done
echo "a few files of the mirror:"
(cd "$work/mirror" && find . -type f | sort | sed -n 1,4p)
echo "the node namespace: $("$SLUICE" ls objects -d "$work/node" | wc -l) keys"
"$SLUICE" verify objects -d "$work/node"

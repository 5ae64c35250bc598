#!/usr/bin/env bash
# `sluice engine serve` and `sluice engine status` as real processes, with a
# store namespace as L3: the HTTP API (PUT, GET, DELETE, status), every
# refusal (a bad key, an unknown acknowledgement level, a body past the
# cap, a missing token) answered with its status and changing nothing,
# every metric the docs name, the config's errors, and a restart that
# reads back what the WAL held.
set -euo pipefail
. "$(dirname "$0")/common.bash"
. "$(dirname "$0")/engine_common.bash"

cfg="$TMP/engine.toml"
engine_config "$cfg" "$TMP/wal" store "$TMP/l3" kv "[limits]" "value_max_bytes = 1000" \
	"[batch]" "ms = 20"
start_engine "$cfg"

# PUT / GET / status / DELETE
out=$(curl -sS -X PUT --data-binary 'hello' "$EURL/api/v0/kv/a/b")
v1=$(echo "$out" | jq -r .version)
[ "$v1" -gt 0 ] || fail "PUT answered $out"
out=$(curl -sS -X PUT -H 'Sluice-Ack: l3' --data-binary 'world' "$EURL/api/v0/kv/a/b")
v2=$(echo "$out" | jq -r .version)
[ "$v2" -gt "$v1" ] || fail "versions do not grow: $v1 then $v2"
[ "$(curl -sS "$EURL/api/v0/kv/a/b")" = world ] || fail "GET after PUT"
hdr=$(curl -sS -D - -o /dev/null "$EURL/api/v0/kv/a/b" | tr -d '\r' | sed -n 's/^Sluice-Version: //Ip')
[ "$hdr" = "$v2" ] || fail "Sluice-Version $hdr, want $v2"
st=$(curl -sS "$EURL/api/v0/kv/a/b/status")
[ "$(echo "$st" | jq -c '[.version, .l3, .wal]')" = "[$v2,true,false]" ] || fail "status after an l3 write: $st"
curl -sS -X PUT -H 'Sluice-Ack: memory' --data-binary 'x' "$EURL/api/v0/kv/status" >/dev/null
[ "$(curl -sS "$EURL/api/v0/kv/status?value=1")" = x ] || fail "a key named status"
out=$(curl -sS -X DELETE "$EURL/api/v0/kv/a/b")
[ "$(echo "$out" | jq -r .version)" -gt "$v2" ] || fail "DELETE answered $out"
code=$(curl -sS -o /dev/null -w '%{http_code}' "$EURL/api/v0/kv/a/b")
[ "$code" = 404 ] || fail "GET after DELETE: $code"
code=$(curl -sS -o /dev/null -w '%{http_code}' "$EURL/api/v0/kv/never/written")
[ "$code" = 404 ] || fail "GET of an absent key: $code"

# refusals change nothing
lsn_before=$(engine_status "$cfg" | jq -r .wal.lsn)
for bad in "a//b" "a/../b" "./x"; do
	code=$(curl -sS -o "$TMP/err.json" -w '%{http_code}' -X PUT --path-as-is --data-binary v "$EURL/api/v0/kv/$bad")
	[ "$code" = 400 ] || fail "PUT $bad: $code"
	jq -e '.error == "bad_request"' "$TMP/err.json" >/dev/null || fail "PUT $bad: $(cat "$TMP/err.json")"
done
code=$(curl -sS -o "$TMP/err.json" -w '%{http_code}' -X PUT -H 'Sluice-Ack: disk' --data-binary v "$EURL/api/v0/kv/k")
[ "$code" = 400 ] || fail "unknown ack level: $code"
head -c 1001 /dev/zero >"$TMP/big"
code=$(curl -sS -o "$TMP/err.json" -w '%{http_code}' -X PUT --data-binary @"$TMP/big" "$EURL/api/v0/kv/k")
[ "$code" = 413 ] || fail "body past the cap: $code"
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST --data-binary v "$EURL/api/v0/kv/k")
[ "$code" = 405 ] || fail "POST: $code"
[ "$(engine_status "$cfg" | jq -r .wal.lsn)" = "$lsn_before" ] || fail "a refused write reached the WAL"
code=$(curl -sS -o /dev/null -w '%{http_code}' "$EURL/api/v0/kv/k")
[ "$code" = 404 ] || fail "a refused write is readable: $code"

# metrics: every one the docs name is emitted
curl -sS "http://127.0.0.1:$EMPORT/metrics" >"$TMP/metrics"
# (L2's exist only with an L2: tests/cli/engine_redis.sh checks them)
names=$(sed -n 's/^| `\(sluice_engine_[a-z_0-9]*\)`.*/\1/p' "$SLUICE_SRC/docs/cli.md" | grep -v '^sluice_engine_l2_' | sort -u)
[ -n "$names" ] || fail "docs/cli.md names no engine metric"
for m in $names; do
	grep -q "^$m" "$TMP/metrics" || fail "metric $m is not emitted"
done

# the status command, in words and in JSON
expect 0 "$SLUICE" engine status --config "$cfg" -p "$EPORT"
expect_in "$OUT" "pressure     normal" "engine status"
expect_in "$OUT" "parked       0" "engine status"
expect_in "$OUT" "breaker l3   closed" "engine status"

# a restart: memory-acknowledged writes that reached the WAL come back
for i in $(seq 1 50); do
	curl -sS -X PUT -H 'Sluice-Ack: local' --data-binary "v$i" "$EURL/api/v0/kv/r/$i" >/dev/null
done
stop_engine KILL
start_engine "$cfg"
for i in $(seq 1 50); do
	[ "$(curl -sS "$EURL/api/v0/kv/r/$i")" = "v$i" ] || fail "r/$i lost in a restart"
done
wait_until 20 flushed "$cfg" || fail "the WAL did not drain after the restart"
stop_engine TERM
# L3 is a store namespace: every key is provable
expect 0 "$SLUICE" verify -d "$TMP/l3" kv

# a token: writes need it, reads do not
printf 'a-token-of-sixteen-chars\n' >"$TMP/token"
engine_config "$cfg" "$TMP/wal" store "$TMP/l3" kv "[server]" "token_file = \"$TMP/token\""
start_engine "$cfg"
code=$(curl -sS -o /dev/null -w '%{http_code}' -X PUT --data-binary v "$EURL/api/v0/kv/t")
[ "$code" = 401 ] || fail "PUT without the token: $code"
code=$(curl -sS -o /dev/null -w '%{http_code}' -X PUT -H 'Authorization: Bearer a-token-of-sixteen-chars' --data-binary v "$EURL/api/v0/kv/t")
[ "$code" = 200 ] || fail "PUT with the token: $code"
[ "$(curl -sS "$EURL/api/v0/kv/t")" = v ] || fail "GET needs no token"
stop_engine TERM

# config errors: named with file, line and key; nothing starts
printf '[wal]\ndir = "%s"\ncolour = 1\n' "$TMP/w2" >"$TMP/bad.toml"
expect 1 "$SLUICE" engine serve --config "$TMP/bad.toml" -p 0 -m off
expect_in "$ERR" "bad.toml:3: [wal] colour: unknown key" "unknown key"
printf '[wal]\ndir = "%s"\n[l3]\ntype = "redis"\n' "$TMP/w2" >"$TMP/bad.toml"
expect 1 "$SLUICE" engine serve --config "$TMP/bad.toml" -p 0 -m off
expect_in "$ERR" '[l3] type: expected "store", "postgresql" or "mysql"' "bad l3 type"
printf '[l3]\ntype = "store"\n' >"$TMP/bad.toml"
expect 1 "$SLUICE" engine serve --config "$TMP/bad.toml" -p 0 -m off
expect_in "$ERR" "[wal] dir: missing" "missing wal dir"
printf '[wal]\ndir = "%s"\n[batch]\nitems = 0\n' "$TMP/w2" >"$TMP/bad.toml"
expect 1 "$SLUICE" engine serve --config "$TMP/bad.toml" -p 0 -m off
expect_in "$ERR" "[batch] items: 0 is out of range" "items = 0"
[ ! -e "$TMP/w2" ] || fail "a refused config created the WAL directory"
echo "engine.sh: ok"

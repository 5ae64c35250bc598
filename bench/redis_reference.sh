#!/usr/bin/env bash
# The reference for sluice's sync benchmark: how long a Redis replica takes to
# fully sync N keys (default 1,000,000) from its primary, with 32-byte keys and
# 32-byte values.
#
#   bench/redis_reference.sh            # 1,000,000 keys
#   bench/redis_reference.sh 100000
#
# Prints two lines:
#
#   redis_load keys=N seconds=S
#   redis_full_sync keys=N seconds=S keys_per_s=X mb_per_s=Y
#
# redis_load is `redis-cli --pipe` of N pipelined SETs into the primary (the
# RESP file is generated beforehand and not timed). redis_full_sync runs from
# REPLICAOF on the empty replica until INFO replication reports
# master_link_status:up and master_sync_in_progress:0 and the replica's DBSIZE
# is N (polled every 10 ms, so the figure includes up to ~15 ms of polling).
# MB/s counts payload only: N * (32 + 32) bytes / 1e6 / seconds.
#
# Why this reference: a replica's full sync (the primary streams an RDB
# snapshot, the replica loads it) is the baseline users know for "copy a
# keyspace to another node", so it is the number they will hold sluice's sync
# against. It is not a like-for-like comparison: Redis keeps everything in
# memory, trusts its primary and verifies nothing cryptographically (the RDB
# carries a CRC64 against accidental damage, nothing that proves the data is
# the primary's), while a sluice sync checks every op against signed Merkle
# roots and commits it to a durable store.
#
# Setup: two redis-server processes on free 127.0.0.1 ports, each with its own
# directory in a mktemp -d (removed at exit, servers shut down), persistence
# off (--save '' --appendonly no). Redis 7 defaults are kept (diskless sync on
# the primary, the replica writes the received RDB to disk before loading it,
# rdbcompression and rdbchecksum on) except repl-diskless-sync-delay, which is
# set to 0: by default the primary waits 5 s for more replicas before it starts
# a diskless transfer, and that idle wait is not sync work.
#
# Needs redis-server, redis-cli (Debian: redis-server, redis-tools) and node.
set -euo pipefail

keys=${1:-1000000}
if ! [[ $keys =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: bench/redis_reference.sh [KEYS]   (KEYS a positive integer, default 1000000)" >&2
  exit 2
fi
for tool in redis-server redis-cli node timeout; do
  if ! command -v "$tool" >/dev/null; then
    echo "redis_reference: $tool not found" >&2
    exit 1
  fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sluice-redis-ref.XXXXXX")
primary_pid=
replica_pid=

stop_server() { # PID: SIGTERM, wait up to 10 s, then SIGKILL
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 1000; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  stop_server "$replica_pid"
  stop_server "$primary_pid"
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# Two distinct free ports: the kernel picks them for two sockets held open at
# once, then releases them. Another process could take one before redis binds
# it, so start_servers retries with fresh ports when a server fails to start.
free_ports() {
  node -e '
    const net = require("net");
    const a = net.createServer(), b = net.createServer();
    a.listen(0, "127.0.0.1", () => b.listen(0, "127.0.0.1", () => {
      console.log(a.address().port, b.address().port);
      a.close(); b.close();
    }));'
}

# start_server NAME PORT [extra redis-server args...]; $! is its pid after.
start_server() {
  local name=$1 port=$2
  shift 2
  mkdir -p "$tmp/$name"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$tmp/$name" --save '' --appendonly no \
    --daemonize no "$@" >"$tmp/$name.log" 2>&1 &
}

# cli PORT ARGS...: redis-cli that gives up after 5 s (a port taken by some
# other program may accept a connection and never answer).
cli() {
  local port=$1
  shift
  timeout 5 redis-cli -p "$port" "$@" 2>/dev/null || true
}

# wait_ready PID PORT: 0 once PING answers PONG and the server on PORT is
# process PID (not some other redis that holds the port), 1 if the server
# died or was not ready within 10 s.
wait_ready() {
  local pid=$1 port=$2 i
  for ((i = 0; i < 1000; i++)); do
    kill -0 "$pid" 2>/dev/null || return 1
    if [ "$(cli "$port" ping)" = PONG ]; then
      [[ $(cli "$port" info server) == *"process_id:$pid"$'\r'* ]]
      return
    fi
    sleep 0.01
  done
  return 1
}

start_servers() {
  local attempt
  for attempt in 1 2 3 4 5; do
    read -r primary_port replica_port < <(free_ports)
    start_server primary "$primary_port" --repl-diskless-sync-delay 0
    primary_pid=$!
    start_server replica "$replica_port"
    replica_pid=$!
    if wait_ready "$primary_pid" "$primary_port" && wait_ready "$replica_pid" "$replica_port"; then
      return 0
    fi
    echo "redis_reference: servers on ports $primary_port/$replica_port did not start (attempt $attempt)" >&2
    tail -n 3 "$tmp/primary.log" "$tmp/replica.log" >&2 || true
    stop_server "$replica_pid"
    stop_server "$primary_pid"
    primary_pid='' replica_pid=''
  done
  echo "redis_reference: giving up on starting redis-server" >&2
  exit 1
}

dbsize() { cli "$1" dbsize; }

start_servers
echo "redis_reference: $(redis-server --version | awk '{print $3}'), primary 127.0.0.1:$primary_port," \
  "replica 127.0.0.1:$replica_port, $keys keys" >&2

# RESP for N x `SET key/<28-digit index> <32 chars>`. Keys are the index
# zero-padded to 32 bytes; values are 32 characters from a 64-letter alphabet
# drawn from a fixed-seed xorshift32, so every run loads the same data and the
# values do not compress (rdbcompression would shrink sequential values).
# shellcheck disable=SC2016 # JavaScript, not shell
node -e '
  const fs = require("fs");
  const n = Number(process.argv[1]);
  const fd = fs.openSync(process.argv[2], "w");
  const abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  let x = 20261121;
  const next = () => { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; return x >>> 0; };
  const batch = 10000;
  for (let i = 0; i < n; i += batch) {
    let s = "";
    for (let j = i; j < Math.min(n, i + batch); j++) {
      let v = "";
      for (let k = 0; k < 32; k += 4) {
        const r = next();
        v += abc[r & 63] + abc[(r >>> 6) & 63] + abc[(r >>> 12) & 63] + abc[(r >>> 18) & 63];
      }
      s += "*3\r\n$3\r\nSET\r\n$32\r\nkey/" + String(j).padStart(28, "0") + "\r\n$32\r\n" + v + "\r\n";
    }
    fs.writeSync(fd, s, null, "latin1");
  }
  fs.closeSync(fd);
' "$keys" "$tmp/load.resp"

t0=$(now)
redis-cli -p "$primary_port" --pipe <"$tmp/load.resp" >"$tmp/pipe.out" 2>&1
t1=$(now)
if ! grep -q "errors: 0, replies: $keys\$" "$tmp/pipe.out"; then
  echo "redis_reference: redis-cli --pipe did not load cleanly:" >&2
  cat "$tmp/pipe.out" >&2
  exit 1
fi
rm -f "$tmp/load.resp"
n=$(dbsize "$primary_port")
if [ "$n" != "$keys" ]; then
  echo "redis_reference: primary DBSIZE is $n, expected $keys" >&2
  exit 1
fi
echo "redis_load keys=$keys seconds=$(elapsed "$t0" "$t1")"

# The full sync. Give up after 30 minutes or if either server dies.
t0=$(now)
if [ "$(cli "$replica_port" replicaof 127.0.0.1 "$primary_port")" != OK ]; then
  echo "redis_reference: REPLICAOF failed" >&2
  exit 1
fi
deadline=$((SECONDS + 1800))
while :; do
  info=$(cli "$replica_port" info replication)
  if [[ $info == *master_link_status:up* && $info == *master_sync_in_progress:0* ]] &&
    [ "$(dbsize "$replica_port")" = "$keys" ]; then
    break
  fi
  if ! kill -0 "$primary_pid" 2>/dev/null || ! kill -0 "$replica_pid" 2>/dev/null ||
    ((SECONDS > deadline)); then
    echo "redis_reference: the replica did not finish its sync" >&2
    tail -n 20 "$tmp/primary.log" "$tmp/replica.log" >&2 || true
    exit 1
  fi
  sleep 0.01
done
t1=$(now)

awk -v n="$keys" -v a="$t0" -v b="$t1" 'BEGIN {
  s = b - a
  printf "redis_full_sync keys=%.0f seconds=%.3f keys_per_s=%.0f mb_per_s=%.1f\n",
    n, s, n / s, n * 64 / 1e6 / s
}'

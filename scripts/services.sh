#!/usr/bin/env bash
# Starts and stops the real servers the pipeline tests talk to, on loopback,
# with throwaway data directories and free ports.
#
#   scripts/services.sh start [pg] [s3] [mysql] [redis]   # pg and s3 when none is named
#       Prints shell assignments (eval them) and writes them to DIR/env:
#         SLUICE_SERVICES_DIR  the throwaway directory (pass it to stop)
#         SLUICE_PG_URL        postgresql://sluice@127.0.0.1:PORT/sluice
#         SLUICE_PG_PORT
#         SLUICE_MYSQL_URL     mysql://sluice@127.0.0.1:PORT/sluice (MariaDB)
#         SLUICE_MYSQL_PORT
#         SLUICE_S3_ENDPOINT   http://127.0.0.1:PORT (s3rver; key and secret S3RVER)
#         SLUICE_S3_PORT
#         SLUICE_REDIS_URL     redis://127.0.0.1:PORT (Redis 7; RDB only on SAVE)
#         SLUICE_REDIS_PORT
#       Buckets "source" and "dest" exist at start.
#   scripts/services.sh stop DIR          # stops what DIR holds, removes DIR
#   scripts/services.sh restart-pg DIR    # pg_ctl restart (tests of outages)
#   scripts/services.sh stop-pg DIR | start-pg DIR
#   scripts/services.sh crash-pg DIR      # pg_ctl stop -m immediate: no checkpoint, as a crash
#   scripts/services.sh stop-mysql DIR | start-mysql DIR
#   scripts/services.sh crash-mysql DIR   # kill -9 of mariadbd
#   scripts/services.sh kill-redis DIR    # SIGKILL: what was not in the last SAVE is gone
#   scripts/services.sh start-redis DIR   # again on its port, from DIR/redis/dump.rdb if any
#
# PostgreSQL refuses to run as root, so as root initdb and pg_ctl run as the
# `postgres` user, which owns the data directory. MariaDB runs as whoever
# starts it (--user=root as root: it then needs no other access to DIR);
# its root account has no password and is reached over DIR/mysql.sock
# only, to make the `sluice` user (no password, all rights on database
# `sluice`) the tests connect as over TCP. InnoDB commits write the log to
# the OS without fsync (innodb_flush_log_at_trx_commit=2): a kill -9 of
# the server loses nothing committed, a power cut would. s3rver comes from
# tests/package.json (pinned), installed by scripts/deps.sh.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();});'
}

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_ctl_run() { # dir, action...
  local dir="$1"
  shift
  as_pg "$pg_bin/pg_ctl" -D "$dir/pg" -l "$dir/pg.log" -w -t 60 "$@" >/dev/null
}

start_pg() {
  local dir="$1" port
  port="$(free_port)"
  mkdir -p "$dir/pg" "$dir/pgsock"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$dir" "$dir/pg" "$dir/pgsock"
    chmod 755 "$dir"
  fi
  as_pg "$pg_bin/initdb" -D "$dir/pg" -U sluice -A trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; return 1; }
  cat >>"$dir/pg/postgresql.conf" <<EOF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir/pgsock'
fsync = off
full_page_writes = off
max_connections = 200
wal_level = logical
max_replication_slots = 32
max_wal_senders = 32
EOF
  as_pg touch "$dir/pg.log"
  pg_ctl_run "$dir" start || { cat "$dir/pg.log" >&2; return 1; }
  as_pg "$pg_bin/createdb" -h 127.0.0.1 -p "$port" -U sluice sluice
  echo "SLUICE_PG_PORT=$port" >>"$dir/env"
  echo "SLUICE_PG_URL=postgresql://sluice@127.0.0.1:$port/sluice" >>"$dir/env"
}

start_s3() {
  local dir="$1" port bin="$root/tests/node_modules/.bin/s3rver"
  [ -x "$bin" ] || { echo "services: s3rver missing; run scripts/deps.sh" >&2; return 1; }
  port="$(free_port)"
  mkdir -p "$dir/s3"
  "$bin" -d "$dir/s3" -a 127.0.0.1 -p "$port" --silent --service-endpoint localhost \
    --configure-bucket source --configure-bucket dest >"$dir/s3.log" 2>&1 &
  echo $! >"$dir/s3.pid"
  for _ in $(seq 1 100); do
    if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
      echo "SLUICE_S3_PORT=$port" >>"$dir/env"
      echo "SLUICE_S3_ENDPOINT=http://127.0.0.1:$port" >>"$dir/env"
      return 0
    fi
    sleep 0.1
  done
  echo "services: s3rver did not start:" >&2
  cat "$dir/s3.log" >&2
  return 1
}

mysql_opts() { # dir, port
  local dir="$1" port="$2"
  printf '%s\n' --no-defaults "--datadir=$dir/mysql" "--socket=$dir/mysql.sock" \
    "--port=$port" --bind-address=127.0.0.1 "--pid-file=$dir/mysql.pid" \
    "--log-error=$dir/mysql.log" --skip-name-resolve --skip-log-bin \
    --innodb-flush-log-at-trx-commit=2 --innodb-doublewrite=0 \
    --innodb-buffer-pool-size=128M --innodb-log-file-size=64M \
    --max-allowed-packet=64M --max-connections=200 --performance-schema=OFF
  [ "$(id -u)" -ne 0 ] || echo --user=root
}

mysql_run() { # dir: starts mariadbd on the port it had, waits until it answers
  local dir="$1" port
  port="$(cat "$dir/mysql.port")"
  local -a opts
  mapfile -t opts < <(mysql_opts "$dir" "$port")
  # setsid: the server must not get the caller's signals (a test's ^C)
  setsid mariadbd "${opts[@]}" </dev/null >>"$dir/mysql.log" 2>&1 &
  for _ in $(seq 1 300); do
    if mariadb-admin --no-defaults -S "$dir/mysql.sock" -u root ping >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  echo "services: MariaDB did not start:" >&2
  tail -20 "$dir/mysql.log" >&2
  return 1
}

start_mysql() {
  local dir="$1" port
  port="$(free_port)"
  echo "$port" >"$dir/mysql.port"
  local -a user=()
  [ "$(id -u)" -ne 0 ] || user=(--user=root)
  mariadb-install-db --no-defaults "--datadir=$dir/mysql" --auth-root-authentication-method=normal \
    --skip-test-db "${user[@]}" >"$dir/mysql-install.log" 2>&1 ||
    { cat "$dir/mysql-install.log" >&2; return 1; }
  mysql_run "$dir" || return 1
  mariadb --no-defaults -S "$dir/mysql.sock" -u root -e "
    CREATE DATABASE sluice;
    CREATE USER 'sluice'@'127.0.0.1', 'sluice'@'localhost';
    GRANT ALL ON sluice.* TO 'sluice'@'127.0.0.1', 'sluice'@'localhost';" ||
    return 1
  echo "SLUICE_MYSQL_PORT=$port" >>"$dir/env"
  echo "SLUICE_MYSQL_URL=mysql://sluice@127.0.0.1:$port/sluice" >>"$dir/env"
}

mysql_kill() { # dir, signal: signals mariadbd and waits until it is gone
  local dir="$1" sig="$2" pid
  [ -f "$dir/mysql.pid" ] || return 0
  pid="$(cat "$dir/mysql.pid")"
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 1 600); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$dir/mysql.pid"; return 0; }
    sleep 0.1
  done
  echo "services: mariadbd $pid did not stop" >&2
  return 1
}

redis_run() { # dir: starts redis-server on the port in DIR/redis.port
  local dir="$1" port
  port="$(cat "$dir/redis.port")"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir/redis" --dbfilename dump.rdb \
    --save '' --appendonly no --daemonize no --protected-mode no \
    --logfile "$dir/redis.log" >/dev/null 2>&1 &
  echo $! >"$dir/redis.pid"
  for _ in $(seq 1 100); do
    if redis-cli -p "$port" PING 2>/dev/null | grep -q PONG; then
      return 0
    fi
    sleep 0.1
  done
  echo "services: redis did not start:" >&2
  cat "$dir/redis.log" >&2
  return 1
}

start_redis() {
  local dir="$1" port
  port="$(free_port)"
  mkdir -p "$dir/redis"
  echo "$port" >"$dir/redis.port"
  redis_run "$dir" || return 1
  echo "SLUICE_REDIS_PORT=$port" >>"$dir/env"
  echo "SLUICE_REDIS_URL=redis://127.0.0.1:$port" >>"$dir/env"
}

kill_redis() {
  local dir="$1" pid
  [ -f "$dir/redis.pid" ] || return 0
  pid="$(cat "$dir/redis.pid")"
  kill -CONT "$pid" 2>/dev/null || true
  kill -KILL "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  rm -f "$dir/redis.pid"
}

stop_all() {
  local dir="$1"
  [ -d "$dir" ] || return 0
  if [ -f "$dir/s3.pid" ]; then
    kill "$(cat "$dir/s3.pid")" 2>/dev/null || true
  fi
  if [ -f "$dir/pg/postmaster.pid" ]; then
    pg_ctl_run "$dir" stop -m immediate 2>/dev/null || true
  fi
  mysql_kill "$dir" KILL || true
  kill_redis "$dir"
  rm -rf "$dir"
}

cmd="${1:-}"
shift || true
case "$cmd" in
start)
  want_pg=0 want_s3=0 want_mysql=0 want_redis=0
  [ $# -eq 0 ] && set -- pg s3
  for s in "$@"; do
    case "$s" in
    pg) want_pg=1 ;;
    s3) want_s3=1 ;;
    mysql) want_mysql=1 ;;
    redis) want_redis=1 ;;
    *) echo "services: unknown service '$s' (pg, s3, mysql, redis)" >&2; exit 2 ;;
    esac
  done
  dir="$(mktemp -d "${TMPDIR:-/tmp}/sluice-services.XXXXXX")"
  echo "SLUICE_SERVICES_DIR=$dir" >"$dir/env"
  trap 'stop_all "$dir"' ERR
  [ $want_pg -eq 1 ] && start_pg "$dir"
  [ $want_s3 -eq 1 ] && start_s3 "$dir"
  [ $want_mysql -eq 1 ] && start_mysql "$dir"
  [ $want_redis -eq 1 ] && start_redis "$dir"
  trap - ERR
  sed 's/^/export /' "$dir/env"
  ;;
stop) stop_all "${1:?services: stop needs the directory}" ;;
restart-pg) pg_ctl_run "${1:?}" restart -m fast ;;
stop-pg) pg_ctl_run "${1:?}" stop -m fast ;;
crash-pg) pg_ctl_run "${1:?}" stop -m immediate ;;
start-pg) pg_ctl_run "${1:?}" start ;;
stop-mysql) mysql_kill "${1:?}" TERM ;;
crash-mysql) mysql_kill "${1:?}" KILL ;;
start-mysql) mysql_run "${1:?}" ;;
kill-redis) kill_redis "${1:?}" ;;
start-redis) redis_run "${1:?}" ;;
*)
  echo "usage: services.sh start [pg] [s3] [mysql] [redis] | stop DIR | restart-pg DIR | stop-pg DIR |" \
    "crash-pg DIR | start-pg DIR | stop-mysql DIR | crash-mysql DIR | start-mysql DIR |" \
    "kill-redis DIR | start-redis DIR" >&2
  exit 2
  ;;
esac

#!/usr/bin/env bash
# Engine benchmark (`make bench-engine`): the tiered write engine's submits
# at `memory` and `local`, its gets (an L1 hit, an L3 hit, a miss the
# filter answers) and the rate at which its drain fills L3, each next to
# the limit this machine puts on it, measured in the same run: the disk's
# sequential write rate and fdatasync latency, a read straight from the
# backend, a plain batched insert of the same rows into the same backend.
# Every figure is also compared with the goals and with sync-engine's
# published 59 µs a submit and 71 µs a get.
#
#   bench/engine_bench.sh BUILD_DIR [SUBMITS]     (default 1,000,000)
#
#   BENCH_REPEAT=N      runs of each submit and get measurement (default 3;
#                       the table gives the median run and the best)
#   BENCH_LOCAL_S=S     seconds of each `local` run (default 3)
#   BENCH_KEYS=K        keys of the get runs (default 100,000; 20,000 for
#                       PostgreSQL)
#   BENCH_ROWS=R        rows of the store's L3 flush runs (default 100,000:
#                       below the store's first state flush)
#   BENCH_PG_ROWS=R     rows of PostgreSQL's (default 300,000)
#   BENCH_MYSQL_ROWS=R  rows of MariaDB's (default 200,000)
#   BENCH_RECORD=0      print only; else the table is appended, with the
#                       machine and revision, to bench/RESULTS.md
#
# What each mode of bench/engine_bench.c measures is at the top of that
# file. L3 is a fresh store namespace (the default tier) unless a row says
# PostgreSQL (scripts/services.sh starts a throwaway one, fsync off, on
# loopback; skipped when it cannot start), MariaDB (the same, its InnoDB
# log written at commit but not fsync'd) or "no L3" (a tier that takes
# every batch at once: the engine's own cost). Each run gets a fresh
# directory under one temporary directory on the same disk.
set -euo pipefail

build=${1:?usage: bench/engine_bench.sh BUILD_DIR [SUBMITS]}
submits=${2:-1000000}
repeat=${BENCH_REPEAT:-3}
local_s=${BENCH_LOCAL_S:-3}
keys=${BENCH_KEYS:-100000}
pg_keys=$((keys < 20000 ? keys : 20000))
rows=${BENCH_ROWS:-100000}
pg_rows=${BENCH_PG_ROWS:-300000}
mysql_rows=${BENCH_MYSQL_ROWS:-200000}
helper=$build/engine_bench
src=$(cd "$(dirname "$0")/.." && pwd)
results=$src/bench/RESULTS.md
[ -x "$helper" ] || { echo "engine_bench.sh: build $helper first (make)" >&2; exit 1; }
BENCH=engine_bench.sh
source "$src/bench/bench_common.bash"

date_utc=$(date -u '+%Y-%m-%dT%H:%M:%SZ')
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
cores=$(nproc)
mem_gib=$(awk '/^MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)
fs=$(df -T "$tmp" | awk 'NR == 2 { print $1 " (" $2 ")" }')
revision=$(git -C "$src" describe --always --dirty 2>/dev/null || echo unknown)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "sluice engine benchmark, $date_utc"
echo "cpu: $cpu_model, $cores cores, $mem_gib GiB; disk $fs; revision $revision"
echo "load average at the start: $load_start"
echo

kv() { # LINE KEY
	sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"
}
commas() {
	sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1"
}
dur() { # MICROSECONDS: "0.41 µs", "33 µs", "5.3 ms"
	awk -v v="$1" 'BEGIN {
		if (v >= 1000) printf "%.1f ms", v / 1000
		else if (v >= 10) printf "%.0f µs", v
		else printf "%.2f µs", v }'
}
threads() { # N: "1 thread", "4 threads"
	if [ "$1" = 1 ]; then echo "1 thread"; else echo "$1 threads"; fi
}
num() { # VALUE DIGITS
	awk -v v="$1" -v d="$2" 'BEGIN { printf "%.*f", d, v }'
}
fresh() { # a new empty directory for one run
	local d
	d=$(mktemp -d "$tmp/run.XXXXXX")
	echo "$d"
}
# Runs engine_bench MODE DIR ARGS... in a fresh directory BENCH_REPEAT
# times, echoing each line; $tmp/runs keeps one run a line (its lines
# joined by tabs) for median_of and best_of.
repeated() { # MODE ARGS...
	local d out
	: >"$tmp/runs"
	for _ in $(seq 1 "$repeat"); do
		d=$(fresh)
		out=$("$helper" "$1" "$d" "${@:2}") || fail "engine_bench $* failed"
		rm -rf "$d"
		echo "$out" | sed 's/^/  /' >&2
		printf '%s\n' "$out" | tr '\n' '\t' >>"$tmp/runs"
		echo >>"$tmp/runs"
	done
}
lines_of() { # WHAT [FROM]: that line of each run
	local run
	while IFS= read -r run; do
		tr '\t' '\n' <<<"$run" | grep "what=$1 " | grep -e "${2:+ from=$2 }" | head -1
	done <"$tmp/runs"
}
median_of() { # KEY WHAT [FROM]: the line of the run whose KEY is the median
	local l
	lines_of "$2" "${3:-}" | while IFS= read -r l; do printf '%s\t%s\n' "$(kv "$l" "$1")" "$l"; done |
		sort -g | sed -n "$(((repeat + 1) / 2))p" | cut -f2-
}
best_of() { # KEY low|high WHAT [FROM]
	local l
	lines_of "$3" "${4:-}" | while IFS= read -r l; do kv "$l" "$1"; done | sort -g |
		if [ "$2" = low ]; then head -1; else tail -1; fi
}

table=()
add_row() {
	table+=("| $(printf '%s | ' "$@")")
}
x_sync() { # rate/s -> "Nx" on a 59 µs basis; or latency µs and basis
	awk -v v="$1" -v basis="$2" -v kind="$3" 'BEGIN {
		f = kind == "rate" ? v * basis / 1e6 : basis / v
		printf (f >= 10 ? "%.0fx" : "%.2fx"), f }'
}

# ------------------------------------------------------------- the limits
echo "the machine's limits:"
timer=$("$helper" timer)
timer_ns=$(kv "$timer" pair_ns)
echo "  $timer"
handoff=$("$helper" handoff)
wakeup_us=$(kv "$handoff" wakeup_us)
echo "  $handoff"
d=$(fresh)
wal_lines=$("$helper" wal-limit "$d" 512)
echo "$wal_lines" | sed 's/^/  /'
fsync_line=$("$helper" fsync-limit "$d" 3)
echo "  $fsync_line"
rm -rf "$d"
wal_1=$(grep 'sync_every_mib=1 ' <<<"$wal_lines")
wal_16=$(grep 'sync_every_mib=16 ' <<<"$wal_lines")
wal_rec_1=$(num "$(kv "$wal_1" records_per_s)" 0)
wal_rec_16=$(num "$(kv "$wal_16" records_per_s)" 0)
fsync_p50=$(kv "$fsync_line" p50_us)
wal_limit_text="WAL disk $(commas "$wal_rec_1")/s (fdatasync every MiB), $(commas "$wal_rec_16")/s (every 16 MiB)"

# ------------------------------------------------------------- submits
goal_lines=()
verdict() { # MET(0/1) TEXT
	if [ "$1" = 1 ]; then echo "met"; else echo "missed"; fi
}
submit_rows() { # L3 LABEL ACK THREADS AMOUNT
	local l3=$1 label=$2 ack=$3 threads=$4 amount=$5 line rate p50 p99 goal ratio limit note met best
	echo "submit, $ack, $label, $(threads "$threads"):" >&2
	repeated submit "$l3" "$ack" "$threads" "$amount"
	line=$(median_of per_s submit)
	best=$(best_of per_s high submit)
	rate=$(num "$(kv "$line" per_s)" 0)
	p50=$(kv "$line" p50_us)
	p99=$(kv "$line" p99_us)
	if [ "$ack" = memory ]; then
		goal=">= 1,000,000/s"
		ratio=$(awk -v r="$rate" 'BEGIN { printf "%.2f", r / 1000000 }')
		limit=$wal_limit_text
		met=$(awk -v r="$rate" 'BEGIN { print (r >= 1000000) }')
	else
		goal=">= 150,000/s, p99 <= 10 ms"
		ratio="$(awk -v r="$rate" 'BEGIN { printf "%.2f", r / 150000 }'); p99 $(awk -v p="$p99" 'BEGIN { printf "%.1f", p / 1000 }') ms"
		limit="$(commas "$(awk -v t="$threads" -v f="$fsync_p50" -v c="$cores" -v u="$wakeup_us" 'BEGIN { v = t * 1e6 / f; w = c * 1e6 / u; printf "%.0f", v < w ? v : w }')")/s: the least of $threads / fdatasync p50 ($(dur "$fsync_p50")) and $cores cores / one wake-up ($(dur "$wakeup_us"))"
		met=$(awk -v r="$rate" -v p="$p99" 'BEGIN { print (r >= 150000 && p <= 10000) }')
	fi
	note="$(kv "$line" syncs) fdatasyncs, $(kv "$line" per_sync) records each; CPU $(kv "$line" cpu_us_per_submit) µs a submit; L3 took $(commas "$(kv "$line" l3_rows_during)") rows meanwhile"
	add_row "submit, $ack, $label, $(threads "$threads")" "$(commas "$rate")/s" \
		"$(commas "$(num "$best" 0)")/s" "$(dur "$p50")" "$(dur "$p99")" "$goal" "$ratio" "$limit" \
		"$(x_sync "$rate" 59 rate) by rate, $(x_sync "$p50" 59 lat) by p50" "$note"
	if [ "$l3" = store ]; then
		goal_lines+=("- submit at $ack, $(threads "$threads"): $(commas "$rate")/s, p50 $(dur "$p50"), p99 $(dur "$p99"): $(verdict "$met")")
	fi
}
for t in 1 2 4; do submit_rows store "store L3" memory "$t" "$submits"; done
for t in 1 4; do submit_rows null "no L3" memory "$t" "$submits"; done
for t in 16 64 256; do submit_rows store "store L3" local "$t" "$local_s"; done
for t in 16 256; do submit_rows null "no L3" local "$t" "$local_s"; done

# ------------------------------------------------------------- PostgreSQL
if start_pg; then
	pg_version=$(psql "$SLUICE_PG_URL" -X -At -c 'SHOW server_version' 2>/dev/null || echo "?")
	echo "PostgreSQL $pg_version at $SLUICE_PG_URL (fsync off)" >&2
else
	echo "PostgreSQL did not start (its log above); its rows are skipped" >&2
	pg_version=
fi

# ------------------------------------------------------------- gets
get_rows() { # L3 KEYS
	local l3=$1 n=$2 line where p50 mean goal ratio limit label direct met best
	echo "get, $l3 L3, $n keys:" >&2
	repeated get "$l3" "$n"
	direct=$(median_of p50_us get direct)
	for where in l1 l3 filter; do
		[ "$l3" = store ] || [ "$where" = l3 ] || continue
		line=$(median_of p50_us get "$where")
		best=$(best_of p50_us low get "$where")
		p50=$(kv "$line" p50_us)
		mean=$(kv "$line" mean_us)
		case $where in
		l1)
			label="get, L1 hit"
			goal="<= 1 µs"
			ratio="p50 $(num "$p50" 2) µs, untimed mean $(num "$(kv "$line" mean_untimed_us)" 2) µs"
			limit="the timer pair, $(num "$timer_ns" 0) ns, is included"
			met=$(awk -v p="$p50" 'BEGIN { print (p <= 1) }')
			goal_lines+=("- get, L1 hit: p50 $(num "$p50" 2) µs (the goal's figure), mean $(num "$mean" 2) µs (untimed $(num "$(kv "$line" mean_untimed_us)" 2) µs), p99 $(num "$(kv "$line" p99_us)" 2) µs: $(verdict "$met")")
			;;
		l3)
			label="get, L3 hit ($([ "$l3" = pg ] && echo PostgreSQL || echo store))"
			goal="-"
			ratio="-"
			limit="the backend read alone: p50 $(num "$(kv "$direct" p50_us)" 2) µs, mean $(num "$(kv "$direct" mean_us)" 2) µs"
			;;
		filter)
			label="get, miss answered by the filter"
			goal="-"
			ratio="-"
			limit="$(kv "$line" answered_filter) of $(kv "$line" n) answered by the filter"
			;;
		esac
		add_row "$label" "$(dur "$p50") p50" "$(dur "$best") p50" \
			"$(dur "$p50")" "$(dur "$(kv "$line" p99_us)")" "$goal" "$ratio" "$limit" \
			"$(x_sync "$p50" 71 lat) by p50, $(x_sync "$mean" 71 lat) by mean" \
			"mean $(num "$mean" 2) µs; $(kv "$line" n) gets"
	done
}
get_rows store "$keys"
[ -z "$pg_version" ] || get_rows pg "$pg_keys"

# ------------------------------------------------------------- L3 flush
flush_rows() { # L3 LABEL ROWS
	local l3=$1 label=$2 n=$3 d line lines=() ratio drain_ratio other met
	echo "flush, $label, $n rows:" >&2
	for _ in 1 2; do
		d=$(fresh)
		line=$("$helper" flush "$d" "$l3" "$n") || fail "engine_bench flush $l3 failed"
		rm -rf "$d"
		echo "  $line" >&2
		lines+=("$line")
	done
	# the table gives the run with the lower ratio
	line=$(printf '%s\n' "${lines[@]}" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^ratio=/) { split($i, a, "="); print a[2] "\t" $0 } }' |
		sort -g | head -1 | cut -f2-)
	ratio=$(kv "$line" ratio)
	drain_ratio=$(kv "$line" drain_ratio)
	other=$(printf '%s\n' "${lines[@]}" | grep -vxF "$line" | head -1)
	add_row "L3 flush, $label, $(commas "$n") rows (the lower of 2 runs)" "$(commas "$(num "$(kv "$line" engine_per_s)" 0)") rows/s" \
		"other run: ratio $(num "$(kv "${other:-$line}" ratio)" 2)" "-" "-" ">= 0.8 of the plain insert" \
		"$(num "$ratio" 2) (drain alone $(num "$drain_ratio" 2))" \
		"plain insert $(commas "$(num "$(kv "$line" plain_per_s)" 0)") rows/s" "-" \
		"$(kv "$line" l3_batches) batches; drain alone $(commas "$(num "$(kv "$line" drain_per_s)" 0)") rows/s"
	met=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.8) }')
	goal_lines+=("- L3 flush, $label, $(commas "$n") rows: $(num "$ratio" 2) of the plain insert (drain alone $(num "$drain_ratio" 2)): $(verdict "$met")")
}
flush_rows store "store" "$rows"
if [ -n "$pg_version" ]; then
	flush_rows pg "PostgreSQL" "$pg_rows"
	d=$(fresh)
	steps=$("$helper" pg-steps "$d" "$pg_rows") || fail "engine_bench pg-steps failed"
	rm -rf "$d"
	echo "  $steps" >&2
fi
stop_pg

# ------------------------------------------------------------- MariaDB
mysql_svc=
stop_mysql() {
	[ -z "$mysql_svc" ] || bash "$src/scripts/services.sh" stop "$mysql_svc" >/dev/null 2>&1 || true
	mysql_svc=
}
if env=$(bash "$src/scripts/services.sh" start mysql 2>"$tmp/services-mysql.log"); then
	eval "$env"
	mysql_svc=$SLUICE_SERVICES_DIR
	trap 'stop_mysql; cleanup' EXIT
	mysql_version=$(mariadb --no-defaults -h 127.0.0.1 -P "$SLUICE_MYSQL_PORT" -u sluice -N -B \
		-e 'SELECT VERSION()' 2>/dev/null || echo "?")
	echo "MariaDB $mysql_version at $SLUICE_MYSQL_URL" >&2
	flush_rows mysql "MariaDB" "$mysql_rows"
	stop_mysql
else
	cat "$tmp/services-mysql.log" >&2
	echo "MariaDB did not start (its log above); its row is skipped" >&2
	mysql_version=
fi

# ------------------------------------------------------------- Redis (L2)
# The engine's L2 writer and an L2 hit, next to redis-benchmark against the
# same Redis in the same run: SET pipelined 64 deep (50 clients, its
# default, and one client, as the engine's one writer connection), and
# GET one at a time from one client (its p50 is one round trip).
redis_svc=
stop_redis() {
	[ -z "$redis_svc" ] || bash "$src/scripts/services.sh" stop "$redis_svc" >/dev/null 2>&1 || true
	redis_svc=
}
l2_helper=$build/l2_bench
l2_writes=${BENCH_L2_WRITES:-500000}
l2_gets=${BENCH_L2_GETS:-100000}
if [ -x "$l2_helper" ] && env=$(bash "$src/scripts/services.sh" start redis 2>"$tmp/services-redis.log"); then
	eval "$env"
	redis_svc=$SLUICE_SERVICES_DIR
	trap 'stop_redis; cleanup' EXIT
	redis_version=$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')
	rb() { # redis-benchmark ARGS...: its last summary line
		redis-benchmark -p "$SLUICE_REDIS_PORT" -d 256 -q "$@" 2>/dev/null | tr '\r' '\n' |
			grep -E '^(SET|GET): [0-9]' | tail -1
	}
	set_50=$(rb -t set -n "$l2_writes" -P 64)
	set_1=$(rb -t set -n "$l2_writes" -P 64 -c 1)
	get_1=$(rb -t get -n "$l2_gets" -c 1)
	echo "redis-benchmark: $set_50 | $set_1 | $get_1" >&2
	set_50_rate=$(sed -n 's/^SET: \([0-9.]*\) requests.*/\1/p' <<<"$set_50")
	set_1_rate=$(sed -n 's/^SET: \([0-9.]*\) requests.*/\1/p' <<<"$set_1")
	get_p50_us=$(sed -n 's/.*p50=\([0-9.]*\) msec.*/\1/p' <<<"$get_1" | awk '{ print $1 * 1000 }')
	d=$(fresh)
	line=$("$l2_helper" write "$d" "$SLUICE_REDIS_URL" "$l2_writes" 256) || fail "l2_bench write failed"
	rm -rf "$d"
	echo "  $line" >&2
	rate=$(kv "$line" per_s)
	ratio=$(awk -v a="$rate" -v b="$set_50_rate" 'BEGIN { printf "%.2f", a / b }')
	ratio_1=$(awk -v a="$rate" -v b="$set_1_rate" 'BEGIN { printf "%.2f", a / b }')
	add_row "L2 write, 256 B, $(commas "$l2_writes") (the writer's pipelines)" "$(commas "$(num "$rate" 0)")/s" "-" "-" "-" \
		">= 0.4 of redis-benchmark -P 64 SET" "$ratio ($ratio_1 of one client)" \
		"redis-benchmark -P 64 SET $(commas "$(num "$set_50_rate" 0)")/s (50 clients), $(commas "$(num "$set_1_rate" 0)")/s (1)" "-" \
		"submits alone $(commas "$(num "$(kv "$line" submit_per_s)" 0)")/s"
	met=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.4) }')
	goal_lines+=("- L2 write: $(commas "$(num "$rate" 0)")/s, $ratio of redis-benchmark -P 64 SET with 50 clients, $ratio_1 of it with one: $(verdict "$met")")
	d=$(fresh)
	line=$("$l2_helper" get "$d" "$SLUICE_REDIS_URL" "$l2_gets" 256) || fail "l2_bench get failed"
	rm -rf "$d"
	echo "  $line" >&2
	p50=$(kv "$line" p50_us)
	add_row "get, L2 hit, $(commas "$l2_gets") keys" "-" "-" "$(dur "$p50")" "$(dur "$(kv "$line" p99_us)")" \
		"<= 2 round trips (2x redis-benchmark GET p50)" "$(num "$(awk -v a="$p50" -v b="$get_p50_us" 'BEGIN { print a / b }')" 2)x" \
		"redis-benchmark GET p50 $(dur "$get_p50_us") (1 client)" "-" "$(kv "$line" l2_hits) L2 hits, $(kv "$line" gets_l1) from L1"
	met=$(awk -v a="$p50" -v b="$get_p50_us" 'BEGIN { print (a <= 2 * b) }')
	goal_lines+=("- get, L2 hit: p50 $(dur "$p50") against a round trip of $(dur "$get_p50_us"): $(verdict "$met")")
	stop_redis
else
	cat "$tmp/services-redis.log" >&2 || true
	echo "Redis did not start, or $l2_helper is not built; its rows are skipped" >&2
	redis_version=
fi

load_end=$(cut -d' ' -f1-3 /proc/loadavg)
header="| measurement | median of $repeat | best | p50 | p99 | goal | vs goal | limit or peer, same run | vs sync-engine (50x wanted) | notes |"
rule="|---|---:|---:|---:|---:|---|---|---|---|---|"
echo
echo "$header"
echo "$rule"
printf '%s\n' "${table[@]}"
echo
echo "Goals, as measured:"
printf '%s\n' "${goal_lines[@]}"
[ -z "${steps:-}" ] || echo "PostgreSQL batch of 1000, statement by statement (ms): $steps"
echo "load average at the end: $load_end"

[ "${BENCH_RECORD:-1}" != 0 ] || exit 0
# shellcheck disable=SC2016 # the backquotes are markdown
heading='## Engine (`make bench-engine`)'
cat >"$tmp/intro.md" <<EOF
\`bench/engine_bench.sh BUILD_DIR [SUBMITS]\` (default 1,000,000 submits a
\`memory\` run; the script's header has the other knobs, the top of
\`bench/engine_bench.c\` what each line measures). Keys are 32 bytes,
values 256 random bytes. Submits at \`memory\` make SUBMITS calls in all;
at \`local\` the threads submit for a few seconds. Per-call latency is
clock_gettime around each call (the pair costs about 50 ns, included).
"No L3" is a tier that takes every batch at once, to show the engine's
own cost; every other row has the default store namespace, or PostgreSQL
15 (a throwaway server on loopback, fsync off). The limits are measured
in the same run on the same disk: 1 MiB writes with an fdatasync every
MiB or every 16 MiB (the WAL's physical write rate, as records of 323
bytes), 4 KiB appended and fdatasync'd in a loop (the least a \`local\`
acknowledgement can wait), and two threads handing a turn back and forth
through a mutex and a condition variable (what one wake-up of a blocked
thread costs, which a \`local\` submit pays at least once). The plain
insert is the same rows into the same kind of backend: \`sl_batch_put\`
and \`sl_batch_commit\`, 1000 a commit, into a fresh mutable namespace;
or a binary COPY of 1000 rows a statement into a table with the tier's
columns; or, for MariaDB, a multi-row INSERT of 1000 rows a statement
(each its own transaction) into an InnoDB table with the tier's columns. The backend read alone is a second store handle's
\`sl_store_get\`, or the tier's SELECT by key, prepared. The L2 rows
(\`bench/l2_bench.c\`) write to L2 only, so they time L2's own path, next
to \`redis-benchmark\` against the same throwaway Redis (no persistence) in
the same run: SET pipelined 64 deep, and GET one at a time from one
client, whose p50 is one round trip.
EOF
block=$(
	echo "### Run of $date_utc"
	echo
	echo "Machine: $cores cores, $cpu_model, $mem_gib GiB; disk $fs; revision $revision${pg_version:+; PostgreSQL $pg_version}${mysql_version:+; MariaDB $mysql_version}${redis_version:+; Redis $redis_version}."
	echo "Load average at the start $load_start, at the end $load_end."
	echo
	echo "$header"
	echo "$rule"
	printf '%s\n' "${table[@]}"
	echo
	echo "Goals, as measured:"
	echo
	printf '%s\n' "${goal_lines[@]}"
	if [ -n "${steps:-}" ]; then
		echo
		echo "PostgreSQL, one batch of 1000 statement by statement (\`engine_bench pg-steps\`, means and medians in ms):"
		echo
		echo '```'
		echo "$steps"
		echo '```'
	fi
)
printf '%s\n' "$block" >"$tmp/block.md"
record_results "$results" "$heading" "$tmp/intro.md" "$tmp/block.md"

#!/usr/bin/env bash
# Mirror benchmark (`make bench-mirror`): EVENTS events of about 200 bytes
# mirrored into the default table (no handler, a no-op C handler,
# apply_sql "SELECT 1", and from an NDJSON file), next to a plain binary
# COPY of the same rows into a table of the same shape, on the same
# throwaway PostgreSQL in the same run; then a paced source at RATE
# events a second, each event's latency from its release to its batch's
# COMMIT. The goals: at least 0.4 of the COPY rate, at least 34,500
# events/s (five times 6,900 rows/s), p99 under 250 ms at 1,000 events/s.
#
#   bench/mirror_bench.sh BUILD_DIR [EVENTS]      (default 1,000,000)
#
#   BENCH_EVENTS=N      the same as EVENTS
#   BENCH_REPEAT=R      rounds of the COPY and the three mirrors (default 2;
#                       the table gives the best of each)
#   BENCH_LATENCY_S=S   seconds of the paced run (default 10)
#   BENCH_RATE=R        its events a second (default 1000)
#   BENCH_SEED=S        the values' seed (default in bench/mirror_bench.c)
#   BENCH_RECORD=0      print only; else the table is appended, with the
#                       machine and revision, to bench/RESULTS.md
#
# What each mode of bench/mirror_bench.c measures is at the top of that
# file. Every run starts from an empty database (the earlier run's tables
# dropped, a CHECKPOINT). A COPY that is not counted comes first (it makes
# the WAL segments the later runs recycle), then rounds of the COPY and
# the three mirrors, interleaved; each row gives its best run, so a ratio
# is never flattered by a slow COPY. The CPU columns come from /proc: the benchmark process, the
# server (the postmaster and its children), and what every other process
# on the machine used meanwhile; a run that others slowed says so.
set -euo pipefail

build=${1:?usage: bench/mirror_bench.sh BUILD_DIR [EVENTS]}
events=${2:-${BENCH_EVENTS:-1000000}}
latency_s=${BENCH_LATENCY_S:-10}
repeat=${BENCH_REPEAT:-2}
rate=${BENCH_RATE:-1000}
helper=$build/mirror_bench
src=$(cd "$(dirname "$0")/.." && pwd)
results=$src/bench/RESULTS.md
[ -x "$helper" ] || { echo "mirror_bench.sh: build $helper first (make)" >&2; exit 1; }
BENCH=mirror_bench.sh
source "$src/bench/bench_common.bash"

kv() { # LINE KEY
	sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"
}
commas() {
	sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1"
}
num() { # VALUE DIGITS
	awk -v v="$1" -v d="$2" 'BEGIN { printf "%.*f", d, v }'
}
busy_s() { # the machine's busy CPU seconds so far
	awk -v t="$(getconf CLK_TCK)" '$1 == "cpu" { printf "%.2f", ($2 + $3 + $4 + $7 + $8) / t; exit }' /proc/stat
}

date_utc=$(date -u '+%Y-%m-%dT%H:%M:%SZ')
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
cores=$(nproc)
mem_gib=$(awk '/^MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)
fs=$(df -T "$tmp" | awk 'NR == 2 { print $1 " (" $2 ")" }')
revision=$(git -C "$src" describe --always --dirty 2>/dev/null || echo unknown)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
b0=$(busy_s)
sleep 2
idle_busy=$(awk -v a="$b0" -v b="$(busy_s)" 'BEGIN { printf "%.2f", (b - a) / 2 }')
echo "sluice mirror benchmark, $date_utc"
echo "cpu: $cpu_model, $cores cores, $mem_gib GiB; disk $fs; revision $revision"
echo "load average at the start: $load_start; before the first run other processes kept $idle_busy of $cores cores busy"
echo

start_pg || fail "PostgreSQL did not start"
url=$SLUICE_PG_URL
BENCH_PG_PID=$(head -1 "$SLUICE_SERVICES_DIR/pg/postmaster.pid")
export BENCH_PG_PID
pg_version=$(psql "$url" -X -At -c 'SHOW server_version' 2>/dev/null || echo "?")

table=()
add_row() {
	table+=("| $(printf '%s | ' "$@")")
}
run() { # LABEL MODE ARGS...: the helper's line, echoed, or "failed: REASON"
	local label=$1 out
	shift
	echo "$label:" >&2
	if out=$("$helper" "$@" 2>"$tmp/err"); then
		echo "  $out" >&2
		echo "$out"
	else
		echo "  failed: $(tail -1 "$tmp/err")" >&2
		echo "failed: $(tail -1 "$tmp/err" | tr '|' '/')"
	fi
}
ok() { [[ -n $1 && $1 != failed:* ]]; }
others() { # LINE WALL_S: "0.3 s (8%)", what other processes used during the run
	awk -v b="$(kv "$1" busy_cpu_s)" -v c="$(kv "$1" client_cpu_s)" -v s="$(kv "$1" server_cpu_s)" \
		-v w="$2" -v n="$cores" 'BEGIN { o = b - c - s; if (o < 0) o = 0
			printf "%.1f s (%.0f%%)", o, 100 * o / (w * n) }'
}
others_share() { # LINE WALL_S: the fraction of the machine others used
	awk -v b="$(kv "$1" busy_cpu_s)" -v c="$(kv "$1" client_cpu_s)" -v s="$(kv "$1" server_cpu_s)" \
		-v w="$2" -v n="$cores" 'BEGIN { o = b - c - s; if (o < 0) o = 0; printf "%.3f", o / (w * n) }'
}
max_others=0
note_others() { # LINE WALL_S
	max_others=$(awk -v a="$max_others" -v b="$(others_share "$1" "$2")" 'BEGIN { print (b > a ? b : a) }')
}
per_event() { # LINE COUNT_KEY: the server's CPU µs a row
	awk -v s="$(kv "$1" server_cpu_s)" -v n="$(kv "$1" "$2")" 'BEGIN { printf "%.1f", s * 1e6 / n }'
}
cpu_cells() { # LINE: client, server
	printf '%s\t%s' "$(num "$(kv "$1" client_cpu_s)" 2) s" "$(num "$(kv "$1" server_cpu_s)" 2) s"
}

# ------------------------------------------------------------- the runs
# A COPY first, not counted: it makes the WAL segments that later runs
# recycle and warms the caches, so the first counted run pays no more than
# the last. Then rounds of COPY and the three mirrors, interleaved.
warm=$(run "warm-up, not counted: COPY, $events rows" copy "$url" "$events")
ok "$warm" || fail "the COPY reference failed: $warm"
settings=$(kv "$warm" fsync)
sync_commit=$(kv "$warm" synchronous_commit)
declare -A runs
for round in $(seq 1 "$repeat"); do
	for kind in copy none noop sql; do
		if [ "$kind" = copy ]; then
			line=$(run "round $round: COPY, $events rows" copy "$url" "$events")
		else
			line=$(run "round $round: mirror, $events events, handler $kind" mirror "$url" "$events" "$kind")
		fi
		runs[$kind]+="$line"$'\n'
	done
done
"$helper" ndjson-gen "$tmp/events.ndjson" "$events" >/dev/null || fail "ndjson-gen failed"
ndjson_line=$(run "mirror from NDJSON, $events lines" ndjson "$url" "$tmp/events.ndjson")
rm -f "$tmp/events.ndjson"
latency_line=$(run "paced, $rate events/s for $latency_s s" latency "$url" "$latency_s" "$rate")
stop_pg
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

best() { # KIND KEY: the run with the highest KEY, else the first failure
	local l b='' bv=-1
	while IFS= read -r l; do
		ok "$l" || continue
		if awk -v v="$(kv "$l" "$2")" -v b="$bv" 'BEGIN { exit !(v > b) }'; then
			b=$l
			bv=$(kv "$l" "$2")
		fi
	done <<<"${runs[$1]}"
	if [ -n "$b" ]; then echo "$b"; else grep -m1 . <<<"${runs[$1]}" || echo failed; fi
}
rest() { # KIND KEY BEST_LINE: "other run 123,456/s", the rates of the others
	local l v out=()
	while IFS= read -r l; do
		if [ -z "$l" ] || [ "$l" = "$3" ]; then continue; fi
		if ok "$l"; then v="$(commas "$(num "$(kv "$l" "$2")" 0)")/s"; else v="failed"; fi
		out+=("$v")
	done <<<"${runs[$1]}"
	[ ${#out[@]} -gt 0 ] || return 0
	if [ ${#out[@]} = 1 ]; then echo "other run ${out[0]}"; else echo "other runs $(printf '%s, ' "${out[@]}" | sed 's/, $//')"; fi
}
copy_line=$(best copy rows_per_s)
ok "$copy_line" || fail "the COPY reference failed: $copy_line"
copy_rate=$(kv "$copy_line" rows_per_s)
ratio() { # RATE
	awk -v r="$1" -v c="$copy_rate" 'BEGIN { printf "%.2f", r / c }'
}
declare -A mirror_line
for h in none noop sql; do mirror_line[$h]=$(best "$h" events_per_s); done

# ------------------------------------------------------------- the table
of_runs="best of $repeat"
wall=$(kv "$copy_line" seconds)
note_others "$copy_line" "$wall"
IFS=$'\t' read -r cc sc <<<"$(cpu_cells "$copy_line")"
add_row "plain COPY, binary, one transaction ($of_runs)" \
	"$(commas "$copy_rate") rows/s" "1.00" "-" "-" "$cc" "$sc" "$(others "$copy_line" "$wall")" \
	"$(num "$wall" 2) s in all, one COMMIT; server $(per_event "$copy_line" rows) µs a row; WAL $(num "$(kv "$copy_line" wal_mb)" 0) MB; $(rest copy rows_per_s "$copy_line")"
mirror_row() { # LABEL LINE [NOTE]
	local label=$1 line=$2 wall
	if ! ok "$line"; then
		add_row "$label" "${line:-failed}" "-" "-" "-" "-" "-" "-" "-"
		return
	fi
	wall=$(kv "$line" seconds)
	note_others "$line" "$wall"
	IFS=$'\t' read -r cc sc <<<"$(cpu_cells "$line")"
	add_row "$label" "$(commas "$(kv "$line" events_per_s)") events/s" \
		"$(ratio "$(kv "$line" events_per_s)")" \
		"$(num "$(kv "$line" commit_p50_ms)" 1) ms" "$(num "$(kv "$line" commit_p99_ms)" 1) ms" \
		"$cc" "$sc" "$(others "$line" "$wall")" \
		"$(num "$wall" 2) s; server $(per_event "$line" events) µs an event; WAL $(num "$(kv "$line" wal_mb)" 0) MB; $(commas "$(kv "$line" batches)") batches, max $(num "$(kv "$line" commit_max_ms)" 1) ms${3:+; $3}"
}
mirror_row "mirror, no handler ($of_runs)" "${mirror_line[none]}" \
	"$(! ok "${mirror_line[none]}" || echo "source read $(num "$(kv "${mirror_line[none]}" source_read_s)" 2) s; $(rest none events_per_s "${mirror_line[none]}")")"
mirror_row "mirror, no-op C handler ($of_runs)" "${mirror_line[noop]}" "$(rest noop events_per_s "${mirror_line[noop]}")"
mirror_row "mirror, apply_sql \`SELECT 1\` ($of_runs)" "${mirror_line[sql]}" "$(rest sql events_per_s "${mirror_line[sql]}")"
mirror_row "mirror from NDJSON (file read and parsed in the run), no handler" "$ndjson_line"
if ok "$latency_line"; then
	wall=$(kv "$latency_line" seconds)
	note_others "$latency_line" "$wall"
	IFS=$'\t' read -r cc sc <<<"$(cpu_cells "$latency_line")"
	add_row "paced source, $(commas "$rate") events/s for $latency_s s, no handler: latency of each event, release to COMMIT" \
		"$(commas "$(num "$(kv "$latency_line" loop_events_per_s)" 0)") events/s" "-" \
		"$(num "$(kv "$latency_line" event_p50_ms)" 1) ms" "$(num "$(kv "$latency_line" event_p99_ms)" 1) ms" \
		"$cc" "$sc" "$(others "$latency_line" "$wall")" \
		"max $(num "$(kv "$latency_line" event_max_ms)" 1) ms; $(kv "$latency_line" batches) batches of $(kv "$latency_line" events_per_batch) events, their commit p50 $(num "$(kv "$latency_line" commit_p50_ms)" 1) ms, p99 $(num "$(kv "$latency_line" commit_p99_ms)" 1) ms"
else
	add_row "paced source, $(commas "$rate") events/s" "$latency_line" "-" "-" "-" "-" "-" "-" "-"
fi

# ------------------------------------------------------------- the goals
verdict() { if [ "$1" = 1 ]; then echo "met"; else echo "missed"; fi; }
goal_lines=()
noop=${mirror_line[noop]}
if ok "$noop"; then
	r=$(kv "$noop" events_per_s)
	goal_lines+=("- at least 0.4 of the COPY rate (no-op handler): $(ratio "$r") ($(commas "$r") of $(commas "$copy_rate") rows/s): $(verdict "$(awk -v r="$r" -v c="$copy_rate" 'BEGIN { print (r >= 0.4 * c) }')")")
	goal_lines+=("- at least 34,500 events/s (5 x 6,900; no-op handler): $(commas "$r") events/s: $(verdict "$(awk -v r="$r" 'BEGIN { print (r >= 34500) }')")")
else
	goal_lines+=("- the no-op handler run failed: both rate goals missed")
fi
if ok "$latency_line"; then
	p99=$(kv "$latency_line" event_p99_ms)
	goal_lines+=("- p99 under 250 ms at $(commas "$rate") events/s: $(num "$p99" 1) ms: $(verdict "$(awk -v p="$p99" -v r="$rate" 'BEGIN { print (p < 250 && r >= 1000) }')")")
fi
loaded=$(awk -v m="$max_others" -v i="$idle_busy" -v n="$cores" 'BEGIN { print (m > 0.1 || i / n > 0.1) }')
load_note=
if [ "$loaded" = 1 ]; then
	load_note=" (under load: other processes used up to $(awk -v m="$max_others" 'BEGIN { printf "%.0f%%", 100 * m }') of the machine during a run)"
fi

header="| measurement | rate | vs COPY | latency p50 | latency p99 | client CPU | server CPU | others' CPU (share of the machine) | notes |"
rule="|---|---:|---:|---:|---:|---:|---:|---:|---|"
pg_text="PostgreSQL $pg_version on loopback, fsync $settings, synchronous_commit $sync_commit"
echo
echo "$pg_text; $(commas "$events") events; load average at the end: $load_end$load_note"
echo
echo "$header"
echo "$rule"
printf '%s\n' "${table[@]}"
echo
echo "Goals, as measured:"
printf '%s\n' "${goal_lines[@]}"

[ "${BENCH_RECORD:-1}" != 0 ] || exit 0
# shellcheck disable=SC2016 # the backquotes are markdown
heading='## Mirror (`make bench-mirror`)'
cat >"$tmp/intro.md" <<EOF
\`bench/mirror_bench.sh BUILD_DIR [EVENTS]\` (default 1,000,000 events;
the script's header has the other knobs, the top of
\`bench/mirror_bench.c\` what each line measures). Event i has the key
"ev/" and 17 digits of i + 1 (20 bytes), 180 bytes of pseudo-random
printable text as its value and version i + 1; generation is outside the
timed part. A mirror row is one \`sl_mirror_run\` with the default options
(batches of 1000 events, 1 MiB, 100 ms) from an in-memory source into a
fresh default table; its latency columns are each batch's, from its first
event read to its COMMIT. The plain COPY is the same rows, binary, in one
transaction, into a fresh table of the same shape (primary key included)
on the same server. One COPY that is not counted comes first (it makes
the WAL segments that later runs recycle), then BENCH_REPEAT rounds (2)
of the COPY and the three mirrors, interleaved; each of these rows gives
its best run, the others in its notes. The paced row releases events at
a fixed rate to a following mirror; its latency columns are each
event's, from its release to its batch's COMMIT. CPU is from /proc: the benchmark process, the
server (the postmaster and its children) and, to show load, every other
process meanwhile. The server is a throwaway PostgreSQL 15 on loopback
(\`scripts/services.sh\`), whose fsync setting each run states.
EOF
block=$(
	echo "### Run of $date_utc (N = $events)$load_note"
	echo
	echo "Machine: $cores cores, $cpu_model, $mem_gib GiB; disk $fs; revision $revision; $pg_text."
	echo "Load average at the start $load_start (other processes kept $idle_busy of $cores cores busy just before), at the end $load_end."
	echo
	echo "$header"
	echo "$rule"
	printf '%s\n' "${table[@]}"
	echo
	echo "Goals, as measured:"
	echo
	printf '%s\n' "${goal_lines[@]}"
)
printf '%s\n' "$block" >"$tmp/block.md"
record_results "$results" "$heading" "$tmp/intro.md" "$tmp/block.md"

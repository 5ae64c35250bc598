# Sourced by the benchmark scripts that drive real `sluice serve`
# processes (bench/reconcile_bench.sh, bench/dag_bench.sh). The script sets
# BENCH (its name in messages) and sluice (the binary) first; sourcing
# makes the scratch directory $tmp, removed at exit with the server.
#
#   fail MESSAGE                       report and exit 1
#   now_ms                             wall clock, ms
#   cpu_ms PID                         utime + stime of PID and its threads, ms
#   start_server DIR [serve args...]   sets server (its PID) and port
#   stop_server
#   start_pg                           a throwaway PostgreSQL (scripts/services.sh,
#                                      needs src): its SLUICE_PG_* variables set;
#                                      1, with its log on stderr, if it did not start
#   stop_pg                            (also done at exit)
#   record_results RESULTS HEADING INTRO_FILE BLOCK_FILE
#       appends BLOCK_FILE at the end of section HEADING of RESULTS, which
#       is created with INTRO_FILE's text under the heading if missing

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sluice-${BENCH%.sh}.XXXXXX")
server=
svc=
cleanup() {
	stop_pg
	[ -z "$server" ] || kill "$server" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
	echo "$BENCH: $*" >&2
	exit 1
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

tck=$(getconf CLK_TCK)
# Fields 14 and 15 of /proc/PID/stat, counted after the command name,
# which may hold spaces; clock-tick resolution.
cpu_ms() {
	local stat
	stat=$(cat "/proc/$1/stat") || fail "process $1 is gone"
	stat=${stat##*) }
	awk -v t="$tck" '{ printf "%.0f", ($12 + $13) * 1000 / t }' <<<"$stat"
}

start_server() {
	local dir=$1 deadline=$((SECONDS + 60))
	shift
	: >"$tmp/server.log"
	SLUICE_LOG=info "$sluice" serve -d "$dir" -p 0 "$@" >>"$tmp/server.log" 2>&1 &
	server=$!
	until grep -q 'msg="serving"' "$tmp/server.log"; do
		kill -0 "$server" 2>/dev/null || { cat "$tmp/server.log" >&2; fail "server did not start"; }
		[ "$SECONDS" -lt "$deadline" ] || fail "server did not start within 60 s"
		sleep 0.05
	done
	port=$(sed -n 's/.*msg="serving".* port=\([0-9]*\) .*/\1/p' "$tmp/server.log" | tail -1)
}

stop_server() {
	kill "$server" 2>/dev/null || true
	wait "$server" 2>/dev/null || true
	server=
}

start_pg() {
	local env
	env=$(bash "$src/scripts/services.sh" start pg 2>"$tmp/services.log") || {
		cat "$tmp/services.log" >&2
		return 1
	}
	eval "$env"
	svc=$SLUICE_SERVICES_DIR
}

stop_pg() {
	[ -z "$svc" ] || bash "$src/scripts/services.sh" stop "$svc" >/dev/null 2>&1 || true
	svc=
}

record_results() {
	local results=$1 heading=$2 intro=$3 block=$4
	if ! grep -qxF "$heading" "$results"; then
		{
			echo
			echo "$heading"
			echo
			cat "$intro"
		} >>"$results"
	fi
	# New runs go at the end of the section, before the next "## " heading.
	awk -v heading="$heading" -v block_file="$block" '
		function flush() {
			if (last != "") print ""
			while ((getline line < block_file) > 0) print line
			last = line; done = 1
		}
		$0 == heading { inside = 1 }
		inside && !done && /^## / && $0 != heading { flush(); print "" }
		{ print; last = $0 }
		END { if (!done) flush() }
	' "$results" >"$tmp/RESULTS.md"
	cat "$tmp/RESULTS.md" >"$results"
	echo
	echo "appended to $results"
}

#!/usr/bin/env bash
# A 100,000-entry bootstrap killed with SIGKILL at random moments resumes
# where it stopped and completes:
#   - A holds a dag namespace of 100,000 entries (tests/tools/dag_fill) and
#     serves it in pages of at most 64 KiB (--frame-budget), a few hundred
#     pages in all;
#   - C joins it (approved by A) and runs `sluice sync --once`, killed -9
#     after a random delay, again and again; after each kill the entries C
#     holds may only have grown, and every one of them is one of A's;
#   - a last sync, not killed, pulls exactly the entries C still lacked
#     (nothing is fetched twice), ends in step, and `sluice verify` on C
#     recomputes every id, signature, height, right to write and the state.
# The kill delays come from a seeded generator; the seed is printed.
set -euo pipefail
source "$(dirname "$0")/common.bash"
source "$(dirname "$0")/sync_common.bash"

N=${DAG_BOOTSTRAP_ENTRIES:-100000}
SEED=${SLUICE_SEED:-$$}
RANDOM=$SEED
echo "dag_bootstrap_crash: seed $SEED (rerun with SLUICE_SEED=$SEED), $N entries"
fill="$(dirname "$SLUICE")/dag_fill"
[ -x "$fill" ] || fail "no $fill: build the dag_fill target"

S() { # DIR ARGS...: sluice on the store in DIR
	local dir=$1
	shift
	"$SLUICE" "$@" -d "$dir"
}
entries() { # DIR
	S "$1" dag info --json d | jq .entries
}

A=$TMP/a C=$TMP/c
"$fill" "$A" d "$N" >/dev/null
start_server a "$A" --dag-sync off --frame-budget 65536
expect 0 "$SLUICE" init -d "$C"
T=$(S "$A" ticket d --addr "127.0.0.1:${PORT[a]}")
expect 0 S "$C" join "$T"
expect_in "$OUT" "pending " "join"
expect 0 S "$A" peer approve "${OUT#pending }"
[ "$(entries "$C")" = 1 ] || fail "C holds more than the root before any sync"
total=$(entries "$A") # N and the entry that granted C its role

# ------------------------------------------------ kill -9, again and again
have=1 kills=0 midway=0
while [ "$kills" -lt 12 ]; do
	# The binary itself, not through S: kill -9 must reach the sync, not
	# a subshell that would leave it running.
	"$SLUICE" sync --once d -d "$C" >"$TMP/sync.out" 2>"$TMP/sync.err" &
	pid=$!
	CHILD_PIDS+=("$pid")
	# 0.1 to 1.5 s
	sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.3f", 0.1 + 1.4 * r / 32768 }')"
	if ! kill -9 "$pid" 2>/dev/null; then
		wait "$pid" || true
		have=$(entries "$C")
		break # it finished first
	fi
	wait "$pid" 2>/dev/null || true
	kills=$((kills + 1))
	now=$(entries "$C")
	[ "$now" -ge "$have" ] || fail "kill $kills: C went back from $have to $now entries"
	if [ "$now" -gt "$have" ] && [ "$now" -lt "$total" ]; then midway=$((midway + 1)); fi
	echo "kill $kills: C holds $now of $total entries"
	have=$now
	[ "$have" -lt "$total" ] || break
done
[ "$midway" -ge 2 ] || fail "only $midway kills landed in the middle of the bootstrap"
# Whatever C took is A's: its ids are a subset of A's.
S "$A" dag log --json d | jq -r .id | sort >"$TMP/a.ids"
S "$C" dag log --json d | jq -r .id | sort >"$TMP/c.ids"
[ -z "$(comm -13 "$TMP/a.ids" "$TMP/c.ids")" ] || fail "C holds entries A never wrote"

# ------------------------------------------------- resume and complete
expect 0 S "$C" sync --once d
expect_in "$OUT" "in step (pulled $((total - have))," "the last sync pulls only what C lacked"
[ "$(entries "$C")" = "$total" ] || fail "C holds $(entries "$C") entries, not $total"
[ "$(S "$C" dag tips --json d | jq -r .id)" = "$(S "$A" dag tips --json d | jq -r .id)" ] ||
	fail "C's tips are not A's"
expect 0 S "$C" verify d
[ "$(S "$C" ls --json d | jq -c '[.key, .digest]' | md5sum)" = \
	"$(S "$A" ls --json d | jq -c '[.key, .digest]' | md5sum)" ] || fail "C's state is not A's"
echo "dag_bootstrap_crash: ok ($kills kills, $midway in the middle)"

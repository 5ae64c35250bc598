#!/usr/bin/env bash
# Nothing acknowledged is lost when `sluice engine serve` is killed with
# SIGKILL at random moments under load (seeded; SLUICE_SEED replays a run).
# For each of the `local` and `l3` levels, 20 rounds: the harness writes
# (and deletes) from 4 threads, recording every acknowledged write; the
# server is killed after a random 0.2 to 1.5 s and started again (which
# replays the WAL). After the last round every acknowledged write must be
# there at its version or a newer one, with its bytes, both before and
# after the WAL has drained into L3, and L3 must verify.
set -euo pipefail
. "$(dirname "$0")/common.bash"
. "$(dirname "$0")/engine_common.bash"

seed=${SLUICE_SEED:-$(( $(date +%s) ^ $$ ))}
echo "engine_crash.sh: seed $seed (rerun with SLUICE_SEED=$seed)"
RANDOM=$seed
rounds=${ENGINE_CRASH_ROUNDS:-20}

for ack in local l3; do
	dir="$TMP/$ack"
	mkdir -p "$dir"
	cfg="$dir/engine.toml"
	# small segments, so segments roll and are deleted while it runs
	engine_config "$cfg" "$dir/wal" store "$dir/l3" kv "[batch]" "ms = 20"
	sed -i 's/^\[wal\]$/[wal]\nsegment_mb = 1/' "$cfg"
	log="$dir/acked.log"
	for round in $(seq 1 "$rounds"); do
		start_engine "$cfg"
		"$LOAD" load "$EURL" "$log" --threads 4 --keys 300 --seconds 30 --ack "$ack" \
			--value-size $((64 + RANDOM % 512)) --deletes --give-up-ms 300 >"$dir/load.out" 2>"$dir/load.err" &
		LOAD_PID=$!
		sleep "$((RANDOM % 13 + 2))e-1"
		stop_engine KILL
		wait "$LOAD_PID" || fail "the load harness failed: $(cat "$dir/load.err")"
		LOAD_PID=
	done
	acked=$(wc -l <"$log")
	[ "$acked" -gt 100 ] || fail "$ack: only $acked writes were acknowledged"
	start_engine "$cfg"
	# read back at once: from L1 (replayed from the WAL) or L3
	"$LOAD" check "$EURL" "$log" >"$dir/check1.out" 2>"$dir/check1.err" ||
		fail "$ack: acknowledged writes missing after the restart: $(cat "$dir/check1.out" "$dir/check1.err" | head -20)"
	wait_until 60 flushed "$cfg" || fail "$ack: the WAL did not drain"
	stop_engine TERM
	start_engine "$cfg"
	"$LOAD" check "$EURL" "$log" >"$dir/check2.out" 2>"$dir/check2.err" ||
		fail "$ack: acknowledged writes missing after the drain: $(cat "$dir/check2.out" "$dir/check2.err" | head -20)"
	stop_engine TERM
	expect 0 "$SLUICE" verify -d "$dir/l3" kv
	echo "engine_crash.sh: $ack: $rounds kills, $acked acknowledged writes, $(cat "$dir/check2.out")"
done
echo "engine_crash.sh: ok"

#!/usr/bin/env bash
# `sluice mirror backfill` against a real PostgreSQL, from a local store's
# namespace of 20,000 keys with updates, deletes and keys set again:
#   - plan splits it into 12 ranges, says so again unchanged, refuses
#     another plan under the job's name, and makes the live position;
#   - three `work` processes at once with a 2 s lease; one is killed with
#     SIGKILL while it holds a range it has moved; the other two finish
#     every range, the killed one's taken over from its committed progress;
#   - every range is done once, to its end; apply_sql's count of events,
#     the ranges' rows and the log's events are equal (none applied twice
#     nor lost); the table equals the namespace key by key (version, value
#     digest, tombstones);
#   - `sluice mirror run` goes on where the backfill ended;
#   - a second job whose apply_sql raises for one key: the range that holds
#     it ends dead with its error and attempts, status shows it and exits
#     4, the other ranges are done.
set -euo pipefail
. "$(dirname "$0")/common.bash"
. "$(dirname "$0")/pipeline_common.bash"

command -v python3 >/dev/null || fail "python3 is needed to build the source and the model"
WORKER_PIDS=()
cleanup() {
	local p
	for p in "${WORKER_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	stop_services
	rm -rf "$TMP"
}
trap cleanup EXIT
services_up pg

SEED=${SEED:-$RANDOM}
echo "mirror_backfill.sh: seed $SEED"

# ------------------------------------------------------------- the source
store="$TMP/src"
"$SLUICE" init -d "$store" >/dev/null
"$SLUICE" ns create kv --kind mutable -d "$store" >/dev/null
# files KEYS... under DIR: a value of its key, the round and the seed
python3 - "$TMP/all" "$SEED" <<'PY'
import os, sys
root, seed = sys.argv[1], sys.argv[2]
os.makedirs(root + "/k")
for i in range(20000):
    with open("%s/k/%d" % (root, i), "w") as f:
        f.write("first %d %s" % (i, seed))
PY
"$SLUICE" import -d "$store" kv "$TMP/all" >/dev/null
python3 - "$TMP/upd" "$SEED" <<'PY'
import os, random, sys
root, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
os.makedirs(root + "/k")
for i in rng.sample(range(20000), 3000):
    with open("%s/k/%d" % (root, i), "w") as f:
        f.write("second %d %d" % (i, rng.randrange(10**9)))
PY
"$SLUICE" import -d "$store" kv "$TMP/upd" >/dev/null
for i in $(python3 -c "import random; r = random.Random($SEED + 1); print(' '.join(str(i) for i in r.sample(range(20000), 120)))"); do
	"$SLUICE" del -d "$store" kv "k/$i"
done
# a few deleted keys set again
for i in $(python3 -c "import random; r = random.Random($SEED + 1); print(' '.join(str(i) for i in r.sample(range(20000), 120)[:10]))"); do
	printf 'again %s' "$i" | "$SLUICE" put -d "$store" kv "k/$i"
done
head=$("$SLUICE" root -d "$store" kv --json | jq -r .size)
events() { "$SLUICE" log -d "$store" kv --json | jq -r 'select(.op != "commit") | .loc' | wc -l; }
n_events=$(events)
echo "mirror_backfill.sh: $n_events events over $head positions"

# The namespace as the target table must hold it: "key|version|deleted|sha256",
# the version of a key's last operation (location + 1), deleted keys as
# tombstones without a digest.
model() {
	"$SLUICE" log -d "$store" kv --json >"$TMP/log.json"
	"$SLUICE" ls -d "$store" kv --json >"$TMP/ls.json"
	python3 - "$TMP/log.json" "$TMP/ls.json" <<'PY' | LC_ALL=C sort
import json, sys
last = {}
for line in open(sys.argv[1]):
    op = json.loads(line)
    if op["key"] is not None:
        last[op["key"]] = op
digest = {}
for line in open(sys.argv[2]):
    e = json.loads(line)
    digest[e["key"]] = e["digest"]
for key, op in last.items():
    deleted = op["op"] == "delete"
    print("%s|%d|%s|%s" % (key, op["loc"] + 1, "t" if deleted else "f", "" if deleted else digest[key]))
PY
}
rows_of() {
	sql "SELECT key || '|' || version || '|' || CASE WHEN deleted THEN 't' ELSE 'f' END || '|' ||
	            coalesce(encode(sha256(value), 'hex'), '') FROM $1" | LC_ALL=C sort
}
same_rows() {
	local what=$1 want=$2 got=$3
	if [ "$want" != "$got" ]; then
		diff <(echo "$want") <(echo "$got") | head -20 >&2 || true
		fail "$what: the target table differs from the namespace"
	fi
}

# bconfig FILE TABLE APPLY_SQL_FILE
bconfig() {
	cat >"$1" <<EOF
[source]
type = "node"
dir = "$store"
namespace = "kv"
[postgres]
url = "$SLUICE_PG_URL"
table = "$2"
apply_sql = "$3"
timeout_ms = 10000
[mirror]
batch_size = 100
batch_ms = 20
retry_base_ms = 20
retry_max_ms = 200
EOF
}

# -------------------------------------------------------------- help, usage
expect 0 "$SLUICE" mirror backfill --help
expect_in "$OUT" "Commands:" "mirror backfill --help"
for sub in plan work status; do
	expect 0 "$SLUICE" mirror backfill $sub --help
	expect_in "$OUT" "Usage: sluice mirror backfill $sub" "mirror backfill $sub --help"
done
expect 0 "$SLUICE" mirror --help
expect_in "$OUT" "backfill" "mirror --help lists backfill"
expect 2 "$SLUICE" mirror backfill
expect 2 "$SLUICE" mirror backfill plan -c "$TMP/none.toml" --ranges 3
expect_in "$ERR" "--job NAME is required" "plan without --job"
expect 2 "$SLUICE" mirror backfill plan -c "$TMP/none.toml" --job j
expect_in "$ERR" "either --ranges N or --range-size N" "plan without a split"
expect 2 "$SLUICE" mirror backfill plan -c "$TMP/none.toml" --job j --ranges 2 --range-size 5
expect 2 "$SLUICE" mirror backfill work -c "$TMP/none.toml" --job j --lease-ms 5
expect 1 "$SLUICE" mirror backfill status -c "$TMP/none.toml" --job j

# ------------------------------------------------------- plan, three workers
sql "CREATE TABLE bf_counter (job text PRIMARY KEY, n bigint NOT NULL, missed bigint NOT NULL);
     INSERT INTO bf_counter VALUES ('full', 0, 0), ('poisoned', 0, 0)"
cat >"$TMP/full.sql" <<'EOF'
UPDATE bf_counter SET n = n + (SELECT count(*) FROM sluice_batch),
       missed = missed + (SELECT count(*) FROM sluice_batch WHERE was_missed) WHERE job = 'full';
SELECT pg_sleep(0.01);
EOF
bconfig "$TMP/full.toml" bf_items full.sql

expect 1 "$SLUICE" mirror backfill status -c "$TMP/full.toml" --job full
expect_in "$ERR" "no backfill job full" "status before the plan"
expect 0 "$SLUICE" mirror backfill plan -c "$TMP/full.toml" --job full --ranges 12
expect_in "$OUT" "job full: 12 ranges over [0, $head) of store:" "plan"
expect_in "$OUT" "is made at $head" "plan's handoff"
expect 0 "$SLUICE" mirror backfill plan -c "$TMP/full.toml" --job full --ranges 12
expect_in "$OUT" "exists with this plan" "plan again"
expect 1 "$SLUICE" mirror backfill plan -c "$TMP/full.toml" --job full --ranges 11
expect_in "$ERR" "exists with another plan" "another plan"
[ "$(sql "SELECT count(*) FROM sluice_backfill_range WHERE job = 'full'")" = 12 ] || fail "ranges after the plans"
expect 0 "$SLUICE" mirror backfill status -c "$TMP/full.toml" --job full --json
[ "$(jq -c '[.ranges, .pending, .running, .done, .dead, .from, .to]' <<<"$OUT")" = "[12,12,0,0,0,0,$head]" ] ||
	fail "status after the plan: $OUT"

for w in w1 w2 w3; do
	SLUICE_LOG=info "$SLUICE" mirror backfill work -c "$TMP/full.toml" --job full --worker "$w" \
		--lease-ms 2000 >"$TMP/$w.out" 2>"$TMP/$w.log" &
	WORKER_PIDS+=($!)
done
victim=${WORKER_PIDS[0]}
# w1 holds a range it has moved: kill it there
moved_range() {
	[ -n "$(sql "SELECT id FROM sluice_backfill_range WHERE job = 'full' AND owner = 'w1' AND
	              state = 'pending' AND progress > from_pos AND lease_until > now()")" ]
}
wait_until 60 moved_range || fail "w1 never held a range it had moved: $(cat "$TMP/w1.log")"
kill -9 "$victim"
held=$(sql "SELECT id || ' ' || progress || ' ' || from_pos FROM sluice_backfill_range
            WHERE job = 'full' AND owner = 'w1' AND state = 'pending'")
read -r held_id held_progress held_from <<<"$held"
[ -n "$held_id" ] || fail "w1 held no range when killed"
echo "mirror_backfill.sh: w1 killed holding range $held_id at $held_progress (from $held_from)"
for i in 1 2; do
	wait "${WORKER_PIDS[$i]}" || fail "worker w$((i + 1)) failed: $(cat "$TMP/w$((i + 1)).out" "$TMP/w$((i + 1)).log")"
	expect_in "$(cat "$TMP/w$((i + 1)).out")" "job full: 12 ranges done, 0 dead, 0 pending" "w$((i + 1))'s summary"
done
wait "$victim" 2>/dev/null || true
WORKER_PIDS=()

# every range done once, to its end; the killed one's taken over where it was
[ "$(sql "SELECT count(*) FROM sluice_backfill_range WHERE job = 'full' AND state = 'done'
          AND progress = to_pos AND lease_until IS NULL")" = 12 ] || fail "not every range is done at its end"
[ "$(sql "SELECT string_agg(id || ':' || attempts, ',' ORDER BY id) FROM sluice_backfill_range
          WHERE job = 'full' AND attempts <> 1")" = "$held_id:2" ] ||
	fail "only the killed worker's range is claimed twice: $(sql "SELECT id, attempts, owner FROM sluice_backfill_range WHERE job = 'full' ORDER BY id")"
[ "$(sql "SELECT owner <> 'w1' FROM sluice_backfill_range WHERE job = 'full' AND id = $held_id")" = t ] ||
	fail "the killed worker's range is still its own"
taken=$(cat "$TMP/w2.log" "$TMP/w3.log" | sed -n "s/.*claimed a range.* id=$held_id .*progress=\([0-9]*\) attempt=2.*/\1/p")
[ -n "$taken" ] && [ "$taken" -ge "$held_progress" ] && [ "$taken" -gt "$held_from" ] ||
	fail "range $held_id was not taken over from its progress ($held_progress): '$taken'"
[ "$(sql "SELECT min(from_pos) || ' ' || max(to_pos) || ' ' || sum(to_pos - from_pos) FROM sluice_backfill_range WHERE job = 'full'")" = "0 $head $head" ] ||
	fail "the ranges do not cover [0, $head) once"
# none applied twice, none lost
counted=$(sql "SELECT n || ' ' || missed FROM bf_counter WHERE job = 'full'")
[ "$counted" = "$n_events $n_events" ] || fail "apply_sql counted '$counted', the log holds $n_events events"
[ "$(sql "SELECT sum(rows) FROM sluice_backfill_range WHERE job = 'full'")" = "$n_events" ] ||
	fail "the ranges' rows are not the log's events"
want=$(model)
same_rows "backfill" "$want" "$(rows_of bf_items)"
expect 0 "$SLUICE" mirror backfill status -c "$TMP/full.toml" --job full --json
[ "$(jq -c '[.ranges, .pending, .running, .done, .dead, .rows, .covered, .dead_ranges]' <<<"$OUT")" = \
	"[12,0,0,12,0,$n_events,$head,[]]" ] || fail "status after the work: $OUT"
expect 0 "$SLUICE" mirror backfill status -c "$TMP/full.toml" --job full
expect_in "$OUT" "ranges     12: 0 pending, 0 running, 12 done, 0 dead" "status text"
# a worker started after the end has nothing to do
expect 0 "$SLUICE" mirror backfill work -c "$TMP/full.toml" --job full --no-wait
expect_in "$OUT" "claimed 0 ranges" "a late worker"

# ------------------------------------------------------- the live mirror
expect 0 "$SLUICE" mirror status -c "$TMP/full.toml" --json
[ "$(jq -r .position <<<"$OUT")" = "$head" ] || fail "the live position is not the backfill's end: $OUT"
for i in 1 2 3; do printf 'live %s' "$i" | "$SLUICE" put -d "$store" kv "live/$i"; done
"$SLUICE" del -d "$store" kv k/5
expect 0 "$SLUICE" mirror run -c "$TMP/full.toml"
expect_in "$OUT" "$(($(events) - n_events)) events applied" "the live mirror after the backfill"
same_rows "backfill, then the live mirror" "$(model)" "$(rows_of bf_items)"

# ------------------------------------------------- a range that dies
n_events=$(events)
head=$("$SLUICE" root -d "$store" kv --json | jq -r .size)
bconfig "$TMP/poisoned.toml" bf_poisoned_items poisoned.sql
echo "SELECT 1;" >"$TMP/poisoned.sql" # the key it refuses is chosen once the ranges are
expect 0 "$SLUICE" mirror backfill plan -c "$TMP/poisoned.toml" --job poisoned --ranges 12 --no-handoff
expect_in "$OUT" "the live mirror's position of store:" "plan --no-handoff sees the live position"
# a key whose every operation is in one range, in a middle one
"$SLUICE" log -d "$store" kv --json >"$TMP/log.json"
sql "SELECT id || ' ' || from_pos || ' ' || to_pos FROM sluice_backfill_range WHERE job = 'poisoned' ORDER BY id" >"$TMP/ranges"
read -r bad_range bad_key < <(python3 - "$TMP/log.json" "$TMP/ranges" <<'PY'
import json, sys
ranges = [tuple(map(int, l.split())) for l in open(sys.argv[2])]
def range_of(loc):
    return next(r for r, f, t in ranges if f <= loc < t)
locs = {}
for line in open(sys.argv[1]):
    op = json.loads(line)
    if op["key"] is not None:
        locs.setdefault(op["key"], []).append(op["loc"])
for key, ls in sorted(locs.items()):
    rs = {range_of(l) for l in ls}
    if len(rs) == 1 and 4 <= min(rs) <= 9:
        print(min(rs), key)
        break
PY
)
[ -n "$bad_key" ] || fail "no key lives in one range"
echo "mirror_backfill.sh: apply_sql refuses $bad_key, in range $bad_range"
cat >"$TMP/poisoned.sql" <<EOF
DO \$\$ BEGIN
  IF EXISTS (SELECT 1 FROM sluice_batch WHERE key = '$bad_key') THEN RAISE EXCEPTION 'refusing $bad_key'; END IF;
END \$\$;
UPDATE bf_counter SET n = n + (SELECT count(*) FROM sluice_batch) WHERE job = 'poisoned';
EOF
for w in p1 p2; do
	"$SLUICE" mirror backfill work -c "$TMP/poisoned.toml" --job poisoned --worker "$w" \
		--lease-ms 2000 --max-attempts 3 >"$TMP/$w.out" 2>"$TMP/$w.log" &
	WORKER_PIDS+=($!)
done
for i in 0 1; do
	wait "${WORKER_PIDS[$i]}" || fail "worker p$((i + 1)) failed: $(cat "$TMP/p$((i + 1)).out" "$TMP/p$((i + 1)).log")"
	expect_in "$(cat "$TMP/p$((i + 1)).out")" "job poisoned: 11 ranges done, 1 dead, 0 pending" "p$((i + 1))'s summary"
	expect_in "$(cat "$TMP/p$((i + 1)).log")" "1 ranges of job poisoned are dead" "p$((i + 1)) says so"
done
WORKER_PIDS=()
expect 4 "$SLUICE" mirror backfill status -c "$TMP/poisoned.toml" --job poisoned --json
[ "$(jq -c '[.ranges, .done, .dead, .pending, .running, (.dead_ranges | length), .dead_ranges[0].id, .dead_ranges[0].attempts]' <<<"$OUT")" = \
	"[12,11,1,0,0,1,$bad_range,3]" ] || fail "status of the poisoned job: $OUT"
expect_in "$(jq -r '.dead_ranges[0].error' <<<"$OUT")" "refusing $bad_key" "the dead range's error"
dead_progress=$(jq -r '.dead_ranges[0].progress' <<<"$OUT")
expect 4 "$SLUICE" mirror backfill status -c "$TMP/poisoned.toml" --job poisoned
expect_in "$OUT" "ranges     12: 0 pending, 0 running, 11 done, 1 dead" "status text of the poisoned job"
expect_in "$OUT" "dead range $bad_range " "status text names the dead range"
expect_in "$OUT" "3 attempts" "status text gives the attempts"
expect_in "$OUT" "refusing $bad_key" "status text gives the error"
[ "$(sql "SELECT count(*) FROM bf_poisoned_items WHERE key = '$bad_key'")" = 0 ] || fail "the refused key reached the table"
[ "$(sql "SELECT count(*) FROM sluice_backfill_range WHERE job = 'poisoned' AND state = 'done' AND progress = to_pos")" = 11 ] ||
	fail "the other ranges are not done"
# what the dead range did not apply is what the counter misses
missing=$(python3 -c "
import json
print(sum(1 for l in open('$TMP/log.json') if json.loads(l)['key'] is not None and $dead_progress <= json.loads(l)['loc'] < $(sql "SELECT to_pos FROM sluice_backfill_range WHERE job = 'poisoned' AND id = $bad_range")))")
[ "$(sql "SELECT n FROM bf_counter WHERE job = 'poisoned'")" = "$((n_events - missing))" ] ||
	fail "the poisoned job applied $(sql "SELECT n FROM bf_counter WHERE job = 'poisoned'") events, not $((n_events - missing))"
echo "mirror_backfill.sh: ok"

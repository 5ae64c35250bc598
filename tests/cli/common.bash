# Sourced by tests/cli/*.sh (not a test itself: CTest runs *.sh only).
# Needs SLUICE (the built binary); makes a throwaway directory $TMP that is
# removed on exit, and points SLUICE_DIR at a store inside it.
#
#   run CMD...          run CMD, keep stdout in $OUT, stderr in $ERR, status in $STATUS
#   expect N CMD...     run CMD and fail unless it exits with N
#   fail MESSAGE        report and exit 1
#   wait_until SECONDS CMD...  poll CMD every 0.1 s until it succeeds (1 if it never does)

: "${SLUICE:?set SLUICE to the sluice binary}"
SLUICE_SRC=${SLUICE_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-cli-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
export SLUICE_DIR="$TMP/store"
export SLUICE_LOG=warn
OUT=
ERR=
STATUS=0

wait_until() {
	local seconds=$1
	shift
	local deadline=$((SECONDS + seconds))
	until "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.1
	done
}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

run() {
	set +e
	"$@" >"$TMP/.out" 2>"$TMP/.err"
	STATUS=$?
	set -e
	OUT=$(cat "$TMP/.out")
	ERR=$(cat "$TMP/.err")
}

expect() {
	local want=$1
	shift
	run "$@"
	if [ "$STATUS" -ne "$want" ]; then
		fail "'$*' exited $STATUS, expected $want
stdout: $OUT
stderr: $ERR"
	fi
}

# expect_in TEXT SUBSTRING WHAT: fail unless TEXT contains SUBSTRING.
expect_in() {
	case "$1" in
	*"$2"*) ;;
	*) fail "$3: expected '$2' in: $1" ;;
	esac
}

# The current root of namespace $1.
root_of() {
	"$SLUICE" root --json "$1" | jq -r .root
}

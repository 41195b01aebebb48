# tests/integration/lib.sh - sourced by the integration .test scripts: TAP lines,
# the temp dir, database and cleanup, the config, parleyd's start and stop (under
# PARLEY_TEST_WRAPPER, e.g. valgrind), bounded waits, parleyctl and free ports.
# The scripts run under make check (AM_TESTS_ENVIRONMENT sets top_srcdir and
# PARLEY_BUILDDIR). contrib/lib.sh is for contrib/*.sh: its free_port and die do
# not fit here (a port the kernel hands out; TAP "Bail out!").
# shellcheck shell=bash

# shellcheck disable=SC2034	# top: for the scripts
top=${top_srcdir:-.}
B=${PARLEY_BUILDDIR:-.}
n=0 failed=0 planned=''
T='' DB='' CFG='' log='' pid='' kids=()	# kids: clients in the background, for cleanup
# Under a wrapper (valgrind) parleyd is about ten times slower: waits scale by $slow.
slow=1; [ -n "${PARLEY_TEST_WRAPPER:-}" ] && slow=10
export PARLEY_TEST_TIMEOUT_MS=$((5000 * (slow > 1 ? 4 : 1)))

# ---- TAP ----

# ok NAME: a passing test.
ok() { n=$((n + 1)); echo "ok - $1"; }
# not_ok NAME [TEXT...]: a failing test; each line of each TEXT follows as a comment.
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok - $1"; shift
	for l in "$@"; do sed 's/^/# /' <<<"$l"; done; }
# check NAME CMD...: ok NAME when CMD succeeds, not_ok NAME when it fails.
check() { local name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name"; fi; }
# bail TEXT: stops the script: "Bail out! TEXT", exit 1.
bail() { echo "Bail out! $*"; exit 1; }
# count FILE: adds the TAP lines that a C client wrote to FILE to the totals.
count() {
	n=$((n + $(grep -cE '^(ok|not ok)( |$)' "$1")))
	failed=$((failed + $(grep -cE '^not ok( |$)' "$1")))
}
# tap_plan N: the plan up front; tap_done then leaves it out.
tap_plan() { echo "1..$1"; planned=1; }
# tap_done [N]: on failure parleyd's warnings/errors (or last N lines); the plan; the status.
tap_done() {
	if [ $failed -ne 0 ] && [ -f "$log" ]; then
		if [ -n "${1:-}" ]; then
			echo "# the last lines of the parleyd log:"
			grep -v '^\s*$' "$log" | tail -n "$1" | sed 's/^/#   /'
		else
			echo "# parleyd log:"; grep -E ' (warn|error) ' "$log" | sed 's/^/# /'
		fi
	fi
	[ -n "$planned" ] || echo "1..$n"
	[ $failed -eq 0 ]
}

# ---- set-up and clean-up ----

# need_db: no PARLEY_TEST_PG_BASE: skip (exit 0), or bail out if PARLEY_TEST_REQUIRE_DB=1.
need_db() {
	[ -n "${PARLEY_TEST_PG_BASE:-}" ] && return 0
	[ "${PARLEY_TEST_REQUIRE_DB:-0}" = 1 ] && bail "no PARLEY_TEST_PG_BASE"
	echo "1..0 # SKIP PARLEY_TEST_PG_BASE not set (contrib/test.sh sets it)"
	exit 0
}
# need_exe FILE...: bails out unless each FILE is an executable.
need_exe() { local f; for f in "$@"; do [ -x "$f" ] || bail "$f is missing"; done; }
# setup NAME: $T (/tmp/parley-NAME.*) with $CFG and $log, a new $DB (parley_NAME_PID), trap.
setup() {
	T=$(mktemp -d "/tmp/parley-$1.XXXXXX") || bail "mktemp failed"
	CFG=$T/parley.xml log=$T/parleyd.log DB=parley_$1_$$
	trap cleanup EXIT
	psql "$PARLEY_TEST_PG_BASE dbname=postgres" -qc "DROP DATABASE IF EXISTS $DB" \
		>/dev/null 2>&1
	psql "$PARLEY_TEST_PG_BASE dbname=postgres" -qc "CREATE DATABASE $DB" >/dev/null ||
		bail "cannot create the database $DB"
}
# cleanup: at exit kills $kids and parleyd, drops $DB, removes $T (unless PARLEY_TEST_KEEP=1).
cleanup() {
	local p
	for p in "${kids[@]}"; do kill -9 "$p" 2>/dev/null; done
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	psql "$PARLEY_TEST_PG_BASE dbname=postgres" -qc "DROP DATABASE IF EXISTS $DB" \
		>/dev/null 2>&1
	[ "${PARLEY_TEST_KEEP:-0}" = 1 ] && echo "# kept $T" >&2 || rm -rf "$T"
}
# write_config [LEVEL]: $CFG: <parley>, <log> (debug), <database> of $DB, stdin, </parley>.
write_config() {
	{
		echo '<parley>'
		echo "  <log level=\"${1:-debug}\"/>"
		echo "  <database conninfo=\"$PARLEY_TEST_PG_BASE dbname=$DB\" pool=\"2\"/>"
		cat
		echo '</parley>'
	} >"$CFG"
}
# free_ports N: N ports of 127.0.0.1 the kernel just handed out (nothing listens there).
free_ports() {
	python3 -c 'import socket, sys
s = [socket.socket() for _ in range(int(sys.argv[1]))]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])' "$1"
}

# ---- parleyctl ----

# ctl ARGS...: parleyctl on $CFG.
ctl() { "$B/src/parleyctl" -c "$CFG" "$@"; }
# run ARGS...: parleyctl on $CFG, its output (with stderr) in $out, its exit status in $rc.
run() { out=$(ctl "$@" 2>&1); rc=$?; }
# migrate_db: parleyctl db migrate, or bail out.
migrate_db() { run db migrate; [ $rc -eq 0 ] || bail "parleyctl db migrate failed: $out"; }
# add_user USER HOST PASS: parleyctl register, or bail out.
add_user() { run register "$@"; [ $rc -eq 0 ] || bail "parleyctl register $1 failed: $out"; }

# ---- waiting ----

# poll SECONDS PID CMD...: CMD every 50 ms until it succeeds, SECONDS at most, while PID lives.
poll() {
	local secs=$1 p=$2 i; shift 2
	for ((i = 0; i < secs * 20; i++)); do
		"$@" && return 0
		[ -n "$p" ] && ! kill -0 "$p" 2>/dev/null && { "$@"; return; }
		sleep 0.05
	done
	return 1
}
# gone PID: true when PID is no longer running.
gone() { ! kill -0 "$1" 2>/dev/null; }
# wait_file FILE PATTERN SECONDS [PID]: waits for PATTERN in FILE (poll SECONDS PID grep).
wait_file() { poll "$3" "${4:-}" grep -q -- "$2" "$1" 2>/dev/null; }

# ---- parleyd ----

# readies N: true when $log has N " ready" lines (one a start of parleyd).
readies() { local c; c=$(grep -c ' ready' "$log" 2>/dev/null); [ "${c:-0}" -ge "$1" ]; }
# start_parleyd [N]: parleyd ($pid) into $log until its Nth " ready" (1), or fails, log shown.
start_parleyd() {
	${PARLEY_TEST_WRAPPER:-} "$B/src/parleyd" -c "$CFG" >>"$log" 2>&1 &
	pid=$!
	poll $((10 * slow)) "$pid" readies "${1:-1}" && return 0
	grep -v ' debug ' "$log" | tail -n 20 | sed 's/^/# /'
	return 1
}
# reap_parleyd NAME [CMD...]: waits for parleyd to exit; ok NAME on 0 (valgrind: 99) and CMD.
reap_parleyd() {
	local name=$1 rc; shift
	if ! poll $((10 * slow)) "" gone "$pid"; then
		not_ok "$name" "still running after $((10 * slow)) s"
		kill -9 "$pid"; wait "$pid" 2>/dev/null; pid=
		return
	fi
	wait "$pid"; rc=$?; pid=
	if [ $rc -eq 0 ] && { [ $# -eq 0 ] || "$@"; }; then ok "$name"
	else not_ok "$name" "rc=$rc" "$(grep -v ' debug ' "$log" | tail -n 30)"; fi
}
# stop_parleyd NAME [CMD...]: SIGTERM to parleyd, then reap_parleyd NAME CMD.
stop_parleyd() { kill -TERM "$pid"; reap_parleyd "$@"; }

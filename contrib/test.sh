#!/usr/bin/env bash
# contrib/test.sh - build Parley and run every test against a private PostgreSQL.
#
# Installs what is missing (as root on Debian 12), builds with -Werror, starts a
# throw-away PostgreSQL cluster in a temp dir (as the postgres user), runs the
# unit, integration and fuzz-smoke tests, and removes the cluster. The last line
# is "N passed, N failed"; the exit status is non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
. contrib/lib.sh

need_pkgs $PARLEY_BUILD_PKGS $PARLEY_TEST_PKGS
build_parley "--enable-werror" || exit 1

TMP=$(mktemp -d /tmp/parley-test.XXXXXX)
chmod 755 "$TMP"
# Two clusters: the tests that check reconnection (test_db) restart theirs,
# and the integration tests, running meanwhile (make -j), must not see that.
PG_DIR2=
cleanup() { pg_stop; [ -n "$PG_DIR2" ] && PG_DIR=$PG_DIR2 pg_stop; rm -rf "$TMP"; }
trap cleanup EXIT
PG_FSYNC=off pg_start "$TMP/pg2"
pg_createdb parley_test
PG_DIR2=$PG_DIR
export PARLEY_TEST_PG_RESTARTABLE="$PG_CONNINFO_BASE dbname=parley_test"
cat >"$TMP/pg-restart" <<RESTART
#!/bin/sh
# Used by the tests that check reconnection: restarts their private cluster.
$(declare -f pg_run pg_user)
pg_run "$PG_BIN/pg_ctl -D '$PG_DIR/data' -m fast -w -t 60 restart \
	-l '$PG_DIR/postgres.log'" >/dev/null
RESTART
chmod +x "$TMP/pg-restart"
PG_FSYNC=off pg_start "$TMP/pg"
pg_createdb parley_test

export PARLEY_TEST_PG="$PG_CONNINFO_BASE dbname=parley_test"
export PARLEY_TEST_PG_BASE="$PG_CONNINFO_BASE"
export PARLEY_TEST_PG_RESTART="$TMP/pg-restart"
export PARLEY_TEST_REQUIRE_DB=1
# nodejs and npm are installed above and the npm registry is reachable (as in CI):
# xmppjs.test fails rather than skips when it cannot get @xmpp/client.
export PARLEY_TEST_REQUIRE_NODE=${PARLEY_TEST_REQUIRE_NODE:-1}
# prosody, ejabberd and dnsmasq-base are installed above: s2s_interop.test fails
# rather than skips without them.
export PARLEY_TEST_REQUIRE_INTEROP=${PARLEY_TEST_REQUIRE_INTEROP:-1}
export PARLEY_TEST_TMP="$TMP"
# The integration tests run parleyd under valgrind: a leak or a bad read makes
# it exit 99 at SIGTERM, and the test that checks the exit status fails.
export PARLEY_TEST_WRAPPER="valgrind -q --leak-check=full --errors-for-leak-kinds=definite \
	--error-exitcode=99"

say "make check"
make -j"$(nproc)" check >"$TMP/check.out" 2>&1
check_rc=$?
grep -E '^(PASS|FAIL|ERROR|XPASS|SKIP|XFAIL)' "$TMP/check.out" | grep -v '^PASS' || true
count() { sed -n "s/^# $1: *\\([0-9]*\\)\$/\\1/p" tests/test-suite.log test-suite.log \
	2>/dev/null | head -n 1; }
pass=$(count PASS); fail=$(count FAIL); err=$(count ERROR); xpass=$(count XPASS)
pass=${pass:-0}; fail=$(( ${fail:-0} + ${err:-0} + ${xpass:-0} ))
if [ "$check_rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
	tail -n 30 "$TMP/check.out"
	fail=1	# the build of the tests broke before any ran
fi
if [ "$fail" -ne 0 ]; then
	say "failures (from test-suite.log):"
	sed -n '/^FAIL\|^ERROR\|^not ok/,+20p' test-suite.log 2>/dev/null | head -n 80
fi

say "fuzz smoke"
if make fuzz-smoke FUZZ_SECONDS="${FUZZ_SECONDS:-10}" >"$TMP/fuzz.out" 2>&1; then
	pass=$((pass + 1)); echo "PASS: fuzz-smoke"
else
	fail=$((fail + 1)); echo "FAIL: fuzz-smoke"; tail -n 40 "$TMP/fuzz.out"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

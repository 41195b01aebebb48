#!/usr/bin/env bash
# contrib/quickstart.sh - build Parley and run it on a private PostgreSQL.
#
# Run as root on a fresh Debian 12 machine (it installs what is missing), or as a
# user who already has the packages. Everything it makes lives in ./var: the
# database cluster, a self-signed certificate, the config (var/parley.xml) and
# the logs. Run it again and it reuses them. Ctrl-C stops Parley and the
# database.
set -euo pipefail
cd "$(dirname "$0")/.."
. contrib/lib.sh

HOST=${PARLEY_HOST:-localhost}
VAR=$PWD/var

need_pkgs $PARLEY_BUILD_PKGS
build_parley ""
mkdir -p "$VAR"

pg_start "$VAR/pg"
trap 'say "stopping PostgreSQL"; pg_stop' EXIT
pg_createdb parley
CONNINFO="$PG_CONNINFO_BASE dbname=parley"

make_cert "$VAR" "$HOST"
# The example component's secret (bot.$HOST), made once and kept in var/ like
# the test account's password, so a rewritten config keeps it.
if [ ! -f "$VAR/component-secret.txt" ]; then
	(umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' | head -c 20 \
		>"$VAR/component-secret.txt")
fi
COMPONENT_SECRET=$(cat "$VAR/component-secret.txt")
# Rewritten when the template is newer or the database moved to another port.
if [ ! -f "$VAR/parley.xml" ] || [ contrib/quickstart.xml.in -nt "$VAR/parley.xml" ] ||
	! grep -qF "$CONNINFO" "$VAR/parley.xml"; then
	say "writing $VAR/parley.xml"
	sed -e "s|@HOST@|$HOST|g" -e "s|@VAR@|$VAR|g" -e "s|@CONNINFO@|$CONNINFO|g" \
		-e "s|@MODULEDIR@|$PWD/modules/.libs|g" \
		-e "s|@COMPONENT_SECRET@|$COMPONENT_SECRET|g" \
		contrib/quickstart.xml.in >"$VAR/parley.xml"
fi
src/parleyd --check-config -c "$VAR/parley.xml" >/dev/null
src/parleyctl -c "$VAR/parley.xml" db migrate

# A test account, made once; its password is kept in var/ for the next runs.
if [ ! -f "$VAR/test-user.txt" ]; then
	PASSWORD=$(head -c 12 /dev/urandom | base64 | tr -d '/+=' | head -c 12)
	src/parleyctl -c "$VAR/parley.xml" register test "$HOST" "$PASSWORD" >/dev/null ||
		die "could not create the test account"
	echo "test@$HOST $PASSWORD" >"$VAR/test-user.txt"
	chmod 600 "$VAR/test-user.txt"
fi
read -r TEST_JID TEST_PASSWORD <"$VAR/test-user.txt"

cat <<INFO

  Parley is starting for host $HOST.
    config     $VAR/parley.xml
    database   $CONNINFO
    test user  $TEST_JID  password $TEST_PASSWORD  (self-signed certificate)
    ports      5222 (STARTTLS), 5223 (direct TLS); WebSocket
               ws://$HOST:5280/xmpp-websocket, BOSH http://$HOST:5280/http-bind
    federation 5269 (STARTTLS), 5270 (direct TLS): src/parleyctl -c $VAR/parley.xml s2s
    component  bot.$HOST on 127.0.0.1:5347, secret $COMPONENT_SECRET
    admin      src/parleyctl -c $VAR/parley.xml help
  Ctrl-C stops it.

INFO
set +e
src/parleyd -c "$VAR/parley.xml"

# contrib/lib.sh - shared by quickstart.sh and test.sh: Debian packages, the
# build, and a private PostgreSQL cluster run by a non-root user.
# shellcheck shell=bash

PARLEY_BUILD_PKGS="build-essential autoconf automake libtool pkg-config
	libexpat1-dev libevent-dev libssl-dev libc-ares-dev libpq-dev libidn-dev
	libwslay-dev libhttp-parser-dev postgresql-15 openssl ca-certificates"
PARLEY_TEST_PKGS="libcmocka-dev libstrophe-dev clang valgrind python3 python3-slixmpp
	python3-aiohttp nodejs npm prosody lua-unbound ejabberd dnsmasq-base"
PG_BIN=/usr/lib/postgresql/15/bin

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Installs the Debian packages that are not there yet (needs root for that). One
# that an installed package provides is there: a nodejs built elsewhere provides
# npm, and conflicts with Debian's.
need_pkgs() {
	local missing=() p provided
	provided=$(dpkg-query -W -f='${db:Status-Abbrev}|${Provides}\n' 2>/dev/null |
		sed -n 's/^ii *|//p' | tr ',' '\n' | sed 's/ *(.*//; s/^ *//')
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
			grep -qxF "$p" <<<"$provided" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] || die "missing Debian packages: ${missing[*]} (run as root" \
		"or apt-get install them)"
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# No service starts during the install (invoke-rc.d asks policy-rc.d): the
	# tests start Prosody and ejabberd themselves, and system instances would be
	# left running on 5222/5269.
	local policy=''
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		policy=1
	fi
	apt-get update -qq >/dev/null
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	local rc=$?
	[ -n "$policy" ] && rm -f /usr/sbin/policy-rc.d
	[ $rc -eq 0 ] || die "apt-get install failed"
	for p in prosody ejabberd; do	# nor at the next boot
		[[ " ${missing[*]} " == *" $p "* ]] && update-rc.d "$p" disable >/dev/null 2>&1
	done
	return 0
}

# Builds in the source tree; configure runs again only when needed.
build_parley() {
	local flags="$1"
	if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt configure ]
	then
		say "autogen"
		./autogen.sh >/dev/null 2>&1 || { ./autogen.sh; die "autogen failed"; }
	fi
	if [ ! -f Makefile ] || [ configure -nt Makefile ] ||
		! grep -qF -- "$flags" config.log 2>/dev/null; then
		say "configure $flags"
		# shellcheck disable=SC2086
		./configure --quiet $flags || die "configure failed"
	fi
	say "make"
	make -j"$(nproc)" >/dev/null || make || die "the build failed"
}

# The user that runs PostgreSQL: it refuses root.
pg_user() {
	if [ "$(id -u)" -ne 0 ]; then id -un; else echo postgres; fi
}
pg_run() {
	local u; u=$(pg_user)
	if [ "$(id -u)" -eq 0 ]; then
		su "$u" -s /bin/sh -c "$*"
	else
		sh -c "$*"
	fi
}

free_port() {
	local p=$1
	while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
	echo "$p"
}

# pg_start DIR: a cluster in DIR/data, its socket in DIR, TCP on a free port of
# 127.0.0.1. Sets PG_DIR, PG_PORT, PG_CONNINFO_BASE. Reuses an existing cluster.
pg_start() {
	PG_DIR=$1
	mkdir -p "$PG_DIR"
	if [ "$(id -u)" -eq 0 ]; then
		chown "$(pg_user)" "$PG_DIR" 2>/dev/null
		if ! pg_run "test -w '$PG_DIR'" 2>/dev/null; then
			# A checkout under /root: postgres cannot reach it. Keep the
			# cluster where it can, and leave a link where it was expected.
			local alt
			alt=/var/tmp/parley-pg-$(printf '%s' "$PG_DIR" | md5sum | cut -c1-8)
			mkdir -p "$alt" && chown "$(pg_user)" "$alt" && chmod 700 "$alt"
			[ -L "$PG_DIR" ] || rmdir "$PG_DIR" 2>/dev/null || true
			ln -sfn "$alt" "$PG_DIR"
			say "$(pg_user) cannot reach $PG_DIR; the cluster lives in $alt"
			PG_DIR=$alt
			pg_run "test -w '$PG_DIR'" || die "the user $(pg_user) cannot write $PG_DIR"
		fi
	fi
	if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
		say "initdb $PG_DIR/data"
		pg_run "$PG_BIN/initdb -D '$PG_DIR/data' -A trust -U postgres -E UTF8 \
			--no-sync >'$PG_DIR/initdb.log' 2>&1" || die "initdb failed: $PG_DIR/initdb.log"
	fi
	if pg_run "$PG_BIN/pg_ctl -D '$PG_DIR/data' status" >/dev/null 2>&1; then
		PG_PORT=$(sed -n 4p "$PG_DIR/data/postmaster.pid")
	else
		PG_PORT=$(free_port "${PG_PORT_BASE:-15432}")
		pg_run "$PG_BIN/pg_ctl -D '$PG_DIR/data' -w -t 60 -l '$PG_DIR/postgres.log' \
			-o \"-k '$PG_DIR' -p $PG_PORT -c listen_addresses=127.0.0.1 \
			-c fsync=${PG_FSYNC:-on} -c max_connections=200\" start" >/dev/null ||
			die "PostgreSQL did not start: see $PG_DIR/postgres.log"
	fi
	PG_CONNINFO_BASE="host=$PG_DIR port=$PG_PORT user=postgres"
}

pg_stop() {
	[ -n "${PG_DIR:-}" ] && [ -f "$PG_DIR/data/postmaster.pid" ] || return 0
	pg_run "$PG_BIN/pg_ctl -D '$PG_DIR/data' -m fast -w stop" >/dev/null 2>&1 || true
}

# pg_createdb NAME: creates the database unless it exists.
pg_createdb() {
	psql "$PG_CONNINFO_BASE dbname=postgres" -qAtc \
		"SELECT 1 FROM pg_database WHERE datname = '$1'" | grep -q 1 ||
		psql "$PG_CONNINFO_BASE dbname=postgres" -qc "CREATE DATABASE \"$1\"" >/dev/null
}

# make_cert DIR HOST: a self-signed certificate for HOST, made once.
make_cert() {
	[ -f "$1/$2.crt" ] && return 0
	openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$2" \
		-addext "subjectAltName=DNS:$2,DNS:*.$2" \
		-keyout "$1/$2.key" -out "$1/$2.crt" >/dev/null 2>&1 ||
		die "openssl could not make a certificate"
	chmod 600 "$1/$2.key"
}

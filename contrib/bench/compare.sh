#!/usr/bin/env bash
# contrib/bench/compare.sh - one parley-bench scenario against Parley, Prosody and
# ejabberd on this machine, in turn (A B C A B C ...), then a table of medians
# (min-max over the rounds) with each server's ratio against Parley.
#
# Usage (as root, from a built tree: src/parleyd, src/parleyctl and
# contrib/bench/parley-bench must exist):
#
#   contrib/bench/compare.sh [chat|idle|login|offline|muc] [options] [-- BENCH-OPTIONS]
#
#   chat       (default) N sessions online, 1:1 messages at each rate of --rates
#   idle       N idle authenticated sessions: server RSS/PSS per session
#   login      N unpaced logins: logins/s, server CPU per login
#   offline    N/2 senders store --messages for N/2 offline users, who then log in
#   muc        N sessions join one room (bench@conference.localhost), then
#              groupchat at each rate of --rates, each message to all N
#   upload     XEP-0363: --files files of --size bytes uploaded, then
#              downloaded, by one account (contrib/bench/upload.py, slixmpp):
#              MiB/s, server CPU per MiB, peak memory (-n defaults to 1)
#
#   -n N                 accounts/sessions (default 1000)
#   --rounds R           rounds, each server once per round (default 3)
#   --rates R1,R2,...    chat steps in msgs/s (default 2000,5000,20000); muc
#                        steps in msgs/s to the room (default 20,50,100: times
#                        N deliveries/s)
#   --step-seconds S     chat, muc: seconds per step (default 4)
#   --messages M         offline: messages to store (default 20000)
#   --files F, --size S  upload: F files of S bytes (default 1 of 10485760)
#   --settle S           idle: seconds after the last login before measuring (22)
#   --servers LIST       subset and order of parley,prosody,ejabberd (default all)
#   --tls none|starttls  the c2s transport for every server (default none)
#   --transport LIST     tcp, ws or tcp,ws (default tcp): ws is XMPP over
#                        WebSocket (RFC 7395, plain ws:// on loopback) at
#                        /xmpp-websocket on each server's HTTP port; with
#                        tcp,ws each round runs both on every server (each on
#                        a fresh process) and the table has a row per
#                        transport. Login, idle, chat, offline, muc; --tls none
#   --max-load L         before each run, wait (up to 10 minutes) until the
#                        1-minute load average is below L (e.g. 0.7 on a box
#                        shared with others); each run's JSON records the
#                        load it started at
#   -o FILE              raw results, one JSON object per run (default
#                        /tmp/compare-SCENARIO-DATE.jsonl; the table goes to
#                        the same name with .md)
#   --keep               keep the temp dir (configs, logs, data) at the end
#   -- ...               further options passed to every parley-bench run
#
# What it does: installs prosody and ejabberd from Debian when missing (and
# stops the system instances of both if they run: only the instances started
# here serve), makes a temp dir /tmp/parley-compare.XXXXXX with a config and a
# data dir for each server, a private PostgreSQL cluster for Parley (run by the
# postgres user, as contrib/test.sh does; fsync=off as in BENCHMARKS.md), and
# creates the same N accounts (bench0.., password benchpass) on each: Parley
# with `parleyctl register`, Prosody with `prosodyctl register`, ejabberd by
# in-band registration (XEP-0077) through the bench, because one `ejabberdctl
# register` costs 0.4 s. Then each run gets a freshly started server process
# (as BENCHMARKS.md does; the idle figures need it): Parley as root from the
# build tree, Prosody as user prosody (setpriv), ejabberd as user ejabberd
# (ejabberdctl, its own node name, Erlang distribution on 127.0.0.1). The
# bench gets the server's own pid (parleyd, Prosody's lua5.4, ejabberd's
# beam.smp) for CPU and memory figures. Everything listens on 127.0.0.1 only,
# on free ports from 25222, 26222 and 27222 (below the ephemeral range: the
# bench's many client sockets would take ports there). Each bench run is bounded by
# `timeout`. The servers are stopped by the pids started here, the cluster is
# stopped and the temp dir removed on exit. No timing is asserted: figures only.
#
# Equivalent configuration of the three servers:
#   features     Parley: disco, ping, roster, presence, offline, stream_mgmt,
#                  register (allow-registration)
#                Prosody 0.12: roster, saslauth, disco, ping, offline, smacks,
#                  register (presence, message, iq are core)
#                ejabberd 23.01: mod_disco, mod_ping, mod_roster, mod_offline,
#                  mod_stream_mgmt, mod_register (presence is core)
#   SM (XEP-0198) resumption 300 s and a queue of 5000 stanzas on all three:
#                Parley's stream_mgmt defaults; Prosody smacks_hibernation_time
#                300, smacks_max_queue_size 5000; ejabberd resume_timeout 300,
#                max_ack_queue 5000
#   TLS          --tls none: no STARTTLS offered, SASL on plain TCP (Prosody
#                  c2s_require_encryption = false, allow_unencrypted_plain_auth
#                  = true; ejabberd starttls: false, starttls_required: false;
#                  Parley tls="none"). --tls starttls: STARTTLS required by all,
#                  one self-signed P-256 certificate
#   SASL         SCRAM-SHA-256, 4096 PBKDF2 iterations, passwords stored hashed:
#                  Parley's default (USERS_SCRAM_ITERATIONS 4096); Prosody
#                  internal_hashed, password_hash = "SHA-256",
#                  default_iteration_count = 4096 (its default is 10000);
#                  ejabberd auth_password_format: scram, auth_scram_hash: sha256
#                  (its iteration count is fixed at 4096). The bench is told
#                  --sasl scram-sha-256 and keeps derived keys in a cache
#   storage      Parley: PostgreSQL 15. Prosody and ejabberd: their default
#                  internal storage (Prosody's files, ejabberd's Mnesia)
#   limits       lifted: Parley <limits connections-per-ip auth-attempts> and
#                  mod_offline's offline-queue; Prosody without mod_limits; ejabberd
#                  shaper: none, max_user_offline_messages 100000,
#                  registration_timeout: infinity
#   sockets      TCP_NODELAY on all (Parley and ejabberd set it; Prosody
#                  network_settings nagle = false) and a listen backlog of 1024
#                  (Parley's; Prosody tcp_backlog; ejabberd backlog)
#   WebSocket    (--transport ws) plain ws:// on 127.0.0.1, path /xmpp-websocket,
#                  the same c2s settings behind it:
#                Parley: <listen type="http" tls="none"/> (WebSocket is on by
#                  default on http listeners; ping after idle-timeout)
#                Prosody 0.12: mod_websocket, http_ports, https_ports = { },
#                  consider_websocket_secure = true (the bench is on loopback)
#                ejabberd 23.01: an ejabberd_http listener with
#                  request_handlers "/xmpp-websocket": ejabberd_http_ws (its
#                  c2s options are its defaults: no shaper, no max_stanza_size)
#   logging      warnings only
#   muc          (muc only; the other scenarios run without it) one room on
#                  conference.localhost, made by the first account and
#                  configured with the instant-room form (XEP-0045 §10.1.2; new
#                  rooms are locked until then on Parley and Prosody), temporary,
#                  semi-anonymous, open, unmoderated, history 20 messages, and
#                  archived (XEP-0313), which is Parley's default for a room:
#                Parley: <module name="muc" max-occupants="M" message-rate="100000"
#                  message-burst="100000"/> (defaults: 1024 occupants; 10
#                  messages/s and a burst of 30 per occupant, past which messages
#                  bounce with resource-constraint); its archive goes to
#                  PostgreSQL, whose CPU the figures leave out
#                Prosody 0.12: Component "conference.localhost" "muc" with
#                  muc_mam (muc_log_by_default = true, internal storage;
#                  storage_archive_item_limit 1000000: at its 10000 it would
#                  rewrite the room's archive every 100 messages); core mod_muc
#                  limits neither occupants nor rates (those are community
#                  modules). Like Parley it drops a temporary room's archive
#                  with the room; one left by a run cut short is removed before
#                  the next
#                ejabberd 23.01: mod_muc with max_users M (default 200),
#                  max_users_presence M (default 1000: past it presence is no
#                  longer broadcast), min_message_interval 0,
#                  min_presence_interval 0, room_shaper, user_message_shaper and
#                  user_presence_shaper none (their defaults, written out),
#                  history_size 20, default_room_options max_users M,
#                  moderated false (its default is true), mam true; mod_mam
#                  (Mnesia, where the room's archive outlives the room) with
#                  default: never, so that only the room archives
#                M is 2000, or N if more
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
TOP=$PWD
. contrib/lib.sh

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }

SCEN=chat N='' ROUNDS=3 RATES='' STEP=4 MESSAGES=20000 SETTLE=22 FILES=1 SIZE=10485760
SERVERS=parley,prosody,ejabberd TLS=none TRANSPORT=tcp MAXLOAD='' KEEP=0 OUT='' EXTRA=()
while [ $# -gt 0 ]; do
	case $1 in
	chat|idle|login|offline|muc|upload) SCEN=$1; shift;;
	--files) FILES=${2:-}; shift 2 || break;;
	--size) SIZE=${2:-}; shift 2 || break;;
	-n) N=${2:-}; shift 2 || break;;
	--rounds) ROUNDS=${2:-}; shift 2 || break;;
	--rates) RATES=${2:-}; shift 2 || break;;
	--step-seconds) STEP=${2:-}; shift 2 || break;;
	--messages) MESSAGES=${2:-}; shift 2 || break;;
	--settle) SETTLE=${2:-}; shift 2 || break;;
	--servers) SERVERS=${2:-}; shift 2 || break;;
	--tls) TLS=${2:-}; shift 2 || break;;
	--transport) TRANSPORT=${2:-}; shift 2 || break;;
	--max-load) MAXLOAD=${2:-}; shift 2 || break;;
	-o) OUT=${2:-}; shift 2 || break;;
	--keep) KEEP=1; shift;;
	--) shift; EXTRA=("$@"); break;;
	-h|--help) usage; exit 0;;
	*) echo "compare.sh: unknown argument '$1' (see --help)" >&2; exit 2;;
	esac
done
num() { if [[ $2 =~ ^[0-9]+$ ]] && [ "$2" -gt 0 ]; then return; fi; { echo "compare.sh: $1 wants a" \
	"positive integer, not '$2'" >&2; exit 2; }; }
[ -n "$N" ] || { N=1000; [ "$SCEN" = upload ] && N=1; }
num -n "$N"; num --files "$FILES"; num --size "$SIZE"; num --rounds "$ROUNDS"; num --messages "$MESSAGES"; num --settle "$SETTLE"
[[ $STEP =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "compare.sh: bad --step-seconds" >&2; exit 2; }
[ -n "$RATES" ] || { RATES=2000,5000,20000; [ "$SCEN" = muc ] && RATES=20,50,100; }
[[ $RATES =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "compare.sh: bad --rates" >&2; exit 2; }
case $TLS in none|starttls) ;; *) echo "compare.sh: --tls none|starttls" >&2; exit 2;; esac
[ -z "$MAXLOAD" ] || [[ $MAXLOAD =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
	{ echo "compare.sh: bad --max-load" >&2; exit 2; }
IFS=, read -r -a TRANSPORTS <<<"$TRANSPORT"
for t in "${TRANSPORTS[@]}"; do
	case $t in tcp|ws) ;; *) echo "compare.sh: --transport tcp|ws|tcp,ws" >&2; exit 2;; esac
done
[ ${#TRANSPORTS[@]} -gt 0 ] || { echo "compare.sh: --transport is empty" >&2; exit 2; }
WS=0
[[ ",$TRANSPORT," == *",ws,"* ]] && WS=1
[ "$WS" = 1 ] && [ "$TLS" != none ] && { echo "compare.sh: --transport ws runs over" \
	"plain ws:// only: use --tls none" >&2; exit 2; }
[ "$WS" = 1 ] && [ "$SCEN" = upload ] && { echo "compare.sh: upload has no" \
	"--transport (it is HTTP)" >&2; exit 2; }
IFS=, read -r -a LIST <<<"$SERVERS"
[ ${#LIST[@]} -gt 0 ] || { echo "compare.sh: --servers is empty" >&2; exit 2; }
for s in "${LIST[@]}"; do
	case $s in parley|prosody|ejabberd) ;;
	*) echo "compare.sh: unknown server '$s' (parley, prosody, ejabberd)" >&2; exit 2;;
	esac
done
has() { [[ ",$SERVERS," == *",$1,"* ]]; }

[ "$(id -u)" -eq 0 ] || die "run as root: it installs packages and starts servers as their users"
for f in src/parleyd src/parleyctl contrib/bench/parley-bench; do
	[ -x "$f" ] || die "$f is missing: build first (./configure && make)"
done
[ -x /usr/bin/python3 ] || die "/usr/bin/python3 is missing (apt-get install python3)"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---- packages, and the system instances out of the way ----
need=()
for p in prosody ejabberd; do
	has "$p" || continue
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	say "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# No service starts during the install (invoke-rc.d asks policy-rc.d).
	POLICY_MADE=
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		POLICY_MADE=1
	fi
	apt-get install -y "${need[@]}" >/dev/null 2>&1 ||
		{ apt-get update -qq >/dev/null 2>&1; apt-get install -y "${need[@]}" >/dev/null; }
	rc=$?
	[ -n "$POLICY_MADE" ] && rm -f /usr/sbin/policy-rc.d
	[ $rc -eq 0 ] || die "apt-get install ${need[*]} failed"
	for p in "${need[@]}"; do update-rc.d "$p" disable >/dev/null 2>&1 || true; done
fi
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
pidfile_pid() { [ -r "$1" ] && tr -dc 0-9 <"$1"; }
if has prosody; then
	p=$(pidfile_pid /run/prosody/prosody.pid)
	if alive "$p"; then
		say "stopping the system Prosody (pid $p)"
		timeout 30 service prosody stop >/dev/null 2>&1 || kill "$p" 2>/dev/null
	fi
fi
if has ejabberd; then
	p=$(pidfile_pid /run/ejabberd/ejabberd.pid)
	if alive "$p" || pgrep -u ejabberd -f 'beam.* -s?name ejabberd@' >/dev/null; then
		say "stopping the system ejabberd"
		timeout 60 service ejabberd stop >/dev/null 2>&1 ||
			timeout 60 ejabberdctl stop >/dev/null 2>&1
		alive "$p" && { sleep 3; kill "$p" 2>/dev/null; }
	fi
fi

read -r eph _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null
[ "${eph:-32768}" -gt 27300 ] || say "warning: the ephemeral port range starts at $eph:" \
	"a client socket may take a server's port (25222, 26222, 27222)"

# ---- temp dir, results, cleanup ----
T=$(mktemp -d /tmp/parley-compare.XXXXXX) || die "mktemp failed"
chmod 755 "$T"
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=${OUT:-/tmp/compare-$SCEN-$STAMP.jsonl}
: >"$OUT" || die "cannot write $OUT"
CUR='' CUR_PID='' BENCH_PID='' EPMD_BEFORE=$(pgrep -x epmd)

stop_server() {	# stops the server started last, by its pid
	local pid=$CUR_PID
	[ -n "$CUR" ] || return 0
	if [ "$CUR" = ejabberd ]; then
		timeout 30 "${EJ[@]}" stop >/dev/null 2>&1
	fi
	alive "$pid" && kill "$pid" 2>/dev/null
	for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
	alive "$pid" && kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	CUR='' CUR_PID=''
}
cleanup() {
	trap - EXIT INT TERM
	alive "$BENCH_PID" && kill "$BENCH_PID" 2>/dev/null	# timeout passes it on
	stop_server
	pg_stop
	# epmd, when the ejabberd started here started it and no node is left.
	if [ -z "$EPMD_BEFORE" ] && has ejabberd; then
		local e; e=$(pgrep -x -u ejabberd epmd)
		[ -n "$e" ] && ! epmd -names 2>/dev/null | grep -q '^name ' && kill "$e" 2>/dev/null
	fi
	if [ "$KEEP" = 1 ]; then say "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

HOST=localhost
MUCMAX=$((N > 2000 ? N : 2000))	# occupants a room may hold
wait_listen() {	# port pid seconds: until something listens on the port
	for _ in $(seq 1 $(($3 * 5))); do
		alive "$2" || return 1
		ss -Hltn "sport = :$1" 2>/dev/null | grep -q . && return 0
		sleep 0.2
	done
	return 1
}
if [ "$TLS" = starttls ]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
		-subj "/CN=$HOST" -addext "subjectAltName=DNS:$HOST" \
		-keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1 ||
		die "openssl could not make a certificate"
fi

# ---- Parley ----
setup_parley() {
	local d=$T/parley tls="" muc="" http=""
	mkdir -p "$d"
	PG_FSYNC=off pg_start "$T/pg"
	pg_createdb parley_bench || die "createdb failed"
	P_PORT=$(free_port 25222)
	[ "$TLS" = starttls ] && tls="<tls cert=\"$T/cert.pem\" key=\"$T/key.pem\"/>"
	[ "$SCEN" = muc ] && muc="
<module name=\"muc\" max-occupants=\"$MUCMAX\" message-rate=\"100000\" message-burst=\"100000\"/>"
	P_HTTP=$(free_port 25280) http=""
	[ "$WS" = 1 ] &&
		http="<listen type=\"http\" address=\"127.0.0.1\" port=\"$P_HTTP\" tls=\"none\"/>"
	[ "$SCEN" = upload ] && muc="
<module name=\"http_upload\" storage=\"$d/upload\" url=\"http://127.0.0.1:$P_HTTP/upload\"
 max-file-size=\"4G\" quota=\"0\" daily-quota=\"0\"/>" &&
		http="<listen type=\"http\" address=\"127.0.0.1\" port=\"$P_HTTP\" tls=\"none\"/>"
	P_CFG=$d/parley.xml
	cat >"$P_CFG" <<XML
<parley><log level="warn"/><control socket="$d/ctl.sock"/>
<database conninfo="$PG_CONNINFO_BASE dbname=parley_bench" pool="4"/>
<modules dir="$TOP/modules/.libs"/>$tls
<limits connections-per-ip="100000" auth-attempts="100000"/>
<listen type="c2s" address="127.0.0.1" port="$P_PORT" tls="$TLS"/>$http
<host name="$HOST"><module name="disco"/><module name="ping"/><module name="roster"/>
<module name="presence"/><module name="offline" offline-queue="100000"/>
<module name="register" allow-registration="true" rate="100000"/>
<module name="stream_mgmt"/>$muc</host></parley>
XML
	src/parleyctl -c "$P_CFG" db migrate >"$d/migrate.log" 2>&1 ||
		die "parleyctl db migrate failed: $(tail -n 3 "$d/migrate.log")"
	P_REG=(--register-cmd "$TOP/src/parleyctl -c $P_CFG register {user} {host} {password} >/dev/null")
	P_VER="parley $(src/parleyd --version 2>/dev/null | awk '{ print $2 }')"
	P_VER="$P_VER $(git describe --always --dirty 2>/dev/null)"
}
start_parley() {
	src/parleyd -c "$P_CFG" >>"$T/parley/parleyd.log" 2>&1 &
	CUR=parley CUR_PID=$!
	PORT=$P_PORT WSPORT=$P_HTTP
	wait_listen "$P_PORT" "$CUR_PID" 30 &&
		{ [ "$WS" = 0 ] || wait_listen "$P_HTTP" "$CUR_PID" 30; }
}

# ---- Prosody ----
setup_prosody() {
	local d=$T/prosody mods='"roster"; "saslauth"; "disco"; "ping"; "offline"; "smacks"; "register"'
	local enc=false ssl=""
	mkdir -p "$d/data" "$d/certs"
	R_PORT=$(free_port 26222) R_HTTP=$(free_port 26280)
	[ "$WS" = 1 ] && mods="$mods; \"websocket\""
	if [ "$TLS" = starttls ]; then
		cp "$T/cert.pem" "$T/key.pem" "$d/certs/"
		mods="$mods; \"tls\"" enc=true
		ssl="ssl = { certificate = \"$d/certs/cert.pem\"; key = \"$d/certs/key.pem\" }"
	fi
	R_CFG=$d/prosody.cfg.lua
	cat >"$R_CFG" <<LUA
-- written by contrib/bench/compare.sh
pidfile = "$d/prosody.pid"
data_path = "$d/data"
certificates = "$d/certs"
log = { warn = "$d/prosody.log" }
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_interfaces = { "127.0.0.1" }
c2s_ports = { $R_PORT }
c2s_direct_tls_ports = { }
s2s_ports = { }
modules_enabled = { $mods }
modules_disabled = { "s2s" }
network_settings = { nagle = false; tcp_backlog = 1024 }
c2s_require_encryption = $enc
allow_unencrypted_plain_auth = true
$ssl
authentication = "internal_hashed"
password_hash = "SHA-256"
default_iteration_count = 4096
storage = "internal"
smacks_hibernation_time = 300
smacks_max_queue_size = 5000
allow_registration = true
min_seconds_between_registrations = 0
VirtualHost "$HOST"
LUA
	[ "$SCEN" = muc ] && cat >>"$R_CFG" <<LUA
Component "conference.$HOST" "muc"
	modules_enabled = { "muc_mam" }
	storage_archive_item_limit = 1000000
	muc_log_by_default = true
	muc_room_locking = true
	muc_room_default_history_length = 20
	muc_room_default_moderated = false
LUA
	if [ "$WS" = 1 ] || [ "$SCEN" = upload ]; then
		sed -i "s|^s2s_ports = { }|&\nhttp_ports = { $R_HTTP }\nhttp_interfaces = { \"127.0.0.1\" }\nhttps_ports = { }|" "$R_CFG"
	fi
	[ "$WS" = 1 ] &&
		sed -i "s|^s2s_ports = { }|&\nconsider_websocket_secure = true|" "$R_CFG"
	if [ "$SCEN" = upload ]; then
		cat >>"$R_CFG" <<LUA
Component "upload.$HOST" "http_file_share"
	http_file_share_size_limit = 4*1024*1024*1024
	http_file_share_daily_quota = 1024*1024*1024*1024
	http_file_share_global_quota = 1024*1024*1024*1024
	http_host = "127.0.0.1"
	http_external_url = "http://127.0.0.1:$R_HTTP/"
LUA
		sed -i "s|^s2s_ports = { }|&\nhttp_max_content_size = 4*1024*1024*1024|" "$R_CFG"
	fi
	chown -R prosody:prosody "$d"
	R_REG=(--register-cmd "prosodyctl --config $R_CFG register {user} {host} {password} >/dev/null 2>&1")
	R_VER="prosody $(dpkg-query -W -f='${Version}' prosody)"
}
start_prosody() {
	# The room's archive, if a run ended before the room did (a temporary
	# room's archive goes with the room).
	rm -rf "$T/prosody/data/conference%2e${HOST//./%2e}/muc_log"
	# setpriv execs: $! is the lua5.4 process itself.
	setpriv --reuid=prosody --regid=prosody --init-groups \
		prosody --config "$R_CFG" -F >>"$T/prosody/stdout.log" 2>&1 &
	CUR=prosody CUR_PID=$!
	PORT=$R_PORT WSPORT=$R_HTTP
	wait_listen "$R_PORT" "$CUR_PID" 30 &&
		{ [ "$WS" = 0 ] || wait_listen "$R_HTTP" "$CUR_PID" 30; }
}

# ---- ejabberd ----
setup_ejabberd() {
	local d=$T/ejabberd tls=false
	mkdir -p "$d/db" "$d/logs"
	E_PORT=$(free_port 27222) E_HTTP=$(free_port 27280)
	cp /etc/ejabberd/inetrc "$d/" 2>/dev/null ||
		printf '{lookup,["file","native"]}.\n{host,{127,0,0,1}, ["localhost"]}.\n' >"$d/inetrc"
	[ "$TLS" = starttls ] && { tls=true; cp "$T/cert.pem" "$T/key.pem" "$d/"; }
	cat >"$d/ejabberdctl.cfg" <<CFG
ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0"
EJABBERD_CONFIG_PATH=$d/ejabberd.yml
EJABBERD_PID_PATH=$d/ejabberd.pid
INET_DIST_INTERFACE=127.0.0.1
ERL_EPMD_ADDRESS=127.0.0.1
CFG
	cat >"$d/ejabberd.yml" <<YML
# written by contrib/bench/compare.sh
hosts: ["$HOST"]
loglevel: warning
log_rotate_count: 0
$([ "$TLS" = starttls ] && echo "certfiles: [\"$d/cert.pem\", \"$d/key.pem\"]")
auth_method: [internal]
auth_password_format: scram
auth_scram_hash: sha256
registration_timeout: infinity
listen:
  - port: $E_PORT
    ip: "127.0.0.1"
    module: ejabberd_c2s
    backlog: 1024
    starttls: $tls
    starttls_required: $tls
    shaper: none
    access: c2s
    max_stanza_size: 262144
$({ [ "$SCEN" = upload ] || [ "$WS" = 1 ]; } && cat <<HTTP
  - port: $E_HTTP
    ip: "127.0.0.1"
    module: ejabberd_http
    request_handlers:
$([ "$SCEN" = upload ] && echo "      /upload: mod_http_upload")
$([ "$WS" = 1 ] && echo "      /xmpp-websocket: ejabberd_http_ws")
HTTP
)
access_rules:
  c2s:
    allow: all
  register:
    allow: all
shaper_rules:
  max_user_sessions: 10
  max_user_offline_messages: 100000
modules:
  mod_disco: {}
  mod_ping: {}
  mod_roster: {}
  mod_offline:
    access_max_user_messages: max_user_offline_messages
  mod_stream_mgmt:
    resume_timeout: 300
    max_ack_queue: 5000
  mod_register:
    access: register
    ip_access: all
$([ "$SCEN" = upload ] && cat <<UPLOAD
  mod_http_upload:
    hosts: ["upload.$HOST"]
    docroot: "$d/upload"
    put_url: "http://127.0.0.1:$E_HTTP/upload"
    max_size: 4294967296
    thumbnail: false
    access: all
UPLOAD
)
$([ "$SCEN" = muc ] && cat <<MUC
  mod_mam:
    default: never
  mod_muc:
    host: "conference.$HOST"
    access: all
    access_create: all
    max_users: $MUCMAX
    max_users_presence: $MUCMAX
    min_message_interval: 0
    min_presence_interval: 0
    room_shaper: none
    user_message_shaper: none
    user_presence_shaper: none
    history_size: 20
    default_room_options:
      max_users: $MUCMAX
      moderated: false
      persistent: false
      mam: true
MUC
)
YML
	chown -R ejabberd:ejabberd "$d"
	EJ_NODE=parleycmp$$@localhost
	# ejabberdctl run by root goes through su, whose PAM session (pam_limits)
	# would give the node 1024 descriptors: run it as ejabberd directly, so
	# that it inherits this script's limit. Its HOME holds the Erlang cookie.
	EJ=(setpriv --reuid=ejabberd --regid=ejabberd --init-groups
		env HOME="$(getent passwd ejabberd | cut -d: -f6)"
		ejabberdctl --config-dir "$d" --logs "$d/logs" --spool "$d/db" --node "$EJ_NODE")
	E_REG=(--ibr)
	E_VER="ejabberd $(dpkg-query -W -f='${Version}' ejabberd)"
}
start_ejabberd() {
	local d=$T/ejabberd
	rm -f "$d/ejabberd.pid"
	CUR=ejabberd CUR_PID=''
	PORT=$E_PORT WSPORT=$E_HTTP
	timeout 60 "${EJ[@]}" start >>"$d/start.log" 2>&1 || return 1
	for _ in $(seq 1 300); do
		CUR_PID=$(pidfile_pid "$d/ejabberd.pid")
		[ -n "$CUR_PID" ] && break
		sleep 0.2
	done
	# The pid file is written by ejabberd itself: the beam.smp process.
	[ -n "$CUR_PID" ] && wait_listen "$E_PORT" "$CUR_PID" 60 || return 1
	[ "$WS" = 0 ] || wait_listen "$E_HTTP" "$CUR_PID" 60 || return 1
	timeout 90 "${EJ[@]}" started >/dev/null 2>&1
}

start() { "start_$1"; }
version() { case $1 in parley) echo "$P_VER";; prosody) echo "$R_VER";;
	ejabberd) echo "$E_VER";; esac; }

# ---- the bench ----
nsteps=$(tr ',' '\n' <<<"$RATES" | wc -l)
case $SCEN in
chat) BT=$((N / 400 + nsteps * (${STEP%.*} + 3) + 60))
	SARGS=(-s chat --rates "$RATES" --step-seconds "$STEP");;
idle) BT=$((N / 400 + 3 + SETTLE + 60))
	SARGS=(-s idle --hold 3 --settle "$SETTLE");;
login) BT=$((N / 100 + 60))
	SARGS=(-s login --login-rate 0);;
offline) BT=$((N / 100 + MESSAGES / 200 + 120))
	SARGS=(-s offline --messages "$MESSAGES" --quiet 20);;
upload) BT=$((FILES * SIZE / 1048576 + 120)) SARGS=();;
muc) # The joins cost N^2 presences; a server that cannot keep up with the
	# join rate answers the last joiners late (Prosody here: about 120 us of
	# CPU a presence, so minutes for N=1000). Waits, not failures.
	BT=$((N / 200 + N * N / 5000 + nsteps * (${STEP%.*} + 3) + 60))
	SARGS=(-s muc --rates "$RATES" --step-seconds "$STEP"
		--login-timeout $((N * N / 5000 + 30)));;
esac
COMMON=(-a 127.0.0.1 -h "$HOST" --tls "$TLS" -n "$N" --sasl scram-sha-256
	--scram-cache "$T/scram.cache")

# bench NAME OUTFILE ARGS...: one bounded run; its JSON (or an error object).
bench() {
	local name=$1 out=$2 bt=$3; shift 3
	timeout -k 5 $((bt + 30)) contrib/bench/parley-bench "${COMMON[@]}" -p "$PORT" \
		--timeout "$bt" "$@" >"$out.raw" 2>"$T/$name.err" &
	BENCH_PID=$!	# waited for in the background, so that a signal ends the wait
	wait "$BENCH_PID"
	local rc=$?
	BENCH_PID=''
	python3 -c 'import json, sys
text, d = open(sys.argv[2]).read(), None
for cand in [text] + text.splitlines()[::-1]:
    try:
        d = json.loads(cand)
        if isinstance(d, dict):
            break
    except ValueError:
        pass
if not isinstance(d, dict):
    d = {"ok": False, "error": "no JSON from parley-bench (exit %s)" % sys.argv[1]}
d["bench_exit"] = int(sys.argv[1])
print(json.dumps(d))' "$rc" "$out.raw" >"$out"
}
# upload_run OUTFILE: contrib/bench/upload.py against the current server.
upload_run() {
	local py=python3
	[ -x /usr/bin/python3 ] && py=/usr/bin/python3
	if timeout -k 5 "$BT" "$py" contrib/bench/upload.py --jid "bench0@$HOST" \
		--password benchpass --service "upload.$HOST" --server "127.0.0.1:$PORT" \
		--pid "$CUR_PID" --files "$FILES" --size "$SIZE" >"$1.raw" 2>"$1.err"; then
		$py -c 'import json, sys; d = json.load(open(sys.argv[1])); d["ok"] = True
print(json.dumps(d))' "$1.raw" >"$1"
	else
		$py -c 'import json, sys
print(json.dumps({"ok": False, "error": (open(sys.argv[1]).read().strip().splitlines()
      or ["upload.py failed"])[-1]}))' "$1.err" >"$1"
	fi
}
jget() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' "$@"; }

# ---- set-up: configs, accounts ----
READY=()
for s in "${LIST[@]}"; do
	"setup_$s"
	say "$s: creating $N accounts ($(version "$s"))"
	if ! start "$s"; then
		say "$s did not start: skipped (logs in $T/$s, see --keep)"
		stop_server
		continue
	fi
	case $s in parley) reg=("${P_REG[@]}");; prosody) reg=("${R_REG[@]}");;
		ejabberd) reg=("${E_REG[@]}");; esac
	bench "setup-$s" "$T/setup-$s.json" $((N / 2 + 120)) -s login --login-rate 200 \
		--pid "$CUR_PID" "${reg[@]}"
	stop_server
	ok=$(jget "$T/setup-$s.json" logins_ok)
	if [ "$ok" != "$N" ]; then
		say "$s: only ${ok:-0} of $N accounts log in: skipped ($(jget "$T/setup-$s.json" error))"
		tail -n 3 "$T/setup-$s.err" >&2
		continue
	fi
	READY+=("$s")
done
[ ${#READY[@]} -gt 0 ] || die "no server is ready"

load1() { cut -d' ' -f1 /proc/loadavg; }
quiet() {	# --max-load: until the 1-minute load is below it (10 minutes at most)
	[ -n "$MAXLOAD" ] || return 0
	local i
	for i in $(seq 1 120); do
		awk -v l="$(load1)" -v m="$MAXLOAD" 'BEGIN { exit !(l < m) }' && return 0
		[ "$i" = 1 ] && say "waiting for the load ($(load1)) to fall below $MAXLOAD"
		sleep 5
	done
	say "the load is still $(load1): running anyway"
}

# ---- the rounds: A B C A B C ... (each server over each transport) ----
for r in $(seq 1 "$ROUNDS"); do
	for s in "${READY[@]}"; do
	for t in "${TRANSPORTS[@]}"; do
		say "round $r/$ROUNDS: $SCEN, $s over $t"
		o=$T/run-$s-$t-$r.json
		quiet
		L0=$(load1)
		if start "$s"; then
			sleep 2	# let the fresh process settle before the baseline
			targs=()
			[ "$t" = ws ] && targs=(-p "$WSPORT" --ws /xmpp-websocket)
			if [ "$SCEN" = upload ]; then
				upload_run "$o"
			else
				bench "run-$s-$t-$r" "$o" "$BT" --no-register --pid "$CUR_PID" \
					"${targs[@]}" "${SARGS[@]}" "${EXTRA[@]}"
			fi
		else
			echo '{"ok": false, "error": "the server did not start"}' >"$o"
		fi
		stop_server
		grep -q '"ok": true' "$o" || { printf '  %s\n' "$(jget "$o" error)" >&2
			tail -n 3 "$T/run-$s-$t-$r.err" >&2; }
		python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
e = {"server": sys.argv[2], "version": sys.argv[3], "round": int(sys.argv[4]),
     "compare_scenario": sys.argv[5], "compare_transport": sys.argv[6],
     "load_1min_at_start": float(sys.argv[7])}
e.update(d)
print(json.dumps(e))' "$o" "$s" "$(version "$s")" "$r" "$SCEN" "$t" "$L0" >>"$OUT"
		sleep 1
	done
	done
done

# ---- the table ----
TABLE=${OUT%.jsonl}.md
python3 - "$OUT" "$SCEN" "$N" "$TLS" "$TRANSPORT" <<'PY' | tee "$TABLE"
import json, statistics, sys

path, scen, n, tls, transports = sys.argv[1:6]
rows = [json.loads(l) for l in open(path) if l.strip()]
# With more than one transport, or only ws, each figure's name says which.
label = (lambda r: "") if transports == "tcp" else \
    (lambda r: r.get("compare_transport", "tcp") + " ")
servers, versions = [], {}
for r in rows:
    if r["server"] not in servers:
        servers.append(r["server"])
        versions[r["server"]] = r.get("version", "")
if "parley" in servers:
    servers.remove("parley")
    servers.insert(0, "parley")
rounds = max([r["round"] for r in rows] or [0])

def figures(r):
    """(row name, value) pairs of one run; None when the figure is missing."""
    out = []
    if scen == "chat":
        for s in r.get("steps", []):
            k = "%s/s" % format(s["rate"], ",")
            flag = "" if s.get("rate_reached", True) and not s.get("bench_bottleneck") else "!"
            flag += "~" if s.get("fell_behind") else ""
            out += [(k + " delivered/s", s.get("delivered_per_s"), flag),
                    (k + " p99 ms", s["latency_us_p99"] / 1000.0
                     if s.get("latency_us_p99") is not None else None, flag),
                    (k + " CPU s/100k msgs", s.get("server_cpu_s_per_100k"), flag)]
        if r.get("ok"):
            out += [("lost", r.get("lost"), ""), ("duplicates", r.get("duplicates"), "")]
    elif scen == "idle":
        out += [("RSS KiB/session", r.get("rss_kib_per_session"), ""),
                ("PSS KiB/session", r.get("pss_kib_per_session"), "")]
    elif scen == "login":
        flag = "!" if r.get("login_bench_bottleneck") else ""
        out += [("logins/s", r.get("logins_per_s"), flag),
                ("CPU ms/login", r.get("login_server_cpu_ms_per_login"), flag)]
    elif scen == "muc":
        flag = "!" if r.get("join_bench_bottleneck") else ""
        out += [("joins/s", r.get("joins_per_s"), flag),
                ("join ms p99", r.get("join_ms_p99"), flag),
                ("join CPU s", r.get("join_server_cpu_s"), flag)]
        for s in r.get("steps", []):
            k = "%s msgs/s" % format(s["rate"], ",")
            flag = "" if s.get("rate_reached", True) and not s.get("bench_bottleneck") else "!"
            flag += "~" if s.get("fell_behind") else ""
            out += [(k + " deliveries/s", s.get("delivered_per_s"), flag),
                    (k + " p99 ms", s["latency_us_p99"] / 1000.0
                     if s.get("latency_us_p99") is not None else None, flag),
                    (k + " CPU s/100k deliveries", s.get("server_cpu_s_per_100k"), flag)]
        if r.get("ok"):
            out += [("lost", r.get("lost"), ""), ("out of order", r.get("out_of_order"), ""),
                    ("bounced", r.get("bounced"), "")]
    elif scen == "upload":
        out += [("PUT MiB/s", r.get("put_mib_s"), ""), ("GET MiB/s", r.get("get_mib_s"), ""),
                ("CPU s/MiB PUT", r.get("server_cpu_s_per_mib_put"), ""),
                ("CPU s/MiB GET", r.get("server_cpu_s_per_mib_get"), ""),
                ("peak RSS growth KiB", (r["server_hwm_kb_after"] - r["server_hwm_kb_before"])
                 if r.get("ok") else None, "")]
    elif scen == "offline":
        out += [("stored/s", r.get("store_rate"), ""),
                ("flushed/s", r.get("flush_rate"), ""),
                ("duplicates", r.get("duplicates"), ""),
                ("missing", r.get("missing"), "")]
    return out

vals, names, flags = {}, [], set()
for r in rows:
    for name, v, flag in figures(r):
        name = label(r) + name
        if name not in names:
            names.append(name)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            vals.setdefault((name, r["server"]), []).append(float(v))
            for f in flag:
                flags.add((name, r["server"], f))

def fmt(x):
    if x == 0:
        return "0"
    if abs(x) < 0.1:
        return "%.4f" % x
    if abs(x) >= 100:
        return format(round(x), ",")
    if abs(x) >= 10:
        return "%.1f" % x
    return "%.2f" % x

def cell(name, s):
    vs = vals.get((name, s))
    if not vs:
        return "-"
    m = statistics.median(vs)
    c = fmt(m) if len(vs) == 1 else "%s (%s-%s)" % (fmt(m), fmt(min(vs)), fmt(max(vs)))
    if len(vs) < rounds:
        c += " [%d/%d runs]" % (len(vs), rounds)
    for f in "!~":
        if (name, s, f) in flags:
            c += " " + f
    return c

def ratio(name, s):
    a, b = vals.get((name, s)), vals.get((name, "parley"))
    if not a or not b or statistics.median(b) == 0:
        return "-"
    return "%.2fx" % (statistics.median(a) / statistics.median(b))

others = [s for s in servers if s != "parley"] if "parley" in servers else []
print("%s, n=%s, tls=%s, transport=%s, %d round(s): median (min-max)"
      % (scen, n, tls, transports, rounds))
print("servers: " + "; ".join("%s = %s" % (s, versions[s]) for s in servers))
print()
head = ["figure"] + servers + ["%s/parley" % s for s in others]
print("| " + " | ".join(head) + " |")
print("|" + " --- |" * len(head))
for name in names:
    print("| " + " | ".join([name] + [cell(name, s) for s in servers]
                            + [ratio(name, s) for s in others]) + " |")
print()
if others:
    print("x/parley: that server's median over Parley's (rates: higher is better; "
          "latency, CPU, memory: lower is better).")
if any(f[2] == "!" for f in flags):
    print("!: in at least one run the bench was the bottleneck or could not reach the "
          "rate: that figure measures the bench.")
if scen in ("chat", "muc"):
    print("~: the server fell behind at that step in at least one run (delivered < 95% "
          "or p99 > 1 s); the bench stops there, so later steps are missing and the "
          "messages still queued count as lost.")
for r in rows:
    if not r.get("ok"):
        print("failed: %s %sround %s: %s" % (r["server"], label(r), r["round"],
                                             r.get("error", "?")))
    elif scen == "offline" and r.get("ack_method") != "xep-0198":
        print("note: %s %sround %s: acked by %s, not XEP-0198: stored/s is a routing rate"
              % (r["server"], label(r), r["round"], r.get("ack_method")))
    elif r.get("memory_note"):
        print("note: %s %sround %s: %s" % (r["server"], label(r), r["round"],
                                           r["memory_note"]))
PY
say "raw results: $OUT, table: $TABLE"

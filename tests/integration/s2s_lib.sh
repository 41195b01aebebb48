# tests/integration/s2s_lib.sh - federation (s2s) tests on loopback: a test CA and
# certificates, a private DNS server (dnsmasq) with the A and SRV records of the test
# domains, and Prosody and ejabberd instances started by the test, each as its own
# user, with its config, data and logs in $T. Sourced after lib.sh.
#
# Why so: s2s needs DNS (SRV _xmpp-server._tcp, then A) and certificates that name the
# domains, and a test must not touch the machine's /etc/resolv.conf or /etc/hosts. So
# every server is pointed at our dnsmasq by its own configuration:
#   Prosody 0.12 (with lua-unbound: net.adns is net.unbound): unbound = { resolvconf =
#     false, hoststxt = false, forward = "127.0.0.1@PORT" } in prosody.cfg.lua, and the
#     option local-zone "test. transparent" (libunbound answers .test itself, NXDOMAIN,
#     as RFC 6761 allows, unless told to pass it on)
#   ejabberd 23.01: the SRV records through Erlang's inet_res, told by ERL_INETRC
#     (ejabberdctl sets it to the config dir's inetrc): {resolv_conf, ""}, {hosts_file,
#     ""}, {nameserver, {127,0,0,1}, PORT}, {lookup, [file, dns]} (without resolv_conf
#     "" the resolv.conf servers win); but the A records of the SRV targets through
#     libc (p1_xmpp's xmpp_stream_out:a_lookup calls net:getaddrinfo), which no option
#     redirects: so ejabberd runs in a private mount namespace (unshare -m) where
#     /etc/hosts is a bind mount of $T/hosts, the test domains' addresses
#   Parley: <dns servers="127.0.0.1:PORT"/> (c-ares)
# Each domain (*.test: dnsmasq --local=/test/ answers NXDOMAIN for the rest of .test
# and refuses the rest of the world) has its own 127.0.0.x and its c2s and s2s ports are free ports
# from the kernel, published by SRV records (_xmpp-server._tcp and _xmpp-client._tcp),
# so that tests running at the same time never clash and a server that ignored the SRV
# port or the A record would fail.
#
# Use:
#   s2s_need prosody ejabberd      skip (or bail with PARLEY_TEST_REQUIRE_INTEROP=1)
#   s2s_init NAME                  $T (unless setup made it), the trap, the DNS port
#   s2s_ca DOMAIN...               the CA and each domain's certificates in $S2S_CA
#   s2s_dns                        dnsmasq on 127.0.0.1:$S2S_DNS_PORT
#   s2s_prosody NAME DOMAIN IP [secure|dialback [ca|xmpp|self|wrong|none]]
#   s2s_ejabberd NAME DOMAIN IP [secure|dialback [ca|self|wrong]]
#                                  (start in the background: start them all, then wait)
#   s2s_wait NAME...               until each listens (ejabberd: then its users)
#   s2s_check [--expect-fail] NAME_A NAME_B LABEL     s2s_check.py, its TAP lines counted
#   s2s_stop NAME..., s2s_logs NAME   (everything is stopped at exit)
#   s2s_dns_query NAME A|SRV       what our dnsmasq answers
# Every server gets the users $S2S_USERS (alice bob) with the password $S2S_PASS.
# Set before starting a server: S2S_LOG_LEVEL (debug; the bench uses warn), and config
# extras: S2S_PROSODY_MODULES (more of modules_enabled, e.g. '"register";'),
# S2S_PROSODY_CFG (global Lua lines), S2S_EJABBERD_YML (top-level YAML) and
# S2S_EJABBERD_MODULES (lines under modules:, indented by two), S2S_PARLEY_MODULES
# (more <module/> elements in the host).
# s2s_parley NAME DOMAIN IP [AUTH [CERT]] starts a parleyd the same way (a database
# each: needs PARLEY_TEST_PG_BASE).
# shellcheck shell=bash
# shellcheck disable=SC2154,SC2034	# lib.sh has T, DB, kids, top, slow and tap_done's log

S2S_USERS=${S2S_USERS:-"alice bob"}
S2S_PASS=${S2S_PASS:-s2s-password}
S2S_LOG_LEVEL=${S2S_LOG_LEVEL:-debug}
S2S_PROSODY_CFG=${S2S_PROSODY_CFG:-} S2S_PROSODY_MODULES=${S2S_PROSODY_MODULES:-}
S2S_EJABBERD_YML=${S2S_EJABBERD_YML:-}
S2S_EJABBERD_MODULES=${S2S_EJABBERD_MODULES:-} S2S_PARLEY_MODULES=${S2S_PARLEY_MODULES:-}
S2S_CA='' S2S_DNS_PORT='' S2S_DNS_PID='' S2S_DNS_ARGS=()
declare -gA S2S_KIND=() S2S_DOMAIN=() S2S_IP=() S2S_C2S=() S2S_S2S=() S2S_DIR=() S2S_PID=()
declare -gA S2S_LOG=() S2S_PIDFILE=()
S2S_NAMES=() S2S_DBS=()
S2S_PY=python3
[ -x /usr/bin/python3 ] && S2S_PY=/usr/bin/python3	# Debian's, with slixmpp

# ---- packages ----

# s2s_need SERVER...: each of prosody, ejabberd, dnsmasq and slixmpp that the test needs is
# installed, or the test is skipped (exit 0); PARLEY_TEST_REQUIRE_INTEROP=1 bails out.
s2s_need() {
	local s missing=()
	for s in "$@" dnsmasq slixmpp; do
		case $s in
		prosody) [ -x /usr/bin/prosody ] && [ -x /usr/bin/prosodyctl ] &&
			lua5.4 -e 'require "lunbound"' 2>/dev/null ||
			missing+=("prosody lua-unbound");;
		ejabberd) [ -x /usr/sbin/ejabberdctl ] || missing+=(ejabberd)
			unshare -m true 2>/dev/null ||
				missing+=("(unshare -m fails: no private mount namespace)");;
		dnsmasq) [ -x /usr/sbin/dnsmasq ] || missing+=(dnsmasq-base);;
		slixmpp) "$S2S_PY" -c 'import slixmpp' 2>/dev/null || missing+=(python3-slixmpp);;
		esac
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "${PARLEY_TEST_REQUIRE_INTEROP:-0}" = 1 ] && bail "missing: ${missing[*]}"
	echo "1..0 # SKIP missing: ${missing[*]} (contrib/test.sh installs the packages)"
	exit 0
}

# ---- set-up and clean-up ----

# s2s_port: a port free on 127.0.0.1 for both TCP and UDP (for the DNS server).
s2s_port() {
	"$S2S_PY" -c 'import socket
for _ in range(100):
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass'
}
# s2s_init NAME: $T (made here unless lib.sh's setup made it, with a database), readable
# by the servers' users; the trap; the DNS port.
s2s_init() {
	if [ -z "$T" ]; then
		T=$(mktemp -d "/tmp/parley-$1.XXXXXX") || bail "mktemp failed"
		log=$T/none.log	# lib.sh's tap_done: no parleyd log here
	fi
	chmod 755 "$T"	# prosody and ejabberd reach their dirs through it
	trap s2s_cleanup EXIT
	printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' >"$T/hosts"
	chmod 644 "$T/hosts"
	S2S_DNS_PORT=$(s2s_port)
	[ -n "$S2S_DNS_PORT" ] || bail "no free port for the DNS server"
}
# s2s_stop NAME...: stops those servers (TERM, then KILL to what still runs after 1.5 s),
# by the pids started here (and ejabberd's beam, from its pid file), all at once.
s2s_stop() {
	local name f p pids=() i left
	for name in "$@"; do
		f=${S2S_PIDFILE[$name]:-} p=''
		[ -n "$f" ] && [ -r "$f" ] && p=$(tr -dc 0-9 <"$f")
		[ -n "$p" ] && pids+=("$p")
		[ -n "${S2S_PID[$name]:-}" ] && pids+=("${S2S_PID[$name]}")
	done
	[ ${#pids[@]} -gt 0 ] || return 0
	kill -TERM "${pids[@]}" 2>/dev/null
	for ((i = 0; i < 30; i++)); do	# ejabberd takes 1.1 s, Prosody less
		left=0
		for p in "${pids[@]}"; do gone "$p" || left=1; done
		[ $left = 0 ] && break
		sleep 0.05
	done
	kill -KILL "${pids[@]}" 2>/dev/null
	for name in "$@"; do
		[ -n "${S2S_PID[$name]:-}" ] && wait "${S2S_PID[$name]}" 2>/dev/null
		S2S_PID[$name]=''
	done
	return 0
}
# s2s_cleanup: at exit: every server, the DNS server, then lib.sh's cleanup (kids,
# parleyd, the database, $T) or $T alone.
s2s_cleanup() {
	local s
	s2s_stop "${S2S_NAMES[@]}"
	if [ -n "$S2S_DNS_PID" ]; then
		kill "$S2S_DNS_PID" 2>/dev/null; wait "$S2S_DNS_PID" 2>/dev/null
	fi
	for s in "${S2S_DBS[@]}"; do
		psql "$PARLEY_TEST_PG_BASE dbname=postgres" -qc "DROP DATABASE IF EXISTS $s" \
			>/dev/null 2>&1
	done
	if [ -n "$DB" ]; then cleanup
	else
		for s in "${kids[@]}"; do kill -9 "$s" 2>/dev/null; done
		if [ "${PARLEY_TEST_KEEP:-0}" = 1 ]; then echo "# kept $T" >&2
		else rm -rf "$T"; fi
	fi
}

# ---- certificates ----

# s2s_ca DOMAIN...: in $T/ca (S2S_CA): ca.crt, a test CA; for each DOMAIN, with one key
# DOMAIN.key: DOMAIN.crt signed by the CA (subjectAltName DNS:DOMAIN, DNS:*.DOMAIN) and
# DOMAIN.xmpp.crt, the same names and the XEP-0178 id-on-xmppAddr otherName (not the
# default: ejabberd 23.01 crashes on it, see s2s_cert_files); DOMAIN.self.crt/.key,
# self-signed for the same names; wrong.test.crt/.key, signed by the CA.
# EC P-256: quick to make. Readable by all (the servers run as their own users).
s2s_ca() {
	local d=$T/ca x san
	S2S_CA=$d
	mkdir -p "$d" && chmod 755 "$d"
	[ -f "$d/ca.crt" ] || openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
		-nodes -days 30 -subj "/O=Parley tests/CN=Parley test CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-keyout "$d/ca.key" -out "$d/ca.crt" >"$d/openssl.log" 2>&1 ||
		bail "openssl could not make the test CA: $(tail -n 3 "$d/openssl.log")"
	for x in "$@" wrong.test; do
		[ -f "$d/$x.crt" ] && continue
		san="subjectAltName=DNS:$x,DNS:*.$x"
		printf '%s\n' "basicConstraints=critical,CA:FALSE" \
			"keyUsage=critical,digitalSignature,keyEncipherment" \
			"extendedKeyUsage=serverAuth,clientAuth" >"$d/$x.ext"
		{ cat "$d/$x.ext"; echo "$san,otherName:1.3.6.1.5.5.7.8.5;UTF8:$x"; } \
			>"$d/$x.xmpp.ext"
		echo "$san" >>"$d/$x.ext"
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-subj "/CN=$x" -keyout "$d/$x.key" -out "$d/$x.csr" \
			>>"$d/openssl.log" 2>&1 &&
		s2s_sign "$x" "" && s2s_sign "$x" .xmpp &&
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-days 30 -subj "/CN=$x" -addext "$san" \
			-keyout "$d/$x.self.key" -out "$d/$x.self.crt" >>"$d/openssl.log" 2>&1 ||
			bail "openssl could not make the certificates of $x:" \
				"$(tail -n 3 "$d/openssl.log")"
	done
	chmod 644 "$d"/*.crt "$d"/*.key
}
# s2s_sign DOMAIN SUFFIX: $S2S_CA/DOMAIN.SUFFIX.crt from DOMAIN.csr and DOMAIN.SUFFIX.ext.
s2s_sign() {
	openssl x509 -req -in "$S2S_CA/$1.csr" -CA "$S2S_CA/ca.crt" -CAkey "$S2S_CA/ca.key" \
		-set_serial "0x$(openssl rand -hex 8)" -days 30 -extfile "$S2S_CA/$1$2.ext" \
		-out "$S2S_CA/$1$2.crt" >>"$S2S_CA/openssl.log" 2>&1
}
# s2s_cert_files DOMAIN KIND: "CRT KEY" of KIND ca (signed by the CA for DOMAIN), xmpp
# (the same with id-on-xmppAddr: against ejabberd 23.01 it crashes ejabberd's s2s_in at
# SASL EXTERNAL, p1_xmpp 1.6.1 xmpp_stream_pkix:get_domains_from_san returns a binary
# to lists:flatmap), self (self-signed for DOMAIN) or wrong (the CA's, for wrong.test).
s2s_cert_files() {
	case $2 in
	ca) echo "$S2S_CA/$1.crt $S2S_CA/$1.key";;
	xmpp) echo "$S2S_CA/$1.xmpp.crt $S2S_CA/$1.key";;
	self) echo "$S2S_CA/$1.self.crt $S2S_CA/$1.self.key";;
	wrong) echo "$S2S_CA/wrong.test.crt $S2S_CA/wrong.test.key";;
	*) bail "unknown certificate kind $2";;
	esac
}

# ---- DNS ----

# shellcheck disable=SC2120	# s2s_add calls it with no arguments
# s2s_dns [ARGS...]: (re)starts dnsmasq on 127.0.0.1:$S2S_DNS_PORT with the records of
# every server so far and ARGS (more dnsmasq options, kept for later restarts, e.g.
# --host-record=nosrv.test,127.0.0.9). Only .test is served (NXDOMAIN for the rest of
# it); any other name is refused: nothing goes upstream.
s2s_dns() {
	local i
	S2S_DNS_ARGS+=("$@")
	if [ -n "$S2S_DNS_PID" ]; then
		kill "$S2S_DNS_PID" 2>/dev/null; wait "$S2S_DNS_PID" 2>/dev/null
	fi
	: >"$T/dns.log"
	/usr/sbin/dnsmasq --no-resolv --no-hosts --conf-file=/dev/null --bind-interfaces \
		--listen-address=127.0.0.1 --port="$S2S_DNS_PORT" --keep-in-foreground \
		--pid-file="$T/dns.pid" --log-queries --log-facility="$T/dns.log" \
		--local=/test/ --no-negcache "${S2S_DNS_ARGS[@]}" >>"$T/dns.out" 2>&1 &
	S2S_DNS_PID=$!
	for ((i = 0; i < 100; i++)); do
		grep -q 'started, version' "$T/dns.log" 2>/dev/null && return 0
		gone "$S2S_DNS_PID" && break
		sleep 0.05
	done
	bail "dnsmasq did not start: $(cat "$T/dns.out" "$T/dns.log" 2>/dev/null | tail -n 5)"
}
# s2s_dns_query NAME TYPE: the answers of our DNS server (A: addresses; SRV: "PRIO WEIGHT
# PORT TARGET"), one a line; nothing for none.
s2s_dns_query() {
	"$S2S_PY" - "$S2S_DNS_PORT" "$1" "$2" <<'PY'
import socket, struct, sys
port, name, qtype = int(sys.argv[1]), sys.argv[2], {"A": 1, "SRV": 33}[sys.argv[3]]
q = struct.pack(">HHHHHH", 0x5132, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
q += struct.pack(">HH", qtype, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(q, ("127.0.0.1", port))
r = s.recv(4096)
def skip(o):	# past a name (labels or a pointer)
    while r[o]:
        if r[o] >= 0xc0:
            return o + 2
        o += r[o] + 1
    return o + 1
def name_at(o):
    out = []
    while r[o]:
        if r[o] >= 0xc0:
            o = struct.unpack(">H", r[o:o + 2])[0] & 0x3fff
            continue
        out.append(r[o + 1:o + 1 + r[o]].decode()); o += r[o] + 1
    return ".".join(out)
an = struct.unpack(">H", r[6:8])[0]
o = skip(12) + 4
for _ in range(an):
    o = skip(o)
    t, _, _, ln = struct.unpack(">HHIH", r[o:o + 10]); o += 10
    if t == 1 == qtype:
        print(socket.inet_ntoa(r[o:o + 4]))
    elif t == 33 == qtype:
        print(*struct.unpack(">HHH", r[o:o + 6]), name_at(o + 6))
    o += ln
PY
}

# ---- the servers: common part ----

# s2s_add KIND NAME DOMAIN IP: the server's dir, its ports, its DNS records (dnsmasq is
# restarted with them when it runs).
s2s_add() {
	local kind=$1 name=$2 domain=$3 ip=$4 c s
	[[ $domain == *.test ]] || bail "$name: the test domains are under .test ($domain)"
	[[ $ip == 127.* ]] || bail "$name: loopback addresses only ($ip)"
	[ -z "${S2S_KIND[$name]:-}" ] || bail "$name: a server of that name exists"
	read -r c s < <(free_ports 2)
	S2S_NAMES+=("$name")
	S2S_KIND[$name]=$kind S2S_DOMAIN[$name]=$domain S2S_IP[$name]=$ip
	# shellcheck disable=SC2034	# S2S_DIR: for the tests
	S2S_C2S[$name]=$c S2S_S2S[$name]=$s S2S_DIR[$name]=$T/$name
	mkdir -p "$T/$name"
	echo "$ip $domain" >>"$T/hosts"	# appended: the same file under ejabberd's bind mount
	S2S_DNS_ARGS+=("--host-record=$domain,$ip"
		"--srv-host=_xmpp-server._tcp.$domain,$domain,$s"
		"--srv-host=_xmpp-client._tcp.$domain,$domain,$c")
	# shellcheck disable=SC2119
	[ -z "$S2S_DNS_PID" ] || s2s_dns
}
# s2s_listening IP PORT: true when something listens on IP:PORT (/proc/net/tcp: no ss).
s2s_listening() {
	local a b c d hex
	IFS=. read -r a b c d <<<"$1"
	hex=$(printf '%02X%02X%02X%02X:%04X' "$d" "$c" "$b" "$a" "$2")
	grep -q "^ *[0-9]*: $hex 00000000:0000 0A " /proc/net/tcp
}
# s2s_alive NAME: the server process runs.
s2s_alive() { local p=${S2S_PID[$1]:-}; [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }
# s2s_logs NAME [N]: the last N (40) lines of the server's log, as TAP comments.
s2s_logs() {
	echo "# ---- $1 (${S2S_KIND[$1]:-?}) log ${S2S_LOG[$1]:-}:"
	tail -n "${2:-40}" "${S2S_LOG[$1]:-/dev/null}" 2>/dev/null | sed 's/^/#   /'
}
# s2s_ready NAME: Prosody and ejabberd listen on their c2s and s2s ports; parleyd
# answers on its control socket, opened after all its listeners (whether one is s2s,
# s2s_parley_s2s tells). Its log's " ready" is at notice, not there at warn.
s2s_ready() {
	if [ "${S2S_KIND[$1]}" = parley ]; then
		"$B/src/parleyctl" -c "${S2S_DIR[$1]}/parley.xml" status >/dev/null 2>&1
	else
		s2s_listening "${S2S_IP[$1]}" "${S2S_C2S[$1]}" &&
			s2s_listening "${S2S_IP[$1]}" "${S2S_S2S[$1]}"
	fi
}
# s2s_wait NAME...: until each server is ready (bounded: ejabberd 60 s, parleyd 10 s
# times lib.sh's $slow, Prosody 20 s), then the ejabberd users (ejabberdctl needs the
# node). Bails out, with the log, on a server that failed.
s2s_wait() {
	local name i secs
	for name in "$@"; do
		case ${S2S_KIND[$name]} in
		ejabberd) secs=60;; parley) secs=$((10 * slow));; *) secs=20;;
		esac
		for ((i = 0; i < secs * 20; i++)); do
			s2s_alive "$name" && ! s2s_ready "$name" || break
			sleep 0.05
		done
		if ! s2s_alive "$name" || ! s2s_ready "$name"; then
			s2s_logs "$name"
			bail "$name (${S2S_KIND[$name]}) was not ready in $secs s"
		fi
	done
	for name in "$@"; do
		[ "${S2S_KIND[$name]}" = ejabberd ] && s2s_ejabberd_users "$name"
	done
	return 0
}

# ---- Prosody ----

# s2s_prosody NAME DOMAIN IP [AUTH [CERT]]: writes the config and starts Prosody (as user
# prosody, foreground) with the users; s2s_wait NAME waits for it. AUTH secure (default):
# s2s_secure_auth = true, peers must present a certificate valid for their domain (our CA);
# dialback: s2s_secure_auth = false, dialback (XEP-0220) when the certificate does not do.
# CERT: ca (default for secure), xmpp, self (default for dialback), wrong, none (see
# s2s_cert_files).
# s2s is always over STARTTLS (s2s_require_encryption); c2s is plain on loopback.
s2s_prosody() {
	local name=$1 domain=$2 ip=$3 auth=${4:-secure} cert=${5:-} d u crt key secure=true
	[ -n "$cert" ] || { cert=ca; [ "$auth" = dialback ] && cert=self; }
	[ "$auth" = dialback ] && secure=false
	s2s_add prosody "$name" "$domain" "$ip"
	d=$T/$name
	mkdir -p "$d/data" "$d/certs"
	cp "$S2S_CA/ca.crt" "$d/ca.crt"
	if [ "$cert" != none ]; then
		read -r crt key < <(s2s_cert_files "$domain" "$cert")
		cp "$crt" "$d/certs/$domain.crt" && cp "$key" "$d/certs/$domain.key"
	fi
	S2S_LOG[$name]=$d/prosody.log S2S_PIDFILE[$name]=''
	cat >"$d/prosody.cfg.lua" <<LUA
-- written by tests/integration/s2s_lib.sh: $name, $domain on $ip ($auth, cert $cert)
pidfile = "$d/prosody.pid"
data_path = "$d/data"
certificates = "$d/certs"
log = { $S2S_LOG_LEVEL = "$d/prosody.log" }
interfaces = { "$ip" }
local_interfaces = { "$ip" }
c2s_ports = { ${S2S_C2S[$name]} }
c2s_interfaces = { "$ip" }
c2s_direct_tls_ports = { }
s2s_ports = { ${S2S_S2S[$name]} }
s2s_interfaces = { "$ip" }
s2s_direct_tls_ports = { }
http_ports = { }
https_ports = { }
modules_enabled = { "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "version";
	$S2S_PROSODY_MODULES }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
s2s_require_encryption = true
s2s_secure_auth = $secure
s2s_timeout = 10
ssl = { cafile = "$d/ca.crt" }
authentication = "internal_hashed"
storage = "internal"
-- net.unbound (lua-unbound): our DNS server only; .test is passed on to it
unbound = { resolvconf = false; hoststxt = false; forward = "127.0.0.1@$S2S_DNS_PORT";
	options = { ["local-zone:"] = "test. transparent" } }
$S2S_PROSODY_CFG
VirtualHost "$domain"
LUA
	chown -R prosody:prosody "$d"
	for u in $S2S_USERS; do
		prosodyctl --config "$d/prosody.cfg.lua" register "$u" "$domain" "$S2S_PASS" \
			>>"$d/prosodyctl.log" 2>&1 ||
			bail "$name: prosodyctl register $u failed:" \
				"$(tail -n 3 "$d/prosodyctl.log")"
	done
	# setpriv execs (and so do env and lua): $! is the Prosody process itself.
	setpriv --reuid=prosody --regid=prosody --init-groups \
		prosody --config "$d/prosody.cfg.lua" -F >>"$d/stdout.log" 2>&1 &
	S2S_PID[$name]=$!
}

# ---- ejabberd ----

# s2s_ejabberd NAME DOMAIN IP [AUTH [CERT]]: writes the configs and starts ejabberd (as
# user ejabberd, ejabberdctl foreground, its own node name, no epmd: ERL_DIST_PORT);
# s2s_wait NAME waits for it and registers the users. AUTH secure (default): no
# mod_s2s_dialback, so SASL EXTERNAL with a certificate valid against ca_file (our CA) is
# the only way in and out; dialback: mod_s2s_dialback, which also lets an outgoing stream
# go on when the peer's certificate does not verify. CERT: ca (default for secure), self
# (default for dialback) or wrong; not xmpp (s2s_cert_files says why). s2s_use_starttls:
# required; c2s is plain on loopback.
s2s_ejabberd() {
	local name=$1 domain=$2 ip=$3 auth=${4:-secure} cert=${5:-} d crt key dialback='' dist
	[ -n "$cert" ] || { cert=ca; [ "$auth" = dialback ] && cert=self; }
	[ "$auth" = dialback ] && dialback='  mod_s2s_dialback: {}'
	s2s_add ejabberd "$name" "$domain" "$ip"
	d=$T/$name
	mkdir -p "$d/db" "$d/logs"
	read -r dist < <(free_ports 1)
	read -r crt key < <(s2s_cert_files "$domain" "$cert")
	cp "$crt" "$d/cert.pem" && cp "$key" "$d/key.pem" && cp "$S2S_CA/ca.crt" "$d/ca.pem"
	S2S_LOG[$name]=$d/logs/ejabberd.log S2S_PIDFILE[$name]=$d/ejabberd.pid
	# Erlang's resolver: our DNS server only (resolv_conf "" or /etc/resolv.conf's
	# servers come first), localhost from here (the ctl node reaches the server by it).
	cat >"$d/inetrc" <<ERL
{resolv_conf, ""}.
{hosts_file, ""}.
{host, {127,0,0,1}, ["localhost"]}.
{nameserver, {127,0,0,1}, $S2S_DNS_PORT}.
{lookup, [file, dns]}.
ERL
	# ERL_DIST_PORT: the node listens there and ctl nodes connect there: no epmd
	# (ejabberdctl passes -erl_epmd_port, -start_epmd false).
	cat >"$d/ejabberdctl.cfg" <<CFG
ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0 -kernel inet_dist_use_interface {127,0,0,1}"
ERL_DIST_PORT=$dist
EJABBERD_CONFIG_PATH=$d/ejabberd.yml
EJABBERD_PID_PATH=$d/ejabberd.pid
EJABBERD_BYPASS_WARNINGS=true
CFG
	cat >"$d/ejabberd.yml" <<YML
# written by tests/integration/s2s_lib.sh: $name, $domain on $ip ($auth, cert $cert)
hosts: ["$domain"]
loglevel: $([ "$S2S_LOG_LEVEL" = warn ] && echo warning || echo "$S2S_LOG_LEVEL")
log_rotate_count: 0
certfiles: ["$d/cert.pem", "$d/key.pem"]
ca_file: "$d/ca.pem"
s2s_use_starttls: required
s2s_dns_timeout: 5
s2s_timeout: 10
outgoing_s2s_families: [ipv4]
auth_method: [internal]
auth_password_format: scram
$S2S_EJABBERD_YML
listen:
  - port: ${S2S_C2S[$name]}
    ip: "$ip"
    module: ejabberd_c2s
    starttls: false
  - port: ${S2S_S2S[$name]}
    ip: "$ip"
    module: ejabberd_s2s_in
access_rules:
  c2s:
    allow: all
  register:
    allow: all
modules:
  mod_disco: {}
  mod_roster: {}
  mod_ping: {}
  mod_version: {}
$dialback
$S2S_EJABBERD_MODULES
YML
	chown -R ejabberd:ejabberd "$d"
	S2S_EJ_CTL=(setpriv --reuid=ejabberd --regid=ejabberd --init-groups env HOME="$d"
		ejabberdctl --config-dir "$d" --logs "$d/logs" --spool "$d/db"
		--node "ej_${name}_$$@localhost")
	declare -ga "S2S_EJCTL_$name"
	eval "S2S_EJCTL_$name"='("${S2S_EJ_CTL[@]}")'
	# The A records of SRV targets: p1_xmpp's xmpp_stream_out:a_lookup asks libc
	# (net:getaddrinfo), not inet_res: so ejabberd runs in a mount namespace of its own
	# where /etc/hosts is $T/hosts (unshare, sh, setpriv, env exec: $! is ejabberdctl's
	# shell; the beam's pid is in the pid file).
	unshare -m sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$T/hosts" \
		"${S2S_EJ_CTL[@]}" foreground >>"$d/stdout.log" 2>&1 &
	S2S_PID[$name]=$!
}
# s2s_ejctl NAME ARGS...: ejabberdctl on that node (bounded).
s2s_ejctl() {
	local -n ctl="S2S_EJCTL_$1"; shift
	timeout 30 "${ctl[@]}" "$@"
}
# s2s_ejabberd_users NAME: registers $S2S_USERS (ejabberdctl register, in parallel).
s2s_ejabberd_users() {
	local name=$1 u ps=() p fail=0
	for u in $S2S_USERS; do
		s2s_ejctl "$name" register "$u" "${S2S_DOMAIN[$name]}" "$S2S_PASS" \
			>>"$T/$name/ctl.log" 2>&1 &
		ps+=($!)
	done
	for p in "${ps[@]}"; do wait "$p" || fail=1; done
	[ $fail = 0 ] || { s2s_logs "$name" 20; bail "$name: ejabberdctl register failed:" \
		"$(tail -n 3 "$T/$name/ctl.log")"; }
}

# ---- Parley ----

# s2s_parley NAME DOMAIN IP [AUTH [CERT]]: parleyd from the build tree (under
# $PARLEY_TEST_WRAPPER, as lib.sh's start_parleyd runs it) with a database of its own
# (dropped at exit), its config $T/NAME/parley.xml (<dns servers> our dnsmasq; <s2s
# secure-auth ca-file> our CA; c2s plain and s2s on IP; the host's certificate of kind
# CERT) and the users; s2s_wait NAME waits for its c2s and s2s ports. AUTH secure
# (default): secure-auth="true"; dialback: secure-auth="false". CERT as for Prosody
# (ca, xmpp, self, wrong). Needs PARLEY_TEST_PG_BASE (lib.sh's need_db).
s2s_parley() {
	local name=$1 domain=$2 ip=$3 auth=${4:-secure} cert=${5:-} d db crt key u
	local secure=true
	[ -n "$cert" ] || { cert=ca; [ "$auth" = dialback ] && cert=self; }
	[ "$auth" = dialback ] && secure=false
	[ -n "${PARLEY_TEST_PG_BASE:-}" ] || bail "s2s_parley: no PARLEY_TEST_PG_BASE"
	s2s_add parley "$name" "$domain" "$ip"
	d=$T/$name db=parley_s2s_${name}_$$
	S2S_LOG[$name]=$d/parleyd.log S2S_PIDFILE[$name]='' S2S_DBS+=("$db")
	psql "$PARLEY_TEST_PG_BASE dbname=postgres" -qc "DROP DATABASE IF EXISTS $db" \
		>/dev/null 2>&1
	psql "$PARLEY_TEST_PG_BASE dbname=postgres" -qc "CREATE DATABASE $db" >/dev/null ||
		bail "$name: cannot create the database $db"
	read -r crt key < <(s2s_cert_files "$domain" "$cert")
	cat >"$d/parley.xml" <<XML
<!-- written by tests/integration/s2s_lib.sh: $name, $domain on $ip ($auth, cert $cert) -->
<parley>
  <log level="$S2S_LOG_LEVEL"/>
  <database conninfo="$PARLEY_TEST_PG_BASE dbname=$db" pool="2"/>
  <modules dir="$B/modules/.libs"/>
  <control socket="$d/ctl.sock"/>
  <dns servers="127.0.0.1:$S2S_DNS_PORT"/>
  <s2s secure-auth="$secure" ca-file="$S2S_CA/ca.crt"/>
  <listen type="c2s" address="$ip" port="${S2S_C2S[$name]}" tls="none"/>
  <listen type="s2s" address="$ip" port="${S2S_S2S[$name]}"/>
  <host name="$domain" cert="$crt" key="$key">
    <module name="disco"/> <module name="roster"/> <module name="presence"/>
    <module name="ping"/> <module name="version"/> ${S2S_PARLEY_MODULES:-}
  </host>
</parley>
XML
	"$B/src/parleyctl" -c "$d/parley.xml" db migrate >>"$d/parleyctl.log" 2>&1 ||
		bail "$name: parleyctl db migrate failed: $(tail -n 3 "$d/parleyctl.log")"
	for u in $S2S_USERS; do
		"$B/src/parleyctl" -c "$d/parley.xml" register "$u" "$domain" "$S2S_PASS" \
			>>"$d/parleyctl.log" 2>&1 ||
			bail "$name: parleyctl register $u failed: $(tail -n 3 "$d/parleyctl.log")"
	done
	${PARLEY_TEST_WRAPPER:-} "$B/src/parleyd" -c "$d/parley.xml" >>"$d/parleyd.log" 2>&1 &
	S2S_PID[$name]=$!
}
# s2s_parley_s2s NAME: true when that parleyd listens on its s2s port (Parley serves s2s).
s2s_parley_s2s() { s2s_listening "${S2S_IP[$1]}" "${S2S_S2S[$1]}"; }
# s2s_parley_stop NAME TEXT: SIGTERM to that parleyd; ok TEXT when it exits 0 in 10 s
# (times $slow; under valgrind an error is exit 99), not_ok with its log otherwise.
s2s_parley_stop() {
	local p=${S2S_PID[$1]} rc
	kill -TERM "$p" 2>/dev/null
	if ! poll $((10 * slow)) "" gone "$p"; then
		not_ok "$2" "still running after $((10 * slow)) s"
		kill -KILL "$p" 2>/dev/null
	else
		wait "$p"; rc=$?
		if [ $rc -eq 0 ]; then ok "$2"
		else not_ok "$2" "rc=$rc" "$(grep -v ' debug ' "${S2S_LOG[$1]}" | tail -n 30)"; fi
	fi
	wait "$p" 2>/dev/null
	S2S_PID[$1]=''
}

# ---- the client checks ----

# s2s_check [--expect-fail] NAME_A NAME_B LABEL: s2s_check.py logs in alice on A and bob
# on B, and checks messages, subscriptions and IQs each way (or, --expect-fail, that
# nothing gets through and the sender gets an error back); its TAP lines are printed
# and counted; on a failure the servers' logs follow.
s2s_check() {
	local opt=() a b out
	[ "$1" = --expect-fail ] && { opt=(--expect-fail); shift; }
	a=$1 b=$2 out=$T/check-$1-$2.out
	timeout -k 5 $((90 * slow)) "$S2S_PY" "$top/tests/integration/s2s_check.py" \
		"${opt[@]}" --label "$3" --timeout $((15 * slow)) \
		"alice@${S2S_DOMAIN[$a]}" "$S2S_PASS" "${S2S_IP[$a]}:${S2S_C2S[$a]}" \
		"bob@${S2S_DOMAIN[$b]}" "$S2S_PASS" "${S2S_IP[$b]}:${S2S_C2S[$b]}" >"$out" 2>&1
	local rc=$?
	[ $rc -eq 0 ] || grep -q '^not ok' "$out" ||
		echo "not ok - $3: s2s_check.py exited $rc" >>"$out"
	cat "$out"
	count "$out"
	if grep -q '^not ok' "$out"; then s2s_logs "$a" 60; s2s_logs "$b" 60; fi
}

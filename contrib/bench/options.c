/*
 * options.c - the command line: defaults, parsing and the checks that need
 * all options at once. Every mistake is fatal here, before the fork, and is
 * reported as JSON like any other failure so that scripts see one format.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "options.h"
#include "util.h"

#define JID_PART_MAX	255

struct options opt;

const char *const tls_names[] = { "none", "starttls", "direct" };
const char *const sasl_names[] = { "auto", "plain", "scram-sha-1", "scram-sha-256" };
const char *const scenario_names[] = { "login", "idle", "chat", "offline", "muc" };

static void usage(FILE *f)
{
	fprintf(f,
"usage: parley-bench [options]\n"
"  -s, --scenario S      login | idle | chat | offline | muc (default login)\n"
"  -n N                  accounts/sessions (default 100)\n"
"  -j N                  worker processes (default 1)\n"
"  -h HOST               XMPP domain (default localhost)\n"
"  -a ADDR               server address (default 127.0.0.1)\n"
"  -p PORT               server port (default 5222, 5223 with --tls direct;\n"
"                        with --ws 5280, 5443 with --tls direct)\n"
"  --server2 ADDR:PORT   s2s: a second server, which the odd accounts log in to\n"
"  --host2 HOST          s2s: the second server's domain (with --server2); chat\n"
"                        sends from the first server's accounts to the second's\n"
"  --tls MODE            none | starttls | direct (default starttls; none with --ws)\n"
"  --ws PATH             XMPP over WebSocket (RFC 7395) at ws://ADDR:PORT/PATH\n"
"                        (wss:// with --tls direct), e.g. /xmpp-websocket\n"
"  --ws-origin ORIGIN    send this Origin header in the WebSocket Upgrade\n"
"  --sasl MECH           auto | plain | scram-sha-1 | scram-sha-256 (default auto)\n"
"  --prefix P            account names P0..P(N-1) (default bench)\n"
"  --password PW         (default benchpass)\n"
"  --resource R          (default bench)\n"
"  --register-cmd CMD    create missing accounts with CMD ({user} {host} {password})\n"
"  --ibr                 create missing accounts with XEP-0077\n"
"  --no-register         the accounts exist (default)\n"
"  --pid PID[,PID...]    server process(es): CPU and memory figures\n"
"  --login-rate R        connection attempts per second (default 500; 0: no pacing)\n"
"  --max-pending N       logins in progress at once (default 1000)\n"
"  --login-timeout S     one login's bound (default 30)\n"
"  --conns-per-addr N    source addresses 127.0.0.1+ after N accounts (default 20000)\n"
"  --hold S              idle: hold the sessions S seconds (default 5)\n"
"  --settle S            idle: wait S seconds before measuring (default 2)\n"
"  --rate R              chat, muc: one step at R msgs/s\n"
"  --rates R1,R2,...     chat, muc: steps (default 2000,5000,10000,20000,50000,100000)\n"
"  --step-seconds S      chat, muc: seconds per step (default 5)\n"
"  --drain S             chat, muc: seconds to wait for a step's last messages (1.5)\n"
"  --burst B             chat, muc: messages a picked sender writes at once (default 1)\n"
"  --room JID            muc: the room (default bench@conference.HOST)\n"
"  --join-rate R         muc: joins per second (default: --login-rate; 0: no pacing)\n"
"  --messages M          offline: messages to store (default 10000)\n"
"  --quiet S             offline: give up on missing messages after S quiet seconds (10)\n"
"  --no-sm               offline: do not use XEP-0198 acks even if offered\n"
"  --scram-cache FILE    keep derived SCRAM keys in FILE across runs (no PBKDF2)\n"
"  --timeout S           overall bound (default 120)\n"
"  --seed N              random seed\n"
"  -v, --verbose         more progress on stderr\n"
"  --help\n");
}

static bool parse_double(const char *s, double *out)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end || !isfinite(v) || v < 0)
		return false;
	*out = v;
	return true;
}

static bool parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (end == s || *end || errno || v > max || *s == '-')
		return false;
	*out = v;
	return true;
}

static int pick(const char *s, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

static bool parse_list(const char *s, bool pids)
{
	char buf[1024], *tok, *save;

	if (strlen(s) >= sizeof(buf))
		return false;
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (pids) {
			uint64_t v;

			if (opt.npids >= MAX_PIDS || !parse_uint(tok, INT_MAX, &v) || v == 0)
				return false;
			opt.pids[opt.npids++] = (pid_t)v;
		} else {
			double v;

			if (opt.nrates >= MAX_RATES || !parse_double(tok, &v) || v <= 0)
				return false;
			opt.rates[opt.nrates++] = v;
		}
	}
	return true;
}

void fail_early(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	note("%s", buf);
	j_start(stdout, false);
	j_open(NULL, '{');
	j_bool("ok", false);
	j_str("error", buf);
	j_close('}');
	fputc('\n', stdout);
	exit(2);
}


enum {
	O_TLS = 256, O_SASL, O_PID, O_RATE, O_RATES, O_STEP, O_DRAIN, O_HOLD, O_SETTLE,
	O_MESSAGES, O_TIMEOUT, O_PREFIX, O_PASSWORD, O_RESOURCE, O_REGCMD, O_IBR, O_NOREG,
	O_LOGINRATE, O_MAXPEND, O_LOGINTO, O_CPA, O_BURST, O_NOSM, O_QUIET, O_SEED, O_HELP,
	O_SCRAMCACHE, O_ROOM, O_JOINRATE, O_WS, O_WSORIGIN, O_SERVER2, O_HOST2,
};

static const struct option long_opts[] = {
	{ "scenario", required_argument, NULL, 's' },
	{ "tls", required_argument, NULL, O_TLS },
	{ "ws", required_argument, NULL, O_WS },
	{ "ws-origin", required_argument, NULL, O_WSORIGIN },
	{ "sasl", required_argument, NULL, O_SASL },
	{ "pid", required_argument, NULL, O_PID },
	{ "rate", required_argument, NULL, O_RATE },
	{ "rates", required_argument, NULL, O_RATES },
	{ "step-seconds", required_argument, NULL, O_STEP },
	{ "drain", required_argument, NULL, O_DRAIN },
	{ "hold", required_argument, NULL, O_HOLD },
	{ "settle", required_argument, NULL, O_SETTLE },
	{ "messages", required_argument, NULL, O_MESSAGES },
	{ "timeout", required_argument, NULL, O_TIMEOUT },
	{ "prefix", required_argument, NULL, O_PREFIX },
	{ "password", required_argument, NULL, O_PASSWORD },
	{ "resource", required_argument, NULL, O_RESOURCE },
	{ "register-cmd", required_argument, NULL, O_REGCMD },
	{ "ibr", no_argument, NULL, O_IBR },
	{ "no-register", no_argument, NULL, O_NOREG },
	{ "login-rate", required_argument, NULL, O_LOGINRATE },
	{ "max-pending", required_argument, NULL, O_MAXPEND },
	{ "login-timeout", required_argument, NULL, O_LOGINTO },
	{ "conns-per-addr", required_argument, NULL, O_CPA },
	{ "burst", required_argument, NULL, O_BURST },
	{ "no-sm", no_argument, NULL, O_NOSM },
	{ "quiet", required_argument, NULL, O_QUIET },
	{ "seed", required_argument, NULL, O_SEED },
	{ "scram-cache", required_argument, NULL, O_SCRAMCACHE },
	{ "room", required_argument, NULL, O_ROOM },
	{ "join-rate", required_argument, NULL, O_JOINRATE },
	{ "server2", required_argument, NULL, O_SERVER2 },
	{ "host2", required_argument, NULL, O_HOST2 },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, O_HELP },
	{ NULL, 0, NULL, 0 },
};

/* The options that take seconds or a rate: a number from min up. */
static const struct {
	int id;
	double *to;
	double min;
	const char *bad;
} seconds_opts[] = {
	{ O_STEP, &opt.step_s, 0.1, "bad --step-seconds" },
	{ O_DRAIN, &opt.drain_s, 0, "bad --drain" },
	{ O_HOLD, &opt.hold_s, 0, "bad --hold" },
	{ O_SETTLE, &opt.settle_s, 0, "bad --settle" },
	{ O_TIMEOUT, &opt.timeout_s, 1, "bad --timeout" },
	{ O_LOGINRATE, &opt.login_rate, 0, "bad --login-rate" },
	{ O_LOGINTO, &opt.login_timeout_s, 1, "bad --login-timeout" },
	{ O_QUIET, &opt.quiet_s, 0, "bad --quiet" },
	{ O_JOINRATE, &opt.join_rate, 0, "bad --join-rate" },
};

static void set_defaults(void)
{
	opt.host = "localhost";
	opt.addr = "127.0.0.1";
	opt.prefix = "bench";
	opt.password = "benchpass";
	opt.resource = "bench";
	opt.port = 5222;
	opt.tls = TLS_STARTTLS;
	opt.n = 100;
	opt.j = 1;
	opt.step_s = 5;
	opt.drain_s = 1.5;
	opt.hold_s = 5;
	opt.settle_s = 2;
	opt.timeout_s = 120;
	opt.login_rate = 500;
	opt.login_timeout_s = 30;
	opt.quiet_s = 10;
	opt.join_rate = -1;	/* --login-rate's, once that is known */
	opt.messages = 10000;
	opt.max_pending = 1000;
	opt.conns_per_addr = 20000;
	opt.burst = 1;
	opt.sm = true;
}

static bool parse_seconds_opt(int c)
{
	for (size_t i = 0; i < sizeof(seconds_opts) / sizeof(seconds_opts[0]); i++) {
		if (seconds_opts[i].id != c)
			continue;
		if (!parse_double(optarg, seconds_opts[i].to) ||
		    *seconds_opts[i].to < seconds_opts[i].min)
			fail_early("%s", seconds_opts[i].bad);
		return true;
	}
	return false;
}

/* The server, the accounts and how to log in; false if c is not one of them. */
static bool parse_login_opt(int c, bool *port_set, bool *tls_set)
{
	uint64_t u;
	int v;

	switch (c) {
	case 'n':
		if (!parse_uint(optarg, 10000000, &u) || u == 0)
			fail_early("bad -n '%s'", optarg);
		opt.n = (uint32_t)u;
		break;
	case 'h': opt.host = optarg; break;
	case 'a': opt.addr = optarg; break;
	case O_HOST2: opt.host2 = optarg; break;
	case O_SERVER2: {
		const char *colon = strrchr(optarg, ':');
		static char addr2[64];

		if (!colon || colon == optarg || (size_t)(colon - optarg) >= sizeof(addr2) ||
		    !parse_uint(colon + 1, 65535, &u) || u == 0)
			fail_early("--server2 wants ADDR:PORT, not '%s'", optarg);
		memcpy(addr2, optarg, (size_t)(colon - optarg));
		addr2[colon - optarg] = '\0';
		opt.addr2 = addr2;
		opt.port2 = (int)u;
		break;
	}
	case 'p':
		if (!parse_uint(optarg, 65535, &u) || u == 0)
			fail_early("bad -p '%s'", optarg);
		opt.port = (int)u;
		*port_set = true;
		break;
	case O_TLS:
		v = pick(optarg, tls_names, 3);
		if (v < 0)
			fail_early("--tls none|starttls|direct");
		opt.tls = (enum tls_mode)v;
		*tls_set = true;
		break;
	case O_WS:
		if (optarg[0] != '/' || strpbrk(optarg, " \t\r\n") || strlen(optarg) > 256)
			fail_early("--ws wants an HTTP path such as /xmpp-websocket");
		opt.ws_path = optarg;
		break;
	case O_WSORIGIN:
		if (strpbrk(optarg, "\r\n") || strlen(optarg) > 256)
			fail_early("bad --ws-origin");
		opt.ws_origin = optarg;
		break;
	case O_SASL:
		v = pick(optarg, sasl_names, 4);
		if (v < 0)
			fail_early("--sasl auto|plain|scram-sha-1|scram-sha-256");
		opt.sasl = (enum sasl_choice)v;
		break;
	case O_PREFIX: opt.prefix = optarg; break;
	case O_PASSWORD: opt.password = optarg; break;
	case O_RESOURCE: opt.resource = optarg; break;
	case O_REGCMD: opt.register_cmd = optarg; opt.reg = REG_CMD; break;
	case O_IBR: opt.reg = REG_IBR; break;
	case O_NOREG: opt.reg = REG_NONE; break;
	case O_MAXPEND:
		if (!parse_uint(optarg, 1000000, &u) || !u)
			fail_early("bad --max-pending");
		opt.max_pending = (uint32_t)u;
		break;
	case O_CPA:
		if (!parse_uint(optarg, 10000000, &u) || !u)
			fail_early("bad --conns-per-addr");
		opt.conns_per_addr = (uint32_t)u;
		break;
	case O_SCRAMCACHE: opt.scram_cache = optarg; break;
	default:
		return false;
	}
	return true;
}

/* The scenario, its load and the run itself. */
static void parse_run_opt(int c)
{
	uint64_t u;
	int v;

	switch (c) {
	case 's':
		v = pick(optarg, scenario_names, 5);
		if (v < 0)
			fail_early("unknown scenario '%s'", optarg);
		opt.sc = (enum scenario)v;
		break;
	case 'j':
		if (!parse_uint(optarg, MAX_WORKERS, &u) || u == 0)
			fail_early("bad -j '%s' (1..%d)", optarg, MAX_WORKERS);
		opt.j = (int)u;
		break;
	case 'v': opt.verbose++; break;
	case O_PID:
		if (!parse_list(optarg, true))
			fail_early("bad --pid '%s'", optarg);
		break;
	case O_RATE:
	case O_RATES:
		opt.nrates = 0;	/* the last --rate or --rates wins */
		if (!parse_list(optarg, false))
			fail_early("bad rate list '%s'", optarg);
		break;
	case O_MESSAGES:
		if (!parse_uint(optarg, 1000000000, &opt.messages) || !opt.messages)
			fail_early("bad --messages");
		break;
	case O_BURST:
		if (!parse_uint(optarg, MAX_BURST, &u) || !u)
			fail_early("bad --burst (1..%d)", MAX_BURST);
		opt.burst = (uint32_t)u;
		break;
	case O_NOSM: opt.sm = false; break;
	case O_ROOM: opt.room = optarg; break;
	case O_SEED:
		if (!parse_uint(optarg, UINT64_MAX, &opt.seed))
			fail_early("bad --seed");
		break;
	case O_HELP:
		usage(stdout);
		exit(0);
	default:
		usage(stderr);
		fail_early("bad arguments");
	}
}

/* --room: a bare JID that goes into attributes as it is; the default is
 * bench@conference.HOST. */
static void check_room(void)
{
	static char def[JID_PART_MAX + 32];
	const char *at;

	if (!opt.room) {
		snprintf(def, sizeof(def), "bench@conference.%s", opt.host);
		opt.room = def;
	}
	at = strchr(opt.room, '@');
	if (!at || at == opt.room || !at[1] || strchr(at + 1, '@') ||
	    strpbrk(opt.room, "'\"<>&/ ") || strlen(opt.room) > 2 * JID_PART_MAX)
		fail_early("--room wants a bare JID room@service, not '%s'", opt.room);
}

/* What no single option can check. */
static void check_args(void)
{
	for (const char *p = opt.prefix; *p; p++)
		if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') &&
		    !(*p >= '0' && *p <= '9') && *p != '.' && *p != '_' && *p != '-')
			fail_early("--prefix may hold only [A-Za-z0-9._-]");
	if (!*opt.prefix || strlen(opt.prefix) > 64 || strlen(opt.host) > JID_PART_MAX ||
	    strlen(opt.resource) > 64 || !*opt.resource || strlen(opt.password) > 256 ||
	    strpbrk(opt.host, "'\"<>&/@ ") || strpbrk(opt.resource, "'\"<>&"))
		fail_early("--prefix, -h, --resource or --password is too long or invalid");
	if (!opt.host2 != !opt.addr2)
		fail_early("--server2 and --host2 go together");
	if (opt.host2 && (strlen(opt.host2) > JID_PART_MAX || strpbrk(opt.host2, "'\"<>&/@ ") ||
			  !strcmp(opt.host2, opt.host)))
		fail_early("--host2 is too long, invalid or -h's domain");
	if (opt.host2 && (opt.ws_path || opt.sc == SC_OFFLINE || opt.sc == SC_MUC))
		fail_early("--server2: login, idle and chat over TCP only");
	if (opt.host2 && opt.n < 2)
		fail_early("--server2 needs -n 2 or more (one account on each server)");
	if (opt.ws_path && opt.tls == TLS_STARTTLS)
		fail_early("--ws: no STARTTLS over WebSocket (RFC 7395 §3.7): --tls none or direct");
	if (opt.sasl == SASL_PLAIN && opt.tls == TLS_NONE)
		fail_early("--sasl plain needs TLS: PLAIN sends the password as it is");
	if ((opt.sc == SC_CHAT || opt.sc == SC_OFFLINE || opt.sc == SC_MUC) && opt.n < 2)
		fail_early("this scenario needs -n 2 or more");
	check_room();
	if (opt.join_rate < 0)
		opt.join_rate = opt.login_rate;
	if ((uint32_t)opt.j > opt.n)
		opt.j = (int)opt.n;
}

static bool loopback4(const struct sockaddr_storage *sa)
{
	return sa->ss_family == AF_INET &&
	       (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
}

static void resolve_one(const char *addr, int port, const char *what,
			struct sockaddr_storage *sa, socklen_t *salen)
{
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST, .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai;
	char p[8];

	snprintf(p, sizeof(p), "%d", port);
	if (getaddrinfo(addr, p, &hints, &ai) != 0)
		fail_early("%s needs a numeric address, not '%s'", what, addr);
	memcpy(sa, ai->ai_addr, ai->ai_addrlen);
	*salen = ai->ai_addrlen;
	freeaddrinfo(ai);
}

static void resolve_addr(void)
{
	resolve_one(opt.addr, opt.port, "-a", &opt.sa, &opt.salen);
	opt.loopback4 = loopback4(&opt.sa);
	if (opt.addr2) {
		resolve_one(opt.addr2, opt.port2, "--server2", &opt.sa2, &opt.salen2);
		/* the sources are spread for both servers alike */
		opt.loopback4 = opt.loopback4 && loopback4(&opt.sa2);
	}
	if (!opt.loopback4 && opt.n > opt.conns_per_addr)
		fail_early("source addresses are spread over 127.0.0.0/8 only: use a 127.x "
			   "server address or raise --conns-per-addr");
}

void parse_args(int argc, char **argv)
{
	bool port_set = false, tls_set = false;
	int c;

	set_defaults();
	while ((c = getopt_long(argc, argv, "s:n:j:h:a:p:v", long_opts, NULL)) != -1)
		if (!parse_seconds_opt(c) && !parse_login_opt(c, &port_set, &tls_set))
			parse_run_opt(c);
	if (optind < argc)
		fail_early("unexpected argument '%s'", argv[optind]);
	if (opt.ws_path && !tls_set)
		opt.tls = TLS_NONE;
	if (!port_set && opt.tls == TLS_DIRECT)
		opt.port = opt.ws_path ? 5443 : 5223;
	else if (!port_set && opt.ws_path)
		opt.port = 5280;
	if (!opt.nrates) {
		static const double def[] = { 2000, 5000, 10000, 20000, 50000, 100000 };

		memcpy(opt.rates, def, sizeof(def));
		opt.nrates = 6;
	}
	check_args();
	resolve_addr();
}

/*
 * options.h - the command line, parsed once in the parent before the fork:
 * every worker inherits `opt` as it was and only reads it.
 */
#ifndef BENCH_OPTIONS_H
#define BENCH_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#define MAX_BURST	64
#define MAX_WORKERS	64
#define MAX_PIDS	16
#define MAX_RATES	64

enum tls_mode { TLS_NONE, TLS_STARTTLS, TLS_DIRECT };
enum sasl_choice { SASL_AUTO, SASL_PLAIN, SASL_SCRAM1, SASL_SCRAM256 };
enum scenario { SC_LOGIN, SC_IDLE, SC_CHAT, SC_OFFLINE, SC_MUC };
enum reg_mode { REG_NONE, REG_CMD, REG_IBR };

/* The options' names as the command line and the JSON spell them. */
extern const char *const tls_names[];
extern const char *const sasl_names[];
extern const char *const scenario_names[];

struct options {
	const char *host, *addr, *prefix, *password, *resource, *register_cmd, *scram_cache;
	const char *room;	/* muc: the room's bare JID */
	const char *ws_path;	/* --ws: RFC 7395 on this HTTP path; NULL: TCP */
	const char *ws_origin;	/* --ws-origin: the Origin header, if any */
	const char *host2, *addr2;	/* --host2, --server2: NULL without a second server */
	int port;
	int port2;
	enum tls_mode tls;
	enum sasl_choice sasl;
	enum scenario sc;
	enum reg_mode reg;
	uint32_t n;
	int j;
	pid_t pids[MAX_PIDS];
	int npids;
	double rates[MAX_RATES];
	int nrates;
	double step_s, drain_s, hold_s, settle_s, timeout_s, login_rate, login_timeout_s;
	double quiet_s, join_rate;
	uint64_t messages;
	uint32_t max_pending, conns_per_addr, burst;
	bool sm;
	int verbose;
	uint64_t seed;
	struct sockaddr_storage sa, sa2;
	socklen_t salen, salen2;
	/* Not options, but as fixed once the workers run: */
	bool loopback4;		/* the server is on 127.0.0.0/8: sources can spread */
	uint64_t run_start;	/* CLOCK_MONOTONIC is system-wide: older messages are stale */
};

extern struct options opt;

/*
 * --server2 and --host2: federation (s2s). The odd-numbered accounts live on the
 * second server, in its domain; chat then sends from the even accounts only to
 * the odd ones, so that every message crosses the s2s link from the first
 * server to the second. Without them every account is on the one server.
 */
static inline bool acct_on_second(uint32_t idx)
{
	return opt.host2 && (idx & 1);
}
static inline const char *acct_host(uint32_t idx)
{
	return acct_on_second(idx) ? opt.host2 : opt.host;
}

/* Fills opt from argv, or prints the error (stderr and JSON) and exits 2;
 * --help prints the usage and exits 0. */
void parse_args(int argc, char **argv);

/* Before any worker runs: says why on stderr and as {"ok":false,"error":...}
 * on stdout, and exits 2. */
void fail_early(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif

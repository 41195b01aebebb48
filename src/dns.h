/*
 * dns.h - DNS on the loop (c-ares): the s2s targets of a domain and a host's addresses.
 *
 * What a caller may rely on: a callback runs exactly once per query unless the query is
 * cancelled (dns_cancel, dns_free), always later from the loop and never from inside the
 * call that started the query; the query handle is valid until its callback returns or
 * it is cancelled, whichever comes first. Every name the callbacks hand out is ASCII
 * (IDNA A-labels), at most 253 characters, letters, digits, '-', '_' and dots.
 */
#ifndef PARLEY_DNS_H
#define PARLEY_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct config;
struct config_errors;
struct ares_srv_reply;

#define DNS_SRV_MAX	32	/* SRV records used per service; the rest are dropped */
#define DNS_ADDRS_MAX	16	/* addresses handed to a dns_addrs callback */
#define DNS_XMPP_PORT	5269	/* the fallback of RFC 6120 §3.2.2 */

/* Sets up the resolver on server.base from cfg->dns. 0, or -1 with the problem in errs
 * ("FILE:LINE: ..."). Also what --check-config runs: a bad servers list is reported. */
int dns_init(const struct config *cfg, struct config_errors *errs);
/* Cancels everything outstanding: no callback runs after. Every handle is dead. */
void dns_free(void);

struct dns_target {		/* one place to connect to */
	char host[256];		/* the SRV target, or the domain itself on fallback */
	unsigned short port;
	bool direct_tls;	/* from _xmpps-server (XEP-0368): TLS from the first byte */
};

/*
 * The targets of domain for s2s, in the order to try them: _xmpps-server._tcp and
 * _xmpp-server._tcp looked up at once; their records merged and sorted by priority,
 * records of equal priority ordered by RFC 2782's weighted random selection (on a tie of
 * priority between the two services, direct TLS first, as XEP-0368 suggests). A single
 * record with target "." says the service is decidedly not available (RFC 2782).
 *   - records of either service: those (if the other service failed, that is logged);
 *   - else a DNS failure of either: err says what (the fallback might be wrong);
 *   - else _xmpp-server is ".": err = "no XMPP service (SRV \".\")";
 *   - else (no records, or only _xmpps-server "."): one fallback target, the domain on
 *     5269, not direct TLS (RFC 6120 §3.2.2).
 * A literal IP domain gives the fallback without a query. err is NULL on success; on a
 * failure n = 0. NULL only when out of memory or before dns_init (no callback then).
 */
typedef void (*dns_targets_fn)(void *arg, const struct dns_target *t, size_t n,
			       const char *err);
struct dns_query *dns_s2s_targets(const char *domain, dns_targets_fn cb, void *arg);

/*
 * The addresses of host (AAAA and A at once, ares_getaddrinfo: /etc/hosts as the system
 * says, no search domains), each with port set, interleaved IPv6, IPv4, IPv6, ... (RFC
 * 8305 §4 lite), at most DNS_ADDRS_MAX; err as above. A literal IP (IPv6 with or
 * without brackets) gives itself without a query. NULL as for dns_s2s_targets.
 */
typedef void (*dns_addrs_fn)(void *arg, const struct sockaddr_storage *a, size_t n,
			     const char *err);
struct dns_query *dns_addrs(const char *host, unsigned short port, dns_addrs_fn cb,
			    void *arg);

/* The callback of q does not run; q is freed. Not from q's own callback (q is freed
 * when it returns). */
void dns_cancel(struct dns_query *q);

/* For parleyctl/metrics: dns_s2s_targets/dns_addrs calls started, those that ended with
 * an error, and those whose callback has not run yet (cancelled ones excluded). */
struct dns_stats {
	unsigned long long queries, failures;
	unsigned pending;
};
const struct dns_stats *dns_stats(void);

/* ---- the pure parts, for the unit tests ---- */

struct dns_srv_record {
	char host[256];
	unsigned short port, priority, weight;
	bool direct_tls;
};

/* What one service's SRV lookup said. */
enum dns_srv_state {
	DNS_SRV_NONE,		/* NXDOMAIN or no SRV data */
	DNS_SRV_DOT,		/* the single record "." */
	DNS_SRV_FOUND,		/* r[0..n) */
	DNS_SRV_FAILED,		/* err */
};
struct dns_srv_answer {
	enum dns_srv_state state;
	size_t n;
	struct dns_srv_record r[DNS_SRV_MAX];
	char err[160];
};

/* Orders r[0..n) in place as dns_s2s_targets does, with rnd() the random source
 * (uniform 32-bit). */
void dns_srv_order(struct dns_srv_record *r, size_t n, uint32_t (*rnd)(void));
/* Fills a from a c-ares status and, on ARES_SUCCESS, ares_parse_srv_reply's list:
 * invalid targets and port 0 are dropped (a service with only those FAILED), at most
 * DNS_SRV_MAX kept. name is the queried name, for messages. */
void dns_srv_collect(struct dns_srv_answer *a, const char *name, int status,
		     const struct ares_srv_reply *list, bool direct_tls);
/* The decision above, from both answers: fills out[0..2 * DNS_SRV_MAX) and returns n,
 * or returns 0 with *err set. domain is the ASCII domain (the fallback's host). */
size_t dns_srv_decide(const struct dns_srv_answer *xmpps, const struct dns_srv_answer *xmpp,
		      const char *domain, struct dns_target *out, const char **err,
		      uint32_t (*rnd)(void));
/* Whether name (no trailing dot) is a host name we hand out: see the top. */
bool dns_name_valid(const char *name);
/* Checks and normalises a <dns servers> list ("1.2.3.4, [::1]:53, ::2") into the CSV
 * c-ares 1.18 takes ("1.2.3.4,[::1]:53,::2"). 0, or -1 with a message in err. */
int dns_servers_normalize(const char *in, char *out, size_t outlen, char *err,
			  size_t errlen);

#endif

/*
 * dns.c - asynchronous DNS for server-to-server streams: c-ares on the libevent loop.
 *
 * s2s needs, for a remote domain, where to connect (SRV, RFC 6120 §3.2 and XEP-0368) and
 * then each target's addresses, without ever blocking the loop. c-ares does the protocol
 * and the parsing (a DNS answer is hostile input: we never parse a packet ourselves);
 * this file drives it and decides. One channel for the process; its sockets are watched
 * with libevent events (the sock-state callback says which and for what) and one timer
 * follows ares_timeout's deadline.
 *
 * A public query (struct dns_query) owns up to two c-ares requests (struct dns_req, the
 * argument c-ares calls back with). c-ares cannot cancel one request, so cancelling
 * detaches them: they finish inside c-ares (bounded by timeout x tries), find no query
 * and free themselves. Every answer is handed over from an active event, never from a
 * c-ares callback or from the call that started the query: c-ares answers some queries
 * at once (literals, /etc/hosts, instant failures) and the s2s state machine must not be
 * re-entered while it is starting one.
 *
 * The decisions (which records count, "." and the fallback, RFC 2782's weighted order)
 * are pure functions below the I/O, driven by tests/unit/test_dns.c.
 */
#include "dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <event2/event.h>
#include <idna.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "server.h"

#define DNS_SERVERS_MAX	16
#define DNS_LIST_MAX	4096	/* records looked at in one answer (a 64 KiB packet holds fewer) */
#define DNS_NODES_MAX	1024	/* addresses looked at in one ares_getaddrinfo answer */

enum dns_kind { DNS_TARGETS, DNS_ADDRS };

static const char *const srv_prefix[2] = { "_xmpps-server._tcp", "_xmpp-server._tcp" };

struct dns_req {		/* one c-ares request; q is NULL once its query is gone */
	struct dns_query *q;
	int slot;
};

struct dns_query {
	struct dns_query *prev, *next;	/* dns.queries: what dns_free cancels */
	enum dns_kind kind;
	struct event *done;		/* hands the answer over from the loop */
	struct dns_req *req[2];		/* outstanding c-ares requests */
	unsigned outstanding;
	void *arg;
	char name[256];			/* the ASCII domain or host (printable for logs) */
	unsigned short port;
	const char *err;		/* set before any request: the answer is this error */
	union {
		struct {
			dns_targets_fn cb;
			struct dns_srv_answer ans[2];	/* [0] _xmpps-server, [1] _xmpp-server */
		} t;
		struct {
			dns_addrs_fn cb;
			struct sockaddr_storage a[DNS_ADDRS_MAX];
			size_t n;
			char err[300];
		} a;
	} u;
};

struct dns_sock {		/* a socket c-ares asked us to watch */
	ares_socket_t fd;
	struct event *ev;
	struct dns_sock *next;
};

static struct {
	bool up, lib;
	ares_channel ch;
	struct event *timer;
	struct dns_sock *socks;
	struct dns_query *queries;
	struct dns_stats stats;
	uint64_t rnd_state;
} dns;

/* ---- the pure parts ---- */

static bool name_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

bool dns_name_valid(const char *name)
{
	size_t len = strnlen(name, 254), label = 0;

	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (name[i] == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!name_char((unsigned char)name[i]) || ++label > 63)
			return false;
	}
	return label > 0;
}

/* A copy of untrusted text that is safe to log. */
static void printable(char *out, size_t outlen, const char *in)
{
	size_t i;

	for (i = 0; in && in[i] && i + 1 < outlen; i++)
		out[i] = (in[i] >= 0x20 && in[i] < 0x7f) ? in[i] : '?';
	out[i] = '\0';
}

void dns_srv_collect(struct dns_srv_answer *a, const char *name, int status,
		     const struct ares_srv_reply *list, bool direct_tls)
{
	size_t total = 0, dots = 0, bad = 0, dropped = 0;
	const struct ares_srv_reply *p;

	a->n = 0;
	a->err[0] = '\0';
	if (status == ARES_ENOTFOUND || status == ARES_ENODATA) {
		a->state = DNS_SRV_NONE;
		log_debug("dns", "%s: no SRV records (%s)", name, ares_strerror(status));
		return;
	}
	if (status != ARES_SUCCESS) {
		a->state = DNS_SRV_FAILED;
		snprintf(a->err, sizeof(a->err), "%s: %s", name, ares_strerror(status));
		log_debug("dns", "%s", a->err);
		return;
	}
	for (p = list; p && total < DNS_LIST_MAX; p = p->next, total++) {
		struct dns_srv_record *r;
		char shown[80];

		if (p->host && (!*p->host || strcmp(p->host, ".") == 0)) {
			dots++;
			continue;
		}
		if (!p->host || !dns_name_valid(p->host) || p->port == 0) {
			printable(shown, sizeof(shown), p->host);
			log_info("dns", "%s: ignoring the SRV record \"%s\" port %u: not a valid "
				 "target", name, shown, p->port);
			bad++;
			continue;
		}
		r = &a->r[a->n];
		if (a->n == DNS_SRV_MAX) {
			/* Keep the best priorities: replace the worst kept if this is better. */
			size_t worst = 0;

			for (size_t i = 1; i < a->n; i++)
				if (a->r[i].priority > a->r[worst].priority)
					worst = i;
			dropped++;
			if (p->priority >= a->r[worst].priority)
				continue;
			r = &a->r[worst];
		} else {
			a->n++;
		}
		snprintf(r->host, sizeof(r->host), "%s", p->host);
		r->port = p->port;
		r->priority = p->priority;
		r->weight = p->weight;
		r->direct_tls = direct_tls;
		log_debug("dns", "%s: SRV %u %u %u %s", name, p->priority, p->weight, p->port,
			  p->host);
	}
	if (dropped || p)
		log_info("dns", "%s: more than %d SRV records; the best %d by priority are used",
			 name, DNS_SRV_MAX, DNS_SRV_MAX);
	if (a->n) {
		a->state = DNS_SRV_FOUND;
	} else if (bad) {
		a->state = DNS_SRV_FAILED;
		snprintf(a->err, sizeof(a->err), "%s: no valid SRV target in the answer", name);
	} else if (dots) {
		/* RFC 2782: "." as the only record. Several "." mean no less. */
		a->state = DNS_SRV_DOT;
		log_debug("dns", "%s: SRV \".\": the service is decidedly not available", name);
	} else {
		a->state = DNS_SRV_NONE;	/* an answer with no SRV in it (a CNAME alone) */
	}
}

/* The sort key: priority, then direct TLS first, then weight 0 first (RFC 2782 wants
 * those at the beginning of the list the weighted selection runs on). */
static bool srv_before(const struct dns_srv_record *a, const struct dns_srv_record *b)
{
	if (a->priority != b->priority)
		return a->priority < b->priority;
	if (a->direct_tls != b->direct_tls)
		return a->direct_tls;
	return a->weight == 0 && b->weight != 0;
}

/* RFC 2782's selection on r[0..n), one priority and service: a running sum of weights,
 * a number uniform in [0, sum], the first record whose running sum reaches it goes
 * next. A weight-0 record (at the front) thus has a 1/(sum + 1) chance per round. */
static void srv_weighted(struct dns_srv_record *r, size_t n, uint32_t (*rnd)(void))
{
	for (size_t k = 0; k + 1 < n; k++) {
		uint32_t sum = 0, run = 0, pick;
		size_t sel;

		for (size_t i = k; i < n; i++)
			sum += r[i].weight;		/* at most 64 x 65535: no overflow */
		if (sum == 0)
			return;			/* only weight 0 left: the order is as good */
		pick = rnd() % (sum + 1);
		for (sel = k; sel + 1 < n; sel++) {
			run += r[sel].weight;
			if (run >= pick)
				break;
		}
		if (sel != k) {
			struct dns_srv_record chosen = r[sel];

			memmove(&r[k + 1], &r[k], (sel - k) * sizeof(*r));
			r[k] = chosen;
		}
	}
}

void dns_srv_order(struct dns_srv_record *r, size_t n, uint32_t (*rnd)(void))
{
	/* Insertion sort: stable, and n is at most 2 x DNS_SRV_MAX. */
	for (size_t i = 1; i < n; i++) {
		struct dns_srv_record cur = r[i];
		size_t j = i;

		for (; j > 0 && srv_before(&cur, &r[j - 1]); j--)
			r[j] = r[j - 1];
		r[j] = cur;
	}
	for (size_t g = 0, end; g < n; g = end) {
		for (end = g + 1; end < n && r[end].priority == r[g].priority &&
		     r[end].direct_tls == r[g].direct_tls; end++)
			;
		srv_weighted(r + g, end - g, rnd);
	}
}

size_t dns_srv_decide(const struct dns_srv_answer *xmpps, const struct dns_srv_answer *xmpp,
		      const char *domain, struct dns_target *out, const char **err,
		      uint32_t (*rnd)(void))
{
	const struct dns_srv_answer *ans[2] = { xmpps, xmpp };
	struct dns_srv_record r[2 * DNS_SRV_MAX];
	size_t n = 0;

	*err = NULL;
	for (int s = 0; s < 2; s++) {
		if (ans[s]->state != DNS_SRV_FOUND)
			continue;
		for (size_t i = 0; i < ans[s]->n && i < DNS_SRV_MAX; i++) {
			r[n] = ans[s]->r[i];
			r[n++].direct_tls = s == 0;
		}
	}
	if (n) {
		dns_srv_order(r, n, rnd);
		for (size_t i = 0; i < n; i++) {
			memcpy(out[i].host, r[i].host, sizeof(out[i].host));
			out[i].port = r[i].port;
			out[i].direct_tls = r[i].direct_tls;
		}
		return n;
	}
	/* No records: a failure might have hidden some, so the fallback could be wrong. */
	if (xmpp->state == DNS_SRV_FAILED || xmpps->state == DNS_SRV_FAILED) {
		*err = xmpp->state == DNS_SRV_FAILED ? xmpp->err : xmpps->err;
		return 0;
	}
	/* "." on _xmpp-server: not even 5269 (RFC 6120 §3.2.1: no fallback). */
	if (xmpp->state == DNS_SRV_DOT) {
		*err = "no XMPP service (SRV \".\")";
		return 0;
	}
	snprintf(out[0].host, sizeof(out[0].host), "%s", domain);
	out[0].port = DNS_XMPP_PORT;
	out[0].direct_tls = false;
	return 1;
}

/* One entry of a servers list into out: "a.b.c.d[:port]", "v6" or "[v6]:port". */
static int server_entry(const char *item, char *out, size_t outlen, char *err,
			size_t errlen)
{
	char buf[64], *addr = buf, *port = NULL, *c;
	unsigned char bin[16];
	bool bracket = false, v6;
	unsigned long pn = 0;

	snprintf(buf, sizeof(buf), "%s", item);
	if (buf[0] == '[') {
		c = strchr(buf, ']');
		if (!c || (c[1] && c[1] != ':')) {
			snprintf(err, errlen, "\"%s\": an IPv6 address in brackets, \"[::1]:53\"",
				 item);
			return -1;
		}
		*c = '\0';
		addr = buf + 1;
		port = c[1] ? c + 2 : NULL;
		bracket = true;
	} else if ((c = strchr(buf, ':')) && c == strrchr(buf, ':')) {
		*c = '\0';			/* one colon: IPv4 and a port */
		port = c + 1;
	}
	v6 = inet_pton(AF_INET6, addr, bin) == 1;
	if (!v6 && (bracket || inet_pton(AF_INET, addr, bin) != 1)) {
		snprintf(err, errlen, "\"%s\" is not an IPv4 or IPv6 address", item);
		return -1;
	}
	if (port) {
		char *end;

		pn = strtoul(port, &end, 10);
		if (!*port || *end || port[0] == '-' || port[0] == '+' || pn < 1 || pn > 65535) {
			snprintf(err, errlen, "\"%s\": the port must be 1 to 65535", item);
			return -1;
		}
	}
	if (!port)
		snprintf(out, outlen, "%s", addr);
	else if (v6)
		snprintf(out, outlen, "[%s]:%lu", addr, pn);
	else
		snprintf(out, outlen, "%s:%lu", addr, pn);
	return 0;
}

int dns_servers_normalize(const char *in, char *out, size_t outlen, char *err,
			  size_t errlen)
{
	size_t used = 0, count = 0;
	const char *p = in;

	if (!outlen)
		return -1;
	out[0] = '\0';
	for (;;) {
		const char *end = strchr(p, ','), *b = p, *e = end ? end : p + strlen(p);
		char item[64], one[80];
		size_t len;

		while (b < e && *b == ' ')
			b++;
		while (e > b && e[-1] == ' ')
			e--;
		len = (size_t)(e - b);
		if (len == 0) {
			snprintf(err, errlen, "an empty entry in the list");
			return -1;
		}
		if (len >= sizeof(item)) {
			snprintf(err, errlen, "\"%.*s...\" is not an address", 40, b);
			return -1;
		}
		memcpy(item, b, len);
		item[len] = '\0';
		if (++count > DNS_SERVERS_MAX) {
			snprintf(err, errlen, "at most %d servers", DNS_SERVERS_MAX);
			return -1;
		}
		if (server_entry(item, one, sizeof(one), err, errlen) < 0)
			return -1;
		len = strlen(one);
		if (used + len + 2 > outlen) {
			snprintf(err, errlen, "the list is too long");
			return -1;
		}
		if (used)
			out[used++] = ',';
		memcpy(out + used, one, len + 1);
		used += len;
		if (!end)
			return 0;
		p = end + 1;
	}
}

/* ---- the loop: c-ares's sockets and its timer ---- */

static void timer_rearm(void)
{
	struct timeval tv, *tp;

	if (!dns.ch)
		return;
	tp = ares_timeout(dns.ch, NULL, &tv);
	if (tp)
		evtimer_add(dns.timer, tp);
	else
		evtimer_del(dns.timer);
}

static void timer_fired(evutil_socket_t fd, short what, void *arg)
{
	ares_process_fd(dns.ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);	/* the timeouts */
	timer_rearm();
}

/* May free the struct dns_sock it was called for: nothing after ares_process_fd. */
static void sock_ready(evutil_socket_t fd, short what, void *arg)
{
	ares_process_fd(dns.ch, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
			(what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	timer_rearm();
}

static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns_sock **pp, *s;

	for (pp = &dns.socks; *pp && (*pp)->fd != fd; pp = &(*pp)->next)
		;
	s = *pp;
	if (!readable && !writable) {
		if (s) {
			*pp = s->next;
			if (s->ev)
				event_free(s->ev);
			free(s);
		}
		return;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s) {
			/* The query then times out (the timer still runs): not silent. */
			log_warn("dns", "out of memory watching a DNS socket");
			return;
		}
		s->fd = fd;
		s->next = dns.socks;
		dns.socks = s;
	} else if (s->ev) {
		event_free(s->ev);
		s->ev = NULL;
	}
	s->ev = event_new(server.base, fd, (readable ? EV_READ : 0) |
			  (writable ? EV_WRITE : 0) | EV_PERSIST, sock_ready, s);
	if (!s->ev || event_add(s->ev, NULL) < 0)
		log_warn("dns", "cannot watch the DNS socket %d", (int)fd);
}

/* ---- queries ---- */

/* splitmix64, seeded once in dns_init: the weights need spread, not secrecy. */
static uint32_t dns_rnd(void)
{
	uint64_t z = (dns.rnd_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return (uint32_t)((z ^ (z >> 31)) >> 32);
}

static void query_done(evutil_socket_t fd, short what, void *arg);

static struct dns_query *query_new(enum dns_kind kind, void *arg)
{
	struct dns_query *q;

	if (!dns.up)
		return NULL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	q->done = event_new(server.base, -1, 0, query_done, q);
	if (!q->done) {
		free(q);
		return NULL;
	}
	q->kind = kind;
	q->arg = arg;
	q->next = dns.queries;
	if (dns.queries)
		dns.queries->prev = q;
	dns.queries = q;
	dns.stats.queries++;
	dns.stats.pending++;
	return q;
}

static void query_unlink(struct dns_query *q)
{
	if (q->prev)
		q->prev->next = q->next;
	else
		dns.queries = q->next;
	if (q->next)
		q->next->prev = q->prev;
	q->prev = q->next = NULL;
	dns.stats.pending--;
}

static void query_free(struct dns_query *q)
{
	for (int i = 0; i < 2; i++)
		if (q->req[i])
			q->req[i]->q = NULL;	/* it frees itself when c-ares is done */
	event_free(q->done);
	free(q);
}

/* The answer is complete: hand it over from the loop. */
static void query_ready(struct dns_query *q)
{
	event_active(q->done, EV_TIMEOUT, 1);
}

static struct dns_req *req_new(struct dns_query *q, int slot)
{
	struct dns_req *rq = calloc(1, sizeof(*rq));

	if (rq) {
		rq->q = q;
		rq->slot = slot;
		q->req[slot] = rq;
		q->outstanding++;
	}
	return rq;
}

/* The query an answer belongs to, or NULL (cancelled, or dns_free): rq is freed. */
static struct dns_query *req_end(struct dns_req *rq)
{
	struct dns_query *q = rq->q;

	if (q) {
		q->req[rq->slot] = NULL;
		q->outstanding--;
	}
	free(rq);
	return q;
}

static void deliver_targets(struct dns_query *q)
{
	struct dns_target *t = NULL;
	const char *err = q->err;
	size_t n = 0;

	if (!err) {
		t = malloc(2 * DNS_SRV_MAX * sizeof(*t));
		if (!t)
			err = "out of memory";
		else
			n = dns_srv_decide(&q->u.t.ans[0], &q->u.t.ans[1], q->name, t, &err,
					   dns_rnd);
	}
	if (err) {
		n = 0;
		dns.stats.failures++;
		log_info("dns", "s2s targets of %s: %s", q->name, err);
	} else {
		for (int s = 0; s < 2; s++)
			if (q->u.t.ans[s].state == DNS_SRV_FAILED)
				log_info("dns", "%s (the other service's records are used)",
					 q->u.t.ans[s].err);
		bool fallback = q->u.t.ans[0].state != DNS_SRV_FOUND &&
				q->u.t.ans[1].state != DNS_SRV_FOUND;

		for (size_t i = 0; i < n; i++)
			log_debug("dns", "s2s target %zu of %s: %s:%u%s", i + 1, q->name,
				  t[i].host, t[i].port, fallback ? " (no SRV: the fallback)"
				  : t[i].direct_tls ? " (direct TLS)" : "");
	}
	q->u.t.cb(q->arg, t, n, err);
	free(t);
}

static void deliver_addrs(struct dns_query *q)
{
	const char *err = q->err ? q->err : q->u.a.err[0] ? q->u.a.err : NULL;

	if (err) {
		dns.stats.failures++;
		log_info("dns", "addresses of %s: %s", q->name, err);
		q->u.a.n = 0;
	} else if (log_get_level() <= LOG_DEBUG) {
		for (size_t i = 0; i < q->u.a.n; i++) {
			const struct sockaddr_storage *ss = &q->u.a.a[i];
			char text[INET6_ADDRSTRLEN] = "?";

			if (ss->ss_family == AF_INET6)
				inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr,
					  text, sizeof(text));
			else
				inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr,
					  text, sizeof(text));
			log_debug("dns", "address %zu of %s: %s", i + 1, q->name, text);
		}
	}
	q->u.a.cb(q->arg, q->u.a.a, q->u.a.n, err);
}

static void query_done(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;

	query_unlink(q);
	if (q->kind == DNS_TARGETS)
		deliver_targets(q);
	else
		deliver_addrs(q);
	query_free(q);
}

void dns_cancel(struct dns_query *q)
{
	if (!q)
		return;
	log_debug("dns", "cancelled: %s", q->name);
	query_unlink(q);
	query_free(q);
}

/* A literal IPv4 or IPv6 address (brackets allowed) into ss with port. */
static bool parse_literal(const char *host, unsigned short port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	char buf[INET6_ADDRSTRLEN + 1];
	size_t len = strnlen(host, sizeof(buf) + 2);

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		return true;
	}
	if (len >= 2 && host[0] == '[' && host[len - 1] == ']' && len - 2 < sizeof(buf)) {
		memcpy(buf, host + 1, len - 2);
		buf[len - 2] = '\0';
	} else if (len < sizeof(buf)) {
		memcpy(buf, host, len + 1);
	} else {
		return false;
	}
	if (inet_pton(AF_INET6, buf, &sin6->sin6_addr) != 1)
		return false;
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	return true;
}

/* The name as DNS wants it (A-labels, no trailing dot) into out; -1 if it is not one. */
static int ascii_name(const char *in, char *out, size_t outlen)
{
	size_t len = strnlen(in, 1024);
	bool ascii = true;

	for (size_t i = 0; i < len; i++)
		if ((unsigned char)in[i] >= 0x80)
			ascii = false;
	if (len == 1024 || (ascii && len >= outlen))
		return -1;
	if (ascii) {
		snprintf(out, outlen, "%s", in);
	} else {
		char *a = NULL;

		if (idna_to_ascii_8z(in, &a, 0) != IDNA_SUCCESS || !a || strlen(a) >= outlen) {
			free(a);
			return -1;
		}
		snprintf(out, outlen, "%s", a);
		free(a);
	}
	len = strlen(out);
	if (len && out[len - 1] == '.')
		out[len - 1] = '\0';
	return dns_name_valid(out) ? 0 : -1;
}

static void srv_answered(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	int slot = ((struct dns_req *)arg)->slot;
	struct dns_query *q = req_end(arg);
	struct ares_srv_reply *list = NULL;
	char name[300];

	if (!q)
		return;
	if (status == ARES_SUCCESS)
		status = ares_parse_srv_reply(abuf, alen, &list);
	snprintf(name, sizeof(name), "%s.%s", srv_prefix[slot], q->name);
	dns_srv_collect(&q->u.t.ans[slot], name, status, list, slot == 0);
	if (list)
		ares_free_data(list);
	if (q->outstanding == 0)
		query_ready(q);
}

struct dns_query *dns_s2s_targets(const char *domain, dns_targets_fn cb, void *arg)
{
	struct dns_query *q = query_new(DNS_TARGETS, arg);
	struct sockaddr_storage ss;

	if (!q)
		return NULL;
	q->u.t.cb = cb;
	q->port = DNS_XMPP_PORT;
	if (domain && parse_literal(domain, 0, &ss)) {
		/* An IP domain has no SRV records: straight to the fallback, as itself. */
		const void *bin = ss.ss_family == AF_INET
			? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
			: (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;

		inet_ntop(ss.ss_family, bin, q->name, sizeof(q->name));
		log_debug("dns", "s2s targets of %s: an IP address, no SRV", q->name);
		query_ready(q);
		return q;
	}
	if (!domain || ascii_name(domain, q->name, sizeof(q->name)) < 0) {
		printable(q->name, 80, domain ? domain : "(null)");
		q->err = "not a valid domain name";
		query_ready(q);
		return q;
	}
	log_debug("dns", "SRV %s.%s and %s.%s?", srv_prefix[0], q->name, srv_prefix[1],
		  q->name);
	for (int i = 0; i < 2; i++)
		if (!req_new(q, i)) {
			q->u.t.ans[i].state = DNS_SRV_FAILED;
			snprintf(q->u.t.ans[i].err, sizeof(q->u.t.ans[i].err), "out of memory");
		}
	if (q->outstanding == 0) {
		query_ready(q);
		return q;
	}
	/* Both counted before either is sent: c-ares may answer inside ares_query. */
	for (int i = 0; i < 2; i++) {
		char name[300];

		if (!q->req[i])
			continue;
		snprintf(name, sizeof(name), "%s.%s", srv_prefix[i], q->name);
		ares_query(dns.ch, name, ns_c_in, ns_t_srv, srv_answered, q->req[i]);
	}
	timer_rearm();
	return q;
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
			      &((const struct sockaddr_in6 *)b)->sin6_addr,
			      sizeof(struct in6_addr)) == 0;
	return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
	       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
}

/* IPv6 and IPv4 apart (each in the order DNS gave, duplicates dropped), then one of
 * each in turn: a broken IPv6 path costs one attempt, not all of them (RFC 8305 §4). */
static void collect_addrs(struct dns_query *q, const struct ares_addrinfo *res)
{
	struct sockaddr_storage fam[2][DNS_ADDRS_MAX];	/* [0] IPv6, [1] IPv4 */
	size_t nf[2] = { 0, 0 }, seen = 0, at[2] = { 0, 0 };
	const struct ares_addrinfo_node *node;

	for (node = res->nodes; node && seen < DNS_NODES_MAX; node = node->ai_next, seen++) {
		int f;
		size_t len;
		struct sockaddr_storage *ss;
		bool dup = false;

		if (node->ai_family == AF_INET6 && node->ai_addr)
			f = 0, len = sizeof(struct sockaddr_in6);
		else if (node->ai_family == AF_INET && node->ai_addr)
			f = 1, len = sizeof(struct sockaddr_in);
		else
			continue;
		if (node->ai_addrlen < len || nf[f] == DNS_ADDRS_MAX)
			continue;
		ss = &fam[f][nf[f]];
		memset(ss, 0, sizeof(*ss));
		memcpy(ss, node->ai_addr, len);
		if (f == 0)
			((struct sockaddr_in6 *)ss)->sin6_port = htons(q->port);
		else
			((struct sockaddr_in *)ss)->sin_port = htons(q->port);
		for (size_t i = 0; i < nf[f] && !dup; i++)
			dup = same_addr(&fam[f][i], ss);
		if (!dup)
			nf[f]++;
	}
	q->u.a.n = 0;
	while (q->u.a.n < DNS_ADDRS_MAX && (at[0] < nf[0] || at[1] < nf[1]))
		for (int f = 0; f < 2 && q->u.a.n < DNS_ADDRS_MAX; f++)
			if (at[f] < nf[f])
				q->u.a.a[q->u.a.n++] = fam[f][at[f]++];
}

static void addrs_answered(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct dns_query *q = req_end(arg);

	if (q) {
		if (status == ARES_SUCCESS && res)
			collect_addrs(q, res);
		else if (status == ARES_SUCCESS)
			status = ARES_ENODATA;
		if (status != ARES_SUCCESS)
			snprintf(q->u.a.err, sizeof(q->u.a.err), "%s: %s", q->name,
				 ares_strerror(status));
		else if (q->u.a.n == 0)
			snprintf(q->u.a.err, sizeof(q->u.a.err), "%s: no IPv6 or IPv4 address",
				 q->name);
		query_ready(q);
	}
	if (res)
		ares_freeaddrinfo(res);
}

struct dns_query *dns_addrs(const char *host, unsigned short port, dns_addrs_fn cb,
			    void *arg)
{
	struct dns_query *q = query_new(DNS_ADDRS, arg);
	struct ares_addrinfo_hints hints = { 0 };

	if (!q)
		return NULL;
	q->u.a.cb = cb;
	q->port = port;
	if (host && parse_literal(host, port, &q->u.a.a[0])) {
		printable(q->name, sizeof(q->name), host);
		q->u.a.n = 1;
		query_ready(q);
		return q;
	}
	if (!host || ascii_name(host, q->name, sizeof(q->name)) < 0) {
		printable(q->name, 80, host ? host : "(null)");
		q->err = "not a valid host name";
		query_ready(q);
		return q;
	}
	if (!req_new(q, 0)) {
		q->err = "out of memory";
		query_ready(q);
		return q;
	}
	log_debug("dns", "AAAA and A %s?", q->name);
	/* NOSORT: the order is ours (collect_addrs); RFC 6724 sorting would open sockets. */
	hints.ai_flags = ARES_AI_NOSORT;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	ares_getaddrinfo(dns.ch, q->name, NULL, &hints, addrs_answered, q->req[0]);
	timer_rearm();
	return q;
}

const struct dns_stats *dns_stats(void)
{
	return &dns.stats;
}

/* ---- set-up ---- */

static void seed_rnd(void)
{
	uint64_t seed = 0;

	if (RAND_bytes((unsigned char *)&seed, sizeof(seed)) != 1 &&
	    getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
		seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	dns.rnd_state = seed;
}

int dns_init(const struct config *cfg, struct config_errors *errs)
{
	const struct config_dns *d = &cfg->dns;
	struct ares_options o;
	char csv[1100], why[200];
	int rc, mask;

	if (dns.up)
		return 0;
	if (d->servers && dns_servers_normalize(d->servers, csv, sizeof(csv), why,
						sizeof(why)) < 0) {
		config_error(errs, cfg->path, d->line, "<dns servers=\"%.200s\">: %s",
			     d->servers, why);
		return -1;
	}
	rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc != ARES_SUCCESS) {
		config_error(errs, cfg->path, d->line, "c-ares: %s", ares_strerror(rc));
		return -1;
	}
	dns.lib = true;
	memset(&o, 0, sizeof(o));
	o.timeout = (int)d->timeout_ms;		/* ARES_OPT_TIMEOUTMS: milliseconds */
	o.tries = (int)d->tries;
	o.sock_state_cb = sock_state;
	o.domains = NULL;			/* no search list: s2s names are absolute */
	o.ndomains = 0;
	mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB | ARES_OPT_DOMAINS;
	rc = ares_init_options(&dns.ch, &o, mask);
	if (rc != ARES_SUCCESS) {
		config_error(errs, cfg->path, d->line, "c-ares: %s", ares_strerror(rc));
		dns.ch = NULL;
		goto fail;
	}
	if (d->servers && (rc = ares_set_servers_ports_csv(dns.ch, csv)) != ARES_SUCCESS) {
		config_error(errs, cfg->path, d->line, "<dns servers=\"%.200s\">: %s",
			     d->servers, ares_strerror(rc));
		goto fail;
	}
	dns.timer = evtimer_new(server.base, timer_fired, NULL);
	if (!dns.timer) {
		config_error(errs, cfg->path, d->line, "dns: cannot create its timer");
		goto fail;
	}
	seed_rnd();
	dns.up = true;
	log_debug("dns", "c-ares %s, servers %s, timeout %u ms, %u tries", ares_version(NULL),
		  d->servers ? csv : "of /etc/resolv.conf", d->timeout_ms, d->tries);
	return 0;
fail:
	dns_free();
	return -1;
}

void dns_free(void)
{
	/* Queries first: the requests that ares_destroy calls back then find none. */
	while (dns.queries) {
		struct dns_query *q = dns.queries;

		query_unlink(q);
		query_free(q);
	}
	if (dns.ch)
		ares_destroy(dns.ch);	/* closes its sockets: sock_state frees their events */
	while (dns.socks) {
		struct dns_sock *s = dns.socks;

		dns.socks = s->next;
		if (s->ev)
			event_free(s->ev);
		free(s);
	}
	if (dns.timer)
		event_free(dns.timer);
	if (dns.lib)
		ares_library_cleanup();
	memset(&dns, 0, sizeof(dns));
}

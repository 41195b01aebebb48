/*
 * parley-bench.c - a load generator for XMPP servers on loopback.
 *
 * It logs N accounts into a server (Parley, Prosody, ejabberd: any RFC 6120
 * server) and measures one scenario: the login rate, the memory an idle
 * session costs, 1:1 chat throughput and latency at stepped rates, or offline
 * storage and flush. One JSON object with the figures goes to stdout; progress
 * goes to stderr.
 *
 * Process model: the parent forks -j workers, each with its own libevent loop
 * and its own share of the accounts, and drives them through the phases of the
 * scenario over two pipes per worker (commands down, binary reports up). The
 * parent only coordinates, reads /proc for the server's and the workers' CPU
 * and memory, and aggregates.
 *
 * XML: a server sends a handful of stream-level elements and stanzas, so the
 * input is cut into top-level elements by a small resumable scanner (tags,
 * quotes, comments, CDATA, depth) and each element is read in place through a
 * cursor over its children and attributes. No tree is built and nothing is
 * allocated per stanza: a chat message costs one scan and a few compares, and
 * sending one costs a memcpy into a stack buffer and (on plain TCP) one send().
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#define NS_STREAMS	"http://etherx.jabber.org/streams"
#define NS_TLS		"urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL		"urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIND		"urn:ietf:params:xml:ns:xmpp-bind"
#define NS_SESSION	"urn:ietf:params:xml:ns:xmpp-session"
#define NS_SM		"urn:xmpp:sm:3"
#define NS_REGISTER	"jabber:iq:register"
#define NS_PING		"urn:xmpp:ping"
#define NS_STANZAS	"urn:ietf:params:xml:ns:xmpp-stanzas"

#define MAX_STANZA	(1u << 20)	/* a server element larger than this is an error */
#define MSG_MAX		1024		/* one preformatted message */
#define MAX_BURST	64
#define MAX_WORKERS	64
#define MAX_PIDS	16
#define MAX_RATES	64
#define JID_PART_MAX	255
#define SEND_BACKLOG	(256 * 1024)	/* skip a sender whose output queue is this long */
#define OFFLINE_FILL	(32 * 1024)	/* offline senders keep this much queued */

/* ---- options ---- */

enum tls_mode { TLS_NONE, TLS_STARTTLS, TLS_DIRECT };
enum sasl_choice { SASL_AUTO, SASL_PLAIN, SASL_SCRAM1, SASL_SCRAM256 };
enum scenario { SC_LOGIN, SC_IDLE, SC_CHAT, SC_OFFLINE };
enum reg_mode { REG_NONE, REG_CMD, REG_IBR };

static const char *const tls_names[] = { "none", "starttls", "direct" };
static const char *const sasl_names[] = { "auto", "plain", "scram-sha-1", "scram-sha-256" };
static const char *const scenario_names[] = { "login", "idle", "chat", "offline" };

static struct {
	const char *host, *addr, *prefix, *password, *resource, *register_cmd, *scram_cache;
	int port;
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
	double quiet_s;
	uint64_t messages;
	uint32_t max_pending, conns_per_addr, burst;
	bool sm;
	int verbose;
	uint64_t seed;
	struct sockaddr_storage sa;
	socklen_t salen;
} opt;

/* ---- small utilities ---- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int worker_id = -1;	/* -1 in the parent */
static uint64_t run_start;	/* CLOCK_MONOTONIC is system-wide: older messages are stale */
static bool loopback4;		/* the server is on 127.0.0.0/8: sources can spread */

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (worker_id < 0)
		fprintf(stderr, "parley-bench: %s\n", buf);
	else
		fprintf(stderr, "parley-bench[w%d]: %s\n", worker_id, buf);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static char *put_u64(char *p, uint64_t v)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static char *put_hex(char *p, uint64_t v)
{
	static const char hex[] = "0123456789abcdef";
	char tmp[20];
	int n = 0;

	do {
		tmp[n++] = hex[v & 15];
		v >>= 4;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static char *put_mem(char *p, const void *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

/* Parses the decimal number in [p, p+n) that must fill it; false on junk. */
static bool parse_u64(const char *p, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 19)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*out = v;
	return true;
}

/* xorshift64*: fast and good enough to pick users, and no shared state. */
static uint64_t rng_state = 88172645463325252ull;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static uint32_t rnd_below(uint32_t n)
{
	return (uint32_t)(((rnd() >> 32) * (uint64_t)n) >> 32);
}

static int write_full(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n) {
		ssize_t w = write(fd, c, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/* 0 on success, 1 on a clean EOF before the first byte, -1 on error. */
static int read_full(int fd, void *p, size_t n)
{
	char *c = p;
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, c + got, n - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0 && got == 0)
			return 1;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

/* ---- base64 (RFC 4648), bounded ---- */

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Returns the length written (NUL-terminated), or 0 if it does not fit. */
static size_t b64_encode(const unsigned char *in, size_t n, char *out, size_t cap)
{
	size_t need = (n + 2) / 3 * 4, o = 0;

	if (need + 1 > cap)
		return 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = b64_alphabet[(v >> 18) & 63];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? b64_alphabet[v & 63] : '=';
	}
	out[o] = '\0';
	return o;
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decodes, skipping whitespace; -1 on a bad character or no room. */
static ssize_t b64_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int v;

		if (is_space(in[i]))
			continue;
		if (in[i] == '=')
			break;
		v = b64_value(in[i]);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= cap)
				return -1;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	return (ssize_t)o;
}

/* ---- latency histogram ---- */

/*
 * Log-linear buckets: values below 256 are exact, then 128 buckets per power
 * of two (under 0.8% error). Merging is adding arrays, so workers ship theirs
 * to the parent whole.
 */
#define H_SUB 7
#define H_N ((40 - H_SUB + 1) << H_SUB)

struct hist {
	uint64_t n, max, sum;
	uint64_t c[H_N];
};

static unsigned hist_index(uint64_t v)
{
	unsigned e, k;

	if (v < (2u << H_SUB))
		return (unsigned)v;
	if (v >= (1ull << 40))
		v = (1ull << 40) - 1;
	e = 63u - (unsigned)__builtin_clzll(v);
	k = e - H_SUB;
	return (k << H_SUB) + (unsigned)(v >> k);
}

/* The middle of bucket i. */
static double hist_value(unsigned i)
{
	unsigned k, m;

	if (i < (2u << H_SUB))
		return i;
	k = (i >> H_SUB) - 1;
	m = i - (k << H_SUB);
	return ((double)m + 0.5) * (double)(1ull << k);
}

static void hist_add(struct hist *h, uint64_t v)
{
	h->c[hist_index(v)]++;
	h->n++;
	h->sum += v;
	if (v > h->max)
		h->max = v;
}

static void hist_merge(struct hist *to, const struct hist *from)
{
	for (unsigned i = 0; i < H_N; i++)
		to->c[i] += from->c[i];
	to->n += from->n;
	to->sum += from->sum;
	if (from->max > to->max)
		to->max = from->max;
}

static double hist_pct(const struct hist *h, double q)
{
	uint64_t want, seen = 0;

	if (!h->n)
		return NAN;
	want = (uint64_t)ceil(q * (double)h->n);
	if (want < 1)
		want = 1;
	for (unsigned i = 0; i < H_N; i++) {
		seen += h->c[i];
		if (seen >= want) {
			double v = hist_value(i);

			return v > (double)h->max ? (double)h->max : v;
		}
	}
	return (double)h->max;
}

/* ---- XML: cutting the stream into top-level elements ---- */

enum tag_kind { TAG_OPEN, TAG_EMPTY, TAG_CLOSE, TAG_SKIP, TAG_BAD };

/*
 * The end of the markup at p (a '<'), or NULL when it is not all in [p, end)
 * yet. Quotes are honoured because '>' may stand unescaped in an attribute.
 * A DOCTYPE is TAG_BAD: RFC 6120 §11.1 forbids it.
 */
static const char *tag_end(const char *p, const char *end, enum tag_kind *kind)
{
	const char *q;
	char quote = 0;

	if (end - p < 2)
		return NULL;
	if (p[1] == '?') {
		q = memmem(p + 2, (size_t)(end - p - 2), "?>", 2);
		*kind = TAG_SKIP;
		return q ? q + 2 : NULL;
	}
	if (p[1] == '!') {
		if (end - p < 4)
			return NULL;
		if (p[2] == '-' && p[3] == '-') {
			q = memmem(p + 4, (size_t)(end - p - 4), "-->", 3);
			*kind = TAG_SKIP;
			return q ? q + 3 : NULL;
		}
		if (end - p < 9)
			return NULL;
		if (memcmp(p, "<![CDATA[", 9) == 0) {
			q = memmem(p + 9, (size_t)(end - p - 9), "]]>", 3);
			*kind = TAG_SKIP;
			return q ? q + 3 : NULL;
		}
		*kind = TAG_BAD;
		return p;
	}
	*kind = TAG_OPEN;
	q = p + 1;
	if (*q == '/') {
		*kind = TAG_CLOSE;
		q++;
	}
	for (; q < end; q++) {
		char c = *q;

		if (quote) {
			if (c == quote)
				quote = 0;
		} else if (c == '"' || c == '\'') {
			quote = c;
		} else if (c == '>') {
			if (*kind == TAG_OPEN && q[-1] == '/')
				*kind = TAG_EMPTY;
			return q + 1;
		} else if (c == '<') {
			*kind = TAG_BAD;
			return p;
		}
	}
	return NULL;
}

struct scan {
	uint32_t pos;	/* offset of the next byte to look at */
	uint32_t start;	/* offset of the top-level element being read */
	uint32_t depth;	/* 0: before the stream header, 1: between stanzas */
};

enum scan_ev { SCAN_MORE, SCAN_ERROR, SCAN_HEADER, SCAN_STANZA, SCAN_CLOSE };

/*
 * Moves through buf[0, len) from where the last call stopped and returns the
 * next event: the stream header's start tag, a whole top-level element, the
 * end of the stream, or SCAN_MORE when the rest is not in yet.
 */
static enum scan_ev scan_next(struct scan *s, const char *buf, size_t len, const char **tp,
			      size_t *tlen)
{
	const char *end = buf + len;

	for (;;) {
		const char *p = buf + s->pos, *lt, *te;
		enum tag_kind k;

		if (s->depth >= 2 && s->pos - s->start > MAX_STANZA)
			return SCAN_ERROR;
		lt = memchr(p, '<', (size_t)(end - p));
		if (!lt) {
			s->pos = (uint32_t)len;
			return SCAN_MORE;
		}
		te = tag_end(lt, end, &k);
		if (!te) {
			s->pos = (uint32_t)(lt - buf);
			return (size_t)(end - lt) > MAX_STANZA ? SCAN_ERROR : SCAN_MORE;
		}
		if (k == TAG_BAD)
			return SCAN_ERROR;
		s->pos = (uint32_t)(te - buf);
		switch (k) {
		case TAG_SKIP:
			break;
		case TAG_OPEN:
			if (s->depth == 0) {
				s->depth = 1;
				*tp = lt;
				*tlen = (size_t)(te - lt);
				return SCAN_HEADER;
			}
			if (s->depth == 1)
				s->start = (uint32_t)(lt - buf);
			s->depth++;
			break;
		case TAG_EMPTY:
			if (s->depth == 0)
				return SCAN_ERROR;
			if (s->depth == 1) {
				*tp = lt;
				*tlen = (size_t)(te - lt);
				return SCAN_STANZA;
			}
			break;
		case TAG_CLOSE:
			if (s->depth == 0)
				return SCAN_ERROR;
			if (--s->depth == 0)
				return SCAN_CLOSE;
			if (s->depth == 1) {
				*tp = buf + s->start;
				*tlen = (size_t)(te - *tp);
				return SCAN_STANZA;
			}
			break;
		default:
			return SCAN_ERROR;
		}
	}
}

/* ---- XML: reading one element in place ---- */

struct el {
	const char *p;		/* the '<' of the start tag; NULL before the first child */
	const char *qname;	/* the name as written, prefix included */
	const char *name;	/* the local name */
	size_t qname_len, name_len;
	const char *attrs;	/* just after the name */
	const char *stag_end;	/* just after the start tag */
	const char *body_end;	/* the '<' of the end tag (stag_end when empty) */
	const char *end;	/* just after the element */
};

static int el_head(struct el *e, const char *p, const char *te, enum tag_kind k)
{
	const char *q = p + 1, *colon = NULL;

	e->p = p;
	e->qname = q;
	while (q < te && !is_space(*q) && *q != '/' && *q != '>') {
		if (*q == ':')
			colon = q;
		q++;
	}
	e->qname_len = (size_t)(q - e->qname);
	if (!e->qname_len)
		return -1;
	e->name = colon ? colon + 1 : e->qname;
	e->name_len = (size_t)(q - e->name);
	e->attrs = q;
	e->stag_end = te;
	e->body_end = te;
	e->end = te;
	(void)k;
	return 0;
}

/* A top-level element as the scanner cut it: its end tag is its last markup. */
static int el_top(struct el *e, const char *p, size_t len)
{
	const char *end = p + len, *te, *lt;
	enum tag_kind k;

	te = tag_end(p, end, &k);
	if (!te || (k != TAG_OPEN && k != TAG_EMPTY) || el_head(e, p, te, k) < 0)
		return -1;
	if (k == TAG_OPEN) {
		lt = memrchr(te, '<', (size_t)(end - te));
		if (!lt)
			return -1;
		e->body_end = lt;
		e->end = end;
	}
	return 0;
}

/* The element whose start tag is at p, read up to its end tag within lim. */
static int el_parse(struct el *e, const char *p, const char *lim)
{
	const char *te, *q;
	enum tag_kind k;
	unsigned depth = 1;

	te = tag_end(p, lim, &k);
	if (!te || (k != TAG_OPEN && k != TAG_EMPTY) || el_head(e, p, te, k) < 0)
		return -1;
	if (k == TAG_EMPTY)
		return 0;
	for (q = te; q < lim;) {
		const char *lt = memchr(q, '<', (size_t)(lim - q)), *t2;

		if (!lt)
			return -1;
		t2 = tag_end(lt, lim, &k);
		if (!t2 || k == TAG_BAD)
			return -1;
		if (k == TAG_OPEN) {
			depth++;
		} else if (k == TAG_CLOSE && --depth == 0) {
			e->body_end = lt;
			e->end = t2;
			return 0;
		}
		q = t2;
	}
	return -1;
}

/* Steps c to the next child element of parent (c->p NULL: the first one).
 * 1: found, 0: no more, -1: malformed. */
static int el_next_child(const struct el *parent, struct el *c)
{
	const char *q = c->p ? c->end : parent->stag_end;

	while (q < parent->body_end) {
		const char *lt = memchr(q, '<', (size_t)(parent->body_end - q)), *te;
		enum tag_kind k;

		if (!lt)
			return 0;
		te = tag_end(lt, parent->body_end, &k);
		if (!te || k == TAG_BAD || k == TAG_CLOSE)
			return -1;
		if (k == TAG_SKIP) {
			q = te;
			continue;
		}
		return el_parse(c, lt, parent->body_end) < 0 ? -1 : 1;
	}
	return 0;
}

static bool el_is(const struct el *e, const char *name, const char *ns);

/* The first child NAME (in NS, if given) of parent into c; false if none. */
static bool el_find_child(const struct el *parent, const char *name, const char *ns,
			  struct el *c)
{
	memset(c, 0, sizeof(*c));
	while (el_next_child(parent, c) > 0)
		if (el_is(c, name, ns))
			return true;
	return false;
}

struct attr_cur {
	const char *p, *end;
};

/* The next attribute of a start tag: its name and its raw (escaped) value. */
static bool el_attr_next(struct attr_cur *a, const char **n, size_t *nl, const char **v,
			 size_t *vl)
{
	const char *p = a->p, *end = a->end, *q;
	char qc;

	while (p < end && is_space(*p))
		p++;
	if (p >= end || *p == '/' || *p == '>')
		return false;
	*n = p;
	while (p < end && *p != '=' && !is_space(*p))
		p++;
	*nl = (size_t)(p - *n);
	while (p < end && is_space(*p))
		p++;
	if (p >= end || *p != '=')
		return false;
	p++;
	while (p < end && is_space(*p))
		p++;
	if (p >= end || (*p != '\'' && *p != '"'))
		return false;
	qc = *p++;
	q = memchr(p, qc, (size_t)(end - p));
	if (!q)
		return false;
	*v = p;
	*vl = (size_t)(q - p);
	a->p = q + 1;
	return true;
}

static bool el_attr(const struct el *e, const char *name, const char **v, size_t *vl)
{
	struct attr_cur a = { e->attrs, e->stag_end };
	size_t len = strlen(name), nl;
	const char *n;

	while (el_attr_next(&a, &n, &nl, v, vl))
		if (nl == len && memcmp(n, name, len) == 0)
			return true;
	return false;
}

static bool mem_is(const char *p, size_t n, const char *s)
{
	return n == strlen(s) && memcmp(p, s, n) == 0;
}

static bool el_attr_is(const struct el *e, const char *name, const char *val)
{
	const char *v;
	size_t vl;

	return el_attr(e, name, &v, &vl) && mem_is(v, vl, val);
}

/* Whether e is NAME in namespace NS: an element that declares no default
 * namespace inherits it, which is how these servers write their children. */
static bool el_is(const struct el *e, const char *name, const char *ns)
{
	const char *v;
	size_t vl;

	if (!mem_is(e->name, e->name_len, name))
		return false;
	if (!ns || !el_attr(e, "xmlns", &v, &vl))
		return true;
	return mem_is(v, vl, ns);
}

static int text_put(char *out, size_t cap, size_t *n, const char *s, size_t len)
{
	if (*n + len >= cap)
		return -1;
	memcpy(out + *n, s, len);
	*n += len;
	return 0;
}

/* Decodes the entity at p ('&') into out; returns what it consumed, 0 if bad. */
static size_t entity(const char *p, const char *end, char *out, size_t cap, size_t *n)
{
	const char *semi = memchr(p, ';', (size_t)(end - p));
	size_t len;
	char u[4];
	unsigned long cp;
	char *stop;

	if (!semi)
		return 0;
	len = (size_t)(semi - p) + 1;
	if (mem_is(p, len, "&lt;"))
		return text_put(out, cap, n, "<", 1) < 0 ? 0 : len;
	if (mem_is(p, len, "&gt;"))
		return text_put(out, cap, n, ">", 1) < 0 ? 0 : len;
	if (mem_is(p, len, "&amp;"))
		return text_put(out, cap, n, "&", 1) < 0 ? 0 : len;
	if (mem_is(p, len, "&apos;"))
		return text_put(out, cap, n, "'", 1) < 0 ? 0 : len;
	if (mem_is(p, len, "&quot;"))
		return text_put(out, cap, n, "\"", 1) < 0 ? 0 : len;
	if (len < 4 || p[1] != '#')
		return 0;
	if (p[2] == 'x')
		cp = strtoul(p + 3, &stop, 16);
	else
		cp = strtoul(p + 2, &stop, 10);
	if (stop != semi || cp == 0 || cp > 0x10FFFF)
		return 0;
	if (cp < 0x80) {
		u[0] = (char)cp;
		return text_put(out, cap, n, u, 1) < 0 ? 0 : len;
	}
	if (cp < 0x800) {
		u[0] = (char)(0xC0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 63));
		return text_put(out, cap, n, u, 2) < 0 ? 0 : len;
	}
	if (cp < 0x10000) {
		u[0] = (char)(0xE0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 63));
		u[2] = (char)(0x80 | (cp & 63));
		return text_put(out, cap, n, u, 3) < 0 ? 0 : len;
	}
	u[0] = (char)(0xF0 | (cp >> 18));
	u[1] = (char)(0x80 | ((cp >> 12) & 63));
	u[2] = (char)(0x80 | ((cp >> 6) & 63));
	u[3] = (char)(0x80 | (cp & 63));
	return text_put(out, cap, n, u, 4) < 0 ? 0 : len;
}

/* The character data directly in e, decoded, NUL-terminated in out[cap];
 * child elements are skipped. -1 if malformed or too long. */
static ssize_t el_text(const struct el *e, char *out, size_t cap)
{
	const char *p = e->stag_end, *end = e->body_end;
	size_t n = 0;

	if (!cap)
		return -1;
	while (p < end) {
		const char *q = p;

		while (q < end && *q != '<' && *q != '&')
			q++;
		if (text_put(out, cap, &n, p, (size_t)(q - p)) < 0)
			return -1;
		p = q;
		if (p >= end)
			break;
		if (*p == '&') {
			size_t used = entity(p, end, out, cap, &n);

			if (!used)
				return -1;
			p += used;
		} else {
			enum tag_kind k;
			const char *te = tag_end(p, end, &k);
			struct el c;

			if (!te || k == TAG_BAD || k == TAG_CLOSE)
				return -1;
			if (k == TAG_SKIP) {
				if (memcmp(p, "<![CDATA[", 9) == 0 &&
				    text_put(out, cap, &n, p + 9, (size_t)(te - 3 - p - 9)) < 0)
					return -1;
				p = te;
				continue;
			}
			if (el_parse(&c, p, end) < 0)
				return -1;
			p = c.end;
		}
	}
	out[n] = '\0';
	return (ssize_t)n;
}

/* Writes an attribute value taken raw from the server's input into a
 * single-quoted attribute: entities stay as they are, a bare ' is escaped. */
static char *put_attr_raw(char *p, const char *limit, const char *v, size_t vl)
{
	for (size_t i = 0; i < vl && p + 6 < limit; i++) {
		if (v[i] == '\'')
			p = put_mem(p, "&apos;", 6);
		else
			*p++ = v[i];
	}
	return p;
}

/* XML-escapes s for text or an attribute, bounded by cap; -1 if too long. */
static int xml_escape(const char *s, char *out, size_t cap)
{
	size_t n = 0;

	for (; *s; s++) {
		const char *rep = NULL;
		char one[2] = { *s, 0 };

		switch (*s) {
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '&': rep = "&amp;"; break;
		case '\'': rep = "&apos;"; break;
		case '"': rep = "&quot;"; break;
		default: rep = one; break;
		}
		if (text_put(out, cap, &n, rep, strlen(rep)) < 0)
			return -1;
	}
	out[n] = '\0';
	return 0;
}

/* ---- SCRAM (RFC 5802, RFC 7677) with a key cache ---- */

/*
 * Every login with the same password, salt and iteration count derives the
 * same keys, so PBKDF2 runs once per (hash, salt, iterations). Servers that
 * salt each account differently still get the cache on a second login (the
 * existence probe before the measured one).
 */
struct scram_keys {
	unsigned char client_key[EVP_MAX_MD_SIZE];
	unsigned char stored_key[EVP_MAX_MD_SIZE];
	unsigned char server_key[EVP_MAX_MD_SIZE];
};

struct scram_entry {
	struct scram_entry *next;
	bool sha256;
	bool saved;		/* in the --scram-cache file already */
	unsigned iterations;
	size_t salt_len;
	struct scram_keys k;
	unsigned char salt[64];
};

#define SCRAM_BUCKETS 4096
static struct scram_entry *scram_cache[SCRAM_BUCKETS];
static uint64_t pbkdf2_runs;
static int scram_file = -1;		/* --scram-cache, opened for appending */
static char scram_pwtag[17];		/* which password the file's keys are for */

static uint32_t scram_bucket(bool sha256, const unsigned char *salt, size_t salt_len,
			     unsigned iterations)
{
	uint32_t h = 2166136261u ^ iterations ^ (sha256 ? 0x5a5a5a5au : 0);

	for (size_t i = 0; i < salt_len; i++)
		h = (h ^ salt[i]) * 16777619u;
	return h % SCRAM_BUCKETS;
}

static struct scram_entry *scram_insert(bool sha256, const unsigned char *salt,
					size_t salt_len, unsigned iterations)
{
	struct scram_entry *e;
	uint32_t h = scram_bucket(sha256, salt, salt_len, iterations);

	if (salt_len > sizeof(e->salt))
		return NULL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->sha256 = sha256;
	e->iterations = iterations;
	e->salt_len = salt_len;
	memcpy(e->salt, salt, salt_len);
	e->next = scram_cache[h];
	scram_cache[h] = e;
	return e;
}

/*
 * The key file lets a series of runs skip PBKDF2: on this 2-core box one
 * SCRAM-SHA-256 derivation costs the bench about a millisecond, which is more
 * than the server spends on the whole login. One line per key set:
 * "PWTAG sha1|sha256 ITERATIONS SALT CLIENTKEY STOREDKEY SERVERKEY" (base64),
 * where PWTAG is a hash of the password, so another --password skips them.
 */
static void scram_file_open(const char *path)
{
	unsigned char d[32];
	char line[1024];
	FILE *f;

	if (!EVP_Digest(opt.password, strlen(opt.password), d, NULL, EVP_sha256(), NULL))
		return;
	for (int i = 0; i < 8; i++)
		snprintf(scram_pwtag + 2 * i, 3, "%02x", d[i]);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f)) {
		char tag[32], alg[16], salt[128], ck[128], sk[128], svk[128];
		unsigned char sb[64], kb[3][EVP_MAX_MD_SIZE];
		unsigned iter;
		ssize_t sl, kl[3];
		struct scram_entry *e;
		bool sha256;

		if (sscanf(line, "%31s %15s %u %127s %127s %127s %127s", tag, alg, &iter, salt, ck,
			   sk, svk) != 7 || strcmp(tag, scram_pwtag) != 0)
			continue;
		sha256 = strcmp(alg, "sha256") == 0;
		sl = b64_decode(salt, strlen(salt), sb, sizeof(sb));
		kl[0] = b64_decode(ck, strlen(ck), kb[0], sizeof(kb[0]));
		kl[1] = b64_decode(sk, strlen(sk), kb[1], sizeof(kb[1]));
		kl[2] = b64_decode(svk, strlen(svk), kb[2], sizeof(kb[2]));
		if (sl <= 0 || kl[0] != (sha256 ? 32 : 20) || kl[1] != kl[0] || kl[2] != kl[0])
			continue;
		e = scram_insert(sha256, sb, (size_t)sl, iter);
		if (!e)
			break;
		e->saved = true;
		memcpy(e->k.client_key, kb[0], (size_t)kl[0]);
		memcpy(e->k.stored_key, kb[1], (size_t)kl[0]);
		memcpy(e->k.server_key, kb[2], (size_t)kl[0]);
	}
	if (f)
		fclose(f);
	scram_file = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (scram_file < 0)
		note("--scram-cache %s: %s", path, strerror(errno));
}

/* Called once the server accepted the proof: keys derived from the fake salt
 * a server hands out for a missing account are not worth keeping. */
static void scram_file_add(struct scram_entry *e)
{
	char line[1024], salt[100], k[3][100];
	size_t hl = e->sha256 ? 32 : 20;
	int n;

	if (!e || e->saved)
		return;
	e->saved = true;
	if (scram_file < 0 || !b64_encode(e->salt, e->salt_len, salt, sizeof(salt)) ||
	    !b64_encode(e->k.client_key, hl, k[0], sizeof(k[0])) ||
	    !b64_encode(e->k.stored_key, hl, k[1], sizeof(k[1])) ||
	    !b64_encode(e->k.server_key, hl, k[2], sizeof(k[2])))
		return;
	n = snprintf(line, sizeof(line), "%s %s %u %s %s %s %s\n", scram_pwtag,
		     e->sha256 ? "sha256" : "sha1", e->iterations, salt, k[0], k[1], k[2]);
	/* One write per line: O_APPEND keeps the workers' lines whole. */
	if (n > 0 && (size_t)n < sizeof(line) && write(scram_file, line, (size_t)n) != n)
		note("--scram-cache: write failed: %s", strerror(errno));
}

static struct scram_entry *scram_keys_get(bool sha256, const unsigned char *salt,
					  size_t salt_len, unsigned iterations,
					  struct scram_keys *out)
{
	const EVP_MD *md = sha256 ? EVP_sha256() : EVP_sha1();
	unsigned hlen = (unsigned)EVP_MD_get_size(md), l;
	unsigned char salted[EVP_MAX_MD_SIZE];
	uint32_t h = scram_bucket(sha256, salt, salt_len, iterations);
	struct scram_entry *e;

	for (e = scram_cache[h]; e; e = e->next) {
		if (e->sha256 == sha256 && e->iterations == iterations &&
		    e->salt_len == salt_len && memcmp(e->salt, salt, salt_len) == 0) {
			*out = e->k;
			return e;
		}
	}
	e = scram_insert(sha256, salt, salt_len, iterations);
	if (!e)
		return NULL;
	pbkdf2_runs++;
	if (!PKCS5_PBKDF2_HMAC(opt.password, (int)strlen(opt.password), salt, (int)salt_len,
			       (int)iterations, md, (int)hlen, salted) ||
	    !HMAC(md, salted, (int)hlen, (const unsigned char *)"Client Key", 10,
		  e->k.client_key, &l) ||
	    !EVP_Digest(e->k.client_key, hlen, e->k.stored_key, NULL, md, NULL) ||
	    !HMAC(md, salted, (int)hlen, (const unsigned char *)"Server Key", 10,
		  e->k.server_key, &l)) {
		scram_cache[h] = e->next;	/* just inserted at the head */
		free(e);
		return NULL;
	}
	*out = e->k;
	return e;
}

struct scram {
	struct scram_entry *keys;
	bool sha256;
	bool verified;
	char cnonce[25];
	char first_bare[128];
	unsigned char server_sig[EVP_MAX_MD_SIZE];
};

/* The value of attribute "X=" in a comma list of SCRAM attributes. */
static bool scram_attr(const char *msg, char key, const char **v, size_t *vl)
{
	const char *p = msg;

	while (*p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		if (len >= 2 && p[0] == key && p[1] == '=') {
			*v = p + 2;
			*vl = len - 2;
			return true;
		}
		if (!comma)
			break;
		p = comma + 1;
	}
	return false;
}

/* ---- worker: sessions ---- */

enum sstate {
	S_FREE, S_CONNECTING, S_TLS, S_HEADER, S_STARTTLS, S_AUTH, S_REG, S_BIND, S_SESSION,
	S_SM, S_ONLINE, S_CLOSING
};
enum purpose { P_PROBE, P_IBR, P_LOGIN };

enum fail_reason {
	F_CONNECT, F_TLS, F_NEGOTIATION, F_AUTH, F_STREAM_ERROR, F_CLOSED, F_TIMEOUT,
	F_PROTOCOL, F_BIND, F_INTERNAL, F_COUNT
};
static const char *const fail_names[F_COUNT] = {
	"connect", "tls", "negotiation", "auth", "stream_error", "closed", "timeout",
	"protocol", "bind", "internal",
};

/* What a worker tells the parent at the end of a phase (fixed layout: both
 * sides are the same binary). */
struct report {
	uint32_t attempted, ok, failed, missing;
	uint32_t fail[F_COUNT];
	uint32_t registered, existing, reg_failed, resource_changed;
	uint32_t sm_offered, sm_used, senders_unacked, pad;
	uint64_t t_first, t_last;
	uint64_t sent, blocked, delivered, late, unique, dup, misrouted, foreign, bounced;
	uint64_t disconnects, acked, expected, pbkdf2, rx_total, stale;
	uint64_t t_send_first, t_acked, t_rx_last;
	uint64_t send_cpu_ns, send_wall_ns;	/* chat: this worker while it sent */
	char mech[24];
	char first_error[200];
	char bounce_cond[64];
	struct hist h;
};

enum msg_type {
	C_PREPARE = 1, C_LOGIN, C_ONLINE, C_STEP, C_OSEND, C_ORECV, C_QUIT,
	R_PREPARED = 101, R_LOGGED_IN, R_ONLINE, R_STEP, R_OSENT, R_ORECV, R_FINAL, R_FATAL,
};

struct msg_hdr {
	uint32_t type;
	uint32_t len;
};

struct cmd {
	uint32_t which;		/* C_LOGIN: 0 all/senders, 1 receivers */
	uint32_t step;
	double rate;		/* this worker's share, msgs/s */
	uint64_t t_start, duration_ns, drain_ns;
};

struct sess {
	struct bufferevent *bev;
	struct scram *scram;
	uint64_t t0;		/* connect() began (login clock) or closing began */
	uint64_t next_k;	/* offline: the next message number this sender sends */
	uint64_t sent_here;	/* offline: messages this sender sent */
	evutil_socket_t fd;
	uint32_t idx;		/* global account number */
	uint32_t seq;		/* the next sequence number this account sends */
	uint32_t sm_in, sm_out;	/* XEP-0198 counters */
	uint32_t last_h;	/* the server's last <a h/> */
	uint64_t t_ask, t_progress;	/* offline: our last <r/>, the last change of h */
	struct scan scan;
	uint8_t state, purpose;
	bool tls_on, authed, need_session, sm_offered, sm_on, in_login, missing;
	bool fin_sent, acked;
};

/* Received sequence numbers of one sender. */
struct bits {
	uint64_t *w;
	uint32_t nwords;
};

static struct {
	int cmd_fd, rep_fd;
	struct event_base *base;
	SSL_CTX *ssl;
	struct sess *s;
	uint32_t nslots, nsend;		/* slots [0, nsend) send, the rest receive */
	uint32_t send_first, recv_first;	/* global index of slot 0 / slot nsend */
	uint32_t senders_total, receivers_total;	/* offline: S and R */
	/* the login phase under way */
	uint32_t *todo, ntodo, next, pending;
	uint8_t purpose;
	uint64_t t_phase;
	void (*login_done)(void);
	void (*closed_done)(void);
	uint32_t closing;
	struct event *pace_ev, *sweep_ev, *done_ev, *tick_ev, *cmd_ev, *drain_ev, *closed_ev;
	struct report rep;
	/* addresses: every account's full JID; bare is the prefix up to '/' */
	char *jids;
	uint32_t *jid_off;
	uint16_t *jid_len, *bare_len;
	size_t prefix_len;
	/* chat */
	uint32_t *online_all, n_online_all;
	uint32_t *online_local, n_online_local;
	bool stepping, step_open, step_began;
	uint64_t step_start, step_end, step_cpu0;
	double step_rate;
	uint64_t step_sent;
	/* receive accounting over the whole run */
	struct bits *bits;
	uint64_t unique, dup, misrouted, foreign, bounced, rx_total, disconnects, stale;
	bool sm_offered, sm_used;
	uint64_t sent_total, last_rx;
	char bounce_cond[64];
	/* offline */
	bool osending, orecv;
	uint32_t senders_open;
	uint64_t expected_local;
	bool quitting;
	uint64_t quit_t, last_note;
} W;

static void sess_fail(struct sess *s, enum fail_reason r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void report_send(uint32_t type, const void *extra, size_t elen);
static void quit_closed(void);
static void offline_fill(struct sess *s);
static void sender_ask(struct sess *s);
static void sender_acked(struct sess *s, bool full);
static void offline_check_done(void);

static const char *sess_name(const struct sess *s, char *buf, size_t cap)
{
	snprintf(buf, cap, "%.*s", (int)W.bare_len[s->idx], W.jids + W.jid_off[s->idx]);
	return buf;
}

static void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fatal(const char *fmt, ...)
{
	va_list ap;

	memset(&W.rep, 0, sizeof(W.rep));
	va_start(ap, fmt);
	vsnprintf(W.rep.first_error, sizeof(W.rep.first_error), fmt, ap);
	va_end(ap);
	note("fatal: %s", W.rep.first_error);
	report_send(R_FATAL, NULL, 0);
	_exit(1);
}

/* All output goes through here. On plain TCP with nothing queued, one send()
 * is the whole cost: the bufferevent path would add an epoll change and a
 * loop iteration for every message. */
static void sess_write(struct sess *s, const char *p, size_t n)
{
	struct evbuffer *out;

	if (!s->bev)
		return;
	out = bufferevent_get_output(s->bev);
	if (!s->tls_on && s->fd >= 0 && evbuffer_get_length(out) == 0) {
		ssize_t w = send(s->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w == (ssize_t)n)
			return;
		if (w > 0) {
			p += w;
			n -= (size_t)w;
		}
		/* On a real error the bufferevent meets it again and reports it. */
	}
	if (bufferevent_write(s->bev, p, n) < 0)
		sess_fail(s, F_INTERNAL, "out of memory queueing output");
}

static void sess_puts(struct sess *s, const char *str)
{
	sess_write(s, str, strlen(str));
}

static void closed_check(void)
{
	if (W.closing == 0 && W.closed_done)
		event_active(W.closed_ev, 0, 0);
}

static void sess_drop(struct sess *s)
{
	if (s->bev) {
		bufferevent_free(s->bev);	/* closes the socket (and frees the SSL) */
		s->bev = NULL;
	}
	s->fd = -1;
	free(s->scram);
	s->scram = NULL;
	if (s->state == S_CLOSING) {
		W.closing--;
		closed_check();
	}
	s->state = S_FREE;
	s->tls_on = s->authed = s->sm_on = false;
}

static void login_check_done(void)
{
	if (W.login_done && W.next >= W.ntodo && W.pending == 0)
		event_active(W.done_ev, 0, 0);
}

/* Accounts for the end of one login attempt, exactly once. */
static void login_finished(struct sess *s, bool ok, enum fail_reason r, const char *why)
{
	uint64_t now = now_ns();

	if (!s->in_login)
		return;
	s->in_login = false;
	W.pending--;
	if (ok) {
		W.rep.ok++;
		hist_add(&W.rep.h, (now - s->t0) / 1000);
		if (now > W.rep.t_last)
			W.rep.t_last = now;
	} else if (W.purpose == P_PROBE && r == F_AUTH) {
		s->missing = true;	/* the account does not exist (or another password) */
		W.rep.missing++;
	} else {
		W.rep.failed++;
		W.rep.fail[r]++;
		if (!W.rep.first_error[0]) {
			char name[300];

			snprintf(W.rep.first_error, sizeof(W.rep.first_error), "%.80s: %.110s",
				 sess_name(s, name, sizeof(name)), why);
		}
		if (opt.verbose)
			note("%s", why);
	}
	login_check_done();
}

static void sess_fail(struct sess *s, enum fail_reason r, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (s->in_login) {
		login_finished(s, false, r, why);
	} else if (s->state == S_ONLINE) {
		W.disconnects++;
		if (W.disconnects <= 3 || opt.verbose) {
			char name[300];

			note("%s lost: %s", sess_name(s, name, sizeof(name)), why);
		}
		if (W.osending && s - W.s < (ptrdiff_t)W.nsend && !s->acked) {
			s->acked = true;
			W.senders_open--;
			W.rep.senders_unacked++;
			offline_check_done();
		}
	}
	sess_drop(s);
}

/* Ends a stream politely; the server closes the TCP connection, so the
 * TIME_WAIT stays on its side and this side's ports come back at once. */
static void sess_close(struct sess *s)
{
	if (!s->bev || s->state == S_CLOSING)
		return;
	if (s->in_login)
		login_finished(s, false, F_INTERNAL, "closed by the bench");
	if (s->state >= S_HEADER)
		sess_puts(s, "</stream:stream>");
	s->state = S_CLOSING;
	s->t0 = now_ns();
	W.closing++;
}

static void send_header(struct sess *s)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "<?xml version='1.0'?><stream:stream to='%s' "
		 "xmlns='jabber:client' xmlns:stream='" NS_STREAMS "' version='1.0'>",
		 opt.host);
	s->state = S_HEADER;
	sess_puts(s, buf);
}

static void read_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);
static void write_cb(struct bufferevent *bev, void *arg);

/* Replaces the plain bufferevent by a TLS one on the same socket: cheaper than
 * a filter chain, and nothing is in flight (the server waits for our hello). */
static int sess_start_tls(struct sess *s)
{
	SSL *ssl = SSL_new(W.ssl);
	struct bufferevent *bev;
	static const unsigned char alpn[] = "\x0bxmpp-client";

	if (!ssl) {
		sess_fail(s, F_TLS, "SSL_new failed");
		return -1;
	}
	SSL_set_tlsext_host_name(ssl, opt.host);
	if (opt.tls == TLS_DIRECT)
		SSL_set_alpn_protos(ssl, alpn, sizeof(alpn) - 1);	/* XEP-0368 */
	/* Detach the socket so that freeing the plain bufferevent keeps it. */
	bufferevent_setfd(s->bev, -1);
	bufferevent_free(s->bev);
	bev = bufferevent_openssl_socket_new(W.base, s->fd, ssl, BUFFEREVENT_SSL_CONNECTING,
					     BEV_OPT_CLOSE_ON_FREE);
	s->bev = bev;
	if (!bev) {
		/* With BEV_OPT_CLOSE_ON_FREE libevent has freed the SSL already. */
		close(s->fd);
		s->fd = -1;
		sess_fail(s, F_TLS, "cannot create the TLS bufferevent");
		return -1;
	}
	s->tls_on = true;
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	bufferevent_setcb(bev, read_cb, write_cb, event_cb, s);
	if (bufferevent_enable(bev, EV_READ | EV_WRITE) < 0) {
		sess_fail(s, F_TLS, "cannot enable the TLS bufferevent");
		return -1;
	}
	memset(&s->scan, 0, sizeof(s->scan));
	s->state = S_TLS;
	return 0;
}

static void sess_connect(struct sess *s)
{
	evutil_socket_t fd;
	int one = 1;

	s->t0 = now_ns();
	s->in_login = true;
	s->missing = false;
	s->need_session = s->sm_offered = s->sm_on = s->fin_sent = s->acked = false;
	s->sm_in = s->sm_out = 0;
	s->last_h = 0;
	s->t_ask = s->t_progress = 0;
	memset(&s->scan, 0, sizeof(s->scan));
	s->state = S_CONNECTING;
	s->purpose = W.purpose;
	W.pending++;
	W.rep.attempted++;
	if (!W.rep.t_first)
		W.rep.t_first = s->t0;
	fd = socket(opt.sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		sess_fail(s, F_CONNECT, "socket: %s", strerror(errno));
		return;
	}
	s->fd = fd;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		note("TCP_NODELAY: %s", strerror(errno));
	/*
	 * Past conns_per_addr accounts, spread the sources over 127.0.0.0/8: each
	 * source address has its own ephemeral ports (and per-IP limits). The
	 * existence probe and in-band registration fail on purpose for missing
	 * accounts, and servers count failures per address (Parley's auth-attempts,
	 * ejabberd's mod_fail2ban, registration rates): each account gets its own
	 * address there, in 127.64.0.0/10, away from the ones that log in.
	 */
	if (loopback4 && (opt.n > opt.conns_per_addr || s->purpose != P_LOGIN)) {
		struct sockaddr_in src = { .sin_family = AF_INET };
		uint32_t k = s->idx / opt.conns_per_addr;

		if (s->purpose != P_LOGIN)
			src.sin_addr.s_addr = htonl(0x7f400001u + s->idx);
		else
			src.sin_addr.s_addr = htonl(0x7f000001u + k);
		if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)) < 0 ||
		    bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
			close(fd);
			s->fd = -1;
			sess_fail(s, F_CONNECT, "bind to %s: %s", inet_ntoa(src.sin_addr),
				  strerror(errno));
			return;
		}
	}
	s->bev = bufferevent_socket_new(W.base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!s->bev) {
		close(fd);
		s->fd = -1;
		sess_fail(s, F_INTERNAL, "bufferevent_socket_new failed");
		return;
	}
	s->tls_on = false;
	bufferevent_setcb(s->bev, read_cb, write_cb, event_cb, s);
	if (bufferevent_enable(s->bev, EV_READ | EV_WRITE) < 0 ||
	    bufferevent_socket_connect(s->bev, (struct sockaddr *)&opt.sa, (int)opt.salen) < 0)
		sess_fail(s, F_CONNECT, "connect: %s", strerror(errno));
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct sess *s = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		if (s->tls_on || opt.tls != TLS_DIRECT) {
			send_header(s);
			return;
		}
		sess_start_tls(s);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e = s->tls_on ? bufferevent_get_openssl_error(s->bev) : 0;
		int err = EVUTIL_SOCKET_ERROR();

		if (s->state == S_CLOSING) {
			sess_drop(s);
		} else if (e) {
			char buf[256];

			ERR_error_string_n(e, buf, sizeof(buf));
			sess_fail(s, F_TLS, "TLS: %s", buf);
		} else if (s->state == S_CONNECTING) {
			sess_fail(s, F_CONNECT, "connect: %s",
				  evutil_socket_error_to_string(err));
		} else {
			sess_fail(s, s->state == S_TLS ? F_TLS : F_CLOSED, "connection error: %s",
				  err ? evutil_socket_error_to_string(err) : "unknown");
		}
		return;
	}
	if (what & BEV_EVENT_EOF) {
		if (s->state == S_CLOSING)
			sess_drop(s);
		else
			sess_fail(s, F_CLOSED, "the server closed the connection");
	}
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct sess *s = arg;

	(void)bev;
	if (W.osending && s->state == S_ONLINE && !s->fin_sent)
		offline_fill(s);
}

/* ---- worker: negotiation ---- */

enum { H_OK, H_GONE, H_RESTART };

static int login_complete(struct sess *s)
{
	sess_puts(s, "<presence/>");
	if (s->sm_on)
		s->sm_out++;
	s->state = S_ONLINE;
	login_finished(s, true, F_COUNT, NULL);
	return H_OK;
}

static int send_auth(struct sess *s, bool have_plain, bool have_s1, bool have_s256)
{
	char buf[700], b64[600], raw[400];
	unsigned char nonce[12];
	int n;
	bool sha256;
	const char *mech;
	char name[300];

	sess_name(s, name, sizeof(name));
	*strchr(name, '@') = '\0';
	switch (opt.sasl) {
	case SASL_PLAIN:
		if (!have_plain)
			goto nomech;
		goto plain;
	case SASL_SCRAM1:
		if (!have_s1)
			goto nomech;
		sha256 = false;
		break;
	case SASL_SCRAM256:
		if (!have_s256)
			goto nomech;
		sha256 = true;
		break;
	default:
		if (have_s256)
			sha256 = true;
		else if (have_s1)
			sha256 = false;
		else if (have_plain && s->tls_on)
			goto plain;
		else
			goto nomech;
		break;
	}
	s->scram = calloc(1, sizeof(*s->scram));
	if (!s->scram || RAND_bytes(nonce, sizeof(nonce)) != 1) {
		sess_fail(s, F_INTERNAL, "out of memory or randomness");
		return H_GONE;
	}
	s->scram->sha256 = sha256;
	for (size_t i = 0; i < sizeof(nonce); i++)
		snprintf(s->scram->cnonce + 2 * i, 3, "%02x", nonce[i]);
	/* Account names are [A-Za-z0-9._-]: nothing to escape for SCRAM. */
	snprintf(s->scram->first_bare, sizeof(s->scram->first_bare), "n=%.90s,r=%s", name,
		 s->scram->cnonce);
	n = snprintf(raw, sizeof(raw), "n,,%s", s->scram->first_bare);
	mech = sha256 ? "SCRAM-SHA-256" : "SCRAM-SHA-1";
	goto send;
plain:
	if (!s->tls_on) {
		sess_fail(s, F_NEGOTIATION, "PLAIN is only used over TLS");
		return H_GONE;
	}
	n = snprintf(raw, sizeof(raw), "%c%s%c%s", 0, name, 0, opt.password);
	mech = "PLAIN";
send:
	if (n < 0 || (size_t)n >= sizeof(raw) ||
	    !b64_encode((unsigned char *)raw, (size_t)n, b64, sizeof(b64))) {
		sess_fail(s, F_INTERNAL, "SASL message too long");
		return H_GONE;
	}
	snprintf(W.rep.mech, sizeof(W.rep.mech), "%s", mech);
	snprintf(buf, sizeof(buf), "<auth xmlns='" NS_SASL "' mechanism='%s'>%s</auth>", mech,
		 b64);
	s->state = S_AUTH;
	sess_puts(s, buf);
	return H_OK;
nomech:
	sess_fail(s, F_NEGOTIATION, "the server offers no usable SASL mechanism for --sasl %s",
		  sasl_names[opt.sasl]);
	return H_GONE;
}

static int send_register(struct sess *s)
{
	char buf[1024], name[300], pw[512];

	sess_name(s, name, sizeof(name));
	*strchr(name, '@') = '\0';
	if (xml_escape(opt.password, pw, sizeof(pw)) < 0) {
		sess_fail(s, F_INTERNAL, "password too long");
		return H_GONE;
	}
	snprintf(buf, sizeof(buf), "<iq type='set' id='reg'><query xmlns='" NS_REGISTER "'>"
		 "<username>%s</username><password>%s</password></query></iq>", name, pw);
	s->state = S_REG;
	sess_puts(s, buf);
	return H_OK;
}

static int on_features(struct sess *s, const struct el *f)
{
	struct el c = { 0 }, m;
	bool starttls = false, plain = false, s1 = false, s256 = false, bind = false;
	char text[64];
	int r;

	s->need_session = s->sm_offered = false;
	while ((r = el_next_child(f, &c)) > 0) {
		if (el_is(&c, "starttls", NS_TLS)) {
			starttls = true;
		} else if (el_is(&c, "mechanisms", NS_SASL)) {
			memset(&m, 0, sizeof(m));
			while (el_next_child(&c, &m) > 0) {
				if (!el_is(&m, "mechanism", NULL) ||
				    el_text(&m, text, sizeof(text)) < 0)
					continue;
				plain |= strcmp(text, "PLAIN") == 0;
				s1 |= strcmp(text, "SCRAM-SHA-1") == 0;
				s256 |= strcmp(text, "SCRAM-SHA-256") == 0;
			}
		} else if (el_is(&c, "bind", NS_BIND)) {
			bind = true;
		} else if (el_is(&c, "session", NS_SESSION)) {
			/* RFC 3921 sessions: only when the server does not say optional. */
			struct el o = { 0 };
			bool optional = false;

			while (el_next_child(&c, &o) > 0)
				optional |= el_is(&o, "optional", NULL);
			s->need_session = !optional;
		} else if (el_is(&c, "sm", NULL) && el_attr_is(&c, "xmlns", NS_SM)) {
			s->sm_offered = true;
		}
	}
	if (r < 0) {
		sess_fail(s, F_PROTOCOL, "malformed stream features");
		return H_GONE;
	}
	if (!s->authed) {
		if (!s->tls_on && opt.tls == TLS_STARTTLS) {
			if (!starttls) {
				sess_fail(s, F_NEGOTIATION, "the server does not offer STARTTLS");
				return H_GONE;
			}
			s->state = S_STARTTLS;
			sess_puts(s, "<starttls xmlns='" NS_TLS "'/>");
			return H_OK;
		}
		if (s->purpose == P_IBR)
			return send_register(s);
		return send_auth(s, plain, s1, s256);
	}
	if (!bind) {
		sess_fail(s, F_BIND, "the server offers no resource binding");
		return H_GONE;
	}
	if (s->sm_offered)
		W.sm_offered = true;
	{
		char buf[256];

		snprintf(buf, sizeof(buf), "<iq type='set' id='bind'><bind xmlns='" NS_BIND
			 "'><resource>%s</resource></bind></iq>", opt.resource);
		s->state = S_BIND;
		sess_puts(s, buf);
	}
	return H_OK;
}

/* The condition of a stream error, a SASL failure or a stanza error: the name
 * of its first child that is not <text/>. */
static void error_condition(const struct el *e, char *out, size_t cap)
{
	struct el c = { 0 };

	snprintf(out, cap, "(none)");
	while (el_next_child(e, &c) > 0) {
		if (mem_is(c.name, c.name_len, "text"))
			continue;
		snprintf(out, cap, "%.*s", (int)c.name_len, c.name);
		return;
	}
}

static int on_sasl(struct sess *s, const struct el *e)
{
	char text[2048], msg[1024], buf[1024], b64[512], cond[64];
	ssize_t tl, ml;

	if (el_is(e, "failure", NULL)) {
		error_condition(e, cond, sizeof(cond));
		sess_fail(s, F_AUTH, "SASL failure: %s", cond);
		return H_GONE;
	}
	if (!el_is(e, "challenge", NULL) && !el_is(e, "success", NULL)) {
		sess_fail(s, F_PROTOCOL, "unexpected <%.*s/> during SASL", (int)e->qname_len,
			  e->qname);
		return H_GONE;
	}
	tl = el_text(e, text, sizeof(text));
	ml = tl < 0 ? -1 : b64_decode(text, (size_t)tl, (unsigned char *)msg, sizeof(msg) - 1);
	if (ml < 0) {
		sess_fail(s, F_PROTOCOL, "bad base64 in SASL");
		return H_GONE;
	}
	msg[ml] = '\0';
	if (s->scram && !s->scram->verified && ml > 0) {
		const char *v;
		size_t vl;

		if (scram_attr(msg, 'v', &v, &vl)) {
			const EVP_MD *md = s->scram->sha256 ? EVP_sha256() : EVP_sha1();

			if (!b64_encode(s->scram->server_sig, (size_t)EVP_MD_get_size(md), b64,
					sizeof(b64)) || !mem_is(v, vl, b64)) {
				sess_fail(s, F_AUTH, "SCRAM: the server signature does not match");
				return H_GONE;
			}
			s->scram->verified = true;
			scram_file_add(s->scram->keys);
		} else if (el_is(e, "challenge", NULL)) {
			/* server-first-message: r=NONCE,s=SALT,i=ITERATIONS */
			const char *r, *sl, *it;
			size_t rl, sll, itl;
			unsigned char salt[128], proof[EVP_MAX_MD_SIZE], sig[EVP_MAX_MD_SIZE];
			char final_np[600], am[1400], pb[128], raw[800];
			ssize_t saltn;
			uint64_t iter;
			struct scram_keys k;
			const EVP_MD *md = s->scram->sha256 ? EVP_sha256() : EVP_sha1();
			unsigned hlen = (unsigned)EVP_MD_get_size(md), l;
			int n;

			if (msg[0] == 'm' || !scram_attr(msg, 'r', &r, &rl) ||
			    !scram_attr(msg, 's', &sl, &sll) || !scram_attr(msg, 'i', &it, &itl) ||
			    rl <= strlen(s->scram->cnonce) ||
			    memcmp(r, s->scram->cnonce, strlen(s->scram->cnonce)) != 0 ||
			    !parse_u64(it, itl, &iter) || iter == 0 || iter > 10000000) {
				sess_fail(s, F_AUTH, "SCRAM: bad server-first-message");
				return H_GONE;
			}
			saltn = b64_decode(sl, sll, salt, sizeof(salt));
			if (saltn > 0)
				s->scram->keys = scram_keys_get(s->scram->sha256, salt,
								(size_t)saltn, (unsigned)iter, &k);
			if (saltn <= 0 || !s->scram->keys) {
				sess_fail(s, F_AUTH, "SCRAM: bad salt or key derivation failed");
				return H_GONE;
			}
			n = snprintf(final_np, sizeof(final_np), "c=biws,r=%.*s", (int)rl, r);
			if (n < 0 || (size_t)n >= sizeof(final_np))
				goto toolong;
			n = snprintf(am, sizeof(am), "%s,%s,%s", s->scram->first_bare, msg,
				     final_np);
			if (n < 0 || (size_t)n >= sizeof(am))
				goto toolong;
			if (!HMAC(md, k.stored_key, (int)hlen, (unsigned char *)am, (size_t)n, sig,
				  &l) ||
			    !HMAC(md, k.server_key, (int)hlen, (unsigned char *)am, (size_t)n,
				  s->scram->server_sig, &l)) {
				sess_fail(s, F_INTERNAL, "HMAC failed");
				return H_GONE;
			}
			for (unsigned i = 0; i < hlen; i++)
				proof[i] = k.client_key[i] ^ sig[i];
			if (!b64_encode(proof, hlen, pb, sizeof(pb)))
				goto toolong;
			n = snprintf(raw, sizeof(raw), "%s,p=%s", final_np, pb);
			if (n < 0 || (size_t)n >= sizeof(raw) ||
			    !b64_encode((unsigned char *)raw, (size_t)n, buf, sizeof(buf) - 100))
				goto toolong;
			n = snprintf(msg, sizeof(msg), "<response xmlns='" NS_SASL
				     "'>%s</response>", buf);
			if (n < 0 || (size_t)n >= sizeof(msg))
				goto toolong;
			sess_puts(s, msg);
			return H_OK;
		}
	}
	if (el_is(e, "challenge", NULL)) {
		/* Extra data before success (the v= of older servers): ack it. */
		sess_puts(s, "<response xmlns='" NS_SASL "'/>");
		return H_OK;
	}
	/* success */
	if (s->scram && !s->scram->verified) {
		sess_fail(s, F_AUTH, "SCRAM: the server did not prove it knows the key");
		return H_GONE;
	}
	free(s->scram);
	s->scram = NULL;
	s->authed = true;
	if (s->purpose == P_PROBE) {
		login_finished(s, true, F_COUNT, NULL);
		sess_close(s);
		return H_OK;
	}
	send_header(s);		/* RFC 6120 §6.4.6: restart the stream */
	return H_RESTART;
toolong:
	sess_fail(s, F_INTERNAL, "SCRAM message too long");
	return H_GONE;
}

static int on_iq_result(struct sess *s, const struct el *e, const char *id)
{
	bool ok = el_attr_is(e, "type", "result");
	char cond[64], text[1024];

	if (s->state == S_REG && strcmp(id, "reg") == 0) {
		if (ok) {
			W.rep.registered++;
		} else {
			struct el c;

			if (el_find_child(e, "error", NULL, &c))
				error_condition(&c, cond, sizeof(cond));
			else
				snprintf(cond, sizeof(cond), "(none)");
			if (strcmp(cond, "conflict") == 0) {
				W.rep.existing++;
			} else {
				W.rep.reg_failed++;
				sess_fail(s, F_AUTH, "in-band registration failed: %s", cond);
				return H_GONE;
			}
		}
		login_finished(s, true, F_COUNT, NULL);
		sess_close(s);
		return H_OK;
	}
	if (s->state == S_BIND && strcmp(id, "bind") == 0) {
		struct el c, j;

		if (!ok) {
			sess_fail(s, F_BIND, "resource binding refused");
			return H_GONE;
		}
		if (el_find_child(e, "bind", NULL, &c) && el_find_child(&c, "jid", NULL, &j) &&
		    el_text(&j, text, sizeof(text)) >= 0) {
			const char *mine = W.jids + W.jid_off[s->idx];

			if (!mem_is(mine, W.jid_len[s->idx], text))
				W.rep.resource_changed++;
		}
		if (s->need_session) {
			s->state = S_SESSION;
			sess_puts(s, "<iq type='set' id='sess'><session xmlns='" NS_SESSION
				  "'/></iq>");
			return H_OK;
		}
		goto after_session;
	}
	if (s->state == S_SESSION && strcmp(id, "sess") == 0) {
		if (!ok) {
			sess_fail(s, F_BIND, "session establishment refused");
			return H_GONE;
		}
		goto after_session;
	}
	return H_OK;	/* somebody else's answer */
after_session:
	if (opt.sc == SC_OFFLINE && opt.sm && s->sm_offered && s - W.s < (ptrdiff_t)W.nsend) {
		s->state = S_SM;
		sess_puts(s, "<enable xmlns='" NS_SM "'/>");
		return H_OK;
	}
	return login_complete(s);
}

/* ---- worker: receiving messages ---- */

/* The account number in a JID written PREFIX<number>@..., or -1. */
static int64_t jid_account(const char *v, size_t vl)
{
	const char *at;
	uint64_t n;

	if (vl <= W.prefix_len || memcmp(v, opt.prefix, W.prefix_len) != 0)
		return -1;
	at = memchr(v, '@', vl);
	if (!at || !parse_u64(v + W.prefix_len, (size_t)(at - v) - W.prefix_len, &n) ||
	    n >= opt.n)
		return -1;
	return (int64_t)n;
}

/* Marks seq of sender as received; false if it was already. */
static bool bits_set(uint32_t sender, uint32_t seq)
{
	struct bits *b = &W.bits[sender];
	uint32_t w = seq / 64;
	uint64_t m = 1ull << (seq % 64);

	if (w >= b->nwords) {
		uint32_t n = b->nwords ? b->nwords : 16;
		uint64_t *nw;

		while (n <= w)
			n *= 2;
		nw = realloc(b->w, (size_t)n * sizeof(*nw));
		if (!nw)
			fatal("out of memory for the received-message bitmaps");
		memset(nw + b->nwords, 0, (size_t)(n - b->nwords) * sizeof(*nw));
		b->w = nw;
		b->nwords = n;
	}
	if (b->w[w] & m)
		return false;
	b->w[w] |= m;
	return true;
}

static void on_message(struct sess *s, const struct el *e)
{
	struct attr_cur a = { e->attrs, e->stag_end };
	const char *n, *v, *from = NULL, *to = NULL, *body, *sp;
	size_t nl, vl, froml = 0, tol = 0, bl;
	bool error = false;
	struct el c;
	char text[128];
	uint64_t ts, seq, now, lat;
	int64_t sender, rcpt;

	W.rx_total++;
	while (el_attr_next(&a, &n, &nl, &v, &vl)) {
		if (mem_is(n, nl, "from")) {
			from = v;
			froml = vl;
		} else if (mem_is(n, nl, "to")) {
			to = v;
			tol = vl;
		} else if (mem_is(n, nl, "type")) {
			error = mem_is(v, vl, "error");
		}
	}
	if (error) {
		W.bounced++;
		if (!W.bounce_cond[0] && el_find_child(e, "error", NULL, &c))
			error_condition(&c, W.bounce_cond, sizeof(W.bounce_cond));
		return;
	}
	if (!from || !el_find_child(e, "body", NULL, &c)) {
		W.foreign++;
		return;
	}
	body = c.stag_end;
	bl = (size_t)(c.body_end - body);
	if (memchr(body, '&', bl) || memchr(body, '<', bl)) {
		ssize_t tl = el_text(&c, text, sizeof(text));

		if (tl < 0) {
			W.foreign++;
			return;
		}
		body = text;
		bl = (size_t)tl;
	}
	sp = memchr(body, ' ', bl);
	sender = jid_account(from, froml);
	if (!sp || sender < 0 || !parse_u64(body, (size_t)(sp - body), &ts) ||
	    !parse_u64(sp + 1, bl - (size_t)(sp - body) - 1, &seq) || seq > UINT32_MAX) {
		W.foreign++;
		return;
	}
	if (ts < run_start) {
		/* Sent by an earlier run (a server that kept it, offline): it says
		 * nothing about this one and must not hide a loss. */
		W.stale++;
		return;
	}
	rcpt = to ? jid_account(to, tol) : -1;
	if (rcpt != (int64_t)s->idx)
		W.misrouted++;
	now = now_ns();
	W.last_rx = now;
	if (!bits_set((uint32_t)sender, (uint32_t)seq)) {
		W.dup++;
		return;
	}
	W.unique++;
	lat = now > ts ? (now - ts) / 1000 : 0;
	if (W.step_open) {
		if (ts >= W.step_start) {
			W.rep.delivered++;
			hist_add(&W.rep.h, lat);
		} else {
			W.rep.late++;
		}
	}
}

static void on_iq(struct sess *s, const struct el *e)
{
	const char *id, *from, *type;
	size_t idl, froml = 0, typel;
	char buf[1024], *p = buf, *lim = buf + sizeof(buf) - 200;

	if (!el_attr(e, "type", &type, &typel))
		return;
	if (!el_attr(e, "id", &id, &idl))
		id = "", idl = 0;
	if (mem_is(type, typel, "result") || mem_is(type, typel, "error")) {
		if (mem_is(id, idl, "fin") && W.osending && !s->acked) {
			s->acked = true;
			W.rep.acked += s->sent_here;
			W.senders_open--;
			offline_check_done();
		}
		return;
	}
	if (!mem_is(type, typel, "get") && !mem_is(type, typel, "set"))
		return;
	/* A ping (XEP-0199) gets its result; anything else is not served here. */
	{
		struct el c = { 0 };
		bool ping = el_next_child(e, &c) > 0 && el_is(&c, "ping", NS_PING);

		p = put_mem(p, "<iq type='", 10);
		p = ping ? put_mem(p, "result", 6) : put_mem(p, "error", 5);
		p = put_mem(p, "' id='", 6);
		p = put_attr_raw(p, lim, id, idl);
		if (el_attr(e, "from", &from, &froml)) {
			p = put_mem(p, "' to='", 6);
			p = put_attr_raw(p, lim, from, froml);
		}
		if (ping)
			p = put_mem(p, "'/>", 3);
		else
			p += snprintf(p, 200, "'><error type='cancel'><service-unavailable xmlns='"
				      NS_STANZAS "'/></error></iq>");
		sess_write(s, buf, (size_t)(p - buf));
		if (s->sm_on)
			s->sm_out++;
	}
}

static void sender_ask(struct sess *s)
{
	s->t_ask = now_ns();
	sess_puts(s, "<r xmlns='" NS_SM "'/>");
}

/* The sender's messages are all acked (full), or the server's h stopped short
 * of our count for --quiet seconds: it counts differently; take its word. */
static void sender_acked(struct sess *s, bool full)
{
	if (!full) {
		W.rep.senders_unacked++;
		if (opt.verbose)
			fprintf(stderr, "parley-bench: a sender's acks stop at h=%" PRIu32
				" of %" PRIu32 "\n", s->last_h, s->sm_out);
	}
	s->acked = true;
	W.rep.acked += s->sent_here;
	W.senders_open--;
	offline_check_done();
}

static int on_online(struct sess *s, const struct el *e)
{
	const char *v;
	size_t vl;
	char buf[64];

	switch (e->name_len) {
	case 7:
		if (memcmp(e->name, "message", 7) == 0) {
			s->sm_in++;
			on_message(s, e);
			return H_OK;
		}
		break;
	case 2:
		if (memcmp(e->name, "iq", 2) == 0) {
			s->sm_in++;
			on_iq(s, e);
			return H_OK;
		}
		break;
	case 8:
		if (memcmp(e->name, "presence", 8) == 0) {
			s->sm_in++;
			return H_OK;
		}
		break;
	case 1:
		if (e->name[0] == 'r' && s->sm_on) {
			int n = snprintf(buf, sizeof(buf), "<a xmlns='" NS_SM "' h='%" PRIu32
					 "'/>", s->sm_in);

			sess_write(s, buf, (size_t)n);
			return H_OK;
		}
		if (e->name[0] == 'a' && s->sm_on && el_attr(e, "h", &v, &vl)) {
			uint64_t h;

			if (!W.osending || !s->fin_sent || s->acked || !parse_u64(v, vl, &h))
				return H_OK;
			/* A server that acks only what is stored or acked by the
			 * recipient (Parley) answers with less at first, then sends
			 * more <a/> as it commits; others answer each <r/>. */
			if ((uint32_t)h != s->last_h) {
				s->last_h = (uint32_t)h;
				s->t_progress = now_ns();
			}
			if ((uint32_t)h == s->sm_out)
				sender_acked(s, true);
			else if (now_ns() - s->t_ask > 50000000ull)
				sender_ask(s);	/* else the sweep asks again */
			return H_OK;
		}
		break;
	}
	return H_OK;
}

/* ---- worker: the element dispatcher ---- */

static int handle(struct sess *s, enum scan_ev ev, const char *p, size_t len)
{
	struct el e;
	char cond[64];

	if (ev == SCAN_CLOSE) {
		if (s->state == S_CLOSING)
			sess_drop(s);
		else
			sess_fail(s, F_CLOSED, "the server ended the stream");
		return H_GONE;
	}
	if (ev == SCAN_HEADER) {
		const char *te;
		enum tag_kind k;

		te = tag_end(p, p + len, &k);
		if (!te || el_head(&e, p, te, k) < 0 || !mem_is(e.name, e.name_len, "stream")) {
			sess_fail(s, F_PROTOCOL, "no stream header from the server");
			return H_GONE;
		}
		return H_OK;
	}
	if (el_top(&e, p, len) < 0) {
		sess_fail(s, F_PROTOCOL, "malformed element from the server");
		return H_GONE;
	}
	if (s->state == S_ONLINE && (e.qname == e.name || !mem_is(e.name, e.name_len, "error")))
		return on_online(s, &e);
	if (mem_is(e.name, e.name_len, "error") && e.name != e.qname) {
		/* <stream:error/> */
		error_condition(&e, cond, sizeof(cond));
		if (s->state == S_CLOSING) {
			sess_drop(s);
			return H_GONE;
		}
		sess_fail(s, F_STREAM_ERROR, "stream error: %s", cond);
		return H_GONE;
	}
	switch (s->state) {
	case S_HEADER:
		if (el_is(&e, "features", NULL))
			return on_features(s, &e);
		break;
	case S_STARTTLS:
		if (el_is(&e, "proceed", NS_TLS))
		{
			sess_start_tls(s);
			return H_GONE;	/* the plain bufferevent and its input are gone */
		}
		sess_fail(s, F_NEGOTIATION, "STARTTLS refused");
		return H_GONE;
	case S_AUTH:
		return on_sasl(s, &e);
	case S_REG:
	case S_BIND:
	case S_SESSION:
		if (el_is(&e, "iq", NULL)) {
			const char *id;
			size_t idl;
			char idb[16];

			if (!el_attr(&e, "id", &id, &idl) || idl >= sizeof(idb))
				return H_OK;
			memcpy(idb, id, idl);
			idb[idl] = '\0';
			return on_iq_result(s, &e, idb);
		}
		return H_OK;
	case S_SM:
		if (el_is(&e, "enabled", NULL)) {
			s->sm_on = true;
			W.sm_used = true;
			return login_complete(s);
		}
		if (el_is(&e, "failed", NULL))
			return login_complete(s);
		return H_OK;
	case S_CLOSING:
		return H_OK;
	default:
		break;
	}
	sess_fail(s, F_PROTOCOL, "unexpected <%.*s/> from the server", (int)e.qname_len, e.qname);
	return H_GONE;
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct sess *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	for (;;) {
		size_t len = evbuffer_get_length(in), tl;
		const char *buf, *tp;
		enum scan_ev ev;
		int rc = H_OK;
		uint32_t keep;

		if (!len)
			return;
		buf = (const char *)evbuffer_pullup(in, -1);
		if (!buf) {
			sess_fail(s, F_INTERNAL, "out of memory reading input");
			return;
		}
		while ((ev = scan_next(&s->scan, buf, len, &tp, &tl)) >= SCAN_HEADER) {
			rc = handle(s, ev, tp, tl);
			if (rc != H_OK)
				break;
		}
		if (rc == H_GONE)
			return;		/* the session or this bufferevent is gone */
		if (rc == H_RESTART) {
			/* What follows belongs to the new stream. */
			evbuffer_drain(in, s->scan.pos);
			memset(&s->scan, 0, sizeof(s->scan));
			continue;
		}
		if (ev == SCAN_ERROR) {
			sess_fail(s, F_PROTOCOL, "malformed or oversized XML from the server");
			return;
		}
		keep = s->scan.depth >= 2 ? s->scan.start : s->scan.pos;
		evbuffer_drain(in, keep);
		s->scan.pos -= keep;
		if (s->scan.depth >= 2)
			s->scan.start -= keep;
		return;
	}
}

/* ---- worker: login phases ---- */

static void pace_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t now = now_ns(), allowed = UINT64_MAX;
	double rate = opt.login_rate / opt.j;
	uint32_t cap = opt.max_pending / (uint32_t)opt.j;

	(void)fd, (void)what, (void)arg;
	if (cap < 1)
		cap = 1;
	if (rate > 0)
		allowed = (uint64_t)((double)(now - W.t_phase) / 1e9 * rate) + 1;
	while (W.next < W.ntodo && W.next < allowed && W.pending < cap)
		sess_connect(&W.s[W.todo[W.next++]]);
	if (W.next >= W.ntodo)
		event_del(W.pace_ev);
}

static void login_begin(uint32_t *todo, uint32_t n, enum purpose p, void (*done)(void))
{
	struct timeval tv = { 0, 1000 };

	W.todo = todo;
	W.ntodo = n;
	W.next = 0;
	W.pending = 0;
	W.purpose = (uint8_t)p;
	W.login_done = done;
	W.t_phase = now_ns();
	if (n == 0) {
		login_check_done();
		return;
	}
	if (event_add(W.pace_ev, &tv) < 0)
		fatal("event_add failed");
	pace_cb(-1, 0, NULL);
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
	void (*done)(void) = W.login_done;

	(void)fd, (void)what, (void)arg;
	if (!done || W.next < W.ntodo || W.pending)
		return;
	W.login_done = NULL;
	done();
}

static void closed_cb(evutil_socket_t fd, short what, void *arg)
{
	void (*done)(void) = W.closed_done;

	(void)fd, (void)what, (void)arg;
	if (!done || W.closing)
		return;
	W.closed_done = NULL;
	done();
}

/* Calls then() once no session is closing (at most 3 s later). */
static void after_closed(void (*then)(void))
{
	W.closed_done = then;
	closed_check();
}

/* Every 100 ms: login timeouts, stuck closes, offline completion. */
static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t now = now_ns(), lt = (uint64_t)(opt.login_timeout_s * 1e9);

	(void)fd, (void)what, (void)arg;
	for (uint32_t i = 0; i < W.nslots; i++) {
		struct sess *s = &W.s[i];

		if (s->in_login && now - s->t0 > lt)
			sess_fail(s, F_TIMEOUT, "no login after %.0f s (state %d)",
				  opt.login_timeout_s, s->state);
		else if (s->state == S_CLOSING && now - s->t0 > 3000000000ull)
			sess_drop(s);
		else if (W.osending && s->sm_on && s->fin_sent && !s->acked &&
			 s->state == S_ONLINE) {
			if (now - s->t_progress > (uint64_t)(opt.quiet_s * 1e9))
				sender_acked(s, false);
			else if (now - s->t_ask > 200000000ull)
				sender_ask(s);
		}
	}
	if (W.orecv && W.next >= W.ntodo && W.pending == 0) {
		uint64_t last = W.t_phase;
		bool all = W.unique >= W.expected_local, quiet;

		if (W.last_rx > last)
			last = W.last_rx;
		if (W.rep.t_last > last)
			last = W.rep.t_last;
		quiet = now - last > (uint64_t)(opt.quiet_s * 1e9);

		if (all || quiet) {
			W.orecv = false;
			W.rep.unique = W.unique;
			W.rep.dup = W.dup;
			W.rep.expected = W.expected_local;
			W.rep.t_rx_last = W.last_rx;
			W.rep.stale = W.stale;
			report_send(R_ORECV, NULL, 0);
		}
	}
	if (worker_id == 0 && W.pending && now - W.last_note > 2000000000ull) {
		W.last_note = now;
		note("login progress: %" PRIu32 " of %" PRIu32 " started, %" PRIu32 " ok, %"
		     PRIu32 " failed", W.next, W.ntodo, W.rep.ok, W.rep.failed);
	}
	if (W.quitting) {
		bool quiet = now - W.last_rx > 500000000ull || now - W.quit_t > 3000000000ull;

		if (quiet && !W.closed_done) {
			W.quitting = false;
			for (uint32_t i = 0; i < W.nslots; i++)
				if (W.s[i].state != S_FREE)
					sess_close(&W.s[i]);
			after_closed(quit_closed);
		}
	}
}

static void report_send(uint32_t type, const void *extra, size_t elen)
{
	struct msg_hdr h = { type, (uint32_t)(sizeof(W.rep) + elen) };

	W.rep.pbkdf2 = pbkdf2_runs;
	if (write_full(W.rep_fd, &h, sizeof(h)) < 0 ||
	    write_full(W.rep_fd, &W.rep, sizeof(W.rep)) < 0 ||
	    (elen && write_full(W.rep_fd, extra, elen) < 0))
		_exit(2);	/* the parent is gone */
}

static void rep_reset(void)
{
	memset(&W.rep, 0, sizeof(W.rep));
}

/* prepare: probe which accounts exist, then create the missing ones */

static uint32_t *all_slots;

static void prepare_report(void)
{
	report_send(R_PREPARED, NULL, 0);
}

static void ibr_done(void)
{
	after_closed(prepare_report);
}

/* Runs the register command for each missing account, a few at a time. */
static void run_register_cmds(void)
{
	const int par = 4;
	int running = 0;
	uint32_t i = 0;

	for (;;) {
		while (running < par && i < W.nslots) {
			struct sess *s = &W.s[i++];
			char cmd[4096], name[300], *p = cmd, *lim = cmd + sizeof(cmd) - 1;
			const char *t;
			pid_t pid;

			if (!s->missing)
				continue;
			sess_name(s, name, sizeof(name));
			*strchr(name, '@') = '\0';
			/* Substitute {user} {host} {password}, single-quoted for sh. */
			for (t = opt.register_cmd; *t && p < lim; t++) {
				const char *val = NULL;

				if (strncmp(t, "{user}", 6) == 0)
					val = name, t += 5;
				else if (strncmp(t, "{host}", 6) == 0)
					val = opt.host, t += 5;
				else if (strncmp(t, "{password}", 10) == 0)
					val = opt.password, t += 9;
				if (!val) {
					*p++ = *t;
					continue;
				}
				if (p < lim)
					*p++ = '\'';
				for (; *val && p + 4 < lim; val++) {
					if (*val == '\'')
						p = put_mem(p, "'\\''", 4);
					else
						*p++ = *val;
				}
				if (p < lim)
					*p++ = '\'';
			}
			if (p >= lim)
				fatal("--register-cmd too long after substitution");
			*p = '\0';
			pid = fork();
			if (pid < 0)
				fatal("fork: %s", strerror(errno));
			if (pid == 0) {
				int null = open("/dev/null", O_WRONLY);

				if (null >= 0)
					dup2(null, 1);
				execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
				_exit(127);
			}
			running++;
		}
		if (!running)
			break;
		{
			int st;
			pid_t pid = waitpid(-1, &st, 0);

			if (pid < 0) {
				if (errno == EINTR)
					continue;
				break;
			}
			running--;
			if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
				W.rep.registered++;
			} else {
				W.rep.reg_failed++;
				if (!W.rep.first_error[0])
					snprintf(W.rep.first_error, sizeof(W.rep.first_error),
						 "--register-cmd failed (status %d)", st);
			}
		}
	}
}

static void probe_done(void)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < W.nslots; i++)
		if (W.s[i].missing)
			all_slots[n++] = i;
	if (opt.reg == REG_IBR) {
		login_begin(all_slots, n, P_IBR, ibr_done);
		return;
	}
	if (n)
		run_register_cmds();
	/* Probe sessions still closing are harmless to the register commands;
	 * wait for them so that the slots are free before the login. */
	after_closed(prepare_report);
}

static void do_prepare(void)
{
	rep_reset();
	for (uint32_t i = 0; i < W.nslots; i++)
		all_slots[i] = i;
	if (opt.reg == REG_NONE) {
		prepare_report();
		return;
	}
	login_begin(all_slots, W.nslots, P_PROBE, probe_done);
}

/* login: the measured one */

static uint8_t *online_map;
static size_t online_map_len;

static void login_report(void)
{
	memset(online_map, 0, online_map_len);
	for (uint32_t i = 0; i < W.nslots; i++)
		if (W.s[i].state == S_ONLINE)
			online_map[W.s[i].idx / 8] |= (uint8_t)(1u << (W.s[i].idx % 8));
	report_send(R_LOGGED_IN, online_map, online_map_len);
}

static void do_login(uint32_t which)
{
	uint32_t from = 0, to = W.nslots, n = 0;

	rep_reset();
	if (opt.sc == SC_OFFLINE) {
		from = which ? W.nsend : 0;
		to = which ? W.nslots : W.nsend;
	}
	for (uint32_t i = from; i < to; i++)
		all_slots[n++] = i;
	if (opt.sc == SC_OFFLINE && which) {
		W.orecv = true;
		W.last_rx = 0;
		login_begin(all_slots, n, P_LOGIN, NULL);
		W.login_done = NULL;	/* sweep_cb reports when the messages are in */
		return;
	}
	login_begin(all_slots, n, P_LOGIN, login_report);
}

/* ---- worker: chat steps ---- */

static void set_online(const uint8_t *map)
{
	W.n_online_all = W.n_online_local = 0;
	for (uint32_t i = 0; i < opt.n; i++)
		if (map[i / 8] & (1u << (i % 8)))
			W.online_all[W.n_online_all++] = i;
	for (uint32_t i = 0; i < W.nslots; i++)
		if (W.s[i].state == S_ONLINE)
			W.online_local[W.n_online_local++] = i;
}

static size_t build_chat(char *p, uint32_t to, uint32_t seq, bool bare)
{
	char *start = p;
	uint16_t jl = bare ? W.bare_len[to] : W.jid_len[to];

	p = put_mem(p, "<message type='chat' to='", 25);
	p = put_mem(p, W.jids + W.jid_off[to], jl);
	p = put_mem(p, "' id='", 6);
	p = put_hex(p, seq);
	p = put_mem(p, "'><body>", 8);
	p = put_u64(p, now_ns());
	*p++ = ' ';
	p = put_u64(p, seq);
	p = put_mem(p, "</body></message>", 17);
	return (size_t)(p - start);
}

static uint64_t cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void step_report(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	W.step_open = false;
	W.rep.sent = W.step_sent;
	report_send(R_STEP, NULL, 0);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	static char buf[MSG_MAX * MAX_BURST];
	uint64_t now = now_ns(), due, todo, cap;

	(void)fd, (void)what, (void)arg;
	if (!W.stepping || now < W.step_start)
		return;
	if (!W.step_began) {
		/* The bench's own load is measured over the sending window only:
		 * the drain after it would dilute it. */
		W.step_began = true;
		W.step_cpu0 = cpu_ns();
	}
	if (now >= W.step_end) {
		struct timeval tv;
		uint64_t d = W.step_end + (uint64_t)(opt.drain_s * 1e9) - now;

		W.rep.send_cpu_ns = cpu_ns() - W.step_cpu0;
		W.rep.send_wall_ns = now - W.step_start;
		W.stepping = false;
		event_del(W.tick_ev);
		tv.tv_sec = (time_t)(d / 1000000000u);
		tv.tv_usec = (suseconds_t)(d % 1000000000u / 1000);
		if (event_add(W.drain_ev, &tv) < 0)
			fatal("event_add failed");
		return;
	}
	if (W.n_online_local == 0 || W.n_online_all < 2)
		return;
	due = (uint64_t)((double)(now - W.step_start) * W.step_rate / 1e9);
	todo = due > W.step_sent ? due - W.step_sent : 0;
	/* Catch up after a stall, but no more than 10 ms' worth per tick so the
	 * loop keeps reading. */
	cap = (uint64_t)(W.step_rate / 100) + 64;
	if (todo > cap)
		todo = cap;
	while (todo > 0) {
		uint32_t slot = W.online_local[rnd_below(W.n_online_local)];
		struct sess *s = &W.s[slot];
		size_t len = 0;
		uint32_t k = opt.burst < todo ? opt.burst : (uint32_t)todo;

		if (s->state != S_ONLINE || (!s->tls_on && s->fd < 0)) {
			todo--;		/* a lost sender: this message is not sent */
			W.step_sent++;
			W.rep.blocked++;
			continue;
		}
		if (evbuffer_get_length(bufferevent_get_output(s->bev)) > SEND_BACKLOG) {
			todo -= k;
			W.step_sent += k;
			W.rep.blocked += k;
			continue;
		}
		for (uint32_t i = 0; i < k; i++) {
			uint32_t to;

			do
				to = W.online_all[rnd_below(W.n_online_all)];
			while (to == s->idx);
			len += build_chat(buf + len, to, s->seq++, false);
		}
		sess_write(s, buf, len);
		todo -= k;
		W.step_sent += k;
		W.sent_total += k;
	}
}

static void do_step(const struct cmd *c)
{
	struct timeval tv = { 0, 1000 };

	rep_reset();
	W.step_rate = c->rate;
	W.step_start = c->t_start;
	W.step_end = c->t_start + c->duration_ns;
	W.step_sent = 0;
	W.step_began = false;
	W.stepping = true;
	W.step_open = true;
	if (event_add(W.tick_ev, &tv) < 0)
		fatal("event_add failed");
}

/* ---- worker: offline messages ---- */

static void offline_check_done(void)
{
	if (!W.osending || W.senders_open > 0)
		return;
	W.osending = false;
	W.rep.t_acked = now_ns();
	W.rep.bounced = W.bounced;
	W.rep.sm_offered = W.sm_offered;
	W.rep.sm_used = W.sm_used;
	snprintf(W.rep.bounce_cond, sizeof(W.rep.bounce_cond), "%s", W.bounce_cond);
	report_send(R_OSENT, NULL, 0);
}

/* Queues this sender's messages while its output is short; the write
 * callback calls back as the queue drains. Then asks for the ack. */
static void offline_fill(struct sess *s)
{
	char buf[MSG_MAX];
	uint32_t g = s->idx;	/* senders are accounts 0..S-1 */
	uint32_t S = W.senders_total, R = W.receivers_total;

	while (s->state == S_ONLINE && s->next_k < opt.messages &&
	       evbuffer_get_length(bufferevent_get_output(s->bev)) < OFFLINE_FILL) {
		uint64_t k = s->next_k, i = k / S;
		uint32_t to = S + (uint32_t)((i + g) % R);
		size_t len = build_chat(buf, to, (uint32_t)i, true);

		if (!W.rep.t_send_first)
			W.rep.t_send_first = now_ns();
		sess_write(s, buf, len);
		s->next_k += S;
		s->sent_here++;
		W.rep.sent++;
		W.sent_total++;
		if (s->sm_on)
			s->sm_out++;
	}
	if (s->state == S_ONLINE && s->next_k >= opt.messages && !s->fin_sent) {
		s->fin_sent = true;
		if (s->sm_on) {
			s->t_progress = now_ns();
			sender_ask(s);
		} else {
			char buf2[300];

			snprintf(buf2, sizeof(buf2), "<iq type='get' id='fin' to='%s'>"
				 "<ping xmlns='" NS_PING "'/></iq>", opt.host);
			sess_puts(s, buf2);
		}
	}
}

static void do_osend(void)
{
	rep_reset();
	W.osending = true;
	W.senders_open = 0;
	for (uint32_t i = 0; i < W.nsend; i++) {
		struct sess *s = &W.s[i];

		s->next_k = s->idx;	/* sender g sends messages g, g+S, g+2S, ... */
		s->sent_here = 0;
		s->fin_sent = s->acked = false;
		if (s->state == S_ONLINE)
			W.senders_open++;
	}
	for (uint32_t i = 0; i < W.nsend; i++)
		if (W.s[i].state == S_ONLINE)
			offline_fill(&W.s[i]);
	offline_check_done();
}

/* ---- worker: main ---- */

static void final_report(void)
{
	rep_reset();
	W.rep.unique = W.unique;
	W.rep.dup = W.dup;
	W.rep.misrouted = W.misrouted;
	W.rep.foreign = W.foreign;
	W.rep.bounced = W.bounced;
	W.rep.disconnects = W.disconnects;
	W.rep.sent = W.sent_total;
	W.rep.rx_total = W.rx_total;
	W.rep.stale = W.stale;
	snprintf(W.rep.bounce_cond, sizeof(W.rep.bounce_cond), "%s", W.bounce_cond);
	report_send(R_FINAL, NULL, 0);
	_exit(0);
}

static void quit_closed(void)
{
	final_report();
}

static void cmd_cb(evutil_socket_t fd, short what, void *arg)
{
	struct msg_hdr h;
	struct cmd c = { 0 };
	uint8_t *extra = NULL;
	int r;

	(void)what, (void)arg;
	r = read_full(fd, &h, sizeof(h));
	if (r != 0)
		_exit(3);	/* the parent is gone */
	if (h.len > sizeof(c) + online_map_len)
		fatal("bad command length %u", h.len);
	if (read_full(fd, &c, sizeof(c)) != 0)
		_exit(3);
	if (h.len > sizeof(c)) {
		extra = malloc(h.len - sizeof(c));
		if (!extra)
			fatal("out of memory");
		if (read_full(fd, extra, h.len - sizeof(c)) != 0)
			_exit(3);
	}
	switch (h.type) {
	case C_PREPARE:
		do_prepare();
		break;
	case C_LOGIN:
		do_login(c.which);
		break;
	case C_ONLINE:
		if (!extra || h.len - sizeof(c) != online_map_len)
			fatal("bad online map");
		set_online(extra);
		rep_reset();
		report_send(R_ONLINE, NULL, 0);
		break;
	case C_STEP:
		do_step(&c);
		break;
	case C_OSEND:
		do_osend();
		break;
	case C_ORECV:
		do_login(1);
		break;
	case C_QUIT:
		W.quitting = true;
		W.quit_t = now_ns();
		/* sweep_cb closes the sessions once the last messages are in */
		event_del(W.tick_ev);
		W.stepping = false;
		break;
	default:
		fatal("unknown command %u", h.type);
	}
	free(extra);
}

static int build_jids(void)
{
	size_t per = W.prefix_len + 12 + strlen(opt.host) + strlen(opt.resource) + 2, off = 0;

	W.jids = malloc(per * opt.n);
	W.jid_off = calloc(opt.n, sizeof(*W.jid_off));
	W.jid_len = calloc(opt.n, sizeof(*W.jid_len));
	W.bare_len = calloc(opt.n, sizeof(*W.bare_len));
	if (!W.jids || !W.jid_off || !W.jid_len || !W.bare_len)
		return -1;
	for (uint32_t i = 0; i < opt.n; i++) {
		int b = snprintf(W.jids + off, per, "%s%" PRIu32 "@%s", opt.prefix, i, opt.host);
		int f = snprintf(W.jids + off + b, per - (size_t)b, "/%s", opt.resource);

		if (b < 0 || f < 0 || (size_t)(b + f) >= per)
			return -1;
		W.jid_off[i] = (uint32_t)off;
		W.bare_len[i] = (uint16_t)b;
		W.jid_len[i] = (uint16_t)(b + f);
		off += (size_t)(b + f);
	}
	return 0;
}

static void worker_main(int id, int cmd_fd, int rep_fd)
{
	uint32_t J = (uint32_t)opt.j, w = (uint32_t)id;
	struct timeval tv = { 0, 100000 };
	uint64_t seed;

	worker_id = id;
	W.cmd_fd = cmd_fd;
	W.rep_fd = rep_fd;
	seed = opt.seed ? opt.seed + (uint64_t)id * 7919 : (uint64_t)now_ns() ^ (uint64_t)getpid();
	rng_state = seed ? seed : 1;
	W.prefix_len = strlen(opt.prefix);
	if (opt.sc == SC_OFFLINE) {
		uint32_t S = opt.n / 2, R = opt.n - S;
		uint32_t s0 = (uint32_t)((uint64_t)S * w / J);
		uint32_t s1 = (uint32_t)((uint64_t)S * (w + 1) / J);
		uint32_t r0 = (uint32_t)((uint64_t)R * w / J);
		uint32_t r1 = (uint32_t)((uint64_t)R * (w + 1) / J);

		W.senders_total = S;
		W.receivers_total = R;
		W.nsend = s1 - s0;
		W.nslots = W.nsend + (r1 - r0);
		W.send_first = s0;
		W.recv_first = S + r0;
	} else {
		uint32_t a0 = (uint32_t)((uint64_t)opt.n * w / J);
		uint32_t a1 = (uint32_t)((uint64_t)opt.n * (w + 1) / J);

		W.nsend = W.nslots = a1 - a0;
		W.send_first = a0;
	}
	W.s = calloc(W.nslots ? W.nslots : 1, sizeof(*W.s));
	all_slots = calloc(W.nslots ? W.nslots : 1, sizeof(*all_slots));
	online_map_len = (opt.n + 7) / 8;
	online_map = calloc(online_map_len, 1);
	W.online_all = calloc(opt.n, sizeof(*W.online_all));
	W.online_local = calloc(W.nslots ? W.nslots : 1, sizeof(*W.online_local));
	W.bits = calloc(opt.n, sizeof(*W.bits));
	if (!W.s || !all_slots || !online_map || !W.online_all || !W.online_local || !W.bits ||
	    build_jids() < 0)
		fatal("out of memory");
	for (uint32_t i = 0; i < W.nslots; i++) {
		W.s[i].fd = -1;
		W.s[i].idx = i < W.nsend ? W.send_first + i : W.recv_first + (i - W.nsend);
	}
	if (opt.sc == SC_OFFLINE) {
		/* How many messages this worker's receivers should get. */
		for (uint64_t k = 0; k < opt.messages; k++) {
			uint32_t g = (uint32_t)(k % W.senders_total);
			uint32_t to = W.senders_total +
				      (uint32_t)((k / W.senders_total + g) % W.receivers_total);

			if (to >= W.recv_first && to < W.recv_first + (W.nslots - W.nsend))
				W.expected_local++;
		}
	}
	if (opt.scram_cache)
		scram_file_open(opt.scram_cache);
	W.ssl = SSL_CTX_new(TLS_client_method());
	if (!W.ssl)
		fatal("SSL_CTX_new failed");
	SSL_CTX_set_verify(W.ssl, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_mode(W.ssl, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(W.ssl, SSL_SESS_CACHE_OFF);
	W.base = event_base_new();
	if (!W.base)
		fatal("event_base_new failed");
	W.pace_ev = event_new(W.base, -1, EV_PERSIST, pace_cb, NULL);
	W.sweep_ev = event_new(W.base, -1, EV_PERSIST, sweep_cb, NULL);
	W.done_ev = event_new(W.base, -1, 0, done_cb, NULL);
	W.closed_ev = event_new(W.base, -1, 0, closed_cb, NULL);
	W.tick_ev = event_new(W.base, -1, EV_PERSIST, tick_cb, NULL);
	W.drain_ev = event_new(W.base, -1, 0, step_report, NULL);
	W.cmd_ev = event_new(W.base, cmd_fd, EV_READ | EV_PERSIST, cmd_cb, NULL);
	if (!W.pace_ev || !W.sweep_ev || !W.done_ev || !W.closed_ev || !W.tick_ev ||
	    !W.drain_ev || !W.cmd_ev || event_add(W.cmd_ev, NULL) < 0 ||
	    event_add(W.sweep_ev, &tv) < 0)
		fatal("cannot set up events");
	event_base_dispatch(W.base);
	fatal("the event loop ended");
}

/* ---- parent: /proc ---- */

static int proc_status_kib(pid_t pid, const char *file, const char *key, uint64_t *out)
{
	char path[64], line[256];
	size_t kl = strlen(key);
	FILE *f;
	int rc = -1;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			*out = strtoull(line + kl + 1, NULL, 10);
			rc = 0;
			break;
		}
	}
	fclose(f);
	return rc;
}

/* utime + stime of a process, in seconds. */
static double proc_cpu_s(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NAN;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return NAN;
	buf[n] = '\0';
	p = strrchr(buf, ')');	/* the command name may hold spaces */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &ut, &st) != 2)
		return NAN;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double server_cpu(void)
{
	double t = 0;

	if (!opt.npids)
		return NAN;
	for (int i = 0; i < opt.npids; i++)
		t += proc_cpu_s(opt.pids[i]);
	return t;
}

struct mem { double rss, pss; };

static struct mem server_mem(void)
{
	struct mem m = { 0, 0 };

	if (!opt.npids)
		return (struct mem){ NAN, NAN };
	for (int i = 0; i < opt.npids; i++) {
		uint64_t v;

		m.rss += proc_status_kib(opt.pids[i], "status", "VmRSS", &v) == 0 ?
			 (double)v : NAN;
		m.pss += proc_status_kib(opt.pids[i], "smaps_rollup", "Pss", &v) == 0 ?
			 (double)v : NAN;
	}
	return m;
}

/* ---- parent: JSON ---- */

static FILE *J;
static bool j_comma[16];
static int j_depth;

static void j_raw_str(const char *s)
{
	fputc('"', J);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(J, "\\%c", c);
		else if (c < 0x20)
			fprintf(J, "\\u%04x", c);
		else
			fputc(c, J);
	}
	fputc('"', J);
}

static void j_key(const char *k)
{
	if (j_comma[j_depth])
		fputc(',', J);
	j_comma[j_depth] = true;
	if (k) {
		j_raw_str(k);
		fputc(':', J);
	}
}

static void j_open(const char *k, char c)
{
	j_key(k);
	fputc(c, J);
	if (j_depth < 15)
		j_comma[++j_depth] = false;
}

static void j_close(char c)
{
	fputc(c, J);
	if (j_depth > 0)
		j_depth--;
}

static void j_u64(const char *k, uint64_t v)
{
	j_key(k);
	fprintf(J, "%" PRIu64, v);
}

static void j_num(const char *k, double v, int prec)
{
	j_key(k);
	if (isfinite(v))
		fprintf(J, "%.*f", prec, v);
	else
		fputs("null", J);
}

static void j_str(const char *k, const char *v)
{
	j_key(k);
	j_raw_str(v);
}

static void j_bool(const char *k, bool v)
{
	j_key(k);
	fputs(v ? "true" : "false", J);
}

/* ---- parent: workers ---- */

static struct {
	pid_t pid;
	int cmd, rep;
	bool done;
	bool gone;	/* exited after its final report */
} wk[MAX_WORKERS];
static struct report *reps;
static uint8_t *pmap;	/* the merged online map */
static size_t pmap_len;
static char perr[512];	/* the first error; makes "ok" false */
static char used_mech[24];
static bool workers_broken;	/* a worker died or the deadline passed: no goodbye */
static uint64_t deadline;
static const char *phase = "starting";

static void set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void set_error(const char *fmt, ...)
{
	va_list ap;

	if (perr[0])
		return;
	va_start(ap, fmt);
	vsnprintf(perr, sizeof(perr), fmt, ap);
	va_end(ap);
}

static int send_cmd(int w, uint32_t type, const struct cmd *c, const void *extra, size_t elen)
{
	struct msg_hdr h = { type, (uint32_t)(sizeof(*c) + elen) };

	if (write_full(wk[w].cmd, &h, sizeof(h)) < 0 || write_full(wk[w].cmd, c, sizeof(*c)) < 0 ||
	    (elen && write_full(wk[w].cmd, extra, elen) < 0)) {
		set_error("worker %d is gone (while %s)", w, phase);
		workers_broken = true;
		return -1;
	}
	return 0;
}

static int send_all(uint32_t type, const struct cmd *c, const void *extra, size_t elen)
{
	for (int w = 0; w < opt.j; w++)
		if (send_cmd(w, type, c, extra, elen) < 0)
			return -1;
	return 0;
}

/*
 * Waits until every worker has sent a report of the given type (0: only
 * watch for trouble until `until`). A worker's death, a fatal report or the
 * overall deadline ends the wait with -1.
 */
static int wait_reports(uint32_t type, uint64_t until)
{
	struct pollfd pf[MAX_WORKERS];
	int left = type ? opt.j : 0;

	for (int w = 0; w < opt.j; w++)
		wk[w].done = false;
	for (;;) {
		uint64_t now = now_ns(), stop = until && until < deadline ? until : deadline;
		int n = 0, r;

		if (type && left == 0)
			return 0;
		if (now >= stop) {
			if (!type && until && now >= until && until < deadline)
				return 0;
			set_error("timeout (--timeout %.0f s) while %s", opt.timeout_s, phase);
			workers_broken = true;
			return -1;
		}
		for (int w = 0; w < opt.j; w++) {
			pf[n].fd = wk[w].gone ? -1 : wk[w].rep;
			pf[n].events = POLLIN;
			n++;
		}
		r = poll(pf, (nfds_t)n, (int)((stop - now) / 1000000 + 1));
		if (r < 0 && errno != EINTR) {
			set_error("poll: %s", strerror(errno));
			workers_broken = true;
			return -1;
		}
		for (int w = 0; r > 0 && w < opt.j; w++) {
			struct msg_hdr h;
			size_t extra;
			int rr;

			if (!(pf[w].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			rr = read_full(wk[w].rep, &h, sizeof(h));
			if (rr == 1 && wk[w].done && type == R_FINAL) {
				wk[w].gone = true;	/* it said goodbye and left */
				continue;
			}
			if (rr != 0 || h.len < sizeof(struct report) ||
			    h.len > sizeof(struct report) + pmap_len ||
			    read_full(wk[w].rep, &reps[w], sizeof(struct report)) != 0) {
				set_error("worker %d died while %s", w, phase);
				workers_broken = true;
				return -1;
			}
			extra = h.len - sizeof(struct report);
			if (extra) {
				uint8_t *buf = malloc(extra);

				if (!buf || read_full(wk[w].rep, buf, extra) != 0) {
					free(buf);
					set_error("worker %d: short report", w);
					workers_broken = true;
					return -1;
				}
				for (size_t i = 0; i < extra && i < pmap_len; i++)
					pmap[i] |= buf[i];
				free(buf);
			}
			if (h.type == R_FATAL) {
				set_error("worker %d: %s", w, reps[w].first_error);
				workers_broken = true;
				return -1;
			}
			if (h.type == type && !wk[w].done) {
				wk[w].done = true;
				left--;
			}
		}
	}
}

static void kill_workers(void)
{
	for (int w = 0; w < opt.j; w++)
		if (wk[w].pid > 0)
			kill(wk[w].pid, SIGTERM);
	for (int i = 0; i < 20; i++) {
		bool any = false;

		for (int w = 0; w < opt.j; w++) {
			int st;

			if (wk[w].pid > 0 && waitpid(wk[w].pid, &st, WNOHANG) == wk[w].pid) {
				if (WIFSIGNALED(st) && WTERMSIG(st) != SIGTERM)
					note("worker %d was killed by signal %d", w, WTERMSIG(st));
				else if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
					note("worker %d exited with status %d", w,
					     WEXITSTATUS(st));
				wk[w].pid = 0;
			}
			any |= wk[w].pid > 0;
		}
		if (!any)
			return;
		usleep(50000);
	}
	for (int w = 0; w < opt.j; w++) {
		if (wk[w].pid > 0) {
			kill(wk[w].pid, SIGKILL);
			waitpid(wk[w].pid, NULL, 0);
			wk[w].pid = 0;
		}
	}
}

static double workers_cpu(double *max_one, const double *before, double *now_each)
{
	double t = 0, mx = 0;

	for (int w = 0; w < opt.j; w++) {
		double c = proc_cpu_s(wk[w].pid);

		if (now_each)
			now_each[w] = c;
		if (before) {
			if (c - before[w] > mx)
				mx = c - before[w];
			t += c - before[w];
		} else {
			t += c;
		}
	}
	if (max_one)
		*max_one = mx;
	return t;
}

static double workers_rss(void)
{
	double t = 0;
	uint64_t v;

	for (int w = 0; w < opt.j; w++)
		if (proc_status_kib(wk[w].pid, "status", "VmRSS", &v) == 0)
			t += (double)v;
	if (proc_status_kib(getpid(), "status", "VmRSS", &v) == 0)
		t += (double)v;
	return t;
}

static void sum_reports(struct report *s)
{
	memset(s, 0, sizeof(*s));
	for (int w = 0; w < opt.j; w++) {
		struct report *r = &reps[w];

		s->attempted += r->attempted;
		s->ok += r->ok;
		s->failed += r->failed;
		s->missing += r->missing;
		for (int i = 0; i < F_COUNT; i++)
			s->fail[i] += r->fail[i];
		s->registered += r->registered;
		s->existing += r->existing;
		s->reg_failed += r->reg_failed;
		s->resource_changed += r->resource_changed;
		s->sm_offered |= r->sm_offered;
		s->sm_used |= r->sm_used;
		s->senders_unacked += r->senders_unacked;
		if (r->t_first && (!s->t_first || r->t_first < s->t_first))
			s->t_first = r->t_first;
		if (r->t_last > s->t_last)
			s->t_last = r->t_last;
		if (r->t_send_first && (!s->t_send_first || r->t_send_first < s->t_send_first))
			s->t_send_first = r->t_send_first;
		if (r->t_acked > s->t_acked)
			s->t_acked = r->t_acked;
		if (r->t_rx_last > s->t_rx_last)
			s->t_rx_last = r->t_rx_last;
		s->sent += r->sent;
		s->blocked += r->blocked;
		s->delivered += r->delivered;
		s->late += r->late;
		s->unique += r->unique;
		s->dup += r->dup;
		s->misrouted += r->misrouted;
		s->foreign += r->foreign;
		s->bounced += r->bounced;
		s->disconnects += r->disconnects;
		s->acked += r->acked;
		s->expected += r->expected;
		s->pbkdf2 += r->pbkdf2;
		s->rx_total += r->rx_total;
		s->stale += r->stale;
		if (!s->mech[0] && r->mech[0])
			memcpy(s->mech, r->mech, sizeof(s->mech));
		if (!s->first_error[0] && r->first_error[0])
			memcpy(s->first_error, r->first_error, sizeof(s->first_error));
		if (!s->bounce_cond[0] && r->bounce_cond[0])
			memcpy(s->bounce_cond, r->bounce_cond, sizeof(s->bounce_cond));
		hist_merge(&s->h, &r->h);
	}
}

/* The login figures every scenario shares. */
static void json_logins(const char *pfx, const struct report *s, double cpu_s, double cpu_max,
			double wall_s, double srv_cpu)
{
	char k[64];
	double secs = s->t_last > s->t_first ? (double)(s->t_last - s->t_first) / 1e9 : NAN;

#define K(x) (snprintf(k, sizeof(k), "%s%s", pfx, x), k)
	j_u64(K("logins_ok"), s->ok);
	j_u64(K("logins_failed"), s->failed);
	j_open(K("login_failures"), '{');
	for (int i = 0; i < F_COUNT; i++)
		if (s->fail[i])
			j_u64(fail_names[i], s->fail[i]);
	j_close('}');
	if (s->first_error[0])
		j_str(K("login_first_error"), s->first_error);
	j_num(K("login_seconds"), secs, 3);
	j_num(K("logins_per_s"), s->ok > 1 ? (double)s->ok / secs : NAN, 1);
	j_num(K("login_ms_p50"), hist_pct(&s->h, 0.50) / 1000, 3);
	j_num(K("login_ms_p99"), hist_pct(&s->h, 0.99) / 1000, 3);
	j_num(K("login_ms_max"), s->h.n ? (double)s->h.max / 1000 : NAN, 3);
	j_num(K("login_bench_cpu_s"), cpu_s, 2);
	j_num(K("login_bench_cpu_share"), wall_s > 0 ? cpu_max / wall_s : NAN, 3);
	j_bool(K("login_bench_bottleneck"), wall_s > 0 && cpu_max / wall_s > 0.9);
	j_num(K("login_server_cpu_s"), srv_cpu, 2);
	j_num(K("login_server_cpu_ms_per_login"), s->ok ? srv_cpu * 1000 / s->ok : NAN, 3);
#undef K
}

/* Logs the given side in and writes its figures; -1 on a fatal problem. */
static int phase_login(uint32_t which, const char *pfx, struct report *sum)
{
	struct cmd c = { .which = which };
	double before[MAX_WORKERS], cpu, mx, srv0 = server_cpu(), srv;
	uint64_t t0 = now_ns();

	workers_cpu(NULL, NULL, before);
	memset(pmap, 0, pmap_len);
	if (send_all(which ? C_ORECV : C_LOGIN, &c, NULL, 0) < 0 ||
	    wait_reports(which && opt.sc == SC_OFFLINE ? R_ORECV : R_LOGGED_IN, 0) < 0)
		return -1;
	cpu = workers_cpu(&mx, before, NULL);
	srv = server_cpu() - srv0;
	sum_reports(sum);
	if (sum->mech[0] && !used_mech[0])
		memcpy(used_mech, sum->mech, sizeof(used_mech));
	json_logins(pfx, sum, cpu, mx, (double)(now_ns() - t0) / 1e9, srv);
	note("%s%u logged in, %u failed in %.1f s%s%s", which ? "receivers: " :
	     opt.sc == SC_OFFLINE ? "senders: " : "", sum->ok, sum->failed,
	     (double)(now_ns() - t0) / 1e9, sum->first_error[0] ? "; first error: " : "",
	     sum->first_error);
	if (!sum->ok && sum->attempted) {
		set_error("no session could log in; first error: %s", sum->first_error);
		return -1;
	}
	return 0;
}

static void scenario_idle(void)
{
	struct report sum;
	struct mem before, after;
	uint64_t t_logged;
	double hold_left;

	before = server_mem();
	phase = "logging in";
	if (phase_login(0, "", &sum) < 0)
		return;
	t_logged = now_ns();
	phase = "settling";
	if (wait_reports(0, now_ns() + (uint64_t)(opt.settle_s * 1e9)) < 0)
		return;
	after = server_mem();
	j_num("hold_s", opt.hold_s, 1);
	j_num("settle_s", opt.settle_s, 1);
	j_num("server_rss_kib_before", before.rss, 0);
	j_num("server_rss_kib_after", after.rss, 0);
	j_num("server_pss_kib_before", before.pss, 0);
	j_num("server_pss_kib_after", after.pss, 0);
	j_num("rss_kib_per_session", sum.ok ? (after.rss - before.rss) / sum.ok : NAN, 2);
	j_num("pss_kib_per_session", sum.ok ? (after.pss - before.pss) / sum.ok : NAN, 2);
	{
		double b = workers_rss();

		j_num("bench_rss_kib", b, 0);
		j_num("bench_rss_kib_per_session", sum.ok ? b / sum.ok : NAN, 2);
	}
	if (sum.ok && after.rss - before.rss < 0.05 * sum.ok)
		j_str("memory_note", "the server's memory hardly grew: it probably reuses what "
		      "earlier sessions freed; measure on a freshly started server");
	note("server memory per session: %.2f KiB RSS, %.2f KiB PSS",
	     sum.ok ? (after.rss - before.rss) / sum.ok : NAN,
	     sum.ok ? (after.pss - before.pss) / sum.ok : NAN);
	hold_left = opt.hold_s - (double)(now_ns() - t_logged) / 1e9;
	phase = "holding";
	if (hold_left > 0)
		wait_reports(0, now_ns() + (uint64_t)(hold_left * 1e9));
}

static void scenario_chat(void)
{
	struct report sum;
	struct cmd c = { 0 };
	double last_ok_rate = NAN;
	bool behind = false;

	phase = "logging in";
	if (phase_login(0, "", &sum) < 0)
		return;
	if (sum.ok < 2) {
		set_error("fewer than two sessions online");
		return;
	}
	phase = "sharing the online list";
	if (send_all(C_ONLINE, &c, pmap, pmap_len) < 0 || wait_reports(R_ONLINE, 0) < 0)
		return;
	j_num("step_seconds", opt.step_s, 1);
	j_num("drain_seconds", opt.drain_s, 1);
	j_open("steps", '[');
	for (int i = 0; i < opt.nrates && !behind; i++) {
		double before[MAX_WORKERS], cpu, mx = 0, srv0, srv, lat99, target;
		uint64_t need = (uint64_t)((opt.step_s + opt.drain_s + 1) * 1e9);
		double rate = opt.rates[i];
		bool fell;

		if (now_ns() + need > deadline) {
			note("stopping before %.0f msgs/s: --timeout leaves no room", rate);
			j_close(']');
			j_bool("truncated_by_timeout", true);
			if (i == 0)
				set_error("--timeout %.0f s leaves no time for a %.1f s step",
					  opt.timeout_s, opt.step_s);
			goto totals;
		}
		c.step = (uint32_t)i;
		c.rate = rate / opt.j;
		c.t_start = now_ns() + 50000000;	/* every worker starts together */
		c.duration_ns = (uint64_t)(opt.step_s * 1e9);
		c.drain_ns = (uint64_t)(opt.drain_s * 1e9);
		workers_cpu(NULL, NULL, before);
		srv0 = server_cpu();
		phase = "running a chat step";
		if (send_all(C_STEP, &c, NULL, 0) < 0 || wait_reports(R_STEP, 0) < 0) {
			j_close(']');
			return;
		}
		cpu = workers_cpu(NULL, before, NULL);
		for (int w = 0; w < opt.j; w++)
			if (reps[w].send_wall_ns &&
			    (double)reps[w].send_cpu_ns / (double)reps[w].send_wall_ns > mx)
				mx = (double)reps[w].send_cpu_ns / (double)reps[w].send_wall_ns;
		srv = server_cpu() - srv0;
		sum_reports(&sum);
		lat99 = hist_pct(&sum.h, 0.99);
		target = rate * opt.step_s;
		fell = sum.delivered < 0.95 * (double)(sum.sent - sum.blocked) ||
		       !(lat99 <= 1e6) || sum.sent == 0;
		j_open(NULL, '{');
		j_num("rate", rate, 0);
		j_u64("sent", sum.sent - sum.blocked);
		j_u64("send_skipped", sum.blocked);
		j_u64("delivered", sum.delivered);
		j_u64("delivered_late_from_earlier_steps", sum.late);
		j_num("delivered_per_s", (double)sum.delivered / opt.step_s, 1);
		j_num("latency_us_p50", hist_pct(&sum.h, 0.5), 0);
		j_num("latency_us_p99", lat99, 0);
		j_num("latency_us_p999", hist_pct(&sum.h, 0.999), 0);
		j_num("latency_us_max", sum.h.n ? (double)sum.h.max : NAN, 0);
		j_num("server_cpu_s", srv, 2);
		j_num("server_cpu_s_per_100k", sum.delivered ? srv * 1e5 / sum.delivered : NAN, 3);
		j_bool("rate_reached", (double)(sum.sent - sum.blocked) >= 0.95 * target);
		j_num("bench_cpu_s", cpu, 2);
		j_num("bench_cpu_share", mx, 3);
		j_bool("bench_bottleneck", mx > 0.9);
		j_bool("fell_behind", fell);
		j_close('}');
		note("step %.0f msgs/s: sent %" PRIu64 ", delivered %" PRIu64 " (%.0f/s), "
		     "p50 %.0f us, p99 %.0f us, server %.2f s CPU, bench %.0f%% of a core%s",
		     rate, sum.sent - sum.blocked, sum.delivered,
		     (double)sum.delivered / opt.step_s, hist_pct(&sum.h, 0.5), lat99, srv,
		     100 * mx, fell ? " - fell behind" : "");
		if (fell)
			behind = true;
		else
			last_ok_rate = rate;
	}
	j_close(']');
totals:
	j_num("max_rate_sustained", last_ok_rate, 0);
}

static void scenario_offline(void)
{
	struct report sum;
	struct cmd c = { 0 };
	uint64_t sent, acked;
	double store_s;

	j_u64("messages", opt.messages);
	j_u64("senders", opt.n / 2);
	j_u64("receivers", opt.n - opt.n / 2);
	phase = "logging the senders in";
	if (phase_login(0, "sender_", &sum) < 0)
		return;
	phase = "storing offline messages";
	if (send_all(C_OSEND, &c, NULL, 0) < 0 || wait_reports(R_OSENT, 0) < 0)
		return;
	sum_reports(&sum);
	sent = sum.sent;
	acked = sum.acked;
	store_s = sum.t_acked > sum.t_send_first ? (double)(sum.t_acked - sum.t_send_first) / 1e9
						 : NAN;
	j_bool("sm_offered", sum.sm_offered);
	j_bool("sm_used", sum.sm_used);
	/* Without XEP-0198 the ping only shows the server routed the messages,
	 * not that it stored them: say which one the store rate stands on. */
	j_str("ack_method", sum.sm_used ? "xep-0198" : "ping-round-trip");
	j_u64("sent", sent);
	j_u64("acked", acked);
	j_u64("senders_unacked", sum.senders_unacked);
	j_u64("bounced", sum.bounced);
	if (sum.bounce_cond[0])
		j_str("bounce_condition", sum.bounce_cond);
	j_num("store_seconds", store_s, 3);
	j_num("store_rate", (double)acked / store_s, 1);
	note("stored: %" PRIu64 " sent, %" PRIu64 " acked (%s), %" PRIu64 " bounced in %.2f s",
	     sent, acked, sum.sm_used ? "XEP-0198" : "ping round trip", sum.bounced, store_s);
	if (sum.bounced) {
		/* RFC 6121 §8.5.2.2: no offline store is service-unavailable. */
		if (strcmp(sum.bounce_cond, "service-unavailable") == 0)
			set_error("offline storage not offered by the server (%" PRIu64
				  " messages bounced with service-unavailable)", sum.bounced);
		else
			set_error("%" PRIu64 " messages bounced with %s", sum.bounced,
				  sum.bounce_cond[0] ? sum.bounce_cond : "errors");
		return;
	}
	phase = "logging the receivers in and flushing";
	{
		uint64_t t0 = now_ns();
		double flush_s;

		if (phase_login(1, "receiver_", &sum) < 0)
			return;
		flush_s = sum.t_rx_last > t0 ? (double)(sum.t_rx_last - t0) / 1e9 : NAN;
		j_u64("received_unique", sum.unique);
		j_u64("duplicates", sum.dup);
		j_u64("missing", sent > sum.unique ? sent - sum.unique : 0);
		j_u64("stale_from_earlier_runs", sum.stale);
		j_num("flush_seconds", flush_s, 3);
		j_num("flush_rate", (double)sum.unique / flush_s, 1);
		note("flushed %" PRIu64 " of %" PRIu64 " in %.2f s, %" PRIu64 " duplicates",
		     sum.unique, sent, flush_s, sum.dup);
		if (sum.unique < sent || sum.dup)
			set_error("%" PRIu64 " messages missing, %" PRIu64 " duplicates",
				  sent > sum.unique ? sent - sum.unique : 0, sum.dup);
	}
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fprintf(f,
"usage: parley-bench [options]\n"
"  -s, --scenario S      login | idle | chat | offline (default login)\n"
"  -n N                  accounts/sessions (default 100)\n"
"  -j N                  worker processes (default 1)\n"
"  -h HOST               XMPP domain (default localhost)\n"
"  -a ADDR               server address (default 127.0.0.1)\n"
"  -p PORT               server port (default 5222, 5223 with --tls direct)\n"
"  --tls MODE            none | starttls | direct (default starttls)\n"
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
"  --rate R              chat: one step at R msgs/s\n"
"  --rates R1,R2,...     chat: steps (default 2000,5000,10000,20000,50000,100000)\n"
"  --step-seconds S      chat: seconds per step (default 5)\n"
"  --drain S             chat: seconds to wait for a step's last messages (default 1.5)\n"
"  --burst B             chat: messages a picked sender writes at once (default 1)\n"
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

static void fail_early(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail_early(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	note("%s", buf);
	J = stdout;
	j_open(NULL, '{');
	j_bool("ok", false);
	j_str("error", buf);
	j_close('}');
	fputc('\n', stdout);
	exit(2);
}

static void parse_args(int argc, char **argv)
{
	enum {
		O_TLS = 256, O_SASL, O_PID, O_RATE, O_RATES, O_STEP, O_DRAIN, O_HOLD, O_SETTLE,
		O_MESSAGES, O_TIMEOUT, O_PREFIX, O_PASSWORD, O_RESOURCE, O_REGCMD, O_IBR, O_NOREG,
		O_LOGINRATE, O_MAXPEND, O_LOGINTO, O_CPA, O_BURST, O_NOSM, O_QUIET, O_SEED, O_HELP,
		O_SCRAMCACHE,
	};
	static const struct option lo[] = {
		{ "scenario", required_argument, NULL, 's' },
		{ "tls", required_argument, NULL, O_TLS },
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
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t u;
	int c, v;
	bool port_set = false;

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
	opt.messages = 10000;
	opt.max_pending = 1000;
	opt.conns_per_addr = 20000;
	opt.burst = 1;
	opt.sm = true;
	while ((c = getopt_long(argc, argv, "s:n:j:h:a:p:v", lo, NULL)) != -1) {
		switch (c) {
		case 's':
			v = pick(optarg, scenario_names, 4);
			if (v < 0)
				fail_early("unknown scenario '%s'", optarg);
			opt.sc = (enum scenario)v;
			break;
		case 'n':
			if (!parse_uint(optarg, 10000000, &u) || u == 0)
				fail_early("bad -n '%s'", optarg);
			opt.n = (uint32_t)u;
			break;
		case 'j':
			if (!parse_uint(optarg, MAX_WORKERS, &u) || u == 0)
				fail_early("bad -j '%s' (1..%d)", optarg, MAX_WORKERS);
			opt.j = (int)u;
			break;
		case 'h': opt.host = optarg; break;
		case 'a': opt.addr = optarg; break;
		case 'p':
			if (!parse_uint(optarg, 65535, &u) || u == 0)
				fail_early("bad -p '%s'", optarg);
			opt.port = (int)u;
			port_set = true;
			break;
		case 'v': opt.verbose++; break;
		case O_TLS:
			v = pick(optarg, tls_names, 3);
			if (v < 0)
				fail_early("--tls none|starttls|direct");
			opt.tls = (enum tls_mode)v;
			break;
		case O_SASL:
			v = pick(optarg, sasl_names, 4);
			if (v < 0)
				fail_early("--sasl auto|plain|scram-sha-1|scram-sha-256");
			opt.sasl = (enum sasl_choice)v;
			break;
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
		case O_STEP:
			if (!parse_double(optarg, &opt.step_s) || opt.step_s < 0.1)
				fail_early("bad --step-seconds");
			break;
		case O_DRAIN:
			if (!parse_double(optarg, &opt.drain_s))
				fail_early("bad --drain");
			break;
		case O_HOLD:
			if (!parse_double(optarg, &opt.hold_s))
				fail_early("bad --hold");
			break;
		case O_SETTLE:
			if (!parse_double(optarg, &opt.settle_s))
				fail_early("bad --settle");
			break;
		case O_MESSAGES:
			if (!parse_uint(optarg, 1000000000, &opt.messages) || !opt.messages)
				fail_early("bad --messages");
			break;
		case O_TIMEOUT:
			if (!parse_double(optarg, &opt.timeout_s) || opt.timeout_s < 1)
				fail_early("bad --timeout");
			break;
		case O_PREFIX: opt.prefix = optarg; break;
		case O_PASSWORD: opt.password = optarg; break;
		case O_RESOURCE: opt.resource = optarg; break;
		case O_REGCMD: opt.register_cmd = optarg; opt.reg = REG_CMD; break;
		case O_IBR: opt.reg = REG_IBR; break;
		case O_NOREG: opt.reg = REG_NONE; break;
		case O_LOGINRATE:
			if (!parse_double(optarg, &opt.login_rate))
				fail_early("bad --login-rate");
			break;
		case O_MAXPEND:
			if (!parse_uint(optarg, 1000000, &u) || !u)
				fail_early("bad --max-pending");
			opt.max_pending = (uint32_t)u;
			break;
		case O_LOGINTO:
			if (!parse_double(optarg, &opt.login_timeout_s) || opt.login_timeout_s < 1)
				fail_early("bad --login-timeout");
			break;
		case O_CPA:
			if (!parse_uint(optarg, 10000000, &u) || !u)
				fail_early("bad --conns-per-addr");
			opt.conns_per_addr = (uint32_t)u;
			break;
		case O_BURST:
			if (!parse_uint(optarg, MAX_BURST, &u) || !u)
				fail_early("bad --burst (1..%d)", MAX_BURST);
			opt.burst = (uint32_t)u;
			break;
		case O_NOSM: opt.sm = false; break;
		case O_SCRAMCACHE: opt.scram_cache = optarg; break;
		case O_QUIET:
			if (!parse_double(optarg, &opt.quiet_s))
				fail_early("bad --quiet");
			break;
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
	if (optind < argc)
		fail_early("unexpected argument '%s'", argv[optind]);
	if (!port_set && opt.tls == TLS_DIRECT)
		opt.port = 5223;
	if (!opt.nrates) {
		static const double def[] = { 2000, 5000, 10000, 20000, 50000, 100000 };

		memcpy(opt.rates, def, sizeof(def));
		opt.nrates = 6;
	}
	for (const char *p = opt.prefix; *p; p++)
		if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') &&
		    !(*p >= '0' && *p <= '9') && *p != '.' && *p != '_' && *p != '-')
			fail_early("--prefix may hold only [A-Za-z0-9._-]");
	if (!*opt.prefix || strlen(opt.prefix) > 64 || strlen(opt.host) > JID_PART_MAX ||
	    strlen(opt.resource) > 64 || !*opt.resource || strlen(opt.password) > 256 ||
	    strpbrk(opt.host, "'\"<>&/@ ") || strpbrk(opt.resource, "'\"<>&"))
		fail_early("--prefix, -h, --resource or --password is too long or invalid");
	if (opt.sasl == SASL_PLAIN && opt.tls == TLS_NONE)
		fail_early("--sasl plain needs TLS: PLAIN sends the password as it is");
	if ((opt.sc == SC_CHAT || opt.sc == SC_OFFLINE) && opt.n < 2)
		fail_early("this scenario needs -n 2 or more");
	if ((uint32_t)opt.j > opt.n)
		opt.j = (int)opt.n;
	{
		struct addrinfo hints = { .ai_flags = AI_NUMERICHOST, .ai_socktype = SOCK_STREAM };
		struct addrinfo *ai;
		char port[8];

		snprintf(port, sizeof(port), "%d", opt.port);
		if (getaddrinfo(opt.addr, port, &hints, &ai) != 0)
			fail_early("-a needs a numeric address, not '%s'", opt.addr);
		memcpy(&opt.sa, ai->ai_addr, ai->ai_addrlen);
		opt.salen = ai->ai_addrlen;
		freeaddrinfo(ai);
	}
	loopback4 = opt.sa.ss_family == AF_INET &&
		    (ntohl(((struct sockaddr_in *)&opt.sa)->sin_addr.s_addr) >> 24) == 127;
	if (!loopback4 && opt.n > opt.conns_per_addr)
		fail_early("source addresses are spread over 127.0.0.0/8 only: use a 127.x "
			   "server address or raise --conns-per-addr");
}

int main(int argc, char **argv)
{
	struct rlimit rl;
	uint64_t t_start = now_ns(), per_worker;

	run_start = t_start;
	char *body = NULL;
	size_t body_len = 0;
	struct cmd c = { 0 };

	parse_args(argc, argv);
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		fail_early("signal: %s", strerror(errno));
	/* Sessions are file descriptors: take all the kernel allows us. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			note("cannot raise the open-file limit: %s", strerror(errno));
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		fail_early("getrlimit: %s", strerror(errno));
	per_worker = (opt.n + (uint64_t)opt.j - 1) / (uint64_t)opt.j;
	if (rl.rlim_cur != RLIM_INFINITY && per_worker + 64 > rl.rlim_cur)
		fail_early("%" PRIu64 " sessions per worker but only %llu open files per process: "
			   "use -j %" PRIu64 " or more", per_worker,
			   (unsigned long long)rl.rlim_cur,
			   (opt.n + rl.rlim_cur - 65) / (rl.rlim_cur - 64));
	/* The scenario ends a little before --timeout: the goodbye (last drain,
	 * stream closes, final counts) gets the rest. */
	deadline = t_start + (uint64_t)((opt.timeout_s - fmin(5, opt.timeout_s / 4)) * 1e9);
	reps = calloc((size_t)opt.j, sizeof(*reps));
	pmap_len = (opt.n + 7) / 8;
	pmap = calloc(pmap_len, 1);
	if (!reps || !pmap)
		fail_early("out of memory");
	fflush(stderr);
	for (int w = 0; w < opt.j; w++) {
		int down[2], up[2];
		pid_t pid;

		if (pipe2(down, O_CLOEXEC) < 0 || pipe2(up, O_CLOEXEC) < 0)
			fail_early("pipe: %s", strerror(errno));
		pid = fork();
		if (pid < 0)
			fail_early("fork: %s", strerror(errno));
		if (pid == 0) {
			for (int k = 0; k < w; k++) {
				close(wk[k].cmd);
				close(wk[k].rep);
			}
			close(down[1]);
			close(up[0]);
			worker_main(w, down[0], up[1]);
			_exit(0);
		}
		close(down[0]);
		close(up[1]);
		wk[w].pid = pid;
		wk[w].cmd = down[1];
		wk[w].rep = up[0];
	}
	J = open_memstream(&body, &body_len);
	if (!J)
		fail_early("open_memstream failed");
	j_comma[0] = true;	/* "ok" comes first, written below */
	j_str("scenario", scenario_names[opt.sc]);
	j_open("server_pids", '[');
	for (int i = 0; i < opt.npids; i++)
		j_u64(NULL, (uint64_t)opt.pids[i]);
	j_close(']');
	j_u64("n", opt.n);
	j_u64("j", (uint64_t)opt.j);
	j_str("tls", tls_names[opt.tls]);
	j_str("host", opt.host);
	j_str("address", opt.addr);
	j_u64("port", (uint64_t)opt.port);
	j_str("prefix", opt.prefix);
	j_num("login_rate_limit", opt.login_rate, 0);

	phase = "checking and creating accounts";
	if (opt.reg != REG_NONE)
		note("checking which of %u accounts exist", opt.n);
	if (send_all(C_PREPARE, &c, NULL, 0) == 0 && wait_reports(R_PREPARED, 0) == 0) {
		struct report sum;

		sum_reports(&sum);
		if (opt.reg != REG_NONE) {
			j_u64("accounts_missing", sum.missing);
			j_u64("accounts_registered", sum.registered);
			j_u64("accounts_register_failed", sum.reg_failed);
			note("%u accounts missing, %u registered, %u failed", sum.missing,
			     sum.registered, sum.reg_failed);
			if (sum.failed)
				note("account check: %u failures; first: %s", sum.failed,
				     sum.first_error);
		}
		note("running %s with %u sessions over %d worker(s)", scenario_names[opt.sc],
		     opt.n, opt.j);
		switch (opt.sc) {
		case SC_LOGIN: {
			struct report s2;

			phase = "logging in";
			phase_login(0, "", &s2);
			j_num("bench_rss_kib", workers_rss(), 0);
			break;
		}
		case SC_IDLE:
			scenario_idle();
			break;
		case SC_CHAT:
			scenario_chat();
			j_num("bench_rss_kib", workers_rss(), 0);
			break;
		case SC_OFFLINE:
			scenario_offline();
			j_num("bench_rss_kib", workers_rss(), 0);
			break;
		}
	}
	if (!workers_broken) {
		struct report sum;
		char keep[sizeof(perr)];

		memcpy(keep, perr, sizeof(perr));
		perr[0] = '\0';
		phase = "closing";
		deadline = t_start + (uint64_t)(opt.timeout_s * 1e9);
		/* A final drain and close; late figures that only the end knows. */
		if (send_all(C_QUIT, &c, NULL, 0) == 0 &&
		    wait_reports(R_FINAL, now_ns() + 15000000000ull) == 0) {
			sum_reports(&sum);
			j_u64("disconnects", sum.disconnects);
			if (opt.sc == SC_CHAT) {
				j_u64("total_sent", sum.sent);
				j_u64("total_received_unique", sum.unique);
				j_u64("lost", sum.sent > sum.unique ? sum.sent - sum.unique : 0);
				j_u64("duplicates", sum.dup);
				j_u64("misrouted", sum.misrouted);
				j_u64("unparsed_messages", sum.foreign);
				j_u64("stale_from_earlier_runs", sum.stale);
				j_u64("bounced", sum.bounced);
				if (sum.bounce_cond[0])
					j_str("bounce_condition", sum.bounce_cond);
			}
			j_u64("bench_pbkdf2_runs", sum.pbkdf2);
		} else {
			note("workers did not finish cleanly: %s", perr);
		}
		/* The figures stand without the goodbye; the scenario's verdict too. */
		memcpy(perr, keep, sizeof(perr));
	}
	if (used_mech[0])
		j_str("sasl", used_mech);
	j_num("elapsed_s", (double)(now_ns() - t_start) / 1e9, 2);
	kill_workers();
	if (fclose(J) != 0)
		body = NULL;
	printf("{\"ok\":%s", perr[0] ? "false" : "true");
	if (perr[0]) {
		J = stdout;
		j_depth = 0;
		j_comma[0] = true;
		j_str("error", perr);
	}
	printf("%s}\n", body ? body : "");
	free(body);
	if (perr[0])
		note("error: %s", perr);
	return perr[0] ? 1 : 0;
}

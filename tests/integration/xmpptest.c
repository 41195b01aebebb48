/*
 * xmpptest.c - the blocking test client of xmpptest.h.
 *
 * The socket is non-blocking and every wait is a poll() with the time left until
 * a deadline, for TLS too (SSL_read can want to write and vice versa). Received
 * bytes go through expat in namespace mode, so a prefix the server got wrong shows
 * up as a wrong namespace instead of passing by its spelling.
 */
#include "xmpptest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <expat.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RX_MAX (4u << 20)	/* a server that floods us is a failure, not an OOM */

struct xt {
	int fd;
	SSL *ssl;
	int timeout_ms;
	enum xt_status status;
	char err[1024];
	char sasl_failure[64];
	char jid[1024];
	unsigned id_seq;
	char id_buf[32];

	XML_Parser parser;
	int depth;
	bool header_seen, stream_ended, eof;
	char **hdr_attrs;
	struct xt_node *cur;		/* element being built */
	struct xt_node *queue, *queue_tail;
	struct xt_node *last;		/* returned by the latest read; ours */
	struct xt_node *features;
	long top_start;			/* byte index where the top-level element began */
	long top_start_end;
	char *rx;			/* bytes fed to the current parser */
	size_t rx_len, rx_cap;
	bool parse_failed;
};

static SSL_CTX *tls_ctx;
static int default_timeout_ms = XT_DEFAULT_TIMEOUT_MS;

/* ---- small helpers ---- */

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p) {
		fputs("xmpptest: out of memory\n", stderr);
		abort();
	}
	return p;
}

static char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(xmalloc(n), s, n);
}

static char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static void set_err(struct xt *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(struct xt *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int left_ms(long long deadline)
{
	long long d = deadline - now_ms();

	return d < 0 ? 0 : (int)d;
}

/* Waits for events on fd until the deadline: 1 ready, 0 timeout, -1 error. */
static int wait_fd(int fd, short events, long long deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r;

	for (;;) {
		r = poll(&p, 1, left_ms(deadline));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r;
		return 1;
	}
}

const char *xt_status_name(enum xt_status s)
{
	switch (s) {
	case XT_OK: return "ok";
	case XT_TIMEOUT: return "timeout";
	case XT_STREAM_END: return "stream end";
	case XT_CLOSED: return "connection closed";
	case XT_BAD_XML: return "bad XML from the server";
	case XT_IO_ERROR: return "I/O error";
	}
	return "?";
}

const char *xt_escape(const char *s, char *buf, size_t len)
{
	size_t o = 0;

	for (; *s && o + 7 < len; s++) {
		const char *r = NULL;

		switch (*s) {
		case '<': r = "&lt;"; break;
		case '>': r = "&gt;"; break;
		case '&': r = "&amp;"; break;
		case '\'': r = "&apos;"; break;
		case '"': r = "&quot;"; break;
		}
		if (r) {
			memcpy(buf + o, r, strlen(r));
			o += strlen(r);
		} else {
			buf[o++] = *s;
		}
	}
	buf[o] = '\0';
	return buf;
}

/* ---- nodes ---- */

static void node_free(struct xt_node *n)
{
	while (n) {
		struct xt_node *next = n->next;

		node_free(n->children);
		if (n->attrs)
			for (char **a = n->attrs; *a; a++)
				free(*a);
		free(n->attrs);
		free(n->ns);
		free(n->name);
		free(n->text);
		free(n->raw);
		free(n);
		n = next;
	}
}

/* expat in namespace mode gives "URI local" (the separator is a space) or "local". */
static void split_name(const char *qn, char **ns, char **name)
{
	const char *sp = strchr(qn, ' ');

	if (sp) {
		*ns = xstrndup(qn, (size_t)(sp - qn));
		*name = xstrdup(sp + 1);
	} else {
		*ns = xstrdup("");
		*name = xstrdup(qn);
	}
}

static char **copy_attrs(const XML_Char **atts)
{
	size_t n = 0;
	char **a;

	while (atts[n])
		n++;
	a = xmalloc((n + 1) * sizeof(*a));
	for (size_t i = 0; i < n; i++)
		a[i] = xstrdup(atts[i]);
	a[n] = NULL;
	return a;
}

const char *xt_attr(const struct xt_node *n, const char *name)
{
	if (!n || !n->attrs)
		return NULL;
	for (char **a = n->attrs; a[0] && a[1]; a += 2)
		if (strcmp(a[0], name) == 0)
			return a[1];
	return NULL;
}

bool xt_is(const struct xt_node *n, const char *ns, const char *name)
{
	return n && strcmp(n->name, name) == 0 && (!ns || strcmp(n->ns, ns) == 0);
}

struct xt_node *xt_child(const struct xt_node *n, const char *ns, const char *name)
{
	if (!n)
		return NULL;
	for (struct xt_node *ch = n->children; ch; ch = ch->next)
		if (xt_is(ch, ns, name))
			return ch;
	return NULL;
}

const char *xt_condition(const struct xt_node *err, const char *ns)
{
	if (!err)
		return NULL;
	for (struct xt_node *ch = err->children; ch; ch = ch->next)
		if (strcmp(ch->ns, ns) == 0 && strcmp(ch->name, "text") != 0)
			return ch->name;
	return NULL;
}

const char *xt_error_text(const struct xt_node *err, const char *ns)
{
	struct xt_node *t = xt_child(err, ns, "text");

	return t ? (t->text ? t->text : "") : NULL;
}

struct xt_node *xt_stanza_error(const struct xt_node *stanza)
{
	return xt_child(stanza, NULL, "error");
}

const char *xt_raw(const struct xt_node *n)
{
	if (!n)
		return "(nothing)";
	return n->raw ? n->raw : "(an element without its bytes)";
}

bool xt_has_mech(const struct xt_node *features, const char *mech)
{
	struct xt_node *ms = xt_child(features, XT_NS_SASL, "mechanisms");

	if (!ms)
		return false;
	for (struct xt_node *m = ms->children; m; m = m->next)
		if (xt_is(m, XT_NS_SASL, "mechanism") && m->text && strcmp(m->text, mech) == 0)
			return true;
	return false;
}

/* ---- the expat side ---- */

static void on_start(void *ud, const XML_Char *qn, const XML_Char **atts)
{
	struct xt *c = ud;
	struct xt_node *n;

	if (c->depth == 0) {
		/* The stream header: keep its attributes, build no node. */
		if (c->hdr_attrs) {
			for (char **a = c->hdr_attrs; *a; a++)
				free(*a);
			free(c->hdr_attrs);
		}
		c->hdr_attrs = copy_attrs(atts);
		c->header_seen = true;
		if (strcmp(qn, XT_NS_STREAMS " stream") != 0)
			set_err(c, "the stream header is <%s>, not {%s}stream", qn, XT_NS_STREAMS);
		c->depth++;
		return;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		abort();
	split_name(qn, &n->ns, &n->name);
	n->attrs = copy_attrs(atts);
	if (c->depth == 1) {
		c->top_start = XML_GetCurrentByteIndex(c->parser);
		c->top_start_end = c->top_start + XML_GetCurrentByteCount(c->parser);
	} else {
		n->parent = c->cur;
		if (c->cur->last)
			c->cur->last->next = n;
		else
			c->cur->children = n;
		c->cur->last = n;
	}
	c->cur = n;
	c->depth++;
}

static void on_end(void *ud, const XML_Char *qn)
{
	struct xt *c = ud;
	struct xt_node *n = c->cur;

	(void)qn;
	c->depth--;
	if (c->depth == 0) {
		c->stream_ended = true;
		return;
	}
	if (!n)
		return;
	c->cur = n->parent;
	if (c->depth == 1) {
		long end = XML_GetCurrentByteIndex(c->parser) + XML_GetCurrentByteCount(c->parser);

		/* An empty-element tag reports no bytes for its end event. */
		if (end < c->top_start_end)
			end = c->top_start_end;
		if (c->top_start >= 0 && end <= (long)c->rx_len && end >= c->top_start)
			n->raw = xstrndup(c->rx + c->top_start, (size_t)(end - c->top_start));
		if (c->queue_tail)
			c->queue_tail->next = n;
		else
			c->queue = n;
		c->queue_tail = n;
	}
}

static void on_text(void *ud, const XML_Char *s, int len)
{
	struct xt *c = ud;
	struct xt_node *n = c->cur;
	size_t old;

	if (c->depth < 2 || !n)
		return;
	old = n->text ? strlen(n->text) : 0;
	n->text = realloc(n->text, old + (size_t)len + 1);
	if (!n->text)
		abort();
	memcpy(n->text + old, s, (size_t)len);
	n->text[old + (size_t)len] = '\0';
}

void xt_reset_parser(struct xt *c)
{
	if (c->parser)
		XML_ParserFree(c->parser);
	c->parser = XML_ParserCreateNS(NULL, ' ');
	if (!c->parser)
		abort();
	XML_SetUserData(c->parser, c);
	XML_SetElementHandler(c->parser, on_start, on_end);
	XML_SetCharacterDataHandler(c->parser, on_text);
	/* A half-built element from the old document dies with it. */
	if (c->cur) {
		struct xt_node *top = c->cur;

		while (top->parent)
			top = top->parent;
		node_free(top);
	}
	c->cur = NULL;
	node_free(c->queue);
	c->queue = c->queue_tail = NULL;
	c->depth = 0;
	c->header_seen = false;
	c->stream_ended = false;
	c->parse_failed = false;
	c->rx_len = 0;
	c->top_start = -1;
	if (c->hdr_attrs) {
		for (char **a = c->hdr_attrs; *a; a++)
			free(*a);
		free(c->hdr_attrs);
		c->hdr_attrs = NULL;
	}
}

/* ---- connection ---- */

static void tls_init(void)
{
	if (tls_ctx)
		return;
	/* A test that writes into a socket the server has closed must see EPIPE,
	 * not die of SIGPIPE (SSL_write has no MSG_NOSIGNAL). */
	signal(SIGPIPE, SIG_IGN);
	tls_ctx = SSL_CTX_new(TLS_client_method());
	if (!tls_ctx)
		abort();
	SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
	/* A server closing without close_notify is a close, not a TLS error, here. */
	SSL_CTX_set_options(tls_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
}

struct xt *xt_connect(const char *ip, int port, const char *src_ip, char *err, size_t errlen)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct xt *c;
	long long deadline;
	int fd, r, one = 1, soerr = 0;
	socklen_t sl = sizeof(soerr);

	tls_init();
	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1) {
		snprintf(err, errlen, "bad address %s", ip);
		return NULL;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return NULL;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (src_ip) {
		struct sockaddr_in src = { .sin_family = AF_INET };

		if (inet_pton(AF_INET, src_ip, &src.sin_addr) != 1 ||
		    bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
			snprintf(err, errlen, "bind to %s: %s", src_ip, strerror(errno));
			close(fd);
			return NULL;
		}
	}
	deadline = now_ms() + default_timeout_ms;
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	if (r < 0 && errno != EINPROGRESS) {
		snprintf(err, errlen, "connect to %s:%d: %s", ip, port, strerror(errno));
		close(fd);
		return NULL;
	}
	if (r < 0) {
		if (wait_fd(fd, POLLOUT, deadline) <= 0) {
			snprintf(err, errlen, "connect to %s:%d: timed out", ip, port);
			close(fd);
			return NULL;
		}
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		if (soerr) {
			snprintf(err, errlen, "connect to %s:%d: %s", ip, port, strerror(soerr));
			close(fd);
			return NULL;
		}
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		abort();
	c->fd = fd;
	c->timeout_ms = default_timeout_ms;
	c->top_start = -1;
	xt_reset_parser(c);
	return c;
}

void xt_free(struct xt *c)
{
	if (!c)
		return;
	if (c->ssl)
		SSL_free(c->ssl);
	if (c->fd >= 0)
		close(c->fd);
	xt_reset_parser(c);
	XML_ParserFree(c->parser);
	node_free(c->last);
	node_free(c->features);
	free(c->rx);
	free(c);
}

int xt_failures;

void xt_report(const char *name, bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("%s - %s\n", ok ? "ok" : "not ok", name);
	if (!ok) {
		xt_failures++;
		printf("# ");
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		printf("\n");
	}
	fflush(stdout);
}

void xt_set_timeout(struct xt *c, int ms) { c->timeout_ms = ms; }
int xt_set_rcvbuf(struct xt *c, int bytes)
{
	return setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
}
void xt_set_default_timeout(int ms)
{
	default_timeout_ms = ms > 0 ? ms : XT_DEFAULT_TIMEOUT_MS;
}
int xt_timeout(const struct xt *c) { return c->timeout_ms; }
const char *xt_err(const struct xt *c) { return c->err[0] ? c->err : "(no detail)"; }
enum xt_status xt_status(const struct xt *c) { return c->status; }
const char *xt_sasl_failure(const struct xt *c) { return c->sasl_failure; }
const char *xt_jid(const struct xt *c) { return c->jid; }
struct xt_node *xt_last(const struct xt *c) { return c->last; }
struct xt_node *xt_features(const struct xt *c) { return c->features; }
bool xt_got_header(const struct xt *c) { return c->header_seen; }
bool xt_is_tls(const struct xt *c) { return c->ssl != NULL; }
const char *xt_tls_version(const struct xt *c) { return c->ssl ? SSL_get_version(c->ssl) : ""; }

const char *xt_stream_attr(const struct xt *c, const char *name)
{
	if (!c->hdr_attrs)
		return NULL;
	for (char **a = c->hdr_attrs; a[0] && a[1]; a += 2)
		if (strcmp(a[0], name) == 0)
			return a[1];
	return NULL;
}

static void ssl_err_string(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	if (e)
		ERR_error_string_n(e, buf, len);
	else
		snprintf(buf, len, "%s", errno ? strerror(errno) : "unknown");
	ERR_clear_error();
}

int xt_tls_handshake(struct xt *c, const char *sni)
{
	long long deadline = now_ms() + c->timeout_ms;
	char why[256];

	c->ssl = SSL_new(tls_ctx);
	if (!c->ssl) {
		set_err(c, "SSL_new failed");
		return -1;
	}
	SSL_set_fd(c->ssl, c->fd);
	SSL_set_tlsext_host_name(c->ssl, sni);
	for (;;) {
		int r = SSL_connect(c->ssl), e, w;

		if (r == 1)
			return 0;
		e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ)
			w = wait_fd(c->fd, POLLIN, deadline);
		else if (e == SSL_ERROR_WANT_WRITE)
			w = wait_fd(c->fd, POLLOUT, deadline);
		else {
			ssl_err_string(why, sizeof(why));
			set_err(c, "TLS handshake failed: %s", why);
			c->status = XT_IO_ERROR;
			return -1;
		}
		if (w <= 0) {
			set_err(c, "TLS handshake timed out");
			c->status = XT_TIMEOUT;
			return -1;
		}
	}
}

int xt_send(struct xt *c, const void *buf, size_t len)
{
	long long deadline = now_ms() + c->timeout_ms;
	const char *p = buf;
	char why[256];

	while (len > 0) {
		ssize_t n;
		int w;

		if (c->ssl) {
			int r = SSL_write(c->ssl, p, len > INT32_MAX ? INT32_MAX : (int)len), e;

			if (r > 0) {
				p += r;
				len -= (size_t)r;
				continue;
			}
			e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_WRITE)
				w = wait_fd(c->fd, POLLOUT, deadline);
			else if (e == SSL_ERROR_WANT_READ)
				w = wait_fd(c->fd, POLLIN, deadline);
			else {
				ssl_err_string(why, sizeof(why));
				set_err(c, "TLS write failed: %s", why);
				return -1;
			}
		} else {
			n = send(c->fd, p, len, MSG_NOSIGNAL);
			if (n > 0) {
				p += n;
				len -= (size_t)n;
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
				set_err(c, "write failed: %s", strerror(errno));
				return -1;
			}
			w = wait_fd(c->fd, POLLOUT, deadline);
		}
		if (w <= 0) {
			set_err(c, "write timed out (%zu bytes left)", len);
			return -1;
		}
	}
	return 0;
}

int xt_sendf(struct xt *c, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int n, r;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	r = xt_send(c, s, (size_t)n);
	free(s);
	return r;
}

/* Reads some bytes: >0 count, 0 EOF, -1 error, -2 timeout. */
static ssize_t read_some(struct xt *c, char *buf, size_t len, long long deadline)
{
	char why[256];

	for (;;) {
		int w;

		if (c->ssl) {
			int r = SSL_read(c->ssl, buf, (int)len), e;

			if (r > 0)
				return r;
			e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_ZERO_RETURN)
				return 0;
			if (e == SSL_ERROR_WANT_READ)
				w = wait_fd(c->fd, POLLIN, deadline);
			else if (e == SSL_ERROR_WANT_WRITE)
				w = wait_fd(c->fd, POLLOUT, deadline);
			else if (e == SSL_ERROR_SYSCALL && (errno == ECONNRESET || errno == 0 ||
							    errno == EPIPE)) {
				ERR_clear_error();
				return 0;	/* an abrupt close is still a close */
			} else {
				ssl_err_string(why, sizeof(why));
				set_err(c, "TLS read failed: %s", why);
				return -1;
			}
		} else {
			ssize_t n = recv(c->fd, buf, len, 0);

			if (n >= 0)
				return n;
			if (errno == EINTR)
				continue;
			if (errno == ECONNRESET)
				return 0;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				set_err(c, "read failed: %s", strerror(errno));
				return -1;
			}
			w = wait_fd(c->fd, POLLIN, deadline);
		}
		if (w < 0) {
			set_err(c, "poll failed: %s", strerror(errno));
			return -1;
		}
		if (w == 0)
			return -2;
	}
}

/* Feeds bytes to expat; false when the server's XML is broken. */
static bool feed(struct xt *c, const char *buf, size_t n)
{
	if (c->rx_len + n > RX_MAX) {
		set_err(c, "the server sent more than %u bytes in one stream", RX_MAX);
		return false;
	}
	if (c->rx_len + n + 1 > c->rx_cap) {
		c->rx_cap = (c->rx_len + n + 1) * 2;
		c->rx = realloc(c->rx, c->rx_cap);
		if (!c->rx)
			abort();
	}
	memcpy(c->rx + c->rx_len, buf, n);
	c->rx_len += n;
	if (XML_Parse(c->parser, buf, (int)n, 0) == XML_STATUS_ERROR) {
		set_err(c, "the server's XML does not parse (%s at byte %ld): %.300s",
			XML_ErrorString(XML_GetErrorCode(c->parser)),
			(long)XML_GetCurrentByteIndex(c->parser), c->rx);
		c->parse_failed = true;
		return false;
	}
	return true;
}

struct xt_node *xt_read_ms(struct xt *c, int ms)
{
	long long deadline = now_ms() + ms;
	char buf[16384];

	node_free(c->last);
	c->last = NULL;
	for (;;) {
		ssize_t n;

		if (c->queue) {
			struct xt_node *n0 = c->queue;

			c->queue = n0->next;
			if (!c->queue)
				c->queue_tail = NULL;
			n0->next = NULL;
			c->last = n0;
			c->status = XT_OK;
			return n0;
		}
		if (c->parse_failed) {
			c->status = XT_BAD_XML;
			return NULL;
		}
		if (c->stream_ended) {
			c->status = XT_STREAM_END;
			return NULL;
		}
		if (c->eof) {
			c->status = XT_CLOSED;
			return NULL;
		}
		n = read_some(c, buf, sizeof(buf), deadline);
		if (n == -2) {
			c->status = XT_TIMEOUT;
			return NULL;
		}
		if (n < 0) {
			c->status = XT_IO_ERROR;
			return NULL;
		}
		if (n == 0) {
			c->eof = true;
			continue;
		}
		feed(c, buf, (size_t)n);
	}
}

struct xt_node *xt_read(struct xt *c) { return xt_read_ms(c, c->timeout_ms); }

/* Describes why a read returned nothing, for the error line. */
static void note_no_node(struct xt *c, const char *waiting_for)
{
	if (c->status == XT_BAD_XML || c->status == XT_IO_ERROR)
		return;		/* the read already said why */
	set_err(c, "waiting for %s: %s", waiting_for, xt_status_name(c->status));
}

/* Reads the next element; a stream error is described in err and ends the wait. */
static struct xt_node *expect(struct xt *c, const char *what)
{
	struct xt_node *n = xt_read(c);

	if (!n) {
		note_no_node(c, what);
		return NULL;
	}
	if (xt_is(n, XT_NS_STREAMS, "error")) {
		set_err(c, "waiting for %s, got a stream error: %s", what, xt_raw(n));
		return NULL;
	}
	return n;
}

int xt_open_stream(struct xt *c, const char *host)
{
	struct xt_node *n;

	xt_reset_parser(c);
	node_free(c->features);
	c->features = NULL;
	if (xt_sendf(c, "<?xml version='1.0'?><stream:stream xmlns='" XT_NS_CLIENT
		     "' xmlns:stream='" XT_NS_STREAMS "' to='%s' version='1.0' xml:lang='en'>",
		     host) < 0)
		return -1;
	n = expect(c, "<stream:features/>");
	if (!n)
		return -1;
	if (!xt_is(n, XT_NS_STREAMS, "features")) {
		set_err(c, "expected <stream:features/>, got %s", xt_raw(n));
		return -1;
	}
	c->features = n;
	c->last = NULL;
	return 0;
}

int xt_starttls(struct xt *c, const char *host)
{
	struct xt_node *n;

	if (xt_sendf(c, "<starttls xmlns='" XT_NS_TLS "'/>") < 0)
		return -1;
	n = expect(c, "<proceed/>");
	if (!n)
		return -1;
	if (!xt_is(n, XT_NS_TLS, "proceed")) {
		set_err(c, "expected <proceed/>, got %s", xt_raw(n));
		return -1;
	}
	if (xt_tls_handshake(c, host) < 0)
		return -1;
	return xt_open_stream(c, host);
}

/* ---- SASL ---- */

static char *b64_encode(const unsigned char *in, size_t len)
{
	char *out = xmalloc(4 * ((len + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	return out;
}

char *xt_base64(const void *data, size_t len)
{
	return b64_encode(data, len);
}

/* Strict decoding: NULL for anything that is not canonical base64. */
static unsigned char *b64_decode(const char *in, size_t *len)
{
	size_t n = strlen(in), pad = 0;
	unsigned char *out;
	int r;

	if (n % 4)
		return NULL;
	if (n && in[n - 1] == '=')
		pad++;
	if (n > 1 && in[n - 2] == '=')
		pad++;
	out = xmalloc(n / 4 * 3 + 1);
	r = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
	if (r < 0) {
		free(out);
		return NULL;
	}
	*len = (size_t)r - pad;
	out[*len] = '\0';
	return out;
}

/* Sends a SASL element with base64 content ("=" for empty, RFC 6120 §6.4.2). */
static int send_sasl(struct xt *c, const char *elem, const char *extra, const char *data,
		     size_t len)
{
	char *b = len ? b64_encode((const unsigned char *)data, len) : xstrdup("=");
	int r = xt_sendf(c, "<%s xmlns='" XT_NS_SASL "'%s>%s</%s>", elem, extra, b, elem);

	free(b);
	return r;
}

/* Reads a SASL answer: 0 with the decoded data of a challenge or success, 1 failure,
 * -1 otherwise. *kind gets 'c' or 's'. */
static int read_sasl(struct xt *c, char *kind, unsigned char **data, size_t *len)
{
	struct xt_node *n = expect(c, "a SASL answer");
	const char *t;

	*data = NULL;
	*len = 0;
	if (!n)
		return -1;
	if (xt_is(n, XT_NS_SASL, "failure")) {
		const char *cond = xt_condition(n, XT_NS_SASL);

		snprintf(c->sasl_failure, sizeof(c->sasl_failure), "%s",
			 cond ? cond : "(no condition)");
		set_err(c, "SASL failure: %s", xt_raw(n));
		return 1;
	}
	if (xt_is(n, XT_NS_SASL, "challenge"))
		*kind = 'c';
	else if (xt_is(n, XT_NS_SASL, "success"))
		*kind = 's';
	else {
		set_err(c, "expected a SASL challenge, success or failure, got %s", xt_raw(n));
		return -1;
	}
	t = n->text ? n->text : "";
	if (!*t || strcmp(t, "=") == 0) {
		*data = (unsigned char *)xstrdup("");
		return 0;
	}
	*data = b64_decode(t, len);
	if (!*data) {
		set_err(c, "the server's SASL data is not base64: %s", xt_raw(n));
		return -1;
	}
	return 0;
}

/* The SASL user name as SCRAM wants it: "=" and "," escaped (RFC 5802 §5.1). */
static char *scram_name(const char *s)
{
	char *out = xmalloc(strlen(s) * 3 + 1), *o = out;

	for (; *s; s++) {
		if (*s == '=') {
			memcpy(o, "=3D", 3);
			o += 3;
		} else if (*s == ',') {
			memcpy(o, "=2C", 3);
			o += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
	return out;
}

/* The value of attribute k in a SCRAM message "a=1,b=2", copied, or NULL. */
static char *scram_attr(const char *msg, char k)
{
	const char *p = msg;

	while (p && *p) {
		if (p[0] == k && p[1] == '=') {
			const char *e = strchr(p, ',');

			return xstrndup(p + 2, e ? (size_t)(e - p - 2) : strlen(p + 2));
		}
		p = strchr(p, ',');
		if (p)
			p++;
	}
	return NULL;
}

/* Channel-binding data of the TLS session for the given type. */
static int channel_binding(struct xt *c, const char *type, unsigned char *out, size_t *len)
{
	if (!c->ssl) {
		set_err(c, "channel binding without TLS");
		return -1;
	}
	if (strcmp(type, "tls-exporter") == 0) {
		/* RFC 9266: 32 bytes, this label, no context. */
		static const char label[] = "EXPORTER-Channel-Binding";

		if (SSL_export_keying_material(c->ssl, out, 32, label, strlen(label), NULL, 0,
					       0) != 1) {
			set_err(c, "SSL_export_keying_material failed (%s)", xt_tls_version(c));
			return -1;
		}
		*len = 32;
		return 0;
	}
	if (strcmp(type, "tls-server-end-point") == 0) {
		/* RFC 5929 §4.1: the certificate's own signature hash, but SHA-256 in
		 * place of MD5 or SHA-1. */
		X509 *cert = SSL_get1_peer_certificate(c->ssl);
		const EVP_MD *md = EVP_sha256();
		unsigned char *der = NULL;
		unsigned int mdlen = 0;
		int mdnid = NID_undef, derlen;

		if (!cert) {
			set_err(c, "no server certificate");
			return -1;
		}
		if (X509_get_signature_info(cert, &mdnid, NULL, NULL, NULL) == 1 &&
		    mdnid != NID_md5 && mdnid != NID_sha1 && mdnid != NID_undef) {
			const EVP_MD *m = EVP_get_digestbynid(mdnid);

			if (m)
				md = m;
		}
		derlen = i2d_X509(cert, &der);
		X509_free(cert);
		if (derlen <= 0) {
			set_err(c, "i2d_X509 failed");
			return -1;
		}
		EVP_Digest(der, (size_t)derlen, out, &mdlen, md, NULL);
		OPENSSL_free(der);
		*len = mdlen;
		return 0;
	}
	set_err(c, "unknown channel-binding type %s", type);
	return -1;
}

static int auth_plain(struct xt *c, const char *user, const char *pass,
		      const struct xt_sasl_opts *o)
{
	const char *az = o && o->authzid ? o->authzid : "";
	size_t la = strlen(az), lu = strlen(user), lp = strlen(pass), n = la + lu + lp + 2;
	char *msg = xmalloc(n);
	unsigned char *data;
	size_t len;
	char kind;
	int r;

	memcpy(msg, az, la);
	msg[la] = '\0';
	memcpy(msg + la + 1, user, lu);
	msg[la + 1 + lu] = '\0';
	memcpy(msg + la + lu + 2, pass, lp);
	r = send_sasl(c, "auth", " mechanism='PLAIN'", msg, n);
	free(msg);
	if (r < 0)
		return -1;
	r = read_sasl(c, &kind, &data, &len);
	free(data);
	if (r != 0)
		return r;
	if (kind != 's') {
		set_err(c, "PLAIN: a challenge instead of success: %s", xt_raw(c->last));
		return -1;
	}
	return 0;
}

static void hmac(const EVP_MD *md, const unsigned char *key, size_t klen, const void *d,
		 size_t dlen, unsigned char *out)
{
	unsigned int olen = 0;

	HMAC(md, key, (int)klen, d, dlen, out, &olen);
}

static int auth_scram(struct xt *c, const char *mech, const char *user, const char *pass,
		      const struct xt_sasl_opts *o)
{
	const EVP_MD *md = strstr(mech, "SHA-256") ? EVP_sha256() : EVP_sha1();
	bool plus = strstr(mech, "-PLUS") != NULL;
	size_t hl = (size_t)EVP_MD_get_size(md), cblen = 0, sfl = 0, saltlen = 0, finlen = 0;
	unsigned char rnd[18], cb[EVP_MAX_MD_SIZE + 64], salted[EVP_MAX_MD_SIZE];
	unsigned char ckey[EVP_MAX_MD_SIZE], skey[EVP_MAX_MD_SIZE], stored[EVP_MAX_MD_SIZE];
	unsigned char csig[EVP_MAX_MD_SIZE], ssig[EVP_MAX_MD_SIZE], proof[EVP_MAX_MD_SIZE];
	unsigned char *sfirst = NULL, *salt = NULL, *fin = NULL, *vbin = NULL;
	char *cnonce = NULL, *name = NULL, *cfirst_bare = NULL, *cfirst = NULL, *gs2 = NULL;
	char *cbind64 = NULL, *snonce = NULL, *salt64 = NULL, *iters = NULL;
	char *cfinal_wo = NULL, *authmsg = NULL, *proof64 = NULL, *cfinal = NULL;
	char *v64 = NULL, *e = NULL, *ext = NULL, kind;
	const char *cbtype = o && o->cb_type ? o->cb_type : "tls-exporter";
	char extra[96];
	long iter;
	int r, ret = -1;

	RAND_bytes(rnd, sizeof(rnd));
	cnonce = b64_encode(rnd, sizeof(rnd));
	name = scram_name(user);
	if (plus)
		r = asprintf(&gs2, "p=%s,%s%s,", cbtype, o && o->authzid ? "a=" : "",
			     o && o->authzid ? o->authzid : "");
	else
		r = asprintf(&gs2, "%s,%s%s,", o && o->gs2_y ? "y" : "n",
			     o && o->authzid ? "a=" : "", o && o->authzid ? o->authzid : "");
	if (r < 0 || asprintf(&cfirst_bare, "n=%s,r=%s", name, cnonce) < 0 ||
	    asprintf(&cfirst, "%s%s", gs2, cfirst_bare) < 0)
		abort();
	snprintf(extra, sizeof(extra), " mechanism='%s'", mech);
	if (send_sasl(c, "auth", extra, cfirst, strlen(cfirst)) < 0)
		goto out;
	r = read_sasl(c, &kind, &sfirst, &sfl);
	if (r != 0) {
		/* Worth knowing: failing here tells a client which user names exist. */
		if (r == 1)
			set_err(c, "SASL failure instead of the server-first-message: %s",
				xt_raw(c->last));
		ret = r;
		goto out;
	}
	if (kind != 'c') {
		set_err(c, "%s: success before the proof: %s", mech, xt_raw(c->last));
		goto out;
	}
	/* server-first-message: [m=ext,]r=nonce,s=salt,i=count */
	if ((ext = scram_attr((char *)sfirst, 'm'))) {
		set_err(c, "%s: server-first has a mandatory extension: %s", mech, sfirst);
		goto out;
	}
	snonce = scram_attr((char *)sfirst, 'r');
	salt64 = scram_attr((char *)sfirst, 's');
	iters = scram_attr((char *)sfirst, 'i');
	if (!snonce || !salt64 || !iters || strncmp((char *)sfirst, "r=", 2) != 0) {
		set_err(c, "%s: bad server-first-message '%s'", mech, sfirst);
		goto out;
	}
	if (strncmp(snonce, cnonce, strlen(cnonce)) != 0 || strlen(snonce) == strlen(cnonce)) {
		set_err(c, "%s: the server nonce does not extend ours: '%s'", mech, sfirst);
		goto out;
	}
	iter = strtol(iters, NULL, 10);
	salt = b64_decode(salt64, &saltlen);
	if (!salt || saltlen == 0 || iter < 1 || iter > 10000000) {
		set_err(c, "%s: bad salt or iteration count in '%s'", mech, sfirst);
		goto out;
	}
	/* c= is the GS2 header, plus the binding data for -PLUS (RFC 5802 §7). */
	memcpy(cb, gs2, strlen(gs2));
	cblen = strlen(gs2);
	if (plus) {
		size_t dlen = 0;

		if (channel_binding(c, cbtype, cb + cblen, &dlen) < 0)
			goto out;
		if (o && o->corrupt_cb)
			cb[cblen] ^= 1;
		cblen += dlen;
	}
	cbind64 = b64_encode(cb, cblen);
	if (asprintf(&cfinal_wo, "c=%s,r=%s", cbind64, snonce) < 0 ||
	    asprintf(&authmsg, "%s,%s,%s", cfirst_bare, (char *)sfirst, cfinal_wo) < 0)
		abort();
	if (PKCS5_PBKDF2_HMAC(pass, (int)strlen(pass), salt, (int)saltlen, (int)iter, md,
			      (int)hl, salted) != 1)
		abort();
	hmac(md, salted, hl, "Client Key", 10, ckey);
	EVP_Digest(ckey, hl, stored, NULL, md, NULL);
	hmac(md, stored, hl, authmsg, strlen(authmsg), csig);
	for (size_t i = 0; i < hl; i++)
		proof[i] = ckey[i] ^ csig[i];
	hmac(md, salted, hl, "Server Key", 10, skey);
	hmac(md, skey, hl, authmsg, strlen(authmsg), ssig);
	proof64 = b64_encode(proof, hl);
	if (asprintf(&cfinal, "%s,p=%s", cfinal_wo, proof64) < 0)
		abort();
	if (send_sasl(c, "response", "", cfinal, strlen(cfinal)) < 0)
		goto out;
	r = read_sasl(c, &kind, &fin, &finlen);
	if (r != 0) {
		ret = r;
		goto out;
	}
	/* server-final-message: v=signature or e=error, in <success/> or (older style)
	 * in a last challenge that we answer with an empty response. */
	if ((e = scram_attr((char *)fin, 'e'))) {
		set_err(c, "%s: server-final says e=%s", mech, e);
		goto out;
	}
	v64 = scram_attr((char *)fin, 'v');
	if (!v64) {
		set_err(c, "%s: server-final-message without v=: '%s' in %s", mech, fin,
			xt_raw(c->last));
		goto out;
	}
	{
		size_t vlen = 0;

		vbin = b64_decode(v64, &vlen);
		if (!vbin || vlen != hl || CRYPTO_memcmp(vbin, ssig, hl) != 0) {
			set_err(c, "%s: the server signature is wrong: v=%s", mech, v64);
			goto out;
		}
	}
	if (kind == 'c') {
		unsigned char *d2 = NULL;
		size_t l2;

		if (send_sasl(c, "response", "", "", 0) < 0)
			goto out;
		r = read_sasl(c, &kind, &d2, &l2);
		free(d2);
		if (r != 0) {
			ret = r;
			goto out;
		}
		if (kind != 's') {
			set_err(c, "%s: no success after the server-final challenge", mech);
			goto out;
		}
	}
	ret = 0;
out:
	free(cnonce); free(name); free(cfirst_bare); free(cfirst); free(gs2);
	free(cbind64); free(snonce); free(salt64); free(iters); free(cfinal_wo);
	free(authmsg); free(proof64); free(cfinal); free(v64); free(e); free(ext);
	free(sfirst); free(salt); free(fin); free(vbin);
	return ret;
}

int xt_auth(struct xt *c, const char *mech, const char *host, const char *user,
	    const char *pass, const struct xt_sasl_opts *opts)
{
	int r;

	c->sasl_failure[0] = '\0';
	if (strcmp(mech, "PLAIN") == 0)
		r = auth_plain(c, user, pass, opts);
	else if (strncmp(mech, "SCRAM-SHA-", 10) == 0)
		r = auth_scram(c, mech, user, pass, opts);
	else {
		/* Any other name: send it and report what the server says. */
		char extra[128];
		unsigned char *d;
		size_t l;
		char kind;

		snprintf(extra, sizeof(extra), " mechanism='%s'", mech);
		if (send_sasl(c, "auth", extra, "x", 1) < 0)
			return -1;
		r = read_sasl(c, &kind, &d, &l);
		free(d);
		if (r == 0) {
			set_err(c, "the server took the unknown mechanism %s", mech);
			r = -1;
		}
	}
	if (r != 0)
		return r;
	return xt_open_stream(c, host);
}

/* ---- after authentication ---- */

const char *xt_new_id(struct xt *c)
{
	snprintf(c->id_buf, sizeof(c->id_buf), "t%u", ++c->id_seq);
	return c->id_buf;
}

struct xt_node *xt_iq(struct xt *c, const char *type, const char *to, const char *payload)
{
	char id[32];
	long long deadline = now_ms() + c->timeout_ms;

	snprintf(id, sizeof(id), "%s", xt_new_id(c));
	if (xt_sendf(c, "<iq type='%s' id='%s'%s%s%s>%s</iq>", type, id, to ? " to='" : "",
		     to ? to : "", to ? "'" : "", payload ? payload : "") < 0)
		return NULL;
	for (;;) {
		struct xt_node *n = xt_read_ms(c, left_ms(deadline));
		const char *nid;

		if (!n) {
			note_no_node(c, "the answer to an iq");
			return NULL;
		}
		if (xt_is(n, XT_NS_STREAMS, "error")) {
			set_err(c, "a stream error instead of the answer to an iq: %s", xt_raw(n));
			return NULL;
		}
		nid = xt_attr(n, "id");
		if (xt_is(n, XT_NS_CLIENT, "iq") && nid && strcmp(nid, id) == 0)
			return n;
	}
}

int xt_bind(struct xt *c, const char *resource, char *jid, size_t jidlen)
{
	char payload[1200], esc[1024];
	struct xt_node *n, *b, *j;

	if (resource)
		snprintf(payload, sizeof(payload), "<bind xmlns='" XT_NS_BIND
			 "'><resource>%s</resource></bind>",
			 xt_escape(resource, esc, sizeof(esc)));
	else
		snprintf(payload, sizeof(payload), "<bind xmlns='" XT_NS_BIND "'/>");
	n = xt_iq(c, "set", NULL, payload);
	if (!n)
		return -1;
	b = xt_child(n, XT_NS_BIND, "bind");
	j = xt_child(b, XT_NS_BIND, "jid");
	if (strcmp(xt_attr(n, "type") ? xt_attr(n, "type") : "", "result") != 0 || !j ||
	    !j->text) {
		set_err(c, "bind failed: %s", xt_raw(n));
		return -1;
	}
	snprintf(c->jid, sizeof(c->jid), "%s", j->text);
	if (jid)
		snprintf(jid, jidlen, "%s", j->text);
	return 0;
}

bool xt_expect_close(struct xt *c, const char **why)
{
	long long deadline = now_ms() + c->timeout_ms;
	struct xt_node *n;
	char buf[4096];

	*why = NULL;
	n = xt_read_ms(c, left_ms(deadline));
	if (n) {
		set_err(c, "after the stream error: %s instead of </stream:stream>", xt_raw(n));
		*why = c->err;
		return false;
	}
	if (c->status != XT_STREAM_END) {
		set_err(c, "after the stream error: %s instead of </stream:stream>",
			xt_status_name(c->status));
		*why = c->err;
		return false;
	}
	/* Anything after </stream:stream> is ignored; we want the close. */
	for (;;) {
		ssize_t r = read_some(c, buf, sizeof(buf), deadline);

		if (r == 0)
			return true;
		if (r == -2) {
			set_err(c, "</stream:stream> came but the server kept the TCP connection "
				"open for %d ms", c->timeout_ms);
			*why = c->err;
			return false;
		}
		if (r < 0) {
			*why = c->err;
			return false;
		}
	}
}

const char *xt_wait_stream_error(struct xt *c, int ms)
{
	long long deadline = now_ms() + ms;

	for (;;) {
		struct xt_node *n = xt_read_ms(c, left_ms(deadline));

		if (!n) {
			note_no_node(c, "a stream error");
			return NULL;
		}
		if (xt_is(n, XT_NS_STREAMS, "error")) {
			const char *cond = xt_condition(n, XT_NS_STREAM_ERR);

			return cond ? cond : "(no condition)";
		}
	}
}

struct xt *xt_login(const char *ip, int port, enum xt_mode mode, const char *host,
		    const char *user, const char *pass, const char *mech,
		    const char *resource, const char *src_ip, char *err, size_t errlen)
{
	struct xt *c = xt_connect(ip, port, src_ip, err, errlen);
	const char *step = "stream";
	int r;

	if (!c)
		return NULL;
	if (mode == XT_DIRECT && xt_tls_handshake(c, host) < 0) {
		step = "direct TLS";
		goto fail;
	}
	if (xt_open_stream(c, host) < 0)
		goto fail;
	if (mode == XT_STARTTLS && xt_starttls(c, host) < 0) {
		step = "STARTTLS";
		goto fail;
	}
	step = "SASL";
	r = xt_auth(c, mech ? mech : "SCRAM-SHA-256", host, user, pass, NULL);
	if (r != 0)
		goto fail;
	step = "bind";
	if (xt_bind(c, resource, NULL, 0) < 0)
		goto fail;
	return c;
fail:
	snprintf(err, errlen, "login of %s@%s on port %d failed at %s: %s", user, host, port,
		 step, xt_err(c));
	xt_free(c);
	return NULL;
}

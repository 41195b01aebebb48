/*
 * c2s_tcp.c - the TCP framing of client streams (RFC 6120 §4): the bytes of
 * one connection parsed by xmlstream, <stream:stream> ... </stream:stream>.
 *
 * Input goes to c2s.c a chunk at a time until it is all consumed, the stream
 * stops (a restart, an answer to wait for) or dies. STARTTLS lives here: it
 * is this framing's own upgrade.
 */
#include "c2s.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "listener.h"
#include "log.h"
#include "server.h"
#include "stanza.h"
#include "xmlstream.h"

struct tcp {
	struct c2s *c;
	struct conn *conn;
	struct xmlstream *xs;
	bool counted_ip;	/* holds a slot in the per-address count */
	bool paused;		/* c2s waits for an answer, or TLS is coming */
	bool restart;		/* the parser restarts before the next bytes */
	bool feeding;		/* inside feed(): do not re-enter it */
	bool dead;		/* the connection ended inside feed(): free after */
	bool dead_lost;
	char dead_why[96];
};

static void feed(struct tcp *t);

/* ---- output (struct c2s_framing) ---- */

static void t_header(void *arg, const char *id, const char *from)
{
	struct tcp *t = arg;
	char buf[512];

	snprintf(buf, sizeof(buf), "<?xml version='1.0'?><stream:stream xmlns='" NS_CLIENT
		 "' xmlns:stream='" NS_STREAMS "' id='%s'%s%s%s version='1.0' xml:lang='en'>",
		 id, from ? " from='" : "", from ? from : "", from ? "'" : "");
	conn_write(t->conn, buf, strlen(buf));
}

static void t_raw(void *arg, const char *xml, size_t len)
{
	conn_write(((struct tcp *)arg)->conn, xml, len);
}

static void t_element(void *arg, const struct xml_node *n, const char *to)
{
	struct tcp *t = arg;

	if (to)
		conn_write_to(t->conn, n, NS_CLIENT, to);
	else
		conn_write_xml(t->conn, n, NS_CLIENT);
}

static void t_end(void *arg)
{
	struct tcp *t = arg;

	conn_write(t->conn, "</stream:stream>", 16);
	conn_close(t->conn);
}

static size_t t_pending(void *arg)
{
	return conn_output_pending(((struct tcp *)arg)->conn);
}

static bool t_secure(void *arg)
{
	return conn_is_tls(((struct tcp *)arg)->conn);
}

static SSL *t_ssl(void *arg)
{
	return conn_ssl(((struct tcp *)arg)->conn);
}

static void t_pause(void *arg, bool paused)
{
	struct tcp *t = arg;

	t->paused = paused;
	if (paused) {
		xmlstream_stop(t->xs);
		conn_pause(t->conn, true);
	} else {
		conn_pause(t->conn, false);
		feed(t);
	}
}

static void t_restart(void *arg)
{
	struct tcp *t = arg;

	t->restart = true;
	xmlstream_stop(t->xs);
}

static void t_timeout(void *arg, unsigned seconds)
{
	conn_set_timeout(((struct tcp *)arg)->conn, seconds);
}

/* <proceed/> is written: the handshake starts once it is flushed. Nothing is
 * parsed until CONN_TLS_UP; plaintext after <starttls/> is dropped by conn. */
static int t_starttls(void *arg)
{
	struct tcp *t = arg;

	t->restart = true;
	t->paused = true;
	xmlstream_stop(t->xs);
	return conn_starttls(t->conn);
}

static bool t_compact(void *arg)
{
	return xmlstream_compact(((struct tcp *)arg)->xs);
}

/* The connection is gone. Inside feed() (a write failed under a callback)
 * the parser is still running: the end of feed() frees. */
static void tcp_free(struct tcp *t, const char *reason, bool lost)
{
	struct c2s *c = t->c;

	if (t->feeding) {
		t->dead = true;
		t->dead_lost = lost;
		snprintf(t->dead_why, sizeof(t->dead_why), "%s", reason);
		return;
	}

	c2s_gone(c, reason, lost);
	if (t->counted_ip)
		listener_ip_release(conn_peer(t->conn));
	xmlstream_free(t->xs);
	conn_free(t->conn);
	free(t);
}

static void t_drop(void *arg)
{
	tcp_free(arg, "server stopped", false);
}

static const struct c2s_framing tcp_framing = {
	.transport = TRANSPORT_TCP,
	.header = t_header,
	.raw = t_raw,
	.element = t_element,
	.end = t_end,
	.pending = t_pending,
	.secure = t_secure,
	.ssl = t_ssl,
	.pause = t_pause,
	.restart = t_restart,
	.timeout = t_timeout,
	.starttls = t_starttls,
	.compact = t_compact,
	.drop = t_drop,
};

/* ---- input ---- */

static void feed(struct tcp *t)
{
	struct c2s *c = t->c;

	if (t->feeding)
		return;
	t->feeding = true;
	/* c2s_error inside a callback only closes: t lives until CONN_CLOSED. */
	while (!t->paused && !t->dead && !c2s_blocked(c)) {
		struct evbuffer *in = conn_input(t->conn);
		struct evbuffer_iovec v;
		ssize_t used;

		if (t->restart) {
			t->restart = false;
			if (xmlstream_reset(t->xs) < 0) {
				c2s_error(c, "internal-server-error", NULL);
				break;
			}
		}
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
			break;
		used = xmlstream_feed(t->xs, v.iov_base, v.iov_len);
		if (used < 0 || t->dead)
			break;
		evbuffer_drain(in, (size_t)used);
	}
	t->feeding = false;
	if (t->dead)
		tcp_free(t, t->dead_why, t->dead_lost);
}

static void on_open(void *arg, struct xml_node *header, const char *default_ns)
{
	c2s_open(((struct tcp *)arg)->c, header, default_ns);
}

static void on_element(void *arg, struct xml_node *el)
{
	c2s_element(((struct tcp *)arg)->c, el);
}

static void on_close(void *arg)
{
	c2s_end(((struct tcp *)arg)->c);
}

static void on_error(void *arg, enum xmlstream_error err, const char *text)
{
	c2s_error(((struct tcp *)arg)->c, xmlstream_error_condition(err), text);
}

static const struct xmlstream_callbacks stream_cbs = {
	.open = on_open,
	.stanza = on_element,
	.close = on_close,
	.error = on_error,
};

static void on_conn(struct conn *conn, void *arg, enum conn_event ev, const char *why)
{
	struct tcp *t = arg;

	switch (ev) {
	case CONN_READ:
		c2s_heard(t->c);
		feed(t);
		break;
	case CONN_TLS_UP:
		log_debug("c2s", "%s: TLS up (%s)", conn_peer(conn),
			  SSL_get_version(conn_ssl(conn)));
		t->paused = false;
		c2s_tls_up(t->c);
		break;
	case CONN_TIMEOUT:
		c2s_idle(t->c);
		break;
	case CONN_CONNECTED:	/* accepted: never */
		break;
	case CONN_EOF:
	case CONN_ERROR:
		tcp_free(t, why ? why : "connection lost", true);
		break;
	case CONN_CLOSED:
		tcp_free(t, "stream closed", false);
		break;
	}
}

static void tcp_accept(evutil_socket_t fd, const struct sockaddr *sa,
		       const struct config_listener *l)
{
	struct tcp *t = calloc(1, sizeof(*t));
	struct xmlstream_limits lim = {
		.max_stanza = server.cfg->limits.stanza_size,
		.max_depth = server.cfg->limits.depth,
		.max_attrs = server.cfg->limits.attributes,
	};

	if (!t) {
		evutil_closesocket(fd);
		return;
	}
	if (!(t->conn = conn_new(fd, sa, l->tls == TLS_DIRECT, on_conn, t))) {
		free(t);
		return;
	}
	t->xs = xmlstream_new(&lim, &stream_cbs, t);
	t->c = c2s_new(&tcp_framing, t, l, conn_peer(t->conn));
	if (!t->c) {
		xmlstream_free(t->xs);
		conn_free(t->conn);
		free(t);
		return;
	}
	if (!t->xs) {
		c2s_error(t->c, "internal-server-error", NULL);
		return;
	}
	conn_set_timeout(t->conn, server.cfg->limits.idle_timeout);
	if (!listener_ip_acquire(conn_peer(t->conn))) {
		c2s_error(t->c, "policy-violation", "too many connections from your address");
		return;
	}
	t->counted_ip = true;
	log_debug("c2s", "%s: connected (%s)", conn_peer(t->conn),
		  l->tls == TLS_DIRECT ? "direct TLS" : "plain");
}

int c2s_tcp_init(void)
{
	return listener_register(LISTEN_C2S, tcp_accept);
}

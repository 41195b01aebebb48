/*
 * conn.c - one network connection: a socket, maybe TLS, its buffers.
 */
#include "conn.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "server.h"
#include "tls.h"

/* Input buffered while the owner is paused or slow: bounded per connection. */
#define CONN_READ_HIGH (64 * 1024)

struct conn {
	struct bufferevent *bev;
	evutil_socket_t fd;
	conn_cb cb;
	void *owner;
	SSL *ssl;			/* NULL until TLS starts */
	bool tls_pending;		/* STARTTLS once the output drains */
	bool closing;
	bool paused;
	unsigned timeout;
	unsigned long long in, out;
	char peer[INET6_ADDRSTRLEN];
};

static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

static void apply_timeout(struct conn *c)
{
	struct timeval tv = { .tv_sec = c->timeout };

	bufferevent_set_timeouts(c->bev, c->timeout ? &tv : NULL, NULL);
}

static int attach(struct conn *c, SSL *ssl)
{
	if (ssl) {
		c->bev = bufferevent_openssl_socket_new(server.base, c->fd, ssl,
							BUFFEREVENT_SSL_ACCEPTING,
							BEV_OPT_DEFER_CALLBACKS);
		if (!c->bev) {
			SSL_free(ssl);
			return -1;
		}
		bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
		c->ssl = ssl;
	} else {
		c->bev = bufferevent_socket_new(server.base, c->fd, BEV_OPT_DEFER_CALLBACKS);
		if (!c->bev)
			return -1;
	}
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, CONN_READ_HIGH);
	apply_timeout(c);
	return bufferevent_enable(c->bev, c->paused ? EV_WRITE : EV_READ | EV_WRITE);
}

struct conn *conn_new(evutil_socket_t fd, const struct sockaddr *sa, bool direct_tls,
		      conn_cb cb, void *owner)
{
	struct conn *c = calloc(1, sizeof(*c));
	SSL *ssl = NULL;
	int one = 1;

	if (!c) {
		evutil_closesocket(fd);
		return NULL;
	}
	c->fd = fd;
	c->cb = cb;
	c->owner = owner;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, c->peer,
			  sizeof(c->peer));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, c->peer,
			  sizeof(c->peer));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	evutil_make_socket_nonblocking(fd);
	if (direct_tls) {
		ssl = tls_new_server();
		if (!ssl)
			goto fail;
	}
	if (attach(c, ssl) < 0)
		goto fail;
	return c;
fail:
	evutil_closesocket(fd);
	free(c);
	return NULL;
}

void conn_free(struct conn *c)
{
	if (!c)
		return;
	if (c->bev) {
		if (c->ssl)
			SSL_set_shutdown(c->ssl, SSL_RECEIVED_SHUTDOWN);
		bufferevent_free(c->bev);
	}
	/* The bufferevents do not own the socket or the SSL: freeing them here keeps
	 * one rule for plain, direct TLS and STARTTLS connections. */
	if (c->ssl)
		SSL_free(c->ssl);
	evutil_closesocket(c->fd);
	free(c);
}

struct evbuffer *conn_input(struct conn *c)
{
	return bufferevent_get_input(c->bev);
}

int conn_write(struct conn *c, const void *data, size_t len)
{
	if (c->closing && !c->bev)
		return -1;
	c->out += len;
	return bufferevent_write(c->bev, data, len);
}

int conn_write_xml(struct conn *c, const struct xml_node *node, const char *ns)
{
	struct xml_buf b = { 0 };
	int rc;

	if (xml_serialize(node, ns, &b) < 0) {
		xml_buf_free(&b);
		return -1;
	}
	rc = conn_write(c, b.data, b.len);
	xml_buf_free(&b);
	return rc;
}

size_t conn_output_pending(const struct conn *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev));
}

static void start_tls(struct conn *c)
{
	SSL *ssl = tls_new_server();

	c->tls_pending = false;
	/* Whatever the peer sent after <starttls/> in plain text is dropped. */
	bufferevent_free(c->bev);
	c->bev = NULL;
	if (!ssl || attach(c, ssl) < 0) {
		c->cb(c, c->owner, CONN_ERROR, "cannot start TLS");
		return;
	}
}

int conn_starttls(struct conn *c)
{
	if (c->ssl || !tls_available())
		return -1;
	c->tls_pending = true;
	bufferevent_disable(c->bev, EV_READ);
	/* Never call back into the owner from its own call: the write callback
	 * runs once the output is empty (now, if it already is). */
	bufferevent_trigger(c->bev, EV_WRITE, BEV_TRIG_IGNORE_WATERMARKS |
			    BEV_TRIG_DEFER_CALLBACKS);
	return 0;
}

void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_set_timeouts(c->bev, NULL, NULL);
	/* Bound the flush: a peer that never reads must not keep us forever. */
	struct timeval tv = { .tv_sec = 10 };
	bufferevent_set_timeouts(c->bev, NULL, &tv);
	bufferevent_trigger(c->bev, EV_WRITE, BEV_TRIG_IGNORE_WATERMARKS |
			    BEV_TRIG_DEFER_CALLBACKS);
}

void conn_pause(struct conn *c, bool paused)
{
	c->paused = paused;
	if (c->closing || c->tls_pending)
		return;
	if (paused) {
		bufferevent_disable(c->bev, EV_READ);
	} else {
		bufferevent_enable(c->bev, EV_READ);
		/* Bytes already buffered will not trigger a new read event. */
		if (evbuffer_get_length(bufferevent_get_input(c->bev)))
			bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS);
	}
}

void conn_set_timeout(struct conn *c, unsigned seconds)
{
	c->timeout = seconds;
	if (!c->closing)
		apply_timeout(c);
}

bool conn_is_tls(const struct conn *c) { return c->ssl != NULL; }
SSL *conn_ssl(const struct conn *c) { return c->ssl; }
const char *conn_peer(const struct conn *c) { return c->peer; }
unsigned long long conn_bytes_in(const struct conn *c) { return c->in; }
unsigned long long conn_bytes_out(const struct conn *c) { return c->out; }

static void on_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->closing || c->tls_pending) {
		evbuffer_drain(bufferevent_get_input(bev),
			       evbuffer_get_length(bufferevent_get_input(bev)));
		return;
	}
	c->in += evbuffer_get_length(bufferevent_get_input(bev));
	c->cb(c, c->owner, CONN_READ, NULL);
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) != 0)
		return;
	if (c->tls_pending)
		start_tls(c);
	else if (c->closing)
		c->cb(c, c->owner, CONN_CLOSED, NULL);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	char why[256] = "";
	unsigned long e;

	if (what & BEV_EVENT_CONNECTED) {
		c->cb(c, c->owner, CONN_TLS_UP, NULL);
		return;
	}
	if (c->closing) {
		/* Flush failed or timed out: it is over either way. */
		c->cb(c, c->owner, CONN_CLOSED, NULL);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		c->cb(c, c->owner, CONN_TIMEOUT, "idle timeout");
		return;
	}
	if (what & BEV_EVENT_EOF) {
		c->cb(c, c->owner, CONN_EOF, "closed by the peer");
		return;
	}
	while ((e = bufferevent_get_openssl_error(bev)) != 0) {
		const char *reason = ERR_reason_error_string(e);

		snprintf(why, sizeof(why), "TLS: %s", reason ? reason : "connection reset");
	}
	if (!*why)
		snprintf(why, sizeof(why), "%s", evutil_socket_error_to_string(
			 EVUTIL_SOCKET_ERROR()));
	c->cb(c, c->owner, CONN_ERROR, why);
}

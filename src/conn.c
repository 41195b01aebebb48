/*
 * conn.c - one network connection: a socket, maybe TLS, its buffers.
 *
 * An outgoing connection (conn_connect) waits for its socket to become
 * writable with an event of its own, and only then gets its bufferevent: a
 * connection has no buffers and takes no writes while it is connecting, so
 * that every path below sees a connected socket.
 */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdint.h>
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
	SSL *next_ssl;			/* client side: the SSL TLS will start with */
	conn_tls_fn tls_new;		/* server side: makes the SSL */
	struct event *cev;		/* connecting: writable, or the timeout */
	int connect_err;		/* connecting: an error connect() gave at once */
	bool tls_pending;		/* STARTTLS once the output drains */
	bool closing;
	bool paused;
	bool direct;			/* plain socket: conn.c reads and writes it */
	bool dirty;			/* on the dirty list */
	struct event *rev;		/* direct: the socket's read event */
	struct evbuffer *inbuf;		/* direct: what was read, for the owner */
	struct evbuffer_cb_entry *full;	/* direct: reading waits for the owner */
	unsigned timeout;
	unsigned long long in, out;
	/* TLS: a file written a piece at a time (conn_write_file) */
	int file_fd;			/* -1 when none */
	long long file_off, file_left;
	struct conn *dirty_prev, *dirty_next;
	char peer[INET6_ADDRSTRLEN];
};

/*
 * Write batching for plain sockets. A bufferevent with EV_WRITE enabled adds
 * and removes the socket's write event around every stanza (two epoll_ctl
 * calls, and an epoll_wait round before the write). Instead, a plain
 * connection keeps EV_WRITE off: what the owner writes waits in the output
 * buffer, the connection goes on a dirty list, and one event, made active at
 * the first write, writes every dirty connection once, after the callbacks
 * already active in this loop iteration (all stanzas read in it). Only output
 * the socket does not take at once turns EV_WRITE on, until it drains.
 * TLS connections keep the bufferevent's own writing.
 */
static struct {
	struct conn *head;
	struct event *ev;
} dirty;

static void on_read(struct bufferevent *bev, void *arg);
static void on_readable(evutil_socket_t fd, short what, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

static void undirty(struct conn *c)
{
	if (!c->dirty)
		return;
	if (c->dirty_prev)
		c->dirty_prev->dirty_next = c->dirty_next;
	else
		dirty.head = c->dirty_next;
	if (c->dirty_next)
		c->dirty_next->dirty_prev = c->dirty_prev;
	c->dirty_prev = c->dirty_next = NULL;
	c->dirty = false;
}

/* Hand the rest of the output to the bufferevent: it writes when the socket
 * takes more, and reports errors through on_event. */
static void write_later(struct conn *c)
{
	if (!(bufferevent_get_enabled(c->bev) & EV_WRITE))
		bufferevent_enable(c->bev, EV_WRITE);
}

static void flush_one(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	int n;

	undirty(c);
	if (evbuffer_get_length(out) == 0)
		return;
	/* A socket bufferevent keeps the front of its output frozen but while its
	 * own write callback drains it: do as that callback does. */
	evbuffer_unfreeze(out, 1);
	n = evbuffer_write(out, c->fd);
	evbuffer_freeze(out, 1);
	if (n < 0 || evbuffer_get_length(out) != 0) {
		/* EAGAIN, a short write or an error: libevent's turn */
		log_debug("conn", "%s: %zu bytes wait for the socket", c->peer,
			  evbuffer_get_length(out));
		write_later(c);
	}
}

static void flush_dirty(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	/* Each pass takes a connection off the list: bounded by its length. */
	while (dirty.head)
		flush_one(dirty.head);
}

static void mark_dirty(struct conn *c)
{
	if (c->dirty)
		return;
	if (!dirty.ev) {
		dirty.ev = event_new(server.base, -1, 0, flush_dirty, NULL);
		if (!dirty.ev) {
			write_later(c);
			return;
		}
	}
	if (!dirty.head)
		event_active(dirty.ev, 0, 0);
	c->dirty = true;
	c->dirty_prev = NULL;
	c->dirty_next = dirty.head;
	if (dirty.head)
		dirty.head->dirty_prev = c;
	dirty.head = c;
}

void conn_shutdown(void)
{
	while (dirty.head)
		undirty(dirty.head);
	if (dirty.ev)
		event_free(dirty.ev);
	dirty.ev = NULL;
}

/*
 * Reading a plain socket. A socket bufferevent asks the kernel how much is
 * waiting (ioctl FIONREAD) before each read, and hands the bytes over through
 * a deferred callback: a direct connection has its own read event instead,
 * one recv() into a static buffer, and the owner is called at once. The idle
 * timeout is the event's: a persistent event's timeout restarts at each read.
 */
static void read_on(struct conn *c)
{
	struct timeval tv = { .tv_sec = c->timeout };

	if (c->rev)
		event_add(c->rev, c->timeout ? &tv : NULL);
}

static void read_off(struct conn *c)
{
	if (c->rev)
		event_del(c->rev);
}

static bool reading(const struct conn *c)
{
	return !c->paused && !c->closing && !c->tls_pending;
}

static void apply_timeout(struct conn *c)
{
	struct timeval tv = { .tv_sec = c->timeout };

	if (c->rev) {
		if (reading(c))
			read_on(c);
		return;
	}
	bufferevent_set_timeouts(c->bev, c->timeout ? &tv : NULL, NULL);
}

/* ssl's own side (tls_new_server* or tls_new_client) says which end of the
 * handshake this is. */
static int attach(struct conn *c, SSL *ssl)
{
	if (ssl) {
		c->bev = bufferevent_openssl_socket_new(server.base, c->fd, ssl,
							SSL_is_server(ssl) ?
							BUFFEREVENT_SSL_ACCEPTING :
							BUFFEREVENT_SSL_CONNECTING,
							BEV_OPT_DEFER_CALLBACKS);
		if (!c->bev) {
			SSL_free(ssl);
			return -1;
		}
		bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
		c->ssl = ssl;
		c->direct = false;
	} else {
		c->bev = bufferevent_socket_new(server.base, c->fd, BEV_OPT_DEFER_CALLBACKS);
		if (!c->bev)
			return -1;
		c->rev = event_new(server.base, c->fd, EV_READ | EV_PERSIST, on_readable, c);
		c->inbuf = evbuffer_new();
		if (!c->rev || !c->inbuf)
			return -1;	/* conn_free() frees what there is */
		c->direct = true;
	}
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, CONN_READ_HIGH);
	apply_timeout(c);	/* direct: adds the read event */
	if (c->direct) {
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		return 0;
	}
	return bufferevent_enable(c->bev, c->paused ? EV_WRITE : EV_READ | EV_WRITE);
}

static struct conn *conn_alloc(evutil_socket_t fd, const struct sockaddr *sa, conn_cb cb,
			       void *owner)
{
	struct conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (!c)
		return NULL;
	c->fd = fd;
	c->file_fd = -1;
	c->cb = cb;
	c->owner = owner;
	c->tls_new = tls_new_server;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, c->peer,
			  sizeof(c->peer));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, c->peer,
			  sizeof(c->peer));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	evutil_make_socket_nonblocking(fd);
	return c;
}

struct conn *conn_new(evutil_socket_t fd, const struct sockaddr *sa, bool direct_tls,
		      conn_cb cb, void *owner)
{
	return conn_new_ex(fd, sa, direct_tls, tls_new_server, cb, owner);
}

struct conn *conn_new_ex(evutil_socket_t fd, const struct sockaddr *sa, bool direct_tls,
			 conn_tls_fn tls_new, conn_cb cb, void *owner)
{
	struct conn *c = conn_alloc(fd, sa, cb, owner);
	SSL *ssl = NULL;

	if (!c) {
		evutil_closesocket(fd);
		return NULL;
	}
	c->tls_new = tls_new;
	if (direct_tls) {
		ssl = tls_new();
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

static void on_connect(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	int err = c->connect_err;
	socklen_t len = sizeof(err);
	SSL *ssl = c->next_ssl;

	event_free(c->cev);
	c->cev = NULL;
	if (c->closing) {
		c->cb(c, c->owner, CONN_CLOSED, NULL);
		return;
	}
	if (what & EV_TIMEOUT)
		err = ETIMEDOUT;
	else if (!err && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		c->cb(c, c->owner, CONN_ERROR, evutil_socket_error_to_string(err));
		return;
	}
	c->next_ssl = NULL;
	if (attach(c, ssl) < 0) {	/* frees ssl */
		c->cb(c, c->owner, CONN_ERROR, "out of memory");
		return;
	}
	c->cb(c, c->owner, CONN_CONNECTED, NULL);	/* last: it may free c */
}

struct conn *conn_connect(const struct sockaddr *sa, socklen_t len, SSL *client_ssl,
			  unsigned timeout_s, conn_cb cb, void *owner)
{
	struct timeval tv = { .tv_sec = timeout_s };
	struct conn *c = NULL;
	evutil_socket_t fd = -1;
	int err = 0;

	if ((sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
	    (client_ssl && SSL_is_server(client_ssl))) {
		err = EINVAL;
		goto fail;
	}
	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || !(c = conn_alloc(fd, sa, cb, owner))) {
		err = fd < 0 ? errno : ENOMEM;
		goto fail;
	}
	c->timeout = timeout_s;
	c->next_ssl = client_ssl;
	client_ssl = NULL;
	/* A refusal connect() reports at once still reaches the owner as an
	 * event, as every other outcome does. */
	if (connect(fd, sa, len) < 0 && errno != EINPROGRESS)
		c->connect_err = errno;
	c->cev = event_new(server.base, fd, EV_WRITE, on_connect, c);
	if (!c->cev || event_add(c->cev, timeout_s ? &tv : NULL) < 0) {
		err = ENOMEM;
		goto fail;
	}
	if (c->connect_err)
		event_active(c->cev, EV_WRITE, 0);
	return c;
fail:
	if (c) {
		conn_free(c);	/* closes fd */
	} else if (fd >= 0) {
		evutil_closesocket(fd);
	}
	SSL_free(client_ssl);
	errno = err;
	return NULL;
}

void conn_free(struct conn *c)
{
	if (!c)
		return;
	undirty(c);
	if (c->cev)
		event_free(c->cev);
	if (c->next_ssl)
		SSL_free(c->next_ssl);
	if (c->file_fd >= 0)
		close(c->file_fd);
	if (c->rev)
		event_free(c->rev);
	if (c->inbuf)
		evbuffer_free(c->inbuf);
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
	return c->inbuf ? c->inbuf : bufferevent_get_input(c->bev);
}

int conn_write(struct conn *c, const void *data, size_t len)
{
	if (!c->bev)
		return -1;
	c->out += len;
	if (bufferevent_write(c->bev, data, len) < 0)
		return -1;
	if (c->direct && !(bufferevent_get_enabled(c->bev) & EV_WRITE))
		mark_dirty(c);
	return 0;
}

#define FILE_PIECE (1 << 20)	/* what TLS output holds of a file at once */

static void close_piece_fd(struct evbuffer_file_segment const *seg, int flags, void *arg)
{
	(void)seg;
	(void)flags;
	close((int)(intptr_t)arg);
}

/* Adds the next pieces of the file while the output holds less than one: each
 * its own segment (mapped when TLS reads it, unmapped once written), so a
 * large file over TLS never has more than two pieces in memory. The last
 * piece's segment closes the file when it goes. */
static void feed_file(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	while (c->file_fd >= 0 && evbuffer_get_length(out) < FILE_PIECE) {
		long long n = c->file_left < FILE_PIECE ? c->file_left : FILE_PIECE;
		struct evbuffer_file_segment *seg =
			evbuffer_file_segment_new(c->file_fd, c->file_off, n, 0);
		bool last = n == c->file_left;

		if (!seg || evbuffer_add_file_segment(out, seg, 0, n) < 0) {
			if (seg)
				evbuffer_file_segment_free(seg);
			close(c->file_fd);
			c->file_fd = -1;
			conn_close(c);	/* the length was promised: end rather than lie */
			return;
		}
		if (last)
			evbuffer_file_segment_add_cleanup_cb(seg, close_piece_fd,
							     (void *)(intptr_t)c->file_fd);
		evbuffer_file_segment_free(seg);	/* the output keeps its own ref */
		c->file_off += n;
		c->file_left -= n;
		c->out += (unsigned long long)n;
		if (last) {
			c->file_fd = -1;
			bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
		}
	}
}

int conn_write_file(struct conn *c, int fd, long long offset, long long len)
{
	if (!c->bev || offset < 0 || len < 0) {
		close(fd);
		return -1;
	}
	if (c->ssl && c->file_fd < 0 && len > 0) {
		c->file_fd = fd;
		c->file_off = offset;
		c->file_left = len;
		/* on_write comes when the output is down to half a piece */
		bufferevent_setwatermark(c->bev, EV_WRITE, FILE_PIECE / 2, 0);
		feed_file(c);
		return 0;
	}
	/* The output owns fd from here on, and closes it once written (sendfile
	 * on a plain socket). */
	if (evbuffer_add_file(bufferevent_get_output(c->bev), fd, offset, len) < 0) {
		close(fd);
		return -1;
	}
	c->out += (unsigned long long)len;
	if (c->direct && !(bufferevent_get_enabled(c->bev) & EV_WRITE))
		mark_dirty(c);
	return 0;
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

static void bytes_done(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	xml_bytes_unref(arg);
}

int conn_write_ref(struct conn *c, struct xml_bytes *b, size_t off)
{
	if (!c->bev || off > b->len)
		return -1;
	if (off == b->len)
		return 0;
	b->refs++;
	if (evbuffer_add_reference(bufferevent_get_output(c->bev), b->data + off,
				   b->len - off, bytes_done, b) < 0) {
		b->refs--;
		return -1;
	}
	c->out += b->len - off;
	return 0;
}

int conn_write_to(struct conn *c, const struct xml_node *node, const char *ns,
		  const char *to)
{
	struct xml_bytes *b;
	struct xml_buf head = { 0 };
	int rc = -1;

	if (!c->bev)
		return -1;
	if (!(b = xml_bytes(node, ns)))
		return -1;
	if (xml_buf_add(&head, b->data, b->head) < 0 || xml_buf_add(&head, " to='", 5) < 0 ||
	    xml_escape(&head, to, strlen(to), true) < 0 || xml_buf_add(&head, "'", 1) < 0 ||
	    conn_write(c, head.data, head.len) < 0)
		goto out;
	/* the rest is the tree's bytes themselves, released when written */
	rc = conn_write_ref(c, b, b->head);
out:
	xml_buf_free(&head);
	xml_bytes_unref(b);
	return rc;
}

size_t conn_output_pending(const struct conn *c)
{
	return c->bev ? evbuffer_get_length(bufferevent_get_output(c->bev)) : 0;
}

static void start_tls(struct conn *c)
{
	SSL *ssl = c->next_ssl ? c->next_ssl : c->tls_new();

	c->next_ssl = NULL;
	c->tls_pending = false;
	undirty(c);
	/* Whatever the peer sent after <starttls/> in plain text is dropped. */
	if (c->rev)
		event_free(c->rev);
	if (c->inbuf)
		evbuffer_free(c->inbuf);
	c->rev = NULL;
	c->inbuf = NULL;
	bufferevent_free(c->bev);
	c->bev = NULL;
	if (!ssl || attach(c, ssl) < 0) {
		c->cb(c, c->owner, CONN_ERROR, "cannot start TLS");
		return;
	}
}

static int starttls(struct conn *c)
{
	c->tls_pending = true;
	bufferevent_disable(c->bev, EV_READ);
	read_off(c);
	if (c->direct)
		flush_one(c);
	/* Never call back into the owner from its own call: the write callback
	 * runs once the output is empty (now, if it already is). */
	bufferevent_trigger(c->bev, EV_WRITE, BEV_TRIG_IGNORE_WATERMARKS |
			    BEV_TRIG_DEFER_CALLBACKS);
	return 0;
}

int conn_starttls(struct conn *c)
{
	if (c->ssl || !c->bev || c->tls_pending || c->closing || !tls_available())
		return -1;
	return starttls(c);
}

int conn_starttls_client(struct conn *c, SSL *client_ssl)
{
	if (!client_ssl || SSL_is_server(client_ssl) || c->ssl || !c->bev || c->tls_pending ||
	    c->closing) {
		SSL_free(client_ssl);
		return -1;
	}
	c->next_ssl = client_ssl;
	return starttls(c);
}

void conn_set_owner(struct conn *c, conn_cb cb, void *owner)
{
	c->cb = cb;
	c->owner = owner;
}

void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	if (c->cev) {
		/* Still connecting: there is nothing to flush. */
		event_active(c->cev, EV_WRITE, 0);
		return;
	}
	if (!c->bev)
		return;	/* TLS could not start: the owner had CONN_ERROR, and frees */
	bufferevent_disable(c->bev, EV_READ);
	read_off(c);
	if (c->direct)
		flush_one(c);
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
	if (c->closing || c->tls_pending || !c->bev)
		return;
	if (c->rev) {
		if (paused) {
			read_off(c);
		} else {
			read_on(c);
			/* Bytes already buffered will not make the socket readable. */
			if (evbuffer_get_length(c->inbuf))
				event_active(c->rev, EV_READ, 0);
		}
		return;
	}
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
	if (!c->closing && c->bev)
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

static void on_drained(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	struct conn *c = arg;

	if (!info->n_deleted || evbuffer_get_length(b) >= CONN_READ_HIGH)
		return;
	evbuffer_remove_cb_entry(b, c->full);
	c->full = NULL;
	if (reading(c))
		read_on(c);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	/* One loop thread: one buffer. 4 KiB a read, as libevent reads: a sender
	 * that has a lot waiting gets no more than the others each iteration
	 * (with 16 KiB, offline stores from 100 senders went 20% slower: fewer
	 * senders' stanzas in each group commit). */
	static char buf[4096];
	struct conn *c = arg;
	size_t have = evbuffer_get_length(c->inbuf), room;
	ssize_t n = 0;

	if (what & EV_TIMEOUT) {
		read_off(c);
		c->cb(c, c->owner, CONN_TIMEOUT, "idle timeout");
		return;
	}
	if (!reading(c))
		return;
	room = have < CONN_READ_HIGH ? CONN_READ_HIGH - have : 0;
	if (room > sizeof(buf))
		room = sizeof(buf);
	if (room) {
		n = recv(fd, buf, room, 0);
		if (n == 0) {
			read_off(c);
			c->cb(c, c->owner, CONN_EOF, "closed by the peer");
			return;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			read_off(c);
			c->cb(c, c->owner, CONN_ERROR, evutil_socket_error_to_string(errno));
			return;
		}
		if (n > 0 && evbuffer_add(c->inbuf, buf, (size_t)n) < 0) {
			read_off(c);
			c->cb(c, c->owner, CONN_ERROR, "out of memory");
			return;
		}
	} else {
		/* Full: read on once the owner has taken some (an owner that takes
		 * nothing and does not pause would have the loop spin). */
		read_off(c);
		if (!c->full)
			c->full = evbuffer_add_cb(c->inbuf, on_drained, c);
	}
	if (n > 0)
		c->in += (unsigned long long)n;
	if (evbuffer_get_length(c->inbuf))
		c->cb(c, c->owner, CONN_READ, NULL);	/* last: it may free c */
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->file_fd >= 0)
		feed_file(c);
	if (evbuffer_get_length(bufferevent_get_output(bev)) != 0)
		return;
	/* Drained: a plain connection writes by itself again. */
	if (c->direct && !c->closing && !c->tls_pending)
		bufferevent_disable(bev, EV_WRITE);
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

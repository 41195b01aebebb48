/*
 * session.c - one account's connection (see session.h).
 *
 * Plain TCP and TLS are both libevent bufferevents; STARTTLS swaps the plain
 * one for a TLS one on the same socket. On plain TCP with nothing queued,
 * one send() is the whole cost of sess_write(): the bufferevent path would
 * add an epoll change and a loop iteration for every message. Input is
 * scanned in place in the bufferevent's buffer (scan.h) and drained as
 * elements are consumed.
 *
 * With --ws the session speaks WebSocket on the same bufferevents: ws.c
 * frames the output, reads the input, and makes the Upgrade once connected.
 *
 * A session ends its stream itself and lets the server close the TCP
 * connection, so the TIME_WAIT stays on the server's side and this side's
 * ports come back at once.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "login.h"
#include "muc.h"
#include "offline.h"
#include "options.h"
#include "session.h"
#include "stream.h"
#include "util.h"
#include "ws.h"

static SSL_CTX *ssl_ctx;
static uint32_t closing;		/* sessions in S_CLOSING */
static void (*closed_done)(void);	/* sess_after_closed()'s then */
static struct event *closed_ev;

static void read_cb(struct bufferevent *bev, void *arg);
static void write_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);

const char *sess_name(const struct sess *s, char *buf, size_t cap)
{
	snprintf(buf, cap, "%.*s", (int)W.bare_len[s->idx], W.jids + W.jid_off[s->idx]);
	return buf;
}

const char *sess_user(const struct sess *s, char *buf, size_t cap)
{
	sess_name(s, buf, cap);
	*strchr(buf, '@') = '\0';
	return buf;
}

void sess_write_raw(struct sess *s, const char *p, size_t n)
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

void sess_write(struct sess *s, const char *p, size_t n)
{
	if (s->ws)
		ws_write(s, p, n);
	else
		sess_write_raw(s, p, n);
}

void sess_puts(struct sess *s, const char *str)
{
	sess_write(s, str, strlen(str));
}

static void closed_check(void)
{
	if (closing == 0 && closed_done)
		event_active(closed_ev, 0, 0);
}

static void closed_cb(evutil_socket_t fd, short what, void *arg)
{
	void (*done)(void) = closed_done;

	(void)fd, (void)what, (void)arg;
	if (!done || closing)
		return;
	closed_done = NULL;
	done();
}

void sess_after_closed(void (*then)(void))
{
	closed_done = then;
	closed_check();
}

bool sess_awaiting_closed(void)
{
	return closed_done != NULL;
}

void sess_drop(struct sess *s)
{
	if (s->bev) {
		bufferevent_free(s->bev);	/* closes the socket (and frees the SSL) */
		s->bev = NULL;
	}
	s->fd = -1;
	free(s->scram);
	s->scram = NULL;
	free(s->ws_frag);
	s->ws_frag = NULL;
	s->ws_frag_len = 0;
	if (s->state == S_CLOSING) {
		closing--;
		closed_check();
	}
	s->state = S_FREE;
	s->tls_on = s->authed = s->sm_on = false;
}

void sess_fail(struct sess *s, enum fail_reason r, const char *fmt, ...)
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
		offline_sender_lost(s);
		muc_lost(s);
	}
	sess_drop(s);
}

void sess_close(struct sess *s)
{
	if (!s->bev || s->state == S_CLOSING)
		return;
	if (s->in_login)
		login_finished(s, false, F_INTERNAL, "closed by the bench");
	if (s->state >= S_HEADER)
		sess_puts(s, s->ws ? WS_CLOSE : "</stream:stream>");
	s->state = S_CLOSING;
	s->t0 = now_ns();
	closing++;
}

bool sess_sweep(struct sess *s, uint64_t now)
{
	if (s->in_login && now - s->t0 > (uint64_t)(opt.login_timeout_s * 1e9)) {
		sess_fail(s, F_TIMEOUT, "no login after %.0f s (state %d)", opt.login_timeout_s,
			  s->state);
		return true;
	}
	if (s->state == S_CLOSING && now - s->t0 > 3000000000ull) {
		sess_drop(s);
		return true;
	}
	return false;
}

void sess_send_header(struct sess *s)
{
	char buf[512];

	if (s->ws) {
		ws_send_open(s);
		return;
	}
	snprintf(buf, sizeof(buf), "<?xml version='1.0'?><stream:stream to='%s' "
		 "xmlns='jabber:client' xmlns:stream='" NS_STREAMS "' version='1.0'>",
		 acct_host(s->idx));
	s->state = S_HEADER;
	sess_puts(s, buf);
}

/* Cheaper than a filter chain, and nothing is in flight: the server waits
 * for our hello. */
int sess_start_tls(struct sess *s)
{
	SSL *ssl = SSL_new(ssl_ctx);
	struct bufferevent *bev;
	static const unsigned char alpn[] = "\x0bxmpp-client";

	if (!ssl) {
		sess_fail(s, F_TLS, "SSL_new failed");
		return -1;
	}
	SSL_set_tlsext_host_name(ssl, acct_host(s->idx));
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

static void sess_reset(struct sess *s)
{
	s->t0 = now_ns();
	s->in_login = true;
	s->missing = false;
	s->need_session = s->sm_offered = s->sm_on = s->fin_sent = s->acked = false;
	s->sm_in = s->sm_out = 0;
	s->last_h = 0;
	s->t_ask = s->t_progress = 0;
	memset(&s->scan, 0, sizeof(s->scan));
	s->ws = opt.ws_path != NULL;
	s->ws_close_sent = false;
	s->state = S_CONNECTING;
	s->purpose = W.purpose;
}

/*
 * Past conns_per_addr accounts, spread the sources over 127.0.0.0/8: each
 * source address has its own ephemeral ports (and per-IP limits). The
 * existence probe and in-band registration fail on purpose for missing
 * accounts, and servers count failures per address (Parley's auth-attempts,
 * ejabberd's mod_fail2ban, registration rates): each account gets its own
 * address there, in 127.64.0.0/10, away from the ones that log in.
 */
static int bind_source(struct sess *s, evutil_socket_t fd)
{
	struct sockaddr_in src = { .sin_family = AF_INET };
	uint32_t k = s->idx / opt.conns_per_addr;
	int one = 1;

	if (!opt.loopback4 || (opt.n <= opt.conns_per_addr && s->purpose == P_LOGIN))
		return 0;
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
		return -1;
	}
	return 0;
}

void sess_connect(struct sess *s)
{
	evutil_socket_t fd;
	int one = 1;
	bool second = acct_on_second(s->idx);
	const struct sockaddr_storage *sa = second ? &opt.sa2 : &opt.sa;
	socklen_t salen = second ? opt.salen2 : opt.salen;

	sess_reset(s);
	W.pending++;
	W.rep.attempted++;
	if (!W.rep.t_first)
		W.rep.t_first = s->t0;
	fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		sess_fail(s, F_CONNECT, "socket: %s", strerror(errno));
		return;
	}
	s->fd = fd;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		note("TCP_NODELAY: %s", strerror(errno));
	if (bind_source(s, fd) < 0)
		return;
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
	    bufferevent_socket_connect(s->bev, (const struct sockaddr *)sa, (int)salen) < 0)
		sess_fail(s, F_CONNECT, "connect: %s", strerror(errno));
}

static void event_error(struct sess *s)
{
	unsigned long e = s->tls_on ? bufferevent_get_openssl_error(s->bev) : 0;
	int err = EVUTIL_SOCKET_ERROR();

	if (s->state == S_CLOSING) {
		sess_drop(s);
	} else if (e) {
		char buf[256];

		ERR_error_string_n(e, buf, sizeof(buf));
		sess_fail(s, F_TLS, "TLS: %s", buf);
	} else if (s->state == S_CONNECTING) {
		sess_fail(s, F_CONNECT, "connect: %s", evutil_socket_error_to_string(err));
	} else {
		sess_fail(s, s->state == S_TLS ? F_TLS : F_CLOSED, "connection error: %s",
			  err ? evutil_socket_error_to_string(err) : "unknown");
	}
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct sess *s = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		if (s->tls_on || opt.tls != TLS_DIRECT) {
			if (s->ws)
				ws_upgrade(s);
			else
				sess_send_header(s);
			return;
		}
		sess_start_tls(s);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		event_error(s);
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
	(void)bev;
	offline_writable(arg);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct sess *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (s->ws) {
		ws_read(s, in);
		return;
	}
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
			rc = stream_element(s, ev, tp, tl);
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

void sess_setup(void)
{
	ssl_ctx = SSL_CTX_new(TLS_client_method());
	if (!ssl_ctx)
		fatal("SSL_CTX_new failed");
	SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_mode(ssl_ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ssl_ctx, SSL_SESS_CACHE_OFF);
	closed_ev = event_new(W.base, -1, 0, closed_cb, NULL);
	if (!closed_ev)
		fatal("cannot set up events");
}

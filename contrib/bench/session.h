/*
 * session.h - one account's connection: the socket, TLS, the bytes in and
 * out, and the life cycle from connect() to close. What the elements mean is
 * stream.c's business (negotiation) and receive.c's (once online). With --ws
 * the bytes are WebSocket frames, ws.c's business.
 *
 * Sessions live in W.s[], one slot per account of this worker, and are used
 * again for each phase (probe, registration, login). A failed session is
 * counted once (login_finished() while it logs in, a disconnect once online)
 * and its slot freed.
 */
#ifndef BENCH_SESSION_H
#define BENCH_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/util.h>

#include "scan.h"
#include "worker.h"

#define NS_STREAMS	"http://etherx.jabber.org/streams"
#define NS_TLS		"urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL		"urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIND		"urn:ietf:params:xml:ns:xmpp-bind"
#define NS_SESSION	"urn:ietf:params:xml:ns:xmpp-session"
#define NS_SM		"urn:xmpp:sm:3"
#define NS_REGISTER	"jabber:iq:register"
#define NS_PING		"urn:xmpp:ping"
#define NS_STANZAS	"urn:ietf:params:xml:ns:xmpp-stanzas"

enum sstate {
	S_FREE, S_CONNECTING, S_TLS, S_UPGRADE, S_HEADER, S_STARTTLS, S_AUTH, S_REG, S_BIND, S_SESSION,
	S_SM, S_ONLINE, S_CLOSING
};
enum purpose { P_PROBE, P_IBR, P_LOGIN };

/* What an element handler did to its session. */
enum { H_OK, H_GONE, H_RESTART };

struct sasl_scram;

struct sess {
	struct bufferevent *bev;
	struct sasl_scram *scram;	/* during a SCRAM exchange */
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
	char *ws_frag;		/* --ws: a fragmented message being gathered */
	uint32_t ws_frag_len;
	uint32_t ws_mask;	/* --ws: this connection's masking key */
	unsigned char ws_key[16];	/* --ws: the Upgrade's nonce */
	uint8_t state, purpose;
	bool tls_on, authed, need_session, sm_offered, sm_on, in_login, missing;
	bool fin_sent, acked;
	bool ws, ws_close_sent;	/* --ws: RFC 7395; our close frame is out */
};

/* The TLS context and the close tracking; fatal on failure. After W.base. */
void sess_setup(void);

/* Starts a login attempt of purpose W.purpose on this slot. */
void sess_connect(struct sess *s);
/* Replaces the plain connection by TLS on the same socket; -1 if failed (and
 * the session with it). */
int sess_start_tls(struct sess *s);
/* Sends the stream header: at the start and after TLS or SASL. */
void sess_send_header(struct sess *s);

/* All output goes through here (see session.c for why it may skip libevent):
 * one or more whole elements (over WebSocket: exactly one, see ws.h). */
void sess_write(struct sess *s, const char *p, size_t n);
void sess_puts(struct sess *s, const char *str);
/* The bytes as they are, with no framing: ws.c's way out. */
void sess_write_raw(struct sess *s, const char *p, size_t n);

/* Counts the failure (for reason r, as the first error if it is) and frees
 * the slot. */
void sess_fail(struct sess *s, enum fail_reason r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Ends the stream politely; the slot is freed when the server closes. */
void sess_close(struct sess *s);
/* Frees the slot at once. */
void sess_drop(struct sess *s);
/* Calls then() once no session is closing (at most 3 s later). */
void sess_after_closed(void (*then)(void));
/* A sess_after_closed() is still waiting. */
bool sess_awaiting_closed(void);
/* The periodic check of one slot: login timeout, stuck close. True if it
 * acted on the session. */
bool sess_sweep(struct sess *s, uint64_t now);

/* The account's bare JID, or its localpart, as a string in buf. */
const char *sess_name(const struct sess *s, char *buf, size_t cap);
const char *sess_user(const struct sess *s, char *buf, size_t cap);

#endif

/*
 * s2s_int.h - what s2s.c (routes, queues, policy), s2s_out.c (streams we
 * open) and s2s_in.c (streams we accept) share. Not for the rest of the core.
 *
 * A route is the pair (local domain, remote domain) stanzas travel on. It
 * owns the queue of what waits for its outgoing stream, the back-off between
 * attempts, and the dialback verifications (<db:verify/>) that incoming
 * streams from the remote domain asked for: those go out on the same stream.
 */
#ifndef PARLEY_S2S_INT_H
#define PARLEY_S2S_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "jid.h"
#include "s2s.h"
#include "xml.h"

#define NS_SERVER_STREAM "jabber:server"
#define NS_DIALBACK "jabber:server:dialback"
#define NS_DIALBACK_FEATURE "urn:xmpp:features:dialback"
#define NS_SM3 "urn:xmpp:sm:3"
#define S2S_PAIRS_MAX 16	/* domain pairs one incoming stream may carry */
#define S2S_VERIFIES_MAX 64	/* dialback verifications waiting per route */
#define S2S_UNACKED_MAX 10000	/* stanzas sent and not yet acked (XEP-0198) */
#define S2S_ROUTES_MAX 10000	/* (local, remote) pairs known at once; idle ones go */
#define S2S_RESEND_MAX 3	/* sends of one stanza no stream acknowledged */
#define S2S_STABLE_SECS 10	/* a stream up for less, then lost, is a failed attempt */
#define S2S_OUTPUT_MAX (4u << 20)	/* bytes written and not yet read by the peer */
#define S2S_HEADER_MAX (2 * JID_PART_MAX + 512)	/* our stream header */

struct s2s_out;
struct s2s_in;
struct event;

enum s2s_auth { S2S_AUTH_NONE, S2S_AUTH_EXTERNAL, S2S_AUTH_DIALBACK, S2S_AUTH_CERT };
extern const char *const s2s_auth_names[];

/* A stanza waiting, with when it started waiting (bounce after the
 * connect-timeout), and how often a stream lost it unacknowledged. */
struct s2s_item {
	struct xml_node *st;
	time_t since;
	unsigned resends;
	struct s2s_item *next;
};

struct s2s_queue {
	struct s2s_item *head, *tail;
	size_t len;
};

/* A verification an incoming stream wants from the remote's authoritative
 * server: sent as <db:verify/> on the route's outgoing stream. */
struct s2s_verify {
	char id[80];			/* the incoming stream's id */
	char key[72];
	uint64_t in_serial;		/* the incoming stream that asked */
	time_t since;			/* answered invalid after the connect-timeout */
	struct s2s_verify *next;
};

enum route_state {
	ROUTE_IDLE,		/* no stream, nothing to send */
	ROUTE_CONNECTING,	/* an outgoing stream is being made */
	ROUTE_READY,		/* authenticated: stanzas go straight out */
	ROUTE_WAITING,		/* failed: the next attempt after the back-off */
};

struct s2s_route {
	char local[JID_PART_MAX + 1], remote[JID_PART_MAX + 1];
	enum route_state state;
	struct s2s_queue queue;
	struct s2s_verify *verifies;
	unsigned nverifies;
	struct s2s_out *out;
	unsigned failures;		/* attempts failed in a row */
	time_t retry_at;		/* ROUTE_WAITING: when the next attempt may start */
	time_t ready_at;		/* when the stream last became ready */
	char last_error[160];		/* why the last attempt failed, for bounces */
	const char *last_condition;	/* remote-server-not-found or -timeout */
	struct event *timer;		/* back-off, queue expiry, idle route's end */
	struct s2s_route *next;		/* in its hash bucket */
};

/* ---- s2s.c ---- */
extern struct s2s_stats s2s_counters;
const unsigned char *s2s_secret(size_t *len);
/* A domain served here (host, service, component). */
bool s2s_is_local(const char *domain);
/* Whether the policy needs a valid certificate from domain. */
bool s2s_needs_cert(const char *domain);
/* With create, a new route when none is known (NULL at S2S_ROUTES_MAX or
 * without memory). A route idle and empty (no stream, nothing queued, no
 * verification) goes away: a pointer to one is good until the loop runs. */
struct s2s_route *s2s_route_find(const char *local, const char *remote, bool create);
/* The outgoing stream is authenticated: the queue goes out. */
void s2s_route_ready(struct s2s_route *r);
/* The outgoing stream ended. unacked: what it sent and was never acked, in
 * order (XEP-0198), handed back to be sent again first. definitive: the
 * failure will not go away by retrying soon (DNS says no, a certificate or
 * dialback refused). was_ready: the stream had been up (its loss is not a
 * failed attempt: reconnect at once). */
void s2s_route_down(struct s2s_route *r, struct s2s_queue *unacked, const char *condition,
		    const char *why, bool definitive, bool was_ready);
/* Answers with an error to the stanza's sender (nothing for errors). Consumes. */
void s2s_bounce(struct xml_node *st, const char *condition, const char *text);
void s2s_queue_push(struct s2s_queue *q, struct xml_node *st, time_t since);
struct xml_node *s2s_queue_pop(struct s2s_queue *q);
void s2s_queue_bounce(struct s2s_queue *q, const char *condition, const char *text);
/* Asks the authoritative server of remote whether key is right for the
 * incoming stream id (ours): via the route (local, remote). -1 when the queue
 * of verifications is full. */
int s2s_verify_request(const char *local, const char *remote, const char *id,
		       const char *key, uint64_t in_serial);
/* Renames jabber:server to jabber:client in a stanza from a server: inside
 * Parley every stanza is in jabber:client, and the s2s writer declares
 * jabber:server as the stream's default so those names need no xmlns. */
void s2s_ns_to_client(struct xml_node *n);
void s2s_stream_header(char *buf, size_t len, const char *from, const char *to,
		       const char *id, bool version);

/* ---- s2s_out.c ---- */
/* Starts an outgoing stream for the route (it calls s2s_route_ready or
 * s2s_route_down later, never from inside this call). */
struct s2s_out *s2s_out_start(struct s2s_route *r);
/* An authenticated stream takes a stanza (consumed); one that is closing
 * puts it back in the route's queue. */
void s2s_out_send(struct s2s_out *o, struct xml_node *st);
bool s2s_out_ready(const struct s2s_out *o);
/* Sends the route's waiting verifications if the stream can carry them. */
void s2s_out_verifies(struct s2s_out *o);
/* Closes (</stream:stream>), with a stream error when condition is set. */
void s2s_out_close(struct s2s_out *o, const char *condition, const char *text);
void s2s_out_free_all(void);
void s2s_out_list(struct evbuffer *b, bool json, bool *first);
size_t s2s_out_close_domain(const char *domain);

/* ---- s2s_in.c ---- */
int s2s_in_init(void);
/* A verification answered on an outgoing stream, for the incoming stream
 * serial (gone by now, maybe: then nothing). */
void s2s_in_verify_result(uint64_t serial, const char *local, const char *remote,
			  const char *id, bool valid);
void s2s_in_close_all(const char *condition, const char *text);
void s2s_in_free_all(void);
void s2s_in_list(struct evbuffer *b, bool json, bool *first);
size_t s2s_in_close_domain(const char *domain);

#endif

/*
 * session.c - the session manager: who is online, with which resources.
 *
 * Users are kept in an open hash table by bare JID; each user has a short list
 * of sessions (resources). Lookups are what the router does per stanza, so they
 * are O(1) in the number of users and linear only in one user's resources.
 */
#include "session.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "delivery.h"
#include "log.h"
#include "module.h"
#include "stanza.h"
#include "stream.h"
#include "util.h"
#include "vhost.h"


struct session_slot {
	const struct module *m;
	void *data;
	void (*free_fn)(void *);
	struct session_slot *next;
};

/* A client stanza whose fate is not settled yet (see session_settled). */
struct inbound {
	struct session *s;		/* NULL once the session is gone */
	uint32_t seq;
	bool settled;
	struct inbound *next;
};

struct session {
	struct jid *jid;
	struct session_slot *slots;	/* module data */
	struct stream *stream;		/* NULL while detached */
	struct sm_user *user;
	struct xml_node *presence;	/* last broadcast presence, or NULL */
	int priority;
	bool available;
	bool interested;		/* asked for the roster: gets pushes */
	time_t started;
	uint32_t received;		/* stanzas from the client, mod 2^32 */
	struct inbound *in_head, *in_tail;	/* unsettled ones, in order */
	struct session *next;		/* the user's other sessions */
};

struct sm_user {
	char *bare;
	size_t bare_len;
	struct session *sessions;
	unsigned count;
	struct sm_user *next;		/* hash chain */
};

static struct {
	struct sm_user **buckets;
	size_t nbuckets, nusers, nsessions;
} sm;

static struct sm_user **user_slot(const char *bare, size_t len)
{
	struct sm_user **pp;

	if (!sm.nbuckets)
		return NULL;
	pp = &sm.buckets[util_hash32(bare, len) & (sm.nbuckets - 1)];
	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->bare_len == len && memcmp((*pp)->bare, bare, len) == 0)
			return pp;
	return pp;
}

static int grow(void)
{
	size_t n = sm.nbuckets ? sm.nbuckets * 2 : 1024;
	struct sm_user **b = calloc(n, sizeof(*b));

	if (!b)
		return -1;
	for (size_t i = 0; i < sm.nbuckets; i++) {
		struct sm_user *u = sm.buckets[i], *next;

		for (; u; u = next) {
			size_t j = util_hash32(u->bare, u->bare_len) & (n - 1);

			next = u->next;
			u->next = b[j];
			b[j] = u;
		}
	}
	free(sm.buckets);
	sm.buckets = b;
	sm.nbuckets = n;
	return 0;
}

static struct sm_user *find_user(const struct jid *j)
{
	struct sm_user **pp = user_slot(j->full, j->bare_len);

	return pp ? *pp : NULL;
}

struct session *sm_find(const struct jid *full)
{
	struct sm_user *u;

	if (!full->resource || !(u = find_user(full)))
		return NULL;
	for (struct session *s = u->sessions; s; s = s->next)
		if (strcmp(s->jid->resource, full->resource) == 0)
			return s;
	return NULL;
}

size_t sm_user_sessions(const struct jid *bare, struct session **out, size_t max)
{
	struct sm_user *u = find_user(bare);
	size_t n = 0;

	if (!u)
		return 0;
	for (struct session *s = u->sessions; s; s = s->next, n++)
		if (n < max)
			out[n] = s;
	return n;
}

size_t sm_count(void) { return sm.nsessions; }

struct session *sm_bind(struct stream *stream, const struct jid *full)
{
	struct session *old = sm_find(full), *s;
	struct sm_user **pp, *u;

	if (old) {
		/* RFC 6120 §7.7.2.2: the newer session wins; the older one is told. */
		log_info("sm", "%s: replaced by a new login", full->full);
		/* The stream error unbinds the old session at once. */
		if (old->stream)
			stream_close(old->stream, "conflict", "replaced by a new login with "
				     "this resource", NULL);
		else
			sm_unbind(old, "replaced by a new login");
	}
	if ((sm.nusers + 1) * 2 > sm.nbuckets && grow() < 0)
		return NULL;
	pp = user_slot(full->full, full->bare_len);
	u = *pp;
	if (u && u->count >= SESSION_RESOURCES_MAX) {
		log_warn("sm", "%.*s: too many resources", (int)full->bare_len, full->full);
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->jid = jid_copy(full);
	if (!s->jid) {
		free(s);
		return NULL;
	}
	if (!u) {
		u = calloc(1, sizeof(*u));
		if (!u || !(u->bare = strndup(full->full, full->bare_len))) {
			free(u);
			jid_free(s->jid);
			free(s);
			return NULL;
		}
		u->bare_len = full->bare_len;
		*pp = u;
		sm.nusers++;
	}
	s->stream = stream;
	s->user = u;
	s->started = time(NULL);
	s->next = u->sessions;
	u->sessions = s;
	u->count++;
	sm.nsessions++;
	return s;
}

void sm_unbind(struct session *s, const char *reason)
{
	struct sm_user *u = s->user, **pp;
	struct hook_args a = { .sess = s, .from = s->jid, .reason = reason };

	hooks_run(s->jid->domain, HOOK_SESSION_CLOSED, &a);
	for (struct session **sp = &u->sessions; *sp; sp = &(*sp)->next) {
		if (*sp == s) {
			*sp = s->next;
			break;
		}
	}
	u->count--;
	sm.nsessions--;
	if (!u->sessions) {
		pp = user_slot(u->bare, u->bare_len);
		if (pp && *pp == u)
			*pp = u->next;
		sm.nusers--;
		free(u->bare);
		free(u);
	}
	while (s->slots) {
		struct session_slot *n = s->slots->next;

		if (s->slots->free_fn)
			s->slots->free_fn(s->slots->data);
		free(s->slots);
		s->slots = n;
	}
	/* Stanzas still waiting to settle settle into nothing now. */
	while (s->in_head) {
		struct inbound *e = s->in_head;

		s->in_head = e->next;
		if (e->settled)
			free(e);
		else
			e->s = NULL;	/* freed by its delivery's callback */
	}
	xml_unref(s->presence);
	jid_free(s->jid);
	free(s);
}

void sm_unbind_all(const char *reason)
{
	for (size_t i = 0; i < sm.nbuckets; i++)
		while (sm.buckets[i])
			sm_unbind(sm.buckets[i]->sessions, reason);
	free(sm.buckets);
	sm.buckets = NULL;
	sm.nbuckets = 0;
}

bool session_interested(const struct session *s) { return s->interested; }
void session_set_interested(struct session *s) { s->interested = true; }

void *session_data(const struct session *s, const struct module *m)
{
	for (struct session_slot *sl = s->slots; sl; sl = sl->next)
		if (sl->m == m)
			return sl->data;
	return NULL;
}

void session_set_data(struct session *s, const struct module *m, void *data,
		      void (*free_fn)(void *))
{
	struct session_slot *sl;

	for (sl = s->slots; sl; sl = sl->next) {
		if (sl->m == m) {
			if (sl->free_fn && sl->data != data)
				sl->free_fn(sl->data);
			sl->data = data;
			sl->free_fn = free_fn;
			return;
		}
	}
	sl = calloc(1, sizeof(*sl));
	if (!sl) {
		if (free_fn)
			free_fn(data);
		return;
	}
	sl->m = m;
	sl->data = data;
	sl->free_fn = free_fn;
	sl->next = s->slots;
	s->slots = sl;
}

const struct jid *session_jid(const struct session *s) { return s->jid; }
int session_priority(const struct session *s) { return s->priority; }
bool session_available(const struct session *s) { return s->available; }
const struct xml_node *session_presence(const struct session *s) { return s->presence; }
time_t session_started(const struct session *s) { return s->started; }
const char *session_address(const struct session *s)
{
	return s->stream ? stream_peer(s->stream) : "";
}

bool session_tls(const struct session *s) { return s->stream && stream_secure(s->stream); }
bool session_detached(const struct session *s) { return !s->stream; }

const char *session_transport(const struct session *s)
{
	return s->stream ? stream_transport_names[stream_transport(s->stream)] : "-";
}

void session_send(struct session *s, const struct xml_node *stanza)
{
	struct hook_args a = { .sess = s, .stanza = (struct xml_node *)stanza, .to = s->jid };

	if (hooks_run(s->jid->domain, HOOK_USER_RECV, &a) == HOOK_STOP)
		return;
	if (s->stream)
		stream_send(s->stream, stanza);
}

void session_write(struct session *s, const struct xml_node *n)
{
	if (s->stream)
		stream_send(s->stream, n);
}

void session_close(struct session *s, const char *condition, const char *text)
{
	session_close_extra(s, condition, text, NULL);
}

void session_close_extra(struct session *s, const char *condition, const char *text,
			 const struct xml_node *extra)
{
	if (s->stream)
		stream_close(s->stream, condition, text, extra);
	else
		sm_unbind(s, condition);
}

void session_detach(struct session *s)
{
	s->stream = NULL;
}

int session_resume(struct session *s, struct stream *stream)
{
	struct stream *old = s->stream;

	if (old) {
		/* The old connection may not know yet that it is dead. */
		s->stream = NULL;
		old->ops->release(old);
		stream_close(old, "conflict", "the session was resumed on another connection",
			     NULL);
	}
	s->stream = stream;
	stream->ops->attach(stream, s);
	return 0;
}

/* ---- what the client sent, and what of it is settled (XEP-0198 acks) ---- */

uint32_t session_received(const struct session *s) { return s->received; }

uint32_t session_settled(const struct session *s)
{
	return s->in_head ? s->in_head->seq - 1 : s->received;
}

static void inbound_done(void *arg, bool ok)
{
	struct inbound *e = arg;
	struct session *s = e->s;
	bool moved = false;

	(void)ok;
	if (!s) {
		free(e);
		return;
	}
	e->settled = true;
	while (s->in_head && s->in_head->settled) {
		struct inbound *h = s->in_head;

		s->in_head = h->next;
		if (!s->in_head)
			s->in_tail = NULL;
		free(h);
		moved = true;
	}
	if (moved) {
		struct hook_args a = { .sess = s, .from = s->jid };

		hooks_run(s->jid->domain, HOOK_SESSION_SETTLED, &a);
	}
}

void session_inbound_skip(struct session *s, uint32_t n)
{
	if (!s->in_head)
		s->received += n;
}

struct delivery *session_inbound_begin(struct session *s, bool track)
{
	s->received++;
	return track ? delivery_new(false, NULL, NULL) : NULL;
}

void session_inbound_end(struct session *s, struct delivery *d)
{
	struct inbound *e;

	if (!d)
		return;
	if (delivery_shared(d) && (e = calloc(1, sizeof(*e)))) {
		/* Someone still holds it (a queue waiting for an ack, a store waiting
		 * for its commit): the count stops below it until it settles. */
		e->s = s;
		e->seq = s->received;
		if (s->in_tail)
			s->in_tail->next = e;
		else
			s->in_head = e;
		s->in_tail = e;
		delivery_set_done(d, inbound_done, e);
	}
	delivery_release(d, true);
}

void session_set_presence(struct session *s, struct xml_node *presence)
{
	const char *type = xml_attr(presence, "type");

	if (type && strcmp(type, "unavailable") == 0) {
		s->available = false;
	} else if (!type) {
		s->available = true;
		s->priority = stanza_presence_priority(presence);
	}
	xml_unref(s->presence);
	s->presence = presence;
}

void sm_foreach(const char *host, void (*fn)(struct session *s, void *arg), void *arg)
{
	for (size_t i = 0; i < sm.nbuckets; i++)
		for (struct sm_user *u = sm.buckets[i]; u; u = u->next)
			for (struct session *s = u->sessions; s; s = s->next)
				if (!host || strcmp(s->jid->domain, host) == 0)
					fn(s, arg);
}

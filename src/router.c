/*
 * router.c - where a stanza goes (RFC 6120 §10, RFC 6121 §8).
 *
 * The decisions, in order: a remote domain (s2s, not served yet); the host
 * itself (its IQ handlers); a local account's bare JID (account IQ handlers,
 * presence hooks, message delivery by priority); a full JID (that session, or
 * the bare-JID rules when it is gone).
 */
#include "router.h"

#include <openssl/rand.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "delivery.h"
#include "jid.h"
#include "log.h"
#include "module.h"
#include "session.h"
#include "stanza.h"
#include "vhost.h"

#define ROUTE_FANOUT_MAX 64
#define NS_SID "urn:xmpp:sid:0"

static struct router_stats stats;

const struct router_stats *router_stats(void) { return &stats; }

/* Sends an error back to the sender, unless the stanza is an error itself. */
static void bounce(struct xml_node *st, const char *condition, const char *text)
{
	const char *type = xml_attr(st, "type");
	struct xml_node *r;

	if ((type && strcmp(type, "error") == 0) || !xml_attr(st, "from"))
		return;
	if (stanza_kind(st) == STANZA_IQ && type && (strcmp(type, "result") == 0))
		return;
	r = stanza_error_reply(st, NULL, condition, text);
	stats.errors++;
	if (r)
		router_route(r);
}

/* RFC 6121 §8.5.2: the available resources with the highest non-negative
 * priority, all of them on a tie. */
static size_t best_sessions(const struct jid *to, struct session **out, size_t max)
{
	struct session *all[ROUTE_FANOUT_MAX];
	size_t n = sm_user_sessions(to, all, ROUTE_FANOUT_MAX), k = 0;
	int best = -1;

	if (n > ROUTE_FANOUT_MAX)
		n = ROUTE_FANOUT_MAX;
	for (size_t i = 0; i < n; i++)
		if (session_available(all[i]) && session_priority(all[i]) >= 0 &&
		    session_priority(all[i]) > best)
			best = session_priority(all[i]);
	if (best < 0)
		return 0;	/* only negative priorities: none gets bare-JID stanzas */
	for (size_t i = 0; i < n && k < max; i++)
		if (session_available(all[i]) && session_priority(all[i]) == best)
			out[k++] = all[i];
	return k;
}

static void to_host(struct vhost *vh, struct xml_node *st, const struct jid *from,
		    const struct jid *to)
{
	const char *type = xml_attr(st, "type");

	if (stanza_kind(st) != STANZA_IQ)
		return;	/* messages and presence to the server itself: nothing yet */
	if (type && (strcmp(type, "result") == 0 || strcmp(type, "error") == 0))
		return;
	if (iq_dispatch(vh, false, st, from, to) < 0)
		bounce(st, "service-unavailable", "the server does not handle this request");
}

static void message_to_bare(struct xml_node *st, const struct jid *from,
			    const struct jid *to)
{
	struct session *best[ROUTE_FANOUT_MAX];
	const char *type = xml_attr(st, "type");
	size_t n = best_sessions(to, best, ROUTE_FANOUT_MAX);

	if (n) {
		/* RFC 6121 §8.5.2.1.1: chat may go to one or all of the best; we
		 * deliver to all of them, which is what clients expect with carbons
		 * absent. */
		for (size_t i = 0; i < n; i++)
			session_send(best[i], st);
		return;
	}
	struct hook_args a = { .stanza = st, .from = from, .to = to };
	if (hooks_run(to->domain, HOOK_OFFLINE_MESSAGE, &a) == HOOK_STOP)
		return;
	/* §8.5.2.2: nobody to take it and no offline store. */
	if (type && (strcmp(type, "headline") == 0 || strcmp(type, "error") == 0))
		return;
	bounce(st, "service-unavailable", "the recipient is not available");
}

static void to_bare(struct vhost *vh, struct xml_node *st, const struct jid *from,
		    const struct jid *to)
{
	const char *type = xml_attr(st, "type");

	switch (stanza_kind(st)) {
	case STANZA_IQ:
		if (type && (strcmp(type, "result") == 0 || strcmp(type, "error") == 0))
			return;
		if (iq_dispatch(vh, true, st, from, to) < 0)
			bounce(st, "service-unavailable", "no handler for this request to an "
			       "account");
		return;
	case STANZA_MESSAGE:
		message_to_bare(st, from, to);
		return;
	case STANZA_PRESENCE: {
		struct hook_args a = { .stanza = st, .from = from, .to = to };

		if (hooks_run(to->domain, HOOK_PRESENCE_IN, &a) == HOOK_STOP)
			return;
		/* Without mod_presence: directed presence goes to every resource. */
		struct session *all[ROUTE_FANOUT_MAX];
		size_t n = sm_user_sessions(to, all, ROUTE_FANOUT_MAX);

		for (size_t i = 0; i < n && i < ROUTE_FANOUT_MAX; i++)
			if (session_available(all[i]))
				session_send(all[i], st);
		return;
	}
	default:
		return;
	}
}

static void to_full(struct vhost *vh, struct xml_node *st, const struct jid *from,
		    const struct jid *to)
{
	struct session *s = sm_find(to);
	const char *type = xml_attr(st, "type");
	struct jid *bare;

	if (s) {
		session_send(s, st);
		return;
	}
	switch (stanza_kind(st)) {
	case STANZA_IQ:
		/* RFC 6121 §8.5.3.2.2 */
		bounce(st, "service-unavailable", "that resource is not online");
		return;
	case STANZA_MESSAGE:
		/* §8.5.3.2.1: chat and normal go to the bare JID; others are dropped or
		 * answered with an error. */
		if (!type || strcmp(type, "chat") == 0 || strcmp(type, "normal") == 0) {
			bare = jid_bare(to);
			if (bare)
				message_to_bare(st, from, bare);
			jid_free(bare);
		} else if (strcmp(type, "groupchat") == 0) {
			bounce(st, "service-unavailable", "groupchat to a gone resource");
		}
		return;
	case STANZA_PRESENCE:
		/* §8.5.3.2.3: presence to a gone resource is dropped, except
		 * subscription types, which are processed as for the bare JID. */
		if (type && (strcmp(type, "subscribe") == 0 || strcmp(type, "subscribed") == 0
		    || strcmp(type, "unsubscribe") == 0 || strcmp(type, "unsubscribed") == 0)) {
			bare = jid_bare(to);
			if (bare)
				to_bare(vh, st, from, bare);
			jid_free(bare);
		}
		return;
	default:
		return;
	}
}

/*
 * XEP-0359 ids: unique and time-ordered as strings, "TTTTTTTTTTTTNNNNCCCCCC" in
 * hex: milliseconds since the epoch, a random node tag (two nodes of a cluster
 * must not collide), and a counter within the millisecond.
 */
void router_new_id(char out[ROUTER_ID_LEN + 1])
{
	static unsigned node, counter;
	static unsigned long long last_ms;
	struct timeval tv;
	unsigned long long ms;

	if (!node) {
		unsigned char r[2];

		RAND_bytes(r, sizeof(r));
		node = (unsigned)(r[0] << 8 | r[1]) | 1;
	}
	gettimeofday(&tv, NULL);
	ms = (unsigned long long)tv.tv_sec * 1000 + (unsigned long long)tv.tv_usec / 1000;
	if (ms <= last_ms) {
		ms = last_ms;	/* the clock went back, or the same millisecond */
		if (++counter > 0xffffff) {
			counter = 0;
			ms = ++last_ms;
		}
	} else {
		counter = 0;
		last_ms = ms;
	}
	snprintf(out, ROUTER_ID_LEN + 1, "%012llx%04x%06x", ms & 0xffffffffffffull,
		 node & 0xffff, counter);
}

/*
 * A message to a local account gets our stanza-id (by = the account), and
 * any stanza-id claiming to be ours that the sender put in is removed: only
 * the server may vouch for it (XEP-0359 §3.1).
 */
static struct xml_node *stamp_stanza_id(struct xml_node *st, const struct jid *to)
{
	struct xml_node *c, *next, *sid;
	char id[ROUTER_ID_LEN + 1];
	char *by = jid_bare_str(to);

	if (!by)
		return st;
	if (st->refs > 1) {
		/* Shared with someone else: ours to change only as a copy. */
		c = xml_copy(st);
		if (!c) {
			free(by);
			return st;
		}
		xml_unref(st);
		st = c;
	}
	for (c = xml_child(st, "stanza-id", NS_SID); c; c = next) {
		const char *cby = xml_attr(c, "by");

		next = xml_next(c, "stanza-id", NS_SID);
		if (cby && strcmp(cby, by) == 0) {
			xml_detach(c);
			xml_unref(c);
		}
	}
	sid = xml_add_child(st, "stanza-id", NS_SID);
	if (sid) {
		router_new_id(id);
		xml_attr_set(sid, "id", id);
		xml_attr_set(sid, "by", by);
	}
	free(by);
	return st;
}

/*
 * XEP-0359 origin-id: a client that is not sure a message went out (its
 * connection dropped before the ack) sends it again with the same origin-id.
 * Recent (sender, recipient, origin-id) triples are remembered, as 64-bit
 * hashes in two generations of a fixed size: memory is bounded, and a triple is
 * remembered for at least DEDUPE_GEN messages after it was seen.
 */
#define DEDUPE_GEN 32768		/* entries per generation (half the slots) */
#define NS_SID_ORIGIN NS_SID

static struct {
	uint64_t *gen[2];		/* open addressing, 0 = empty */
	size_t count;			/* entries in gen[0] */
} dedupe;

static bool dedupe_has(const uint64_t *set, uint64_t h)
{
	size_t mask = 2 * DEDUPE_GEN - 1;

	if (!set)
		return false;
	for (size_t i = h & mask, n = 0; set[i] && n <= mask; i = (i + 1) & mask, n++)
		if (set[i] == h)
			return true;
	return false;
}

/* A keyed hash (SHA-256 with a random secret): a sender must not be able to
 * make its triple collide with someone else's and silence their message. */
static uint64_t triple_hash(const struct jid *from, const struct jid *to, const char *oid)
{
	static unsigned char key[16];
	static bool keyed;
	unsigned char md[EVP_MAX_MD_SIZE], buf[16 + 2 * (3 * JID_PART_MAX + 2) + 2 + 256];
	size_t n = 0, olen = strlen(oid);
	uint64_t h;

	if (!keyed) {
		RAND_bytes(key, sizeof(key));
		keyed = true;
	}
	if (olen > 256)
		olen = 256;	/* longer ids: the first 256 bytes decide */
	memcpy(buf, key, sizeof(key));
	n = sizeof(key);
	memcpy(buf + n, from->full, from->bare_len);
	n += from->bare_len;
	buf[n++] = 0;
	memcpy(buf + n, to->full, to->bare_len);
	n += to->bare_len;
	buf[n++] = 0;
	memcpy(buf + n, oid, olen);
	n += olen;
	if (!EVP_Digest(buf, n, md, NULL, EVP_sha256(), NULL))
		return 0;	/* no hash: no de-duplication rather than a wrong one */
	memcpy(&h, md, sizeof(h));
	return h | 1;
}

/* Whether the triple was seen; remembers it if not. */
static bool dedupe_seen(const struct jid *from, const struct jid *to, const char *oid)
{
	size_t mask = 2 * DEDUPE_GEN - 1, i;
	uint64_t h = triple_hash(from, to, oid);

	if (!h)
		return false;
	if (dedupe_has(dedupe.gen[0], h) || dedupe_has(dedupe.gen[1], h))
		return true;
	if (!dedupe.gen[0] || dedupe.count >= DEDUPE_GEN) {
		uint64_t *fresh = calloc(2 * DEDUPE_GEN, sizeof(*fresh));

		if (!fresh)
			return false;
		free(dedupe.gen[1]);
		dedupe.gen[1] = dedupe.gen[0];
		dedupe.gen[0] = fresh;
		dedupe.count = 0;
	}
	for (i = h & mask; dedupe.gen[0][i]; i = (i + 1) & mask)
		;
	dedupe.gen[0][i] = h;
	dedupe.count++;
	return false;
}

void router_free(void)
{
	free(dedupe.gen[0]);
	free(dedupe.gen[1]);
	dedupe.gen[0] = dedupe.gen[1] = NULL;
	dedupe.count = 0;
}

static bool duplicate(struct xml_node *st, const struct jid *from, const struct jid *to)
{
	const struct xml_node *o = xml_child(st, "origin-id", NS_SID_ORIGIN);
	const char *oid = o ? xml_attr(o, "id") : NULL;
	const char *type = xml_attr(st, "type");

	if (!oid || !*oid || !from->local || (type && strcmp(type, "error") == 0) ||
	    !vhost_find(from->domain))
		return false;
	if (!dedupe_seen(from, to, oid))
		return false;
	stats.duplicates++;
	log_info("router", "%.*s -> %s: dropped a message sent again (origin-id %s)",
		 (int)from->bare_len, from->full, to->full, oid);
	return true;
}

void router_route(struct xml_node *st)
{
	static unsigned depth;
	const char *froms = xml_attr(st, "from"), *tos = xml_attr(st, "to");
	struct jid *from = froms ? jid_new(froms, NULL) : NULL;
	struct jid *to = tos ? jid_new(tos, NULL) : NULL;
	struct delivery *outer = NULL;
	struct vhost *vh;

	/* What routing produces on its own (an error back, say) is not part of
	 * the delivery of the stanza that caused it. */
	if (depth++)
		outer = delivery_enter(NULL);
	stats.routed++;
	if (!from || !to) {
		log_debug("router", "dropped a stanza without valid from/to");
		goto out;
	}
	if (stanza_kind(st) == STANZA_MESSAGE && duplicate(st, from, to))
		goto out;
	vh = vhost_find(to->domain);
	if (!vh) {
		/* Server-to-server links come later. */
		bounce(st, "remote-server-not-found", "this server does not federate yet");
		goto out;
	}
	if (to->local && stanza_kind(st) == STANZA_MESSAGE) {
		const char *type = xml_attr(st, "type");

		if (!type || strcmp(type, "error") != 0)
			st = stamp_stanza_id(st, to);
	}
	if (!to->local)
		to_host(vh, st, from, to);
	else if (!to->resource)
		to_bare(vh, st, from, to);
	else
		to_full(vh, st, from, to);
out:
	if (--depth)
		delivery_leave(outer);
	jid_free(from);
	jid_free(to);
	xml_unref(st);
}

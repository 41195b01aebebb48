/*
 * stanza_id.c - XEP-0359: the ids the server gives messages, and the
 * origin-ids clients give them, used to drop a message sent twice.
 *
 * The router calls both for every message: stamping on the way to a local
 * account, de-duplication on the way from one. They live here, apart from
 * the routing decisions, because they are one XEP's logic with its own state.
 */
#include "stanza_id.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "log.h"
#include "vhost.h"

#define NS_SID "urn:xmpp:sid:0"

static unsigned long long duplicates;

unsigned long long stanza_id_duplicates(void) { return duplicates; }

/*
 * XEP-0359 ids: unique and time-ordered as strings, "TTTTTTTTTTTTNNNNCCCCCC" in
 * hex: milliseconds since the epoch, a random node tag (two nodes of a cluster
 * must not collide), and a counter within the millisecond.
 */
void stanza_id_new(char out[STANZA_ID_LEN + 1])
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
	snprintf(out, STANZA_ID_LEN + 1, "%012llx%04x%06x", ms & 0xffffffffffffull,
		 node & 0xffff, counter);
}

/*
 * A message to a local account gets our stanza-id (by = the account), and
 * any stanza-id claiming to be ours that the sender put in is removed: only
 * the server may vouch for it (XEP-0359 §3.1).
 */
struct xml_node *stanza_id_stamp(struct xml_node *st, const struct jid *to)
{
	struct xml_node *c, *next, *sid;
	char id[STANZA_ID_LEN + 1];
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
		stanza_id_new(id);
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

void stanza_id_free(void)
{
	free(dedupe.gen[0]);
	free(dedupe.gen[1]);
	dedupe.gen[0] = dedupe.gen[1] = NULL;
	dedupe.count = 0;
}

bool stanza_id_duplicate(const struct xml_node *st, const struct jid *from,
			 const struct jid *to)
{
	const struct xml_node *o = xml_child(st, "origin-id", NS_SID_ORIGIN);
	const char *oid = o ? xml_attr(o, "id") : NULL;
	const char *type = xml_attr(st, "type");

	if (!oid || !*oid || !from->local || (type && strcmp(type, "error") == 0) ||
	    !vhost_find(from->domain))
		return false;
	if (!dedupe_seen(from, to, oid))
		return false;
	duplicates++;
	log_info("router", "%.*s -> %s: dropped a message sent again (origin-id %s)",
		 (int)from->bare_len, from->full, to->full, oid);
	return true;
}


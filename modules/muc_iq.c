/*
 * muc_iq.c - IQs between occupants (XEP-0045 §6.5, §7.5; what Prosody and
 * ejabberd do): an occupant's IQ get or set to room@service/nick goes on to
 * that occupant's real JID (its first resource; a vcard-temp request to its
 * bare JID, XEP-0054 §2.4, where the account answers), from the asker's
 * occupant JID, so neither learns the other's real JID. The answer comes back
 * to the asker's occupant JID and is passed to the asker's real JID, from the
 * answerer's occupant JID.
 *
 * The room keeps no table of IQs in flight: the id it sends is the asker's
 * full JID and its id, base64, behind a prefix. An answer is passed on only if
 * that JID is still a resource of the occupant it is addressed to and the
 * answer comes from an occupant's real JID, so a forged id reaches nobody else.
 */
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "log.h"
#include "muc.h"
#include "router.h"

#define ID_PREFIX "mucq-"
#define ID_MAX 256		/* the asker's id: longer ones are refused */
#define NS_VCARD "vcard-temp"

void muc_iq_forward(struct room *r, const struct occupant *asker, const struct xml_node *st,
		    const struct jid *from, const struct jid *to)
{
	const struct xml_node *payload = xml_child(st, NULL, NULL);
	const struct occupant *target = muc_by_nick(r, to->resource);
	const char *id = xml_attr(st, "id");
	size_t flen = strlen(from->full), ilen = id ? strlen(id) : 0;
	char *raw, *enc, *to_jid;
	struct xml_node *fwd;

	if (!target) {
		muc_reply_error(st, "cancel", "item-not-found", "no such occupant");
		return;
	}
	if (!id || ilen > ID_MAX) {
		muc_reply_error(st, "modify", "bad-request", "an IQ needs an id of at most 256 "
			    "characters");
		return;
	}
	if (!(raw = malloc(flen + 1 + ilen)) ||
	    !(enc = malloc(strlen(ID_PREFIX) + base64_encoded_len(flen + 1 + ilen) + 1))) {
		free(raw);
		muc_reply_error(st, "wait", "internal-server-error", NULL);
		return;
	}
	memcpy(raw, from->full, flen);
	raw[flen] = '\n';
	memcpy(raw + flen + 1, id, ilen);
	memcpy(enc, ID_PREFIX, strlen(ID_PREFIX));
	base64_encode(raw, flen + 1 + ilen, enc + strlen(ID_PREFIX));
	free(raw);
	to_jid = payload && payload->ns && !strcmp(payload->ns, NS_VCARD)
		? jid_bare_str(target->real) : strdup(target->real->full);
	fwd = to_jid ? xml_copy(st) : NULL;
	if (!fwd) {
		free(enc);
		free(to_jid);
		muc_reply_error(st, "wait", "internal-server-error", NULL);
		return;
	}
	xml_attr_set(fwd, "from", asker->jid->full);
	xml_attr_set(fwd, "to", to_jid);
	xml_attr_set(fwd, "id", enc);
	free(enc);
	free(to_jid);
	router_route(fwd);
}

/* The occupant whose real JID (full, or bare for a vCard) sent an answer. */
static const struct occupant *answerer(const struct room *r, const struct jid *from)
{
	if (from->resource)
		return muc_by_real(r, from);
	for (const struct occupant *o = r->occupants; o; o = o->next)
		if (jid_bare_eq(o->real, from))
			return o;
	return NULL;
}

void muc_iq_answer(struct room *r, const struct xml_node *st, const struct jid *from,
		   const struct jid *to)
{
	const char *id = xml_attr(st, "id");
	const struct occupant *asker = muc_by_nick(r, to->resource), *o = answerer(r, from);
	unsigned char *raw = NULL;
	size_t len = 0;
	char *nl;
	const char *asker_jid;
	struct jid *aj = NULL;
	struct xml_node *back;
	bool ok = false;

	if (id && asker && o && strncmp(id, ID_PREFIX, strlen(ID_PREFIX)) == 0 &&
	    (raw = base64_decode_alloc(id + strlen(ID_PREFIX), strlen(id + strlen(ID_PREFIX)),
				       &len)) && (nl = memchr(raw, '\n', len))) {
		*nl = '\0';
		if (!memchr(raw, '\0', (size_t)(nl - (char *)raw)) &&
		    (aj = jid_new((char *)raw, NULL)))
			for (unsigned i = 0; i < muc_resources(asker) && !ok; i++)
				ok = jid_eq(muc_resource(asker, i), aj);
	}
	if (!ok) {
		/* Not an answer to an IQ the room passed on, or its asker is gone. */
		log_debug("muc", "%s: an IQ %s from %s to %s matches no IQ passed on: dropped",
			  r->jid->full, xml_attr(st, "type"), from->full, to->full);
		free(raw);
		jid_free(aj);
		return;
	}
	asker_jid = aj->full;
	back = xml_copy(st);
	if (back) {
		size_t orig = len - (size_t)(nl + 1 - (char *)raw);
		char *oid = malloc(orig + 1);

		if (oid) {
			memcpy(oid, nl + 1, orig);
			oid[orig] = '\0';
			xml_attr_set(back, "id", oid);
			xml_attr_set(back, "from", o->jid->full);
			xml_attr_set(back, "to", asker_jid);
			free(oid);
			router_route(back);
		} else {
			xml_unref(back);
		}
	}
	free(raw);
	jid_free(aj);
}

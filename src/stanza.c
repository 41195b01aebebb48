/*
 * stanza.c - helpers for the three XMPP stanzas on top of xml trees.
 */
#include "stanza.h"

#include <stdlib.h>
#include <string.h>

enum stanza_kind stanza_kind(const struct xml_node *st)
{
	if (!st || st->type != XML_ELEMENT || !st->ns)
		return STANZA_OTHER;
	if (strcmp(st->ns, NS_CLIENT) != 0 && strcmp(st->ns, NS_SERVER) != 0)
		return STANZA_OTHER;
	if (strcmp(st->name, "message") == 0)
		return STANZA_MESSAGE;
	if (strcmp(st->name, "presence") == 0)
		return STANZA_PRESENCE;
	if (strcmp(st->name, "iq") == 0)
		return STANZA_IQ;
	return STANZA_OTHER;
}

/* RFC 6120 §8.3.3: the type each condition usually goes with. */
static const struct {
	const char *condition, *type;
} error_types[] = {
	{ "bad-request", "modify" }, { "conflict", "cancel" },
	{ "feature-not-implemented", "cancel" }, { "forbidden", "auth" },
	{ "gone", "cancel" }, { "internal-server-error", "cancel" },
	{ "item-not-found", "cancel" }, { "jid-malformed", "modify" },
	{ "not-acceptable", "modify" }, { "not-allowed", "cancel" },
	{ "not-authorized", "auth" }, { "policy-violation", "modify" },
	{ "recipient-unavailable", "wait" }, { "redirect", "modify" },
	{ "registration-required", "auth" }, { "remote-server-not-found", "cancel" },
	{ "remote-server-timeout", "wait" }, { "resource-constraint", "wait" },
	{ "service-unavailable", "cancel" }, { "subscription-required", "auth" },
	{ "undefined-condition", "cancel" }, { "unexpected-request", "wait" },
};

const char *stanza_error_type(const char *condition)
{
	for (size_t i = 0; i < sizeof(error_types) / sizeof(*error_types); i++)
		if (strcmp(error_types[i].condition, condition) == 0)
			return error_types[i].type;
	return "cancel";
}

/* Every error carries words for a human (DESIGN.md): these when the caller
 * has nothing more precise. */
const char *stanza_default_text(const char *condition)
{
	static const struct {
		const char *condition, *text;
	} texts[] = {
		{ "internal-server-error", "the server could not process this" },
		{ "service-unavailable", "the service is not available" },
		{ "bad-request", "the request is malformed" },
		{ "feature-not-implemented", "this is not implemented" },
		{ "forbidden", "you are not allowed to do this" },
		{ "item-not-found", "no such item" },
		{ "not-allowed", "this is not allowed" },
		{ "unsupported-stanza-type", "this element is not a stanza the server knows" },
		{ "resource-constraint", "the server is too busy; try again later" },
		{ "remote-server-not-found", "the remote server cannot be reached" },
	};

	for (size_t i = 0; i < sizeof(texts) / sizeof(*texts); i++)
		if (strcmp(texts[i].condition, condition) == 0)
			return texts[i].text;
	return "the request failed";
}

struct xml_node *stanza_error_reply(const struct xml_node *st, const char *type,
				    const char *condition, const char *text)
{
	struct xml_node *r = xml_copy(st), *err, *c;
	const char *from = xml_attr(st, "from"), *to = xml_attr(st, "to");

	if (!r)
		return NULL;
	xml_attr_set(r, "from", to);
	xml_attr_set(r, "to", from);
	xml_attr_set(r, "type", "error");
	err = xml_add_child(r, "error", NULL);
	if (!err)
		goto fail;
	xml_attr_set(err, "type", type ? type : stanza_error_type(condition));
	if (!xml_add_child(err, condition, NS_STANZAS))
		goto fail;
	if (!text)
		text = stanza_default_text(condition);
	{
		c = xml_add_child(err, "text", NS_STANZAS);
		if (!c || xml_add_text(c, text, strlen(text)) < 0)
			goto fail;
		xml_attr_set_ns(c, XML_NS_XML, "lang", "en");
	}
	return r;
fail:
	xml_unref(r);
	return NULL;
}

struct xml_node *stanza_iq_result(const struct xml_node *iq, struct xml_node *payload)
{
	struct xml_node *r = xml_new("iq", iq->ns);

	if (!r) {
		xml_unref(payload);
		return NULL;
	}
	xml_attr_set(r, "type", "result");
	xml_attr_set(r, "id", xml_attr(iq, "id"));
	xml_attr_set(r, "to", xml_attr(iq, "from"));
	xml_attr_set(r, "from", xml_attr(iq, "to"));
	if (payload)
		xml_append(r, payload);
	return r;
}

struct xml_node *stanza_stream_error(const char *condition, const char *text)
{
	struct xml_node *e = xml_new("error", NS_STREAMS), *t;

	if (!e)
		return NULL;
	if (!xml_add_child(e, condition, NS_STREAM_ERRORS))
		goto fail;
	if (!text)
		text = stanza_default_text(condition);
	{
		t = xml_add_child(e, "text", NS_STREAM_ERRORS);
		if (!t || xml_add_text(t, text, strlen(text)) < 0)
			goto fail;
		xml_attr_set_ns(t, XML_NS_XML, "lang", "en");
	}
	return e;
fail:
	xml_unref(e);
	return NULL;
}

int stanza_presence_priority(const struct xml_node *presence)
{
	char *prio = xml_child_text(presence, "priority", NULL), *end;
	long p = 0;

	if (prio) {
		p = strtol(prio, &end, 10);
		if (*end || end == prio || p < -128 || p > 127)
			p = 0;
		free(prio);
	}
	return (int)p;
}

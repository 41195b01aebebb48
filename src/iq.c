/*
 * iq.c - IQ handlers by (domain, type, payload namespace), and their answers.
 *
 * An IQ get or set either finds its handler or gets service-unavailable from
 * the caller (RFC 6120 §8.2.3: never silence). A handler answers exactly once,
 * now or after a database query, through iq_reply() or iq_error(); the struct
 * iq it got stays valid until then, whatever happens to the sender meanwhile.
 */
#include "vhost.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "router.h"
#include "stanza.h"

struct iq_entry {
	struct module *m;
	enum iq_type type;
	bool account;
	char *ns;
	iq_fn fn;
	struct iq_entry *next;
};

static int add_iq(struct module *m, enum iq_type type, bool account, const char *ns,
		  iq_fn fn)
{
	struct iq_entry *e;

	for (struct iq_entry *o = m->vh->iqs; o; o = o->next) {
		if (o->type == type && o->account == account && !strcmp(o->ns, ns)) {
			log_error("modules", "%s: mod_%s and mod_%s both handle %s IQs of %s",
				  m->vh->name, o->m->def->name, m->def->name,
				  type == IQ_GET ? "get" : "set", ns);
			m->reg_failed = true;
			return -1;
		}
	}
	e = calloc(1, sizeof(*e));
	if (!e || !(e->ns = strdup(ns))) {
		free(e);
		log_error("modules", "%s: mod_%s: no memory for an IQ handler", m->vh->name,
			  m->def->name);
		m->reg_failed = true;
		return -1;
	}
	e->m = m;
	e->type = type;
	e->account = account;
	e->fn = fn;
	e->next = m->vh->iqs;
	m->vh->iqs = e;
	return 0;
}

int module_iq(struct module *m, enum iq_type type, const char *ns, iq_fn fn)
{
	return add_iq(m, type, false, ns, fn);
}

int module_account_iq(struct module *m, enum iq_type type, const char *ns, iq_fn fn)
{
	return add_iq(m, type, true, ns, fn);
}

void iq_remove(struct vhost *vh, const struct module *m)
{
	for (struct iq_entry **pp = &vh->iqs; *pp;) {
		struct iq_entry *e = *pp;

		if (e->m == m) {
			*pp = e->next;
			free(e->ns);
			free(e);
		} else {
			pp = &e->next;
		}
	}
}

/* The core's side of struct iq: what it needs to answer and free it. */
struct iq_impl {
	struct iq pub;
	struct jid *from, *to;
	struct iq_origin origin;	/* send NULL: answers go through the router */
	char *address;
};

static int dispatch(struct vhost *vh, bool account, struct xml_node *stanza,
		    const struct jid *from, const struct jid *to,
		    const struct iq_origin *origin)
{
	const char *type = xml_attr(stanza, "type");
	struct xml_node *payload = xml_child(stanza, NULL, NULL);
	enum iq_type t;
	struct iq_impl *q;

	if (!payload || !payload->ns || !type)
		return -1;
	if (strcmp(type, "get") == 0)
		t = IQ_GET;
	else if (strcmp(type, "set") == 0)
		t = IQ_SET;
	else
		return -1;
	for (struct iq_entry *e = vh->iqs; e; e = e->next) {
		if (e->type != t || e->account != account || strcmp(e->ns, payload->ns) != 0)
			continue;
		q = calloc(1, sizeof(*q));
		if (!q)
			return -1;
		q->from = from ? jid_copy(from) : NULL;
		q->to = jid_copy(to);
		if ((from && !q->from) || !q->to) {
			jid_free(q->from);
			jid_free(q->to);
			free(q);
			return -1;
		}
		if (origin) {
			q->origin = *origin;
			q->address = origin->address ? strdup(origin->address) : NULL;
			q->pub.address = q->address;
		}
		q->pub.m = e->m;
		q->pub.stanza = xml_ref(stanza);
		q->pub.payload = payload;
		q->pub.from = q->from;
		q->pub.to = q->to;
		q->pub.type = t;
		/* -1 means the handler did not answer (and will not). */
		if (e->fn(&q->pub) < 0)
			iq_error(&q->pub, "internal-server-error", NULL);
		return 0;
	}
	return -1;
}

int iq_dispatch(struct vhost *vh, bool account, struct xml_node *stanza,
		const struct jid *from, const struct jid *to)
{
	return dispatch(vh, account, stanza, from, to, NULL);
}

int iq_dispatch_unbound(struct vhost *vh, struct xml_node *stanza, const struct jid *to,
			const struct iq_origin *origin)
{
	const struct xml_node *payload = xml_child(stanza, NULL, NULL);

	/* Before authentication only in-band registration answers (module.h). */
	if (!payload || !payload->ns || strcmp(payload->ns, "jabber:iq:register") != 0)
		return -1;
	return dispatch(vh, false, stanza, NULL, to, origin);
}

static void iq_free(struct iq_impl *q)
{
	if (q->origin.release)
		q->origin.release(q->origin.ctx);
	free(q->address);
	xml_unref(q->pub.stanza);
	jid_free(q->from);
	jid_free(q->to);
	free(q);
}

/* Answers go out from the address the request went to. */
static void iq_send(struct iq_impl *q, struct xml_node *answer)
{
	if (answer && q->origin.send) {
		xml_attr_set(answer, "from", q->to->full);
		xml_attr_set(answer, "to", NULL);
		q->origin.send(q->origin.ctx, answer);
	} else if (answer && q->from) {
		xml_attr_set(answer, "from", q->to->full);
		xml_attr_set(answer, "to", q->from->full);
		router_route(answer);
	} else {
		xml_unref(answer);
	}
	iq_free(q);
}

int iq_reply(struct iq *iq, struct xml_node *payload)
{
	struct iq_impl *q = (struct iq_impl *)iq;

	iq_send(q, stanza_iq_result(iq->stanza, payload));
	return 0;
}

int iq_error_app(struct iq *iq, const char *type, const char *condition, const char *text,
		 struct xml_node *app)
{
	struct iq_impl *q = (struct iq_impl *)iq;
	struct xml_node *err = stanza_error_reply(iq->stanza, type, condition, text);
	struct xml_node *e = err ? xml_child(err, "error", NULL) : NULL;

	if (e && app)
		xml_append(e, app);
	else
		xml_unref(app);
	iq_send(q, err);
	return 0;
}

int iq_error(struct iq *iq, const char *condition, const char *text)
{
	struct iq_impl *q = (struct iq_impl *)iq;
	struct xml_node *err = stanza_error_reply(iq->stanza, NULL, condition, text);

	/* An error reply carries the request's payload; for an IQ that is fine. */
	iq_send(q, err);
	return 0;
}

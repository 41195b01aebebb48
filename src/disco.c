/*
 * disco.c - what each domain advertises (XEP-0030): identities and features
 * the modules declared, for the host, its accounts and its services.
 *
 * A service answers its own disco#info from what its module declared, and
 * disco#items with nothing, unless the module registers handlers of its own
 * (a MUC service lists its rooms): that is disco_service_iq().
 */
#include "vhost.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "router.h"
#include "stanza.h"

#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"

struct disco_entry {
	struct module *m;
	bool account;
	char *category, *type, *name;	/* identity; feature: category NULL, name = var */
	struct disco_entry *next;
};

static int add_disco(struct module *m, bool account, const char *category,
		     const char *type, const char *name)
{
	struct disco_entry *e = calloc(1, sizeof(*e)), **pp;

	if (e) {
		e->category = category ? strdup(category) : NULL;
		e->type = type ? strdup(type) : NULL;
		e->name = name ? strdup(name) : NULL;
	}
	if (!e || (category && !e->category) || (type && !e->type) || (name && !e->name)) {
		if (e) {
			free(e->category);
			free(e->type);
			free(e->name);
			free(e);
		}
		log_error("modules", "%s: mod_%s: no memory for a disco entry", m->vh->name,
			  m->def->name);
		m->reg_failed = true;
		return -1;
	}
	e->m = m;
	e->account = account;
	/* Appended, so disco lists features in the order modules declared them. */
	for (pp = &m->vh->disco; *pp; pp = &(*pp)->next)
		;
	*pp = e;
	return 0;
}

int module_feature(struct module *m, const char *var)
{
	return add_disco(m, false, NULL, NULL, var);
}

int module_account_feature(struct module *m, const char *var)
{
	return add_disco(m, true, NULL, NULL, var);
}

int module_identity(struct module *m, const char *category, const char *type,
		    const char *name)
{
	return add_disco(m, false, category, type, name);
}

int module_account_identity(struct module *m, const char *category, const char *type)
{
	return add_disco(m, true, category, type, NULL);
}

void vhost_disco_info(const struct vhost *vh, bool account, struct xml_node *query)
{
	/* Identities first (XEP-0030 §3.1), each feature once. */
	for (const struct disco_entry *e = vh->disco; e; e = e->next) {
		if (!e->category || e->account != account)
			continue;
		struct xml_node *id = xml_add_child(query, "identity", NULL);

		if (!id)
			return;
		xml_attr_set(id, "category", e->category);
		xml_attr_set(id, "type", e->type);
		if (e->name)
			xml_attr_set(id, "name", e->name);
	}
	for (const struct disco_entry *e = vh->disco; e; e = e->next) {
		bool dup = false;

		if (e->category || e->account != account)
			continue;
		for (const struct disco_entry *p = vh->disco; p != e; p = p->next)
			if (!p->category && p->account == account && !strcmp(p->name, e->name))
				dup = true;
		if (dup)
			continue;
		struct xml_node *f = xml_add_child(query, "feature", NULL);

		if (!f)
			return;
		xml_attr_set(f, "var", e->name);
	}
}

void module_disco_info(const struct module *m, bool account, struct xml_node *query)
{
	vhost_disco_info(m->vh, account, query);
}

bool disco_has_identity(const struct vhost *vh)
{
	for (const struct disco_entry *e = vh->disco; e; e = e->next)
		if (e->category && !e->account)
			return true;
	return false;
}

void disco_remove(struct vhost *vh, const struct module *m)
{
	for (struct disco_entry **pp = &vh->disco; *pp;) {
		struct disco_entry *e = *pp;

		if (e->m == m) {
			*pp = e->next;
			free(e->category);
			free(e->type);
			free(e->name);
			free(e);
		} else {
			pp = &e->next;
		}
	}
}

static void add_item(const struct vhost *svc, void *arg)
{
	struct xml_node *item = xml_add_child(arg, "item", NULL);

	if (item)
		xml_attr_set(item, "jid", svc->name);
}

void module_disco_services(const struct module *m, struct xml_node *query)
{
	service_foreach(m->host, add_item, query);
}

int disco_service_iq(struct vhost *svc, struct xml_node *stanza, const struct jid *from,
		     const struct jid *to)
{
	struct xml_node *payload = xml_child(stanza, NULL, NULL), *q, *r;
	const char *type = xml_attr(stanza, "type");
	bool info;

	if (!payload || !payload->ns || !type || strcmp(type, "get") != 0 ||
	    strcmp(payload->name, "query") != 0)
		return -1;
	info = strcmp(payload->ns, NS_DISCO_INFO) == 0;
	if (!info && strcmp(payload->ns, NS_DISCO_ITEMS) != 0)
		return -1;
	if (xml_attr(payload, "node")) {
		r = stanza_error_reply(stanza, NULL, "item-not-found", "no such node");
	} else {
		q = xml_new("query", payload->ns);
		if (q && info) {
			struct xml_node *f;

			vhost_disco_info(svc, false, q);
			/* XEP-0030 §3.1: an entity that answers disco#info says so. */
			if ((f = xml_add_child(q, "feature", NULL)))
				xml_attr_set(f, "var", NS_DISCO_INFO);
			if ((f = xml_add_child(q, "feature", NULL)))
				xml_attr_set(f, "var", NS_DISCO_ITEMS);
		}
		r = q ? stanza_iq_result(stanza, q) : NULL;
	}
	if (!r)
		return 0;	/* no memory: nothing to say it with either */
	xml_attr_set(r, "from", to->full);
	xml_attr_set(r, "to", from->full);
	router_route(r);
	return 0;
}

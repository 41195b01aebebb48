/*
 * mod_disco - XEP-0030 Service Discovery.
 *
 * disco#info of the server lists the identity and the features every loaded
 * module declared; disco#info of an account (its bare JID) lists the account's
 * identity and features. disco#items of the server lists the services on its
 * subdomains (conference.HOST, upload.HOST: modules with a domain of their own,
 * which answer their own disco); of an account, nothing.
 */
#include <string.h>

#include "module.h"
#include "stanza.h"

#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"

struct options {
	const char *name;
};

static const struct module_option options[] = {
	{ "name", OPT_STRING, "Parley", 0, 0, MODULE_OPTION_AT(struct options, name),
	  "the server identity's name" },
	{ NULL },
};

static struct xml_node *info_query(const struct iq *iq)
{
	struct xml_node *q = xml_new("query", NS_DISCO_INFO);
	const char *node = xml_attr(iq->payload, "node");

	if (q && node)
		xml_attr_set(q, "node", node);
	return q;
}

static int server_info(struct iq *iq)
{
	struct xml_node *q;

	if (xml_attr(iq->payload, "node"))
		return iq_error(iq, "item-not-found", "no such node");
	q = info_query(iq);
	if (!q)
		return -1;
	module_disco_info(iq->m, false, q);
	return iq_reply(iq, q);
}

static int account_info(struct iq *iq)
{
	struct xml_node *q;

	/* Only the account itself (or, later, its presence subscribers) may look. */
	if (!jid_bare_eq(iq->from, iq->to))
		return iq_error(iq, "service-unavailable", NULL);
	if (xml_attr(iq->payload, "node"))
		return iq_error(iq, "item-not-found", "no such node");
	q = info_query(iq);
	if (!q)
		return -1;
	module_disco_info(iq->m, true, q);
	return iq_reply(iq, q);
}

static int items_of(struct iq *iq, bool server)
{
	struct xml_node *q = xml_new("query", NS_DISCO_ITEMS);

	if (!q)
		return -1;
	if (xml_attr(iq->payload, "node")) {
		xml_unref(q);
		return iq_error(iq, "item-not-found", "no such node");
	}
	/* XEP-0030 §4: the server's items are its services (conference.HOST...). */
	if (server)
		module_disco_services(iq->m, q);
	return iq_reply(iq, q);
}

static int server_items(struct iq *iq) { return items_of(iq, true); }
static int account_items(struct iq *iq) { return items_of(iq, false); }

static int load(struct module *m)
{
	const struct options *o = module_options(m);

	module_identity(m, "server", "im", o->name);
	module_feature(m, NS_DISCO_INFO);
	module_feature(m, NS_DISCO_ITEMS);
	module_account_identity(m, "account", "registered");
	module_account_feature(m, NS_DISCO_INFO);
	module_account_feature(m, NS_DISCO_ITEMS);
	/* XEP-0359 §6: the core (stanza_id.c) stamps every message to an account
	 * with a stanza-id by the account's bare JID. */
	module_account_feature(m, "urn:xmpp:sid:0");
	module_iq(m, IQ_GET, NS_DISCO_INFO, server_info);
	module_iq(m, IQ_GET, NS_DISCO_ITEMS, server_items);
	module_account_iq(m, IQ_GET, NS_DISCO_INFO, account_info);
	module_account_iq(m, IQ_GET, NS_DISCO_ITEMS, account_items);
	return 0;
}

PARLEY_MODULE(disco,
	.description = "XEP-0030: service discovery of the server and accounts",
	.options = options,
	.options_size = sizeof(struct options),
	.load = load);

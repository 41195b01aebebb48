/*
 * mod_version - XEP-0092 Software Version of the server.
 */
#include <string.h>
#include <sys/utsname.h>

#include "module.h"

#define NS_VERSION "jabber:iq:version"

static const struct module_option options[] = {
	{ "show-os", OPT_BOOL, "false", 0, 0,
	  "include the operating system (XEP-0092 §2 leaves it optional: it helps "
	  "attackers)" },
	{ "name", OPT_STRING, "Parley", 0, 0, "the software name answered" },
	{ NULL },
};

static void add_text_child(struct xml_node *parent, const char *name, const char *text)
{
	struct xml_node *c = xml_add_child(parent, name, NULL);

	if (c)
		xml_add_text(c, text, strlen(text));
}

static int on_version(struct iq *iq)
{
	struct xml_node *q = xml_new("query", NS_VERSION);
	struct utsname u;

	if (!q)
		return -1;
	add_text_child(q, "name", module_opt_str(iq->m, "name"));
	add_text_child(q, "version", PACKAGE_VERSION);
	if (module_opt_bool(iq->m, "show-os") && uname(&u) == 0)
		add_text_child(q, "os", u.sysname);
	return iq_reply(iq, q);
}

static int load(struct module *m)
{
	module_feature(m, NS_VERSION);
	module_iq(m, IQ_GET, NS_VERSION, on_version);
	return 0;
}

PARLEY_MODULE(version,
	.description = "XEP-0092: the server's software version",
	.options = options,
	.load = load);

/*
 * mod_version - XEP-0092 Software Version of the server.
 */
#include <string.h>
#include <sys/utsname.h>

#include "module.h"

#define NS_VERSION "jabber:iq:version"

struct options {
	bool show_os;
	const char *name;
};

#define AT(f) MODULE_OPTION_AT(struct options, f)
static const struct module_option options[] = {
	{ "show-os", OPT_BOOL, "false", 0, 0, AT(show_os),
	  "include the operating system (XEP-0092 §2 leaves it optional: it helps "
	  "attackers)" },
	{ "name", OPT_STRING, "Parley", 0, 0, AT(name), "the software name answered" },
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
	const struct options *o = module_options(iq->m);
	struct xml_node *q = xml_new("query", NS_VERSION);
	struct utsname u;

	if (!q)
		return -1;
	add_text_child(q, "name", o->name);
	add_text_child(q, "version", PACKAGE_VERSION);
	if (o->show_os && uname(&u) == 0)
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
	.options_size = sizeof(struct options),
	.load = load);

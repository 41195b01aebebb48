/*
 * test_component.c - external components (XEP-0114) without a network: the
 * handshake digest with the XEP's own example, its comparison, and the
 * services the configured components become (a host's subdomain or standing
 * alone, a clash with a module's domain, stanzas bounced while nothing is
 * connected, and which stanzas are not).
 *
 * A user's session is bound to a fake stream that records what it is sent, as
 * in test_router.c; no database, no socket.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "component.h"
#include "jid.h"
#include "module.h"
#include "router.h"
#include "session.h"
#include "stanza.h"
#include "stream.h"
#include "vhost.h"
#include "xml.h"

#define HOST "example.com"
#define GOT_MAX 8

/* ---- the digest ---- */

/* XEP-0114 §3, Examples 2 and 3: stream id 3BF96D32; the digest shown is that
 * of the secret "test". */
static void test_digest(void **state)
{
	char out[COMPONENT_DIGEST_LEN + 1];

	(void)state;
	component_digest("3BF96D32", "test", out);
	assert_string_equal(out, "aaee83c26aeeafcbabeabfcbcd50df997e0a2a1e");
	component_digest("3BF96D32", "secret", out);
	assert_string_equal(out, "b09ea9b3b7f586be8a08d0a3dd7466f110aeb136");
	component_digest("", "", out);	/* SHA1 of nothing */
	assert_string_equal(out, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

static void test_handshake_ok(void **state)
{
	(void)state;
	assert_true(component_handshake_ok("3BF96D32", "test",
					   "aaee83c26aeeafcbabeabfcbcd50df997e0a2a1e"));
	assert_true(component_handshake_ok("3BF96D32", "test",
					   "AAEE83C26AEEAFCBABEABFCBCD50DF997E0A2A1E"));
	assert_false(component_handshake_ok("3BF96D32", "Test",
					    "aaee83c26aeeafcbabeabfcbcd50df997e0a2a1e"));
	assert_false(component_handshake_ok("3BF96D33", "test",
					    "aaee83c26aeeafcbabeabfcbcd50df997e0a2a1e"));
	assert_false(component_handshake_ok("3BF96D32", "test",
					    "aaee83c26aeeafcbabeabfcbcd50df997e0a2a1"));
	assert_false(component_handshake_ok("3BF96D32", "test",
					    "aaee83c26aeeafcbabeabfcbcd50df997e0a2a1e0"));
	assert_false(component_handshake_ok("3BF96D32", "test", ""));
	assert_false(component_handshake_ok("3BF96D32", "test",
					    "aaee83c26aeeafcbabeabfcbcd50df997e0a2a1g"));
}

/* ---- a stream that records ---- */

struct fake {
	struct stream st;
	struct session *sess;
	struct xml_node *got[GOT_MAX];
	int n;
};

static void f_send(struct stream *st, const struct xml_node *n)
{
	struct fake *f = (struct fake *)st;

	if (f->n < GOT_MAX)
		f->got[f->n++] = xml_copy(n);
}

static void f_close(struct stream *st, const char *cond, const char *text,
		    const struct xml_node *extra)
{
	struct fake *f = (struct fake *)st;

	(void)text, (void)extra;
	if (f->sess) {
		struct session *s = f->sess;

		f->sess = NULL;
		sm_unbind(s, cond);
	}
}

static const char *f_peer(const struct stream *st) { (void)st; return "127.0.0.1"; }
static bool f_secure(const struct stream *st) { (void)st; return false; }
static size_t f_cb(const struct stream *st, const char *t, unsigned char *o, size_t m)
{
	(void)st, (void)t, (void)o, (void)m;
	return 0;
}
static void f_release(struct stream *st) { ((struct fake *)st)->sess = NULL; }
static void f_attach(struct stream *st, struct session *s) { ((struct fake *)st)->sess = s; }

static const struct stream_ops fake_ops = {
	.name = "fake", .send = f_send, .write = f_send, .close = f_close, .peer = f_peer,
	.secure = f_secure, .channel_binding = f_cb, .release = f_release, .attach = f_attach,
};

static struct fake bob;

static void fake_clear(struct fake *f)
{
	for (int i = 0; i < f->n; i++)
		xml_unref(f->got[i]);
	f->n = 0;
}

static void route(const char *xml)
{
	char err[128];
	struct xml_node *st = xml_parse(xml, strlen(xml), err, sizeof(err));

	if (!st)
		fail_msg("test stanza does not parse: %s", err);
	router_route(st);
}

static const char *error_of(const struct fake *f, int i)
{
	const struct xml_node *e = i < f->n ? xml_child(f->got[i], "error", NULL) : NULL;
	const struct xml_node *c = e ? xml_child(e, NULL, NULL) : NULL;

	return c ? c->name : "";
}

/* ---- the services ---- */

static int load_service(struct module *m)
{
	module_identity(m, "conference", "text", "Rooms");
	return 0;
}
static const struct module_def service_def = { .abi = PARLEY_MODULE_ABI, .name = "t_muc",
					       .service = "conference", .load = load_service };

static struct config_module host_mods[] = { { .name = "t_muc", .line = 2 } };
static struct config_host hosts[] = {
	{ .name = HOST, .modules = host_mods, .nmodules = 1, .line = 1 },
};
static struct config_component comps[] = {
	{ .domain = "gw." HOST, .secret = "s1", .line = 5 },
	{ .domain = "bot.example", .secret = "s2", .line = 6 },
	{ .domain = "conference." HOST, .secret = "s3", .line = 7 },
};
static struct config cfg = { .path = "test.xml", .hosts = hosts, .nhosts = 1,
			     .components = comps, .ncomponents = 2 };

static int setup(void **state)
{
	struct config_errors errs = { 0 };
	struct jid *j = jid_new("bob@" HOST "/x", NULL);

	(void)state;
	module_add_builtin(&service_def);
	if (vhosts_init(&cfg, false, &errs) < 0 || components_init(&cfg, true, &errs) < 0) {
		for (size_t i = 0; i < errs.count; i++)
			print_error("%s\n", errs.msgs[i]);
		return -1;
	}
	config_errors_free(&errs);
	bob.st.ops = &fake_ops;
	bob.sess = sm_bind(&bob.st, j);
	jid_free(j);
	return bob.sess ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	sm_unbind_all("test");
	fake_clear(&bob);
	components_free();
	vhosts_free();
	return 0;
}

static void list_service(const struct vhost *svc, void *arg)
{
	strncat(arg, svc->name, 255 - strlen(arg));
	strncat(arg, " ", 255 - strlen(arg));
}

/* gw.example.com is the host's (its disco#items list it, next to the
 * module's), bot.example stands alone; neither is a host. */
static void test_services(void **state)
{
	struct vhost *gw = service_find("gw." HOST), *bot = service_find("bot.example");
	char listed[256] = "";

	(void)state;
	assert_non_null(gw);
	assert_non_null(bot);
	assert_ptr_equal(gw->host, vhost_find(HOST));
	assert_null(bot->host);
	assert_null(vhost_find("gw." HOST));
	assert_non_null(gw->handler);
	service_foreach(vhost_find(HOST), list_service, listed);
	assert_string_equal(listed, "conference." HOST " gw." HOST " ");
	assert_ptr_equal(vhost_parent("a.b." HOST), vhost_find(HOST));
	assert_null(vhost_parent(HOST));
	assert_null(vhost_parent("x" HOST));
	assert_null(service_add_external("bot.example", NULL, gw->handler, NULL));
	assert_null(service_add_external(HOST, NULL, gw->handler, NULL));
}

/* Nothing connected: messages, IQs to the bare domain and presence come back
 * service-unavailable from where they went; errors, results and unavailable
 * presence are dropped. */
static void test_bounces(void **state)
{
	(void)state;
	route("<message xmlns='jabber:client' from='bob@" HOST "/x' to='echo@bot.example' "
	      "id='m1' type='chat'><body>hi</body></message>");
	assert_int_equal(bob.n, 1);
	assert_string_equal(error_of(&bob, 0), "service-unavailable");
	assert_string_equal(xml_attr(bob.got[0], "from"), "echo@bot.example");
	assert_string_equal(xml_attr(xml_child(bob.got[0], "error", NULL), "type"), "wait");
	fake_clear(&bob);
	route("<iq xmlns='jabber:client' from='bob@" HOST "/x' to='bot.example' id='d' "
	      "type='get'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
	assert_int_equal(bob.n, 1);
	assert_string_equal(xml_attr(bob.got[0], "type"), "error");
	assert_string_equal(error_of(&bob, 0), "service-unavailable");
	fake_clear(&bob);
	route("<presence xmlns='jabber:client' from='bob@" HOST "/x' to='gw." HOST "'/>");
	assert_string_equal(error_of(&bob, 0), "service-unavailable");
	fake_clear(&bob);
	route("<presence xmlns='jabber:client' from='bob@" HOST "/x' to='gw." HOST "' "
	      "type='unavailable'/>");
	route("<message xmlns='jabber:client' from='bob@" HOST "/x' to='echo@bot.example' "
	      "type='error'/>");
	route("<iq xmlns='jabber:client' from='bob@" HOST "/x' to='bot.example' id='r' "
	      "type='result'/>");
	assert_int_equal(bob.n, 0);
}

static void count_bounces(const struct component_info *ci, void *arg)
{
	unsigned long long *n = arg;

	assert_false(ci->connected);
	assert_string_equal(ci->address, "");
	*n += ci->bounced;
}

static void test_counters(void **state)
{
	unsigned long long n = 0;

	(void)state;
	component_foreach(count_bounces, &n);
	assert_int_equal(n, 3);
	assert_int_equal(components_connected(), 0);
	assert_int_equal(component_streams_open(), 0);
}

/* A component on the domain a module serves is a config error with its line. */
static void test_clash(void **state)
{
	struct config clash = cfg;
	struct config_errors errs = { 0 };

	(void)state;
	components_free();
	clash.ncomponents = 3;
	assert_int_equal(components_init(&clash, true, &errs), -1);
	assert_int_equal(errs.count, 1);
	assert_non_null(strstr(errs.msgs[0], "test.xml:7: <component domain=\"conference."
			       HOST "\">: that domain is served by the module t_muc"));
	config_errors_free(&errs);
	assert_non_null(service_find("gw." HOST));	/* the others are still made */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_digest),
		cmocka_unit_test(test_handshake_ok),
		cmocka_unit_test(test_services),
		cmocka_unit_test(test_bounces),
		cmocka_unit_test(test_counters),
		cmocka_unit_test(test_clash),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, setup, teardown);
}

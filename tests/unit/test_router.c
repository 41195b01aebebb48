/*
 * test_router.c - the core's decisions without a network: where the router
 * sends each kind of stanza (RFC 6121 §8.5, by type, priority and
 * availability), hook order and HOOK_STOP, IQ dispatch and its
 * service-unavailable default, services on subdomains, and the session
 * manager's add/find/replace.
 *
 * Sessions are bound to fake streams (stream.h) that record what they are
 * sent; modules are compiled in (module_add_builtin), so nothing is loaded
 * from disk and no database is needed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jid.h"
#include "module.h"
#include "router.h"
#include "server.h"
#include "session.h"
#include "stanza.h"
#include "stream.h"
#include "vhost.h"
#include "xml.h"

#define HOST "example.com"
#define GOT_MAX 16

/* ---- a stream that records ---- */

struct fake {
	struct stream st;
	struct session *sess;
	struct xml_node *got[GOT_MAX];
	int n;
	char closed[64];	/* the stream error it was closed with */
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

	(void)text;
	(void)extra;
	snprintf(f->closed, sizeof(f->closed), "%s", cond);
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

static void fake_clear(struct fake *f)
{
	for (int i = 0; i < f->n; i++)
		xml_unref(f->got[i]);
	f->n = 0;
}

static struct fake fakes[12];
static int nfakes;

/* Binds jid on a new fake stream; priority < -200: bound, no presence yet. */
static struct fake *online(const char *jid, int priority)
{
	struct fake *f = &fakes[nfakes++];
	struct jid *j = jid_new(jid, NULL);
	char buf[128];

	assert_non_null(j);
	memset(f, 0, sizeof(*f));
	f->st.ops = &fake_ops;
	f->sess = sm_bind(&f->st, j);
	assert_non_null(f->sess);
	jid_free(j);
	if (priority >= -128) {
		snprintf(buf, sizeof(buf), "<presence><priority>%d</priority></presence>",
			 priority);
		session_set_presence(f->sess, xml_parse(buf, strlen(buf), NULL, 0));
	}
	return f;
}

/* Routes xml as a stanza of jabber:client (the namespace is added here). */
static void route(const char *xml)
{
	char err[128], buf[1024];
	size_t name = strcspn(xml, " />");
	struct xml_node *st;

	snprintf(buf, sizeof(buf), "%.*s xmlns='jabber:client'%s", (int)name, xml, xml + name);
	st = xml_parse(buf, strlen(buf), err, sizeof(err));

	if (!st)
		fail_msg("test stanza does not parse: %s", err);
	router_route(st);
}

/* The error condition of the one stanza f got, or "" if it is not an error. */
static const char *error_of(const struct fake *f, int i)
{
	const struct xml_node *e = i < f->n ? xml_child(f->got[i], "error", NULL) : NULL;
	const struct xml_node *c = e ? xml_child(e, NULL, NULL) : NULL;

	return c ? c->name : "";
}

/* ---- builtin modules: a service, hooks that record, an IQ handler ---- */

static char order[64];
static int stop_at;	/* which recorder returns HOOK_STOP (0: none) */

static int rec(int id)
{
	char c[2] = { (char)('0' + id), 0 };

	strncat(order, c, sizeof(order) - strlen(order) - 1);
	return id == stop_at ? HOOK_STOP : HOOK_PASS;
}
static int rec1(struct module *m, struct hook_args *a) { (void)m, (void)a; return rec(1); }
static int rec2(struct module *m, struct hook_args *a) { (void)m, (void)a; return rec(2); }
static int rec3(struct module *m, struct hook_args *a) { (void)m, (void)a; return rec(3); }

static int answer_time(struct iq *iq) { return iq_reply(iq, NULL); }

static int load_hooks(struct module *m)
{
	module_hook(m, HOOK_USER_REMOVED, 10, rec1);
	module_hook(m, HOOK_USER_REMOVED, 50, rec2);
	module_hook(m, HOOK_USER_REMOVED, 50, rec3);	/* same priority: after rec2 */
	module_iq(m, IQ_GET, "urn:xmpp:time", answer_time);
	return 0;
}
static const struct module_def hooks_def = { .abi = PARLEY_MODULE_ABI, .name = "t_hooks",
					     .load = load_hooks };

/* The same IQ namespace again: its load must fail. */
static const struct module_def clash_def = { .abi = PARLEY_MODULE_ABI, .name = "t_clash",
					     .load = load_hooks };

static int room_stanzas;

static int on_room(struct module *m, struct xml_node *st, const struct jid *from,
		   const struct jid *to)
{
	(void)m, (void)st, (void)from;
	if (strcmp(to->local ? to->local : "", "room") != 0)
		return HOOK_PASS;
	room_stanzas++;
	return HOOK_STOP;
}

static int load_service(struct module *m)
{
	assert_string_equal(module_domain(m), "conference." HOST);
	assert_string_equal(module_host(m), HOST);
	module_identity(m, "conference", "text", "Rooms");
	module_feature(m, "http://jabber.org/protocol/muc");
	module_stanza(m, on_room);
	return 0;
}
static const struct module_def service_def = { .abi = PARLEY_MODULE_ABI, .name = "t_muc",
					       .service = "conference", .load = load_service };

/* A service that declares no identity: XEP-0030 needs one, so it fails. */
static int load_noid(struct module *m) { (void)m; return 0; }
static const struct module_def noid_def = { .abi = PARLEY_MODULE_ABI, .name = "t_noid",
					    .service = "upload", .load = load_noid };

/* ---- the host ---- */

static struct config_module host_mods[] = {
	{ .name = "t_hooks", .line = 1 }, { .name = "t_muc", .line = 2 },
};
static struct config_host hosts[] = {
	{ .name = HOST, .modules = host_mods, .nmodules = 2, .line = 1 },
};
static struct config cfg = { .path = "test.xml", .hosts = hosts, .nhosts = 1 };

static int setup(void **state)
{
	struct config_errors errs = { 0 };

	(void)state;
	server.cfg = &cfg;	/* <s2s> zeroed: federation off */
	module_add_builtin(&hooks_def);
	module_add_builtin(&service_def);
	module_add_builtin(&clash_def);
	module_add_builtin(&noid_def);
	if (vhosts_init(&cfg, false, &errs) < 0) {
		for (size_t i = 0; i < errs.count; i++)
			print_error("%s\n", errs.msgs[i]);
		return -1;
	}
	config_errors_free(&errs);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	vhosts_free();
	return 0;
}

static int unbind_all(void **state)
{
	(void)state;
	sm_unbind_all("test");
	for (int i = 0; i < nfakes; i++)
		fake_clear(&fakes[i]);
	nfakes = 0;
	return 0;
}

/* alice: a and b at priority 5, c at 1, d at -1, e bound without presence. */
static struct fake *a, *b, *c, *d, *e, *bob;

static void alice(void)
{
	a = online("alice@" HOST "/a", 5);
	b = online("alice@" HOST "/b", 5);
	c = online("alice@" HOST "/c", 1);
	d = online("alice@" HOST "/d", -1);
	e = online("alice@" HOST "/e", -999);
	bob = online("bob@" HOST "/x", 0);
}

static void counts(int na, int nb, int nc, int nd, int ne)
{
	assert_int_equal(a->n, na);
	assert_int_equal(b->n, nb);
	assert_int_equal(c->n, nc);
	assert_int_equal(d->n, nd);
	assert_int_equal(e->n, ne);
	fake_clear(a);
	fake_clear(b);
	fake_clear(c);
	fake_clear(d);
	fake_clear(e);
}

#define FROM_BOB "from='bob@" HOST "/x' "

/* §8.5.2.1.1: chat and normal to the bare JID go to the highest non-negative
 * priority (all of those on a tie); headline to every non-negative one. */
static void test_message_to_bare(void **state)
{
	(void)state;
	alice();
	route("<message " FROM_BOB "to='alice@" HOST "' type='chat'><body>1</body></message>");
	counts(1, 1, 0, 0, 0);
	route("<message " FROM_BOB "to='alice@" HOST "'><body>2</body></message>");
	counts(1, 1, 0, 0, 0);
	route("<message " FROM_BOB "to='alice@" HOST "' type='headline'><body>3</body></message>");
	counts(1, 1, 1, 0, 0);
	route("<message " FROM_BOB "to='alice@" HOST "' type='error'><body>e</body></message>");
	counts(0, 0, 0, 0, 0);
	assert_int_equal(bob->n, 0);
	/* Our stanza-id is on what was delivered (XEP-0359). */
	route("<message " FROM_BOB "to='alice@" HOST "' type='chat'><body>4</body></message>");
	assert_non_null(xml_child(a->got[0], "stanza-id", "urn:xmpp:sid:0"));
	counts(1, 1, 0, 0, 0);
}

/* groupchat to an account is never delivered: service-unavailable, for the
 * bare JID (§8.5.2.1.1) and a gone resource (§8.5.3.2.1); to an online full
 * JID it is delivered (what a room sends its occupants). */
static void test_groupchat(void **state)
{
	(void)state;
	alice();
	route("<message " FROM_BOB "to='alice@" HOST "' type='groupchat'><body>g</body></message>");
	counts(0, 0, 0, 0, 0);
	assert_int_equal(bob->n, 1);
	assert_string_equal(error_of(bob, 0), "service-unavailable");
	fake_clear(bob);
	route("<message " FROM_BOB "to='alice@" HOST "/gone' type='groupchat'><body>g</body>"
	      "</message>");
	counts(0, 0, 0, 0, 0);
	assert_string_equal(error_of(bob, 0), "service-unavailable");
	fake_clear(bob);
	route("<message " FROM_BOB "to='alice@" HOST "/c' type='groupchat'><body>g</body>"
	      "</message>");
	counts(0, 0, 1, 0, 0);
	assert_int_equal(bob->n, 0);
}

/* §8.5.3.2.1: to a gone resource, chat is treated as to the bare JID; normal
 * gets service-unavailable; headline and error are dropped. */
static void test_message_to_gone_resource(void **state)
{
	(void)state;
	alice();
	route("<message " FROM_BOB "to='alice@" HOST "/gone' type='chat'><body>c</body></message>");
	counts(1, 1, 0, 0, 0);
	route("<message " FROM_BOB "to='alice@" HOST "/gone'><body>n</body></message>");
	counts(0, 0, 0, 0, 0);
	assert_string_equal(error_of(bob, 0), "service-unavailable");
	fake_clear(bob);
	route("<message " FROM_BOB "to='alice@" HOST "/gone' type='headline'><body>h</body>"
	      "</message>");
	route("<message " FROM_BOB "to='alice@" HOST "/gone' type='error'><body>e</body>"
	      "</message>");
	counts(0, 0, 0, 0, 0);
	assert_int_equal(bob->n, 0);
	/* An exact resource gets it whatever its priority or presence. */
	route("<message " FROM_BOB "to='alice@" HOST "/d'><body>n</body></message>");
	route("<message " FROM_BOB "to='alice@" HOST "/e' type='headline'><body>h</body>"
	      "</message>");
	counts(0, 0, 0, 1, 1);
}

/* §8.5.2.2: no resource of non-negative priority and no offline store. */
static void test_message_nobody(void **state)
{
	struct fake *carol;

	(void)state;
	bob = online("bob@" HOST "/x", 0);
	carol = online("carol@" HOST "/r", -5);
	route("<message " FROM_BOB "to='carol@" HOST "'><body>n</body></message>");
	assert_int_equal(carol->n, 0);
	assert_string_equal(error_of(bob, 0), "service-unavailable");
	fake_clear(bob);
	route("<message " FROM_BOB "to='carol@" HOST "' type='headline'><body>h</body></message>");
	route("<message " FROM_BOB "to='dave@" HOST "' type='error'><body>e</body></message>");
	assert_int_equal(bob->n, 0);
	assert_int_equal(carol->n, 0);
}

/* §8.5.2.1.3 / §8.5.3: IQs to a full JID go to that resource or get
 * service-unavailable; results and errors for a gone one are dropped; IQs to a
 * bare JID or the host are the server's: a handler, or service-unavailable. */
static void test_iq(void **state)
{
	(void)state;
	alice();
	route("<iq " FROM_BOB "to='alice@" HOST "/d' type='get' id='1'><q xmlns='x'/></iq>");
	counts(0, 0, 0, 1, 0);
	route("<iq " FROM_BOB "to='alice@" HOST "/gone' type='get' id='2'><q xmlns='x'/></iq>");
	assert_string_equal(error_of(bob, 0), "service-unavailable");
	fake_clear(bob);
	route("<iq " FROM_BOB "to='alice@" HOST "/gone' type='result' id='3'/>");
	assert_int_equal(bob->n, 0);
	route("<iq " FROM_BOB "to='alice@" HOST "' type='get' id='4'><q xmlns='x'/></iq>");
	counts(0, 0, 0, 0, 0);
	assert_string_equal(error_of(bob, 0), "service-unavailable");
	fake_clear(bob);
	route("<iq " FROM_BOB "to='" HOST "' type='get' id='5'><q xmlns='nobody'/></iq>");
	assert_string_equal(error_of(bob, 0), "service-unavailable");
	fake_clear(bob);
	/* t_hooks handles urn:xmpp:time on the host. */
	route("<iq " FROM_BOB "to='" HOST "' type='get' id='6'><time xmlns='urn:xmpp:time'/>"
	      "</iq>");
	assert_int_equal(bob->n, 1);
	assert_string_equal(xml_attr(bob->got[0], "type"), "result");
	assert_string_equal(xml_attr(bob->got[0], "id"), "6");
	assert_string_equal(xml_attr(bob->got[0], "from"), HOST);
	fake_clear(bob);
	/* ...but not on accounts: account IQs are a table of their own. */
	route("<iq " FROM_BOB "to='alice@" HOST "' type='get' id='7'><time xmlns='urn:xmpp:time'/>"
	      "</iq>");
	assert_string_equal(error_of(bob, 0), "service-unavailable");
	fake_clear(bob);
}

/* §8.5.2.1.2 (without mod_presence): presence to the bare JID goes to every
 * available resource; §8.5.3.2.3: to a gone resource it is dropped, except
 * the subscription types, handled as for the bare JID. */
static void test_presence(void **state)
{
	(void)state;
	alice();
	route("<presence " FROM_BOB "to='alice@" HOST "'/>");
	counts(1, 1, 1, 1, 0);
	route("<presence " FROM_BOB "to='alice@" HOST "/gone'/>");
	counts(0, 0, 0, 0, 0);
	route("<presence " FROM_BOB "to='alice@" HOST "/gone' type='subscribe'/>");
	counts(1, 1, 1, 1, 0);
	route("<presence " FROM_BOB "to='alice@" HOST "/e'/>");
	counts(0, 0, 0, 0, 1);
	assert_int_equal(bob->n, 0);
}

static void test_remote_domain(void **state)
{
	(void)state;
	bob = online("bob@" HOST "/x", 0);
	route("<message " FROM_BOB "to='someone@elsewhere.example'><body>r</body></message>");
	assert_string_equal(error_of(bob, 0), "remote-server-not-found");
	fake_clear(bob);
}

/* A module's domain: its stanza handler for JIDs at it, the core's disco#info
 * from what it declared, service-unavailable for what nobody takes, and the
 * host's disco#items lists it. */
static void test_service(void **state)
{
	struct xml_node *q, *items;
	struct vhost *svc = service_find("conference." HOST);

	(void)state;
	assert_non_null(svc);
	assert_null(vhost_find("conference." HOST));	/* not a host: no logins */
	bob = online("bob@" HOST "/x", 0);
	room_stanzas = 0;
	route("<presence " FROM_BOB "to='room@conference." HOST "/nick'/>");
	route("<message " FROM_BOB "to='room@conference." HOST "' type='groupchat'><body>hi</body>"
	      "</message>");
	assert_int_equal(room_stanzas, 2);
	assert_int_equal(bob->n, 0);
	route("<message " FROM_BOB "to='nosuchroom@conference." HOST "'><body>x</body></message>");
	assert_string_equal(error_of(bob, 0), "service-unavailable");
	fake_clear(bob);
	route("<iq " FROM_BOB "to='conference." HOST "' type='get' id='d'>"
	      "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
	assert_int_equal(bob->n, 1);
	q = xml_child(bob->got[0], "query", "http://jabber.org/protocol/disco#info");
	assert_non_null(q);
	assert_string_equal(xml_attr(xml_child(q, "identity", NULL), "category"), "conference");
	assert_string_equal(xml_attr(xml_child(q, "feature", NULL), "var"),
			    "http://jabber.org/protocol/muc");
	fake_clear(bob);
	route("<iq " FROM_BOB "to='conference." HOST "' type='get' id='v'>"
	      "<query xmlns='jabber:iq:version'/></iq>");
	assert_string_equal(error_of(bob, 0), "service-unavailable");
	fake_clear(bob);
	/* The host lists its services (what mod_disco puts in disco#items). */
	items = xml_new("query", "http://jabber.org/protocol/disco#items");
	module_disco_services(svc->service, items);
	assert_string_equal(xml_attr(xml_child(items, "item", NULL), "jid"), "conference." HOST);
	xml_unref(items);
}

/* Higher priority first, equal ones in registration order; HOOK_STOP ends
 * the run and is what hooks_run returns. */
static void test_hooks(void **state)
{
	struct hook_args args = { 0 };

	(void)state;
	order[0] = '\0';
	stop_at = 0;
	assert_int_equal(hooks_run(HOST, HOOK_USER_REMOVED, &args), HOOK_PASS);
	assert_string_equal(order, "231");
	assert_string_equal(args.host, HOST);
	order[0] = '\0';
	stop_at = 3;
	assert_int_equal(hooks_run(HOST, HOOK_USER_REMOVED, &args), HOOK_STOP);
	assert_string_equal(order, "23");
	order[0] = '\0';
	assert_int_equal(hooks_run("other.example", HOOK_USER_REMOVED, &args), HOOK_PASS);
	assert_string_equal(order, "");
}

/* A second module for an IQ namespace the first handles fails its load, and
 * so does a service without an identity. */
static void test_registration_clash(void **state)
{
	struct config_module mods[] = { { .name = "t_hooks", .line = 3 },
					{ .name = "t_clash", .line = 4 } };
	struct config_host h[] = { { .name = "clash.example", .modules = mods, .nmodules = 2 } };
	struct config clash = { .path = "clash.xml", .hosts = h, .nhosts = 1 };
	struct config_errors errs = { 0 };

	(void)state;
	vhosts_free();
	assert_int_equal(vhosts_init(&clash, false, &errs), -1);
	assert_int_equal(errs.count, 1);
	assert_non_null(strstr(errs.msgs[0], "clash.xml:4: <module name=\"t_clash\">"));
	config_errors_free(&errs);
	vhosts_free();
	mods[1].name = "t_noid";
	assert_int_equal(vhosts_init(&clash, false, &errs), -1);
	assert_int_equal(errs.count, 1);
	assert_non_null(strstr(errs.msgs[0], "clash.xml:4: <module name=\"t_noid\">"));
	assert_non_null(service_find("upload.clash.example"));
	config_errors_free(&errs);
	vhosts_free();
	assert_int_equal(vhosts_init(&cfg, false, &errs), 0);
}

/* sm_bind adds, sm_find finds the exact resource, a second bind of the same
 * full JID closes the first with <conflict/>, and an account has at most
 * SESSION_RESOURCES_MAX resources. */
static void test_sessions(void **state)
{
	struct session *list[SESSION_RESOURCES_MAX], *s;
	struct jid *j = jid_new("zed@" HOST "/one", NULL), *bare = jid_bare(j);
	struct fake *first, *second;
	static struct fake many[SESSION_RESOURCES_MAX];
	size_t before = sm_count();

	(void)state;
	first = online("zed@" HOST "/one", 0);
	assert_ptr_equal(sm_find(j), first->sess);
	assert_int_equal(sm_user_sessions(bare, list, SESSION_RESOURCES_MAX), 1);
	second = online("zed@" HOST "/one", 0);
	assert_string_equal(first->closed, "conflict");
	assert_null(first->sess);
	assert_ptr_equal(sm_find(j), second->sess);
	assert_int_equal(sm_user_sessions(bare, list, SESSION_RESOURCES_MAX), 1);
	assert_int_equal(sm_count(), before + 1);
	for (int i = 1; i < SESSION_RESOURCES_MAX; i++) {
		char name[64];
		struct jid *r;

		snprintf(name, sizeof(name), "zed@" HOST "/r%d", i);
		r = jid_new(name, NULL);
		many[i].st.ops = &fake_ops;
		many[i].sess = sm_bind(&many[i].st, r);
		assert_non_null(many[i].sess);
		jid_free(r);
	}
	assert_int_equal(sm_user_sessions(bare, list, SESSION_RESOURCES_MAX),
			 SESSION_RESOURCES_MAX);
	jid_free(j);
	j = jid_new("zed@" HOST "/toomany", NULL);
	s = sm_bind(&many[0].st, j);
	assert_null(s);
	jid_free(j);
	jid_free(bare);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_message_to_bare, unbind_all),
		cmocka_unit_test_teardown(test_groupchat, unbind_all),
		cmocka_unit_test_teardown(test_message_to_gone_resource, unbind_all),
		cmocka_unit_test_teardown(test_message_nobody, unbind_all),
		cmocka_unit_test_teardown(test_iq, unbind_all),
		cmocka_unit_test_teardown(test_presence, unbind_all),
		cmocka_unit_test_teardown(test_remote_domain, unbind_all),
		cmocka_unit_test_teardown(test_service, unbind_all),
		cmocka_unit_test(test_hooks),
		cmocka_unit_test(test_registration_clash),
		cmocka_unit_test_teardown(test_sessions, unbind_all),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, setup, teardown);
}

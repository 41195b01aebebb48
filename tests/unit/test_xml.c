/*
 * test_xml.c - element trees: building and serializing (escaping, xmlns only
 * where it changes, invented attribute prefixes, xml:lang, stream: elements),
 * look-ups, copies, refcounts, and xml_parse() with its line numbers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xml.h"

#define NS_CLIENT "jabber:client"
#define NS_STREAMS "http://etherx.jabber.org/streams"

/* Serializes n with parent_ns, checks it against want, frees the string. */
static void check_xml(const struct xml_node *n, const char *parent_ns, const char *want)
{
	struct xml_buf b = { 0 };

	assert_int_equal(xml_serialize(n, parent_ns, &b), 0);
	assert_int_equal(xml_buf_add(&b, "", 1), 0);
	assert_string_equal(b.data, want);
	xml_buf_free(&b);
}

static struct xml_node *parse_ok(const char *doc)
{
	char err[128] = "";
	struct xml_node *n = xml_parse(doc, strlen(doc), err, sizeof(err));

	if (!n)
		fail_msg("parse failed: %s", err);
	return n;
}

static void build_and_serialize(void **state)
{
	struct xml_node *iq = xml_new("iq", NS_CLIENT), *q, *item;
	size_t len;
	char *s;

	(void)state;
	assert_non_null(iq);
	assert_int_equal(iq->refs, 1);
	assert_int_equal(xml_attr_set(iq, "type", "get"), 0);
	assert_int_equal(xml_attr_set(iq, "id", "a1"), 0);
	q = xml_add_child(iq, "query", "jabber:iq:roster");
	assert_non_null(q);
	item = xml_add_child(q, "item", NULL);	/* inherits jabber:iq:roster */
	assert_string_equal(item->ns, "jabber:iq:roster");
	assert_int_equal(xml_attr_set(item, "jid", "romeo@example.net"), 0);
	assert_int_equal(xml_add_text(xml_add_child(item, "group", NULL), "Friends", 7), 0);
	xml_add_child(q, "empty", "");		/* no namespace at all */

	s = xml_to_string(iq, &len);
	assert_non_null(s);
	assert_string_equal(s, "<iq xmlns='jabber:client' type='get' id='a1'>"
			    "<query xmlns='jabber:iq:roster'><item jid='romeo@example.net'>"
			    "<group>Friends</group></item><empty xmlns=''/></query></iq>");
	assert_int_equal(len, strlen(s));
	free(s);
	/* inside a jabber:client stream the stanza needs no xmlns */
	check_xml(iq, NS_CLIENT, "<iq type='get' id='a1'><query xmlns='jabber:iq:roster'>"
		  "<item jid='romeo@example.net'><group>Friends</group></item>"
		  "<empty xmlns=''/></query></iq>");
	/* a subtree alone: its context is only what parent_ns says */
	check_xml(item, "jabber:iq:roster",
		  "<item jid='romeo@example.net'><group>Friends</group></item>");
	xml_unref(iq);
}

#define R "\xef\xbf\xbd"	/* U+FFFD */

static void check_escape(const char *in, size_t len, bool attr, const char *want)
{
	struct xml_buf b = { 0 };

	assert_int_equal(xml_escape(&b, in, len, attr), 0);
	assert_int_equal(xml_buf_add(&b, "", 1), 0);
	assert_string_equal(b.data, want);
	xml_buf_free(&b);
}

static void escaping(void **state)
{
	struct xml_node *m = xml_new("m", NULL);

	(void)state;
	xml_attr_set(m, "a", "<&>\"'\t\n\r");
	xml_add_text(m, "<&>\"'\t\n\r", 8);
	check_xml(m, NULL, "<m a='&lt;&amp;&gt;&quot;&apos;&#9;&#10;&#13;'>"
		  "&lt;&amp;&gt;\"'\t\n&#13;</m>");
	xml_unref(m);

	/* controls XML 1.0 forbids and broken UTF-8 never go out; valid UTF-8 does */
	check_escape("a\x01" "b\x00" "c\x1f\x7f", 7, false, "a" R "b" R "c" R "\x7f");
	check_escape("|\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|", 11, true,
		     "|\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|");
	check_escape("|\xc3|\xff|", 5, false, "|" R "|" R "|");
	check_escape("\xed\xa0\x80|", 4, false, R R R "|");		/* a surrogate */
	check_escape("\xef\xbf\xbf|\xef\xbf\xbd", 7, false, R R R "|" R);	/* U+FFFF */
	check_escape("\xc0\xaf|\xe0\x80\xaf", 6, false, R R "|" R R R);	/* overlong */
	check_escape("\xf4\x90\x80\x80|\xe2\x82", 7, false, R R R R "|" R R);
}

static void namespaces_and_prefixes(void **state)
{
	struct xml_node *m = xml_new("message", NS_CLIENT), *c, *back;
	char err[128];
	char *s;

	(void)state;
	xml_attr_set(m, "to", "juliet@example.com");
	xml_attr_set_ns(m, "urn:none", "ignored", NULL);	/* removing nothing is fine */
	assert_int_equal(xml_attr_set_ns(m, XML_NS_XML, "lang", "en"), 0);
	assert_int_equal(xml_attr_set_ns(m, "urn:a", "x", "1"), 0);
	assert_int_equal(xml_attr_set_ns(m, "urn:b", "x", "2"), 0);
	assert_int_equal(xml_attr_set_ns(m, "urn:a", "y", "3"), 0);
	/* the serializer writes its own declarations: such attributes are dropped */
	assert_int_equal(xml_attr_set(m, "xmlns", "urn:evil"), 0);
	assert_int_equal(xml_attr_set_ns(m, "http://www.w3.org/2000/xmlns/", "p", "u"), 0);
	c = xml_add_child(m, "x", "urn:a");
	xml_add_child(c, "y", NS_CLIENT);
	check_xml(m, NS_CLIENT, "<message to='juliet@example.com' xml:lang='en' "
		  "xmlns:ns3='urn:a' ns3:x='1' xmlns:ns4='urn:b' ns4:x='2' ns3:y='3'>"
		  "<x xmlns='urn:a'><y xmlns='jabber:client'/></x></message>");

	/* and a parser reads back the same names */
	s = xml_to_string(m, NULL);
	back = xml_parse(s, strlen(s), err, sizeof(err));
	assert_non_null(back);
	assert_string_equal(back->ns, NS_CLIENT);
	assert_string_equal(xml_attr_ns(back, XML_NS_XML, "lang"), "en");
	assert_string_equal(xml_attr_ns(back, "urn:a", "x"), "1");
	assert_string_equal(xml_attr_ns(back, "urn:b", "x"), "2");
	assert_string_equal(xml_attr_ns(back, "urn:a", "y"), "3");
	assert_null(xml_attr(back, "x"));
	assert_null(xml_attr(back, "xmlns"));
	assert_int_equal(back->nattrs, 5);
	assert_non_null(xml_child(xml_child(back, "x", "urn:a"), "y", NS_CLIENT));
	free(s);
	xml_unref(back);
	xml_unref(m);
}

static void stream_elements(void **state)
{
	struct xml_node *f = xml_new("features", NS_STREAMS), *t, *e;

	(void)state;
	t = xml_add_child(f, "starttls", "urn:ietf:params:xml:ns:xmpp-tls");
	xml_add_child(t, "required", NULL);
	xml_add_child(f, "bind", "urn:ietf:params:xml:ns:xmpp-bind");
	/* the default namespace under stream:features is still the stream's */
	xml_add_child(f, "c", NS_CLIENT);
	e = xml_add_child(f, "inner", NULL);	/* streams ns too: prefix already bound */
	xml_add_child(e, "d", "");
	check_xml(f, NS_CLIENT, "<stream:features xmlns:stream='" NS_STREAMS "'>"
		  "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
		  "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><c/>"
		  "<stream:inner><d xmlns=''/></stream:inner></stream:features>");
	check_xml(f, NULL, "<stream:features xmlns:stream='" NS_STREAMS "'>"
		  "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
		  "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><c xmlns='jabber:client'/>"
		  "<stream:inner><d/></stream:inner></stream:features>");
	xml_unref(f);
}

static void lookups(void **state)
{
	struct xml_node *r = parse_ok("<r xmlns='urn:r' a='1' xmlns:p='urn:p' p:a='2'>"
				      "one<x n='1'/>two<p:x n='2'/><y/><x n='3'>"
				      "<t>deep</t></x>three<z xmlns=''/></r>");
	struct xml_node *c;
	char *s;
	int n = 0;

	(void)state;
	assert_string_equal(xml_attr(r, "a"), "1");
	assert_string_equal(xml_attr_ns(r, "urn:p", "a"), "2");
	assert_string_equal(xml_attr_ns(r, NULL, "a"), "1");
	assert_null(xml_attr(r, "b"));
	assert_null(xml_attr(NULL, "a"));

	c = xml_child(r, "x", NULL);
	assert_string_equal(xml_attr(c, "n"), "1");
	c = xml_next(c, "x", NULL);
	assert_string_equal(xml_attr(c, "n"), "2");
	assert_string_equal(c->ns, "urn:p");
	c = xml_next(c, "x", NULL);
	assert_string_equal(xml_attr(c, "n"), "3");
	assert_null(xml_next(c, "x", NULL));
	assert_string_equal(xml_attr(xml_child(r, "x", "urn:p"), "n"), "2");
	assert_string_equal(xml_attr(xml_child(r, "x", "urn:r"), "n"), "1");
	assert_null(xml_child(r, "x", "urn:none"));
	assert_non_null(xml_child(r, "z", ""));		/* "" is "no namespace" */
	assert_null(xml_child(r, "y", ""));
	assert_string_equal(xml_child(r, NULL, NULL)->name, "x");
	xml_foreach(c, r, "x", "urn:r")
		n++;
	assert_int_equal(n, 2);
	n = 0;
	xml_foreach(c, r, NULL, NULL)
		n++;
	assert_int_equal(n, 5);

	s = xml_text(r);
	assert_string_equal(s, "onetwothree");
	free(s);
	s = xml_child_text(xml_next(xml_child(r, "x", "urn:r"), "x", "urn:r"), "t", NULL);
	assert_string_equal(s, "deep");
	free(s);
	s = xml_text(xml_child(r, "y", NULL));
	assert_string_equal(s, "");
	free(s);
	assert_null(xml_child_text(r, "nothere", NULL));

	/* set replaces, NULL removes */
	assert_int_equal(xml_attr_set(r, "a", "one"), 0);
	assert_string_equal(xml_attr(r, "a"), "one");
	assert_int_equal(xml_attr_set(r, "a", NULL), 0);
	assert_null(xml_attr(r, "a"));
	assert_string_equal(xml_attr_ns(r, "urn:p", "a"), "2");
	assert_int_equal(r->nattrs, 1);
	xml_unref(r);
}

static void text_append_detach(void **state)
{
	struct xml_node *b = xml_new("body", NULL), *x, *t;

	(void)state;
	assert_int_equal(xml_add_text(b, "ab", 2), 0);
	assert_int_equal(xml_add_text(b, "cd", 2), 0);
	assert_ptr_equal(b->children, b->last_child);	/* merged */
	assert_int_equal(b->children->text_len, 4);
	x = xml_add_child(b, "x", NULL);
	assert_int_equal(xml_add_text(b, "e", 1), 0);
	t = xml_text_new("f\0g", 3);	/* text may hold any bytes; NUL comes out as U+FFFD */
	xml_append(b, t);
	check_xml(b, NULL, "<body>abcd<x/>ef\xef\xbf\xbdg</body>");
	xml_detach(x);
	assert_null(x->parent);
	assert_int_equal(x->refs, 1);
	check_xml(b, NULL, "<body>abcdef\xef\xbf\xbdg</body>");
	xml_detach(t);
	assert_ptr_equal(b->last_child->next, NULL);
	check_xml(b, NULL, "<body>abcde</body>");
	xml_append(b, x);
	check_xml(b, NULL, "<body>abcde<x/></body>");
	xml_unref(t);
	xml_unref(b);
}

static void copy_and_refcount(void **state)
{
	struct xml_node *orig = parse_ok("<a xmlns='urn:a' k='v' xml:lang='fr'>\n"
					 "<b xmlns:q='urn:q' q:z='1'>t&amp;t</b><c/></a>");
	struct xml_node *cp, *r;
	char *s1, *s2;

	(void)state;
	cp = xml_copy(orig);
	assert_non_null(cp);
	assert_ptr_not_equal(cp, orig);
	assert_null(cp->parent);
	assert_int_equal(cp->refs, 1);
	assert_int_equal(xml_child(cp, "b", NULL)->line, 2);
	s1 = xml_to_string(orig, NULL);
	s2 = xml_to_string(cp, NULL);
	assert_string_equal(s1, s2);
	free(s2);
	/* the copy is independent */
	xml_attr_set(cp, "k", "changed");
	xml_add_text(xml_child(cp, "b", NULL), "more", 4);
	s2 = xml_to_string(orig, NULL);
	assert_string_equal(s1, s2);
	free(s1);
	free(s2);
	/* a subtree copies to a root of its own */
	r = xml_copy(xml_child(orig, "b", NULL));
	assert_null(r->parent);
	assert_null(r->next);
	check_xml(r, "urn:a", "<b xmlns:ns1='urn:q' ns1:z='1'>t&amp;t</b>");
	xml_unref(r);
	xml_unref(cp);

	r = xml_ref(orig);
	assert_ptr_equal(r, orig);
	assert_int_equal(orig->refs, 2);
	xml_unref(orig);
	assert_int_equal(orig->refs, 1);
	assert_string_equal(orig->name, "a");	/* still alive (valgrind would say) */
	xml_unref(orig);
	xml_unref(NULL);
}

/* Trees deeper than any stack: every walk is a loop. */
static void deep_tree(void **state)
{
	enum { DEPTH = 100000 };
	struct xml_node *root = xml_new("d", NULL), *n = root, *cp;
	size_t len;
	char *s;

	(void)state;
	for (int i = 1; i < DEPTH; i++) {
		n = xml_add_child(n, "d", i % 2 ? "urn:odd" : "");
		assert_non_null(n);
	}
	xml_add_text(n, "x", 1);
	cp = xml_copy(root);
	assert_non_null(cp);
	s = xml_to_string(cp, &len);
	assert_non_null(s);
	assert_memory_equal(s, "<d><d xmlns='urn:odd'><d xmlns=''>", 34);
	assert_memory_equal(s + len - 8, "</d></d>", 8);
	free(s);
	xml_unref(cp);
	xml_unref(root);
}

static void parse_lines(void **state)
{
	const char *doc =
		"<?xml version='1.0' encoding='UTF-8'?>\n"
		"<!-- a comment -->\n"
		"<parley xmlns='urn:parley:config'>\n"
		"  <?some pi?>\n"
		"  <host name='example.com'>\n"
		"    <module name='ping'/><!-- skipped -->\n"
		"  </host>\n"
		"  <log level='info'>text &lt;here&gt;</log>\n"
		"</parley>\n";
	struct xml_node *root = parse_ok(doc), *h, *m, *l;
	char *s;

	(void)state;
	assert_string_equal(root->name, "parley");
	assert_string_equal(root->ns, "urn:parley:config");
	assert_int_equal(root->line, 3);
	h = xml_child(root, "host", NULL);
	assert_int_equal(h->line, 5);
	m = xml_child(h, "module", "urn:parley:config");
	assert_int_equal(m->line, 6);
	assert_string_equal(xml_attr(m, "name"), "ping");
	l = xml_child(root, "log", NULL);
	assert_int_equal(l->line, 8);
	s = xml_text(l);
	assert_string_equal(s, "text <here>");
	free(s);
	/* comments and PIs left no trace, only whitespace text */
	for (struct xml_node *c = h->children; c; c = c->next)
		assert_true(c->type == XML_ELEMENT || strspn(c->text, " \n") == c->text_len);
	xml_unref(root);
}

static void parse_errors(void **state)
{
	static const struct {
		const char *doc, *err;
	} cases[] = {
		{ "<a>\n<b>\n</a>", "3: mismatched tag" },
		{ "", "1: no element found" },
		{ "<a>\n", "2: no element found" },
		{ "<a/>\n<b/>", "2: junk after document element" },
		{ "<!DOCTYPE a [\n<!ENTITY e 'x'>]>\n<a>&e;</a>",
		  "1: a DTD (<!DOCTYPE>) is not allowed" },
		{ "<a>\n\n<p:b/></a>", "3: unbound prefix" },
		{ "<a>&nope;</a>", "1: undefined entity" },
		{ "<a x='1' x='2'/>", "1: duplicate attribute" },
	};
	char err[128];
	char tiny[4];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		strcpy(err, "unset");
		assert_null(xml_parse(cases[i].doc, strlen(cases[i].doc), err, sizeof(err)));
		assert_string_equal(err, cases[i].err);
	}
	/* a short buffer is truncated, never overrun */
	assert_null(xml_parse("<a>", 3, tiny, sizeof(tiny)));
	assert_string_equal(tiny, "1: ");
	assert_null(xml_parse("<a>", 3, NULL, 0));
}

/* What the serializer writes, the parser reads back to the same tree. */
static void round_trip(void **state)
{
	const char *doc = "<message xmlns='jabber:client' to='a@b/c' type='chat' "
			  "xml:lang='en' id='&apos;&quot;&lt;&amp;'>"
			  "<body>hi &amp; bye &lt;3 \xe2\x9c\x93</body>"
			  "<x xmlns='jabber:x:data' type='form'><field var='a'>"
			  "<value>1</value></field></x><s:t xmlns:s='urn:s' s:k='v'/>"
			  "<stream:error xmlns:stream='" NS_STREAMS "'><e xmlns='urn:e'/>"
			  "</stream:error><![CDATA[<raw>]]></message>";
	struct xml_node *a = parse_ok(doc), *b;
	char *s1, *s2;

	(void)state;
	s1 = xml_to_string(a, NULL);
	b = parse_ok(s1);
	s2 = xml_to_string(b, NULL);
	assert_string_equal(s1, s2);
	assert_string_equal(s1, "<message xmlns='jabber:client' to='a@b/c' type='chat' "
			    "xml:lang='en' id='&apos;&quot;&lt;&amp;'>"
			    "<body>hi &amp; bye &lt;3 \xe2\x9c\x93</body>"
			    "<x xmlns='jabber:x:data' type='form'><field var='a'>"
			    "<value>1</value></field></x>"
			    "<t xmlns='urn:s' xmlns:ns1='urn:s' ns1:k='v'/>"
			    "<stream:error xmlns:stream='" NS_STREAMS "'><e xmlns='urn:e'/>"
			    "</stream:error>&lt;raw&gt;</message>");
	free(s1);
	free(s2);
	xml_unref(a);
	xml_unref(b);
}

static void null_safety(void **state)
{
	(void)state;
	assert_null(xml_add_child(NULL, "a", NULL));
	assert_int_equal(xml_add_text(NULL, "a", 1), -1);
	assert_int_equal(xml_attr_set(NULL, "a", "b"), -1);
	assert_null(xml_child(NULL, NULL, NULL));
	assert_null(xml_next(NULL, NULL, NULL));
	assert_null(xml_copy(NULL));
	assert_null(xml_text(NULL));
	assert_null(xml_new(NULL, NULL));
	xml_append(NULL, NULL);
	xml_detach(NULL);
	xml_buf_free(NULL);
}

/* The bytes of a root with 'to' put back where it goes. */
static char *with_to(const struct xml_bytes *b, const char *to)
{
	size_t n = b->len + strlen(to) + 8;
	char *s = malloc(n);

	assert_non_null(s);
	snprintf(s, n, "%.*s to='%s'%.*s", (int)b->head, b->data, to,
		 (int)(b->len - b->head), b->data + b->head);
	return s;
}

/* xml_bytes: serialized once without 'to', kept, shared, dropped on change. */
static void shared_bytes(void **state)
{
	struct xml_node *m = parse_ok("<message xmlns='jabber:client' from='r@c/n' "
				      "to='old@h' type='groupchat'><body>a &amp; b</body>"
				      "</message>");
	struct xml_bytes *a, *b, *c;
	char *s;

	(void)state;
	a = xml_bytes(m, NS_CLIENT);
	assert_non_null(a);
	assert_int_equal(a->head, strlen("<message"));
	s = with_to(a, "u@h/r");
	assert_string_equal(s, "<message to='u@h/r' from='r@c/n' type='groupchat'>"
			    "<body>a &amp; b</body></message>");
	free(s);
	b = xml_bytes(m, NS_CLIENT);	/* the same bytes, not made again */
	assert_ptr_equal(a, b);
	xml_bytes_unref(b);
	c = xml_bytes(m, "jabber:server");	/* another stream's namespace */
	assert_ptr_not_equal(a, c);
	assert_non_null(strstr(c->data, "xmlns='jabber:client'"));
	xml_bytes_unref(c);
	/* a change anywhere in the tree drops them: new bytes say it */
	xml_add_text(xml_child(m, "body", NULL), "!", 1);
	b = xml_bytes(m, NS_CLIENT);
	assert_ptr_not_equal(a, b);
	assert_non_null(strstr(b->data, "a &amp; b!"));
	assert_null(strstr(a->data, "b!"));	/* the old ones live while held */
	xml_bytes_unref(a);
	xml_attr_set(m, "type", "chat");
	a = xml_bytes(m, NS_CLIENT);
	assert_non_null(strstr(a->data, "type='chat'"));
	xml_bytes_unref(a);
	xml_bytes_unref(b);
	assert_null(xml_bytes(xml_child(m, "body", NULL), NS_CLIENT));	/* roots only */
	xml_unref(m);	/* frees the kept bytes too (valgrind/ASan) */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(build_and_serialize),
		cmocka_unit_test(escaping),
		cmocka_unit_test(namespaces_and_prefixes),
		cmocka_unit_test(stream_elements),
		cmocka_unit_test(lookups),
		cmocka_unit_test(text_append_detach),
		cmocka_unit_test(copy_and_refcount),
		cmocka_unit_test(deep_tree),
		cmocka_unit_test(parse_lines),
		cmocka_unit_test(parse_errors),
		cmocka_unit_test(round_trip),
		cmocka_unit_test(null_safety),
		cmocka_unit_test(shared_bytes),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

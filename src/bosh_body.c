/*
 * bosh_body.c - one BOSH request body, parsed and checked (bosh_body.h).
 *
 * The body is whole in memory (HTTP gave it), so it is parsed in one go, but
 * the limits are still checked as expat reports each element: a body of 200 KB
 * of nested tags is refused at the first element past the depth limit, not
 * after building a tree 100,000 levels deep.
 */
#include "bosh_body.h"

#include <expat.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NS_CLIENT "jabber:client"
#define BODY_QNAME NS_HTTPBIND "\x01" "body"
/* Bounds on the wrapper's strings: none of them needs more. */
#define ATTR_MAX 1024

struct parse {
	XML_Parser p;
	const struct bosh_body_limits *lim;
	struct xml_node *root, *cur;
	struct xml_buf text;		/* text not yet attached to cur */
	unsigned depth;			/* open elements; the <body/> is 1 */
	size_t payloads;
	const char *why;		/* set: stop */
};

static void fail(struct parse *ps, const char *why)
{
	if (ps->why)
		return;
	ps->why = why;
	XML_StopParser(ps->p, XML_FALSE);
}

static void flush_text(struct parse *ps)
{
	if (ps->text.len && ps->cur && xml_add_text(ps->cur, ps->text.data, ps->text.len) < 0)
		fail(ps, "out of memory");
	ps->text.len = 0;
}

/* XEP-0206 §2: a payload written without its own xmlns is in the wrapper's
 * namespace, and means jabber:client. */
static int fix_ns(struct xml_node *n)
{
	char *ns;

	if (!n->ns || strcmp(n->ns, NS_HTTPBIND) != 0)
		return 0;
	if (!(ns = strdup(NS_CLIENT)))
		return -1;
	free(n->ns);
	n->ns = ns;
	return 0;
}

static void on_start(void *ud, const char *qname, const char **atts)
{
	struct parse *ps = ud;
	struct xml_node *n;
	unsigned count = 0;

	if (ps->why)
		return;
	while (atts[2 * count])
		count++;
	if (count > ps->lim->max_attrs) {
		fail(ps, "an element has too many attributes");
		return;
	}
	if (ps->depth == 0 && strcmp(qname, BODY_QNAME) != 0) {
		fail(ps, "the root element is not <body/> in " NS_HTTPBIND);
		return;
	}
	/* a payload is level 1 of its own depth */
	if (ps->depth > ps->lim->max_depth) {
		fail(ps, "elements nested too deep");
		return;
	}
	flush_text(ps);
	n = xml_new_expat(qname, atts, count);
	if (!n || (ps->depth > 0 && fix_ns(n) < 0)) {
		xml_unref(n);
		fail(ps, "out of memory");
		return;
	}
	if (ps->depth == 0) {
		ps->root = n;
	} else {
		xml_append(ps->cur, n);
		if (ps->depth == 1)
			ps->payloads++;
	}
	ps->cur = n;
	ps->depth++;
}

static void on_end(void *ud, const char *qname)
{
	struct parse *ps = ud;

	(void)qname;
	if (ps->why)
		return;
	flush_text(ps);
	ps->cur = ps->cur->parent;
	ps->depth--;
}

static void on_text(void *ud, const char *s, int len)
{
	struct parse *ps = ud;

	if (ps->why)
		return;
	if (ps->depth > 1) {
		if (xml_buf_add(&ps->text, s, (size_t)len) < 0)
			fail(ps, "out of memory");
		return;
	}
	/* XEP-0124 §4: the wrapper holds elements, no character data */
	for (int i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') {
			fail(ps, "text directly inside <body/>");
			return;
		}
}

static void on_xml_decl(void *ud, const char *version, const char *encoding, int standalone)
{
	(void)version;
	(void)standalone;
	/* the parser was told UTF-8 and would ignore the declaration: refuse it */
	if (encoding && strcasecmp(encoding, "UTF-8") != 0)
		fail(ud, "only UTF-8 is supported");
}

static void on_comment(void *ud, const char *data)
{
	(void)data;
	fail(ud, "comments are not allowed");
}

static void on_pi(void *ud, const char *target, const char *data)
{
	(void)target;
	(void)data;
	fail(ud, "processing instructions are not allowed");
}

static void on_doctype(void *ud, const char *name, const char *sysid, const char *pubid,
		       int has_internal_subset)
{
	(void)name;
	(void)sysid;
	(void)pubid;
	(void)has_internal_subset;
	fail(ud, "document type declarations are not allowed");
}

static void on_entity_decl(void *ud, const char *name, int is_pe, const char *value,
			   int value_len, const char *base, const char *sysid,
			   const char *pubid, const char *notation)
{
	(void)name;
	(void)is_pe;
	(void)value;
	(void)value_len;
	(void)base;
	(void)sysid;
	(void)pubid;
	(void)notation;
	fail(ud, "entity declarations are not allowed");
}

/* ---- the wrapper's attributes ---- */

/* A decimal number 0..max, nothing else (no sign, no space). */
static int uint_of(const char *s, unsigned long long max, unsigned long long *out)
{
	unsigned long long v = 0;

	if (!s || !*s || strlen(s) > 20)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (unsigned long long)(*s - '0');
		if (v > max)
			return -1;
	}
	*out = v;
	return 0;
}

/* Optional seconds or counts: -1 when absent. */
static int small_of(const char *s, long *out)
{
	unsigned long long v;

	*out = -1;
	if (!s)
		return 0;
	if (uint_of(s, 1000000, &v) < 0)
		return -1;
	*out = (long)v;
	return 0;
}

/* Printable ASCII only: 'content' becomes an HTTP header, the others are
 * compared or echoed. */
static bool printable(const char *s)
{
	if (!s)
		return true;
	if (strlen(s) > ATTR_MAX)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

static int ver_of(const char *s, int *major, int *minor)
{
	unsigned long long a, b;
	const char *dot;
	char buf[24];

	*major = *minor = -1;
	if (!s)
		return 0;
	dot = strchr(s, '.');
	if (!dot || (size_t)(dot - s) >= sizeof(buf))
		return -1;
	memcpy(buf, s, (size_t)(dot - s));
	buf[dot - s] = '\0';
	if (uint_of(buf, 1000, &a) < 0 || uint_of(dot + 1, 1000, &b) < 0)
		return -1;
	*major = (int)a;
	*minor = (int)b;
	return 0;
}

static int bool_of(const char *s, bool *out)
{
	*out = false;
	if (!s || !strcmp(s, "false") || !strcmp(s, "0"))
		return 0;
	if (!strcmp(s, "true") || !strcmp(s, "1")) {
		*out = true;
		return 0;
	}
	return -1;
}

static const char *read_attrs(struct bosh_body *b)
{
	const struct xml_node *r = b->root;
	const char *type = xml_attr(r, "type");
	unsigned long long v;

	if (uint_of(xml_attr(r, "rid"), BOSH_RID_MAX, &b->rid) < 0 || b->rid == 0)
		return "'rid' is missing or not a number from 1 to 2^53-1";
	b->sid = xml_attr(r, "sid");
	b->to = xml_attr(r, "to");
	b->route = xml_attr(r, "route");
	b->content = xml_attr(r, "content");
	b->key = xml_attr(r, "key");
	b->newkey = xml_attr(r, "newkey");
	b->lang = xml_attr_ns(r, XML_NS_XML, "lang");
	b->version = xml_attr_ns(r, NS_XBOSH, "version");
	if (!printable(b->sid) || !printable(b->to) || !printable(b->route) ||
	    !printable(b->content) || !printable(b->key) || !printable(b->newkey) ||
	    !printable(b->lang) || !printable(b->version))
		return "an attribute of <body/> is too long or not printable ASCII";
	if (b->sid && !*b->sid)
		return "'sid' is empty";
	b->ack = -1;
	if (xml_attr(r, "ack")) {
		if (uint_of(xml_attr(r, "ack"), BOSH_RID_MAX, &v) < 0)
			return "'ack' is not a number";
		b->ack = (long long)v;
	}
	if (small_of(xml_attr(r, "wait"), &b->wait) < 0 ||
	    small_of(xml_attr(r, "hold"), &b->hold) < 0 ||
	    small_of(xml_attr(r, "pause"), &b->pause) < 0)
		return "'wait', 'hold' or 'pause' is not a number";
	if (ver_of(xml_attr(r, "ver"), &b->ver_major, &b->ver_minor) < 0)
		return "'ver' is not MAJOR.MINOR";
	if (bool_of(xml_attr_ns(r, NS_XBOSH, "restart"), &b->restart) < 0)
		return "'xmpp:restart' is not a boolean";
	/* XEP-0124 §17.3: 'error' is the other value; a client has no use for it */
	if (type && strcmp(type, "terminate") != 0 && strcmp(type, "error") != 0)
		return "'type' is neither 'terminate' nor 'error'";
	b->terminate = type && strcmp(type, "terminate") == 0;
	return NULL;
}

int bosh_body_parse(const char *data, size_t len, const struct bosh_body_limits *lim,
		    struct bosh_body *b, const char **why)
{
	struct parse ps = { .lim = lim };
	enum XML_Status st = XML_STATUS_OK;

	memset(b, 0, sizeof(*b));
	if (len > lim->max_bytes) {
		*why = "the body is too large";
		return -1;
	}
	/* UTF-8 forced, as for streams (RFC 6120 §11.6) */
	if (!(ps.p = XML_ParserCreateNS("UTF-8", XML_NS_SEP))) {
		*why = "out of memory";
		return -1;
	}
	XML_SetUserData(ps.p, &ps);
	XML_SetElementHandler(ps.p, on_start, on_end);
	XML_SetCharacterDataHandler(ps.p, on_text);
	XML_SetXmlDeclHandler(ps.p, on_xml_decl);
	XML_SetCommentHandler(ps.p, on_comment);
	XML_SetProcessingInstructionHandler(ps.p, on_pi);
	XML_SetStartDoctypeDeclHandler(ps.p, on_doctype);
	XML_SetEntityDeclHandler(ps.p, on_entity_decl);
	/* expat takes an int length; max_bytes is far below that, but say so */
	if (len > INT32_MAX)
		ps.why = "the body is too large";
	else
		st = XML_Parse(ps.p, data, (int)len, XML_TRUE);
	if (!ps.why && st != XML_STATUS_OK)
		ps.why = XML_GetErrorCode(ps.p) == XML_ERROR_NO_MEMORY ? "out of memory" :
			 "the body is not well-formed XML";
	if (!ps.why && !ps.root)
		ps.why = "the body is empty";
	XML_ParserFree(ps.p);
	xml_buf_free(&ps.text);
	b->root = ps.root;
	b->payloads = ps.payloads;
	if (!ps.why)
		ps.why = read_attrs(b);
	if (ps.why) {
		bosh_body_free(b);
		*why = ps.why;
		return -1;
	}
	return 0;
}

void bosh_body_free(struct bosh_body *b)
{
	xml_unref(b->root);
	memset(b, 0, sizeof(*b));
}

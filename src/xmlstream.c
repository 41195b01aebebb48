/*
 * xmlstream.c - the incremental parser for one XMPP stream: expat with namespace
 * processing, turned into open / stanza / close events, with RFC 6120 §11
 * restricted XML refused and the limits on size, depth and attributes checked as
 * the bytes come in.
 *
 * Bytes reach expat in slices, never more than SLICE at a time and never past the
 * first '>'. Two things follow from that:
 *  - the byte count of the unit being parsed (the stream header with what came
 *    before it, a stanza, or a partial tag between stanzas) is checked after every
 *    slice, and a slice never takes it further than one byte past the limit, so an
 *    endless attribute value is refused after max_stanza + 1 bytes, not buffered;
 *  - every event that reaches a callback is a tag, and a tag ends at '>', so it
 *    ends exactly where the slice ends: when a callback calls xmlstream_stop()
 *    the parser has consumed nothing beyond the event, and feed() can return that
 *    count while the parser stays usable (no suspend/resume bookkeeping): c2s
 *    stops while it waits for an answer, then feeds the rest to the same stream.
 *
 * A reset inside a callback also stops: the bytes after the event belong to the
 * new stream, and the caller feeds them again. The old parser is still running
 * then, so it is freed only when its XML_Parse() has returned.
 */
#include "xmlstream.h"
#include "xmlarena.h"

#include <expat.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* expat joins "URI" SEP "local": a byte XML 1.0 forbids cannot be in either. */
#define NS_SEP XML_NS_SEP
#define STREAM_QNAME XMLSTREAM_NS_STREAMS "\x01stream"
#define SLICE 1024
/* The text buffer of an idle stream is freed above this size. */
#define TEXT_KEEP 1024

#define DEFAULT_MAX_STANZA 65536
#define DEFAULT_MAX_DEPTH 64
#define DEFAULT_MAX_ATTRS 64

struct xmlstream {
	struct xmlstream_limits lim;
	struct xmlstream_callbacks cb;
	void *arg;

	XML_Parser p;		/* parses the next bytes */
	XML_Parser running;	/* inside XML_Parse() right now, if any */
	XML_Parser retired;	/* replaced by a reset while running: freed after */
	bool in_feed, stopped, failed;

	/* per stream (cleared by a reset) */
	bool opened;		/* the header has been delivered */
	unsigned depth;		/* open elements, the stream header included */
	char *default_ns;	/* declared on the stream header */
	struct xml_node *stanza;	/* being built; cur is its open element */
	struct xml_node *cur;
	struct xml_buf text;	/* text not yet attached to cur */
	uint64_t fed;		/* bytes given to p */
	uint64_t mark;		/* where the unit being parsed began (see top) */

	/* The header's namespace declarations, for xmlstream_compact(): a new
	 * parser gets them back from a synthetic header. */
	struct ns_decl *decls;
	char *root_prefix;	/* the prefix of <stream>, NULL: none known */
	bool replaying;		/* the synthetic header is being parsed */
};

struct ns_decl {
	char *prefix;		/* NULL: the default namespace */
	char *uri;
	struct ns_decl *next;
};

/* ---- errors ---- */

static void drop_stanza(struct xmlstream *xs)
{
	xml_unref(xs->stanza);
	xs->stanza = xs->cur = NULL;
	xml_buf_free(&xs->text);
}

/* The stream is broken: stop expat, tell the owner once. */
static void fail(struct xmlstream *xs, enum xmlstream_error err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail(struct xmlstream *xs, enum xmlstream_error err, const char *fmt, ...)
{
	char text[200];
	va_list ap;

	if (xs->failed)
		return;
	xs->failed = true;
	if (xs->running)
		XML_StopParser(xs->running, XML_FALSE);
	drop_stanza(xs);
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (xs->cb.error)
		xs->cb.error(xs->arg, err, text);
}

/* Handlers do nothing once the stream failed, or when the parser calling them
 * was replaced by a reset inside a callback (its remaining events are stale). */
static bool ignoring(const struct xmlstream *xs)
{
	return xs->failed || xs->retired;
}

static uint64_t event_end(XML_Parser p)
{
	return (uint64_t)XML_GetCurrentByteIndex(p) + (uint64_t)XML_GetCurrentByteCount(p);
}

/* expat stopped on its own: map its reason to the RFC condition. */
static void expat_failed(struct xmlstream *xs, XML_Parser p)
{
	enum XML_Error code = XML_GetErrorCode(p);
	enum xmlstream_error err;

	switch (code) {
	case XML_ERROR_NO_MEMORY:
		fail(xs, XMLSTREAM_NO_MEMORY, "out of memory");
		return;
	case XML_ERROR_UNDEFINED_ENTITY:
		/* only the five predefined entities exist without a DTD */
		err = XMLSTREAM_RESTRICTED_XML;
		break;
	case XML_ERROR_UNKNOWN_ENCODING:
	case XML_ERROR_INCORRECT_ENCODING:
		err = XMLSTREAM_UNSUPPORTED_ENCODING;
		break;
	default:
		err = XMLSTREAM_NOT_WELL_FORMED;
		break;
	}
	fail(xs, err, "%s at line %lu, column %lu", XML_ErrorString(code),
	     (unsigned long)XML_GetCurrentLineNumber(p),
	     (unsigned long)XML_GetCurrentColumnNumber(p));
}

/* ---- building trees ---- */

static int flush_text(struct xmlstream *xs)
{
	int r = 0;

	if (xs->text.len && xs->cur)
		r = xml_add_text(xs->cur, xs->text.data, xs->text.len);
	xs->text.len = 0;
	return r;
}

/* ---- expat handlers ---- */

static void open_stream(struct xmlstream *xs, const char *qname, const char **atts,
			unsigned count)
{
	XML_Parser p = xs->running;
	uint64_t end = event_end(p);
	struct xml_node *h;

	if (end > xs->lim.max_stanza) {
		fail(xs, XMLSTREAM_POLICY_VIOLATION, "stream header larger than %zu bytes",
		     xs->lim.max_stanza);
		return;
	}
	if (strcmp(qname, STREAM_QNAME) != 0) {
		fail(xs, XMLSTREAM_INVALID_NAMESPACE, "the root element must be <stream> in "
		     "the namespace " XMLSTREAM_NS_STREAMS);
		return;
	}
	if (count > xs->lim.max_attrs) {
		fail(xs, XMLSTREAM_POLICY_VIOLATION,
		     "stream header with more than %u attributes", xs->lim.max_attrs);
		return;
	}
	h = xml_new_expat(qname, atts, count);
	if (!h) {
		fail(xs, XMLSTREAM_NO_MEMORY, "out of memory");
		return;
	}
	h->line = (unsigned)XML_GetCurrentLineNumber(p);
	xs->depth = 1;
	xs->opened = true;
	xs->mark = end;
	if (xs->cb.open)
		xs->cb.open(xs->arg, h, xs->default_ns);
	else
		xml_unref(h);
}

static void on_start(void *ud, const char *qname, const char **atts)
{
	struct xmlstream *xs = ud;
	XML_Parser p = xs->running;
	struct xml_node *n;
	unsigned count = 0;

	if (ignoring(xs))
		return;
	while (atts[2 * count])
		count++;
	if (xs->depth == 0) {
		if (xs->replaying) {
			xs->depth = 1;	/* the synthetic header: nothing to report */
			return;
		}
		open_stream(xs, qname, atts, count);
		return;
	}
	/* the new element's level inside the stanza: the stanza itself is 1 */
	if (xs->depth > xs->lim.max_depth) {
		fail(xs, XMLSTREAM_POLICY_VIOLATION, "elements nested deeper than %u levels",
		     xs->lim.max_depth);
		return;
	}
	if (count > xs->lim.max_attrs) {
		fail(xs, XMLSTREAM_POLICY_VIOLATION, "element with more than %u attributes",
		     xs->lim.max_attrs);
		return;
	}
	if (xs->depth == 1)
		xs->mark = (uint64_t)XML_GetCurrentByteIndex(p);
	else if (flush_text(xs) < 0)
		goto nomem;
	n = xml_new_expat(qname, atts, count);
	if (!n)
		goto nomem;
	n->line = (unsigned)XML_GetCurrentLineNumber(p);
	if (xs->depth == 1)
		xs->stanza = n;
	else
		xml_append(xs->cur, n);
	xs->cur = n;
	xs->depth++;
	return;
nomem:
	fail(xs, XMLSTREAM_NO_MEMORY, "out of memory");
}

static void on_end(void *ud, const char *qname)
{
	struct xmlstream *xs = ud;
	XML_Parser p = xs->running;
	struct xml_node *st;
	uint64_t end;

	(void)qname;
	if (ignoring(xs))
		return;
	end = event_end(p);
	if (xs->depth == 1) {
		/* </stream:stream> */
		xs->depth = 0;
		xs->mark = end;
		if (xs->cb.close)
			xs->cb.close(xs->arg);
		return;
	}
	if (flush_text(xs) < 0) {
		fail(xs, XMLSTREAM_NO_MEMORY, "out of memory");
		return;
	}
	if (--xs->depth > 1) {
		xs->cur = xs->cur->parent;
		return;
	}
	/* slices can take a stanza one byte past the limit: check it whole */
	if (end - xs->mark > xs->lim.max_stanza) {
		fail(xs, XMLSTREAM_POLICY_VIOLATION, "stanza larger than %zu bytes",
		     xs->lim.max_stanza);
		return;
	}
	st = xs->stanza;
	xs->stanza = xs->cur = NULL;
	xs->mark = end;
	if (xs->text.cap > TEXT_KEEP)
		xml_buf_free(&xs->text);
	if (xs->cb.stanza)
		xs->cb.stanza(xs->arg, st);
	else
		xml_unref(st);
}

static void on_text(void *ud, const char *s, int len)
{
	struct xmlstream *xs = ud;

	if (ignoring(xs))
		return;
	if (xs->depth > 1) {
		if (xml_buf_add(&xs->text, s, (size_t)len) < 0)
			fail(xs, XMLSTREAM_NO_MEMORY, "out of memory");
		return;
	}
	/* between stanzas: whitespace keepalives only */
	for (int i = 0; i < len; i++) {
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') {
			fail(xs, XMLSTREAM_BAD_FORMAT, "text outside of any stanza");
			return;
		}
	}
	xs->mark = event_end(xs->running);
}

/* Bounded by the header's attribute limit (each declaration is one). */
static int record_decl(struct xmlstream *xs, const char *prefix, const char *uri)
{
	struct ns_decl *d = calloc(1, sizeof(*d));
	unsigned n = 0;

	for (struct ns_decl *e = xs->decls; e; e = e->next)
		n++;
	if (n >= xs->lim.max_attrs) {
		free(d);
		return 0;	/* open_stream refuses such a header anyway */
	}
	if (!d || (prefix && !(d->prefix = strdup(prefix))) ||
	    !(d->uri = strdup(uri ? uri : ""))) {
		if (d)
			free(d->prefix);
		free(d);
		return -1;
	}
	d->next = xs->decls;
	xs->decls = d;
	return 0;
}

static void free_decls(struct xmlstream *xs)
{
	while (xs->decls) {
		struct ns_decl *d = xs->decls;

		xs->decls = d->next;
		free(d->prefix);
		free(d->uri);
		free(d);
	}
	free(xs->root_prefix);
	xs->root_prefix = NULL;
}

static void on_ns_decl(void *ud, const char *prefix, const char *uri)
{
	struct xmlstream *xs = ud;

	if (ignoring(xs) || xs->depth != 0 || xs->replaying)
		return;
	if (record_decl(xs, prefix, uri) < 0) {
		fail(xs, XMLSTREAM_NO_MEMORY, "out of memory");
		return;
	}
	/* of the header's own, only the default namespace matters to the owner */
	if (prefix)
		return;
	free(xs->default_ns);
	xs->default_ns = NULL;
	if (uri && !(xs->default_ns = strdup(uri)))
		fail(xs, XMLSTREAM_NO_MEMORY, "out of memory");
}

static void on_xml_decl(void *ud, const char *version, const char *encoding,
			int standalone)
{
	struct xmlstream *xs = ud;

	(void)version;
	(void)standalone;
	/* the parser was told UTF-8 and would ignore the declaration: refuse it */
	if (!ignoring(xs) && encoding && strcasecmp(encoding, "UTF-8") != 0)
		fail(xs, XMLSTREAM_UNSUPPORTED_ENCODING,
		     "encoding %.40s is not supported, only UTF-8", encoding);
}

static void on_comment(void *ud, const char *data)
{
	(void)data;
	if (!ignoring(ud))
		fail(ud, XMLSTREAM_RESTRICTED_XML, "comments are not allowed");
}

static void on_pi(void *ud, const char *target, const char *data)
{
	(void)target;
	(void)data;
	if (!ignoring(ud))
		fail(ud, XMLSTREAM_RESTRICTED_XML, "processing instructions are not allowed");
}

static void on_doctype(void *ud, const char *name, const char *sysid, const char *pubid,
		       int has_internal_subset)
{
	(void)name;
	(void)sysid;
	(void)pubid;
	(void)has_internal_subset;
	if (!ignoring(ud))
		fail(ud, XMLSTREAM_RESTRICTED_XML, "document type declarations are not allowed");
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
	if (!ignoring(ud))
		fail(ud, XMLSTREAM_RESTRICTED_XML, "entity declarations are not allowed");
}

static XML_Parser new_parser(struct xmlstream *xs)
{
	/* UTF-8 forced: RFC 6120 §11.6; a declared other encoding is refused above */
	XML_Parser p = xmlarena_parser_new("UTF-8", NS_SEP);

	if (!p)
		return NULL;
	XML_SetUserData(p, xs);
	XML_SetElementHandler(p, on_start, on_end);
	XML_SetCharacterDataHandler(p, on_text);
	XML_SetStartNamespaceDeclHandler(p, on_ns_decl);
	XML_SetXmlDeclHandler(p, on_xml_decl);
	XML_SetCommentHandler(p, on_comment);
	XML_SetProcessingInstructionHandler(p, on_pi);
	XML_SetStartDoctypeDeclHandler(p, on_doctype);
	XML_SetEntityDeclHandler(p, on_entity_decl);
#if XML_MAJOR_VERSION > 2 || (XML_MAJOR_VERSION == 2 && XML_MINOR_VERSION >= 6)
	/* events must come as soon as their bytes are in, not when more arrive */
	XML_SetReparseDeferralEnabled(p, XML_FALSE);
#endif
	return p;
}

/*
 * expat picks UTF-16 from the first two bytes (a BOM, or a zero byte), even when
 * told UTF-8. Neither 0x00 nor 0xFE/0xFF can be among the first two bytes of a
 * UTF-8 document: refuse them before expat sees them. The first byte always goes
 * to expat alone, so that what it decides from it (an invalid token, say) does
 * not depend on whether the second byte came in the same read.
 */
static bool utf8_start(struct xmlstream *xs, const char *s, size_t n)
{
	for (uint64_t i = xs->fed; i < 2 && i - xs->fed < n; i++) {
		unsigned char c = (unsigned char)s[i - xs->fed];

		if (c == 0x00 || c == 0xFE || c == 0xFF) {
			fail(xs, XMLSTREAM_UNSUPPORTED_ENCODING, "only UTF-8 is supported");
			return false;
		}
	}
	return true;
}

/* ---- the interface ---- */

struct xmlstream *xmlstream_new(const struct xmlstream_limits *limits,
				const struct xmlstream_callbacks *cb, void *arg)
{
	struct xmlstream *xs = calloc(1, sizeof(*xs));

	if (!xs)
		return NULL;
	if (limits)
		xs->lim = *limits;
	/* zero means "not set": a stream without limits is not an option */
	if (!xs->lim.max_stanza)
		xs->lim.max_stanza = DEFAULT_MAX_STANZA;
	if (!xs->lim.max_depth)
		xs->lim.max_depth = DEFAULT_MAX_DEPTH;
	if (!xs->lim.max_attrs)
		xs->lim.max_attrs = DEFAULT_MAX_ATTRS;
	if (cb)
		xs->cb = *cb;
	xs->arg = arg;
	xs->p = new_parser(xs);
	if (!xs->p) {
		free(xs);
		return NULL;
	}
	return xs;
}

static void clear_stream(struct xmlstream *xs)
{
	drop_stanza(xs);
	free(xs->default_ns);
	xs->default_ns = NULL;
	free_decls(xs);
	xs->opened = false;
	xs->depth = 0;
	xs->fed = xs->mark = 0;
}

void xmlstream_free(struct xmlstream *xs)
{
	if (!xs)
		return;
	clear_stream(xs);
	xmlarena_parser_free(xs->p);
	xmlarena_parser_free(xs->retired);
	free(xs);
}

/* Appends s to the buffer as an attribute value between single quotes. */
static int add_attr_value(struct xml_buf *b, const char *s)
{
	for (; *s; s++) {
		const char *esc = *s == '\'' ? "&apos;" : *s == '&' ? "&amp;" : *s == '<' ?
			"&lt;" : NULL;

		if (xml_buf_add(b, esc ? esc : s, esc ? strlen(esc) : 1) < 0)
			return -1;
	}
	return 0;
}

static int add_str(struct xml_buf *b, const char *s)
{
	return xml_buf_add(b, s, strlen(s));
}

/*
 * The prefix the peer's <stream> element used, told from the header's
 * declarations: "" when the streams namespace is the default one, the one prefix
 * bound to it otherwise; NULL when that is ambiguous (then no compaction).
 */
static const char *root_prefix(const struct xmlstream *xs)
{
	const char *found = NULL;
	unsigned n = 0;

	for (const struct ns_decl *d = xs->decls; d; d = d->next) {
		if (strcmp(d->uri, XMLSTREAM_NS_STREAMS) != 0)
			continue;
		found = d->prefix ? d->prefix : "";
		n++;
	}
	return n == 1 ? found : NULL;
}

bool xmlstream_between(const struct xmlstream *xs)
{
	return xs && !xs->failed && xs->opened && xs->depth == 1 && !xs->stanza &&
	       xs->fed == xs->mark;
}

bool xmlstream_compact(struct xmlstream *xs)
{
	if (!xs || !xs->p || xs->failed || xs->in_feed || !xs->opened || xs->depth != 1 ||
	    xs->stanza || xs->fed != xs->mark || xs->text.len)
		return false;	/* mid-stanza, or expat holds bytes of a token */
	if (!xs->root_prefix) {
		const char *rp = root_prefix(xs);

		if (!rp || !(xs->root_prefix = strdup(rp)))
			return false;
	}
	xmlarena_parser_free(xs->p);
	xs->p = NULL;
	xml_buf_free(&xs->text);
	return true;
}

/* A compacted stream gets a parser again: a synthetic header with the same
 * declarations puts it back in the state after the real one. */
static int revive(struct xmlstream *xs)
{
	struct xml_buf h = { 0 };
	XML_Parser p = new_parser(xs);
	enum XML_Status st = XML_STATUS_ERROR;
	bool ok;

	if (!p)
		return -1;
	ok = add_str(&h, "<") == 0 && (!*xs->root_prefix || (add_str(&h, xs->root_prefix) == 0
	     && add_str(&h, ":") == 0)) && add_str(&h, "stream") == 0;
	for (const struct ns_decl *d = xs->decls; ok && d; d = d->next)
		ok = add_str(&h, d->prefix ? " xmlns:" : " xmlns") == 0 &&
		     (!d->prefix || add_str(&h, d->prefix) == 0) && add_str(&h, "='") == 0 &&
		     add_attr_value(&h, d->uri) == 0 && add_str(&h, "'") == 0;
	ok = ok && add_str(&h, ">") == 0;
	if (ok) {
		xs->replaying = true;
		xs->depth = 0;
		void *outer = xmlarena_enter(p);

		xs->running = p;
		st = XML_Parse(p, h.data, (int)h.len, XML_FALSE);
		xs->running = NULL;
		xmlarena_leave(outer);
		xs->replaying = false;
	}
	if (!ok || st != XML_STATUS_OK || xs->depth != 1 || xs->failed) {
		xml_buf_free(&h);
		xmlarena_parser_free(p);
		xs->depth = 1;
		return -1;
	}
	/* Offsets are the new parser's: limits count from the end of the header. */
	xs->fed = xs->mark = h.len;
	xs->p = p;
	xml_buf_free(&h);
	return 0;
}

ssize_t xmlstream_feed(struct xmlstream *xs, const char *data, size_t len)
{
	size_t done = 0;

	/* feed() from inside one of its own callbacks is not supported */
	if (!xs || xs->failed || xs->in_feed)
		return -1;
	if (!xs->p && len && revive(xs) < 0) {
		fail(xs, XMLSTREAM_NO_MEMORY, "cannot restore the stream's parser");
		return -1;
	}
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	xs->in_feed = true;
	xs->stopped = false;
	while (done < len && !xs->stopped) {
		uint64_t unit = xs->fed - xs->mark;
		size_t n = len - done;
		size_t room = unit < xs->lim.max_stanza ? xs->lim.max_stanza - unit + 1 : 1;
		const char *gt;
		XML_Parser p = xs->p;
		enum XML_Status st;

		if (n > SLICE)
			n = SLICE;
		if (n > room)
			n = room;
		gt = memchr(data + done, '>', n);
		if (gt)
			n = (size_t)(gt - (data + done)) + 1;
		if (xs->fed == 0)
			n = 1;	/* see utf8_start() */
		if (xs->fed < 2 && !utf8_start(xs, data + done, n))
			break;
		void *outer = xmlarena_enter(p);

		xs->running = p;
		st = XML_Parse(p, data + done, (int)n, XML_FALSE);
		xs->running = NULL;
		xmlarena_leave(outer);
		if (xs->retired) {
			/* reset() in a callback: the event ended this slice; the rest
			 * is for the new parser, once the caller feeds it again */
			xmlarena_parser_free(xs->retired);
			xs->retired = NULL;
			if (!xs->failed)
				done += n;
			break;
		}
		if (xs->failed)
			break;
		if (st != XML_STATUS_OK) {
			expat_failed(xs, p);
			break;
		}
		xs->fed += n;
		done += n;
		if (xs->fed - xs->mark > xs->lim.max_stanza) {
			fail(xs, XMLSTREAM_POLICY_VIOLATION, "%s larger than %zu bytes",
			     xs->opened ? "stanza" : "stream header", xs->lim.max_stanza);
			break;
		}
	}
	xs->in_feed = false;
	return xs->failed ? -1 : (ssize_t)done;
}

void xmlstream_stop(struct xmlstream *xs)
{
	/* outside feed() there is nothing to stop */
	if (xs && xs->in_feed)
		xs->stopped = true;
}

int xmlstream_reset(struct xmlstream *xs)
{
	XML_Parser np;

	if (!xs || xs->failed)
		return -1;
	np = new_parser(xs);
	if (!np) {
		/* the caller hears it from the return value, not the error callback */
		xs->failed = true;
		if (xs->running)
			XML_StopParser(xs->running, XML_FALSE);
		clear_stream(xs);
		return -1;
	}
	if (xs->running && xs->p == xs->running) {
		/* expat is inside this parser, in our handler: free it after */
		XML_StopParser(xs->p, XML_FALSE);
		xs->retired = xs->p;
		xs->stopped = true;
	} else {
		xmlarena_parser_free(xs->p);
	}
	xs->p = np;
	clear_stream(xs);
	return 0;
}

const char *xmlstream_error_condition(enum xmlstream_error err)
{
	switch (err) {
	case XMLSTREAM_OK:
		break;
	case XMLSTREAM_NOT_WELL_FORMED:
		return "not-well-formed";
	case XMLSTREAM_RESTRICTED_XML:
		return "restricted-xml";
	case XMLSTREAM_POLICY_VIOLATION:
		return "policy-violation";
	case XMLSTREAM_INVALID_NAMESPACE:
		return "invalid-namespace";
	case XMLSTREAM_BAD_FORMAT:
		return "bad-format";
	case XMLSTREAM_UNSUPPORTED_ENCODING:
		return "unsupported-encoding";
	case XMLSTREAM_NO_MEMORY:
		return "internal-server-error";
	}
	return "undefined-condition";
}

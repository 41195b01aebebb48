/*
 * scan.c - the bench's XML reader (see scan.h). The scanner only counts
 * depth, so its whole state is three numbers; the cursor reads an element's
 * tags again when a caller looks inside. Comments and processing
 * instructions are skipped, CDATA counts as text.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scan.h"
#include "util.h"

#define MAX_STANZA	(1u << 20)	/* a server element larger than this is an error */

enum tag_kind { TAG_OPEN, TAG_EMPTY, TAG_CLOSE, TAG_SKIP, TAG_BAD };

/*
 * The end of the markup at p (a '<'), or NULL when it is not all in [p, end)
 * yet. Quotes are honoured because '>' may stand unescaped in an attribute.
 * A DOCTYPE is TAG_BAD: RFC 6120 §11.1 forbids it.
 */
static const char *tag_end(const char *p, const char *end, enum tag_kind *kind)
{
	const char *q;
	char quote = 0;

	if (end - p < 2)
		return NULL;
	if (p[1] == '?') {
		q = memmem(p + 2, (size_t)(end - p - 2), "?>", 2);
		*kind = TAG_SKIP;
		return q ? q + 2 : NULL;
	}
	if (p[1] == '!') {
		if (end - p < 4)
			return NULL;
		if (p[2] == '-' && p[3] == '-') {
			q = memmem(p + 4, (size_t)(end - p - 4), "-->", 3);
			*kind = TAG_SKIP;
			return q ? q + 3 : NULL;
		}
		if (end - p < 9)
			return NULL;
		if (memcmp(p, "<![CDATA[", 9) == 0) {
			q = memmem(p + 9, (size_t)(end - p - 9), "]]>", 3);
			*kind = TAG_SKIP;
			return q ? q + 3 : NULL;
		}
		*kind = TAG_BAD;
		return p;
	}
	*kind = TAG_OPEN;
	q = p + 1;
	if (*q == '/') {
		*kind = TAG_CLOSE;
		q++;
	}
	for (; q < end; q++) {
		char c = *q;

		if (quote) {
			if (c == quote)
				quote = 0;
		} else if (c == '"' || c == '\'') {
			quote = c;
		} else if (c == '>') {
			if (*kind == TAG_OPEN && q[-1] == '/')
				*kind = TAG_EMPTY;
			return q + 1;
		} else if (c == '<') {
			*kind = TAG_BAD;
			return p;
		}
	}
	return NULL;
}

enum scan_ev scan_next(struct scan *s, const char *buf, size_t len, const char **tp,
		       size_t *tlen)
{
	const char *end = buf + len;

	for (;;) {
		const char *p = buf + s->pos, *lt, *te;
		enum tag_kind k;

		if (s->depth >= 2 && s->pos - s->start > MAX_STANZA)
			return SCAN_ERROR;
		lt = memchr(p, '<', (size_t)(end - p));
		if (!lt) {
			s->pos = (uint32_t)len;
			return SCAN_MORE;
		}
		te = tag_end(lt, end, &k);
		if (!te) {
			s->pos = (uint32_t)(lt - buf);
			return (size_t)(end - lt) > MAX_STANZA ? SCAN_ERROR : SCAN_MORE;
		}
		if (k == TAG_BAD)
			return SCAN_ERROR;
		s->pos = (uint32_t)(te - buf);
		switch (k) {
		case TAG_SKIP:
			break;
		case TAG_OPEN:
			if (s->depth == 0) {
				s->depth = 1;
				*tp = lt;
				*tlen = (size_t)(te - lt);
				return SCAN_HEADER;
			}
			if (s->depth == 1)
				s->start = (uint32_t)(lt - buf);
			s->depth++;
			break;
		case TAG_EMPTY:
			if (s->depth == 0)
				return SCAN_ERROR;
			if (s->depth == 1) {
				*tp = lt;
				*tlen = (size_t)(te - lt);
				return SCAN_STANZA;
			}
			break;
		case TAG_CLOSE:
			if (s->depth == 0)
				return SCAN_ERROR;
			if (--s->depth == 0)
				return SCAN_CLOSE;
			if (s->depth == 1) {
				*tp = buf + s->start;
				*tlen = (size_t)(te - *tp);
				return SCAN_STANZA;
			}
			break;
		default:
			return SCAN_ERROR;
		}
	}
}

/* ---- reading one element in place ---- */

static int el_head(struct el *e, const char *p, const char *te, enum tag_kind k)
{
	const char *q = p + 1, *colon = NULL;

	e->p = p;
	e->qname = q;
	while (q < te && !is_space(*q) && *q != '/' && *q != '>') {
		if (*q == ':')
			colon = q;
		q++;
	}
	e->qname_len = (size_t)(q - e->qname);
	if (!e->qname_len)
		return -1;
	e->name = colon ? colon + 1 : e->qname;
	e->name_len = (size_t)(q - e->name);
	e->attrs = q;
	e->stag_end = te;
	e->body_end = te;
	e->end = te;
	(void)k;
	return 0;
}

int el_header(struct el *e, const char *p, size_t len)
{
	const char *te;
	enum tag_kind k;

	te = tag_end(p, p + len, &k);
	return !te || el_head(e, p, te, k) < 0 ? -1 : 0;
}

/* As the scanner cut it, the element's end tag is its last markup. */
int el_top(struct el *e, const char *p, size_t len)
{
	const char *end = p + len, *te, *lt;
	enum tag_kind k;

	te = tag_end(p, end, &k);
	if (!te || (k != TAG_OPEN && k != TAG_EMPTY) || el_head(e, p, te, k) < 0)
		return -1;
	if (k == TAG_OPEN) {
		lt = memrchr(te, '<', (size_t)(end - te));
		if (!lt)
			return -1;
		e->body_end = lt;
		e->end = end;
	}
	return 0;
}

/* The element whose start tag is at p, read up to its end tag within lim. */
static int el_parse(struct el *e, const char *p, const char *lim)
{
	const char *te, *q;
	enum tag_kind k;
	unsigned depth = 1;

	te = tag_end(p, lim, &k);
	if (!te || (k != TAG_OPEN && k != TAG_EMPTY) || el_head(e, p, te, k) < 0)
		return -1;
	if (k == TAG_EMPTY)
		return 0;
	for (q = te; q < lim;) {
		const char *lt = memchr(q, '<', (size_t)(lim - q)), *t2;

		if (!lt)
			return -1;
		t2 = tag_end(lt, lim, &k);
		if (!t2 || k == TAG_BAD)
			return -1;
		if (k == TAG_OPEN) {
			depth++;
		} else if (k == TAG_CLOSE && --depth == 0) {
			e->body_end = lt;
			e->end = t2;
			return 0;
		}
		q = t2;
	}
	return -1;
}

int el_next_child(const struct el *parent, struct el *c)
{
	const char *q = c->p ? c->end : parent->stag_end;

	while (q < parent->body_end) {
		const char *lt = memchr(q, '<', (size_t)(parent->body_end - q)), *te;
		enum tag_kind k;

		if (!lt)
			return 0;
		te = tag_end(lt, parent->body_end, &k);
		if (!te || k == TAG_BAD || k == TAG_CLOSE)
			return -1;
		if (k == TAG_SKIP) {
			q = te;
			continue;
		}
		return el_parse(c, lt, parent->body_end) < 0 ? -1 : 1;
	}
	return 0;
}

bool el_find_child(const struct el *parent, const char *name, const char *ns,
		   struct el *c)
{
	memset(c, 0, sizeof(*c));
	while (el_next_child(parent, c) > 0)
		if (el_is(c, name, ns))
			return true;
	return false;
}

bool el_attr_next(struct attr_cur *a, const char **n, size_t *nl, const char **v,
		  size_t *vl)
{
	const char *p = a->p, *end = a->end, *q;
	char qc;

	while (p < end && is_space(*p))
		p++;
	if (p >= end || *p == '/' || *p == '>')
		return false;
	*n = p;
	while (p < end && *p != '=' && !is_space(*p))
		p++;
	*nl = (size_t)(p - *n);
	while (p < end && is_space(*p))
		p++;
	if (p >= end || *p != '=')
		return false;
	p++;
	while (p < end && is_space(*p))
		p++;
	if (p >= end || (*p != '\'' && *p != '"'))
		return false;
	qc = *p++;
	q = memchr(p, qc, (size_t)(end - p));
	if (!q)
		return false;
	*v = p;
	*vl = (size_t)(q - p);
	a->p = q + 1;
	return true;
}

bool el_attr(const struct el *e, const char *name, const char **v, size_t *vl)
{
	struct attr_cur a = { e->attrs, e->stag_end };
	size_t len = strlen(name), nl;
	const char *n;

	while (el_attr_next(&a, &n, &nl, v, vl))
		if (nl == len && memcmp(n, name, len) == 0)
			return true;
	return false;
}

bool el_attr_is(const struct el *e, const char *name, const char *val)
{
	const char *v;
	size_t vl;

	return el_attr(e, name, &v, &vl) && mem_is(v, vl, val);
}

bool el_is(const struct el *e, const char *name, const char *ns)
{
	const char *v;
	size_t vl;

	if (!mem_is(e->name, e->name_len, name))
		return false;
	if (!ns || !el_attr(e, "xmlns", &v, &vl))
		return true;
	return mem_is(v, vl, ns);
}

static int text_put(char *out, size_t cap, size_t *n, const char *s, size_t len)
{
	if (*n + len >= cap)
		return -1;
	memcpy(out + *n, s, len);
	*n += len;
	return 0;
}

/* Decodes the entity at p ('&') into out; returns what it consumed, 0 if bad. */
static size_t entity(const char *p, const char *end, char *out, size_t cap, size_t *n)
{
	const char *semi = memchr(p, ';', (size_t)(end - p));
	size_t len;
	char u[4];
	unsigned long cp;
	char *stop;

	if (!semi)
		return 0;
	len = (size_t)(semi - p) + 1;
	if (mem_is(p, len, "&lt;"))
		return text_put(out, cap, n, "<", 1) < 0 ? 0 : len;
	if (mem_is(p, len, "&gt;"))
		return text_put(out, cap, n, ">", 1) < 0 ? 0 : len;
	if (mem_is(p, len, "&amp;"))
		return text_put(out, cap, n, "&", 1) < 0 ? 0 : len;
	if (mem_is(p, len, "&apos;"))
		return text_put(out, cap, n, "'", 1) < 0 ? 0 : len;
	if (mem_is(p, len, "&quot;"))
		return text_put(out, cap, n, "\"", 1) < 0 ? 0 : len;
	if (len < 4 || p[1] != '#')
		return 0;
	if (p[2] == 'x')
		cp = strtoul(p + 3, &stop, 16);
	else
		cp = strtoul(p + 2, &stop, 10);
	if (stop != semi || cp == 0 || cp > 0x10FFFF)
		return 0;
	if (cp < 0x80) {
		u[0] = (char)cp;
		return text_put(out, cap, n, u, 1) < 0 ? 0 : len;
	}
	if (cp < 0x800) {
		u[0] = (char)(0xC0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 63));
		return text_put(out, cap, n, u, 2) < 0 ? 0 : len;
	}
	if (cp < 0x10000) {
		u[0] = (char)(0xE0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 63));
		u[2] = (char)(0x80 | (cp & 63));
		return text_put(out, cap, n, u, 3) < 0 ? 0 : len;
	}
	u[0] = (char)(0xF0 | (cp >> 18));
	u[1] = (char)(0x80 | ((cp >> 12) & 63));
	u[2] = (char)(0x80 | ((cp >> 6) & 63));
	u[3] = (char)(0x80 | (cp & 63));
	return text_put(out, cap, n, u, 4) < 0 ? 0 : len;
}

ssize_t el_text(const struct el *e, char *out, size_t cap)
{
	const char *p = e->stag_end, *end = e->body_end;
	size_t n = 0;

	if (!cap)
		return -1;
	while (p < end) {
		const char *q = p;

		while (q < end && *q != '<' && *q != '&')
			q++;
		if (text_put(out, cap, &n, p, (size_t)(q - p)) < 0)
			return -1;
		p = q;
		if (p >= end)
			break;
		if (*p == '&') {
			size_t used = entity(p, end, out, cap, &n);

			if (!used)
				return -1;
			p += used;
		} else {
			enum tag_kind k;
			const char *te = tag_end(p, end, &k);
			struct el c;

			if (!te || k == TAG_BAD || k == TAG_CLOSE)
				return -1;
			if (k == TAG_SKIP) {
				if (memcmp(p, "<![CDATA[", 9) == 0 &&
				    text_put(out, cap, &n, p + 9, (size_t)(te - 3 - p - 9)) < 0)
					return -1;
				p = te;
				continue;
			}
			if (el_parse(&c, p, end) < 0)
				return -1;
			p = c.end;
		}
	}
	out[n] = '\0';
	return (ssize_t)n;
}

void el_condition(const struct el *e, char *out, size_t cap)
{
	struct el c = { 0 };

	snprintf(out, cap, "(none)");
	while (el_next_child(e, &c) > 0) {
		if (mem_is(c.name, c.name_len, "text"))
			continue;
		snprintf(out, cap, "%.*s", (int)c.name_len, c.name);
		return;
	}
}

/* ---- writing ---- */

char *put_attr_raw(char *p, const char *limit, const char *v, size_t vl)
{
	for (size_t i = 0; i < vl && p + 6 < limit; i++) {
		if (v[i] == '\'')
			p = put_mem(p, "&apos;", 6);
		else
			*p++ = v[i];
	}
	return p;
}

int xml_escape(const char *s, char *out, size_t cap)
{
	size_t n = 0;

	for (; *s; s++) {
		const char *rep = NULL;
		char one[2] = { *s, 0 };

		switch (*s) {
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '&': rep = "&amp;"; break;
		case '\'': rep = "&apos;"; break;
		case '"': rep = "&quot;"; break;
		default: rep = one; break;
		}
		if (text_put(out, cap, &n, rep, strlen(rep)) < 0)
			return -1;
	}
	out[n] = '\0';
	return 0;
}

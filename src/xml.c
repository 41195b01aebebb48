/*
 * xml.c - element trees: building, look-up, refcounting, deep copies, the
 * serializer, and xml_parse() for whole documents (the config file, tests).
 *
 * Trees can be as deep as whatever built them, so every walk here (free, copy,
 * serialize) is a loop over parent/next pointers rather than a recursion: a deep
 * document costs time, never the stack.
 *
 * The serializer writes what any XMPP peer parses: text always valid XML 1.0 and
 * UTF-8 (whatever the bytes given), xmlns only where the default namespace
 * changes, invented prefixes (ns1, ns2...) for namespaced attributes. Elements in
 * the streams namespace (<stream:features/>, <stream:error/>) are written with the
 * "stream:" prefix, because several clients match those by their prefixed name
 * rather than by namespace; dialback's (<db:result/>, <db:verify/>) with "db:",
 * which servers such as ejabberd match the same way.
 */
#include "xml.h"

#include <expat.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_STREAMS "http://etherx.jabber.org/streams"
#define NS_XMLNS "http://www.w3.org/2000/xmlns/"
/* expat joins "URI" SEP "local": a byte that XML 1.0 forbids can never be in either. */
#define NS_SEP XML_NS_SEP
/* U+FFFD, written in place of bytes that are not valid UTF-8 or not XML 1.0 chars */
#define REPLACEMENT "\xEF\xBF\xBD"
/* How many earlier attributes are searched for a prefix to share (bounds the work
 * on elements with thousands of namespaced attributes). */
#define PREFIX_SCAN 64

/* ---- small helpers ---- */

static char *dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (!d)
		return NULL;
	if (n)
		memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

/* "" and NULL both mean "no namespace"; trees hold NULL. */
static const char *norm_ns(const char *ns)
{
	return ns && *ns ? ns : NULL;
}

static bool ns_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

/* ---- buffers ---- */

void xml_buf_free(struct xml_buf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

int xml_buf_add(struct xml_buf *b, const char *s, size_t len)
{
	if (len == 0)
		return 0;
	if (b->len > SIZE_MAX / 2 || len > SIZE_MAX / 2 - b->len)
		return -1;
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *d;

		while (cap < b->len + len)
			cap *= 2;
		d = realloc(b->data, cap);
		if (!d)
			return -1;
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, len);
	b->len += len;
	return 0;
}

static int buf_str(struct xml_buf *b, const char *s)
{
	return xml_buf_add(b, s, strlen(s));
}

/* ---- construction ---- */

static struct xml_node *node_alloc(enum xml_type type)
{
	struct xml_node *n = calloc(1, sizeof(*n));

	if (n) {
		n->type = type;
		n->refs = 1;
	}
	return n;
}

static void free_node(struct xml_node *n)
{
	for (unsigned i = 0; i < n->nattrs; i++) {
		free(n->attrs[i].ns);
		free(n->attrs[i].name);
		free(n->attrs[i].value);
	}
	free(n->attrs);
	free(n->name);
	free(n->ns);
	free(n->text);
	xml_bytes_unref(n->bytes);
	free(n);
}

void xml_bytes_unref(struct xml_bytes *b)
{
	if (!b || --b->refs > 0)
		return;
	free(b->ns);
	free(b);
}

/* Marks or clears every node of top's tree as part of kept bytes. */
static void hold_tree(struct xml_node *top, bool held)
{
	struct xml_node *n = top;

	for (;;) {
		n->held = held;
		if (n->children) {
			n = n->children;
			continue;
		}
		while (n != top && !n->next)
			n = n->parent;
		if (n == top)
			return;
		n = n->next;
	}
}

/* Something in n's tree changes: its root's bytes no longer say it. Only a
 * tree whose bytes are kept is walked, so building a tree (a hostile deep
 * one from the parser) stays linear. */
static void changed(struct xml_node *n)
{
	if (!n->held)
		return;
	while (n->parent)
		n = n->parent;
	hold_tree(n, false);
	xml_bytes_unref(n->bytes);
	n->bytes = NULL;
}

struct xml_node *xml_new(const char *name, const char *ns)
{
	struct xml_node *n;

	if (!name)
		return NULL;
	n = node_alloc(XML_ELEMENT);
	if (!n)
		return NULL;
	n->name = strdup(name);
	ns = norm_ns(ns);
	if (ns)
		n->ns = strdup(ns);
	if (!n->name || (ns && !n->ns)) {
		free_node(n);
		return NULL;
	}
	return n;
}

struct xml_node *xml_text_new(const char *text, size_t len)
{
	struct xml_node *n = node_alloc(XML_TEXT);

	if (!n)
		return NULL;
	n->text = dup_n(text, len);
	if (!n->text) {
		free(n);
		return NULL;
	}
	n->text_len = len;
	return n;
}

void xml_append(struct xml_node *parent, struct xml_node *child)
{
	if (!parent || !child)
		return;
	changed(parent);
	if (child->bytes) {	/* no longer a root */
		hold_tree(child, false);
		xml_bytes_unref(child->bytes);
		child->bytes = NULL;
	}
	child->parent = parent;
	child->next = NULL;
	if (parent->last_child)
		parent->last_child->next = child;
	else
		parent->children = child;
	parent->last_child = child;
}

struct xml_node *xml_add_child(struct xml_node *parent, const char *name, const char *ns)
{
	struct xml_node *n;

	if (!parent || parent->type != XML_ELEMENT)
		return NULL;
	/* "" asks for no namespace (xml_new turns it into NULL) */
	n = xml_new(name, ns ? ns : parent->ns);
	xml_append(parent, n);
	return n;
}

int xml_add_text(struct xml_node *parent, const char *text, size_t len)
{
	struct xml_node *last;

	if (!parent || parent->type != XML_ELEMENT)
		return -1;
	if (len == 0)
		return 0;
	changed(parent);
	last = parent->last_child;
	if (last && last->type == XML_TEXT) {
		char *t;

		if (len > SIZE_MAX - last->text_len - 1)
			return -1;
		t = realloc(last->text, last->text_len + len + 1);
		if (!t)
			return -1;
		memcpy(t + last->text_len, text, len);
		last->text_len += len;
		t[last->text_len] = '\0';
		last->text = t;
		return 0;
	}
	last = xml_text_new(text, len);
	if (!last)
		return -1;
	xml_append(parent, last);
	return 0;
}

void xml_detach(struct xml_node *node)
{
	struct xml_node *p, *prev = NULL;

	if (!node || !node->parent)
		return;
	changed(node);
	p = node->parent;
	for (struct xml_node *c = p->children; c && c != node; c = c->next)
		prev = c;
	if (prev)
		prev->next = node->next;
	else
		p->children = node->next;
	if (p->last_child == node)
		p->last_child = prev;
	node->parent = NULL;
	node->next = NULL;
	node->refs = 1;
}

/* ---- attributes ---- */

static int find_attr(const struct xml_node *n, const char *ns, const char *name)
{
	for (unsigned i = 0; i < n->nattrs; i++)
		if (strcmp(n->attrs[i].name, name) == 0 && ns_eq(n->attrs[i].ns, ns))
			return (int)i;
	return -1;
}

int xml_attr_set_ns(struct xml_node *node, const char *ns, const char *name,
		    const char *value)
{
	struct xml_attr *a;
	int i;

	if (!node || node->type != XML_ELEMENT || !name)
		return -1;
	ns = norm_ns(ns);
	i = find_attr(node, ns, name);
	changed(node);
	if (!value) {
		if (i < 0)
			return 0;
		a = &node->attrs[i];
		free(a->ns);
		free(a->name);
		free(a->value);
		memmove(a, a + 1, (node->nattrs - (unsigned)i - 1) * sizeof(*a));
		node->nattrs--;
		return 0;
	}
	if (i >= 0) {
		char *v = strdup(value);

		if (!v)
			return -1;
		free(node->attrs[i].value);
		node->attrs[i].value = v;
		return 0;
	}
	if (node->nattrs == node->attrs_cap) {
		unsigned cap = node->attrs_cap ? node->attrs_cap * 2 : 4;

		if (cap < node->attrs_cap)
			return -1;
		a = realloc(node->attrs, cap * sizeof(*a));
		if (!a)
			return -1;
		node->attrs = a;
		node->attrs_cap = cap;
	}
	a = &node->attrs[node->nattrs];
	a->ns = ns ? strdup(ns) : NULL;
	a->name = strdup(name);
	a->value = strdup(value);
	if ((ns && !a->ns) || !a->name || !a->value) {
		free(a->ns);
		free(a->name);
		free(a->value);
		return -1;
	}
	node->nattrs++;
	return 0;
}

int xml_attr_set(struct xml_node *node, const char *name, const char *value)
{
	return xml_attr_set_ns(node, NULL, name, value);
}

const char *xml_attr_ns(const struct xml_node *node, const char *ns, const char *name)
{
	int i;

	if (!node || node->type != XML_ELEMENT || !name)
		return NULL;
	i = find_attr(node, norm_ns(ns), name);
	return i < 0 ? NULL : node->attrs[i].value;
}

const char *xml_attr(const struct xml_node *node, const char *name)
{
	return xml_attr_ns(node, NULL, name);
}

/* ---- children ---- */

/* ns "" matches only elements in no namespace. */
static bool matches(const struct xml_node *n, const char *name, const char *ns)
{
	if (n->type != XML_ELEMENT)
		return false;
	if (name && strcmp(n->name, name) != 0)
		return false;
	if (ns && !ns_eq(n->ns, norm_ns(ns)))
		return false;
	return true;
}

struct xml_node *xml_child(const struct xml_node *node, const char *name, const char *ns)
{
	if (!node)
		return NULL;
	for (struct xml_node *c = node->children; c; c = c->next)
		if (matches(c, name, ns))
			return c;
	return NULL;
}

struct xml_node *xml_next(const struct xml_node *after, const char *name, const char *ns)
{
	if (!after)
		return NULL;
	for (struct xml_node *c = after->next; c; c = c->next)
		if (matches(c, name, ns))
			return c;
	return NULL;
}

char *xml_text(const struct xml_node *node)
{
	size_t len = 0;
	char *s, *p;

	if (!node)
		return NULL;
	if (node->type == XML_TEXT)
		return dup_n(node->text, node->text_len);
	for (struct xml_node *c = node->children; c; c = c->next)
		if (c->type == XML_TEXT)
			len += c->text_len;
	s = p = malloc(len + 1);
	if (!s)
		return NULL;
	for (struct xml_node *c = node->children; c; c = c->next) {
		if (c->type == XML_TEXT) {
			memcpy(p, c->text, c->text_len);
			p += c->text_len;
		}
	}
	*p = '\0';
	return s;
}

char *xml_child_text(const struct xml_node *node, const char *name, const char *ns)
{
	struct xml_node *c = xml_child(node, name, ns);

	return c ? xml_text(c) : NULL;
}

/* ---- refcounting and copies ---- */

struct xml_node *xml_ref(struct xml_node *root)
{
	if (root)
		root->refs++;
	return root;
}

/* Post-order without recursion: each parent forgets its children as we descend,
 * so when the walk climbs back up the parent is a leaf and can go. */
static void free_tree(struct xml_node *top)
{
	struct xml_node *n = top;

	while (n) {
		struct xml_node *next;

		if (n->children) {
			next = n->children;
			n->children = n->last_child = NULL;
			n = next;
			continue;
		}
		next = n == top ? NULL : n->next ? n->next : n->parent;
		free_node(n);
		n = next;
	}
}

void xml_unref(struct xml_node *root)
{
	if (!root || --root->refs > 0)
		return;
	free_tree(root);
}

/* One node without its children. */
static struct xml_node *copy_one(const struct xml_node *s)
{
	struct xml_node *d;

	if (s->type == XML_TEXT) {
		d = xml_text_new(s->text, s->text_len);
		if (d)
			d->line = s->line;
		return d;
	}
	d = xml_new(s->name, s->ns);
	if (!d)
		return NULL;
	d->line = s->line;
	if (s->nattrs) {
		d->attrs = calloc(s->nattrs, sizeof(*d->attrs));
		if (!d->attrs)
			goto fail;
		d->attrs_cap = s->nattrs;
		for (unsigned i = 0; i < s->nattrs; i++) {
			const struct xml_attr *sa = &s->attrs[i];
			struct xml_attr *da = &d->attrs[i];

			da->ns = sa->ns ? strdup(sa->ns) : NULL;
			da->name = strdup(sa->name);
			da->value = strdup(sa->value);
			d->nattrs++;
			if ((sa->ns && !da->ns) || !da->name || !da->value)
				goto fail;
		}
	}
	return d;
fail:
	free_node(d);
	return NULL;
}

struct xml_node *xml_copy(const struct xml_node *src)
{
	const struct xml_node *s = src;
	struct xml_node *top, *d;

	if (!src)
		return NULL;
	top = d = copy_one(src);
	if (!top)
		return NULL;
	for (;;) {
		struct xml_node *c;

		if (s->children) {
			s = s->children;
			c = copy_one(s);
			if (!c)
				goto fail;
			xml_append(d, c);
			d = c;
			continue;
		}
		while (s != src && !s->next) {
			s = s->parent;
			d = d->parent;
		}
		if (s == src)
			break;
		s = s->next;
		c = copy_one(s);
		if (!c)
			goto fail;
		xml_append(d->parent, c);
		d = c;
	}
	return top;
fail:
	xml_unref(top);
	return NULL;
}

/* ---- serialization ---- */

/* The length of the valid UTF-8 sequence at p that encodes a character XML 1.0
 * allows, or 0. Only called for bytes >= 0x80. */
static size_t utf8_char(const unsigned char *p, const unsigned char *end)
{
	size_t n = (size_t)(end - p);
	unsigned c = p[0];

#define CONT(b) (((b) & 0xC0) == 0x80)
	if (c >= 0xC2 && c <= 0xDF)
		return n >= 2 && CONT(p[1]) ? 2 : 0;
	if (c >= 0xE0 && c <= 0xEF) {
		if (n < 3 || !CONT(p[1]) || !CONT(p[2]))
			return 0;
		if (c == 0xE0 && p[1] < 0xA0)		/* overlong */
			return 0;
		if (c == 0xED && p[1] >= 0xA0)		/* surrogates */
			return 0;
		if (c == 0xEF && p[1] == 0xBF && p[2] >= 0xBE)	/* U+FFFE, U+FFFF */
			return 0;
		return 3;
	}
	if (c >= 0xF0 && c <= 0xF4) {
		if (n < 4 || !CONT(p[1]) || !CONT(p[2]) || !CONT(p[3]))
			return 0;
		if (c == 0xF0 && p[1] < 0x90)		/* overlong */
			return 0;
		if (c == 0xF4 && p[1] >= 0x90)		/* beyond U+10FFFF */
			return 0;
		return 4;
	}
#undef CONT
	return 0;
}

int xml_escape(struct xml_buf *buf, const char *s, size_t len, bool attr)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	const unsigned char *run = p;	/* start of bytes that go out as they are */

	while (p < end) {
		unsigned c = *p;
		const char *rep = NULL;
		size_t adv = 1;

		if (c >= 0x80) {
			adv = utf8_char(p, end);
			if (!adv) {
				rep = REPLACEMENT;
				adv = 1;
			}
		} else if (c < 0x20) {
			/* Literal tab and newline in attributes would come back as
			 * spaces (attribute-value normalization); a CR anywhere would
			 * be folded into a newline. Other controls cannot be in XML. */
			if (c == '\t')
				rep = attr ? "&#9;" : NULL;
			else if (c == '\n')
				rep = attr ? "&#10;" : NULL;
			else if (c == '\r')
				rep = "&#13;";
			else
				rep = REPLACEMENT;
		} else {
			switch (c) {
			case '&':
				rep = "&amp;";
				break;
			case '<':
				rep = "&lt;";
				break;
			case '>':
				rep = "&gt;";
				break;
			case '"':
				rep = attr ? "&quot;" : NULL;
				break;
			case '\'':
				rep = attr ? "&apos;" : NULL;
				break;
			}
		}
		if (rep) {
			if (xml_buf_add(buf, (const char *)run, (size_t)(p - run)) < 0 ||
			    buf_str(buf, rep) < 0)
				return -1;
			p += adv;
			run = p;
		} else {
			p += adv;
		}
	}
	return xml_buf_add(buf, (const char *)run, (size_t)(end - run));
}

/* The namespaces written with a prefix, and the prefix ("stream", "db"). */
static const struct {
	const char *ns, *prefix, *decl;
} prefixed[] = {
	{ NS_STREAMS, "stream:", " xmlns:stream='" NS_STREAMS "'" },
	{ "jabber:server:dialback", "db:", " xmlns:db='jabber:server:dialback'" },
};

static int prefix_of(const struct xml_node *n)
{
	if (!n->ns)
		return -1;
	for (int i = 0; i < (int)(sizeof(prefixed) / sizeof(*prefixed)); i++)
		if (strcmp(n->ns, prefixed[i].ns) == 0)
			return i;
	return -1;
}

static bool is_stream_el(const struct xml_node *n)
{
	return prefix_of(n) >= 0;
}

/* The default namespace in effect where n's start tag goes. A stream: prefixed
 * element does not change it, so look through those. */
static const char *scope_ns(const struct xml_node *n, const struct xml_node *top,
			    const char *parent_ns)
{
	while (n != top) {
		n = n->parent;
		if (!is_stream_el(n))
			return n->ns;
	}
	return parent_ns;
}

/* Whether an enclosing element of this serialization already bound n's prefix. */
static bool stream_bound(const struct xml_node *n, const struct xml_node *top)
{
	int p = prefix_of(n);

	while (n != top) {
		n = n->parent;
		if (prefix_of(n) == p)
			return true;
	}
	return false;
}

/* Attributes that the serializer writes itself or that would redeclare them. */
static bool attr_skipped(const struct xml_attr *a)
{
	if (!a->ns)
		return strcmp(a->name, "xmlns") == 0;
	return strcmp(a->ns, NS_XMLNS) == 0;
}

static bool attr_prefixed(const struct xml_attr *a)
{
	return a->ns && strcmp(a->ns, XML_NS_XML) != 0 && !attr_skipped(a);
}

/* Attribute i is written as ns<N>:name with N = 1 + the index of the first
 * attribute in the same namespace; that first one declares the prefix. */
static unsigned attr_prefix(const struct xml_node *n, unsigned i)
{
	unsigned lim = i < PREFIX_SCAN ? i : PREFIX_SCAN;

	for (unsigned j = 0; j < lim; j++)
		if (attr_prefixed(&n->attrs[j]) && strcmp(n->attrs[j].ns, n->attrs[i].ns) == 0)
			return j + 1;
	return i + 1;
}

static bool is_to(const struct xml_attr *a)
{
	return !a->ns && strcmp(a->name, "to") == 0;
}

static int write_attrs(const struct xml_node *n, bool skip_to, struct xml_buf *b)
{
	char pfx[24];

	for (unsigned i = 0; i < n->nattrs; i++) {
		const struct xml_attr *a = &n->attrs[i];

		if (attr_skipped(a) || (skip_to && is_to(a)))
			continue;
		if (!a->ns) {
			if (buf_str(b, " ") < 0 || buf_str(b, a->name) < 0)
				return -1;
		} else if (strcmp(a->ns, XML_NS_XML) == 0) {
			if (buf_str(b, " xml:") < 0 || buf_str(b, a->name) < 0)
				return -1;
		} else {
			unsigned k = attr_prefix(n, i);

			if (k == i + 1) {
				snprintf(pfx, sizeof(pfx), " xmlns:ns%u='", k);
				if (buf_str(b, pfx) < 0 ||
				    xml_escape(b, a->ns, strlen(a->ns), true) < 0 ||
				    buf_str(b, "'") < 0)
					return -1;
			}
			snprintf(pfx, sizeof(pfx), " ns%u:", k);
			if (buf_str(b, pfx) < 0 || buf_str(b, a->name) < 0)
				return -1;
		}
		if (buf_str(b, "='") < 0 ||
		    xml_escape(b, a->value, strlen(a->value), true) < 0 ||
		    buf_str(b, "'") < 0)
			return -1;
	}
	return 0;
}

static int open_tag(const struct xml_node *n, const struct xml_node *top,
		    const char *parent_ns, bool skip_to, struct xml_buf *b)
{
	if (buf_str(b, "<") < 0)
		return -1;
	if (is_stream_el(n)) {
		int p = prefix_of(n);

		if (buf_str(b, prefixed[p].prefix) < 0 || buf_str(b, n->name) < 0)
			return -1;
		if (!stream_bound(n, top) && buf_str(b, prefixed[p].decl) < 0)
			return -1;
	} else {
		if (buf_str(b, n->name) < 0)
			return -1;
		if (!ns_eq(norm_ns(scope_ns(n, top, parent_ns)), n->ns)) {
			const char *ns = n->ns ? n->ns : "";

			if (buf_str(b, " xmlns='") < 0 ||
			    xml_escape(b, ns, strlen(ns), true) < 0 || buf_str(b, "'") < 0)
				return -1;
		}
	}
	if (write_attrs(n, skip_to && n == top, b) < 0)
		return -1;
	return buf_str(b, n->children ? ">" : "/>");
}

static int close_tag(const struct xml_node *n, struct xml_buf *b)
{
	if (buf_str(b, "</") < 0)
		return -1;
	if (is_stream_el(n) && buf_str(b, prefixed[prefix_of(n)].prefix) < 0)
		return -1;
	if (buf_str(b, n->name) < 0)
		return -1;
	return buf_str(b, ">");
}

static int serialize(const struct xml_node *top, const char *parent_ns, bool skip_to,
		     struct xml_buf *buf)
{
	const struct xml_node *n = top;

	if (!top)
		return -1;
	for (;;) {
		if (n->type == XML_TEXT) {
			if (xml_escape(buf, n->text, n->text_len, false) < 0)
				return -1;
		} else {
			if (open_tag(n, top, parent_ns, skip_to, buf) < 0)
				return -1;
			if (n->children) {
				n = n->children;
				continue;
			}
		}
		while (n != top && !n->next) {
			n = n->parent;
			if (close_tag(n, buf) < 0)
				return -1;
		}
		if (n == top)
			return 0;
		n = n->next;
	}
}

int xml_serialize(const struct xml_node *top, const char *parent_ns, struct xml_buf *buf)
{
	return serialize(top, parent_ns, false, buf);
}

struct xml_bytes *xml_bytes(const struct xml_node *root, const char *parent_ns)
{
	struct xml_node *r = (struct xml_node *)root;	/* the cache is not the tree */
	struct xml_buf b = { 0 };
	struct xml_bytes *x;

	if (!r || r->type != XML_ELEMENT || r->parent)
		return NULL;
	if (r->bytes && ns_eq(r->bytes->ns, norm_ns(parent_ns))) {
		r->bytes->refs++;
		return r->bytes;
	}
	if (serialize(r, parent_ns, true, &b) < 0 || !(x = malloc(sizeof(*x) + b.len))) {
		xml_buf_free(&b);
		return NULL;
	}
	x->refs = 2;	/* the tree's and the caller's */
	x->ns = norm_ns(parent_ns) ? strdup(parent_ns) : NULL;
	x->head = 1 + (is_stream_el(r) ? strlen(prefixed[prefix_of(r)].prefix) : 0) +
		  strlen(r->name);
	x->len = b.len;
	memcpy(x->data, b.data, b.len);
	xml_buf_free(&b);
	if (norm_ns(parent_ns) && !x->ns) {
		free(x);
		return NULL;
	}
	xml_bytes_unref(r->bytes);
	r->bytes = x;
	hold_tree(r, true);
	return x;
}

char *xml_to_string(const struct xml_node *node, size_t *lenp)
{
	struct xml_buf b = { 0 };

	if (xml_serialize(node, NULL, &b) < 0 || xml_buf_add(&b, "", 1) < 0) {
		xml_buf_free(&b);
		return NULL;
	}
	if (lenp)
		*lenp = b.len - 1;
	return b.data;
}

/* ---- parsing whole documents ---- */

struct xml_node *xml_new_expat(const char *qname, const char **atts, unsigned count)
{
	const char *sep = strchr(qname, NS_SEP);
	struct xml_node *n = xml_new(sep ? sep + 1 : qname, NULL);

	if (!n)
		return NULL;
	if (sep && !(n->ns = dup_n(qname, (size_t)(sep - qname))))
		goto fail;
	if (!count)
		return n;
	/* expat has already refused duplicates: no look-ups, which would be
	 * quadratic in a hostile element's attribute count */
	n->attrs = calloc(count, sizeof(*n->attrs));
	if (!n->attrs)
		goto fail;
	n->attrs_cap = count;
	for (unsigned i = 0; i < count; i++) {
		const char *an = atts[2 * i];
		struct xml_attr *a = &n->attrs[i];

		sep = strchr(an, NS_SEP);
		n->nattrs++;
		a->name = strdup(sep ? sep + 1 : an);
		a->value = strdup(atts[2 * i + 1]);
		if (sep)
			a->ns = dup_n(an, (size_t)(sep - an));
		if (!a->name || !a->value || (sep && !a->ns))
			goto fail;
	}
	return n;
fail:
	xml_unref(n);
	return NULL;
}

struct parse_ctx {
	XML_Parser p;
	struct xml_node *root, *cur;
	struct xml_buf text;	/* text not yet attached to cur */
	const char *err;	/* our own reason to stop, if any */
};

static void parse_fail(struct parse_ctx *ctx, const char *why)
{
	if (!ctx->err) {
		ctx->err = why;
		XML_StopParser(ctx->p, XML_FALSE);
	}
}

/* expat hands text over in pieces (every line end is one): gather, then attach. */
static void parse_flush(struct parse_ctx *ctx)
{
	if (ctx->text.len && ctx->cur &&
	    xml_add_text(ctx->cur, ctx->text.data, ctx->text.len) < 0)
		parse_fail(ctx, "out of memory");
	ctx->text.len = 0;
}

static void parse_start(void *ud, const char *name, const char **atts)
{
	struct parse_ctx *ctx = ud;
	struct xml_node *n;
	unsigned count = 0;

	if (ctx->err)
		return;
	parse_flush(ctx);
	while (atts[2 * count])
		count++;
	n = xml_new_expat(name, atts, count);
	if (!n) {
		parse_fail(ctx, "out of memory");
		return;
	}
	n->line = (unsigned)XML_GetCurrentLineNumber(ctx->p);
	if (ctx->cur)
		xml_append(ctx->cur, n);
	else
		ctx->root = n;
	ctx->cur = n;
}

static void parse_end(void *ud, const char *name)
{
	struct parse_ctx *ctx = ud;

	(void)name;
	if (ctx->err)
		return;
	parse_flush(ctx);
	ctx->cur = ctx->cur->parent;
}

static void parse_text(void *ud, const char *s, int len)
{
	struct parse_ctx *ctx = ud;

	if (!ctx->err && xml_buf_add(&ctx->text, s, (size_t)len) < 0)
		parse_fail(ctx, "out of memory");
}

static void parse_doctype(void *ud, const char *name, const char *sysid,
			  const char *pubid, int has_internal_subset)
{
	(void)name;
	(void)sysid;
	(void)pubid;
	(void)has_internal_subset;
	parse_fail(ud, "a DTD (<!DOCTYPE>) is not allowed");
}

struct xml_node *xml_parse(const char *data, size_t len, char *err, size_t errlen)
{
	struct parse_ctx ctx = { 0 };
	const char *why = NULL;
	bool ok = true;

	ctx.p = XML_ParserCreateNS(NULL, NS_SEP);
	if (!ctx.p) {
		if (err && errlen)
			snprintf(err, errlen, "0: out of memory");
		return NULL;
	}
	XML_SetUserData(ctx.p, &ctx);
	XML_SetElementHandler(ctx.p, parse_start, parse_end);
	XML_SetCharacterDataHandler(ctx.p, parse_text);
	XML_SetStartDoctypeDeclHandler(ctx.p, parse_doctype);
	/* expat takes an int length: hand large documents over in pieces */
	do {
		size_t n = len < (1u << 20) ? len : (1u << 20);

		if (XML_Parse(ctx.p, data, (int)n, n == len) != XML_STATUS_OK)
			ok = false;
		data += n;
		len -= n;
	} while (ok && len);
	if (!ok || ctx.err) {
		why = ctx.err ? ctx.err : XML_ErrorString(XML_GetErrorCode(ctx.p));
		if (err && errlen)
			snprintf(err, errlen, "%lu: %s",
				 (unsigned long)XML_GetCurrentLineNumber(ctx.p), why);
		xml_unref(ctx.root);
		ctx.root = NULL;
	}
	xml_buf_free(&ctx.text);
	XML_ParserFree(ctx.p);
	return ctx.root;
}

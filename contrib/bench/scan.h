/*
 * scan.h - XML as the bench reads it: the server's input cut into top-level
 * elements by a resumable scanner, and each element read in place through a
 * cursor over its children and attributes.
 *
 * A server sends a handful of stream-level elements and stanzas, so no tree
 * is built and nothing is allocated per stanza: a chat message costs one scan
 * and a few compares. Every pointer here points into the caller's buffer,
 * which must stay put while the element is read. Names are compared as
 * written; namespaces only through el_is() (see there).
 */
#ifndef BENCH_SCAN_H
#define BENCH_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

/* ---- cutting the stream into top-level elements ---- */

struct scan {
	uint32_t pos;	/* offset of the next byte to look at */
	uint32_t start;	/* offset of the top-level element being read */
	uint32_t depth;	/* 0: before the stream header, 1: between stanzas */
};

enum scan_ev { SCAN_MORE, SCAN_ERROR, SCAN_HEADER, SCAN_STANZA, SCAN_CLOSE };

/*
 * Moves through buf[0, len) from where the last call stopped and returns the
 * next event: the stream header's start tag, a whole top-level element, the
 * end of the stream, or SCAN_MORE when the rest is not in yet. *tp and *tlen
 * get the header's start tag or the element. A zeroed struct scan starts a
 * stream; the caller moves pos and start when it drops consumed bytes.
 */
enum scan_ev scan_next(struct scan *s, const char *buf, size_t len, const char **tp,
		       size_t *tlen);

/* ---- reading one element in place ---- */

struct el {
	const char *p;		/* the '<' of the start tag; NULL before the first child */
	const char *qname;	/* the name as written, prefix included */
	const char *name;	/* the local name */
	size_t qname_len, name_len;
	const char *attrs;	/* just after the name */
	const char *stag_end;	/* just after the start tag */
	const char *body_end;	/* the '<' of the end tag (stag_end when empty) */
	const char *end;	/* just after the element */
};

/* The stream header's start tag p[0, len) as SCAN_HEADER gave it; -1 if bad. */
int el_header(struct el *e, const char *p, size_t len);
/* A top-level element p[0, len) as SCAN_STANZA gave it; -1 if malformed. */
int el_top(struct el *e, const char *p, size_t len);
/* Steps c to the next child element of parent (zero c first: the first one).
 * 1: found, 0: no more, -1: malformed. */
int el_next_child(const struct el *parent, struct el *c);
/* The first child NAME (in NS, if given) of parent into c; false if none. */
bool el_find_child(const struct el *parent, const char *name, const char *ns,
		   struct el *c);
/* Whether e is NAME in namespace NS (NULL: any). An element that declares no
 * default namespace inherits it, which is how these servers write children. */
bool el_is(const struct el *e, const char *name, const char *ns);

/* Attributes of a start tag, in order: { e->attrs, e->stag_end } first. */
struct attr_cur {
	const char *p, *end;
};

/* The next attribute: its name and its raw (escaped) value. */
bool el_attr_next(struct attr_cur *a, const char **n, size_t *nl, const char **v,
		  size_t *vl);
/* The raw value of attribute NAME; false if absent. */
bool el_attr(const struct el *e, const char *name, const char **v, size_t *vl);
bool el_attr_is(const struct el *e, const char *name, const char *val);

/* The character data directly in e, decoded, NUL-terminated in out[cap];
 * child elements are skipped. -1 if malformed or too long. */
ssize_t el_text(const struct el *e, char *out, size_t cap);
/* The condition of a stream error, a SASL failure or a stanza error: the name
 * of e's first child that is not <text/>, or "(none)". */
void el_condition(const struct el *e, char *out, size_t cap);

/* ---- writing ---- */

/* Writes an attribute value taken raw from the server's input into a
 * single-quoted attribute: entities stay as they are, a bare ' is escaped.
 * Stops before limit - 6. Returns the end. */
char *put_attr_raw(char *p, const char *limit, const char *v, size_t vl);
/* XML-escapes s for text or an attribute, bounded by cap; -1 if too long. */
int xml_escape(const char *s, char *out, size_t cap);

/* ---- bytes ---- */

static inline bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* p[0, n) is the string s. */
static inline bool mem_is(const char *p, size_t n, const char *s)
{
	return n == strlen(s) && memcmp(p, s, n) == 0;
}

#endif

/*
 * xml.h - element trees with namespaces.
 *
 * A tree is made of struct xml_node: elements (name + namespace URI + attributes +
 * children) and text nodes. Trees are refcounted: xml_ref() shares, xml_unref() drops
 * a reference and frees the whole subtree when the last one goes. A node that is a
 * child of another belongs to its parent: only roots are ref'd and unref'd.
 * Whoever wants to change a tree that is shared (refs > 1) copies it first
 * (xml_copy).
 *
 * Namespaces are URIs, never prefixes: an element's ns is the URI it is in (NULL
 * for no namespace). The serializer declares xmlns where an element's namespace
 * differs from its parent's, and invents prefixes for namespaced attributes
 * (except the predefined xml: prefix).
 */
#ifndef PARLEY_XML_H
#define PARLEY_XML_H

#include <stddef.h>
#include <stdbool.h>

#define XML_NS_XML "http://www.w3.org/XML/1998/namespace"

enum xml_type { XML_ELEMENT, XML_TEXT };

struct xml_attr {
	char *ns;	/* namespace URI, NULL for an unqualified attribute */
	char *name;	/* local name */
	char *value;
};

struct xml_node {
	enum xml_type type;
	int refs;			/* meaningful on roots only */
	unsigned line;			/* source line when parsed, else 0 */
	bool held;			/* in a tree whose bytes are kept */
	bool to_resource_changed;	/* roots: the resource of 'to' in its prepared
					 * form differs from what the sender wrote
					 * (XEP-0045 status 210: a nick changed) */
	char *name;			/* element: local name; text: NULL */
	char *ns;			/* element: namespace URI or NULL */
	char *text;			/* text node: the text (NUL-terminated) */
	size_t text_len;		/* text node: length in bytes */
	struct xml_attr *attrs;
	unsigned nattrs, attrs_cap;
	struct xml_node *parent;
	struct xml_node *children, *last_child;	/* first and last child */
	struct xml_node *next;		/* next sibling */
	struct xml_bytes *bytes;	/* roots: the serialization kept (xml_bytes) */
};

/* A growable byte buffer, used by the serializer. */
struct xml_buf {
	char *data;
	size_t len, cap;
};
void xml_buf_free(struct xml_buf *b);
int xml_buf_add(struct xml_buf *b, const char *s, size_t len);

/* Construction. All return NULL only when memory runs out. ns may be NULL. */
struct xml_node *xml_new(const char *name, const char *ns);
struct xml_node *xml_text_new(const char *text, size_t len);
/* Appends child (a root the caller owns, refs == 1) to parent, which now owns it. */
void xml_append(struct xml_node *parent, struct xml_node *child);
/* New element child of parent; ns NULL means "the parent's namespace". */
struct xml_node *xml_add_child(struct xml_node *parent, const char *name, const char *ns);
/* Appends a text child (merged with a preceding text child). */
int xml_add_text(struct xml_node *parent, const char *text, size_t len);
/* Detaches node from its parent; the caller now owns it as a root (refs == 1). */
void xml_detach(struct xml_node *node);

/* Attributes. set replaces an existing value; value NULL removes the attribute. */
int xml_attr_set(struct xml_node *node, const char *name, const char *value);
int xml_attr_set_ns(struct xml_node *node, const char *ns, const char *name,
		    const char *value);
const char *xml_attr(const struct xml_node *node, const char *name);
const char *xml_attr_ns(const struct xml_node *node, const char *ns, const char *name);

/* Children. name and/or ns NULL match anything. Text nodes never match. */
struct xml_node *xml_child(const struct xml_node *node, const char *name, const char *ns);
struct xml_node *xml_next(const struct xml_node *after, const char *name, const char *ns);
#define xml_foreach(child, parent, name, ns) \
	for ((child) = xml_child((parent), (name), (ns)); (child); \
	     (child) = xml_next((child), (name), (ns)))
/* Concatenated text of node's direct text children; malloc'd, "" when none. */
char *xml_text(const struct xml_node *node);
/* Text of the first child element name/ns, malloc'd, NULL when there is no child. */
char *xml_child_text(const struct xml_node *node, const char *name, const char *ns);

/* Refcounting. */
struct xml_node *xml_ref(struct xml_node *root);
void xml_unref(struct xml_node *root);
/* Deep copy: a new root with refs == 1 and no parent. */
struct xml_node *xml_copy(const struct xml_node *node);

/*
 * Serialization: appends node and its subtree to buf. parent_ns is the namespace
 * in scope where the bytes go (e.g. "jabber:client" inside a c2s stream) so that
 * an xmlns is written only when it differs. Returns 0, or -1 on memory failure.
 */
int xml_serialize(const struct xml_node *node, const char *parent_ns, struct xml_buf *buf);
/* Convenience: a malloc'd NUL-terminated string (parent_ns NULL). */
char *xml_to_string(const struct xml_node *node, size_t *lenp);
/*
 * Serialized once, written many times. A root's bytes without its 'to'
 * attribute, split where 'to' goes, so that a stanza that many streams get (a
 * room's broadcast) is serialized once and each stream writes its own 'to'
 * around the shared bytes. They are made on first use, kept with the tree, and
 * dropped when anything in the tree changes. xml_bytes() returns a reference
 * of the caller's (NULL on memory failure).
 */
struct xml_bytes {
	int refs;
	char *ns;		/* the parent namespace they were made for */
	size_t head;		/* data[0..head) is the tag's name: "<message" */
	size_t len;
	char data[];
};
struct xml_bytes *xml_bytes(const struct xml_node *root, const char *parent_ns);
void xml_bytes_unref(struct xml_bytes *b);

/* Escapes text for element content (attr false) or an attribute value (attr true). */
int xml_escape(struct xml_buf *buf, const char *s, size_t len, bool attr);

/* The separator both of our expat parsers are created with (XML_ParserCreateNS):
 * names arrive as "URI<XML_NS_SEP>local". */
#define XML_NS_SEP '\x01'
/* An element from an expat start-tag callback: its qname and count attribute
 * pairs (count as expat gives them). NULL without memory. */
struct xml_node *xml_new_expat(const char *qname, const char **atts, unsigned count);

/*
 * Parses a whole document (config files, tests) into a tree with line numbers.
 * On error returns NULL and writes "LINE: message" into err (errlen bytes).
 * Comments and processing instructions are skipped; DTDs are refused.
 */
struct xml_node *xml_parse(const char *data, size_t len, char *err, size_t errlen);

#endif

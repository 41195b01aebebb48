/*
 * xmlstream.h - the incremental parser for one XMPP stream (RFC 6120 §4, §11).
 *
 * Bytes go in as they arrive (any chunking, down to one byte at a time); out come
 * three events: the stream header was opened, one complete top-level stanza (a
 * tree the callee owns), the stream was closed. Limits on stanza size, depth and
 * attribute count are checked while bytes arrive, not after. RFC 6120 §11
 * restricted XML (comments, processing instructions, DTDs, entity declarations) is
 * an error. After a stream restart (STARTTLS, SASL) call xmlstream_reset(): the
 * next bytes go to a fresh parser.
 */
#ifndef PARLEY_XMLSTREAM_H
#define PARLEY_XMLSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "xml.h"

#define XMLSTREAM_NS_STREAMS "http://etherx.jabber.org/streams"

enum xmlstream_error {
	XMLSTREAM_OK = 0,
	XMLSTREAM_NOT_WELL_FORMED,	/* <not-well-formed/> */
	XMLSTREAM_RESTRICTED_XML,	/* <restricted-xml/> */
	XMLSTREAM_POLICY_VIOLATION,	/* a limit was passed: <policy-violation/> */
	XMLSTREAM_INVALID_NAMESPACE,	/* root is not {streams}stream: <invalid-namespace/> */
	XMLSTREAM_BAD_FORMAT,		/* stray text at top level etc.: <bad-format/> */
	XMLSTREAM_UNSUPPORTED_ENCODING,	/* <unsupported-encoding/> */
	XMLSTREAM_NO_MEMORY,		/* <internal-server-error/> */
};

struct xmlstream_limits {
	size_t max_stanza;	/* bytes of one stanza (and of the stream header) */
	unsigned max_depth;	/* element depth inside a stanza (stanza itself = 1) */
	unsigned max_attrs;	/* attributes per element */
};

struct xmlstream_callbacks {
	/* The stream header: an element {streams}stream with its attributes.
	 * default_ns is the default namespace the peer declared (e.g. jabber:client),
	 * NULL if none. The header is the callee's (xml_unref it). */
	void (*open)(void *arg, struct xml_node *header, const char *default_ns);
	/* One complete top-level element; the callee owns it. */
	void (*stanza)(void *arg, struct xml_node *stanza);
	/* </stream:stream> */
	void (*close)(void *arg);
	/* The stream is broken; text says why in words for the log and <text/>.
	 * After an error, feed() returns -1 and ignores further input. */
	void (*error)(void *arg, enum xmlstream_error err, const char *text);
};

struct xmlstream;

struct xmlstream *xmlstream_new(const struct xmlstream_limits *limits,
				const struct xmlstream_callbacks *cb, void *arg);
void xmlstream_free(struct xmlstream *xs);

/*
 * Parses len bytes. Returns the number of bytes consumed, which is len unless a
 * callback called xmlstream_stop() (then the rest is the caller's to feed again
 * after, say, xmlstream_reset(), or to drop), or -1 after an error (the error
 * callback has run). Callbacks may call xmlstream_stop() and xmlstream_reset() but
 * must not free the xmlstream; defer that until feed() returns.
 */
ssize_t xmlstream_feed(struct xmlstream *xs, const char *data, size_t len);
/* Asks feed() to return after the current event. */
void xmlstream_stop(struct xmlstream *xs);
/* A fresh parser for the next bytes (stream restart); limits and callbacks stay. */
int xmlstream_reset(struct xmlstream *xs);
/*
 * Frees the parser of an idle stream (between stanzas, nothing half-parsed):
 * most of a quiet stream's memory. The next feed() builds a new one and puts it
 * in the same state with a synthetic copy of the header's namespace
 * declarations (which fires no event and counts toward no limit). Returns
 * whether it did; false when the stream is not at a point where it can (call
 * again later). Not from inside a callback.
 */
bool xmlstream_compact(struct xmlstream *xs);
/* Whether the stream is open and between stanzas, with no byte of a next one
 * held (a WebSocket message must end there). */
bool xmlstream_between(const struct xmlstream *xs);
/* The RFC 6120 condition name for an error ("not-well-formed", ...). */
const char *xmlstream_error_condition(enum xmlstream_error err);

#endif

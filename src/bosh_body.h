/*
 * bosh_body.h - one BOSH request body (XEP-0124 §4, XEP-0206), parsed and
 * checked, with no I/O: what bosh.c is given by each HTTP POST, and what
 * tests/fuzz/fuzz_bosh.c throws bytes at.
 *
 * A body is a whole document: <body xmlns='http://jabber.org/protocol/httpbind'
 * rid='...' .../> with zero or more payloads (stanzas, SASL elements). The
 * parser checks the limits while expat runs (bytes, depth, attributes), refuses
 * what XEP-0124 §4 forbids (comments, processing instructions, DTDs, text
 * beside the payloads) and reads the wrapper's attributes into typed fields.
 * Payloads that inherit the wrapper's namespace (most clients write <message/>
 * with no xmlns inside it) are moved to jabber:client, as XEP-0206 §2 says
 * clients expect.
 */
#ifndef PARLEY_BOSH_BODY_H
#define PARLEY_BOSH_BODY_H

#include <stdbool.h>
#include <stddef.h>

#include "xml.h"

#define NS_HTTPBIND "http://jabber.org/protocol/httpbind"
#define NS_XBOSH "urn:xmpp:xbosh"
/* XEP-0124 §14.1: rids stay below 2^53 (clients that count in doubles). */
#define BOSH_RID_MAX 9007199254740991ULL

struct bosh_body_limits {
	size_t max_bytes;	/* the whole body */
	unsigned max_depth;	/* element nesting inside one payload (payload = 1) */
	unsigned max_attrs;	/* attributes per element, the wrapper's included */
};

/* Attributes not sent are NULL, or -1 for the numbers (false for flags). The
 * strings point into root and live as long as it. */
struct bosh_body {
	struct xml_node *root;		/* the <body/>; its children are the payloads */
	unsigned long long rid;		/* always there: 1..BOSH_RID_MAX */
	const char *sid;		/* NULL: a session creation request */
	const char *to, *lang, *route, *content, *key, *newkey;
	const char *version;		/* xmpp:version */
	long long ack;			/* the client's response ack, or its '1' at creation */
	long wait, hold, pause;		/* seconds; hold a count */
	int ver_major, ver_minor;	/* 'ver', or -1 */
	bool terminate;			/* type='terminate' */
	bool restart;			/* xmpp:restart='true' */
	size_t payloads;		/* element children */
};

/*
 * Parses len bytes into b. 0, or -1 with *why saying what is wrong in words
 * (static text; "out of memory" when that is the cause): the request is then a
 * bad-request. On success the caller owns b->root (bosh_body_free).
 */
int bosh_body_parse(const char *data, size_t len, const struct bosh_body_limits *lim,
		    struct bosh_body *b, const char **why);
void bosh_body_free(struct bosh_body *b);

#endif

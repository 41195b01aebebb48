/*
 * test_xmlstream.c - the stream parser: the same events whatever the chunking,
 * namespaces by URI not prefix, each limit refused while the bytes come in,
 * restricted XML, malformed input, stop/reset with a pipelined stream restart,
 * and an error that is reported once and sticks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmlstream.h"

#define NS_STREAMS XMLSTREAM_NS_STREAMS
#define HEADER "<stream:stream xmlns='jabber:client' xmlns:stream='" NS_STREAMS "' " \
	"to='example.com' version='1.0'>"

/* Records every event as one line of text, and acts on some of them. */
struct rec {
	struct xmlstream *xs;
	struct xml_buf log;
	int errors;
	enum xmlstream_error err;
	bool stop_every;		/* xmlstream_stop() on every event */
	const char *restart_on;		/* a stanza name: restart the stream after it */
	int restart_how;		/* 0: stop+reset, 1: reset+stop, 2: reset, 3: stop */
	bool want_reset;		/* restart_how 3: the caller resets after feed() */
};

static void log_add(struct rec *r, const char *s)
{
	assert_int_equal(xml_buf_add(&r->log, s, strlen(s)), 0);
}

static void log_xml(struct rec *r, const struct xml_node *n, const char *parent_ns)
{
	assert_int_equal(xml_serialize(n, parent_ns, &r->log), 0);
}

static void on_open(void *arg, struct xml_node *header, const char *default_ns)
{
	struct rec *r = arg;

	log_add(r, "open ");
	log_add(r, default_ns ? default_ns : "-");
	log_add(r, " ");
	log_xml(r, header, NULL);
	log_add(r, "\n");
	xml_unref(header);
	if (r->stop_every)
		xmlstream_stop(r->xs);
}

static void on_stanza(void *arg, struct xml_node *st)
{
	struct rec *r = arg;

	log_add(r, "stanza ");
	log_xml(r, st, "jabber:client");
	log_add(r, "\n");
	if (r->restart_on && strcmp(st->name, r->restart_on) == 0) {
		switch (r->restart_how) {
		case 0:
			xmlstream_stop(r->xs);
			assert_int_equal(xmlstream_reset(r->xs), 0);
			break;
		case 1:
			assert_int_equal(xmlstream_reset(r->xs), 0);
			xmlstream_stop(r->xs);
			break;
		case 2:
			assert_int_equal(xmlstream_reset(r->xs), 0);
			break;
		default:
			xmlstream_stop(r->xs);
			r->want_reset = true;
			break;
		}
	}
	xml_unref(st);
	if (r->stop_every)
		xmlstream_stop(r->xs);
}

static void on_close(void *arg)
{
	struct rec *r = arg;

	log_add(r, "close\n");
	if (r->stop_every)
		xmlstream_stop(r->xs);
}

static void on_error(void *arg, enum xmlstream_error err, const char *text)
{
	struct rec *r = arg;

	r->errors++;
	r->err = err;
	log_add(r, "error ");
	log_add(r, xmlstream_error_condition(err));
	log_add(r, ": ");
	log_add(r, text);
	log_add(r, "\n");
	/* a reset cannot bring a failed stream back */
	assert_int_equal(xmlstream_reset(r->xs), -1);
}

static const struct xmlstream_callbacks cbs = {
	.open = on_open, .stanza = on_stanza, .close = on_close, .error = on_error,
};

static const struct xmlstream_limits default_limits = { 65536, 32, 32 };

static void rec_init(struct rec *r, const struct xmlstream_limits *lim)
{
	memset(r, 0, sizeof(*r));
	r->xs = xmlstream_new(lim ? lim : &default_limits, &cbs, r);
	assert_non_null(r->xs);
}

/* The log as a string; the recorder is cleaned up. */
static char *rec_done(struct rec *r)
{
	xmlstream_free(r->xs);
	assert_int_equal(xml_buf_add(&r->log, "", 1), 0);
	return r->log.data;
}

/* Positions where feed() returned short, when asked for. */
struct stops {
	size_t pos[64];
	int n;
};

/*
 * Feeds len bytes in chunks of at most chunk (0: pseudo-random sizes from seed),
 * feeding again from wherever a stopped feed() left off, as a connection would.
 * Returns the bytes consumed, or -1 once feed() failed.
 */
static ssize_t feed_chunks(struct rec *r, const char *data, size_t len, size_t chunk,
			   unsigned seed, struct stops *stops)
{
	size_t off = 0;

	while (off < len) {
		size_t n = chunk;
		ssize_t used;

		if (!chunk) {
			seed = seed * 1103515245u + 12345u;
			n = 1 + (seed >> 16) % 23;
		}
		if (n > len - off)
			n = len - off;
		used = xmlstream_feed(r->xs, data + off, n);
		if (used < 0)
			return -1;
		assert_true((size_t)used <= n);
		assert_true(used > 0);
		if ((size_t)used < n && stops && stops->n < 64)
			stops->pos[stops->n++] = off + (size_t)used;
		off += (size_t)used;
		if (r->want_reset) {
			r->want_reset = false;
			assert_int_equal(xmlstream_reset(r->xs), 0);
		}
	}
	return (ssize_t)off;
}

/* Runs a whole input through a fresh stream; returns the log. */
static char *run(const char *data, size_t len, size_t chunk,
		 const struct xmlstream_limits *lim)
{
	struct rec r;

	rec_init(&r, lim);
	feed_chunks(&r, data, len, chunk, 1, NULL);
	return rec_done(&r);
}

/* ---- a realistic client stream ---- */

static const char client_stream[] =
	"<?xml version='1.0'?>\n"
	"<stream:stream xmlns='jabber:client' xmlns:stream='" NS_STREAMS "' "
	"to='example.com' version='1.0' xml:lang='en' id=\"a>b\">\n"
	"<presence><show>away</show><status>gone &amp; back</status></presence>\n  "
	"<message to='juliet@example.com/balcony' type='chat' id='m>1'>"
	"<body>Wherefore art thou? a > b &lt;3 \xc3\xa9\r\nline 2 &#x263A;"
	"<![CDATA[<not a tag> & ]]></body>"
	"<active xmlns='http://jabber.org/protocol/chatstates'/></message>"
	"<iq type='get' id='r1'><query xmlns='jabber:iq:roster' ver=''/></iq>"
	"<r xmlns='urn:xmpp:sm:3'/>\n\t \r\n"
	"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"
	"</stream:stream>";

static const char client_events[] =
	"open jabber:client <stream:stream xmlns:stream='" NS_STREAMS "' to='example.com' "
	"version='1.0' xml:lang='en' id='a&gt;b'/>\n"
	"stanza <presence><show>away</show><status>gone &amp; back</status></presence>\n"
	"stanza <message to='juliet@example.com/balcony' type='chat' id='m&gt;1'>"
	"<body>Wherefore art thou? a &gt; b &lt;3 \xc3\xa9\nline 2 \xe2\x98\xba"
	"&lt;not a tag&gt; &amp; </body>"
	"<active xmlns='http://jabber.org/protocol/chatstates'/></message>\n"
	"stanza <iq type='get' id='r1'><query xmlns='jabber:iq:roster' ver=''/></iq>\n"
	"stanza <r xmlns='urn:xmpp:sm:3'/>\n"
	"stanza <stream:features xmlns:stream='" NS_STREAMS "'>"
	"<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>\n"
	"close\n";

static void client_stream_whole(void **state)
{
	char *log;

	(void)state;
	log = run(client_stream, strlen(client_stream), SIZE_MAX, NULL);
	assert_string_equal(log, client_events);
	free(log);
}

static void client_stream_every_chunking(void **state)
{
	size_t len = strlen(client_stream);

	(void)state;
	for (size_t k = 1; k <= len; k++) {
		char *log = run(client_stream, len, k, NULL);

		if (strcmp(log, client_events) != 0)
			fail_msg("chunks of %zu bytes gave:\n%s", k, log);
		free(log);
	}
	for (unsigned seed = 1; seed < 50; seed++) {
		struct rec r;
		char *log;

		rec_init(&r, NULL);
		assert_int_equal(feed_chunks(&r, client_stream, len, 0, seed, NULL), len);
		log = rec_done(&r);
		assert_string_equal(log, client_events);
		free(log);
	}
}

static void client_stream_byte_by_byte(void **state)
{
	size_t len = strlen(client_stream);
	struct rec r;
	char *log;

	(void)state;
	rec_init(&r, NULL);
	for (size_t i = 0; i < len; i++)
		assert_int_equal(xmlstream_feed(r.xs, client_stream + i, 1), 1);
	assert_int_equal(xmlstream_feed(r.xs, client_stream, 0), 0);
	log = rec_done(&r);
	assert_string_equal(log, client_events);
	free(log);
}

/* Where each event of client_stream ends. */
static size_t event_ends(size_t *ends)
{
	static const char *const marks[] = {
		"id=\"a>b\">", "</presence>", "</message>", "</iq>", "sm:3'/>",
		"</stream:features>", "</stream:stream>",
	};
	size_t n = sizeof(marks) / sizeof(marks[0]);

	for (size_t i = 0; i < n; i++)
		ends[i] = (size_t)(strstr(client_stream, marks[i]) - client_stream) +
			  strlen(marks[i]);
	return n;
}

/* A stop after each event: feed() returns exactly at the event's end, and the
 * parser goes on from there when the rest is fed again. */
static void stop_every_event(void **state)
{
	size_t len = strlen(client_stream), ends[8], nends = event_ends(ends);

	(void)state;
	for (size_t k = 1; k <= len + 1; k++) {
		struct stops stops = { .n = 0 };
		struct rec r;
		char *log;

		rec_init(&r, NULL);
		r.stop_every = true;
		assert_int_equal(feed_chunks(&r, client_stream, len, k, 0, &stops), len);
		log = rec_done(&r);
		assert_string_equal(log, client_events);
		free(log);
		for (int i = 0; i < stops.n; i++) {
			size_t j = 0;

			while (j < nends && ends[j] != stops.pos[i])
				j++;
			if (j == nends)
				fail_msg("chunk %zu: stopped at %zu, not an event end", k,
					 stops.pos[i]);
		}
		if (k > len) {
			/* one feed of everything: a stop at each event but the last */
			assert_int_equal(stops.n, nends - 1);
			for (size_t j = 0; j + 1 < nends; j++)
				assert_int_equal(stops.pos[j], ends[j]);
		}
	}
}

/* ---- namespaces are URIs, whatever the prefixes ---- */

static void other_prefixes(void **state)
{
	static const char plain[] =
		"<stream:stream xmlns='jabber:client' xmlns:stream='" NS_STREAMS "' "
		"to='example.com' version='1.0'>"
		"<message to='x'><body>hi</body><x xmlns='urn:x' a='1'/></message>"
		"<iq type='get'><query xmlns='jabber:iq:roster'/></iq>"
		"<stream:error><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
		"</stream:stream>";
	static const char prefixed[] =
		"<s:stream xmlns:s='" NS_STREAMS "' xmlns='jabber:client' "
		"to='example.com' version='1.0'>"
		"<c:message xmlns:c='jabber:client' to='x'><c:body>hi</c:body>"
		"<y:x xmlns:y='urn:x' a='1'/></c:message>"
		"<iq xmlns:r='jabber:iq:roster' type='get'><r:query/></iq>"
		"<s:error><e:text xmlns:e='urn:ietf:params:xml:ns:xmpp-streams'/></s:error>"
		"</s:stream>";
	char *a, *b;

	(void)state;
	a = run(plain, strlen(plain), SIZE_MAX, NULL);
	b = run(prefixed, strlen(prefixed), SIZE_MAX, NULL);
	assert_string_equal(a, b);
	assert_string_equal(a,
		"open jabber:client <stream:stream xmlns:stream='" NS_STREAMS "' "
		"to='example.com' version='1.0'/>\n"
		"stanza <message to='x'><body>hi</body><x xmlns='urn:x' a='1'/></message>\n"
		"stanza <iq type='get'><query xmlns='jabber:iq:roster'/></iq>\n"
		"stanza <stream:error xmlns:stream='" NS_STREAMS "'>"
		"<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>\n"
		"close\n");
	free(a);
	free(b);
}

struct header_rec {
	struct xml_node *header;
	char *default_ns;
	struct xml_node *stanza;
};

static void keep_open(void *arg, struct xml_node *header, const char *default_ns)
{
	struct header_rec *h = arg;

	h->header = header;
	h->default_ns = default_ns ? strdup(default_ns) : NULL;
}

static void keep_stanza(void *arg, struct xml_node *st)
{
	struct header_rec *h = arg;

	xml_unref(h->stanza);
	h->stanza = st;
}

/* The header as a tree: xml:lang by its namespace, no default namespace here. */
static void header_attributes(void **state)
{
	static const char s[] =
		"<stream:stream xmlns:stream='" NS_STREAMS "' to='example.com' "
		"xml:lang='de' version='1.0' from='a@example.com'>"
		"<message xmlns='jabber:client'/><presence/>";
	const struct xmlstream_callbacks hcb = { .open = keep_open, .stanza = keep_stanza };
	struct header_rec h = { 0 };
	struct xmlstream *xs = xmlstream_new(&default_limits, &hcb, &h);

	(void)state;
	assert_int_equal(xmlstream_feed(xs, s, sizeof(s) - 1), sizeof(s) - 1);
	assert_non_null(h.header);
	assert_null(h.default_ns);
	assert_string_equal(h.header->name, "stream");
	assert_string_equal(h.header->ns, NS_STREAMS);
	assert_string_equal(xml_attr(h.header, "to"), "example.com");
	assert_string_equal(xml_attr(h.header, "from"), "a@example.com");
	assert_string_equal(xml_attr_ns(h.header, XML_NS_XML, "lang"), "de");
	assert_null(xml_attr(h.header, "lang"));
	assert_int_equal(h.header->nattrs, 4);
	assert_null(h.header->children);
	/* the last stanza: in no namespace, since the stream declared none */
	assert_string_equal(h.stanza->name, "presence");
	assert_null(h.stanza->ns);
	assert_int_equal(h.stanza->refs, 1);
	assert_null(h.stanza->parent);
	xml_unref(h.header);
	xml_unref(h.stanza);
	free(h.default_ns);
	xmlstream_free(xs);
}

/* ---- limits ---- */

/* Feeds HEADER then data, one byte at a time; returns how many bytes of data went
 * in before feed() failed (or all of them). */
static size_t feed_until_error(struct rec *r, const char *data, size_t len)
{
	size_t i;

	assert_int_equal(xmlstream_feed(r->xs, HEADER, strlen(HEADER)), strlen(HEADER));
	for (i = 0; i < len; i++)
		if (xmlstream_feed(r->xs, data + i, 1) < 0)
			return i + 1;
	return len;
}

static char *repeat(const char *head, char c, size_t n, const char *tail)
{
	size_t hl = strlen(head), tl = strlen(tail);
	char *s = malloc(hl + n + tl + 1);

	assert_non_null(s);
	memcpy(s, head, hl);
	memset(s + hl, c, n);
	memcpy(s + hl + n, tail, tl + 1);
	return s;
}

static void limit_stanza_size(void **state)
{
	const struct xmlstream_limits lim = { 256, 8, 8 };
	/* 32 bytes of markup: the body text makes up the rest */
	char *fits = repeat("<message><body>", 'a', 256 - 32, "</body></message>");
	char *over = repeat("<message><body>", 'a', 257 - 32, "</body></message>");
	size_t chunks[] = { 1, 7, 100, 255, 256, 257, SIZE_MAX };
	struct rec r;
	char *log;

	(void)state;
	assert_int_equal(strlen(fits), 256);
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		rec_init(&r, &lim);
		assert_int_equal(feed_chunks(&r, HEADER, strlen(HEADER), SIZE_MAX, 0, NULL),
				 strlen(HEADER));
		/* many stanzas at the limit: the limit is per stanza */
		for (int j = 0; j < 5; j++)
			assert_int_equal(feed_chunks(&r, fits, 256, chunks[i], 0, NULL), 256);
		assert_int_equal(r.errors, 0);
		assert_int_equal(feed_chunks(&r, over, 257, chunks[i], 0, NULL), -1);
		assert_int_equal(r.errors, 1);
		assert_int_equal(r.err, XMLSTREAM_POLICY_VIOLATION);
		log = rec_done(&r);
		assert_non_null(strstr(log,
				       "error policy-violation: stanza larger than 256 bytes"));
		free(log);
	}
	free(fits);
	free(over);
}

/* An attribute value or a text that never ends is refused after the limit, as
 * the bytes arrive: nothing waits for the end of the tag. */
static void limit_endless(void **state)
{
	const struct xmlstream_limits lim = { 4096, 8, 8 };
	char *attr = repeat("<message to='", 'a', 100000, "");
	char *text = repeat("<message><body>", 'a', 100000, "");
	char *big = repeat("", 'a', 1 << 20, "");
	struct rec r;
	char *log;

	(void)state;
	rec_init(&r, &lim);
	assert_int_equal(feed_until_error(&r, attr, strlen(attr)), 4097);
	assert_int_equal(r.err, XMLSTREAM_POLICY_VIOLATION);
	free(rec_done(&r));

	rec_init(&r, &lim);
	assert_int_equal(feed_until_error(&r, text, strlen(text)), 4097);
	assert_int_equal(r.err, XMLSTREAM_POLICY_VIOLATION);
	free(rec_done(&r));

	/* whitespace keepalives between stanzas are not a stanza */
	rec_init(&r, &lim);
	assert_int_equal(xmlstream_feed(r.xs, HEADER, strlen(HEADER)), strlen(HEADER));
	for (int i = 0; i < 10; i++) {
		char *ws = repeat("", i % 2 ? ' ' : '\n', 4000, "<presence/>");

		assert_int_equal(feed_chunks(&r, ws, strlen(ws), 999, 0, NULL), strlen(ws));
		free(ws);
	}
	assert_int_equal(r.errors, 0);

	/* and big feeds fail on the first one */
	assert_int_equal(xmlstream_feed(r.xs, "<message to='", 13), 13);
	assert_int_equal(xmlstream_feed(r.xs, big, 1 << 20), -1);
	assert_int_equal(xmlstream_feed(r.xs, big, 1 << 20), -1);
	assert_int_equal(r.errors, 1);
	log = rec_done(&r);
	assert_non_null(strstr(log, "error policy-violation: stanza larger than 4096 bytes\n"));
	free(log);
	free(attr);
	free(text);
	free(big);
}

/* The stream header, and whatever comes before it, are bounded too. */
static void limit_header(void **state)
{
	const struct xmlstream_limits lim = { 1024, 8, 8 };
	char *hdr = repeat("<stream:stream xmlns:stream='" NS_STREAMS "' to='", 'a', 5000, "");
	char *ws = repeat("", ' ', 1000, HEADER);
	char *log;

	(void)state;
	log = run(hdr, strlen(hdr), 1, &lim);
	assert_string_equal(log,
			    "error policy-violation: stream header larger than 1024 bytes\n");
	free(log);
	log = run(ws, strlen(ws), 64, &lim);
	assert_string_equal(log,
			    "error policy-violation: stream header larger than 1024 bytes\n");
	free(log);
	log = run(hdr, strlen(hdr), SIZE_MAX, &lim);
	assert_string_equal(log,
			    "error policy-violation: stream header larger than 1024 bytes\n");
	free(log);
	free(hdr);
	free(ws);
}

static void limit_depth_and_attrs(void **state)
{
	const struct xmlstream_limits lim = { 4096, 4, 3 };
	static const struct {
		const char *body, *err;
	} cases[] = {
		{ "<a><b><c><d/></c></b></a>", NULL },
		{ "<a><b><c><d><e/></d></c></b></a>",
		  "error policy-violation: elements nested deeper than 4 levels\n" },
		{ "<a x='1' y='2' z='3'><b xmlns:p='urn:p' p:x='1' x='2' y='3'/></a>", NULL },
		{ "<a x='1' y='2' z='3' w='4'/>",
		  "error policy-violation: element with more than 3 attributes\n" },
		{ "<a><b><c x='1' y='2' z='3' w='4'/></b></a>",
		  "error policy-violation: element with more than 3 attributes\n" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *in = repeat(HEADER, ' ', 1, cases[i].body);
		char *log = run(in, strlen(in), 3, &lim);
		const char *last = strrchr(log, '\n');

		/* the last line is the error, or the stanza when there is none */
		while (last > log && last[-1] != '\n')
			last--;
		if (cases[i].err)
			assert_string_equal(last, cases[i].err);
		else
			assert_memory_equal(last, "stanza <a", 9);
		free(log);
		free(in);
	}
	/* the header itself has an attribute limit (namespace declarations aside) */
	{
		static const char h[] = "<stream:stream xmlns='jabber:client' "
			"xmlns:stream='" NS_STREAMS "' to='a' from='b' version='1.0' id='x'>";
		char *log = run(h, strlen(h), SIZE_MAX, &lim);

		assert_string_equal(log, "error policy-violation: stream header with more "
				    "than 3 attributes\n");
		free(log);
	}
}

/* ---- bad input ---- */

static void expect_error_n(const char *in, size_t len, enum xmlstream_error want,
			   const char *text)
{
	size_t chunks[] = { 1, 2, 5, SIZE_MAX };
	char *first = NULL;

	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		struct rec r;
		char *log;

		rec_init(&r, NULL);
		assert_int_equal(feed_chunks(&r, in, len, chunks[i], 0, NULL), -1);
		if (r.errors != 1 || r.err != want)
			fail_msg("%s: got %s", in, xmlstream_error_condition(r.err));
		/* after an error, nothing more goes in */
		assert_int_equal(xmlstream_feed(r.xs, "<presence/>", 11), -1);
		assert_int_equal(xmlstream_feed(r.xs, "", 0), -1);
		assert_int_equal(r.errors, 1);
		log = rec_done(&r);
		if (text && !strstr(log, text))
			fail_msg("%s: wanted \"%s\" in\n%s", in, text, log);
		/* the same events and error whatever the chunking */
		if (first)
			assert_string_equal(log, first);
		free(first);
		first = log;
	}
	free(first);
}

static void expect_error(const char *in, enum xmlstream_error want, const char *text)
{
	expect_error_n(in, strlen(in), want, text);
}

static void restricted_xml(void **state)
{
	(void)state;
	expect_error("<?xml version='1.0'?><!-- hi -->" HEADER, XMLSTREAM_RESTRICTED_XML,
		     "comments are not allowed");
	expect_error(HEADER "<!-- hi -->", XMLSTREAM_RESTRICTED_XML, NULL);
	expect_error(HEADER "<message><body><!--x--></body></message>",
		     XMLSTREAM_RESTRICTED_XML, NULL);
	expect_error(HEADER "<?php echo 1; ?>", XMLSTREAM_RESTRICTED_XML,
		     "processing instructions are not allowed");
	expect_error("<?xml version='1.0'?><?style x?>" HEADER, XMLSTREAM_RESTRICTED_XML,
		     NULL);
	expect_error(HEADER "<message><?x?></message>", XMLSTREAM_RESTRICTED_XML, NULL);
	expect_error("<!DOCTYPE stream:stream>" HEADER, XMLSTREAM_RESTRICTED_XML,
		     "document type declarations are not allowed");
	expect_error("<?xml version='1.0'?>\n<!DOCTYPE x [<!ENTITY lol 'lol'>]>" HEADER,
		     XMLSTREAM_RESTRICTED_XML, NULL);
	expect_error(HEADER "<message><body>&lol;</body></message>",
		     XMLSTREAM_RESTRICTED_XML, "undefined entity");
	expect_error("<?xml version='1.0' encoding='ISO-8859-1'?>" HEADER,
		     XMLSTREAM_UNSUPPORTED_ENCODING, "ISO-8859-1");
}

static void not_well_formed(void **state)
{
	(void)state;
	expect_error(HEADER "<message></iq>", XMLSTREAM_NOT_WELL_FORMED, "mismatched tag");
	expect_error(HEADER "<message>\xff</message>", XMLSTREAM_NOT_WELL_FORMED, NULL);
	expect_error(HEADER "<message>\xc3(</message>", XMLSTREAM_NOT_WELL_FORMED, NULL);
	expect_error(HEADER "<message a='1' a='2'/>", XMLSTREAM_NOT_WELL_FORMED,
		     "duplicate attribute");
	expect_error(HEADER "<x:message/>", XMLSTREAM_NOT_WELL_FORMED, "unbound prefix");
	expect_error(HEADER "<message to=x/>", XMLSTREAM_NOT_WELL_FORMED, NULL);
	expect_error(HEADER "<presence/><?xml version='1.0'?>", XMLSTREAM_NOT_WELL_FORMED,
		     NULL);
	expect_error(HEADER "<message>\x01</message>", XMLSTREAM_NOT_WELL_FORMED, NULL);
	expect_error(HEADER "</stream:stream><presence/>", XMLSTREAM_NOT_WELL_FORMED,
		     "junk after document element");
	/* expat would switch to UTF-16 on its own */
	expect_error_n("\xfe\xff\0<\0s\0/\0>", 10, XMLSTREAM_UNSUPPORTED_ENCODING, NULL);
	expect_error_n("\xff\xfe<\0s\0/\0>\0", 10, XMLSTREAM_UNSUPPORTED_ENCODING, NULL);
	expect_error_n("\0<\0s\0/\0>", 8, XMLSTREAM_UNSUPPORTED_ENCODING, NULL);
	expect_error_n("<\0s\0/\0>\0", 8, XMLSTREAM_UNSUPPORTED_ENCODING, NULL);
	expect_error_n(" \0", 2, XMLSTREAM_UNSUPPORTED_ENCODING, NULL);
	/* the first byte is wrong already, whether the second came with it or not */
	expect_error_n("\x12\0", 2, XMLSTREAM_NOT_WELL_FORMED, NULL);
	/* text between stanzas */
	expect_error(HEADER "<presence/>hello<presence/>", XMLSTREAM_BAD_FORMAT,
		     "text outside of any stanza");
	expect_error(HEADER "&amp;", XMLSTREAM_BAD_FORMAT, NULL);
}

static void wrong_root(void **state)
{
	(void)state;
	expect_error("<stream:stream xmlns:stream='urn:wrong'>", XMLSTREAM_INVALID_NAMESPACE,
		     NULL);
	expect_error("<stream xmlns='jabber:client'>", XMLSTREAM_INVALID_NAMESPACE, NULL);
	expect_error("<?xml version='1.0'?><message/>", XMLSTREAM_INVALID_NAMESPACE, NULL);
	expect_error("<stream:features xmlns:stream='" NS_STREAMS "'>",
		     XMLSTREAM_INVALID_NAMESPACE, NULL);
}

static void accepted_details(void **state)
{
	static const char in[] =
		"\xef\xbb\xbf<?xml version='1.0' encoding='utf-8'?>\n\n"
		"<stream:stream xmlns:stream='" NS_STREAMS "'/>";
	static const char tail[] = HEADER "&#32;&#x9;<presence/></stream:stream>\n \n";
	char *log;

	(void)state;
	/* a BOM, an XML declaration saying UTF-8 in lower case, an empty stream */
	log = run(in, strlen(in), 1, NULL);
	assert_string_equal(log, "open - <stream:stream xmlns:stream='" NS_STREAMS "'/>\n"
			    "close\n");
	free(log);
	/* whitespace after the end is fine; character references to spaces too */
	log = run(tail, strlen(tail), 4, NULL);
	assert_non_null(strstr(log, "stanza <presence/>\nclose\n"));
	assert_null(strstr(log, "error"));
	free(log);
	assert_string_equal(xmlstream_error_condition(XMLSTREAM_NO_MEMORY),
			    "internal-server-error");
	assert_string_equal(xmlstream_error_condition(XMLSTREAM_OK), "undefined-condition");
}

/* ---- stream restarts ---- */

static const char restart_stream[] =
	"<?xml version='1.0'?>" HEADER
	"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>"
	"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
	"xmlns:stream='" NS_STREAMS "' to='example.com' version='1.0' xml:lang='fr'>"
	"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>";

static const char restart_events[] =
	"open jabber:client <stream:stream xmlns:stream='" NS_STREAMS "' "
	"to='example.com' version='1.0'/>\n"
	"stanza <auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
	"AGEAYg==</auth>\n"
	"open jabber:client <stream:stream xmlns:stream='" NS_STREAMS "' "
	"to='example.com' version='1.0' xml:lang='fr'/>\n"
	"stanza <iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
	"</iq>\n";

static void restart_pipelined(void **state)
{
	size_t len = strlen(restart_stream);
	size_t auth_end = (size_t)(strstr(restart_stream, "</auth>") - restart_stream) + 7;

	(void)state;
	for (int how = 0; how < 4; how++) {
		struct rec r;
		ssize_t used;
		char *log;

		/* all in one buffer: feed() stops right after </auth> */
		rec_init(&r, NULL);
		r.restart_on = "auth";
		r.restart_how = how;
		used = xmlstream_feed(r.xs, restart_stream, len);
		assert_int_equal(used, auth_end);
		if (r.want_reset) {
			r.want_reset = false;
			assert_int_equal(xmlstream_reset(r.xs), 0);
		}
		assert_int_equal(xmlstream_feed(r.xs, restart_stream + used, len - (size_t)used),
				 len - (size_t)used);
		log = rec_done(&r);
		assert_string_equal(log, restart_events);
		free(log);

		/* and the same in every chunking */
		for (size_t k = 1; k <= len; k++) {
			struct stops stops = { .n = 0 };

			rec_init(&r, NULL);
			r.restart_on = "auth";
			r.restart_how = how;
			assert_int_equal(feed_chunks(&r, restart_stream, len, k, 0, &stops), len);
			log = rec_done(&r);
			if (strcmp(log, restart_events) != 0)
				fail_msg("how %d, chunks of %zu:\n%s", how, k, log);
			free(log);
			for (int i = 0; i < stops.n; i++)
				assert_int_equal(stops.pos[i], auth_end);
		}
	}
}

/* Without a reset, a restart is junk to the old parser. */
static void restart_needs_reset(void **state)
{
	char *log;

	(void)state;
	log = run(restart_stream, strlen(restart_stream), SIZE_MAX, NULL);
	assert_non_null(strstr(log, "error not-well-formed"));
	free(log);
}

/* A reset outside any callback: the next bytes start a stream of their own, and
 * a half-built stanza of the old one is dropped. */
static void reset_between_feeds(void **state)
{
	struct rec r;
	char *log;

	(void)state;
	rec_init(&r, NULL);
	assert_int_equal(xmlstream_feed(r.xs, HEADER "<message><body>half",
					strlen(HEADER) + 19), strlen(HEADER) + 19);
	assert_int_equal(xmlstream_reset(r.xs), 0);
	assert_int_equal(xmlstream_reset(r.xs), 0);
	assert_int_equal(xmlstream_feed(r.xs, HEADER "<presence/>", strlen(HEADER) + 11),
			 strlen(HEADER) + 11);
	xmlstream_stop(r.xs);	/* outside feed(): nothing to stop */
	assert_int_equal(xmlstream_feed(r.xs, "<presence/>", 11), 11);
	log = rec_done(&r);
	assert_string_equal(log,
		"open jabber:client <stream:stream xmlns:stream='" NS_STREAMS "' "
		"to='example.com' version='1.0'/>\n"
		"open jabber:client <stream:stream xmlns:stream='" NS_STREAMS "' "
		"to='example.com' version='1.0'/>\n"
		"stanza <presence/>\nstanza <presence/>\n");
	free(log);
	/* freeing a stream in the middle of a stanza leaks nothing (valgrind) */
	rec_init(&r, NULL);
	assert_int_equal(xmlstream_feed(r.xs, HEADER "<message><body>half<x a='",
					strlen(HEADER) + 25), strlen(HEADER) + 25);
	free(rec_done(&r));
}


/* ---- compaction: an idle stream's parser freed and rebuilt ---- */

/* Feeds in chunks, compacting after every chunk where the stream allows it;
 * returns the log and how many compactions happened. */
static char *run_compacting(const char *data, size_t len, size_t chunk,
			    const struct xmlstream_limits *lim, int *compactions)
{
	struct rec r;
	size_t off = 0;

	rec_init(&r, lim);
	*compactions = 0;
	while (off < len) {
		size_t n = chunk < len - off ? chunk : len - off;
		ssize_t used = xmlstream_feed(r.xs, data + off, n);

		if (used < 0)
			break;
		off += (size_t)used;
		if (xmlstream_compact(r.xs))
			(*compactions)++;
	}
	return rec_done(&r);
}

static void compact_same_events(void **state)
{
	static const char prefixed[] =
		"<s:stream xmlns:s='" NS_STREAMS "' xmlns='jabber:client' "
		"xmlns:db='jabber:server:dialback' to='example.com' version='1.0'>"
		"<c:message xmlns:c='jabber:client' to='x'><c:body>hi</c:body></c:message> "
		"<db:result to='a'/><iq type='get'><query xmlns='jabber:iq:roster'/></iq>"
		"<s:error/></s:stream>";
	const char *inputs[] = { client_stream, prefixed };
	size_t chunks[] = { 1, 3, 17, 64, SIZE_MAX };

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		char *plain = run(inputs[i], strlen(inputs[i]), SIZE_MAX, NULL);

		for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
			int k;
			char *log = run_compacting(inputs[i], strlen(inputs[i]), chunks[c], NULL,
						   &k);

			assert_string_equal(log, plain);
			/* byte by byte, the stream is idle after each stanza's '>' */
			if (chunks[c] == 1)
				assert_true(k >= 3);
			free(log);
		}
		free(plain);
	}
}

static void compact_limits_and_refusals(void **state)
{
	const struct xmlstream_limits lim = { 256, 8, 8 };
	char *fits = repeat("<message><body>", 'a', 256 - 32, "</body></message>");
	char *over = repeat("<message><body>", 'a', 257 - 32, "</body></message>");
	static const char ambiguous[] =
		"<a:stream xmlns:a='" NS_STREAMS "' xmlns:b='" NS_STREAMS "' "
		"xmlns='jabber:client'>";
	struct rec r;
	char *log;

	(void)state;
	rec_init(&r, &lim);
	/* nothing to compact before the header */
	assert_false(xmlstream_compact(r.xs));
	assert_int_equal(xmlstream_feed(r.xs, HEADER, strlen(HEADER)), strlen(HEADER));
	assert_true(xmlstream_compact(r.xs));
	assert_false(xmlstream_compact(r.xs));	/* already compact */
	/* the limit counts from the real stanza, not the synthetic header */
	assert_int_equal(xmlstream_feed(r.xs, fits, 256), 256);
	assert_true(xmlstream_compact(r.xs));
	/* half a stanza: not now */
	assert_int_equal(xmlstream_feed(r.xs, "<message><bo", 12), 12);
	assert_false(xmlstream_compact(r.xs));
	assert_int_equal(xmlstream_feed(r.xs, "dy/></message>", 14), 14);
	assert_true(xmlstream_compact(r.xs));
	assert_int_equal(r.errors, 0);
	assert_int_equal(xmlstream_feed(r.xs, over, 257), -1);
	assert_int_equal(r.err, XMLSTREAM_POLICY_VIOLATION);
	assert_false(xmlstream_compact(r.xs));	/* failed streams stay failed */
	log = rec_done(&r);
	assert_non_null(strstr(log, "error policy-violation: stanza larger than 256 bytes"));
	free(log);

	/* two prefixes for the streams namespace: which one <stream> used is not
	 * known, so the parser stays */
	rec_init(&r, NULL);
	assert_int_equal(xmlstream_feed(r.xs, ambiguous, strlen(ambiguous)),
			 strlen(ambiguous));
	assert_int_equal(r.errors, 0);
	assert_false(xmlstream_compact(r.xs));
	free(rec_done(&r));

	/* a reset after compaction starts a new stream as usual */
	rec_init(&r, NULL);
	assert_int_equal(xmlstream_feed(r.xs, HEADER, strlen(HEADER)), strlen(HEADER));
	assert_true(xmlstream_compact(r.xs));
	assert_int_equal(xmlstream_reset(r.xs), 0);
	assert_int_equal(xmlstream_feed(r.xs, HEADER, strlen(HEADER)), strlen(HEADER));
	assert_int_equal(xmlstream_feed(r.xs, "</stream:stream>", 16), 16);
	log = rec_done(&r);
	assert_non_null(strstr(log, "close\n"));
	assert_int_equal(r.errors, 0);
	free(log);
	free(fits);
	free(over);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(client_stream_whole),
		cmocka_unit_test(client_stream_every_chunking),
		cmocka_unit_test(client_stream_byte_by_byte),
		cmocka_unit_test(stop_every_event),
		cmocka_unit_test(other_prefixes),
		cmocka_unit_test(header_attributes),
		cmocka_unit_test(limit_stanza_size),
		cmocka_unit_test(limit_endless),
		cmocka_unit_test(limit_header),
		cmocka_unit_test(limit_depth_and_attrs),
		cmocka_unit_test(restricted_xml),
		cmocka_unit_test(not_well_formed),
		cmocka_unit_test(wrong_root),
		cmocka_unit_test(accepted_details),
		cmocka_unit_test(restart_pipelined),
		cmocka_unit_test(restart_needs_reset),
		cmocka_unit_test(reset_between_feeds),
		cmocka_unit_test(compact_same_events),
		cmocka_unit_test(compact_limits_and_refusals),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

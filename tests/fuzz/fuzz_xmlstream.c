/*
 * fuzz_xmlstream.c - libFuzzer target for the stream parser.
 *
 * Each input goes through xmlstream whole, byte by byte, in chunks whose size
 * the input picks, and with a stop after every event; all runs must give the
 * same events (the sanitizers watch for crashes and leaks). A stanza named
 * <restart/> makes the callback stop and reset the stream, as SASL success does,
 * and the caller feeds the rest again. Every stanza is also copied, serialized
 * and re-parsed with xml_parse(): what the serializer writes must read back to
 * the same tree. One run frees the parser between chunks whenever the stream
 * allows (xmlstream_compact): the events must not change.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmlstream.h"

/* Small limits, so that short inputs reach them. */
static const struct xmlstream_limits limits = { 512, 12, 12 };

struct run {
	struct xmlstream *xs;
	struct xml_buf log;
	bool stop_every;
	int errors;
};

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_xmlstream: %s\n", what);
		abort();
	}
}

static void log_str(struct run *r, const char *s)
{
	check(xml_buf_add(&r->log, s, strlen(s)) == 0, "out of memory");
}

/* Serializing a copy, and what xml_parse() reads back, give the same bytes. */
static void round_trip(const struct xml_node *st, const char *ser, size_t len)
{
	struct xml_node *cp = xml_copy(st), *back;
	char err[128];
	size_t len2;
	char *s;

	check(cp != NULL, "copy failed");
	s = xml_to_string(cp, &len2);
	check(s && len2 == len && memcmp(s, ser, len) == 0, "copy serializes differently");
	free(s);
	xml_unref(cp);
	back = xml_parse(ser, len, err, sizeof(err));
	if (!back) {
		fprintf(stderr, "serialized stanza does not parse (%s): %.*s\n", err,
			(int)len, ser);
		abort();
	}
	s = xml_to_string(back, &len2);
	if (!s || len2 != len || memcmp(s, ser, len) != 0) {
		fprintf(stderr, "round trip differs:\n%.*s\n%s\n", (int)len, ser, s);
		abort();
	}
	free(s);
	xml_unref(back);
}

static void on_open(void *arg, struct xml_node *header, const char *default_ns)
{
	struct run *r = arg;

	log_str(r, "open ");
	log_str(r, default_ns ? default_ns : "-");
	check(xml_serialize(header, NULL, &r->log) == 0, "serialize failed");
	log_str(r, "\n");
	xml_unref(header);
	if (r->stop_every)
		xmlstream_stop(r->xs);
}

static void on_stanza(void *arg, struct xml_node *st)
{
	struct run *r = arg;
	size_t start;

	log_str(r, "stanza ");
	start = r->log.len;
	check(xml_serialize(st, NULL, &r->log) == 0, "serialize failed");
	round_trip(st, r->log.data + start, r->log.len - start);
	log_str(r, "\n");
	if (strcmp(st->name, "restart") == 0) {
		xmlstream_stop(r->xs);
		check(xmlstream_reset(r->xs) == 0, "reset failed");
	}
	xml_unref(st);
	if (r->stop_every)
		xmlstream_stop(r->xs);
}

static void on_close(void *arg)
{
	struct run *r = arg;

	log_str(r, "close\n");
	if (r->stop_every)
		xmlstream_stop(r->xs);
}

static void on_error(void *arg, enum xmlstream_error err, const char *text)
{
	struct run *r = arg;

	r->errors++;
	check(text && *text, "an error without a text");
	/* The condition only: expat may word the same fault differently, depending
	 * on how much it saw at once ("invalid token" or "junk after document
	 * element" for bytes after the end). */
	log_str(r, "error ");
	log_str(r, xmlstream_error_condition(err));
	log_str(r, "\n");
}

static const struct xmlstream_callbacks cbs = {
	.open = on_open, .stanza = on_stanza, .close = on_close, .error = on_error,
};

/* Feeds data in chunks of chunk bytes, as a connection would; returns the log. */
static struct xml_buf run(const uint8_t *data, size_t len, size_t chunk, bool stop_every,
			  bool compact)
{
	struct run r = { .stop_every = stop_every };
	size_t off = 0;

	r.xs = xmlstream_new(&limits, &cbs, &r);
	check(r.xs != NULL, "out of memory");
	while (off < len) {
		size_t n = len - off < chunk ? len - off : chunk;
		ssize_t used = xmlstream_feed(r.xs, (const char *)data + off, n);

		if (used < 0) {
			check(xmlstream_feed(r.xs, "<a/>", 4) == -1, "feed after an error");
			break;
		}
		check(used > 0 && (size_t)used <= n, "feed consumed a wrong count");
		off += (size_t)used;
		if (compact)
			xmlstream_compact(r.xs);	/* when it can: the events stay */
	}
	check(r.errors <= 1, "more than one error");
	xmlstream_free(r.xs);
	return r.log;
}

static void same(struct xml_buf *want, struct xml_buf got, const char *how)
{
	if (want->len != got.len || (got.len && memcmp(want->data, got.data, got.len))) {
		fprintf(stderr, "%s gave other events:\n--- whole\n%.*s\n--- %s\n%.*s\n", how,
			(int)want->len, want->data, how, (int)got.len, got.data);
		abort();
	}
	xml_buf_free(&got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct xml_buf whole = run(data, size, SIZE_MAX, false, false);

	if (size <= 4096)
		same(&whole, run(data, size, 1, false, false), "byte by byte");
	if (size)
		same(&whole, run(data, size, 1 + data[size - 1] % 97, false, false), "chunks");
	same(&whole, run(data, size, SIZE_MAX, true, false), "stop every event");
	same(&whole, run(data, size, 7, true, false), "stop every event, chunks of 7");
	if (size)
		same(&whole, run(data, size, 1 + data[0] % 13, false, true),
		     "compacting between chunks");
	xml_buf_free(&whole);
	return 0;
}

/*
 * fuzz_http.c - libFuzzer target: any bytes through http_parse.c, split at a
 * point the first byte picks (a request that arrives in two reads), every
 * request taken as http.c takes them. A request that comes out must hold what
 * the parser promises: a path that begins with '/', has no NUL, no backslash
 * and no dot segment; at most HTTP_HEADERS_MAX headers; a body within the limit,
 * kept whole or (half the inputs) streamed in pieces with holds and resumes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

#define BODY_MAX 4096

static void check(const struct http_msg *m)
{
	const char *p = m->path;

	if (!p || p[0] != '/' || strchr(p, '\\') || m->nheaders > HTTP_HEADERS_MAX ||
	    m->body_len > BODY_MAX || strstr(p, "/../") || strstr(p, "/./"))
		abort();
	size_t n = strlen(p);

	if ((n >= 3 && strcmp(p + n - 3, "/..") == 0) || (n >= 2 && strcmp(p + n - 2, "/.") == 0))
		abort();
	for (unsigned i = 0; i < m->nheaders; i++)
		if (!m->headers[i].name || !m->headers[i].value)
			abort();
}

/* Half the inputs (the first byte odd) go through the streaming path: each
 * request's head is taken in on_head and its body comes in pieces, the feeding
 * held after every other piece and resumed by the loop below. */
struct stream_state {
	struct http_msg head;
	bool have_head;
	size_t got;
	unsigned pieces;
};

static int s_head(struct http_in *in, void *arg)
{
	struct stream_state *st = arg;

	if (st->have_head)
		http_msg_free(&st->head);
	http_in_take(in, &st->head);
	check(&st->head);
	st->have_head = true;
	st->got = 0;
	in->stream = true;
	in->body_max = BODY_MAX / 2;
	return 0;
}

static int s_data(struct http_in *in, const char *d, size_t n, void *arg)
{
	struct stream_state *st = arg;

	(void)d;
	st->got += n;
	if (st->got > BODY_MAX / 2 || in->streamed != st->got)
		abort();
	return (st->pieces++ & 1) ? 1 : 0;
}

static const struct http_in_ops s_ops = { s_head, s_data };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stream_state st = { 0 };
	struct http_in in;
	size_t split = size ? data[0] % (size + 1) : 0, off = size ? 1 : 0;
	const size_t ends[2] = { split > off ? split : off, size };

	http_in_init(&in, BODY_MAX);
	if (size && (data[0] & 1))
		http_in_set_ops(&in, &s_ops, &st);
	for (int part = 0; part < 2; part++) {
		/* each turn takes bytes or ends: at most one turn per byte */
		for (size_t turns = 0; off < ends[part] && turns <= size; turns++) {
			size_t n = http_in_feed(&in, (const char *)data + off, ends[part] - off);

			off += n;
			if (in.error)
				goto out;
			if (in.held)
				http_in_resume(&in);
			if (in.complete && in.stream) {
				http_in_done(&in);
			} else if (in.complete) {
				struct http_msg m;

				http_in_take(&in, &m);
				check(&m);
				if (m.upgrade) {
					http_msg_free(&m);
					goto out;
				}
				http_msg_free(&m);
			} else if (n == 0) {
				break;
			}
		}
	}
out:
	if (st.have_head)
		http_msg_free(&st.head);
	http_in_free(&in);
	return 0;
}

/*
 * fuzz_http.c - libFuzzer target: any bytes through http_parse.c, split at a
 * point the first byte picks (a request that arrives in two reads), every
 * request taken as http.c takes them. A request that comes out must hold what
 * the parser promises: a path that begins with '/', has no NUL, no backslash
 * and no dot segment; at most HTTP_HEADERS_MAX headers; a body within the limit.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_in in;
	size_t split = size ? data[0] % (size + 1) : 0, off = size ? 1 : 0;
	const size_t ends[2] = { split > off ? split : off, size };

	http_in_init(&in, BODY_MAX);
	for (int part = 0; part < 2; part++) {
		/* each turn takes bytes or ends: at most one turn per byte */
		for (size_t turns = 0; off < ends[part] && turns <= size; turns++) {
			size_t n = http_in_feed(&in, (const char *)data + off, ends[part] - off);

			off += n;
			if (in.error)
				goto out;
			if (in.complete) {
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
	http_in_free(&in);
	return 0;
}

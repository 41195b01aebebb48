/*
 * test_http.c - http_parse.c: requests from bytes, whole or a byte at a time,
 * pipelined, chunked; each refusal with its status; a streamed body in pieces
 * with the feeding held and resumed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

/* Feeds all of s, step bytes at a time; stops at a whole request or an error. */
static size_t feed(struct http_in *in, const char *s, size_t len, size_t step)
{
	size_t off = 0;

	while (off < len && !in->complete && !in->error && !in->held) {
		size_t n = len - off < step ? len - off : step;
		size_t took = http_in_feed(in, s + off, n);

		off += took;
		if (took == 0)
			break;
	}
	return off;
}

static void whole_get(void **state)
{
	static const char req[] = "GET /a/b%20c?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\n"
				  "X-Two: one\r\nx-two: two\r\n\r\n";
	struct http_in in;
	struct http_msg m;

	(void)state;
	for (size_t step = 1; step <= sizeof(req); step += sizeof(req) - 2) {
		http_in_init(&in, 1024);
		assert_int_equal(feed(&in, req, sizeof(req) - 1, step), sizeof(req) - 1);
		assert_true(in.complete);
		assert_int_equal(in.error, 0);
		http_in_take(&in, &m);
		assert_string_equal(m.method, "GET");
		assert_string_equal(m.path, "/a/b c");
		assert_string_equal(m.query, "x=1&y=2");
		assert_string_equal(http_msg_header(&m, "host"), "example.com");
		assert_string_equal(http_msg_header(&m, "X-TWO"), "one");
		assert_int_equal(m.nheaders, 3);
		assert_true(m.keep_alive);
		assert_null(m.body);
		http_msg_free(&m);
		http_in_free(&in);
	}
}

static void pipelined_and_chunked(void **state)
{
	static const char req[] = "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
				  "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
				  "GET /next HTTP/1.0\r\n\r\n";
	struct http_in in;
	struct http_msg m;
	size_t off;

	(void)state;
	http_in_init(&in, 1024);
	off = feed(&in, req, sizeof(req) - 1, sizeof(req));
	assert_true(in.complete);
	http_in_take(&in, &m);
	assert_string_equal(m.method, "POST");
	assert_int_equal(m.body_len, 5);
	assert_string_equal(m.body, "abcde");
	http_msg_free(&m);
	feed(&in, req + off, sizeof(req) - 1 - off, 1);
	assert_true(in.complete);
	http_in_take(&in, &m);
	assert_string_equal(m.path, "/next");
	assert_false(m.keep_alive);	/* HTTP/1.0 without keep-alive */
	http_msg_free(&m);
	http_in_free(&in);
}

static int refused(const char *req, size_t len, size_t body_max)
{
	struct http_in in;
	int e;

	http_in_init(&in, body_max);
	feed(&in, req, len, len);
	e = in.error;
	http_in_free(&in);
	return e;
}

#define REFUSED(s, max) refused((s), sizeof(s) - 1, (max))

static void refusals(void **state)
{
	char *big = malloc(20000), *many = malloc(65 * 16 + 64), *longurl = malloc(9100);
	size_t n = 0;

	(void)state;
	assert_int_equal(REFUSED("GET /a%2fb HTTP/1.1\r\n\r\n", 10), 400);
	assert_int_equal(REFUSED("GET /a%5Cb HTTP/1.1\r\n\r\n", 10), 400);
	assert_int_equal(REFUSED("GET /a/../b HTTP/1.1\r\n\r\n", 10), 400);
	assert_int_equal(REFUSED("GET /a/%2E%2e HTTP/1.1\r\n\r\n", 10), 400);
	assert_int_equal(REFUSED("GET /./a HTTP/1.1\r\n\r\n", 10), 400);
	assert_int_equal(REFUSED("GET /a%00 HTTP/1.1\r\n\r\n", 10), 400);
	assert_int_equal(REFUSED("GET /a%zz HTTP/1.1\r\n\r\n", 10), 400);
	assert_int_equal(REFUSED("GET /a% HTTP/1.1\r\n\r\n", 10), 400);
	assert_int_equal(REFUSED("NOT HTTP\r\n\r\n", 10), 400);
	assert_int_equal(REFUSED("PUT /x HTTP/1.1\r\nContent-Length: 11\r\n\r\n", 10), 413);
	assert_int_equal(REFUSED("PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
				 "b\r\nhello world\r\n0\r\n\r\n", 10), 413);
	assert_int_equal(REFUSED("PUT /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 10), 501);
	/* headers: 16 KiB in all, 64 lines */
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	memset(big + 19, 'a', 17000);
	memcpy(big + 19 + 17000, "\r\n\r\n", 4);
	assert_int_equal(refused(big, 19 + 17000 + 4, 10), 431);
	n = (size_t)sprintf(many, "GET / HTTP/1.1\r\n");
	for (int i = 0; i < 65; i++)
		n += (size_t)sprintf(many + n, "H%d: v\r\n", i);
	n += (size_t)sprintf(many + n, "\r\n");
	assert_int_equal(refused(many, n, 10), 431);
	memcpy(longurl, "GET /", 5);
	memset(longurl + 5, 'u', 9000);
	memcpy(longurl + 9005, " HTTP/1.1\r\n\r\n", 13);
	assert_int_equal(refused(longurl, 9018, 10), 414);
	free(big);
	free(many);
	free(longurl);
}

/* ---- a streamed body ---- */

struct sink {
	char data[64];
	size_t len;
	int pieces, heads;
	bool hold;
	struct http_msg head;
};

static int on_head(struct http_in *in, void *arg)
{
	struct sink *k = arg;

	k->heads++;
	in->stream = true;
	in->body_max = 20;		/* the route's own limit */
	http_in_take(in, &k->head);
	return 0;
}

static int on_data(struct http_in *in, const char *data, size_t len, void *arg)
{
	struct sink *k = arg;

	(void)in;
	if (k->len + len > sizeof(k->data))
		return -1;
	memcpy(k->data + k->len, data, len);
	k->len += len;
	k->pieces++;
	return k->hold ? 1 : 0;
}

static const struct http_in_ops sink_ops = { on_head, on_data };

static void streamed(void **state)
{
	static const char req[] = "PUT /upload/t/f.txt HTTP/1.1\r\nContent-Length: 12\r\n\r\n"
				  "hello, world"
				  "GET /after HTTP/1.1\r\n\r\n";
	size_t head = strlen("PUT /upload/t/f.txt HTTP/1.1\r\nContent-Length: 12\r\n\r\n");
	struct sink k = { .hold = true };
	struct http_in in;
	struct http_msg m;
	size_t off;

	(void)state;
	http_in_init(&in, 5);		/* the default limit is lower than the route's */
	http_in_set_ops(&in, &sink_ops, &k);
	/* the head and 4 bytes of body, then "stop" */
	off = http_in_feed(&in, req, head + 4);
	assert_int_equal(off, head + 4);
	assert_int_equal(k.heads, 1);
	assert_string_equal(k.head.path, "/upload/t/f.txt");
	assert_true(in.held);
	assert_int_equal(http_in_feed(&in, req + off, 8), 0);	/* held: nothing taken */
	k.hold = false;
	http_in_resume(&in);
	off += http_in_feed(&in, req + off, sizeof(req) - 1 - off);
	assert_true(in.complete);
	assert_int_equal(k.len, 12);
	assert_memory_equal(k.data, "hello, world", 12);
	assert_null(in.msg.body);	/* streamed, not kept */
	http_in_done(&in);
	http_msg_free(&k.head);
	/* the next request on the connection: its head goes to on_head too */
	http_in_set_ops(&in, NULL, NULL);
	feed(&in, req + off, sizeof(req) - 1 - off, 100);
	assert_true(in.complete);
	http_in_take(&in, &m);
	assert_string_equal(m.path, "/after");
	http_msg_free(&m);
	http_in_free(&in);
}

static void streamed_too_large(void **state)
{
	static const char req[] = "PUT /u HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
				  "10\r\n0123456789abcdef\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n";
	struct sink k = { 0 };
	struct http_in in;

	(void)state;
	http_in_init(&in, 1000);
	http_in_set_ops(&in, &sink_ops, &k);	/* on_head sets 20 */
	feed(&in, req, sizeof(req) - 1, sizeof(req));
	assert_int_equal(in.error, 413);
	assert_int_equal(k.len, 16);
	http_msg_free(&k.head);
	http_in_free(&in);
}

static void upgrade(void **state)
{
	static const char req[] = "GET /xmpp-websocket HTTP/1.1\r\nConnection: Upgrade\r\n"
				  "Upgrade: websocket\r\n\r\n\x81\x85";
	struct http_in in;
	struct http_msg m;

	(void)state;
	http_in_init(&in, 10);
	feed(&in, req, sizeof(req) - 1, sizeof(req));
	assert_true(in.complete);
	http_in_take(&in, &m);
	assert_true(m.upgrade);
	http_msg_free(&m);
	http_in_free(&in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(whole_get),
		cmocka_unit_test(pipelined_and_chunked),
		cmocka_unit_test(refusals),
		cmocka_unit_test(streamed),
		cmocka_unit_test(streamed_too_large),
		cmocka_unit_test(upgrade),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

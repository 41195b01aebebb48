/*
 * http_parse.h - HTTP/1.x requests from bytes, bounded (RFC 9112).
 *
 * A thin layer over the http-parser library (Debian's libhttp-parser): it
 * collects one request at a time (method, path, query, headers, a body up to a
 * limit) and says what to answer when the bytes are not a request we take: 400
 * for bad syntax or a path with NUL, an encoded slash or a dot segment, 414 for a
 * URL past HTTP_URL_MAX, 431 for more than HTTP_HEADERS_MAX headers or
 * HTTP_HEAD_BYTES_MAX bytes of them, 413 for a body past the limit, 501 for a
 * transfer coding we do not do. No network here: http.c feeds it, and so does
 * the fuzz target.
 */
#ifndef PARLEY_HTTP_PARSE_H
#define PARLEY_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include <http_parser.h>

#define HTTP_URL_MAX 8192
#define HTTP_HEADERS_MAX 64
#define HTTP_HEAD_BYTES_MAX 16384

struct http_header {
	char *name;			/* as sent; compared without case */
	char *value;
};

/* One request, as parsed. */
struct http_msg {
	char method[16];		/* "GET", "PUT", ... */
	char *url;			/* the request target as sent */
	size_t url_len;
	char *path;			/* its path, percent-decoded, checked */
	char *query;			/* its query as sent, or NULL */
	struct http_header headers[HTTP_HEADERS_MAX];
	unsigned nheaders;
	size_t head_bytes;		/* of names and values so far */
	char *body;			/* NUL-terminated; NULL when empty */
	size_t body_len, body_cap;
	bool keep_alive;		/* the client wants the connection kept */
	bool upgrade;			/* an Upgrade request (WebSocket) */
	unsigned short http_major, http_minor;
};

struct http_in;

/*
 * What the owner hears as a request comes (both may be NULL):
 * on_head: the headers are in and checked. The owner may take the request now
 *   (http_in_take) and set in->stream, so that the body comes to on_data in
 *   pieces instead of being kept (an upload), with in->body_max its limit.
 *   Returns 0, or -1 after setting in->error (http_in_fail).
 * on_data: a piece of a streamed body. Returns 0, 1 to stop feeding after the
 *   bytes of this http_in_feed() until http_in_resume() (the disk is behind),
 *   or -1 after http_in_fail.
 */
struct http_in_ops {
	int (*on_head)(struct http_in *in, void *arg);
	int (*on_data)(struct http_in *in, const char *data, size_t len, void *arg);
};

struct http_in {
	http_parser p;
	struct http_msg msg;
	size_t body_max;		/* the largest body (kept whole, or streamed) */
	size_t streamed;		/* bytes of the body given to on_data */
	const struct http_in_ops *ops;
	void *arg;
	bool stream;			/* on_head asked for the body in pieces */
	bool in_value;			/* the last header bytes were a value */
	bool complete;			/* msg is a whole request: feeding stops */
	bool held;			/* on_data said "stop": feeding waits */
	int error;			/* the status to answer, then close; 0 */
	const char *why;		/* for the log and the error body */
};

void http_in_init(struct http_in *in, size_t body_max);
void http_in_set_ops(struct http_in *in, const struct http_in_ops *ops, void *arg);
/* Sets the error to answer (the first one stays); returns -1. */
int http_in_fail(struct http_in *in, int status, const char *why);
/* Feeding may go on after on_data said "stop". */
void http_in_resume(struct http_in *in);
/* A streamed request is complete: ready for the next one. */
void http_in_done(struct http_in *in);
/* Feeds up to len bytes; returns how many were taken. It stops at the end of
 * a request (in->complete) or at an error (in->error). */
size_t http_in_feed(struct http_in *in, const char *data, size_t len);
/* Hands the request over (the caller frees it with http_msg_free): a whole
 * one (in->complete), which also readies the parser for the next request; or,
 * from on_head, its head, the body then streamed to on_data. */
void http_in_take(struct http_in *in, struct http_msg *out);
void http_in_free(struct http_in *in);

void http_msg_free(struct http_msg *m);
/* The value of the first header of that name (any case), or NULL. */
const char *http_msg_header(const struct http_msg *m, const char *name);

#endif

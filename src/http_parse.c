/*
 * http_parse.c - HTTP/1.x requests from bytes, bounded (http_parse.h).
 */
#include "http_parse.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct http_in *in_of(http_parser *p) { return p->data; }

int http_in_fail(struct http_in *in, int status, const char *why)
{
	if (!in->error) {
		in->error = status;
		in->why = why;
	}
	return -1;
}

#define fail http_in_fail

/* Appends len bytes to *s (NUL-terminated), at most max in all. */
static int append(char **s, size_t *slen, const char *data, size_t len, size_t max)
{
	char *n;

	if (*slen + len > max)
		return -1;
	if (!(n = realloc(*s, *slen + len + 1)))
		return -1;
	memcpy(n + *slen, data, len);
	*slen += len;
	n[*slen] = '\0';
	*s = n;
	return 0;
}

static int on_begin(http_parser *p)
{
	struct http_in *in = in_of(p);

	http_msg_free(&in->msg);
	memset(&in->msg, 0, sizeof(in->msg));
	in->in_value = false;
	in->stream = false;
	in->streamed = 0;
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct http_in *in = in_of(p);

	if (append(&in->msg.url, &in->msg.url_len, at, len, HTTP_URL_MAX) < 0)
		return fail(in, 414, "the URL is too long");
	return 0;
}

static int header_bytes(struct http_in *in, char **s, const char *at, size_t len)
{
	size_t cur = *s ? strlen(*s) : 0;

	if (in->msg.head_bytes + len > HTTP_HEAD_BYTES_MAX ||
	    append(s, &cur, at, len, HTTP_HEAD_BYTES_MAX) < 0)
		return fail(in, 431, "the headers are too large");
	in->msg.head_bytes += len;
	return 0;
}

static int on_field(http_parser *p, const char *at, size_t len)
{
	struct http_in *in = in_of(p);
	struct http_msg *m = &in->msg;

	if (in->in_value || m->nheaders == 0) {
		/* a new header begins */
		if (m->nheaders == HTTP_HEADERS_MAX)
			return fail(in, 431, "too many headers");
		m->nheaders++;
		in->in_value = false;
	}
	return header_bytes(in, &m->headers[m->nheaders - 1].name, at, len);
}

static int on_value(http_parser *p, const char *at, size_t len)
{
	struct http_in *in = in_of(p);
	struct http_msg *m = &in->msg;

	if (m->nheaders == 0)
		return fail(in, 400, "a header value without a name");
	in->in_value = true;
	return header_bytes(in, &m->headers[m->nheaders - 1].value, at, len);
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The path, percent-decoded, or NULL with *why: nothing that could name a
 * file outside a route's own space gets through (NUL, encoded slashes or
 * backslashes, "." and ".." segments). */
static char *decode_path(const char *s, size_t len, const char **why)
{
	char *out = malloc(len + 1), *o = out;
	const char *seg;

	if (!out) {
		*why = "out of memory";
		return NULL;
	}
	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)s[i];

		if (c == '%') {
			int hi = i + 2 < len ? hexval(s[i + 1]) : -1;
			int lo = i + 2 < len ? hexval(s[i + 2]) : -1;

			if (hi < 0 || lo < 0) {
				*why = "a bad percent escape in the path";
				goto bad;
			}
			c = hi << 4 | lo;
			i += 2;
			if (c == '/' || c == '\\') {
				*why = "an encoded slash in the path";
				goto bad;
			}
		}
		if (c == '\0' || c == '\\') {
			*why = c ? "a backslash in the path" : "a NUL in the path";
			goto bad;
		}
		*o++ = (char)c;
	}
	*o = '\0';
	if (out[0] != '/') {
		*why = "the path does not begin with /";
		goto bad;
	}
	for (seg = out + 1;; ) {
		const char *end = strchr(seg, '/');
		size_t n = end ? (size_t)(end - seg) : strlen(seg);

		if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.')) {
			*why = "a dot segment in the path";
			goto bad;
		}
		if (!end)
			break;
		seg = end + 1;
	}
	return out;
bad:
	free(out);
	return NULL;
}

static int on_headers_complete(http_parser *p)
{
	struct http_in *in = in_of(p);
	struct http_msg *m = &in->msg;
	struct http_parser_url u;
	const char *why = NULL, *te;

	snprintf(m->method, sizeof(m->method), "%s", http_method_str(p->method));
	m->http_major = p->http_major;
	m->http_minor = p->http_minor;
	m->keep_alive = http_should_keep_alive(p) != 0;
	m->upgrade = p->upgrade != 0;
	for (unsigned i = 0; i < m->nheaders; i++)
		if (!m->headers[i].value && !(m->headers[i].value = strdup("")))
			return fail(in, 500, "out of memory");
	if (!m->url)
		return fail(in, 400, "no request target");
	http_parser_url_init(&u);
	if (http_parser_parse_url(m->url, m->url_len, 0, &u) != 0 ||
	    !(u.field_set & (1 << UF_PATH)))
		return fail(in, 400, "the request target is not a path");
	if (!(m->path = decode_path(m->url + u.field_data[UF_PATH].off,
				    u.field_data[UF_PATH].len, &why)))
		return fail(in, 400, why);
	if ((u.field_set & (1 << UF_QUERY)) &&
	    !(m->query = strndup(m->url + u.field_data[UF_QUERY].off,
				 u.field_data[UF_QUERY].len)))
		return fail(in, 500, "out of memory");
	te = http_msg_header(m, "Transfer-Encoding");
	if (te && strcasecmp(te, "chunked") != 0)
		return fail(in, 501, "only the chunked transfer coding is done");
	if (in->ops && in->ops->on_head && in->ops->on_head(in, in->arg) < 0)
		return fail(in, 500, "refused");
	/* the limit as on_head left it (a route's own) */
	if (p->content_length != (uint64_t)-1 && p->content_length > in->body_max)
		return fail(in, 413, "the body is too large");
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct http_in *in = in_of(p);
	struct http_msg *m = &in->msg;

	if (in->stream) {
		int rc;

		if (in->streamed + len > in->body_max)
			return fail(in, 413, "the body is too large");
		in->streamed += len;
		rc = in->ops && in->ops->on_data ? in->ops->on_data(in, at, len, in->arg) : 0;
		if (rc < 0)
			return fail(in, 500, "the body could not be taken");
		/* Stop at the end of this feed: pausing the parser here would leave a
		 * body that ended with this piece without its message_complete. */
		if (rc > 0)
			in->held = true;
		return 0;
	}

	if (m->body_len + len > in->body_max)
		return fail(in, 413, "the body is too large");
	if (m->body_len + len + 1 > m->body_cap) {
		size_t cap = m->body_cap ? m->body_cap : 1024;
		char *n;

		while (cap < m->body_len + len + 1)
			cap *= 2;
		if (!(n = realloc(m->body, cap)))
			return fail(in, 500, "out of memory");
		m->body = n;
		m->body_cap = cap;
	}
	memcpy(m->body + m->body_len, at, len);
	m->body_len += len;
	m->body[m->body_len] = '\0';
	return 0;
}

static int on_complete(http_parser *p)
{
	struct http_in *in = in_of(p);

	in->complete = true;
	http_parser_pause(p, 1);	/* one request at a time */
	return 0;
}

static const http_parser_settings settings = {
	.on_message_begin = on_begin,
	.on_url = on_url,
	.on_header_field = on_field,
	.on_header_value = on_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_complete,
};

void http_in_init(struct http_in *in, size_t body_max)
{
	memset(in, 0, sizeof(*in));
	http_parser_init(&in->p, HTTP_REQUEST);
	in->p.data = in;
	in->body_max = body_max;
}

void http_in_set_ops(struct http_in *in, const struct http_in_ops *ops, void *arg)
{
	in->ops = ops;
	in->arg = arg;
}

void http_in_resume(struct http_in *in)
{
	in->held = false;
}

void http_in_done(struct http_in *in)
{
	in->complete = false;
	in->stream = false;
	http_parser_pause(&in->p, 0);
}

size_t http_in_feed(struct http_in *in, const char *data, size_t len)
{
	size_t n;
	enum http_errno e;

	if (in->complete || in->held || in->error || len == 0)
		return 0;
	n = http_parser_execute(&in->p, &settings, data, len);
	e = HTTP_PARSER_ERRNO(&in->p);
	if (e != HPE_OK && e != HPE_PAUSED && !in->error) {
		in->error = e == HPE_HEADER_OVERFLOW ? 431 : 400;
		in->why = http_errno_description(e);
	}
	if (!in->error && !in->complete && in->p.upgrade)
		fail(in, 400, "an upgrade without a complete request");
	return n;
}

void http_in_take(struct http_in *in, struct http_msg *out)
{
	*out = in->msg;
	memset(&in->msg, 0, sizeof(in->msg));
	in->in_value = false;
	if (in->complete) {
		in->complete = false;
		http_parser_pause(&in->p, 0);
	}
}

void http_in_free(struct http_in *in)
{
	http_msg_free(&in->msg);
}

void http_msg_free(struct http_msg *m)
{
	for (unsigned i = 0; i < m->nheaders; i++) {
		free(m->headers[i].name);
		free(m->headers[i].value);
	}
	free(m->url);
	free(m->path);
	free(m->query);
	free(m->body);
	memset(m, 0, sizeof(*m));
}

const char *http_msg_header(const struct http_msg *m, const char *name)
{
	for (unsigned i = 0; i < m->nheaders; i++)
		if (m->headers[i].name && strcasecmp(m->headers[i].name, name) == 0)
			return m->headers[i].value;
	return NULL;
}

/*
 * http.c - the HTTP server on the loop (http.h).
 *
 * Each connection is a conn (conn.c: TLS, buffers, idle timeout) with an
 * http_in parsing what it reads. A request must be whole within
 * HTTP_REQUEST_SECONDS of the connection's start or of the previous answer,
 * however slowly its bytes come (slowloris), or it gets 408 and the connection
 * ends. While a handler works on a request the connection is not read, so a
 * client that pipelines gets its answers in order and cannot queue work. A
 * connection makes at most HTTP_RATE requests a second (a burst of HTTP_BURST);
 * past that it gets 429 with Retry-After.
 */
#include "http.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "http_parse.h"
#include "listener.h"
#include "log.h"
#include "server.h"

#define HTTP_REQUEST_SECONDS 10		/* for a whole request to come */
#define HTTP_BODY_MAX (1u << 20)	/* a body taken whole (routes that stream: later) */
#define HTTP_REQUESTS_PER_CONN 1000	/* then Connection: close */
#define HTTP_RATE 50			/* requests per second per connection, */
#define HTTP_BURST 100			/* ... and the burst past it; then 429 */

struct http_stats http_stats;

struct route {
	char *path;
	size_t len;
	bool prefix, admin, upgrade;
	http_fn fn;			/* a request whose body is kept whole */
	const struct http_body_route *body;	/* or one that streams it */
	void *arg;
	struct route *next;
};

static struct route *routes;

struct http_conn {
	struct conn *c;
	const struct config_listener *l;
	struct http_in in;
	struct event *deadline;
	struct http_request *cur;	/* the request being answered */
	unsigned served;
	double tokens;			/* the request rate: a token bucket */
	struct timespec filled;		/* when tokens was last filled */
	bool counted_ip, closing;
	bool serving, taken;		/* inside serve(); given away (Upgrade) */
	struct http_conn *prev, *next;
};

static struct http_conn *all;

struct http_request {
	struct http_conn *hc;		/* NULL once the connection is gone */
	const struct route *route;	/* a streaming route, while its body comes */
	void *data;			/* the handler's */
	bool body_done;			/* the streamed body is whole (or refused) */
	struct http_msg msg;
	struct evbuffer *headers;	/* extra answer headers */
	char peer[64];
	struct timespec start;
};

/* ---- routes ---- */

static struct route *route_add(const char *path, bool admin, void *arg);

int http_route(const char *path, bool admin, http_fn fn, void *arg)
{
	struct route *r = route_add(path, admin, arg);

	if (!r)
		return -1;
	r->fn = fn;
	return 0;
}

int http_route_upgrade(const char *path, http_fn fn, void *arg)
{
	struct route *r = route_add(path, false, arg);

	if (!r)
		return -1;
	r->fn = fn;
	r->upgrade = true;
	return 0;
}

int http_route_body(const char *path, bool admin, const struct http_body_route *b, void *arg)
{
	struct route *r = route_add(path, admin, arg);

	if (!r)
		return -1;
	r->body = b;
	return 0;
}

static struct route *route_add(const char *path, bool admin, void *arg)
{
	struct route *r;

	for (r = routes; r; r = r->next)
		if (strcmp(r->path, path) == 0)
			return NULL;
	if (!(r = calloc(1, sizeof(*r))) || !(r->path = strdup(path))) {
		free(r);
		return NULL;
	}
	r->len = strlen(path);
	r->prefix = r->len > 1 && path[r->len - 1] == '/';
	r->admin = admin;
	r->arg = arg;
	r->next = routes;
	routes = r;
	return r;
}

bool http_route_exists(const char *path)
{
	for (const struct route *r = routes; r; r = r->next)
		if (strcmp(r->path, path) == 0)
			return true;
	return false;
}

void http_route_remove(const char *path)
{
	for (struct route **pp = &routes; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->path, path) == 0) {
			struct route *r = *pp;

			*pp = r->next;
			free(r->path);
			free(r);
			return;
		}
	}
}

/* The longest route that matches, among those this listener serves. */
static const struct route *route_find(const char *path, bool admin_listener)
{
	const struct route *best = NULL;

	for (const struct route *r = routes; r; r = r->next) {
		if (r->admin && !admin_listener)
			continue;
		if (r->prefix ? strncmp(path, r->path, r->len) != 0 : strcmp(path, r->path) != 0)
			continue;
		if (!best || r->len > best->len)
			best = r;
	}
	return best;
}

/* ---- answers ---- */

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	default: return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
	}
}

static void conn_ends(struct http_conn *hc);
static void hc_unlink(struct http_conn *hc);

/* Writes a whole answer; close says the connection ends after it. */
static void write_answer(struct http_conn *hc, int status, const char *type,
			 struct evbuffer *extra, const void *body, size_t len, bool head,
			 bool close)
{
	char date[64], line[512];
	time_t now = time(NULL);
	struct tm tm;
	int n;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: Parley\r\n"
		     "Content-Length: %zu\r\n%s%s%s%s", status, reason(status), date, len,
		     type ? "Content-Type: " : "", type ? type : "", type ? "\r\n" : "",
		     close ? "Connection: close\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	conn_write(hc->c, line, (size_t)n);
	if (extra && evbuffer_get_length(extra)) {
		size_t elen = evbuffer_get_length(extra);
		char *e = (char *)evbuffer_pullup(extra, (ev_ssize_t)elen);

		if (e)
			conn_write(hc->c, e, elen);
	}
	conn_write(hc->c, "\r\n", 2);
	if (!head && len)
		conn_write(hc->c, body, len);
	if (status >= 100 && status < 600)
		http_stats.by_class[status / 100]++;
}

/* An answer the core gives itself (an error), and the connection ends. */
static void refuse(struct http_conn *hc, int status, const char *why)
{
	char body[256];
	int n = snprintf(body, sizeof(body), "%d %s: %s\n", status, reason(status), why);

	log_info("http", "%s: %d %s", conn_peer(hc->c), status, why);
	write_answer(hc, status, "text/plain; charset=utf-8", NULL, body,
		     n > 0 ? (size_t)n : 0, false, true);
	conn_ends(hc);
}

static void arm_deadline(struct http_conn *hc)
{
	struct timeval tv = { HTTP_REQUEST_SECONDS, 0 };

	evtimer_add(hc->deadline, &tv);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *hc = arg;

	(void)fd;
	(void)what;
	if (hc->cur || hc->closing)
		return;	/* a handler has it: its own business how long it takes */
	refuse(hc, 408, "the request did not come whole in time");
}

/* ---- requests ---- */

const char *http_method(const struct http_request *r) { return r->msg.method; }
const char *http_path(const struct http_request *r) { return r->msg.path; }
const char *http_query(const struct http_request *r) { return r->msg.query; }
const char *http_peer(const struct http_request *r) { return r->peer; }
bool http_gone(const struct http_request *r) { return !r->hc; }

const struct config_listener *http_listener(const struct http_request *r)
{
	return r->hc ? r->hc->l : NULL;
}

bool http_secure(const struct http_request *r)
{
	return r->hc && r->hc->l->tls == TLS_DIRECT;
}

const char *http_header(const struct http_request *r, const char *name)
{
	return http_msg_header(&r->msg, name);
}

const char *http_body(const struct http_request *r, size_t *len)
{
	if (len)
		*len = r->msg.body_len;
	return r->msg.body;
}

void http_add_header(struct http_request *r, const char *name, const char *value)
{
	/* No CR or LF may come through from a value into the answer. */
	if (r->headers && !strpbrk(name, "\r\n:") && !strpbrk(value, "\r\n"))
		evbuffer_add_printf(r->headers, "%s: %s\r\n", name, value);
}

static void request_free(struct http_request *r)
{
	http_msg_free(&r->msg);
	if (r->headers)
		evbuffer_free(r->headers);
	free(r);
}

static void respond(struct http_request *r, int status, const char *content_type,
		    const void *body, size_t len, int fd, long long off);

static void closefd(int fd) { close(fd); }

void http_respond(struct http_request *r, int status, const char *content_type,
		  const void *body, size_t len)
{
	respond(r, status, content_type, body, len, -1, 0);
}

void http_respond_file(struct http_request *r, int status, const char *content_type,
		       int fd, long long offset, long long len)
{
	respond(r, status, content_type, NULL, (size_t)len, fd, offset);
}

static void respond(struct http_request *r, int status, const char *content_type,
		    const void *body, size_t len, int fd, long long off)
{
	struct http_conn *hc = r->hc;
	struct timespec now;
	bool ending, head = strcmp(r->msg.method, "HEAD") == 0;

	clock_gettime(CLOCK_MONOTONIC, &now);
	log_info("http", "%s \"%s %.200s\" %d %zu %.1f ms", r->peer, r->msg.method,
		 r->msg.url ? r->msg.url : "", status, len,
		 (now.tv_sec - r->start.tv_sec) * 1e3 + (now.tv_nsec - r->start.tv_nsec) / 1e6);
	if (!hc) {
		if (fd >= 0)
			closefd(fd);
		request_free(r);
		return;
	}
	/* An answer before the streamed body was read ends the connection: its
	 * rest cannot be told from a next request. */
	ending = !r->msg.keep_alive || hc->served >= HTTP_REQUESTS_PER_CONN ||
		server.shutting_down || (r->route && !r->body_done);
	write_answer(hc, status, content_type, r->headers, body, len, head || fd >= 0, ending);
	if (fd >= 0 && (head || len == 0 || conn_write_file(hc->c, fd, off, (long long)len) < 0)) {
		if (!head && len)
			ending = true;	/* the length was promised: end rather than lie */
		if (head || len == 0)
			closefd(fd);
	}
	hc->cur = NULL;
	request_free(r);
	if (ending) {
		conn_ends(hc);
		return;
	}
	arm_deadline(hc);
	/* Reading again; bytes already buffered (a pipelined request) are taken
	 * by serve()'s loop when the answer came at once, by a read event else. */
	conn_pause(hc->c, false);
}

bool http_upgrading(const struct http_request *r)
{
	return r->msg.upgrade;
}

struct conn *http_take(struct http_request *r, conn_cb cb, void *owner, bool *counted_ip,
		       const struct config_listener **l)
{
	struct http_conn *hc = r->hc;
	struct conn *c;
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	log_info("http", "%s \"%s %.200s\" 101 0 %.1f ms", r->peer, r->msg.method,
		 r->msg.url ? r->msg.url : "",
		 (now.tv_sec - r->start.tv_sec) * 1e3 + (now.tv_nsec - r->start.tv_nsec) / 1e6);
	if (!hc || hc->closing) {
		if (hc)
			hc->cur = NULL;
		request_free(r);
		return NULL;
	}
	conn_write(hc->c, "HTTP/1.1 101 Switching Protocols\r\n", 34);
	if (evbuffer_get_length(r->headers)) {
		size_t n = evbuffer_get_length(r->headers);
		char *e = (char *)evbuffer_pullup(r->headers, (ev_ssize_t)n);

		if (e)
			conn_write(hc->c, e, n);
	}
	conn_write(hc->c, "\r\n", 2);
	http_stats.by_class[1]++;
	c = hc->c;
	*counted_ip = hc->counted_ip;
	*l = hc->l;
	hc->cur = NULL;
	request_free(r);
	conn_set_owner(c, cb, owner);
	hc->taken = true;
	if (!hc->serving)
		hc_unlink(hc);	/* else at the end of serve() */
	return c;
}

/* Whether the connection may make one more request now. */
static bool rate_ok(struct http_conn *hc, const struct timespec *now)
{
	double dt = (double)(now->tv_sec - hc->filled.tv_sec) +
		    (now->tv_nsec - hc->filled.tv_nsec) / 1e9;

	hc->filled = *now;
	hc->tokens += dt * HTTP_RATE;
	if (hc->tokens > HTTP_BURST)
		hc->tokens = HTTP_BURST;
	if (hc->tokens < 1)
		return false;
	hc->tokens -= 1;
	return true;
}

/* The request whose head (or whole) the parser has: the connection's current. */
static struct http_request *request_new(struct http_conn *hc)
{
	struct http_request *r = calloc(1, sizeof(*r));

	if (!r || !(r->headers = evbuffer_new())) {
		free(r);
		return NULL;
	}
	http_in_take(&hc->in, &r->msg);
	r->hc = hc;
	snprintf(r->peer, sizeof(r->peer), "%s", conn_peer(hc->c));
	clock_gettime(CLOCK_MONOTONIC, &r->start);
	hc->cur = r;
	hc->served++;
	http_stats.requests++;
	evtimer_del(hc->deadline);
	return r;
}

void http_set_data(struct http_request *r, void *data) { r->data = data; }
void *http_data(const struct http_request *r) { return r->data; }

void http_resume(struct http_request *r)
{
	if (!r->hc || !r->hc->in.held)
		return;
	http_in_resume(&r->hc->in);
	conn_pause(r->hc->c, false);	/* buffered bytes come by a read event */
}

/* RFC 9110 §10.1.1: a client that waits with Expect: 100-continue is told to
 * send its body. */
static void continue_if_asked(struct http_conn *hc, const struct http_msg *m)
{
	const char *e = http_msg_header(m, "Expect");
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

	if (e && strcasecmp(e, "100-continue") == 0 && m->http_minor >= 1)
		conn_write(hc->c, cont, sizeof(cont) - 1);
}

/* http_in's on_head: a streaming route takes its request now, its body in
 * pieces; any other waits for the whole request (dispatch). */
static int on_head(struct http_in *in, void *arg)
{
	struct http_conn *hc = arg;
	const struct route *rt = route_find(in->msg.path, hc->l->admin);
	struct http_request *r;

	if (!rt || !rt->body || in->msg.upgrade) {
		continue_if_asked(hc, &in->msg);
		return 0;
	}
	in->stream = true;
	in->body_max = rt->body->body_max;
	if (!(r = request_new(hc)))
		return http_in_fail(in, 500, "out of memory");
	r->route = rt;
	if (!rate_ok(hc, &r->start)) {
		http_add_header(r, "Retry-After", "1");
		http_respond(r, 429, "text/plain; charset=utf-8", "too many requests\n", 18);
		return 0;
	}
	/* -1: it answered, and the connection ends */
	if (rt->body->begin(r, rt->arg) == 0 && hc->cur == r)
		continue_if_asked(hc, &r->msg);
	return 0;
}

static int on_data(struct http_in *in, const char *data, size_t len, void *arg)
{
	struct http_conn *hc = arg;
	struct http_request *r = hc->cur;

	(void)in;
	if (!r || !r->route || hc->closing)
		return 0;	/* answered already: the rest is dropped with the connection */
	if (r->route->body->data(r, data, len, r->route->arg) > 0) {
		conn_pause(hc->c, true);
		return 1;
	}
	return 0;
}

static const struct http_in_ops in_ops = { on_head, on_data };

static void dispatch(struct http_conn *hc)
{
	struct http_request *r = request_new(hc);
	const struct route *rt;

	if (!r) {
		refuse(hc, 500, "out of memory");
		return;
	}
	conn_pause(hc->c, true);
	if (!rate_ok(hc, &r->start)) {
		http_add_header(r, "Retry-After", "1");
		http_respond(r, 429, "text/plain; charset=utf-8", "too many requests\n", 18);
		return;
	}
	rt = route_find(r->msg.path, hc->l->admin);
	if (r->msg.upgrade && rt && !rt->upgrade) {
		http_respond(r, 501, "text/plain; charset=utf-8", "no upgrade here\n", 16);
		return;
	}
	if (!rt || !rt->fn) {
		http_respond(r, 404, "text/plain; charset=utf-8", "not found\n", 10);
		return;
	}
	rt->fn(r, rt->arg);
}

/* Whether the parser should be fed: no request being answered, or one whose
 * streamed body is still coming and not held. */
static bool feeding(const struct http_conn *hc)
{
	if (hc->closing || hc->in.held)
		return false;
	return !hc->cur || (hc->cur->route && !hc->cur->body_done);
}

/* Parses what came, and hands over each whole request in turn. */
static void serve(struct http_conn *hc)
{
	struct evbuffer *in = conn_input(hc->c);

	hc->serving = true;
	/* Each turn takes bytes or ends: bounded by what is buffered. */
	while (!hc->taken && feeding(hc) && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		size_t n;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		n = http_in_feed(&hc->in, v.iov_base, v.iov_len);
		evbuffer_drain(in, n);
		if (hc->in.error) {
			hc->serving = false;	/* not taken: an Upgrade is whole */
			refuse(hc, hc->in.error, hc->in.why ? hc->in.why : "bad request");
			return;
		}
		if (hc->in.complete && hc->in.stream) {
			/* a streamed request is whole; if its handler answered early,
			 * there is nothing to tell it (the connection is ending) */
			struct http_request *r = hc->cur;

			http_in_done(&hc->in);
			if (r && r->route && !r->body_done) {
				r->body_done = true;
				conn_pause(hc->c, true);	/* until the answer */
				r->route->body->end(r, r->route->arg);
			}
		} else if (hc->in.complete) {
			dispatch(hc);
		} else if (n == 0) {
			break;
		}
	}
	hc->serving = false;
	if (hc->taken)
		hc_unlink(hc);
}

/* ---- connections ---- */

static void conn_ends(struct http_conn *hc)
{
	if (hc->closing)
		return;
	hc->closing = true;
	evtimer_del(hc->deadline);
	conn_close(hc->c);
}

/* Everything of the HTTP connection but its conn. */
static void hc_unlink(struct http_conn *hc)
{
	if (hc->prev)
		hc->prev->next = hc->next;
	else
		all = hc->next;
	if (hc->next)
		hc->next->prev = hc->prev;
	http_in_free(&hc->in);
	event_free(hc->deadline);
	http_stats.open--;
	free(hc);
}

static void hc_free(struct http_conn *hc)
{
	struct http_request *r = hc->cur;

	if (r) {
		r->hc = NULL;	/* its handler answers into the void */
		hc->cur = NULL;
		if (r->route && !r->body_done) {
			r->body_done = true;
			r->route->body->gone(r, r->route->arg);
		}
	}
	if (hc->counted_ip)
		listener_ip_release(conn_peer(hc->c));
	conn_free(hc->c);
	hc_unlink(hc);
}

static void on_conn(struct conn *c, void *owner, enum conn_event ev, const char *why)
{
	struct http_conn *hc = owner;

	(void)c;
	switch (ev) {
	case CONN_READ:
		serve(hc);
		break;
	case CONN_TLS_UP:
	case CONN_CONNECTED:	/* accepted: never */
		break;
	case CONN_TIMEOUT:
	case CONN_EOF:
	case CONN_ERROR:
		if (ev == CONN_ERROR)
			log_debug("http", "%s: %s", conn_peer(hc->c), why ? why : "error");
		hc_free(hc);
		break;
	case CONN_CLOSED:
		hc_free(hc);
		break;
	}
}

static void http_accept(evutil_socket_t fd, const struct sockaddr *sa,
			const struct config_listener *l)
{
	struct http_conn *hc = calloc(1, sizeof(*hc));

	if (!hc) {
		evutil_closesocket(fd);
		return;
	}
	hc->l = l;
	if (!(hc->deadline = evtimer_new(server.base, on_deadline, hc))) {
		evutil_closesocket(fd);
		free(hc);
		return;
	}
	if (!(hc->c = conn_new(fd, sa, l->tls == TLS_DIRECT, on_conn, hc))) {
		event_free(hc->deadline);
		free(hc);
		return;
	}
	http_in_init(&hc->in, HTTP_BODY_MAX);
	http_in_set_ops(&hc->in, &in_ops, hc);
	hc->tokens = HTTP_BURST;
	clock_gettime(CLOCK_MONOTONIC, &hc->filled);
	hc->next = all;
	if (all)
		all->prev = hc;
	all = hc;
	http_stats.open++;
	conn_set_timeout(hc->c, server.cfg->limits.idle_timeout);
	if (!listener_ip_acquire(conn_peer(hc->c))) {
		refuse(hc, 503, "too many connections from your address");
		return;
	}
	hc->counted_ip = true;
	arm_deadline(hc);
}

int http_init(void)
{
	return listener_register(LISTEN_HTTP, http_accept);
}

void http_shutdown(void)
{
	while (all)
		hc_free(all);
	while (routes)
		http_route_remove(routes->path);
}

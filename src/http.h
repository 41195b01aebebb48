/*
 * http.h - the HTTP server on Parley's loop, for the <listen type="http">
 * listeners (plain or direct TLS): routes registered by path, requests one at
 * a time per connection with keep-alive, bounded (http_parse.h), each answered
 * with an access log line at info.
 *
 * A route is a path ("/health") or a prefix ending in '/' ("/upload/"); the
 * longest that matches wins. An admin route (metrics, health) is served only
 * on listeners with admin="true", so it stays off public ports unless the
 * config asks. A handler answers with http_respond(), now or later (after a
 * database query), exactly once; reading the connection waits meanwhile.
 */
#ifndef PARLEY_HTTP_H
#define PARLEY_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "conn.h"

struct config;
struct config_listener;
struct http_request;

typedef void (*http_fn)(struct http_request *req, void *arg);

/* Call before http_start(); returns 0, or -1 (path taken, no memory). */
int http_route(const char *path, bool admin, http_fn fn, void *arg);
void http_route_remove(const char *path);
/* Whether a route is registered at exactly this path. */
bool http_route_exists(const char *path);
/* A route that may also take Upgrade requests (WebSocket): fn gets every
 * request of the path; http_upgrading() says which kind it is. Other routes
 * answer an Upgrade with 501. */
int http_route_upgrade(const char *path, http_fn fn, void *arg);
bool http_upgrading(const struct http_request *r);
/*
 * Takes an Upgrade request's connection: writes "101 Switching Protocols"
 * with the headers added (http_add_header), logs, frees r and hands the
 * connection to cb/owner, with the bytes that came after the request still in
 * conn_input(). *counted_ip says whether it holds a slot of the per-address
 * count (listener_ip_release when it ends). NULL if the connection is gone.
 */
struct conn *http_take(struct http_request *r, conn_cb cb, void *owner, bool *counted_ip,
		       const struct config_listener **l);

/*
 * A route that takes its request bodies in pieces (an upload), up to body_max:
 * begin: the headers are in; 0 takes the body, or answer now (http_respond)
 *   and return -1 (the connection then ends: the body is not read).
 * data: a piece of the body; 0, or 1 to stop reading until http_resume(r).
 * end: the body is whole; answer now or later.
 * gone: the connection ended before end; finish what is in flight, then
 *   answer (into the void: http_respond frees r).
 */
struct http_body_route {
	int (*begin)(struct http_request *r, void *arg);
	int (*data)(struct http_request *r, const char *p, size_t n, void *arg);
	void (*end)(struct http_request *r, void *arg);
	void (*gone)(struct http_request *r, void *arg);
	size_t body_max;
};
int http_route_body(const char *path, bool admin, const struct http_body_route *b,
		    void *arg);
void http_resume(struct http_request *r);
/* What a handler keeps with a request. */
void http_set_data(struct http_request *r, void *data);
void *http_data(const struct http_request *r);

/* Registers the transport for <listen type="http"> (before listeners_start). */
int http_init(void);
/* Frees the routes and any connection left (at exit). */
void http_shutdown(void);

const char *http_method(const struct http_request *r);
const char *http_path(const struct http_request *r);	/* decoded, checked */
const char *http_query(const struct http_request *r);	/* as sent, or NULL */
const char *http_header(const struct http_request *r, const char *name);
const char *http_body(const struct http_request *r, size_t *len);
const char *http_peer(const struct http_request *r);
/* The listener the request came in on, and whether that one speaks TLS (a
 * BOSH session is secure when the request that made it was). NULL and false
 * once the connection is gone. */
const struct config_listener *http_listener(const struct http_request *r);
bool http_secure(const struct http_request *r);
/* Whether the connection is gone (an answer now is thrown away). */
bool http_gone(const struct http_request *r);

/* Adds a header to the answer (before http_respond). */
void http_add_header(struct http_request *r, const char *name, const char *value);
/* Sends the answer (the body is copied; for HEAD, only its length goes) and
 * frees r. */
void http_respond(struct http_request *r, int status, const char *content_type,
		  const void *body, size_t len);

/* The same with len bytes of the open file fd from offset as the body (a
 * download); the connection closes fd when it is written. */
void http_respond_file(struct http_request *r, int status, const char *content_type,
		       int fd, long long offset, long long len);

/* Counters for /metrics. */
struct http_stats {
	unsigned long long requests, by_class[6];	/* 1xx..5xx at [1]..[5] */
	unsigned open;
};
extern struct http_stats http_stats;

#endif

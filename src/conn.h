/*
 * conn.h - one network connection: a socket, maybe TLS, its buffers.
 *
 * A thin layer over a libevent bufferevent that the stream layers (c2s, later
 * s2s and components) own. It upgrades to TLS in place (STARTTLS) once the
 * pending output is written, drops any plaintext that arrived after the STARTTLS
 * request (no command injection), closes after flushing, and bounds what it
 * buffers in each direction.
 */
#ifndef PARLEY_CONN_H
#define PARLEY_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <event2/util.h>
#include <openssl/ssl.h>

#include "xml.h"

struct conn;
struct evbuffer;
struct sockaddr;

enum conn_event {
	CONN_READ,	/* bytes are waiting in conn_input() */
	CONN_EOF,	/* the peer closed */
	CONN_ERROR,	/* socket or TLS error (why says which) */
	CONN_TIMEOUT,	/* nothing read for the idle timeout */
	CONN_CLOSED,	/* conn_close() finished flushing: the owner frees now */
	CONN_TLS_UP,	/* the TLS handshake finished */
};

typedef void (*conn_cb)(struct conn *c, void *owner, enum conn_event ev, const char *why);

/* direct_tls: TLS from the first byte. Returns NULL (fd closed) on failure. */
struct conn *conn_new(evutil_socket_t fd, const struct sockaddr *sa, bool direct_tls,
		      conn_cb cb, void *owner);
void conn_free(struct conn *c);
/* Hands the connection to a new owner (an HTTP connection upgraded to a
 * WebSocket): its events go to cb from now on. */
void conn_set_owner(struct conn *c, conn_cb cb, void *owner);
/* At exit, before the event base goes: frees the write batching's event. */
void conn_shutdown(void);

struct evbuffer *conn_input(struct conn *c);
int conn_write(struct conn *c, const void *data, size_t len);
/* len bytes of the file fd from offset; the connection closes fd when done
 * (also on failure: -1). */
int conn_write_file(struct conn *c, int fd, long long offset, long long len);
/* Serializes node into the output; ns is the stream's default namespace. */
int conn_write_xml(struct conn *c, const struct xml_node *node, const char *ns);
/* The same for a stanza many streams get: the tree's bytes are serialized once
 * (xml_bytes) and shared, with this stream's 'to' written in front of them. */
int conn_write_to(struct conn *c, const struct xml_node *node, const char *ns,
		  const char *to);
/* The bytes of b from off, written by reference (b is kept until they are
 * out): what a framing writes around a stanza's shared bytes. */
int conn_write_ref(struct conn *c, struct xml_bytes *b, size_t off);
size_t conn_output_pending(const struct conn *c);

/* Starts TLS once the output written so far is flushed. */
int conn_starttls(struct conn *c);
/* Stops reading; CONN_CLOSED comes when the output is flushed (or at once). */
void conn_close(struct conn *c);
/* Stops or resumes reading (a stanza is waiting for the database). */
void conn_pause(struct conn *c, bool paused);
void conn_set_timeout(struct conn *c, unsigned seconds);

bool conn_is_tls(const struct conn *c);
SSL *conn_ssl(const struct conn *c);
const char *conn_peer(const struct conn *c);	/* "192.0.2.1" / "2001:db8::1" */
unsigned long long conn_bytes_in(const struct conn *c);
unsigned long long conn_bytes_out(const struct conn *c);

#endif

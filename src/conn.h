/*
 * conn.h - one network connection: a socket, maybe TLS, its buffers.
 *
 * A thin layer over a libevent bufferevent that the stream layers (c2s, s2s,
 * components) own. It upgrades to TLS in place (STARTTLS) once the pending
 * output is written, drops any plaintext that arrived after the STARTTLS
 * request (no command injection), closes after flushing, and bounds what it
 * buffers in each direction. Accepted connections are TLS servers; outgoing
 * ones (conn_connect, for s2s) are TLS clients with an SSL the caller makes.
 */
#ifndef PARLEY_CONN_H
#define PARLEY_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <event2/util.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

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
	CONN_CONNECTED,	/* conn_connect(): TCP is up (direct TLS: CONN_TLS_UP follows) */
};

typedef void (*conn_cb)(struct conn *c, void *owner, enum conn_event ev, const char *why);

/* Makes the server-side SSL of an accepted connection: tls_new_server (c2s,
 * HTTP) or tls_new_server_s2s (asks the peer server for its certificate). */
typedef SSL *(*conn_tls_fn)(void);

/* An accepted socket. direct_tls: TLS from the first byte. Returns NULL (fd
 * closed) on failure. Its TLS, direct or by conn_starttls(), is
 * tls_new_server()'s. */
struct conn *conn_new(evutil_socket_t fd, const struct sockaddr *sa, bool direct_tls,
		      conn_cb cb, void *owner);
/* The same with the SSL made by tls_new, for direct TLS and conn_starttls(). */
struct conn *conn_new_ex(evutil_socket_t fd, const struct sockaddr *sa, bool direct_tls,
			 conn_tls_fn tls_new, conn_cb cb, void *owner);
/*
 * An outgoing TCP connection to sa (IPv4 or IPv6), non-blocking. client_ssl
 * (from tls_new_client(), owned by the connection from here on, also when
 * this fails): direct TLS, the handshake starting once TCP is up; NULL:
 * plain. The owner hears CONN_CONNECTED when TCP is up, then for direct TLS
 * CONN_TLS_UP; CONN_ERROR when the connect fails or takes more than
 * timeout_s seconds (0: no limit), never from within this call. timeout_s is
 * also the idle timeout until conn_set_timeout() changes it, so a handshake
 * that stalls ends in CONN_TIMEOUT. Nothing may be written before
 * CONN_CONNECTED. Returns NULL (errno set) only when no socket can be made.
 */
struct conn *conn_connect(const struct sockaddr *sa, socklen_t len, SSL *client_ssl,
			  unsigned timeout_s, conn_cb cb, void *owner);
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

/* Starts TLS, as the server, once the output written so far is flushed
 * (<proceed/> goes out in plain text first). */
int conn_starttls(struct conn *c);
/* Starts TLS as the client with client_ssl (from tls_new_client(); the
 * connection owns it from here on, also on failure), once the output is
 * flushed: the caller read <proceed/>, and whatever came after it in plain
 * text is dropped. CONN_TLS_UP when the handshake is done. */
int conn_starttls_client(struct conn *c, SSL *client_ssl);
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

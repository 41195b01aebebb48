/*
 * tls.h - OpenSSL contexts for the listeners, one per certificate, chosen by SNI.
 *
 * Every context is TLS 1.2+, modern ciphers only, no compression or
 * renegotiation, and releases its read/write buffers while a connection is idle
 * (SSL_MODE_RELEASE_BUFFERS): most of an idle TLS session's memory.
 */
#ifndef PARLEY_TLS_H
#define PARLEY_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/ssl.h>

#include "config.h"

/* Loads the default certificate and each host's. Problems as "FILE:LINE: ..."
 * through errs; returns 0 or -1. Without any certificate, TLS is unavailable
 * (tls_available() false). */
int tls_init(const struct config *cfg, struct config_errors *errs);
void tls_free(void);
bool tls_available(void);

/* A new server-side SSL object; SNI switches it to the named host's context. */
SSL *tls_new_server(void);

/* Channel-binding data for SCRAM-*-PLUS. tls-exporter needs TLS 1.3 (RFC 9266);
 * tls-server-end-point is the hash of our certificate (RFC 5929 §4). Return the
 * length written to out (at most outlen), or 0 when unavailable. */
size_t tls_cb_exporter(SSL *ssl, unsigned char *out, size_t outlen);
size_t tls_cb_server_end_point(SSL *ssl, unsigned char *out, size_t outlen);
/* tls-unique (RFC 5929 §3): the client's Finished message. RFC 9266 retires it
 * for TLS 1.3, but clients such as slixmpp still send it there; without session
 * resumption (we issue no tickets) the client Finished is unique per connection,
 * so it is accepted rather than failing those clients. */
size_t tls_cb_unique(SSL *ssl, unsigned char *out, size_t outlen);

#endif

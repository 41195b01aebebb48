/*
 * tls.h - OpenSSL contexts: the listeners', one per certificate, chosen by SNI,
 * and the server-to-server ones, with the trust store that judges a peer
 * server's certificate.
 *
 * Every context is TLS 1.2+, modern ciphers only, no compression or
 * renegotiation, and releases its read/write buffers while a connection is idle
 * (SSL_MODE_RELEASE_BUFFERS): most of an idle TLS session's memory.
 *
 * s2s TLS never fails a handshake over the peer's certificate: the chain is
 * verified during the handshake and the outcome recorded, and the s2s code
 * decides afterwards with tls_peer_check() whether the peer is authenticated
 * (SASL EXTERNAL), may still use dialback, or must go.
 */
#ifndef PARLEY_TLS_H
#define PARLEY_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/ssl.h>

#include "config.h"

/* Loads the default certificate and each host's, and, when s2s is enabled, the
 * s2s trust store: <s2s ca-file ca-path> when either is set (then only those),
 * else the system's default. Problems as "FILE:LINE: ..." through errs;
 * returns 0 or -1. Without any certificate, TLS is unavailable
 * (tls_available() false) but for outgoing s2s, which then presents none. */
int tls_init(const struct config *cfg, struct config_errors *errs);
void tls_free(void);
bool tls_available(void);

/* A new server-side SSL object; SNI switches it to the named host's context. */
SSL *tls_new_server(void);

/* The same for an s2s listener: it also asks the peer server for its
 * certificate and verifies the chain against the s2s store, never failing the
 * handshake over it (a peer without one may still use dialback). ALPN
 * "xmpp-server" is accepted when offered (XEP-0368). NULL without TLS or with
 * s2s disabled. */
SSL *tls_new_server_s2s(void);

/* A new client-side SSL object for an outgoing s2s stream from our_domain to
 * peer_domain (both prepared): SNI peer_domain, as RFC 6120 §13.7.2 requires
 * (A-labels; none for an IP literal); presents our_domain's certificate (the
 * default one for a domain without its own; none if there is no certificate)
 * so the peer can use SASL EXTERNAL; verifies the peer's chain without failing
 * the handshake. direct_tls: TLS from the first byte (XEP-0368), offering ALPN
 * "xmpp-server"; false for STARTTLS. NULL with s2s disabled or out of memory. */
SSL *tls_new_client(const char *our_domain, const char *peer_domain, bool direct_tls);

enum tls_peer {
	TLS_PEER_NONE,		/* the peer sent no certificate */
	TLS_PEER_INVALID,	/* its chain did not verify, or it does not name domain */
	TLS_PEER_VALID,		/* trusted, and it names domain (RFC 6120 §13.7.2) */
};

/* After the handshake on an SSL from tls_new_client() or tls_new_server_s2s():
 * whether the peer's certificate authenticates domain (prepared). On NONE and
 * INVALID, why (may be NULL) says why, e.g. "certificate has expired",
 * "unable to get local issuer certificate", or certid_matches()'s reason. */
enum tls_peer tls_peer_check(SSL *ssl, const char *domain, char *why, size_t whylen);

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

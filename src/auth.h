/*
 * auth.h - SASL authentication of a c2s stream against the users table.
 *
 * Glue between the stream (c2s), the mechanisms (sasl.c), PostgreSQL (the
 * credentials) and the worker threads (PLAIN's PBKDF2). Each auth_step() answers
 * exactly once through its callback, possibly before it returns. Failed attempts
 * are counted per address: past half of <limits auth-attempts> per minute the
 * failure answer is delayed, past all of them the stream is refused.
 */
#ifndef PARLEY_AUTH_H
#define PARLEY_AUTH_H

#include <libpq-fe.h>
#include <openssl/ssl.h>
#include <stddef.h>

#include "config.h"
#include "xml.h"

enum auth_result {
	AUTH_CONTINUE,	/* payload_xml is a <challenge/> */
	AUTH_SUCCESS,	/* payload_xml is <success/>, user the localpart */
	AUTH_FAILURE,	/* payload_xml is <failure/>: the client may try again */
	AUTH_REFUSED,	/* payload_xml is <failure/>; too many failures: close */
};

typedef void (*auth_cb)(void *arg, enum auth_result r, const char *payload_xml,
			const char *user);

struct auth;

/* ssl: the stream's TLS session (NULL in plain text), for channel binding. */
struct auth *auth_new(const char *host, const char *peer, SSL *ssl, enum tls_mode mode);
/* el is <auth/>, <response/> or <abort/> in the SASL namespace. */
int auth_step(struct auth *a, const struct xml_node *el, auth_cb cb, void *arg);
/* Safe with a step outstanding: its callback then never runs. */
void auth_free(struct auth *a);

/* Reads (creating it on first use) the cluster-wide key for unknown users'
 * SCRAM salts. Blocking: once at start-up. */
int auth_load_secret(PGconn *conn, char *err, size_t errlen);

/* Adds <mechanisms/> with what this stream may use to the features. */
void auth_add_mechanisms(struct xml_node *features, SSL *ssl, enum tls_mode mode);

#endif

/*
 * sasl.h - the client side of SASL for the bench: which mechanism to use,
 * the PLAIN and SCRAM payloads (RFC 4616, RFC 5802, RFC 7677), and a cache of
 * derived SCRAM keys that --scram-cache keeps across runs.
 *
 * Payloads are base64 text here; the <auth/> and <response/> around them are
 * stream.c's. The SCRAM arithmetic is the server's own (src/scram.h) and so
 * is base64 (src/base64.h): the bench carries no second copy of either. The
 * password is opt.password for every account.
 */
#ifndef BENCH_SASL_H
#define BENCH_SASL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "options.h"

/* Failures, with a text in *why: the server's answer does not authenticate
 * (an auth failure), or the bench could not go on (internal). */
#define SASL_E_AUTH	(-1)
#define SASL_E_INTERNAL	(-2)

/* One login's SCRAM exchange; free() it. */
struct sasl_scram;

/* The mechanism --sasl asks for among those the server offers; false when
 * none fits. auto prefers SCRAM-SHA-256, then SCRAM-SHA-1, then PLAIN, and
 * PLAIN only over TLS; the caller refuses an explicit PLAIN without TLS. */
bool sasl_pick(bool plain, bool s1, bool s256, bool tls, enum sasl_choice *mech);
/* "PLAIN", "SCRAM-SHA-1" or "SCRAM-SHA-256". */
const char *sasl_mech_text(enum sasl_choice mech);

/* The initial response of <auth/> for user, base64 into out[cap]: PLAIN's
 * credentials, or SCRAM's client-first-message with a fresh nonce (then
 * *scram holds the exchange, even on failure). 0, or SASL_E_INTERNAL. */
int sasl_initial(enum sasl_choice mech, const char *user, struct sasl_scram **scram,
		 char *out, size_t cap, const char **why);

/* The payload of a <challenge/> or <success/>: text[0, n) (whitespace is
 * skipped, in place) decoded to a NUL-terminated msg[cap] of *len bytes;
 * empty or "=" is no payload (RFC 6120 §6.4.2). -1 if not base64. */
int sasl_decode(char *text, size_t n, char *msg, size_t cap, size_t *len);

/* A server message of the exchange (msg as sasl_decode() gave it, not empty):
 * the server-first-message of a challenge is answered, base64 into out[cap];
 * a v= (in a challenge or the success) is checked against the key and, once
 * it is right, the keys go to the --scram-cache file. Returns 1 when out is
 * to be sent as a <response/>, 0 when there is nothing to send, or SASL_E_*.
 * Once verified, every further message is 0. */
int sasl_scram_step(struct sasl_scram *sc, const char *msg, bool challenge, char *out,
		    size_t cap, const char **why);
/* The server proved it knows the key (its v= was right). */
bool sasl_scram_verified(const struct sasl_scram *sc);

/* Loads the keys that path holds for opt.password and opens it to append
 * new ones. Trouble is noted, not fatal: the run only derives more keys. */
void sasl_cache_open(const char *path);
/* PBKDF2 derivations this process ran (the cache missed). */
uint64_t sasl_pbkdf2_runs(void);

#endif

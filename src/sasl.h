/*
 * sasl.h - server side of the SASL mechanisms a c2s stream offers: PLAIN
 * (RFC 4616), SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677), and their
 * -PLUS variants with channel binding "tls-exporter" (RFC 9266) or
 * "tls-server-end-point" (RFC 5929).
 *
 * Pure: no I/O, no event loop, no database. A session is driven in steps
 * because its credentials arrive later (PostgreSQL) and PLAIN's PBKDF2 runs on
 * a worker thread:
 *
 *	s = sasl_new(mech, &opts);
 *	st = sasl_start(s, initial_response, len);	(or sasl_start_base64)
 *	loop:
 *	  SASL_CHALLENGE        send sasl_out() in a <challenge/>; the client's
 *	                        <response/> goes to sasl_step()
 *	  SASL_NEED_CREDENTIALS fetch the credentials of sasl_username() for
 *	                        sasl_cred_hash(); pass them (or NULL: no such user)
 *	                        to sasl_set_credentials()
 *	  SASL_NEEDS_WORK       run sasl_work() off the loop, then sasl_finish()
 *	  SASL_SUCCESS          authenticated as sasl_username(); send <success/>
 *	                        with sasl_out() (empty: no additional data). The
 *	                        caller still checks sasl_authzid() (see below)
 *	  SASL_FAILURE          send <failure/> with sasl_condition(), log
 *	                        sasl_text(); the session is finished
 *	sasl_free(s);
 *
 * An unknown user is not told apart from a known one: SCRAM answers with a
 * salt derived from the username and the server secret, and PLAIN runs the
 * same PBKDF2; both fail only at the end, with "not-authorized".
 *
 * Any call out of order, or after SUCCESS or FAILURE, returns SASL_FAILURE and
 * leaves the session failed. Every failure frees what the step allocated; the
 * session owns everything and sasl_free() releases and wipes it.
 *
 * Passwords are used as their UTF-8 bytes, without SASLprep: the same for
 * ASCII passwords, which is what nearly every account uses.
 *
 * Thread safety: functions on different sessions may run on different threads;
 * one session is used by one thread at a time (sasl_work() on the worker while
 * the loop leaves that session alone). scram_cred_derive*() touch no globals.
 */
#ifndef PARLEY_SASL_H
#define PARLEY_SASL_H

#include <stdbool.h>
#include <stddef.h>

#include "scram.h"		/* enum scram_hash, SCRAM_MAX_KEY, scram_hash_len() */

/* The largest client message a step accepts, decoded (bytes). */
#define SASL_MAX_MESSAGE 4096
/* The largest username (authentication identity), in bytes of UTF-8. */
#define SASL_MAX_USERNAME 1023
/* The largest authzid: a JID is at most 3071 bytes (RFC 7622). */
#define SASL_MAX_AUTHZID 3071
/* The largest password accepted by PLAIN and by scram_cred_derive(). */
#define SASL_MAX_PASSWORD 1023

/* ---- mechanisms ---- */

enum sasl_mech {
	SASL_PLAIN,
	SASL_SCRAM_SHA_1,
	SASL_SCRAM_SHA_1_PLUS,
	SASL_SCRAM_SHA_256,
	SASL_SCRAM_SHA_256_PLUS,
	SASL_MECH_COUNT
};

/* Looks a mechanism up by its exact (upper-case) name. Returns 0, or -1 when
 * Parley has no such mechanism ("invalid-mechanism"). */
int sasl_mech_find(const char *name, enum sasl_mech *mech);
/* "PLAIN", "SCRAM-SHA-1", ...; NULL for an out-of-range value. */
const char *sasl_mech_name(enum sasl_mech mech);

/* Fills names (room for SASL_MECH_COUNT) with the mechanisms to advertise,
 * strongest first, and returns how many. tls: the stream is confidential (TLS,
 * or a local link the config trusts); cb: the TLS session gave channel-binding
 * data; plain_allowed: the config permits PLAIN. PLAIN needs tls and
 * plain_allowed; the -PLUS mechanisms need tls and cb. sasl_start() applies
 * the same rules, so a client cannot use what was not offered. */
size_t sasl_offer(bool tls, bool cb, bool plain_allowed, const char **names);

/* ---- stored credentials ---- */

#define SCRAM_SALT_LEN 16		/* salt made by scram_cred_derive() */
#define SCRAM_MAX_SALT 64		/* longest salt scram_cred_decode() accepts */
#define SCRAM_DEFAULT_ITERATIONS 4096	/* RFC 7677 §4 asks for at least this */
#define SCRAM_MIN_ITERATIONS 4096	/* floor for new credentials */
#define SCRAM_MAX_ITERATIONS 10000000	/* bounds the CPU one login can cost */

struct scram_cred {
	enum scram_hash hash;
	unsigned iterations;		/* 1..SCRAM_MAX_ITERATIONS */
	size_t salt_len;		/* 1..SCRAM_MAX_SALT */
	unsigned char salt[SCRAM_MAX_SALT];
	unsigned char stored_key[SCRAM_MAX_KEY];	/* scram_hash_len() bytes used */
	unsigned char server_key[SCRAM_MAX_KEY];
};

/* New credentials for password (NUL-terminated UTF-8, 1..SASL_MAX_PASSWORD
 * bytes) with a fresh random salt of SCRAM_SALT_LEN bytes. iterations must be
 * SCRAM_MIN_ITERATIONS..SCRAM_MAX_ITERATIONS. CPU-heavy: call it from a worker
 * thread. Returns 0, or -1 (bad argument, no randomness) with *out wiped. */
int scram_cred_derive(enum scram_hash hash, const char *password, unsigned iterations,
		      struct scram_cred *out);
/* The same with a given salt and any iteration count from 1 (imports, tests). */
int scram_cred_derive_salt(enum scram_hash hash, const char *password,
			   const unsigned char *salt, size_t salt_len, unsigned iterations,
			   struct scram_cred *out);

/* One storage string: "ITERATIONS$SALT$STOREDKEY$SERVERKEY", the last three in
 * base64; RFC 5802's example user (SHA-1, "pencil") is
 *	4096$QSXCR+Q6sek8bf92$6dlGYMOdZcOPutkcNY8U2g7vK9Y=$D+CSWLOshSulAsxiupA+qs2/fTE=
 * The hash is not in it: the column says which. A new string (free() it), or
 * NULL without memory or for an invalid cred. */
char *scram_cred_encode(const struct scram_cred *cred);
/* Parses what scram_cred_encode() made, for the given hash (the keys must be
 * its length). Returns 0, or -1 with *out wiped. */
int scram_cred_decode(enum scram_hash hash, const char *text, struct scram_cred *out);

/* ---- sessions ---- */

enum sasl_status {
	SASL_CHALLENGE,		/* send sasl_out() as a <challenge/> */
	SASL_NEED_CREDENTIALS,	/* call sasl_set_credentials() */
	SASL_NEEDS_WORK,	/* call sasl_work() on a worker, then sasl_finish() */
	SASL_SUCCESS,		/* authenticated; sasl_out() is the additional data */
	SASL_FAILURE,		/* see sasl_condition() and sasl_text() */
};

#define SASL_CB_MAX 4		/* channel-binding types a session can hold */
#define SASL_CB_TYPE_MAX 32	/* longest type name */
#define SASL_CB_DATA_MAX 128	/* longest channel-binding data */

/* Channel-binding data from TLS: type is "tls-exporter" or
 * "tls-server-end-point" (any name is matched literally against what the
 * client asks for). */
struct sasl_channel_binding {
	const char *type;
	const unsigned char *data;
	size_t len;			/* 1..SASL_CB_DATA_MAX */
};

struct sasl_options {
	bool tls;			/* as for sasl_offer() */
	bool plain_allowed;		/* as for sasl_offer() */
	const struct sasl_channel_binding *cb;	/* n_cb entries, copied */
	size_t n_cb;			/* 0..SASL_CB_MAX; 0: no -PLUS */
	/* Key for unknown users' fake salts: 16..64 random bytes, the same on
	 * every node and across restarts (or the salt announced for a name
	 * changes, which tells that the name is not an account). Copied. */
	const unsigned char *secret;
	size_t secret_len;
	/* Iteration count announced (and, for PLAIN, spent) for unknown users:
	 * what real accounts use. 0: SCRAM_DEFAULT_ITERATIONS. */
	unsigned fake_iterations;
};

struct sasl_session;

/* A session for mech. Copies what it needs from opts. NULL without memory or
 * when opts is invalid (no secret, too many or too long channel bindings). */
struct sasl_session *sasl_new(enum sasl_mech mech, const struct sasl_options *opts);
/* Wipes and frees; NULL is fine. */
void sasl_free(struct sasl_session *s);

/* Begins with the initial response ir[0..len) of <auth/>; ir NULL means the
 * client sent none (then SASL_CHALLENGE with an empty challenge, and the first
 * message comes to sasl_step()). Fails with "encryption-required" or
 * "invalid-mechanism" for a mechanism sasl_offer() would not offer.
 * Returns SASL_NEED_CREDENTIALS, SASL_CHALLENGE or SASL_FAILURE. */
enum sasl_status sasl_start(struct sasl_session *s, const unsigned char *ir, size_t len);
/* Feeds the client's next message (a <response/>). in is not read past len
 * and needs no NUL. Returns SASL_NEED_CREDENTIALS (after an empty challenge),
 * SASL_SUCCESS or SASL_FAILURE. */
enum sasl_status sasl_step(struct sasl_session *s, const unsigned char *in, size_t len);

/* Which credential to fetch: the mechanism's hash, SHA-256 for PLAIN. */
enum scram_hash sasl_cred_hash(const struct sasl_session *s);
/* Gives the user's credentials (copied), or NULL when there is no such user
 * or no credential for that hash. SCRAM wants cred->hash ==
 * sasl_cred_hash(); PLAIN takes either hash. SCRAM returns SASL_CHALLENGE
 * (server-first-message), PLAIN SASL_NEEDS_WORK; or SASL_FAILURE. */
enum sasl_status sasl_set_credentials(struct sasl_session *s, const struct scram_cred *cred);
/* PLAIN's PBKDF2. Touches only s: call it on a worker thread after
 * SASL_NEEDS_WORK, then sasl_finish() back on the loop. */
void sasl_work(struct sasl_session *s);
/* SASL_SUCCESS or SASL_FAILURE ("not-authorized"). */
enum sasl_status sasl_finish(struct sasl_session *s);

/* The authentication identity as sent (saslname decoded), valid UTF-8
 * without control characters, 1..SASL_MAX_USERNAME bytes; NULL before it is
 * known. The caller applies its own localpart rules to it. */
const char *sasl_username(const struct sasl_session *s);
/* The authorization identity the client asked for, NULL when none (an empty
 * one in PLAIN is none). If it is not the authenticated user's bare JID the
 * caller fails with "invalid-authzid": only the caller knows the domain. */
const char *sasl_authzid(const struct sasl_session *s);
/* The data to send with SASL_CHALLENGE or SASL_SUCCESS, NUL-terminated;
 * *len (if not NULL) gets its length, 0 meaning no data. Valid until the next
 * call on s. */
const char *sasl_out(const struct sasl_session *s, size_t *len);
/* After SASL_FAILURE: the RFC 6120 §6.5 condition ("not-authorized",
 * "malformed-request", "invalid-mechanism", "encryption-required",
 * "incorrect-encoding", "temporary-auth-failure", ...) and a short reason for
 * the log (not for the client: it may tell a missing user from a bad
 * password). NULL before any failure. */
const char *sasl_condition(const struct sasl_session *s);
const char *sasl_text(const struct sasl_session *s);

/* ---- the XMPP wire form (RFC 6120 §6.4.2) ---- */

/* sasl_start() and sasl_step() on the base64 character data of <auth/> or
 * <response/> (text NULL or "" when the element is empty; "=" is an empty
 * message). Bad base64 fails with "incorrect-encoding", oversized input with
 * "malformed-request". text is read up to its NUL. */
enum sasl_status sasl_start_base64(struct sasl_session *s, const char *text);
enum sasl_status sasl_step_base64(struct sasl_session *s, const char *text);
/* sasl_out() in base64 for the element's character data: "" when there is no
 * data (an empty <challenge/> or <success/>). A new string (free() it), NULL
 * without memory. */
char *sasl_out_base64(const struct sasl_session *s);

/* Tests only: use snonce (printable ASCII but ',', 1..64 bytes) as the
 * server's part of the nonce instead of 24 random bytes. Call it before
 * sasl_set_credentials(). Returns 0, or -1 for an unusable nonce. */
int sasl_set_nonce_for_test(struct sasl_session *s, const char *snonce);

#endif

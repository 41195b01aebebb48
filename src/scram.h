/*
 * scram.h - the key arithmetic of SCRAM (RFC 5802 §3, RFC 7677): from a
 * password to ClientKey, StoredKey and ServerKey, and the proof and the
 * signatures over an AuthMessage.
 *
 * Both ends of an exchange compute the same things, so both use this file:
 * the server (src/sasl.c) and the load generator's client (contrib/bench).
 * Message syntax, nonces, channel binding and stored credentials are the
 * callers' business; the test client (tests/integration) keeps its own copy
 * on purpose, so that a mistake here cannot hide on both sides.
 *
 * Pure: OpenSSL's digests only, no I/O, no state; safe from any thread.
 * Every key and digest is scram_hash_len() bytes, at most SCRAM_MAX_KEY.
 */
#ifndef PARLEY_SCRAM_H
#define PARLEY_SCRAM_H

#include <stdbool.h>
#include <stddef.h>

enum scram_hash {
	SCRAM_SHA_1,
	SCRAM_SHA_256,
	SCRAM_HASH_COUNT
};

#define SCRAM_MAX_KEY 32		/* SHA-256 */

/* Digest length: 20 or 32; 0 for an out-of-range value. */
size_t scram_hash_len(enum scram_hash hash);

/* SaltedPassword = PBKDF2(pw[0..pw_len), salt, iterations), then
 * ClientKey = HMAC(SaltedPassword, "Client Key"), StoredKey = H(ClientKey),
 * ServerKey = HMAC(SaltedPassword, "Server Key"). The password is used as its
 * bytes (no SASLprep). client_key and server_key may be NULL when not wanted.
 * CPU-heavy (iterations HMACs). Returns 0, or -1 (bad hash, OpenSSL failure);
 * the intermediate values are wiped either way. */
int scram_keys(enum scram_hash hash, const char *pw, size_t pw_len,
	       const unsigned char *salt, size_t salt_len, unsigned iterations,
	       unsigned char *client_key, unsigned char *stored_key,
	       unsigned char *server_key);

/* HMAC(key, msg[0..len)): ClientSignature with StoredKey, ServerSignature
 * with ServerKey. Returns 0, or -1. */
int scram_signature(enum scram_hash hash, const unsigned char *key, const void *msg,
		    size_t len, unsigned char *out);

/* The client's ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage).
 * Returns 0, or -1. */
int scram_client_proof(enum scram_hash hash, const unsigned char *client_key,
		       const unsigned char *stored_key, const void *auth, size_t len,
		       unsigned char *proof);

/* The server's check of a ClientProof: proof XOR HMAC(StoredKey, AuthMessage)
 * is a ClientKey whose hash must be StoredKey. Compared in constant time;
 * false on any failure. */
bool scram_proof_ok(enum scram_hash hash, const unsigned char *stored_key, const void *auth,
		    size_t len, const unsigned char *proof);

#endif

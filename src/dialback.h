/*
 * dialback.h - Server Dialback keys (XEP-0220, generated as XEP-0185 says).
 *
 * A key proves that a stream was opened by a server that knows the secret of
 * the originating domain: every node of a cluster shares the secret
 * (parley_secrets), so any of them can answer <db:verify/> for any stream.
 * Pure: no I/O, no logging (a key is never written to a log).
 */
#ifndef PARLEY_DIALBACK_H
#define PARLEY_DIALBACK_H

#include <stdbool.h>
#include <stddef.h>

#define DIALBACK_KEY_LEN 64	/* hex of HMAC-SHA256 */
#define DIALBACK_SECRET_LEN 32

/* XEP-0185 §3: HMAC-SHA256(hex(SHA256(secret)), "RECEIVING ORIGINATING STREAMID"),
 * in lower-case hex, into out (DIALBACK_KEY_LEN + 1 bytes). */
void dialback_key(const unsigned char *secret, size_t secret_len, const char *receiving,
		  const char *originating, const char *stream_id, char *out);
/* Whether key is the one for these names, compared in constant time. */
bool dialback_check(const unsigned char *secret, size_t secret_len, const char *receiving,
		    const char *originating, const char *stream_id, const char *key);

#endif

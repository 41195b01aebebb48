/*
 * dialback.c - Server Dialback keys (XEP-0185).
 */
#include "dialback.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

static void hex(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

void dialback_key(const unsigned char *secret, size_t secret_len, const char *receiving,
		  const char *originating, const char *stream_id, char *out)
{
	unsigned char digest[SHA256_DIGEST_LENGTH], mac[EVP_MAX_MD_SIZE];
	char key[2 * SHA256_DIGEST_LENGTH + 1];
	unsigned maclen = 0;
	size_t lr = strlen(receiving), lo = strlen(originating), li = strlen(stream_id);
	unsigned char msg[256 + 1 + 256 + 1 + 256];

	SHA256(secret, secret_len, digest);
	hex(digest, sizeof(digest), key);
	/* Domains are at most 1023 bytes in theory, 253 in DNS; ids are ours or
	 * bounded by the stream header's size: cut, never overflow. */
	if (lr > 256) lr = 256;
	if (lo > 256) lo = 256;
	if (li > 256) li = 256;
	memcpy(msg, receiving, lr);
	msg[lr] = ' ';
	memcpy(msg + lr + 1, originating, lo);
	msg[lr + 1 + lo] = ' ';
	memcpy(msg + lr + 2 + lo, stream_id, li);
	HMAC(EVP_sha256(), key, (int)strlen(key), msg, lr + lo + li + 2, mac, &maclen);
	hex(mac, maclen, out);
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(digest, sizeof(digest));
}

bool dialback_check(const unsigned char *secret, size_t secret_len, const char *receiving,
		    const char *originating, const char *stream_id, const char *key)
{
	char want[DIALBACK_KEY_LEN + 1];
	bool ok;

	if (!key || strlen(key) != DIALBACK_KEY_LEN)
		return false;
	dialback_key(secret, secret_len, receiving, originating, stream_id, want);
	ok = CRYPTO_memcmp(want, key, DIALBACK_KEY_LEN) == 0;
	OPENSSL_cleanse(want, sizeof(want));
	return ok;
}

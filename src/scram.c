/*
 * scram.c - SCRAM's keys, proof and signatures (RFC 5802 §3), shared by the
 * server's SASL and the bench's client so that the arithmetic exists once.
 * See scram.h.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "scram.h"

static const EVP_MD *scram_md(enum scram_hash hash)
{
	return hash == SCRAM_SHA_1 ? EVP_sha1() : EVP_sha256();
}

size_t scram_hash_len(enum scram_hash hash)
{
	switch (hash) {
	case SCRAM_SHA_1:
		return 20;
	case SCRAM_SHA_256:
		return 32;
	default:
		return 0;
	}
}

int scram_keys(enum scram_hash hash, const char *pw, size_t pw_len,
	       const unsigned char *salt, size_t salt_len, unsigned iterations,
	       unsigned char *client_key, unsigned char *stored_key,
	       unsigned char *server_key)
{
	const EVP_MD *md = scram_md(hash);
	size_t hlen = scram_hash_len(hash);
	unsigned char salted[SCRAM_MAX_KEY], ck[SCRAM_MAX_KEY];
	unsigned int mlen;
	int rc = -1;

	if (!hlen)
		return -1;
	if (!PKCS5_PBKDF2_HMAC(pw, (int)pw_len, salt, (int)salt_len, (int)iterations, md,
			       (int)hlen, salted))
		goto out;
	if (!HMAC(md, salted, (int)hlen, (const unsigned char *)"Client Key", 10, ck, &mlen))
		goto out;
	if (!EVP_Digest(ck, hlen, stored_key, NULL, md, NULL))
		goto out;
	if (server_key && !HMAC(md, salted, (int)hlen, (const unsigned char *)"Server Key", 10,
				server_key, &mlen))
		goto out;
	if (client_key)
		memcpy(client_key, ck, hlen);
	rc = 0;
out:
	OPENSSL_cleanse(salted, sizeof(salted));
	OPENSSL_cleanse(ck, sizeof(ck));
	return rc;
}

int scram_signature(enum scram_hash hash, const unsigned char *key, const void *msg,
		    size_t len, unsigned char *out)
{
	size_t hlen = scram_hash_len(hash);
	unsigned int mlen;

	if (!hlen || !HMAC(scram_md(hash), key, (int)hlen, msg, len, out, &mlen))
		return -1;
	return 0;
}

int scram_client_proof(enum scram_hash hash, const unsigned char *client_key,
		       const unsigned char *stored_key, const void *auth, size_t len,
		       unsigned char *proof)
{
	unsigned char sig[SCRAM_MAX_KEY];
	size_t hlen = scram_hash_len(hash);

	if (scram_signature(hash, stored_key, auth, len, sig) < 0)
		return -1;
	for (size_t i = 0; i < hlen; i++)
		proof[i] = client_key[i] ^ sig[i];
	return 0;
}

bool scram_proof_ok(enum scram_hash hash, const unsigned char *stored_key, const void *auth,
		    size_t len, const unsigned char *proof)
{
	unsigned char sig[SCRAM_MAX_KEY], key[SCRAM_MAX_KEY], h[EVP_MAX_MD_SIZE];
	size_t hlen = scram_hash_len(hash);
	bool ok;

	if (scram_signature(hash, stored_key, auth, len, sig) < 0)
		return false;
	for (size_t i = 0; i < hlen; i++)
		key[i] = proof[i] ^ sig[i];
	ok = EVP_Digest(key, hlen, h, NULL, scram_md(hash), NULL) &&
	     CRYPTO_memcmp(h, stored_key, hlen) == 0;
	OPENSSL_cleanse(key, sizeof(key));
	return ok;
}

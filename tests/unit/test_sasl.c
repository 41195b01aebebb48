/*
 * test_sasl.c - the SASL mechanisms and base64: RFC 4648 vectors and strict
 * rejection, the RFC 5802 and RFC 7677 example exchanges byte for byte, a
 * client computed here (with OpenSSL directly, not sasl.c) against the server
 * for both hashes with and without channel binding, unknown users that only
 * fail at the end, PLAIN, the "y" downgrade, malformed and oversized messages,
 * stored credentials, and the XMPP wire helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "base64.h"
#include "sasl.h"

static const unsigned char secret[32] = "0123456789abcdef0123456789abcde";
static const unsigned char exporter[32] = {
	0xa5, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
	0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b,
	0x1c, 0x1d, 0x1e, 0x1f,
};
static const unsigned char end_point[32] = "certificate hash, thirty-two by";

/* ---- helpers ---- */

/* A session as a TLS stream with PLAIN allowed would make, with both channel
 * bindings when cb is true. */
static struct sasl_session *session_with(enum sasl_mech mech, bool tls, bool cb, bool plain,
					 const unsigned char *key)
{
	const struct sasl_channel_binding cbs[2] = {
		{ "tls-exporter", exporter, sizeof(exporter) },
		{ "tls-server-end-point", end_point, sizeof(end_point) },
	};
	struct sasl_options o = {
		.tls = tls, .plain_allowed = plain, .cb = cbs, .n_cb = cb ? 2 : 0,
		.secret = key, .secret_len = 32, .fake_iterations = 0,
	};
	struct sasl_session *s = sasl_new(mech, &o);

	assert_non_null(s);
	return s;
}

static struct sasl_session *session(enum sasl_mech mech, bool cb)
{
	return session_with(mech, true, cb, true, secret);
}

static enum sasl_status start_str(struct sasl_session *s, const char *msg)
{
	return sasl_start(s, (const unsigned char *)msg, strlen(msg));
}

static enum sasl_status step_str(struct sasl_session *s, const char *msg)
{
	return sasl_step(s, (const unsigned char *)msg, strlen(msg));
}

static void assert_failed(struct sasl_session *s, enum sasl_status st, const char *cond)
{
	if (st != SASL_FAILURE)
		fail_msg("expected failure %s, got status %d", cond, (int)st);
	assert_non_null(sasl_condition(s));
	assert_string_equal(sasl_condition(s), cond);
	assert_non_null(sasl_text(s));
	assert_true(strlen(sasl_text(s)) > 0);
	assert_string_equal(sasl_out(s, NULL), "");
}

static void cred_for(enum scram_hash h, const char *password, const char *salt_b64,
		     struct scram_cred *c)
{
	unsigned char salt[64];
	size_t len;

	assert_int_equal(base64_decode(salt_b64, strlen(salt_b64), salt, sizeof(salt), &len), 0);
	assert_int_equal(scram_cred_derive_salt(h, password, salt, len, 4096, c), 0);
}

/* Standard base64 from OpenSSL, so the client does not lean on base64.c. */
static void b64(const unsigned char *in, size_t n, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

/* The value of attribute "X=" in a SCRAM message, copied into out. */
static void attr(const char *msg, const char *name, char *out, size_t outlen)
{
	const char *p = msg, *e;

	for (;;) {
		if (strncmp(p, name, strlen(name)) == 0)
			break;
		p = strchr(p, ',');
		if (!p)
			fail_msg("no %s in %s", name, msg);
		p++;
	}
	p += strlen(name);
	e = strchr(p, ',');
	if (!e)
		e = p + strlen(p);
	assert_true((size_t)(e - p) < outlen);
	memcpy(out, p, (size_t)(e - p));
	out[e - p] = '\0';
}

/* The client's side of SCRAM (RFC 5802 §3), written out from the RFC. */
struct client {
	enum scram_hash hash;
	char gs2[128];
	char first[2048];
	const char *bare;
	char final[4096];
	char want_v[128];
	const char *r_override;		/* sign this nonce instead of the server's */
};

static void client_first(struct client *c, enum scram_hash h, const char *gs2,
			 const char *user, const char *cnonce)
{
	c->hash = h;
	snprintf(c->gs2, sizeof(c->gs2), "%s", gs2);
	snprintf(c->first, sizeof(c->first), "%sn=%s,r=%s", gs2, user, cnonce);
	c->bare = c->first + strlen(gs2);
	c->r_override = NULL;
}

/* Builds c->final from the server-first-message with channel-binding data
 * cb (may be NULL) and optional extension ext, and the server-final the
 * client expects. */
static void client_final(struct client *c, const char *password, const char *server_first,
			 const unsigned char *cb, size_t cblen, const char *ext)
{
	const EVP_MD *md = c->hash == SCRAM_SHA_1 ? EVP_sha1() : EVP_sha256();
	size_t hlen = (size_t)EVP_MD_get_size(md), i;
	unsigned char salt[128], salted[32], ck[32], sk[32], stored[32], sig[32], proof[32];
	unsigned char cbind[256];
	char r[512], s64[256], it[32], cbind64[512], cwp[2048], auth[8192], p64[64], v64[64];
	unsigned int mlen;
	int slen;

	attr(server_first, "r=", r, sizeof(r));
	if (c->r_override)
		snprintf(r, sizeof(r), "%s", c->r_override);
	attr(server_first, "s=", s64, sizeof(s64));
	attr(server_first, "i=", it, sizeof(it));
	/* EVP_DecodeBlock counts padding as zero bytes: take them off. */
	slen = EVP_DecodeBlock(salt, (unsigned char *)s64, (int)strlen(s64));
	assert_true(slen > 0);
	slen -= (s64[strlen(s64) - 1] == '=') + (s64[strlen(s64) - 2] == '=');
	assert_int_equal(PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, slen,
					   atoi(it), md, (int)hlen, salted), 1);
	HMAC(md, salted, (int)hlen, (const unsigned char *)"Client Key", 10, ck, &mlen);
	HMAC(md, salted, (int)hlen, (const unsigned char *)"Server Key", 10, sk, &mlen);
	EVP_Digest(ck, hlen, stored, NULL, md, NULL);

	memcpy(cbind, c->gs2, strlen(c->gs2));
	if (cb)
		memcpy(cbind + strlen(c->gs2), cb, cblen);
	b64(cbind, strlen(c->gs2) + (cb ? cblen : 0), cbind64);
	snprintf(cwp, sizeof(cwp), "c=%s,r=%s%s%s", cbind64, r, ext ? "," : "", ext ? ext : "");
	snprintf(auth, sizeof(auth), "%s,%s,%s", c->bare, server_first, cwp);
	HMAC(md, stored, (int)hlen, (unsigned char *)auth, strlen(auth), sig, &mlen);
	for (i = 0; i < hlen; i++)
		proof[i] = ck[i] ^ sig[i];
	b64(proof, hlen, p64);
	snprintf(c->final, sizeof(c->final), "%s,p=%s", cwp, p64);
	HMAC(md, sk, (int)hlen, (unsigned char *)auth, strlen(auth), sig, &mlen);
	b64(sig, hlen, v64);
	snprintf(c->want_v, sizeof(c->want_v), "v=%s", v64);
}

/* Runs an exchange up to the server-first-message; cred NULL: unknown user. */
static void run_to_server_first(struct sasl_session *s, struct client *c,
				const struct scram_cred *cred)
{
	assert_int_equal(start_str(s, c->first), SASL_NEED_CREDENTIALS);
	assert_int_equal(sasl_set_credentials(s, cred), SASL_CHALLENGE);
}

/* ---- base64 ---- */

static void base64_vectors(void **state)
{
	static const char *const v[][2] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
	};
	unsigned char buf[16], bin[256];
	char out[512], *a;
	size_t i, len;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		assert_int_equal(base64_encode(v[i][0], strlen(v[i][0]), out), strlen(v[i][1]));
		assert_string_equal(out, v[i][1]);
		assert_int_equal(base64_encoded_len(strlen(v[i][0])), strlen(v[i][1]));
		assert_int_equal(base64_decode(v[i][1], strlen(v[i][1]), buf, sizeof(buf), &len),
				 0);
		assert_int_equal(len, strlen(v[i][0]));
		assert_memory_equal(buf, v[i][0], len);
	}
	/* Every byte value survives a round trip. */
	for (i = 0; i < sizeof(bin); i++)
		bin[i] = (unsigned char)i;
	a = base64_encode_alloc(bin, sizeof(bin), &len);
	assert_non_null(a);
	assert_int_equal(len, strlen(a));
	{
		unsigned char *d = base64_decode_alloc(a, len, &len);

		assert_non_null(d);
		assert_int_equal(len, sizeof(bin));
		assert_memory_equal(d, bin, sizeof(bin));
		assert_int_equal(d[len], 0);
		free(d);
	}
	free(a);
	/* Decoding stops at n: what follows is never read. */
	assert_int_equal(base64_decode("Zm9vXXXX", 4, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 3);
}

static void base64_rejects(void **state)
{
	static const char *const bad[] = {
		"Zg", "Zg=", "Zm9", "Z===", "====", "Zg==Zg==", "Zm=v", "=Zm9",
		"Zh==",		/* unused bits set */
		"Zm9=",		/* unused bits set */
		"Zm9v Zm9v", "Zm9v\n", " Zm9", "Zm9*", "Zm9-", "Zm9_", "Zm9\x80",
	};
	unsigned char buf[16];
	size_t i, len;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (base64_decode(bad[i], strlen(bad[i]), buf, sizeof(buf), &len) == 0)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_null(base64_decode_alloc(bad[i], strlen(bad[i]), &len));
		assert_int_equal(len, 0);
	}
	/* Embedded NUL. */
	assert_int_equal(base64_decode("Zm\0v", 4, buf, sizeof(buf), &len), -1);
	/* Fits or not. */
	assert_int_equal(base64_decode("Zm9vYmFy", 8, buf, 6, &len), 0);
	assert_int_equal(base64_decode("Zm9vYmFy", 8, buf, 5, &len), -1);
	assert_int_equal(base64_decode("Zm9vYg==", 8, buf, 4, &len), 0);
	assert_int_equal(base64_decode("Zm9vYg==", 8, buf, 3, &len), -1);
}

static void base64_sasl_wire(void **state)
{
	unsigned char *out;
	size_t len;
	char *e;

	(void)state;
	assert_int_equal(base64_sasl_decode("", 0, 100, &out, &len), BASE64_SASL_ABSENT);
	assert_null(out);
	assert_int_equal(base64_sasl_decode(NULL, 0, 100, &out, &len), BASE64_SASL_ABSENT);
	assert_int_equal(base64_sasl_decode("=", 1, 100, &out, &len), BASE64_SASL_OK);
	assert_non_null(out);
	assert_int_equal(len, 0);
	free(out);
	assert_int_equal(base64_sasl_decode("dGVzdA==", 8, 100, &out, &len), BASE64_SASL_OK);
	assert_int_equal(len, 4);
	assert_string_equal((char *)out, "test");
	free(out);
	assert_int_equal(base64_sasl_decode("dGVzdA==", 8, 3, &out, &len), BASE64_SASL_BAD);
	assert_null(out);
	assert_int_equal(base64_sasl_decode("dGVzdA==", 8, 4, &out, &len), BASE64_SASL_OK);
	free(out);
	assert_int_equal(base64_sasl_decode("==", 2, 100, &out, &len), BASE64_SASL_BAD);
	assert_int_equal(base64_sasl_decode("dGVzd", 5, 100, &out, &len), BASE64_SASL_BAD);
	assert_int_equal(base64_sasl_decode("dGV zdA=", 8, 100, &out, &len), BASE64_SASL_BAD);
	assert_int_equal(base64_sasl_decode("AAAAAAAAAAAA", 12, 8, &out, &len),
			 BASE64_SASL_BAD);
	assert_null(out);
	e = base64_sasl_encode("", 0);
	assert_string_equal(e, "=");
	free(e);
	e = base64_sasl_encode("test", 4);
	assert_string_equal(e, "dGVzdA==");
	free(e);
}

/* ---- mechanisms and credentials ---- */

static void mech_names_offer(void **state)
{
	const char *names[SASL_MECH_COUNT];
	enum sasl_mech m;
	size_t n, i;

	(void)state;
	for (i = 0; i < SASL_MECH_COUNT; i++) {
		assert_int_equal(sasl_mech_find(sasl_mech_name((enum sasl_mech)i), &m), 0);
		assert_int_equal(m, i);
	}
	assert_int_equal(sasl_mech_find("SCRAM-SHA-256-PLUS", &m), 0);
	assert_int_equal(m, SASL_SCRAM_SHA_256_PLUS);
	assert_int_equal(sasl_mech_find("scram-sha-1", &m), -1);
	assert_int_equal(sasl_mech_find("DIGEST-MD5", &m), -1);
	assert_int_equal(sasl_mech_find("", &m), -1);
	assert_int_equal(sasl_mech_find(NULL, &m), -1);
	assert_null(sasl_mech_name(SASL_MECH_COUNT));

	n = sasl_offer(true, true, true, names);
	assert_int_equal(n, 5);
	assert_string_equal(names[0], "SCRAM-SHA-256-PLUS");
	assert_string_equal(names[1], "SCRAM-SHA-1-PLUS");
	assert_string_equal(names[2], "SCRAM-SHA-256");
	assert_string_equal(names[3], "SCRAM-SHA-1");
	assert_string_equal(names[4], "PLAIN");
	n = sasl_offer(true, false, false, names);
	assert_int_equal(n, 2);
	assert_string_equal(names[0], "SCRAM-SHA-256");
	assert_string_equal(names[1], "SCRAM-SHA-1");
	n = sasl_offer(true, false, true, names);
	assert_int_equal(n, 3);
	assert_string_equal(names[2], "PLAIN");
	/* No PLAIN and no -PLUS in the clear, whatever else is said. */
	n = sasl_offer(false, true, true, names);
	assert_int_equal(n, 2);
	assert_string_equal(names[0], "SCRAM-SHA-256");
	assert_string_equal(names[1], "SCRAM-SHA-1");
}

static void cred_round_trip(void **state)
{
	static const char *const bad[] = {
		"", "4096", "4096$", "4096$$$", "0$QSXCR+Q6sek8bf92$6dlGYMOdZcOPutkcNY8U2g7vK9Y=$"
		"D+CSWLOshSulAsxiupA+qs2/fTE=",
		"04096$QSXCR+Q6sek8bf92$6dlGYMOdZcOPutkcNY8U2g7vK9Y=$D+CSWLOshSulAsxiupA+qs2/fTE=",
		"-1$QSXCR+Q6sek8bf92$6dlGYMOdZcOPutkcNY8U2g7vK9Y=$D+CSWLOshSulAsxiupA+qs2/fTE=",
		"99999999999$QSXCR+Q6sek8bf92$6dlGYMOdZcOPutkcNY8U2g7vK9Y=$"
		"D+CSWLOshSulAsxiupA+qs2/"
		"fTE=",
		"4096$$6dlGYMOdZcOPutkcNY8U2g7vK9Y=$D+CSWLOshSulAsxiupA+qs2/fTE=",
		"4096$QSXCR+Q6sek8bf9$6dlGYMOdZcOPutkcNY8U2g7vK9Y=$D+CSWLOshSulAsxiupA+qs2/fTE=",
		"4096$QSXCR+Q6sek8bf92$6dlGYMOdZcOPutkcNY8U2g7vK9Y$D+CSWLOshSulAsxiupA+qs2/fTE=",
		"4096$QSXCR+Q6sek8bf92$6dlGYMOdZcOPutkcNY8U2g7vK9Y=$D+CSWLOshSulAsxiupA+qs2/fTE=$",
		"4096$QSXCR+Q6sek8bf92$6dlGYMOdZcOPutkcNY8U2g7vK9Y=$D+CSWLOshSulAsxiupA+qs2/fTE= ",
		"4096 $QSXCR+Q6sek8bf92$6dlGYMOdZcOPutkcNY8U2g7vK9Y=$D+CSWLOshSulAsxiupA+qs2/fTE=",
		"4096$QSXCR+Q6sek8bf92$AAAA$D+CSWLOshSulAsxiupA+qs2/fTE=",
	};
	static const char rfc5802[] =
		"4096$QSXCR+Q6sek8bf92$6dlGYMOdZcOPutkcNY8U2g7vK9Y=$D+CSWLOshSulAsxiupA+qs2/fTE=";
	static const char rfc7677[] = "4096$W22ZaJ0SNY7soEsUEjb6gQ==$"
		"WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=$"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";
	struct scram_cred a, b, c;
	char *enc;
	size_t i;

	(void)state;
	assert_int_equal(scram_hash_len(SCRAM_SHA_1), 20);
	assert_int_equal(scram_hash_len(SCRAM_SHA_256), 32);

	/* The RFC examples' stored form. */
	cred_for(SCRAM_SHA_1, "pencil", "QSXCR+Q6sek8bf92", &a);
	enc = scram_cred_encode(&a);
	assert_string_equal(enc, rfc5802);
	free(enc);
	cred_for(SCRAM_SHA_256, "pencil", "W22ZaJ0SNY7soEsUEjb6gQ==", &a);
	enc = scram_cred_encode(&a);
	assert_string_equal(enc, rfc7677);
	free(enc);
	assert_int_equal(scram_cred_decode(SCRAM_SHA_256, rfc7677, &b), 0);
	assert_memory_equal(&a, &b, sizeof(a));

	/* Fresh credentials: random 16-byte salts, a faithful round trip. */
	for (i = 0; i < SCRAM_HASH_COUNT; i++) {
		assert_int_equal(scram_cred_derive((enum scram_hash)i, "s3cret", 4096, &a), 0);
		assert_int_equal(scram_cred_derive((enum scram_hash)i, "s3cret", 4096, &c), 0);
		assert_int_equal(a.salt_len, SCRAM_SALT_LEN);
		assert_int_equal(a.iterations, 4096);
		assert_memory_not_equal(a.salt, c.salt, SCRAM_SALT_LEN);
		enc = scram_cred_encode(&a);
		assert_non_null(enc);
		assert_int_equal(scram_cred_decode((enum scram_hash)i, enc, &b), 0);
		assert_memory_equal(&a, &b, sizeof(a));
		/* The other hash's key length does not fit. */
		assert_int_equal(scram_cred_decode((enum scram_hash)(1 - i), enc, &b), -1);
		free(enc);
	}

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (scram_cred_decode(SCRAM_SHA_1, bad[i], &b) == 0)
			fail_msg("accepted \"%s\"", bad[i]);
	assert_int_equal(scram_cred_decode(SCRAM_SHA_1, NULL, &b), -1);
	assert_int_equal(scram_cred_decode(SCRAM_HASH_COUNT, rfc5802, &b), -1);

	/* New credentials: at least 4096 iterations, a usable password. */
	assert_int_equal(scram_cred_derive(SCRAM_SHA_1, "pw", 4095, &a), -1);
	assert_int_equal(scram_cred_derive(SCRAM_SHA_1, "pw", SCRAM_MAX_ITERATIONS + 1, &a), -1);
	assert_int_equal(scram_cred_derive(SCRAM_SHA_1, "", 4096, &a), -1);
	assert_int_equal(scram_cred_derive(SCRAM_SHA_1, NULL, 4096, &a), -1);
	{
		char big[SASL_MAX_PASSWORD + 2];

		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		assert_int_equal(scram_cred_derive(SCRAM_SHA_1, big, 4096, &a), -1);
	}
	a.iterations = 0;
	assert_null(scram_cred_encode(&a));
	assert_null(scram_cred_encode(NULL));
}

/* ---- SCRAM ---- */

static void scram_sha1_rfc5802(void **state)
{
	struct sasl_session *s = session(SASL_SCRAM_SHA_1, false);
	struct scram_cred c;
	size_t len;

	(void)state;
	assert_int_equal(start_str(s, "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"),
			 SASL_NEED_CREDENTIALS);
	assert_string_equal(sasl_username(s), "user");
	assert_null(sasl_authzid(s));
	assert_null(sasl_condition(s));
	assert_int_equal(sasl_cred_hash(s), SCRAM_SHA_1);
	assert_int_equal(sasl_set_nonce_for_test(s, "3rfcNHYJY1ZVvWVs7j"), 0);
	cred_for(SCRAM_SHA_1, "pencil", "QSXCR+Q6sek8bf92", &c);
	assert_int_equal(sasl_set_credentials(s, &c), SASL_CHALLENGE);
	assert_string_equal(sasl_out(s, &len), "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
				"s=QSXCR+Q6sek8bf92,i=4096");
	assert_int_equal(len, strlen(sasl_out(s, NULL)));
	assert_int_equal(step_str(s, "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
				  "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="), SASL_SUCCESS);
	assert_string_equal(sasl_out(s, NULL), "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
	assert_null(sasl_condition(s));
	/* Nothing more is expected. */
	assert_failed(s, step_str(s, "c=biws"), "malformed-request");
	sasl_free(s);
}

/* RFC 7677 §3, through the XMPP wire helpers. */
static void scram_sha256_rfc7677(void **state)
{
	static const char first[] = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
	static const char server_first[] = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
		"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
	static const char final[] = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
		"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
	struct sasl_session *s = session(SASL_SCRAM_SHA_256, true);
	struct scram_cred c;
	char *wire, *out;
	unsigned char *dec;
	size_t len;

	(void)state;
	wire = base64_encode_alloc(first, strlen(first), NULL);
	assert_int_equal(sasl_start_base64(s, wire), SASL_NEED_CREDENTIALS);
	free(wire);
	assert_int_equal(sasl_cred_hash(s), SCRAM_SHA_256);
	assert_int_equal(sasl_set_nonce_for_test(s, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"), 0);
	assert_int_equal(scram_cred_decode(SCRAM_SHA_256, "4096$W22ZaJ0SNY7soEsUEjb6gQ==$"
					   "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=$"
					   "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=", &c), 0);
	assert_int_equal(sasl_set_credentials(s, &c), SASL_CHALLENGE);
	out = sasl_out_base64(s);
	dec = base64_decode_alloc(out, strlen(out), &len);
	assert_non_null(dec);
	assert_string_equal((char *)dec, server_first);
	free(dec);
	free(out);
	wire = base64_encode_alloc(final, strlen(final), NULL);
	assert_int_equal(sasl_step_base64(s, wire), SASL_SUCCESS);
	free(wire);
	assert_string_equal(sasl_out(s, NULL), "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
	out = sasl_out_base64(s);
	assert_string_equal(out, "dj02cnJpVFJCaTIzV3BSUi93dHVwK21NaFVaVW4v"
			    "ZEI1bkxUSlJzamw5NUc0PQ==");
	free(out);
	sasl_free(s);
}

/* A whole exchange against the client above; returns the final status. */
static enum sasl_status full_exchange(enum sasl_mech mech, enum scram_hash h, bool server_cb,
				      const char *gs2, const unsigned char *client_cb,
				      size_t client_cblen, const char *user,
				      const char *password, struct sasl_session **out)
{
	struct sasl_session *s = session(mech, server_cb);
	struct scram_cred c;
	struct client cl;
	enum sasl_status st;

	client_first(&cl, h, gs2, user, "clientnonce+/123");
	assert_int_equal(scram_cred_derive(h, "correct horse", 4096, &c), 0);
	run_to_server_first(s, &cl, &c);
	client_final(&cl, password, sasl_out(s, NULL), client_cb, client_cblen, NULL);
	st = step_str(s, cl.final);
	if (st == SASL_SUCCESS)
		assert_string_equal(sasl_out(s, NULL), cl.want_v);
	*out = s;
	return st;
}

static void scram_full(void **state)
{
	static const struct {
		enum sasl_mech mech;
		enum scram_hash hash;
		bool server_cb;
		const char *gs2;
		const unsigned char *cb;
	} cases[] = {
		{ SASL_SCRAM_SHA_1, SCRAM_SHA_1, false, "n,,", NULL },
		{ SASL_SCRAM_SHA_256, SCRAM_SHA_256, false, "n,,", NULL },
		/* A client without channel binding on a server with it. */
		{ SASL_SCRAM_SHA_1, SCRAM_SHA_1, true, "n,,", NULL },
		{ SASL_SCRAM_SHA_256, SCRAM_SHA_256, true, "n,,", NULL },
		/* "y" is fine where we cannot bind. */
		{ SASL_SCRAM_SHA_256, SCRAM_SHA_256, false, "y,,", NULL },
		{ SASL_SCRAM_SHA_1_PLUS, SCRAM_SHA_1, true, "p=tls-exporter,,", exporter },
		{ SASL_SCRAM_SHA_256_PLUS, SCRAM_SHA_256, true, "p=tls-exporter,,", exporter },
		{ SASL_SCRAM_SHA_1_PLUS, SCRAM_SHA_1, true, "p=tls-server-end-point,,",
		  end_point },
		{ SASL_SCRAM_SHA_256_PLUS, SCRAM_SHA_256, true,
		  "p=tls-server-end-point,a=user@example.org,", end_point },
	};
	struct sasl_session *s;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum sasl_status st = full_exchange(cases[i].mech, cases[i].hash,
						    cases[i].server_cb, cases[i].gs2, cases[i].cb,
						    32, "user", "correct horse", &s);

		if (st != SASL_SUCCESS)
			fail_msg("case %zu: status %d, %s", i, (int)st, sasl_text(s));
		assert_string_equal(sasl_username(s), "user");
		if (strstr(cases[i].gs2, "a="))
			assert_string_equal(sasl_authzid(s), "user@example.org");
		else
			assert_null(sasl_authzid(s));
		sasl_free(s);
	}

	/* saslname escapes, UTF-8, and an ignored extension in each message. */
	{
		struct sasl_session *t = session(SASL_SCRAM_SHA_256, false);
		struct scram_cred c;
		struct client cl;

		client_first(&cl, SCRAM_SHA_256, "n,a=x=3Dy=2Cz@example.org,",
			     "a=2Cb=3Dc\xc3\xa9", "nonce,x=ext");
		assert_int_equal(scram_cred_derive(SCRAM_SHA_256, "pw", 4096, &c), 0);
		assert_int_equal(start_str(t, cl.first), SASL_NEED_CREDENTIALS);
		assert_string_equal(sasl_username(t), "a,b=c\xc3\xa9");
		assert_string_equal(sasl_authzid(t), "x=y,z@example.org");
		assert_int_equal(sasl_set_credentials(t, &c), SASL_CHALLENGE);
		/* The server's nonce: 24 random bytes in base64. */
		{
			char r[256];

			attr(sasl_out(t, NULL), "r=", r, sizeof(r));
			assert_int_equal(strlen(r), strlen("nonce") + 32);
			assert_memory_equal(r, "nonce", 5);
		}
		client_final(&cl, "pw", sasl_out(t, NULL), NULL, 0, "y=other");
		assert_int_equal(step_str(t, cl.final), SASL_SUCCESS);
		assert_string_equal(sasl_out(t, NULL), cl.want_v);
		sasl_free(t);
	}
}

static void scram_channel_binding_mismatch(void **state)
{
	unsigned char wrong[32];
	struct sasl_session *s;
	enum sasl_status st;

	(void)state;
	memcpy(wrong, exporter, sizeof(wrong));
	wrong[31] ^= 1;
	st = full_exchange(SASL_SCRAM_SHA_256_PLUS, SCRAM_SHA_256, true, "p=tls-exporter,,",
			   wrong, 32, "user", "correct horse", &s);
	assert_failed(s, st, "not-authorized");
	sasl_free(s);
	/* The right bytes for the other type. */
	st = full_exchange(SASL_SCRAM_SHA_1_PLUS, SCRAM_SHA_1, true, "p=tls-exporter,,",
			   end_point, 32, "user", "correct horse", &s);
	assert_failed(s, st, "not-authorized");
	sasl_free(s);
	/* Too short. */
	st = full_exchange(SASL_SCRAM_SHA_1_PLUS, SCRAM_SHA_1, true, "p=tls-exporter,,",
			   exporter, 31, "user", "correct horse", &s);
	assert_failed(s, st, "not-authorized");
	sasl_free(s);
	/* The client binds although its header said "n". */
	st = full_exchange(SASL_SCRAM_SHA_1, SCRAM_SHA_1, true, "n,,", exporter, 32, "user",
			   "correct horse", &s);
	assert_failed(s, st, "not-authorized");
	sasl_free(s);

	/* A type TLS did not give us. */
	s = session(SASL_SCRAM_SHA_256_PLUS, true);
	assert_failed(s, start_str(s, "p=tls-unique,,n=user,r=abc"), "not-authorized");
	sasl_free(s);
	/* -PLUS where there is nothing to bind to was never offered. */
	s = session(SASL_SCRAM_SHA_256_PLUS, false);
	assert_failed(s, start_str(s, "p=tls-exporter,,n=user,r=abc"), "invalid-mechanism");
	sasl_free(s);
}

static void scram_wrong_password(void **state)
{
	struct sasl_session *s;
	enum sasl_status st;
	struct scram_cred c;
	struct client cl;

	(void)state;
	/* A proof made right for a final message whose nonce is not ours (only
	 * the nonce check stops that one). */
	s = session(SASL_SCRAM_SHA_1, false);
	client_first(&cl, SCRAM_SHA_1, "n,,", "user", "abc");
	assert_int_equal(scram_cred_derive(SCRAM_SHA_1, "pw", 4096, &c), 0);
	run_to_server_first(s, &cl, &c);
	cl.r_override = "abcdef";
	client_final(&cl, "pw", sasl_out(s, NULL), NULL, 0, NULL);
	assert_failed(s, step_str(s, cl.final), "not-authorized");
	assert_non_null(strstr(sasl_text(s), "nonce"));
	sasl_free(s);

	st = full_exchange(SASL_SCRAM_SHA_1, SCRAM_SHA_1, false, "n,,", NULL, 0, "user",
			   "wrong horse", &s);
	assert_failed(s, st, "not-authorized");
	sasl_free(s);
	st = full_exchange(SASL_SCRAM_SHA_256_PLUS, SCRAM_SHA_256, true, "p=tls-exporter,,",
			   exporter, 32, "user", "Correct horse", &s);
	assert_failed(s, st, "not-authorized");
	sasl_free(s);
}

/* The server-first-message for an unknown user, with the given secret. */
static void unknown_server_first(enum sasl_mech mech, const char *user,
				 const unsigned char *key, char *out, size_t outlen)
{
	struct sasl_session *s = session_with(mech, true, false, true, key);
	struct client cl;

	client_first(&cl, mech == SASL_SCRAM_SHA_1 ? SCRAM_SHA_1 : SCRAM_SHA_256, "n,,", user,
		     "cn");
	run_to_server_first(s, &cl, NULL);
	assert_true(strlen(sasl_out(s, NULL)) < outlen);
	strcpy(out, sasl_out(s, NULL));
	/* Even the right proof for some password fails, and only now. */
	client_final(&cl, "anything", sasl_out(s, NULL), NULL, 0, NULL);
	assert_failed(s, step_str(s, cl.final), "not-authorized");
	sasl_free(s);
}

static void scram_unknown_user(void **state)
{
	static const unsigned char other_secret[32] = "another secret, 32 bytes long..";
	char a[256], b[256], c[256], d[256], e[256], salt_a[64], salt_b[64], r[128], it[16];
	unsigned char salt[64];
	size_t len;

	(void)state;
	unknown_server_first(SASL_SCRAM_SHA_256, "nobody", secret, a, sizeof(a));
	unknown_server_first(SASL_SCRAM_SHA_256, "nobody", secret, b, sizeof(b));
	/* It looks like a real account's: our nonce after the client's, a
	 * 16-byte salt, the usual iterations. */
	attr(a, "r=", r, sizeof(r));
	assert_int_equal(strlen(r), 2 + 32);
	assert_memory_equal(r, "cn", 2);
	attr(a, "s=", salt_a, sizeof(salt_a));
	attr(a, "i=", it, sizeof(it));
	assert_string_equal(it, "4096");
	assert_int_equal(base64_decode(salt_a, strlen(salt_a), salt, sizeof(salt), &len), 0);
	assert_int_equal(len, SCRAM_SALT_LEN);
	/* The same salt each time; the nonce differs. */
	attr(b, "s=", salt_b, sizeof(salt_b));
	assert_string_equal(salt_a, salt_b);
	assert_string_not_equal(a, b);
	/* Another name, another hash, another secret: another salt. */
	unknown_server_first(SASL_SCRAM_SHA_256, "nobody2", secret, c, sizeof(c));
	attr(c, "s=", salt_b, sizeof(salt_b));
	assert_string_not_equal(salt_a, salt_b);
	unknown_server_first(SASL_SCRAM_SHA_1, "nobody", secret, d, sizeof(d));
	attr(d, "s=", salt_b, sizeof(salt_b));
	assert_string_not_equal(salt_a, salt_b);
	unknown_server_first(SASL_SCRAM_SHA_256, "nobody", other_secret, e, sizeof(e));
	attr(e, "s=", salt_b, sizeof(salt_b));
	assert_string_not_equal(salt_a, salt_b);
}

static void scram_downgrade(void **state)
{
	struct sasl_session *s;

	(void)state;
	/* "y" while we offered -PLUS: someone stripped it from the list. */
	s = session(SASL_SCRAM_SHA_1, true);
	assert_failed(s, start_str(s, "y,,n=user,r=abc"), "not-authorized");
	sasl_free(s);
	s = session(SASL_SCRAM_SHA_256, true);
	assert_failed(s, start_str(s, "y,a=user@example.org,n=user,r=abc"), "not-authorized");
	sasl_free(s);
	/* And without channel binding on our side, "y" is honest. */
	s = session(SASL_SCRAM_SHA_256, false);
	assert_int_equal(start_str(s, "y,,n=user,r=abc"), SASL_NEED_CREDENTIALS);
	sasl_free(s);
}

static void scram_malformed_first(void **state)
{
	static const char *const bad[] = {
		"", "n", "n,", "x,,n=user,r=abc", "n,n=user,r=abc", "nn,,n=user,r=abc",
		"p,,n=user,r=abc", "p=,,n=user,r=abc", "p=tls exporter,,n=user,r=abc",
		"n,,r=abc", "n,,n=user", "n,,n=user,", "n,,n=user,r=", "n,,n=user,r=abc,",
		"n,,n=user,x=abc", "n,,n=user,r=abc,1=x", "n,,n=user,r=abc,x=",
		"n,,n=user,r=abc,xy",
		"n,,m=foo,n=user,r=abc",
		"n,,n=,r=abc", "n,,n=us=2Ger,r=abc", "n,,n=us=2cer,r=abc", "n,,n=user=,r=abc",
		"n,,n=user=3,r=abc", "n,a=,n=user,r=abc", "n,a=x=y,n=user,r=abc",
		"n,,n=us\x01r,r=abc", "n,,n=us\x7fr,r=abc", "n,,n=us\xc2\x85r,r=abc",
		"n,,n=us\xc3\x28r,r=abc", "n,,n=us\xc0\xafr,r=abc", "n,,n=us\xed\xa0\x80r,r=abc",
		"n,,n=us\xf4\x90\x80\x80r,r=abc", "n,,n=user\xc3,r=abc",
		"n,,n=user,r=ab\x7f", "n,,n=user,r=ab c", "n,,n=user,r=ab\xc3\xa9",
		"n,,N=user,r=abc", "n,,n=user,R=abc",
		"p=tls-exporter,,n=user,r=abc",	/* binding with a non-PLUS mechanism */
	};
	struct sasl_session *s;
	char *big;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		s = session(SASL_SCRAM_SHA_1, true);
		if (start_str(s, bad[i]) != SASL_FAILURE)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_failed(s, SASL_FAILURE, "malformed-request");
		sasl_free(s);
	}
	/* m= is refused for what it is (RFC 5802 §5.1). */
	s = session(SASL_SCRAM_SHA_1, true);
	assert_failed(s, start_str(s, "n,,m=foo,n=user,r=abc"), "malformed-request");
	assert_non_null(strstr(sasl_text(s), "extension"));
	sasl_free(s);
	/* -PLUS without binding. */
	s = session(SASL_SCRAM_SHA_1_PLUS, true);
	assert_failed(s, start_str(s, "n,,n=user,r=abc"), "malformed-request");
	sasl_free(s);
	/* NUL inside. */
	s = session(SASL_SCRAM_SHA_1, false);
	assert_failed(s, sasl_start(s, (const unsigned char *)"n,,n=us\0er,r=abc", 16),
		      "malformed-request");
	sasl_free(s);
	/* An empty initial response is not a client-first-message. */
	s = session(SASL_SCRAM_SHA_1, false);
	assert_failed(s, sasl_start(s, (const unsigned char *)"", 0), "malformed-request");
	sasl_free(s);

	/* Oversized: a message over SASL_MAX_MESSAGE, and a username over its
	 * bound inside a message that fits. */
	big = malloc(SASL_MAX_MESSAGE + 2);
	assert_non_null(big);
	memset(big, 'a', SASL_MAX_MESSAGE + 1);
	memcpy(big, "n,,n=user,r=", 12);
	big[SASL_MAX_MESSAGE + 1] = '\0';
	s = session(SASL_SCRAM_SHA_1, false);
	assert_failed(s, start_str(s, big), "malformed-request");
	sasl_free(s);
	big[SASL_MAX_MESSAGE] = '\0';		/* exactly the bound: fine */
	s = session(SASL_SCRAM_SHA_1, false);
	assert_int_equal(start_str(s, big), SASL_NEED_CREDENTIALS);
	sasl_free(s);
	memcpy(big, "n,,n=", 5);
	memset(big + 5, 'u', SASL_MAX_USERNAME + 1);
	strcpy(big + 5 + SASL_MAX_USERNAME + 1, ",r=abc");
	s = session(SASL_SCRAM_SHA_1, false);
	assert_failed(s, start_str(s, big), "malformed-request");
	sasl_free(s);
	strcpy(big + 5 + SASL_MAX_USERNAME, ",r=abc");
	s = session(SASL_SCRAM_SHA_1, false);
	assert_int_equal(start_str(s, big), SASL_NEED_CREDENTIALS);
	assert_int_equal(strlen(sasl_username(s)), SASL_MAX_USERNAME);
	sasl_free(s);
	free(big);

	/* Extensions we do not know, after the nonce, are ignored. */
	s = session(SASL_SCRAM_SHA_1, false);
	assert_int_equal(start_str(s, "n,,n=user,r=abc,x=1,y=2"), SASL_NEED_CREDENTIALS);
	sasl_free(s);
}

/* A client-final-message after the RFC 5802 client-first, on a fresh session. */
static void final_fails(const char *final, const char *cond)
{
	struct sasl_session *s = session(SASL_SCRAM_SHA_1, false);
	struct scram_cred c;

	cred_for(SCRAM_SHA_1, "pencil", "QSXCR+Q6sek8bf92", &c);
	assert_int_equal(start_str(s, "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"),
			 SASL_NEED_CREDENTIALS);
	assert_int_equal(sasl_set_nonce_for_test(s, "3rfcNHYJY1ZVvWVs7j"), 0);
	assert_int_equal(sasl_set_credentials(s, &c), SASL_CHALLENGE);
	if (step_str(s, final) != SASL_FAILURE)
		fail_msg("accepted \"%s\"", final);
	assert_failed(s, SASL_FAILURE, cond);
	sasl_free(s);
}

static void scram_malformed_final(void **state)
{
#define N "fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j"
#define P "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
	static const char *const malformed[] = {
		"", "c=biws", "c=biws,", "r=" N ",p=" P, "c=biws,p=" P, "c=biws,r=" N,
		"c=biws,r=" N ",", "c=biws,r=" N ",p=", "c=biws,r=" N ",p=" P ",x=1",
		"c=bi!s,r=" N ",p=" P, "c=biw,r=" N ",p=" P,
		"c=biws,r=" N ",p=v0X8v3Bz2T0CJGbJQyF0",
		"c=biws,r=" N ",p=AAAA", "c=biws,r=" N ",p=" P "AAAA", "c=biws,r=" N ",p=" P "=",
		"c=biws,r=" N ",1=x,p=" P, "c=biws,r=" N ",x=,p=" P, "C=biws,r=" N ",p=" P,
		"c=biws,R=" N ",p=" P,
	};
	size_t i;
	char *big;

	(void)state;
	for (i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++)
		final_fails(malformed[i], "malformed-request");
	final_fails("c=biws,r=" N "x,p=" P, "not-authorized");
	final_fails("c=biws,r=fyko+d2lbbFgONRv9qkxdawL,p=" P, "not-authorized");
	final_fails("c=eSws,r=" N ",p=" P, "not-authorized");		/* "y,," */
	final_fails("c=biwsAAAA,r=" N ",p=" P, "not-authorized");
	final_fails("c=biws,r=" N ",p=" "w0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", "not-authorized");
	/* The proof signs the message without the extension. */
	final_fails("c=biws,r=" N ",x=ext,p=" P, "not-authorized");

	big = malloc(SASL_MAX_MESSAGE + 100);
	assert_non_null(big);
	strcpy(big, "c=biws,r=" N ",x=");
	memset(big + strlen(big), 'x', SASL_MAX_MESSAGE);
	strcpy(big + SASL_MAX_MESSAGE, ",p=" P);
	final_fails(big, "malformed-request");
	free(big);
#undef N
#undef P
}

static void scram_no_initial_response(void **state)
{
	struct sasl_session *s = session(SASL_SCRAM_SHA_1, false);
	struct scram_cred c;
	size_t len = 99;
	char *out;

	(void)state;
	assert_int_equal(sasl_start(s, NULL, 0), SASL_CHALLENGE);
	assert_string_equal(sasl_out(s, &len), "");
	assert_int_equal(len, 0);
	out = sasl_out_base64(s);
	assert_string_equal(out, "");
	free(out);
	assert_null(sasl_username(s));
	assert_int_equal(step_str(s, "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"),
			 SASL_NEED_CREDENTIALS);
	assert_int_equal(sasl_set_nonce_for_test(s, "3rfcNHYJY1ZVvWVs7j"), 0);
	cred_for(SCRAM_SHA_1, "pencil", "QSXCR+Q6sek8bf92", &c);
	assert_int_equal(sasl_set_credentials(s, &c), SASL_CHALLENGE);
	assert_int_equal(step_str(s, "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
				  "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="), SASL_SUCCESS);
	sasl_free(s);

	/* Through the wire helpers: an empty <auth/>, then an empty response. */
	s = session(SASL_SCRAM_SHA_256, false);
	assert_int_equal(sasl_start_base64(s, NULL), SASL_CHALLENGE);
	assert_failed(s, sasl_step_base64(s, ""), "malformed-request");
	sasl_free(s);
	s = session(SASL_SCRAM_SHA_256, false);
	assert_int_equal(sasl_start_base64(s, ""), SASL_CHALLENGE);
	assert_failed(s, sasl_step_base64(s, "="), "malformed-request");
	sasl_free(s);
}

/* ---- PLAIN ---- */

/* Runs PLAIN with message msg[0..len) against cred (NULL: unknown user). */
static enum sasl_status plain(struct sasl_session *s, const char *msg, size_t len,
			      const struct scram_cred *cred)
{
	enum sasl_status st = sasl_start(s, (const unsigned char *)msg, len);

	if (st != SASL_NEED_CREDENTIALS)
		return st;
	assert_int_equal(sasl_cred_hash(s), SCRAM_SHA_256);
	st = sasl_set_credentials(s, cred);
	if (st != SASL_NEEDS_WORK)
		return st;
	sasl_work(s);
	return sasl_finish(s);
}

static void plain_mechanism(void **state)
{
	struct scram_cred c1, c256;
	struct sasl_session *s;
	char *wire;

	(void)state;
	assert_int_equal(scram_cred_derive(SCRAM_SHA_1, "pencil", 4096, &c1), 0);
	assert_int_equal(scram_cred_derive(SCRAM_SHA_256, "pencil", 4096, &c256), 0);

	s = session(SASL_PLAIN, false);
	assert_int_equal(plain(s, "\0user\0pencil", 12, &c256), SASL_SUCCESS);
	assert_string_equal(sasl_username(s), "user");
	assert_null(sasl_authzid(s));
	assert_string_equal(sasl_out(s, NULL), "");
	wire = sasl_out_base64(s);
	assert_string_equal(wire, "");		/* <success/> without data */
	free(wire);
	sasl_free(s);

	/* Either hash's credentials do. */
	s = session(SASL_PLAIN, false);
	assert_int_equal(plain(s, "\0user\0pencil", 12, &c1), SASL_SUCCESS);
	sasl_free(s);

	s = session(SASL_PLAIN, false);
	assert_int_equal(plain(s, "user@example.org\0user\0pencil", 28, &c256), SASL_SUCCESS);
	assert_string_equal(sasl_authzid(s), "user@example.org");
	sasl_free(s);

	s = session(SASL_PLAIN, false);
	assert_failed(s, plain(s, "\0user\0pencil2", 13, &c256), "not-authorized");
	sasl_free(s);
	s = session(SASL_PLAIN, false);
	assert_failed(s, plain(s, "\0user\0Pencil", 12, &c1), "not-authorized");
	sasl_free(s);
	/* Unknown user: the same steps, the same work, failure at the end. */
	s = session(SASL_PLAIN, false);
	assert_int_equal(sasl_start(s, (const unsigned char *)"\0nobody\0pencil", 14),
			 SASL_NEED_CREDENTIALS);
	assert_int_equal(sasl_set_credentials(s, NULL), SASL_NEEDS_WORK);
	sasl_work(s);
	assert_failed(s, sasl_finish(s), "not-authorized");
	sasl_free(s);

	/* No initial response: an empty challenge first. */
	s = session(SASL_PLAIN, false);
	assert_int_equal(sasl_start_base64(s, ""), SASL_CHALLENGE);
	assert_string_equal(sasl_out(s, NULL), "");
	wire = base64_encode_alloc("\0user\0pencil", 12, NULL);
	assert_int_equal(sasl_step_base64(s, wire), SASL_NEED_CREDENTIALS);
	free(wire);
	assert_int_equal(sasl_set_credentials(s, &c256), SASL_NEEDS_WORK);
	sasl_work(s);
	assert_int_equal(sasl_finish(s), SASL_SUCCESS);
	sasl_free(s);

	/* Freed halfway, with the password still held. */
	s = session(SASL_PLAIN, false);
	assert_int_equal(sasl_start(s, (const unsigned char *)"\0user\0pencil", 12),
			 SASL_NEED_CREDENTIALS);
	sasl_free(s);
	s = session(SASL_PLAIN, false);
	assert_int_equal(plain(s, "\0user\0pencil", 12, NULL), SASL_FAILURE);
	sasl_free(s);
}

static void plain_malformed(void **state)
{
	static const struct {
		const char *msg;
		size_t len;
	} bad[] = {
		{ "", 0 }, { "user", 4 }, { "userpencil", 10 }, { "\0user", 5 },
		{ "\0userpencil", 11 }, { "\0user\0", 6 }, { "\0\0pencil", 8 }, { "\0\0", 2 },
		{ "\0user\0pen\0cil", 13 }, { "\0user\0pencil\0", 13 },
		{ "\0us\x01r\0pencil", 12 },
		{ "\0user\0pen\xffil", 12 }, { "\0us\xc3r\0pencil", 12 },
		{ "a\x7fz\0user\0pencil", 15 },
	};
	struct scram_cred c;
	struct sasl_session *s;
	size_t i;
	char *big;

	(void)state;
	assert_int_equal(scram_cred_derive(SCRAM_SHA_256, "pencil", 4096, &c), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		s = session(SASL_PLAIN, false);
		if (plain(s, bad[i].msg, bad[i].len, &c) != SASL_FAILURE)
			fail_msg("accepted case %zu", i);
		assert_failed(s, SASL_FAILURE, "malformed-request");
		sasl_free(s);
	}
	/* Too long: the password, and the whole message. */
	big = calloc(1, SASL_MAX_MESSAGE + 16);
	assert_non_null(big);
	memcpy(big, "\0user\0", 6);
	memset(big + 6, 'p', SASL_MAX_PASSWORD + 1);
	s = session(SASL_PLAIN, false);
	assert_failed(s, plain(s, big, 6 + SASL_MAX_PASSWORD + 1, &c), "malformed-request");
	sasl_free(s);
	s = session(SASL_PLAIN, false);
	assert_int_equal(sasl_start(s, (unsigned char *)big, 6 + SASL_MAX_PASSWORD),
			 SASL_NEED_CREDENTIALS);
	sasl_free(s);
	memset(big + 1, 'u', SASL_MAX_MESSAGE);
	s = session(SASL_PLAIN, false);
	assert_failed(s, plain(s, big, SASL_MAX_MESSAGE + 1, &c), "malformed-request");
	sasl_free(s);
	free(big);

	/* Only where it was offered. */
	s = session_with(SASL_PLAIN, false, false, true, secret);
	assert_failed(s, plain(s, "\0user\0pencil", 12, &c), "encryption-required");
	sasl_free(s);
	s = session_with(SASL_PLAIN, true, true, false, secret);
	assert_failed(s, plain(s, "\0user\0pencil", 12, &c), "invalid-mechanism");
	sasl_free(s);
}

/* ---- misuse and the wire helpers ---- */

static void misuse(void **state)
{
	struct sasl_channel_binding cb = { "tls-exporter", exporter, 32 };
	struct sasl_options o = { .tls = true, .secret = secret, .secret_len = 32 };
	struct scram_cred c1, c256;
	struct sasl_session *s;

	(void)state;
	assert_int_equal(scram_cred_derive(SCRAM_SHA_1, "pw", 4096, &c1), 0);
	assert_int_equal(scram_cred_derive(SCRAM_SHA_256, "pw", 4096, &c256), 0);

	/* Options that cannot work. */
	assert_null(sasl_new(SASL_MECH_COUNT, &o));
	assert_null(sasl_new(SASL_PLAIN, NULL));
	o.secret_len = 15;
	assert_null(sasl_new(SASL_PLAIN, &o));
	o.secret_len = 32;
	o.secret = NULL;
	assert_null(sasl_new(SASL_PLAIN, &o));
	o.secret = secret;
	o.n_cb = 1;
	assert_null(sasl_new(SASL_PLAIN, &o));		/* n_cb without cb */
	o.cb = &cb;
	o.n_cb = SASL_CB_MAX + 1;
	assert_null(sasl_new(SASL_PLAIN, &o));
	o.n_cb = 1;
	cb.len = 0;
	assert_null(sasl_new(SASL_PLAIN, &o));
	cb.len = SASL_CB_DATA_MAX + 1;
	assert_null(sasl_new(SASL_PLAIN, &o));
	cb.len = 32;
	cb.type = "a-channel-binding-name-that-is-too-long";
	assert_null(sasl_new(SASL_PLAIN, &o));
	cb.type = "";
	assert_null(sasl_new(SASL_PLAIN, &o));
	cb.type = "tls-exporter";
	s = sasl_new(SASL_PLAIN, &o);
	assert_non_null(s);
	sasl_free(s);
	sasl_free(NULL);

	/* Out of order. */
	s = session(SASL_SCRAM_SHA_1, false);
	assert_failed(s, step_str(s, "n,,n=user,r=abc"), "malformed-request");
	sasl_free(s);
	s = session(SASL_SCRAM_SHA_1, false);
	assert_failed(s, sasl_set_credentials(s, &c1), "temporary-auth-failure");
	sasl_free(s);
	s = session(SASL_SCRAM_SHA_1, false);
	assert_int_equal(start_str(s, "n,,n=user,r=abc"), SASL_NEED_CREDENTIALS);
	assert_failed(s, start_str(s, "n,,n=user,r=abc"), "malformed-request");
	sasl_free(s);
	s = session(SASL_SCRAM_SHA_1, false);
	assert_int_equal(start_str(s, "n,,n=user,r=abc"), SASL_NEED_CREDENTIALS);
	assert_failed(s, step_str(s, "c=biws,r=abc,p=AAAA"), "malformed-request");
	sasl_free(s);
	/* Credentials for the wrong hash. */
	s = session(SASL_SCRAM_SHA_1, false);
	assert_int_equal(start_str(s, "n,,n=user,r=abc"), SASL_NEED_CREDENTIALS);
	assert_failed(s, sasl_set_credentials(s, &c256), "temporary-auth-failure");
	sasl_free(s);
	/* Work and finish where there is none. */
	s = session(SASL_SCRAM_SHA_1, false);
	assert_int_equal(start_str(s, "n,,n=user,r=abc"), SASL_NEED_CREDENTIALS);
	assert_int_equal(sasl_set_credentials(s, &c1), SASL_CHALLENGE);
	sasl_work(s);
	assert_failed(s, sasl_finish(s), "temporary-auth-failure");
	sasl_free(s);
	/* Once failed, failed for good, with the first reason kept. */
	s = session(SASL_SCRAM_SHA_1, true);
	assert_failed(s, start_str(s, "y,,n=user,r=abc"), "not-authorized");
	assert_failed(s, step_str(s, "n,,n=user,r=abc"), "not-authorized");
	assert_failed(s, sasl_set_credentials(s, &c1), "not-authorized");
	assert_failed(s, sasl_finish(s), "not-authorized");
	assert_failed(s, sasl_start_base64(s, "eSwsbj11c2VyLHI9YWJj"), "not-authorized");
	sasl_free(s);
	/* PLAIN: finish before work. */
	s = session(SASL_PLAIN, false);
	assert_int_equal(sasl_start(s, (const unsigned char *)"\0u\0p", 4), SASL_NEED_CREDENTIALS);
	assert_int_equal(sasl_set_credentials(s, &c1), SASL_NEEDS_WORK);
	assert_failed(s, sasl_finish(s), "temporary-auth-failure");
	sasl_free(s);
	/* Unusable credentials. */
	s = session(SASL_PLAIN, false);
	assert_int_equal(sasl_start(s, (const unsigned char *)"\0u\0p", 4), SASL_NEED_CREDENTIALS);
	c1.iterations = 0;
	assert_failed(s, sasl_set_credentials(s, &c1), "temporary-auth-failure");
	sasl_free(s);

	/* Test nonces must be usable in a SCRAM message. */
	s = session(SASL_SCRAM_SHA_1, false);
	assert_int_equal(sasl_set_nonce_for_test(s, ""), -1);
	assert_int_equal(sasl_set_nonce_for_test(s, NULL), -1);
	assert_int_equal(sasl_set_nonce_for_test(s, "a,b"), -1);
	assert_int_equal(sasl_set_nonce_for_test(s, "a b"), -1);
	sasl_free(s);
}

static void wire_helpers(void **state)
{
	struct sasl_session *s;
	char *big;

	(void)state;
	s = session(SASL_SCRAM_SHA_1, false);
	assert_failed(s, sasl_start_base64(s, "biwsbj11c2VyLHI9YWJ"), "incorrect-encoding");
	sasl_free(s);
	s = session(SASL_SCRAM_SHA_1, false);
	assert_failed(s, sasl_start_base64(s, "biwsbj11c2VyLHI9YWJj\n"), "incorrect-encoding");
	sasl_free(s);
	s = session(SASL_SCRAM_SHA_1, false);
	assert_int_equal(sasl_start_base64(s, "biwsbj11c2VyLHI9YWJj"), SASL_NEED_CREDENTIALS);
	assert_string_equal(sasl_username(s), "user");
	sasl_free(s);
	/* "=" is an empty initial response: not a SCRAM message. */
	s = session(SASL_SCRAM_SHA_1, false);
	assert_failed(s, sasl_start_base64(s, "="), "malformed-request");
	sasl_free(s);
	s = session(SASL_SCRAM_SHA_1, false);
	assert_int_equal(sasl_start_base64(s, NULL), SASL_CHALLENGE);
	assert_failed(s, sasl_step_base64(s, "b!=="), "incorrect-encoding");
	sasl_free(s);

	/* Oversized base64 is refused without decoding it. */
	big = malloc(20001);
	assert_non_null(big);
	memset(big, 'A', 20000);
	big[20000] = '\0';
	s = session(SASL_SCRAM_SHA_1, false);
	assert_failed(s, sasl_start_base64(s, big), "malformed-request");
	sasl_free(s);
	/* Valid base64 of a little too much decodes, then the step refuses it. */
	big[base64_encoded_len(SASL_MAX_MESSAGE + 1)] = '\0';
	s = session(SASL_SCRAM_SHA_1, false);
	assert_failed(s, sasl_start_base64(s, big), "malformed-request");
	sasl_free(s);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(base64_vectors),
		cmocka_unit_test(base64_rejects),
		cmocka_unit_test(base64_sasl_wire),
		cmocka_unit_test(mech_names_offer),
		cmocka_unit_test(cred_round_trip),
		cmocka_unit_test(scram_sha1_rfc5802),
		cmocka_unit_test(scram_sha256_rfc7677),
		cmocka_unit_test(scram_full),
		cmocka_unit_test(scram_channel_binding_mismatch),
		cmocka_unit_test(scram_wrong_password),
		cmocka_unit_test(scram_unknown_user),
		cmocka_unit_test(scram_downgrade),
		cmocka_unit_test(scram_malformed_first),
		cmocka_unit_test(scram_malformed_final),
		cmocka_unit_test(scram_no_initial_response),
		cmocka_unit_test(plain_mechanism),
		cmocka_unit_test(plain_malformed),
		cmocka_unit_test(misuse),
		cmocka_unit_test(wire_helpers),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

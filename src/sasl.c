/*
 * sasl.c - server side of PLAIN and SCRAM-SHA-1/256(-PLUS): message parsing,
 * the proofs, stored credentials and their text form. See sasl.h for the step
 * protocol; the sessions here never do I/O, so they can be tested and fuzzed
 * on their own.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "base64.h"
#include "sasl.h"
#include "scram.h"

/* RFC 5802 wants a nonce the client cannot predict; 24 random bytes are 192
 * bits, 32 characters of base64. */
#define SCRAM_NONCE_BYTES 24
#define SCRAM_MAX_SNONCE 64
#define SASL_SECRET_MIN 16
#define SASL_SECRET_MAX 64

/* The conditions of RFC 6120 §6.5 this file uses. */
static const char cond_not_authorized[] = "not-authorized";
static const char cond_malformed[] = "malformed-request";
static const char cond_invalid_mech[] = "invalid-mechanism";
static const char cond_encryption[] = "encryption-required";
static const char cond_encoding[] = "incorrect-encoding";
static const char cond_temporary[] = "temporary-auth-failure";

struct sasl_mech_info {
	const char *name;
	bool scram;
	bool plus;
	enum scram_hash hash;
};

static const struct sasl_mech_info sasl_mechs[SASL_MECH_COUNT] = {
	[SASL_PLAIN] = { "PLAIN", false, false, SCRAM_SHA_256 },
	[SASL_SCRAM_SHA_1] = { "SCRAM-SHA-1", true, false, SCRAM_SHA_1 },
	[SASL_SCRAM_SHA_1_PLUS] = { "SCRAM-SHA-1-PLUS", true, true, SCRAM_SHA_1 },
	[SASL_SCRAM_SHA_256] = { "SCRAM-SHA-256", true, false, SCRAM_SHA_256 },
	[SASL_SCRAM_SHA_256_PLUS] = { "SCRAM-SHA-256-PLUS", true, true, SCRAM_SHA_256 },
};

/* Clients tend to pick the first mechanism they know: strongest first. */
static const enum sasl_mech sasl_offer_order[SASL_MECH_COUNT] = {
	SASL_SCRAM_SHA_256_PLUS, SASL_SCRAM_SHA_1_PLUS, SASL_SCRAM_SHA_256,
	SASL_SCRAM_SHA_1, SASL_PLAIN,
};

enum sasl_state {
	SASL_ST_NEW,		/* sasl_start() next */
	SASL_ST_WANT_FIRST,	/* empty challenge sent: the first message next */
	SASL_ST_WANT_CREDS,	/* sasl_set_credentials() next */
	SASL_ST_WANT_FINAL,	/* SCRAM: server-first sent, client-final next */
	SASL_ST_WANT_WORK,	/* PLAIN: sasl_work() next */
	SASL_ST_WORKED,		/* PLAIN: sasl_finish() next */
	SASL_ST_DONE,		/* succeeded */
	SASL_ST_FAILED,
};

struct sasl_cb_copy {
	char type[SASL_CB_TYPE_MAX + 1];
	unsigned char data[SASL_CB_DATA_MAX];
	size_t len;
};

struct sasl_session {
	enum sasl_mech mech;
	enum sasl_state state;
	bool tls;
	bool plain_allowed;
	struct sasl_cb_copy cb[SASL_CB_MAX];
	size_t n_cb;
	unsigned char secret[SASL_SECRET_MAX];
	size_t secret_len;
	unsigned fake_iterations;

	char *username;
	char *authzid;
	struct scram_cred cred;
	bool unknown_user;		/* cred is a fake: fail at the end */

	/* SCRAM */
	char gs2_flag;			/* 'n', 'y' or 'p' */
	int cb_index;			/* with 'p': the entry of cb[], or -1 */
	char *gs2_header;		/* as received, through the comma before n= */
	size_t gs2_len;
	char *first_bare;		/* client-first-message-bare, as received */
	char *server_first;
	char *nonce;			/* the client's, then with ours appended */
	char snonce[SCRAM_MAX_SNONCE + 1];	/* set by tests, else empty */

	/* PLAIN */
	char *password;
	size_t password_len;
	bool work_ok;
	bool work_error;

	char *out;
	size_t out_len;
	const char *condition;
	char text[128];
};

/* ---- small helpers ---- */

static bool is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* RFC 5802 "printable": what a nonce may hold. */
static bool is_printable(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e && c != ',';
}

/* s[0..len) is UTF-8 as RFC 3629 defines it (shortest form, no surrogates,
 * nothing past U+10FFFF) and holds no NUL; with no_controls, no C0 or C1
 * control and no DEL either, which have no business in a username and would
 * reach the logs. */
static bool utf8_ok(const unsigned char *s, size_t len, bool no_controls)
{
	size_t i = 0, need, k;
	uint32_t cp;

	while (i < len) {
		unsigned char c = s[i];

		if (c < 0x80) {
			if (c == 0 || (no_controls && (c < 0x20 || c == 0x7f)))
				return false;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i - 1 < need)
			return false;
		for (k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		if (cp >= 0xd800 && cp <= 0xdfff)
			return false;
		if (no_controls && cp <= 0x9f)
			return false;
		i += need + 1;
	}
	return true;
}

static char *mem_dup(const void *p, size_t n)
{
	char *d = malloc(n + 1);

	if (!d)
		return NULL;
	memcpy(d, p, n);
	d[n] = '\0';
	return d;
}

/* Frees a string that may hold a secret, wiping it first. */
static void free_secret(char **p, size_t len)
{
	if (*p)
		OPENSSL_clear_free(*p, len + 1);
	*p = NULL;
}

/* ---- mechanisms ---- */

int sasl_mech_find(const char *name, enum sasl_mech *mech)
{
	size_t i;

	if (!name)
		return -1;
	for (i = 0; i < SASL_MECH_COUNT; i++) {
		if (strcmp(name, sasl_mechs[i].name) == 0) {
			*mech = (enum sasl_mech)i;
			return 0;
		}
	}
	return -1;
}

const char *sasl_mech_name(enum sasl_mech mech)
{
	if ((unsigned)mech >= SASL_MECH_COUNT)
		return NULL;
	return sasl_mechs[mech].name;
}

/* The policy sasl_offer() advertises and sasl_start() enforces: NULL when mech
 * may be used, else the condition to fail with. */
static const char *sasl_mech_refused(enum sasl_mech mech, bool tls, bool cb, bool plain)
{
	if (mech == SASL_PLAIN) {
		if (!tls)
			return cond_encryption;
		if (!plain)
			return cond_invalid_mech;
	} else if (sasl_mechs[mech].plus && (!tls || !cb)) {
		return cond_invalid_mech;
	}
	return NULL;
}

size_t sasl_offer(bool tls, bool cb, bool plain_allowed, const char **names)
{
	size_t i, n = 0;

	for (i = 0; i < SASL_MECH_COUNT; i++) {
		enum sasl_mech m = sasl_offer_order[i];

		if (!sasl_mech_refused(m, tls, cb, plain_allowed))
			names[n++] = sasl_mechs[m].name;
	}
	return n;
}

/* ---- credentials ---- */

int scram_cred_derive_salt(enum scram_hash hash, const char *password,
			   const unsigned char *salt, size_t salt_len, unsigned iterations,
			   struct scram_cred *out)
{
	size_t pw_len;

	OPENSSL_cleanse(out, sizeof(*out));
	if (scram_hash_len(hash) == 0 || !password || !salt)
		return -1;
	pw_len = strnlen(password, SASL_MAX_PASSWORD + 1);
	if (pw_len == 0 || pw_len > SASL_MAX_PASSWORD)
		return -1;
	if (salt_len == 0 || salt_len > SCRAM_MAX_SALT)
		return -1;
	if (iterations == 0 || iterations > SCRAM_MAX_ITERATIONS)
		return -1;
	out->hash = hash;
	out->iterations = iterations;
	out->salt_len = salt_len;
	memcpy(out->salt, salt, salt_len);
	if (scram_keys(hash, password, pw_len, salt, salt_len, iterations, NULL,
		       out->stored_key, out->server_key) < 0) {
		OPENSSL_cleanse(out, sizeof(*out));
		return -1;
	}
	return 0;
}

int scram_cred_derive(enum scram_hash hash, const char *password, unsigned iterations,
		      struct scram_cred *out)
{
	unsigned char salt[SCRAM_SALT_LEN];
	int rc;

	OPENSSL_cleanse(out, sizeof(*out));
	if (iterations < SCRAM_MIN_ITERATIONS || iterations > SCRAM_MAX_ITERATIONS)
		return -1;
	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return -1;
	rc = scram_cred_derive_salt(hash, password, salt, sizeof(salt), iterations, out);
	OPENSSL_cleanse(salt, sizeof(salt));
	return rc;
}

static bool scram_cred_valid(const struct scram_cred *c)
{
	return scram_hash_len(c->hash) != 0 && c->iterations >= 1 &&
	       c->iterations <= SCRAM_MAX_ITERATIONS && c->salt_len >= 1 &&
	       c->salt_len <= SCRAM_MAX_SALT;
}

char *scram_cred_encode(const struct scram_cred *cred)
{
	char salt[BASE64_ENCODED_LEN(SCRAM_MAX_SALT) + 1];
	char stored[BASE64_ENCODED_LEN(SCRAM_MAX_KEY) + 1];
	char server[BASE64_ENCODED_LEN(SCRAM_MAX_KEY) + 1];
	size_t hlen, size;
	char *s;

	if (!cred || !scram_cred_valid(cred))
		return NULL;
	hlen = scram_hash_len(cred->hash);
	base64_encode(cred->salt, cred->salt_len, salt);
	base64_encode(cred->stored_key, hlen, stored);
	base64_encode(cred->server_key, hlen, server);
	size = 12 + sizeof(salt) + sizeof(stored) + sizeof(server);
	s = malloc(size);
	if (!s)
		return NULL;
	snprintf(s, size, "%u$%s$%s$%s", cred->iterations, salt, stored, server);
	return s;
}

/* Decodes the base64 field p[0..n) into out: exactly want bytes, or (want 0)
 * 1..max bytes. Returns the length, or 0 when it does not fit. */
static size_t scram_field(const char *p, size_t n, unsigned char *out, size_t max,
			  size_t want)
{
	size_t len;

	if (base64_decode(p, n, out, max, &len) < 0 || len == 0)
		return 0;
	if (want && len != want)
		return 0;
	return len;
}

int scram_cred_decode(enum scram_hash hash, const char *text, struct scram_cred *out)
{
	size_t hlen = scram_hash_len(hash), n;
	const char *p = text, *d1, *d2, *d3;
	unsigned long it = 0;

	OPENSSL_cleanse(out, sizeof(*out));
	if (hlen == 0 || !text)
		return -1;
	/* Longer than anything scram_cred_encode() makes: not ours. */
	n = strnlen(text, 512);
	if (n >= 512)
		goto bad;
	/* A canonical decimal: no sign, no leading zero, bounded before it can
	 * overflow. */
	if (!is_digit((unsigned char)*p) || *p == '0')
		goto bad;
	while (is_digit((unsigned char)*p)) {
		it = it * 10 + (unsigned long)(*p++ - '0');
		if (it > SCRAM_MAX_ITERATIONS)
			goto bad;
	}
	if (*p != '$')
		goto bad;
	d1 = p;
	d2 = strchr(d1 + 1, '$');
	if (!d2)
		goto bad;
	d3 = strchr(d2 + 1, '$');
	if (!d3 || strchr(d3 + 1, '$'))
		goto bad;
	out->hash = hash;
	out->iterations = (unsigned)it;
	out->salt_len = scram_field(d1 + 1, (size_t)(d2 - d1 - 1), out->salt, SCRAM_MAX_SALT, 0);
	if (out->salt_len == 0)
		goto bad;
	if (!scram_field(d2 + 1, (size_t)(d3 - d2 - 1), out->stored_key, SCRAM_MAX_KEY, hlen))
		goto bad;
	if (!scram_field(d3 + 1, strlen(d3 + 1), out->server_key, SCRAM_MAX_KEY, hlen))
		goto bad;
	return 0;
bad:
	OPENSSL_cleanse(out, sizeof(*out));
	return -1;
}

/* ---- sessions: common ---- */

struct sasl_session *sasl_new(enum sasl_mech mech, const struct sasl_options *opts)
{
	struct sasl_session *s;
	size_t i, tlen;

	if ((unsigned)mech >= SASL_MECH_COUNT || !opts || !opts->secret ||
	    opts->secret_len < SASL_SECRET_MIN || opts->secret_len > SASL_SECRET_MAX ||
	    opts->n_cb > SASL_CB_MAX || (opts->n_cb && !opts->cb) ||
	    opts->fake_iterations > SCRAM_MAX_ITERATIONS)
		return NULL;
	for (i = 0; i < opts->n_cb; i++) {
		const struct sasl_channel_binding *cb = &opts->cb[i];

		if (!cb->type || !cb->data || cb->len == 0 || cb->len > SASL_CB_DATA_MAX)
			return NULL;
		tlen = strnlen(cb->type, SASL_CB_TYPE_MAX + 1);
		if (tlen == 0 || tlen > SASL_CB_TYPE_MAX)
			return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->mech = mech;
	s->tls = opts->tls;
	s->plain_allowed = opts->plain_allowed;
	for (i = 0; i < opts->n_cb; i++) {
		strcpy(s->cb[i].type, opts->cb[i].type);
		memcpy(s->cb[i].data, opts->cb[i].data, opts->cb[i].len);
		s->cb[i].len = opts->cb[i].len;
	}
	s->n_cb = opts->n_cb;
	memcpy(s->secret, opts->secret, opts->secret_len);
	s->secret_len = opts->secret_len;
	s->fake_iterations = opts->fake_iterations ? opts->fake_iterations
						   : SCRAM_DEFAULT_ITERATIONS;
	s->cb_index = -1;
	return s;
}

void sasl_free(struct sasl_session *s)
{
	if (!s)
		return;
	free(s->username);
	free(s->authzid);
	free(s->gs2_header);
	free(s->first_bare);
	free(s->server_first);
	free(s->nonce);
	free_secret(&s->password, s->password_len);
	free(s->out);
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
}

/* Replaces the output with str[0..len) (taken over; NULL means none). */
static void sasl_set_out(struct sasl_session *s, char *str, size_t len)
{
	free(s->out);
	s->out = str;
	s->out_len = str ? len : 0;
}

/* Ends the session with cond. The first failure's condition and text stay. */
static enum sasl_status sasl_fail(struct sasl_session *s, const char *cond, const char *fmt,
				  ...)
{
	va_list ap;

	if (s->state != SASL_ST_FAILED) {
		s->condition = cond;
		va_start(ap, fmt);
		vsnprintf(s->text, sizeof(s->text), fmt, ap);
		va_end(ap);
		s->state = SASL_ST_FAILED;
	}
	sasl_set_out(s, NULL, 0);
	free_secret(&s->password, s->password_len);
	OPENSSL_cleanse(&s->cred, sizeof(s->cred));
	return SASL_FAILURE;
}

static enum sasl_status sasl_nomem(struct sasl_session *s)
{
	return sasl_fail(s, cond_temporary, "out of memory");
}

/* ---- PLAIN (RFC 4616) ---- */

static enum sasl_status plain_message(struct sasl_session *s, const unsigned char *in,
				      size_t len)
{
	const unsigned char *z1, *z2, *user, *pw;
	size_t zlen, ulen, plen;

	/* [authzid] NUL authcid NUL passwd, and no other NUL. */
	z1 = memchr(in, 0, len);
	if (!z1)
		return sasl_fail(s, cond_malformed, "PLAIN message without NUL");
	user = z1 + 1;
	z2 = memchr(user, 0, len - (size_t)(user - in));
	if (!z2)
		return sasl_fail(s, cond_malformed, "PLAIN message with one NUL");
	pw = z2 + 1;
	plen = len - (size_t)(pw - in);
	if (memchr(pw, 0, plen))
		return sasl_fail(s, cond_malformed, "PLAIN message with a third NUL");
	zlen = (size_t)(z1 - in);
	ulen = (size_t)(z2 - user);
	if (ulen == 0 || ulen > SASL_MAX_USERNAME || !utf8_ok(user, ulen, true))
		return sasl_fail(s, cond_malformed, "PLAIN: bad or empty username");
	if (zlen > SASL_MAX_AUTHZID || !utf8_ok(in, zlen, true))
		return sasl_fail(s, cond_malformed, "PLAIN: bad authzid");
	if (plen == 0 || plen > SASL_MAX_PASSWORD || !utf8_ok(pw, plen, false))
		return sasl_fail(s, cond_malformed, "PLAIN: bad or empty password");
	s->username = mem_dup(user, ulen);
	s->password = mem_dup(pw, plen);
	s->password_len = plen;
	if (zlen)
		s->authzid = mem_dup(in, zlen);
	if (!s->username || !s->password || (zlen && !s->authzid))
		return sasl_nomem(s);
	s->state = SASL_ST_WANT_CREDS;
	return SASL_NEED_CREDENTIALS;
}

/* ---- SCRAM (RFC 5802, RFC 7677) ---- */

/* Decodes a saslname p[0..n) ("=2C" is ',', "=3D" is '='; p holds no ',')
 * into *out, checking it is 1..max bytes of UTF-8 without controls. Returns 0,
 * -1 when malformed, -2 without memory. */
static int scram_saslname(const char *p, size_t n, size_t max, char **out)
{
	char *d = malloc(n + 1);
	size_t i, o = 0;

	*out = NULL;
	if (!d)
		return -2;
	for (i = 0; i < n; i++) {
		if (p[i] != '=') {
			d[o++] = p[i];
		} else if (n - i >= 3 && p[i + 1] == '2' && p[i + 2] == 'C') {
			d[o++] = ',';
			i += 2;
		} else if (n - i >= 3 && p[i + 1] == '3' && p[i + 2] == 'D') {
			d[o++] = '=';
			i += 2;
		} else {
			free(d);
			return -1;
		}
	}
	d[o] = '\0';
	if (o == 0 || o > max || !utf8_ok((unsigned char *)d, o, true)) {
		free(d);
		return -1;
	}
	*out = d;
	return 0;
}

/* p is just past a ',': attr-val *("," attr-val) to the end, each attr a
 * letter and each value non-empty. Unknown extensions are ignored (RFC 5802
 * §5.1) but must still be well-formed. */
static bool scram_extensions_ok(const char *p)
{
	for (;;) {
		if (!is_alpha((unsigned char)p[0]) || p[1] != '=' || p[2] == '\0' || p[2] == ',')
			return false;
		p = strchr(p + 2, ',');
		if (!p)
			return true;
		p++;
	}
}

/* client-first-message: gs2-header client-first-message-bare. msg is
 * NUL-terminated with no NUL inside. */
static enum sasl_status scram_first(struct sasl_session *s, const char *msg)
{
	const struct sasl_mech_info *mi = &sasl_mechs[s->mech];
	const char *p = msg, *e, *bare;
	size_t i, tlen;
	int rc;

	if ((p[0] == 'n' || p[0] == 'y') && p[1] == ',') {
		s->gs2_flag = p[0];
		p += 2;
	} else if (p[0] == 'p' && p[1] == '=') {
		s->gs2_flag = 'p';
		p += 2;
		for (e = p; is_alpha((unsigned char)*e) || is_digit((unsigned char)*e) ||
			    *e == '.' || *e == '-'; e++)
			;
		tlen = (size_t)(e - p);
		if (tlen == 0 || *e != ',')
			return sasl_fail(s, cond_malformed, "SCRAM: bad channel binding name");
		for (i = 0; i < s->n_cb; i++)
			if (strlen(s->cb[i].type) == tlen && memcmp(s->cb[i].type, p, tlen) == 0)
				s->cb_index = (int)i;
		p = e + 1;
	} else {
		return sasl_fail(s, cond_malformed, "SCRAM: bad gs2 header");
	}
	if (p[0] == 'a' && p[1] == '=') {
		e = strchr(p + 2, ',');
		if (!e)
			return sasl_fail(s, cond_malformed, "SCRAM: gs2 header without end");
		rc = scram_saslname(p + 2, (size_t)(e - p - 2), SASL_MAX_AUTHZID, &s->authzid);
		if (rc == -2)
			return sasl_nomem(s);
		if (rc < 0)
			return sasl_fail(s, cond_malformed, "SCRAM: bad authzid");
		p = e;
	}
	if (*p != ',')
		return sasl_fail(s, cond_malformed, "SCRAM: bad gs2 header");
	p++;
	s->gs2_len = (size_t)(p - msg);
	bare = p;

	/* m= marks an extension the server must understand; we know none. */
	if (p[0] == 'm' && p[1] == '=')
		return sasl_fail(s, cond_malformed, "SCRAM: mandatory extension not supported");
	if (p[0] != 'n' || p[1] != '=')
		return sasl_fail(s, cond_malformed, "SCRAM: no username");
	e = strchr(p + 2, ',');
	if (!e)
		return sasl_fail(s, cond_malformed, "SCRAM: no nonce");
	rc = scram_saslname(p + 2, (size_t)(e - p - 2), SASL_MAX_USERNAME, &s->username);
	if (rc == -2)
		return sasl_nomem(s);
	if (rc < 0)
		return sasl_fail(s, cond_malformed, "SCRAM: bad username");
	p = e + 1;
	if (p[0] != 'r' || p[1] != '=')
		return sasl_fail(s, cond_malformed, "SCRAM: no nonce");
	p += 2;
	for (e = p; *e && *e != ','; e++)
		if (!is_printable((unsigned char)*e))
			return sasl_fail(s, cond_malformed, "SCRAM: bad nonce");
	if (e == p)
		return sasl_fail(s, cond_malformed, "SCRAM: empty nonce");
	if (*e == ',' && !scram_extensions_ok(e + 1))
		return sasl_fail(s, cond_malformed, "SCRAM: bad extension");

	/* Channel binding must agree with the mechanism (RFC 5802 §6). */
	if (mi->plus && s->gs2_flag != 'p')
		return sasl_fail(s, cond_malformed, "SCRAM: -PLUS without channel binding");
	if (!mi->plus && s->gs2_flag == 'p')
		return sasl_fail(s, cond_malformed, "SCRAM: channel binding without -PLUS");
	if (s->gs2_flag == 'p' && s->cb_index < 0)
		return sasl_fail(s, cond_not_authorized, "SCRAM: unsupported channel binding");
	/* "y": the client could bind but believes we cannot. We can, so someone
	 * removed -PLUS from what we offered. */
	if (s->gs2_flag == 'y' && s->n_cb > 0)
		return sasl_fail(s, cond_not_authorized,
				 "SCRAM: channel binding downgrade (client sent y)");

	s->gs2_header = mem_dup(msg, s->gs2_len);
	s->first_bare = strdup(bare);
	s->nonce = mem_dup(p, (size_t)(e - p));
	if (!s->gs2_header || !s->first_bare || !s->nonce)
		return sasl_nomem(s);
	s->state = SASL_ST_WANT_CREDS;
	return SASL_NEED_CREDENTIALS;
}

/* Credentials for a name that is not an account: the salt is a keyed hash of
 * the name, so it is stable across tries (a random one would give the game
 * away) and unpredictable without the secret; the keys match no password. */
static int sasl_fake_cred(struct sasl_session *s, enum scram_hash hash)
{
	static const char label[] = "parley fake SCRAM salt";
	unsigned char msg[sizeof(label) + 1 + SASL_MAX_USERNAME];
	unsigned char mac[EVP_MAX_MD_SIZE];
	size_t ulen = strlen(s->username);
	unsigned int mlen;
	size_t hlen = scram_hash_len(hash);

	memcpy(msg, label, sizeof(label));	/* with its NUL as separator */
	msg[sizeof(label)] = (unsigned char)hash;
	memcpy(msg + sizeof(label) + 1, s->username, ulen);
	if (!HMAC(EVP_sha256(), s->secret, (int)s->secret_len, msg, sizeof(label) + 1 + ulen,
		  mac, &mlen))
		return -1;
	memset(&s->cred, 0, sizeof(s->cred));
	s->cred.hash = hash;
	s->cred.iterations = s->fake_iterations;
	s->cred.salt_len = SCRAM_SALT_LEN;
	memcpy(s->cred.salt, mac, SCRAM_SALT_LEN);
	if (RAND_bytes(s->cred.stored_key, (int)hlen) != 1 ||
	    RAND_bytes(s->cred.server_key, (int)hlen) != 1)
		return -1;
	s->unknown_user = true;
	return 0;
}

static enum sasl_status scram_server_first(struct sasl_session *s)
{
	unsigned char rnd[SCRAM_NONCE_BYTES];
	char snonce[BASE64_ENCODED_LEN(SCRAM_NONCE_BYTES) + 1];
	char salt[BASE64_ENCODED_LEN(SCRAM_MAX_SALT) + 1];
	const char *sn = snonce;
	size_t clen = strlen(s->nonce), slen, size;
	char *nonce, *out;

	if (s->snonce[0]) {
		sn = s->snonce;
	} else {
		if (RAND_bytes(rnd, sizeof(rnd)) != 1)
			return sasl_fail(s, cond_temporary, "no randomness for the nonce");
		base64_encode(rnd, sizeof(rnd), snonce);
	}
	slen = strlen(sn);
	nonce = realloc(s->nonce, clen + slen + 1);
	if (!nonce)
		return sasl_nomem(s);
	memcpy(nonce + clen, sn, slen + 1);
	s->nonce = nonce;
	base64_encode(s->cred.salt, s->cred.salt_len, salt);
	size = clen + slen + strlen(salt) + 32;
	out = malloc(size);
	if (!out)
		return sasl_nomem(s);
	snprintf(out, size, "r=%s,s=%s,i=%u", s->nonce, salt, s->cred.iterations);
	s->server_first = strdup(out);
	if (!s->server_first) {
		free(out);
		return sasl_nomem(s);
	}
	sasl_set_out(s, out, strlen(out));
	s->state = SASL_ST_WANT_FINAL;
	return SASL_CHALLENGE;
}

/* Whether the c= value p[0..n) is the base64 of our gs2 header followed, for
 * "p", by the channel-binding data. -1: not base64. */
static int scram_cb_matches(const struct sasl_session *s, const char *p, size_t n)
{
	unsigned char *got;
	size_t glen, want = s->gs2_len;
	const struct sasl_cb_copy *cb = s->cb_index >= 0 ? &s->cb[s->cb_index] : NULL;
	int ok;

	got = base64_decode_alloc(p, n, &glen);
	if (!got)
		return -1;
	if (s->gs2_flag == 'p' && cb)
		want += cb->len;
	ok = glen == want && memcmp(got, s->gs2_header, s->gs2_len) == 0 &&
	     (!cb || s->gs2_flag != 'p' || memcmp(got + s->gs2_len, cb->data, cb->len) == 0);
	free(got);
	return ok;
}

/* client-final-message: c=..,r=..[,ext],p=.. . msg is NUL-terminated. */
static enum sasl_status scram_final(struct sasl_session *s, const char *msg)
{
	size_t hlen = scram_hash_len(s->cred.hash);
	const char *p = msg, *e, *r, *proof_b64 = NULL;
	size_t rlen, without_proof = 0, plen, alen;
	unsigned char proof[SCRAM_MAX_KEY], sig[SCRAM_MAX_KEY];
	char v[BASE64_ENCODED_LEN(SCRAM_MAX_KEY) + 3];
	bool nonce_ok, proof_ok;
	char *auth, *out;
	int cb;

	if (p[0] != 'c' || p[1] != '=')
		return sasl_fail(s, cond_malformed, "SCRAM: final message without c=");
	e = strchr(p + 2, ',');
	if (!e)
		return sasl_fail(s, cond_malformed, "SCRAM: final message without r=");
	cb = scram_cb_matches(s, p + 2, (size_t)(e - p - 2));
	if (cb < 0)
		return sasl_fail(s, cond_malformed, "SCRAM: c= is not base64");
	p = e + 1;
	if (p[0] != 'r' || p[1] != '=')
		return sasl_fail(s, cond_malformed, "SCRAM: final message without r=");
	r = p + 2;
	e = strchr(r, ',');
	if (!e)
		return sasl_fail(s, cond_malformed, "SCRAM: final message without p=");
	rlen = (size_t)(e - r);
	/* Extensions, then the proof, which must come last. */
	for (p = e; p; p = strchr(p + 1, ',')) {
		if (p[1] == 'p' && p[2] == '=') {
			without_proof = (size_t)(p - msg);
			proof_b64 = p + 3;
			break;
		}
		if (!is_alpha((unsigned char)p[1]) || p[2] != '=' || p[3] == '\0' || p[3] == ',')
			return sasl_fail(s, cond_malformed, "SCRAM: bad extension");
	}
	if (!proof_b64)
		return sasl_fail(s, cond_malformed, "SCRAM: final message without p=");
	if (base64_decode(proof_b64, strlen(proof_b64), proof, sizeof(proof), &plen) < 0 ||
	    plen != hlen)
		return sasl_fail(s, cond_malformed, "SCRAM: bad proof");
	if (!cb)
		return sasl_fail(s, cond_not_authorized, "SCRAM: channel binding mismatch");
	nonce_ok = rlen == strlen(s->nonce) && memcmp(r, s->nonce, rlen) == 0;
	if (!nonce_ok)
		return sasl_fail(s, cond_not_authorized, "SCRAM: nonce mismatch");

	/* AuthMessage = client-first-bare "," server-first "," final-without-proof */
	alen = strlen(s->first_bare) + 1 + strlen(s->server_first) + 1 + without_proof;
	auth = malloc(alen + 1);
	if (!auth)
		return sasl_nomem(s);
	snprintf(auth, alen + 1, "%s,%s,%.*s", s->first_bare, s->server_first,
		 (int)without_proof, msg);

	/* ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); it is right if
	 * H(ClientKey) is StoredKey. Compared in constant time. */
	proof_ok = scram_proof_ok(s->cred.hash, s->cred.stored_key, auth, alen, proof);
	if (s->unknown_user || !proof_ok) {
		free(auth);
		return sasl_fail(s, cond_not_authorized, s->unknown_user ?
				 "SCRAM: no such user" : "SCRAM: wrong password");
	}
	if (scram_signature(s->cred.hash, s->cred.server_key, auth, alen, sig) < 0) {
		free(auth);
		return sasl_fail(s, cond_temporary, "SCRAM: HMAC failed");
	}
	free(auth);
	memcpy(v, "v=", 2);
	base64_encode(sig, hlen, v + 2);
	out = strdup(v);
	if (!out)
		return sasl_nomem(s);
	sasl_set_out(s, out, strlen(out));
	OPENSSL_cleanse(&s->cred, sizeof(s->cred));
	s->state = SASL_ST_DONE;
	return SASL_SUCCESS;
}

/* ---- sessions: steps ---- */

/* The first message of the mechanism, whether initial response or not. */
static enum sasl_status sasl_first_message(struct sasl_session *s, const unsigned char *in,
					   size_t len)
{
	enum sasl_status st;
	char *msg;

	if (len > SASL_MAX_MESSAGE)
		return sasl_fail(s, cond_malformed, "message too large (%zu bytes)", len);
	if (s->mech == SASL_PLAIN)
		return plain_message(s, in, len);
	if (len == 0)
		return sasl_fail(s, cond_malformed, "SCRAM: empty client-first-message");
	if (memchr(in, 0, len))
		return sasl_fail(s, cond_malformed, "SCRAM: NUL in message");
	msg = mem_dup(in, len);
	if (!msg)
		return sasl_nomem(s);
	st = scram_first(s, msg);
	free(msg);
	return st;
}

enum sasl_status sasl_start(struct sasl_session *s, const unsigned char *ir, size_t len)
{
	const char *refused;

	if (s->state != SASL_ST_NEW)
		return sasl_fail(s, cond_malformed, "exchange already started");
	refused = sasl_mech_refused(s->mech, s->tls, s->n_cb > 0, s->plain_allowed);
	if (refused)
		return sasl_fail(s, refused, "%s not offered on this stream",
				 sasl_mechs[s->mech].name);
	if (!ir) {
		/* The client waits for an empty challenge before its first message. */
		s->state = SASL_ST_WANT_FIRST;
		sasl_set_out(s, NULL, 0);
		return SASL_CHALLENGE;
	}
	return sasl_first_message(s, ir, len);
}

enum sasl_status sasl_step(struct sasl_session *s, const unsigned char *in, size_t len)
{
	enum sasl_status st;
	char *msg;

	switch (s->state) {
	case SASL_ST_WANT_FIRST:
		return sasl_first_message(s, in, len);
	case SASL_ST_WANT_FINAL:
		break;
	default:
		return sasl_fail(s, cond_malformed, "unexpected response");
	}
	if (len > SASL_MAX_MESSAGE)
		return sasl_fail(s, cond_malformed, "message too large (%zu bytes)", len);
	if (len == 0 || memchr(in, 0, len))
		return sasl_fail(s, cond_malformed, "SCRAM: empty client-final-message or NUL");
	msg = mem_dup(in, len);
	if (!msg)
		return sasl_nomem(s);
	st = scram_final(s, msg);
	free(msg);
	return st;
}

enum scram_hash sasl_cred_hash(const struct sasl_session *s)
{
	return sasl_mechs[s->mech].hash;
}

enum sasl_status sasl_set_credentials(struct sasl_session *s, const struct scram_cred *cred)
{
	const struct sasl_mech_info *mi = &sasl_mechs[s->mech];

	if (s->state != SASL_ST_WANT_CREDS)
		return sasl_fail(s, cond_temporary, "credentials given out of order");
	if (cred) {
		if (!scram_cred_valid(cred) || (mi->scram && cred->hash != mi->hash))
			return sasl_fail(s, cond_temporary, "unusable stored credentials");
		s->cred = *cred;
	} else if (sasl_fake_cred(s, mi->hash) < 0) {
		return sasl_fail(s, cond_temporary, "cannot make fake credentials");
	}
	if (mi->scram)
		return scram_server_first(s);
	s->state = SASL_ST_WANT_WORK;
	return SASL_NEEDS_WORK;
}

void sasl_work(struct sasl_session *s)
{
	unsigned char stored[SCRAM_MAX_KEY];
	size_t hlen = scram_hash_len(s->cred.hash);

	if (s->state != SASL_ST_WANT_WORK)
		return;
	/* The same PBKDF2 for unknown users, so timing does not tell. */
	if (scram_keys(s->cred.hash, s->password, s->password_len, s->cred.salt,
		       s->cred.salt_len, s->cred.iterations, NULL, stored, NULL) < 0)
		s->work_error = true;
	else
		s->work_ok = CRYPTO_memcmp(stored, s->cred.stored_key, hlen) == 0 &&
			     !s->unknown_user;
	OPENSSL_cleanse(stored, sizeof(stored));
	free_secret(&s->password, s->password_len);
	OPENSSL_cleanse(&s->cred, sizeof(s->cred));
	s->state = SASL_ST_WORKED;
}

enum sasl_status sasl_finish(struct sasl_session *s)
{
	if (s->state != SASL_ST_WORKED)
		return sasl_fail(s, cond_temporary, "finish before work");
	if (s->work_error)
		return sasl_fail(s, cond_temporary, "PLAIN: PBKDF2 failed");
	if (!s->work_ok)
		return sasl_fail(s, cond_not_authorized, s->unknown_user ?
				 "PLAIN: no such user" : "PLAIN: wrong password");
	sasl_set_out(s, NULL, 0);
	s->state = SASL_ST_DONE;
	return SASL_SUCCESS;
}

/* ---- accessors ---- */

const char *sasl_username(const struct sasl_session *s)
{
	return s->username;
}

const char *sasl_authzid(const struct sasl_session *s)
{
	return s->authzid;
}

const char *sasl_out(const struct sasl_session *s, size_t *len)
{
	if (len)
		*len = s->out_len;
	return s->out ? s->out : "";
}

const char *sasl_condition(const struct sasl_session *s)
{
	return s->state == SASL_ST_FAILED ? s->condition : NULL;
}

const char *sasl_text(const struct sasl_session *s)
{
	return s->state == SASL_ST_FAILED ? s->text : NULL;
}

/* ---- the XMPP wire form ---- */

/* Decodes text for sasl_start_base64() / sasl_step_base64(). Returns 1 with
 * *buf set, 0 when there is no payload, -1 after failing s. */
static int sasl_wire_decode(struct sasl_session *s, const char *text, unsigned char **buf,
			    size_t *len)
{
	/* Decoding one step's worth of base64 needs no more than this: longer is
	 * refused without reading on. */
	size_t limit = base64_encoded_len(SASL_MAX_MESSAGE), n;

	*buf = NULL;
	*len = 0;
	n = text ? strnlen(text, limit + 1) : 0;
	if (n > limit) {
		sasl_fail(s, cond_malformed, "message too large");
		return -1;
	}
	/* The bound leaves the size check to the step, so that only encoding
	 * errors are reported as incorrect-encoding. */
	switch (base64_sasl_decode(text, n, SASL_MAX_MESSAGE + 2, buf, len)) {
	case BASE64_SASL_OK:
		return 1;
	case BASE64_SASL_ABSENT:
		return 0;
	case BASE64_SASL_NOMEM:
		sasl_nomem(s);
		return -1;
	default:
		sasl_fail(s, cond_encoding, "payload is not base64");
		return -1;
	}
}

enum sasl_status sasl_start_base64(struct sasl_session *s, const char *text)
{
	enum sasl_status st;
	unsigned char *buf;
	size_t len;
	int rc;

	if (s->state != SASL_ST_NEW)
		return sasl_fail(s, cond_malformed, "exchange already started");
	rc = sasl_wire_decode(s, text, &buf, &len);
	if (rc < 0)
		return SASL_FAILURE;
	st = sasl_start(s, rc ? buf : NULL, len);
	if (buf)
		OPENSSL_clear_free(buf, len + 1);
	return st;
}

enum sasl_status sasl_step_base64(struct sasl_session *s, const char *text)
{
	enum sasl_status st;
	unsigned char *buf;
	size_t len;
	int rc;

	rc = sasl_wire_decode(s, text, &buf, &len);
	if (rc < 0)
		return SASL_FAILURE;
	/* A <response/> without data is an empty message. */
	st = sasl_step(s, rc ? buf : (const unsigned char *)"", len);
	if (buf)
		OPENSSL_clear_free(buf, len + 1);
	return st;
}

char *sasl_out_base64(const struct sasl_session *s)
{
	if (!s->out || s->out_len == 0)
		return strdup("");
	return base64_encode_alloc(s->out, s->out_len, NULL);
}

int sasl_set_nonce_for_test(struct sasl_session *s, const char *snonce)
{
	size_t i, n = snonce ? strnlen(snonce, SCRAM_MAX_SNONCE + 1) : 0;

	if (n == 0 || n > SCRAM_MAX_SNONCE)
		return -1;
	for (i = 0; i < n; i++)
		if (!is_printable((unsigned char)snonce[i]))
			return -1;
	memcpy(s->snonce, snonce, n + 1);
	return 0;
}

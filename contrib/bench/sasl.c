/*
 * sasl.c - the bench's SASL client (see sasl.h).
 *
 * Every login with the same password, salt and iteration count derives the
 * same keys, so PBKDF2 runs once per (hash, salt, iterations) and the keys
 * stay in a hash table for the process's life. Servers that salt each
 * account differently still get the cache on a second login (the existence
 * probe before the measured one). On this 2-core box one SCRAM-SHA-256
 * derivation costs the bench about a millisecond, which is more than the
 * server spends on the whole login: without the cache the bench would
 * measure itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "base64.h"
#include "sasl.h"
#include "scan.h"
#include "scram.h"
#include "util.h"

/* ---- the key cache ---- */

struct key_set {
	unsigned char client_key[SCRAM_MAX_KEY];
	unsigned char stored_key[SCRAM_MAX_KEY];
	unsigned char server_key[SCRAM_MAX_KEY];
};

struct key_entry {
	struct key_entry *next;
	enum scram_hash hash;
	bool saved;		/* in the --scram-cache file already */
	unsigned iterations;
	size_t salt_len;
	struct key_set k;
	unsigned char salt[64];
};

#define KEY_BUCKETS 4096
static struct key_entry *key_cache[KEY_BUCKETS];
static uint64_t pbkdf2_runs;
static int cache_file = -1;		/* --scram-cache, opened for appending */
static char cache_pwtag[17];		/* which password the file's keys are for */

uint64_t sasl_pbkdf2_runs(void)
{
	return pbkdf2_runs;
}

static uint32_t key_bucket(enum scram_hash hash, const unsigned char *salt, size_t salt_len,
			   unsigned iterations)
{
	uint32_t h = 2166136261u ^ iterations ^ (hash == SCRAM_SHA_256 ? 0x5a5a5a5au : 0);

	for (size_t i = 0; i < salt_len; i++)
		h = (h ^ salt[i]) * 16777619u;
	return h % KEY_BUCKETS;
}

static struct key_entry *key_insert(enum scram_hash hash, const unsigned char *salt,
				    size_t salt_len, unsigned iterations)
{
	struct key_entry *e;
	uint32_t h = key_bucket(hash, salt, salt_len, iterations);

	if (salt_len > sizeof(e->salt))
		return NULL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->hash = hash;
	e->iterations = iterations;
	e->salt_len = salt_len;
	memcpy(e->salt, salt, salt_len);
	e->next = key_cache[h];
	key_cache[h] = e;
	return e;
}

/* The keys for opt.password, from the cache or derived into it. */
static struct key_entry *key_get(enum scram_hash hash, const unsigned char *salt,
				 size_t salt_len, unsigned iterations)
{
	uint32_t h = key_bucket(hash, salt, salt_len, iterations);
	struct key_entry *e;

	for (e = key_cache[h]; e; e = e->next)
		if (e->hash == hash && e->iterations == iterations &&
		    e->salt_len == salt_len && memcmp(e->salt, salt, salt_len) == 0)
			return e;
	e = key_insert(hash, salt, salt_len, iterations);
	if (!e)
		return NULL;
	pbkdf2_runs++;
	if (scram_keys(hash, opt.password, strlen(opt.password), salt, salt_len, iterations,
		       e->k.client_key, e->k.stored_key, e->k.server_key) < 0) {
		key_cache[h] = e->next;	/* just inserted at the head */
		free(e);
		return NULL;
	}
	return e;
}

/* ---- the --scram-cache file ---- */

/* base64 of in[0, n) into out[cap], NUL-terminated; false if it does not fit. */
static bool b64_put(const void *in, size_t n, char *out, size_t cap)
{
	if (base64_encoded_len(n) + 1 > cap)
		return false;
	base64_encode(in, n, out);
	return true;
}

static ssize_t b64_get(const char *in, unsigned char *out, size_t cap)
{
	size_t len;

	return base64_decode(in, strlen(in), out, cap, &len) < 0 ? -1 : (ssize_t)len;
}

/* One line of the file, if it holds keys for this password. */
static void cache_line(const char *line)
{
	char tag[32], alg[16], salt[128], ck[128], sk[128], svk[128];
	unsigned char sb[64], kb[3][SCRAM_MAX_KEY];
	unsigned iter;
	ssize_t sl, kl[3];
	struct key_entry *e;
	enum scram_hash hash;

	if (sscanf(line, "%31s %15s %u %127s %127s %127s %127s", tag, alg, &iter, salt, ck, sk,
		   svk) != 7 || strcmp(tag, cache_pwtag) != 0)
		return;
	hash = strcmp(alg, "sha256") == 0 ? SCRAM_SHA_256 : SCRAM_SHA_1;
	sl = b64_get(salt, sb, sizeof(sb));
	kl[0] = b64_get(ck, kb[0], sizeof(kb[0]));
	kl[1] = b64_get(sk, kb[1], sizeof(kb[1]));
	kl[2] = b64_get(svk, kb[2], sizeof(kb[2]));
	if (sl <= 0 || kl[0] != (ssize_t)scram_hash_len(hash) || kl[1] != kl[0] ||
	    kl[2] != kl[0])
		return;
	e = key_insert(hash, sb, (size_t)sl, iter);
	if (!e)
		return;
	e->saved = true;
	memcpy(e->k.client_key, kb[0], (size_t)kl[0]);
	memcpy(e->k.stored_key, kb[1], (size_t)kl[0]);
	memcpy(e->k.server_key, kb[2], (size_t)kl[0]);
}

/*
 * One line per key set: "PWTAG sha1|sha256 ITERATIONS SALT CLIENTKEY
 * STOREDKEY SERVERKEY" (base64), where PWTAG is a hash of the password, so
 * another --password skips them.
 */
void sasl_cache_open(const char *path)
{
	unsigned char d[32];
	char line[1024];
	FILE *f;

	if (!EVP_Digest(opt.password, strlen(opt.password), d, NULL, EVP_sha256(), NULL))
		return;
	for (int i = 0; i < 8; i++)
		snprintf(cache_pwtag + 2 * i, 3, "%02x", d[i]);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f))
		cache_line(line);
	if (f)
		fclose(f);
	cache_file = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (cache_file < 0)
		note("--scram-cache %s: %s", path, strerror(errno));
}

/* Called once the server accepted the proof: keys derived from the fake salt
 * a server hands out for a missing account are not worth keeping. */
static void cache_save(struct key_entry *e)
{
	char line[1024], salt[100], k[3][100];
	size_t hl;
	int n;

	if (!e || e->saved)
		return;
	e->saved = true;
	hl = scram_hash_len(e->hash);
	if (cache_file < 0 || !b64_put(e->salt, e->salt_len, salt, sizeof(salt)) ||
	    !b64_put(e->k.client_key, hl, k[0], sizeof(k[0])) ||
	    !b64_put(e->k.stored_key, hl, k[1], sizeof(k[1])) ||
	    !b64_put(e->k.server_key, hl, k[2], sizeof(k[2])))
		return;
	n = snprintf(line, sizeof(line), "%s %s %u %s %s %s %s\n", cache_pwtag,
		     e->hash == SCRAM_SHA_256 ? "sha256" : "sha1", e->iterations, salt, k[0],
		     k[1], k[2]);
	/* One write per line: O_APPEND keeps the workers' lines whole. */
	if (n > 0 && (size_t)n < sizeof(line) && write(cache_file, line, (size_t)n) != n)
		note("--scram-cache: write failed: %s", strerror(errno));
}

/* ---- mechanisms and messages ---- */

struct sasl_scram {
	struct key_entry *keys;
	enum scram_hash hash;
	bool verified;
	char cnonce[25];
	char first_bare[128];
	unsigned char server_sig[SCRAM_MAX_KEY];
};

bool sasl_pick(bool plain, bool s1, bool s256, bool tls, enum sasl_choice *mech)
{
	switch (opt.sasl) {
	case SASL_PLAIN:
		*mech = SASL_PLAIN;
		return plain;
	case SASL_SCRAM1:
		*mech = SASL_SCRAM1;
		return s1;
	case SASL_SCRAM256:
		*mech = SASL_SCRAM256;
		return s256;
	default:
		*mech = s256 ? SASL_SCRAM256 : s1 ? SASL_SCRAM1 : SASL_PLAIN;
		return s256 || s1 || (plain && tls);
	}
}

const char *sasl_mech_text(enum sasl_choice mech)
{
	switch (mech) {
	case SASL_PLAIN:
		return "PLAIN";
	case SASL_SCRAM1:
		return "SCRAM-SHA-1";
	default:
		return "SCRAM-SHA-256";
	}
}

int sasl_initial(enum sasl_choice mech, const char *user, struct sasl_scram **scram,
		 char *out, size_t cap, const char **why)
{
	char raw[400];
	int n;

	if (mech == SASL_PLAIN) {
		n = snprintf(raw, sizeof(raw), "%c%s%c%s", 0, user, 0, opt.password);
	} else {
		struct sasl_scram *sc = calloc(1, sizeof(*sc));
		unsigned char nonce[12];

		*scram = sc;
		if (!sc || RAND_bytes(nonce, sizeof(nonce)) != 1) {
			*why = "out of memory or randomness";
			return SASL_E_INTERNAL;
		}
		sc->hash = mech == SASL_SCRAM256 ? SCRAM_SHA_256 : SCRAM_SHA_1;
		for (size_t i = 0; i < sizeof(nonce); i++)
			snprintf(sc->cnonce + 2 * i, 3, "%02x", nonce[i]);
		/* Account names are [A-Za-z0-9._-]: nothing to escape for SCRAM. */
		snprintf(sc->first_bare, sizeof(sc->first_bare), "n=%.90s,r=%s", user,
			 sc->cnonce);
		n = snprintf(raw, sizeof(raw), "n,,%s", sc->first_bare);
	}
	if (n < 0 || (size_t)n >= sizeof(raw) || !b64_put(raw, (size_t)n, out, cap)) {
		*why = "SASL message too long";
		return SASL_E_INTERNAL;
	}
	return 0;
}

int sasl_decode(char *text, size_t n, char *msg, size_t cap, size_t *len)
{
	size_t m = 0;

	for (size_t i = 0; i < n; i++)
		if (!is_space(text[i]))
			text[m++] = text[i];
	*len = 0;
	msg[0] = '\0';
	if (m == 0 || (m == 1 && text[0] == '='))
		return 0;
	if (base64_decode(text, m, (unsigned char *)msg, cap - 1, len) < 0)
		return -1;
	msg[*len] = '\0';
	return 0;
}

/* The value of attribute "X=" in a comma list of SCRAM attributes. */
static bool scram_attr(const char *msg, char key, const char **v, size_t *vl)
{
	const char *p = msg;

	while (*p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		if (len >= 2 && p[0] == key && p[1] == '=') {
			*v = p + 2;
			*vl = len - 2;
			return true;
		}
		if (!comma)
			break;
		p = comma + 1;
	}
	return false;
}

/* server-first-message: r=NONCE,s=SALT,i=ITERATIONS; the keys for them. */
static int scram_server_first(struct sasl_scram *sc, const char *msg, const char **r,
			      size_t *rl, const char **why)
{
	const char *sl, *it;
	size_t sll, itl, saltn, cl = strlen(sc->cnonce);
	unsigned char salt[128];
	uint64_t iter;

	if (msg[0] == 'm' || !scram_attr(msg, 'r', r, rl) || !scram_attr(msg, 's', &sl, &sll) ||
	    !scram_attr(msg, 'i', &it, &itl) || *rl <= cl || memcmp(*r, sc->cnonce, cl) != 0 ||
	    !parse_u64(it, itl, &iter) || iter == 0 || iter > 10000000) {
		*why = "SCRAM: bad server-first-message";
		return SASL_E_AUTH;
	}
	sc->keys = NULL;
	if (base64_decode(sl, sll, salt, sizeof(salt), &saltn) == 0 && saltn > 0)
		sc->keys = key_get(sc->hash, salt, saltn, (unsigned)iter);
	if (!sc->keys) {
		*why = "SCRAM: bad salt or key derivation failed";
		return SASL_E_AUTH;
	}
	return 0;
}

/* client-final-message: c=biws,r=NONCE,p=PROOF, base64 into out[cap]. */
static int scram_client_final(struct sasl_scram *sc, const char *msg, char *out, size_t cap,
			      const char **why)
{
	const char *r;
	size_t rl, hlen = scram_hash_len(sc->hash);
	unsigned char proof[SCRAM_MAX_KEY];
	char final_np[600], am[1400], pb[128], raw[800];
	int rc, n, a;

	rc = scram_server_first(sc, msg, &r, &rl, why);
	if (rc < 0)
		return rc;
	*why = "SCRAM message too long";
	n = snprintf(final_np, sizeof(final_np), "c=biws,r=%.*s", (int)rl, r);
	if (n < 0 || (size_t)n >= sizeof(final_np))
		return SASL_E_INTERNAL;
	a = snprintf(am, sizeof(am), "%s,%s,%s", sc->first_bare, msg, final_np);
	if (a < 0 || (size_t)a >= sizeof(am))
		return SASL_E_INTERNAL;
	if (scram_client_proof(sc->hash, sc->keys->k.client_key, sc->keys->k.stored_key, am,
			       (size_t)a, proof) < 0 ||
	    scram_signature(sc->hash, sc->keys->k.server_key, am, (size_t)a,
			    sc->server_sig) < 0) {
		*why = "HMAC failed";
		return SASL_E_INTERNAL;
	}
	if (!b64_put(proof, hlen, pb, sizeof(pb)))
		return SASL_E_INTERNAL;
	n = snprintf(raw, sizeof(raw), "%s,p=%s", final_np, pb);
	if (n < 0 || (size_t)n >= sizeof(raw) || !b64_put(raw, (size_t)n, out, cap))
		return SASL_E_INTERNAL;
	return 1;
}

int sasl_scram_step(struct sasl_scram *sc, const char *msg, bool challenge, char *out,
		    size_t cap, const char **why)
{
	const char *v;
	size_t vl;
	char b64[BASE64_ENCODED_LEN(SCRAM_MAX_KEY) + 1];

	if (sc->verified)
		return 0;
	if (scram_attr(msg, 'v', &v, &vl)) {
		base64_encode(sc->server_sig, scram_hash_len(sc->hash), b64);
		if (!mem_is(v, vl, b64)) {
			*why = "SCRAM: the server signature does not match";
			return SASL_E_AUTH;
		}
		sc->verified = true;
		cache_save(sc->keys);
		return 0;
	}
	return challenge ? scram_client_final(sc, msg, out, cap, why) : 0;
}

bool sasl_scram_verified(const struct sasl_scram *sc)
{
	return sc->verified;
}

/*
 * test_certid.c - a peer server's certificate (RFC 6120 §13.7, RFC 9525,
 * XEP-0178). First certid_matches() on certificates made here with the OpenSSL
 * API: DNS-ID, wildcards, SRV-ID, XmppAddr, IDN, no CN-ID, hostile names.
 * Then tls_peer_check() after real handshakes between tls_new_client() and
 * tls_new_server_s2s(), with hosts whose certificates come from a CA made
 * here (the s2s ca-file), over a socket pair and over loopback TCP through
 * conn (direct TLS and STARTTLS).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "certid.h"
#include "config.h"
#include "conn.h"
#include "server.h"
#include "tls.h"

/* ---- certificates ---- */

enum san_type { SAN_DNS, SAN_SRV, SAN_XMPP };

struct san {
	enum san_type type;
	const char *v;
	size_t len;		/* 0: strlen(v) */
};

struct spec {
	const char *cn;
	const struct san *sans;
	size_t nsans;
	X509 *issuer;		/* NULL: self-signed */
	EVP_PKEY *issuer_key;
	bool ca;
	bool expired;
	const char *eku;	/* NULL: no extendedKeyUsage */
};

static EVP_PKEY *new_key(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	assert_non_null(k);
	return k;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

static GENERAL_NAME *san_entry(const struct san *s)
{
	GENERAL_NAME *gn = GENERAL_NAME_new();
	int len = (int)(s->len ? s->len : strlen(s->v));
	ASN1_STRING *str = s->type == SAN_XMPP ? ASN1_UTF8STRING_new() : ASN1_IA5STRING_new();
	ASN1_TYPE *t;

	assert_non_null(gn);
	assert_non_null(str);
	assert_int_equal(ASN1_STRING_set(str, s->v, len), 1);
	if (s->type == SAN_DNS) {
		GENERAL_NAME_set0_value(gn, GEN_DNS, str);
		return gn;
	}
	t = ASN1_TYPE_new();
	assert_non_null(t);
	ASN1_TYPE_set(t, s->type == SAN_SRV ? V_ASN1_IA5STRING : V_ASN1_UTF8STRING, str);
	assert_int_equal(GENERAL_NAME_set0_othername(gn, OBJ_nid2obj(s->type == SAN_SRV ?
			 NID_SRVName : NID_XmppAddr), t), 1);
	return gn;
}

static X509 *make_cert(const struct spec *sp, EVP_PKEY *key)
{
	static long serial = 1;
	X509 *x = X509_new();
	X509_NAME *name;

	assert_non_null(x);
	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), sp->expired ? -60L * 86400 : -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), sp->expired ? -86400 : 30L * 86400);
	assert_int_equal(X509_set_pubkey(x, key), 1);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)sp->cn,
				   -1, -1, 0);
	X509_set_issuer_name(x, sp->issuer ? X509_get_subject_name(sp->issuer) : name);
	add_ext(x, sp->issuer, NID_subject_key_identifier, "hash");
	if (sp->issuer)
		add_ext(x, sp->issuer, NID_authority_key_identifier, "keyid");
	if (sp->ca) {
		add_ext(x, sp->issuer, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, sp->issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		add_ext(x, sp->issuer, NID_basic_constraints, "CA:FALSE");
		add_ext(x, sp->issuer, NID_key_usage, "critical,digitalSignature");
	}
	if (sp->eku)
		add_ext(x, sp->issuer, NID_ext_key_usage, sp->eku);
	if (sp->nsans) {
		GENERAL_NAMES *g = sk_GENERAL_NAME_new_null();

		assert_non_null(g);
		for (size_t i = 0; i < sp->nsans; i++)
			assert_true(sk_GENERAL_NAME_push(g, san_entry(&sp->sans[i])) > 0);
		assert_int_equal(X509_add1_ext_i2d(x, NID_subject_alt_name, g, 0,
						   X509V3_ADD_DEFAULT), 1);
		GENERAL_NAMES_free(g);
	}
	assert_true(X509_sign(x, sp->issuer_key ? sp->issuer_key : key, EVP_sha256()) > 0);
	return x;
}

/* A leaf with these names, self-signed: certid does not look at the chain. */
static X509 *names_cert(const struct san *sans, size_t n)
{
	EVP_PKEY *k = new_key();
	struct spec sp = { .cn = "leaf", .sans = sans, .nsans = n };
	X509 *x = make_cert(&sp, k);

	EVP_PKEY_free(k);
	return x;
}

#define N(a) (sizeof(a) / sizeof(*(a)))

static bool matches(X509 *x, const char *domain)
{
	char why[512];
	bool ok = certid_matches(x, domain, why, sizeof(why));

	if (ok)
		assert_string_equal(why, "");
	else
		assert_true(why[0] != '\0');
	return ok;
}

/* ---- certid_matches ---- */

static void test_dns_id(void **state)
{
	static const struct san sans[] = { { SAN_DNS, "Example.COM", 0 } };
	X509 *x = names_cert(sans, N(sans));
	char why[256];

	(void)state;
	assert_true(matches(x, "example.com"));
	assert_true(matches(x, "EXAMPLE.com"));		/* ASCII case folds */
	assert_false(matches(x, "example.org"));
	assert_false(matches(x, "a.example.com"));
	assert_false(matches(x, "com"));
	assert_false(certid_matches(x, "example.org", why, sizeof(why)));
	assert_string_equal(why, "the certificate names Example.COM, not example.org");
	assert_false(certid_matches(x, "", NULL, 0));
	assert_false(certid_matches(NULL, "example.com", NULL, 0));
	X509_free(x);
}

static void test_wildcards(void **state)
{
	static const struct san sans[] = {
		{ SAN_DNS, "*.example.com", 0 }, { SAN_DNS, "f*.example.net", 0 },
		{ SAN_DNS, "a.*.example.org", 0 }, { SAN_DNS, "*.org", 0 }, { SAN_DNS, "*", 0 },
		{ SAN_DNS, "*.xn--bcher-kva.example", 0 },
	};
	X509 *x = names_cert(sans, N(sans));
	char why[512];

	(void)state;
	assert_true(matches(x, "a.example.com"));
	assert_true(matches(x, "XMPP.Example.Com"));
	assert_false(matches(x, "example.com"));	/* not the bare parent */
	assert_false(matches(x, "a.b.example.com"));	/* one label only */
	assert_false(matches(x, "foo.example.net"));	/* no partial wildcards */
	assert_false(matches(x, "f*.example.net"));
	assert_false(matches(x, "a.b.example.org"));	/* left-most label only */
	assert_false(matches(x, "example.org"));	/* not over a TLD */
	assert_false(matches(x, "org"));
	assert_true(matches(x, "www.bücher.example"));
	assert_false(certid_matches(x, "a.b.example.com", why, sizeof(why)));
	assert_string_equal(why, "the certificate names *.example.com, f*.example.net, "
			    "a.*.example.org, *.org, *, *.xn--bcher-kva.example, not "
			    "a.b.example.com");
	X509_free(x);
}

static void test_srv_id(void **state)
{
	static const struct san sans[] = {
		{ SAN_SRV, "_xmpp-server.example.com", 0 }, { SAN_SRV, "_XMPPS-Server.example.net", 0 },
		{ SAN_SRV, "_xmpp-client.example.org", 0 }, { SAN_SRV, "_xmpp-server.*.example.de", 0 },
		{ SAN_SRV, "example.at", 0 },
	};
	X509 *x = names_cert(sans, N(sans));

	(void)state;
	assert_true(matches(x, "example.com"));
	assert_true(matches(x, "Example.NET"));		/* direct TLS service, XEP-0368 */
	assert_false(matches(x, "example.org"));	/* a client service is no server */
	assert_false(matches(x, "a.example.de"));	/* no wildcards in SRV-IDs */
	assert_false(matches(x, "example.at"));
	assert_false(matches(x, "_xmpp-server.example.com"));
	X509_free(x);
}

static void test_xmpp_addr(void **state)
{
	static const struct san sans[] = {
		{ SAN_XMPP, "Example.org", 0 }, { SAN_XMPP, "bücher.example", 0 },
		{ SAN_XMPP, "user@example.net", 0 },
	};
	X509 *x = names_cert(sans, N(sans));

	(void)state;
	assert_true(matches(x, "example.org"));
	assert_true(matches(x, "bücher.example"));
	assert_true(matches(x, "xn--bcher-kva.example"));
	assert_false(matches(x, "example.net"));	/* a user's JID names no server */
	assert_false(matches(x, "a.example.org"));
	X509_free(x);
}

/* RFC 9525 §6.3: no CN-ID, so a certificate without a subjectAltName names
 * nobody, however its CN reads. */
static void test_no_cn_id(void **state)
{
	EVP_PKEY *k = new_key();
	struct spec sp = { .cn = "example.com" };
	X509 *x = make_cert(&sp, k);
	static const struct san uri[] = { { SAN_DNS, "", 0 } };
	char why[256];

	(void)state;
	assert_false(certid_matches(x, "example.com", why, sizeof(why)));
	assert_non_null(strstr(why, "no subjectAltName"));
	X509_free(x);
	/* A subjectAltName with nothing usable in it: no name either. */
	sp.sans = uri;
	sp.nsans = 1;
	x = make_cert(&sp, k);
	assert_false(certid_matches(x, "example.com", why, sizeof(why)));
	assert_string_equal(why, "the certificate names no DNS, SRV or XMPP domain, so not "
			    "example.com");
	X509_free(x);
	EVP_PKEY_free(k);
}

static void test_idn(void **state)
{
	static const struct san sans[] = { { SAN_DNS, "xn--bcher-kva.example", 0 } };
	X509 *x = names_cert(sans, N(sans));
	char why[256];

	(void)state;
	assert_true(matches(x, "bücher.example"));
	assert_true(matches(x, "XN--BCHER-KVA.example"));
	assert_false(certid_matches(x, "bucher.example", why, sizeof(why)));
	assert_false(certid_matches(x, "bücher.example.com", why, sizeof(why)));
	assert_string_equal(why, "the certificate names xn--bcher-kva.example, not "
			    "bücher.example.com (xn--bcher-kva.example.com)");
	X509_free(x);
	/* A U-label in a dNSName is no DNS name (IA5String: A-labels only). */
	static const struct san ulabel[] = { { SAN_DNS, "bücher.example", 0 } };
	x = names_cert(ulabel, N(ulabel));
	assert_false(matches(x, "bücher.example"));
	X509_free(x);
}

static void test_hostile_names(void **state)
{
	static const char nul[] = "example.com\0.evil.example";
	char longname[400];
	struct san sans[] = {
		{ SAN_DNS, nul, sizeof(nul) - 1 },
		{ SAN_SRV, "_xmpp-server.example.com\0.evil.example", 38 },
		{ SAN_XMPP, nul, sizeof(nul) - 1 },
		{ SAN_DNS, longname, 0 }, { SAN_DNS, "exa mple.org", 0 }, { SAN_DNS, "example.net\n", 0 },
		{ SAN_DNS, "example.de.", 0 },
	};
	X509 *x;
	char why[512];

	(void)state;
	for (size_t i = 0; i < sizeof(longname) - 1; i++)
		longname[i] = i % 4 == 3 ? '.' : 'a';
	longname[sizeof(longname) - 1] = '\0';
	x = names_cert(sans, N(sans));
	assert_false(matches(x, "example.com"));
	assert_false(matches(x, ".evil.example"));
	assert_false(matches(x, "evil.example"));
	assert_false(matches(x, "exa mple.org"));
	assert_false(matches(x, "example.net"));
	assert_true(matches(x, "example.de"));		/* an absolute name is the same */
	assert_false(certid_matches(x, "example.com", why, sizeof(why)));
	/* Rejected names are not even shown. */
	assert_string_equal(why, "the certificate names example.de., not example.com");
	/* Names too long for DNS: the domain itself, then a 253-byte one. */
	longname[300] = '\0';
	assert_false(certid_matches(x, longname, why, sizeof(why)));
	X509_free(x);
	memset(longname, 'a', 253);
	longname[60] = longname[120] = longname[180] = longname[240] = '.';
	longname[253] = '\0';
	sans[0] = (struct san){ SAN_DNS, longname, 0 };
	x = names_cert(sans, 1);
	assert_true(matches(x, longname));
	X509_free(x);
}

/* Only the first CERTID_SAN_MAX entries count: a match after them is missed,
 * and the reason says how many names were left out of it. */
static void test_many_names(void **state)
{
	enum { MANY = CERTID_SAN_MAX + 10 };
	struct san *sans = calloc(MANY, sizeof(*sans));
	char (*names)[32] = calloc(MANY, sizeof(*names));
	char why[1024];
	X509 *x;

	(void)state;
	assert_non_null(sans);
	assert_non_null(names);
	for (int i = 0; i < MANY; i++) {
		snprintf(names[i], sizeof(names[i]), "host%d.example", i);
		sans[i] = (struct san){ SAN_DNS, names[i], 0 };
	}
	x = names_cert(sans, MANY);
	assert_true(matches(x, "host0.example"));
	assert_true(matches(x, "host255.example"));
	assert_false(matches(x, "host256.example"));
	assert_false(certid_matches(x, "other.example", why, sizeof(why)));
	assert_non_null(strstr(why, "the certificate names host0.example, host1.example, "));
	assert_non_null(strstr(why, " more, not other.example"));
	assert_true(strlen(why) < 600);
	X509_free(x);
	free(sans);
	free(names);
}

/* ---- tls_peer_check: a CA, hosts, real handshakes ---- */

static char dir[] = "/tmp/parley-certid-test.XXXXXX";
static struct config *cfg;
static SSL_CTX *bare_client;	/* a client that presents no certificate */

static char *path_of(const char *name)
{
	char *p;

	assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
	return p;
}

static void write_pem(const char *name, X509 *x, X509 *chain, EVP_PKEY *k)
{
	char *p = path_of(name);
	FILE *fp = fopen(p, "w");

	assert_non_null(fp);
	if (x)
		assert_int_equal(PEM_write_X509(fp, x), 1);
	if (chain)
		assert_int_equal(PEM_write_X509(fp, chain), 1);
	if (k)
		assert_int_equal(PEM_write_PrivateKey(fp, k, NULL, NULL, 0, NULL, NULL), 1);
	fclose(fp);
	free(p);
}

/* NAME.crt (the leaf, then the CA as its chain) and NAME.key. */
static void host_cert(const char *file, struct spec *sp, X509 *ca, EVP_PKEY *ca_key)
{
	EVP_PKEY *k = new_key();
	char crt[64], key[64];
	X509 *x;

	if (!sp->issuer && ca) {
		sp->issuer = ca;
		sp->issuer_key = ca_key;
	}
	x = make_cert(sp, k);
	snprintf(crt, sizeof(crt), "%s.crt", file);
	snprintf(key, sizeof(key), "%s.key", file);
	write_pem(crt, x, sp->issuer, NULL);
	write_pem(key, NULL, NULL, k);
	X509_free(x);
	EVP_PKEY_free(k);
}

static struct config *load_config(const char *body, struct config_errors *errs)
{
	char *p = path_of("parley.xml");
	FILE *fp = fopen(p, "w");
	struct config *c;

	assert_non_null(fp);
	fprintf(fp, "<parley>\n  <database conninfo='x'/>\n%s</parley>\n", body);
	fclose(fp);
	c = config_load(p, errs);
	free(p);
	return c;
}

#define HOST(name, file) \
	"  <host name='" name "' cert='" file ".crt' key='" file ".key'/>\n"

static const char hosts_config[] =
	"  <s2s ca-file='ca.pem'/>\n"
	HOST("a.example", "a") HOST("b.example", "b") HOST("self.example", "self")
	HOST("wrong.example", "wrong") HOST("expired.example", "expired")
	HOST("bücher.example", "idn") HOST("client-only.example", "clientonly");

static int group_setup(void **state)
{
	static const struct san a[] = { { SAN_DNS, "a.example", 0 } };
	static const struct san b[] = { { SAN_SRV, "_xmpp-server.b.example", 0 },
					{ SAN_DNS, "www.b.example", 0 } };
	static const struct san self[] = { { SAN_DNS, "self.example", 0 } };
	static const struct san wrong[] = { { SAN_DNS, "other.example", 0 } };
	static const struct san expired[] = { { SAN_DNS, "expired.example", 0 } };
	static const struct san idn[] = { { SAN_DNS, "*.example", 0 },
					  { SAN_XMPP, "bücher.example", 0 } };
	static const struct san clientonly[] = { { SAN_DNS, "client-only.example", 0 } };
	struct spec ca_spec = { .cn = "Parley Test CA", .ca = true };
	EVP_PKEY *ca_key;
	X509 *ca;
	struct config_errors errs = { 0 };

	(void)state;
	if (!mkdtemp(dir) || chdir(dir) < 0)
		return -1;
	ca_key = new_key();
	ca = make_cert(&ca_spec, ca_key);
	write_pem("ca.pem", ca, NULL, NULL);
	/* a.example's certificate is what public CAs issue from 2026: serverAuth
	 * only, and it must still do as a client certificate for s2s. */
	host_cert("a", &(struct spec){ .cn = "a", .sans = a, .nsans = 1,
		  .eku = "serverAuth" }, ca, ca_key);
	host_cert("b", &(struct spec){ .cn = "b.example", .sans = b, .nsans = 2,
		  .eku = "serverAuth,clientAuth" }, ca, ca_key);
	host_cert("self", &(struct spec){ .cn = "self.example", .sans = self, .nsans = 1 },
		  NULL, NULL);
	host_cert("wrong", &(struct spec){ .cn = "wrong.example", .sans = wrong, .nsans = 1 },
		  ca, ca_key);
	host_cert("expired", &(struct spec){ .cn = "expired", .sans = expired, .nsans = 1,
		  .expired = true }, ca, ca_key);
	host_cert("idn", &(struct spec){ .cn = "idn", .sans = idn, .nsans = 2 }, ca, ca_key);
	host_cert("clientonly", &(struct spec){ .cn = "c", .sans = clientonly, .nsans = 1,
		  .eku = "clientAuth" }, ca, ca_key);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	cfg = load_config(hosts_config, &errs);
	for (size_t i = 0; i < errs.count; i++)
		fprintf(stderr, "%s\n", errs.msgs[i]);
	if (!cfg || tls_init(cfg, &errs) < 0) {
		for (size_t i = 0; i < errs.count; i++)
			fprintf(stderr, "%s\n", errs.msgs[i]);
		config_errors_free(&errs);
		return -1;
	}
	config_errors_free(&errs);
	bare_client = SSL_CTX_new(TLS_client_method());
	return bare_client ? 0 : -1;
}

static int group_teardown(void **state)
{
	char cmd[256];

	(void)state;
	tls_free();
	config_free(cfg);
	SSL_CTX_free(bare_client);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

struct pair {
	SSL *client, *server;
	int fds[2];
};

/* Both ends of a handshake over a socket pair, in turn, until both are done. */
static void handshake(struct pair *p, SSL *client, SSL *srv)
{
	bool cdone = false, sdone = false;

	assert_non_null(client);
	assert_non_null(srv);
	p->client = client;
	p->server = srv;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p->fds), 0);
	fcntl(p->fds[0], F_SETFL, O_NONBLOCK);
	fcntl(p->fds[1], F_SETFL, O_NONBLOCK);
	SSL_set_fd(client, p->fds[0]);
	SSL_set_fd(srv, p->fds[1]);
	SSL_set_connect_state(client);
	SSL_set_accept_state(srv);
	for (int i = 0; i < 100 && !(cdone && sdone); i++) {
		SSL *s[2] = { client, srv };
		bool *done[2] = { &cdone, &sdone };

		for (int j = 0; j < 2; j++) {
			int r, e;

			if (*done[j])
				continue;
			r = SSL_do_handshake(s[j]);
			if (r == 1) {
				*done[j] = true;
				continue;
			}
			e = SSL_get_error(s[j], r);
			if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
				char err[256];

				ERR_error_string_n(ERR_get_error(), err, sizeof(err));
				fail_msg("%s: handshake failed (%d: %s)", j ? "server" : "client",
					 e, err);
			}
		}
	}
	assert_true(cdone && sdone);
}

static void pair_free(struct pair *p)
{
	SSL_free(p->client);
	SSL_free(p->server);
	close(p->fds[0]);
	close(p->fds[1]);
}

static void assert_peer(SSL *ssl, const char *domain, enum tls_peer want, const char *why)
{
	char got[512];
	enum tls_peer r = tls_peer_check(ssl, domain, got, sizeof(got));

	if (r != want || (why && !strstr(got, why)))
		fail_msg("%s: %d (%s), wanted %d (%s)", domain, r, got, want, why ? why : "");
}

/* a.example and b.example, both with certificates of the CA: each side
 * authenticates the other (the client's certificate is serverAuth only). */
static void test_peer_valid(void **state)
{
	struct pair p;

	(void)state;
	handshake(&p, tls_new_client("a.example", "b.example", false), tls_new_server_s2s());
	assert_peer(p.client, "b.example", TLS_PEER_VALID, NULL);
	assert_peer(p.server, "a.example", TLS_PEER_VALID, NULL);
	/* the certificate is valid, but it names neither of these */
	assert_peer(p.client, "a.example", TLS_PEER_INVALID,
		    "the certificate names _xmpp-server.b.example, www.b.example, not "
		    "a.example");
	assert_peer(p.server, "b.example", TLS_PEER_INVALID,
		    "the certificate names a.example, not b.example");
	/* STARTTLS: no ALPN */
	{
		const unsigned char *proto;
		unsigned int len;

		SSL_get0_alpn_selected(p.client, &proto, &len);
		assert_int_equal(len, 0);
	}
	pair_free(&p);
}

static void test_peer_invalid(void **state)
{
	struct pair p;

	(void)state;
	handshake(&p, tls_new_client("a.example", "self.example", false),
		  tls_new_server_s2s());
	assert_peer(p.client, "self.example", TLS_PEER_INVALID, "self");
	pair_free(&p);

	handshake(&p, tls_new_client("a.example", "wrong.example", false),
		  tls_new_server_s2s());
	assert_peer(p.client, "wrong.example", TLS_PEER_INVALID,
		    "the certificate names other.example, not wrong.example");
	pair_free(&p);

	handshake(&p, tls_new_client("a.example", "expired.example", false),
		  tls_new_server_s2s());
	assert_peer(p.client, "expired.example", TLS_PEER_INVALID, "certificate has expired");
	pair_free(&p);

	/* an unknown name gets the default certificate (the first host's) */
	handshake(&p, tls_new_client("a.example", "unknown.example", false),
		  tls_new_server_s2s());
	assert_peer(p.client, "unknown.example", TLS_PEER_INVALID,
		    "names a.example, not unknown.example");
	pair_free(&p);

	/* self.example as the client: the server side says so */
	handshake(&p, tls_new_client("self.example", "b.example", false),
		  tls_new_server_s2s());
	assert_peer(p.client, "b.example", TLS_PEER_VALID, NULL);
	assert_peer(p.server, "self.example", TLS_PEER_INVALID, "self");
	pair_free(&p);

	/* a clientAuth-only certificate: fine for the client side of s2s, not
	 * for a server */
	handshake(&p, tls_new_client("client-only.example", "b.example", false),
		  tls_new_server_s2s());
	assert_peer(p.server, "client-only.example", TLS_PEER_VALID, NULL);
	pair_free(&p);
	handshake(&p, tls_new_client("a.example", "client-only.example", false),
		  tls_new_server_s2s());
	assert_peer(p.client, "client-only.example", TLS_PEER_INVALID,
		    "certificate purpose");	/* unsuitable, unsupported */
	pair_free(&p);
}

/* SNI carries the A-label; the host's certificate names it with a wildcard
 * and an XmppAddr in UTF-8. */
static void test_peer_idn(void **state)
{
	struct pair p;

	(void)state;
	handshake(&p, tls_new_client("a.example", "bücher.example", false),
		  tls_new_server_s2s());
	assert_string_equal(SSL_get_servername(p.server, TLSEXT_NAMETYPE_host_name),
			    "xn--bcher-kva.example");
	assert_peer(p.client, "bücher.example", TLS_PEER_VALID, NULL);
	pair_free(&p);
	/* our_domain picks the certificate presented */
	handshake(&p, tls_new_client("bücher.example", "a.example", false),
		  tls_new_server_s2s());
	assert_peer(p.server, "bücher.example", TLS_PEER_VALID, NULL);
	pair_free(&p);
}

static void test_peer_none(void **state)
{
	struct pair p;

	(void)state;
	/* a peer server that presents no certificate */
	handshake(&p, SSL_new(bare_client), tls_new_server_s2s());
	assert_peer(p.server, "a.example", TLS_PEER_NONE, "no certificate");
	pair_free(&p);
	/* a c2s context asks for none */
	handshake(&p, tls_new_client("a.example", "b.example", false), tls_new_server());
	assert_peer(p.server, "a.example", TLS_PEER_NONE, NULL);
	assert_peer(p.client, "b.example", TLS_PEER_VALID, NULL);
	pair_free(&p);
	assert_int_equal(tls_peer_check(NULL, "a.example", NULL, 0), TLS_PEER_NONE);
}

static void test_alpn(void **state)
{
	const unsigned char *proto;
	unsigned int len;
	struct pair p;

	(void)state;
	handshake(&p, tls_new_client("a.example", "b.example", true), tls_new_server_s2s());
	SSL_get0_alpn_selected(p.client, &proto, &len);
	assert_int_equal(len, 11);
	assert_memory_equal(proto, "xmpp-server", 11);
	assert_peer(p.client, "b.example", TLS_PEER_VALID, NULL);
	pair_free(&p);
	/* a c2s or HTTP listener answers no s2s ALPN */
	handshake(&p, tls_new_client("a.example", "b.example", true), tls_new_server());
	SSL_get0_alpn_selected(p.client, &proto, &len);
	assert_int_equal(len, 0);
	pair_free(&p);
}

/* A bad ca-file is a config error at the <s2s> line; without one the
 * system's store is used. Last: it re-initializes TLS. */
static void test_bad_ca_file(void **state)
{
	struct config_errors errs = { 0 };
	struct config *c;
	char *p = path_of("parley.xml"), prefix[600];
	FILE *fp = fopen("junk.pem", "w");

	(void)state;
	assert_non_null(fp);
	fputs("not a certificate\n", fp);
	fclose(fp);
	tls_free();
	c = load_config("  <s2s ca-file='junk.pem'/>\n" HOST("a.example", "a"), &errs);
	assert_non_null(c);
	assert_int_equal(tls_init(c, &errs), -1);
	assert_int_equal(errs.count, 1);
	snprintf(prefix, sizeof(prefix), "%s:3: <s2s ca-file>: cannot load %s/junk.pem", p,
		 dir);
	if (strncmp(errs.msgs[0], prefix, strlen(prefix)) != 0)
		fail_msg("got \"%s\"", errs.msgs[0]);
	config_errors_free(&errs);
	tls_free();
	config_free(c);
	/* the system store: b.example's private CA is not in it */
	c = load_config(HOST("a.example", "a") HOST("b.example", "b"), &errs);
	assert_non_null(c);
	assert_int_equal(tls_init(c, &errs), 0);
	{
		struct pair pr;

		handshake(&pr, tls_new_client("a.example", "b.example", false),
			  tls_new_server_s2s());
		/* (b.crt carries the private root as its chain) */
		assert_peer(pr.client, "b.example", TLS_PEER_INVALID,
			    "in certificate chain");
		pair_free(&pr);
	}
	tls_free();
	config_free(c);
	/* s2s disabled: no s2s TLS at all */
	c = load_config("  <s2s enabled='false'/>\n" HOST("a.example", "a"), &errs);
	assert_non_null(c);
	assert_int_equal(tls_init(c, &errs), 0);
	assert_null(tls_new_client("a.example", "b.example", false));
	assert_null(tls_new_server_s2s());
	assert_true(tls_available());
	tls_free();
	config_free(c);
	/* back to the hosts of the other tests */
	c = load_config(hosts_config, &errs);
	assert_non_null(c);
	assert_int_equal(tls_init(c, &errs), 0);
	config_free(c);
	free(p);
}

/* ---- through conn, over loopback TCP ---- */

struct side {
	struct conn *c;
	int connected, tls_up, errors, closed, eofs, timeouts;
	int first;		/* the first event */
	char in[512];
	size_t in_len;
	char why[128];
	bool client, starttls;	/* the STARTTLS dance */
};

static void on_conn(struct conn *c, void *arg, enum conn_event ev, const char *why)
{
	struct side *s = arg;
	struct evbuffer *in;
	size_t n;

	if (!s->first)
		s->first = (int)ev + 1;
	if (why)
		snprintf(s->why, sizeof(s->why), "%s", why);
	switch (ev) {
	case CONN_READ:
		in = conn_input(c);
		n = evbuffer_get_length(in);
		if (n > sizeof(s->in) - 1 - s->in_len)
			n = sizeof(s->in) - 1 - s->in_len;
		evbuffer_remove(in, s->in + s->in_len, n);
		s->in_len += n;
		s->in[s->in_len] = '\0';
		if (s->starttls && !conn_is_tls(c) && !s->client && strstr(s->in, "<starttls/>")) {
			assert_int_equal(conn_write(c, "<proceed/>", 10), 0);
			assert_int_equal(conn_starttls(c), 0);
			s->in_len = 0;
		} else if (s->starttls && !conn_is_tls(c) && s->client &&
			   strstr(s->in, "<proceed/>")) {
			SSL *ssl = tls_new_client("a.example", "b.example", false);

			assert_int_equal(conn_starttls_client(c, ssl), 0);
			s->in_len = 0;
		}
		break;
	case CONN_CONNECTED:
		s->connected++;
		if (s->starttls)
			assert_int_equal(conn_write(c, "<starttls/>", 11), 0);
		break;
	case CONN_TLS_UP:
		s->tls_up++;
		break;
	case CONN_EOF:
		s->eofs++;
		break;
	case CONN_CLOSED:
		s->closed++;
		break;
	case CONN_TIMEOUT:
		s->timeouts++;
		break;
	case CONN_ERROR:
		s->errors++;
		break;
	}
}

static int conn_setup(void **state)
{
	(void)state;
	server.base = event_base_new();
	return server.base ? 0 : -1;
}

static int conn_teardown(void **state)
{
	(void)state;
	conn_shutdown();
	event_base_free(server.base);
	server.base = NULL;
	return 0;
}

static int listen_loopback(struct sockaddr_in *sa)
{
	socklen_t len = sizeof(*sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)sa, sizeof(*sa)), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)sa, &len), 0);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

/* Runs the loop until cond holds, for at most about five seconds. */
#define SPIN_UNTIL(cond)							\
	do {									\
		for (int spin_ = 0; spin_ < 5000 && !(cond); spin_++) {	\
			event_base_loop(server.base, EVLOOP_NONBLOCK);		\
			if (!(cond))						\
				usleep(1000);					\
		}								\
		assert_true(cond);						\
	} while (0)

static struct conn *accept_one(int lfd, conn_tls_fn tls_new, bool direct, struct side *s)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = -1;

	for (int i = 0; i < 5000 && fd < 0; i++) {
		event_base_loop(server.base, EVLOOP_NONBLOCK);
		fd = accept(lfd, (struct sockaddr *)&sa, &len);
		if (fd < 0)
			usleep(1000);
	}
	assert_true(fd >= 0);
	s->c = conn_new_ex(fd, (struct sockaddr *)&sa, direct, tls_new, on_conn, s);
	assert_non_null(s->c);
	return s->c;
}

static void test_conn_direct_tls(void **state)
{
	struct sockaddr_in sa;
	struct side cli = { .client = true }, srv = { 0 };
	int lfd = listen_loopback(&sa);
	const unsigned char *proto;
	unsigned int len;

	(void)state;
	cli.c = conn_connect((struct sockaddr *)&sa, sizeof(sa),
			     tls_new_client("a.example", "b.example", true), 5, on_conn, &cli);
	assert_non_null(cli.c);
	assert_int_equal(cli.first, 0);		/* nothing from within the call */
	assert_int_equal(conn_write(cli.c, "x", 1), -1);	/* not yet */
	accept_one(lfd, tls_new_server_s2s, true, &srv);
	SPIN_UNTIL(cli.tls_up && srv.tls_up);
	assert_int_equal(cli.first, CONN_CONNECTED + 1);
	assert_int_equal(cli.connected, 1);
	assert_string_equal(conn_peer(cli.c), "127.0.0.1");
	assert_true(conn_is_tls(cli.c) && conn_is_tls(srv.c));
	assert_peer(conn_ssl(cli.c), "b.example", TLS_PEER_VALID, NULL);
	assert_peer(conn_ssl(srv.c), "a.example", TLS_PEER_VALID, NULL);
	SSL_get0_alpn_selected(conn_ssl(srv.c), &proto, &len);
	assert_int_equal(len, 11);
	assert_int_equal(conn_write(cli.c, "<stream>", 8), 0);
	assert_int_equal(conn_write(srv.c, "<stream/>", 9), 0);
	SPIN_UNTIL(srv.in_len == 8 && cli.in_len == 9);
	assert_string_equal(srv.in, "<stream>");
	assert_string_equal(cli.in, "<stream/>");
	conn_close(cli.c);
	SPIN_UNTIL(cli.closed == 1);
	assert_int_equal(cli.errors, 0);
	conn_free(cli.c);
	SPIN_UNTIL(srv.eofs + srv.errors == 1);
	conn_free(srv.c);
	close(lfd);
}

static void test_conn_starttls(void **state)
{
	struct sockaddr_in sa;
	struct side cli = { .client = true, .starttls = true }, srv = { .starttls = true };
	int lfd = listen_loopback(&sa);

	(void)state;
	cli.c = conn_connect((struct sockaddr *)&sa, sizeof(sa), NULL, 5, on_conn, &cli);
	assert_non_null(cli.c);
	accept_one(lfd, tls_new_server_s2s, false, &srv);
	SPIN_UNTIL(cli.tls_up && srv.tls_up);
	assert_int_equal(cli.connected, 1);
	assert_int_equal(cli.errors + srv.errors, 0);
	assert_peer(conn_ssl(cli.c), "b.example", TLS_PEER_VALID, NULL);
	assert_peer(conn_ssl(srv.c), "a.example", TLS_PEER_VALID, NULL);
	/* a second STARTTLS is refused */
	assert_int_equal(conn_starttls_client(cli.c, tls_new_client("a.example", "b.example",
							   false)), -1);
	assert_int_equal(conn_starttls(srv.c), -1);
	assert_int_equal(conn_write(cli.c, "<stream>", 8), 0);
	SPIN_UNTIL(srv.in_len == 8);
	assert_string_equal(srv.in, "<stream>");
	conn_free(cli.c);
	conn_free(srv.c);
	close(lfd);
}

/* The c2s flavour stays as it was: conn_new's STARTTLS asks for no
 * certificate. */
static void test_conn_c2s_unchanged(void **state)
{
	struct sockaddr_in sa;
	struct side cli = { .client = true, .starttls = true }, srv = { .starttls = true };
	int lfd = listen_loopback(&sa);
	struct sockaddr_in peer;
	socklen_t len = sizeof(peer);
	int fd = -1;

	(void)state;
	cli.c = conn_connect((struct sockaddr *)&sa, sizeof(sa), NULL, 5, on_conn, &cli);
	for (int i = 0; i < 5000 && fd < 0; i++) {
		event_base_loop(server.base, EVLOOP_NONBLOCK);
		if ((fd = accept(lfd, (struct sockaddr *)&peer, &len)) < 0)
			usleep(1000);
	}
	assert_true(fd >= 0);
	srv.c = conn_new(fd, (struct sockaddr *)&peer, false, on_conn, &srv);
	SPIN_UNTIL(cli.tls_up && srv.tls_up);
	assert_int_equal(SSL_get_verify_mode(conn_ssl(srv.c)), SSL_VERIFY_NONE);
	assert_peer(conn_ssl(srv.c), "a.example", TLS_PEER_NONE, NULL);
	conn_free(cli.c);
	conn_free(srv.c);
	close(lfd);
}

static void test_conn_connect_fails(void **state)
{
	struct sockaddr_in sa;
	struct side cli = { 0 };
	int lfd = listen_loopback(&sa);

	(void)state;
	close(lfd);	/* nobody listens there now */
	cli.c = conn_connect((struct sockaddr *)&sa, sizeof(sa),
			     tls_new_client("a.example", "b.example", true), 5, on_conn, &cli);
	assert_non_null(cli.c);
	assert_int_equal(cli.first, 0);
	SPIN_UNTIL(cli.errors == 1);
	assert_int_equal(cli.connected + cli.tls_up, 0);
	assert_string_equal(cli.why, strerror(ECONNREFUSED));
	conn_free(cli.c);	/* frees the SSL it was given */

	/* closed while connecting: CONN_CLOSED, nothing else */
	lfd = listen_loopback(&sa);
	memset(&cli, 0, sizeof(cli));
	cli.c = conn_connect((struct sockaddr *)&sa, sizeof(sa), NULL, 5, on_conn, &cli);
	assert_non_null(cli.c);
	conn_close(cli.c);
	SPIN_UNTIL(cli.closed == 1);
	assert_int_equal(cli.connected + cli.errors, 0);
	conn_free(cli.c);
	close(lfd);

	/* a Unix address is refused, and the SSL freed */
	struct sockaddr un = { .sa_family = AF_UNIX };
	errno = 0;
	assert_null(conn_connect(&un, sizeof(un), tls_new_client("a.example", "b.example",
				 false), 5, on_conn, &cli));
	assert_int_equal(errno, EINVAL);
}

int main(void)
{
	/* One group (one TAP plan): the set-up makes the CA, the hosts and TLS. */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dns_id),
		cmocka_unit_test(test_wildcards),
		cmocka_unit_test(test_srv_id),
		cmocka_unit_test(test_xmpp_addr),
		cmocka_unit_test(test_no_cn_id),
		cmocka_unit_test(test_idn),
		cmocka_unit_test(test_hostile_names),
		cmocka_unit_test(test_many_names),
		cmocka_unit_test(test_peer_valid),
		cmocka_unit_test(test_peer_invalid),
		cmocka_unit_test(test_peer_idn),
		cmocka_unit_test(test_peer_none),
		cmocka_unit_test(test_alpn),
		cmocka_unit_test_setup_teardown(test_conn_direct_tls, conn_setup, conn_teardown),
		cmocka_unit_test_setup_teardown(test_conn_starttls, conn_setup, conn_teardown),
		cmocka_unit_test_setup_teardown(test_conn_c2s_unchanged, conn_setup,
						conn_teardown),
		cmocka_unit_test_setup_teardown(test_conn_connect_fails, conn_setup,
						conn_teardown),
		cmocka_unit_test(test_bad_ca_file),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

/*
 * tls.c - OpenSSL contexts: the listeners', one per certificate, chosen by SNI,
 * and the server-to-server ones.
 *
 * Each certificate has a server context and, with s2s enabled, a client
 * context that presents the same certificate and key on outgoing s2s streams
 * (RFC 6120 §13.7.2: a server authenticates itself with SASL EXTERNAL using
 * the certificate it would serve). One X509_STORE, shared by reference, holds
 * the s2s trust anchors. It is the verify store of every context, the server
 * ones included, because SNI swaps an accepted connection's context (and with
 * it the verify store) to the named host's.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <idna.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "certid.h"
#include "log.h"

#define TLS_DEFAULT_CIPHERS \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* XEP-0368 §4: the ALPN protocol of direct TLS s2s, in wire form. */
static const unsigned char alpn_s2s[] = "\x0bxmpp-server";

struct tls_host {
	char *name;		/* prepared, as in the config */
	char *ace;		/* its A-label form: what SNI carries (RFC 6066 §3) */
	SSL_CTX *ctx;		/* serves the host */
	SSL_CTX *client;	/* outgoing s2s from the host; NULL without s2s */
};

static struct {
	SSL_CTX *def, *def_client;
	struct tls_host *hosts;
	size_t nhosts;
	X509_STORE *s2s_store;	/* NULL: s2s disabled */
} tls;

/* SSL ex_data: the first chain error an s2s handshake met (0: none), and the
 * mark of an s2s server connection. Process-wide, made once. */
static int ex_verify = -1, ex_s2s = -1;

static void ssl_problem(struct config_errors *errs, const char *path, unsigned line,
			const char *what, const char *file)
{
	char buf[256];
	unsigned long e = ERR_get_error();

	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	config_error(errs, path, line, "%s %s: %s", what, file, buf);
}

static int on_sni(SSL *ssl, int *alert, void *arg)
{
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

	if (!name)
		return SSL_TLSEXT_ERR_NOACK;
	for (size_t i = 0; i < tls.nhosts; i++) {
		if (strcasecmp(tls.hosts[i].ace, name) == 0) {
			SSL_set_SSL_CTX(ssl, tls.hosts[i].ctx);
			return SSL_TLSEXT_ERR_OK;
		}
	}
	/* An unknown name still gets the default certificate; the stream header's
	 * 'to' decides host-unknown later, with a proper stream error. */
	return SSL_TLSEXT_ERR_OK;
}

/* XEP-0368: an s2s listener speaks "xmpp-server". Other protocols offered
 * get no answer rather than a failed handshake. */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		   const unsigned char *in, unsigned int inlen, void *arg)
{
	unsigned char *sel;

	(void)arg;
	if (!SSL_get_ex_data(ssl, ex_s2s))
		return SSL_TLSEXT_ERR_NOACK;
	if (SSL_select_next_proto(&sel, outlen, alpn_s2s, sizeof(alpn_s2s) - 1, in, inlen)
	    != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

/*
 * An s2s peer's chain: record the first problem and go on, so that the s2s
 * code can still offer dialback to a peer whose certificate is bad (RFC 6120
 * §13.7.2.2 leaves that to local policy).
 *
 * One problem is forgiven. A certificate an inbound peer presents is checked,
 * by default, for the TLS client purpose; but a server's certificate is a
 * server certificate, and public CAs stopped putting the clientAuth EKU in
 * them (Let's Encrypt, 2026). A certificate fit for serverAuth is what an
 * XMPP server has, in either direction.
 */
static int on_verify(int ok, X509_STORE_CTX *x)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	int err = X509_STORE_CTX_get_error(x);
	int depth = X509_STORE_CTX_get_error_depth(x);
	X509 *cert = X509_STORE_CTX_get_current_cert(x);

	if (ok)
		return 1;
	if (err == X509_V_ERR_INVALID_PURPOSE && cert &&
	    X509_check_purpose(cert, X509_PURPOSE_SSL_SERVER, depth > 0) == 1) {
		X509_STORE_CTX_set_error(x, X509_V_OK);
		return 1;
	}
	if (ssl && err != X509_V_OK && !SSL_get_ex_data(ssl, ex_verify))
		SSL_set_ex_data(ssl, ex_verify, (void *)(intptr_t)err);
	return 1;
}

/* What every context shares: protocol floor, options, ciphers, buffers. */
static SSL_CTX *base_ctx(const struct config *cfg, bool client, unsigned line,
			 const char *what, struct config_errors *errs)
{
	SSL_CTX *ctx = SSL_CTX_new(client ? TLS_client_method() : TLS_server_method());

	if (!ctx) {
		ssl_problem(errs, cfg->path, line, "cannot create a TLS context for", what);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
			    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	if (SSL_CTX_set_cipher_list(ctx, cfg->ciphers ? cfg->ciphers : TLS_DEFAULT_CIPHERS)
	    != 1) {
		ssl_problem(errs, cfg->path, line, "bad cipher list for", what);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (tls.s2s_store)
		SSL_CTX_set1_verify_cert_store(ctx, tls.s2s_store);
	return ctx;
}

static SSL_CTX *make_ctx(const struct config *cfg, const char *cert, const char *key,
			 unsigned line, struct config_errors *errs)
{
	static const unsigned char sid[] = "parley";
	SSL_CTX *ctx = base_ctx(cfg, false, line, cert, errs);

	if (!ctx)
		return NULL;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		ssl_problem(errs, cfg->path, line, "cannot load the certificate", cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		ssl_problem(errs, cfg->path, line, "cannot load the key", key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ssl_problem(errs, cfg->path, line, "the key does not match the certificate",
			    cert);
		goto fail;
	}
	SSL_CTX_set_tlsext_servername_callback(ctx, on_sni);
	SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
	/* Asking for a client certificate (s2s) wants a session id context,
	 * even with no session ever resumed. */
	SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* The client side of a server context: the same certificate, chain and key,
 * shared by reference (no second read of the files). server NULL: a client
 * that presents no certificate. */
static SSL_CTX *make_client_ctx(const struct config *cfg, SSL_CTX *server, unsigned line,
				struct config_errors *errs)
{
	SSL_CTX *ctx = base_ctx(cfg, true, line, "s2s", errs);
	STACK_OF(X509) *chain = NULL;

	if (!ctx || !server)
		return ctx;
	SSL_CTX_get0_chain_certs(server, &chain);
	if (SSL_CTX_use_certificate(ctx, SSL_CTX_get0_certificate(server)) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, SSL_CTX_get0_privatekey(server)) != 1 ||
	    (chain && SSL_CTX_set1_chain(ctx, chain) != 1)) {
		ssl_problem(errs, cfg->path, line, "cannot set up the certificate of", "s2s");
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* <s2s ca-file ca-path>: the anchors of a private federation, and then only
 * those; without them, the system's (what SSL_CTX_set_default_verify_paths
 * would use: the distribution's bundle and hashed directory). */
static int load_s2s_store(const struct config *cfg, struct config_errors *errs)
{
	const struct config_s2s *s = &cfg->s2s;
	size_t before = errs->count;

	if (!s->enabled)
		return 0;
	tls.s2s_store = X509_STORE_new();
	if (!tls.s2s_store) {
		config_error(errs, cfg->path, s->line, "<s2s>: out of memory");
		return -1;
	}
	if (s->ca_file && X509_STORE_load_file(tls.s2s_store, s->ca_file) != 1)
		ssl_problem(errs, cfg->path, s->line, "<s2s ca-file>: cannot load", s->ca_file);
	if (s->ca_path && X509_STORE_load_path(tls.s2s_store, s->ca_path) != 1)
		ssl_problem(errs, cfg->path, s->line, "<s2s ca-path>: cannot use", s->ca_path);
	if (!s->ca_file && !s->ca_path && X509_STORE_set_default_paths(tls.s2s_store) != 1)
		ssl_problem(errs, cfg->path, s->line, "<s2s>: cannot load",
			    "the system's trust store");
	return errs->count > before ? -1 : 0;
}

int tls_init(const struct config *cfg, struct config_errors *errs)
{
	size_t before = errs->count;
	bool s2s = cfg->s2s.enabled;

	if (ex_verify < 0)
		ex_verify = SSL_get_ex_new_index(0, "s2s verify", NULL, NULL, NULL);
	if (ex_s2s < 0)
		ex_s2s = SSL_get_ex_new_index(0, "s2s server", NULL, NULL, NULL);
	if (ex_verify < 0 || ex_s2s < 0)
		return -1;
	if (load_s2s_store(cfg, errs) < 0)
		return -1;
	if (cfg->cert) {
		tls.def = make_ctx(cfg, cfg->cert, cfg->key, 0, errs);
		if (!tls.def)
			return -1;
		if (s2s && !(tls.def_client = make_client_ctx(cfg, tls.def, 0, errs)))
			return -1;
	}
	tls.hosts = calloc(cfg->nhosts ? cfg->nhosts : 1, sizeof(*tls.hosts));
	if (!tls.hosts)
		return -1;
	for (size_t i = 0; i < cfg->nhosts; i++) {
		const struct config_host *h = &cfg->hosts[i];
		struct tls_host *th = &tls.hosts[tls.nhosts];

		if (!h->cert)
			continue;
		th->ctx = make_ctx(cfg, h->cert, h->key, h->line, errs);
		if (!th->ctx)
			continue;
		if (s2s && !(th->client = make_client_ctx(cfg, th->ctx, h->line, errs))) {
			SSL_CTX_free(th->ctx);
			th->ctx = NULL;
			continue;
		}
		th->name = strdup(h->name);
		if (idna_to_ascii_8z(h->name, &th->ace, 0) != IDNA_SUCCESS || !th->ace) {
			free(th->ace);
			th->ace = strdup(h->name);
		}
		tls.nhosts++;	/* counted now: tls_free() frees what there is */
		if (!th->name || !th->ace) {
			config_error(errs, cfg->path, h->line, "out of memory");
			return -1;
		}
		if (!tls.def) {
			SSL_CTX_up_ref(th->ctx);
			tls.def = th->ctx;
			if (th->client) {
				SSL_CTX_up_ref(th->client);
				tls.def_client = th->client;
			}
		}
	}
	/* No certificate at all: outgoing s2s still has TLS, and dialback. */
	if (s2s && !tls.def_client && errs->count == before)
		tls.def_client = make_client_ctx(cfg, NULL, cfg->s2s.line, errs);
	return errs->count > before ? -1 : 0;
}

void tls_free(void)
{
	for (size_t i = 0; i < tls.nhosts; i++) {
		SSL_CTX_free(tls.hosts[i].ctx);
		SSL_CTX_free(tls.hosts[i].client);
		free(tls.hosts[i].name);
		free(tls.hosts[i].ace);
	}
	free(tls.hosts);
	SSL_CTX_free(tls.def);
	SSL_CTX_free(tls.def_client);
	X509_STORE_free(tls.s2s_store);
	memset(&tls, 0, sizeof(tls));
}

bool tls_available(void)
{
	return tls.def != NULL;
}

SSL *tls_new_server(void)
{
	return tls.def ? SSL_new(tls.def) : NULL;
}

SSL *tls_new_server_s2s(void)
{
	SSL *ssl;

	if (!tls.s2s_store || !(ssl = tls_new_server()))
		return NULL;
	/* Asked for, never required: a peer without a certificate may still use
	 * dialback, and the s2s code, not the handshake, decides. */
	SSL_set_verify(ssl, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, on_verify);
	SSL_set_ex_data(ssl, ex_s2s, &tls);
	return ssl;
}

/* RFC 6066 §3: the SNI HostName is the A-label form, and never an IP literal. */
static int set_sni(SSL *ssl, const char *domain)
{
	unsigned char addr[16];
	char *ace = NULL;
	int ok;

	if (inet_pton(AF_INET, domain, addr) == 1)
		return 0;
	if (domain[0] == '[' || inet_pton(AF_INET6, domain, addr) == 1)
		return 0;
	if (idna_to_ascii_8z(domain, &ace, 0) != IDNA_SUCCESS || !ace) {
		free(ace);
		return -1;
	}
	ok = SSL_set_tlsext_host_name(ssl, ace);
	free(ace);
	return ok == 1 ? 0 : -1;
}

SSL *tls_new_client(const char *our_domain, const char *peer_domain, bool direct_tls)
{
	SSL_CTX *ctx = tls.def_client;
	SSL *ssl;

	for (size_t i = 0; our_domain && i < tls.nhosts; i++) {
		if (strcasecmp(tls.hosts[i].name, our_domain) == 0 && tls.hosts[i].client) {
			ctx = tls.hosts[i].client;
			break;
		}
	}
	if (!ctx || !peer_domain || !(ssl = SSL_new(ctx)))
		return NULL;
	if (set_sni(ssl, peer_domain) < 0 ||
	    (direct_tls && SSL_set_alpn_protos(ssl, alpn_s2s, sizeof(alpn_s2s) - 1) != 0)) {
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_verify(ssl, SSL_VERIFY_PEER, on_verify);
	SSL_set_connect_state(ssl);
	return ssl;
}

enum tls_peer tls_peer_check(SSL *ssl, const char *domain, char *why, size_t whylen)
{
	X509 *cert = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
	long err;

	if (why && whylen)
		*why = '\0';
	if (!cert) {
		if (why && whylen)
			snprintf(why, whylen, "no certificate was presented");
		return TLS_PEER_NONE;
	}
	if (!SSL_is_init_finished(ssl)) {
		if (why && whylen)
			snprintf(why, whylen, "the TLS handshake has not finished");
		return TLS_PEER_INVALID;
	}
	/* What on_verify saw first; else OpenSSL's last word (an SSL that
	 * verified without on_verify). */
	err = ex_verify >= 0 ? (long)(intptr_t)SSL_get_ex_data(ssl, ex_verify) : 0;
	if (err == X509_V_OK)
		err = SSL_get_verify_result(ssl);
	if (err != X509_V_OK) {
		if (why && whylen)
			snprintf(why, whylen, "%s", X509_verify_cert_error_string(err));
		return TLS_PEER_INVALID;
	}
	return certid_matches(cert, domain, why, whylen) ? TLS_PEER_VALID : TLS_PEER_INVALID;
}

size_t tls_cb_exporter(SSL *ssl, unsigned char *out, size_t outlen)
{
	static const char label[] = "EXPORTER-Channel-Binding";

	if (!ssl || SSL_version(ssl) < TLS1_3_VERSION || outlen < 32)
		return 0;
	if (SSL_export_keying_material(ssl, out, 32, label, sizeof(label) - 1, NULL, 0, 0)
	    != 1)
		return 0;
	return 32;
}

size_t tls_cb_server_end_point(SSL *ssl, unsigned char *out, size_t outlen)
{
	X509 *cert = ssl ? SSL_get_certificate(ssl) : NULL;
	const EVP_MD *md;
	unsigned int len = 0;
	int nid;

	if (!cert || outlen < EVP_MAX_MD_SIZE)
		return 0;
	/* RFC 5929 §4.1: the certificate's signature hash, MD5 and SHA-1 as SHA-256. */
	if (!OBJ_find_sigid_algs(X509_get_signature_nid(cert), &nid, NULL))
		return 0;
	md = (nid == NID_md5 || nid == NID_sha1 || nid == NID_undef) ? EVP_sha256()
		: EVP_get_digestbynid(nid);
	if (!md || X509_digest(cert, md, out, &len) != 1)
		return 0;
	return len;
}

size_t tls_cb_unique(SSL *ssl, unsigned char *out, size_t outlen)
{
	size_t n;

	if (!ssl || SSL_session_reused(ssl))
		return 0;
	n = SSL_get_peer_finished(ssl, out, outlen);
	return n <= outlen ? n : 0;
}

/*
 * tls.c - OpenSSL contexts for the listeners, one per certificate, chosen by SNI.
 */
#include "tls.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

#define TLS_DEFAULT_CIPHERS \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

struct tls_host {
	char *name;
	SSL_CTX *ctx;
};

static struct {
	SSL_CTX *def;
	struct tls_host *hosts;
	size_t nhosts;
} tls;

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
		if (strcasecmp(tls.hosts[i].name, name) == 0) {
			SSL_set_SSL_CTX(ssl, tls.hosts[i].ctx);
			return SSL_TLSEXT_ERR_OK;
		}
	}
	/* An unknown name still gets the default certificate; the stream header's
	 * 'to' decides host-unknown later, with a proper stream error. */
	return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *make_ctx(const struct config *cfg, const char *cert, const char *key,
			 unsigned line, struct config_errors *errs)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx) {
		ssl_problem(errs, cfg->path, line, "cannot create a TLS context for", cert);
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
		ssl_problem(errs, cfg->path, line, "bad cipher list for", cert);
		goto fail;
	}
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
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

int tls_init(const struct config *cfg, struct config_errors *errs)
{
	size_t before = errs->count;

	if (cfg->cert) {
		tls.def = make_ctx(cfg, cfg->cert, cfg->key, 0, errs);
		if (!tls.def)
			return -1;
	}
	tls.hosts = calloc(cfg->nhosts ? cfg->nhosts : 1, sizeof(*tls.hosts));
	if (!tls.hosts)
		return -1;
	for (size_t i = 0; i < cfg->nhosts; i++) {
		const struct config_host *h = &cfg->hosts[i];
		SSL_CTX *ctx;

		if (!h->cert)
			continue;
		ctx = make_ctx(cfg, h->cert, h->key, h->line, errs);
		if (!ctx)
			continue;
		tls.hosts[tls.nhosts].name = strdup(h->name);
		tls.hosts[tls.nhosts].ctx = ctx;
		tls.nhosts++;
		if (!tls.def) {
			SSL_CTX_up_ref(ctx);
			tls.def = ctx;
		}
	}
	return errs->count > before ? -1 : 0;
}

void tls_free(void)
{
	for (size_t i = 0; i < tls.nhosts; i++) {
		SSL_CTX_free(tls.hosts[i].ctx);
		free(tls.hosts[i].name);
	}
	free(tls.hosts);
	SSL_CTX_free(tls.def);
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

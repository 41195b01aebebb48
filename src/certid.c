/*
 * certid.c - does a certificate name an XMPP server's domain?
 *
 * RFC 6120 §13.7.1.2 profiles RFC 6125 (now RFC 9525) for XMPP servers: the
 * reference identifier is the domain the stream names, and a certificate
 * presents it as a DNS-ID (dNSName), an SRV-ID (otherName SRVName,
 * "_xmpp-server.example.com", RFC 4985) or, as §13.7.1.4 allows, an XmppAddr
 * (otherName id-on-xmppAddr). XEP-0178 uses the same rules for SASL EXTERNAL.
 *
 * The certificate is hostile input: the peer chose every byte, and a trusted
 * CA may still have signed odd names. Every name is bounded (253 bytes in
 * A-label form), a name with a NUL inside is no name (the old "www.bank.com\0
 * .evil.com" trick), only the first CERTID_SAN_MAX entries are looked at, and
 * a wildcard is honoured only as the whole left-most label.
 *
 * There is no CN-ID: RFC 9525 §6.3 removes the fallback to the subject's
 * common name, so a certificate without a subjectAltName names nobody.
 */
#include "certid.h"

#include <idna.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A JID's domainpart may be 1023 bytes of UTF-8 (RFC 7622 §3.2); its A-label
 * form must still fit in CERTID_NAME_MAX. */
#define CERTID_XMPPADDR_MAX 1023

/* The names a certificate presents, for the "why" of a mismatch. */
struct seen {
	char text[512];
	size_t len;
	unsigned shown, hidden;
};

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* ASCII only, whatever the locale: DNS names compare this way (RFC 4343). */
static bool ascii_eq(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen)
		return false;
	for (size_t i = 0; i < alen; i++)
		if (lower(a[i]) != lower(b[i]))
			return false;
	return true;
}

/* A single trailing dot (an absolute name) does not change the name. */
static size_t strip_dot(const char *s, size_t len)
{
	return len > 1 && s[len - 1] == '.' ? len - 1 : len;
}

static void note(struct seen *s, const char *name, size_t len)
{
	size_t need = len + (s->shown ? 2 : 0);

	if (s->len + need >= sizeof(s->text) - 32) {
		s->hidden++;
		return;
	}
	if (s->shown) {
		memcpy(s->text + s->len, ", ", 2);
		s->len += 2;
	}
	/* Only checked names get here, but a log line must never carry the
	 * peer's control bytes. */
	for (size_t i = 0; i < len; i++)
		s->text[s->len++] = name[i] >= ' ' && name[i] < 0x7f ? name[i] : '?';
	s->text[s->len] = '\0';
	s->shown++;
}

/*
 * The bytes of an ASN.1 string if they can be a name: not empty, at most max
 * bytes, no NUL inside, and (ascii) printable ASCII only, as dNSName and
 * SRVName (IA5String, A-labels) must be.
 */
static const char *name_bytes(const ASN1_STRING *str, size_t max, bool ascii, size_t *lenp)
{
	const unsigned char *d = ASN1_STRING_get0_data(str);
	int len = ASN1_STRING_length(str);

	if (!d || len <= 0 || (size_t)len > max)
		return NULL;
	if (memchr(d, '\0', (size_t)len))
		return NULL;
	for (int i = 0; i < len; i++)
		if (d[i] <= ' ' || (ascii && d[i] >= 0x7f))
			return NULL;
	*lenp = (size_t)len;
	return (const char *)d;
}

/*
 * RFC 9525 §6.3: "*" matches exactly one whole left-most label. No partial
 * wildcards ("f*.example.com", "xn--*"), none in other labels, and none over
 * a bare top-level domain ("*.com" names no one server; OpenSSL and the
 * browsers refuse it too).
 */
static bool dns_id_matches(const char *pat, size_t plen, const char *ref, size_t rlen)
{
	const char *dot;

	plen = strip_dot(pat, plen);
	if (plen > 2 && pat[0] == '*' && pat[1] == '.') {
		pat += 2;
		plen -= 2;
		if (!memchr(pat, '.', plen) || memchr(pat, '*', plen))
			return false;
		dot = memchr(ref, '.', rlen);
		if (!dot || dot == ref)
			return false;
		return ascii_eq(pat, plen, dot + 1, rlen - (size_t)(dot + 1 - ref));
	}
	if (memchr(pat, '*', plen))
		return false;
	return ascii_eq(pat, plen, ref, rlen);
}

/* RFC 4985: "_Service.Name"; XMPP servers are "_xmpp-server" (RFC 6120
 * §13.7.1.2.1) and, with direct TLS, "_xmpps-server" (XEP-0368). No
 * wildcards. */
static bool srv_id_matches(const char *v, size_t len, const char *ref, size_t rlen)
{
	static const char *const services[] = { "_xmpp-server", "_xmpps-server" };

	for (size_t i = 0; i < sizeof(services) / sizeof(*services); i++) {
		size_t n = strlen(services[i]);

		if (len > n + 1 && v[n] == '.' && ascii_eq(v, n, services[i], n))
			return ascii_eq(v + n + 1, strip_dot(v + n + 1, len - n - 1), ref, rlen);
	}
	return false;
}

/* An XmppAddr is a JID in UTF-8 (RFC 6120 §13.7.1.4): for a server, a bare
 * domain. It is compared in A-label form, as the others are; idna_to_ascii_8z
 * applies nameprep, which also folds case. */
static bool xmpp_addr_matches(const char *v, size_t len, const char *ref, size_t rlen,
			      struct seen *seen)
{
	char buf[CERTID_XMPPADDR_MAX + 1], *ace = NULL;
	bool ok = false;
	size_t alen;

	memcpy(buf, v, len);
	buf[len] = '\0';
	if (idna_to_ascii_8z(buf, &ace, 0) != IDNA_SUCCESS || !ace) {
		free(ace);
		return false;
	}
	alen = strip_dot(ace, strlen(ace));
	if (alen <= CERTID_NAME_MAX) {
		ok = ascii_eq(ace, alen, ref, rlen);
		note(seen, ace, alen);
	}
	free(ace);
	return ok;
}

static bool entry_matches(const GENERAL_NAME *gn, const char *ref, size_t rlen,
			  struct seen *seen)
{
	const char *v;
	size_t len;
	int nid;

	if (gn->type == GEN_DNS) {
		if (!(v = name_bytes(gn->d.dNSName, CERTID_NAME_MAX + 1, true, &len)))
			return false;
		note(seen, v, len);
		return dns_id_matches(v, len, ref, rlen);
	}
	if (gn->type != GEN_OTHERNAME || !gn->d.otherName->value)
		return false;
	nid = OBJ_obj2nid(gn->d.otherName->type_id);
	if (nid == NID_SRVName) {
		if (gn->d.otherName->value->type != V_ASN1_IA5STRING)
			return false;
		/* "_xmpps-server." and the name */
		v = name_bytes(gn->d.otherName->value->value.ia5string,
			       CERTID_NAME_MAX + 15, true, &len);
		if (!v)
			return false;
		note(seen, v, len);
		return srv_id_matches(v, len, ref, rlen);
	}
	if (nid == NID_XmppAddr) {
		if (gn->d.otherName->value->type != V_ASN1_UTF8STRING)
			return false;
		v = name_bytes(gn->d.otherName->value->value.utf8string, CERTID_XMPPADDR_MAX,
			       false, &len);
		return v && xmpp_addr_matches(v, len, ref, rlen, seen);
	}
	return false;
}

static void say(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (!why || !whylen)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

bool certid_matches(X509 *cert, const char *domain, char *why, size_t whylen)
{
	GENERAL_NAMES *sans;
	struct seen seen = { .len = 0 };
	char *ace = NULL;
	size_t rlen;
	int crit = 0, n;
	bool found = false;

	say(why, whylen, "%s", "");
	if (!cert || !domain || !*domain) {
		say(why, whylen, "no certificate or no domain to compare");
		return false;
	}
	if (idna_to_ascii_8z(domain, &ace, 0) != IDNA_SUCCESS || !ace) {
		free(ace);
		say(why, whylen, "%s has no A-label form", domain);
		return false;
	}
	rlen = strip_dot(ace, strlen(ace));
	if (rlen == 0 || rlen > CERTID_NAME_MAX) {
		say(why, whylen, "%s is too long for a DNS name", domain);
		free(ace);
		return false;
	}
	sans = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
	if (!sans) {
		/* crit -1: none; -2: several (malformed); else undecodable */
		say(why, whylen, crit == -1 ? "the certificate has no subjectAltName (its "
		    "subject's CN is not used, RFC 9525 §6.3)" :
		    "the certificate's subjectAltName cannot be read");
		free(ace);
		return false;
	}
	n = sk_GENERAL_NAME_num(sans);
	for (int i = 0; i < n && i < CERTID_SAN_MAX && !found; i++)
		found = entry_matches(sk_GENERAL_NAME_value(sans, i), ace, rlen, &seen);
	if (!found) {
		const char *alabel = strcmp(ace, domain) != 0 ? ace : NULL;

		if (!seen.shown)
			say(why, whylen, "the certificate names no DNS, SRV or XMPP domain, "
			    "so not %s", domain);
		else if (seen.hidden)
			say(why, whylen, "the certificate names %s and %u more, not %s%s%s%s",
			    seen.text, seen.hidden, domain, alabel ? " (" : "",
			    alabel ? alabel : "", alabel ? ")" : "");
		else
			say(why, whylen, "the certificate names %s, not %s%s%s%s", seen.text,
			    domain, alabel ? " (" : "", alabel ? alabel : "", alabel ? ")" : "");
	}
	GENERAL_NAMES_free(sans);
	free(ace);
	return found;
}

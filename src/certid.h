/*
 * certid.h - does a certificate name an XMPP server's domain? (RFC 6120 §13.7.1.2,
 * RFC 9525, XEP-0178)
 *
 * Pure: no I/O, no trust decisions. Whether the chain is trusted is tls.c's
 * business (tls_peer_check); this only compares the names in the certificate's
 * subjectAltName with the domain the stream claims.
 */
#ifndef PARLEY_CERTID_H
#define PARLEY_CERTID_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/x509.h>

/* The longest DNS name (RFC 1035 §2.3.4, without the trailing dot). */
#define CERTID_NAME_MAX 253
/* subjectAltName entries looked at; the rest of a longer list is ignored. */
#define CERTID_SAN_MAX 256

/*
 * Whether cert identifies the XMPP server domain (prepared UTF-8, as a JID's
 * domainpart): a subjectAltName dNSName (DNS-ID, "*." only as the whole
 * left-most label, matching exactly one label), an otherName SRVName (SRV-ID,
 * "_xmpp-server.DOMAIN" or "_xmpps-server.DOMAIN") or an otherName XmppAddr
 * equal to the domain. Names compare case-insensitively in A-label form. The
 * subject's CN is never used (RFC 9525 §6.3). On false, why (may be NULL)
 * gets a sentence for the log or a stream error's text, such as "the
 * certificate names example.org, *.example.net, not example.com".
 */
bool certid_matches(X509 *cert, const char *domain, char *why, size_t whylen);

#endif

/*
 * jid.c - XMPP addresses (RFC 7622), prepared with libidn's stringprep profiles.
 *
 * RFC 7622 defines the parts with PRECIS; Debian's libidn offers the RFC 6122
 * stringprep profiles (Nodeprep, Nameprep, Resourceprep), which agree with
 * PRECIS for the addresses people use and differ in corner cases (width
 * mapping, some symbols). Each part is checked for UTF-8 first, prepared, then
 * bounded to 1023 bytes.
 */
#include "jid.h"

#include <arpa/inet.h>
#include <idna.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stringprep.h>

#define JID_INPUT_MAX (3 * JID_PART_MAX + 2)

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		unsigned long cp;

		if (c < 0x80) {
			if (c == 0)
				return false;
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		for (size_t k = 1; k <= n; k++) {
			if (i + k >= len || (s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

/*
 * The profiles on pure ASCII, without libidn (which is most of the CPU of
 * routing a message otherwise): Nodeprep and Nameprep fold A-Z; Nodeprep
 * prohibits ASCII space, controls and "&'/:<>@; Resourceprep only controls;
 * Nameprep prohibits no ASCII (labels_ok() checks host names after). Returns
 * 1 when done (out written), 0 when the input is not all ASCII, -1 prohibited.
 * tests/unit/test_jid.c checks every ASCII character against libidn.
 */
static int ascii_prep(const char *in, size_t len, char *out, char kind)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)in[i] >= 0x80)
			return 0;
	for (size_t i = 0; i <= len; i++) {
		char c = in[i];

		if (i < len && ((unsigned char)c < 0x20 || c == 0x7f) && kind != 'd')
			return -1;
		if (kind == 'l' && (c == ' ' || c == '"' || c == '&' || c == '\'' || c == '/' ||
				    c == ':' || c == '<' || c == '>' || c == '@'))
			return -1;
		out[i] = kind != 'r' && c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
	}
	return 1;
}

static int prep(const char *in, char *out, size_t outlen, const Stringprep_profile *profile,
		const char *part, const char **errp)
{
	static const char *const msgs[][2] = {
		{ "localpart", "the localpart is not valid (forbidden character or too long)" },
		{ "domainpart", "the domainpart is not a valid domain name" },
		{ "resourcepart", "the resourcepart is not valid (forbidden character or too "
		  "long)" },
	};
	const char *bad = part[0] == 'l' ? msgs[0][1] : part[0] == 'd' ? msgs[1][1] : msgs[2][1];
	size_t len = strlen(in);

	if (len == 0) {
		*errp = part[0] == 'l' ? "the localpart is empty" : part[0] == 'd'
			? "the domainpart is empty" : "the resourcepart is empty";
		return -1;
	}
	if (len > JID_PART_MAX * 4 || !utf8_valid((const unsigned char *)in, len)) {
		*errp = len > JID_PART_MAX * 4 ? bad : "not valid UTF-8";
		return -1;
	}
	if (outlen < len + 1) {
		*errp = bad;
		return -1;
	}
	switch (ascii_prep(in, len, out, part[0])) {
	case 1:
		break;	/* prepared without libidn; the length is checked below */
	case -1:
		*errp = bad;
		return -1;
	default:
		memcpy(out, in, len + 1);
		/* stringprep works in place, in a buffer of the given size. */
		if (stringprep(out, outlen, 0, profile) != STRINGPREP_OK || !*out) {
			*errp = bad;
			return -1;
		}
		break;
	}
	if (strlen(out) > JID_PART_MAX) {
		*errp = part[0] == 'l' ? "the localpart is longer than 1023 bytes"
			: part[0] == 'd' ? "the domainpart is longer than 1023 bytes"
			: "the resourcepart is longer than 1023 bytes";
		return -1;
	}
	return 0;
}

int jid_nodeprep(const char *in, char *out, size_t outlen, const char **errp)
{
	const char *e;

	if (!errp)
		errp = &e;
	return prep(in, out, outlen, stringprep_xmpp_nodeprep, "localpart", errp);
}

int jid_resourceprep(const char *in, char *out, size_t outlen, const char **errp)
{
	const char *e;

	if (!errp)
		errp = &e;
	return prep(in, out, outlen, stringprep_xmpp_resourceprep, "resourcepart", errp);
}

/* STD3 host name rules for the ASCII characters of each label. */
static bool labels_ok(const char *d)
{
	const char *label = d;

	for (const char *p = d;; p++) {
		if (*p == '.' || *p == '\0') {
			size_t n = (size_t)(p - label);

			if (n == 0 || n > 63 || label[0] == '-' || p[-1] == '-')
				return false;
			if (*p == '\0')
				return true;
			label = p + 1;
			continue;
		}
		unsigned char c = (unsigned char)*p;

		if (c < 0x80 && !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
				  (c >= 'A' && c <= 'Z')))
			return false;
	}
}

/* ASCII with no label that starts with "xn--" (any case). */
static bool ascii_plain_domain(const char *d)
{
	for (const char *p = d; *p; p++) {
		if ((unsigned char)*p >= 0x80)
			return false;
		if ((p == d || p[-1] == '.') && strncasecmp(p, "xn--", 4) == 0)
			return false;
	}
	return true;
}

/* RFC 5891 §5.4: an A-label is valid only if its Unicode form encodes back
 * to it. "xn--r6ja" decodes to two ideographic full stops, which are label
 * separators: taken as it is, the domain would change each time it is read. */
static bool idna_round_trips(const char *in, const char *uni)
{
	char *a = NULL, *b = NULL;
	bool ok = idna_to_ascii_8z(in, &a, 0) == IDNA_SUCCESS &&
		  idna_to_ascii_8z(uni, &b, 0) == IDNA_SUCCESS && a && b &&
		  strcasecmp(a, b) == 0;

	free(a);
	free(b);
	return ok;
}

int jid_nameprep(const char *in, char *out, size_t outlen, const char **errp)
{
	const char *e;
	size_t len = strlen(in);
	unsigned char addr[16];
	char tmp[JID_PART_MAX * 4 + 2], *uni = NULL;

	if (!errp)
		errp = &e;
	if (len == 0) {
		*errp = "the domainpart is empty";
		return -1;
	}
	if (len >= sizeof(tmp)) {
		*errp = "the domainpart is longer than 1023 bytes";
		return -1;
	}
	/* IP literals stay as given (RFC 7622 §3.2). */
	if (in[0] == '[' && in[len - 1] == ']') {
		memcpy(tmp, in + 1, len - 2);
		tmp[len - 2] = '\0';
		if (inet_pton(AF_INET6, tmp, addr) != 1 || len + 1 > outlen) {
			*errp = "the domainpart is not a valid IPv6 literal";
			return -1;
		}
		for (size_t i = 0; i <= len; i++)
			out[i] = (in[i] >= 'A' && in[i] <= 'F') ? (char)(in[i] + 32) : in[i];
		return 0;
	}
	if (inet_pton(AF_INET, in, addr) == 1) {
		if (len + 1 > outlen) {
			*errp = "the domainpart is too long";
			return -1;
		}
		memcpy(out, in, len + 1);
		return 0;
	}
	memcpy(tmp, in, len + 1);
	if (tmp[len - 1] == '.')
		tmp[--len] = '\0';	/* one trailing dot is allowed and dropped */
	if (len == 0 || !utf8_valid((unsigned char *)tmp, len)) {
		*errp = len ? "not valid UTF-8" : "the domainpart is empty";
		return -1;
	}
	/* A-labels (xn--) become Unicode, so each domain has one form. An ASCII
	 * name without one is its own Unicode form: no need to ask libidn. */
	if (!ascii_plain_domain(tmp)) {
		if (idna_to_unicode_8z8z(tmp, &uni, 0) != IDNA_SUCCESS || !uni ||
		    strlen(uni) >= sizeof(tmp) || !idna_round_trips(tmp, uni)) {
			free(uni);
			*errp = "the domainpart is not a valid domain name";
			return -1;
		}
		memcpy(tmp, uni, strlen(uni) + 1);
		free(uni);
	}
	if (prep(tmp, out, outlen, stringprep_nameprep, "domainpart", errp) < 0)
		return -1;
	if (!labels_ok(out)) {
		*errp = "the domainpart is not a valid domain name";
		return -1;
	}
	return 0;
}

/* One allocation: the struct, then "full\0local\0domain\0resource\0". */
static struct jid *assemble(const char *local, const char *domain, const char *resource)
{
	size_t ll = local ? strlen(local) : 0, dl = strlen(domain);
	size_t rl = resource ? strlen(resource) : 0;
	size_t full = ll + (local ? 1 : 0) + dl + (resource ? 1 + rl : 0);
	struct jid *j = malloc(sizeof(*j) + full + 1 + ll + 1 + dl + 1 + rl + 1);
	char *p;

	if (!j)
		return NULL;
	p = (char *)(j + 1);
	j->full = p;
	if (local) {
		memcpy(p, local, ll);
		p += ll;
		*p++ = '@';
	}
	memcpy(p, domain, dl);
	p += dl;
	j->bare_len = (size_t)(p - j->full);
	if (resource) {
		*p++ = '/';
		memcpy(p, resource, rl);
		p += rl;
	}
	*p++ = '\0';
	j->local = NULL;
	if (local) {
		memcpy(p, local, ll + 1);
		j->local = p;
		p += ll + 1;
	}
	memcpy(p, domain, dl + 1);
	j->domain = p;
	p += dl + 1;
	j->resource = NULL;
	if (resource) {
		memcpy(p, resource, rl + 1);
		j->resource = p;
	}
	return j;
}

struct jid *jid_make(const char *local, const char *domain, const char *resource,
		     const char **errp)
{
	char l[JID_PART_MAX + 1], d[JID_PART_MAX + 1], r[JID_PART_MAX + 1];
	const char *e;

	if (!errp)
		errp = &e;
	if (!domain) {
		*errp = "the domainpart is empty";
		return NULL;
	}
	if (local && jid_nodeprep(local, l, sizeof(l), errp) < 0)
		return NULL;
	if (jid_nameprep(domain, d, sizeof(d), errp) < 0)
		return NULL;
	if (resource && jid_resourceprep(resource, r, sizeof(r), errp) < 0)
		return NULL;
	return assemble(local ? l : NULL, d, resource ? r : NULL);
}

struct jid *jid_new(const char *s, const char **errp)
{
	char buf[JID_INPUT_MAX + 1];
	char *slash, *at, *local = NULL, *domain, *resource = NULL;
	size_t len;
	const char *e;

	if (!errp)
		errp = &e;
	if (!s || (len = strlen(s)) == 0) {
		*errp = "the address is empty";
		return NULL;
	}
	if (len > JID_INPUT_MAX) {
		*errp = "the address is longer than 3071 bytes";
		return NULL;
	}
	memcpy(buf, s, len + 1);
	/* RFC 7622 §3.1: the resource is everything after the first '/', and the
	 * localpart everything before the first '@' that precedes it. */
	slash = strchr(buf, '/');
	if (slash) {
		*slash = '\0';
		resource = slash + 1;
		if (!*resource) {
			*errp = "the resourcepart is empty";
			return NULL;
		}
	}
	at = strchr(buf, '@');
	if (at) {
		*at = '\0';
		local = buf;
		domain = at + 1;
		if (!*local) {
			*errp = "the localpart is empty";
			return NULL;
		}
	} else {
		domain = buf;
	}
	return jid_make(local, domain, resource, errp);
}

struct jid *jid_copy(const struct jid *j)
{
	return assemble(j->local, j->domain, j->resource);
}

struct jid *jid_bare(const struct jid *j)
{
	return assemble(j->local, j->domain, NULL);
}

struct jid *jid_with_resource(const struct jid *j, const char *resource, const char **errp)
{
	char r[JID_PART_MAX + 1];

	if (jid_resourceprep(resource, r, sizeof(r), errp) < 0)
		return NULL;
	return assemble(j->local, j->domain, r);
}

void jid_free(struct jid *j)
{
	free(j);
}

char *jid_bare_str(const struct jid *j)
{
	return strndup(j->full, j->bare_len);
}

bool jid_eq(const struct jid *a, const struct jid *b)
{
	return strcmp(a->full, b->full) == 0;
}

bool jid_bare_eq(const struct jid *a, const struct jid *b)
{
	return a->bare_len == b->bare_len && memcmp(a->full, b->full, a->bare_len) == 0;
}

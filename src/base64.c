/*
 * base64.c - RFC 4648 base64, with a decoder that takes only the canonical
 * form (see base64.h), and the XMPP SASL payload convention on top of it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"

static const char base64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The 6-bit value of an alphabet character, or -1 (this includes '='). */
static int base64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

size_t base64_encoded_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

size_t base64_decoded_max(size_t n)
{
	return n / 4 * 3;
}

size_t base64_encode(const void *in, size_t n, char *out)
{
	const unsigned char *p = in;
	size_t i, o = 0;
	uint32_t v;

	for (i = 0; i + 3 <= n; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = base64_alphabet[v >> 18];
		out[o++] = base64_alphabet[(v >> 12) & 63];
		out[o++] = base64_alphabet[(v >> 6) & 63];
		out[o++] = base64_alphabet[v & 63];
	}
	if (n - i == 1) {
		v = (uint32_t)p[i] << 16;
		out[o++] = base64_alphabet[v >> 18];
		out[o++] = base64_alphabet[(v >> 12) & 63];
		out[o++] = '=';
		out[o++] = '=';
	} else if (n - i == 2) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		out[o++] = base64_alphabet[v >> 18];
		out[o++] = base64_alphabet[(v >> 12) & 63];
		out[o++] = base64_alphabet[(v >> 6) & 63];
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

char *base64_encode_alloc(const void *in, size_t n, size_t *len)
{
	char *out;
	size_t l;

	if (n >= SIZE_MAX / 2)
		return NULL;
	out = malloc(base64_encoded_len(n) + 1);
	if (!out)
		return NULL;
	l = base64_encode(in, n, out);
	if (len)
		*len = l;
	return out;
}

int base64_decode(const char *in, size_t n, unsigned char *out, size_t outmax,
		  size_t *outlen)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t pad = 0, len, i, o = 0;
	int a, b, c, d;

	*outlen = 0;
	if (n % 4 != 0)
		return -1;
	if (n == 0)
		return 0;
	if (p[n - 1] == '=')
		pad = p[n - 2] == '=' ? 2 : 1;
	len = n / 4 * 3 - pad;
	if (len > outmax)
		return -1;
	/* Whole quads first; the last one may carry padding. A '=' anywhere else
	 * fails base64_value(). */
	for (i = 0; i + 4 < n; i += 4) {
		a = base64_value(p[i]);
		b = base64_value(p[i + 1]);
		c = base64_value(p[i + 2]);
		d = base64_value(p[i + 3]);
		if ((a | b | c | d) < 0)
			return -1;
		out[o++] = (unsigned char)(a << 2 | b >> 4);
		out[o++] = (unsigned char)((b & 15) << 4 | c >> 2);
		out[o++] = (unsigned char)((c & 3) << 6 | d);
	}
	a = base64_value(p[i]);
	b = base64_value(p[i + 1]);
	c = pad == 2 ? 0 : base64_value(p[i + 2]);
	d = pad >= 1 ? 0 : base64_value(p[i + 3]);
	if ((a | b | c | d) < 0)
		return -1;
	/* Canonical form only: bits the encoding does not use must be zero, or
	 * several strings would decode to the same bytes. */
	if ((pad == 2 && (b & 15) != 0) || (pad == 1 && (c & 3) != 0))
		return -1;
	out[o++] = (unsigned char)(a << 2 | b >> 4);
	if (pad < 2)
		out[o++] = (unsigned char)((b & 15) << 4 | c >> 2);
	if (pad < 1)
		out[o++] = (unsigned char)((c & 3) << 6 | d);
	*outlen = o;
	return 0;
}

unsigned char *base64_decode_alloc(const char *in, size_t n, size_t *outlen)
{
	size_t max = base64_decoded_max(n);
	unsigned char *out = malloc(max + 1);

	*outlen = 0;
	if (!out)
		return NULL;
	if (base64_decode(in, n, out, max, outlen) < 0) {
		free(out);
		*outlen = 0;
		return NULL;
	}
	out[*outlen] = '\0';
	return out;
}

enum base64_sasl_result base64_sasl_decode(const char *text, size_t len, size_t max,
					   unsigned char **out, size_t *outlen)
{
	unsigned char *buf;

	*out = NULL;
	*outlen = 0;
	if (len == 0)
		return BASE64_SASL_ABSENT;
	if (len == 1 && text[0] == '=') {
		buf = malloc(1);
		if (!buf)
			return BASE64_SASL_NOMEM;
		buf[0] = '\0';
		*out = buf;
		return BASE64_SASL_OK;
	}
	/* Refuse oversized input by its length alone, before allocating for it. */
	if (len % 4 != 0 || base64_decoded_max(len) - 2 > max)
		return BASE64_SASL_BAD;
	buf = malloc(base64_decoded_max(len) + 1);
	if (!buf)
		return BASE64_SASL_NOMEM;
	if (base64_decode(text, len, buf, max, outlen) < 0) {
		free(buf);
		*outlen = 0;
		return BASE64_SASL_BAD;
	}
	buf[*outlen] = '\0';
	*out = buf;
	return BASE64_SASL_OK;
}

char *base64_sasl_encode(const void *data, size_t len)
{
	if (len == 0)
		return strdup("=");
	return base64_encode_alloc(data, len, NULL);
}

/*
 * base64.h - RFC 4648 base64 (the standard alphabet, with padding), strict.
 *
 * The decoder accepts only the canonical encoding: a length that is a multiple
 * of four, alphabet characters, one or two '=' only at the very end, and zero
 * bits in whatever the last character does not use. No whitespace, no line
 * breaks. So every byte string has exactly one accepted encoding, which lets
 * callers compare encodings as strings.
 *
 * Nothing here keeps state: every function is safe from any thread.
 */
#ifndef PARLEY_BASE64_H
#define PARLEY_BASE64_H

#include <stddef.h>

/* Characters in the encoding of n bytes, without the NUL (n < SIZE_MAX / 2).
 * The macro is for array sizes; it evaluates n once. */
#define BASE64_ENCODED_LEN(n) (((n) + 2) / 3 * 4)
size_t base64_encoded_len(size_t n);
/* Most bytes that n characters of base64 can decode to. */
size_t base64_decoded_max(size_t n);

/* Writes the encoding of in[0..n) and a NUL to out, which must hold
 * base64_encoded_len(n) + 1 bytes. Returns the length without the NUL. */
size_t base64_encode(const void *in, size_t n, char *out);
/* The same into a new NUL-terminated string (free() it); NULL without memory.
 * len, if not NULL, gets the length. */
char *base64_encode_alloc(const void *in, size_t n, size_t *len);

/* Decodes in[0..n) into out (room for outmax bytes; never written past).
 * Returns 0 and the decoded length in *outlen, or -1 when the input is not
 * canonical base64 or decodes to more than outmax bytes (out may then hold
 * garbage). in is not read past n and needs no NUL. */
int base64_decode(const char *in, size_t n, unsigned char *out, size_t outmax,
		  size_t *outlen);
/* The same into a new buffer (free() it) with a NUL after the *outlen bytes,
 * so text payloads can be used as strings. NULL on bad input or no memory. */
unsigned char *base64_decode_alloc(const char *in, size_t n, size_t *outlen);

/*
 * XMPP SASL payloads (RFC 6120 §6.4.2): the character data of <auth/>,
 * <response/>, <challenge/> and <success/> is base64; no character data means
 * no payload, and a lone "=" a payload of zero bytes.
 */
enum base64_sasl_result {
	BASE64_SASL_OK = 0,		/* *out holds the payload (maybe zero bytes) */
	BASE64_SASL_ABSENT = 1,		/* no character data: *out is NULL */
	BASE64_SASL_BAD = -1,		/* not base64, or longer than allowed */
	BASE64_SASL_NOMEM = -2,
};

/* Decodes text[0..len) (not read past len; text may be NULL when len is 0).
 * max bounds the decoded payload: longer is BASE64_SASL_BAD, found before any
 * allocation. On BASE64_SASL_OK *out is a new buffer (free() it), with a NUL
 * after the *outlen bytes; on anything else *out is NULL and *outlen 0. */
enum base64_sasl_result base64_sasl_decode(const char *text, size_t len, size_t max,
					   unsigned char **out, size_t *outlen);
/* Encodes a payload for the wire: "=" for zero bytes, else base64. A new
 * string (free() it), NULL without memory. A caller with no payload at all
 * sends an empty element instead and does not call this. */
char *base64_sasl_encode(const void *data, size_t len);

#endif

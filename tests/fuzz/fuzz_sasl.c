/*
 * fuzz_sasl.c - libFuzzer target: arbitrary client messages through each SASL
 * mechanism, plus the stored-credential and XMPP base64 decoders.
 *
 * Input layout: byte 0 picks the target, byte 1 the options, bytes 2-3 the
 * length of the first message (little-endian), then the first message and
 * the rest as the second. The server nonce is fixed so the fuzzer can learn
 * it and reach the proof check; credentials use one PBKDF2 iteration so a
 * run costs microseconds, not milliseconds.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "sasl.h"

static struct scram_cred fuzz_creds[SCRAM_HASH_COUNT];

static void fuzz_init(void)
{
	static bool done;
	static const unsigned char salt[] = "fuzzsalt";
	int h;

	if (done)
		return;
	for (h = 0; h < SCRAM_HASH_COUNT; h++)
		if (scram_cred_derive_salt((enum scram_hash)h, "pencil", salt, 8, 1,
					   &fuzz_creds[h]) < 0)
			abort();
	done = true;
}

/* A NUL-terminated copy of d[0..n), for the string-taking entry points. */
static char *fuzz_str(const uint8_t *d, size_t n)
{
	char *s = malloc(n + 1);

	if (!s)
		abort();
	memcpy(s, d, n);
	s[n] = '\0';
	return s;
}

/* Checks what any outcome promises the caller. */
static void fuzz_check(struct sasl_session *s, enum sasl_status st)
{
	size_t len;
	const char *out = sasl_out(s, &len);
	char *b;

	if (strlen(out) != len)
		abort();
	if (st == SASL_FAILURE && (!sasl_condition(s) || !sasl_text(s) || len != 0))
		abort();
	if (st == SASL_NEED_CREDENTIALS && !sasl_username(s))
		abort();
	if (sasl_username(s) && (strlen(sasl_username(s)) == 0 ||
				 strlen(sasl_username(s)) > SASL_MAX_USERNAME))
		abort();
	b = sasl_out_base64(s);
	free(b);
}

static void fuzz_session(enum sasl_mech mech, uint8_t flags, const uint8_t *m1, size_t n1,
			 const uint8_t *m2, size_t n2)
{
	static const unsigned char secret[32] = "fuzzing secret, thirty-two byte";
	static const unsigned char cbdata[32] = "channel binding data, 32 bytes.";
	const struct sasl_channel_binding cb[2] = {
		{ "tls-exporter", cbdata, 32 },
		{ "tls-server-end-point", cbdata, 16 },
	};
	const struct sasl_options o = {
		.tls = !(flags & 1), .plain_allowed = !(flags & 2), .cb = cb,
		.n_cb = (flags & 4) ? 0 : 2, .secret = secret, .secret_len = 32,
		.fake_iterations = 1,
	};
	bool unknown = flags & 8, no_ir = flags & 16, wire = flags & 32;
	struct sasl_session *s = sasl_new(mech, &o);
	enum sasl_status st;
	char *t;

	if (!s)
		abort();
	if (sasl_set_nonce_for_test(s, "SNONCE") < 0)
		abort();
	if (wire) {
		t = no_ir ? NULL : fuzz_str(m1, n1);
		st = sasl_start_base64(s, t);
		free(t);
	} else {
		st = sasl_start(s, no_ir ? NULL : m1, n1);
	}
	fuzz_check(s, st);
	if (st == SASL_CHALLENGE && no_ir) {
		if (wire) {
			t = fuzz_str(m1, n1);
			st = sasl_step_base64(s, t);
			free(t);
		} else {
			st = sasl_step(s, m1, n1);
		}
		fuzz_check(s, st);
	}
	if (st == SASL_NEED_CREDENTIALS) {
		st = sasl_set_credentials(s, unknown ? NULL : &fuzz_creds[sasl_cred_hash(s)]);
		fuzz_check(s, st);
	}
	if (st == SASL_NEEDS_WORK) {
		sasl_work(s);
		st = sasl_finish(s);
		fuzz_check(s, st);
	} else if (st == SASL_CHALLENGE) {
		if (wire) {
			t = fuzz_str(m2, n2);
			st = sasl_step_base64(s, t);
			free(t);
		} else {
			st = sasl_step(s, m2, n2);
		}
		fuzz_check(s, st);
	}
	/* Whatever state it is in, more input must fail cleanly. */
	if (st == SASL_SUCCESS || st == SASL_FAILURE) {
		st = sasl_step(s, m2, n2);
		if (st != SASL_FAILURE)
			abort();
		fuzz_check(s, st);
	}
	sasl_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *m1, *m2;
	size_t n1, n2, len;
	struct scram_cred c;
	unsigned char *out;
	char *t, *enc;

	fuzz_init();
	if (size < 4)
		return 0;
	n1 = (size_t)data[2] | (size_t)data[3] << 8;
	m1 = data + 4;
	if (n1 > size - 4)
		n1 = size - 4;
	m2 = m1 + n1;
	n2 = size - 4 - n1;

	switch (data[0] % (SASL_MECH_COUNT + 2)) {
	case SASL_MECH_COUNT:
		/* Stored credentials: decode, and what decodes must re-encode the same. */
		t = fuzz_str(m1, n1);
		if (scram_cred_decode((enum scram_hash)(data[1] & 1), t, &c) == 0) {
			enc = scram_cred_encode(&c);
			if (!enc || strcmp(enc, t) != 0)
				abort();
			free(enc);
		}
		free(t);
		break;
	case SASL_MECH_COUNT + 1:
		/* The wire decoder, and canonical round trips. */
		if (base64_sasl_decode((const char *)m1, n1, data[1] * 8u, &out, &len) ==
		    BASE64_SASL_OK) {
			enc = base64_sasl_encode(out, len);
			if (!enc || strlen(enc) != n1 || memcmp(enc, m1, n1) != 0)
				abort();
			free(enc);
			free(out);
		}
		break;
	default:
		fuzz_session((enum sasl_mech)(data[0] % (SASL_MECH_COUNT + 2)), data[1], m1, n1,
			     m2, n2);
		break;
	}
	return 0;
}

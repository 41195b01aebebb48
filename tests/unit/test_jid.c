/*
 * test_jid.c - JID parsing and preparation: the RFC 7622 §3.5/§3.6 examples,
 * limits, IDNA and IP literals, and the helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <stdbool.h>
#include <stdio.h>
#include <stringprep.h>

#include "jid.h"

static void expect_jid(const char *in, const char *full)
{
	const char *err = NULL;
	struct jid *j = jid_new(in, &err);

	if (!j)
		fail_msg("'%s' refused: %s", in, err);
	assert_string_equal(j->full, full);
	jid_free(j);
}

static void expect_bad(const char *in)
{
	const char *err = NULL;
	struct jid *j = jid_new(in, &err);

	if (j)
		fail_msg("'%s' accepted as '%s'", in, j->full);
	assert_non_null(err);
}

static void test_rfc_valid(void **state)
{
	/* RFC 7622 §3.5 */
	expect_jid("juliet@example.com", "juliet@example.com");
	expect_jid("juliet@example.com/foo", "juliet@example.com/foo");
	expect_jid("juliet@example.com/foo bar", "juliet@example.com/foo bar");
	expect_jid("juliet@example.com/foo@bar", "juliet@example.com/foo@bar");
	expect_jid("foo\\20bar@example.com", "foo\\20bar@example.com");
	expect_jid("fussball@example.com", "fussball@example.com");
	/* RFC 7622 (PRECIS) keeps ß; the RFC 6122 Nodeprep profile, which is what
	 * Debian's libidn provides, case-folds it to "ss". Same address either way
	 * for clients that send what the server returned at bind. */
	expect_jid("fu\xc3\x9f" "ball@example.com", "fussball@example.com");
	expect_jid("\xcf\x80@example.com", "\xcf\x80@example.com");
	expect_jid("\xcf\x80@example.com/\xce\xa3", "\xcf\x80@example.com/\xce\xa3");
	expect_jid("\xcf\x80@example.com/\xcf\x83", "\xcf\x80@example.com/\xcf\x83");
	expect_jid("\xcf\x80@example.com/\xcf\x82", "\xcf\x80@example.com/\xcf\x82");
	expect_jid("king@example.com/\xe2\x99\x9a", "king@example.com/\xe2\x99\x9a");
	expect_jid("example.com", "example.com");
	expect_jid("example.com/foobar", "example.com/foobar");
	expect_jid("a.example.com/b@example.net", "a.example.com/b@example.net");
}

static void test_rfc_invalid(void **state)
{
	/* RFC 7622 §3.6 */
	expect_bad("\"juliet\"@example.com");
	expect_bad("foo bar@example.com");
	expect_bad("@example.com/");
	expect_bad("juliet@");
	expect_bad("/foo");
	expect_bad("@example.com");
	expect_bad("juliet@example.com/");
	expect_bad("");
	expect_bad("a<b@example.com");
	expect_bad("juliet@exa mple.com");
	expect_bad("juliet@-example.com");
	expect_bad("juliet@example..com");
	expect_bad("\xff@example.com");			/* not UTF-8 */
	expect_bad("\xc0\xaf@example.com");		/* overlong */
	expect_bad("\xed\xa0\x80@example.com");		/* surrogate */
	/* An A-label that does not round-trip (RFC 5891 §5.4): it decodes to
	 * two ideographic full stops, label separators (found by fuzz_jid). */
	expect_bad("juliet@xn--r6ja");
}

static void test_case_and_forms(void **state)
{
	expect_jid("JULIET@EXAMPLE.COM/Balcony", "juliet@example.com/Balcony");
	expect_jid("juliet@example.com.", "juliet@example.com");
	expect_jid("juliet@xn--bcher-kva.example", "juliet@b\xc3\xbc" "cher.example");
	expect_jid("juliet@B\xc3\x9c" "CHER.example", "juliet@b\xc3\xbc" "cher.example");
	expect_jid("juliet@127.0.0.1", "juliet@127.0.0.1");
	expect_jid("juliet@[::1]/r", "juliet@[::1]/r");
	expect_jid("juliet@[2001:DB8::1]", "juliet@[2001:db8::1]");
	expect_bad("juliet@[not-an-ip]");
}

static void test_lengths(void **state)
{
	char buf[JID_PART_MAX + 64];

	memset(buf, 'a', JID_PART_MAX);
	strcpy(buf + JID_PART_MAX, "@example.com");
	expect_jid(buf, buf);
	memset(buf, 'a', JID_PART_MAX + 1);
	strcpy(buf + JID_PART_MAX + 1, "@example.com");
	expect_bad(buf);

	strcpy(buf, "a@example.com/");
	memset(buf + 14, 'r', JID_PART_MAX);
	buf[14 + JID_PART_MAX] = '\0';
	expect_jid(buf, buf);
	memset(buf + 14, 'r', JID_PART_MAX + 1);
	buf[15 + JID_PART_MAX] = '\0';
	expect_bad(buf);
}

static void test_helpers(void **state)
{
	struct jid *j = jid_new("Romeo@Example.net/Orchard", NULL), *b, *c, *r;
	char *s;

	assert_non_null(j);
	assert_string_equal(j->local, "romeo");
	assert_string_equal(j->domain, "example.net");
	assert_string_equal(j->resource, "Orchard");
	assert_int_equal(j->bare_len, strlen("romeo@example.net"));
	b = jid_bare(j);
	assert_string_equal(b->full, "romeo@example.net");
	assert_null(b->resource);
	assert_true(jid_bare_eq(j, b));
	assert_false(jid_eq(j, b));
	c = jid_copy(j);
	assert_true(jid_eq(j, c));
	r = jid_with_resource(b, "Hall", NULL);
	assert_string_equal(r->full, "romeo@example.net/Hall");
	s = jid_bare_str(r);
	assert_string_equal(s, "romeo@example.net");
	free(s);
	jid_free(r);
	r = jid_make("ROMEO", "example.net", NULL, NULL);
	assert_true(jid_eq(r, b));
	jid_free(r);
	assert_null(jid_with_resource(b, "", NULL));
	jid_free(c);
	jid_free(b);
	jid_free(j);
}

/* The ASCII fast path of the profiles gives what libidn gives, for every ASCII
 * character, alone and between others, in both cases. */
static void test_ascii_fast_path(void **state)
{
	const Stringprep_profile *profiles[] = { stringprep_xmpp_nodeprep,
						 stringprep_xmpp_resourceprep, stringprep_nameprep };

	(void)state;
	for (int c = 1; c < 0x80; c++) {
		char in[8], ref[64], out[64];
		int k = snprintf(in, sizeof(in), "Ab%cZ", c);

		assert_int_equal(k, 4);
		for (int pi = 0; pi < 3; pi++) {
			const char *err = NULL;
			bool ref_ok, ok;

			snprintf(ref, sizeof(ref), "%s", in);
			ref_ok = stringprep(ref, sizeof(ref), 0, profiles[pi]) == STRINGPREP_OK;
			if (pi == 0)
				ok = jid_nodeprep(in, out, sizeof(out), &err) == 0;
			else if (pi == 1)
				ok = jid_resourceprep(in, out, sizeof(out), &err) == 0;
			else
				ok = jid_nameprep(in, out, sizeof(out), &err) == 0;
			if (pi < 2) {
				if (ok != ref_ok)
					fail_msg("profile %d, char 0x%02x: ours %d, libidn %d", pi, c,
						 ok, ref_ok);
			} else if (ok && !ref_ok) {
				/* nameprep: host name rules may refuse more, never less */
				fail_msg("nameprep, char 0x%02x: accepted, libidn refuses", c);
			}
			if (ok && ref_ok && strcmp(out, ref) != 0)
				fail_msg("profile %d, char 0x%02x: \"%s\" vs libidn \"%s\"", pi, c,
					 out, ref);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc_valid),
		cmocka_unit_test(test_rfc_invalid),
		cmocka_unit_test(test_case_and_forms),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_helpers),
		cmocka_unit_test(test_ascii_fast_path),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

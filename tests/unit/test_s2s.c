/*
 * test_s2s.c - the pure parts of federation: dialback keys (XEP-0185) and the
 * namespace a stanza from a server is renamed to.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "dialback.h"
#include "s2s_int.h"
#include "stanza.h"
#include "xml.h"

/* XEP-0185's inputs; the key computed independently (Python's hmac/hashlib):
 * HMAC-SHA256(hex(SHA256(secret)), "example.net example.com D60000229F"). */
static void test_dialback_key(void **state)
{
	const unsigned char secret[] = "s3cr3tf0rd14lb4ck";
	char key[DIALBACK_KEY_LEN + 1];

	(void)state;
	dialback_key(secret, sizeof(secret) - 1, "example.net", "example.com", "D60000229F",
		     key);
	assert_string_equal(key,
			    "008c689ff366b50c63d69a3e2d2c0e0e1f8404b0118eb688a0102c87cb691bdc");
	assert_true(dialback_check(secret, sizeof(secret) - 1, "example.net", "example.com",
				   "D60000229F", key));
	/* Another stream, the names swapped, a cut key, none: no. */
	assert_false(dialback_check(secret, sizeof(secret) - 1, "example.net", "example.com",
				    "D60000229G", key));
	assert_false(dialback_check(secret, sizeof(secret) - 1, "example.com", "example.net",
				    "D60000229F", key));
	key[10] = '\0';
	assert_false(dialback_check(secret, sizeof(secret) - 1, "example.net", "example.com",
				    "D60000229F", key));
	assert_false(dialback_check(secret, sizeof(secret) - 1, "example.net", "example.com",
				    "D60000229F", NULL));
}

static void test_ns_to_client(void **state)
{
	char err[128];
	const char *in = "<message xmlns='jabber:server' to='a@b' from='c@d'><body>x</body>"
			 "<x xmlns='jabber:x:data'><field/></x></message>";
	struct xml_node *m = xml_parse(in, strlen(in), err, sizeof(err));
	char *out;

	(void)state;
	assert_non_null(m);
	s2s_ns_to_client(m);
	assert_string_equal(m->ns, NS_CLIENT);
	assert_string_equal(xml_child(m, "body", NULL)->ns, NS_CLIENT);
	assert_string_equal(xml_child(m, "x", NULL)->ns, "jabber:x:data");
	assert_int_equal(stanza_kind(m), STANZA_MESSAGE);
	/* Written into an s2s stream (default jabber:server) as jabber:client's
	 * names: no xmlns on the stanza, so it takes the stream's. */
	struct xml_buf b = { 0 };
	assert_int_equal(xml_serialize(m, NS_CLIENT, &b), 0);
	out = strndup(b.data, b.len);
	assert_null(strstr(out, "jabber:client"));
	assert_non_null(strstr(out, "<x xmlns='jabber:x:data'>"));
	free(out);
	xml_buf_free(&b);
	xml_unref(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dialback_key),
		cmocka_unit_test(test_ns_to_client),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

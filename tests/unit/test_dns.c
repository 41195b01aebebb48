/*
 * test_dns.c - the pure parts of dns.c: RFC 2782's order (priority, then weighted
 * random selection, weight 0, XEP-0368's direct TLS first on a tie) with a fixed random
 * source and, for the distribution, a seeded PRNG; what an SRV answer counts as ("."
 * alone, hostile targets, more than DNS_SRV_MAX records); the decision between records,
 * errors and the RFC 6120 fallback; name checks; the <dns servers> list.
 *
 * The loop and c-ares itself are tests/integration/dns.test's, against dnsmasq.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <ares.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "log.h"

/* ---- random sources ---- */

static const uint32_t *seq;
static size_t seq_n, seq_at;

static uint32_t rnd_seq(void)		/* the values of seq, in turn, then 0 */
{
	return seq_at < seq_n ? seq[seq_at++] : 0;
}
static void use_seq(const uint32_t *v, size_t n)
{
	seq = v;
	seq_n = n;
	seq_at = 0;
}
static uint32_t rnd_zero(void)
{
	return 0;
}
static uint32_t rnd_never(void)
{
	fail_msg("rnd called where no weighted choice is left");
	return 0;
}
static uint64_t prng_state = 0x1234567890abcdefULL;
static uint32_t rnd_prng(void)		/* splitmix64, a fixed seed: no flakes */
{
	uint64_t z = (prng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return (uint32_t)((z ^ (z >> 31)) >> 32);
}

static struct dns_srv_record rec(const char *host, unsigned prio, unsigned weight, bool tls)
{
	struct dns_srv_record r = { .port = 5269, .priority = (unsigned short)prio,
				    .weight = (unsigned short)weight, .direct_tls = tls };

	snprintf(r.host, sizeof(r.host), "%s", host);
	return r;
}

static void assert_order(const struct dns_srv_record *r, size_t n, const char *const *want)
{
	for (size_t i = 0; i < n; i++)
		assert_string_equal(r[i].host, want[i]);
}

/* ---- dns_srv_order ---- */

static void priority_first(void **state)
{
	struct dns_srv_record r[] = { rec("c", 30, 5, false), rec("a", 10, 0, false),
				      rec("d", 40, 0, true), rec("b", 20, 9, false) };
	static const char *const want[] = { "a", "b", "c", "d" };

	(void)state;
	dns_srv_order(r, 4, rnd_never);	/* one record a priority: nothing to draw */
	assert_order(r, 4, want);
}

static void weighted_with_fixed_draws(void **state)
{
	/* Weights 10, 20, 30: sum 60, a draw in [0, 60]. 35 passes a (10) and b (30),
	 * reaches c (60); then a, b: sum 30, 0 takes a. */
	struct dns_srv_record r[] = { rec("a", 10, 10, false), rec("b", 10, 20, false),
				      rec("c", 10, 30, false) };
	static const uint32_t draws[] = { 35, 0 };
	static const char *const want[] = { "c", "a", "b" };
	/* A draw is taken modulo sum + 1: 61 + 10 is 10, which a's running sum reaches. */
	struct dns_srv_record r2[] = { rec("a", 10, 10, false), rec("b", 10, 20, false),
				       rec("c", 10, 30, false) };
	static const uint32_t draws2[] = { 71, 30 };
	static const char *const want2[] = { "a", "c", "b" };

	(void)state;
	use_seq(draws, 2);
	dns_srv_order(r, 3, rnd_seq);
	assert_order(r, 3, want);
	assert_int_equal(seq_at, 2);	/* one draw a choice, none for the last */
	use_seq(draws2, 2);
	dns_srv_order(r2, 3, rnd_seq);
	assert_order(r2, 3, want2);
}

static void weight_zero(void **state)
{
	/* Weight 0 goes to the front of the selection list (RFC 2782), so it is taken
	 * only on a draw of 0: 1 in sum + 1. */
	struct dns_srv_record r[] = { rec("a", 10, 50, false), rec("z", 10, 0, false),
				      rec("b", 10, 50, false) };
	struct dns_srv_record r2[3];
	static const uint32_t ones[] = { 1, 1 };
	static const char *const want[] = { "a", "b", "z" };
	static const char *const want2[] = { "z", "a", "b" };
	struct dns_srv_record zeros[] = { rec("p", 10, 0, false), rec("q", 10, 0, false),
					  rec("r", 10, 0, false) };
	static const char *const want3[] = { "p", "q", "r" };

	(void)state;
	memcpy(r2, r, sizeof(r));
	use_seq(ones, 2);
	dns_srv_order(r, 3, rnd_seq);
	assert_order(r, 3, want);
	dns_srv_order(r2, 3, rnd_zero);
	assert_order(r2, 3, want2);
	/* All weight 0: any order will do; it stays as given and nothing is drawn. */
	dns_srv_order(zeros, 3, rnd_never);
	assert_order(zeros, 3, want3);
}

static void direct_tls_first_on_a_tie(void **state)
{
	/* The xmpp-server record's big weight does not get it ahead of the xmpps-server
	 * one of the same priority; a better priority still wins over direct TLS. */
	struct dns_srv_record r[] = { rec("plain10", 10, 100, false),
				      rec("tls10", 10, 1, true),
				      rec("plain5", 5, 0, false),
				      rec("tls20", 20, 0, true),
				      rec("tls10b", 10, 1, true) };
	static const char *const want[] = { "plain5", "tls10", "tls10b", "plain10", "tls20" };

	(void)state;
	dns_srv_order(r, 5, rnd_zero);
	assert_order(r, 5, want);
	assert_true(r[1].direct_tls && r[2].direct_tls && !r[3].direct_tls);
}

static void weighted_distribution(void **state)
{
	/* Over many draws each record comes first with probability weight / (sum + 1)
	 * (the + 1 is the weight-0 record's chance). */
	enum { DRAWS = 200000 };
	static const unsigned w[] = { 10, 30, 60, 0 };
	const char *names[] = { "w10", "w30", "w60", "w0" };
	unsigned first[4] = { 0 }, w0_last = 0;

	(void)state;
	for (int d = 0; d < DRAWS; d++) {
		struct dns_srv_record r[4];

		for (int i = 0; i < 4; i++)
			r[i] = rec(names[i], 10, w[i], false);
		dns_srv_order(r, 4, rnd_prng);
		for (int i = 0; i < 4; i++)
			if (strcmp(r[0].host, names[i]) == 0)
				first[i]++;
		w0_last += strcmp(r[3].host, "w0") == 0;
	}
	for (int i = 0; i < 4; i++) {
		double got = (double)first[i] / DRAWS, want = (w[i] ? w[i] : 1) / 101.0;

		if (got < want - 0.01 || got > want + 0.01)
			fail_msg("%s first %.4f of the time, expected %.4f", names[i], got, want);
	}
	/* The weight-0 record is last 90% of the time (1/101, then 1/(41|71|91), ...). */
	assert_true(w0_last > DRAWS * 0.88 && w0_last < DRAWS * 0.92);
}

/* ---- dns_srv_collect ---- */

static struct ares_srv_reply *reply(struct ares_srv_reply *next, const char *host,
				    unsigned prio, unsigned weight, unsigned port)
{
	struct ares_srv_reply *r = calloc(1, sizeof(*r));

	r->next = next;
	r->host = host ? strdup(host) : NULL;
	r->priority = (unsigned short)prio;
	r->weight = (unsigned short)weight;
	r->port = (unsigned short)port;
	return r;
}

static void replies_free(struct ares_srv_reply *r)
{
	while (r) {
		struct ares_srv_reply *next = r->next;

		free(r->host);
		free(r);
		r = next;
	}
}

static void collect_dot_and_statuses(void **state)
{
	struct dns_srv_answer a;
	struct ares_srv_reply *l;

	(void)state;
	l = reply(NULL, "", 0, 0, 0);		/* c-ares spells the root "" */
	dns_srv_collect(&a, "_xmpp-server._tcp.x.test", ARES_SUCCESS, l, false);
	assert_int_equal(a.state, DNS_SRV_DOT);
	replies_free(l);
	l = reply(NULL, ".", 0, 0, 0);
	dns_srv_collect(&a, "_xmpp-server._tcp.x.test", ARES_SUCCESS, l, false);
	assert_int_equal(a.state, DNS_SRV_DOT);
	replies_free(l);
	/* "." beside real records is not meaningful (RFC 2782): it is skipped. */
	l = reply(reply(NULL, "", 0, 0, 0), "xmpp.x.test", 5, 1, 5269);
	dns_srv_collect(&a, "_xmpps-server._tcp.x.test", ARES_SUCCESS, l, true);
	assert_int_equal(a.state, DNS_SRV_FOUND);
	assert_int_equal(a.n, 1);
	assert_string_equal(a.r[0].host, "xmpp.x.test");
	assert_true(a.r[0].direct_tls);
	replies_free(l);

	dns_srv_collect(&a, "n", ARES_ENOTFOUND, NULL, false);
	assert_int_equal(a.state, DNS_SRV_NONE);
	dns_srv_collect(&a, "n", ARES_ENODATA, NULL, false);
	assert_int_equal(a.state, DNS_SRV_NONE);
	dns_srv_collect(&a, "n", ARES_SUCCESS, NULL, false);	/* a CNAME and no SRV */
	assert_int_equal(a.state, DNS_SRV_NONE);
	dns_srv_collect(&a, "_xmpp-server._tcp.x.test", ARES_ESERVFAIL, NULL, false);
	assert_int_equal(a.state, DNS_SRV_FAILED);
	assert_non_null(strstr(a.err, "_xmpp-server._tcp.x.test: "));
	dns_srv_collect(&a, "q", ARES_ETIMEOUT, NULL, false);
	assert_int_equal(a.state, DNS_SRV_FAILED);
	assert_non_null(strstr(a.err, ares_strerror(ARES_ETIMEOUT)));
}

static void collect_hostile(void **state)
{
	char longname[300];
	struct dns_srv_answer a;
	struct ares_srv_reply *l = NULL;
	static const char *const bad[] = {
		"two words.test", "a..b.test", ".lead.test", "ctl\x01.test", "quote\".test",
		"back\\.slash.test", "caf\xc3\xa9.test", "x.test:5269", NULL,
	};

	(void)state;
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	l = reply(l, longname, 1, 1, 5269);
	memset(longname, 'b', 64);			/* a 64-octet label */
	snprintf(longname + 64, sizeof(longname) - 64, ".test");
	l = reply(l, longname, 1, 1, 5269);
	for (int i = 0; bad[i]; i++)
		l = reply(l, bad[i], 1, 1, 5269);
	l = reply(l, NULL, 1, 1, 5269);
	l = reply(l, "portzero.test", 1, 1, 0);
	dns_srv_collect(&a, "q", ARES_SUCCESS, l, false);
	assert_int_equal(a.state, DNS_SRV_FAILED);	/* nothing usable: not a fallback */
	assert_int_equal(a.n, 0);
	l = reply(l, "good-one_x.test", 1, 1, 5269);
	dns_srv_collect(&a, "q", ARES_SUCCESS, l, false);
	assert_int_equal(a.state, DNS_SRV_FOUND);
	assert_int_equal(a.n, 1);
	assert_string_equal(a.r[0].host, "good-one_x.test");
	replies_free(l);
}

static void collect_bounded(void **state)
{
	struct dns_srv_answer a;
	struct ares_srv_reply *l = NULL;
	char host[32];

	(void)state;
	/* 100 records, priorities 99 down to 0 as listed: the 32 best (0..31) are kept. */
	for (int i = 0; i < 100; i++) {
		snprintf(host, sizeof(host), "h%d.test", i);
		l = reply(l, host, (unsigned)i, 1, 5269);
	}
	dns_srv_collect(&a, "q", ARES_SUCCESS, l, false);
	assert_int_equal(a.state, DNS_SRV_FOUND);
	assert_int_equal(a.n, DNS_SRV_MAX);
	for (size_t i = 0; i < a.n; i++)
		assert_true(a.r[i].priority < DNS_SRV_MAX);
	replies_free(l);
}

/* ---- dns_srv_decide ---- */

static struct dns_srv_answer *answer(enum dns_srv_state st, const char *host, bool tls)
{
	static struct dns_srv_answer pool[4];
	static int next;
	struct dns_srv_answer *a = &pool[next++ % 4];

	memset(a, 0, sizeof(*a));
	a->state = st;
	if (st == DNS_SRV_FOUND) {
		a->r[0] = rec(host, 10, 0, tls);
		a->n = 1;
	}
	if (st == DNS_SRV_FAILED)
		snprintf(a->err, sizeof(a->err), "%s: Timeout", host ? host : "q");
	return a;
}

static void decide(void **state)
{
	struct dns_target t[2 * DNS_SRV_MAX];
	const char *err;
	size_t n;

	(void)state;
	/* Neither has records: the domain itself on 5269, not direct TLS. */
	n = dns_srv_decide(answer(DNS_SRV_NONE, NULL, 0), answer(DNS_SRV_NONE, NULL, 0),
			   "x.test", t, &err, rnd_zero);
	assert_int_equal(n, 1);
	assert_null(err);
	assert_string_equal(t[0].host, "x.test");
	assert_int_equal(t[0].port, 5269);
	assert_false(t[0].direct_tls);
	/* "." for both: decidedly no service. */
	n = dns_srv_decide(answer(DNS_SRV_DOT, NULL, 0), answer(DNS_SRV_DOT, NULL, 0),
			   "x.test", t, &err, rnd_zero);
	assert_int_equal(n, 0);
	assert_string_equal(err, "no XMPP service (SRV \".\")");
	/* "." for xmpp-server and nothing else: not even the 5269 fallback. */
	n = dns_srv_decide(answer(DNS_SRV_NONE, NULL, 0), answer(DNS_SRV_DOT, NULL, 0),
			   "x.test", t, &err, rnd_zero);
	assert_int_equal(n, 0);
	assert_non_null(err);
	/* "." for xmpps-server only says no direct TLS: the fallback stands. */
	n = dns_srv_decide(answer(DNS_SRV_DOT, NULL, 0), answer(DNS_SRV_NONE, NULL, 0),
			   "x.test", t, &err, rnd_zero);
	assert_int_equal(n, 1);
	assert_false(t[0].direct_tls);
	/* "." on one side, records on the other: the records. */
	n = dns_srv_decide(answer(DNS_SRV_DOT, NULL, 0), answer(DNS_SRV_FOUND, "p.test", 0),
			   "x.test", t, &err, rnd_zero);
	assert_int_equal(n, 1);
	assert_string_equal(t[0].host, "p.test");
	/* A failure beside records: the records; beside nothing: the failure. */
	n = dns_srv_decide(answer(DNS_SRV_FOUND, "s.test", 1), answer(DNS_SRV_FAILED, "f", 0),
			   "x.test", t, &err, rnd_zero);
	assert_int_equal(n, 1);
	assert_null(err);
	assert_true(t[0].direct_tls);
	n = dns_srv_decide(answer(DNS_SRV_FAILED, "s", 0), answer(DNS_SRV_NONE, NULL, 0),
			   "x.test", t, &err, rnd_zero);
	assert_int_equal(n, 0);
	assert_string_equal(err, "s: Timeout");
	n = dns_srv_decide(answer(DNS_SRV_FAILED, "s", 0), answer(DNS_SRV_FAILED, "p", 0),
			   "x.test", t, &err, rnd_zero);
	assert_int_equal(n, 0);
	assert_string_equal(err, "p: Timeout");
	/* Both with records: merged, direct TLS marked by service, not by the record. */
	n = dns_srv_decide(answer(DNS_SRV_FOUND, "s.test", 0), answer(DNS_SRV_FOUND, "p.test", 1),
			   "x.test", t, &err, rnd_zero);
	assert_int_equal(n, 2);
	assert_string_equal(t[0].host, "s.test");
	assert_true(t[0].direct_tls);
	assert_string_equal(t[1].host, "p.test");
	assert_false(t[1].direct_tls);
}

/* ---- names and servers ---- */

static void names(void **state)
{
	char label63[80], name253[260];

	(void)state;
	assert_true(dns_name_valid("x.test"));
	assert_true(dns_name_valid("localhost"));
	assert_true(dns_name_valid("xn--caf-dma.test"));
	assert_false(dns_name_valid(""));
	assert_false(dns_name_valid("x.test."));	/* dns.c strips it before */
	assert_false(dns_name_valid("a..b"));
	assert_false(dns_name_valid("a b"));
	memset(label63, 'a', 63);
	snprintf(label63 + 63, sizeof(label63) - 63, ".test");
	assert_true(dns_name_valid(label63));
	label63[63] = 'a';
	snprintf(label63 + 64, sizeof(label63) - 64, ".test");
	assert_false(dns_name_valid(label63));
	for (int i = 0; i < 253; i++)
		name253[i] = i % 2 ? '.' : 'a';
	name253[252] = 'a';
	name253[253] = '\0';
	assert_true(dns_name_valid(name253));
	name253[253] = '.';
	name253[254] = 'a';
	name253[255] = '\0';
	assert_false(dns_name_valid(name253));
}

static void servers(void **state)
{
	char out[256], err[200];

	(void)state;
	assert_int_equal(dns_servers_normalize("127.0.0.1:5353, [::1]:53 ,::2,10.0.0.1",
					       out, sizeof(out), err, sizeof(err)), 0);
	assert_string_equal(out, "127.0.0.1:5353,[::1]:53,::2,10.0.0.1");
	assert_int_equal(dns_servers_normalize("[2001:db8::1]", out, sizeof(out), err,
					       sizeof(err)), 0);
	assert_string_equal(out, "2001:db8::1");
	static const char *const bad[] = {
		"1.2.3", "1.2.3.4:0", "1.2.3.4:65536", "1.2.3.4:", "1.2.3.4,", ",1.2.3.4",
		"[1.2.3.4]:53", "[::1", "[::1]53", "::1:53:zz", "1.2.3.4:-1", "1.2.3.4:+5",
		"1.2.3.4,,5.6.7.8", " ", NULL,
	};
	for (int i = 0; bad[i]; i++)
		if (dns_servers_normalize(bad[i], out, sizeof(out), err, sizeof(err)) == 0)
			fail_msg("\"%s\" was accepted as \"%s\"", bad[i], out);
	assert_int_equal(dns_servers_normalize("1.1.1.1,1.1.1.2,1.1.1.3,1.1.1.4,1.1.1.5,"
					       "1.1.1.6,1.1.1.7,1.1.1.8,1.1.1.9,1.1.1.10,"
					       "1.1.1.11,1.1.1.12,1.1.1.13,1.1.1.14,1.1.1.15,"
					       "1.1.1.16,1.1.1.17", out, sizeof(out), err,
					       sizeof(err)), -1);
	assert_non_null(strstr(err, "at most"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(priority_first),
		cmocka_unit_test(weighted_with_fixed_draws),
		cmocka_unit_test(weight_zero),
		cmocka_unit_test(direct_tls_first_on_a_tie),
		cmocka_unit_test(weighted_distribution),
		cmocka_unit_test(collect_dot_and_statuses),
		cmocka_unit_test(collect_hostile),
		cmocka_unit_test(collect_bounded),
		cmocka_unit_test(decide),
		cmocka_unit_test(names),
		cmocka_unit_test(servers),
	};

	log_set_level(LOG_ERROR);	/* the hostile records are logged at info */
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

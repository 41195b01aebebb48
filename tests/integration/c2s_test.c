/*
 * c2s_test.c - client connections against a running parleyd (c2s.test starts it).
 *
 * Speaks TAP without numbers or plan ("ok - name", "not ok - name" and "# " lines
 * that say what the server actually sent); the shell wrapper adds the plan.
 *
 * Failed logins count against the per-address limit (auth-attempts), so every
 * test that expects a failure connects from its own 127.0.0.x source address:
 * the logins that must work, from 127.0.0.1, are never locked out by them. The
 * tests that wait for the idle timeout run in forked children meanwhile.
 *
 * Modes for the wrapper:
 *	c2s_test [all]                           every test
 *	c2s_test hold SECONDS USER PASS RES      stay bound (answering pings), print
 *	                                         "bound JID", then "stream-error COND
 *	                                         TEXT" if the server ends the stream
 *	c2s_test login USER HOST PASS [SRC]      exit 0 if the login works, 1 if SASL
 *	                                         fails, 2 for anything else
 * PARLEY_TEST_ONLY="a|b" runs only the tests whose names contain a or b;
 * PARLEY_TEST_TIMEOUT_MS sets the deadline of each wait (5000 by default);
 * PARLEY_TEST_VERBOSE=1 prints the diagnostics of passing tests too.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strophe.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include "xmpptest.h"

static struct {
	const char *ip, *host, *reghost;
	const char *u1, *p1, *u2, *p2, *u3, *p3;
	int starttls, direct, plain, reg;
} E;

/* ---- TAP ---- */

static char diag[32768];
static size_t diag_len;
static int failures;
static const char *only;

/* Adds a diagnostic line (or lines) to the test under way. */
static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	char line[8192];
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	for (char *s = line, *e; s && *s; s = e) {
		e = strchr(s, '\n');
		if (e)
			*e++ = '\0';
		n = snprintf(diag + diag_len, sizeof(diag) - diag_len, "# %s\n", s);
		if (n > 0 && (size_t)n < sizeof(diag) - diag_len)
			diag_len += (size_t)n;
	}
}

static bool verbose;

static bool report(const char *name, bool ok)
{
	printf("%s - %s\n", ok ? "ok" : "not ok", name);
	if (!ok || verbose) {
		fputs(diag, stdout);
		failures++;
	}
	diag_len = 0;
	diag[0] = '\0';
	fflush(stdout);
	return ok;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the stream errors we saw, for the <text/> check at the end ---- */

static int errors_seen, errors_without_text;
static char errors_missing[4096];

static void check_text(const struct xt_node *err, const char *ns)
{
	errors_seen++;
	if (!xt_error_text(err, ns) || !*xt_error_text(err, ns)) {
		size_t l = strlen(errors_missing);
		const struct xt_node *top = err;

		while (top->parent)
			top = top->parent;
		errors_without_text++;
		snprintf(errors_missing + l, sizeof(errors_missing) - l, "\n  %.300s",
			 xt_raw(top));
	}
}

/* ---- building blocks ---- */

#define HDR_FMT "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " \
	"xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>"

static struct xt *connect_to(int port, const char *src)
{
	char err[512];
	struct xt *c = xt_connect(E.ip, port, src, err, sizeof(err));

	if (!c)
		note("%s", err);
	return c;
}

/* A stream with its first features read: TLS as mode says (STARTTLS done). */
static struct xt *stream_to(int port, enum xt_mode mode, const char *host, const char *src)
{
	struct xt *c = connect_to(port, src);

	if (!c)
		return NULL;
	if (mode == XT_DIRECT && xt_tls_handshake(c, host) < 0)
		goto fail;
	if (xt_open_stream(c, host) < 0)
		goto fail;
	if (mode == XT_STARTTLS && xt_starttls(c, host) < 0)
		goto fail;
	return c;
fail:
	note("%s", xt_err(c));
	xt_free(c);
	return NULL;
}

static struct xt *login(int port, enum xt_mode mode, const char *host, const char *user,
			const char *pass, const char *mech, const char *res, const char *src)
{
	char err[2048];
	struct xt *c = xt_login(E.ip, port, mode, host, user, pass, mech, res, src, err,
				sizeof(err));

	if (!c)
		note("%s", err);
	return c;
}

static bool cond_in(const char *cond, const char *list)
{
	size_t l = strlen(cond);

	for (const char *p = list; p && *p;) {
		const char *e = strchr(p, '|');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		if (n == l && strncmp(p, cond, l) == 0)
			return true;
		p = e ? e + 1 : NULL;
	}
	return false;
}

/*
 * The next element (features skipped) must be a stream error with one of the
 * conditions in want ("a|b"), followed by </stream:stream> and the TCP close.
 */
static bool expect_stream_error_ms(struct xt *c, const char *want, int ms)
{
	long long deadline = now_ms() + ms;
	struct xt_node *n;
	const char *cond, *why;

	do {
		long long left = deadline - now_ms();

		n = xt_read_ms(c, left > 0 ? (int)left : 0);
	} while (n && xt_is(n, XT_NS_STREAMS, "features"));
	if (!n) {
		note("expected the stream error <%s/>, got: %s (%s)", want,
		     xt_status_name(xt_status(c)), xt_err(c));
		return false;
	}
	if (!xt_is(n, XT_NS_STREAMS, "error")) {
		note("expected the stream error <%s/>, got: %s", want, xt_raw(n));
		return false;
	}
	check_text(n, XT_NS_STREAM_ERR);
	cond = xt_condition(n, XT_NS_STREAM_ERR);
	if (!cond || !cond_in(cond, want)) {
		note("expected the stream error <%s/>, got: %s", want, xt_raw(n));
		return false;
	}
	if (!xt_expect_close(c, &why)) {
		note("the stream error was right but then: %s", why);
		return false;
	}
	return true;
}

static bool expect_stream_error(struct xt *c, const char *want)
{
	return expect_stream_error_ms(c, want, xt_timeout(c));
}

static bool is_type(const struct xt_node *n, const char *type)
{
	const char *t = xt_attr(n, "type");

	return t && strcmp(t, type) == 0;
}

/* An iq answer must be an error of this condition (and type, when given). */
static bool expect_iq_error(const struct xt_node *n, struct xt *c, const char *cond,
			    const char *etype)
{
	struct xt_node *e;
	const char *got;

	if (!n) {
		note("no answer: %s", xt_err(c));
		return false;
	}
	e = xt_stanza_error(n);
	if (!is_type(n, "error") || !e) {
		note("expected an iq error <%s/>, got: %s", cond, xt_raw(n));
		return false;
	}
	check_text(e, XT_NS_STANZA_ERR);
	got = xt_condition(e, XT_NS_STANZA_ERR);
	if (!got || strcmp(got, cond) != 0) {
		note("expected the stanza error <%s/>, got: %s", cond, xt_raw(n));
		return false;
	}
	if (etype && (!xt_attr(e, "type") || strcmp(xt_attr(e, "type"), etype) != 0)) {
		note("the error type should be '%s': %s", etype, xt_raw(n));
		return false;
	}
	return true;
}

static bool expect_iq_result(const struct xt_node *n, struct xt *c)
{
	if (!n) {
		note("no answer: %s", xt_err(c));
		return false;
	}
	if (!is_type(n, "result")) {
		note("expected an iq result, got: %s", xt_raw(n));
		return false;
	}
	return true;
}

static bool ping(struct xt *c, const char *to)
{
	struct xt_node *n = xt_iq(c, "get", to, "<ping xmlns='" XT_NS_PING "'/>");

	return expect_iq_result(n, c);
}

/* After bad input: a well-behaved client must still log in and get a pong. */
static bool server_still_serves(void)
{
	struct xt *c = login(E.starttls, XT_STARTTLS, E.host, E.u2, E.p2, NULL, NULL, NULL);
	bool ok;

	if (!c) {
		note("afterwards, a good client could not log in");
		return false;
	}
	ok = ping(c, E.host);
	if (!ok)
		note("afterwards, a good client got no pong");
	xt_free(c);
	return ok;
}

/* ---- stream header and features ---- */

static bool t_header(void)
{
	struct xt *c = connect_to(E.starttls, NULL);
	struct xt_node *n;
	const char *id, *from, *ver;
	bool ok = true;

	if (!c)
		return false;
	xt_sendf(c, HDR_FMT, E.host);
	n = xt_read(c);
	if (!xt_got_header(c)) {
		note("no stream header: %s", xt_err(c));
		xt_free(c);
		return false;
	}
	id = xt_stream_attr(c, "id");
	from = xt_stream_attr(c, "from");
	ver = xt_stream_attr(c, "version");
	if (!id || strlen(id) < 8) {
		note("the id should be present and unguessable: '%s'", id ? id : "(none)");
		ok = false;
	}
	if (!from || strcmp(from, E.host) != 0) {
		note("from should be '%s': '%s'", E.host, from ? from : "(none)");
		ok = false;
	}
	if (!ver || strcmp(ver, "1.0") != 0) {
		note("version should be '1.0': '%s'", ver ? ver : "(none)");
		ok = false;
	}
	if (!xt_is(n, XT_NS_STREAMS, "features")) {
		note("the header should be followed by <stream:features/>: %s", xt_raw(n));
		ok = false;
	}
	xt_free(c);
	return ok;
}

static bool t_features_pre_tls(void)
{
	struct xt *c = connect_to(E.starttls, NULL);
	struct xt_node *f, *st;
	bool ok = true;

	if (!c)
		return false;
	if (xt_open_stream(c, E.host) < 0) {
		note("%s", xt_err(c));
		xt_free(c);
		return false;
	}
	f = xt_features(c);
	st = xt_child(f, XT_NS_TLS, "starttls");
	if (!st || !xt_child(st, XT_NS_TLS, "required")) {
		note("expected <starttls><required/></starttls>: %s", xt_raw(f));
		ok = false;
	}
	if (xt_child(f, XT_NS_SASL, "mechanisms")) {
		note("no mechanisms may be offered before TLS: %s", xt_raw(f));
		ok = false;
	}
	xt_free(c);
	return ok;
}

static const char *const all_mechs[] = {
	"SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN",
};

/* Under TLS: the five mechanisms, none of the weak ones, no second STARTTLS. */
static bool check_tls_features(struct xt_node *f)
{
	static const char *const weak[] = { "ANONYMOUS", "LOGIN", "CRAM-MD5", "DIGEST-MD5" };
	bool ok = true;

	for (size_t i = 0; i < sizeof(all_mechs) / sizeof(all_mechs[0]); i++) {
		if (!xt_has_mech(f, all_mechs[i])) {
			note("%s is missing: %s", all_mechs[i], xt_raw(f));
			ok = false;
		}
	}
	for (size_t i = 0; i < sizeof(weak) / sizeof(weak[0]); i++) {
		if (xt_has_mech(f, weak[i])) {
			note("%s should not be offered: %s", weak[i], xt_raw(f));
			ok = false;
		}
	}
	if (xt_child(f, XT_NS_TLS, "starttls")) {
		note("STARTTLS offered again under TLS: %s", xt_raw(f));
		ok = false;
	}
	return ok;
}

static bool t_features_starttls(void)
{
	struct xt *c = stream_to(E.starttls, XT_STARTTLS, E.host, NULL);
	bool ok;

	if (!c)
		return false;
	ok = check_tls_features(xt_features(c));
	xt_free(c);
	return ok;
}

static bool t_features_direct(void)
{
	struct xt *c = stream_to(E.direct, XT_DIRECT, E.host, NULL);
	bool ok;

	if (!c)
		return false;
	ok = check_tls_features(xt_features(c));
	xt_free(c);
	return ok;
}

static bool t_features_plain(void)
{
	struct xt *c = stream_to(E.plain, XT_TCP, E.host, NULL);
	struct xt_node *f, *ms;
	int n = 0;
	bool ok = true;

	if (!c)
		return false;
	f = xt_features(c);
	ms = xt_child(f, XT_NS_SASL, "mechanisms");
	for (struct xt_node *m = ms ? ms->children : NULL; m; m = m->next)
		n++;
	if (!xt_has_mech(f, "SCRAM-SHA-256") || !xt_has_mech(f, "SCRAM-SHA-1") || n != 2) {
		note("expected exactly SCRAM-SHA-256 and SCRAM-SHA-1: %s", xt_raw(f));
		ok = false;
	}
	if (xt_child(f, XT_NS_TLS, "starttls")) {
		note("a tls=\"none\" listener offers STARTTLS: %s", xt_raw(f));
		ok = false;
	}
	xt_free(c);
	return ok;
}

static bool t_plain_refused_without_tls(void)
{
	struct xt *c = stream_to(E.plain, XT_TCP, E.host, "127.0.0.11");
	int r;
	bool ok;

	if (!c)
		return false;
	r = xt_auth(c, "PLAIN", E.host, E.u1, E.p1, NULL);
	ok = r == 1 && cond_in(xt_sasl_failure(c),
			       "invalid-mechanism|encryption-required|mechanism-too-weak");
	if (!ok)
		note("expected <failure><invalid-mechanism/></failure> or encryption-required: "
		     "r=%d %s", r, r == 0 ? "(logged in!)" : xt_err(c));
	xt_free(c);
	return ok;
}

/* Authentication before STARTTLS on a listener that requires it must not work: a
 * <failure/> or a stream error are both fine, silence is not. */
static bool t_sasl_before_starttls(void)
{
	struct xt *c = connect_to(E.starttls, "127.0.0.12");
	enum xt_status st;
	int r;

	if (!c)
		return false;
	if (xt_open_stream(c, E.host) < 0) {
		note("%s", xt_err(c));
		xt_free(c);
		return false;
	}
	r = xt_auth(c, "SCRAM-SHA-256", E.host, E.u1, E.p1, NULL);
	st = xt_status(c);
	note("the server said: %s", xt_err(c));
	if (r == 0)
		note("logged in without TLS on a tls=\"starttls\" listener");
	else if (r == -1 && st == XT_TIMEOUT)
		note("no answer at all: %s", xt_err(c));
	xt_free(c);
	return r == 1 || (r == -1 && st != XT_TIMEOUT);
}

static bool t_reg_features(void)
{
	struct xt *c = connect_to(E.reg, NULL);
	struct xt_node *f;
	bool ok = true;

	if (!c)
		return false;
	if (xt_open_stream(c, E.reghost) < 0) {
		note("%s", xt_err(c));
		xt_free(c);
		return false;
	}
	f = xt_features(c);
	if (!xt_child(f, XT_NS_REG_FEATURE, "register")) {
		note("no <register xmlns='%s'/> before TLS: %s", XT_NS_REG_FEATURE, xt_raw(f));
		ok = false;
	}
	if (ok && xt_starttls(c, E.reghost) == 0 &&
	    !xt_child(xt_features(c), XT_NS_REG_FEATURE, "register")) {
		note("no <register/> after STARTTLS: %s", xt_raw(xt_features(c)));
		ok = false;
	}
	xt_free(c);
	return ok;
}

/* tls="optional": STARTTLS offered but not required, and SCRAM works without it. */
static bool t_optional_tls(void)
{
	struct xt *c = connect_to(E.reg, NULL);
	struct xt_node *f, *st;
	bool ok = true;
	int r;

	if (!c)
		return false;
	if (xt_open_stream(c, E.host) < 0) {
		note("%s", xt_err(c));
		xt_free(c);
		return false;
	}
	f = xt_features(c);
	st = xt_child(f, XT_NS_TLS, "starttls");
	if (!st || xt_child(st, XT_NS_TLS, "required")) {
		note("expected <starttls/> without <required/>: %s", xt_raw(f));
		ok = false;
	}
	if (xt_has_mech(f, "PLAIN")) {
		note("PLAIN offered without TLS: %s", xt_raw(f));
		ok = false;
	}
	r = xt_auth(c, "SCRAM-SHA-256", E.host, E.u1, E.p1, NULL);
	if (r != 0 || xt_bind(c, "optional", NULL, 0) < 0) {
		note("SCRAM-SHA-256 without TLS: %s", xt_err(c));
		ok = false;
	}
	xt_free(c);
	return ok;
}

/* ---- SASL ---- */

struct sasl_case {
	const char *mech, *cb;
};

static const struct sasl_case sasl_cases[] = {
	{ "PLAIN", NULL },
	{ "SCRAM-SHA-1", NULL },
	{ "SCRAM-SHA-256", NULL },
	{ "SCRAM-SHA-1-PLUS", "tls-exporter" },
	{ "SCRAM-SHA-1-PLUS", "tls-server-end-point" },
	{ "SCRAM-SHA-256-PLUS", "tls-exporter" },
	{ "SCRAM-SHA-256-PLUS", "tls-server-end-point" },
};

static bool sasl_login(int port, enum xt_mode mode, const struct sasl_case *sc, int idx)
{
	struct xt *c = stream_to(port, mode, E.host, NULL);
	struct xt_sasl_opts o = { .cb_type = sc->cb };
	char res[32], jid[512], want[512];
	bool ok = false;
	int r;

	if (!c)
		return false;
	r = xt_auth(c, sc->mech, E.host, E.u1, E.p1, &o);
	if (r != 0) {
		note("%s (TLS %s)", xt_err(c), xt_tls_version(c));
		goto out;
	}
	snprintf(res, sizeof(res), "sasl-%d-%d", port, idx);
	if (xt_bind(c, res, jid, sizeof(jid)) < 0) {
		note("%s", xt_err(c));
		goto out;
	}
	snprintf(want, sizeof(want), "%s@%s/%s", E.u1, E.host, res);
	if (strcmp(jid, want) != 0) {
		note("bound '%s', expected '%s'", jid, want);
		goto out;
	}
	ok = ping(c, E.host);
out:
	xt_free(c);
	return ok;
}

/* A login that must fail with this condition; src keeps the failure off 127.0.0.1. */
static bool sasl_must_fail(int port, enum xt_mode mode, const char *mech, const char *user,
			   const char *pass, const struct xt_sasl_opts *o, const char *want,
			   const char *src)
{
	struct xt *c = stream_to(port, mode, E.host, src);
	int r;
	bool ok;

	if (!c)
		return false;
	r = xt_auth(c, mech, E.host, user, pass, o);
	ok = r == 1 && cond_in(xt_sasl_failure(c), want);
	if (ok)
		note("the server said: %s", xt_err(c));
	if (!ok)
		note("expected <failure><%s/></failure>: %s", want,
		     r == 0 ? "the login worked" : xt_err(c));
	xt_free(c);
	return ok;
}

static bool t_wrong_password_scram(void)
{
	return sasl_must_fail(E.starttls, XT_STARTTLS, "SCRAM-SHA-256", E.u1, "not-the-password",
			      NULL, "not-authorized", "127.0.0.13");
}

static bool t_wrong_password_plain(void)
{
	return sasl_must_fail(E.direct, XT_DIRECT, "PLAIN", E.u1, "not-the-password", NULL,
			      "not-authorized", "127.0.0.14");
}

static bool t_unknown_user_scram(void)
{
	return sasl_must_fail(E.starttls, XT_STARTTLS, "SCRAM-SHA-1", "nobody-here", "x", NULL,
			      "not-authorized", "127.0.0.15");
}

static bool t_unknown_user_plain(void)
{
	return sasl_must_fail(E.starttls, XT_STARTTLS, "PLAIN", "nobody-here", "x", NULL,
			      "not-authorized", "127.0.0.16");
}

static bool t_bad_channel_binding(void)
{
	struct xt_sasl_opts o = { .cb_type = "tls-exporter", .corrupt_cb = true };

	return sasl_must_fail(E.starttls, XT_STARTTLS, "SCRAM-SHA-256-PLUS", E.u1, E.p1, &o,
			      "not-authorized", "127.0.0.17");
}

static bool t_bad_channel_binding_endpoint(void)
{
	struct xt_sasl_opts o = { .cb_type = "tls-server-end-point", .corrupt_cb = true };

	return sasl_must_fail(E.direct, XT_DIRECT, "SCRAM-SHA-1-PLUS", E.u1, E.p1, &o,
			      "not-authorized", "127.0.0.24");
}

/* "y": we could bind but believe the server cannot, while it offers -PLUS: a
 * downgrade the server must refuse (RFC 5802 §6). */
static bool t_gs2_y_downgrade(void)
{
	struct xt_sasl_opts o = { .gs2_y = true };

	return sasl_must_fail(E.starttls, XT_STARTTLS, "SCRAM-SHA-256", E.u1, E.p1, &o,
			      "not-authorized", "127.0.0.18");
}

static bool t_unknown_mechanism(void)
{
	return sasl_must_fail(E.starttls, XT_STARTTLS, "X-NO-SUCH-MECH", E.u1, E.p1, NULL,
			      "invalid-mechanism", "127.0.0.19");
}

static bool t_sasl_abort(void)
{
	struct xt *c = stream_to(E.starttls, XT_STARTTLS, E.host, "127.0.0.20");
	struct xt_node *n;
	char first[256], *b64;
	bool ok = false;

	if (!c)
		return false;
	/* A SCRAM client-first, then <abort/> instead of the proof. */
	snprintf(first, sizeof(first), "n,,n=%s,r=abcdefghijklmnop", E.u1);
	b64 = xt_base64(first, strlen(first));
	xt_sendf(c, "<auth xmlns='" XT_NS_SASL "' mechanism='SCRAM-SHA-256'>%s</auth>", b64);
	free(b64);
	n = xt_read(c);
	if (!xt_is(n, XT_NS_SASL, "challenge")) {
		note("expected a challenge: %s", n ? xt_raw(n) : xt_err(c));
		goto out;
	}
	xt_sendf(c, "<abort xmlns='" XT_NS_SASL "'/>");
	n = xt_read(c);
	ok = xt_is(n, XT_NS_SASL, "failure") && xt_child(n, XT_NS_SASL, "aborted");
	if (!ok)
		note("expected <failure><aborted/></failure>: %s", n ? xt_raw(n) : xt_err(c));
out:
	xt_free(c);
	return ok;
}

/* RFC 6120 §6.4.5: a server should allow a few retries on the same stream. */
static bool t_retry_after_failure(void)
{
	struct xt *c = stream_to(E.starttls, XT_STARTTLS, E.host, "127.0.0.21");
	bool ok = false;
	int r;

	if (!c)
		return false;
	r = xt_auth(c, "SCRAM-SHA-256", E.host, E.u1, "wrong", NULL);
	if (r != 1) {
		note("the wrong password: %s", r == 0 ? "worked" : xt_err(c));
		goto out;
	}
	r = xt_auth(c, "SCRAM-SHA-256", E.host, E.u1, E.p1, NULL);
	if (r != 0) {
		note("the retry with the right password: %s", xt_err(c));
		goto out;
	}
	ok = xt_bind(c, "retry", NULL, 0) == 0;
	if (!ok)
		note("%s", xt_err(c));
out:
	xt_free(c);
	return ok;
}

/* ---- bind and session ---- */

static bool t_bind_resource(void)
{
	struct xt *c = stream_to(E.starttls, XT_STARTTLS, E.host, NULL);
	char want[512], jid[512];
	bool ok;

	if (!c)
		return false;
	if (xt_auth(c, "SCRAM-SHA-256", E.host, E.u1, E.p1, NULL) != 0 ||
	    xt_bind(c, "desk top", jid, sizeof(jid)) < 0) {
		note("%s", xt_err(c));
		xt_free(c);
		return false;
	}
	snprintf(want, sizeof(want), "%s@%s/desk top", E.u1, E.host);
	ok = strcmp(jid, want) == 0;
	if (!ok)
		note("bound '%s', expected '%s': %s", jid, want, xt_raw(xt_last(c)));
	xt_free(c);
	return ok;
}

static bool t_bind_generated(void)
{
	struct xt *c = stream_to(E.starttls, XT_STARTTLS, E.host, NULL);
	char prefix[512], jid[512];
	bool ok;

	if (!c)
		return false;
	if (!xt_child(xt_features(c), XT_NS_SASL, "mechanisms") ||
	    xt_auth(c, "SCRAM-SHA-256", E.host, E.u1, E.p1, NULL) != 0) {
		note("%s", xt_err(c));
		xt_free(c);
		return false;
	}
	if (!xt_child(xt_features(c), XT_NS_BIND, "bind")) {
		note("no <bind/> in the features after SASL: %s", xt_raw(xt_features(c)));
		xt_free(c);
		return false;
	}
	if (xt_bind(c, NULL, jid, sizeof(jid)) < 0) {
		note("%s", xt_err(c));
		xt_free(c);
		return false;
	}
	snprintf(prefix, sizeof(prefix), "%s@%s/", E.u1, E.host);
	ok = strncmp(jid, prefix, strlen(prefix)) == 0 && strlen(jid) > strlen(prefix);
	if (!ok)
		note("bound '%s', expected '%s' and a resource", jid, prefix);
	xt_free(c);
	return ok;
}

static bool t_resource_conflict(void)
{
	struct xt *c1 = login(E.starttls, XT_STARTTLS, E.host, E.u1, E.p1, NULL, "twin", NULL);
	struct xt *c2;
	char want[512];
	bool ok = true;

	if (!c1)
		return false;
	c2 = login(E.direct, XT_DIRECT, E.host, E.u1, E.p1, NULL, "twin", NULL);
	if (!c2) {
		note("the second login failed");
		xt_free(c1);
		return false;
	}
	snprintf(want, sizeof(want), "%s@%s/twin", E.u1, E.host);
	if (strcmp(xt_jid(c2), want) != 0) {
		note("the second login was bound to '%s', expected '%s'", xt_jid(c2), want);
		ok = false;
	}
	if (!expect_stream_error(c1, "conflict")) {
		note("(on the first stream)");
		ok = false;
	}
	if (!ping(c2, E.host)) {
		note("the second stream does not work afterwards");
		ok = false;
	}
	xt_free(c1);
	xt_free(c2);
	return ok;
}

static bool t_legacy_session(void)
{
	struct xt *c = login(E.starttls, XT_STARTTLS, E.host, E.u1, E.p1, NULL, "session", NULL);
	struct xt_node *n;
	bool ok;

	if (!c)
		return false;
	n = xt_iq(c, "set", NULL, "<session xmlns='" XT_NS_SESSION "'/>");
	ok = expect_iq_result(n, c);
	xt_free(c);
	return ok;
}

/* ---- IQs answered by the server ---- */

static struct xt *u1_session(const char *res)
{
	return login(E.starttls, XT_STARTTLS, E.host, E.u1, E.p1, NULL, res, NULL);
}

static bool t_ping_host(void)
{
	struct xt *c = u1_session("ping");
	struct xt_node *n;
	const char *from;
	bool ok;

	if (!c)
		return false;
	n = xt_iq(c, "get", E.host, "<ping xmlns='" XT_NS_PING "'/>");
	ok = expect_iq_result(n, c);
	from = xt_attr(n, "from");
	if (ok && (!from || strcmp(from, E.host) != 0)) {
		note("the result should come from '%s': %s", E.host, xt_raw(n));
		ok = false;
	}
	xt_free(c);
	return ok;
}

static bool has_feature(const struct xt_node *q, const char *var)
{
	for (struct xt_node *f = q ? q->children : NULL; f; f = f->next)
		if (xt_is(f, XT_NS_DISCO_INFO, "feature") && xt_attr(f, "var") &&
		    strcmp(xt_attr(f, "var"), var) == 0)
			return true;
	return false;
}

static bool has_identity(const struct xt_node *q, const char *cat, const char *type)
{
	for (struct xt_node *f = q ? q->children : NULL; f; f = f->next)
		if (xt_is(f, XT_NS_DISCO_INFO, "identity") && xt_attr(f, "category") &&
		    xt_attr(f, "type") && strcmp(xt_attr(f, "category"), cat) == 0 &&
		    strcmp(xt_attr(f, "type"), type) == 0)
			return true;
	return false;
}

static bool t_disco_host(void)
{
	static const char *const want[] = { XT_NS_PING, XT_NS_VERSION, XT_NS_DISCO_INFO };
	struct xt *c = u1_session("disco");
	struct xt_node *n, *q;
	bool ok;

	if (!c)
		return false;
	n = xt_iq(c, "get", E.host, "<query xmlns='" XT_NS_DISCO_INFO "'/>");
	ok = expect_iq_result(n, c);
	q = xt_child(n, XT_NS_DISCO_INFO, "query");
	if (ok && !has_identity(q, "server", "im")) {
		note("no identity server/im: %s", xt_raw(n));
		ok = false;
	}
	for (size_t i = 0; ok && i < sizeof(want) / sizeof(want[0]); i++) {
		if (!has_feature(q, want[i])) {
			note("feature %s missing: %s", want[i], xt_raw(n));
			ok = false;
		}
	}
	/* Features of modules not loaded on this host are not advertised. */
	if (ok && (has_feature(q, "msgoffline") || has_feature(q, "jabber:iq:last"))) {
		note("a feature of a module not loaded: %s", xt_raw(n));
		ok = false;
	}
	xt_free(c);
	return ok;
}

static bool t_disco_account(void)
{
	struct xt *c = u1_session("disco-account");
	struct xt_node *n;
	char bare[512];
	bool ok;

	if (!c)
		return false;
	snprintf(bare, sizeof(bare), "%s@%s", E.u1, E.host);
	n = xt_iq(c, "get", bare, "<query xmlns='" XT_NS_DISCO_INFO "'/>");
	ok = expect_iq_result(n, c);
	if (ok && !has_identity(xt_child(n, XT_NS_DISCO_INFO, "query"), "account",
				"registered")) {
		note("no identity account/registered: %s", xt_raw(n));
		ok = false;
	}
	/* The core stamps stanza-ids (XEP-0359 §6); no offline module here. */
	if (ok && !has_feature(xt_child(n, XT_NS_DISCO_INFO, "query"), "urn:xmpp:sid:0")) {
		note("no feature urn:xmpp:sid:0: %s", xt_raw(n));
		ok = false;
	}
	xt_free(c);
	return ok;
}

static bool t_version(void)
{
	struct xt *c = u1_session("version");
	struct xt_node *n, *q, *name, *ver;
	bool ok;

	if (!c)
		return false;
	n = xt_iq(c, "get", E.host, "<query xmlns='" XT_NS_VERSION "'/>");
	ok = expect_iq_result(n, c);
	q = xt_child(n, XT_NS_VERSION, "query");
	name = xt_child(q, XT_NS_VERSION, "name");
	ver = xt_child(q, XT_NS_VERSION, "version");
	if (ok && (!name || !name->text || strcmp(name->text, "Parley") != 0 || !ver ||
		   !ver->text || !*ver->text)) {
		note("expected <name>Parley</name> and a <version/>: %s", xt_raw(n));
		ok = false;
	}
	xt_free(c);
	return ok;
}

static bool t_unknown_namespace(void)
{
	struct xt *c = u1_session("unknown-ns");
	struct xt_node *n;
	bool ok;

	if (!c)
		return false;
	n = xt_iq(c, "get", E.host, "<query xmlns='urn:example:no-such-thing'/>");
	ok = expect_iq_error(n, c, "service-unavailable", "cancel");
	xt_free(c);
	return ok;
}

/* The core answers an IQ no module of that host handles (reg.example has no ping). */
static bool t_unhandled_on_bare_host(void)
{
	struct xt *c = login(E.starttls, XT_STARTTLS, E.host, E.u1, E.p1, NULL, "no-module",
			     NULL);
	struct xt_node *n;
	bool ok;

	if (!c)
		return false;
	n = xt_iq(c, "get", E.reghost, "<ping xmlns='" XT_NS_PING "'/>");
	ok = expect_iq_error(n, c, "service-unavailable", "cancel");
	xt_free(c);
	return ok;
}

/* RFC 6120 §4.4: the client closes; the server closes its side and the TCP. */
static bool t_client_close(void)
{
	struct xt *c = u1_session("closing");
	const char *why;
	bool ok = true;

	if (!c)
		return false;
	xt_sendf(c, "</stream:stream>");
	if (!xt_expect_close(c, &why)) {
		note("%s", why);
		ok = false;
	}
	xt_free(c);
	return ok;
}

/* ---- in-band registration (XEP-0077) ---- */

static struct xt_node *register_iq(struct xt *c, const char *type, const char *to,
				   const char *user, const char *pass)
{
	char payload[1024], eu[256], ep[256];

	if (!user)
		return xt_iq(c, type, to, "<query xmlns='" XT_NS_REGISTER "'/>");
	snprintf(payload, sizeof(payload), "<query xmlns='" XT_NS_REGISTER "'><username>%s"
		 "</username><password>%s</password></query>", xt_escape(user, eu, sizeof(eu)),
		 xt_escape(pass, ep, sizeof(ep)));
	return xt_iq(c, type, to, payload);
}

static bool t_register_off_get(void)
{
	struct xt *c = connect_to(E.reg, "127.0.0.6");
	bool ok;

	if (!c)
		return false;
	if (xt_open_stream(c, E.host) < 0) {
		note("%s", xt_err(c));
		xt_free(c);
		return false;
	}
	ok = expect_iq_error(register_iq(c, "get", NULL, NULL, NULL), c, "not-allowed", NULL);
	xt_free(c);
	return ok;
}

static bool t_register_off_set(void)
{
	struct xt *c = connect_to(E.reg, "127.0.0.6");
	bool ok;

	if (!c)
		return false;
	if (xt_open_stream(c, E.host) < 0) {
		note("%s", xt_err(c));
		xt_free(c);
		return false;
	}
	ok = expect_iq_error(register_iq(c, "set", NULL, "sneaky", "pw12345678"), c,
			     "not-allowed", NULL);
	xt_free(c);
	if (ok) {
		/* And no account came of it. */
		char err[1024];

		c = xt_login(E.ip, E.starttls, XT_STARTTLS, E.host, "sneaky", "pw12345678", NULL,
			     NULL, "127.0.0.6", err, sizeof(err));
		if (c) {
			note("the refused registration created the account anyway");
			ok = false;
			xt_free(c);
		}
	}
	return ok;
}

static bool t_register_off_starttls(void)
{
	struct xt *c = stream_to(E.starttls, XT_STARTTLS, E.host, "127.0.0.6");
	bool ok;

	if (!c)
		return false;
	ok = expect_iq_error(register_iq(c, "get", NULL, NULL, NULL), c, "not-allowed", NULL);
	xt_free(c);
	return ok;
}

static char reg_user[64];
static const char reg_pass[] = "n3w-pa$$word";

static bool t_register_form(void)
{
	struct xt *c = stream_to(E.reg, XT_STARTTLS, E.reghost, "127.0.0.3");
	struct xt_node *n, *q;
	bool ok;

	if (!c)
		return false;
	n = register_iq(c, "get", NULL, NULL, NULL);
	ok = expect_iq_result(n, c);
	q = xt_child(n, XT_NS_REGISTER, "query");
	if (ok && (!xt_child(q, XT_NS_REGISTER, "username") ||
		   !xt_child(q, XT_NS_REGISTER, "password"))) {
		note("the form needs <username/> and <password/>: %s", xt_raw(n));
		ok = false;
	}
	if (ok && xt_child(q, XT_NS_REGISTER, "registered")) {
		note("<registered/> on an unauthenticated stream: %s", xt_raw(n));
		ok = false;
	}
	xt_free(c);
	return ok;
}

static bool t_register_create(void)
{
	struct xt *c = stream_to(E.reg, XT_STARTTLS, E.reghost, "127.0.0.3");
	bool ok;

	if (!c)
		return false;
	snprintf(reg_user, sizeof(reg_user), "newbie%ld", (long)getpid());
	ok = expect_iq_result(register_iq(c, "set", NULL, reg_user, reg_pass), c);
	xt_free(c);
	if (!ok)
		return false;
	/* reg.example has no mod_ping: a bound resource is the proof. */
	c = login(E.starttls, XT_STARTTLS, E.reghost, reg_user, reg_pass, "SCRAM-SHA-1", NULL,
		  NULL);
	if (!c) {
		note("the new account cannot log in");
		return false;
	}
	xt_free(c);
	return true;
}

static bool t_register_conflict(void)
{
	struct xt *c;
	bool ok;

	if (!reg_user[0]) {
		note("needs the account of the previous test");
		return false;
	}
	c = stream_to(E.reg, XT_STARTTLS, E.reghost, "127.0.0.3");
	if (!c)
		return false;
	ok = expect_iq_error(register_iq(c, "set", NULL, reg_user, "another-password"), c,
			     "conflict", NULL);
	xt_free(c);
	return ok;
}

static bool t_register_rate(void)
{
	bool ok = true;

	for (int i = 1; i <= 4 && ok; i++) {
		struct xt *c = stream_to(E.reg, XT_STARTTLS, E.reghost, "127.0.0.4");
		char user[64];
		struct xt_node *n;

		if (!c)
			return false;
		snprintf(user, sizeof(user), "rate%ld-%d", (long)getpid(), i);
		n = register_iq(c, "set", NULL, user, "some-password");
		if (i < 4) {
			ok = expect_iq_result(n, c);
			if (!ok)
				note("(registration %d of 3 allowed)", i);
		} else {
			ok = expect_iq_error(n, c, "resource-constraint", "wait");
		}
		xt_free(c);
	}
	return ok;
}

/* Logged in, set a new password; then the new one works and the old one does not. */
static bool change_password(const char *host, const char *user, const char *oldp,
			    const char *src)
{
	struct xt *c = login(E.starttls, XT_STARTTLS, host, user, oldp, NULL, "pw", NULL);
	char newp[64];
	bool ok;

	if (!c)
		return false;
	snprintf(newp, sizeof(newp), "changed-%ld", (long)getpid());
	ok = expect_iq_result(register_iq(c, "set", host, user, newp), c);
	xt_free(c);
	if (!ok)
		return false;
	c = login(E.direct, XT_DIRECT, host, user, newp, "SCRAM-SHA-256", NULL, NULL);
	if (!c) {
		note("the new password does not work");
		return false;
	}
	xt_free(c);
	c = stream_to(E.starttls, XT_STARTTLS, host, src);
	if (!c)
		return false;
	if (xt_auth(c, "SCRAM-SHA-1", host, user, oldp, NULL) != 1 ||
	    strcmp(xt_sasl_failure(c), "not-authorized") != 0) {
		note("the old password should fail with not-authorized: %s", xt_err(c));
		ok = false;
	}
	xt_free(c);
	return ok;
}

static bool t_password_change(void)
{
	if (!E.u3) {
		note("PARLEY_USER3/PARLEY_PASS3 not set");
		return false;
	}
	return change_password(E.host, E.u3, E.p3, "127.0.0.23");
}

static bool t_password_change_reg(void)
{
	struct xt *c = stream_to(E.reg, XT_STARTTLS, E.reghost, "127.0.0.5");
	char user[64];
	bool ok;

	if (!c)
		return false;
	snprintf(user, sizeof(user), "pwchange%ld", (long)getpid());
	ok = expect_iq_result(register_iq(c, "set", NULL, user, "first-password"), c);
	xt_free(c);
	if (!ok)
		return false;
	return change_password(E.reghost, user, "first-password", "127.0.0.25");
}

/* ---- bad input ---- */

/* Sends our header plus bad, expects the stream error, then checks the server. */
static bool bad_input(const char *host, const char *bytes, size_t len, const char *want,
		      bool with_header)
{
	struct xt *c = connect_to(E.starttls, NULL);
	bool ok;

	if (!c)
		return false;
	if (with_header)
		xt_sendf(c, HDR_FMT, host);
	xt_send(c, bytes, len);
	ok = expect_stream_error(c, want);
	xt_free(c);
	return server_still_serves() && ok;
}

static bool t_malformed(void)
{
	static const char s[] = "<message><body></message>";

	return bad_input(E.host, s, sizeof(s) - 1, "not-well-formed", true);
}

static bool t_comment(void)
{
	static const char s[] = "<!-- a comment -->";

	return bad_input(E.host, s, sizeof(s) - 1, "restricted-xml", true);
}

static bool t_pi(void)
{
	static const char s[] = "<?evil processing-instruction?>";

	return bad_input(E.host, s, sizeof(s) - 1, "restricted-xml", true);
}

static bool t_doctype(void)
{
	char s[512];

	/* The DOCTYPE has to come before the root: it travels with the header. */
	snprintf(s, sizeof(s), "<?xml version='1.0'?><!DOCTYPE stream:stream "
		 "[<!ENTITY boom 'boom'>]><stream:stream xmlns='jabber:client' "
		 "xmlns:stream='" XT_NS_STREAMS "' to='%s' version='1.0'>", E.host);
	return bad_input(E.host, s, strlen(s), "restricted-xml", false);
}

static bool t_unknown_host(void)
{
	return bad_input("no-such-host.example", "", 0, "host-unknown", true);
}

static bool t_wrong_stream_ns(void)
{
	char s[512];

	snprintf(s, sizeof(s), "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
		 "xmlns:stream='http://example.com/not-streams' to='%s' version='1.0'>", E.host);
	return bad_input(E.host, s, strlen(s), "invalid-namespace", false);
}

static bool t_wrong_content_ns(void)
{
	char s[512];

	snprintf(s, sizeof(s), "<?xml version='1.0'?><stream:stream xmlns='jabber:nonsense' "
		 "xmlns:stream='" XT_NS_STREAMS "' to='%s' version='1.0'>", E.host);
	return bad_input(E.host, s, strlen(s), "invalid-namespace", false);
}

static bool t_garbage(void)
{
	struct xt *c = connect_to(E.starttls, NULL);
	unsigned char junk[1024];
	unsigned seed = 12345;
	struct xt_node *n;
	const char *why;
	bool ok = true;

	if (!c)
		return false;
	/* The same bytes every run: a failure can be replayed. */
	for (size_t i = 0; i < sizeof(junk); i++) {
		seed = seed * 1103515245u + 12345u;
		junk[i] = (unsigned char)(seed >> 16);
	}
	xt_send(c, junk, sizeof(junk));
	do
		n = xt_read(c);
	while (n && xt_is(n, XT_NS_STREAMS, "features"));
	note("the server answered: %s", n ? xt_raw(n) : xt_status_name(xt_status(c)));
	if (n) {
		const char *cond = xt_condition(n, XT_NS_STREAM_ERR);

		if (!xt_is(n, XT_NS_STREAMS, "error") || !cond ||
		    !cond_in(cond, "not-well-formed|bad-format|unsupported-encoding")) {
			note("expected <not-well-formed/> or a close, got: %s", xt_raw(n));
			ok = false;
		} else if (!xt_expect_close(c, &why)) {
			note("%s", why);
			ok = false;
		}
	} else if (xt_status(c) == XT_TIMEOUT) {
		note("no answer and no close within %d ms", xt_timeout(c));
		ok = false;
	}
	xt_free(c);
	return server_still_serves() && ok;
}

static bool t_stanza_before_auth(void)
{
	struct xt *c = stream_to(E.starttls, XT_STARTTLS, E.host, NULL);
	bool ok;

	if (!c)
		return false;
	xt_sendf(c, "<message to='%s@%s'><body>hi</body></message>", E.u1, E.host);
	ok = expect_stream_error(c, "not-authorized");
	xt_free(c);
	return server_still_serves() && ok;
}

static bool t_oversized(void)
{
	struct xt *c = u1_session("big");
	size_t len = 70000;
	char *body;
	bool ok;

	if (!c)
		return false;
	body = malloc(len + 1);
	if (!body)
		abort();
	memset(body, 'a', len);
	body[len] = '\0';
	xt_sendf(c, "<message to='%s@%s'><body>", E.u2, E.host);
	/* The server may close while we write: that is fine, its error is what counts. */
	xt_send(c, body, len);
	xt_sendf(c, "</body></message>");
	free(body);
	ok = expect_stream_error(c, "policy-violation");
	xt_free(c);
	return server_still_serves() && ok;
}

static bool t_too_deep(void)
{
	struct xt *c = u1_session("deep");
	char buf[2048];
	size_t o = 0;
	bool ok;

	if (!c)
		return false;
	o += (size_t)snprintf(buf, sizeof(buf), "<message to='%s@%s'>", E.u2, E.host);
	for (int i = 0; i < 100; i++)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "<x>");
	xt_send(c, buf, o);
	ok = expect_stream_error(c, "policy-violation");
	xt_free(c);
	return server_still_serves() && ok;
}

static bool t_invalid_from(void)
{
	struct xt *c = u1_session("liar");
	bool ok;

	if (!c)
		return false;
	xt_sendf(c, "<message from='%s@%s/elsewhere' to='%s@%s'><body>spoof</body></message>",
		 E.u2, E.host, E.u1, E.host);
	ok = expect_stream_error(c, "invalid-from");
	xt_free(c);
	return server_still_serves() && ok;
}

/* ---- idle connections (run in the background: they take 10-25 s) ---- */

static bool t_idle_unauthenticated(void)
{
	struct xt *c = connect_to(E.starttls, NULL);
	long long t0;
	long secs;
	bool ok;

	if (!c)
		return false;
	if (xt_open_stream(c, E.host) < 0) {
		note("%s", xt_err(c));
		xt_free(c);
		return false;
	}
	t0 = now_ms();
	ok = expect_stream_error_ms(c, "connection-timeout", 25000);
	secs = (long)((now_ms() - t0) / 1000);
	if (ok && (secs < 8 || secs > 16)) {
		note("closed after %ld s, expected about 10", secs);
		ok = false;
	}
	xt_free(c);
	return ok;
}

static bool is_server_ping(const struct xt_node *n)
{
	return xt_is(n, XT_NS_CLIENT, "iq") && is_type(n, "get") &&
	       xt_child(n, XT_NS_PING, "ping");
}

static bool t_idle_bound_silent(void)
{
	struct xt *c = login(E.starttls, XT_STARTTLS, E.host, E.u2, E.p2, NULL, "idle-silent",
			     NULL);
	struct xt_node *n;
	long long t0 = now_ms(), t1;
	long secs;
	bool ok = true;

	if (!c)
		return false;
	n = xt_read_ms(c, 25000);
	secs = (long)((now_ms() - t0) / 1000);
	if (!is_server_ping(n)) {
		note("expected the server's ping after ~10 s, got after %ld s: %s", secs,
		     n ? xt_raw(n) : xt_status_name(xt_status(c)));
		xt_free(c);
		return false;
	}
	if (secs < 8 || secs > 16) {
		note("the ping came after %ld s, expected about 10", secs);
		ok = false;
	}
	t1 = now_ms();
	if (!expect_stream_error_ms(c, "connection-timeout", 25000)) {
		xt_free(c);
		return false;
	}
	secs = (long)((now_ms() - t1) / 1000);
	if (secs < 8 || secs > 16) {
		note("closed %ld s after the unanswered ping, expected about 10", secs);
		ok = false;
	}
	xt_free(c);
	return ok;
}

/* Answers the server's pings for ms milliseconds; false on anything else. */
static bool answer_pings(struct xt *c, int ms, int *pings)
{
	long long deadline = now_ms() + ms;

	for (;;) {
		long long left = deadline - now_ms();
		struct xt_node *n;

		if (left <= 0)
			return true;
		n = xt_read_ms(c, (int)left);
		if (!n) {
			if (xt_status(c) == XT_TIMEOUT)
				return true;
			note("the stream ended: %s (%s)", xt_status_name(xt_status(c)),
			     xt_err(c));
			return false;
		}
		if (xt_is(n, XT_NS_STREAMS, "error")) {
			note("a stream error although we answered: %s", xt_raw(n));
			return false;
		}
		if (is_server_ping(n)) {
			const char *id = xt_attr(n, "id"), *from = xt_attr(n, "from");

			(*pings)++;
			xt_sendf(c, "<iq type='result' id='%s'%s%s%s/>", id ? id : "",
				 from ? " to='" : "", from ? from : "", from ? "'" : "");
		}
	}
}

static bool t_idle_bound_answering(void)
{
	struct xt *c = login(E.starttls, XT_STARTTLS, E.host, E.u2, E.p2, NULL, "idle-answer",
			     NULL);
	int pings = 0;
	bool ok;

	if (!c)
		return false;
	ok = answer_pings(c, 25000, &pings);
	if (ok && pings == 0) {
		note("no ping from the server in 25 s of silence");
		ok = false;
	}
	if (ok && !ping(c, E.host)) {
		note("the stream does not work after %d answered pings", pings);
		ok = false;
	}
	xt_free(c);
	return ok;
}

/* ---- libstrophe, a real client library ---- */

struct sx {
	bool connected, done, pong;
	int error;
	const char *src;
	char stream_error[128];
	char jid[512];
	const char *msg_to;
	char log[24][600];
	int nlog;
};

static void sx_log(void *ud, xmpp_log_level_t level, const char *area, const char *msg)
{
	struct sx *s = ud;

	(void)level;
	snprintf(s->log[s->nlog % 24], sizeof(s->log[0]), "%s: %s", area, msg);
	s->nlog++;
}

static void sx_dump(const struct sx *s)
{
	int first = s->nlog > 24 ? s->nlog - 24 : 0;

	note("libstrophe's last log lines:");
	for (int i = first; i < s->nlog; i++)
		note("  %s", s->log[i % 24]);
}

static int sx_pong(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
	struct sx *s = ud;
	const char *type = xmpp_stanza_get_type(st);

	s->pong = type && strcmp(type, "result") == 0;
	xmpp_disconnect(conn);
	return 0;
}

/* libstrophe 0.12 gives the callback no user data: the source address of the
 * session being set up (one at a time) is kept here. */
static const char *sx_src;

static int sx_sockopt(xmpp_conn_t *conn, void *sock)
{
	struct sockaddr_in a = { .sin_family = AF_INET };

	(void)conn;
	if (!sx_src)
		return 0;
	inet_pton(AF_INET, sx_src, &a.sin_addr);
	return bind(*(int *)sock, (struct sockaddr *)&a, sizeof(a));
}

static void sx_conn(xmpp_conn_t *conn, xmpp_conn_event_t ev, int error,
		    xmpp_stream_error_t *se, void *ud)
{
	struct sx *s = ud;
	xmpp_ctx_t *ctx = xmpp_conn_get_context(conn);

	if (ev == XMPP_CONN_CONNECT) {
		xmpp_stanza_t *iq = xmpp_iq_new(ctx, "get", "sx-ping"), *p = xmpp_stanza_new(ctx);
		const char *jid = xmpp_conn_get_bound_jid(conn);

		s->connected = true;
		snprintf(s->jid, sizeof(s->jid), "%s", jid ? jid : "");
		if (s->msg_to) {
			xmpp_stanza_t *m = xmpp_message_new(ctx, "chat", s->msg_to, "sx-msg");

			xmpp_message_set_body(m, "hello from libstrophe");
			xmpp_send(conn, m);
			xmpp_stanza_release(m);
		}
		xmpp_stanza_set_to(iq, E.host);
		xmpp_stanza_set_name(p, "ping");
		xmpp_stanza_set_ns(p, XT_NS_PING);
		xmpp_stanza_add_child(iq, p);
		xmpp_stanza_release(p);
		xmpp_id_handler_add(conn, sx_pong, "sx-ping", s);
		xmpp_send(conn, iq);
		xmpp_stanza_release(iq);
		return;
	}
	s->error = error;
	if (se)
		snprintf(s->stream_error, sizeof(s->stream_error), "type %d: %s", (int)se->type,
			 se->text ? se->text : "");
	s->done = true;
}

/* One libstrophe session: log in, optionally send a message, ping the host. */
static void strophe_run(int port, long flags, const char *user, const char *pass,
			struct sx *s)
{
	xmpp_log_t log = { sx_log, s };
	xmpp_ctx_t *ctx = xmpp_ctx_new(NULL, &log);
	xmpp_conn_t *conn = xmpp_conn_new(ctx);
	char jid[512];
	long long deadline = now_ms() + 10000;

	snprintf(jid, sizeof(jid), "%s@%s/strophe", user, E.host);
	xmpp_conn_set_flags(conn, flags | XMPP_CONN_FLAG_TRUST_TLS | XMPP_CONN_FLAG_DISABLE_SM);
	xmpp_conn_set_jid(conn, jid);
	xmpp_conn_set_pass(conn, pass);
	sx_src = s->src;
	xmpp_conn_set_sockopt_callback(conn, sx_sockopt);
	if (xmpp_connect_client(conn, E.ip, (unsigned short)port, sx_conn, s) != XMPP_EOK) {
		snprintf(s->stream_error, sizeof(s->stream_error), "xmpp_connect_client failed");
		s->done = true;
	}
	while (!s->done && now_ms() < deadline)
		xmpp_run_once(ctx, 50);
	if (!s->done) {
		snprintf(s->stream_error, sizeof(s->stream_error), "timed out");
		xmpp_disconnect(conn);
		for (int i = 0; i < 20 && !s->done; i++)
			xmpp_run_once(ctx, 50);
	}
	xmpp_conn_release(conn);
	xmpp_ctx_free(ctx);
}

static bool strophe_login(int port, long flags)
{
	struct sx s = { 0 };

	strophe_run(port, flags, E.u1, E.p1, &s);
	if (s.connected && s.pong) {
		if (verbose)
			sx_dump(&s);
		return true;
	}
	note("connected=%d pong=%d error=%d %s", s.connected, s.pong, s.error, s.stream_error);
	sx_dump(&s);
	return false;
}

static bool t_strophe_starttls(void)
{
	return strophe_login(E.starttls, XMPP_CONN_FLAG_MANDATORY_TLS);
}

static bool t_strophe_direct(void)
{
	return strophe_login(E.direct, XMPP_CONN_FLAG_LEGACY_SSL);
}

static bool t_strophe_plain(void)
{
	return strophe_login(E.plain, XMPP_CONN_FLAG_DISABLE_TLS);
}

static bool t_strophe_wrong_password(void)
{
	struct sx s = { .src = "127.0.0.30" };

	strophe_run(E.starttls, XMPP_CONN_FLAG_MANDATORY_TLS, E.u1, "wrong-password", &s);
	if (!s.connected && s.done)
		return true;
	note("connected=%d done=%d: %s", s.connected, s.done, s.stream_error);
	sx_dump(&s);
	return false;
}

static bool t_strophe_message(void)
{
	struct xt *rcv = login(E.starttls, XT_STARTTLS, E.host, E.u2, E.p2, NULL, "inbox", NULL);
	struct sx s = { 0 };
	char to[512], from[512];
	struct xt_node *n;
	bool ok = false;

	if (!rcv)
		return false;
	snprintf(to, sizeof(to), "%s@%s/inbox", E.u2, E.host);
	s.msg_to = to;
	strophe_run(E.starttls, XMPP_CONN_FLAG_MANDATORY_TLS, E.u1, E.p1, &s);
	if (!s.connected) {
		note("libstrophe did not log in: %s", s.stream_error);
		sx_dump(&s);
		goto out;
	}
	snprintf(from, sizeof(from), "%s", s.jid);
	do
		n = xt_read(rcv);
	while (n && !xt_is(n, XT_NS_CLIENT, "message"));
	if (!n) {
		note("no message arrived: %s", xt_err(rcv));
		goto out;
	}
	ok = xt_attr(n, "from") && strcmp(xt_attr(n, "from"), from) == 0 &&
	     xt_child(n, XT_NS_CLIENT, "body") && xt_child(n, XT_NS_CLIENT, "body")->text &&
	     strcmp(xt_child(n, XT_NS_CLIENT, "body")->text, "hello from libstrophe") == 0;
	if (!ok)
		note("expected the message from %s: %s", from, xt_raw(n));
out:
	xt_free(rcv);
	return ok;
}

/* ---- too many failed logins (an address of its own) ---- */

static bool t_auth_lockout(void)
{
	const char *src = "127.0.0.2";
	struct xt *c;
	bool ok = true;
	int r;

	for (int i = 1; i <= 5; i++) {
		c = stream_to(E.starttls, XT_STARTTLS, E.host, src);
		if (!c)
			return false;
		r = xt_auth(c, "SCRAM-SHA-256", E.host, E.u1, "wrong", NULL);
		if (r != 1 || strcmp(xt_sasl_failure(c), "not-authorized") != 0) {
			note("failed attempt %d should be not-authorized: %s", i, xt_err(c));
			ok = false;
		}
		xt_free(c);
	}
	/* The right password now: refused all the same. */
	c = stream_to(E.starttls, XT_STARTTLS, E.host, src);
	if (!c) {
		note("(the 6th connection was not even accepted)");
		return false;
	}
	r = xt_auth(c, "SCRAM-SHA-256", E.host, E.u1, E.p1, NULL);
	if (r == 0) {
		note("the 6th attempt, with the right password, logged in");
		xt_free(c);
		return false;
	}
	if (r != 1) {
		note("expected <failure/> first: %s", xt_err(c));
		ok = false;
	} else if (!expect_stream_error(c, "policy-violation")) {
		ok = false;
	}
	xt_free(c);
	return ok;
}

static bool t_lockout_is_per_address(void)
{
	struct xt *c = login(E.starttls, XT_STARTTLS, E.host, E.u1, E.p1, NULL, "after-lockout",
			     NULL);

	if (!c)
		return false;
	xt_free(c);
	return true;
}

static bool t_errors_have_text(void)
{
	if (errors_seen == 0) {
		note("no errors seen");
		return false;
	}
	if (errors_without_text) {
		note("%d of %d errors had no <text/>:%s", errors_without_text, errors_seen,
		     errors_missing);
		return false;
	}
	return true;
}

/* ---- the list ---- */

enum { FG, BG, LAST };

struct test {
	const char *name;
	bool (*fn)(void);
	int when;
};

static const struct test tests[] = {
	{ "idle unauthenticated client gets <connection-timeout/> after ~10 s",
	  t_idle_unauthenticated, BG },
	{ "idle bound client is pinged at ~10 s, then closed with <connection-timeout/>",
	  t_idle_bound_silent, BG },
	{ "idle bound client that answers the server's pings stays connected",
	  t_idle_bound_answering, BG },

	{ "stream header: id, from=host, version 1.0, then features", t_header, FG },
	{ "starttls port before TLS: only <starttls><required/>, no mechanisms",
	  t_features_pre_tls, FG },
	{ "starttls port after TLS: SCRAM-*-PLUS, SCRAM-*, PLAIN", t_features_starttls, FG },
	{ "direct TLS port: SCRAM-*-PLUS, SCRAM-*, PLAIN", t_features_direct, FG },
	{ "tls=none port: SCRAM-SHA-256 and SCRAM-SHA-1 only", t_features_plain, FG },
	{ "tls=none port: PLAIN refused", t_plain_refused_without_tls, FG },
	{ "starttls port: SASL before STARTTLS does not log in", t_sasl_before_starttls, FG },
	{ "tls=optional port: STARTTLS not required, SCRAM without TLS logs in",
	  t_optional_tls, FG },
	{ "reg host: features announce iq-register", t_reg_features, FG },

	{ "starttls: PLAIN", NULL, 0 },	/* the SASL matrix, filled in by main */

	{ "wrong password -> <not-authorized/> (SCRAM-SHA-256)", t_wrong_password_scram, FG },
	{ "wrong password -> <not-authorized/> (PLAIN, direct TLS)", t_wrong_password_plain,
	  FG },
	{ "unknown user -> <not-authorized/> (SCRAM-SHA-1)", t_unknown_user_scram, FG },
	{ "unknown user -> <not-authorized/> (PLAIN)", t_unknown_user_plain, FG },
	{ "SCRAM-SHA-256-PLUS with wrong tls-exporter data fails", t_bad_channel_binding, FG },
	{ "SCRAM-SHA-1-PLUS with wrong tls-server-end-point data fails",
	  t_bad_channel_binding_endpoint, FG },
	{ "SCRAM-SHA-256 with gs2 'y' while -PLUS is offered fails", t_gs2_y_downgrade, FG },
	{ "unknown mechanism -> <invalid-mechanism/>", t_unknown_mechanism, FG },
	{ "<abort/> -> <failure><aborted/>", t_sasl_abort, FG },
	{ "retry after a failed attempt on the same stream works", t_retry_after_failure, FG },

	{ "bind with a resource -> user@host/resource", t_bind_resource, FG },
	{ "bind without a resource: the server picks one", t_bind_generated, FG },
	{ "same full JID twice: the first stream gets <conflict/>", t_resource_conflict, FG },
	{ "legacy session establishment -> result", t_legacy_session, FG },

	{ "ping to the host -> result", t_ping_host, FG },
	{ "disco#info to the host: server/im, ping, version, disco#info, nothing of modules "
	  "not loaded", t_disco_host, FG },
	{ "disco#info to own bare JID: account/registered, urn:xmpp:sid:0", t_disco_account,
	  FG },
	{ "version: Parley and a version", t_version, FG },
	{ "iq with an unknown namespace -> <service-unavailable/>", t_unknown_namespace, FG },

	{ "iq to a host without a handler for it -> <service-unavailable/>",
	  t_unhandled_on_bare_host, FG },
	{ "client sends </stream:stream>: server closes its stream and TCP", t_client_close,
	  FG },

	{ "registration off: pre-auth get -> <not-allowed/>", t_register_off_get, FG },
	{ "registration off: pre-auth set -> <not-allowed/>, no account", t_register_off_set,
	  FG },
	{ "registration off: get after STARTTLS -> <not-allowed/>", t_register_off_starttls, FG },
	{ "registration on: get returns the form", t_register_form, FG },
	{ "registration on: set creates an account that logs in", t_register_create, FG },
	{ "registration on: existing username -> <conflict/>", t_register_conflict, FG },
	{ "registration on: 4th from one address in an hour -> <resource-constraint/>",
	  t_register_rate, FG },
	{ "password change (registration off): new works, old doesn't", t_password_change, FG },
	{ "password change (registration on): new works, old doesn't", t_password_change_reg,
	  FG },

	{ "malformed XML -> <not-well-formed/>, server serves others", t_malformed, FG },
	{ "XML comment -> <restricted-xml/>", t_comment, FG },
	{ "processing instruction -> <restricted-xml/>", t_pi, FG },
	{ "DOCTYPE -> <restricted-xml/>", t_doctype, FG },
	{ "oversized stanza (70000 > 65536 bytes) -> <policy-violation/>", t_oversized, FG },
	{ "nesting deeper than the depth limit -> <policy-violation/>", t_too_deep, FG },
	{ "stanza before auth -> <not-authorized/>", t_stanza_before_auth, FG },
	{ "unknown host -> <host-unknown/>", t_unknown_host, FG },
	{ "wrong stream namespace -> <invalid-namespace/>", t_wrong_stream_ns, FG },
	{ "wrong content namespace -> <invalid-namespace/>", t_wrong_content_ns, FG },
	{ "random binary -> <not-well-formed/> or close, server stays up", t_garbage, FG },
	{ "'from' not the client's JID -> <invalid-from/>", t_invalid_from, FG },

	{ "libstrophe: STARTTLS, SASL, bind, ping", t_strophe_starttls, FG },
	{ "libstrophe: direct TLS, SASL, bind, ping", t_strophe_direct, FG },
	{ "libstrophe: no TLS (tls=none port), SCRAM, ping", t_strophe_plain, FG },
	{ "libstrophe: a wrong password fails the login", t_strophe_wrong_password, FG },
	{ "libstrophe: a chat message reaches another user's full JID", t_strophe_message, FG },

	{ "every stream/stanza error above carries a <text/>", t_errors_have_text, LAST },
	{ "auth-attempts: 6th login from one address refused (failure, <policy-violation/>)",
	  t_auth_lockout, LAST },
	{ "the lockout is per address: 127.0.0.1 still logs in", t_lockout_is_per_address,
	  LAST },
};

/* PARLEY_TEST_ONLY: substrings of test names, separated by '|'. */
static bool want(const char *name)
{
	char buf[512], *save = NULL;

	if (!only)
		return true;
	snprintf(buf, sizeof(buf), "%s", only);
	for (char *w = strtok_r(buf, "|", &save); w; w = strtok_r(NULL, "|", &save))
		if (strstr(name, w))
			return true;
	return false;
}

static void run_sasl_matrix(void)
{
	static const struct { const char *label; int *port; enum xt_mode mode; } ports[] = {
		{ "starttls", &E.starttls, XT_STARTTLS },
		{ "direct TLS", &E.direct, XT_DIRECT },
	};
	char name[128];

	for (size_t p = 0; p < 2; p++) {
		for (size_t i = 0; i < sizeof(sasl_cases) / sizeof(sasl_cases[0]); i++) {
			const struct sasl_case *sc = &sasl_cases[i];

			snprintf(name, sizeof(name), "%s: %s%s%s%s logs in", ports[p].label,
				 sc->mech, sc->cb ? " (" : "", sc->cb ? sc->cb : "",
				 sc->cb ? ")" : "");
			if (want(name))
				report(name, sasl_login(*ports[p].port, ports[p].mode, sc,
							(int)i));
		}
	}
	for (size_t i = 1; i <= 2; i++) {
		snprintf(name, sizeof(name), "tls=none: %s logs in", sasl_cases[i].mech);
		if (want(name))
			report(name, sasl_login(E.plain, XT_TCP, &sasl_cases[i], (int)(10 + i)));
	}
}

struct child {
	pid_t pid;
	char path[64];
};

/* Runs a slow test in a child whose TAP lines go to a file we print at the end. */
static bool start_bg(const struct test *t, struct child *ch)
{
	int fd;

	snprintf(ch->path, sizeof(ch->path), "/tmp/c2s_test.XXXXXX");
	fd = mkstemp(ch->path);
	if (fd < 0)
		return false;
	fflush(stdout);
	ch->pid = fork();
	if (ch->pid < 0) {
		close(fd);
		return false;
	}
	if (ch->pid == 0) {
		dup2(fd, STDOUT_FILENO);
		close(fd);
		failures = 0;
		report(t->name, t->fn());
		fflush(stdout);
		_exit(failures ? 1 : 0);
	}
	close(fd);
	return true;
}

static void finish_bg(struct child *ch)
{
	char buf[4096];
	size_t n;
	int st = 0;
	FILE *f;

	if (waitpid(ch->pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		failures++;
	f = fopen(ch->path, "r");
	if (f) {
		while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
			fwrite(buf, 1, n, stdout);
		fclose(f);
	}
	if (WIFSIGNALED(st))
		printf("not ok - background test (pid %ld) died of signal %d\n", (long)ch->pid,
		       WTERMSIG(st));
	unlink(ch->path);
	fflush(stdout);
}

static int run_all(void)
{
	struct child kids[8];
	size_t nkids = 0;

	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
		if (tests[i].when == BG && tests[i].fn && want(tests[i].name) && nkids < 8 &&
		    start_bg(&tests[i], &kids[nkids]))
			nkids++;
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		if (!tests[i].fn) {
			run_sasl_matrix();
			continue;
		}
		if (tests[i].when == FG && want(tests[i].name))
			report(tests[i].name, tests[i].fn());
	}
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
		if (tests[i].when == LAST && want(tests[i].name))
			report(tests[i].name, tests[i].fn());
	for (size_t i = 0; i < nkids; i++)
		finish_bg(&kids[i]);
	return failures ? 1 : 0;
}

/* ---- modes for the shell wrapper ---- */

static int run_hold(int argc, char **argv)
{
	struct xt *c;
	char err[2048];
	long long deadline;

	if (argc < 6)
		return 2;
	c = xt_login(E.ip, E.starttls, XT_STARTTLS, E.host, argv[3], argv[4], NULL, argv[5],
		     NULL, err, sizeof(err));
	if (!c) {
		printf("login-failed %s\n", err);
		return 2;
	}
	printf("bound %s\n", xt_jid(c));
	fflush(stdout);
	deadline = now_ms() + atol(argv[2]) * 1000;
	while (now_ms() < deadline) {
		struct xt_node *n = xt_read_ms(c, (int)(deadline - now_ms()));

		if (!n && xt_status(c) == XT_TIMEOUT)
			break;
		if (!n) {
			printf("closed %s\n", xt_status_name(xt_status(c)));
			xt_free(c);
			return 1;
		}
		if (xt_is(n, XT_NS_STREAMS, "error")) {
			const char *cond = xt_condition(n, XT_NS_STREAM_ERR), *why;
			const char *text = xt_error_text(n, XT_NS_STREAM_ERR);
			bool closed;

			/* Print first: the next read frees the node. */
			printf("stream-error %s %s\n", cond ? cond : "?", text ? text : "");
			closed = xt_expect_close(c, &why);
			if (!closed)
				printf("not-closed %s\n", why);
			xt_free(c);
			return closed ? 0 : 1;
		}
		if (is_server_ping(n))
			xt_sendf(c, "<iq type='result' id='%s' to='%s'/>",
				 xt_attr(n, "id") ? xt_attr(n, "id") : "",
				 xt_attr(n, "from") ? xt_attr(n, "from") : E.host);
	}
	printf("timeout\n");
	xt_free(c);
	return 1;
}

static int run_login(int argc, char **argv)
{
	struct xt *c;
	char err[1024];
	int r;

	if (argc < 5)
		return 2;
	c = xt_connect(E.ip, E.starttls, argc > 5 ? argv[5] : NULL, err, sizeof(err));
	if (!c) {
		printf("%s\n", err);
		return 2;
	}
	if (xt_open_stream(c, argv[3]) < 0 || xt_starttls(c, argv[3]) < 0) {
		printf("%s\n", xt_err(c));
		xt_free(c);
		return 2;
	}
	r = xt_auth(c, "SCRAM-SHA-256", argv[3], argv[2], argv[4], NULL);
	if (r == 0 && xt_bind(c, NULL, NULL, 0) < 0)
		r = -1;
	printf("%s\n", r == 0 ? xt_jid(c) : xt_err(c));
	xt_free(c);
	return r == 0 ? 0 : r == 1 ? 1 : 2;
}

static const char *env(const char *name, const char *def)
{
	const char *v = getenv(name);

	return v && *v ? v : def;
}

int main(int argc, char **argv)
{
	E.ip = env("PARLEY_ADDRESS", "127.0.0.1");
	E.host = env("PARLEY_HOST", "test.example");
	E.reghost = env("PARLEY_REG_HOST", "reg.example");
	E.u1 = env("PARLEY_USER1", "alice");
	E.p1 = env("PARLEY_PASS1", "alice-password");
	E.u2 = env("PARLEY_USER2", "bob");
	E.p2 = env("PARLEY_PASS2", "bob-password");
	E.u3 = env("PARLEY_USER3", NULL);
	E.p3 = env("PARLEY_PASS3", "");
	E.starttls = atoi(env("PARLEY_PORT_STARTTLS", "5222"));
	E.direct = atoi(env("PARLEY_PORT_DIRECT", "5223"));
	E.plain = atoi(env("PARLEY_PORT_PLAIN", "0"));
	E.reg = atoi(env("PARLEY_PORT_REG", "0"));
	only = env("PARLEY_TEST_ONLY", NULL);
	verbose = env("PARLEY_TEST_VERBOSE", NULL) != NULL;
	xt_set_default_timeout(atoi(env("PARLEY_TEST_TIMEOUT_MS", "0")));
	setvbuf(stdout, NULL, _IOLBF, 0);
	xmpp_initialize();

	if (argc > 1 && strcmp(argv[1], "hold") == 0)
		return run_hold(argc, argv);
	if (argc > 1 && strcmp(argv[1], "login") == 0)
		return run_login(argc, argv);
	if (argc > 1 && strcmp(argv[1], "all") != 0) {
		fprintf(stderr, "usage: c2s_test [all | hold SECONDS USER PASS RESOURCE | "
			"login USER HOST PASS [SRC]]\n");
		return 2;
	}
	return run_all();
}

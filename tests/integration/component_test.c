/*
 * component_test.c - an external component (XEP-0114) written with libstrophe,
 * against a running parleyd (component.test starts it).
 *
 * Two libstrophe connections in one context: the component (DOMAIN, with its
 * secret) and a user logged in over c2s. The user's message to echo@DOMAIN is
 * answered by the component, the user's disco#info to DOMAIN too (the
 * component answers its own disco), the component pings the server's host,
 * then it disconnects and a message to it comes back <service-unavailable/>.
 *
 *	component_test C2S_PORT COMPONENT_PORT HOST USER PASS DOMAIN SECRET
 *
 * Speaks TAP without a plan ("ok - name", "not ok - name", "# " lines); the
 * shell wrapper counts them. PARLEY_TEST_TIMEOUT_MS bounds each wait (5000).
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strophe.h>
#include <time.h>

#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NS_PING "urn:xmpp:ping"

static struct {
	const char *host, *user, *pass, *domain, *secret;
	int c2s, comp;
	long timeout_ms;
} E;

static int failures;

/* What the two connections saw, filled in by the handlers. */
static struct {
	bool comp_up, comp_down, user_up, user_down;
	char comp_error[256];		/* why the component connection ended */
	char seen_from[512];		/* the 'from' of the message the component got */
	bool echoed;			/* the user got the component's answer */
	char echo_body[256];
	bool disco_answered;
	char disco_identity[128];
	bool pong;			/* the server answered the component's ping */
	char pong_type[32];
	bool bounced;
	char bounce_condition[64], bounce_from[512];
	char user_jid[512];
	char log[32][400];
	int nlog;
} S;

static void report(const char *name, bool ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void report(const char *name, bool ok, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;

	printf("%s - %s\n", ok ? "ok" : "not ok", name);
	if (ok)
		return;
	failures++;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	for (char *s = buf, *e; s && *s; s = e) {
		if ((e = strchr(s, '\n')))
			*e++ = '\0';
		printf("# %s\n", s);
	}
	printf("# libstrophe's last log lines:\n");
	for (int i = S.nlog > 32 ? S.nlog - 32 : 0; i < S.nlog; i++)
		printf("#   %s\n", S.log[i % 32]);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_log(void *ud, xmpp_log_level_t level, const char *area, const char *msg)
{
	(void)ud;
	if (level < XMPP_LEVEL_DEBUG || strcmp(area, "xmpp") == 0 || strcmp(area, "conn") == 0)
		snprintf(S.log[S.nlog++ % 32], sizeof(S.log[0]), "%s: %s", area, msg);
}

/* Runs the loop until *flag is true or the deadline passes. */
static bool wait_for(xmpp_ctx_t *ctx, const bool *flag)
{
	long long deadline = now_ms() + E.timeout_ms;

	while (!*flag && now_ms() < deadline)
		xmpp_run_once(ctx, 20);
	return *flag;
}

static void copy(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src ? src : "");
}

/* ---- the component ---- */

/* echo@DOMAIN answers every chat message with "echo: BODY". */
static int comp_message(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
	xmpp_ctx_t *ctx = xmpp_conn_get_context(conn);
	const char *type = xmpp_stanza_get_type(st);
	char *body = xmpp_message_get_body(st), text[300];
	xmpp_stanza_t *m;

	(void)ud;
	if ((type && strcmp(type, "error") == 0) || !body) {
		xmpp_free(ctx, body);
		return 1;
	}
	copy(S.seen_from, sizeof(S.seen_from), xmpp_stanza_get_from(st));
	m = xmpp_message_new(ctx, "chat", xmpp_stanza_get_from(st), xmpp_stanza_get_id(st));
	xmpp_stanza_set_from(m, xmpp_stanza_get_to(st));
	snprintf(text, sizeof(text), "echo: %s", body);
	xmpp_message_set_body(m, text);
	xmpp_send(conn, m);
	xmpp_stanza_release(m);
	xmpp_free(ctx, body);
	return 1;
}

/* The component's own disco#info; the answer to its ping of the host. */
static int comp_iq(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
	xmpp_ctx_t *ctx = xmpp_conn_get_context(conn);
	const char *type = xmpp_stanza_get_type(st), *id = xmpp_stanza_get_id(st);
	xmpp_stanza_t *q = xmpp_stanza_get_child_by_ns(st, NS_DISCO_INFO), *r, *rq, *idn, *f;

	(void)ud;
	if (id && strcmp(id, "comp-ping") == 0) {
		S.pong = true;
		copy(S.pong_type, sizeof(S.pong_type), type);
		return 1;
	}
	if (!type || strcmp(type, "get") != 0 || !q)
		return 1;
	r = xmpp_iq_new(ctx, "result", id);
	xmpp_stanza_set_to(r, xmpp_stanza_get_from(st));
	xmpp_stanza_set_from(r, xmpp_stanza_get_to(st));
	rq = xmpp_stanza_new(ctx);
	xmpp_stanza_set_name(rq, "query");
	xmpp_stanza_set_ns(rq, NS_DISCO_INFO);
	idn = xmpp_stanza_new(ctx);
	xmpp_stanza_set_name(idn, "identity");
	xmpp_stanza_set_attribute(idn, "category", "component");
	xmpp_stanza_set_attribute(idn, "type", "generic");
	xmpp_stanza_set_attribute(idn, "name", "Echo bot");
	xmpp_stanza_add_child(rq, idn);
	xmpp_stanza_release(idn);
	f = xmpp_stanza_new(ctx);
	xmpp_stanza_set_name(f, "feature");
	xmpp_stanza_set_attribute(f, "var", NS_DISCO_INFO);
	xmpp_stanza_add_child(rq, f);
	xmpp_stanza_release(f);
	xmpp_stanza_add_child(r, rq);
	xmpp_stanza_release(rq);
	xmpp_send(conn, r);
	xmpp_stanza_release(r);
	return 1;
}

static void comp_conn(xmpp_conn_t *conn, xmpp_conn_event_t ev, int error,
		      xmpp_stream_error_t *se, void *ud)
{
	(void)ud;
	if (ev == XMPP_CONN_CONNECT) {
		S.comp_up = true;
		return;
	}
	snprintf(S.comp_error, sizeof(S.comp_error), "event %d, error %d%s%s", (int)ev, error,
		 se && se->text ? ": " : "", se && se->text ? se->text : "");
	S.comp_down = true;
}

/*
 * libstrophe 0.12.2 allocates a connection's stream-management state only in
 * xmpp_connect_client(), yet reads it for every stanza a component receives
 * after the handshake: a NULL dereference. A first client connection on the
 * same object, to a port where nothing listens, allocates it; the state stays
 * (SM disabled) for the component connection that follows.
 */
static void primed(xmpp_conn_t *conn, xmpp_conn_event_t ev, int error,
		   xmpp_stream_error_t *se, void *ud)
{
	(void)conn, (void)error, (void)se;
	if (ev != XMPP_CONN_CONNECT)
		*(bool *)ud = true;
}

static void prime(xmpp_ctx_t *ctx, xmpp_conn_t *conn)
{
	bool done = false;

	xmpp_conn_set_jid(conn, "primer@127.0.0.1");
	if (xmpp_connect_client(conn, "127.0.0.1", 1, primed, &done) == XMPP_EOK)
		wait_for(ctx, &done);
}

/* ---- the user ---- */

static const char *condition_of(xmpp_stanza_t *st)
{
	xmpp_stanza_t *e = xmpp_stanza_get_child_by_name(st, "error");

	for (xmpp_stanza_t *c = e ? xmpp_stanza_get_children(e) : NULL; c;
	     c = xmpp_stanza_get_next(c)) {
		const char *ns = xmpp_stanza_get_ns(c), *name = xmpp_stanza_get_name(c);

		if (ns && name && strcmp(ns, NS_STANZAS) == 0 && strcmp(name, "text") != 0)
			return name;
	}
	return "";
}

static int user_message(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
	xmpp_ctx_t *ctx = xmpp_conn_get_context(conn);
	const char *type = xmpp_stanza_get_type(st);
	char *body;

	(void)ud;
	if (type && strcmp(type, "error") == 0) {
		S.bounced = true;
		copy(S.bounce_condition, sizeof(S.bounce_condition), condition_of(st));
		copy(S.bounce_from, sizeof(S.bounce_from), xmpp_stanza_get_from(st));
		return 1;
	}
	if ((body = xmpp_message_get_body(st))) {
		copy(S.echo_body, sizeof(S.echo_body), body);
		S.echoed = true;
		xmpp_free(ctx, body);
	}
	return 1;
}

static int user_disco(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
	xmpp_stanza_t *q = xmpp_stanza_get_child_by_ns(st, NS_DISCO_INFO);
	xmpp_stanza_t *idn = q ? xmpp_stanza_get_child_by_name(q, "identity") : NULL;
	const char *type = xmpp_stanza_get_type(st);

	(void)conn;
	(void)ud;
	snprintf(S.disco_identity, sizeof(S.disco_identity), "type=%s name=%s",
		 type ? type : "-", idn && xmpp_stanza_get_attribute(idn, "name") ?
		 xmpp_stanza_get_attribute(idn, "name") : "-");
	S.disco_answered = true;
	return 0;
}

static void user_conn(xmpp_conn_t *conn, xmpp_conn_event_t ev, int error,
		      xmpp_stream_error_t *se, void *ud)
{
	(void)error;
	(void)se;
	(void)ud;
	if (ev == XMPP_CONN_CONNECT) {
		copy(S.user_jid, sizeof(S.user_jid), xmpp_conn_get_bound_jid(conn));
		xmpp_handler_add(conn, user_message, NULL, "message", NULL, NULL);
		S.user_up = true;
		return;
	}
	S.user_down = true;
}

static void send_message(xmpp_conn_t *conn, const char *to, const char *id, const char *body)
{
	xmpp_stanza_t *m = xmpp_message_new(xmpp_conn_get_context(conn), "chat", to, id);

	xmpp_message_set_body(m, body);
	xmpp_send(conn, m);
	xmpp_stanza_release(m);
}

static void send_iq(xmpp_conn_t *conn, const char *from, const char *to, const char *id,
		    const char *name, const char *ns)
{
	xmpp_ctx_t *ctx = xmpp_conn_get_context(conn);
	xmpp_stanza_t *iq = xmpp_iq_new(ctx, "get", id), *q = xmpp_stanza_new(ctx);

	if (from)
		xmpp_stanza_set_from(iq, from);
	xmpp_stanza_set_to(iq, to);
	xmpp_stanza_set_name(q, name);
	xmpp_stanza_set_ns(q, ns);
	xmpp_stanza_add_child(iq, q);
	xmpp_stanza_release(q);
	xmpp_send(conn, iq);
	xmpp_stanza_release(iq);
}

int main(int argc, char **argv)
{
	xmpp_log_t log = { on_log, NULL };
	xmpp_ctx_t *ctx;
	xmpp_conn_t *comp, *user;
	char jid[512], echo[600];
	const char *t = getenv("PARLEY_TEST_TIMEOUT_MS");
	bool ok;

	if (argc != 8) {
		fprintf(stderr, "usage: component_test C2S_PORT COMPONENT_PORT HOST USER PASS "
			"DOMAIN SECRET\n");
		return 2;
	}
	E.c2s = atoi(argv[1]);
	E.comp = atoi(argv[2]);
	E.host = argv[3];
	E.user = argv[4];
	E.pass = argv[5];
	E.domain = argv[6];
	E.secret = argv[7];
	E.timeout_ms = t && atol(t) > 0 ? atol(t) : 5000;
	snprintf(echo, sizeof(echo), "echo@%s", E.domain);

	xmpp_initialize();
	ctx = xmpp_ctx_new(NULL, &log);
	comp = xmpp_conn_new(ctx);
	user = xmpp_conn_new(ctx);

	/* The component: its domain as the JID, the secret as the password. */
	prime(ctx, comp);
	xmpp_conn_set_jid(comp, E.domain);
	xmpp_conn_set_pass(comp, E.secret);
	xmpp_handler_add(comp, comp_message, NULL, "message", NULL, NULL);
	xmpp_handler_add(comp, comp_iq, NULL, "iq", NULL, NULL);
	ok = xmpp_connect_component(comp, "127.0.0.1", (unsigned short)E.comp, comp_conn,
				    NULL) == XMPP_EOK && wait_for(ctx, &S.comp_up);
	report("the component connects and completes the handshake (libstrophe)", ok,
	       "comp_up=%d %s", S.comp_up, S.comp_error);
	if (!ok)
		goto out;

	snprintf(jid, sizeof(jid), "%s@%s/strophe", E.user, E.host);
	xmpp_conn_set_flags(user, XMPP_CONN_FLAG_DISABLE_TLS | XMPP_CONN_FLAG_DISABLE_SM);
	xmpp_conn_set_jid(user, jid);
	xmpp_conn_set_pass(user, E.pass);
	ok = xmpp_connect_client(user, "127.0.0.1", (unsigned short)E.c2s, user_conn, NULL)
	     == XMPP_EOK && wait_for(ctx, &S.user_up);
	report("the user logs in over c2s", ok, "user_up=%d", S.user_up);
	if (!ok)
		goto out;

	send_message(user, echo, "m1", "hello");
	ok = wait_for(ctx, &S.echoed) && strcmp(S.echo_body, "echo: hello") == 0;
	report("a user's message to echo@DOMAIN reaches the component, and its answer the user",
	       ok, "echoed=%d body '%s'", S.echoed, S.echo_body);
	report("the component sees the user's full JID as 'from'",
	       strcmp(S.seen_from, S.user_jid) == 0, "from '%s', the user is '%s'", S.seen_from,
	       S.user_jid);

	xmpp_id_handler_add(user, user_disco, "d1", NULL);
	send_iq(user, NULL, E.domain, "d1", "query", NS_DISCO_INFO);
	ok = wait_for(ctx, &S.disco_answered) &&
	     strcmp(S.disco_identity, "type=result name=Echo bot") == 0;
	report("disco#info to the component's domain is answered by the component", ok,
	       "answered=%d %s", S.disco_answered, S.disco_identity);

	send_iq(comp, E.domain, E.host, "comp-ping", "ping", NS_PING);
	ok = wait_for(ctx, &S.pong) && strcmp(S.pong_type, "result") == 0;
	report("the component's ping of the host (from its domain) is answered", ok,
	       "pong=%d type '%s'", S.pong, S.pong_type);

	xmpp_disconnect(comp);
	ok = wait_for(ctx, &S.comp_down);
	report("the component disconnects", ok, "comp_down=%d", S.comp_down);

	/* Until the server has read the component's </stream:stream>, a message
	 * may still go to the closing connection and be lost with it (XEP-0114
	 * has no acks): send again until one is bounced. */
	for (int i = 0; i < 20 && !S.bounced; i++) {
		long long until = now_ms() + E.timeout_ms / 10;
		char id[32];

		snprintf(id, sizeof(id), "gone%d", i);
		send_message(user, echo, id, "anyone there?");
		while (!S.bounced && now_ms() < until)
			xmpp_run_once(ctx, 20);
	}
	ok = S.bounced && strcmp(S.bounce_condition, "service-unavailable") == 0 &&
	     strcmp(S.bounce_from, echo) == 0;
	report("a message to the disconnected component comes back <service-unavailable/>", ok,
	       "bounced=%d condition '%s' from '%s'", S.bounced, S.bounce_condition,
	       S.bounce_from);

	xmpp_disconnect(user);
	wait_for(ctx, &S.user_down);
out:
	if (S.comp_up && !S.comp_down) {
		xmpp_disconnect(comp);
		wait_for(ctx, &S.comp_down);
	}
	if (S.user_up && !S.user_down) {
		xmpp_disconnect(user);
		wait_for(ctx, &S.user_down);
	}
	xmpp_conn_release(comp);
	xmpp_conn_release(user);
	xmpp_ctx_free(ctx);
	xmpp_shutdown();
	return failures ? 1 : 0;
}

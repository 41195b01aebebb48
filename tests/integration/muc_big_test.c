/*
 * muc_big_test.c - a room of 1,024 occupants (mod_muc) against a running
 * parleyd: every occupant joins (the presence flood of §7.2.3 with it), then
 * 100 groupchat messages sent back to back from occupants picked at random
 * must reach every occupant exactly once, in the room's order (the same for
 * all, and each sender's in the order it sent them), while one occupant with
 * a small receive buffer reads nothing: it holds up nobody, and when it reads
 * at last it gets everything too. Prints TAP lines without numbers;
 * muc_big.test adds the plan.
 *
 * Accounts b1..bN are made here by in-band registration (XEP-0077, one
 * connection each), faster than N runs of parleyctl. The test holds N + a few
 * sockets: it raises its own open-file limit.
 *
 * Env: PARLEY_HOST, PARLEY_PORT (a tls="none" c2s listener), PARLEY_PASS,
 * PARLEY_MUC (conference.HOST unless set), PARLEY_USERS (1024 unless set),
 * PARLEY_TEST_TIMEOUT_MS (how long to wait for each expected stanza).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "xmpptest.h"

#define NS_MUC		"http://jabber.org/protocol/muc"
#define NS_MUC_USER	NS_MUC "#user"
#define NS_MUC_OWNER	NS_MUC "#owner"
#define USERS_MAX	1024
#define MSGS		100
#define SLOW		2	/* the occupant that does not read */
#define SLOW_RCVBUF	4096

static const char *host, *muc, *pass;
static int port, users = USERS_MAX, wait_ms = XT_DEFAULT_TIMEOUT_MS;
static struct xt *c[USERS_MAX + 1];
static char room[320];
static int order[USERS_MAX + 1][MSGS];	/* message numbers in the order each got them */
static int got[USERS_MAX + 1];
static int sender_of[MSGS];

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static bool eq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* XEP-0077 §3.1 on a fresh stream; an account left by an earlier run is fine. */
static bool register_user(int i, char *err, size_t errlen)
{
	char payload[512];
	struct xt *r = xt_connect("127.0.0.1", port, NULL, err, errlen);
	struct xt_node *n;
	bool ok;

	if (!r)
		return false;
	if (xt_open_stream(r, host) < 0) {
		snprintf(err, errlen, "stream: %s", xt_err(r));
		xt_free(r);
		return false;
	}
	snprintf(payload, sizeof(payload), "<query xmlns='" XT_NS_REGISTER "'><username>b%d"
		 "</username><password>%s</password></query>", i, pass);
	n = xt_iq(r, "set", NULL, payload);
	ok = n && (eq(xt_attr(n, "type"), "result") ||
		   eq(xt_condition(xt_stanza_error(n), XT_NS_STANZA_ERR), "conflict"));
	if (!ok)
		snprintf(err, errlen, "register b%d: %s", i, n ? xt_raw(n) : xt_err(r));
	xt_sendf(r, "</stream:stream>");
	xt_free(r);
	return ok;
}

/* Whether a presence's muc#user <x/> carries this status code. */
static bool has_code(const struct xt_node *n, const char *code)
{
	const struct xt_node *x = xt_child(n, NS_MUC_USER, "x");

	for (const struct xt_node *s = x ? x->children : NULL; s; s = s->next)
		if (eq(s->name, "status") && eq(xt_attr(s, "code"), code))
			return true;
	return false;
}

/* Joins as "o<i>" and reads up to the own presence (110): the others'
 * presence before it is the flood. */
static bool join(int i, bool *created, char *err, size_t errlen)
{
	char occupant[400];
	struct xt_node *n;

	snprintf(occupant, sizeof(occupant), "%s/o%d", room, i);
	xt_sendf(c[i], "<presence to='%s'><x xmlns='" NS_MUC "'><history maxstanzas='0'/>"
		 "</x></presence>", occupant);
	while ((n = xt_read(c[i]))) {
		if (!eq(n->name, "presence") || !eq(xt_attr(n, "from"), occupant))
			continue;
		if (eq(xt_attr(n, "type"), "error") || !has_code(n, "110"))
			break;
		if (created)
			*created = has_code(n, "201");
		return true;
	}
	snprintf(err, errlen, "o%d: %s", i, n ? xt_raw(n) : xt_err(c[i]));
	return false;
}

/* Reads until the answer to a ping: what the server sent until now is gone. */
static bool drain(int i)
{
	struct xt_node *n = xt_iq(c[i], "get", host, "<ping xmlns='" XT_NS_PING "'/>");

	return n && eq(xt_attr(n, "type"), "result");
}

/* The groupchat messages of the room that reach occupant i, their numbers in
 * order[i], until MSGS came or nothing more does. */
static void collect(int i, int ms)
{
	struct xt_node *n;

	while (got[i] < MSGS && (n = xt_read_ms(c[i], ms))) {
		const struct xt_node *body = xt_child(n, NULL, "body");
		const char *from = xt_attr(n, "from");
		int k;

		if (!eq(n->name, "message") || !eq(xt_attr(n, "type"), "groupchat") || !body ||
		    !from || strncmp(from, room, strlen(room)) != 0 || !body->text ||
		    sscanf(body->text, "big %d", &k) != 1 || k < 0 || k >= MSGS)
			continue;
		order[i][got[i]++] = k;
	}
}

/* "" when occupant i got each message once, in the order of ref; else why. */
static const char *check_order(int i, const int *ref, char *why, size_t len)
{
	bool seen[MSGS] = { false };

	why[0] = '\0';
	for (int j = 0; j < got[i]; j++) {
		if (seen[order[i][j]]) {
			snprintf(why, len, "o%d got message %d twice", i, order[i][j]);
			return why;
		}
		seen[order[i][j]] = true;
	}
	if (got[i] != MSGS) {
		snprintf(why, len, "o%d got %d of %d messages (the connection: %s, %s)", i,
			 got[i], MSGS, xt_status_name(xt_status(c[i])), xt_err(c[i]));
		return why;
	}
	for (int j = 0; ref && j < MSGS; j++) {
		if (order[i][j] != ref[j]) {
			snprintf(why, len, "o%d: message %d of the room's order is %d, o1 got %d "
				 "there", i, j, order[i][j], ref[j]);
			return why;
		}
	}
	return why;
}

int main(void)
{
	const char *plan_login = "every account (in-band registration) logs in";
	const char *plan_join = "every occupant joins the room (its own presence, 110, after "
				"the others'; the first creates it: 201)";
	const char *plan_once = "100 messages from random occupants reach every occupant but "
				"the slow one exactly once, within the timeout";
	const char *plan_order = "... in the room's order: the same for every occupant, and "
				 "each sender's in the order it sent them";
	const char *plan_slow = "the slow occupant (4 KB receive buffer, reading nothing "
				"meanwhile) is still connected and then gets the 100 too, in "
				"the room's order";
	struct rlimit rl;
	char err[1024], why[512];
	double t0, t1;
	bool ok, created = false;
	int fails, last_sent[USERS_MAX + 1];
	uint32_t seed = 0x2545f491u;

	host = getenv("PARLEY_HOST");
	pass = getenv("PARLEY_PASS");
	muc = getenv("PARLEY_MUC");
	port = getenv("PARLEY_PORT") ? atoi(getenv("PARLEY_PORT")) : 0;
	if (!host || !pass || port <= 0) {
		printf("not ok - environment\n# PARLEY_HOST, PARLEY_PORT, PARLEY_PASS\n");
		return 1;
	}
	if (getenv("PARLEY_USERS"))
		users = atoi(getenv("PARLEY_USERS"));
	if (users < 3 || users > USERS_MAX)
		users = USERS_MAX;
	if (getenv("PARLEY_TEST_TIMEOUT_MS"))
		wait_ms = atoi(getenv("PARLEY_TEST_TIMEOUT_MS"));
	if (wait_ms <= 0)
		wait_ms = XT_DEFAULT_TIMEOUT_MS;
	xt_set_default_timeout(wait_ms);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	snprintf(room, sizeof(room), "big@%s", muc ? muc : "");
	if (!muc)
		snprintf(room, sizeof(room), "big@conference.%s", host);

	/* ---- accounts and sessions ---- */
	t0 = now_s();
	ok = true;
	for (int i = 1; i <= users && ok; i++) {
		char user[16];

		snprintf(user, sizeof(user), "b%d", i);
		ok = register_user(i, err, sizeof(err)) &&
		     (c[i] = xt_login("127.0.0.1", port, XT_TCP, host, user, pass, NULL, "r",
				      NULL, err, sizeof(err)));
	}
	t1 = now_s();
	xt_report(plan_login, ok, "%s", ok ? "" : err);
	printf("# %d accounts registered and logged in in %.1f s\n", users, t1 - t0);
	if (!ok) {
		xt_report(plan_join, false, "set-up failed");
		xt_report(plan_once, false, "set-up failed");
		xt_report(plan_order, false, "set-up failed");
		xt_report(plan_slow, false, "set-up failed");
		return 1;
	}

	/* ---- joins: the first creates the room (an instant room, §10.1.2) ---- */
	t0 = now_s();
	ok = join(1, &created, err, sizeof(err));
	if (ok && created) {
		struct xt_node *n = xt_iq(c[1], "set", room, "<query xmlns='" NS_MUC_OWNER "'><x "
					  "xmlns='jabber:x:data' type='submit'/></query>");

		ok = n && eq(xt_attr(n, "type"), "result");
		if (!ok)
			snprintf(err, sizeof(err), "instant room: %s", n ? xt_raw(n) : "nothing");
	}
	if (ok && c[SLOW])
		xt_set_rcvbuf(c[SLOW], SLOW_RCVBUF);
	for (int i = 2; i <= users && ok; i++)
		ok = join(i, NULL, err, sizeof(err));
	t1 = now_s();
	xt_report(plan_join, ok && created, "%s%s", created ? "" : "no 201 for the first; ",
		  ok ? "" : err);
	printf("# %d joins in %.1f s\n", users, t1 - t0);
	/* What the flood left unread, except at the slow one. */
	for (int i = 1; i <= users && ok; i++)
		if (i != SLOW && !drain(i)) {
			ok = false;
			snprintf(err, sizeof(err), "o%d: no ping answer after the joins: %s", i,
				 xt_err(c[i]));
		}
	if (!ok) {
		xt_report(plan_once, false, "set-up: %s", err);
		xt_report(plan_order, false, "set-up failed");
		xt_report(plan_slow, false, "set-up failed");
		return 1;
	}

	/* ---- 100 messages, back to back, from occupants picked at random ---- */
	t0 = now_s();
	for (int k = 0; k < MSGS; k++) {
		int i;

		do {
			seed = seed * 1103515245u + 12345u;
			i = 1 + (int)((seed >> 8) % (uint32_t)users);
		} while (i == SLOW);
		sender_of[k] = i;
		xt_sendf(c[i], "<message to='%s' type='groupchat'><body>big %d from o%d</body>"
			 "</message>", room, k, i);
	}
	for (int i = 1; i <= users; i++)
		if (i != SLOW)
			collect(i, wait_ms);
	t1 = now_s();
	printf("# %d deliveries read in %.2f s\n", MSGS * (users - 1), t1 - t0);

	fails = 0;
	why[0] = '\0';
	for (int i = 1; i <= users; i++) {
		char w[256];

		if (i == SLOW || !*check_order(i, NULL, w, sizeof(w)))
			continue;
		if (!fails++)
			snprintf(why, sizeof(why), "%s", w);
	}
	xt_report(plan_once, fails == 0, "%d occupants short; first: %s", fails, why);

	/* The room's order, o1's, keeps each sender's order; everyone has it. */
	fails = 0;
	why[0] = '\0';
	memset(last_sent, -1, sizeof(last_sent));
	for (int j = 0; j < got[1]; j++) {
		int k = order[1][j], s = sender_of[k];

		if (last_sent[s] > k && !fails++)
			snprintf(why, sizeof(why), "o%d's message %d came after its %d", s, k,
				 last_sent[s]);
		last_sent[s] = k;
	}
	for (int i = 2; i <= users; i++) {
		char w[256];

		if (i == SLOW || !*check_order(i, order[1], w, sizeof(w)))
			continue;
		if (!fails++)
			snprintf(why, sizeof(why), "%s", w);
	}
	xt_report(plan_order, fails == 0 && got[1] == MSGS, "%d occupants out of order; first: "
		  "%s", fails, why);

	/* ---- the slow one reads at last: the flood, then the messages ----
	 * Each read may wait longer: after a long zero window the kernel's
	 * retransmissions to a 4 KB buffer have backed off (seconds). */
	collect(SLOW, 4 * wait_ms);
	check_order(SLOW, order[1], why, sizeof(why));
	xt_report(plan_slow, !*why, "%s", why);

	for (int i = 1; i <= users; i++) {
		if (c[i])
			xt_sendf(c[i], "</stream:stream>");
		xt_free(c[i]);
	}
	return xt_failures ? 1 : 0;
}

/*
 * auth.c - SASL authentication of a c2s stream against the users table.
 *
 * Drives a sasl_session through its steps: credentials come from PostgreSQL,
 * PLAIN's PBKDF2 runs on a worker thread, and everything else is answered at
 * once. Failures are counted per address in a fixed table: beyond half of the
 * allowed attempts per minute each failure is answered a second late (slowing
 * a guesser without touching anyone else), beyond all of them the address is
 * refused until the minute is over.
 */
#include "auth.h"

#include <event2/event.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base64.h"
#include "db.h"
#include "jid.h"
#include "log.h"
#include "sasl.h"
#include "server.h"
#include "tls.h"
#include "stanza.h"
#include "users.h"
#include "worker.h"

#define FAIL_SLOTS 1024		/* addresses whose failures are remembered */
#define FAIL_WINDOW 60		/* seconds */
#define SECRET_LEN 32

struct auth {
	char *host, *peer;
	SSL *ssl;
	enum tls_mode mode;
	struct sasl_session *s;
	char user[JID_PART_MAX + 1];	/* the prepared localpart */
	auth_cb cb;
	void *arg;
	bool busy;			/* a query or worker job holds the auth */
	bool orphaned;			/* freed by its owner while busy */
	struct event *delay;		/* a failure answered late */
	char *delayed_xml;
	enum auth_result delayed_result;
};

struct fail_slot {
	char peer[64];
	time_t window;
	unsigned count;
};

static struct fail_slot fails[FAIL_SLOTS];
static unsigned char secret[SECRET_LEN];
static bool have_secret;

/* ---- the shared secret for unknown users' salts ---- */

int auth_load_secret(PGconn *conn, char *err, size_t errlen)
{
	if (db_shared_secret(conn, "sasl_fake_salt_key", secret, sizeof(secret), err,
			     errlen) < 0)
		return -1;
	have_secret = true;
	return 0;
}

/* ---- per-address failures ---- */

static struct fail_slot *fail_find(const char *peer, bool create)
{
	struct fail_slot *oldest = &fails[0];
	time_t now = time(NULL);

	for (size_t i = 0; i < FAIL_SLOTS; i++) {
		if (strcmp(fails[i].peer, peer) == 0) {
			if (now - fails[i].window >= FAIL_WINDOW) {
				fails[i].window = now;
				fails[i].count = 0;
			}
			return &fails[i];
		}
		if (fails[i].window < oldest->window)
			oldest = &fails[i];
	}
	if (!create)
		return NULL;
	snprintf(oldest->peer, sizeof(oldest->peer), "%s", peer);
	oldest->window = now;
	oldest->count = 0;
	return oldest;
}

static bool refused(const char *peer)
{
	struct fail_slot *f = fail_find(peer, false);

	return f && f->count >= server.cfg->limits.auth_attempts;
}

/* ---- answering ---- */

static void finish(struct auth *a, enum auth_result r, const char *xml)
{
	auth_cb cb = a->cb;
	void *arg = a->arg;

	a->cb = NULL;
	/* Last thing: the owner may free the auth in its callback. */
	if (cb)
		cb(arg, r, xml, a->user);
}

static void on_delay(evutil_socket_t fd, short what, void *arg)
{
	struct auth *a = arg;
	char *xml = a->delayed_xml;

	a->delayed_xml = NULL;
	finish(a, a->delayed_result, xml);
	free(xml);
}

static void fail(struct auth *a, const char *condition, const char *log_text)
{
	struct fail_slot *f = fail_find(a->peer, true);
	unsigned limit = server.cfg->limits.auth_attempts;
	enum auth_result r = AUTH_FAILURE;
	char xml[256];

	log_info("auth", "%s: authentication of %s@%s failed: %s (%s)", a->peer,
		 *a->user ? a->user : "?", a->host, condition, log_text ? log_text : "");
	snprintf(xml, sizeof(xml), "<failure xmlns='" NS_SASL "'><%s/></failure>", condition);
	if (f)
		f->count++;
	if (f && f->count >= limit) {
		r = AUTH_REFUSED;
		log_warn("auth", "%s: %u failed authentications within a minute: refused",
			 a->peer, f->count);
	}
	if (f && f->count > limit / 2 && r == AUTH_FAILURE) {
		struct timeval second = { 1, 0 };

		a->delayed_xml = strdup(xml);
		a->delayed_result = r;
		if (!a->delay)
			a->delay = evtimer_new(server.base, on_delay, a);
		if (a->delayed_xml && a->delay && evtimer_add(a->delay, &second) == 0)
			return;
		free(a->delayed_xml);
		a->delayed_xml = NULL;
	}
	finish(a, r, xml);
}

static void drive(struct auth *a, enum sasl_status st);

static void on_creds(void *arg, enum users_status st, const char *sha1, const char *sha256)
{
	struct auth *a = arg;
	struct scram_cred cred;
	enum scram_hash h;
	bool have = false;

	a->busy = false;
	if (a->orphaned) {
		auth_free(a);
		return;
	}
	if (st == USERS_ERROR) {
		/* The database is down: not the client's fault (RFC 6120 §6.5.12). */
		finish(a, AUTH_FAILURE, "<failure xmlns='" NS_SASL "'><temporary-auth-failure/>"
		       "</failure>");
		return;
	}
	if (st == USERS_OK) {
		h = sasl_cred_hash(a->s);
		have = scram_cred_decode(h, h == SCRAM_SHA_1 ? sha1 : sha256, &cred) == 0;
	}
	drive(a, sasl_set_credentials(a->s, have ? &cred : NULL));
	memset(&cred, 0, sizeof(cred));
}

static void work(void *arg)
{
	struct auth *a = arg;

	sasl_work(a->s);
}

static void work_done(void *arg)
{
	struct auth *a = arg;

	a->busy = false;
	if (a->orphaned) {
		auth_free(a);
		return;
	}
	drive(a, sasl_finish(a->s));
}

static void success(struct auth *a)
{
	const char *authzid = sasl_authzid(a->s);
	char *b64, *xml;

	if (authzid) {
		struct jid *z = jid_new(authzid, NULL);
		bool ok = z && !z->resource && z->local && strcmp(z->local, a->user) == 0 &&
			strcmp(z->domain, a->host) == 0;

		jid_free(z);
		if (!ok) {
			fail(a, "invalid-authzid", "the authzid is not the user's bare JID");
			return;
		}
	}
	b64 = sasl_out_base64(a->s);
	if (!b64 || asprintf(&xml, "<success xmlns='" NS_SASL "'>%s</success>", b64) < 0) {
		free(b64);
		fail(a, "temporary-auth-failure", "out of memory");
		return;
	}
	free(b64);
	finish(a, AUTH_SUCCESS, xml);
	free(xml);
}

static void drive(struct auth *a, enum sasl_status st)
{
	const char *name, *err = NULL;
	char *b64, *xml;

	switch (st) {
	case SASL_CHALLENGE:
		b64 = sasl_out_base64(a->s);
		if (!b64 || asprintf(&xml, "<challenge xmlns='" NS_SASL "'>%s</challenge>",
				     b64) < 0) {
			free(b64);
			fail(a, "temporary-auth-failure", "out of memory");
			return;
		}
		free(b64);
		finish(a, AUTH_CONTINUE, xml);
		free(xml);
		return;
	case SASL_NEED_CREDENTIALS:
		name = sasl_username(a->s);
		if (!name || jid_nodeprep(name, a->user, sizeof(a->user), &err) < 0) {
			/* Not a possible account: answered like an unknown one. */
			snprintf(a->user, sizeof(a->user), "%s", "");
			drive(a, sasl_set_credentials(a->s, NULL));
			return;
		}
		a->busy = true;
		if (users_get_creds(a->host, a->user, on_creds, a) < 0) {
			a->busy = false;
			fail(a, "temporary-auth-failure", "cannot query the database");
		}
		return;
	case SASL_NEEDS_WORK:
		a->busy = true;
		if (worker_submit(work, work_done, a) < 0) {
			a->busy = false;
			fail(a, "temporary-auth-failure", "cannot start the password check");
		}
		return;
	case SASL_SUCCESS:
		success(a);
		return;
	case SASL_FAILURE:
		fail(a, sasl_condition(a->s) ? sasl_condition(a->s) : "not-authorized",
		     sasl_text(a->s));
		return;
	}
}

struct auth *auth_new(const char *host, const char *peer, SSL *ssl, enum tls_mode mode)
{
	struct auth *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->host = strdup(host);
	a->peer = strdup(peer);
	a->ssl = ssl;
	a->mode = mode;
	if (!a->host || !a->peer) {
		auth_free(a);
		return NULL;
	}
	return a;
}

void auth_free(struct auth *a)
{
	if (!a)
		return;
	a->cb = NULL;
	if (a->busy) {
		/* The query or job still points here; its callback frees. */
		a->orphaned = true;
		return;
	}
	if (a->delay)
		event_free(a->delay);
	free(a->delayed_xml);
	sasl_free(a->s);
	free(a->host);
	free(a->peer);
	free(a);
}

static int start(struct auth *a, const struct xml_node *el)
{
	const char *mech_name = xml_attr(el, "mechanism");
	unsigned char exporter[32], endpoint[EVP_MAX_MD_SIZE], unique[EVP_MAX_MD_SIZE];
	struct sasl_channel_binding cb[3];
	struct sasl_options opts = { .secret = secret, .secret_len = sizeof(secret),
				     .fake_iterations = USERS_SCRAM_ITERATIONS,
				     .plain_allowed = true, .cb = cb };
	enum sasl_mech mech;
	char *text;
	size_t n;

	if (refused(a->peer)) {
		finish(a, AUTH_REFUSED, "<failure xmlns='" NS_SASL "'><not-authorized/>"
		       "<text xml:lang='en'>too many failed attempts</text></failure>");
		return 0;
	}
	if (!mech_name || sasl_mech_find(mech_name, &mech) < 0) {
		fail(a, "invalid-mechanism", mech_name ? mech_name : "no mechanism");
		return 0;
	}
	opts.tls = a->ssl != NULL;
	if (a->ssl) {
		if ((n = tls_cb_exporter(a->ssl, exporter, sizeof(exporter))) > 0)
			cb[opts.n_cb++] = (struct sasl_channel_binding){ "tls-exporter",
									exporter, n };
		if ((n = tls_cb_server_end_point(a->ssl, endpoint, sizeof(endpoint))) > 0)
			cb[opts.n_cb++] = (struct sasl_channel_binding){
				"tls-server-end-point", endpoint, n };
		if ((n = tls_cb_unique(a->ssl, unique, sizeof(unique))) > 0)
			cb[opts.n_cb++] = (struct sasl_channel_binding){ "tls-unique", unique,
									n };
	}
	if (!have_secret) {
		fail(a, "temporary-auth-failure", "the SASL secret is not loaded");
		return 0;
	}
	a->s = sasl_new(mech, &opts);
	if (!a->s)
		return -1;
	text = xml_text(el);
	if (!text)
		return -1;
	/* An empty <auth/> means no initial response; "=" an empty one. */
	drive(a, sasl_start_base64(a->s, text));
	free(text);
	return 0;
}

int auth_step(struct auth *a, const struct xml_node *el, auth_cb cb, void *arg)
{
	char *text;

	a->cb = cb;
	a->arg = arg;
	if (strcmp(el->name, "abort") == 0) {
		finish(a, AUTH_FAILURE, "<failure xmlns='" NS_SASL "'><aborted/></failure>");
		return 0;
	}
	if (strcmp(el->name, "auth") == 0 && !a->s)
		return start(a, el);
	if (strcmp(el->name, "response") == 0 && a->s) {
		text = xml_text(el);
		if (!text)
			return -1;
		drive(a, sasl_step_base64(a->s, text));
		free(text);
		return 0;
	}
	fail(a, "malformed-request", "unexpected SASL element");
	return 0;
}

void auth_add_mechanisms(struct xml_node *features, SSL *ssl, enum tls_mode mode)
{
	const char *names[SASL_MECH_COUNT];
	size_t n = sasl_offer(ssl != NULL, ssl != NULL, true, names);
	struct xml_node *ms = xml_add_child(features, "mechanisms", NS_SASL), *m;

	for (size_t i = 0; ms && i < n; i++) {
		m = xml_add_child(ms, "mechanism", NULL);
		if (m)
			xml_add_text(m, names[i], strlen(names[i]));
	}
	if (!ssl)
		return;
	/* XEP-0440: which channel-binding types the -PLUS mechanisms accept. */
	ms = xml_add_child(features, "sasl-channel-binding", "urn:xsf:sasl-cb:0");
	for (int i = 0; ms && i < 3; i++) {
		static const char *const types[] = { "tls-exporter", "tls-server-end-point",
						     "tls-unique" };

		/* tls-exporter exists only on TLS 1.3, tls-unique only below it (RFC
		 * 9266); tls-unique is still accepted on 1.3 for older clients. */
		if ((i == 0) != (SSL_version(ssl) >= TLS1_3_VERSION) && i != 1)
			continue;
		m = xml_add_child(ms, "channel-binding", NULL);
		if (m)
			xml_attr_set(m, "type", types[i]);
	}
}

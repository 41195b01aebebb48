/*
 * mod_offline - XEP-0160 offline storage.
 *
 * A message for an account with no available resource is stored in PostgreSQL
 * with a XEP-0203 <delay/>, and delivered, in the order stored, when a session
 * of the account next sends initial presence. A stored message leaves the store
 * only after it was written to the recipient's stream. Each account keeps at
 * most <limits offline-queue> messages (the sender gets <resource-constraint/>
 * past that), and messages older than <limits retention-days> are deleted by a
 * timer on the loop.
 */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "db.h"
#include "log.h"
#include "module.h"
#include "router.h"
#include "server.h"
#include "session.h"
#include "stanza.h"
#include "util.h"

#define NS_OFFLINE "msgoffline"
#define NS_DELAY "urn:xmpp:delay"
#define NS_CHATSTATES "http://jabber.org/protocol/chatstates"
#define FLUSH_BATCH 500		/* messages per flush query; more come in turns */
#define EXPIRY_INTERVAL 3600	/* seconds between retention sweeps */

static const char sql_store[] =
	"INSERT INTO offline (host, username, stanza) SELECT $1, $2, $3 "
	"WHERE (SELECT count(*) FROM offline WHERE host = $1 AND username = $2) < $4";
static const char sql_fetch[] =
	"SELECT id, stanza FROM offline WHERE host = $1 AND username = $2 ORDER BY id LIMIT "
	"500";
static const char sql_delete[] =
	"DELETE FROM offline WHERE host = $1 AND username = $2 AND id = ANY($3::bigint[])";
static const char sql_expire[] =
	"DELETE FROM offline WHERE host = $1 AND created < now() - make_interval(days => $2)";

struct offline_state {
	struct module *m;
	struct event *expiry;
};

static uint64_t affinity_of(const char *s)
{
	return util_hash64(s, strlen(s)) | 1;
}

/* The affinity of an account's bare JID (what stores use, as a->to is bare). */
static uint64_t recipient_affinity(const struct jid *j)
{
	char bare[3 * JID_PART_MAX + 3];

	snprintf(bare, sizeof(bare), "%.*s", (int)j->bare_len, j->full);
	return affinity_of(bare);
}

/* ---- storing ---- */

struct store_req {
	struct xml_node *original;	/* for an error back to the sender */
};

static void on_stored(void *arg, const PGresult *res, const char *err)
{
	struct store_req *q = arg;
	struct xml_node *e = NULL;

	if (res && PQresultStatus(res) == PGRES_COMMAND_OK) {
		if (atoi(PQcmdTuples((PGresult *)res)) == 0)
			e = stanza_error_reply(q->original, "wait", "resource-constraint",
					       "the recipient's offline storage is full");
	} else {
		const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

		/* 23503: no such account (the foreign key): as RFC 6121 §8.5.2. */
		if (state && strcmp(state, "23503") == 0)
			e = stanza_error_reply(q->original, NULL, "service-unavailable", NULL);
		else {
			log_error("offline", "cannot store a message: %s",
				  res ? PQresultErrorMessage(res) : err);
			e = stanza_error_reply(q->original, NULL, "internal-server-error",
					       "the message could not be stored");
		}
	}
	if (e)
		router_route(e);
	xml_unref(q->original);
	free(q);
}

/* XEP-0160 §3: what is worth keeping. A message with only a chat state
 * (typing...) means nothing later. */
static bool worth_storing(const struct xml_node *st)
{
	for (const struct xml_node *c = st->children; c; c = c->next) {
		if (c->type != XML_ELEMENT)
			continue;
		/* The server's own stanza-id says nothing about the content. */
		if (c->ns && (!strcmp(c->ns, NS_CHATSTATES) || !strcmp(c->ns, "urn:xmpp:sid:0")))
			continue;
		return true;
	}
	return false;
}

static int on_offline(struct module *m, struct hook_args *a)
{
	const char *type = xml_attr(a->stanza, "type");
	struct xml_node *copy, *delay;
	struct store_req *q;
	char stamp[32], limit[16], *text;
	time_t now = time(NULL);
	struct tm tm;
	const char *params[4];

	if (type && strcmp(type, "chat") && strcmp(type, "normal"))
		return HOOK_PASS;	/* headline, groupchat, error: not stored */
	if (!worth_storing(a->stanza))
		return HOOK_STOP;	/* dropped silently */
	copy = xml_copy(a->stanza);
	delay = copy ? xml_add_child(copy, "delay", NS_DELAY) : NULL;
	q = delay ? calloc(1, sizeof(*q)) : NULL;
	if (!q) {
		xml_unref(copy);
		return HOOK_PASS;
	}
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	xml_attr_set(delay, "from", a->to->domain);
	xml_attr_set(delay, "stamp", stamp);
	xml_attr_set(copy, "to", a->to->full);
	text = xml_to_string(copy, NULL);
	xml_unref(copy);
	if (!text) {
		free(q);
		return HOOK_PASS;
	}
	snprintf(limit, sizeof(limit), "%u", server.cfg->limits.offline_queue);
	params[0] = a->to->domain;
	params[1] = a->to->local;
	params[2] = text;
	params[3] = limit;
	q->original = xml_ref(a->stanza);
	/* Everything about one recipient's store goes through one connection: the
	 * messages commit in the order they came, and a flush never overtakes a
	 * store queued before it (the message would wait for the next login). */
	if (db_exec_prepared(server.db, recipient_affinity(a->to), "offline_store", 4, params,
			     on_stored, q) < 0) {
		xml_unref(q->original);
		free(q);
		free(text);
		return HOOK_PASS;
	}
	free(text);
	return HOOK_STOP;
}

/* ---- delivering ---- */

struct flush_req {
	struct jid *jid;	/* the session's full JID */
};

static void flush(struct jid *jid);

static void on_fetched(void *arg, const PGresult *res, const char *err)
{
	struct flush_req *q = arg;
	struct session *s = sm_find(q->jid);
	/* The ids delivered, exactly: a message stored concurrently with a smaller
	 * id that this query did not see must not be deleted with them. */
	char *ids = NULL;
	size_t len = 0;
	FILE *idf = open_memstream(&ids, &len);
	int n = 0;

	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_error("offline", "%s: cannot read stored messages: %s", q->jid->full,
			  res ? PQresultErrorMessage(res) : err);
		goto out;
	}
	/* The session left meanwhile: the messages stay for the next one. */
	for (int i = 0; s && i < PQntuples(res); i++) {
		char e[64];
		const char *text = PQgetvalue(res, i, 1);
		struct xml_node *st = xml_parse(text, strlen(text), e, sizeof(e));

		if (idf)
			fprintf(idf, "%s%s", n ? "," : "{", PQgetvalue(res, i, 0));
		n++;
		if (!st) {
			log_error("offline", "a stored message does not parse (%s): dropped", e);
			continue;
		}
		session_send(s, st);
		xml_unref(st);
	}
	if (idf) {
		if (n)
			fputc('}', idf);
		fclose(idf);
		idf = NULL;
	}
	if (n && ids) {
		const char *params[3] = { q->jid->domain, q->jid->local, ids };

		log_info("offline", "%s: delivered %d stored message%s", q->jid->full, n,
			 n == 1 ? "" : "s");
		/* Written to the stream: now they may leave the store. */
		db_exec_prepared(server.db, recipient_affinity(q->jid), "offline_delete", 3,
				 params, NULL, NULL);
		if (n == FLUSH_BATCH) {
			flush(q->jid);
			q->jid = NULL;
		}
	}
out:
	if (idf)
		fclose(idf);
	free(ids);
	jid_free(q->jid);
	free(q);
}

static void flush(struct jid *jid)
{
	struct flush_req *q = calloc(1, sizeof(*q));
	const char *params[2] = { jid->domain, jid->local };

	if (!q) {
		jid_free(jid);
		return;
	}
	q->jid = jid;
	/* Same connection as the stores and deletes of this account: a second
	 * batch never sees what the first one delivered. */
	if (db_exec_prepared(server.db, recipient_affinity(jid), "offline_fetch", 2, params,
			     on_fetched, q) < 0) {
		jid_free(jid);
		free(q);
	}
}

static int on_user_send(struct module *m, struct hook_args *a)
{
	struct jid *j;

	/* Initial presence (RFC 6121 §4.2): the session becomes available now. */
	if (!a->sess || a->to || stanza_kind(a->stanza) != STANZA_PRESENCE ||
	    xml_attr(a->stanza, "type") || session_available(a->sess))
		return HOOK_PASS;
	j = jid_copy(session_jid(a->sess));
	if (j)
		flush(j);
	return HOOK_PASS;
}

/* ---- retention ---- */

static void on_expired(void *arg, const PGresult *res, const char *err)
{
	struct offline_state *st = arg;
	const char *n = res && PQresultStatus(res) == PGRES_COMMAND_OK ?
		PQcmdTuples((PGresult *)res) : NULL;

	if (n && atoi(n) > 0)
		log_info("offline", "%s: %s stored message%s older than %u days deleted",
			 module_host(st->m), n, atoi(n) == 1 ? "" : "s",
			 server.cfg->limits.retention_days);
}

static void on_expiry_timer(evutil_socket_t fd, short what, void *arg)
{
	struct offline_state *st = arg;
	char days[16];
	const char *params[2] = { module_host(st->m), days };

	snprintf(days, sizeof(days), "%u", server.cfg->limits.retention_days);
	db_exec_prepared(server.db, 0, "offline_expire", 2, params, on_expired, st);
}

static void state_free(void *p)
{
	struct offline_state *st = p;

	if (st->expiry)
		event_free(st->expiry);
	free(st);
}

static int load(struct module *m)
{
	struct offline_state *st = calloc(1, sizeof(*st));
	struct timeval every = { EXPIRY_INTERVAL, 0 };

	if (!st)
		return -1;
	st->m = m;
	module_set_data(m, st, state_free);
	if (db_prepare(server.db, "offline_store", sql_store, 4) < 0 ||
	    db_prepare(server.db, "offline_fetch", sql_fetch, 2) < 0 ||
	    db_prepare(server.db, "offline_delete", sql_delete, 3) < 0 ||
	    db_prepare(server.db, "offline_expire", sql_expire, 2) < 0)
		return -1;
	st->expiry = event_new(server.base, -1, EV_PERSIST, on_expiry_timer, st);
	if (!st->expiry || event_add(st->expiry, &every) < 0)
		return -1;
	event_active(st->expiry, EV_TIMEOUT, 0);	/* a first sweep at start-up */
	module_feature(m, NS_OFFLINE);
	module_hook(m, HOOK_OFFLINE_MESSAGE, 0, on_offline);
	module_hook(m, HOOK_USER_SEND, 100, on_user_send);
	return 0;
}

PARLEY_MODULE(offline,
	.description = "XEP-0160: messages for offline users are stored and delivered later",
	.load = load);

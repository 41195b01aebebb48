/*
 * mod_offline - XEP-0160 offline storage.
 *
 * A message for an account with no available resource is stored in PostgreSQL
 * with a XEP-0203 <delay/>, and delivered, in the order stored, when a session
 * of the account next sends initial presence. A stored message leaves the store
 * only once the recipient has it: acked, when its session uses XEP-0198 (the
 * row's delivery is held by mod_stream_mgmt until then), written to its stream
 * otherwise. Each account keeps at most offline-queue messages (the sender gets
 * <resource-constraint/> past that), and messages older than retention-days
 * are deleted by a timer on the loop.
 *
 * A DELETE of delivered rows that fails keeps their ids in this process,
 * skipped by its next flushes and deleted again on the timer until the
 * database takes it: they are not sent again unless parleyd restarts (or
 * another node flushes the account) before that.
 *
 * Stores are group-committed: while one batch INSERT is in flight the next
 * ones gather, and go as one statement (one commit) when it returns. A
 * sender's ack (XEP-0198) waits for the commit through the message's delivery.
 * Everything of one host goes through one pool connection, in order, so a
 * flush never overtakes a store queued before it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "delivery.h"
#include "log.h"
#include "module.h"
#include "router.h"
#include "session.h"
#include "stanza.h"
#include "util.h"

#define NS_OFFLINE "msgoffline"
#define NS_DELAY "urn:xmpp:delay"
#define NS_CHATSTATES "http://jabber.org/protocol/chatstates"
#define FLUSH_BATCH 500		/* messages per flush query; more come in turns */
#define STORE_BATCH 500		/* messages per batch INSERT */
#define STORE_BATCH_BYTES (1u << 20)
#define EXPIRY_INTERVAL 3600	/* seconds between retention sweeps */
#define RETRY_INTERVAL 10	/* seconds between attempts at a failed DELETE */
#define UNDELETED_MAX 100000	/* delivered ids kept while their DELETE fails */

struct options {
	long long queue, retention_days;
};

static const struct module_option options[] = {
	{ "offline-queue", OPT_INT, "1000", 0, 10000000, MODULE_OPTION_AT(struct options, queue),
	  "messages kept per offline account; past it the sender gets resource-constraint" },
	{ "retention-days", OPT_INT, "365", 1, 36500,
	  MODULE_OPTION_AT(struct options, retention_days),
	  "days a stored message is kept before the hourly sweep deletes it" },
	{ NULL },
};

/* One message (the fallback when a batch fails as a whole). The account's
 * count is kept by triggers (schema/005_offline_counts.sql). */
static const char sql_store[] =
	"INSERT INTO offline (host, username, stanza) SELECT $1, $2, $3 "
	"WHERE coalesce((SELECT n FROM offline_counts WHERE host = $1 AND username = $2), 0)"
	" < $4";
/* A batch: per input row (in order) whether the account exists and whether it
 * was stored (within the account's limit, counting the batch's own rows). The
 * rows are inserted in input order, so ids keep the order messages came in.
 * The CTEs are materialized so that each account is looked up once. */
static const char sql_store_batch[] =
	"WITH input AS MATERIALIZED (SELECT t.username, t.stanza, t.ord FROM "
	"unnest($2::text[], $3::text[]) WITH ORDINALITY AS t(username, stanza, ord)), "
	"accounts AS MATERIALIZED (SELECT a.username, u.username IS NOT NULL AS known, "
	"coalesce(c.n, 0) AS queued FROM (SELECT DISTINCT username FROM input) a "
	"LEFT JOIN users u ON u.host = $1 AND u.username = a.username "
	"LEFT JOIN offline_counts c ON c.host = $1 AND c.username = a.username), "
	"numbered AS MATERIALIZED (SELECT i.ord, i.username, i.stanza, c.known, c.queued, "
	"row_number() OVER (PARTITION BY i.username ORDER BY i.ord) AS n "
	"FROM input i JOIN accounts c USING (username)), "
	"ins AS (INSERT INTO offline (host, username, stanza) SELECT $1, username, stanza "
	"FROM numbered WHERE known AND queued + n <= $4 ORDER BY ord RETURNING 1) "
	"SELECT ord, known, known AND queued + n <= $4 FROM numbered ORDER BY ord";
static const char sql_fetch[] =
	"SELECT id, stanza FROM offline WHERE host = $1 AND username = $2 AND id > $3 "
	"ORDER BY id LIMIT 500";
static const char sql_delete[] =
	"DELETE FROM offline WHERE host = $1 AND username = $2 AND id = ANY($3::bigint[])";
static const char sql_expire[] =
	"DELETE FROM offline WHERE host = $1 AND created < now() - make_interval(days => $2)";

struct store_req {
	struct xml_node *original;	/* for an error back to the sender */
	struct delivery *d;		/* the sender's, held until the commit */
	char *user, *text;
	struct offline_state *st;
	struct store_req *next;
};

struct batch {
	struct offline_state *st;
	struct store_req *head, *tail;
	unsigned n;
	size_t bytes;
};

/* Rows delivered whose DELETE failed: still in the table, never sent again. */
struct undeleted {
	char *user;
	long long *ids;
	unsigned n;
	bool retrying;			/* a DELETE for them is in flight */
	struct undeleted *next;
};

struct offline_state {
	struct module *m;
	const struct options *o;
	struct module_timer *expiry, *retry;
	struct undeleted *undeleted;
	unsigned nundeleted;		/* ids in all of them */
	struct batch *gathering;	/* stores waiting for the next batch */
	unsigned in_flight;		/* batches sent, not answered */
	uint64_t affinity;		/* the host's pool connection */
	/* for /metrics */
	unsigned long long n_stored, n_full, n_delivered;
	long long in_store;		/* messages in the table, counted every minute; -1 */
	struct module_timer *count;
};

static uint64_t affinity_of(const char *s)
{
	return util_hash64(s, strlen(s)) | 1;
}

/* ---- storing ---- */

static void store_req_free(struct store_req *q)
{
	delivery_release(q->d, true);
	xml_unref(q->original);
	free(q->user);
	free(q->text);
	free(q);
}

static void bounce(struct store_req *q, const char *type, const char *cond, const char *text)
{
	struct xml_node *e = stanza_error_reply(q->original, type, cond, text);

	if (e)
		router_route(e);
}

/* The single-row fallback's answer. */
static void on_stored(void *arg, const PGresult *res, const char *err)
{
	struct store_req *q = arg;

	if (res && PQresultStatus(res) == PGRES_COMMAND_OK) {
		if (atoi(PQcmdTuples((PGresult *)res)) == 0) {
			q->st->n_full++;
			bounce(q, "wait", "resource-constraint",
			       "the recipient's offline storage is full");
		} else {
			q->st->n_stored++;
		}
	} else {
		const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

		/* 23503: no such account (the foreign key): as RFC 6121 §8.5.2. */
		if (state && strcmp(state, "23503") == 0)
			bounce(q, NULL, "service-unavailable", NULL);
		else {
			log_error("offline", "cannot store a message: %s",
				  res ? PQresultErrorMessage(res) : err);
			bounce(q, NULL, "internal-server-error", "the message could not be stored");
		}
	}
	store_req_free(q);
}

static void store_one(struct offline_state *st, struct store_req *q)
{
	char limit[16];
	const char *params[4] = { module_host(st->m), q->user, q->text, limit };

	snprintf(limit, sizeof(limit), "%lld", st->o->queue);
	if (db_exec_prepared(module_db(st->m), st->affinity, "offline_store", 4, params, on_stored,
			     q) < 0) {
		bounce(q, NULL, "internal-server-error", "the message could not be stored");
		store_req_free(q);
	}
}

static void batch_send(struct offline_state *st);

static void on_batch_stored(void *arg, const PGresult *res, const char *err)
{
	struct batch *b = arg;
	struct offline_state *st = b->st;
	struct store_req *q = b->head, *next;
	int row = 0;

	st->in_flight--;
	if (!res) {
		/* The connection went (or the server stops): nothing was committed. */
		log_error("offline", "%s: %u messages could not be stored: %s",
			  module_host(st->m), b->n, err);
		for (; q; q = next) {
			next = q->next;
			bounce(q, NULL, "internal-server-error", "the message could not be stored");
			store_req_free(q);
		}
	} else if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != (int)b->n) {
		/* One bad row (an account deleted meanwhile) fails them all: each
		 * goes again on its own, in order, and gets its own answer. */
		log_warn("offline", "%s: a batch of %u stores failed (%s): storing them one by "
			 "one", module_host(st->m), b->n, res ? PQresultErrorMessage(res) : err);
		for (; q; q = next) {
			next = q->next;
			store_one(st, q);
		}
	} else {
		for (; q; q = next, row++) {
			next = q->next;
			if (strcmp(PQgetvalue(res, row, 1), "t") != 0)
				bounce(q, NULL, "service-unavailable", NULL);
			else if (strcmp(PQgetvalue(res, row, 2), "t") != 0) {
				st->n_full++;
				bounce(q, "wait", "resource-constraint",
				       "the recipient's offline storage is full");
			} else {
				st->n_stored++;
			}
			store_req_free(q);	/* committed: the sender's ack may go */
		}
	}
	free(b);
	if (st->gathering && !st->in_flight)
		batch_send(st);
}

/* Appends s to a PostgreSQL array literal as a quoted element. */
static void array_add(FILE *f, bool first, const char *s)
{
	fputs(first ? "{\"" : ",\"", f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

static void batch_send(struct offline_state *st)
{
	struct batch *b = st->gathering;
	char *users = NULL, *texts = NULL, limit[16];
	size_t ulen = 0, tlen = 0;
	FILE *uf, *tf;
	bool ok;

	if (!b)
		return;
	st->gathering = NULL;
	uf = open_memstream(&users, &ulen);
	tf = open_memstream(&texts, &tlen);
	ok = uf && tf;
	for (struct store_req *q = b->head; ok && q; q = q->next) {
		array_add(uf, q == b->head, q->user);
		array_add(tf, q == b->head, q->text);
	}
	if (ok) {
		fputc('}', uf);
		fputc('}', tf);
	}
	if (uf)
		fclose(uf);
	if (tf)
		fclose(tf);
	snprintf(limit, sizeof(limit), "%lld", st->o->queue);
	const char *params[4] = { module_host(st->m), users, texts, limit };
	if (ok && users && texts && db_exec_prepared(module_db(st->m), st->affinity,
	    "offline_store_batch", 4, params, on_batch_stored, b) == 0) {
		st->in_flight++;
	} else {
		struct store_req *q = b->head, *next;

		for (; q; q = next) {
			next = q->next;
			bounce(q, NULL, "internal-server-error", "the message could not be stored");
			store_req_free(q);
		}
		free(b);
	}
	free(users);
	free(texts);
}

/* Queues a store: it goes now if no batch is in flight, else with the next. */
static int store(struct offline_state *st, struct store_req *q)
{
	struct batch *b = st->gathering;

	if (!b) {
		b = calloc(1, sizeof(*b));
		if (!b)
			return -1;
		b->st = st;
		st->gathering = b;
	}
	if (b->tail)
		b->tail->next = q;
	else
		b->head = q;
	b->tail = q;
	b->n++;
	b->bytes += strlen(q->text);
	if (!st->in_flight || b->n >= STORE_BATCH || b->bytes >= STORE_BATCH_BYTES)
		batch_send(st);
	return 0;
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
	char stamp[32], *text;
	time_t now = time(NULL);
	struct tm tm;

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
	q->original = xml_ref(a->stanza);
	q->text = text;
	q->st = module_data(m);
	q->user = strdup(a->to->local);
	/* The sender's ack (XEP-0198) waits for the commit. */
	q->d = delivery_ref(delivery_current());
	if (!q->user || store(module_data(m), q) < 0) {
		store_req_free(q);
		return HOOK_PASS;
	}
	return HOOK_STOP;
}

/* ---- delivering ---- */

/*
 * A flush sends up to FLUSH_BATCH stored messages, each with a durable
 * delivery: it completes when the stream took it (no XEP-0198) or when the
 * client acked it. When all of a flush's messages are settled, the delivered
 * ones are deleted in one statement; the others stay for the next login.
 */
struct flush {
	struct offline_state *st;
	struct jid *jid;		/* the session's full JID */
	long long *ids;			/* delivered, to delete */
	unsigned nids, outstanding;
};

struct flushed_row {
	struct flush *f;
	long long id;
};

static void flush_start(struct offline_state *st, struct jid *jid, const char *after);

/* ---- deleting what was delivered ---- */

struct delete_req {
	struct offline_state *st;
	struct undeleted *u;		/* the rows, kept here until the DELETE commits */
};

static bool undeleted_has(const struct offline_state *st, const char *user, long long id)
{
	for (const struct undeleted *u = st->undeleted; u; u = u->next)
		if (strcmp(u->user, user) == 0)
			for (unsigned i = 0; i < u->n; i++)
				if (u->ids[i] == id)
					return true;
	return false;
}

static void undeleted_free(struct undeleted *u)
{
	free(u->user);
	free(u->ids);
	free(u);
}

static void undeleted_drop(struct offline_state *st, struct undeleted *u)
{
	for (struct undeleted **pp = &st->undeleted; *pp; pp = &(*pp)->next) {
		if (*pp == u) {
			*pp = u->next;
			st->nundeleted -= u->n;
			break;
		}
	}
	undeleted_free(u);
}

static void delete_send(struct offline_state *st, struct undeleted *u);

/* HOOK_USER_REMOVED: the cascade took the account's rows; its ids go too. */
static int on_user_removed(struct module *m, struct hook_args *a)
{
	struct offline_state *st = module_data(m);

	for (struct undeleted *u = st->undeleted, *next; u; u = next) {
		next = u->next;
		if (strcmp(u->user, a->user) == 0 && !u->retrying)
			undeleted_drop(st, u);
	}
	return HOOK_PASS;
}

/* The outcome of a DELETE of u's rows (res NULL: it could not be sent). */
static void deleted(struct offline_state *st, struct undeleted *u, const PGresult *res,
		    const char *err)
{
	bool kept = false;

	for (struct undeleted *k = st->undeleted; k; k = k->next)
		kept |= k == u;
	if (res && PQresultStatus(res) == PGRES_COMMAND_OK) {
		if (kept)
			undeleted_drop(st, u);
		else
			undeleted_free(u);
		return;
	}
	log_error("offline", "%s@%s: cannot delete %u delivered message%s (%s): they are not "
		  "sent again, and the delete is retried every %d s", u->user, module_host(st->m),
		  u->n, u->n == 1 ? "" : "s", res ? PQresultErrorMessage(res) : err,
		  RETRY_INTERVAL);
	u->retrying = false;
	if (!kept) {
		if (st->nundeleted + u->n > UNDELETED_MAX) {
			log_error("offline", "%s: too many undeleted messages remembered: these %u "
				  "may be delivered again", module_host(st->m), u->n);
			undeleted_free(u);
			return;
		}
		u->next = st->undeleted;
		st->undeleted = u;
		st->nundeleted += u->n;
	}
	module_timer_start(st->retry, RETRY_INTERVAL * 1000ul, false);
}

static void on_deleted(void *arg, const PGresult *res, const char *err)
{
	struct delete_req *r = arg;
	struct offline_state *st = r->st;
	struct undeleted *u = r->u;

	free(r);
	deleted(st, u, res, err);
}

static void delete_send(struct offline_state *st, struct undeleted *u)
{
	struct delete_req *r = calloc(1, sizeof(*r));
	char *ids = NULL;
	size_t len = 0;
	FILE *idf = open_memstream(&ids, &len);
	const char *params[3] = { module_host(st->m), u->user, NULL };

	if (idf) {
		for (unsigned i = 0; i < u->n; i++)
			fprintf(idf, "%c%lld", i ? ',' : '{', u->ids[i]);
		fputc('}', idf);
		fclose(idf);
	}
	params[2] = ids;
	u->retrying = true;
	if (r) {
		r->st = st;
		r->u = u;
	}
	if (!r)		/* as a failed DELETE: kept, skipped, tried again on the timer */
		deleted(st, u, NULL, "out of memory");
	else if (!ids || db_exec_prepared(module_db(st->m), st->affinity, "offline_delete",
					    3, params, on_deleted, r) < 0) {
		on_deleted(r, NULL, "the query could not be sent");
	}
	free(ids);
}

static void on_retry_timer(struct module *m, void *arg)
{
	struct offline_state *st = arg;

	(void)m;
	for (struct undeleted *u = st->undeleted; u; u = u->next)
		if (!u->retrying)
			delete_send(st, u);
}

static void flush_settle(struct flush *f)
{
	struct undeleted *u;

	if (--f->outstanding > 0)
		return;
	if (f->nids && (u = calloc(1, sizeof(*u))) && (u->user = strdup(f->jid->local))) {
		log_info("offline", "%s: %u stored message%s delivered", f->jid->full, f->nids,
			 f->nids == 1 ? "" : "s");
		f->st->n_delivered += f->nids;
		u->ids = f->ids;
		u->n = f->nids;
		f->ids = NULL;
		delete_send(f->st, u);
	} else if (f->nids) {
		free(u);
		log_error("offline", "%s: no memory to delete %u delivered messages",
			  f->jid->full, f->nids);
	}
	jid_free(f->jid);
	free(f->ids);
	free(f);
}

static void on_row_done(void *arg, bool delivered)
{
	struct flushed_row *r = arg;

	if (delivered)
		r->f->ids[r->f->nids++] = r->id;
	flush_settle(r->f);
	free(r);
}

static void on_fetched(void *arg, const PGresult *res, const char *err)
{
	struct flush *f = arg;
	struct session *s = sm_find(f->jid);
	int n;

	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_error("offline", "%s: cannot read stored messages: %s", f->jid->full,
			  res ? PQresultErrorMessage(res) : err);
		flush_settle(f);
		return;
	}
	n = PQntuples(res);
	f->ids = calloc(n ? (size_t)n : 1, sizeof(*f->ids));
	/* The session left meanwhile: the messages stay for the next one. */
	for (int i = 0; s && f->ids && i < n; i++) {
		char e[64];
		const char *text = PQgetvalue(res, i, 1);

		/* Delivered before; only its DELETE is still to come. */
		if (undeleted_has(f->st, f->jid->local, atoll(PQgetvalue(res, i, 0))))
			continue;
		struct xml_node *st = xml_parse(text, strlen(text), e, sizeof(e));
		struct flushed_row *r = calloc(1, sizeof(*r));
		struct delivery *d = r ? delivery_new(true, on_row_done, r) : NULL;

		if (!d) {
			free(r);
			xml_unref(st);
			break;
		}
		r->f = f;
		r->id = atoll(PQgetvalue(res, i, 0));
		f->outstanding++;
		if (!st) {
			log_error("offline", "a stored message does not parse (%s): dropped", e);
			delivery_release(d, true);
			continue;
		}
		struct delivery *prev = delivery_enter(d);
		session_send(s, st);
		delivery_leave(prev);
		/* Written, unless the session (XEP-0198) holds it until an ack. */
		delivery_release(d, true);
		xml_unref(st);
		/* A session that ended on the way (its queue overflowed) takes the
		 * rest of the batch with it. */
		s = sm_find(f->jid);
	}
	if (s && n == FLUSH_BATCH) {
		struct jid *j = jid_copy(f->jid);

		if (j)
			flush_start(f->st, j, PQgetvalue(res, n - 1, 0));
	}
	flush_settle(f);
}

static void flush_start(struct offline_state *st, struct jid *jid, const char *after)
{
	struct flush *f = calloc(1, sizeof(*f));
	const char *params[3] = { jid->domain, jid->local, after };

	if (!f) {
		jid_free(jid);
		return;
	}
	f->st = st;
	f->jid = jid;
	f->outstanding = 1;	/* the fetch itself */
	/* Stores gathering now were sent before: the fetch must see them. */
	batch_send(st);
	if (db_exec_prepared(module_db(st->m), st->affinity, "offline_fetch", 3, params,
			     on_fetched, f) < 0)
		flush_settle(f);
}

/* The session's data: set once its stored messages were asked for. */
#define FLUSHED ((void *)1)

static int on_user_send(struct module *m, struct hook_args *a)
{
	struct jid *j;

	/* Available presence from the client (RFC 6121 §4.2, §4.4): the first
	 * one with a non-negative priority starts the flush; a resource with a
	 * negative priority gets no messages for the bare JID, so stored ones
	 * wait for one that does (XEP-0160 §3). */
	if (!a->sess || a->to || stanza_kind(a->stanza) != STANZA_PRESENCE ||
	    xml_attr(a->stanza, "type") || session_data(a->sess, m) == FLUSHED ||
	    stanza_presence_priority(a->stanza) < 0)
		return HOOK_PASS;
	session_set_data(a->sess, m, FLUSHED, NULL);
	j = jid_copy(session_jid(a->sess));
	if (j)
		flush_start(module_data(m), j, "0");
	return HOOK_PASS;
}

/* ---- retention ---- */

static void on_expired(void *arg, const PGresult *res, const char *err)
{
	struct offline_state *st = arg;
	const char *n = res && PQresultStatus(res) == PGRES_COMMAND_OK ?
		PQcmdTuples((PGresult *)res) : NULL;

	if (!n)
		log_error("offline", "%s: the retention sweep failed: %s", module_host(st->m),
			  res ? PQresultErrorMessage(res) : err);
	else if (atoi(n) > 0)
		log_info("offline", "%s: %s stored message%s older than %lld days deleted",
			 module_host(st->m), n, atoi(n) == 1 ? "" : "s", st->o->retention_days);
}

static void on_expiry_timer(struct module *m, void *arg)
{
	struct offline_state *st = arg;
	char days[24];
	const char *params[2] = { module_host(m), days };

	snprintf(days, sizeof(days), "%lld", st->o->retention_days);
	if (db_exec_prepared(module_db(m), 0, "offline_expire", 2, params, on_expired, st) < 0)
		log_error("offline", "%s: the retention sweep could not be sent", module_host(m));
	module_timer_start(st->expiry, EXPIRY_INTERVAL * 1000ul, false);
}

static void state_free(void *p)
{
	struct offline_state *st = p;

	if (st->gathering) {
		struct store_req *q = st->gathering->head, *next;

		for (; q; q = next) {
			next = q->next;
			store_req_free(q);
		}
		free(st->gathering);
	}
	while (st->undeleted) {
		struct undeleted *u = st->undeleted;

		st->undeleted = u->next;
		undeleted_free(u);
	}
	free(st);
}

/* ---- /metrics ---- */

#define COUNT_INTERVAL 60	/* seconds between counts of the table */

static const char sql_count[] =
	"SELECT coalesce(sum(n), 0) FROM offline_counts WHERE host = $1";

static void on_counted(void *arg, const PGresult *res, const char *err)
{
	struct offline_state *st = arg;

	(void)err;
	if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		st->in_store = atoll(PQgetvalue(res, 0, 0));
}

static void on_count_timer(struct module *m, void *arg)
{
	struct offline_state *st = arg;
	const char *params[1] = { module_host(m) };

	db_exec_prepared(module_db(m), st->affinity, "offline_count", 1, params, on_counted, st);
	module_timer_start(st->count, COUNT_INTERVAL * 1000ul, false);
}

static void metrics(struct module *m, struct metrics *out)
{
	const struct offline_state *st = module_data(m);

	metrics_sample(out, m, "parley_offline_stored_total", "counter",
		       "Messages stored for offline accounts (committed).", (double)st->n_stored);
	metrics_sample(out, m, "parley_offline_refused_full_total", "counter",
		       "Messages refused: the account's offline-queue was full.",
		       (double)st->n_full);
	metrics_sample(out, m, "parley_offline_delivered_total", "counter",
		       "Stored messages delivered (and acknowledged).", (double)st->n_delivered);
	if (st->in_store >= 0)
		metrics_sample(out, m, "parley_offline_messages", "gauge",
			       "Messages in the offline store, counted every minute.",
			       (double)st->in_store);
}

static int load(struct module *m)
{
	struct offline_state *st = calloc(1, sizeof(*st));
	struct db *db = module_db(m);

	if (!st)
		return -1;
	st->m = m;
	st->o = module_options(m);
	st->affinity = affinity_of(module_host(m));
	module_set_data(m, st, state_free);
	if (db_prepare(db, "offline_store", sql_store, 4) < 0 ||
	    db_prepare(db, "offline_store_batch", sql_store_batch, 4) < 0 ||
	    db_prepare(db, "offline_fetch", sql_fetch, 3) < 0 ||
	    db_prepare(db, "offline_delete", sql_delete, 3) < 0 ||
	    db_prepare(db, "offline_expire", sql_expire, 2) < 0 ||
	    db_prepare(db, "offline_count", sql_count, 1) < 0)
		return -1;
	st->in_store = -1;
	st->expiry = module_timer_new(m, on_expiry_timer, st);
	st->retry = module_timer_new(m, on_retry_timer, st);
	st->count = module_timer_new(m, on_count_timer, st);
	if (!st->expiry || !st->retry || !st->count || module_metrics(m, metrics) < 0)
		return -1;
	module_timer_start(st->expiry, 0, false);	/* a first sweep at start-up */
	module_timer_start(st->count, 0, false);
	module_feature(m, NS_OFFLINE);
	module_hook(m, HOOK_OFFLINE_MESSAGE, 0, on_offline);
	module_hook(m, HOOK_USER_SEND, 100, on_user_send);
	module_hook(m, HOOK_USER_REMOVED, 0, on_user_removed);
	return 0;
}

PARLEY_MODULE(offline,
	.description = "XEP-0160: messages for offline users are stored and delivered later",
	.options = options,
	.options_size = sizeof(struct options),
	.load = load);

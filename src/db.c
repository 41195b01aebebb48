/*
 * db.c - PostgreSQL on the event loop: a pool of non-blocking libpq connections,
 * and the blocking schema migrations used at start-up and by parleyctl.
 *
 * Each connection runs in libpq pipeline mode: queries are sent as soon as they
 * are queued, each followed by its own Sync, so many are in flight at once while
 * every query stays its own implicit transaction (one query's error never aborts
 * another's). A query's callback runs when its Sync comes back, that is after the
 * server has committed it, so "done" in a callback means durable.
 *
 * Requests live in two FIFOs per connection: "waiting" (not sent yet) and "sent"
 * (in libpq's pipeline, answered in order). Queries with affinity 0 that find no
 * connection up wait in the pool's shared FIFO until one comes up.
 *
 * Callbacks never run inside db_query()/db_exec_prepared()/db_prepare(): those
 * only queue and "kick" the connection, and the sending happens on the loop. So a
 * callback may queue more queries, and may even call db_free(); the memory is
 * released when the outermost event handler returns (db->depth counts them).
 *
 * libpq resolves host names synchronously inside PQconnectStart(); give hostaddr
 * or a socket directory in the conninfo when DNS could be slow. COPY and LISTEN
 * are not for the pool: COPY would stall its pipeline, and notifications are
 * thrown away.
 */
#include "db.h"

#include <errno.h>
#include <openssl/rand.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "base64.h"
#include "histogram.h"
#include "log.h"
#include "schema.h"

#define DB_MAX_POOL		64
#define DB_MAX_INFLIGHT		1024	/* per connection: bounds libpq's buffers */
#define DB_MAX_RESULTS_PER_RUN	4096	/* results handled per event, then yield */
#define DB_BACKOFF_MIN_MS	100
#define DB_BACKOFF_MAX_MS	10000
#define DB_CONNECT_TIMEOUT_S	10
#define DB_MAX_PARAMS		65535	/* the protocol's limit */

enum req_kind {
	REQ_SQL,	/* text: SQL, sent with PQsendQueryParams */
	REQ_PREPARED,	/* text: statement name, PQsendQueryPrepared */
	REQ_PREPARE,	/* internal: prepares stmt on one connection; no callback */
};

struct db_req {
	struct db_req *next;
	enum req_kind kind;
	uint64_t affinity;
	const struct db_stmt *stmt;	/* REQ_PREPARE */
	char *text;
	int nparams;
	char **params;
	db_cb cb;
	void *arg;
	PGresult *res;		/* kept until the Sync confirms the commit */
	bool results_done;	/* PQgetResult gave its NULL: the Sync is next */
	struct timespec submitted;	/* for the latency histogram */
};

struct histogram db_latency;

struct db_queue {
	struct db_req *head, *tail;
	unsigned n;
};

struct db_stmt {
	struct db_stmt *next;
	char *name;
	char *sql;
	int nparams;
};

enum conn_state { CONN_DOWN, CONN_CONNECTING, CONN_UP };

struct db_conn {
	struct db *db;
	unsigned idx;
	enum conn_state state;
	PGconn *pg;
	struct event *cev;	/* during connect: the one-shot watch PQconnectPoll asks */
	struct event *rev;	/* when up: readable, persistent */
	struct event *wev;	/* when up: writable, armed while PQflush returns 1 */
	struct event *timer;	/* back-off before a retry, or the connect timeout */
	struct event *kick;	/* manual: send what is waiting, on the loop */
	struct db_queue waiting;
	struct db_queue sent;
	unsigned backoff_ms;
	unsigned attempts;	/* failed attempts since the last time it was up */
	bool was_up;		/* for the log: a reconnect, not a first connect */
	char fatal[256];	/* a FATAL the server sent before closing */
};

struct db {
	struct event_base *base;
	char *conninfo;
	unsigned nconns;
	struct db_conn *conns;
	struct db_queue shared;
	struct db_stmt *stmts, *stmts_tail;
	unsigned npending;	/* user requests whose callback has not run */
	unsigned depth;		/* event handlers of ours on the stack */
	bool dying;
};

static void conn_start(struct db_conn *c);
static bool conn_pump(struct db_conn *c);
static void conn_connect_cb(evutil_socket_t fd, short what, void *arg);
static void conn_read_cb(evutil_socket_t fd, short what, void *arg);
static void conn_write_cb(evutil_socket_t fd, short what, void *arg);
static void conn_kick_cb(evutil_socket_t fd, short what, void *arg);
static void conn_timer_cb(evutil_socket_t fd, short what, void *arg);
static void db_destroy(struct db *db);

/* ---- requests and queues ---- */

static void queue_push(struct db_queue *q, struct db_req *r)
{
	r->next = NULL;
	if (q->tail)
		q->tail->next = r;
	else
		q->head = r;
	q->tail = r;
	q->n++;
}

static void queue_push_front(struct db_queue *q, struct db_req *r)
{
	r->next = q->head;
	q->head = r;
	if (!q->tail)
		q->tail = r;
	q->n++;
}

static struct db_req *queue_pop(struct db_queue *q)
{
	struct db_req *r = q->head;

	if (!r)
		return NULL;
	q->head = r->next;
	if (!q->head)
		q->tail = NULL;
	q->n--;
	r->next = NULL;
	return r;
}

/* Takes everything out of q, leaving it empty. */
static struct db_queue queue_take(struct db_queue *q)
{
	struct db_queue all = *q;

	memset(q, 0, sizeof(*q));
	return all;
}

/* One allocation for the request, its text and its parameters. */
static struct db_req *req_new(enum req_kind kind, const char *text, int nparams,
			      const char *const *params)
{
	size_t len = strlen(text) + 1, size = sizeof(struct db_req);
	struct db_req *r;
	char *p;

	size += (size_t)nparams * sizeof(char *) + len;
	for (int i = 0; i < nparams; i++)
		if (params[i])
			size += strlen(params[i]) + 1;
	r = calloc(1, size);
	if (!r)
		return NULL;
	r->kind = kind;
	r->nparams = nparams;
	r->params = (char **)(r + 1);
	p = (char *)(r->params + nparams);
	for (int i = 0; i < nparams; i++) {
		if (!params[i])
			continue;
		size_t plen = strlen(params[i]) + 1;

		memcpy(p, params[i], plen);
		r->params[i] = p;
		p += plen;
	}
	memcpy(p, text, len);
	r->text = p;
	return r;
}

static void req_free(struct db_req *r)
{
	PQclear(r->res);
	free(r);
}

static const char *first_line(const char *msg, char *buf, size_t len)
{
	size_t n;

	if (!msg || !*msg)
		msg = "unknown error";
	n = strcspn(msg, "\n");
	if (n >= len)
		n = len - 1;
	memcpy(buf, msg, n);
	buf[n] = '\0';
	return buf;
}

static bool result_failed(const PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);

	return st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR ||
	       st == PGRES_BAD_RESPONSE || st == PGRES_PIPELINE_ABORTED;
}

/*
 * Runs the request's callback (if it has one) and frees it. With res NULL the
 * query failed to run and err says why; otherwise err is the error message of a
 * failed result, NULL for a good one. Returns false when the callback freed the
 * pool, so the caller stops touching it.
 */
static bool req_finish(struct db *db, struct db_req *r, const char *err)
{
	const PGresult *res = r->res;
	char buf[512];

	if (r->kind == REQ_PREPARE) {
		/* Without res the connection went: it prepares again on reconnect. */
		if (res && PQresultStatus(res) != PGRES_COMMAND_OK)
			log_warn("db", "cannot prepare statement %s: %s", r->stmt->name,
				 first_line(PQresultErrorMessage(res), buf, sizeof(buf)));
		req_free(r);
		return !db->dying;
	}
	if (res)
		err = result_failed(res) ? first_line(PQresultErrorMessage(res), buf, sizeof(buf))
					 : NULL;
	else if (!err)
		err = "the query could not run";
	db->npending--;
	histogram_add(&db_latency, histogram_since(&r->submitted));
	if (r->cb)
		r->cb(r->arg, res, err);
	req_free(r);
	return !db->dying;
}

/* ---- placing requests on connections ---- */

static void conn_kick(struct db_conn *c)
{
	if (c->state == CONN_UP && c->kick)
		event_active(c->kick, EV_WRITE, 0);
}

static unsigned conn_load(const struct db_conn *c)
{
	return c->waiting.n + c->sent.n;
}

/*
 * Affinity keys pin a request to one connection so its order holds; affinity 0
 * goes to the least loaded connection that is up, or waits in the shared FIFO.
 */
static void db_place(struct db *db, struct db_req *r)
{
	struct db_conn *best = NULL;

	if (r->affinity) {
		best = &db->conns[r->affinity % db->nconns];
	} else {
		for (unsigned i = 0; i < db->nconns; i++) {
			struct db_conn *c = &db->conns[i];

			if (c->state == CONN_UP && (!best || conn_load(c) < conn_load(best)))
				best = c;
		}
		if (!best) {
			queue_push(&db->shared, r);
			return;
		}
	}
	queue_push(&best->waiting, r);
	conn_kick(best);
}

/* ---- connection life cycle ---- */

static void conn_close(struct db_conn *c)
{
	if (c->cev)
		event_free(c->cev);
	if (c->rev)
		event_free(c->rev);
	if (c->wev)
		event_free(c->wev);
	c->cev = c->rev = c->wev = NULL;
	if (c->timer)
		event_del(c->timer);
	if (c->kick)
		event_del(c->kick);
	if (c->pg)
		PQfinish(c->pg);
	c->pg = NULL;
	c->state = CONN_DOWN;
}

static void conn_schedule_retry(struct db_conn *c)
{
	struct timeval tv = {
		.tv_sec = c->backoff_ms / 1000,
		.tv_usec = (c->backoff_ms % 1000) * 1000,
	};

	if (event_add(c->timer, &tv) != 0)
		log_error("db", "connection %u: cannot arm the retry timer", c->idx);
	c->backoff_ms = c->backoff_ms >= DB_BACKOFF_MAX_MS / 2 ? DB_BACKOFF_MAX_MS
							       : c->backoff_ms * 2;
}

/*
 * The connection failed or dropped: close it, retry later, fail what was in
 * flight (the server may or may not have run it: the caller decides what that
 * means), keep what was waiting for the reconnect. Callbacks run here, so the
 * caller checks db->dying afterwards.
 */
static void conn_drop(struct db_conn *c, const char *why)
{
	struct db *db = c->db;
	struct db_queue failed, waiting;
	struct db_req *head = c->sent.head;
	char msg[512], err[600];
	bool was_up = c->state == CONN_UP;

	/* Prefer what the server said (FATAL) over libpq's "closed unexpectedly". */
	if (c->fatal[0])
		why = c->fatal;
	else if (head && head->res && PQresultStatus(head->res) == PGRES_FATAL_ERROR &&
		 PQresultErrorField(head->res, PG_DIAG_MESSAGE_PRIMARY))
		why = PQresultErrorField(head->res, PG_DIAG_MESSAGE_PRIMARY);
	else if (!why && c->pg)
		why = PQerrorMessage(c->pg);
	first_line(why, msg, sizeof(msg));
	/* Once per outage: the drop (or the first failure to connect at all), then
	 * the recovery in conn_up; the retries in between only at debug level. */
	c->attempts = was_up ? 0 : c->attempts + 1;
	if (was_up)
		log_warn("db", "connection %u to PostgreSQL lost: %s; reconnecting", c->idx, msg);
	else if (!c->was_up && c->attempts == 1)
		log_warn("db", "connection %u: cannot connect to PostgreSQL: %s; retrying",
			 c->idx, msg);
	else
		log_debug("db", "connection %u: attempt %u failed: %s", c->idx, c->attempts,
			  msg);
	c->fatal[0] = '\0';
	conn_close(c);
	if (!db->dying)
		conn_schedule_retry(c);

	/* Prepares are redone on reconnect; affinity 0 may go elsewhere now. */
	waiting = queue_take(&c->waiting);
	for (unsigned i = 0, n = waiting.n; i < n; i++) {
		struct db_req *r = queue_pop(&waiting);

		if (r->kind == REQ_PREPARE)
			req_free(r);
		else if (r->affinity)
			queue_push(&c->waiting, r);
		else
			db_place(db, r);
	}

	snprintf(err, sizeof(err), "connection to PostgreSQL lost: %s", msg);
	failed = queue_take(&c->sent);
	for (unsigned i = 0, n = failed.n; i < n; i++) {
		struct db_req *r = queue_pop(&failed);

		/* A result still waiting for its Sync was never confirmed. Even if a
		 * callback frees the pool, the rest still run: each exactly once. */
		PQclear(r->res);
		r->res = NULL;
		req_finish(db, r, err);
	}
}

static void conn_notice(void *arg, const PGresult *res)
{
	struct db_conn *c = arg;
	const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *text = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	char buf[256];

	if (!text)
		text = PQresultErrorMessage(res);
	/* The server says why before closing: keep it for the drop message. */
	if (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
		first_line(text, c->fatal, sizeof(c->fatal));
	else
		log_debug("db", "connection %u: %s", c->idx, first_line(text, buf, sizeof(buf)));
}

/* Waits for what PQconnectPoll asked; the socket may change between steps. */
static bool conn_watch_connect(struct db_conn *c, PostgresPollingStatusType st)
{
	int fd = PQsocket(c->pg);

	if (c->cev)
		event_free(c->cev);
	c->cev = NULL;
	if (fd < 0)
		return false;
	c->cev = event_new(c->db->base, fd, st == PGRES_POLLING_READING ? EV_READ : EV_WRITE,
			   conn_connect_cb, c);
	return c->cev && event_add(c->cev, NULL) == 0;
}

/* Checks that finish a step: the connection is still usable, the pool alive. */
static bool conn_ok(const struct db_conn *c)
{
	return c->state == CONN_UP && !c->db->dying;
}

/* Leaves one of our event handlers; the outermost frees a pool marked dying. */
static void db_leave(struct db *db)
{
	if (--db->depth == 0 && db->dying)
		db_destroy(db);
}

static bool conn_up(struct db_conn *c)
{
	struct db *db = c->db;
	struct db_queue prepares = { 0 }, shared;
	int fd = PQsocket(c->pg);

	event_free(c->cev);
	c->cev = NULL;
	event_del(c->timer);
	if (fd < 0 || PQsetnonblocking(c->pg, 1) != 0 || PQenterPipelineMode(c->pg) != 1) {
		conn_drop(c, NULL);
		return false;
	}
	c->rev = event_new(db->base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
	c->wev = event_new(db->base, fd, EV_WRITE, conn_write_cb, c);
	if (!c->rev || !c->wev || event_add(c->rev, NULL) != 0) {
		conn_drop(c, "cannot watch the socket");
		return false;
	}
	/* Statements first, so the queries that wait for them find them. */
	for (const struct db_stmt *s = db->stmts; s; s = s->next) {
		struct db_req *r = req_new(REQ_PREPARE, s->name, 0, NULL);

		if (!r) {
			for (unsigned i = 0, n = prepares.n; i < n; i++)
				req_free(queue_pop(&prepares));
			conn_drop(c, "out of memory");
			return false;
		}
		r->stmt = s;
		queue_push(&prepares, r);
	}
	if (prepares.head) {
		prepares.tail->next = c->waiting.head;
		if (!c->waiting.tail)
			c->waiting.tail = prepares.tail;
		c->waiting.head = prepares.head;
		c->waiting.n += prepares.n;
	}
	c->state = CONN_UP;
	c->backoff_ms = DB_BACKOFF_MIN_MS;
	if (c->attempts)
		log_warn("db", "connection %u to PostgreSQL is up%s after %u failed attempt%s",
			 c->idx, c->was_up ? " again" : "", c->attempts,
			 c->attempts == 1 ? "" : "s");
	else if (c->was_up)
		log_warn("db", "connection %u to PostgreSQL is up again", c->idx);
	else
		log_debug("db", "connection %u to PostgreSQL is up", c->idx);
	c->attempts = 0;
	c->was_up = true;

	shared = queue_take(&db->shared);
	for (unsigned i = 0, n = shared.n; i < n; i++)
		db_place(db, queue_pop(&shared));
	return conn_pump(c);
}

static void conn_connect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct db_conn *c = arg;
	struct db *db = c->db;
	PostgresPollingStatusType st;

	(void)fd;
	(void)what;
	db->depth++;
	st = PQconnectPoll(c->pg);
	if (st == PGRES_POLLING_OK)
		conn_up(c);
	else if (st == PGRES_POLLING_FAILED)
		conn_drop(c, NULL);
	else if (!conn_watch_connect(c, st))
		conn_drop(c, "cannot watch the socket");
	db_leave(db);
}

static void conn_start(struct db_conn *c)
{
	struct timeval tv = { .tv_sec = DB_CONNECT_TIMEOUT_S };

	c->pg = PQconnectStart(c->db->conninfo);
	if (!c->pg) {
		conn_drop(c, "out of memory");
		return;
	}
	if (PQstatus(c->pg) == CONNECTION_BAD) {
		conn_drop(c, NULL);
		return;
	}
	PQsetNoticeReceiver(c->pg, conn_notice, c);
	c->state = CONN_CONNECTING;
	/* PQconnectPoll has no timeout of its own; a silent network would hang. */
	if (event_add(c->timer, &tv) != 0 || !conn_watch_connect(c, PGRES_POLLING_WRITING))
		conn_drop(c, "cannot watch the socket");
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct db_conn *c = arg;
	struct db *db = c->db;

	(void)fd;
	(void)what;
	db->depth++;
	if (c->state == CONN_CONNECTING)
		conn_drop(c, "timed out connecting");
	else if (c->state == CONN_DOWN)
		conn_start(c);
	db_leave(db);
}

/* Sends what libpq buffered; waits for the socket when it would block. */
static bool conn_flush(struct db_conn *c)
{
	int r = PQflush(c->pg);

	if (r < 0) {
		conn_drop(c, NULL);
		return false;
	}
	if (r > 0 && event_add(c->wev, NULL) != 0) {
		conn_drop(c, "cannot watch the socket");
		return false;
	}
	return true;
}

/*
 * Hands completed queries to their callbacks. In pipeline mode libpq gives, per
 * query, its result(s), a NULL, then (as we sync after each) PIPELINE_SYNC; the
 * callback waits for the Sync because that is when the server commits. Returns
 * false when the connection dropped or the pool was freed.
 */
static bool conn_process(struct db_conn *c)
{
	struct db *db = c->db;

	for (unsigned i = 0; i < DB_MAX_RESULTS_PER_RUN; i++) {
		struct db_req *r = c->sent.head;
		PGresult *res;

		if (PQstatus(c->pg) == CONNECTION_BAD) {
			conn_drop(c, NULL);
			return false;
		}
		if (PQisBusy(c->pg))
			return true;
		res = PQgetResult(c->pg);
		if (!res) {
			if (r && r->res && !r->results_done) {
				r->results_done = true;
				continue;
			}
			return true;	/* nothing more until more input */
		}
		if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
			PQclear(res);
			if (!r)
				continue;	/* not ours; cannot happen */
			queue_pop(&c->sent);
			if (!req_finish(db, r, "the server sent no result"))
				return false;
			continue;
		}
		if (!r) {
			PQclear(res);
			continue;
		}
		/* Keep one result per query, an error over anything else. */
		if (!r->res || result_failed(res)) {
			PQclear(r->res);
			r->res = res;
		} else {
			PQclear(res);
		}
	}
	/* libpq may hold parsed input the socket will not wake us for again. */
	event_active(c->kick, EV_WRITE, 0);
	return true;
}

static bool conn_read(struct db_conn *c)
{
	PGnotify *n;

	if (!PQconsumeInput(c->pg)) {
		conn_drop(c, NULL);
		return false;
	}
	/* Nobody LISTENs through the pool: do not let notifications pile up. */
	for (unsigned i = 0; i < 1000 && (n = PQnotifies(c->pg)) != NULL; i++)
		PQfreemem(n);
	return conn_process(c);
}

/*
 * An idle connection's read event may not have run yet when the server has
 * closed it (the loop was busy, or the kick came first): look before sending, so
 * queries wait for the reconnect instead of failing in a dead socket. Usually
 * one recv() that finds nothing; data first (the server's FATAL), then EOF.
 */
static bool conn_check_idle(struct db_conn *c)
{
	for (int i = 0; i < 4; i++) {
		char b;
		ssize_t n = recv(PQsocket(c->pg), &b, 1, MSG_PEEK | MSG_DONTWAIT);

		if (n > 0) {
			if (!conn_read(c))
				return false;
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
			conn_drop(c, n == 0 ? "the server closed the connection"
					    : strerror(errno));
			return false;
		}
		return true;
	}
	return true;	/* still talking: its read event will tell */
}

/* Sends waiting requests, each with its own Sync, up to the in-flight cap. */
static bool conn_pump(struct db_conn *c)
{
	unsigned budget;

	if (!conn_ok(c))
		return false;
	if (!c->waiting.head)
		return conn_flush(c);
	if (c->sent.n == 0 && !conn_check_idle(c))
		return false;
	budget = c->sent.n < DB_MAX_INFLIGHT ? DB_MAX_INFLIGHT - c->sent.n : 0;
	for (; budget > 0 && c->waiting.head; budget--) {
		struct db_req *r = queue_pop(&c->waiting);
		const char *const *params = (const char *const *)r->params;
		int ok = 0;

		switch (r->kind) {
		case REQ_SQL:
			ok = PQsendQueryParams(c->pg, r->text, r->nparams, NULL, params, NULL,
					       NULL, 0);
			break;
		case REQ_PREPARED:
			ok = PQsendQueryPrepared(c->pg, r->text, r->nparams, params, NULL, NULL,
						 0);
			break;
		case REQ_PREPARE:
			ok = PQsendPrepare(c->pg, r->stmt->name, r->stmt->sql, r->stmt->nparams,
					   NULL);
			break;
		}
		if (!ok) {
			/* Nothing of it went out: it waits for the reconnect. */
			queue_push_front(&c->waiting, r);
			conn_drop(c, NULL);
			return false;
		}
		queue_push(&c->sent, r);
		if (PQpipelineSync(c->pg) != 1) {
			conn_drop(c, NULL);
			return false;
		}
	}
	return conn_flush(c);
}

static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct db_conn *c = arg;
	struct db *db = c->db;

	(void)fd;
	(void)what;
	db->depth++;
	if (conn_ok(c) && conn_read(c))
		conn_pump(c);
	db_leave(db);
}

static void conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct db_conn *c = arg;
	struct db *db = c->db;

	(void)fd;
	(void)what;
	db->depth++;
	/* PQflush reads when it cannot write (to avoid a deadlock): process too. */
	if (conn_ok(c) && conn_flush(c) && conn_process(c))
		conn_pump(c);
	db_leave(db);
}

static void conn_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct db_conn *c = arg;
	struct db *db = c->db;

	(void)fd;
	(void)what;
	db->depth++;
	if (conn_ok(c) && conn_process(c))
		conn_pump(c);
	db_leave(db);
}

/* ---- the pool ---- */

struct db *db_new(struct event_base *base, const char *conninfo, unsigned pool_size)
{
	PQconninfoOption *opts;
	char *perr = NULL, buf[256];
	struct db *db;

	if (!base || !conninfo)
		return NULL;
	if (pool_size < 1 || pool_size > DB_MAX_POOL) {
		log_error("db", "the pool size must be 1 to %d, not %u", DB_MAX_POOL, pool_size);
		return NULL;
	}
	/* A malformed conninfo would fail every retry the same way: refuse it now. */
	opts = PQconninfoParse(conninfo, &perr);
	if (!opts) {
		log_error("db", "invalid conninfo: %s",
			  perr ? first_line(perr, buf, sizeof(buf)) : "out of memory");
		PQfreemem(perr);
		return NULL;
	}
	PQconninfoFree(opts);

	db = calloc(1, sizeof(*db));
	if (!db)
		return NULL;
	db->base = base;
	db->nconns = pool_size;
	db->conninfo = strdup(conninfo);
	db->conns = calloc(pool_size, sizeof(*db->conns));
	if (!db->conninfo || !db->conns)
		goto fail;
	for (unsigned i = 0; i < pool_size; i++) {
		struct db_conn *c = &db->conns[i];

		c->db = db;
		c->idx = i;
		c->backoff_ms = DB_BACKOFF_MIN_MS;
		c->timer = evtimer_new(base, conn_timer_cb, c);
		c->kick = event_new(base, -1, 0, conn_kick_cb, c);
		if (!c->timer || !c->kick)
			goto fail;
	}
	for (unsigned i = 0; i < pool_size; i++)
		conn_start(&db->conns[i]);
	return db;
fail:
	log_error("db", "out of memory creating the pool");
	db_destroy(db);
	return NULL;
}

/* Runs the callbacks of everything in q with res NULL. */
static void fail_all(struct db *db, struct db_queue *q, const char *err)
{
	struct db_queue all = queue_take(q);

	for (unsigned i = 0, n = all.n; i < n; i++) {
		struct db_req *r = queue_pop(&all);

		PQclear(r->res);
		r->res = NULL;
		req_finish(db, r, err);
	}
}

static void db_destroy(struct db *db)
{
	static const char err[] = "the database pool is closed";

	if (db->conns) {
		for (unsigned i = 0; i < db->nconns; i++) {
			struct db_conn *c = &db->conns[i];

			conn_close(c);
			/* db_free emptied these; anything left still gets its one call. */
			fail_all(db, &c->sent, err);
			fail_all(db, &c->waiting, err);
			if (c->timer)
				event_free(c->timer);
			if (c->kick)
				event_free(c->kick);
		}
	}
	fail_all(db, &db->shared, err);
	for (struct db_stmt *s = db->stmts, *next; s; s = next) {
		next = s->next;
		free(s->name);
		free(s->sql);
		free(s);
	}
	free(db->conns);
	free(db->conninfo);
	free(db);
}

void db_free(struct db *db)
{
	static const char err[] = "the database pool is shutting down";

	if (!db || db->dying)
		return;
	db->dying = true;	/* from now on db_query refuses: nothing new to fail */
	db->depth++;
	for (unsigned i = 0; i < db->nconns; i++)
		conn_close(&db->conns[i]);
	for (unsigned i = 0; i < db->nconns; i++) {
		fail_all(db, &db->conns[i].sent, err);
		fail_all(db, &db->conns[i].waiting, err);
	}
	fail_all(db, &db->shared, err);
	db_leave(db);
}

int db_prepare(struct db *db, const char *name, const char *sql, int nparams)
{
	struct db_stmt *s;

	if (!db || db->dying || !name || !*name || !sql || nparams < 0 ||
	    nparams > DB_MAX_PARAMS)
		return -1;
	for (s = db->stmts; s; s = s->next)
		if (strcmp(s->name, name) == 0)
			return strcmp(s->sql, sql) == 0 && s->nparams == nparams ? 0 : -1;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -1;
	s->name = strdup(name);
	s->sql = strdup(sql);
	s->nparams = nparams;
	if (!s->name || !s->sql) {
		free(s->name);
		free(s->sql);
		free(s);
		return -1;
	}
	if (db->stmts_tail)
		db->stmts_tail->next = s;
	else
		db->stmts = s;
	db->stmts_tail = s;
	/* Connections that are up prepare it next; the others do on connect. */
	for (unsigned i = 0; i < db->nconns; i++) {
		struct db_conn *c = &db->conns[i];
		struct db_req *r;

		if (c->state != CONN_UP)
			continue;
		r = req_new(REQ_PREPARE, name, 0, NULL);
		if (!r) {
			/* Its queries on this connection will get the server's error. */
			log_error("db", "connection %u: out of memory preparing %s", i, name);
			continue;
		}
		r->stmt = s;
		queue_push_front(&c->waiting, r);
		conn_kick(c);
	}
	return 0;
}

static int db_submit(struct db *db, enum req_kind kind, uint64_t affinity, const char *text,
		     int nparams, const char *const *params, db_cb cb, void *arg)
{
	struct db_req *r;

	if (!db || db->dying || !text || nparams < 0 || nparams > DB_MAX_PARAMS ||
	    (nparams > 0 && !params))
		return -1;
	r = req_new(kind, text, nparams, params);
	if (!r)
		return -1;
	r->affinity = affinity;
	r->cb = cb;
	r->arg = arg;
	clock_gettime(CLOCK_MONOTONIC, &r->submitted);
	db->npending++;
	db_place(db, r);
	return 0;
}

int db_query(struct db *db, uint64_t affinity, const char *sql, int nparams,
	     const char *const *params, db_cb cb, void *arg)
{
	return db_submit(db, REQ_SQL, affinity, sql, nparams, params, cb, arg);
}

int db_exec_prepared(struct db *db, uint64_t affinity, const char *name, int nparams,
		     const char *const *params, db_cb cb, void *arg)
{
	return db_submit(db, REQ_PREPARED, affinity, name, nparams, params, cb, arg);
}

unsigned db_connected(const struct db *db)
{
	unsigned n = 0;

	for (unsigned i = 0; db && i < db->nconns; i++)
		if (db->conns[i].state == CONN_UP)
			n++;
	return n;
}

unsigned db_pending(const struct db *db)
{
	return db ? db->npending : 0;
}

/* ---- schema migrations (blocking) ---- */

/* pg_advisory_xact_lock key: "parley" in ASCII, so other users of advisory
 * locks in the same database are unlikely to collide with it. */
#define DB_MIGRATE_LOCK "SELECT pg_advisory_xact_lock(123563833845113)"

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	err[strcspn(err, "\n")] = '\0';
}

/* Runs sql; returns its result when it worked, else NULL with the error in err. */
static PGresult *mig_exec(PGconn *conn, const char *sql, int nparams,
			  const char *const *params, char *err, size_t errlen)
{
	PGresult *res = nparams ? PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0)
				: PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);

	if (res && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY))
		return res;
	set_err(err, errlen, "%s", res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
	PQclear(res);
	return NULL;
}

static bool mig_run(PGconn *conn, const char *sql, int nparams, const char *const *params,
		    char *err, size_t errlen)
{
	PGresult *res = mig_exec(conn, sql, nparams, params, err, errlen);

	PQclear(res);
	return res != NULL;
}

static void mig_rollback(PGconn *conn)
{
	if (PQtransactionStatus(conn) != PQTRANS_IDLE)
		PQclear(PQexec(conn, "ROLLBACK"));
}

int db_schema_expected(void)
{
	return schema_nmigrations ? schema_migrations[schema_nmigrations - 1].version : 0;
}

int db_shared_secret(PGconn *conn, const char *name, unsigned char *out, size_t len,
		     char *err, size_t errlen)
{
	unsigned char fresh[64];
	char b64[96];
	const char *params[2] = { name, b64 };
	PGresult *res;
	size_t got = 0;

	if (len > sizeof(fresh) || RAND_bytes(fresh, (int)len) != 1) {
		snprintf(err, errlen, "no randomness for the secret %s", name);
		return -1;
	}
	base64_encode(fresh, len, b64);
	/* The first node to start creates it; every other one reads the same. */
	res = PQexecParams(conn, "INSERT INTO parley_secrets (name, value) VALUES ($1, $2) "
			   "ON CONFLICT (name) DO NOTHING", 2, NULL, params, NULL, NULL, 0);
	PQclear(res);
	res = PQexecParams(conn, "SELECT value FROM parley_secrets WHERE name = $1", 1, NULL,
			   params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
	    base64_decode(PQgetvalue(res, 0, 0), strlen(PQgetvalue(res, 0, 0)), out, len,
			  &got) < 0 || got != len) {
		snprintf(err, errlen, "cannot read the secret %s: %s", name,
			 PQresultErrorMessage(res));
		PQclear(res);
		return -1;
	}
	PQclear(res);
	OPENSSL_cleanse(fresh, sizeof(fresh));
	return 0;
}

int db_schema_version(PGconn *conn, char *err, size_t errlen)
{
	PGresult *res;
	bool exists;
	long v;

	if (!conn || PQstatus(conn) != CONNECTION_OK) {
		set_err(err, errlen, "not connected to PostgreSQL");
		return -1;
	}
	/* A database nobody migrated yet has no version table: version 0. */
	res = mig_exec(conn, "SELECT to_regclass('parley_schema') IS NOT NULL", 0, NULL,
		       err, errlen);
	if (!res)
		return -1;
	exists = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (!exists)
		return 0;
	res = mig_exec(conn, "SELECT coalesce(max(version), 0) FROM parley_schema", 0, NULL,
		       err, errlen);
	if (!res)
		return -1;
	v = PQntuples(res) == 1 ? strtol(PQgetvalue(res, 0, 0), NULL, 10) : -1;
	PQclear(res);
	if (v < 0 || v > 1000000) {
		set_err(err, errlen, "parley_schema holds no valid version");
		return -1;
	}
	return (int)v;
}

/*
 * One migration in one transaction with its version row, under the advisory
 * lock, so two migrators at once apply it once: the second finds the row. Returns
 * 1 when applied, 0 when it already was, -1 on error.
 */
static int mig_apply(PGconn *conn, const struct schema_migration *m, char *err, size_t errlen)
{
	char version[16], msg[512];
	const char *params[2] = { version, m->name };
	PGresult *res;
	bool done;

	snprintf(version, sizeof(version), "%d", m->version);
	if (!mig_run(conn, "BEGIN", 0, NULL, err, errlen))
		return -1;
	if (!mig_run(conn, DB_MIGRATE_LOCK, 0, NULL, err, errlen))
		goto fail;
	res = mig_exec(conn, "SELECT 1 FROM parley_schema WHERE version = $1", 1, params,
		       err, errlen);
	if (!res)
		goto fail;
	done = PQntuples(res) > 0;
	PQclear(res);
	if (done)
		return mig_run(conn, "COMMIT", 0, NULL, err, errlen) ? 0 : -1;
	if (!mig_run(conn, m->sql, 0, NULL, msg, sizeof(msg))) {
		set_err(err, errlen, "migration %03d_%s: %s", m->version, m->name, msg);
		goto fail;
	}
	if (!mig_run(conn, "INSERT INTO parley_schema (version, name, applied_at) "
		     "VALUES ($1, $2, now())", 2, params, err, errlen) ||
	    !mig_run(conn, "COMMIT", 0, NULL, err, errlen))
		goto fail;
	return 1;
fail:
	mig_rollback(conn);
	return -1;
}

int db_migrate(PGconn *conn, void (*report)(void *arg, int version, const char *name),
	       void *arg, char *err, size_t errlen)
{
	int have, want = db_schema_expected(), applied = 0;

	if (!conn || PQstatus(conn) != CONNECTION_OK) {
		set_err(err, errlen, "not connected to PostgreSQL");
		return -1;
	}
	if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
		set_err(err, errlen, "the connection is inside a transaction");
		return -1;
	}
	/* Under the lock too: two concurrent CREATE TABLE IF NOT EXISTS can collide.
	 * The NOTICE "already exists" would only be noise on parleyctl's terminal. */
	if (!mig_run(conn, "BEGIN; " DB_MIGRATE_LOCK "; "
		     "SET LOCAL client_min_messages TO warning; "
		     "CREATE TABLE IF NOT EXISTS parley_schema ("
		     "version integer PRIMARY KEY, name text NOT NULL, "
		     "applied_at timestamptz NOT NULL DEFAULT now()); COMMIT",
		     0, NULL, err, errlen)) {
		mig_rollback(conn);
		return -1;
	}
	have = db_schema_version(conn, err, errlen);
	if (have < 0)
		return -1;
	if (have > want) {
		set_err(err, errlen, "the database schema is at version %d, newer than this "
			"build knows (%d)", have, want);
		return -1;
	}
	for (unsigned i = 0; i < schema_nmigrations; i++) {
		const struct schema_migration *m = &schema_migrations[i];
		int r = mig_apply(conn, m, err, errlen);

		if (r < 0)
			return -1;
		if (r > 0) {
			applied++;
			if (report)
				report(arg, m->version, m->name);
		}
	}
	return applied;
}

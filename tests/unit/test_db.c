/*
 * test_db.c - the PostgreSQL pool (db.c) and the schema migrations, against a
 * real server on a real event loop.
 *
 * PARLEY_TEST_PG is the conninfo of a private, disposable database (the tests
 * empty its current schema); PARLEY_TEST_PG_RESTART, a shell command that
 * restarts that server, enables the reconnect tests. Without PARLEY_TEST_PG the
 * file is skipped, unless PARLEY_TEST_REQUIRE_DB=1 makes that a failure (CI).
 * PARLEY_TEST_PG_RESTARTABLE, when set, replaces PARLEY_TEST_PG: contrib/test.sh
 * gives these tests a cluster of their own, the one PARLEY_TEST_PG_RESTART
 * restarts, so that the integration tests running meanwhile keep theirs.
 *
 * Every wait is bounded (run_until), and an alarm ends the whole run, so a broken
 * pool fails the test instead of hanging it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <event2/event.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "log.h"
#include "schema.h"

#define WAIT_S		60.0	/* one wait; generous because valgrind is slow */
#define OVERALL_S	900	/* the whole file */

static const char *conninfo;
static const char *restart_cmd;
static struct event_base *base;

static void on_alarm(int sig)
{
	static const char msg[] = "Bail out! test_db timed out\n";

	(void)sig;
	if (write(STDOUT_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(2);
	_exit(1);
}

/* ---- helpers ---- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* Runs the loop until done(arg) holds or seconds pass; the tick makes each
 * EVLOOP_ONCE return within 10 ms so the condition and the clock are checked. */
static bool run_until(bool (*done)(void *arg), void *arg, double seconds)
{
	struct timeval tv = { .tv_usec = 10000 };
	struct event *tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	double end = now_s() + seconds;
	bool ok;

	assert_non_null(tick);
	assert_int_equal(event_add(tick, &tv), 0);
	while (!(ok = done(arg)) && now_s() < end)
		assert_true(event_base_loop(base, EVLOOP_ONCE) >= 0);
	event_free(tick);
	return ok;
}

static bool never(void *arg)
{
	(void)arg;
	return false;
}

static void run_for(double seconds)
{
	run_until(never, NULL, seconds);
}

struct connected_arg {
	struct db *db;
	unsigned want;
};

static bool is_connected(void *arg)
{
	struct connected_arg *c = arg;

	return db_connected(c->db) == c->want;
}

static void wait_connected(struct db *db, unsigned want)
{
	struct connected_arg c = { db, want };

	assert_true(run_until(is_connected, &c, WAIT_S));
}

static PGconn *pg_connect(void)
{
	PGconn *pg = PQconnectdb(conninfo);

	if (PQstatus(pg) != CONNECTION_OK)
		fail_msg("cannot connect to PARLEY_TEST_PG: %s", PQerrorMessage(pg));
	return pg;
}

static void pg_exec(PGconn *pg, const char *sql)
{
	PGresult *res = PQexec(pg, sql);
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(res));
	PQclear(res);
}

/* The single value sql returns, copied into buf. */
static const char *pg_value(PGconn *pg, const char *sql, char *buf, size_t len)
{
	PGresult *res = PQexec(pg, sql);

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		fail_msg("%s: %s", sql, PQresultErrorMessage(res));
	snprintf(buf, len, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return buf;
}

/* Empties the database's current schema: whatever any migration created goes,
 * so "migrate from empty" holds however many migrations there are. */
static void drop_tables(void)
{
	PGconn *pg = pg_connect();

	pg_exec(pg, "SET client_min_messages TO warning");
	pg_exec(pg, "DO $$ DECLARE s text := coalesce(current_schema(), 'public'); BEGIN "
		"EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', s); "
		"EXECUTE format('CREATE SCHEMA %I', s); END $$");
	PQfinish(pg);
}

/* What one callback saw. */
struct box {
	int calls;
	bool null_res;
	ExecStatusType st;
	int ntuples;
	char val[4][64];
	char err[256];
};

static void box_cb(void *arg, const PGresult *res, const char *err)
{
	struct box *b = arg;

	b->calls++;
	b->null_res = res == NULL;
	snprintf(b->err, sizeof(b->err), "%s", err ? err : "");
	if (!res)
		return;
	b->st = PQresultStatus(res);
	b->ntuples = PQntuples(res);
	for (int i = 0; i < 4 && i < PQnfields(res) && b->ntuples > 0; i++)
		snprintf(b->val[i], sizeof(b->val[i]), "%s",
			 PQgetisnull(res, 0, i) ? "(null)" : PQgetvalue(res, 0, i));
}

struct boxes {
	struct box *b;
	int n;
};

static bool boxes_done(void *arg)
{
	struct boxes *bs = arg;

	for (int i = 0; i < bs->n; i++)
		if (bs->b[i].calls == 0)
			return false;
	return true;
}

static void wait_boxes(struct box *b, int n)
{
	struct boxes bs = { b, n };

	assert_true(run_until(boxes_done, &bs, WAIT_S));
}

/* ---- group ---- */

static int group_setup(void **state)
{
	(void)state;
	base = event_base_new();
	if (!base)
		return -1;
	drop_tables();
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	drop_tables();
	event_base_free(base);
	return 0;
}

/* ---- migrations ---- */

struct report {
	int n;
	int versions[64];
};

static void report_cb(void *arg, int version, const char *name)
{
	struct report *r = arg;

	assert_non_null(name);
	assert_true(*name != '\0');
	if (r->n < 64)
		r->versions[r->n] = version;
	r->n++;
}

static void test_migrate(void **state)
{
	PGconn *pg = pg_connect();
	struct report r1 = { 0 }, r2 = { 0 };
	char err[512] = "", buf[64];
	PGresult *res;

	(void)state;
	assert_true(schema_nmigrations >= 1);
	assert_int_equal(db_schema_expected(),
			 schema_migrations[schema_nmigrations - 1].version);
	assert_int_equal(db_schema_version(pg, err, sizeof(err)), 0);

	/* From empty: every migration, in order, reported once. */
	assert_int_equal(db_migrate(pg, report_cb, &r1, err, sizeof(err)),
			 (int)schema_nmigrations);
	assert_int_equal(r1.n, (int)schema_nmigrations);
	for (unsigned i = 0; i < schema_nmigrations && i < 64; i++)
		assert_int_equal(r1.versions[i], schema_migrations[i].version);
	assert_int_equal(db_schema_version(pg, err, sizeof(err)), db_schema_expected());
	assert_string_equal(pg_value(pg, "SELECT name FROM parley_schema WHERE version = 1",
				     buf, sizeof(buf)), "users");

	/* Again: nothing to do. */
	assert_int_equal(db_migrate(pg, report_cb, &r2, err, sizeof(err)), 0);
	assert_int_equal(r2.n, 0);
	assert_int_equal(db_schema_version(pg, err, sizeof(err)), db_schema_expected());

	/* The users table takes SCRAM credentials and refuses malformed ones. */
	pg_exec(pg, "INSERT INTO users (host, username, sha1_salt, sha1_iterations, "
		"sha1_stored_key, sha1_server_key, sha256_salt, sha256_iterations, "
		"sha256_stored_key, sha256_server_key) VALUES ('example.com', 'juliet', "
		"'QSXCR+Q6sek8bf92', 4096, '6dlGYMOdZcOPutkcNY8U2g7vK9Y=', "
		"'D+CSWLOshSulAsxiupA+qs2/fTE=', 'W22ZaJ0SNY7soEsUEjb6gQ==', 4096, "
		"'WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=', "
		"'wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=')");
	res = PQexec(pg, "INSERT INTO users (host, username, sha1_salt, sha1_iterations, "
		     "sha1_stored_key, sha1_server_key, sha256_salt, sha256_iterations, "
		     "sha256_stored_key, sha256_server_key) VALUES ('example.com', 'romeo', "
		     "'c2FsdA==', 4096, 'short', 'short', 'c2FsdA==', 4096, 'short', "
		     "'short')");
	assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
	assert_string_equal(PQresultErrorField(res, PG_DIAG_SQLSTATE), "23514");
	PQclear(res);
	pg_exec(pg, "DELETE FROM users");
	PQfinish(pg);
}

/* A schema newer than the build is an error, not "up to date". */
static void test_migrate_newer(void **state)
{
	PGconn *pg = pg_connect();
	char err[512] = "", sql[128];

	(void)state;
	snprintf(sql, sizeof(sql), "INSERT INTO parley_schema (version, name) "
		 "VALUES (%d, 'future')", db_schema_expected() + 1);
	pg_exec(pg, sql);
	assert_int_equal(db_migrate(pg, NULL, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "newer"));
	assert_int_equal(db_schema_version(pg, err, sizeof(err)), db_schema_expected() + 1);
	pg_exec(pg, "DELETE FROM parley_schema WHERE name = 'future'");
	PQfinish(pg);
}

struct migrator {
	pthread_t thread;
	int applied;
	char err[512];
};

static void *migrate_thread(void *arg)
{
	struct migrator *m = arg;
	PGconn *pg = PQconnectdb(conninfo);

	m->applied = PQstatus(pg) == CONNECTION_OK
		     ? db_migrate(pg, NULL, NULL, m->err, sizeof(m->err)) : -2;
	PQfinish(pg);
	return NULL;
}

/* Migrators racing on an empty database: each migration is applied once. */
static void test_migrate_concurrent(void **state)
{
	struct migrator m[4];
	PGconn *pg;
	char err[512];
	int total = 0, started = 0;

	(void)state;
	drop_tables();
	memset(m, 0, sizeof(m));
	for (; started < 4; started++)
		if (pthread_create(&m[started].thread, NULL, migrate_thread, &m[started]) != 0)
			break;
	/* All joined before any assert: a failure must not leave threads behind. */
	for (int i = 0; i < started; i++)
		pthread_join(m[i].thread, NULL);
	assert_int_equal(started, 4);
	for (int i = 0; i < 4; i++) {
		if (m[i].applied < 0)
			fail_msg("migrator %d: %d: %s", i, m[i].applied, m[i].err);
		total += m[i].applied;
	}
	assert_int_equal(total, (int)schema_nmigrations);
	pg = pg_connect();
	assert_int_equal(db_schema_version(pg, err, sizeof(err)), db_schema_expected());
	PQfinish(pg);
}

/* ---- the pool ---- */

static void test_bad_args(void **state)
{
	const char *p[1] = { "1" };
	enum log_level saved = log_get_level();
	struct db *db;

	(void)state;
	log_set_level(LOG_ERROR + 1);	/* the refusals below log errors on purpose */
	assert_null(db_new(base, conninfo, 0));
	assert_null(db_new(base, conninfo, 1000));
	assert_null(db_new(base, "this is not a conninfo", 1));
	assert_null(db_new(NULL, conninfo, 1));
	log_set_level(saved);
	db = db_new(base, conninfo, 1);
	assert_non_null(db);
	assert_int_equal(db_query(NULL, 0, "SELECT 1", 0, NULL, NULL, NULL), -1);
	assert_int_equal(db_query(db, 0, NULL, 0, NULL, NULL, NULL), -1);
	assert_int_equal(db_query(db, 0, "SELECT 1", -1, p, NULL, NULL), -1);
	assert_int_equal(db_query(db, 0, "SELECT $1", 1, NULL, NULL, NULL), -1);
	assert_int_equal(db_prepare(db, "", "SELECT 1", 0), -1);
	assert_int_equal(db_prepare(db, "x", NULL, 0), -1);
	assert_int_equal(db_pending(db), 0);
	db_free(db);
	db_free(NULL);
	assert_int_equal(db_connected(NULL), 0);
}

static void test_query_params(void **state)
{
	const char *params[3] = { "2", "3", NULL };
	struct box b = { 0 }, quiet = { 0 };
	struct db *db = db_new(base, conninfo, 2);

	(void)state;
	assert_non_null(db);
	/* Queued before any connection is up: waits, then runs. */
	assert_int_equal(db_query(db, 0, "SELECT $1::int + $2::int, $3::text IS NULL, "
				  "$1::text || $2::text || ' \"q\" \\ é'", 3, params, box_cb,
				  &b), 0);
	/* A query without callback is allowed (fire and forget). */
	assert_int_equal(db_query(db, 0, "SELECT 1", 0, NULL, NULL, NULL), 0);
	assert_int_equal(db_query(db, 0, "SELECT 2", 0, NULL, box_cb, &quiet), 0);
	params[0] = "changed";	/* params are copied */
	assert_int_equal(db_pending(db), 3);
	wait_boxes(&b, 1);
	wait_boxes(&quiet, 1);
	assert_int_equal(b.calls, 1);
	assert_false(b.null_res);
	assert_string_equal(b.err, "");
	assert_int_equal(b.st, PGRES_TUPLES_OK);
	assert_string_equal(b.val[0], "5");
	assert_string_equal(b.val[1], "t");
	assert_string_equal(b.val[2], "23 \"q\" \\ é");
	run_for(0.05);
	assert_int_equal(db_pending(db), 0);
	assert_int_equal(db_connected(db), 2);
	db_free(db);
}

static void test_prepared(void **state)
{
	const char *p[2] = { "6", "7" };
	struct box b[32], nope = { 0 }, mul[3];
	struct db *db = db_new(base, conninfo, 3);
	char v[32][16];

	(void)state;
	memset(b, 0, sizeof(b));
	memset(mul, 0, sizeof(mul));
	assert_non_null(db);
	/* Registered before the connections are up: prepared when they are. */
	assert_int_equal(db_prepare(db, "t_add", "SELECT $1::int + $2::int", 2), 0);
	assert_int_equal(db_prepare(db, "t_add", "SELECT $1::int + $2::int", 2), 0);
	assert_int_equal(db_prepare(db, "t_add", "SELECT $1::int - $2::int", 2), -1);
	for (int i = 0; i < 32; i++) {
		const char *q[2] = { v[i], "100" };

		snprintf(v[i], sizeof(v[i]), "%d", i);
		assert_int_equal(db_exec_prepared(db, (uint64_t)(i % 5), "t_add", 2, q, box_cb,
						  &b[i]), 0);
	}
	wait_boxes(b, 32);
	for (int i = 0; i < 32; i++) {
		char want[16];

		snprintf(want, sizeof(want), "%d", i + 100);
		assert_int_equal(b[i].st, PGRES_TUPLES_OK);
		assert_string_equal(b[i].val[0], want);
	}

	/* Registered while they are up: usable by the very next query. */
	wait_connected(db, 3);
	assert_int_equal(db_prepare(db, "t_mul", "SELECT $1::int * $2::int", 2), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(db_exec_prepared(db, (uint64_t)i + 1, "t_mul", 2, p, box_cb,
						  &mul[i]), 0);
	assert_int_equal(db_exec_prepared(db, 1, "t_nope", 0, NULL, box_cb, &nope), 0);
	wait_boxes(mul, 3);
	wait_boxes(&nope, 1);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(mul[i].st, PGRES_TUPLES_OK);
		assert_string_equal(mul[i].val[0], "42");
	}
	assert_false(nope.null_res);
	assert_int_equal(nope.st, PGRES_FATAL_ERROR);
	assert_non_null(strstr(nope.err, "t_nope"));
	db_free(db);
}

#define ORDER_N 1000

struct order {
	int next;
	int bad;
	char pid[16];
	bool pid_changed;
};

static void order_cb(void *arg, const PGresult *res, const char *err)
{
	struct order *o = arg;

	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
	    atoi(PQgetvalue(res, 0, 0)) != o->next) {
		if (o->bad++ == 0)
			print_message("# order: query %d: %s\n", o->next, err ? err : "wrong row");
		o->next++;
		return;
	}
	if (!o->pid[0])
		snprintf(o->pid, sizeof(o->pid), "%s", PQgetvalue(res, 0, 1));
	else if (strcmp(o->pid, PQgetvalue(res, 0, 1)) != 0)
		o->pid_changed = true;
	o->next++;
}

static bool order_done(void *arg)
{
	return ((struct order *)arg)->next >= ORDER_N;
}

/* One affinity key: one connection, and the server runs them in queue order. */
static void test_affinity_order(void **state)
{
	struct order o = { 0 };
	PGconn *pg = pg_connect();
	struct db *db = db_new(base, conninfo, 4);
	char buf[32];
	double t0;

	(void)state;
	assert_non_null(db);
	pg_exec(pg, "SET client_min_messages TO warning");
	pg_exec(pg, "DROP TABLE IF EXISTS db_test_order");
	pg_exec(pg, "CREATE TABLE db_test_order (id bigserial PRIMARY KEY, n int NOT NULL)");
	wait_connected(db, 4);
	t0 = now_s();
	for (int i = 0; i < ORDER_N; i++) {
		char n[16];
		const char *p[1] = { n };

		snprintf(n, sizeof(n), "%d", i);
		assert_int_equal(db_query(db, 42, "INSERT INTO db_test_order (n) VALUES ($1) "
					  "RETURNING n, pg_backend_pid()", 1, p, order_cb, &o), 0);
	}
	assert_int_equal(db_pending(db), ORDER_N);
	assert_true(run_until(order_done, &o, WAIT_S));
	print_message("# %d ordered inserts in %.3f s\n", ORDER_N, now_s() - t0);
	assert_int_equal(o.bad, 0);
	assert_int_equal(o.next, ORDER_N);
	assert_false(o.pid_changed);
	assert_int_equal(db_pending(db), 0);
	/* The rows went in in the same order: ids follow n. */
	assert_string_equal(pg_value(pg, "SELECT count(*) FROM (SELECT n, row_number() OVER "
				     "(ORDER BY id) - 1 AS r FROM db_test_order) s WHERE n <> r",
				     buf, sizeof(buf)), "0");
	assert_string_equal(pg_value(pg, "SELECT count(*) FROM db_test_order", buf,
				     sizeof(buf)), "1000");
	pg_exec(pg, "DROP TABLE db_test_order");
	PQfinish(pg);
	db_free(db);
}

#define CONC_N 2000

struct conc {
	int done;
	int bad;
	int npids;
	int pids[16];
};

struct conc_item {
	struct conc *c;
	int i;
};

static void conc_cb(void *arg, const PGresult *res, const char *err)
{
	struct conc_item *it = arg;
	struct conc *c = it->c;
	int pid, k;

	c->done++;
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK ||
	    atoi(PQgetvalue(res, 0, 0)) != 2 * it->i) {
		if (c->bad++ == 0)
			print_message("# concurrent: query %d: %s\n", it->i, err ? err : "wrong");
		return;
	}
	pid = atoi(PQgetvalue(res, 0, 1));
	for (k = 0; k < c->npids && c->pids[k] != pid; k++)
		;
	if (k == c->npids && c->npids < 16)
		c->pids[c->npids++] = pid;
}

static bool conc_done(void *arg)
{
	return ((struct conc *)arg)->done >= CONC_N;
}

/* Many queries at once, keyed and not: all answered, spread over the pool. */
static void test_concurrent(void **state)
{
	struct conc c = { 0 };
	struct conc_item *items = calloc(CONC_N, sizeof(*items));
	struct db *db = db_new(base, conninfo, 4);
	double t0;

	(void)state;
	assert_non_null(items);
	assert_non_null(db);
	wait_connected(db, 4);
	t0 = now_s();
	for (int i = 0; i < CONC_N; i++) {
		char n[16];
		const char *p[1] = { n };
		uint64_t affinity = i % 2 ? 0 : (uint64_t)i / 2 + 1;

		items[i].c = &c;
		items[i].i = i;
		snprintf(n, sizeof(n), "%d", i);
		assert_int_equal(db_query(db, affinity, "SELECT $1::int * 2, pg_backend_pid()",
					  1, p, conc_cb, &items[i]), 0);
	}
	assert_int_equal(db_pending(db), CONC_N);
	assert_true(run_until(conc_done, &c, WAIT_S));
	print_message("# %d concurrent queries in %.3f s\n", CONC_N, now_s() - t0);
	assert_int_equal(c.done, CONC_N);
	assert_int_equal(c.bad, 0);
	assert_int_equal(c.npids, 4);
	assert_int_equal(db_pending(db), 0);
	db_free(db);
	free(items);
}

/* Errors come back as results, and do not disturb the queries after them. */
static void test_error_result(void **state)
{
	const char *zero[1] = { "0" };
	struct box b[4];
	struct db *db = db_new(base, conninfo, 1);

	(void)state;
	memset(b, 0, sizeof(b));
	assert_non_null(db);
	assert_int_equal(db_query(db, 7, "SELEC 1", 0, NULL, box_cb, &b[0]), 0);
	assert_int_equal(db_query(db, 7, "SELECT 1 / $1::int", 1, zero, box_cb, &b[1]), 0);
	assert_int_equal(db_query(db, 7, "SELECT 'after'", 0, NULL, box_cb, &b[2]), 0);
	assert_int_equal(db_query(db, 0, "SELECT * FROM db_test_missing", 0, NULL, box_cb,
				  &b[3]), 0);
	wait_boxes(b, 4);
	assert_false(b[0].null_res);
	assert_int_equal(b[0].st, PGRES_FATAL_ERROR);
	assert_non_null(strstr(b[0].err, "syntax error"));
	assert_int_equal(b[1].st, PGRES_FATAL_ERROR);
	assert_non_null(strstr(b[1].err, "division by zero"));
	assert_int_equal(b[2].st, PGRES_TUPLES_OK);
	assert_string_equal(b[2].val[0], "after");
	assert_string_equal(b[2].err, "");
	assert_int_equal(b[3].st, PGRES_FATAL_ERROR);
	assert_non_null(strstr(b[3].err, "db_test_missing"));
	for (int i = 0; i < 4; i++)
		assert_int_equal(b[i].calls, 1);
	db_free(db);
}

#define BIG_N		48
#define BIG_LEN		(256 * 1024)

/* Parameters far larger than the socket buffers: sending has to wait for
 * EV_WRITE (PQflush returning 1) while the pipeline keeps going. */
static void test_large_params(void **state)
{
	char *big = malloc(BIG_LEN + 1), want[16];
	struct box b[BIG_N];
	struct db *db = db_new(base, conninfo, 2);

	(void)state;
	assert_non_null(big);
	assert_non_null(db);
	memset(b, 0, sizeof(b));
	memset(big, 'x', BIG_LEN);
	big[BIG_LEN] = '\0';
	wait_connected(db, 2);
	for (int i = 0; i < BIG_N; i++) {
		const char *p[1] = { big };

		assert_int_equal(db_query(db, i % 4 ? 5 : 0, "SELECT length($1)", 1, p, box_cb,
					  &b[i]), 0);
	}
	free(big);	/* copied by db_query */
	wait_boxes(b, BIG_N);
	snprintf(want, sizeof(want), "%d", BIG_LEN);
	for (int i = 0; i < BIG_N; i++) {
		assert_int_equal(b[i].st, PGRES_TUPLES_OK);
		assert_string_equal(b[i].val[0], want);
	}
	db_free(db);
}

/* The backend pids serving affinities 1 and 2 (one per connection of 2). */
static void backend_pids(struct db *db, char pids[2][64])
{
	struct box b[2];

	memset(b, 0, sizeof(b));
	for (int i = 0; i < 2; i++)
		assert_int_equal(db_query(db, (uint64_t)i + 1, "SELECT pg_backend_pid()", 0, NULL,
					  box_cb, &b[i]), 0);
	wait_boxes(b, 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(b[i].st, PGRES_TUPLES_OK);
		memcpy(pids[i], b[i].val[0], 64);
	}
}

#define AFTER_N 20

/*
 * The server restarts while the loop is not running (system() blocks): the pool
 * notices when it next looks, and queries issued afterwards wait for the
 * reconnect and succeed, on new backends.
 */
static void test_reconnect(void **state)
{
	char before[2][64], after[2][64], v[AFTER_N][16];
	struct box b[AFTER_N];
	struct db *db;
	int rc;

	(void)state;
	if (!restart_cmd)
		skip();
	memset(b, 0, sizeof(b));
	db = db_new(base, conninfo, 2);
	assert_non_null(db);
	assert_int_equal(db_prepare(db, "t_echo", "SELECT $1::int", 1), 0);
	wait_connected(db, 2);
	backend_pids(db, before);

	rc = system(restart_cmd);
	assert_int_equal(rc, 0);

	for (int i = 0; i < AFTER_N; i++) {
		const char *p[1] = { v[i] };

		snprintf(v[i], sizeof(v[i]), "%d", i);
		/* Keyed, unkeyed and prepared (re-prepared on the new connections). */
		if (i % 3 == 2)
			rc = db_exec_prepared(db, (uint64_t)i, "t_echo", 1, p, box_cb, &b[i]);
		else
			rc = db_query(db, i % 3 ? (uint64_t)i : 0, "SELECT $1::int", 1, p,
				      box_cb, &b[i]);
		assert_int_equal(rc, 0);
	}
	wait_boxes(b, AFTER_N);
	for (int i = 0; i < AFTER_N; i++) {
		if (b[i].null_res || b[i].st != PGRES_TUPLES_OK)
			fail_msg("query %d after the restart failed: %s", i, b[i].err);
		assert_string_equal(b[i].val[0], v[i]);
		assert_int_equal(b[i].calls, 1);
	}
	wait_connected(db, 2);
	backend_pids(db, after);
	assert_string_not_equal(before[0], after[0]);
	assert_string_not_equal(before[1], after[1]);
	db_free(db);
}

struct outage {
	struct db *db;
	struct box *sleeper;
};

static bool outage_seen(void *arg)
{
	struct outage *o = arg;

	return o->sleeper->calls > 0 && db_connected(o->db) == 0;
}

struct restart_job {
	const char *path;
	struct boxes bs;
};

/* The background restart writes its exit status to path when it ends. */
static bool restart_done(void *arg)
{
	struct restart_job *j = arg;
	FILE *fp = fopen(j->path, "r");
	int rc = -1;

	if (fp) {
		if (fscanf(fp, "%d", &rc) != 1)
			rc = -1;
		fclose(fp);
	}
	return rc >= 0 && boxes_done(&j->bs);
}

/*
 * The server restarts while the loop runs: the query in flight fails (once),
 * the connections retry with back-off, queries issued during the outage wait
 * and succeed when the server is back.
 */
static void test_outage(void **state)
{
	char path[] = "/tmp/parley-test-db.XXXXXX", cmd[1024], v[AFTER_N][16];
	struct box sleeper = { 0 }, b[AFTER_N];
	struct restart_job job = { path, { b, AFTER_N } };
	struct outage o;
	struct db *db;
	FILE *fp;
	int fd, rc = -1;

	(void)state;
	if (!restart_cmd)
		skip();
	memset(b, 0, sizeof(b));
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	db = db_new(base, conninfo, 2);
	assert_non_null(db);
	o.db = db;
	o.sleeper = &sleeper;
	wait_connected(db, 2);
	assert_int_equal(db_query(db, 1, "SELECT pg_sleep(60)", 0, NULL, box_cb, &sleeper), 0);
	run_for(0.2);
	assert_int_equal(sleeper.calls, 0);

	/* Detached from our stdout, so a TAP reader never waits for the job. */
	snprintf(cmd, sizeof(cmd), "( (%s); echo $? >%s ) </dev/null >/dev/null 2>&1 &",
		 restart_cmd, path);
	assert_int_equal(system(cmd), 0);
	assert_true(run_until(outage_seen, &o, WAIT_S));
	assert_int_equal(sleeper.calls, 1);
	assert_true(sleeper.null_res || sleeper.st != PGRES_TUPLES_OK);
	print_message("# the query in flight failed: %s\n", sleeper.err);

	for (int i = 0; i < AFTER_N; i++) {
		const char *p[1] = { v[i] };

		snprintf(v[i], sizeof(v[i]), "%d", i);
		assert_int_equal(db_query(db, i % 2 ? 1 : 0, "SELECT $1::int", 1, p, box_cb,
					  &b[i]), 0);
	}
	assert_int_equal(db_pending(db), AFTER_N);
	assert_true(run_until(restart_done, &job, WAIT_S));
	for (int i = 0; i < AFTER_N; i++) {
		if (b[i].null_res || b[i].st != PGRES_TUPLES_OK)
			fail_msg("query %d issued during the outage failed: %s", i, b[i].err);
		assert_string_equal(b[i].val[0], v[i]);
		assert_int_equal(b[i].calls, 1);
	}
	fp = fopen(path, "r");
	assert_non_null(fp);
	assert_int_equal(fscanf(fp, "%d", &rc), 1);
	fclose(fp);
	unlink(path);
	assert_int_equal(rc, 0);
	wait_connected(db, 2);
	assert_int_equal(sleeper.calls, 1);
	db_free(db);
}

#define FREE_N 24

struct counted {
	int calls[FREE_N];
	int with_res;
	int requeue_rc[FREE_N];
	struct db *db;
	bool free_in_cb;
};

struct counted_item {
	struct counted *c;
	int i;
};

static void counted_cb(void *arg, const PGresult *res, const char *err)
{
	struct counted_item *it = arg;
	struct counted *c = it->c;

	c->calls[it->i]++;
	if (res) {
		c->with_res++;
		if (c->free_in_cb)
			db_free(c->db);
	} else {
		assert_non_null(err);
		/* The pool is going away: new queries are refused, not lost. */
		c->requeue_rc[it->i] = db_query(c->db, 0, "SELECT 1", 0, NULL, NULL, NULL);
	}
}

static void issue_counted(struct counted *c, struct counted_item *items, int from, int to,
			  uint64_t affinity)
{
	for (int i = from; i < to; i++) {
		items[i].c = c;
		items[i].i = i;
		assert_int_equal(db_query(c->db, affinity, "SELECT 1", 0, NULL, counted_cb,
					  &items[i]), 0);
	}
}

/* db_free fails queries waiting, queued before any connect, and in flight. */
static void test_free_pending(void **state)
{
	struct counted c;
	struct counted_item items[FREE_N];
	struct box sleeper = { 0 };

	(void)state;
	/* Never connected: the loop never ran. */
	memset(&c, 0, sizeof(c));
	c.db = db_new(base, conninfo, 2);
	assert_non_null(c.db);
	issue_counted(&c, items, 0, 8, 0);
	issue_counted(&c, items, 8, FREE_N, 5);
	assert_int_equal(db_pending(c.db), FREE_N);
	db_free(c.db);
	for (int i = 0; i < FREE_N; i++) {
		assert_int_equal(c.calls[i], 1);
		assert_int_equal(c.requeue_rc[i], -1);
	}
	assert_int_equal(c.with_res, 0);

	/* Connected, with queries in flight behind a slow one and more waiting. */
	memset(&c, 0, sizeof(c));
	c.db = db_new(base, conninfo, 1);
	assert_non_null(c.db);
	wait_connected(c.db, 1);
	assert_int_equal(db_query(c.db, 3, "SELECT pg_sleep(3)", 0, NULL, box_cb, &sleeper), 0);
	issue_counted(&c, items, 0, FREE_N, 3);
	run_for(0.2);
	assert_int_equal(sleeper.calls, 0);
	assert_int_equal(db_pending(c.db), FREE_N + 1);
	db_free(c.db);
	assert_int_equal(sleeper.calls, 1);
	assert_true(sleeper.null_res);
	for (int i = 0; i < FREE_N; i++)
		assert_int_equal(c.calls[i], 1);
	assert_int_equal(c.with_res, 0);
	run_for(0.1);	/* nothing may run late */
	assert_int_equal(sleeper.calls, 1);
}

/* db_free from inside a callback: the others still get exactly one call. */
static void test_free_in_callback(void **state)
{
	struct counted c;
	struct counted_item items[FREE_N];

	(void)state;
	memset(&c, 0, sizeof(c));
	c.db = db_new(base, conninfo, 2);
	assert_non_null(c.db);
	c.free_in_cb = true;
	wait_connected(c.db, 2);
	issue_counted(&c, items, 0, FREE_N / 2, 9);
	issue_counted(&c, items, FREE_N / 2, FREE_N, 0);
	run_for(1.0);
	assert_int_equal(c.with_res, 1);
	for (int i = 0; i < FREE_N; i++)
		assert_int_equal(c.calls[i], 1);
}

/* No server: queries wait while the pool retries; db_free fails them. */
static void test_unreachable(void **state)
{
	struct counted c;
	struct counted_item items[FREE_N];

	(void)state;
	memset(&c, 0, sizeof(c));
	c.db = db_new(base, "host=/nonexistent-parley-test port=1 dbname=x", 2);
	assert_non_null(c.db);
	issue_counted(&c, items, 0, 4, 0);
	issue_counted(&c, items, 4, 8, 1);
	run_for(0.5);	/* a few back-off rounds */
	assert_int_equal(db_connected(c.db), 0);
	assert_int_equal(db_pending(c.db), 8);
	for (int i = 0; i < 8; i++)
		assert_int_equal(c.calls[i], 0);
	db_free(c.db);
	for (int i = 0; i < 8; i++)
		assert_int_equal(c.calls[i], 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_migrate),
		cmocka_unit_test(test_migrate_newer),
		cmocka_unit_test(test_migrate_concurrent),
		cmocka_unit_test(test_bad_args),
		cmocka_unit_test(test_query_params),
		cmocka_unit_test(test_prepared),
		cmocka_unit_test(test_affinity_order),
		cmocka_unit_test(test_concurrent),
		cmocka_unit_test(test_error_result),
		cmocka_unit_test(test_large_params),
		cmocka_unit_test(test_reconnect),
		cmocka_unit_test(test_outage),
		cmocka_unit_test(test_free_pending),
		cmocka_unit_test(test_free_in_callback),
		cmocka_unit_test(test_unreachable),
	};
	const char *require = getenv("PARLEY_TEST_REQUIRE_DB");

	/* A cluster of its own when there is one: restarting the shared one would
	 * cut the integration tests running meanwhile (make -j check). */
	conninfo = getenv("PARLEY_TEST_PG_RESTARTABLE");
	if (!conninfo || !*conninfo)
		conninfo = getenv("PARLEY_TEST_PG");
	restart_cmd = getenv("PARLEY_TEST_PG_RESTART");
	if (restart_cmd && !*restart_cmd)
		restart_cmd = NULL;
	if (!conninfo || !*conninfo) {
		if (require && strcmp(require, "1") == 0) {
			printf("1..1\nnot ok 1 - PARLEY_TEST_PG not set "
			       "(PARLEY_TEST_REQUIRE_DB=1)\n");
			return 1;
		}
		printf("1..0 # SKIP PARLEY_TEST_PG not set\n");
		return 0;
	}
	signal(SIGALRM, on_alarm);
	signal(SIGPIPE, SIG_IGN);
	alarm(OVERALL_S);
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

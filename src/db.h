/*
 * db.h - PostgreSQL on the event loop.
 *
 * A small pool of libpq connections in non-blocking mode, each watched by a
 * libevent event. db_query() queues a query and returns at once; its callback runs
 * on the loop when the result is in. Queries run in the order they were queued on
 * the connection they were given to; a query queued with the same non-zero
 * "affinity" key always goes to the same connection, so its order with the other
 * queries of that key holds. A connection that drops is reconnected with back-off
 * (capped); the queries it held fail (callback with res NULL) and queued ones wait.
 *
 * Prepared statements are registered once with db_prepare() and prepared on each
 * connection when it connects.
 */
#ifndef PARLEY_DB_H
#define PARLEY_DB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct db;
struct histogram;

/* res is NULL when the query could not run (connection lost, db_free): err says
 * why. Otherwise res is a PGresult (check PQresultStatus); the core frees it after
 * the callback returns. */
typedef void (*db_cb)(void *arg, const PGresult *res, const char *err);

struct db *db_new(struct event_base *base, const char *conninfo, unsigned pool_size);
/* Fails every pending query (callbacks run with res NULL) and closes the pool. */
void db_free(struct db *db);

/* Registers a prepared statement; call before or after connecting. */
int db_prepare(struct db *db, const char *name, const char *sql, int nparams);

/* Text parameters (NULL for SQL NULL). params are copied. cb may be NULL. */
int db_query(struct db *db, uint64_t affinity, const char *sql, int nparams,
	     const char *const *params, db_cb cb, void *arg);
int db_exec_prepared(struct db *db, uint64_t affinity, const char *name, int nparams,
		     const char *const *params, db_cb cb, void *arg);

/* From a query's submission to its callback, every query of every pool. */
extern struct histogram db_latency;

/* How many connections are up, and how many queries wait or run. */
unsigned db_connected(const struct db *db);
unsigned db_pending(const struct db *db);

/*
 * Schema migrations (schema/NNN_name.sql, compiled into the binary). These are
 * blocking and meant for start-up and parleyctl, never for the running loop.
 */
/* The schema version this build expects (the highest migration number). */
int db_schema_expected(void);
/* The version recorded in the database, 0 when none; -1 on error (msg in err). */
int db_schema_version(PGconn *conn, char *err, size_t errlen);
/* A secret every node of the cluster shares (parley_secrets): the first node
 * to start makes it from len random bytes, the others read the same. At
 * start-up only (blocking). 0, or -1 with err set. */
int db_shared_secret(PGconn *conn, const char *name, unsigned char *out, size_t len,
		     char *err, size_t errlen);
/* Applies pending migrations, each in its own transaction; reports each applied
 * one through report (may be NULL). Returns how many were applied, or -1. */
int db_migrate(PGconn *conn, void (*report)(void *arg, int version, const char *name),
	       void *arg, char *err, size_t errlen);

#endif

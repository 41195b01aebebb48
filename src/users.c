/*
 * users.c - accounts in PostgreSQL: SCRAM credentials per host and username.
 *
 * A password becomes two credentials (SCRAM-SHA-1 and SCRAM-SHA-256) through
 * PBKDF2, which costs milliseconds: on the daemon that runs on a worker thread,
 * then the row is written with a prepared statement on the pool.
 */
#include "users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "jid.h"
#include "log.h"
#include "module.h"
#include "sasl.h"
#include "server.h"
#include "session.h"
#include "worker.h"

#define COLS "sha1_iterations, sha1_salt, sha1_stored_key, sha1_server_key, " \
	"sha256_iterations, sha256_salt, sha256_stored_key, sha256_server_key"

static const char sql_get[] =
	"SELECT " COLS " FROM users WHERE host = $1 AND username = $2";
static const char sql_insert[] =
	"INSERT INTO users (host, username, " COLS ") "
	"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING";
static const char sql_update[] =
	"UPDATE users SET (" COLS ") = ($3, $4, $5, $6, $7, $8, $9, $10) "
	"WHERE host = $1 AND username = $2";
static const char sql_delete[] = "DELETE FROM users WHERE host = $1 AND username = $2";
static const char sql_list[] = "SELECT username FROM users WHERE host = $1 ORDER BY username";

int users_init(void)
{
	if (db_prepare(server.db, "users_get", sql_get, 2) < 0 ||
	    db_prepare(server.db, "users_insert", sql_insert, 10) < 0 ||
	    db_prepare(server.db, "users_update", sql_update, 10) < 0 ||
	    db_prepare(server.db, "users_delete", sql_delete, 2) < 0)
		return -1;
	return 0;
}

/* ---- credentials as the table's columns ---- */

struct creds_row {
	char text[2][4][128];	/* [hash][iterations, salt, stored, server] */
	const char *params[10];
};

/* Splits the storage string "ITER$SALT$STORED$SERVER" into the four columns. */
static int split_cred(const struct scram_cred *cred, char cols[4][128])
{
	char *enc = scram_cred_encode(cred), *save = NULL, *tok;
	int n = 0;

	if (!enc)
		return -1;
	for (tok = strtok_r(enc, "$", &save); tok && n < 4; tok = strtok_r(NULL, "$", &save))
		snprintf(cols[n++], 128, "%s", tok);
	free(enc);
	return n == 4 ? 0 : -1;
}

/* Derives both credentials; CPU-heavy (two PBKDF2 runs). */
static int make_row(const char *host, const char *user, const char *password,
		    struct creds_row *row)
{
	struct scram_cred c;

	for (int h = 0; h < 2; h++) {
		if (scram_cred_derive(h == 0 ? SCRAM_SHA_1 : SCRAM_SHA_256, password,
				      USERS_SCRAM_ITERATIONS, &c) < 0 ||
		    split_cred(&c, row->text[h]) < 0) {
			memset(&c, 0, sizeof(c));
			return -1;
		}
	}
	memset(&c, 0, sizeof(c));
	row->params[0] = host;
	row->params[1] = user;
	for (int h = 0; h < 2; h++)
		for (int i = 0; i < 4; i++)
			row->params[2 + 4 * h + i] = row->text[h][i];
	return 0;
}

/* The columns of one hash back into the storage string sasl.c decodes. */
static char *join_cred(const PGresult *res, int first)
{
	char *out;

	if (asprintf(&out, "%s$%s$%s$%s", PQgetvalue(res, 0, first),
		     PQgetvalue(res, 0, first + 1), PQgetvalue(res, 0, first + 2),
		     PQgetvalue(res, 0, first + 3)) < 0)
		return NULL;
	return out;
}

/* ---- asynchronous, on the loop ---- */

struct get_req {
	users_creds_cb cb;
	void *arg;
};

static void on_get(void *arg, const PGresult *res, const char *err)
{
	struct get_req *r = arg;
	char *sha1 = NULL, *sha256 = NULL;

	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_error("users", "credentials lookup failed: %s",
			  res ? PQresultErrorMessage(res) : err);
		r->cb(r->arg, USERS_ERROR, NULL, NULL);
	} else if (PQntuples(res) == 0) {
		r->cb(r->arg, USERS_NOT_FOUND, NULL, NULL);
	} else {
		sha1 = join_cred(res, 0);
		sha256 = join_cred(res, 4);
		r->cb(r->arg, sha1 && sha256 ? USERS_OK : USERS_ERROR, sha1, sha256);
	}
	free(sha1);
	free(sha256);
	free(r);
}

int users_get_creds(const char *host, const char *user, users_creds_cb cb, void *arg)
{
	struct get_req *r = malloc(sizeof(*r));
	const char *params[2] = { host, user };

	if (!r)
		return -1;
	r->cb = cb;
	r->arg = arg;
	if (db_exec_prepared(server.db, 0, "users_get", 2, params, on_get, r) < 0) {
		free(r);
		return -1;
	}
	return 0;
}

struct write_req {
	const char *stmt;		/* users_insert or users_update */
	char *host, *user, *password;
	struct creds_row row;
	int derived;			/* 0 ok, -1 failed (set by the worker) */
	users_done_cb cb;
	void *arg;
};

static void write_req_free(struct write_req *w)
{
	if (w->password) {
		memset(w->password, 0, strlen(w->password));
		free(w->password);
	}
	memset(&w->row, 0, sizeof(w->row));
	free(w->host);
	free(w->user);
	free(w);
}

static void on_written(void *arg, const PGresult *res, const char *err)
{
	struct write_req *w = arg;
	enum users_status st = USERS_ERROR;

	if (res && PQresultStatus(res) == PGRES_COMMAND_OK)
		st = atoi(PQcmdTuples((PGresult *)res)) > 0 ? USERS_OK
			: strcmp(w->stmt, "users_insert") == 0 ? USERS_EXISTS : USERS_NOT_FOUND;
	else
		log_error("users", "%s@%s: cannot store the account: %s", w->user, w->host,
			  res ? PQresultErrorMessage(res) : err);
	w->cb(w->arg, st);
	write_req_free(w);
}

static void derive_work(void *arg)
{
	struct write_req *w = arg;

	w->derived = make_row(w->host, w->user, w->password, &w->row);
}

static void derive_done(void *arg)
{
	struct write_req *w = arg;

	if (w->derived < 0 || server.shutting_down ||
	    db_exec_prepared(server.db, 0, w->stmt, 10, w->row.params, on_written, w) < 0) {
		w->cb(w->arg, USERS_ERROR);
		write_req_free(w);
	}
}

static int write_async(const char *stmt, const char *host, const char *user,
		       const char *password, users_done_cb cb, void *arg)
{
	struct write_req *w = calloc(1, sizeof(*w));

	if (!w)
		return -1;
	w->stmt = stmt;
	w->host = strdup(host);
	w->user = strdup(user);
	w->password = strdup(password);
	w->cb = cb;
	w->arg = arg;
	if (!w->host || !w->user || !w->password ||
	    worker_submit(derive_work, derive_done, w) < 0) {
		write_req_free(w);
		return -1;
	}
	return 0;
}

int users_create(const char *host, const char *user, const char *password,
		 users_done_cb cb, void *arg)
{
	return write_async("users_insert", host, user, password, cb, arg);
}

int users_set_password(const char *host, const char *user, const char *password,
		       users_done_cb cb, void *arg)
{
	return write_async("users_update", host, user, password, cb, arg);
}

void users_removed(const char *host, const char *user)
{
	struct jid *bare = jid_make(user, host, NULL, NULL);
	struct session *list[1];
	size_t n;

	if (!bare) {
		log_error("users", "%s@%s: removed, but no memory to end its sessions", user, host);
		return;
	}
	log_info("users", "%s: the account was removed", bare->full);
	/* One at a time, looked up again each turn: closing one runs hooks that
	 * may end its siblings too. Each close unbinds, so this ends. */
	for (n = 0; n <= SESSION_RESOURCES_MAX && sm_user_sessions(bare, list, 1) > 0; n++)
		session_close(list[0], "not-authorized", "the account was removed");
	struct hook_args a = { .to = bare, .user = bare->local };
	hooks_run(host, HOOK_USER_REMOVED, &a);
	jid_free(bare);
}

struct remove_req {
	users_done_cb cb;
	void *arg;
	char *host, *user;
};

static void on_removed(void *arg, const PGresult *res, const char *err)
{
	struct remove_req *r = arg;
	enum users_status st = USERS_ERROR;

	if (res && PQresultStatus(res) == PGRES_COMMAND_OK)
		st = atoi(PQcmdTuples((PGresult *)res)) > 0 ? USERS_OK : USERS_NOT_FOUND;
	else
		log_error("users", "%s@%s: the account could not be removed: %s", r->user, r->host,
			  res ? PQresultErrorMessage(res) : err);
	/* The answer first (XEP-0077 §3.2), then the account's streams end. */
	r->cb(r->arg, st);
	if (st == USERS_OK)
		users_removed(r->host, r->user);
	free(r->host);
	free(r->user);
	free(r);
}

int users_remove(const char *host, const char *user, users_done_cb cb, void *arg)
{
	struct remove_req *r = calloc(1, sizeof(*r));
	const char *params[2] = { host, user };

	if (!r || !(r->host = strdup(host)) || !(r->user = strdup(user))) {
		if (r)
			free(r->host);
		free(r);
		return -1;
	}
	r->cb = cb;
	r->arg = arg;
	if (db_exec_prepared(server.db, 0, "users_delete", 2, params, on_removed, r) < 0) {
		free(r->host);
		free(r->user);
		free(r);
		return -1;
	}
	return 0;
}

/* ---- blocking, for parleyctl ---- */

static enum users_status exec_sync(PGconn *conn, const char *sql, int n,
				   const char *const *params, bool insert, char *err,
				   size_t errlen)
{
	PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
	enum users_status st;

	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		snprintf(err, errlen, "%s", PQresultErrorMessage(res));
		err[strcspn(err, "\n")] = '\0';
		st = USERS_ERROR;
	} else {
		st = atoi(PQcmdTuples(res)) > 0 ? USERS_OK
			: insert ? USERS_EXISTS : USERS_NOT_FOUND;
	}
	PQclear(res);
	return st;
}

static enum users_status write_sync(PGconn *conn, const char *sql, bool insert,
				    const char *host, const char *user, const char *password,
				    char *err, size_t errlen)
{
	struct creds_row row;
	enum users_status st;

	if (strlen(password) > SASL_MAX_PASSWORD || !*password) {
		snprintf(err, errlen, "the password must be 1 to %d bytes", SASL_MAX_PASSWORD);
		return USERS_ERROR;
	}
	if (make_row(host, user, password, &row) < 0) {
		snprintf(err, errlen, "cannot derive the SCRAM credentials");
		return USERS_ERROR;
	}
	st = exec_sync(conn, sql, 10, row.params, insert, err, errlen);
	memset(&row, 0, sizeof(row));
	return st;
}

enum users_status users_create_sync(PGconn *conn, const char *host, const char *user,
				    const char *password, char *err, size_t errlen)
{
	return write_sync(conn, sql_insert, true, host, user, password, err, errlen);
}

enum users_status users_set_password_sync(PGconn *conn, const char *host, const char *user,
					  const char *password, char *err, size_t errlen)
{
	return write_sync(conn, sql_update, false, host, user, password, err, errlen);
}

enum users_status users_remove_sync(PGconn *conn, const char *host, const char *user,
				    char *err, size_t errlen)
{
	const char *params[2] = { host, user };

	return exec_sync(conn, sql_delete, 2, params, false, err, errlen);
}

long users_list_sync(PGconn *conn, const char *host, void (*fn)(void *arg, const char *user),
		     void *arg, char *err, size_t errlen)
{
	const char *params[1] = { host };
	PGresult *res = PQexecParams(conn, sql_list, 1, NULL, params, NULL, NULL, 0);
	long n;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "%s", PQresultErrorMessage(res));
		err[strcspn(err, "\n")] = '\0';
		PQclear(res);
		return -1;
	}
	n = PQntuples(res);
	for (long i = 0; i < n; i++)
		fn(arg, PQgetvalue(res, (int)i, 0));
	PQclear(res);
	return n;
}

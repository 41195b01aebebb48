/*
 * users.h - accounts in PostgreSQL: SCRAM credentials per host and username.
 *
 * The loop-side functions are asynchronous (db_query + worker threads for the
 * PBKDF2 that turns a password into credentials); the _sync ones block and are
 * for parleyctl only.
 */
#ifndef PARLEY_USERS_H
#define PARLEY_USERS_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

/* PBKDF2 iterations for new credentials (RFC 7677 asks for at least 4096). */
#define USERS_SCRAM_ITERATIONS 4096

enum users_status { USERS_OK = 0, USERS_NOT_FOUND = 1, USERS_EXISTS = 2, USERS_ERROR = -1 };

/* found: the two stored credential strings (scram_cred_encode format). */
typedef void (*users_creds_cb)(void *arg, enum users_status st, const char *sha1,
			       const char *sha256);
typedef void (*users_done_cb)(void *arg, enum users_status st);

/* Prepares the statements on the server's pool; call once at start-up. */
int users_init(void);

int users_get_creds(const char *host, const char *user, users_creds_cb cb, void *arg);
int users_create(const char *host, const char *user, const char *password,
		 users_done_cb cb, void *arg);
int users_set_password(const char *host, const char *user, const char *password,
		       users_done_cb cb, void *arg);
/* Deletes the account (the schema's cascades take its roster, offline messages
 * and last activity); once the callback has run, users_removed() follows. */
int users_remove(const char *host, const char *user, users_done_cb cb, void *arg);
/* The account is gone from the database (by users_remove or by parleyctl):
 * its sessions end with <not-authorized/> and HOOK_USER_REMOVED runs, so each
 * module forgets what it kept for it in memory. */
void users_removed(const char *host, const char *user);

/* Blocking versions for parleyctl. err gets a sentence on USERS_ERROR. */
enum users_status users_create_sync(PGconn *conn, const char *host, const char *user,
				    const char *password, char *err, size_t errlen);
enum users_status users_set_password_sync(PGconn *conn, const char *host, const char *user,
					  const char *password, char *err, size_t errlen);
enum users_status users_remove_sync(PGconn *conn, const char *host, const char *user,
				    char *err, size_t errlen);
/* Calls fn for each username of host, in order; returns how many, or -1. */
long users_list_sync(PGconn *conn, const char *host, void (*fn)(void *arg, const char *user),
		     void *arg, char *err, size_t errlen);

#endif

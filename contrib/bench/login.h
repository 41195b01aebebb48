/*
 * login.h - logging accounts in: in a worker, paced connection attempts
 * and the count of how each ended; in the parent, the login phase that every
 * scenario begins with and the figures it writes.
 */
#ifndef BENCH_LOGIN_H
#define BENCH_LOGIN_H

#include <stdbool.h>
#include <stdint.h>

#include "session.h"
#include "worker.h"

/* ---- in a worker ---- */

/* The pacing and completion events; fatal on failure. After W.base. */
void login_setup(void);
/* Connects the slots queue[0, n) for purpose p at --login-rate, at most
 * --max-pending at once; done() once every attempt has ended (NULL: never). */
void login_begin(uint32_t *queue, uint32_t n, enum purpose p, void (*done)(void));
/* Accounts for the end of one login attempt, exactly once: ok, or failed
 * for reason r (a probe's auth failure means a missing account). */
void login_finished(struct sess *s, bool ok, enum fail_reason r, const char *why);
/* C_LOGIN: which 0 logs in all accounts (offline: the senders), 1 the
 * offline receivers. */
void login_run(uint32_t which);
/* No attempt is waiting or under way. */
bool login_idle(void);
/* Worker 0 says how the logins go, every 2 s while they run. */
void login_progress(uint64_t now);

/* ---- in the parent ---- */

/* Logs side which in (as login_run()) and writes its figures with keys
 * prefixed by pfx; *sum gets the merged report. -1 on a fatal problem. */
int phase_login(uint32_t which, const char *pfx, struct report *sum);
/* The login scenario: one measured login phase. */
void scenario_login(void);

#endif

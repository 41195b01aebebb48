/*
 * accounts.h - making sure the accounts exist before the measured run: a
 * probe logs each one in, and the missing ones are created with
 * --register-cmd or by in-band registration (--ibr).
 */
#ifndef BENCH_ACCOUNTS_H
#define BENCH_ACCOUNTS_H

/* In a worker, C_PREPARE: probe, create, then report R_PREPARED. */
void accounts_prepare(void);
/* In the parent: has the workers prepare and writes the account figures.
 * 0 when the scenario can run, -1 on a fatal problem. */
int accounts_check(void);

#endif

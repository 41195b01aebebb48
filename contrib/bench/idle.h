/*
 * idle.h - the idle scenario: what an authenticated session that does
 * nothing costs the server in memory.
 */
#ifndef BENCH_IDLE_H
#define BENCH_IDLE_H

/* In the parent: N sessions log in and are held --hold seconds; the server's
 * memory is read before and --settle seconds after the last login. */
void scenario_idle(void);

#endif

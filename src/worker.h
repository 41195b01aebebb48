/*
 * worker.h - a few threads for CPU-heavy work that must not run on the loop.
 *
 * PBKDF2 over a password takes milliseconds; done on the event loop it would
 * stall every other connection. work() runs on a worker thread and must touch
 * nothing but its argument; done() then runs on the loop thread.
 */
#ifndef PARLEY_WORKER_H
#define PARLEY_WORKER_H

struct event_base;

int worker_init(struct event_base *base, unsigned nthreads);
/* Returns 0, or -1 (memory) in which case nothing will run. */
int worker_submit(void (*work)(void *arg), void (*done)(void *arg), void *arg);
/* Waits for running jobs, runs no more done() callbacks, joins the threads. */
void worker_shutdown(void);

#endif

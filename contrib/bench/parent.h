/*
 * parent.h - the parent's side of its workers: forking them, commands to
 * all, waiting for their reports, their CPU and memory, and the first error
 * of the run. The parent only coordinates; the scenarios (login.c, idle.c,
 * chat.c, offline.c, muc.c) drive it phase by phase.
 */
#ifndef BENCH_PARENT_H
#define BENCH_PARENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "worker.h"

struct parent {
	struct report *reps;	/* each worker's last report */
	uint8_t *pmap;		/* the merged online map */
	size_t pmap_len;
	char perr[512];		/* the first error; makes "ok" false */
	char used_mech[24];
	bool workers_broken;	/* a worker died or the deadline passed: no goodbye */
	uint64_t deadline;
	const char *phase;	/* what the run is doing, for error messages */
};

extern struct parent P;

/* Allocates the reports and the map, forks opt.j workers; fail_early() on
 * failure. */
void parent_spawn(void);
/* Records the run's first error (later ones are dropped). */
void set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Sends a command (and extra[0, elen)) to every worker; -1 if one is gone. */
int send_all(uint32_t type, const struct cmd *c, const void *extra, size_t elen);
/*
 * Waits until every worker has sent a report of the given type (0: only
 * watch for trouble until `until`). A worker's death, a fatal report or the
 * overall deadline ends the wait with -1.
 */
int wait_reports(uint32_t type, uint64_t until);
/* Ends the workers: SIGTERM, then SIGKILL for those still there after 1 s. */
void kill_workers(void);
/* The workers' CPU seconds (since before[], if given); *max_one gets the
 * busiest one's, now_each[] each one's total. */
double workers_cpu(double *max_one, const double *before, double *now_each);
/* The bench's resident memory (workers and parent), KiB. */
double workers_rss(void);
/* The workers' last reports merged into *s. */
void sum_reports(struct report *s);

#endif

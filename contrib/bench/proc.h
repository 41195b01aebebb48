/*
 * proc.h - CPU and memory of processes from /proc: the server's (--pid)
 * and the bench's own workers'. Linux only, like the rest of the bench.
 */
#ifndef BENCH_PROC_H
#define BENCH_PROC_H

#include <stdint.h>
#include <sys/types.h>

/* The number after "KEY:" in /proc/PID/FILE (kB); 0, or -1 if absent. */
int proc_status_kib(pid_t pid, const char *file, const char *key, uint64_t *out);
/* utime + stime of a process, in seconds; NAN if it cannot be read. */
double proc_cpu_s(pid_t pid);

struct mem { double rss, pss; };

/* The sums over --pid; NAN without --pid. */
double server_cpu(void);
struct mem server_mem(void);

#endif

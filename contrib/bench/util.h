/*
 * util.h - the bench's small tools: the clocks, progress notes on stderr,
 * number formatting and parsing without stdio, a fast random generator, and
 * whole reads and writes on the pipes between the parent and its workers.
 *
 * The put_*() helpers are inline because the chat sender formats every
 * message with them; a call per field would show in the bench's own CPU.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

extern int worker_id;		/* -1 in the parent, else the worker's number */

/* CLOCK_MONOTONIC in ns: system-wide, so workers' stamps compare. */
uint64_t now_ns(void);
/* This process's CPU time in ns; 0 if the clock fails. */
uint64_t cpu_ns(void);

/* One line on stderr, tagged with the process ("parley-bench[w1]: ..."). */
void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parses the decimal number in [p, p+n) that must fill it; false on junk. */
bool parse_u64(const char *p, size_t n, uint64_t *out);

/* xorshift64*: seeds (0 becomes 1), then numbers below n. Per process. */
void rnd_seed(uint64_t seed);
uint32_t rnd_below(uint32_t n);

/* 0 on success, -1 on error (EINTR is retried). */
int write_full(int fd, const void *p, size_t n);
/* 0 on success, 1 on a clean EOF before the first byte, -1 on error. */
int read_full(int fd, void *p, size_t n);

/* Each writes at p, unterminated, and returns the end. */
static inline char *put_mem(char *p, const void *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

static inline char *put_u64(char *p, uint64_t v)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static inline char *put_hex(char *p, uint64_t v)
{
	static const char hex[] = "0123456789abcdef";
	char tmp[20];
	int n = 0;

	do {
		tmp[n++] = hex[v & 15];
		v >>= 4;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

#endif

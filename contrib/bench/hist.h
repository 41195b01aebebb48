/*
 * hist.h - latency histograms that merge by adding arrays.
 *
 * Log-linear buckets: values below 256 are exact, then 128 buckets per power
 * of two (under 0.8% error) up to 2^40. A struct hist is plain data of a
 * fixed size, so workers ship theirs to the parent whole, inside a report.
 */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdint.h>

#define H_SUB 7
#define H_N ((40 - H_SUB + 1) << H_SUB)

struct hist {
	uint64_t n, max, sum;
	uint64_t c[H_N];
};

void hist_add(struct hist *h, uint64_t v);
void hist_merge(struct hist *to, const struct hist *from);
/* The q-quantile (0..1), at most the largest value seen; NAN when empty. */
double hist_pct(const struct hist *h, double q);

#endif

/*
 * histogram.h - latency histograms for /metrics: fixed buckets in seconds, the
 * Prometheus way (cumulative when printed), no allocation, one add per event.
 */
#ifndef PARLEY_HISTOGRAM_H
#define PARLEY_HISTOGRAM_H

#include <time.h>

#define HISTOGRAM_BUCKETS 14

struct histogram {
	unsigned long long counts[HISTOGRAM_BUCKETS + 1];	/* the last: +Inf */
	unsigned long long count;
	double sum;
};

/* The upper bounds, in seconds: 50 µs to 10 s. */
extern const double histogram_bounds[HISTOGRAM_BUCKETS];

void histogram_add(struct histogram *h, double seconds);
/* Seconds from start to now (CLOCK_MONOTONIC). */
double histogram_since(const struct timespec *start);

#endif

/*
 * histogram.c - latency histograms (histogram.h).
 */
#include "histogram.h"

const double histogram_bounds[HISTOGRAM_BUCKETS] = {
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
	0.5, 1, 10,
};

void histogram_add(struct histogram *h, double seconds)
{
	unsigned i = 0;

	while (i < HISTOGRAM_BUCKETS && seconds > histogram_bounds[i])
		i++;
	h->counts[i]++;
	h->count++;
	h->sum += seconds;
}

double histogram_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) + (now.tv_nsec - start->tv_nsec) / 1e9;
}

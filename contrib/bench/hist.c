/*
 * hist.c - latency histograms (see hist.h): a receiver adds one value per
 * message, so adding is an index computation and three increments, and
 * nothing is sorted until the parent asks for a percentile.
 */
#include <math.h>

#include "hist.h"

static unsigned hist_index(uint64_t v)
{
	unsigned e, k;

	if (v < (2u << H_SUB))
		return (unsigned)v;
	if (v >= (1ull << 40))
		v = (1ull << 40) - 1;
	e = 63u - (unsigned)__builtin_clzll(v);
	k = e - H_SUB;
	return (k << H_SUB) + (unsigned)(v >> k);
}

/* The middle of bucket i. */
static double hist_value(unsigned i)
{
	unsigned k, m;

	if (i < (2u << H_SUB))
		return i;
	k = (i >> H_SUB) - 1;
	m = i - (k << H_SUB);
	return ((double)m + 0.5) * (double)(1ull << k);
}

void hist_add(struct hist *h, uint64_t v)
{
	h->c[hist_index(v)]++;
	h->n++;
	h->sum += v;
	if (v > h->max)
		h->max = v;
}

void hist_merge(struct hist *to, const struct hist *from)
{
	for (unsigned i = 0; i < H_N; i++)
		to->c[i] += from->c[i];
	to->n += from->n;
	to->sum += from->sum;
	if (from->max > to->max)
		to->max = from->max;
}

double hist_pct(const struct hist *h, double q)
{
	uint64_t want, seen = 0;

	if (!h->n)
		return NAN;
	want = (uint64_t)ceil(q * (double)h->n);
	if (want < 1)
		want = 1;
	for (unsigned i = 0; i < H_N; i++) {
		seen += h->c[i];
		if (seen >= want) {
			double v = hist_value(i);

			return v > (double)h->max ? (double)h->max : v;
		}
	}
	return (double)h->max;
}

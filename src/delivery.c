/*
 * delivery.c - reference-counted waiting for a stanza's fate (see delivery.h).
 */
#include "delivery.h"

#include <stdlib.h>

struct delivery {
	unsigned refs;
	bool durable, failed;
	delivery_fn done;
	void *arg;
};

static struct delivery *current;

struct delivery *delivery_new(bool durable, delivery_fn done, void *arg)
{
	struct delivery *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->refs = 1;
	d->durable = durable;
	d->done = done;
	d->arg = arg;
	return d;
}

struct delivery *delivery_ref(struct delivery *d)
{
	if (d)
		d->refs++;
	return d;
}

void delivery_release(struct delivery *d, bool ok)
{
	if (!d)
		return;
	if (!ok)
		d->failed = true;
	if (--d->refs > 0)
		return;
	if (current == d)
		current = NULL;
	if (d->done)
		d->done(d->arg, !d->failed);
	free(d);
}

bool delivery_durable(const struct delivery *d) { return d && d->durable; }
bool delivery_shared(const struct delivery *d) { return d && d->refs > 1; }

void delivery_set_done(struct delivery *d, delivery_fn done, void *arg)
{
	d->done = done;
	d->arg = arg;
}

struct delivery *delivery_current(void) { return current; }

struct delivery *delivery_enter(struct delivery *d)
{
	struct delivery *prev = current;

	current = d;
	return prev;
}

void delivery_leave(struct delivery *previous) { current = previous; }

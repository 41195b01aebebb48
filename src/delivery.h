/*
 * delivery.h - who waits for a stanza to reach its end, and who holds it up.
 *
 * XEP-0198 lets a server acknowledge a client's stanzas, and Parley's promise
 * is that an ack means "delivered, or durably stored". So the ack for a message
 * waits for whoever took charge of it on the way: a recipient's stream
 * management queue (until that client acks it) or the offline store (until the
 * INSERT commits). A delivery is that waiting, counted: each party that takes
 * charge takes a reference and releases it when its part is done; when the last
 * one goes, the delivery's done callback runs.
 *
 * While a stanza is routed, the delivery it belongs to is "current"; a module
 * that keeps the stanza beyond the call takes a reference on it. Stanzas the
 * routing produces on its own (errors, pushes) route with no current delivery.
 *
 * A durable delivery is one for a stanza already stored (an offline message
 * being flushed): whoever fails to deliver it must not store it again.
 */
#ifndef PARLEY_DELIVERY_H
#define PARLEY_DELIVERY_H

#include <stdbool.h>

struct delivery;

/* ok is false when any holder released it undelivered. */
typedef void (*delivery_fn)(void *arg, bool ok);

/* A delivery with one reference, the caller's; done (may be NULL) runs when the
 * last reference is released. */
struct delivery *delivery_new(bool durable, delivery_fn done, void *arg);
/* d may be NULL (then NULL is returned). */
struct delivery *delivery_ref(struct delivery *d);
/* Releases one reference; ok false: this holder could not deliver. d may be NULL. */
void delivery_release(struct delivery *d, bool ok);
bool delivery_durable(const struct delivery *d);
/* Someone other than the caller holds a reference. */
bool delivery_shared(const struct delivery *d);
/* Changes the callback (before the last release). */
void delivery_set_done(struct delivery *d, delivery_fn done, void *arg);

/* The delivery of the stanza being routed, or NULL. */
struct delivery *delivery_current(void);
/* Makes d (may be NULL) current; returns the one it replaces, for delivery_leave. */
struct delivery *delivery_enter(struct delivery *d);
void delivery_leave(struct delivery *previous);

#endif

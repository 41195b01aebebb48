/*
 * receive.h - what an online session does with the stanzas it gets: chat
 * messages are counted (latency, losses, duplicates, misroutes), pings are
 * answered, stream management requests acked.
 */
#ifndef BENCH_RECEIVE_H
#define BENCH_RECEIVE_H

#include "scan.h"
#include "session.h"

/* The bitmaps of received sequence numbers; fatal without memory. */
void recv_setup(void);
/* One top-level element for an online session: H_OK. */
int recv_online(struct sess *s, const struct el *e);

#endif

/*
 * offline.h - the offline scenario: the first half of the accounts log in
 * and send --messages to the second half, which is offline; once the server
 * has acked them all, the receivers log in and the bench counts what they
 * get. The parent runs the phases and writes the figures; the workers send,
 * wait for the acks and receive.
 */
#ifndef BENCH_OFFLINE_H
#define BENCH_OFFLINE_H

#include <stddef.h>
#include <stdint.h>

#include "session.h"

/* ---- in a worker ---- */

/* How many messages this worker's receivers should get. */
void offline_setup(void);
/* C_OSEND: every online sender sends its messages, then asks for the ack;
 * R_OSENT once all are acked (or given up on). */
void offline_send(void);
/* The receivers' login begins: R_ORECV once their messages are in, or the
 * server has been quiet for --quiet seconds (see offline_recv_check()). */
void offline_recv_begin(void);
/* From the periodic sweep: the receivers' end, and one sender's ack. */
void offline_recv_check(uint64_t now);
void offline_sweep(struct sess *s, uint64_t now);

/* Events of a session that matter while senders send: its output drained,
 * an <a h/> (XEP-0198) or the result of the final ping, or its loss. */
void offline_writable(struct sess *s);
void offline_ack(struct sess *s, const char *h, size_t hl);
void offline_fin(struct sess *s);
void offline_sender_lost(struct sess *s);

/* ---- in the parent ---- */

void scenario_offline(void);

#endif

/*
 * muc.h - the muc scenario: all accounts online join one room (--room), then
 * groupchat messages go to it at a fixed total rate, one step per rate of
 * --rates, until a step falls behind; each message reaches every occupant.
 * The parent runs the join phase and then chat.c's steps; the workers join
 * their accounts, count the room's presence and send as chat.c says, with
 * muc.c's messages.
 */
#ifndef BENCH_MUC_H
#define BENCH_MUC_H

#include <stdbool.h>
#include <stdint.h>

#include "scan.h"
#include "session.h"
#include "worker.h"

#define NS_MUC		"http://jabber.org/protocol/muc"
#define MUC_OWNER_ID	"muc-owner"	/* the id of the instant-room form's IQ */

/* C_MJOIN's which: the phases of the join, in this order. */
enum {
	MJ_CREATE,	/* account c->account joins alone and submits the form */
	MJ_REST,	/* every other online account joins, at --join-rate */
	MJ_SETTLE,	/* the last presences come in; the occupants send from now on */
};

/* ---- in a worker ---- */

/* The join state of each slot; fatal without memory. After W.base. */
void muc_setup(void);
/* C_MJOIN: one phase of the join; R_MJOINED when it is over. */
void muc_join(const struct cmd *c);
/* A presence to an online session: counted if it is the room's; the
 * self-presence (or error) of a joining occupant ends its join. */
void muc_presence(struct sess *s, const struct el *e);
/* The answer to the instant-room form (MUC_OWNER_ID). */
void muc_owner_answer(struct sess *s, const struct el *e, bool error);
/* An online session is gone: a join under way failed. */
void muc_lost(struct sess *s);
/* From the periodic sweep: joins that take too long, the end of settling. */
void muc_sweep(uint64_t now);

/* ---- in the parent ---- */

void scenario_muc(void);
/* The run's totals, from the workers' final reports. */
void muc_goodbye(const struct report *sum);

#endif

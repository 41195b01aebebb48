/*
 * chat.h - the chat scenario: all accounts online, 1:1 messages at a fixed
 * total rate from random users to random other users, one step per rate of
 * --rates, until a step falls behind. The parent runs the steps and writes
 * their figures; each worker sends its share of the rate. The muc scenario
 * runs the same steps with its own senders and messages (muc.h).
 */
#ifndef BENCH_CHAT_H
#define BENCH_CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "worker.h"

#define MSG_MAX		1024		/* one preformatted message */

/* ---- in a worker ---- */

/* The online lists and the step's events; fatal on failure. After W.base. */
void chat_setup(void);
/* C_ONLINE: who is online anywhere (the parent's merged map) and here. */
void chat_set_online(const uint8_t *map);
/* C_STEP: sends c->rate msgs/s from c->t_start for c->duration_ns, then
 * reports R_STEP after --drain. */
void chat_step(const struct cmd *c);
/* C_QUIT: no more sending. */
void chat_stop(void);
/* One message from sender s numbered seq at p (MSG_MAX bytes suffice); its
 * length. */
typedef size_t chat_builder(char *p, const struct sess *s, uint32_t seq);
/* From now on the senders are this worker's slots[0, n) (copied) and build()
 * makes each message, instead of 1:1 messages to random online accounts. */
void chat_set_senders(const uint32_t *slots, uint32_t n, chat_builder *build);
/* A chat message to account to (its full JID, or bare) stamped with now and
 * seq, at p (MSG_MAX bytes suffice); returns its length. Offline uses it too. */
size_t chat_message(char *p, uint32_t to, uint32_t seq, bool bare);
/* The same of any type to any JID (to[0, tolen)): the muc scenario's. */
size_t stamped_message(char *p, const char *type, const char *to, size_t tolen, uint32_t seq);

/* ---- in the parent ---- */

void scenario_chat(void);
/* The steps of --rates until one falls behind, with their figures. occupants
 * 0: 1:1 chat, each message delivered once; else each message is delivered
 * to that many occupants of a room. */
void chat_run_steps(uint32_t occupants);

#endif

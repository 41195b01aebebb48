/*
 * worker.h - a worker process: its share of the accounts, its state, and
 * the protocol of the two pipes to the parent (commands down, reports up).
 *
 * Both ends are the same binary, so the messages are the structs themselves:
 * a struct msg_hdr, then a struct cmd (down) or a struct report (up), then
 * optional extra bytes (the online map). A worker runs one libevent loop and
 * is single-threaded: W is the state that more than one of its files reads;
 * what one file alone uses stays static there.
 */
#ifndef BENCH_WORKER_H
#define BENCH_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hist.h"

struct event_base;
struct sess;

/* muc: join failures by condition, muc.c names them */
#define JOIN_CONDS	14

enum fail_reason {
	F_CONNECT, F_TLS, F_NEGOTIATION, F_AUTH, F_STREAM_ERROR, F_CLOSED, F_TIMEOUT,
	F_PROTOCOL, F_BIND, F_INTERNAL, F_COUNT
};

/* What a worker tells the parent at the end of a phase. */
struct report {
	uint32_t attempted, ok, failed, missing;
	uint32_t fail[F_COUNT];
	uint32_t registered, existing, reg_failed, resource_changed;
	uint32_t sm_offered, sm_used, senders_unacked, pad;
	uint64_t t_first, t_last;
	uint64_t sent, blocked, delivered, late, unique, dup, misrouted, foreign, bounced;
	uint64_t disconnects, acked, expected, pbkdf2, rx_total, stale;
	uint64_t t_send_first, t_acked, t_rx_last;
	uint64_t send_cpu_ns, send_wall_ns;	/* chat: this worker while it sent */
	/* muc: the room made (201) and configured, joins failed by condition,
	 * presences from the room, the owner form's error */
	uint32_t room_created, room_configured;
	uint32_t join_fail[JOIN_CONDS];
	uint64_t presences;
	char mech[24];
	char first_error[200];
	char bounce_cond[64];
	char owner_cond[64];
	struct hist h;
};

enum msg_type {
	C_PREPARE = 1, C_LOGIN, C_ONLINE, C_STEP, C_OSEND, C_ORECV, C_QUIT, C_MJOIN,
	R_PREPARED = 101, R_LOGGED_IN, R_ONLINE, R_STEP, R_OSENT, R_ORECV, R_FINAL, R_FATAL,
	R_MJOINED,
};

struct msg_hdr {
	uint32_t type;
	uint32_t len;
};

struct cmd {
	uint32_t which;		/* C_LOGIN: 0 all/senders, 1 receivers; C_MJOIN: muc.h */
	uint32_t step;
	uint32_t account;	/* C_MJOIN 0: the account that makes the room */
	double rate;		/* this worker's share, msgs/s */
	uint64_t t_start, duration_ns, drain_ns;
};

struct worker {
	struct event_base *base;
	struct sess *s;				/* one slot per account of this worker */
	uint32_t nslots, nsend;			/* slots [0, nsend) send, the rest receive */
	uint32_t send_first, recv_first;	/* global index of slot 0 / slot nsend */
	uint32_t senders_total, receivers_total;	/* offline: S and R */
	uint32_t *all_slots;			/* room for nslots slot numbers */
	/* the login phase under way */
	uint32_t *queue, nqueue, next, pending;
	uint8_t purpose;
	uint64_t t_phase;
	struct report rep;			/* of the phase under way */
	/* addresses: every account's full JID; bare is the prefix up to '/' */
	char *jids;
	uint32_t *jid_off;
	uint16_t *jid_len, *bare_len;
	size_t prefix_len;
	/* the accounts online anywhere, one bit each, as the parent merges them */
	uint8_t *online_map;
	size_t online_map_len;
	/* the chat step under way, as the receivers count it */
	bool step_open;
	uint64_t step_start;
	/* receive accounting over the whole run */
	uint64_t unique, dup, misrouted, foreign, bounced, rx_total, disconnects, stale;
	bool sm_offered, sm_used;
	uint64_t sent_total, last_rx;
	char bounce_cond[64];
};

extern struct worker W;

/* Runs worker id on its ends of the pipes until the parent says quit; never
 * returns. */
void worker_main(int id, int cmd, int rep) __attribute__((noreturn));

/* Sends W.rep (and extra[0, elen)) as a report of this type; exits if the
 * parent is gone. */
void report_send(uint32_t type, const void *extra, size_t elen);
/* Zeroes W.rep for the next phase. */
void rep_reset(void);
/* Reports R_FATAL with the reason and exits: for what the run cannot survive. */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif

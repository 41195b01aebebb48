/*
 * offline.c - the offline scenario (see offline.h).
 *
 * Sender g of S sends messages g, g+S, g+2S, ... of --messages, message k
 * going to receiver (k/S + g) mod R, so every worker knows how many its own
 * receivers should get without asking. A sender keeps OFFLINE_FILL bytes
 * queued and refills as the queue drains.
 *
 * When is a message stored? With XEP-0198 the sender asks with <r/> until
 * the server's <a h/> covers everything it sent; a server that acks only
 * what it has committed (Parley) answers with less at first and then more.
 * Without it, the ack is a final IQ ping round trip, which shows that the
 * server routed the messages, not that it stored them: the JSON says which
 * ("ack_method").
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "chat.h"
#include "json.h"
#include "login.h"
#include "offline.h"
#include "options.h"
#include "parent.h"
#include "util.h"
#include "worker.h"

#define OFFLINE_FILL	(32 * 1024)	/* offline senders keep this much queued */

static bool osending, orecv;		/* senders are sending, receivers receiving */
static uint32_t senders_open;		/* senders not acked yet */
static uint64_t expected_local;		/* messages for this worker's receivers */

/* ---- in a worker: sending ---- */

void offline_setup(void)
{
	uint32_t S = W.senders_total, R = W.receivers_total;

	for (uint64_t k = 0; k < opt.messages; k++) {
		uint32_t g = (uint32_t)(k % S);
		uint32_t to = S + (uint32_t)((k / S + g) % R);

		if (to >= W.recv_first && to < W.recv_first + (W.nslots - W.nsend))
			expected_local++;
	}
}

static void offline_check_done(void)
{
	if (!osending || senders_open > 0)
		return;
	osending = false;
	W.rep.t_acked = now_ns();
	W.rep.bounced = W.bounced;
	W.rep.sm_offered = W.sm_offered;
	W.rep.sm_used = W.sm_used;
	snprintf(W.rep.bounce_cond, sizeof(W.rep.bounce_cond), "%s", W.bounce_cond);
	report_send(R_OSENT, NULL, 0);
}

static void sender_ask(struct sess *s)
{
	s->t_ask = now_ns();
	sess_puts(s, "<r xmlns='" NS_SM "'/>");
}

/* The sender's messages are all acked (full), or the server's h stopped short
 * of our count for --quiet seconds: it counts differently; take its word. */
static void sender_acked(struct sess *s, bool full)
{
	if (!full) {
		W.rep.senders_unacked++;
		if (opt.verbose)
			fprintf(stderr, "parley-bench: a sender's acks stop at h=%" PRIu32
				" of %" PRIu32 "\n", s->last_h, s->sm_out);
	}
	s->acked = true;
	W.rep.acked += s->sent_here;
	senders_open--;
	offline_check_done();
}

/* The final request: <r/> with stream management, else a ping. */
static void sender_finish(struct sess *s)
{
	char buf[300];

	s->fin_sent = true;
	if (s->sm_on) {
		s->t_progress = now_ns();
		sender_ask(s);
		return;
	}
	snprintf(buf, sizeof(buf), "<iq type='get' id='fin' to='%s'>"
		 "<ping xmlns='" NS_PING "'/></iq>", opt.host);
	sess_puts(s, buf);
}

/* Queues this sender's messages while its output is short; the write
 * callback calls back as the queue drains. Then asks for the ack. */
static void offline_fill(struct sess *s)
{
	char buf[MSG_MAX];
	uint32_t g = s->idx;	/* senders are accounts 0..S-1 */
	uint32_t S = W.senders_total, R = W.receivers_total;

	while (s->state == S_ONLINE && s->next_k < opt.messages &&
	       evbuffer_get_length(bufferevent_get_output(s->bev)) < OFFLINE_FILL) {
		uint64_t k = s->next_k, i = k / S;
		uint32_t to = S + (uint32_t)((i + g) % R);
		size_t len = chat_message(buf, to, (uint32_t)i, true);

		if (!W.rep.t_send_first)
			W.rep.t_send_first = now_ns();
		sess_write(s, buf, len);
		s->next_k += S;
		s->sent_here++;
		W.rep.sent++;
		W.sent_total++;
		if (s->sm_on)
			s->sm_out++;
	}
	if (s->state == S_ONLINE && s->next_k >= opt.messages && !s->fin_sent)
		sender_finish(s);
}

void offline_writable(struct sess *s)
{
	if (osending && s->state == S_ONLINE && !s->fin_sent)
		offline_fill(s);
}

void offline_send(void)
{
	rep_reset();
	osending = true;
	senders_open = 0;
	for (uint32_t i = 0; i < W.nsend; i++) {
		struct sess *s = &W.s[i];

		s->next_k = s->idx;	/* sender g sends messages g, g+S, g+2S, ... */
		s->sent_here = 0;
		s->fin_sent = s->acked = false;
		if (s->state == S_ONLINE)
			senders_open++;
	}
	for (uint32_t i = 0; i < W.nsend; i++)
		if (W.s[i].state == S_ONLINE)
			offline_fill(&W.s[i]);
	offline_check_done();
}

void offline_ack(struct sess *s, const char *v, size_t vl)
{
	uint64_t h;

	if (!osending || !s->fin_sent || s->acked || !parse_u64(v, vl, &h))
		return;
	/* A server that acks only what is stored or acked by the recipient
	 * (Parley) answers with less at first, then sends more <a/> as it
	 * commits; others answer each <r/>. */
	if ((uint32_t)h != s->last_h) {
		s->last_h = (uint32_t)h;
		s->t_progress = now_ns();
	}
	if ((uint32_t)h == s->sm_out)
		sender_acked(s, true);
	else if (now_ns() - s->t_ask > 50000000ull)
		sender_ask(s);	/* else the sweep asks again */
}

void offline_fin(struct sess *s)
{
	if (osending && !s->acked)
		sender_acked(s, true);
}

void offline_sender_lost(struct sess *s)
{
	if (osending && s - W.s < (ptrdiff_t)W.nsend && !s->acked) {
		s->acked = true;
		senders_open--;
		W.rep.senders_unacked++;
		offline_check_done();
	}
}

void offline_sweep(struct sess *s, uint64_t now)
{
	if (!osending || !s->sm_on || !s->fin_sent || s->acked || s->state != S_ONLINE)
		return;
	if (now - s->t_progress > (uint64_t)(opt.quiet_s * 1e9))
		sender_acked(s, false);
	else if (now - s->t_ask > 200000000ull)
		sender_ask(s);
}

/* ---- in a worker: receiving ---- */

void offline_recv_begin(void)
{
	orecv = true;
	W.last_rx = 0;
}

void offline_recv_check(uint64_t now)
{
	uint64_t last = W.t_phase;
	bool all, quiet;

	if (!orecv || !login_idle())
		return;
	all = W.unique >= expected_local;
	if (W.last_rx > last)
		last = W.last_rx;
	if (W.rep.t_last > last)
		last = W.rep.t_last;
	quiet = now - last > (uint64_t)(opt.quiet_s * 1e9);
	if (all || quiet) {
		orecv = false;
		W.rep.unique = W.unique;
		W.rep.dup = W.dup;
		W.rep.expected = expected_local;
		W.rep.t_rx_last = W.last_rx;
		W.rep.stale = W.stale;
		report_send(R_ORECV, NULL, 0);
	}
}

/* ---- in the parent ---- */

/* The senders send; -1 if the run cannot go on. *sent gets the count. */
static int offline_store(uint64_t *sent)
{
	struct report sum;
	struct cmd c = { 0 };
	double store_s;

	P.phase = "storing offline messages";
	if (send_all(C_OSEND, &c, NULL, 0) < 0 || wait_reports(R_OSENT, 0) < 0)
		return -1;
	sum_reports(&sum);
	*sent = sum.sent;
	store_s = sum.t_acked > sum.t_send_first ? (double)(sum.t_acked - sum.t_send_first) / 1e9
						 : NAN;
	j_bool("sm_offered", sum.sm_offered);
	j_bool("sm_used", sum.sm_used);
	/* Without XEP-0198 the ping only shows the server routed the messages,
	 * not that it stored them: say which one the store rate stands on. */
	j_str("ack_method", sum.sm_used ? "xep-0198" : "ping-round-trip");
	j_u64("sent", sum.sent);
	j_u64("acked", sum.acked);
	j_u64("senders_unacked", sum.senders_unacked);
	j_u64("bounced", sum.bounced);
	if (sum.bounce_cond[0])
		j_str("bounce_condition", sum.bounce_cond);
	j_num("store_seconds", store_s, 3);
	j_num("store_rate", (double)sum.acked / store_s, 1);
	note("stored: %" PRIu64 " sent, %" PRIu64 " acked (%s), %" PRIu64 " bounced in %.2f s",
	     sum.sent, sum.acked, sum.sm_used ? "XEP-0198" : "ping round trip", sum.bounced,
	     store_s);
	if (!sum.bounced)
		return 0;
	/* RFC 6121 §8.5.2.2: no offline store is service-unavailable. */
	if (strcmp(sum.bounce_cond, "service-unavailable") == 0)
		set_error("offline storage not offered by the server (%" PRIu64
			  " messages bounced with service-unavailable)", sum.bounced);
	else
		set_error("%" PRIu64 " messages bounced with %s", sum.bounced,
			  sum.bounce_cond[0] ? sum.bounce_cond : "errors");
	return -1;
}

/* The receivers log in and get what was stored for them. */
static void offline_flush(uint64_t sent)
{
	struct report sum;
	uint64_t t0 = now_ns();
	double flush_s;

	P.phase = "logging the receivers in and flushing";
	if (phase_login(1, "receiver_", &sum) < 0)
		return;
	flush_s = sum.t_rx_last > t0 ? (double)(sum.t_rx_last - t0) / 1e9 : NAN;
	j_u64("received_unique", sum.unique);
	j_u64("duplicates", sum.dup);
	j_u64("missing", sent > sum.unique ? sent - sum.unique : 0);
	j_u64("stale_from_earlier_runs", sum.stale);
	j_num("flush_seconds", flush_s, 3);
	j_num("flush_rate", (double)sum.unique / flush_s, 1);
	note("flushed %" PRIu64 " of %" PRIu64 " in %.2f s, %" PRIu64 " duplicates",
	     sum.unique, sent, flush_s, sum.dup);
	if (sum.unique < sent || sum.dup)
		set_error("%" PRIu64 " messages missing, %" PRIu64 " duplicates",
			  sent > sum.unique ? sent - sum.unique : 0, sum.dup);
}

void scenario_offline(void)
{
	struct report sum;
	uint64_t sent;

	j_u64("messages", opt.messages);
	j_u64("senders", opt.n / 2);
	j_u64("receivers", opt.n - opt.n / 2);
	P.phase = "logging the senders in";
	if (phase_login(0, "sender_", &sum) < 0)
		return;
	if (offline_store(&sent) == 0)
		offline_flush(sent);
}

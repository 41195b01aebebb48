/*
 * chat.c - the chat scenario (see chat.h).
 *
 * A worker sends from a 1 ms timer: at each tick, the messages due since the
 * step began at its share of the rate, each from a random online account of
 * its own to a random other account online anywhere. A sender whose output
 * queue is long is skipped and the message counted as not sent, so a slow
 * server shows as "send_skipped" and not as a queue in the bench. The
 * bench's own load is measured over the sending window only, so that the
 * parent can tell when a step measured the bench and not the server.
 *
 * With --server2 (s2s) the senders are the first server's accounts and the
 * receivers the second's (options.h), picked at random among those online, a
 * bounded number of tries each: every message crosses the s2s link one way.
 *
 * The muc scenario reuses the ticks and steps: it names the senders (the
 * occupants) and builds the messages (to the room) through a chat_builder.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "chat.h"
#include "json.h"
#include "login.h"
#include "options.h"
#include "parent.h"
#include "proc.h"
#include "session.h"
#include "util.h"
#include "ws.h"

#define SEND_BACKLOG	(256 * 1024)	/* skip a sender whose output queue is this long */

static struct event *tick_ev, *drain_ev;
static bool stepping, step_began;
static uint64_t step_end, step_cpu0, step_sent;
static double step_rate;
static uint32_t *online_all, n_online_all;	/* account numbers */
static uint32_t *online_local, n_online_local;	/* slots of this worker */
static chat_builder *builder;			/* NULL: 1:1 to online_all */

/* ---- in a worker ---- */

void chat_set_online(const uint8_t *map)
{
	n_online_all = n_online_local = 0;
	for (uint32_t i = 0; i < opt.n; i++)
		if (map[i / 8] & (1u << (i % 8)))
			online_all[n_online_all++] = i;
	for (uint32_t i = 0; i < W.nslots; i++)
		if (W.s[i].state == S_ONLINE)
			online_local[n_online_local++] = i;
}

void chat_set_senders(const uint32_t *slots, uint32_t n, chat_builder *build)
{
	memcpy(online_local, slots, (size_t)n * sizeof(*slots));
	n_online_local = n;
	builder = build;
}

size_t chat_message(char *p, uint32_t to, uint32_t seq, bool bare)
{
	return stamped_message(p, "chat", W.jids + W.jid_off[to],
			       bare ? W.bare_len[to] : W.jid_len[to], seq);
}

size_t stamped_message(char *p, const char *type, const char *to, size_t tolen, uint32_t seq)
{
	char *start = p;

	p = put_mem(p, "<message type='", 15);
	p = put_mem(p, type, strlen(type));
	p = put_mem(p, "' to='", 6);
	p = put_mem(p, to, tolen);
	p = put_mem(p, "' id='", 6);
	p = put_hex(p, seq);
	p = put_mem(p, "'><body>", 8);
	p = put_u64(p, now_ns());
	*p++ = ' ';
	p = put_u64(p, seq);
	p = put_mem(p, "</body></message>", 17);
	return (size_t)(p - start);
}

static void step_report(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	W.step_open = false;
	W.rep.sent = step_sent;
	report_send(R_STEP, NULL, 0);
}

/* The sending window is over: the bench's share of a core, then the drain. */
static void step_finish(uint64_t now)
{
	struct timeval tv;
	uint64_t d = step_end + (uint64_t)(opt.drain_s * 1e9) - now;

	W.rep.send_cpu_ns = cpu_ns() - step_cpu0;
	W.rep.send_wall_ns = now - W.step_start;
	stepping = false;
	event_del(tick_ev);
	tv.tv_sec = (time_t)(d / 1000000000u);
	tv.tv_usec = (suseconds_t)(d % 1000000000u / 1000);
	if (event_add(drain_ev, &tv) < 0)
		fatal("event_add failed");
}

#define PICK_TRIES	64

/* A random online slot of this worker's to send from (with --server2: on the
 * first server); UINT32_MAX when the tries found none. */
static uint32_t pick_sender(void)
{
	for (int i = 0; i < PICK_TRIES; i++) {
		uint32_t slot = online_local[rnd_below(n_online_local)];

		if (builder || !acct_on_second(W.s[slot].idx))
			return slot;
	}
	return UINT32_MAX;
}

/* A random online account other than from to send to (with --server2: on the
 * second server); UINT32_MAX when the tries found none. */
static uint32_t pick_receiver(uint32_t from)
{
	for (int i = 0; i < PICK_TRIES; i++) {
		uint32_t to = online_all[rnd_below(n_online_all)];

		if (to != from && (!opt.host2 || acct_on_second(to)))
			return to;
	}
	return UINT32_MAX;
}

/* Sends `left` messages from random senders, --burst at a time per sender. */
static void chat_send(uint64_t left)
{
	static char buf[MSG_MAX * MAX_BURST];
	size_t ends[MAX_BURST];	/* --ws: where each message ends, one frame each */

	while (left > 0) {
		uint32_t slot = pick_sender();
		struct sess *s = slot == UINT32_MAX ? NULL : &W.s[slot];
		size_t len = 0;
		uint32_t k = opt.burst < left ? opt.burst : (uint32_t)left, n = 0;

		if (!s || s->state != S_ONLINE || (!s->tls_on && s->fd < 0)) {
			left--;		/* a lost sender: this message is not sent */
			step_sent++;
			W.rep.blocked++;
			continue;
		}
		if (evbuffer_get_length(bufferevent_get_output(s->bev)) > SEND_BACKLOG) {
			left -= k;
			step_sent += k;
			W.rep.blocked += k;
			continue;
		}
		for (uint32_t i = 0; i < k; i++) {
			uint32_t to;

			if (builder) {
				len += builder(buf + len, s, s->seq++);
			} else {
				to = pick_receiver(s->idx);
				if (to == UINT32_MAX) {	/* counted as not sent */
					W.rep.blocked++;
					continue;
				}
				len += chat_message(buf + len, to, s->seq++, false);
			}
			ends[n++] = len;
		}
		if (s->ws && n > 1)
			ws_write_each(s, buf, ends, n);
		else if (n > 0)
			sess_write(s, buf, len);
		left -= k;
		step_sent += k;
		W.sent_total += n;
	}
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t now = now_ns(), due, left, cap;

	(void)fd, (void)what, (void)arg;
	if (!stepping || now < W.step_start)
		return;
	if (!step_began) {
		/* The drain after the window would dilute the bench's load. */
		step_began = true;
		step_cpu0 = cpu_ns();
	}
	if (now >= step_end) {
		step_finish(now);
		return;
	}
	if (n_online_local == 0 || (!builder && n_online_all < 2))
		return;
	due = (uint64_t)((double)(now - W.step_start) * step_rate / 1e9);
	left = due > step_sent ? due - step_sent : 0;
	/* Catch up after a stall, but no more than 10 ms' worth per tick so the
	 * loop keeps reading. */
	cap = (uint64_t)(step_rate / 100) + 64;
	if (left > cap)
		left = cap;
	chat_send(left);
}

void chat_step(const struct cmd *c)
{
	struct timeval tv = { 0, 1000 };

	rep_reset();
	step_rate = c->rate;
	W.step_start = c->t_start;
	step_end = c->t_start + c->duration_ns;
	step_sent = 0;
	step_began = false;
	stepping = true;
	W.step_open = true;
	if (event_add(tick_ev, &tv) < 0)
		fatal("event_add failed");
}

void chat_stop(void)
{
	event_del(tick_ev);
	stepping = false;
}

void chat_setup(void)
{
	online_all = calloc(opt.n, sizeof(*online_all));
	online_local = calloc(W.nslots ? W.nslots : 1, sizeof(*online_local));
	if (!online_all || !online_local)
		fatal("out of memory");
	tick_ev = event_new(W.base, -1, EV_PERSIST, tick_cb, NULL);
	drain_ev = event_new(W.base, -1, 0, step_report, NULL);
	if (!tick_ev || !drain_ev)
		fatal("cannot set up events");
}

/* ---- in the parent ---- */

static void step_json(double rate, const struct report *sum, uint32_t occupants, double cpu,
		      double mx, double srv, bool fell)
{
	j_open(NULL, '{');
	j_num("rate", rate, 0);
	j_u64("sent", sum->sent - sum->blocked);
	j_u64("send_skipped", sum->blocked);
	j_u64("delivered", sum->delivered);
	if (occupants) {
		j_u64("expected_deliveries", (sum->sent - sum->blocked) * occupants);
		j_u64("bounced", sum->bounced);
	}
	j_u64("delivered_late_from_earlier_steps", sum->late);
	j_num("delivered_per_s", (double)sum->delivered / opt.step_s, 1);
	j_num("latency_us_p50", hist_pct(&sum->h, 0.5), 0);
	j_num("latency_us_p99", hist_pct(&sum->h, 0.99), 0);
	j_num("latency_us_p999", hist_pct(&sum->h, 0.999), 0);
	j_num("latency_us_max", sum->h.n ? (double)sum->h.max : NAN, 0);
	j_num("server_cpu_s", srv, 2);
	j_num("server_cpu_s_per_100k", sum->delivered ? srv * 1e5 / sum->delivered : NAN, 3);
	j_bool("rate_reached", (double)(sum->sent - sum->blocked) >= 0.95 * rate * opt.step_s);
	j_num("bench_cpu_s", cpu, 2);
	j_num("bench_cpu_share", mx, 3);
	j_bool("bench_bottleneck", mx > 0.9);
	j_bool("fell_behind", fell);
	j_close('}');
}

/* Step i at rate msgs/s: 1 if it fell behind (delivered < 95 % of what was
 * sent times its recipients, or p99 over 1 s), 0 if not, -1 if the workers
 * failed. */
static int run_step(int i, double rate, uint32_t occupants)
{
	struct cmd c = { .step = (uint32_t)i, .rate = rate / opt.j };
	double before[MAX_WORKERS], cpu, mx = 0, srv0, srv, lat99;
	struct report sum;
	uint64_t expected;
	bool fell;

	c.t_start = now_ns() + 50000000;	/* every worker starts together */
	c.duration_ns = (uint64_t)(opt.step_s * 1e9);
	c.drain_ns = (uint64_t)(opt.drain_s * 1e9);
	workers_cpu(NULL, NULL, before);
	srv0 = server_cpu();
	P.phase = occupants ? "running a groupchat step" : "running a chat step";
	if (send_all(C_STEP, &c, NULL, 0) < 0 || wait_reports(R_STEP, 0) < 0)
		return -1;
	cpu = workers_cpu(NULL, before, NULL);
	for (int w = 0; w < opt.j; w++)
		if (P.reps[w].send_wall_ns &&
		    (double)P.reps[w].send_cpu_ns / (double)P.reps[w].send_wall_ns > mx)
			mx = (double)P.reps[w].send_cpu_ns / (double)P.reps[w].send_wall_ns;
	srv = server_cpu() - srv0;
	sum_reports(&sum);
	lat99 = hist_pct(&sum.h, 0.99);
	expected = (sum.sent - sum.blocked) * (occupants ? occupants : 1);
	fell = sum.delivered < 0.95 * (double)expected || !(lat99 <= 1e6) || sum.sent == 0;
	step_json(rate, &sum, occupants, cpu, mx, srv, fell);
	note("step %.0f msgs/s: sent %" PRIu64 ", delivered %" PRIu64 " of %" PRIu64
	     " (%.0f/s), p50 %.0f us, p99 %.0f us, server %.2f s CPU, bench %.0f%% of a core%s",
	     rate, sum.sent - sum.blocked, sum.delivered, expected,
	     (double)sum.delivered / opt.step_s, hist_pct(&sum.h, 0.5), lat99, srv,
	     100 * mx, fell ? " - fell behind" : "");
	return fell;
}

void chat_run_steps(uint32_t occupants)
{
	double last_ok_rate = NAN;
	int behind = 0;

	j_num("step_seconds", opt.step_s, 1);
	j_num("drain_seconds", opt.drain_s, 1);
	j_open("steps", '[');
	for (int i = 0; i < opt.nrates && !behind; i++) {
		uint64_t need = (uint64_t)((opt.step_s + opt.drain_s + 1) * 1e9);
		double rate = opt.rates[i];

		if (now_ns() + need > P.deadline) {
			note("stopping before %.0f msgs/s: --timeout leaves no room", rate);
			j_close(']');
			j_bool("truncated_by_timeout", true);
			if (i == 0)
				set_error("--timeout %.0f s leaves no time for a %.1f s step",
					  opt.timeout_s, opt.step_s);
			goto totals;
		}
		behind = run_step(i, rate, occupants);
		if (behind < 0) {
			j_close(']');
			return;
		}
		if (!behind)
			last_ok_rate = rate;
	}
	j_close(']');
totals:
	j_num("max_rate_sustained", last_ok_rate, 0);
}

void scenario_chat(void)
{
	struct report sum;
	struct cmd c = { 0 };

	P.phase = "logging in";
	if (phase_login(0, "", &sum) < 0)
		return;
	if (sum.ok < 2) {
		set_error("fewer than two sessions online");
		return;
	}
	P.phase = "sharing the online list";
	if (send_all(C_ONLINE, &c, P.pmap, P.pmap_len) < 0 || wait_reports(R_ONLINE, 0) < 0)
		return;
	chat_run_steps(0);
}

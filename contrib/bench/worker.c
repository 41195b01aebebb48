/*
 * worker.c - a worker process (see worker.h): its share of the accounts, the
 * commands from the parent, the periodic sweep, and the goodbye.
 *
 * The parent drives; a worker only answers. Each command starts a phase
 * whose end (all logins done, a step drained, all messages acked) sends one
 * report. A worker whose parent is gone exits at its next write or read.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "accounts.h"
#include "chat.h"
#include "login.h"
#include "muc.h"
#include "offline.h"
#include "options.h"
#include "receive.h"
#include "sasl.h"
#include "session.h"
#include "util.h"
#include "worker.h"

struct worker W;

static int cmd_fd = -1, rep_fd = -1;
static struct event *sweep_ev, *cmd_ev;
static bool quitting;
static uint64_t quit_t;

void fatal(const char *fmt, ...)
{
	va_list ap;

	memset(&W.rep, 0, sizeof(W.rep));
	va_start(ap, fmt);
	vsnprintf(W.rep.first_error, sizeof(W.rep.first_error), fmt, ap);
	va_end(ap);
	note("fatal: %s", W.rep.first_error);
	report_send(R_FATAL, NULL, 0);
	_exit(1);
}

void report_send(uint32_t type, const void *extra, size_t elen)
{
	struct msg_hdr h = { type, (uint32_t)(sizeof(W.rep) + elen) };

	W.rep.pbkdf2 = sasl_pbkdf2_runs();
	if (write_full(rep_fd, &h, sizeof(h)) < 0 ||
	    write_full(rep_fd, &W.rep, sizeof(W.rep)) < 0 ||
	    (elen && write_full(rep_fd, extra, elen) < 0))
		_exit(2);	/* the parent is gone */
}

void rep_reset(void)
{
	memset(&W.rep, 0, sizeof(W.rep));
}

/* The run's totals, then exit. */
static void final_report(void)
{
	rep_reset();
	W.rep.unique = W.unique;
	W.rep.dup = W.dup;
	W.rep.misrouted = W.misrouted;
	W.rep.foreign = W.foreign;
	W.rep.bounced = W.bounced;
	W.rep.disconnects = W.disconnects;
	W.rep.sent = W.sent_total;
	W.rep.rx_total = W.rx_total;
	W.rep.stale = W.stale;
	snprintf(W.rep.bounce_cond, sizeof(W.rep.bounce_cond), "%s", W.bounce_cond);
	report_send(R_FINAL, NULL, 0);
	_exit(0);
}

/* C_QUIT: once the last messages are in (quiet for 0.5 s, or 3 s at most),
 * every session closes, then the final report. */
static void quit_sweep(uint64_t now)
{
	bool quiet = now - W.last_rx > 500000000ull || now - quit_t > 3000000000ull;

	if (!quitting || !quiet || sess_awaiting_closed())
		return;
	quitting = false;
	for (uint32_t i = 0; i < W.nslots; i++)
		if (W.s[i].state != S_FREE)
			sess_close(&W.s[i]);
	sess_after_closed(final_report);
}

/* Every 100 ms: login and join timeouts, stuck closes, offline completion,
 * the end. */
static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t now = now_ns();

	(void)fd, (void)what, (void)arg;
	for (uint32_t i = 0; i < W.nslots; i++)
		if (!sess_sweep(&W.s[i], now))
			offline_sweep(&W.s[i], now);
	offline_recv_check(now);
	muc_sweep(now);
	login_progress(now);
	quit_sweep(now);
}

/* A command's struct cmd and extra bytes; exits if the parent is gone. */
static uint8_t *cmd_read(int fd, struct msg_hdr *h, struct cmd *c)
{
	uint8_t *extra = NULL;

	if (read_full(fd, h, sizeof(*h)) != 0)
		_exit(3);	/* the parent is gone */
	if (h->len > sizeof(*c) + W.online_map_len)
		fatal("bad command length %u", h->len);
	if (read_full(fd, c, sizeof(*c)) != 0)
		_exit(3);
	if (h->len > sizeof(*c)) {
		extra = malloc(h->len - sizeof(*c));
		if (!extra)
			fatal("out of memory");
		if (read_full(fd, extra, h->len - sizeof(*c)) != 0)
			_exit(3);
	}
	return extra;
}

static void cmd_cb(evutil_socket_t fd, short what, void *arg)
{
	struct msg_hdr h;
	struct cmd c = { 0 };
	uint8_t *extra;

	(void)what, (void)arg;
	extra = cmd_read(fd, &h, &c);
	switch (h.type) {
	case C_PREPARE:
		accounts_prepare();
		break;
	case C_LOGIN:
		login_run(c.which);
		break;
	case C_ONLINE:
		if (!extra || h.len - sizeof(c) != W.online_map_len)
			fatal("bad online map");
		chat_set_online(extra);
		rep_reset();
		report_send(R_ONLINE, NULL, 0);
		break;
	case C_STEP:
		chat_step(&c);
		break;
	case C_OSEND:
		offline_send();
		break;
	case C_ORECV:
		login_run(1);
		break;
	case C_MJOIN:
		muc_join(&c);
		break;
	case C_QUIT:
		quitting = true;
		quit_t = now_ns();
		/* quit_sweep() closes the sessions once the last messages are in */
		chat_stop();
		break;
	default:
		fatal("unknown command %u", h.type);
	}
	free(extra);
}

static int build_jids(void)
{
	size_t hl = strlen(opt.host), hl2 = opt.host2 ? strlen(opt.host2) : 0;
	size_t per = W.prefix_len + 12 + (hl > hl2 ? hl : hl2) + strlen(opt.resource) + 2;
	size_t off = 0;

	W.jids = malloc(per * opt.n);
	W.jid_off = calloc(opt.n, sizeof(*W.jid_off));
	W.jid_len = calloc(opt.n, sizeof(*W.jid_len));
	W.bare_len = calloc(opt.n, sizeof(*W.bare_len));
	if (!W.jids || !W.jid_off || !W.jid_len || !W.bare_len)
		return -1;
	for (uint32_t i = 0; i < opt.n; i++) {
		int b = snprintf(W.jids + off, per, "%s%" PRIu32 "@%s", opt.prefix, i,
				 acct_host(i));
		int f = snprintf(W.jids + off + b, per - (size_t)b, "/%s", opt.resource);

		if (b < 0 || f < 0 || (size_t)(b + f) >= per)
			return -1;
		W.jid_off[i] = (uint32_t)off;
		W.bare_len[i] = (uint16_t)b;
		W.jid_len[i] = (uint16_t)(b + f);
		off += (size_t)(b + f);
	}
	return 0;
}

/* Worker w of J takes an equal share of the accounts (offline: of the
 * senders and of the receivers). */
static void worker_share(uint32_t w, uint32_t J)
{
	if (opt.sc == SC_OFFLINE) {
		uint32_t S = opt.n / 2, R = opt.n - S;
		uint32_t s0 = (uint32_t)((uint64_t)S * w / J);
		uint32_t s1 = (uint32_t)((uint64_t)S * (w + 1) / J);
		uint32_t r0 = (uint32_t)((uint64_t)R * w / J);
		uint32_t r1 = (uint32_t)((uint64_t)R * (w + 1) / J);

		W.senders_total = S;
		W.receivers_total = R;
		W.nsend = s1 - s0;
		W.nslots = W.nsend + (r1 - r0);
		W.send_first = s0;
		W.recv_first = S + r0;
	} else {
		uint32_t a0 = (uint32_t)((uint64_t)opt.n * w / J);
		uint32_t a1 = (uint32_t)((uint64_t)opt.n * (w + 1) / J);

		W.nsend = W.nslots = a1 - a0;
		W.send_first = a0;
	}
}

static void worker_alloc(void)
{
	W.s = calloc(W.nslots ? W.nslots : 1, sizeof(*W.s));
	W.all_slots = calloc(W.nslots ? W.nslots : 1, sizeof(*W.all_slots));
	W.online_map_len = (opt.n + 7) / 8;
	W.online_map = calloc(W.online_map_len, 1);
	if (!W.s || !W.all_slots || !W.online_map || build_jids() < 0)
		fatal("out of memory");
	for (uint32_t i = 0; i < W.nslots; i++) {
		W.s[i].fd = -1;
		W.s[i].idx = i < W.nsend ? W.send_first + i : W.recv_first + (i - W.nsend);
	}
}

void worker_main(int id, int cmd, int rep)
{
	struct timeval tv = { 0, 100000 };
	uint64_t seed;

	worker_id = id;
	cmd_fd = cmd;
	rep_fd = rep;
	seed = opt.seed ? opt.seed + (uint64_t)id * 7919 : (uint64_t)now_ns() ^ (uint64_t)getpid();
	rnd_seed(seed);
	W.prefix_len = strlen(opt.prefix);
	worker_share((uint32_t)id, (uint32_t)opt.j);
	worker_alloc();
	recv_setup();
	if (opt.sc == SC_OFFLINE)
		offline_setup();
	if (opt.scram_cache)
		sasl_cache_open(opt.scram_cache);
	W.base = event_base_new();
	if (!W.base)
		fatal("event_base_new failed");
	sess_setup();
	login_setup();
	chat_setup();
	if (opt.sc == SC_MUC)
		muc_setup();
	sweep_ev = event_new(W.base, -1, EV_PERSIST, sweep_cb, NULL);
	cmd_ev = event_new(W.base, cmd_fd, EV_READ | EV_PERSIST, cmd_cb, NULL);
	if (!sweep_ev || !cmd_ev || event_add(cmd_ev, NULL) < 0 || event_add(sweep_ev, &tv) < 0)
		fatal("cannot set up events");
	event_base_dispatch(W.base);
	fatal("the event loop ended");
}

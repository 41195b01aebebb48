/*
 * login.c - logging accounts in (see login.h).
 *
 * A worker starts attempts from a 1 ms timer: as many as --login-rate allows
 * since the phase began, never more than its share of --max-pending at once.
 * Each attempt ends exactly once, in login_finished(): online, or failed with
 * a reason, which the parent sums over the workers into "login_failures".
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "json.h"
#include "login.h"
#include "offline.h"
#include "options.h"
#include "parent.h"
#include "proc.h"
#include "util.h"

static const char *const fail_names[F_COUNT] = {
	"connect", "tls", "negotiation", "auth", "stream_error", "closed", "timeout",
	"protocol", "bind", "internal",
};

static struct event *pace_ev, *done_ev;
static void (*login_done)(void);
static uint64_t last_note;

/* ---- in a worker ---- */

static void login_check_done(void)
{
	if (login_done && W.next >= W.nqueue && W.pending == 0)
		event_active(done_ev, 0, 0);
}

bool login_idle(void)
{
	return W.next >= W.nqueue && W.pending == 0;
}

void login_finished(struct sess *s, bool ok, enum fail_reason r, const char *why)
{
	uint64_t now = now_ns();

	if (!s->in_login)
		return;
	s->in_login = false;
	W.pending--;
	if (ok) {
		W.rep.ok++;
		hist_add(&W.rep.h, (now - s->t0) / 1000);
		if (now > W.rep.t_last)
			W.rep.t_last = now;
	} else if (W.purpose == P_PROBE && r == F_AUTH) {
		s->missing = true;	/* the account does not exist (or another password) */
		W.rep.missing++;
	} else {
		W.rep.failed++;
		W.rep.fail[r]++;
		if (!W.rep.first_error[0]) {
			char name[300];

			snprintf(W.rep.first_error, sizeof(W.rep.first_error), "%.80s: %.110s",
				 sess_name(s, name, sizeof(name)), why);
		}
		if (opt.verbose)
			note("%s", why);
	}
	login_check_done();
}

static void pace_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t now = now_ns(), allowed = UINT64_MAX;
	double rate = opt.login_rate / opt.j;
	uint32_t cap = opt.max_pending / (uint32_t)opt.j;

	(void)fd, (void)what, (void)arg;
	if (cap < 1)
		cap = 1;
	if (rate > 0)
		allowed = (uint64_t)((double)(now - W.t_phase) / 1e9 * rate) + 1;
	while (W.next < W.nqueue && W.next < allowed && W.pending < cap)
		sess_connect(&W.s[W.queue[W.next++]]);
	if (W.next >= W.nqueue)
		event_del(pace_ev);
}

void login_begin(uint32_t *queue, uint32_t n, enum purpose p, void (*done)(void))
{
	struct timeval tv = { 0, 1000 };

	W.queue = queue;
	W.nqueue = n;
	W.next = 0;
	W.pending = 0;
	W.purpose = (uint8_t)p;
	login_done = done;
	W.t_phase = now_ns();
	if (n == 0) {
		login_check_done();
		return;
	}
	if (event_add(pace_ev, &tv) < 0)
		fatal("event_add failed");
	pace_cb(-1, 0, NULL);
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
	void (*done)(void) = login_done;

	(void)fd, (void)what, (void)arg;
	if (!done || W.next < W.nqueue || W.pending)
		return;
	login_done = NULL;
	done();
}

void login_setup(void)
{
	pace_ev = event_new(W.base, -1, EV_PERSIST, pace_cb, NULL);
	done_ev = event_new(W.base, -1, 0, done_cb, NULL);
	if (!pace_ev || !done_ev)
		fatal("cannot set up events");
}

void login_progress(uint64_t now)
{
	if (worker_id != 0 || !W.pending || now - last_note <= 2000000000ull)
		return;
	last_note = now;
	note("login progress: %" PRIu32 " of %" PRIu32 " started, %" PRIu32 " ok, %" PRIu32
	     " failed", W.next, W.nqueue, W.rep.ok, W.rep.failed);
}

/* The accounts online after the measured login, for the parent to merge. */
static void login_report(void)
{
	memset(W.online_map, 0, W.online_map_len);
	for (uint32_t i = 0; i < W.nslots; i++)
		if (W.s[i].state == S_ONLINE)
			W.online_map[W.s[i].idx / 8] |= (uint8_t)(1u << (W.s[i].idx % 8));
	report_send(R_LOGGED_IN, W.online_map, W.online_map_len);
}

void login_run(uint32_t which)
{
	uint32_t from = 0, to = W.nslots, n = 0;

	rep_reset();
	if (opt.sc == SC_OFFLINE) {
		from = which ? W.nsend : 0;
		to = which ? W.nslots : W.nsend;
	}
	for (uint32_t i = from; i < to; i++)
		W.all_slots[n++] = i;
	if (opt.sc == SC_OFFLINE && which) {
		offline_recv_begin();
		/* No done(): offline_recv_check() reports when the messages are in. */
		login_begin(W.all_slots, n, P_LOGIN, NULL);
		return;
	}
	login_begin(W.all_slots, n, P_LOGIN, login_report);
}

/* ---- in the parent ---- */

/* The login figures every scenario shares. */
static void json_logins(const char *pfx, const struct report *s, double cpu_s, double cpu_max,
			double wall_s, double srv_cpu)
{
	char k[64];
	double secs = s->t_last > s->t_first ? (double)(s->t_last - s->t_first) / 1e9 : NAN;

#define K(x) (snprintf(k, sizeof(k), "%s%s", pfx, x), k)
	j_u64(K("logins_ok"), s->ok);
	j_u64(K("logins_failed"), s->failed);
	j_open(K("login_failures"), '{');
	for (int i = 0; i < F_COUNT; i++)
		if (s->fail[i])
			j_u64(fail_names[i], s->fail[i]);
	j_close('}');
	if (s->first_error[0])
		j_str(K("login_first_error"), s->first_error);
	j_num(K("login_seconds"), secs, 3);
	j_num(K("logins_per_s"), s->ok > 1 ? (double)s->ok / secs : NAN, 1);
	j_num(K("login_ms_p50"), hist_pct(&s->h, 0.50) / 1000, 3);
	j_num(K("login_ms_p99"), hist_pct(&s->h, 0.99) / 1000, 3);
	j_num(K("login_ms_max"), s->h.n ? (double)s->h.max / 1000 : NAN, 3);
	j_num(K("login_bench_cpu_s"), cpu_s, 2);
	j_num(K("login_bench_cpu_share"), wall_s > 0 ? cpu_max / wall_s : NAN, 3);
	j_bool(K("login_bench_bottleneck"), wall_s > 0 && cpu_max / wall_s > 0.9);
	j_num(K("login_server_cpu_s"), srv_cpu, 2);
	j_num(K("login_server_cpu_ms_per_login"), s->ok ? srv_cpu * 1000 / s->ok : NAN, 3);
#undef K
}

int phase_login(uint32_t which, const char *pfx, struct report *sum)
{
	struct cmd c = { .which = which };
	double before[MAX_WORKERS], cpu, mx, srv0 = server_cpu(), srv;
	uint64_t t0 = now_ns();

	workers_cpu(NULL, NULL, before);
	memset(P.pmap, 0, P.pmap_len);
	if (send_all(which ? C_ORECV : C_LOGIN, &c, NULL, 0) < 0 ||
	    wait_reports(which && opt.sc == SC_OFFLINE ? R_ORECV : R_LOGGED_IN, 0) < 0)
		return -1;
	cpu = workers_cpu(&mx, before, NULL);
	srv = server_cpu() - srv0;
	sum_reports(sum);
	if (sum->mech[0] && !P.used_mech[0])
		memcpy(P.used_mech, sum->mech, sizeof(P.used_mech));
	json_logins(pfx, sum, cpu, mx, (double)(now_ns() - t0) / 1e9, srv);
	note("%s%u logged in, %u failed in %.1f s%s%s", which ? "receivers: " :
	     opt.sc == SC_OFFLINE ? "senders: " : "", sum->ok, sum->failed,
	     (double)(now_ns() - t0) / 1e9, sum->first_error[0] ? "; first error: " : "",
	     sum->first_error);
	if (!sum->ok && sum->attempted) {
		set_error("no session could log in; first error: %s", sum->first_error);
		return -1;
	}
	return 0;
}

void scenario_login(void)
{
	struct report sum;

	P.phase = "logging in";
	phase_login(0, "", &sum);
}

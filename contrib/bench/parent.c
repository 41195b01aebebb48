/*
 * parent.c - the parent's side of its workers (see parent.h).
 *
 * Every wait is bounded by the run's deadline (--timeout, less the time the
 * goodbye needs), so the bench always ends and always prints its JSON, with
 * whatever figures it has.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "options.h"
#include "parent.h"
#include "proc.h"
#include "util.h"

struct parent P = { .phase = "starting" };

static struct {
	pid_t pid;
	int cmd, rep;
	bool done;
	bool gone;	/* exited after its final report */
} wk[MAX_WORKERS];

void set_error(const char *fmt, ...)
{
	va_list ap;

	if (P.perr[0])
		return;
	va_start(ap, fmt);
	vsnprintf(P.perr, sizeof(P.perr), fmt, ap);
	va_end(ap);
}

void parent_spawn(void)
{
	P.reps = calloc((size_t)opt.j, sizeof(*P.reps));
	P.pmap_len = (opt.n + 7) / 8;
	P.pmap = calloc(P.pmap_len, 1);
	if (!P.reps || !P.pmap)
		fail_early("out of memory");
	fflush(stderr);
	for (int w = 0; w < opt.j; w++) {
		int down[2], up[2];
		pid_t pid;

		if (pipe2(down, O_CLOEXEC) < 0 || pipe2(up, O_CLOEXEC) < 0)
			fail_early("pipe: %s", strerror(errno));
		pid = fork();
		if (pid < 0)
			fail_early("fork: %s", strerror(errno));
		if (pid == 0) {
			for (int k = 0; k < w; k++) {
				close(wk[k].cmd);
				close(wk[k].rep);
			}
			close(down[1]);
			close(up[0]);
			worker_main(w, down[0], up[1]);
		}
		close(down[0]);
		close(up[1]);
		wk[w].pid = pid;
		wk[w].cmd = down[1];
		wk[w].rep = up[0];
	}
}

static int send_cmd(int w, uint32_t type, const struct cmd *c, const void *extra, size_t elen)
{
	struct msg_hdr h = { type, (uint32_t)(sizeof(*c) + elen) };

	if (write_full(wk[w].cmd, &h, sizeof(h)) < 0 || write_full(wk[w].cmd, c, sizeof(*c)) < 0 ||
	    (elen && write_full(wk[w].cmd, extra, elen) < 0)) {
		set_error("worker %d is gone (while %s)", w, P.phase);
		P.workers_broken = true;
		return -1;
	}
	return 0;
}

int send_all(uint32_t type, const struct cmd *c, const void *extra, size_t elen)
{
	for (int w = 0; w < opt.j; w++)
		if (send_cmd(w, type, c, extra, elen) < 0)
			return -1;
	return 0;
}

/* The online map after worker w's report: merged into P.pmap. */
static int read_map(int w, size_t extra)
{
	uint8_t *buf = malloc(extra);

	if (!buf || read_full(wk[w].rep, buf, extra) != 0) {
		free(buf);
		set_error("worker %d: short report", w);
		P.workers_broken = true;
		return -1;
	}
	for (size_t i = 0; i < extra && i < P.pmap_len; i++)
		P.pmap[i] |= buf[i];
	free(buf);
	return 0;
}

/* One message of worker w: 1 if it is the first report of type, 0 if it is
 * something else (or the worker's goodbye), -1 on trouble. */
static int read_report(int w, uint32_t type)
{
	struct msg_hdr h;
	size_t extra;
	int rr = read_full(wk[w].rep, &h, sizeof(h));

	if (rr == 1 && wk[w].done && type == R_FINAL) {
		wk[w].gone = true;	/* it said goodbye and left */
		return 0;
	}
	if (rr != 0 || h.len < sizeof(struct report) ||
	    h.len > sizeof(struct report) + P.pmap_len ||
	    read_full(wk[w].rep, &P.reps[w], sizeof(struct report)) != 0) {
		set_error("worker %d died while %s", w, P.phase);
		P.workers_broken = true;
		return -1;
	}
	extra = h.len - sizeof(struct report);
	if (extra && read_map(w, extra) < 0)
		return -1;
	if (h.type == R_FATAL) {
		set_error("worker %d: %s", w, P.reps[w].first_error);
		P.workers_broken = true;
		return -1;
	}
	if (h.type == type && !wk[w].done) {
		wk[w].done = true;
		return 1;
	}
	return 0;
}

int wait_reports(uint32_t type, uint64_t until)
{
	struct pollfd pf[MAX_WORKERS];
	int left = type ? opt.j : 0;

	for (int w = 0; w < opt.j; w++)
		wk[w].done = false;
	for (;;) {
		uint64_t now = now_ns(), stop = until && until < P.deadline ? until : P.deadline;
		int n = 0, r;

		if (type && left == 0)
			return 0;
		if (now >= stop) {
			if (!type && until && now >= until && until < P.deadline)
				return 0;
			set_error("timeout (--timeout %.0f s) while %s", opt.timeout_s, P.phase);
			P.workers_broken = true;
			return -1;
		}
		for (int w = 0; w < opt.j; w++) {
			pf[n].fd = wk[w].gone ? -1 : wk[w].rep;
			pf[n].events = POLLIN;
			n++;
		}
		r = poll(pf, (nfds_t)n, (int)((stop - now) / 1000000 + 1));
		if (r < 0 && errno != EINTR) {
			set_error("poll: %s", strerror(errno));
			P.workers_broken = true;
			return -1;
		}
		for (int w = 0; r > 0 && w < opt.j; w++) {
			int got;

			if (!(pf[w].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			got = read_report(w, type);
			if (got < 0)
				return -1;
			left -= got;
		}
	}
}

/* Reaps worker w if it has exited, saying why when it was not SIGTERM. */
static void reap(int w)
{
	int st;

	if (wk[w].pid <= 0 || waitpid(wk[w].pid, &st, WNOHANG) != wk[w].pid)
		return;
	if (WIFSIGNALED(st) && WTERMSIG(st) != SIGTERM)
		note("worker %d was killed by signal %d", w, WTERMSIG(st));
	else if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
		note("worker %d exited with status %d", w, WEXITSTATUS(st));
	wk[w].pid = 0;
}

void kill_workers(void)
{
	for (int w = 0; w < opt.j; w++)
		if (wk[w].pid > 0)
			kill(wk[w].pid, SIGTERM);
	for (int i = 0; i < 20; i++) {
		bool any = false;

		for (int w = 0; w < opt.j; w++) {
			reap(w);
			any |= wk[w].pid > 0;
		}
		if (!any)
			return;
		usleep(50000);
	}
	for (int w = 0; w < opt.j; w++) {
		if (wk[w].pid > 0) {
			kill(wk[w].pid, SIGKILL);
			waitpid(wk[w].pid, NULL, 0);
			wk[w].pid = 0;
		}
	}
}

double workers_cpu(double *max_one, const double *before, double *now_each)
{
	double t = 0, mx = 0;

	for (int w = 0; w < opt.j; w++) {
		double c = proc_cpu_s(wk[w].pid);

		if (now_each)
			now_each[w] = c;
		if (before) {
			if (c - before[w] > mx)
				mx = c - before[w];
			t += c - before[w];
		} else {
			t += c;
		}
	}
	if (max_one)
		*max_one = mx;
	return t;
}

double workers_rss(void)
{
	double t = 0;
	uint64_t v;

	for (int w = 0; w < opt.j; w++)
		if (proc_status_kib(wk[w].pid, "status", "VmRSS", &v) == 0)
			t += (double)v;
	if (proc_status_kib(getpid(), "status", "VmRSS", &v) == 0)
		t += (double)v;
	return t;
}

/* Keeps the first worker's string that is not empty. */
static void first_str(char *to, const char *from, size_t size)
{
	if (!to[0] && from[0])
		memcpy(to, from, size);
}

static void sum_times(struct report *s, const struct report *r)
{
	if (r->t_first && (!s->t_first || r->t_first < s->t_first))
		s->t_first = r->t_first;
	if (r->t_last > s->t_last)
		s->t_last = r->t_last;
	if (r->t_send_first && (!s->t_send_first || r->t_send_first < s->t_send_first))
		s->t_send_first = r->t_send_first;
	if (r->t_acked > s->t_acked)
		s->t_acked = r->t_acked;
	if (r->t_rx_last > s->t_rx_last)
		s->t_rx_last = r->t_rx_last;
}

static void sum_counts(struct report *s, const struct report *r)
{
	s->attempted += r->attempted;
	s->ok += r->ok;
	s->failed += r->failed;
	s->missing += r->missing;
	for (int i = 0; i < F_COUNT; i++)
		s->fail[i] += r->fail[i];
	s->registered += r->registered;
	s->existing += r->existing;
	s->reg_failed += r->reg_failed;
	s->resource_changed += r->resource_changed;
	s->sm_offered |= r->sm_offered;
	s->sm_used |= r->sm_used;
	s->senders_unacked += r->senders_unacked;
	s->sent += r->sent;
	s->blocked += r->blocked;
	s->delivered += r->delivered;
	s->late += r->late;
	s->unique += r->unique;
	s->dup += r->dup;
	s->misrouted += r->misrouted;
	s->foreign += r->foreign;
	s->bounced += r->bounced;
	s->disconnects += r->disconnects;
	s->acked += r->acked;
	s->expected += r->expected;
	s->pbkdf2 += r->pbkdf2;
	s->rx_total += r->rx_total;
	s->stale += r->stale;
	s->room_created |= r->room_created;
	s->room_configured |= r->room_configured;
	for (int i = 0; i < JOIN_CONDS; i++)
		s->join_fail[i] += r->join_fail[i];
	s->presences += r->presences;
}

void sum_reports(struct report *s)
{
	memset(s, 0, sizeof(*s));
	for (int w = 0; w < opt.j; w++) {
		const struct report *r = &P.reps[w];

		sum_counts(s, r);
		sum_times(s, r);
		first_str(s->mech, r->mech, sizeof(s->mech));
		first_str(s->first_error, r->first_error, sizeof(s->first_error));
		first_str(s->bounce_cond, r->bounce_cond, sizeof(s->bounce_cond));
		first_str(s->owner_cond, r->owner_cond, sizeof(s->owner_cond));
		hist_merge(&s->h, &r->h);
	}
}

/*
 * accounts.c - the accounts before the run (see accounts.h).
 *
 * The probe authenticates each account: a SASL failure means it is missing
 * (or has another password). The probe fails on purpose, and servers count
 * failures per source address, so probe and registration sessions each come
 * from their own address (session.c). Registration commands run a few at a
 * time, under sh -c, with {user}, {host} and {password} single-quoted.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "accounts.h"
#include "json.h"
#include "login.h"
#include "options.h"
#include "parent.h"
#include "session.h"
#include "util.h"
#include "worker.h"

/* ---- in a worker ---- */

static void prepare_report(void)
{
	report_send(R_PREPARED, NULL, 0);
}

static void ibr_done(void)
{
	sess_after_closed(prepare_report);
}

/* --register-cmd for account name, each {...} single-quoted for sh; -1 if
 * it does not fit in cmd[cap]. */
static int register_cmd_line(const char *name, const char *host, char *cmd, size_t cap)
{
	char *p = cmd, *lim = cmd + cap - 1;

	for (const char *t = opt.register_cmd; *t && p < lim; t++) {
		const char *val = NULL;

		if (strncmp(t, "{user}", 6) == 0)
			val = name, t += 5;
		else if (strncmp(t, "{host}", 6) == 0)
			val = host, t += 5;
		else if (strncmp(t, "{password}", 10) == 0)
			val = opt.password, t += 9;
		if (!val) {
			*p++ = *t;
			continue;
		}
		if (p < lim)
			*p++ = '\'';
		for (; *val && p + 4 < lim; val++) {
			if (*val == '\'')
				p = put_mem(p, "'\\''", 4);
			else
				*p++ = *val;
		}
		if (p < lim)
			*p++ = '\'';
	}
	if (p >= lim)
		return -1;
	*p = '\0';
	return 0;
}

static void register_spawn(const struct sess *s)
{
	char cmd[4096], name[300];
	pid_t pid;

	if (register_cmd_line(sess_user(s, name, sizeof(name)), acct_host(s->idx), cmd,
			      sizeof(cmd)) < 0)
		fatal("--register-cmd too long after substitution");
	pid = fork();
	if (pid < 0)
		fatal("fork: %s", strerror(errno));
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0)
			dup2(null, 1);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
}

/* Waits for one command and counts it: 1, 0 if interrupted, -1 if none. */
static int register_reap(void)
{
	int st;
	pid_t pid = waitpid(-1, &st, 0);

	if (pid < 0)
		return errno == EINTR ? 0 : -1;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		W.rep.registered++;
	} else {
		W.rep.reg_failed++;
		if (!W.rep.first_error[0])
			snprintf(W.rep.first_error, sizeof(W.rep.first_error),
				 "--register-cmd failed (status %d)", st);
	}
	return 1;
}

/* Runs the register command for each missing account, a few at a time. */
static void run_register_cmds(void)
{
	const int par = 4;
	int running = 0, r;
	uint32_t i = 0;

	for (;;) {
		while (running < par && i < W.nslots) {
			struct sess *s = &W.s[i++];

			if (!s->missing)
				continue;
			register_spawn(s);
			running++;
		}
		if (!running)
			break;
		r = register_reap();
		if (r < 0)
			break;
		running -= r;
	}
}

static void probe_done(void)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < W.nslots; i++)
		if (W.s[i].missing)
			W.all_slots[n++] = i;
	if (opt.reg == REG_IBR) {
		login_begin(W.all_slots, n, P_IBR, ibr_done);
		return;
	}
	if (n)
		run_register_cmds();
	/* Probe sessions still closing are harmless to the register commands;
	 * wait for them so that the slots are free before the login. */
	sess_after_closed(prepare_report);
}

void accounts_prepare(void)
{
	rep_reset();
	for (uint32_t i = 0; i < W.nslots; i++)
		W.all_slots[i] = i;
	if (opt.reg == REG_NONE) {
		prepare_report();
		return;
	}
	login_begin(W.all_slots, W.nslots, P_PROBE, probe_done);
}

/* ---- in the parent ---- */

int accounts_check(void)
{
	struct cmd c = { 0 };
	struct report sum;

	P.phase = "checking and creating accounts";
	if (opt.reg != REG_NONE)
		note("checking which of %u accounts exist", opt.n);
	if (send_all(C_PREPARE, &c, NULL, 0) < 0 || wait_reports(R_PREPARED, 0) < 0)
		return -1;
	sum_reports(&sum);
	if (opt.reg != REG_NONE) {
		j_u64("accounts_missing", sum.missing);
		j_u64("accounts_registered", sum.registered);
		j_u64("accounts_register_failed", sum.reg_failed);
		note("%u accounts missing, %u registered, %u failed", sum.missing,
		     sum.registered, sum.reg_failed);
		if (sum.failed)
			note("account check: %u failures; first: %s", sum.failed,
			     sum.first_error);
	}
	return 0;
}

/*
 * main.c - parley-bench, a load generator for XMPP servers on loopback.
 *
 * It logs N accounts into a server (Parley, Prosody, ejabberd: any RFC 6120
 * server) and measures one scenario: the login rate, the memory an idle
 * session costs, 1:1 chat throughput and latency at stepped rates, offline
 * storage and flush, or one multi-user chat room's joins and groupchat. One
 * JSON object with the figures goes to stdout; progress goes to stderr.
 * contrib/bench/README.md says how to run it and which file does what.
 *
 * Process model: the parent forks -j workers, each with its own libevent loop
 * and its own share of the accounts, and drives them through the phases of the
 * scenario over two pipes per worker (commands down, binary reports up). The
 * parent only coordinates, reads /proc for the server's and the workers' CPU
 * and memory, and aggregates. This file is the parent's outline: the figures
 * of every run, the scenario, the goodbye, the verdict.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "accounts.h"
#include "chat.h"
#include "idle.h"
#include "json.h"
#include "login.h"
#include "muc.h"
#include "offline.h"
#include "options.h"
#include "parent.h"
#include "util.h"

/* Sessions are file descriptors: take all the kernel allows us. */
static void raise_nofile(void)
{
	struct rlimit rl;
	uint64_t per_worker;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			note("cannot raise the open-file limit: %s", strerror(errno));
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		fail_early("getrlimit: %s", strerror(errno));
	per_worker = (opt.n + (uint64_t)opt.j - 1) / (uint64_t)opt.j;
	if (rl.rlim_cur != RLIM_INFINITY && per_worker + 64 > rl.rlim_cur)
		fail_early("%" PRIu64 " sessions per worker but only %llu open files per process: "
			   "use -j %" PRIu64 " or more", per_worker,
			   (unsigned long long)rl.rlim_cur,
			   (opt.n + rl.rlim_cur - 65) / (rl.rlim_cur - 64));
}

/* What every run's JSON says first: the set-up. */
static void json_header(void)
{
	j_str("scenario", scenario_names[opt.sc]);
	j_open("server_pids", '[');
	for (int i = 0; i < opt.npids; i++)
		j_u64(NULL, (uint64_t)opt.pids[i]);
	j_close(']');
	j_u64("n", opt.n);
	j_u64("j", (uint64_t)opt.j);
	j_str("tls", tls_names[opt.tls]);
	j_str("transport", opt.ws_path ? "websocket" : "tcp");
	if (opt.ws_path)
		j_str("ws_path", opt.ws_path);
	j_str("host", opt.host);
	j_str("address", opt.addr);
	j_u64("port", (uint64_t)opt.port);
	if (opt.host2) {
		j_str("host2", opt.host2);
		j_str("address2", opt.addr2);
		j_u64("port2", (uint64_t)opt.port2);
	}
	j_str("prefix", opt.prefix);
	j_num("login_rate_limit", opt.login_rate, 0);
}

static void run_scenario(void)
{
	if (accounts_check() < 0)
		return;
	note("running %s with %u sessions over %d worker(s)", scenario_names[opt.sc], opt.n,
	     opt.j);
	switch (opt.sc) {
	case SC_LOGIN:
		scenario_login();
		break;
	case SC_IDLE:
		scenario_idle();	/* writes the bench's memory per session itself */
		return;
	case SC_CHAT:
		scenario_chat();
		break;
	case SC_OFFLINE:
		scenario_offline();
		break;
	case SC_MUC:
		scenario_muc();
		break;
	}
	j_num("bench_rss_kib", workers_rss(), 0);
}

/* A final drain and close; late figures that only the end knows. */
static void goodbye(uint64_t t_start)
{
	struct cmd c = { 0 };
	struct report sum;
	char keep[sizeof(P.perr)];

	memcpy(keep, P.perr, sizeof(P.perr));
	P.perr[0] = '\0';
	P.phase = "closing";
	P.deadline = t_start + (uint64_t)(opt.timeout_s * 1e9);
	if (send_all(C_QUIT, &c, NULL, 0) == 0 &&
	    wait_reports(R_FINAL, now_ns() + 15000000000ull) == 0) {
		sum_reports(&sum);
		j_u64("disconnects", sum.disconnects);
		if (opt.sc == SC_CHAT) {
			j_u64("total_sent", sum.sent);
			j_u64("total_received_unique", sum.unique);
			j_u64("lost", sum.sent > sum.unique ? sum.sent - sum.unique : 0);
			j_u64("duplicates", sum.dup);
			j_u64("misrouted", sum.misrouted);
			j_u64("unparsed_messages", sum.foreign);
			j_u64("stale_from_earlier_runs", sum.stale);
			j_u64("bounced", sum.bounced);
			if (sum.bounce_cond[0])
				j_str("bounce_condition", sum.bounce_cond);
		} else if (opt.sc == SC_MUC) {
			muc_goodbye(&sum);
		}
		j_u64("bench_pbkdf2_runs", sum.pbkdf2);
	} else {
		note("workers did not finish cleanly: %s", P.perr);
	}
	/* The figures stand without the goodbye; the scenario's verdict too. */
	memcpy(P.perr, keep, sizeof(P.perr));
}

/* {"ok":..., "error":..., then the figures gathered in body}. */
static void print_result(char *body)
{
	printf("{\"ok\":%s", P.perr[0] ? "false" : "true");
	if (P.perr[0]) {
		j_start(stdout, true);
		j_str("error", P.perr);
	}
	printf("%s}\n", body ? body : "");
	if (P.perr[0])
		note("error: %s", P.perr);
}

int main(int argc, char **argv)
{
	uint64_t t_start = now_ns();
	char *body = NULL;
	size_t body_len = 0;
	FILE *out;

	opt.run_start = t_start;
	parse_args(argc, argv);
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		fail_early("signal: %s", strerror(errno));
	raise_nofile();
	/* The scenario ends a little before --timeout: the goodbye (last drain,
	 * stream closes, final counts) gets the rest. */
	P.deadline = t_start + (uint64_t)((opt.timeout_s - fmin(5, opt.timeout_s / 4)) * 1e9);
	parent_spawn();
	out = open_memstream(&body, &body_len);
	if (!out)
		fail_early("open_memstream failed");
	j_start(out, true);	/* "ok" comes first, written at the end */
	json_header();
	run_scenario();
	if (!P.workers_broken)
		goodbye(t_start);
	if (P.used_mech[0])
		j_str("sasl", P.used_mech);
	j_num("elapsed_s", (double)(now_ns() - t_start) / 1e9, 2);
	kill_workers();
	if (fclose(out) != 0)
		body = NULL;
	print_result(body);
	free(body);
	return P.perr[0] ? 1 : 0;
}

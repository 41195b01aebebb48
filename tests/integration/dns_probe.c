/*
 * dns_probe.c - drives src/dns.c on a real loop for tests/integration/dns.test.
 *
 *   dns_probe [--servers CSV] [--timeout MS] [--tries N] [--debug] [--linger MS]
 *             [--free-after MS] QUERY...
 *   QUERY:  srv DOMAIN | addr HOST PORT | cancel-srv DOMAIN | cancel-addr HOST PORT
 *
 * Every query starts at once; when all have answered (the cancelled ones never do),
 * the loop runs --linger MS more (late answers to cancelled queries), then one line a
 * query is printed in the order given:
 *   srv a.test: x.a.test:5269 y.a.test:5270/tls      (targets in order, /tls: direct)
 *   addr x.a.test: [::1]:5269 127.0.0.2:5269
 *   srv b.test: error: MESSAGE
 *   cancel-srv a.test: cancelled
 * and a last line "stats: queries=Q failures=F pending=P". --free-after MS calls
 * dns_free that long after the start whatever is outstanding ("...: freed").
 * A callback that runs inside the call that started its query, or for a cancelled
 * query, or twice, prints "BUG: ..." and makes the exit status 1. 2: bad arguments or
 * dns_init failed (its errors on stderr); 3: nothing answered within 60 s.
 */
#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dns.h"
#include "log.h"
#include "server.h"

#define PROBE_MAX	1024
#define LINE_MAX_LEN	8192

struct probe {
	const char *kind, *name;
	unsigned short port;
	bool cancel, answered;
	struct dns_query *q;
	char *line;
};

static struct probe probes[PROBE_MAX];
static size_t nprobes, waiting;
static bool starting, bug;
static struct event *linger_ev;
static struct timeval linger;

static void all_answered(void)
{
	if (linger.tv_sec || linger.tv_usec)
		evtimer_add(linger_ev, &linger);
	else
		event_base_loopexit(server.base, NULL);
}

/* Checks the rules every callback must keep; false: do not record it. */
static bool arrived(struct probe *p)
{
	if (starting) {
		fprintf(stdout, "BUG: %s %s: the callback ran inside the call\n", p->kind,
			p->name);
		bug = true;
	}
	if (p->cancel || p->answered) {
		fprintf(stdout, "BUG: %s %s: a callback %s\n", p->kind, p->name,
			p->cancel ? "for a cancelled query" : "twice");
		bug = true;
		return false;
	}
	p->answered = true;
	p->q = NULL;
	return true;
}

static void done(struct probe *p)
{
	if (--waiting == 0)
		all_answered();
}

static void on_targets(void *arg, const struct dns_target *t, size_t n, const char *err)
{
	struct probe *p = arg;
	size_t used;

	if (!arrived(p))
		return;
	p->line = malloc(LINE_MAX_LEN);
	if (!p->line)
		exit(4);
	used = (size_t)snprintf(p->line, LINE_MAX_LEN, "srv %s:", p->name);
	if (err)
		snprintf(p->line + used, LINE_MAX_LEN - used, " error: %s", err);
	for (size_t i = 0; i < n && used < LINE_MAX_LEN - 300; i++)
		used += (size_t)snprintf(p->line + used, LINE_MAX_LEN - used, " %s:%u%s",
					 t[i].host, t[i].port, t[i].direct_tls ? "/tls" : "");
	if ((err && n) || (!err && !n)) {
		printf("BUG: srv %s: err and n disagree\n", p->name);
		bug = true;
	}
	done(p);
}

static void on_addrs(void *arg, const struct sockaddr_storage *a, size_t n, const char *err)
{
	struct probe *p = arg;
	size_t used;

	if (!arrived(p))
		return;
	p->line = malloc(LINE_MAX_LEN);
	if (!p->line)
		exit(4);
	used = (size_t)snprintf(p->line, LINE_MAX_LEN, "addr %s:", p->name);
	if (err)
		snprintf(p->line + used, LINE_MAX_LEN - used, " error: %s", err);
	if (n > DNS_ADDRS_MAX) {
		printf("BUG: addr %s: %zu addresses\n", p->name, n);
		bug = true;
		n = 0;
	}
	for (size_t i = 0; i < n; i++) {
		char text[INET6_ADDRSTRLEN] = "?";

		if (a[i].ss_family == AF_INET6) {
			const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a[i];

			inet_ntop(AF_INET6, &s6->sin6_addr, text, sizeof(text));
			used += (size_t)snprintf(p->line + used, LINE_MAX_LEN - used, " [%s]:%u",
						 text, ntohs(s6->sin6_port));
		} else {
			const struct sockaddr_in *s4 = (const struct sockaddr_in *)&a[i];

			inet_ntop(AF_INET, &s4->sin_addr, text, sizeof(text));
			used += (size_t)snprintf(p->line + used, LINE_MAX_LEN - used, " %s:%u",
						 text, ntohs(s4->sin_port));
		}
	}
	done(p);
}

static void on_linger(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopexit(server.base, NULL);
}

static void on_free(evutil_socket_t fd, short what, void *arg)
{
	dns_free();
	event_base_loopexit(server.base, NULL);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	printf("BUG: no answer within 60 s\n");
	exit(3);
}

static struct timeval ms(const char *s)
{
	long v = strtol(s, NULL, 10);

	return (struct timeval){ v / 1000, (v % 1000) * 1000 };
}

static int parse(int argc, char **argv, struct config *cfg, struct timeval *free_after)
{
	int i = 1;

	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--debug") == 0)
			log_set_level(LOG_DEBUG);
		else if (i + 1 >= argc)
			return -1;
		else if (strcmp(argv[i], "--servers") == 0)
			cfg->dns.servers = argv[++i];
		else if (strcmp(argv[i], "--timeout") == 0)
			cfg->dns.timeout_ms = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--tries") == 0)
			cfg->dns.tries = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--linger") == 0)
			linger = ms(argv[++i]);
		else if (strcmp(argv[i], "--free-after") == 0)
			*free_after = ms(argv[++i]);
		else
			return -1;
	}
	while (i < argc) {
		struct probe *p = &probes[nprobes];
		const char *k = argv[i];
		bool addr = strcmp(k, "addr") == 0 || strcmp(k, "cancel-addr") == 0;

		if (nprobes == PROBE_MAX || (!addr && strcmp(k, "srv") != 0 &&
					     strcmp(k, "cancel-srv") != 0))
			return -1;
		if (i + 1 + addr >= argc)
			return -1;
		p->kind = k;
		p->name = argv[i + 1];
		p->cancel = strncmp(k, "cancel-", 7) == 0;
		if (addr)
			p->port = (unsigned short)strtoul(argv[i + 2], NULL, 10);
		i += 2 + addr;
		nprobes++;
	}
	return nprobes ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct config cfg = { .path = "dns_probe" };
	struct config_errors errs = { 0 };
	struct timeval free_after = { 0, 0 }, deadline = { 60, 0 };
	struct event *free_ev = NULL, *deadline_ev;
	const struct dns_stats *st;

	cfg.dns.timeout_ms = 2000;
	cfg.dns.tries = 3;
	log_set_level(LOG_WARN);
	if (parse(argc, argv, &cfg, &free_after) < 0) {
		fprintf(stderr, "usage: dns_probe [--servers CSV] [--timeout MS] [--tries N] "
			"[--debug] [--linger MS] [--free-after MS] QUERY...\n");
		return 2;
	}
	server.base = event_base_new();
	if (!server.base)
		return 2;
	if (dns_init(&cfg, &errs) < 0) {
		for (size_t i = 0; i < errs.count; i++)
			fprintf(stderr, "%s\n", errs.msgs[i]);
		config_errors_free(&errs);
		event_base_free(server.base);
		return 2;
	}
	linger_ev = evtimer_new(server.base, on_linger, NULL);
	deadline_ev = evtimer_new(server.base, on_deadline, NULL);
	evtimer_add(deadline_ev, &deadline);
	if (free_after.tv_sec || free_after.tv_usec) {
		free_ev = evtimer_new(server.base, on_free, NULL);
		evtimer_add(free_ev, &free_after);
	}
	for (size_t i = 0; i < nprobes; i++) {
		struct probe *p = &probes[i];

		starting = true;
		if (strstr(p->kind, "srv"))
			p->q = dns_s2s_targets(p->name, on_targets, p);
		else
			p->q = dns_addrs(p->name, p->port, on_addrs, p);
		starting = false;
		if (!p->q) {
			printf("BUG: %s %s: no query\n", p->kind, p->name);
			return 1;
		}
		if (p->cancel) {
			dns_cancel(p->q);
			p->q = NULL;
		} else {
			waiting++;
		}
	}
	if (waiting == 0)
		all_answered();
	event_base_dispatch(server.base);
	st = dns_stats();
	for (size_t i = 0; i < nprobes; i++) {
		struct probe *p = &probes[i];

		if (p->line)
			printf("%s\n", p->line);
		else
			printf("%s %s: %s\n", p->kind, p->name, p->cancel ? "cancelled" : "freed");
		free(p->line);
	}
	printf("stats: queries=%llu failures=%llu pending=%u\n", st->queries, st->failures,
	       st->pending);
	dns_free();
	if (free_ev)
		event_free(free_ev);
	event_free(deadline_ev);
	event_free(linger_ev);
	event_base_free(server.base);
	return bug ? 1 : 0;
}

/*
 * listener.c - the listening sockets of the config.
 */
#include "listener.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include "log.h"
#include "util.h"
#include "server.h"

struct listener {
	struct evconnlistener *lev;
	struct event *resume;		/* re-enables accept after EMFILE */
	const struct config_listener *cfg;
};

static struct listener *listeners;
static size_t nlisteners;
static listener_accept_fn handlers[LISTEN_TYPE_COUNT];

int listener_register(enum listener_type type, listener_accept_fn fn)
{
	if ((unsigned)type >= LISTEN_TYPE_COUNT || handlers[type])
		return -1;
	handlers[type] = fn;
	return 0;
}

/* ---- per-address counts: a small open-addressing table ---- */

struct ip_count {
	char ip[INET6_ADDRSTRLEN];
	unsigned n;
};

static struct ip_count *ips;
static size_t ips_cap, ips_used;

static uint32_t ip_hash(const char *s)
{
	return util_hash32(s, strlen(s));
}

static struct ip_count *ip_slot(const char *ip, bool create)
{
	if (ips_cap == 0 || (create && ips_used * 2 >= ips_cap)) {
		size_t cap = ips_cap ? ips_cap * 2 : 1024;
		struct ip_count *t = calloc(cap, sizeof(*t));

		if (!t)
			return NULL;
		for (size_t i = 0; i < ips_cap; i++) {
			if (!ips[i].n)
				continue;
			size_t j = ip_hash(ips[i].ip) & (cap - 1);
			while (t[j].n)
				j = (j + 1) & (cap - 1);
			t[j] = ips[i];
		}
		free(ips);
		ips = t;
		ips_cap = cap;
	}
	for (size_t i = ip_hash(ip) & (ips_cap - 1), k = 0; k < ips_cap;
	     i = (i + 1) & (ips_cap - 1), k++) {
		if (ips[i].n && strcmp(ips[i].ip, ip) == 0)
			return &ips[i];
		if (!ips[i].n)
			return create ? &ips[i] : NULL;
	}
	return NULL;
}

/* Removing from linear probing: re-insert the rest of the cluster. */
static void ip_remove(struct ip_count *slot)
{
	size_t i = (size_t)(slot - ips);

	slot->n = 0;
	ips_used--;
	for (i = (i + 1) & (ips_cap - 1); ips[i].n; i = (i + 1) & (ips_cap - 1)) {
		struct ip_count e = ips[i];

		ips[i].n = 0;
		ips_used--;
		struct ip_count *s = ip_slot(e.ip, true);
		*s = e;
		ips_used++;
	}
}

bool listener_ip_acquire(const char *ip)
{
	struct ip_count *s = ip_slot(ip, true);

	if (!s)
		return false;
	if (s->n >= server.cfg->limits.connections_per_ip)
		return false;
	if (s->n++ == 0) {
		snprintf(s->ip, sizeof(s->ip), "%s", ip);
		ips_used++;
	}
	return true;
}

void listener_ip_release(const char *ip)
{
	struct ip_count *s = ip_slot(ip, false);

	if (s && s->n && --s->n == 0)
		ip_remove(s);
}

/* ---- accepting ---- */

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct listener *l = arg;

	(void)lev;
	(void)salen;
	handlers[l->cfg->type](fd, sa, l->cfg);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;

	evconnlistener_enable(l->lev);
}

static void on_accept_error(struct evconnlistener *lev, void *arg)
{
	struct listener *l = arg;
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval second = { 1, 0 };

	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		/* Out of descriptors: the pending connection stays in the backlog; try
		 * again in a second rather than wake up for it in a loop. */
		log_warn("listener", "%s port %u: %s; pausing accept for 1 s",
			 l->cfg->address, l->cfg->port, strerror(err));
		evconnlistener_disable(lev);
		evtimer_add(l->resume, &second);
		return;
	}
	log_warn("listener", "%s port %u: accept: %s", l->cfg->address, l->cfg->port,
		 strerror(err));
}

int listeners_start(const struct config *cfg)
{
	listeners = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(*listeners));
	if (!listeners)
		return -1;
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct config_listener *lc = &cfg->listeners[i];
		struct listener *l = &listeners[nlisteners];
		struct sockaddr_storage ss;
		int sslen = sizeof(ss);
		char addr[128];

		if (!handlers[lc->type]) {
			log_info("listener", "%s listener on port %u: not served by this version "
				 "yet", config_listener_type_name(lc->type), lc->port);
			continue;
		}
		snprintf(addr, sizeof(addr), strchr(lc->address, ':') ? "[%s]:%u" : "%s:%u",
			 lc->address, lc->port);
		memset(&ss, 0, sizeof(ss));
		if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sslen) < 0) {
			log_error("listener", "%s: cannot parse the address", addr);
			return -1;
		}
		l->cfg = lc;
		l->resume = evtimer_new(server.base, on_resume, l);
		l->lev = evconnlistener_new_bind(server.base, on_accept, l,
						 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
						 LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT,
						 1024, (struct sockaddr *)&ss, sslen);
		if (!l->lev || !l->resume) {
			log_error("listener", "cannot listen on %s (%s): %s", addr,
				  config_listener_type_name(lc->type), strerror(errno));
			if (l->resume)
				event_free(l->resume);
			return -1;
		}
		evconnlistener_set_error_cb(l->lev, on_accept_error);
		nlisteners++;
		log_info("listener", "listening on %s (%s, tls %s)", addr,
			 config_listener_type_name(lc->type), config_tls_mode_name(lc->tls));
	}
	return 0;
}

void listeners_stop(void)
{
	for (size_t i = 0; i < nlisteners; i++) {
		evconnlistener_free(listeners[i].lev);
		event_free(listeners[i].resume);
	}
	free(listeners);
	listeners = NULL;
	nlisteners = 0;
	free(ips);
	ips = NULL;
	ips_cap = ips_used = 0;
}

/*
 * ctl.c - the control socket parleyctl talks to: status, stats, sessions,
 * components, kick, reload, and the commands modules serve (module_command: `parleyctl muc ...`).
 * (Account management goes straight to the database from parleyctl, so it
 * works with the daemon down.)
 */
#include "ctl.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "db.h"
#include "jid.h"
#include "log.h"
#include "module.h"
#include "router.h"
#include "server.h"
#include "session.h"
#include "stanza_id.h"
#include "users.h"
#include "stream.h"
#include "vhost.h"

static struct evconnlistener *ctl_lev;
static char *ctl_path;

struct out {
	struct evbuffer *b;
	bool json;
	bool first;	/* no element written yet in the current JSON list */
};

void ctl_json_str(struct evbuffer *b, const char *s)
{
	evbuffer_add(b, "\"", 1);
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			evbuffer_add_printf(b, "\\%c", ch);
		else if (ch < 0x20)
			evbuffer_add_printf(b, "\\u%04x", ch);
		else
			evbuffer_add(b, s, 1);
	}
	evbuffer_add(b, "\"", 1);
}

static int cmd_status(struct out *o, int argc, char **argv)
{
	long up = (long)(time(NULL) - server.started);

	if (o->json) {
		evbuffer_add_printf(o->b, "{\"ok\":true,\"version\":\"%s\",\"pid\":%ld,"
				    "\"uptime\":%ld,\"hosts\":[", PACKAGE_VERSION,
				    (long)getpid(), up);
		for (size_t i = 0; i < vhost_count(); i++) {
			if (i)
				evbuffer_add(o->b, ",", 1);
			ctl_json_str(o->b, vhost_name(vhost_at(i)));
		}
		evbuffer_add_printf(o->b, "],\"sessions\":%zu,\"db_connected\":%u}\n",
				    sm_count(), db_connected(server.db));
		return 0;
	}
	evbuffer_add_printf(o->b, "parleyd %s running, pid %ld, up %ldd %02ld:%02ld:%02ld\n",
			    PACKAGE_VERSION, (long)getpid(), up / 86400, up / 3600 % 24,
			    up / 60 % 60, up % 60);
	evbuffer_add_printf(o->b, "hosts:     ");
	for (size_t i = 0; i < vhost_count(); i++)
		evbuffer_add_printf(o->b, "%s%s", i ? ", " : "", vhost_name(vhost_at(i)));
	evbuffer_add_printf(o->b, "\nsessions:  %zu\ndatabase:  %u of %u connections up\n",
			    sm_count(), db_connected(server.db), server.cfg->db_pool);
	return 0;
}

static int cmd_stats(struct out *o, int argc, char **argv)
{
	const struct stream_stats *c = &stream_stats;
	const struct router_stats *r = router_stats();
	long up = (long)(time(NULL) - server.started);
	long rss = server_rss_kb();

	if (o->json) {
		evbuffer_add_printf(o->b, "{\"ok\":true,\"uptime\":%ld,\"connections_open\":%u,"
			"\"connections_total\":%llu,\"sessions\":%zu,\"authenticated\":%u,"
			"\"stanzas_in\":%llu,\"stanzas_out\":%llu,\"routed\":%llu,"
			"\"routing_errors\":%llu,\"duplicates_dropped\":%llu,\"auth_failures\":%llu,"
			"\"db_pending\":%u,\"rss_kb\":%ld}\n", up, c->open, c->connections,
			sm_count(), c->authenticated, c->stanzas_in, c->stanzas_out, r->routed,
			r->errors, stanza_id_duplicates(), c->auth_failures, db_pending(server.db), rss);
		return 0;
	}
	evbuffer_add_printf(o->b,
		"uptime            %ld s\n"
		"connections       %u open, %llu since start\n"
		"sessions          %zu bound, %u authenticated streams\n"
		"stanzas           %llu in, %llu out, %llu routed, %llu answered with errors\n"
		"duplicates        %llu messages sent again (same origin-id) dropped\n"
		"auth failures     %llu\n"
		"database          %u queries pending\n"
		"memory            %ld kB resident\n",
		up, c->open, c->connections, sm_count(), c->authenticated, c->stanzas_in,
		c->stanzas_out, r->routed, r->errors, stanza_id_duplicates(), c->auth_failures,
		db_pending(server.db),
		rss);
	return 0;
}

static void list_session(struct session *s, void *arg)
{
	struct out *o = arg;
	long age = (long)(time(NULL) - session_started(s));

	if (o->json) {
		evbuffer_add_printf(o->b, "%s{\"jid\":", o->first ? "" : ",");
		ctl_json_str(o->b, session_jid(s)->full);
		evbuffer_add_printf(o->b, ",\"address\":");
		ctl_json_str(o->b, session_address(s));
		evbuffer_add_printf(o->b, ",\"transport\":\"%s\",\"tls\":%s,\"priority\":%d,\"available\":%s,"
				    "\"detached\":%s,\"seconds\":%ld}", session_transport(s),
				    session_tls(s) ? "true" : "false", session_priority(s),
				    session_available(s) ? "true" : "false",
				    session_detached(s) ? "true" : "false", age);
	} else {
		evbuffer_add_printf(o->b, "%-40s %-20s %-9s %-4s %4d %-9s %lds\n",
				    session_jid(s)->full, session_detached(s) ?
				    "(awaiting resume)" : session_address(s), session_transport(s),
				    session_tls(s) ? "tls" : "-", session_priority(s),
				    session_available(s) ? "available" : "-", age);
	}
	o->first = false;
}

static int cmd_sessions(struct out *o, int argc, char **argv)
{
	const char *host = argc > 0 ? argv[0] : NULL;

	if (host && !vhost_find(host)) {
		evbuffer_add_printf(o->b, o->json ? "{\"ok\":false,\"error\":\"unknown host\"}\n"
				    : "unknown host %s\n", host);
		return -1;
	}
	o->first = true;
	if (o->json)
		evbuffer_add_printf(o->b, "{\"ok\":true,\"sessions\":[");
	else
		evbuffer_add_printf(o->b, "%-40s %-20s %-9s %-4s %4s %-9s %s\n", "JID",
				    "ADDRESS", "TRANSPORT", "TLS", "PRIO", "PRESENCE", "AGE");
	sm_foreach(host, list_session, o);
	if (o->json)
		evbuffer_add_printf(o->b, "],\"count\":%zu}\n", sm_count());
	return 0;
}

static int cmd_kick(struct out *o, int argc, char **argv)
{
	struct session *list[1];
	struct jid *j;
	size_t n = 0;
	const char *reason = argc > 1 ? argv[1] : "kicked by the administrator";

	if (argc < 1 || !(j = jid_new(argv[0], NULL))) {
		evbuffer_add_printf(o->b, o->json ? "{\"ok\":false,\"error\":\"not a JID\"}\n"
				    : "not a valid JID\n");
		return -1;
	}
	if (j->resource) {
		struct session *s = sm_find(j);

		if (s) {
			session_close(s, "policy-violation", reason);
			n++;
		}
	} else {
		/* One at a time, looked up again each turn: closing one runs hooks
		 * that may end its siblings too. */
		while (n <= SESSION_RESOURCES_MAX && sm_user_sessions(j, list, 1) > 0) {
			session_close(list[0], "policy-violation", reason);
			n++;
		}
	}
	if (o->json)
		evbuffer_add_printf(o->b, "{\"ok\":%s,\"kicked\":%zu}\n", n ? "true" : "false",
				    n);
	else if (n)
		evbuffer_add_printf(o->b, "kicked %zu session%s of %s\n", n, n == 1 ? "" : "s",
				    j->full);
	else
		evbuffer_add_printf(o->b, "no session of %s\n", j->full);
	jid_free(j);
	return n ? 0 : -1;
}

/* parleyctl unregister deleted the account: its sessions end, modules forget it. */
static int cmd_removed(struct out *o, int argc, char **argv)
{
	struct jid *j = argc >= 1 ? jid_new(argv[0], NULL) : NULL;

	if (!j || !j->local || j->resource || !vhost_find(j->domain)) {
		jid_free(j);
		evbuffer_add_printf(o->b, o->json ? "{\"ok\":false,\"error\":\"not an account of "
				    "this server\"}\n" : "not an account of this server\n");
		return -1;
	}
	users_removed(j->domain, j->local);
	evbuffer_add_printf(o->b, o->json ? "{\"ok\":true}\n" : "%s removed\n", j->full);
	jid_free(j);
	return 0;
}

/* ---- commands served by modules ---- */

struct command {
	char *word;
	struct module *m;
	command_fn fn;
	struct command *next;		/* in registration order */
};

static struct command *mod_commands;

struct ctl_reply {
	struct evbuffer *b;
	bool json;
	bool list;			/* a ctl_list was opened (JSON: closed at the end) */
	bool first;			/* no item of the list yet */
	char *error;			/* ctl_fail's message */
};

int module_command(struct module *m, const char *word, command_fn fn)
{
	struct command *c = calloc(1, sizeof(*c)), **pp = &mod_commands;

	if (!c || !(c->word = strdup(word))) {
		free(c);
		log_error("ctl", "%s: mod_%s: no memory for command %s", module_host(m),
			  module_name(m), word);
		return -1;
	}
	c->m = m;
	c->fn = fn;
	while (*pp)
		pp = &(*pp)->next;
	*pp = c;
	return 0;
}

void ctl_commands_remove(struct module *m)
{
	for (struct command **pp = &mod_commands; *pp;) {
		struct command *c = *pp;

		if (c->m != m) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		free(c->word);
		free(c);
	}
}

bool ctl_json(const struct ctl_reply *r)
{
	return r->json;
}

void ctl_printf(struct ctl_reply *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(r->b, fmt, ap);
	va_end(ap);
}

void ctl_str(struct ctl_reply *r, const char *s)
{
	if (s)
		ctl_json_str(r->b, s);
	else
		evbuffer_add(r->b, "null", 4);
}

void ctl_list(struct ctl_reply *r, const char *key, const char *header)
{
	if (r->list)
		return;
	r->list = r->first = true;
	if (r->json) {
		evbuffer_add(r->b, ",", 1);
		ctl_json_str(r->b, key);
		evbuffer_add(r->b, ":[", 2);
	} else if (header) {
		evbuffer_add_printf(r->b, "%s\n", header);
	}
}

void ctl_item(struct ctl_reply *r)
{
	if (r->json && !r->first)
		evbuffer_add(r->b, ",", 1);
	r->first = false;
}

int ctl_fail(struct ctl_reply *r, const char *fmt, ...)
{
	va_list ap;
	char msg[512];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!r->error)
		r->error = strdup(msg);
	return -1;
}

/* Asks each instance that serves the word, in turn (module.h). */
static int module_commands_run(struct out *o, const char *word, int argc, char **argv)
{
	struct ctl_reply r = { .b = evbuffer_new(), .json = o->json };
	bool known = false;
	int rc = CTL_PASS;

	if (!r.b)
		return -1;
	if (o->json)
		evbuffer_add_printf(r.b, "{\"ok\":true");
	for (struct command *c = mod_commands; c && rc == CTL_PASS; c = c->next) {
		if (strcmp(c->word, word) != 0)
			continue;
		known = true;
		rc = c->fn(c->m, &r, argc, argv);
	}
	if (!known) {
		evbuffer_free(r.b);
		return -2;
	}
	if (rc == CTL_PASS && !r.list)
		ctl_fail(&r, argc > 1 ? "no service of this server has %s" : "%s: no answer "
			 "(see parleyctl help)", argc > 1 ? argv[1] : word);
	if (rc < 0 || r.error) {
		const char *msg = r.error ? r.error : "failed";

		if (o->json) {
			evbuffer_add_printf(o->b, "{\"ok\":false,\"error\":");
			ctl_json_str(o->b, msg);
			evbuffer_add_printf(o->b, "}\n");
		} else {
			evbuffer_add_printf(o->b, "%s\n", msg);
		}
		rc = -1;
	} else {
		if (o->json)
			evbuffer_add_printf(r.b, "%s}\n", r.list ? "]" : "");
		evbuffer_add_buffer(o->b, r.b);
		rc = 0;
	}
	free(r.error);
	evbuffer_free(r.b);
	return rc;
}

static int cmd_reload(struct out *o, int argc, char **argv)
{
	raise(SIGHUP);	/* one reload path, whether by signal or by parleyctl */
	evbuffer_add_printf(o->b, o->json ? "{\"ok\":true}\n" : "reload requested\n");
	return 0;
}

/* ---- commands of core subsystems (ctl_register) ---- */

static struct {
	const char *word;
	ctl_core_fn fn;
} core_commands[CTL_CORE_MAX];
static size_t core_count;

int ctl_register(const char *word, ctl_core_fn fn)
{
	for (size_t i = 0; i < core_count; i++)
		if (strcmp(core_commands[i].word, word) == 0 && core_commands[i].fn == fn)
			return 0;	/* again, after a reload */
	if (core_count == CTL_CORE_MAX) {
		log_error("ctl", "no room for the command %s (CTL_CORE_MAX)", word);
		return -1;
	}
	core_commands[core_count].word = word;
	core_commands[core_count++].fn = fn;
	return 0;
}

static int core_command_run(struct out *o, const char *word, int argc, char **argv)
{
	for (size_t i = 0; i < core_count; i++)
		if (strcmp(core_commands[i].word, word) == 0)
			return core_commands[i].fn(o->b, o->json, argc, argv);
	return -2;
}

static const struct {
	const char *name;
	int (*fn)(struct out *o, int argc, char **argv);
} commands[] = {
	{ "status", cmd_status }, { "stats", cmd_stats }, { "sessions", cmd_sessions },
	{ "kick", cmd_kick }, { "removed", cmd_removed },
	{ "reload", cmd_reload },
};

static void ctl_done(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_free(bev);
}

static void ctl_event(struct bufferevent *bev, short what, void *arg)
{
	bufferevent_free(bev);
}

static void ctl_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer *body = evbuffer_new();
	size_t len;
	char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
	char *argv[CTL_ARGS_MAX + 2], *save = NULL, *tok;
	int argc = 0, rc = -1;
	struct out o = { .b = body };

	if (!line) {
		if (evbuffer_get_length(in) > CTL_LINE_MAX)
			bufferevent_free(bev);
		evbuffer_free(body);
		return;
	}
	for (tok = strtok_r(line, "\t", &save); tok && argc < CTL_ARGS_MAX + 2;
	     tok = strtok_r(NULL, "\t", &save))
		argv[argc++] = tok;
	if (argc >= 2) {
		o.json = strcmp(argv[0], "json") == 0;
		bool builtin = false;

		for (size_t i = 0; i < sizeof(commands) / sizeof(*commands); i++) {
			if (strcmp(commands[i].name, argv[1]) == 0) {
				rc = commands[i].fn(&o, argc - 2, argv + 2);
				builtin = true;
			}
		}
		if (!builtin && (rc = core_command_run(&o, argv[1], argc - 2, argv + 2)) == -2 &&
		    (rc = module_commands_run(&o, argv[1], argc - 2, argv + 2)) == -2)
			rc = -1;	/* no one serves the word: unknown command */
		if (rc < 0 && evbuffer_get_length(body) == 0)
			evbuffer_add_printf(body, o.json ? "{\"ok\":false,\"error\":"
					    "\"unknown command\"}\n" : "unknown command\n");
		log_info("ctl", "%s%s%s: %s", argv[1], argc > 2 ? " " : "", argc > 2 ? argv[2] : "",
			 rc < 0 ? "failed" : "done");
	}
	bufferevent_write(bev, rc < 0 ? "ERR\n" : "OK\n", rc < 0 ? 4 : 3);
	bufferevent_write_buffer(bev, body);
	evbuffer_free(body);
	free(line);
	bufferevent_disable(bev, EV_READ);
	bufferevent_setcb(bev, NULL, ctl_done, ctl_event, NULL);
}

static void ctl_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
		       int len, void *arg)
{
	struct bufferevent *bev = bufferevent_socket_new(server.base, fd,
							 BEV_OPT_CLOSE_ON_FREE);
	struct timeval tv = { 10, 0 };

	if (!bev) {
		evutil_closesocket(fd);
		return;
	}
	bufferevent_setcb(bev, ctl_read, NULL, ctl_event, NULL);
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_enable(bev, EV_READ);
}

int ctl_start(const struct config *cfg)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	mode_t old;
	int probe;

	if (!cfg->ctl_socket)
		return 0;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", cfg->ctl_socket);
	/* A socket file left by a crash is removed; one a live daemon answers on
	 * means another parleyd uses this config. */
	probe = socket(AF_UNIX, SOCK_STREAM, 0);
	if (probe >= 0 && connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		close(probe);
		log_error("ctl", "%s: another parleyd is listening there", cfg->ctl_socket);
		return -1;
	}
	if (probe >= 0)
		close(probe);
	unlink(cfg->ctl_socket);
	old = umask(0077);
	ctl_lev = evconnlistener_new_bind(server.base, ctl_accept, NULL,
					  LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16,
					  (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (!ctl_lev) {
		log_error("ctl", "cannot listen on %s: %s", cfg->ctl_socket, strerror(errno));
		return -1;
	}
	chmod(cfg->ctl_socket, 0600);
	ctl_path = strdup(cfg->ctl_socket);
	log_info("ctl", "control socket %s", cfg->ctl_socket);
	return 0;
}

void ctl_stop(void)
{
	if (ctl_lev)
		evconnlistener_free(ctl_lev);
	ctl_lev = NULL;
	if (ctl_path)
		unlink(ctl_path);
	free(ctl_path);
	ctl_path = NULL;
}

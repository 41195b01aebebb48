/*
 * parleyd.c - the Parley daemon: arguments, config, database, signals, the loop.
 *
 * parleyd runs in the foreground (systemd's Type=simple; use `&` or a supervisor
 * otherwise), logs to stderr or the configured file, stops cleanly on SIGTERM and
 * SIGINT, and re-reads what can change at run time on SIGHUP.
 */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "auth.h"
#include "c2s.h"
#include "component.h"
#include "conn.h"
#include "ctl.h"
#include "db.h"
#include "dns.h"
#include "http.h"
#include "http_admin.h"
#include "hostmeta.h"
#include "listener.h"
#include "log.h"
#include "router.h"
#include "s2s.h"
#include "server.h"
#include "session.h"
#include "tls.h"
#include "roster.h"
#include "users.h"
#include "stanza_id.h"
#include "vhost.h"
#include "worker.h"



static void usage(FILE *fp)
{
	fprintf(fp,
		"Usage: parleyd [-c FILE] [--check-config]\n"
		"\n"
		"Parley XMPP server. Runs in the foreground until SIGTERM or SIGINT;\n"
		"SIGHUP re-reads the log settings of the config and reopens the log file.\n"
		"\n"
		"  -c, --config FILE    config file (default %s)\n"
		"  -t, --check-config   check the config file, print every problem as\n"
		"                       FILE:LINE: message, exit 0 if it is valid, else 1\n"
		"  -d, --debug          log at debug level whatever the config says\n"
		"  -V, --version        print the version and exit\n"
		"  -h, --help           print this help and exit\n"
		"\n"
		"See parleyd(8) and parley.xml(5).\n", SYSCONFDIR "/parley/parley.xml");
}

static struct config *load_config(const char *path)
{
	struct config_errors errs;
	struct config *cfg = config_load(path, &errs);

	for (size_t i = 0; i < errs.count; i++)
		fprintf(stderr, "%s\n", errs.msgs[i]);
	if (!cfg && errs.count > 1)
		fprintf(stderr, "%s: %zu problems\n", path, errs.count);
	config_errors_free(&errs);
	return cfg;
}

/* A busy node needs a descriptor per connection: take the whole hard limit. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("parleyd", "cannot raise the open-file limit to %llu: %s",
				 (unsigned long long)rl.rlim_max, strerror(errno));
	}
	log_info("parleyd", "open-file limit: %llu", (unsigned long long)rl.rlim_cur);
}

/*
 * The schema check runs once, before the loop starts, so a blocking connection
 * here delays nothing but start-up.
 */
static int check_schema(const struct config *cfg)
{
	PGconn *conn = PQconnectdb(cfg->db_conninfo);
	char err[512];
	int have, want = db_schema_expected();

	if (PQstatus(conn) != CONNECTION_OK) {
		log_error("db", "cannot connect to PostgreSQL (%s): %s", cfg->db_conninfo,
			  PQerrorMessage(conn));
		PQfinish(conn);
		return -1;
	}
	have = db_schema_version(conn, err, sizeof(err));
	if (have == want && (auth_load_secret(conn, err, sizeof(err)) < 0 ||
			     s2s_load_secret(conn, err, sizeof(err)) < 0)) {
		log_error("db", "%s", err);
		PQfinish(conn);
		return -1;
	}
	PQfinish(conn);
	if (have < 0) {
		log_error("db", "cannot read the schema version: %s", err);
		return -1;
	}
	if (have < want) {
		log_error("db", "the database schema is at version %d, this parleyd needs %d: "
			  "run `parleyctl db migrate -c %s`", have, want, cfg->path);
		return -1;
	}
	if (have > want) {
		log_error("db", "the database schema is at version %d, newer than this "
			  "parleyd knows (%d): run the matching parleyd", have, want);
		return -1;
	}
	log_info("db", "schema version %d", have);
	return 0;
}

static int apply_log_settings(const struct config *cfg, bool debug)
{
	if (log_open(cfg->log_file) < 0) {
		fprintf(stderr, "parleyd: cannot open the log file %s: %s\n", cfg->log_file,
			strerror(errno));
		return -1;
	}
	log_set_level(debug ? LOG_DEBUG : cfg->log_level);
	return 0;
}

static bool opt_debug;

/*
 * What the config names must also work: certificates that load and match their
 * keys, DNS servers that c-ares takes, modules that exist with valid options.
 * Problems print like config errors. The modules are opened and their options
 * checked here, but loaded only once the database pool they may use exists.
 */
static int check_runtime(const struct config *cfg, bool check_only)
{
	struct config_errors errs = { 0 };
	int rc = 0;

	if (tls_init(cfg, &errs) < 0)
		rc = -1;
	if (dns_init(cfg, &errs) < 0)
		rc = -1;
	if (vhosts_init(cfg, true, &errs) < 0)
		rc = -1;
	/* After the modules: a component's domain may clash with a service. */
	if (components_init(cfg, true, &errs) < 0)
		rc = -1;
	components_free();
	vhosts_free();
	for (size_t i = 0; i < errs.count; i++)
		fprintf(stderr, "%s\n", errs.msgs[i]);
	config_errors_free(&errs);
	if (check_only || rc < 0) {
		dns_free();
		tls_free();
	}
	return rc;
}

/*
 * SIGTERM/SIGINT: stop accepting, close every stream with <system-shutdown/>,
 * give the closing streams a moment to flush, then leave the loop.
 */
static int load_modules(const struct config *cfg)
{
	struct config_errors errs = { 0 };
	int rc = vhosts_init(cfg, false, &errs);

	/* Components are services too, known once the modules' are. */
	if (rc == 0 && components_init(cfg, false, &errs) < 0)
		rc = -1;

	for (size_t i = 0; i < errs.count; i++)
		log_error("modules", "%s", errs.msgs[i]);
	config_errors_free(&errs);
	return rc;
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	struct timeval flush = { 0, 300 * 1000 };

	if (server.shutting_down)
		return;
	log_notice("parleyd", "%s received: shutting down", sig == SIGTERM ? "SIGTERM"
		   : "SIGINT");
	server.shutting_down = true;
	listeners_stop();
	for (size_t i = 0; i < vhost_count(); i++) {
		struct hook_args a = { 0 };

		hooks_run(vhost_at(i)->name, HOOK_SERVER_STOPPING, &a);
	}
	c2s_shutdown_all();
	components_shutdown();
	s2s_shutdown();
	/* Sessions kept for resumption end too: their unacked messages are stored. */
	sm_unbind_all("the server is shutting down");
	event_base_loopexit(server.base, &flush);
}

/* Whether the <component> elements are the same (domains and secrets). */
static bool components_same(const struct config *a, const struct config *b)
{
	if (a->ncomponents != b->ncomponents)
		return false;
	for (size_t i = 0; i < a->ncomponents; i++)
		if (strcmp(a->components[i].domain, b->components[i].domain) != 0 ||
		    strcmp(a->components[i].secret, b->components[i].secret) != 0)
			return false;
	return true;
}

/*
 * SIGHUP: what can change without a restart changes (log level and file); what
 * cannot is named in the log, so an admin knows a restart is needed.
 */
static void on_reload_signal(evutil_socket_t sig, short what, void *arg)
{
	struct config *cfg;

	log_notice("parleyd", "SIGHUP received: reloading %s", server.cfg->path);
	cfg = load_config(server.cfg->path);
	if (!cfg) {
		log_error("parleyd", "the new config has errors (above); keeping the "
			  "running one");
		return;
	}
	if (apply_log_settings(cfg, opt_debug) < 0) {
		log_open(server.cfg->log_file);
		config_free(cfg);
		return;
	}
	if (strcmp(cfg->db_conninfo, server.cfg->db_conninfo) != 0 ||
	    cfg->db_pool != server.cfg->db_pool)
		log_warn("parleyd", "database settings changed: they take effect at the "
			 "next restart");
	if (cfg->nlisteners != server.cfg->nlisteners)
		log_warn("parleyd", "listeners changed: they take effect at the next "
			 "restart");
	if (!cfg->dns.servers != !server.cfg->dns.servers ||
	    (cfg->dns.servers && strcmp(cfg->dns.servers, server.cfg->dns.servers) != 0) ||
	    cfg->dns.timeout_ms != server.cfg->dns.timeout_ms ||
	    cfg->dns.tries != server.cfg->dns.tries)
		log_warn("parleyd", "DNS settings changed: they take effect at the next "
			 "restart");
	if (!components_same(cfg, server.cfg))
		log_warn("parleyd", "components changed: they take effect at the next "
			 "restart");
	/* Keep the running config for what did not reload; take the log settings. */
	free(server.cfg->log_file);
	server.cfg->log_file = cfg->log_file ? strdup(cfg->log_file) : NULL;
	server.cfg->log_level = cfg->log_level;
	config_free(cfg);
	log_notice("parleyd", "reloaded: log level %s", log_level_name(log_get_level()));
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 't' },
		{ "debug", no_argument, NULL, 'd' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *path = SYSCONFDIR "/parley/parley.xml";
	bool check_only = false;
	struct event *sigs[3] = { 0 };
	int c, rc = 1;

	while ((c = getopt_long(argc, argv, "c:tdVh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 't': check_only = true; break;
		case 'd': opt_debug = true; break;
		case 'V': printf("parleyd %s\n", PACKAGE_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "parleyd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	server.base = event_base_new();
	if (!server.base) {
		fprintf(stderr, "parleyd: cannot create the event loop\n");
		return 1;
	}
	server.cfg = load_config(path);
	if (!server.cfg) {
		event_base_free(server.base);
		return 1;
	}
	if (check_runtime(server.cfg, check_only) < 0) {
		config_free(server.cfg);
		event_base_free(server.base);
		return 1;
	}
	if (check_only) {
		printf("%s: OK (%zu host%s, %zu listener%s)\n", path, server.cfg->nhosts,
		       server.cfg->nhosts == 1 ? "" : "s", server.cfg->nlisteners,
		       server.cfg->nlisteners == 1 ? "" : "s");
		config_free(server.cfg);
		event_base_free(server.base);
		return 0;
	}
	if (apply_log_settings(server.cfg, opt_debug) < 0)
		goto out;
	log_notice("parleyd", "Parley %s starting (config %s, pid %ld)", PACKAGE_VERSION,
		   path, (long)getpid());
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	if (check_schema(server.cfg) < 0)
		goto out;

	server.started = time(NULL);
	server.db = db_new(server.base, server.cfg->db_conninfo, server.cfg->db_pool);
	if (!server.db) {
		log_error("parleyd", "cannot set up the database pool");
		goto out;
	}
	if (users_init() < 0 || roster_init() < 0) {
		log_error("parleyd", "cannot prepare the account queries");
		goto out;
	}
	if (worker_init(server.base, 2) < 0) {
		log_error("parleyd", "cannot start the worker threads");
		goto out;
	}
	if (load_modules(server.cfg) < 0)
		goto out;
	if (c2s_init() < 0 || s2s_init() < 0 || http_init() < 0 || http_admin_init() < 0 ||
	    hostmeta_init() < 0 ||
	    listeners_start(server.cfg) < 0 || ctl_start(server.cfg) < 0)
		goto out;
	sigs[0] = evsignal_new(server.base, SIGTERM, on_stop_signal, NULL);
	sigs[1] = evsignal_new(server.base, SIGINT, on_stop_signal, NULL);
	sigs[2] = evsignal_new(server.base, SIGHUP, on_reload_signal, NULL);
	for (int i = 0; i < 3; i++)
		if (!sigs[i] || evsignal_add(sigs[i], NULL) < 0) {
			log_error("parleyd", "cannot install signal handlers");
			goto out;
		}
	for (size_t i = 0; i < server.cfg->nhosts; i++)
		log_info("parleyd", "serving host %s", server.cfg->hosts[i].name);
	log_notice("parleyd", "ready");
	event_base_dispatch(server.base);
	rc = 0;
	log_notice("parleyd", "stopped");
out:
	for (int i = 0; i < 3; i++)
		if (sigs[i])
			event_free(sigs[i]);
	worker_shutdown();
	ctl_stop();
	if (!server.shutting_down)
		listeners_stop();
	c2s_free_all();
	components_free();
	s2s_free();
	http_shutdown();
	http_admin_shutdown();
	sm_unbind_all("server stopped");
	stanza_id_free();
	/* After whatever holds a query (s2s): none of their callbacks runs now. */
	dns_free();
	/* Pending queries answer (with errors) while the modules are still loaded. */
	db_free(server.db);
	server.db = NULL;
	vhosts_free();
	roster_shutdown();
	tls_free();
	conn_shutdown();
	if (server.base)
		event_base_free(server.base);
	config_free(server.cfg);
	log_close();
	return rc;
}

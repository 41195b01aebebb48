/*
 * parleyctl.c - the admin tool.
 *
 * Commands are a table: name, arguments, one line of help, and the function.
 * `parleyctl help` prints the table, so help and code cannot drift. Every
 * command takes --json for scripts; exit codes: 0 success, 1 the command failed,
 * 2 bad usage, 3 cannot reach the daemon or the database.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <dlfcn.h>
#include <openssl/rand.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "ctl.h"
#include "db.h"
#include "jid.h"
#include "module.h"
#include "schema.h"
#include "users.h"

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

#define CTL_REQ_MAX 4096	/* the daemon reads one line of at most this */

struct ctl {
	const char *config_path;
	bool json;
	struct config *cfg;
};

struct command {
	const char *name;	/* may be two words: "db migrate" */
	const char *args;
	const char *help;
	int (*run)(struct ctl *ctl, int argc, char **argv);
};

/* JSON string output: escapes what RFC 8259 requires. */
static void json_str(FILE *fp, const char *s)
{
	fputc('"', fp);
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(fp, "\\%c", ch);
		else if (ch == '\n')
			fputs("\\n", fp);
		else if (ch < 0x20)
			fprintf(fp, "\\u%04x", ch);
		else
			fputc(ch, fp);
	}
	fputc('"', fp);
}

static void fail_json(struct ctl *ctl, const char *msg)
{
	if (ctl->json) {
		fputs("{\"ok\":false,\"error\":", stdout);
		json_str(stdout, msg);
		fputs("}\n", stdout);
	} else {
		fprintf(stderr, "parleyctl: %s\n", msg);
	}
}

static int load_config(struct ctl *ctl)
{
	struct config_errors errs;

	ctl->cfg = config_load(ctl->config_path, &errs);
	for (size_t i = 0; i < errs.count; i++)
		fprintf(stderr, "%s\n", errs.msgs[i]);
	config_errors_free(&errs);
	if (!ctl->cfg) {
		fail_json(ctl, "the config file has errors");
		return -1;
	}
	return 0;
}

static PGconn *db_connect(struct ctl *ctl)
{
	PGconn *conn;
	char msg[1024];

	if (!ctl->cfg && load_config(ctl) < 0)
		return NULL;
	conn = PQconnectdb(ctl->cfg->db_conninfo);
	if (PQstatus(conn) != CONNECTION_OK) {
		snprintf(msg, sizeof(msg), "cannot connect to PostgreSQL (%s): %s",
			 ctl->cfg->db_conninfo, PQerrorMessage(conn));
		msg[strcspn(msg, "\n")] = '\0';
		fail_json(ctl, msg);
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

struct migrate_report {
	struct ctl *ctl;
	int count;
};

static void report_migration(void *arg, int version, const char *name)
{
	struct migrate_report *r = arg;

	if (r->ctl->json) {
		printf("%s{\"version\":%d,\"name\":", r->count ? "," : "", version);
		json_str(stdout, name);
		putchar('}');
	} else {
		printf("applied %03d_%s\n", version, name);
	}
	r->count++;
}

static int cmd_db_migrate(struct ctl *ctl, int argc, char **argv)
{
	struct migrate_report r = { ctl, 0 };
	PGconn *conn = db_connect(ctl);
	char err[512];
	int n, version;

	if (!conn)
		return EXIT_UNREACHABLE;
	if (ctl->json)
		fputs("{\"applied\":[", stdout);
	n = db_migrate(conn, report_migration, &r, err, sizeof(err));
	version = n < 0 ? -1 : db_schema_version(conn, err, sizeof(err));
	PQfinish(conn);
	if (ctl->json) {
		printf("],\"ok\":%s,\"version\":%d", n < 0 ? "false" : "true", version);
		if (n < 0) {
			fputs(",\"error\":", stdout);
			json_str(stdout, err);
		}
		fputs("}\n", stdout);
		return n < 0 ? EXIT_FAILED : EXIT_OK;
	}
	if (n < 0) {
		fprintf(stderr, "parleyctl: migration failed: %s\n", err);
		return EXIT_FAILED;
	}
	if (n == 0)
		printf("the schema is up to date (version %d)\n", version);
	else
		printf("the schema is now at version %d (%d migration%s applied)\n", version, n,
		       n == 1 ? "" : "s");
	return EXIT_OK;
}

static int cmd_db_version(struct ctl *ctl, int argc, char **argv)
{
	PGconn *conn = db_connect(ctl);
	char err[512];
	int have, want = db_schema_expected();

	if (!conn)
		return EXIT_UNREACHABLE;
	have = db_schema_version(conn, err, sizeof(err));
	PQfinish(conn);
	if (have < 0) {
		fail_json(ctl, err);
		return EXIT_FAILED;
	}
	if (ctl->json)
		printf("{\"ok\":true,\"version\":%d,\"expected\":%d,\"up_to_date\":%s}\n",
		       have, want, have == want ? "true" : "false");
	else
		printf("schema version %d, this build expects %d%s\n", have, want,
		       have < want ? ": run `parleyctl db migrate`" : "");
	return have == want ? EXIT_OK : EXIT_FAILED;
}

static int cmd_help(struct ctl *ctl, int argc, char **argv);

/* ---- commands served by the running daemon, over the control socket ---- */

/*
 * Sends "FORMAT\tCMD\tARGS\n" and copies the answer's body to stdout. The
 * first line of the answer is OK or ERR.
 */
static int daemon_call(struct ctl *ctl, const char *cmd, int argc, char **argv)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char req[CTL_REQ_MAX], buf[4096];
	size_t len;
	int fd, rc = EXIT_FAILED, first = 1;
	FILE *fp;

	if (!ctl->cfg && load_config(ctl) < 0)
		return EXIT_FAILED;
	if (!ctl->cfg->ctl_socket) {
		fail_json(ctl, "the config has no <control socket=...>: the daemon cannot be "
			  "reached");
		return EXIT_UNREACHABLE;
	}
	len = (size_t)snprintf(req, sizeof(req), "%s\t%s", ctl->json ? "json" : "text", cmd);
	for (int i = 0; i < argc; i++) {
		if (strpbrk(argv[i], "\t\n")) {
			fail_json(ctl, "arguments may not contain tabs or newlines");
			return EXIT_USAGE;
		}
		len += (size_t)snprintf(req + len, sizeof(req) - len, "\t%s", argv[i]);
		if (len >= sizeof(req) - 1) {
			fail_json(ctl, "arguments too long");
			return EXIT_USAGE;
		}
	}
	req[len++] = '\n';
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", ctl->cfg->ctl_socket);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		char msg[512];

		snprintf(msg, sizeof(msg), "cannot reach parleyd at %s: %s (is it running?)",
			 ctl->cfg->ctl_socket, strerror(errno));
		fail_json(ctl, msg);
		if (fd >= 0)
			close(fd);
		return EXIT_UNREACHABLE;
	}
	if (write(fd, req, len) != (ssize_t)len) {
		close(fd);
		fail_json(ctl, "cannot send the request");
		return EXIT_UNREACHABLE;
	}
	fp = fdopen(fd, "r");
	if (!fp) {
		close(fd);
		return EXIT_FAILED;
	}
	while (fgets(buf, sizeof(buf), fp)) {
		if (first) {
			first = 0;
			rc = strcmp(buf, "OK\n") == 0 ? EXIT_OK : EXIT_FAILED;
			continue;
		}
		fputs(buf, rc == EXIT_OK || ctl->json ? stdout : stderr);
	}
	fclose(fp);
	if (first) {
		fail_json(ctl, "parleyd closed the connection without answering");
		return EXIT_UNREACHABLE;
	}
	return rc;
}

static int cmd_status(struct ctl *ctl, int argc, char **argv)
{
	return daemon_call(ctl, "status", argc, argv);
}

static int cmd_stats(struct ctl *ctl, int argc, char **argv)
{
	return daemon_call(ctl, "stats", argc, argv);
}

static int cmd_sessions(struct ctl *ctl, int argc, char **argv)
{
	if (argc > 1)
		return EXIT_USAGE;
	return daemon_call(ctl, "sessions", argc, argv);
}

static int cmd_components(struct ctl *ctl, int argc, char **argv)
{
	if (argc > 0) {
		fail_json(ctl, "usage: parleyctl components");
		return EXIT_USAGE;
	}
	return daemon_call(ctl, "components", argc, argv);
}

static int cmd_kick(struct ctl *ctl, int argc, char **argv)
{
	if (argc < 1 || argc > 2) {
		fail_json(ctl, "usage: parleyctl kick JID [REASON]");
		return EXIT_USAGE;
	}
	return daemon_call(ctl, "kick", argc, argv);
}

static int cmd_s2s_list(struct ctl *ctl, int argc, char **argv)
{
	if (argc > 0) {
		fail_json(ctl, "usage: parleyctl s2s, or parleyctl s2s close DOMAIN");
		return EXIT_USAGE;
	}
	return daemon_call(ctl, "s2s", 0, argv);
}

static int cmd_s2s_close(struct ctl *ctl, int argc, char **argv)
{
	char *args[2] = { "close", argc == 1 ? argv[0] : NULL };

	if (argc != 1) {
		fail_json(ctl, "usage: parleyctl s2s close DOMAIN");
		return EXIT_USAGE;
	}
	return daemon_call(ctl, "s2s", 2, args);
}

static int cmd_reload(struct ctl *ctl, int argc, char **argv)
{
	return daemon_call(ctl, "reload", 0, argv);
}

/* A command a module serves: the word and the subcommand go to the daemon. */
static int module_call(struct ctl *ctl, const char *word, const char *sub, int min, int max,
		       const char *usage, int argc, char **argv)
{
	char *args[CTL_ARGS_MAX];

	if (argc < min || argc > max || argc + 1 > CTL_ARGS_MAX) {
		char msg[160];

		snprintf(msg, sizeof(msg), "usage: parleyctl %s %s %s", word, sub, usage);
		fail_json(ctl, msg);
		return EXIT_USAGE;
	}
	args[0] = (char *)sub;
	for (int i = 0; i < argc; i++)
		args[i + 1] = argv[i];
	return daemon_call(ctl, word, argc + 1, args);
}

static int cmd_muc_rooms(struct ctl *ctl, int argc, char **argv)
{
	return module_call(ctl, "muc", "rooms", 0, 1, "[SERVICE]", argc, argv);
}

static int cmd_muc_info(struct ctl *ctl, int argc, char **argv)
{
	return module_call(ctl, "muc", "info", 1, 1, "ROOM", argc, argv);
}

static int cmd_muc_create(struct ctl *ctl, int argc, char **argv)
{
	return module_call(ctl, "muc", "create", 1, 2, "ROOM [OWNER]", argc, argv);
}

static int cmd_muc_destroy(struct ctl *ctl, int argc, char **argv)
{
	return module_call(ctl, "muc", "destroy", 1, 2, "ROOM [REASON]", argc, argv);
}

static int cmd_muc_occupants(struct ctl *ctl, int argc, char **argv)
{
	return module_call(ctl, "muc", "occupants", 1, 1, "ROOM", argc, argv);
}

static int cmd_muc_affiliation(struct ctl *ctl, int argc, char **argv)
{
	if (argc == 2) {
		fail_json(ctl, "usage: parleyctl muc affiliation ROOM [JID AFFILIATION]");
		return EXIT_USAGE;
	}
	return module_call(ctl, "muc", "affiliation", 1, 3, "ROOM [JID AFFILIATION]", argc,
			   argv);
}

/* ---- accounts: straight to the database, so they work with parleyd down ---- */

/* Checks USER HOST: a valid localpart of a host the config serves. */
static int account_args(struct ctl *ctl, int argc, char **argv, int min, int max,
			const char *usage, char *user, char *host)
{
	const char *err = NULL;
	char msg[512];

	if (argc < min || argc > max) {
		snprintf(msg, sizeof(msg), "usage: parleyctl %s", usage);
		fail_json(ctl, msg);
		return EXIT_USAGE;
	}
	if (!ctl->cfg && load_config(ctl) < 0)
		return EXIT_FAILED;
	if (jid_nodeprep(argv[0], user, JID_PART_MAX + 1, &err) < 0) {
		snprintf(msg, sizeof(msg), "'%s' is not a valid username: %s", argv[0], err);
		fail_json(ctl, msg);
		return EXIT_FAILED;
	}
	if (jid_nameprep(argv[1], host, JID_PART_MAX + 1, &err) < 0 ||
	    !config_host_find(ctl->cfg, host)) {
		snprintf(msg, sizeof(msg), "'%s' is not a host of %s", argv[1],
			 ctl->config_path);
		fail_json(ctl, msg);
		return EXIT_FAILED;
	}
	return EXIT_OK;
}

/* 16 random characters from an unambiguous alphabet: ~95 bits. */
static void random_password(char *out, size_t len)
{
	static const char alphabet[] = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
	unsigned char rnd[64];

	RAND_bytes(rnd, sizeof(rnd));
	for (size_t i = 0; i + 1 < len && i < sizeof(rnd); i++)
		out[i] = alphabet[rnd[i] % (sizeof(alphabet) - 1)];
	out[len - 1] = '\0';
}

static int report_account(struct ctl *ctl, enum users_status st, const char *verb,
			  const char *user, const char *host, const char *password,
			  const char *err)
{
	char msg[1024];

	switch (st) {
	case USERS_OK:
		if (ctl->json) {
			printf("{\"ok\":true,\"jid\":");
			json_str(stdout, user);
			printf(",\"host\":");
			json_str(stdout, host);
			if (password) {
				printf(",\"password\":");
				json_str(stdout, password);
			}
			printf("}\n");
		} else if (password) {
			printf("%s %s@%s with password %s\n", verb, user, host, password);
		} else {
			printf("%s %s@%s\n", verb, user, host);
		}
		return EXIT_OK;
	case USERS_EXISTS:
		snprintf(msg, sizeof(msg), "%s@%s already exists", user, host);
		break;
	case USERS_NOT_FOUND:
		snprintf(msg, sizeof(msg), "%s@%s does not exist", user, host);
		break;
	default:
		snprintf(msg, sizeof(msg), "%s", err && *err ? err : "database error");
		break;
	}
	fail_json(ctl, msg);
	return EXIT_FAILED;
}

/* register and passwd: USER HOST [PASSWORD], a random one printed if omitted. */
static int set_credentials(struct ctl *ctl, int argc, char **argv, bool create)
{
	char user[JID_PART_MAX + 1], host[JID_PART_MAX + 1], pw[17], err[512] = "";
	const char *password;
	PGconn *conn;
	enum users_status st;
	int rc = account_args(ctl, argc, argv, 2, 3, create ? "register USER HOST [PASSWORD]"
			      : "passwd USER HOST [PASSWORD]", user, host);

	if (rc != EXIT_OK)
		return rc;
	if (argc == 3) {
		password = argv[2];
	} else {
		random_password(pw, sizeof(pw));
		password = pw;
	}
	if (!(conn = db_connect(ctl)))
		return EXIT_UNREACHABLE;
	st = create ? users_create_sync(conn, host, user, password, err, sizeof(err))
		: users_set_password_sync(conn, host, user, password, err, sizeof(err));
	PQfinish(conn);
	return report_account(ctl, st, create ? "registered" : "changed the password of", user,
			      host, argc == 3 ? NULL : pw, err);
}

static int cmd_register(struct ctl *ctl, int argc, char **argv)
{
	return set_credentials(ctl, argc, argv, true);
}

static int cmd_passwd(struct ctl *ctl, int argc, char **argv)
{
	return set_credentials(ctl, argc, argv, false);
}

static int cmd_unregister(struct ctl *ctl, int argc, char **argv)
{
	char user[JID_PART_MAX + 1], host[JID_PART_MAX + 1], err[512] = "", jid[2100];
	PGconn *conn;
	enum users_status st;
	int rc = account_args(ctl, argc, argv, 2, 2, "unregister USER HOST", user, host);

	if (rc != EXIT_OK)
		return rc;
	if (!(conn = db_connect(ctl)))
		return EXIT_UNREACHABLE;
	st = users_remove_sync(conn, host, user, err, sizeof(err));
	PQfinish(conn);
	if (st == USERS_OK && ctl->cfg->ctl_socket) {
		/* Sessions of a deleted account end now, if the daemon runs. */
		bool json = ctl->json;
		int saved = dup(STDOUT_FILENO), saved_err = dup(STDERR_FILENO);
		int devnull = open("/dev/null", O_WRONLY);
		char *args[1] = { jid };

		snprintf(jid, sizeof(jid), "%s@%s", user, host);
		fflush(stdout);
		if (devnull >= 0) {
			dup2(devnull, STDOUT_FILENO);
			dup2(devnull, STDERR_FILENO);
		}
		ctl->json = false;
		daemon_call(ctl, "removed", 1, args);
		fflush(stdout);
		ctl->json = json;
		dup2(saved, STDOUT_FILENO);
		dup2(saved_err, STDERR_FILENO);
		close(saved);
		close(saved_err);
		if (devnull >= 0)
			close(devnull);
	}
	return report_account(ctl, st, "removed", user, host, NULL, err);
}

struct list_state {
	struct ctl *ctl;
	long n;
};

static void print_user(void *arg, const char *user)
{
	struct list_state *ls = arg;

	if (ls->ctl->json) {
		if (ls->n)
			putchar(',');
		json_str(stdout, user);
	} else {
		puts(user);
	}
	ls->n++;
}

static int cmd_users(struct ctl *ctl, int argc, char **argv)
{
	char host[JID_PART_MAX + 1], err[512] = "", msg[600];
	const char *perr = NULL;
	struct list_state ls = { ctl, 0 };
	PGconn *conn;
	long n;

	if (argc != 1) {
		fail_json(ctl, "usage: parleyctl users HOST");
		return EXIT_USAGE;
	}
	if (!ctl->cfg && load_config(ctl) < 0)
		return EXIT_FAILED;
	if (jid_nameprep(argv[0], host, sizeof(host), &perr) < 0 ||
	    !config_host_find(ctl->cfg, host)) {
		snprintf(msg, sizeof(msg), "'%s' is not a host of %s", argv[0], ctl->config_path);
		fail_json(ctl, msg);
		return EXIT_FAILED;
	}
	if (!(conn = db_connect(ctl)))
		return EXIT_UNREACHABLE;
	if (ctl->json)
		printf("{\"ok\":true,\"users\":[");
	n = users_list_sync(conn, host, print_user, &ls, err, sizeof(err));
	PQfinish(conn);
	if (ctl->json)
		printf("],\"count\":%ld}\n", n < 0 ? 0 : n);
	if (n < 0) {
		fail_json(ctl, err);
		return EXIT_FAILED;
	}
	return EXIT_OK;
}

static int cmd_version(struct ctl *ctl, int argc, char **argv)
{
	if (ctl->json)
		printf("{\"ok\":true,\"version\":\"%s\",\"schema\":%d}\n", PACKAGE_VERSION,
		       db_schema_expected());
	else
		printf("parleyctl %s (schema %d)\n", PACKAGE_VERSION, db_schema_expected());
	return EXIT_OK;
}

/* ---- offline storage ---- */

/* The default of a module's option, read from its table in the .so (the one
 * place it is written). Copied into out; -1 when the module cannot be read. */
static int option_default(struct ctl *ctl, const char *module, const char *option,
			  char *out, size_t outlen)
{
	const char *dir = ctl->cfg->module_dir ? ctl->cfg->module_dir : MODULEDIR;
	const struct module_def *def;
	char path[4096];
	void *h;
	int rc = -1;

	snprintf(path, sizeof(path), "%s/mod_%s.so", dir, module);
	h = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
	def = h ? dlsym(h, "parley_module") : NULL;
	for (const struct module_option *o = def && def->abi == PARLEY_MODULE_ABI ?
	     def->options : NULL; o && o->name; o++) {
		if (strcmp(o->name, option) == 0 && o->def) {
			snprintf(out, outlen, "%s", o->def);
			rc = 0;
		}
	}
	if (h)
		dlclose(h);
	return rc;
}

/* A host's retention-days: its <module name="offline">'s, or the default.
 * 0 when the host does not enable mod_offline; -1 when it cannot be read. */
static long host_retention(struct ctl *ctl, const struct config_host *h)
{
	char def[32];

	for (size_t i = 0; i < h->nmodules; i++) {
		const struct config_module *m = &h->modules[i];

		if (strcmp(m->name, "offline") != 0)
			continue;
		for (size_t j = 0; j < m->noptions; j++)
			if (strcmp(m->options[j].name, "retention-days") == 0)
				return strtol(m->options[j].value, NULL, 10);
		if (option_default(ctl, "offline", "retention-days", def, sizeof(def)) < 0)
			return -1;
		return strtol(def, NULL, 10);
	}
	return 0;
}

static int purge_host(struct ctl *ctl, PGconn *conn, const char *host, unsigned long n,
		      bool first)
{
	char days[24], msg[600];
	const char *params[2] = { days, host };
	PGresult *res;
	int rc = EXIT_OK;

	snprintf(days, sizeof(days), "%lu", n);
	/* host NULL: every host, those no longer in the config too. */
	res = PQexecParams(conn, host ? "DELETE FROM offline WHERE created <= now() - "
			   "make_interval(days => $1::int) AND host = $2" : "DELETE FROM offline "
			   "WHERE created <= now() - make_interval(days => $1::int)", host ? 2 : 1,
			   NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		snprintf(msg, sizeof(msg), "%s: %s", host ? host : "all hosts",
			 PQresultErrorMessage(res));
		msg[strcspn(msg, "\n")] = '\0';
		if (ctl->json) {
			printf("%s{\"host\":", first ? "" : ",");
			if (host)
				json_str(stdout, host);
			else
				printf("null");
			printf(",\"error\":");
			json_str(stdout, msg);
			printf("}");
		} else {
			fprintf(stderr, "parleyctl: %s\n", msg);
		}
		rc = EXIT_FAILED;
	} else if (ctl->json) {
		printf("%s{\"host\":", first ? "" : ",");
		if (host)
			json_str(stdout, host);
		else
			printf("null");
		printf(",\"deleted\":%s,\"older_than_days\":%lu}", PQcmdTuples(res), n);
	} else {
		printf("%s: deleted %s stored message%s older than %lu day%s\n",
		       host ? host : "all hosts",
		       PQcmdTuples(res), strcmp(PQcmdTuples(res), "1") ? "s" : "", n,
		       n == 1 ? "" : "s");
	}
	PQclear(res);
	return rc;
}

/* Deletes stored messages older than DAYS, or each host's retention-days. */
static int cmd_offline_purge(struct ctl *ctl, int argc, char **argv)
{
	unsigned long given = 0;
	char *end;
	PGconn *conn;
	int rc = EXIT_OK;
	bool first = true;

	if (argc > 1) {
		fail_json(ctl, "usage: parleyctl offline purge [DAYS]");
		return EXIT_USAGE;
	}
	if (!ctl->cfg && load_config(ctl) < 0)
		return EXIT_FAILED;
	if (argc == 1) {
		given = strtoul(argv[0], &end, 10);
		if (*end || !*argv[0] || given > 36500) {
			fail_json(ctl, "DAYS must be a number of days, 0 to 36500");
			return EXIT_USAGE;
		}
	}
	if (!(conn = db_connect(ctl)))
		return EXIT_UNREACHABLE;
	if (ctl->json)
		printf("{\"hosts\":[");
	if (argc == 1 && purge_host(ctl, conn, NULL, given, true) != EXIT_OK)
		rc = EXIT_FAILED;
	for (size_t i = 0; argc == 0 && i < ctl->cfg->nhosts; i++) {
		const struct config_host *h = &ctl->cfg->hosts[i];
		long n = argc == 1 ? (long)given : host_retention(ctl, h);

		if (n < 0) {
			fprintf(stderr, "parleyctl: %s: cannot read mod_offline's retention-days "
				"default; give DAYS\n", h->name);
			rc = EXIT_FAILED;
			continue;
		}
		if (n == 0 && argc == 0)
			continue;	/* no mod_offline on this host: nothing stored */
		if (purge_host(ctl, conn, h->name, (unsigned long)n, first) != EXIT_OK)
			rc = EXIT_FAILED;
		first = false;
	}
	if (ctl->json)
		printf("],\"ok\":%s}\n", rc == EXIT_OK ? "true" : "false");
	PQfinish(conn);
	return rc;
}

/* ---- upload: straight to the database and the storage directory ---- */

/* A host's option of a module: its config's value or the module's default.
 * 1 when the host does not enable the module, -1 when it cannot be read. */
static int host_option(struct ctl *ctl, const struct config_host *h, const char *module,
		       const char *option, char *out, size_t outlen)
{
	for (size_t i = 0; i < h->nmodules; i++) {
		const struct config_module *m = &h->modules[i];

		if (strcmp(m->name, module) != 0)
			continue;
		for (size_t j = 0; j < m->noptions; j++) {
			if (strcmp(m->options[j].name, option) == 0) {
				snprintf(out, outlen, "%s", m->options[j].value);
				return 0;
			}
		}
		return option_default(ctl, module, option, out, outlen);
	}
	return 1;
}

static void human(unsigned long long n, char *out, size_t len)
{
	if (n >= 1ull << 30)
		snprintf(out, len, "%.1f GiB", n / 1073741824.0);
	else if (n >= 1ull << 20)
		snprintf(out, len, "%.1f MiB", n / 1048576.0);
	else if (n >= 1024)
		snprintf(out, len, "%.1f KiB", n / 1024.0);
	else
		snprintf(out, len, "%llu B", n);
}

static int upload_query_failed(struct ctl *ctl, PGresult *res, ExecStatusType want)
{
	char msg[512];

	if (PQresultStatus(res) == want)
		return 0;
	snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(res));
	msg[strcspn(msg, "\n")] = '\0';
	fail_json(ctl, msg);
	PQclear(res);
	return -1;
}

static int cmd_upload_stats(struct ctl *ctl, int argc, char **argv)
{
	PGconn *conn;
	PGresult *res;
	bool first = true;
	char b1[32], b2[32];

	(void)argv;
	if (argc > 0) {
		fail_json(ctl, "usage: parleyctl upload stats");
		return EXIT_USAGE;
	}
	if (!ctl->cfg && load_config(ctl) < 0)
		return EXIT_FAILED;
	if (!(conn = db_connect(ctl)))
		return EXIT_UNREACHABLE;
	res = PQexec(conn, "SELECT host, count(*), count(DISTINCT owner), coalesce(sum(size), 0), "
		     "count(*) FILTER (WHERE expires <= now()) FROM upload_files GROUP BY host "
		     "ORDER BY host");
	if (upload_query_failed(ctl, res, PGRES_TUPLES_OK) < 0) {
		PQfinish(conn);
		return EXIT_FAILED;
	}
	if (ctl->json)
		printf("{\"ok\":true,\"hosts\":[");
	else
		printf("%-30s %8s %8s %12s %8s\n", "HOST", "FILES", "USERS", "BYTES", "EXPIRED");
	for (int i = 0; i < PQntuples(res); i++) {
		unsigned long long bytes = strtoull(PQgetvalue(res, i, 3), NULL, 10);

		if (ctl->json) {
			printf("%s{\"host\":", first ? "" : ",");
			json_str(stdout, PQgetvalue(res, i, 0));
			printf(",\"files\":%s,\"users\":%s,\"bytes\":%llu,\"expired\":%s}",
			       PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), bytes,
			       PQgetvalue(res, i, 4));
		} else {
			human(bytes, b1, sizeof(b1));
			printf("%-30s %8s %8s %12s %8s\n", PQgetvalue(res, i, 0),
			       PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), b1,
			       PQgetvalue(res, i, 4));
		}
		first = false;
	}
	PQclear(res);
	res = PQexec(conn, "SELECT count(*), coalesce(sum(size), 0), (SELECT coalesce(sum(size), "
		     "0) FROM upload_files) FROM upload_objects");
	if (upload_query_failed(ctl, res, PGRES_TUPLES_OK) < 0) {
		PQfinish(conn);
		return EXIT_FAILED;
	}
	if (ctl->json) {
		printf("],\"objects\":%s,\"object_bytes\":%s,\"file_bytes\":%s}\n",
		       PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
	} else {
		human(strtoull(PQgetvalue(res, 0, 1), NULL, 10), b1, sizeof(b1));
		human(strtoull(PQgetvalue(res, 0, 2), NULL, 10), b2, sizeof(b2));
		printf("stored once per hash: %s objects, %s on disk for %s of uploads\n",
		       PQgetvalue(res, 0, 0), b1, b2);
	}
	PQclear(res);
	PQfinish(conn);
	return EXIT_OK;
}

/* Removes objects/<sha> from every configured storage directory. */
static unsigned unlink_object(struct ctl *ctl, const char *sha)
{
	unsigned n = 0;

	for (size_t i = 0; i < ctl->cfg->nhosts; i++) {
		char dir[1024], path[1200];

		if (host_option(ctl, &ctl->cfg->hosts[i], "http_upload", "storage", dir,
				sizeof(dir)) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/objects/%s", dir, sha);
		n += unlink(path) == 0;
	}
	return n;
}

/* .part files of uploads that never finished (a crash, a kill), a day old. */
static unsigned purge_parts(struct ctl *ctl)
{
	unsigned n = 0;
	time_t now = time(NULL);

	for (size_t i = 0; i < ctl->cfg->nhosts; i++) {
		char dir[1024], path[1400];
		DIR *d;
		struct dirent *e;

		if (host_option(ctl, &ctl->cfg->hosts[i], "http_upload", "storage", dir,
				sizeof(dir) - 8) != 0)
			continue;
		strcat(dir, "/tmp");
		if (!(d = opendir(dir)))
			continue;
		while ((e = readdir(d))) {
			struct stat st;
			size_t len = strlen(e->d_name);

			if (len < 6 || strcmp(e->d_name + len - 5, ".part") != 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			if (stat(path, &st) == 0 && st.st_mtime < now - 86400 && unlink(path) == 0)
				n++;
		}
		closedir(d);
	}
	return n;
}

static const char sql_orphans[] =
	"DELETE FROM upload_objects o WHERE created < now() - interval '1 hour' AND "
	"NOT EXISTS (SELECT 1 FROM upload_files f WHERE f.sha256 = o.sha256) RETURNING sha256";

static int cmd_upload_purge(struct ctl *ctl, int argc, char **argv)
{
	PGconn *conn;
	PGresult *res;
	char expired[24];
	unsigned unlinked = 0, parts;
	int objects;

	(void)argv;
	if (argc > 0) {
		fail_json(ctl, "usage: parleyctl upload purge");
		return EXIT_USAGE;
	}
	if (!ctl->cfg && load_config(ctl) < 0)
		return EXIT_FAILED;
	if (!(conn = db_connect(ctl)))
		return EXIT_UNREACHABLE;
	res = PQexec(conn, "DELETE FROM upload_files WHERE expires <= now()");
	if (upload_query_failed(ctl, res, PGRES_COMMAND_OK) < 0) {
		PQfinish(conn);
		return EXIT_FAILED;
	}
	snprintf(expired, sizeof(expired), "%s", PQcmdTuples(res));
	PQclear(res);
	res = PQexec(conn, sql_orphans);
	if (upload_query_failed(ctl, res, PGRES_TUPLES_OK) < 0) {
		PQfinish(conn);
		return EXIT_FAILED;
	}
	objects = PQntuples(res);
	for (int i = 0; i < objects; i++)
		unlinked += unlink_object(ctl, PQgetvalue(res, i, 0));
	PQclear(res);
	PQfinish(conn);
	parts = purge_parts(ctl);
	if (ctl->json)
		printf("{\"ok\":true,\"expired_files\":%s,\"objects\":%d,\"unlinked\":%u,"
		       "\"parts\":%u}\n", expired, objects, unlinked, parts);
	else
		printf("%s expired upload%s removed, %d object%s no upload points to (%u files "
		       "deleted), %u unfinished .part file%s\n", expired,
		       strcmp(expired, "1") ? "s" : "", objects, objects == 1 ? "" : "s",
		       unlinked, parts, parts == 1 ? "" : "s");
	return EXIT_OK;
}

static int cmd_upload_delete(struct ctl *ctl, int argc, char **argv)
{
	const char *p = argc == 1 ? strstr(argv[0], "/upload/") : NULL;
	char id[33], sha[65];
	const char *params[1] = { id }, *sparams[1] = { sha };
	PGconn *conn;
	PGresult *res;
	unsigned unlinked = 0;

	if (argc != 1) {
		fail_json(ctl, "usage: parleyctl upload delete URL");
		return EXIT_USAGE;
	}
	if (!p || strspn(p + 8, "0123456789abcdef") != 32) {
		fail_json(ctl, "not an upload URL (.../upload/ID/NAME)");
		return EXIT_USAGE;
	}
	memcpy(id, p + 8, 32);
	id[32] = '\0';
	if (!ctl->cfg && load_config(ctl) < 0)
		return EXIT_FAILED;
	if (!(conn = db_connect(ctl)))
		return EXIT_UNREACHABLE;
	res = PQexecParams(conn, "DELETE FROM upload_files WHERE id = $1 RETURNING sha256", 1,
			   NULL, params, NULL, NULL, 0);
	if (upload_query_failed(ctl, res, PGRES_TUPLES_OK) < 0) {
		PQfinish(conn);
		return EXIT_FAILED;
	}
	if (PQntuples(res) != 1) {
		PQclear(res);
		PQfinish(conn);
		fail_json(ctl, "no such upload");
		return EXIT_FAILED;
	}
	snprintf(sha, sizeof(sha), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	/* its object goes too unless another upload has the same bytes */
	res = PQexecParams(conn, "DELETE FROM upload_objects o WHERE sha256 = $1 AND NOT EXISTS "
			   "(SELECT 1 FROM upload_files f WHERE f.sha256 = o.sha256) RETURNING 1",
			   1, NULL, sparams, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		unlinked = unlink_object(ctl, sha);
	PQclear(res);
	PQfinish(conn);
	if (ctl->json)
		printf("{\"ok\":true,\"id\":\"%s\",\"object_deleted\":%s}\n", id,
		       unlinked ? "true" : "false");
	else if (unlinked)
		printf("%s deleted, and its object (no other upload had it)\n", id);
	else
		printf("%s deleted; its bytes stay for the other uploads of them\n", id);
	return EXIT_OK;
}

/* ---- modules: their option tables, read from the .so files themselves ---- */

static const char *opt_type_name(enum module_opt_type t)
{
	static const char *const names[] = { "bool", "int", "string", "duration", "size" };

	return (unsigned)t < 5 ? names[t] : "?";
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmd_modules(struct ctl *ctl, int argc, char **argv)
{
	const char *dir;
	char *names[256], path[4096];
	size_t n = 0;
	DIR *d;
	struct dirent *e;

	if (!ctl->cfg && load_config(ctl) < 0)
		return EXIT_FAILED;
	dir = ctl->cfg->module_dir ? ctl->cfg->module_dir : MODULEDIR;
	d = opendir(dir);
	if (!d) {
		snprintf(path, sizeof(path), "cannot open the module directory %s: %s", dir,
			 strerror(errno));
		fail_json(ctl, path);
		return EXIT_FAILED;
	}
	while ((e = readdir(d)) && n < 256) {
		size_t len = strlen(e->d_name);

		if (len > 7 && strncmp(e->d_name, "mod_", 4) == 0 &&
		    strcmp(e->d_name + len - 3, ".so") == 0)
			names[n++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_str);
	if (ctl->json)
		printf("{\"ok\":true,\"modules\":[");
	for (size_t i = 0; i < n; i++) {
		const struct module_def *def;
		void *h;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		/* RTLD_LAZY: the core symbols a module calls are not needed to read its
		 * table, and parleyctl does not carry the whole core. */
		h = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
		def = h ? dlsym(h, "parley_module") : NULL;
		if (!def || def->abi != PARLEY_MODULE_ABI) {
			fprintf(stderr, "parleyctl: %s: not a module of this version\n", path);
			if (h)
				dlclose(h);
			free(names[i]);
			continue;
		}
		if (ctl->json) {
			printf("%s{\"name\":", i ? "," : "");
			json_str(stdout, def->name);
			printf(",\"description\":");
			json_str(stdout, def->description ? def->description : "");
			if (def->service) {
				printf(",\"service\":");
				json_str(stdout, def->service);
			}
			printf(",\"options\":[");
		} else {
			printf("%s%s\n  %s\n", i ? "\n" : "", def->name,
			       def->description ? def->description : "");
			if (def->service)
				printf("  serves %s.HOST (domain=\"...\" to choose another)\n",
				       def->service);
		}
		for (const struct module_option *o = def->options; o && o->name; o++) {
			if (ctl->json) {
				printf("%s{\"name\":", o == def->options ? "" : ",");
				json_str(stdout, o->name);
				printf(",\"type\":\"%s\",\"default\":", opt_type_name(o->type));
				json_str(stdout, o->def ? o->def : "");
				printf(",\"doc\":");
				json_str(stdout, o->doc ? o->doc : "");
				printf("}");
			} else {
				printf("    %-22s %-8s default %-8s %s\n", o->name,
				       opt_type_name(o->type), o->def ? o->def : "\"\"",
				       o->doc ? o->doc : "");
			}
		}
		if (ctl->json)
			printf("]}");
		dlclose(h);
		free(names[i]);
	}
	if (ctl->json)
		printf("]}\n");
	return EXIT_OK;
}

static const struct command commands[] = {
	{ "status", "", "is parleyd running: version, uptime, hosts, sessions", cmd_status },
	{ "stats", "", "counters: connections, sessions, stanzas, memory", cmd_stats },
	{ "register", "USER HOST [PASSWORD]",
	  "create an account (a random password is printed when omitted)", cmd_register },
	{ "unregister", "USER HOST", "delete an account and end its sessions",
	  cmd_unregister },
	{ "passwd", "USER HOST [PASSWORD]", "set an account's password", cmd_passwd },
	{ "users", "HOST", "list the accounts of a host", cmd_users },
	{ "sessions", "[HOST]", "list the connected resources", cmd_sessions },
	{ "components", "", "list the external components (XEP-0114): connected, address, "
	  "stanzas", cmd_components },
	{ "kick", "JID [REASON]", "end the sessions of a JID (bare: all its resources)",
	  cmd_kick },
	{ "s2s close", "DOMAIN", "close every stream with a remote domain", cmd_s2s_close },
	{ "s2s", "", "list the server-to-server streams and the domains waiting for one",
	  cmd_s2s_list },
	{ "reload", "", "re-read the config (as SIGHUP does)", cmd_reload },
	{ "modules", "", "list the installed modules and their options", cmd_modules },
	{ "muc rooms", "[SERVICE]", "list the group chat rooms (mod_muc)", cmd_muc_rooms },
	{ "muc info", "ROOM", "a room's configuration, occupants and affiliations",
	  cmd_muc_info },
	{ "muc create", "ROOM [OWNER]", "create a persistent room, open at once",
	  cmd_muc_create },
	{ "muc destroy", "ROOM [REASON]", "destroy a room: occupants told, archive deleted",
	  cmd_muc_destroy },
	{ "muc occupants", "ROOM", "list who is in a room", cmd_muc_occupants },
	{ "muc affiliation", "ROOM [JID AFF]", "list a room's affiliations, or set one "
	  "(owner, admin, member, outcast, none)", cmd_muc_affiliation },
	{ "upload stats", "", "uploads per host, and the objects they share on disk",
	  cmd_upload_stats },
	{ "upload purge", "", "delete expired uploads, unshared objects and .part leftovers "
	  "now (parleyd does it hourly)", cmd_upload_purge },
	{ "upload delete", "URL", "delete an upload (its object too if no other upload has "
	  "it)", cmd_upload_delete },
	{ "offline purge", "[DAYS]", "delete stored offline messages older than DAYS "
	  "(default: each host's mod_offline retention-days)", cmd_offline_purge },
	{ "db migrate", "", "apply pending schema migrations to the database", cmd_db_migrate },
	{ "db version", "", "show the schema version of the database and of this build",
	  cmd_db_version },
	{ "version", "", "print the version of parleyctl", cmd_version },
	{ "help", "", "list the commands", cmd_help },
	{ 0 },
};

static int cmd_help(struct ctl *ctl, int argc, char **argv)
{
	printf("Usage: parleyctl [-c FILE] [--json] COMMAND [ARGS]\n\n"
	       "Options:\n"
	       "  -c, --config FILE  config file (default %s)\n"
	       "  -j, --json         print one JSON object instead of text\n\n"
	       "Commands:\n", SYSCONFDIR "/parley/parley.xml");
	for (const struct command *c = commands; c->name; c++) {
		char head[64];

		snprintf(head, sizeof(head), "%s%s%s", c->name, *c->args ? " " : "", c->args);
		printf("  %-30s %s\n", head, c->help);
	}
	printf("\nExit codes: 0 done, 1 failed, 2 bad usage, 3 daemon or database "
	       "unreachable.\nSee parleyctl(8).\n");
	return EXIT_OK;
}

/* Matches argv against the command names, one or two words long. */
static const struct command *find_command(int argc, char **argv, int *used)
{
	for (const struct command *c = commands; c->name; c++) {
		const char *space = strchr(c->name, ' ');

		if (!space && strcmp(c->name, argv[0]) == 0) {
			*used = 1;
			return c;
		}
		if (space && argc >= 2 && strncmp(c->name, argv[0], (size_t)(space - c->name))
		    == 0 && argv[0][space - c->name] == '\0' && strcmp(space + 1, argv[1]) == 0) {
			*used = 2;
			return c;
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct ctl ctl = { .config_path = SYSCONFDIR "/parley/parley.xml" };
	const struct command *cmd;
	int c, used = 0, rc;

	/* "+" stops at the first non-option: the command's own arguments follow. */
	while ((c = getopt_long(argc, argv, "+c:jh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': ctl.config_path = optarg; break;
		case 'j': ctl.json = true; break;
		case 'h': return cmd_help(&ctl, 0, NULL);
		default: return EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	/* Options may also follow the command: parleyctl db migrate -c FILE --json */
	int kept = 0;
	for (int i = 0; i < argc; i++) {
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) &&
		    i + 1 < argc) {
			ctl.config_path = argv[++i];
		} else if (strncmp(argv[i], "--config=", 9) == 0) {
			ctl.config_path = argv[i] + 9;
		} else if (strcmp(argv[i], "--json") == 0 || strcmp(argv[i], "-j") == 0) {
			ctl.json = true;
		} else {
			argv[kept++] = argv[i];
		}
	}
	argc = kept;
	if (argc == 0) {
		cmd_help(&ctl, 0, NULL);
		return EXIT_USAGE;
	}
	cmd = find_command(argc, argv, &used);
	if (!cmd) {
		char msg[256];

		snprintf(msg, sizeof(msg), "unknown command '%s' (see `parleyctl help`)",
			 argv[0]);
		fail_json(&ctl, msg);
		return EXIT_USAGE;
	}
	rc = cmd->run(&ctl, argc - used, argv + used);
	config_free(ctl.cfg);
	return rc;
}

/*
 * config.c - the XML config file, parsed into typed, validated structs.
 *
 * The file is parsed into a tree (xml_parse keeps line numbers), then walked
 * with one table per element: which attributes it takes and how each value is
 * checked and stored. Every problem is collected with its line, so an admin sees
 * all of them in one run of `parleyd --check-config`.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jid.h"
#include "xml.h"

#define CONFIG_MAX_BYTES (4u << 20)	/* a config larger than this is a mistake */

struct loader {
	const char *path;
	char *dir;			/* directory of the file, for relative paths */
	struct config *cfg;
	struct config_errors *errs;
};

void config_error(struct config_errors *errs, const char *path, unsigned line,
		  const char *fmt, ...)
{
	char msg[1024], *full, **grown;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (asprintf(&full, "%s:%u: %s", path, line, msg) < 0)
		return;
	grown = realloc(errs->msgs, (errs->count + 1) * sizeof(*grown));
	if (!grown) {
		free(full);
		return;
	}
	errs->msgs = grown;
	errs->msgs[errs->count++] = full;
}

#define problem(ld, line, ...) config_error((ld)->errs, (ld)->path, line, __VA_ARGS__)

/* ---- value parsers: each returns 0, or -1 after reporting the problem ---- */

struct value_ctx {
	struct loader *ld;
	const struct xml_node *el;
	const char *attr;
	const char *value;
};

static int parse_uint(struct value_ctx *v, unsigned long long min, unsigned long long max,
		      const char *suffixes, unsigned long long *out)
{
	const char *s = v->value;
	char *end;
	unsigned long long n, mult = 1;

	errno = 0;
	if (*s < '0' || *s > '9')
		goto bad;
	n = strtoull(s, &end, 10);
	if (errno)
		goto bad;
	if (*end && suffixes) {
		if (strchr(suffixes, 'k') && (strcmp(end, "k") == 0 || strcmp(end, "K") == 0))
			mult = 1024;
		else if (strchr(suffixes, 'k') && (strcmp(end, "m") == 0 || strcmp(end, "M") == 0))
			mult = 1024 * 1024;
		else if (strchr(suffixes, 's') && strcmp(end, "s") == 0)
			mult = 1;
		else if (strchr(suffixes, 's') && strcmp(end, "m") == 0)
			mult = 60;
		else if (strchr(suffixes, 's') && strcmp(end, "h") == 0)
			mult = 3600;
		else if (strchr(suffixes, 's') && strcmp(end, "d") == 0)
			mult = 86400;
		else
			goto bad;
	} else if (*end) {
		goto bad;
	}
	if (n > ULLONG_MAX / mult)
		goto range;
	n *= mult;
	if (n < min || n > max)
		goto range;
	*out = n;
	return 0;
bad:
	problem(v->ld, v->el->line, "<%s %s=\"%s\">: not a number%s", v->el->name, v->attr,
		v->value, suffixes && strchr(suffixes, 'k') ? " (a suffix k or M is allowed)"
		: suffixes && strchr(suffixes, 's') ? " of seconds (a suffix s, m, h or d "
		"is allowed)" : "");
	return -1;
range:
	problem(v->ld, v->el->line, "<%s %s=\"%s\">: must be between %llu and %llu",
		v->el->name, v->attr, v->value, min, max);
	return -1;
}

/* A path relative to the config file's directory becomes absolute. */
static char *resolve_path(struct loader *ld, const char *p)
{
	char *out;

	if (p[0] == '/' || !ld->dir)
		return strdup(p);
	if (asprintf(&out, "%s/%s", ld->dir, p) < 0)
		return NULL;
	return out;
}

static int set_string(struct value_ctx *v, char **dst)
{
	if (!*v->value) {
		problem(v->ld, v->el->line, "<%s %s>: must not be empty", v->el->name, v->attr);
		return -1;
	}
	free(*dst);
	*dst = strdup(v->value);
	return *dst ? 0 : -1;
}

static int set_path(struct value_ctx *v, char **dst, bool must_exist)
{
	char *p;

	if (!*v->value) {
		problem(v->ld, v->el->line, "<%s %s>: must not be empty", v->el->name, v->attr);
		return -1;
	}
	p = resolve_path(v->ld, v->value);
	if (!p)
		return -1;
	if (must_exist && access(p, R_OK) != 0) {
		problem(v->ld, v->el->line, "<%s %s=\"%s\">: cannot read %s: %s", v->el->name,
			v->attr, v->value, p, strerror(errno));
		free(p);
		return -1;
	}
	free(*dst);
	*dst = p;
	return 0;
}

/* ---- element tables ---- */

typedef int (*attr_fn)(struct value_ctx *v, void *target);

struct attr_spec {
	const char *name;
	attr_fn fn;
	bool required;
};

static int check_attrs(struct loader *ld, const struct xml_node *el,
		       const struct attr_spec *specs, void *target)
{
	int rc = 0;

	for (unsigned i = 0; i < el->nattrs; i++) {
		const struct xml_attr *a = &el->attrs[i];
		const struct attr_spec *s;

		if (a->ns)	/* xmlns:* and xml:* are not ours to judge */
			continue;
		for (s = specs; s && s->name; s++)
			if (strcmp(s->name, a->name) == 0)
				break;
		if (!s || !s->name) {
			problem(ld, el->line, "<%s>: unknown attribute \"%s\"", el->name,
				a->name);
			rc = -1;
			continue;
		}
		struct value_ctx v = { ld, el, a->name, a->value };
		if (s->fn(&v, target) < 0)
			rc = -1;
	}
	for (const struct attr_spec *s = specs; s && s->name; s++) {
		if (s->required && !xml_attr(el, s->name)) {
			problem(ld, el->line, "<%s>: the attribute \"%s\" is required", el->name,
				s->name);
			rc = -1;
		}
	}
	return rc;
}

static int no_text(struct loader *ld, const struct xml_node *el)
{
	for (const struct xml_node *c = el->children; c; c = c->next) {
		if (c->type != XML_TEXT)
			continue;
		for (size_t i = 0; i < c->text_len; i++) {
			if (!strchr(" \t\r\n", c->text[i])) {
				problem(ld, c->line ? c->line : el->line,
					"<%s>: unexpected text inside the element", el->name);
				return -1;
			}
		}
	}
	return 0;
}

/* <log level="info" file="/var/log/parley.log"/> */
static int a_log_level(struct value_ctx *v, void *t)
{
	struct config *cfg = t;
	int l = log_level_parse(v->value);

	if (l < 0) {
		problem(v->ld, v->el->line, "<log level=\"%s\">: unknown level (debug, info, "
			"notice, warn or error)", v->value);
		return -1;
	}
	cfg->log_level = (enum log_level)l;
	return 0;
}
static int a_log_file(struct value_ctx *v, void *t)
{
	struct config *cfg = t;

	return set_path(v, &cfg->log_file, false);
}
static const struct attr_spec log_attrs[] = {
	{ "level", a_log_level, false }, { "file", a_log_file, false }, { 0 },
};

/* <control socket="/run/parley/ctl.sock"/> */
static int a_ctl_socket(struct value_ctx *v, void *t)
{
	struct config *cfg = t;

	if (strlen(v->value) >= 100) {	/* sun_path is 108 bytes on Linux */
		problem(v->ld, v->el->line, "<control socket>: the path is longer than "
			"a Unix socket path may be (107 bytes)");
		return -1;
	}
	return set_path(v, &cfg->ctl_socket, false);
}
static const struct attr_spec control_attrs[] = { { "socket", a_ctl_socket, true }, { 0 } };

/* <modules dir="/usr/lib/parley/modules"/> */
static int a_module_dir(struct value_ctx *v, void *t)
{
	struct config *cfg = t;

	return set_path(v, &cfg->module_dir, true);
}
static const struct attr_spec modules_attrs[] = { { "dir", a_module_dir, true }, { 0 } };

/* <tls cert="..." key="..." ciphers="..."/> */
static int a_tls_cert(struct value_ctx *v, void *t)
{
	return set_path(v, &((struct config *)t)->cert, true);
}
static int a_tls_key(struct value_ctx *v, void *t)
{
	return set_path(v, &((struct config *)t)->key, true);
}
static int a_tls_ciphers(struct value_ctx *v, void *t)
{
	return set_string(v, &((struct config *)t)->ciphers);
}
static const struct attr_spec tls_attrs[] = {
	{ "cert", a_tls_cert, true }, { "key", a_tls_key, true },
	{ "ciphers", a_tls_ciphers, false }, { 0 },
};

/* <database conninfo="..." pool="4"/> */
static int a_db_conninfo(struct value_ctx *v, void *t)
{
	return set_string(v, &((struct config *)t)->db_conninfo);
}
static int a_db_pool(struct value_ctx *v, void *t)
{
	unsigned long long n;

	if (parse_uint(v, 1, 64, NULL, &n) < 0)
		return -1;
	((struct config *)t)->db_pool = (unsigned)n;
	return 0;
}
static const struct attr_spec database_attrs[] = {
	{ "conninfo", a_db_conninfo, true }, { "pool", a_db_pool, false }, { 0 },
};

/* <limits .../>: each a bounded number */
#define LIMIT_ATTR(fname, field, min, max, suffixes)				\
	static int a_limit_##fname(struct value_ctx *v, void *t)		\
	{									\
		unsigned long long n;						\
		if (parse_uint(v, (min), (max), (suffixes), &n) < 0)		\
			return -1;						\
		((struct config *)t)->limits.field = n;				\
		return 0;							\
	}
LIMIT_ATTR(stanza_size, stanza_size, 1024, 64u << 20, "k")
LIMIT_ATTR(depth, depth, 4, 1000, NULL)
LIMIT_ATTR(attributes, attributes, 4, 10000, NULL)
LIMIT_ATTR(conns_per_ip, connections_per_ip, 1, 1000000, NULL)
LIMIT_ATTR(idle_timeout, idle_timeout, 10, 86400 * 7, "s")
LIMIT_ATTR(auth_attempts, auth_attempts, 1, 100000, NULL)
/* Limits that became a module's own options: an old file is told where. */
static int a_limit_moved(struct value_ctx *v, void *t)
{
	(void)t;
	problem(v->ld, v->el->line, "<limits %s>: this limit is now an option of mod_offline: "
		"write <module name=\"offline\" %s=\"%s\"/> in each <host> instead",
		v->attr, v->attr, v->value);
	return -1;
}
/* <websocket .../> and <bosh .../> */
static int web_bool(struct value_ctx *v, bool *dst)
{
	if (!strcmp(v->value, "true") || !strcmp(v->value, "false")) {
		*dst = v->value[0] == 't';
		return 0;
	}
	problem(v->ld, v->el->line, "<%s %s=\"%s\">: true or false", v->el->name, v->attr,
		v->value);
	return -1;
}
static struct config_web *web_of(struct value_ctx *v, void *t)
{
	struct config *cfg = t;

	return strcmp(v->el->name, "bosh") == 0 ? &cfg->bosh : &cfg->websocket;
}
static int a_web_enabled(struct value_ctx *v, void *t)
{
	return web_bool(v, &web_of(v, t)->enabled);
}
static int a_web_path(struct value_ctx *v, void *t)
{
	struct config_web *w = web_of(v, t);

	if (v->value[0] != '/' || strlen(v->value) > 200 || strpbrk(v->value, " ?#%\\")) {
		problem(v->ld, v->el->line, "<%s path=\"%s\">: an absolute URL path such as "
			"\"/%s\"", v->el->name, v->value,
			w == &((struct config *)t)->bosh ? "http-bind" : "xmpp-websocket");
		return -1;
	}
	free(w->path);
	w->path = NULL;
	return set_string(v, &w->path);
}
static int a_web_origins(struct value_ctx *v, void *t)
{
	struct config_web *w = web_of(v, t);

	free(w->origins);
	w->origins = NULL;
	if (strcmp(v->value, "*") == 0)
		return 0;
	return set_string(v, &w->origins);
}
static int web_url(struct value_ctx *v, char **dst, const char *a, const char *b)
{
	if (strncmp(v->value, a, strlen(a)) && strncmp(v->value, b, strlen(b))) {
		problem(v->ld, v->el->line, "<%s %s=\"%s\">: a URL starting with %s or %s",
			v->el->name, v->attr, v->value, a, b);
		return -1;
	}
	if (strpbrk(v->value, " \"'<>")) {
		problem(v->ld, v->el->line, "<%s %s>: a URL has no spaces, quotes or "
			"angle brackets", v->el->name, v->attr);
		return -1;
	}
	return set_string(v, dst);
}
static int a_web_url(struct value_ctx *v, void *t)
{
	struct config_web *w = web_of(v, t);

	if (w == &((struct config *)t)->bosh)
		return web_url(v, &w->url, "http://", "https://");
	return web_url(v, &w->url, "ws://", "wss://");
}
static int a_web_see_other(struct value_ctx *v, void *t)
{
	return web_url(v, &web_of(v, t)->see_other_uri, "ws://", "wss://");
}
#define BOSH_ATTR(fname, min, max)						\
	static int a_bosh_##fname(struct value_ctx *v, void *t)		\
	{									\
		unsigned long long n;						\
		if (parse_uint(v, (min), (max), NULL, &n) < 0)			\
			return -1;						\
		((struct config *)t)->bosh.fname = (unsigned)n;			\
		return 0;							\
	}
BOSH_ATTR(max_wait, 1, 600)
BOSH_ATTR(max_hold, 1, 10)
BOSH_ATTR(max_requests, 2, 20)
BOSH_ATTR(max_inactivity, 5, 3600)
BOSH_ATTR(max_pause, 0, 3600)
BOSH_ATTR(polling, 0, 60)
static const struct attr_spec websocket_attrs[] = {
	{ "enabled", a_web_enabled, false }, { "path", a_web_path, false },
	{ "origins", a_web_origins, false }, { "url", a_web_url, false },
	{ "see-other-uri", a_web_see_other, false }, { 0 },
};
static const struct attr_spec bosh_attrs[] = {
	{ "enabled", a_web_enabled, false }, { "path", a_web_path, false },
	{ "origins", a_web_origins, false }, { "url", a_web_url, false },
	{ "max-wait", a_bosh_max_wait, false }, { "max-hold", a_bosh_max_hold, false },
	{ "max-requests", a_bosh_max_requests, false },
	{ "max-inactivity", a_bosh_max_inactivity, false },
	{ "max-pause", a_bosh_max_pause, false }, { "polling", a_bosh_polling, false },
	{ 0 },
};

bool config_origin_allowed(const struct config_web *w, const char *origin)
{
	size_t n;

	if (!w->origins)
		return true;
	if (!origin)
		return true;	/* not a browser: Origin is what browsers send */
	n = strlen(origin);
	for (const char *p = w->origins; *p;) {
		size_t k;

		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		k = strcspn(p, " \t\n");
		if (k == n && strncasecmp(p, origin, n) == 0)
			return true;
		p += k;
	}
	return false;
}

static const struct attr_spec limits_attrs[] = {
	{ "stanza-size", a_limit_stanza_size, false },
	{ "depth", a_limit_depth, false },
	{ "attributes", a_limit_attributes, false },
	{ "connections-per-ip", a_limit_conns_per_ip, false },
	{ "idle-timeout", a_limit_idle_timeout, false },
	{ "auth-attempts", a_limit_auth_attempts, false },
	{ "offline-queue", a_limit_moved, false },
	{ "retention-days", a_limit_moved, false },
	{ 0 },
};

/* <s2s .../>: federation and its policy */
static int a_s2s_bool(struct value_ctx *v, void *t)
{
	struct config_s2s *s = &((struct config *)t)->s2s;

	return web_bool(v, !strcmp(v->attr, "enabled") ? &s->enabled :
			!strcmp(v->attr, "secure-auth") ? &s->secure_auth : &s->stream_mgmt);
}
/* A space-separated list of domains, each checked and nameprep'd. */
static int domain_list(struct value_ctx *v, char **dst)
{
	char *out = calloc(1, strlen(v->value) * 4 + 2);	/* nameprep may grow it */
	size_t used = 0;
	int rc = 0;

	if (!out)
		return -1;
	for (const char *p = v->value; *p && rc == 0;) {
		char word[JID_PART_MAX + 1], prepped[JID_PART_MAX + 1];
		const char *err = NULL;
		size_t k;

		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		k = strcspn(p, " \t\n");
		if (!k)
			break;
		if (k > JID_PART_MAX || (memcpy(word, p, k), word[k] = '\0',
		    jid_nameprep(word, prepped, sizeof(prepped), &err) < 0)) {
			problem(v->ld, v->el->line, "<%s %s>: \"%.*s\" is not a domain name",
				v->el->name, v->attr, (int)(k > 200 ? 200 : k), p);
			rc = -1;
			break;
		}
		used += (size_t)sprintf(out + used, "%s%s", used ? " " : "", prepped);
		p += k;
	}
	if (rc < 0) {
		free(out);
		return -1;
	}
	free(*dst);
	*dst = out;
	return 0;
}
static int a_s2s_list(struct value_ctx *v, void *t)
{
	struct config_s2s *s = &((struct config *)t)->s2s;

	return domain_list(v, !strcmp(v->attr, "allow") ? &s->allow :
			   !strcmp(v->attr, "deny") ? &s->deny : &s->insecure_domains);
}
static int a_s2s_ca_file(struct value_ctx *v, void *t)
{
	return set_path(v, &((struct config *)t)->s2s.ca_file, true);
}
static int a_s2s_ca_path(struct value_ctx *v, void *t)
{
	return set_path(v, &((struct config *)t)->s2s.ca_path, true);
}
#define S2S_ATTR(fname, min, max, suffixes)					\
	static int a_s2s_##fname(struct value_ctx *v, void *t)			\
	{									\
		unsigned long long n;						\
		if (parse_uint(v, (min), (max), (suffixes), &n) < 0)		\
			return -1;						\
		((struct config *)t)->s2s.fname = (unsigned)n;			\
		return 0;							\
	}
S2S_ATTR(connect_timeout, 1, 600, "s")
S2S_ATTR(idle_timeout, 10, 86400 * 7, "s")
S2S_ATTR(queue, 1, 1000000, NULL)
S2S_ATTR(retry_max, 1, 86400, "s")
static const struct attr_spec s2s_attrs[] = {
	{ "enabled", a_s2s_bool, false }, { "secure-auth", a_s2s_bool, false },
	{ "stream-management", a_s2s_bool, false },
	{ "insecure-domains", a_s2s_list, false }, { "allow", a_s2s_list, false },
	{ "deny", a_s2s_list, false }, { "ca-file", a_s2s_ca_file, false },
	{ "ca-path", a_s2s_ca_path, false },
	{ "connect-timeout", a_s2s_connect_timeout, false },
	{ "idle-timeout", a_s2s_idle_timeout, false }, { "queue", a_s2s_queue, false },
	{ "retry-max", a_s2s_retry_max, false }, { 0 },
};

bool config_list_has(const char *list, const char *domain)
{
	size_t n = strlen(domain);

	for (const char *p = list; p && *p;) {
		size_t k;

		while (*p == ' ')
			p++;
		k = strcspn(p, " ");
		if (k == n && strncasecmp(p, domain, n) == 0)
			return true;
		p += k;
	}
	return false;
}

bool config_s2s_allowed(const struct config_s2s *s, const char *domain)
{
	if (!s->enabled || config_list_has(s->deny, domain))
		return false;
	return !s->allow || config_list_has(s->allow, domain);
}

/* <dns servers="127.0.0.1:5353" timeout="2000" tries="3"/> */
static int a_dns_servers(struct value_ctx *v, void *t)
{
	struct config_dns *d = &((struct config *)t)->dns;

	/* c-ares parses the list itself at start (dns_init reports its verdict);
	 * here only what cannot be a list of addresses. */
	if (!*v->value || strlen(v->value) > 1000 ||
	    strspn(v->value, "0123456789abcdefABCDEF.:[], ") != strlen(v->value)) {
		problem(v->ld, v->el->line, "<dns servers=\"%.200s\">: a comma-separated list "
			"of addresses, each with an optional port: \"127.0.0.1:5353,[::1]:53\"",
			v->value);
		return -1;
	}
	free(d->servers);
	d->servers = NULL;
	return set_string(v, &d->servers);
}
static int a_dns_timeout(struct value_ctx *v, void *t)
{
	unsigned long long n;

	if (parse_uint(v, 100, 60000, NULL, &n) < 0)
		return -1;
	((struct config *)t)->dns.timeout_ms = (unsigned)n;
	return 0;
}
static int a_dns_tries(struct value_ctx *v, void *t)
{
	unsigned long long n;

	if (parse_uint(v, 1, 10, NULL, &n) < 0)
		return -1;
	((struct config *)t)->dns.tries = (unsigned)n;
	return 0;
}
static const struct attr_spec dns_attrs[] = {
	{ "servers", a_dns_servers, false }, { "timeout", a_dns_timeout, false },
	{ "tries", a_dns_tries, false }, { 0 },
};

/* <component domain="bot.example.com" secret="..."/> */
static int a_component_domain(struct value_ctx *v, void *t)
{
	struct config_component *c = t;
	char prepped[JID_PART_MAX + 1];
	const char *err = NULL;

	if (jid_nameprep(v->value, prepped, sizeof(prepped), &err) < 0) {
		problem(v->ld, v->el->line, "<component domain=\"%s\">: %s", v->value,
			err ? err : "not a valid domain name");
		return -1;
	}
	free(c->domain);
	c->domain = strdup(prepped);
	return c->domain ? 0 : -1;
}
static int a_component_secret(struct value_ctx *v, void *t)
{
	if (!*v->value) {
		problem(v->ld, v->el->line, "<component secret>: must not be empty");
		return -1;
	}
	return set_string(v, &((struct config_component *)t)->secret);
}
static const struct attr_spec component_attrs[] = {
	{ "domain", a_component_domain, true }, { "secret", a_component_secret, true },
	{ 0 },
};

/* <listen type="c2s" address="::" port="5222" tls="starttls"/> */
static const char *const listener_names[] = {
	[LISTEN_C2S] = "c2s", [LISTEN_S2S] = "s2s", [LISTEN_HTTP] = "http",
	[LISTEN_COMPONENT] = "component",
};
static const char *const tls_names[] = {
	[TLS_NONE] = "none", [TLS_STARTTLS] = "starttls", [TLS_OPTIONAL] = "optional",
	[TLS_DIRECT] = "direct",
};

static int a_listen_type(struct value_ctx *v, void *t)
{
	struct config_listener *l = t;

	for (unsigned i = 0; i < sizeof(listener_names) / sizeof(*listener_names); i++) {
		if (strcmp(v->value, listener_names[i]) == 0) {
			l->type = (enum listener_type)i;
			return 0;
		}
	}
	problem(v->ld, v->el->line, "<listen type=\"%s\">: unknown type (c2s, s2s, http or "
		"component)", v->value);
	return -1;
}
static int a_listen_address(struct value_ctx *v, void *t)
{
	struct config_listener *l = t;
	unsigned char buf[16];

	if (inet_pton(AF_INET, v->value, buf) != 1 && inet_pton(AF_INET6, v->value, buf) != 1) {
		problem(v->ld, v->el->line, "<listen address=\"%s\">: not an IPv4 or IPv6 "
			"address", v->value);
		return -1;
	}
	return set_string(v, &l->address);
}
static int a_listen_port(struct value_ctx *v, void *t)
{
	unsigned long long n;

	if (parse_uint(v, 1, 65535, NULL, &n) < 0)
		return -1;
	((struct config_listener *)t)->port = (unsigned)n;
	return 0;
}
static int a_listen_tls(struct value_ctx *v, void *t)
{
	struct config_listener *l = t;

	for (unsigned i = 0; i < sizeof(tls_names) / sizeof(*tls_names); i++) {
		if (strcmp(v->value, tls_names[i]) == 0) {
			l->tls = (enum tls_mode)i;
			return 0;
		}
	}
	problem(v->ld, v->el->line, "<listen tls=\"%s\">: unknown mode (none, starttls, "
		"optional or direct)", v->value);
	return -1;
}
/* The secret moved to each <component>: an old file is told where. */
static int a_listen_secret(struct value_ctx *v, void *t)
{
	(void)t;
	problem(v->ld, v->el->line, "<listen secret>: each component has its own secret now: "
		"write <component domain=\"...\" secret=\"...\"/> instead");
	return -1;
}
static int a_listen_admin(struct value_ctx *v, void *t)
{
	struct config_listener *l = t;

	if (!strcmp(v->value, "true") || !strcmp(v->value, "false")) {
		l->admin = v->value[0] == 't';
		return 0;
	}
	problem(v->ld, v->el->line, "<listen admin=\"%s\">: true or false", v->value);
	return -1;
}
static const struct attr_spec listen_attrs[] = {
	{ "type", a_listen_type, true }, { "address", a_listen_address, false },
	{ "port", a_listen_port, true }, { "tls", a_listen_tls, false },
	{ "secret", a_listen_secret, false }, { "admin", a_listen_admin, false }, { 0 },
};

/* <host name="example.com" cert="..." key="..."> <module .../> </host> */
static int a_host_name(struct value_ctx *v, void *t)
{
	struct config_host *h = t;
	char prepped[JID_PART_MAX + 1];
	const char *err = NULL;

	if (jid_nameprep(v->value, prepped, sizeof(prepped), &err) < 0) {
		problem(v->ld, v->el->line, "<host name=\"%s\">: %s", v->value,
			err ? err : "not a valid domain name");
		return -1;
	}
	free(h->name);
	h->name = strdup(prepped);
	return h->name ? 0 : -1;
}
static int a_host_cert(struct value_ctx *v, void *t)
{
	return set_path(v, &((struct config_host *)t)->cert, true);
}
static int a_host_key(struct value_ctx *v, void *t)
{
	return set_path(v, &((struct config_host *)t)->key, true);
}
static const struct attr_spec host_attrs[] = {
	{ "name", a_host_name, true }, { "cert", a_host_cert, false },
	{ "key", a_host_key, false }, { 0 },
};

/* ---- structure ---- */

static int load_module(struct loader *ld, struct config_host *h, const struct xml_node *el)
{
	struct config_module *m, *grown;
	const char *name = xml_attr(el, "name");
	int rc = no_text(ld, el);

	if (xml_child(el, NULL, NULL)) {
		problem(ld, el->line, "<module>: takes no child elements; options are "
			"attributes, e.g. <module name=\"offline\" max-queue=\"1000\"/>");
		rc = -1;
	}
	if (!name || !*name) {
		problem(ld, el->line, "<module>: the attribute \"name\" is required");
		return -1;
	}
	for (size_t i = 0; i < h->nmodules; i++) {
		if (strcmp(h->modules[i].name, name) == 0) {
			problem(ld, el->line, "<module name=\"%s\">: enabled twice for host %s "
				"(first at line %u)", name, h->name ? h->name : "?",
				h->modules[i].line);
			return -1;
		}
	}
	grown = realloc(h->modules, (h->nmodules + 1) * sizeof(*grown));
	if (!grown)
		return -1;
	h->modules = grown;
	m = &h->modules[h->nmodules++];
	memset(m, 0, sizeof(*m));
	m->name = strdup(name);
	m->line = el->line;
	for (unsigned i = 0; i < el->nattrs; i++) {
		const struct xml_attr *a = &el->attrs[i];

		if (a->ns || strcmp(a->name, "name") == 0)
			continue;
		struct config_option *o = realloc(m->options, (m->noptions + 1) * sizeof(*o));
		if (!o)
			return -1;
		m->options = o;
		o[m->noptions].name = strdup(a->name);
		o[m->noptions].value = strdup(a->value);
		o[m->noptions].line = el->line;
		m->noptions++;
	}
	return rc;
}

static int load_host(struct loader *ld, const struct xml_node *el)
{
	struct config *cfg = ld->cfg;
	struct config_host *h, *grown;
	const struct xml_node *c;
	int rc = 0;

	grown = realloc(cfg->hosts, (cfg->nhosts + 1) * sizeof(*grown));
	if (!grown)
		return -1;
	cfg->hosts = grown;
	h = &cfg->hosts[cfg->nhosts++];
	memset(h, 0, sizeof(*h));
	h->line = el->line;
	if (check_attrs(ld, el, host_attrs, h) < 0)
		rc = -1;
	if (no_text(ld, el) < 0)
		rc = -1;
	if (!xml_attr(el, "cert") != !xml_attr(el, "key")) {
		problem(ld, el->line, "<host>: cert and key go together");
		rc = -1;
	}
	xml_foreach(c, el, NULL, NULL) {
		if (strcmp(c->name, "module") == 0) {
			if (load_module(ld, h, c) < 0)
				rc = -1;
		} else {
			problem(ld, c->line, "<host>: unknown element <%s> (expected <module>)",
				c->name);
			rc = -1;
		}
	}
	if (h->name) {
		for (size_t i = 0; i + 1 < cfg->nhosts; i++) {
			if (cfg->hosts[i].name && strcmp(cfg->hosts[i].name, h->name) == 0) {
				problem(ld, el->line, "<host name=\"%s\">: the host is already "
					"defined at line %u", h->name, cfg->hosts[i].line);
				rc = -1;
			}
		}
	}
	return rc;
}

static int load_component(struct loader *ld, const struct xml_node *el)
{
	struct config *cfg = ld->cfg;
	struct config_component *c, *grown;
	int rc = 0;

	grown = realloc(cfg->components, (cfg->ncomponents + 1) * sizeof(*grown));
	if (!grown)
		return -1;
	cfg->components = grown;
	c = &cfg->components[cfg->ncomponents++];
	memset(c, 0, sizeof(*c));
	c->line = el->line;
	if (check_attrs(ld, el, component_attrs, c) < 0 || no_text(ld, el) < 0)
		rc = -1;
	if (xml_child(el, NULL, NULL)) {
		problem(ld, el->line, "<component>: takes no child elements");
		rc = -1;
	}
	for (size_t i = 0; c->domain && i + 1 < cfg->ncomponents; i++) {
		if (cfg->components[i].domain && !strcmp(cfg->components[i].domain, c->domain)) {
			problem(ld, el->line, "<component domain=\"%s\">: already defined at "
				"line %u", c->domain, cfg->components[i].line);
			rc = -1;
		}
	}
	return rc;
}

const struct config_component *config_component_find(const struct config *cfg,
						     const char *domain)
{
	for (size_t i = 0; i < cfg->ncomponents; i++)
		if (cfg->components[i].domain && !strcmp(cfg->components[i].domain, domain))
			return &cfg->components[i];
	return NULL;
}

static int load_listener(struct loader *ld, const struct xml_node *el)
{
	struct config *cfg = ld->cfg;
	struct config_listener *l, *grown;
	int rc = 0;

	grown = realloc(cfg->listeners, (cfg->nlisteners + 1) * sizeof(*grown));
	if (!grown)
		return -1;
	cfg->listeners = grown;
	l = &cfg->listeners[cfg->nlisteners++];
	memset(l, 0, sizeof(*l));
	l->line = el->line;
	l->tls = (enum tls_mode)-1;
	if (check_attrs(ld, el, listen_attrs, l) < 0 || no_text(ld, el) < 0)
		rc = -1;
	if (xml_child(el, NULL, NULL)) {
		problem(ld, el->line, "<listen>: takes no child elements");
		rc = -1;
	}
	if (!l->address)
		l->address = strdup("::");
	if (l->tls == (enum tls_mode)-1) {
		switch (l->type) {
		case LISTEN_C2S: case LISTEN_S2S:
			l->tls = TLS_STARTTLS;
			break;
		default:
			l->tls = TLS_NONE;
		}
	}
	if (rc < 0)
		return rc;
	if (l->type != LISTEN_HTTP && l->admin) {
		problem(ld, el->line, "<listen>: \"admin\" is only for type=\"http\"");
		rc = -1;
	}
	if ((l->type == LISTEN_HTTP || l->type == LISTEN_COMPONENT) &&
	    (l->tls == TLS_STARTTLS || l->tls == TLS_OPTIONAL)) {
		problem(ld, el->line, "<listen type=\"%s\">: tls must be \"none\" or \"direct\"",
			listener_names[l->type]);
		rc = -1;
	}
	for (size_t i = 0; i + 1 < cfg->nlisteners; i++) {
		const struct config_listener *o = &cfg->listeners[i];

		if (o->port == l->port && o->address && strcmp(o->address, l->address) == 0) {
			problem(ld, el->line, "<listen>: %s port %u is already used at line %u",
				l->address, l->port, o->line);
			rc = -1;
		}
	}
	return rc;
}

struct section {
	const char *name;
	const struct attr_spec *attrs;
};
static const struct section sections[] = {
	{ "log", log_attrs }, { "control", control_attrs }, { "modules", modules_attrs },
	{ "tls", tls_attrs }, { "database", database_attrs }, { "limits", limits_attrs },
	{ "websocket", websocket_attrs }, { "bosh", bosh_attrs }, { "s2s", s2s_attrs },
	{ "dns", dns_attrs },
};

static void config_defaults(struct config *cfg)
{
	cfg->log_level = LOG_INFO;
	cfg->db_pool = 4;
	cfg->limits = (struct config_limits){
		.stanza_size = 256 * 1024,
		.depth = 64,
		.attributes = 64,
		.connections_per_ip = 64,
		.idle_timeout = 300,
		.auth_attempts = 10,
	};
	cfg->websocket = (struct config_web){ .enabled = true };
	cfg->bosh = (struct config_web){
		.enabled = true,
		.max_wait = 60,
		.max_hold = 1,
		.max_requests = 2,
		.max_inactivity = 60,
		.max_pause = 120,
		.polling = 2,
	};
	cfg->s2s = (struct config_s2s){
		.enabled = true,
		.secure_auth = true,
		.stream_mgmt = true,
		.connect_timeout = 30,
		.idle_timeout = 600,
		.queue = 1000,
		.retry_max = 300,
	};
	cfg->dns = (struct config_dns){ .timeout_ms = 2000, .tries = 3 };
}

static char *read_file(struct loader *ld, size_t *lenp)
{
	int fd = open(ld->path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf = NULL;
	size_t got = 0;

	if (fd < 0) {
		problem(ld, 0, "cannot open: %s", strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > CONFIG_MAX_BYTES) {
		problem(ld, 0, "not a regular file of at most %u bytes", CONFIG_MAX_BYTES);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		goto out;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			problem(ld, 0, "cannot read: %s", n < 0 ? strerror(errno) : "short read");
			free(buf);
			buf = NULL;
			goto out;
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	*lenp = got;
out:
	close(fd);
	return buf;
}

struct config *config_load(const char *path, struct config_errors *errs)
{
	struct loader ld = { .path = path, .errs = errs };
	struct xml_node *root = NULL, *el;
	unsigned seen_line[sizeof(sections) / sizeof(*sections)] = { 0 };
	char err[256];
	char *data, *slash;
	size_t len = 0;

	memset(errs, 0, sizeof(*errs));
	ld.cfg = calloc(1, sizeof(*ld.cfg));
	if (!ld.cfg)
		return NULL;
	config_defaults(ld.cfg);
	ld.cfg->path = strdup(path);
	ld.dir = strdup(path);
	slash = ld.dir ? strrchr(ld.dir, '/') : NULL;
	if (slash)
		*slash = '\0';
	else if (ld.dir) {
		free(ld.dir);
		ld.dir = NULL;		/* relative to the current directory */
	}

	data = read_file(&ld, &len);
	if (!data)
		goto fail;
	root = xml_parse(data, len, err, sizeof(err));
	free(data);
	if (!root) {
		/* err is "LINE: message" */
		char *colon = strchr(err, ':');
		unsigned line = (unsigned)strtoul(err, NULL, 10);

		problem(&ld, line, "%s", colon ? colon + 2 : err);
		goto fail;
	}
	if (strcmp(root->name, "parley") != 0) {
		problem(&ld, root->line, "the root element must be <parley>, not <%s>",
			root->name);
		goto fail;
	}
	check_attrs(&ld, root, NULL, NULL);
	no_text(&ld, root);
	xml_foreach(el, root, NULL, NULL) {
		size_t i;

		if (strcmp(el->name, "host") == 0) {
			load_host(&ld, el);
			continue;
		}
		if (strcmp(el->name, "listen") == 0) {
			load_listener(&ld, el);
			continue;
		}
		if (strcmp(el->name, "component") == 0) {
			load_component(&ld, el);
			continue;
		}
		for (i = 0; i < sizeof(sections) / sizeof(*sections); i++)
			if (strcmp(el->name, sections[i].name) == 0)
				break;
		if (i == sizeof(sections) / sizeof(*sections)) {
			problem(&ld, el->line, "unknown element <%s> (expected host, listen, "
				"component, log, control, modules, tls, database, limits, "
				"websocket, bosh, s2s or dns)", el->name);
			continue;
		}
		if (seen_line[i]) {
			problem(&ld, el->line, "<%s> appears twice (first at line %u)", el->name,
				seen_line[i]);
			continue;
		}
		seen_line[i] = el->line;
		if (strcmp(el->name, "s2s") == 0)
			ld.cfg->s2s.line = el->line;
		if (strcmp(el->name, "dns") == 0)
			ld.cfg->dns.line = el->line;
		check_attrs(&ld, el, sections[i].attrs, ld.cfg);
		no_text(&ld, el);
		if (xml_child(el, NULL, NULL))
			problem(&ld, el->line, "<%s>: takes no child elements", el->name);
	}
	if (ld.cfg->nhosts == 0)
		problem(&ld, root->line, "no <host> is defined: Parley needs at least one "
			"virtual host, e.g. <host name=\"example.com\"/>");
	if (!ld.cfg->db_conninfo)
		problem(&ld, root->line, "no <database conninfo=\"...\"/>: Parley keeps its "
			"state in PostgreSQL");
	for (size_t i = 0; i < ld.cfg->nlisteners; i++) {
		const struct config_listener *l = &ld.cfg->listeners[i];

		if (l->tls == TLS_NONE || ld.cfg->cert)
			continue;
		bool all_hosts_have_certs = ld.cfg->nhosts > 0;
		for (size_t h = 0; h < ld.cfg->nhosts; h++)
			if (!ld.cfg->hosts[h].cert)
				all_hosts_have_certs = false;
		if (!all_hosts_have_certs)
			problem(&ld, l->line, "<listen tls=\"%s\">: TLS needs a certificate: add "
				"<tls cert=\"...\" key=\"...\"/> or cert/key on every <host>",
				tls_names[l->tls]);
	}
	if (!ld.cfg->websocket.path)
		ld.cfg->websocket.path = strdup("/xmpp-websocket");
	if (!ld.cfg->bosh.path)
		ld.cfg->bosh.path = strdup("/http-bind");
	if (!ld.cfg->websocket.path || !ld.cfg->bosh.path)
		goto fail;
	if (strcmp(ld.cfg->websocket.path, ld.cfg->bosh.path) == 0)
		problem(&ld, 0, "<websocket> and <bosh> have the same path %s",
			ld.cfg->bosh.path);
	for (size_t i = 0; i < ld.cfg->ncomponents; i++) {
		const struct config_component *c = &ld.cfg->components[i];

		if (c->domain && config_host_find(ld.cfg, c->domain))
			problem(&ld, c->line, "<component domain=\"%s\">: that domain is a "
				"<host>", c->domain);
	}
	if (errs->count)
		goto fail;
	xml_unref(root);
	free(ld.dir);
	return ld.cfg;
fail:
	if (!errs->count)
		problem(&ld, 0, "out of memory");
	xml_unref(root);
	free(ld.dir);
	config_free(ld.cfg);
	return NULL;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->nhosts; i++) {
		struct config_host *h = &cfg->hosts[i];

		for (size_t m = 0; m < h->nmodules; m++) {
			for (size_t o = 0; o < h->modules[m].noptions; o++) {
				free(h->modules[m].options[o].name);
				free(h->modules[m].options[o].value);
			}
			free(h->modules[m].options);
			free(h->modules[m].name);
		}
		free(h->modules);
		free(h->name);
		free(h->cert);
		free(h->key);
	}
	free(cfg->hosts);
	for (size_t i = 0; i < cfg->nlisteners; i++)
		free(cfg->listeners[i].address);
	for (size_t i = 0; i < cfg->ncomponents; i++) {
		free(cfg->components[i].domain);
		free(cfg->components[i].secret);
	}
	free(cfg->components);
	free(cfg->s2s.insecure_domains);
	free(cfg->s2s.allow);
	free(cfg->s2s.deny);
	free(cfg->s2s.ca_file);
	free(cfg->s2s.ca_path);
	free(cfg->dns.servers);
	free(cfg->listeners);
	free(cfg->path);
	free(cfg->log_file);
	free(cfg->ctl_socket);
	free(cfg->module_dir);
	free(cfg->cert);
	free(cfg->key);
	free(cfg->ciphers);
	for (int i = 0; i < 2; i++) {
		struct config_web *w = i ? &cfg->bosh : &cfg->websocket;

		free(w->path);
		free(w->origins);
		free(w->url);
		free(w->see_other_uri);
	}
	free(cfg->db_conninfo);
	free(cfg);
}

void config_errors_free(struct config_errors *errs)
{
	for (size_t i = 0; i < errs->count; i++)
		free(errs->msgs[i]);
	free(errs->msgs);
	errs->msgs = NULL;
	errs->count = 0;
}

const struct config_host *config_host_find(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nhosts; i++)
		if (strcmp(cfg->hosts[i].name, name) == 0)
			return &cfg->hosts[i];
	return NULL;
}

const char *config_listener_type_name(enum listener_type t)
{
	return (unsigned)t < sizeof(listener_names) / sizeof(*listener_names)
		? listener_names[t] : "?";
}

const char *config_tls_mode_name(enum tls_mode m)
{
	return (unsigned)m < sizeof(tls_names) / sizeof(*tls_names) ? tls_names[m] : "?";
}

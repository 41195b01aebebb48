/*
 * module.c - loading modules, resolving their options, and their timers.
 *
 * A module's shared object is opened once (dlopen) and instantiated per host.
 * Its option table is walked once per instance before load() runs: each value
 * (the config's or the default) is parsed, checked against the bounds and
 * stored in the module's own options struct, so a bad option stops start-up
 * with the config line like any other config error, and the module reads
 * typed fields instead of looking options up by name on every stanza (the way
 * nginx walks ngx_command_t into a module's conf struct).
 */
#include "vhost.h"

#include <dlfcn.h>
#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctl.h"
#include "http_admin.h"
#include "log.h"
#include "server.h"

#define MODULE_DEPTH_MAX 16	/* dependency chains longer than this are a loop */
#define BUILTINS_MAX 16

struct so {
	char *name;
	void *handle;			/* NULL for a builtin */
	const struct module_def *def;
};

static struct {
	struct so *sos;
	size_t nsos;
	const struct module_def *builtins[BUILTINS_MAX];
	size_t nbuiltins;
} lib;

struct module_timer {
	struct module *m;
	struct event *ev;
	timer_fn fn;
	void *arg;
	bool repeat;
	struct module_timer *prev, *next;	/* the instance's timers */
};

/* ---- shared objects ---- */

void module_add_builtin(const struct module_def *def)
{
	if (lib.nbuiltins < BUILTINS_MAX)
		lib.builtins[lib.nbuiltins++] = def;
}

static const struct module_def *so_remember(const char *name, void *h,
					    const struct module_def *def)
{
	struct so *grown = realloc(lib.sos, (lib.nsos + 1) * sizeof(*grown));
	char *n = strdup(name);

	if (!grown || !n) {
		free(n);
		if (grown)
			lib.sos = grown;
		return NULL;
	}
	lib.sos = grown;
	lib.sos[lib.nsos++] = (struct so){ n, h, def };
	return def;
}

static const struct module_def *so_open(const char *name, const char *dir, const char *cpath,
					unsigned line, struct config_errors *errs)
{
	const struct module_def *def;
	char path[PATH_MAX];
	void *h;

	for (size_t i = 0; i < lib.nsos; i++)
		if (strcmp(lib.sos[i].name, name) == 0)
			return lib.sos[i].def;
	for (size_t i = 0; i < lib.nbuiltins; i++)
		if (strcmp(lib.builtins[i]->name, name) == 0)
			return so_remember(name, NULL, lib.builtins[i]);
	for (const char *c = name; *c; c++) {
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_')) {
			config_error(errs, cpath, line, "<module name=\"%s\">: a module name is "
				     "lower-case letters, digits and _", name);
			return NULL;
		}
	}
	snprintf(path, sizeof(path), "%s/mod_%s.so", dir, name);
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		config_error(errs, cpath, line, "<module name=\"%s\">: cannot load %s: %s", name,
			     path, dlerror());
		return NULL;
	}
	def = dlsym(h, "parley_module");
	if (!def)
		config_error(errs, cpath, line, "<module name=\"%s\">: %s is not a Parley module "
			     "(no parley_module symbol)", name, path);
	else if (def->abi != PARLEY_MODULE_ABI)
		config_error(errs, cpath, line, "<module name=\"%s\">: %s was built for module "
			     "ABI %u, this parleyd has ABI %u: rebuild the module", name, path,
			     def->abi, PARLEY_MODULE_ABI);
	else if (!def->name || strcmp(def->name, name) != 0)
		config_error(errs, cpath, line, "<module name=\"%s\">: %s declares itself as "
			     "\"%s\"", name, path, def->name ? def->name : "");
	else if (so_remember(name, h, def))
		return def;
	dlclose(h);
	return NULL;
}

void modules_close(void)
{
	for (size_t i = 0; i < lib.nsos; i++) {
		if (lib.sos[i].handle)
			dlclose(lib.sos[i].handle);
		free(lib.sos[i].name);
	}
	free(lib.sos);
	lib.sos = NULL;
	lib.nsos = 0;
}

/* ---- options ---- */

static int parse_number(const struct module_option *o, const char *s, long long *out,
			char *why, size_t whylen)
{
	char *end;
	long long n, mult = 1;

	errno = 0;
	if ((*s < '0' || *s > '9') && *s != '-')
		goto nan;
	n = strtoll(s, &end, 10);
	if (errno)
		goto nan;
	if (*end && o->type == OPT_DURATION)
		mult = !strcmp(end, "s") ? 1 : !strcmp(end, "m") ? 60 : !strcmp(end, "h")
			? 3600 : !strcmp(end, "d") ? 86400 : 0;
	else if (*end && o->type == OPT_SIZE)
		mult = !strcasecmp(end, "k") ? 1024 : !strcasecmp(end, "m") ? 1 << 20
			: !strcasecmp(end, "g") ? 1 << 30 : 0;
	else if (*end)
		mult = 0;
	if (!mult)
		goto nan;
	if (n > LLONG_MAX / mult || n < LLONG_MIN / mult)
		goto range;
	n *= mult;
	if (n < o->min || n > o->max)
		goto range;
	*out = n;
	return 0;
nan:
	snprintf(why, whylen, "not a%s number%s", o->type == OPT_INT ? "n integer" : "",
		 o->type == OPT_DURATION ? " of seconds (suffix s, m, h or d allowed)" :
		 o->type == OPT_SIZE ? " of bytes (suffix k, M or G allowed)" : "");
	return -1;
range:
	snprintf(why, whylen, "must be between %lld and %lld", o->min, o->max);
	return -1;
}

/* Parses s into the option's field of m->options. */
static int set_value(struct module *m, const struct module_option *o, const char *s,
		     char *why, size_t whylen)
{
	char *field = (char *)m->options + o->offset;
	char **grown;
	long long n;

	switch (o->type) {
	case OPT_BOOL:
		if (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcmp(s, "1") ||
		    !strcasecmp(s, "on"))
			*(bool *)field = true;
		else if (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcmp(s, "0") ||
			 !strcasecmp(s, "off"))
			*(bool *)field = false;
		else {
			snprintf(why, whylen, "not a boolean (true or false)");
			return -1;
		}
		return 0;
	case OPT_STRING:
		grown = realloc(m->strings, (m->nstrings + 1) * sizeof(*grown));
		if (grown)
			m->strings = grown;
		if (!grown || !(m->strings[m->nstrings] = strdup(s))) {
			snprintf(why, whylen, "out of memory");
			return -1;
		}
		*(const char **)field = m->strings[m->nstrings++];
		return 0;
	case OPT_INT:
	case OPT_DURATION:
	case OPT_SIZE:
		if (parse_number(o, s, &n, why, whylen) < 0)
			return -1;
		*(long long *)field = n;
		return 0;
	}
	snprintf(why, whylen, "an option of unknown type");
	return -1;
}

/* The field must lie inside the struct the module declared. */
static bool option_fits(const struct module_def *def, const struct module_option *o)
{
	size_t size = o->type == OPT_BOOL ? sizeof(bool) : o->type == OPT_STRING ?
		sizeof(const char *) : sizeof(long long);

	return o->offset <= def->options_size && size <= def->options_size - o->offset &&
	       o->offset % size == 0;	/* each field type is aligned to its size here */
}

static int set_options(struct module *m, const struct config_module *cm, const char *cpath,
		       struct config_errors *errs)
{
	const struct module_def *def = m->def;
	const struct module_option *o;
	int rc = 0;
	char why[256];

	m->options = calloc(1, def->options_size ? def->options_size : 1);
	if (!m->options)
		return -1;
	for (size_t i = 0; cm && i < cm->noptions; i++) {
		if (def->service && strcmp(cm->options[i].name, "domain") == 0)
			continue;
		for (o = def->options; o && o->name; o++)
			if (strcmp(o->name, cm->options[i].name) == 0)
				break;
		if (!o || !o->name) {
			config_error(errs, cpath, cm->options[i].line, "<module name=\"%s\">: "
				     "unknown option \"%s\" (see `parleyctl modules`)", cm->name,
				     cm->options[i].name);
			rc = -1;
		}
	}
	for (o = def->options; o && o->name; o++) {
		const struct config_option *given = NULL;
		const char *val;

		if (!option_fits(def, o)) {
			log_error("modules", "mod_%s: option %s lies outside its options struct "
				  "(options_size %zu)", def->name, o->name, def->options_size);
			rc = -1;
			continue;
		}
		for (size_t j = 0; cm && j < cm->noptions; j++)
			if (strcmp(o->name, cm->options[j].name) == 0)
				given = &cm->options[j];
		val = given ? given->value : o->def ? o->def : "";
		if (set_value(m, o, val, why, sizeof(why)) < 0) {
			if (given)
				config_error(errs, cpath, given->line, "<module name=\"%s\" %s=\"%s\">:"
					     " %s", cm->name, o->name, val, why);
			else
				log_error("modules", "mod_%s: the default of %s (\"%s\") is "
					  "invalid: %s", def->name, o->name, val, why);
			rc = -1;
		}
	}
	return rc;
}

/* ---- instances ---- */

const char *module_host(const struct module *m) { return m->host->name; }
const char *module_domain(const struct module *m) { return m->vh->name; }
const char *module_name(const struct module *m) { return m->def->name; }
const void *module_options(const struct module *m)
{
	return m->def->options_size ? m->options : NULL;
}
void *module_data(const struct module *m) { return m->data; }
struct db *module_db(const struct module *m)
{
	(void)m;
	return server.db;
}
long long module_started(void) { return (long long)server.started; }

void module_set_data(struct module *m, void *data, void (*free_fn)(void *))
{
	m->data = data;
	m->free_data = free_fn;
}

static struct module *host_module(const struct vhost *vh, const char *name)
{
	for (size_t i = 0; i < vh->nmods; i++)
		if (strcmp(vh->mods[i]->def->name, name) == 0)
			return vh->mods[i];
	return NULL;
}

static const struct config_module *host_config(const struct vhost *vh, const char *name)
{
	for (size_t i = 0; i < vh->cfg->nmodules; i++)
		if (strcmp(vh->cfg->modules[i].name, name) == 0)
			return &vh->cfg->modules[i];
	return NULL;
}

/* A service module's domain: domain="..." of its <module>, or LABEL.HOST. */
static int serve_domain(struct module *m, const struct config_module *cm, unsigned line,
			const char *cpath, struct config_errors *errs)
{
	char *domain = NULL;
	const char *given = NULL;
	int rc;

	for (size_t i = 0; cm && i < cm->noptions; i++)
		if (strcmp(cm->options[i].name, "domain") == 0) {
			given = cm->options[i].value;
			line = cm->options[i].line;
		}
	if (given) {
		char prepped[JID_PART_MAX + 1];
		const char *err = NULL;

		if (jid_nameprep(given, prepped, sizeof(prepped), &err) < 0) {
			config_error(errs, cpath, line, "<module name=\"%s\" domain=\"%s\">: %s",
				     m->def->name, given, err ? err : "not a domain name");
			return -1;
		}
		domain = strdup(prepped);
	} else if (asprintf(&domain, "%s.%s", m->def->service, m->host->name) < 0) {
		domain = NULL;
	}
	if (!domain)
		return -1;
	rc = service_add(m, domain, cpath, line, errs);
	free(domain);
	return rc;
}

static int instantiate(struct vhost *vh, const char *name, const struct config_module *cm,
		       unsigned line, bool check_only, int depth, struct config_errors *errs,
		       const struct config *cfg)
{
	const char *dir = cfg->module_dir ? cfg->module_dir : MODULEDIR, *cpath = cfg->path;
	const struct module_def *def;
	struct module *m, **grown;
	bool refused;

	if (host_module(vh, name))
		return 0;
	if (depth > MODULE_DEPTH_MAX) {
		config_error(errs, cpath, line, "<module name=\"%s\">: the dependencies form a "
			     "loop", name);
		return -1;
	}
	def = so_open(name, dir, cpath, line, errs);
	if (!def)
		return -1;
	/* Dependencies first, with their defaults unless the host configures them. */
	for (const char *const *d = def->depends; d && *d; d++) {
		const struct config_module *dcm = host_config(vh, *d);

		if (instantiate(vh, *d, dcm, dcm ? dcm->line : line, check_only, depth + 1,
				errs, cfg) < 0)
			return -1;
	}
	m = calloc(1, sizeof(*m));
	grown = m ? realloc(vh->mods, (vh->nmods + 1) * sizeof(*grown)) : NULL;
	if (!grown) {
		free(m);
		return -1;
	}
	vh->mods = grown;
	vh->mods[vh->nmods++] = m;
	m->def = def;
	m->host = m->vh = vh;
	if (set_options(m, cm, cpath, errs) < 0)
		return -1;
	if (def->service && serve_domain(m, cm, line, cpath, errs) < 0)
		return -1;
	if (check_only)
		return 0;
	refused = def->load && def->load(m) < 0;
	if (!refused && !m->reg_failed && def->service && !disco_has_identity(m->vh)) {
		log_error("modules", "%s: mod_%s serves %s but declared no identity "
			  "(XEP-0030 requires one: module_identity)", vh->name, name, m->vh->name);
		m->reg_failed = true;
	}
	if (refused || m->reg_failed) {
		m->loaded = !refused;	/* its load() ran to the end: unload() undoes it */
		config_error(errs, cpath, line, "<module name=\"%s\">: the module refused to load "
			     "for host %s (see the log above)", name, vh->name);
		return -1;
	}
	m->loaded = true;
	if (def->service)
		log_info("modules", "%s: mod_%s loaded, serving %s", vh->name, name, m->vh->name);
	else
		log_info("modules", "%s: mod_%s loaded", vh->name, name);
	return 0;
}

int module_instantiate(struct vhost *vh, const char *name, const struct config_module *cm,
		       unsigned line, bool check_only, struct config_errors *errs,
		       const struct config *cfg)
{
	return instantiate(vh, name, cm, line, check_only, 0, errs, cfg);
}

void module_unload(struct module *m)
{
	if (m->loaded && m->def->unload)
		m->def->unload(m);
	while (m->timers)
		module_timer_free(m->timers);
	hooks_remove(m->host, m);
	iq_remove(m->vh, m);
	disco_remove(m->vh, m);
	ctl_commands_remove(m);
	metrics_remove(m);
	if (m->free_data)
		m->free_data(m->data);
	for (size_t i = 0; i < m->nstrings; i++)
		free(m->strings[i]);
	free(m->strings);
	free(m->options);
	free(m);
}

/* ---- timers ---- */

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct module_timer *t = arg;

	(void)fd;
	(void)what;
	t->fn(t->m, t->arg);
}

struct module_timer *module_timer_new(struct module *m, timer_fn fn, void *arg)
{
	struct module_timer *t = calloc(1, sizeof(*t));

	if (t)
		t->ev = event_new(server.base, -1, 0, on_timer, t);
	if (!t || !t->ev) {
		log_error("modules", "%s: mod_%s: no memory for a timer", m->host->name,
			  m->def->name);
		free(t);
		return NULL;
	}
	t->m = m;
	t->fn = fn;
	t->arg = arg;
	t->next = m->timers;
	if (m->timers)
		m->timers->prev = t;
	m->timers = t;
	return t;
}

void module_timer_start(struct module_timer *t, unsigned long ms, bool repeat)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	if (repeat != t->repeat) {
		/* EV_PERSIST is fixed at creation: make the event anew. */
		struct event *ev = event_new(server.base, -1, repeat ? EV_PERSIST : 0, on_timer, t);

		if (!ev) {
			log_error("modules", "mod_%s: no memory for a timer", t->m->def->name);
			return;
		}
		event_free(t->ev);
		t->ev = ev;
		t->repeat = repeat;
	}
	event_add(t->ev, &tv);
}

void module_timer_stop(struct module_timer *t)
{
	if (t && t->ev)
		event_del(t->ev);
}

void module_timer_free(struct module_timer *t)
{
	if (!t)
		return;
	if (t->ev)
		event_free(t->ev);
	if (t->prev)
		t->prev->next = t->next;
	else
		t->m->timers = t->next;
	if (t->next)
		t->next->prev = t->prev;
	free(t);
}

/*
 * vhost.c - virtual hosts, module loading, and the registries modules fill:
 * disco features and identities, hooks, IQ handlers.
 *
 * A module's shared object is opened once (dlopen) and instantiated per host.
 * Options are checked against the module's table before load() runs, so a bad
 * option stops start-up with the config line, like any other config error.
 */
#include "vhost.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "router.h"
#include "stanza.h"

#define MODULE_DEPTH_MAX 16	/* dependency chains longer than this are a loop */

struct opt_value {
	const struct module_option *opt;
	long long num;
	char *str;
};

struct module {
	const struct module_def *def;
	struct vhost *vh;
	struct opt_value *values;
	size_t nvalues;
	void *data;
	void (*free_data)(void *);
	bool loaded;
};

struct hook_entry {
	struct module *m;
	hook_fn fn;
	int priority;
	struct hook_entry *next;
};

struct iq_entry {
	struct module *m;
	enum iq_type type;
	bool account;
	char *ns;
	iq_fn fn;
	struct iq_entry *next;
};

struct disco_entry {
	struct module *m;
	bool account;
	char *category, *type, *name;	/* identity; feature: category NULL, name = var */
	struct disco_entry *next;
};

struct vhost {
	char *name;
	const struct config_host *cfg;
	struct module **mods;
	size_t nmods;
	struct hook_entry *hooks[HOOK_COUNT];
	struct iq_entry *iqs;
	struct disco_entry *disco;
};

struct so {
	char *name;
	void *handle;
	const struct module_def *def;
};

static struct {
	struct vhost **hosts;
	size_t nhosts;
	struct so *sos;
	size_t nsos;
	const struct config *cfg;
} reg;

/* ---- errors in config style ---- */

static void __attribute__((format(printf, 3, 4)))
problem(struct config_errors *errs, unsigned line, const char *fmt, ...)
{
	char msg[1024], *full, **grown;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (asprintf(&full, "%s:%u: %s", reg.cfg->path, line, msg) < 0)
		return;
	grown = realloc(errs->msgs, (errs->count + 1) * sizeof(*grown));
	if (!grown) {
		free(full);
		return;
	}
	errs->msgs = grown;
	errs->msgs[errs->count++] = full;
}

/* ---- shared objects ---- */

static const struct module_def *so_open(const char *name, unsigned line,
					struct config_errors *errs)
{
	const char *dir = reg.cfg->module_dir ? reg.cfg->module_dir : MODULEDIR;
	const struct module_def *def;
	struct so *grown;
	char path[PATH_MAX];
	void *h;

	for (size_t i = 0; i < reg.nsos; i++)
		if (strcmp(reg.sos[i].name, name) == 0)
			return reg.sos[i].def;
	for (const char *c = name; *c; c++) {
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_')) {
			problem(errs, line, "<module name=\"%s\">: a module name is lower-case "
				"letters, digits and _", name);
			return NULL;
		}
	}
	snprintf(path, sizeof(path), "%s/mod_%s.so", dir, name);
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		problem(errs, line, "<module name=\"%s\">: cannot load %s: %s", name, path,
			dlerror());
		return NULL;
	}
	def = dlsym(h, "parley_module");
	if (!def) {
		problem(errs, line, "<module name=\"%s\">: %s is not a Parley module (no "
			"parley_module symbol)", name, path);
		dlclose(h);
		return NULL;
	}
	if (def->abi != PARLEY_MODULE_ABI) {
		problem(errs, line, "<module name=\"%s\">: %s was built for module ABI %u, "
			"this parleyd has ABI %u: rebuild the module", name, path, def->abi,
			PARLEY_MODULE_ABI);
		dlclose(h);
		return NULL;
	}
	if (!def->name || strcmp(def->name, name) != 0) {
		problem(errs, line, "<module name=\"%s\">: %s declares itself as \"%s\"",
			name, path, def->name ? def->name : "");
		dlclose(h);
		return NULL;
	}
	grown = realloc(reg.sos, (reg.nsos + 1) * sizeof(*grown));
	if (!grown) {
		dlclose(h);
		return NULL;
	}
	reg.sos = grown;
	reg.sos[reg.nsos].name = strdup(name);
	reg.sos[reg.nsos].handle = h;
	reg.sos[reg.nsos].def = def;
	reg.nsos++;
	return def;
}

/* ---- options ---- */

static int parse_value(const struct module_option *o, const char *s, struct opt_value *v,
		       char *why, size_t whylen)
{
	char *end;
	long long n, mult = 1;

	v->opt = o;
	switch (o->type) {
	case OPT_BOOL:
		if (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcmp(s, "1") ||
		    !strcasecmp(s, "on"))
			v->num = 1;
		else if (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcmp(s, "0") ||
			 !strcasecmp(s, "off"))
			v->num = 0;
		else {
			snprintf(why, whylen, "not a boolean (true or false)");
			return -1;
		}
		return 0;
	case OPT_STRING:
		v->str = strdup(s);
		return v->str ? 0 : -1;
	case OPT_INT:
	case OPT_DURATION:
	case OPT_SIZE:
		errno = 0;
		if ((*s < '0' || *s > '9') && *s != '-')
			goto nan;
		n = strtoll(s, &end, 10);
		if (errno)
			goto nan;
		if (*end && o->type == OPT_DURATION) {
			mult = !strcmp(end, "s") ? 1 : !strcmp(end, "m") ? 60 : !strcmp(end, "h")
				? 3600 : !strcmp(end, "d") ? 86400 : 0;
		} else if (*end && o->type == OPT_SIZE) {
			mult = !strcasecmp(end, "k") ? 1024 : !strcasecmp(end, "m") ? 1 << 20
				: !strcasecmp(end, "g") ? 1 << 30 : 0;
		} else if (*end) {
			mult = 0;
		}
		if (!mult)
			goto nan;
		if (n > LLONG_MAX / mult || n < LLONG_MIN / mult)
			goto range;
		n *= mult;
		if (n < o->min || n > o->max)
			goto range;
		v->num = n;
		return 0;
	}
nan:
	snprintf(why, whylen, "not a%s number%s", o->type == OPT_INT ? "n integer" : "",
		 o->type == OPT_DURATION ? " of seconds (suffix s, m, h or d allowed)" :
		 o->type == OPT_SIZE ? " of bytes (suffix k, M or G allowed)" : "");
	return -1;
range:
	snprintf(why, whylen, "must be between %lld and %lld", o->min, o->max);
	return -1;
}

static int set_options(struct module *m, const struct config_module *cm,
		       struct config_errors *errs)
{
	const struct module_option *o;
	size_t n = 0;
	int rc = 0;
	char why[256];

	for (o = m->def->options; o && o->name; o++)
		n++;
	m->values = calloc(n ? n : 1, sizeof(*m->values));
	if (!m->values)
		return -1;
	m->nvalues = n;
	if (cm) {
		for (size_t i = 0; i < cm->noptions; i++) {
			for (o = m->def->options; o && o->name; o++)
				if (strcmp(o->name, cm->options[i].name) == 0)
					break;
			if (!o || !o->name) {
				problem(errs, cm->options[i].line, "<module name=\"%s\">: unknown "
					"option \"%s\" (see `parleyctl modules`)", cm->name,
					cm->options[i].name);
				rc = -1;
			}
		}
	}
	for (size_t i = 0; i < n; i++) {
		const struct config_option *given = NULL;
		const char *val;

		o = &m->def->options[i];
		for (size_t j = 0; cm && j < cm->noptions; j++)
			if (strcmp(o->name, cm->options[j].name) == 0)
				given = &cm->options[j];
		val = given ? given->value : o->def ? o->def : "";
		if (parse_value(o, val, &m->values[i], why, sizeof(why)) < 0) {
			if (given)
				problem(errs, given->line, "<module name=\"%s\" %s=\"%s\">: %s",
					cm->name, o->name, val, why);
			else
				log_error("modules", "mod_%s: the default of %s (\"%s\") is "
					  "invalid: %s", m->def->name, o->name, val, why);
			rc = -1;
		}
	}
	return rc;
}

static const struct opt_value *find_value(const struct module *m, const char *name)
{
	for (size_t i = 0; i < m->nvalues; i++)
		if (m->values[i].opt && strcmp(m->values[i].opt->name, name) == 0)
			return &m->values[i];
	log_error("modules", "mod_%s asked for an option it did not declare: %s",
		  m->def->name, name);
	return NULL;
}

bool module_opt_bool(const struct module *m, const char *name)
{
	const struct opt_value *v = find_value(m, name);

	return v && v->num;
}

long long module_opt_int(const struct module *m, const char *name)
{
	const struct opt_value *v = find_value(m, name);

	return v ? v->num : 0;
}

const char *module_opt_str(const struct module *m, const char *name)
{
	const struct opt_value *v = find_value(m, name);

	return v && v->str ? v->str : "";
}

/* ---- instances ---- */

const char *module_host(const struct module *m) { return m->vh->name; }
const char *module_name(const struct module *m) { return m->def->name; }
void *module_data(const struct module *m) { return m->data; }

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

static int instantiate(struct vhost *vh, const char *name, const struct config_module *cm,
		       unsigned line, bool check_only, int depth, struct config_errors *errs)
{
	const struct module_def *def;
	struct module *m, **grown;

	if (host_module(vh, name))
		return 0;
	if (depth > MODULE_DEPTH_MAX) {
		problem(errs, line, "<module name=\"%s\">: the dependencies form a loop", name);
		return -1;
	}
	def = so_open(name, line, errs);
	if (!def)
		return -1;
	/* Dependencies first, with their defaults unless the host configures them. */
	for (const char *const *d = def->depends; d && *d; d++) {
		const struct config_module *dcm = NULL;

		for (size_t i = 0; i < vh->cfg->nmodules; i++)
			if (strcmp(vh->cfg->modules[i].name, *d) == 0)
				dcm = &vh->cfg->modules[i];
		if (instantiate(vh, *d, dcm, dcm ? dcm->line : line, check_only, depth + 1,
				errs) < 0)
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
	m->vh = vh;
	if (set_options(m, cm, errs) < 0)
		return -1;
	if (check_only)
		return 0;
	if (def->load && def->load(m) < 0) {
		problem(errs, line, "<module name=\"%s\">: the module refused to load for "
			"host %s (see the log above)", name, vh->name);
		return -1;
	}
	m->loaded = true;
	log_info("modules", "%s: mod_%s loaded", vh->name, name);
	return 0;
}

static void remove_registrations(struct vhost *vh, struct module *m)
{
	for (int h = 0; h < HOOK_COUNT; h++) {
		struct hook_entry **pp = &vh->hooks[h];

		while (*pp) {
			if ((*pp)->m == m) {
				struct hook_entry *e = *pp;

				*pp = e->next;
				free(e);
			} else {
				pp = &(*pp)->next;
			}
		}
	}
	for (struct iq_entry **pp = &vh->iqs; *pp;) {
		if ((*pp)->m == m) {
			struct iq_entry *e = *pp;

			*pp = e->next;
			free(e->ns);
			free(e);
		} else {
			pp = &(*pp)->next;
		}
	}
	for (struct disco_entry **pp = &vh->disco; *pp;) {
		if ((*pp)->m == m) {
			struct disco_entry *e = *pp;

			*pp = e->next;
			free(e->category);
			free(e->type);
			free(e->name);
			free(e);
		} else {
			pp = &(*pp)->next;
		}
	}
}

static void module_unload(struct module *m)
{
	if (m->loaded && m->def->unload)
		m->def->unload(m);
	remove_registrations(m->vh, m);
	if (m->free_data)
		m->free_data(m->data);
	for (size_t i = 0; i < m->nvalues; i++)
		free(m->values[i].str);
	free(m->values);
	free(m);
}

int vhosts_init(const struct config *cfg, bool check_only, struct config_errors *errs)
{
	int rc = 0;

	reg.cfg = cfg;
	reg.hosts = calloc(cfg->nhosts ? cfg->nhosts : 1, sizeof(*reg.hosts));
	if (!reg.hosts)
		return -1;
	for (size_t i = 0; i < cfg->nhosts; i++) {
		struct vhost *vh = calloc(1, sizeof(*vh));

		if (!vh)
			return -1;
		vh->name = strdup(cfg->hosts[i].name);
		vh->cfg = &cfg->hosts[i];
		reg.hosts[reg.nhosts++] = vh;
		for (size_t j = 0; j < vh->cfg->nmodules; j++) {
			const struct config_module *cm = &vh->cfg->modules[j];

			if (instantiate(vh, cm->name, cm, cm->line, check_only, 0, errs) < 0)
				rc = -1;
		}
	}
	return rc;
}

void vhosts_free(void)
{
	for (size_t i = reg.nhosts; i-- > 0;) {
		struct vhost *vh = reg.hosts[i];

		for (size_t j = vh->nmods; j-- > 0;)
			module_unload(vh->mods[j]);
		free(vh->mods);
		free(vh->name);
		free(vh);
	}
	free(reg.hosts);
	for (size_t i = 0; i < reg.nsos; i++) {
		dlclose(reg.sos[i].handle);
		free(reg.sos[i].name);
	}
	free(reg.sos);
	memset(&reg, 0, sizeof(reg));
}

struct vhost *vhost_find(const char *name)
{
	for (size_t i = 0; i < reg.nhosts; i++)
		if (strcmp(reg.hosts[i]->name, name) == 0)
			return reg.hosts[i];
	return NULL;
}

const char *vhost_name(const struct vhost *vh) { return vh->name; }
size_t vhost_count(void) { return reg.nhosts; }
struct vhost *vhost_at(size_t i) { return i < reg.nhosts ? reg.hosts[i] : NULL; }

size_t vhost_modules(const struct vhost *vh, const char **names, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < vh->nmods && n < max; i++)
		names[n++] = vh->mods[i]->def->name;
	return n;
}

/* ---- disco ---- */

static void add_disco(struct module *m, bool account, const char *category,
		      const char *type, const char *name)
{
	struct disco_entry *e = calloc(1, sizeof(*e)), **pp;

	if (!e)
		return;
	e->m = m;
	e->account = account;
	e->category = category ? strdup(category) : NULL;
	e->type = type ? strdup(type) : NULL;
	e->name = name ? strdup(name) : NULL;
	/* Appended, so disco lists features in the order modules declared them. */
	for (pp = &m->vh->disco; *pp; pp = &(*pp)->next)
		;
	*pp = e;
}

void module_feature(struct module *m, const char *var)
{
	add_disco(m, false, NULL, NULL, var);
}

void module_account_feature(struct module *m, const char *var)
{
	add_disco(m, true, NULL, NULL, var);
}

void module_identity(struct module *m, const char *category, const char *type,
		     const char *name)
{
	add_disco(m, false, category, type, name);
}

void module_account_identity(struct module *m, const char *category, const char *type)
{
	add_disco(m, true, category, type, NULL);
}

void vhost_disco_info(const struct vhost *vh, bool account, struct xml_node *query)
{
	/* Identities first (XEP-0030 §3.1), each feature once. */
	for (const struct disco_entry *e = vh->disco; e; e = e->next) {
		if (!e->category || e->account != account)
			continue;
		struct xml_node *id = xml_add_child(query, "identity", NULL);

		if (!id)
			return;
		xml_attr_set(id, "category", e->category);
		xml_attr_set(id, "type", e->type);
		if (e->name)
			xml_attr_set(id, "name", e->name);
	}
	for (const struct disco_entry *e = vh->disco; e; e = e->next) {
		bool dup = false;

		if (e->category || e->account != account)
			continue;
		for (const struct disco_entry *p = vh->disco; p != e; p = p->next)
			if (!p->category && p->account == account && !strcmp(p->name, e->name))
				dup = true;
		if (dup)
			continue;
		struct xml_node *f = xml_add_child(query, "feature", NULL);

		if (!f)
			return;
		xml_attr_set(f, "var", e->name);
	}
}

void module_disco_info(const struct module *m, bool account, struct xml_node *query)
{
	vhost_disco_info(m->vh, account, query);
}

/* ---- hooks ---- */

void module_hook(struct module *m, enum hook h, int priority, hook_fn fn)
{
	struct hook_entry *e, **pp;

	if ((unsigned)h >= HOOK_COUNT)
		return;
	e = calloc(1, sizeof(*e));
	if (!e)
		return;
	e->m = m;
	e->fn = fn;
	e->priority = priority;
	/* Higher priority first; equal priorities keep registration order. */
	for (pp = &m->vh->hooks[h]; *pp && (*pp)->priority >= priority; pp = &(*pp)->next)
		;
	e->next = *pp;
	*pp = e;
}

int hooks_run(const char *host, enum hook h, struct hook_args *a)
{
	struct vhost *vh = host ? vhost_find(host) : NULL;

	if (!vh || (unsigned)h >= HOOK_COUNT)
		return HOOK_PASS;
	a->host = vh->name;
	for (struct hook_entry *e = vh->hooks[h]; e; e = e->next)
		if (e->fn(e->m, a) == HOOK_STOP)
			return HOOK_STOP;
	return HOOK_PASS;
}

/* ---- IQ ---- */

static void add_iq(struct module *m, enum iq_type type, bool account, const char *ns,
		   iq_fn fn)
{
	struct iq_entry *e = calloc(1, sizeof(*e));

	if (!e)
		return;
	for (struct iq_entry *o = m->vh->iqs; o; o = o->next)
		if (o->type == type && o->account == account && !strcmp(o->ns, ns))
			log_warn("modules", "%s: mod_%s and mod_%s both handle %s IQs of %s; "
				 "mod_%s wins", m->vh->name, o->m->def->name, m->def->name,
				 type == IQ_GET ? "get" : "set", ns, m->def->name);
	e->m = m;
	e->type = type;
	e->account = account;
	e->ns = strdup(ns);
	e->fn = fn;
	e->next = m->vh->iqs;
	m->vh->iqs = e;
}

void module_iq(struct module *m, enum iq_type type, const char *ns, iq_fn fn)
{
	add_iq(m, type, false, ns, fn);
}

void module_account_iq(struct module *m, enum iq_type type, const char *ns, iq_fn fn)
{
	add_iq(m, type, true, ns, fn);
}

/* The core's side of struct iq: what it needs to answer and free it. */
struct iq_impl {
	struct iq pub;
	struct jid *from, *to;
	struct iq_origin origin;	/* send NULL: answers go through the router */
	char *address;
};

static int dispatch(struct vhost *vh, bool account, struct xml_node *stanza,
		    const struct jid *from, const struct jid *to,
		    const struct iq_origin *origin)
{
	const char *type = xml_attr(stanza, "type");
	struct xml_node *payload = xml_child(stanza, NULL, NULL);
	enum iq_type t;
	struct iq_impl *q;

	if (!payload || !payload->ns || !type)
		return -1;
	if (strcmp(type, "get") == 0)
		t = IQ_GET;
	else if (strcmp(type, "set") == 0)
		t = IQ_SET;
	else
		return -1;
	for (struct iq_entry *e = vh->iqs; e; e = e->next) {
		if (e->type != t || e->account != account || strcmp(e->ns, payload->ns) != 0)
			continue;
		q = calloc(1, sizeof(*q));
		if (!q)
			return -1;
		q->from = from ? jid_copy(from) : NULL;
		q->to = jid_copy(to);
		if ((from && !q->from) || !q->to) {
			jid_free(q->from);
			jid_free(q->to);
			free(q);
			return -1;
		}
		if (origin) {
			q->origin = *origin;
			q->address = origin->address ? strdup(origin->address) : NULL;
			q->pub.address = q->address;
		}
		q->pub.m = e->m;
		q->pub.stanza = xml_ref(stanza);
		q->pub.payload = payload;
		q->pub.from = q->from;
		q->pub.to = q->to;
		q->pub.type = t;
		/* -1 means the handler did not answer (and will not). */
		if (e->fn(&q->pub) < 0)
			iq_error(&q->pub, "internal-server-error", NULL);
		return 0;
	}
	return -1;
}

int iq_dispatch(struct vhost *vh, bool account, struct xml_node *stanza,
		const struct jid *from, const struct jid *to)
{
	return dispatch(vh, account, stanza, from, to, NULL);
}

int iq_dispatch_unbound(struct vhost *vh, struct xml_node *stanza, const struct jid *to,
			const struct iq_origin *origin)
{
	return dispatch(vh, false, stanza, NULL, to, origin);
}

static void iq_free(struct iq_impl *q)
{
	if (q->origin.release)
		q->origin.release(q->origin.ctx);
	free(q->address);
	xml_unref(q->pub.stanza);
	jid_free(q->from);
	jid_free(q->to);
	free(q);
}

/* Answers go out from the address the request went to. */
static void iq_send(struct iq_impl *q, struct xml_node *answer)
{
	if (answer && q->origin.send) {
		xml_attr_set(answer, "from", q->to->full);
		xml_attr_set(answer, "to", NULL);
		q->origin.send(q->origin.ctx, answer);
	} else if (answer && q->from) {
		xml_attr_set(answer, "from", q->to->full);
		xml_attr_set(answer, "to", q->from->full);
		router_route(answer);
	} else {
		xml_unref(answer);
	}
	iq_free(q);
}

int iq_reply(struct iq *iq, struct xml_node *payload)
{
	struct iq_impl *q = (struct iq_impl *)iq;

	iq_send(q, stanza_iq_result(iq->stanza, payload));
	return 0;
}

int iq_error(struct iq *iq, const char *condition, const char *text)
{
	struct iq_impl *q = (struct iq_impl *)iq;
	struct xml_node *err = stanza_error_reply(iq->stanza, NULL, condition, text);

	/* An error reply carries the request's payload; for an IQ that is fine. */
	iq_send(q, err);
	return 0;
}

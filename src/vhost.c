/*
 * vhost.c - the hosts of the config and the services on their subdomains.
 *
 * Both are short arrays searched by name: a deployment has a handful of each,
 * and the router asks once per stanza. The modules that fill them are loaded
 * here, host by host, in config order (module.c does the loading). Services
 * that no module serves (external components) are added by whoever serves
 * them, after the modules: a domain taken twice is a config error either way.
 */
#include "vhost.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

static struct {
	struct vhost **hosts;
	size_t nhosts;
	struct vhost **services;
	size_t nservices;
} reg;

static void vhost_free(struct vhost *vh)
{
	free(vh->mods);
	free(vh->name);
	free(vh);
}

int vhosts_init(const struct config *cfg, bool check_only, struct config_errors *errs)
{
	int rc = 0;

	reg.hosts = calloc(cfg->nhosts ? cfg->nhosts : 1, sizeof(*reg.hosts));
	if (!reg.hosts)
		return -1;
	for (size_t i = 0; i < cfg->nhosts; i++) {
		struct vhost *vh = calloc(1, sizeof(*vh));

		if (!vh || !(vh->name = strdup(cfg->hosts[i].name))) {
			free(vh);
			return -1;
		}
		vh->kind = VHOST_HOST;
		vh->host = vh;
		vh->cfg = &cfg->hosts[i];
		reg.hosts[reg.nhosts++] = vh;
	}
	/* Every host exists before any module loads: a service's domain is
	 * checked against all of them. */
	for (size_t i = 0; i < reg.nhosts; i++) {
		struct vhost *vh = reg.hosts[i];

		for (size_t j = 0; j < vh->cfg->nmodules; j++) {
			const struct config_module *cm = &vh->cfg->modules[j];

			if (module_instantiate(vh, cm->name, cm, cm->line, check_only, errs,
					       cfg) < 0)
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
	}
	for (size_t i = 0; i < reg.nservices; i++)
		vhost_free(reg.services[i]);
	for (size_t i = 0; i < reg.nhosts; i++)
		vhost_free(reg.hosts[i]);
	free(reg.services);
	free(reg.hosts);
	modules_close();
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

/* ---- services ---- */

struct vhost *service_find(const char *domain)
{
	for (size_t i = 0; i < reg.nservices; i++)
		if (strcmp(reg.services[i]->name, domain) == 0)
			return reg.services[i];
	return NULL;
}

int service_add(struct module *m, const char *domain, const char *cpath, unsigned line,
		struct config_errors *errs)
{
	const struct vhost *taken = vhost_find(domain);
	struct vhost *svc, **grown;

	if (!taken)
		taken = service_find(domain);
	if (taken) {
		config_error(errs, cpath, line, "<module name=\"%s\">: %s is already %s",
			     m->def->name, domain, taken->kind == VHOST_HOST ? "a host" :
			     "served by another module");
		return -1;
	}
	svc = calloc(1, sizeof(*svc));
	grown = svc ? realloc(reg.services, (reg.nservices + 1) * sizeof(*grown)) : NULL;
	if (!grown || !(svc->name = strdup(domain))) {
		if (grown)
			reg.services = grown;
		free(svc);
		return -1;
	}
	reg.services = grown;
	svc->kind = VHOST_SERVICE;
	svc->host = m->host;
	svc->cfg = m->host->cfg;
	svc->service = m;
	reg.services[reg.nservices++] = svc;
	m->vh = svc;
	return 0;
}

struct vhost *service_add_external(const char *domain, struct vhost *host,
				   service_handler_fn fn, void *arg)
{
	struct vhost *svc, **grown;

	if (vhost_find(domain) || service_find(domain))
		return NULL;
	svc = calloc(1, sizeof(*svc));
	grown = svc ? realloc(reg.services, (reg.nservices + 1) * sizeof(*grown)) : NULL;
	if (!grown || !(svc->name = strdup(domain))) {
		if (grown)
			reg.services = grown;
		free(svc);
		return NULL;
	}
	reg.services = grown;
	svc->kind = VHOST_SERVICE;
	svc->host = host;
	svc->cfg = host ? host->cfg : NULL;
	svc->handler = fn;
	svc->handler_arg = arg;
	reg.services[reg.nservices++] = svc;
	return svc;
}

void service_remove(struct vhost *svc)
{
	for (size_t i = 0; i < reg.nservices; i++) {
		if (reg.services[i] != svc)
			continue;
		/* Shifted, not swapped: disco#items keeps listing in config order. */
		memmove(&reg.services[i], &reg.services[i + 1],
			(reg.nservices - i - 1) * sizeof(*reg.services));
		reg.nservices--;
		vhost_free(svc);
		return;
	}
}

struct vhost *vhost_parent(const char *domain)
{
	size_t len = strlen(domain);
	struct vhost *best = NULL;

	for (size_t i = 0; i < reg.nhosts; i++) {
		const char *h = reg.hosts[i]->name;
		size_t hl = strlen(h);

		if (len > hl + 1 && domain[len - hl - 1] == '.' &&
		    strcmp(domain + len - hl, h) == 0 && (!best || hl > strlen(best->name)))
			best = reg.hosts[i];
	}
	return best;
}

void service_foreach(const struct vhost *host, void (*fn)(const struct vhost *svc, void *arg),
		     void *arg)
{
	for (size_t i = 0; i < reg.nservices; i++)
		if (reg.services[i]->host == host)
			fn(reg.services[i], arg);
}

int module_stanza(struct module *m, stanza_fn fn)
{
	if (m->vh->kind != VHOST_SERVICE) {
		log_error("modules", "%s: mod_%s registered a stanza handler but serves no "
			  "domain (no .service in its definition)", m->host->name, m->def->name);
		m->reg_failed = true;
		return -1;
	}
	m->vh->stanza = fn;
	return 0;
}

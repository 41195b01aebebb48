/*
 * vhost.h - virtual hosts, the services on their subdomains, and the module
 * instances that fill them (core-internal: modules see only module.h).
 *
 * Each <host> of the config is a vhost; each module it enables is an instance
 * (struct module). A module whose definition names a service serves a domain
 * of its own (conference.HOST): that domain is a vhost too, of kind
 * VHOST_SERVICE, with its own disco entries, IQ handlers and a stanza handler,
 * and the host it belongs to as ->host. Hooks are always the host's. A domain
 * that no module serves (an external component, component.c) is a service
 * too: one handler takes every stanza to it (service_add_external), and the
 * router hands them over without knowing what is behind it.
 *
 * The registries are split by job: module.c (loading, options, timers),
 * hooks.c, iq.c, disco.c; vhost.c keeps the list of hosts and services.
 */
#ifndef PARLEY_VHOST_H
#define PARLEY_VHOST_H

#include <stdbool.h>

#include "config.h"
#include "module.h"

enum vhost_kind { VHOST_HOST, VHOST_SERVICE };

struct hook_entry;
struct iq_entry;
struct disco_entry;
struct module_timer;
struct jid;

/* The handler of a service that no module serves: every stanza to its domain
 * or to any JID at it, IQs to the bare domain included (it answers its own
 * disco), and errors too. It answers, bounces or drops each itself; the stanza
 * is not consumed (xml_ref to keep it). */
typedef void (*service_handler_fn)(void *arg, struct xml_node *stanza, const struct jid *from,
				   const struct jid *to);

struct vhost {
	char *name;			/* the domain */
	enum vhost_kind kind;
	struct vhost *host;		/* a service's host; a host's is itself */
	const struct config_host *cfg;	/* the host's config */
	struct module **mods;		/* a host's instances, in load order */
	size_t nmods;
	struct hook_entry *hooks[HOOK_COUNT];	/* a host's hooks */
	struct iq_entry *iqs;
	struct disco_entry *disco;
	/* A service: the instance serving it and its handler for stanzas to JIDs
	 * at the domain (module_stanza). */
	struct module *service;
	stanza_fn stanza;
	/* A service no module serves (service_add_external): takes everything. */
	service_handler_fn handler;
	void *handler_arg;
};

struct module {
	const struct module_def *def;
	struct vhost *host;		/* the host that enabled it */
	struct vhost *vh;		/* where its disco and IQs go: host or service */
	void *options;			/* def->options_size bytes, filled from the table */
	char **strings;			/* the OPT_STRING values it points to */
	size_t nstrings;
	void *data;
	void (*free_data)(void *);
	struct module_timer *timers;
	bool loaded;
	bool reg_failed;		/* a registration in load() failed (logged) */
};

/* ---- vhost.c ---- */

/* Loads the modules of every host. On a problem (missing module, ABI, bad
 * option, load() refusal) appends "FILE:LINE: message" to errs and returns -1.
 * With check_only the modules are opened and their options checked, but not
 * loaded (for --check-config). */
int vhosts_init(const struct config *cfg, bool check_only, struct config_errors *errs);
/* Unloads every module instance (in reverse order) and frees the hosts. */
void vhosts_free(void);

/* A host of the config by domain (services are not hosts: service_find). */
struct vhost *vhost_find(const char *name);
const char *vhost_name(const struct vhost *vh);
size_t vhost_count(void);
struct vhost *vhost_at(size_t i);
/* For parleyctl: the modules loaded on a host, as "name" strings. */
size_t vhost_modules(const struct vhost *vh, const char **names, size_t max);

/* A service by domain, or NULL. */
struct vhost *service_find(const char *domain);
/* Makes domain a service of m's host served by m; -1 (logged in errs) when
 * the domain is taken by a host or another service. */
int service_add(struct module *m, const char *domain, const char *cpath, unsigned line,
		struct config_errors *errs);
/* Makes domain a service that no module serves: fn(arg, ...) gets every
 * stanza to it. host is the host it belongs to (its disco#items list it), NULL
 * for one that stands alone. NULL when the domain is a host or a service
 * already (the caller words the config error), or without memory. */
struct vhost *service_add_external(const char *domain, struct vhost *host,
				   service_handler_fn fn, void *arg);
/* Takes such a service away and frees it; its domain is unknown from then on. */
void service_remove(struct vhost *svc);
/* The host that domain is a subdomain of (gw.example.com: example.com; the
 * longest such host if several are), or NULL. */
struct vhost *vhost_parent(const char *domain);
/* Calls fn for each service of a host, in load order. */
void service_foreach(const struct vhost *host, void (*fn)(const struct vhost *svc, void *arg),
		     void *arg);

/* ---- module.c ---- */

/* Opens (or finds) mod_NAME and makes an instance of it on vh, dependencies
 * first; loads it unless check_only. */
int module_instantiate(struct vhost *vh, const char *name, const struct config_module *cm,
		       unsigned line, bool check_only, struct config_errors *errs,
		       const struct config *cfg);
/* Unloads the instance (unload(), its registrations, timers, options) and
 * frees it. */
void module_unload(struct module *m);
/* Closes the shared objects (after every instance is gone). */
void modules_close(void);
/* A module compiled into the binary (tests): found by name before dlopen. */
void module_add_builtin(const struct module_def *def);

/* ---- hooks.c, iq.c, disco.c: what unloading an instance removes ---- */

void hooks_remove(struct vhost *vh, const struct module *m);
void iq_remove(struct vhost *vh, const struct module *m);
void disco_remove(struct vhost *vh, const struct module *m);

/* ---- iq.c ---- */

/*
 * Hands an IQ get/set to the handler registered for its payload namespace.
 * account: to a user's bare JID (or no 'to') rather than to the domain. Returns
 * 0 when a handler took it (it answers), -1 when none is registered (the caller
 * answers service-unavailable). The stanza is not consumed.
 */
int iq_dispatch(struct vhost *vh, bool account, struct xml_node *stanza,
		const struct jid *from, const struct jid *to);

/*
 * The same for an IQ from a stream that has no address yet (before
 * authentication): the answer goes back through send(ctx, answer) instead of the
 * router, and release(ctx) runs once the IQ is done with, answered or not.
 */
struct iq_origin {
	void (*send)(void *ctx, struct xml_node *answer);	/* consumes answer */
	void (*release)(void *ctx);
	void *ctx;
	const char *address;
};
int iq_dispatch_unbound(struct vhost *vh, struct xml_node *stanza, const struct jid *to,
			const struct iq_origin *origin);

/* ---- disco.c ---- */

/* Adds <identity/> and <feature/> children to a disco#info <query/>. */
void vhost_disco_info(const struct vhost *vh, bool account, struct xml_node *query);
/* A service's own disco#info and disco#items when its module does not answer
 * them: 0 if the IQ was one of those (answered), -1 if not. */
/* Whether the domain has declared an identity (XEP-0030: every entity has one). */
bool disco_has_identity(const struct vhost *vh);
int disco_service_iq(struct vhost *svc, struct xml_node *stanza, const struct jid *from,
		     const struct jid *to);

#endif

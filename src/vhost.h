/*
 * vhost.h - virtual hosts and what their modules registered (core-internal).
 *
 * Each <host> of the config is a vhost; each module it enables is an instance
 * (struct module) whose features, hooks and IQ handlers live in the vhost's
 * tables, tagged with the instance, so unloading removes exactly them.
 */
#ifndef PARLEY_VHOST_H
#define PARLEY_VHOST_H

#include <stdbool.h>

#include "config.h"
#include "module.h"

struct vhost;

/* Loads the modules of every host. On a problem (missing module, ABI, bad
 * option, load() refusal) appends "FILE:LINE: message" to errs and returns -1.
 * With check_only the modules are opened and their options checked, but not
 * loaded (for --check-config). */
int vhosts_init(const struct config *cfg, bool check_only, struct config_errors *errs);
/* Unloads every module instance (in reverse order) and frees the hosts. */
void vhosts_free(void);

struct vhost *vhost_find(const char *name);
const char *vhost_name(const struct vhost *vh);
size_t vhost_count(void);
struct vhost *vhost_at(size_t i);

/* Runs the hook's handlers for host; HOOK_STOP if one took the event. */
int hooks_run(const char *host, enum hook h, struct hook_args *a);

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

/* Adds <identity/> and <feature/> children to a disco#info <query/>. */
void vhost_disco_info(const struct vhost *vh, bool account, struct xml_node *query);

/* For parleyctl: the modules loaded on a host, as "name" strings. */
size_t vhost_modules(const struct vhost *vh, const char **names, size_t max);

#endif

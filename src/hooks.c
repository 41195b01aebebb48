/*
 * hooks.c - the hooks of each host: handlers by priority, run until one stops.
 *
 * A hook is a list per host, kept sorted when a handler registers (higher
 * priority first, equal priorities in registration order), so running one is a
 * walk down a short list with no sorting per event.
 */
#include "vhost.h"

#include <stdlib.h>

#include "log.h"

struct hook_entry {
	struct module *m;
	hook_fn fn;
	int priority;
	struct hook_entry *next;
};

int module_hook(struct module *m, enum hook h, int priority, hook_fn fn)
{
	struct hook_entry *e, **pp;

	if ((unsigned)h >= HOOK_COUNT || !fn) {
		log_error("modules", "%s: mod_%s registered an unknown hook %d",
			  m->host->name, m->def->name, (int)h);
		return -1;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		log_error("modules", "%s: mod_%s: no memory for a hook", m->host->name,
			  m->def->name);
		return -1;
	}
	e->m = m;
	e->fn = fn;
	e->priority = priority;
	for (pp = &m->host->hooks[h]; *pp && (*pp)->priority >= priority; pp = &(*pp)->next)
		;
	e->next = *pp;
	*pp = e;
	return 0;
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

void hooks_remove(struct vhost *vh, const struct module *m)
{
	for (int h = 0; h < HOOK_COUNT; h++) {
		struct hook_entry **pp = &vh->hooks[h];

		while (*pp) {
			struct hook_entry *e = *pp;

			if (e->m == m) {
				*pp = e->next;
				free(e);
			} else {
				pp = &e->next;
			}
		}
	}
}

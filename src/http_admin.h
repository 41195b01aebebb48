/*
 * http_admin.h - /metrics and /health on the admin HTTP listeners.
 */
#ifndef PARLEY_HTTP_ADMIN_H
#define PARLEY_HTTP_ADMIN_H

struct module;

/* Registers the routes (before listeners_start). Returns 0 or -1. */
int http_admin_init(void);
/* Drops the metrics callbacks of a module instance (module_unload). */
void metrics_remove(struct module *m);
/* Frees what is left (at exit). */
void http_admin_shutdown(void);

#endif

/*
 * http_admin.h - /metrics and /health on the admin HTTP listeners.
 */
#ifndef PARLEY_HTTP_ADMIN_H
#define PARLEY_HTTP_ADMIN_H

/* Registers the routes (before listeners_start). Returns 0 or -1. */
int http_admin_init(void);

#endif

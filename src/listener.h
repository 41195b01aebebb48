/*
 * listener.h - the listening sockets of the config.
 *
 * Each <listen> becomes an evconnlistener with SO_REUSEPORT, so several parleyd
 * processes on one machine share the ports. When the process runs out of file
 * descriptors, accepting pauses for a second instead of spinning. Connections
 * per peer address are counted here, for <limits connections-per-ip>. Which
 * protocol a listener speaks is its transport's business: each registers an
 * accept handler for its type, and this file names none.
 */
#ifndef PARLEY_LISTENER_H
#define PARLEY_LISTENER_H

#include <stdbool.h>
#include <event2/util.h>

#include "config.h"

struct sockaddr;

/* A new connection on a listener of the type: the handler owns fd from now on. */
typedef void (*listener_accept_fn)(evutil_socket_t fd, const struct sockaddr *sa,
				   const struct config_listener *l);

/* A transport serves a <listen type>: called before listeners_start(). Returns
 * -1 when the type already has a handler. */
int listener_register(enum listener_type type, listener_accept_fn fn);

/* Binds every listener whose type has a handler (the others are logged as not
 * served); problems go to the log. Returns 0 or -1. */
int listeners_start(const struct config *cfg);
void listeners_stop(void);

/* Per-address connection counting: acquire returns false (and counts nothing)
 * when the address already has <limits connections-per-ip>. */
bool listener_ip_acquire(const char *ip);
void listener_ip_release(const char *ip);

#endif

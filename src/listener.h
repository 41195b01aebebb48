/*
 * listener.h - the listening sockets of the config.
 *
 * Each <listen> becomes an evconnlistener with SO_REUSEPORT, so several parleyd
 * processes on one machine share the ports. When the process runs out of file
 * descriptors, accepting pauses for a second instead of spinning. Connections
 * per peer address are counted here, for <limits connections-per-ip>.
 */
#ifndef PARLEY_LISTENER_H
#define PARLEY_LISTENER_H

#include <stdbool.h>

#include "config.h"

/* Binds every listener; problems go to the log. Returns 0 or -1. */
int listeners_start(const struct config *cfg);
void listeners_stop(void);

/* Per-address connection counting: ip_acquire returns false (and counts
 * nothing) when the address already has the maximum. */
bool ip_acquire(const char *ip);
void ip_release(const char *ip);

#endif

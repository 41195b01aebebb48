/*
 * server.h - the state of one node (one parleyd process, one event loop).
 *
 * There is exactly one struct server per process; subsystems reach it through
 * `server` rather than passing it down every call chain.
 */
#ifndef PARLEY_SERVER_H
#define PARLEY_SERVER_H

#include <stdbool.h>
#include <time.h>

struct event_base;
struct config;
struct db;

struct server {
	struct event_base *base;
	struct config *cfg;
	struct db *db;
	time_t started;
	bool shutting_down;
};

extern struct server server;

/* Resident memory from /proc (kB), the cheapest honest figure; -1 if unknown. */
long server_rss_kb(void);

#endif

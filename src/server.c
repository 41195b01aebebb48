/*
 * server.c - the one struct server of the process (see server.h).
 */
#include "server.h"

struct server server;

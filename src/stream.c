/*
 * stream.c - the counters every transport adds to (stream.h).
 *
 * The operations themselves are the transports' (c2s.c); this file only holds
 * what they share, so parleyctl reads one set of figures however many
 * transports there are.
 */
#include "stream.h"

struct stream_stats stream_stats;

const char *const stream_transport_names[TRANSPORTS] = { "tcp", "websocket", "bosh" };

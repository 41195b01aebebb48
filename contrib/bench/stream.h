/*
 * stream.h - what a session does with each element the server sends: the
 * negotiation from the stream header to online (STARTTLS, SASL, in-band
 * registration, bind, session, stream management), stream errors and the
 * end of the stream. Once online, stanzas go to receive.c.
 */
#ifndef BENCH_STREAM_H
#define BENCH_STREAM_H

#include <stddef.h>

#include "scan.h"
#include "session.h"

/* One event of the scanner for s, with p[0, len) as scan_next() gave it.
 * Returns H_OK, H_GONE (the session, or its bufferevent, is gone) or
 * H_RESTART (a new stream begins after this element). */
int stream_element(struct sess *s, enum scan_ev ev, const char *p, size_t len);

#endif

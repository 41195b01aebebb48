/*
 * component.h - external components (XEP-0114, jabber:component:accept).
 *
 * A gateway or a bot connects to a <listen type="component"> listener, names
 * the domain it serves in its stream header, proves it knows that domain's
 * <component secret> with the handshake digest, and from then on sends and
 * receives the stanzas of its whole domain. Each configured domain is a
 * service from start-up (vhost.h: service_add_external), connected or not, so
 * the router delivers to it as to any other service; while it is not
 * connected, what is sent to it is answered with <service-unavailable/>.
 *
 * parleyd.c calls components_init(), components_shutdown() and
 * components_free(); ctl.c and http_admin.c read the counters.
 */
#ifndef PARLEY_COMPONENT_H
#define PARLEY_COMPONENT_H

#include <stdbool.h>
#include <time.h>

#include "config.h"

#define NS_COMPONENT "jabber:component:accept"
#define COMPONENT_DIGEST_LEN 40		/* hex characters of a SHA-1 */

/* The handshake digest (XEP-0114 §3): lower-case hex of SHA1(stream id +
 * secret) into out. */
void component_digest(const char *stream_id, const char *secret,
		      char out[COMPONENT_DIGEST_LEN + 1]);
/* Whether given (hex, either case) is that digest; the comparison takes the
 * same time wherever the first wrong character is. */
bool component_handshake_ok(const char *stream_id, const char *secret, const char *given);

/* Makes each <component> of cfg a service: of the host it is a subdomain of
 * (gw.example.com: example.com), or standing alone. Problems ("FILE:LINE:
 * ...", a domain a module serves already) go to errs: -1. Unless check_only,
 * also serves the component listeners. After vhosts_init(). */
int components_init(const struct config *cfg, bool check_only, struct config_errors *errs);
/* SIGTERM: every component stream ends with <system-shutdown/>. */
void components_shutdown(void);
/* Frees every stream, flushed or not, and takes the services away (before
 * vhosts_free()). */
void components_free(void);

/* For parleyctl components and /metrics. Counters are since start, across
 * connections; address and since are the connected stream's. */
struct component_info {
	const char *domain;
	bool connected;
	const char *address;		/* "" when not connected */
	time_t since;			/* when the handshake succeeded */
	unsigned long long stanzas_in, stanzas_out, bounced;
};
void component_foreach(void (*fn)(const struct component_info *ci, void *arg), void *arg);
unsigned components_connected(void);
/* TCP connections on component listeners, authenticated or not. */
unsigned component_streams_open(void);

#endif

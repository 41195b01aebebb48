/*
 * s2s.h - federation: server-to-server streams (RFC 6120 §4, §5, §6, §13).
 *
 * s2s_init installs s2s as the router's remote-domain handler
 * (router_set_remote): it gets every stanza for a domain not served here, and
 * registers `parleyctl s2s` (ctl_register).
 * s2s keeps one route per (local domain, remote domain): a bounded queue that
 * waits while a stream is found (DNS SRV, XEP-0368), made (TLS), and
 * authenticated (SASL EXTERNAL with certificates, XEP-0178; or dialback,
 * XEP-0220, where the policy allows). What cannot be delivered goes back to
 * its sender as an error, never nowhere. Incoming streams on the s2s
 * listeners authenticate the other way round and route what they carry.
 */
#ifndef PARLEY_S2S_H
#define PARLEY_S2S_H

#include <stdbool.h>
#include <stddef.h>

#include "xml.h"

struct evbuffer;
struct jid;
typedef struct pg_conn PGconn;

/* The listeners' accept handler and the dialback secret (shared by the
 * cluster's nodes through parley_secrets; read at start-up, blocking). */
int s2s_init(void);
int s2s_load_secret(PGconn *conn, char *err, size_t errlen);
/* SIGTERM: every stream is closed (acks first), queued stanzas bounce. */
void s2s_shutdown(void);
/* At exit: frees what is left. */
void s2s_free(void);


struct s2s_stats {
	unsigned streams_in, streams_out;		/* open now */
	unsigned long long accepted, connected;		/* ever */
	unsigned long long stanzas_in, stanzas_out;
	unsigned long long bounced, resent, auth_failures;
	unsigned long long dialback_verified, external_ok;
	size_t queued;					/* waiting in every route */
	size_t routes;					/* (local, remote) pairs known */
};
const struct s2s_stats *s2s_stats(void);

#endif

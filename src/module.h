/*
 * module.h - the interface between the core and a module (DESIGN.md).
 *
 * A module is a shared object mod_NAME.so that declares itself with
 * PARLEY_MODULE(), and is instantiated once per virtual host that enables it.
 * In load() it registers disco features, hooks and IQ handlers; the core removes
 * every registration of an instance when it unloads, so unload() is only for
 * state the module made itself (module_set_data's free function covers most).
 *
 *	static int ping(struct iq *iq) { return iq_reply(iq, NULL); }
 *
 *	static int load(struct module *m)
 *	{
 *		module_feature(m, "urn:xmpp:ping");
 *		module_iq(m, IQ_GET, "urn:xmpp:ping", ping);
 *		return 0;
 *	}
 *
 *	PARLEY_MODULE(ping, .load = load);
 *
 * Modules include only the core's public headers (module.h, xml.h, jid.h,
 * stanza.h, session.h, router.h, db.h, log.h) and run on the event loop: nothing
 * they do may block.
 */
#ifndef PARLEY_MODULE_H
#define PARLEY_MODULE_H

#include <stdbool.h>
#include <stddef.h>

#include "jid.h"
#include "xml.h"

/* Bumped whenever a struct or function below changes incompatibly. */
#define PARLEY_MODULE_ABI 2

struct module;
struct session;
struct stream;

/* ---- options: declared as a table, checked by the core ---- */

enum module_opt_type { OPT_BOOL, OPT_INT, OPT_STRING, OPT_DURATION, OPT_SIZE };

struct module_option {
	const char *name;
	enum module_opt_type type;
	const char *def;		/* default, as it would be written in the config */
	long long min, max;		/* OPT_INT, OPT_DURATION, OPT_SIZE */
	const char *doc;		/* one line for `parleyctl modules` and the man page */
};

struct module_def {
	unsigned abi;			/* PARLEY_MODULE_ABI of the build */
	const char *name;		/* "ping" for mod_ping.so */
	const char *description;	/* one line */
	const struct module_option *options;	/* terminated by { NULL } */
	const char *const *depends;	/* other modules this one needs, NULL-terminated */
	int (*load)(struct module *m);	/* 0, or -1 to refuse (logged) */
	void (*unload)(struct module *m);
};

#define PARLEY_MODULE(n, ...) \
	const struct module_def parley_module = { .abi = PARLEY_MODULE_ABI, .name = #n, \
						   __VA_ARGS__ }

const char *module_host(const struct module *m);
const char *module_name(const struct module *m);
bool module_opt_bool(const struct module *m, const char *name);
long long module_opt_int(const struct module *m, const char *name); /* INT, DURATION (s), SIZE */
const char *module_opt_str(const struct module *m, const char *name);
/* Per-host state; free_fn (may be NULL) runs when the instance unloads. */
void module_set_data(struct module *m, void *data, void (*free_fn)(void *));
void *module_data(const struct module *m);

/* ---- disco: what the host advertises while the module is loaded ---- */

void module_feature(struct module *m, const char *var);
/* Features of a user's account (disco#info to a bare JID). */
void module_account_feature(struct module *m, const char *var);
void module_identity(struct module *m, const char *category, const char *type,
		     const char *name);
/* The identity of a user account on this host (XEP-0030: account/registered). */
void module_account_identity(struct module *m, const char *category, const char *type);
/* Fills a disco#info <query/> with the identities and features of the module's
 * host (account: those of a user account on it). */
void module_disco_info(const struct module *m, bool account, struct xml_node *query);

/* ---- hooks: run in priority order (higher first) until one returns HOOK_STOP ---- */

enum hook {
	HOOK_STREAM_FEATURES,	/* c2s features (a->preauth: before SASL): add to a->result */
	HOOK_SESSION_BOUND,	/* a resource was bound (a->sess) */
	HOOK_SESSION_CLOSED,	/* a session ended, however (a->sess, a->reason) */
	HOOK_C2S_ELEMENT,	/* a top-level non-stanza element from a client (XEP-0198) */
	HOOK_USER_SEND,		/* a stanza from a local client, before routing */
	HOOK_USER_RECV,		/* a stanza about to be written to a local session */
	HOOK_OFFLINE_MESSAGE,	/* a message for a local user with no available resource */
	HOOK_PRESENCE_IN,	/* presence for a local user's bare JID */
	HOOK_USER_REMOVED,	/* an account was deleted (a->user) */
	/* The connection of a bound session is lost (not closed by the client): a
	 * module that returns HOOK_STOP keeps the session, detached, and must end
	 * it later (session_close). */
	HOOK_SESSION_LOST,
	HOOK_SESSION_SETTLED,	/* session_settled(a->sess) grew (XEP-0198 acks) */
	/* A non-stanza element from an authenticated client before it bound a
	 * resource (a->user, a->stream): XEP-0198 <resume/>. */
	HOOK_C2S_PREBIND,
	HOOK_COUNT
};

enum { HOOK_PASS = 0, HOOK_STOP = 1 };

struct hook_args {
	const char *host;
	struct session *sess;		/* the local session concerned, or NULL */
	struct xml_node *stanza;	/* the stanza, or NULL */
	const struct jid *from, *to;
	struct xml_node *result;	/* where a hook adds children, or NULL */
	const char *user;		/* HOOK_USER_REMOVED: the localpart */
	const char *reason;		/* HOOK_SESSION_CLOSED: why, for the log */
	bool preauth;			/* HOOK_STREAM_FEATURES: before authentication */
	struct stream *stream;		/* HOOK_C2S_PREBIND: the stream, for session_resume */
};

typedef int (*hook_fn)(struct module *m, struct hook_args *a);

void module_hook(struct module *m, enum hook h, int priority, hook_fn fn);
/* Runs a hook's handlers for host (a module may raise one: mod_stream_mgmt hands
 * unacknowledged messages to HOOK_OFFLINE_MESSAGE). HOOK_STOP if one took it. */
int hooks_run(const char *host, enum hook h, struct hook_args *a);

/* ---- IQ handlers, by (host, type, payload namespace) ---- */

enum iq_type { IQ_GET, IQ_SET };

struct iq {
	struct module *m;		/* the handler's module instance */
	struct xml_node *stanza;	/* the whole <iq/> */
	struct xml_node *payload;	/* its first child element */
	/* The sender (full JID); NULL for a client that has not authenticated yet,
	 * which only reaches jabber:iq:register handlers (in-band registration). */
	const struct jid *from;
	const struct jid *to;		/* server scope: the domain; account: the bare JID */
	const char *address;		/* the client's IP when it came from a local stream */
	enum iq_type type;
};

/*
 * A handler answers with iq_reply() or iq_error(), now or later (after a database
 * query), exactly once; that sends the answer and frees the iq. A handler that
 * returns -1 without answering gets internal-server-error sent for it.
 */
typedef int (*iq_fn)(struct iq *iq);

/* IQs to the host's domain (to='example.com'). */
void module_iq(struct module *m, enum iq_type type, const char *ns, iq_fn fn);
/* IQs to a local account's bare JID, or with no 'to' (the sender's own account). */
void module_account_iq(struct module *m, enum iq_type type, const char *ns, iq_fn fn);

/* payload (owned, may be NULL) becomes the child of <iq type='result'/>. */
int iq_reply(struct iq *iq, struct xml_node *payload);
/* condition: RFC 6120 §8.3.3 name; the type is the condition's default. */
int iq_error(struct iq *iq, const char *condition, const char *text);

#endif

/*
 * module.h - the interface between the core and a module (DESIGN.md).
 *
 * A module is a shared object mod_NAME.so that declares itself with
 * PARLEY_MODULE(), and is instantiated once per virtual host that enables it.
 * In load() it registers disco features, hooks, IQ handlers and timers; the core
 * removes every registration of an instance when it unloads, so unload() is only
 * for state the module made itself (module_set_data's free function covers most).
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
 * stanza.h, session.h, stream.h, router.h, db.h, log.h) and run on the event
 * loop: nothing they do may block. They wait through module_timer() and the
 * db_* callbacks, never through libevent or a socket of their own.
 */
#ifndef PARLEY_MODULE_H
#define PARLEY_MODULE_H

#include <stdbool.h>
#include <stddef.h>

#include "jid.h"
#include "xml.h"

/* Bumped whenever a struct or function below changes incompatibly. */
#define PARLEY_MODULE_ABI 4

struct module;
struct session;
struct stream;
struct db;

/*
 * ---- options: declared as a table, resolved once at load ----
 *
 * Each option names a field of the module's own options struct; the core
 * parses and checks the config's value (or the default) into it before load()
 * runs, so a module reads typed values and never looks an option up by name:
 *
 *	struct ping_options { long long interval; bool verbose; };
 *	static const struct module_option options[] = {
 *		{ "interval", OPT_DURATION, "60", 1, 3600,
 *		  MODULE_OPTION_AT(struct ping_options, interval), "seconds between pings" },
 *		{ NULL },
 *	};
 *	... const struct ping_options *o = module_options(m);
 *
 * Field types: OPT_BOOL a bool; OPT_INT, OPT_DURATION (seconds) and OPT_SIZE
 * (bytes) a long long; OPT_STRING a const char * (owned by the core).
 */
enum module_opt_type { OPT_BOOL, OPT_INT, OPT_STRING, OPT_DURATION, OPT_SIZE };

struct module_option {
	const char *name;
	enum module_opt_type type;
	const char *def;		/* default, as it would be written in the config */
	long long min, max;		/* OPT_INT, OPT_DURATION, OPT_SIZE */
	size_t offset;			/* of the field in the options struct */
	const char *doc;		/* one line for `parleyctl modules` and the man page */
};

#define MODULE_OPTION_AT(type, field) offsetof(type, field)

struct module_def {
	unsigned abi;			/* PARLEY_MODULE_ABI of the build */
	const char *name;		/* "ping" for mod_ping.so */
	const char *description;	/* one line */
	const struct module_option *options;	/* terminated by { NULL } */
	size_t options_size;		/* sizeof the struct the options fill */
	/* A module that serves a domain of its own (MUC, upload): the default
	 * label of its subdomain ("conference" -> conference.HOST), which the
	 * config's domain="..." replaces. Its disco entries and IQ handlers are
	 * the service's; its hooks are still the host's. */
	const char *service;
	const char *const *depends;	/* other modules this one needs, NULL-terminated */
	int (*load)(struct module *m);	/* 0, or -1 to refuse (logged) */
	void (*unload)(struct module *m);
};

#define PARLEY_MODULE(n, ...) \
	const struct module_def parley_module = { .abi = PARLEY_MODULE_ABI, .name = #n, \
						   __VA_ARGS__ }

const char *module_host(const struct module *m);	/* the host that enabled it */
/* The domain it serves: its service's (conference.example.com), else the host. */
const char *module_domain(const struct module *m);
const char *module_name(const struct module *m);
/* The options struct the table filled (NULL if the module declares none). */
const void *module_options(const struct module *m);
/* Per-host state; free_fn (may be NULL) runs when the instance unloads.
 * Sessions end before any instance unloads (at shutdown), so per-session data
 * (session_set_data) may hold the instance's timers and free them itself. */
void module_set_data(struct module *m, void *data, void (*free_fn)(void *));
void *module_data(const struct module *m);
/* The database pool, for db_prepare() and db_exec_prepared(). */
struct db *module_db(const struct module *m);
/* When this parleyd started (XEP-0012 uptime). */
long long module_started(void);

/* ---- timers: a module's way to wait; stopped and freed with the instance ---- */

struct module_timer;
typedef void (*timer_fn)(struct module *m, void *arg);

/* A stopped timer of the instance; NULL without memory (logged). */
struct module_timer *module_timer_new(struct module *m, timer_fn fn, void *arg);
/* Fires fn after ms milliseconds (0: on the next turn of the loop), then every
 * ms if repeat; re-arming replaces what was set. */
void module_timer_start(struct module_timer *t, unsigned long ms, bool repeat);
void module_timer_stop(struct module_timer *t);
/* Frees it now (otherwise the instance's unload does); NULL is fine. */
void module_timer_free(struct module_timer *t);

/* ---- disco: what the host advertises while the module is loaded ---- */

/* Each returns 0, or -1 without memory. */
int module_feature(struct module *m, const char *var);
/* Features of a user's account (disco#info to a bare JID). */
int module_account_feature(struct module *m, const char *var);
int module_identity(struct module *m, const char *category, const char *type,
		    const char *name);
/* The identity of a user account on this host (XEP-0030: account/registered). */
int module_account_identity(struct module *m, const char *category, const char *type);
/* Fills a disco#info <query/> with the identities and features of the module's
 * domain (account: those of a user account on it). */
void module_disco_info(const struct module *m, bool account, struct xml_node *query);
/* Adds an <item jid/> to a disco#items <query/> for each service of the
 * module's host (conference.example.com...). */
void module_disco_services(const struct module *m, struct xml_node *query);

/* ---- services: stanzas to JIDs at a service's domain ---- */

/* A service module's handler for every stanza to room@conference.HOST/nick or
 * any JID at its domain with a localpart or resource, and for messages and
 * presence to the bare domain; IQs to the bare domain go to its IQ handlers.
 * The handler may keep the stanza (xml_ref). HOOK_STOP if it took it, HOOK_PASS
 * to have the core answer service-unavailable. */
typedef int (*stanza_fn)(struct module *m, struct xml_node *stanza, const struct jid *from,
			 const struct jid *to);
int module_stanza(struct module *m, stanza_fn fn);

/*
 * ---- hooks: run in priority order (higher first) until one returns HOOK_STOP ----
 *
 * Every hook gets a struct hook_args with ->host set; the table says which
 * other fields each one fills (the rest are NULL/false). A field means the
 * same in every hook that has it.
 *
 *	hook			sess	stanza	from	to	other
 *	STREAM_FEATURES		-	-	-	-	result (<features/>), preauth
 *	SESSION_BOUND		yes	-	sess	-
 *	SESSION_CLOSED		yes	-	sess	-	reason
 *	SESSION_LOST		yes	-	sess	-	reason
 *	SESSION_SETTLED		yes	-	sess	-
 *	C2S_ELEMENT		yes	element	sess	-
 *	C2S_PREBIND		-	element	-	-	user, stream
 *	USER_SEND		yes	yes	sess	to|NULL
 *	USER_RECV		yes	yes	-	sess
 *	OFFLINE_MESSAGE		-	yes	yes	bare
 *	PRESENCE_IN		-	yes	yes	bare
 *	USER_REMOVED		-	-	-	bare	user
 *	SERVER_STOPPING		-	-	-	-
 *
 * "sess" in from/to: the session's full JID; "bare": the local account's.
 */
enum hook {
	HOOK_STREAM_FEATURES,	/* a client's stream features: add children to ->result;
				 * ->preauth before SASL */
	HOOK_SESSION_BOUND,	/* a resource was bound */
	HOOK_SESSION_CLOSED,	/* a session ended, however; ->reason for the log */
	HOOK_C2S_ELEMENT,	/* a top-level non-stanza element from a bound client
				 * (XEP-0198 <r/>, <a/>, <enable/>) */
	HOOK_USER_SEND,		/* a stanza from a local client, before routing */
	HOOK_USER_RECV,		/* a stanza about to be written to a local session */
	HOOK_OFFLINE_MESSAGE,	/* a message for a local account with no resource to
				 * take it: HOOK_STOP if stored */
	HOOK_PRESENCE_IN,	/* presence for a local account's bare JID */
	HOOK_USER_REMOVED,	/* the account ->user (bare JID ->to) was deleted:
				 * remove what the module keeps for it */
	/* The connection of a bound session is lost (not closed by the client): a
	 * module that returns HOOK_STOP keeps the session, detached, and must end
	 * it later (session_close). */
	HOOK_SESSION_LOST,
	HOOK_SESSION_SETTLED,	/* session_settled(->sess) grew (XEP-0198 acks) */
	/* A non-stanza element from an authenticated client before it bound a
	 * resource (->user, ->stream): XEP-0198 <resume/>. */
	HOOK_C2S_PREBIND,
	/* parleyd is shutting down (SIGTERM): streams are still open, and what a
	 * module sends now goes out before their <system-shutdown/>. */
	HOOK_SERVER_STOPPING,
	HOOK_COUNT
};

enum { HOOK_PASS = 0, HOOK_STOP = 1 };

struct hook_args {
	const char *host;		/* the host whose hooks run */
	struct session *sess;		/* the local session concerned */
	struct xml_node *stanza;	/* the stanza or element concerned */
	const struct jid *from, *to;	/* its sender and recipient (table above) */
	struct xml_node *result;	/* STREAM_FEATURES: where children go */
	const char *user;		/* the account's localpart */
	const char *reason;		/* why a session ended, for the log */
	bool preauth;			/* STREAM_FEATURES: before authentication */
	struct stream *stream;		/* C2S_PREBIND: the stream, for session_resume */
};

typedef int (*hook_fn)(struct module *m, struct hook_args *a);

/* Registers fn on the module's host (a service module's too). Returns 0, or -1
 * without memory: load() should then fail. */
int module_hook(struct module *m, enum hook h, int priority, hook_fn fn);
/* Runs a hook's handlers for host (a module may raise one: mod_stream_mgmt hands
 * unacknowledged messages to HOOK_OFFLINE_MESSAGE). HOOK_STOP if one took it. */
int hooks_run(const char *host, enum hook h, struct hook_args *a);

/*
 * ---- admin commands: `parleyctl NAME ARG...`, answered on the control socket ----
 * A module serves a command word (mod_muc: "muc", for `parleyctl muc rooms`).
 * Each instance that registered the word is asked in turn, with the words after
 * it, until one returns 0 (done) or -1 (failed, after ctl_fail); CTL_PASS means
 * "not mine" (a room of another host's service) or "mine too, ask the others"
 * (a listing of every service's rooms). The handler runs on the loop and answers
 * now: it reads what the module holds in memory, it does not wait for a query.
 * The reply is text or JSON as parleyctl asked (--json); the core frames the JSON
 * as {"ok":true, ...what the handler wrote...} and an error as
 * {"ok":false,"error":"..."}, so a handler writes its fields with a leading comma:
 *	if (ctl_json(r)) { ctl_printf(r, ",\"name\":"); ctl_str(r, name); }
 *	else ctl_printf(r, "name  %s\n", name);
 */
struct ctl_reply;
#define CTL_PASS 1
typedef int (*command_fn)(struct module *m, struct ctl_reply *r, int argc, char **argv);

int module_command(struct module *m, const char *word, command_fn fn);
bool ctl_json(const struct ctl_reply *r);
void ctl_printf(struct ctl_reply *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A JSON string (quoted and escaped), or null for NULL. */
void ctl_str(struct ctl_reply *r, const char *s);
/* A list that every asked instance adds to: in JSON ,"key":[ written once (the
 * core closes it), in text the header line written once. Listing claims the
 * request: an empty list is an answer, not "no such thing". */
void ctl_list(struct ctl_reply *r, const char *key, const char *header);
/* Before each item of the list in JSON: the comma between items. */
void ctl_item(struct ctl_reply *r);
/* The request failed: msg replaces whatever was written. Returns -1. */
int ctl_fail(struct ctl_reply *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * ---- metrics: samples a module adds to /metrics (admin HTTP listeners) ----
 * fn runs at each scrape, on the loop: it reads what the module counts in
 * memory and calls metrics_sample() for each figure. The family's HELP and
 * TYPE lines go once per scrape, and every sample carries the instance's host
 * as a label (host="example.com"), so each host's instance may add the same
 * names.
 */
struct metrics;
typedef void (*metrics_fn)(struct module *m, struct metrics *out);

int module_metrics(struct module *m, metrics_fn fn);
/* type is "counter" or "gauge"; name follows Prometheus (parley_offline_...). */
void metrics_sample(struct metrics *out, const struct module *m, const char *name,
		    const char *type, const char *help, double value);

/* ---- IQ handlers, by (domain, type, payload namespace) ---- */

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

/* IQs to the module's domain (to='example.com', or its service's). These and
 * the registrations below return 0, or -1 without memory or when another
 * module already handles the same (logged): load() should then fail. */
int module_iq(struct module *m, enum iq_type type, const char *ns, iq_fn fn);
/* IQs to a local account's bare JID, or with no 'to' (the sender's own account). */
int module_account_iq(struct module *m, enum iq_type type, const char *ns, iq_fn fn);

/* payload (owned, may be NULL) becomes the child of <iq type='result'/>. */
int iq_reply(struct iq *iq, struct xml_node *payload);
/* condition: RFC 6120 §8.3.3 name; the type is the condition's default. */
int iq_error(struct iq *iq, const char *condition, const char *text);
/* The same with the error's type (NULL: the condition's default) and an
 * application-specific child (owned, may be NULL) in the <error/> (RFC 6120
 * §8.3.2: XEP-0363's <file-too-large/>). */
int iq_error_app(struct iq *iq, const char *type, const char *condition, const char *text,
		 struct xml_node *app);

#endif

/*
 * config.h - the XML config file, parsed into typed, validated structs.
 *
 * config_load() reads the whole file, checks every element, attribute and value,
 * and returns either a config or the list of every problem, each as
 * "FILE:LINE: message". Unknown elements and attributes, bad values, missing
 * files (certificates) and duplicate hosts are errors, never warnings: a typo in
 * a config must not silently change what the server does.
 *
 * Module options are kept as (name, value, line) triples here; the module system
 * checks them against each module's option table when it loads the module.
 */
#ifndef PARLEY_CONFIG_H
#define PARLEY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "log.h"

enum listener_type {
	LISTEN_C2S, LISTEN_S2S, LISTEN_HTTP, LISTEN_COMPONENT,
	LISTEN_TYPE_COUNT
};

enum tls_mode {
	TLS_NONE,	/* plain text only (loopback tests, behind a TLS proxy) */
	TLS_STARTTLS,	/* STARTTLS offered and required before authentication */
	TLS_OPTIONAL,	/* STARTTLS offered, plain authentication allowed */
	TLS_DIRECT,	/* TLS from the first byte (XEP-0368, HTTPS) */
};

struct config_listener {
	enum listener_type type;
	char *address;		/* "::", "0.0.0.0", "127.0.0.1", ... */
	unsigned port;
	enum tls_mode tls;
	bool admin;		/* http: also serves /metrics and /health */
	unsigned line;
};

struct config_option {
	char *name;
	char *value;
	unsigned line;
};

struct config_module {
	char *name;
	struct config_option *options;
	size_t noptions;
	unsigned line;
};

struct config_host {
	char *name;		/* prepared (nameprep'd) domain */
	char *cert, *key;	/* PEM files; NULL: the global certificate */
	struct config_module *modules;
	size_t nmodules;
	unsigned line;
};

struct config_limits {
	size_t stanza_size;		/* bytes of one stanza */
	unsigned depth;			/* element nesting inside a stanza */
	unsigned attributes;		/* attributes per element */
	unsigned connections_per_ip;
	unsigned idle_timeout;		/* seconds without a byte before a ping/close */
	unsigned auth_attempts;		/* failed logins per address and minute */
};

/* <websocket/> and <bosh/>: the web transports on the http listeners. */
struct config_web {
	bool enabled;
	char *path;			/* "/xmpp-websocket", "/http-bind" */
	char *origins;			/* space-separated allowed Origins; NULL: any */
	char *url;			/* what host-meta advertises; NULL: from Host */
	char *see_other_uri;		/* websocket: send clients there instead */
	/* bosh: the bounds of what a client may ask for (XEP-0124 §7) */
	unsigned max_wait, max_hold, max_requests, max_inactivity, max_pause, polling;
};

/* <s2s/>: federation (RFC 6120 server-to-server streams) and its policy. */
struct config_s2s {
	bool enabled;			/* false: no federation at all */
	bool secure_auth;		/* peers must present a valid certificate */
	bool stream_mgmt;		/* XEP-0198 on s2s streams where offered */
	char *insecure_domains;		/* space-separated: dialback without a valid cert */
	char *allow;			/* space-separated: only these domains; NULL: any */
	char *deny;			/* space-separated: never these domains */
	char *ca_file, *ca_path;	/* trust anchors; NULL: the system's */
	unsigned connect_timeout;	/* seconds to an authenticated outgoing stream */
	unsigned idle_timeout;		/* seconds without a stanza before closing */
	unsigned queue;			/* stanzas waiting per remote domain */
	unsigned retry_max;		/* the longest back-off between attempts, seconds */
	unsigned line;			/* of <s2s>, 0 when absent */
};

/* <dns/>: where c-ares sends its queries. */
struct config_dns {
	char *servers;			/* "127.0.0.1:5353,[::1]:53"; NULL: resolv.conf */
	unsigned timeout_ms;		/* per query and server */
	unsigned tries;
	unsigned line;			/* of <dns>, 0 when absent */
};

/* <component domain secret/>: an external component (XEP-0114). */
struct config_component {
	char *domain;			/* prepared */
	char *secret;
	unsigned line;
};

struct config {
	char *path;
	/* <log> */
	enum log_level log_level;
	char *log_file;			/* NULL: stderr */
	/* <control> */
	char *ctl_socket;
	/* <modules> */
	char *module_dir;
	/* <tls> */
	char *cert, *key;		/* default certificate for hosts without one */
	char *ciphers;			/* TLS 1.2 cipher list */
	/* <database> */
	char *db_conninfo;
	unsigned db_pool;
	/* <limits> */
	struct config_limits limits;
	struct config_web websocket, bosh;
	struct config_s2s s2s;
	struct config_dns dns;
	struct config_component *components;
	size_t ncomponents;
	struct config_listener *listeners;
	size_t nlisteners;
	struct config_host *hosts;
	size_t nhosts;
};

/* Collected problems, each a malloc'd "FILE:LINE: message". */
struct config_errors {
	char **msgs;
	size_t count;
};

/* Returns the config, or NULL with every problem in errs (which the caller
 * frees with config_errors_free). */
struct config *config_load(const char *path, struct config_errors *errs);
void config_free(struct config *cfg);
void config_errors_free(struct config_errors *errs);
/* Appends "PATH:LINE: message" to errs (nothing if memory runs out): every
 * part of the core that checks the config reports through this. */
void config_error(struct config_errors *errs, const char *path, unsigned line,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

const struct config_host *config_host_find(const struct config *cfg, const char *name);
const char *config_listener_type_name(enum listener_type t);
const char *config_tls_mode_name(enum tls_mode m);
/* Whether origin (an Origin header's value; NULL when none was sent) is one
 * the transport accepts. */
bool config_origin_allowed(const struct config_web *w, const char *origin);
/* Whether the domain is a word of list (space-separated; NULL: in none).
 * Case-insensitive: list entries are domains. */
bool config_list_has(const char *list, const char *domain);
/* Whether the s2s policy lets us talk to the domain at all (enabled, allow,
 * deny). */
bool config_s2s_allowed(const struct config_s2s *s, const char *domain);
/* A component of the config by domain, or NULL. */
const struct config_component *config_component_find(const struct config *cfg,
						     const char *domain);

#endif

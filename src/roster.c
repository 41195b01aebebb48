/*
 * roster.c - rosters and subscription states, cached while referenced.
 *
 * The cache is a small hash table keyed by "host\x1fuser". Loading is
 * asynchronous; callers that ask while a load is under way wait on the same
 * load. Writes go to the pool with the account's affinity, so they commit in
 * the order they were made.
 */
#include "roster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "db.h"
#include "jid.h"
#include "log.h"
#include "server.h"
#include "session.h"
#include "stanza.h"
#include "util.h"
#include "xml.h"

#define GROUP_SEP "\x1f"

struct waiter {
	roster_cb cb;
	void *arg;
	struct waiter *next;
};

struct roster {
	char *key;			/* host \x1f user */
	char *host, *user;
	struct roster_item *items;
	uint64_t version;
	int refs;
	bool loaded;
	struct waiter *waiters;		/* callers waiting for the load */
	struct roster *next;		/* hash chain */
};

#define BUCKETS 4096
static struct roster *cache[BUCKETS];

static const char sql_load[] =
	"SELECT r.contact, r.name, r.groups, r.sub, r.ask_out, r.pending_in, r.approved, "
	"r.in_roster, v.version FROM users u "
	"LEFT JOIN roster r ON r.host = u.host AND r.username = u.username "
	"LEFT JOIN roster_version v ON v.host = u.host AND v.username = u.username "
	"WHERE u.host = $1 AND u.username = $2";
static const char sql_save[] =
	"INSERT INTO roster (host, username, contact, name, groups, sub, ask_out, pending_in, "
	"approved, in_roster) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
	"ON CONFLICT (host, username, contact) DO UPDATE SET name = $4, groups = $5, sub = $6, "
	"ask_out = $7, pending_in = $8, approved = $9, in_roster = $10";
static const char sql_bump[] =
	"INSERT INTO roster_version (host, username, version) VALUES ($1, $2, $3) "
	"ON CONFLICT (host, username) DO UPDATE SET version = $3";
static const char sql_delete[] =
	"DELETE FROM roster WHERE host = $1 AND username = $2 AND contact = $3";

int roster_init(void)
{
	if (db_prepare(server.db, "roster_load", sql_load, 2) < 0 ||
	    db_prepare(server.db, "roster_save", sql_save, 10) < 0 ||
	    db_prepare(server.db, "roster_bump", sql_bump, 3) < 0 ||
	    db_prepare(server.db, "roster_delete", sql_delete, 3) < 0)
		return -1;
	return 0;
}

static uint32_t hash(const char *s)
{
	return util_hash32(s, strlen(s));
}

/* The same account always lands on the same pool connection: ordered writes. */
static uint64_t affinity(const struct roster *r)
{
	return (uint64_t)hash(r->key) | 1;
}

static void item_free(struct roster_item *it)
{
	free(it->contact);
	free(it->name);
	for (unsigned i = 0; i < it->ngroups; i++)
		free(it->groups[i]);
	free(it->pending_in);
	free(it);
}

static void roster_free(struct roster *r)
{
	struct roster **pp = &cache[hash(r->key) % BUCKETS];

	for (; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	}
	while (r->items) {
		struct roster_item *n = r->items->next;

		item_free(r->items);
		r->items = n;
	}
	free(r->key);
	free(r->host);
	free(r->user);
	free(r);
}

struct roster *roster_ref(struct roster *r)
{
	r->refs++;
	return r;
}

void roster_unref(struct roster *r)
{
	if (r && --r->refs <= 0)
		roster_free(r);
}

static char *make_key(const char *host, const char *user)
{
	char *k;

	return asprintf(&k, "%s" GROUP_SEP "%s", host, user) < 0 ? NULL : k;
}

static struct roster *lookup(const char *key)
{
	for (struct roster *r = cache[hash(key) % BUCKETS]; r; r = r->next)
		if (strcmp(r->key, key) == 0)
			return r;
	return NULL;
}

struct roster *roster_cached(const char *host, const char *user)
{
	char *key = make_key(host, user);
	struct roster *r = key ? lookup(key) : NULL;

	free(key);
	return r && r->loaded ? r : NULL;
}

static void split_groups(struct roster_item *it, const char *g)
{
	while (*g && it->ngroups < ROSTER_GROUPS_MAX) {
		size_t n = strcspn(g, GROUP_SEP);

		it->groups[it->ngroups] = strndup(g, n);
		if (it->groups[it->ngroups])
			it->ngroups++;
		g += n;
		if (*g)
			g++;
	}
}

static enum roster_sub parse_sub(const char *s)
{
	return !strcmp(s, "to") ? ROSTER_TO : !strcmp(s, "from") ? ROSTER_FROM
		: !strcmp(s, "both") ? ROSTER_BOTH : ROSTER_NONE;
}

static void on_loaded(void *arg, const PGresult *res, const char *err)
{
	struct roster *r = arg;
	struct waiter *w = r->waiters;
	bool ok = res && PQresultStatus(res) == PGRES_TUPLES_OK;
	bool exists = ok && PQntuples(res) > 0;

	r->waiters = NULL;
	if (!ok)
		log_error("roster", "%s@%s: cannot load the roster: %s", r->user, r->host,
			  res ? PQresultErrorMessage(res) : err);
	for (int i = 0; exists && i < PQntuples(res); i++) {
		struct roster_item *it;

		if (!PQgetisnull(res, i, 8))
			r->version = strtoull(PQgetvalue(res, i, 8), NULL, 10);
		if (PQgetisnull(res, i, 0))
			continue;	/* an account with an empty roster */
		it = calloc(1, sizeof(*it));
		if (!it)
			break;
		it->contact = strdup(PQgetvalue(res, i, 0));
		if (!PQgetisnull(res, i, 1))
			it->name = strdup(PQgetvalue(res, i, 1));
		split_groups(it, PQgetvalue(res, i, 2));
		it->sub = parse_sub(PQgetvalue(res, i, 3));
		it->ask_out = PQgetvalue(res, i, 4)[0] == 't';
		if (!PQgetisnull(res, i, 5))
			it->pending_in = strdup(PQgetvalue(res, i, 5));
		it->approved = PQgetvalue(res, i, 6)[0] == 't';
		it->in_roster = PQgetvalue(res, i, 7)[0] == 't';
		it->next = r->items;
		r->items = it;
	}
	r->loaded = ok && exists;
	/* Every waiter holds a reference taken in roster_load(). */
	while (w) {
		struct waiter *next = w->next;

		if (r->loaded) {
			w->cb(w->arg, r, true);
		} else {
			w->cb(w->arg, NULL, ok ? false : true);
			roster_unref(r);
		}
		free(w);
		w = next;
	}
}

int roster_load(const char *host, const char *user, roster_cb cb, void *arg)
{
	char *key = make_key(host, user);
	struct roster *r;
	struct waiter *w;
	const char *params[2] = { host, user };

	if (!key)
		return -1;
	r = lookup(key);
	if (r && r->loaded) {
		free(key);
		cb(arg, roster_ref(r), true);
		return 0;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		free(key);
		return -1;
	}
	w->cb = cb;
	w->arg = arg;
	if (r) {
		/* A load is under way: wait for it. */
		free(key);
		w->next = r->waiters;
		r->waiters = w;
		roster_ref(r);
		return 0;
	}
	r = calloc(1, sizeof(*r));
	if (!r || !(r->host = strdup(host)) || !(r->user = strdup(user))) {
		if (r) {
			free(r->host);
			free(r);
		}
		free(key);
		free(w);
		return -1;
	}
	r->key = key;
	r->refs = 1;
	r->waiters = w;
	r->next = cache[hash(key) % BUCKETS];
	cache[hash(key) % BUCKETS] = r;
	if (db_exec_prepared(server.db, affinity(r), "roster_load", 2, params, on_loaded, r)
	    < 0) {
		r->waiters = NULL;
		free(w);
		roster_unref(r);
		return -1;
	}
	return 0;
}

const char *roster_host(const struct roster *r) { return r->host; }
const char *roster_user(const struct roster *r) { return r->user; }
struct roster_item *roster_items(const struct roster *r) { return r->items; }
uint64_t roster_version(const struct roster *r) { return r->version; }

struct roster_item *roster_find(const struct roster *r, const char *contact)
{
	for (struct roster_item *it = r->items; it; it = it->next)
		if (strcmp(it->contact, contact) == 0)
			return it;
	return NULL;
}

unsigned roster_count(const struct roster *r)
{
	unsigned n = 0;

	for (struct roster_item *it = r->items; it; it = it->next)
		n += it->in_roster;
	return n;
}

struct roster_item *roster_touch(struct roster *r, const char *contact)
{
	struct roster_item *it = roster_find(r, contact);

	if (it)
		return it;
	it = calloc(1, sizeof(*it));
	if (!it || !(it->contact = strdup(contact))) {
		free(it);
		return NULL;
	}
	it->in_roster = false;
	it->next = r->items;
	r->items = it;
	return it;
}

struct done_req {
	void (*done)(void *arg, int rc);
	void *arg;
};

static void on_written(void *arg, const PGresult *res, const char *err)
{
	struct done_req *d = arg;
	int rc = res && PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;

	if (rc < 0)
		log_error("roster", "cannot store a roster change: %s",
			  res ? PQresultErrorMessage(res) : err);
	if (d) {
		if (d->done)
			d->done(d->arg, rc);
		free(d);
	}
}

static struct done_req *done_req(void (*done)(void *, int), void *arg)
{
	struct done_req *d;

	if (!done)
		return NULL;
	d = malloc(sizeof(*d));
	if (d) {
		d->done = done;
		d->arg = arg;
	}
	return d;
}

/* The new version goes out with the change it counts, on the same connection. */
static int bump(struct roster *r)
{
	char v[24];
	const char *params[3] = { r->host, r->user, v };

	r->version++;
	snprintf(v, sizeof(v), "%llu", (unsigned long long)r->version);
	return db_exec_prepared(server.db, affinity(r), "roster_bump", 3, params, on_written,
				NULL);
}

int roster_save(struct roster *r, struct roster_item *it, bool bump_version,
		void (*done)(void *arg, int rc), void *arg)
{
	char groups[ROSTER_GROUPS_MAX * 1024 + ROSTER_GROUPS_MAX] = "";
	size_t len = 0;
	const char *params[10];

	for (unsigned i = 0; i < it->ngroups; i++)
		len += (size_t)snprintf(groups + len, sizeof(groups) - len, "%s%s",
					i ? GROUP_SEP : "", it->groups[i]);
	params[0] = r->host;
	params[1] = r->user;
	params[2] = it->contact;
	params[3] = it->name;
	params[4] = groups;
	params[5] = roster_sub_name(it->sub);
	params[6] = it->ask_out ? "t" : "f";
	params[7] = it->pending_in;
	params[8] = it->approved ? "t" : "f";
	params[9] = it->in_roster ? "t" : "f";
	if (bump_version && bump(r) < 0)
		return -1;
	return db_exec_prepared(server.db, affinity(r), "roster_save", 10, params, on_written,
				done_req(done, arg));
}

int roster_delete(struct roster *r, const char *contact, void (*done)(void *arg, int rc),
		  void *arg)
{
	const char *params[3] = { r->host, r->user, contact };

	for (struct roster_item **pp = &r->items; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->contact, contact) == 0) {
			struct roster_item *it = *pp;

			*pp = it->next;
			item_free(it);
			break;
		}
	}
	if (bump(r) < 0)
		return -1;
	return db_exec_prepared(server.db, affinity(r), "roster_delete", 3, params,
				on_written, done_req(done, arg));
}

struct xml_node *roster_item_xml(const struct roster_item *it, const char *contact,
				 bool remove)
{
	struct xml_node *x = xml_new("item", NS_ROSTER);

	if (!x)
		return NULL;
	xml_attr_set(x, "jid", it ? it->contact : contact);
	if (remove || !it) {
		xml_attr_set(x, "subscription", "remove");
		return x;
	}
	if (it->name)
		xml_attr_set(x, "name", it->name);
	xml_attr_set(x, "subscription", roster_sub_name(it->sub));
	if (it->ask_out)
		xml_attr_set(x, "ask", "subscribe");
	if (it->approved)
		xml_attr_set(x, "approved", "true");
	for (unsigned i = 0; i < it->ngroups; i++) {
		struct xml_node *g = xml_add_child(x, "group", NULL);

		if (g)
			xml_add_text(g, it->groups[i], strlen(it->groups[i]));
	}
	return x;
}

void roster_push(const struct roster *r, const struct roster_item *it, const char *contact,
		 bool remove)
{
	struct session *list[SESSION_RESOURCES_MAX];
	struct jid *bare = jid_make(r->user, r->host, NULL, NULL);
	size_t n = bare ? sm_user_sessions(bare, list, SESSION_RESOURCES_MAX) : 0;
	char ver[24], id[24];
	unsigned char rnd[8];

	snprintf(ver, sizeof(ver), "%llu", (unsigned long long)r->version);
	for (size_t i = 0; i < n && i < SESSION_RESOURCES_MAX; i++) {
		struct xml_node *iq, *q, *item;

		if (!session_interested(list[i]))
			continue;
		iq = xml_new("iq", NS_CLIENT);
		q = iq ? xml_add_child(iq, "query", NS_ROSTER) : NULL;
		item = q ? roster_item_xml(it, contact, remove) : NULL;
		if (!item) {
			xml_unref(iq);
			continue;
		}
		xml_append(q, item);
		xml_attr_set(q, "ver", ver);
		RAND_bytes(rnd, sizeof(rnd));
		snprintf(id, sizeof(id), "push%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
			 rnd[3], rnd[4], rnd[5]);
		xml_attr_set(iq, "type", "set");
		xml_attr_set(iq, "id", id);
		xml_attr_set(iq, "to", session_jid(list[i])->full);
		session_send(list[i], iq);
		xml_unref(iq);
	}
	jid_free(bare);
}

bool roster_sub_from(enum roster_sub s) { return s == ROSTER_FROM || s == ROSTER_BOTH; }
bool roster_sub_to(enum roster_sub s) { return s == ROSTER_TO || s == ROSTER_BOTH; }

const char *roster_sub_name(enum roster_sub s)
{
	static const char *const names[] = { "none", "to", "from", "both" };

	return (unsigned)s < 4 ? names[s] : "none";
}

void roster_shutdown(void)
{
	for (size_t i = 0; i < BUCKETS; i++)
		while (cache[i])
			roster_free(cache[i]);
}

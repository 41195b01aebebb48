/*
 * mod_last - XEP-0012 Last Activity.
 *
 * Stores when each account's last session ended and its last status. A query
 * to an account's bare JID answers, for the account itself or a contact that
 * may see its presence, the seconds since then (0 while it is online); others
 * get <forbidden/>. A query to the server answers its uptime. Queries to a full
 * JID are the client's to answer and are routed to it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "log.h"
#include "module.h"
#include "roster.h"
#include "session.h"
#include "stanza.h"

#define NS_LAST "jabber:iq:last"

static const char sql_store[] =
	"INSERT INTO last_activity (host, username, seen, status) VALUES ($1, $2, now(), $3) "
	"ON CONFLICT (host, username) DO UPDATE SET seen = now(), status = $3";
static const char sql_get[] =
	"SELECT floor(extract(epoch FROM now() - seen))::bigint, status FROM last_activity "
	"WHERE host = $1 AND username = $2";

static struct xml_node *last_query(long long seconds, const char *status)
{
	struct xml_node *q = xml_new("query", NS_LAST);
	char buf[32];

	if (!q)
		return NULL;
	snprintf(buf, sizeof(buf), "%lld", seconds < 0 ? 0 : seconds);
	xml_attr_set(q, "seconds", buf);
	if (status && *status)
		xml_add_text(q, status, strlen(status));
	return q;
}

static int server_last(struct iq *iq)
{
	return iq_reply(iq, last_query((long long)time(NULL) - module_started(), NULL));
}

static void on_last_row(void *arg, const PGresult *res, const char *err)
{
	struct iq *iq = arg;

	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		iq_error(iq, "internal-server-error", NULL);
		return;
	}
	if (PQntuples(res) == 0) {
		/* Never logged out (or a new account): nothing to tell. */
		iq_error(iq, "item-not-found", "no last activity is known");
		return;
	}
	iq_reply(iq, last_query(strtoll(PQgetvalue(res, 0, 0), NULL, 10),
				PQgetvalue(res, 0, 1)));
}

static void answer(struct iq *iq)
{
	struct session *list[SESSION_RESOURCES_MAX];
	size_t n = sm_user_sessions(iq->to, list, SESSION_RESOURCES_MAX);
	const char *params[2] = { iq->to->domain, iq->to->local };

	for (size_t i = 0; i < n && i < SESSION_RESOURCES_MAX; i++) {
		if (session_available(list[i])) {
			iq_reply(iq, last_query(0, NULL));
			return;
		}
	}
	if (db_exec_prepared(module_db(iq->m), 0, "last_get", 2, params, on_last_row, iq) < 0)
		iq_error(iq, "internal-server-error", NULL);
}

static void on_roster(void *arg, struct roster *r, bool exists)
{
	struct iq *iq = arg;
	struct jid *from = jid_bare(iq->from);
	struct roster_item *it = r && from ? roster_find(r, from->full) : NULL;

	jid_free(from);
	if (!exists)
		iq_error(iq, "service-unavailable", NULL);
	else if (!r)
		iq_error(iq, "internal-server-error", NULL);
	else if (!it || !roster_sub_from(it->sub))
		iq_error(iq, "forbidden", "you may not see this user's presence");
	else
		answer(iq);
	roster_unref(r);
}

static int account_last(struct iq *iq)
{
	if (jid_bare_eq(iq->from, iq->to)) {
		answer(iq);
		return 0;
	}
	/* §3: only those allowed to see the user's presence. */
	if (roster_load(iq->to->domain, iq->to->local, on_roster, iq) < 0)
		return -1;
	return 0;
}

/* A lost write means a wrong "last seen": say so (arg: the account, owned). */
static void on_stored(void *arg, const PGresult *res, const char *err)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	/* 23503: the account is gone (its last session ended because it was
	 * removed): nothing to remember. */
	if (state && strcmp(state, "23503") == 0)
		log_debug("last", "%s: the account was removed: no last activity", (char *)arg);
	else if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
		log_error("last", "%s: the last activity could not be stored: %s", (char *)arg,
			  res ? PQresultErrorMessage(res) : err);
	free(arg);
}

static int on_closed(struct module *m, struct hook_args *a)
{
	const struct jid *j = session_jid(a->sess);
	struct session *list[2];
	const struct xml_node *p = session_presence(a->sess);
	char *status = p ? xml_child_text(p, "status", NULL) : NULL;
	const char *params[3] = { j->domain, j->local, status ? status : "" };

	/* Only when the account's last session ends (this one is still counted). */
	if (sm_user_sessions(j, list, 2) <= 1) {
		char *who = jid_bare_str(j);

		if (!who || db_exec_prepared(module_db(m), 0, "last_store", 3, params, on_stored,
					     who) < 0) {
			log_error("last", "%s: the last activity could not be stored", j->full);
			free(who);
		}
	}
	free(status);
	return HOOK_PASS;
}

static int load(struct module *m)
{
	if (db_prepare(module_db(m), "last_store", sql_store, 3) < 0 ||
	    db_prepare(module_db(m), "last_get", sql_get, 2) < 0)
		return -1;
	module_feature(m, NS_LAST);
	module_account_feature(m, NS_LAST);
	module_iq(m, IQ_GET, NS_LAST, server_last);
	module_account_iq(m, IQ_GET, NS_LAST, account_last);
	module_hook(m, HOOK_SESSION_CLOSED, 10, on_closed);
	return 0;
}

static const char *const depends[] = { "roster", NULL };

PARLEY_MODULE(last,
	.description = "XEP-0012: last activity of accounts and server uptime",
	.depends = depends,
	.load = load);

/*
 * muc_mam.c - XEP-0313 (Message Archive Management) on a room's JID: the
 * room's archive, paged with XEP-0059 result set management.
 *
 * A query filters by occupant (with = room@service/nick), time (start, end)
 * and archive ids (after-id, before-id: the XEP-0359 ids the room stamped);
 * RSM's <max/> sizes the page (at most the service's archive-page), <after/>
 * pages forward and <before/> backward (empty: the last page). One SQL
 * statement answers it, reading one row more than the page to know whether
 * the page is the last one (complete), and telling an unknown id apart
 * (item-not-found) from an empty page. Each message goes to the requester in
 * a <result/> with its <delay/>, then the IQ result with <fin/>.
 *
 * Who may read: whoever may join (not an outcast; a member in a members-only
 * room; an occupant in a password-protected one).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "log.h"
#include "muc.h"
#include "router.h"

#define SQL_MAM(order) \
	"WITH b AS (SELECT " \
	"(SELECT id FROM muc_archive WHERE service = $1 AND name = $2 AND stanza_id = $6) AS a1, " \
	"(SELECT id FROM muc_archive WHERE service = $1 AND name = $2 AND stanza_id = $7) AS b1, " \
	"(SELECT id FROM muc_archive WHERE service = $1 AND name = $2 AND stanza_id = $9) AS a2, " \
	"(SELECT id FROM muc_archive WHERE service = $1 AND name = $2 AND stanza_id = $10) AS b2), " \
	"p AS (SELECT m.id, m.stanza_id, m.at, m.message FROM muc_archive m, b " \
	"WHERE m.service = $1 AND m.name = $2 AND ($3::text IS NULL OR m.nick = $3) " \
	"AND ($4::float8 IS NULL OR m.at >= to_timestamp($4::float8)) " \
	"AND ($5::float8 IS NULL OR m.at < to_timestamp($5::float8)) " \
	"AND ($6::text IS NULL OR m.id > b.a1) AND ($7::text IS NULL OR m.id < b.b1) " \
	"AND ($9::text IS NULL OR m.id > b.a2) AND ($10::text IS NULL OR m.id < b.b2) " \
	"ORDER BY m.id " order " LIMIT $8) " \
	"SELECT ($6::text IS NOT NULL AND b.a1 IS NULL) OR ($7::text IS NOT NULL AND b.b1 IS NULL) " \
	"OR ($9::text IS NOT NULL AND b.a2 IS NULL) OR ($10::text IS NOT NULL AND b.b2 IS NULL), " \
	"p.stanza_id, to_char(p.at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), " \
	"p.message FROM b LEFT JOIN p ON true ORDER BY p.id"

static const char sql_forward[] = SQL_MAM("ASC");
static const char sql_backward[] = SQL_MAM("DESC");

#define ID_MAX 64	/* bytes of an archive id a client may name */

/* What a query asks, as the statement's parameters. */
struct ask {
	char *nick, *after, *before, *rsm_after, *rsm_before;
	char start[24], end[24];
	bool has_start, has_end, backward;
	long max;
};

struct mam_query {
	struct muc *muc;
	struct xml_node *iq;		/* the request, for the answer */
	char *queryid;
	long max;
	bool backward;
};

static void ask_free(struct ask *a)
{
	free(a->nick);
	free(a->after);
	free(a->before);
	free(a->rsm_after);
	free(a->rsm_before);
}

static void mam_query_free(struct mam_query *q)
{
	xml_unref(q->iq);
	free(q->queryid);
	free(q);
}

/* The form's fields into a; NULL, or why the query is refused. */
static const char *read_form(const struct room *r, const struct xml_node *x, struct ask *a,
			     const char **cond)
{
	if (!x)
		return NULL;
	for (const struct xml_node *f = xml_child(x, "field", NULL); f;
	     f = xml_next(f, "field", NULL)) {
		const char *var = xml_attr(f, "var");
		char *v = xml_child_text(f, "value", NULL);
		const char *why = NULL;

		if (!var || !v) {
			why = var ? NULL : "a field without a name";
		} else if (!strcmp(var, "FORM_TYPE")) {
			why = strcmp(v, NS_MAM) ? "not a " NS_MAM " form" : NULL;
		} else if (!strcmp(var, "with")) {
			struct jid *j = jid_new(v, NULL);

			if (!j || !j->resource || !jid_bare_eq(j, r->jid))
				why = "with is an occupant's JID here (room@service/nick)";
			else if (!(a->nick = strdup(j->resource)))
				why = "out of memory";
			jid_free(j);
		} else if (!strcmp(var, "start") || !strcmp(var, "end")) {
			/* Whole seconds: end is the first second after it. */
			time_t t = muc_parse_stamp(v);

			if (t < 0)
				why = "start and end are XEP-0082 date-times";
			else if (!strcmp(var, "start"))
				a->has_start = snprintf(a->start, sizeof(a->start), "%lld",
							(long long)t) > 0;
			else
				a->has_end = snprintf(a->end, sizeof(a->end), "%lld",
						      (long long)t + 1) > 0;
		} else if (!strcmp(var, "after-id") || !strcmp(var, "before-id")) {
			char **dst = !strcmp(var, "after-id") ? &a->after : &a->before;

			if (strlen(v) > ID_MAX)
				why = "no such archive id";
			else if (!*dst && !(*dst = strdup(v)))
				why = "out of memory";
		} else {
			*cond = "feature-not-implemented";
			why = "that field is not supported; ask for the form's fields";
		}
		free(v);
		if (why)
			return why;
	}
	return NULL;
}

static const char *read_rsm(const struct muc *muc, const struct xml_node *set, struct ask *a)
{
	const struct xml_node *before = set ? xml_child(set, "before", NULL) : NULL;
	char *max = set ? xml_child_text(set, "max", NULL) : NULL;
	char *after = set ? xml_child_text(set, "after", NULL) : NULL, *end;
	char *b = before ? xml_text(before) : NULL;
	const char *why = NULL;

	a->max = muc->o->archive_page;
	if (max) {
		long n = strtol(max, &end, 10);

		if (!*max || *end || n < 0)
			why = "max is a number";
		else if (n < a->max)
			a->max = n;
	}
	if ((after && strlen(after) > ID_MAX) || (b && strlen(b) > ID_MAX))
		why = "no such archive id";
	a->backward = before != NULL;
	if (after && *after)
		a->rsm_after = after;
	else
		free(after);
	if (b && *b)
		a->rsm_before = b;
	else
		free(b);
	free(max);
	return why;
}

/* The requester may read the archive as it may join. */
static bool may_read(const struct room *r, const struct jid *j)
{
	enum affiliation aff = muc_affiliation_of(r, j);

	if (aff == AFF_OUTCAST || (r->cfg.members_only && aff < AFF_MEMBER))
		return false;
	return !r->cfg.password || aff >= AFF_OWNER || muc_by_real(r, j);
}

static void send_result(const struct mam_query *q, const PGresult *res, int i)
{
	const char *text = PQgetvalue(res, i, 3);
	char e[64];
	struct xml_node *msg = xml_parse(text, strlen(text), e, sizeof(e));
	struct xml_node *m = xml_new("message", "jabber:client");
	struct xml_node *result = m ? xml_add_child(m, "result", NS_MAM) : NULL;
	struct xml_node *fw = result ? xml_add_child(result, "forwarded", NS_FORWARD) : NULL;
	struct xml_node *delay = fw ? xml_add_child(fw, "delay", NS_DELAY) : NULL;

	if (!msg || !delay) {
		if (!msg)
			log_error("muc", "an archived message does not parse (%s): left out", e);
		xml_unref(msg);
		xml_unref(m);
		return;
	}
	if (q->queryid)
		xml_attr_set(result, "queryid", q->queryid);
	xml_attr_set(result, "id", PQgetvalue(res, i, 1));
	xml_attr_set(delay, "stamp", PQgetvalue(res, i, 2));
	xml_append(fw, msg);
	xml_attr_set(m, "from", xml_attr(q->iq, "to"));
	xml_attr_set(m, "to", xml_attr(q->iq, "from"));
	router_route(m);
}

static void on_page(void *arg, const PGresult *res, const char *err)
{
	struct mam_query *q = arg;
	int n = res && PQresultStatus(res) == PGRES_TUPLES_OK ? PQntuples(res) : -1;
	int first, last, rows;
	struct xml_node *fin, *set, *c;

	if (n < 1) {
		log_error("muc", "an archive query failed: %s",
			  res ? PQresultErrorMessage(res) : err);
		muc_reply_error(q->iq, "wait", "internal-server-error", "the archive could not "
			    "be read");
		mam_query_free(q);
		return;
	}
	if (!strcmp(PQgetvalue(res, 0, 0), "t")) {
		muc_reply_error(q->iq, "cancel", "item-not-found", "no such archive id");
		mam_query_free(q);
		return;
	}
	rows = PQgetisnull(res, 0, 1) ? 0 : n;
	/* One row past the page says there is more that way; it is not sent. */
	first = rows > q->max && q->backward ? 1 : 0;
	last = rows > q->max && !q->backward ? rows - 2 : rows - 1;
	for (int i = first; i <= last; i++)
		send_result(q, res, i);
	fin = xml_new("fin", NS_MAM);
	set = fin ? xml_add_child(fin, "set", NS_RSM) : NULL;
	if (!set) {
		xml_unref(fin);
		mam_query_free(q);
		return;
	}
	if (rows <= q->max)
		xml_attr_set(fin, "complete", "true");
	if (first <= last) {
		if ((c = xml_add_child(set, "first", NULL)))
			xml_add_text(c, PQgetvalue(res, first, 1), strlen(PQgetvalue(res, first, 1)));
		if ((c = xml_add_child(set, "last", NULL)))
			xml_add_text(c, PQgetvalue(res, last, 1), strlen(PQgetvalue(res, last, 1)));
	}
	muc_iq_result(q->iq, fin);
	mam_query_free(q);
}

void muc_mam_query(struct muc *muc, struct room *r, const struct xml_node *st,
		   const struct xml_node *query)
{
	const struct xml_node *x = xml_child(query, "x", NS_XDATA);
	const char *why = NULL, *cond = "bad-request";
	struct ask a = { 0 };
	struct jid *from = jid_new(xml_attr(st, "from"), NULL);
	struct mam_query *q;
	char limit[24];

	if (!from || !may_read(r, from)) {
		jid_free(from);
		muc_reply_error(st, "auth", "forbidden", "you may not read this room's archive");
		return;
	}
	jid_free(from);
	why = read_form(r, x, &a, &cond);
	if (!why)
		why = read_rsm(muc, xml_child(query, "set", NS_RSM), &a);
	if (why) {
		muc_reply_error(st, "modify", cond, why);
		ask_free(&a);
		return;
	}
	if (!(q = calloc(1, sizeof(*q))) ||
	    (xml_attr(query, "queryid") && !(q->queryid = strdup(xml_attr(query, "queryid"))))) {
		if (q)
			mam_query_free(q);
		ask_free(&a);
		muc_reply_error(st, "wait", "internal-server-error", NULL);
		return;
	}
	q->muc = muc;
	q->iq = xml_ref((struct xml_node *)st);
	q->max = a.max;
	q->backward = a.backward;
	snprintf(limit, sizeof(limit), "%ld", a.max + 1);
	const char *params[10] = { module_domain(muc->m), r->jid->local, a.nick,
				   a.has_start ? a.start : NULL, a.has_end ? a.end : NULL,
				   a.after, a.before, limit, a.rsm_after, a.rsm_before };
	/* On the connection that writes the service's archive, after what is
	 * gathering: a message the requester saw is committed, or queued before
	 * this read. */
	muc_archive_flush(muc);
	if (db_exec_prepared(module_db(muc->m), muc->affinity, a.backward ? "muc_mam_backward"
			     : "muc_mam_forward", 10, params, on_page, q) < 0) {
		muc_reply_error(st, "wait", "internal-server-error", "the archive could not be read");
		mam_query_free(q);
	}
	ask_free(&a);
}

static void form_var(struct xml_node *x, const char *var, const char *type, const char *value)
{
	struct xml_node *f = xml_add_child(x, "field", NULL), *v;

	if (!f)
		return;
	xml_attr_set(f, "var", var);
	xml_attr_set(f, "type", type);
	if (value && (v = xml_add_child(f, "value", NULL)))
		xml_add_text(v, value, strlen(value));
}

/* XEP-0313 §4.1.1: the fields a query may use. */
void muc_mam_fields(const struct xml_node *st)
{
	struct xml_node *q = xml_new("query", NS_MAM);
	struct xml_node *x = q ? xml_add_child(q, "x", NS_XDATA) : NULL;

	if (!x) {
		xml_unref(q);
		return;
	}
	xml_attr_set(x, "type", "form");
	form_var(x, "FORM_TYPE", "hidden", NS_MAM);
	form_var(x, "with", "jid-single", NULL);
	form_var(x, "start", "text-single", NULL);
	form_var(x, "end", "text-single", NULL);
	form_var(x, "after-id", "text-single", NULL);
	form_var(x, "before-id", "text-single", NULL);
	muc_iq_result(st, q);
}

int muc_mam_init(struct muc *muc)
{
	struct db *db = module_db(muc->m);

	return db_prepare(db, "muc_mam_forward", sql_forward, 10) < 0 ||
	       db_prepare(db, "muc_mam_backward", sql_backward, 10) < 0 ? -1 : 0;
}

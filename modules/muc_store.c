/*
 * muc_store.c - persistent rooms and the room archive in PostgreSQL.
 *
 * A persistent room (muc#roomconfig_persistentroom) is a row of muc_rooms: its
 * configuration as the muc#roomconfig form its owner would submit, so that
 * reading it back is the same code as a submit; its subject; the salt of its
 * XEP-0421 occupant ids. Its affiliations are rows of muc_affiliations. At
 * start the service reads them back, with the last messages of each for its
 * history, before it serves anyone: mod_muc holds the stanzas that come
 * meanwhile and handles them, in order, once the rooms are in (muc_loaded).
 *
 * The archive (XEP-0313 on the room's JID, muc_mam.c) holds the groupchat
 * messages of the rooms with archiving on, persistent or not; a temporary
 * room's rows go with the room. Messages are written in batches, one INSERT in
 * flight per service (a group commit: the batch gathers while the last one
 * commits), and the sender's XEP-0198 ack waits for its commit (delivery.h).
 *
 * Every write of a service goes through one connection of the pool (its
 * affinity), so writes land in the order the rooms made them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "delivery.h"
#include "log.h"
#include "muc.h"
#include "util.h"

static const char sql_room_put[] =
	"INSERT INTO muc_rooms (service, name, config, subject, salt) "
	"VALUES ($1, $2, $3, $4, $5) ON CONFLICT (service, name) DO UPDATE "
	"SET config = EXCLUDED.config, subject = EXCLUDED.subject";
static const char sql_room_del[] =
	"DELETE FROM muc_rooms WHERE service = $1 AND name = $2";
static const char sql_aff_put[] =
	"INSERT INTO muc_affiliations (service, name, jid, affiliation, nick) "
	"SELECT $1, $2, t.jid, t.aff, t.nick FROM unnest($3::text[], $4::text[], $5::text[]) "
	"AS t(jid, aff, nick) ON CONFLICT (service, name, jid) DO UPDATE "
	"SET affiliation = EXCLUDED.affiliation, nick = EXCLUDED.nick";
static const char sql_aff_del[] =
	"DELETE FROM muc_affiliations WHERE service = $1 AND name = $2 AND jid = $3";
static const char sql_archive_put[] =
	"INSERT INTO muc_archive (service, name, stanza_id, nick, occupant, message) "
	"SELECT $1, t.name, t.sid, t.nick, t.occ, t.msg FROM unnest($2::text[], $3::text[], "
	"$4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS t(name, sid, nick, occ, msg, ord) "
	"ORDER BY t.ord";
static const char sql_archive_del[] =
	"DELETE FROM muc_archive WHERE service = $1 AND name = $2";
static const char sql_load_rooms[] =
	"SELECT name, config, subject, salt FROM muc_rooms WHERE service = $1";
static const char sql_load_affs[] =
	"SELECT name, jid, affiliation, nick FROM muc_affiliations WHERE service = $1";
/* The last $2 messages of each persistent room, oldest first. */
static const char sql_load_history[] =
	"SELECT r.name, h.message, h.at FROM muc_rooms r CROSS JOIN LATERAL ("
	"SELECT a.id, a.message, extract(epoch FROM a.at)::bigint AS at FROM muc_archive a "
	"WHERE a.service = r.service AND a.name = r.name ORDER BY a.id DESC LIMIT $2) h "
	"WHERE r.service = $1 ORDER BY r.name, h.id";
/* The purge: each persistent room keeps its last $2 messages; rows of rooms
 * that are neither stored nor alive here ($3: the temporary rooms with an
 * archive) are left from a crash. */
static const char sql_purge[] =
	"WITH cut AS (SELECT r.name, (SELECT a.id FROM muc_archive a WHERE a.service = $1 "
	"AND a.name = r.name ORDER BY a.id DESC OFFSET $2 LIMIT 1) AS id "
	"FROM muc_rooms r WHERE r.service = $1), "
	"old AS (DELETE FROM muc_archive a USING cut WHERE a.service = $1 AND a.name = cut.name "
	"AND a.id <= cut.id RETURNING 1), "
	"orphans AS (DELETE FROM muc_archive a WHERE a.service = $1 AND NOT (a.name = ANY($3::text[])) "
	"AND NOT EXISTS (SELECT 1 FROM muc_rooms r WHERE r.service = $1 AND r.name = a.name) "
	"RETURNING 1) "
	"SELECT (SELECT count(*) FROM old), (SELECT count(*) FROM orphans)";

#define BATCH_MAX 500			/* archived messages in one INSERT */
#define LOAD_RETRY_MS 5000
#define PURGE_MS (3600 * 1000)

struct arow {
	char *name, *sid, *nick, *occupant, *msg;
	struct delivery *d;		/* the sender's, until the commit */
	struct arow *next;
};

struct batch {
	struct muc *muc;
	struct arow *head, **tail;
	unsigned n;
};

struct muc_store {
	struct batch *gathering;	/* the next INSERT */
	unsigned in_flight;
	struct module_timer *retry, *purge;
};

static struct db *db_of(const struct muc *muc) { return module_db(muc->m); }
static const char *service(const struct muc *muc) { return module_domain(muc->m); }

/* A write whose answer is only checked. */
static void on_written(void *arg, const PGresult *res, const char *err)
{
	const char *what = arg;

	if (!res || (PQresultStatus(res) != PGRES_COMMAND_OK &&
		     PQresultStatus(res) != PGRES_TUPLES_OK))
		log_error("muc", "cannot %s: %s", what, res ? PQresultErrorMessage(res) : err);
}

static void write_room(struct muc *muc, const char *stmt, const char *what, int n,
		       const char *const *params)
{
	if (db_exec_prepared(db_of(muc), muc->affinity, stmt, n, params, on_written,
			     (void *)what) < 0)
		log_error("muc", "cannot %s: the database queue refused it", what);
}

/* Appends s (NULL: SQL NULL) to a PostgreSQL array literal. */
static void array_add(FILE *f, bool first, const char *s)
{
	fputc(first ? '{' : ',', f);
	if (!s) {
		fputs("NULL", f);
		return;
	}
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

struct arrays {
	char *text[5];
	size_t len[5];
	FILE *f[5];
	unsigned n;
};

static bool arrays_open(struct arrays *a, unsigned n)
{
	bool ok = true;

	memset(a, 0, sizeof(*a));
	a->n = n;
	for (unsigned i = 0; i < n; i++)
		ok &= (a->f[i] = open_memstream(&a->text[i], &a->len[i])) != NULL;
	return ok;
}

/* Closes the literals; false if any could not be written. */
static bool arrays_close(struct arrays *a, bool ok, bool empty)
{
	for (unsigned i = 0; i < a->n; i++) {
		if (a->f[i]) {
			fputs(empty ? "{}" : "}", a->f[i]);
			ok &= fclose(a->f[i]) == 0;
		}
		ok &= a->text[i] != NULL;
	}
	return ok;
}

static void arrays_free(struct arrays *a)
{
	for (unsigned i = 0; i < a->n; i++)
		free(a->text[i]);
}

/* ---- rooms and affiliations ---- */

static char *subject_text(const struct room *r)
{
	return r->subject ? xml_to_string(r->subject, NULL) : NULL;
}

static void write_affiliations(struct muc *muc, struct room *r, const struct affiliate *only)
{
	struct arrays a;
	bool ok = arrays_open(&a, 3), first = true;

	for (const struct affiliate *x = only ? only : r->affiliates; ok && x;
	     x = only ? NULL : x->next) {
		array_add(a.f[0], first, x->bare->full);
		array_add(a.f[1], first, muc_affiliation_names[x->affiliation]);
		array_add(a.f[2], first, x->nick);
		first = false;
	}
	if (arrays_close(&a, ok, first) && !first) {
		const char *params[5] = { service(muc), r->jid->local, a.text[0], a.text[1],
					  a.text[2] };

		write_room(muc, "muc_aff_put", "store affiliations", 5, params);
	} else if (!first) {
		log_error("muc", "%s: cannot store affiliations: out of memory", r->jid->full);
	}
	arrays_free(&a);
}

void muc_store_room(struct muc *muc, struct room *r)
{
	struct xml_node *form = muc_config_form(&r->cfg, true);
	char *config = form ? xml_to_string(form, NULL) : NULL, *subject = subject_text(r);
	char salt[2 * sizeof(r->salt) + 1];

	for (size_t i = 0; i < sizeof(r->salt); i++)
		snprintf(salt + 2 * i, 3, "%02x", r->salt[i]);
	if (config && (!r->subject || subject)) {
		const char *params[5] = { service(muc), r->jid->local, config, subject, salt };

		write_room(muc, "muc_room_put", "store a room", 5, params);
		if (!r->stored)
			write_affiliations(muc, r, NULL);
		r->stored = true;
	} else {
		log_error("muc", "%s: cannot store the room: out of memory", r->jid->full);
	}
	free(config);
	free(subject);
	xml_unref(form);
}

void muc_store_forget(struct muc *muc, struct room *r)
{
	const char *params[2] = { service(muc), r->jid->local };

	if (!r->stored)
		return;
	write_room(muc, "muc_room_del", "forget a room", 2, params);
	r->stored = false;
}

static void batch_send(struct muc *muc);

void muc_archive_flush(struct muc *muc)
{
	batch_send(muc);
}

void muc_store_drop_archive(struct muc *muc, struct room *r)
{
	const char *params[2] = { service(muc), r->jid->local };

	batch_send(muc);	/* its rows still gathering go first, then all of them */
	write_room(muc, "muc_archive_del", "drop a room's archive", 2, params);
}

void muc_store_destroy(struct muc *muc, struct room *r)
{
	muc_store_forget(muc, r);
	muc_store_drop_archive(muc, r);
}

void muc_store_affiliation(struct muc *muc, struct room *r, const struct jid *j)
{
	const struct affiliate *a = r->affiliates;
	char *bare = jid_bare_str(j);

	while (a && !jid_bare_eq(a->bare, j))
		a = a->next;
	if (a) {
		write_affiliations(muc, r, a);
	} else if (bare) {
		const char *params[3] = { service(muc), r->jid->local, bare };

		write_room(muc, "muc_aff_del", "forget an affiliation", 3, params);
	}
	free(bare);
}

/* ---- the archive: batched INSERTs, one in flight ---- */

static void arow_free(struct arow *w, bool ok)
{
	delivery_release(w->d, ok);
	free(w->name);
	free(w->sid);
	free(w->nick);
	free(w->occupant);
	free(w->msg);
	free(w);
}

static void batch_free(struct batch *b, bool ok)
{
	for (struct arow *w = b->head, *next; w; w = next) {
		next = w->next;
		arow_free(w, ok);
	}
	free(b);
}

static void on_batch(void *arg, const PGresult *res, const char *err)
{
	struct batch *b = arg;
	struct muc *muc = b->muc;
	bool ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;

	if (!ok)
		log_error("muc", "%s: %u messages could not be archived: %s", service(muc), b->n,
			  res ? PQresultErrorMessage(res) : err);
	muc->store->in_flight--;
	batch_free(b, ok);
	if (muc->store->gathering && !muc->store->in_flight)
		batch_send(muc);
}

/* Sends what is gathering now (even with a batch in flight: they queue on
 * one connection, in order). */
static void batch_send(struct muc *muc)
{
	struct batch *b = muc->store->gathering;
	struct arrays a;
	bool ok;

	if (!b)
		return;
	muc->store->gathering = NULL;
	ok = arrays_open(&a, 5);
	for (struct arow *w = b->head; ok && w; w = w->next) {
		array_add(a.f[0], w == b->head, w->name);
		array_add(a.f[1], w == b->head, w->sid);
		array_add(a.f[2], w == b->head, w->nick);
		array_add(a.f[3], w == b->head, w->occupant);
		array_add(a.f[4], w == b->head, w->msg);
	}
	ok = arrays_close(&a, ok, false);
	const char *params[6] = { service(muc), a.text[0], a.text[1], a.text[2], a.text[3],
				  a.text[4] };
	if (ok && db_exec_prepared(db_of(muc), muc->affinity, "muc_archive_put", 6, params,
				   on_batch, b) == 0) {
		muc->store->in_flight++;
	} else {
		log_error("muc", "%s: %u messages could not be archived", service(muc), b->n);
		batch_free(b, false);
	}
	arrays_free(&a);
}

void muc_archive_add(struct muc *muc, struct room *r, const struct occupant *o,
		     const struct xml_node *m, const char *stanza_id)
{
	struct muc_store *s = muc->store;
	struct arow *w = calloc(1, sizeof(*w));

	if (!w || !(w->name = strdup(r->jid->local)) || !(w->sid = strdup(stanza_id)) ||
	    !(w->nick = strdup(o->nick)) || !(w->occupant = jid_bare_str(o->real)) ||
	    !(w->msg = xml_to_string(m, NULL)) ||
	    (!s->gathering && !(s->gathering = calloc(1, sizeof(*s->gathering))))) {
		if (w)
			arow_free(w, false);
		log_error("muc", "%s: a message could not be archived: out of memory",
			  r->jid->full);
		return;
	}
	w->d = delivery_ref(delivery_current());
	if (!s->gathering->tail) {
		s->gathering->muc = muc;
		s->gathering->tail = &s->gathering->head;
	}
	*s->gathering->tail = w;
	s->gathering->tail = &w->next;
	if (++s->gathering->n >= BATCH_MAX || !s->in_flight)
		batch_send(muc);
}

/* ---- reading the rooms back at start ---- */

static struct room *loaded_room(struct muc *muc, const char *name)
{
	struct jid *j = jid_make(name, service(muc), NULL, NULL);
	struct room *r = j ? muc_room_find(muc, j) : NULL;

	jid_free(j);
	return r;
}

static bool load_failed(struct muc *muc, const PGresult *res, const char *err,
			const char *what)
{
	if (res && PQresultStatus(res) == PGRES_TUPLES_OK)
		return false;
	log_error("muc", "%s: cannot read %s back (retrying in %d s): %s", service(muc), what,
		  LOAD_RETRY_MS / 1000, res ? PQresultErrorMessage(res) : err);
	muc_rooms_clear(muc);
	module_timer_start(muc->store->retry, LOAD_RETRY_MS, false);
	return true;
}

static struct room *room_from_row(struct muc *muc, const PGresult *res, int i)
{
	const char *name = PQgetvalue(res, i, 0), *config = PQgetvalue(res, i, 1);
	const char *salt = PQgetvalue(res, i, 3), *bad = NULL;
	struct jid *j = jid_make(name, service(muc), NULL, NULL);
	struct room *r = j ? muc_room_new(muc, j) : NULL;
	struct xml_node *form;
	char e[64];

	jid_free(j);
	if (!r)
		return NULL;
	form = xml_parse(config, strlen(config), e, sizeof(e));
	if (!form || (bad = muc_config_parse(muc, form, &r->cfg))) {
		log_error("muc", "%s: its stored configuration does not parse (%s): left out",
			  r->jid->full, form ? bad : e);
		xml_unref(form);
		muc_room_free(r);
		return NULL;
	}
	xml_unref(form);
	r->cfg.persistent = true;
	r->stored = true;
	/* A salt that does not read keeps the new one: ids change, nothing else. */
	for (size_t k = 0; strlen(salt) == 2 * sizeof(r->salt) && k < sizeof(r->salt); k++) {
		unsigned v;

		if (sscanf(salt + 2 * k, "%2x", &v) == 1)
			r->salt[k] = (unsigned char)v;
	}
	if (!PQgetisnull(res, i, 2)) {
		const char *subject = PQgetvalue(res, i, 2);

		/* sent to each joiner as it is, with the joiner's 'to' */
		if ((r->subject = xml_parse(subject, strlen(subject), e, sizeof(e))))
			xml_attr_set(r->subject, "to", NULL);
	}
	return r;
}

static void on_history(void *arg, const PGresult *res, const char *err)
{
	struct muc *muc = arg;
	unsigned n = 0;

	if (load_failed(muc, res, err, "room history"))
		return;
	for (int i = 0; i < PQntuples(res); i++) {
		struct room *r = loaded_room(muc, PQgetvalue(res, i, 0));
		const char *text = PQgetvalue(res, i, 1);
		char e[64];
		struct xml_node *m = r ? xml_parse(text, strlen(text), e, sizeof(e)) : NULL;

		if (m) {
			muc_history_add(muc, r, m, (time_t)atoll(PQgetvalue(res, i, 2)));
			n++;
		}
		xml_unref(m);
	}
	log_info("muc", "%s: %u persistent rooms read back, with %u messages of history",
		 service(muc), muc->nrooms, n);
	muc_loaded(muc);
}

static void on_affiliations(void *arg, const PGresult *res, const char *err)
{
	struct muc *muc = arg;
	char limit[24];
	const char *params[2] = { service(muc), limit };

	if (load_failed(muc, res, err, "room affiliations"))
		return;
	for (int i = 0; i < PQntuples(res); i++) {
		struct room *r = loaded_room(muc, PQgetvalue(res, i, 0));
		struct jid *j = jid_new(PQgetvalue(res, i, 1), NULL);
		int aff = muc_affiliation_parse(PQgetvalue(res, i, 2));

		if (r && j && aff >= 0 && muc_affiliation_set(r, j, (enum affiliation)aff) == 0 &&
		    !PQgetisnull(res, i, 3)) {
			for (struct affiliate *a = r->affiliates; a; a = a->next)
				if (jid_bare_eq(a->bare, j) && !a->nick)
					a->nick = strdup(PQgetvalue(res, i, 3));
		}
		jid_free(j);
	}
	snprintf(limit, sizeof(limit), "%lld", muc->o->history_length);
	if (db_exec_prepared(db_of(muc), muc->affinity, "muc_load_history", 2, params,
			     on_history, muc) < 0)
		load_failed(muc, NULL, "the database queue refused it", "room history");
}

static void on_rooms(void *arg, const PGresult *res, const char *err)
{
	struct muc *muc = arg;
	const char *params[1] = { service(muc) };

	if (load_failed(muc, res, err, "persistent rooms"))
		return;
	for (int i = 0; i < PQntuples(res); i++) {
		struct room *r = room_from_row(muc, res, i);

		if (r && muc_room_link(muc, r) < 0) {
			log_error("muc", "%s: out of memory reading it back: left out", r->jid->full);
			muc_room_free(r);
		}
	}
	if (db_exec_prepared(db_of(muc), muc->affinity, "muc_load_affs", 1, params,
			     on_affiliations, muc) < 0)
		load_failed(muc, NULL, "the database queue refused it", "room affiliations");
}

void muc_store_load(struct muc *muc)
{
	const char *params[1] = { service(muc) };

	muc->loading = true;
	if (db_exec_prepared(db_of(muc), muc->affinity, "muc_load_rooms", 1, params, on_rooms,
			     muc) < 0)
		load_failed(muc, NULL, "the database queue refused it", "persistent rooms");
}

static void on_retry(struct module *m, void *arg)
{
	(void)m;
	muc_store_load(arg);
}

/* ---- the purge ---- */

static void on_purged(void *arg, const PGresult *res, const char *err)
{
	struct muc *muc = arg;

	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		log_error("muc", "%s: the archive purge failed: %s", service(muc),
			  res ? PQresultErrorMessage(res) : err);
		return;
	}
	if (atoll(PQgetvalue(res, 0, 0)) || atoll(PQgetvalue(res, 0, 1)))
		log_info("muc", "%s: archive purge: %s messages past the rooms' limit, %s of rooms "
			 "gone", service(muc), PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
}

static void on_purge(struct module *m, void *arg)
{
	struct muc *muc = arg;

	(void)m;
	struct arrays a;
	bool ok = arrays_open(&a, 1), first = true;
	char keep[24];

	if (muc->loading)
		return;
	for (const struct room *r = muc->rooms; ok && r; r = r->next) {
		if (r->stored)
			continue;	/* temporary rooms: their rows are not orphans */
		array_add(a.f[0], first, r->jid->local);
		first = false;
	}
	snprintf(keep, sizeof(keep), "%lld", muc->o->archive_max);
	if (arrays_close(&a, ok, first)) {
		const char *params[3] = { service(muc), keep, a.text[0] };

		if (db_exec_prepared(db_of(muc), muc->affinity, "muc_purge", 3, params, on_purged,
				     muc) < 0)
			log_error("muc", "%s: the archive purge could not be queued", service(muc));
	}
	arrays_free(&a);
}

/* ---- set-up ---- */

int muc_store_init(struct muc *muc)
{
	struct db *db = db_of(muc);

	muc->affinity = util_hash64(service(muc), strlen(service(muc))) | 1;
	if (!(muc->store = calloc(1, sizeof(*muc->store))))
		return -1;
	if (db_prepare(db, "muc_room_put", sql_room_put, 5) < 0 ||
	    db_prepare(db, "muc_room_del", sql_room_del, 2) < 0 ||
	    db_prepare(db, "muc_aff_put", sql_aff_put, 5) < 0 ||
	    db_prepare(db, "muc_aff_del", sql_aff_del, 3) < 0 ||
	    db_prepare(db, "muc_archive_put", sql_archive_put, 6) < 0 ||
	    db_prepare(db, "muc_archive_del", sql_archive_del, 2) < 0 ||
	    db_prepare(db, "muc_load_rooms", sql_load_rooms, 1) < 0 ||
	    db_prepare(db, "muc_load_affs", sql_load_affs, 1) < 0 ||
	    db_prepare(db, "muc_load_history", sql_load_history, 2) < 0 ||
	    db_prepare(db, "muc_purge", sql_purge, 3) < 0)
		return -1;
	muc->store->retry = module_timer_new(muc->m, on_retry, muc);
	muc->store->purge = module_timer_new(muc->m, on_purge, muc);
	if (!muc->store->retry || !muc->store->purge)
		return -1;
	module_timer_start(muc->store->purge, PURGE_MS, true);
	return 0;
}

void muc_store_free(struct muc *muc)
{
	if (!muc->store)
		return;
	if (muc->store->gathering)
		batch_free(muc->store->gathering, false);
	free(muc->store);
}

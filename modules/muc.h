/*
 * muc.h - what the files of mod_muc share: the service, its rooms and their
 * occupants, and the functions one part of the module calls in another.
 *
 * mod_muc.c    the module: options, stanzas to rooms, join, leave, messages
 * muc_room.c   rooms and occupants in memory, what a room sends, history
 * muc_admin.c  moderation: roles and affiliations (muc#admin, §8-§10)
 * muc_owner.c  the owner: the configuration form and destruction (§10)
 * muc_store.c  persistent rooms and the room archive in PostgreSQL
 * muc_mam.c    XEP-0313 queries on the room archive
 * muc_request.c  invitations and declines, voice requests (§7.8, §7.13, §8.6)
 * muc_register.c registration with a room and reserved nicks (§7.10, §7.12)
 * muc_ctl.c    `parleyctl muc ...`: rooms for the administrator
 * muc_iq.c     IQs between occupants, through the room (§6.5)
 */
#ifndef PARLEY_MUC_H
#define PARLEY_MUC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "jid.h"
#include "module.h"
#include "xml.h"


#define NS_MUC "http://jabber.org/protocol/muc"
#define NS_MUC_USER NS_MUC "#user"
#define NS_MUC_OWNER NS_MUC "#owner"
#define NS_MUC_ADMIN NS_MUC "#admin"
#define NS_DELAY "urn:xmpp:delay"
#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define NS_XDATA "jabber:x:data"
#define NS_PING "urn:xmpp:ping"
#define NS_SID "urn:xmpp:sid:0"
#define NS_MAM "urn:xmpp:mam:2"
#define NS_RSM "http://jabber.org/protocol/rsm"
#define NS_FORWARD "urn:xmpp:forward:0"
#define NS_OCCUPANT_ID "urn:xmpp:occupant-id:0"
#define NS_ROOMCONFIG NS_MUC "#roomconfig"

struct options {
	long long max_occupants, max_nick_length, max_rooms, history_length;
	long long rooms_per_user, message_rate, message_burst, max_subject_length;
	long long archive_max, archive_page;
	const char *name;
};

enum role { ROLE_NONE, ROLE_VISITOR, ROLE_PARTICIPANT, ROLE_MODERATOR };
/* In order of rank: a comparison says who may act on whom. */
enum affiliation { AFF_OUTCAST, AFF_NONE, AFF_MEMBER, AFF_ADMIN, AFF_OWNER, AFF_COUNT };

extern const char *const muc_role_names[];
extern const char *const muc_affiliation_names[];

struct room;

#define MUC_RESOURCES_MAX 16	/* resources of one user under one nick */

struct occupant {
	const struct room *room;
	char *nick;
	struct jid *real;		/* the occupant's full JID (its first resource) */
	struct jid **others;		/* more resources of that user under the nick */
	unsigned nothers;		/* (§7.2.9), at most MUC_RESOURCES_MAX - 1 */
	struct jid *jid;		/* room@service/nick */
	enum role role;
	enum affiliation affiliation;
	struct xml_node *presence;	/* the last one it sent, as the room shows it */
	char occupant_id[48];		/* XEP-0421: stable per real bare JID and room */
	double tokens;			/* message rate: a token bucket */
	long long tokens_at;		/* ms, when tokens was last filled */
	struct occupant *next;
};

/* A bare JID's standing in the room (§5.2), kept when it is not in it. */
struct affiliate {
	struct jid *bare;
	enum affiliation affiliation;
	char *nick;			/* reserved (§7.12), or NULL */
	struct affiliate *next;
};

/* A groupchat message as a later joiner gets it: with its <delay/>. */
struct past {
	struct xml_node *msg;
	time_t at;
	size_t chars;
};

/* Who may send private messages (muc#roomconfig_allowpm). */
enum allow_pm { PM_ANYONE, PM_PARTICIPANTS, PM_MODERATORS, PM_NONE };
extern const char *const muc_allow_pm_names[];

/* What the owner's muc#roomconfig form sets (§10.2). */
struct room_config {
	char *name, *desc, *secret, *lang;	/* NULL: none */
	bool public_room, members_only, moderated, password, whois_anyone, change_subject;
	bool persistent, archive, allow_invites;
	enum allow_pm allow_pm;
	unsigned broadcast;		/* roles whose presence is broadcast: 1 << role */
	long long max_users, history;	/* at most the service's options */
};

#define INVITES_KEPT 32
struct invitation;

struct room {
	struct jid *jid;		/* room@service */
	struct room_config cfg;
	struct occupant *occupants;	/* in join order */
	unsigned count;
	bool locked;			/* created, not yet configured by its owner */
	struct xml_node *subject;	/* the message that set it (with <delay/>), or NULL */
	struct affiliate *affiliates;
	struct past *history;		/* a ring of history_length */
	unsigned hist_next, hist_count;
	unsigned char salt[16];		/* XEP-0421 occupant ids */
	struct invitation *invites;	/* the last INVITES_KEPT (muc_request.c) */
	unsigned inv_next;
	bool stored;			/* a row in muc_rooms */
	struct room *next, **pprev;	/* the service's list, newest first */
	struct room *hnext;		/* its bucket in the service's table */
};

struct muc {
	struct module *m;
	const struct options *o;
	struct room *rooms;		/* every room, newest first */
	unsigned nrooms;
	struct room **buckets;		/* the same rooms by name: nbuckets, a power of 2 */
	unsigned nbuckets;
	uint32_t seed;			/* of the name hash, random per service */
	uint64_t affinity;		/* every write of the service on one connection */
	bool loading;			/* persistent rooms not read back yet */
	struct held *held, **held_tail;	/* stanzas that came while loading */
	unsigned nheld;
	struct muc_store *store;	/* muc_store.c's */
};

/* mod_muc.c: the rooms are read back; what waited is handled now. */
void muc_loaded(struct muc *muc);
/* Whether o may send one more message now (message-rate, message-burst). */
bool muc_rate_ok(struct muc *muc, struct occupant *o);

/* muc_request.c: a message to the room that is not groupchat (o NULL for a
 * non-occupant); false if it is none of invitation, decline, voice request. */
bool muc_room_request(struct muc *muc, struct room *r, struct occupant *o,
		      const struct xml_node *st, const struct jid *from);
void muc_invitations_free(struct room *r);
/* muc_register.c: jabber:iq:register on the room (§7.10). */
void muc_register(struct muc *muc, struct room *r, const struct xml_node *st,
		  const struct xml_node *query, const struct jid *from);
/* disco#info node x-roomuser-item: the user's reserved nick (§7.12). */
void muc_reserved_nick(const struct room *r, const struct xml_node *st, const struct jid *from);
/* Whether nick is reserved by someone other than from's bare JID. */
bool muc_nick_reserved(const struct room *r, const char *nick, const struct jid *from);
/* The value of a data form's field var (malloc'd), or NULL. */
char *muc_form_value(const struct xml_node *x, const char *var);


/* muc_room.c: rooms and occupants */
struct room *muc_room_find(struct muc *muc, const struct jid *to);
struct occupant *muc_by_nick(const struct room *r, const char *nick);
/* The occupant one of whose resources is real. */
struct occupant *muc_by_real(const struct room *r, const struct jid *real);
/* o's resources: real, then the others. */
static inline unsigned muc_resources(const struct occupant *o) { return 1 + o->nothers; }
static inline const struct jid *muc_resource(const struct occupant *o, unsigned i)
{
	return i ? o->others[i - 1] : o->real;
}
/* Adds resource real to o (0), or -1 (too many, or no memory). */
int muc_resource_add(struct occupant *o, const struct jid *real);
/* Removes resource real from o; false if it was its only one. */
bool muc_resource_remove(struct occupant *o, const struct jid *real);
void muc_occupant_free(struct occupant *o);
void muc_occupant_unlink(struct room *r, struct occupant *o);
void muc_room_free(struct room *r);
/* A room with the service's defaults (not linked), or NULL without memory. */
struct room *muc_room_new(struct muc *muc, const struct jid *jid);
int muc_room_link(struct muc *muc, struct room *r);
/* Unlinks r from the service and frees it. */
void muc_room_remove(struct muc *muc, struct room *r);
/* Frees every room of the service (at unload, or a failed load). */
void muc_rooms_clear(struct muc *muc);
/* After an occupant went: a temporary room with nobody left ends. */
void muc_room_emptied(struct muc *muc, struct room *r);
/* Rooms where j's bare JID is an owner. */
unsigned muc_rooms_owned(const struct muc *muc, const struct jid *j);
void muc_occupant_id(const struct room *r, const struct jid *real, char out[48]);
enum affiliation muc_affiliation_of(const struct room *r, const struct jid *j);
/* Records j's bare JID's affiliation (AFF_NONE forgets it). 0, or -1 without
 * memory. */
int muc_affiliation_set(struct room *r, const struct jid *j, enum affiliation aff);
/* How many bare JIDs have that affiliation with the room. */
unsigned muc_affiliation_count(const struct room *r, enum affiliation aff);

/* muc_room.c: what the room sends */
/* st (not consumed, from set, no 'to') to each resource of occupant `to`. */
void muc_route_to(const struct xml_node *st, const struct occupant *to);
/* An error back to the sender of st (never for an error). */
void muc_reply_error(const struct xml_node *st, const char *type, const char *cond,
		     const char *text);
/* The result of IQ st, from its to, with payload (taken; may be NULL). */
void muc_iq_result(const struct xml_node *st, struct xml_node *payload);
void muc_add_status(struct xml_node *x, const char *code);
void muc_add_feature(struct xml_node *q, const char *var);
void muc_add_delay(struct xml_node *m, const struct room *r, time_t at);
/* o's presence as occupant `to` sees it, to each of to's resources. */
void muc_send_presence_of(const struct occupant *o, const struct occupant *to,
			  bool unavailable, const char *new_nick, const char *const *codes,
			  const char *reason);
/* The same to one resource, real, of viewer. */
void muc_send_presence_to(const struct occupant *o, const struct occupant *viewer,
			  const struct jid *real, bool unavailable, const char *new_nick,
			  const char *const *codes, const char *reason);
void muc_broadcast_presence(const struct room *r, const struct occupant *o,
			    bool unavailable, const char *new_nick, const char *const *codes,
			    const char *reason);
/* A new occupant's presence to all: self_codes (100, say) for its own copy. */
void muc_broadcast_join(const struct room *r, const struct occupant *o,
			const char *const *self_codes);
bool muc_presence_shown(const struct room *r, const struct occupant *o);
void muc_send_subject(const struct room *r, const struct jid *real);
/* What the room keeps of a presence: its content without the MUC <x/>s. */
struct xml_node *muc_kept_presence(const struct xml_node *st);

/* muc_room.c: history (§7.2.14) */
/* Keeps a copy of m, stamped with <delay/> for at. */
void muc_history_add(struct muc *muc, struct room *r, const struct xml_node *m, time_t at);
void muc_send_history(struct muc *muc, struct room *r, const struct jid *real,
		      const struct xml_node *join);
/* XEP-0082 date-time, UTC or with an offset; fractions ignored. -1 if bad. */
time_t muc_parse_stamp(const char *s);

/* muc_admin.c */
int muc_role_parse(const char *s);
int muc_affiliation_parse(const char *s);
void muc_admin_set(struct muc *muc, struct room *r, struct occupant *o,
		   const struct xml_node *st, const struct xml_node *query);
/* An affiliation set by JID (bare) with what follows for its occupants (§9,
 * §10: banned or unmembered out, roles to match) and its row if stored. */
void muc_affiliation_change(struct muc *muc, struct room *r, const struct jid *bare,
			    enum affiliation aff, const char *reason);
void muc_admin_get(struct room *r, struct occupant *o, const struct xml_node *st,
		   const struct xml_node *query);

/* muc_owner.c */
struct xml_node *muc_config_form(const struct room_config *c, bool submit);
const char *muc_config_parse(const struct muc *muc, const struct xml_node *x,
			     struct room_config *c);
void muc_config_free(struct room_config *c);
/* §10.9: occupants told (venue and reason may be NULL), the room gone; by is
 * for the log ("its owner", "the administrator"). */
void muc_room_destroy(struct muc *muc, struct room *r, const char *venue, const char *reason,
		      const char *by);
void muc_owner_get(struct room *r, const struct xml_node *st);
void muc_owner_set(struct muc *muc, struct room *r, struct occupant *o,
		   const struct xml_node *st, const struct xml_node *query);

/* muc_store.c: persistent rooms and the archive (PostgreSQL) */
int muc_store_init(struct muc *muc);
/* Reads the persistent rooms back; muc->loading until they are in. */
void muc_store_load(struct muc *muc);
/* Stores r (configuration, subject, salt; every affiliation when it was not
 * stored yet). */
void muc_store_room(struct muc *muc, struct room *r);
/* r is no longer persistent: its row and affiliations go (not its archive). */
void muc_store_forget(struct muc *muc, struct room *r);
/* r is destroyed: all of it goes, archive included. */
void muc_store_destroy(struct muc *muc, struct room *r);
void muc_store_drop_archive(struct muc *muc, struct room *r);
/* j's (bare) affiliation and reserved nick in stored room r, as r has it now. */
void muc_store_affiliation(struct muc *muc, struct room *r, const struct jid *j);
/* Archives groupchat m (as occupants get it) from o; holds the current
 * delivery until the row is committed. */
/* Sends the rows gathering now, so that a read queued after sees them. */
void muc_archive_flush(struct muc *muc);
void muc_archive_add(struct muc *muc, struct room *r, const struct occupant *o,
		     const struct xml_node *m, const char *stanza_id);
void muc_store_free(struct muc *muc);

/* muc_mam.c: XEP-0313 queries on the room's JID */
int muc_mam_init(struct muc *muc);
void muc_mam_query(struct muc *muc, struct room *r, const struct xml_node *st,
		   const struct xml_node *query);
/* muc_iq.c: an occupant's IQ get/set to another occupant, passed to its real
 * JID; an answer (result, error) to an occupant JID, passed back. */
void muc_iq_forward(struct room *r, const struct occupant *asker, const struct xml_node *st,
		    const struct jid *from, const struct jid *to);
void muc_iq_answer(struct room *r, const struct xml_node *st, const struct jid *from,
		   const struct jid *to);
/* muc_ctl.c: registers the "muc" command word. */
int muc_ctl_init(struct muc *muc);
void muc_mam_fields(const struct xml_node *st);

#endif

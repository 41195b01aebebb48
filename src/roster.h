/*
 * roster.h - rosters and subscription states (RFC 6121 §2-3), shared by
 * mod_roster (the IQ protocol) and mod_presence (subscriptions and broadcast).
 *
 * A roster is loaded from PostgreSQL on demand and cached while someone holds a
 * reference (a user's sessions do, through the modules), so the router's
 * presence decisions for online users never wait for the database. Every change
 * is written through, in order per account.
 */
#ifndef PARLEY_ROSTER_H
#define PARLEY_ROSTER_H

#include <stdbool.h>
#include <stdint.h>

#define ROSTER_GROUPS_MAX 32	/* groups per item */

enum roster_sub { ROSTER_NONE, ROSTER_TO, ROSTER_FROM, ROSTER_BOTH };

struct roster_item {
	char *contact;			/* bare JID, prepared */
	char *name;			/* NULL when none */
	char *groups[ROSTER_GROUPS_MAX];
	unsigned ngroups;
	enum roster_sub sub;
	bool ask_out;			/* Pending Out: we asked the contact */
	char *pending_in;		/* Pending In: the request stanza, or NULL */
	bool approved;			/* pre-approved (§3.4) */
	bool in_roster;			/* shown to the client (false: pending_in only) */
	struct roster_item *next;
};

struct roster;

/* r is NULL on a database error; exists is false when there is no such account
 * (then r is NULL too). A non-NULL r carries a reference for the callee. */
typedef void (*roster_cb)(void *arg, struct roster *r, bool exists);
int roster_load(const char *host, const char *user, roster_cb cb, void *arg);
struct roster *roster_ref(struct roster *r);
void roster_unref(struct roster *r);
/* The cached roster of an account, if loaded (no reference taken). */
struct roster *roster_cached(const char *host, const char *user);

const char *roster_host(const struct roster *r);
const char *roster_user(const struct roster *r);
struct roster_item *roster_items(const struct roster *r);
struct roster_item *roster_find(const struct roster *r, const char *contact);
unsigned roster_count(const struct roster *r);	/* items with in_roster */
uint64_t roster_version(const struct roster *r);

/* Finds or creates (none, not in the roster) the item for contact. */
struct roster_item *roster_touch(struct roster *r, const char *contact);
/* Writes the item; bump: a change the client sees (new version, for pushes).
 * done (may be NULL) gets 0 or -1. */
int roster_save(struct roster *r, struct roster_item *it, bool bump,
		void (*done)(void *arg, int rc), void *arg);
/* Removes the item from memory and the database (bumps the version). */
int roster_delete(struct roster *r, const char *contact, void (*done)(void *arg, int rc),
		  void *arg);

/* <item/> for a roster result or push (jabber:iq:roster); remove: the item was
 * deleted (subscription='remove'). */
struct xml_node;
struct xml_node *roster_item_xml(const struct roster_item *it, const char *contact,
				 bool remove);
/* Sends a roster push of the item (or its removal) to every interested
 * resource of the roster's account (RFC 6121 §2.1.6). */
void roster_push(const struct roster *r, const struct roster_item *it, const char *contact,
		 bool remove);

bool roster_sub_from(enum roster_sub s);	/* the contact sees our presence */
bool roster_sub_to(enum roster_sub s);		/* we see the contact's */
const char *roster_sub_name(enum roster_sub s);

int roster_init(void);		/* prepares the statements */
void roster_shutdown(void);	/* frees the cache */

#endif

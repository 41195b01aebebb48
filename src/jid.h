/*
 * jid.h - XMPP addresses (RFC 7622).
 *
 * jid_new() parses and prepares a JID: localpart with the Nodeprep profile,
 * domainpart lower-cased and Nameprep'd (IDNA labels turned into Unicode, an
 * IP literal kept as given), resourcepart with Resourceprep, each part at most
 * 1023 bytes after preparation. A JID is one allocation, immutable once made.
 */
#ifndef PARLEY_JID_H
#define PARLEY_JID_H

#include <stdbool.h>
#include <stddef.h>

#define JID_PART_MAX 1023

struct jid {
	const char *local;	/* NULL when absent */
	const char *domain;	/* never NULL */
	const char *resource;	/* NULL when absent */
	const char *full;	/* the whole prepared JID as a string */
	size_t bare_len;	/* bytes of full that make the bare JID */
};

/* Parses and prepares s. On error returns NULL and, if errp, sets *errp to a
 * static English sentence ("the domainpart is empty", ...). */
struct jid *jid_new(const char *s, const char **errp);
/* Builds from parts (local and resource may be NULL), preparing each. */
struct jid *jid_make(const char *local, const char *domain, const char *resource,
		     const char **errp);
struct jid *jid_copy(const struct jid *j);
/* A new JID without the resource. */
struct jid *jid_bare(const struct jid *j);
/* The same bare JID with another resource (prepared); NULL on a bad resource. */
struct jid *jid_with_resource(const struct jid *j, const char *resource, const char **errp);
void jid_free(struct jid *j);

/* The bare JID as a malloc'd string. */
char *jid_bare_str(const struct jid *j);

bool jid_eq(const struct jid *a, const struct jid *b);		/* full equality */
bool jid_bare_eq(const struct jid *a, const struct jid *b);	/* local+domain */

/* Prepare one part into out (outlen bytes); returns 0, or -1 with *errp set. */
int jid_nodeprep(const char *in, char *out, size_t outlen, const char **errp);
int jid_nameprep(const char *in, char *out, size_t outlen, const char **errp);
int jid_resourceprep(const char *in, char *out, size_t outlen, const char **errp);

#endif

/*
 * stanza_id.h - XEP-0359 unique and stable stanza ids.
 *
 * A message to a local account gets a <stanza-id by='account'/> of ours, and
 * one a sender forged with our 'by' is removed (§3.1). A message a local client
 * sends again with the same origin-id (its connection dropped before the ack)
 * is recognised and dropped: recent (sender, recipient, origin-id) triples are
 * remembered in bounded memory.
 */
#ifndef PARLEY_STANZA_ID_H
#define PARLEY_STANZA_ID_H

#include <stdbool.h>

#include "jid.h"
#include "xml.h"

#define STANZA_ID_LEN 22

/* A new id, unique across the nodes of a cluster and time-ordered as a string:
 * milliseconds, a random node tag and a counter, in hex. */
void stanza_id_new(char out[STANZA_ID_LEN + 1]);

/* Stamps st (for the account to) and returns it: st itself, or a copy that
 * replaces it when the tree was shared (the caller's reference moves). */
struct xml_node *stanza_id_stamp(struct xml_node *st, const struct jid *to);

/* Whether a message from a local account with this origin-id to this
 * recipient was seen lately (remembered if not). */
bool stanza_id_duplicate(const struct xml_node *st, const struct jid *from,
			 const struct jid *to);
unsigned long long stanza_id_duplicates(void);

/* Frees the de-duplication memory (at exit). */
void stanza_id_free(void);

#endif

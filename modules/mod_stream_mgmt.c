/*
 * mod_stream_mgmt - XEP-0198 stream management: acks both ways, resumption.
 *
 * Inbound: <r/> gets <a h/> with the client's stanzas that are settled (see
 * session_settled: a message is settled once its recipients acked it or it is
 * committed to storage), so an ack from us means "delivered or durable"; when
 * more settle later, an unsolicited <a/> follows.
 *
 * Outbound: every stanza written to the client is kept until the client acks
 * it. A connection that drops with resumption enabled leaves the session
 * detached for resume-timeout: still available to its contacts, stanzas for it
 * queued. <resume/> on a new stream moves the session there and re-sends what
 * was not acked, in order. When the session ends without resumption (the
 * timeout, a clean close, a replacing login), the unacked messages go to
 * offline storage (HOOK_OFFLINE_MESSAGE), except those that came from it, which
 * are still there. A connected client that leaves a stanza unacked for
 * resume-timeout is dead or stuck: its stream is closed and its session ends the
 * same way, so a sender's ack never waits longer than that.
 *
 * Counters are uint32_t and wrap at 2^32 as the XEP says; every comparison is
 * a difference.
 */
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "delivery.h"
#include "log.h"
#include "module.h"
#include "session.h"
#include "stanza.h"
#include "stream.h"
#include "util.h"

#define NS_SM "urn:xmpp:sm:3"
#define TOKEN_LEN 32

struct options {
	long long resume_timeout, max_queue;
};

static const struct module_option options[] = {
	{ "resume-timeout", OPT_DURATION, "300", 1, 86400,
	  MODULE_OPTION_AT(struct options, resume_timeout),
	  "how long a lost session waits for <resume/>, and the longest a stanza may stay "
	  "unacknowledged on a live stream" },
	{ "max-queue", OPT_INT, "5000", 10, 1000000, MODULE_OPTION_AT(struct options, max_queue),
	  "unacknowledged stanzas kept per session; past it the stream is closed" },
	{ NULL }
};

/*
 * Sessions that ended with resumption enabled, for <failed h/> (XEP-0198 §5: a
 * client whose <resume/> comes too late learns how many of its stanzas we
 * handled, and resends only the rest instead of all or none). h is the settled
 * count, as in our <a/>: never more than what is delivered or stored. A ring in
 * static memory (untouched pages cost nothing): the oldest entry makes room,
 * and an entry is good for an hour.
 */
#define GONE_MAX 4096
#define GONE_TTL 3600

static struct gone {
	char token[TOKEN_LEN + 1];
	uint64_t bare;		/* hash of the account's bare JID */
	uint32_t h;
	time_t at;
} gone[GONE_MAX];
static unsigned gone_next;

static void gone_add(const char *token, const struct jid *j, uint32_t h)
{
	struct gone *g = &gone[gone_next++ % GONE_MAX];

	memcpy(g->token, token, TOKEN_LEN + 1);
	g->bare = util_hash64(j->full, j->bare_len);
	g->h = h;
	g->at = time(NULL);
}

/* HOOK_USER_REMOVED: a deleted account's old sessions are not resumable. */
static int on_user_removed(struct module *m, struct hook_args *a)
{
	uint64_t b = util_hash64(a->to->full, a->to->bare_len);

	(void)m;
	for (unsigned i = 0; i < GONE_MAX; i++)
		if (gone[i].at && gone[i].bare == b)
			memset(&gone[i], 0, sizeof(gone[i]));
	return HOOK_PASS;
}

static const struct gone *gone_find(const char *token, const char *user, const char *host)
{
	struct jid *bare = jid_make(user, host, NULL, NULL);
	const struct gone *found = NULL;
	time_t now = time(NULL);
	uint64_t b;

	if (!bare)
		return NULL;
	b = util_hash64(bare->full, bare->bare_len);
	jid_free(bare);
	for (unsigned i = 0; i < GONE_MAX && !found; i++)
		if (gone[i].at && now - gone[i].at < GONE_TTL && gone[i].bare == b &&
		    CRYPTO_memcmp(gone[i].token, token, TOKEN_LEN) == 0)
			found = &gone[i];
	return found;
}

struct item {
	struct xml_node *st;
	struct delivery *d;	/* a held message's delivery, or NULL */
	time_t queued;
	struct item *next;
};

struct sm {
	struct module *m;
	struct session *s;
	uint32_t in_base;	/* session_received() at <enable/> */
	uint32_t last_a;	/* h of our last <a/> */
	uint32_t asked;		/* what the client's last <r/> covered */
	uint32_t acked;		/* the client's last h */
	unsigned queued;	/* items: stanzas sent after acked */
	struct item *head, *tail;
	struct module_timer *timer;
	bool resume, detached, r_out, ending;
	char token[TOKEN_LEN + 1];
};

static unsigned timeout_of(const struct sm *sm)
{
	const struct options *o = module_options(sm->m);

	return (unsigned)o->resume_timeout;
}

static void write_el(struct session *s, const char *name, const char *attr,
		     const char *value, const char *attr2, const char *value2)
{
	struct xml_node *n = xml_new(name, NS_SM);

	if (!n)
		return;
	if (attr)
		xml_attr_set(n, attr, value);
	if (attr2)
		xml_attr_set(n, attr2, value2);
	session_write(s, n);
	xml_unref(n);
}

static void write_a(struct sm *sm)
{
	char h[16];

	sm->last_a = session_settled(sm->s) - sm->in_base;
	snprintf(h, sizeof(h), "%u", sm->last_a);
	write_el(sm->s, "a", "h", h, NULL, NULL);
}

static void write_r(struct sm *sm)
{
	if (sm->r_out || sm->detached || !sm->head)
		return;
	sm->r_out = true;
	write_el(sm->s, "r", NULL, NULL, NULL, NULL);
}

/* ---- the timer: resumption on a detached session, ack age on a live one ---- */

static void arm(struct sm *sm)
{
	time_t now = time(NULL), due;

	if (sm->detached)
		return;	/* armed once at the detach */
	if (!sm->head) {
		module_timer_stop(sm->timer);
		return;
	}
	due = sm->head->queued + (time_t)timeout_of(sm);
	module_timer_start(sm->timer, due > now ? (unsigned long)(due - now) * 1000 : 0, false);
}

static void on_timer(struct module *m, void *arg)
{
	struct sm *sm = arg;
	char why[96];

	(void)m;
	if (sm->detached) {
		log_info("stream_mgmt", "%s: not resumed within %u s: the session ends",
			 session_jid(sm->s)->full, timeout_of(sm));
		session_close(sm->s, "connection-timeout", NULL);	/* frees sm */
		return;
	}
	if (!sm->head || time(NULL) - sm->head->queued < (time_t)timeout_of(sm)) {
		arm(sm);
		return;
	}
	snprintf(why, sizeof(why), "stanzas unacknowledged for %u seconds", timeout_of(sm));
	log_info("stream_mgmt", "%s: %s: closing its stream", session_jid(sm->s)->full, why);
	sm->ending = true;	/* not resumable: the stanzas go to storage now */
	session_close(sm->s, "connection-timeout", why);
}

/* ---- the queue of stanzas sent ---- */

static void item_free(struct item *it, bool delivered)
{
	delivery_release(it->d, delivered);
	xml_unref(it->st);
	free(it);
}

/* Whether another available session of the account got its own copy of a
 * message sent to the bare JID (RFC 6121 §8.5.2.1: all of the best ones). */
static bool delivered_elsewhere(struct sm *sm, const struct xml_node *st,
				const struct jid *bare)
{
	const char *to = xml_attr(st, "to");
	struct session *list[SESSION_RESOURCES_MAX];
	size_t n;

	if (!to || strchr(to, '/'))
		return false;
	n = sm_user_sessions(bare, list, SESSION_RESOURCES_MAX);
	for (size_t i = 0; i < n && i < SESSION_RESOURCES_MAX; i++)
		if (list[i] != sm->s && session_available(list[i]))
			return true;
	return false;
}

/* The session ends for good: what the client never acked is not lost. */
static void store_unacked(struct sm *sm)
{
	struct jid *bare = jid_bare(session_jid(sm->s));
	unsigned stored = 0;

	while (sm->head) {
		struct item *it = sm->head;
		bool ok = true;

		sm->head = it->next;
		if (stanza_kind(it->st) == STANZA_MESSAGE && bare) {
			if (delivery_durable(it->d)) {
				ok = false;	/* still in the store: it stays there */
			} else if (delivered_elsewhere(sm, it->st, bare)) {
				/* no second copy for the next login */
			} else {
				const char *f = xml_attr(it->st, "from");
				struct jid *from = f ? jid_new(f, NULL) : NULL;
				struct hook_args a = { .stanza = it->st, .from = from, .to = bare };
				struct delivery *prev = delivery_enter(it->d);

				if (from && hooks_run(bare->domain, HOOK_OFFLINE_MESSAGE, &a)
				    == HOOK_STOP)
					stored++;
				delivery_leave(prev);
				jid_free(from);
			}
		}
		item_free(it, ok);
	}
	sm->tail = NULL;
	sm->queued = 0;
	if (stored)
		log_info("stream_mgmt", "%s: %u unacknowledged message%s handed to offline "
			 "storage", session_jid(sm->s)->full, stored, stored == 1 ? "" : "s");
	jid_free(bare);
}

static void sm_free(void *p)
{
	struct sm *sm = p;

	while (sm->head) {
		struct item *it = sm->head;

		sm->head = it->next;
		item_free(it, false);
	}
	module_timer_free(sm->timer);
	free(sm);
}

/* The client's <a h/>: everything up to h is delivered. */
static int ack(struct sm *sm, const char *hs)
{
	char *end;
	unsigned long v = hs ? strtoul(hs, &end, 10) : 0;
	uint32_t h = (uint32_t)v, n;

	if (!hs || !*hs || *end || v > 0xffffffffUL)
		return -1;
	n = h - sm->acked;
	if (n > sm->queued)
		return -2;
	for (; n; n--) {
		struct item *it = sm->head;

		sm->head = it->next;
		if (!sm->head)
			sm->tail = NULL;
		sm->queued--;
		item_free(it, true);
	}
	sm->acked = h;
	return 0;
}

static void too_high(struct session *s, const char *hs, uint32_t sent)
{
	struct xml_node *x = xml_new("handled-count-too-high", NS_SM);
	char n[16];

	snprintf(n, sizeof(n), "%u", sent);
	if (x) {
		xml_attr_set(x, "h", hs);
		xml_attr_set(x, "send-count", n);
	}
	session_close_extra(s, "undefined-condition", "you acknowledged more stanzas "
			    "than were sent", x);
	xml_unref(x);
}

/* ---- hooks ---- */

static int on_features(struct module *m, struct hook_args *a)
{
	if (!a->preauth && a->result)
		xml_add_child(a->result, "sm", NS_SM);
	return HOOK_PASS;
}

static void failed_h(struct session *s, struct stream *stream, const char *cond, const char *h)
{
	struct xml_node *f = xml_new("failed", NS_SM);

	if (f && h)
		xml_attr_set(f, "h", h);
	if (f && xml_add_child(f, cond, NS_STANZAS)) {
		if (s)
			session_write(s, f);
		else
			stream_write(stream, f);
	}
	xml_unref(f);
}

static void failed(struct session *s, struct stream *stream, const char *cond)
{
	failed_h(s, stream, cond, NULL);
}

static void enable(struct module *m, struct session *s, const struct xml_node *el)
{
	const char *r = xml_attr(el, "resume");
	struct sm *sm;
	char max[16];

	if (session_data(s, m)) {
		failed(s, NULL, "unexpected-request");
		return;
	}
	sm = calloc(1, sizeof(*sm));
	if (!sm || !(sm->timer = module_timer_new(m, on_timer, sm))) {
		free(sm);
		failed(s, NULL, "internal-server-error");
		return;
	}
	sm->m = m;
	sm->s = s;
	sm->in_base = session_received(s);
	sm->resume = r && (!strcmp(r, "true") || !strcmp(r, "1"));
	session_set_data(s, m, sm, sm_free);
	if (sm->resume) {
		unsigned char rnd[TOKEN_LEN / 2];

		RAND_bytes(rnd, sizeof(rnd));
		for (size_t i = 0; i < sizeof(rnd); i++)
			snprintf(sm->token + 2 * i, 3, "%02x", rnd[i]);
		snprintf(max, sizeof(max), "%u", timeout_of(sm));
		struct xml_node *n = xml_new("enabled", NS_SM);

		if (n) {
			xml_attr_set(n, "id", sm->token);
			xml_attr_set(n, "resume", "true");
			xml_attr_set(n, "max", max);
			session_write(s, n);
			xml_unref(n);
		}
	} else {
		write_el(s, "enabled", NULL, NULL, NULL, NULL);
	}
	log_debug("stream_mgmt", "%s: enabled%s", session_jid(s)->full,
		  sm->resume ? " with resumption" : "");
}

static int on_element(struct module *m, struct hook_args *a)
{
	struct xml_node *el = a->stanza;
	struct sm *sm;

	if (!el->ns || strcmp(el->ns, NS_SM) != 0 || !a->sess)
		return HOOK_PASS;
	sm = session_data(a->sess, m);
	if (!strcmp(el->name, "enable")) {
		enable(m, a->sess, el);
	} else if (!strcmp(el->name, "r")) {
		if (!sm)
			failed(a->sess, NULL, "unexpected-request");
		else {
			sm->asked = session_received(sm->s) - sm->in_base;
			write_a(sm);
		}
	} else if (!strcmp(el->name, "a")) {
		const char *h = xml_attr(el, "h");
		int rc = sm ? ack(sm, h) : 0;

		if (rc == -1) {
			session_close(a->sess, "invalid-xml", "<a/> needs a number in 'h'");
		} else if (rc == -2) {
			too_high(a->sess, h, sm->acked + sm->queued);
		} else if (sm) {
			sm->r_out = false;
			write_r(sm);	/* more went out since our last <r/> */
			arm(sm);
		}
	} else if (!strcmp(el->name, "resume")) {
		failed(a->sess, NULL, "unexpected-request");	/* a bound stream */
	} else {
		session_close(a->sess, "unsupported-stanza-type", NULL);
	}
	return HOOK_STOP;
}

/* Every stanza to a session with stream management goes through its queue. */
static int on_user_recv(struct module *m, struct hook_args *a)
{
	struct sm *sm = session_data(a->sess, m);
	struct item *it;

	if (!sm)
		return HOOK_PASS;
	it = calloc(1, sizeof(*it));
	if (!it)
		return HOOK_PASS;	/* written at least */
	it->st = xml_ref(a->stanza);
	it->queued = time(NULL);
	if (stanza_kind(a->stanza) == STANZA_MESSAGE)
		it->d = delivery_ref(delivery_current());
	if (sm->tail)
		sm->tail->next = it;
	else
		sm->head = it;
	sm->tail = it;
	sm->queued++;
	if (sm->queued > (unsigned)((const struct options *)module_options(m))->max_queue) {
		/* Queued first: the session's end stores it with the others. */
		log_warn("stream_mgmt", "%s: %u stanzas unacknowledged: closing its stream",
			 session_jid(sm->s)->full, sm->queued);
		sm->ending = true;
		session_close(a->sess, "resource-constraint", "too many stanzas "
			      "unacknowledged");	/* frees sm */
		return HOOK_STOP;
	}
	if (!sm->detached) {
		session_write(sm->s, a->stanza);
		write_r(sm);
		if (sm->head == it)
			arm(sm);
	}
	return HOOK_STOP;
}

static int on_lost(struct module *m, struct hook_args *a)
{
	struct sm *sm = session_data(a->sess, m);

	if (!sm || !sm->resume || sm->ending)
		return HOOK_PASS;
	sm->detached = true;
	sm->r_out = false;
	module_timer_start(sm->timer, timeout_of(sm) * 1000ul, false);
	return HOOK_STOP;
}

static int on_closed(struct module *m, struct hook_args *a)
{
	struct sm *sm = session_data(a->sess, m);

	if (sm) {
		module_timer_stop(sm->timer);
		store_unacked(sm);
		if (sm->resume)
			gone_add(sm->token, session_jid(sm->s),
				 session_settled(sm->s) - sm->in_base);
	}
	return HOOK_PASS;
}

static int on_settled(struct module *m, struct hook_args *a)
{
	struct sm *sm = session_data(a->sess, m);

	/* The client asked for more than we could ack then: it has it now. */
	if (sm && !sm->detached && sm->last_a != sm->asked)
		write_a(sm);
	return HOOK_PASS;
}

/* <resume previd h/> on a new authenticated stream, instead of binding. */
static int on_prebind(struct module *m, struct hook_args *a)
{
	struct xml_node *el = a->stanza;
	const char *previd = xml_attr(el, "previd"), *h = xml_attr(el, "h");
	struct session *list[SESSION_RESOURCES_MAX], *s = NULL;
	struct sm *sm = NULL;
	struct jid *bare;
	size_t n;
	char hs[16];

	if (!el->ns || strcmp(el->ns, NS_SM) != 0)
		return HOOK_PASS;
	if (strcmp(el->name, "resume") != 0) {
		/* <enable/> before bind, <r/>...: XEP-0198 §3 wants a bound stream. */
		failed(NULL, a->stream, "unexpected-request");
		return HOOK_STOP;
	}
	bare = jid_make(a->user, a->host, NULL, NULL);
	n = bare ? sm_user_sessions(bare, list, SESSION_RESOURCES_MAX) : 0;
	jid_free(bare);
	for (size_t i = 0; previd && strlen(previd) == TOKEN_LEN && i < n && i < SESSION_RESOURCES_MAX; i++) {
		struct sm *x = session_data(list[i], m);

		if (x && x->resume && !x->ending &&
		    CRYPTO_memcmp(x->token, previd, TOKEN_LEN) == 0) {
			s = list[i];
			sm = x;
			break;
		}
	}
	if (!sm) {
		const struct gone *g = previd && strlen(previd) == TOKEN_LEN ?
				       gone_find(previd, a->user, a->host) : NULL;

		log_info("stream_mgmt", "%s@%s: no session to resume (%s%s)", a->user, a->host,
			 previd ? previd : "no previd", g ? ", ended" : "");
		if (g)
			snprintf(hs, sizeof(hs), "%u", g->h);
		failed_h(NULL, a->stream, "item-not-found", g ? hs : NULL);
		return HOOK_STOP;
	}
	switch (ack(sm, h)) {
	case -1:
		failed(NULL, a->stream, "bad-request");
		return HOOK_STOP;
	case -2:
		failed(NULL, a->stream, "bad-request");
		return HOOK_STOP;
	}
	module_timer_stop(sm->timer);
	sm->detached = false;
	sm->r_out = false;
	session_resume(s, a->stream);
	snprintf(hs, sizeof(hs), "%u", session_settled(s) - sm->in_base);
	sm->last_a = session_settled(s) - sm->in_base;
	write_el(s, "resumed", "previd", sm->token, "h", hs);
	for (struct item *it = sm->head; it; it = it->next)
		session_write(s, it->st);
	write_r(sm);
	arm(sm);
	log_info("stream_mgmt", "%s: resumed, %u stanza%s sent again", session_jid(s)->full,
		 sm->queued, sm->queued == 1 ? "" : "s");
	return HOOK_STOP;
}

static int load(struct module *m)
{
	module_hook(m, HOOK_STREAM_FEATURES, 0, on_features);
	module_hook(m, HOOK_C2S_ELEMENT, 0, on_element);
	module_hook(m, HOOK_C2S_PREBIND, 0, on_prebind);
	/* Last of all: a stanza another module stopped never reaches the client. */
	module_hook(m, HOOK_USER_RECV, -1000, on_user_recv);
	module_hook(m, HOOK_SESSION_LOST, 0, on_lost);
	/* First: the unacked messages are stored before others see the session go. */
	module_hook(m, HOOK_SESSION_CLOSED, 1000, on_closed);
	module_hook(m, HOOK_SESSION_SETTLED, 0, on_settled);
	module_hook(m, HOOK_USER_REMOVED, 0, on_user_removed);
	return 0;
}

PARLEY_MODULE(stream_mgmt,
	.description = "XEP-0198: acks, and resumption of a session after a lost connection",
	.options = options,
	.options_size = sizeof(struct options),
	.load = load);

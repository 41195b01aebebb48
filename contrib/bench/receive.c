/*
 * receive.c - the receiving side of every scenario (see receive.h).
 *
 * Every message the bench sends carries "TIMESTAMP_NS SEQ" in its body. The
 * receiver takes the latency from the same machine's CLOCK_MONOTONIC and
 * marks the sequence number in a bitmap per sender, which yields losses and
 * duplicates without keeping the messages. The body is read in place; only
 * a body with entities or markup is decoded, into a stack buffer.
 *
 * A groupchat message (muc) reaches every occupant, so one bitmap per sender
 * cannot tell the receivers apart: each local receiver keeps the last number
 * it saw from each sender instead, and a number not above it is a duplicate
 * or out of order. Presence from the room goes to muc.c, which only counts
 * it once the occupant is in.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"
#include "muc.h"
#include "offline.h"
#include "options.h"
#include "receive.h"
#include "util.h"
#include "worker.h"

/* Received sequence numbers of one sender. */
struct bits {
	uint64_t *w;
	uint32_t nwords;
};

static struct bits *bits;	/* one per account */
/* muc: [slot * opt.n + sender], the last sequence number + 1, 0 for none */
static uint32_t *last_seq;

void recv_setup(void)
{
	bits = calloc(opt.n, sizeof(*bits));
	if (!bits)
		fatal("out of memory");
	if (opt.sc == SC_MUC) {
		last_seq = calloc((size_t)(W.nslots ? W.nslots : 1) * opt.n, sizeof(*last_seq));
		if (!last_seq)
			fatal("out of memory for the groupchat sequence numbers (%u x %u)",
			      W.nslots, opt.n);
	}
}

/* The account number in a JID written PREFIX<number>@..., or -1. */
static int64_t jid_account(const char *v, size_t vl)
{
	const char *at;
	uint64_t n;

	if (vl <= W.prefix_len || memcmp(v, opt.prefix, W.prefix_len) != 0)
		return -1;
	at = memchr(v, '@', vl);
	if (!at || !parse_u64(v + W.prefix_len, (size_t)(at - v) - W.prefix_len, &n) ||
	    n >= opt.n)
		return -1;
	return (int64_t)n;
}

/* The account number of a groupchat sender, written ROOM/PREFIX<number>, or
 * -1. */
static int64_t nick_account(const char *v, size_t vl)
{
	size_t rl = strlen(opt.room);
	uint64_t n;

	if (vl <= rl + 1 + W.prefix_len || v[rl] != '/' || memcmp(v, opt.room, rl) != 0)
		return -1;
	v += rl + 1;
	vl -= rl + 1;
	if (memcmp(v, opt.prefix, W.prefix_len) != 0 ||
	    !parse_u64(v + W.prefix_len, vl - W.prefix_len, &n) || n >= opt.n)
		return -1;
	return (int64_t)n;
}

/* Marks seq of sender as received; false if it was already. */
static bool bits_set(uint32_t sender, uint32_t seq)
{
	struct bits *b = &bits[sender];
	uint32_t w = seq / 64;
	uint64_t m = 1ull << (seq % 64);

	if (w >= b->nwords) {
		uint32_t n = b->nwords ? b->nwords : 16;
		uint64_t *nw;

		while (n <= w)
			n *= 2;
		nw = realloc(b->w, (size_t)n * sizeof(*nw));
		if (!nw)
			fatal("out of memory for the received-message bitmaps");
		memset(nw + b->nwords, 0, (size_t)(n - b->nwords) * sizeof(*nw));
		b->w = nw;
		b->nwords = n;
	}
	if (b->w[w] & m)
		return false;
	b->w[w] |= m;
	return true;
}

enum mtype { MT_OTHER, MT_ERROR, MT_GROUPCHAT };

/* The message's from and to, and its type as far as counting goes. */
static enum mtype message_attrs(const struct el *e, const char **from, size_t *froml,
				const char **to, size_t *tol)
{
	struct attr_cur a = { e->attrs, e->stag_end };
	const char *n, *v;
	size_t nl, vl;
	enum mtype t = MT_OTHER;

	while (el_attr_next(&a, &n, &nl, &v, &vl)) {
		if (mem_is(n, nl, "from")) {
			*from = v;
			*froml = vl;
		} else if (mem_is(n, nl, "to")) {
			*to = v;
			*tol = vl;
		} else if (mem_is(n, nl, "type")) {
			t = mem_is(v, vl, "error") ? MT_ERROR :
			    mem_is(v, vl, "groupchat") ? MT_GROUPCHAT : MT_OTHER;
		}
	}
	return t;
}

/* "TIMESTAMP_NS SEQ" from the <body/> of e; false if it holds something else. */
static bool message_stamp(const struct el *e, uint64_t *ts, uint64_t *seq)
{
	const char *body, *sp;
	char text[128];
	struct el c;
	size_t bl;

	if (!el_find_child(e, "body", NULL, &c))
		return false;
	body = c.stag_end;
	bl = (size_t)(c.body_end - body);
	if (memchr(body, '&', bl) || memchr(body, '<', bl)) {
		ssize_t tl = el_text(&c, text, sizeof(text));

		if (tl < 0)
			return false;
		body = text;
		bl = (size_t)tl;
	}
	sp = memchr(body, ' ', bl);
	return sp && parse_u64(body, (size_t)(sp - body), ts) &&
	       parse_u64(sp + 1, bl - (size_t)(sp - body) - 1, seq) && *seq <= UINT32_MAX;
}

/* A groupchat message was seen before by this receiver (a duplicate, or one
 * that arrived after a later one); else it is marked as seen. */
static bool seen_groupchat(const struct sess *s, uint32_t sender, uint32_t seq)
{
	uint32_t *last = &last_seq[(size_t)(s - W.s) * opt.n + sender];

	if (seq >= UINT32_MAX || seq + 1 <= *last)
		return true;
	*last = seq + 1;	/* a gap shows as lost: sent x occupants - unique */
	return false;
}

static void on_message(struct sess *s, const struct el *e)
{
	const char *from = NULL, *to = NULL;
	size_t froml = 0, tol = 0;
	uint64_t ts, seq, now, lat;
	int64_t sender, rcpt;
	enum mtype t;
	bool room;	/* a groupchat message of the muc scenario */
	struct el c;

	W.rx_total++;
	t = message_attrs(e, &from, &froml, &to, &tol);
	if (t == MT_ERROR) {
		W.bounced++;
		if (W.step_open)
			W.rep.bounced++;
		if (!W.bounce_cond[0] && el_find_child(e, "error", NULL, &c))
			el_condition(&c, W.bounce_cond, sizeof(W.bounce_cond));
		return;
	}
	room = t == MT_GROUPCHAT && last_seq;
	if (room) {
		sender = from ? nick_account(from, froml) : -1;
		/* The room's own messages (status, a welcome) and subjects are
		 * none of the bench's. */
		if (sender < 0 && (!el_find_child(e, "body", NULL, &c) ||
				   (from && mem_is(from, froml, opt.room))))
			return;
	} else {
		sender = from ? jid_account(from, froml) : -1;
	}
	if (sender < 0 || !message_stamp(e, &ts, &seq)) {
		W.foreign++;
		return;
	}
	if (ts < opt.run_start) {
		/* Sent by an earlier run (a server that kept it, offline): it says
		 * nothing about this one and must not hide a loss. */
		W.stale++;
		return;
	}
	rcpt = to ? jid_account(to, tol) : -1;
	if (rcpt != (int64_t)s->idx)
		W.misrouted++;
	now = now_ns();
	W.last_rx = now;
	if (room ? seen_groupchat(s, (uint32_t)sender, (uint32_t)seq)
		 : !bits_set((uint32_t)sender, (uint32_t)seq)) {
		W.dup++;
		return;
	}
	W.unique++;
	lat = now > ts ? (now - ts) / 1000 : 0;
	if (W.step_open) {
		if (ts >= W.step_start) {
			W.rep.delivered++;
			hist_add(&W.rep.h, lat);
		} else {
			W.rep.late++;
		}
	}
}

/* A ping (XEP-0199) gets its result; anything else is not served here. */
static void on_iq_request(struct sess *s, const struct el *e, const char *id, size_t idl)
{
	char buf[1024], *p = buf, *lim = buf + sizeof(buf) - 200;
	struct el c = { 0 };
	bool ping = el_next_child(e, &c) > 0 && el_is(&c, "ping", NS_PING);
	const char *from;
	size_t froml = 0;

	p = put_mem(p, "<iq type='", 10);
	p = ping ? put_mem(p, "result", 6) : put_mem(p, "error", 5);
	p = put_mem(p, "' id='", 6);
	p = put_attr_raw(p, lim, id, idl);
	if (el_attr(e, "from", &from, &froml)) {
		p = put_mem(p, "' to='", 6);
		p = put_attr_raw(p, lim, from, froml);
	}
	if (ping)
		p = put_mem(p, "'/>", 3);
	else
		p += snprintf(p, 200, "'><error type='cancel'><service-unavailable xmlns='"
			      NS_STANZAS "'/></error></iq>");
	sess_write(s, buf, (size_t)(p - buf));
	if (s->sm_on)
		s->sm_out++;
}

static void on_iq(struct sess *s, const struct el *e)
{
	const char *id, *type;
	size_t idl, typel;

	if (!el_attr(e, "type", &type, &typel))
		return;
	if (!el_attr(e, "id", &id, &idl))
		id = "", idl = 0;
	if (mem_is(type, typel, "result") || mem_is(type, typel, "error")) {
		if (mem_is(id, idl, "fin"))
			offline_fin(s);
		else if (mem_is(id, idl, MUC_OWNER_ID))
			muc_owner_answer(s, e, mem_is(type, typel, "error"));
		return;
	}
	if (mem_is(type, typel, "get") || mem_is(type, typel, "set"))
		on_iq_request(s, e, id, idl);
}

int recv_online(struct sess *s, const struct el *e)
{
	const char *v;
	size_t vl;
	char buf[64];

	switch (e->name_len) {
	case 7:
		if (memcmp(e->name, "message", 7) == 0) {
			s->sm_in++;
			on_message(s, e);
		}
		break;
	case 2:
		if (memcmp(e->name, "iq", 2) == 0) {
			s->sm_in++;
			on_iq(s, e);
		}
		break;
	case 8:
		if (memcmp(e->name, "presence", 8) == 0) {
			s->sm_in++;
			if (opt.sc == SC_MUC)
				muc_presence(s, e);
		}
		break;
	case 1:
		if (e->name[0] == 'r' && s->sm_on) {
			int n = snprintf(buf, sizeof(buf), "<a xmlns='" NS_SM "' h='%" PRIu32
					 "'/>", s->sm_in);

			sess_write(s, buf, (size_t)n);
		} else if (e->name[0] == 'a' && s->sm_on && el_attr(e, "h", &v, &vl)) {
			offline_ack(s, v, vl);
		}
		break;
	}
	return H_OK;
}

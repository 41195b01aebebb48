/*
 * muc.c - the muc scenario (see muc.h): the join phase, and the parent's
 * outline of the run. The steps are chat.c's, with the occupants as senders
 * and groupchat messages to the room.
 *
 * A new room is locked (XEP-0045 §10.1.1: Parley and Prosody refuse others
 * with item-not-found) until its owner accepts the default configuration. So
 * the first account online joins alone, and once its self-presence is in it
 * submits the empty instant-room form and waits for the answer; an error
 * (the room was there, someone else owns it) is reported and the run goes
 * on. Then the others join, paced like logins, each done when the presence
 * from its own nick comes back (or an error, whose condition is counted).
 *
 * Joins cost the server O(N^2) presences: occupant k gets k others' and its
 * own, and the k already in get its. A receiver only compares the from of a
 * presence with the room and counts it; only a joining occupant looks
 * further, at its own.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "chat.h"
#include "json.h"
#include "login.h"
#include "muc.h"
#include "options.h"
#include "parent.h"
#include "proc.h"
#include "util.h"

#define SETTLE_QUIET_NS	300000000ull	/* settled: no presence for this long */

/* The join failures as the JSON names them (JOIN_CONDS); "other" is any
 * condition not listed. */
static const char *const cond_names[JOIN_CONDS] = {
	"timeout", "closed", "unavailable", "other", "item-not-found", "conflict",
	"service-unavailable", "forbidden", "not-authorized", "registration-required",
	"not-allowed", "resource-constraint", "jid-malformed", "internal-server-error",
};
enum { JC_TIMEOUT, JC_CLOSED, JC_UNAVAILABLE, JC_OTHER };

enum { J_OUT, J_JOINING, J_IN, J_FAILED };

/* ---- in a worker ---- */

static uint8_t *jstate;			/* per slot */
static uint64_t *jt0;			/* per slot: its join presence went out */
static uint32_t *queue, nqueue, jnext, jpending;
static int phase = -1;			/* MJ_*, -1 between phases */
static uint64_t t_phase;
static int64_t creator = -1;		/* the slot that makes the room, if here */
static bool owner_wait;			/* the form is out, its answer is not in */
static uint64_t owner_t, presences, last_presence;
static size_t room_len;
static struct event *pace_ev;

static void phase_report(void)
{
	phase = -1;
	W.rep.presences = presences;
	report_send(R_MJOINED, NULL, 0);
}

static int cond_index(const char *name)
{
	for (int i = JC_OTHER + 1; i < JOIN_CONDS; i++)
		if (strcmp(name, cond_names[i]) == 0)
			return i;
	return JC_OTHER;
}

/* The instant room (§10.1.2): the default configuration, accepted as it is. */
static void send_owner_form(struct sess *s)
{
	char buf[1024];
	int n = snprintf(buf, sizeof(buf), "<iq type='set' id='" MUC_OWNER_ID "' to='%s'>"
			 "<query xmlns='" NS_MUC "#owner'><x xmlns='jabber:x:data' "
			 "type='submit'/></query></iq>", opt.room);

	sess_write(s, buf, (size_t)n);
	if (s->sm_on)
		s->sm_out++;
	owner_wait = true;
	owner_t = now_ns();
}

static void rest_check_done(void)
{
	if (phase == MJ_REST && jnext >= nqueue && jpending == 0)
		phase_report();
}

/* The end of slot's join, exactly once: in, or failed with condition c. */
static void join_end(uint32_t slot, bool ok, int c, const char *why)
{
	struct sess *s = &W.s[slot];
	uint64_t now = now_ns();

	jpending--;
	jstate[slot] = ok ? J_IN : J_FAILED;
	if (ok) {
		W.rep.ok++;
		hist_add(&W.rep.h, (now - jt0[slot]) / 1000);
		if (now > W.rep.t_last)
			W.rep.t_last = now;
	} else {
		W.rep.failed++;
		W.rep.join_fail[c]++;
		if (!W.rep.first_error[0]) {
			char name[300];

			snprintf(W.rep.first_error, sizeof(W.rep.first_error), "%.80s: %.110s",
				 sess_name(s, name, sizeof(name)), why);
		}
		if (opt.verbose)
			note("join failed: %s", why);
	}
	if (phase == MJ_CREATE) {
		if (ok && s->state == S_ONLINE)
			send_owner_form(s);
		else
			phase_report();
	} else {
		rest_check_done();
	}
}

static void join_send(uint32_t slot)
{
	struct sess *s = &W.s[slot];
	const char *bare = W.jids + W.jid_off[s->idx];
	const char *at = memchr(bare, '@', W.bare_len[s->idx]);
	char buf[1024];
	int n;

	jpending++;
	W.rep.attempted++;
	jt0[slot] = now_ns();
	if (!W.rep.t_first)
		W.rep.t_first = jt0[slot];
	jstate[slot] = J_JOINING;
	if (s->state != S_ONLINE || !at) {
		join_end(slot, false, JC_CLOSED, "the session was gone before it could join");
		return;
	}
	/* No history: the bench counts only what is sent while it measures. */
	n = snprintf(buf, sizeof(buf), "<presence to='%s/%.*s'><x xmlns='" NS_MUC "'>"
		     "<history maxstanzas='0'/></x></presence>", opt.room, (int)(at - bare), bare);
	sess_write(s, buf, (size_t)n);
	if (s->sm_on)
		s->sm_out++;
}

static void pace_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t now = now_ns(), allowed = UINT64_MAX;
	double rate = opt.join_rate / opt.j;
	uint32_t cap = opt.max_pending / (uint32_t)opt.j;

	(void)fd, (void)what, (void)arg;
	if (cap < 1)
		cap = 1;
	if (rate > 0)
		allowed = (uint64_t)((double)(now - t_phase) / 1e9 * rate) + 1;
	while (phase == MJ_REST && jnext < nqueue && jnext < allowed && jpending < cap)
		join_send(queue[jnext++]);
	if (jnext >= nqueue)
		event_del(pace_ev);
}

/* A message to the room from s, stamped like chat's (chat_builder). */
static size_t muc_message(char *p, const struct sess *s, uint32_t seq)
{
	(void)s;
	return stamped_message(p, "groupchat", opt.room, room_len, seq);
}

/* The joins are over: the occupants here are chat.c's senders from now on,
 * once the last presences are in. */
static void settle_begin(void)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < W.nslots; i++)
		if (jstate[i] == J_IN && W.s[i].state == S_ONLINE)
			queue[n++] = i;
	chat_set_senders(queue, n, muc_message);
	W.rep.ok = n;
	last_presence = t_phase;
}

void muc_join(const struct cmd *c)
{
	struct timeval tv = { 0, 1000 };

	rep_reset();
	phase = (int)c->which;
	t_phase = now_ns();
	switch (c->which) {
	case MJ_CREATE:
		presences = 0;
		if (c->account >= W.send_first && c->account - W.send_first < W.nslots) {
			creator = c->account - W.send_first;
			join_send((uint32_t)creator);
		} else {
			phase_report();
		}
		break;
	case MJ_REST:
		nqueue = jnext = 0;
		for (uint32_t i = 0; i < W.nslots; i++)
			if (jstate[i] == J_OUT && W.s[i].state == S_ONLINE)
				queue[nqueue++] = i;
		if (nqueue == 0) {
			phase_report();
			break;
		}
		if (event_add(pace_ev, &tv) < 0)
			fatal("event_add failed");
		pace_cb(-1, 0, NULL);
		break;
	case MJ_SETTLE:
		settle_begin();
		break;
	default:
		fatal("unknown join phase %u", c->which);
	}
}

/* The nick after "ROOM/" is this account's localpart. */
static bool own_nick(const struct sess *s, const char *nick, size_t nl)
{
	const char *bare = W.jids + W.jid_off[s->idx];
	const char *at = memchr(bare, '@', W.bare_len[s->idx]);

	return at && nl == (size_t)(at - bare) && memcmp(nick, bare, nl) == 0;
}

/* Status 201 in the self-presence: the room is new (§10.1.1). */
static bool room_is_new(const struct el *e)
{
	struct el x, st = { 0 };

	if (!el_find_child(e, "x", NS_MUC "#user", &x))
		return false;
	while (el_next_child(&x, &st) > 0)
		if (el_is(&st, "status", NULL) && el_attr_is(&st, "code", "201"))
			return true;
	return false;
}

void muc_presence(struct sess *s, const struct el *e)
{
	uint32_t slot = (uint32_t)(s - W.s);
	const char *from, *type;
	size_t fl, tl;
	char cond[64];
	struct el c;

	if (!el_attr(e, "from", &from, &fl) || fl < room_len ||
	    memcmp(from, opt.room, room_len) != 0 || (fl > room_len && from[room_len] != '/'))
		return;
	presences++;
	if (phase == MJ_SETTLE)
		last_presence = now_ns();
	if (jstate[slot] != J_JOINING || fl <= room_len + 1 ||
	    !own_nick(s, from + room_len + 1, fl - room_len - 1))
		return;
	if (!el_attr(e, "type", &type, &tl)) {
		if (slot == creator && room_is_new(e))
			W.rep.room_created = 1;
		join_end(slot, true, 0, NULL);
	} else if (mem_is(type, tl, "error")) {
		snprintf(cond, sizeof(cond), "(none)");
		if (el_find_child(e, "error", NULL, &c))
			el_condition(&c, cond, sizeof(cond));
		join_end(slot, false, cond_index(cond), cond);
	} else if (mem_is(type, tl, "unavailable")) {
		join_end(slot, false, JC_UNAVAILABLE, "unavailable at once (kicked or refused)");
	}
}

void muc_owner_answer(struct sess *s, const struct el *e, bool error)
{
	struct el c;

	if (!owner_wait || s - W.s != creator)
		return;
	owner_wait = false;
	if (!error)
		W.rep.room_configured = 1;
	else if (el_find_child(e, "error", NULL, &c))
		el_condition(&c, W.rep.owner_cond, sizeof(W.rep.owner_cond));
	else
		snprintf(W.rep.owner_cond, sizeof(W.rep.owner_cond), "(none)");
	if (phase == MJ_CREATE)
		phase_report();
}

void muc_lost(struct sess *s)
{
	uint32_t slot = (uint32_t)(s - W.s);

	if (!jstate)
		return;
	if (jstate[slot] == J_JOINING) {
		join_end(slot, false, JC_CLOSED, "the session closed while it joined");
	} else if (owner_wait && slot == creator) {
		owner_wait = false;
		snprintf(W.rep.owner_cond, sizeof(W.rep.owner_cond), "closed");
		if (phase == MJ_CREATE)
			phase_report();
	}
}

void muc_sweep(uint64_t now)
{
	uint64_t limit = (uint64_t)(opt.login_timeout_s * 1e9);

	if (!jstate || phase < 0)
		return;
	if (phase == MJ_SETTLE) {
		if (now - last_presence > SETTLE_QUIET_NS ||
		    now - t_phase > (uint64_t)(opt.drain_s * 1e9))
			phase_report();
		return;
	}
	for (uint32_t i = 0; i < W.nslots && phase >= 0; i++)
		if (jstate[i] == J_JOINING && now - jt0[i] > limit)
			join_end(i, false, JC_TIMEOUT, "no self-presence from the room in time");
	if (phase == MJ_CREATE && owner_wait && now - owner_t > limit) {
		owner_wait = false;
		snprintf(W.rep.owner_cond, sizeof(W.rep.owner_cond), "timeout");
		phase_report();
	}
}

void muc_setup(void)
{
	size_t n = W.nslots ? W.nslots : 1;

	jstate = calloc(n, sizeof(*jstate));
	jt0 = calloc(n, sizeof(*jt0));
	queue = calloc(n, sizeof(*queue));
	if (!jstate || !jt0 || !queue)
		fatal("out of memory");
	room_len = strlen(opt.room);
	pace_ev = event_new(W.base, -1, EV_PERSIST, pace_cb, NULL);
	if (!pace_ev)
		fatal("cannot set up events");
}

/* ---- in the parent ---- */

static uint32_t occupants;	/* in the room when the steps began */

/* One phase of the join in every worker; -1 if the workers failed. */
static int join_phase(uint32_t which, uint32_t account, struct report *sum)
{
	struct cmd c = { .which = which, .account = account };

	if (send_all(C_MJOIN, &c, NULL, 0) < 0 || wait_reports(R_MJOINED, 0) < 0)
		return -1;
	sum_reports(sum);
	return 0;
}

static void json_failures(const struct report *s)
{
	j_open("join_failures", '{');
	for (int i = 0; i < JOIN_CONDS; i++)
		if (s->join_fail[i])
			j_u64(cond_names[i], s->join_fail[i]);
	j_close('}');
}

/* The room's creation: its figures; -1 if the run cannot go on. */
static int muc_create(uint32_t account, struct report *cr)
{
	P.phase = "making the room";
	if (join_phase(MJ_CREATE, account, cr) < 0)
		return -1;
	j_str("room", opt.room);
	j_bool("room_created", cr->room_created);
	j_bool("room_configured", cr->room_configured);
	if (cr->owner_cond[0])
		j_str("room_config_error", cr->owner_cond);
	j_num("room_join_ms", cr->h.n ? (double)cr->h.max / 1000 : NAN, 3);
	note("room %s: %s%s%s%s%s", opt.room, cr->ok ? "joined" : "could not join",
	     cr->room_created ? ", new" : "", cr->room_configured ? ", configured" : "",
	     cr->owner_cond[0] ? ", form refused: " : "", cr->owner_cond);
	if (!cr->ok) {
		set_error("the first account could not join %s: %s", opt.room,
			  cr->first_error[0] ? cr->first_error : "no answer");
		return -1;
	}
	return 0;
}

/* The others join; their figures, the phase's CPU from srv0 and before[]. */
static int muc_join_rest(const struct report *cr, double srv0, const double *before,
			 uint64_t t0)
{
	struct report js, st;
	double cpu, mx, srv, wall, secs;
	uint32_t joined;

	P.phase = "joining the room";
	if (join_phase(MJ_REST, 0, &js) < 0)
		return -1;
	P.phase = "settling the room";
	if (join_phase(MJ_SETTLE, 0, &st) < 0)
		return -1;
	cpu = workers_cpu(&mx, before, NULL);
	srv = server_cpu() - srv0;
	wall = (double)(now_ns() - t0) / 1e9;
	secs = js.t_last > js.t_first ? (double)(js.t_last - js.t_first) / 1e9 : NAN;
	joined = cr->ok + js.ok;
	occupants = st.ok;	/* those still online, who send and receive */
	j_num("join_rate_limit", opt.join_rate, 0);
	j_u64("joined", joined);
	j_u64("join_failed", cr->failed + js.failed);
	json_failures(&js);
	if (js.first_error[0])
		j_str("join_first_error", js.first_error);
	j_num("join_seconds", secs, 3);
	j_num("joins_per_s", js.ok > 1 ? (double)js.ok / secs : NAN, 1);
	j_num("join_ms_p50", hist_pct(&js.h, 0.50) / 1000, 3);
	j_num("join_ms_p99", hist_pct(&js.h, 0.99) / 1000, 3);
	j_num("join_ms_max", js.h.n ? (double)js.h.max / 1000 : NAN, 3);
	j_u64("join_presences_received", st.presences);
	j_u64("join_presences_expected", (uint64_t)joined * joined);
	j_num("join_bench_cpu_s", cpu, 2);
	j_num("join_bench_cpu_share", wall > 0 ? mx / wall : NAN, 3);
	j_bool("join_bench_bottleneck", wall > 0 && mx / wall > 0.9);
	j_num("join_server_cpu_s", srv, 2);
	j_num("join_server_cpu_ms_per_join", joined ? srv * 1000 / joined : NAN, 3);
	j_u64("occupants", occupants);
	note("%u joined, %u failed in %.1f s, %" PRIu64 " presences of %" PRIu64 "%s%s",
	     joined, cr->failed + js.failed, wall, st.presences, (uint64_t)joined * joined,
	     js.first_error[0] ? "; first error: " : "", js.first_error);
	if (occupants < 2) {
		set_error("fewer than two occupants in %s", opt.room);
		return -1;
	}
	return 0;
}

void scenario_muc(void)
{
	struct report sum, cr;
	double before[MAX_WORKERS], srv0;
	uint64_t t0;
	uint32_t first = 0;

	P.phase = "logging in";
	if (phase_login(0, "", &sum) < 0)
		return;
	if (sum.ok < 2) {
		set_error("fewer than two sessions online");
		return;
	}
	while (!(P.pmap[first / 8] & (1u << (first % 8))))
		first++;	/* the first account online makes the room */
	t0 = now_ns();
	workers_cpu(NULL, NULL, before);
	srv0 = server_cpu();
	if (muc_create(first, &cr) < 0 || muc_join_rest(&cr, srv0, before, t0) < 0)
		return;
	chat_run_steps(occupants);
}

void muc_goodbye(const struct report *sum)
{
	uint64_t expected = sum->sent * occupants;

	j_u64("total_sent", sum->sent);
	j_u64("total_expected_deliveries", expected);
	j_u64("total_received_unique", sum->unique);
	/* A gap in one receiver's numbers, or messages that never came. */
	j_u64("lost", expected > sum->unique ? expected - sum->unique : 0);
	j_u64("out_of_order", sum->dup);
	j_u64("misrouted", sum->misrouted);
	j_u64("unparsed_messages", sum->foreign);
	j_u64("stale_from_earlier_runs", sum->stale);
	j_u64("bounced", sum->bounced);
	if (sum->bounce_cond[0])
		j_str("bounce_condition", sum->bounce_cond);
}

/*
 * stream.c - a session's stream negotiation (see stream.h), one handler per
 * state: each reads the server's element in place and writes the next
 * request. Probe sessions stop after SASL, registration sessions after the
 * register result; only login sessions bind and go online.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "login.h"
#include "options.h"
#include "receive.h"
#include "sasl.h"
#include "stream.h"
#include "worker.h"

static int login_complete(struct sess *s)
{
	sess_puts(s, "<presence/>");
	if (s->sm_on)
		s->sm_out++;
	s->state = S_ONLINE;
	login_finished(s, true, F_COUNT, NULL);
	return H_OK;
}

static int send_auth(struct sess *s, bool plain, bool s1, bool s256)
{
	char buf[700], b64[600], name[300];
	enum sasl_choice mech;
	const char *why;

	if (!sasl_pick(plain, s1, s256, s->tls_on, &mech)) {
		sess_fail(s, F_NEGOTIATION,
			  "the server offers no usable SASL mechanism for --sasl %s",
			  sasl_names[opt.sasl]);
		return H_GONE;
	}
	if (mech == SASL_PLAIN && !s->tls_on) {
		sess_fail(s, F_NEGOTIATION, "PLAIN is only used over TLS");
		return H_GONE;
	}
	sess_user(s, name, sizeof(name));
	if (sasl_initial(mech, name, &s->scram, b64, sizeof(b64), &why) < 0) {
		sess_fail(s, F_INTERNAL, "%s", why);
		return H_GONE;
	}
	snprintf(W.rep.mech, sizeof(W.rep.mech), "%s", sasl_mech_text(mech));
	snprintf(buf, sizeof(buf), "<auth xmlns='" NS_SASL "' mechanism='%s'>%s</auth>",
		 sasl_mech_text(mech), b64);
	s->state = S_AUTH;
	sess_puts(s, buf);
	return H_OK;
}

static int send_register(struct sess *s)
{
	char buf[1024], name[300], pw[512];

	sess_user(s, name, sizeof(name));
	if (xml_escape(opt.password, pw, sizeof(pw)) < 0) {
		sess_fail(s, F_INTERNAL, "password too long");
		return H_GONE;
	}
	snprintf(buf, sizeof(buf), "<iq type='set' id='reg'><query xmlns='" NS_REGISTER "'>"
		 "<username>%s</username><password>%s</password></query></iq>", name, pw);
	s->state = S_REG;
	sess_puts(s, buf);
	return H_OK;
}

struct features {
	bool starttls, plain, s1, s256, bind;
};

static void read_mechanisms(const struct el *c, struct features *ft)
{
	struct el m = { 0 };
	char text[64];

	while (el_next_child(c, &m) > 0) {
		if (!el_is(&m, "mechanism", NULL) || el_text(&m, text, sizeof(text)) < 0)
			continue;
		ft->plain |= strcmp(text, "PLAIN") == 0;
		ft->s1 |= strcmp(text, "SCRAM-SHA-1") == 0;
		ft->s256 |= strcmp(text, "SCRAM-SHA-256") == 0;
	}
}

/* What <stream:features/> offers; the session's own flags are set here.
 * -1 if malformed. */
static int read_features(struct sess *s, const struct el *f, struct features *ft)
{
	struct el c = { 0 };
	int r;

	s->need_session = s->sm_offered = false;
	while ((r = el_next_child(f, &c)) > 0) {
		if (el_is(&c, "starttls", NS_TLS)) {
			ft->starttls = true;
		} else if (el_is(&c, "mechanisms", NS_SASL)) {
			read_mechanisms(&c, ft);
		} else if (el_is(&c, "bind", NS_BIND)) {
			ft->bind = true;
		} else if (el_is(&c, "session", NS_SESSION)) {
			/* RFC 3921 sessions: only when the server does not say optional. */
			struct el o = { 0 };
			bool optional = false;

			while (el_next_child(&c, &o) > 0)
				optional |= el_is(&o, "optional", NULL);
			s->need_session = !optional;
		} else if (el_is(&c, "sm", NULL) && el_attr_is(&c, "xmlns", NS_SM)) {
			s->sm_offered = true;
		}
	}
	return r;
}

static int on_features(struct sess *s, const struct el *f)
{
	struct features ft = { 0 };
	char buf[256];

	if (read_features(s, f, &ft) < 0) {
		sess_fail(s, F_PROTOCOL, "malformed stream features");
		return H_GONE;
	}
	if (!s->authed) {
		if (!s->tls_on && opt.tls == TLS_STARTTLS) {
			if (!ft.starttls) {
				sess_fail(s, F_NEGOTIATION, "the server does not offer STARTTLS");
				return H_GONE;
			}
			s->state = S_STARTTLS;
			sess_puts(s, "<starttls xmlns='" NS_TLS "'/>");
			return H_OK;
		}
		if (s->purpose == P_IBR)
			return send_register(s);
		return send_auth(s, ft.plain, ft.s1, ft.s256);
	}
	if (!ft.bind) {
		sess_fail(s, F_BIND, "the server offers no resource binding");
		return H_GONE;
	}
	if (s->sm_offered)
		W.sm_offered = true;
	snprintf(buf, sizeof(buf), "<iq type='set' id='bind'><bind xmlns='" NS_BIND
		 "'><resource>%s</resource></bind></iq>", opt.resource);
	s->state = S_BIND;
	sess_puts(s, buf);
	return H_OK;
}

static int on_sasl_success(struct sess *s)
{
	if (s->scram && !sasl_scram_verified(s->scram)) {
		sess_fail(s, F_AUTH, "SCRAM: the server did not prove it knows the key");
		return H_GONE;
	}
	free(s->scram);
	s->scram = NULL;
	s->authed = true;
	if (s->purpose == P_PROBE) {
		login_finished(s, true, F_COUNT, NULL);
		sess_close(s);
		return H_OK;
	}
	sess_send_header(s);		/* RFC 6120 §6.4.6: restart the stream */
	return H_RESTART;
}

static int on_sasl(struct sess *s, const struct el *e)
{
	char text[2048], msg[1024], b64[924], cond[64];
	bool challenge = el_is(e, "challenge", NULL);
	const char *why;
	ssize_t tl;
	size_t ml;
	int rc;

	if (el_is(e, "failure", NULL)) {
		el_condition(e, cond, sizeof(cond));
		sess_fail(s, F_AUTH, "SASL failure: %s", cond);
		return H_GONE;
	}
	if (!challenge && !el_is(e, "success", NULL)) {
		sess_fail(s, F_PROTOCOL, "unexpected <%.*s/> during SASL", (int)e->qname_len,
			  e->qname);
		return H_GONE;
	}
	tl = el_text(e, text, sizeof(text));
	if (tl < 0 || sasl_decode(text, (size_t)tl, msg, sizeof(msg), &ml) < 0) {
		sess_fail(s, F_PROTOCOL, "bad base64 in SASL");
		return H_GONE;
	}
	rc = s->scram && ml > 0 ? sasl_scram_step(s->scram, msg, challenge, b64, sizeof(b64),
						  &why) : 0;
	if (rc < 0) {
		sess_fail(s, rc == SASL_E_AUTH ? F_AUTH : F_INTERNAL, "%s", why);
		return H_GONE;
	}
	if (rc > 0) {
		snprintf(msg, sizeof(msg), "<response xmlns='" NS_SASL "'>%s</response>", b64);
		sess_puts(s, msg);
		return H_OK;
	}
	if (challenge) {
		/* Extra data before success (the v= of older servers): ack it. */
		sess_puts(s, "<response xmlns='" NS_SASL "'/>");
		return H_OK;
	}
	return on_sasl_success(s);
}

static int on_register_result(struct sess *s, const struct el *e, bool ok)
{
	char cond[64];
	struct el c;

	if (ok) {
		W.rep.registered++;
	} else {
		if (el_find_child(e, "error", NULL, &c))
			el_condition(&c, cond, sizeof(cond));
		else
			snprintf(cond, sizeof(cond), "(none)");
		if (strcmp(cond, "conflict") == 0) {
			W.rep.existing++;
		} else {
			W.rep.reg_failed++;
			sess_fail(s, F_AUTH, "in-band registration failed: %s", cond);
			return H_GONE;
		}
	}
	login_finished(s, true, F_COUNT, NULL);
	sess_close(s);
	return H_OK;
}

/* Bound (and with a session, if the server wants one): enable stream
 * management for offline senders, else go online. */
static int after_session(struct sess *s)
{
	if (opt.sc == SC_OFFLINE && opt.sm && s->sm_offered && s - W.s < (ptrdiff_t)W.nsend) {
		s->state = S_SM;
		sess_puts(s, "<enable xmlns='" NS_SM "'/>");
		return H_OK;
	}
	return login_complete(s);
}

static int on_bind_result(struct sess *s, const struct el *e, bool ok)
{
	char text[1024];
	struct el c, j;

	if (!ok) {
		sess_fail(s, F_BIND, "resource binding refused");
		return H_GONE;
	}
	if (el_find_child(e, "bind", NULL, &c) && el_find_child(&c, "jid", NULL, &j) &&
	    el_text(&j, text, sizeof(text)) >= 0) {
		const char *mine = W.jids + W.jid_off[s->idx];

		if (!mem_is(mine, W.jid_len[s->idx], text))
			W.rep.resource_changed++;
	}
	if (s->need_session) {
		s->state = S_SESSION;
		sess_puts(s, "<iq type='set' id='sess'><session xmlns='" NS_SESSION "'/></iq>");
		return H_OK;
	}
	return after_session(s);
}

static int on_iq_result(struct sess *s, const struct el *e)
{
	bool ok = el_attr_is(e, "type", "result");
	const char *id;
	size_t idl;

	if (!el_attr(e, "id", &id, &idl) || idl >= 16)
		return H_OK;
	if (s->state == S_REG && mem_is(id, idl, "reg"))
		return on_register_result(s, e, ok);
	if (s->state == S_BIND && mem_is(id, idl, "bind"))
		return on_bind_result(s, e, ok);
	if (s->state == S_SESSION && mem_is(id, idl, "sess")) {
		if (!ok) {
			sess_fail(s, F_BIND, "session establishment refused");
			return H_GONE;
		}
		return after_session(s);
	}
	return H_OK;	/* somebody else's answer */
}

/* An element during the negotiation, by the state it came in. */
static int negotiate(struct sess *s, const struct el *e)
{
	switch (s->state) {
	case S_HEADER:
		if (el_is(e, "features", NULL))
			return on_features(s, e);
		break;
	case S_STARTTLS:
		if (el_is(e, "proceed", NS_TLS)) {
			sess_start_tls(s);
			return H_GONE;	/* the plain bufferevent and its input are gone */
		}
		sess_fail(s, F_NEGOTIATION, "STARTTLS refused");
		return H_GONE;
	case S_AUTH:
		return on_sasl(s, e);
	case S_REG:
	case S_BIND:
	case S_SESSION:
		return el_is(e, "iq", NULL) ? on_iq_result(s, e) : H_OK;
	case S_SM:
		if (el_is(e, "enabled", NULL)) {
			s->sm_on = true;
			W.sm_used = true;
			return login_complete(s);
		}
		if (el_is(e, "failed", NULL))
			return login_complete(s);
		return H_OK;
	case S_CLOSING:
		return H_OK;
	default:
		break;
	}
	sess_fail(s, F_PROTOCOL, "unexpected <%.*s/> from the server", (int)e->qname_len,
		  e->qname);
	return H_GONE;
}

int stream_element(struct sess *s, enum scan_ev ev, const char *p, size_t len)
{
	struct el e;
	char cond[64];

	if (ev == SCAN_CLOSE) {
		if (s->state == S_CLOSING)
			sess_drop(s);
		else
			sess_fail(s, F_CLOSED, "the server ended the stream");
		return H_GONE;
	}
	if (ev == SCAN_HEADER) {
		/* over WebSocket, ws.c hands <open/> over as the header */
		if (el_header(&e, p, len) < 0 ||
		    !mem_is(e.name, e.name_len, s->ws ? "open" : "stream")) {
			sess_fail(s, F_PROTOCOL, "no stream header from the server");
			return H_GONE;
		}
		return H_OK;
	}
	if (el_top(&e, p, len) < 0) {
		sess_fail(s, F_PROTOCOL, "malformed element from the server");
		return H_GONE;
	}
	if (s->state == S_ONLINE && (e.qname == e.name || !mem_is(e.name, e.name_len, "error")))
		return recv_online(s, &e);
	if (mem_is(e.name, e.name_len, "error") && e.name != e.qname) {
		/* <stream:error/> */
		el_condition(&e, cond, sizeof(cond));
		if (s->state == S_CLOSING) {
			sess_drop(s);
			return H_GONE;
		}
		sess_fail(s, F_STREAM_ERROR, "stream error: %s", cond);
		return H_GONE;
	}
	return negotiate(s, &e);
}

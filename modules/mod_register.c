/*
 * mod_register - XEP-0077 In-Band Registration.
 *
 * Off by default (allow-registration="false"): a public server that lets anyone
 * create accounts attracts spammers. When on, each address may register
 * `rate` accounts an hour. Logged-in users can always change their password and,
 * with allow-remove, delete their account.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "module.h"
#include "session.h"
#include "stanza.h"
#include "users.h"

#define RATE_SLOTS 256	/* addresses remembered for the rate limit */

struct options {
	bool allow_registration, allow_remove;
	long long rate, min_password_length;
};

#define AT(f) MODULE_OPTION_AT(struct options, f)
static const struct module_option options[] = {
	{ "allow-registration", OPT_BOOL, "false", 0, 0, AT(allow_registration),
	  "let unauthenticated clients create accounts" },
	{ "rate", OPT_INT, "5", 1, 100000, AT(rate),
	  "accounts one address may create per hour" },
	{ "min-password-length", OPT_INT, "8", 1, 1023, AT(min_password_length),
	  "shortest password accepted" },
	{ "allow-remove", OPT_BOOL, "true", 0, 0, AT(allow_remove),
	  "let users delete their own account" },
	{ NULL },
};

struct rate_slot {
	char address[64];
	time_t window;
	unsigned count;
};

struct reg_state {
	struct rate_slot slots[RATE_SLOTS];
};

static const struct options *opts(const struct module *m) { return module_options(m); }

/* A fixed table, replaced oldest-first: bounded memory whatever the load. */
static bool rate_ok(struct module *m, const char *address)
{
	struct reg_state *st = module_data(m);
	struct rate_slot *oldest = &st->slots[0];
	time_t now = time(NULL);
	const struct options *o = module_options(m);

	if (!address)
		return true;
	for (size_t i = 0; i < RATE_SLOTS; i++) {
		struct rate_slot *s = &st->slots[i];

		if (strcmp(s->address, address) == 0) {
			if (now - s->window >= 3600) {
				s->window = now;
				s->count = 0;
			}
			if (s->count >= o->rate)
				return false;
			s->count++;
			return true;
		}
		if (s->window < oldest->window)
			oldest = s;
	}
	snprintf(oldest->address, sizeof(oldest->address), "%s", address);
	oldest->window = now;
	oldest->count = 1;
	return true;
}

static void add_child_text(struct xml_node *p, const char *name, const char *text)
{
	struct xml_node *c = xml_add_child(p, name, NULL);

	if (c && text)
		xml_add_text(c, text, strlen(text));
}

static int on_get(struct iq *iq)
{
	struct xml_node *q = xml_new("query", NS_REGISTER), *in;

	if (!q)
		return -1;
	if (iq->from) {
		/* XEP-0077 §3.1: a registered user sees <registered/> and the name. */
		xml_add_child(q, "registered", NULL);
		add_child_text(q, "username", iq->from->local);
		xml_add_child(q, "password", NULL);
		return iq_reply(iq, q);
	}
	if (!opts(iq->m)->allow_registration) {
		xml_unref(q);
		return iq_error(iq, "not-allowed", "in-band registration is disabled");
	}
	in = xml_add_child(q, "instructions", NULL);
	if (in) {
		static const char text[] = "Choose a username and password.";

		xml_add_text(in, text, sizeof(text) - 1);
	}
	xml_add_child(q, "username", NULL);
	xml_add_child(q, "password", NULL);
	return iq_reply(iq, q);
}

static void on_done(void *arg, enum users_status st)
{
	struct iq *iq = arg;

	switch (st) {
	case USERS_OK:
		iq_reply(iq, NULL);
		break;
	case USERS_EXISTS:
		iq_error(iq, "conflict", "that username is taken");
		break;
	case USERS_NOT_FOUND:
		iq_error(iq, "item-not-found", "no such account");
		break;
	default:
		iq_error(iq, "internal-server-error", NULL);
		break;
	}
}

static int on_set(struct iq *iq)
{
	char *user = xml_child_text(iq->payload, "username", NULL);
	char *pass = xml_child_text(iq->payload, "password", NULL);
	char prepped[JID_PART_MAX + 1];
	const char *err = NULL;
	int rc;

	if (xml_child(iq->payload, "remove", NULL)) {
		free(user);
		free(pass);
		if (!iq->from)
			return iq_error(iq, "not-authorized", "log in to remove an account");
		if (!opts(iq->m)->allow_remove)
			return iq_error(iq, "not-allowed", "accounts are removed by the admin");
		log_info("register", "%s removes the account", iq->from->full);
		/* users.c ends the account's streams after the result (§3.2). */
		return users_remove(iq->to->domain, iq->from->local, on_done, iq) < 0 ? -1 : 0;
	}
	if (!user || !pass || !*user || !*pass) {
		rc = iq_error(iq, "bad-request", "a username and a password are required");
		goto out;
	}
	if ((long long)strlen(pass) < opts(iq->m)->min_password_length) {
		rc = iq_error(iq, "not-acceptable", "the password is too short");
		goto out;
	}
	if (jid_nodeprep(user, prepped, sizeof(prepped), &err) < 0) {
		rc = iq_error(iq, "jid-malformed", err);
		goto out;
	}
	if (iq->from) {
		/* §3.3: a password change names the user's own account. */
		if (strcmp(prepped, iq->from->local) != 0) {
			rc = iq_error(iq, "not-allowed", "you can only change your own password");
			goto out;
		}
		log_info("register", "%s changes the password", iq->from->full);
		rc = users_set_password(iq->to->domain, prepped, pass, on_done, iq) < 0 ? -1 : 0;
		goto out;
	}
	if (!opts(iq->m)->allow_registration) {
		rc = iq_error(iq, "not-allowed", "in-band registration is disabled");
		goto out;
	}
	if (!rate_ok(iq->m, iq->address)) {
		log_warn("register", "%s: registration rate exceeded", iq->address);
		rc = iq_error(iq, "resource-constraint", "too many registrations from your "
			      "address; try again later");
		goto out;
	}
	log_info("register", "%s registers %s@%s", iq->address ? iq->address : "?", prepped,
		 iq->to->domain);
	rc = users_create(iq->to->domain, prepped, pass, on_done, iq) < 0 ? -1 : 0;
out:
	if (pass)
		memset(pass, 0, strlen(pass));
	free(user);
	free(pass);
	return rc;
}

static int on_features(struct module *m, struct hook_args *a)
{
	if (a->preauth && opts(m)->allow_registration)
		xml_add_child(a->result, "register", NS_REGISTER_FEATURE);
	return HOOK_PASS;
}

static int load(struct module *m)
{
	struct reg_state *st = calloc(1, sizeof(*st));

	if (!st)
		return -1;
	module_set_data(m, st, free);
	module_feature(m, NS_REGISTER);
	module_iq(m, IQ_GET, NS_REGISTER, on_get);
	module_iq(m, IQ_SET, NS_REGISTER, on_set);
	module_hook(m, HOOK_STREAM_FEATURES, 0, on_features);
	return 0;
}

PARLEY_MODULE(register,
	.description = "XEP-0077: in-band registration and password change",
	.options = options,
	.options_size = sizeof(struct options),
	.load = load);

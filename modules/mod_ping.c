/*
 * mod_ping - XEP-0199 XMPP Ping.
 *
 * Answers pings to the server and to an account. (Pinging silent clients to
 * find dead connections is the core's job, at <limits idle-timeout>: it must
 * happen whether or not this module is loaded.)
 */
#include "module.h"

#define NS_PING "urn:xmpp:ping"

static int on_ping(struct iq *iq)
{
	return iq_reply(iq, NULL);
}

static int load(struct module *m)
{
	module_feature(m, NS_PING);
	module_iq(m, IQ_GET, NS_PING, on_ping);
	module_account_iq(m, IQ_GET, NS_PING, on_ping);
	return 0;
}

PARLEY_MODULE(ping,
	.description = "XEP-0199: answers pings",
	.load = load);

/*
 * hostmeta.c - XEP-0156 discovery of the web transports: /.well-known/host-meta
 * (XRD, RFC 6415) and /.well-known/host-meta.json, on every http listener.
 *
 * Each lists the WebSocket (urn:xmpp:alt-connections:websocket) and BOSH
 * (urn:xmpp:alt-connections:xbosh) endpoints that are enabled: the url the
 * config gives (a server behind a proxy), else one made of the listener's
 * scheme, the request's Host and the path. Answers carry
 * Access-Control-Allow-Origin: * (XEP-0156 §3.2: web clients on other origins
 * must be able to read them).
 */
#include "hostmeta.h"

#include <stdio.h>
#include <string.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "server.h"

#define HOST_MAX 255
#define REL_WS "urn:xmpp:alt-connections:websocket"
#define REL_BOSH "urn:xmpp:alt-connections:xbosh"

/* Whether the Host header is a plain host[:port] (it goes into the answer). */
static bool host_ok(const char *h)
{
	size_t n = h ? strlen(h) : 0;

	if (n == 0 || n > HOST_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]",
			    h[i]))
			return false;
	return true;
}

/* The URL of a transport for this request into buf; false if none. */
static bool url_of(struct http_request *r, const struct config_web *w, bool ws, char *buf,
		   size_t len)
{
	const char *host = http_header(r, "Host");
	int n;

	if (!w->enabled || !http_route_exists(w->path))
		return false;	/* off, or not served by this build */
	if (w->url) {
		n = snprintf(buf, len, "%s", w->url);
	} else {
		if (!host_ok(host))
			host = server.cfg->nhosts ? server.cfg->hosts[0].name : "localhost";
		n = snprintf(buf, len, "%s%s://%s%s", ws ? "ws" : "http",
			     http_secure(r) ? "s" : "", host, w->path);
	}
	return n > 0 && (size_t)n < len;
}

static void cors(struct http_request *r)
{
	http_add_header(r, "Access-Control-Allow-Origin", "*");
	http_add_header(r, "Access-Control-Allow-Methods", "GET, OPTIONS");
	http_add_header(r, "Access-Control-Max-Age", "86400");
	http_add_header(r, "Cache-Control", "max-age=3600");
}

/* GET, HEAD and the CORS preflight; anything else 405. */
static bool method_ok(struct http_request *r)
{
	const char *m = http_method(r);

	if (strcmp(m, "OPTIONS") == 0) {
		cors(r);
		http_respond(r, 204, NULL, NULL, 0);
		return false;
	}
	if (strcmp(m, "GET") && strcmp(m, "HEAD")) {
		http_add_header(r, "Allow", "GET, HEAD, OPTIONS");
		http_respond(r, 405, "text/plain; charset=utf-8", "GET only\n", 9);
		return false;
	}
	return true;
}

/* One answer for both documents: arg says which (XRD or JSON). */
static void answer(struct http_request *r, void *arg)
{
	bool is_json = arg != NULL;
	char ws[512], bosh[512], body[1400];
	bool has_ws, has_bosh;
	int n;

	if (!method_ok(r))
		return;
	has_ws = url_of(r, &server.cfg->websocket, true, ws, sizeof(ws));
	has_bosh = url_of(r, &server.cfg->bosh, false, bosh, sizeof(bosh));
	/* the URLs have no quote, backslash or angle bracket (config.c, host_ok) */
	if (is_json)
		n = snprintf(body, sizeof(body), "{\"links\":[%s%s%s%s%s%s%s]}\n",
			     has_ws ? "{\"rel\":\"" REL_WS "\",\"href\":\"" : "",
			     has_ws ? ws : "", has_ws ? "\"}" : "", has_ws && has_bosh ? "," : "",
			     has_bosh ? "{\"rel\":\"" REL_BOSH "\",\"href\":\"" : "",
			     has_bosh ? bosh : "", has_bosh ? "\"}" : "");
	else
		n = snprintf(body, sizeof(body), "<?xml version='1.0' encoding='utf-8'?>\n"
			     "<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n"
			     "%s%s%s%s%s%s</XRD>\n",
			     has_ws ? "  <Link rel='" REL_WS "' href='" : "", has_ws ? ws : "",
			     has_ws ? "'/>\n" : "",
			     has_bosh ? "  <Link rel='" REL_BOSH "' href='" : "",
			     has_bosh ? bosh : "", has_bosh ? "'/>\n" : "");
	if (n < 0 || (size_t)n >= sizeof(body)) {
		http_respond(r, 500, "text/plain; charset=utf-8", "too long\n", 9);
		return;
	}
	cors(r);
	http_respond(r, 200, is_json ? "application/json" : "application/xrd+xml; charset=utf-8",
		     body, (size_t)n);
}

int hostmeta_init(void)
{
	static int json;

	if (http_route("/.well-known/host-meta", false, answer, NULL) < 0 ||
	    http_route("/.well-known/host-meta.json", false, answer, &json) < 0)
		return -1;
	return 0;
}

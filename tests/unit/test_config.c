/*
 * test_config.c - the config loader: a valid file gives typed values, and each
 * kind of mistake is reported as FILE:LINE: message, all of them in one run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static char dir[] = "/tmp/parley-config-test.XXXXXX";

static char *write_config(const char *name, const char *text)
{
	char *path;
	FILE *fp;

	assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	return path;
}

static int setup(void **state)
{
	char *p;

	if (!mkdtemp(dir))
		return -1;
	/* The loader only checks that certificate files are readable. */
	p = write_config("cert.pem", "not really a certificate\n");
	free(p);
	p = write_config("key.pem", "not really a key\n");
	free(p);
	return 0;
}

static int teardown(void **state)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Loads text; returns the config or NULL, leaving the errors in errs. */
static struct config *load(const char *text, struct config_errors *errs, char **pathp)
{
	char *path = write_config("parley.xml", text);
	struct config *cfg = config_load(path, errs);

	if (pathp)
		*pathp = path;
	else
		free(path);
	return cfg;
}

/* Asserts that some error is exactly "PATH:LINE: <contains needle>". */
static void assert_error(const struct config_errors *errs, const char *path, unsigned line,
			 const char *needle)
{
	char prefix[512];

	snprintf(prefix, sizeof(prefix), "%s:%u: ", path, line);
	for (size_t i = 0; i < errs->count; i++)
		if (strncmp(errs->msgs[i], prefix, strlen(prefix)) == 0 &&
		    strstr(errs->msgs[i], needle))
			return;
	for (size_t i = 0; i < errs->count; i++)
		print_error("  got: %s\n", errs->msgs[i]);
	fail_msg("no error \"%s...%s\"", prefix, needle);
}

static void test_valid(void **state)
{
	struct config_errors errs;
	struct config *cfg = load(
		"<?xml version='1.0'?>\n"
		"<parley>\n"
		"  <!-- a comment -->\n"
		"  <log level='debug'/>\n"
		"  <control socket='ctl.sock'/>\n"
		"  <database conninfo='dbname=parley' pool='8'/>\n"
		"  <tls cert='cert.pem' key='key.pem'/>\n"
		"  <limits stanza-size='64k' connections-per-ip='10' idle-timeout='5m'/>\n"
		"  <listen type='c2s' port='5222'/>\n"
		"  <listen type='c2s' address='127.0.0.1' port='5223' tls='direct'/>\n"
		"  <listen type='component' address='127.0.0.1' port='5347'/>"
		"<component domain='Bot.Example' secret='s'/>\n"
		"  <host name='Example.COM'>\n"
		"    <module name='ping' interval='60'/>\n"
		"    <module name='disco'/>\n"
		"  </host>\n"
		"  <host name='b.example' cert='cert.pem' key='key.pem'/>\n"
		"</parley>\n", &errs, NULL);

	for (size_t i = 0; i < errs.count; i++)
		print_error("%s\n", errs.msgs[i]);
	assert_non_null(cfg);
	assert_int_equal(errs.count, 0);
	assert_int_equal(cfg->log_level, LOG_DEBUG);
	assert_int_equal(cfg->db_pool, 8);
	assert_string_equal(cfg->db_conninfo, "dbname=parley");
	assert_int_equal(cfg->limits.stanza_size, 64 * 1024);
	assert_int_equal(cfg->limits.connections_per_ip, 10);
	assert_int_equal(cfg->limits.idle_timeout, 300);
	assert_int_equal(cfg->limits.auth_attempts, 10);	/* default */
	assert_int_equal(cfg->nlisteners, 3);
	assert_int_equal(cfg->listeners[0].type, LISTEN_C2S);
	assert_string_equal(cfg->listeners[0].address, "::");
	assert_int_equal(cfg->listeners[0].tls, TLS_STARTTLS);	/* default for c2s */
	assert_int_equal(cfg->listeners[1].tls, TLS_DIRECT);
	assert_int_equal(cfg->listeners[2].type, LISTEN_COMPONENT);
	assert_int_equal(cfg->ncomponents, 1);
	assert_string_equal(cfg->components[0].domain, "bot.example");
	assert_string_equal(cfg->components[0].secret, "s");
	assert_ptr_equal(config_component_find(cfg, "bot.example"), &cfg->components[0]);
	assert_int_equal(cfg->nhosts, 2);
	assert_string_equal(cfg->hosts[0].name, "example.com");	/* nameprep'd */
	assert_int_equal(cfg->hosts[0].nmodules, 2);
	assert_string_equal(cfg->hosts[0].modules[0].name, "ping");
	assert_int_equal(cfg->hosts[0].modules[0].noptions, 1);
	assert_string_equal(cfg->hosts[0].modules[0].options[0].name, "interval");
	assert_string_equal(cfg->hosts[0].modules[0].options[0].value, "60");
	assert_int_equal(cfg->hosts[0].modules[0].options[0].line, 13);
	assert_null(cfg->hosts[0].cert);
	assert_non_null(cfg->hosts[1].cert);
	/* relative paths are relative to the config file */
	assert_int_equal(strncmp(cfg->ctl_socket, dir, strlen(dir)), 0);
	assert_ptr_equal(config_host_find(cfg, "b.example"), &cfg->hosts[1]);
	assert_null(config_host_find(cfg, "c.example"));
	config_free(cfg);
	config_errors_free(&errs);
}

static void test_every_error_with_its_line(void **state)
{
	struct config_errors errs;
	char *path;
	struct config *cfg = load(
		"<parley>\n"					/* 1 */
		"  <log level='loud'/>\n"			/* 2 */
		"  <database conninfo='dbname=x' pool='0'/>\n"	/* 3 */
		"  <limits stanza-size='12q' depth='2' offline-queue='10'/>\n"	/* 4 */
		"  <listen type='c2s' port='70000'/>\n"		/* 5 */
		"  <listen type='xmpp' port='5222'/>\n"		/* 6 */
		"  <listen type='c2s' address='example.com' port='1'/>\n"	/* 7 */
		"  <listen type='component' port='5347' secret='x'/>\n"	/* 8 */
		"  <bogus/>\n"					/* 9 */
		"  <host name='a.example' colour='red'/>\n"	/* 10 */
		"  <host name='A.example'/>\n"			/* 11 */
		"  <host name='c.example' cert='missing.pem' key='key.pem'/>\n"	/* 12 */
		"  <host name='bad..name'/>\n"			/* 13 */
		"  <host name='d.example'><module/><plugin name='x'/></host>\n"	/* 14 */
		"  <log/>\n"					/* 15 */
		"  <tls cert='cert.pem'/>\n"			/* 16 */
		"</parley>\n", &errs, &path);

	assert_null(cfg);
	assert_error(&errs, path, 2, "unknown level");
	assert_error(&errs, path, 3, "between 1 and 64");
	assert_error(&errs, path, 4, "not a number");
	assert_error(&errs, path, 4, "between 4 and");
	assert_error(&errs, path, 5, "between 1 and 65535");
	assert_error(&errs, path, 6, "unknown type");
	assert_error(&errs, path, 7, "not an IPv4 or IPv6 address");
	assert_error(&errs, path, 8, "<component domain=");
	assert_error(&errs, path, 9, "unknown element <bogus>");
	assert_error(&errs, path, 10, "unknown attribute \"colour\"");
	assert_error(&errs, path, 11, "already defined at line 10");
	assert_error(&errs, path, 12, "missing.pem");
	assert_error(&errs, path, 13, "bad..name");
	assert_error(&errs, path, 14, "\"name\" is required");
	assert_error(&errs, path, 14, "unknown element <plugin>");
	assert_error(&errs, path, 15, "appears twice (first at line 2)");
	assert_error(&errs, path, 16, "\"key\" is required");
	/* A limit that became mod_offline's option says where it went. */
	assert_error(&errs, path, 4, "<module name=\"offline\" offline-queue=\"10\"/>");
	free(path);
	config_errors_free(&errs);
}

static void test_not_well_formed(void **state)
{
	struct config_errors errs;
	char *path;
	struct config *cfg = load("<parley>\n  <host name='a'>\n</parley>\n", &errs, &path);

	assert_null(cfg);
	assert_int_equal(errs.count, 1);
	assert_error(&errs, path, 3, "");
	free(path);
	config_errors_free(&errs);
}

static void test_missing_pieces(void **state)
{
	struct config_errors errs;
	char *path;
	struct config *cfg = load("<parley>\n  <listen type='c2s' port='5222'/>\n</parley>\n",
				  &errs, &path);

	assert_null(cfg);
	assert_error(&errs, path, 1, "no <host>");
	assert_error(&errs, path, 1, "no <database");
	assert_error(&errs, path, 2, "TLS needs a certificate");
	free(path);
	config_errors_free(&errs);
}

static void test_wrong_root_and_missing_file(void **state)
{
	struct config_errors errs;
	char *path;
	struct config *cfg = load("<jabber/>\n", &errs, &path);

	assert_null(cfg);
	assert_error(&errs, path, 1, "root element must be <parley>");
	free(path);
	config_errors_free(&errs);

	cfg = config_load("/nonexistent/parley.xml", &errs);
	assert_null(cfg);
	assert_int_equal(errs.count, 1);
	assert_non_null(strstr(errs.msgs[0], "/nonexistent/parley.xml:0: cannot open"));
	config_errors_free(&errs);
}

static void test_duplicate_listener_and_text(void **state)
{
	struct config_errors errs;
	char *path;
	struct config *cfg = load(
		"<parley>\n"
		"  <database conninfo='x'/>\n"
		"  <listen type='c2s' port='5222' tls='none'/>\n"
		"  <listen type='s2s' port='5222' tls='none'/>\n"
		"  <listen type='http' port='5280' tls='starttls'/>\n"
		"  <host name='a.example'>oops</host>\n"
		"</parley>\n", &errs, &path);

	assert_null(cfg);
	assert_error(&errs, path, 4, "already used at line 3");
	assert_error(&errs, path, 5, "must be \"none\" or \"direct\"");
	assert_error(&errs, path, 6, "unexpected text");
	free(path);
	config_errors_free(&errs);
}

/* <websocket> and <bosh>: defaults, values, and each refusal with its line. */
static void test_s2s_dns_components(void **state)
{
	struct config_errors errs;
	char *path;
	struct config *cfg = load(
		"<parley>\n"
		"  <database conninfo='x'/>\n"
		"  <host name='a.example'/>\n"
		"</parley>\n", &errs, NULL);

	(void)state;
	assert_non_null(cfg);
	assert_true(cfg->s2s.enabled && cfg->s2s.secure_auth && cfg->s2s.stream_mgmt);
	assert_int_equal(cfg->s2s.queue, 1000);
	assert_int_equal(cfg->s2s.connect_timeout, 30);
	assert_null(cfg->dns.servers);
	assert_int_equal(cfg->dns.tries, 3);
	assert_true(config_s2s_allowed(&cfg->s2s, "any.example"));
	assert_int_equal(cfg->ncomponents, 0);
	config_free(cfg);

	cfg = load("<parley>\n"
		   "  <database conninfo='x'/>\n"
		   "  <s2s secure-auth='false' allow='B.example  c.example' deny='c.example'\n"
		   "       insecure-domains='old.example' queue='10' connect-timeout='5s'\n"
		   "       idle-timeout='2m' retry-max='60'/>\n"
		   "  <dns servers='127.0.0.1:5353,[::1]:53' timeout='500' tries='1'/>\n"
		   "  <host name='a.example'/>\n"
		   "  <component domain='gw.a.example' secret='s1'/>\n"
		   "  <component domain='bot.example' secret='s2'/>\n"
		   "</parley>\n", &errs, NULL);
	for (size_t i = 0; i < errs.count; i++)
		print_error("%s\n", errs.msgs[i]);
	assert_non_null(cfg);
	assert_false(cfg->s2s.secure_auth);
	assert_true(config_s2s_allowed(&cfg->s2s, "b.example"));
	assert_false(config_s2s_allowed(&cfg->s2s, "c.example"));	/* deny wins */
	assert_false(config_s2s_allowed(&cfg->s2s, "d.example"));	/* not allowed */
	assert_true(config_list_has(cfg->s2s.insecure_domains, "OLD.example"));
	assert_false(config_list_has(cfg->s2s.insecure_domains, "ld.example"));
	assert_int_equal(cfg->s2s.queue, 10);
	assert_int_equal(cfg->s2s.connect_timeout, 5);
	assert_int_equal(cfg->s2s.idle_timeout, 120);
	assert_string_equal(cfg->dns.servers, "127.0.0.1:5353,[::1]:53");
	assert_int_equal(cfg->dns.timeout_ms, 500);
	assert_int_equal(cfg->ncomponents, 2);
	assert_string_equal(config_component_find(cfg, "bot.example")->secret, "s2");
	config_free(cfg);

	cfg = load("<parley>\n"
		   "  <database conninfo='x'/>\n"
		   "  <s2s enabled='no' deny='a..b' queue='0'/>\n"
		   "  <dns servers='resolver.example'/>\n"
		   "  <host name='a.example'/>\n"
		   "  <component domain='a.example' secret='s'/>\n"
		   "  <component domain='b.example'/>\n"
		   "  <component domain='c.example' secret='x'/><component domain='C.example' "
		   "secret='y'/>\n"
		   "</parley>\n", &errs, &path);
	assert_null(cfg);
	assert_error(&errs, path, 3, "<s2s enabled=\"no\">: true or false");
	assert_error(&errs, path, 3, "\"a..b\" is not a domain name");
	assert_error(&errs, path, 3, "queue");
	assert_error(&errs, path, 4, "<dns servers=\"resolver.example\">");
	assert_error(&errs, path, 6, "that domain is a <host>");
	assert_error(&errs, path, 7, "\"secret\" is required");
	assert_error(&errs, path, 8, "already defined at line 8");
	free(path);
	config_errors_free(&errs);
}

static void test_web_transports(void **state)
{
	struct config_errors errs;
	char *path;
	struct config *cfg = load(
		"<parley>\n"
		"  <database conninfo='x'/>\n"
		"  <host name='a.example'/>\n"
		"</parley>\n", &errs, NULL);

	(void)state;
	assert_non_null(cfg);
	assert_true(cfg->websocket.enabled && cfg->bosh.enabled);
	assert_string_equal(cfg->websocket.path, "/xmpp-websocket");
	assert_string_equal(cfg->bosh.path, "/http-bind");
	assert_null(cfg->websocket.origins);
	assert_true(config_origin_allowed(&cfg->websocket, "https://any.example"));
	assert_int_equal(cfg->bosh.max_wait, 60);
	assert_int_equal(cfg->bosh.max_inactivity, 60);
	config_free(cfg);

	cfg = load("<parley>\n"
		   "  <database conninfo='x'/>\n"
		   "  <websocket path='/ws' origins='https://a.example  http://b.example'\n"
		   "             url='wss://chat.example/ws' see-other-uri='wss://x.example/ws'/>\n"
		   "  <bosh enabled='false' max-wait='30' max-hold='2' polling='0'/>\n"
		   "  <host name='a.example'/>\n"
		   "</parley>\n", &errs, NULL);
	assert_non_null(cfg);
	assert_string_equal(cfg->websocket.path, "/ws");
	assert_string_equal(cfg->websocket.url, "wss://chat.example/ws");
	assert_string_equal(cfg->websocket.see_other_uri, "wss://x.example/ws");
	assert_true(config_origin_allowed(&cfg->websocket, "http://b.example"));
	assert_true(config_origin_allowed(&cfg->websocket, "HTTPS://A.EXAMPLE"));
	assert_false(config_origin_allowed(&cfg->websocket, "https://a.example.evil"));
	assert_false(config_origin_allowed(&cfg->websocket, "https://c.example"));
	assert_true(config_origin_allowed(&cfg->websocket, NULL));	/* not a browser */
	assert_false(cfg->bosh.enabled);
	assert_int_equal(cfg->bosh.max_wait, 30);
	assert_int_equal(cfg->bosh.max_hold, 2);
	assert_int_equal(cfg->bosh.polling, 0);
	config_free(cfg);

	cfg = load("<parley>\n"
		   "  <database conninfo='x'/>\n"
		   "  <websocket path='xmpp' url='http://a.example/' enabled='yes'/>\n"
		   "  <bosh max-wait='0' max-requests='1' url='ws://x/' see-other-uri='x'/>\n"
		   "  <host name='a.example'/>\n"
		   "</parley>\n", &errs, &path);
	assert_null(cfg);
	assert_error(&errs, path, 3, "<websocket path=\"xmpp\">: an absolute URL path");
	assert_error(&errs, path, 3, "a URL starting with ws:// or wss://");
	assert_error(&errs, path, 3, "<websocket enabled=\"yes\">: true or false");
	assert_error(&errs, path, 4, "max-wait");
	assert_error(&errs, path, 4, "max-requests");
	assert_error(&errs, path, 4, "a URL starting with http:// or https://");
	assert_error(&errs, path, 4, "unknown attribute \"see-other-uri\"");
	free(path);
	config_errors_free(&errs);

	cfg = load("<parley>\n"
		   "  <database conninfo='x'/>\n"
		   "  <websocket path='/same'/> <bosh path='/same'/>\n"
		   "  <host name='a.example'/>\n"
		   "</parley>\n", &errs, &path);
	assert_null(cfg);
	assert_error(&errs, path, 0, "the same path /same");
	free(path);
	config_errors_free(&errs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_every_error_with_its_line),
		cmocka_unit_test(test_not_well_formed),
		cmocka_unit_test(test_missing_pieces),
		cmocka_unit_test(test_wrong_root_and_missing_file),
		cmocka_unit_test(test_duplicate_listener_and_text),
		cmocka_unit_test(test_web_transports),
		cmocka_unit_test(test_s2s_dns_components),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, setup, teardown);
}

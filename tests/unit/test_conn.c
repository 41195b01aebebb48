/*
 * test_conn.c - a plain connection's own reading and batched writing, on one end
 * of a Unix socket pair: writes wait for the end of the loop iteration and go
 * out together, output the socket does not take waits and drains in order,
 * reads reach the owner, EOF is reported, and a close flushes first. And an
 * outgoing connection (conn_connect) over loopback TCP: connected, refused,
 * timed out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "server.h"

struct owner {
	int reads, eofs, closed, errors, connected;
	char why[128];
	char in[256];
	size_t in_len;
};

static void on_conn(struct conn *c, void *arg, enum conn_event ev, const char *why)
{
	struct owner *o = arg;
	struct evbuffer *in;
	size_t n;

	if (why)
		snprintf(o->why, sizeof(o->why), "%s", why);
	switch (ev) {
	case CONN_READ:
		o->reads++;
		in = conn_input(c);
		n = evbuffer_get_length(in);
		if (n > sizeof(o->in) - o->in_len)
			n = sizeof(o->in) - o->in_len;
		evbuffer_remove(in, o->in + o->in_len, n);
		o->in_len += n;
		break;
	case CONN_EOF:
		o->eofs++;
		break;
	case CONN_CLOSED:
		o->closed++;
		break;
	case CONN_CONNECTED:
		o->connected++;
		break;
	default:
		o->errors++;
		break;
	}
}

struct pair {
	struct conn *c;
	int peer;
	struct owner o;
};

static int setup(void **state)
{
	struct pair *p = calloc(1, sizeof(*p));
	struct sockaddr sa = { .sa_family = AF_UNIX };
	int sv[2];

	if (!p || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return -1;
	server.base = event_base_new();
	if (!server.base)
		return -1;
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	p->peer = sv[1];
	p->c = conn_new(sv[0], &sa, false, on_conn, &p->o);
	if (!p->c)
		return -1;
	*state = p;
	return 0;
}

static int teardown(void **state)
{
	struct pair *p = *state;

	conn_free(p->c);
	close(p->peer);
	conn_shutdown();
	event_base_free(server.base);
	server.base = NULL;
	free(p);
	return 0;
}

static void spin(void)
{
	event_base_loop(server.base, EVLOOP_NONBLOCK);
}

static void test_writes_batched(void **state)
{
	struct pair *p = *state;
	char buf[64];
	ssize_t n;

	assert_int_equal(conn_write(p->c, "<a/>", 4), 0);
	assert_int_equal(conn_write(p->c, "<b/>", 4), 0);
	/* Nothing is on the wire before the loop's turn... */
	assert_int_equal(recv(p->peer, buf, sizeof(buf), 0), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(conn_output_pending(p->c), 8);
	spin();
	/* ...then both together. */
	n = recv(p->peer, buf, sizeof(buf), 0);
	assert_int_equal(n, 8);
	assert_memory_equal(buf, "<a/><b/>", 8);
	assert_int_equal(conn_output_pending(p->c), 0);
}

static void test_output_waits_for_the_socket(void **state)
{
	enum { TOTAL = 1 << 20 };
	struct pair *p = *state;
	char *out = malloc(TOTAL), *in = malloc(TOTAL);
	size_t got = 0;

	assert_non_null(out);
	assert_non_null(in);
	for (size_t i = 0; i < TOTAL; i++)
		out[i] = (char)('a' + i % 26);
	for (size_t i = 0; i < TOTAL; i += 4096)
		assert_int_equal(conn_write(p->c, out + i, 4096), 0);
	spin();
	/* The peer reads nothing yet: the socket took what it could (a Unix
	 * socket's send buffer, about 200 KiB by default), the rest waits. */
	assert_true(conn_output_pending(p->c) > 0);
	assert_true(conn_output_pending(p->c) < TOTAL);
	for (int rounds = 0; got < TOTAL && rounds < 100000; rounds++) {
		ssize_t n = recv(p->peer, in + got, TOTAL - got, 0);

		if (n > 0)
			got += (size_t)n;
		spin();
	}
	assert_int_equal(got, TOTAL);
	assert_memory_equal(in, out, TOTAL);
	assert_int_equal(conn_output_pending(p->c), 0);
	/* Drained: the next write is batched again, not left to a write event. */
	assert_int_equal(conn_write(p->c, "<c/>", 4), 0);
	spin();
	assert_int_equal(recv(p->peer, in, 16, 0), 4);
	free(out);
	free(in);
}

static void test_reads_and_eof(void **state)
{
	struct pair *p = *state;

	assert_int_equal(send(p->peer, "<stream>", 8, 0), 8);
	spin();
	assert_int_equal(p->o.reads, 1);
	assert_int_equal(p->o.in_len, 8);
	assert_memory_equal(p->o.in, "<stream>", 8);
	assert_int_equal(conn_bytes_in(p->c), 8);
	/* Paused: bytes wait in the socket; resumed: they come. */
	conn_pause(p->c, true);
	assert_int_equal(send(p->peer, "<x/>", 4, 0), 4);
	spin();
	assert_int_equal(p->o.reads, 1);
	conn_pause(p->c, false);
	spin();
	assert_int_equal(p->o.in_len, 12);
	shutdown(p->peer, SHUT_WR);
	spin();
	assert_int_equal(p->o.eofs, 1);
	assert_int_equal(p->o.errors, 0);
}

static void test_close_flushes_first(void **state)
{
	struct pair *p = *state;
	char buf[64];

	assert_int_equal(conn_write(p->c, "</stream:stream>", 16), 0);
	conn_close(p->c);
	for (int i = 0; i < 10 && !p->o.closed; i++)
		spin();
	assert_int_equal(p->o.closed, 1);
	assert_int_equal(recv(p->peer, buf, sizeof(buf), 0), 16);
	assert_memory_equal(buf, "</stream:stream>", 16);
}

static int base_setup(void **state)
{
	(void)state;
	server.base = event_base_new();
	return server.base ? 0 : -1;
}

static int base_teardown(void **state)
{
	(void)state;
	conn_shutdown();
	event_base_free(server.base);
	server.base = NULL;
	return 0;
}

static int listen_loopback(struct sockaddr_in *sa, int backlog)
{
	socklen_t len = sizeof(*sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)sa, sizeof(*sa)), 0);
	assert_int_equal(listen(fd, backlog), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)sa, &len), 0);
	return fd;
}

/* The loop until cond, for at most about five seconds. */
#define SPIN_UNTIL(cond)							\
	do {									\
		for (int spin_ = 0; spin_ < 5000 && !(cond); spin_++) {	\
			event_base_loop(server.base, EVLOOP_NONBLOCK);		\
			if (!(cond))						\
				usleep(1000);					\
		}								\
		assert_true(cond);						\
	} while (0)

static void test_connect(void **state)
{
	struct sockaddr_in sa;
	struct owner o = { 0 };
	int lfd = listen_loopback(&sa, 8), fd;
	struct conn *c;
	char buf[16];

	(void)state;
	c = conn_connect((struct sockaddr *)&sa, sizeof(sa), NULL, 5, on_conn, &o);
	assert_non_null(c);
	assert_int_equal(o.connected, 0);		/* never from within the call */
	assert_int_equal(conn_write(c, "x", 1), -1);	/* nor writes before it */
	SPIN_UNTIL(o.connected == 1);
	assert_false(conn_is_tls(c));
	assert_string_equal(conn_peer(c), "127.0.0.1");
	fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);
	/* the plain path: batched writes, direct reads */
	assert_int_equal(conn_write(c, "<stream>", 8), 0);
	spin();
	assert_int_equal(recv(fd, buf, sizeof(buf), 0), 8);
	assert_int_equal(send(fd, "<ok/>", 5, 0), 5);
	SPIN_UNTIL(o.in_len == 5);
	assert_memory_equal(o.in, "<ok/>", 5);
	close(fd);
	SPIN_UNTIL(o.eofs == 1);
	assert_int_equal(o.errors, 0);
	conn_free(c);
	close(lfd);
}

static void test_connect_refused(void **state)
{
	struct sockaddr_in sa;
	struct owner o = { 0 };
	struct conn *c;

	(void)state;
	close(listen_loopback(&sa, 8));		/* nobody listens there now */
	c = conn_connect((struct sockaddr *)&sa, sizeof(sa), NULL, 5, on_conn, &o);
	assert_non_null(c);
	SPIN_UNTIL(o.errors == 1);
	assert_string_equal(o.why, strerror(ECONNREFUSED));
	assert_int_equal(o.connected, 0);
	conn_free(c);
}

/* A listener whose queue is full drops the SYNs: connect waits, then the
 * timeout ends it. */
static void test_connect_timeout(void **state)
{
	struct sockaddr_in sa;
	struct owner o = { 0 };
	int lfd = listen_loopback(&sa, 0), fill[4];
	struct conn *c;

	(void)state;
	for (int i = 0; i < 4; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(fill[i], (struct sockaddr *)&sa, sizeof(sa));
	}
	usleep(100 * 1000);
	c = conn_connect((struct sockaddr *)&sa, sizeof(sa), NULL, 1, on_conn, &o);
	assert_non_null(c);
	SPIN_UNTIL(o.errors == 1);
	assert_string_equal(o.why, strerror(ETIMEDOUT));
	assert_int_equal(o.connected, 0);
	conn_free(c);
	for (int i = 0; i < 4; i++)
		close(fill[i]);
	close(lfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_writes_batched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_waits_for_the_socket, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reads_and_eof, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_flushes_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect, base_setup, base_teardown),
		cmocka_unit_test_setup_teardown(test_connect_refused, base_setup, base_teardown),
		cmocka_unit_test_setup_teardown(test_connect_timeout, base_setup, base_teardown),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

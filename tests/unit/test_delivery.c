/*
 * test_delivery.c - deliveries (who holds a stanza up) and the settled count of
 * a session that XEP-0198 acks report, including its wrap at 2^32.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdlib.h>

#include "delivery.h"
#include "jid.h"
#include "session.h"

static int done_calls, done_ok;

static void on_done(void *arg, bool ok)
{
	(void)arg;
	done_calls++;
	done_ok = ok;
}

static void test_refcount(void **state)
{
	struct delivery *d = delivery_new(true, on_done, NULL), *prev;

	(void)state;
	done_calls = 0;
	assert_non_null(d);
	assert_true(delivery_durable(d));
	assert_false(delivery_shared(d));
	prev = delivery_enter(d);
	assert_null(prev);
	assert_ptr_equal(delivery_current(), d);
	assert_ptr_equal(delivery_ref(delivery_current()), d);	/* a queue takes it */
	assert_true(delivery_shared(d));
	delivery_leave(prev);
	assert_null(delivery_current());
	delivery_release(d, true);		/* the router is done */
	assert_int_equal(done_calls, 0);
	delivery_release(d, false);		/* the queue could not deliver */
	assert_int_equal(done_calls, 1);
	assert_false(done_ok);
	assert_null(delivery_ref(NULL));
	delivery_release(NULL, true);		/* no-op */
}

static void test_all_ok(void **state)
{
	struct delivery *d = delivery_new(false, on_done, NULL);

	(void)state;
	done_calls = 0;
	delivery_ref(d);
	delivery_ref(d);
	delivery_release(d, true);
	delivery_release(d, true);
	assert_int_equal(done_calls, 0);
	delivery_release(d, true);
	assert_int_equal(done_calls, 1);
	assert_true(done_ok);
}

/* Three messages; the first and third are held, the second settles at once:
 * the settled count stops below the first until it settles. */
static void check_settled_order(uint32_t start)
{
	struct jid *j = jid_new("a@example.com/r", NULL);
	struct session *s = sm_bind(NULL, j);
	struct delivery *d[3], *held[3] = { NULL };

	assert_non_null(s);
	session_inbound_skip(s, start);
	assert_int_equal(session_received(s), start);
	assert_int_equal(session_settled(s), start);
	for (int i = 0; i < 3; i++) {
		d[i] = session_inbound_begin(s, true);
		if (i != 1)
			held[i] = delivery_ref(d[i]);	/* a recipient's queue */
		session_inbound_end(s, d[i]);
	}
	assert_int_equal((uint32_t)(session_received(s) - start), 3);
	assert_int_equal((uint32_t)(session_settled(s) - start), 0);
	delivery_release(held[2], true);
	assert_int_equal((uint32_t)(session_settled(s) - start), 0);
	delivery_release(held[0], true);
	assert_int_equal((uint32_t)(session_settled(s) - start), 3);
	/* A stanza that is not a message settles at once. */
	assert_null(session_inbound_begin(s, false));
	assert_int_equal((uint32_t)(session_settled(s) - start), 4);
	sm_unbind(s, "test");
	jid_free(j);
}

static void test_settled(void **state)
{
	(void)state;
	check_settled_order(0);
}

static void test_settled_wraps(void **state)
{
	(void)state;
	/* XEP-0198 §4: h wraps to 0 after 2^32 - 1. */
	check_settled_order(UINT32_MAX - 1);
}

/* A session that ends with a message held: the holder's release later must
 * not touch the freed session. */
static void test_session_gone(void **state)
{
	struct jid *j = jid_new("b@example.com/r", NULL);
	struct session *s = sm_bind(NULL, j);
	struct delivery *d, *held;

	(void)state;
	d = session_inbound_begin(s, true);
	held = delivery_ref(d);
	session_inbound_end(s, d);
	sm_unbind(s, "test");
	delivery_release(held, true);	/* valgrind/ASan would see a bad access */
	jid_free(j);
	sm_unbind_all("test");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refcount),
		cmocka_unit_test(test_all_ok),
		cmocka_unit_test(test_settled),
		cmocka_unit_test(test_settled_wraps),
		cmocka_unit_test(test_session_gone),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

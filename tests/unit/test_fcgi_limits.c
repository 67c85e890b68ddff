/*
 * test_fcgi_limits: the kernel probe and the arithmetic of consuma-fcgi's
 * admission control (fcgi-app/limits.c): the accept queue of a listening
 * unix socket (netlink sock_diag) and TCP socket (TCP_INFO), counted as
 * clients connect and are accepted, sockets that are not listening
 * refused; and the Retry-After of a full queue from its backlog and drain
 * rate, with its bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "limits.h"

/* ---- listen queue ---- */

static void test_listen_pending_unix(void **state)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int lfd, clients[3], i, a;
	int64_t pending = -1;

	(void)state;
	/* a path like spawn-fcgi's, unique to this run */
	i = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/consuma-limits-%ld.sock",
	             getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp", (long)getpid());
	assert_true(i > 0 && (size_t)i < sizeof(sa.sun_path));
	unlink(sa.sun_path);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	/* not listening yet: refused */
	assert_int_equal(limits_listen_pending(lfd, &pending), LIMITS_LISTEN_INVALID);
	assert_int_equal(listen(lfd, 16), 0);
	assert_int_equal(limits_listen_pending(lfd, &pending), LIMITS_LISTEN_OK);
	assert_int_equal(pending, 0);
	for (i = 0; i < 3; i++) {
		clients[i] = socket(AF_UNIX, SOCK_STREAM, 0);
		assert_int_equal(connect(clients[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
		assert_int_equal(limits_listen_pending(lfd, &pending), LIMITS_LISTEN_OK);
		assert_int_equal(pending, i + 1);
	}
	a = accept(lfd, NULL, NULL);
	assert_true(a >= 0);
	assert_int_equal(limits_listen_pending(lfd, &pending), LIMITS_LISTEN_OK);
	assert_int_equal(pending, 2);
	close(a);
	for (i = 0; i < 3; i++)
		close(clients[i]);
	close(lfd);
	unlink(sa.sun_path);
	assert_int_equal(limits_listen_pending(-1, &pending), LIMITS_LISTEN_INVALID);
	assert_int_equal(limits_listen_pending(0, &pending) == LIMITS_LISTEN_OK, false);
}

static void test_listen_pending_tcp(void **state)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int lfd = socket(AF_INET, SOCK_STREAM, 0), c1, c2, tries;
	int64_t pending = -1;

	(void)state;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
	assert_int_equal(listen(lfd, 16), 0);
	assert_int_equal(limits_listen_pending(lfd, &pending), LIMITS_LISTEN_OK);
	assert_int_equal(pending, 0);
	c1 = socket(AF_INET, SOCK_STREAM, 0);
	c2 = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(c1, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(connect(c2, (struct sockaddr *)&sa, sizeof(sa)), 0);
	/* the handshake completes in the kernel right away on loopback */
	for (tries = 0; tries < 100; tries++) {
		assert_int_equal(limits_listen_pending(lfd, &pending), LIMITS_LISTEN_OK);
		if (pending == 2)
			break;
		usleep(1000);
	}
	assert_int_equal(pending, 2);
	close(c1);
	close(c2);
	close(lfd);
}

static void test_drain_retry_after(void **state)
{
	static const int64_t cases[][5] = {
	    /* depth, max, finished, over_ms, want */
	    {1000, 1000, 0, 10000, 60},   /* nothing drains */
	    {1000, 1000, 100, 10000, 1},  /* 10/s: one slot in 0.1 s */
	    {1000, 1000, 1, 10000, 10},   /* 0.1/s */
	    {1009, 1000, 1, 10000, 60},   /* 10 slots at 0.1/s: capped */
	    {1100, 1000, 100, 10000, 11}, /* 101 jobs at 10/s */
	    {1000, 1000, 3, 10000, 4},    /* 3.33 s rounds up */
	    {10, 1000, 5, 10000, 2},      /* below max (a share refusal): one job */
	    {1000, 1000, 5, 0, 60},       {INT64_MAX, 1, INT64_MAX, 10000, 10},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (limits_drain_retry_after_s(cases[i][0], cases[i][1], cases[i][2],
		                               cases[i][3]) != cases[i][4])
			fail_msg("case %zu: got %lld, want %lld", i,
			         (long long)limits_drain_retry_after_s(cases[i][0], cases[i][1],
			                                               cases[i][2], cases[i][3]),
			         (long long)cases[i][4]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_listen_pending_unix),
	    cmocka_unit_test(test_listen_pending_tcp),
	    cmocka_unit_test(test_drain_retry_after),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_doorbell: a ring reaches a listener; ringing with nobody listening,
 * or a full queue, is silent and never blocks; a stale socket file is
 * replaced but a regular file is never removed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <unistd.h>
#include <cmocka.h>
#include "doorbell.h"

static char dir[] = "/tmp/consuma-doorbell-XXXXXX";

static void test_ring_wakes_listener(void **state)
{
	char path[256];
	struct pollfd p;
	struct doorbell *bell;
	int fd, i;

	(void)state;
	snprintf(path, sizeof(path), "%s/bell", dir);
	fd = doorbell_listen(path);
	assert_true(fd >= 0);
	bell = doorbell_new(path);
	assert_non_null(bell);
	doorbell_ring(bell);
	doorbell_ring(bell);
	p.fd = fd;
	p.events = POLLIN;
	assert_int_equal(poll(&p, 1, 2000), 1);
	assert_int_equal(doorbell_drain(fd), 2);
	assert_int_equal(doorbell_drain(fd), 0);
	/* A full queue drops rings and never blocks. */
	for (i = 0; i < 100000; i++)
		doorbell_ring(bell);
	assert_true(doorbell_drain(fd) > 0);
	close(fd);
	/* The listener restarted: the same bell still reaches it. */
	fd = doorbell_listen(path);
	assert_true(fd >= 0);
	doorbell_ring(bell);
	assert_int_equal(doorbell_drain(fd), 1);
	close(fd);
	doorbell_free(bell);
	/* The stale socket file is replaced on the next listen. */
	fd = doorbell_listen(path);
	assert_true(fd >= 0);
	close(fd);
	unlink(path);
}

static void test_nobody_listening(void **state)
{
	char path[256];

	(void)state;
	struct doorbell *bell;

	snprintf(path, sizeof(path), "%s/nobody", dir);
	bell = doorbell_new(path);
	assert_non_null(bell);
	doorbell_ring(bell); /* must simply return */
	doorbell_free(bell);
	doorbell_ring(NULL);
	doorbell_free(NULL);
	assert_null(doorbell_new(""));
	assert_null(doorbell_new(NULL));
}

static void test_refuses_to_remove_a_file(void **state)
{
	char path[256];
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/regular", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(doorbell_listen(path), -1);
	assert_int_equal(access(path, F_OK), 0);
	unlink(path);
}

static void test_path_too_long(void **state)
{
	char path[300];

	(void)state;
	memset(path, 'a', sizeof(path) - 1);
	path[sizeof(path) - 1] = '\0';
	assert_int_equal(doorbell_listen(path), -1);
	assert_null(doorbell_new(path));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ring_wakes_listener),
	    cmocka_unit_test(test_nobody_listening),
	    cmocka_unit_test(test_refuses_to_remove_a_file),
	    cmocka_unit_test(test_path_too_long),
	};
	int rc;

	if (mkdtemp(dir) == NULL)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	rmdir(dir);
	return rc;
}

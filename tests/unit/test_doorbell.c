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
	int fd, i;

	(void)state;
	snprintf(path, sizeof(path), "%s/bell", dir);
	fd = doorbell_listen(path);
	assert_true(fd >= 0);
	doorbell_ring(path);
	doorbell_ring(path);
	p.fd = fd;
	p.events = POLLIN;
	assert_int_equal(poll(&p, 1, 2000), 1);
	assert_int_equal(doorbell_drain(fd), 2);
	assert_int_equal(doorbell_drain(fd), 0);
	/* A full queue drops rings and never blocks. */
	for (i = 0; i < 100000; i++)
		doorbell_ring(path);
	assert_true(doorbell_drain(fd) > 0);
	close(fd);
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
	snprintf(path, sizeof(path), "%s/nobody", dir);
	doorbell_ring(path); /* must simply return */
	doorbell_ring(NULL);
	doorbell_ring("");
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

/*
 * test_doorbell: a ring reaches a listener, once per commit batch when
 * asked so; ringing with nobody listening,
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

/* One ring per commit batch: a batch already rung for, or an earlier one,
 * rings no more; batch 0 (not from a committer) always rings. */
static void test_ring_once_per_batch(void **state)
{
	static const struct {
		uint64_t batch;
		int rings;
	} steps[] = {{1, 1}, {1, 0}, {0, 1}, {3, 1}, {2, 0}, {3, 0}, {0, 1}, {4, 1}};
	char path[256];
	struct doorbell *bell;
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "%s/batch", dir);
	fd = doorbell_listen(path);
	assert_true(fd >= 0);
	bell = doorbell_new(path);
	assert_non_null(bell);
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		doorbell_ring_batch(bell, steps[i].batch);
		if (doorbell_drain(fd) != steps[i].rings)
			fail_msg("step %zu (batch %llu): not %d ring(s)", i,
			         (unsigned long long)steps[i].batch, steps[i].rings);
	}
	doorbell_ring_batch(NULL, 5); /* no bell: nothing, no crash */
	close(fd);
	doorbell_free(bell);
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
	    cmocka_unit_test(test_ring_once_per_batch),
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

/*
 * test_metrics: the shared counters zone. Two opens of one path share the
 * counts (as two processes do, also across fork); histogram observations
 * land in the bucket their bounds say, boundaries included; a file that is
 * not a zone (wrong size, wrong magic) is replaced, an unusable path is
 * refused; NULL is a no-op everywhere; deliverer slots are per pid, freed
 * on exit, ignored when stale; the pending mark only advances from the
 * value it was read at and lowers to a redelivered seq.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include "metrics.h"

static char dir[] = "/tmp/consuma-metrics-XXXXXX";

static void zone_path(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", dir, name);
}

static struct metrics *open_zone(const char *name)
{
	char path[256], why[256];
	struct metrics *m;

	zone_path(path, sizeof(path), name);
	m = metrics_open(path, why, sizeof(why));
	if (m == NULL)
		fail_msg("metrics_open %s: %s", path, why);
	return m;
}

static void test_two_opens_share_counts(void **state)
{
	struct metrics *a = open_zone("shared"), *b = open_zone("shared");
	struct metrics_snapshot s;
	pid_t pid;
	int status;

	(void)state;
	metrics_count(a, METRICS_JOBS_ACCEPTED, 3);
	metrics_count(b, METRICS_JOBS_ACCEPTED, 4);
	metrics_refused(a, METRICS_REFUSED_QUEUE_FULL);
	metrics_refused(b, METRICS_REFUSED_RATE_LIMIT);
	metrics_refused(b, METRICS_REFUSED_RATE_LIMIT);
	metrics_sync(a, METRICS_SYNC_COMPLETED, 2000000);
	metrics_sync(a, METRICS_SYNC_REFUSED, 0);
	metrics_attempt(b, METRICS_ATTEMPT_DELIVERED, 204, 1000);
	metrics_attempt(b, METRICS_ATTEMPT_RETRY, 503, 1000);
	metrics_attempt(b, METRICS_ATTEMPT_REFUSED, 0, -1);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) { /* another process opens the same path */
		struct metrics *c = open_zone("shared");
		metrics_count(c, METRICS_JOBS_ACCEPTED, 10);
		metrics_close(c);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	metrics_read(a, 0, 1000, &s);
	assert_int_equal(s.counter[METRICS_JOBS_ACCEPTED], 17);
	assert_int_equal(s.refused[METRICS_REFUSED_QUEUE_FULL], 1);
	assert_int_equal(s.refused[METRICS_REFUSED_RATE_LIMIT], 2);
	assert_int_equal(s.sync[METRICS_SYNC_COMPLETED], 1);
	assert_int_equal(s.sync[METRICS_SYNC_REFUSED], 1);
	assert_int_equal(s.hist[METRICS_H_SYNC_DURATION].count, 1); /* refusals not timed */
	assert_int_equal(s.hist[METRICS_H_SYNC_DURATION].sum_ns, 2000000);
	assert_int_equal(s.attempts[METRICS_ATTEMPT_DELIVERED][2], 1);
	assert_int_equal(s.attempts[METRICS_ATTEMPT_RETRY][5], 1);
	assert_int_equal(s.attempts[METRICS_ATTEMPT_REFUSED][0], 1);
	assert_int_equal(s.hist[METRICS_H_ATTEMPT].count, 2); /* nothing sent: not timed */
	metrics_close(a);
	metrics_close(b);
}

static void test_buckets(void **state)
{
	static const struct {
		int64_t ns;
		int bucket; /* index into metrics_bucket_le, METRICS_BUCKETS: +Inf */
	} cases[] = {
	    {0, 0},
	    {-5, 0},             /* a clock step backwards counts as 0 */
	    {500000, 0},         /* le is inclusive: 0.0005 s */
	    {500001, 1},         /* just above */
	    {1000000, 1},        /* 0.001 */
	    {999999999, 10},     /* under 1 s */
	    {1000000000, 10},    /* 1 s */
	    {3600000000000, 19}, /* the last bound */
	    {3600000000001, METRICS_BUCKETS},
	    {INT64_MAX / 2, METRICS_BUCKETS},
	};
	struct metrics_snapshot s;
	size_t i;

	(void)state;
	assert_true(metrics_bucket_le[10] == 1.0);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char name[32];
		struct metrics *m;

		snprintf(name, sizeof(name), "bucket-%zu", i);
		m = open_zone(name);
		metrics_observe(m, METRICS_H_E2E, cases[i].ns);
		metrics_read(m, 0, 1000, &s);
		for (int b = 0; b <= METRICS_BUCKETS; b++)
			if (s.hist[METRICS_H_E2E].bucket[b] != (b == cases[i].bucket))
				fail_msg("case %zu (%lld ns): bucket %d holds %llu", i,
				         (long long)cases[i].ns, b,
				         (unsigned long long)s.hist[METRICS_H_E2E].bucket[b]);
		assert_int_equal(s.hist[METRICS_H_E2E].count, 1);
		metrics_close(m);
	}
}

static void test_replaces_what_is_not_a_zone(void **state)
{
	static const char *const junk[] = {"", "short", NULL};
	char path[256], why[256];
	struct metrics_snapshot s;

	(void)state;
	for (size_t i = 0; junk[i] != NULL; i++) {
		struct metrics *m;
		int fd;

		zone_path(path, sizeof(path), "junk");
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, junk[i], strlen(junk[i])), (ssize_t)strlen(junk[i]));
		close(fd);
		m = metrics_open(path, why, sizeof(why));
		assert_non_null(m);
		metrics_read(m, 0, 1000, &s);
		assert_int_equal(s.counter[METRICS_JOBS_ACCEPTED], 0);
		metrics_close(m);
	}
	/* the right size but no magic (zeros): replaced too */
	{
		struct metrics *m = open_zone("zeros");
		int fd;
		off_t size;

		metrics_count(m, METRICS_JOBS_ACCEPTED, 5);
		metrics_close(m);
		zone_path(path, sizeof(path), "zeros");
		fd = open(path, O_RDWR);
		assert_true(fd >= 0);
		size = lseek(fd, 0, SEEK_END);
		assert_int_equal(ftruncate(fd, 0), 0);
		assert_int_equal(ftruncate(fd, size), 0);
		close(fd);
		m = open_zone("zeros");
		metrics_count(m, METRICS_JOBS_ACCEPTED, 1);
		metrics_read(m, 0, 1000, &s);
		assert_int_equal(s.counter[METRICS_JOBS_ACCEPTED], 1);
		metrics_close(m);
	}
	/* a directory that does not exist */
	zone_path(path, sizeof(path), "no/such/dir/zone");
	assert_null(metrics_open(path, why, sizeof(why)));
	assert_non_null(strstr(why, "no/such/dir"));
}

static void test_null_is_a_no_op(void **state)
{
	struct metrics_snapshot s;

	(void)state;
	metrics_count(NULL, METRICS_JOBS_ACCEPTED, 1);
	metrics_refused(NULL, METRICS_REFUSED_BAD_REQUEST);
	metrics_sync(NULL, METRICS_SYNC_COMPLETED, 1);
	metrics_attempt(NULL, METRICS_ATTEMPT_FAILED, 500, 1);
	metrics_observe(NULL, METRICS_H_E2E, 1);
	metrics_deliverer_gauges(NULL, 1, 1, 1);
	metrics_deliverer_gone(NULL, 1);
	metrics_pending_mark_advance(NULL, 0, 5);
	metrics_pending_mark_lower(NULL, 5);
	assert_int_equal(metrics_pending_mark(NULL), 0);
	memset(&s, 0xff, sizeof(s));
	metrics_read(NULL, 0, 0, &s);
	assert_int_equal(s.counter[METRICS_JOBS_ACCEPTED], 0);
	assert_int_equal(s.open_breakers, 0);
	metrics_close(NULL);
}

static void test_out_of_range_labels_ignored(void **state)
{
	struct metrics *m = open_zone("range");
	struct metrics_snapshot s;

	(void)state;
	metrics_count(m, METRICS_COUNTER__COUNT, 1);
	metrics_refused(m, METRICS_REFUSAL__COUNT);
	metrics_sync(m, METRICS_SYNC__COUNT, 1);
	metrics_attempt(m, METRICS_ATTEMPT__COUNT, 200, 1);
	metrics_observe(m, METRICS_H__COUNT, 1);
	metrics_attempt(m, METRICS_ATTEMPT_FAILED, 99, -1);  /* no class: "none" */
	metrics_attempt(m, METRICS_ATTEMPT_FAILED, 600, -1); /* no class: "none" */
	metrics_read(m, 0, 1000, &s);
	assert_int_equal(s.attempts[METRICS_ATTEMPT_FAILED][0], 2);
	for (int h = 0; h < METRICS_H__COUNT; h++)
		assert_int_equal(s.hist[h].count, 0);
	metrics_close(m);
}

static void test_deliverer_slots(void **state)
{
	struct metrics *m = open_zone("slots");
	struct metrics_snapshot s;

	(void)state;
	metrics_deliverer_gauges(m, getpid(), 10000, 2);
	metrics_deliverer_gauges(m, getppid(), 10000, 3);
	metrics_read(m, 10500, 1000, &s);
	assert_int_equal(s.open_breakers, 5);
	metrics_deliverer_gauges(m, getpid(), 10600, 1); /* same slot, new value */
	metrics_read(m, 10700, 1000, &s);
	assert_int_equal(s.open_breakers, 4);
	metrics_read(m, 11500, 1000, &s); /* getppid's report is stale now */
	assert_int_equal(s.open_breakers, 1);
	metrics_deliverer_gone(m, getpid());
	metrics_read(m, 10700, 1000, &s);
	assert_int_equal(s.open_breakers, 3);

	metrics_close(m);

	/* every slot taken by processes that are gone: a new one reuses one */
	m = open_zone("slots-full");
	for (int i = 0; i < METRICS_DELIVERER_SLOTS; i++)
		metrics_deliverer_gauges(m, 4000000 + i, 20000, 1); /* no such pids */
	metrics_read(m, 20000, 1000, &s);
	assert_int_equal(s.open_breakers, METRICS_DELIVERER_SLOTS);
	metrics_deliverer_gauges(m, getpid(), 20000, 7);
	metrics_read(m, 20000, 1000, &s);
	assert_int_equal(s.open_breakers, METRICS_DELIVERER_SLOTS - 1 + 7);
	metrics_close(m);
}

static void test_pending_mark(void **state)
{
	struct metrics *m = open_zone("mark");

	(void)state;
	assert_int_equal(metrics_pending_mark(m), 0);
	metrics_pending_mark_lower(m, 5); /* unknown stays unknown */
	assert_int_equal(metrics_pending_mark(m), 0);
	metrics_pending_mark_advance(m, 0, 100);
	assert_int_equal(metrics_pending_mark(m), 100);
	metrics_pending_mark_advance(m, 50, 200); /* read at another value: refused */
	assert_int_equal(metrics_pending_mark(m), 100);
	metrics_pending_mark_lower(m, 40);
	assert_int_equal(metrics_pending_mark(m), 40);
	metrics_pending_mark_lower(m, 60); /* never raised by lower */
	assert_int_equal(metrics_pending_mark(m), 40);
	metrics_pending_mark_advance(m, 100, 300); /* a scrape that read 100 loses */
	assert_int_equal(metrics_pending_mark(m), 40);
	metrics_close(m);
}

static void test_zone_path(void **state)
{
	char out[32];

	(void)state;
	assert_true(metrics_zone_path("/var/lib/c.db", out, sizeof(out)));
	assert_string_equal(out, "/var/lib/c.db.metrics");
	assert_false(metrics_zone_path("/a/very/long/database/path.db", out, sizeof(out)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_two_opens_share_counts),
	    cmocka_unit_test(test_buckets),
	    cmocka_unit_test(test_replaces_what_is_not_a_zone),
	    cmocka_unit_test(test_null_is_a_no_op),
	    cmocka_unit_test(test_out_of_range_labels_ignored),
	    cmocka_unit_test(test_deliverer_slots),
	    cmocka_unit_test(test_pending_mark),
	    cmocka_unit_test(test_zone_path),
	};
	int rc;
	char cmd[128];

	if (mkdtemp(dir) == NULL)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		return 1;
	return rc;
}
